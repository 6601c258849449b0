// Legal holds (DESIGN section 3): they postpone erasure and nothing else.

#include <gtest/gtest.h>

#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

using std::chrono::hours;
using namespace std::chrono_literals;

class HoldTest : public EngineTest {
 protected:
  // An alert closed at TestEpoch (2026-08-31 12:00): erasure due 2027-02-28.
  uint64_t ClosedAlert(const std::string& identifier = "anna@example.org") {
    NewRecord r;
    r.kind = "alert";
    r.personal = {{identifier, {{"name", "Anna"}}}};
    uint64_t id = *engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(engine_->Close(*owner_, id).ok());
    return id;
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
  RecordState StateOf(uint64_t id) {
    return engine_->GetRecord(*admin_, id)->state;
  }
};

TEST_F(HoldTest, ARecordHoldPostponesTheSweepersErasureToItsEnd) {
  uint64_t id = ClosedAlert();
  auto hold = engine_->SetRecordHold(
      *officer_, id, "legal proceedings 4 C 12/26", At(2027, 6, 1));
  ASSERT_TRUE(hold.has_value()) << hold.error().ToString();
  SweepReport report = SweepAt(At(2027, 3, 1));
  EXPECT_EQ(report.erased, 0u);
  EXPECT_EQ(report.postponed, 1u);
  EXPECT_EQ(StateOf(id), RecordState::kClosed);
  // When the hold ends, the postponed erasure is due at once.
  EXPECT_EQ(SweepAt(At(2027, 6, 1) - 1us).erased, 0u);
  EXPECT_EQ(SweepAt(At(2027, 6, 1)).erased, 1u);
  EXPECT_EQ(StateOf(id), RecordState::kErased);
}

TEST_F(HoldTest, ReleasingAHoldMakesThePostponedErasureDueAtOnce) {
  uint64_t id = ClosedAlert();
  auto hold =
      engine_->SetRecordHold(*officer_, id, "proceedings", At(2030, 1, 1));
  ASSERT_TRUE(hold.has_value());
  EXPECT_EQ(SweepAt(At(2027, 3, 1)).postponed, 1u);
  clock_.Set(At(2027, 4, 1));
  ASSERT_TRUE(engine_->ReleaseHold(*officer_, hold->id).ok());
  EXPECT_EQ(SweepAt(At(2027, 4, 1)).erased, 1u);
  EXPECT_EQ(engine_->ReleaseHold(*officer_, hold->id).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine_->ReleaseHold(*officer_, "h999").code(),
            StatusCode::kNotFound);
}

// The owner is told when the hold ends, not its id (hold ids link the
// records a subject's hold covers, as subject ids do: security review
// helper-95, finding 5); an admin is told the id.
TEST_F(HoldTest, EarlyErasureOfAHeldRecordIsRefusedNamingTheHold) {
  uint64_t id = ClosedAlert();
  auto hold =
      engine_->SetRecordHold(*officer_, id, "proceedings", At(2027, 1, 1));
  ASSERT_TRUE(hold.has_value());
  Status refused = engine_->EraseRecord(*owner_, id);
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.message(),
            "erasure refused: the record is under legal hold "
            "(until 2027-01-01T12:00:00Z)");
  Status admin_refused = engine_->EraseRecord(*admin_, id);
  EXPECT_EQ(admin_refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(admin_refused.message(),
            "erasure refused: the record is under legal hold " + hold->id +
                " (until 2027-01-01T12:00:00Z)");
  EXPECT_EQ(StateOf(id), RecordState::kClosed);
  clock_.Set(At(2027, 1, 1));  // The hold has ended.
  EXPECT_TRUE(engine_->EraseRecord(*owner_, id).ok());
}

TEST_F(HoldTest, ASubjectHoldCoversAllItsRecordsAndBlocksShredding) {
  uint64_t a = ClosedAlert("anna@example.org");
  uint64_t b = ClosedAlert("anna@example.org");
  uint64_t other = ClosedAlert("ben@example.org");
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  auto hold = engine_->SetSubjectHold(
      *officer_, anna, "at the subject's request", At(2028, 1, 1));
  ASSERT_TRUE(hold.has_value());
  SweepReport report = SweepAt(At(2027, 3, 1));
  EXPECT_EQ(report.erased, 1u);
  EXPECT_EQ(report.postponed, 2u);
  EXPECT_EQ(StateOf(a), RecordState::kClosed);
  EXPECT_EQ(StateOf(b), RecordState::kClosed);
  EXPECT_EQ(StateOf(other), RecordState::kErased);

  Status shred = engine_->ShredSubject(*admin_, anna);
  EXPECT_EQ(shred.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(shred.message().find("legal hold " + hold->id), std::string::npos);
  // Refused means nothing happened: the data is still readable.
  EXPECT_TRUE(engine_->GetRecord(*officer_, a, APurpose())->personal_included);
  ASSERT_TRUE(engine_->ReleaseHold(*officer_, hold->id).ok());
  EXPECT_EQ(SweepAt(At(2027, 3, 1)).erased, 2u);
  EXPECT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
}

TEST_F(HoldTest, AHoldOnOneRecordAlsoBlocksShreddingItsSubject) {
  uint64_t id = ClosedAlert("anna@example.org");
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  auto hold =
      engine_->SetRecordHold(*officer_, id, "proceedings", At(2028, 1, 1));
  ASSERT_TRUE(hold.has_value());
  EXPECT_EQ(engine_->ShredSubject(*admin_, anna).code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(engine_->ReleaseHold(*officer_, hold->id).ok());
  EXPECT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
}

// A shred's hold check reads no hold index while no hold was ever set
// (Holds::OnSubject answers from memory); a hold set after such a shred
// must still be found by the next one.
TEST_F(HoldTest, AHoldSetAfterAShredFoundNoneStillBlocksTheNextShred) {
  ClosedAlert("ben@example.org");
  uint64_t id = ClosedAlert("anna@example.org");
  const std::string ben = *engine_->FindSubject(*admin_, "ben@example.org");
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  ASSERT_TRUE(engine_->ShredSubject(*admin_, ben).ok());  // No hold, ever.
  auto hold =
      engine_->SetRecordHold(*officer_, id, "proceedings", At(2028, 1, 1));
  ASSERT_TRUE(hold.has_value());
  Status shred = engine_->ShredSubject(*admin_, anna);
  EXPECT_EQ(shred.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(shred.message().find("legal hold " + hold->id), std::string::npos);
}

TEST_F(HoldTest, AHoldNeverMakesDataVisibleAgain) {
  uint64_t id = ClosedAlert();
  ASSERT_TRUE(engine_->Withdraw(*owner_, id).ok());
  ASSERT_TRUE(
      engine_->SetRecordHold(*officer_, id, "proceedings", At(2028, 1, 1)));
  EXPECT_EQ(engine_->GetRecord(*owner_, id).error().code(),
            StatusCode::kNotFound);
}

// A hold set at the erasure instant itself comes too late (review
// helper-116): the record reads ERASED from that instant on, a record hold
// is refused there, and a subject hold set there must not bring the record
// (and its personal data) back. A hold set a microsecond before holds it.
TEST_F(HoldTest, ASubjectHoldSetAtTheErasureInstantDoesNotBringARecordBack) {
  const uint64_t erased = ClosedAlert("anna@example.org");
  const uint64_t held = ClosedAlert("ben@example.org");
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  const std::string ben = *engine_->FindSubject(*admin_, "ben@example.org");
  clock_.Set(At(2027, 3, 1));
  auto view = engine_->GetRecord(*admin_, erased);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  ASSERT_EQ(view->state, RecordState::kErased);
  ASSERT_TRUE(view->erased_at.has_value());
  const Timestamp instant = *view->erased_at;

  clock_.Set(instant - 1us);
  ASSERT_TRUE(
      engine_->SetSubjectHold(*officer_, ben, "proceedings", At(2028, 1, 1)));
  clock_.Set(instant);
  EXPECT_EQ(
      engine_->SetRecordHold(*officer_, erased, "proceedings", At(2028, 1, 1))
          .error()
          .message(),
      "the record is already ERASED");
  ASSERT_TRUE(
      engine_->SetSubjectHold(*officer_, anna, "proceedings", At(2028, 1, 1)));
  view = engine_->GetRecord(*officer_, erased, APurpose());
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kErased);
  EXPECT_FALSE(view->personal_included);
  EXPECT_EQ(engine_->GetRecord(*owner_, erased).error().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(StateOf(held), RecordState::kClosed);
  SweepReport report = SweepAt(At(2027, 3, 2));
  EXPECT_EQ(report.erased, 1u);
  EXPECT_EQ(StateOf(erased), RecordState::kErased);
  EXPECT_EQ(StateOf(held), RecordState::kClosed);
}

// A record whose subject was shredded is ERASED: a hold on it would hold
// nothing, and is refused as on a record erased by its deadline (review
// helper-116).
TEST_F(HoldTest, ARecordHoldOnAShreddedSubjectsRecordIsRefused) {
  const uint64_t id = ClosedAlert("anna@example.org");
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  auto hold =
      engine_->SetRecordHold(*officer_, id, "proceedings", At(2028, 1, 1));
  ASSERT_FALSE(hold.has_value());
  EXPECT_EQ(hold.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(hold.error().message(), "the record is already ERASED");
  auto holds = engine_->ListHolds(*officer_, /*include_ended=*/true);
  ASSERT_TRUE(holds.has_value()) << holds.error().ToString();
  EXPECT_TRUE(holds->empty());
}

TEST_F(HoldTest, OnlyOfficersSetHoldsAndBadHoldsAreRefused) {
  uint64_t id = ClosedAlert();
  EXPECT_EQ(
      engine_->SetRecordHold(*owner_, id, "x", At(2028, 1, 1)).error().code(),
      StatusCode::kPermissionDenied);
  EXPECT_EQ(
      engine_->SetRecordHold(*admin_, id, "x", At(2028, 1, 1)).error().code(),
      StatusCode::kPermissionDenied);
  EXPECT_EQ(engine_->SetRecordHold(*officer_, 999999, "x", At(2028, 1, 1))
                .error()
                .code(),
            StatusCode::kNotFound);
  EXPECT_EQ(engine_->SetSubjectHold(*officer_, "s-none", "x", At(2028, 1, 1))
                .error()
                .code(),
            StatusCode::kNotFound);
  EXPECT_EQ(
      engine_->SetRecordHold(*officer_, id, "", At(2028, 1, 1)).error().code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(
      engine_->SetRecordHold(*officer_, id, "x", TestEpoch()).error().code(),
      StatusCode::kInvalidArgument);
}

TEST_F(HoldTest, HoldsAreListedWithWhoSetThemAndWhy) {
  uint64_t id = ClosedAlert();
  auto first =
      engine_->SetRecordHold(*officer_, id, "proceedings", At(2027, 1, 1));
  auto second = engine_->SetRecordHold(*officer_, id, "appeal", At(2028, 1, 1));
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(engine_->ReleaseHold(*officer_, second->id).ok());
  auto in_force = engine_->ListHolds(*auditor_, false);
  ASSERT_TRUE(in_force.has_value());
  ASSERT_EQ(in_force->size(), 1u);
  EXPECT_EQ((*in_force)[0].id, first->id);
  EXPECT_EQ((*in_force)[0].reason, "proceedings");
  EXPECT_EQ((*in_force)[0].set_by, "officer");
  EXPECT_EQ((*in_force)[0].record_id, id);
  auto all = engine_->ListHolds(*admin_, true);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(engine_->ListHolds(*owner_, false).error().code(),
            StatusCode::kPermissionDenied);
  clock_.Set(At(2027, 1, 1));  // The first hold ends.
  EXPECT_TRUE(engine_->ListHolds(*auditor_, false)->empty());
}

}  // namespace
}  // namespace custos::testing
