// Statistics that survive erasure (issue 15): what the statistics index
// costs a write, and what a statistics query costs as the store grows.
//
// BM_Create and BM_Close run the same write with the index on (index:1)
// and off (index:0, Options::TEST_statistics_index), in one process, so
// their ratio is the index's cost. BM_Statistics builds a store of
// `records` records (four kinds, twelve months of creations, ten countries
// and five types as attributes, one record in four closed), folds the
// index as maintenance does, and times Engine::ProduceStatistics; its
// counters say how large the answer is (kinds, months) and how long the
// fold took. BM_StatisticsUnfolded times the same query with every
// transition still pending: the cost the fold removes.
//
// Run (Release; the machine is shared, prefer the ratios), as recorded in
// bench/RESULTS.md:
//   build-rel/bench/stats_bench --benchmark_repetitions=3
//   --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "bench/support.h"
#include "crypto/secret_key.h"
#include "storage/engine.h"
#include "storage/period.h"

namespace custos {
namespace {

using bench::Check;
using bench::Value;

// 2026-08-29T...Z: any fixed instant.
constexpr int64_t kStartMicros = 1'788'000'000'000'000;
constexpr int64_t kDayMicros = int64_t{86400} * 1000 * 1000;

class Store {
 public:
  explicit Store(bool statistics_index)
      : dir_("custos-stats-bench"),
        clock_(FromMicros(kStartMicros)),
        master_(crypto::SecretKey::Generate()) {
    options_.data_dir = dir_.path() + "/data";
    options_.table_reads = bench::TableReadsFromEnv();
    options_.sync_writes = false;
    options_.clock = &clock_;
    options_.TEST_statistics_index = statistics_index;
    engine_ = bench::OpenEngine(options_, master_);
    Value(engine_->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
    admin_.emplace(Value(engine_->ActorFor("admin"), "admin actor"));
    Value(engine_->CreatePrincipal(*admin_, "user", "User", {Role::kUser},
                                   /*redacted=*/false),
          "create user");
    user_.emplace(Value(engine_->ActorFor("user"), "user actor"));
    for (const char* kind : {"complaint", "enquiry"}) {
      RetentionPolicy policy;
      policy.kind = kind;
      policy.erase_after = Value(ParsePeriod("P3Y"), "period");
      policy.history_after = Value(ParsePeriod("P5Y"), "period");
      Check(engine_->SetPolicy(*admin_, policy), "set policy");
    }
  }

  Engine& engine() { return *engine_; }
  ManualClock& clock() { return clock_; }
  const Actor& admin() const { return *admin_; }
  const Actor& user() const { return *user_; }

 private:
  bench::TempDir dir_;  // First member: removed after the engine is closed.
  ManualClock clock_;
  crypto::SecretKey master_;
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::optional<Actor> admin_;
  std::optional<Actor> user_;
};

NewRecord MakeRecord(int i) {
  static const char* const kKinds[] = {"request", "alert", "complaint",
                                       "enquiry"};
  static const char* const kCountries[] = {"AT", "BE", "CZ", "DE", "ES",
                                           "FR", "IT", "NL", "PL", "SE"};
  static const char* const kTypes[] = {"licence", "register", "insurance",
                                       "qualification", "other"};
  char identifier[48];
  std::snprintf(identifier, sizeof(identifier), "subject-%05d@example.org",
                i % 1000);
  NewRecord r;
  r.kind = kKinds[i % 4];
  r.attributes = {{"country", kCountries[i % 10]}, {"type", kTypes[i % 5]}};
  r.personal = {{identifier,
                 {{"name", "Alex Example"}, {"note", std::string(200, 'x')}}}};
  return r;
}

void BM_Create(benchmark::State& state) {
  Store store(state.range(0) != 0);
  int i = 0;
  for (auto _ : state) {
    auto id = store.engine().CreateRecord(store.user(), MakeRecord(i++));
    if (!id) {
      state.SkipWithError(id.error().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Create)
    ->ArgName("index")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(20'000)
    ->UseRealTime();

constexpr int kCloseRecords = 20'000;
void BM_Close(benchmark::State& state) {
  Store store(state.range(0) != 0);
  std::vector<uint64_t> ids;
  ids.reserve(kCloseRecords);
  for (int i = 0; i < kCloseRecords; ++i) {
    ids.push_back(Value(
        store.engine().CreateRecord(store.user(), MakeRecord(i)), "create"));
  }
  store.clock().Set(FromMicros(kStartMicros + 5 * kDayMicros));
  size_t next = 0;
  for (auto _ : state) {
    Status closed = store.engine().Close(store.user(), ids[next++]);
    if (!closed.ok()) {
      state.SkipWithError(closed.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Close)
    ->ArgName("index")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(kCloseRecords)
    ->UseRealTime();

// A store of `records` records created over twelve months in batches of
// 100, one in four closed 1 to 60 days after its batch was created.
std::unique_ptr<Store> BuildStore(int records) {
  auto store = std::make_unique<Store>(/*statistics_index=*/true);
  constexpr int kBatch = 100;
  const int batches = records / kBatch;
  const int64_t step = 365 * kDayMicros / batches;
  std::vector<std::pair<int64_t, uint64_t>> to_close;  // (at, id)
  for (int b = 0; b < batches; ++b) {
    const int64_t at = kStartMicros + b * step;
    store->clock().Set(FromMicros(at));
    std::vector<NewRecord> batch;
    for (int k = 0; k < kBatch; ++k)
      batch.push_back(MakeRecord(b * kBatch + k));
    auto ids = Value(store->engine().CreateRecords(store->user(), batch),
                     "create batch");
    for (int k = 0; k < kBatch; k += 4) {
      to_close.emplace_back(at + (1 + (b + k) % 60) * kDayMicros, ids[k]);
    }
  }
  std::sort(to_close.begin(), to_close.end());
  for (const auto& [at, id] : to_close) {
    store->clock().Set(FromMicros(at));
    Check(store->engine().Close(store->user(), id), "close");
  }
  return store;
}

void QueryLoop(benchmark::State& state, Store& store) {
  size_t months = 0, kinds = 0, pending = 0;
  for (auto _ : state) {
    auto stats = store.engine().ProduceStatistics(store.admin(), {});
    if (!stats) {
      state.SkipWithError(stats.error().ToString().c_str());
      break;
    }
    kinds = stats->kinds.size();
    months = 0;
    for (const KindStatistics& k : stats->kinds) months += k.months.size();
    pending = stats->pending;
    benchmark::DoNotOptimize(stats->total.closed);
  }
  state.counters["kinds"] = static_cast<double>(kinds);
  state.counters["kind_months"] = static_cast<double>(months);
  state.counters["pending"] = static_cast<double>(pending);
}

// A store built and folded once per size, kept to the end of the run:
// Google Benchmark calls a benchmark several times (to choose its
// iterations, and once per repetition), and each call should measure the
// query, not a build.
struct FoldedStore {
  std::unique_ptr<Store> store;
  double fold_s = 0;
  size_t folded = 0;
};

FoldedStore& FoldedStoreOf(int records) {
  static std::map<int, FoldedStore> stores;
  FoldedStore& slot = stores[records];
  if (slot.store == nullptr) {
    slot.store = BuildStore(records);
    const auto started = std::chrono::steady_clock::now();
    slot.folded = Value(slot.store->engine().FoldStatistics(), "fold");
    slot.fold_s = std::chrono::duration<double>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  }
  return slot;
}

void BM_Statistics(benchmark::State& state) {
  FoldedStore& folded = FoldedStoreOf(static_cast<int>(state.range(0)));
  state.counters["fold_s"] = folded.fold_s;
  state.counters["folded"] = static_cast<double>(folded.folded);
  QueryLoop(state, *folded.store);
}
BENCHMARK(BM_Statistics)
    ->ArgName("records")
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_StatisticsUnfolded(benchmark::State& state) {
  auto store = BuildStore(static_cast<int>(state.range(0)));
  QueryLoop(state, *store);
}
BENCHMARK(BM_StatisticsUnfolded)
    ->ArgName("records")
    ->Arg(10'000)
    ->Arg(100'000)
    ->Unit(benchmark::kMicrosecond)
    ->Repetitions(1)
    ->UseRealTime();

}  // namespace
}  // namespace custos

BENCHMARK_MAIN();
