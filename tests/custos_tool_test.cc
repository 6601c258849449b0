// The custos tool end to end (issue 13): the real binary against a real
// custosd on its unix socket, checking exit codes (0, 1 refused or failed,
// 2 usage), what it prints, and what it refuses.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "tests/custos_tool_runner.h"
#include "tests/custosd_process.h"

namespace custos::testing {
namespace {

class CustosToolTest : public CustosToolFixture {
 protected:
  void SetUp() override { custosd_.Start(CUSTOSD_PATH); }
};

// For a test that verifies erasure right after an erasing call: erased
// bytes compacted inside each call (custosd's default leaves them to its
// timer, within 360 s: docs/operations.md, "Erasure compaction").
class CustosToolInlineErasureTest : public CustosToolFixture {
 protected:
  void SetUp() override {
    custosd_.Start(CUSTOSD_PATH, {"--erasure-compaction-delay", "0"});
  }
};

TEST_F(CustosToolTest, PrincipalsAreAddedListedGivenNewTokensAndRevoked) {
  ToolRun who = Tool({"whoami", "--json"});
  ASSERT_EQ(who.exit, 0) << who.err;
  EXPECT_EQ(nlohmann::json::parse(who.out)["id"], "admin");

  const std::string a = AddPrincipal("authority-a", "user");
  EXPECT_EQ(ModeOf(dir() + "/" + a), 0600u);
  ToolRun list = Tool({"principal", "list", "--json"});
  ASSERT_EQ(list.exit, 0) << list.err;
  const auto principals = nlohmann::json::parse(list.out);
  ASSERT_EQ(principals.size(), 2u);
  EXPECT_EQ(principals[1]["id"], "authority-a");
  EXPECT_EQ(principals[1]["roles"], nlohmann::json::array({"user"}));
  // Asked a page of one at a time, the listing is the same.
  ToolRun paged = Tool({"principal", "list", "--page-size", "1", "--json"});
  ASSERT_EQ(paged.exit, 0) << paged.err;
  EXPECT_EQ(nlohmann::json::parse(paged.out), principals);
  EXPECT_EQ(Tool({"principal", "list", "--page-size", "1001"}).exit, 2);
  // The table has the same rows, aligned under a header.
  ToolRun table = Tool({"principal", "list"});
  EXPECT_NE(table.out.find("ID           NAME"), std::string::npos)
      << table.out;

  EXPECT_EQ(As("authority-a", a, {"whoami"}).exit, 0);
  // An existing file is never overwritten, and the server is not asked.
  ToolRun exists =
      Tool({"principal", "rotate-token", "authority-a", "--out", a});
  EXPECT_EQ(exists.exit, 1);
  EXPECT_NE(exists.err.find("exists"), std::string::npos) << exists.err;
  EXPECT_EQ(As("authority-a", a, {"whoami"}).exit, 0);

  // A file that cannot be created fails the command before the server is
  // asked: the token is not rotated (before, it was rotated and the new
  // one lost), and a principal is not created without its token.
  ToolRun nowhere = Tool({"principal", "rotate-token", "authority-a", "--out",
                          "no-such-dir/a.token"});
  EXPECT_EQ(nowhere.exit, 1);
  EXPECT_NE(nowhere.err.find("cannot create no-such-dir/a.token"),
            std::string::npos)
      << nowhere.err;
  EXPECT_EQ(As("authority-a", a, {"whoami"}).exit, 0);
  ToolRun unmade = Tool({"principal", "add", "authority-c", "--role", "user",
                         "--out", "no-such-dir/c.token"});
  EXPECT_EQ(unmade.exit, 1);
  ToolRun listed = Tool({"principal", "list", "--json"});
  EXPECT_EQ(nlohmann::json::parse(listed.out).size(), 2u) << listed.out;

  ASSERT_EQ(
      Tool({"principal", "rotate-token", "authority-a", "--out", "new.token"})
          .exit,
      0);
  ToolRun old = As("authority-a", a, {"whoami"});
  EXPECT_EQ(old.exit, 1);
  EXPECT_NE(old.err.find("refused"), std::string::npos) << old.err;
  EXPECT_EQ(As("authority-a", "new.token", {"whoami"}).exit, 0);

  ASSERT_EQ(Tool({"principal", "revoke", "authority-a"}).exit, 0);
  ToolRun revoked = As("authority-a", "new.token", {"whoami"});
  EXPECT_EQ(revoked.exit, 1);
  // One answer for a wrong token, an unknown and a revoked principal.
  ToolRun unknown = As("nobody", "new.token", {"whoami"});
  EXPECT_EQ(unknown.exit, 1);
  EXPECT_EQ(revoked.err.substr(revoked.err.find("refused")),
            unknown.err.substr(unknown.err.find("refused")));
}

TEST_F(CustosToolTest, TokensAreReadOnlyFromPrivateFiles) {
  const std::string a = AddPrincipal("authority-a", "user");
  chmod((dir() + "/" + a).c_str(), 0644);
  ToolRun open_file = As("authority-a", a, {"whoami"});
  EXPECT_EQ(open_file.exit, 1);
  EXPECT_NE(open_file.err.find("readable by group or others"),
            std::string::npos)
      << open_file.err;
  ToolRun missing = As("authority-a", "missing.token", {"whoami"});
  EXPECT_EQ(missing.exit, 1);
  EXPECT_NE(missing.err.find("missing.token"), std::string::npos);
  // There is no flag that takes a token.
  ToolRun flag = Tool({"--token", "x", "whoami"});
  EXPECT_EQ(flag.exit, 2);
  // A file whose lines end in CR LF logs in (the CR was taken as part of
  // the token: "refused"; helper-129).
  chmod((dir() + "/" + a).c_str(), 0600);
  std::string token;
  std::getline(std::ifstream(dir() + "/" + a), token);
  {
    std::ofstream crlf(dir() + "/crlf.token");
    crlf << token << "\r\n";
  }
  chmod((dir() + "/crlf.token").c_str(), 0600);
  ToolRun with_cr = As("authority-a", "crlf.token", {"whoami"});
  EXPECT_EQ(with_cr.exit, 0) << with_cr.err;
  // A FIFO no one writes is refused, not waited on for ever (the runner
  // kills a tool still running after 10 s: exit -1).
  ASSERT_EQ(mkfifo((dir() + "/fifo.token").c_str(), 0600), 0);
  ToolRun fifo = RunTool(
      dir(),
      {"--principal", "authority-a", "--token-file", "fifo.token", "whoami"},
      "", {}, /*keep_input_open=*/true);
  EXPECT_EQ(fifo.exit, 1) << fifo.err;
  EXPECT_NE(fifo.err.find("fifo.token is not a regular file"),
            std::string::npos)
      << fifo.err;
  // A file far longer than a token is refused.
  {
    std::ofstream big(dir() + "/big.token");
    big << std::string(10000, 'x');
  }
  chmod((dir() + "/big.token").c_str(), 0600);
  ToolRun too_big = As("authority-a", "big.token", {"whoami"});
  EXPECT_EQ(too_big.exit, 1);
  EXPECT_NE(too_big.err.find("longer than 4096 bytes"), std::string::npos)
      << too_big.err;
}

// Plain TCP to an address that is not loopback is refused before the
// token file is read: Cap'n Proto sends the login with the bootstrap, so
// the token would cross the network in clear (helper-129). And a server
// that accepts and never answers does not hang the tool.
TEST_F(CustosToolTest, ATokenNeverGoesInClearOffLoopbackNorWaitsForEver) {
  ToolRun remote = Tool({"--addr", "192.0.2.1:7457", "whoami"});
  EXPECT_EQ(remote.exit, 2) << remote.err;
  EXPECT_NE(remote.err.find("is not loopback: give --cacert"),
            std::string::npos)
      << remote.err;
  ToolRun named = Tool({"--addr", "127.example.org:7457", "whoami"});
  EXPECT_EQ(named.exit, 2) << named.err;
  // Loopback in plain TCP is allowed (nothing listens there: exit 1).
  ToolRun local = Tool({"--addr", "127.0.0.1:1", "whoami"});
  EXPECT_EQ(local.exit, 1) << local.err;
  EXPECT_NE(local.err.find("cannot connect to 127.0.0.1:1"), std::string::npos)
      << local.err;

  // A socket that listens and never accepts: the connection is made (the
  // backlog takes it) and the login is never answered.
  const std::string path = dir() + "/silent.sock";
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(sa.sun_path));
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  ToolRun silent = RunTool(
      dir(), {"--addr", "unix:" + path, "--timeout", "1", "whoami"}, "", {},
      /*keep_input_open=*/true);
  close(fd);
  EXPECT_EQ(silent.exit, 1) << silent.err;
  EXPECT_NE(silent.err.find("login failed: no answer from unix:" + path +
                            " within 1 s (--timeout)"),
            std::string::npos)
      << silent.err;
}

TEST_F(CustosToolTest, ADownServerIsNamedAndExitsOne) {
  ToolRun r = Tool({"--addr", "unix:" + dir() + "/no.sock", "whoami"});
  EXPECT_EQ(r.exit, 1);
  EXPECT_NE(r.err.find("cannot connect to unix:" + dir() + "/no.sock"),
            std::string::npos)
      << r.err;
  // The environment works as the flag does.
  ToolRun env =
      Tool({"whoami"}, "", {"CUSTOS_ADDR=unix:" + dir() + "/no.sock"});
  EXPECT_EQ(env.exit, 1);
  EXPECT_NE(env.err.find("no.sock"), std::string::npos) << env.err;
  // A usage error is one whether or not the server is up: exit 2, before
  // the tool connects.
  const std::string down = "unix:" + dir() + "/no.sock";
  ToolRun ahead =
      Tool({"--addr", down, "sweep", "--as-of", "2030-01-01T00:00:00Z"});
  EXPECT_EQ(ahead.exit, 2) << ahead.err;
  EXPECT_NE(ahead.err.find("dry runs only"), std::string::npos) << ahead.err;
  ToolRun what = Tool({"--addr", down, "verify"});
  EXPECT_EQ(what.exit, 2) << what.err;
  EXPECT_NE(what.err.find("give --chain, --erasure or both"), std::string::npos)
      << what.err;
  // Each checked before the connection (they were found only after it,
  // exiting 1 with "cannot connect").
  const std::vector<std::pair<std::vector<std::string>, std::string>> usage = {
      {{"backup", "relative/dir"},
       "dir: an absolute path on the server's host"},
      {{"backup", "verify", "relative/dir"},
       "dir: an absolute path on the server's host"},
      {{"backup", "kit", "kit"}, "path: an absolute path on the server's host"},
      {{"keys", "rotate-master", "--key-file", "new.key"},
       "--key-file: an absolute path on the server's host"},
      {{"record", "get", "1", "--purpose", "curiosity"},
       "--purpose: proof-of-exchange, subject-consent or public-interest"},
      {{"record", "get", "1", "--justification", "because"},
       "--justification goes with --purpose"},
      {{"due-soon", "--warn-before", "banana"},
       "--warn-before: expected an ISO 8601 duration"},
      {{"due-soon", "--open-too-long", "30 days"},
       "--open-too-long: expected an ISO 8601 duration"},
      {{"keys", "rotate-kek", "--batch", "0"},
       "--batch: Value 0 not in range 1 to 10000"},
      {{"keys", "rotate-kek", "--batch", "10001"},
       "--batch: Value 10001 not in range 1 to 10000"},
  };
  for (const auto& [args, message] : usage) {
    std::vector<std::string> argv = {"--addr", down};
    argv.insert(argv.end(), args.begin(), args.end());
    ToolRun refused = Tool(argv);
    EXPECT_EQ(refused.exit, 2) << args[0] << ": " << refused.err;
    EXPECT_NE(refused.err.find(message), std::string::npos) << refused.err;
  }
}

TEST_F(CustosToolTest, UsageErrorsExitTwoAndChangeNothing) {
  auto usage = [&](std::vector<std::string> args, const std::string& want,
                   const std::string& input = "") {
    ToolRun r = Tool(args, input);
    EXPECT_EQ(r.exit, 2) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find(want), std::string::npos) << r.err;
  };
  usage({"sweep", "--dry-run", "--as-of", "2030-01-01"}, "with a zone");
  // An identifier typed as an argument by mistake is not repeated
  // (helper-129: CLI11 printed it back).
  {
    ToolRun typed = Tool({"subject", "find", "anna@example.org"});
    EXPECT_EQ(typed.exit, 2) << typed.err;
    EXPECT_EQ(typed.err.find("anna@"), std::string::npos) << typed.err;
    EXPECT_NE(typed.err.find("read from standard input"), std::string::npos)
        << typed.err;
  }
  usage({"sweep", "--dry-run", "--as-of", "2030-02-30T00:00:00Z"},
        "with a zone");
  usage({"sweep", "--as-of", "2030-01-01T00:00:00Z"}, "dry runs only");
  usage({"principal", "add", "x", "--role", "boss", "--out", "x.token"},
        "--role");
  usage({"record", "create", "--kind", "request", "--field", "name"},
        "--field needs the subject's identifier on standard input");
  // Personal data never on the command line, where the process list
  // shows it: a value given there is refused.
  usage({"record", "create", "--kind", "request", "--field", "name=Anna"},
        "--field takes a field name; its value is read from standard input");
  usage({"record", "create", "--kind", "request", "--field", "name", "--field",
         "address"},
        "--field address: no value on standard input",
        "anna@example.org\nAnna\n");
  // More values piped than fields named: refused, not silently dropped (a
  // walkthrough, helper-112, lost the third line).
  usage({"record", "create", "--kind", "request", "--field", "name"},
        "standard input holds more lines than --field names",
        "anna@example.org\nAnna\nVienna\n");
  usage({"record", "create", "--kind", "request", "--attr", "country"},
        "name=value");
  usage({"subject", "shred", "s00", "nothing"},
        "unexpected arguments (not repeated here)");
  // A mistyped flag is named (nothing personal has its shape), and only
  // it: the other unexpected word is not repeated.
  {
    ToolRun typo = Tool({"sweep", "--histroy-examined", "5"});
    EXPECT_EQ(typo.exit, 2) << typo.err;
    EXPECT_NE(typo.err.find("custos: unknown option: --histroy-examined;"),
              std::string::npos)
        << typo.err;
    EXPECT_EQ(typo.err.find("5"), std::string::npos) << typo.err;
    ToolRun mixed =
        Tool({"subject", "shred", "s00", "--x-ray", "anna@example.org"});
    EXPECT_EQ(mixed.exit, 2) << mixed.err;
    EXPECT_NE(mixed.err.find("unknown option: --x-ray;"), std::string::npos)
        << mixed.err;
    EXPECT_EQ(mixed.err.find("anna@"), std::string::npos) << mixed.err;
    // A short one is not named: a value glued to it ("-nAnna") is kept
    // with it.
    ToolRun glued = Tool({"subject", "shred", "s00", "-nAnna"});
    EXPECT_EQ(glued.exit, 2) << glued.err;
    EXPECT_EQ(glued.err.find("Anna"), std::string::npos) << glued.err;
    EXPECT_NE(glued.err.find("not repeated here"), std::string::npos)
        << glued.err;
  }
  usage({"subject", "shred", "s00"}, "--yes");
  // A count only: "-5" and an overflow used to run an unbounded sweep.
  for (const char* count : {"-5", "ten", "010", "0x10"}) {
    usage({"sweep", "--max-records", count}, "a decimal number is expected");
  }
  usage({"sweep", "--max-records", "99999999999999999999"},
        "a decimal number of at most 12 digits is expected");
  // Ids too: CLI11 read "0x2" as record 2 and "010" as record 8.
  usage({"record", "get", "18446744073709551616"},
        "a decimal number of at most 19 digits is expected");
  for (const char* id : {"0x2", "010", "-1"}) {
    usage({"record", "get", id}, "a decimal number is expected");
    usage(
        {"hold", "set", id, "--reason", "r", "--until", "2030-01-01T00:00:00Z"},
        "a decimal number is expected");
  }
  usage({"frobnicate"}, "A subcommand is required");
  EXPECT_FALSE(std::filesystem::exists(dir() + "/x.token"));
  ToolRun list = Tool({"principal", "list", "--json"});
  EXPECT_EQ(nlohmann::json::parse(list.out).size(), 1u);
  // --help on a verb shows its example, and exits 0.
  ToolRun help = Tool({"hold", "set", "--help"});
  EXPECT_EQ(help.exit, 0);
  EXPECT_NE(help.out.find("example: custos hold set"), std::string::npos);
}

// A host program that writes the lines and waits for the id before it
// closes its end of the pipe is answered: the check for lines beyond the
// fields named waits for the end of input at most kInputEndWait
// (helper-114: it read to the end, so such a program waited for ever).
TEST_F(CustosToolTest, ARecordCreateDoesNotWaitForTheEndOfAnOpenPipe) {
  const std::string a = AddPrincipal("authority-a", "user");
  ToolRun created =
      RunTool(dir(),
              {"--principal", "authority-a", "--token-file", a, "record",
               "create", "--kind", "request", "--field", "name"},
              "anna@example.org\nAnna\n", {},
              /*keep_input_open=*/true);
  EXPECT_EQ(created.exit, 0) << created.err;
  EXPECT_EQ(created.out, "1\n");
  // A line that comes a moment after the others, the pipe still open, is
  // still seen: refused, nothing stored (helper-115).
  ToolRun late =
      RunTool(dir(),
              {"--principal", "authority-a", "--token-file", a, "record",
               "create", "--kind", "request", "--field", "name"},
              "ben@example.org\nBen\n", {},
              /*keep_input_open=*/true, "Vienna\n");
  EXPECT_EQ(late.exit, 2) << late.out;
  EXPECT_NE(late.err.find("standard input holds more lines than --field"),
            std::string::npos)
      << late.err;
}

TEST_F(CustosToolTest, ASubjectsRecordsHistoryReportHoldAndShred) {
  const std::string a = AddPrincipal("authority-a", "user");
  const std::string off = AddPrincipal("officer-1", "officer");
  const std::string aud = AddPrincipal("auditor-1", "auditor");
  ToolRun created = As("authority-a", a,
                       {"record", "create", "--kind", "request", "--attr",
                        "country=AT", "--field", "name"},
                       "anna@example.org\nAnna\n");
  ASSERT_EQ(created.exit, 0) << created.err;
  EXPECT_EQ(created.out, "1\n");
  ToolRun got = As("authority-a", a, {"record", "get", "1", "--json"});
  ASSERT_EQ(got.exit, 0) << got.err;
  const auto record = nlohmann::json::parse(got.out);
  EXPECT_EQ(record["parts"][0]["fields"]["name"], "Anna");
  EXPECT_EQ(record["state"], "active");
  EXPECT_EQ(record["closed_at"], nullptr);
  // Every moment of the record is shown (a review, helper-116: blocked and
  // erased times, which an officer's view of an erased record is about,
  // were left out).
  EXPECT_EQ(record["updated_at"], record["created_at"]);
  EXPECT_EQ(record["blocked_at"], nullptr);
  EXPECT_EQ(record["erased_at"], nullptr);
  ToolRun text = As("authority-a", a, {"record", "get", "1"});
  ASSERT_EQ(text.exit, 0) << text.err;
  EXPECT_NE(text.out.find("\n  created " +
                          record["created_at"].get<std::string>() + "\n"),
            std::string::npos)
      << text.out;

  ToolRun found = Tool({"subject", "find"}, "anna@example.org\n");
  ASSERT_EQ(found.exit, 0) << found.err;
  const std::string subject = found.out.substr(0, found.out.size() - 1);
  EXPECT_EQ(subject, record["parts"][0]["subject_id"]);
  // An auditor finds the subject too (it answers access requests).
  ToolRun by_auditor =
      As("auditor-1", aud, {"subject", "find"}, "anna@example.org\n");
  ASSERT_EQ(by_auditor.exit, 0) << by_auditor.err;
  EXPECT_EQ(by_auditor.out, found.out);
  ToolRun nobody = Tool({"subject", "find"}, "ben@example.org\n");
  EXPECT_EQ(nobody.exit, 1);
  EXPECT_NE(nobody.err.find("NotFound"), std::string::npos) << nobody.err;
  // A file of identifiers piped in: refused, not answered for its first
  // line (walkthrough helper-117).
  ToolRun two = Tool({"subject", "find"}, "anna@example.org\nben@x.org\n");
  EXPECT_EQ(two.exit, 2);
  EXPECT_EQ(two.out, "");
  EXPECT_EQ(two.err,
            "custos: standard input holds more than one line: subject find "
            "reads one identifier\n");
  // A line past any value a server takes is refused as it arrives (each
  // piece was searched again from the line's start: minutes for 16 MiB).
  ToolRun huge =
      Tool({"subject", "find"}, std::string(16 * 1024 * 1024 + 4096, 'a'));
  EXPECT_EQ(huge.exit, 2);
  EXPECT_EQ(huge.err,
            "custos: a line of standard input is longer than 16 MiB: nothing "
            "was sent\n");

  ToolRun history =
      As("auditor-1", aud, {"subject", "history", subject, "--json"});
  ASSERT_EQ(history.exit, 0) << history.err;
  const auto events = nlohmann::json::parse(history.out);
  // The two reads (JSON and text), then the admin's and the auditor's
  // lookups of Anna.
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0]["action"], "create");
  EXPECT_EQ(events[2]["action"], "read");
  EXPECT_EQ(events[3]["action"], "find_subject");
  EXPECT_EQ(events[3]["principal_id"], "admin");
  EXPECT_EQ(events[3]["record_id"], 0);
  EXPECT_EQ(events[4]["action"], "find_subject");
  EXPECT_EQ(events[4]["principal_id"], "auditor-1");
  EXPECT_EQ(events[1]["action"], "read");
  EXPECT_EQ(events[1]["principal_id"], "authority-a");
  EXPECT_EQ(events[1]["fields"], nlohmann::json::array({"identifier", "name"}));
  EXPECT_EQ(events[1]["record_state"], "ACTIVE");
  EXPECT_EQ(events[1]["purpose"], "");  // The owner's read needs none.
  EXPECT_EQ(events[1]["justification"], "");
  // The table shows the record's state then, and "-" for an event about
  // no record (helper-129: no STATE column, and a lookup's RECORD read 0).
  ToolRun history_table = As("auditor-1", aud, {"subject", "history", subject});
  ASSERT_EQ(history_table.exit, 0) << history_table.err;
  EXPECT_NE(history_table.out.find("STATE"), std::string::npos)
      << history_table.out;
  EXPECT_NE(history_table.out.find("ACTIVE"), std::string::npos)
      << history_table.out;
  EXPECT_TRUE(std::regex_search(history_table.out,
                                std::regex("find_subject +- +- +- ")))
      << history_table.out;
  // Only auditors: the admin is refused the facet.
  ToolRun refused = Tool({"subject", "history", subject});
  EXPECT_EQ(refused.exit, 1);
  EXPECT_NE(refused.err.find("PermissionDenied"), std::string::npos);

  ToolRun report = As("auditor-1", aud,
                      {"subject", "report", subject, "--out", "anna.json"});
  ASSERT_EQ(report.exit, 0) << report.err;
  EXPECT_EQ(ModeOf(dir() + "/anna.json"), 0600u);
  EXPECT_NE(Slurp(dir() + "/anna.json").find("Anna"), std::string::npos);

  ToolRun hold = As("officer-1", off,
                    {"hold", "set", "1", "--reason", "court case 12/2027",
                     "--until", "2099-01-01T01:00:00+01:00", "--json"});
  ASSERT_EQ(hold.exit, 0) << hold.err;
  const auto h = nlohmann::json::parse(hold.out);
  EXPECT_EQ(h["ends_at"], "2099-01-01T00:00:00Z");
  ToolRun holds = As("officer-1", off, {"hold", "list", "--json"});
  ASSERT_EQ(nlohmann::json::parse(holds.out).size(), 1u);
  // A second hold, and the two listed a page of one at a time.
  ToolRun hold2 = As("officer-1", off,
                     {"hold", "set", "1", "--reason", "appeal 3/2027",
                      "--until", "2098-01-01T00:00:00Z", "--json"});
  ASSERT_EQ(hold2.exit, 0) << hold2.err;
  ToolRun both = As("officer-1", off, {"hold", "list", "--json"});
  ToolRun both_paged =
      As("officer-1", off, {"hold", "list", "--page-size", "1", "--json"});
  ASSERT_EQ(both_paged.exit, 0) << both_paged.err;
  ASSERT_EQ(nlohmann::json::parse(both.out).size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(both_paged.out),
            nlohmann::json::parse(both.out));
  ASSERT_EQ(As("officer-1", off,
               {"hold", "release",
                nlohmann::json::parse(hold2.out)["id"].get<std::string>()})
                .exit,
            0);
  ToolRun no_record = As("officer-1", off,
                         {"hold", "set", "99", "--reason", "x", "--until",
                          "2099-01-01T00:00:00Z"});
  EXPECT_EQ(no_record.exit, 1);
  EXPECT_NE(no_record.err.find("NotFound"), std::string::npos);
  ASSERT_EQ(
      As("officer-1", off, {"hold", "release", h["id"].get<std::string>()})
          .exit,
      0);
  EXPECT_EQ(nlohmann::json::parse(
                As("officer-1", off, {"hold", "list", "--json"}).out)
                .size(),
            0u);

  ToolRun sweep = Tool({"sweep", "--dry-run", "--json"});
  ASSERT_EQ(sweep.exit, 0) << sweep.err;
  EXPECT_EQ(nlohmann::json::parse(sweep.out)["erased"], 0);
  ToolRun chain = As("auditor-1", aud, {"verify", "--chain", "--json"});
  ASSERT_EQ(chain.exit, 0) << chain.err;
  EXPECT_EQ(nlohmann::json::parse(chain.out)["chain"]["ok"], true);

  ASSERT_EQ(Tool({"subject", "shred", subject, "--yes"}).exit, 0);
  // Its only subject shredded, the record is erased: gone for its owner.
  ToolRun after = As("authority-a", a, {"record", "get", "1", "--json"});
  EXPECT_EQ(after.exit, 1);
  EXPECT_NE(after.err.find("NotFound"), std::string::npos) << after.err;
  EXPECT_EQ(after.out, "");
}

// Policies, their deadlines (exact under Regulation 1182/71: a period of
// months ending on a day the month lacks ends on its last day), keys,
// verification, backup and the offline restore.
TEST_F(CustosToolInlineErasureTest,
       PoliciesKeysVerificationBackupAndOfflineRestore) {
  ToolRun deadlines = Tool({"policy", "deadlines", "request", "--closed",
                            "2026-08-31T12:00:00Z", "--json"});
  ASSERT_EQ(deadlines.exit, 0) << deadlines.err;
  const auto d = nlohmann::json::parse(deadlines.out);
  EXPECT_EQ(d["blocked"], "2027-02-28T12:00:00Z");
  EXPECT_EQ(d["erased"], "2029-08-31T12:00:00Z");
  EXPECT_EQ(d["history_pruned"], "2034-08-31T12:00:00Z");
  ToolRun alert = Tool({"policy", "deadlines", "alert", "--closed",
                        "2027-08-31T00:00:00+02:00", "--json"});
  ASSERT_EQ(alert.exit, 0) << alert.err;
  EXPECT_EQ(nlohmann::json::parse(alert.out)["blocked"], nullptr);
  EXPECT_EQ(nlohmann::json::parse(alert.out)["erased"], "2028-02-29T22:00:00Z");
  ToolRun unknown = Tool(
      {"policy", "deadlines", "complaint", "--closed", "2027-01-01T00:00:00Z"});
  EXPECT_EQ(unknown.exit, 1);
  EXPECT_EQ(unknown.err, "custos: NotFound: no policy for kind complaint\n");
  EXPECT_EQ(Tool({"policy", "set", "complaint", "--erase-after", "one year",
                  "--history-after", "P5Y"})
                .exit,
            2);
  ASSERT_EQ(Tool({"policy", "set", "complaint", "--close-after", "P30D",
                  "--erase-after", "P1Y", "--history-after", "P5Y"})
                .exit,
            0);
  ToolRun policies = Tool({"policy", "list", "--json"});
  bool complaint = false;
  for (const auto& p : nlohmann::json::parse(policies.out)) {
    complaint =
        complaint || (p["kind"] == "complaint" && p["close_after"] == "P30D");
    // A set time for the policy set, none for the shipped defaults.
    if (p["kind"] == "complaint") {
      EXPECT_TRUE(p["set_at"].is_string()) << policies.out;
    } else {
      EXPECT_TRUE(p["set_at"].is_null()) << policies.out;
    }
  }
  EXPECT_TRUE(complaint) << policies.out;
  ToolRun table = Tool({"policy", "list"});
  ASSERT_EQ(table.exit, 0) << table.err;
  EXPECT_NE(table.out.find("SET AT"), std::string::npos) << table.out;

  const std::string a = AddPrincipal("authority-a", "user");
  ASSERT_EQ(As("authority-a", a,
               {"record", "create", "--kind", "request", "--field", "name"},
               "anna@example.org\nAnna\n")
                .exit,
            0);
  const std::string subject =
      Tool({"subject", "find"}, "anna@example.org\n").out;
  ASSERT_FALSE(subject.empty());
  EXPECT_EQ(
      Tool({"subject", "rekey", subject.substr(0, subject.size() - 1)}).exit,
      0);
  ToolRun rotated = Tool({"keys", "rotate-kek", "--json"});
  ASSERT_EQ(rotated.exit, 0) << rotated.err;
  EXPECT_EQ(nlohmann::json::parse(rotated.out)["kek_version"], 2);
  EXPECT_EQ(Tool({"keys", "versions", "--json"}).out, "[\n  2\n]\n");

  // A master key rotation: the tool says to keep the old key while
  // backups from before the rotation may be restored (it said to destroy
  // it, which would have made every such backup unreadable).
  const std::string new_key = dir() + "/master.key.new";
  {
    std::ofstream f(new_key);
    f << "custos-master-key-v1\n" << std::string(64, 'a') << "\n";
  }
  std::filesystem::permissions(
      new_key,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  ToolRun master = Tool({"keys", "rotate-master", "--key-file", new_key});
  ASSERT_EQ(master.exit, 0) << master.err;
  EXPECT_NE(master.out.find("keep the old one until the last backup taken "
                            "before this rotation has aged out"),
            std::string::npos)
      << master.out;
  EXPECT_EQ(master.out.find("destroy the old one"), std::string::npos);

  ToolRun verified = Tool({"verify", "--chain", "--erasure", "--json"});
  ASSERT_EQ(verified.exit, 0) << verified.err;
  const auto v = nlohmann::json::parse(verified.out);
  EXPECT_EQ(v["chain"]["ok"], true);
  EXPECT_EQ(v["erasure"]["found"], 0);
  EXPECT_EQ(Tool({"verify"}).exit, 2);
  // The last long call (verify's second), as custos progress shows it.
  ToolRun progress = Tool({"progress", "--json"});
  ASSERT_EQ(progress.exit, 0) << progress.err;
  const auto p = nlohmann::json::parse(progress.out);
  EXPECT_EQ(p["operation"], "verifyErasure");
  EXPECT_EQ(p["running"], false);
  EXPECT_EQ(p["phase"], "files");
  EXPECT_GT(p["total"].get<uint64_t>(), 0u);
  EXPECT_EQ(p["done"], p["total"]);
  EXPECT_EQ(p["outcome"], "OK");
  // verify's first, on the reading lane.
  EXPECT_EQ(p["reading"]["operation"], "verifyChain");
  EXPECT_EQ(p["reading"]["outcome"], "OK");
  ToolRun progress_text = Tool({"progress"});
  EXPECT_NE(progress_text.out.find("verifyErasure: ended, started "),
            std::string::npos)
      << progress_text.out;
  EXPECT_NE(progress_text.out.find(": OK\n  files: "), std::string::npos)
      << progress_text.out;
  EXPECT_NE(progress_text.out.find("reading lane: verifyChain: ended, "),
            std::string::npos)
      << progress_text.out;

  EXPECT_EQ(Tool({"backup", "relative/dir"}).exit, 2);
  const std::string backup = dir() + "/backup-1", kit = dir() + "/kit-1";
  ToolRun made = Tool({"backup", backup, "--json"});
  ASSERT_EQ(made.exit, 0) << made.err;
  const std::string id = nlohmann::json::parse(made.out)["backup_id"];
  ToolRun checked = Tool({"backup", "verify", backup, "--json"});
  ASSERT_EQ(checked.exit, 0) << checked.err;
  EXPECT_EQ(nlohmann::json::parse(checked.out)["backup_id"], id);
  ASSERT_EQ(Tool({"backup", "kit", kit}).exit, 0);
  ToolRun kit_again = Tool({"backup", "kit", kit});
  EXPECT_EQ(kit_again.exit, 1);  // Never overwritten.
  EXPECT_NE(kit_again.err.find("AlreadyExists: " +
                               std::filesystem::path(kit).filename().string() +
                               " exists: it is written only as a new file"),
            std::string::npos)
      << kit_again.err;

  // Offline, with no server: into a new directory, then served. The
  // backup and the kit were made after the rotation: the old master key
  // opens neither, the new one both.
  custosd_.Stop();
  ToolRun old_key =
      Tool({"restore", backup, "--kit", kit, "--data-dir", dir() + "/restored",
            "--master-key-file", dir() + "/custos-master.key"});
  EXPECT_EQ(old_key.exit, 1);
  EXPECT_NE(old_key.err.find("the master key does not open this restore kit"),
            std::string::npos)
      << old_key.err;
  ToolRun restored = Tool({"restore", backup, "--kit", kit, "--data-dir",
                           dir() + "/restored", "--master-key-file", new_key});
  ASSERT_EQ(restored.exit, 0) << restored.err;
  // It says up to when the kit re-applies erasures.
  EXPECT_NE(restored.out.find("restore kit written 20"), std::string::npos)
      << restored.out;
  EXPECT_NE(restored.out.find(": erasures made after it are not in it and "
                              "are not re-applied (only what falls due by "
                              "the schedule is, by the restored store's "
                              "sweeps)\n"),
            std::string::npos)
      << restored.out;
  ToolRun again = Tool({"restore", backup, "--kit", kit, "--data-dir",
                        dir() + "/restored", "--master-key-file", new_key});
  EXPECT_EQ(again.exit, 1);
  EXPECT_NE(again.err.find("FailedPrecondition"), std::string::npos)
      << again.err;
}

// A second review: stdin written with Windows line ends made
// "anna@example.org\r" a subject of its own, which `subject find` with the
// plain identifier missed (an access request answered incomplete).
TEST_F(CustosToolTest, InputWithWindowsLineEndsIsTheSameSubject) {
  const std::string a = AddPrincipal("authority-a", "user");
  ToolRun created =
      As("authority-a", a,
         {"record", "create", "--kind", "request", "--field", "name"},
         "anna@example.org\r\nAnna\r\n");
  ASSERT_EQ(created.exit, 0) << created.err;
  ToolRun found = Tool({"subject", "find"}, "anna@example.org\n");
  EXPECT_EQ(found.exit, 0) << found.err;
  ToolRun again = Tool({"subject", "find"}, "anna@example.org\r\n");
  EXPECT_EQ(again.out, found.out);
  ToolRun got = As("authority-a", a, {"record", "get", "1", "--json"});
  ASSERT_EQ(got.exit, 0) << got.err;
  EXPECT_EQ(nlohmann::json::parse(got.out)["parts"][0]["fields"]["name"],
            "Anna")
      << got.out;
}

// The bash completion is generated from the parser's own definitions.
// What users stored reaches an admin's terminal escaped: no control
// sequence of a stored value is written raw (JSON escapes them anyway).
TEST_F(CustosToolTest, StoredControlCharactersAreEscapedOnTheTerminal) {
  const std::string a = AddPrincipal("authority-a", "user");
  // An OSC retitling the window, and a right-to-left override.
  const std::string title =
      std::string("x\x1b]0;owned\x07y\xe2\x80\xaez\xd8\x9c.");
  ToolRun created = As("authority-a", a,
                       {"record", "create", "--kind", "request", "--attr",
                        "note=" + title, "--field", "name"},
                       std::string("anna@example.org\nA\x1b[2Jnna\xc2\x9b\n"));
  ASSERT_EQ(created.exit, 0) << created.err;
  ToolRun got = As("authority-a", a, {"record", "get", "1"});
  ASSERT_EQ(got.exit, 0) << got.err;
  EXPECT_EQ(got.out.find('\x1b'), std::string::npos) << got.out;
  EXPECT_EQ(got.out.find('\x07'), std::string::npos) << got.out;
  EXPECT_NE(
      got.out.find("note = x\\x1b]0;owned\\x07y\\xe2\\x80\\xaez\\xd8\\x9c."),
      std::string::npos)
      << got.out;
  EXPECT_NE(got.out.find("name = A\\x1b[2Jnna\\xc2\\x9b"), std::string::npos)
      << got.out;
  // The JSON keeps the value itself, every control escaped: the C1 CSI
  // and the override too, which the dump left raw (helper-129).
  ToolRun json = As("authority-a", a, {"record", "get", "1", "--json"});
  ASSERT_EQ(json.exit, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["attributes"]["note"], title);
  EXPECT_EQ(json.out.find("\xc2\x9b"), std::string::npos) << json.out;
  EXPECT_EQ(json.out.find("\xe2\x80\xae"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\\u009b"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\\u202e"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\\u061c"), std::string::npos) << json.out;
}

TEST_F(CustosToolTest, BashCompletionOffersTheVerbsAndFlags) {
  ToolRun script = Tool({"completion", "bash"});
  ASSERT_EQ(script.exit, 0) << script.err;
  std::ofstream(dir() + "/completion.bash") << script.out;
  auto complete = [&](const std::string& words, int cword) {
    const std::string command = "bash -c 'source " + dir() +
                                "/completion.bash; COMP_WORDS=(" + words +
                                "); COMP_CWORD=" + std::to_string(cword) +
                                "; _custos; echo ${COMPREPLY[@]}'";
    FILE* pipe = popen(command.c_str(), "r");
    std::string out;
    char buffer[256];
    while (pipe != nullptr && fgets(buffer, sizeof(buffer), pipe) != nullptr)
      out += buffer;
    if (pipe != nullptr) pclose(pipe);
    return out;
  };
  EXPECT_EQ(complete("custos principal r", 2), "revoke rotate-token\n");
  EXPECT_EQ(complete("custos --addr x hold set 12 --u", 6), "--until\n");
  EXPECT_EQ(complete("custos sw", 1), "sweep\n");
}

}  // namespace
}  // namespace custos::testing
