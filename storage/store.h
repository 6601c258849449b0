// Internal to storage/: the records database. Store owns the LevelDB of
// records/, the access history kept in it, and the only path by which
// anything is written to it, Commit: one place to take the write lock,
// stage history events, choose durability, count writes and inject faults.
//
// Writing. A change takes the write lock (Lock()), reads what it needs,
// builds one leveldb::WriteBatch and hands it to Apply with its access-
// history events. Apply stages the events into the batch, writes the batch
// (visible to every reader at once) and moves the history head, all under
// the lock, so changes and their events are ordered exactly as the chain
// and each change is atomic with its events. Durability is shared (group
// commit): the write itself is not synced; WaitDurable, called after the
// lock is released, returns once one fdatasync of the write-ahead logs,
// issued by whichever waiter comes first, covers the write. Every change
// applied meanwhile rides on the same fsync, as LevelDB's own writer queue
// groups synced writers (db/db_impl.cc, BuildBatchGroup). Commit does all
// three: Apply, unlock, WaitDurable. A change is acknowledged only when
// WaitDurable returned OK.
//
// Failure. If a write or a sync fails, the change is reported failed to its
// caller and to every caller whose change waited for the same sync; the
// store then refuses every later change with the same error (as PostgreSQL
// does after a failed fsync): an unknown part of what the kernel held may
// be lost, and only a restart, replaying the log, tells what is on disk.
// Changes that were applied but not acknowledged may be visible to readers
// until then (LevelDB's own semantics for a failed synced write).
//
// Thread safety: thread-safe. Get and Scan may run concurrently with
// everything, each from its own LevelDB snapshot.

#ifndef CUSTOS_STORAGE_STORE_H_
#define CUSTOS_STORAGE_STORE_H_

#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/secret_key.h"
#include "storage/history.h"
#include "storage/log_sync_env.h"
#include "storage/options.h"

namespace custos {

// Proof that the caller holds the store's write lock. Functions that need
// the lock take a `const WriteLock&`; only Store::Lock makes one.
class [[nodiscard]] WriteLock {
 public:
  WriteLock(WriteLock&& other) noexcept = default;
  WriteLock& operator=(WriteLock&& other) noexcept {
    Unlock();
    lock_ = std::move(other.lock_);
    generation_ = other.generation_;
    return *this;
  }
  ~WriteLock() { Unlock(); }

  // Releases the lock early (it is released on destruction otherwise).
  // Every release moves the store's generation (Store::Generation), after
  // what the holder wrote is visible.
  void Unlock() {
    if (!lock_.owns_lock()) return;
    generation_->fetch_add(1, std::memory_order_release);
    lock_.unlock();
  }

  // True while this object holds `mu`.
  bool Holds(const std::mutex& mu) const {
    return lock_.owns_lock() && lock_.mutex() == &mu;
  }

 private:
  friend class Store;
  WriteLock(std::mutex& mu, std::atomic<uint64_t>& generation)
      : lock_(mu), generation_(&generation) {}

  std::unique_lock<std::mutex> lock_;
  std::atomic<uint64_t>* generation_;
};

class Store {
 public:
  // What WaitDurable waits for: the write's place in the order of writes.
  struct Ticket {
    uint64_t seq = 0;
    bool sync = false;  // False: nothing to wait for.
  };

  // The on-disk format this build reads and writes. 2: access-history
  // events chained over commitments of their parts (docs/history.md);
  // 3: records sealed under deadline keys (docs/retention.md, "Deadline
  // keys"); 4: the ciphertexts of records sealed under a bucket in the
  // bucket-ordered "pb:" family (docs/storage.md, "Key layout"); 5: the
  // history's index entries MAC'd, pruning dated by the erasure ledger;
  // 6: stored retention policies MAC'd (storage/policies.h). Older stores
  // are refused, not migrated (docs/decisions.md).
  static constexpr uint32_t kFormatVersion = 7;

  // Opens (or, with options.create_if_missing, creates) the records
  // database in options.data_dir/records through `env` (REQUIRES: outlives
  // the Store; its SyncBefore orders other databases' syncs before this
  // one's), and checks its format.
  // Errors: NotFound (no store and !create_if_missing), FailedPrecondition
  // (unknown format version), Unavailable (locked by another process),
  // DataLoss (corrupt), Internal.
  static Result<std::unique_ptr<Store>> Open(const Options& options,
                                             LogSyncEnv& env);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // True if the database held no store when opened.
  bool is_new() const { return is_new_; }

  // Marks a new store: writes the format version, with `batch` (the
  // shipped policies), synchronously. REQUIRES: is_new(), no other writer.
  Status Initialize(leveldb::WriteBatch& batch, Timestamp now);

  // Opens the access history kept in this database, its events sealed with
  // the keys `keys` returns. REQUIRES: once, before any Apply with events.
  Status OpenHistory(crypto::SecretKey audit_key, KeyLookup keys);
  History& history() { return *history_; }
  const History& history() const { return *history_; }

  WriteLock Lock() { return WriteLock(write_mu_, generation_); }

  // Moves each time a holder of the write lock releases it. A reader that
  // read Generation() before reading the store, and finds the same value
  // later while holding the lock, knows that nothing written under the
  // lock (records, subjects' keys, anything) changed in between.
  uint64_t Generation() const {
    return generation_.load(std::memory_order_acquire);
  }

  // The value at `key`, nullopt if absent; as of `snapshot` when given.
  // Errors: mapped LevelDB errors.
  Result<std::optional<std::string>> Get(
      std::string_view key, const leveldb::Snapshot* snapshot = nullptr) const;
  // A snapshot of the records database, released with the last copy: what
  // several Gets must read as of one instant (a record and its "pb:" entry).
  std::shared_ptr<const leveldb::Snapshot> TakeSnapshot() const;

  // Calls fn(key, value) for every entry whose key starts with `prefix`,
  // from `start` (from the prefix itself when `start` is empty or sorts
  // before it), in key order, until fn
  // returns false. The iterator lives only during the call (an open
  // iterator would pin obsolete table files). Errors: mapped LevelDB errors.
  Status Scan(std::string_view prefix, std::string_view start,
              const std::function<bool(std::string_view key,
                                       std::string_view value)>& fn) const;

  // The greatest key that starts with `prefix` and does not sort before
  // `from` (the whole prefix when `from` is empty or sorts before it),
  // nullopt if there is none. `from` lets a caller skip a range it knows
  // holds only deleted keys: a backward step passes every deletion marker
  // not yet compacted away, one at a time. Errors: mapped LevelDB errors.
  Result<std::optional<std::string>> LastKey(std::string_view prefix,
                                             std::string_view from) const;

  // Appends `events` to the history in `batch` and writes it, under the
  // lock, not yet durable. Internal if `lock` is not this store's held
  // lock. `what` names the change in error messages.
  // `force_sync` makes it durable even when Options::sync_writes is false
  // (the shred recovery's write). On error nothing was written and the
  // history did not move.
  Result<Ticket> Apply(const WriteLock& lock, leveldb::WriteBatch& batch,
                       const std::vector<Event>& events, std::string_view what,
                       bool force_sync = false);
  // Returns once the write of `ticket` is durable (group commit, see above).
  Status WaitDurable(const Ticket& ticket);
  // Returns once every write applied so far is durable, synced or not
  // (a shred's records side is applied and never waited for): one group
  // sync if any is not durable yet, none otherwise. Holding `lock`, nothing
  // is applied meanwhile, so what a reader sees then is all durable (a
  // backup's snapshot, a chain verification's; a key destroyed after a
  // shred's records side). Internal if `lock` is not this store's held
  // lock; the store's recorded failure (a failed sync or LevelDB write
  // earlier, even with every counted write synced), without syncing; the
  // sync's failure, which then fails every later change (see above).
  Status SyncApplied(const WriteLock& lock);
  // Runs the hook of TEST_SetSnapshotHook, if any. Called right before a
  // snapshot that SyncApplied made durable is taken (a backup's, a chain
  // verification's), under the same hold of the write lock.
  void RunSnapshotHook() const {
    if (snapshot_hook_) snapshot_hook_();
  }
  // Apply, release `lock`, WaitDurable.
  Status Commit(WriteLock lock, leveldb::WriteBatch& batch,
                const std::vector<Event>& events, std::string_view what,
                bool force_sync = false);

  // Compacts the key range [first, last] (LevelDB's CompactRange).
  void CompactRange(std::string_view first, std::string_view last);
  // Compacts the whole database.
  void CompactAll();
  // Writes the memtable out to a table and compacts nothing else.
  void FlushMemTable();

  // For the history and the erasure scan. Writes go through Apply.
  leveldb::DB& db() { return *db_; }

  // Writes completed (applied) since Open, and fdatasyncs issued: the ratio
  // is the group-commit factor.
  uint64_t TEST_WriteCount() const { return group_.writes(); }
  uint64_t TEST_SyncCount() const { return group_.syncs(); }
  uint64_t TEST_SyncSleeps() const { return group_.TEST_Sleeps(); }
  // Makes the next log sync fail with `status`, as a failing disk would.
  void TEST_FailNextSync(Status status) {
    group_.TEST_FailNextSync(std::move(status));
  }
  // Tests: `hook` runs at RunSnapshotHook, so a test can see what was
  // synced when the snapshot was taken (its order against SyncApplied).
  // Set it while nothing else runs.
  void TEST_SetSnapshotHook(std::function<void()> hook) {
    snapshot_hook_ = std::move(hook);
  }

 private:
  Store(std::unique_ptr<leveldb::DB> db, LogSyncEnv& env, bool sync_writes,
        bool is_new);

  std::unique_ptr<leveldb::DB> db_;
  const bool sync_writes_;
  const bool is_new_;
  std::unique_ptr<History> history_;
  KeyLookup key_lookup_;

  std::mutex write_mu_;  // The write lock.
  std::atomic<uint64_t> generation_{0};
  GroupSync group_;                      // Over the records Env's SyncLogs().
  std::function<void()> snapshot_hook_;  // Tests only.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_STORE_H_
