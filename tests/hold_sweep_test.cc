// Holds as a sweep asks about them (issue 11, "Holds looked up once"): with
// no hold the sweep reads none; with holds, their spans are read once and
// kept in memory until one changes, a deadline bucket is checked against
// them once, and only the records a hold reaches are looked up, moved out
// of their bucket before its key is destroyed.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "storage/deadline_keys.h"
#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

// An alert closed at TestEpoch() is erased six months later, in this hour.
Timestamp AlertErasure() { return At(2027, 2, 28); }
Timestamp EndOfAlertBucket() {
  return FromMicros(DeadlineKeys::BucketEnd(
                        DeadlineKeys::BucketOf(ToMicros(AlertErasure()))) -
                    1);
}
// Long after the alerts' bucket.
Timestamp HoldEnd() { return At(2027, 6, 1); }

class HoldSweepTest : public EngineTest {
 protected:
  uint64_t CreateAlert(const std::string& identifier) {
    NewRecord r;
    r.kind = "alert";
    r.attributes = {{"country", "AT"}};
    r.personal = {{identifier, {{"name", "N. N."}}}};
    auto id = engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(id.has_value()) << id.error().ToString();
    return id.value_or(0);
  }
  // `count` closed alerts of one subject each, all due in one bucket.
  std::vector<uint64_t> CreateClosedAlerts(size_t count,
                                           const std::string& prefix) {
    std::vector<uint64_t> ids;
    for (size_t i = 0; i < count; ++i) {
      ids.push_back(CreateAlert(prefix + std::to_string(i) + "@example.org"));
      EXPECT_TRUE(engine_->Close(*owner_, ids.back()).ok());
    }
    return ids;
  }
  SweepReport SweepAt(Timestamp as_of, size_t batch_size) {
    SweepOptions options;
    options.as_of = as_of;
    options.batch_size = batch_size;
    if (as_of > clock_.Now()) clock_.Set(as_of);
    auto report = engine_->Sweep(*admin_, options);
    EXPECT_TRUE(report.has_value()) << report.error().ToString();
    return report.value_or(SweepReport{});
  }
  RecordState StateOf(uint64_t id) {
    auto view = engine_->GetRecord(*admin_, id);
    EXPECT_TRUE(view.has_value()) << view.error().ToString();
    return view ? view->state : RecordState::kActive;
  }
  // Whether an officer still reads the record's personal data.
  bool OfficerReadsPersonal(uint64_t id) {
    auto view = engine_->GetRecord(*officer_, id, APurpose());
    return view.has_value() && view->personal_included && !view->parts.empty();
  }
  std::string SubjectOf(uint64_t id) {
    auto view = engine_->GetRecord(*officer_, id, APurpose());
    EXPECT_TRUE(view.has_value() && view->subject_ids.size() == 1);
    return view && !view->subject_ids.empty() ? view->subject_ids[0] : "";
  }
};

TEST_F(HoldSweepTest, ASweepInAStoreThatNeverHadAHoldReadsNoHold) {
  const std::vector<uint64_t> ids = CreateClosedAlerts(40, "a");
  const Engine::HoldLookups before = engine_->TEST_HoldLookups();
  // Four batches of ten.
  SweepReport report = SweepAt(EndOfAlertBucket(), 10);
  EXPECT_EQ(report.erased, 40u);
  EXPECT_EQ(report.buckets_destroyed, 1u);
  const Engine::HoldLookups after = engine_->TEST_HoldLookups();
  EXPECT_EQ(after.span_loads, before.span_loads);
  EXPECT_EQ(after.record_lookups, before.record_lookups);
  for (uint64_t id : ids) EXPECT_EQ(StateOf(id), RecordState::kErased);
}

// A hold in force through the bucket's hour on a record outside it, and one
// on a record inside it: the spans are read once for the whole sweep, the
// held record alone is looked up and moved, and the bucket's other records
// are erased by its key, with no lookup each.
TEST_F(HoldSweepTest, HoldsAreReadOnceAndOnlyTheHeldRecordIsLookedUp) {
  const uint64_t elsewhere = CreateAlert("e@example.org");  // Active.
  const std::vector<uint64_t> ids = CreateClosedAlerts(40, "a");
  const uint64_t held = ids[17];
  ASSERT_TRUE(engine_->SetRecordHold(*officer_, elsewhere, "case 1", HoldEnd())
                  .has_value());
  ASSERT_TRUE(
      engine_->SetRecordHold(*officer_, held, "case 2", HoldEnd()).has_value());
  const Engine::HoldLookups before = engine_->TEST_HoldLookups();

  SweepReport report = SweepAt(EndOfAlertBucket(), 10);
  EXPECT_EQ(report.erased, 39u);
  EXPECT_EQ(report.postponed, 1u);
  ASSERT_EQ(report.held.size(), 1u);
  EXPECT_EQ(report.held[0].record_id, held);
  EXPECT_EQ(report.held[0].erasable_at, HoldEnd());
  // Erased by key: the held record left the bucket first.
  EXPECT_EQ(report.buckets_destroyed, 1u);
  const Engine::HoldLookups after = engine_->TEST_HoldLookups();
  EXPECT_EQ(after.span_loads - before.span_loads, 1u);
  // The held record's own and its subject's holds, asked a few times
  // (its erasure, its re-scheduling, the report's hold ids): never per
  // record of the bucket.
  EXPECT_LE(after.record_lookups - before.record_lookups, 8u);
  EXPECT_GT(after.record_lookups - before.record_lookups, 0u);

  EXPECT_TRUE(OfficerReadsPersonal(held));
  EXPECT_EQ(StateOf(held), RecordState::kClosed);
  for (uint64_t id : ids) {
    if (id != held) {
      EXPECT_EQ(StateOf(id), RecordState::kErased) << id;
    }
  }
  EXPECT_NE(StateOf(elsewhere), RecordState::kErased);
}

TEST_F(HoldSweepTest, ASubjectHoldMovesOnlyItsSubjectsRecordsOutOfTheBucket) {
  const std::vector<uint64_t> others = CreateClosedAlerts(20, "b");
  const uint64_t first = CreateAlert("anna@example.org");
  ASSERT_TRUE(engine_->Close(*owner_, first).ok());
  const uint64_t second = CreateAlert("anna@example.org");
  ASSERT_TRUE(engine_->Close(*owner_, second).ok());
  ASSERT_TRUE(
      engine_->SetSubjectHold(*officer_, SubjectOf(first), "case 3", HoldEnd())
          .has_value());

  SweepReport report = SweepAt(EndOfAlertBucket(), 7);
  EXPECT_EQ(report.erased, 20u);
  EXPECT_EQ(report.postponed, 2u);
  EXPECT_EQ(report.buckets_destroyed, 1u);
  EXPECT_TRUE(OfficerReadsPersonal(first));
  EXPECT_TRUE(OfficerReadsPersonal(second));
  for (uint64_t id : others) EXPECT_EQ(StateOf(id), RecordState::kErased);

  // At the hold's end they are erased in their turn.
  SweepReport later = SweepAt(
      FromMicros(
          DeadlineKeys::BucketEnd(DeadlineKeys::BucketOf(ToMicros(HoldEnd()))) -
          1),
      7);
  EXPECT_EQ(later.erased, 2u);
  EXPECT_EQ(StateOf(first), RecordState::kErased);
  EXPECT_EQ(StateOf(second), RecordState::kErased);
}

// The kept spans follow every change: a hold set after a sweep read them
// holds at the next sweep, and a hold released after one frees its record.
TEST_F(HoldSweepTest, TheKeptSpansFollowAHoldSetOrReleasedBetweenSweeps) {
  const std::vector<uint64_t> ids = CreateClosedAlerts(5, "a");
  const uint64_t unrelated = CreateAlert("e@example.org");
  ASSERT_TRUE(engine_->SetRecordHold(*officer_, unrelated, "case 1", HoldEnd())
                  .has_value());
  // Nothing due yet: the sweep reads the spans and keeps them.
  SweepReport early = SweepAt(At(2027, 1, 1), 10);
  EXPECT_EQ(early.erased, 0u);
  const Engine::HoldLookups kept = engine_->TEST_HoldLookups();

  auto hold = engine_->SetRecordHold(*officer_, ids[2], "case 2", HoldEnd());
  ASSERT_TRUE(hold.has_value()) << hold.error().ToString();
  SweepReport due = SweepAt(EndOfAlertBucket(), 10);
  EXPECT_EQ(due.erased, 4u);
  EXPECT_EQ(due.postponed, 1u);
  EXPECT_TRUE(OfficerReadsPersonal(ids[2]));
  EXPECT_EQ(engine_->TEST_HoldLookups().span_loads - kept.span_loads, 1u);

  ASSERT_TRUE(engine_->ReleaseHold(*officer_, hold->id).ok());
  SweepReport released = SweepAt(clock_.Now(), 10);
  EXPECT_EQ(released.erased, 1u);
  EXPECT_EQ(StateOf(ids[2]), RecordState::kErased);
  EXPECT_NE(StateOf(unrelated), RecordState::kErased);
}

}  // namespace
}  // namespace custos::testing
