// Deadlines and the sweeper, with the IMI scenarios (DESIGN section 3).

#include <gtest/gtest.h>
#include <leveldb/db.h>

#include "storage/keys.h"
#include "storage/period.h"
#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

using std::chrono::hours;
using namespace std::chrono_literals;

class SweeperTest : public EngineTest {
 protected:
  uint64_t CreateOfKind(const std::string& kind) {
    NewRecord r;
    r.kind = kind;
    r.personal = {{"anna@example.org", {{"name", "Anna"}}}};
    auto id = engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(id.has_value()) << id.error().ToString();
    return id.value_or(0);
  }
  SweepReport SweepAt(Timestamp as_of, bool dry_run = false) {
    SweepOptions options;
    options.as_of = as_of;
    // A sweep writes only what is in force: the clock moves there first.
    if (!dry_run && as_of > clock_.Now()) clock_.Set(as_of);
    options.dry_run = dry_run;
    auto report = engine_->Sweep(*admin_, options);
    EXPECT_TRUE(report.has_value()) << report.error().ToString();
    return report.value_or(SweepReport{});
  }
  RecordState StateOf(uint64_t id) {
    return engine_->GetRecord(*admin_, id)->state;
  }
  // Creates and closes `n` alerts: all due for erasure on 2027-02-28, in
  // one deadline bucket.
  void CloseAlerts(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(engine_->Close(*owner_, CreateOfKind("alert")).ok());
    }
  }
  // A sweep at `as_of` (the clock moved there) in batches of two.
  SweepOptions InBatchesOfTwoAt(Timestamp as_of) {
    SweepOptions options;
    options.as_of = as_of;
    clock_.Set(as_of);
    options.batch_size = 2;
    return options;
  }
};

TEST_F(SweeperTest,
       ARequestClosedOnLastAugustIsBlockedOnLastFebruaryAndErasedThreeYearsOn) {
  uint64_t id = CreateOfKind("request");
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());  // 2026-08-31 12:00 UTC.

  EXPECT_EQ(SweepAt(At(2027, 2, 28) - 1us).blocked, 0u);
  EXPECT_EQ(StateOf(id), RecordState::kClosed);
  SweepReport report = SweepAt(At(2027, 2, 28));
  EXPECT_EQ(report.blocked, 1u);
  EXPECT_EQ(StateOf(id), RecordState::kBlocked);
  EXPECT_EQ(engine_->GetRecord(*admin_, id)->blocked_at, At(2027, 2, 28));
  EXPECT_EQ(engine_->GetRecord(*owner_, id).error().code(),
            StatusCode::kNotFound);
  auto officer = engine_->GetRecord(*officer_, id, APurpose());
  ASSERT_TRUE(officer.has_value());
  EXPECT_TRUE(officer->personal_included);

  EXPECT_EQ(SweepAt(At(2029, 8, 31) - 1us).erased, 0u);
  EXPECT_EQ(SweepAt(At(2029, 8, 31)).erased, 1u);
  auto erased = engine_->GetRecord(*officer_, id, APurpose());
  EXPECT_EQ(erased->state, RecordState::kErased);
  EXPECT_EQ(erased->erased_at, At(2029, 8, 31));
  EXPECT_TRUE(erased->parts.empty());
}

TEST_F(SweeperTest, AnAlertClosedOnLastAugustIsErasedOnLastFebruary) {
  uint64_t id = CreateOfKind("alert");
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  EXPECT_EQ(SweepAt(At(2027, 2, 28) - 1us).erased, 0u);
  SweepReport report = SweepAt(At(2027, 2, 28));
  EXPECT_EQ(report.erased, 1u);
  EXPECT_EQ(report.blocked, 0u);
  EXPECT_EQ(StateOf(id), RecordState::kErased);
}

TEST_F(SweeperTest, AWithdrawnAlertIsInvisibleAtOnceAndErasedOnSchedule) {
  uint64_t id = CreateOfKind("alert");
  ASSERT_TRUE(engine_->Grant(*owner_, id, "authority-b").ok());
  ASSERT_TRUE(engine_->Withdraw(*owner_, id).ok());
  EXPECT_EQ(engine_->GetRecord(*owner_, id).error().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(engine_->GetRecord(*grantee_, id).error().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(SweepAt(At(2027, 2, 28)).erased, 1u);
}

TEST_F(SweeperTest, AFebruaryClosureInALeapYearEndsOnTheTwentyNinth) {
  clock_.Set(At(2027, 8, 31));
  uint64_t id = CreateOfKind("request");
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  EXPECT_EQ(SweepAt(At(2028, 2, 28)).blocked, 0u);
  EXPECT_EQ(SweepAt(At(2028, 2, 29)).blocked, 1u);
}

TEST_F(SweeperTest, ARecordOfAKindWithoutPolicyIsRefused) {
  NewRecord r;
  r.kind = "unregulated";
  auto id = engine_->CreateRecord(*owner_, r);
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error().code(), StatusCode::kFailedPrecondition);
}

TEST_F(SweeperTest, ShippedDefaultsAreInPlace) {
  auto policies = engine_->ListPolicies(*owner_);
  ASSERT_TRUE(policies.has_value());
  auto by_kind = [](const RetentionPolicy& a, const RetentionPolicy& b) {
    return a.kind < b.kind;
  };
  std::vector<RetentionPolicy> shipped = DefaultPolicies();
  std::sort(shipped.begin(), shipped.end(), by_kind);
  EXPECT_EQ(*policies, shipped);
}

TEST_F(SweeperTest, IdleActiveRecordsAreClosedByCloseAfter) {
  RetentionPolicy policy{.kind = "case",
                         .close_after = *ParsePeriod("P30D"),
                         .block_after = std::nullopt,
                         .erase_after = *ParsePeriod("P1Y"),
                         .history_after = *ParsePeriod("P5Y")};
  ASSERT_TRUE(engine_->SetPolicy(*admin_, policy).ok());
  uint64_t idle = CreateOfKind("case");
  uint64_t touched = CreateOfKind("case");
  clock_.Advance(hours(24 * 20));
  ASSERT_TRUE(engine_->Grant(*owner_, touched, "authority-b").ok());
  SweepReport report = SweepAt(TestEpoch() + hours(24 * 30));
  EXPECT_EQ(report.closed, 1u);
  EXPECT_EQ(StateOf(idle), RecordState::kClosed);
  EXPECT_EQ(engine_->GetRecord(*admin_, idle)->closed_at,
            TestEpoch() + hours(24 * 30));
  EXPECT_EQ(StateOf(touched), RecordState::kActive);
  // The erase deadline runs from the closure the sweeper applied.
  EXPECT_EQ(SweepAt(At(2027, 9, 30) - 1us).erased, 0u);
  EXPECT_EQ(SweepAt(At(2027, 9, 30)).erased, 1u);
}

TEST_F(SweeperTest, ADryRunListsWhatWouldHappenAndChangesNothing) {
  uint64_t id = CreateOfKind("request");
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  SweepReport dry = SweepAt(At(2030, 1, 1), /*dry_run=*/true);
  EXPECT_EQ(dry.blocked, 1u);
  EXPECT_EQ(dry.erased, 1u);
  ASSERT_EQ(dry.transitions.size(), 2u);
  EXPECT_EQ(dry.transitions[0].to, RecordState::kBlocked);
  EXPECT_EQ(dry.transitions[0].due, At(2027, 2, 28));
  EXPECT_EQ(dry.transitions[1].to, RecordState::kErased);
  EXPECT_EQ(dry.transitions[1].due, At(2029, 8, 31));
  EXPECT_EQ(StateOf(id), RecordState::kClosed);
  // The real sweep does the same, in one write per record.
  SweepReport real = SweepAt(At(2030, 1, 1));
  EXPECT_EQ(real.transitions.size(), 2u);
  EXPECT_EQ(StateOf(id), RecordState::kErased);
}

TEST_F(SweeperTest, SweepingTwiceDoesNothingTheSecondTime) {
  CloseAlerts(5);
  EXPECT_EQ(SweepAt(At(2027, 3, 1)).erased, 5u);
  SweepReport again = SweepAt(At(2027, 3, 1));
  EXPECT_EQ(again.erased, 0u);
  EXPECT_TRUE(again.transitions.empty());
}

// At their deadline, within their bucket's hour, the alerts are erased
// record by record, and max_records bounds how many.
TEST_F(SweeperTest, MaxRecordsBoundsASweepAndTheNextOneFinishes) {
  CloseAlerts(7);
  SweepOptions options = InBatchesOfTwoAt(At(2027, 2, 28));
  options.max_records = 5;
  auto first = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->erased, 5u);
  EXPECT_FALSE(first->complete);
  auto second = engine_->Sweep(*admin_, options);
  EXPECT_EQ(second->erased, 2u);
  EXPECT_TRUE(second->complete);
}

// Once their bucket's hour has ended they are erased by its key, whatever
// the bound: max_records then bounds only the rewrite of their stubs.
TEST_F(SweeperTest, MaxRecordsBoundsOnlyTheRewriteOfABucketErasedByKey) {
  CloseAlerts(7);
  SweepOptions options = InBatchesOfTwoAt(At(2027, 3, 1));
  options.max_records = 5;
  auto first = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->erased, 7u);
  EXPECT_EQ(first->buckets_destroyed, 1u);
  EXPECT_FALSE(first->complete);  // Two stubs left to write.
  auto second = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->erased, 0u);
  EXPECT_TRUE(second->complete);
  auto third = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->erased, 0u);
  EXPECT_TRUE(third->complete);
}

// A stop requested (custosd stopping) ends the sweep after the batch it is
// writing: what it wrote stays, a bucket still sealing records keeps its
// key, and no pruning or compaction begins; the next sweep does the rest.
TEST_F(SweeperTest, AStopRequestEndsTheSweepAfterItsBatch) {
  CloseAlerts(7);
  SweepOptions options = InBatchesOfTwoAt(At(2027, 2, 28));
  std::stop_source stop;
  options.stop = stop.get_token();
  std::vector<SweepPhase> phases;
  options.progress = [&](const SweepProgress& p) {
    phases.push_back(p.phase);
    if (p.phase == SweepPhase::kTransitions) stop.request_stop();
  };
  auto first = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  EXPECT_EQ(first->erased, 2u);
  EXPECT_TRUE(first->stopped);
  EXPECT_FALSE(first->complete);
  // Their bucket still seals the five left: its key stays.
  EXPECT_EQ(first->buckets_destroyed, 0u);
  EXPECT_EQ(phases, (std::vector<SweepPhase>{SweepPhase::kDestroyingKeys,
                                             SweepPhase::kTransitions,
                                             SweepPhase::kDestroyingKeys}));

  // Requested before the sweep began: nothing is written record by record.
  phases.clear();
  auto stopped = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_EQ(stopped->erased, 0u);
  EXPECT_TRUE(stopped->stopped);
  EXPECT_EQ(phases, (std::vector<SweepPhase>{SweepPhase::kDestroyingKeys,
                                             SweepPhase::kDestroyingKeys}));

  options.stop = {};
  auto second = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  EXPECT_EQ(second->erased, 5u);
  EXPECT_FALSE(second->stopped);
  EXPECT_TRUE(second->complete);
}

TEST_F(SweeperTest, ProgressIsReportedAfterEachBatchAndAtEachLaterPhase) {
  CloseAlerts(5);
  SweepOptions options = InBatchesOfTwoAt(At(2027, 3, 1));
  std::vector<SweepProgress> seen;
  options.progress = [&seen](const SweepProgress& p) { seen.push_back(p); };
  auto report = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->erased, 5u);
  // The erasure by key first (the alerts' bucket ended: its key goes
  // before any record is rewritten), the compaction of the bucket's
  // deleted range, then the rewrite in batches of 2, 2 and 1, then the
  // three later phases, in order.
  ASSERT_EQ(seen.size(), 8u);
  const size_t done[] = {0, 0, 2, 4, 5, 5, 5, 5};
  const size_t batches[] = {0, 0, 1, 2, 3, 3, 3, 3};
  const SweepPhase phases[] = {
      SweepPhase::kDestroyingKeys, SweepPhase::kCompacting,
      SweepPhase::kTransitions,    SweepPhase::kTransitions,
      SweepPhase::kTransitions,    SweepPhase::kDestroyingKeys,
      SweepPhase::kPruningHistory, SweepPhase::kCompacting};
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].phase, phases[i]) << i;
    EXPECT_EQ(seen[i].records_done, done[i]) << i;
    EXPECT_EQ(seen[i].batches, batches[i]) << i;
  }
  EXPECT_EQ(SweepPhaseName(SweepPhase::kPruningHistory), "pruning_history");

  // A dry run reports its batches and nothing after them.
  CloseAlerts(3);
  seen.clear();
  options.dry_run = true;
  options.as_of = At(2028, 1, 1);
  ASSERT_TRUE(engine_->Sweep(*admin_, options).has_value());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen.back().phase, SweepPhase::kTransitions);
  EXPECT_EQ(seen.back().records_done, 3u);
}

// Issue 11 review: kCompacting was reported before the transitions in
// every sweep that writes; it is, as SweepOptions::progress says, only
// when buckets were erased by key. A sweep that erases none reports the
// erasure by key's look, its batch, and the three later phases.
TEST_F(SweeperTest,
       ProgressReportsNoEarlyCompactionWhenNoBucketWasErasedByKey) {
  ASSERT_TRUE(engine_->Close(*owner_, CreateOfKind("alert")).ok());
  SweepOptions options;
  options.as_of = clock_.Now();  // Nothing due, no bucket ended.
  std::vector<SweepPhase> seen;
  options.progress = [&seen](const SweepProgress& p) {
    seen.push_back(p.phase);
  };
  auto report = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->buckets_destroyed, 0u);
  const std::vector<SweepPhase> phases = {
      SweepPhase::kDestroyingKeys, SweepPhase::kTransitions,
      SweepPhase::kDestroyingKeys, SweepPhase::kPruningHistory,
      SweepPhase::kCompacting};
  EXPECT_EQ(seen, phases);
}

TEST_F(SweeperTest, APolicyChangeAppliesToLaterDeadlinesAndReapplyRecomputes) {
  uint64_t before = CreateOfKind("alert");
  ASSERT_TRUE(engine_->Close(*owner_, before).ok());
  RetentionPolicy longer = DefaultPolicies()[1].kind == "alert"
                               ? DefaultPolicies()[1]
                               : DefaultPolicies()[0];
  ASSERT_EQ(longer.kind, "alert");
  longer.erase_after = *ParsePeriod("P1Y");
  ASSERT_TRUE(engine_->SetPolicy(*admin_, longer).ok());
  uint64_t after = CreateOfKind("alert");
  ASSERT_TRUE(engine_->Close(*owner_, after).ok());
  uint64_t third = CreateOfKind("alert");
  ASSERT_TRUE(engine_->Close(*owner_, third).ok());

  SweepAt(At(2027, 2, 28));
  EXPECT_EQ(StateOf(before), RecordState::kErased);  // Old deadline kept.
  EXPECT_EQ(StateOf(after), RecordState::kClosed);   // New one: P1Y.

  longer.erase_after = *ParsePeriod("P2Y");
  ASSERT_TRUE(engine_->SetPolicy(*admin_, longer).ok());
  auto updated = engine_->ReapplyPolicies(*admin_);
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(*updated, 2u);
  EXPECT_EQ(SweepAt(At(2028, 8, 31) - 1us).erased, 0u);
  EXPECT_EQ(SweepAt(At(2028, 8, 31)).erased, 2u);
}

TEST_F(SweeperTest, InvalidPoliciesAndNonAdminsAreRefused) {
  RetentionPolicy bad{.kind = "x",
                      .close_after = std::nullopt,
                      .block_after = *ParsePeriod("P1Y"),
                      .erase_after = *ParsePeriod("P6M"),
                      .history_after = *ParsePeriod("P5Y")};
  EXPECT_EQ(engine_->SetPolicy(*admin_, bad).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->SetPolicy(*owner_, DefaultPolicies()[0]).code(),
            StatusCode::kPermissionDenied);
  SweepOptions options;
  options.as_of = At(2030, 1, 1);
  EXPECT_EQ(engine_->Sweep(*owner_, options).error().code(),
            StatusCode::kPermissionDenied);
}

TEST_F(SweeperTest, TheDeadlineIndexHoldsOneEntryPerOpenDeadline) {
  uint64_t a = CreateOfKind("request");
  uint64_t b = CreateOfKind("alert");
  CreateOfKind("request");  // ACTIVE, no close_after: no deadline.
  ASSERT_TRUE(engine_->Close(*owner_, a).ok());
  ASSERT_TRUE(engine_->Close(*owner_, b).ok());
  SweepAt(At(2027, 2, 28));  // a blocked (next: erase), b erased (none).
  Close();
  std::unique_ptr<leveldb::DB> db = OpenRaw("records");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(CountKeys(*db, keys::kDeadlinePrefix), 1);
}

}  // namespace
}  // namespace custos::testing
