#include "server/maintenance.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "storage/events.h"
#include "storage/limits.h"

namespace custos::server {

void RunScheduledMaintenance(Engine& engine, Metrics& metrics,
                             size_t shred_budget, MaintenanceLog* log,
                             std::stop_token stop) {
  const auto started = std::chrono::steady_clock::now();
  auto report = engine.RunMaintenance(shred_budget, stop);
  MaintenanceFigures figures;
  figures.finished_unix_seconds = static_cast<int64_t>(std::time(nullptr));
  figures.duration_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  figures.ok = report.has_value();
  if (report) {
    figures.sweep_complete = report->complete;
    figures.closed = report->closed;
    figures.blocked = report->blocked;
    figures.erased = report->erased;
    figures.postponed = report->postponed;
    figures.skipped = report->skipped.size();
    figures.shred_records_rewritten = report->shred_records_rewritten;
    figures.history_pruned = report->history_pruned;
    figures.history_behind = report->history_behind;
  }
  metrics.SetMaintenance(figures);
  // custosd is stopping: the run's outcome is logged, and nothing else
  // begins (the count below scans every record).
  if (stop.stop_requested()) {
    if (!report) {
      std::fprintf(stderr, "custosd: maintenance: %s\n",
                   report.error().ToString().c_str());
    } else if (report->stopped) {
      std::fprintf(stderr,
                   "custosd: maintenance stopped early (custosd stopping): "
                   "%zu closed, %zu blocked, %zu erased; the rest is left to "
                   "the next run\n",
                   report->closed, report->blocked, report->erased);
    }
    return;
  }
  if (report && !report->statistics_folded) {
    std::fputs(
        "custosd: maintenance: folding statistics failed (retried by the "
        "next maintenance)\n",
        stderr);
  }
  if (!report) {
    std::fprintf(stderr, "custosd: maintenance: %s\n",
                 report.error().ToString().c_str());
  } else if (!report->transitions.empty() || !report->skipped.empty() ||
             report->history_unauthenticated > 0 ||
             !report->unauthenticated_policies.empty()) {
    std::fprintf(stderr,
                 "custosd: maintenance: %zu closed, %zu blocked, %zu "
                 "erased, %zu skipped, %zu history events failed to "
                 "authenticate, %zu retention policies failed to "
                 "authenticate (set them again)\n",
                 report->closed, report->blocked, report->erased,
                 report->skipped.size(), report->history_unauthenticated,
                 report->unauthenticated_policies.size());
  }
  if (log != nullptr) LogHistoryHead(engine, *log, "", /*only_if_moved=*/true);
  // After the sweep, so the count is of the states it wrote down (the
  // same as the effective ones it counts either way).
  auto counts = engine.CountRecordsForMaintenance(engine.Now());
  if (counts) {
    metrics.SetRecordCounts(*counts);
  } else {
    std::fprintf(stderr, "custosd: maintenance: counting records: %s\n",
                 counts.error().ToString().c_str());
  }
}

void LogHistoryHead(Engine& engine, MaintenanceLog& log, const char* when,
                    bool only_if_moved) {
  auto head = engine.DurableHistoryHead();
  if (!head) {
    std::fprintf(stderr, "custosd: reading the history head: %s\n",
                 head.error().ToString().c_str());
    return;
  }
  if (only_if_moved && log.head_logged && log.head_logged->seq == head->seq &&
      log.head_logged->link_hex == head->link_hex) {
    return;
  }
  std::fprintf(stderr, "custosd: history head %llu:%s%s%s\n",
               static_cast<unsigned long long>(head->seq),
               head->link_hex.c_str(), *when != '\0' ? " " : "", when);
  log.head_logged = *head;
}

void LogPoliciesInForce(const Engine& engine) {
  const Engine::PoliciesInForce in_force = engine.PoliciesInForceNow();
  for (const RetentionPolicy& policy : in_force.policies) {
    const std::string periods =
        events::PolicyPeriodsText(events::PolicyFields(policy));
    std::fprintf(stderr, "custosd: retention policy %s: %s\n",
                 policy.kind.c_str(), periods.c_str());
  }
  for (const std::string& kind : in_force.unauthenticated) {
    // Read from a key in the files: printed only if it is a kind a policy
    // could have been set for (no control character reaches the log).
    const bool valid = CheckKind(kind).ok();
    std::fprintf(stderr,
                 "custosd: retention policy %s: failed to authenticate, not "
                 "used (set it again)\n",
                 valid ? kind.c_str() : "(a key that is no valid kind)");
  }
}

}  // namespace custos::server
