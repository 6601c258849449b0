// Benchmarks of the storage engine under concurrent callers, and of what one
// create or one disclosing read costs against raw LevelDB writing the same
// bytes (issue 8: group commit, create cost). Results are recorded in
// bench/RESULTS.md, "Group commit and create cost (issue 8)".
//
// Three questions, in one binary so that every ratio comes from one run:
//
// 1. Do synchronous writes scale with the number of callers? LevelDB groups
//    concurrent synchronous writers into one log write and one fsync; the
//    engine benefits only if several callers' batches reach LevelDB at
//    once. The BM_Sync* and BM_RawSyncPut benchmarks run from 1, 4 and 16
//    threads against one store (opened by the benchmark's Setup before its
//    threads start, shared by them, closed by its Teardown after they have
//    all stopped); items/s is the throughput of all threads together. The
//    figure of interest is items/s at 16 threads over items/s at 1 thread,
//    for the engine against the same ratio for raw LevelDB.
//
// 2. What does a create or a disclosing read cost against raw LevelDB
//    writing what it writes (sync off, one thread)? What an operation
//    writes is measured once, before the first benchmark that needs it (see
//    Costs()): the growth of both databases' write-ahead logs over a run of
//    such operations, which is exactly their serialised write batches. Each
//    raw baseline puts, under a random key, one value of random bytes
//    (incompressible, like ciphertext) whose log record is that many bytes.
//    BM_RawBatchLikeCreateExistingSubject writes instead, in one batch, as
//    many entries as a create, of the same key and value sizes: what
//    LevelDB charges for the engine's entry count (issues 11/16).
//
// 3. What do a synced disclosing read and a list page cost against raw
//    LevelDB? Issue 16's raw-LevelDB baselines of a disclosing read with sync
//    (BM_RawSyncGetPutLikeDisclosingRead, for BM_SyncDisclosingRead) and
//    of a list page of kListPage records, sync off and on (BM_ListPage,
//    BM_SyncListPage against BM_RawListPage, BM_RawSyncListPage: an
//    iterator over kListPage values of the stored record's size, then one
//    put of as many bytes as the page's read events).
//
// 4. What does a close cost against raw LevelDB writing what it writes
//    (issues 11 and 16)? A close of an active record schedules its erasure,
//    so it re-seals the record under its deadline bucket and writes it with
//    its witnesses, its deadline-index entry and its close event
//    (BM_CloseRecord against BM_RawPutLikeCloseRecord, sync off, one
//    thread; every iteration closes another record of the store).
//
// Only the public API of storage/engine.h and raw LevelDB are used, so the
// benchmark measures the engine whatever its internals. Every store lives in
// a fresh mkdtemp() directory under /tmp, removed afterwards; time comes
// from a ManualClock. A store's setup writes without sync, then the store is
// closed, sync() is called and the store reopened with the benchmark's
// sync_writes, so the timed fsyncs do not pay for the setup's writes; then
// every subject's key is loaded into the key cache (EngineFixture).

#include <benchmark/benchmark.h>
#include <leveldb/db.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <leveldb/write_batch.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "bench/support.h"
#include "crypto/secret_key.h"
#include "storage/engine.h"
#include "storage/keys.h"
#include "storage/types.h"

namespace custos {
namespace {

constexpr int64_t kStartMicros = 1'750'000'000'000'000;  // June 2025.
// Bytes of personal data (field names and values) per record.
constexpr size_t kPersonalBytes = bench::kWorkloadPersonalBytes;
// Subjects registered during setup; creates for an existing subject cycle
// through them. Fits the default key cache (1024).
constexpr int kSubjectPool = 256;
// Records created during setup (over kSubjectPool subjects), read by the
// disclosing-read benchmarks.
constexpr int kSetupRecords = 1'024;
// Operations over which Costs() measures the log growth of each kind.
constexpr int kCostSamples = 200;
// Records per page of the list baseline (issue 16, workload 3).
constexpr size_t kListPage = 100;
// Active records of BM_CloseRecord's store: its iterations, one close each.
constexpr int kCloseRecords = 10'000;

using bench::Check;
using bench::Value;

class TempDir : public bench::TempDir {
 public:
  TempDir() : bench::TempDir("custos-concurrency-bench") {}
};

// An engine in a fresh directory, with an admin and one user.
class Store {
 public:
  Store()
      : clock_(FromMicros(kStartMicros)),
        master_(crypto::SecretKey::Generate()) {
    options_.data_dir = dir_.path() + "/data";
    options_.table_reads = bench::TableReadsFromEnv();
    options_.clock = &clock_;
    Open(/*sync_writes=*/false);
    Value(engine_->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
    admin_.emplace(Value(engine_->ActorFor("admin"), "admin actor"));
    Value(engine_->CreatePrincipal(*admin_, "user", "User", {Role::kUser},
                                   /*redacted=*/false),
          "create user");
    user_.emplace(Value(engine_->ActorFor("user"), "user actor"));
  }

  void Open(bool sync_writes) {
    options_.sync_writes = sync_writes;
    engine_ = bench::OpenEngine(options_, master_);
  }
  void Close() { engine_.reset(); }
  // Closes the engine, flushes every dirty page of the system to disk and
  // opens the engine again: the setup's unsynced writes are then not paid
  // for by the first synchronous write of the timed loop (on ext4 an fsync
  // waits for other files' pending data too).
  void Reopen(bool sync_writes) {
    Close();
    ::sync();
    Open(sync_writes);
  }

  Engine& engine() { return *engine_; }
  const Actor& user() const { return *user_; }
  const std::string& data_dir() const { return options_.data_dir; }
  std::string records_path() const { return options_.data_dir + "/records"; }

 private:
  TempDir dir_;  // First member: removed after the engine is closed.
  ManualClock clock_;
  crypto::SecretKey master_;
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::optional<Actor> admin_;
  std::optional<Actor> user_;
};

std::string Identifier(int n) { return bench::SubjectIdentifier(n); }

// A record of kind "alert" with 4 attributes and one personal part of 4
// fields whose names and values total exactly kPersonalBytes.
NewRecord MakeRecord(const std::string& identifier, uint64_t serial) {
  return bench::WorkloadRecord("alert", identifier, serial);
}

uint64_t Create(Store& store, int subject, uint64_t serial) {
  return Value(store.engine().CreateRecord(
                   store.user(), MakeRecord(Identifier(subject), serial)),
               "create record");
}

// The raw baselines' keys: shaped as the engine's record keys.
std::string RawKey(uint64_t n) { return keys::Record(n); }

std::string RandomValue(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string value(size, '\0');
  for (char& c : value) c = static_cast<char>(rng() & 0xff);
  return value;
}

// A LevelDB with the engine's options (paranoid checks, no compression:
// bench::EngineLikeOptions) in a fresh directory.
class RawDb {
 public:
  RawDb() { Open(); }
  // As the engine's databases after Store::Reopen: the memtable is written
  // to a table, and reads come from there.
  void Reopen() {
    db_.reset();
    Open();
  }
  leveldb::DB& db() { return *db_; }
  std::string path() const { return dir_.path() + "/db"; }

 private:
  void Open() {
    leveldb::Options options = bench::EngineLikeOptions();
    options.create_if_missing = true;
    leveldb::DB* raw = nullptr;
    Check(leveldb::DB::Open(options, path(), &raw), "open raw leveldb");
    db_.reset(raw);
  }

  TempDir dir_;  // First member: removed after the database is closed.
  std::unique_ptr<leveldb::DB> db_;
};

// ---- What an operation writes ----

// The sizes of the LevelDB write-ahead logs ("NNNNNN.log") under `dir`.
using LogSizes = std::map<std::string, uintmax_t>;

LogSizes Logs(const std::string& dir) {
  LogSizes sizes;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".log") {
      sizes[entry.path().string()] = entry.file_size();
    }
  }
  return sizes;
}

// Bytes appended to the logs between two observations. Aborts if a log was
// started or removed in between (a memtable was flushed): the difference
// would then not be what was written.
uintmax_t Appended(const LogSizes& before, const LogSizes& after) {
  uintmax_t total = 0;
  for (const auto& [path, size] : after) {
    auto it = before.find(path);
    if (it == before.end() || before.size() != after.size()) {
      std::fprintf(stderr, "log files changed while measuring: %s\n",
                   path.c_str());
      std::abort();
    }
    total += size - it->second;
  }
  return total;
}

std::map<std::string, std::string> Dump(const std::string& path) {
  leveldb::DB* raw = nullptr;
  Check(leveldb::DB::Open(bench::EngineLikeOptions(), path, &raw),
        "open for dump");
  std::unique_ptr<leveldb::DB> db(raw);
  std::map<std::string, std::string> entries;
  std::unique_ptr<leveldb::Iterator> it(
      db->NewIterator(leveldb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    entries.emplace(it->key().ToString(), it->value().ToString());
  }
  Check(it->status(), "dump");
  return entries;
}

std::string Printable(const std::string& key) {
  std::string out;
  for (char c : key.substr(0, 12)) {
    if (c >= 0x21 && c < 0x7f) {
      out.push_back(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", static_cast<unsigned char>(c));
      out += hex;
    }
  }
  if (key.size() > 12) out += "...";
  return out;
}

// Log bytes per operation (both databases, LevelDB's 7-byte log record
// headers included), each the mean over kCostSamples operations on a store
// of kSubjectPool registered subjects. What an operation writes does not
// depend on the store's size.
struct CostModel {
  size_t create_existing = 0;  // A create naming a registered subject.
  size_t create_new = 0;       // A create naming a new subject.
  size_t disclosing_read = 0;  // A GetRecord that returns personal data.
  // A ListRecords page of kListPage records, each returning personal data
  // (one commit of kListPage read events).
  size_t list_page = 0;
  // A Close of an active record (its erasure scheduled: the record
  // re-sealed under its deadline bucket).
  size_t close = 0;
  // The largest value one create (existing subject) adds to the records
  // database: the stored record. The raw disclosing-read baseline gets a
  // value of this size.
  size_t record_value = 0;
  // The key and value sizes of the entries one create (existing subject)
  // writes to the records database, as dumped above.
  std::vector<std::pair<size_t, size_t>> create_entries;
  // The same for one disclosing read (its access event's entries).
  std::vector<std::pair<size_t, size_t>> read_entries;
  // Log bytes of one raw Put with a RawKey beyond its value's size.
  size_t raw_put_overhead = 0;

  // The value size whose raw Put writes `log_bytes` to the log.
  size_t RawValueFor(size_t log_bytes) const {
    return log_bytes - raw_put_overhead;
  }
};

// The key and value sizes of the entries `op` adds or changes in the
// records database of `store` (open, without sync; it is closed around
// the dumps and left open), each printed under `title`.
template <typename Op>
std::vector<std::pair<size_t, size_t>> EntriesWritten(Store& store,
                                                      const char* title,
                                                      const Op& op) {
  store.Close();
  const auto before = Dump(store.records_path());
  store.Open(/*sync_writes=*/false);
  op();
  store.Close();
  const auto after = Dump(store.records_path());
  store.Open(/*sync_writes=*/false);
  std::fprintf(stderr, "%s, records database:\n", title);
  std::vector<std::pair<size_t, size_t>> entries;
  for (const auto& [key, value] : after) {
    auto it = before.find(key);
    if (it != before.end() && it->second == value) continue;
    std::fprintf(stderr, "  %-40s key %3zu B, value %4zu B%s\n",
                 Printable(key).c_str(), key.size(), value.size(),
                 it == before.end() ? "" : " (overwritten)");
    entries.emplace_back(key.size(), value.size());
  }
  return entries;
}

CostModel MeasureCosts() {
  CostModel costs;
  Store store;
  std::vector<uint64_t> ids;
  for (int i = 0; i < kSubjectPool; ++i) ids.push_back(Create(store, i, i));

  // What one create and one disclosing read write to the records
  // database, entry by entry (printed, for the record: RESULTS.md
  // describes them).
  costs.create_entries =
      EntriesWritten(store, "One create (existing subject)",
                     [&] { Create(store, 0, kSubjectPool); });
  size_t total = 0;
  for (const auto& [key_size, value_size] : costs.create_entries) {
    total += key_size + value_size;
    costs.record_value = std::max(costs.record_value, value_size);
  }
  std::fprintf(stderr, "  total %zu B of keys and values\n", total);
  costs.read_entries = EntriesWritten(store, "One disclosing read", [&] {
    Value(store.engine().GetRecord(store.user(), ids[0]), "read record");
  });

  LogSizes logs = Logs(store.data_dir());
  for (int i = 0; i < kCostSamples; ++i) {
    ids.push_back(Create(store, i % kSubjectPool, kSubjectPool + 1 + i));
  }
  LogSizes now = Logs(store.data_dir());
  costs.create_existing = Appended(logs, now) / kCostSamples;

  logs = now;
  for (int i = 0; i < kCostSamples; ++i) {
    Create(store, kSubjectPool + i, 2 * kSubjectPool + i);
  }
  now = Logs(store.data_dir());
  costs.create_new = Appended(logs, now) / kCostSamples;

  logs = now;
  for (int i = 0; i < kCostSamples; ++i) {
    RecordView view =
        Value(store.engine().GetRecord(store.user(), ids[i]), "read record");
    if (!view.personal_included) {
      std::fprintf(stderr, "read record: no personal data returned\n");
      std::abort();
    }
  }
  now = Logs(store.data_dir());
  costs.disclosing_read = Appended(logs, now) / kCostSamples;

  logs = now;
  {
    ListQuery query;
    query.limit = kListPage;
    ListPage page =
        Value(store.engine().ListRecords(store.user(), query), "list page");
    if (page.records.size() != kListPage) {
      std::fprintf(stderr, "list page: %zu records\n", page.records.size());
      std::abort();
    }
  }
  now = Logs(store.data_dir());
  costs.list_page = Appended(logs, now);

  logs = now;
  for (int i = 0; i < kCostSamples; ++i) {
    Check(store.engine().Close(store.user(), ids[i]), "close record");
  }
  now = Logs(store.data_dir());
  costs.close = Appended(logs, now) / kCostSamples;

  constexpr size_t kProbeValue = 1'000;
  RawDb raw;
  logs = Logs(raw.path());
  const std::string value = RandomValue(kProbeValue, 1);
  for (int i = 0; i < kCostSamples; ++i) {
    Check(raw.db().Put(leveldb::WriteOptions(), RawKey(i), value), "probe");
  }
  costs.raw_put_overhead =
      Appended(logs, Logs(raw.path())) / kCostSamples - kProbeValue;

  std::fprintf(stderr,
               "Log bytes per operation: create (existing subject) %zu, "
               "create (new subject) %zu, disclosing read %zu, list page "
               "of %zu %zu, close %zu; stored record %zu; raw put overhead "
               "%zu\n",
               costs.create_existing, costs.create_new, costs.disclosing_read,
               kListPage, costs.list_page, costs.close, costs.record_value,
               costs.raw_put_overhead);
  return costs;
}

const CostModel& Costs() {
  static const CostModel costs = MeasureCosts();
  return costs;
}

// ---- The store or database of the run in progress ----

// An engine store shared by the threads of one benchmark run: kSetupRecords
// records over kSubjectPool subjects, written without sync, then reopened
// with the benchmark's sync_writes.
struct EngineFixture {
  explicit EngineFixture(bool sync_writes, int records = kSetupRecords) {
    for (int i = 0; i < records; ++i) {
      ids.push_back(Create(store, i % kSubjectPool, i));
    }
    store.Reopen(sync_writes);
    // Reopening emptied the key cache. Listing every record loads every
    // subject's key (and writes one batch of read events per page, i.e.
    // one fsync, not one per record), so the timed loop starts with the
    // keys cached, as in a store that has been running for a while.
    ListQuery query;
    query.limit = 1'000;
    do {
      ListPage page = Value(store.engine().ListRecords(store.user(), query),
                            "list records");
      query.after_id = page.next_after_id;
    } while (query.after_id != 0);
  }
  Store store;
  std::vector<uint64_t> ids;
  // Numbers of the subjects that new-subject creates register.
  std::atomic<int> next_subject{kSubjectPool};
};

// A raw LevelDB shared by the threads of one benchmark run, holding
// kSetupRecords values of `get_value_size` random bytes under RawKey(1..),
// written without sync and reopened, as the engine's stores are.
struct RawFixture {
  RawFixture(bool sync, size_t get_value_size) {
    std::string value = RandomValue(get_value_size, 47);
    for (int id = 1; id <= kSetupRecords; ++id) {
      value[0] = static_cast<char>(id);
      Check(db.db().Put(leveldb::WriteOptions(), RawKey(id), value),
            "prefill raw leveldb");
    }
    db.Reopen();
    if (sync) ::sync();  // As Store::Reopen.
  }
  RawDb db;
};

// Set by a benchmark's Setup, before its threads start, and reset by its
// Teardown, after they have all stopped.
std::unique_ptr<EngineFixture> engine_run;
std::unique_ptr<RawFixture> raw_run;

template <bool kSync>
void OpenStore(const benchmark::State&) {
  Costs();  // Measured once, before any timed loop.
  engine_run = std::make_unique<EngineFixture>(kSync);
}
void CloseStore(const benchmark::State&) { engine_run.reset(); }
// The store of BM_CloseRecord: kCloseRecords active records, sync off.
void OpenCloseStore(const benchmark::State&) {
  Costs();
  engine_run = std::make_unique<EngineFixture>(false, kCloseRecords);
}

template <bool kSync>
void OpenRawDb(const benchmark::State&) {
  raw_run = std::make_unique<RawFixture>(kSync, Costs().record_value);
}
void CloseRawDb(const benchmark::State&) { raw_run.reset(); }

// Counters are summed over threads: only thread 0 sets them.
void SetCounter(benchmark::State& state, const char* name, double value) {
  if (state.thread_index() == 0) state.counters[name] = value;
}

// ---- Engine ----

// Thread 0's view of the store's write and sync counts around a timed loop:
// Google Benchmark starts and ends the loop of every thread at one barrier,
// so the counts before thread 0's loop and after it bracket every thread's
// work. `writes_per_sync` is the group-commit factor (0 without sync).
class GroupCounter {
 public:
  explicit GroupCounter(const benchmark::State& state)
      : counting_(state.thread_index() == 0),
        writes_(TheEngine().TEST_WriteCount()),
        syncs_(TheEngine().TEST_SyncCount()) {}
  void Report(benchmark::State& state) const {
    if (!counting_) return;
    const double syncs =
        static_cast<double>(TheEngine().TEST_SyncCount() - syncs_);
    const double writes =
        static_cast<double>(TheEngine().TEST_WriteCount() - writes_);
    state.counters["writes_per_sync"] = syncs == 0 ? 0 : writes / syncs;
  }

 private:
  static const custos::Engine& TheEngine() {
    return engine_run->store.engine();
  }
  bool counting_;
  uint64_t writes_;
  uint64_t syncs_;
};

// `new_subject`: every record names a subject never seen before (a key is
// generated, wrapped and put to the keystore); otherwise one of
// kSubjectPool registered subjects, whose key is cached.
void CreateLoop(benchmark::State& state, bool new_subject) {
  EngineFixture& run = *engine_run;
  // Built before the timed loop, one set per thread.
  std::vector<NewRecord> records;
  for (int i = 0; i < 64; ++i) {
    records.push_back(MakeRecord(
        Identifier((state.thread_index() * 17 + i) % kSubjectPool), i));
  }
  size_t i = 0;
  const GroupCounter group(state);
  for (auto _ : state) {
    NewRecord& record = records[i++ % records.size()];
    if (new_subject) {
      record.personal[0].subject_identifier =
          Identifier(run.next_subject.fetch_add(1));
    }
    Result<uint64_t> id =
        run.store.engine().CreateRecord(run.store.user(), record);
    if (!id) {
      state.SkipWithError(id.error().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(*id);
  }
  state.SetItemsProcessed(state.iterations());
  group.Report(state);
  const CostModel& costs = Costs();
  SetCounter(state, "log_bytes",
             static_cast<double>(new_subject ? costs.create_new
                                             : costs.create_existing));
}

// The owner reads a random record of the store, personal data decrypted,
// which writes a read event.
void DisclosingReadLoop(benchmark::State& state) {
  EngineFixture& run = *engine_run;
  std::mt19937_64 rng(42 + state.thread_index());
  std::uniform_int_distribution<size_t> pick(0, run.ids.size() - 1);
  const GroupCounter group(state);
  for (auto _ : state) {
    Result<RecordView> view =
        run.store.engine().GetRecord(run.store.user(), run.ids[pick(rng)]);
    if (!view || !view->personal_included) {
      state.SkipWithError("GetRecord did not return the personal part");
      break;
    }
    benchmark::DoNotOptimize(view->parts.data());
  }
  state.SetItemsProcessed(state.iterations());
  group.Report(state);
  SetCounter(state, "log_bytes", static_cast<double>(Costs().disclosing_read));
}

// The owner lists a page of kListPage records from a random cursor,
// personal data decrypted: one commit of kListPage read events. Items are
// records.
void ListPageLoop(benchmark::State& state) {
  EngineFixture& run = *engine_run;
  std::mt19937_64 rng(44 + state.thread_index());
  std::uniform_int_distribution<size_t> pick(0, run.ids.size() - kListPage - 1);
  ListQuery query;
  query.limit = kListPage;
  int64_t records = 0;
  const GroupCounter group(state);
  for (auto _ : state) {
    query.after_id = run.ids[pick(rng)];
    Result<ListPage> page =
        run.store.engine().ListRecords(run.store.user(), query);
    if (!page || page->records.size() != kListPage) {
      state.SkipWithError("ListRecords did not return a full page");
      break;
    }
    records += static_cast<int64_t>(page->records.size());
    benchmark::DoNotOptimize(page->records.data());
  }
  state.SetItemsProcessed(records);
  group.Report(state);
  SetCounter(state, "log_bytes", static_cast<double>(Costs().list_page));
}

// The owner closes the store's active records in order, one per
// iteration: each close schedules the record's erasure, re-seals it under
// its deadline bucket (one bucket for all: the clock does not move) and
// writes it with its close event.
void BM_CloseRecord(benchmark::State& state) {
  EngineFixture& run = *engine_run;
  size_t next = 0;
  for (auto _ : state) {
    if (next == run.ids.size()) {
      state.SkipWithError("no active record left to close");
      break;
    }
    Status closed = run.store.engine().Close(run.store.user(), run.ids[next++]);
    if (!closed.ok()) {
      state.SkipWithError(closed.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  SetCounter(state, "log_bytes", static_cast<double>(Costs().close));
}

void BM_SyncCreateExistingSubject(benchmark::State& state) {
  CreateLoop(state, /*new_subject=*/false);
}
void BM_SyncCreateNewSubject(benchmark::State& state) {
  CreateLoop(state, /*new_subject=*/true);
}
void BM_SyncDisclosingRead(benchmark::State& state) {
  DisclosingReadLoop(state);
}
void BM_CreateExistingSubject(benchmark::State& state) {
  CreateLoop(state, /*new_subject=*/false);
}
void BM_CreateNewSubject(benchmark::State& state) {
  CreateLoop(state, /*new_subject=*/true);
}
void BM_DisclosingRead(benchmark::State& state) { DisclosingReadLoop(state); }
void BM_SyncListPage(benchmark::State& state) { ListPageLoop(state); }
void BM_ListPage(benchmark::State& state) { ListPageLoop(state); }

// ---- Raw LevelDB ----

// Puts, under random keys, values of random bytes whose log record is
// `log_bytes` long.
void RawPutLoop(benchmark::State& state, size_t log_bytes, bool sync) {
  const size_t value_size = Costs().RawValueFor(log_bytes);
  leveldb::DB& db = raw_run->db.db();
  std::mt19937_64 rng(100 + state.thread_index());
  std::string value = RandomValue(value_size, 200 + state.thread_index());
  leveldb::WriteOptions wo;
  wo.sync = sync;
  for (auto _ : state) {
    const uint64_t key = rng();
    value[0] = static_cast<char>(key);  // Not the same value twice in a row.
    leveldb::Status s = db.Put(wo, RawKey(key), value);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  SetCounter(state, "log_bytes", static_cast<double>(log_bytes));
  SetCounter(state, "value_bytes", static_cast<double>(value_size));
}

// As many bytes as a create naming an existing subject writes, per put.
void BM_RawSyncPut(benchmark::State& state) {
  RawPutLoop(state, Costs().create_existing, /*sync=*/true);
}
void BM_RawPutLikeCreateExistingSubject(benchmark::State& state) {
  RawPutLoop(state, Costs().create_existing, /*sync=*/false);
}
// Bytes of the table files under `dir` (LevelDB's ".ldb").
uint64_t TableBytes(const std::string& dir) {
  uint64_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".ldb") bytes += entry.file_size();
  }
  return bytes;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

// Issue 16's workload 1 on raw LevelDB at its own size (a million puts of a
// create's bytes, sync off), then the raw side of its workload 4 in the
// database they made, once its compactions are over (as the engine's
// stores are settled before a sweep): half of the million deleted (every
// other key in the order they were put, i.e. spread over the key space, as
// sweep_bench's "spread" due records), the first 250,000 in batches of
// 1,000 without sync, the other 250,000 in batches of 1,000 each synced;
// then the whole database compacted (CompactRange over every key: the
// deleted values' bytes leave the disk with the tables that held them;
// checked: the tables then hold at most 0.6 of their bytes before).
// Counters, per deleted record: delete_us_sync0 and delete_us_sync1 (each
// batch built and written), gone_us_sync0 and gone_us_sync1 (that
// durability's deletes and the compaction's share: compact_s / 500,000);
// table_mib_before/after (the tables' bytes).
void BM_RawPutLikeCreateMillion(benchmark::State& state) {
  RawPutLoop(state, Costs().create_existing, /*sync=*/false);
  const auto puts = static_cast<uint64_t>(state.iterations());
  leveldb::DB& db = raw_run->db.db();
  const std::string dir = raw_run->db.path();
  bench::WaitForCompactions(db);
  const uint64_t before = TableBytes(dir);
  std::mt19937_64 rng(100);  // RawPutLoop's keys on thread 0, again.
  std::vector<uint64_t> due;
  for (uint64_t i = 0; i < puts; ++i) {
    const uint64_t key = rng();
    if (i % 2 == 0) due.push_back(key);
  }
  const size_t half = due.size() / 2;
  constexpr size_t kBatch = 1'000;
  double seconds[2] = {0, 0};  // [sync off, on]
  for (size_t from = 0; from < due.size(); from += kBatch) {
    const bool sync = from >= half;
    const auto started = std::chrono::steady_clock::now();
    leveldb::WriteBatch batch;
    for (size_t i = from; i < std::min(from + kBatch, due.size()); ++i) {
      batch.Delete(RawKey(due[i]));
    }
    leveldb::WriteOptions wo;
    wo.sync = sync;
    Check(db.Write(wo, &batch), "raw delete");
    seconds[sync ? 1 : 0] += SecondsSince(started);
  }
  const auto compact_started = std::chrono::steady_clock::now();
  db.CompactRange(nullptr, nullptr);
  const double compact_seconds = SecondsSince(compact_started);
  const uint64_t after = TableBytes(dir);
  if (static_cast<double>(after) > 0.6 * static_cast<double>(before)) {
    state.SkipWithError("the compaction left the deleted values' bytes");
  }
  const double deleted = static_cast<double>(due.size());
  const double compact_us = compact_seconds * 1e6 / deleted;
  const double delete_us[2] = {
      seconds[0] * 1e6 / static_cast<double>(half),
      seconds[1] * 1e6 / static_cast<double>(due.size() - half)};
  state.counters["deleted"] = deleted;
  state.counters["delete_us_sync0"] = delete_us[0];
  state.counters["delete_us_sync1"] = delete_us[1];
  state.counters["compact_s"] = compact_seconds;
  state.counters["gone_us_sync0"] = delete_us[0] + compact_us;
  state.counters["gone_us_sync1"] = delete_us[1] + compact_us;
  state.counters["table_mib_before"] = static_cast<double>(before) / (1 << 20);
  state.counters["table_mib_after"] = static_cast<double>(after) / (1 << 20);
}
void BM_RawPutLikeCreateNewSubject(benchmark::State& state) {
  RawPutLoop(state, Costs().create_new, /*sync=*/false);
}
// The entries a create writes, as one WriteBatch of as many entries of the
// same key and value sizes (random values; entry i under its own prefix
// with the iteration's number, so keys ascend within each prefix, as the
// engine's record, event and index keys mostly do): what LevelDB itself
// costs for the engine's entry count, against one put of the same bytes
// (BM_RawPutLikeCreateExistingSubject).
void BM_RawBatchLikeCreateExistingSubject(benchmark::State& state) {
  const std::vector<std::pair<size_t, size_t>>& entries =
      Costs().create_entries;
  leveldb::DB& db = raw_run->db.db();
  uint64_t id = 0;
  std::vector<std::string> values;
  for (size_t i = 0; i < entries.size(); ++i) {
    values.push_back(RandomValue(entries[i].second, 800 + i));
  }
  leveldb::WriteBatch batch;
  for (auto _ : state) {
    batch.Clear();
    ++id;
    for (size_t i = 0; i < entries.size(); ++i) {
      std::string key = RawKey(id);
      key[0] = static_cast<char>('a' + i);  // One key space per entry.
      key.resize(std::max(entries[i].first, key.size()), 'k');
      batch.Put(key, values[i]);
    }
    leveldb::Status s = db.Write(leveldb::WriteOptions(), &batch);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  SetCounter(state, "entries", static_cast<double>(entries.size()));
}

// As many bytes as a close of an active record writes, per put.
void BM_RawPutLikeCloseRecord(benchmark::State& state) {
  RawPutLoop(state, Costs().close, /*sync=*/false);
}

// A Get of a random value of the stored record's size, then a Put of as
// many bytes as the read event a disclosing read writes.
void RawGetPutLoop(benchmark::State& state, bool sync) {
  const CostModel& costs = Costs();
  const size_t value_size = costs.RawValueFor(costs.disclosing_read);
  leveldb::DB& db = raw_run->db.db();
  std::mt19937_64 rng(300 + state.thread_index());
  std::uniform_int_distribution<uint64_t> pick(1, kSetupRecords);
  std::string put_value = RandomValue(value_size, 400 + state.thread_index());
  std::string got;
  leveldb::WriteOptions wo;
  wo.sync = sync;
  for (auto _ : state) {
    leveldb::Status s = db.Get(leveldb::ReadOptions(), RawKey(pick(rng)), &got);
    if (s.ok()) {
      const uint64_t key = rng() | (uint64_t{1} << 63);  // Not a read key.
      put_value[0] = got[0];
      s = db.Put(wo, RawKey(key), put_value);
    }
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  SetCounter(state, "log_bytes", static_cast<double>(costs.disclosing_read));
  SetCounter(state, "get_bytes", static_cast<double>(costs.record_value));
}
void BM_RawGetPutLikeDisclosingRead(benchmark::State& state) {
  RawGetPutLoop(state, /*sync=*/false);
}
// As BM_RawGetPutLikeDisclosingRead, but the put is one WriteBatch of as
// many entries as a disclosing read writes, of the same key and value
// sizes (keys ascending within each entry's own prefix, as the event's
// keys do): what LevelDB alone costs for the read's get and its entries,
// without any decryption, encoding or hashing.
void BM_RawGetBatchLikeDisclosingRead(benchmark::State& state) {
  const CostModel& costs = Costs();
  const std::vector<std::pair<size_t, size_t>>& entries = costs.read_entries;
  leveldb::DB& db = raw_run->db.db();
  std::mt19937_64 rng(500 + state.thread_index());
  std::uniform_int_distribution<uint64_t> pick(1, kSetupRecords);
  std::vector<std::string> values;
  for (size_t i = 0; i < entries.size(); ++i) {
    values.push_back(RandomValue(entries[i].second, 900 + i));
  }
  std::string got;
  leveldb::WriteBatch batch;
  uint64_t serial = uint64_t{1} << 62;  // Not a read key.
  for (auto _ : state) {
    leveldb::Status s = db.Get(leveldb::ReadOptions(), RawKey(pick(rng)), &got);
    if (s.ok()) {
      batch.Clear();
      ++serial;
      for (size_t i = 0; i < entries.size(); ++i) {
        std::string key = RawKey(serial);
        key[0] = static_cast<char>('a' + i);  // One key space per entry.
        key.resize(std::max(entries[i].first, key.size()), 'k');
        if (!values[i].empty()) values[i][0] = got[0];
        batch.Put(key, values[i]);
      }
      s = db.Write(leveldb::WriteOptions(), &batch);
    }
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  SetCounter(state, "entries", static_cast<double>(entries.size()));
}
// The baseline of BM_SyncDisclosingRead (issue 16, workload 2 with sync).
void BM_RawSyncGetPutLikeDisclosingRead(benchmark::State& state) {
  RawGetPutLoop(state, /*sync=*/true);
}

// The baseline of a ListRecords page (issue 16, workload 3): an iterator
// reads kListPage consecutive values of the stored record's size from a
// random key, then one Put (synchronous with `sync`) writes as many bytes
// as the page's read events. Items are records.
void RawListLoop(benchmark::State& state, bool sync) {
  const CostModel& costs = Costs();
  leveldb::DB& db = raw_run->db.db();
  std::mt19937_64 rng(500 + state.thread_index());
  std::uniform_int_distribution<uint64_t> pick(1, kSetupRecords - kListPage);
  std::string put_value = RandomValue(costs.RawValueFor(costs.list_page), 600);
  leveldb::WriteOptions wo;
  wo.sync = sync;
  int64_t records = 0;
  for (auto _ : state) {
    std::unique_ptr<leveldb::Iterator> it(
        db.NewIterator(leveldb::ReadOptions()));
    size_t read = 0;
    uint64_t bytes = 0;
    for (it->Seek(RawKey(pick(rng))); it->Valid() && read < kListPage;
         it->Next()) {
      bytes += it->value().size();
      ++read;
    }
    leveldb::Status s = it->status();
    if (s.ok() && read != kListPage) s = leveldb::Status::NotFound("short");
    if (s.ok()) {
      const uint64_t key = rng() | (uint64_t{1} << 63);  // Not a read key.
      put_value[0] = static_cast<char>(bytes);
      s = db.Put(wo, RawKey(key), put_value);
    }
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    records += static_cast<int64_t>(read);
  }
  state.SetItemsProcessed(records);
  SetCounter(state, "log_bytes", static_cast<double>(costs.list_page));
}
void BM_RawListPage(benchmark::State& state) {
  RawListLoop(state, /*sync=*/false);
}
void BM_RawSyncListPage(benchmark::State& state) {
  RawListLoop(state, /*sync=*/true);
}

// ---- Registration: synchronous writes from 1, 4 and 16 threads ----

BENCHMARK(BM_SyncCreateExistingSubject)
    ->Setup(OpenStore<true>)
    ->Teardown(CloseStore)
    ->Threads(1)
    ->Threads(4)
    ->Threads(16)
    ->UseRealTime();
BENCHMARK(BM_SyncCreateNewSubject)
    ->Setup(OpenStore<true>)
    ->Teardown(CloseStore)
    ->Threads(1)
    ->Threads(4)
    ->Threads(16)
    ->UseRealTime();
BENCHMARK(BM_SyncDisclosingRead)
    ->Setup(OpenStore<true>)
    ->Teardown(CloseStore)
    ->Threads(1)
    ->Threads(4)
    ->Threads(16)
    ->UseRealTime();
BENCHMARK(BM_RawSyncPut)
    ->Setup(OpenRawDb<true>)
    ->Teardown(CloseRawDb)
    ->Threads(1)
    ->Threads(4)
    ->Threads(16)
    ->UseRealTime();
BENCHMARK(BM_RawSyncGetPutLikeDisclosingRead)
    ->Setup(OpenRawDb<true>)
    ->Teardown(CloseRawDb)
    ->Threads(1)
    ->UseRealTime();
BENCHMARK(BM_SyncListPage)
    ->Setup(OpenStore<true>)
    ->Teardown(CloseStore)
    ->UseRealTime();
BENCHMARK(BM_RawSyncListPage)
    ->Setup(OpenRawDb<true>)
    ->Teardown(CloseRawDb)
    ->UseRealTime();

// ---- Registration: cost of one operation, sync off, one thread ----

BENCHMARK(BM_CreateExistingSubject)
    ->Setup(OpenStore<false>)
    ->Teardown(CloseStore)
    ->UseRealTime();
BENCHMARK(BM_RawPutLikeCreateExistingSubject)
    ->Setup(OpenRawDb<false>)
    ->Teardown(CloseRawDb)
    ->UseRealTime();
BENCHMARK(BM_RawBatchLikeCreateExistingSubject)
    ->Setup(OpenRawDb<false>)
    ->Teardown(CloseRawDb)
    ->UseRealTime();
// The raw side of issue 16's workload 1 at its own size: a million puts of
// a create's bytes into one database, sync off, one run (bench/compare.py's
// run create_million; the engine's million creates are sweep_bench's
// build of its shared store of a million, records of the same shape); then its
// workload 4 there (counters; see the function).
BENCHMARK(BM_RawPutLikeCreateMillion)
    ->Setup(OpenRawDb<false>)
    ->Teardown(CloseRawDb)
    ->Iterations(1'000'000)
    ->Repetitions(1)
    ->UseRealTime();
// Issue 16's workload 1 with sync on at its own size: a million synced
// creates into one store, and a million synced raw puts of a create's bytes
// into one database, once each, from one thread and from 16 (group commit;
// 62,500 each). compare.py's full run runs those of 16 threads (the run
// create_million_sync), and with --million-sync those of one thread too
// (docs/decisions.md).
BENCHMARK(BM_SyncCreateExistingSubject)
    ->Name("BM_SyncCreateMillion")
    ->Setup(OpenStore<true>)
    ->Teardown(CloseStore)
    ->Iterations(1'000'000)
    ->Repetitions(1)
    ->Threads(1)
    ->UseRealTime();
BENCHMARK(BM_SyncCreateExistingSubject)
    ->Name("BM_SyncCreateMillion")
    ->Setup(OpenStore<true>)
    ->Teardown(CloseStore)
    ->Iterations(62'500)
    ->Repetitions(1)
    ->Threads(16)
    ->UseRealTime();
BENCHMARK(BM_RawSyncPut)
    ->Name("BM_RawSyncPutMillion")
    ->Setup(OpenRawDb<true>)
    ->Teardown(CloseRawDb)
    ->Iterations(1'000'000)
    ->Repetitions(1)
    ->Threads(1)
    ->UseRealTime();
BENCHMARK(BM_RawSyncPut)
    ->Name("BM_RawSyncPutMillion")
    ->Setup(OpenRawDb<true>)
    ->Teardown(CloseRawDb)
    ->Iterations(62'500)
    ->Repetitions(1)
    ->Threads(16)
    ->UseRealTime();
BENCHMARK(BM_CreateNewSubject)
    ->Setup(OpenStore<false>)
    ->Teardown(CloseStore)
    ->UseRealTime();
BENCHMARK(BM_RawPutLikeCreateNewSubject)
    ->Setup(OpenRawDb<false>)
    ->Teardown(CloseRawDb)
    ->UseRealTime();
BENCHMARK(BM_DisclosingRead)
    ->Setup(OpenStore<false>)
    ->Teardown(CloseStore)
    ->UseRealTime();
BENCHMARK(BM_RawGetPutLikeDisclosingRead)
    ->Setup(OpenRawDb<false>)
    ->Teardown(CloseRawDb)
    ->UseRealTime();
BENCHMARK(BM_RawGetBatchLikeDisclosingRead)
    ->Setup(OpenRawDb<false>)
    ->Teardown(CloseRawDb)
    ->UseRealTime();
BENCHMARK(BM_CloseRecord)
    ->Setup(OpenCloseStore)
    ->Teardown(CloseStore)
    ->Iterations(kCloseRecords)
    ->UseRealTime();
BENCHMARK(BM_RawPutLikeCloseRecord)
    ->Setup(OpenRawDb<false>)
    ->Teardown(CloseRawDb)
    ->UseRealTime();
BENCHMARK(BM_ListPage)
    ->Setup(OpenStore<false>)
    ->Teardown(CloseStore)
    ->UseRealTime();
BENCHMARK(BM_RawListPage)
    ->Setup(OpenRawDb<false>)
    ->Teardown(CloseRawDb)
    ->UseRealTime();

}  // namespace
}  // namespace custos
