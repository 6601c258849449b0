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
//
// At kSharedRecords (the million) one store serves both layouts'
// 1,000-due benchmarks and the half sweep (SharedStore): kGroups clustered
// groups (the first ids), then kGroups spread groups (spread over the ids
// left), then the half's group (every other id of those left, near
// enough), due in that order. Run in the registered order (compare.py
// does not shuffle it), the clustered benchmarks take the clustered
// groups, then the spread ones theirs, then the half sweeps copies of
// what is left; in any other order a benchmark first sweeps, untimed, the
// other kinds' groups due before its own (SweepStore::NextAsOf), and a
// store with too few groups left of its kind is built again.
//
// The records database's LevelDB options (Options::records_db) are the
// engine's, or those the environment names (bench::RecordsTuning,
// bench/README.md), for the engine and the settling compaction alike.

#include <benchmark/benchmark.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/options.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "bench/support.h"
#include "crypto/secret_key.h"
#include "storage/engine.h"
#include "storage/log_sync_env.h"
#include "storage/period.h"
#include "storage/types.h"

namespace custos {
namespace {

// 2026-01-01T12:00:00Z.
constexpr int64_t kStartMicros = 1'767'268'800'000'000;
constexpr int kDuePerSweep = 1'000;
// Records per Engine::CreateRecords call in a batched build (SweepStore):
// Limits::max_batch_records' default.
constexpr int kBuildBatch = 100;
// Sweeps per benchmark (its iterations); four benchmarks per store
// (compaction off with sync off and with sync on, on, and batched).
constexpr int kSweepsPerRun = 3;
constexpr int kGroups = 4 * kSweepsPerRun;
// The store size: its 1,000-due stores of both layouts and its
// half sweep's store are one store (SharedStore).
constexpr int kSharedRecords = 1'000'000;
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

// What LevelDB's compactions cost a sweep, counted beneath the engine
// (Options::env, which the engine gives LevelDB for both databases; their
// info logs are discarded, so "leveldb.stats" is not reachable from here):
// bytes appended to table files (memtable flushes and compaction outputs:
// only LevelDB's background thread writes tables) and the time their
// Sync() calls took, bytes read from table files by the background thread
// (compaction inputs) and by every other thread (the engine's own reads),
// and each background job (one memtable flush, or one compaction of one
// level into the next: a manual CompactRange runs one per level, level 0
// first, after a flush): its bytes read and written, wall and CPU time. Counted
// per database (the directory a file is in: "records" or "keystore").
struct DbIo {
  std::atomic<uint64_t> table_bytes_written{0};
  std::atomic<uint64_t> bg_table_bytes_read{0};
  std::atomic<uint64_t> fg_table_bytes_read{0};
  std::atomic<uint64_t> log_bytes_written{0};
  std::atomic<uint64_t> table_syncs{0};
  std::atomic<uint64_t> table_sync_ns{0};
  // Background jobs of this database that read tables (compactions) and
  // that only wrote (flushes), and what the flushes wrote.
  std::atomic<uint64_t> compactions{0};
  std::atomic<uint64_t> flushes{0};
  std::atomic<uint64_t> flush_bytes_written{0};
};

struct DbIoSnapshot {
  uint64_t table_written = 0, bg_read = 0, fg_read = 0, log_written = 0,
           table_syncs = 0, table_sync_ns = 0, compactions = 0, flushes = 0,
           flush_written = 0;

  static DbIoSnapshot Of(const DbIo& io) {
    DbIoSnapshot s;
    s.table_written = io.table_bytes_written;
    s.bg_read = io.bg_table_bytes_read;
    s.fg_read = io.fg_table_bytes_read;
    s.log_written = io.log_bytes_written;
    s.table_syncs = io.table_syncs;
    s.table_sync_ns = io.table_sync_ns;
    s.compactions = io.compactions;
    s.flushes = io.flushes;
    s.flush_written = io.flush_bytes_written;
    return s;
  }
  // Unsigned: a - b + b == a, whatever wraps in between.
  DbIoSnapshot Minus(const DbIoSnapshot& o) const {
    return Combine(o, [](uint64_t a, uint64_t b) { return a - b; });
  }
  DbIoSnapshot Plus(const DbIoSnapshot& o) const {
    return Combine(o, [](uint64_t a, uint64_t b) { return a + b; });
  }
  // Compaction outputs: the tables written other than by flushes.
  uint64_t compaction_written() const { return table_written - flush_written; }

 private:
  template <typename F>
  DbIoSnapshot Combine(const DbIoSnapshot& o, F f) const {
    DbIoSnapshot d;
    d.table_written = f(table_written, o.table_written);
    d.bg_read = f(bg_read, o.bg_read);
    d.fg_read = f(fg_read, o.fg_read);
    d.log_written = f(log_written, o.log_written);
    d.table_syncs = f(table_syncs, o.table_syncs);
    d.table_sync_ns = f(table_sync_ns, o.table_sync_ns);
    d.compactions = f(compactions, o.compactions);
    d.flushes = f(flushes, o.flushes);
    d.flush_written = f(flush_written, o.flush_written);
    return d;
  }
};

double MiB(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

double CpuSeconds(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// CLOCK_MONOTONIC seconds (steady_clock here): the clock of
// `perf record -k CLOCK_MONOTONIC`, so that `perf report --time` can take
// one phase's window.
double MonotonicSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

thread_local bool tls_in_background = false;

class CountingEnv final : public leveldb::EnvWrapper {
 public:
  // One background job of the records database.
  struct Job {
    double start = 0, wall = 0, cpu = 0;
    uint64_t read = 0, written = 0;
  };

  CountingEnv() : leveldb::EnvWrapper(leveldb::Env::Default()) {}

  DbIo& records() { return records_; }
  DbIo& keystore() { return keystore_; }
  // CPU seconds spent by LevelDB's background thread on this Env's jobs.
  double background_cpu_seconds() const {
    return static_cast<double>(bg_cpu_ns_.load()) * 1e-9;
  }
  // The records database's jobs that read or wrote anything, from the
  // `from`th on.
  std::vector<Job> RecordsJobs(size_t from) const {
    std::lock_guard<std::mutex> guard(jobs_mu_);
    if (from >= jobs_.size()) return {};
    return {jobs_.begin() + static_cast<std::ptrdiff_t>(from), jobs_.end()};
  }
  size_t records_job_count() const {
    std::lock_guard<std::mutex> guard(jobs_mu_);
    return jobs_.size();
  }

  leveldb::Status NewWritableFile(const std::string& f,
                                  leveldb::WritableFile** r) override {
    leveldb::Status s = target()->NewWritableFile(f, r);
    if (s.ok()) Wrap(f, r);
    return s;
  }
  leveldb::Status NewAppendableFile(const std::string& f,
                                    leveldb::WritableFile** r) override {
    leveldb::Status s = target()->NewAppendableFile(f, r);
    if (s.ok()) Wrap(f, r);
    return s;
  }
  leveldb::Status NewRandomAccessFile(const std::string& f,
                                      leveldb::RandomAccessFile** r) override {
    // Tables read as the engine reads them over Env::Default()
    // (storage/log_sync_env.h), as the benchmark's engines are set.
    leveldb::Status s = IsTable(f) && table_reads_ == TableReads::kPread
                            ? NewTableFile(f, r)
                            : target()->NewRandomAccessFile(f, r);
    DbIo* io = DbOf(f);
    if (s.ok() && io != nullptr && IsTable(f)) {
      *r = std::make_unique<ReadCounter>(
               std::unique_ptr<leveldb::RandomAccessFile>(*r), *io)
               .release();
    }
    return s;
  }
  void Schedule(void (*fn)(void*), void* arg) override {
    target()->Schedule(
        &RunJob,
        std::make_unique<Scheduled>(Scheduled{fn, arg, this}).release());
  }

 private:
  struct Scheduled {
    void (*fn)(void*);
    void* arg;
    CountingEnv* env;
  };
  static void RunJob(void* p) {
    const std::unique_ptr<Scheduled> job(static_cast<Scheduled*>(p));
    job->env->Run(*job);
  }
  void Run(const Scheduled& job) {
    // One background thread runs every job of Env::Default(): the counts'
    // differences are this job's.
    const DbIoSnapshot records = DbIoSnapshot::Of(records_);
    const DbIoSnapshot keystore = DbIoSnapshot::Of(keystore_);
    Job done;
    done.start = MonotonicSeconds();
    const double cpu = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    tls_in_background = true;
    job.fn(job.arg);
    tls_in_background = false;
    done.cpu = CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - cpu;
    done.wall = MonotonicSeconds() - done.start;
    bg_cpu_ns_ += static_cast<uint64_t>(done.cpu * 1e9);
    for (auto [io, before] :
         {std::pair<DbIo*, const DbIoSnapshot*>{&records_, &records},
          {&keystore_, &keystore}}) {
      const DbIoSnapshot d = DbIoSnapshot::Of(*io).Minus(*before);
      // A flush reads back only its new table's footer and index (LevelDB
      // checks the table it wrote); a compaction reads at least a table.
      if (d.table_written > 0 && d.bg_read * 8 < d.table_written) {
        ++io->flushes;
        io->flush_bytes_written += d.table_written;
      } else if (d.bg_read > 0) {
        ++io->compactions;
      }
      if (io == &records_ && (d.bg_read > 0 || d.table_written > 0)) {
        done.read = d.bg_read;
        done.written = d.table_written;
        std::lock_guard<std::mutex> guard(jobs_mu_);
        jobs_.push_back(done);
      }
    }
  }

  static bool IsTable(const std::string& f) {
    return f.ends_with(".ldb") || f.ends_with(".sst");
  }
  DbIo* DbOf(const std::string& f) {
    const std::string dir = std::filesystem::path(f).parent_path().filename();
    if (dir == "records") return &records_;
    if (dir == "keystore") return &keystore_;
    return nullptr;
  }
  void Wrap(const std::string& f, leveldb::WritableFile** r) {
    DbIo* io = DbOf(f);
    if (io == nullptr || !(IsTable(f) || f.ends_with(".log"))) return;
    *r = std::make_unique<WriteCounter>(
             std::unique_ptr<leveldb::WritableFile>(*r), *io, IsTable(f))
             .release();
  }

  class WriteCounter final : public leveldb::WritableFile {
   public:
    WriteCounter(std::unique_ptr<leveldb::WritableFile> base, DbIo& io,
                 bool table)
        : base_(std::move(base)), io_(io), table_(table) {}
    leveldb::Status Append(const leveldb::Slice& data) override {
      (table_ ? io_.table_bytes_written : io_.log_bytes_written) += data.size();
      return base_->Append(data);
    }
    leveldb::Status Close() override { return base_->Close(); }
    leveldb::Status Flush() override { return base_->Flush(); }
    leveldb::Status Sync() override {
      if (!table_) return base_->Sync();
      const double started = MonotonicSeconds();
      leveldb::Status s = base_->Sync();
      ++io_.table_syncs;
      io_.table_sync_ns +=
          static_cast<uint64_t>((MonotonicSeconds() - started) * 1e9);
      return s;
    }

   private:
    std::unique_ptr<leveldb::WritableFile> base_;
    DbIo& io_;
    bool table_;
  };

  class ReadCounter final : public leveldb::RandomAccessFile {
   public:
    ReadCounter(std::unique_ptr<leveldb::RandomAccessFile> base, DbIo& io)
        : base_(std::move(base)), io_(io) {}
    leveldb::Status Read(uint64_t offset, size_t n, leveldb::Slice* result,
                         char* scratch) const override {
      leveldb::Status s = base_->Read(offset, n, result, scratch);
      (tls_in_background ? io_.bg_table_bytes_read : io_.fg_table_bytes_read) +=
          result->size();
      return s;
    }

   private:
    std::unique_ptr<leveldb::RandomAccessFile> base_;
    DbIo& io_;
  };

  const TableReads table_reads_ = bench::TableReadsFromEnv();
  DbIo records_;
  DbIo keystore_;
  std::atomic<uint64_t> bg_cpu_ns_{0};
  mutable std::mutex jobs_mu_;
  std::vector<Job> jobs_;
};

// A sweep's phases, told apart by its progress reports (Sweeper::Sweep
// reports kDestroyingKeys once the erasure by key is done, kCompacting once
// the destroyed buckets' ranges are deleted, kTransitions after each batch
// of the record-by-record rewrite, the first one after the range's
// compaction too, kDestroyingKeys again once the rewrite is done,
// kPruningHistory once the buckets it emptied are destroyed, kCompacting
// once the history is pruned; the final compaction ends the sweep), each
// with its wall time, the process's CPU time, LevelDB's background CPU
// time, the databases' CountingEnv counts and the records database's
// background jobs.
class PhaseTrace {
 public:
  struct Segment {
    std::string label;
    double start = 0;  // MonotonicSeconds().
    double wall = 0, cpu = 0, bg_cpu = 0;
    uint64_t log_syncs = 0;
    DbIoSnapshot records, keystore;
    std::vector<CountingEnv::Job> jobs;
  };

  // `syncs` counts the records log's fdatasyncs (Engine::TEST_SyncCount).
  PhaseTrace(CountingEnv& env, std::function<uint64_t()> syncs)
      : env_(env), syncs_(std::move(syncs)) {
    Mark();
  }

  std::function<void(const SweepProgress&)> Progress() {
    return [this](const SweepProgress& p) { OnProgress(p.phase); };
  }
  // Ends the last segment (the final compaction).
  void Finish() { Close("final compaction"); }

  const std::vector<Segment>& segments() const { return segments_; }
  // The sum of the segments up to and including the first labelled `last`.
  Segment Through(const std::string& last) const {
    Segment sum;
    sum.label = "through " + last;
    for (const Segment& s : segments_) {
      Add(sum, s);
      if (s.label == last) break;
    }
    return sum;
  }
  Segment Total() const {
    Segment sum;
    sum.label = "whole sweep";
    for (const Segment& s : segments_) Add(sum, s);
    return sum;
  }

  static void Print(const char* what, const Segment& s) {
    std::string jobs;
    for (const CountingEnv::Job& j : s.jobs) {
      char buffer[96];
      std::snprintf(buffer, sizeof(buffer), " [%.1f/%.1f MiB %.3f s cpu %.3f]",
                    MiB(j.read), MiB(j.written), j.wall, j.cpu);
      jobs += buffer;
    }
    std::fprintf(
        stderr,
        "[sweep_bench] %s %-34s at %.3f: wall %8.3f s, cpu %8.3f s (LevelDB "
        "background %7.3f s, %llu log syncs); records db: %llu compactions "
        "read %.1f MiB, "
        "wrote %.1f MiB; %llu flushes %.1f MiB; %llu table syncs %.3f s; "
        "engine read %.1f MiB of tables, log %.1f MiB; keystore compactions "
        "read %.1f MiB, wrote %.1f MiB; records jobs (read/written):%s\n",
        what, s.label.c_str(), s.start, s.wall, s.cpu, s.bg_cpu,
        static_cast<unsigned long long>(s.log_syncs),
        static_cast<unsigned long long>(s.records.compactions),
        MiB(s.records.bg_read), MiB(s.records.compaction_written()),
        static_cast<unsigned long long>(s.records.flushes),
        MiB(s.records.flush_written),
        static_cast<unsigned long long>(s.records.table_syncs),
        static_cast<double>(s.records.table_sync_ns) * 1e-9,
        MiB(s.records.fg_read), MiB(s.records.log_written),
        MiB(s.keystore.bg_read), MiB(s.keystore.compaction_written()),
        jobs.c_str());
  }

 private:
  static void Add(Segment& sum, const Segment& s) {
    if (sum.wall == 0) sum.start = s.start;
    sum.wall += s.wall;
    sum.cpu += s.cpu;
    sum.bg_cpu += s.bg_cpu;
    sum.log_syncs += s.log_syncs;
    sum.records = sum.records.Plus(s.records);
    sum.keystore = sum.keystore.Plus(s.keystore);
    sum.jobs.insert(sum.jobs.end(), s.jobs.begin(), s.jobs.end());
  }

  void OnProgress(SweepPhase phase) {
    switch (phase) {
      case SweepPhase::kDestroyingKeys:
        Close(destroyed_++ == 0 ? "erasure by key" : "rewrite");
        break;
      case SweepPhase::kCompacting:
        Close(compacting_++ == 0 && pruning_ == 0 ? "range deletion"
                                                  : "history pruning");
        break;
      case SweepPhase::kTransitions:
        Close(transitions_++ == 0 && compacting_ == 1
                  ? "range compaction (+ 1st batch)"
                  : "rewrite");
        break;
      case SweepPhase::kPruningHistory:
        ++pruning_;
        Close("bucket destruction, range deletion");
        break;
    }
  }

  void Mark() {
    at_wall_ = MonotonicSeconds();
    at_cpu_ = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
    at_bg_cpu_ = env_.background_cpu_seconds();
    at_records_ = DbIoSnapshot::Of(env_.records());
    at_keystore_ = DbIoSnapshot::Of(env_.keystore());
    at_job_ = env_.records_job_count();
    at_syncs_ = syncs_();
  }

  // Ends the segment since the last mark, labelled `label` (merged into the
  // previous one when that has the same label). A job is counted where it
  // ends.
  void Close(const std::string& label) {
    Segment s;
    s.label = label;
    s.start = at_wall_;
    const double wall = at_wall_, cpu = at_cpu_, bg_cpu = at_bg_cpu_;
    const DbIoSnapshot records = at_records_, keystore = at_keystore_;
    const size_t job = at_job_;
    const uint64_t syncs = at_syncs_;
    Mark();
    s.log_syncs = at_syncs_ - syncs;
    s.wall = at_wall_ - wall;
    s.cpu = at_cpu_ - cpu;
    s.bg_cpu = at_bg_cpu_ - bg_cpu;
    s.records = at_records_.Minus(records);
    s.keystore = at_keystore_.Minus(keystore);
    s.jobs = env_.RecordsJobs(job);
    s.jobs.resize(std::min(s.jobs.size(), at_job_ - job));
    if (!segments_.empty() && segments_.back().label == label) {
      const double start = segments_.back().start;
      Add(segments_.back(), s);
      segments_.back().start = start;
    } else {
      segments_.push_back(std::move(s));
    }
  }

  CountingEnv& env_;
  std::function<uint64_t()> syncs_;
  uint64_t at_syncs_ = 0;
  int destroyed_ = 0, compacting_ = 0, transitions_ = 0, pruning_ = 0;
  double at_wall_ = 0, at_cpu_ = 0, at_bg_cpu_ = 0;
  DbIoSnapshot at_records_, at_keystore_;
  size_t at_job_ = 0;
  std::vector<Segment> segments_;
};

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

// One group of due records: its layout and how many records it holds.
// Groups are given in deadline order (group g closed at ClosedAt(g)).
struct Group {
  Layout layout;
  int due;
};

// `count` groups of `due` records each, all in `layout`.
std::vector<Group> Groups(int count, Layout layout, int due = kDuePerSweep) {
  return std::vector<Group>(static_cast<size_t>(count), Group{layout, due});
}

// The groups of the shared store of kSharedRecords (SharedStore): kGroups
// clustered groups of kDuePerSweep, then kGroups spread ones, then half of
// the store, spread, due last (BM_SweepHalfDue's).
std::vector<Group> SharedGroups() {
  std::vector<Group> groups = Groups(kGroups, Layout::kClustered);
  for (const Group& g : Groups(kGroups, Layout::kSpread)) groups.push_back(g);
  groups.push_back(Group{Layout::kSpread, kSharedRecords / 2});
  return groups;
}

// A store of `records` records laid out as the file comment says, with the
// due groups `groups` (deadline order).
class SweepStore {
 public:
  // `batched`: the build creates its records kBuildBatch a call
  // (Engine::CreateRecords) instead of one a call; create_us_per_record()
  // is then the batched creates'.
  SweepStore(int records, std::vector<Group> groups, bool batched = false)
      : records_(records),
        groups_(std::move(groups)),
        batched_(batched),
        clock_(FromMicros(kStartMicros)),
        master_(crypto::SecretKey::Generate()) {
    options_.data_dir = dir_.path() + "/data";
    options_.table_reads = bench::TableReadsFromEnv();
    options_.sync_writes = false;
    options_.clock = &clock_;
    options_.env = &env_;
    options_.records_db = bench::RecordsTuning();
    const auto started = std::chrono::steady_clock::now();
    Open();
    Value(engine_->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
    admin_.emplace(Value(engine_->ActorFor("admin"), "admin actor"));
    Value(engine_->CreatePrincipal(*admin_, "user", "User", {Role::kUser},
                                   /*redacted=*/false),
          "create user");
    user_.emplace(Value(engine_->ActorFor("user"), "user actor"));
    Build();
    build_seconds_ = SecondsSince(started);
    const auto settle_started = std::chrono::steady_clock::now();
    Settle(/*compact_after_erasure=*/true, /*sync_writes=*/false);
    std::fprintf(stderr,
                 "[sweep_bench] store of %d records (%s): built in %.1f s "
                 "(%s), settled in %.1f s, records database %.1f MiB (write "
                 "buffer %zu KiB, tables %zu KiB, blocks %zu KiB)\n",
                 records_, Describe().c_str(), build_seconds_,
                 batched_ ? "batched creates" : "one create a call",
                 SecondsSince(settle_started),
                 static_cast<double>(RecordsBytes()) / (1 << 20),
                 options_.records_db.write_buffer_size >> 10,
                 options_.records_db.max_file_size >> 10,
                 options_.records_db.block_size >> 10);
  }

  // Closes the engine, compacts the whole records database, flushes every
  // dirty page to disk and reopens the engine: the timed sweeps then pay for
  // their own work, not for the setup's compactions and writeback. The
  // reopen compacts whatever earlier sweeps left queued; with a `delay`,
  // the engine is then opened once more with it.
  //
  // With CUSTOS_BENCH_UNSETTLED=1 in the environment the whole-database
  // compaction is left out (the rest is done): the store is swept as its
  // writes left it, as custosd's store is when a sweep comes soon after
  // them (bench/README.md).
  void Settle(bool compact_after_erasure, bool sync_writes,
              std::chrono::microseconds delay = std::chrono::microseconds(0)) {
    engine_.reset();
    static const bool unsettled = [] {
      const char* value = std::getenv("CUSTOS_BENCH_UNSETTLED");
      return value != nullptr && std::string_view(value) == "1";
    }();
    if (!unsettled) {
      bench::CompactDatabase(options_.data_dir + "/records",
                             options_.records_db);
    }
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

  // A copy of this settled store to sweep in its place, in a directory of
  // its own, its engine open with `compact_after_erasure` and `sync_writes`;
  // its clock, master key, principals and groups are this store's. Closes
  // this store's engine for good: it is then only a source of copies. The
  // tables of its LevelDB databases (records/ and keystore/: every .ldb or
  // .sst file) are hard-linked (LevelDB never changes a table once written
  // and removes one by unlinking its name, so the copy's compactions leave
  // this store's tables as they were), every other file (logs, manifests,
  // CURRENT, LOCK, LOG) is copied; then sync(), as Settle(). A table the
  // copy's compactions drop loses one of two names: its blocks are not
  // freed then (HalfStore times their freeing, as an upper bound).
  std::unique_ptr<SweepStore> Copy(bool compact_after_erasure,
                                   bool sync_writes) {
    engine_.reset();
    return std::unique_ptr<SweepStore>(
        new SweepStore(*this, compact_after_erasure, sync_writes));
  }

  // Closes and reopens the engine, nothing else. Open() compacts what
  // earlier sweeps queued for compaction when compact_after_erasure is on.
  void Reopen(bool compact_after_erasure, bool sync_writes) {
    engine_.reset();
    options_.compact_after_erasure = compact_after_erasure;
    options_.sync_writes = sync_writes;
    Open();
  }

  // Groups of `layout` and `due` records not swept yet.
  int groups_left(Layout layout, int due) const {
    int left = 0;
    for (size_t g = next_group_; g < groups_.size(); ++g) {
      if (Matches(g, layout, due)) ++left;
    }
    return left;
  }

  // The as_of of the sweep of the next group of `layout` and `due`
  // records; nullopt once all were swept. The groups of other kinds due
  // before it (a shared store's, when its benchmarks run in another order
  // than their groups' deadlines) are swept first, here, by one sweep
  // that must erase exactly them: the caller's timed sweep then finds
  // exactly its group due.
  std::optional<Timestamp> NextAsOf(Layout layout, int due) {
    const size_t g = NextOf(layout, due);
    if (g == groups_.size()) return std::nullopt;
    if (g > next_group_) SweepThrough(g - 1);
    next_group_ = g + 1;
    return AsOf(g);
  }

  // Sweeps, untimed, every group not swept yet that is due before the
  // next group of `layout` and `due` records (NextAsOf's catching up,
  // without taking that group).
  void CatchUpTo(Layout layout, int due) {
    const size_t g = NextOf(layout, due);
    if (g < groups_.size() && g > next_group_) SweepThrough(g - 1);
  }

  // Runs history pruning, untimed, to the end of its pass (it then sleeps:
  // docs/history.md, "Retention") by a sweep at the instant before the
  // next group of `layout` and `due` records becomes due, when nothing
  // not swept yet is due (the groups before it were swept at that instant
  // or earlier; CatchUpTo first). A store written over time and swept
  // regularly has had its events examined as they came, one sweep after
  // each; one built in bulk would otherwise run its first pass through
  // the timed sweeps (10,000 events each: the engine's bound). The timed
  // sweeps then examine what was written since, the previous sweep's
  // erasures included. Returns the events the pass examined and its
  // seconds; (0, 0) when pruning already slept and nothing woke it.
  std::pair<uint64_t, double> RunPruningPass(Layout layout, int due) {
    const size_t g = NextOf(layout, due);
    if (g == groups_.size()) return {0, 0};
    const Timestamp before = AsOf(g) - std::chrono::hours(1);
    SweepOptions options;
    options.as_of = before;
    options.max_history_examined = 10'000'000;
    clock_.Set(before);
    const auto started = std::chrono::steady_clock::now();
    auto report = Value(engine_->Sweep(*admin_, options), "pruning pass");
    const double seconds = SecondsSince(started);
    if (report.erased != 0 || report.closed != 0 || report.blocked != 0 ||
        report.history_behind != 0) {
      std::fprintf(stderr, "[sweep_bench] the pruning pass swept records\n");
      std::abort();
    }
    return {report.history_examined, seconds};
  }

  // Whether Copy() closed this store's engine for good.
  bool copied() const { return engine_ == nullptr; }
  bool batched() const { return batched_; }

  Engine& engine() { return *engine_; }
  const Actor& admin() const { return *admin_; }
  // A sweep writes only what is in force: the clock moves to its as_of.
  void SetClock(Timestamp now) { clock_.Set(now); }
  int records() const { return records_; }
  // LevelDB's work beneath the engine (CountingEnv).
  CountingEnv& env() { return env_; }
  // The records database's files, in bytes.
  // LevelDB's background compactions may remove a table between the
  // listing and its size: that table is not counted (a size of that
  // instant, not an exact one), where std::filesystem would throw and end
  // the benchmark (it did, in a sweep at a million, 2026-12-05).
  uintmax_t RecordsBytes() const {
    uintmax_t bytes = 0;
    std::error_code error;
    for (auto it = std::filesystem::recursive_directory_iterator(
             options_.data_dir + "/records", error);
         !error && it != std::filesystem::recursive_directory_iterator();
         it.increment(error)) {
      std::error_code gone;
      if (!it->is_regular_file(gone)) continue;
      const uintmax_t size = it->file_size(gone);
      if (!gone) bytes += size;
    }
    return bytes;
  }

  // The build's creates (sync off, one call each), per record.
  double create_us_per_record() const {
    return create_seconds_ * 1e6 / records_;
  }

 private:
  // Copy()'s.
  SweepStore(const SweepStore& from, bool compact_after_erasure,
             bool sync_writes)
      : records_(from.records_),
        groups_(from.groups_),
        batched_(from.batched_),
        clock_(from.clock_.Now()),
        master_(Value(crypto::SecretKey::FromBytes(from.master_.bytes()),
                      "copy the master key")),
        options_(from.options_),
        next_group_(from.next_group_),
        build_seconds_(from.build_seconds_),
        create_seconds_(from.create_seconds_) {
    options_.data_dir = dir_.path() + "/data";
    options_.clock = &clock_;
    options_.env = &env_;
    options_.compact_after_erasure = compact_after_erasure;
    options_.sync_writes = sync_writes;
    const auto started = std::chrono::steady_clock::now();
    size_t linked = 0, copied = 0;
    namespace fs = std::filesystem;
    const fs::path source = from.options_.data_dir;
    for (const fs::directory_entry& entry :
         fs::recursive_directory_iterator(source)) {
      const fs::path target =
          fs::path(options_.data_dir) / fs::relative(entry.path(), source);
      if (entry.is_directory()) {
        fs::create_directories(target);
        continue;
      }
      fs::create_directories(target.parent_path());
      const std::string extension = entry.path().extension().string();
      if (extension == ".ldb" || extension == ".sst") {
        fs::create_hard_link(entry.path(), target);
        ++linked;
      } else {
        fs::copy_file(entry.path(), target);
        ++copied;
      }
    }
    ::sync();
    Open();
    admin_.emplace(Value(engine_->ActorFor("admin"), "admin actor"));
    user_.emplace(Value(engine_->ActorFor("user"), "user actor"));
    std::fprintf(stderr,
                 "[sweep_bench] store of %d records copied (%zu tables "
                 "linked, %zu files copied) and opened in %.1f s\n",
                 records_, linked, copied, SecondsSince(started));
  }

  static Timestamp ClosedAt(size_t group) {
    // An hour apart: one deadline bucket per group (issue 11).
    return FromMicros(kStartMicros) +
           std::chrono::hours(static_cast<int64_t>(group) + 1);
  }

  // The last instant of group g's deadline bucket (one UTC hour): a sweep
  // as of it erases the group and destroys its bucket's key.
  static Timestamp AsOf(size_t group) {
    return Value(AddPeriod(ClosedAt(group),
                           Value(ParsePeriod("P6M"), "parse period")),
                 "add period") +
           std::chrono::hours(1) - std::chrono::microseconds(1);
  }

  bool Matches(size_t g, Layout layout, int due) const {
    return groups_[g].layout == layout && groups_[g].due == due;
  }

  // The first group from next_group_ on of `layout` and `due` records;
  // groups_.size() if none is left.
  size_t NextOf(Layout layout, int due) const {
    size_t g = next_group_;
    while (g < groups_.size() && !Matches(g, layout, due)) ++g;
    return g;
  }

  // How many groups from `first` on are of its layout and size (a run).
  size_t RunLength(size_t first) const {
    size_t n = 1;
    while (first + n < groups_.size() &&
           Matches(first + n, groups_[first].layout, groups_[first].due)) {
      ++n;
    }
    return n;
  }

  // Sweeps every group from next_group_ through `last` in one sweep, which
  // must erase exactly their records and destroy their buckets' keys.
  void SweepThrough(size_t last) {
    size_t due = 0;
    for (size_t g = next_group_; g <= last; ++g) {
      due += static_cast<size_t>(groups_[g].due);
    }
    const auto started = std::chrono::steady_clock::now();
    SweepOptions options;
    options.as_of = AsOf(last);
    clock_.Set(options.as_of);
    const SweepReport report =
        Value(engine_->Sweep(*admin_, options), "catch-up sweep");
    if (report.erased != due || !report.complete ||
        report.buckets_destroyed != last + 1 - next_group_) {
      std::fprintf(stderr,
                   "[sweep_bench] the catch-up sweep of groups %zu-%zu erased "
                   "%zu records (%zu buckets), not their %zu\n",
                   next_group_, last, report.erased, report.buckets_destroyed,
                   due);
      std::abort();
    }
    std::fprintf(stderr,
                 "[sweep_bench] groups %zu-%zu (%zu records) swept, untimed, "
                 "in %.1f s: due before the next benchmark's\n",
                 next_group_, last, due, SecondsSince(started));
    next_group_ = last + 1;
  }

  std::string Describe() const {
    std::string text;
    for (size_t g = 0; g < groups_.size();) {
      const size_t n = RunLength(g);
      if (!text.empty()) text += ", then ";
      text +=
          std::to_string(n) + (n == 1 ? " group of " : " groups of ") +
          std::to_string(groups_[g].due) + " due, " +
          (groups_[g].layout == Layout::kClustered ? "clustered" : "spread");
      g += n;
    }
    return text;
  }

  void Open() { engine_ = bench::OpenEngine(options_, master_); }

  // Places the groups' records. Consecutive groups of one layout and size
  // form a run, placed in turn among the positions (creation order) no
  // earlier run took: a clustered run takes the first free positions, its
  // groups one after another; a spread run takes free positions evenly
  // over all of them, its groups interleaved (record j of the run is in
  // its group j % n). A store of one run is thus the file comment's
  // clustered or spread store.
  void Build() {
    int due_total = 0;
    for (const Group& g : groups_) due_total += g.due;
    if (records_ * 9 / 10 < due_total || groups_.size() > 127) {
      std::fprintf(stderr, "a store needs at least %d records\n",
                   due_total * 10 / 9);
      std::abort();
    }
    std::vector<int8_t> group_of(static_cast<size_t>(records_), -1);
    std::vector<int> free_positions(static_cast<size_t>(records_));
    for (int i = 0; i < records_; ++i)
      free_positions[static_cast<size_t>(i)] = i;
    for (size_t first = 0; first < groups_.size();) {
      const size_t n = RunLength(first);
      const int64_t due = groups_[first].due;
      const int64_t run = due * static_cast<int64_t>(n);
      const int64_t free_count = static_cast<int64_t>(free_positions.size());
      for (int64_t j = 0; j < run; ++j) {
        const bool clustered = groups_[first].layout == Layout::kClustered;
        const int64_t index = clustered ? j : j * free_count / run;
        const size_t group =
            first + static_cast<size_t>(
                        clustered ? j / due : j % static_cast<int64_t>(n));
        group_of[static_cast<size_t>(
            free_positions[static_cast<size_t>(index)])] =
            static_cast<int8_t>(group);
      }
      std::erase_if(free_positions, [&group_of](int position) {
        return group_of[static_cast<size_t>(position)] >= 0;
      });
      first += n;
    }
    std::vector<std::vector<uint64_t>> groups(groups_.size());
    std::vector<uint64_t> to_withdraw;
    int bulk = 0;
    const auto place = [&](int i, uint64_t id) {
      const int group = group_of[static_cast<size_t>(i)];
      if (group >= 0) {
        groups[static_cast<size_t>(group)].push_back(id);
      } else if (bulk++ % 4 == 0) {
        to_withdraw.push_back(id);
      }
    };
    const auto record = [&](int i) {
      return bench::WorkloadRecord(
          group_of[static_cast<size_t>(i)] >= 0 ? "alert" : "request",
          Identifier(i % kSubjectPool), static_cast<uint64_t>(i));
    };
    const auto creates_started = std::chrono::steady_clock::now();
    if (batched_) {
      std::vector<NewRecord> batch;
      for (int from = 0; from < records_; from += kBuildBatch) {
        const int n = std::min(kBuildBatch, records_ - from);
        batch.clear();
        for (int i = from; i < from + n; ++i) batch.push_back(record(i));
        const std::vector<uint64_t> ids =
            Value(engine_->CreateRecords(*user_, batch), "create records");
        for (int i = 0; i < n; ++i)
          place(from + i, ids[static_cast<size_t>(i)]);
      }
    } else {
      for (int i = 0; i < records_; ++i) {
        place(i,
              Value(engine_->CreateRecord(*user_, record(i)), "create record"));
      }
    }
    create_seconds_ = SecondsSince(creates_started);
    for (size_t g = 0; g < groups_.size(); ++g) {
      clock_.Set(ClosedAt(g));
      for (uint64_t id : groups[g]) {
        Check(engine_->Close(*user_, id), "close record");
      }
    }
    clock_.Set(ClosedAt(groups_.size()));
    for (uint64_t id : to_withdraw) {
      Check(engine_->Withdraw(*user_, id), "withdraw record");
    }
  }

  TempDir dir_;  // First member: removed after the engine is closed.
  int records_;
  std::vector<Group> groups_;
  bool batched_;
  ManualClock clock_;
  crypto::SecretKey master_;
  CountingEnv env_;  // Outlives the engine.
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::optional<Actor> admin_;
  std::optional<Actor> user_;
  size_t next_group_ = 0;
  double build_seconds_ = 0;
  double create_seconds_ = 0;
};

// The store of kSharedRecords records (SharedGroups: both layouts'
// 1,000-due groups and the half sweep's group), built one create a call:
// its build is the million creates' figure. Shared by StoreFor and
// HalfStoreFor: at the size one build serves the 1,000-due
// benchmarks of both layouts and the half sweep, which built three stores
// of a million before (about three minutes more in compare.py's run).
std::shared_ptr<SweepStore>& SharedStore() {
  static std::shared_ptr<SweepStore> shared;
  return shared;
}

// Builds the shared store anew (SharedStore).
SweepStore& BuildSharedStore() {
  std::shared_ptr<SweepStore>& shared = SharedStore();
  shared.reset();  // Its directory first, unless a HalfStore still holds it.
  shared = std::make_shared<SweepStore>(kSharedRecords, SharedGroups());
  return *shared;
}

SweepStore& StoreFor(int records, Layout layout) {
  if (records == kSharedRecords) {
    std::shared_ptr<SweepStore>& shared = SharedStore();
    if (shared == nullptr || shared->copied() ||
        shared->groups_left(layout, kDuePerSweep) < kSweepsPerRun) {
      return BuildSharedStore();
    }
    return *shared;
  }
  static std::map<std::pair<int, Layout>, std::unique_ptr<SweepStore>> stores;
  std::unique_ptr<SweepStore>& slot = stores[{records, layout}];
  if (slot == nullptr ||
      slot->groups_left(layout, kDuePerSweep) < kSweepsPerRun) {
    slot.reset();  // Its directory first: two stores are never on disk.
    // Built kBuildBatch creates a call: the shared store's build (one a
    // call) is the one that times a million creates.
    slot = std::make_unique<SweepStore>(
        records, Groups(GroupsFor(records), layout), /*batched=*/true);
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
// create_batched_us_per_record, the store's build's creates (kBuildBatch a
// call), or create_us_per_record for the shared store's (one a call).
void BM_Sweep1000Due(benchmark::State& state) {
  const int records = static_cast<int>(state.range(0));
  const Layout layout = static_cast<Layout>(state.range(1));
  const int compaction = static_cast<int>(state.range(2));
  const bool sync = state.range(3) != 0;
  const bool compact = compaction != 0;
  SweepStore& store = StoreFor(records, layout);
  // Other kinds' groups due before this benchmark's first (the shared
  // store's, when a filter left some unswept: compare.py runs no batched
  // benchmark at a million, so three clustered groups are left) are swept
  // before the settling, not inside the timed loop after it.
  store.CatchUpTo(layout, kDuePerSweep);
  // Before the settling: the pass reads the log and the records, and the
  // timed sweeps must not find them in the caches it warmed.
  const auto [pass_events, pass_seconds] =
      store.RunPruningPass(layout, kDuePerSweep);
  store.Settle(compact, sync,
               compaction == 2 ? std::chrono::microseconds(kBatchedDelay)
                               : std::chrono::microseconds(0));
  std::fprintf(stderr,
               "[sweep_bench] pruning pass before the timed sweeps: %llu "
               "events examined in %.3f s\n",
               static_cast<unsigned long long>(pass_events), pass_seconds);
  std::vector<double> times_ms;
  std::vector<double> key_times_ms;
  std::vector<double> compaction_read, compaction_written, flush_written,
      store_mib;
  for (auto _ : state) {
    state.PauseTiming();
    const std::optional<Timestamp> as_of = store.NextAsOf(layout, kDuePerSweep);
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
    const uintmax_t records_bytes = store.RecordsBytes();
    PhaseTrace trace(store.env(),
                     [&store] { return store.engine().TEST_SyncCount(); });
    const auto started = std::chrono::steady_clock::now();
    auto keys_gone = KeysGoneAt(started, key_times_ms);
    auto traced = trace.Progress();
    options.progress = [&](const SweepProgress& p) {
      keys_gone(p);
      traced(p);
    };
    auto report = store.engine().Sweep(store.admin(), options);
    times_ms.push_back(SecondsSince(started) * 1e3);
    trace.Finish();
    const PhaseTrace::Segment total = trace.Total();
    compaction_read.push_back(MiB(total.records.bg_read));
    compaction_written.push_back(MiB(total.records.compaction_written()));
    flush_written.push_back(MiB(total.records.flush_written));
    store_mib.push_back(MiB(records_bytes));
    for (const PhaseTrace::Segment& segment : trace.segments()) {
      PhaseTrace::Print("phase", segment);
    }
    PhaseTrace::Print("sweep", total);
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
  state.counters[store.batched() ? "create_batched_us_per_record"
                                 : "create_us_per_record"] =
      store.create_us_per_record();
  state.counters["undecipherable_ms"] = Mean(key_times_ms);
  // The untimed pruning pass (RunPruningPass): events, µs each.
  state.counters["prune_pass_events"] = static_cast<double>(pass_events);
  state.counters["prune_pass_us_per_event"] =
      pass_events == 0 ? 0 : pass_seconds * 1e6 / pass_events;
  // LevelDB's work for the records database during each sweep (means):
  // MiB its compactions read and wrote, MiB its memtable flushes wrote,
  // against the database's size before the sweep (CountingEnv).
  state.counters["compaction_read_MiB"] = Mean(compaction_read);
  state.counters["compaction_written_MiB"] = Mean(compaction_written);
  state.counters["flush_written_MiB"] = Mean(flush_written);
  state.counters["records_MiB"] = Mean(store_mib);
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

// BM_SweepHalfDue's store of `records` in `layout` (half of them due in one
// bucket), built once and only copied from (SweepStore::Copy): the runs
// that differ only in their options sweep copies of the same store. One at
// a time: a store of other records or layout replaces it. At the issue's
// size, spread, it is the shared store (SharedStore), once every group due
// before the half is swept (CatchUpTo: in the registered order, the
// 1,000-due benchmarks swept them) and the store settled again: its
// 500,000 due are then half of a store of 1,000,000 records of which
// 24,000 are already erased.
//
// A copy's compactions unlink the copy's names of the tables they replace,
// so the blocks of those tables stay allocated under the built store's
// names, and a sweep of a copy does not pay for freeing them as a sweep of
// the store itself would. The built store's removal (all its files) is
// timed and printed: an upper bound of that cost.
class HalfStore {
 public:
  ~HalfStore() { Remove(); }
  SweepStore& For(int records, Layout layout) {
    const int due = records / 2;
    if (store_ == nullptr || built_ != std::pair{records, layout} ||
        store_->groups_left(layout, due) == 0) {
      Remove();  // Its directory first.
      if (records == kSharedRecords && layout == Layout::kSpread) {
        std::shared_ptr<SweepStore>& shared = SharedStore();
        if (shared == nullptr || shared->copied() ||
            shared->groups_left(layout, due) == 0) {
          BuildSharedStore();
        }
        shared->CatchUpTo(layout, due);
        const auto settle_started = std::chrono::steady_clock::now();
        shared->Settle(/*compact_after_erasure=*/true, /*sync_writes=*/false);
        std::fprintf(stderr,
                     "[sweep_bench] the shared store settled again in %.1f s "
                     "before its copies for the half sweep\n",
                     SecondsSince(settle_started));
        store_ = shared;
      } else {
        store_ = std::make_shared<SweepStore>(records, Groups(1, layout, due));
      }
      built_ = {records, layout};
    }
    return *store_;
  }

 private:
  void Remove() {
    if (store_ == nullptr) return;
    const bool last = store_.use_count() == 1;
    const auto started = std::chrono::steady_clock::now();
    store_.reset();
    if (!last) return;  // The shared store: removed with the last holder.
    std::fprintf(stderr,
                 "[sweep_bench] the built store of %d records removed in "
                 "%.3f s (every file: at most what freeing the tables its "
                 "copies' compactions dropped would have added to a sweep)\n",
                 built_.first, SecondsSince(started));
  }

  std::pair<int, Layout> built_;
  std::shared_ptr<SweepStore> store_;
};

SweepStore& HalfStoreFor(int records, Layout layout) {
  static HalfStore half;
  return half.For(records, layout);
}

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
// file); sync, Options::sync_writes during the sweep (the build never
// syncs). Each run sweeps a copy of one store built for its records
// and layout (HalfStoreFor): the runs of sync 0 and 1 sweep the same data.
void BM_SweepHalfDue(benchmark::State& state) {
  const int records = static_cast<int>(state.range(0));
  const Layout layout = static_cast<Layout>(state.range(1));
  const bool compact = state.range(2) != 0;
  const bool sync = state.range(3) != 0;
  const int due = records / 2;
  // A copy of the store built for these records and layout (settled by its
  // constructor): a sweep consumes its store.
  std::unique_ptr<SweepStore> copy;
  try {
    copy = HalfStoreFor(records, layout).Copy(compact, sync);
  } catch (const std::filesystem::filesystem_error& e) {
    // The partial copy's directory is gone with it; the built store's at
    // exit.
    state.SkipWithError(e.what());
    return;
  }
  SweepStore& store = *copy;
  double sweep_seconds = 0;
  double key_seconds = 0;
  double compact_seconds = 0;
  double gone_seconds = 0;
  double records_mib = 0, gone_read = 0, gone_written = 0, sweep_read = 0,
         sweep_written = 0;
  for (auto _ : state) {
    const std::optional<Timestamp> as_of = store.NextAsOf(layout, due);
    if (!as_of) {
      state.SkipWithError("no due group left: run without repetitions");
      break;
    }
    SweepOptions options;
    options.as_of = *as_of;
    store.SetClock(*as_of);
    records_mib = MiB(store.RecordsBytes());
    PhaseTrace trace(store.env(),
                     [&store] { return store.engine().TEST_SyncCount(); });
    const auto started = std::chrono::steady_clock::now();
    std::vector<double> key_ms, gone_ms;
    auto keys_gone = KeysGoneAt(started, key_ms);
    auto bytes_gone = BytesGoneAt(started, gone_ms);
    auto traced = trace.Progress();
    options.progress = [&](const SweepProgress& p) {
      keys_gone(p);
      bytes_gone(p);
      traced(p);
    };
    auto report = store.engine().Sweep(store.admin(), options);
    sweep_seconds = SecondsSince(started);
    trace.Finish();
    for (const PhaseTrace::Segment& segment : trace.segments()) {
      PhaseTrace::Print("phase", segment);
    }
    const PhaseTrace::Segment gone =
        trace.Through("range compaction (+ 1st batch)");
    const PhaseTrace::Segment total = trace.Total();
    PhaseTrace::Print("gone ", gone);
    PhaseTrace::Print("sweep", total);
    gone_read = MiB(gone.records.bg_read);
    gone_written = MiB(gone.records.compaction_written());
    sweep_read = MiB(total.records.bg_read);
    sweep_written = MiB(total.records.compaction_written());
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
  // LevelDB's compactions of the records database (CountingEnv): MiB read
  // and written until the bytes were gone (with compact 1: the erasure by
  // key, the range deletion, the range compaction and the rewrite's first
  // batch) and in the whole sweep, against the database's size before it.
  state.counters["gone_compaction_read_MiB"] = gone_read;
  state.counters["gone_compaction_written_MiB"] = gone_written;
  state.counters["compaction_read_MiB"] = sweep_read;
  state.counters["compaction_written_MiB"] = sweep_written;
  state.counters["records_MiB"] = records_mib;
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
