// The custos tool against a peer that is not a well-behaved custosd: a
// real Cap'n Proto server on a real unix socket, in a child process, that
// answers the tool's paged listings with a cursor that does not move on.
// The tool must stop with a failure, not loop and grow its list for ever
// (review helper-129).

#include <capnp/ez-rpc.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "schema/custos.capnp.h"
#include "tests/custos_tool_runner.h"

namespace custos::testing {
namespace {

// Every page it answers says the next one starts after 5.
// It is also a custosd from before subjectReportTo (Unimplemented): its
// reports come in one answer.
class StuckAuditor final : public rpc::Auditor::Server {
 protected:
  kj::Promise<void> accessHistory(AccessHistoryContext context) override {
    context.getResults().setNextAfterSeq(5);
    return kj::READY_NOW;
  }
  kj::Promise<void> subjectReport(SubjectReportContext context) override {
    context.getResults().setJson("{\"format\": \"older server\"}\n");
    return kj::READY_NOW;
  }
  kj::Promise<void> subjectReportHtml(
      SubjectReportHtmlContext context) override {
    context.getResults().setHtml("<p>older server</p>\n");
    return kj::READY_NOW;
  }
};

class StuckSession final : public rpc::Session::Server {
 protected:
  kj::Promise<void> auditor(AuditorContext context) override {
    context.getResults().setAuditor(kj::heap<StuckAuditor>());
    return kj::READY_NOW;
  }
  kj::Promise<void> dueSoon(DueSoonContext context) override {
    context.getResults().setNextAfterRecordId(5);
    return kj::READY_NOW;
  }
  // A policy whose period does not parse.
  kj::Promise<void> listPolicies(ListPoliciesContext context) override {
    auto policy = context.getResults().initPolicies(1)[0];
    policy.setKind("request");
    policy.setEraseAfter("one year");
    policy.setHistoryAfter("P5Y");
    return kj::READY_NOW;
  }
  // An error whose text would retitle a terminal's window.
  kj::Promise<void> whoAmI(WhoAmIContext) override {
    return KJ_EXCEPTION(FAILED, "Internal: \x1b]0;owned\x07 gone");
  }
};

class AnyLoginGateway final : public rpc::Gateway::Server {
 protected:
  kj::Promise<void> login(LoginContext context) override {
    context.getResults().setSession(kj::heap<StuckSession>());
    return kj::READY_NOW;
  }
};

class CustosToolPeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custos-peer-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/peer.sock";
    {
      std::ofstream token(dir_ + "/peer.token");
      token << "any\n";
    }
    ASSERT_EQ(chmod((dir_ + "/peer.token").c_str(), 0600), 0);
    // The peer runs in a child of its own (its own event loop), started
    // before this process has threads.
    peer_ = fork();
    ASSERT_GE(peer_, 0);
    if (peer_ == 0) {
      capnp::EzRpcServer server(kj::heap<AnyLoginGateway>(), "unix:" + socket_);
      kj::NEVER_DONE.wait(server.getWaitScope());
      _exit(0);
    }
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!std::filesystem::exists(socket_)) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  void TearDown() override {
    if (peer_ > 0) {
      kill(peer_, SIGKILL);
      waitpid(peer_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }

  // The tool against the peer (killed after 10 s if still running: exit
  // -1).
  ToolRun Tool(std::vector<std::string> args) {
    args.insert(args.begin(), {"--addr", "unix:" + socket_, "--principal",
                               "auditor-1", "--token-file", "peer.token"});
    return RunTool(dir_, args, "", {}, /*keep_input_open=*/true);
  }

  std::string dir_, socket_;
  pid_t peer_ = -1;
};

// A custosd from before subjectReportTo answers it Unimplemented: the
// tool asks for the report in one answer instead, JSON and HTML.
TEST_F(CustosToolPeerTest, AnOlderServersReportComesInOneAnswer) {
  ToolRun json = Tool({"subject", "report", "s00", "--out", "r.json"});
  ASSERT_EQ(json.exit, 0) << json.err;
  EXPECT_EQ(Slurp(dir_ + "/r.json"), "{\"format\": \"older server\"}\n");
  ToolRun html = Tool({"subject", "report", "s00", "--html"});
  ASSERT_EQ(html.exit, 0) << html.err;
  EXPECT_EQ(html.out, "<p>older server</p>\n");
}

TEST_F(CustosToolPeerTest, AHistoryCursorThatDoesNotMoveOnStopsTheTool) {
  ToolRun r = Tool({"subject", "history", "s00"});
  EXPECT_EQ(r.exit, 1) << r.err;
  EXPECT_NE(r.err.find("the server's next page does not move on"),
            std::string::npos)
      << r.err;
}

TEST_F(CustosToolPeerTest, ADueSoonCursorThatDoesNotMoveOnStopsTheTool) {
  ToolRun r = Tool({"due-soon"});
  EXPECT_EQ(r.exit, 1) << r.err;
  EXPECT_NE(r.err.find("the server's next page does not move on"),
            std::string::npos)
      << r.err;
}

// A period the server sent that does not parse is the server's failure
// (exit 1), not a usage error (helper-129: exit 2, naming a flag).
TEST_F(CustosToolPeerTest, AStoredPeriodThatDoesNotParseIsAFailure) {
  ToolRun r = Tool(
      {"policy", "deadlines", "request", "--closed", "2026-08-31T12:00:00Z"});
  EXPECT_EQ(r.exit, 1) << r.err;
  EXPECT_NE(r.err.find("the server's policy has a period (eraseAfter) that "
                       "is not an ISO 8601 duration"),
            std::string::npos)
      << r.err;
}

// A server's error text is printed as printable text (helper-129: it went
// to the terminal as sent).
TEST_F(CustosToolPeerTest, AServersErrorTextCannotActOnTheTerminal) {
  ToolRun r = Tool({"whoami"});
  EXPECT_EQ(r.exit, 1) << r.err;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\x07'), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\\x1b]0;owned\\x07 gone"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace custos::testing
