// Shred latency against the keystore's size (issue 8, "Shredding stays O(1)
// at any store size"): ShredSubject on a subject holding 10,000 records, in
// a keystore of 1,000, of 100,000 and of 1,000,000 subjects, with the default
// options (sync_writes and compact_after_erasure true). ShredSubject itself no
// longer compacts: the destroyed key and sealed identifier are queued for
// the bounded erasure compaction, run by CompleteShreds (or Sweep, Open).
// For context, the CompleteShreds that follows the shreds, with a budget
// covering all their records, is timed too: that is where the compaction
// went.
//
// Setup (untimed), per keystore size:
//   1. through the engine, sync off: an admin, a user, and kRecordsPerVictim
//      records (one personal part each) for each of kVictims subjects;
//   2. engine closed; the keystore opened directly (storage/keystore.h) and
//      filled with background subjects (ids "s" + 32 hex chars, as the
//      engine draws them, each with a new data key) up to Arg subjects in
//      all; then CompactAll, so its files are settled; the records database
//      compacted too (as the shred benchmarks of engine_bench do); both
//      left with no compaction pending (bench::SettleDatabase,
//      bench::CompactDatabase: without it the keystore's tables were moved
//      down a level during the first timed shreds);
//   3. ::sync(), engine reopened with sync_writes=true, and one synced
//      create of an unrelated new subject, so that the first shred does not
//      pay for the new log files' first fsyncs.
// Then each iteration shreds one victim, timed alone (manual time); the
// counters give the median, min and max over the iterations.
//
// Run: ./shred_bench (about 1 min of setup for the 1M keystore on 2 cores).

#include <benchmark/benchmark.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/options.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "bench/support.h"
#include "crypto/keyed_hash.h"
#include "crypto/secret_key.h"
#include "storage/engine.h"
#include "storage/keystore.h"
#include "storage/types.h"

namespace custos {
namespace {

using bench::Check;
using bench::Value;
using SteadyClock = std::chrono::steady_clock;

constexpr int64_t kStartMicros = 1'750'000'000'000'000;  // June 2025.
constexpr int kRecordsPerVictim = 10'000;
// Subjects shredded per keystore size, one per iteration: the first
// kColdVictims in a keystore whose tables this process has not read yet,
// the others warm (see BM_ShredLatencyKeystoreSize).
constexpr int kColdVictims = 5;
constexpr int kVictims = 2 * kColdVictims;

std::string Identifier(int n) {
  char buffer[48];
  std::snprintf(buffer, sizeof(buffer), "victim-%04d@example.org", n);
  return buffer;
}

// A record with one personal part of about 256 bytes of fields.
NewRecord MakeRecord(const std::string& identifier, uint64_t serial) {
  NewRecord record;
  record.kind = "alert";
  record.attributes = {{"status", "open"},
                       {"channel", "web-form"},
                       {"case", "case-" + std::to_string(serial)}};
  record.personal.push_back({identifier,
                             {{"name", "Alex Example"},
                              {"email", identifier},
                              {"phone", "+32 470 12 34 56"},
                              {"notes", std::string(190, 'x')}}});
  return record;
}

// A subject id shaped like the engine's (storage/subjects.cc).
std::string RandomSubjectId() {
  std::array<uint8_t, 16> random;
  crypto::RandomBytes(random);
  std::string id = crypto::ToHex(random);
  id.insert(0, 1, 's');
  return id;
}

double Millis(SteadyClock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

class ShredStore {
 public:
  explicit ShredStore(int keystore_subjects)
      : dir_("custos-shred-bench"),
        clock_(FromMicros(kStartMicros)),
        master_(crypto::SecretKey::Generate()) {
    options_.data_dir = dir_.path() + "/data";
    options_.table_reads = bench::TableReadsFromEnv();
    options_.sync_writes = false;
    options_.clock = &clock_;
    Open();
    Value(engine_->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
    Value(engine_->CreatePrincipal(Value(engine_->ActorFor("admin"), "admin"),
                                   "user", "User", {Role::kUser},
                                   /*redacted=*/false),
          "create user");
    const Actor user = Value(engine_->ActorFor("user"), "user actor");
    uint64_t serial = 0;
    for (int v = 0; v < kVictims; ++v) {
      for (int r = 0; r < kRecordsPerVictim; ++r) {
        const uint64_t id = Value(
            engine_->CreateRecord(user, MakeRecord(Identifier(v), serial++)),
            "create record");
        if (r == 0) first_records_.push_back(id);
      }
    }
    const Actor admin = Value(engine_->ActorFor("admin"), "admin actor");
    for (int v = 0; v < kVictims; ++v) {
      victims_.push_back(
          Value(engine_->FindSubject(admin, Identifier(v)), "find subject"));
    }
    engine_.reset();

    // Background subjects, straight into the keystore.
    {
      auto keystore = Value(
          Keystore::Open(options_.data_dir + "/keystore",
                         /*create_if_missing=*/false, master_, clock_.Now(),
                         leveldb::Env::Default(), /*cache_capacity=*/16),
          "open keystore");
      const int background = keystore_subjects - kVictims;
      for (int i = 0; i < background; ++i) {
        // Not synced (the keystore is compacted and ::sync()ed below).
        (void)Value(keystore->PutKey(RandomSubjectId(), keystore->NewKey()),
                    "put key");
      }
      Check(keystore->CompactAll(), "compact keystore");
    }
    // The moves down that follow the keystore's compaction, and the
    // records database's compaction (bench/support.h).
    bench::SettleDatabase(options_.data_dir + "/keystore");
    bench::CompactDatabase(options_.data_dir + "/records");
    ::sync();

    options_.sync_writes = true;
    Open();
    admin_.emplace(Value(engine_->ActorFor("admin"), "admin actor"));
    // Warm-up: one synced create of a new subject writes (and syncs) both
    // databases' new logs once.
    Value(engine_->CreateRecord(Value(engine_->ActorFor("user"), "user"),
                                MakeRecord("warm-up@example.org", serial++)),
          "warm-up create");
  }

  Engine& engine() { return *engine_; }
  const Actor& admin() const { return *admin_; }
  const std::vector<std::string>& victims() const { return victims_; }

  // Reads a record of victim `v` as its owner: the engine loads the
  // victim's data key, so LevelDB opens the keystore table holding it (and
  // caches its block), as any use of a subject in a running server does.
  void Touch(size_t v) {
    auto got = engine_->GetRecord(Value(engine_->ActorFor("user"), "user"),
                                  first_records_[v]);
    if (!got) Check(got.error(), "read a victim's record");
  }

 private:
  void Open() { engine_ = bench::OpenEngine(options_, master_); }

  bench::TempDir dir_;  // First member: removed after the engine is closed.
  ManualClock clock_;
  crypto::SecretKey master_;
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::optional<Actor> admin_;
  std::vector<std::string> victims_;
  std::vector<uint64_t> first_records_;  // One record id per victim.
};

// Arg: subjects in the keystore (victims included). Iterations: kVictims,
// one shred each. Manual time: the ShredSubject call alone.
//
// The first kColdVictims shreds are "cold": the engine was just opened, and
// LevelDB opens a keystore table (its footer and index block read) the
// first time a lookup falls in it. A keystore of 10,000
// subjects is one table, opened by the warm-up create; one of 100,000 or
// more is several, and a shred then usually pays for that first open
// (strace of a run: three of the five cold shreds at 100,000 opened a
// table). The other shreds are "warm": before them (untimed) a record of
// each of their subjects is read, so their keystore tables are open, as
// in a server that has been serving its subjects; the read also leaves the
// subject's data key in the engine's key cache and its keystore block in
// LevelDB's, so a warm shred finds those warm too. Counters shred_ms_I
// (cold) and warm_ms_I.
void BM_ShredLatencyKeystoreSize(benchmark::State& state) {
  const auto setup_start = SteadyClock::now();
  ShredStore store(static_cast<int>(state.range(0)));
  const double setup_s = Millis(SteadyClock::now() - setup_start) / 1000;
  std::vector<double> millis;
  size_t next = 0;
  for (auto _ : state) {
    if (next == kColdVictims) {
      for (size_t v = kColdVictims; v < store.victims().size(); ++v) {
        store.Touch(v);
      }
    }
    const std::string& victim = store.victims()[next++];
    const auto start = SteadyClock::now();
    Status status = store.engine().ShredSubject(store.admin(), victim);
    const auto elapsed = SteadyClock::now() - start;
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
    state.SetIterationTime(std::chrono::duration<double>(elapsed).count());
    millis.push_back(Millis(elapsed));
  }
  if (millis.empty()) return;
  for (const std::string& victim : store.victims()) {
    if (store.engine().FindSubject(store.admin(), victim).has_value()) {
      state.SkipWithError("a shredded subject can still be found");
    }
  }
  // For context: finishing the shreds (rewriting every record of the
  // shredded subjects) and the queued compaction, in one call.
  const auto complete_start = SteadyClock::now();
  const size_t rewritten =
      Value(store.engine().CompleteShreds(1'000'000), "complete shreds");
  const double complete_ms = Millis(SteadyClock::now() - complete_start);
  // A second call: nothing left to rewrite, nothing queued.
  const auto again_start = SteadyClock::now();
  const size_t again =
      Value(store.engine().CompleteShreds(1'000'000), "complete again");
  const double again_ms = Millis(SteadyClock::now() - again_start);

  const auto median_of = [](std::vector<double> sorted) {
    std::sort(sorted.begin(), sorted.end());
    const size_t n = sorted.size();
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  };
  const size_t cold = std::min<size_t>(millis.size(), kColdVictims);
  const std::vector<double> cold_ms(millis.begin(), millis.begin() + cold);
  const std::vector<double> warm_ms(millis.begin() + cold, millis.end());
  state.counters["median_ms"] = median_of(cold_ms);
  state.counters["min_ms"] = *std::min_element(cold_ms.begin(), cold_ms.end());
  state.counters["max_ms"] = *std::max_element(cold_ms.begin(), cold_ms.end());
  if (!warm_ms.empty()) state.counters["warm_median_ms"] = median_of(warm_ms);
  state.counters["complete_ms"] = complete_ms;
  state.counters["complete_recs"] = static_cast<double>(rewritten);
  state.counters["complete2_ms"] = again_ms;
  state.counters["setup_s"] = setup_s;
  // Each shred's time (bench/compare.py takes them as the runs).
  for (size_t i = 0; i < cold_ms.size(); ++i) {
    state.counters["shred_ms_" + std::to_string(i)] = cold_ms[i];
  }
  for (size_t i = 0; i < warm_ms.size(); ++i) {
    state.counters["warm_ms_" + std::to_string(i)] = warm_ms[i];
  }
  if (again != 0) state.SkipWithError("CompleteShreds left records behind");
  std::string each;
  for (double m : millis) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%s%.3f", each.empty() ? "" : " ", m);
    each += buffer;
  }
  state.SetLabel("shreds ms: " + each);
}
BENCHMARK(BM_ShredLatencyKeystoreSize)
    ->Arg(1'000)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Iterations(kVictims)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace custos
