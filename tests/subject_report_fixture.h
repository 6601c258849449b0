// A subject report with something in every member, and helpers to look
// into its renderings, for the tests of report/.

#ifndef CUSTOS_TESTS_SUBJECT_REPORT_FIXTURE_H_
#define CUSTOS_TESTS_SUBJECT_REPORT_FIXTURE_H_

#include <chrono>
#include <cstddef>
#include <string>

#include "base/clock.h"
#include "storage/subject_report.h"
#include "storage/types.h"

namespace custos::testing {

// y-m-d at h:min UTC.
inline Timestamp At(int y, unsigned m, unsigned d, int h = 12, int min = 0) {
  return Timestamp(std::chrono::sys_days(std::chrono::year(y) / m / d) +
                   std::chrono::hours(h) + std::chrono::minutes(min));
}

inline constexpr char kSubject[] = "s0123456789abcdef0123456789abcdef";

// A person with one closed request (still held, flagged, contested, under a
// record hold) and one alert erased long ago, seen by two authorities and an
// officer.
inline SubjectReport FixedReport() {
  using namespace std::chrono_literals;
  SubjectReport report;
  report.generated_at = At(2027, 1, 15, 10);
  report.subject_id = kSubject;
  report.subject_identifier = "anna@example.org";
  report.principals = {{"imi-de-berlin", "Berlin trade office"},
                       {"imi-fr-paris", "Paris chamber of trades"},
                       {"off-1", "Officer Weber"}};

  SubjectReport::Record request;
  request.id = 17;
  request.kind = "request";
  request.state = RecordState::kClosed;
  request.owner = "imi-de-berlin";
  request.recipients = {"imi-fr-paris"};
  request.created_at = At(2026, 8, 1, 9, 30);
  request.closed_at = At(2026, 8, 31);
  request.next_deadline = At(2027, 2, 28);
  request.next_transition = "block";
  request.personal = {{"name", "Anna Schmidt"}, {"licence", "DE-4711"}};
  request.flags = {{"imi-fr-paris", At(2026, 9, 3, 16), kSubject,
                    "Licence number looks mistyped."}};
  request.contests = {{"off-1",
                       At(2026, 11, 2, 8),
                       kSubject,
                       "The licence number is wrong.",
                       {{"licence", "DE-4712"}}}};
  HoldView record_hold;
  record_hold.id = "h3";
  record_hold.record_id = 17;
  record_hold.reason = "Proceedings 4 C 12/26";
  record_hold.set_by = "off-1";
  record_hold.set_at = At(2026, 12, 1, 10);
  record_hold.ends_at = At(2028, 1, 1, 0);
  request.holds = {record_hold};

  SubjectReport::Record alert;
  alert.id = 42;
  alert.kind = "alert";
  alert.state = RecordState::kErased;
  alert.owner = "imi-fr-paris";
  alert.created_at = At(2025, 1, 10, 8) + 250ms;
  alert.closed_at = At(2025, 2, 1);
  alert.erased_at = At(2025, 8, 1);
  report.records = {request, alert};

  HoldView subject_hold;
  subject_hold.id = "h4";
  subject_hold.subject_id = kSubject;
  subject_hold.reason = "At the subject's request";
  subject_hold.set_by = "off-1";
  subject_hold.set_at = At(2026, 12, 5, 0);
  subject_hold.ends_at = At(2027, 6, 30, 0);
  subject_hold.released_at = At(2027, 1, 10, 0);
  subject_hold.released_by = "off-1";
  report.subject_holds = {subject_hold};

  report.history = {
      {At(2025, 1, 10, 8) + 250ms,
       "imi-fr-paris",
       "Paris chamber of trades",
       "create",
       42,
       "alert",
       "ACTIVE",
       "",
       "",
       {"name", "phone"}},
      {At(2025, 1, 11, 14),
       "imi-de-berlin",
       "Berlin trade office",
       "read",
       42,
       "alert",
       "ACTIVE",
       "",
       "",
       {"name", "phone"}},
      {At(2026, 12, 2, 14),
       "off-1",
       "Officer Weber",
       "read_restricted",
       17,
       "request",
       "CLOSED",
       "public_interest",
       "Court order 4 C 12/26",
       {"name", "licence"}},
  };
  return report;
}

// The part of `text` (a rendering) between `from` and the next `to` after
// it, or "" if either is missing.
inline std::string Between(const std::string& text, const std::string& from,
                           const std::string& to) {
  const size_t begin = text.find(from);
  if (begin == std::string::npos) return "";
  const size_t end = text.find(to, begin + from.size());
  if (end == std::string::npos) return "";
  return text.substr(begin, end - begin);
}

}  // namespace custos::testing

#endif  // CUSTOS_TESTS_SUBJECT_REPORT_FIXTURE_H_
