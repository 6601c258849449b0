// Access-history pruning in one sweep (docs/history.md, "Retention";
// SweepOptions::max_history_examined): what it costs a sweep to examine,
// and to prune, a log of about 100,000 events in one sweep (ten times the
// engine's default bound, Options::history_examined_per_sweep). Before
// pruning went in chunks a sweep examined 100 events, so a store writing
// more events than that between two sweeps never caught up.
// Results are recorded in bench/RESULTS.md.
//
// Each run builds its own store in a fresh mkdtemp() directory under /tmp
// (removed afterwards), through the engine's public API, with a
// ManualClock and Options::sync_writes as the `sync` argument:
// kRecords alerts (bench::WorkloadRecord), each read kReadsPerRecord times
// by its owner (a read writes an event), closed at kStart, and erased by a
// sweep six months later (the shipped policy P6M); with the create, close
// and erasure, kRecords * (kReadsPerRecord + 3) events about them. The store
// is then settled (engine closed, records database compacted, sync(),
// engine reopened). The timed sweep runs at `due` 1 five years after the
// erasure (the shipped history_after: every event about the records is
// due), at `due` 0 a year after it (none is), with compact_after_erasure
// off (the removal of the bytes is sweep_bench's subject). Measured from
// the sweep's progress reports: the kPruningHistory phase's length
// (prune_ms), per event examined (us_per_event), and history_pruned.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "bench/support.h"
#include "crypto/secret_key.h"
#include "storage/engine.h"
#include "storage/period.h"
#include "storage/types.h"

namespace custos {
namespace {

// 2026-01-01T12:00:00Z.
constexpr int64_t kStartMicros = 1'767'268'800'000'000;
constexpr int kRecords = 1'000;
constexpr int kReadsPerRecord = 96;
constexpr size_t kEventsAboutRecords = kRecords * (kReadsPerRecord + 3);

using bench::Check;
using bench::Value;

Timestamp Start() { return FromMicros(kStartMicros); }

Timestamp After(Timestamp t, const char* period) {
  return Value(AddPeriod(t, Value(ParsePeriod(period), "parse period")),
               "add period");
}

class PruneStore {
 public:
  explicit PruneStore(bool sync) : clock_(Start()) {
    options_.data_dir = dir_.path() + "/data";
    options_.table_reads = bench::TableReadsFromEnv();
    options_.sync_writes = sync;
    options_.clock = &clock_;
    options_.compact_after_erasure = false;
    Open();
    Value(engine_->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
    admin_.emplace(Value(engine_->ActorFor("admin"), "admin actor"));
    Value(engine_->CreatePrincipal(*admin_, "user", "User", {Role::kUser},
                                   /*redacted=*/false),
          "create user");
    const Actor user = Value(engine_->ActorFor("user"), "user actor");
    for (int i = 0; i < kRecords; ++i) {
      const uint64_t id = Value(
          engine_->CreateRecord(
              user, bench::WorkloadRecord("alert", bench::SubjectIdentifier(i),
                                          static_cast<uint64_t>(i))),
          "create record");
      for (int r = 0; r < kReadsPerRecord; ++r) {
        Value(engine_->GetRecord(user, id), "read record");
      }
      Check(engine_->Close(user, id), "close record");
    }
    erased_at_ = After(Start(), "P6M");
    clock_.Set(erased_at_);
    SweepOptions erase;
    erase.as_of = erased_at_;
    const SweepReport report =
        Value(engine_->Sweep(*admin_, erase), "erasing sweep");
    if (report.erased != static_cast<size_t>(kRecords)) {
      std::fprintf(stderr, "[prune_bench] erased %zu of %d\n", report.erased,
                   kRecords);
      std::abort();
    }
    // Settled: the timed sweep pays for its own work only.
    engine_.reset();
    bench::CompactDatabase(options_.data_dir + "/records");
    ::sync();
    Open();
  }

  Timestamp erased_at() const { return erased_at_; }
  void SetClock(Timestamp now) { clock_.Set(now); }
  Engine& engine() { return *engine_; }
  const Actor& admin() const { return *admin_; }

 private:
  void Open() { engine_ = bench::OpenEngine(options_, master_); }

  bench::TempDir dir_{"custos-prune-bench"};  // Removed after the engine.
  ManualClock clock_;
  crypto::SecretKey master_ = crypto::SecretKey::Generate();
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::optional<Actor> admin_;
  Timestamp erased_at_;
};

// Args: sync (0 or 1), due (0 or 1).
void BM_PruneHistory(benchmark::State& state) {
  const bool sync = state.range(0) != 0;
  const bool due = state.range(1) != 0;
  double prune_ms = 0;
  size_t pruned = 0;
  for (auto _ : state) {
    state.PauseTiming();
    PruneStore store(sync);
    const Timestamp as_of = After(store.erased_at(), due ? "P5Y" : "P1Y");
    store.SetClock(as_of);
    ::sync();
    SweepOptions options;
    options.as_of = as_of;
    // The whole log in one sweep (the engine's default examines 10,000).
    options.max_history_examined = 100000;
    std::optional<std::chrono::steady_clock::time_point> began, ended;
    options.progress = [&](const SweepProgress& progress) {
      const auto now = std::chrono::steady_clock::now();
      if (progress.phase == SweepPhase::kPruningHistory && !began) began = now;
      if (progress.phase == SweepPhase::kCompacting && began && !ended) {
        ended = now;
      }
    };
    state.ResumeTiming();
    auto report = store.engine().Sweep(store.admin(), options);
    state.PauseTiming();
    if (!report) {
      state.SkipWithError(report.error().ToString().c_str());
      break;
    }
    if (!began || !ended) {
      state.SkipWithError("the sweep reported no pruning phase");
      break;
    }
    const size_t expected = due ? kEventsAboutRecords : 0;
    if (report->history_pruned != expected) {
      std::fprintf(stderr, "[prune_bench] pruned %zu, expected %zu\n",
                   report->history_pruned, expected);
      state.SkipWithError("the sweep did not prune exactly the due events");
      break;
    }
    prune_ms +=
        std::chrono::duration<double, std::milli>(*ended - *began).count();
    pruned += report->history_pruned;
    state.ResumeTiming();
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["prune_ms"] = prune_ms / n;
  // Every event of the log is examined (about kEventsAboutRecords, under
  // the max_history_examined of 100,000 set above plus the setup's few).
  state.counters["us_per_event"] =
      prune_ms * 1000.0 / n / static_cast<double>(kEventsAboutRecords);
  state.counters["history_pruned"] = static_cast<double>(pruned) / n;
}
BENCHMARK(BM_PruneHistory)
    ->ArgNames({"sync", "due"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Args({1, 1})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace custos
