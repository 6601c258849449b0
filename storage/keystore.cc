#include "storage/keystore.h"

#include <leveldb/write_batch.h>

#include <algorithm>

#include "crypto/aead.h"
#include "crypto/key_wrap.h"
#include "crypto/master_key.h"
#include "storage/codec.h"
#include "storage/leveldb_util.h"

namespace custos {
namespace {

constexpr uint32_t kKeystoreFormatVersion = 1;
constexpr uint32_t kInitialKekVersion = 1;
constexpr char kFormatKey[] = "m:format";
constexpr char kKekKey[] = "m:kek";
// Sealed under the KEK at creation; opening it proves the master key given
// at a later start is the same one.
constexpr std::string_view kKekCheckText = "custos keystore check";
constexpr std::string_view kKekCheckAd = "custos-kek-check-v1";

std::string KeyKey(std::string_view subject_id) {
  return "k:" + std::string(subject_id);
}
std::string LedgerKey(const crypto::Digest& hash) {
  return "l:" + std::string(AsStringView(hash));
}
std::string RetiringKeyKey(std::string_view subject_id) {
  return std::string("o:").append(subject_id);
}

}  // namespace

Keystore::Keystore(std::unique_ptr<LogSyncEnv> env,
                   std::unique_ptr<leveldb::DB> db, crypto::SecretKey kek,
                   uint32_t kek_version, size_t cache_capacity)
    : env_(std::move(env)),
      db_(std::move(db)),
      sync_([this] { return env_->SyncLogs(); }),
      kek_(std::move(kek)),
      kek_version_(kek_version),
      cache_(cache_capacity) {}

Result<std::unique_ptr<Keystore>> Keystore::Open(
    const std::string& path, bool create_if_missing,
    const crypto::SecretKey& master, Timestamp now, leveldb::Env* env,
    size_t cache_capacity) {
  auto log_env = std::make_unique<LogSyncEnv>(env);
  auto opened = OpenLevelDb(path, create_if_missing, log_env.get());
  if (!opened) {
    if (opened.error().code() == StatusCode::kInvalidArgument &&
        !create_if_missing) {
      return Fail(Status::NotFound("no keystore at " + path));
    }
    return Fail(opened.error());
  }
  std::unique_ptr<leveldb::DB> db = std::move(*opened);
  leveldb::Status s;
  crypto::SecretKey kek =
      crypto::DeriveSubkey(master, crypto::Subkey::kKeyEncryption);
  const auto check_ad = AsBytes(kKekCheckAd);

  std::string format;
  s = db->Get(leveldb::ReadOptions(), kFormatKey, &format);
  if (s.IsNotFound()) {
    // A new keystore: record the format and the KEK check in one write.
    leveldb::WriteBatch batch;
    batch.Put(kFormatKey,
              codec::EncodeFormatInfo(kKeystoreFormatVersion, ToMicros(now)));
    std::string kek_value;
    AppendBigEndian32(kek_value, kInitialKekVersion);
    std::vector<uint8_t> check =
        crypto::Seal(kek, std::string_view(kKekCheckText), check_ad);
    kek_value.append(AsStringView(check));
    batch.Put(kKekKey, kek_value);
    leveldb::WriteOptions wo;
    wo.sync = true;
    s = db->Write(wo, &batch);
    if (!s.ok()) return Fail(FromLevelDb(s, "initialising keystore"));
    return std::unique_ptr<Keystore>(
        new Keystore(std::move(log_env), std::move(db), std::move(kek),
                     kInitialKekVersion, cache_capacity));
  }
  if (!s.ok()) return Fail(FromLevelDb(s, "reading keystore format"));
  Result<uint32_t> version = codec::DecodeFormatVersion(format);
  if (!version) return Fail(version.error());
  if (*version != kKeystoreFormatVersion) {
    return Fail(Status::FailedPrecondition(
        "keystore format version " + std::to_string(*version) +
        " is not supported (this build reads version " +
        std::to_string(kKeystoreFormatVersion) + ")"));
  }
  std::string kek_value;
  s = db->Get(leveldb::ReadOptions(), kKekKey, &kek_value);
  if (!s.ok() || kek_value.size() < 4) {
    return Fail(Status::DataLoss("keystore has no key check"));
  }
  uint32_t kek_version = 0;
  for (int i = 0; i < 4; ++i) {
    kek_version = (kek_version << 8) | static_cast<uint8_t>(kek_value[i]);
  }
  auto checked = crypto::Open(kek, AsBytes(kek_value).subspan(4), check_ad);
  if (!checked) {
    return Fail(Status::FailedPrecondition(
        "the master key does not match this data directory"));
  }
  return std::unique_ptr<Keystore>(new Keystore(std::move(log_env),
                                                std::move(db), std::move(kek),
                                                kek_version, cache_capacity));
}

Keystore::~Keystore() = default;

Result<uint64_t> Keystore::PutKey(std::string_view subject_id, SharedKey dek) {
  CUSTOS_RETURN_IF_ERROR(sync_.failure());
  codec::StoredWrappedKey wrapped{
      kek_version_, crypto::WrapKey(kek_, kek_version_, subject_id, *dek)};
  Status written =
      FromLevelDb(db_->Put(leveldb::WriteOptions(), KeyKey(subject_id),
                           codec::EncodeWrappedKey(wrapped)),
                  "storing subject key");
  if (!written.ok()) {
    sync_.Fail(written);
    return Fail(written);
  }
  // Cached at once: the history's lookup, and every read soon after, would
  // otherwise unwrap it again.
  cache_.Put(std::string(subject_id), std::move(dek));
  return sync_.Wrote();
}

Status Keystore::DropUnusedKey(std::string_view subject_id) {
  cache_.Evict(std::string(subject_id));
  return FromLevelDb(db_->Delete(leveldb::WriteOptions(), KeyKey(subject_id)),
                     "dropping an unused subject key");
}

SharedKey Keystore::NewKey() {
  return std::make_shared<const crypto::SecretKey>(
      crypto::SecretKey::Generate(pool_));
}

Result<SharedKey> Keystore::GetKey(const std::string& subject_id) {
  return cache_.GetOrLoad(subject_id,
                          [this](const std::string& id) { return Unwrap(id); });
}

Result<SharedKey> Keystore::Unwrap(const std::string& subject_id) {
  std::string value;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), KeyKey(subject_id), &value);
  if (s.IsNotFound()) return std::shared_ptr<const crypto::SecretKey>();
  if (!s.ok()) return Fail(FromLevelDb(s, "reading subject key"));
  auto stored = codec::DecodeWrappedKey(value);
  if (!stored) return Fail(stored.error());
  auto dek = crypto::UnwrapKey(kek_, stored->kek_version, subject_id,
                               stored->wrapped, pool_);
  if (!dek) return Fail(Status::DataLoss("subject key failed to unwrap"));
  return std::make_shared<const crypto::SecretKey>(std::move(*dek));
}

Result<std::optional<std::vector<uint8_t>>> Keystore::WrappedBytes(
    std::string_view subject_id) {
  std::string value;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), KeyKey(subject_id), &value);
  if (s.IsNotFound()) return std::optional<std::vector<uint8_t>>();
  if (!s.ok()) return Fail(FromLevelDb(s, "reading subject key"));
  auto stored = codec::DecodeWrappedKey(value);
  if (!stored) return Fail(stored.error());
  return std::optional<std::vector<uint8_t>>(std::move(stored->wrapped));
}

Result<bool> Keystore::HasKey(std::string_view subject_id) {
  std::string value;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), KeyKey(subject_id), &value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return Fail(FromLevelDb(s, "reading subject key"));
  return true;
}

Status Keystore::DestroyKey(std::string_view subject_id,
                            const crypto::Digest& ledger_hash, Timestamp at,
                            std::string_view by) {
  leveldb::WriteBatch batch;
  batch.Delete(KeyKey(subject_id));
  batch.Delete(RetiringKeyKey(subject_id));  // Of a re-key not finished.
  batch.Put(LedgerKey(ledger_hash), codec::EncodeLedgerEntry(ToMicros(at), by));
  // Always synchronous: a shred reported done must survive a crash.
  leveldb::WriteOptions wo;
  wo.sync = true;
  Status status = FromLevelDb(db_->Write(wo, &batch), "destroying subject key");
  // Evicted even if the write failed: a shred that was asked for must not
  // leave a usable key in memory.
  cache_.Evict(std::string(subject_id));
  return status;
}

Status Keystore::PurgeKeys(const std::vector<std::string>& subject_ids) {
  // Compact only the key's range. One CompactRange is not enough: if the
  // wrapped key and its deletion were still in the same memtable, the flush
  // writes both into one table, and when that table lands on the deepest
  // level overlapping the range, LevelDB's manual compaction never takes it
  // as an input. Deleting the key again and compacting once more puts a
  // newer table above it, so the second compaction merges into it and
  // drops every version (tests/erasure_disk_test.cc shows the difference).
  // Every key that is gone is deleted again (a live key, e.g. of a shred
  // whose destruction failed, is left alone); the range is compacted
  // before and after.
  const auto [min_it, max_it] =
      std::minmax_element(subject_ids.begin(), subject_ids.end());
  const std::string first = KeyKey(*min_it), last = KeyKey(*max_it);
  const leveldb::Slice begin(first), end(last);
  db_->CompactRange(&begin, &end);
  leveldb::WriteBatch again;
  for (const std::string& subject_id : subject_ids) {
    const std::string key = KeyKey(subject_id);
    std::string value;
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), key, &value);
    if (s.IsNotFound()) {
      again.Delete(key);
    } else if (!s.ok()) {
      return FromLevelDb(s, "reading subject key");
    }
  }
  leveldb::WriteOptions wo;
  wo.sync = true;
  CUSTOS_RETURN_IF_ERROR(
      FromLevelDb(db_->Write(wo, &again), "destroying subject key"));
  db_->CompactRange(&begin, &end);
  return Status::Ok();
}

Result<bool> Keystore::InLedger(const crypto::Digest& ledger_hash) {
  std::string value;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), LedgerKey(ledger_hash), &value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return Fail(FromLevelDb(s, "reading erasure ledger"));
  return true;
}

void Keystore::CompactAll() {
  // A full-range compaction flushes the memtable (retiring the log file that
  // held the key) and rewrites every level, dropping deleted entries.
  db_->CompactRange(nullptr, nullptr);
}

Status Keystore::BeginRekey(std::string_view subject_id, SharedKey new_key) {
  CUSTOS_RETURN_IF_ERROR(sync_.failure());
  std::string current, retiring;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), KeyKey(subject_id), &current);
  if (s.IsNotFound()) return Status::NotFound("subject key not found");
  if (!s.ok()) return FromLevelDb(s, "reading subject key");
  s = db_->Get(leveldb::ReadOptions(), RetiringKeyKey(subject_id), &retiring);
  if (s.ok()) {
    return Status::FailedPrecondition("the subject is being re-keyed already");
  }
  if (!s.IsNotFound()) return FromLevelDb(s, "reading subject key");
  // The retiring key keeps its wrapped bytes as they are: the same value,
  // bound to the same subject id and KEK version, under another key.
  leveldb::WriteBatch batch;
  batch.Put(RetiringKeyKey(subject_id), current);
  codec::StoredWrappedKey wrapped{
      kek_version_, crypto::WrapKey(kek_, kek_version_, subject_id, *new_key)};
  batch.Put(KeyKey(subject_id), codec::EncodeWrappedKey(wrapped));
  leveldb::WriteOptions wo;
  wo.sync = true;
  Status status = FromLevelDb(db_->Write(wo, &batch), "re-keying subject");
  if (status.ok()) {
    cache_.Put(std::string(subject_id), std::move(new_key));
  } else {
    cache_.Evict(std::string(subject_id));
  }
  return status;
}

Result<SharedKey> Keystore::RetiringKey(const std::string& subject_id) {
  std::string value;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), RetiringKeyKey(subject_id), &value);
  if (s.IsNotFound()) return SharedKey();
  if (!s.ok()) return Fail(FromLevelDb(s, "reading subject key"));
  auto stored = codec::DecodeWrappedKey(value);
  if (!stored) return Fail(stored.error());
  auto dek = crypto::UnwrapKey(kek_, stored->kek_version, subject_id,
                               stored->wrapped, pool_);
  if (!dek) return Fail(Status::DataLoss("subject key failed to unwrap"));
  return std::make_shared<const crypto::SecretKey>(std::move(*dek));
}

Result<std::optional<std::vector<uint8_t>>> Keystore::RetiringWrappedBytes(
    std::string_view subject_id) {
  std::string value;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), RetiringKeyKey(subject_id), &value);
  if (s.IsNotFound()) return std::optional<std::vector<uint8_t>>();
  if (!s.ok()) return Fail(FromLevelDb(s, "reading subject key"));
  auto stored = codec::DecodeWrappedKey(value);
  if (!stored) return Fail(stored.error());
  return std::optional<std::vector<uint8_t>>(std::move(stored->wrapped));
}

Status Keystore::DestroyRetiringKey(std::string_view subject_id) {
  leveldb::WriteBatch batch;
  batch.Delete(RetiringKeyKey(subject_id));
  leveldb::WriteOptions wo;
  wo.sync = true;
  return FromLevelDb(db_->Write(wo, &batch), "destroying retiring key");
}

void Keystore::CompactRekeyed(const std::vector<std::string>& subject_ids) {
  const auto [min_it, max_it] =
      std::minmax_element(subject_ids.begin(), subject_ids.end());
  for (auto* make : {&KeyKey, &RetiringKeyKey}) {
    const std::string first = make(*min_it), last = make(*max_it);
    const leveldb::Slice begin(first), end(last);
    db_->CompactRange(&begin, &end);
  }
}

Status Keystore::RewriteRekeyed(const std::vector<std::string>& subject_ids) {
  leveldb::WriteBatch again;
  for (const std::string& subject_id : subject_ids) {
    const std::string key = KeyKey(subject_id);
    std::string value;
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), key, &value);
    if (s.ok()) {
      again.Put(key, value);
    } else if (s.IsNotFound()) {
      again.Delete(key);
    } else {
      return FromLevelDb(s, "reading subject key");
    }
    // A retiring key still present belongs to a re-key in progress.
    const std::string retiring = RetiringKeyKey(subject_id);
    s = db_->Get(leveldb::ReadOptions(), retiring, &value);
    if (s.IsNotFound()) {
      again.Delete(retiring);
    } else if (!s.ok()) {
      return FromLevelDb(s, "reading subject key");
    }
  }
  leveldb::WriteOptions wo;
  wo.sync = true;
  return FromLevelDb(db_->Write(wo, &again), "purging re-keyed keys");
}

}  // namespace custos
