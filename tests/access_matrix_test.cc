// The visibility matrix of DESIGN section 2 (docs/access-rules.md), checked
// for every caller, state and operation. Each cell gets a fresh record in
// the wanted state, so cells cannot influence each other.

#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <string>

#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

enum Caller {
  kOwner,
  kGrantee,
  kStranger,
  kRedactedGrantee,
  kOfficerWithPurpose,
  kOfficerWithoutPurpose,
  kAuditor,
  kAdmin,
  kCallerCount
};
constexpr std::array<const char*, kCallerCount> kCallerNames = {
    "owner",           "grantee",
    "stranger",        "redacted-grantee",
    "officer+purpose", "officer-no-purpose",
    "auditor",         "admin"};
constexpr std::array<RecordState, 4> kStates = {
    RecordState::kActive, RecordState::kClosed, RecordState::kBlocked,
    RecordState::kErased};

// One character per state (ACTIVE, CLOSED, BLOCKED, ERASED):
//   F  read succeeds with personal data     A  read succeeds, attributes only
//   K  the change succeeds                  N  NotFound ("record not found")
//   P  PermissionDenied                     C  FailedPrecondition
using Row = const char*;
struct OperationTable {
  const char* name;
  std::array<Row, kCallerCount> rows;
};

const OperationTable kGet = {
    "get", {"FANN", "FANN", "NNNN", "AANN", "NFFA", "NNNN", "NNNN", "AAAA"}};
const OperationTable kGrant = {
    "grant", {"KCNN", "PPNN", "NNNN", "PPNN", "PPPP", "PPPP", "PPPP", "PPPP"}};
const OperationTable kRectify = {
    "rectify",
    {"KCNN", "PPNN", "NNNN", "PPNN", "PPPP", "PPPP", "PPPP", "PPPP"}};
const OperationTable kClose = {
    "close", {"KCNN", "PPNN", "NNNN", "PPNN", "PPPP", "PPPP", "PPPP", "PPPP"}};
const OperationTable kWithdraw = {
    "withdraw",
    {"KKNN", "PPNN", "NNNN", "PPNN", "PPPP", "PPPP", "PPPP", "PPPP"}};
const OperationTable kErase = {
    "erase", {"KKNN", "PPNN", "NNNN", "PPNN", "NNNN", "NNNN", "NNNN", "KKKC"}};
const OperationTable kFlag = {
    "flag", {"KPNN", "KPNN", "NNNN", "PPNN", "NKKP", "NNNN", "NNNN", "PPPP"}};

constexpr uint64_t kMissingId = 999999;

class AccessMatrixTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    redacted_ = AddPrincipal("authority-r", {Role::kUser}, /*redacted=*/true);
    other_ = AddPrincipal("authority-d", {Role::kUser});
  }

  const Actor& ActorOf(Caller c) {
    switch (c) {
      case kOwner:
        return *owner_;
      case kGrantee:
        return *grantee_;
      case kStranger:
        return *stranger_;
      case kRedactedGrantee:
        return *redacted_;
      case kOfficerWithPurpose:
      case kOfficerWithoutPurpose:
        return *officer_;
      case kAuditor:
        return *auditor_;
      case kAdmin:
      case kCallerCount:
        break;
    }
    return *admin_;
  }

  std::optional<Purpose> PurposeOf(Caller c) {
    if (c == kOfficerWithPurpose) return APurpose();
    return std::nullopt;
  }

  // A record owned by owner_, granted to grantee_ and redacted_, tagged with
  // a unique "cell" attribute, moved to `state`.
  uint64_t RecordIn(RecordState state, const std::string& cell) {
    NewRecord r;
    r.kind = "request";
    r.attributes = {{"cell", cell}};
    r.personal = {{"subject-" + cell, {{"name", "Person " + cell}}}};
    r.grants = {"authority-b", "authority-r"};
    auto id = engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(id.has_value());
    if (state == RecordState::kClosed) {
      EXPECT_TRUE(engine_->Close(*owner_, *id).ok());
    } else if (state == RecordState::kBlocked) {
      EXPECT_TRUE(engine_->Withdraw(*owner_, *id).ok());
    } else if (state == RecordState::kErased) {
      EXPECT_TRUE(engine_->EraseRecord(*admin_, *id).ok());
    }
    return *id;
  }

  // Runs `op` against a record in each state for each caller and compares
  // the outcome with the table. For N, the error must equal the error of
  // the same call on an id that does not exist.
  void Check(const OperationTable& table,
             const std::function<Status(const Actor&, uint64_t, Caller)>& op) {
    for (int c = 0; c < kCallerCount; ++c) {
      for (size_t s = 0; s < kStates.size(); ++s) {
        const Caller caller = static_cast<Caller>(c);
        const std::string cell = std::string(table.name) + "-" +
                                 kCallerNames[c] + "-" +
                                 std::string(RecordStateName(kStates[s]));
        SCOPED_TRACE(cell);
        const uint64_t id = RecordIn(kStates[s], cell);
        const Status status = op(ActorOf(caller), id, caller);
        const char want = table.rows[c][s];
        switch (want) {
          case 'K':
          case 'F':
          case 'A':
            EXPECT_TRUE(status.ok()) << status.ToString();
            break;
          case 'N': {
            EXPECT_EQ(status.code(), StatusCode::kNotFound)
                << status.ToString();
            const Status missing = op(ActorOf(caller), kMissingId, caller);
            EXPECT_EQ(status.code(), missing.code());
            EXPECT_EQ(status.message(), missing.message());
            break;
          }
          case 'P':
            EXPECT_EQ(status.code(), StatusCode::kPermissionDenied)
                << status.ToString();
            break;
          case 'C':
            EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition)
                << status.ToString();
            break;
          default:
            FAIL() << "bad table entry " << want;
        }
      }
    }
  }

  std::unique_ptr<Actor> redacted_, other_;
};

TEST_F(AccessMatrixTest, GetShowsExactlyWhatTheMatrixAllows) {
  for (int c = 0; c < kCallerCount; ++c) {
    for (size_t s = 0; s < kStates.size(); ++s) {
      const Caller caller = static_cast<Caller>(c);
      const std::string cell = std::string("get-") + kCallerNames[c] + "-" +
                               std::string(RecordStateName(kStates[s]));
      SCOPED_TRACE(cell);
      const uint64_t id = RecordIn(kStates[s], cell);
      auto view = engine_->GetRecord(ActorOf(caller), id, PurposeOf(caller));
      const char want = kGet.rows[c][s];
      if (want == 'N') {
        ASSERT_FALSE(view.has_value());
        EXPECT_EQ(view.error().code(), StatusCode::kNotFound);
        auto missing =
            engine_->GetRecord(ActorOf(caller), kMissingId, PurposeOf(caller));
        ASSERT_FALSE(missing.has_value());
        EXPECT_EQ(view.error().ToString(), missing.error().ToString());
        continue;
      }
      ASSERT_TRUE(view.has_value()) << view.error().ToString();
      EXPECT_EQ(view->state, kStates[s]);
      EXPECT_EQ(view->attributes, (std::vector<Attribute>{{"cell", cell}}));
      if (want == 'F') {
        EXPECT_TRUE(view->personal_included);
        ASSERT_EQ(view->parts.size(), 1u);
        EXPECT_EQ(view->parts[0].fields,
                  (std::vector<Field>{{"name", "Person " + cell}}));
        EXPECT_EQ(view->parts[0].subject_identifier, "subject-" + cell);
      } else {
        EXPECT_FALSE(view->personal_included);
        EXPECT_TRUE(view->parts.empty());
        // Subject ids link a person's records: only roles acting on
        // subjects see them without the personal data.
        EXPECT_EQ(view->subject_ids.empty(),
                  caller != kAdmin && caller != kOfficerWithPurpose);
      }
      if (want == 'F') {
        EXPECT_EQ(view->subject_ids.size(), 1u);
      }
      if (kStates[s] == RecordState::kErased) {
        EXPECT_EQ(view->erased_at, clock_.Now());
      }
    }
  }
}

TEST_F(AccessMatrixTest, ListShowsTheSameAsGet) {
  for (int c = 0; c < kCallerCount; ++c) {
    for (size_t s = 0; s < kStates.size(); ++s) {
      const Caller caller = static_cast<Caller>(c);
      const std::string cell = std::string("list-") + kCallerNames[c] + "-" +
                               std::string(RecordStateName(kStates[s]));
      SCOPED_TRACE(cell);
      const uint64_t id = RecordIn(kStates[s], cell);
      ListQuery q;
      q.attribute_equals = {{"cell", cell}};
      q.purpose = PurposeOf(caller);
      auto page = engine_->ListRecords(ActorOf(caller), q);
      ASSERT_TRUE(page.has_value()) << page.error().ToString();
      const char want = kGet.rows[c][s];
      if (want == 'N') {
        EXPECT_TRUE(page->records.empty());
        continue;
      }
      ASSERT_EQ(page->records.size(), 1u);
      EXPECT_EQ(page->records[0].id, id);
      EXPECT_EQ(page->records[0].personal_included, want == 'F');
    }
  }
}

TEST_F(AccessMatrixTest, GrantFollowsTheMatrix) {
  Check(kGrant, [&](const Actor& a, uint64_t id, Caller) {
    return engine_->Grant(a, id, "authority-d");
  });
}

TEST_F(AccessMatrixTest, RectifyFollowsTheMatrix) {
  Check(kRectify, [&](const Actor& a, uint64_t id, Caller) -> Status {
    auto subject = engine_->GetRecord(*admin_, id);
    std::string subject_id =
        subject && !subject->subject_ids.empty() ? subject->subject_ids[0] : "";
    auto version = engine_->Rectify(a, id, subject_id, {{"name", "Fixed"}});
    return version ? Status::Ok() : version.error();
  });
}

TEST_F(AccessMatrixTest, CloseFollowsTheMatrix) {
  Check(kClose, [&](const Actor& a, uint64_t id, Caller) {
    return engine_->Close(a, id);
  });
}

TEST_F(AccessMatrixTest, WithdrawFollowsTheMatrix) {
  Check(kWithdraw, [&](const Actor& a, uint64_t id, Caller) {
    return engine_->Withdraw(a, id);
  });
}

TEST_F(AccessMatrixTest, EraseFollowsTheMatrix) {
  Check(kErase, [&](const Actor& a, uint64_t id, Caller) {
    return engine_->EraseRecord(a, id);
  });
}

TEST_F(AccessMatrixTest, FlagFollowsTheMatrix) {
  Check(kFlag, [&](const Actor& a, uint64_t id, Caller c) -> Status {
    auto subject = engine_->GetRecord(*admin_, id);
    std::string subject_id =
        subject && !subject->subject_ids.empty() ? subject->subject_ids[0] : "";
    return engine_->FlagIncorrect(a, id, subject_id, "birth year is wrong",
                                  PurposeOf(c));
  });
}

}  // namespace
}  // namespace custos::testing
