// What the benchmark binaries share: a temporary directory for a store,
// and setup checks that stop loudly (a setup failure is a bug in the
// benchmark or the engine, never something to measure around).

#ifndef CUSTOS_BENCH_SUPPORT_H_
#define CUSTOS_BENCH_SUPPORT_H_

#include <leveldb/db.h>
#include <leveldb/options.h>
#include <leveldb/status.h>
#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "base/status.h"
#include "crypto/secret_key.h"
#include "storage/engine.h"
#include "storage/options.h"
#include "storage/types.h"

namespace custos::bench {

inline void Check(const Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
    std::abort();
  }
}
inline void Check(const leveldb::Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
    std::abort();
  }
}
// The records database's LevelDB tuning for a benchmark's engines
// (Options::records_db): the engine's defaults (LevelDbTuning), each
// replaced by an environment variable when set, so that one binary measures
// several settings: CUSTOS_BENCH_WRITE_BUFFER_KIB, CUSTOS_BENCH_MAX_FILE_KIB,
// CUSTOS_BENCH_BLOCK_KIB (KiB; bench/README.md). Benchmarks that honour it
// say so.
inline LevelDbTuning RecordsTuning() {
  LevelDbTuning tuning;
  const auto kib = [](const char* name, size_t& field) {
    if (const char* value = std::getenv(name)) {
      field = static_cast<size_t>(std::strtoull(value, nullptr, 10)) << 10;
    }
  };
  kib("CUSTOS_BENCH_WRITE_BUFFER_KIB", tuning.write_buffer_size);
  kib("CUSTOS_BENCH_MAX_FILE_KIB", tuning.max_file_size);
  kib("CUSTOS_BENCH_BLOCK_KIB", tuning.block_size);
  return tuning;
}

// Options::table_reads for a benchmark's engines: the engine's default
// (kDefaultTableReads), or as CUSTOS_BENCH_TABLE_READS says, mapped or
// pread (bench/README.md, bench/table_reads.py); any other value stops the
// benchmark.
inline TableReads TableReadsFromEnv() {
  const char* value = std::getenv("CUSTOS_BENCH_TABLE_READS");
  if (value == nullptr) return kDefaultTableReads;
  if (auto reads = TableReadsFromName(value)) return *reads;
  std::fprintf(stderr, "CUSTOS_BENCH_TABLE_READS=%s: mapped or pread\n", value);
  std::abort();
}

// LevelDB options as storage/leveldb_util.cc opens the engine's databases
// (paranoid checks, no block compression, the records database's `tuning`:
// by default the engine's), for the raw-LevelDB baselines and for every
// benchmark that opens an engine's database directly (to settle or read
// it): a default-options open would compress the tables it rewrites, and a
// baseline with Snappy pays for compression the engine does not do.
inline leveldb::Options EngineLikeOptions(const LevelDbTuning& tuning = {}) {
  leveldb::Options options;
  options.paranoid_checks = true;
  options.compression = leveldb::kNoCompression;
  options.write_buffer_size = tuning.write_buffer_size;
  options.max_file_size = tuning.max_file_size;
  options.block_size = tuning.block_size;
  return options;
}

// The value of a setup step that must succeed.
template <typename T>
T Value(Result<T> result, const char* what) {
  if (!result) Check(result.error(), what);
  return std::move(*result);
}

// Opens an engine on `options` with a copy of `master` (Engine::Open takes
// its key), so that a benchmark can close and reopen its store; aborts on
// error.
inline std::unique_ptr<Engine> OpenEngine(const Options& options,
                                          const crypto::SecretKey& master) {
  return Value(
      Engine::Open(options, Value(crypto::SecretKey::FromBytes(master.bytes()),
                                  "copy master key")),
      "open engine");
}

// Whether LevelDB would schedule no compaction for `db` by the sizes of its
// levels: fewer than 4 files at level 0 and level n >= 1 under 10^n MiB,
// LevelDB 1.23's triggers (VersionSet::Finalize; seek-triggered
// compactions are not seen). The sizes are the tables' exact byte counts
// from "leveldb.sstables" (" number:bytes[smallest .. largest]" under
// "--- level n ---", keys escaped); "leveldb.stats" rounds them to whole
// MiB, and a level 2 of 99.56 MiB read as 100 looked at its limit for ever.
inline bool LevelsWithinLimits(leveldb::DB& db) {
  std::string tables;
  if (!db.GetProperty("leveldb.sstables", &tables)) return false;
  std::istringstream lines(tables);
  int level = -1;
  std::vector<uint64_t> files, bytes;
  for (std::string line; std::getline(lines, line);) {
    if (std::sscanf(line.c_str(), "--- level %d ---", &level) == 1) {
      files.resize(level + 1);
      bytes.resize(level + 1);
      continue;
    }
    unsigned long long number = 0, size = 0;
    if (level < 0 ||
        std::sscanf(line.c_str(), " %llu:%llu[", &number, &size) != 2) {
      std::fprintf(stderr, "unexpected leveldb.sstables line: %s\n",
                   line.c_str());
      std::abort();
    }
    files[level] += 1;
    bytes[level] += size;
  }
  if (!files.empty() && files[0] >= 4) return false;
  for (size_t n = 1; n + 1 < bytes.size(); ++n) {  // The last: no limit.
    if (static_cast<double>(bytes[n]) >= std::pow(10.0, n) * 1048576.0) {
      return false;
    }
  }
  return true;
}

// Returns once LevelDB has no compaction left to run on `db`. A manual
// compaction (and an open after one) leaves levels over their size limit,
// which LevelDB then moves down in the background one table at a time, a
// manifest write and two syncs each: dozens of them for a store of a
// million. Closed before they ran, the database runs them at its next
// open, beside whatever a benchmark times first. LevelDB has no call that
// waits for them, so this polls: the levels within their limits
// (LevelsWithinLimits) and "leveldb.stats" unchanged for 250 ms (a
// compaction under way changes the stats only when it ends, so both are
// asked). Aborts after 10 minutes.
inline void WaitForCompactions(leveldb::DB& db) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::minutes(10);
  std::string last;
  for (int unchanged = 0; unchanged < 5 || !LevelsWithinLimits(db);) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::string stats;
      db.GetProperty("leveldb.stats", &stats);
      std::fprintf(stderr, "LevelDB's compactions did not end in 10 min\n%s",
                   stats.c_str());
      std::abort();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::string now;
    db.GetProperty("leveldb.stats", &now);
    unchanged = now == last ? unchanged + 1 : 0;
    last = std::move(now);
  }
}

// Compacts the whole LevelDB database at `path` (closed by its engine
// first) through its own handle, opened as the engine opens it with
// `tuning`, and waits for the compactions that follow: its files then hold
// no setup's leftovers for a timed loop to pay for.
inline void CompactDatabase(const std::string& path,
                            const LevelDbTuning& tuning = {}) {
  leveldb::DB* raw = nullptr;
  Check(leveldb::DB::Open(EngineLikeOptions(tuning), path, &raw),
        "open database");
  std::unique_ptr<leveldb::DB> db(raw);
  db->CompactRange(nullptr, nullptr);
  WaitForCompactions(*db);
}

// Opens the LevelDB database at `path` (closed by its owner first) and
// waits for the compactions its open schedules (WaitForCompactions), e.g.
// after a compaction made through another handle.
inline void SettleDatabase(const std::string& path,
                           const LevelDbTuning& tuning = {}) {
  leveldb::DB* raw = nullptr;
  Check(leveldb::DB::Open(EngineLikeOptions(tuning), path, &raw),
        "open database");
  std::unique_ptr<leveldb::DB> db(raw);
  WaitForCompactions(*db);
}

// The external identifier of subject `n` in the benchmarks' stores
// ("subject-0000042@example.org"): what a host registers a person by.
inline std::string SubjectIdentifier(int n) {
  char buffer[48];
  std::snprintf(buffer, sizeof(buffer), "subject-%07d@example.org", n);
  return buffer;
}

// Issue 16's workload-1 record: `kind`, 4 attributes (the last naming case
// `serial`) and one personal part about `identifier` of 4 fields whose
// names and values total exactly kWorkloadPersonalBytes.
inline constexpr size_t kWorkloadPersonalBytes = 256;
inline NewRecord WorkloadRecord(const std::string& kind,
                                const std::string& identifier,
                                uint64_t serial) {
  NewRecord record;
  record.kind = kind;
  record.attributes = {{"status", "open"},
                       {"channel", "web-form"},
                       {"priority", "normal"},
                       {"case", "case-" + std::to_string(serial)}};
  std::vector<Field> fields{{"name", "Alex Example"},
                            {"email", identifier},
                            {"phone", "+32 470 12 34 56"}};
  size_t used = 5;  // "notes"
  for (const Field& f : fields) used += f.name.size() + f.value.size();
  fields.push_back({"notes", std::string(kWorkloadPersonalBytes - used, 'x')});
  record.personal.push_back({identifier, std::move(fields)});
  return record;
}

class TempDir {
 public:
  // `prefix` names the benchmark, e.g. "custos-sweep-bench".
  explicit TempDir(const std::string& prefix) {
    std::string path = "/tmp/" + prefix + "-XXXXXX";
    if (mkdtemp(path.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    path_ = std::move(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace custos::bench

#endif  // CUSTOS_BENCH_SUPPORT_H_
