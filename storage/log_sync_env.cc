#include "storage/log_sync_env.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "storage/leveldb_util.h"

namespace custos {
namespace {

bool IsLogFile(const std::string& fname) {
  return fname.size() > 4 && fname.ends_with(".log");
}

// Tables that may keep their file descriptor open, process-wide: a fifth of
// the soft limit on open files when first asked (as LevelDB 1.23 budgets
// its read-only descriptors), at least 1; 1,000 when the limit cannot be
// read or is unlimited (LevelDB: 50 and no limit). Read once: a limit
// raised later is not seen (custosd raises its own before opening).
std::atomic<int64_t>& TableDescriptorPermits() {
  static std::atomic<int64_t> permits = [] {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 ||
        limit.rlim_cur == RLIM_INFINITY) {
      return int64_t{1'000};
    }
    return std::max<int64_t>(1, static_cast<int64_t>(limit.rlim_cur / 5));
  }();
  return permits;
}

// Takes a permit if one is left (never below zero, so a permit returned
// meanwhile is never missed by a table that asks).
bool TakeTablePermit() {
  std::atomic<int64_t>& permits = TableDescriptorPermits();
  int64_t left = permits.load();
  while (left > 0) {
    if (permits.compare_exchange_weak(left, left - 1)) return true;
  }
  return false;
}

class TableFile final : public leveldb::RandomAccessFile {
 public:
  // `fd`: the table's descriptor, holding a permit; -1 to open the file
  // for each read.
  TableFile(std::string fname, int fd) : fname_(std::move(fname)), fd_(fd) {}
  ~TableFile() override {
    if (fd_ >= 0) {
      ::close(fd_);
      TableDescriptorPermits().fetch_add(1);
    }
  }

  leveldb::Status Read(uint64_t offset, size_t n, leveldb::Slice* result,
                       char* scratch) const override {
    *result = leveldb::Slice(scratch, 0);
    const int fd =
        fd_ >= 0 ? fd_ : ::open(fname_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return leveldb::Status::IOError(fname_, std::strerror(errno));
    // Until n bytes or the end of the file (LevelDB reports a short block).
    size_t done = 0;
    int error = 0;
    while (done < n) {
      const ssize_t got = ::pread(fd, scratch + done, n - done,
                                  static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) error = errno;
      if (got <= 0) break;
      done += static_cast<size_t>(got);
    }
    if (fd_ < 0) ::close(fd);
    if (error != 0)
      return leveldb::Status::IOError(fname_, std::strerror(error));
    *result = leveldb::Slice(scratch, done);
    return leveldb::Status::OK();
  }

 private:
  const std::string fname_;
  const int fd_;
};

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
      env_.RecordFailure(
          Status::Internal("syncing a closed write-ahead log: " +
                           WithoutDirectories(synced.ToString())));
    }
    env_.Forget(handle_);
    return synced;
  }

  LogSyncEnv& env_;
  std::unique_ptr<leveldb::WritableFile> base_;
  const SyncHandle* handle_;
  bool retired_ = false;
};

leveldb::Status NewTableFile(const std::string& fname,
                             leveldb::RandomAccessFile** result) {
  *result = nullptr;
  const bool kept = TakeTablePermit();
  const int fd = ::open(fname.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (kept) TableDescriptorPermits().fetch_add(1);
    return leveldb::Status::IOError(fname, std::strerror(error));
  }
  if (!kept) ::close(fd);  // Opened once only to report a missing file now.
  *result = new TableFile(fname, kept ? fd : -1);
  return leveldb::Status::OK();
}

leveldb::Status LogSyncEnv::NewRandomAccessFile(
    const std::string& fname, leveldb::RandomAccessFile** result) {
  if (table_reads_ == TableReads::kMapped ||
      target() != leveldb::Env::Default()) {
    return target()->NewRandomAccessFile(fname, result);
  }
  return NewTableFile(fname, result);
}

int64_t LogSyncEnv::TEST_TableDescriptorPermits() {
  return TableDescriptorPermits().load();
}

void LogSyncEnv::TEST_SetTableDescriptorPermits(int64_t permits) {
  TableDescriptorPermits().store(permits);
}

namespace {

class OfdFileLock final : public leveldb::FileLock {
 public:
  explicit OfdFileLock(int fd) : fd_(fd) {}
  ~OfdFileLock() override { ::close(fd_); }
  int fd() const { return fd_; }

 private:
  const int fd_;
};

// A whole-file write lock (or unlock, F_UNLCK) on `fd`'s open file
// description.
// As LevelDB's PosixError: a missing file is NotFound, anything else an
// IOError (its callers tell a missing store from a locked one so).
leveldb::Status PosixError(const std::string& context, int error) {
  if (error == ENOENT) {
    return leveldb::Status::NotFound(context, std::strerror(error));
  }
  return leveldb::Status::IOError(context, std::strerror(error));
}

int OfdLock(int fd, short type) {
  struct flock f {};
  f.l_type = type;
  f.l_whence = SEEK_SET;
  f.l_start = 0;
  f.l_len = 0;
  return ::fcntl(fd, F_OFD_SETLK, &f);
}

}  // namespace

leveldb::Status LogSyncEnv::LockFile(const std::string& fname,
                                     leveldb::FileLock** lock) {
  *lock = nullptr;
  const int fd = ::open(fname.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return PosixError(fname, errno);
  if (OfdLock(fd, F_WRLCK) == -1) {
    const int error = errno;
    ::close(fd);
    return PosixError("lock " + fname, error);
  }
  *lock = new OfdFileLock(fd);
  return leveldb::Status::OK();
}

leveldb::Status LogSyncEnv::UnlockFile(leveldb::FileLock* lock) {
  auto* held = static_cast<OfdFileLock*>(lock);
  const int unlocked = OfdLock(held->fd(), F_UNLCK);
  const int error = errno;
  delete held;  // Closing the descriptor releases it in any case.
  if (unlocked == -1) return PosixError("unlock", error);
  return leveldb::Status::OK();
}

LogSyncEnv::LogSyncEnv(leveldb::Env* base, TableReads table_reads)
    : EnvWrapper(base), table_reads_(table_reads) {}
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
  if (synced_ >= seq) return Status::Ok();
  Waiter me(seq);
  waiters_.push_back(&me);
  struct Leave {
    std::vector<Waiter*>& waiters;
    Waiter* me;
    ~Leave() { std::erase(waiters, me); }  // mu_ is held at every return.
  } leave{waiters_, &me};
  while (synced_ < seq) {
    if (!failure_.ok()) return failure_;
    if (syncing_) {
      me.sleeping = true;
      sleeps_.fetch_add(1, std::memory_order_relaxed);
      me.cv.wait(lock);
      me.sleeping = false;
      if (synced_ < seq && failure_.ok() && syncing_) {
        wasted_wakeups_.fetch_add(1, std::memory_order_relaxed);
      }
      continue;
    }
    // This waiter leads the next group: everything written so far is in
    // the logs (Wrote() is called after the write returned), so one sync
    // covers every waiter up to `target`.
    syncing_ = true;
    const uint64_t target = written_.load();
    Status synced = std::exchange(inject_, Status::Ok());
    lock.unlock();
    if (synced.ok()) {
      // An exception (out of memory in the sync function) must not leave
      // this waiter's entry behind with the lock not held, nor a sync
      // marked as running forever: it fails the sync like an I/O error.
      try {
        synced = sync_();
      } catch (const std::exception&) {
        synced = Status::Internal("syncing the log failed");
      }
    }
    syncs_.fetch_add(1);
    lock.lock();
    syncing_ = false;
    if (synced.ok()) {
      synced_ = std::max(synced_, target);
    } else if (failure_.ok()) {
      failure_ = synced;
    }
    WakeAfterSync(&me);
  }
  return Status::Ok();
}

void GroupSync::WakeAfterSync(const Waiter* self) {
  Waiter* next_leader = nullptr;
  for (Waiter* w : waiters_) {
    if (w == self) continue;
    if (w->seq <= synced_ || !failure_.ok()) {
      w->cv.notify_one();
    } else if (next_leader == nullptr) {
      next_leader = w;
    }
  }
  if (next_leader != nullptr) next_leader->cv.notify_one();
}

Status GroupSync::failure() {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

void GroupSync::Fail(Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failure_.ok()) failure_ = std::move(status);
  WakeAfterSync(nullptr);
}

size_t GroupSync::TEST_Sleeping() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::ranges::count_if(waiters_,
                               [](const Waiter* w) { return w->sleeping; });
}

void GroupSync::TEST_FailNextSync(Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  inject_ = std::move(status);
}

}  // namespace custos
