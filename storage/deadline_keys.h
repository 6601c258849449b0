// Internal to storage/: deadline keys (docs/retention.md and docs/crypto.md,
// "Deadline keys"). Erase deadlines are grouped into buckets, one per UTC
// hour; each bucket in use has a random key in the keystore. A record whose
// next deadline is its erasure has its personal parts, flag notes and
// contests sealed under part keys derived from both the subject's data key
// and its bucket's key, so destroying the bucket key erases every copy of
// every ciphertext of the bucket at once, and a shred still erases them
// too. A bucket is a unit of key destruction, never of visibility.
//
// Thread safety: thread-safe. GetOrCreate REQUIRES the records write lock
// (so no sweep destroys the bucket meanwhile).

#ifndef CUSTOS_STORAGE_DEADLINE_KEYS_H_
#define CUSTOS_STORAGE_DEADLINE_KEYS_H_

#include <cstdint>
#include <optional>

#include "base/status.h"
#include "crypto/secret_key.h"
#include "storage/codec.h"
#include "storage/keystore.h"
#include "storage/store.h"

namespace custos {

class DeadlineKeys {
 public:
  // One bucket per UTC hour.
  static constexpr int64_t kBucketMicros = int64_t{3600} * 1000 * 1000;

  // `keystore` REQUIRES: outlives this object.
  explicit DeadlineKeys(Keystore& keystore) : keystore_(keystore) {}

  // The bucket of an erase deadline: floor(µs / kBucketMicros) + 1 (>= 1;
  // 0 means no bucket). REQUIRES: deadline_micros >= 0.
  static uint64_t BucketOf(int64_t deadline_micros);
  // The first and one past the last instant (µs) of `bucket` (>= 1).
  static int64_t BucketStart(uint64_t bucket);
  static int64_t BucketEnd(uint64_t bucket);
  // The bucket `r` must be sealed under: that of its next deadline when it
  // is its erasure, else 0 (the invariant RecordStore::Put keeps).
  static uint64_t BucketFor(const codec::StoredRecord& r);

  // The key of `bucket`, or nullptr once destroyed (or never made).
  // DataLoss if it fails to unwrap.
  Result<SharedKey> Get(uint64_t bucket) const;
  // The key of `bucket`, made (random), stored and durable if it has none.
  Result<SharedKey> GetOrCreate(const WriteLock& lock, uint64_t bucket);

  // The key a ciphertext of a subject whose data key is `subject_key` is
  // sealed under in `bucket`: nullopt for bucket 0 (the data key itself),
  // else CombineKeys(bucket key, subject_key, "part", bucket).
  // DataLoss("a deadline key was destroyed") when the bucket's key is gone.
  Result<std::optional<crypto::SecretKey>> PartKey(
      const crypto::SecretKey& subject_key, uint64_t bucket) const;
  // The same with the bucket key given.
  crypto::SecretKey PartKey(const crypto::SecretKey& bucket_key,
                            const crypto::SecretKey& subject_key,
                            uint64_t bucket) const;

  Keystore& keystore() const { return keystore_; }

 private:
  Keystore& keystore_;
  mutable crypto::KeyPool pool_{64};  // Derived keys: transient.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_DEADLINE_KEYS_H_
