// The subject report as a page for the person (report/subject_report_html.h),
// which must say in plain words what is held and who saw it, and escape
// every string it is given.

#include "report/subject_report_html.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/subject_report_fixture.h"

namespace custos::testing {
namespace {

// The <tr>...</tr> of `html` that contains `needle`, or "" if none does.
std::string RowContaining(const std::string& html, const std::string& needle) {
  const size_t at = html.find(needle);
  if (at == std::string::npos) return "";
  const size_t begin = html.rfind("<tr>", at);
  const size_t end = html.find("</tr>", at);
  if (begin == std::string::npos || end == std::string::npos) return "";
  return html.substr(begin, end + 5 - begin);
}

size_t Occurrences(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

TEST(SubjectReportHtmlTest, IsASelfContainedUtf8PageWithNoScripts) {
  const std::string html = RenderSubjectReportHtml(FixedReport());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>\n<html lang=\"en\">\n", 0), 0u);
  EXPECT_NE(html.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_NE(html.find("<style>"), std::string::npos);
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(html.find("<title>Personal data we hold about you</title>"),
            std::string::npos);
  for (const char* forbidden : {"<script", "<link", "<img", "<iframe",
                                "src=", "http:", "https:", "url(", "@import"}) {
    EXPECT_EQ(html.find(forbidden), std::string::npos) << forbidden;
  }
  EXPECT_EQ(html.substr(html.size() - 8), "</html>\n");
}

TEST(SubjectReportHtmlTest, SummarySaysHowManyRecordsAndWhatStateTheyAreIn) {
  const std::string html = RenderSubjectReportHtml(FixedReport());
  const std::string summary =
      Between(html, "<section id=\"summary\">", "</section>");
  EXPECT_NE(summary.find("We hold <strong>2 records</strong> about you."),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find("In 1 of them, your personal data is still held: "
                         "1 closed."),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find("In 1 of them, your personal data has been erased."),
            std::string::npos);
  EXPECT_NE(summary.find("<strong>3 times</strong> by 3 different parties"),
            std::string::npos);
  // The record hold is in force; the subject hold was released.
  EXPECT_NE(summary.find("1 legal hold is in force"), std::string::npos);
  EXPECT_NE(summary.find("Next scheduled change: <a href=\"#record-17\">record "
                         "17</a> is due to be blocked on <time "
                         "datetime=\"2027-02-28T12:00:00Z\">28 February 2027 "
                         "at 12:00 UTC</time>."),
            std::string::npos)
      << summary;
}

TEST(SubjectReportHtmlTest, SummaryNamesTheNextChangeThatNoHoldPostpones) {
  SubjectReport report = FixedReport();
  // Record 17's erasure, before record 4's blocking but held until 2028.
  report.records[0].next_transition = "erase";
  report.records[0].next_deadline = At(2026, 12, 1);
  SubjectReport::Record other = report.records[0];
  other.id = 4;
  other.holds.clear();
  other.next_transition = "block";
  other.next_deadline = At(2027, 1, 1);  // Overdue at generated_at.
  report.records.push_back(other);
  const std::string summary = Between(RenderSubjectReportHtml(report),
                                      "<section id=\"summary\">", "</section>");
  EXPECT_NE(summary.find("Next scheduled change: <a href=\"#record-4\">record "
                         "4</a> was due to be blocked on <time "
                         "datetime=\"2027-01-01T12:00:00Z\">1 January 2027 at "
                         "12:00 UTC</time> and will be at the next scheduled "
                         "run."),
            std::string::npos)
      << summary;
}

TEST(SubjectReportHtmlTest, ShowsTheHeldDataAndTheNextDeadlineOfARecord) {
  const std::string html = RenderSubjectReportHtml(FixedReport());
  const std::string record = Between(
      html, "<article class=\"record\" id=\"record-17\">", "</article>");
  ASSERT_NE(record, "");
  EXPECT_NE(record.find("<span class=\"state state-closed\">Closed</span>"),
            std::string::npos);
  EXPECT_NE(record.find("<tr><td>licence</td><td class=\"value\">DE-4711</td>"
                        "</tr>"),
            std::string::npos);
  EXPECT_NE(record.find("<dt>Held by</dt><dd>Berlin trade office <span "
                        "class=\"id\">(imi-de-berlin)</span></dd>"),
            std::string::npos);
  EXPECT_NE(record.find("<dt>Shared with</dt><dd>Paris chamber of trades"),
            std::string::npos);
  EXPECT_NE(record.find("On <time datetime=\"2027-02-28T12:00:00Z\">28 "
                        "February 2027 at 12:00 UTC</time> it will be blocked: "
                        "kept but no longer used"),
            std::string::npos)
      << record;
  EXPECT_NE(record.find("The licence number is wrong."), std::string::npos);
  EXPECT_NE(record.find("DE-4712"), std::string::npos);
  EXPECT_NE(record.find("Proceedings 4 C 12/26"), std::string::npos);
  EXPECT_NE(record.find("<strong>In force</strong>"), std::string::npos);
}

// A flag note is personal data held on the person: shown with its author
// and time (issue 9, item 9).
TEST(SubjectReportHtmlTest, ShowsFlagNotesWithTheirAuthorAndTime) {
  const std::string html = RenderSubjectReportHtml(FixedReport());
  const std::string record = Between(
      html, "<article class=\"record\" id=\"record-17\">", "</article>");
  ASSERT_NE(record, "");
  EXPECT_NE(record.find("<h4>Notes that your data may be incorrect</h4>\n"
                        "<p>On <time datetime=\"2026-09-03T16:00:00Z\">3 "
                        "September 2026 at 16:00 UTC</time>, Paris chamber of "
                        "trades <span class=\"id\">(imi-fr-paris)</span> noted "
                        "that your data in this record may be incorrect:</p>\n"
                        "<p class=\"statement\">Licence number looks "
                        "mistyped.</p>"),
            std::string::npos)
      << record;
}

TEST(SubjectReportHtmlTest, ErasedRecordShowsItsErasureDateAndNoData) {
  const std::string html = RenderSubjectReportHtml(FixedReport());
  const std::string record = Between(
      html, "<article class=\"record erased\" id=\"record-42\">", "</article>");
  ASSERT_NE(record, "");
  EXPECT_NE(record.find("<span class=\"state state-erased\">Erased</span>"),
            std::string::npos);
  EXPECT_NE(record.find("Erased: your personal data in this record was erased "
                        "on <time datetime=\"2025-08-01T12:00:00Z\">1 August "
                        "2025 at 12:00 UTC</time>."),
            std::string::npos)
      << record;
  EXPECT_NE(record.find("<h4>Your data in this record</h4>\n<p "
                        "class=\"none\">None any more: it was erased on <time "
                        "datetime=\"2025-08-01T12:00:00Z\">"),
            std::string::npos);
  EXPECT_EQ(record.find("<table class=\"fields\">"), std::string::npos);
  EXPECT_NE(record.find("<dt>What happens next</dt><dd>Nothing further."),
            std::string::npos);
}

TEST(SubjectReportHtmlTest, BlockedRecordIsExplainedInPlainWords) {
  SubjectReport report = FixedReport();
  report.records[0].state = RecordState::kBlocked;
  report.records[0].blocked_at = At(2027, 2, 28);
  report.records[0].next_transition = "erase";
  report.records[0].next_deadline = At(2029, 8, 31);
  const std::string html = RenderSubjectReportHtml(report);
  EXPECT_NE(html.find("kept but no longer used; visible only for legal "
                      "reasons"),
            std::string::npos);
  EXPECT_NE(html.find("On <time datetime=\"2029-08-31T12:00:00Z\">31 August "
                      "2029 at 12:00 UTC</time> your personal data in it will "
                      "be erased."),
            std::string::npos);
}

TEST(SubjectReportHtmlTest, AHoldThatOutlastsTheDeadlineIsSaidToPostponeIt) {
  SubjectReport report = FixedReport();
  report.records[0].next_transition = "erase";
  report.records[0].next_deadline = At(2027, 6, 1);  // Hold ends 2028-01-01.
  const std::string html = RenderSubjectReportHtml(report);
  EXPECT_NE(html.find("but a legal hold postpones the erasure until the hold "
                      "is released or ends (<time "
                      "datetime=\"2028-01-01T00:00:00Z\">"),
            std::string::npos);
}

TEST(SubjectReportHtmlTest, AnOverdueDeadlineIsSaidToBeDue) {
  SubjectReport report = FixedReport();
  report.records[0].next_deadline = At(2027, 1, 1);  // Before generated_at.
  const std::string html = RenderSubjectReportHtml(report);
  EXPECT_NE(html.find("Its blocking was due on <time "
                      "datetime=\"2027-01-01T12:00:00Z\">"),
            std::string::npos);
}

TEST(SubjectReportHtmlTest, AccessTableShowsRecipientsPurposeAndErasedRecords) {
  const std::string html = RenderSubjectReportHtml(FixedReport());
  const std::string table =
      Between(html, "<table class=\"history\">", "</table>");
  ASSERT_NE(table, "");
  EXPECT_EQ(Occurrences(table, "<tr>"), 4u);  // Header and three events.

  const std::string officer = RowContaining(table, "Officer Weber");
  EXPECT_NE(officer.find("2 December 2026 at 14:00 UTC"), std::string::npos);
  EXPECT_NE(officer.find("consulted your closed or blocked data"),
            std::string::npos);
  EXPECT_NE(officer.find("name, licence"), std::string::npos);
  EXPECT_NE(officer.find("Overriding public interest (such as legal "
                         "proceedings): &ldquo;Court order 4 C "
                         "12/26&rdquo;"),
            std::string::npos)
      << officer;

  // The recipient's read of the alert erased in 2025 is still listed.
  const std::string recipient = RowContaining(table, "Berlin trade office");
  EXPECT_NE(recipient.find("11 January 2025 at 14:00 UTC"), std::string::npos);
  EXPECT_NE(recipient.find("saw your data"), std::string::npos);
  EXPECT_NE(recipient.find("<a href=\"#record-42\">42</a> &middot; alert"),
            std::string::npos);
  EXPECT_NE(recipient.find("(since erased)"), std::string::npos);
  EXPECT_NE(recipient.find("Routine use; no reason had to be given"),
            std::string::npos);
}

TEST(SubjectReportHtmlTest, AGrantNamesItsRecipientRatherThanData) {
  SubjectReport report = FixedReport();
  report.history.push_back({At(2026, 8, 1, 9, 31),
                            "imi-de-berlin",
                            "Berlin trade office",
                            "grant",
                            17,
                            "request",
                            "ACTIVE",
                            "",
                            "",
                            {"grantee:imi-fr-paris"}});
  const std::string html = RenderSubjectReportHtml(report);
  const std::string row = RowContaining(html, "shared the record with");
  EXPECT_NE(row.find("shared the record with Paris chamber of trades <span "
                     "class=\"id\">(imi-fr-paris)</span>"),
            std::string::npos)
      << row;
  EXPECT_EQ(row.find("grantee:"), std::string::npos);
  EXPECT_NE(row.find("<span class=\"none\">none</span>"), std::string::npos);
}

// A record's field may be named "grantee:..." too: on any event but a
// grant it is data, shown as such, and names no recipient (a review,
// helper-121: "recorded your data (to aud)", the field hidden).
TEST(SubjectReportHtmlTest, AFieldNamedLikeAGranteeIsDataOutsideAGrant) {
  SubjectReport report = FixedReport();
  report.history.push_back({At(2026, 8, 1, 9, 31),
                            "imi-de-berlin",
                            "Berlin trade office",
                            "create",
                            17,
                            "request",
                            "ACTIVE",
                            "",
                            "",
                            {"grantee:imi-fr-paris"}});
  const std::string html = RenderSubjectReportHtml(report);
  const std::string row = RowContaining(html, "09:31");
  EXPECT_EQ(row.find("Paris chamber of trades"), std::string::npos) << row;
  EXPECT_EQ(row.find("(to "), std::string::npos) << row;
  EXPECT_NE(row.find("grantee:imi-fr-paris"), std::string::npos) << row;
}

TEST(SubjectReportHtmlTest, AnEventAboutNoRecordShowsNoRecordNumber) {
  SubjectReport report = FixedReport();
  report.history.push_back({At(2027, 1, 15, 10),
                            "aud-1",
                            "Auditor Roth",
                            "report",
                            0,
                            "",
                            "",
                            "",
                            "",
                            {}});
  const std::string row =
      RowContaining(RenderSubjectReportHtml(report), "Auditor Roth");
  EXPECT_NE(row.find("produced a report on your data</td><td>&mdash;</td>"),
            std::string::npos)
      << row;
}

// Every string field of the report, set to a hostile value.
SubjectReport HostileReport(const std::string& evil) {
  SubjectReport report;
  report.subject_id = evil;
  report.subject_identifier = evil;
  report.principals = {{"p", evil}, {evil, evil}};
  SubjectReport::Record r;
  r.id = 1;
  r.kind = evil;
  r.owner = evil;
  r.recipients = {evil, "p"};
  r.next_deadline = At(2030, 1, 1);
  r.next_transition = evil;
  r.personal = {{evil, evil}};
  r.contests = {{evil, At(2026, 1, 1), evil, evil, {{evil, evil}}}};
  HoldView h;
  h.id = evil;
  h.record_id = 1;
  h.reason = evil;
  h.set_by = evil;
  h.ends_at = At(2031, 1, 1);
  h.released_at = At(2029, 1, 1);
  h.released_by = evil;
  r.holds = {h};
  report.records = {r};
  h.record_id.reset();
  h.subject_id = evil;
  report.subject_holds = {h};
  report.history = {
      {At(2026, 1, 1),
       evil,
       evil,
       evil,
       1,
       evil,
       evil,
       evil,
       evil,
       {evil, "grantee:" + evil}},
      {At(2026, 1, 2), "p", "", "read", 9, evil, evil, evil, "", {}}};
  return report;
}

TEST(SubjectReportHtmlTest, EscapesEveryStringAndNeverEmitsHostileMarkup) {
  const std::string evil =
      "<script>alert(\"x&y\")</script><img src=x "
      "onerror='z'>";
  const std::string html = RenderSubjectReportHtml(HostileReport(evil));
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("alert(\""), std::string::npos);
  EXPECT_EQ(html.find("'z'"), std::string::npos);
  const std::string escaped =
      "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&lt;img src=x "
      "onerror=&#39;z&#39;&gt;";
  // subject id and identifier, principal names and ids (owner, recipients,
  // contest author, hold setter and releaser, history), kind, transition,
  // field names and values, contest statement and corrections, hold ids and
  // reasons, history action, kind, state, purpose, justification, fields.
  EXPECT_GE(Occurrences(html, escaped), 30u);
  // The markup a benign report has, and not one tag more: the hostile
  // strings added no element.
  const std::string benign = RenderSubjectReportHtml(HostileReport("x"));
  EXPECT_EQ(Occurrences(html, "<"), Occurrences(benign, "<"));
}

TEST(SubjectReportHtmlTest, ReplacesControlCharactersAndInvalidUtf8) {
  SubjectReport report;
  report.subject_identifier = std::string("a") + '\0' +
                              "b\x01"
                              "c\x7f"
                              "d\xFF"
                              "e\n";
  const std::string html = RenderSubjectReportHtml(report);
  EXPECT_NE(html.find("<strong>a\uFFFDb\uFFFDc\uFFFDd\uFFFDe\n</strong>"),
            std::string::npos);
  EXPECT_EQ(html.find('\0'), std::string::npos);
}

TEST(SubjectReportHtmlTest, EmptyReportSaysThereIsNothing) {
  const std::string html = RenderSubjectReportHtml(SubjectReport{});
  EXPECT_NE(html.find("We hold no records about you."), std::string::npos);
  EXPECT_NE(html.find("No access to your data has been recorded."),
            std::string::npos);
  EXPECT_EQ(html.find("<table class=\"history\">"), std::string::npos);
  EXPECT_EQ(html.find("<section id=\"holds\">"), std::string::npos);
  EXPECT_EQ(html.substr(html.size() - 8), "</html>\n");
}

TEST(SubjectReportHtmlTest, SingleRecordIsCountedInTheSingular) {
  SubjectReport report = FixedReport();
  report.records.pop_back();
  report.history.resize(1);
  const std::string html = RenderSubjectReportHtml(report);
  EXPECT_NE(html.find("We hold <strong>1 record</strong> about you."),
            std::string::npos);
  EXPECT_NE(html.find("In it, your personal data is still held: 1 closed."),
            std::string::npos);
  EXPECT_NE(html.find("<strong>1 time</strong> by 1 party."),
            std::string::npos);
}

TEST(SubjectReportHtmlTest, PrincipalWithoutAKnownNameIsShownByItsId) {
  SubjectReport report = FixedReport();
  report.records[0].recipients = {"imi-unknown"};
  const std::string html = RenderSubjectReportHtml(report);
  EXPECT_NE(html.find("<dt>Shared with</dt><dd>imi-unknown</dd>"),
            std::string::npos);
}

}  // namespace
}  // namespace custos::testing
