// Internal to storage/: retention applied (DESIGN section 3, docs/retention
// .md "Sweeper"). Reads only the deadline index ("d:"), so a sweep's cost
// grows with the records due, not with the store; applies each record's due
// transitions at their due instants in one write per batch of records;
// prunes access history whose retention ended (cursor
// "m:history_prune_cursor"); destroys the keys of the deadline buckets it
// emptied (storage/deadline_keys.h); then compacts what it erased.
//
// Thread safety: thread-safe; each batch holds the write lock, and the lock
// is released between batches so foreground calls are not starved.

#ifndef CUSTOS_STORAGE_SWEEPER_H_
#define CUSTOS_STORAGE_SWEEPER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/deadline_keys.h"
#include "storage/erasure.h"
#include "storage/history.h"
#include "storage/holds.h"
#include "storage/keys.h"
#include "storage/policies.h"
#include "storage/record_store.h"
#include "storage/record_view.h"
#include "storage/store.h"
#include "storage/types.h"

namespace custos {

class Sweeper {
 public:
  struct Units {
    Store& store;
    RecordStore& record_store;
    // Whether a record was erased by its subjects' shreds, not written
    // down yet (CompleteShreds does).
    const RecordViews& views;
    const Policies& policies;
    const Holds& holds;
    Erasure& erasure;
    DeadlineKeys& deadline_keys;
    const Clock& clock;
    // Options::history_examined_per_sweep: pruning's bound when the
    // sweep's options set none.
    size_t history_examined_per_sweep;
  };
  explicit Sweeper(Units units) : u_(units) {}

  // The longest history pruning sleeps, in sweeps' as_of (PruneState):
  // what only a pass finds (a record or a ledger entry damaged while it
  // slept) is found within it.
  static constexpr std::chrono::hours kSleepAtMost{24 * 7};

  // InvalidArgument for a batch size of 0, or an as_of ahead of now
  // outside a dry run: what Sweep refuses before doing anything.
  Status CheckOptions(const SweepOptions& options) const;
  // Engine::Sweep and Engine::ReapplyPolicies (storage/engine.h), acting as
  // `admin`.
  Result<SweepReport> Sweep(const PrincipalInfo& admin,
                            const SweepOptions& options);
  Result<size_t> ReapplyPolicies(const WorkProgressFn& progress = nullptr);
  // Writes to the erasure ledger every erasure in force by the clock's now
  // that no sweep has written down yet: the records whose deadline-index
  // entry is due and whose effective state (RecordViews::CatchUp) is
  // ERASED by a deadline. A restore kit written after it carries them (a
  // hold's release or a shortened policy makes an erasure due that the
  // backup's copy of the record does not have; review helper-127). Nothing
  // else is written: the sweep still writes the erasures down (and writes
  // the entry again, for the same record and instant). A record that
  // cannot be read or caught up (Skippable, or NotFound) is left out and
  // the kit written all the same; a record a sweep could not rewrite is
  // in it (its erasure is in force). A record erased by its subjects'
  // shreds is in the ledger by their hashes. Holds are read as a sweep
  // reads them (Holds::Spans). Its cost: the due entries of the store and
  // a read of each, under the write lock. REQUIRES: `lock` is the store's
  // write lock. Errors: those of the store and the keystore.
  Status LedgerErasuresInForce(const WriteLock& lock) const;
  // Writes down, into `batch`, `events` (by the retention policy, as a
  // sweep's) and the erasure ledger, every transition due by the clock's
  // now of the records of `kind`, as a sweep would (SweepRecord), walking
  // the due entries of the deadline index from `resume_key` (empty: the
  // first), at most `max_examined` of them of any kind (0: all), and
  // leaving `resume_key` past the last one examined; returns whether due
  // entries are left past it. Engine::SetPolicy calls it, after
  // WriteDownDueInBatches and from where that stopped (an entry that falls
  // due meanwhile sorts after it), before it stores the kind's new
  // policy, in the same write. A catch-up
  // computes each step after a record's stored deadline under the policy
  // it finds; without this, a record with two steps due and not written
  // down (a close, then an erasure) read ERASED under the old policy and
  // CLOSED again under a longer one (and a restore kit that had ledgered
  // the erasure destroyed the record at a restore), or ERASED under a
  // shorter one before a hold set between the two steps (review
  // helper-128). DESIGN section 3: a change applies to the deadlines
  // computed after it. A record that fails as a sweep skips it
  // (Skippable, or NotFound) is left for the sweeps, which report it; its
  // later steps are still computed under the policy found (helper-130:
  // under a policy set again after a MAC failure, a step skipped so can
  // still be dated before a hold set since). Its cost: the due entries of
  // the store (the index is by instant, not kind), and a read of each,
  // under the write lock. REQUIRES: `lock` is the store's write lock.
  // Errors: those of the store and the keystore.
  Result<bool> WriteDownDue(const WriteLock& lock, std::string_view kind,
                            size_t max_examined, std::string& resume_key,
                            leveldb::WriteBatch& batch,
                            std::vector<Event>& events) const;
  // WriteDownDue over the whole due index, `batch_size` entries examined
  // per write, each under the write lock of its own and committed: what
  // is in force under the old policy stays so whatever comes between two
  // writes, each lock hold reads at most `batch_size` records, and the
  // write the policy's change makes after it holds only what fell due
  // meanwhile (helper-130: one write of every due record under the lock;
  // helper-132: each entry is examined once, so the walk ends). Leaves
  // `resume_key` where it stopped. REQUIRES: batch_size > 0.
  Status WriteDownDueInBatches(std::string_view kind, size_t batch_size,
                               std::string& resume_key) const;

  // Test only: called by a sweep's pruning after each chunk of events it
  // examined, while it holds the pruning's lock (so a test can run
  // another sweep exactly there). REQUIRES: set before any call.
  void TEST_SetAfterPruneChunk(std::function<void()> hook) {
    TEST_after_prune_chunk_ = std::move(hook);
  }

 private:
  // Processes the due index entry `key` (`entry`, parsed: due at
  // entry.due_micros) of one record:
  // deletes it if stray or stale; otherwise adds every transition due by
  // options.as_of to `batch` and `sweep_events` (nothing in a dry run) and
  // to `report`. On error adds nothing to any of them: the record is left
  // exactly as it was. Errors: DataLoss (the record or a hold covering it
  // does not decode), InvalidArgument (a deadline cannot be represented),
  // ResourceExhausted (the record is too large to rewrite), and any error
  // of the store.
  // An erasure of a record whose bucket was erased by key (by this sweep or
  // an earlier one, `erased_buckets` caching which for one batch: a record
  // sealed into the bucket between batches deletes its marker) is written
  // but not counted again: the sweep that destroyed the key reported it. Every
  // erasure written is added to `erased` (for the ledger), reported or not.
  Status SweepRecord(const WriteLock& lock, const PrincipalInfo& admin,
                     const std::string& key, const keys::DeadlineKey& entry,
                     const SweepOptions& options, leveldb::WriteBatch& batch,
                     std::vector<Event>& sweep_events, SweepReport& report,
                     const HoldSpans& spans,
                     std::map<uint64_t, bool>& erased_buckets,
                     std::vector<std::pair<uint64_t, int64_t>>& erased,
                     bool shreds_pending) const;
  // Whether a shred is queued for CompleteShreds (a "q:shred:" entry):
  // only then can a record be erased by a shred its stored form does not
  // show yet. REQUIRES: the write lock held (a shred takes it).
  Result<bool> ShredsPending() const;
  // A record its subjects' shreds erased at or before `at`, not written
  // down yet: no deadline after that instant applies to it, and
  // CompleteShreds writes the erasure down (with the transitions in force
  // before it); a sweep or a re-apply leaves it alone (a review,
  // helper-121: they wrote a close or block after the erasure, into the
  // history and the statistics for good).
  Result<bool> LeftToShredCompletion(const codec::StoredRecord& record,
                                     int64_t at, bool shreds_pending) const;
  // Erasure by key (docs/retention.md, "Deadline keys"): every bucket whose
  // hour ended by options.as_of is erased whole before any of its records
  // is rewritten. The records in it a hold may reach (Holds::Spans, kept in
  // memory and read under the write lock: per bucket, the held records and
  // the held subjects' records whose holds overlap its hour, never a lookup
  // per record) leave it first (SweepRecord: moved to the bucket of their
  // holds' end, or erased if no hold covers their due instant); the
  // erasure of every other record due in it is written down at once from
  // the deadline index ("dx:" bucket, with the witnesses of its key), in
  // the same synced write as the moves; then its key is destroyed: from
  // then on no copy of their ciphertexts opens. Their rewrite to ERASED
  // stubs follows as hygiene (SweepRecord). Counted in `report`. A bucket
  // whose index entries predate their values, one with a held record that
  // could not be moved (skipped, reported), and every bucket when a hold
  // does not decode, are left to the record-by-record path.
  Status EraseEndedBuckets(const PrincipalInfo& admin,
                           const SweepOptions& options, SweepReport& report);
  // Whether bucket `bucket`'s erasure was written down by key ("dx:"),
  // cached in `cache`.
  Result<bool> ErasedByKey(uint64_t bucket,
                           std::map<uint64_t, bool>& cache) const;
  // Destroys the key of every deadline bucket whose hour ended by `as_of`
  // and in which no deadline-index entry is left (its records are all
  // written down as erased, or moved), after witnessing and queueing its
  // wrapped bytes for the keystore's compaction and, when its "pb:" range
  // still holds an entry (of no record), queueing the range's deletion
  // (Erasure::DeleteQueuedRanges, which Sweep then runs). Counted in
  // `report`.
  Status DestroyDueBuckets(int64_t as_of, SweepReport& report);
  // A due entry of the deadline index: its key and what it says.
  using DueEntry = std::pair<std::string, keys::DeadlineKey>;
  // Adds to `due` the well-formed entries of the deadline index due by
  // `now`, from key `from` on, at most `max_entries` (0: all); returns
  // whether due entries are left past them. Malformed keys are passed over
  // (a sweep reports them). The entries are read first, so no iterator
  // lives across the reads of their records.
  Result<bool> DueEntries(int64_t now, std::string_view from,
                          size_t max_entries, std::vector<DueEntry>& due) const;
  // The errors of one record that LedgerErasuresInForce and WriteDownDue
  // pass over, leaving the record to the sweeps (which report it):
  // Skippable ones, and NotFound (a subject entry a shred check reads).
  static bool LeftToTheSweeps(const Status& status);
  // True for the errors of one record that a sweep skips and reports
  // (DataLoss, InvalidArgument, ResourceExhausted); any other error (of
  // the store itself) stops the sweep.
  static bool Skippable(const Status& status);
  // Adds record_id to report.skipped with `status` as the reason;
  // DedupeSkipped, at the end of the sweep, keeps each record's first.
  static void AddSkipped(SweepReport& report, uint64_t record_id,
                         const Status& status);
  static void DedupeSkipped(SweepReport& report);
  // Prunes access history whose retention ended by `as_of` (history_after
  // past the erasure of the record it concerns; for an event about a
  // subject and no record, SubjectEventDue), examining up to
  // options.max_history_examined events (unset: the engine's bound plus
  // the events written from the last pruning sweep's beginning to this
  // one's, `head_at_start`) from a cursor
  // that cycles through the log across sweeps, in chunks
  // (PruneHistoryChunk), and stopping at the head. Counts in
  // report.history_pruned. The events of a record that does not decode are
  // kept, and the record is added to report.skipped.
  Status PruneHistory(int64_t as_of, const SweepOptions& options,
                      uint64_t head_at_start, SweepReport& report);
  // The most events one sweep's pruning examines beyond the engine's bound
  // for those written from the last pruning sweep's beginning to its own (about
  // 70 s of a sweep at 7 µs an event); the rest is carried to the next sweeps.
  static constexpr uint64_t kMaxPruneCredit = 10'000'000;
  // Where pruning stands (docs/history.md, "Retention"), as stored with
  // the cursor. A pass examines the log from the oldest event to the head,
  // over as many sweeps as their bound needs, and falls asleep at the
  // head: from then on a sweep examines only the events written since
  // (from the cursor, which stays at the head), folding into wake_at when
  // those it keeps become due, until as_of reaches wake_at, or the history
  // of a record erased since the pass began may be due
  // (RecordStore::ErasedSincePass plus the shortest history_after), or the
  // policies are not those it fell asleep under, or kSleepAtMost has
  // passed since it fell asleep, or a shred's completion made a subject's
  // events due by their age (RecordStore::HistoryDueFrom): then a sweep
  // starts a pass from the
  // oldest. Every event kept is thus examined again by the sweep whose
  // as_of reaches its due instant (docs/history.md gives the rules and
  // their margins). A record a pass could not read (report.skipped) keeps
  // it awake: every sweep meets and reports it, as before pruning slept.
  struct PruneState {
    // The last event examined (0: the pass starts from the oldest).
    uint64_t after_seq = 0;
    bool asleep = false;
    // The earliest instant an event examined by this pass, or while it
    // sleeps, and kept becomes due (kNever: none that can).
    int64_t wake_at = kNever;
    // The as_of of the sweep whose pruning fell asleep.
    int64_t slept_at = 0;
    // PolicyPrint of the policies wake_at was computed under.
    uint64_t policies = 0;
  };
  static constexpr int64_t kNever = INT64_MAX;
  // A wake_at that wakes any sweep: the next pass starts at once.
  static constexpr int64_t kWakeNow = INT64_MIN;
  // PruneHistory's walk of at most `max_examined` events from the stored
  // state; sets report.history_behind and report.history_examined.
  Status PruneFromCursor(int64_t as_of, const SweepOptions& options,
                         size_t max_examined, SweepReport& report);
  // The stored pruning cursor (0: from the oldest event).
  Result<uint64_t> StoredPruneCursor() const;
  // The stored state; nullopt when the gate is missing or does not decode
  // (a store pruned by a build without it: a pass starts again).
  Result<std::optional<PruneState>> StoredPruneState() const;
  // Puts `state` (the cursor and the gate) into `batch`.
  static void PutPruneState(const PruneState& state,
                            leveldb::WriteBatch& batch);
  // A fingerprint of what pruning's verdicts depend on in `policies`:
  // each kind's history_after.
  static uint64_t PolicyPrint(const std::vector<RetentionPolicy>& policies);
  // Whether a sleeping pruning wakes at `as_of` (PruneState).
  bool Wakes(const PruneState& state, int64_t as_of,
             const std::vector<RetentionPolicy>& policies,
             const WriteLock& lock) const;
  // Sets report.history_behind for a cursor at `after_seq`.
  void ReportBehind(uint64_t after_seq, SweepReport& report) const;
  struct PruneStep {
    size_t stubbed = 0;
    size_t examined = 0;
    bool at_head = false;    // The chunk reached the head.
    bool committed = false;  // With the state as advanced.
  };
  // What a sweep's pruning decided so far, kept across its chunks: by
  // record id, whether the record's events are due (it depends on the
  // ledger's entry and as_of only, and an event's kind, which is its
  // record's); by index tag, whether every event of the subject's index
  // that is about a record is due.
  struct PruneVerdicts {
    std::map<uint64_t, bool> records;
    std::map<crypto::Digest, bool> subjects;  // Per chunk (its lock).
    // The policies in force, per chunk, and whether every stored one
    // authenticated (SubjectEventDue).
    std::vector<RetentionPolicy> policies;
    bool policies_known = false;
    // The earliest instant a kept event whose verdict was decided becomes
    // due (kNever: none can, or none was kept for its time).
    int64_t wake_at = kNever;
  };
  // One chunk of PruneHistory: at most `budget` events after
  // state.after_seq, under one write lock hold; advances `state` (the
  // cursor; asleep at the head unless the policies are not all known, when
  // the cursor goes back to the oldest event; wake_at). Writes (the stubs,
  // the ledger's pruned seqs, the state) only when it pruned or folded
  // something. `verdicts` are read and added to.
  Result<PruneStep> PruneHistoryChunk(int64_t as_of, size_t budget,
                                      PruneState& state,
                                      PruneVerdicts& verdicts,
                                      SweepReport& report);
  // Whether the events of the record `header` names are due by `as_of`:
  // `history_after` (of the kind the header names) after the record's
  // erasure, as its ledger entry dates it. A record that cannot be read, or
  // has no ledger entry, keeps its events and is added to report.skipped;
  // `failure` is set for an error of the store itself (and false returned).
  // A record erased whose events are not due yet lowers verdicts.wake_at to
  // when they are.
  bool RecordHistoryDue(const EventHeader& header, int64_t as_of,
                        PruneVerdicts& verdicts, SweepReport& report,
                        Status& failure);
  // Whether an event about no record is due by `as_of`: one about a
  // subject (a report, a lookup, a history page, a subject hold, a re-key,
  // a shred, a breach scope's part) once the longest `history_after` of
  // the policies has passed since the event, and every event about a
  // record in that subject's index is due (RecordHistoryDue). An event
  // about no subject is never due. `failure` as above. One kept for its
  // time lowers verdicts.wake_at to when that has passed.
  bool SubjectEventDue(const EventHeader& header, int64_t as_of,
                       PruneVerdicts& verdicts, SweepReport& report,
                       Status& failure);

  Units u_;
  // Held by the sweep whose pruning runs (PruneHistory); others skip it.
  std::mutex prune_mu_;
  // How far in the log the pruning's credit has been taken (0: not since
  // the engine opened), the head as the last pruning sweep began: what was
  // written after it, up to the head as the next begins, is added to the
  // engine's bound, so that the pruning cursor gains on the head. Guarded
  // by prune_mu_.
  uint64_t head_at_last_prune_ = 0;
  std::function<void()> TEST_after_prune_chunk_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_SWEEPER_H_
