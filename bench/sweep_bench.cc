// Benchmark of Engine::Sweep (issue 4, docs/retention.md "Sweeper"): the
// cost of a sweep that finds exactly 1,000 due records should be about the
// same in a store of 10,000 records and in one of 1,000,000, since a sweep
// reads only the deadline index up to `as_of` and the records it names.
// Results are recorded in bench/RESULTS.md.
//
// Each store lives in a fresh mkdtemp() directory under /tmp, removed at
// exit, and is built once, through the engine's public API only, with
// Options::sync_writes = false and a ManualClock:
//
// - up to kGroups groups of kDuePerSweep alerts, group g closed at
//   kStart + (g + 1) hours, hence erased by the shipped policy (P6M)
//   six months after that, each group in a deadline bucket of its own (one
//   UTC hour, issue 11): each sweep takes the last instant of one group's
//   bucket as `as_of`, finds exactly that group due (the earlier groups
//   were swept before, the later ones are due an hour or more later), and
//   destroys that bucket's key (checked: buckets_destroyed == 1);
// - every record as issue 16's workload 1 (bench::WorkloadRecord: 4
//   attributes, one personal part of 256 bytes, as sweep_pg_bench's rows; the
//   subjects a pool of kSubjectPool);
// - the rest (the "bulk"): requests, one in four withdrawn (BLOCKED, with a
//   deadline-index entry three years on, far after every sweep's as_of), the
//   others ACTIVE (the request policy has no close_after: no deadline).
//
// The groups' records are either the first ids of the store ("clustered":
// records due together were created together) or spread evenly over the
// whole id range ("spread": each group's records are interleaved with the
// bulk, as when records closed on one day were created over months). The
// layout matters to Options::compact_after_erasure, which compacts the key
// span from the first to the last record a sweep erased.
//
// Before each benchmark the store is settled: engine closed, records
// database fully compacted (LevelDB's CompactRange through its own handle,
// which rewrites files but writes no data), sync(), engine reopened with the
// benchmark's compact_after_erasure (and, for the batched one,
// erasure_compaction_delay), its statistics deltas folded (the build's:
// each sweep folds those written since the last fold, and the first sweep
// measured would fold the whole build's). Each benchmark runs kSweepsPerRun
// iterations, one sweep each (batch_size 100, no pause, sync_writes false);
// the per-sweep times are also printed to stderr. The store size is the
// same at every sweep: sweeps erase records, they never remove any. Each
// sweep also reports when its erasure by key ended (counter
// undecipherable_ms: the group's bucket key destroyed, before any record is
// rewritten; docs/retention.md "Deadline keys").
//
// BM_SweepHalfDue is issue 11's own case: half of a store of 1,000,000 due
// in one bucket, swept by one call (see its comment).

#include <benchmark/benchmark.h>
#include <leveldb/db.h>
#include <leveldb/options.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
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
// Sweeps per benchmark (its iterations); four benchmarks per store
// (compaction off with sync off and with sync on, on, and batched).
constexpr int kSweepsPerRun = 3;
constexpr int kGroups = 4 * kSweepsPerRun;
// At most nine tenths of a store's records are due: a store of 10,000
// holds nine groups, and is built again when a benchmark finds fewer than
// kSweepsPerRun left (StoreFor).
int GroupsFor(int records) {
  return std::min(kGroups, records * 9 / 10 / kDuePerSweep);
}
// The batched benchmark's Options::erasure_compaction_delay: its sweeps'
// as_of are an hour apart, so the third sweep of each run finds the first
// one's erasures two hours old and compacts the three sweeps' at once.
constexpr std::chrono::hours kBatchedDelay{2};
// Subjects the records name, cycled; their keys fit the default key cache.
constexpr int kSubjectPool = 1'000;

using bench::Check;
using bench::Value;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

double Mean(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return values.empty() ? 0 : sum / static_cast<double>(values.size());
}

// A sweep's progress callback that appends to `out` the milliseconds from
// `started` to the end of the sweep's erasure by key: the first report of
// the kDestroyingKeys phase, made once the due buckets' keys are destroyed
// and before any record is rewritten (storage/sweeper.h).
std::function<void(const SweepProgress&)> KeysGoneAt(
    std::chrono::steady_clock::time_point started, std::vector<double>& out) {
  auto seen = std::make_shared<bool>(false);
  return [started, &out, seen](const SweepProgress& progress) {
    if (*seen || progress.phase != SweepPhase::kDestroyingKeys) return;
    *seen = true;
    out.push_back(SecondsSince(started) * 1e3);
  };
}

// Records in `out` when the erased bytes were gone (ms after `started`),
// as the sweep's progress tells it: at the first report after a compaction
// (a sweep that compacts an erased bucket's range before its rewrite), or
// nothing (then the sweep's end is the time: its last step compacts).
std::function<void(const SweepProgress&)> BytesGoneAt(
    std::chrono::steady_clock::time_point started, std::vector<double>& out) {
  auto compacting = std::make_shared<bool>(false);
  return [started, &out, compacting](const SweepProgress& progress) {
    if (!out.empty()) return;
    if (progress.phase == SweepPhase::kCompacting) {
      *compacting = true;
    } else if (*compacting) {
      out.push_back(SecondsSince(started) * 1e3);
    }
  };
}

// A TempDir named for this benchmark.
class TempDir : public bench::TempDir {
 public:
  TempDir() : bench::TempDir("custos-sweep-bench") {}
};

enum class Layout { kClustered = 0, kSpread = 1 };

std::string Identifier(int n) {
  char buffer[48];
  std::snprintf(buffer, sizeof(buffer), "subject-%05d@example.org", n);
  return buffer;
}

// A store of `records` records laid out as the file comment says, with
// `groups` groups of `due_per_group` due records each.
class SweepStore {
 public:
  SweepStore(int records, Layout layout, int groups,
             int due_per_group = kDuePerSweep)
      : records_(records),
        groups_(groups),
        due_per_group_(due_per_group),
        clock_(FromMicros(kStartMicros)),
        master_(crypto::SecretKey::Generate()) {
    options_.data_dir = dir_.path() + "/data";
    options_.sync_writes = false;
    options_.clock = &clock_;
    const auto started = std::chrono::steady_clock::now();
    Open();
    Value(engine_->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
    admin_.emplace(Value(engine_->ActorFor("admin"), "admin actor"));
    Value(engine_->CreatePrincipal(*admin_, "user", "User", {Role::kUser},
                                   /*redacted=*/false),
          "create user");
    user_.emplace(Value(engine_->ActorFor("user"), "user actor"));
    Build(layout);
    build_seconds_ = SecondsSince(started);
    const auto settle_started = std::chrono::steady_clock::now();
    Settle(/*compact_after_erasure=*/true, /*sync_writes=*/false);
    std::fprintf(stderr,
                 "[sweep_bench] store of %d records (%s): built in %.1f s, "
                 "settled in %.1f s, records database %.1f MiB\n",
                 records_,
                 layout == Layout::kClustered ? "clustered" : "spread",
                 build_seconds_, SecondsSince(settle_started),
                 static_cast<double>(RecordsBytes()) / (1 << 20));
  }

  // Closes the engine, compacts the whole records database, flushes every
  // dirty page to disk and reopens the engine: the timed sweeps then pay for
  // their own work, not for the setup's compactions and writeback. The
  // reopen compacts whatever earlier sweeps left queued; with a `delay`,
  // the engine is then opened once more with it.
  void Settle(bool compact_after_erasure, bool sync_writes,
              std::chrono::microseconds delay = std::chrono::microseconds(0)) {
    engine_.reset();
    bench::CompactDatabase(options_.data_dir + "/records");
    ::sync();
    options_.compact_after_erasure = compact_after_erasure;
    options_.sync_writes = sync_writes;
    options_.erasure_compaction_delay = std::chrono::microseconds(0);
    Open();
    if (delay.count() > 0) {
      engine_.reset();
      options_.erasure_compaction_delay = delay;
      Open();
    }
    // Engine::Sweep ends with a fold of the statistics deltas written since
    // the last one: without this, the first sweep measured on a store would
    // fold every create and close of its build (1.6 s at 1,000,000
    // records, against 30-40 ms for a sweep of 1,000 due).
    Value(engine_->FoldStatistics(), "fold statistics");
  }

  // Closes and reopens the engine, nothing else. Open() compacts what
  // earlier sweeps queued for compaction when compact_after_erasure is on.
  void Reopen(bool compact_after_erasure, bool sync_writes) {
    engine_.reset();
    options_.compact_after_erasure = compact_after_erasure;
    options_.sync_writes = sync_writes;
    Open();
  }

  int groups_left() const { return groups_ - next_group_; }

  // The as_of of the next group's sweep; nullopt once all were swept.
  std::optional<Timestamp> NextAsOf() {
    if (next_group_ == groups_) return std::nullopt;
    // The last instant of the group's deadline bucket (one UTC hour): the
    // sweep erases the group and destroys its bucket's key.
    return Value(AddPeriod(ClosedAt(next_group_++),
                           Value(ParsePeriod("P6M"), "parse period")),
                 "add period") +
           std::chrono::hours(1) - std::chrono::microseconds(1);
  }

  Engine& engine() { return *engine_; }
  const Actor& admin() const { return *admin_; }
  // A sweep writes only what is in force: the clock moves to its as_of.
  void SetClock(Timestamp now) { clock_.Set(now); }
  int records() const { return records_; }
  // The build's creates (sync off, one call each), per record.
  double create_us_per_record() const {
    return create_seconds_ * 1e6 / records_;
  }

 private:
  static Timestamp ClosedAt(int group) {
    // An hour apart: one deadline bucket per group (issue 11).
    return FromMicros(kStartMicros) + std::chrono::hours(group + 1);
  }

  void Open() {
    engine_ =
        Value(Engine::Open(options_,
                           Value(crypto::SecretKey::FromBytes(master_.bytes()),
                                 "copy master key")),
              "open engine");
  }

  void Build(Layout layout) {
    const int due_total = groups_ * due_per_group_;
    if (records_ < due_total) {
      std::fprintf(stderr, "a store needs at least %d records\n", due_total);
      std::abort();
    }
    std::vector<int8_t> group_of(static_cast<size_t>(records_), -1);
    for (int j = 0; j < due_total; ++j) {
      const int64_t position =
          layout == Layout::kClustered
              ? j
              : static_cast<int64_t>(j) * records_ / due_total;
      group_of[static_cast<size_t>(position)] = static_cast<int8_t>(
          layout == Layout::kClustered ? j / due_per_group_ : j % groups_);
    }
    std::vector<std::vector<uint64_t>> groups(static_cast<size_t>(groups_));
    std::vector<uint64_t> to_withdraw;
    int bulk = 0;
    const auto creates_started = std::chrono::steady_clock::now();
    for (int i = 0; i < records_; ++i) {
      const int group = group_of[static_cast<size_t>(i)];
      const uint64_t id = Value(
          engine_->CreateRecord(
              *user_, bench::WorkloadRecord(group >= 0 ? "alert" : "request",
                                            Identifier(i % kSubjectPool),
                                            static_cast<uint64_t>(i))),
          "create record");
      if (group >= 0) {
        groups[static_cast<size_t>(group)].push_back(id);
      } else if (bulk++ % 4 == 0) {
        to_withdraw.push_back(id);
      }
    }
    create_seconds_ = SecondsSince(creates_started);
    for (int g = 0; g < groups_; ++g) {
      clock_.Set(ClosedAt(g));
      for (uint64_t id : groups[static_cast<size_t>(g)]) {
        Check(engine_->Close(*user_, id), "close record");
      }
    }
    clock_.Set(FromMicros(kStartMicros) + std::chrono::hours(groups_ + 1));
    for (uint64_t id : to_withdraw) {
      Check(engine_->Withdraw(*user_, id), "withdraw record");
    }
  }

  uintmax_t RecordsBytes() const {
    uintmax_t bytes = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(
             options_.data_dir + "/records")) {
      if (entry.is_regular_file()) bytes += entry.file_size();
    }
    return bytes;
  }

  TempDir dir_;  // First member: removed after the engine is closed.
  int records_;
  int groups_;
  int due_per_group_;
  ManualClock clock_;
  crypto::SecretKey master_;
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::optional<Actor> admin_;
  std::optional<Actor> user_;
  int next_group_ = 0;
  double build_seconds_ = 0;
  double create_seconds_ = 0;
};

SweepStore& StoreFor(int records, Layout layout) {
  static std::map<std::pair<int, Layout>, std::unique_ptr<SweepStore>> stores;
  std::unique_ptr<SweepStore>& slot = stores[{records, layout}];
  if (slot == nullptr || slot->groups_left() < kSweepsPerRun) {
    slot.reset();  // Its directory first: two stores are never on disk.
    slot = std::make_unique<SweepStore>(records, layout, GroupsFor(records));
  }
  return *slot;
}

// Args: records in the store, layout (0 clustered, 1 spread), compaction:
// 0 off (compact_after_erasure false), 1 on (each sweep compacts what it
// erased before it returns), 2 batched (on, with kBatchedDelay: the first
// two sweeps only queue, the third compacts the three sweeps' erasures; the
// mean time per sweep is then the time until the bytes are gone, spread
// over the three sweeps' due records); sync: Options::sync_writes. With
// compaction off both are run; with compaction on, sync on only (the
// shipped default: the sweep's own writes are a few batches beside the
// compaction, and LevelDB's compactions do not depend on it). Counters
// sweep_ms_I and undecipherable_ms_I: sweep I's whole time and its time
// until the erasure by key ended (compare.py takes them as the runs);
// create_us_per_record, the store's build's creates.
void BM_Sweep1000Due(benchmark::State& state) {
  const int records = static_cast<int>(state.range(0));
  const Layout layout = static_cast<Layout>(state.range(1));
  const int compaction = static_cast<int>(state.range(2));
  const bool sync = state.range(3) != 0;
  const bool compact = compaction != 0;
  SweepStore& store = StoreFor(records, layout);
  store.Settle(compact, sync,
               compaction == 2 ? std::chrono::microseconds(kBatchedDelay)
                               : std::chrono::microseconds(0));
  std::vector<double> times_ms;
  std::vector<double> key_times_ms;
  for (auto _ : state) {
    state.PauseTiming();
    const std::optional<Timestamp> as_of = store.NextAsOf();
    if (!as_of) {
      state.SkipWithError("no due group left in the store");
      break;
    }
    SweepOptions options;
    options.as_of = *as_of;
    store.SetClock(*as_of);
    // The erasure by key syncs the records log whatever sync_writes says:
    // with sync off, the previous sweep's unsynced rewrites would be
    // written back inside this sweep's time.
    ::sync();
    state.ResumeTiming();
    const auto started = std::chrono::steady_clock::now();
    options.progress = KeysGoneAt(started, key_times_ms);
    auto report = store.engine().Sweep(store.admin(), options);
    times_ms.push_back(SecondsSince(started) * 1e3);
    if (!report) {
      state.SkipWithError(report.error().ToString().c_str());
      break;
    }
    if (report->erased != kDuePerSweep || report->closed != 0 ||
        report->blocked != 0 || !report->complete ||
        report->buckets_destroyed != 1) {
      state.SkipWithError("the sweep did not find exactly the due group");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kDuePerSweep);
  state.counters["store_records"] = records;
  state.counters["create_us_per_record"] = store.create_us_per_record();
  state.counters["undecipherable_ms"] = Mean(key_times_ms);
  std::string times, key_times;
  for (size_t i = 0; i < times_ms.size(); ++i) {
    state.counters["sweep_ms_" + std::to_string(i)] = times_ms[i];
    times += ' ' + std::to_string(times_ms[i]);
  }
  for (size_t i = 0; i < key_times_ms.size(); ++i) {
    state.counters["undecipherable_ms_" + std::to_string(i)] = key_times_ms[i];
    key_times += ' ' + std::to_string(key_times_ms[i]);
  }
  std::fprintf(stderr,
               "[sweep_bench] records=%d %s compact=%d sync=%d: sweep times "
               "(ms):%s; undecipherable after (ms):%s\n",
               records, layout == Layout::kClustered ? "clustered" : "spread",
               compaction, sync ? 1 : 0, times.c_str(), key_times.c_str());
}
BENCHMARK(BM_Sweep1000Due)
    ->ArgNames({"records", "spread", "compact", "sync"})
    ->Apply([](benchmark::internal::Benchmark* b) {
      for (int64_t records : {10'000, 100'000, 1'000'000}) {
        for (int64_t spread : {0, 1}) {
          b->Args({records, spread, 0, 0});
          b->Args({records, spread, 0, 1});
          b->Args({records, spread, 1, 1});
          b->Args({records, spread, 2, 1});
        }
      }
    })
    ->Iterations(kSweepsPerRun)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Issue 11's own case: half of the store due at once, in one bucket, swept
// by one call. Counters: undecipherable_us_per_record, the time until the
// erasure by key ended (the bucket key destroyed: no copy of the due
// records' ciphertexts opens any more), per due record;
// sweep_us_per_record, the whole sweep (with the hygiene that rewrites the
// due records to ERASED stubs), per due record; gone_s, the time until the
// erased bytes have left the files. Args: records, layout (0 clustered, 1
// spread), compact: 0, compact_after_erasure off during the sweep, then a
// reopen with it on, whose Open() compacts what the sweep queued (gone_s =
// sweep + reopen, compact_s the reopen); 1, on during the sweep (gone_s =
// when the sweep's progress reports the compaction done: BytesGoneAt, or
// its end), checked after it by VerifyErasure (no witnessed nonce in any
// file) and by a scan of every file for the due records' ciphertexts read
// before the sweep; sync, Options::sync_writes during the sweep (the build
// never syncs). Each run builds its own store (a sweep consumes it).
void BM_SweepHalfDue(benchmark::State& state) {
  const int records = static_cast<int>(state.range(0));
  const Layout layout = static_cast<Layout>(state.range(1));
  const bool compact = state.range(2) != 0;
  const bool sync = state.range(3) != 0;
  const int due = records / 2;
  SweepStore store(records, layout, /*groups=*/1, /*due_per_group=*/due);
  // Settled by the constructor; only the options change.
  store.Reopen(/*compact_after_erasure=*/compact, sync);
  double sweep_seconds = 0;
  double key_seconds = 0;
  double compact_seconds = 0;
  double gone_seconds = 0;
  for (auto _ : state) {
    const std::optional<Timestamp> as_of = store.NextAsOf();
    if (!as_of) {
      state.SkipWithError("no due group left: run without repetitions");
      break;
    }
    SweepOptions options;
    options.as_of = *as_of;
    store.SetClock(*as_of);
    const auto started = std::chrono::steady_clock::now();
    std::vector<double> key_ms, gone_ms;
    auto keys_gone = KeysGoneAt(started, key_ms);
    auto bytes_gone = BytesGoneAt(started, gone_ms);
    options.progress = [&](const SweepProgress& p) {
      keys_gone(p);
      bytes_gone(p);
    };
    auto report = store.engine().Sweep(store.admin(), options);
    sweep_seconds = SecondsSince(started);
    key_seconds = key_ms.empty() ? 0 : key_ms.front() / 1e3;
    if (!report) {
      state.SkipWithError(report.error().ToString().c_str());
      break;
    }
    if (report->erased != static_cast<size_t>(due) || !report->complete ||
        report->buckets_destroyed != 1) {
      state.SkipWithError("the sweep did not erase exactly the due records");
      break;
    }
    state.PauseTiming();
    if (compact) {
      gone_seconds = gone_ms.empty() ? sweep_seconds : gone_ms.front() / 1e3;
      const auto verify_started = std::chrono::steady_clock::now();
      auto verified = store.engine().VerifyErasure(store.admin());
      if (!verified || verified->found != 0 || verified->witnesses == 0) {
        state.SkipWithError("erased bytes left in the files after the sweep");
        break;
      }
      std::fprintf(stderr,
                   "[sweep_bench] VerifyErasure: %zu witnesses, %zu "
                   "found, in %.2f s\n",
                   verified->witnesses, verified->found,
                   SecondsSince(verify_started));
    } else {
      const auto reopen_started = std::chrono::steady_clock::now();
      store.Reopen(/*compact_after_erasure=*/true, sync);
      compact_seconds = SecondsSince(reopen_started);
      gone_seconds = sweep_seconds + compact_seconds;
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * due);
  state.counters["store_records"] = records;
  state.counters["create_us_per_record"] = store.create_us_per_record();
  state.counters["undecipherable_us_per_record"] = key_seconds * 1e6 / due;
  state.counters["sweep_us_per_record"] = sweep_seconds * 1e6 / due;
  state.counters["compact_s"] = compact_seconds;
  state.counters["gone_s"] = gone_seconds;
  state.counters["gone_us_per_record"] = gone_seconds * 1e6 / due;
  std::fprintf(stderr,
               "[sweep_bench] records=%d %s compact=%d sync=%d, %d due: "
               "undecipherable after %.3f s, sweep %.2f s, reopen with "
               "compaction %.2f s, bytes gone after %.2f s\n",
               records, layout == Layout::kClustered ? "clustered" : "spread",
               compact ? 1 : 0, sync ? 1 : 0, due, key_seconds, sweep_seconds,
               compact_seconds, gone_seconds);
}
BENCHMARK(BM_SweepHalfDue)
    ->ArgNames({"records", "spread", "compact", "sync"})
    ->ArgsProduct({{100'000, 1'000'000}, {0, 1}, {0, 1}, {0, 1}})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace custos
