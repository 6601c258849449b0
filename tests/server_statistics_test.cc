// Auditor.statistics and Admin.statistics end to end (issue 15): a real
// custosd server over a real engine on a unix socket, a real Cap'n Proto
// client.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "server/errors.h"
#include "storage/statistics.h"
#include "tests/server_fixture.h"

namespace custos::testing {
namespace {

using std::chrono::days;
using std::chrono::seconds;

class ServerStatisticsTest : public ServerFixture {
 protected:
  static std::vector<uint64_t> Within(rpc::MonthStatistics::Reader m) {
    std::vector<uint64_t> out;
    for (uint64_t n : m.getClosedWithin()) out.push_back(n);
    return out;
  }
  // The error of a statistics call with these filters, as a StatusCode.
  StatusCode Refusal(rpc::Auditor::Client& auditor, const std::string& kind,
                     uint32_t from, uint32_t to) {
    auto req = auditor.statisticsRequest();
    req.setKind(kind);
    req.setFromMonth(from);
    req.setToMonth(to);
    try {
      req.send().wait(wait());
      return StatusCode::kOk;
    } catch (const kj::Exception& e) {
      return server::FromException(e).code();
    }
  }
};

TEST_F(ServerStatisticsTest, AuditorsAndAdminsGetTheImiTableAndTheCounts) {
  auto a = NewSession("authority-a", rpc::Role::USER);
  auto u = NewSession("auditor", rpc::Role::AUDITOR);
  const uint32_t created_month = MonthOf(ToMicros(clock_.Now()));
  const uint64_t r1 = CreateRecord(a, "anna@example.org");
  const uint64_t r2 = CreateRecord(a, "ben@example.org");
  clock_.Advance(days(3));  // Exactly three days: within 3 days.
  auto close1 = a.closeRequest();
  close1.setId(r1);
  close1.send().wait(wait());
  clock_.Advance(seconds(1));  // Three days and a second: within 1 week.
  auto close2 = a.closeRequest();
  close2.setId(r2);
  close2.send().wait(wait());
  auto erase = a.eraseRequest();
  erase.setId(r2);
  erase.send().wait(wait());

  auto auditor = u.auditorRequest().send().getAuditor();
  auto response = auditor.statisticsRequest().send().wait(wait());
  auto s = response.getStatistics();
  EXPECT_EQ(s.getGeneratedAtMicros(), ToMicros(clock_.Now()));
  ASSERT_EQ(s.getKinds().size(), 1u);
  auto k = s.getKinds()[0];
  EXPECT_EQ(std::string(k.getKind().cStr()), "request");
  EXPECT_EQ(k.getActive(), 0u);
  EXPECT_EQ(k.getClosed(), 1u);
  EXPECT_EQ(k.getBlocked(), 0u);
  EXPECT_EQ(k.getErased(), 1u);  // Erased, still counted.
  EXPECT_EQ(k.getTotal().getCreated(), 2u);
  EXPECT_EQ(k.getTotal().getClosed(), 2u);
  EXPECT_EQ(k.getTotal().getErased(), 1u);
  EXPECT_EQ(Within(k.getTotal()), (std::vector<uint64_t>{1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(Within(s.getTotal()), (std::vector<uint64_t>{1, 1, 0, 0, 0, 0}));
  ASSERT_GE(k.getMonths().size(), 1u);
  EXPECT_EQ(k.getMonths()[0].getMonth(), created_month);
  ASSERT_EQ(k.getAttributes().size(), 1u);
  EXPECT_EQ(std::string(k.getAttributes()[0].getName().cStr()), "country");
  ASSERT_EQ(k.getAttributes()[0].getValues().size(), 1u);
  EXPECT_EQ(k.getAttributes()[0].getValues()[0].getRecords(), 2u);
  // 2 creations, 2 closures, an erasure; nothing folded yet.
  EXPECT_EQ(s.getPending(), 5u);
  EXPECT_EQ(s.getUnreadable(), 0u);

  // The admin's facet gives the same answer.
  auto admin_session = AdminSession();
  auto admin = AdminFacet(admin_session);
  auto from_admin = admin.statisticsRequest().send().wait(wait());
  auto t = from_admin.getStatistics();
  ASSERT_EQ(t.getKinds().size(), 1u);
  EXPECT_EQ(t.getKinds()[0].getErased(), 1u);
  EXPECT_EQ(Within(t.getTotal()), Within(s.getTotal()));

  // A filter that matches nothing answers with nothing.
  auto none = auditor.statisticsRequest();
  none.setKind("alert");
  EXPECT_EQ(none.send().wait(wait()).getStatistics().getKinds().size(), 0u);
}

TEST_F(ServerStatisticsTest, RefusesFiltersOutOfBounds) {
  auto u = NewSession("auditor", rpc::Role::AUDITOR);
  auto auditor = u.auditorRequest().send().getAuditor();
  EXPECT_EQ(Refusal(auditor, "", 202613, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(Refusal(auditor, "", 202609, 202608), StatusCode::kInvalidArgument);
  EXPECT_EQ(Refusal(auditor, std::string(65, 'a'), 0, 0),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Refusal(auditor, "Request!", 0, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(Refusal(auditor, "request", 202601, 202612), StatusCode::kOk);
}

}  // namespace
}  // namespace custos::testing
