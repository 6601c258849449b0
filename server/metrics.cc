#include "server/metrics.h"

#include <capnp/schema.h>

#include <cstdio>
#include <deque>
#include <set>

#include "schema/custos.capnp.h"

namespace custos::server {
namespace {

// Appends one sample line: `name{labels} value`.
void Sample(std::string& out, const char* name, const std::string& labels,
            double value) {
  char number[64];
  std::snprintf(number, sizeof(number), "%.17g", value);
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ").append(number).append("\n");
}

void Header(std::string& out, const char* name, const char* type,
            const char* help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

std::string MethodLabel(const std::string& method) {
  std::string label = "method=\"";
  label.append(method).append("\"");
  return label;
}

}  // namespace

Metrics::Metrics() {
  // Every interface reachable from the bootstrap interface through the
  // results of its methods (Gateway -> Session -> Officer, ...).
  std::deque<capnp::InterfaceSchema> queue{capnp::Schema::from<rpc::Gateway>()};
  std::set<uint64_t> seen;
  while (!queue.empty()) {
    const capnp::InterfaceSchema iface = queue.front();
    queue.pop_front();
    if (!seen.insert(iface.getProto().getId()).second) continue;
    const auto proto = iface.getProto();
    const std::string iface_name(
        proto.getDisplayName().slice(proto.getDisplayNamePrefixLength()));
    for (auto method : iface.getMethods()) {
      MethodStats stats;
      stats.name = iface_name;
      stats.name.append(".").append(method.getProto().getName().cStr());
      index_[{proto.getId(), method.getOrdinal()}] = methods_.size();
      methods_.push_back(std::move(stats));
      for (auto field : method.getResultType().getFields()) {
        const capnp::Type type = field.getType();
        if (type.isInterface()) queue.push_back(type.asInterface());
      }
    }
  }
  MethodStats other;
  other.name = "other";
  methods_.push_back(std::move(other));
}

size_t Metrics::MethodIndex(uint64_t interface_id, uint16_t method_id) const {
  auto it = index_.find({interface_id, method_id});
  return it == index_.end() ? methods_.size() - 1 : it->second;
}

void Metrics::CallDone(size_t method, kj::Duration latency,
                       std::optional<StatusCode> error) {
  MethodStats& m = methods_[method];
  ++m.requests;
  if (error) ++m.errors[*error];
  const double seconds = static_cast<double>(latency / kj::NANOSECONDS) / 1e9;
  for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    if (seconds <= kLatencyBuckets[i]) ++m.buckets[i];
  }
  ++m.timed;
  m.seconds += seconds;
}

void Metrics::CallRefused(size_t method) {
  MethodStats& m = methods_[method];
  ++m.requests;
  ++m.refused;
  ++m.errors[StatusCode::kResourceExhausted];
}

void Metrics::SetMaintenance(const MaintenanceFigures& figures) {
  std::lock_guard lock(maintenance_mu_);
  maintenance_ = figures;
  if (figures.ok) last_ok_maintenance_ = figures;
}

void Metrics::SetRecordCounts(const RecordStateCounts& counts) {
  std::lock_guard lock(maintenance_mu_);
  record_counts_ = counts;
}

std::string Metrics::Render(const Engine& engine) const {
  std::string out;
  Header(out, "custos_rpc_requests_total", "counter",
         "RPC calls received, by method (refused ones included).");
  for (const MethodStats& m : methods_) {
    if (m.requests == 0 && m.name != "other") continue;
    Sample(out, "custos_rpc_requests_total", MethodLabel(m.name),
           static_cast<double>(m.requests));
  }
  Header(out, "custos_rpc_errors_total", "counter",
         "RPC calls answered with an error, by method and status code.");
  for (const MethodStats& m : methods_) {
    for (const auto& [code, count] : m.errors) {
      std::string labels = MethodLabel(m.name);
      labels.append(",code=\"").append(StatusCodeName(code)).append("\"");
      Sample(out, "custos_rpc_errors_total", labels,
             static_cast<double>(count));
    }
  }
  Header(out, "custos_rpc_refused_total", "counter",
         "RPC calls refused unseen because too many calls of their "
         "connection were in flight.");
  uint64_t refused = 0;
  for (const MethodStats& m : methods_) refused += m.refused;
  Sample(out, "custos_rpc_refused_total", "", static_cast<double>(refused));
  Header(out, "custos_rpc_duration_seconds", "histogram",
         "Time from a call's arrival to its answer, by method.");
  for (const MethodStats& m : methods_) {
    if (m.timed == 0) continue;
    for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
      char le[32];
      std::snprintf(le, sizeof(le), "%g", kLatencyBuckets[i]);
      std::string labels = MethodLabel(m.name);
      labels.append(",le=\"").append(le).append("\"");
      Sample(out, "custos_rpc_duration_seconds_bucket", labels,
             static_cast<double>(m.buckets[i]));
    }
    std::string labels = MethodLabel(m.name);
    labels.append(",le=\"+Inf\"");
    Sample(out, "custos_rpc_duration_seconds_bucket", labels,
           static_cast<double>(m.timed));
    Sample(out, "custos_rpc_duration_seconds_sum", MethodLabel(m.name),
           m.seconds);
    Sample(out, "custos_rpc_duration_seconds_count", MethodLabel(m.name),
           static_cast<double>(m.timed));
  }

  Header(out, "custos_connections_open", "gauge", "Client connections open.");
  Sample(out, "custos_connections_open", "",
         static_cast<double>(connections_open_));
  Header(out, "custos_connections_total", "counter",
         "Client connections accepted and served.");
  Sample(out, "custos_connections_total", "",
         static_cast<double>(connections_total_));
  Header(out, "custos_connections_refused_total", "counter",
         "Client connections refused because the connection limit was "
         "reached.");
  Sample(out, "custos_connections_refused_total", "",
         static_cast<double>(connections_refused_));
  Header(out, "custos_tls_handshake_failures_total", "counter",
         "TLS handshakes that failed or did not finish in time.");
  Sample(out, "custos_tls_handshake_failures_total", "",
         static_cast<double>(tls_handshake_failures_));
  Header(out, "custos_accept_failures_total", "counter",
         "Connections that could not be accepted (out of descriptors or "
         "memory); the listener tries again after 100 ms.");
  Sample(out, "custos_accept_failures_total", "",
         static_cast<double>(accept_failures_));
  Header(out, "custos_connections_ended_total", "counter",
         "Client connections the server ended for what they sent: too many "
         "answers never released (no Finish), a question id used again "
         "before its Finish, or answers left unread past the bound.");
  Sample(out, "custos_connections_ended_total",
         "reason=\"answers_not_released\"",
         static_cast<double>(ended_not_released_));
  Sample(out, "custos_connections_ended_total", "reason=\"question_reused\"",
         static_cast<double>(ended_question_reused_));
  Sample(out, "custos_connections_ended_total", "reason=\"answers_not_read\"",
         static_cast<double>(ended_not_read_));

  const EngineStats stats = engine.Stats();
  Header(out, "custos_store_writes_total", "counter",
         "Writes applied to the records database since start.");
  Sample(out, "custos_store_writes_total", "",
         static_cast<double>(stats.writes));
  Header(out, "custos_store_syncs_total", "counter",
         "Log syncs issued since start; writes/syncs is the mean "
         "group-commit batch size.");
  Sample(out, "custos_store_syncs_total", "", static_cast<double>(stats.syncs));
  Header(out, "custos_key_cache_keys", "gauge",
         "Unwrapped subject keys held in the key cache.");
  Sample(out, "custos_key_cache_keys", "",
         static_cast<double>(stats.cached_keys));
  Header(out, "custos_key_cache_hits_total", "counter",
         "Lookups of a subject's key answered from the key cache.");
  Sample(out, "custos_key_cache_hits_total", "",
         static_cast<double>(stats.key_cache_hits));
  Header(out, "custos_key_cache_misses_total", "counter",
         "Lookups of a subject's key that unwrapped it from the keystore.");
  Sample(out, "custos_key_cache_misses_total", "",
         static_cast<double>(stats.key_cache_misses));

  std::optional<MaintenanceFigures> m;
  std::optional<MaintenanceFigures> last_ok;
  std::optional<RecordStateCounts> counts;
  {
    std::lock_guard lock(maintenance_mu_);
    m = maintenance_;
    last_ok = last_ok_maintenance_;
    counts = record_counts_;
  }
  if (counts) {
    Header(out, "custos_records", "gauge",
           "Records by visibility state (their effective state) at the last "
           "count, made by the scheduled maintenance.");
    Sample(out, "custos_records", "state=\"active\"",
           static_cast<double>(counts->active));
    Sample(out, "custos_records", "state=\"closed\"",
           static_cast<double>(counts->closed));
    Sample(out, "custos_records", "state=\"blocked\"",
           static_cast<double>(counts->blocked));
    Sample(out, "custos_records", "state=\"erased\"",
           static_cast<double>(counts->erased));
    Header(out, "custos_records_unreadable", "gauge",
           "Records the last count could not read (corrupt), in no state.");
    Sample(out, "custos_records_unreadable", "",
           static_cast<double>(counts->unreadable));
    Header(out, "custos_records_counted_timestamp_seconds", "gauge",
           "The instant the records were counted at (Unix time, the "
           "server's clock).");
    Sample(out, "custos_records_counted_timestamp_seconds", "",
           static_cast<double>(ToMicros(counts->as_of) / 1'000'000));
  }
  if (m) {
    Header(out, "custos_maintenance_last_run_timestamp_seconds", "gauge",
           "When the last scheduled maintenance run finished (Unix time).");
    Sample(out, "custos_maintenance_last_run_timestamp_seconds", "",
           static_cast<double>(m->finished_unix_seconds));
    Header(out, "custos_maintenance_last_run_duration_seconds", "gauge",
           "How long the last scheduled maintenance run took.");
    Sample(out, "custos_maintenance_last_run_duration_seconds", "",
           m->duration_seconds);
    Header(out, "custos_maintenance_last_run_ok", "gauge",
           "1 if the last scheduled maintenance run succeeded.");
    Sample(out, "custos_maintenance_last_run_ok", "", m->ok ? 1 : 0);
    Header(out, "custos_sweep_backlog", "gauge",
           "1 if the last sweep stopped with transitions still due.");
    Sample(out, "custos_sweep_backlog", "", m->sweep_complete ? 0 : 1);
    Header(out, "custos_sweep_last_transitions", "gauge",
           "Transitions applied by the last sweep, by kind.");
    Sample(out, "custos_sweep_last_transitions", "kind=\"closed\"",
           static_cast<double>(m->closed));
    Sample(out, "custos_sweep_last_transitions", "kind=\"blocked\"",
           static_cast<double>(m->blocked));
    Sample(out, "custos_sweep_last_transitions", "kind=\"erased\"",
           static_cast<double>(m->erased));
    Header(out, "custos_sweep_last_postponed", "gauge",
           "Erasures the last sweep postponed for a legal hold.");
    Sample(out, "custos_sweep_last_postponed", "",
           static_cast<double>(m->postponed));
    Header(out, "custos_sweep_last_skipped", "gauge",
           "Records the last sweep could not process.");
    Sample(out, "custos_sweep_last_skipped", "",
           static_cast<double>(m->skipped));
    Header(out, "custos_shred_last_records_rewritten", "gauge",
           "Records of shredded subjects the last maintenance run "
           "rewrote (0: no shred pending).");
    Sample(out, "custos_shred_last_records_rewritten", "",
           static_cast<double>(m->shred_records_rewritten));
  }
  // Of the last run that succeeded: a failed run has no report, and 0
  // would say the pruning reached the head (helper-134).
  if (last_ok) {
    Header(out, "custos_history_last_pruned", "gauge",
           "Access-history events the last successful maintenance run's "
           "sweep pruned.");
    Sample(out, "custos_history_last_pruned", "",
           static_cast<double>(last_ok->history_pruned));
    Header(out, "custos_history_prune_behind", "gauge",
           "Access-history events between where that sweep's pruning "
           "stopped and the head of the log (0: it reached the head).");
    Sample(out, "custos_history_prune_behind", "",
           static_cast<double>(last_ok->history_behind));
  }
  return out;
}

}  // namespace custos::server
