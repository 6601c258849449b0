// A LevelDB environment for tests that fails the log appends of one
// database on demand: a write that never reaches the disk, as a crash
// before it or a full disk leaves the database.

#ifndef CUSTOS_TESTS_FAILING_LOG_APPENDS_H_
#define CUSTOS_TESTS_FAILING_LOG_APPENDS_H_

#include <leveldb/env.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>

namespace custos::testing {

// Every append to a log file under a `dir` directory ("/keystore/" by
// default, or "/records/") fails with IOError("injected log failure")
// while `armed` (LevelDB keeps no error of a failed append: the next write
// works once disarmed).
class FailingLogAppends final : public leveldb::EnvWrapper {
 public:
  explicit FailingLogAppends(std::string dir = "/keystore/")
      : EnvWrapper(leveldb::Env::Default()), dir_(std::move(dir)) {}
  leveldb::Status NewWritableFile(const std::string& fname,
                                  leveldb::WritableFile** result) override {
    leveldb::WritableFile* base = nullptr;
    leveldb::Status s = target()->NewWritableFile(fname, &base);
    if (!s.ok()) return s;
    if (!fname.ends_with(".log") || fname.find(dir_) == std::string::npos) {
      *result = base;
      return s;
    }
    *result = new File(armed, base);
    return s;
  }
  std::atomic<bool> armed{false};

 private:
  const std::string dir_;
  class File final : public leveldb::WritableFile {
   public:
    File(std::atomic<bool>& armed, leveldb::WritableFile* base)
        : armed_(armed), base_(base) {}
    leveldb::Status Append(const leveldb::Slice& data) override {
      if (armed_) return leveldb::Status::IOError("injected log failure");
      return base_->Append(data);
    }
    leveldb::Status Close() override { return base_->Close(); }
    leveldb::Status Flush() override { return base_->Flush(); }
    leveldb::Status Sync() override { return base_->Sync(); }

   private:
    std::atomic<bool>& armed_;
    std::unique_ptr<leveldb::WritableFile> base_;
  };
};

}  // namespace custos::testing

#endif  // CUSTOS_TESTS_FAILING_LOG_APPENDS_H_
