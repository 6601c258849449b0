// Shred latency against the keystore's size (issue 8, "Shredding stays O(1)
// at any store size"; issue 16, workload 5): ShredSubject on a subject
// holding 10,000 records and on one holding 10, in a keystore of 1,000, of
// 10,000, of 100,000 and of 1,000,000 subjects, with the default options
// (sync_writes and compact_after_erasure true), then with sync_writes
// false. ShredSubject itself no longer compacts: the destroyed key and
// sealed identifier are queued for the bounded erasure compaction, run by
// CompleteShreds (or Sweep, Open). For context, the CompleteShreds that
// follows the shreds, with a budget covering all their records, is timed
// too: that is where the compaction went.
//
// Beside it, in the same run (in keystores of 1,000, 10,000 and 1,000,000
// subjects: the sizes bench/compare.py pairs), the raw LevelDB peer
// (RawSubjects): a database holding one entry per keystore subject and,
// for each of its
// victims, as many values of a stored record's size under the subject's
// key prefix; erasing a subject there is deleting its records (a scan of
// its prefix and one WriteBatch of deletes), synced or not.
//
// Setup (untimed), per keystore size:
//   1. through the engine, sync off: an admin, a user, and kRecordsPerVictim
//      records (one personal part each) for each of kVictims + kOffVictims
//      subjects, and kSmallRecords records for each of kSmallVictims +
//      kOffVictims + 1 others; a stored record's size read back;
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
// Then each iteration shreds one victim of 10,000 records, timed alone
// (manual time); the counters give the median, min and max over the
// iterations, and each shred's time. The shreds of 10 records, those with
// sync off and the raw peer's erasures follow the timed loop, each timed
// alone too (counters only).
//
// Run: ./shred_bench (about 1 min of setup for the 1M keystore on 2 cores).

#include <benchmark/benchmark.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/options.h>
#include <leveldb/write_batch.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "bench/support.h"
#include "crypto/keyed_hash.h"
#include "crypto/secret_key.h"
#include "storage/engine.h"
#include "storage/keys.h"
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
// Subjects of kSmallRecords records shredded with sync on, warm.
constexpr int kSmallRecords = 10;
constexpr int kSmallVictims = 5;
// Subjects of each size shredded once the engine runs with sync off, warm.
constexpr int kOffVictims = 3;
// The raw peer's subjects erased, of each size and durability.
constexpr int kRawVictims = 3;
// A keystore entry's wrapped key, for the raw peer's per-subject entries
// (its records' values are the size of this store's stored record,
// ShredStore::record_bytes()).
constexpr size_t kRawKeyEntryBytes = 72;

std::string Identifier(int n) {
  char buffer[48];
  std::snprintf(buffer, sizeof(buffer), "victim-%04d@example.org", n);
  return buffer;
}
std::string SmallIdentifier(int n) {
  char buffer[48];
  std::snprintf(buffer, sizeof(buffer), "small-%04d@example.org", n);
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
    const auto add = [&](const std::string& identifier, int records) {
      for (int r = 0; r < records; ++r) {
        const uint64_t id =
            Value(engine_->CreateRecord(user, MakeRecord(identifier, serial++)),
                  "create record");
        if (r == 0) first_records_.push_back(id);
      }
      identifiers_.push_back(identifier);
    };
    // victims_: kVictims, then kOffVictims of 10,000 records; then
    // kSmallVictims, then kOffVictims of kSmallRecords, then one more of
    // kSmallRecords (shredded untimed after the reopen with sync off).
    for (int v = 0; v < kVictims + kOffVictims; ++v) {
      add(Identifier(v), kRecordsPerVictim);
    }
    for (int v = 0; v < kSmallVictims + kOffVictims + 1; ++v) {
      add(SmallIdentifier(v), kSmallRecords);
    }
    const Actor admin = Value(engine_->ActorFor("admin"), "admin actor");
    for (const std::string& identifier : identifiers_) {
      victims_.push_back(
          Value(engine_->FindSubject(admin, identifier), "find subject"));
    }
    engine_.reset();
    {  // A stored record's size, for the raw peer.
      leveldb::DB* raw = nullptr;
      Check(leveldb::DB::Open(bench::EngineLikeOptions(),
                              options_.data_dir + "/records", &raw),
            "open the records database");
      std::unique_ptr<leveldb::DB> db(raw);
      std::string value;
      Check(db->Get(leveldb::ReadOptions(), keys::Record(first_records_[0]),
                    &value),
            "read a stored record");
      record_bytes_ = value.size();
    }

    // Background subjects, straight into the keystore.
    {
      auto keystore = Value(
          Keystore::Open(options_.data_dir + "/keystore",
                         /*create_if_missing=*/false, master_, clock_.Now(),
                         leveldb::Env::Default(), /*cache_capacity=*/16),
          "open keystore");
      const int background =
          keystore_subjects - static_cast<int>(victims_.size());
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
    // Warm-up: one synced create of a new subject writes (and syncs) both
    // databases' new logs once.
    Value(engine_->CreateRecord(Value(engine_->ActorFor("user"), "user"),
                                MakeRecord("warm-up@example.org", serial++)),
          "warm-up create");
  }

  Engine& engine() { return *engine_; }
  Actor admin() { return Value(engine_->ActorFor("admin"), "admin actor"); }
  // Victim v's subject id: v < kVictims + kOffVictims holds 10,000
  // records, the others kSmallRecords.
  const std::string& victim(int v) const { return victims_[v]; }
  const std::vector<std::string>& victims() const { return victims_; }
  static int Small(int v) { return kVictims + kOffVictims + v; }
  // The bytes of one stored record (its "r:" entry's value).
  size_t record_bytes() const { return record_bytes_; }

  // Reads a record of victim `v` as its owner: the engine loads the
  // victim's data key, so LevelDB opens the keystore table holding it (and
  // caches its block), as any use of a subject in a running server does.
  void Touch(int v) {
    auto got = engine_->GetRecord(Value(engine_->ActorFor("user"), "user"),
                                  first_records_[v]);
    if (!got) Check(got.error(), "read a victim's record");
  }

  // Closes the engine and opens it again with sync_writes `sync`.
  void Reopen(bool sync) {
    engine_.reset();
    options_.sync_writes = sync;
    Open();
  }

 private:
  void Open() { engine_ = bench::OpenEngine(options_, master_); }

  bench::TempDir dir_;  // First member: removed after the engine is closed.
  ManualClock clock_;
  crypto::SecretKey master_;
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::vector<std::string> identifiers_;
  std::vector<std::string> victims_;
  std::vector<uint64_t> first_records_;  // One record id per victim.
  size_t record_bytes_ = 0;
};

// The raw LevelDB peer of a ShredStore of `keystore_subjects` subjects
// (options as the engine opens its databases, bench::EngineLikeOptions):
// one entry per subject ("k:" and an id as the engine draws them, a
// wrapped key's bytes of value), and for each victim its records, each
// `record_bytes` of random value under "r:", the victim's number
// and the record's (a raw store keyed for erasure by subject). Written
// without sync, compacted, ::sync()ed and reopened, with one synced put
// after, as the engine's store.
class RawSubjects {
 public:
  // Victims: kRawVictims of 10,000 records erased with sync, as many
  // without; then as many of each of kSmallRecords.
  static constexpr int kVictimCount = 4 * kRawVictims;
  static int Records(int v) {
    return v < 2 * kRawVictims ? kRecordsPerVictim : kSmallRecords;
  }

  RawSubjects(int keystore_subjects, size_t record_bytes)
      : dir_("custos-shred-bench-raw"), path_(dir_.path() + "/raw") {
    Open();
    std::string value(record_bytes, '\0');
    crypto::RandomBytes(std::span<uint8_t>(
        reinterpret_cast<uint8_t*>(value.data()), value.size()));
    leveldb::WriteBatch batch;
    const auto flush = [&] {
      Check(db_->Write(leveldb::WriteOptions(), &batch), "raw write");
      batch.Clear();
    };
    for (int v = 0; v < kVictimCount; ++v) {
      for (int r = 0; r < Records(v); ++r) {
        value[0] = static_cast<char>(r);
        value[1] = static_cast<char>(r >> 8);
        batch.Put(RecordKey(v, static_cast<uint64_t>(r)), value);
        if (r % 1000 == 999) flush();
      }
      flush();
    }
    std::string key_value(kRawKeyEntryBytes, '\0');
    for (int i = 0; i < keystore_subjects; ++i) {
      crypto::RandomBytes(std::span<uint8_t>(
          reinterpret_cast<uint8_t*>(key_value.data()), key_value.size()));
      batch.Put("k:" + RandomSubjectId(), key_value);
      if (i % 1000 == 999) flush();
    }
    flush();
    db_.reset();
    bench::CompactDatabase(path_, LevelDbTuning{});
    ::sync();
    Open();
    leveldb::WriteOptions synced;
    synced.sync = true;
    Check(db_->Put(synced, "w:warm-up", value), "raw warm-up put");
  }

  // Reads victim v's first record: its table open, its block cached, as
  // a warm shred's.
  void Touch(int v) {
    std::string value;
    Check(db_->Get(leveldb::ReadOptions(), RecordKey(v, 0), &value),
          "raw read");
  }

  // Deletes victim v's records (a scan of its prefix, one batch), synced
  // or not; returns how many were deleted.
  size_t Erase(int v, bool sync) {
    const std::string prefix = Prefix(v);
    leveldb::WriteBatch batch;
    size_t n = 0;
    std::unique_ptr<leveldb::Iterator> it(
        db_->NewIterator(leveldb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      batch.Delete(it->key());
      ++n;
    }
    Check(it->status(), "raw scan");
    leveldb::WriteOptions wo;
    wo.sync = sync;
    Check(db_->Write(wo, &batch), "raw erase");
    return n;
  }

 private:
  static std::string Prefix(int v) {
    char buffer[16];
    std::snprintf(buffer, sizeof(buffer), "r:%04d:", v);
    return buffer;
  }
  static std::string RecordKey(int v, uint64_t r) {
    std::string key = Prefix(v);
    for (int shift = 56; shift >= 0; shift -= 8) {
      key.push_back(static_cast<char>(r >> shift));
    }
    return key;
  }
  void Open() {
    leveldb::Options options = bench::EngineLikeOptions();
    options.create_if_missing = true;
    leveldb::DB* db = nullptr;
    Check(leveldb::DB::Open(options, path_, &db), "open raw leveldb");
    db_.reset(db);
  }

  bench::TempDir dir_;
  std::string path_;
  std::unique_ptr<leveldb::DB> db_;
};

double TimeMillis(const std::function<void()>& op) {
  const auto start = SteadyClock::now();
  op();
  return Millis(SteadyClock::now() - start);
}

// Arg: subjects in the keystore (victims included). Iterations: kVictims,
// one shred of 10,000 records each. Manual time: the ShredSubject call
// alone.
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
//
// After the loop, each timed alone: the shreds of kSmallRecords records,
// warm, sync on (small_ms_I); the engine reopened with sync_writes false,
// the shreds of 10,000 and of kSmallRecords records, warm (off_ms_I,
// off_small_ms_I; an untimed shred first, the new logs' first sync); the
// raw peer's erasures, warm, of 10,000 records synced and not (raw_ms_I,
// raw_off_ms_I) and of kSmallRecords (raw_small_ms_I, raw_off_small_ms_I).
void BM_ShredLatencyKeystoreSize(benchmark::State& state) {
  const int subjects = static_cast<int>(state.range(0));
  const auto setup_start = SteadyClock::now();
  ShredStore store(subjects);
  const double setup_s = Millis(SteadyClock::now() - setup_start) / 1000;
  std::vector<double> millis;
  int next = 0;
  for (auto _ : state) {
    if (next == kColdVictims) {
      for (int v = kColdVictims; v < kVictims; ++v) store.Touch(v);
    }
    const std::string& victim = store.victim(next++);
    const Actor admin = store.admin();
    const auto start = SteadyClock::now();
    Status status = store.engine().ShredSubject(admin, victim);
    const auto elapsed = SteadyClock::now() - start;
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
    state.SetIterationTime(std::chrono::duration<double>(elapsed).count());
    millis.push_back(Millis(elapsed));
  }
  if (millis.empty()) return;

  // The others, each warm, timed alone. A failed shred ends the binary
  // (Check): a figure without it would be a wrong one.
  const auto shred = [&](int v) {
    store.Touch(v);
    const Actor admin = store.admin();
    Status status;
    const double ms = TimeMillis(
        [&] { status = store.engine().ShredSubject(admin, store.victim(v)); });
    Check(status, "shred a victim");
    return ms;
  };
  std::vector<double> small_ms, off_ms, off_small_ms;
  for (int v = 0; v < kSmallVictims; ++v) {
    small_ms.push_back(shred(ShredStore::Small(v)));
  }
  store.Reopen(/*sync=*/false);
  // Untimed: the reopened engine's first shred syncs the new keystore log
  // for the first time (as the setup's warm-up create does for the first
  // shreds).
  shred(ShredStore::Small(kSmallVictims + kOffVictims));
  for (int v = 0; v < kOffVictims; ++v) {
    off_ms.push_back(shred(kVictims + v));
    off_small_ms.push_back(shred(ShredStore::Small(kSmallVictims + v)));
  }
  for (const std::string& victim : store.victims()) {
    if (store.engine().FindSubject(store.admin(), victim).has_value()) {
      state.SkipWithError("a shredded subject can still be found");
    }
  }
  // For context: finishing the shreds (rewriting every record of the
  // shredded subjects: 13 of 10,000 records and 9 of 10, about 130,000)
  // and compacting what the shreds after the reopen queued, in calls of
  // the largest budget (kMaxShredBudget) until one rewrites nothing (the
  // reopen compacted what the earlier ones had queued).
  const auto complete_start = SteadyClock::now();
  size_t rewritten = 0;
  for (;;) {
    const size_t step = Value(store.engine().CompleteShreds(kMaxShredBudget),
                              "complete shreds");
    if (step == 0) break;
    rewritten += step;
  }
  const double complete_ms = Millis(SteadyClock::now() - complete_start);
  // A second call: nothing left to rewrite, nothing queued.
  const auto again_start = SteadyClock::now();
  const size_t again =
      Value(store.engine().CompleteShreds(kMaxShredBudget), "complete again");
  const double again_ms = Millis(SteadyClock::now() - again_start);

  // The raw peer, in the same run, in the stores whose figures
  // bench/compare.py pairs with it: the two sizes (1,000 and
  // 1,000,000 subjects) and --quick's largest (10,000).
  std::vector<double> raw_ms[2][2];  // [10,000 or small][sync off, on]
  if (subjects == 1'000 || subjects == 10'000 || subjects == 1'000'000) {
    RawSubjects raw(subjects, store.record_bytes());
    for (int v = 0; v < RawSubjects::kVictimCount; ++v) raw.Touch(v);
    // The synced erasures first: a synced write after unsynced ones
    // would also sync those (a first synced erasure of 10 records took
    // 1.3 ms after three unsynced ones of 10,000, 0.25 ms after a synced).
    for (const bool sync : {true, false}) {
      for (int v = 0; v < RawSubjects::kVictimCount; ++v) {
        if (((v / kRawVictims) % 2 == 0) != sync) continue;
        size_t erased = 0;
        const double ms = TimeMillis([&] { erased = raw.Erase(v, sync); });
        if (erased != static_cast<size_t>(RawSubjects::Records(v))) {
          state.SkipWithError("the raw peer erased a wrong count");
        }
        raw_ms[v < 2 * kRawVictims ? 0 : 1][sync ? 1 : 0].push_back(ms);
      }
    }
  }

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
  const auto each = [&](const std::string& prefix,
                        const std::vector<double>& values) {
    for (size_t i = 0; i < values.size(); ++i) {
      state.counters[prefix + std::to_string(i)] = values[i];
    }
  };
  each("shred_ms_", cold_ms);
  each("warm_ms_", warm_ms);
  each("small_ms_", small_ms);
  each("off_ms_", off_ms);
  each("off_small_ms_", off_small_ms);
  each("raw_ms_", raw_ms[0][1]);
  each("raw_off_ms_", raw_ms[0][0]);
  each("raw_small_ms_", raw_ms[1][1]);
  each("raw_off_small_ms_", raw_ms[1][0]);
  if (again != 0) state.SkipWithError("CompleteShreds left records behind");
  std::string each_ms;
  for (double m : millis) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%s%.3f", each_ms.empty() ? "" : " ",
                  m);
    each_ms += buffer;
  }
  state.SetLabel("shreds ms: " + each_ms);
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
