// RenderSubjectReportJson: the subject report (DESIGN section 5) as a
// versioned JSON document for machines: the host application, an archive, a
// regulator's tooling. docs/subject-report.md gives the schema, member by
// member.
//
// A pure function of the SubjectReport value (storage/subject_report.h): no
// engine, no storage, no clock (the report carries its own generated_at).
// The same report always gives the same bytes.
//
// Every string in the report may come from a host application or a person
// (kinds, field names and values, principal names, justifications, hold
// reasons, contest statements...) and is treated as untrusted: it is
// escaped as JSON requires, U+2028 and U+2029 are escaped too (so the
// document can be pasted into a script), and bytes that are not valid UTF-8
// are replaced by U+FFFD, so the output is always valid UTF-8.
//
// Thread safety: no shared state; may be called from any thread.

#ifndef CUSTOS_REPORT_SUBJECT_REPORT_JSON_H_
#define CUSTOS_REPORT_SUBJECT_REPORT_JSON_H_

#include <string>

#include "storage/subject_report.h"

namespace custos {

// The "format" and "version" members of the JSON rendering. The version is
// bumped on any change a consumer could notice (a member renamed, removed,
// retyped or given a new meaning); adding a member is also a new version.
inline constexpr char kSubjectReportFormat[] = "custos-subject-report";
inline constexpr int kSubjectReportVersion = 2;

// The report as a JSON document (schema: docs/subject-report.md), UTF-8,
// indented by two spaces, members in a fixed order, ending in a newline.
// Never fails.
std::string RenderSubjectReportJson(const SubjectReport& report);

}  // namespace custos

#endif  // CUSTOS_REPORT_SUBJECT_REPORT_JSON_H_
