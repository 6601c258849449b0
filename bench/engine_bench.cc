// Benchmarks of the storage engine's public API, and of raw LevelDB doing
// the nearest equivalent single Put/Get, so the engine's overhead (access
// checks, per-subject encryption, secondary index entries, Cap'n Proto
// encoding, and since issue 5 the access-history event every operation on
// personal data appends in the same write, reads included) can be read as a
// ratio. Results are recorded in bench/RESULTS.md.
//
// Every store lives in a fresh mkdtemp() directory under /tmp, removed when
// the store is destroyed. Time comes from a ManualClock. Throughput
// benchmarks run with Options::sync_writes = false; those named *SyncWrites
// use true and say so in their label. Erasure compaction
// (Options::compact_after_erasure) is on, the default, unless a benchmark
// says otherwise.

#include <benchmark/benchmark.h>
#include <leveldb/db.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <stdlib.h>
#include <unistd.h>

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
#include "report/subject_report_html.h"
#include "report/subject_report_json.h"
#include "storage/engine.h"
#include "storage/keys.h"
#include "storage/types.h"

namespace custos {
namespace {

constexpr int64_t kStartMicros = 1'750'000'000'000'000;  // June 2025.
// Records in the stores that reads and lists run against.
constexpr int kPrefillRecords = 10'000;
// Distinct subjects those records concern; fits the default key cache
// (1024), so reads there find their key cached.
constexpr int kSubjectPool = 1'000;
// Unrelated subjects in the keystore of the shred benchmarks, so that its
// compaction has something to rewrite (the issue-3 engine compacted the
// whole keystore on every shred; since fe64d1c only the destroyed key's
// range is compacted).
constexpr int kBackgroundSubjects = 1'000;
// Records per shredded subject in the shred benchmarks, at most.
constexpr int kMaxShredRecords = 10'000;

using bench::Check;
using bench::Value;

// A TempDir named for this benchmark.
class TempDir : public bench::TempDir {
 public:
  TempDir() : bench::TempDir("custos-engine-bench") {}
};

// The engine's record key, used for the raw LevelDB baselines and to read
// an encoded record back.
std::string RecordKey(uint64_t id) { return keys::Record(id); }

// An engine in a fresh directory, with an admin and one user.
class Store {
 public:
  explicit Store(bool sync_writes, bool compact_after_erasure = true)
      : clock_(FromMicros(kStartMicros)),
        master_(crypto::SecretKey::Generate()) {
    options_.data_dir = dir_.path() + "/data";
    options_.table_reads = bench::TableReadsFromEnv();
    options_.sync_writes = sync_writes;
    options_.compact_after_erasure = compact_after_erasure;
    options_.clock = &clock_;
    Open();
    Value(engine_->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
    admin_.emplace(Value(engine_->ActorFor("admin"), "admin actor"));
    Value(engine_->CreatePrincipal(*admin_, "user", "User", {Role::kUser},
                                   /*redacted=*/false),
          "create user");
    user_.emplace(Value(engine_->ActorFor("user"), "user actor"));
  }

  // Closes the engine, flushes every dirty page of the system to disk, and
  // opens the engine again: the setup's unsynced writes are then not paid
  // for by the first synchronous write of the timed loop (on ext4 an fsync
  // waits for other files' pending data too).
  void Reopen(bool sync_writes) {
    Close();
    ::sync();
    options_.sync_writes = sync_writes;
    Open();
  }
  void Close() { engine_.reset(); }

  Engine& engine() { return *engine_; }
  const Actor& admin() const { return *admin_; }
  const Actor& user() const { return *user_; }
  std::string records_path() const { return options_.data_dir + "/records"; }

 private:
  void Open() { engine_ = bench::OpenEngine(options_, master_); }

  TempDir dir_;  // First member: removed after the engine is closed.
  ManualClock clock_;
  crypto::SecretKey master_;
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::optional<Actor> admin_;
  std::optional<Actor> user_;
};

std::string Identifier(int n) { return bench::SubjectIdentifier(n); }

// Four fields whose names and values total exactly `personal_bytes` (the
// sum the engine checks against Limits::max_personal_bytes).
std::vector<Field> Fields(const std::string& identifier, size_t personal_bytes,
                          char filler) {
  std::vector<Field> fields{{"name", "Alex Example"},
                            {"email", identifier},
                            {"phone", "+32 470 12 34 56"}};
  size_t used = 5;  // "notes"
  for (const Field& f : fields) used += f.name.size() + f.value.size();
  fields.push_back({"notes", std::string(personal_bytes - used, filler)});
  return fields;
}

NewRecord MakeRecord(const std::string& identifier, size_t personal_bytes,
                     uint64_t serial) {
  NewRecord record;
  record.kind = "alert";
  // The four attributes of concurrency_bench's records and of
  // pg_workloads_bench's rows (issue 16: "4 attributes").
  record.attributes = {{"status", "open"},
                       {"channel", "web-form"},
                       {"priority", "normal"},
                       {"case", "case-" + std::to_string(serial)}};
  record.personal.push_back(
      {identifier, Fields(identifier, personal_bytes, 'x')});
  return record;
}

uint64_t Create(Store& store, int subject, size_t personal_bytes,
                uint64_t serial) {
  return Value(store.engine().CreateRecord(
                   store.user(),
                   MakeRecord(Identifier(subject), personal_bytes, serial)),
               "create record");
}

// The size of the value the engine stores for one record with
// `personal_bytes` of fields, read back from its records database: the raw
// LevelDB baselines write values of this size.
size_t EncodedRecordSize(size_t personal_bytes) {
  static std::map<size_t, size_t> sizes;
  if (auto it = sizes.find(personal_bytes); it != sizes.end()) {
    return it->second;
  }
  Store store(/*sync_writes=*/false);
  const uint64_t id = Create(store, 0, personal_bytes, 1);
  store.Close();
  leveldb::DB* raw = nullptr;
  Check(
      leveldb::DB::Open(bench::EngineLikeOptions(), store.records_path(), &raw),
      "open records database");
  std::unique_ptr<leveldb::DB> db(raw);
  std::string value;
  Check(db->Get(leveldb::ReadOptions(), RecordKey(id), &value),
        "read encoded record");
  sizes[personal_bytes] = value.size();
  return value.size();
}

// A store holding kPrefillRecords records over kSubjectPool subjects, shared
// by the read benchmarks (built on first use, removed at exit).
struct Prefilled {
  Store store{/*sync_writes=*/false};
  std::vector<uint64_t> ids;
};

Prefilled& PrefilledStore(size_t personal_bytes) {
  static std::map<size_t, std::unique_ptr<Prefilled>> stores;
  std::unique_ptr<Prefilled>& slot = stores[personal_bytes];
  if (slot == nullptr) {
    slot = std::make_unique<Prefilled>();
    for (int i = 0; i < kPrefillRecords; ++i) {
      slot->ids.push_back(Create(slot->store, i % kSubjectPool, personal_bytes,
                                 static_cast<uint64_t>(i)));
    }
  }
  return *slot;
}

// ---- Raw LevelDB baselines ----

// A LevelDB with the engine's options (paranoid checks, no compression:
// bench::EngineLikeOptions), keys "r:" + 8-byte big-endian id, values of random
// bytes the size of an encoded engine record with Arg personal bytes.
class RawDb {
 public:
  RawDb() {
    leveldb::Options options = bench::EngineLikeOptions();
    options.create_if_missing = true;
    leveldb::DB* raw = nullptr;
    Check(leveldb::DB::Open(options, dir_.path() + "/db", &raw),
          "open raw leveldb");
    db_.reset(raw);
  }
  leveldb::DB& db() { return *db_; }

 private:
  TempDir dir_;  // First member: removed after the database is closed.
  std::unique_ptr<leveldb::DB> db_;
};

std::string RandomValue(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string value(size, '\0');
  for (char& c : value) c = static_cast<char>(rng() & 0xff);
  return value;
}

void RawPutLoop(benchmark::State& state, bool sync) {
  const size_t value_size =
      EncodedRecordSize(static_cast<size_t>(state.range(0)));
  if (sync) ::sync();  // As Store::Reopen before the engine's sync runs.
  RawDb raw;
  std::string value = RandomValue(value_size, 46);
  leveldb::WriteOptions wo;
  wo.sync = sync;
  uint64_t id = 0;
  for (auto _ : state) {
    ++id;
    value[0] = static_cast<char>(id);  // Not the same value twice in a row.
    leveldb::Status s = raw.db().Put(wo, RecordKey(id), value);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["record_bytes"] = static_cast<double>(value_size);
  if (sync) state.SetLabel("sync=true");
}

void BM_RawLevelDbPut(benchmark::State& state) { RawPutLoop(state, false); }

void BM_RawLevelDbPutSync(benchmark::State& state) { RawPutLoop(state, true); }

void BM_RawLevelDbGet(benchmark::State& state) {
  const size_t value_size =
      EncodedRecordSize(static_cast<size_t>(state.range(0)));
  static std::map<size_t, std::unique_ptr<RawDb>> dbs;
  std::unique_ptr<RawDb>& slot = dbs[value_size];
  if (slot == nullptr) {
    slot = std::make_unique<RawDb>();
    std::string value = RandomValue(value_size, 47);
    for (uint64_t id = 1; id <= kPrefillRecords; ++id) {
      value[0] = static_cast<char>(id);
      Check(slot->db().Put(leveldb::WriteOptions(), RecordKey(id), value),
            "prefill raw leveldb");
    }
  }
  std::mt19937_64 rng(48);
  std::uniform_int_distribution<uint64_t> pick(1, kPrefillRecords);
  std::string value;
  for (auto _ : state) {
    leveldb::Status s =
        slot->db().Get(leveldb::ReadOptions(), RecordKey(pick(rng)), &value);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(value.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["record_bytes"] = static_cast<double>(value_size);
}

// ---- Creating records ----

// Arg: personal bytes per record. `new_subject`: every record names a
// subject never seen before (a key is generated, wrapped and stored in the
// keystore); otherwise it names one of kSubjectPool registered subjects
// whose key is cached.
void CreateRecordLoop(benchmark::State& state, bool new_subject, bool sync) {
  const size_t personal_bytes = static_cast<size_t>(state.range(0));
  Store store(/*sync_writes=*/false);
  int next_subject = 0;
  uint64_t serial = 0;
  if (!new_subject) {
    for (; next_subject < kSubjectPool; ++next_subject) {
      Create(store, next_subject, personal_bytes, serial++);
    }
  }
  // Unsynced setup writes are flushed here, not by the first timed fsync.
  store.Reopen(sync);
  // Records are built outside the timed region.
  std::vector<NewRecord> records;
  for (int i = 0; i < 1000; ++i) {
    records.push_back(MakeRecord(Identifier(new_subject ? 0 : i % kSubjectPool),
                                 personal_bytes, 0));
  }
  size_t i = 0;
  for (auto _ : state) {
    NewRecord& record = records[i++ % records.size()];
    // Formatting the identifier (~0.1 us) is left in the timed region:
    // pausing the timers would cost more.
    if (new_subject) {
      record.personal[0].subject_identifier = Identifier(++next_subject);
    }
    Result<uint64_t> id = store.engine().CreateRecord(store.user(), record);
    if (!id) {
      state.SkipWithError(id.error().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(*id);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["record_bytes"] =
      static_cast<double>(EncodedRecordSize(personal_bytes));
  if (sync) state.SetLabel("sync_writes=true");
}

void BM_CreateRecordNewSubject(benchmark::State& state) {
  CreateRecordLoop(state, /*new_subject=*/true, /*sync=*/false);
}
BENCHMARK(BM_CreateRecordNewSubject)->Arg(256)->Arg(1024)->UseRealTime();

void BM_CreateRecordExistingSubject(benchmark::State& state) {
  CreateRecordLoop(state, /*new_subject=*/false, /*sync=*/false);
}
BENCHMARK(BM_CreateRecordExistingSubject)->Arg(256)->Arg(1024)->UseRealTime();

// One fsync of the records database per record.
void BM_CreateRecordExistingSubjectSyncWrites(benchmark::State& state) {
  CreateRecordLoop(state, /*new_subject=*/false, /*sync=*/true);
}
BENCHMARK(BM_CreateRecordExistingSubjectSyncWrites)->Arg(256)->UseRealTime();

// Two fsyncs per record: the keystore's (new key), then the records
// database's.
void BM_CreateRecordNewSubjectSyncWrites(benchmark::State& state) {
  CreateRecordLoop(state, /*new_subject=*/true, /*sync=*/true);
}
BENCHMARK(BM_CreateRecordNewSubjectSyncWrites)->Arg(256)->UseRealTime();

// Baselines for the creates above (functions defined earlier).
BENCHMARK(BM_RawLevelDbPut)->Arg(256)->Arg(1024)->UseRealTime();
BENCHMARK(BM_RawLevelDbPutSync)->Arg(256)->UseRealTime();

// ---- Reading records ----

// The owner reads a random record of the prefilled store, personal data
// decrypted (the part and the subject's identifier). Keys are cached.
void BM_GetRecord(benchmark::State& state) {
  Prefilled& prefilled = PrefilledStore(static_cast<size_t>(state.range(0)));
  Engine& engine = prefilled.store.engine();
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<size_t> pick(0, prefilled.ids.size() - 1);
  for (auto _ : state) {
    Result<RecordView> view =
        engine.GetRecord(prefilled.store.user(), prefilled.ids[pick(rng)]);
    if (!view || !view->personal_included || view->parts.size() != 1) {
      state.SkipWithError("GetRecord did not return the personal part");
      break;
    }
    benchmark::DoNotOptimize(view->parts.front().fields.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["record_bytes"] = static_cast<double>(
      EncodedRecordSize(static_cast<size_t>(state.range(0))));
}
BENCHMARK(BM_GetRecord)->Arg(256)->Arg(1024)->UseRealTime();
BENCHMARK(BM_RawLevelDbGet)->Arg(256)->Arg(1024)->UseRealTime();

// As BM_GetRecord at 256 B, with Options::sync_writes = true, the default:
// the read event each GetRecord writes is then written synchronously (one
// fsync of the records database per read). Its own store of kPrefillRecords
// records over kSubjectPool subjects, built with sync_writes = false and
// reopened with true.
void BM_GetRecordSyncWrites(benchmark::State& state) {
  Store store(/*sync_writes=*/false);
  std::vector<uint64_t> ids;
  for (int i = 0; i < kPrefillRecords; ++i) {
    ids.push_back(
        Create(store, i % kSubjectPool, 256, static_cast<uint64_t>(i)));
  }
  store.Reopen(/*sync_writes=*/true);
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<size_t> pick(0, ids.size() - 1);
  for (auto _ : state) {
    Result<RecordView> view =
        store.engine().GetRecord(store.user(), ids[pick(rng)]);
    if (!view || !view->personal_included || view->parts.size() != 1) {
      state.SkipWithError("GetRecord did not return the personal part");
      break;
    }
    benchmark::DoNotOptimize(view->parts.front().fields.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("sync_writes=true");
}
BENCHMARK(BM_GetRecordSyncWrites)->UseRealTime();

// As BM_GetRecord, but the key cache is emptied before every read, so each
// read reads and unwraps the subject's key from the keystore (the time
// includes wiping and freeing the previous read's key).
void BM_GetRecordKeyCacheMiss(benchmark::State& state) {
  Prefilled& prefilled = PrefilledStore(static_cast<size_t>(state.range(0)));
  Engine& engine = prefilled.store.engine();
  std::mt19937_64 rng(43);
  std::uniform_int_distribution<size_t> pick(0, prefilled.ids.size() - 1);
  for (auto _ : state) {
    engine.TEST_ClearKeyCache();
    Result<RecordView> view =
        engine.GetRecord(prefilled.store.user(), prefilled.ids[pick(rng)]);
    if (!view || !view->personal_included) {
      state.SkipWithError("GetRecord did not return the personal part");
      break;
    }
    benchmark::DoNotOptimize(view->parts.front().fields.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetRecordKeyCacheMiss)->Arg(256)->UseRealTime();

// A page of 100 records from a random cursor, as the owner of all of them
// (access index scan, one record read and decryption per record).
void BM_ListRecords(benchmark::State& state) {
  Prefilled& prefilled = PrefilledStore(static_cast<size_t>(state.range(0)));
  Engine& engine = prefilled.store.engine();
  std::mt19937_64 rng(44);
  std::uniform_int_distribution<size_t> pick(0, prefilled.ids.size() - 101);
  ListQuery query;
  query.limit = 100;
  int64_t records = 0;
  for (auto _ : state) {
    query.after_id = prefilled.ids[pick(rng)];
    Result<ListPage> page = engine.ListRecords(prefilled.store.user(), query);
    if (!page || page->records.size() != 100) {
      state.SkipWithError("ListRecords did not return a full page");
      break;
    }
    records += static_cast<int64_t>(page->records.size());
    benchmark::DoNotOptimize(page->records.data());
  }
  state.SetItemsProcessed(records);
}
BENCHMARK(BM_ListRecords)->Arg(256)->UseRealTime();

// ---- Changing records ----

// The owner replaces the fields of a random record's part (read, decrypt
// check, re-encrypt, write) in a store of kSubjectPool records.
void BM_Rectify(benchmark::State& state) {
  const size_t personal_bytes = static_cast<size_t>(state.range(0));
  Store store(/*sync_writes=*/false);
  std::vector<std::pair<uint64_t, std::string>> targets;
  for (int i = 0; i < kSubjectPool; ++i) {
    const uint64_t id = Create(store, i, personal_bytes, i);
    RecordView view =
        Value(store.engine().GetRecord(store.user(), id), "read back");
    targets.emplace_back(id, view.subject_ids.front());
  }
  store.Reopen(/*sync_writes=*/false);
  const std::vector<Field> fields = Fields(Identifier(0), personal_bytes, 'y');
  std::mt19937_64 rng(45);
  std::uniform_int_distribution<size_t> pick(0, targets.size() - 1);
  for (auto _ : state) {
    const auto& [id, subject_id] = targets[pick(rng)];
    Result<uint64_t> version =
        store.engine().Rectify(store.user(), id, subject_id, fields);
    if (!version) {
      state.SkipWithError(version.error().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(*version);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Rectify)->Arg(256)->Arg(1024)->UseRealTime();

// The owner closes an ACTIVE alert: the close schedules its erasure, so the
// record is re-sealed under its deadline bucket (issue 11: every part opened
// and sealed again under the part key of bucket and subject keys) and
// written with its deadline-index entry. Each iteration closes another of
// kCloseRecords records created beforehand (all in one bucket: its key is
// made once).
constexpr int kCloseRecords = 20'000;
void BM_CloseRecord(benchmark::State& state) {
  const size_t personal_bytes = static_cast<size_t>(state.range(0));
  Store store(/*sync_writes=*/false);
  std::vector<uint64_t> ids;
  ids.reserve(kCloseRecords);
  for (int i = 0; i < kCloseRecords; ++i) {
    ids.push_back(Create(store, i % kSubjectPool, personal_bytes, i));
  }
  store.Reopen(/*sync_writes=*/false);
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
BENCHMARK(BM_CloseRecord)
    ->Arg(256)
    ->Arg(1024)
    ->Iterations(kCloseRecords)
    ->UseRealTime();

// A random record of a store of kCloseRecords records at 256 B, half of
// them closed (issue 11: a closed record is sealed under its deadline
// bucket, its ciphertexts in the bucket's "pb:" entry, so its read costs one
// more lookup), read with its personal data. Arg: 0 reads the active half
// (the owner), 1 the closed half (an officer with a purpose: only an
// officer reads a closed record's personal data; the read writes a
// disclosure event).
void BM_GetClosedRecord(benchmark::State& state) {
  const bool closed = state.range(0) != 0;
  Store store(/*sync_writes=*/false);
  std::vector<uint64_t> active_ids, closed_ids;
  for (int i = 0; i < kCloseRecords; ++i) {
    const uint64_t id = Create(store, i % kSubjectPool, 256, i);
    if (i % 2 == 0) {
      active_ids.push_back(id);
      continue;
    }
    Status done = store.engine().Close(store.user(), id);
    if (!done.ok()) {
      state.SkipWithError(done.ToString().c_str());
      return;
    }
    closed_ids.push_back(id);
  }
  Value(store.engine().CreatePrincipal(store.admin(), "officer", "Officer",
                                       {Role::kOfficer}, /*redacted=*/false),
        "create officer");
  store.Reopen(/*sync_writes=*/false);
  const Actor officer = Value(store.engine().ActorFor("officer"), "officer");
  const Actor& reader = closed ? officer : store.user();
  std::optional<Purpose> purpose;
  if (closed) purpose = Purpose{PurposeKind::kPublicInterest, "benchmark"};
  const std::vector<uint64_t>& ids = closed ? closed_ids : active_ids;
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<size_t> pick(0, ids.size() - 1);
  for (auto _ : state) {
    Result<RecordView> view =
        store.engine().GetRecord(reader, ids[pick(rng)], purpose);
    if (!view || !view->personal_included || view->parts.size() != 1) {
      state.SkipWithError("GetRecord did not return the personal part");
      break;
    }
    benchmark::DoNotOptimize(view->parts.front().fields.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(closed ? "closed" : "active");
}
BENCHMARK(BM_GetClosedRecord)->Arg(0)->Arg(1)->UseRealTime();

// ---- Shredding ----

// Compacts the whole records database of a closed store, so that no
// background compaction left over from the setup competes with the timed
// region for the disk.
void CompactRecordsDatabase(const Store& store) {
  bench::CompactDatabase(store.records_path());
}

// How a shred benchmark's store is built. Each iteration shreds a subject
// not shredded before (subject ids `background_subjects` onwards), holding
// `records_per_subject` records; all of them are created before the timed
// loop, after `background_records` records spread over
// `background_subjects` unrelated subjects, whose keys sit in the keystore
// that every shred compacts.
//
// When `settle`, the records database is compacted while the engine is
// closed, and the engine is reopened (see Store::Reopen): the shred then
// pays only for its own writes. Otherwise the engine stays open and the
// shreds start right after the bulk load.
struct ShredSetup {
  int records_per_subject;
  int background_subjects;
  int background_records;
  bool settle;
  bool compact_after_erasure = true;
};

void ShredLoop(benchmark::State& state, const ShredSetup& setup) {
  const int subjects = static_cast<int>(state.max_iterations);
  Store store(/*sync_writes=*/false, setup.compact_after_erasure);
  uint64_t serial = 0;
  for (int i = 0; i < setup.background_records; ++i) {
    Create(store, i % setup.background_subjects, 256, serial++);
  }
  std::vector<std::string> victims;
  for (int s = 0; s < subjects; ++s) {
    const int subject = setup.background_subjects + s;
    for (int r = 0; r < setup.records_per_subject; ++r) {
      Create(store, subject, 256, serial++);
    }
    victims.push_back(
        Value(store.engine().FindSubject(store.admin(), Identifier(subject)),
              "find subject"));
  }
  if (setup.settle) {
    store.Close();
    CompactRecordsDatabase(store);
    store.Reopen(/*sync_writes=*/false);
  }
  size_t next = 0;
  for (auto _ : state) {
    Status status = store.engine().ShredSubject(store.admin(), victims[next++]);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (store.engine()
          .FindSubject(store.admin(), Identifier(setup.background_subjects))
          .has_value()) {
    state.SkipWithError("a shredded subject can still be found");
  }
}

// Arg: records of the shredded subject (at most kMaxShredRecords). Whatever
// the Arg, the store holds the same number of records, kMaxShredRecords per
// shredded subject, those the subject does not hold going to the
// kBackgroundSubjects unrelated subjects: both variants run on stores of the
// same size after the same amount of I/O, and differ only in how many
// records the shredded subject has.
ShredSetup SameSizeStore(const benchmark::State& state, bool settle) {
  const int records = static_cast<int>(state.range(0));
  return {records, kBackgroundSubjects,
          kBackgroundSubjects + static_cast<int>(state.max_iterations) *
                                    (kMaxShredRecords - records),
          settle};
}

// The shred's own cost: the store is at rest when it starts.
void BM_ShredSubject(benchmark::State& state) {
  ShredLoop(state, SameSizeStore(state, /*settle=*/true));
}
BENCHMARK(BM_ShredSubject)
    ->Arg(10)
    ->Arg(10'000)
    ->Iterations(10)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Right after the bulk load that created the subjects' records, engine
// still open: LevelDB may still be compacting the records database, and the
// shred's fsyncs wait for the load's dirty pages.
void BM_ShredSubjectAfterBulkLoad(benchmark::State& state) {
  ShredLoop(state, SameSizeStore(state, /*settle=*/false));
}
BENCHMARK(BM_ShredSubjectAfterBulkLoad)
    ->Arg(10)
    ->Arg(10'000)
    ->Iterations(10)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Args: subjects in the store (one record each) besides the shredded ones,
// which hold 10 records each; and Options::compact_after_erasure (1 or 0).
// The issue-3 engine compacted the whole keystore on every shred, so its
// cost grew with the number of subjects; the keystore now compacts only the
// destroyed key's range (twice), and with compact_after_erasure the records
// database compacts the shredded subject's key range (twice) as well. The
// variant without it isolates the keystore's part.
void BM_ShredSubjectKeystoreSize(benchmark::State& state) {
  const int background = static_cast<int>(state.range(0));
  ShredLoop(state, {10, background, background, /*settle=*/true,
                    /*compact_after_erasure=*/state.range(1) != 0});
}
BENCHMARK(BM_ShredSubjectKeystoreSize)
    ->Args({1'000, 1})
    ->Args({100'000, 1})
    ->Args({1'000, 0})
    ->Args({100'000, 0})
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Args: CompleteShreds' budget, and how many records were already rewritten
// (untimed) before the timed loop. A subject with 10,000 records is shredded
// before the timed loop; each iteration rewrites `budget` of its records.
// Items are records rewritten.
void BM_CompleteShreds(benchmark::State& state) {
  const size_t budget = static_cast<size_t>(state.range(0));
  const size_t done_before = static_cast<size_t>(state.range(1));
  Store store(/*sync_writes=*/false);
  for (int r = 0; r < 10'000; ++r) Create(store, 0, 256, r);
  Create(store, 1, 256, 10'000);  // A record that stays.
  const std::string victim =
      Value(store.engine().FindSubject(store.admin(), Identifier(0)), "find");
  Check(store.engine().ShredSubject(store.admin(), victim), "shred");
  if (done_before > 0) {
    if (Value(store.engine().CompleteShreds(done_before), "complete") !=
        done_before) {
      state.SkipWithError("CompleteShreds did not use its whole budget");
    }
  }
  store.Reopen(/*sync_writes=*/false);
  int64_t rewritten = 0;
  for (auto _ : state) {
    Result<size_t> done = store.engine().CompleteShreds(budget);
    if (!done || *done != budget) {
      state.SkipWithError("CompleteShreds did not use its whole budget");
      break;
    }
    rewritten += static_cast<int64_t>(*done);
  }
  state.SetItemsProcessed(rewritten);
}
BENCHMARK(BM_CompleteShreds)->Args({1, 0})->Iterations(500)->UseRealTime();
BENCHMARK(BM_CompleteShreds)->Args({1, 9'000})->Iterations(500)->UseRealTime();
BENCHMARK(BM_CompleteShreds)->Args({100, 0})->Iterations(50)->UseRealTime();

// ---- Subject reports ----

// The reported subject's records, and the history events concerning them:
// one create per record, then kReportReads reads of its records by their
// owner (each returns personal data, so each writes a read event).
constexpr int kReportRecords = 1'000;
constexpr int kReportReads = 9'000;
// Records of unrelated subjects, created and read between the reported
// subject's, so that its events are spread over a history shared with other
// people, as in a real store: 10 of them after each of its creates, and one
// read of one of them after each of its reads.
constexpr int kReportOtherSubjects = 1'000;
constexpr int kReportOtherRecords = 10'000;

struct ReportStore {
  Store store{/*sync_writes=*/false};
  bool sync = false;  // The store's sync_writes now.
  std::optional<Actor> auditor;
  std::string subject_id;
  // A report produced during setup, which the render benchmarks render.
  SubjectReport report;
};

// Built on first use, shared by the three benchmarks below and removed at
// exit. Its history grows by one report event per ProduceSubjectReport.
ReportStore& SubjectReportStore() {
  static std::unique_ptr<ReportStore> slot;
  if (slot != nullptr) return *slot;
  slot = std::make_unique<ReportStore>();
  Store& store = slot->store;
  uint64_t serial = 0;
  std::vector<uint64_t> mine;
  std::vector<uint64_t> others;
  for (int i = 0; i < kReportRecords; ++i) {
    mine.push_back(Create(store, 0, 256, serial++));
    for (int j = 0; j < kReportOtherRecords / kReportRecords; ++j) {
      const int other =
          1 + static_cast<int>(others.size()) % kReportOtherSubjects;
      others.push_back(Create(store, other, 256, serial++));
    }
  }
  auto read = [&store](uint64_t id) {
    RecordView view =
        Value(store.engine().GetRecord(store.user(), id), "read record");
    if (!view.personal_included) {
      std::fprintf(stderr, "read record: no personal data returned\n");
      std::abort();
    }
  };
  for (int i = 0; i < kReportReads; ++i) {
    read(mine[static_cast<size_t>(i) % mine.size()]);
    read(others[(static_cast<size_t>(i) * 7) % others.size()]);
  }
  Value(store.engine().CreatePrincipal(store.admin(), "auditor", "Auditor",
                                       {Role::kAuditor}, /*redacted=*/false),
        "create auditor");
  slot->auditor.emplace(Value(store.engine().ActorFor("auditor"), "auditor"));
  slot->subject_id =
      Value(store.engine().FindSubject(store.admin(), Identifier(0)),
            "find reported subject");
  // At rest, as the shred benchmarks' stores: no compaction left over from
  // the setup runs during the timed loop.
  store.Close();
  CompactRecordsDatabase(store);
  store.Reopen(/*sync_writes=*/false);
  slot->report = Value(
      store.engine().ProduceSubjectReport(*slot->auditor, slot->subject_id),
      "produce subject report");
  // Her events: each record's creation, the reads, and the admin's
  // find_subject above (an event about her and no record is in her report
  // since such events are indexed for pruning).
  if (slot->report.records.size() != kReportRecords ||
      slot->report.history.size() != kReportRecords + kReportReads + 1) {
    std::fprintf(stderr, "subject report: %zu records, %zu events\n",
                 slot->report.records.size(), slot->report.history.size());
    std::abort();
  }
  return *slot;
}

// An auditor produces the report of a subject with kReportRecords records
// and kReportRecords + kReportReads events (plus one report event per
// earlier call): every record read and its part decrypted, every event read
// through the subject's history index and its part decrypted, and one
// report event written. Few iterations: each adds an event. Arg sync:
// Options::sync_writes (the store is reopened with it when it changes, and
// one untimed report then warms the reopened engine's caches; the report's
// event is then written synchronously).
void BM_ProduceSubjectReport(benchmark::State& state) {
  ReportStore& fixture = SubjectReportStore();
  const bool sync = state.range(0) != 0;
  if (fixture.sync != sync) {
    fixture.store.Reopen(sync);
    fixture.sync = sync;
    Value(fixture.store.engine().ProduceSubjectReport(*fixture.auditor,
                                                      fixture.subject_id),
          "warm-up report");
  }
  size_t events = 0;
  for (auto _ : state) {
    Result<SubjectReport> report = fixture.store.engine().ProduceSubjectReport(
        *fixture.auditor, fixture.subject_id);
    if (!report || report->records.size() != kReportRecords ||
        report->history.size() < kReportRecords + kReportReads) {
      state.SkipWithError("the report is not the subject's");
      break;
    }
    events = report->history.size();
    benchmark::DoNotOptimize(report->history.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["records"] = kReportRecords;
  state.counters["events"] = static_cast<double>(events);
}
BENCHMARK(BM_ProduceSubjectReport)
    ->ArgName("sync")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(10)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The size of the value the engine stores for a create's history event,
// read back from the records database (the last event of a new store).
size_t EncodedEventSize() {
  static const size_t size = [] {
    Store store(/*sync_writes=*/false);
    Create(store, 0, 256, 1);
    store.Close();
    leveldb::DB* raw = nullptr;
    Check(leveldb::DB::Open(bench::EngineLikeOptions(), store.records_path(),
                            &raw),
          "open records database");
    std::unique_ptr<leveldb::DB> db(raw);
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    size_t last = 0;
    for (it->Seek(std::string(keys::kEventPrefix));
         it->Valid() &&
         it->key().starts_with(leveldb::Slice(keys::kEventPrefix.data(),
                                              keys::kEventPrefix.size()));
         it->Next()) {
      last = it->value().size();
    }
    Check(it->status(), "read events");
    return last;
  }();
  return size;
}

// Issue 16's raw-LevelDB baseline of BM_ProduceSubjectReport (no
// encryption, no index): a LevelDB holding as many values as the report
// store's records database holds records and events (random bytes of the
// stored record's and a create event's size, under record and event keys),
// compacted; each iteration Gets the reported subject's kReportRecords
// records and kReportRecords + kReportReads events (spread through the
// others' as in the report store), then Puts one event (synchronously with
// Arg 1: the report's own event).
void BM_RawLevelDbReportReads(benchmark::State& state) {
  const bool sync = state.range(0) != 0;
  constexpr int kPerMine = 1 + kReportOtherRecords / kReportRecords;
  constexpr uint64_t kRecords = kReportRecords + kReportOtherRecords;
  constexpr uint64_t kEvents = kRecords + 2 * kReportReads;
  std::string record = RandomValue(EncodedRecordSize(256), 49);
  std::string event = RandomValue(EncodedEventSize(), 50);
  RawDb raw;
  for (uint64_t id = 1; id <= kRecords; ++id) {
    record[0] = static_cast<char>(id);
    Check(raw.db().Put(leveldb::WriteOptions(), RecordKey(id), record),
          "fill records");
  }
  for (uint64_t seq = 1; seq <= kEvents; ++seq) {
    event[0] = static_cast<char>(seq);
    Check(raw.db().Put(leveldb::WriteOptions(), keys::Event(seq), event),
          "fill events");
  }
  raw.db().CompactRange(nullptr, nullptr);
  // The subject's: record i * kPerMine + 1, its create event at the same
  // seq, and its reads at every other seq after the creates.
  std::vector<std::string> record_keys;
  std::vector<std::string> event_keys;
  for (uint64_t i = 0; i < kReportRecords; ++i) {
    record_keys.push_back(RecordKey(i * kPerMine + 1));
    event_keys.push_back(keys::Event(i * kPerMine + 1));
  }
  for (uint64_t j = 0; j < kReportReads; ++j) {
    event_keys.push_back(keys::Event(kRecords + 1 + 2 * j));
  }
  if (sync) ::sync();
  leveldb::WriteOptions wo;
  wo.sync = sync;
  uint64_t next_seq = kEvents;
  std::string value;
  for (auto _ : state) {
    leveldb::Status s;
    for (const std::string& key : record_keys) {
      if (s.ok()) s = raw.db().Get(leveldb::ReadOptions(), key, &value);
    }
    for (const std::string& key : event_keys) {
      if (s.ok()) s = raw.db().Get(leveldb::ReadOptions(), key, &value);
    }
    if (s.ok()) s = raw.db().Put(wo, keys::Event(++next_seq), event);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["records"] = kReportRecords;
  state.counters["events"] = static_cast<double>(event_keys.size());
  state.counters["event_bytes"] = static_cast<double>(event.size());
  if (sync) state.SetLabel("sync=true");
}
BENCHMARK(BM_RawLevelDbReportReads)
    ->ArgName("sync")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_RenderSubjectReportJson(benchmark::State& state) {
  const SubjectReport& report = SubjectReportStore().report;
  size_t bytes = 0;
  for (auto _ : state) {
    std::string json = RenderSubjectReportJson(report);
    bytes = json.size();
    benchmark::DoNotOptimize(json.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(bytes));
  state.counters["output_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_RenderSubjectReportJson)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_RenderSubjectReportHtml(benchmark::State& state) {
  const SubjectReport& report = SubjectReportStore().report;
  size_t bytes = 0;
  for (auto _ : state) {
    std::string html = RenderSubjectReportHtml(report);
    bytes = html.size();
    benchmark::DoNotOptimize(html.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(bytes));
  state.counters["output_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_RenderSubjectReportHtml)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace custos
