// custos breach scope end to end (issue 15): the real binary against a
// real custosd on its unix socket; JSON, the table, CSV and HTML files, and
// the exit codes (0, 1 refused or failed, 2 usage).

#include <gtest/gtest.h>
#include <time.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/custos_tool_runner.h"
#include "tests/custosd_process.h"

namespace custos::testing {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// `offset` from now, as "YYYY-MM-DDTHH:MM:SSZ" (custosd runs on the real
// clock).
std::string Iso(std::chrono::seconds offset) {
  const time_t t = std::chrono::system_clock::to_time_t(
      std::chrono::system_clock::now() + offset);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

class CustosToolBreachTest : public CustosToolFixture {
 protected:
  void SetUp() override { custosd_.Start(CUSTOSD_PATH); }
  // authority-a creates a record about `identifier` granted to
  // authority-b, and authority-b reads it.
  void DiscloseToB(const std::string& identifier, const std::string& id) {
    ToolRun created = As("authority-a", a_,
                         {"record", "create", "--kind", "request", "--grant",
                          "authority-b", "--field", "name"},
                         identifier + "\nAnna\n");
    ASSERT_EQ(created.exit, 0) << created.err;
    ASSERT_EQ(created.out, id + "\n");
    ToolRun read = As("authority-b", b_, {"record", "get", id});
    ASSERT_EQ(read.exit, 0) << read.err;
  }
  std::vector<std::string> Scope(std::vector<std::string> more) {
    std::vector<std::string> args = {"breach",      "scope",
                                     "--principal", "authority-b",
                                     "--from",      Iso(-std::chrono::hours(1)),
                                     "--to",        Iso(std::chrono::hours(1)),
                                     "--purpose",   "token of b leaked"};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }

  std::string a_, b_, aud_;
};

TEST_F(CustosToolBreachTest, ScopeAsJsonTableCsvAndHtml) {
  a_ = AddPrincipal("authority-a", "user");
  b_ = AddPrincipal("authority-b", "user");
  aud_ = AddPrincipal("auditor-1", "auditor");
  DiscloseToB("anna@example.org", "1");
  DiscloseToB("=cmd|' /C calc'!A0", "2");  // A hostile identifier.

  ToolRun json = As("auditor-1", aud_, Scope({"--json"}));
  ASSERT_EQ(json.exit, 0) << json.err;
  const auto scope = nlohmann::json::parse(json.out);
  EXPECT_EQ(scope["format"], "custos-breach-scope");
  EXPECT_EQ(scope["version"], 1);
  EXPECT_EQ(scope["auditor"], "auditor-1");
  EXPECT_EQ(scope["principals"], nlohmann::json::array({"authority-b"}));
  EXPECT_EQ(scope["purpose"], "token of b leaked");
  EXPECT_EQ(scope["disclosures"], 2);
  EXPECT_EQ(scope["without_identity"], 0);
  EXPECT_EQ(scope["unindexed_until"], nullptr);
  ASSERT_EQ(scope["subjects"].size(), 2u);
  std::vector<std::string> identifiers;
  for (const auto& s : scope["subjects"]) {
    identifiers.push_back(s["identifier"]);
    ASSERT_EQ(s["disclosures"].size(), 1u);
    EXPECT_EQ(s["disclosures"][0]["principal_id"], "authority-b");
    EXPECT_EQ(s["disclosures"][0]["action"], "read");
    EXPECT_EQ(s["fields"], nlohmann::json::array({"identifier", "name"}));
  }
  std::sort(identifiers.begin(), identifiers.end());
  EXPECT_EQ(identifiers, (std::vector<std::string>{"=cmd|' /C calc'!A0",
                                                   "anna@example.org"}));

  ToolRun files = As("auditor-1", aud_,
                     Scope({"--csv", "notify.csv", "--html", "scope.html"}));
  ASSERT_EQ(files.exit, 0) << files.err;
  EXPECT_TRUE(Contains(files.out, "2 people to notify, 2 disclosures"))
      << files.out;
  EXPECT_TRUE(Contains(files.out, "IDENTIFIER")) << files.out;
  EXPECT_TRUE(Contains(files.out, "anna@example.org")) << files.out;
  EXPECT_EQ(ModeOf(dir() + "/notify.csv"), 0600u);
  EXPECT_EQ(ModeOf(dir() + "/scope.html"), 0600u);
  const std::string csv = Slurp(dir() + "/notify.csv");
  EXPECT_EQ(csv.substr(0, csv.find("\r\n")),
            "subject_id,identifier,at,principal_id,principal_name,action,"
            "record_id,record_kind,purpose,justification,fields");
  EXPECT_TRUE(Contains(csv, ",anna@example.org,")) << csv;
  EXPECT_TRUE(Contains(csv,
                       ",authority-b,authority-b,read,1,request,"
                       ",,identifier;name\r\n"))
      << csv;
  // The hostile identifier stays text in a spreadsheet.
  EXPECT_TRUE(Contains(csv, ",'=cmd|' /C calc'!A0,")) << csv;
  EXPECT_TRUE(csv.ends_with("\r\n"));
  const std::string html = Slurp(dir() + "/scope.html");
  EXPECT_TRUE(html.starts_with("<!DOCTYPE html>")) << html;
  EXPECT_TRUE(Contains(html, "<td>anna@example.org</td>")) << html;
  EXPECT_TRUE(Contains(html, "token of b leaked")) << html;
  EXPECT_TRUE(Contains(html, "=cmd|&#39; /C calc&#39;!A0")) << html;
  // Existing files are never overwritten, and the server is not asked.
  ToolRun again = As("auditor-1", aud_, Scope({"--csv", "notify.csv"}));
  EXPECT_EQ(again.exit, 1);
  EXPECT_TRUE(Contains(again.err, "exists")) << again.err;
}

TEST_F(CustosToolBreachTest, BadDatesAreUsageErrorsAndRefusalsExitOne) {
  aud_ = AddPrincipal("auditor-1", "auditor");
  b_ = AddPrincipal("authority-b", "user");
  auto run = [&](std::vector<std::string> args) {
    return As("auditor-1", aud_, args);
  };
  // A date without a zone, a malformed one, a window that ends before it
  // starts, a missing flag: exit 2.
  ToolRun no_zone = run({"breach", "scope", "--principal", "authority-b",
                         "--from", "2027-01-01T00:00:00", "--to",
                         "2027-02-01T00:00:00Z", "--purpose", "x"});
  EXPECT_EQ(no_zone.exit, 2);
  EXPECT_TRUE(Contains(no_zone.err, "--from")) << no_zone.err;
  EXPECT_EQ(run({"breach", "scope", "--principal", "authority-b", "--from",
                 "2027-01-01T00:00:00Z", "--to", "February", "--purpose", "x"})
                .exit,
            2);
  EXPECT_EQ(run({"breach", "scope", "--principal", "authority-b", "--from",
                 "2027-02-01T00:00:00Z", "--to", "2027-01-01T00:00:00Z",
                 "--purpose", "x"})
                .exit,
            2);
  EXPECT_EQ(run({"breach", "scope", "--principal", "authority-b", "--from",
                 "2027-01-01T00:00:00Z", "--to", "2027-02-01T00:00:00Z"})
                .exit,
            2);
  // Refused by the server: an unknown principal, a window too long, a
  // caller without the auditor role.
  ToolRun unknown = run({"breach", "scope", "--principal", "authority-x",
                         "--from", "2027-01-01T00:00:00Z", "--to",
                         "2027-02-01T00:00:00Z", "--purpose", "x"});
  EXPECT_EQ(unknown.exit, 1);
  EXPECT_TRUE(Contains(unknown.err,
                       "NotFound: principal 1 of the breach scope is not "
                       "known"))
      << unknown.err;
  EXPECT_EQ(run({"breach", "scope", "--principal", "authority-b", "--from",
                 "2017-01-01T00:00:00Z", "--to", "2027-02-01T00:00:00Z",
                 "--purpose", "x"})
                .exit,
            1);
  ToolRun admin = Tool({"breach", "scope", "--principal", "authority-b",
                        "--from", "2027-01-01T00:00:00Z", "--to",
                        "2027-02-01T00:00:00Z", "--purpose", "x"});
  EXPECT_EQ(admin.exit, 1);
  EXPECT_TRUE(Contains(admin.err, "PermissionDenied")) << admin.err;
  // Two principals, the flag repeated.
  EXPECT_EQ(run({"breach", "scope", "--principal", "authority-b", "--principal",
                 "auditor-1", "--from", "2027-01-01T00:00:00Z", "--to",
                 "2027-02-01T00:00:00Z", "--purpose", "x", "--json"})
                .exit,
            0);
  ToolRun help = Tool({"breach", "scope", "--help"});
  EXPECT_EQ(help.exit, 0);
  EXPECT_TRUE(Contains(help.out, "example: custos breach scope")) << help.out;
}

}  // namespace
}  // namespace custos::testing
