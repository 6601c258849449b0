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

constexpr uint32_t kKeystoreFormatVersion = 5;
constexpr char kFormatKey[] = "m:format";
constexpr char kKeyringKey[] = "m:keyring";
constexpr char kKekRotationKey[] = "m:kek_rotation";
// Written with a keyring that replaces one holding a key destroyed since
// (a backup key, an old KEK, the keyring under the old master key);
// deleted once the replaced versions are compacted out of the files.
constexpr char kPurgeKey[] = "m:keyring_purge";
// The admin event of the last keystore change that carried one, until the
// access history holds it (PendingAdminEvent).
constexpr char kPendingAdminEventKey[] = "m:pending_admin_event";
// The last pending admin event that did not decode, set aside.
constexpr char kUnreadableAdminEventKey[] = "m:pending_admin_event_unreadable";

std::string KeyKey(std::string_view subject_id) {
  return "k:" + std::string(subject_id);
}
std::string LedgerKey(const crypto::Digest& hash) {
  return "l:" + std::string(AsStringView(hash));
}
std::string RetiringKeyKey(std::string_view subject_id) {
  return std::string("o:").append(subject_id);
}
constexpr std::string_view kShredIntentPrefix = "i:";
std::string ShredIntentKey(std::string_view subject_id) {
  return std::string(kShredIntentPrefix).append(subject_id);
}

// u64 BE at_micros || u8 witness size || witness || by.
std::string EncodeShredIntent(const Keystore::ShredIntent& intent) {
  std::string value;
  AppendBigEndian64(value, static_cast<uint64_t>(intent.at_micros));
  value.push_back(static_cast<char>(intent.witness.size()));
  value.append(intent.witness);
  value.append(intent.by);
  return value;
}

Result<Keystore::ShredIntent> DecodeShredIntent(std::string_view value) {
  if (value.size() < 9 ||
      value.size() < size_t{9} + static_cast<uint8_t>(value[8])) {
    return Fail(Status::DataLoss("corrupt shred intent"));
  }
  Keystore::ShredIntent intent;
  intent.at_micros = static_cast<int64_t>(ReadBigEndian64(value));
  const size_t witness = static_cast<uint8_t>(value[8]);
  intent.witness = std::string(value.substr(9, witness));
  intent.by = std::string(value.substr(9 + witness));
  return intent;
}

leveldb::WriteOptions Synced() {
  leveldb::WriteOptions wo;
  wo.sync = true;
  return wo;
}

}  // namespace

Keystore::Keystore(std::unique_ptr<LogSyncEnv> env,
                   std::unique_ptr<leveldb::DB> db, crypto::SecretKey ring_key,
                   Keyring keyring, size_t cache_capacity)
    : env_(std::move(env)),
      db_(std::move(db)),
      sync_([this] { return env_->SyncLogs(); }),
      ring_key_(std::move(ring_key)),
      keyring_(std::move(keyring)),
      cache_(cache_capacity) {}

Result<std::unique_ptr<Keystore>> Keystore::Open(
    const std::string& path, bool create_if_missing,
    const crypto::SecretKey& master, Timestamp now, leveldb::Env* env,
    size_t cache_capacity, TableReads table_reads) {
  auto log_env = std::make_unique<LogSyncEnv>(env, table_reads);
  auto opened =
      OpenLevelDb(path, create_if_missing, log_env.get(), LevelDbTuning(),
                  /*cache_blocks=*/false);
  if (!opened) {
    if (opened.error().code() == StatusCode::kInvalidArgument &&
        !create_if_missing) {
      return Fail(Status::NotFound("no keystore at " + path));
    }
    return Fail(opened.error());
  }
  std::unique_ptr<leveldb::DB> db = std::move(*opened);
  crypto::SecretKey ring_key = Keyring::RingKey(master);

  std::string format;
  leveldb::Status s = db->Get(leveldb::ReadOptions(), kFormatKey, &format);
  if (s.IsNotFound()) {
    // A keystore that holds a keyring but lost its format entry is not new:
    // writing a new keyring over it would leave every wrapped key under a
    // KEK that no longer exists (helper-131).
    std::string existing;
    leveldb::Status ring =
        db->Get(leveldb::ReadOptions(), kKeyringKey, &existing);
    if (ring.ok() || !ring.IsNotFound()) {
      return Fail(Status::DataLoss(
          "the keystore at " + path +
          " holds a keyring but no format entry: it is damaged, not new; "
          "restore it from a backup"));
    }
    // Nor is an empty one of a store that exists: its keys are gone
    // (helper-132: made new, every record would read as erased).
    if (!create_if_missing) {
      return Fail(Status::DataLoss("the keystore at " + path +
                                   " holds no keyring: its keys are lost; "
                                   "restore it from a backup"));
    }
    // A new keystore: its format and a new keyring, in one write.
    Keyring keyring = Keyring::Generate();
    leveldb::WriteBatch batch;
    batch.Put(kFormatKey,
              codec::EncodeFormatInfo(kKeystoreFormatVersion, ToMicros(now)));
    batch.Put(kKeyringKey, keyring.Seal(ring_key));
    s = db->Write(Synced(), &batch);
    if (!s.ok()) return Fail(FromLevelDb(s, "initialising keystore"));
    return std::unique_ptr<Keystore>(
        new Keystore(std::move(log_env), std::move(db), std::move(ring_key),
                     std::move(keyring), cache_capacity));
  }
  if (!s.ok()) return Fail(FromLevelDb(s, "reading keystore format"));
  Result<uint32_t> version = codec::DecodeFormatVersion(format);
  if (!version) return Fail(version.error());
  if (*version == 1) {
    return Fail(Status::FailedPrecondition(
        "keystore format version 1 (keys derived from the master key) is "
        "not supported: this build reads version 5 (a keyring and deadline "
        "keys) and does not migrate; create a new data directory"));
  }
  if (*version == 2) {
    return Fail(Status::FailedPrecondition(
        "keystore format version 2 (no deadline keys) is not supported: "
        "this build reads version 5 and does not migrate; create a new data "
        "directory"));
  }
  if (*version == 3) {
    return Fail(Status::FailedPrecondition(
        "keystore format version 3 (an erasure ledger without MACs) is not "
        "supported: this build reads version 5 and does not migrate; create "
        "a new data directory"));
  }
  if (*version == 4) {
    return Fail(Status::FailedPrecondition(
        "keystore format version 4 (credential ledger entries without MACs) "
        "is not supported: this build reads version 5 and does not migrate; "
        "create a new data directory"));
  }
  if (*version != kKeystoreFormatVersion) {
    return Fail(Status::FailedPrecondition(
        "keystore format version " + std::to_string(*version) +
        " is not supported (this build reads version " +
        std::to_string(kKeystoreFormatVersion) + ")"));
  }
  std::string sealed;
  s = db->Get(leveldb::ReadOptions(), kKeyringKey, &sealed);
  if (s.IsNotFound()) return Fail(Status::DataLoss("keystore has no keyring"));
  if (!s.ok()) return Fail(FromLevelDb(s, "reading keyring"));
  auto keyring = Keyring::Open(sealed, ring_key);
  if (!keyring) return Fail(keyring.error());
  std::string purge;
  s = db->Get(leveldb::ReadOptions(), kPurgeKey, &purge);
  if (!s.ok() && !s.IsNotFound()) {
    return Fail(FromLevelDb(s, "reading the keyring purge marker"));
  }
  const bool purge_pending = s.ok();
  auto keystore = std::unique_ptr<Keystore>(
      new Keystore(std::move(log_env), std::move(db), std::move(ring_key),
                   std::move(*keyring), cache_capacity));
  // Replaced keyrings a crash left in the files before their purge.
  if (purge_pending) keystore->PurgeOldKeyrings();
  return keystore;
}

Status Keystore::WriteKeyring(leveldb::WriteBatch& batch) {
  batch.Put(kKeyringKey, keyring_.Seal(ring_key_));
  return FromLevelDb(db_->Write(Synced(), &batch), "writing keyring");
}

void Keystore::PurgeOldKeyrings() {
  {
    std::lock_guard purge(purge_mu_);
    if (live_snapshots_ > 0) {
      // Whatever is compacted now, the snapshot keeps the old version: done
      // again at its release (a review, helper-120: a backup running while
      // a backup key expired left that key in the files for good).
      purge_pending_ = true;
      return;
    }
    purge_pending_ = false;
  }
  // As in PurgeKeys: compact, write the key again so a newer table sits
  // above whatever table still holds an old version, compact again.
  const leveldb::Slice key(kKeyringKey);
  db_->CompactRange(&key, &key);
  std::string current;
  if (db_->Get(leveldb::ReadOptions(), key, &current).ok()) {
    (void)db_->Put(Synced(), key, current);
  }
  db_->CompactRange(&key, &key);
  {
    // A snapshot taken meanwhile sees the current keyring only: the purge
    // holds. The marker goes unless another purge became pending.
    std::lock_guard purge(purge_mu_);
    if (purge_pending_) return;
  }
  (void)db_->Delete(Synced(), kPurgeKey);
}

void Keystore::SnapshotReleased() {
  {
    std::lock_guard purge(purge_mu_);
    if (--live_snapshots_ > 0 || !purge_pending_) return;
  }
  // As every other purge and every keyring write: under rotation_mu_, so
  // that the purge's rewrite of the keyring it read cannot land over a
  // newer one (a review, helper-122: a backup key expired meanwhile came
  // back as the current keyring). The releasing thread holds no lock, and
  // no snapshot is taken under rotation_mu_.
  std::lock_guard rotation(rotation_mu_);
  PurgeOldKeyrings();
}

Status Keystore::RotateMaster(const crypto::SecretKey& new_master,
                              std::string_view admin_event) {
  std::lock_guard rotation(rotation_mu_);
  {
    std::unique_lock keys(keys_mu_);
    crypto::SecretKey old = std::move(ring_key_);
    ring_key_ = Keyring::RingKey(new_master);
    leveldb::WriteBatch batch;
    batch.Put(kPurgeKey, "");
    if (!admin_event.empty()) {
      batch.Put(kPendingAdminEventKey, ToSlice(admin_event));
    }
    Status written = WriteKeyring(batch);
    if (!written.ok()) {
      // Unknown whether it reached the disk: keep the new key in memory
      // would be wrong if it did not; the old one if it did. Re-read.
      std::string sealed;
      if (db_->Get(leveldb::ReadOptions(), kKeyringKey, &sealed).ok() &&
          Keyring::Open(sealed, old).has_value()) {
        ring_key_ = std::move(old);
      }
      // What this process reads is not what the next Open will: a write
      // whose sync failed was in the log all the same, and LevelDB replays
      // it (helper-131: "failed", and the new key thrown away, left a store
      // only that key opens).
      return Status(
          written.code(),
          std::string(written.message()) +
              "; the new keyring may have reached the disk all the same: "
              "keep both the old and the new master key, and after a "
              "restart keep the one that opens the store");
    }
  }
  PurgeOldKeyrings();
  return Status::Ok();
}

std::vector<uint32_t> Keystore::KekVersions() const {
  std::shared_lock keys(keys_mu_);
  return keyring_.KekVersions();
}

Result<Keystore::KekRotation> Keystore::RotateKek(
    size_t batch_size, size_t max_keys, const WorkProgressFn& progress) {
  std::lock_guard rotation(rotation_mu_);
  KekRotation result;
  std::string cursor_value;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), kKekRotationKey, &cursor_value);
  std::string after;  // The last subject key rewrapped ("" = none yet).
  if (s.IsNotFound()) {
    // Start: a new KEK, current at once, durable with the cursor before any
    // key is written under it.
    std::unique_lock keys(keys_mu_);
    result.kek_version = keyring_.AddKek();
    std::string start;
    AppendBigEndian32(start, result.kek_version);
    leveldb::WriteBatch batch;
    batch.Put(kKekRotationKey, start);
    Status written = WriteKeyring(batch);
    if (!written.ok()) {
      // Whether it reached the disk is unknown; no key is wrapped under
      // the new KEK unless the keyring holding it is read back.
      std::string sealed;
      auto stored = db_->Get(leveldb::ReadOptions(), kKeyringKey, &sealed);
      auto reread = stored.ok() ? Keyring::Open(sealed, ring_key_)
                                : Result<Keyring>(Fail(written));
      if (!reread || reread->Kek(result.kek_version) == nullptr) {
        keyring_.AbandonKek(result.kek_version);
      }
      return Fail(written);
    }
  } else if (!s.ok()) {
    return Fail(FromLevelDb(s, "reading the KEK rotation cursor"));
  } else {
    if (cursor_value.size() < 4) {
      return Fail(Status::DataLoss("corrupt KEK rotation cursor"));
    }
    result.kek_version = ReadBigEndian32(cursor_value);
    after = cursor_value.substr(4);
    std::shared_lock keys(keys_mu_);
    if (keyring_.current_kek() != result.kek_version) {
      return Fail(Status::DataLoss(
          "the KEK rotation cursor names a version that is not current"));
    }
  }

  if (progress != nullptr) {
    progress(
        WorkProgress{"keys", "keys", 0, max_keys == SIZE_MAX ? 0 : max_keys});
  }
  while (result.rewrapped < max_keys) {
    // One batch: read and write under the exclusive lock, so no key is put
    // or destroyed in between (a destroyed key must not come back).
    std::unique_lock keys(keys_mu_);
    const crypto::SecretKey& target = *keyring_.Kek(result.kek_version);
    leveldb::WriteBatch batch;
    size_t examined = 0;
    bool more = false;
    Status failure;
    {
      std::unique_ptr<leveldb::Iterator> it(
          db_->NewIterator(leveldb::ReadOptions()));
      // Current keys ("k:"), then the retiring keys of re-keys in progress
      // ("o:"): both must be readable once the old KEK is gone.
      const std::string start = after.empty() ? std::string("k:") : after;
      for (it->Seek(start); it->Valid(); it->Next()) {
        if (!it->key().starts_with("k:") && !it->key().starts_with("o:")) {
          if (it->key().compare("o:") < 0) {
            it->Seek("o:");
            if (!it->Valid()) break;
            if (!it->key().starts_with("o:")) break;
          } else {
            break;
          }
        }
        if (it->key().ToString() == after) continue;
        if (examined == batch_size || result.rewrapped == max_keys) {
          more = true;
          break;
        }
        const std::string key = it->key().ToString();
        const std::string_view subject_id = std::string_view(key).substr(2);
        auto stored = codec::DecodeWrappedKey(
            std::string_view(it->value().data(), it->value().size()));
        if (!stored) {
          failure = stored.error();
          break;
        }
        ++examined;
        after = key;
        if (stored->kek_version == result.kek_version) continue;
        const crypto::SecretKey* old = keyring_.Kek(stored->kek_version);
        if (old == nullptr) {
          failure = Status::DataLoss(
              "a subject key is wrapped under a KEK "
              "version the keyring does not hold");
          break;
        }
        auto dek = crypto::UnwrapKey(*old, stored->kek_version, subject_id,
                                     stored->wrapped, pool_);
        if (!dek) {
          failure = Status::DataLoss("subject key failed to unwrap");
          break;
        }
        codec::StoredWrappedKey rewrapped{
            result.kek_version,
            crypto::WrapKey(target, result.kek_version, subject_id, *dek)};
        batch.Put(key, codec::EncodeWrappedKey(rewrapped));
        ++result.rewrapped;
      }
      if (failure.ok() && !it->status().ok()) {
        failure = FromLevelDb(it->status(), "scanning subject keys");
      }
    }
    CUSTOS_RETURN_IF_ERROR(failure);
    if (!more) {
      // Done: no key is left under an old KEK. The old KEKs go from the
      // keyring, and their wrapped forms from the files.
      keyring_.DropOldKeks();
      batch.Delete(kKekRotationKey);
      batch.Put(kPurgeKey, "");
      if (Status written = WriteKeyring(batch); !written.ok()) {
        // The old KEKs back in memory (a review, helper-120: dropped from
        // memory only, the keys of the last pass still wrapped under them
        // read as DataLoss, and the next keyring write made it for good).
        ReloadKeyring();
        return Fail(written);
      }
      keys.unlock();
      PurgeOldKeyrings();
      result.complete = true;
      if (progress != nullptr) {
        progress(WorkProgress{"keys", "keys", result.rewrapped,
                              max_keys == SIZE_MAX ? 0 : max_keys});
      }
      return result;
    }
    std::string cursor;
    AppendBigEndian32(cursor, result.kek_version);
    cursor += after;
    batch.Put(kKekRotationKey, cursor);
    CUSTOS_RETURN_IF_ERROR(
        FromLevelDb(db_->Write(Synced(), &batch), "rewrapping subject keys"));
    keys.unlock();
    if (progress != nullptr) {
      progress(WorkProgress{"keys", "keys", result.rewrapped,
                            max_keys == SIZE_MAX ? 0 : max_keys});
    }
  }
  return result;
}

Keystore::~Keystore() = default;

Result<uint64_t> Keystore::PutKey(std::string_view subject_id, SharedKey dek) {
  CUSTOS_RETURN_IF_ERROR(sync_.failure());
  std::shared_lock keys(keys_mu_);
  const uint32_t version = keyring_.current_kek();
  codec::StoredWrappedKey wrapped{
      version,
      crypto::WrapKey(*keyring_.Kek(version), version, subject_id, *dek)};
  Status written =
      FromLevelDb(db_->Put(leveldb::WriteOptions(), KeyKey(subject_id),
                           codec::EncodeWrappedKey(wrapped)),
                  "storing subject key");
  // The cache's lock is never taken under keys_mu_: GetKey takes them the
  // other way round (the cache loads under its lock).
  keys.unlock();
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
  std::shared_lock keys(keys_mu_);
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
  return UnwrapStored(KeyKey(subject_id), subject_id);
}

Result<SharedKey> Keystore::UnwrapStored(const std::string& key,
                                         std::string_view subject_id) {
  std::shared_lock keys(keys_mu_);
  auto stored = ReadWrapped(key);
  if (!stored) return Fail(stored.error());
  if (!*stored) return SharedKey();
  const crypto::SecretKey* kek = keyring_.Kek((*stored)->kek_version);
  if (kek == nullptr) {
    return Fail(Status::DataLoss(
        "a subject key is wrapped under a KEK the keyring does not hold"));
  }
  auto dek = crypto::UnwrapKey(*kek, (*stored)->kek_version, subject_id,
                               (*stored)->wrapped, pool_);
  if (!dek) return Fail(Status::DataLoss("subject key failed to unwrap"));
  return std::make_shared<const crypto::SecretKey>(std::move(*dek));
}

Result<std::optional<codec::StoredWrappedKey>> Keystore::ReadWrapped(
    const std::string& key) {
  std::string value;
  leveldb::Status s = db_->Get(leveldb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::optional<codec::StoredWrappedKey>();
  if (!s.ok()) return Fail(FromLevelDb(s, "reading subject key"));
  auto stored = codec::DecodeWrappedKey(value);
  if (!stored) return Fail(stored.error());
  return std::optional<codec::StoredWrappedKey>(std::move(*stored));
}

Result<std::optional<std::vector<uint8_t>>> Keystore::WrappedBytes(
    std::string_view subject_id) {
  return WrappedBytesAt(KeyKey(subject_id));
}

Result<std::optional<std::vector<uint8_t>>> Keystore::WrappedBytesAt(
    const std::string& key) {
  auto stored = ReadWrapped(key);
  if (!stored) return Fail(stored.error());
  if (!*stored) return std::optional<std::vector<uint8_t>>();
  return std::optional<std::vector<uint8_t>>(std::move((*stored)->wrapped));
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
                            std::string_view by,
                            std::optional<std::string_view> intent_witness) {
  if (intent_witness && intent_witness->size() > 255) {
    return Status::InvalidArgument("shred intent witness too long");
  }
  std::shared_lock keys(keys_mu_);
  leveldb::WriteBatch batch;
  batch.Delete(KeyKey(subject_id));
  batch.Delete(RetiringKeyKey(subject_id));  // Of a re-key not finished.
  // No time in the entry: the shred's instant is the erased_at of the
  // records it erased, so whoever can compute a person's ledger hash would
  // find their records by it. The entry says only that the person was
  // shredded (what a restore needs) and by whom.
  batch.Put(LedgerKey(ledger_hash), codec::EncodeLedgerEntry(0, by));
  // The intent is keyed by the random subject id, not the ledger hash, and
  // leaves the files with the key (DropShredIntents, PurgeKeys).
  if (intent_witness) {
    batch.Put(ShredIntentKey(subject_id),
              EncodeShredIntent({ToMicros(at), std::string(*intent_witness),
                                 std::string(by)}));
  }
  // Always synchronous: a shred reported done must survive a crash.
  leveldb::WriteOptions wo;
  wo.sync = true;
  Status status = FromLevelDb(db_->Write(wo, &batch), "destroying subject key");
  keys.unlock();  // Before the cache's lock (see PutKey).
  // Evicted even if the write failed: a shred that was asked for must not
  // leave a usable key in memory.
  cache_.Evict(std::string(subject_id));
  return status;
}

Result<std::vector<std::pair<std::string, Keystore::ShredIntent>>>
Keystore::ShredIntents() {
  std::vector<std::pair<std::string, ShredIntent>> intents;
  std::unique_ptr<leveldb::Iterator> it(
      db_->NewIterator(leveldb::ReadOptions()));
  const leveldb::Slice prefix = ToSlice(kShredIntentPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    auto intent = DecodeShredIntent(ToView(it->value()));
    if (!intent) return Fail(intent.error());
    intents.emplace_back(ToView(it->key()).substr(kShredIntentPrefix.size()),
                         std::move(*intent));
  }
  CUSTOS_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading shred intents"));
  return intents;
}

Status Keystore::DropShredIntents(const std::vector<std::string>& subject_ids) {
  leveldb::WriteBatch batch;
  for (const std::string& subject_id : subject_ids) {
    batch.Delete(ShredIntentKey(subject_id));
  }
  return FromLevelDb(db_->Write(leveldb::WriteOptions(), &batch),
                     "dropping shred intents");
}

std::string Keystore::BucketKeyName(uint64_t bucket) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "~b";
  for (int shift = 60; shift >= 0; shift -= 4) {
    name.push_back(kHex[(bucket >> shift) & 0xf]);
  }
  return name;
}

Result<std::vector<uint64_t>> Keystore::BucketsUpTo(uint64_t last) {
  const std::string prefix = KeyKey("~b");
  const std::string end = KeyKey(BucketKeyName(last));
  std::vector<uint64_t> buckets;
  std::unique_ptr<leveldb::Iterator> it(
      db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) &&
                         it->key().compare(end) <= 0;
       it->Next()) {
    const std::string_view hex = ToView(it->key()).substr(prefix.size());
    if (hex.size() != 16) {
      return Fail(Status::DataLoss("corrupt deadline bucket key name"));
    }
    uint64_t bucket = 0;
    for (char c : hex) {
      const int digit = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                               : -1;
      if (digit < 0) {
        return Fail(Status::DataLoss("corrupt deadline bucket key name"));
      }
      bucket = bucket << 4 | static_cast<uint64_t>(digit);
    }
    buckets.push_back(bucket);
  }
  CUSTOS_RETURN_IF_ERROR(
      FromLevelDb(it->status(), "reading deadline bucket keys"));
  return buckets;
}

Status Keystore::DestroyBucketKey(uint64_t bucket) {
  const std::string name = BucketKeyName(bucket);
  leveldb::WriteBatch batch;
  batch.Delete(KeyKey(name));
  batch.Put(std::string(kLedgerBucketPrefix).append(name), "");
  std::shared_lock keys(keys_mu_);
  Status status = FromLevelDb(db_->Write(Synced(), &batch),
                              "destroying a deadline bucket key");
  keys.unlock();  // Before the cache's lock (see PutKey).
  cache_.Evict(name);
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
  // before and after. The same for the shred intents ("i:"), a range of
  // their own: an intent still there (its records side not yet known
  // durable) is left alone too.
  const auto [min_it, max_it] =
      std::minmax_element(subject_ids.begin(), subject_ids.end());
  using MakeKey = std::string (*)(std::string_view);
  constexpr MakeKey kRanges[] = {&KeyKey, &ShredIntentKey};
  for (MakeKey make : kRanges) {
    const std::string first = make(*min_it), last = make(*max_it);
    const leveldb::Slice begin(first), end(last);
    db_->CompactRange(&begin, &end);
  }
  {
    // Exclusive from the lookups to the write: a key's destruction (which
    // writes a shred intent under keys_mu_) must not land between them, or
    // the delete below would remove an intent written after its lookup
    // (a reported shred whose records side a power loss took could then
    // not be finished by Open).
    std::unique_lock keys(keys_mu_);
    leveldb::WriteBatch again;
    for (const std::string& subject_id : subject_ids) {
      for (MakeKey make : kRanges) {
        const std::string key = make(subject_id);
        std::string value;
        leveldb::Status s = db_->Get(leveldb::ReadOptions(), key, &value);
        if (s.IsNotFound()) {
          again.Delete(key);
        } else if (!s.ok()) {
          return FromLevelDb(s, "reading subject key");
        }
      }
    }
    CUSTOS_RETURN_IF_ERROR(
        FromLevelDb(db_->Write(Synced(), &again), "destroying subject key"));
  }
  for (MakeKey make : kRanges) {
    const std::string first = make(*min_it), last = make(*max_it);
    const leveldb::Slice begin(first), end(last);
    db_->CompactRange(&begin, &end);
  }
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

Status Keystore::CompactAll() {
  // A full-range compaction flushes the memtable (retiring the log file that
  // held the key) and rewrites every level, dropping deleted entries. Two
  // keys sorting before and after every key (the keystore's are "k:", "l:"
  // and "m:"), written first, make the flushed table overlap every level,
  // so no table on the deepest level is left out of the merge with a
  // deletion in it.
  leveldb::WriteBatch span;
  span.Put("!", "");
  span.Put("~", "");
  CUSTOS_RETURN_IF_ERROR(FromLevelDb(db_->Write(leveldb::WriteOptions(), &span),
                                     "compacting the keystore"));
  db_->CompactRange(nullptr, nullptr);
  leveldb::WriteBatch end;
  end.Delete("!");
  end.Delete("~");
  return FromLevelDb(db_->Write(leveldb::WriteOptions(), &end),
                     "compacting the keystore");
}

Status Keystore::BeginRekey(std::string_view subject_id, SharedKey new_key) {
  CUSTOS_RETURN_IF_ERROR(sync_.failure());
  std::shared_lock keys(keys_mu_);
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
  const uint32_t version = keyring_.current_kek();
  codec::StoredWrappedKey wrapped{
      version,
      crypto::WrapKey(*keyring_.Kek(version), version, subject_id, *new_key)};
  batch.Put(KeyKey(subject_id), codec::EncodeWrappedKey(wrapped));
  leveldb::WriteOptions wo;
  wo.sync = true;
  Status status = FromLevelDb(db_->Write(wo, &batch), "re-keying subject");
  keys.unlock();  // Before the cache's lock (see PutKey).
  if (status.ok()) {
    cache_.Put(std::string(subject_id), std::move(new_key));
  } else {
    cache_.Evict(std::string(subject_id));
  }
  return status;
}

Result<SharedKey> Keystore::RetiringKey(const std::string& subject_id) {
  return UnwrapStored(RetiringKeyKey(subject_id), subject_id);
}

Result<std::optional<std::vector<uint8_t>>> Keystore::RetiringWrappedBytes(
    std::string_view subject_id) {
  return WrappedBytesAt(RetiringKeyKey(subject_id));
}

Status Keystore::DestroyRetiringKey(std::string_view subject_id) {
  std::shared_lock keys(keys_mu_);
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
  // Read and written back under the key lock: a KEK rotation batch cannot
  // rewrap a key in between (it would be written back under the old KEK).
  std::shared_lock keys(keys_mu_);
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

// ---- Backups ----------------------------------------------------------------

namespace custos {

Result<crypto::SecretKey> Keystore::AddBackupKey(const std::string& backup_id,
                                                 Timestamp now) {
  std::lock_guard rotation(rotation_mu_);
  std::unique_lock keys(keys_mu_);
  crypto::SecretKey key = crypto::SecretKey::Generate();
  auto copy = crypto::SecretKey::FromBytes(key.bytes());
  if (!copy) return Fail(copy.error());
  keyring_.AddBackupKey(backup_id, std::move(key), now);
  leveldb::WriteBatch batch;
  Status written = WriteKeyring(batch);
  if (!written.ok()) {
    // (If the stored keyring cannot be read, the key stays in memory: a key
    // no backup uses, destroyed on schedule like the others.)
    ReloadKeyring();
    return Fail(written);
  }
  return std::move(*copy);
}

void Keystore::ReloadKeyring() {
  std::string sealed;
  if (db_->Get(leveldb::ReadOptions(), kKeyringKey, &sealed).ok()) {
    if (auto stored = Keyring::Open(sealed, ring_key_)) {
      // Not the purpose keys: their references must stay valid.
      keyring_.TakeKeksAndBackupKeys(std::move(*stored));
    }
  }
}

Keystore::Snapshot Keystore::TakeSnapshot(
    const std::function<void()>& at_same_instant) {
  std::unique_lock keys(keys_mu_);
  {
    std::lock_guard purge(purge_mu_);
    ++live_snapshots_;
  }
  Snapshot snapshot{
      std::shared_ptr<void>(this, [](Keystore* k) { k->SnapshotReleased(); }),
      DbSnapshot(*db_), keyring_.Seal(ring_key_, /*with_backup_keys=*/false)};
  at_same_instant();
  return snapshot;
}

Result<std::vector<std::string>> Keystore::ExpireBackupKeys(
    Timestamp cutoff,
    const std::function<std::string(const std::vector<std::string>&)>&
        admin_event) {
  std::lock_guard rotation(rotation_mu_);
  std::vector<std::string> dropped;
  {
    std::unique_lock keys(keys_mu_);
    dropped = keyring_.DropBackupKeysUpTo(cutoff);
    if (dropped.empty()) return dropped;
    leveldb::WriteBatch batch;
    batch.Put(kPurgeKey, "");
    if (admin_event) batch.Put(kPendingAdminEventKey, admin_event(dropped));
    Status written = WriteKeyring(batch);
    if (!written.ok()) {
      // So that the next call finds the keys again and retries (a review,
      // helper-99: they stayed dropped from memory only, on disk until the
      // next keyring write).
      ReloadKeyring();
      return Fail(written);
    }
  }
  // A crash before the purge leaves the marker: Open purges.
  PurgeOldKeyrings();
  return dropped;
}

Result<std::optional<std::string>> Keystore::PendingAdminEvent() const {
  std::string value;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), kPendingAdminEventKey, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return Fail(FromLevelDb(s, "reading pending admin event"));
  return std::optional<std::string>(std::move(value));
}

Status Keystore::DropPendingAdminEvent(std::string_view admin_event) {
  // Under rotation_mu_, as every write that puts one: a change written
  // meanwhile carried its own event, which stays.
  std::lock_guard rotation(rotation_mu_);
  auto pending = PendingAdminEvent();
  if (!pending) return pending.error();
  if (!*pending || **pending != admin_event) return Status::Ok();
  return FromLevelDb(
      db_->Delete(leveldb::WriteOptions(), kPendingAdminEventKey),
      "dropping pending admin event");
}

Status Keystore::SetAsidePendingAdminEvent(std::string_view admin_event) {
  std::lock_guard rotation(rotation_mu_);
  auto pending = PendingAdminEvent();
  if (!pending) return pending.error();
  if (!*pending || **pending != admin_event) return Status::Ok();
  leveldb::WriteBatch batch;
  batch.Put(kUnreadableAdminEventKey, ToSlice(admin_event));
  batch.Delete(kPendingAdminEventKey);
  return FromLevelDb(db_->Write(Synced(), &batch),
                     "setting aside an unreadable admin event");
}

std::vector<Keystore::HeldBackupKey> Keystore::BackupKeys() const {
  std::shared_lock keys(keys_mu_);
  std::vector<HeldBackupKey> out;
  for (const auto& info : keyring_.BackupKeys()) {
    out.push_back({info, std::move(*crypto::SecretKey::FromBytes(
                             keyring_.BackupKey(info.backup_id)->bytes()))});
  }
  return out;
}

std::vector<uint8_t> Keystore::SealUnderMasterKey(
    std::string_view plaintext, std::span<const uint8_t> ad) const {
  std::shared_lock keys(keys_mu_);
  return crypto::Seal(ring_key_, plaintext, ad);
}

// ---- The erasure ledger -----------------------------------------------------

crypto::Digest Keystore::LedgerShredHash(const crypto::SecretKey& ledger_key,
                                         const crypto::Digest& blind_index,
                                         std::string_view subject_id) {
  std::string input(AsStringView(blind_index));
  input.append(subject_id);
  return crypto::KeyedHash(ledger_key, AsBytes(input));
}

std::string Keystore::LedgerErasureKey(const crypto::SecretKey& ledger_key,
                                       uint64_t record_id) {
  std::string id;
  AppendBigEndian64(id, record_id);
  return std::string(kLedgerErasurePrefix)
      .append(AsStringView(crypto::KeyedHash(ledger_key, AsBytes(id))));
}

namespace {

constexpr std::string_view kLedgerErasureMacTag{"custos-ledger-erasure-v1\0",
                                                25};

crypto::Digest LedgerErasureMac(const crypto::SecretKey& ledger_key,
                                std::string_view key,
                                const Keystore::LedgerErasure& erasure) {
  return crypto::KeyedHasher(ledger_key)
      .Update(kLedgerErasureMacTag)
      .UpdateBigEndian32(static_cast<uint32_t>(key.size()))
      .Update(key)
      .UpdateBigEndian64(static_cast<uint64_t>(erasure.erased_at))
      .UpdateBigEndian64(static_cast<uint64_t>(erasure.written_at))
      .Final();
}

}  // namespace

std::string Keystore::LedgerErasureValue(const crypto::SecretKey& ledger_key,
                                         std::string_view key,
                                         const LedgerErasure& erasure) {
  std::string value;
  AppendBigEndian64(value, static_cast<uint64_t>(erasure.erased_at));
  AppendBigEndian64(value, static_cast<uint64_t>(erasure.written_at));
  value.append(AsStringView(LedgerErasureMac(ledger_key, key, erasure)));
  return value;
}

Result<Keystore::LedgerErasure> Keystore::LedgerErasureTime(
    const crypto::SecretKey& ledger_key, std::string_view key,
    std::string_view value) {
  if (value.size() != 16 + crypto::kDigestSize) {
    return Fail(Status::DataLoss("corrupt ledger entry"));
  }
  LedgerErasure erasure;
  erasure.erased_at = static_cast<int64_t>(ReadBigEndian64(value));
  erasure.written_at = static_cast<int64_t>(ReadBigEndian64(value.substr(8)));
  if (!crypto::ConstantTimeEquals(LedgerErasureMac(ledger_key, key, erasure),
                                  AsBytes(value.substr(16)))) {
    return Fail(Status::DataLoss("corrupt ledger entry"));
  }
  return erasure;
}

Result<std::optional<Keystore::LedgerErasure>> Keystore::LedgerErasedAt(
    uint64_t record_id) {
  const std::string key = LedgerErasureKey(keyring_.ledger(), record_id);
  std::string value;
  leveldb::Status s = db_->Get(leveldb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::optional<LedgerErasure>();
  if (!s.ok()) return Fail(FromLevelDb(s, "reading the erasure ledger"));
  auto erasure = LedgerErasureTime(keyring_.ledger(), key, value);
  if (!erasure) return Fail(erasure.error());
  return std::optional<LedgerErasure>(*erasure);
}

Status Keystore::LedgerRecordErasures(
    const std::vector<std::pair<uint64_t, int64_t>>& erased, bool sync,
    int64_t written_at) {
  if (erased.empty()) return Status::Ok();
  leveldb::WriteBatch batch;
  for (const auto& [record_id, at_micros] : erased) {
    const std::string key = LedgerErasureKey(keyring_.ledger(), record_id);
    batch.Put(key, LedgerErasureValue(keyring_.ledger(), key,
                                      {at_micros, written_at}));
  }
  leveldb::WriteOptions wo;
  wo.sync = sync;
  return FromLevelDb(db_->Write(wo, &batch), "writing the erasure ledger");
}

namespace {

constexpr std::string_view kLedgerPrunedMacTag{"custos-ledger-pruned-v1\0", 24};

crypto::Digest LedgerPrunedMac(const crypto::SecretKey& ledger_key,
                               std::string_view key, std::string_view seqs) {
  return crypto::NamedMac(ledger_key, kLedgerPrunedMacTag, key, seqs);
}

}  // namespace

std::string Keystore::LedgerPruneValue(const crypto::SecretKey& ledger_key,
                                       std::string_view key,
                                       const std::vector<uint64_t>& seqs) {
  std::string value;
  for (uint64_t seq : seqs) AppendBigEndian64(value, seq);
  value.append(AsStringView(LedgerPrunedMac(ledger_key, key, value)));
  return value;
}

Result<std::vector<uint64_t>> Keystore::LedgerPrunedSeqs(
    const crypto::SecretKey* ledger_key, std::string_view key,
    std::string_view value) {
  if (value.size() < 8 + crypto::kDigestSize ||
      (value.size() - crypto::kDigestSize) % 8 != 0) {
    return Fail(Status::DataLoss("corrupt ledger entry"));
  }
  const std::string_view seqs =
      value.substr(0, value.size() - crypto::kDigestSize);
  if (ledger_key != nullptr &&
      !crypto::ConstantTimeEquals(
          LedgerPrunedMac(*ledger_key, key, seqs),
          AsBytes(value.substr(value.size() - crypto::kDigestSize)))) {
    return Fail(Status::DataLoss("corrupt ledger entry"));
  }
  std::vector<uint64_t> out;
  for (size_t i = 0; i < seqs.size(); i += 8) {
    out.push_back(ReadBigEndian64(seqs.substr(i)));
  }
  return out;
}

Status Keystore::LedgerPrunedEvents(const std::vector<uint64_t>& seqs,
                                    bool sync) {
  if (seqs.empty()) return Status::Ok();
  std::string key(kLedgerPrunePrefix);
  AppendBigEndian64(key, seqs.front());
  const std::string value = LedgerPruneValue(keyring_.ledger(), key, seqs);
  leveldb::WriteOptions wo;
  wo.sync = sync;
  return FromLevelDb(db_->Put(wo, key, value), "writing the erasure ledger");
}

namespace {

constexpr std::string_view kLedgerCredentialMacTag{
    "custos-ledger-credential-v1\0", 28};

crypto::Digest LedgerCredentialMac(const crypto::SecretKey& ledger_key,
                                   std::string_view key,
                                   std::string_view body) {
  return crypto::NamedMac(ledger_key, kLedgerCredentialMacTag, key, body);
}

}  // namespace

std::string Keystore::LedgerCredentialValue(const crypto::SecretKey& ledger_key,
                                            std::string_view key, int64_t at,
                                            std::string_view new_hash) {
  std::string value;
  AppendBigEndian64(value, static_cast<uint64_t>(at));
  value.append(new_hash);
  value.append(AsStringView(LedgerCredentialMac(ledger_key, key, value)));
  return value;
}

Result<Keystore::CredentialChange> Keystore::LedgerCredentialChange(
    const crypto::SecretKey* ledger_key, std::string_view key,
    std::string_view value) {
  // The time and the MAC, with or without a credential hash.
  if (value.size() != 8 + crypto::kDigestSize &&
      value.size() != 8 + 2 * crypto::kDigestSize) {
    return Fail(Status::DataLoss("corrupt ledger entry"));
  }
  const std::string_view body =
      value.substr(0, value.size() - crypto::kDigestSize);
  if (ledger_key != nullptr &&
      !crypto::ConstantTimeEquals(LedgerCredentialMac(*ledger_key, key, body),
                                  AsBytes(value.substr(body.size())))) {
    return Fail(Status::DataLoss("corrupt ledger entry"));
  }
  CredentialChange change;
  change.at = static_cast<int64_t>(ReadBigEndian64(body));
  change.new_hash = std::string(body.substr(8));
  return change;
}

Result<std::optional<std::string>> Keystore::LedgerCredential(
    std::string_view principal_id, std::string_view new_hash, Timestamp at) {
  const std::string key =
      std::string(kLedgerCredentialPrefix).append(principal_id);
  std::optional<std::string> previous;
  std::string old;
  leveldb::Status read = db_->Get(leveldb::ReadOptions(), key, &old);
  if (read.ok()) {
    previous = std::move(old);
  } else if (!read.IsNotFound()) {
    return Fail(FromLevelDb(read, "reading the erasure ledger"));
  }
  const std::string value =
      LedgerCredentialValue(keyring_.ledger(), key, ToMicros(at), new_hash);
  CUSTOS_RETURN_IF_ERROR(FromLevelDb(db_->Put(Synced(), key, value),
                                     "writing the erasure ledger"));
  return previous;
}

Status Keystore::UndoLedgerCredential(
    std::string_view principal_id, const std::optional<std::string>& previous) {
  const std::string key =
      std::string(kLedgerCredentialPrefix).append(principal_id);
  return FromLevelDb(previous ? db_->Put(Synced(), key, *previous)
                              : db_->Delete(Synced(), key),
                     "writing the erasure ledger");
}

Status Keystore::ScanLedger(
    const std::function<void(std::string_view key, std::string_view value)>&
        fn) {
  std::unique_ptr<leveldb::Iterator> it(
      db_->NewIterator(leveldb::ReadOptions()));
  // "l:", "le:", "lp:", "lc:" and "lb:" are the only keys starting with 'l'.
  for (it->Seek("l"); it->Valid() && it->key().starts_with("l"); it->Next()) {
    fn(ToView(it->key()), ToView(it->value()));
  }
  return FromLevelDb(it->status(), "reading the erasure ledger");
}

}  // namespace custos
