// Crypto-shredding a subject (DESIGN section 4).

#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/env.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "crypto/aead.h"
#include "crypto/keyed_hash.h"
#include "crypto/master_key.h"
#include "storage/codec.h"
#include "storage/keys.h"
#include "storage/keystore.h"
#include "storage/leveldb_util.h"
#include "tests/engine_fixture.h"
#include "tests/fault_env.h"

namespace custos::testing {
namespace {

class ShredTest : public EngineTest {
 protected:
  std::string SubjectOf(uint64_t id) {
    return engine_->GetRecord(*admin_, id)->subject_ids.at(0);
  }
  // The wrapped key bytes stored for `subject` (engine must be closed).
  std::string WrappedKeyBytes(const std::string& subject) {
    std::unique_ptr<leveldb::DB> db = OpenRaw("keystore");
    if (db == nullptr) return "";
    std::string value;
    EXPECT_TRUE(db->Get(leveldb::ReadOptions(), "k:" + subject, &value).ok());
    auto stored = codec::DecodeWrappedKey(value);
    EXPECT_TRUE(stored.has_value());
    return stored ? std::string(AsStringView(stored->wrapped)) : "";
  }
  void ReopenAll() {
    Reopen();
    admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
    owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
    officer_ = std::make_unique<Actor>(*engine_->ActorFor("officer"));
  }
};

TEST_F(ShredTest, ShreddingDestroysOneSubjectsPartsAndKeepsTheOthers) {
  NewRecord r;
  r.kind = "request";
  r.personal = {{"anna@example.org", {{"name", "Anna"}}},
                {"ben@example.org", {{"name", "Ben"}}}};
  uint64_t shared = *engine_->CreateRecord(*owner_, r);
  uint64_t annas = CreateRecord("anna@example.org");
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");

  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());

  auto view = engine_->GetRecord(*owner_, shared);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->state, RecordState::kActive);
  ASSERT_EQ(view->parts.size(), 1u);
  EXPECT_EQ(view->parts[0].subject_identifier, "ben@example.org");
  // Anna's own record has no readable part left: ERASED at once, so gone
  // for its owner, and its erasure time is the shred.
  EXPECT_EQ(engine_->GetRecord(*owner_, annas).error().code(),
            StatusCode::kNotFound);
  auto erased = engine_->GetRecord(*admin_, annas);
  EXPECT_EQ(erased->state, RecordState::kErased);
  EXPECT_EQ(erased->erased_at, clock_.Now());
  EXPECT_EQ(engine_->FindSubject(*admin_, "anna@example.org").error().code(),
            StatusCode::kNotFound);
}

TEST_F(ShredTest, CompleteShredsWritesTheBookkeepingDownInBoundedSteps) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(CreateRecord("anna@example.org"));
  ASSERT_TRUE(engine_->ShredSubject(*admin_, SubjectOf(ids[0])).ok());
  // A step's budget is bounded (it holds the write lock throughout): over
  // the bound, nothing is rewritten.
  auto oversized = engine_->CompleteShreds(kMaxShredBudget + 1);
  ASSERT_FALSE(oversized.has_value());
  EXPECT_EQ(oversized.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(oversized.error().message(), "the budget must be at most 100000");
  EXPECT_EQ(*engine_->CompleteShreds(2), 2u);
  EXPECT_EQ(*engine_->CompleteShreds(100), 3u);
  EXPECT_EQ(*engine_->CompleteShreds(100), 0u);
  ReopenAll();
  for (uint64_t id : ids) {
    auto view = engine_->GetRecord(*admin_, id);
    EXPECT_EQ(view->state, RecordState::kErased);
  }
}

TEST_F(ShredTest, ShreddingEvictsTheKeyFromTheCache) {
  uint64_t id = CreateRecord("anna@example.org");
  CreateRecord("ben@example.org");
  engine_->TEST_ClearKeyCache();
  ASSERT_TRUE(engine_->GetRecord(*owner_, id).has_value());
  EXPECT_EQ(engine_->TEST_CachedKeyCount(), 1u);
  ASSERT_TRUE(engine_->ShredSubject(*admin_, SubjectOf(id)).ok());
  EXPECT_EQ(engine_->TEST_CachedKeyCount(), 0u);
}

TEST_F(ShredTest, TheKeyCacheIsBounded) {
  Close();
  Options options = MakeOptions();
  options.key_cache_capacity = 3;
  engine_ = std::move(*Engine::Open(options, MasterKey()));
  owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  std::vector<uint64_t> ids;
  for (int i = 0; i < 6; ++i)
    ids.push_back(CreateRecord("p" + std::to_string(i)));
  for (uint64_t id : ids)
    ASSERT_TRUE(engine_->GetRecord(*owner_, id).has_value());
  EXPECT_EQ(engine_->TEST_CachedKeyCount(), 3u);
}

TEST_F(ShredTest, TheWrappedKeyIsGoneFromTheKeystoreFiles) {
  uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  Close();
  const std::string wrapped = WrappedKeyBytes(subject);
  ASSERT_EQ(wrapped.size(), crypto::kSealOverhead + crypto::SecretKey::kSize);
  // Control: before the shred the scan finds the wrapped key.
  EXPECT_NE(ReadAllFiles(dir_ + "/keystore").find(wrapped), std::string::npos);
  ReopenAll();
  ASSERT_TRUE(engine_->ShredSubject(*admin_, subject).ok());
  // The shred itself only destroys the key (its cost must not grow with the
  // keystore); the bytes leave the files at the next bounded compaction.
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  Close();
  EXPECT_EQ(ReadAllFiles(dir_ + "/keystore").find(wrapped), std::string::npos);
  EXPECT_EQ(ReadAllFiles(dir_).find(wrapped), std::string::npos);
}

// The deletion bound of a shred: the key is unusable at once, its bytes
// stay in the keystore's files until the next CompleteShreds, Sweep,
// EraseRecord or Open, never longer. Fails if the shred path compacts again
// (the first expectation) or if the queue is lost (the second).
TEST_F(ShredTest, TheDestroyedKeyLeavesTheFilesAtTheNextOpenNotInTheShred) {
  uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  Close();
  const std::string wrapped = WrappedKeyBytes(subject);
  ReopenAll();
  ASSERT_TRUE(engine_->ShredSubject(*admin_, subject).ok());
  EXPECT_EQ(engine_->GetRecord(*owner_, id).error().code(),
            StatusCode::kNotFound);
  Close();
  EXPECT_NE(ReadAllFiles(dir_ + "/keystore").find(wrapped), std::string::npos);
  ReopenAll();
  Close();
  EXPECT_EQ(ReadAllFiles(dir_ + "/keystore").find(wrapped), std::string::npos);
}

TEST_F(ShredTest, TheErasureIsRecordedInTheLedger) {
  CreateRecord("anna@example.org");
  const std::string subject =
      *engine_->FindSubject(*admin_, "anna@example.org");
  ASSERT_TRUE(engine_->ShredSubject(*admin_, subject).ok());
  Close();
  crypto::SecretKey master = MasterKey();
  auto keystore =
      Keystore::Open(dir_ + "/keystore", false, master, clock_.Now(),
                     leveldb::Env::Default(), /*cache_capacity=*/1);
  ASSERT_TRUE(keystore.has_value());
  const crypto::SecretKey& bi = (*keystore)->keyring().blind_index();
  const crypto::SecretKey& ledger = (*keystore)->keyring().ledger();
  auto entry = Keystore::LedgerShredHash(
      ledger, crypto::BlindIndex(bi, "anna@example.org"), subject);
  EXPECT_TRUE(*(*keystore)->InLedger(entry));
  // The entry names the subject shredded, not its identifier: a later
  // subject of the same identifier is not in the ledger.
  EXPECT_FALSE(*(*keystore)->InLedger(
      crypto::KeyedHash(ledger, crypto::BlindIndex(bi, "anna@example.org"))));
  auto other = Keystore::LedgerShredHash(
      ledger, crypto::BlindIndex(bi, "ben@example.org"), subject);
  EXPECT_FALSE(*(*keystore)->InLedger(other));
}

TEST_F(ShredTest, TheSameIdentifierLaterGetsANewKeyAndCannotReadTheOldParts) {
  NewRecord r;
  r.kind = "request";
  r.personal = {{"anna@example.org", {{"name", "Anna"}}},
                {"ben@example.org", {{"name", "Ben"}}}};
  uint64_t old_id = *engine_->CreateRecord(*owner_, r);
  const std::string old_subject =
      *engine_->FindSubject(*admin_, "anna@example.org");
  ASSERT_TRUE(engine_->ShredSubject(*admin_, old_subject).ok());

  uint64_t new_id = CreateRecord("anna@example.org");
  const std::string new_subject =
      *engine_->FindSubject(*admin_, "anna@example.org");
  EXPECT_NE(new_subject, old_subject);
  EXPECT_EQ(SubjectOf(new_id), new_subject);
  auto old_view = engine_->GetRecord(*owner_, old_id);
  ASSERT_EQ(old_view->parts.size(), 1u);
  EXPECT_EQ(old_view->parts[0].subject_identifier, "ben@example.org");
}

TEST_F(ShredTest, ARecordErasedByShreddingCannotBeErasedAgain) {
  uint64_t id = CreateRecord("anna@example.org");
  ASSERT_TRUE(engine_->ShredSubject(*admin_, SubjectOf(id)).ok());
  EXPECT_EQ(engine_->EraseRecord(*admin_, id).code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(ShredTest, ARefusedCreateLeavesNoKeyInTheKeystore) {
  NewRecord r;
  r.kind = "request";
  r.personal = {{"new@example.org", {}}, {"new@example.org", {}}};
  ASSERT_EQ(engine_->CreateRecord(*owner_, r).error().code(),
            StatusCode::kInvalidArgument);
  Close();
  std::unique_ptr<leveldb::DB> db = OpenRaw("keystore");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(CountKeys(*db, "k:"), 0);
}

// A record whose subject's key cannot be read is DataLoss only to those
// who could see the record: anyone else is answered NotFound, as for a
// record that does not exist, before any key is looked up (security
// review helper-95, finding 5: the key was unwrapped, and its failure
// returned, before visibility was decided).
TEST_F(ShredTest, AnUnreadableKeyIsNotFoundToThoseWhoMayNotSeeTheRecord) {
  const uint64_t id = CreateRecord("anna@example.org", {"authority-b"});
  const std::string subject = SubjectOf(id);
  Close();
  {
    std::unique_ptr<leveldb::DB> db = OpenRaw("keystore");
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(
        db->Put(leveldb::WriteOptions(), "k:" + subject, "garbage").ok());
  }
  ReopenAll();
  const Actor stranger = *engine_->ActorFor("authority-c");
  const Actor auditor = *engine_->ActorFor("auditor");
  const Actor grantee = *engine_->ActorFor("authority-b");
  const std::string missing =
      engine_->GetRecord(stranger, id + 1000).error().ToString();
  EXPECT_EQ(missing, "NotFound: record not found");
  EXPECT_EQ(engine_->GetRecord(stranger, id).error().ToString(), missing);
  EXPECT_EQ(engine_->GetRecord(auditor, id).error().ToString(), missing);
  EXPECT_EQ(engine_->Close(stranger, id).ToString(), missing);
  // Those who see it learn that it cannot be read.
  EXPECT_EQ(engine_->GetRecord(*owner_, id).error().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(engine_->GetRecord(grantee, id).error().code(),
            StatusCode::kDataLoss);
}

TEST_F(ShredTest, OnlyAdminsShredAndOnlyOnce) {
  uint64_t id = CreateRecord();
  const std::string subject = SubjectOf(id);
  EXPECT_EQ(engine_->ShredSubject(*owner_, subject).code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(engine_->ShredSubject(*admin_, "s-nobody").code(),
            StatusCode::kNotFound);
  ASSERT_TRUE(engine_->ShredSubject(*admin_, subject).ok());
  EXPECT_EQ(engine_->ShredSubject(*admin_, subject).code(),
            StatusCode::kNotFound);
}

// The crash window of the documented write order: the intent is in the
// records database, the key not yet destroyed. The next Open must finish
// the shred before anything can be read.
TEST_F(ShredTest, AShredInterruptedAfterItsIntentIsFinishedAtOpen) {
  uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  Close();
  {
    std::unique_ptr<leveldb::DB> db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    std::string value;
    ASSERT_TRUE(
        db->Get(leveldb::ReadOptions(), keys::Subject(subject), &value).ok());
    codec::StoredSubject s = *codec::DecodeSubject(value);
    s.shredded = true;
    s.shredded_at_micros = ToMicros(clock_.Now());
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), keys::Subject(subject),
                        codec::EncodeSubject(s))
                    .ok());
    ASSERT_TRUE(
        db->Put(leveldb::WriteOptions(), keys::ShredQueue(subject), "").ok());
  }
  const std::string wrapped = WrappedKeyBytes(subject);
  ReopenAll();
  EXPECT_EQ(engine_->GetRecord(*admin_, id)->state, RecordState::kErased);
  EXPECT_EQ(engine_->GetRecord(*owner_, id).error().code(),
            StatusCode::kNotFound);
  Close();
  EXPECT_EQ(ReadAllFiles(dir_ + "/keystore").find(wrapped), std::string::npos);
}

// A shred waits for one synchronous write: the keystore's, which destroys
// the key and records the intent; the records-side write is not synced.
TEST_F(ShredTest, AShredWaitsForOneSynchronousWrite) {
  uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  // LevelDB's own synced log writes, per database; the group-commit
  // fdatasyncs of the records database do not pass through the Env:
  // Engine::TEST_SyncCount counts those.
  FaultEnv env;
  Options options = MakeOptions();
  options.env = &env;
  options.sync_writes = true;  // Even so: the shred's records side is not.
  ReopenWith(options);
  const int keystore_before = env.keystore.syncs,
            records_before = env.records.syncs;
  const uint64_t groups_before = engine_->TEST_SyncCount();

  ASSERT_TRUE(engine_->ShredSubject(*admin_, subject).ok());

  EXPECT_EQ(env.keystore.syncs - keystore_before, 1);
  EXPECT_EQ(env.records.syncs - records_before, 0);
  EXPECT_EQ(engine_->TEST_SyncCount() - groups_before, 0u);
  engine_.reset();  // Before `env`.
}

// The keystore intent stays until the records side is known durable: it
// is there after the shred (a crash here: the records write survives a
// process's death), and the next Open, finding the subject shredded,
// drops it, and its bytes leave the keystore's files with the key's.
TEST_F(ShredTest, TheKeystoreIntentIsDroppedOnceTheRecordsSideIsDurable) {
  uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  ASSERT_TRUE(engine_->ShredSubject(*admin_, subject).ok());
  Close();
  std::string intent;
  {
    std::unique_ptr<leveldb::DB> keystore = OpenRaw("keystore");
    ASSERT_NE(keystore, nullptr);
    EXPECT_TRUE(
        keystore->Get(leveldb::ReadOptions(), "i:" + subject, &intent).ok());
    EXPECT_EQ(CountKeys(*keystore, "k:" + subject), 0);
  }
  ASSERT_GT(intent.size(), 9u);
  EXPECT_NE(ReadAllFiles(dir_ + "/keystore").find(intent), std::string::npos);
  ReopenAll();
  EXPECT_EQ(engine_->FindSubject(*admin_, "anna@example.org").error().code(),
            StatusCode::kNotFound);
  Close();
  {
    std::unique_ptr<leveldb::DB> keystore = OpenRaw("keystore");
    ASSERT_NE(keystore, nullptr);
    EXPECT_EQ(CountKeys(*keystore, "i:"), 0);
  }
  // (The MANIFEST may name "i:<subject>" as an old table's bound until the
  // next open, as it does "k:<subject>": docs/storage.md, "Deletion bound".)
  EXPECT_EQ(ReadAllFiles(dir_ + "/keystore").find(intent), std::string::npos);
}

// CompleteShreds drops the intents too (after syncing the records side).
TEST_F(ShredTest, CompleteShredsDropsTheKeystoreIntent) {
  uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  ASSERT_TRUE(engine_->ShredSubject(*admin_, subject).ok());
  ASSERT_TRUE(engine_->CompleteShreds(0).has_value());
  Close();
  std::unique_ptr<leveldb::DB> keystore = OpenRaw("keystore");
  ASSERT_NE(keystore, nullptr);
  EXPECT_EQ(CountKeys(*keystore, "i:"), 0);
}

// The crash window of the one synchronous write: a power loss after the
// keystore's write (durable: key destroyed, ledger and intent written)
// loses the records side, which was not synced (simulated: the records
// database is put back as it was on disk before the shred, the keystore
// kept as the shred left it). The next Open writes that side again from
// the intent: the identifier no longer finds the subject, its sealed
// identifier is cleared, the shred is queued, and the shred event is in
// the history (without a sealed part: the key is gone).
TEST_F(ShredTest, AShredWhoseRecordsWriteIsLostIsFinishedAtOpen) {
  uint64_t id = CreateRecord("anna@example.org");
  const std::string subject = SubjectOf(id);
  auto chain_before = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(chain_before.has_value());
  const std::string records = dir_ + "/records";
  const std::string saved = dir_ + "/records-before-shred";
  std::filesystem::copy(records, saved,
                        std::filesystem::copy_options::recursive);
  const Timestamp shredded_at = clock_.Now();
  ASSERT_TRUE(engine_->ShredSubject(*admin_, subject).ok());
  Close();
  std::filesystem::remove_all(records);
  std::filesystem::rename(saved, records);
  clock_.Advance(std::chrono::hours(1));

  ReopenAll();
  EXPECT_EQ(engine_->FindSubject(*admin_, "anna@example.org").error().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(engine_->GetRecord(*owner_, id).error().code(),
            StatusCode::kNotFound);
  auto erased = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(erased.has_value()) << erased.error().ToString();
  EXPECT_EQ(erased->state, RecordState::kErased);
  EXPECT_EQ(erased->erased_at, shredded_at);
  auto chain = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->ok) << chain->problem;
  EXPECT_EQ(chain->head_seq, chain_before->head_seq + 1);  // The shred event.
  // A new subject for the same identifier is a new one.
  const uint64_t again = CreateRecord("anna@example.org");
  EXPECT_NE(SubjectOf(again), subject);
  Close();
  {
    std::unique_ptr<leveldb::DB> db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    std::string value;
    ASSERT_TRUE(
        db->Get(leveldb::ReadOptions(), keys::Subject(subject), &value).ok());
    codec::StoredSubject s = *codec::DecodeSubject(value);
    EXPECT_TRUE(s.shredded);
    EXPECT_EQ(s.shredded_at_micros, ToMicros(shredded_at));
    EXPECT_TRUE(s.sealed_identifier.empty());
    EXPECT_TRUE(
        db->Get(leveldb::ReadOptions(), keys::ShredQueue(subject), &value)
            .ok());
  }
  {
    std::unique_ptr<leveldb::DB> keystore = OpenRaw("keystore");
    ASSERT_NE(keystore, nullptr);
    EXPECT_EQ(CountKeys(*keystore, "i:"), 0);
    EXPECT_EQ(CountKeys(*keystore, "k:" + subject), 0);
  }
  ReopenAll();
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  auto report = engine_->VerifyErasure(*admin_);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  // The sealed identifier, the wrapped key (its witness from the intent)
  // and the record's part: all witnessed, none left in any file.
  EXPECT_EQ(report->witnesses, 3u);
  EXPECT_EQ(report->found, 0u);
}

TEST_F(ShredTest, ShredCostDoesNotTouchTheSubjectsRecords) {
  // The shred itself rewrites no record: until CompleteShreds runs, the
  // stored records are as they were (their state is derived at read time).
  std::vector<uint64_t> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(CreateRecord("anna@example.org"));
  ASSERT_TRUE(engine_->ShredSubject(*admin_, SubjectOf(ids[0])).ok());
  Close();
  std::unique_ptr<leveldb::DB> db = OpenRaw("records");
  ASSERT_NE(db, nullptr);
  for (uint64_t id : ids) {
    const std::string key = keys::Record(id);
    std::string value;
    ASSERT_TRUE(db->Get(leveldb::ReadOptions(), key, &value).ok());
    EXPECT_EQ(codec::DecodeRecord(value)->state, RecordState::kActive);
  }
}

}  // namespace
}  // namespace custos::testing
