// Calendar periods: ISO 8601 durations such as "P6M", "P3Y", "PT12H",
// added to UTC instants by the rule EU law uses for periods (Regulation
// (EEC, Euratom) No 1182/71, Article 3(2)(c)). See docs/retention.md.
//
// A Period is a plain value: seven non-negative counts, never normalised
// (P12M stays twelve months and is not == P1Y; P7D is not == P1W). What a
// period means is defined only by AddPeriod; use NeverEndsAfter to compare
// two periods by their effect.
//
// Thread safety: everything here is a pure function of its arguments or a
// value type; safe to use from any number of threads.

#ifndef CUSTOS_STORAGE_PERIOD_H_
#define CUSTOS_STORAGE_PERIOD_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"

namespace custos {

// Upper bounds on each component of a Period, inclusive. Each is roughly
// 10000 years' worth of its unit (counting 366-day years), so no
// arithmetic on a period within limits can overflow; whether the result is
// a supported instant is checked separately by AddPeriod.
inline constexpr int64_t kMaxPeriodYears = 10'000;
inline constexpr int64_t kMaxPeriodMonths = 120'000;
inline constexpr int64_t kMaxPeriodWeeks = 522'857;
inline constexpr int64_t kMaxPeriodDays = 3'660'000;
inline constexpr int64_t kMaxPeriodHours = 87'840'000;
inline constexpr int64_t kMaxPeriodMinutes = 5'270'400'000;
inline constexpr int64_t kMaxPeriodSeconds = 316'224'000'000;

// The instants calendar arithmetic supports: 1400-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999Z (the range of Boost.Date_Time's Gregorian
// calendar). AddPeriod refuses anchors and results outside it.
inline constexpr Timestamp kEarliestCalendarInstant =
    std::chrono::sys_days{std::chrono::year{1400} / 1 / 1};
inline constexpr Timestamp kLatestCalendarInstant =
    Timestamp{std::chrono::sys_days{std::chrono::year{10000} / 1 / 1}} -
    std::chrono::microseconds{1};

struct Period {
  // Each in [0, kMaxPeriod<Unit>]. A Period built by hand with a component
  // outside its range is refused by AddPeriod (InvalidArgument).
  int64_t years = 0;
  int64_t months = 0;
  int64_t weeks = 0;
  int64_t days = 0;
  int64_t hours = 0;
  int64_t minutes = 0;
  int64_t seconds = 0;

  // True if every component is zero.
  bool IsZero() const;

  // True if every component is in [0, kMaxPeriod<Unit>], as for every
  // Period ParsePeriod returns.
  bool IsWithinLimits() const;

  // Canonical ISO 8601 spelling: designators in the order Y M W D T H M S,
  // zero components left out, no leading zeros, "T" only when a time
  // component follows; the zero period is "P0D". For every Period within
  // limits, ParsePeriod(p.ToString()) == p.
  std::string ToString() const;

  // Component-wise equality: P1Y != P12M.
  friend bool operator==(const Period&, const Period&) = default;
};

// Parses an ISO 8601 duration:
//
//   duration  = "P" [n "Y"] [n "M"] [n "W"] [n "D"] ["T" [n "H"] [n "M"] [n
//   "S"]] n         = one or more ASCII digits
//
// with at least one component, and at least one after "T" when "T" is
// present. Designators are upper case and appear at most once, in that
// order; "M" before "T" is months, after it minutes. Weeks may be combined
// with other components. Not supported: signs, fractions ("P1.5Y",
// "PT0,5H"), the alternative format ("P0001-02-03"), surrounding spaces.
//
// On success returns the Period. On failure returns InvalidArgument whose
// message quotes the input and says what is wrong and at which (0-based)
// position, e.g. "duration 'P6X': unknown designator 'X' at position 2".
// A number above its component's kMaxPeriod* bound is refused the same way.
Result<Period> ParsePeriod(std::string_view iso);

// Returns the instant `p` after `anchor`, by calendar arithmetic in UTC:
//   1. years and months, together as one count of months: the result is the
//      same day of the month that many months later, or the last day of
//      that month when the day does not exist there (31 Aug + P6M =
//      28 Feb, or 29 Feb in a leap year; 30 Apr + P1M = 30 May);
//   2. then weeks and days, as 7 and 1 calendar days;
//   3. then hours, minutes and seconds, as exact durations (UTC has no
//      daylight-saving shifts; leap seconds are not counted).
// The time of day of `anchor` is kept through steps 1 and 2.
//
// A deadline must be computed from its anchoring event in one call:
// AddPeriod(AddPeriod(t, P1M), P1M) is not AddPeriod(t, P2M) in general
// (31 Jan -> 28 Mar versus 31 Mar).
//
// Returns InvalidArgument if `p` has a component outside its limits, or if
// `anchor` or the result lies outside [kEarliestCalendarInstant,
// kLatestCalendarInstant].
Result<Timestamp> AddPeriod(Timestamp anchor, const Period& p);

// Compares two periods by their effect. Returns true if, for every anchor t
// for which both results are in range, AddPeriod(t, a) <= AddPeriod(t, b):
// `a` never ends after `b`. Months and days are not totally ordered, so
// NeverEndsAfter(a, b) and NeverEndsAfter(b, a) may both be false
// (P1M and P30D: 31 Jan + P1M = 28 Feb is before 31 Jan + P30D = 2 Mar,
// 1 Mar + P1M = 1 Apr is after 1 Mar + P30D = 31 Mar). Both are true
// exactly when the periods always end at the same instant (P1Y and P12M).
//
// The answer is exact, not sampled: the Gregorian calendar repeats every
// 400 years, so every day of one 400-year cycle is checked. Costs a few
// thousand date constructions. Returns false if either period has a
// component outside its limits.
bool NeverEndsAfter(const Period& a, const Period& b);

}  // namespace custos

#endif  // CUSTOS_STORAGE_PERIOD_H_
