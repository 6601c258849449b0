// Internal to storage/: the keystore, a separate small LevelDB holding the
// keyring (storage/keyring.h: the random keys the master key protects), the
// subject data keys wrapped under a key-encryption key (KEK) of the
// keyring, and the erasure ledger. Kept apart from the records so that
// destroyed keys can be compacted away without rewriting records.
//
// Key layout (docs/storage.md):
//   "m:format"         FormatInfo (version 3; versions 1 and 2 are refused)
//   "m:keyring"        Keyring, each key wrapped under the master's
//                      keyring key
//   "m:kek_rotation"   u32 BE target KEK version || last subject id
//                      rewrapped: a KEK rotation in progress
//   "k:" subject id    WrappedKey
//   "k:~b" 16 hex      WrappedKey: the key of a deadline bucket
//                      (storage/deadline_keys.h), bound to its name
//   "l:" ledger hash   LedgerEntry
//   "o:" subject id    WrappedKey: the retiring key of a subject being
//                      re-keyed (storage/rekeyer.h), until it is destroyed
//   "i:" subject id    ShredIntent: a shred whose records-side write may not
//                      be durable yet (docs/storage.md, "Shredding")
//   "le:" record hash  u64 BE erased-at µs, u64 BE written-at µs, MAC: an
//                      erased record (the ledger; LedgerErasureValue)
//   "lp:" u64 BE seq   u64 BE seqs, MAC: history events pruned (the ledger;
//                      LedgerPruneValue)
//
// Unwrapped keys are cached (KeyCache): GetKey unwraps a key once, and
// DestroyKey evicts it before returning, so no read can use a destroyed key.
//
// Durability: PutKey is not synced by itself; WaitDurable(ticket) makes it
// durable, sharing one fsync among concurrent callers (GroupSync). A record
// must never be durable before the key it is sealed under, so a new
// subject's key is made durable before its record is written (records.cc),
// and the records database syncs the keystore's logs before its own
// (log_env(), LogSyncEnv::SyncBefore). DestroyKey is always synchronous.
// Physical removal of a destroyed key from the keystore's files is PurgeKeys',
// called by the bounded erasure compaction (storage/erasure.h), never on a
// shred's path.
//
// Rotation (docs/crypto.md, "Rotation"): RotateMaster rewraps the keyring
// only; RotateKek adds a KEK version and rewraps every data key under it in
// bounded, durable, resumable batches, then destroys the old KEKs. After
// either, the replaced keys' old wrapped forms are compacted out of the
// keystore's files.
//
// Thread safety: thread-safe. Key writes take keys_mu_ shared; a rotation's
// steps take it exclusively, so no key is written or destroyed between a
// rotation batch's read and its write.

#ifndef CUSTOS_STORAGE_KEYSTORE_H_
#define CUSTOS_STORAGE_KEYSTORE_H_

#include <leveldb/db.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/keyed_hash.h"
#include "crypto/secret_key.h"
#include "storage/codec.h"
#include "storage/db_snapshot.h"
#include "storage/key_cache.h"
#include "storage/keyring.h"
#include "storage/log_sync_env.h"
#include "storage/types.h"

namespace custos {

class Keystore {
 public:
  // Opens or creates the keystore at `path` (a new one gets a new random
  // keyring). FailedPrecondition when the master key does not open the
  // keyring, or the format version is not 2.
  // NotFound when there is none and !create_if_missing. `env` REQUIRES:
  // non-null, outlives the Keystore. `cache_capacity` REQUIRES: >= 1.
  // `table_reads`: Options::table_reads.
  static Result<std::unique_ptr<Keystore>> Open(
      const std::string& path, bool create_if_missing,
      const crypto::SecretKey& master, Timestamp now, leveldb::Env* env,
      size_t cache_capacity, TableReads table_reads = kDefaultTableReads);
  ~Keystore();

  // A new random data key, in this keystore's key pool (guarded slots, see
  // crypto/secret_key.h), not yet stored.
  SharedKey NewKey();

  // Wraps and stores `dek` for `subject_id` (not synced: see above), and
  // caches it. Returns the write's place for WaitDurable.
  Result<uint64_t> PutKey(std::string_view subject_id, SharedKey dek);
  // Returns once the PutKey that returned `ticket` (and every earlier one)
  // is durable.
  Status WaitDurable(uint64_t ticket) { return sync_.WaitDurable(ticket); }
  // Removes a key PutKey stored that no record will use (not a shred: no
  // ledger entry, not synced).
  Status DropUnusedKey(std::string_view subject_id);

  // The Env of the keystore's LevelDB, whose logs the records database
  // syncs first.
  LogSyncEnv& log_env() { return *env_; }

  // The unwrapped key (cached), or nullptr when the subject has none (never
  // had one, or it was destroyed). DataLoss if the wrapped key fails to
  // unwrap.
  Result<SharedKey> GetKey(const std::string& subject_id);

  // The stored wrapped key bytes, or nullopt when there are none.
  Result<std::optional<std::vector<uint8_t>>> WrappedBytes(
      std::string_view subject_id);

  // True if a wrapped key is stored for the subject.
  Result<bool> HasKey(std::string_view subject_id);

  // What a shred leaves in the keystore, with the key's destruction, until
  // its records-side write is known to be durable: enough for
  // Shredder::Recover to write that side again should a power loss have
  // lost it. Names no person: the subject id is random, `by` a principal.
  struct ShredIntent {
    int64_t at_micros = 0;  // The shred's time.
    std::string witness;    // Erasure::WitnessKey of the wrapped key, or "".
    std::string by;         // The principal id who asked.
  };

  // In one synchronous write: deletes the subject's wrapped key (and a
  // retiring one) and records `ledger_hash` in the erasure ledger, and,
  // when `intent_witness` is given, puts the shred intent "i:"<subject>
  // {`at`, `intent_witness`, `by`}; then evicts the cached key. Costs
  // the same whatever the keystore's size: the wrapped key's bytes leave
  // the files later, by PurgeKeys.
  Status DestroyKey(
      std::string_view subject_id, const crypto::Digest& ledger_hash,
      Timestamp at, std::string_view by,
      std::optional<std::string_view> intent_witness = std::nullopt);
  // Every shred intent, by subject id, in key order. DataLoss if one is
  // malformed.
  Result<std::vector<std::pair<std::string, ShredIntent>>> ShredIntents();
  // Deletes the subjects' shred intents in one write, not synced: an intent
  // that survives a crash is dropped again by the next Shredder::Recover.
  // Their bytes leave the files with the subject's key, by PurgeKeys.
  Status DropShredIntents(const std::vector<std::string>& subject_ids);

  // ---- Deadline bucket keys (docs/crypto.md, "Deadline keys") -----------
  // Stored and cached as a subject's key named BucketKeyName(bucket):
  // GetKey, PutKey, WrappedBytes and PurgeKeys take that name.

  // "~b" + 16 lowercase hex digits of `bucket`: never a subject id (hex).
  static std::string BucketKeyName(uint64_t bucket);
  // The buckets whose keys are stored, ascending, up to `last` included.
  Result<std::vector<uint64_t>> BucketsUpTo(uint64_t last);
  // Deletes the key of `bucket` and enters its destruction in the ledger
  // ("lb:" || BucketKeyName), in one synchronous write, then evicts it: a
  // restore of an older backup leaves the key out (the erasures of the
  // bucket's records written down one by one are in the ledger too, but a
  // bucket erased by key before its records were rewritten is named only
  // here).
  Status DestroyBucketKey(uint64_t bucket);

  // Compacts the key range spanned by `subject_ids` (destroyed keys), so
  // their deleted wrapped keys and dropped shred intents leave the
  // keystore's files. Cost grows with the range's share of the keystore.
  // REQUIRES: non-empty.
  Status PurgeKeys(const std::vector<std::string>& subject_ids);

  Result<bool> InLedger(const crypto::Digest& ledger_hash);

  // Compacts every key range: after it returns, deleted keys (and their
  // deletions) are absent from the keystore's tables; the keystore's
  // MANIFEST names the old tables' boundary keys until the next open.
  Status CompactAll();

  // ---- Re-keying a subject (storage/rekeyer.h, docs/crypto.md) ----------
  // While a subject is re-keyed its wrapped key has two slots: "k:" holds
  // the current key, which every new seal uses, and "o:" the retiring one,
  // which opens what is not re-sealed yet.

  // In one synchronous write: the wrapped key under "k:" moves to "o:" and
  // `new_key` is wrapped under "k:"; then `new_key` replaces the cached
  // key, so no seal after this returns uses the retiring key.
  // NotFound if the subject has no key; FailedPrecondition if it has a
  // retiring key already.
  Status BeginRekey(std::string_view subject_id, SharedKey new_key);
  // The retiring key (not cached), or nullptr when there is none.
  // DataLoss if it fails to unwrap.
  Result<SharedKey> RetiringKey(const std::string& subject_id);
  // The stored wrapped bytes of the retiring key, or nullopt.
  Result<std::optional<std::vector<uint8_t>>> RetiringWrappedBytes(
      std::string_view subject_id);
  // Deletes the retiring key, synchronously. (DestroyKey deletes it too.)
  Status DestroyRetiringKey(std::string_view subject_id);
  // Physical removal of re-keyed subjects' old keys (the overwritten "k:"
  // versions and the deleted "o:" entries), as PurgeKeys does for destroyed
  // keys: CompactRekeyed, then RewriteRekeyed, then CompactRekeyed again.
  // REQUIRES: `subject_ids` non-empty.
  void CompactRekeyed(const std::vector<std::string>& subject_ids);
  // Writes each subject's current "k:" value again (deletes it again if
  // gone) and deletes "o:" again if gone, synchronously, so the second
  // compaction merges into any table where an old and a new version sat
  // together. REQUIRES: no concurrent write of these subjects' keys (the caller
  // holds the records write lock, under which keys are destroyed and re-keyed).
  Status RewriteRekeyed(const std::vector<std::string>& subject_ids);

  size_t CachedKeyCount() const { return cache_.size(); }
  KeyCache::Counts CacheCounts() const { return cache_.counts(); }
  void ClearCache() { cache_.Clear(); }

  // The keyring. Its purpose keys (blind index, audit, credential, ledger)
  // never change while the keystore is open; its KEKs are the keystore's.
  const Keyring& keyring() const { return keyring_; }

  // Rewraps the keyring under `new_master`'s keyring key in one synchronous
  // write, then compacts the old keyring out of the keystore's files: the
  // old master key opens nothing afterwards. `admin_event` (an encoded
  // codec::StoredAdminEvent; none when empty) goes in the same write
  // (PendingAdminEvent).
  Status RotateMaster(const crypto::SecretKey& new_master,
                      std::string_view admin_event = {});

  struct KekRotation {
    uint32_t kek_version = 0;  // The KEK every data key is rewrapped under.
    size_t rewrapped = 0;      // Data keys rewrapped by this call.
    bool complete = false;     // No key left under an old KEK; old KEKs
                               // destroyed.
  };
  // Starts a KEK rotation (a new KEK version, current at once), or resumes
  // the one in progress, and rewraps up to `max_keys` data keys in
  // synchronous batches of `batch_size` (each with its cursor, so a crash
  // loses nothing and the next call continues). When none is left under
  // an old KEK, drops the old KEKs from the keyring and compacts them out
  // of the files. Records are not rewritten. REQUIRES: batch_size >= 1.
  // Progress: "keys" (rewrapped by this call) after each batch's write.
  Result<KekRotation> RotateKek(size_t batch_size, size_t max_keys,
                                const WorkProgressFn& progress = nullptr);
  // The KEK versions held, ascending (more than one while a rotation is in
  // progress).
  std::vector<uint32_t> KekVersions() const;

  // ---- Backups (storage/backup.h, docs/operations.md) ---------------------

  // Adds a new random key for backup `backup_id`, created at `now`, to the
  // keyring in one synchronous write, and returns a copy of it.
  // REQUIRES: backup_id non-empty, without '/'.
  Result<crypto::SecretKey> AddBackupKey(const std::string& backup_id,
                                         Timestamp now);
  struct Snapshot {
    // Destroyed after `db`: a keyring purge that waited for this snapshot
    // runs then (PurgeOldKeyrings).
    std::shared_ptr<void> release;
    DbSnapshot db;
    // The keyring as stored, without backup keys: the value a backup
    // carries for "m:keyring" (no backup holds the key of another).
    std::string keyring;
  };
  // Takes a snapshot of the keystore under the exclusive key lock (no key
  // is put, destroyed or rewrapped meanwhile) and calls `at_same_instant`
  // before releasing it: the caller takes the records database's snapshot
  // there, under its write lock, so both show one instant. While it lives,
  // the keyring versions it sees stay in the files (LevelDB keeps what a
  // snapshot sees): a purge of replaced keyrings (a backup key expired, a
  // master or KEK rotation) meanwhile is done again when the last snapshot
  // is released, on the thread that releases it.
  Snapshot TakeSnapshot(const std::function<void()>& at_same_instant);
  // Destroys every backup key created at or before `cutoff`: the keyring
  // is written without them in one synchronous write, then its old
  // versions are compacted out of the files. Returns the ids destroyed.
  // When some are, `admin_event` (if set) gives, for their ids, the
  // encoded admin event that goes in the same write (PendingAdminEvent).
  Result<std::vector<std::string>> ExpireBackupKeys(
      Timestamp cutoff,
      const std::function<std::string(const std::vector<std::string>&)>&
          admin_event = nullptr);

  // The admin event written with the last keystore change that carried one
  // and not yet dropped: the history may not hold it (a crash, or a failed
  // write of the records database, between the change and its event;
  // KeyAdmin records it). nullopt when there is none. Errors: the read's.
  Result<std::optional<std::string>> PendingAdminEvent() const;
  // Drops the pending admin event if it is still `admin_event` (a change
  // written since carried its own), without waiting for a sync: a drop lost
  // to a crash is done again once the history is seen to hold it.
  Status DropPendingAdminEvent(std::string_view admin_event);
  // Moves a pending admin event that does not decode aside, under
  // "m:pending_admin_event_unreadable" (the last one so moved), so that it
  // neither stops the store from opening nor holds back the next change's
  // event; synchronously. Nothing if it is no longer `admin_event`.
  Status SetAsidePendingAdminEvent(std::string_view admin_event);
  struct HeldBackupKey {
    Keyring::BackupKeyInfo info;
    crypto::SecretKey key;
  };
  // Copies of the backup keys the keyring holds (for a restore kit).
  std::vector<HeldBackupKey> BackupKeys() const;
  // crypto::Seal under the keyring key of the master key the keystore is
  // open with (Keyring::RingKey(master) opens it): a restore kit.
  std::vector<uint8_t> SealUnderMasterKey(std::string_view plaintext,
                                          std::span<const uint8_t> ad) const;

  // ---- The erasure ledger (docs/storage.md, "The ledger") -----------------

  static constexpr std::string_view kLedgerShredPrefix = "l:";
  static constexpr std::string_view kLedgerErasurePrefix = "le:";
  static constexpr std::string_view kLedgerPrunePrefix = "lp:";
  // A principal's credential revoked or replaced: "lc:" || principal id,
  // its value LedgerCredentialValue's (the latest change wins). A restore
  // re-applies it, so a revoked principal or a replaced token never works
  // again in a restored store.
  static constexpr std::string_view kLedgerCredentialPrefix = "lc:";
  // A destroyed deadline bucket key: "lb:" || BucketKeyName(bucket), no
  // value (DestroyBucketKey).
  static constexpr std::string_view kLedgerBucketPrefix = "lb:";
  // The ledger hash of a shredded subject (its entry is "l:" || hash):
  // KeyedHash(ledger key, blind index || subject id). The subject id names
  // the one subject shredded, not every later subject of the same
  // identifier; it is random and leaves the live store with the shred.
  static crypto::Digest LedgerShredHash(const crypto::SecretKey& ledger_key,
                                        const crypto::Digest& blind_index,
                                        std::string_view subject_id);
  // The ledger key of an erased record: "le:" || KeyedHash(ledger key,
  // u64 BE record id).
  static std::string LedgerErasureKey(const crypto::SecretKey& ledger_key,
                                      uint64_t record_id);
  // An "le:" entry: when the record was erased (its effective instant, a
  // deadline's, which may lie in the past) and when the entry was written
  // (the engine's clock then).
  struct LedgerErasure {
    int64_t erased_at = 0;
    int64_t written_at = 0;
  };
  // The value of an "le:" entry: erased-at and written-at µs (u64 BE
  // each), then KeyedHash(ledger key, "custos-ledger-erasure-v1\0" || u32
  // BE key size || key || both), so neither can be moved by someone
  // without the keys. History pruning dates a record's events from the
  // later of the two: an erasure time taken from a record's stored (and
  // unauthenticated) deadline cannot make it earlier than the erasure
  // was written down.
  static std::string LedgerErasureValue(const crypto::SecretKey& ledger_key,
                                        std::string_view key,
                                        const LedgerErasure& erasure);
  // An "le:" entry's times; DataLoss("corrupt ledger entry") if it is not
  // 48 bytes or its MAC does not match.
  static Result<LedgerErasure> LedgerErasureTime(
      const crypto::SecretKey& ledger_key, std::string_view key,
      std::string_view value);
  // Record `record_id`'s entry (nullopt: not in the ledger). Errors:
  // DataLoss for an entry that fails its MAC; a LevelDB read failure,
  // mapped.
  Result<std::optional<LedgerErasure>> LedgerErasedAt(uint64_t record_id);
  // Records erased records (id, erased-at µs) in the ledger, in one write,
  // synchronous when `sync`. Called before the erasure is written, so the
  // entry is durable no later than the erasure.
  // `written_at`: the engine's clock now (µs).
  Status LedgerRecordErasures(
      const std::vector<std::pair<uint64_t, int64_t>>& erased, bool sync,
      int64_t written_at);
  // Records pruned history events (their seqs) in the ledger, in one write
  // keyed by the first seq, synchronous when `sync`. REQUIRES: non-empty.
  Status LedgerPrunedEvents(const std::vector<uint64_t>& seqs, bool sync);
  // The value of an "lp:" entry: the seqs (u64 BE each), then
  // KeyedHash(ledger key, "custos-ledger-pruned-v1\0" || u32 BE key size ||
  // key || the seqs), so that nobody without the keys can add a seq a
  // restore would then prune.
  static std::string LedgerPruneValue(const crypto::SecretKey& ledger_key,
                                      std::string_view key,
                                      const std::vector<uint64_t>& seqs);
  // The seqs of an "lp:" value, its MAC checked when `ledger_key` is given;
  // DataLoss("corrupt ledger entry") if the value is not seqs and a MAC, or
  // the MAC does not match.
  static Result<std::vector<uint64_t>> LedgerPrunedSeqs(
      const crypto::SecretKey* ledger_key, std::string_view key,
      std::string_view value);
  // An "lc:" entry's value: u64 BE `at` (µs), the new credential hash
  // (empty: revoked), then a MAC under the ledger key of `key` and those
  // bytes: an entry copied under another principal's key, or altered, does
  // not verify.
  static std::string LedgerCredentialValue(const crypto::SecretKey& ledger_key,
                                           std::string_view key, int64_t at,
                                           std::string_view new_hash);
  struct CredentialChange {
    int64_t at = 0;
    std::string new_hash;  // Empty: revoked.
  };
  // Decodes an "lc:" entry, checking its MAC when `ledger_key` is given.
  // DataLoss ("corrupt ledger entry") if it does not parse or the MAC does
  // not match.
  static Result<CredentialChange> LedgerCredentialChange(
      const crypto::SecretKey* ledger_key, std::string_view key,
      std::string_view value);
  // Records that `principal_id`'s credential was revoked (`new_hash`
  // empty) or replaced by the token whose credential hash is `new_hash`,
  // at `at`, in one synchronous write: called before the change is
  // written, so the entry is durable no later than the change.
  // Returns the entry it replaced (nullopt: none), for
  // UndoLedgerCredential.
  Result<std::optional<std::string>> LedgerCredential(
      std::string_view principal_id, std::string_view new_hash, Timestamp at);
  // Puts back what LedgerCredential replaced (synchronously): the change it
  // recorded failed, and a restore must not apply it.
  Status UndoLedgerCredential(std::string_view principal_id,
                              const std::optional<std::string>& previous);
  // Calls fn(key, value) for every ledger entry ("l:", "le:", "lp:",
  // "lc:", "lb:").
  Status ScanLedger(const std::function<void(std::string_view key,
                                             std::string_view value)>& fn);

 private:
  Keystore(std::unique_ptr<LogSyncEnv> env, std::unique_ptr<leveldb::DB> db,
           crypto::SecretKey ring_key, Keyring keyring, size_t cache_capacity);

  Result<SharedKey> Unwrap(const std::string& subject_id);
  // The data key stored under keystore key `key` ("k:" or "o:" + the
  // subject id), unwrapped; nullptr when there is none.
  Result<SharedKey> UnwrapStored(const std::string& key,
                                 std::string_view subject_id);
  // The wrapped key stored under `key`, decoded; nullopt when none.
  Result<std::optional<codec::StoredWrappedKey>> ReadWrapped(
      const std::string& key);
  Result<std::optional<std::vector<uint8_t>>> WrappedBytesAt(
      const std::string& key);
  // Writes the keyring sealed under ring_key_ (with `batch`), synchronously.
  Status WriteKeyring(leveldb::WriteBatch& batch);
  // After a failed WriteKeyring: whether it reached the disk is unknown,
  // and what is stored is the truth, so the keyring in memory becomes the
  // stored one again (left as it is if that cannot be read). REQUIRES:
  // keys_mu_ held exclusively.
  void ReloadKeyring();
  // Compacts the replaced keyring versions out of the files, and deletes
  // the marker (m:keyring_purge) the write that replaced them put; while a
  // snapshot lives (TakeSnapshot), it is left pending until the last one is
  // released. Open runs it when the marker is found (a crash before it).
  // REQUIRES: rotation_mu_ held (it rewrites the keyring it reads), but at
  // Open.
  void PurgeOldKeyrings();
  // A snapshot of TakeSnapshot's was released.
  void SnapshotReleased();

  std::unique_ptr<LogSyncEnv> env_;  // Outlives db_.
  std::unique_ptr<leveldb::DB> db_;
  GroupSync sync_;          // Over env_->SyncLogs().
  std::mutex rotation_mu_;  // One rotation at a time.
  std::mutex purge_mu_;     // Guards the two below.
  size_t live_snapshots_ = 0;
  bool purge_pending_ = false;
  // Guards ring_key_ and keyring_'s KEKs; see "Thread safety".
  mutable std::shared_mutex keys_mu_;
  crypto::SecretKey ring_key_;
  Keyring keyring_;
  // Data keys live in pool_'s slots; declared before cache_ so that it
  // outlives every cached key. A key handed out by GetKey or NewKey must
  // not outlive the Keystore.
  crypto::KeyPool pool_;
  KeyCache cache_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_KEYSTORE_H_
