// Internal to storage/: stored records and the deadline index. Owns the key
// families "r:", "pb:" and "d:" and the floor "m:next_record_id". Put is the
// one place a record is written: it recomputes the record's next deadline under
// its kind's policy (a legal hold postpones an erasure to the hold's end)
// and moves the deadline-index entry in the same batch, so the index never
// disagrees with the records (DESIGN section 3). CatchUp gives a record's
// effective state at an instant: what every read, change and sweep acts on.
// Put also keeps a record's ciphertexts sealed under its erase-deadline
// bucket (storage/deadline_keys.h): re-sealed whenever the bucket moves,
// and stages the record's transitions in the statistics index
// (storage/stats_index.h) in the same batch.
// A record sealed under a bucket (erase_bucket != 0) keeps its ciphertexts
// in "pb:" bucket || id, none in its "r:" value; one sealed under the data
// keys alone (active records) keeps them inline. Read merges them back.
//
// Record ids and delta numbers are never reused, and neither costs a write
// per operation (docs/storage.md, "Counters derived at Open"): the next
// record id is the last "r:" key's plus one (records are never deleted),
// at least the floor "m:next_record_id", which a create moves only when
// its ids reach it, kIdsAhead ids ahead (so that a build older than this
// one, which reads the floor as the next id, never reuses one either); the
// next delta number follows the last delta and the fold cursor
// (StatsIndex::NextDelta), at least the floor "m:stats_next_delta", which
// a Put moves kDeltasAhead numbers ahead when its deltas reach the floor
// as last read (so that an older build, which numbers deltas from it,
// never reuses a number either). A store written before this build has
// exact counters: the largest of the stored and the derived value is
// taken.
//
// Thread safety: thread-safe; Put and AllocateIds REQUIRE the write lock.

#ifndef CUSTOS_STORAGE_RECORD_STORE_H_
#define CUSTOS_STORAGE_RECORD_STORE_H_

#include <leveldb/write_batch.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/codec.h"
#include "storage/deadline_keys.h"
#include "storage/holds.h"
#include "storage/policies.h"
#include "storage/store.h"
#include "storage/subjects.h"

namespace custos {

class RecordStore {
 public:
  // Arguments REQUIRE: outlive this object.
  RecordStore(Store& store, const Policies& policies, const Holds& holds,
              const Subjects& subjects, const Clock& clock)
      : store_(store),
        policies_(policies),
        holds_(holds),
        subjects_(subjects),
        clock_(clock) {}

  // Ids a create reserves past the ones it takes when it moves the floor
  // "m:next_record_id": one create in kIdsAhead + 1 writes it.
  static constexpr uint64_t kIdsAhead = 63;
  // Delta numbers a Put reserves past the ones it stages when it moves the
  // floor "m:stats_next_delta".
  static constexpr uint64_t kDeltasAhead = 63;

  // Derives the next record id and the next statistics delta number (see
  // above). Errors: DataLoss (a stored counter that is not 8 bytes, an
  // "r:" key of the wrong length), mapped LevelDB. A fold cursor or an
  // "st:d:" key that does not decode is no error here (Fold and the
  // statistics read report it): StatsIndex::NextDelta falls back to a scan.
  Status Load();

  // The stored record (its stored state: see RecordView for the effective
  // one), its ciphertexts merged (LoadSealed). NotFound if there is none;
  // DataLoss if it does not decode.
  Result<codec::StoredRecord> Read(uint64_t id) const;
  // The record decoded from its "r:" value alone: its ciphertexts, when
  // sealed under a bucket, not merged (sealed_pending; LoadSealed merges
  // them, or DropSealed says none are left). NotFound, DataLoss as Read.
  Result<codec::StoredRecord> ReadUnmerged(uint64_t id) const;
  // Marks `r`, read unmerged, as holding no ciphertext any more: its
  // bucket's key was destroyed and its "pb:" range deleted (Sweeper, after
  // Erasure::DeleteQueuedRanges), so there is nothing to look up.
  static void DropSealed(codec::StoredRecord& r);
  // Merges into `r`, decoded from its "r:" value alone (a scan's), the
  // ciphertexts of its "pb:" entry; none when the entry is gone (its
  // bucket's key destroyed and its range deleted). Nothing to do for a
  // record whose ciphertexts are inline. DataLoss if the entry does not
  // decode or match `r`.
  // `snapshot`: the one `r` was read at (Read's), so that a writer moving
  // or rewriting the record in between is never seen half.
  Status LoadSealed(codec::StoredRecord& r,
                    const leveldb::Snapshot* snapshot = nullptr) const;
  // The key whose value holds `r`'s ciphertexts as `r` stands: "pb:" when
  // it is sealed under a bucket, else "r:" (what an erasure queues).
  static std::string SealedKey(const codec::StoredRecord& r);

  // The first of `n` consecutive record ids. When they reach the floor,
  // the floor is moved past them (kIdsAhead further) in `batch`. The ids
  // are taken only when the batch is written: Taken(last) after a
  // successful Apply (the floor then moves in memory too). REQUIRES: n >= 1,
  // and the batch writes a record under each id (the next id is derived
  // from the last record at Open).
  uint64_t AllocateIds(const WriteLock& lock, leveldb::WriteBatch& batch,
                       size_t n);
  void Taken(const WriteLock& /*lock*/, uint64_t id) {
    next_id_ = id + 1;
    if (pending_floor_ != 0) id_floor_ = pending_floor_;
    pending_floor_ = 0;
  }

  // Options::TEST_statistics_index: false stages no statistics delta.
  // REQUIRES: called before any Put.
  void TEST_SetStatisticsIndex(bool on) { statistics_index_ = on; }

  // Adds to `batch` the statistics deltas of the transitions `r` made since
  // r.stored_state (StatsIndex::Stage), numbered from the next delta
  // number, and, when they reach the floor "m:stats_next_delta" as last
  // read, the floor kDeltasAhead past them (see above); sets
  // r.stored_state. Put calls it; so does StatsIndex::Initialize for a
  // store written before the index. Errors: mapped LevelDB (reading the
  // floor); `batch` must then be dropped.
  Status StageStatistics(const WriteLock& lock, leveldb::WriteBatch& batch,
                         codec::StoredRecord& r) const;

  // Sets the record's next deadline and transition from its state, its
  // kind's policy and, for an erasure, the legal holds that ever covered it
  // (Holds::ErasableFrom): the same answer whenever it is asked. An erased
  // record has none (no policy asked). When the kind's stored policy
  // failed its MAC or is missing, a record whose state still fits its
  // stored transition keeps its stored deadline (holds applied again);
  // otherwise DataLoss naming the kind (docs/storage.md, "Policies").
  // InvalidArgument if the deadline cannot be represented.
  // `pending`: a hold released by the batch being built (Holds::Release).
  // `spans`: the holds' spans, read once by a caller scheduling many
  // records (Holds::ErasableFrom). `not_before`: a date earlier than it is
  // taken as it (before the holds are applied to an erasure's): Put's
  // deadline computed anew is never before the change computing it, and
  // CatchUp's never before the transition just applied.
  Status Schedule(codec::StoredRecord& r, const HoldView* pending = nullptr,
                  const HoldSpans* spans = nullptr,
                  int64_t not_before = 0) const;
  // Whether `r`'s stored next transition is one its state can have, and,
  // for an ACTIVE record due to close, whether what its close deadline
  // counts from is as stored: then Schedule keeps it without the policy.
  static bool ScheduleFitsState(const codec::StoredRecord& r);

  // Brings `r` to its effective state at `at` (DESIGN section 3: a
  // deadline takes effect at its instant, sweep or no sweep): applies in
  // memory, in order, every transition due at or before `at`, each at its
  // due instant (its stored deadline first, an erasure at the first instant
  // no hold covers it), exactly as a sweep would write them. An erasure adds
  // its witnesses and compaction entry to `batch` (a scratch batch when only
  // looking). Returns the transitions applied; `r`'s next deadline is
  // recomputed when any was due. `erasure_held`, when given, is set when an
  // erasure legally due by `at` is postponed past it by a legal hold. When
  // the deadline after an applied transition cannot be computed (a policy
  // whose period cannot be represented), the transitions found stand, `r`
  // gets no next deadline, and `schedule_error` (when given) receives the
  // error; a later Put of `r` fails with it. Errors: reading holds.
  Result<std::vector<PlannedTransition>> CatchUp(
      codec::StoredRecord& r, int64_t at, leveldb::WriteBatch& batch,
      bool* erasure_held = nullptr, Status* schedule_error = nullptr,
      const HoldSpans* spans = nullptr) const;

  // Adds `r` to `batch` with its next deadline (Schedule, set in `r`) and
  // moves its deadline-index entry; adds the transitions it made since
  // r.stored_state to the statistics index (StatsIndex::Stage) and sets
  // r.stored_state to its state. InvalidArgument if the deadline cannot
  // be represented; ResourceExhausted if the encoded record (its "r:" and
  // "pb:" values together) would be larger than kMaxStoredRecordBytes
  // (storage/limits.h); Internal for a record whose ciphertexts were not
  // merged (sealed_pending). On error `batch` is unchanged.
  // Writes its ciphertexts to "pb:" erase_bucket || id (none inline) when
  // it is sealed under a bucket, and deletes the entry of the bucket they
  // were stored under when it moved.
  // When the record's deadline bucket (DeadlineKeys::BucketFor) is not the
  // one its ciphertexts are sealed under, re-seals them (the old ones
  // witnessed, the record queued for compaction) and sets erase_bucket; a
  // new bucket's key is made durable first. Errors: DataLoss (a ciphertext
  // does not open), and any of the keystore.
  // A deadline Put computes anew (not the one `r` came with) that lies
  // before the clock's now is moved to now, holds applied there to an
  // erasure: a policy shortened since, re-applied or met by any change,
  // makes the transition due at once, never back-dated before reads made
  // since or before a legal hold in force (or set since that date).
  Status Put(const WriteLock& lock, leveldb::WriteBatch& batch,
             codec::StoredRecord& r, const HoldView* pending = nullptr,
             const HoldSpans* spans = nullptr) const;
  // Put for a change of ciphertexts only (a re-key): `r` keeps the
  // deadline and transition it was stored with. A policy changed since
  // applies when ReapplyPolicies recomputes them; recomputing here would
  // undo a block or an erasure in force under the stored ones.
  Status PutKeepingSchedule(const WriteLock& lock, leveldb::WriteBatch& batch,
                            codec::StoredRecord& r) const;

  // The earliest instant from which a history_after runs that pruning's
  // pass has not seen, kNoErasure if none (since ErasedSincePassReset):
  // the erased_at of a record that became ERASED (by Put or
  // PutKeepingSchedule), or what HistoryDueFrom was given. History
  // pruning sleeps only while nothing from there can be due
  // (Sweeper::PruneState). Each erased record's write puts it, in its
  // own batch, as the lowest it knows (lowered by a record becoming
  // ERASED, not by one rewritten so): a batch dropped after lowering it
  // in memory leaves the stored value higher than memory, never higher
  // than a written erasure. REQUIRES: the lock.
  static constexpr int64_t kNoErasure = INT64_MAX;
  // A stored value that does not decode reads as this: pruning starts a
  // pass at the next sweep.
  static constexpr int64_t kWakePruning = INT64_MIN;
  int64_t ErasedSincePass(const WriteLock& lock) const;
  // Lowers it to `from` and puts it into `batch`: history whose period
  // runs from `from` became subject to pruning without a record being
  // erased (a shred's subject index dropped: its events about no record
  // are due by their age; docs/history.md "Pruning sleeps between
  // passes"). Pruning wakes as for an erasure at `from`: with the shortest
  // history_after, at or before the longest the event needs.
  void HistoryDueFrom(const WriteLock& lock, leveldb::WriteBatch& batch,
                      int64_t from);
  // Puts "none since" into `batch`; once `batch` is written, the caller
  // calls ErasedSincePassReset under the same lock hold.
  static void PutErasedSincePassReset(leveldb::WriteBatch& batch);
  void ErasedSincePassReset(const WriteLock& lock);

  // What a deadline-index entry says of its record, as Put wrote it: the
  // transition due and the stored state it leaves, so that a sweep counts a
  // bucket's erasures from the index alone (Sweeper, "erasure by key").
  struct DeadlineEntry {
    codec::Transition next = codec::Transition::kNone;
    RecordState state = RecordState::kActive;
  };
  // Two bytes: the transition, the state.
  static std::string EncodeDeadlineEntry(const codec::StoredRecord& r);
  // nullopt for any other value (an entry written before format 3's index
  // values were kept: read the record instead).
  static std::optional<DeadlineEntry> DecodeDeadlineEntry(
      std::string_view value);

 private:
  // Put (reschedule) and PutKeepingSchedule.
  Status Write(const WriteLock& lock, leveldb::WriteBatch& batch,
               codec::StoredRecord& r, bool reschedule, const HoldView* pending,
               const HoldSpans* spans) const;
  // Derives the next statistics delta number (part of Load).
  Status LoadDeltaCounter();
  // Puts the floor "m:stats_next_delta" past next_delta_ in `batch` unless
  // the stored floor is already past it (StageStatistics).
  Status KeepDeltaFloor(leveldb::WriteBatch& batch) const;

  // Re-seals every readable ciphertext of `r` from its erase_bucket to
  // `to`, adding witnesses of the old ones to `batch`. On error `r` and
  // `batch` are unchanged.
  Status Reseal(const WriteLock& lock, codec::StoredRecord& r, uint64_t to,
                leveldb::WriteBatch& batch) const;
  // The plaintext of a ciphertext of `r` sealed for `subject_id` (whose
  // current key is `key`) under bucket `bucket`, as Subjects::OpenFields
  // would open it, but as bytes: re-sealing needs no decoding and
  // re-encoding of the fields. The caller wipes it.
  Result<codec::Bytes> OpenSealed(const std::string& subject_id,
                                  const crypto::SecretKey& key, uint64_t bucket,
                                  const codec::Bytes& sealed,
                                  const codec::Bytes& ad,
                                  std::string_view what) const;

  Store& store_;
  const Policies& policies_;
  const Holds& holds_;
  const Subjects& subjects_;
  const Clock& clock_;
  // Guarded by the write lock: the next record id; the floor as written
  // (every id given is below it); the floor an allocation put in a batch
  // not yet written (0: none).
  uint64_t next_id_ = 1;
  uint64_t id_floor_ = 1;
  uint64_t pending_floor_ = 0;
  // The next statistics delta's number. Guarded by the write lock (Put,
  // const for its readers' sake, REQUIRES it). Never reused: a batch that
  // is dropped leaves a gap.
  mutable uint64_t next_delta_ = 1;
  // The floor "m:stats_next_delta" as last read (at Load, or when staged
  // deltas reach it). Guarded by the write lock. Never taken from a batch
  // not known to be written: a floor put in a batch is read back by the
  // next Put that reaches the old one, and put again if it is not there
  // (its batch was dropped, or is still being built).
  mutable uint64_t delta_floor_ = 1;
  // ErasedSincePass. Guarded by the write lock.
  mutable int64_t erased_since_pass_ = kNoErasure;
  bool statistics_index_ = true;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_RECORD_STORE_H_
