#include "storage/log_sync_env.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace custos {
namespace {

bool IsLogFile(const std::string& fname) {
  return fname.size() > 4 && fname.ends_with(".log");
}

}  // namespace

struct LogSyncEnv::SyncHandle {
  explicit SyncHandle(int fd_in) : fd(fd_in) {}
  ~SyncHandle() { ::close(fd); }
  SyncHandle(const SyncHandle&) = delete;
  SyncHandle& operator=(const SyncHandle&) = delete;
  const int fd;
};

class LogSyncEnv::LogFile final : public leveldb::WritableFile {
 public:
  LogFile(LogSyncEnv& env, std::unique_ptr<leveldb::WritableFile> base,
          const SyncHandle* handle)
      : env_(env), base_(std::move(base)), handle_(handle) {}
  ~LogFile() override { env_.Forget(handle_); }

  leveldb::Status Append(const leveldb::Slice& data) override {
    return base_->Append(data);
  }
  leveldb::Status Flush() override { return base_->Flush(); }
  leveldb::Status Sync() override { return base_->Sync(); }
  leveldb::Status Close() override {
    // LevelDB closes a log when it moves to a new one; writes acknowledged
    // by a group sync of this file must not wait for the compaction of its
    // memtable to become durable.
    leveldb::Status synced = base_->Sync();
    leveldb::Status closed = base_->Close();
    env_.Forget(handle_);
    return synced.ok() ? closed : synced;
  }

 private:
  LogSyncEnv& env_;
  std::unique_ptr<leveldb::WritableFile> base_;
  const SyncHandle* handle_;
};

LogSyncEnv::LogSyncEnv(leveldb::Env* base) : EnvWrapper(base) {}
LogSyncEnv::~LogSyncEnv() = default;

leveldb::Status LogSyncEnv::NewWritableFile(const std::string& fname,
                                            leveldb::WritableFile** result) {
  leveldb::WritableFile* base = nullptr;
  leveldb::Status s = target()->NewWritableFile(fname, &base);
  return Track(fname, s, base, result);
}

leveldb::Status LogSyncEnv::NewAppendableFile(const std::string& fname,
                                              leveldb::WritableFile** result) {
  leveldb::WritableFile* base = nullptr;
  leveldb::Status s = target()->NewAppendableFile(fname, &base);
  return Track(fname, s, base, result);
}

leveldb::Status LogSyncEnv::Track(const std::string& fname,
                                  leveldb::Status opened,
                                  leveldb::WritableFile* base,
                                  leveldb::WritableFile** result) {
  std::unique_ptr<leveldb::WritableFile> owned(base);
  *result = nullptr;
  if (!opened.ok()) return opened;
  if (!IsLogFile(fname)) {
    *result = owned.release();
    return opened;
  }
  const int fd = ::open(fname.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return leveldb::Status::IOError(fname, std::strerror(errno));
  }
  auto handle = std::make_shared<SyncHandle>(fd);
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_logs_[handle.get()] = handle;
  }
  *result = new LogFile(*this, std::move(owned), handle.get());
  return opened;
}

void LogSyncEnv::Forget(const SyncHandle* handle) {
  std::lock_guard<std::mutex> lock(mu_);
  open_logs_.erase(handle);
}

Status LogSyncEnv::SyncLogs() {
  std::vector<std::shared_ptr<SyncHandle>> logs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, handle] : open_logs_) logs.push_back(handle);
  }
  for (const auto& handle : logs) {
    if (::fdatasync(handle->fd) != 0) {
      return Status::Internal(std::string("syncing the write-ahead log: ") +
                              std::strerror(errno));
    }
  }
  return Status::Ok();
}

}  // namespace custos
