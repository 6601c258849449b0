// Helpers private to report/; nothing outside report/ includes this file.
//
// Both renderers take strings from host applications and people, and
// neither JSON nor HTML may carry invalid UTF-8; both write times as
// RFC 3339 in UTC. These are the pieces they share.

#ifndef CUSTOS_REPORT_INTERNAL_H_
#define CUSTOS_REPORT_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/clock.h"

namespace custos::report_internal {

inline constexpr char32_t kReplacementChar = 0xFFFD;
// kReplacementChar in UTF-8.
inline constexpr std::string_view kReplacementBytes = "\xEF\xBF\xBD";

// Calls emit(code_point, bytes) for each code point of `s`, in order. Each
// maximal invalid subsequence (as the WHATWG decoder defines it: stray
// continuation bytes, truncated sequences, overlong forms, surrogates,
// values above U+10FFFF) gives one call with kReplacementChar and
// kReplacementBytes, so what `emit` sees is always valid UTF-8.
template <typename Emit>
void ForEachCodePoint(std::string_view s, Emit emit) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      emit(static_cast<char32_t>(b0), s.substr(i, 1));
      ++i;
      continue;
    }
    size_t length = 0;
    char32_t cp = 0;
    // Bounds of the second byte; later continuation bytes are 80..BF. The
    // narrowed bounds reject overlong forms, surrogates and > U+10FFFF.
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      length = 2;
      cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      length = 3;
      cp = b0 & 0x0F;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      length = 4;
      cp = b0 & 0x07;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    }
    size_t consumed = 1;
    bool valid = length != 0;
    for (size_t k = 1; valid && k < length; ++k) {
      if (i + k >= s.size()) {
        valid = false;
        break;
      }
      const auto b = static_cast<unsigned char>(s[i + k]);
      const unsigned char min = k == 1 ? lo : 0x80;
      const unsigned char max = k == 1 ? hi : 0xBF;
      if (b < min || b > max) {
        valid = false;
        break;
      }
      cp = (cp << 6) | (b & 0x3F);
      ++consumed;
    }
    if (valid) {
      emit(cp, s.substr(i, length));
    } else {
      emit(kReplacementChar, kReplacementBytes);
    }
    i += consumed;
  }
}

// Appends `s` escaped for HTML text and for double- or single-quoted
// attribute values alike. C0 controls other than tab, newline and carriage
// return, and DEL, are not allowed in HTML text; they become U+FFFD like
// invalid UTF-8.
void AppendHtml(std::string& out, std::string_view s);

// An instant broken down in the proleptic Gregorian calendar, UTC.
struct CivilTime {
  int year;
  unsigned month, day, hour, minute, second;  // month 1..12, day 1..31.
  int64_t micros;                             // 0..999999.
};

// Instants before 1970 land on the day they fall in (1969-12-31T23:59:59
// and 999999 microseconds for one microsecond before the epoch).
CivilTime ToCivil(Timestamp t);

// "2027-02-28T12:00:00Z", or "2027-02-28T12:00:00.000250Z" when the
// microseconds are not zero.
std::string Rfc3339(Timestamp t);

}  // namespace custos::report_internal

#endif  // CUSTOS_REPORT_INTERNAL_H_
