// A retention sweep with legal holds in force (issue 11, "Holds looked up
// once"; docs/retention.md "Holds, once per sweep"): what a sweep of one
// deadline bucket of 1,000 due records costs next to N holds on records
// elsewhere in the store, none of which the sweep erases. Before holds were
// kept in memory and asked per bucket, every batch of a sweep read every
// hold ever stored, and one hold whose span overlapped the bucket's hour,
// wherever its record was, sent the whole bucket record by record with two
// LevelDB lookups per record. Results are recorded in bench/RESULTS.md.
//
// Each benchmark builds its own store in a fresh mkdtemp() directory under
// /tmp (removed afterwards), through the engine's public API, with
// Options::sync_writes = false and a ManualClock:
// - kGroups groups of kDuePerSweep alerts (bench::WorkloadRecord), group g
//   closed at kStart + g + 1 hours, hence due six months later (the shipped
//   policy P6M), each group in a deadline bucket of its own;
// - `holds` requests, ACTIVE (never due), each under a record hold that
//   ends two years after kStart: in force during every sweep, its span
//   covering every group's bucket;
// - with `held_in_bucket` 1, one record of each group under a hold ending
//   a year after kStart: the sweep moves it to that hold's bucket and
//   erases the group's 999 others.
// The store is then settled (engine closed, records database compacted,
// sync(), engine reopened, statistics folded). Each iteration sweeps the
// next group with as_of the last instant of its bucket, with
// compact_after_erasure off (the bytes' removal is measured by sweep_bench;
// here only the sweep's own work, where the holds are asked): counters
// sweep_ms_I (the whole sweep) and buckets_destroyed (mean per sweep).
// No "undecipherable" time: before this change a sweep reported the
// kDestroyingKeys phase once before the transitions even when it destroyed
// nothing (the bucket's key then went after them), so the first report
// does not tell when the key went in both builds.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
constexpr int kDuePerSweep = 1'000;
constexpr int kGroups = 3;
constexpr int kSubjectPool = 1'000;

using bench::Check;
using bench::Value;

Timestamp Start() { return FromMicros(kStartMicros); }
Timestamp ClosedAt(int group) {
  return Start() + std::chrono::hours(group + 1);
}

class HoldStore {
 public:
  HoldStore(int holds, bool held_in_bucket) : clock_(Start()) {
    options_.data_dir = dir_.path() + "/data";
    options_.table_reads = bench::TableReadsFromEnv();
    options_.sync_writes = false;
    options_.clock = &clock_;
    options_.compact_after_erasure = false;
    Open();
    Value(engine_->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
    admin_.emplace(Value(engine_->ActorFor("admin"), "admin actor"));
    Value(engine_->CreatePrincipal(*admin_, "user", "User", {Role::kUser},
                                   /*redacted=*/false),
          "create user");
    Value(engine_->CreatePrincipal(*admin_, "officer", "Officer",
                                   {Role::kOfficer}, /*redacted=*/false),
          "create officer");
    const Actor user = Value(engine_->ActorFor("user"), "user actor");
    const Actor officer = Value(engine_->ActorFor("officer"), "officer actor");
    int serial = 0;
    auto create = [&](const char* kind) {
      const std::string identifier =
          bench::SubjectIdentifier(serial % kSubjectPool);
      return Value(
          engine_->CreateRecord(
              user, bench::WorkloadRecord(kind, identifier,
                                          static_cast<uint64_t>(serial++))),
          "create record");
    };
    std::vector<std::vector<uint64_t>> groups(kGroups);
    for (auto& group : groups) {
      for (int i = 0; i < kDuePerSweep; ++i) group.push_back(create("alert"));
    }
    for (int i = 0; i < holds; ++i) {
      const uint64_t id = create("request");
      Value(engine_->SetRecordHold(officer, id, "litigation",
                                   Start() + std::chrono::hours(2 * 8760)),
            "hold a record elsewhere");
    }
    for (int g = 0; g < kGroups; ++g) {
      clock_.Set(ClosedAt(g));
      for (uint64_t id : groups[static_cast<size_t>(g)]) {
        Check(engine_->Close(user, id), "close record");
      }
      if (held_in_bucket) {
        Value(engine_->SetRecordHold(officer, groups[static_cast<size_t>(g)][0],
                                     "litigation",
                                     Start() + std::chrono::hours(8760)),
              "hold a record of the group");
      }
    }
    // Settled: the timed sweeps pay for their own work only.
    engine_.reset();
    bench::CompactDatabase(options_.data_dir + "/records");
    ::sync();
    Open();
    Value(engine_->FoldStatistics(), "fold statistics");
  }

  // The last instant of the next group's bucket (one UTC hour).
  std::optional<Timestamp> NextAsOf() {
    if (next_group_ == kGroups) return std::nullopt;
    return Value(AddPeriod(ClosedAt(next_group_++),
                           Value(ParsePeriod("P6M"), "parse period")),
                 "add period") +
           std::chrono::hours(1) - std::chrono::microseconds(1);
  }
  void SetClock(Timestamp now) { clock_.Set(now); }
  Engine& engine() { return *engine_; }
  const Actor& admin() const { return *admin_; }

 private:
  void Open() { engine_ = bench::OpenEngine(options_, master_); }

  bench::TempDir dir_{"custos-hold-bench"};  // Removed after the engine.
  ManualClock clock_;
  crypto::SecretKey master_ = crypto::SecretKey::Generate();
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::optional<Actor> admin_;
  int next_group_ = 0;
};

// Args: holds (on records elsewhere, in force), held_in_bucket (0 or 1).
void BM_SweepNextToHolds(benchmark::State& state) {
  const int holds = static_cast<int>(state.range(0));
  const bool held_in_bucket = state.range(1) != 0;
  HoldStore store(holds, held_in_bucket);
  const size_t expected = kDuePerSweep - (held_in_bucket ? 1 : 0);
  std::vector<double> times_ms;
  double buckets_destroyed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::optional<Timestamp> as_of = store.NextAsOf();
    if (!as_of) {
      state.SkipWithError("no due group left in the store");
      break;
    }
    store.SetClock(*as_of);
    ::sync();
    SweepOptions options;
    options.as_of = *as_of;
    state.ResumeTiming();
    const auto started = std::chrono::steady_clock::now();
    auto report = store.engine().Sweep(store.admin(), options);
    times_ms.push_back(std::chrono::duration<double, std::milli>(
                           std::chrono::steady_clock::now() - started)
                           .count());
    if (!report) {
      state.SkipWithError(report.error().ToString().c_str());
      break;
    }
    if (report->erased != expected || !report->complete ||
        !report->skipped.empty()) {
      std::fprintf(stderr, "[hold_bench] erased %zu, expected %zu\n",
                   report->erased, expected);
      state.SkipWithError("the sweep did not erase exactly the due group");
      break;
    }
    buckets_destroyed += static_cast<double>(report->buckets_destroyed);
  }
  state.SetItemsProcessed(state.iterations() * kDuePerSweep);
  const double n = static_cast<double>(times_ms.size());
  state.counters["buckets_destroyed"] = n > 0 ? buckets_destroyed / n : 0;
  for (size_t i = 0; i < times_ms.size(); ++i) {
    state.counters["sweep_ms_" + std::to_string(i)] = times_ms[i];
  }
}
BENCHMARK(BM_SweepNextToHolds)
    ->ArgNames({"holds", "held_in_bucket"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({100, 0})
    ->Args({10'000, 0})
    ->Args({10'000, 1})
    ->Iterations(kGroups)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace custos
