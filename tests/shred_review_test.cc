// Issue 9 review, shreds and reports: a subject report racing a shred, the
// state CompleteShreds writes for a shredded subject's records (the state
// in force at the shred, and the date of an erasure by shredding), and
// reading a subject's data between the batches of its re-key.

#include <gtest/gtest.h>
#include <leveldb/db.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "schema/history.capnp.h"
#include "storage/keystore.h"
#include "tests/engine_fixture.h"
#include "tests/hook_clock.h"
#include "tests/raw_history.h"

namespace custos::testing {
namespace {

using namespace std::chrono_literals;

class ShredReviewTest : public EngineTest {
 protected:
  uint64_t Shared(const std::string& a, const std::string& b) {
    NewRecord r;
    r.kind = "request";
    r.personal = {{a, {{"name", "Person A"}}}, {b, {{"name", "Person B"}}}};
    r.grants = {"authority-b"};
    auto id = engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(id.has_value()) << id.error().ToString();
    return id.value_or(0);
  }
  uint64_t Of(const std::string& kind, const std::string& identifier) {
    NewRecord r;
    r.kind = kind;
    r.personal = {{identifier, {{"name", "Anna"}}}};
    auto id = engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(id.has_value()) << id.error().ToString();
    return id.value_or(0);
  }
  std::string Subject(const std::string& identifier) {
    return *engine_->FindSubject(*admin_, identifier);
  }
  void ReopenAll() {
    Reopen();
    admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
    owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
    grantee_ = std::make_unique<Actor>(*engine_->ActorFor("authority-b"));
    officer_ = std::make_unique<Actor>(*engine_->ActorFor("officer"));
    auditor_ = std::make_unique<Actor>(*engine_->ActorFor("auditor"));
  }
  void SetRequestPolicy(const char* close_after) {
    RetentionPolicy p;
    p.kind = "request";
    if (close_after) p.close_after = *ParsePeriod(close_after);
    p.block_after = *ParsePeriod("P6M");
    p.erase_after = *ParsePeriod("P3Y");
    p.history_after = *ParsePeriod("P5Y");
    ASSERT_TRUE(engine_->SetPolicy(*admin_, p).ok());
  }

  // The headers of record `id`'s events, in order, read from the raw
  // history (the engine is closed and reopened).
  std::vector<ClearHeader> RecordEvents(uint64_t id) {
    std::vector<ClearHeader> out;
    Close();
    {
      std::unique_ptr<leveldb::DB> db = OpenRaw("records");
      for (ClearHeader& h : RawEventHeaders(*db)) {
        if (h.record_id == id) out.push_back(std::move(h));
      }
    }
    ReopenAll();
    return out;
  }

  // Puts the subject in the middle of a re-key, as RekeySubject leaves it
  // between its key switch and its first re-sealed batch: its wrapped key
  // moved to the retiring slot and a new key current (Keystore::BeginRekey,
  // the call the re-keyer makes), every ciphertext still under the retiring
  // key. A later RekeySubject finishes it.
  void BeginRekey(const std::string& subject) {
    Close();
    {
      auto keystore = Keystore::Open(dir_ + "/keystore", false, MasterKey(),
                                     clock_.Now(), leveldb::Env::Default(), 1);
      ASSERT_TRUE(keystore.has_value()) << keystore.error().ToString();
      Status begun = (*keystore)->BeginRekey(subject, (*keystore)->NewKey());
      ASSERT_TRUE(begun.ok()) << begun.ToString();
    }
    ReopenAll();
  }
};

// ---- C7: a record of two shredded subjects --------------------------------

// The record stays readable through the second subject's part after the
// first shred, so it is erased at the second shred, the last one; and
// CompleteShreds writes that same date whichever subject's pass removes the
// last part. The first subject shredded is made the first part (what reads
// once took the date from) and the last one CompleteShreds visits (its
// queue is in subject id order).
TEST_F(ShredReviewTest, ARecordOfTwoShreddedSubjectsIsErasedAtTheLastShred) {
  Shared("anna@example.org", "ben@example.org");  // To learn the ids.
  const std::string anna = Subject("anna@example.org");
  const std::string ben = Subject("ben@example.org");
  const bool anna_first = anna > ben;
  const std::string first = anna_first ? anna : ben;
  const std::string second = anna_first ? ben : anna;
  const uint64_t id = anna_first
                          ? Shared("anna@example.org", "ben@example.org")
                          : Shared("ben@example.org", "anna@example.org");
  clock_.Advance(1h);
  ASSERT_TRUE(engine_->ShredSubject(*admin_, first).ok());
  clock_.Advance(1h);
  const Timestamp read_at = clock_.Now();
  auto read = engine_->GetRecord(*grantee_, id);
  ASSERT_TRUE(read.has_value());
  ASSERT_TRUE(read->personal_included);  // The second part, after shred 1.
  ASSERT_EQ(read->parts.size(), 1u);
  EXPECT_EQ(read->parts[0].subject_id, second);
  clock_.Advance(1h);
  const Timestamp second_shred = clock_.Now();
  ASSERT_TRUE(engine_->ShredSubject(*admin_, second).ok());
  clock_.Advance(1h);

  auto before = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(before->state, RecordState::kErased);
  ASSERT_TRUE(before->erased_at.has_value());
  EXPECT_GT(*before->erased_at, read_at);
  EXPECT_EQ(*before->erased_at, second_shred);
  // One record rewrite per call: the date holds after each pass (the
  // first record is rewritten too, once per subject).
  for (int step = 0; step < 4; ++step) {
    auto done = engine_->CompleteShreds(1);
    ASSERT_TRUE(done.has_value()) << done.error().ToString();
    ASSERT_EQ(*done, 1u);
    auto now = engine_->GetRecord(*admin_, id);
    ASSERT_TRUE(now.has_value());
    EXPECT_EQ(now->state, RecordState::kErased) << "after pass " << step;
    EXPECT_EQ(now->erased_at, second_shred) << "after pass " << step;
  }
  ASSERT_EQ(engine_->CompleteShreds(100).value_or(1), 0u);
  auto after = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->erased_at, second_shred);
}

// ---- C6: CompleteShreds writes the state in force at the shred ------------

// An alert closed at the epoch is erased at 2027-02-28 12:00 (in force for
// every reader, not swept). Its subject shredded on 2027-03-01, the erasure
// keeps its date, and its erase event (by the retention policy, at its
// instant) is written with it.
TEST_F(ShredReviewTest, CompleteShredsKeepsTheErasureInForceBeforeTheShred) {
  const uint64_t id = Of("alert", "anna@example.org");
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  const std::string anna = Subject("anna@example.org");
  clock_.Set(At(2027, 3, 1));
  auto before = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(before.has_value());
  ASSERT_EQ(before->state, RecordState::kErased);
  ASSERT_EQ(*before->erased_at, At(2027, 2, 28));
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  auto shredded = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(shredded.has_value());
  EXPECT_EQ(shredded->erased_at, At(2027, 2, 28));
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  auto after = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->state, RecordState::kErased);
  EXPECT_EQ(after->erased_at, At(2027, 2, 28))
      << "CompleteShreds re-dated the erasure to the shred";

  const auto events = RecordEvents(id);
  const auto erase =
      std::find_if(events.begin(), events.end(), [](const ClearHeader& e) {
        return e.action == schema::history::Action::ERASE;
      });
  ASSERT_NE(erase, events.end()) << "no erase event";
  EXPECT_EQ(erase->principal_id, "custos:retention");
  EXPECT_EQ(erase->at_micros, ToMicros(At(2027, 2, 28)));
  EXPECT_EQ(std::count_if(events.begin(), events.end(),
                          [](const ClearHeader& e) {
                            return e.action == schema::history::Action::ERASE;
                          }),
            1);
}

// Same with close_after: a record closed by its deadline, then shredded,
// keeps its closure (and its close event) once CompleteShreds ran, and is
// erased at the shred.
TEST_F(ShredReviewTest, CompleteShredsKeepsAClosureInForceBeforeTheShred) {
  SetRequestPolicy("P15D");
  const uint64_t id = Of("request", "anna@example.org");
  const std::string anna = Subject("anna@example.org");
  clock_.Set(TestEpoch() + std::chrono::days(20));
  const Timestamp closed_at = TestEpoch() + std::chrono::days(15);
  auto before = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(before.has_value());
  ASSERT_EQ(before->state, RecordState::kClosed);
  ASSERT_EQ(*before->closed_at, closed_at);
  const Timestamp shred_at = clock_.Now();
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  clock_.Advance(std::chrono::days(1));
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  auto after = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->state, RecordState::kErased);
  EXPECT_EQ(after->closed_at, closed_at) << "the closure in force is lost";
  EXPECT_EQ(after->erased_at, shred_at);

  const auto events = RecordEvents(id);
  const auto close =
      std::find_if(events.begin(), events.end(), [](const ClearHeader& e) {
        return e.action == schema::history::Action::CLOSE;
      });
  ASSERT_NE(close, events.end()) << "no close event";
  EXPECT_EQ(close->principal_id, "custos:retention");
  EXPECT_EQ(close->at_micros, ToMicros(closed_at));
}

// A deadline after the last shred never applies: the record was erased by
// the shred before it, at every read and once CompleteShreds wrote it.
TEST_F(ShredReviewTest, ADeadlineAfterTheShredDoesNotApplyToTheErasedRecord) {
  SetRequestPolicy("P15D");
  const uint64_t id = Of("request", "anna@example.org");
  const std::string anna = Subject("anna@example.org");
  clock_.Set(TestEpoch() + std::chrono::days(10));
  const Timestamp shred_at = clock_.Now();
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  clock_.Set(TestEpoch() + std::chrono::days(20));  // Past close_after.
  auto before = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(before->state, RecordState::kErased);
  EXPECT_EQ(before->erased_at, shred_at);
  EXPECT_FALSE(before->closed_at.has_value());
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  auto after = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->state, RecordState::kErased);
  EXPECT_EQ(after->erased_at, shred_at);
  EXPECT_FALSE(after->closed_at.has_value());
}

// The same with a re-apply of the policies and a sweep between the shred
// and CompleteShreds (a review, helper-121): they wrote the close down
// after the erasure, into the record, its history and the statistics. They
// now leave the record to CompleteShreds; the other record is closed.
TEST_F(ShredReviewTest, ASweepAfterTheShredLeavesTheErasedRecordAlone) {
  SetRequestPolicy("P15D");
  const uint64_t id = Of("request", "anna@example.org");
  const uint64_t other = Of("request", "ben@example.org");
  const std::string anna = Subject("anna@example.org");
  clock_.Set(TestEpoch() + std::chrono::days(10));
  const Timestamp shred_at = clock_.Now();
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  clock_.Set(TestEpoch() + std::chrono::days(20));  // Past close_after.
  auto reapplied = engine_->ReapplyPolicies(*admin_);
  ASSERT_TRUE(reapplied.has_value()) << reapplied.error().ToString();
  SweepOptions options;
  options.as_of = clock_.Now();
  auto swept = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(swept.has_value()) << swept.error().ToString();
  EXPECT_EQ(swept->closed, 0u);  // Ben's was closed by the re-apply.
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  auto after = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->state, RecordState::kErased);
  EXPECT_EQ(after->erased_at, shred_at);
  EXPECT_FALSE(after->closed_at.has_value());
  for (const ClearHeader& h : RecordEvents(id)) {
    EXPECT_NE(h.action, schema::history::Action::CLOSE);
  }
  auto ben = engine_->GetRecord(*admin_, other);
  ASSERT_TRUE(ben.has_value());
  EXPECT_EQ(ben->state, RecordState::kClosed);
  // A sweep after the completion finds nothing left of it.
  swept = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(swept.has_value()) << swept.error().ToString();
  EXPECT_EQ(swept->closed + swept->blocked + swept->erased, 0u);
}

// The same through an erasure by key: a record a hold reached in its
// bucket's hour (the hold since released, so the shred was allowed) is
// swept alone before its bucket's key goes; it is left to CompleteShreds
// as well (a review, helper-122: it was erased at its deadline, after the
// shred, with an erase event).
TEST_F(ShredReviewTest, AnErasureByKeyLeavesAShreddedOnceHeldRecordAlone) {
  const uint64_t id = Of("alert", "anna@example.org");
  const std::string anna = Subject("anna@example.org");
  clock_.Set(TestEpoch() + 30min);
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());  // Erased at 12:30.
  const Timestamp due = At(2027, 2, 28, 12) + 30min;
  clock_.Set(due - 25min);
  auto hold =
      engine_->SetRecordHold(*officer_, id, "proceedings", At(2027, 6, 1));
  ASSERT_TRUE(hold.has_value()) << hold.error().ToString();
  clock_.Set(due - 15min);
  ASSERT_TRUE(engine_->ReleaseHold(*officer_, hold->id).ok());
  clock_.Set(due - 10min);
  const Timestamp shred_at = clock_.Now();
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  clock_.Set(due + 2h);
  SweepNow();
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  auto after = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->state, RecordState::kErased);
  EXPECT_EQ(after->erased_at, shred_at);
  for (const ClearHeader& h : RecordEvents(id)) {
    EXPECT_NE(h.action, schema::history::Action::ERASE);
  }
}

// The same without a hold: the erasure by key counted the record among
// the sweep's erasures, at its due instant, though the shred erased it
// before (helper-124); a record-by-record sweep or a dry run counted none.
TEST_F(ShredReviewTest, AnErasureByKeyDoesNotCountARecordAShredErased) {
  const uint64_t id = Of("alert", "anna@example.org");
  const uint64_t other = Of("alert", "ben@example.org");
  const std::string anna = Subject("anna@example.org");
  clock_.Set(TestEpoch() + 30min);
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());  // Both erased at 12:30.
  ASSERT_TRUE(engine_->Close(*owner_, other).ok());
  const Timestamp due = At(2027, 2, 28, 12) + 30min;
  clock_.Set(due - 10min);
  const Timestamp shred_at = clock_.Now();
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  clock_.Set(due + 2h);
  const SweepReport swept = SweepNow();
  EXPECT_EQ(swept.buckets_destroyed, 1u);
  EXPECT_EQ(swept.erased, 1u);  // Ben's.
  ASSERT_EQ(swept.transitions.size(), 1u);
  EXPECT_EQ(swept.transitions[0].record_id, other);
  EXPECT_EQ(swept.transitions[0].due, due);
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  auto after = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->state, RecordState::kErased);
  EXPECT_EQ(after->erased_at, shred_at);
}

// ---- C1: a subject report racing a shred ----------------------------------

// The report opens the subject's key before any lock; a shred between that
// and the report's event must not leave the report with the shredded
// person's data: it fails as a report on a shredded subject does.
TEST_F(ShredReviewTest, AReportRacingAShredReturnsNoDataOfTheShreddedSubject) {
  HookClock hook(clock_);
  ReopenWithClock(hook);
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  auditor_ = std::make_unique<Actor>(*engine_->ActorFor("auditor"));
  const uint64_t old_alert = Of("alert", "anna@example.org");
  ASSERT_TRUE(engine_->Close(*owner_, old_alert).ok());
  clock_.Set(At(2027, 3, 1));  // The alert's erasure is in force.
  Of("request", "anna@example.org");
  const std::string anna = Subject("anna@example.org");
  bool shredded = false;
  // Now() #1: generated_at; #2: the alert's erasure in CatchUp. The
  // report has opened the key and the identifier by then.
  hook.Arm(2, [&] { shredded = engine_->ShredSubject(*admin_, anna).ok(); });
  auto report = engine_->ProduceSubjectReport(*auditor_, anna);
  ASSERT_TRUE(shredded);
  ASSERT_FALSE(report.has_value())
      << "a report of " << report->records.size()
      << " records returned after the shred, identifier '"
      << report->subject_identifier << "'";
  EXPECT_EQ(report.error().code(), StatusCode::kNotFound);
  engine_.reset();
}

// ---- Issue 16: a create racing a shred of its subject ---------------------

// The subject is live when the create looks its identifier up (outside the
// lock) and shredded before the create writes (under it): the create makes
// a new subject then, from the blind index computed at the lookup (the
// digest taken back from the index key). The new subject is found by the
// identifier, and its stored blind index is its index entry's: shredding
// it removes that entry (a wrong digest would leave it behind).
TEST_F(ShredReviewTest, ACreateRacingAShredOfItsSubjectMakesANewOne) {
  HookClock hook(clock_);
  ReopenWithClock(hook);
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  grantee_ = std::make_unique<Actor>(*engine_->ActorFor("authority-b"));
  Of("request", "anna@example.org");
  const std::string old_anna = Subject("anna@example.org");
  bool shredded = false;
  // Now() #1: ben's new subject, made after anna was found live.
  hook.Arm(1,
           [&] { shredded = engine_->ShredSubject(*admin_, old_anna).ok(); });
  const uint64_t id = Shared("anna@example.org", "ben@example.org");
  ASSERT_TRUE(shredded);
  const std::string anna = Subject("anna@example.org");
  EXPECT_NE(anna, old_anna);
  auto read = engine_->GetRecord(*owner_, id);
  ASSERT_TRUE(read.has_value()) << read.error().ToString();
  ASSERT_EQ(read->parts.size(), 2u);
  EXPECT_EQ(read->parts[0].subject_id, anna);
  EXPECT_EQ(read->parts[0].subject_identifier, "anna@example.org");
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  EXPECT_EQ(engine_->FindSubject(*admin_, "anna@example.org").error().code(),
            StatusCode::kNotFound);
  engine_.reset();
  auto db = OpenRaw("records");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(CountKeys(*db, "b:"), 1);  // Ben's.
}

// ---- S1: reading between the batches of a re-key --------------------------

// A flag note (and every other ciphertext of the subject) still under the
// retiring key opens in the report, as parts and contests do.
TEST_F(ShredReviewTest, AReportDuringARekeyOpensWhatIsUnderTheRetiringKey) {
  const uint64_t id = CreateRecord("anna@example.org");
  const std::string anna = Subject("anna@example.org");
  ASSERT_TRUE(engine_->FlagIncorrect(*owner_, id, anna, "born 1981").ok());
  ASSERT_TRUE(engine_->Withdraw(*owner_, id).ok());
  ASSERT_TRUE(
      engine_->Contest(*officer_, id, anna, "wrong", {{"born", "1981"}}).ok());
  BeginRekey(anna);

  auto report = engine_->ProduceSubjectReport(*auditor_, anna);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  ASSERT_EQ(report->records.size(), 1u);
  EXPECT_EQ(report->subject_identifier, "anna@example.org");
  EXPECT_FALSE(report->records[0].personal.empty());
  ASSERT_EQ(report->records[0].flags.size(), 1u);
  EXPECT_EQ(report->records[0].flags[0].note, "born 1981");
  ASSERT_EQ(report->records[0].contests.size(), 1u);
  EXPECT_EQ(report->records[0].contests[0].statement, "wrong");

  // The re-key finishes, and the report reads the same.
  ASSERT_TRUE(engine_->RekeySubject(*admin_, anna).ok());
  auto rekeyed = engine_->ProduceSubjectReport(*auditor_, anna);
  ASSERT_TRUE(rekeyed.has_value()) << rekeyed.error().ToString();
  EXPECT_EQ(rekeyed->records[0].flags[0].note, "born 1981");
}

// Flag, Contest and Rectify count the record's personal bytes by opening
// them (Records::PersonalBytes): under the retiring key too.
TEST_F(ShredReviewTest, ChangesDuringARekeyCountWhatIsUnderTheRetiringKey) {
  NewRecord both;
  both.kind = "request";
  both.personal = {{"anna@example.org", {{"name", "Anna"}}},
                   {"ben@example.org", {{"name", "Ben"}}}};
  const uint64_t id = *engine_->CreateRecord(*owner_, both);
  const std::string anna = Subject("anna@example.org");
  const std::string ben = Subject("ben@example.org");
  ASSERT_TRUE(engine_->FlagIncorrect(*owner_, id, anna, "born 1981").ok());
  BeginRekey(anna);

  Status flagged = engine_->FlagIncorrect(*owner_, id, anna, "again");
  EXPECT_TRUE(flagged.ok()) << flagged.ToString();
  auto rectified = engine_->Rectify(*owner_, id, ben, {{"name", "Benno"}});
  EXPECT_TRUE(rectified.has_value()) << rectified.error().ToString();
  ASSERT_TRUE(engine_->Withdraw(*owner_, id).ok());  // For the officer.
  Status contested =
      engine_->Contest(*officer_, id, anna, "wrong", {{"born", "1981"}});
  EXPECT_TRUE(contested.ok()) << contested.ToString();

  ASSERT_TRUE(engine_->RekeySubject(*admin_, anna).ok());
  auto view = engine_->GetRecord(*officer_, id, APurpose());
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  ASSERT_EQ(view->parts.size(), 2u);
  EXPECT_EQ(view->parts[1].fields[0].value, "Benno");
  ASSERT_EQ(view->contests.size(), 1u);
  ASSERT_EQ(view->flags.size(), 2u);
  EXPECT_EQ(view->flags[0].note, "born 1981");
  EXPECT_EQ(view->flags[1].note, "again");
}

}  // namespace
}  // namespace custos::testing
