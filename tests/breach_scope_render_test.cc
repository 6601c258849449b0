// The renderings of a breach scope (report/breach_scope.h): exact CSV,
// and HTML that escapes everything it is given.

#include <gtest/gtest.h>

#include <string>

#include "report/breach_scope.h"

namespace custos {
namespace {

// 2027-03-01T09:00:00Z plus `seconds`.
Timestamp At(int64_t seconds) {
  return FromMicros((1'803'891'600LL + seconds) * 1'000'000);
}

BreachScope AScope() {
  BreachScope scope;
  scope.generated_at = At(7200);
  scope.auditor_id = "auditor-1";
  scope.principal_ids = {"authority-b"};
  scope.from = At(0);
  scope.to = At(3600);
  scope.purpose = "token <stolen> & leaked";
  scope.disclosures = 2;
  scope.without_identity = 1;
  BreachSubject anna;
  anna.subject_id = "s01";
  anna.identifier = "Example, Anna \"A.\"";
  anna.record_ids = {7};
  anna.fields = {"born", "name"};
  BreachDisclosure read;
  read.seq = 42;
  read.at = At(60);
  read.principal_id = "authority-b";
  read.principal_name = "Authority B";
  read.action = "read_restricted";
  read.record_id = 7;
  read.record_kind = "request";
  read.purpose = PurposeKind::kPublicInterest;
  read.justification = "court\ncase";
  read.fields = {"name", "born"};
  anna.disclosures.push_back(read);
  BreachDisclosure report = read;
  report.seq = 43;
  report.at = At(120);
  report.action = "report";
  report.record_id = 0;
  report.record_kind = "";
  report.purpose.reset();
  report.justification = "-1+1";
  report.fields = {};
  anna.disclosures.push_back(report);
  scope.subjects.push_back(anna);
  return scope;
}

TEST(BreachScopeRenderTest, CsvQuotesWhatNeedsItAndDefusesFormulas) {
  EXPECT_EQ(RenderBreachScopeCsv(AScope()),
            "subject_id,identifier,at,principal_id,principal_name,action,"
            "record_id,record_kind,purpose,justification,fields\r\n"
            "s01,\"Example, Anna \"\"A.\"\"\",2027-03-01T09:01:00Z,"
            "authority-b,Authority B,read_restricted,7,request,"
            "public_interest,\"court\ncase\",name;born\r\n"
            "s01,\"Example, Anna \"\"A.\"\"\",2027-03-01T09:02:00Z,"
            "authority-b,Authority B,report,,,,'-1+1,\r\n");
}

TEST(BreachScopeRenderTest, CsvIsValidUtf8AndHasAHeaderEvenWhenEmpty) {
  BreachScope scope = AScope();
  scope.subjects[0].identifier = "bad \xff byte";
  scope.subjects[0].disclosures.resize(1);
  const std::string csv = RenderBreachScopeCsv(scope);
  EXPECT_NE(csv.find(",bad \xEF\xBF\xBD byte,"), std::string::npos) << csv;
  scope.subjects.clear();
  EXPECT_EQ(RenderBreachScopeCsv(scope),
            "subject_id,identifier,at,principal_id,principal_name,action,"
            "record_id,record_kind,purpose,justification,fields\r\n");
}

TEST(BreachScopeRenderTest, HtmlEscapesEverythingAndSaysWhatItCannotName) {
  BreachScope scope = AScope();
  scope.subjects[0].identifier = "<script>alert(1)</script>";
  scope.unindexed_until = At(30);
  const std::string html = RenderBreachScopeHtml(scope);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"),
            std::string::npos);
  EXPECT_NE(html.find("token &lt;stolen&gt; &amp; leaked"), std::string::npos);
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(html.find("<dt>People to notify</dt><dd>1</dd>"),
            std::string::npos);
  EXPECT_NE(html.find("<dt>Disclosures to people since erased</dt><dd>1 "),
            std::string::npos);
  EXPECT_NE(html.find("indexed disclosures only from 2027-03-01T09:00:30Z"),
            std::string::npos);
  EXPECT_NE(html.find("public_interest: court\ncase"), std::string::npos);
  EXPECT_NE(html.find("<td>&mdash;</td>"), std::string::npos);
  EXPECT_TRUE(html.ends_with("</html>\n"));
  scope.unindexed_until.reset();
  EXPECT_EQ(RenderBreachScopeHtml(scope).find("class=\"warn\""),
            std::string::npos);
}

}  // namespace
}  // namespace custos
