// The subject report as JSON (report/subject_report_json.h): the schema of
// docs/subject-report.md, exact to the byte, with every string escaped.

#include "report/subject_report_json.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tests/subject_report_fixture.h"

namespace custos::testing {
namespace {

using namespace std::chrono_literals;

// The document as docs/subject-report.md specifies it, byte for byte.
constexpr char kFixedJson[] = R"json({
  "format": "custos-subject-report",
  "version": 2,
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
      "flags": [
        {
          "by": "imi-fr-paris",
          "at": "2026-09-03T16:00:00Z",
          "subject_id": "s0123456789abcdef0123456789abcdef",
          "note": "Licence number looks mistyped."
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
      "flags": [],
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

TEST(SubjectReportJsonTest, FixedReportMatchesTheDocumentedSchemaExactly) {
  EXPECT_EQ(RenderSubjectReportJson(FixedReport()), kFixedJson);
}

TEST(SubjectReportJsonTest, EmptyReportIsAValidDocumentWithEmptyLists) {
  EXPECT_EQ(RenderSubjectReportJson(SubjectReport{}),
            R"json({
  "format": "custos-subject-report",
  "version": 2,
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
  r.flags = {{"b\"", {}, "s\"", "t\""}};
  report.records = {r};
  SubjectReport::Access a;
  a.justification = "j\"";
  a.fields = {"f\""};
  report.history = {a};
  const std::string json = RenderSubjectReportJson(report);
  for (const char* escaped :
       {R"("k\"")", R"("o\"")", R"("r\"")", R"("n\"")", R"("v\"")", R"("j\"")",
        R"("f\"")", R"("b\"")", R"("s\"")", R"("t\"")"}) {
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

}  // namespace
}  // namespace custos::testing
