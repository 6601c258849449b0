// Instants as text: ISO 8601 / RFC 3339 date-times with an explicit zone.
//
// Thread safety: pure functions.

#ifndef CUSTOS_BASE_TIME_TEXT_H_
#define CUSTOS_BASE_TIME_TEXT_H_

#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"

namespace custos {

// Parses "YYYY-MM-DDTHH:MM:SS[.f{1,6}]" followed by "Z" or "+hh:mm" /
// "-hh:mm" ("2027-02-28T10:00:00Z", "2027-02-28T11:00:00.5+01:00"). A
// date that does not exist (31 February), an hour over 23, a minute or
// second over 59, or a missing zone is InvalidArgument, whose message
// quotes neither the text nor its position (callers name their flag).
Result<Timestamp> ParseTimestamp(std::string_view text);

// "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" in UTC; the fraction only when it is not
// zero. ParseTimestamp(FormatTimestamp(t)) == t.
std::string FormatTimestamp(Timestamp t);

}  // namespace custos

#endif  // CUSTOS_BASE_TIME_TEXT_H_
