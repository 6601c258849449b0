// Shred leftovers (issue 16, docs/decisions.md "Issue 16: shred
// leftovers"): a backup syncs what a shred left unsynced before its
// snapshot; several lost shreds are written again in the order they
// happened; the keystore intent, the rewritten event, a retried shred and
// a restored intent.

#include <gtest/gtest.h>
#include <leveldb/db.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "storage/codec.h"
#include "storage/history.h"
#include "storage/keys.h"
#include "storage/keystore.h"
#include "storage/leveldb_util.h"
#include "tests/engine_fixture.h"
#include "tests/fault_env.h"

namespace custos::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ShredLeftoversTest : public EngineTest {
 protected:
  void TearDown() override {
    EngineTest::TearDown();
    fs::remove_all(BackupDir());
    fs::remove_all(dir_ + "-records-before");
  }
  std::string BackupDir() const { return dir_ + "-backup"; }
  std::string SubjectOf(uint64_t id) {
    return engine_->GetRecord(*admin_, id)->subject_ids.at(0);
  }
  void ReopenAll() {
    Reopen();
    admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
    owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  }
  // The power loss that takes a shred's unsynced records side: records/
  // is saved before the shreds and put back after (the keystore's synced
  // writes survive). SaveRecords copies with the engine closed (no
  // compaction can add or delete a file during the copy) and reopens it:
  // actors other than admin_ and owner_ must be taken again.
  // REQUIRES for PutBackRecords: the engine is closed.
  void SaveRecords() {
    Close();
    fs::copy(dir_ + "/records", dir_ + "-records-before",
             fs::copy_options::recursive);
    ReopenAll();
  }
  void PutBackRecords() {
    fs::remove_all(dir_ + "/records");
    fs::rename(dir_ + "-records-before", dir_ + "/records");
  }
  // The shred events of the access history, in seq order, from their
  // clear headers. REQUIRES: the engine is closed.
  std::vector<EventHeader> ShredEvents() {
    std::vector<EventHeader> shreds;
    std::optional<crypto::SecretKey> audit;
    {
      crypto::SecretKey master = MasterKey();
      auto keystore =
          Keystore::Open(dir_ + "/keystore", false, master, clock_.Now(),
                         leveldb::Env::Default(), /*cache_capacity=*/1);
      EXPECT_TRUE(keystore.has_value()) << keystore.error().ToString();
      if (!keystore) return shreds;
      audit.emplace(*crypto::SecretKey::FromBytes(
          (*keystore)->keyring().audit().bytes()));
    }
    std::unique_ptr<leveldb::DB> db = OpenRaw("records");
    if (db == nullptr) return shreds;
    auto history = History::Open(*db, std::move(*audit));
    EXPECT_TRUE(history.has_value()) << history.error().ToString();
    if (!history) return shreds;
    uint64_t after = 0;
    do {
      auto page = (*history)->Scan(after, 1000);
      EXPECT_TRUE(page.has_value()) << page.error().ToString();
      if (!page) break;
      for (const HistoryEntry& e : page->entries) {
        if (e.header.action != EventAction::kShred) continue;
        shreds.push_back(e.header);
        shred_sealed_parts_.push_back(e.sealed_parts);
      }
      after = page->next_after_seq;
    } while (after != 0);
    return shreds;
  }
  std::vector<size_t> shred_sealed_parts_;  // Per event ShredEvents found.
  // For ReopenWith; outlives the engine (closed in TearDown), even when an
  // assertion ends a test early.
  FaultEnv env_;
  // The keystore's entries under `prefix`, in key order: their values, or
  // their keys with `keys_only`. REQUIRES: the engine is closed.
  std::vector<std::string> KeystoreEntries(std::string_view prefix,
                                           bool keys_only) {
    std::vector<std::string> out;
    std::unique_ptr<leveldb::DB> db = OpenRaw("keystore");
    if (db == nullptr) return out;
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    for (it->Seek(ToSlice(prefix));
         it->Valid() && it->key().starts_with(ToSlice(prefix)); it->Next()) {
      out.push_back(keys_only ? it->key().ToString() : it->value().ToString());
    }
    return out;
  }
  // The values of the keystore's shred ledger entries ("l:").
  std::vector<std::string> LedgerShredEntries() {
    return KeystoreEntries("l:", /*keys_only=*/false);
  }
  // The keystore's "i:" keys.
  std::vector<std::string> KeystoreIntents() {
    return KeystoreEntries("i:", /*keys_only=*/true);
  }
};

// ---- 1. A backup syncs the records side of a shred before its snapshot ----

// The fixture writes without syncing (sync_writes false), as a shred's
// records side always is: the backup pays one group sync for all of it
// before its snapshot. (Before: none; the backup could hold a shred event
// that a power loss then took from the live store, which Recover writes
// again differently.)
TEST_F(ShredLeftoversTest, ABackupSyncsTheRecordsWrittenBeforeItsSnapshot) {
  const uint64_t id = CreateRecord("anna@example.org");
  ASSERT_TRUE(engine_->ShredSubject(*admin_, SubjectOf(id)).ok());
  const uint64_t syncs = engine_->TEST_SyncCount();
  std::vector<uint64_t> at_snapshot;  // Syncs when the snapshot is taken.
  engine_->TEST_SetSnapshotHook(
      [&] { at_snapshot.push_back(engine_->TEST_SyncCount()); });
  auto report = engine_->Backup(*admin_, BackupDir());
  engine_->TEST_SetSnapshotHook(nullptr);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(engine_->TEST_SyncCount() - syncs, 1u);
  // The sync came before the snapshot (after it, the snapshot would hold
  // what a power loss could still take).
  EXPECT_EQ(at_snapshot, std::vector<uint64_t>{syncs + 1});
}

// With sync_writes (the default) every acknowledged change is durable
// already: a backup then pays no sync before its snapshot (only the one of
// its own `backup` event), unless a shred's records side is pending.
TEST_F(ShredLeftoversTest, WithSyncWritesOnlyAPendingShredCostsTheBackupASync) {
  Options options = MakeOptions();
  options.sync_writes = true;
  ReopenWith(options);
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  const uint64_t id = CreateRecord("anna@example.org");
  uint64_t syncs = engine_->TEST_SyncCount();
  ASSERT_TRUE(engine_->Backup(*admin_, BackupDir()).has_value());
  EXPECT_EQ(engine_->TEST_SyncCount() - syncs, 1u);  // The event's.
  fs::remove_all(BackupDir());

  ASSERT_TRUE(engine_->ShredSubject(*admin_, SubjectOf(id)).ok());
  syncs = engine_->TEST_SyncCount();
  std::vector<uint64_t> at_snapshot;
  engine_->TEST_SetSnapshotHook(
      [&] { at_snapshot.push_back(engine_->TEST_SyncCount()); });
  ASSERT_TRUE(engine_->Backup(*admin_, BackupDir()).has_value());
  engine_->TEST_SetSnapshotHook(nullptr);
  EXPECT_EQ(engine_->TEST_SyncCount() - syncs, 2u);  // The shred's, too.
  EXPECT_EQ(at_snapshot, std::vector<uint64_t>{syncs + 1});  // Before it.
}

// The sync fails: no backup is written (it would hold what may be lost),
// and the store refuses changes as after any failed sync.
TEST_F(ShredLeftoversTest, ABackupWhoseSyncFailsWritesNoBackup) {
  const uint64_t id = CreateRecord("anna@example.org");
  ASSERT_TRUE(engine_->ShredSubject(*admin_, SubjectOf(id)).ok());
  engine_->TEST_FailNextSync(Status::Internal("disk on fire"));
  auto report = engine_->Backup(*admin_, BackupDir());
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), StatusCode::kInternal);
  EXPECT_EQ(report.error().message(), "disk on fire");
  EXPECT_FALSE(fs::exists(BackupDir() + "/manifest"));
  EXPECT_FALSE(fs::exists(BackupDir() + "/records.dump"));
  EXPECT_EQ(engine_->VerifyBackup(BackupDir()).error().code(),
            StatusCode::kNotFound);
  NewRecord r;
  r.kind = "request";
  r.personal = {{"ben@example.org", {{"name", "Ben"}}}};
  EXPECT_EQ(engine_->CreateRecord(*owner_, r).error().code(),
            StatusCode::kInternal);
}

// ---- 2. Lost shreds are written again in the order they happened -------

// Three shreds, by three admins a second apart, in the reverse order of
// their subject ids; a power loss takes all three records sides. Open
// writes the three events again in the order of the shreds, each at its
// shred time and by its admin, from the sequence number the first lost
// one had (nothing else was written in between): the chain verifies.
TEST_F(ShredLeftoversTest, LostShredsAreWrittenAgainInTheOrderTheyHappened) {
  std::vector<std::string> subjects;
  for (int i = 0; i < 3; ++i) {
    subjects.push_back(SubjectOf(CreateRecord("p" + std::to_string(i))));
  }
  std::sort(subjects.begin(), subjects.end(), std::greater<>());
  const std::vector<std::string> admins = {"admin", "admin-2", "admin-3"};
  AddPrincipal("admin-2", {Role::kAdmin});
  AddPrincipal("admin-3", {Role::kAdmin});
  auto before = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(before.has_value());
  SaveRecords();
  std::vector<std::unique_ptr<Actor>> actors;
  for (const std::string& a : admins) {
    actors.push_back(std::make_unique<Actor>(*engine_->ActorFor(a)));
  }
  std::vector<Timestamp> times;
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(1s);
    times.push_back(clock_.Now());
    ASSERT_TRUE(engine_->ShredSubject(*actors[i], subjects[i]).ok());
  }
  Close();
  PutBackRecords();
  clock_.Advance(1h);

  ReopenAll();
  auto chain = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->ok) << chain->problem;
  EXPECT_EQ(chain->head_seq, before->head_seq + 3);
  Close();
  EXPECT_TRUE(KeystoreIntents().empty());
  std::vector<EventHeader> shreds = ShredEvents();
  ASSERT_EQ(shreds.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(shreds[i].seq, before->head_seq + 1 + i);
    EXPECT_EQ(shreds[i].principal_id, admins[i]) << i;
    EXPECT_EQ(shreds[i].at, times[i]) << i;
  }
}

// Three lost shreds at one time (a clock that does not move): their
// events are written again in the order of their subject ids, here the
// reverse of the order the shreds happened in, each by its admin.
TEST_F(ShredLeftoversTest, LostShredsAtOneTimeAreWrittenAgainBySubjectId) {
  std::vector<std::string> subjects;
  for (int i = 0; i < 3; ++i) {
    subjects.push_back(SubjectOf(CreateRecord("p" + std::to_string(i))));
  }
  std::sort(subjects.begin(), subjects.end(), std::greater<>());
  const std::vector<std::string> admins = {"admin", "admin-2", "admin-3"};
  AddPrincipal("admin-2", {Role::kAdmin});
  AddPrincipal("admin-3", {Role::kAdmin});
  auto before = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(before.has_value());
  SaveRecords();
  clock_.Advance(1s);
  const Timestamp shredded_at = clock_.Now();
  for (int i = 0; i < 3; ++i) {
    auto actor = engine_->ActorFor(admins[i]);
    ASSERT_TRUE(actor.has_value());
    ASSERT_TRUE(engine_->ShredSubject(*actor, subjects[i]).ok());
  }
  Close();
  PutBackRecords();
  clock_.Advance(1h);

  ReopenAll();
  auto chain = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->ok) << chain->problem;
  EXPECT_EQ(chain->head_seq, before->head_seq + 3);
  Close();
  std::vector<EventHeader> shreds = ShredEvents();
  ASSERT_EQ(shreds.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    // Subject ids ascending: the last shred's subject first.
    EXPECT_EQ(shreds[i].seq, before->head_seq + 1 + i);
    EXPECT_EQ(shreds[i].principal_id, admins[2 - i]) << i;
    EXPECT_EQ(shreds[i].at, shredded_at) << i;
  }
}

// ---- 3. The keystore intent, the rewritten event, a retry, a restore ----

// (a) The intent stays while the records sync that would cover the
// shred's records side fails, and goes once a sync succeeds.
TEST_F(ShredLeftoversTest, TheIntentSurvivesAFailedRecordsSync) {
  const uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  ASSERT_TRUE(engine_->ShredSubject(*admin_, subject).ok());
  engine_->TEST_FailNextSync(Status::Internal("disk on fire"));
  auto completed = engine_->CompleteShreds(100);
  ASSERT_FALSE(completed.has_value());
  EXPECT_EQ(completed.error().code(), StatusCode::kInternal);
  Close();
  EXPECT_EQ(KeystoreIntents(), std::vector<std::string>{"i:" + subject});
  ReopenAll();  // Recover: the records sync succeeds.
  Close();
  EXPECT_TRUE(KeystoreIntents().empty());
}

// (b) The shred event written again after a lost records side is the
// admin's shred at the shred time (not "recovery", not the time of the
// Open); and the blind index entry is deleted only if it still names the
// subject (here, tampered with to name another, it is left alone).
TEST_F(ShredLeftoversTest, TheRewrittenEventIsTheAdminsShredAtItsTime) {
  const uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  SaveRecords();
  clock_.Advance(5min);
  const Timestamp shredded_at = clock_.Now();
  ASSERT_TRUE(engine_->ShredSubject(*admin_, subject).ok());
  Close();
  PutBackRecords();
  std::string index_key;
  {
    std::unique_ptr<leveldb::DB> db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    const std::string prefix = keys::BlindIndex("");
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      if (it->value().ToString() == subject) index_key = it->key().ToString();
    }
    ASSERT_FALSE(index_key.empty());
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), index_key, "s-other").ok());
  }
  clock_.Advance(1h);
  ReopenAll();
  Close();
  std::vector<EventHeader> shreds = ShredEvents();
  ASSERT_EQ(shreds.size(), 1u);
  EXPECT_EQ(shreds[0].principal_id, "admin");
  EXPECT_EQ(shreds[0].at, shredded_at);
  EXPECT_EQ(shred_sealed_parts_, std::vector<size_t>{0});  // Key gone.
  std::unique_ptr<leveldb::DB> db = OpenRaw("records");
  ASSERT_NE(db, nullptr);
  std::string value;
  ASSERT_TRUE(db->Get(leveldb::ReadOptions(), index_key, &value).ok());
  EXPECT_EQ(value, "s-other");
  ASSERT_TRUE(
      db->Get(leveldb::ReadOptions(), keys::Subject(subject), &value).ok());
  EXPECT_TRUE(codec::DecodeSubject(value)->shredded);
}

// (c) A shred whose key destruction failed by a failed sync of the
// keystore's log, asked again: LevelDB 1.23 refuses every write to the
// keystore after a failed sync (not after a failed append: see (e)), so
// the retry fails the same way until the store is reopened. The failed
// write's record was appended to the log before its sync failed, and the
// reopen replays it: the key is gone at Open by the first attempt's own
// write (its ledger entry's `by` is "admin", not Recover's "recovery";
// were the record not in the log, Recover would destroy the key), and a
// retry then finds the shred done. One shred event (the first attempt's,
// at its time, by its admin), the record ERASED at that time, the chain
// verifies, no intent left.
TEST_F(ShredLeftoversTest, AShredRetriedAfterAFailedKeyDestructionCompletes) {
  const uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  FaultEnv& env = env_;
  Options options = MakeOptions();
  options.env = &env;
  ReopenWith(options);
  const Timestamp shredded_at = clock_.Now();
  env.keystore.fail_syncs = true;
  EXPECT_EQ(engine_->ShredSubject(*admin_, subject).code(),
            StatusCode::kInternal);
  env.keystore.fail_syncs = false;
  clock_.Advance(1min);
  const Status retried = engine_->ShredSubject(*admin_, subject);
  EXPECT_EQ(retried.code(), StatusCode::kInternal) << retried.ToString();
  EXPECT_EQ(engine_->GetRecord(*owner_, id).error().code(),
            StatusCode::kDataLoss);  // Nothing readable meanwhile.
  engine_.reset();
  ReopenAll();
  EXPECT_EQ(engine_->ShredSubject(*admin_, subject).code(),
            StatusCode::kNotFound);
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  auto record = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(record.has_value()) << record.error().ToString();
  EXPECT_EQ(record->state, RecordState::kErased);
  EXPECT_EQ(record->erased_at, shredded_at);
  auto chain = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->ok) << chain->problem;
  engine_.reset();
  std::vector<EventHeader> shreds = ShredEvents();
  ASSERT_EQ(shreds.size(), 1u);
  EXPECT_EQ(shreds[0].at, shredded_at);
  EXPECT_EQ(shreds[0].principal_id, "admin");
  EXPECT_TRUE(KeystoreIntents().empty());
  // The first attempt's write, replayed from the log at the reopen,
  // destroyed the key: not the retry, not Recover.
  EXPECT_EQ(LedgerShredEntries(),
            std::vector<std::string>{codec::EncodeLedgerEntry(0, "admin")});
}

// (e) The key's destruction failed by a failed append to the keystore's
// log (a full disk): not remembered by LevelDB, so a retry in the same
// process succeeds. It makes the first attempt's records side durable
// before it destroys the key (one group sync, counted when the keystore's
// log is written): once the key is gone a power loss cannot take the
// shred event, and Open never writes it again. One shred event, the first
// admin's at the first time; the ledger names who destroyed the key, the
// retrying admin.
TEST_F(ShredLeftoversTest, ARetryAfterAFailedKeystoreAppendSyncsTheShredFirst) {
  const uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  FaultEnv& env = env_;
  Options options = MakeOptions();
  options.env = &env;
  ReopenWith(options);
  std::unique_ptr<Actor> admin2 = AddPrincipal("admin-2", {Role::kAdmin});
  const Timestamp shredded_at = clock_.Now();
  env.keystore.fail_appends = true;
  const Status first = engine_->ShredSubject(*admin_, subject);
  env.keystore.fail_appends = false;
  EXPECT_EQ(first.code(), StatusCode::kInternal) << first.ToString();
  EXPECT_NE(first.message().find("log append failed"), std::string::npos)
      << first.ToString();
  clock_.Advance(1min);
  const uint64_t syncs = engine_->TEST_SyncCount();
  std::vector<uint64_t> at_append;  // Records syncs at each log append.
  env.keystore.on_append = [&] {
    at_append.push_back(engine_->TEST_SyncCount());
  };
  const Status retried = engine_->ShredSubject(*admin2, subject);
  env.keystore.on_append = nullptr;
  ASSERT_TRUE(retried.ok()) << retried.ToString();
  // The first append of the key's destruction (LevelDB appends a log
  // record's header and payload apart) came after the records sync.
  ASSERT_FALSE(at_append.empty());
  EXPECT_EQ(at_append.front(), syncs + 1);
  EXPECT_EQ(engine_->ShredSubject(*admin_, subject).code(),
            StatusCode::kNotFound);
  engine_.reset();
  std::vector<EventHeader> shreds = ShredEvents();
  ASSERT_EQ(shreds.size(), 1u);
  EXPECT_EQ(shreds[0].at, shredded_at);
  EXPECT_EQ(shreds[0].principal_id, "admin");
  EXPECT_EQ(LedgerShredEntries(),
            std::vector<std::string>{codec::EncodeLedgerEntry(0, "admin-2")});
  ReopenAll();
  auto chain = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->ok) << chain->problem;
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  auto record = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(record.has_value()) << record.error().ToString();
  EXPECT_EQ(record->state, RecordState::kErased);
  EXPECT_EQ(record->erased_at, shredded_at);
  Close();
  EXPECT_TRUE(KeystoreIntents().empty());
}

// (f) The same failed shred finished by CompleteShreds (its Recover, not a
// retry): it too syncs the records side before the key goes; ledger `by`
// "recovery", the event still the admin's.
TEST_F(ShredLeftoversTest, CompleteShredsSyncsAFailedShredBeforeItsKeyGoes) {
  const uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  FaultEnv& env = env_;
  Options options = MakeOptions();
  options.env = &env;
  ReopenWith(options);
  const Timestamp shredded_at = clock_.Now();
  env.keystore.fail_appends = true;
  EXPECT_EQ(engine_->ShredSubject(*admin_, subject).code(),
            StatusCode::kInternal);
  env.keystore.fail_appends = false;
  clock_.Advance(1min);
  const uint64_t syncs = engine_->TEST_SyncCount();
  std::vector<uint64_t> at_append;
  env.keystore.on_append = [&] {
    at_append.push_back(engine_->TEST_SyncCount());
  };
  auto completed = engine_->CompleteShreds(100);
  env.keystore.on_append = nullptr;
  ASSERT_TRUE(completed.has_value()) << completed.error().ToString();
  ASSERT_FALSE(at_append.empty());
  EXPECT_EQ(at_append[0], syncs + 1);  // The key's destruction.
  auto record = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(record.has_value()) << record.error().ToString();
  EXPECT_EQ(record->state, RecordState::kErased);
  EXPECT_EQ(record->erased_at, shredded_at);
  engine_.reset();
  std::vector<EventHeader> shreds = ShredEvents();
  ASSERT_EQ(shreds.size(), 1u);
  EXPECT_EQ(shreds[0].principal_id, "admin");
  EXPECT_EQ(shreds[0].at, shredded_at);
  EXPECT_EQ(LedgerShredEntries(),
            std::vector<std::string>{codec::EncodeLedgerEntry(0, "recovery")});
  EXPECT_TRUE(KeystoreIntents().empty());
}

// ---- 4. Chain verification, and a store that failed before -------------

// VerifyChain makes what was applied durable before it reads the head (a
// shred's records side): the head it reports is one a power loss cannot
// take back. The sync comes before the snapshot, and costs nothing when
// nothing is pending.
TEST_F(ShredLeftoversTest, VerifyChainSyncsAPendingShredBeforeReadingTheHead) {
  const uint64_t id = CreateRecord("anna@example.org");
  ASSERT_TRUE(engine_->ShredSubject(*admin_, SubjectOf(id)).ok());
  uint64_t syncs = engine_->TEST_SyncCount();
  std::vector<uint64_t> at_snapshot;
  engine_->TEST_SetSnapshotHook(
      [&] { at_snapshot.push_back(engine_->TEST_SyncCount()); });
  auto chain = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(chain.has_value()) << chain.error().ToString();
  EXPECT_TRUE(chain->ok) << chain->problem;
  EXPECT_EQ(engine_->TEST_SyncCount() - syncs, 1u);
  EXPECT_EQ(at_snapshot, std::vector<uint64_t>{syncs + 1});
  syncs = engine_->TEST_SyncCount();
  ASSERT_TRUE(engine_->VerifyChain(*admin_).has_value());
  engine_->TEST_SetSnapshotHook(nullptr);
  EXPECT_EQ(engine_->TEST_SyncCount(), syncs);  // Nothing pending.
  EXPECT_EQ(at_snapshot.size(), 2u);
}

// A records write failed (an append to the log: LevelDB applied nothing,
// and every write counted before it is synced): SyncApplied returns that
// failure, not OK, so a backup writes nothing and VerifyChain reports it.
TEST_F(ShredLeftoversTest, SyncAppliedReturnsAnEarlierFailure) {
  FaultEnv& env = env_;
  Options options = MakeOptions();
  options.env = &env;
  ReopenWith(options);
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  ASSERT_TRUE(engine_->VerifyChain(*admin_).has_value());  // All synced.
  NewRecord r;
  r.kind = "request";
  r.personal = {{"ben@example.org", {{"name", "Ben"}}}};
  env.records.fail_appends = true;
  auto created = engine_->CreateRecord(*owner_, r);
  env.records.fail_appends = false;
  ASSERT_FALSE(created.has_value());
  const Status failure = created.error();
  EXPECT_NE(failure.message().find("log append failed"), std::string::npos)
      << failure.ToString();
  auto report = engine_->Backup(*admin_, BackupDir());
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), failure.code());
  EXPECT_EQ(report.error().message(), failure.message());
  EXPECT_FALSE(fs::exists(BackupDir() + "/manifest"));
  EXPECT_FALSE(fs::exists(BackupDir() + "/records.dump"));
  auto chain = engine_->VerifyChain(*admin_);
  ASSERT_FALSE(chain.has_value());
  EXPECT_EQ(chain.error().message(), failure.message());
  engine_.reset();
}

// (d) A backup taken right after a shred holds its keystore intent (one
// keystore entry more than a backup taken once it is dropped) and, synced
// first, its records side. The restore imports the intent with the rest
// of the keystore; the restored store's Open (Engine::Restore runs it)
// finds the subject shredded and drops the intent; the shred stays done:
// the identifier finds no one, the record reads ERASED, the chain verifies.
TEST_F(ShredLeftoversTest, ARestoredIntentIsDroppedAtTheRestoredStoresOpen) {
  const uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  ASSERT_TRUE(engine_->ShredSubject(*admin_, subject).ok());
  auto report = engine_->Backup(*admin_, BackupDir());
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  ASSERT_TRUE(engine_->CompleteShreds(0).has_value());  // Drops the intent.
  auto later = engine_->Backup(*admin_, BackupDir() + "-later");
  fs::remove_all(BackupDir() + "-later");
  ASSERT_TRUE(later.has_value()) << later.error().ToString();
  EXPECT_EQ(report->keystore_entries, later->keystore_entries + 1);
  const std::string kit = dir_ + "-kit";
  ASSERT_TRUE(engine_->ExportRestoreKit(*admin_, kit).ok());
  Close();

  Options restored = MakeOptions();
  restored.data_dir = dir_ + "-restored";
  const Status restore =
      Engine::Restore(BackupDir(), restored, MasterKey(), kit, "admin");
  fs::remove(kit);
  ASSERT_TRUE(restore.ok()) << restore.ToString();
  const std::string live = dir_;
  dir_ = restored.data_dir;  // The fixture's helpers, on the restored store.
  ReopenAll();
  EXPECT_EQ(engine_->FindSubject(*admin_, "anna@example.org").error().code(),
            StatusCode::kNotFound);
  auto record = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(record.has_value()) << record.error().ToString();
  EXPECT_EQ(record->state, RecordState::kErased);
  auto chain = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->ok) << chain->problem;
  Close();
  EXPECT_TRUE(KeystoreIntents().empty());
  fs::remove_all(dir_);
  dir_ = live;
}

}  // namespace
}  // namespace custos::testing
