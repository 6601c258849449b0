// Internal to storage/: the statistics index (storage/statistics.h,
// docs/storage.md "Key layout", docs/accountability.md "Statistics that
// survive erasure"). Owns the key families "st:d:" and "st:k:" and the
// keys "m:stats_folded_through" and "m:stats_indexed"; the delta counter
// "m:stats_next_delta" is RecordStore's (it numbers the deltas it stages;
// a floor: every delta written is numbered below it).
//
// Written with every transition, read without a scan of the records:
// - Stage, called through RecordStore::Put (the one place a record is
//   written), adds one delta entry per transition the record made since it
//   was stored, in the same batch as the record, numbered in the order of
//   the writes (under the write lock). The next number is derived at Open
//   (NextDelta); the floor "m:stats_next_delta" is read and written by
//   RecordStore only once in RecordStore::kDeltasAhead + 1 numbers.
// - Fold, run by maintenance, adds the next deltas to their kind's
//   aggregate ("st:k:" kind), deletes them and moves the fold cursor past
//   them, in one batch per chunk, each chunk under the write lock (taken
//   again for the next): after a crash a chunk is either folded and gone
//   or still pending; never both. A delta that does not decode is deleted
//   and counted ("st:u"), not folded: one corrupt delta does not stop the
//   others from being counted. So is a delta of a kind whose aggregate
//   does not decode: that aggregate is left as it is (the queries of its
//   kind report DataLoss) and the other kinds fold on.
// - Read answers from the aggregates plus the deltas after the cursor,
//   read in one scan (one LevelDB snapshot) that seeks past the folded
//   deltas' deletion markers. Its cost grows with the kinds, the months,
//   the attribute values and the deltas not folded yet, not with the
//   records.
//
// The caps of storage/statistics.h are applied in the order deltas are
// folded (their numbers), so Read and Fold give the same counts.
//
// Thread safety: thread-safe. Stage REQUIRES the write lock (it is part of
// a Put); Fold and Initialize take it (Fold once per chunk; one Fold runs
// at a time).

#ifndef CUSTOS_STORAGE_STATS_INDEX_H_
#define CUSTOS_STORAGE_STATS_INDEX_H_

#include <leveldb/write_batch.h>

#include <cstddef>
#include <mutex>

#include "base/clock.h"
#include "base/status.h"
#include "storage/codec.h"
#include "storage/record_store.h"
#include "storage/statistics.h"
#include "storage/store.h"

namespace custos {

class StatsIndex {
 public:
  // Deltas folded per write.
  static constexpr size_t kFoldChunk = 10000;

  // `store` REQUIRES: outlives this object.
  explicit StatsIndex(Store& store) : store_(store) {}

  // Adds to `batch` a delta for each transition `r` made from
  // r.stored_state (a creation first when it was never stored): a
  // closure, a block, an erasure, each at its instant, numbered from
  // `first_seq`. A withdrawal from ACTIVE is a closure then a block (it
  // sets closed_at). Returns how many numbers it used.
  static size_t Stage(leveldb::WriteBatch& batch, const codec::StoredRecord& r,
                      uint64_t first_seq);

  // The number the next delta must get, derived from the store: past the
  // last delta stored and past the fold cursor (a fold deletes the deltas
  // it folds, the last one included, and moves the cursor in the same
  // batch), so that no number is reused: a reused number would overwrite a
  // pending delta or, at or below the cursor, never be counted.
  // Initialize deletes the cursor only together with every delta, and
  // numbers what it stages from the next number of the loaded store. Read
  // at Open (RecordStore::Load), which also takes the stored floor
  // "m:stats_next_delta" when larger. A cursor that does not decode, or a
  // delta key of the wrong length, is no error here (Fold and Read report
  // a bad cursor): the greatest well-formed delta key is searched for by a
  // scan instead (of every delta key, without a cursor). Errors: mapped
  // LevelDB.
  static Result<uint64_t> NextDelta(const Store& store);

  // For a store written before the index existed (no "m:stats_indexed"):
  // deletes whatever "st:" entries an interrupted call left, then stages
  // every record's transitions as if it were new (through
  // `records.StageStatistics`), in writes of 1000, the last with the
  // marker. Interrupted, the next call starts over. A record that does not
  // decode is left out. REQUIRES: no other writer (Engine::Open), and
  // `records` loaded. Errors: the store's.
  Status Initialize(RecordStore& records);

  // Folds up to `budget` pending deltas (all, by default) into the
  // aggregates. Returns how many (those that did not decode, and those of
  // a kind whose aggregate does not decode, included: dropped and counted
  // in Statistics::unreadable). DataLoss for a cursor that does not decode
  // (nothing folded).
  Result<size_t> Fold(size_t budget = static_cast<size_t>(-1));

  // The statistics `query` asks for (REQUIRES: CheckStatisticsQuery
  // accepted it), generated at `now`. A pending delta that does not decode
  // is skipped and counted in Statistics::unreadable. DataLoss for an
  // aggregate of a kind asked for that does not decode (another kind's is
  // not decoded).
  Result<Statistics> Read(const StatisticsQuery& query, Timestamp now) const;

 private:
  Store& store_;
  std::mutex fold_mutex_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_STATS_INDEX_H_
