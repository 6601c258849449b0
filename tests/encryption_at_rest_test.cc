// Personal data is never stored in clear, and a ciphertext is bound to its
// record, subject and version.

#include <gtest/gtest.h>
#include <leveldb/db.h>

#include "storage/codec.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

class EncryptionAtRestTest : public EngineTest {
 protected:
  // Opens the records database directly (the engine must be closed).
  std::unique_ptr<leveldb::DB> RawRecords() { return OpenRaw("records"); }
  static std::string RecordKey(uint64_t id) { return keys::Record(id); }
  static codec::StoredRecord Load(leveldb::DB& db, uint64_t id) {
    std::string value;
    EXPECT_TRUE(db.Get(leveldb::ReadOptions(), RecordKey(id), &value).ok());
    return *codec::DecodeRecord(value);
  }
  static void Store(leveldb::DB& db, const codec::StoredRecord& r) {
    EXPECT_TRUE(
        db.Put(leveldb::WriteOptions(), RecordKey(r.id), codec::EncodeRecord(r))
            .ok());
  }
};

TEST_F(EncryptionAtRestTest, APartCopiedOntoAnotherRecordFailsToOpen) {
  uint64_t a = CreateRecord("anna@example.org");
  uint64_t b = CreateRecord("anna@example.org");  // Same subject, same key.
  ASSERT_TRUE(engine_->GetRecord(*owner_, b).has_value());
  Close();
  {
    auto db = RawRecords();
    codec::StoredRecord ra = Load(*db, a);
    codec::StoredRecord rb = Load(*db, b);
    rb.parts = ra.parts;
    Store(*db, rb);
  }
  Reopen();
  owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  auto view = engine_->GetRecord(*owner_, b);
  ASSERT_FALSE(view.has_value());
  EXPECT_EQ(view.error().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(engine_->GetRecord(*owner_, a).has_value());
}

TEST_F(EncryptionAtRestTest, APartMovedToAnotherSubjectFailsToOpen) {
  NewRecord r;
  r.kind = "request";
  r.personal = {{"anna@example.org", {{"name", "Anna"}}},
                {"ben@example.org", {{"name", "Ben"}}}};
  uint64_t id = *engine_->CreateRecord(*owner_, r);
  Close();
  {
    auto db = RawRecords();
    codec::StoredRecord stored = Load(*db, id);
    std::swap(stored.parts[0].sealed, stored.parts[1].sealed);
    Store(*db, stored);
  }
  Reopen();
  owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  auto view = engine_->GetRecord(*owner_, id);
  ASSERT_FALSE(view.has_value());
  EXPECT_EQ(view.error().code(), StatusCode::kDataLoss);
}

TEST_F(EncryptionAtRestTest, AnOlderVersionOfAPartCannotBeReplayed) {
  uint64_t id = CreateRecord();
  const std::string subject = engine_->GetRecord(*owner_, id)->subject_ids[0];
  Close();
  codec::StoredPart old_part;
  {
    auto db = RawRecords();
    old_part = Load(*db, id).parts[0];
  }
  Reopen();
  owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  ASSERT_TRUE(engine_->Rectify(*owner_, id, subject, {{"name", "New"}}));
  Close();
  {
    auto db = RawRecords();
    codec::StoredRecord stored = Load(*db, id);
    stored.parts[0].sealed = old_part.sealed;  // Keep the new version number.
    Store(*db, stored);
  }
  Reopen();
  owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  EXPECT_EQ(engine_->GetRecord(*owner_, id).error().code(),
            StatusCode::kDataLoss);
}

TEST_F(EncryptionAtRestTest, NoFileOfTheDataDirectoryHoldsPersonalDataInClear) {
  const std::string marker = "QZXMARKERQZX";
  NewRecord r;
  r.kind = "request";
  r.attributes = {{"country", "AT"}};
  r.personal = {{marker + "-identifier@example.org",
                 {{"name", marker + "-name"}, {"note", marker + "-note"}}},
                {"other-" + marker, {{"name", "x" + marker}}}};
  r.grants = {"authority-b"};
  uint64_t id = *engine_->CreateRecord(*owner_, r);
  const std::string subject = engine_->GetRecord(*owner_, id)->subject_ids[0];
  ASSERT_TRUE(engine_->Rectify(*owner_, id, subject,
                               {{"name", marker + "-rectified"}}));
  ASSERT_TRUE(
      engine_->FlagIncorrect(*grantee_, id, subject, marker + "-flag").ok());
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  ASSERT_TRUE(engine_
                  ->Contest(*officer_, id, subject, marker + "-statement",
                            {{"name", marker + "-corrected"}})
                  .ok());
  Close();

  const std::string files = ReadAllFiles(dir_);
  ASSERT_GT(files.size(), 0u);
  // The scan works: a non-personal attribute stored in the same record is
  // found in clear.
  EXPECT_NE(files.find("country"), std::string::npos);
  EXPECT_EQ(files.find(marker), std::string::npos);
  EXPECT_EQ(files.find("QZXMARKER"), std::string::npos);
}

// The byte scans above and the erasure scans elsewhere are only sound if
// what LevelDB stores is the bytes Custos wrote: with block compression a
// value may be stored as back-references and no scan would see it (the
// stored create events of issue 8's flaky control were such values, about
// one run in twenty). Custos turns compression off; every value it stored
// must be found verbatim in its files once it is in tables.
TEST_F(EncryptionAtRestTest, EveryStoredValueIsInTheFilesVerbatim) {
  for (int i = 0; i < 200; ++i)
    CreateRecord("person" + std::to_string(i) + "@example.org");
  Reopen();  // Recovery writes the log into a table, with Custos's options.
  Close();
  std::vector<std::string> values;
  for (const char* name : {"records", "keystore"}) {
    auto db = OpenRaw(name);
    ASSERT_NE(db, nullptr);
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next())
      values.push_back(it->value().ToString());
  }
  ASSERT_GT(values.size(), 600u);
  const std::string files = ReadAllFiles(dir_);
  int missing = 0;
  for (const std::string& value : values)
    if (files.find(value) == std::string::npos) ++missing;
  EXPECT_EQ(missing, 0);
}

}  // namespace
}  // namespace custos::testing
