// Tests of FromLevelDb and OpenLevelDb (storage/leveldb_util.h) against a
// real LevelDB in a temporary directory.

#include "storage/leveldb_util.h"

#include <gtest/gtest.h>
#include <leveldb/env.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "storage/log_sync_env.h"

namespace custos {
namespace {

class LevelDbUtilTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A directory whose path holds "lock", as /srv/blocklist would.
    char tmpl[] = "/tmp/custos-blocklist-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
};

TEST_F(LevelDbUtilTest, ADatabaseOpenElsewhereIsUnavailable) {
  auto first =
      OpenLevelDb(dir_ + "/db", true, leveldb::Env::Default(), LevelDbTuning());
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  auto second =
      OpenLevelDb(dir_ + "/db", true, leveldb::Env::Default(), LevelDbTuning());
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), StatusCode::kUnavailable)
      << second.error().ToString();
}

// Review of the table-read switch: any IOError whose text held "lock" was
// taken for a held LOCK file, so a table that could not be read under a
// path holding "lock" read as Unavailable (try again) instead of Internal.
TEST_F(LevelDbUtilTest, AnUnreadableTableUnderAPathHoldingLockIsInternal) {
  LogSyncEnv env(leveldb::Env::Default(), TableReads::kPread);
  leveldb::RandomAccessFile* file = nullptr;
  const leveldb::Status s =
      env.NewRandomAccessFile(dir_ + "/000007.ldb", &file);
  ASSERT_TRUE(s.IsIOError()) << s.ToString();
  ASSERT_NE(s.ToString().find("lock"), std::string::npos) << s.ToString();
  EXPECT_EQ(FromLevelDb(s, "reading a table").code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace custos
