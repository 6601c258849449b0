#include "storage/period.h"

#include <algorithm>
#include <array>
#include <boost/date_time/gregorian/gregorian.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

namespace custos {
namespace {

namespace bg = boost::gregorian;

constexpr int64_t kMicrosPerSecond = 1'000'000;
constexpr int64_t kMicrosPerDay = 86'400 * kMicrosPerSecond;

// The last year of Boost.Date_Time's Gregorian calendar (the first, 1400,
// is enforced through kEarliestCalendarInstant). Constructing a date
// outside them throws, so results are checked before a date is made.
constexpr int kLastYear = 9999;

// The Gregorian calendar repeats exactly every 400 years: 4800 months,
// 146097 days (a whole number of weeks, too).
constexpr int64_t kCycleMonths = 4800;
constexpr int64_t kCycleDays = 146'097;

// ---- Parsing ---------------------------------------------------------------

// Components in the only order ISO 8601 allows them.
enum Rank { kYears, kMonths, kWeeks, kDays, kHours, kMinutes, kSeconds };

constexpr std::array<char, 7> kDesignator = {'Y', 'M', 'W', 'D', 'H', 'M', 'S'};
constexpr std::array<const char*, 7> kUnitName = {
    "years", "months", "weeks", "days", "hours", "minutes", "seconds"};
constexpr std::array<int64_t, 7> kLimit = {
    kMaxPeriodYears, kMaxPeriodMonths,  kMaxPeriodWeeks,  kMaxPeriodDays,
    kMaxPeriodHours, kMaxPeriodMinutes, kMaxPeriodSeconds};
constexpr int64_t kLargestLimit = kMaxPeriodSeconds;

// Where each component lives, in Rank order.
constexpr std::array<int64_t Period::*, 7> kMember = {
    &Period::years, &Period::months,  &Period::weeks,  &Period::days,
    &Period::hours, &Period::minutes, &Period::seconds};

// One byte as it should appear inside quotes in a message. The input is
// untrusted: control bytes and non-ASCII are escaped so a message stays one
// readable line.
std::string Show(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u < 0x20 || u >= 0x7f) {
    static constexpr char kHex[] = "0123456789abcdef";
    return std::string{'\\', 'x', kHex[u >> 4], kHex[u & 0xf]};
  }
  if (c == '\'' || c == '\\') return std::string{'\\', c};
  return std::string(1, c);
}

// The input, quoted and shortened, so a huge or binary argument cannot
// bloat a message or a log line.
std::string Quote(std::string_view iso) {
  constexpr size_t kMaxShown = 40;
  std::string out = "'";
  for (size_t i = 0; i < iso.size() && i < kMaxShown; ++i) out += Show(iso[i]);
  if (iso.size() > kMaxShown) out += "...";
  out += "'";
  return out;
}

class Parser {
 public:
  explicit Parser(std::string_view iso) : iso_(iso) {}

  Result<Period> Parse() {
    if (iso_.empty()) return Error("is empty");
    if (iso_[0] != 'P') {
      return Error("must start with 'P', found '" + Show(iso_[0]) +
                   "' at position 0");
    }
    if (iso_.size() == 1) return Error("has no component after 'P'");

    Period period;
    int last_rank = -1;
    size_t t_position = 0;
    bool in_time = false;
    bool time_component_seen = false;
    size_t pos = 1;
    while (pos < iso_.size()) {
      const char c = iso_[pos];
      if (c == 'T') {
        if (in_time) return Error("'T' repeated at position " + At(pos));
        in_time = true;
        t_position = pos++;
        continue;
      }
      if (!IsDigit(c)) return Error(NoNumberMessage(c, pos, in_time));

      const size_t number_position = pos;
      int64_t value = 0;
      // Stop accumulating once past every limit (the number is refused
      // below), so a long run of digits cannot overflow.
      for (; pos < iso_.size() && IsDigit(iso_[pos]); ++pos) {
        if (value <= kLargestLimit) value = value * 10 + (iso_[pos] - '0');
      }
      if (pos == iso_.size()) {
        return Error("number at position " + At(number_position) +
                     " has no designator after it");
      }
      const char designator = iso_[pos];
      if (designator == 'T') {
        return Error("number at position " + At(number_position) +
                     " has no designator after it");
      }
      if (designator == '.' || designator == ',') {
        return Error("fractions are not supported ('" + Show(designator) +
                     "' at position " + At(pos) + ")");
      }
      Result<Rank> rank = RankOf(designator, pos, in_time);
      if (!rank) return Fail(rank.error());
      if (*rank == last_rank) {
        return Error("designator '" + Show(designator) +
                     "' repeated at position " + At(pos));
      }
      if (*rank < last_rank) {
        return Error("designator '" + Show(designator) + "' at position " +
                     At(pos) + " out of order (must come before '" +
                     kDesignator[last_rank] + "')");
      }
      if (value > kLimit[*rank]) {
        return Error("number at position " + At(number_position) +
                     " exceeds the limit of " + std::to_string(kLimit[*rank]) +
                     " " + kUnitName[*rank]);
      }
      period.*kMember[*rank] = value;
      last_rank = *rank;
      time_component_seen = time_component_seen || in_time;
      ++pos;
    }
    if (in_time && !time_component_seen) {
      return Error("'T' at position " + At(t_position) +
                   " has no time component after it");
    }
    return period;
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  static std::string At(size_t pos) { return std::to_string(pos); }

  std::unexpected<Status> Error(const std::string& what) const {
    return Fail(
        Status::InvalidArgument("duration " + Quote(iso_) + ": " + what));
  }

  // Explains a character found where a number should start.
  static std::string NoNumberMessage(char c, size_t pos, bool in_time) {
    if (c == '-') {
      return "negative numbers are not supported ('-' at position " + At(pos) +
             ")";
    }
    if (c == '+') {
      return "signs are not supported ('+' at position " + At(pos) + ")";
    }
    const std::string_view known = in_time ? "HMS" : "YMWD";
    if (known.find(c) != std::string_view::npos) {
      return "designator '" + Show(c) + "' at position " + At(pos) +
             " has no number before it";
    }
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
      return "unknown designator '" + Show(c) + "' at position " + At(pos);
    }
    return "unexpected character '" + Show(c) + "' at position " + At(pos);
  }

  Result<Rank> RankOf(char c, size_t pos, bool in_time) const {
    if (!in_time) {
      switch (c) {
        case 'Y':
          return kYears;
        case 'M':
          return kMonths;
        case 'W':
          return kWeeks;
        case 'D':
          return kDays;
        case 'H':
        case 'S':
          return Error("time designator '" + Show(c) + "' at position " +
                       At(pos) + " must come after 'T'");
        default:
          break;
      }
    } else {
      switch (c) {
        case 'H':
          return kHours;
        case 'M':
          return kMinutes;
        case 'S':
          return kSeconds;
        case 'Y':
        case 'W':
        case 'D':
          return Error("date designator '" + Show(c) + "' at position " +
                       At(pos) + " must come before 'T'");
        default:
          break;
      }
    }
    if (c >= 'a' && c <= 'z') {
      return Error("unknown designator '" + Show(c) + "' at position " +
                   At(pos) + " (designators are upper case)");
    }
    if (c >= 'A' && c <= 'Z') {
      return Error("unknown designator '" + Show(c) + "' at position " +
                   At(pos));
    }
    return Error("unexpected character '" + Show(c) + "' at position " +
                 At(pos));
  }

  std::string_view iso_;
};

// ---- Arithmetic ------------------------------------------------------------

int64_t TotalMonths(const Period& p) { return p.years * 12 + p.months; }
int64_t TotalDays(const Period& p) { return p.weeks * 7 + p.days; }
int64_t TimeMicros(const Period& p) {
  return ((p.hours * 60 + p.minutes) * 60 + p.seconds) * kMicrosPerSecond;
}

// Within limits nothing overflows: the largest linear part NeverEndsAfter
// forms (all days, weeks, whole 400-year cycles of months, and the time
// part, in microseconds) fits twice over in an int64_t.
static_assert(
    (kMaxPeriodDays + 7 * kMaxPeriodWeeks +
     (12 * kMaxPeriodYears + kMaxPeriodMonths) / kCycleMonths * kCycleDays +
     kCycleDays) *
            kMicrosPerDay +
        (kMaxPeriodHours * 3600 + kMaxPeriodMinutes * 60 + kMaxPeriodSeconds) *
            kMicrosPerSecond <
    std::numeric_limits<int64_t>::max() / 2);

const bg::date& Epoch() {
  static const bg::date epoch(1970, 1, 1);
  return epoch;
}

int64_t DayNumber(const bg::date& d) { return (d - Epoch()).days(); }

// Months counted from year 0 (index = 12 * year + month - 1): month
// arithmetic on one integer avoids carrying between fields.
int64_t MonthIndex(int64_t year, int64_t month) {
  return year * 12 + month - 1;
}

// The EU rule (Regulation 1182/71, Art. 3(2)(c)): same day of the month,
// or the last day of the target month when that day does not exist there.
// Deliberately not Boost's `months`/`add_months`: those snap a date that is
// the last day of its month to the last day of the target month (30 Apr +
// 1 month = 31 May), which the EU rule does not do (30 May).
// REQUIRES: months >= 0 and the target year is at most kLastYear.
bg::date AddMonthsEu(const bg::date& d, int64_t months) {
  const int64_t target = MonthIndex(d.year(), d.month()) + months;
  const auto year = static_cast<unsigned short>(target / 12);
  const auto month = static_cast<unsigned short>(target % 12 + 1);
  const unsigned short last_day =
      bg::gregorian_calendar::end_of_month_day(year, month);
  return bg::date(year, month,
                  std::min(static_cast<unsigned short>(d.day()), last_day));
}

std::unexpected<Status> OutOfRange(const Period& p) {
  return Fail(Status::InvalidArgument(
      "period '" + p.ToString() +
      "' ends after 9999-12-31T23:59:59.999999Z, the latest supported "
      "instant"));
}

// The day number of the first day, and the length, of a month given by its
// MonthIndex; used by the month-step comparison below.
int64_t FirstOfMonthDayNumber(int64_t month_index) {
  return DayNumber(bg::date(static_cast<unsigned short>(month_index / 12),
                            static_cast<unsigned short>(month_index % 12 + 1),
                            1));
}

int64_t MonthLength(int64_t month_index) {
  return bg::gregorian_calendar::end_of_month_day(
      static_cast<unsigned short>(month_index / 12),
      static_cast<unsigned short>(month_index % 12 + 1));
}

// A period split into its month count, reduced below one 400-year cycle,
// and everything else as exact microseconds. Adding 4800 months is exactly
// adding 146097 days whatever the anchor, so the reduction keeps the
// period's effect while keeping every date NeverEndsAfter builds well
// inside Boost's range.
struct Split {
  int64_t months;
  int64_t linear_micros;
};

Split SplitPeriod(const Period& p) {
  const int64_t months = TotalMonths(p);
  const int64_t days = TotalDays(p) + months / kCycleMonths * kCycleDays;
  return {months % kCycleMonths, days * kMicrosPerDay + TimeMicros(p)};
}

}  // namespace

bool Period::IsZero() const { return *this == Period{}; }

bool Period::IsWithinLimits() const {
  for (size_t rank = 0; rank < kMember.size(); ++rank) {
    const int64_t v = this->*kMember[rank];
    if (v < 0 || v > kLimit[rank]) return false;
  }
  return true;
}

std::string Period::ToString() const {
  std::string out = "P";
  auto append = [&out](int64_t value, char designator) {
    if (value == 0) return;
    out += std::to_string(value);
    out += designator;
  };
  append(years, 'Y');
  append(months, 'M');
  append(weeks, 'W');
  append(days, 'D');
  if (hours != 0 || minutes != 0 || seconds != 0) {
    out += 'T';
    append(hours, 'H');
    append(minutes, 'M');
    append(seconds, 'S');
  }
  if (out.size() == 1) out += "0D";
  return out;
}

Result<Period> ParsePeriod(std::string_view iso) { return Parser(iso).Parse(); }

Result<Timestamp> AddPeriod(Timestamp anchor, const Period& p) {
  if (!p.IsWithinLimits()) {
    return Fail(Status::InvalidArgument(
        "period has a negative component or one above its limit"));
  }
  if (anchor < kEarliestCalendarInstant || anchor > kLatestCalendarInstant) {
    return Fail(Status::InvalidArgument(
        "anchor lies outside the supported range 1400-01-01..9999-12-31"));
  }

  // Split the instant into a civil date and the time of day, which the
  // calendar steps keep unchanged.
  const int64_t micros = ToMicros(anchor);
  int64_t day_number = micros / kMicrosPerDay;
  if (micros % kMicrosPerDay < 0) --day_number;  // Floor, not truncation.
  const int64_t time_of_day = micros - day_number * kMicrosPerDay;
  const bg::date start = Epoch() + bg::days(day_number);

  // Step 1: years and months as one count, so P1Y6M is P18M and not a year
  // then six months (the two can differ by the end-of-month clamp).
  const int64_t target_month =
      MonthIndex(start.year(), start.month()) + TotalMonths(p);
  if (target_month / 12 > kLastYear) return OutOfRange(p);
  const bg::date after_months = AddMonthsEu(start, TotalMonths(p));

  // Step 2: weeks and days are plain calendar days.
  static const bg::date kLastDate(kLastYear, 12, 31);
  if (TotalDays(p) > (kLastDate - after_months).days()) return OutOfRange(p);
  const bg::date after_days = after_months + bg::days(TotalDays(p));

  // Step 3: the time part is an exact duration (UTC has no DST jumps).
  const int64_t result =
      DayNumber(after_days) * kMicrosPerDay + time_of_day + TimeMicros(p);
  if (result > ToMicros(kLatestCalendarInstant)) return OutOfRange(p);
  return FromMicros(result);
}

bool NeverEndsAfter(const Period& a, const Period& b) {
  if (!a.IsWithinLimits() || !b.IsWithinLimits()) return false;
  const Split sa = SplitPeriod(a);
  const Split sb = SplitPeriod(b);

  // AddPeriod(t, p) = t + M_p(date of t) + linear_p, where M_p is how many
  // days the month step moves that date. The time of day of t cancels out,
  // and M_p depends only on the date's place in the 400-year cycle. So `a`
  // never ends after `b` iff
  //   max over the cycle of (M_a - M_b) * day <= linear_b - linear_a.
  // Within one month of the cycle, M only varies with the day through the
  // end-of-month clamp, so each month costs a handful of date
  // constructions and a loop over its days.
  constexpr int64_t kCycleStartYear = 2000;
  // The largest M_a - M_b seen, in days.
  int64_t worst = std::numeric_limits<int64_t>::min();
  for (int64_t i = 0; i < kCycleMonths; ++i) {
    const int64_t month = MonthIndex(kCycleStartYear, 1) + i;
    const int64_t length = MonthLength(month);
    const int64_t first = FirstOfMonthDayNumber(month);
    const int64_t first_a = FirstOfMonthDayNumber(month + sa.months) - first;
    const int64_t first_b = FirstOfMonthDayNumber(month + sb.months) - first;
    const int64_t length_a = MonthLength(month + sa.months);
    const int64_t length_b = MonthLength(month + sb.months);
    for (int64_t day = 1; day <= length; ++day) {
      const int64_t delta = (first_a + std::min(day, length_a)) -
                            (first_b + std::min(day, length_b));
      worst = std::max(worst, delta);
    }
  }
  return worst * kMicrosPerDay <= sb.linear_micros - sa.linear_micros;
}

}  // namespace custos
