// custos due-soon end to end (issue 15, "Reminders"): the real binary
// against a real custosd-testclock (its clock moved by the test) on its unix
// socket; the table, JSON, the server's reminder flags, and the exit codes
// (0, 1 refused, 2 usage).

#include <gtest/gtest.h>

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

class CustosToolRemindersTest : public CustosToolFixture {
 protected:
  void Start(std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"--test-clock", "2027-01-01T00:00:00Z"};
    args.insert(args.end(), more.begin(), more.end());
    custosd_.Start(CUSTOSD_TESTCLOCK_PATH, args);
    host_ = AddPrincipal("host", "user");
    ToolRun created = As("host", host_,
                         {"record", "create", "--kind", "request", "--attr",
                          "case=C-17", "--field", "name"},
                         "anna@example.org\nAnna\n");
    ASSERT_EQ(created.exit, 0) << created.err;
    ASSERT_EQ(created.out, "1\n");
  }
  std::string host_;
};

TEST_F(CustosToolRemindersTest, ListsARequestOpenTooLongAsTableAndJson) {
  Start();
  ToolRun none = As("host", host_, {"due-soon", "--json"});
  ASSERT_EQ(none.exit, 0) << none.err;
  EXPECT_EQ(nlohmann::json::parse(none.out)["reminders"],
            nlohmann::json::array());

  custosd_.SetTestClock("2027-01-31T00:00:00Z");  // Open 30 days.
  ToolRun json = As("host", host_, {"due-soon", "--json"});
  ASSERT_EQ(json.exit, 0) << json.err;
  const auto reminders = nlohmann::json::parse(json.out)["reminders"];
  ASSERT_EQ(reminders.size(), 1u);
  EXPECT_EQ(reminders[0]["record_id"], 1);
  EXPECT_EQ(reminders[0]["kind"], "request");
  EXPECT_EQ(reminders[0]["state"], "active");
  EXPECT_EQ(reminders[0]["reason"], "openTooLong");
  EXPECT_EQ(reminders[0]["due_at"], "2027-01-31T00:00:00Z");
  EXPECT_EQ(reminders[0]["created_at"], "2027-01-01T00:00:00Z");
  EXPECT_EQ(reminders[0]["attributes"]["case"], "C-17");
  EXPECT_EQ(reminders[0]["delivered_at"], nullptr);
  EXPECT_FALSE(Contains(json.out, "Anna"));  // No personal data.
  EXPECT_FALSE(Contains(json.out, "anna@example.org"));

  ToolRun table = As("host", host_, {"due-soon"});
  ASSERT_EQ(table.exit, 0) << table.err;
  EXPECT_TRUE(Contains(table.out, "REASON")) << table.out;
  EXPECT_TRUE(Contains(table.out, "openTooLong")) << table.out;
  EXPECT_TRUE(Contains(table.out, "2027-01-31T00:00:00Z")) << table.out;

  ToolRun longer =
      As("host", host_, {"due-soon", "--open-too-long", "P31D", "--json"});
  ASSERT_EQ(longer.exit, 0) << longer.err;
  EXPECT_EQ(nlohmann::json::parse(longer.out)["reminders"].size(), 0u);
}

TEST_F(CustosToolRemindersTest, TheServersDefaultsComeFromItsFlags) {
  Start({"--reminder-open-too-long", "P10D"});
  custosd_.SetTestClock("2027-01-11T00:00:00Z");
  ToolRun json = As("host", host_, {"due-soon", "--json"});
  ASSERT_EQ(json.exit, 0) << json.err;
  const auto reminders = nlohmann::json::parse(json.out)["reminders"];
  ASSERT_EQ(reminders.size(), 1u);
  EXPECT_EQ(reminders[0]["due_at"], "2027-01-11T00:00:00Z");
}

TEST_F(CustosToolRemindersTest, ABadPeriodIsRefusedNamingItsFlag) {
  Start();
  ToolRun r = As("host", host_, {"due-soon", "--warn-before", "P2Y"});
  EXPECT_EQ(r.exit, 1);
  EXPECT_TRUE(Contains(r.err,
                       "InvalidArgument: warnBefore must be a period of at "
                       "most P1Y"))
      << r.err;
  ToolRun admin = Tool({"due-soon"});  // The admin has no user role.
  EXPECT_EQ(admin.exit, 1);
  EXPECT_TRUE(Contains(admin.err, "PermissionDenied")) << admin.err;
}

}  // namespace
}  // namespace custos::testing
