// Internal to storage/ (and to benchmarks that read tables as the engine
// does: NewTableFile): making LevelDB's write-ahead logs durable outside
// LevelDB's writer queue, so that concurrent changes share one fsync (group
// commit, see storage/store.h and docs/storage.md, "Group commit"); and
// reading LevelDB's tables as Options::table_reads says (below).
//
// LevelDB appends each write batch to its log and flushes it to the file
// (write(2)) before Write returns; with WriteOptions::sync false it never
// fsyncs it. For every log file LevelDB opens for writing, LogSyncEnv keeps
// a second, read-only descriptor of the same file. SyncLogs() fdatasyncs
// those descriptors: fdatasync acts on the file, whichever descriptor names
// it, so every byte LevelDB flushed before the call is durable when it
// returns, while LevelDB goes on appending meanwhile. A log file is also
// synced when LevelDB leaves it (switching to a new memtable, LevelDB 1.23
// deletes the file object without Close), so a write
// acknowledged by a sync of the old file never depends on a later sync that
// covers only the new one.
//
// A sync with nothing flushed since the last successful one is skipped (the
// keystore's logs, synced before the records', are usually unchanged).
//
// A failed sync is sticky: every later SyncLogs() returns it, whether it
// happened in SyncLogs or when a log was left (the bytes it should have
// made durable may be lost, and no later sync can tell).
//
// Ordering between databases: SyncBefore(other) makes every sync of this
// Env (SyncLogs and the sync of a log LevelDB leaves) sync `other`'s logs
// first.
//
// GroupSync shares one sync among the writers waiting for it.
//
// Tables: as Options::table_reads says, read through LevelDB's memory map
// (the base Env's, LevelDB's default) or with pread(2) (NewTableFile
// below). With pread, a table keeps its file descriptor open while LevelDB
// keeps the table open, for at most a fifth of the process's soft
// RLIMIT_NOFILE of tables when first asked (as LevelDB budgets its
// read-only descriptors), shared by every database of the process; past
// that, a table opens its file for each read. Over a base Env other than
// leveldb::Env::Default() (a test's, a benchmark's), tables are left to
// that Env; such an Env reads them as the engine does by calling
// NewTableFile.
//
// Thread safety: thread-safe.

#ifndef CUSTOS_STORAGE_LOG_SYNC_ENV_H_
#define CUSTOS_STORAGE_LOG_SYNC_ENV_H_

#include <leveldb/env.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/options.h"

namespace custos {

// Opens table `fname` for reads with pread(2), within the descriptor budget
// (above).
leveldb::Status NewTableFile(const std::string& fname,
                             leveldb::RandomAccessFile** result);

class LogSyncEnv final : public leveldb::EnvWrapper {
 public:
  // `base` does the work. REQUIRES: non-null, outlives this Env.
  explicit LogSyncEnv(leveldb::Env* base,
                      TableReads table_reads = kDefaultTableReads);
  ~LogSyncEnv() override;

  leveldb::Status NewWritableFile(const std::string& fname,
                                  leveldb::WritableFile** result) override;
  leveldb::Status NewAppendableFile(const std::string& fname,
                                    leveldb::WritableFile** result) override;
  // A table (or another file LevelDB reads at random), read as table_reads
  // says (above).
  leveldb::Status NewRandomAccessFile(
      const std::string& fname, leveldb::RandomAccessFile** result) override;

  // The database's LOCK file, locked with an open-file-description lock
  // (fcntl F_OFD_SETLK) rather than LevelDB's process-wide record lock:
  // closing some other descriptor of the file in this process (an erasure
  // scan reading every file; a master-key rotation pointed at it) no
  // longer drops the lock on a live store. It conflicts with every other
  // holder, in this process too, and with the record locks of builds that
  // used LevelDB's. Errors: IOError "lock <file>: <reason>", as LevelDB's
  // (FromLevelDb maps it to Unavailable).
  leveldb::Status LockFile(const std::string& fname,
                           leveldb::FileLock** lock) override;
  leveldb::Status UnlockFile(leveldb::FileLock* lock) override;

  // The tables that may still keep a descriptor open, process-wide; and
  // setting it, for tests of the path without one.
  static int64_t TEST_TableDescriptorPermits();
  static void TEST_SetTableDescriptorPermits(int64_t permits);

  // Every sync of this Env first syncs `first`'s logs. REQUIRES: called
  // before Custos writes to this Env's database (LevelDB's own recovery at
  // open writes nothing that depends on `first`); `first` outlives this
  // Env.
  void SyncBefore(LogSyncEnv* first) { first_ = first; }

  // Makes durable every byte that LevelDB flushed to a log file of this
  // Env (and of the SyncBefore Env) before the call. Errors: Internal when
  // an fdatasync failed, now or earlier (sticky).
  Status SyncLogs();

 private:
  struct SyncHandle;
  class LogFile;

  leveldb::Status Track(const std::string& fname, leveldb::Status opened,
                        leveldb::WritableFile* base,
                        leveldb::WritableFile** result);
  void Forget(const SyncHandle* handle);
  void RecordFailure(const Status& status);
  // Records that flushes up to `flushed` are durable.
  void MarkSynced(uint64_t flushed);

  const TableReads table_reads_;
  LogSyncEnv* first_ = nullptr;
  // Flushes of log files completed, and the count the last successful
  // sync covered.
  std::atomic<uint64_t> flushed_{0};
  std::atomic<uint64_t> synced_flushes_{0};
  std::mutex mu_;
  // The log files open for writing, by handle. Guarded by mu_.
  std::map<const SyncHandle*, std::shared_ptr<SyncHandle>> open_logs_;
  Status failure_;  // Guarded by mu_.
};

// Group commit over a sync function: writers call Wrote() after each write
// and WaitDurable(seq) to be acknowledged; one waiter at a time runs the
// sync for everything written so far, the others wait for it. A finished
// sync wakes the waiters it covered and, if others wait, one of them to
// run the next sync, not every waiter (with many writers, a wake-up of all
// after each sync was most of their context switches). A waiter still
// wakes for nothing when a newly arrived writer starts the next sync
// first, or spuriously; TEST_WastedWakeups counts such wake-ups.
//
// A failed sync fails every waiter it was meant to cover and every later
// one (sticky). Thread-safe.
class GroupSync {
 public:
  explicit GroupSync(std::function<Status()> sync) : sync_(std::move(sync)) {}

  // Records that a write completed; returns its place in the order.
  uint64_t Wrote() { return written_.fetch_add(1) + 1; }
  // Returns once writes up to `seq` are durable, or the failure.
  Status WaitDurable(uint64_t seq);
  // The sticky failure, OK if none.
  Status failure();
  // Makes every later WaitDurable (and failure()) return `status`.
  void Fail(Status status);

  uint64_t writes() const { return written_.load(); }
  uint64_t syncs() const { return syncs_.load(); }
  // Waiters asleep now; wake-ups that found the waiter's write not yet
  // durable and a sync running (so it slept again).
  size_t TEST_Sleeping();
  uint64_t TEST_WastedWakeups() const { return wasted_wakeups_.load(); }
  // Times a waiter slept (for a sync another ran) since construction.
  uint64_t TEST_Sleeps() const { return sleeps_.load(); }
  // Makes the next sync fail with `status`, as a failing disk would.
  void TEST_FailNextSync(Status status);

 private:
  // A caller of WaitDurable, on its stack while it waits.
  struct Waiter {
    explicit Waiter(uint64_t s) : seq(s) {}
    const uint64_t seq;
    std::condition_variable cv;
    bool sleeping = false;  // Guarded by mu_.
  };
  // After a sync or a failure: wakes the waiters whose writes are durable
  // (every one after a failure) and, if some still wait, one of those to
  // lead the next sync. `self` is the caller, awake already.
  void WakeAfterSync(const Waiter* self);

  const std::function<Status()> sync_;
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> wasted_wakeups_{0};
  std::atomic<uint64_t> sleeps_{0};
  std::mutex mu_;
  std::vector<Waiter*> waiters_;  // Guarded by mu_; in no order.
  bool syncing_ = false;          // Guarded by mu_.
  uint64_t synced_ = 0;           // Guarded by mu_: durable up to here.
  Status failure_;                // Guarded by mu_.
  Status inject_;                 // Guarded by mu_.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_LOG_SYNC_ENV_H_
