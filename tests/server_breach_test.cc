// Auditor.breachScope end to end (issue 15): a real custosd server over a
// real engine on a unix socket, a real Cap'n Proto client.

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/server_fixture.h"

namespace custos::testing {
namespace {

class ServerBreachTest : public ServerFixture {
 protected:
  // A breach scope request of `principals` over [from, to).
  static void Fill(rpc::Auditor::BreachScopeParams::Builder req,
                   const std::vector<std::string>& principals, int64_t from,
                   int64_t to, const std::string& purpose) {
    auto ids = req.initPrincipalIds(principals.size());
    for (size_t i = 0; i < principals.size(); ++i) ids.set(i, principals[i]);
    req.setFromMicros(from);
    req.setToMicros(to);
    req.setPurpose(purpose);
  }
  static constexpr int64_t kHour = 3'600'000'000LL;
};

TEST_F(ServerBreachTest, AnAuditorScopesWhatAStolenCredentialReceived) {
  const std::string a_token = CreatePrincipal("authority-a", rpc::Role::USER);
  const std::string b_token = CreatePrincipal("authority-b", rpc::Role::USER);
  const std::string u_token = CreatePrincipal("auditor", rpc::Role::AUDITOR);
  auto a = Login("authority-a", a_token);
  auto b = Login("authority-b", b_token);
  auto u = Login("auditor", u_token);
  ASSERT_TRUE(a && b && u);
  const int64_t t0 = ToMicros(clock_.Now());
  const uint64_t r1 = CreateRecord(*a, "anna@example.org", "authority-b");
  const uint64_t r2 = CreateRecord(*a, "ben@example.org", "authority-b");
  clock_.Advance(std::chrono::hours(1));
  auto get = b->getRequest();
  get.setId(r1);
  get.send().wait(wait());
  clock_.Advance(std::chrono::hours(5));  // Outside the window below.
  auto get2 = b->getRequest();
  get2.setId(r2);
  get2.send().wait(wait());

  auto auditor = u->auditorRequest().send().getAuditor();
  auto req = auditor.breachScopeRequest();
  Fill(req, {"authority-b"}, t0, t0 + 2 * kHour, "token of authority-b leaked");
  auto response = req.send().wait(wait());
  auto scope = response.getScope();
  EXPECT_EQ(scope.getDisclosures(), 1u);
  EXPECT_EQ(scope.getWithoutIdentity(), 0u);
  EXPECT_EQ(scope.getUnindexedUntilMicros(), 0);
  EXPECT_EQ(std::string(scope.getAuditorId().cStr()), "auditor");
  EXPECT_EQ(std::string(scope.getPurpose().cStr()),
            "token of authority-b leaked");
  EXPECT_EQ(scope.getFromMicros(), t0);
  EXPECT_EQ(scope.getToMicros(), t0 + 2 * kHour);
  ASSERT_EQ(scope.getPrincipalIds().size(), 1u);
  ASSERT_EQ(scope.getSubjects().size(), 1u);
  auto anna = scope.getSubjects()[0];
  EXPECT_EQ(std::string(anna.getIdentifier().cStr()), "anna@example.org");
  EXPECT_EQ(std::string(anna.getSubjectId().cStr()).rfind('s', 0), 0u);
  ASSERT_EQ(anna.getRecordIds().size(), 1u);
  EXPECT_EQ(anna.getRecordIds()[0], r1);
  ASSERT_EQ(anna.getFields().size(), 2u);
  EXPECT_EQ(std::string(anna.getFields()[0].cStr()), "identifier");
  EXPECT_EQ(std::string(anna.getFields()[1].cStr()), "name");
  ASSERT_EQ(anna.getDisclosures().size(), 1u);
  auto d = anna.getDisclosures()[0];
  EXPECT_EQ(d.getAtMicros(), t0 + kHour);
  EXPECT_EQ(std::string(d.getPrincipalId().cStr()), "authority-b");
  EXPECT_EQ(std::string(d.getPrincipalName().cStr()), "Name of authority-b");
  EXPECT_EQ(std::string(d.getAction().cStr()), "read");
  EXPECT_EQ(d.getRecordId(), r1);
  EXPECT_EQ(std::string(d.getRecordKind().cStr()), "request");
  EXPECT_EQ(std::string(d.getPurpose().cStr()), "");
  ASSERT_EQ(d.getFields().size(), 2u);
  EXPECT_EQ(std::string(d.getFields()[0].cStr()), "identifier");

  // The act is in Anna's history, with its purpose.
  auto history = auditor.accessHistoryRequest();
  history.setSubjectId(anna.getSubjectId());
  history.setLimit(100);
  auto events = history.send().wait(wait());
  const auto last = events.getEvents()[events.getEvents().size() - 1];
  EXPECT_EQ(std::string(last.getAction().cStr()), "breach_scope");
  EXPECT_EQ(std::string(last.getPrincipalId().cStr()), "auditor");
  EXPECT_EQ(std::string(last.getJustification().cStr()),
            "token of authority-b leaked");
  // And the read, with the record's state then (no purpose was needed).
  bool read_seen = false;
  for (auto e : events.getEvents()) {
    if (std::string(e.getAction().cStr()) != "read") continue;
    read_seen = true;
    EXPECT_EQ(std::string(e.getRecordState().cStr()), "ACTIVE");
    EXPECT_EQ(std::string(e.getPurpose().cStr()), "");
  }
  EXPECT_TRUE(read_seen);
}

// An auditor's answer too large to send (a breach scope, a subject report,
// a history page) is refused before its event is written: no history may
// say the auditor received what never reached it (hostile review,
// helper-125). Before, the events were written and the answer refused
// afterwards, with the same error.
TEST_F(ServerBreachTest, AnAnswerTooLargeToSendIsRefusedWithNothingRecorded) {
  StopServer();
  server_options_hook_ = [](server::ServerOptions& so) {
    so.max_message_words = 4096;  // 32 KiB.
  };
  StartServer();
  const std::string a_token = CreatePrincipal("authority-a", rpc::Role::USER);
  const std::string b_token = CreatePrincipal("authority-b", rpc::Role::USER);
  const std::string u_token = CreatePrincipal("auditor", rpc::Role::AUDITOR);
  auto a = Login("authority-a", a_token);
  auto b = Login("authority-b", b_token);
  auto u = Login("auditor", u_token);
  ASSERT_TRUE(a && b && u);
  const int64_t t0 = ToMicros(clock_.Now());
  // 300 reads: a scope of about 8,000 words (150 fit: 27 words each).
  for (int i = 0; i < 300; ++i) {
    auto get = b->getRequest();
    get.setId(CreateRecord(*a, "anna@example.org", "authority-b"));
    get.send().wait(wait());
  }
  auto admin = engine_->ActorFor("admin");
  ASSERT_TRUE(admin.has_value());
  const std::string anna = *engine_->FindSubject(*admin, "anna@example.org");
  auto auditor = u->auditorRequest().send().getAuditor();

  auto scope = auditor.breachScopeRequest();
  Fill(scope, {"authority-b"}, t0, t0 + kHour, "token of authority-b leaked");
  EXPECT_EQ(StatusOf(scope.send(), wait()).ToString(),
            "ResourceExhausted: the breach scope would be larger than the "
            "server's message limit (custosd --max-message-bytes)");
  auto report = auditor.subjectReportRequest();
  report.setSubjectId(anna);
  EXPECT_EQ(StatusOf(report.send(), wait()).ToString(),
            "ResourceExhausted: the subject report would be larger than the "
            "server's message limit (custosd --max-message-bytes)");
  auto page = auditor.accessHistoryRequest();
  page.setSubjectId(anna);
  page.setLimit(500);
  EXPECT_EQ(StatusOf(page.send(), wait()).ToString(),
            "ResourceExhausted: the history page would be larger than the "
            "server's message limit (custosd --max-message-bytes)");

  auto in_process = engine_->ActorFor("auditor");
  ASSERT_TRUE(in_process.has_value());
  auto history = engine_->AccessHistory(*in_process, anna, Timestamp::min(),
                                        Timestamp::max(), 0, 1000);
  ASSERT_TRUE(history.has_value()) << history.error().ToString();
  std::map<std::string, size_t> actions;
  for (const AccessEvent& e : history->events) ++actions[e.action];
  EXPECT_EQ(actions, (std::map<std::string, size_t>{{"create", 300},
                                                    {"grant", 300},
                                                    {"read", 300},
                                                    {"find_subject", 1}}));
}

TEST_F(ServerBreachTest, BadQueriesAndOtherRolesAreRefused) {
  const std::string a_token = CreatePrincipal("authority-a", rpc::Role::USER);
  const std::string u_token = CreatePrincipal("auditor", rpc::Role::AUDITOR);
  auto a = Login("authority-a", a_token);
  auto u = Login("auditor", u_token);
  ASSERT_TRUE(a && u);
  const int64_t t0 = ToMicros(clock_.Now());
  auto auditor = u->auditorRequest().send().getAuditor();
  auto code = [&](const std::vector<std::string>& principals, int64_t from,
                  int64_t to, const std::string& purpose) {
    auto req = auditor.breachScopeRequest();
    Fill(req, principals, from, to, purpose);
    return StatusOf(req.send(), wait()).code();
  };
  EXPECT_EQ(code({"authority-a"}, t0, t0 + kHour, "leak"), StatusCode::kOk);
  EXPECT_EQ(code({}, t0, t0 + kHour, "leak"), StatusCode::kInvalidArgument);
  std::vector<std::string> many(17, "authority-a");
  EXPECT_EQ(code(many, t0, t0 + kHour, "leak"), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({"authority-a"}, t0 + kHour, t0, "leak"),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({"authority-a"}, t0, t0 + 1831 * 24 * kHour, "leak"),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({"authority-a"}, t0, t0 + kHour, ""),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({"Bad Id"}, t0, t0 + kHour, "leak"),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({"authority-x"}, t0, t0 + kHour, "leak"),
            StatusCode::kNotFound);
  // A user gets no Auditor facet.
  EXPECT_EQ(StatusOf(a->auditorRequest().send(), wait()).code(),
            StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace custos::testing
