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

// A hostile review: LevelDB's texts name files by their full paths, and
// the engine's errors reach custosd's clients ("Internal: reading the
// store: IO error: /var/lib/custos/.../000123.ldb: ..."). Only the file's
// own name is kept.
TEST_F(LevelDbUtilTest, PathsInLevelDbsTextKeepOnlyTheFileName) {
  const Status io = FromLevelDb(
      leveldb::Status::IOError("/var/lib/custos/custos-data/records/000123.ldb",
                               "Input/output error"),
      "reading the store");
  EXPECT_EQ(io.code(), StatusCode::kInternal);
  EXPECT_EQ(io.message(),
            "reading the store: IO error: 000123.ldb: Input/output error");
  const Status corrupt =
      FromLevelDb(leveldb::Status::Corruption("block checksum mismatch",
                                              "/srv/x/records/000005.ldb"),
                  "reading a record");
  EXPECT_EQ(corrupt.code(), StatusCode::kDataLoss);
  EXPECT_EQ(corrupt.message(),
            "reading a record: Corruption: block checksum mismatch: "
            "000005.ldb");
  // Relative paths too (custosd's default data directory is
  // ./custos-data).
  EXPECT_EQ(WithoutDirectories(
                "IO error: ./custos-data/records/000123.ldb: No space left"),
            "IO error: 000123.ldb: No space left");
  EXPECT_EQ(WithoutDirectories("../data/LOCK: Input/output error"),
            "LOCK: Input/output error");
  // A real one, from the engine's own Env.
  LogSyncEnv env(leveldb::Env::Default(), TableReads::kPread);
  leveldb::RandomAccessFile* file = nullptr;
  const Status missing = FromLevelDb(
      env.NewRandomAccessFile(dir_ + "/000009.ldb", &file), "opening a table");
  EXPECT_EQ(missing.message().find(dir_), std::string::npos)
      << missing.message();
  EXPECT_NE(missing.message().find("000009.ldb"), std::string::npos)
      << missing.message();
  // A held lock is still told apart by LevelDB's own text (its path cut
  // too; the engine's "opening <dir>" before it is for the operator who
  // starts the server).
  auto first =
      OpenLevelDb(dir_ + "/db", true, leveldb::Env::Default(), LevelDbTuning());
  ASSERT_TRUE(first.has_value());
  auto second =
      OpenLevelDb(dir_ + "/db", true, leveldb::Env::Default(), LevelDbTuning());
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(second.error().message().ends_with(
      ": IO error: lock LOCK: already held by process"))
      << second.error().message();
}

}  // namespace
}  // namespace custos
