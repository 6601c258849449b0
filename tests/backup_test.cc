// Backups (issue 10): a consistent online snapshot of both databases,
// verified without a store; restoring never brings back what was erased
// after the backup; backups age out once their key is destroyed.

#include <gtest/gtest.h>
#include <leveldb/db.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crypto/aead.h"
#include "storage/codec.h"
#include "storage/keyring.h"
#include "storage/keys.h"
#include "storage/keystore.h"
#include "storage/leveldb_util.h"
#include "storage/period.h"
#include "tests/engine_fixture.h"
#include "tests/fault_env.h"

namespace custos::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string Identifier(int i) {
  return std::string("p").append(std::to_string(i)).append("@x.org");
}

class BackupTest : public EngineTest {
 protected:
  void TearDown() override {
    restored_.reset();
    EngineTest::TearDown();
    std::filesystem::remove_all(dir_ + "-backup");
    std::filesystem::remove_all(dir_ + "-restored");
    std::filesystem::remove_all(dir_ + "-kit");
  }

  std::string BackupDir() const { return dir_ + "-backup"; }

  // Requests erased 2 days after closing, their history pruned 3 days
  // after that: erasures within a backup's retention.
  void SetShortRequestPolicy() {
    RetentionPolicy policy{.kind = "request",
                           .close_after = *ParsePeriod("P10D"),
                           .block_after = std::nullopt,
                           .erase_after = *ParsePeriod("P2D"),
                           .history_after = *ParsePeriod("P3D")};
    ASSERT_TRUE(engine_->SetPolicy(*admin_, policy).ok());
  }
  // SetShortRequestPolicy's, with erasure a year after closing.
  void SetLongerRequestPolicy() {
    RetentionPolicy policy{.kind = "request",
                           .close_after = *ParsePeriod("P10D"),
                           .block_after = std::nullopt,
                           .erase_after = *ParsePeriod("P1Y"),
                           .history_after = *ParsePeriod("P2Y")};
    ASSERT_TRUE(engine_->SetPolicy(*admin_, policy).ok());
  }
  std::string KitPath() const { return dir_ + "-kit"; }

  Options RestoredOptions() {
    Options options = MakeOptions();
    options.data_dir = dir_ + "-restored";
    return options;
  }

  std::string TakeBackup() {
    auto report = engine_->Backup(*admin_, BackupDir());
    EXPECT_TRUE(report.has_value()) << report.error().ToString();
    return report ? report->backup_id : "";
  }

  Status ExportKit() {
    std::filesystem::remove(KitPath());
    return engine_->ExportRestoreKit(*admin_, KitPath());
  }

  Status Restore() {
    return Engine::Restore(BackupDir(), RestoredOptions(), MasterKey(),
                           KitPath(), "admin");
  }

  // Opens the restored store (after Restore), with actors of its own.
  void OpenRestored() {
    auto engine = Engine::Open(RestoredOptions(), MasterKey());
    ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
    restored_ = std::move(*engine);
  }
  Actor RestoredActor(const std::string& id) {
    return *restored_->ActorFor(id);
  }

  void FlipByte(const std::string& path, size_t at) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(c ^ 0x01));
  }

  // The sealed chunks of a backup's keystore.sealed.
  std::vector<std::string> SealedChunks() {
    std::ifstream in(BackupDir() + "/keystore.sealed", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), {});
    std::vector<std::string> chunks;
    size_t at = 8;
    while (at + 4 <= all.size()) {
      const uint32_t n = (uint8_t(all[at]) << 24) |
                         (uint8_t(all[at + 1]) << 16) |
                         (uint8_t(all[at + 2]) << 8) | uint8_t(all[at + 3]);
      chunks.push_back(all.substr(at + 4, n));
      at += 4 + n;
    }
    return chunks;
  }

  // The wrapped form of backup `id`'s key in the stored keyring.
  // REQUIRES: the engine is closed.
  std::string StoredWrappedBackupKey(const std::string& id) {
    auto db = OpenRaw("keystore");
    std::string value;
    EXPECT_TRUE(db->Get(leveldb::ReadOptions(), "m:keyring", &value).ok());
    auto keyring = codec::DecodeKeyring(value);
    for (const auto& e : keyring->entries) {
      if (e.name == std::string("backup/").append(id)) {
        return std::string(e.wrapped.begin(), e.wrapped.end());
      }
    }
    return "";
  }

  std::unique_ptr<Engine> restored_;
};

// ---- Consistency ------------------------------------------------------------

TEST_F(BackupTest, ABackupTakenWhileAnotherThreadWritesRestoresWhole) {
  for (int i = 0; i < 20; ++i) CreateRecord(Identifier(i));
  std::atomic<bool> stop{false};
  std::atomic<int> written{20};
  std::thread writer([&] {
    for (int i = 1000; !stop.load(); ++i) {
      NewRecord r;
      r.kind = "request";
      r.attributes = {{"country", "AT"}};
      r.personal = {
          {Identifier(i),
           {{"name", std::string("Writer ").append(std::to_string(i))}}}};
      ASSERT_TRUE(engine_->CreateRecord(*owner_, r).has_value());
      ++written;
    }
  });
  while (written.load() < 40) std::this_thread::sleep_for(1ms);
  const std::string id = TakeBackup();
  const int after_backup = written.load();
  while (written.load() < after_backup + 20) std::this_thread::sleep_for(1ms);
  stop = true;
  writer.join();
  ASSERT_FALSE(id.empty());

  ASSERT_TRUE(Engine::VerifyBackup(BackupDir()).has_value());
  ASSERT_TRUE(ExportKit().ok());
  Status restored = Restore();
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  OpenRestored();
  const Actor owner = RestoredActor("authority-a");
  ListQuery all;
  all.limit = 1000;
  auto page = restored_->ListRecords(owner, all);
  ASSERT_TRUE(page.has_value()) << page.error().ToString();
  // Some of the concurrent writes are in, not all; every one that is in
  // reads whole: its subject's key was in the same instant.
  EXPECT_GE(page->records.size(), 40u);
  EXPECT_LT(page->records.size(), static_cast<size_t>(written.load()));
  EXPECT_EQ(page->skipped, 0u);
  for (const RecordView& view : page->records) {
    auto full = restored_->GetRecord(owner, view.id);
    ASSERT_TRUE(full.has_value()) << full.error().ToString();
    ASSERT_EQ(full->parts.size(), 1u);
    EXPECT_FALSE(full->parts[0].fields.empty());
  }
  auto chain = restored_->VerifyChain(RestoredActor("auditor"));
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->ok) << chain->problem;
}

// ---- Verification -----------------------------------------------------------

TEST_F(BackupTest, VerifyBackupAcceptsAnIntactBackupWithoutAStore) {
  CreateRecord();
  const std::string id = TakeBackup();
  engine_.reset();
  auto verified = Engine::VerifyBackup(BackupDir());
  ASSERT_TRUE(verified.has_value()) << verified.error().ToString();
  EXPECT_EQ(verified->backup_id, id);
  EXPECT_EQ(verified->format_version, 2u);
  EXPECT_EQ(verified->created, TestEpoch());
  EXPECT_EQ(verified->files.size(), 2u);
  EXPECT_GE(verified->records_chunks, 1u);
  EXPECT_GE(verified->keystore_chunks, 1u);
}

TEST_F(BackupTest, VerifyBackupFindsAFlippedByte) {
  CreateRecord();
  TakeBackup();
  FlipByte(BackupDir() + "/records.dump", 100);
  auto verified = Engine::VerifyBackup(BackupDir());
  ASSERT_FALSE(verified.has_value());
  EXPECT_EQ(verified.error().code(), StatusCode::kDataLoss);
  EXPECT_NE(verified.error().message().find(
                "records.dump does not match its checksum"),
            std::string::npos)
      << verified.error().ToString();
}

TEST_F(BackupTest, VerifyBackupFindsAMissingFile) {
  CreateRecord();
  TakeBackup();
  fs::remove(BackupDir() + "/keystore.sealed");
  auto verified = Engine::VerifyBackup(BackupDir());
  ASSERT_FALSE(verified.has_value());
  EXPECT_EQ(verified.error().code(), StatusCode::kNotFound);
  EXPECT_NE(verified.error().message().find("keystore.sealed is missing"),
            std::string::npos)
      << verified.error().ToString();
}

TEST_F(BackupTest, VerifyBackupFindsAnAlteredManifest) {
  CreateRecord();
  TakeBackup();
  FlipByte(BackupDir() + "/manifest", 30);
  auto verified = Engine::VerifyBackup(BackupDir());
  ASSERT_FALSE(verified.has_value());
  EXPECT_EQ(verified.error().code(), StatusCode::kDataLoss);
}

TEST_F(BackupTest, AnUnknownBackupFormatVersionIsRefused) {
  CreateRecord();
  TakeBackup();
  std::ifstream in(BackupDir() + "/manifest");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  in.close();
  text.replace(text.find("custos-backup 2"), 15, "custos-backup 9");
  std::ofstream(BackupDir() + "/manifest", std::ios::trunc) << text;
  auto verified = Engine::VerifyBackup(BackupDir());
  ASSERT_FALSE(verified.has_value());
  EXPECT_EQ(verified.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(verified.error().message().find("backup format version 9"),
            std::string::npos);
}

// ---- Restore never resurrects -----------------------------------------------

TEST_F(BackupTest, NothingErasedAfterTheBackupComesBackAtRestore) {
  ASSERT_NO_FATAL_FAILURE(SetShortRequestPolicy());
  const uint64_t shredded = CreateRecord("anna@x.org");
  const uint64_t erased = CreateRecord("ben@x.org");
  const uint64_t swept = CreateRecord("carl@x.org");
  const uint64_t kept = CreateRecord("dora@x.org");
  ASSERT_TRUE(engine_->Close(*owner_, swept).ok());
  auto anna = engine_->FindSubject(*admin_, "anna@x.org");
  auto ben = engine_->FindSubject(*admin_, "ben@x.org");
  ASSERT_TRUE(anna.has_value() && ben.has_value());
  auto ben_events = [&](Engine& engine, const Actor& auditor) {
    auto page = engine.AccessHistory(auditor, *ben, TestEpoch() - 24h,
                                     TestEpoch() + 24h * 30, 0, 100);
    EXPECT_TRUE(page.has_value()) << page.error().ToString();
    size_t n = 0;
    for (const auto& e : page->events) n += e.record_id == erased;
    return n;
  };
  ASSERT_GT(ben_events(*engine_, *auditor_), 0u);

  TakeBackup();

  // After the backup: a shred, an early erasure, a sweep's erasure, and
  // the early erasure's history pruned.
  clock_.Set(TestEpoch() + 1min);
  ASSERT_TRUE(engine_->ShredSubject(*admin_, *anna).ok());
  ASSERT_TRUE(engine_->EraseRecord(*owner_, erased).ok());
  clock_.Set(TestEpoch() + 24h * 3 + 1h);
  auto sweep = engine_->Sweep(*admin_, {.as_of = clock_.Now()});
  ASSERT_TRUE(sweep.has_value()) << sweep.error().ToString();
  EXPECT_EQ(sweep->erased, 1u);
  EXPECT_GT(sweep->history_pruned, 0u);
  ASSERT_EQ(ben_events(*engine_, *auditor_), 0u);
  ASSERT_TRUE(ExportKit().ok());

  clock_.Set(TestEpoch() + 24h * 3 + 2h);
  Status restored = Restore();
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  OpenRestored();
  const Actor owner = RestoredActor("authority-a");
  const Actor admin = RestoredActor("admin");
  // Only an admin sees an ERASED record (its attributes).
  for (uint64_t id : {shredded, erased, swept}) {
    auto view = restored_->GetRecord(admin, id);
    ASSERT_TRUE(view.has_value()) << view.error().ToString();
    EXPECT_EQ(view->state, RecordState::kErased) << "record " << id;
    EXPECT_TRUE(view->parts.empty()) << "record " << id;
  }
  auto swept_view = restored_->GetRecord(admin, swept);
  EXPECT_EQ(swept_view->erased_at, TestEpoch() + 24h * 2);
  auto kept_view = restored_->GetRecord(owner, kept);
  ASSERT_TRUE(kept_view.has_value());
  EXPECT_EQ(kept_view->state, RecordState::kActive);
  EXPECT_EQ(kept_view->parts.size(), 1u);
  auto found = restored_->FindSubject(admin, "anna@x.org");
  ASSERT_FALSE(found.has_value());
  EXPECT_EQ(found.error().code(), StatusCode::kNotFound);
  EXPECT_EQ(ben_events(*restored_, RestoredActor("auditor")), 0u);

  auto erasure = restored_->VerifyErasure(admin);
  ASSERT_TRUE(erasure.has_value()) << erasure.error().ToString();
  EXPECT_GT(erasure->witnesses, 0u);
  EXPECT_EQ(erasure->found, 0u);
  auto chain = restored_->VerifyChain(admin);
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->ok) << chain->problem;

  // The deadline bucket the live sweep erased by key after the backup: its
  // key, which the backup's keystore held (with no witness: VerifyErasure
  // could not tell), is destroyed again before the restored store opens
  // (review helper-99: it lived until the restored store's first sweep).
  restored_.reset();
  auto keystore = OpenRaw("../" + fs::path(dir_).filename().string() +
                          "-restored/keystore");
  ASSERT_NE(keystore, nullptr);
  EXPECT_EQ(CountKeys(*keystore, "k:~b"), 0);
}

// Revocations and replaced tokens are in the ledger: a restore of an
// older backup revokes again and takes the new credential, never the old
// one (review helper-99: a principal revoked because its token leaked
// was active again in the restored store, and a replaced token worked);
// an admin revoked since may still name the restore (else a store whose
// admins all changed since could not be restored: review helper-100) and
// is revoked in the restored store; a principal made after the backup is
// not in it, and its ledger entry is not kept.
TEST_F(BackupTest, RevokedPrincipalsAndReplacedTokensStaySoAfterARestore) {
  auto app1 =
      engine_->CreatePrincipal(*admin_, "app-1", "App 1", {Role::kUser}, false);
  auto app2 =
      engine_->CreatePrincipal(*admin_, "app-2", "App 2", {Role::kUser}, false);
  auto admin2 = engine_->CreatePrincipal(*admin_, "admin-2", "Admin 2",
                                         {Role::kAdmin}, false);
  ASSERT_TRUE(app1.has_value() && app2.has_value() && admin2.has_value());
  CreateRecord();
  TakeBackup();
  ASSERT_TRUE(engine_->RevokePrincipal(*admin_, "app-1").ok());
  auto replaced = engine_->RotateCredential(*admin_, "app-2");
  ASSERT_TRUE(replaced.has_value()) << replaced.error().ToString();
  ASSERT_TRUE(engine_->RevokePrincipal(*admin_, "admin-2").ok());
  auto app3 =
      engine_->CreatePrincipal(*admin_, "app-3", "App 3", {Role::kUser}, false);
  ASSERT_TRUE(app3.has_value());
  ASSERT_TRUE(engine_->RotateCredential(*admin_, "app-3").has_value());
  ASSERT_TRUE(ExportKit().ok());

  const Status by_revoked = Engine::Restore(BackupDir(), RestoredOptions(),
                                            MasterKey(), KitPath(), "admin-2");
  ASSERT_TRUE(by_revoked.ok()) << by_revoked.ToString();
  OpenRestored();
  EXPECT_EQ(restored_->Authenticate(app1->token).error().code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(restored_->Authenticate(app2->token).error().code(),
            StatusCode::kUnauthenticated);
  auto current = restored_->Authenticate(*replaced);
  ASSERT_TRUE(current.has_value()) << current.error().ToString();
  EXPECT_EQ(current->id(), "app-2");
  EXPECT_EQ(restored_->Authenticate(admin2->token).error().code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(restored_->ActorFor("app-3").error().code(), StatusCode::kNotFound);
  // The restored store keeps no ledger entry for app-3: made again there,
  // a later restore of it must not apply the old one's replaced token.
  restored_.reset();
  auto keystore = OpenRaw("../" + fs::path(dir_).filename().string() +
                          "-restored/keystore");
  ASSERT_NE(keystore, nullptr);
  EXPECT_EQ(CountKeys(*keystore, "lc:app-3"), 0);
  EXPECT_EQ(CountKeys(*keystore, "lc:app-2"), 1);
}

// Every admin the backup holds was revoked since (admin-2 made after it,
// then admin revoked): the restored store has no admin who can log in
// (admin-2 is not in it), and custos recover-admin's call makes one.
TEST_F(BackupTest,
       ARestoreWithEveryAdminRevokedSinceIsRecoveredByTheKeyHolder) {
  CreateRecord();
  TakeBackup();
  auto admin2 = engine_->CreatePrincipal(*admin_, "admin-2", "Admin 2",
                                         {Role::kAdmin}, false);
  ASSERT_TRUE(admin2.has_value()) << admin2.error().ToString();
  auto by_admin2 = engine_->Authenticate(admin2->token);
  ASSERT_TRUE(by_admin2.has_value());
  ASSERT_TRUE(engine_->RevokePrincipal(*by_admin2, "admin").ok());
  const Status kit = engine_->ExportRestoreKit(*by_admin2, KitPath());
  ASSERT_TRUE(kit.ok()) << kit.ToString();

  const Status restored = Engine::Restore(BackupDir(), RestoredOptions(),
                                          MasterKey(), KitPath(), "admin");
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  OpenRestored();
  EXPECT_EQ(restored_->ActorFor("admin").error().ToString(),
            "Unauthenticated: principal is revoked");
  EXPECT_EQ(restored_->Authenticate(admin2->token).error().code(),
            StatusCode::kUnauthenticated);
  auto recovered = restored_->RecoverAdmin("admin-3", "Admin 3");
  ASSERT_TRUE(recovered.has_value()) << recovered.error().ToString();
  auto admin3 = restored_->Authenticate(recovered->token);
  ASSERT_TRUE(admin3.has_value()) << admin3.error().ToString();
  auto principals = restored_->ListPrincipals(*admin3, "", 0);
  ASSERT_TRUE(principals.has_value()) << principals.error().ToString();
  std::vector<std::string> active_admins;
  for (const PrincipalInfo& p : *principals) {
    if (p.HasRole(Role::kAdmin) && !p.revoked) active_admins.push_back(p.id);
  }
  EXPECT_EQ(active_admins, std::vector<std::string>{"admin-3"});
  EXPECT_TRUE(restored_
                  ->CreatePrincipal(*admin3, "admin-4", "Admin 4",
                                    {Role::kAdmin}, false)
                  .has_value());
}

// A revocation that failed (the records database's write failed) takes
// its ledger entry back: a restore keeps the principal as the live store
// did (review helper-100: the entry stayed, so a restore revoked a
// principal still active, or gave an admin a token never handed out).
TEST_F(BackupTest, ARevocationThatFailedIsNotReappliedByARestore) {
  FaultEnv env;
  Options options = MakeOptions();
  options.env = &env;
  ReopenWith(options);
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  auto app1 =
      engine_->CreatePrincipal(*admin_, "app-1", "App 1", {Role::kUser}, false);
  ASSERT_TRUE(app1.has_value());
  TakeBackup();
  env.records.fail_appends = true;
  const Status failed = engine_->RevokePrincipal(*admin_, "app-1");
  auto rotated = engine_->RotateCredential(*admin_, "app-1");
  env.records.fail_appends = false;
  EXPECT_EQ(failed.code(), StatusCode::kInternal) << failed.ToString();
  ASSERT_FALSE(rotated.has_value());
  EXPECT_EQ(rotated.error().code(), StatusCode::kInternal);
  ASSERT_TRUE(engine_->Authenticate(app1->token).has_value());
  // The store refuses writes after a failed one until it is reopened.
  Close();  // Before `env`.
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  ASSERT_TRUE(engine_->Authenticate(app1->token).has_value());
  ASSERT_TRUE(ExportKit().ok());
  ASSERT_TRUE(Restore().ok());
  OpenRestored();
  auto restored = restored_->Authenticate(app1->token);
  ASSERT_TRUE(restored.has_value()) << restored.error().ToString();
  EXPECT_EQ(restored->id(), "app-1");
}

// A record a legal hold kept past its bucket's hour was moved out of that
// bucket by the live store before its key was destroyed; the backup, taken
// before, has it still sealed under that key. With a hold in force in the
// backup the restore keeps destroyed bucket keys (the restored store's
// first sweep moves the held record and destroys them), so the held record
// reads whole (review helper-102: leaving the key out made it
// undecipherable, and its subject's report failed).
TEST_F(BackupTest, ARecordAHoldProtectsReadsWholeAfterARestore) {
  ASSERT_NO_FATAL_FAILURE(SetShortRequestPolicy());
  const uint64_t id = CreateRecord("anna@x.org");
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  ASSERT_TRUE(engine_
                  ->SetRecordHold(*officer_, id, "proceedings 4 C 12/26",
                                  TestEpoch() + 24h * 20)
                  .has_value());
  TakeBackup();
  clock_.Set(TestEpoch() + 24h * 3);
  auto swept = engine_->Sweep(*admin_, {.as_of = clock_.Now()});
  ASSERT_TRUE(swept.has_value()) << swept.error().ToString();
  EXPECT_EQ(swept->erased, 0u);  // Held.
  ASSERT_TRUE(ExportKit().ok());
  ASSERT_TRUE(Restore().ok());
  OpenRestored();
  auto view = restored_->GetRecord(RestoredActor("officer"), id, APurpose());
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_TRUE(view->personal_included);
  ASSERT_EQ(view->parts.size(), 1u);
  // The restored store's sweep moves it and destroys the old key.
  auto again =
      restored_->Sweep(RestoredActor("admin"), {.as_of = clock_.Now()});
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  auto after = restored_->GetRecord(RestoredActor("officer"), id, APurpose());
  ASSERT_TRUE(after.has_value()) << after.error().ToString();
  EXPECT_TRUE(after->personal_included);
}

// A hold's release makes the postponed erasure due at once: the record is
// ERASED for every reader from that instant, though no sweep has written
// it down yet. A kit exported in that window must carry the erasure, or
// the restore brings the backup's hold back and the record with it,
// readable (review helper-127).
TEST_F(BackupTest, AnErasureAReleaseMadeDueStaysGoneWithoutASweep) {
  ASSERT_NO_FATAL_FAILURE(SetShortRequestPolicy());
  const uint64_t id = CreateRecord("anna@x.org");
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  auto hold = engine_->SetRecordHold(*officer_, id, "proceedings 4 C 12/26",
                                     TestEpoch() + 24h * 20);
  ASSERT_TRUE(hold.has_value()) << hold.error().ToString();
  TakeBackup();
  clock_.Set(TestEpoch() + 24h * 3);
  ASSERT_TRUE(engine_->ReleaseHold(*officer_, hold->id).ok());
  auto live = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(live.has_value()) << live.error().ToString();
  ASSERT_EQ(live->state, RecordState::kErased);
  ASSERT_TRUE(ExportKit().ok());

  const Status restored = Restore();
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  OpenRestored();
  auto view = restored_->GetRecord(RestoredActor("admin"), id);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kErased);
  EXPECT_TRUE(view->parts.empty());
  EXPECT_EQ(view->erased_at, live->erased_at);
  auto officer_view =
      restored_->GetRecord(RestoredActor("officer"), id, APurpose());
  ASSERT_TRUE(officer_view.has_value()) << officer_view.error().ToString();
  EXPECT_EQ(officer_view->state, RecordState::kErased);  // Attributes only.
  EXPECT_FALSE(officer_view->personal_included);
  EXPECT_TRUE(officer_view->parts.empty());
}

// The same for a policy shortened after the backup: the record is ERASED
// under the new deadline before any sweep, and the kit carries it.
TEST_F(BackupTest, AnErasureAShortenedPolicyMadeDueStaysGoneWithoutASweep) {
  const uint64_t id = CreateRecord("anna@x.org");
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  TakeBackup();
  ASSERT_NO_FATAL_FAILURE(SetShortRequestPolicy());
  auto applied = engine_->ReapplyPolicies(*admin_);
  ASSERT_TRUE(applied.has_value()) << applied.error().ToString();
  clock_.Set(TestEpoch() + 24h * 3);
  auto live = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(live.has_value()) << live.error().ToString();
  ASSERT_EQ(live->state, RecordState::kErased);
  ASSERT_TRUE(ExportKit().ok());

  const Status restored = Restore();
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  OpenRestored();
  auto view = restored_->GetRecord(RestoredActor("admin"), id);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kErased);
  EXPECT_TRUE(view->parts.empty());
  EXPECT_EQ(view->erased_at, TestEpoch() + 24h * 2);
}

// A kit exported before a policy change carries an erasure in force under
// the old policy (two steps due, neither written down); the change keeps it
// in force in the live store too, so the live store and a restore agree
// (review helper-128: a longer policy brought the record back to CLOSED in
// the live store, and the kit's ledger erased it at a restore).
TEST_F(BackupTest, AKitsErasureStaysInForceAcrossAPolicyChange) {
  ASSERT_NO_FATAL_FAILURE(SetShortRequestPolicy());  // Close +10d, erase +2d.
  const uint64_t id = CreateRecord("anna@x.org");
  TakeBackup();
  clock_.Set(TestEpoch() + 24h * 13);
  ASSERT_TRUE(ExportKit().ok());
  ASSERT_NO_FATAL_FAILURE(SetLongerRequestPolicy());
  auto live = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(live.has_value()) << live.error().ToString();
  EXPECT_EQ(live->state, RecordState::kErased);
  EXPECT_EQ(live->erased_at, TestEpoch() + 24h * 12);

  const Status restored = Restore();
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  OpenRestored();
  auto view = restored_->GetRecord(RestoredActor("admin"), id);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kErased);
  EXPECT_EQ(view->erased_at, live->erased_at);
}

// The same with the kit exported after the change: the change wrote the
// erasure down, and into the ledger, so the kit carries it though no due
// entry is left for the kit's own walk (a review, helper-130: nothing
// tested the change's ledger write).
TEST_F(BackupTest, AnErasureAPolicyChangeWroteDownIsInTheKit) {
  ASSERT_NO_FATAL_FAILURE(SetShortRequestPolicy());  // Close +10d, erase +2d.
  const uint64_t id = CreateRecord("anna@x.org");
  TakeBackup();
  clock_.Set(TestEpoch() + 24h * 13);
  ASSERT_NO_FATAL_FAILURE(SetLongerRequestPolicy());
  ASSERT_TRUE(ExportKit().ok());
  const Status restored = Restore();
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  OpenRestored();
  auto view = restored_->GetRecord(RestoredActor("admin"), id);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kErased);
  EXPECT_EQ(view->erased_at, TestEpoch() + 24h * 12);
}

// What a hold keeps is not in the kit: exported with no sweep since the
// erasure's legal date (its due entry still at that date), the held record
// restores whole, for a record hold and for a subject hold (helper-128).
TEST_F(BackupTest, AHeldErasureIsNotInAKitExportedBeforeAnySweep) {
  ASSERT_NO_FATAL_FAILURE(SetShortRequestPolicy());
  const uint64_t by_record = CreateRecord("anna@x.org");
  const uint64_t by_subject = CreateRecord("ben@x.org");
  ASSERT_TRUE(engine_->Close(*owner_, by_record).ok());
  ASSERT_TRUE(engine_->Close(*owner_, by_subject).ok());
  ASSERT_TRUE(engine_
                  ->SetRecordHold(*officer_, by_record, "proceedings 4 C 12/26",
                                  TestEpoch() + 24h * 20)
                  .has_value());
  auto ben = engine_->FindSubject(*admin_, "ben@x.org");
  ASSERT_TRUE(ben.has_value()) << ben.error().ToString();
  ASSERT_TRUE(engine_
                  ->SetSubjectHold(*officer_, *ben, "proceedings 4 C 13/26",
                                   TestEpoch() + 24h * 20)
                  .has_value());
  TakeBackup();
  clock_.Set(TestEpoch() + 24h * 3);  // Past the legal date, no sweep.
  ASSERT_TRUE(ExportKit().ok());
  ASSERT_TRUE(Restore().ok());
  OpenRestored();
  for (uint64_t id : {by_record, by_subject}) {
    auto view = restored_->GetRecord(RestoredActor("officer"), id, APurpose());
    ASSERT_TRUE(view.has_value()) << view.error().ToString();
    EXPECT_EQ(view->state, RecordState::kClosed) << id;
    EXPECT_TRUE(view->personal_included) << id;
    EXPECT_EQ(view->parts.size(), 1u) << id;
  }
}

// A restore that fails while writing (here every append to the restored
// records database's log fails, as on a full disk) leaves nothing of
// itself: the directory can be restored into again (review helper-99: the
// half-written databases stayed, and Open refused them for ever).
TEST_F(BackupTest, ARestoreThatFailsWhileWritingLeavesNothing) {
  CreateRecord();
  TakeBackup();
  ASSERT_TRUE(ExportKit().ok());
  FaultEnv faulty;
  faulty.records.fail_appends = true;
  Options options = RestoredOptions();
  options.env = &faulty;
  const Status failed =
      Engine::Restore(BackupDir(), options, MasterKey(), KitPath(), "admin");
  EXPECT_EQ(failed.code(), StatusCode::kInternal) << failed.ToString();
  EXPECT_FALSE(fs::exists(options.data_dir + "/records"));
  EXPECT_FALSE(fs::exists(options.data_dir + "/keystore"));
  ASSERT_TRUE(Restore().ok());
  OpenRestored();
}

TEST_F(BackupTest, RestoreIntoADirectoryHoldingAStoreIsRefused) {
  CreateRecord();
  TakeBackup();
  ASSERT_TRUE(ExportKit().ok());
  ASSERT_TRUE(Restore().ok());
  Status again = Restore();
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
}

// ---- Aging ------------------------------------------------------------------

// A kit written while the backup's key was young still holds it after the
// retention: the restore refuses the backup all the same, by the key's
// age. And a kit written after the key passed the retention, before any
// sweep destroyed it, does not hold it (review helper-99: a kit exported
// on day 34 restored a day-0 backup for ever, and one exported on day 36
// carried the key the next sweep would destroy).
TEST_F(BackupTest, NoKitRestoresABackupOlderThanTheRetention) {
  CreateRecord();
  TakeBackup();
  clock_.Set(TestEpoch() + 24h * 34);
  ASSERT_TRUE(ExportKit().ok());  // The key is 34 days old: in the kit.
  const auto summary = Engine::InspectRestoreKit(KitPath(), MasterKey());
  ASSERT_TRUE(summary.has_value()) << summary.error().ToString();
  EXPECT_EQ(summary->written, TestEpoch() + 24h * 34);
  EXPECT_EQ(summary->backup_keys, 1u);
  ASSERT_TRUE(Restore().ok());
  fs::remove_all(RestoredOptions().data_dir);
  // Past the retention, that kit (kept, not replaced) opens nothing.
  const std::string old_kit = dir_ + "-kit-day34";
  fs::remove(old_kit);
  fs::copy_file(KitPath(), old_kit);
  clock_.Set(TestEpoch() + 24h * 36);
  Status refused = Engine::Restore(BackupDir(), RestoredOptions(), MasterKey(),
                                   old_kit, "admin");
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("the key of this backup has expired"),
            std::string::npos)
      << refused.ToString();
  EXPECT_FALSE(fs::exists(RestoredOptions().data_dir + "/records"));
  fs::remove(old_kit);
  // No sweep has run: the live keyring still holds the key, and a kit
  // written now leaves it out.
  ASSERT_TRUE(ExportKit().ok());
  const auto later = Engine::InspectRestoreKit(KitPath(), MasterKey());
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(later->backup_keys, 0u);
}

// A kit of the first format, which said nothing of when it was written,
// is refused with a way out.
TEST_F(BackupTest, AKitOfTheFirstFormatIsRefused) {
  CreateRecord();
  TakeBackup();
  {
    std::ofstream(KitPath(), std::ios::binary)
        << "CSTKIT01" << std::string(64, 'x');
  }
  const std::string said =
      "FailedPrecondition: this restore kit was written by an earlier "
      "version of Custos and does not say when it was written; write a new "
      "one (custos backup kit)";
  EXPECT_EQ(Restore().ToString(), said);
  EXPECT_EQ(
      Engine::InspectRestoreKit(KitPath(), MasterKey()).error().ToString(),
      said);
}

// A backup holding a retention policy written without the key (its MAC
// fails), and a shred after the backup: the restored store's Open finishes
// the shred (FinishRestore) with a block in force that needs the policy
// next. It opens, the shredded person's parts are gone, and the record
// about her alone is erased with its block written down first (reviews
// helper-106 to 108: Open failed on it, and no call could repair it).
TEST_F(BackupTest, ARestoreFinishesAShredUnderAPolicyThatFailsItsMac) {
  NewRecord both;
  both.kind = "request";
  both.personal = {{"anna@example.org", {{"name", "Anna"}}},
                   {"ben@example.org", {{"name", "Ben"}}}};
  auto shared = engine_->CreateRecord(*owner_, both);
  ASSERT_TRUE(shared.has_value()) << shared.error().ToString();
  const uint64_t annas = CreateRecord("anna@example.org");
  for (uint64_t id : {*shared, annas}) {
    ASSERT_TRUE(engine_->Close(*owner_, id).ok());  // Blocked 2027-02-28.
  }
  auto anna = engine_->FindSubject(*admin_, "anna@example.org");
  ASSERT_TRUE(anna.has_value());
  RetentionPolicy forged = ShippedPolicy("request");
  forged.erase_after = Period{.months = 7};
  ForgePolicy(forged);
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  clock_.Set(At(2027, 2, 27));  // The backup within its retention.
  TakeBackup();
  clock_.Set(At(2027, 3, 1));
  ASSERT_TRUE(engine_->ShredSubject(*admin_, *anna).ok());
  ASSERT_TRUE(ExportKit().ok());

  const Status restored = Restore();
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  OpenRestored();
  auto view = restored_->GetRecord(RestoredActor("admin"), *shared);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kBlocked);  // In force, as read.
  EXPECT_EQ(view->subject_ids.size(), 1u);        // Ben's part only.
  view = restored_->GetRecord(RestoredActor("admin"), annas);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kErased);
  ASSERT_TRUE(view->blocked_at.has_value());
  EXPECT_EQ(*view->blocked_at, At(2027, 2, 28, 12));
}

// A user who can write the keystore's files copies its own credential
// entry (its token replaced: the ledger holds the new token's hash) under
// the admin's id: the restore would have given the admin that user's token.
// The entry's MAC binds the principal id: the restore is refused.
TEST_F(BackupTest,
       ACredentialEntryCopiedToAnotherPrincipalIsRefusedByARestore) {
  CreateRecord();
  TakeBackup();
  auto token = engine_->RotateCredential(*admin_, "authority-a");
  ASSERT_TRUE(token.has_value()) << token.error().ToString();
  Close();
  {
    auto db = OpenRaw("keystore");
    ASSERT_NE(db, nullptr);
    std::string value;
    ASSERT_TRUE(
        db->Get(leveldb::ReadOptions(),
                std::string(Keystore::kLedgerCredentialPrefix) + "authority-a",
                &value)
            .ok());
    ASSERT_TRUE(
        db->Put(leveldb::WriteOptions(),
                std::string(Keystore::kLedgerCredentialPrefix) + "admin", value)
            .ok());
  }
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  ASSERT_TRUE(ExportKit().ok());
  EXPECT_EQ(Restore().ToString(), "DataLoss: corrupt ledger entry");
  EXPECT_FALSE(fs::exists(RestoredOptions().data_dir + "/records"));
}

// The ledger's pruned seqs ("lp:") tell a restore which events to prune:
// one added by someone who can write the live keystore but holds no key
// would have a restore prune that event. Each entry carries a MAC.
TEST_F(BackupTest, APrunedSeqForgedIntoTheLedgerIsRefusedByARestore) {
  CreateRecord();
  auto chain = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(chain.has_value());
  const uint64_t seq = chain->head_seq;  // The create's event, or after it.
  TakeBackup();
  Close();
  {
    auto db = OpenRaw("keystore");
    ASSERT_NE(db, nullptr);
    std::string key(Keystore::kLedgerPrunePrefix), value;
    AppendBigEndian64(key, seq);
    AppendBigEndian64(value, seq);
    value.append(32, 'm');
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), key, value).ok());
  }
  Reopen();
  ASSERT_TRUE(ExportKit().ok());
  EXPECT_EQ(Restore().ToString(), "DataLoss: corrupt ledger entry");
  // The control: written by the engine (a MAC under the ledger key), the
  // same seq restores.
  Close();
  {
    auto db = OpenRaw("keystore");
    ASSERT_NE(db, nullptr);
    std::string value;
    auto keyring = Keyring::Open(
        [&] {
          std::string sealed;
          EXPECT_TRUE(
              db->Get(leveldb::ReadOptions(), "m:keyring", &sealed).ok());
          return sealed;
        }(),
        Keyring::RingKey(MasterKey()));
    ASSERT_TRUE(keyring.has_value());
    std::string key(Keystore::kLedgerPrunePrefix);
    AppendBigEndian64(key, seq);
    ASSERT_TRUE(
        db->Put(leveldb::WriteOptions(), key,
                Keystore::LedgerPruneValue(keyring->ledger(), key, {seq}))
            .ok());
  }
  Reopen();
  ASSERT_TRUE(ExportKit().ok());
  EXPECT_TRUE(Restore().ok());
}

TEST_F(BackupTest, ABackupOlderThanTheRetentionCannotBeDecryptedAtAll) {
  CreateRecord();
  const std::string id = TakeBackup();
  // Within the retention it restores.
  ASSERT_TRUE(ExportKit().ok());
  ASSERT_TRUE(Restore().ok());
  fs::remove_all(RestoredOptions().data_dir);
  Close();
  const std::string wrapped = StoredWrappedBackupKey(id);
  ASSERT_FALSE(wrapped.empty());
  Reopen();

  // One day short of the retention the sweep keeps the key; past it, the
  // sweep destroys it.
  clock_.Set(TestEpoch() + 24h * 34);
  ASSERT_TRUE(engine_->Sweep(*admin_, {.as_of = clock_.Now()}).has_value());
  ASSERT_TRUE(ExportKit().ok());
  ASSERT_TRUE(Restore().ok());
  fs::remove_all(RestoredOptions().data_dir);
  clock_.Set(TestEpoch() + 24h * 35 + 1s);
  ASSERT_TRUE(engine_->Sweep(*admin_, {.as_of = clock_.Now()}).has_value());

  ASSERT_TRUE(ExportKit().ok());
  Status restored = Restore();
  EXPECT_EQ(restored.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(restored.message().find("the key of this backup has expired"),
            std::string::npos)
      << restored.ToString();

  // A newer backup's key is the only backup key left in the keyring.
  ASSERT_TRUE(engine_->Backup(*admin_, dir_ + "-backup2").has_value());
  Close();
  auto db = OpenRaw("keystore");
  std::string value;
  ASSERT_TRUE(db->Get(leveldb::ReadOptions(), "m:keyring", &value).ok());
  db.reset();
  auto stored = codec::DecodeKeyring(value);
  ASSERT_TRUE(stored.has_value());
  int backup_keys = 0;
  for (const auto& e : stored->entries) {
    if (e.name.starts_with("backup/")) ++backup_keys;
    EXPECT_NE(e.name, std::string("backup/").append(id));
  }
  EXPECT_EQ(backup_keys, 1);
  // ... and the destroyed key's wrapped form is in no file of the keystore.
  EXPECT_EQ(ReadAllFiles(dir_ + "/keystore").find(wrapped), std::string::npos);
  std::filesystem::remove_all(dir_ + "-backup2");
}

// A backup key that expires while another backup is written (its keystore
// snapshot held, scheduled maintenance running beside it) still leaves the
// files: the purge is done again when the snapshot is released (a review,
// helper-120: the snapshot kept the replaced keyring, which holds the
// expired key wrapped under the master key, in the files for good).
TEST_F(BackupTest, AKeyExpiredDuringABackupLeavesTheFilesWhenTheBackupEnds) {
  CreateRecord();
  const std::string id = TakeBackup();
  // The keyring's entry of the key (each keyring version wraps it anew:
  // its name is what every version holding it has in common).
  const std::string entry = "backup/" + id;
  Close();
  ASSERT_NE(ReadAllFiles(dir_ + "/keystore").find(entry), std::string::npos);
  Reopen();
  clock_.Set(TestEpoch() + 24h * 35 + 1s);  // Past the backup retention.
  bool expired_during = false;
  auto report =
      engine_->Backup(*admin_, dir_ + "-backup2", [&](const WorkProgress& p) {
        if (expired_during || p.phase != "records") return;
        expired_during = true;
        auto expired = engine_->ExpireBackupKeys(*admin_);
        ASSERT_TRUE(expired.has_value()) << expired.error().ToString();
        EXPECT_EQ(*expired, 1u);
      });
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_TRUE(expired_during);
  Close();
  EXPECT_EQ(ReadAllFiles(dir_ + "/keystore").find(entry), std::string::npos);
  {
    auto db = OpenRaw("keystore");
    std::string marker;
    EXPECT_TRUE(db->Get(leveldb::ReadOptions(), "m:keyring_purge", &marker)
                    .IsNotFound());
  }
  Reopen();
  std::filesystem::remove_all(dir_ + "-backup2");
}

TEST_F(BackupTest, AfterExpiryNoKeyOfTheLiveStoreOpensTheBackup) {
  CreateRecord();
  const std::string id = TakeBackup();
  const std::vector<std::string> chunks = SealedChunks();
  ASSERT_FALSE(chunks.empty());
  // The control: before expiry, the live keyring's key for it opens it.
  auto opens = [&](const crypto::SecretKey& key) {
    for (size_t i = 0; i < chunks.size(); ++i) {
      std::string ad =
          std::string("custos backup ").append(id).append(" keystore.sealed");
      for (int b = 7; b >= 0; --b)
        ad.push_back(static_cast<char>(i >> (8 * b)));
      ad.push_back(i + 1 == chunks.size() ? 1 : 0);
      if (crypto::Open(key, AsBytes(chunks[i]), AsBytes(ad)).has_value()) {
        return true;
      }
    }
    return false;
  };
  // Every key the live keyring holds, each tried on every chunk.
  auto any_live_key_opens = [&] {
    Close();
    auto db = OpenRaw("keystore");
    std::string value;
    EXPECT_TRUE(db->Get(leveldb::ReadOptions(), "m:keyring", &value).ok());
    db.reset();
    auto keyring = Keyring::Open(value, Keyring::RingKey(MasterKey()));
    EXPECT_TRUE(keyring.has_value());
    bool opened = false;
    for (const auto& b : keyring->BackupKeys()) {
      opened |= opens(*keyring->BackupKey(b.backup_id));
    }
    for (uint32_t v : keyring->KekVersions()) opened |= opens(*keyring->Kek(v));
    for (const crypto::SecretKey* k :
         {&keyring->blind_index(), &keyring->audit(), &keyring->credential(),
          &keyring->ledger()}) {
      opened |= opens(*k);
    }
    Reopen();
    return opened;
  };
  ASSERT_TRUE(any_live_key_opens());

  clock_.Set(TestEpoch() + 24h * 36);
  auto expired = engine_->ExpireBackupKeys(*admin_);
  ASSERT_TRUE(expired.has_value()) << expired.error().ToString();
  EXPECT_EQ(*expired, 1u);
  auto again = engine_->ExpireBackupKeys(*admin_);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, 0u);
  // A newer backup puts a new key in the keyring: it opens nothing old.
  ASSERT_TRUE(engine_->Backup(*admin_, dir_ + "-backup2").has_value());
  EXPECT_FALSE(any_live_key_opens());
  std::filesystem::remove_all(dir_ + "-backup2");
}

// Backup keys age out even when every sweep fails (a corrupt deadline
// bucket entry that each sweep meets): scheduled maintenance and an
// admin's sweep expire them all the same, and report the sweep's error
// (review helper-99: expiry ran only after a successful sweep, so one
// persistent sweep error kept every backup decipherable).
TEST_F(BackupTest, BackupKeysAgeOutEvenWhenTheSweepFails) {
  CreateRecord("anna@example.org");
  TakeBackup();
  Close();
  {
    auto db = OpenRaw("keystore");
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), "k:~b00", "x").ok());
  }
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  clock_.Set(TestEpoch() + 24h * 36);
  auto maintenance = engine_->RunMaintenance(10);
  ASSERT_FALSE(maintenance.has_value());
  EXPECT_EQ(maintenance.error().ToString(),
            "DataLoss: corrupt deadline bucket key name");
  // Already expired by the failed maintenance.
  auto expired = engine_->ExpireBackupKeys(*admin_);
  ASSERT_TRUE(expired.has_value()) << expired.error().ToString();
  EXPECT_EQ(*expired, 0u);
  // A backup taken now ages out on an admin's failing sweep the same way.
  std::filesystem::remove_all(BackupDir());
  TakeBackup();
  clock_.Set(TestEpoch() + 24h * 72);
  SweepOptions sweep;
  sweep.as_of = clock_.Now();
  auto swept = engine_->Sweep(*admin_, sweep);
  ASSERT_FALSE(swept.has_value());
  EXPECT_EQ(swept.error().code(), StatusCode::kDataLoss);
  auto after = engine_->ExpireBackupKeys(*admin_);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(*after, 0u);
  // But a sweep refused for its arguments does nothing at all (a review,
  // helper-100): the key of a backup past the retention stays for the
  // next sweep or expiry.
  std::filesystem::remove_all(BackupDir());
  TakeBackup();
  clock_.Set(TestEpoch() + 24h * 108);
  SweepOptions bad;
  bad.as_of = clock_.Now();
  bad.batch_size = 0;
  EXPECT_EQ(engine_->Sweep(*admin_, bad).error().ToString(),
            "InvalidArgument: batch_size must be at least 1");
  auto left = engine_->ExpireBackupKeys(*admin_);
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(*left, 1u);
}

// A failed keyring write (a full disk) leaves the expired keys where they
// were, in memory as on disk: the next call expires them (review
// helper-99: they were dropped from memory only, so the next call found
// nothing to do while the disk still held them).
TEST_F(BackupTest, ExpiringBackupKeysIsRetriedAfterAFailedWrite) {
  FaultEnv env;
  Options options = MakeOptions();
  options.env = &env;
  ReopenWith(options);
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  CreateRecord();
  TakeBackup();
  clock_.Set(TestEpoch() + 24h * 36);
  env.keystore.fail_appends = true;
  auto failed = engine_->ExpireBackupKeys(*admin_);
  env.keystore.fail_appends = false;
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code(), StatusCode::kInternal);
  auto retried = engine_->ExpireBackupKeys(*admin_);
  ASSERT_TRUE(retried.has_value()) << retried.error().ToString();
  EXPECT_EQ(*retried, 1u);
  Close();  // Before `env`.
}

// ---- Admin only
// ---------------------------------------------------------------

TEST_F(BackupTest, OnlyAnAdminBacksUpExportsExpiresAndRestores) {
  CreateRecord();
  auto backup = engine_->Backup(*owner_, BackupDir());
  ASSERT_FALSE(backup.has_value());
  EXPECT_EQ(backup.error().code(), StatusCode::kPermissionDenied);
  EXPECT_FALSE(fs::exists(BackupDir() + "/manifest"));
  EXPECT_EQ(engine_->ExportRestoreKit(*auditor_, KitPath()).code(),
            StatusCode::kPermissionDenied);
  auto expire = engine_->ExpireBackupKeys(*officer_);
  ASSERT_FALSE(expire.has_value());
  EXPECT_EQ(expire.error().code(), StatusCode::kPermissionDenied);

  auto before = engine_->VerifyChain(*admin_);
  TakeBackup();
  ASSERT_TRUE(ExportKit().ok());
  auto after = engine_->VerifyChain(*admin_);
  // One event each: backup, export_restore_kit.
  EXPECT_EQ(after->head_seq, before->head_seq + 2);
  Status restored = Engine::Restore(BackupDir(), RestoredOptions(), MasterKey(),
                                    KitPath(), "authority-a");
  EXPECT_EQ(restored.code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace custos::testing
