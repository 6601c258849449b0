// custosd's metrics (docs/operations.md, "Metrics"): counters the server
// keeps about its connections and calls, rendered with the engine's own
// figures in Prometheus's text format (version 0.0.4) for the metrics
// endpoint.
//
// Calls are counted by method, named "<Interface>.<method>" from
// schema/custos.capnp (every interface reachable from Gateway through the
// results of its methods); a call to anything else counts as "other".
// Nothing a client sent (no argument, no record id) is ever part of a
// label.
//
// Thread safety: not thread-safe; used on the event loop's thread only
// (the metrics endpoint is served on the same loop). Maintenance figures
// and record counts are set through SetMaintenance and SetRecordCounts,
// which are thread-safe.

#ifndef CUSTOS_SERVER_METRICS_H_
#define CUSTOS_SERVER_METRICS_H_

#include <kj/time.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "storage/engine.h"

namespace custos::server {

// Why the server ended a connection itself (server/call_meter.h).
enum class ConnectionEnd {
  kAnswersNotReleased,  // Too many answers left without their Finish.
  kQuestionReused,      // A question id used again before its Finish.
  kAnswersNotRead,      // Its answers wait unread past the bound.
};

// What the last scheduled maintenance run did (custosd's timer).
struct MaintenanceFigures {
  int64_t finished_unix_seconds = 0;
  double duration_seconds = 0;
  bool ok = false;
  // False when the sweep stopped with work still due (a backlog).
  bool sweep_complete = true;
  size_t closed = 0;
  size_t blocked = 0;
  size_t erased = 0;
  size_t postponed = 0;
  size_t skipped = 0;
  // Records of shredded subjects rewritten by this run's shred completion;
  // as many as the budget means more may be pending.
  size_t shred_records_rewritten = 0;
  // Access-history events the sweep pruned, and those its pruning left
  // before the head of the log (SweepReport::history_behind).
  size_t history_pruned = 0;
  uint64_t history_behind = 0;
};

class Metrics {
 public:
  // Upper bounds of the latency histograms' buckets, in seconds.
  static constexpr std::array<double, 14> kLatencyBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,  0.5,    1,     2.5,  5,     10};

  Metrics();

  // The index of the method `interface_id`/`method_id`, for the calls
  // below; that of "other" for a method of no known interface.
  size_t MethodIndex(uint64_t interface_id, uint16_t method_id) const;

  // A call answered after `latency`, with `error` (nullopt: success).
  void CallDone(size_t method, kj::Duration latency,
                std::optional<StatusCode> error);
  // A call refused before it reached the service (too many in flight).
  void CallRefused(size_t method);

  void ConnectionOpened() { ++connections_open_, ++connections_total_; }
  void ConnectionClosed() { --connections_open_; }
  // A connection refused because max_connections were open.
  void ConnectionRefused() { ++connections_refused_; }
  // A TLS handshake that failed or did not finish in time.
  void TlsHandshakeFailed() { ++tls_handshake_failures_; }
  // An accept that failed (tried again shortly).
  void AcceptFailed() { ++accept_failures_; }
  // A connection the server ended for what its client sent.
  void ConnectionEnded(ConnectionEnd why) {
    switch (why) {
      case ConnectionEnd::kAnswersNotReleased:
        ++ended_not_released_;
        break;
      case ConnectionEnd::kQuestionReused:
        ++ended_question_reused_;
        break;
      case ConnectionEnd::kAnswersNotRead:
        ++ended_not_read_;
        break;
    }
  }

  void SetMaintenance(const MaintenanceFigures& figures);
  // The last count of records by state (Engine::CountRecordsByState),
  // exported with its instant. Thread-safe.
  void SetRecordCounts(const RecordStateCounts& counts);

  // The whole exposition: these counters, then the engine's figures.
  std::string Render(const Engine& engine) const;

 private:
  struct MethodStats {
    std::string name;
    uint64_t requests = 0;
    std::map<StatusCode, uint64_t> errors;
    uint64_t refused = 0;
    std::array<uint64_t, kLatencyBuckets.size()> buckets{};
    uint64_t timed = 0;
    double seconds = 0;
  };

  std::vector<MethodStats> methods_;  // The last is "other".
  std::map<std::pair<uint64_t, uint16_t>, size_t> index_;
  int64_t connections_open_ = 0;
  uint64_t connections_total_ = 0;
  uint64_t connections_refused_ = 0;
  uint64_t tls_handshake_failures_ = 0;
  uint64_t accept_failures_ = 0;
  uint64_t ended_not_released_ = 0;
  uint64_t ended_question_reused_ = 0;
  uint64_t ended_not_read_ = 0;

  mutable std::mutex maintenance_mu_;
  std::optional<MaintenanceFigures> maintenance_;  // Guarded.
  // The last with ok set: the history gauges come from it.
  std::optional<MaintenanceFigures> last_ok_maintenance_;  // Guarded.
  std::optional<RecordStateCounts> record_counts_;         // Guarded.
};

}  // namespace custos::server

#endif  // CUSTOS_SERVER_METRICS_H_
