// The subject report's renderings (DESIGN section 5): the JSON schema of
// docs/subject-report.md, exact to the byte, and the HTML page a person
// reads, which must escape every string it is given.

#include "storage/subject_report.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace custos {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::sys_days;
using namespace std::chrono_literals;

Timestamp At(int y, unsigned m, unsigned d, int h = 12, int min = 0) {
  return Timestamp(sys_days(std::chrono::year(y) / m / d) + hours(h) +
                   minutes(min));
}

constexpr char kSubject[] = "s0123456789abcdef0123456789abcdef";

// A person with one closed request (still held, contested, under a record
// hold) and one alert erased long ago, seen by two authorities and an
// officer.
SubjectReport FixedReport() {
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

// The document as docs/subject-report.md specifies it, byte for byte.
constexpr char kFixedJson[] = R"json({
  "format": "custos-subject-report",
  "version": 1,
  "generated_at": "2027-01-15T10:00:00Z",
  "subject_id": "s0123456789abcdef0123456789abcdef",
  "subject_identifier": "anna@example.org",
  "principals": [
    {
      "id": "imi-de-berlin",
      "name": "Berlin trade office"
    },
    {
      "id": "imi-fr-paris",
      "name": "Paris chamber of trades"
    },
    {
      "id": "off-1",
      "name": "Officer Weber"
    }
  ],
  "records": [
    {
      "id": 17,
      "kind": "request",
      "state": "CLOSED",
      "owner": "imi-de-berlin",
      "recipients": [
        "imi-fr-paris"
      ],
      "created_at": "2026-08-01T09:30:00Z",
      "closed_at": "2026-08-31T12:00:00Z",
      "blocked_at": null,
      "erased_at": null,
      "next_deadline": "2027-02-28T12:00:00Z",
      "next_transition": "block",
      "personal": [
        {
          "name": "name",
          "value": "Anna Schmidt"
        },
        {
          "name": "licence",
          "value": "DE-4711"
        }
      ],
      "contests": [
        {
          "by": "off-1",
          "at": "2026-11-02T08:00:00Z",
          "subject_id": "s0123456789abcdef0123456789abcdef",
          "statement": "The licence number is wrong.",
          "corrected": [
            {
              "name": "licence",
              "value": "DE-4712"
            }
          ]
        }
      ],
      "holds": [
        {
          "id": "h3",
          "record_id": 17,
          "subject_id": null,
          "reason": "Proceedings 4 C 12/26",
          "set_by": "off-1",
          "set_at": "2026-12-01T10:00:00Z",
          "ends_at": "2028-01-01T00:00:00Z",
          "released_at": null,
          "released_by": ""
        }
      ]
    },
    {
      "id": 42,
      "kind": "alert",
      "state": "ERASED",
      "owner": "imi-fr-paris",
      "recipients": [],
      "created_at": "2025-01-10T08:00:00.250000Z",
      "closed_at": "2025-02-01T12:00:00Z",
      "blocked_at": null,
      "erased_at": "2025-08-01T12:00:00Z",
      "next_deadline": null,
      "next_transition": "",
      "personal": [],
      "contests": [],
      "holds": []
    }
  ],
  "subject_holds": [
    {
      "id": "h4",
      "record_id": null,
      "subject_id": "s0123456789abcdef0123456789abcdef",
      "reason": "At the subject's request",
      "set_by": "off-1",
      "set_at": "2026-12-05T00:00:00Z",
      "ends_at": "2027-06-30T00:00:00Z",
      "released_at": "2027-01-10T00:00:00Z",
      "released_by": "off-1"
    }
  ],
  "history": [
    {
      "at": "2025-01-10T08:00:00.250000Z",
      "principal_id": "imi-fr-paris",
      "principal_name": "Paris chamber of trades",
      "action": "create",
      "record_id": 42,
      "record_kind": "alert",
      "record_state": "ACTIVE",
      "purpose": "",
      "justification": "",
      "fields": [
        "name",
        "phone"
      ]
    },
    {
      "at": "2025-01-11T14:00:00Z",
      "principal_id": "imi-de-berlin",
      "principal_name": "Berlin trade office",
      "action": "read",
      "record_id": 42,
      "record_kind": "alert",
      "record_state": "ACTIVE",
      "purpose": "",
      "justification": "",
      "fields": [
        "name",
        "phone"
      ]
    },
    {
      "at": "2026-12-02T14:00:00Z",
      "principal_id": "off-1",
      "principal_name": "Officer Weber",
      "action": "read_restricted",
      "record_id": 17,
      "record_kind": "request",
      "record_state": "CLOSED",
      "purpose": "public_interest",
      "justification": "Court order 4 C 12/26",
      "fields": [
        "name",
        "licence"
      ]
    }
  ]
}
)json";

// The <tr>...</tr> of `html` that contains `needle`, or "" if none does.
std::string RowContaining(const std::string& html, const std::string& needle) {
  const size_t at = html.find(needle);
  if (at == std::string::npos) return "";
  const size_t begin = html.rfind("<tr>", at);
  const size_t end = html.find("</tr>", at);
  if (begin == std::string::npos || end == std::string::npos) return "";
  return html.substr(begin, end + 5 - begin);
}

// The part of `html` between `from` and the next `to` after it.
std::string Between(const std::string& html, const std::string& from,
                    const std::string& to) {
  const size_t begin = html.find(from);
  if (begin == std::string::npos) return "";
  const size_t end = html.find(to, begin + from.size());
  if (end == std::string::npos) return "";
  return html.substr(begin, end - begin);
}

size_t Occurrences(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// ---------------------------------------------------------------------------
// JSON.

TEST(SubjectReportJsonTest, FixedReportMatchesTheDocumentedSchemaExactly) {
  EXPECT_EQ(RenderSubjectReportJson(FixedReport()), kFixedJson);
}

TEST(SubjectReportJsonTest, EmptyReportIsAValidDocumentWithEmptyLists) {
  EXPECT_EQ(RenderSubjectReportJson(SubjectReport{}),
            R"json({
  "format": "custos-subject-report",
  "version": 1,
  "generated_at": "1970-01-01T00:00:00Z",
  "subject_id": "",
  "subject_identifier": "",
  "principals": [],
  "records": [],
  "subject_holds": [],
  "history": []
}
)json");
}

TEST(SubjectReportJsonTest, ErasedRecordHasAnEmptyPersonalList) {
  const std::string json = RenderSubjectReportJson(FixedReport());
  const std::string erased = Between(json, R"("id": 42,)", R"("contests")");
  ASSERT_NE(erased, "");
  EXPECT_NE(erased.find(R"("state": "ERASED")"), std::string::npos);
  EXPECT_NE(erased.find(R"("personal": [],)"), std::string::npos);
  EXPECT_NE(erased.find(R"("erased_at": "2025-08-01T12:00:00Z")"),
            std::string::npos);
}

TEST(SubjectReportJsonTest, EscapesQuotesBackslashesAndControlCharacters) {
  SubjectReport report;
  report.subject_identifier =
      std::string("q\"b\\s/n\nr\rt\tb\bf\fnul") + '\0' + "x\x01y\x1f" + "z\x7f";
  const std::string json = RenderSubjectReportJson(report);
  EXPECT_NE(json.find(R"("subject_identifier": "q\"b\\s/n\nr\rt\tb\bf\fnul)"
                      R"(\u0000x\u0001y\u001fz)"
                      "\x7f\",\n"),
            std::string::npos)
      << json;
}

TEST(SubjectReportJsonTest, EscapesStringsInEveryPosition) {
  SubjectReport report;
  SubjectReport::Record r;
  r.kind = "k\"";
  r.owner = "o\"";
  r.recipients = {"r\""};
  r.personal = {{"n\"", "v\""}};
  report.records = {r};
  SubjectReport::Access a;
  a.justification = "j\"";
  a.fields = {"f\""};
  report.history = {a};
  const std::string json = RenderSubjectReportJson(report);
  for (const char* escaped : {R"("k\"")", R"("o\"")", R"("r\"")", R"("n\"")",
                              R"("v\"")", R"("j\"")", R"("f\"")"}) {
    EXPECT_NE(json.find(escaped), std::string::npos) << escaped;
  }
  // Every quote in the document is a delimiter or escaped: no raw `x""`.
  EXPECT_EQ(json.find("\"\"\""), std::string::npos);
}

TEST(SubjectReportJsonTest, KeepsValidUtf8AsIs) {
  SubjectReport report;
  report.subject_identifier = "Zoë Ødegård 日本 😀";
  EXPECT_NE(RenderSubjectReportJson(report).find(
                "\"subject_identifier\": \"Zoë Ødegård 日本 😀\""),
            std::string::npos);
}

TEST(SubjectReportJsonTest, EscapesJavaScriptLineSeparators) {
  SubjectReport report;
  report.subject_identifier = "a\u2028b\u2029c";
  EXPECT_NE(RenderSubjectReportJson(report).find(
                R"("subject_identifier": "a\u2028b\u2029c")"),
            std::string::npos);
}

TEST(SubjectReportJsonTest, ReplacesInvalidUtf8WithReplacementCharacter) {
  SubjectReport report;
  // A stray continuation byte, a truncated 3-byte sequence followed by
  // ASCII, an overlong "/", an encoded surrogate and a truncated end.
  report.subject_identifier =
      "a\x80"
      "b\xE6\x97"
      "c\xC0\xAF"
      "d\xED\xA0\x80"
      "e\xF0\x9F";
  EXPECT_NE(RenderSubjectReportJson(report).find(
                "\"subject_identifier\": \"a\uFFFDb\uFFFDc\uFFFD\uFFFDd"
                "\uFFFD\uFFFD\uFFFDe\uFFFD\""),
            std::string::npos)
      << RenderSubjectReportJson(report);
}

TEST(SubjectReportJsonTest, TimestampsShowMicrosecondsOnlyWhenNonZero) {
  SubjectReport report;
  report.generated_at = At(2024, 2, 29, 23, 59) + 59s + 5us;
  EXPECT_NE(RenderSubjectReportJson(report).find(
                R"("generated_at": "2024-02-29T23:59:59.000005Z")"),
            std::string::npos);
  report.generated_at = At(2024, 2, 29, 23, 59) + 59s;
  EXPECT_NE(RenderSubjectReportJson(report).find(
                R"("generated_at": "2024-02-29T23:59:59Z")"),
            std::string::npos);
}

TEST(SubjectReportJsonTest, TimestampsBeforeTheEpochRoundDown) {
  SubjectReport report;
  report.generated_at = FromMicros(-1);
  EXPECT_NE(RenderSubjectReportJson(report).find(
                R"("generated_at": "1969-12-31T23:59:59.999999Z")"),
            std::string::npos);
}

TEST(SubjectReportJsonTest, LargeRecordIdsAreExactNumbers) {
  SubjectReport report;
  SubjectReport::Record r;
  r.id = 18446744073709551615ull;
  report.records = {r};
  EXPECT_NE(
      RenderSubjectReportJson(report).find(R"("id": 18446744073709551615,)"),
      std::string::npos);
}

// ---------------------------------------------------------------------------
// HTML.

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
}  // namespace custos
