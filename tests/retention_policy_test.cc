#include "storage/retention_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace custos {
namespace {

using ::testing::HasSubstr;

Period P(std::string_view iso) {
  Result<Period> p = ParsePeriod(iso);
  EXPECT_TRUE(p.has_value()) << iso << ": " << p.error().ToString();
  return p.value_or(Period{});
}

// A valid policy to break one field at a time.
RetentionPolicy Valid() {
  return RetentionPolicy{.kind = "request",
                         .close_after = std::nullopt,
                         .block_after = P("P6M"),
                         .erase_after = P("P3Y"),
                         .history_after = P("P5Y")};
}

const RetentionPolicy* Find(const std::vector<RetentionPolicy>& policies,
                            std::string_view kind) {
  for (const RetentionPolicy& p : policies) {
    if (p.kind == kind) return &p;
  }
  return nullptr;
}

Timestamp Utc(int y, unsigned m, unsigned d, int h) {
  return std::chrono::sys_days{std::chrono::year{y} / m / d} +
         std::chrono::hours{h};
}

// ---- Defaults ---------------------------------------------------------------

TEST(RetentionPolicyTest, DefaultsAreRequestAndAlertAndAllValidate) {
  const std::vector<RetentionPolicy> defaults = DefaultPolicies();
  ASSERT_EQ(defaults.size(), 2u);
  for (const RetentionPolicy& p : defaults) {
    EXPECT_TRUE(ValidatePolicy(p).ok())
        << p.kind << ": " << ValidatePolicy(p).ToString();
  }
}

TEST(RetentionPolicyTest,
     DefaultRequestIsBlockedAfterSixMonthsErasedAfterThree) {
  const std::vector<RetentionPolicy> defaults = DefaultPolicies();
  const RetentionPolicy* request = Find(defaults, "request");
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(request->close_after, std::nullopt);
  EXPECT_EQ(request->block_after, Period{.months = 6});
  EXPECT_EQ(request->erase_after, Period{.years = 3});
  EXPECT_EQ(request->history_after, Period{.years = 5});
  EXPECT_EQ(request->block_after->ToString(), "P6M");
  EXPECT_EQ(request->erase_after.ToString(), "P3Y");
  EXPECT_EQ(request->history_after.ToString(), "P5Y");
}

TEST(RetentionPolicyTest,
     DefaultAlertHasNoBlockPhaseAndIsErasedAfterSixMonths) {
  const std::vector<RetentionPolicy> defaults = DefaultPolicies();
  const RetentionPolicy* alert = Find(defaults, "alert");
  ASSERT_NE(alert, nullptr);
  EXPECT_EQ(alert->close_after, std::nullopt);
  EXPECT_EQ(alert->block_after, std::nullopt);
  EXPECT_EQ(alert->erase_after, Period{.months = 6});
  EXPECT_EQ(alert->history_after, Period{.years = 5});
}

TEST(RetentionPolicyTest, ImiRequestClosedThirtyFirstAugustDeadlines) {
  const std::vector<RetentionPolicy> defaults = DefaultPolicies();
  const RetentionPolicy* request = Find(defaults, "request");
  ASSERT_NE(request, nullptr);
  const Timestamp closed = Utc(2026, 8, 31, 12);
  EXPECT_EQ(AddPeriod(closed, *request->block_after), Utc(2027, 2, 28, 12));
  EXPECT_EQ(AddPeriod(closed, request->erase_after), Utc(2029, 8, 31, 12));
}

TEST(RetentionPolicyTest,
     ImiAlertClosedThirtyFirstAugustIsErasedTwentyEighthFeb) {
  const std::vector<RetentionPolicy> defaults = DefaultPolicies();
  const RetentionPolicy* alert = Find(defaults, "alert");
  ASSERT_NE(alert, nullptr);
  EXPECT_EQ(AddPeriod(Utc(2026, 8, 31, 12), alert->erase_after),
            Utc(2027, 2, 28, 12));
}

// ---- Kind -------------------------------------------------------------------

TEST(RetentionPolicyTest, KindOfLowercaseDigitsDashAndUnderscoreIsAccepted) {
  RetentionPolicy p = Valid();
  p.kind = "case_file-2";
  EXPECT_TRUE(ValidatePolicy(p).ok());
  p.kind = std::string(kMaxPolicyKindLength, 'k');
  EXPECT_TRUE(ValidatePolicy(p).ok());
}

TEST(RetentionPolicyTest, EmptyKindIsRefused) {
  RetentionPolicy p = Valid();
  p.kind = "";
  const Status s = ValidatePolicy(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("kind is empty"));
}

TEST(RetentionPolicyTest, KindLongerThanSixtyFourIsRefused) {
  RetentionPolicy p = Valid();
  p.kind = std::string(kMaxPolicyKindLength + 1, 'k');
  const Status s = ValidatePolicy(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("longer than 64"));
}

TEST(RetentionPolicyTest, KindWithUppercaseSpaceOrOtherCharactersIsRefused) {
  for (std::string_view kind : {"Request", "re quest", "request.v2", "alert/x",
                                "caf\xc3\xa9", "tab\t"}) {
    RetentionPolicy p = Valid();
    p.kind = std::string(kind);
    EXPECT_EQ(ValidatePolicy(p).code(), StatusCode::kInvalidArgument) << kind;
  }
  RetentionPolicy p = Valid();
  p.kind = "Request";
  EXPECT_THAT(ValidatePolicy(p).message(),
              HasSubstr("only [a-z0-9_-]; character at position 0"));
}

// ---- Zero periods -----------------------------------------------------------

TEST(RetentionPolicyTest, ZeroEraseAfterIsRefused) {
  RetentionPolicy p = Valid();
  p.block_after = std::nullopt;
  p.erase_after = P("P0D");
  const Status s = ValidatePolicy(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("erase_after must not be zero"));
}

TEST(RetentionPolicyTest, ZeroBlockAfterIsRefused) {
  RetentionPolicy p = Valid();
  p.block_after = P("PT0S");
  const Status s = ValidatePolicy(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("block_after must not be zero"));
}

TEST(RetentionPolicyTest, ZeroCloseAfterIsRefusedAndPositiveIsAccepted) {
  RetentionPolicy p = Valid();
  p.close_after = P("P0D");
  EXPECT_EQ(ValidatePolicy(p).code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(ValidatePolicy(p).message(),
              HasSubstr("close_after must not be zero"));
  p.close_after = P("P90D");
  EXPECT_TRUE(ValidatePolicy(p).ok());
}

TEST(RetentionPolicyTest, ZeroHistoryIsRefusedAsShorterThanErase) {
  RetentionPolicy p = Valid();
  p.history_after = Period{};
  const Status s = ValidatePolicy(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("history_after P0D is shorter"));
}

TEST(RetentionPolicyTest, PeriodOutsideLimitsIsRefused) {
  RetentionPolicy p = Valid();
  p.erase_after = Period{.days = -1};
  Status s = ValidatePolicy(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("erase_after has a negative component"));
  p = Valid();
  p.history_after = Period{.years = kMaxPeriodYears + 1};
  s = ValidatePolicy(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("history_after has a negative component "
                                     "or one above its limit"));
}

// ---- Representable deadlines (issue 9, item 3) -----------------------------

// P8000Y passed every rule above and made every later sweep fail with
// "deadline out of range": closure + P8000Y is after 9999. Each period is now
// bounded by kMaxPolicyPeriod, so closure + period always fits.
TEST(RetentionPolicyTest, AnEraseAfterOfEightThousandYearsIsRefusedNamingIt) {
  RetentionPolicy p = Valid();
  p.erase_after = P("P8000Y");
  p.history_after = P("P8000Y");
  Status s = ValidatePolicy(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("erase_after"));
  EXPECT_THAT(s.message(), HasSubstr("P200Y"));
}

TEST(RetentionPolicyTest, EachPeriodLongerThanTwoHundredYearsIsRefused) {
  RetentionPolicy p = Valid();
  p.close_after = P("P9999Y");
  EXPECT_THAT(ValidatePolicy(p).message(), HasSubstr("close_after"));
  p = Valid();
  p.block_after = P("P201Y");
  p.erase_after = P("P201Y");
  p.history_after = P("P201Y");
  EXPECT_THAT(ValidatePolicy(p).message(), HasSubstr("block_after"));
  p = Valid();
  p.history_after = P("P2401M");
  Status s = ValidatePolicy(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("history_after"));
  p = Valid();
  p.history_after = P("P200YT1S");
  EXPECT_EQ(ValidatePolicy(p).code(), StatusCode::kInvalidArgument);
}

TEST(RetentionPolicyTest, PeriodsOfTwoHundredYearsAreAccepted) {
  RetentionPolicy p = Valid();
  p.close_after = P("P200Y");
  p.block_after = P("P2400M");
  p.erase_after = P("P200Y");
  p.history_after = P("P200Y");
  EXPECT_TRUE(ValidatePolicy(p).ok()) << ValidatePolicy(p).ToString();
}

// ---- Erase not before block -------------------------------------------------

TEST(RetentionPolicyTest, EraseBeforeBlockIsRefused) {
  RetentionPolicy p = Valid();
  p.block_after = P("P1Y");
  p.erase_after = P("P6M");
  const Status s = ValidatePolicy(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              HasSubstr("erase_after P6M ends before block_after P1Y"));
}

TEST(RetentionPolicyTest, EraseAtTheSameTimeAsBlockIsAccepted) {
  RetentionPolicy p = Valid();
  p.block_after = P("P6M");
  p.erase_after = P("P6M");
  EXPECT_TRUE(ValidatePolicy(p).ok());
  p.block_after = P("P1Y");
  p.erase_after = P("P12M");
  EXPECT_TRUE(ValidatePolicy(p).ok());
}

TEST(RetentionPolicyTest, BlockAfterOneMonthEraseAfterThirtyDaysIsRefused) {
  // From 1 March, P30D (31 Mar) ends before P1M (1 Apr).
  RetentionPolicy p = Valid();
  p.block_after = P("P1M");
  p.erase_after = P("P30D");
  EXPECT_EQ(ValidatePolicy(p).code(), StatusCode::kInvalidArgument);
}

TEST(RetentionPolicyTest, BlockAfterThirtyDaysEraseAfterOneMonthIsRefused) {
  // From 31 January, P1M (28 Feb) ends before P30D (2 Mar).
  RetentionPolicy p = Valid();
  p.block_after = P("P30D");
  p.erase_after = P("P1M");
  EXPECT_EQ(ValidatePolicy(p).code(), StatusCode::kInvalidArgument);
}

TEST(RetentionPolicyTest, MonthAgainstDaysIsAcceptedWhenOrderedForEveryDate) {
  RetentionPolicy p = Valid();
  p.history_after = P("P1Y");
  p.block_after = P("P1M");
  p.erase_after = P("P31D");
  EXPECT_TRUE(ValidatePolicy(p).ok());
  p.block_after = P("P28D");
  p.erase_after = P("P1M");
  EXPECT_TRUE(ValidatePolicy(p).ok());
}

TEST(RetentionPolicyTest, NoBlockPhaseSkipsTheBlockOrdering) {
  RetentionPolicy p = Valid();
  p.kind = "alert";
  p.block_after = std::nullopt;
  p.erase_after = P("P6M");
  EXPECT_TRUE(ValidatePolicy(p).ok());
}

// ---- History not shorter than the data --------------------------------------

TEST(RetentionPolicyTest, HistoryShorterThanEraseIsRefused) {
  RetentionPolicy p = Valid();
  p.history_after = P("P2Y");
  const Status s = ValidatePolicy(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              HasSubstr("history_after P2Y is shorter than erase_after P3Y"));
}

TEST(RetentionPolicyTest, HistoryEqualToEraseIsAccepted) {
  RetentionPolicy p = Valid();
  p.history_after = P("P3Y");
  EXPECT_TRUE(ValidatePolicy(p).ok());
  p.history_after = P("P36M");
  EXPECT_TRUE(ValidatePolicy(p).ok());
}

TEST(RetentionPolicyTest, HistoryInDaysMustCoverTheLongestThreeYears) {
  // Three calendar years are 1095 or 1096 days.
  RetentionPolicy p = Valid();
  p.history_after = P("P1095D");
  EXPECT_EQ(ValidatePolicy(p).code(), StatusCode::kInvalidArgument);
  p.history_after = P("P1096D");
  EXPECT_TRUE(ValidatePolicy(p).ok());
}

TEST(RetentionPolicyTest, PoliciesCompareByValue) {
  EXPECT_EQ(Valid(), Valid());
  RetentionPolicy other = Valid();
  other.history_after = P("P60M");
  EXPECT_NE(Valid(), other);
}

}  // namespace
}  // namespace custos
