// Auditor.breachScope end to end (issue 15): a real custosd server over a
// real engine on a unix socket, a real Cap'n Proto client.

#include <capnp/any.h>
#include <capnp/ez-rpc.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
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

  // What the subjectReportTo tests start from: authority-a has created
  // `records` records about Anna; "auditor" (role AUDITOR, its token in
  // `auditor_token`) is logged in on the fixture's connection.
  struct ReportCase {
    std::string anna;
    std::string auditor_token;
    std::optional<rpc::Session::Client> auditor_session;
  };
  ReportCase AnnaWithRecords(int records) {
    ReportCase c;
    const std::string a_token = CreatePrincipal("authority-a", rpc::Role::USER);
    c.auditor_token = CreatePrincipal("auditor", rpc::Role::AUDITOR);
    auto a = Login("authority-a", a_token);
    c.auditor_session = Login("auditor", c.auditor_token);
    EXPECT_TRUE(a && c.auditor_session);
    for (int i = 0; i < records; ++i) CreateRecord(*a, "anna@example.org");
    auto admin = engine_->ActorFor("admin");
    EXPECT_TRUE(admin.has_value());
    c.anna = *engine_->FindSubject(*admin, "anna@example.org");
    return c;
  }

  // The "report" events of `subject`'s history, read in process.
  size_t ReportEvents(const std::string& subject) {
    auto auditor = engine_->ActorFor("auditor");
    EXPECT_TRUE(auditor.has_value());
    auto history = engine_->AccessHistory(*auditor, subject, Timestamp::min(),
                                          Timestamp::max(), 0, 1000);
    EXPECT_TRUE(history.has_value()) << history.error().ToString();
    size_t reports = 0;
    for (const AccessEvent& e : history->events)
      reports += e.action == "report";
    return reports;
  }
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

// A client's end of Auditor.subjectReportTo: the chunks as they come; or
// an exception at the first (its text must not come back); or a first
// write that never returns; or each write taken late.
class TestSink final : public rpc::ByteSink::Server {
 public:
  // kHoldFirst: the first write returns once the test fulfils `release`;
  // the others are taken. kSlow: each write returns `delay` after it
  // arrived, on `timer`.
  enum class Mode { kTake, kRefuse, kNeverAnswer, kHoldFirst, kSlow };
  struct Received {
    std::string text;
    size_t chunks = 0;
    size_t largest = 0;
    bool ended = false;
    kj::Own<kj::PromiseFulfiller<void>> release;
  };
  TestSink(Received& received, Mode mode) : received_(received), mode_(mode) {}
  TestSink(Received& received, kj::Timer& timer, kj::Duration delay)
      : received_(received),
        mode_(Mode::kSlow),
        timer_(&timer),
        delay_(delay) {}

 protected:
  kj::Promise<void> write(WriteContext context) override {
    if (mode_ == Mode::kRefuse)
      KJ_FAIL_REQUIRE("disk full under /home/auditor/reports");
    if (mode_ == Mode::kNeverAnswer) return kj::NEVER_DONE;
    kj::Promise<void> taken = kj::READY_NOW;
    if (mode_ == Mode::kHoldFirst && received_.chunks == 0 &&
        received_.release.get() == nullptr) {
      auto paf = kj::newPromiseAndFulfiller<void>();
      received_.release = kj::mv(paf.fulfiller);
      taken = kj::mv(paf.promise);
    }
    if (mode_ == Mode::kSlow) taken = timer_->afterDelay(delay_);
    const auto chunk = context.getParams().getChunk();
    received_.text.append(reinterpret_cast<const char*>(chunk.begin()),
                          chunk.size());
    ++received_.chunks;
    received_.largest = std::max(received_.largest, chunk.size());
    return taken;
  }
  kj::Promise<void> end(EndContext) override {
    received_.ended = true;
    return kj::READY_NOW;
  }

 private:
  TestSink::Received& received_;
  const Mode mode_;
  kj::Timer* timer_ = nullptr;
  kj::Duration delay_ = 0 * kj::SECONDS;
};

// A subject report larger than the server's message limit, which
// subjectReport refuses, arrives whole through subjectReportTo, as JSON
// and as HTML, in chunks of at most a quarter of the limit; each is
// recorded as a report. A sink that throws ends the call with Unavailable,
// without the sink's own text, and the report stays recorded (it was
// produced, and maybe partly received).
TEST_F(ServerBreachTest, AReportLargerThanTheMessageLimitArrivesThroughASink) {
  StopServer();
  server_options_hook_ = [](server::ServerOptions& so) {
    so.max_message_words = 4096;  // 32 KiB.
  };
  StartServer();
  ReportCase c = AnnaWithRecords(200);
  ASSERT_TRUE(c.auditor_session.has_value());
  const std::string& anna = c.anna;
  auto auditor = c.auditor_session->auditorRequest().send().getAuditor();

  auto refused = auditor.subjectReportRequest();
  refused.setSubjectId(anna);
  EXPECT_EQ(StatusOf(refused.send(), wait()).code(),
            StatusCode::kResourceExhausted);

  TestSink::Received json;
  auto to_json = auditor.subjectReportToRequest();
  to_json.setSubjectId(anna);
  to_json.setSink(kj::heap<TestSink>(json, TestSink::Mode::kTake));
  const uint64_t json_bytes = to_json.send().wait(wait()).getBytes();
  EXPECT_TRUE(json.ended);
  EXPECT_EQ(json_bytes, json.text.size());
  EXPECT_GT(json.text.size(), size_t{4096 * 8});
  EXPECT_LE(json.largest, size_t{4096 * 8 / 4});
  EXPECT_GE(json.chunks, json.text.size() / (4096 * 8 / 4));
  const auto document = nlohmann::json::parse(json.text);
  EXPECT_EQ(document["format"], "custos-subject-report");
  EXPECT_EQ(document["subject_id"], anna);
  EXPECT_EQ(document["records"].size(), 200u);

  TestSink::Received html;
  auto to_html = auditor.subjectReportToRequest();
  to_html.setSubjectId(anna);
  to_html.setHtml(true);
  to_html.setSink(kj::heap<TestSink>(html, TestSink::Mode::kTake));
  const uint64_t html_bytes = to_html.send().wait(wait()).getBytes();
  EXPECT_EQ(html_bytes, html.text.size());
  EXPECT_TRUE(html.ended);
  EXPECT_TRUE(html.text.starts_with("<!DOCTYPE html>"))
      << html.text.substr(0, 80);
  EXPECT_TRUE(html.text.ends_with("</html>\n"));
  EXPECT_GT(html.chunks, 1u);

  TestSink::Received none;
  auto to_refusing = auditor.subjectReportToRequest();
  to_refusing.setSubjectId(anna);
  to_refusing.setSink(kj::heap<TestSink>(none, TestSink::Mode::kRefuse));
  const Status sink_failed = StatusOf(to_refusing.send(), wait());
  EXPECT_EQ(sink_failed.ToString(),
            "Unavailable: the subject report could not be written to the "
            "client's sink");
  EXPECT_FALSE(none.ended);

  EXPECT_EQ(ReportEvents(anna), 3u);  // Not the refused subjectReport.

  // No sink, or a subject the store does not hold: refused as
  // subjectReport refuses, before anything is produced or recorded.
  auto no_sink = auditor.subjectReportToRequest();
  no_sink.setSubjectId(anna);
  EXPECT_EQ(StatusOf(no_sink.send(), wait()).ToString(),
            "InvalidArgument: sink is required");
  // A sink pointer that is not a capability (a text): refused as a
  // malformed request, before anything is produced or recorded.
  auto not_a_sink = auditor.subjectReportToRequest();
  not_a_sink.setSubjectId(anna);
  capnp::toAny(rpc::Auditor::SubjectReportToParams::Builder(not_a_sink))
      .getPointerSection()[1]
      .setAs<capnp::Text>("not a capability");
  EXPECT_EQ(StatusOf(not_a_sink.send(), wait()).ToString(),
            "InvalidArgument: malformed request");
  auto unknown_one = auditor.subjectReportRequest();
  unknown_one.setSubjectId("s00");
  const Status unknown_status = StatusOf(unknown_one.send(), wait());
  EXPECT_EQ(unknown_status.code(), StatusCode::kNotFound);
  TestSink::Received nothing;
  auto unknown = auditor.subjectReportToRequest();
  unknown.setSubjectId("s00");
  unknown.setSink(kj::heap<TestSink>(nothing, TestSink::Mode::kTake));
  EXPECT_EQ(StatusOf(unknown.send(), wait()).ToString(),
            unknown_status.ToString());
  EXPECT_EQ(nothing.chunks, 0u);
  EXPECT_EQ(ReportEvents(anna), 3u);
}

// A sink that takes nothing (its first write never returns) ends the call
// with Unavailable once ServerOptions::sink_timeout has passed, here 200
// ms: a client cannot hold the report in the server's memory for ever.
TEST_F(ServerBreachTest, ASinkThatTakesNothingEndsTheCallInTime) {
  StopServer();
  server_options_hook_ = [](server::ServerOptions& so) {
    so.sink_timeout = std::chrono::milliseconds(200);
  };
  StartServer();
  ReportCase c = AnnaWithRecords(1);
  ASSERT_TRUE(c.auditor_session.has_value());
  const std::string& anna = c.anna;
  auto& u = c.auditor_session;
  auto auditor = u->auditorRequest().send().getAuditor();
  TestSink::Received none;
  auto req = auditor.subjectReportToRequest();
  req.setSubjectId(anna);
  req.setSink(kj::heap<TestSink>(none, TestSink::Mode::kNeverAnswer));
  const auto sent = std::chrono::steady_clock::now();
  const Status ended = StatusOf(req.send(), wait());
  EXPECT_EQ(ended.ToString(),
            "Unavailable: the client's sink took no part of the subject "
            "report in time");
  EXPECT_GE(std::chrono::steady_clock::now() - sent,
            std::chrono::milliseconds(200));
  EXPECT_FALSE(none.ended);
  // The connection serves on.
  auto whoami = u->whoAmIRequest().send().wait(wait());
  EXPECT_EQ(std::string(whoami.getPrincipal().getId().cStr()), "auditor");
}

// A sink that takes every chunk within sink_timeout, but so slowly that
// the whole report is not taken within ServerOptions::sink_deadline (here
// 400 ms, chunks of 8 KiB taken 300 ms each), ends the call with
// Unavailable at the deadline: it cannot hold the report's document and
// slot for as long as it likes. The slot is free again at once.
TEST_F(ServerBreachTest, ASinkThatTakesTheReportTooSlowlyEndsAtTheDeadline) {
  StopServer();
  server_options_hook_ = [](server::ServerOptions& so) {
    so.max_message_words = 4096;  // 32 KiB: chunks of 8 KiB.
    so.sink_timeout = std::chrono::seconds(20);
    so.sink_deadline = std::chrono::milliseconds(400);
  };
  StartServer();
  ReportCase c = AnnaWithRecords(200);  // A report of more than 32 KiB.
  ASSERT_TRUE(c.auditor_session.has_value());
  auto auditor = c.auditor_session->auditorRequest().send().getAuditor();
  TestSink::Received slow;
  auto req = auditor.subjectReportToRequest();
  req.setSubjectId(c.anna);
  req.setSink(kj::heap<TestSink>(slow, client_->getIoProvider().getTimer(),
                                 300 * kj::MILLISECONDS));
  const auto sent = std::chrono::steady_clock::now();
  EXPECT_EQ(StatusOf(req.send(), wait()).ToString(),
            "Unavailable: the client's sink did not take the whole subject "
            "report in time");
  const auto took = std::chrono::steady_clock::now() - sent;
  EXPECT_GE(took, std::chrono::milliseconds(400));
  EXPECT_LT(took, std::chrono::seconds(20));
  EXPECT_GE(slow.chunks, 2u);  // Each taken within sink_timeout.
  EXPECT_LT(slow.text.size(), size_t{3 * 8192});  // Two chunks, or three.
  EXPECT_FALSE(slow.ended);
  // The slot is free: the next report on this connection goes through.
  TestSink::Received whole;
  auto again = auditor.subjectReportToRequest();
  again.setSubjectId(c.anna);
  again.setSink(kj::heap<TestSink>(whole, TestSink::Mode::kTake));
  EXPECT_GT(again.send().wait(wait()).getBytes(), size_t{4096 * 8});
  EXPECT_TRUE(whole.ended);
}

// Each report being sent holds its document in the server's memory: one
// at a time per connection, two to one principal over its connections and
// four per server; a second on one connection, a third to one principal,
// or a fifth, is refused with Unavailable before it is produced (no
// report event). Once the sinks holding them take their chunks, the four
// end whole and a report can be sent again.
TEST_F(ServerBreachTest, ReportsSentToSinksAreBoundedPerConnectionAndServer) {
  ReportCase c = AnnaWithRecords(1);
  ASSERT_TRUE(c.auditor_session.has_value());
  const std::string& anna = c.anna;
  std::map<std::string, std::string> tokens{{"auditor", c.auditor_token}};
  for (const char* other : {"auditor-2", "auditor-3"}) {
    tokens[other] = CreatePrincipal(other, rpc::Role::AUDITOR);
  }
  auto auditor = c.auditor_session->auditorRequest().send().getAuditor();
  const auto send_to = [&](rpc::Auditor::Client& to, TestSink::Received& into,
                           TestSink::Mode mode) {
    auto req = to.subjectReportToRequest();
    req.setSubjectId(anna);
    req.setSink(kj::heap<TestSink>(into, mode));
    return req.send();
  };

  TestSink::Received held, second;
  auto holding = send_to(auditor, held, TestSink::Mode::kHoldFirst);
  EXPECT_EQ(StatusOf(send_to(auditor, second, TestSink::Mode::kTake), wait())
                .ToString(),
            "Unavailable: a subject report is being sent on this connection; "
            "try again once it has ended");
  EXPECT_EQ(second.chunks, 0u);

  // Three more connections hold one each: "auditor" a second, two other
  // auditors one each; four in all.
  struct Other {
    std::unique_ptr<capnp::EzRpcClient> client;
    std::unique_ptr<rpc::Auditor::Client> auditor;
  };
  std::vector<Other> others(3);
  std::vector<TestSink::Received> others_held(3);
  std::vector<kj::Promise<void>> others_ended;
  // `principal` logged in on a connection of its own.
  const auto connect = [&](Other& other, const std::string& principal) {
    other.client = std::make_unique<capnp::EzRpcClient>("unix:" + SocketPath());
    auto login = other.client->getMain<rpc::Gateway>().loginRequest();
    login.setPrincipal(principal);
    login.setToken(tokens.at(principal));
    auto session = login.send().wait(wait()).getSession();
    other.auditor = std::make_unique<rpc::Auditor::Client>(
        session.auditorRequest().send().wait(wait()).getAuditor());
    return session;
  };
  const std::vector<std::string> holders{"auditor", "auditor-2", "auditor-3"};
  for (size_t i = 0; i < others.size(); ++i) {
    auto session = connect(others[i], holders[i]);
    others_ended.push_back(
        send_to(*others[i].auditor, others_held[i], TestSink::Mode::kHoldFirst)
            .ignoreResult());
    // Answered after the report's call was taken (one connection's calls
    // are taken in order).
    session.whoAmIRequest().send().wait(wait());
    if (i == 0) {
      // "auditor" is sent two: a third, on a connection of its own, is
      // refused.
      TestSink::Received third;
      Other third_connection;
      connect(third_connection, "auditor");
      EXPECT_EQ(StatusOf(send_to(*third_connection.auditor, third,
                                 TestSink::Mode::kTake),
                         wait())
                    .ToString(),
                "Unavailable: this principal is being sent 2 subject reports; "
                "try again once one has ended");
      EXPECT_EQ(third.chunks, 0u);
    }
  }
  TestSink::Received fifth;
  Other fifth_connection;
  connect(fifth_connection, "auditor-2");
  rpc::Auditor::Client& fifth_auditor = *fifth_connection.auditor;
  EXPECT_EQ(
      StatusOf(send_to(fifth_auditor, fifth, TestSink::Mode::kTake), wait())
          .ToString(),
      "Unavailable: too many subject reports are being sent by this server; "
      "try again once one has ended");

  // Their sinks take their chunks: the four end whole; then one more goes
  // through.
  ASSERT_NE(held.release.get(), nullptr);
  held.release->fulfill();
  EXPECT_GT(holding.wait(wait()).getBytes(), 0u);
  EXPECT_TRUE(held.ended);
  for (size_t i = 0; i < others.size(); ++i) {
    ASSERT_NE(others_held[i].release.get(), nullptr);
    others_held[i].release->fulfill();
    others_ended[i].wait(wait());
    EXPECT_TRUE(others_held[i].ended);
  }
  TestSink::Received whole;
  EXPECT_GT(send_to(fifth_auditor, whole, TestSink::Mode::kTake)
                .wait(wait())
                .getBytes(),
            0u);
  EXPECT_TRUE(whole.ended);
  // "auditor"'s two ended: it is sent two at once again.
  TestSink::Received again_held, again_second;
  auto again = send_to(auditor, again_held, TestSink::Mode::kHoldFirst);
  EXPECT_GT(send_to(*others[0].auditor, again_second, TestSink::Mode::kTake)
                .wait(wait())
                .getBytes(),
            0u);
  // The held one's first chunk may still be on its way (its report is
  // produced on a worker): wait for it, at most 10 s.
  for (int ms = 0; ms < 10'000 && again_held.release.get() == nullptr; ++ms) {
    client_->getIoProvider()
        .getTimer()
        .afterDelay(kj::MILLISECONDS)
        .wait(wait());
  }
  ASSERT_NE(again_held.release.get(), nullptr);
  again_held.release->fulfill();
  EXPECT_GT(again.wait(wait()).getBytes(), 0u);

  EXPECT_EQ(ReportEvents(anna), 7u);  // The four held, and three more.
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
