#include "storage/period.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace custos {
namespace {

using std::chrono::days;
using std::chrono::floor;
using std::chrono::hh_mm_ss;
using std::chrono::microseconds;
using std::chrono::sys_days;
using std::chrono::year_month_day;
using ::testing::HasSubstr;

// "YYYY-MM-DDTHH:MM:SS" (UTC) to a Timestamp. Aborts the test binary on a
// malformed literal: that is a bug in the test, not in the code under test.
Timestamp At(std::string_view text) {
  int y = 0;
  unsigned mo = 0, d = 0;
  int h = 0, mi = 0, s = 0;
  const std::string copy(text);
  if (std::sscanf(copy.c_str(), "%d-%u-%uT%d:%d:%d", &y, &mo, &d, &h, &mi,
                  &s) != 6) {
    std::abort();
  }
  return sys_days{std::chrono::year{y} / mo / d} + std::chrono::hours{h} +
         std::chrono::minutes{mi} + std::chrono::seconds{s};
}

// The inverse of At, with ".ffffff" appended when there are microseconds.
std::string Format(Timestamp t) {
  const sys_days date = floor<days>(t);
  const year_month_day ymd{date};
  const hh_mm_ss<microseconds> time{t - date};
  char buffer[64];
  std::snprintf(
      buffer, sizeof buffer, "%04d-%02u-%02uT%02d:%02d:%02d",
      static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
      static_cast<unsigned>(ymd.day()), static_cast<int>(time.hours().count()),
      static_cast<int>(time.minutes().count()),
      static_cast<int>(time.seconds().count()));
  std::string out = buffer;
  if (time.subseconds().count() != 0) {
    std::snprintf(buffer, sizeof buffer, ".%06d",
                  static_cast<int>(time.subseconds().count()));
    out += buffer;
  }
  return out;
}

Period Parse(std::string_view iso) {
  Result<Period> p = ParsePeriod(iso);
  EXPECT_TRUE(p.has_value()) << iso << ": " << p.error().ToString();
  return p.value_or(Period{});
}

// AddPeriod on text, so that expectations read as dates. An error comes
// back as its status, e.g. "InvalidArgument: ...".
std::string Add(std::string_view anchor, std::string_view period) {
  Result<Timestamp> t = AddPeriod(At(anchor), Parse(period));
  if (!t) return t.error().ToString();
  return Format(*t);
}

StatusCode AddCode(Timestamp anchor, const Period& p) {
  Result<Timestamp> t = AddPeriod(anchor, p);
  return t ? StatusCode::kOk : t.error().code();
}

// ---- Parsing: accepted input ------------------------------------------------

TEST(PeriodTest, ParsesEachDesignatorAlone) {
  EXPECT_EQ(Parse("P3Y"), Period{.years = 3});
  EXPECT_EQ(Parse("P6M"), Period{.months = 6});
  EXPECT_EQ(Parse("P2W"), Period{.weeks = 2});
  EXPECT_EQ(Parse("P30D"), Period{.days = 30});
  EXPECT_EQ(Parse("PT12H"), Period{.hours = 12});
  EXPECT_EQ(Parse("PT30M"), Period{.minutes = 30});
  EXPECT_EQ(Parse("PT45S"), Period{.seconds = 45});
}

TEST(PeriodTest, ParsesCombinationsInDesignatorOrder) {
  EXPECT_EQ(Parse("P1Y2M10DT2H"),
            (Period{.years = 1, .months = 2, .days = 10, .hours = 2}));
  EXPECT_EQ(Parse("P1Y2M3W4DT5H6M7S"), (Period{.years = 1,
                                               .months = 2,
                                               .weeks = 3,
                                               .days = 4,
                                               .hours = 5,
                                               .minutes = 6,
                                               .seconds = 7}));
  EXPECT_EQ(Parse("P1DT1H"), (Period{.days = 1, .hours = 1}));
  EXPECT_EQ(Parse("PT1H30S"), (Period{.hours = 1, .seconds = 30}));
  EXPECT_EQ(Parse("P2W3D"), (Period{.weeks = 2, .days = 3}));
}

TEST(PeriodTest, MBeforeTIsMonthsAndAfterTIsMinutes) {
  EXPECT_EQ(Parse("P1M"), Period{.months = 1});
  EXPECT_EQ(Parse("PT1M"), Period{.minutes = 1});
  EXPECT_EQ(Parse("P1MT1M"), (Period{.months = 1, .minutes = 1}));
}

TEST(PeriodTest, AcceptsZeroAndLeadingZeros) {
  EXPECT_TRUE(Parse("P0D").IsZero());
  EXPECT_TRUE(Parse("PT0S").IsZero());
  EXPECT_EQ(Parse("P006M"), Period{.months = 6});
}

TEST(PeriodTest, AcceptsEachComponentAtItsLimit) {
  EXPECT_EQ(Parse("P10000Y").years, kMaxPeriodYears);
  EXPECT_EQ(Parse("P120000M").months, kMaxPeriodMonths);
  EXPECT_EQ(Parse("P522857W").weeks, kMaxPeriodWeeks);
  EXPECT_EQ(Parse("P3660000D").days, kMaxPeriodDays);
  EXPECT_EQ(Parse("PT87840000H").hours, kMaxPeriodHours);
  EXPECT_EQ(Parse("PT5270400000M").minutes, kMaxPeriodMinutes);
  EXPECT_EQ(Parse("PT316224000000S").seconds, kMaxPeriodSeconds);
}

// ---- Parsing: refused input -------------------------------------------------

struct Malformed {
  std::string_view input;
  std::string_view message_part;  // What the message must say.
};

class MalformedPeriodTest : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedPeriodTest, IsInvalidArgumentSayingWhatAndWhere) {
  Result<Period> p = ParsePeriod(GetParam().input);
  ASSERT_FALSE(p.has_value()) << "accepted: " << GetParam().input;
  EXPECT_EQ(p.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(p.error().message(), HasSubstr(GetParam().message_part));
}

INSTANTIATE_TEST_SUITE_P(
    EveryKindOfMistake, MalformedPeriodTest,
    ::testing::Values(
        Malformed{"", "is empty"},
        Malformed{"6M", "must start with 'P', found '6' at position 0"},
        Malformed{"p6m", "must start with 'P', found 'p' at position 0"},
        Malformed{" P6M", "must start with 'P', found ' ' at position 0"},
        Malformed{"P", "has no component after 'P'"},
        Malformed{"PT", "'T' at position 1 has no time component after it"},
        Malformed{"P1YT", "'T' at position 3 has no time component after it"},
        Malformed{"PT1HT1M", "'T' repeated at position 4"},
        Malformed{"P6X", "unknown designator 'X' at position 2"},
        Malformed{"P1YX", "unknown designator 'X' at position 3"},
        Malformed{"P6m",
                  "unknown designator 'm' at position 2 (designators "
                  "are upper case)"},
        Malformed{"P1M1Y",
                  "designator 'Y' at position 4 out of order (must "
                  "come before 'M')"},
        Malformed{"P1D1W", "designator 'W' at position 4 out of order"},
        Malformed{"PT1S1M", "designator 'M' at position 5 out of order"},
        Malformed{"P1Y1Y", "designator 'Y' repeated at position 4"},
        Malformed{"P1M2M", "designator 'M' repeated at position 4"},
        Malformed{"PT1H2H", "designator 'H' repeated at position 5"},
        Malformed{"P1H",
                  "time designator 'H' at position 2 must come after "
                  "'T'"},
        Malformed{"PT1D",
                  "date designator 'D' at position 3 must come "
                  "before 'T'"},
        Malformed{"PT1Y", "date designator 'Y' at position 3"},
        Malformed{"P-1Y",
                  "negative numbers are not supported ('-' at "
                  "position 1)"},
        Malformed{"P+1Y", "signs are not supported ('+' at position 1)"},
        Malformed{"P1.5Y", "fractions are not supported ('.' at position 2)"},
        Malformed{"PT0,5H", "fractions are not supported (',' at position 3)"},
        Malformed{"PY",
                  "designator 'Y' at position 1 has no number before "
                  "it"},
        Malformed{"PTH",
                  "designator 'H' at position 2 has no number before "
                  "it"},
        Malformed{"P1", "number at position 1 has no designator after it"},
        Malformed{"P1T2H", "number at position 1 has no designator after it"},
        Malformed{"P1Y ", "unexpected character ' ' at position 3"},
        Malformed{"P1Y\n", "unexpected character '\\x0a' at position 3"},
        Malformed{std::string_view("P1Y\0", 4),
                  "unexpected character '\\x00' at position 3"},
        Malformed{"P0001-02-03", "unexpected character '-' at position 5"},
        Malformed{"P10001Y",
                  "number at position 1 exceeds the limit of "
                  "10000 years"},
        Malformed{"P120001M", "exceeds the limit of 120000 months"},
        Malformed{"P522858W", "exceeds the limit of 522857 weeks"},
        Malformed{"P3660001D", "exceeds the limit of 3660000 days"},
        Malformed{"PT87840001H", "exceeds the limit of 87840000 hours"},
        Malformed{"PT5270400001M", "exceeds the limit of 5270400000 minutes"},
        Malformed{"PT316224000001S",
                  "exceeds the limit of 316224000000 seconds"},
        Malformed{"P99999999999999999999999999999999Y",
                  "number at position 1 exceeds the limit of 10000 years"}));

TEST(PeriodTest, MessageQuotesTheInputAndNamesDesignatorAndPosition) {
  Result<Period> p = ParsePeriod("P6X");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().message(),
            "duration 'P6X': unknown designator 'X' at position 2");
}

TEST(PeriodTest, MessageShortensAVeryLongInput) {
  const std::string input = "P" + std::string(1000, '1') + "Q";
  Result<Period> p = ParsePeriod(input);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code(), StatusCode::kInvalidArgument);
  EXPECT_LT(p.error().message().size(), 200u);
  EXPECT_THAT(p.error().message(), HasSubstr("...'"));
}

// ---- ToString ---------------------------------------------------------------

TEST(PeriodTest, ToStringIsCanonical) {
  EXPECT_EQ(Parse("P006M").ToString(), "P6M");
  EXPECT_EQ(Parse("P1Y0M2D").ToString(), "P1Y2D");
  EXPECT_EQ(Parse("P1DT0H").ToString(), "P1D");
  EXPECT_EQ(Parse("PT0S").ToString(), "P0D");
  EXPECT_EQ(Period{}.ToString(), "P0D");
  EXPECT_EQ(Parse("P1Y2M3W4DT5H6M7S").ToString(), "P1Y2M3W4DT5H6M7S");
  EXPECT_EQ((Period{.minutes = 5}).ToString(), "PT5M");
}

TEST(PeriodTest, ToStringParsesBackToTheSamePeriod) {
  for (std::string_view iso :
       {"P6M", "P3Y", "P1Y2M10DT2H", "PT12H", "P2W", "PT1M", "P1MT1M",
        "P10000Y120000M522857W3660000DT87840000H5270400000M316224000000S"}) {
    const Period p = Parse(iso);
    EXPECT_EQ(Parse(p.ToString()), p) << iso;
  }
}

TEST(PeriodTest, EqualityIsComponentWise) {
  EXPECT_EQ(Parse("P1Y"), Parse("P1Y"));
  EXPECT_NE(Parse("P1Y"), Parse("P12M"));
  EXPECT_NE(Parse("P1W"), Parse("P7D"));
}

// ---- AddPeriod: the EU rule -------------------------------------------------

TEST(PeriodTest, ImiRequestClosedThirtyFirstAugustIsBlockedTwentyEighthFeb) {
  EXPECT_EQ(Add("2026-08-31T12:00:00", "P6M"), "2027-02-28T12:00:00");
}

TEST(PeriodTest, ImiRequestClosedThirtyFirstAugustIsErasedThreeYearsLater) {
  EXPECT_EQ(Add("2026-08-31T12:00:00", "P3Y"), "2029-08-31T12:00:00");
}

TEST(PeriodTest, ThirtyFirstAugustPlusSixMonthsIsTwentyNinthFebInLeapYear) {
  EXPECT_EQ(Add("2027-08-31T00:00:00", "P6M"), "2028-02-29T00:00:00");
}

TEST(PeriodTest, TwentyNinthFebruaryPlusOneYearIsTwentyEighthFebruary) {
  EXPECT_EQ(Add("2028-02-29T08:00:00", "P1Y"), "2029-02-28T08:00:00");
}

TEST(PeriodTest, TwentyNinthFebruaryPlusFourYearsIsTwentyNinthFebruary) {
  EXPECT_EQ(Add("2028-02-29T08:00:00", "P4Y"), "2032-02-29T08:00:00");
}

TEST(PeriodTest, TwentyNinthFebruaryPlusFourYearsAcrossACenturyIsTwentyEighth) {
  // 2100 is not a leap year.
  EXPECT_EQ(Add("2096-02-29T00:00:00", "P4Y"), "2100-02-28T00:00:00");
}

TEST(PeriodTest, ThirtyFirstJanuaryPlusOneMonthIsLastDayOfFebruary) {
  EXPECT_EQ(Add("2027-01-31T10:00:00", "P1M"), "2027-02-28T10:00:00");
  EXPECT_EQ(Add("2028-01-31T10:00:00", "P1M"), "2028-02-29T10:00:00");
}

// Boost.Date_Time's own month arithmetic moves a last-of-month date to the
// last day of the target month (30 Apr + months(1) == 31 May). The EU rule
// keeps the day of the month. These fail if AddPeriod relies on Boost's.
TEST(PeriodTest, ThirtiethAprilPlusOneMonthIsThirtiethMayNotThirtyFirst) {
  EXPECT_EQ(Add("2026-04-30T09:00:00", "P1M"), "2026-05-30T09:00:00");
}

TEST(PeriodTest, TwentyEighthFebruaryPlusOneMonthIsTwentyEighthMarch) {
  EXPECT_EQ(Add("2027-02-28T00:00:00", "P1M"), "2027-03-28T00:00:00");
}

TEST(PeriodTest, TwentyEighthFebruaryPlusOneYearIsTwentyEighthFebNotLeapDay) {
  EXPECT_EQ(Add("2027-02-28T00:00:00", "P1Y"), "2028-02-28T00:00:00");
}

TEST(PeriodTest, ThirtiethJunePlusSixMonthsIsThirtiethDecember) {
  EXPECT_EQ(Add("2026-06-30T00:00:00", "P6M"), "2026-12-30T00:00:00");
}

TEST(PeriodTest, AnchoringIsNotStepping) {
  // From the anchoring event: 31 Jan + P2M.
  EXPECT_EQ(Add("2026-01-31T00:00:00", "P2M"), "2026-03-31T00:00:00");
  // Stepping month by month loses the 31st at February.
  EXPECT_EQ(Add(Add("2026-01-31T00:00:00", "P1M"), "P1M"),
            "2026-03-28T00:00:00");
}

TEST(PeriodTest, YearsAndMonthsAreOneMonthCount) {
  // 13 months from 29 Feb 2028; a year first would clamp to 28 Feb 2029
  // and end on 28 Mar.
  EXPECT_EQ(Add("2028-02-29T00:00:00", "P1Y1M"), "2029-03-29T00:00:00");
}

TEST(PeriodTest, MonthsAreAddedBeforeDays) {
  // Months first: 28 Feb, then 1 Mar. Days first would give 28 Feb.
  EXPECT_EQ(Add("2027-01-30T00:00:00", "P1M1D"), "2027-03-01T00:00:00");
}

TEST(PeriodTest, WeeksAreSevenDays) {
  EXPECT_EQ(Add("2026-12-25T15:00:00", "P2W"), "2027-01-08T15:00:00");
  EXPECT_EQ(Add("2026-12-25T15:00:00", "P1W1D"), "2027-01-02T15:00:00");
}

TEST(PeriodTest, DaysCrossAMissingLeapDay) {
  EXPECT_EQ(Add("2027-02-28T00:00:00", "P1D"), "2027-03-01T00:00:00");
  EXPECT_EQ(Add("1900-02-28T06:00:00", "P1D"), "1900-03-01T06:00:00");
  EXPECT_EQ(Add("2000-02-28T06:00:00", "P1D"), "2000-02-29T06:00:00");
}

// ---- AddPeriod: the time part -----------------------------------------------

TEST(PeriodTest, TwelveHoursCrossMidnightAndYearEnd) {
  EXPECT_EQ(Add("2026-12-31T18:00:00", "PT12H"), "2027-01-01T06:00:00");
}

TEST(PeriodTest, OneDayAndOneHourAddsTheDayThenTheHour) {
  EXPECT_EQ(Add("2026-02-28T23:30:00", "P1DT1H"), "2026-03-02T00:30:00");
}

TEST(PeriodTest, MinutesAndSecondsCarryIntoHigherUnits) {
  EXPECT_EQ(Add("2026-01-01T23:00:00", "PT90M"), "2026-01-02T00:30:00");
  EXPECT_EQ(Add("2026-01-01T23:59:59", "PT1S"), "2026-01-02T00:00:00");
  EXPECT_EQ(Add("2026-01-01T00:00:00", "PT86400S"), "2026-01-02T00:00:00");
}

TEST(PeriodTest, KeepsTimeOfDayToTheMicrosecond) {
  const Timestamp anchor = At("2026-08-31T12:34:56") + microseconds{789012};
  Result<Timestamp> t = AddPeriod(anchor, Parse("P6M"));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(Format(*t), "2027-02-28T12:34:56.789012");
}

TEST(PeriodTest, ZeroPeriodReturnsTheAnchor) {
  const Timestamp anchor = At("2026-08-31T12:00:00") + microseconds{5};
  EXPECT_EQ(AddPeriod(anchor, Period{}), anchor);
}

TEST(PeriodTest, WorksBeforeTheUnixEpoch) {
  EXPECT_EQ(Add("1969-12-31T23:00:00", "PT2H"), "1970-01-01T01:00:00");
  EXPECT_EQ(Add("1969-12-31T23:00:00", "P2M"), "1970-02-28T23:00:00");
  EXPECT_EQ(Add("1400-01-01T00:00:00", "P1M"), "1400-02-01T00:00:00");
}

// ---- AddPeriod: out of range ------------------------------------------------

TEST(PeriodTest, ResultAfterYear9999IsInvalidArgument) {
  EXPECT_EQ(AddCode(At("9999-12-31T00:00:00"), Parse("P1D")),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AddCode(At("9999-07-31T00:00:00"), Parse("P6M")),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AddCode(At("9999-12-31T23:00:00"), Parse("PT1H")),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AddCode(At("2026-01-01T00:00:00"), Parse("P10000Y")),
            StatusCode::kInvalidArgument);
  Result<Timestamp> t = AddPeriod(At("9999-12-31T00:00:00"), Parse("P1D"));
  ASSERT_FALSE(t.has_value());
  EXPECT_THAT(t.error().message(), HasSubstr("'P1D' ends after 9999-12-31"));
}

TEST(PeriodTest, ResultOnTheLastSupportedInstantIsAccepted) {
  EXPECT_EQ(Add("9999-12-31T22:00:00", "PT1H"), "9999-12-31T23:00:00");
  EXPECT_EQ(Add("9999-06-30T00:00:00", "P6M"), "9999-12-30T00:00:00");
  EXPECT_EQ(AddPeriod(kLatestCalendarInstant, Period{}),
            kLatestCalendarInstant);
}

TEST(PeriodTest, EveryComponentAtItsLimitIsOutOfRangeNotOverflow) {
  const Period largest{.years = kMaxPeriodYears,
                       .months = kMaxPeriodMonths,
                       .weeks = kMaxPeriodWeeks,
                       .days = kMaxPeriodDays,
                       .hours = kMaxPeriodHours,
                       .minutes = kMaxPeriodMinutes,
                       .seconds = kMaxPeriodSeconds};
  EXPECT_EQ(AddCode(kEarliestCalendarInstant, largest),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AddCode(kEarliestCalendarInstant, Period{.days = kMaxPeriodDays}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      AddCode(kEarliestCalendarInstant, Period{.seconds = kMaxPeriodSeconds}),
      StatusCode::kInvalidArgument);
}

TEST(PeriodTest, AnchorOutsideTheCalendarIsInvalidArgument) {
  EXPECT_EQ(AddCode(kEarliestCalendarInstant - microseconds{1}, Period{}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AddCode(kLatestCalendarInstant + microseconds{1}, Period{}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AddCode(Timestamp::min(), Parse("P1D")),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AddCode(Timestamp::max(), Parse("P1D")),
            StatusCode::kInvalidArgument);
}

TEST(PeriodTest, HandBuiltPeriodOutsideLimitsIsInvalidArgument) {
  const Timestamp anchor = At("2026-01-01T00:00:00");
  EXPECT_EQ(AddCode(anchor, Period{.days = -1}), StatusCode::kInvalidArgument);
  EXPECT_EQ(AddCode(anchor, Period{.years = kMaxPeriodYears + 1}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      AddCode(anchor, Period{.seconds = std::numeric_limits<int64_t>::max()}),
      StatusCode::kInvalidArgument);
  EXPECT_FALSE((Period{.months = -1}).IsWithinLimits());
  EXPECT_TRUE((Period{.months = kMaxPeriodMonths}).IsWithinLimits());
}

// ---- NeverEndsAfter ---------------------------------------------------------

TEST(PeriodTest, OneMonthAndThirtyDaysAreNotOrdered) {
  EXPECT_FALSE(NeverEndsAfter(Parse("P1M"), Parse("P30D")));
  EXPECT_FALSE(NeverEndsAfter(Parse("P30D"), Parse("P1M")));
}

TEST(PeriodTest, OneMonthIsAlwaysBetweenTwentyEightAndThirtyOneDays) {
  EXPECT_TRUE(NeverEndsAfter(Parse("P28D"), Parse("P1M")));
  EXPECT_FALSE(NeverEndsAfter(Parse("P29D"), Parse("P1M")));
  EXPECT_TRUE(NeverEndsAfter(Parse("P1M"), Parse("P31D")));
  EXPECT_FALSE(NeverEndsAfter(Parse("P1M"), Parse("P30D")));
}

TEST(PeriodTest, OneYearIsAlwaysBetween365And366Days) {
  EXPECT_TRUE(NeverEndsAfter(Parse("P365D"), Parse("P1Y")));
  EXPECT_FALSE(NeverEndsAfter(Parse("P366D"), Parse("P1Y")));
  EXPECT_TRUE(NeverEndsAfter(Parse("P1Y"), Parse("P366D")));
  EXPECT_FALSE(NeverEndsAfter(Parse("P1Y"), Parse("P365D")));
}

TEST(PeriodTest, PeriodsThatAlwaysEndTogetherAreOrderedBothWays) {
  EXPECT_TRUE(NeverEndsAfter(Parse("P1Y"), Parse("P12M")));
  EXPECT_TRUE(NeverEndsAfter(Parse("P12M"), Parse("P1Y")));
  EXPECT_TRUE(NeverEndsAfter(Parse("P1W"), Parse("P7D")));
  EXPECT_TRUE(NeverEndsAfter(Parse("PT24H"), Parse("P1D")));
  EXPECT_TRUE(NeverEndsAfter(Parse("P1D"), Parse("PT1440M")));
  // 400 Gregorian years are exactly 146097 days.
  EXPECT_TRUE(NeverEndsAfter(Parse("P400Y"), Parse("P146097D")));
  EXPECT_TRUE(NeverEndsAfter(Parse("P146097D"), Parse("P400Y")));
  EXPECT_TRUE(NeverEndsAfter(Parse("P10000Y"), Parse("P120000M")));
  EXPECT_TRUE(NeverEndsAfter(Parse("P120000M"), Parse("P10000Y")));
}

// Checking only a four-year cycle would call P1461D "never after" P4Y; the
// century year 2100 (not leap) makes four years 1460 days from 1 Mar 2096.
TEST(PeriodTest, OrderHoldsAcrossNonLeapCenturyYears) {
  EXPECT_TRUE(NeverEndsAfter(Parse("P4Y"), Parse("P1461D")));
  EXPECT_FALSE(NeverEndsAfter(Parse("P1461D"), Parse("P4Y")));
  EXPECT_EQ(Add("2096-03-01T00:00:00", "P4Y"), "2100-03-01T00:00:00");
  EXPECT_EQ(Add("2096-03-01T00:00:00", "P1461D"), "2100-03-02T00:00:00");
}

TEST(PeriodTest, TimePartCountsInTheOrder) {
  EXPECT_TRUE(NeverEndsAfter(Parse("P1D"), Parse("PT25H")));
  EXPECT_FALSE(NeverEndsAfter(Parse("PT25H"), Parse("P1D")));
  EXPECT_TRUE(NeverEndsAfter(Parse("P1M"), Parse("PT744H")));  // 31 days.
  EXPECT_FALSE(NeverEndsAfter(Parse("P1M"), Parse("P30DT23H59M59S")));
  EXPECT_TRUE(NeverEndsAfter(Parse("P6M"), Parse("P6MT1S")));
  EXPECT_FALSE(NeverEndsAfter(Parse("P6MT1S"), Parse("P6M")));
}

TEST(PeriodTest, NeverEndsAfterIsFalseForPeriodsOutsideLimits) {
  EXPECT_FALSE(NeverEndsAfter(Period{.days = -1}, Parse("P1D")));
  EXPECT_FALSE(NeverEndsAfter(Parse("P1D"), Period{.years = 10'001}));
}

// NeverEndsAfter reasons about the 400-year cycle instead of calling
// AddPeriod; check it against AddPeriod from every day of one whole cycle.
TEST(PeriodTest, NeverEndsAfterAgreesWithAddPeriodFromEveryDayOfACycle) {
  const std::vector<std::pair<std::string_view, std::string_view>> pairs = {
      {"P1M", "P30D"},   {"P30D", "P1M"},   {"P28D", "P1M"},
      {"P1M", "P31D"},   {"P6M", "P183D"},  {"P6M", "P184D"},
      {"P3Y", "P1096D"}, {"P1095D", "P3Y"}, {"P1461D", "P4Y"},
      {"P1Y1M", "P13M"}, {"P2M", "P1M30D"}};
  const sys_days first = sys_days{std::chrono::year{2000} / 3 / 1};
  const sys_days end = sys_days{std::chrono::year{2400} / 3 / 1};
  for (const auto& [a_iso, b_iso] : pairs) {
    const Period a = Parse(a_iso);
    const Period b = Parse(b_iso);
    bool holds = true;
    for (sys_days d = first; d < end && holds; d += days{1}) {
      Result<Timestamp> ta = AddPeriod(d, a);
      Result<Timestamp> tb = AddPeriod(d, b);
      ASSERT_TRUE(ta.has_value() && tb.has_value());
      holds = *ta <= *tb;
    }
    EXPECT_EQ(NeverEndsAfter(a, b), holds) << a_iso << " vs " << b_iso;
  }
}

}  // namespace
}  // namespace custos
