#include "base/time_text.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>

namespace custos {
namespace {

// The value of `count` decimal digits at `text[pos]`; nullopt if any is
// not a digit or the text is too short.
std::optional<int> Digits(std::string_view text, size_t pos, size_t count) {
  if (pos + count > text.size()) return std::nullopt;
  int value = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

bool CharAt(std::string_view text, size_t pos, char c) {
  return pos < text.size() && text[pos] == c;
}

}  // namespace

Result<Timestamp> ParseTimestamp(std::string_view text) {
  using namespace std::chrono;
  const Status bad = Status::InvalidArgument(
      "expected a date-time with a zone, as 2027-01-31T09:00:00Z or "
      "2027-01-31T10:00:00+01:00");
  // YYYY-MM-DDTHH:MM:SS is 19 characters.
  const auto y = Digits(text, 0, 4), mo = Digits(text, 5, 2),
             d = Digits(text, 8, 2), h = Digits(text, 11, 2),
             mi = Digits(text, 14, 2), s = Digits(text, 17, 2);
  if (!y || !mo || !d || !h || !mi || !s || !CharAt(text, 4, '-') ||
      !CharAt(text, 7, '-') || !CharAt(text, 10, 'T') ||
      !CharAt(text, 13, ':') || !CharAt(text, 16, ':')) {
    return Fail(bad);
  }
  const year_month_day day{year(*y), month(static_cast<unsigned>(*mo)),
                           std::chrono::day(static_cast<unsigned>(*d))};
  if (!day.ok() || *h > 23 || *mi > 59 || *s > 59) return Fail(bad);
  size_t pos = 19;
  int64_t fraction = 0;
  if (CharAt(text, pos, '.')) {
    ++pos;
    size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (++digits > 6) return Fail(bad);
      fraction = fraction * 10 + (text[pos] - '0');
      ++pos;
    }
    if (digits == 0) return Fail(bad);
    for (; digits < 6; ++digits) fraction *= 10;
  }
  int64_t offset_seconds = 0;
  if (CharAt(text, pos, 'Z')) {
    ++pos;
  } else if (CharAt(text, pos, '+') || CharAt(text, pos, '-')) {
    const bool plus = text[pos] == '+';
    const auto oh = Digits(text, pos + 1, 2), om = Digits(text, pos + 4, 2);
    if (!oh || !om || !CharAt(text, pos + 3, ':') || *oh > 23 || *om > 59) {
      return Fail(bad);
    }
    offset_seconds =
        (int64_t{*oh} * 3600 + int64_t{*om} * 60) * (plus ? 1 : -1);
    pos += 6;
  } else {
    return Fail(bad);
  }
  if (pos != text.size()) return Fail(bad);
  const sys_seconds local =
      sys_days(day) + hours(*h) + minutes(*mi) + seconds(*s);
  return Timestamp(duration_cast<microseconds>(local.time_since_epoch()) +
                   microseconds(fraction) - seconds(offset_seconds));
}

std::string FormatTimestamp(Timestamp t) {
  using namespace std::chrono;
  const sys_days day = floor<days>(t);
  const year_month_day ymd(day);
  const hh_mm_ss<microseconds> time(t - day);
  char text[40];
  std::snprintf(
      text, sizeof(text), "%04d-%02u-%02uT%02d:%02d:%02d",
      static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
      static_cast<unsigned>(ymd.day()), static_cast<int>(time.hours().count()),
      static_cast<int>(time.minutes().count()),
      static_cast<int>(time.seconds().count()));
  std::string out = text;
  if (time.subseconds().count() != 0) {
    std::snprintf(text, sizeof(text), ".%06lld",
                  static_cast<long long>(time.subseconds().count()));
    out += text;
  }
  out += 'Z';
  return out;
}

}  // namespace custos
