#include "report/internal.h"

#include <chrono>
#include <cstdio>

namespace custos::report_internal {

CivilTime ToCivil(Timestamp t) {
  using namespace std::chrono;
  // floor, not duration_cast: instants before 1970 must land on the
  // previous day, not round towards the epoch.
  const sys_days day = floor<days>(t);
  const year_month_day ymd(day);
  const hh_mm_ss<microseconds> hms(t - day);
  return CivilTime{static_cast<int>(ymd.year()),
                   static_cast<unsigned>(ymd.month()),
                   static_cast<unsigned>(ymd.day()),
                   static_cast<unsigned>(hms.hours().count()),
                   static_cast<unsigned>(hms.minutes().count()),
                   static_cast<unsigned>(hms.seconds().count()),
                   hms.subseconds().count()};
}

std::string Rfc3339(Timestamp t) {
  const CivilTime c = ToCivil(t);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02u:%02u:%02u",
                        c.year, c.month, c.day, c.hour, c.minute, c.second);
  if (c.micros != 0) {
    n += std::snprintf(buf + n, sizeof buf - n, ".%06lld",
                       static_cast<long long>(c.micros));
  }
  std::snprintf(buf + n, sizeof buf - n, "Z");
  return buf;
}

void AppendHtml(std::string& out, std::string_view s) {
  ForEachCodePoint(s, [&out](char32_t cp, std::string_view bytes) {
    switch (cp) {
      case '&':
        out += "&amp;";
        return;
      case '<':
        out += "&lt;";
        return;
      case '>':
        out += "&gt;";
        return;
      case '"':
        out += "&quot;";
        return;
      case '\'':
        out += "&#39;";
        return;
      case '\t':
      case '\n':
      case '\r':
        out += bytes;
        return;
      default:
        break;
    }
    if (cp < 0x20 || cp == 0x7F) {
      out += kReplacementBytes;
      return;
    }
    out += bytes;
  });
}

}  // namespace custos::report_internal
