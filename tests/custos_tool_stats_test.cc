// custos stats end to end (issue 15): the real binary against a real
// custosd-testclock on its unix socket; the IMI table, the JSON numbers,
// the filters and the exit codes (0, 1 refused, 2 usage).

#include <capnp/ez-rpc.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "schema/custos.capnp.h"
#include "tests/custos_tool_runner.h"
#include "tests/custosd_process.h"

namespace custos::testing {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class CustosToolStatsTest : public CustosToolFixture {
 protected:
  void SetUp() override {
    custosd_.Start(CUSTOSD_TESTCLOCK_PATH,
                   {"--test-clock", "2026-08-31T10:00:00Z"});
  }
  // authority-a creates a record of `kind` with attribute country=`country`.
  void Create(const std::string& token, const std::string& kind,
              const std::string& country) {
    ToolRun r = As("authority-a", token,
                   {"record", "create", "--kind", kind, "--attr",
                    std::string("country=").append(country), "--field", "name"},
                   "anna@example.org\nAnna\n");
    ASSERT_EQ(r.exit, 0) << r.err;
  }
};

TEST_F(CustosToolStatsTest, PrintsTheTimeNeededToDealWithARequest) {
  // Idle records close after exactly 3 days (complaint) and 10 days
  // (enquiry); the sweep writes the closures down.
  ASSERT_EQ(Tool({"policy", "set", "complaint", "--close-after", "P3D",
                  "--erase-after", "P1Y", "--history-after", "P5Y"})
                .exit,
            0);
  ASSERT_EQ(Tool({"policy", "set", "enquiry", "--close-after", "P10D",
                  "--erase-after", "P1Y", "--history-after", "P5Y"})
                .exit,
            0);
  const std::string a = AddPrincipal("authority-a", "user");
  const std::string u = AddPrincipal("auditor", "auditor");
  Create(a, "complaint", "AT");
  Create(a, "enquiry", "DE");
  Create(a, "enquiry", "DE");
  custosd_.SetTestClock("2026-09-12T10:00:00Z");
  ToolRun sweep = Tool({"sweep"});
  ASSERT_EQ(sweep.exit, 0) << sweep.err;

  ToolRun json = Tool({"stats", "--json"});
  ASSERT_EQ(json.exit, 0) << json.err;
  const auto s = nlohmann::json::parse(json.out);
  EXPECT_EQ(s["format"], "custos-statistics");
  EXPECT_EQ(s["pending"], 0);  // The sweep folded the index.
  EXPECT_EQ(s["unreadable"], 0);
  EXPECT_EQ(s["total"]["closed"], 3);
  EXPECT_EQ(s["total"]["closed_within"]["3_days"], 1);
  EXPECT_EQ(s["total"]["closed_within"]["1_week"], 0);
  EXPECT_EQ(s["total"]["closed_within"]["2_weeks"], 2);
  ASSERT_EQ(s["kinds"].size(), 2u);
  const auto& complaint = s["kinds"][0];
  EXPECT_EQ(complaint["kind"], "complaint");
  EXPECT_EQ(complaint["records"]["closed"], 1);
  EXPECT_EQ(complaint["records"]["active"], 0);
  ASSERT_EQ(complaint["months"].size(), 2u);
  EXPECT_EQ(complaint["months"][0]["month"], "2026-08");
  EXPECT_EQ(complaint["months"][0]["created"], 1);
  EXPECT_EQ(complaint["months"][1]["month"], "2026-09");
  EXPECT_EQ(complaint["months"][1]["closed"], 1);
  EXPECT_EQ(complaint["attributes"][0]["name"], "country");
  EXPECT_EQ(complaint["attributes"][0]["values"]["AT"], 1);
  EXPECT_EQ(s["kinds"][1]["attributes"][0]["values"]["DE"], 2);

  ToolRun table = Tool({"stats"});
  ASSERT_EQ(table.exit, 0) << table.err;
  EXPECT_TRUE(Contains(table.out, "Time needed to deal with a request"))
      << table.out;
  EXPECT_TRUE(Contains(table.out, "WITHIN 3 DAYS")) << table.out;
  EXPECT_TRUE(Contains(table.out, "1 (100.0%)")) << table.out;
  EXPECT_TRUE(Contains(table.out, "2 (66.7%)")) << table.out;  // "all"
  EXPECT_TRUE(Contains(table.out, "2026-09")) << table.out;

  // An auditor, one kind, September on: created in August, not counted.
  ToolRun filtered = As("auditor", u,
                        {"stats", "--kind", "complaint", "--from", "2026-09",
                         "--to", "2026-12", "--json"});
  ASSERT_EQ(filtered.exit, 0) << filtered.err;
  const auto f = nlohmann::json::parse(filtered.out);
  ASSERT_EQ(f["kinds"].size(), 1u);
  EXPECT_EQ(f["query"]["from"], "2026-09");
  EXPECT_EQ(f["total"]["created"], 0);
  EXPECT_EQ(f["total"]["closed"], 1);
}

// An application may store attribute values that differ only after a NUL
// (the tool's --attr cannot, so they come over RPC here): the tool shows
// them as two values, not one cut at the NUL (the JSON map merged them,
// the later count replacing the earlier).
TEST_F(CustosToolStatsTest, ValuesThatDifferAfterANulStayApart) {
  const std::string a = AddPrincipal("authority-a", "user");
  {
    capnp::EzRpcClient client("unix:" + custosd_.Socket());
    auto login = client.getMain<rpc::Gateway>().loginRequest();
    login.setPrincipal("authority-a");
    std::ifstream in(dir() + "/" + a);
    std::string token;
    std::getline(in, token);
    login.setToken(token);
    auto session = login.send().wait(client.getWaitScope()).getSession();
    const std::vector<std::pair<std::string, int>> values = {
        {std::string("AT\0x", 4), 2}, {std::string("AT\0y", 4), 1}};
    for (const auto& [value, count] : values) {
      for (int i = 0; i < count; ++i) {
        auto req = session.createRequest();
        auto r = req.initRecord();
        r.setKind("request");
        auto attrs = r.initAttributes(1);
        attrs[0].setKey("country");
        attrs[0].setValue(capnp::Text::Reader(value.data(), value.size()));
        auto part = r.initPersonal(1)[0];
        part.setSubjectIdentifier("anna@example.org");
        auto fields = part.initFields(1);
        fields[0].setName("name");
        fields[0].setValue("Anna");
        req.send().wait(client.getWaitScope());
      }
    }
  }
  ToolRun json = Tool({"stats", "--kind", "request", "--json"});
  ASSERT_EQ(json.exit, 0) << json.err;
  const auto s = nlohmann::json::parse(json.out);
  ASSERT_EQ(s["kinds"].size(), 1u) << json.out;
  const auto& values = s["kinds"][0]["attributes"][0]["values"];
  ASSERT_EQ(values.size(), 2u) << json.out;
  EXPECT_EQ(values[std::string("AT\0x", 4)], 2);
  EXPECT_EQ(values[std::string("AT\0y", 4)], 1);
  // The table shows the NUL escaped, one row each.
  ToolRun table = Tool({"stats", "--kind", "request"});
  ASSERT_EQ(table.exit, 0) << table.err;
  EXPECT_TRUE(Contains(table.out, "AT\\x00x")) << table.out;
  EXPECT_TRUE(Contains(table.out, "AT\\x00y")) << table.out;
}

TEST_F(CustosToolStatsTest, RefusesBadMonthsAndCallersWithoutTheRole) {
  EXPECT_EQ(Tool({"stats", "--from", "2026-13"}).exit, 2);
  EXPECT_EQ(Tool({"stats", "--from", "202609"}).exit, 2);
  EXPECT_EQ(Tool({"stats", "--from", "2026-09", "--to", "2026-08"}).exit, 2);
  // Digits only: sscanf took a sign or a space (helper-129).
  for (const char* month : {"+026-09", " 026-09", "2026- 9", "2026-+9"}) {
    ToolRun r = Tool({"stats", "--from", month});
    EXPECT_EQ(r.exit, 2) << month << ": " << r.err;
    EXPECT_NE(r.err.find("takes a month as YYYY-MM"), std::string::npos)
        << r.err;
  }
  EXPECT_EQ(Tool({"stats", "--engine", "--kind", "request"}).exit, 2);
  ToolRun bad_kind = Tool({"stats", "--kind", "Not a kind"});
  EXPECT_EQ(bad_kind.exit, 1);
  EXPECT_TRUE(Contains(bad_kind.err, "InvalidArgument")) << bad_kind.err;
  const std::string a = AddPrincipal("authority-a", "user");
  ToolRun user = As("authority-a", a, {"stats"});
  EXPECT_EQ(user.exit, 1);
  EXPECT_TRUE(Contains(user.err, "PermissionDenied")) << user.err;
}

}  // namespace
}  // namespace custos::testing
