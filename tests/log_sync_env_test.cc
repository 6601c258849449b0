// Tests of LogSyncEnv (storage/log_sync_env.h) against a real LevelDB in a
// temporary directory, with a fault-injecting Env below it.

#include "storage/log_sync_env.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

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

}  // namespace
}  // namespace custos
