// A LevelDB environment for tests, over Env::Default(), that counts the
// synchronous writes LevelDB itself makes to its write-ahead logs
// (WritableFile::Sync of a ".log" file) and can make them, or the appends
// to those logs, fail as a failing disk would, per database: the keystore's (a
// path under
// "/keystore/") and every other one (records/ in an engine; a test's own
// database). The group-commit fdatasyncs of storage/log_sync_env.h use
// descriptors of their own and do not pass through any Env: for those,
// Engine::TEST_SyncCount and Engine::TEST_FailNextSync.
//
// Tables are read as the engine reads them over Env::Default() by default
// (kDefaultTableReads: NewTableFile, with pread), so that tests over this
// Env run the shipped read path.
//
// Pass it as Options::env (or leveldb::Options::env); it must outlive the
// engine or database. Thread-safe.

#ifndef CUSTOS_TESTS_FAULT_ENV_H_
#define CUSTOS_TESTS_FAULT_ENV_H_

#include <leveldb/env.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "storage/log_sync_env.h"
#include "storage/options.h"

namespace custos::testing {

class FaultEnv final : public leveldb::EnvWrapper {
 public:
  // One database's write-ahead logs.
  struct Logs {
    std::atomic<int> syncs{0};  // Sync calls, failed ones included.
    // While true, every Sync returns an IOError (nothing synced).
    std::atomic<bool> fail_syncs{false};
    // While true, every Append returns an IOError and writes nothing (a
    // full disk, ENOSPC: LevelDB 1.23 does not remember it, unlike a
    // failed Sync, so the next write may succeed).
    std::atomic<bool> fail_appends{false};
    // When set, runs before every Append (failed ones included): a test
    // looks at what is durable elsewhere when this database is written.
    // Set it while no write runs.
    std::function<void()> on_append;
  };

  FaultEnv() : EnvWrapper(leveldb::Env::Default()) {}

  leveldb::Status NewWritableFile(const std::string& fname,
                                  leveldb::WritableFile** result) override {
    leveldb::WritableFile* base = nullptr;
    leveldb::Status s = target()->NewWritableFile(fname, &base);
    if (!s.ok()) return s;
    if (!fname.ends_with(".log")) {
      *result = base;
      return s;
    }
    ++logs_opened;
    *result = new LogFile(
        fname.find("/keystore/") != std::string::npos ? keystore : records,
        base);
    return s;
  }

  leveldb::Status NewRandomAccessFile(
      const std::string& fname, leveldb::RandomAccessFile** result) override {
    if (kDefaultTableReads == TableReads::kPread && fname.ends_with(".ldb")) {
      return NewTableFile(fname, result);
    }
    return target()->NewRandomAccessFile(fname, result);
  }

  Logs keystore;
  Logs records;                     // Every database not under "/keystore/".
  std::atomic<int> logs_opened{0};  // Log files opened, of every database.

 private:
  class LogFile final : public leveldb::WritableFile {
   public:
    LogFile(Logs& logs, leveldb::WritableFile* base)
        : logs_(logs), base_(base) {}
    leveldb::Status Append(const leveldb::Slice& data) override {
      if (logs_.on_append) logs_.on_append();
      if (logs_.fail_appends) {
        return leveldb::Status::IOError("injected", "log append failed");
      }
      return base_->Append(data);
    }
    leveldb::Status Close() override { return base_->Close(); }
    leveldb::Status Flush() override { return base_->Flush(); }
    leveldb::Status Sync() override {
      ++logs_.syncs;
      if (logs_.fail_syncs) {
        return leveldb::Status::IOError("injected", "log sync failed");
      }
      return base_->Sync();
    }

   private:
    Logs& logs_;
    std::unique_ptr<leveldb::WritableFile> base_;
  };
};

}  // namespace custos::testing

#endif  // CUSTOS_TESTS_FAULT_ENV_H_
