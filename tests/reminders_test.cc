// Engine::DueSoon and Engine::MarkRemindersDelivered (storage/reminders.h):
// which deadlines are reminded, as the engine computes them (holds, shreds,
// states the owner no longer sees, moved deadlines), on a real engine.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "storage/period.h"
#include "storage/retention_policy.h"
#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

using std::chrono::days;

class RemindersTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    RetentionPolicy c;  // Closes by itself, no BLOCKED phase.
    c.kind = "case";
    c.close_after = Period{.days = 60};
    c.erase_after = Period{.months = 6};
    c.history_after = Period{.years = 5};
    ASSERT_TRUE(engine_->SetPolicy(*admin_, c).ok());
  }

  uint64_t CreateCase() {
    NewRecord r;
    r.kind = "case";
    r.attributes = {{"country", "AT"}};
    r.personal = {{"anna@example.org", {{"name", "Anna Example"}}}};
    auto id = engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(id.has_value()) << id.error().ToString();
    return id.value_or(0);
  }

  std::vector<Reminder> Due(const Actor& actor, ReminderQuery query = {}) {
    auto due = engine_->DueSoon(actor, query);
    EXPECT_TRUE(due.has_value()) << due.error().ToString();
    return due.value_or(std::vector<Reminder>{});
  }

  static Timestamp Plus(Timestamp t, const Period& p) {
    return *AddPeriod(t, p);
  }
};

TEST_F(RemindersTest, ALegalHoldPostponesTheErasureReminderToItsEnd) {
  const uint64_t id = CreateCase();
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  const Timestamp closed = clock_.Now();
  const Timestamp hold_end = closed + days(300);
  ASSERT_TRUE(engine_->SetRecordHold(*officer_, id, "case 4 O 12/27", hold_end)
                  .has_value());
  const ReminderQuery year{.warn_before = Period{.years = 1}};
  std::vector<Reminder> due = Due(*owner_, year);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].reason, ReminderReason::kEraseDue);
  EXPECT_EQ(due[0].due_at, hold_end);  // Not closed + P6M.
  EXPECT_NE(hold_end, Plus(closed, Period{.months = 6}));
}

TEST_F(RemindersTest, RecordsTheOwnerNoLongerSeesAreNotReminded) {
  const uint64_t withdrawn = CreateRecord();
  const uint64_t shredded = CreateRecord("ben@example.org");
  const uint64_t open = CreateRecord("carla@example.org");
  ASSERT_TRUE(engine_->Withdraw(*owner_, withdrawn).ok());  // BLOCKED.
  clock_.Advance(days(31));
  std::vector<Reminder> due = Due(*owner_);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].record_id, shredded);
  EXPECT_EQ(due[1].record_id, open);
  auto ben = engine_->FindSubject(*admin_, "ben@example.org");
  ASSERT_TRUE(ben.has_value());
  ASSERT_TRUE(engine_->ShredSubject(*admin_, *ben).ok());  // Now ERASED.
  due = Due(*owner_);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].record_id, open);
  EXPECT_EQ(due[0].reason, ReminderReason::kOpenTooLong);
  EXPECT_EQ(due[0].state, RecordState::kActive);
}

TEST_F(RemindersTest, AMovedDeadlineIsANewReminderAndDropsTheOldMark) {
  const uint64_t id = CreateCase();
  const Timestamp t0 = clock_.Now();
  clock_.Advance(days(54));
  const ReminderQuery no_age{.open_too_long = Period{.years = 10}};
  std::vector<Reminder> due = Due(*owner_, no_age);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].due_at, Plus(t0, Period{.days = 60}));
  ASSERT_TRUE(engine_->MarkRemindersDelivered(*owner_, due).ok());
  const Timestamp delivered = clock_.Now();
  clock_.Advance(days(1));
  ASSERT_TRUE(engine_->MarkRemindersDelivered(*owner_, due).ok());  // Again.
  due = Due(*owner_, no_age);
  ASSERT_EQ(due.size(), 1u);
  ASSERT_TRUE(due[0].delivered_at.has_value());
  EXPECT_EQ(*due[0].delivered_at, delivered);  // The first time stays.

  // The owner's change restarts the idle period: a new deadline.
  ASSERT_TRUE(engine_->Grant(*owner_, id, "authority-b").ok());
  const Timestamp changed = clock_.Now();
  EXPECT_TRUE(Due(*owner_, no_age).empty());
  clock_.Advance(days(53));
  due = Due(*owner_, no_age);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].due_at, Plus(changed, Period{.days = 60}));
  EXPECT_FALSE(due[0].delivered_at.has_value());
  ASSERT_TRUE(engine_->MarkRemindersDelivered(*owner_, due).ok());
  Close();
  auto raw = OpenRaw("records");
  ASSERT_NE(raw, nullptr);
  EXPECT_EQ(CountKeys(*raw, "rm:"), 1);  // The old deadline's mark is gone.
}

TEST_F(RemindersTest, OnlyUsersAskAndOnlyForTheirOwnRecords) {
  CreateRecord("anna@example.org", {"authority-b"});
  clock_.Advance(days(31));
  EXPECT_EQ(Due(*owner_).size(), 1u);
  EXPECT_TRUE(Due(*grantee_).empty());
  auto refused = engine_->DueSoon(*officer_, {});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), StatusCode::kPermissionDenied);
  const Status marked = engine_->MarkRemindersDelivered(*auditor_, {});
  EXPECT_EQ(marked.code(), StatusCode::kPermissionDenied);
}

TEST_F(RemindersTest, AQueryOutOfBoundsIsInvalidArgument) {
  auto r = engine_->DueSoon(*owner_, {.warn_before = Period{.months = 13}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.error().message(), "warnBefore must be a period of at most P1Y");
  r = engine_->DueSoon(*owner_, {.open_too_long = Period{}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  r = engine_->DueSoon(*owner_, {.open_too_long = Period{.years = 11}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(engine_
                  ->DueSoon(*owner_, {.warn_before = Period{.years = 1},
                                      .open_too_long = Period{.years = 10}})
                  .has_value());
}

}  // namespace
}  // namespace custos::testing
