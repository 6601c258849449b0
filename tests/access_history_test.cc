// The access history through the engine (DESIGN section 5): every operation
// on personal data is an event written with the change, sealed per subject,
// chained, queryable by auditors, pruned after its retention, and gathered
// into the subject report.

#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "report/subject_report_html.h"
#include "report/subject_report_json.h"
#include "storage/codec.h"
#include "storage/keys.h"
#include "storage/keystore.h"
#include "storage/leveldb_util.h"
#include "storage/limits.h"
#include "storage/sweeper.h"
#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

using std::chrono::hours;
using namespace std::chrono_literals;

class AccessHistoryTest : public EngineTest {
 protected:
  std::vector<AccessEvent> HistoryOf(const std::string& subject) {
    auto page = engine_->AccessHistory(*auditor_, subject, Timestamp::min(),
                                       Timestamp::max(), 0, 1000);
    EXPECT_TRUE(page.has_value()) << page.error().ToString();
    return page ? page->events : std::vector<AccessEvent>{};
  }
  // The code of a query of the subject's whole history (kOk when it is
  // answered).
  StatusCode HistoryCode(const std::string& subject) {
    auto page = engine_->AccessHistory(*auditor_, subject, Timestamp::min(),
                                       Timestamp::max());
    return page ? StatusCode::kOk : page.error().code();
  }
  std::vector<std::string> Actions(const std::string& subject) {
    std::vector<std::string> actions;
    for (const auto& e : HistoryOf(subject)) actions.push_back(e.action);
    return actions;
  }
  uint64_t HeadSeq() {
    auto chain = engine_->VerifyChain(*auditor_);
    EXPECT_TRUE(chain.has_value());
    return chain ? chain->head_seq : 0;
  }
  SweepReport SweepAt(Timestamp as_of) {
    SweepOptions options;
    options.as_of = as_of;
    // A sweep writes only what is in force: the clock moves there first.
    if (as_of > clock_.Now()) clock_.Set(as_of);
    auto report = engine_->Sweep(*admin_, options);
    EXPECT_TRUE(report.has_value()) << report.error().ToString();
    return report.value_or(SweepReport{});
  }
};

// The story of the issue: authority A stores a request about a person and
// grants it to B; B reads it; A closes it; it is blocked, then erased on
// schedule; three years later the person's report still lists that B read
// it, when, and that the data was erased on its date.
TEST_F(AccessHistoryTest, YearsLaterThePersonStillLearnsWhoReadTheirData) {
  NewRecord r;
  r.kind = "request";
  r.attributes = {{"topic", "professional qualification"}};
  r.personal = {{"anna@example.org", {{"name", "Anna Example"}}}};
  clock_.Set(At(2026, 8, 31, 8));  // Before B's read: the report is by time.
  uint64_t id = *engine_->CreateRecord(*owner_, r);
  ASSERT_TRUE(engine_->Grant(*owner_, id, "authority-b").ok());
  clock_.Set(At(2026, 8, 31, 9));
  ASSERT_TRUE(engine_->GetRecord(*grantee_, id).has_value());  // B reads.
  clock_.Set(At(2026, 8, 31, 12));
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");

  clock_.Set(At(2027, 3, 1));
  EXPECT_EQ(SweepAt(clock_.Now()).blocked, 1u);
  clock_.Set(At(2029, 9, 1));
  EXPECT_EQ(SweepAt(clock_.Now()).erased, 1u);
  clock_.Set(At(2032, 9, 1));  // Three years after the erasure.
  SweepAt(clock_.Now());       // History is kept five years: nothing pruned.

  auto report = engine_->ProduceSubjectReport(*auditor_, anna);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->subject_identifier, "anna@example.org");
  ASSERT_EQ(report->records.size(), 1u);
  EXPECT_EQ(report->records[0].state, RecordState::kErased);
  EXPECT_EQ(report->records[0].erased_at, At(2029, 8, 31));
  EXPECT_TRUE(report->records[0].personal.empty());

  std::vector<std::string> actions;
  const SubjectReport::Access* read_by_b = nullptr;
  for (const auto& a : report->history) {
    actions.push_back(a.action);
    if (a.action == "read") read_by_b = &a;
  }
  // The admin's lookup of Anna (by her identifier, after the close) is
  // there too.
  EXPECT_EQ(actions,
            (std::vector<std::string>{"create", "grant", "read", "close",
                                      "find_subject", "block", "erase"}));
  ASSERT_NE(read_by_b, nullptr);
  EXPECT_EQ(read_by_b->principal_id, "authority-b");
  EXPECT_EQ(read_by_b->principal_name, "Name of authority-b");
  EXPECT_EQ(read_by_b->at, At(2026, 8, 31, 9));
  EXPECT_EQ(read_by_b->record_id, id);
  // B received Anna's identifier with her name.
  EXPECT_EQ(read_by_b->fields,
            (std::vector<std::string>{"identifier", "name"}));
  EXPECT_EQ(report->history.back().at, At(2029, 8, 31));  // The erasure.

  const std::string html = RenderSubjectReportHtml(*report);
  EXPECT_NE(html.find("Name of authority-b"), std::string::npos);
  EXPECT_NE(html.find("2029"), std::string::npos);
  const std::string json = RenderSubjectReportJson(*report);
  EXPECT_NE(json.find("\"authority-b\""), std::string::npos);
  // Producing the report is itself an event.
  EXPECT_EQ(Actions(anna).back(), "report");
}

TEST_F(AccessHistoryTest, EveryOperationOnPersonalDataIsAnEvent) {
  uint64_t id = CreateRecord("anna@example.org", {"authority-b"});
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  ASSERT_TRUE(engine_->GetRecord(*grantee_, id).has_value());
  ASSERT_TRUE(engine_->Rectify(*owner_, id, anna, {{"name", "Anna M."}}));
  ASSERT_TRUE(engine_->FlagIncorrect(*grantee_, id, anna, "wrong year").ok());
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  ASSERT_TRUE(engine_->GetRecord(*officer_, id, APurpose()).has_value());
  ASSERT_TRUE(engine_->Contest(*officer_, id, anna, "disputed", {}).ok());
  auto hold = engine_->SetRecordHold(*officer_, id, "case 1", At(2027, 1, 1));
  ASSERT_TRUE(hold.has_value());
  ASSERT_TRUE(engine_->ReleaseHold(*officer_, hold->id).ok());
  ASSERT_TRUE(engine_->Withdraw(*owner_, id).ok());
  ASSERT_TRUE(engine_->EraseRecord(*admin_, id).ok());
  EXPECT_EQ(Actions(anna),
            (std::vector<std::string>{"create", "grant", "find_subject", "read",
                                      "rectify", "flag", "close",
                                      "read_restricted", "contest", "hold_set",
                                      "hold_released", "withdraw", "erase"}));
  std::vector<AccessEvent> events = HistoryOf(anna);
  // The admin's lookup: about no record, what it learnt is the subject.
  EXPECT_EQ(events[2].principal_id, "admin");
  EXPECT_EQ(events[2].record_id, 0u);
  EXPECT_TRUE(events[2].fields.empty());
  // A lookup that finds no one writes nothing.
  const uint64_t head = HeadSeq();
  EXPECT_EQ(engine_->FindSubject(*admin_, "nobody@example.org").error().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(HeadSeq(), head);
  const AccessEvent& restricted = events[7];
  EXPECT_EQ(restricted.principal_id, "officer");
  EXPECT_EQ(restricted.record_state, RecordState::kClosed);
  EXPECT_EQ(restricted.purpose, PurposeKind::kPublicInterest);
  EXPECT_EQ(restricted.justification, "court order 12/2026");
  // The officer's read showed the flag's note too.
  EXPECT_EQ(restricted.fields,
            (std::vector<std::string>{"identifier", "name", "flag:note"}));
  EXPECT_EQ(events[1].fields,
            (std::vector<std::string>{"grantee:authority-b"}));
  EXPECT_EQ(events[0].fields, (std::vector<std::string>{"name", "born"}));
}

TEST_F(AccessHistoryTest, ReadsWithoutPersonalDataAndRefusedCallsAreNoEvents) {
  uint64_t id = CreateRecord();
  const uint64_t head = HeadSeq();
  ASSERT_TRUE(engine_->GetRecord(*admin_, id).has_value());  // Attributes.
  EXPECT_EQ(engine_->GetRecord(*stranger_, id).error().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(engine_->Grant(*stranger_, id, "authority-b").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(HeadSeq(), head);
  ListQuery q;
  ASSERT_EQ(engine_->ListRecords(*owner_, q)->records.size(), 1u);
  EXPECT_EQ(HeadSeq(), head + 1);  // The owner's listing disclosed one.
}

TEST_F(AccessHistoryTest, ShreddingASubjectErasesTheirHistoryButNotTheChain) {
  NewRecord r;
  r.kind = "request";
  r.personal = {{"anna@example.org", {{"name", "Anna"}}},
                {"ben@example.org", {{"name", "Ben"}}}};
  uint64_t id = *engine_->CreateRecord(*owner_, r);
  ASSERT_TRUE(engine_->GetRecord(*owner_, id).has_value());
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  const std::string ben = *engine_->FindSubject(*admin_, "ben@example.org");
  EXPECT_EQ(Actions(anna).size(), 3u);  // Create, read, the admin's lookup.
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  // At once, as the report: not an empty page, which would read as
  // "nobody received their data".
  EXPECT_EQ(HistoryCode(anna), StatusCode::kNotFound);
  EXPECT_EQ(engine_->ProduceSubjectReport(*auditor_, anna).error().code(),
            StatusCode::kNotFound);
  ASSERT_EQ(*engine_->CompleteShreds(100), 1u);
  // Completed, the shred leaves nothing naming the subject: its id is
  // unknown now.
  EXPECT_EQ(HistoryCode(anna), StatusCode::kNotFound);
  EXPECT_EQ(Actions(ben),
            (std::vector<std::string>{"create", "read", "find_subject"}));
  auto chain = engine_->VerifyChain(*auditor_);
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->ok) << chain->problem;
  EXPECT_EQ(engine_->ProduceSubjectReport(*auditor_, anna).error().code(),
            StatusCode::kNotFound);
}

// The report lists the history by time: a transition the sweep writes
// down after its deadline, dated at the deadline, comes before a read made
// after the deadline and before the sweep (review helper-101: it was
// listed by sequence, so the report said the officer read the blocked
// record before it was blocked).
TEST_F(AccessHistoryTest, TheReportListsTheHistoryByTime) {
  NewRecord r;
  r.kind = "request";
  r.personal = {{"anna@example.org", {{"name", "Anna Example"}}}};
  const uint64_t id = *engine_->CreateRecord(*owner_, r);
  clock_.Set(At(2026, 8, 31, 12));
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  clock_.Set(At(2027, 3, 1));  // Past the block deadline; no sweep yet.
  auto read = engine_->GetRecord(*officer_, id, APurpose());
  ASSERT_TRUE(read.has_value()) << read.error().ToString();
  EXPECT_EQ(read->state, RecordState::kBlocked);
  EXPECT_EQ(SweepAt(clock_.Now()).blocked, 1u);  // Dated at the deadline.
  auto report = engine_->ProduceSubjectReport(*auditor_, anna);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  std::vector<std::string> actions;
  Timestamp previous = Timestamp::min();
  for (const auto& a : report->history) {
    actions.push_back(a.action);
    EXPECT_GE(a.at, previous) << a.action;
    previous = a.at;
  }
  EXPECT_EQ(actions,
            (std::vector<std::string>{"create", "close", "find_subject",
                                      "block", "read_restricted"}));
}

TEST_F(AccessHistoryTest, ATamperedEventIsFoundByVerifyChain) {
  uint64_t id = CreateRecord();
  ASSERT_TRUE(engine_->GetRecord(*owner_, id).has_value());
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  auto before = engine_->VerifyChain(*admin_);
  ASSERT_TRUE(before->ok);
  // The fixture's six principal_created events, then create, read, close.
  EXPECT_EQ(before->head_seq, 9u);
  EXPECT_EQ(before->head_link_hex.size(), 64u);
  Close();
  {
    std::unique_ptr<leveldb::DB> db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    int n = 0;
    const leveldb::Slice events(keys::kEventPrefix.data(),
                                keys::kEventPrefix.size());
    for (it->Seek(events); it->Valid() && it->key().starts_with(events);
         it->Next()) {
      if (++n != 2) continue;
      std::string value = it->value().ToString();
      value[value.size() / 2] ^= 0x01;
      ASSERT_TRUE(db->Put(leveldb::WriteOptions(), it->key(), value).ok());
      break;
    }
    ASSERT_EQ(n, 2);
  }
  Reopen();
  auto auditor = engine_->ActorFor("auditor");
  auto chain = engine_->VerifyChain(*auditor);
  ASSERT_TRUE(chain.has_value());
  EXPECT_FALSE(chain->ok);
  EXPECT_EQ(chain->first_broken, 2u);
}

TEST_F(AccessHistoryTest,
       HistoryIsPrunedAfterItsRetentionAndTheChainStillVerifies) {
  NewRecord r;
  r.kind = "alert";  // Erased 6 months after closure; history kept 5 years.
  r.personal = {{"anna@example.org", {{"name", "Anna"}}}};
  uint64_t id = *engine_->CreateRecord(*owner_, r);
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  uint64_t other = CreateRecord("ben@example.org");  // Stays ACTIVE.
  ASSERT_TRUE(engine_->GetRecord(*owner_, other).has_value());

  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);
  EXPECT_EQ(Actions(anna), (std::vector<std::string>{"create", "close",
                                                     "find_subject", "erase"}));
  EXPECT_EQ(SweepAt(At(2032, 2, 28) - 1us).history_pruned, 0u);
  // The record's create, close and erase; and the admin's lookup and the
  // auditor's query above, about Anna and no record: five years old, and
  // Anna has no record whose history is still kept (docs/history.md,
  // "Retention: pruning and checkpoints").
  EXPECT_EQ(SweepAt(At(2032, 2, 28)).history_pruned, 5u);
  EXPECT_EQ(Actions(anna), std::vector<std::string>{});
  auto chain = engine_->VerifyChain(*auditor_);
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->ok) << chain->problem;
  const std::string ben = *engine_->FindSubject(*admin_, "ben@example.org");
  EXPECT_EQ(Actions(ben),
            (std::vector<std::string>{"create", "read", "find_subject"}));
}

// Issue 16: the next record id and statistics delta number are derived at
// Open (docs/storage.md, "Counters derived at Open"). A sweep that erases
// the last record, prunes its history and folds every statistics delta
// deletes the newest keys of two families; across a reopen without the
// stored counters, no id is reused, the statistics stay exact and the chain
// verifies.
TEST_F(AccessHistoryTest, AfterAPruneAndAReopenNoIdIsReusedAndAllStillAdds) {
  const uint64_t first = CreateRecord("ben@example.org");
  ASSERT_TRUE(engine_->GetRecord(*owner_, first).has_value());
  NewRecord r;
  r.kind = "alert";  // Erased 6 months after closure; history kept 5 years.
  r.personal = {{"anna@example.org", {{"name", "Anna"}}}};
  const uint64_t last = *engine_->CreateRecord(*owner_, r);
  ASSERT_TRUE(engine_->Close(*owner_, last).ok());
  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);
  EXPECT_EQ(SweepAt(At(2032, 2, 28)).history_pruned, 3u);
  Close();
  {
    auto db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(CountKeys(*db, "st:d:"), 0);  // Every delta folded.
    for (const char* counter : {"m:next_record_id", "m:stats_next_delta"}) {
      ASSERT_TRUE(db->Delete(leveldb::WriteOptions(), counter).ok());
    }
  }
  Reopen();
  const uint64_t next = CreateRecord("eva@example.org");
  EXPECT_EQ(next, last + 1);
  auto ben = engine_->GetRecord(*owner_, first);
  ASSERT_TRUE(ben.has_value()) << ben.error().ToString();
  ASSERT_EQ(ben->parts.size(), 1u);
  EXPECT_EQ(ben->parts[0].subject_identifier, "ben@example.org");
  const std::string eva = *engine_->FindSubject(*admin_, "eva@example.org");
  EXPECT_EQ(Actions(eva), (std::vector<std::string>{"create", "find_subject"}));
  auto chain = engine_->VerifyChain(*auditor_);
  ASSERT_TRUE(chain.has_value()) << chain.error().ToString();
  EXPECT_TRUE(chain->ok) << chain->problem;
  auto stats = engine_->ProduceStatistics(*auditor_, {});
  ASSERT_TRUE(stats.has_value()) << stats.error().ToString();
  std::map<std::string, std::array<uint64_t, 4>> by_kind;
  for (const KindStatistics& k : stats->kinds) by_kind[k.kind] = k.by_state;
  EXPECT_EQ(by_kind["request"], (std::array<uint64_t, 4>{2, 0, 0, 0}));
  EXPECT_EQ(by_kind["alert"], (std::array<uint64_t, 4>{0, 0, 0, 1}));
}

// A record about two people: each one's history names the fields of
// theirs that were stored or shown, not the other's (their names can say
// much: a review's finding).
TEST_F(AccessHistoryTest, ASharedRecordsEventsNameEachSubjectsOwnFieldsOnly) {
  NewRecord r;
  r.kind = "request";
  r.personal = {
      {"anna@example.org", {{"name", "Anna"}}},
      {"ben@example.org", {{"name", "Ben"}, {"criminal_record", "none"}}}};
  r.grants = {"authority-b"};
  const uint64_t id = *engine_->CreateRecord(*owner_, r);
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  const std::string ben = *engine_->FindSubject(*admin_, "ben@example.org");
  ASSERT_TRUE(engine_->FlagIncorrect(*grantee_, id, ben, "wrong").ok());
  ASSERT_TRUE(engine_->GetRecord(*owner_, id).has_value());
  std::map<std::string, std::vector<std::string>> anna_fields, ben_fields;
  for (const AccessEvent& e : HistoryOf(anna)) anna_fields[e.action] = e.fields;
  for (const AccessEvent& e : HistoryOf(ben)) ben_fields[e.action] = e.fields;
  EXPECT_EQ(anna_fields["create"], (std::vector<std::string>{"name"}));
  EXPECT_EQ(ben_fields["create"],
            (std::vector<std::string>{"name", "criminal_record"}));
  EXPECT_EQ(anna_fields["read"],
            (std::vector<std::string>{"identifier", "name"}));
  EXPECT_EQ(ben_fields["read"],
            (std::vector<std::string>{"identifier", "name", "criminal_record",
                                      "flag:note"}));
}

// History pruning dates a record's erasure from the erasure ledger (its
// entry MAC'd under the ledger key), not from the stored record, which
// someone who can write the files but holds no key can change: marking a
// record erased years ago had the next sweep prune its history, with a
// checkpoint that verified (a review's finding).
class AccessHistoryPruningTest : public AccessHistoryTest {
 protected:
  // Anna's alert: erased 6 months after closure, history kept 5 years.
  uint64_t CreateAlert() {
    NewRecord r;
    r.kind = "alert";
    r.personal = {{"anna@example.org", {{"name", "Anna"}}}};
    auto id = engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(id.has_value()) << id.error().ToString();
    return id.value_or(0);
  }

  // Rewrites the value under `key` in database `db_name` ("records",
  // "keystore") with the engine closed, as someone with the files but no
  // key could; then reopens.
  void RewriteRaw(const std::string& db_name, const std::string& key,
                  const std::function<void(std::string&)>& f) {
    Close();
    {
      auto db = OpenRaw(db_name);
      ASSERT_NE(db, nullptr);
      std::string value;
      ASSERT_TRUE(db->Get(leveldb::ReadOptions(), key, &value).ok());
      f(value);
      ASSERT_TRUE(db->Put(leveldb::WriteOptions(), key, value).ok());
    }
    Reopen();
    admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
    auditor_ = std::make_unique<Actor>(*engine_->ActorFor("auditor"));
  }

  // Reopens the engine with Options::history_examined_per_sweep `bound`.
  void ReopenWithPruningBound(size_t bound) {
    Options options = MakeOptions();
    options.history_examined_per_sweep = bound;
    ReopenWith(options);
    admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
    owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  }

  // The seq of the access history's durable head.
  uint64_t DurableHead() {
    auto recorded = engine_->DurableHistoryHead();
    EXPECT_TRUE(recorded.has_value()) << recorded.error().ToString();
    return recorded ? recorded->seq : 0;
  }

  // Anna's alert read `reads` times by its owner, closed and erased (on
  // 2027-02-28): its events' history ends five years on. Returns Anna's
  // subject id.
  std::string ReadAlertAndEraseIt(int reads) {
    const uint64_t id = CreateAlert();
    const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
    Read(id, reads);
    EXPECT_TRUE(engine_->Close(*owner_, id).ok());
    EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);
    return anna;
  }

  // Reads record `id` `times` times as its owner: an event each.
  void Read(uint64_t id, int times) {
    for (int i = 0; i < times; ++i) {
      ASSERT_TRUE(engine_->GetRecord(*owner_, id).has_value());
    }
  }

  // Rewrites record `id` as stored.
  void RewriteStoredRecord(uint64_t id,
                           const std::function<void(codec::StoredRecord&)>& f) {
    RewriteRaw("records", keys::Record(id), [&f](std::string& value) {
      auto record = codec::DecodeRecord(value);
      ASSERT_TRUE(record.has_value()) << record.error().ToString();
      f(*record);
      value = codec::EncodeRecord(*record);
    });
  }
};

TEST_F(AccessHistoryPruningTest, AnErasureDatedBackInTheRecordPrunesNothing) {
  const uint64_t id = CreateAlert();
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);
  RewriteStoredRecord(id, [](codec::StoredRecord& stored) {
    stored.erased_at_micros = ToMicros(At(2020, 1, 1));
  });
  EXPECT_EQ(SweepAt(At(2027, 3, 1)).history_pruned, 0u);
  EXPECT_EQ(Actions(anna), (std::vector<std::string>{"create", "close",
                                                     "find_subject", "erase"}));
  // Pruned when the ledger's date says so (the lookup with them: it is
  // five years old by then).
  EXPECT_EQ(SweepAt(At(2032, 2, 28) - 1us).history_pruned, 0u);
  EXPECT_EQ(SweepAt(At(2032, 2, 28)).history_pruned, 4u);
}

TEST_F(AccessHistoryPruningTest,
       ARecordMarkedErasedWithoutALedgerEntryKeepsIt) {
  const uint64_t id = CreateRecord("ben@example.org");
  ASSERT_TRUE(engine_->GetRecord(*owner_, id).has_value());
  const std::string ben = *engine_->FindSubject(*admin_, "ben@example.org");
  RewriteStoredRecord(id, [](codec::StoredRecord& stored) {
    stored.state = RecordState::kErased;
    stored.erased_at_micros = ToMicros(At(2020, 1, 1));
  });
  const SweepReport report = SweepAt(At(2032, 2, 28));
  EXPECT_EQ(report.history_pruned, 0u);
  EXPECT_EQ(Actions(ben),
            (std::vector<std::string>{"create", "read", "find_subject"}));
  bool reported = false;
  for (const SkippedRecord& s : report.skipped) {
    reported =
        reported || (s.record_id == id &&
                     s.reason ==
                         "DataLoss: an erased record has no erasure ledger "
                         "entry; its history is kept");
  }
  EXPECT_TRUE(reported);
}

// Either time of the entry moved back, its MAC kept: the entry is corrupt,
// and the record's history is kept.
class LedgerTimeTest : public AccessHistoryPruningTest,
                       public ::testing::WithParamInterface<size_t> {};

TEST_P(LedgerTimeTest, ALedgerTimeMovedBackFailsItsMac) {
  const uint64_t id = CreateAlert();
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);
  Close();
  {
    // The only erasure entry.
    auto db = OpenRaw("keystore");
    ASSERT_NE(db, nullptr);
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    const std::string prefix(Keystore::kLedgerErasurePrefix);
    it->Seek(prefix);
    ASSERT_TRUE(it->Valid() && it->key().starts_with(prefix));
    const std::string key = it->key().ToString();
    std::string value = it->value().ToString();
    it.reset();
    ASSERT_EQ(value.size(), 48u);  // Erased at, written at, MAC.
    std::string dated_back;
    AppendBigEndian64(dated_back,
                      static_cast<uint64_t>(ToMicros(At(2020, 1, 1))));
    value.replace(GetParam(), 8, dated_back);
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), key, value).ok());
  }
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  const SweepReport report = SweepAt(At(2031, 1, 1));
  EXPECT_EQ(report.history_pruned, 0u);
  ASSERT_EQ(report.skipped.size(), 1u);
  EXPECT_EQ(report.skipped[0].record_id, id);
  EXPECT_EQ(report.skipped[0].reason, "DataLoss: corrupt ledger entry");
}

INSTANTIATE_TEST_SUITE_P(ErasedAtAndWrittenAt, LedgerTimeTest,
                         ::testing::Values(size_t{0}, size_t{8}));

// One event whose stored bytes fail their MAC stopped all pruning (a
// review's finding): it is kept and reported, the others are pruned.
TEST_F(AccessHistoryPruningTest, AnEventFailingItsMacIsKeptAndTheRestPruned) {
  const uint64_t create_seq = HeadSeq() + 1;
  const uint64_t id = CreateAlert();
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);
  std::string tampered;
  RewriteRaw("records", keys::Event(create_seq), [&](std::string& value) {
    value.back() = static_cast<char>(value.back() ^ 0x01);  // In its MAC.
    tampered = value;
  });
  const SweepReport report = SweepAt(At(2032, 3, 1));
  EXPECT_EQ(report.history_pruned, 2u);  // The close and the erasure.
  EXPECT_EQ(report.history_unauthenticated, 1u);
  EXPECT_TRUE(report.skipped.empty());
  // Kept.
  Close();
  {
    auto db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    std::string value;
    ASSERT_TRUE(
        db->Get(leveldb::ReadOptions(), keys::Event(create_seq), &value).ok());
    EXPECT_EQ(value, tampered);  // Not a stub.
  }
  Reopen();
}

// The erasures the ledger did not hear of before: a record erased by its
// only subject's shred, and an erasure in force written down by
// ReapplyPolicies. Their history is pruned when due, as a sweep's are.
TEST_F(AccessHistoryPruningTest, ARecordErasedByAShredHasItsHistoryPruned) {
  ASSERT_NE(CreateAlert(), 0u);
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  clock_.Set(At(2026, 10, 1));
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  // The lookup, about Anna and no record: five years after it was made
  // (her parts are no longer indexed, so only its own age counts).
  EXPECT_EQ(SweepAt(At(2031, 10, 1) - 1us).history_pruned, 1u);
  // The record's create event, five years after the shred erased it, and
  // the shred's own event, about no record, five years old (an erasure by
  // a shred writes no event about the record).
  EXPECT_EQ(SweepAt(At(2031, 10, 1)).history_pruned, 2u);
}

TEST_F(AccessHistoryPruningTest, AnErasureReapplyPoliciesWritesDownIsPruned) {
  const uint64_t id = CreateAlert();
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  clock_.Set(At(2027, 3, 1));  // Past its erasure; no sweep since.
  ASSERT_TRUE(engine_->ReapplyPolicies(*admin_).has_value());
  // Dated from when the erasure was written down (the later of the two).
  EXPECT_EQ(SweepAt(At(2032, 3, 1) - 1us).history_pruned, 0u);
  EXPECT_EQ(SweepAt(At(2032, 3, 1)).history_pruned, 3u);
}

// The erasure time a sweep writes to the ledger is the record's deadline,
// stored unauthenticated: moved back to 2015, the sweep erases the record
// "in 2015". Its history is still kept five years from when the erasure
// was written down (a review's finding).
TEST_F(AccessHistoryPruningTest, ADeadlineMovedBackDoesNotShortenTheHistory) {
  const uint64_t id = CreateAlert();
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  const int64_t moved = ToMicros(At(2015, 1, 1));
  Close();
  {
    auto db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    std::string value;
    ASSERT_TRUE(db->Get(leveldb::ReadOptions(), keys::Record(id), &value).ok());
    auto record = codec::DecodeRecord(value);
    ASSERT_TRUE(record.has_value());
    const std::string old_key =
        keys::Deadline(record->next_deadline_micros, id);
    std::string entry;
    ASSERT_TRUE(db->Get(leveldb::ReadOptions(), old_key, &entry).ok());
    record->next_deadline_micros = moved;
    leveldb::WriteBatch batch;
    batch.Delete(old_key);
    batch.Put(keys::Deadline(moved, id), entry);
    batch.Put(keys::Record(id), codec::EncodeRecord(*record));
    ASSERT_TRUE(db->Write(leveldb::WriteOptions(), &batch).ok());
  }
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  auditor_ = std::make_unique<Actor>(*engine_->ActorFor("auditor"));
  clock_.Set(At(2026, 10, 1));
  EXPECT_EQ(SweepAt(At(2026, 10, 1)).erased, 1u);
  EXPECT_EQ(SweepAt(At(2026, 10, 2)).history_pruned, 0u);
  EXPECT_EQ(Actions(anna), (std::vector<std::string>{"create", "close",
                                                     "find_subject", "erase"}));
  EXPECT_EQ(SweepAt(At(2031, 10, 1) - 1us).history_pruned, 0u);
  // With the lookup: five years old, and Anna's only record's history due.
  EXPECT_EQ(SweepAt(At(2031, 10, 1)).history_pruned, 4u);
}

// An event about a subject and no record (here an admin's lookup and an
// auditor's look at her history) is kept while any of her records' history
// is, and five years (the longest history_after) from its own instant:
// it goes with the last of them. Events about no subject (who may act,
// policies) are kept.
TEST_F(AccessHistoryPruningTest,
       EventsAboutASubjectAndNoRecordGoWithTheLastOfHerRecordsHistory) {
  const uint64_t alert = CreateAlert();
  NewRecord r;
  r.kind = "request";  // Erased 3 years after closure, history 5 years.
  r.personal = {{"anna@example.org", {{"name", "Anna"}}}};
  const uint64_t request = *engine_->CreateRecord(*owner_, r);
  ASSERT_TRUE(engine_->Close(*owner_, alert).ok());
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);

  // The alert's create, close and erase; the lookup stays, five years old
  // but about Anna, whose request is still open.
  EXPECT_EQ(SweepAt(At(2032, 2, 28)).history_pruned, 3u);
  EXPECT_EQ(Actions(anna),
            (std::vector<std::string>{"create", "find_subject"}));

  clock_.Set(At(2032, 3, 1));
  ASSERT_TRUE(engine_->Close(*owner_, request).ok());
  EXPECT_EQ(SweepAt(At(2035, 3, 1)).erased, 1u);
  EXPECT_EQ(Actions(anna), (std::vector<std::string>{"create", "find_subject",
                                                     "access_history", "close",
                                                     "block", "erase"}));
  // The look of 2032-02-28 is five years old in 2037; still kept, with
  // the rest, until the request's history ends.
  EXPECT_EQ(SweepAt(At(2040, 3, 1) - 1us).history_pruned, 0u);
  // The request's four events, the lookup and both looks.
  EXPECT_EQ(SweepAt(At(2040, 3, 1)).history_pruned, 7u);
  EXPECT_EQ(Actions(anna), std::vector<std::string>{});
  // The fixture's six principal_created events, about no subject, are
  // never due.
  EXPECT_EQ(SweepAt(At(2060, 1, 1)).history_pruned, 0u);
  auto chain = engine_->VerifyChain(*auditor_);
  ASSERT_TRUE(chain.has_value()) << chain.error().ToString();
  EXPECT_TRUE(chain->ok) << chain->problem;
}

// Someone with the files but no key made up an index entry for the first
// admin's event (about no subject): pruning took the event for one about
// a subject whose index holds nothing, and pruned it (a review, helper-126).
// Index entries are authenticated first; one that does not is kept.
TEST_F(AccessHistoryPruningTest, AMadeUpIndexEntryPrunesNothing) {
  Close();
  {
    auto db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    const std::string forged_tag(32, '\x5a');
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(),
                        keys::HistoryReverse(1, forged_tag), "")
                    .ok());
  }
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  auditor_ = std::make_unique<Actor>(*engine_->ActorFor("auditor"));
  EXPECT_EQ(SweepAt(At(2060, 1, 1)).history_pruned, 0u);
}

TEST_F(AccessHistoryTest, PrunedEventsLeaveTheFiles) {
  NewRecord r;
  r.kind = "alert";
  r.personal = {{"anna@example.org", {{"name", "Anna"}}}};
  // After the fixture's principal_created events.
  const uint64_t create_seq = HeadSeq() + 1;
  uint64_t id = *engine_->CreateRecord(*owner_, r);
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);
  Close();
  // The stored create event: its sealed part is random-looking, so a slice
  // of it identifies these bytes anywhere.
  std::string slice;
  {
    std::unique_ptr<leveldb::DB> db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    const std::string key = keys::Event(create_seq);
    std::string value;
    ASSERT_TRUE(db->Get(leveldb::ReadOptions(), key, &value).ok());
    ASSERT_GT(value.size(), 96u);
    slice = value.substr(value.size() - 64, 32);
  }
  EXPECT_NE(ReadAllFiles(dir_).find(slice), std::string::npos);  // Control.
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  EXPECT_EQ(SweepAt(At(2032, 2, 28)).history_pruned, 3u);
  Close();
  EXPECT_EQ(ReadAllFiles(dir_).find(slice), std::string::npos);
}

TEST_F(AccessHistoryTest, OnlyAuditorsQueryHistoryAndProduceReports) {
  CreateRecord();
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  EXPECT_EQ(
      engine_->AccessHistory(*owner_, anna, Timestamp::min(), Timestamp::max())
          .error()
          .code(),
      StatusCode::kPermissionDenied);
  EXPECT_EQ(engine_->ProduceSubjectReport(*admin_, anna).error().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(engine_->VerifyChain(*owner_).error().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(engine_
                ->AccessHistory(*auditor_, "s-none", Timestamp::min(),
                                Timestamp::max())
                .error()
                .code(),
            StatusCode::kNotFound);
}

TEST_F(AccessHistoryTest, TheHistoryQueryFiltersByTimeAndPages) {
  uint64_t id = CreateRecord();
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(hours(1));
    ASSERT_TRUE(engine_->GetRecord(*owner_, id).has_value());
  }
  auto window = engine_->AccessHistory(*auditor_, anna, TestEpoch() + hours(2),
                                       TestEpoch() + hours(4));
  ASSERT_TRUE(window.has_value());
  EXPECT_EQ(window->events.size(), 2u);
  auto first = engine_->AccessHistory(*auditor_, anna, Timestamp::min(),
                                      Timestamp::max(), 0, 4);
  ASSERT_EQ(first->events.size(), 4u);
  ASSERT_NE(first->next_after_seq, 0u);
  auto rest =
      engine_->AccessHistory(*auditor_, anna, Timestamp::min(),
                             Timestamp::max(), first->next_after_seq, 4);
  // The first page: the create, the admin's lookup, two reads; then the
  // last three reads and the first query above (an event).
  EXPECT_EQ(first->events[1].action, "find_subject");
  ASSERT_EQ(rest->events.size(), 4u);
  EXPECT_EQ(rest->events[2].action, "read");
  EXPECT_EQ(rest->events[3].action, "access_history");
  EXPECT_EQ(rest->events[3].principal_id, "auditor");
}

// A client that pages to the end with pages of one, or follows the tail,
// is not fed its own access_history events for ever: a page of nothing but
// history reads is no disclosure and writes none (a review's finding).
TEST_F(AccessHistoryTest, PagingToTheEndEnds) {
  const uint64_t id = CreateRecord();
  ASSERT_TRUE(engine_->GetRecord(*owner_, id).has_value());
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  uint64_t after = 0;
  int pages = 0;
  std::vector<std::string> seen;
  do {
    auto page = engine_->AccessHistory(*auditor_, anna, Timestamp::min(),
                                       Timestamp::max(), after, 1);
    ASSERT_TRUE(page.has_value()) << page.error().ToString();
    for (const AccessEvent& e : page->events) seen.push_back(e.action);
    after = page->next_after_seq;
  } while (after != 0 && ++pages < 50);
  EXPECT_LT(pages, 50);
  // The create, the read and the admin's lookup, then the events of the
  // three pages that returned them; the pages that returned those wrote
  // none.
  EXPECT_EQ(seen, (std::vector<std::string>{"create", "read", "find_subject",
                                            "access_history", "access_history",
                                            "access_history"}));
  // Following the tail: nothing new is written.
  const uint64_t head = HeadSeq();
  auto tail = engine_->AccessHistory(*auditor_, anna, Timestamp::min(),
                                     Timestamp::max(), head - 1, 10);
  ASSERT_TRUE(tail.has_value());
  ASSERT_EQ(tail->events.size(), 1u);
  EXPECT_EQ(tail->events[0].action, "access_history");
  EXPECT_EQ(HeadSeq(), head);
}

// Reading a subject's history discloses what was sealed under their key
// (justifications, field names): each page is an event, a disclosure to
// the auditor (a review's finding: it was none).
TEST_F(AccessHistoryTest, ReadingASubjectsHistoryIsItselfAnEvent) {
  CreateRecord();
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  const uint64_t head = HeadSeq();
  ASSERT_EQ(Actions(anna),
            (std::vector<std::string>{"create", "find_subject"}));
  EXPECT_EQ(HeadSeq(), head + 1);
  const std::vector<AccessEvent> events = HistoryOf(anna);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].action, "access_history");
  EXPECT_EQ(events[2].principal_id, "auditor");
  EXPECT_EQ(events[2].record_id, 0u);
  // Nothing is written for a subject already shredded: nothing opens.
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  const uint64_t after_shred = HeadSeq();
  EXPECT_EQ(HistoryCode(anna), StatusCode::kNotFound);
  EXPECT_EQ(HeadSeq(), after_shred);
}

// A busy record: more events than one chunk of pruning examines. One sweep
// prunes them all (it examined 100 events a sweep: a store writing more
// than that between two sweeps never caught up).
TEST_F(AccessHistoryPruningTest, OneSweepPrunesMoreThanAChunkOfEvents) {
  const std::string anna = ReadAlertAndEraseIt(600);
  // Create, the admin's lookup, 600 reads, close, erase.
  EXPECT_EQ(Actions(anna).size(), 604u);
  // With the lookup and the event of the auditor's look just above, both
  // about no record and five years old by then.
  EXPECT_EQ(SweepAt(At(2032, 2, 28)).history_pruned, 605u);
  EXPECT_EQ(Actions(anna), std::vector<std::string>{});
  auto chain = engine_->VerifyChain(*auditor_);
  ASSERT_TRUE(chain.has_value()) << chain.error().ToString();
  EXPECT_TRUE(chain->ok) << chain->problem;
}

// Two sweeps at once (an admin's and the scheduled one): the second finds
// the first one's pruning running (here after its first chunk) and leaves
// the pruning to it, reporting where the cursor stands. Without the
// pruning's lock both would walk from the same cursor: events examined
// twice, the counts split between them, the cursor written over.
TEST_F(AccessHistoryPruningTest, ASecondSweepLeavesThePruningToTheOneRunning) {
  const std::string anna = ReadAlertAndEraseIt(600);
  ASSERT_EQ(Actions(anna).size(), 604u);

  clock_.Set(At(2032, 2, 28));
  SweepOptions options;
  options.as_of = At(2032, 2, 28);
  std::optional<Result<SweepReport>> second;
  int chunks = 0;
  engine_->TEST_SetAfterPruneChunk([&] {
    if (chunks++ != 0) return;
    std::thread other([&] { second = engine_->Sweep(*admin_, options); });
    other.join();
  });
  auto first = engine_->Sweep(*admin_, options);
  engine_->TEST_SetAfterPruneChunk(nullptr);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  ASSERT_TRUE(second.has_value());
  ASSERT_TRUE(second->has_value()) << second->error().ToString();
  EXPECT_GT(chunks, 1);
  // The second pruned nothing and said how far the cursor, as the first
  // had written it after its first chunk, was from the head.
  EXPECT_EQ((*second)->history_pruned, 0u);
  EXPECT_GT((*second)->history_behind, 0u);
  // The first pruned everything due, each event once: the 604 and the
  // lookup and look of the auditor about no record (as in
  // OneSweepPrunesMoreThanAChunkOfEvents).
  EXPECT_EQ(first->history_pruned, 605u);
  EXPECT_EQ(Actions(anna), std::vector<std::string>{});
  auto chain = engine_->VerifyChain(*auditor_);
  ASSERT_TRUE(chain.has_value()) << chain.error().ToString();
  EXPECT_TRUE(chain->ok) << chain->problem;
  EXPECT_EQ(SweepAt(At(2032, 2, 28)).history_pruned, 0u);
}

// An admin's sweep given a pruning bound of its own (custos sweep
// --history-examined, to catch up a backlog) that meets another sweep's
// pruning running waits for it, then prunes as asked: it does not answer
// that it examined nothing, with the pass half done, as a sweep without a
// bound does (above).
TEST_F(AccessHistoryPruningTest, ASweepWithABoundOfItsOwnWaitsForThePruning) {
  const std::string anna = ReadAlertAndEraseIt(600);
  clock_.Set(At(2032, 2, 28));
  SweepOptions options;
  options.as_of = At(2032, 2, 28);
  SweepOptions bounded = options;
  bounded.max_history_examined = 10'000;
  std::optional<Result<SweepReport>> second;
  std::atomic<bool> second_done{false};
  bool done_while_first_pruned = true;
  std::thread other;
  int chunks = 0;
  engine_->TEST_SetAfterPruneChunk([&] {
    if (chunks++ != 0) return;
    other = std::thread([&] {
      second = engine_->Sweep(*admin_, bounded);
      second_done = true;
    });
    // Time for it to run its transitions and reach the pruning's lock.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    done_while_first_pruned = second_done;
  });
  auto first = engine_->Sweep(*admin_, options);
  engine_->TEST_SetAfterPruneChunk(nullptr);
  ASSERT_TRUE(other.joinable());
  other.join();
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  ASSERT_TRUE(second.has_value());
  ASSERT_TRUE(second->has_value()) << second->error().ToString();
  EXPECT_FALSE(done_while_first_pruned);
  // The alert's 603 (created, read 600 times, closed, erased) and the
  // lookup of its subject: all by the first.
  EXPECT_EQ(first->history_pruned, 604u);
  // After the first's pass: nothing left to examine, none behind.
  EXPECT_EQ((*second)->history_pruned, 0u);
  EXPECT_EQ((*second)->history_behind, 0u);
  EXPECT_EQ(Actions(anna), std::vector<std::string>{});
}

// max_history_examined bounds one sweep's pruning; the next sweep goes on
// from where it stopped.
TEST_F(AccessHistoryPruningTest, MaxHistoryExaminedBoundsOneSweep) {
  const uint64_t id = CreateAlert();
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(engine_->GetRecord(*owner_, id).has_value());
  }
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);
  // The record's create (then the admin's lookup, 300 reads, the close and
  // the erasure).
  const uint64_t first_seq = HeadSeq() - 303;

  clock_.Set(At(2032, 2, 28));
  SweepOptions options;
  options.as_of = clock_.Now();
  options.max_history_examined = 150;
  auto first = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  // The events from seq 1 to 150, of which Anna's are pruned (all from
  // her record's create on, the lookup included).
  ASSERT_LE(first_seq, 150u);
  EXPECT_EQ(first->history_pruned, 150 - first_seq + 1);
  EXPECT_EQ(Actions(anna).size(), 304 - first->history_pruned);

  // The next sweep goes on from seq 151 (a cursor lost would have it
  // examine seqs 1 to 150 again, all pruned already).
  auto second = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  EXPECT_EQ(second->history_pruned, 150u);

  options.max_history_examined = 100000;
  auto third = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(third.has_value()) << third.error().ToString();
  EXPECT_EQ(
      first->history_pruned + second->history_pruned + third->history_pruned,
      304u);
  // Left: the event of the auditor's look above, about no record, written
  // at the sweeps' instant: kept five years from then.
  EXPECT_EQ(Actions(anna), std::vector<std::string>{"access_history"});

  options.max_history_examined = 0;
  auto refused = engine_->Sweep(*admin_, options);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().ToString(),
            "InvalidArgument: max_history_examined must be 1 to 10000000");
  options.max_history_examined = kMaxHistoryExamined + 1;
  auto too_many = engine_->Sweep(*admin_, options);
  ASSERT_FALSE(too_many.has_value());
  EXPECT_EQ(too_many.error().ToString(),
            "InvalidArgument: max_history_examined must be 1 to 10000000");
}

// A sweep that sets no bound of its own (custosd's scheduled and admin
// sweeps) examines Options::history_examined_per_sweep events plus those
// written since the last sweep's pruning began: each sweep pays about
// that many reads, whatever is due, so the default is 10,000 (100,000
// cost stores of 100,000 records and more 0.6 s a sweep: bench/RESULTS.md,
// "Sweeps flat again"), and the cursor gains on the head however busy the
// store. With the bound alone, a store writing more events between two
// sweeps fell further behind at each, never wrapped, and never pruned the
// events it had passed while their records lived (helper-133).
TEST_F(AccessHistoryPruningTest, TheEnginesBoundAppliesWhenTheSweepSetsNone) {
  EXPECT_EQ(Options{}.history_examined_per_sweep, 10000u);
  const uint64_t id = CreateAlert();
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(engine_->GetRecord(*owner_, id).has_value());
  }
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);
  const uint64_t first_seq = HeadSeq() - 302;  // The record's create.

  Options options = MakeOptions();
  options.history_examined_per_sweep = 120;
  ReopenWith(options);
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  clock_.Set(At(2032, 2, 28));
  SweepOptions sweep;
  sweep.as_of = clock_.Now();
  auto first = engine_->Sweep(*admin_, sweep);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  // Seqs 1 to 120: the record's events among them are pruned.
  ASSERT_LE(first_seq, 120u);
  EXPECT_EQ(first->history_pruned, 120 - first_seq + 1);
  EXPECT_EQ(first->history_behind, DurableHead() - 120);

  // A live record read 300 times before the next sweep: more events than
  // the bound. The next sweep examines those 300 more (and what the first
  // sweep wrote), and ends nearer the head than the first did.
  const uint64_t live = CreateAlert();
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(engine_->GetRecord(*owner_, live).has_value());
  }
  auto second = engine_->Sweep(*admin_, sweep);
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  EXPECT_LT(second->history_behind, first->history_behind);
  EXPECT_GT(second->history_behind, 0u);
  // The record's events left were all in reach: every one is pruned.
  EXPECT_EQ(first->history_pruned + second->history_pruned, 303u);

  // A bound of the sweep's own is exact, larger than the engine's too.
  sweep.max_history_examined = 100000;
  auto third = engine_->Sweep(*admin_, sweep);
  ASSERT_TRUE(third.has_value()) << third.error().ToString();
  EXPECT_EQ(third->history_behind, 0u);
  // Then asleep at the head (no event kept can be due before 2037): a
  // sweep examines only the events written since, its bound exact there
  // too.
  sweep.max_history_examined = 1;
  auto fourth = engine_->Sweep(*admin_, sweep);
  ASSERT_TRUE(fourth.has_value()) << fourth.error().ToString();
  EXPECT_EQ(fourth->history_examined, 0u);
  EXPECT_EQ(fourth->history_behind, 0u);
  Read(live, 5);
  auto fifth = engine_->Sweep(*admin_, sweep);
  ASSERT_TRUE(fifth.has_value()) << fifth.error().ToString();
  EXPECT_EQ(fifth->history_examined, 1u);
  EXPECT_EQ(fifth->history_behind, 4u);

  options.history_examined_per_sweep = 0;
  auto refused = Engine::Open(options, MasterKey());
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().ToString(),
            "InvalidArgument: max_page_size, max_list_scan, max_batch_records, "
            "key_cache_capacity and history_examined_per_sweep must be at "
            "least 1, erasure_compaction_delay at least 0, backup_retention "
            "more than 0");
}

// Pruning sleeps once a pass has examined the whole log (docs/history.md,
// "Retention"): it then examines only the events written since, until an
// event it kept can be due.
class PruningSleepTest : public AccessHistoryPruningTest {
 protected:
  // Periods of days, so that what wakes pruning comes within its longest
  // sleep (Sweeper::kSleepAtMost, a week): alerts erased a day after
  // closure, their history two days after that; requests' history three
  // days after their erasure (an event about a subject alone: three days
  // after it, the longest). Then four days on, so that nothing the
  // fixture wrote is as young as the tests' own events.
  void SetPoliciesFourDaysAgo() {
    SetPolicies();
    clock_.Set(clock_.Now() + hours(96));
  }
  void SetPolicies(const char* alert_history = "P2D") {
    RetentionPolicy alert;
    alert.kind = "alert";
    alert.erase_after = *ParsePeriod("P1D");
    alert.history_after = *ParsePeriod(alert_history);
    ASSERT_TRUE(engine_->SetPolicy(*admin_, alert).ok());
    RetentionPolicy request;
    request.kind = "request";
    request.erase_after = *ParsePeriod("P1D");
    request.history_after = *ParsePeriod("P3D");
    ASSERT_TRUE(engine_->SetPolicy(*admin_, request).ok());
  }
  SweepReport SweepAt(Timestamp as_of, size_t max_examined) {
    SweepOptions options;
    options.as_of = as_of;
    options.max_history_examined = max_examined;
    if (as_of > clock_.Now()) clock_.Set(as_of);
    auto report = engine_->Sweep(*admin_, options);
    EXPECT_TRUE(report.has_value()) << report.error().ToString();
    return report.value_or(SweepReport{});
  }
  using AccessHistoryPruningTest::SweepAt;
  // A pass over more than one chunk of events (an alert read 150 times:
  // chunks of 100), history_after set to a day after its first chunk.
  void PassWithPoliciesChangedAfterItsFirstChunk() {
    SetPoliciesFourDaysAgo();
    Read(CreateAlert(), 150);
    int chunks = 0;
    engine_->TEST_SetAfterPruneChunk([&] {
      if (++chunks == 1) SetPolicies("P1D");
    });
    EXPECT_EQ(SweepAt(clock_.Now()).history_behind, 0u);
    engine_->TEST_SetAfterPruneChunk(nullptr);
    ASSERT_GE(chunks, 2);
  }
};

TEST_F(PruningSleepTest, ASleepingPruningExaminesOnlyTheEventsWrittenSince) {
  const uint64_t id = CreateAlert();
  Read(id, 3);
  const SweepReport pass = SweepAt(clock_.Now());
  EXPECT_EQ(pass.history_examined, DurableHead());  // The whole log.
  EXPECT_EQ(pass.history_behind, 0u);
  EXPECT_EQ(SweepAt(clock_.Now()).history_examined, 0u);
  Read(id, 2);
  EXPECT_EQ(SweepAt(clock_.Now()).history_examined, 2u);
  // Where it sleeps is stored: a reopened engine does not start again.
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  EXPECT_EQ(SweepAt(clock_.Now()).history_examined, 0u);
  // A week on, a pass again, whatever it kept.
  const SweepReport week = SweepAt(clock_.Now() + Sweeper::kSleepAtMost);
  EXPECT_EQ(week.history_examined, DurableHead());
}

TEST_F(PruningSleepTest, ARecordErasedWhilePruningSleepsWakesItWhenDue) {
  SetPoliciesFourDaysAgo();
  const Timestamp t0 = clock_.Now();
  const uint64_t alert = CreateAlert();
  ASSERT_TRUE(engine_->Close(*owner_, alert).ok());
  const uint64_t live = CreateRecord("ben@example.org");
  EXPECT_EQ(SweepAt(t0).history_pruned, 0u);  // A pass: asleep.
  Read(live, 3);
  // The alert erased; pruning examines one event written since (a read),
  // not the erasure's, which would tell it when the history is due.
  const SweepReport erasing = SweepAt(t0 + hours(24), 1);
  EXPECT_EQ(erasing.erased, 1u);
  EXPECT_EQ(erasing.history_examined, 1u);
  // What tells it of the erasure is stored, with the record.
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  // Due two days after the erasure: pruning wakes for the record erased
  // since its pass began (from a day before: the margin of AddPeriod's
  // month-end clamp), and a pass prunes its create, close and erase.
  const SweepReport before = SweepAt(t0 + hours(48) - 1us, 1);
  EXPECT_EQ(before.history_pruned, 0u);
  EXPECT_EQ(before.history_behind, 2u);  // A read, the erasure.
  EXPECT_EQ(SweepAt(t0 + hours(72), 1000).history_pruned, 3u);
}

TEST_F(PruningSleepTest, AShortenedHistoryPeriodWakesThePruning) {
  SetPoliciesFourDaysAgo();
  const Timestamp t0 = clock_.Now();
  const uint64_t alert = CreateAlert();
  ASSERT_TRUE(engine_->Close(*owner_, alert).ok());
  // Erased, then a pass that finds its history due on day 3: asleep.
  const SweepReport erasing = SweepAt(t0 + hours(24));
  EXPECT_EQ(erasing.erased, 1u);
  EXPECT_EQ(erasing.history_behind, 0u);
  SetPolicies("P1D");  // Due on day 2 now.
  EXPECT_EQ(SweepAt(t0 + hours(48)).history_pruned, 3u);
}

TEST_F(PruningSleepTest, AnEventAboutASubjectWakesThePruningWhenDue) {
  SetPoliciesFourDaysAgo();
  const Timestamp t0 = clock_.Now();
  const uint64_t alert = CreateAlert();
  ASSERT_TRUE(engine_->Close(*owner_, alert).ok());
  EXPECT_EQ(SweepAt(t0 + hours(24)).erased, 1u);
  // A lookup of Anna on day 2, due three days later (requests' period).
  clock_.Set(t0 + hours(48));
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  EXPECT_EQ(SweepAt(t0 + hours(48)).history_pruned, 0u);
  // Day 3: the alert's events are due; the lookup is kept.
  EXPECT_EQ(SweepAt(t0 + hours(72)).history_pruned, 3u);
  EXPECT_EQ(Actions(anna), (std::vector<std::string>{"find_subject"}));
  EXPECT_EQ(SweepAt(t0 + hours(120) - 1us).history_pruned, 0u);
  EXPECT_EQ(SweepAt(t0 + hours(120)).history_pruned, 1u);
}

// Anna's lookup is old enough, but her live request keeps it (its index
// names the request's events): no instant to wake at. Her shred drops the
// index; the lookup is then due by its age alone, and pruning wakes.
TEST_F(PruningSleepTest, AShredWakesThePruningForTheSubjectsEvents) {
  SetPoliciesFourDaysAgo();
  const Timestamp t0 = clock_.Now();
  ASSERT_NE(CreateRecord("anna@example.org"), 0u);
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  EXPECT_EQ(SweepAt(t0).history_pruned, 0u);  // A pass: asleep.
  // Day 3: the lookup's age is reached; a pass keeps it for the request.
  const SweepReport kept = SweepAt(t0 + hours(72));
  EXPECT_EQ(kept.history_pruned, 0u);
  EXPECT_EQ(kept.history_examined, DurableHead());
  clock_.Set(t0 + hours(73));
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  EXPECT_EQ(SweepAt(t0 + hours(74)).history_pruned, 1u);
}

// A pass goes on through a policy change (restarted at each one, it might
// never end), and the next starts at once, under the new periods.
TEST_F(PruningSleepTest, APolicyChangedDuringAPassDoesNotRestartIt) {
  SetPoliciesFourDaysAgo();
  const uint64_t id = CreateAlert();
  Read(id, 4);
  const SweepReport first = SweepAt(clock_.Now(), 3);
  ASSERT_GT(first.history_behind, 0u);
  const uint64_t stopped_at = DurableHead() - first.history_behind;
  SetPolicies("P1D");
  const SweepReport second = SweepAt(clock_.Now(), 3);
  EXPECT_EQ(second.history_examined, 3u);
  // From where the first stopped, not from the oldest event.
  EXPECT_EQ(second.history_behind, DurableHead() - (stopped_at + 3));
  const SweepReport rest = SweepAt(clock_.Now(), 1000);
  EXPECT_EQ(rest.history_behind, 0u);
  // A new pass at once: the whole log again.
  EXPECT_EQ(SweepAt(clock_.Now(), 1000).history_examined, DurableHead());
  EXPECT_EQ(SweepAt(clock_.Now(), 1000).history_examined, 0u);
}

// A policy changed between two chunks of one sweep, and back before the
// next: the pass stored the policies it ended under, and the next sweep
// finds others (the ones the pass began under) and starts a pass.
TEST_F(PruningSleepTest, APolicyChangedBetweenTwoChunksWakesTheNextSweep) {
  ASSERT_NO_FATAL_FAILURE(PassWithPoliciesChangedAfterItsFirstChunk());
  SetPolicies();  // Back to the periods the pass began under.
  EXPECT_EQ(SweepAt(clock_.Now()).history_examined, DurableHead());
}

// The same change, kept: what the pass found before it was judged under
// the longer period, and the next sweep starts a pass under the shorter
// one, though the policies are those the pass ended under.
TEST_F(PruningSleepTest, APolicyChangedBetweenTwoChunksAndKeptWakesTheNext) {
  ASSERT_NO_FATAL_FAILURE(PassWithPoliciesChangedAfterItsFirstChunk());
  EXPECT_EQ(SweepAt(clock_.Now()).history_examined, DurableHead());
}

// A sweep dated before pruning fell asleep does not trust the sleep (a
// clock set back); nor does one that finds the cursor moved by a build
// without the gate.
TEST_F(PruningSleepTest, ASweepDatedBeforeTheSleepStartsAPass) {
  Read(CreateAlert(), 2);
  const Timestamp now = clock_.Now();
  EXPECT_EQ(SweepAt(now).history_examined, DurableHead());
  EXPECT_EQ(SweepAt(now).history_examined, 0u);
  EXPECT_EQ(SweepAt(now - hours(1)).history_examined, DurableHead());
}

TEST_F(PruningSleepTest, ACursorMovedWithoutTheGateStartsAPass) {
  Read(CreateAlert(), 2);
  EXPECT_EQ(SweepAt(clock_.Now()).history_examined, DurableHead());
  RewriteRaw("records", std::string(keys::kHistoryPruneCursor),
             [](std::string& value) {
               value.clear();
               AppendBigEndian64(value, 1);
             });
  EXPECT_EQ(SweepAt(clock_.Now()).history_examined, DurableHead());
}

TEST_F(PruningSleepTest, ARecordItCannotReadKeepsItAwake) {
  const uint64_t id = CreateAlert();
  EXPECT_EQ(SweepAt(clock_.Now()).history_behind, 0u);  // Asleep.
  Close();
  {
    auto db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(
        db->Put(leveldb::WriteOptions(), keys::Record(id), "not a record")
            .ok());
  }
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  // Found by the next pass (a week on), then met by every sweep.
  const Timestamp week = clock_.Now() + Sweeper::kSleepAtMost;
  EXPECT_TRUE(SweepAt(week - 1us).skipped.empty());
  for (const Timestamp at : {week, week + hours(1)}) {
    const SweepReport report = SweepAt(at);
    ASSERT_EQ(report.skipped.size(), 1u);
    EXPECT_EQ(report.skipped[0].record_id, id);
    EXPECT_EQ(report.skipped[0].reason, "DataLoss: corrupt stored record");
  }
}

// The credit counts the events written up to the sweep's beginning: an
// erasing sweep does not also examine the events of its own erasures, which
// go to the next sweep's credit instead (a sweep of 500,000 erasures would
// otherwise examine 500,000 events more).
TEST_F(AccessHistoryPruningTest, ASweepsOwnErasuresAreCreditedToTheNext) {
  ReopenWithPruningBound(100);
  std::vector<uint64_t> alerts;
  for (int i = 0; i < 30; ++i) alerts.push_back(CreateAlert());
  const uint64_t live = alerts.back();
  alerts.pop_back();
  for (uint64_t id : alerts) ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  for (int i = 0; i < 450; ++i) {
    ASSERT_TRUE(engine_->GetRecord(*owner_, live).has_value());
  }
  // Nothing due: the first sweep after the open examines the bound alone.
  const SweepReport first = SweepAt(clock_.Now());
  EXPECT_EQ(first.erased, 0u);
  const uint64_t begun = DurableHead();
  ASSERT_GT(begun, 500u);
  EXPECT_EQ(first.history_behind, begun - 100);

  // 50 events, then a sweep that erases the 29 closed alerts: 29 events
  // more, written by the sweep. It examines the bound and the 50.
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(engine_->GetRecord(*owner_, live).has_value());
  }
  const SweepReport second = SweepAt(At(2027, 2, 28));
  EXPECT_EQ(second.erased, 29u);
  EXPECT_EQ(DurableHead(), begun + 50 + 29);
  EXPECT_EQ(second.history_behind, DurableHead() - (100 + 100 + 50));

  // The next sweep, after nothing was written, examines the bound and the
  // 29 erasures' events.
  const SweepReport third = SweepAt(At(2027, 3, 1));
  EXPECT_EQ(third.erased, 0u);
  EXPECT_EQ(third.history_behind, DurableHead() - (250 + 100 + 29));
}

// A sweep that began before another that prunes first meets a mark past
// its own beginning: it takes no credit and leaves the mark where the other
// left it (setting it back to its own beginning would credit the events
// between twice; helper-135). The second sweep runs from the first's
// progress report, between its transitions and its pruning.
TEST_F(AccessHistoryPruningTest, AMarkPastASweepsBeginningIsNotSetBack) {
  ReopenWithPruningBound(100);
  const uint64_t live = CreateAlert();
  auto read = [&](int times) { Read(live, times); };
  read(1000);
  SweepOptions sweep;
  sweep.as_of = clock_.Now();
  ASSERT_TRUE(engine_->Sweep(*admin_, sweep).has_value());  // The mark.
  read(50);
  // The outer sweep begins here; 30 events, then the inner sweep, which
  // examines the bound and the 80 written since the mark.
  std::optional<SweepReport> inner;
  SweepOptions outer_options = sweep;
  outer_options.progress = [&](const SweepProgress& p) {
    if (inner || p.phase != SweepPhase::kTransitions) return;
    read(30);
    auto report = engine_->Sweep(*admin_, sweep);
    ASSERT_TRUE(report.has_value()) << report.error().ToString();
    inner = *report;
  };
  auto outer = engine_->Sweep(*admin_, outer_options);
  ASSERT_TRUE(outer.has_value()) << outer.error().ToString();
  ASSERT_TRUE(inner.has_value());
  EXPECT_EQ(inner->history_behind, DurableHead() - 280);
  // The outer one: the bound alone (the mark is past its beginning).
  EXPECT_EQ(outer->history_behind, DurableHead() - 380);
  // Nothing written since the inner sweep began: the bound alone again.
  auto next = engine_->Sweep(*admin_, sweep);
  ASSERT_TRUE(next.has_value()) << next.error().ToString();
  EXPECT_EQ(next->history_behind, DurableHead() - 480);
}

// A stop requested while pruning runs ends it after its chunk, with the
// cursor written where it stopped, and leaves the credit to the next
// sweep: a stopped pruning did not gain what the credit stands for.
TEST_F(AccessHistoryPruningTest, AStoppedPruningLeavesItsCreditToTheNext) {
  ReopenWithPruningBound(200);
  const uint64_t live = CreateAlert();
  auto read = [&](int times) { Read(live, times); };
  read(1000);
  SweepOptions sweep;
  sweep.as_of = clock_.Now();
  auto first = engine_->Sweep(*admin_, sweep);  // Sets the mark.
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  EXPECT_EQ(first->history_behind, DurableHead() - 200);

  // 100 events, then a sweep stopped as its pruning begins: one chunk (of
  // 100, batch_size's 100) examined, the cursor written there.
  read(100);
  std::stop_source stop;
  sweep.stop = stop.get_token();
  sweep.progress = [&stop](const SweepProgress& p) {
    if (p.phase == SweepPhase::kPruningHistory) stop.request_stop();
  };
  auto stopped = engine_->Sweep(*admin_, sweep);
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_TRUE(stopped->stopped);
  EXPECT_FALSE(stopped->complete);
  EXPECT_EQ(stopped->history_behind, DurableHead() - 300);

  // Stopped before its pruning: the cursor is reported where it stands
  // (not 0, "at the head"), and the credit is left as it was.
  sweep.progress = [&stop](const SweepProgress& p) {
    if (p.phase == SweepPhase::kTransitions) stop.request_stop();
  };
  stop = std::stop_source();
  sweep.stop = stop.get_token();
  auto skipped = engine_->Sweep(*admin_, sweep);
  ASSERT_TRUE(skipped.has_value()) << skipped.error().ToString();
  EXPECT_TRUE(skipped->stopped);
  EXPECT_EQ(skipped->history_behind, DurableHead() - 300);

  // The next examines the bound and the 100 the stopped one left.
  sweep.stop = {};
  sweep.progress = nullptr;
  auto next = engine_->Sweep(*admin_, sweep);
  ASSERT_TRUE(next.has_value()) << next.error().ToString();
  EXPECT_FALSE(next->stopped);
  EXPECT_EQ(next->history_behind, DurableHead() - 600);
}

// A sweep whose early chunks prune and whose last ones do not, reaching the
// head: the next sweep starts again from the oldest event (a review,
// helper-105: the cursor the early chunks wrote stayed, and the next sweep
// began there, past events due by then).
TEST_F(AccessHistoryPruningTest,
       ASweepThatReachesTheHeadStartsTheNextAtTheOldest) {
  const uint64_t a = CreateAlert();
  for (int i = 0; i < 150; ++i) {
    ASSERT_TRUE(engine_->GetRecord(*owner_, a).has_value());
  }
  ASSERT_TRUE(engine_->Close(*owner_, a).ok());
  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);  // A: 153 events.
  const uint64_t b = CreateAlert();
  for (int i = 0; i < 250; ++i) {
    ASSERT_TRUE(engine_->GetRecord(*owner_, b).has_value());
  }
  ASSERT_TRUE(engine_->Close(*owner_, b).ok());
  EXPECT_EQ(SweepAt(At(2027, 8, 29)).erased, 1u);  // B: 253 events, after A's.
  // A's history is due, B's not yet: the chunks past A's events prune none.
  EXPECT_EQ(SweepAt(At(2032, 2, 28)).history_pruned, 153u);
  // B's is due: one sweep prunes it all, from the oldest event on.
  EXPECT_EQ(SweepAt(At(2032, 8, 29)).history_pruned, 253u);
}

// Someone able to write the files but holding no key rewrites the alerts'
// policy to keep history a day: the value fails its MAC and is not used,
// so the erased alert's history is kept (and the sweep names the kind), where
// it was pruned two days after the erasure.
TEST_F(AccessHistoryPruningTest,
       AHistoryPeriodWrittenWithoutTheKeyPrunesNothing) {
  const uint64_t id = CreateAlert();
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);
  RewriteRaw("records", keys::Policy("alert"), [](std::string& value) {
    RetentionPolicy forged{.kind = "alert",
                           .close_after = std::nullopt,
                           .block_after = std::nullopt,
                           .erase_after = Period{.months = 6},
                           .history_after = Period{.days = 1}};
    value = codec::EncodePolicy(forged);
  });
  const SweepReport report = SweepAt(At(2027, 3, 2));
  EXPECT_EQ(report.history_pruned, 0u);
  EXPECT_EQ(report.unauthenticated_policies, std::vector<std::string>{"alert"});
  EXPECT_EQ(Actions(anna), (std::vector<std::string>{"create", "close",
                                                     "find_subject", "erase"}));
}

}  // namespace
}  // namespace custos::testing
