#include "storage/log_sync_env.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
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
  // LevelDB 1.23 leaves a log for a new one by deleting it, without Close.
  ~LogFile() override {
    if (!retired_) Retire();
  }

  leveldb::Status Append(const leveldb::Slice& data) override {
    return base_->Append(data);
  }
  leveldb::Status Flush() override {
    leveldb::Status s = base_->Flush();
    // Counted once the bytes are in the file (LevelDB flushes after every
    // record), so a sync that sees the count covers them.
    env_.flushed_.fetch_add(1);
    return s;
  }
  leveldb::Status Sync() override {
    // LevelDB's own synced writes (a key's destruction) cover what was
    // flushed before them.
    const uint64_t flushed = env_.flushed_.load();
    leveldb::Status s = base_->Sync();
    if (s.ok()) env_.MarkSynced(flushed);
    return s;
  }
  leveldb::Status Close() override {
    leveldb::Status synced = Retire();
    leveldb::Status closed = base_->Close();
    return synced.ok() ? closed : synced;
  }

 private:
  // When LevelDB leaves a log (closing or deleting it): writes in it must
  // not wait for the compaction of its memtable to become durable, and must
  // not become durable before what they depend on (SyncBefore). A failure
  // is recorded: every later SyncLogs reports it.
  leveldb::Status Retire() {
    retired_ = true;
    Status first =
        env_.first_ != nullptr ? env_.first_->SyncLogs() : Status::Ok();
    leveldb::Status synced =
        first.ok() ? base_->Sync() : leveldb::Status::IOError(first.message());
    if (!synced.ok()) {
      env_.RecordFailure(Status::Internal("syncing a closed write-ahead log: " +
                                          synced.ToString()));
    }
    env_.Forget(handle_);
    return synced;
  }

  LogSyncEnv& env_;
  std::unique_ptr<leveldb::WritableFile> base_;
  const SyncHandle* handle_;
  bool retired_ = false;
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

void LogSyncEnv::RecordFailure(const Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failure_.ok()) failure_ = status;
}

Status LogSyncEnv::SyncLogs() {
  if (first_ != nullptr) CUSTOS_RETURN_IF_ERROR(first_->SyncLogs());
  const uint64_t flushed = flushed_.load();
  if (flushed == synced_flushes_.load()) {
    std::lock_guard<std::mutex> lock(mu_);
    return failure_;  // Nothing new to make durable.
  }
  std::vector<std::shared_ptr<SyncHandle>> logs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Checked with the list taken: a log whose sync failed at its close is
    // no longer listed, and its failure must not be missed.
    if (!failure_.ok()) return failure_;
    for (const auto& [key, handle] : open_logs_) logs.push_back(handle);
  }
  for (const auto& handle : logs) {
    if (::fdatasync(handle->fd) != 0) {
      Status failed = Status::Internal(
          std::string("syncing the write-ahead log: ") + std::strerror(errno));
      RecordFailure(failed);
      return failed;
    }
  }
  // A log closed (and failed) while we synced the others.
  std::lock_guard<std::mutex> lock(mu_);
  if (failure_.ok()) MarkSynced(flushed);
  return failure_;
}

void LogSyncEnv::MarkSynced(uint64_t flushed) {
  uint64_t covered = synced_flushes_.load();
  while (covered < flushed &&
         !synced_flushes_.compare_exchange_weak(covered, flushed)) {
  }
}

Status GroupSync::WaitDurable(uint64_t seq) {
  std::unique_lock<std::mutex> lock(mu_);
  while (synced_ < seq) {
    if (!failure_.ok()) return failure_;
    if (syncing_) {
      cv_.wait(lock);
      continue;
    }
    // This waiter leads the next group: everything written so far is in
    // the logs (Wrote() is called after the write returned), so one sync
    // covers every waiter up to `target`.
    syncing_ = true;
    const uint64_t target = written_.load();
    Status synced = std::exchange(inject_, Status::Ok());
    lock.unlock();
    if (synced.ok()) synced = sync_();
    syncs_.fetch_add(1);
    lock.lock();
    syncing_ = false;
    if (synced.ok()) {
      synced_ = std::max(synced_, target);
    } else if (failure_.ok()) {
      failure_ = synced;
    }
    cv_.notify_all();
  }
  return Status::Ok();
}

Status GroupSync::failure() {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

void GroupSync::Fail(Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failure_.ok()) failure_ = std::move(status);
  cv_.notify_all();
}

void GroupSync::TEST_FailNextSync(Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  inject_ = std::move(status);
}

}  // namespace custos
