// Regression tests of the hostile review of issue 10 (backups and
// restores): a refused or interrupted restore, a shredded subject's
// retiring key, what an aged-out backup still reveals, a shred applied to
// the wrong subject, and ledger entries naming reused record ids.

#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/env.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "crypto/keyed_hash.h"
#include "storage/backup.h"
#include "storage/keys.h"
#include "storage/keystore.h"
#include "storage/leveldb_util.h"
#include "storage/record_store.h"
#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::unique_ptr<leveldb::DB> OpenDb(const std::string& path) {
  leveldb::DB* raw = nullptr;
  if (!leveldb::DB::Open(RawOptions(), path, &raw).ok()) return nullptr;
  return std::unique_ptr<leveldb::DB>(raw);
}

class BackupReviewTest : public EngineTest {
 protected:
  void TearDown() override {
    restored_.reset();
    EngineTest::TearDown();
    fs::remove_all(dir_ + "-backup");
    fs::remove_all(dir_ + "-backup2");
    fs::remove_all(dir_ + "-restored");
    fs::remove_all(dir_ + "-restored2");
    fs::remove_all(dir_ + "-kit");
    fs::remove_all(dir_ + "-kit2");
  }
  std::string BackupDir() const { return dir_ + "-backup"; }
  std::string KitPath() const { return dir_ + "-kit"; }
  Options RestoredOptions(const std::string& suffix = "-restored") {
    Options options = MakeOptions();
    options.data_dir = dir_ + suffix;
    return options;
  }
  Status ExportKit() {
    fs::remove(KitPath());
    return engine_->ExportRestoreKit(*admin_, KitPath());
  }
  Status Restore(const std::string& admin_id = "admin") {
    return Engine::Restore(BackupDir(), RestoredOptions(), MasterKey(),
                           KitPath(), admin_id);
  }
  void OpenRestored(const std::string& suffix = "-restored") {
    auto engine = Engine::Open(RestoredOptions(suffix), MasterKey());
    ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
    restored_ = std::move(*engine);
  }
  std::unique_ptr<Engine> restored_;
};

// F1: a restore refused for its admin writes nothing: no store that opens
// with records erased after the backup back, and the operator can restore
// again at once.
TEST_F(BackupReviewTest, ARestoreRefusedForItsAdminWritesNothing) {
  const uint64_t erased = CreateRecord("ben@x.org");
  ASSERT_TRUE(engine_->Backup(*admin_, BackupDir()).has_value());
  clock_.Set(TestEpoch() + 1min);
  ASSERT_TRUE(engine_->EraseRecord(*owner_, erased).ok());
  ASSERT_TRUE(ExportKit().ok());

  EXPECT_EQ(Restore("authority-a").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(Restore("nobody").code(), StatusCode::kUnauthenticated);
  EXPECT_FALSE(fs::exists(RestoredOptions().data_dir + "/records"));
  EXPECT_FALSE(fs::exists(RestoredOptions().data_dir + "/keystore"));
  Options options = RestoredOptions();
  options.create_if_missing = false;
  EXPECT_FALSE(Engine::Open(options, MasterKey()).has_value());

  Status again = Restore("admin");
  ASSERT_TRUE(again.ok()) << again.ToString();
  OpenRestored();
  // Only an admin sees an ERASED record (its attributes).
  auto admin = restored_->ActorFor("admin");
  auto view = restored_->GetRecord(*admin, erased);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kErased);
  EXPECT_TRUE(view->parts.empty());
}

// F1: a restore interrupted after its data is written (here: only the
// import ran, as if the process died before the erasures were applied) is
// finished by the next Open, before it returns.
TEST_F(BackupReviewTest, AnInterruptedRestoreIsFinishedByOpen) {
  const uint64_t erased = CreateRecord("ben@x.org");
  ASSERT_TRUE(engine_->Backup(*admin_, BackupDir()).has_value());
  clock_.Set(TestEpoch() + 1min);
  ASSERT_TRUE(engine_->EraseRecord(*owner_, erased).ok());
  ASSERT_TRUE(ExportKit().ok());

  auto imported = backup::Import(BackupDir(), RestoredOptions(), MasterKey(),
                                 KitPath(), "admin", clock_.Now());
  ASSERT_TRUE(imported.has_value()) << imported.error().ToString();
  OpenRestored();
  // Only an admin sees an ERASED record (its attributes).
  auto admin = restored_->ActorFor("admin");
  auto view = restored_->GetRecord(*admin, erased);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kErased);
  EXPECT_TRUE(view->parts.empty());
}

// LevelDB's environment calling `hook` once, when the first file of the
// restored keystore is made: the moment between the start of the import
// and its records, where an operator may start custosd on the directory.
class KeystoreImportHook final : public leveldb::EnvWrapper {
 public:
  explicit KeystoreImportHook(std::function<void()> hook)
      : EnvWrapper(leveldb::Env::Default()), hook_(std::move(hook)) {}
  leveldb::Status NewWritableFile(const std::string& fname,
                                  leveldb::WritableFile** result) override {
    if (hook_ && fname.find("/keystore/") != std::string::npos) {
      auto hook = std::move(hook_);
      hook_ = nullptr;
      hook();
    }
    return target()->NewWritableFile(fname, result);
  }

 private:
  std::function<void()> hook_;
};

// A store opened on the directory during the import (its records database
// made while the keystore was written) made the import fail, and the
// import's undo then removed both databases under the process holding
// them. The import now holds both from its start: the other open is
// refused and the restore completes.
TEST_F(BackupReviewTest, AnOpenDuringTheImportIsRefusedAndTheRestoreCompletes) {
  const uint64_t kept = CreateRecord("ben@x.org");
  ASSERT_TRUE(engine_->Backup(*admin_, BackupDir()).has_value());
  ASSERT_TRUE(ExportKit().ok());
  const std::string records = RestoredOptions().data_dir + "/records";
  std::unique_ptr<leveldb::DB> other;
  leveldb::Status other_open;
  KeystoreImportHook env([&] {
    leveldb::Options create = RawOptions();
    create.create_if_missing = true;
    leveldb::DB* raw = nullptr;
    other_open = leveldb::DB::Open(create, records, &raw);
    other.reset(raw);
  });
  Options options = RestoredOptions();
  options.env = &env;
  Status restored =
      Engine::Restore(BackupDir(), options, MasterKey(), KitPath(), "admin");
  EXPECT_TRUE(other_open.IsIOError()) << other_open.ToString();
  EXPECT_NE(other_open.ToString().find("lock"), std::string::npos)
      << other_open.ToString();
  other.reset();
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  OpenRestored();
  auto admin = restored_->ActorFor("admin");
  auto view = restored_->GetRecord(*admin, kept);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kActive);
}

// F1: an import a crash cut short (its last, synced write missing: the
// intent still says incomplete) leaves a directory Open refuses.
TEST_F(BackupReviewTest, AnImportCutShortDoesNotOpen) {
  CreateRecord("ben@x.org");
  ASSERT_TRUE(engine_->Backup(*admin_, BackupDir()).has_value());
  ASSERT_TRUE(ExportKit().ok());
  auto imported = backup::Import(BackupDir(), RestoredOptions(), MasterKey(),
                                 KitPath(), "admin", clock_.Now());
  ASSERT_TRUE(imported.has_value()) << imported.error().ToString();
  {
    auto records = OpenDb(RestoredOptions().data_dir + "/records");
    ASSERT_TRUE(records);
    backup::RestoreIntent cut = *imported;
    cut.complete = false;
    ASSERT_TRUE(records
                    ->Put(leveldb::WriteOptions(),
                          ToSlice(backup::kRestoreIntentKey),
                          backup::EncodeRestoreIntent(cut))
                    .ok());
  }
  auto engine = Engine::Open(RestoredOptions(), MasterKey());
  ASSERT_FALSE(engine.has_value());
  EXPECT_EQ(engine.error().code(), StatusCode::kFailedPrecondition);
}

// F2: a backup taken during a re-key holds the subject's retiring key
// ("o:"); restored after the subject was shredded, neither key may come
// back.
TEST_F(BackupReviewTest,
       ARestoreDropsTheRetiringKeyOfASubjectShreddedAfterTheBackup) {
  CreateRecord("rita@x.org");
  auto rita = engine_->FindSubject(*admin_, "rita@x.org");
  ASSERT_TRUE(rita.has_value());
  // The keystore as a re-key leaves it between its first step and its last
  // (the old key moved unchanged to "o:"), made by hand with the engine
  // closed: a backup racing a real re-key lands there only sometimes.
  Close();
  {
    auto keystore = OpenDb(dir_ + "/keystore");
    ASSERT_TRUE(keystore);
    std::string wrapped;
    ASSERT_TRUE(
        keystore->Get(leveldb::ReadOptions(), "k:" + *rita, &wrapped).ok());
    ASSERT_TRUE(
        keystore->Put(leveldb::WriteOptions(), "o:" + *rita, wrapped).ok());
  }
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  ASSERT_TRUE(engine_->Backup(*admin_, BackupDir()).has_value());
  ASSERT_TRUE(engine_->ShredSubject(*admin_, *rita).ok());
  ASSERT_TRUE(ExportKit().ok());
  Status restored = Restore();
  ASSERT_TRUE(restored.ok()) << restored.ToString();

  OpenRestored();
  auto admin = restored_->ActorFor("admin");
  auto erasure = restored_->VerifyErasure(*admin);
  ASSERT_TRUE(erasure.has_value()) << erasure.error().ToString();
  EXPECT_GT(erasure->witnesses, 0u);
  EXPECT_EQ(erasure->found, 0u);
  restored_.reset();
  auto keystore = OpenDb(RestoredOptions().data_dir + "/keystore");
  ASSERT_TRUE(keystore);
  std::string value;
  EXPECT_TRUE(
      keystore->Get(leveldb::ReadOptions(), "k:" + *rita, &value).IsNotFound());
  EXPECT_TRUE(
      keystore->Get(leveldb::ReadOptions(), "o:" + *rita, &value).IsNotFound())
      << "the shredded subject's retiring data key is back";
}

// F2: a retiring key left behind a shred (as a restore of an older build
// could leave it) is deleted by the shred's recovery at Open.
TEST_F(BackupReviewTest, OpenDeletesTheRetiringKeyOfAShreddedSubject) {
  CreateRecord("rita@x.org");
  auto rita = engine_->FindSubject(*admin_, "rita@x.org");
  ASSERT_TRUE(rita.has_value());
  std::string wrapped;
  {
    Close();
    auto keystore = OpenDb(dir_ + "/keystore");
    ASSERT_TRUE(keystore);
    ASSERT_TRUE(
        keystore->Get(leveldb::ReadOptions(), "k:" + *rita, &wrapped).ok());
  }
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  ASSERT_TRUE(engine_->ShredSubject(*admin_, *rita).ok());
  Close();
  {
    auto keystore = OpenDb(dir_ + "/keystore");
    ASSERT_TRUE(keystore);
    ASSERT_TRUE(
        keystore->Put(leveldb::WriteOptions(), "o:" + *rita, wrapped).ok());
    auto records = OpenDb(dir_ + "/records");
    ASSERT_TRUE(records);
    ASSERT_TRUE(
        records
            ->Put(leveldb::WriteOptions(), ToSlice(keys::ShredQueue(*rita)), "")
            .ok());
  }
  Reopen();
  Close();
  auto keystore = OpenDb(dir_ + "/keystore");
  ASSERT_TRUE(keystore);
  std::string value;
  EXPECT_TRUE(
      keystore->Get(leveldb::ReadOptions(), "o:" + *rita, &value).IsNotFound());
}

// F3: once a backup's key is destroyed, the backup reveals nothing but
// sizes: no blind index, no subject id, no record index.
TEST_F(BackupReviewTest, AnExpiredBackupNoLongerLinksAPersonToTheirRecords) {
  CreateRecord("anna@x.org");
  auto anna = engine_->FindSubject(*admin_, "anna@x.org");
  ASSERT_TRUE(anna.has_value());
  ASSERT_TRUE(engine_->Backup(*admin_, BackupDir()).has_value());
  ASSERT_TRUE(engine_->ShredSubject(*admin_, *anna).ok());
  clock_.Set(TestEpoch() + 24h * 36);
  auto expired = engine_->ExpireBackupKeys(*admin_);
  ASSERT_TRUE(expired.has_value());
  ASSERT_EQ(*expired, 1u);
  ASSERT_TRUE(ExportKit().ok());
  ASSERT_EQ(Restore().code(), StatusCode::kFailedPrecondition);

  // The adversary: master key + live keystore files.
  Close();
  auto keystore = Keystore::Open(dir_ + "/keystore", false, MasterKey(),
                                 clock_.Now(), leveldb::Env::Default(), 4);
  ASSERT_TRUE(keystore.has_value()) << keystore.error().ToString();
  const crypto::Digest index =
      crypto::BlindIndex((*keystore)->keyring().blind_index(), "anna@x.org");
  keystore->reset();
  const std::string dump = ReadFile(BackupDir() + "/records.dump");
  ASSERT_FALSE(dump.empty());
  EXPECT_EQ(dump.find(keys::BlindIndex(AsStringView(index))),
            std::string::npos);
  EXPECT_EQ(dump.find(*anna), std::string::npos);
  EXPECT_EQ(dump.find(keys::SubjectRecordsPrefix(*anna)), std::string::npos);
  EXPECT_EQ(dump.find("authority-a"), std::string::npos);
}

// F5: an identifier registered again after a shred is a new subject; a
// restore shreds only the subject that was shredded.
TEST_F(BackupReviewTest, ARestoreLeavesASubjectRegisteredAgainAfterAShred) {
  const uint64_t before = CreateRecord("anna@x.org");
  auto first = engine_->FindSubject(*admin_, "anna@x.org");
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(engine_->Backup(*admin_, dir_ + "-backup2").has_value());
  ASSERT_TRUE(engine_->ShredSubject(*admin_, *first).ok());
  clock_.Set(TestEpoch() + 1h);
  const uint64_t again = CreateRecord("anna@x.org");
  auto second = engine_->FindSubject(*admin_, "anna@x.org");
  ASSERT_TRUE(second.has_value());
  ASSERT_NE(*first, *second);

  clock_.Set(TestEpoch() + 2h);
  ASSERT_TRUE(engine_->Backup(*admin_, BackupDir()).has_value());
  ASSERT_TRUE(ExportKit().ok());
  Status restored = Restore();
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  OpenRestored();
  auto owner = restored_->ActorFor("authority-a");
  auto admin = restored_->ActorFor("admin");
  auto view = restored_->GetRecord(*owner, again);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kActive);
  EXPECT_EQ(view->parts.size(), 1u);
  auto found = restored_->FindSubject(*admin, "anna@x.org");
  ASSERT_TRUE(found.has_value()) << found.error().ToString();
  EXPECT_EQ(*found, *second);
  restored_.reset();

  // The older backup, taken before the shred, still loses the first one.
  ASSERT_TRUE(Engine::Restore(dir_ + "-backup2", RestoredOptions("-restored2"),
                              MasterKey(), KitPath(), "admin")
                  .ok());
  OpenRestored("-restored2");
  owner = restored_->ActorFor("authority-a");
  admin = restored_->ActorFor("admin");
  // As after the shred itself (shred_test).
  EXPECT_EQ(restored_->GetRecord(*owner, before).error().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(restored_->FindSubject(*admin, "anna@x.org").error().code(),
            StatusCode::kNotFound);
}

// Suspected by the review: the restored store's record ids restart at the
// backup's counter, so a record created there may take the id of a record
// the live store erased after the backup; the ledger carried into the
// restored store must not erase it at a later restore. Since issue 16 the
// counter is a floor RecordStore::kIdsAhead ids past the backup's last
// record: the live store creates that many records after the backup, so
// that its last id is the one the restored store gives next.
TEST_F(BackupReviewTest, ALedgerCarriedIntoARestoredStoreSparesReusedIds) {
  CreateRecord("anna@x.org");
  ASSERT_TRUE(engine_->Backup(*admin_, BackupDir()).has_value());
  clock_.Set(TestEpoch() + 1min);
  uint64_t later = 0;
  for (uint64_t i = 0; i <= RecordStore::kIdsAhead; ++i) {
    later = CreateRecord("ben@x.org");
  }
  ASSERT_TRUE(engine_->EraseRecord(*owner_, later).ok());
  ASSERT_TRUE(ExportKit().ok());
  ASSERT_TRUE(Restore().ok());
  OpenRestored();

  auto owner = restored_->ActorFor("authority-a");
  auto admin = restored_->ActorFor("admin");
  NewRecord r;
  r.kind = "request";
  r.attributes = {{"country", "AT"}, {"type", "license"}};
  r.personal = {{"carl@x.org", {{"name", "Carl"}}}};
  auto reused = restored_->CreateRecord(*owner, r);
  ASSERT_TRUE(reused.has_value()) << reused.error().ToString();
  ASSERT_EQ(*reused, later) << "ids are not reused; the test needs updating";
  ASSERT_TRUE(restored_->Backup(*admin, dir_ + "-backup2").has_value());
  ASSERT_TRUE(restored_->ExportRestoreKit(*admin, dir_ + "-kit2").ok());
  restored_.reset();

  ASSERT_TRUE(Engine::Restore(dir_ + "-backup2", RestoredOptions("-restored2"),
                              MasterKey(), dir_ + "-kit2", "admin")
                  .ok());
  OpenRestored("-restored2");
  owner = restored_->ActorFor("authority-a");
  auto view = restored_->GetRecord(*owner, *reused);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kActive);
  EXPECT_EQ(view->parts.size(), 1u);
}

}  // namespace
}  // namespace custos::testing
