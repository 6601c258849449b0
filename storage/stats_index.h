// Internal to storage/: the statistics index (storage/statistics.h,
// docs/storage.md "Statistics index"). Owns the key families "st:a:" and
// "st:d:" and the marker "m:stats_indexed".
//
// Written with every transition, read without a scan of the records:
// - Stage, called by RecordStore::Put (the one place a record is written),
//   adds one delta entry per transition the record made since it was
//   stored ("st:d:" record id || state entered), in the same batch as the
//   record. Nothing is read and no shared counter is rewritten on the write
//   path, so concurrent writers never contend on the index; a record enters
//   each state at most once, so a delta's key is its transition's own and
//   writing it again (a sweep finishing after a crash) changes nothing.
// - Fold, run by maintenance under the write lock, adds pending deltas to
//   their kind's aggregate ("st:a:" kind) and deletes them, in one batch
//   per chunk: after a crash either a chunk is folded and gone, or it is
//   still pending; never both, never counted twice. Then it compacts the
//   family's key range, so that no query steps over the deletion markers
//   of folded deltas.
// - Read answers from the aggregates plus the pending deltas, read in one
//   scan (one LevelDB snapshot: a fold in between cannot count a delta
//   twice or not at all). Its cost grows with the kinds, the months and the
//   deltas pending since the last fold, not with the records.
//
// The caps of storage/statistics.h are applied in the order deltas are
// folded (record id, then state), so Read and Fold give the same counts.
//
// Thread safety: thread-safe. Stage REQUIRES the write lock (it is part of
// a Put); Fold and Initialize take it.

#ifndef CUSTOS_STORAGE_STATS_INDEX_H_
#define CUSTOS_STORAGE_STATS_INDEX_H_

#include <leveldb/write_batch.h>

#include <cstddef>

#include "base/clock.h"
#include "base/status.h"
#include "storage/codec.h"
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
  // closure, a block, an erasure, each at its instant. A withdrawal from
  // ACTIVE is a closure then a block (it sets closed_at).
  static void Stage(leveldb::WriteBatch& batch, const codec::StoredRecord& r);

  // For a store written before the index existed (no "m:stats_indexed"):
  // stages every record's transitions as if it were new, in writes of
  // 1000 records, the last with the marker. Interrupted, the next call
  // does it again (the deltas' keys make that harmless: nothing is folded
  // before the marker is written). A record that does not decode is left
  // out. REQUIRES: no other writer (Engine::Open). Errors: the store's.
  Status Initialize();

  // Folds up to `budget` pending deltas (all, by default) into the
  // aggregates. Returns how many. DataLoss for a delta or an aggregate
  // that does not decode (nothing folded from its chunk).
  Result<size_t> Fold(size_t budget = static_cast<size_t>(-1));

  // The statistics `query` asks for (REQUIRES: CheckStatisticsQuery
  // accepted it), generated at `now`. DataLoss as Fold.
  Result<Statistics> Read(const StatisticsQuery& query, Timestamp now) const;

 private:
  Store& store_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_STATS_INDEX_H_
