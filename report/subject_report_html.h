// RenderSubjectReportHtml: the subject report (DESIGN section 5) as a page
// the person it concerns can open and read: what is held on them, in which
// state, what happens next, and who saw or received their data, when and
// why. docs/subject-report.md describes the page section by section.
//
// A pure function of the SubjectReport value (storage/subject_report.h): no
// engine, no storage, no clock. "Now" (for "is due" against "was due", and
// for which legal holds are in force) is the report's generated_at. The
// same report always gives the same bytes.
//
// The page is self-contained HTML5 in English: one inline <style>, no
// scripts, no images, no fonts, no links outside the page; a
// Content-Security-Policy meta element forbids loading or running anything.
// Every string in the report may come from a host application or a person
// and is treated as untrusted: it is HTML-escaped for text and attribute
// context alike, C0 controls (other than tab, newline and carriage return)
// and DEL become U+FFFD, and so do bytes that are not valid UTF-8, so the
// output is always valid UTF-8.
//
// Thread safety: no shared state; may be called from any thread.

#ifndef CUSTOS_REPORT_SUBJECT_REPORT_HTML_H_
#define CUSTOS_REPORT_SUBJECT_REPORT_HTML_H_

#include <string>

#include "storage/subject_report.h"

namespace custos {

// The report as a complete HTML5 document, UTF-8, ending in a newline.
// Never fails.
std::string RenderSubjectReportHtml(const SubjectReport& report);

}  // namespace custos

#endif  // CUSTOS_REPORT_SUBJECT_REPORT_HTML_H_
