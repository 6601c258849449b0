// SubjectReport: everything Custos holds on one data subject, and its two
// renderings (DESIGN section 5, "the subject report").
//
// A SubjectReport is a plain value the engine fills when an auditor answers
// a data subject's access request ("what do you hold on me, and who has seen
// it?"). The two renderers are pure functions of it: no engine, no storage,
// no clock. RenderSubjectReportJson gives the versioned machine format;
// RenderSubjectReportHtml gives a self-contained page for the person.
// docs/subject-report.md describes both, field by field.
//
// Every string in the report may come from a host application or a person
// (kinds, field names and values, principal names, justifications, hold
// reasons, contest statements...). Both renderers treat all of them as
// untrusted: JSON output escapes them, HTML output escapes them for text and
// attribute context alike, and bytes that are not valid UTF-8 are replaced
// by U+FFFD so the output is always valid UTF-8.
//
// Thread safety: the types are values; the functions have no shared state
// and may be called from any thread.

#ifndef CUSTOS_STORAGE_SUBJECT_REPORT_H_
#define CUSTOS_STORAGE_SUBJECT_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "storage/types.h"

namespace custos {

// The "format" and "version" members of the JSON rendering. The version is
// bumped on any change a consumer could notice (a member renamed, removed,
// retyped or given a new meaning); adding a member is also a new version.
inline constexpr char kSubjectReportFormat[] = "custos-subject-report";
inline constexpr int kSubjectReportVersion = 1;

struct SubjectReport {
  Timestamp generated_at;
  std::string subject_id;          // Custos's id for the person ("s" + hex).
  std::string subject_identifier;  // The external identifier, decrypted.

  // A principal named somewhere in the report (owner, recipient, hold or
  // contest author), with the name a person can recognise. Optional: an id
  // with no entry here is shown by its id alone.
  struct Principal {
    std::string id;
    std::string name;
  };
  std::vector<Principal> principals;

  struct Record {
    uint64_t id = 0;
    std::string kind;
    RecordState state = RecordState::kActive;
    std::string owner;                    // Principal id of the holder.
    std::vector<std::string> recipients;  // Principal ids granted access.
    Timestamp created_at;
    std::optional<Timestamp> closed_at;
    std::optional<Timestamp> blocked_at;
    std::optional<Timestamp> erased_at;
    // The next scheduled transition and when it is due; no deadline and an
    // empty transition when nothing is scheduled (e.g. an ERASED record).
    std::optional<Timestamp> next_deadline;
    std::string next_transition;        // "close", "block", "erase" or "".
    std::vector<Field> personal;        // This person's data still held; empty
                                        // once erased.
    std::vector<ContestView> contests;  // Contests concerning this person.
    std::vector<HoldView> holds;        // Holds on this record alone.
  };
  std::vector<Record> records;  // In record id order.

  std::vector<HoldView> subject_holds;  // Holds on all of the person's
                                        // records.

  // One event of the access history (DESIGN section 5).
  struct Access {
    Timestamp at;
    std::string principal_id;
    std::string principal_name;
    // What was done (EventActionName, storage/history.h): "create", "read",
    // "read_restricted", "rectify", "flag", "contest", "grant", "close",
    // "withdraw", "block", "erase", "export", "hold_set", "hold_released",
    // "shred", "report"; any other name is rendered as is.
    std::string action;
    uint64_t record_id = 0;     // 0 for events not about a record.
    std::string record_kind;    // "" for events not about a record.
    std::string record_state;   // RecordStateName at the time of the event,
                                // or "" for events not about a record.
    std::string purpose;        // PurposeKindName, or "" when none was given.
    std::string justification;  // "" when none was given.
    // Field names only, never values. A grant lists its grantee as
    // "grantee:<principal id>".
    std::vector<std::string> fields;
  };
  std::vector<Access> history;  // Oldest first.
};

// The report as a JSON document (schema: docs/subject-report.md), UTF-8,
// indented by two spaces, members in a fixed order, ending in a newline.
// The same report always gives the same bytes.
std::string RenderSubjectReportJson(const SubjectReport& report);

// The report as a self-contained HTML5 page in English: inline CSS only, no
// scripts, no external resources (a Content-Security-Policy meta element
// forbids them). Every string from the report is HTML-escaped.
std::string RenderSubjectReportHtml(const SubjectReport& report);

}  // namespace custos

#endif  // CUSTOS_STORAGE_SUBJECT_REPORT_H_
