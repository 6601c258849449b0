#include "storage/deadline_keys.h"

#include "crypto/keyed_hash.h"

namespace custos {

uint64_t DeadlineKeys::BucketOf(int64_t deadline_micros) {
  return static_cast<uint64_t>(deadline_micros / kBucketMicros) + 1;
}

int64_t DeadlineKeys::BucketStart(uint64_t bucket) {
  return static_cast<int64_t>(bucket - 1) * kBucketMicros;
}

int64_t DeadlineKeys::BucketEnd(uint64_t bucket) {
  return static_cast<int64_t>(bucket) * kBucketMicros;
}

uint64_t DeadlineKeys::BucketFor(const codec::StoredRecord& r) {
  if (r.state == RecordState::kErased ||
      r.next_transition != codec::Transition::kErase ||
      r.next_deadline_micros < 0) {
    return 0;
  }
  return BucketOf(r.next_deadline_micros);
}

Result<SharedKey> DeadlineKeys::Get(uint64_t bucket) const {
  return keystore_.GetKey(Keystore::BucketKeyName(bucket));
}

Result<SharedKey> DeadlineKeys::GetOrCreate(const WriteLock& /*lock*/,
                                            uint64_t bucket) {
  auto key = Get(bucket);
  if (!key || *key) return key;
  SharedKey made = keystore_.NewKey();
  auto ticket = keystore_.PutKey(Keystore::BucketKeyName(bucket), made);
  if (!ticket) return Fail(ticket.error());
  // Durable before any record sealed under it can be (crash window 1).
  CUSTOS_RETURN_IF_ERROR(keystore_.WaitDurable(*ticket));
  return made;
}

crypto::SecretKey DeadlineKeys::PartKey(const crypto::SecretKey& bucket_key,
                                        const crypto::SecretKey& subject_key,
                                        uint64_t bucket) const {
  return crypto::CombineKeys(bucket_key, subject_key, "part", bucket, pool_);
}

Result<std::optional<crypto::SecretKey>> DeadlineKeys::PartKey(
    const crypto::SecretKey& subject_key, uint64_t bucket) const {
  if (bucket == 0) return std::optional<crypto::SecretKey>();
  auto bucket_key = Get(bucket);
  if (!bucket_key) return Fail(bucket_key.error());
  if (!*bucket_key) {
    return Fail(Status::DataLoss("a deadline key was destroyed"));
  }
  return std::optional<crypto::SecretKey>(
      PartKey(**bucket_key, subject_key, bucket));
}

}  // namespace custos
