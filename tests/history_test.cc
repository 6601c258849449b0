// The access history (DESIGN section 5): events appended with the change,
// sealed per subject, chained, queried per subject, pruned to a checkpoint.
// Against a real LevelDB in a temporary directory, with real keys.

#include "storage/history.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/iterator.h>
#include <leveldb/write_batch.h>
#include <stdlib.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "crypto/aead.h"
#include "crypto/keyed_hash.h"
#include "crypto/secret_key.h"
#include "schema/history.capnp.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"

namespace custos {
namespace {

using std::chrono::hours;

// 2026-08-31T12:00:00Z.
Timestamp T0() {
  return Timestamp(std::chrono::sys_days(std::chrono::year(2026) /
                                         std::chrono::August / 31) +
                   hours(12));
}

std::string EventKey(uint64_t seq) { return keys::Event(seq); }

const std::string kIndex(keys::kHistoryIndexPrefix);
const std::string kReverse(keys::kHistoryReversePrefix);
const std::string kEvents(keys::kEventPrefix);

class HistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custos-history-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    audit_bytes_ = crypto::SecretKey::Generate();
    keys_["s-anna"] = std::make_shared<const crypto::SecretKey>(
        crypto::SecretKey::Generate());
    keys_["s-ben"] = std::make_shared<const crypto::SecretKey>(
        crypto::SecretKey::Generate());
    lookup_ = [this](const std::string& id) -> Result<SharedKey> {
      ++lookups_;
      auto it = keys_.find(id);
      if (it == keys_.end()) return SharedKey();
      return it->second;
    };
    OpenAll();
  }

  void TearDown() override {
    CloseAll();
    std::filesystem::remove_all(dir_);
  }

  void OpenAll() {
    // Opened as the engine opens its databases (no block compression): a
    // Snappy-compressed table may store the first bytes of a clear string
    // as a back-reference, which made the byte scans' controls fail about
    // once in 200 runs.
    auto db = OpenLevelDb(dir_, /*create_if_missing=*/true,
                          leveldb::Env::Default(), LevelDbTuning());
    ASSERT_TRUE(db.has_value()) << db.error().ToString();
    db_ = std::move(*db);
    History::Options history_options;
    history_options.sync_writes = false;
    history_options.max_scan = max_scan_;
    auto history =
        History::Open(*db_, *crypto::SecretKey::FromBytes(audit_bytes_.bytes()),
                      history_options);
    ASSERT_TRUE(history.has_value()) << history.error().ToString();
    history_ = std::move(*history);
  }

  void CloseAll() {
    history_.reset();
    db_.reset();
  }

  // Stages, writes and commits; returns the Pending.
  History::Pending Append(const std::vector<Event>& events) {
    leveldb::WriteBatch batch;
    auto pending = history_->Stage(batch, events, lookup_);
    EXPECT_TRUE(pending.has_value()) << pending.error().ToString();
    if (!pending.has_value()) return {};
    EXPECT_TRUE(db_->Write(leveldb::WriteOptions(), &batch).ok());
    history_->Commit(*pending);
    return *pending;
  }

  // An event about record `record_id` concerning `subjects`, at T0 + `hour`.
  static Event Read(uint64_t record_id, std::vector<std::string> subjects,
                    int hour = 0) {
    Event e;
    e.at = T0() + hours(hour);
    e.principal_id = "officer-1";
    e.principal_name = "Olga Officer";
    e.action = EventAction::kReadRestricted;
    e.record_id = record_id;
    e.record_kind = "request";
    e.record_state = RecordState::kBlocked;
    e.subject_ids = std::move(subjects);
    e.purpose = Purpose{PurposeKind::kPublicInterest,
                        "court case 12/2026 r" + std::to_string(record_id)};
    e.fields = {"name", "address"};
    return e;
  }

  // Appends `n` events, one per hour, record ids 1..n, concerning Anna.
  void AppendMany(int n) {
    for (int i = 1; i <= n; ++i) Append({Read(i, {"s-anna"}, i)});
  }

  std::string RawGet(const std::string& key) {
    std::string value;
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), key, &value);
    EXPECT_TRUE(s.ok()) << key << ": " << s.ToString();
    return value;
  }
  bool RawHas(const std::string& key) {
    std::string value;
    return db_->Get(leveldb::ReadOptions(), key, &value).ok();
  }
  void RawPut(const std::string& key, const std::string& value) {
    ASSERT_TRUE(db_->Put(leveldb::WriteOptions(), key, value).ok());
  }
  void RawDelete(const std::string& key) {
    ASSERT_TRUE(db_->Delete(leveldb::WriteOptions(), key).ok());
  }
  size_t CountPrefix(const std::string& prefix) {
    size_t n = 0;
    std::unique_ptr<leveldb::Iterator> it(
        db_->NewIterator(leveldb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      ++n;
    }
    return n;
  }

  ChainReport VerifyOrDie() {
    auto report = history_->Verify();
    EXPECT_TRUE(report.has_value()) << report.error().ToString();
    return report.value_or(ChainReport{});
  }

  HistoryPage Query(const std::string& subject, uint64_t after_seq = 0,
                    uint32_t limit = 100) {
    auto page =
        history_->ForSubject(subject, T0() - hours(1000), T0() + hours(1000),
                             after_seq, limit, lookup_);
    EXPECT_TRUE(page.has_value()) << page.error().ToString();
    return page.value_or(HistoryPage{});
  }

  static std::vector<uint64_t> Seqs(const HistoryPage& page) {
    std::vector<uint64_t> seqs;
    for (const auto& e : page.entries) seqs.push_back(e.header.seq);
    return seqs;
  }

  std::string dir_;
  crypto::SecretKey audit_bytes_ = crypto::SecretKey::Generate();
  std::map<std::string, SharedKey> keys_;
  KeyLookup lookup_;
  int lookups_ = 0;
  size_t max_scan_ = 10000;
  std::unique_ptr<leveldb::DB> db_;
  std::unique_ptr<History> history_;
};

// ---- Names -----------------------------------------------------------------

TEST(EventActionNameTest, EveryActionHasItsStableName) {
  const std::vector<std::pair<EventAction, std::string_view>> expected = {
      {EventAction::kCreate, "create"},
      {EventAction::kRead, "read"},
      {EventAction::kReadRestricted, "read_restricted"},
      {EventAction::kRectify, "rectify"},
      {EventAction::kFlag, "flag"},
      {EventAction::kContest, "contest"},
      {EventAction::kGrant, "grant"},
      {EventAction::kClose, "close"},
      {EventAction::kWithdraw, "withdraw"},
      {EventAction::kBlock, "block"},
      {EventAction::kErase, "erase"},
      {EventAction::kExport, "export"},
      {EventAction::kHoldSet, "hold_set"},
      {EventAction::kHoldReleased, "hold_released"},
      {EventAction::kShred, "shred"},
      {EventAction::kReport, "report"},
      {EventAction::kRotateMasterKey, "rotate_master_key"},
      {EventAction::kRotateKek, "rotate_kek"},
      {EventAction::kRekey, "rekey"},
      {EventAction::kCredentialRotated, "credential_rotated"},
      {EventAction::kBackup, "backup"},
      {EventAction::kRestore, "restore"},
      {EventAction::kExpireBackupKeys, "expire_backup_keys"},
      {EventAction::kExportRestoreKit, "export_restore_kit"},
      {EventAction::kBreachScope, "breach_scope"},
      {EventAction::kAccessHistory, "access_history"},
  };
  for (const auto& [action, name] : expected) {
    EXPECT_EQ(EventActionName(action), name);
  }
  EXPECT_EQ(EventActionName(static_cast<EventAction>(99)), "unknown");
}

// ---- Appending
// ---------------------------------------------------------------

TEST_F(HistoryTest, StageGivesConsecutiveSeqsAndCommitMovesTheHead) {
  EXPECT_EQ(history_->head().last_seq, 0u);
  EXPECT_EQ(history_->head().link, crypto::kChainGenesis);
  History::Pending first =
      Append({Read(1, {"s-anna"}), Read(2, {"s-anna", "s-ben"})});
  EXPECT_EQ(first.previous_seq, 0u);
  EXPECT_EQ(first.first_seq, 1u);
  EXPECT_EQ(first.last_seq, 2u);
  EXPECT_EQ(history_->head().last_seq, 2u);
  EXPECT_EQ(history_->head().link, first.link);
  History::Pending second = Append({Read(3, {"s-ben"})});
  EXPECT_EQ(second.first_seq, 3u);
  EXPECT_EQ(second.last_seq, 3u);
  EXPECT_TRUE(RawHas(EventKey(1)));
  EXPECT_TRUE(RawHas(EventKey(3)));
  EXPECT_FALSE(RawHas(EventKey(4)));
}

TEST_F(HistoryTest, AnUnwrittenStageLeavesTheHeadAndTheNextStageReusesSeqs) {
  Append({Read(1, {"s-anna"})});
  const History::Head before = history_->head();
  {
    // The caller's write "fails": it drops the batch and does not Commit.
    leveldb::WriteBatch batch;
    auto pending = history_->Stage(batch, {Read(2, {"s-anna"})}, lookup_);
    ASSERT_TRUE(pending.has_value());
    EXPECT_EQ(pending->first_seq, 2u);
  }
  EXPECT_EQ(history_->head().last_seq, before.last_seq);
  EXPECT_EQ(history_->head().link, before.link);
  EXPECT_FALSE(RawHas(EventKey(2)));
  History::Pending next = Append({Read(3, {"s-anna"})});
  EXPECT_EQ(next.first_seq, 2u);
  EXPECT_TRUE(VerifyOrDie().ok());
  EXPECT_EQ(Seqs(Query("s-anna")), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(Query("s-anna").entries[1].header.record_id, 3u);
}

TEST_F(HistoryTest, AStalePendingIsIgnoredByCommit) {
  leveldb::WriteBatch b1;
  auto p1 = history_->Stage(b1, {Read(1, {"s-anna"})}, lookup_);
  ASSERT_TRUE(p1.has_value());
  ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &b1).ok());
  history_->Commit(*p1);
  const History::Head head = history_->head();
#ifdef NDEBUG  // In debug builds a stale Commit is an assertion failure.
  history_->Commit(*p1);
  EXPECT_EQ(history_->head().last_seq, head.last_seq);
  EXPECT_EQ(history_->head().link, head.link);
#endif
  EXPECT_EQ(head.last_seq, 1u);
}

TEST_F(HistoryTest, StageRefusesBadEventsAndLeavesTheBatchUntouched) {
  leveldb::WriteBatch batch;
  batch.Put("r:unrelated", "x");
  const size_t size = batch.ApproximateSize();

  Event no_principal = Read(1, {"s-anna"});
  no_principal.principal_id.clear();
  auto r1 =
      history_->Stage(batch, {Read(1, {"s-anna"}), no_principal}, lookup_);
  ASSERT_FALSE(r1.has_value());
  EXPECT_EQ(r1.error().code(), StatusCode::kInvalidArgument);

  auto r2 = history_->Stage(batch, {Read(1, {"s-anna", "s-anna"})}, lookup_);
  ASSERT_FALSE(r2.has_value());
  EXPECT_EQ(r2.error().code(), StatusCode::kInvalidArgument);

  auto r3 = history_->Stage(batch, {Read(1, {""})}, lookup_);
  ASSERT_FALSE(r3.has_value());
  EXPECT_EQ(r3.error().code(), StatusCode::kInvalidArgument);

  Event bad_action = Read(1, {"s-anna"});
  bad_action.action = static_cast<EventAction>(77);
  auto r4 = history_->Stage(batch, {bad_action}, lookup_);
  ASSERT_FALSE(r4.has_value());
  EXPECT_EQ(r4.error().code(), StatusCode::kInvalidArgument);

  Event mismatched = Read(1, {"s-anna", "s-ben"});
  mismatched.fields_by_subject = {{"name"}};
  auto r5 = history_->Stage(batch, {mismatched}, lookup_);
  ASSERT_FALSE(r5.has_value());
  EXPECT_EQ(r5.error().message(),
            "an event's fields by subject do not match its subjects");

  // An action about no subject (pruning never looks for one in it) naming
  // a subject; the same action about none is staged.
  Event backup_of_anna = Read(1, {"s-anna"});
  backup_of_anna.action = EventAction::kBackup;
  backup_of_anna.record_id = 0;
  auto r6 = history_->Stage(batch, {backup_of_anna}, lookup_);
  ASSERT_FALSE(r6.has_value());
  EXPECT_EQ(r6.error().ToString(),
            "InvalidArgument: a backup event is about no subject");
  for (EventAction action :
       {EventAction::kRotateMasterKey, EventAction::kRotateKek,
        EventAction::kPrincipalCreated, EventAction::kPrincipalRevoked,
        EventAction::kCredentialRotated, EventAction::kRestore,
        EventAction::kExpireBackupKeys, EventAction::kExportRestoreKit,
        EventAction::kPolicySet}) {
    Event e = backup_of_anna;
    e.action = action;
    auto refused = history_->Stage(batch, {e}, lookup_);
    ASSERT_FALSE(refused.has_value()) << EventActionName(action);
    EXPECT_EQ(refused.error().code(), StatusCode::kInvalidArgument);
  }

  EXPECT_EQ(batch.ApproximateSize(), size);
  EXPECT_EQ(history_->head().last_seq, 0u);

  Event backup = backup_of_anna;
  backup.subject_ids.clear();
  leveldb::WriteBatch about_none;
  EXPECT_TRUE(history_->Stage(about_none, {backup}, lookup_).has_value());
}

TEST_F(HistoryTest, AKeyLookupErrorIsReturnedAndTheBatchIsUntouched) {
  KeyLookup failing = [](const std::string& id) -> Result<SharedKey> {
    if (id == "s-ben") return Fail(Status::DataLoss("keystore is corrupt"));
    return SharedKey();
  };
  leveldb::WriteBatch batch;
  const size_t size = batch.ApproximateSize();
  auto pending = history_->Stage(
      batch, {Read(1, {"s-anna"}), Read(2, {"s-ben"})}, failing);
  ASSERT_FALSE(pending.has_value());
  EXPECT_EQ(pending.error().code(), StatusCode::kDataLoss);
  EXPECT_EQ(pending.error().message(), "keystore is corrupt");
  EXPECT_EQ(batch.ApproximateSize(), size);
}

// As above, into a batch that already holds the caller's own writes (Stage
// then builds apart and appends): they are left exactly as they were.
TEST_F(HistoryTest, AKeyLookupErrorLeavesTheCallersWritesInTheBatch) {
  KeyLookup failing = [](const std::string& id) -> Result<SharedKey> {
    if (id == "s-ben") return Fail(Status::DataLoss("keystore is corrupt"));
    return SharedKey();
  };
  leveldb::WriteBatch batch;
  batch.Put("r:unrelated", "x");
  const size_t size = batch.ApproximateSize();
  auto pending = history_->Stage(
      batch, {Read(1, {"s-anna"}), Read(2, {"s-ben"})}, failing);
  ASSERT_FALSE(pending.has_value());
  EXPECT_EQ(pending.error().code(), StatusCode::kDataLoss);
  EXPECT_EQ(batch.ApproximateSize(), size);
  ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &batch).ok());
  EXPECT_EQ(RawGet("r:unrelated"), "x");
  EXPECT_FALSE(RawHas(keys::Event(1)));
}

TEST_F(HistoryTest, AnEmptyStageWritesNothing) {
  leveldb::WriteBatch batch;
  const size_t size = batch.ApproximateSize();
  auto pending = history_->Stage(batch, {}, lookup_);
  ASSERT_TRUE(pending.has_value());
  EXPECT_GT(pending->first_seq, pending->last_seq);
  EXPECT_EQ(batch.ApproximateSize(), size);
  history_->Commit(*pending);
  EXPECT_EQ(history_->head().last_seq, 0u);
}

TEST_F(HistoryTest, TheHeadSurvivesReopening) {
  AppendMany(3);
  const History::Head head = history_->head();
  CloseAll();
  OpenAll();
  EXPECT_EQ(history_->head().last_seq, 3u);
  EXPECT_EQ(history_->head().link, head.link);
  Append({Read(4, {"s-anna"})});
  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.verified, 4u);
}

// The head is re-encoded and compared on every Open (no byte may change
// unnoticed), so its encoding must stay the one earlier builds wrote: a
// message whose one segment came from MallocMessageBuilder's default-sized
// first segment. A head encoded any other way (a second segment, other
// padding) would make every existing store fail to open.
TEST_F(HistoryTest, TheHeadIsStoredAsEarlierBuildsEncodedIt) {
  AppendMany(2);
  const History::Head head = history_->head();
  capnp::MallocMessageBuilder message(128);
  auto b = message.initRoot<schema::history::Head>();
  b.setLastSeq(head.last_seq);
  b.setLink(capnp::Data::Reader(head.link.data(), head.link.size()));
  const kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  const std::string expected(reinterpret_cast<const char*>(words.begin()),
                             words.size() * sizeof(capnp::word));
  EXPECT_EQ(RawGet(std::string(keys::kHistoryHead)), expected);
  CloseAll();
  OpenAll();
  EXPECT_EQ(history_->head().last_seq, 2u);
}

// A known answer: the chain's links are a function of the audit key and
// of each event's clear header (its canonical encoding), and, for events
// about subjects, of their parts' commitments (salted, so not fixed). For
// events about no subject nothing is random, so two such events under a
// fixed audit key give fixed links. The expected values were computed by
// this build; any change to them is a change of the stored format (the
// schema's header, the canonical encoding, a domain tag, the chain
// function) that every existing store's Verify would report as broken.
TEST_F(HistoryTest, TheLinksOfEventsAboutNoSubjectAreKnownAnswers) {
  CloseAll();
  std::array<uint8_t, 32> fixed{};
  for (size_t i = 0; i < fixed.size(); ++i) {
    fixed[i] = static_cast<uint8_t>(i + 1);
  }
  audit_bytes_ = *crypto::SecretKey::FromBytes(fixed);
  OpenAll();
  Append({Read(7, {}, 0)});
  const crypto::Digest first = history_->head().link;
  Append({Read(8, {}, 1)});
  EXPECT_EQ(crypto::ToHex(first),
            "69e7351bd9e151c47ecd3aa8eab4cdb0e1c22b9021c2962e406ba604ff8ed799");
  EXPECT_EQ(crypto::ToHex(history_->head().link),
            "1654b7521a032f67388e6b10900ac05e358719252d09401b1bca66889c5ae058");
  EXPECT_TRUE(VerifyOrDie().ok());
}

// The same for an event whose clear header is larger than the stack buffer
// Stage canonicalises headers in (64 words): a long principal name and
// many clear field names. The expected values were computed by the build
// before that buffer (capnp::canonicalize), so they show headers of either
// size still give the links existing stores hold.
TEST_F(HistoryTest, TheLinksOfEventsWithLargeClearHeadersAreKnownAnswers) {
  CloseAll();
  std::array<uint8_t, 32> fixed{};
  for (size_t i = 0; i < fixed.size(); ++i) {
    fixed[i] = static_cast<uint8_t>(2 * i + 1);
  }
  audit_bytes_ = *crypto::SecretKey::FromBytes(fixed);
  OpenAll();
  Event large = Read(7, {}, 0);
  large.principal_name = std::string(600, 'n');
  large.purpose->justification = std::string(300, 'j');
  for (int i = 0; i < 40; ++i) {
    large.fields.push_back("principal:field_" + std::to_string(i));
  }
  Append({large});
  const crypto::Digest first = history_->head().link;
  Append({Read(8, {}, 1)});  // A small one after it.
  EXPECT_EQ(crypto::ToHex(first),
            "fe1233de883380c3b2e44172629324b62e99df80e8038ab0efb0a7b76900ed78");
  EXPECT_EQ(crypto::ToHex(history_->head().link),
            "54108fb2d49eb43740dcbb406dc1649782c82a57bb069fa015879cf527fa23da");
  EXPECT_TRUE(VerifyOrDie().ok());
}

// A stored event's value is one segment exactly as large as its content
// (Verify re-encodes and compares it). Encoded by Stage with its segment on
// the stack (a small event) or on the heap (a large one), it is the very
// bytes Cap'n Proto's own builder and flat-array writer give.
TEST_F(HistoryTest, StoredEventsAreEncodedAsCapnProtoEncodesThem) {
  Event large = Read(2, {"s-anna", "s-ben"});
  large.purpose->justification = std::string(1024, 'j');
  for (int i = 0; i < 64; ++i) large.fields.push_back(std::string(40, 'f'));
  Append({Read(1, {"s-anna"}), large});
  for (uint64_t seq : {1u, 2u}) {
    const std::string stored = RawGet(keys::Event(seq));
    ASSERT_EQ(stored.size() % sizeof(capnp::word), 0u);
    std::vector<capnp::word> words(stored.size() / sizeof(capnp::word));
    std::memcpy(words.data(), stored.data(), stored.size());
    capnp::FlatArrayMessageReader reader(
        kj::arrayPtr(words.data(), words.size()));
    auto in = reader.getRoot<schema::history::StoredEvent>();
    ASSERT_TRUE(in.isEvent());
    const size_t payload = in.getEvent().size();
    if (seq == 2) {
      EXPECT_GT(payload, 256 * sizeof(capnp::word));  // The heap path.
    }
    capnp::MallocMessageBuilder message(
        static_cast<unsigned>(24 + (payload + 7) / 8),
        capnp::AllocationStrategy::FIXED_SIZE);
    auto out = message.initRoot<schema::history::StoredEvent>();
    out.setSeq(in.getSeq());
    out.setLink(in.getLink());
    out.setEvent(in.getEvent());
    out.setMac(in.getMac());
    const kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
    EXPECT_EQ(stored, std::string(reinterpret_cast<const char*>(flat.begin()),
                                  flat.size() * sizeof(capnp::word)))
        << seq;
  }
  EXPECT_TRUE(VerifyOrDie().ok());
}

TEST_F(HistoryTest, OpenRefusesACorruptHead) {
  CloseAll();
  {
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), dir_, &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(
        db->Put(leveldb::WriteOptions(), "m:history_head", "garbage!").ok());
    auto history = History::Open(*db, crypto::SecretKey::Generate());
    ASSERT_FALSE(history.has_value());
    EXPECT_EQ(history.error().code(), StatusCode::kDataLoss);
    ASSERT_TRUE(db->Delete(leveldb::WriteOptions(), "m:history_head").ok());
  }
  OpenAll();
}

// ---- Querying
// ----------------------------------------------------------------

TEST_F(HistoryTest, ForSubjectReturnsEveryPartOfTheEventDecoded) {
  Event created;
  created.at = T0();
  created.principal_id = "authority-a";
  created.principal_name = "Authority A";
  created.action = EventAction::kCreate;
  created.record_id = 7;
  created.record_kind = "alert";
  created.record_state = RecordState::kActive;
  created.subject_ids = {"s-anna"};
  created.fields = {"name", "birth_date"};
  Append({created, Read(7, {"s-anna"}, 5)});

  HistoryPage page = Query("s-anna");
  ASSERT_EQ(page.entries.size(), 2u);
  EXPECT_EQ(page.next_after_seq, 0u);
  const HistoryEntry& c = page.entries[0];
  EXPECT_EQ(c.header.seq, 1u);
  EXPECT_EQ(c.header.at, T0());
  EXPECT_EQ(c.header.principal_id, "authority-a");
  EXPECT_EQ(c.header.principal_name, "Authority A");
  EXPECT_EQ(c.header.action, EventAction::kCreate);
  EXPECT_EQ(c.header.record_id, 7u);
  EXPECT_EQ(c.header.record_kind, "alert");
  EXPECT_EQ(c.header.record_state, RecordState::kActive);
  EXPECT_EQ(c.header.purpose_kind, std::nullopt);
  EXPECT_EQ(c.justification, "");
  EXPECT_EQ(c.fields, (std::vector<std::string>{"name", "birth_date"}));

  const HistoryEntry& r = page.entries[1];
  EXPECT_EQ(r.header.seq, 2u);
  EXPECT_EQ(r.header.at, T0() + hours(5));
  EXPECT_EQ(r.header.principal_id, "officer-1");
  EXPECT_EQ(r.header.principal_name, "Olga Officer");
  EXPECT_EQ(r.header.action, EventAction::kReadRestricted);
  EXPECT_EQ(r.header.record_state, RecordState::kBlocked);
  EXPECT_EQ(r.header.purpose_kind, PurposeKind::kPublicInterest);
  EXPECT_EQ(r.justification, "court case 12/2026 r7");
  EXPECT_EQ(r.fields, (std::vector<std::string>{"name", "address"}));
}

// A part and an event larger than the first segment a message is built in
// (1 KiB): the longest justification and many field names, about two
// subjects. They are built in more segments and still read back whole,
// and the chain verifies.
TEST_F(HistoryTest, PartsAndEventsLargerThanOneSegmentReadBackWhole) {
  Event e = Read(9, {"s-anna", "s-ben"});
  e.purpose->justification = std::string(1024, 'j');
  e.fields.clear();
  for (int i = 0; i < 64; ++i) {
    e.fields.push_back("field_name_" + std::to_string(i) +
                       std::string(40, 'f'));
  }
  Append({e});

  for (const char* subject : {"s-anna", "s-ben"}) {
    HistoryPage page = Query(subject);
    ASSERT_EQ(page.entries.size(), 1u) << subject;
    EXPECT_EQ(page.entries[0].justification, e.purpose->justification);
    EXPECT_EQ(page.entries[0].fields, e.fields);
  }
  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.verified, 1u);
}

TEST_F(HistoryTest, EachSubjectsPartHoldsItsOwnFieldsWhenGiven) {
  Event e = Read(1, {"s-anna", "s-ben"});
  e.fields = {"name", "criminal_record"};
  e.fields_by_subject = {{"name"}, {"name", "criminal_record"}};
  Append({e});
  ASSERT_EQ(Query("s-anna").entries.size(), 1u);
  EXPECT_EQ(Query("s-anna").entries[0].fields,
            (std::vector<std::string>{"name"}));
  EXPECT_EQ(Query("s-ben").entries[0].fields,
            (std::vector<std::string>{"name", "criminal_record"}));
}

TEST_F(HistoryTest, ForSubjectReturnsOnlyThatSubjectsEventsInSeqOrder) {
  Append({Read(1, {"s-anna"}), Read(2, {"s-ben"})});
  Append({Read(3, {"s-ben", "s-anna"})});
  Append({Read(4, {"s-ben"})});
  EXPECT_EQ(Seqs(Query("s-anna")), (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(Seqs(Query("s-ben")), (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_TRUE(Query("s-nobody-with-a-key").entries.empty());
  keys_["s-carl"] =
      std::make_shared<const crypto::SecretKey>(crypto::SecretKey::Generate());
  EXPECT_TRUE(Query("s-carl").entries.empty());
}

TEST_F(HistoryTest, ForSubjectFiltersByTimeHalfOpen) {
  AppendMany(6);  // Event i at T0 + i hours.
  auto page = history_->ForSubject("s-anna", T0() + hours(2), T0() + hours(5),
                                   0, 100, lookup_);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(Seqs(*page), (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ(page->next_after_seq, 0u);
}

TEST_F(HistoryTest, ForSubjectPagesWithACursor) {
  AppendMany(5);
  HistoryPage p1 = Query("s-anna", 0, 2);
  EXPECT_EQ(Seqs(p1), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(p1.next_after_seq, 2u);
  HistoryPage p2 = Query("s-anna", p1.next_after_seq, 2);
  EXPECT_EQ(Seqs(p2), (std::vector<uint64_t>{3, 4}));
  EXPECT_EQ(p2.next_after_seq, 4u);
  HistoryPage p3 = Query("s-anna", p2.next_after_seq, 2);
  EXPECT_EQ(Seqs(p3), (std::vector<uint64_t>{5}));
  EXPECT_EQ(p3.next_after_seq, 0u);
  // Exactly `limit` left: the page knows there is nothing after it.
  HistoryPage exact = Query("s-anna", 3, 2);
  EXPECT_EQ(Seqs(exact), (std::vector<uint64_t>{4, 5}));
  EXPECT_EQ(exact.next_after_seq, 0u);
  EXPECT_TRUE(Query("s-anna", UINT64_MAX, 2).entries.empty());
}

TEST_F(HistoryTest, ForSubjectStopsAtTheScanLimitWithACursor) {
  CloseAll();
  max_scan_ = 3;
  OpenAll();
  AppendMany(5);
  // Only events at hours 4 and 5 match: the first page examines 3 entries
  // and finds nothing, but says where to go on.
  auto p1 = history_->ForSubject("s-anna", T0() + hours(4), T0() + hours(10), 0,
                                 100, lookup_);
  ASSERT_TRUE(p1.has_value());
  EXPECT_TRUE(p1->entries.empty());
  EXPECT_EQ(p1->next_after_seq, 3u);
  auto p2 = history_->ForSubject("s-anna", T0() + hours(4), T0() + hours(10),
                                 p1->next_after_seq, 100, lookup_);
  ASSERT_TRUE(p2.has_value());
  EXPECT_EQ(Seqs(*p2), (std::vector<uint64_t>{4, 5}));
  EXPECT_EQ(p2->next_after_seq, 0u);
}

TEST_F(HistoryTest, ForSubjectRefusesLimitZero) {
  auto page =
      history_->ForSubject("s-anna", T0(), T0() + hours(1), 0, 0, lookup_);
  ASSERT_FALSE(page.has_value());
  EXPECT_EQ(page.error().code(), StatusCode::kInvalidArgument);
}

TEST_F(HistoryTest, ForSubjectPassesOnAKeyLookupError) {
  Append({Read(1, {"s-anna"})});
  KeyLookup failing = [](const std::string&) -> Result<SharedKey> {
    return Fail(Status::Unavailable("keystore closing"));
  };
  auto page = history_->ForSubject("s-anna", T0() - hours(1), T0() + hours(1),
                                   0, 10, failing);
  ASSERT_FALSE(page.has_value());
  EXPECT_EQ(page.error().code(), StatusCode::kUnavailable);
}

TEST_F(HistoryTest, EventsOutliveTheRecordsTheyDescribe) {
  // The history knows nothing of records: a record created, read and erased
  // long ago still has its events, years later.
  Event created = Read(9, {"s-anna"}, 0);
  created.action = EventAction::kCreate;
  created.record_state = RecordState::kActive;
  created.purpose.reset();
  Event erased = Read(9, {"s-anna"}, 24 * 365 * 3);
  erased.action = EventAction::kErase;
  erased.record_state = RecordState::kErased;
  erased.purpose.reset();
  erased.fields.clear();
  Append({created});
  Append({Read(9, {"s-anna"}, 1)});
  Append({erased});
  auto page = history_->ForSubject("s-anna", T0() - hours(1),
                                   T0() + hours(24 * 365 * 5), 0, 10, lookup_);
  ASSERT_TRUE(page.has_value());
  ASSERT_EQ(page->entries.size(), 3u);
  EXPECT_EQ(page->entries[0].header.action, EventAction::kCreate);
  EXPECT_EQ(page->entries[1].header.action, EventAction::kReadRestricted);
  EXPECT_EQ(page->entries[2].header.action, EventAction::kErase);
  EXPECT_EQ(page->entries[2].header.record_state, RecordState::kErased);
  EXPECT_EQ(page->entries[2].header.record_id, 9u);
}

TEST_F(HistoryTest, ScanShowsClearHeadersAndTheClearPartsOfSubjectlessEvents) {
  Event shred;
  shred.at = T0();
  shred.principal_id = "admin";
  shred.principal_name = "Administrator";
  shred.action = EventAction::kShred;
  shred.purpose = Purpose{PurposeKind::kSubjectConsent, "erasure request 42"};
  shred.fields = {"all"};
  Append({shred, Read(3, {"s-anna", "s-ben"})});

  auto page = history_->Scan(0, 10);
  ASSERT_TRUE(page.has_value());
  ASSERT_EQ(page->entries.size(), 2u);
  const HistoryEntry& s = page->entries[0];
  EXPECT_EQ(s.header.action, EventAction::kShred);
  EXPECT_EQ(s.header.record_id, 0u);
  EXPECT_EQ(s.header.record_kind, "");
  EXPECT_EQ(s.header.record_state, std::nullopt);
  EXPECT_EQ(s.header.purpose_kind, PurposeKind::kSubjectConsent);
  EXPECT_EQ(s.justification, "erasure request 42");
  EXPECT_EQ(s.fields, (std::vector<std::string>{"all"}));
  EXPECT_EQ(s.sealed_parts, 0u);
  // An event about subjects shows nothing of theirs in clear.
  const HistoryEntry& r = page->entries[1];
  EXPECT_EQ(r.header.principal_id, "officer-1");
  EXPECT_EQ(r.header.purpose_kind, PurposeKind::kPublicInterest);
  EXPECT_EQ(r.justification, "");
  EXPECT_TRUE(r.fields.empty());
  EXPECT_EQ(r.sealed_parts, 2u);
}

// ---- Shredding
// -----------------------------------------------------------------

TEST_F(HistoryTest, AShreddedSubjectSeesNothingAndTheOtherSubjectStillSees) {
  Append({Read(1, {"s-anna", "s-ben"})});
  Append({Read(2, {"s-anna"})});
  ASSERT_EQ(Query("s-anna").entries.size(), 2u);
  keys_.erase("s-anna");  // The key is destroyed.

  HistoryPage anna = Query("s-anna");
  EXPECT_TRUE(anna.entries.empty());
  EXPECT_EQ(anna.next_after_seq, 0u);
  HistoryPage ben = Query("s-ben");
  ASSERT_EQ(ben.entries.size(), 1u);
  EXPECT_EQ(ben.entries[0].header.seq, 1u);
  EXPECT_EQ(ben.entries[0].justification, "court case 12/2026 r1");
  EXPECT_EQ(ben.entries[0].fields,
            (std::vector<std::string>{"name", "address"}));
}

TEST_F(HistoryTest, ASubjectShreddedBeforeStageGetsNoPart) {
  keys_.erase("s-anna");
  Append({Read(1, {"s-anna", "s-ben"})});
  auto scan = history_->Scan(0, 10);
  ASSERT_TRUE(scan.has_value());
  ASSERT_EQ(scan->entries.size(), 1u);
  EXPECT_EQ(scan->entries[0].sealed_parts, 1u);
  // Nor does the justification fall back to clear.
  EXPECT_EQ(scan->entries[0].justification, "");
  // A later key for the same id finds no index entry.
  keys_["s-anna"] =
      std::make_shared<const crypto::SecretKey>(crypto::SecretKey::Generate());
  EXPECT_TRUE(Query("s-anna").entries.empty());
  EXPECT_EQ(Seqs(Query("s-ben")), (std::vector<uint64_t>{1}));
}

TEST_F(HistoryTest, TheChainStillVerifiesAfterAShredAndItsIndexDrop) {
  AppendMany(3);
  Append({Read(4, {"s-anna", "s-ben"})});
  keys_.erase("s-anna");
  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.verified, 4u);

  // 4 of Anna's index entries, 1 of Ben's, each with its reverse entry.
  EXPECT_EQ(CountPrefix(kIndex), 5u);
  EXPECT_EQ(CountPrefix(kReverse), 5u);
  leveldb::WriteBatch batch;
  auto dropped = history_->DropSubjectIndex(batch, "s-anna", 3);
  ASSERT_TRUE(dropped.has_value());
  EXPECT_EQ(*dropped, 3u);
  ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &batch).ok());
  leveldb::WriteBatch batch2;
  EXPECT_EQ(*history_->DropSubjectIndex(batch2, "s-anna", 3), 1u);
  ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &batch2).ok());
  leveldb::WriteBatch batch3;
  EXPECT_EQ(*history_->DropSubjectIndex(batch3, "s-anna", 3), 0u);
  EXPECT_EQ(CountPrefix(kIndex), 1u);
  EXPECT_EQ(CountPrefix(kReverse), 1u);
  EXPECT_EQ(Seqs(Query("s-ben")), (std::vector<uint64_t>{4}));

  report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.verified, 4u);
}

// Every byte of every file of the database directory.
std::string AllFileBytes(const std::string& dir) {
  std::string all;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    all.append(std::istreambuf_iterator<char>(in),
               std::istreambuf_iterator<char>());
  }
  return all;
}

TEST_F(HistoryTest, NoFileHoldsASubjectsIdentifyingPartsInClear) {
  const std::string subject = "s33cc5c02c7da8d86e70d07bdaec8d367";
  keys_[subject] =
      std::make_shared<const crypto::SecretKey>(crypto::SecretKey::Generate());
  Event e = Read(1, {subject});
  e.principal_id = "control-principal-id";
  e.purpose->justification = "JUSTIFICATION-MARKER-7f3a";
  e.fields = {"FIELDNAME-MARKER-91bc"};
  Append({e});
  // Once in the log only, once also compacted into a table.
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "in the log" : "compacted");
    CloseAll();
    const std::string bytes = AllFileBytes(dir_);
    EXPECT_NE(bytes.find("control-principal-id"), std::string::npos);
    EXPECT_NE(bytes.find("Olga Officer"), std::string::npos);
    EXPECT_EQ(bytes.find(subject), std::string::npos);
    EXPECT_EQ(bytes.find("JUSTIFICATION-MARKER"), std::string::npos);
    EXPECT_EQ(bytes.find("FIELDNAME-MARKER"), std::string::npos);
    OpenAll();
    db_->CompactRange(nullptr, nullptr);
  }
  // And it is all still there for the subject.
  HistoryPage page = Query(subject);
  ASSERT_EQ(page.entries.size(), 1u);
  EXPECT_EQ(page.entries[0].justification, "JUSTIFICATION-MARKER-7f3a");
}

// ---- Tamper evidence
// -----------------------------------------------------------

TEST_F(HistoryTest, AnEmptyHistoryVerifies) {
  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.verified, 0u);
  EXPECT_EQ(report.head_seq, 0u);
  EXPECT_EQ(report.first_seq, 1u);
}

TEST_F(HistoryTest, AnIntactChainVerifiesAndReportsItsHead) {
  AppendMany(5);
  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.problem, ChainReport::Problem::kNone);
  EXPECT_EQ(report.first_broken, 0u);
  EXPECT_EQ(report.verified, 5u);
  EXPECT_EQ(report.stubs, 0u);
  EXPECT_EQ(report.head_seq, 5u);
  EXPECT_EQ(report.head_link, history_->head().link);
}

TEST_F(HistoryTest, FlippingAnyByteOfAStoredEventIsReportedAtItsSeq) {
  AppendMany(5);
  const std::string original = RawGet(EventKey(3));
  ASSERT_GT(original.size(), 100u);
  for (size_t i = 0; i < original.size(); ++i) {
    std::string tampered = original;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    RawPut(EventKey(3), tampered);
    ChainReport report = VerifyOrDie();
    ASSERT_FALSE(report.ok()) << "byte " << i;
    EXPECT_EQ(report.first_broken, 3u) << "byte " << i;
  }
  RawPut(EventKey(3), original);
  EXPECT_TRUE(VerifyOrDie().ok());
}

TEST_F(HistoryTest, ADeletedEventIsReportedAtItsSeq) {
  AppendMany(5);
  RawDelete(EventKey(3));
  ChainReport report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kMissing);
  EXPECT_EQ(report.first_broken, 3u);
  EXPECT_EQ(report.verified, 2u);
}

TEST_F(HistoryTest, ADeletedFirstEventIsReportedAtOne) {
  AppendMany(3);
  RawDelete(EventKey(1));
  ChainReport report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kMissing);
  EXPECT_EQ(report.first_broken, 1u);
}

TEST_F(HistoryTest, ATruncatedTailIsReportedAgainstTheHead) {
  AppendMany(5);
  RawDelete(EventKey(5));
  RawDelete(EventKey(4));
  ChainReport report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kHead);
  EXPECT_EQ(report.first_broken, 4u);  // The first event the head names
                                       // that is gone.
  EXPECT_EQ(report.verified, 3u);
  EXPECT_EQ(report.head_seq, 5u);
}

// A head naming `seq` with the link stored in `stored_event`.
std::string ForgedHead(const std::string& stored_event, uint64_t seq) {
  capnp::MallocMessageBuilder message;
  auto h = message.initRoot<schema::history::Head>();
  h.setLastSeq(seq);
  kj::Array<capnp::word> words =
      kj::heapArray<capnp::word>(stored_event.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), stored_event.data(), stored_event.size());
  capnp::FlatArrayMessageReader reader(words);
  h.setLink(reader.getRoot<schema::history::StoredEvent>().getLink());
  auto flat = capnp::messageToFlatArray(message);
  return std::string(reinterpret_cast<const char*>(flat.asBytes().begin()),
                     flat.asBytes().size());
}

TEST_F(HistoryTest, AHeadMovedBackOrDeletedIsReported) {
  AppendMany(4);
  const std::string head_value = RawGet("m:history_head");
  // The head rewritten to name event 3 with event 3's link: only an
  // out-of-band copy of the head can catch a truncation that also rewrites
  // the head, but an extra event past the head is caught.
  RawPut("m:history_head", ForgedHead(RawGet(EventKey(3)), 3));
  ChainReport report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kHead);
  EXPECT_EQ(report.first_broken, 4u);

  // The right seq with another event's link.
  RawPut("m:history_head", ForgedHead(RawGet(EventKey(3)), 4));
  report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kHead);
  EXPECT_EQ(report.first_broken, 4u);
  EXPECT_EQ(report.verified, 4u);

  RawDelete("m:history_head");
  report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kHead);
  EXPECT_EQ(report.first_broken, 1u);

  RawPut("m:history_head", head_value);
  EXPECT_TRUE(VerifyOrDie().ok());
}

// A tail cut with the head rewritten to match verifies on its own (above);
// a head recorded out of band before the cut is what shows it.
TEST_F(HistoryTest, ATailCutAndReheadedIsCaughtThroughAHeadRecordedBefore) {
  AppendMany(4);
  const ChainReport at_four = VerifyOrDie();
  ASSERT_TRUE(at_four.ok());
  const std::string head_at_four = RawGet("m:history_head");
  AppendMany(2);
  const ChainReport at_six = VerifyOrDie();
  ASSERT_TRUE(at_six.ok());
  ASSERT_EQ(at_six.head_seq, 6u);
  const ChainAnchor four{.seq = 4, .link = at_four.head_link};
  const ChainAnchor six{.seq = 6, .link = at_six.head_link};
  ChainReport report =
      history_->Verify(nullptr, nullptr, std::vector<ChainAnchor>{four, six})
          .value();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.anchors_matched, 2u);
  EXPECT_EQ(report.anchors_folded, 0u);

  // Events 5 and 6 deleted, the head put back as it was at 4.
  RawDelete(EventKey(5));
  RawDelete(EventKey(6));
  RawPut("m:history_head", head_at_four);
  report = VerifyOrDie();
  EXPECT_TRUE(report.ok());  // Nothing else can tell.
  report =
      history_->Verify(nullptr, nullptr, std::vector<ChainAnchor>{six}).value();
  EXPECT_EQ(report.problem, ChainReport::Problem::kAnchor);
  EXPECT_EQ(ChainProblemName(report.problem), "anchor");
  EXPECT_EQ(report.first_broken, 5u);  // The first event cut.
  EXPECT_EQ(report.verified, 4u);
  // The head recorded at 4 still holds.
  report = history_->Verify(nullptr, nullptr, std::vector<ChainAnchor>{four})
               .value();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.anchors_matched, 1u);
}

// An anchor whose seq is there with another link (another store's head, or
// events rewritten under the audit key) is reported at its seq, after the
// anchors before it matched; duplicates are each counted.
// The cut an intruder makes: the tail deleted, the head put back, and the
// store used again, so new events take the cut seqs. The recorded head at
// 6 fails at its own seq; the one at 4 is reported as the last that held.
TEST_F(HistoryTest, ACutTailWrittenOverIsReportedAfterTheLastHeadThatHeld) {
  AppendMany(4);
  const ChainReport at_four = VerifyOrDie();
  const std::string head_at_four = RawGet("m:history_head");
  AppendMany(2);
  const ChainReport at_six = VerifyOrDie();
  RawDelete(EventKey(5));
  RawDelete(EventKey(6));
  RawPut("m:history_head", head_at_four);
  CloseAll();
  OpenAll();
  AppendMany(3);  // Seqs 5 to 7, with other links.
  ASSERT_TRUE(VerifyOrDie().ok());
  const std::vector<ChainAnchor> kept = {{.seq = 4, .link = at_four.head_link},
                                         {.seq = 6, .link = at_six.head_link}};
  const ChainReport report = history_->Verify(nullptr, nullptr, kept).value();
  EXPECT_EQ(report.problem, ChainReport::Problem::kAnchor);
  EXPECT_EQ(report.first_broken, 6u);
  EXPECT_EQ(report.anchor_last_held, 4u);
  EXPECT_EQ(report.verified, 7u);
}

// A seq no chain reaches is past the head, not "before the checkpoint"
// (seq + 1 would overflow).
TEST_F(HistoryTest, ARecordedHeadAtTheLargestSeqIsPastTheHead) {
  AppendMany(2);
  const ChainReport report =
      history_
          ->Verify(nullptr, nullptr,
                   std::vector<ChainAnchor>{{.seq = UINT64_MAX}})
          .value();
  EXPECT_EQ(report.problem, ChainReport::Problem::kAnchor);
  EXPECT_EQ(report.first_broken, 3u);
  EXPECT_EQ(report.anchors_folded, 0u);
}

TEST_F(HistoryTest, ARecordedHeadWithAnotherLinkIsReportedAtItsSeq) {
  AppendMany(5);
  const ChainReport at_five = VerifyOrDie();
  ASSERT_TRUE(at_five.ok());
  ChainAnchor wrong{.seq = 3, .link = at_five.head_link};  // 5's link.
  const ChainAnchor five{.seq = 5, .link = at_five.head_link};
  ChainReport report = history_
                           ->Verify(nullptr, nullptr,
                                    std::vector<ChainAnchor>{five, wrong, five})
                           .value();
  EXPECT_EQ(report.problem, ChainReport::Problem::kAnchor);
  EXPECT_EQ(report.first_broken, 3u);
  EXPECT_EQ(report.anchors_matched, 2u);
  // Seq 0 is the empty history: its link is the genesis.
  report =
      history_
          ->Verify(nullptr, nullptr, std::vector<ChainAnchor>{{.seq = 0}, five})
          .value();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.anchors_matched, 2u);
  report = history_
               ->Verify(nullptr, nullptr,
                        std::vector<ChainAnchor>{{.seq = 0, .link = five.link}})
               .value();
  EXPECT_EQ(report.problem, ChainReport::Problem::kAnchor);
  EXPECT_EQ(report.first_broken, 0u);
}

// Pruning folds the oldest events into the checkpoint: an anchor at the
// checkpoint's own link is compared with it, older ones are vouched for
// by its MAC (counted as folded), later ones are found as before.
TEST_F(HistoryTest, RecordedHeadsBeforeTheCheckpointAreFoldedIntoIt) {
  std::vector<ChainAnchor> anchors;
  for (int i = 1; i <= 5; ++i) {
    Append({Read(i, {"s-anna"}, i)});
    const ChainReport report = VerifyOrDie();
    ASSERT_TRUE(report.ok());
    anchors.push_back({.seq = report.head_seq, .link = report.head_link});
  }
  ASSERT_TRUE(history_->Prune(
      [](const EventHeader& h) { return h.record_id <= 3; }, 100));
  ChainReport report = history_->Verify(nullptr, nullptr, anchors).value();
  ASSERT_EQ(report.first_seq, 4u);
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.anchors_folded, 2u);   // Seqs 1 and 2.
  EXPECT_EQ(report.anchors_matched, 3u);  // 3 (the checkpoint's), 4, 5.
  anchors[2].link = anchors[4].link;      // Seq 3 with another link.
  report = history_->Verify(nullptr, nullptr, anchors).value();
  EXPECT_EQ(report.problem, ChainReport::Problem::kAnchor);
  EXPECT_EQ(report.first_broken, 3u);
}

TEST_F(HistoryTest, SwappedEventsAreReportedAtTheFirstOfThem) {
  AppendMany(5);
  const std::string two = RawGet(EventKey(2));
  const std::string four = RawGet(EventKey(4));
  RawPut(EventKey(2), four);
  RawPut(EventKey(4), two);
  ChainReport report = VerifyOrDie();
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.first_broken, 2u);
  EXPECT_EQ(report.verified, 1u);
}

// Rewrites the principal name in event `seq`'s clear header, keeping the
// value well formed and the stored link and MAC as they were.
void RewritePrincipalName(leveldb::DB& db, uint64_t seq,
                          const std::string& name) {
  std::string stored;
  ASSERT_TRUE(db.Get(leveldb::ReadOptions(), EventKey(seq), &stored).ok());
  kj::Array<capnp::word> words =
      kj::heapArray<capnp::word>(stored.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), stored.data(), stored.size());
  capnp::FlatArrayMessageReader outer(words);
  auto outer_root = outer.getRoot<schema::history::StoredEvent>();
  auto event_bytes = outer_root.getEvent();
  kj::Array<capnp::word> inner_words =
      kj::heapArray<capnp::word>(event_bytes.size() / sizeof(capnp::word));
  std::memcpy(inner_words.begin(), event_bytes.begin(), event_bytes.size());
  capnp::FlatArrayMessageReader inner(inner_words);

  capnp::MallocMessageBuilder event_message;
  event_message.setRoot(inner.getRoot<schema::history::Event>());
  event_message.getRoot<schema::history::Event>().getHeader().setPrincipalName(
      name);
  auto event_flat = capnp::messageToFlatArray(event_message);

  capnp::MallocMessageBuilder outer_message;
  auto b = outer_message.initRoot<schema::history::StoredEvent>();
  b.setSeq(seq);
  b.setLink(outer_root.getLink());
  b.setEvent(event_flat.asBytes());
  b.setMac(outer_root.getMac());
  auto outer_flat = capnp::messageToFlatArray(outer_message);
  ASSERT_TRUE(db.Put(leveldb::WriteOptions(), EventKey(seq),
                     std::string(reinterpret_cast<const char*>(
                                     outer_flat.asBytes().begin()),
                                 outer_flat.asBytes().size()))
                  .ok());
}

TEST_F(HistoryTest, AnAlteredClearHeaderFailsToAuthenticateForTheSubject) {
  Append({Read(1, {"s-anna"}), Read(2, {"s-anna", "s-ben"})});
  RewritePrincipalName(*db_, 2, "Somebody Else");
  auto page = history_->ForSubject("s-ben", T0() - hours(1), T0() + hours(1), 0,
                                   10, lookup_);
  ASSERT_FALSE(page.has_value());
  EXPECT_EQ(page.error().code(), StatusCode::kDataLoss);
  EXPECT_EQ(page.error().message(),
            "an access-history event failed to authenticate");
  ChainReport report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kLink);
  EXPECT_EQ(report.first_broken, 2u);
}

TEST_F(HistoryTest, AnEventMovedToAnotherSeqFailsToAuthenticate) {
  Append({Read(1, {"s-anna"}), Read(2, {"s-anna"})});
  RawPut(EventKey(1), RawGet(EventKey(2)));
  auto page = history_->ForSubject("s-anna", T0() - hours(1), T0() + hours(1),
                                   0, 10, lookup_);
  ASSERT_FALSE(page.has_value());
  EXPECT_EQ(page.error().code(), StatusCode::kDataLoss);
}

// ---- Re-sealing (re-keying a subject)
// ------------------------------------------------------------

// Replaces the sealed bytes of part `slot` of event `seq` by `sealed`,
// keeping everything else (header, commitments, link, MAC) as it was.
void ReplaceSealedPart(leveldb::DB& db, uint64_t seq, uint32_t slot,
                       const std::vector<uint8_t>& sealed) {
  std::string stored;
  ASSERT_TRUE(db.Get(leveldb::ReadOptions(), EventKey(seq), &stored).ok());
  kj::Array<capnp::word> words =
      kj::heapArray<capnp::word>(stored.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), stored.data(), stored.size());
  capnp::FlatArrayMessageReader outer(words);
  auto outer_root = outer.getRoot<schema::history::StoredEvent>();
  auto event_bytes = outer_root.getEvent();
  kj::Array<capnp::word> inner_words =
      kj::heapArray<capnp::word>(event_bytes.size() / sizeof(capnp::word));
  std::memcpy(inner_words.begin(), event_bytes.begin(), event_bytes.size());
  capnp::FlatArrayMessageReader inner(inner_words);
  capnp::MallocMessageBuilder event_message;
  event_message.setRoot(inner.getRoot<schema::history::Event>());
  event_message.getRoot<schema::history::Event>().getParts()[slot].setSealed(
      capnp::Data::Reader(sealed.data(), sealed.size()));
  auto event_flat = capnp::messageToFlatArray(event_message);
  capnp::MallocMessageBuilder outer_message;
  auto b = outer_message.initRoot<schema::history::StoredEvent>();
  b.setSeq(seq);
  b.setLink(outer_root.getLink());
  b.setEvent(event_flat.asBytes());
  b.setMac(outer_root.getMac());
  auto outer_flat = capnp::messageToFlatArray(outer_message);
  ASSERT_TRUE(db.Put(leveldb::WriteOptions(), EventKey(seq),
                     std::string(reinterpret_cast<const char*>(
                                     outer_flat.asBytes().begin()),
                                 outer_flat.asBytes().size()))
                  .ok());
}

TEST_F(HistoryTest, ResealingASubjectKeepsTheChainAndEveryEntry) {
  AppendMany(4);
  Append({Read(5, {"s-ben", "s-anna"}, 5)});
  const HistoryPage before = Query("s-anna");
  ASSERT_EQ(before.entries.size(), 5u);
  const crypto::Digest head_link = history_->head().link;
  const std::string ben_event = RawGet(EventKey(5));

  SharedKey old_key = keys_["s-anna"];
  SharedKey new_key =
      std::make_shared<const crypto::SecretKey>(crypto::SecretKey::Generate());
  // In bounded steps, as the re-keyer calls it.
  uint64_t after = 0;
  size_t resealed = 0, steps = 0;
  do {
    leveldb::WriteBatch batch;
    auto step =
        history_->ResealSubject(batch, "s-anna", *old_key, *new_key, after, 2);
    ASSERT_TRUE(step.has_value()) << step.error().ToString();
    ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &batch).ok());
    EXPECT_EQ(step->replaced.size(), step->resealed);
    EXPECT_EQ(step->rewritten_seqs.size(), step->resealed);
    resealed += step->resealed;
    after = step->next_after_seq;
    ++steps;
  } while (after != 0);
  EXPECT_EQ(resealed, 5u);
  EXPECT_EQ(steps, 3u);

  // The chain is untouched: same links, same head.
  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok()) << ChainProblemName(report.problem) << " at "
                           << report.first_broken;
  EXPECT_EQ(report.verified, 5u);
  EXPECT_EQ(history_->head().link, head_link);
  // The parts changed (the event with Ben's part too, Ben's part kept).
  EXPECT_NE(RawGet(EventKey(5)), ben_event);
  EXPECT_EQ(Seqs(Query("s-ben")), (std::vector<uint64_t>{5}));

  // The new key reads everything as before; the old one reads nothing.
  keys_["s-anna"] = new_key;
  const HistoryPage after_page = Query("s-anna");
  ASSERT_EQ(after_page.entries.size(), before.entries.size());
  for (size_t i = 0; i < before.entries.size(); ++i) {
    EXPECT_EQ(after_page.entries[i].header.seq, before.entries[i].header.seq);
    EXPECT_EQ(after_page.entries[i].justification,
              before.entries[i].justification);
    EXPECT_EQ(after_page.entries[i].fields, before.entries[i].fields);
  }
  keys_["s-anna"] = old_key;
  auto stale = history_->ForSubject("s-anna", T0() - hours(1000),
                                    T0() + hours(1000), 0, 10, lookup_);
  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error().code(), StatusCode::kDataLoss);

  // A second pass finds everything under the new key already.
  leveldb::WriteBatch again;
  auto none =
      history_->ResealSubject(again, "s-anna", *old_key, *new_key, 0, 100);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->resealed, 0u);
  EXPECT_EQ(again.ApproximateSize(), leveldb::WriteBatch().ApproximateSize());
}

TEST_F(HistoryTest, DuringAResealAQueryOpensPartsUnderEitherKey) {
  AppendMany(4);
  SharedKey old_key = keys_["s-anna"];
  SharedKey new_key =
      std::make_shared<const crypto::SecretKey>(crypto::SecretKey::Generate());
  leveldb::WriteBatch batch;
  ASSERT_TRUE(
      history_->ResealSubject(batch, "s-anna", *old_key, *new_key, 0, 2));
  ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &batch).ok());
  keys_["s-anna"] = new_key;
  const KeyLookup retiring = [&](const std::string&) -> Result<SharedKey> {
    return old_key;
  };
  auto page =
      history_->ForSubject("s-anna", T0() - hours(1000), T0() + hours(1000), 0,
                           10, lookup_, retiring);
  ASSERT_TRUE(page.has_value()) << page.error().ToString();
  EXPECT_EQ(Seqs(*page), (std::vector<uint64_t>{1, 2, 3, 4}));
}

TEST_F(HistoryTest, ACiphertextReplacedUnderTheSubjectsKeyIsCaught) {
  // Someone holding the subject's key but not the audit key seals another
  // part (same associated data) into an event: the chain's links still
  // verify (they cover the commitments), the MAC of the stored bytes does
  // not, and the subject's query refuses the part (commitment mismatch).
  AppendMany(3);
  // The forged part: another SubjectPart sealed under Anna's key with the
  // associated data of event 2, slot 0.
  std::string stored = RawGet(EventKey(2));
  kj::Array<capnp::word> words =
      kj::heapArray<capnp::word>(stored.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), stored.data(), stored.size());
  capnp::FlatArrayMessageReader outer(words);
  auto event_bytes = outer.getRoot<schema::history::StoredEvent>().getEvent();
  kj::Array<capnp::word> inner_words =
      kj::heapArray<capnp::word>(event_bytes.size() / sizeof(capnp::word));
  std::memcpy(inner_words.begin(), event_bytes.begin(), event_bytes.size());
  capnp::FlatArrayMessageReader inner(inner_words);
  kj::Array<capnp::word> canonical =
      capnp::canonicalize(inner.getRoot<schema::history::Event>().getHeader());
  std::string ad("custos-event-v1\0", 16);
  AppendBigEndian64(ad, 2);
  AppendBigEndian32(ad, 0);
  ad.append(reinterpret_cast<const char*>(canonical.asBytes().begin()),
            canonical.asBytes().size());
  capnp::MallocMessageBuilder part_message;
  auto part = part_message.initRoot<schema::history::SubjectPart>();
  part.setSubjectId("s-anna");
  part.setJustification("something else entirely");
  auto flat = capnp::messageToFlatArray(part_message);
  const std::vector<uint8_t> forged = crypto::Seal(
      *keys_["s-anna"],
      std::span<const uint8_t>(flat.asBytes().begin(), flat.asBytes().size()),
      AsBytes(ad));
  ReplaceSealedPart(*db_, 2, 0, forged);

  ChainReport report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kSeal);
  EXPECT_EQ(report.first_broken, 2u);
  EXPECT_EQ(report.verified, 2u);  // Event 2's link verified.
  auto page = history_->ForSubject("s-anna", T0() - hours(1000),
                                   T0() + hours(1000), 1, 1, lookup_);
  ASSERT_FALSE(page.has_value());
  EXPECT_EQ(page.error().message(),
            "an access-history event failed to authenticate");
}

TEST_F(HistoryTest, TheChainStillVerifiesAfterAResealAndThenAShred) {
  AppendMany(3);
  SharedKey new_key =
      std::make_shared<const crypto::SecretKey>(crypto::SecretKey::Generate());
  leveldb::WriteBatch batch;
  ASSERT_TRUE(history_->ResealSubject(batch, "s-anna", *keys_["s-anna"],
                                      *new_key, 0, 100));
  ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &batch).ok());
  keys_.erase("s-anna");
  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.verified, 3u);
  EXPECT_TRUE(Query("s-anna").entries.empty());
}

// ---- Pruning
// -------------------------------------------------------------------

std::function<bool(const EventHeader&)> RecordsUpTo(uint64_t last) {
  return [last](const EventHeader& h) {
    return h.record_id >= 1 && h.record_id <= last;
  };
}

TEST_F(HistoryTest, PruningAPrefixWritesACheckpointAndDeletesTheEvents) {
  AppendMany(6);
  auto result = history_->Prune(RecordsUpTo(3), 100);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->stubbed, 3u);
  EXPECT_EQ(result->collapsed, 3u);
  EXPECT_EQ(result->next_after_seq, 0u);
  EXPECT_FALSE(RawHas(EventKey(1)));
  EXPECT_FALSE(RawHas(EventKey(2)));
  EXPECT_FALSE(RawHas(EventKey(3)));
  EXPECT_TRUE(RawHas(EventKey(4)));
  EXPECT_TRUE(RawHas("m:history_checkpoint"));
  // Their index entries went with them.
  EXPECT_EQ(CountPrefix(kIndex), 3u);
  EXPECT_EQ(CountPrefix(kReverse), 3u);
  EXPECT_EQ(Seqs(Query("s-anna")), (std::vector<uint64_t>{4, 5, 6}));

  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.first_seq, 4u);
  EXPECT_EQ(report.verified, 3u);
  EXPECT_EQ(report.head_seq, 6u);

  // Appending continues the chain past the checkpoint.
  Append({Read(7, {"s-anna"}, 7)});
  report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.verified, 4u);
}

TEST_F(HistoryTest, PruningEverythingLeavesACheckpointAtTheHead) {
  AppendMany(3);
  auto result = history_->Prune(RecordsUpTo(3), 100);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->collapsed, 3u);
  EXPECT_EQ(CountPrefix(kEvents), 0u);
  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.first_seq, 4u);
  EXPECT_EQ(report.verified, 0u);
}

TEST_F(HistoryTest, PruningAMiddleEventLeavesAStubAndTheChainVerifies) {
  AppendMany(5);
  auto result = history_->Prune(
      [](const EventHeader& h) { return h.record_id == 3; }, 100);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->stubbed, 1u);
  EXPECT_EQ(result->collapsed, 0u);
  EXPECT_FALSE(RawHas("m:history_checkpoint"));
  ASSERT_TRUE(RawHas(EventKey(3)));
  // Seq, link, digest only (and the null pointer of the absent MAC).
  EXPECT_EQ(RawGet(EventKey(3)).size(), 120u);
  EXPECT_EQ(Seqs(Query("s-anna")), (std::vector<uint64_t>{1, 2, 4, 5}));

  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.verified, 5u);
  EXPECT_EQ(report.stubs, 1u);

  // A stub is as tamper-evident as an event.
  std::string stub = RawGet(EventKey(3));
  stub[stub.size() - 1] ^= 0x01;
  RawPut(EventKey(3), stub);
  report = VerifyOrDie();
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.first_broken, 3u);
}

TEST_F(HistoryTest, StubsBecomeTheCheckpointOnceThePrefixBeforeThemIsPruned) {
  AppendMany(5);
  ASSERT_TRUE(history_->Prune(
      [](const EventHeader& h) { return h.record_id == 2; }, 100));
  EXPECT_FALSE(RawHas("m:history_checkpoint"));
  auto result = history_->Prune(
      [](const EventHeader& h) { return h.record_id == 1; }, 100);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->stubbed, 1u);
  EXPECT_EQ(result->collapsed, 2u);
  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.first_seq, 3u);
  EXPECT_EQ(report.stubs, 0u);
}

TEST_F(HistoryTest, PruningIsBoundedAndResumesFromItsCursor) {
  AppendMany(6);
  auto prunable = [](const EventHeader& h) { return h.record_id % 2 == 0; };
  auto first = history_->Prune(prunable, 3);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->stubbed, 1u);  // Of 1, 2, 3: only 2.
  EXPECT_EQ(first->collapsed, 0u);
  EXPECT_EQ(first->next_after_seq, 3u);
  auto second = history_->Prune(prunable, 3, first->next_after_seq);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->stubbed, 2u);  // 4 and 6.
  EXPECT_EQ(second->next_after_seq, 0u);
  ChainReport report = VerifyOrDie();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.stubs, 3u);
  EXPECT_EQ(Seqs(Query("s-anna")), (std::vector<uint64_t>{1, 3, 5}));
}

TEST_F(HistoryTest, PruningNothingWritesNothing) {
  AppendMany(3);
  auto result = history_->Prune([](const EventHeader&) { return false; }, 100);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->stubbed, 0u);
  EXPECT_EQ(result->collapsed, 0u);
  EXPECT_FALSE(RawHas("m:history_checkpoint"));
  EXPECT_EQ(CountPrefix(kEvents), 3u);
}

TEST_F(HistoryTest, PruningRefusesToFoldABrokenChain) {
  AppendMany(4);
  ASSERT_TRUE(history_->Prune(
      [](const EventHeader& h) { return h.record_id == 2; }, 100));
  // Forge the stub of 2: a different digest.
  std::string stub = RawGet(EventKey(2));
  stub[stub.size() - 1] ^= 0x01;
  RawPut(EventKey(2), stub);
  auto result = history_->Prune(
      [](const EventHeader& h) { return h.record_id == 1; }, 100);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), StatusCode::kDataLoss);
  EXPECT_EQ(result.error().message(),
            "the history chain is broken at 2; nothing was pruned");
  EXPECT_TRUE(RawHas(EventKey(1)));
  EXPECT_FALSE(RawHas("m:history_checkpoint"));
  EXPECT_EQ(VerifyOrDie().first_broken, 2u);
}

TEST_F(HistoryTest, ATamperedCheckpointIsReportedAtItsSeq) {
  AppendMany(6);
  ASSERT_TRUE(history_->Prune(RecordsUpTo(3), 100));
  const std::string checkpoint = RawGet("m:history_checkpoint");

  // Any changed byte: the MAC no longer verifies (or the value no longer
  // decodes).
  for (size_t i = 0; i < checkpoint.size(); ++i) {
    std::string tampered = checkpoint;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    RawPut("m:history_checkpoint", tampered);
    ChainReport report = VerifyOrDie();
    ASSERT_FALSE(report.ok()) << "byte " << i;
    EXPECT_EQ(report.problem, ChainReport::Problem::kCheckpoint) << i;
  }

  // A checkpoint forged to start later, hiding event 4, with the link of 4
  // and a MAC its forger cannot compute: reported at its seq.
  {
    capnp::MallocMessageBuilder message;
    auto c = message.initRoot<schema::history::Checkpoint>();
    c.setNextSeq(5);
    std::string stored = RawGet(EventKey(4));
    kj::Array<capnp::word> words =
        kj::heapArray<capnp::word>(stored.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), stored.data(), stored.size());
    capnp::FlatArrayMessageReader reader(words);
    c.setLink(reader.getRoot<schema::history::StoredEvent>().getLink());
    std::array<uint8_t, 32> mac{};
    c.setMac(kj::arrayPtr(mac.data(), mac.size()));
    auto flat = capnp::messageToFlatArray(message);
    RawPut("m:history_checkpoint",
           std::string(reinterpret_cast<const char*>(flat.asBytes().begin()),
                       flat.asBytes().size()));
  }
  ChainReport report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kCheckpoint);
  EXPECT_EQ(report.first_broken, 5u);
  auto prune = history_->Prune(RecordsUpTo(6), 100);
  ASSERT_FALSE(prune.has_value());
  EXPECT_EQ(prune.error().code(), StatusCode::kDataLoss);

  // A deleted checkpoint: the chain now starts at genesis, and 1 is gone.
  RawDelete("m:history_checkpoint");
  report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kMissing);
  EXPECT_EQ(report.first_broken, 1u);

  RawPut("m:history_checkpoint", checkpoint);
  EXPECT_TRUE(VerifyOrDie().ok());
}

TEST_F(HistoryTest, ACheckpointUnderAnotherAuditKeyIsRejected) {
  AppendMany(4);
  ASSERT_TRUE(history_->Prune(RecordsUpTo(2), 100));
  // The same store verified with another audit key: the checkpoint's MAC is
  // the first thing that fails.
  History::Options options;
  auto other = History::Open(*db_, crypto::SecretKey::Generate(), options);
  ASSERT_TRUE(other.has_value());
  auto report = (*other)->Verify();
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->problem, ChainReport::Problem::kCheckpoint);
  EXPECT_EQ(report->first_broken, 3u);
}

// ---- The disclosure index (docs/history.md, "The disclosure index") -------

const std::string kDisclosures(keys::kDisclosurePrefix);
const std::string kDisclosureParts(keys::kDisclosurePartPrefix);

Event ReadBy(const std::string& principal, uint64_t record_id,
             std::vector<std::string> subjects, int hour) {
  Event e;
  e.at = T0() + hours(hour);
  e.principal_id = principal;
  e.principal_name = principal + " name";
  e.action = EventAction::kRead;
  e.record_id = record_id;
  e.record_kind = "request";
  e.record_state = RecordState::kActive;
  e.subject_ids = std::move(subjects);
  e.purpose = Purpose{PurposeKind::kSubjectConsent,
                      std::string("why r").append(std::to_string(record_id))};
  e.fields = {"name", "email"};
  return e;
}

TEST_F(HistoryTest, OnlyDisclosuresNamingSubjectsAreIndexedByPrincipal) {
  Event create = ReadBy("thief", 1, {"s-anna"}, 1);
  create.action = EventAction::kCreate;
  Event grant = ReadBy("thief", 1, {"s-anna"}, 2);
  grant.action = EventAction::kGrant;
  Event nobody = ReadBy("thief", 0, {}, 3);
  nobody.action = EventAction::kRead;
  Event report = ReadBy("thief", 0, {"s-ben"}, 4);
  report.action = EventAction::kReport;
  Append({create, grant, nobody, report, ReadBy("thief", 1, {"s-anna"}, 5)});
  // The report (seq 4) and the read (seq 5); not the creation, the grant,
  // nor the read naming no subject.
  EXPECT_EQ(CountPrefix(kDisclosures), 2u);
  EXPECT_EQ(CountPrefix(kDisclosureParts), 2u);
  auto walk =
      history_->Disclosures("thief", T0(), T0() + hours(24), 100, lookup_);
  ASSERT_TRUE(walk.has_value()) << walk.error().ToString();
  ASSERT_EQ(walk->disclosures.size(), 2u);
  EXPECT_EQ(walk->disclosures[0].header.seq, 4u);
  EXPECT_EQ(walk->disclosures[0].header.action, EventAction::kReport);
  ASSERT_EQ(walk->disclosures[0].parts.size(), 1u);
  EXPECT_EQ(walk->disclosures[0].parts[0].subject_id, "s-ben");
  EXPECT_EQ(walk->disclosures[1].header.seq, 5u);
  EXPECT_EQ(walk->indexed_from, 1u);
  EXPECT_FALSE(walk->unindexed_until.has_value());
}

TEST_F(HistoryTest, DisclosuresAreThePrincipalsInTheWindowWithEachSubject) {
  Append({ReadBy("thief", 1, {"s-anna", "s-ben"}, 1)});  // seq 1
  Append({ReadBy("other", 2, {"s-anna"}, 2)});           // seq 2
  Append({ReadBy("thief", 3, {"s-ben"}, 3)});            // seq 3
  Append({ReadBy("thief", 4, {"s-anna"}, 6)});           // seq 4: at the end

  auto walk = history_->Disclosures("thief", T0() + hours(1), T0() + hours(6),
                                    100, lookup_);
  ASSERT_TRUE(walk.has_value()) << walk.error().ToString();
  ASSERT_EQ(walk->disclosures.size(), 2u);
  const Disclosure& first = walk->disclosures[0];
  EXPECT_EQ(first.header.seq, 1u);
  EXPECT_EQ(first.header.principal_id, "thief");
  EXPECT_EQ(first.header.record_id, 1u);
  EXPECT_EQ(first.header.purpose_kind, PurposeKind::kSubjectConsent);
  EXPECT_EQ(first.sealed_parts, 2u);
  ASSERT_EQ(first.parts.size(), 2u);
  EXPECT_EQ(first.parts[0].subject_id, "s-anna");
  EXPECT_EQ(first.parts[1].subject_id, "s-ben");
  EXPECT_EQ(first.parts[1].justification, "why r1");
  EXPECT_EQ(first.parts[1].fields, (std::vector<std::string>{"name", "email"}));
  EXPECT_EQ(walk->disclosures[1].header.seq, 3u);
  EXPECT_FALSE(walk->more);
  // The window's two entries, and the walk stopped at the next key.
  EXPECT_EQ(walk->examined, 2u);

  auto other =
      history_->Disclosures("other", T0(), T0() + hours(24), 100, lookup_);
  ASSERT_TRUE(other.has_value());
  ASSERT_EQ(other->disclosures.size(), 1u);
  EXPECT_EQ(other->disclosures[0].header.seq, 2u);
  // A prefix of a principal id is another principal.
  auto prefix =
      history_->Disclosures("thie", T0(), T0() + hours(24), 100, lookup_);
  ASSERT_TRUE(prefix.has_value());
  EXPECT_TRUE(prefix->disclosures.empty());
}

TEST_F(HistoryTest, TheDisclosureWalkReadsOnlyTheWindowsEntries) {
  // A long history around the window: the thief's own disclosures before
  // and after it, and another principal's inside it.
  for (int i = 0; i < 300; ++i) {
    Append({ReadBy("thief", 100 + i, {"s-anna"}, -400 + i),
            ReadBy("thief", 1000 + i, {"s-ben"}, 100 + i),
            ReadBy("other", 2000 + i, {"s-anna"}, 10)});
  }
  Append({ReadBy("thief", 1, {"s-anna"}, 10), ReadBy("thief", 2, {"s-ben"}, 11),
          ReadBy("thief", 3, {"s-anna"}, 12)});
  auto walk =
      history_->Disclosures("thief", T0(), T0() + hours(24), 100, lookup_);
  ASSERT_TRUE(walk.has_value()) << walk.error().ToString();
  ASSERT_EQ(walk->disclosures.size(), 3u);
  EXPECT_EQ(walk->examined, 3u);
  lookups_ = 0;
  // One key lookup per part opened: nothing outside the window is opened.
  ASSERT_TRUE(
      history_->Disclosures("thief", T0(), T0() + hours(24), 100, lookup_));
  EXPECT_EQ(lookups_, 3);

  // The limit: one more entry is read, to know that more remain.
  auto limited =
      history_->Disclosures("thief", T0(), T0() + hours(24), 2, lookup_);
  ASSERT_TRUE(limited.has_value());
  EXPECT_EQ(limited->disclosures.size(), 2u);
  EXPECT_TRUE(limited->more);
  EXPECT_EQ(limited->examined, 3u);
  EXPECT_FALSE(
      history_->Disclosures("thief", T0(), T0() + hours(24), 0, lookup_));
}

TEST_F(HistoryTest, AShreddedSubjectsDisclosureIsCountedNotOpened) {
  Append({ReadBy("thief", 1, {"s-anna", "s-ben"}, 1)});
  keys_.erase("s-anna");
  auto walk =
      history_->Disclosures("thief", T0(), T0() + hours(24), 100, lookup_);
  ASSERT_TRUE(walk.has_value()) << walk.error().ToString();
  ASSERT_EQ(walk->disclosures.size(), 1u);
  EXPECT_EQ(walk->disclosures[0].sealed_parts, 2u);
  ASSERT_EQ(walk->disclosures[0].parts.size(), 1u);
  EXPECT_EQ(walk->disclosures[0].parts[0].subject_id, "s-ben");

  // Dropping Anna's index drops her part's sealed id too, and only hers.
  ASSERT_EQ(CountPrefix(kDisclosureParts), 2u);
  leveldb::WriteBatch batch;
  ASSERT_EQ(*history_->DropSubjectIndex(batch, "s-anna", 10), 1u);
  ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &batch).ok());
  EXPECT_EQ(CountPrefix(kDisclosureParts), 1u);
  EXPECT_TRUE(RawHas(keys::DisclosurePart(1, 1)));
  walk = history_->Disclosures("thief", T0(), T0() + hours(24), 100, lookup_);
  ASSERT_TRUE(walk.has_value()) << walk.error().ToString();
  ASSERT_EQ(walk->disclosures.size(), 1u);
  EXPECT_EQ(walk->disclosures[0].sealed_parts, 2u);
  EXPECT_EQ(walk->disclosures[0].parts.size(), 1u);
}

TEST_F(HistoryTest, PruningAnEventRemovesItsDisclosureEntries) {
  Append({ReadBy("thief", 1, {"s-anna", "s-ben"}, 1)});
  Append({ReadBy("thief", 2, {"s-anna"}, 2)});
  ASSERT_TRUE(history_->Prune(
      [](const EventHeader& h) { return h.record_id == 1; }, 100));
  EXPECT_EQ(CountPrefix(kDisclosures), 1u);
  EXPECT_EQ(CountPrefix(kDisclosureParts), 1u);
  auto walk =
      history_->Disclosures("thief", T0(), T0() + hours(24), 100, lookup_);
  ASSERT_TRUE(walk.has_value());
  ASSERT_EQ(walk->disclosures.size(), 1u);
  EXPECT_EQ(walk->disclosures[0].header.seq, 2u);
  EXPECT_TRUE(VerifyOrDie().ok());
}

TEST_F(HistoryTest, AnIndexEntryPointingAtAnotherEventFailsToAuthenticate) {
  Append({ReadBy("thief", 1, {"s-anna"}, 1)});
  Append({ReadBy("other", 2, {"s-anna"}, 2)});
  // An entry claiming the thief received event 2.
  RawPut(keys::Disclosure("thief", ToMicros(T0() + hours(2)), 2), "");
  auto walk =
      history_->Disclosures("thief", T0(), T0() + hours(24), 100, lookup_);
  ASSERT_FALSE(walk.has_value());
  EXPECT_EQ(walk.error().code(), StatusCode::kDataLoss);
  RawDelete(keys::Disclosure("thief", ToMicros(T0() + hours(2)), 2));
  // A sealed subject id moved to another slot or event does not open.
  RawPut(keys::DisclosurePart(1, 0), RawGet(keys::DisclosurePart(2, 0)));
  walk = history_->Disclosures("thief", T0(), T0() + hours(24), 100, lookup_);
  ASSERT_FALSE(walk.has_value());
  EXPECT_EQ(walk.error().code(), StatusCode::kDataLoss);
}

TEST_F(HistoryTest, AHistoryWrittenBeforeTheIndexSaysWhatTheWalkMisses) {
  Append({ReadBy("thief", 1, {"s-anna"}, 1)});
  Append({ReadBy("thief", 2, {"s-anna"}, 2)});
  // As a store written by an earlier build: no index, no marker.
  RawDelete(keys::Disclosure("thief", ToMicros(T0() + hours(1)), 1));
  RawDelete(keys::Disclosure("thief", ToMicros(T0() + hours(2)), 2));
  RawDelete(keys::DisclosurePart(1, 0));
  RawDelete(keys::DisclosurePart(2, 0));
  RawDelete(std::string(keys::kHistoryDisclosuresFrom));
  CloseAll();
  OpenAll();
  Append({ReadBy("thief", 3, {"s-anna"}, 3)});
  auto walk =
      history_->Disclosures("thief", T0(), T0() + hours(24), 100, lookup_);
  ASSERT_TRUE(walk.has_value()) << walk.error().ToString();
  ASSERT_EQ(walk->disclosures.size(), 1u);
  EXPECT_EQ(walk->disclosures[0].header.seq, 3u);
  EXPECT_EQ(walk->indexed_from, 3u);
  EXPECT_EQ(walk->unindexed_until, T0() + hours(2));
  // The marker is written once and kept.
  CloseAll();
  OpenAll();
  walk = history_->Disclosures("thief", T0(), T0() + hours(24), 100, lookup_);
  ASSERT_TRUE(walk.has_value());
  EXPECT_EQ(walk->indexed_from, 3u);
  // No store of this build's format starts its index later than its first
  // event: such a marker was deleted or changed, and Verify says so.
  ChainReport report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kIndex);
  EXPECT_EQ(report.first_broken, 1u);
}

// ---- The indexes under Verify
// ------------------------------------------------------------------
// Without the subject's key nobody can tell whose event an index entry is;
// deleting or replacing one hid the event from that subject's report and
// from breach scopes while Verify still said OK (a review's finding).

// The "hs:" keys of event `seq`, in key order.
std::vector<std::string> ReverseKeysOf(leveldb::DB& db, uint64_t seq) {
  std::vector<std::string> found;
  const std::string prefix = keys::HistoryReversePrefix(seq);
  std::unique_ptr<leveldb::Iterator> it(db.NewIterator(leveldb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    found.push_back(it->key().ToString());
  }
  return found;
}

// The "h:" key that `reverse` (an "hs:" key) mirrors.
std::string IndexKeyOf(const std::string& reverse, uint64_t seq) {
  return keys::HistoryIndex(
      std::string_view(reverse).substr(keys::HistoryReversePrefix(seq).size()),
      seq);
}

class HistoryIndexTest : public HistoryTest {
 protected:
  // Anna's events 1..3 (disclosures), then one of Anna and Ben (seq 4).
  void SetUp() override {
    HistoryTest::SetUp();
    AppendMany(3);
    Append({Read(4, {"s-anna", "s-ben"}, 4)});
    ASSERT_TRUE(VerifyOrDie().ok());
  }

  void ExpectIndexBrokenAt(uint64_t seq) {
    ChainReport report = VerifyOrDie();
    EXPECT_EQ(report.problem, ChainReport::Problem::kIndex);
    EXPECT_EQ(ChainProblemName(report.problem), "index");
    EXPECT_EQ(report.first_broken, seq);
    EXPECT_EQ(report.verified, seq);  // Its link verified; its index not.
  }
};

TEST_F(HistoryIndexTest, AnEventsIndexEntriesDeletedAreReportedAtItsSeq) {
  const std::vector<std::string> reverse = ReverseKeysOf(*db_, 2);
  ASSERT_EQ(reverse.size(), 1u);
  const std::string index = IndexKeyOf(reverse[0], 2);
  const std::string index_value = RawGet(index);
  ASSERT_EQ(index_value.size(), 36u);  // The slot and its MAC.

  // Both entries deleted: Anna's report would no longer show event 2.
  RawDelete(index);
  RawDelete(reverse[0]);
  EXPECT_EQ(Seqs(Query("s-anna")), (std::vector<uint64_t>{1, 3, 4}));
  ExpectIndexBrokenAt(2);
  // Either one alone.
  RawPut(reverse[0], "");
  ExpectIndexBrokenAt(2);
  RawDelete(reverse[0]);
  RawPut(index, index_value);
  ExpectIndexBrokenAt(2);
  RawPut(reverse[0], "");
  EXPECT_TRUE(VerifyOrDie().ok());
}

TEST_F(HistoryIndexTest, AnIndexEntryMovedToAnotherTagOrSlotIsReported) {
  const std::vector<std::string> reverse = ReverseKeysOf(*db_, 2);
  ASSERT_EQ(reverse.size(), 1u);
  const std::string index = IndexKeyOf(reverse[0], 2);
  const std::string value = RawGet(index);
  // Under a made-up tag: the event no longer answers Anna's queries.
  const std::string tag(32, 'x');
  RawDelete(index);
  RawDelete(reverse[0]);
  RawPut(keys::HistoryIndex(tag, 2), value);
  RawPut(keys::HistoryReverse(2, tag), "");
  ExpectIndexBrokenAt(2);
  RawDelete(keys::HistoryIndex(tag, 2));
  RawDelete(keys::HistoryReverse(2, tag));
  // The value of another event's entry (its MAC names seq 3).
  const std::vector<std::string> other = ReverseKeysOf(*db_, 3);
  ASSERT_EQ(other.size(), 1u);
  RawPut(reverse[0], "");
  RawPut(index, RawGet(IndexKeyOf(other[0], 3)));
  ExpectIndexBrokenAt(2);
  // Event 4's two entries swapped (Anna's tag with Ben's slot and MAC, and
  // the other way round): each MAC names another tag and slot.
  RawPut(index, value);
  ASSERT_TRUE(VerifyOrDie().ok());
  const std::vector<std::string> both = ReverseKeysOf(*db_, 4);
  ASSERT_EQ(both.size(), 2u);
  const std::string first = RawGet(IndexKeyOf(both[0], 4));
  const std::string second = RawGet(IndexKeyOf(both[1], 4));
  ASSERT_NE(first.substr(0, 4), second.substr(0, 4));
  RawPut(IndexKeyOf(both[0], 4), second);
  RawPut(IndexKeyOf(both[1], 4), first);
  ExpectIndexBrokenAt(4);
  RawPut(IndexKeyOf(both[0], 4), first);
  RawPut(IndexKeyOf(both[1], 4), second);
  RawPut(index, value);
  EXPECT_TRUE(VerifyOrDie().ok());
}

TEST_F(HistoryIndexTest, OnlyADroppedMarkerWrittenWithTheAuditKeyExplainsAGap) {
  // Ben shredded and his index dropped: his part of event 4 gets a marker.
  keys_.erase("s-ben");
  leveldb::WriteBatch drop;
  ASSERT_EQ(*history_->DropSubjectIndex(drop, "s-ben", 10), 1u);
  ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &drop).ok());
  EXPECT_EQ(CountPrefix(std::string(keys::kHistoryDroppedPrefix)), 1u);
  EXPECT_TRUE(VerifyOrDie().ok());

  // Anna's entries of event 2 deleted and a marker put in their place:
  // made up, or copied from event 4 (its MAC names seq 4, slot 1).
  const std::vector<std::string> reverse = ReverseKeysOf(*db_, 2);
  ASSERT_EQ(reverse.size(), 1u);
  const std::string index = IndexKeyOf(reverse[0], 2);
  const std::string index_value = RawGet(index);
  RawDelete(index);
  RawDelete(reverse[0]);
  RawPut(keys::HistoryDropped(2, 0), std::string(32, '\0'));
  ExpectIndexBrokenAt(2);
  RawPut(keys::HistoryDropped(2, 0), RawGet(keys::HistoryDropped(4, 1)));
  ExpectIndexBrokenAt(2);
  RawDelete(keys::HistoryDropped(2, 0));
  RawPut(index, index_value);
  RawPut(reverse[0], "");
  EXPECT_TRUE(VerifyOrDie().ok());
  // Nor does the real marker stand for another slot of its own event.
  const std::vector<std::string> anna4 = ReverseKeysOf(*db_, 4);
  ASSERT_EQ(anna4.size(), 1u);
  RawDelete(IndexKeyOf(anna4[0], 4));
  RawDelete(anna4[0]);
  RawPut(keys::HistoryDropped(4, 0), RawGet(keys::HistoryDropped(4, 1)));
  ExpectIndexBrokenAt(4);
}

// An entry planted under the tag of a subject about to be shredded, with
// the slot of another subject's part: the shred's DropSubjectIndex must not
// turn it into a genuine dropped marker for that part (a review's finding).
TEST_F(HistoryIndexTest, APlantedEntryGetsNoDroppedMarkerFromAShred) {
  Append({Read(5, {"s-ben"}, 5)});  // Ben's alone.
  const std::vector<std::string> anna1 = ReverseKeysOf(*db_, 1);
  ASSERT_EQ(anna1.size(), 1u);
  const std::string anna_tag =
      anna1[0].substr(keys::HistoryReversePrefix(1).size());
  const std::vector<std::string> ben5 = ReverseKeysOf(*db_, 5);
  ASSERT_EQ(ben5.size(), 1u);
  // Ben's entries of event 5 deleted, one of Anna's tag made up for slot 0.
  RawDelete(IndexKeyOf(ben5[0], 5));
  RawDelete(ben5[0]);
  std::string planted(4, '\0');
  planted.append(32, 'j');
  RawPut(keys::HistoryIndex(anna_tag, 5), planted);
  ExpectIndexBrokenAt(5);
  // Anna shredded: her index dropped, in one batch.
  keys_.erase("s-anna");
  leveldb::WriteBatch drop;
  ASSERT_EQ(*history_->DropSubjectIndex(drop, "s-anna", 100), 5u);
  ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &drop).ok());
  EXPECT_FALSE(RawHas(keys::HistoryDropped(5, 0)));
  EXPECT_FALSE(RawHas(keys::HistoryIndex(anna_tag, 5)));
  for (uint64_t seq = 1; seq <= 4; ++seq) {
    EXPECT_TRUE(RawHas(keys::HistoryDropped(seq, 0))) << seq;
  }
  ExpectIndexBrokenAt(5);
}

// An entry whose MAC does not verify gets no marker, but the shred still
// takes everything that ties its subject to the event: the "hs:" twin (its
// tag) and the part's sealed subject id when it is the subject's.
TEST_F(HistoryIndexTest,
       AShredRemovesItsSubjectsEntriesEvenWhenTheyFailTheirMac) {
  const std::vector<std::string> reverse = ReverseKeysOf(*db_, 2);
  ASSERT_EQ(reverse.size(), 1u);
  const std::string index = IndexKeyOf(reverse[0], 2);
  std::string value = RawGet(index);
  value.back() = static_cast<char>(value.back() ^ 0x01);
  RawPut(index, value);
  ASSERT_TRUE(RawHas(keys::DisclosurePart(2, 0)));
  keys_.erase("s-anna");
  leveldb::WriteBatch drop;
  ASSERT_EQ(*history_->DropSubjectIndex(drop, "s-anna", 100), 4u);
  ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &drop).ok());
  EXPECT_FALSE(RawHas(index));
  EXPECT_FALSE(RawHas(reverse[0]));
  EXPECT_FALSE(RawHas(keys::DisclosurePart(2, 0)));
  EXPECT_FALSE(RawHas(keys::HistoryDropped(2, 0)));
  EXPECT_TRUE(RawHas(keys::HistoryDropped(3, 0)));
  EXPECT_TRUE(RawHas(keys::DisclosurePart(4, 1)));  // Ben's.
  ExpectIndexBrokenAt(2);
}

// An "h:" entry without its "hs:" twin is never reached from the walk.
TEST_F(HistoryIndexTest, AnIndexEntryWithoutItsReverseIsReported) {
  const std::vector<std::string> reverse = ReverseKeysOf(*db_, 3);
  ASSERT_EQ(reverse.size(), 1u);
  // Under a tag nobody has, with no "hs:" twin: the walk never meets it.
  RawPut(keys::HistoryIndex(std::string(32, 'q'), 3),
         RawGet(IndexKeyOf(reverse[0], 3)));
  ChainReport report = VerifyOrDie();
  EXPECT_EQ(report.problem, ChainReport::Problem::kIndex);
  EXPECT_EQ(report.first_broken, 3u);
  EXPECT_EQ(report.verified, 4u);  // Every event; then the index.
}

// A dropped marker, or an index entry, of another store whose chain went
// another way (e.g. the same store before a restore, which hands the same
// seqs out again) does not verify here: the MACs name the event's link.
TEST_F(HistoryIndexTest, AMarkerFromAnotherChainDoesNotVerify) {
  const std::string other_dir = dir_ + "-other";
  std::string marker;
  {
    auto db = OpenLevelDb(other_dir, /*create_if_missing=*/true,
                          leveldb::Env::Default(), LevelDbTuning());
    ASSERT_TRUE(db.has_value());
    History::Options options;
    options.sync_writes = false;
    auto other = History::Open(
        **db, *crypto::SecretKey::FromBytes(audit_bytes_.bytes()), options);
    ASSERT_TRUE(other.has_value());
    // The same seqs, other events: Ben's part in slot 1 of event 4.
    for (int i = 1; i <= 3; ++i) {
      leveldb::WriteBatch batch;
      auto pending =
          (*other)->Stage(batch, {Read(10 + i, {"s-ben"}, i)}, lookup_);
      ASSERT_TRUE(pending.has_value());
      ASSERT_TRUE((*db)->Write(leveldb::WriteOptions(), &batch).ok());
      (*other)->Commit(*pending);
    }
    leveldb::WriteBatch batch;
    auto pending =
        (*other)->Stage(batch, {Read(14, {"s-anna", "s-ben"}, 9)}, lookup_);
    ASSERT_TRUE(pending.has_value());
    ASSERT_TRUE((*db)->Write(leveldb::WriteOptions(), &batch).ok());
    (*other)->Commit(*pending);
    leveldb::WriteBatch drop;
    ASSERT_EQ(*(*other)->DropSubjectIndex(drop, "s-ben", 100), 4u);
    ASSERT_TRUE((*db)->Write(leveldb::WriteOptions(), &drop).ok());
    std::string value;
    ASSERT_TRUE(
        (*db)
            ->Get(leveldb::ReadOptions(), keys::HistoryDropped(4, 1), &value)
            .ok());
    marker = value;
  }
  std::filesystem::remove_all(other_dir);
  // Here, Ben's entries of event 4 replaced by that marker.
  const std::vector<std::string> both = ReverseKeysOf(*db_, 4);
  ASSERT_EQ(both.size(), 2u);
  for (const std::string& reverse : both) {
    if (RawGet(IndexKeyOf(reverse, 4)).substr(0, 4) !=
        std::string("\0\0\0\1", 4)) {
      continue;
    }
    RawDelete(IndexKeyOf(reverse, 4));
    RawDelete(reverse);
  }
  ASSERT_EQ(ReverseKeysOf(*db_, 4).size(), 1u);
  RawDelete(keys::DisclosurePart(4, 1));
  RawPut(keys::HistoryDropped(4, 1), marker);
  ExpectIndexBrokenAt(4);
}

TEST_F(HistoryIndexTest, ADisclosuresEntriesDeletedOrSwappedAreReported) {
  // The principal's entry: without it, breach scopes miss the read.
  const std::string by_principal =
      keys::Disclosure("officer-1", ToMicros(T0() + hours(2)), 2);
  ASSERT_TRUE(RawHas(by_principal));
  RawDelete(by_principal);
  ExpectIndexBrokenAt(2);
  RawPut(by_principal, "");
  // A part's sealed subject id: without it, the walk counts the part as a
  // shredded subject's.
  const std::string sealed_id = RawGet(keys::DisclosurePart(2, 0));
  RawDelete(keys::DisclosurePart(2, 0));
  ExpectIndexBrokenAt(2);
  // Ben's sealed id (event 4, slot 1) moved to Anna's slot does not open.
  RawPut(keys::DisclosurePart(4, 0), RawGet(keys::DisclosurePart(4, 1)));
  RawPut(keys::DisclosurePart(2, 0), sealed_id);
  ExpectIndexBrokenAt(4);
}

TEST_F(HistoryIndexTest, AStubWithIndexEntriesLeftIsReported) {
  auto result = history_->Prune(RecordsUpTo(2), 100, 1);  // Stubs event 2.
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  ASSERT_EQ(result->stubbed, 1u);
  EXPECT_TRUE(VerifyOrDie().ok());
  RawPut(keys::HistoryReverse(2, std::string(32, 'x')), "");
  ExpectIndexBrokenAt(2);
}

TEST_F(HistoryIndexTest, PruningRemovesDroppedMarkersWithTheEvent) {
  keys_.erase("s-ben");
  leveldb::WriteBatch drop;
  ASSERT_EQ(*history_->DropSubjectIndex(drop, "s-ben", 10), 1u);
  ASSERT_TRUE(db_->Write(leveldb::WriteOptions(), &drop).ok());
  ASSERT_EQ(CountPrefix(std::string(keys::kHistoryDroppedPrefix)), 1u);
  auto result = history_->Prune(RecordsUpTo(4), 100);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->collapsed, 4u);
  EXPECT_EQ(CountPrefix(std::string(keys::kHistoryDroppedPrefix)), 0u);
  EXPECT_EQ(CountPrefix(kIndex), 0u);
  EXPECT_TRUE(VerifyOrDie().ok());
}

TEST_F(HistoryIndexTest, PruningKeepsAnEventWhoseBytesFailTheirMac) {
  // A ciphertext replaced: the chain's link still verifies (it covers the
  // commitments), the MAC does not. A stub made of it would launder that.
  ReplaceSealedPart(*db_, 2, 0,
                    crypto::Seal(*keys_["s-anna"], AsBytes("x"), AsBytes("y")));
  ASSERT_EQ(VerifyOrDie().problem, ChainReport::Problem::kSeal);
  const std::string before = RawGet(EventKey(2));
  std::vector<uint64_t> offered;
  auto result = history_->Prune(
      [&offered](const EventHeader& h) {
        offered.push_back(h.seq);
        return true;
      },
      100);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  // Kept, said, and never offered; the others pruned.
  EXPECT_EQ(result->unauthenticated, (std::vector<uint64_t>{2}));
  EXPECT_EQ(offered, (std::vector<uint64_t>{1, 3, 4}));
  EXPECT_EQ(result->stubbed, 3u);
  EXPECT_EQ(RawGet(EventKey(2)), before);
  EXPECT_EQ(VerifyOrDie().problem, ChainReport::Problem::kSeal);
}

}  // namespace
}  // namespace custos
