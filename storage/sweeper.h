// Internal to storage/: retention applied (DESIGN section 3, docs/retention
// .md "Sweeper"). Reads only the deadline index ("d:"), so a sweep's cost
// grows with the records due, not with the store; applies each record's due
// transitions at their due instants in one write per batch of records;
// prunes access history whose retention ended (cursor
// "m:history_prune_cursor"); then compacts what it erased.
//
// Thread safety: thread-safe; each batch holds the write lock, and the lock
// is released between batches so foreground calls are not starved.

#ifndef CUSTOS_STORAGE_SWEEPER_H_
#define CUSTOS_STORAGE_SWEEPER_H_

#include <cstddef>

#include "base/clock.h"
#include "base/status.h"
#include "storage/erasure.h"
#include "storage/holds.h"
#include "storage/policies.h"
#include "storage/record_store.h"
#include "storage/store.h"
#include "storage/types.h"

namespace custos {

class Sweeper {
 public:
  struct Units {
    Store& store;
    RecordStore& record_store;
    const Policies& policies;
    const Holds& holds;
    Erasure& erasure;
    const Clock& clock;
  };
  explicit Sweeper(Units units) : u_(units) {}

  // Engine::Sweep and Engine::ReapplyPolicies (storage/engine.h), acting as
  // `admin`.
  Result<SweepReport> Sweep(const PrincipalInfo& admin,
                            const SweepOptions& options);
  Result<size_t> ReapplyPolicies();

 private:
  // Prunes access history whose retention ended by `as_of` (history_after
  // past the erasure of the record it concerns), examining at most
  // `budget` events from a cursor that cycles through the log across calls.
  // Returns the number of events pruned.
  Result<size_t> PruneHistory(int64_t as_of, size_t budget);

  Units u_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_SWEEPER_H_
