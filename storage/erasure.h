// Internal to storage/: erased bytes leave the disk (DESIGN section 4,
// docs/retention.md "Deletion bound"). Owns the key families "ew:" (erasure
// witnesses), "q:compact:" (records-database keys whose old versions must
// be compacted away), "q:rdelete:" and "q:crange:" (key ranges to delete,
// then to compact: the "pb:" range of a bucket whose key was destroyed),
// "q:kcompact:" (destroyed keystore keys) and "q:krekey:" (re-keyed
// subjects' old keystore keys).
//
// Erasing something adds to the erasing change's batch a witness of each
// sealed value that goes (its random nonce, complemented) and a queue entry
// for its key; CompactQueued later compacts the queued key ranges of both
// databases so their old versions leave the files, and Verify scans every
// file of the data directory for the witnessed nonces.
//
// Thread safety: thread-safe. CompactQueued takes the write lock itself for
// its short steps and compacts without it: REQUIRES the caller does not hold
// it.

#ifndef CUSTOS_STORAGE_ERASURE_H_
#define CUSTOS_STORAGE_ERASURE_H_

#include <leveldb/write_batch.h>

#include <functional>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/codec.h"
#include "storage/keystore.h"
#include "storage/options.h"
#include "storage/store.h"
#include "storage/types.h"

namespace custos {

class Erasure {
 public:
  // Arguments REQUIRE: outlive this object.
  Erasure(Store& store, Keystore& keystore, const Options& options)
      : store_(store), keystore_(keystore), options_(options) {}

  // Adds to `batch` a witness of `sealed`, a value about to be erased.
  static void AddWitness(leveldb::WriteBatch& batch,
                         const codec::Bytes& sealed);
  // The key AddWitness puts for `sealed` ("" when it puts none), and
  // AddWitness by that key: a shred's intent carries its wrapped key's
  // witness to a recovery that runs after the key is gone.
  static std::string WitnessKey(const codec::Bytes& sealed);
  static void AddWitnessKey(leveldb::WriteBatch& batch, std::string_view key);
  // Queues records-database `key` for compaction, at `now_micros`.
  static void Queue(leveldb::WriteBatch& batch, std::string_view key,
                    int64_t now_micros);
  // Queues the deletion of every records-database key in [first, last],
  // values holding ciphertexts (codec::EncodeSealedContents): a destroyed
  // bucket's "pb:" range (DeleteQueuedRanges).
  static void QueueRangeDeletion(leveldb::WriteBatch& batch,
                                 std::string_view first, std::string_view last,
                                 int64_t now_micros);
  // Deletes every range QueueRangeDeletion queued, in one ordered pass per
  // range: each value's ciphertexts witnessed, its key deleted, in writes of
  // kRangeDeletesPerWrite keys (the write lock released between them). The
  // write that ends a range retires its entry and queues the range for
  // compaction (CompactQueued), with the time it was queued for deletion,
  // so erasure_compaction_delay counts from the erasure. A crash leaves the
  // entry and the keys not yet deleted; the next call (the next sweep, at
  // the latest the next Open) finishes. Every range is carried out over the
  // bucket range its first key starts, whatever last key the value names
  // (retired with nothing deleted when the first key names none); an entry
  // whose value does not parse or names another last key is counted under
  // "m:erasure_queue_corrupt" (ErasureReport::corrupt_queue_entries). An
  // entry of the range whose value does not decode is deleted unwitnessed
  // and counted under "m:erasure_range_undecodable"
  // (ErasureReport::undecodable_sealed_entries).
  // Each write reads its queue entry under the write lock: calls running
  // at once (a sweep and RunMaintenance) carry out, witness and count each
  // range once; a range queued again meanwhile is carried out from its
  // first key again.
  Status DeleteQueuedRanges();
  // Test only: called by DeleteQueuedRanges once it has read which ranges
  // are queued, before its first write, without the write lock (so a test
  // can run another call exactly there). REQUIRES: set before any call.
  void TEST_SetAfterRangeQueueRead(std::function<void()> hook) {
    TEST_after_range_queue_read_ = std::move(hook);
  }
  // Test only: called by CompactQueued after each range it compacted and
  // each pass of queued keys, before it checks for a stop. REQUIRES: set
  // before any call.
  void TEST_SetAfterCompactionStep(std::function<void()> hook) {
    TEST_after_compaction_step_ = std::move(hook);
  }
  static constexpr size_t kRangeDeletesPerWrite = 4096;
  // CompactQueued rewrites the queued keys (their current values, written
  // again) in writes of at most kRewriteKeysPerWrite keys and about
  // kRewriteBytesPerWrite bytes, the write lock released between them: a
  // sweep after 500,000 closes had rewritten every closed record in one
  // write, 601 MiB of memory in custosd, every writer waiting for it.
  static constexpr size_t kRewriteKeysPerWrite = 1000;
  static constexpr size_t kRewriteBytesPerWrite = 1 << 20;
  // CompactQueued takes the queued records-database keys a pass of at most
  // kCompactKeysPerPass at a time (read, rewritten, their span compacted,
  // their entries cleared): it had read the whole queue into memory and
  // cleared it in one write under one hold of the write lock.
  static constexpr size_t kCompactKeysPerPass = 100'000;
  // Test only: CompactQueued's rewrites since this object was made.
  using RewriteStats = ErasureRewriteStats;
  // Test only: passes of at most `keys` keys. REQUIRES: keys >= 1; no call
  // running.
  void TEST_SetCompactKeysPerPass(size_t keys) {
    compact_keys_per_pass_ = keys;
  }
  RewriteStats TEST_rewrite_stats() const {
    std::lock_guard<std::mutex> lock(TEST_stats_mutex_);
    return TEST_rewrite_stats_;
  }
  // Queues the compaction of the whole records database: for erasures
  // whose traces are spread over many key families (a completed shred).
  static void QueueEverything(leveldb::WriteBatch& batch, int64_t now_micros);
  // Queues the destroyed keystore key of `subject_id` for compaction.
  static void QueueKeystore(leveldb::WriteBatch& batch,
                            std::string_view subject_id, int64_t now_micros);
  // Queues the old keys of re-keyed `subject_id` (its overwritten "k:"
  // versions, its retiring "o:" key) for the keystore's compaction.
  static void QueueRekeyed(leveldb::WriteBatch& batch,
                           std::string_view subject_id, int64_t now_micros);
  // Erases the record's contents: its personal parts, flag notes and
  // contest contents go (witnessed), who flagged or contested and when
  // stays with the attributes; state ERASED at `at_micros`; the record's
  // key is queued.
  static void EraseContents(codec::StoredRecord& r, int64_t at_micros,
                            int64_t now_micros, leveldb::WriteBatch& batch);

  // Records in the erasure ledger (the keystore's "le:", "lp:") records
  // about to be erased, with their erasure times (µs), and history events
  // about to be pruned, so that restoring a backup erases them again
  // (storage/backup.h). REQUIRES: called before the erasure is applied: the
  // records database syncs the keystore's logs before its own, so the entry
  // is durable no later than the erasure it records.
  Status Ledger(const std::vector<std::pair<uint64_t, int64_t>>& erased);
  Status LedgerPruned(const std::vector<uint64_t>& seqs);
  // When the ledger says record `record_id` was erased: the later of its
  // entry's erasure time and the time the entry was written (nullopt: it
  // has no entry). What history pruning dates a record's events from: the
  // stored record's state and time are not authenticated, the entry is
  // (Keystore::LedgerErasureValue). Errors: as Keystore::LedgerErasedAt.
  Result<std::optional<int64_t>> LedgerErasedAt(uint64_t record_id);

  // Compacts what is queued, if Options::compact_after_erasure, and once
  // the oldest entry has waited Options::erasure_compaction_delay: the
  // queued ranges first (each compacted alone), then the queued keys (in
  // passes of kCompactKeysPerPass, each cleared from the queue once done).
  // A crash at any point leaves the queue as it was, but for passes already
  // done; the next call redoes the rest. A stop requested through `stop`
  // ends the call between two ranges or two passes (none begins after it),
  // with what is done cleared from the queue and the rest left queued for
  // the next call (a sweep stopping with custosd).
  Status CompactQueued(std::stop_token stop = {});
  // For an erasing call made on a caller's behalf (EraseRecord):
  // CompactQueued when Options::erasure_compaction_delay is 0; with a
  // delay, nothing, even once the oldest entry has waited it: the queue is
  // compacted by the first Sweep, CompleteShreds, RekeySubject or Open after
  // that, so a caller never pays for a compaction (issue 11: off the
  // callers' path) and the bound stays the delay plus the interval between
  // sweeps (custosd's maintenance timer).
  Status CompactQueuedUnlessDelayed();

  // Scans every file of the data directory for the witnessed nonces.
  // Progress: phase "witnesses" (gathering them), then "files" (of the
  // files listed when it begins).
  Result<ErasureReport> Verify(const WorkProgressFn& progress = nullptr) const;

 private:
  Store& store_;
  Keystore& keystore_;
  const Options& options_;
  // The queued records-database keys up to `last_queued`, a pass of at
  // most compact_keys_per_pass_ at a time (CompactQueued).
  Status CompactQueuedKeys(std::string_view last_queued,
                           const std::stop_token& stop);
  // One pass's part of CompactQueuedKeys: the memtable flushed,
  // `part_keys` (in key order) written again with their current values,
  // their span compacted.
  Status RewriteAndCompact(const std::vector<std::string>& part_keys);
  // Then the pass's queue entries cleared where their values are still
  // `part_values`, in writes of at most kRewriteKeysPerWrite deletions.
  Status ClearPass(const std::vector<std::string>& part_keys,
                   const std::vector<std::string>& part_values);

  size_t compact_keys_per_pass_ = kCompactKeysPerPass;
  std::function<void()> TEST_after_range_queue_read_;
  std::function<void()> TEST_after_compaction_step_;
  mutable std::mutex TEST_stats_mutex_;
  RewriteStats TEST_rewrite_stats_;  // Guarded by TEST_stats_mutex_.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_ERASURE_H_
