// Tests of LogSyncEnv (storage/log_sync_env.h) against a real LevelDB in a
// temporary directory, with a fault-injecting Env below it.

#include "storage/log_sync_env.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "tests/fault_env.h"

namespace custos {
namespace {

using ::testing::HasSubstr;

// Below LogSyncEnv (tests/fault_env.h): can make every Sync of a log file
// fail, as a failing disk would (the test's database is not a keystore:
// FaultEnv::records), and counts the log files opened.
using custos::testing::FaultEnv;

class LogSyncEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custos-logsync-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    leveldb::Options options;
    options.create_if_missing = true;
    options.env = &log_env_;
    options.write_buffer_size = 64 * 1024;  // Switch logs often.
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(options, dir_, &raw).ok());
    db_.reset(raw);
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Writes until LevelDB has switched to a new log file (the old one is
  // closed). Returns whether it did.
  bool WriteUntilLogSwitch() {
    const int before = fault_env_.logs_opened;
    const std::string value(4096, 'v');
    for (int i = 0; i < 1000 && fault_env_.logs_opened == before; ++i) {
      leveldb::Status s =
          db_->Put(leveldb::WriteOptions(), 'k' + std::to_string(i), value);
      if (!s.ok()) break;  // LevelDB refuses writes after the failure.
    }
    return fault_env_.logs_opened > before;
  }

  std::string dir_;
  FaultEnv fault_env_;
  LogSyncEnv log_env_{&fault_env_};
  std::unique_ptr<leveldb::DB> db_;
};

TEST_F(LogSyncEnvTest, SyncLogsSucceedsAcrossLogSwitches) {
  ASSERT_TRUE(WriteUntilLogSwitch());
  Status synced = log_env_.SyncLogs();
  EXPECT_TRUE(synced.ok()) << synced.ToString();
}

// Regression test: a log whose sync failed when LevelDB closed it used to
// leave the list of open logs silently, and a later SyncLogs, syncing only
// the new log, reported success for writes that sat in the failed one.
TEST_F(LogSyncEnvTest, AFailedSyncOfAClosedLogIsReportedByEveryLaterSync) {
  ASSERT_TRUE(db_->Put(leveldb::WriteOptions(), "first", "value").ok());
  fault_env_.records.fail_syncs = true;
  ASSERT_TRUE(WriteUntilLogSwitch());
  fault_env_.records.fail_syncs = false;  // The new log itself syncs fine.
  Status synced = log_env_.SyncLogs();
  ASSERT_FALSE(synced.ok());
  EXPECT_EQ(synced.code(), StatusCode::kInternal);
  EXPECT_THAT(synced.message(), HasSubstr("closed write-ahead log"));
  // Sticky.
  EXPECT_EQ(log_env_.SyncLogs().code(), StatusCode::kInternal);
}

// The keystore's logs are synced before the records': a failure there is
// the records' failure too.
TEST_F(LogSyncEnvTest, AFailureOfTheEnvSyncedFirstFailsTheSync) {
  LogSyncEnv second(leveldb::Env::Default());
  second.SyncBefore(&log_env_);
  fault_env_.records.fail_syncs = true;
  ASSERT_TRUE(WriteUntilLogSwitch());
  EXPECT_EQ(second.SyncLogs().code(), StatusCode::kInternal);
}

// Whether another process can take a write lock on `path` now: a child
// that tries fcntl(F_SETLK), as LevelDB's own lock does. A child that
// cannot even open the file is a test failure, not a "no".
bool AnotherProcessCanLock(const std::string& path) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(path.c_str(), O_RDWR);
    if (fd < 0) _exit(2);
    struct flock f {};
    f.l_type = F_WRLCK;
    f.l_whence = SEEK_SET;
    _exit(::fcntl(fd, F_SETLK, &f) == 0 ? 1 : 0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) &&
              (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 1))
      << "the child could not try the lock on " << path << ": " << status;
  return WIFEXITED(status) && WEXITSTATUS(status) == 1;
}

// The database's LOCK file stays locked when some other descriptor of it in
// this process is closed: with LevelDB's process-wide record lock, closing
// one (an erasure scan reading every file, a master-key rotation pointed
// at it: helper-112, helper-114) let another process open the live store.
TEST_F(LogSyncEnvTest, TheDatabaseLockSurvivesAnotherDescriptorOfItClosing) {
  const std::string lock = dir_ + "/LOCK";
  EXPECT_FALSE(AnotherProcessCanLock(lock));
  {
    const int fd = ::open(lock.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  EXPECT_FALSE(AnotherProcessCanLock(lock));
  // Nor can this process open the database a second time.
  leveldb::Options options;
  options.env = &log_env_;
  leveldb::DB* second = nullptr;
  const leveldb::Status again = leveldb::DB::Open(options, dir_, &second);
  EXPECT_TRUE(again.ToString().starts_with("IO error: lock "))
      << again.ToString();
  delete second;
  db_.reset();
  EXPECT_TRUE(AnotherProcessCanLock(lock));  // Released with the database.
}

// Tables read with pread(2) (TableReads::kPread), each keeping its
// descriptor while a permit is left (storage/log_sync_env.h), or through
// LevelDB's map; these tests set the process-wide permits and put them
// back.
class LogSyncEnvTableTest : public LogSyncEnvTest {
 protected:
  void SetUp() override {
    permits_before_ = LogSyncEnv::TEST_TableDescriptorPermits();
    LogSyncEnvTest::SetUp();
  }
  void TearDown() override {
    LogSyncEnvTest::TearDown();
    LogSyncEnv::TEST_SetTableDescriptorPermits(permits_before_);
  }

  // Writes `count` values of 4 KiB, compacts them into tables, and reopens
  // the database over `env` (by default table_env_), so that its tables
  // are opened again by the next reads.
  void WriteTablesAndReopen(int count, leveldb::Env* env = nullptr) {
    for (int i = 0; i < count; ++i) {
      ASSERT_TRUE(db_->Put(leveldb::WriteOptions(), Key(i), Value(i)).ok());
    }
    db_->CompactRange(nullptr, nullptr);
    db_.reset();
    leveldb::Options options;
    options.env = env != nullptr ? env : &table_env_;
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(options, dir_, &raw).ok());
    db_.reset(raw);
  }

  static std::string Key(int i) { return 't' + std::to_string(i); }
  // 4 KiB that do not compress (LevelDB compresses tables by default), so
  // that many values make several tables.
  static std::string Value(int i) {
    std::string value(4096, '\0');
    uint32_t x = 2'654'435'761u * static_cast<uint32_t>(i + 1);
    for (char& c : value) {
      x = x * 1'664'525u + 1'013'904'223u;
      c = static_cast<char>(x >> 24);
    }
    return value;
  }

  // Over Env::Default(), as the engine's, set to read tables with pread
  // (over the fixture's FaultEnv, LogSyncEnv leaves them to it).
  LogSyncEnv table_env_{leveldb::Env::Default(), TableReads::kPread};
  int64_t permits_before_ = 0;
};

TEST_F(LogSyncEnvTableTest, ReadsEveryValueWithAKeptDescriptor) {
  LogSyncEnv::TEST_SetTableDescriptorPermits(1'000);
  WriteTablesAndReopen(300);
  for (int i = 0; i < 300; ++i) {
    std::string got;
    ASSERT_TRUE(db_->Get(leveldb::ReadOptions(), Key(i), &got).ok()) << i;
    EXPECT_EQ(got, Value(i)) << i;
  }
  // The tables read hold permits until the database closes them.
  EXPECT_LT(LogSyncEnv::TEST_TableDescriptorPermits(), 1'000);
  db_.reset();
  EXPECT_EQ(LogSyncEnv::TEST_TableDescriptorPermits(), 1'000);
}

TEST_F(LogSyncEnvTableTest, MappedTablesTakeNoPermit) {
  LogSyncEnv::TEST_SetTableDescriptorPermits(1'000);
  LogSyncEnv mapped(leveldb::Env::Default(), TableReads::kMapped);
  WriteTablesAndReopen(300, &mapped);
  for (int i = 0; i < 300; ++i) {
    std::string got;
    ASSERT_TRUE(db_->Get(leveldb::ReadOptions(), Key(i), &got).ok()) << i;
    EXPECT_EQ(got, Value(i)) << i;
  }
  // LevelDB's own files (mapped), not ours.
  EXPECT_EQ(LogSyncEnv::TEST_TableDescriptorPermits(), 1'000);
  db_.reset();
}

TEST_F(LogSyncEnvTableTest, ReadsEveryValueOpeningTheFileForEachRead) {
  LogSyncEnv::TEST_SetTableDescriptorPermits(0);
  WriteTablesAndReopen(300);
  for (int i = 0; i < 300; ++i) {
    std::string got;
    ASSERT_TRUE(db_->Get(leveldb::ReadOptions(), Key(i), &got).ok()) << i;
    EXPECT_EQ(got, Value(i)) << i;
  }
  EXPECT_EQ(LogSyncEnv::TEST_TableDescriptorPermits(), 0);
}

TEST_F(LogSyncEnvTableTest, AMissingTableIsAnIOErrorNamingIt) {
  for (int64_t permits : {int64_t{5}, int64_t{0}}) {
    LogSyncEnv::TEST_SetTableDescriptorPermits(permits);
    leveldb::RandomAccessFile* file = nullptr;
    leveldb::Status s =
        table_env_.NewRandomAccessFile(dir_ + "/000999.ldb", &file);
    EXPECT_TRUE(s.IsIOError()) << s.ToString();
    EXPECT_THAT(s.ToString(), HasSubstr("000999.ldb"));
    EXPECT_EQ(file, nullptr);
    EXPECT_EQ(LogSyncEnv::TEST_TableDescriptorPermits(), permits);
  }
}

TEST_F(LogSyncEnvTableTest,
       ATableRemovedUnderItsReaderFailsOnlyWithoutADescriptor) {
  const std::string path = dir_ + "/standalone.ldb";
  std::FILE* out = std::fopen(path.c_str(), "w");
  ASSERT_NE(out, nullptr);
  std::fputs("0123456789", out);
  std::fclose(out);
  LogSyncEnv::TEST_SetTableDescriptorPermits(1);
  leveldb::RandomAccessFile* kept = nullptr;
  ASSERT_TRUE(table_env_.NewRandomAccessFile(path, &kept).ok());
  std::unique_ptr<leveldb::RandomAccessFile> kept_file(kept);
  leveldb::RandomAccessFile* reopened = nullptr;
  ASSERT_TRUE(table_env_.NewRandomAccessFile(path, &reopened).ok());
  std::unique_ptr<leveldb::RandomAccessFile> reopened_file(reopened);
  ASSERT_EQ(LogSyncEnv::TEST_TableDescriptorPermits(), 0);
  std::filesystem::remove(path);
  char scratch[16];
  leveldb::Slice got;
  ASSERT_TRUE(kept_file->Read(3, 4, &got, scratch).ok());
  EXPECT_EQ(got.ToString(), "3456");
  leveldb::Status s = reopened_file->Read(3, 4, &got, scratch);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_THAT(s.ToString(), HasSubstr("standalone.ldb"));
  kept_file.reset();
  EXPECT_EQ(LogSyncEnv::TEST_TableDescriptorPermits(), 1);
}

TEST_F(LogSyncEnvTableTest, ConcurrentReadersShareTablesWithinTheBudget) {
  // Fewer permits than tables: some keep a descriptor, the others open
  // their file for each read, while four threads read at once.
  LogSyncEnv::TEST_SetTableDescriptorPermits(2);
  WriteTablesAndReopen(2'000);
  std::atomic<int> wrong{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      for (int i = t; i < 2'000; i += 4) {
        std::string got;
        if (!db_->Get(leveldb::ReadOptions(), Key(i), &got).ok() ||
            got != Value(i)) {
          wrong.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(wrong.load(), 0);
  // Two readers may open one table at once (LevelDB keeps one of the two),
  // so how many permits the open tables hold at the end varies; never
  // more than there were (and all back once the database is closed).
  EXPECT_LE(LogSyncEnv::TEST_TableDescriptorPermits(), 2);
  db_.reset();
  EXPECT_EQ(LogSyncEnv::TEST_TableDescriptorPermits(), 2);
}

// An Env below LogSyncEnv other than Env::Default() opens the tables
// itself (a benchmark's counting Env, a test's fault-injecting one).
class TableOpenCounter final : public leveldb::EnvWrapper {
 public:
  TableOpenCounter() : EnvWrapper(leveldb::Env::Default()) {}
  leveldb::Status NewRandomAccessFile(
      const std::string& fname, leveldb::RandomAccessFile** result) override {
    opened.fetch_add(1);
    return target()->NewRandomAccessFile(fname, result);
  }
  std::atomic<int> opened{0};
};

TEST_F(LogSyncEnvTableTest, AnInjectedEnvOpensTheTablesItself) {
  LogSyncEnv::TEST_SetTableDescriptorPermits(1'000);
  WriteTablesAndReopen(300);
  db_.reset();
  TableOpenCounter counter;
  LogSyncEnv over_counter(&counter, TableReads::kPread);
  leveldb::Options options;
  options.env = &over_counter;
  leveldb::DB* raw = nullptr;
  ASSERT_TRUE(leveldb::DB::Open(options, dir_, &raw).ok());
  db_.reset(raw);
  std::string got;
  ASSERT_TRUE(db_->Get(leveldb::ReadOptions(), Key(7), &got).ok());
  EXPECT_EQ(got, Value(7));
  EXPECT_GT(counter.opened.load(), 0);
  EXPECT_EQ(LogSyncEnv::TEST_TableDescriptorPermits(), 1'000);
  db_.reset();
}

// GroupSync over a sync function the test holds: each sync blocks until
// the test has released it, so that writers arrive while it runs.
class GroupSyncTest : public ::testing::Test {
 protected:
  Status Sync() {
    std::unique_lock lock(mu_);
    const int n = ++started_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_ >= n; });
    return Status::Ok();
  }
  void WaitForSyncStarted(int n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return started_ >= n; });
  }
  // Lets the syncs started so far, and any later one, return.
  void ReleaseAll() {
    std::lock_guard lock(mu_);
    released_ = 1'000'000;
    cv_.notify_all();
  }
  void ReleaseOne() {
    std::lock_guard lock(mu_);
    ++released_;
    cv_.notify_all();
  }
  // Polls until `n` waiters sleep in `group`.
  static bool WaitForSleepers(GroupSync& group, size_t n) {
    for (int i = 0; i < 10'000; ++i) {
      if (group.TEST_Sleeping() == n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  int started_ = 0;
  int released_ = 0;
};

// A sync covers what was written when it started; writers that came later
// wait through it. When it ends, one of them runs the next sync for all
// and the others sleep until it has: none is woken to find its write still
// not durable and a sync running. (With a wake-up of every waiter after
// each sync, the seven waiters that did not lead woke once for nothing.)
TEST_F(GroupSyncTest, WritersArrivingDuringASyncShareTheNextOneAndWakeOnce) {
  constexpr int kLate = 8;
  GroupSync group([this] { return Sync(); });
  std::vector<Status> results(kLate + 1);
  std::vector<std::thread> threads;
  threads.emplace_back([&] { results[0] = group.WaitDurable(group.Wrote()); });
  WaitForSyncStarted(1);  // Running, covering the first write only.
  for (int i = 1; i <= kLate; ++i) {
    const uint64_t seq = group.Wrote();
    threads.emplace_back([&, i, seq] { results[i] = group.WaitDurable(seq); });
  }
  ASSERT_TRUE(WaitForSleepers(group, kLate));
  ReleaseOne();
  // One of the eight runs the second sync; the other seven are asleep
  // again (or still) while it runs.
  WaitForSyncStarted(2);
  ASSERT_TRUE(WaitForSleepers(group, kLate - 1));
  EXPECT_EQ(group.TEST_WastedWakeups(), 0u);
  ReleaseAll();
  for (std::thread& t : threads) t.join();
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(group.syncs(), 2u);  // The first, and one for the eight.
  EXPECT_EQ(group.TEST_WastedWakeups(), 0u);
}

// A failed sync fails the waiters it covered and those waiting for the
// next one, and every later call; nothing is left asleep.
TEST_F(GroupSyncTest, AFailedSyncWakesAndFailsEveryWaiter) {
  constexpr int kLate = 4;
  GroupSync group([this] { return Sync(); });
  group.TEST_FailNextSync(Status::Internal("the disk is gone"));
  // The first sync fails without calling the test's function.
  std::vector<Status> results(kLate);
  std::vector<std::thread> threads;
  for (int i = 0; i < kLate; ++i) {
    const uint64_t seq = group.Wrote();
    threads.emplace_back([&, i, seq] { results[i] = group.WaitDurable(seq); });
  }
  for (std::thread& t : threads) t.join();
  for (const Status& s : results) {
    EXPECT_EQ(s.code(), StatusCode::kInternal);
    EXPECT_THAT(s.message(), HasSubstr("the disk is gone"));
  }
  EXPECT_EQ(group.WaitDurable(group.Wrote()).code(), StatusCode::kInternal);
  EXPECT_EQ(group.TEST_Sleeping(), 0u);
}

// Fail wakes every waiter, including those waiting for a running sync.
TEST_F(GroupSyncTest, FailWakesTheWaitersOfARunningSync) {
  constexpr int kLate = 4;
  GroupSync group([this] { return Sync(); });
  Status leader;
  std::thread first([&] { leader = group.WaitDurable(group.Wrote()); });
  WaitForSyncStarted(1);
  std::vector<Status> results(kLate);
  std::vector<std::thread> threads;
  for (int i = 0; i < kLate; ++i) {
    const uint64_t seq = group.Wrote();
    threads.emplace_back([&, i, seq] { results[i] = group.WaitDurable(seq); });
  }
  ASSERT_TRUE(WaitForSleepers(group, kLate));
  group.Fail(Status::DataLoss("a write failed"));
  for (std::thread& t : threads) t.join();
  for (const Status& s : results) EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  ReleaseAll();
  first.join();
  // Its own write was synced before the failure was seen.
  EXPECT_TRUE(leader.ok()) << leader.ToString();
}

// A sync function that throws (out of memory) fails that sync like an I/O
// error: its waiter gets the failure, every later one too, and none is
// left waiting for a sync marked as running.
TEST(GroupSyncFailureTest, ASyncThatThrowsFailsLikeAnIoError) {
  GroupSync group([]() -> Status { throw std::bad_alloc(); });
  const Status first = group.WaitDurable(group.Wrote());
  EXPECT_EQ(first.code(), StatusCode::kInternal);
  EXPECT_EQ(first.message(), "syncing the log failed");
  EXPECT_EQ(group.WaitDurable(group.Wrote()).code(), StatusCode::kInternal);
  EXPECT_EQ(group.failure().code(), StatusCode::kInternal);
  EXPECT_EQ(group.TEST_Sleeping(), 0u);
}

}  // namespace
}  // namespace custos
