// custosd's scheduled maintenance (--maintenance-interval; docs/operations.md,
// "Metrics"): one run sweeps what is due, expires backup keys and completes
// shreds (Engine::RunMaintenance; its sweep and its shred completion also
// compact the erased bytes queued once the oldest has waited
// --erasure-compaction-delay: with a delay, custosd's only compactions
// besides an admin's sweep), then counts the records by state at the
// engine's now (Engine::CountRecordsForMaintenance), a scan of the store
// made here, off the metrics endpoint's path. What it did goes to the
// server's metrics, and counts only (never what a record holds) to stderr.
//
// Thread safety: runs on the caller's thread (custosd's maintenance
// thread); Metrics' setters used here are thread-safe.

#ifndef CUSTOS_SERVER_MAINTENANCE_H_
#define CUSTOS_SERVER_MAINTENANCE_H_

#include <cstddef>
#include <optional>
#include <stop_token>

#include "server/metrics.h"
#include "storage/engine.h"

namespace custos::server {

// What one maintenance run passes to the next: the history head it last
// logged.
struct MaintenanceLog {
  std::optional<RecordedHead> head_logged;
};

// One maintenance run. A failed sweep is reported as such in the metrics
// (custos_maintenance_last_run_ok 0); a failed count leaves the last count
// and its time in place. Both failures are logged. With `log`, the access
// history's durable head is logged when it moved since the last run's
// ("custosd: history head SEQ:LINK"), for the operator's log to keep out
// of band (docs/operations.md, "Keeping the history's head out of band").
// A stop requested through `stop` (custosd stopping) ends the run early
// (Engine::RunMaintenance): it is logged, and the records are not
// counted; what is left waits for the next run.
void RunScheduledMaintenance(Engine& engine, Metrics& metrics,
                             size_t shred_budget, MaintenanceLog* log = nullptr,
                             std::stop_token stop = {});

// Logs the access history's durable head ("custosd: history head SEQ:LINK",
// then " " and `when` if not empty: "at start", "at stop") and records it
// in `log`; with `only_if_moved`, nothing when it is the one last logged.
// A failure to read it is logged instead.
void LogHistoryHead(Engine& engine, MaintenanceLog& log, const char* when,
                    bool only_if_moved);

// Logs the retention policies the engine obeys, one line per kind
// ("custosd: retention policy KIND: erase_after:P6M, history_after:P5Y"),
// and each kind whose stored policy failed to authenticate: custosd logs
// them at start, when they were read from the files, so that a policy put
// back with the files while it was stopped shows in a log kept elsewhere.
void LogPoliciesInForce(const Engine& engine);

}  // namespace custos::server

#endif  // CUSTOS_SERVER_MAINTENANCE_H_
