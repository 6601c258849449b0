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
// Time comes from a ManualClock. The history is written unsynced; each
// scope runs with synchronous writes off and on (sync:0, sync:1: the
// engine reopened with Options::sync_writes, its act's events then synced
// before it answers).
//
// BM_StatisticsInHistory then times the statistics query in the same store,
// its history at 1,000,000 events (issue 16's workload 8): a read that
// writes nothing, so one figure stands for both durabilities.
// BM_RawBreachScope and BM_RawStatisticsInHistory are their peers on a bare
// LevelDB holding the same history (below). Run without random
// interleaving (bench/compare.py does): the stores only grow.

#include <benchmark/benchmark.h>
#include <leveldb/db.h>
#include <leveldb/iterator.h>
#include <leveldb/write_batch.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
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

// The window of `windows` (one per kWindowDisclosures, in order) holding
// `disclosures` reads by the suspect.
std::pair<int64_t, int64_t> WindowOf(
    const std::vector<std::pair<int64_t, int64_t>>& windows, int disclosures) {
  for (size_t i = 0; i < std::size(kWindowDisclosures); ++i) {
    if (kWindowDisclosures[i] == disclosures) return windows[i];
  }
  std::fprintf(stderr, "no window of %d disclosures\n", disclosures);
  std::abort();
}

// A scope benchmark's checks and counters, Custos's or raw LevelDB's.
void EndScopes(benchmark::State& state, int disclosures, uint64_t found,
               size_t subjects, uint64_t history_events, const Laps& laps) {
  if (found != static_cast<uint64_t>(disclosures)) {
    state.SkipWithError("the scope did not find the window's disclosures");
  }
  state.counters["history_events"] =
      benchmark::Counter(static_cast<double>(history_events));
  state.counters["disclosures"] =
      benchmark::Counter(static_cast<double>(found));
  state.counters["subjects"] =
      benchmark::Counter(static_cast<double>(subjects));
  SetLapCounters(state, laps, "scope_ms_");
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
    options_.table_reads = bench::TableReadsFromEnv();
    options_.sync_writes = false;
    options_.clock = &clock_;
    engine_ = bench::OpenEngine(options_, master_);
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

  // Reopens the engine with Options::sync_writes = `sync` unless it is
  // open so already (the actors stay valid: their credentials are kept).
  void SetSync(bool sync) {
    if (options_.sync_writes == sync) return;
    engine_.reset();
    options_.sync_writes = sync;
    engine_ = bench::OpenEngine(options_, master_);
  }

  Engine& engine() { return *engine_; }
  const Actor& auditor() const { return *auditor_; }
  uint64_t events() const { return events_; }
  void CountEvents(uint64_t n) { events_ += n; }
  // [from, to) of the window holding `disclosures` reads by the suspect.
  std::pair<int64_t, int64_t> Window(int disclosures) const {
    return WindowOf(windows_, disclosures);
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
  const crypto::SecretKey master_ = crypto::SecretKey::Generate();
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
  // Kept to the end of the run, then closed and its directory removed
  // (a pointer never deleted left a history of up to 800 MiB in /tmp
  // after every run).
  static History history;
  return history;
}

void BM_BreachScope(benchmark::State& state) {
  const auto events = static_cast<uint64_t>(state.range(0));
  const int disclosures = static_cast<int>(state.range(1));
  const bool sync = state.range(2) != 0;
  History& history = TheHistory();
  history.SetSync(false);
  history.GrowTo(events);
  history.SetSync(sync);
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
  EndScopes(state, disclosures, found, subjects, history.events(), laps);
}
// Registered by hand, history size outermost (the store only grows), then
// the durability (one reopen of the engine each way per size).
void Sizes(benchmark::internal::Benchmark* b) {
  for (int64_t events : {25'000, 100'000, 1'000'000}) {
    for (int64_t sync : {0, 1}) {
      for (int64_t disclosures : kWindowDisclosures) {
        b->Args({events, disclosures, sync});
      }
    }
  }
}
BENCHMARK(BM_BreachScope)
    ->ArgNames({"events", "disclosures", "sync"})
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
  history.SetSync(false);
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

// ---- The raw-LevelDB peer ----
//
// The same history in a bare LevelDB (bench::EngineLikeOptions), written
// and scoped as a store with no encryption, no hash chain, no MACs and no
// principals would: what the storage under Custos costs for the same
// reads and writes. Keys and values:
//   "r" + id (8 B big-endian)  -> a record: kind, status, case and the
//       month it was created, tab-separated, then kRawPartBytes of filler
//       (Custos's sealed 256 B subject part: 256 B + 40 B of nonce and tag);
//   "e" + seq (8 B big-endian) -> an event: principal, action, record id,
//       subject identifier, tab-separated, then kRawEventPartBytes of
//       filler (pg_workloads_bench's sealed event part: 112 B + 40 B);
//   "d" + principal + '\0' + at + seq (8 B big-endian each) -> "": the
//       disclosure index the scope looks up, as Custos indexes disclosures
//       by principal and time.
// The history has breach_bench's shape: the 10,000 records' creates, the
// three windows' reads by "suspect" (in batches of kBatch, one write each),
// then reads by the other readers and the suspect (every tenth batch), one
// second apart. A scope scans the window's index range, reads each event by
// its sequence number, groups the disclosures by subject, and writes one
// event per subject and one for the act (with their index keys) in one
// write, synced or not: Custos's scope does the same reads and writes and,
// besides, opens each subject's identifier and checks the events.
// BM_RawStatisticsInHistory counts the records by kind, status and month
// and their attributes in one scan of the 10,000 records: with no
// statistics index (Custos keeps one, folded, that survives erasure), the
// same answer computed from the records.

constexpr size_t kRawPartBytes = 256 + 40;
constexpr size_t kRawEventPartBytes = 112 + 40;

std::string BigEndian(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  return out;
}

uint64_t FromBigEndian(std::string_view bytes) {
  uint64_t value = 0;
  for (char c : bytes) value = (value << 8) | static_cast<uint8_t>(c);
  return value;
}

// The tab-separated field `n` of `value` (empty past the last).
std::string_view Field(std::string_view value, int n) {
  for (int i = 0; i < n; ++i) {
    const size_t tab = value.find('\t');
    if (tab == std::string_view::npos) return {};
    value.remove_prefix(tab + 1);
  }
  return value.substr(0, value.find('\t'));
}

// `prefix` + `n` (8 B big-endian): a record's or an event's key.
std::string NumberKey(char prefix, uint64_t n) {
  std::string key(1, prefix);
  key += BigEndian(n);
  return key;
}

std::string DisclosureKey(std::string_view principal, int64_t at,
                          uint64_t seq) {
  std::string key = "d";
  key += principal;
  key += '\0';
  key += BigEndian(static_cast<uint64_t>(at));
  key += BigEndian(seq);
  return key;
}

class RawHistory {
 public:
  RawHistory() {
    leveldb::DB* db = nullptr;
    leveldb::Options options = bench::EngineLikeOptions();
    options.create_if_missing = true;
    Check(leveldb::DB::Open(options, dir_.path() + "/raw", &db),
          "open raw LevelDB");
    db_.reset(db);
    leveldb::WriteBatch batch;
    for (int i = 0; i < kRecords; ++i) {
      std::string record = "request\topen\tc" + std::to_string(i) + "\t2025-06";
      record += '\t';
      record.append(kRawPartBytes, 'x');
      batch.Put(NumberKey('r', static_cast<uint64_t>(i)), record);
      AppendEvent(batch, "owner", "create", i, at_);
      if ((i + 1) % kBatch == 0) Write(batch, false);
    }
    int64_t at = kStartMicros + kHour;
    for (int disclosures : kWindowDisclosures) {
      windows_.push_back({at, at + kHour});
      at_ = at;
      ReadBatches("suspect", disclosures, kHour - 1);
      at += 2 * kHour;
    }
    at_ = at;
  }

  void GrowTo(uint64_t events) {
    int turn = 0;
    while (events_ < events) {
      const std::string who =
          turn % 10 == 9 ? "suspect" : Reader(turn % kOtherReaders);
      ++turn;
      at_ += 1'000'000;
      ReadBatches(who, kBatch, 0);
    }
  }

  // The scope of "suspect" over [from, to): the disclosures found and the
  // subjects they concern, written down as the act's events.
  std::pair<uint64_t, size_t> Scope(int64_t from, int64_t to, bool sync) {
    const std::string begin = DisclosureKey("suspect", from, 0);
    const std::string end = DisclosureKey("suspect", to, 0);
    std::map<std::string, std::vector<uint64_t>> by_subject;
    uint64_t found = 0;
    std::unique_ptr<leveldb::Iterator> it(
        db_->NewIterator(leveldb::ReadOptions()));
    std::string event;
    for (it->Seek(begin); it->Valid() && it->key().compare(end) < 0;
         it->Next()) {
      const std::string_view key(it->key().data(), it->key().size());
      const uint64_t seq = FromBigEndian(key.substr(key.size() - 8));
      Check(db_->Get(leveldb::ReadOptions(), NumberKey('e', seq), &event),
            "read an event");
      by_subject[std::string(Field(event, 3))].push_back(seq);
      ++found;
    }
    Check(it->status(), "scan the disclosures");
    leveldb::WriteBatch batch;
    for (const auto& [subject, seqs] : by_subject) {
      AppendEvent(batch, "auditor", "breach_scope", 0, at_, subject);
    }
    AppendEvent(batch, "auditor", "breach_scope_act", 0, at_);
    Write(batch, sync);
    return {found, by_subject.size()};
  }

  // Records by kind, status and month, and by attribute: the number
  // created.
  uint64_t Statistics() {
    std::map<std::string, uint64_t> by_kind_status_month;
    std::map<std::string, uint64_t> attributes;
    uint64_t created = 0;
    std::unique_ptr<leveldb::Iterator> it(
        db_->NewIterator(leveldb::ReadOptions()));
    for (it->Seek("r"); it->Valid() && it->key().starts_with("r"); it->Next()) {
      const std::string_view value(it->value().data(), it->value().size());
      std::string group(Field(value, 0));
      group += '/';
      group += Field(value, 1);
      group += '/';
      group += Field(value, 3);
      ++by_kind_status_month[group];
      if (!Field(value, 1).empty()) ++attributes["status"];
      if (!Field(value, 2).empty()) ++attributes["case"];
      ++created;
    }
    Check(it->status(), "scan the records");
    return created;
  }

  uint64_t events() const { return events_; }
  std::pair<int64_t, int64_t> Window(int disclosures) const {
    return WindowOf(windows_, disclosures);
  }

 private:
  // An event of `record` (its subject, when none is given: the record's
  // own), with a disclosure key when it is a read.
  void AppendEvent(leveldb::WriteBatch& batch, std::string_view principal,
                   std::string_view action, int record, int64_t at,
                   std::string_view subject = {}) {
    const uint64_t seq = ++seq_;
    std::string event(principal);
    event += '\t';
    event += action;
    event += '\t';
    event += std::to_string(record);
    event += '\t';
    event += subject.empty() ? Identifier(record) : std::string(subject);
    event += '\t';
    event.append(kRawEventPartBytes, 'e');
    batch.Put(NumberKey('e', seq), event);
    if (action != "create") batch.Put(DisclosureKey(principal, at, seq), "");
    ++events_;
  }

  void ReadBatches(const std::string& who, int count, int64_t span) {
    const int64_t start = at_;
    const int batches = count / kBatch;
    for (int b = 0; b < batches; ++b) {
      if (span > 0) at_ = start + span * b / batches;
      leveldb::WriteBatch batch;
      for (int i = 0; i < kBatch; ++i) {
        const int record = static_cast<int>(next_read_++ % kRecords);
        // The read itself: Custos reads the record to disclose it.
        std::string value;
        Check(db_->Get(leveldb::ReadOptions(),
                       NumberKey('r', static_cast<uint64_t>(record)), &value),
              "read a record");
        AppendEvent(batch, who, "read", record, at_);
      }
      Write(batch, false);
    }
  }

  void Write(leveldb::WriteBatch& batch, bool sync) {
    leveldb::WriteOptions options;
    options.sync = sync;
    Check(db_->Write(options, &batch), "write");
    batch.Clear();
  }

  TempDir dir_;
  std::unique_ptr<leveldb::DB> db_;
  std::vector<std::pair<int64_t, int64_t>> windows_;
  int64_t at_ = kStartMicros;
  uint64_t seq_ = 0;
  uint64_t events_ = 0;
  size_t next_read_ = 0;
};

RawHistory& TheRawHistory() {
  static RawHistory history;  // As TheHistory().
  return history;
}

// BM_BreachScope's peer, with its arguments.
void BM_RawBreachScope(benchmark::State& state) {
  const int disclosures = static_cast<int>(state.range(1));
  const bool sync = state.range(2) != 0;
  RawHistory& history = TheRawHistory();
  history.GrowTo(static_cast<uint64_t>(state.range(0)));
  const auto [from, to] = history.Window(disclosures);
  uint64_t found = 0;
  size_t subjects = 0;
  Laps laps;
  for (auto _ : state) {
    laps.Lap();
    std::tie(found, subjects) = history.Scope(from, to, sync);
  }
  EndScopes(state, disclosures, found, subjects, history.events(), laps);
}
BENCHMARK(BM_RawBreachScope)
    ->ArgNames({"events", "disclosures", "sync"})
    ->Apply(Sizes)
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// BM_StatisticsInHistory's peer: the raw history's records counted.
void BM_RawStatisticsInHistory(benchmark::State& state) {
  RawHistory& history = TheRawHistory();
  history.GrowTo(static_cast<uint64_t>(state.range(0)));
  uint64_t created = 0;
  Laps laps;
  for (auto _ : state) {
    laps.Lap();
    created = history.Statistics();
  }
  if (created != static_cast<uint64_t>(kRecords)) {
    state.SkipWithError("the raw statistics do not count the records");
  }
  state.counters["history_events"] =
      benchmark::Counter(static_cast<double>(history.events()));
  SetLapCounters(state, laps, "query_ms_");
}
BENCHMARK(BM_RawStatisticsInHistory)
    ->ArgName("events")
    ->Arg(1'000'000)
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace custos

BENCHMARK_MAIN();
