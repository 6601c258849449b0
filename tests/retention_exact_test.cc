// Retention exact to the second (issue 9, items 1, 2, 4 and 6): a deadline
// takes effect at its instant whether a sweep has run or not; a sweep never
// acts in the future; an erasure a hold postponed is dated when it
// happens; only the owner keeps a record open.

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

using namespace std::chrono_literals;

constexpr auto kDay = std::chrono::hours(24);

template <typename T>
StatusCode CodeOf(const Result<T>& r) {
  return r ? StatusCode::kOk : r.error().code();
}

class RetentionExactTest : public EngineTest {
 protected:
  // Requests close after 15 idle days, block 6 months after closure and
  // are erased 3 years after it.
  void SetUp() override {
    EngineTest::SetUp();
    RetentionPolicy p;
    p.kind = "request";
    p.close_after = *ParsePeriod("P15D");
    p.block_after = *ParsePeriod("P6M");
    p.erase_after = *ParsePeriod("P3Y");
    p.history_after = *ParsePeriod("P5Y");
    ASSERT_TRUE(engine_->SetPolicy(*admin_, p).ok());
  }

  Result<RecordView> Get(const Actor& who, uint64_t id,
                         std::optional<Purpose> purpose = std::nullopt) {
    return engine_->GetRecord(who, id, purpose);
  }

  // The actions of record `id`'s history, as the auditor sees them.
  std::vector<std::pair<std::string, std::string>> Actions(uint64_t id) {
    auto view = Get(*admin_, id);
    EXPECT_TRUE(view.has_value());
    std::vector<std::pair<std::string, std::string>> out;
    if (!view || view->subject_ids.empty()) return out;
    auto page =
        engine_->AccessHistory(*auditor_, view->subject_ids.front(),
                               Timestamp::min(), Timestamp::max(), 0, 100);
    EXPECT_TRUE(page.has_value()) << page.error().ToString();
    if (!page) return out;
    for (const AccessEvent& e : page->events) {
      if (e.record_id == id) out.emplace_back(e.action, e.principal_id);
    }
    return out;
  }
};

TEST_F(RetentionExactTest, AnIdleRecordClosesAtItsDeadlineWithoutASweep) {
  const uint64_t id = CreateRecord("anna@example.org", {"authority-b"});
  const Timestamp deadline = TestEpoch() + 15 * kDay;

  clock_.Set(deadline - 1s);
  auto before = Get(*grantee_, id);
  ASSERT_TRUE(before.has_value()) << before.error().ToString();
  EXPECT_EQ(before->state, RecordState::kActive);
  EXPECT_TRUE(before->personal_included);

  clock_.Set(deadline);
  auto at = Get(*grantee_, id);
  ASSERT_TRUE(at.has_value()) << at.error().ToString();
  EXPECT_EQ(at->state, RecordState::kClosed);
  EXPECT_FALSE(at->personal_included);
  EXPECT_EQ(at->closed_at, deadline);
  // Changes see the same state: the owner may no longer rectify.
  auto view = Get(*officer_, id, APurpose());
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(CodeOf(engine_->Rectify(*owner_, id, view->subject_ids.front(),
                                    {{"name", "Anna Other"}})),
            StatusCode::kFailedPrecondition);
  // Listings too.
  ListQuery q;
  q.state = RecordState::kClosed;
  auto page = engine_->ListRecords(*grantee_, q);
  ASSERT_TRUE(page.has_value());
  ASSERT_EQ(page->records.size(), 1u);
  EXPECT_FALSE(page->records[0].personal_included);
}

TEST_F(RetentionExactTest, BlockAndErasureTakeEffectAtTheirInstants) {
  const uint64_t id = CreateRecord();
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  const Timestamp closed = TestEpoch();
  const Timestamp block = At(2027, 2, 28);  // Closed + P6M.
  const Timestamp erase = At(2029, 8, 31);  // Closed + P3Y.

  clock_.Set(block - 1s);
  auto owner_before = Get(*owner_, id);
  ASSERT_TRUE(owner_before.has_value());
  EXPECT_EQ(owner_before->state, RecordState::kClosed);
  clock_.Set(block);
  EXPECT_EQ(CodeOf(Get(*owner_, id)), StatusCode::kNotFound);
  auto officer_at_block = Get(*officer_, id, APurpose());
  ASSERT_TRUE(officer_at_block.has_value());
  EXPECT_EQ(officer_at_block->state, RecordState::kBlocked);
  EXPECT_EQ(officer_at_block->blocked_at, block);

  clock_.Set(erase - 1s);
  auto officer_before = Get(*officer_, id, APurpose());
  ASSERT_TRUE(officer_before.has_value());
  EXPECT_EQ(officer_before->state, RecordState::kBlocked);
  EXPECT_TRUE(officer_before->personal_included);
  clock_.Set(erase);
  auto officer_at_erase = Get(*officer_, id, APurpose());
  ASSERT_TRUE(officer_at_erase.has_value());
  EXPECT_EQ(officer_at_erase->state, RecordState::kErased);
  EXPECT_FALSE(officer_at_erase->personal_included);
  EXPECT_EQ(officer_at_erase->erased_at, erase);
  EXPECT_EQ(
      engine_
          ->Contest(*officer_, id, officer_before->subject_ids[0], "wrong", {})
          .code(),
      StatusCode::kFailedPrecondition);

  // A sweep much later writes down exactly those instants.
  clock_.Set(erase + 60 * kDay);
  SweepOptions options;
  options.as_of = clock_.Now();
  auto report = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->erased, 1u);
  auto swept = Get(*admin_, id);
  ASSERT_TRUE(swept.has_value());
  EXPECT_EQ(swept->closed_at, closed);
  EXPECT_EQ(swept->blocked_at, block);
  EXPECT_EQ(swept->erased_at, erase);
}

TEST_F(RetentionExactTest, AChangeWritesTheTransitionsItFoundInForce) {
  const uint64_t id = CreateRecord();
  const Timestamp deadline = TestEpoch() + 15 * kDay;
  clock_.Set(deadline + kDay);
  // Withdrawn one day after it closed by itself: both are written, the
  // closure at its instant and by the retention policy.
  ASSERT_TRUE(engine_->Withdraw(*owner_, id).ok());
  auto view = Get(*admin_, id);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->state, RecordState::kBlocked);
  EXPECT_EQ(view->closed_at, deadline);
  EXPECT_EQ(view->blocked_at, deadline + kDay);
  const auto actions = Actions(id);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"create", "authority-a"},
      {"close", "custos:retention"},
      {"withdraw", "authority-a"}};
  EXPECT_EQ(actions, want);
  // Nothing is left for a sweep to do, and no second close is written.
  SweepOptions options;
  options.as_of = clock_.Now();
  auto report = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->closed, 0u);
  EXPECT_EQ(Actions(id).size(), want.size());
}

// A policy change writes down the transitions it finds in force first, by
// the retention policy as every such write, not by the admin who changed
// the policy (helper-130), and its policy_set event comes after them.
TEST_F(RetentionExactTest,
       APolicyChangeWritesWhatWasInForceByTheRetentionPolicy) {
  const uint64_t id = CreateRecord();
  clock_.Set(TestEpoch() + 15 * kDay + kDay);  // Closed a day ago, unswept.
  auto view = Get(*admin_, id);
  ASSERT_TRUE(view.has_value());
  ASSERT_EQ(view->state, RecordState::kClosed);
  auto policies = engine_->ListPolicies(*admin_);
  ASSERT_TRUE(policies.has_value());
  RetentionPolicy policy;
  for (const RetentionPolicy& p : *policies) {
    if (p.kind == view->kind) policy = p;
  }
  ASSERT_EQ(policy.kind, view->kind);
  policy.history_after = Period{.years = 10};
  ASSERT_TRUE(engine_->SetPolicy(*admin_, policy).ok());
  const std::vector<std::pair<std::string, std::string>> want = {
      {"create", "authority-a"}, {"close", "custos:retention"}};
  EXPECT_EQ(Actions(id), want);
}

TEST_F(RetentionExactTest, ASweepNeverWritesInTheFuture) {
  NewRecord r;
  r.kind = "alert";  // Erased six months after closure.
  r.personal = {{"anna@example.org", {{"name", "Anna"}}}};
  const uint64_t id = *engine_->CreateRecord(*owner_, r);
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  auto hold =
      engine_->SetRecordHold(*officer_, id, "proceedings", At(2027, 6, 1));
  ASSERT_TRUE(hold.has_value()) << hold.error().ToString();

  SweepOptions ahead;
  ahead.as_of = At(2027, 7, 1);
  EXPECT_EQ(CodeOf(engine_->Sweep(*admin_, ahead)),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Get(*admin_, id)->state, RecordState::kClosed);

  // A dry run may look ahead: at 2027-03-01 the hold still applies.
  ahead.dry_run = true;
  ahead.as_of = At(2027, 3, 1);
  auto held = engine_->Sweep(*admin_, ahead);
  ASSERT_TRUE(held.has_value()) << held.error().ToString();
  EXPECT_EQ(held->erased, 0u);
  EXPECT_EQ(held->postponed, 1u);
  ASSERT_EQ(held->held.size(), 1u);
  EXPECT_EQ(held->held[0].record_id, id);
  EXPECT_EQ(held->held[0].erasable_at, At(2027, 6, 1));
  EXPECT_EQ(held->held[0].hold_ids, std::vector<std::string>{hold->id});
  // At 2027-07-01 it would be erased, at the hold's end.
  ahead.as_of = At(2027, 7, 1);
  auto later = engine_->Sweep(*admin_, ahead);
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(later->erased, 1u);
  ASSERT_EQ(later->transitions.size(), 1u);
  EXPECT_EQ(later->transitions[0].due, At(2027, 6, 1));
  EXPECT_EQ(Get(*admin_, id)->state, RecordState::kClosed);
}

class HeldErasureTest : public RetentionExactTest {
 protected:
  // An alert closed at TestEpoch: legally erased at 2027-02-28 12:00.
  uint64_t ClosedAlert() {
    NewRecord r;
    r.kind = "alert";
    r.personal = {{"anna@example.org", {{"name", "Anna"}}}};
    const uint64_t id = *engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(engine_->Close(*owner_, id).ok());
    return id;
  }
  Timestamp ErasedAt(uint64_t id) {
    auto view = Get(*admin_, id);
    EXPECT_TRUE(view.has_value());
    if (!view || view->state != RecordState::kErased) return {};
    return view->erased_at.value_or(Timestamp{});
  }
};

TEST_F(HeldErasureTest, AReleasedHoldDatesTheErasureAtTheRelease) {
  const uint64_t id = ClosedAlert();
  auto hold =
      engine_->SetRecordHold(*officer_, id, "proceedings", At(2030, 1, 1));
  ASSERT_TRUE(hold.has_value());
  clock_.Set(At(2027, 4, 1));
  // Read under the hold, after the legal date.
  ASSERT_TRUE(Get(*officer_, id, APurpose())->personal_included);
  ASSERT_TRUE(engine_->ReleaseHold(*officer_, hold->id).ok());
  EXPECT_EQ(ErasedAt(id), At(2027, 4, 1));  // In force at once.
  clock_.Set(At(2027, 5, 1));
  SweepNow();
  EXPECT_EQ(ErasedAt(id), At(2027, 4, 1));
}

TEST_F(HeldErasureTest, AnExpiredHoldDatesTheErasureAtItsEndAfterAReapply) {
  const uint64_t id = ClosedAlert();
  ASSERT_TRUE(
      engine_->SetRecordHold(*officer_, id, "proceedings", At(2027, 6, 1))
          .has_value());
  clock_.Set(At(2027, 7, 1));
  ASSERT_TRUE(engine_->ReapplyPolicies(*admin_).has_value());
  SweepNow();
  EXPECT_EQ(ErasedAt(id), At(2027, 6, 1));
}

TEST_F(HeldErasureTest, ASubjectHoldThatEndedUnsweptDatesTheErasureAtItsEnd) {
  const uint64_t id = ClosedAlert();
  const std::string subject = Get(*admin_, id)->subject_ids.front();
  ASSERT_TRUE(
      engine_->SetSubjectHold(*officer_, subject, "proceedings", At(2027, 6, 1))
          .has_value());
  clock_.Set(At(2027, 5, 1));
  EXPECT_EQ(Get(*admin_, id)->state, RecordState::kClosed);
  clock_.Set(At(2027, 7, 1));
  EXPECT_EQ(ErasedAt(id), At(2027, 6, 1));
  SweepNow();
  EXPECT_EQ(ErasedAt(id), At(2027, 6, 1));
}

TEST_F(HeldErasureTest, AHoldOnARecordAlreadyErasedByItsDeadlineIsRefused) {
  const uint64_t id = ClosedAlert();
  clock_.Set(At(2027, 3, 1));  // Erased at 2027-02-28, not yet swept.
  EXPECT_EQ(
      CodeOf(engine_->SetRecordHold(*officer_, id, "late", At(2028, 1, 1))),
      StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErasedAt(id), At(2027, 2, 28));
}

TEST_F(RetentionExactTest, OnlyTheOwnersChangesKeepARecordOpen) {
  const uint64_t id = CreateRecord("anna@example.org", {"authority-b"});
  const std::string subject = Get(*admin_, id)->subject_ids.front();
  // The grantee flags every ten days; the record still closes 15 days
  // after the owner's last change.
  for (int day : {5, 10}) {
    clock_.Set(TestEpoch() + day * kDay);
    ASSERT_TRUE(engine_
                    ->FlagIncorrect(*grantee_, id, subject, "check the name",
                                    std::nullopt)
                    .ok());
  }
  clock_.Set(TestEpoch() + 15 * kDay);
  EXPECT_EQ(Get(*grantee_, id)->state, RecordState::kClosed);

  // The owner's change does keep it open.
  const uint64_t other = CreateRecord("bert@example.org", {"authority-b"});
  clock_.Set(TestEpoch() + 25 * kDay);
  ASSERT_TRUE(engine_->Grant(*owner_, other, "authority-c").ok());
  clock_.Set(TestEpoch() + 40 * kDay - 1s);
  EXPECT_EQ(Get(*grantee_, other)->state, RecordState::kActive);
  clock_.Set(TestEpoch() + 40 * kDay);
  EXPECT_EQ(Get(*grantee_, other)->state, RecordState::kClosed);
}

}  // namespace
}  // namespace custos::testing

namespace custos::testing {
namespace {

// custosd stopping: a run asked to stop before it begins writes nothing
// record by record and skips the shreds and the fold; the next run does it.
TEST_F(HeldErasureTest, AStoppedMaintenanceLeavesTheRestToTheNextRun) {
  const uint64_t id = ClosedAlert();
  // A shredded subject, whose record's bookkeeping is left to the runs.
  NewRecord other;
  other.kind = "alert";
  other.personal = {{"ben@example.org", {{"name", "Ben"}}}};
  ASSERT_TRUE(engine_->CreateRecord(*owner_, other).has_value());
  auto ben = engine_->FindSubject(*admin_, "ben@example.org");
  ASSERT_TRUE(ben.has_value()) << ben.error().ToString();
  ASSERT_TRUE(engine_->ShredSubject(*admin_, *ben).ok());
  clock_.Set(At(2027, 2, 28));  // Due, in a bucket not yet ended.
  std::stop_source stop;
  stop.request_stop();
  auto stopped =
      engine_->RunMaintenance(/*shred_budget=*/100, stop.get_token());
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_TRUE(stopped->stopped);
  EXPECT_FALSE(stopped->complete);
  EXPECT_EQ(stopped->erased, 0u);
  EXPECT_EQ(stopped->shred_records_rewritten, 0u);
  EXPECT_FALSE(stopped->statistics_folded);
  auto next = engine_->RunMaintenance(100);
  ASSERT_TRUE(next.has_value()) << next.error().ToString();
  EXPECT_FALSE(next->stopped);
  EXPECT_EQ(next->erased, 1u);
  EXPECT_EQ(next->shred_records_rewritten, 1u);
  EXPECT_TRUE(next->statistics_folded);
  EXPECT_EQ(ErasedAt(id), At(2027, 2, 28));
}

TEST_F(HeldErasureTest, ScheduledMaintenanceSweepsAsTheRetentionPolicy) {
  const uint64_t id = ClosedAlert();
  clock_.Set(At(2027, 3, 1));
  auto report = engine_->RunMaintenance(/*shred_budget=*/100);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->erased, 1u);
  EXPECT_EQ(ErasedAt(id), At(2027, 2, 28));
  // Nothing left: a second run finds nothing due.
  auto again = engine_->RunMaintenance(100);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->transitions.empty());
  // The erase event names the retention policy, not an admin.
  auto subject_events = [&]() -> std::vector<std::string> {
    std::vector<std::string> out;
    auto view = engine_->GetRecord(*admin_, id);
    if (!view || view->subject_ids.empty()) return out;
    auto page =
        engine_->AccessHistory(*auditor_, view->subject_ids[0],
                               Timestamp::min(), Timestamp::max(), 0, 100);
    if (!page) return out;
    for (const AccessEvent& e : page->events) {
      out.push_back(e.action + ":" + e.principal_id);
    }
    return out;
  }();
  EXPECT_NE(std::find(subject_events.begin(), subject_events.end(),
                      "erase:custos:retention"),
            subject_events.end());
}

}  // namespace
}  // namespace custos::testing
