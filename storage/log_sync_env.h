// Internal to storage/: a leveldb::Env wrapper that lets the store make
// LevelDB's write-ahead log durable itself, outside LevelDB's writer queue,
// so that concurrent changes share one fsync (group commit, see
// storage/store.h and docs/storage.md, "Group commit").
//
// LevelDB appends each write batch to its log and flushes it to the file
// (write(2)) before Write returns; with WriteOptions::sync false it never
// fsyncs it. For every log file LevelDB opens for writing, this wrapper
// keeps a second, read-only descriptor of the same file. SyncLogs()
// fdatasyncs those descriptors: fdatasync acts on the file, whichever
// descriptor names it, so every byte LevelDB flushed before the call is
// durable when it returns, while LevelDB goes on appending meanwhile. A log
// file is also synced when LevelDB closes it (switching to a new memtable),
// so a write acknowledged by a sync of the old file never depends on a
// later sync that covers only the new one.
//
// Thread safety: thread-safe.

#ifndef CUSTOS_STORAGE_LOG_SYNC_ENV_H_
#define CUSTOS_STORAGE_LOG_SYNC_ENV_H_

#include <leveldb/env.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/status.h"

namespace custos {

class LogSyncEnv final : public leveldb::EnvWrapper {
 public:
  // `base` does the work. REQUIRES: non-null, outlives this Env.
  explicit LogSyncEnv(leveldb::Env* base);
  ~LogSyncEnv() override;

  leveldb::Status NewWritableFile(const std::string& fname,
                                  leveldb::WritableFile** result) override;
  leveldb::Status NewAppendableFile(const std::string& fname,
                                    leveldb::WritableFile** result) override;

  // Makes durable every byte that LevelDB flushed to a log file of this
  // Env before the call. Errors: Internal when an fdatasync fails (the
  // bytes may or may not be durable).
  Status SyncLogs();

 private:
  struct SyncHandle;
  class LogFile;

  leveldb::Status Track(const std::string& fname, leveldb::Status opened,
                        leveldb::WritableFile* base,
                        leveldb::WritableFile** result);
  void Forget(const SyncHandle* handle);

  std::mutex mu_;
  // The log files open for writing, by handle.
  std::map<const SyncHandle*, std::shared_ptr<SyncHandle>> open_logs_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_LOG_SYNC_ENV_H_
