// Renderings of a breach scope (storage/breach_scope.h;
// docs/accountability.md, "Breach scope"): CSV for the notification
// workflow (a mail merge, a spreadsheet, a regulator's form) and a
// readable, self-contained HTML summary for the controller and the
// supervisory authority.
//
// Pure functions of the BreachScope value: no engine, no storage, no clock.
// Every string in it is untrusted (it may come from a host application or
// a person): both renderings always give valid UTF-8 (invalid bytes become
// U+FFFD), HTML escapes everything, and CSV defuses spreadsheet formulas.
//
// Thread safety: no shared state; may be called from any thread.

#ifndef CUSTOS_REPORT_BREACH_SCOPE_H_
#define CUSTOS_REPORT_BREACH_SCOPE_H_

#include <string>

#include "storage/breach_scope.h"

namespace custos {

// RFC 4180 CSV, CRLF line ends, a header row then one row per disclosure
// per subject, by subject then time:
//   subject_id,identifier,at,principal_id,principal_name,action,record_id,
//   record_kind,purpose,justification,fields
// `at` is RFC 3339 UTC, `record_id` empty for a disclosure about no record,
// `fields` the field names joined by ';'. A cell is quoted when it holds a
// comma, a quote, CR or LF (quotes doubled); a cell starting with '=', '+',
// '-', '@', TAB or CR gets a leading "'" so no spreadsheet runs it as a
// formula. Subjects shredded since (BreachScope::without_identity) have no
// row: there is no one to name.
std::string RenderBreachScopeCsv(const BreachScope& scope);

// A self-contained HTML page (no script, no external resource, a CSP that
// forbids both): what was scoped and why, the counts, the people to notify
// with their identifiers, and every disclosure per person.
std::string RenderBreachScopeHtml(const BreachScope& scope);

}  // namespace custos

#endif  // CUSTOS_REPORT_BREACH_SCOPE_H_
