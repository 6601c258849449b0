// Options of an Engine (storage/engine.h), in the manner of LevelDB's
// options.h: every field says its default and what it requires.

#ifndef CUSTOS_STORAGE_OPTIONS_H_
#define CUSTOS_STORAGE_OPTIONS_H_

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"
#include "storage/limits.h"

namespace leveldb {
class Env;
}  // namespace leveldb

namespace custos {

// The LevelDB sizes of the records database (docs/storage.md, "LevelDB
// options"); every other option of both databases is fixed in OpenLevelDb
// (storage/leveldb_util.cc). The keystore is opened with LevelDB's defaults:
// it holds one small entry per subject and gets none of this memory. None
// of these is part of the stored format: a store opens under other values
// than it was written with. The defaults are LevelDB's, kept on
// measurement: a larger write buffer lowers LevelDB's total work but makes
// a sweep's erased bytes leave the disk later (bench/RESULTS.md, "Issues
// 11/16: LevelDB options for the records database").
struct LevelDbTuning {
  // Bytes of writes buffered in memory (the memtable, and the same bytes in
  // the write-ahead log) before they are written to a level-0 table. While
  // a full memtable is written out, a second one fills: up to twice this in
  // memory, and up to this much log to replay after a crash. Default: 4 MiB
  // (LevelDB's). LevelDB clips it to [64 KiB, 1 GiB].
  size_t write_buffer_size = size_t{4} << 20;
  // Bytes after which a compaction starts a new table file. Default: 2 MiB
  // (LevelDB's). LevelDB clips it to [1 MiB, 1 GiB].
  size_t max_file_size = size_t{2} << 20;
  // Bytes of entries per table block, before the block is written (a
  // block is the unit LevelDB reads, checksums and indexes). Default: 4 KiB
  // (LevelDB's). Tables written with another size stay readable.
  size_t block_size = size_t{4} << 10;
};

// How LevelDB reads the tables of an open engine's two databases
// (docs/storage.md; docs/decisions.md, "Tables read with pread by default,
// mapped by choice"; docs/operations.md, "Memory").
enum class TableReads {
  // Through LevelDB's memory map of each table (its default on 64-bit, for
  // up to 1,000 tables): no system call per read; every page read counts
  // in the process's resident size (as file pages, which the kernel may
  // drop and read again) while the table is open.
  kMapped,
  // With pread(2) into LevelDB's buffers: a system call per block read;
  // the records database's blocks then go through its 8 MiB block cache.
  // Each table keeps its descriptor while LevelDB keeps it open, for at
  // most a fifth of the process's soft RLIMIT_NOFILE of tables (shared by
  // every database of the process), past that it opens its file per read.
  kPread,
};
// The default, and why: docs/decisions.md (above).
inline constexpr TableReads kDefaultTableReads = TableReads::kPread;

// "mapped" or "pread", as custosd --table-reads and the benchmarks'
// CUSTOS_BENCH_TABLE_READS name them; nullopt for any other name.
std::optional<TableReads> TableReadsFromName(std::string_view name);
std::string_view TableReadsName(TableReads reads);

struct Options {
  // Directory holding "records/" and "keystore/". REQUIRES: non-empty.
  std::string data_dir;
  // Create an empty store when data_dir holds none. Default: true.
  bool create_if_missing = true;
  // Acknowledge a change only once it is on stable storage. Concurrent
  // changes share their fsyncs (group commit, docs/storage.md). Default:
  // true.
  bool sync_writes = true;
  // Number of unwrapped subject keys kept in guarded memory. Default: 1024.
  // REQUIRES: >= 1.
  size_t key_cache_capacity = 1024;
  // Default: see Limits. REQUIRES: max_page_size and max_list_scan >= 1.
  Limits limits;
  // After any call that erased data (Sweep, EraseRecord, CompleteShreds),
  // compact the affected key ranges before returning, so that no file of
  // the data directory still holds the erased ciphertexts (docs/
  // retention.md, "Deletion bound"). A shred's destroyed key and sealed
  // identifier are queued like the rest and leave the files at the next
  // such call or Open, never inside ShredSubject itself. Default: true.
  bool compact_after_erasure = true;
  // How long erased bytes may stay on disk. 0: compact before the erasing
  // call returns. Otherwise erased keys are queued with their erasure time
  // and compacted together once the oldest has waited this long, by the
  // next Sweep, CompleteShreds, RekeySubject or Open (never by EraseRecord,
  // whose caller then never waits for a compaction): many erasures share
  // one rewrite, and the bound is this delay plus the interval between
  // sweeps. custosd sets it (--erasure-compaction-delay, default 300 s).
  // Default: 0. REQUIRES: >= 0.
  std::chrono::microseconds erasure_compaction_delay{0};
  // Records, or access-history events, re-sealed per write batch by
  // Engine::RekeySubject; each batch holds the write lock. Default: 100
  // (0 counts as 1).
  size_t rekey_batch_size = 100;
  // Access-history events one sweep's pruning examines beyond those
  // written from the last pruning sweep's beginning to this one's, unless
  // the sweep's
  // SweepOptions::max_history_examined says otherwise: every sweep reads
  // about this many more, whatever is due, and a pass over a log of L
  // events takes about L / this many sweeps (docs/history.md,
  // "Retention"). custosd sets it (--history-examined).
  // Default: 10,000. REQUIRES: >= 1.
  size_t history_examined_per_sweep = 10000;

  // How long a backup stays restorable (docs/operations.md, "Backups"):
  // each backup's keystore dump is sealed under a key of its own, kept only
  // in this store's keyring and destroyed by Sweep or ExpireBackupKeys once
  // older than this; from then on the backup cannot be decrypted at all.
  // Default: 35 days. REQUIRES: > 0.
  std::chrono::microseconds backup_retention{std::chrono::hours(24 * 35)};
  // LevelDB options of the records database. Default: see LevelDbTuning.
  LevelDbTuning records_db;
  // How both databases read their tables while the engine is open (above;
  // a restore writes its databases over `env` directly). Over an `env`
  // other than leveldb::Env::Default(), tables are left to that Env
  // either way.
  // Default: kDefaultTableReads (pread).
  TableReads table_reads = kDefaultTableReads;
  // Source of time. REQUIRES: non-null; must outlive the Engine.
  const Clock* clock = nullptr;
  // LevelDB's environment for both databases: the seam for fault injection
  // in tests. Default: nullptr, meaning leveldb::Env::Default(). If set,
  // must outlive the Engine.
  leveldb::Env* env = nullptr;
  // Benchmark hook (bench/stats_bench.cc): false writes no statistics
  // delta with a transition, to measure what the index costs a write. The
  // statistics then miss every transition made so: never set it on a store
  // whose statistics matter. Default: true.
  bool TEST_statistics_index = true;
};

// Checks every REQUIRES above that a value can break (the master key is
// Engine::Open's): InvalidArgument naming the first option out of range.
// Engine::Open calls it first; a server may call it before opening.
Status CheckOptions(const Options& options);

}  // namespace custos

#endif  // CUSTOS_STORAGE_OPTIONS_H_
