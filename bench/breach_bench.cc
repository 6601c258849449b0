// The cost of a breach scope (issue 15) against the size of the access
// history: Engine::ProduceBreachScope for one principal over a fixed time
// window, in stores whose history grows from 25,000 to 1,000,000 events,
// with 100, 1,000 and 10,000 disclosures to that principal in the window.
// The claim measured (docs/accountability.md, "How it works, and what it
// costs"): the cost grows with the disclosures in the window, not with the
// whole history, because disclosures are indexed by principal and time when
// their event is written.
//
// One store, grown in place: the benchmarks run in the order registered
// (history size ascending), and each first appends events until the history
// holds its size. The layout of the history:
// - 10,000 records, each about one subject of its own, owned by "owner" and
//   granted to "suspect" and to four other readers;
// - three windows of one hour each, 100, 1,000 and 10,000 disclosures to
//   "suspect" in them (reads in batches of 100, GetRecords);
// - then, to grow the history, reads by the other readers and by "suspect"
//   (one batch in ten) at later times: the suspect's own history grows too,
//   outside the windows.
// Every event is a real one written by the engine. The counter
// history_events counts those of the record creates, the reads and the
// scopes' own acts (one event per subject in a scope, and one for the act),
// not the few of the principals' creation.
// Time comes from a ManualClock; writes are not synced.
//
// BM_StatisticsInHistory then times the statistics query in the same store,
// its history at 1,000,000 events (issue 16's workload 8). Run without
// random interleaving (bench/compare.py does): the store only grows.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
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
#include "storage/breach_scope.h"
#include "storage/engine.h"
#include "storage/statistics.h"
#include "storage/types.h"

namespace custos {
namespace {

using bench::Check;
using bench::Value;

constexpr int64_t kStartMicros = 1'750'000'000'000'000;  // June 2025.
constexpr int kRecords = 10'000;
constexpr int kBatch = 100;  // Limits::max_batch_records' default.
constexpr int kOtherReaders = 4;
// The windows' disclosures to the suspect, and where each window starts.
constexpr int kWindowDisclosures[] = {100, 1'000, 10'000};
constexpr int64_t kHour = int64_t{3'600'000'000};

double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

// The wall time of each iteration of a benchmark loop, from its start to
// the next one's (the answer's destruction included, as in Google
// Benchmark's own time): Lap() first thing in each iteration, Millis()
// after the loop.
class Laps {
 public:
  void Lap() { starts_.push_back(std::chrono::steady_clock::now()); }
  std::vector<double> Millis() const {
    const auto end = std::chrono::steady_clock::now();
    std::vector<double> millis;
    for (size_t i = 0; i < starts_.size(); ++i) {
      const auto next = i + 1 < starts_.size() ? starts_[i + 1] : end;
      millis.push_back(
          std::chrono::duration<double, std::milli>(next - starts_[i]).count());
    }
    return millis;
  }

 private:
  std::vector<std::chrono::steady_clock::time_point> starts_;
};

// Each iteration's time as counters PREFIX0, PREFIX1, ...
// (bench/compare.py takes them as the runs).
void SetLapCounters(benchmark::State& state, const Laps& laps,
                    const std::string& prefix) {
  const std::vector<double> millis = laps.Millis();
  for (size_t i = 0; i < millis.size(); ++i) {
    state.counters[prefix + std::to_string(i)] = millis[i];
  }
}

class TempDir : public bench::TempDir {
 public:
  TempDir() : bench::TempDir("custos-breach-bench") {}
};

std::string Identifier(int n) { return bench::SubjectIdentifier(n); }

std::string Reader(int n) { return "reader-" + std::to_string(n); }

class History {
 public:
  History() : clock_(FromMicros(kStartMicros)) {
    options_.data_dir = dir_.path() + "/data";
    options_.sync_writes = false;
    options_.clock = &clock_;
    engine_ = Value(Engine::Open(options_, crypto::SecretKey::Generate()),
                    "open engine");
    Value(engine_->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
    const Actor admin = Value(engine_->ActorFor("admin"), "admin actor");
    Value(engine_->CreatePrincipal(admin, "auditor", "Auditor",
                                   {Role::kAuditor}, /*redacted=*/false),
          "create auditor");
    std::vector<std::string> readers = {"suspect"};
    for (int i = 0; i < kOtherReaders; ++i) readers.push_back(Reader(i));
    Value(engine_->CreatePrincipal(admin, "owner", "Owner", {Role::kUser},
                                   /*redacted=*/false),
          "create owner");
    for (const std::string& id : readers) {
      Value(engine_->CreatePrincipal(admin, id, id, {Role::kUser},
                                     /*redacted=*/false),
            "create reader");
    }
    auditor_.emplace(Value(engine_->ActorFor("auditor"), "auditor actor"));
    suspect_.emplace(Value(engine_->ActorFor("suspect"), "suspect actor"));
    for (int i = 0; i < kOtherReaders; ++i) {
      others_.push_back(Value(engine_->ActorFor(Reader(i)), "reader actor"));
    }
    const Actor owner = Value(engine_->ActorFor("owner"), "owner actor");
    for (int first = 0; first < kRecords; first += kBatch) {
      std::vector<NewRecord> batch;
      for (int i = first; i < first + kBatch; ++i) {
        NewRecord r;
        r.kind = "request";
        r.attributes = {{"status", "open"}, {"case", "c" + std::to_string(i)}};
        r.personal.push_back({Identifier(i),
                              {{"name", "Alex Example"},
                               {"email", Identifier(i)},
                               {"notes", std::string(200, 'x')}}});
        r.grants = readers;
        batch.push_back(std::move(r));
      }
      auto made = Value(engine_->CreateRecords(owner, batch), "create records");
      ids_.insert(ids_.end(), made.begin(), made.end());
      events_ += kBatch;
    }
    // The windows, one hour each, an hour apart.
    int64_t at = kStartMicros + kHour;
    for (int disclosures : kWindowDisclosures) {
      windows_.push_back({at, at + kHour});
      clock_.Set(FromMicros(at));
      ReadBatches(*suspect_, disclosures, kHour - 1);
      at += 2 * kHour;
    }
    clock_.Set(FromMicros(at));
  }

  // Appends reads after the windows until the history holds `events`.
  void GrowTo(uint64_t events) {
    int turn = 0;
    while (events_ < events) {
      const Actor& who =
          turn % 10 == 9 ? *suspect_ : others_[turn % kOtherReaders];
      ++turn;
      clock_.Advance(std::chrono::seconds(1));
      ReadBatches(who, kBatch, 0);
    }
  }

  Engine& engine() { return *engine_; }
  const Actor& auditor() const { return *auditor_; }
  uint64_t events() const { return events_; }
  void CountEvents(uint64_t n) { events_ += n; }
  // [from, to) of the window holding `disclosures` reads by the suspect.
  std::pair<int64_t, int64_t> Window(int disclosures) const {
    for (size_t i = 0; i < std::size(kWindowDisclosures); ++i) {
      if (kWindowDisclosures[i] == disclosures) return windows_[i];
    }
    std::fprintf(stderr, "no window of %d disclosures\n", disclosures);
    std::abort();
  }

 private:
  // `count` reads by `who` in batches of kBatch, spread over `span` micros
  // from now.
  void ReadBatches(const Actor& who, int count, int64_t span) {
    const int64_t start = ToMicros(clock_.Now());
    const int batches = count / kBatch;
    for (int b = 0; b < batches; ++b) {
      if (span > 0) clock_.Set(FromMicros(start + span * b / batches));
      std::vector<uint64_t> ids;
      for (int i = 0; i < kBatch; ++i) {
        ids.push_back(ids_[next_read_++ % ids_.size()]);
      }
      auto got = Value(engine_->GetRecords(who, ids), "read records");
      for (const auto& one : got) {
        if (!one) Check(one.error(), "read one record");
      }
      events_ += kBatch;
    }
  }

  TempDir dir_;
  ManualClock clock_;
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::optional<Actor> auditor_;
  std::optional<Actor> suspect_;
  std::vector<Actor> others_;
  std::vector<uint64_t> ids_;
  std::vector<std::pair<int64_t, int64_t>> windows_;
  uint64_t events_ = 0;
  size_t next_read_ = 0;
};

History& TheHistory() {
  static History* history = new History();  // Kept to the end of the run.
  return *history;
}

void BM_BreachScope(benchmark::State& state) {
  const auto events = static_cast<uint64_t>(state.range(0));
  const int disclosures = static_cast<int>(state.range(1));
  History& history = TheHistory();
  history.GrowTo(events);
  const auto [from, to] = history.Window(disclosures);
  BreachQuery query;
  query.principal_ids = {"suspect"};
  query.from = FromMicros(from);
  query.to = FromMicros(to);
  query.purpose = "benchmark: credential of 'suspect' reported stolen";
  size_t subjects = 0;
  uint64_t found = 0;
  Laps laps;
  for (auto _ : state) {
    laps.Lap();
    auto scope = history.engine().ProduceBreachScope(history.auditor(), query);
    if (!scope) {
      state.SkipWithError(scope.error().ToString().c_str());
      break;
    }
    subjects = scope->subjects.size();
    found = scope->disclosures;
    history.CountEvents(subjects + 1);  // The act's own events.
  }
  if (found != static_cast<uint64_t>(disclosures)) {
    state.SkipWithError("the scope did not find the window's disclosures");
  }
  state.counters["history_events"] =
      benchmark::Counter(static_cast<double>(history.events()));
  state.counters["disclosures"] =
      benchmark::Counter(static_cast<double>(found));
  state.counters["subjects"] =
      benchmark::Counter(static_cast<double>(subjects));
  SetLapCounters(state, laps, "scope_ms_");
}
// Registered by hand, history size outermost: the store only grows.
void Sizes(benchmark::internal::Benchmark* b) {
  for (int64_t events : {25'000, 100'000, 1'000'000}) {
    for (int64_t disclosures : kWindowDisclosures) {
      b->Args({events, disclosures});
    }
  }
}
BENCHMARK(BM_BreachScope)
    ->ArgNames({"events", "disclosures"})
    ->Apply(Sizes)
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Issue 16's workload 8, "statistics at 1,000,000 events": the statistics
// query (Engine::ProduceStatistics, by the auditor) in the same store, its
// history grown to at least `events`, after a fold of every transition
// (timed once: counter fold_ms). Registered after the scopes: the history
// has then at least the largest size. Its records are the store's 10,000:
// the query's cost follows the kinds, months and attribute values, which
// reads do not add to (storage/statistics.h).
void BM_StatisticsInHistory(benchmark::State& state) {
  History& history = TheHistory();
  history.GrowTo(static_cast<uint64_t>(state.range(0)));
  const auto fold_started = std::chrono::steady_clock::now();
  Value(history.engine().FoldStatistics(), "fold statistics");
  state.counters["fold_ms"] = MillisSince(fold_started);
  Laps laps;
  uint64_t created = 0;
  for (auto _ : state) {
    laps.Lap();
    auto stats = history.engine().ProduceStatistics(history.auditor(), {});
    if (!stats) {
      state.SkipWithError(stats.error().ToString().c_str());
      break;
    }
    created = 0;
    for (const KindStatistics& kind : stats->kinds) {
      created += kind.total.created;
    }
  }
  if (created != static_cast<uint64_t>(kRecords)) {
    state.SkipWithError("the statistics do not count the store's records");
  }
  state.counters["history_events"] =
      benchmark::Counter(static_cast<double>(history.events()));
  SetLapCounters(state, laps, "query_ms_");
}
BENCHMARK(BM_StatisticsInHistory)
    ->ArgName("events")
    ->Arg(1'000'000)
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace custos

BENCHMARK_MAIN();
