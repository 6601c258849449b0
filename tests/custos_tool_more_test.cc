// The custos tool end to end, continued (issue 13): init, stats, the
// sweep's progress bar, the HTML subject report, offline verification and
// TLS. The real binary against a real custosd (or, offline, its real data
// directory), checking exit codes (0, 1 refused or failed, 2 usage) and
// the messages.

#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storage/keys.h"
#include "tests/custos_tool_runner.h"
#include "tests/custosd_process.h"
#include "tests/test_ca.h"

namespace custos::testing {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The server is started by each test (after `custos init`, or with TLS).
class CustosToolMoreTest : public CustosToolFixture {
 protected:
  // The records database of the stopped server's data directory, opened
  // as the engine opens it (no compression); null if it fails to open.
  std::unique_ptr<leveldb::DB> OpenStoppedRecords() {
    leveldb::Options raw;
    raw.compression = leveldb::kNoCompression;
    leveldb::DB* db = nullptr;
    leveldb::Status opened =
        leveldb::DB::Open(raw, dir() + "/custos-data/records", &db);
    EXPECT_TRUE(opened.ok()) << opened.ToString();
    return std::unique_ptr<leveldb::DB>(opened.ok() ? db : nullptr);
  }

  // A record about anna@example.org created by a new user; its subject id.
  std::string CreateAnnasRecord() {
    const std::string a = AddPrincipal("authority-a", "user");
    ToolRun created =
        As("authority-a", a,
           {"record", "create", "--kind", "request", "--field", "name"},
           "anna@example.org\nAnna\n");
    EXPECT_EQ(created.exit, 0) << created.err;
    ToolRun found = Tool({"subject", "find"}, "anna@example.org\n");
    EXPECT_EQ(found.exit, 0) << found.err;
    return found.out.substr(0, found.out.find('\n'));
  }
};

// ---- init ---------------------------------------------------------------

TEST_F(CustosToolMoreTest, InitMakesTheStoreCustosdServesAndRefusesToRedoIt) {
  // Under a umask of 022 the tool still makes the store its user's alone
  // (LevelDB would make its directories 0755 and its files 0644).
  const mode_t umask_before = ::umask(022);
  ToolRun init = Tool({"init"});
  ::umask(umask_before);
  ASSERT_EQ(init.exit, 0) << init.err;
  EXPECT_EQ(OpenToOthers(dir() + "/custos-data"), std::vector<std::string>{});
  EXPECT_TRUE(Contains(init.out, "new store in ./custos-data")) << init.out;
  EXPECT_TRUE(Contains(init.out,
                       "first admin 'admin', its token in "
                       "./custos-admin.token (mode 0600)"))
      << init.out;
  EXPECT_EQ(ModeOf(dir() + "/custos-master.key"), 0600u);
  EXPECT_EQ(ModeOf(dir() + "/custos-admin.token"), 0600u);

  ToolRun again = Tool({"init"});
  EXPECT_EQ(again.exit, 1);
  EXPECT_TRUE(Contains(again.err, "./custos-data exists and is not empty"))
      << again.err;
  // A new directory, but the token file exists: refused before anything.
  ToolRun token = Tool({"init", "--data-dir", "other-data"});
  EXPECT_EQ(token.exit, 1);
  EXPECT_TRUE(Contains(token.err, "./custos-admin.token exists")) << token.err;
  EXPECT_FALSE(std::filesystem::exists(dir() + "/other-data"));
  // A token file that cannot be created: refused before anything too (a
  // second review: init made the store and its key, then failed on it).
  ToolRun nowhere =
      Tool({"init", "--data-dir", "third-data", "--master-key-file",
            "third.key", "--admin-token-file", "no-such-dir/t"});
  EXPECT_EQ(nowhere.exit, 1);
  EXPECT_TRUE(Contains(nowhere.err, "cannot create no-such-dir/t"))
      << nowhere.err;
  EXPECT_FALSE(std::filesystem::exists(dir() + "/third-data"));
  EXPECT_FALSE(std::filesystem::exists(dir() + "/third.key"));

  // custosd, on its defaults, serves that store: no new key, no new admin.
  custosd_.Start(CUSTOSD_PATH);
  ToolRun who = Tool({"whoami", "--json"});
  ASSERT_EQ(who.exit, 0) << who.err;
  EXPECT_EQ(nlohmann::json::parse(who.out)["id"], "admin");
  EXPECT_FALSE(Contains(custosd_.Log(), "created a new master key"));
  EXPECT_FALSE(Contains(custosd_.Log(), "first admin"));
}

TEST_F(CustosToolMoreTest, InitUsesAnExistingMasterKeyFile) {
  ASSERT_EQ(system((std::string(CUSTOSD_PATH) + " --generate-master-key " +
                    dir() + "/made.key 2>/dev/null")
                       .c_str()),
            0);
  const std::string key = Slurp(dir() + "/made.key");
  ToolRun init = Tool({"init", "--master-key-file", "made.key"});
  ASSERT_EQ(init.exit, 0) << init.err;
  EXPECT_TRUE(Contains(init.out, "master key in made.key (existing)"))
      << init.out;
  EXPECT_EQ(Slurp(dir() + "/made.key"), key);
  custosd_.Start(CUSTOSD_PATH, {"--master-key-file", "made.key"});
  EXPECT_EQ(Tool({"whoami"}).exit, 0);
}

// ---- recover-admin ------------------------------------------------------

TEST_F(CustosToolMoreTest, RecoverAdminMakesANewAdminOfflineOnly) {
  ToolRun none = Tool(
      {"recover-admin", "--id", "admin-r", "--admin-token-file", "r.token"});
  EXPECT_EQ(none.exit, 1);
  EXPECT_TRUE(Contains(none.err,
                       "NotFound: master key file ./custos-master.key not "
                       "found"))
      << none.err;
  EXPECT_FALSE(std::filesystem::exists(dir() + "/custos-data"));

  custosd_.Start(CUSTOSD_PATH);
  // With custosd running, the store is locked: refused, nothing made.
  ToolRun running = Tool(
      {"recover-admin", "--id", "admin-r", "--admin-token-file", "r.token"});
  EXPECT_EQ(running.exit, 1);
  EXPECT_TRUE(Contains(running.err,
                       "./custos-data is in use (locked by a running "
                       "custosd): stop the server first\n"))
      << running.err;
  EXPECT_FALSE(std::filesystem::exists(dir() + "/r.token"));
  ASSERT_EQ(custosd_.Stop(), 0);

  // A directory holding the keystore alone (a restore stopped half-way):
  // refused, not made a new store with an admin (a review, helper-105).
  std::filesystem::create_directory(dir() + "/half");
  std::filesystem::copy(dir() + "/custos-data/keystore",
                        dir() + "/half/keystore");
  ToolRun half = Tool({"recover-admin", "--id", "admin-r", "--data-dir", "half",
                       "--admin-token-file", "r.token"});
  EXPECT_EQ(half.exit, 1);
  EXPECT_TRUE(Contains(half.err, "half holds no store")) << half.err;
  // (LevelDB leaves an empty directory with its LOCK file, no database.)
  EXPECT_FALSE(std::filesystem::exists(dir() + "/half/records/CURRENT"));
  EXPECT_FALSE(std::filesystem::exists(dir() + "/r.token"));

  ToolRun made = Tool(
      {"recover-admin", "--id", "admin-r", "--admin-token-file", "r.token"});
  ASSERT_EQ(made.exit, 0) << made.err;
  EXPECT_TRUE(Contains(made.out,
                       "new admin 'admin-r' in ./custos-data, its "
                       "token in r.token (mode 0600)"))
      << made.out;
  EXPECT_EQ(ModeOf(dir() + "/r.token"), 0600u);
  // A taken id: refused, and the new token file removed again.
  ToolRun taken = Tool(
      {"recover-admin", "--id", "admin-r", "--admin-token-file", "r2.token"});
  EXPECT_EQ(taken.exit, 1);
  EXPECT_TRUE(Contains(taken.err, "AlreadyExists: principal id is taken"))
      << taken.err;
  EXPECT_FALSE(std::filesystem::exists(dir() + "/r2.token"));

  custosd_.Start(CUSTOSD_PATH);
  ToolRun who = As("admin-r", "r.token", {"whoami", "--json"});
  ASSERT_EQ(who.exit, 0) << who.err;
  EXPECT_EQ(nlohmann::json::parse(who.out)["id"], "admin-r");
  // It can do an admin's work: revoke the admin whose token was "lost".
  ToolRun revoke = As("admin-r", "r.token", {"principal", "revoke", "admin"});
  EXPECT_EQ(revoke.exit, 0) << revoke.err;
}

// An erasure verification reads every file of the data directory; had it
// read LevelDB's LOCK files, closing them would have released custosd's
// locks (POSIX record locks go with any descriptor of the file the process
// closes), and an offline tool, or a second custosd, would then have
// opened the live store (walkthrough, helper-112: acknowledged writes
// lost). The store stays locked after it.
TEST_F(CustosToolMoreTest, AnOnlineErasureVerificationKeepsTheStoreLocked) {
  custosd_.Start(CUSTOSD_PATH);
  const std::vector<std::string> offline = {
      "verify",      "--chain",           "--data-dir",
      "custos-data", "--master-key-file", "custos-master.key"};
  const std::string refused =
      "custos-data is in use (locked by a running custosd): stop the server "
      "first";
  ToolRun before = Tool(offline);
  EXPECT_EQ(before.exit, 1);
  EXPECT_TRUE(Contains(before.err, refused)) << before.err;
  ToolRun erasure = Tool({"verify", "--erasure"});
  ASSERT_EQ(erasure.exit, 0) << erasure.err;
  ToolRun after = Tool(offline);
  EXPECT_EQ(after.exit, 1) << after.out;
  EXPECT_TRUE(Contains(after.err, refused)) << after.err;
  // A master-key rotation pointed at the LOCK files reads and closes them
  // (a 0600 file under the key directory; helper-114): refused as a key,
  // and the store stays locked (the locks are on open file descriptions,
  // LogSyncEnv::LockFile, not the process).
  for (const char* db : {"records", "keystore"}) {
    ToolRun rotate =
        Tool({"keys", "rotate-master", "--key-file",
              dir() + "/custos-data/" + std::string(db) + "/LOCK"});
    EXPECT_EQ(rotate.exit, 1) << rotate.out;
  }
  ToolRun after_rotation = Tool(offline);
  EXPECT_EQ(after_rotation.exit, 1) << after_rotation.out;
  EXPECT_TRUE(Contains(after_rotation.err, refused)) << after_rotation.err;
  ASSERT_EQ(custosd_.Stop(), 0);
}

// ---- verify --chain --through ----------------------------------------------

// A head printed by one verification is given to a later one: the chain
// still passes through it, online and offline; once the tail after it is
// cut and the head put back as it was, the chain alone verifies and only
// a head recorded after the cut part shows it.
TEST_F(CustosToolMoreTest, VerifyThroughARecordedHeadCatchesACutTail) {
  custosd_.Start(CUSTOSD_PATH);
  // Auditors and admins verify; anyone else is told both roles (the admin
  // facet's refusal named the admin role alone: walkthrough helper-117).
  const std::string officer = AddPrincipal("officer-1", "officer");
  ToolRun refused = As("officer-1", officer, {"verify", "--chain"});
  EXPECT_EQ(refused.exit, 1);
  EXPECT_EQ(refused.err,
            "custos: PermissionDenied: verify --chain needs the auditor or "
            "the admin role\n");
  const std::string auditor = AddPrincipal("auditor-1", "auditor");
  EXPECT_EQ(As("auditor-1", auditor, {"verify", "--chain"}).exit, 0);
  ToolRun first = Tool({"verify", "--chain", "--json"});
  ASSERT_EQ(first.exit, 0) << first.err;
  const auto chain = nlohmann::json::parse(first.out)["chain"];
  const std::string old_head =
      std::to_string(chain["head_seq"].get<uint64_t>()) + ":" +
      chain["head_link"].get<std::string>();
  ASSERT_EQ(custosd_.Stop(), 0);
  std::string head_value;
  {
    auto db = OpenStoppedRecords();
    ASSERT_TRUE(db != nullptr);
    ASSERT_TRUE(db->Get(leveldb::ReadOptions(), std::string(keys::kHistoryHead),
                        &head_value)
                    .ok());
  }
  custosd_.Start(CUSTOSD_PATH);
  AddPrincipal("authority-a", "user");  // An event past the old head.
  ToolRun second = Tool({"verify", "--chain", "--through", old_head});
  ASSERT_EQ(second.exit, 0) << second.err;
  EXPECT_TRUE(Contains(second.out, "through recorded heads: 1 found\n"))
      << second.out;
  // The text names the head as --through takes it.
  const std::string marker = "events verified, head ";
  const size_t at = second.out.find(marker);
  ASSERT_NE(at, std::string::npos) << second.out;
  const std::string new_head = second.out.substr(
      at + marker.size(), second.out.find('\n', at) - at - marker.size());
  ASSERT_NE(new_head, old_head);
  // Malformed heads are usage errors (exit 2), found before anything is
  // sent; a broken chain is exit 1.
  const std::string link = old_head.substr(old_head.find(':') + 1);
  for (const std::string& bad :
       {std::string("12"), ":" + link, "-1:" + link, " 12:" + link,
        "18446744073709551616:" + link}) {
    ToolRun malformed = Tool({"verify", "--chain", "--through", bad});
    EXPECT_EQ(malformed.exit, 2) << bad;
    EXPECT_TRUE(Contains(malformed.err,
                         "--through: expected SEQ:LINK, a head as `custos "
                         "verify --chain` prints it"))
        << bad << ": " << malformed.err;
  }
  ToolRun empty_history = Tool({"verify", "--chain", "--through", "0:" + link});
  EXPECT_EQ(empty_history.exit, 2);
  EXPECT_TRUE(Contains(empty_history.err,
                       "--through: recorded head 1: seq 0 is the empty "
                       "history, whose link is 64 zeros"))
      << empty_history.err;
  for (const std::string& bad :
       {std::string("12:"), "12:" + link.substr(1), "12:" + link + "\r"}) {
    ToolRun malformed = Tool({"verify", "--chain", "--through", bad});
    EXPECT_EQ(malformed.exit, 2) << bad;
    EXPECT_TRUE(Contains(malformed.err,
                         "--through: recorded head 1: its link must be 64 hex "
                         "digits"))
        << malformed.err;
  }
  ASSERT_EQ(custosd_.Stop(), 0);

  // The events after the old head deleted, the head put back as it was.
  {
    auto db = OpenStoppedRecords();
    ASSERT_TRUE(db != nullptr);
    const uint64_t old_seq = std::stoull(old_head);
    const uint64_t new_seq = std::stoull(new_head);
    ASSERT_GT(new_seq, old_seq);
    leveldb::WriteBatch cut;
    for (uint64_t seq = old_seq + 1; seq <= new_seq; ++seq) {
      std::string key(keys::kEventPrefix);  // "e:" and the seq, big-endian.
      for (int shift = 56; shift >= 0; shift -= 8)
        key.push_back(static_cast<char>((seq >> shift) & 0xff));
      cut.Delete(key);
    }
    cut.Put(std::string(keys::kHistoryHead), head_value);
    ASSERT_TRUE(db->Write(leveldb::WriteOptions(), &cut).ok());
  }
  const std::vector<std::string> offline = {
      "verify",      "--chain",           "--data-dir",
      "custos-data", "--master-key-file", "custos-master.key"};
  ToolRun alone = Tool(offline);
  EXPECT_EQ(alone.exit, 0) << alone.out << alone.err;
  EXPECT_TRUE(Contains(alone.out, "chain ok")) << alone.out;
  std::vector<std::string> through = offline;
  through.insert(through.end(), {"--through", old_head, "--through", new_head});
  ToolRun caught = Tool(through);
  EXPECT_EQ(caught.exit, 1);
  EXPECT_TRUE(Contains(caught.out, "CHAIN BROKEN")) << caught.out;
  EXPECT_TRUE(Contains(caught.out, "(not verified: do not keep it)"))
      << caught.out;
  EXPECT_TRUE(Contains(caught.out,
                       "the chain departs from the recorded heads after seq " +
                           std::to_string(std::stoull(old_head)) +
                           " (the last that held), at or before seq " +
                           std::to_string(std::stoull(old_head) + 1) + "\n"))
      << caught.out;
  EXPECT_TRUE(Contains(caught.out,
                       "problem: anchor at seq " +
                           std::to_string(std::stoull(old_head) + 1) + "\n"))
      << caught.out;
}

// A genuine older policy value put back with the files, custosd then
// started again: the chain verifies (its head may be kept), the policy is
// named as not what was last set, over the socket, and the tool exits 1.
TEST_F(CustosToolMoreTest, VerifyNamesAPolicyRolledBackAndKeepsTheChainOk) {
  custosd_.Start(CUSTOSD_PATH);
  ASSERT_EQ(Tool({"policy", "set", "alert", "--erase-after", "P6M",
                  "--history-after", "P6Y"})
                .exit,
            0);
  ASSERT_EQ(custosd_.Stop(), 0);
  std::string older;
  {
    auto db = OpenStoppedRecords();
    ASSERT_TRUE(db != nullptr);
    ASSERT_TRUE(db->Get(leveldb::ReadOptions(), "pol:alert", &older).ok());
  }
  custosd_.Start(CUSTOSD_PATH);
  ASSERT_EQ(Tool({"policy", "set", "alert", "--erase-after", "P6M",
                  "--history-after", "P10Y"})
                .exit,
            0);
  ToolRun before = Tool({"verify", "--chain"});
  EXPECT_EQ(before.exit, 0) << before.out << before.err;
  EXPECT_TRUE(
      Contains(before.out, "retention policies ok: as the chain last set them"))
      << before.out;
  ASSERT_EQ(custosd_.Stop(), 0);
  {
    auto db = OpenStoppedRecords();
    ASSERT_TRUE(db != nullptr);
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), "pol:alert", older).ok());
  }
  custosd_.Start(CUSTOSD_PATH);
  ToolRun after = Tool({"verify", "--chain"});
  EXPECT_EQ(after.exit, 1);
  EXPECT_TRUE(Contains(after.out, "chain ok: ")) << after.out;
  EXPECT_FALSE(Contains(after.out, "do not keep")) << after.out;
  EXPECT_TRUE(Contains(after.out,
                       "RETENTION POLICIES NOT AS LAST SET: 1 kinds (check "
                       "each, then set it: custos policy set)\n"))
      << after.out;
  EXPECT_TRUE(Contains(after.out,
                       "  alert: stored erase_after:P6M, history_after:P6Y; "
                       "last set at seq "))
      << after.out;
  EXPECT_TRUE(Contains(after.out, ": erase_after:P6M, history_after:P10Y\n"))
      << after.out;
  ToolRun json = Tool({"verify", "--chain", "--json"});
  EXPECT_EQ(json.exit, 1);
  const auto policies = nlohmann::json::parse(json.out)["policies"];
  EXPECT_EQ(policies["ok"], false);
  EXPECT_EQ(policies["checked"], true);
  EXPECT_EQ(policies["total"], 1);
  ASSERT_EQ(policies["differences"].size(), 1u);
  EXPECT_EQ(policies["differences"][0]["kind"], "alert");
  EXPECT_EQ(policies["differences"][0]["expected_from"], "event");
  EXPECT_EQ(policies["differences"][0]["stored"], "policy");
}

// ---- stats --------------------------------------------------------------

TEST_F(CustosToolMoreTest, StatsCountWritesSyncsAndKeyLookupsForAdminsOnly) {
  custosd_.Start(CUSTOSD_PATH);
  CreateAnnasRecord();
  const std::string a = "authority-a.token";
  ASSERT_EQ(As("authority-a", a, {"record", "get", "1"}).exit, 0);
  ToolRun stats = Tool({"stats", "--engine", "--json"});
  ASSERT_EQ(stats.exit, 0) << stats.err;
  const auto s = nlohmann::json::parse(stats.out);
  EXPECT_GE(s["writes"].get<uint64_t>(), 3u);  // A principal, a record...
  EXPECT_GE(s["syncs"].get<uint64_t>(), 1u);
  EXPECT_LE(s["syncs"].get<uint64_t>(), s["writes"].get<uint64_t>());
  EXPECT_GE(s["key_cache_hits"].get<uint64_t>() +
                s["key_cache_misses"].get<uint64_t>(),
            1u);
  EXPECT_TRUE(s.contains("cached_keys"));
  ToolRun table = Tool({"stats", "--engine"});
  ASSERT_EQ(table.exit, 0) << table.err;
  EXPECT_TRUE(Contains(table.out, "STATISTIC                VALUE"))
      << table.out;
  EXPECT_TRUE(Contains(table.out, "records-database writes  " +
                                      std::to_string(s["writes"].get<int>())))
      << table.out;
  ToolRun user = As("authority-a", a, {"stats", "--engine"});
  EXPECT_EQ(user.exit, 1);
  EXPECT_TRUE(Contains(user.err, "PermissionDenied")) << user.err;
}

// ---- sweep's progress bar -----------------------------------------------

// Runs `custos args` in `dir` with a pseudo-terminal as its stdin, stdout
// and stderr; returns what it wrote there.
std::string RunOnTerminal(const std::string& dir,
                          std::vector<std::string> args) {
  args.insert(args.begin(), CUSTOS_PATH);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(126);
    setenv("TERM", "xterm", 1);
    execv(CUSTOS_PATH, argv.data());
    _exit(127);
  }
  EXPECT_GT(pid, 0);
  std::string out;
  char buffer[512];
  ssize_t n;
  while ((n = read(master, buffer, sizeof(buffer))) > 0) out.append(buffer, n);
  close(master);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  return out;
}

TEST_F(CustosToolMoreTest, SweepDrawsItsProgressBarOnlyOnATerminal) {
  custosd_.Start(CUSTOSD_PATH);
  ToolRun piped = Tool({"sweep"});
  ASSERT_EQ(piped.exit, 0) << piped.err;
  EXPECT_TRUE(Contains(piped.out, "TRANSITION")) << piped.out;
  for (const std::string& text : {piped.out, piped.err}) {
    EXPECT_FALSE(Contains(text, "\r")) << text;
    EXPECT_FALSE(Contains(text, "\033")) << text;
    EXPECT_FALSE(Contains(text, "sweeping")) << text;
  }
  // --max-records reaches the server: nothing is due, so it completes.
  ToolRun bounded = Tool({"sweep", "--max-records", "1", "--json"});
  ASSERT_EQ(bounded.exit, 0) << bounded.err;
  EXPECT_EQ(nlohmann::json::parse(bounded.out)["complete"], true);
  EXPECT_EQ(Tool({"sweep", "--max-records", "many"}).exit, 2);
  // On a terminal: the bar, then the line cleared before the table.
  const std::string terminal = RunOnTerminal(dir(), {"sweep", "--dry-run"});
  EXPECT_TRUE(Contains(terminal, "] sweeping, 0.")) << terminal;
  EXPECT_TRUE(Contains(terminal, "\r\033[KTRANSITION")) << terminal;
  // Never with --json, even on a terminal.
  const std::string json = RunOnTerminal(dir(), {"sweep", "--json"});
  EXPECT_FALSE(Contains(json, "sweeping")) << json;
  EXPECT_FALSE(Contains(json, "\033")) << json;
}

// --history-examined reaches the server: a bound of one event leaves the
// pass short of the head, the largest reaches it; both shown as "history
// events examined" (history_examined) and "history events left"
// (history_behind). Out of 1 to 10,000,000: refused by the tool.
TEST_F(CustosToolMoreTest, SweepTakesAPruningBound) {
  custosd_.Start(CUSTOSD_PATH);
  AddPrincipal("authority-a", "user");
  AddPrincipal("authority-b", "user");
  ToolRun one = Tool({"sweep", "--history-examined", "1", "--json"});
  ASSERT_EQ(one.exit, 0) << one.err;
  EXPECT_GT(nlohmann::json::parse(one.out)["history_behind"].get<uint64_t>(),
            0u)
      << one.out;
  EXPECT_EQ(nlohmann::json::parse(one.out)["history_examined"], 1) << one.out;
  ToolRun all = Tool({"sweep", "--history-examined", "10000000", "--json"});
  ASSERT_EQ(all.exit, 0) << all.err;
  EXPECT_EQ(nlohmann::json::parse(all.out)["history_behind"], 0) << all.out;
  ToolRun text = Tool({"sweep"});
  ASSERT_EQ(text.exit, 0) << text.err;
  EXPECT_TRUE(Contains(text.out, "history events left to examine in this pass"))
      << text.out;
  EXPECT_TRUE(Contains(text.out, "history events examined")) << text.out;
  for (const char* bad : {"0", "10000001", "many"}) {
    ToolRun refused = Tool({"sweep", "--history-examined", bad});
    EXPECT_EQ(refused.exit, 2) << bad;
    EXPECT_TRUE(Contains(refused.err, "--history-examined")) << refused.err;
  }
  // A dry run does not prune: no such row or key, and no bound for it.
  ToolRun dry = Tool({"sweep", "--dry-run", "--json"});
  ASSERT_EQ(dry.exit, 0) << dry.err;
  EXPECT_FALSE(nlohmann::json::parse(dry.out).contains("history_behind"))
      << dry.out;
  EXPECT_FALSE(nlohmann::json::parse(dry.out).contains("history_examined"))
      << dry.out;
  ToolRun dry_text = Tool({"sweep", "--dry-run"});
  ASSERT_EQ(dry_text.exit, 0) << dry_text.err;
  EXPECT_FALSE(Contains(dry_text.out, "history events left")) << dry_text.out;
  ToolRun dry_bound = Tool({"sweep", "--dry-run", "--history-examined", "5"});
  EXPECT_EQ(dry_bound.exit, 2);
  EXPECT_TRUE(Contains(dry_bound.err, "a dry run does not prune"))
      << dry_bound.err;
}

// A deadline-index key of the wrong form (only a corruption writes one) is
// skipped by the sweep and counted in SweepReport.malformedIndexKeys: the
// count crosses the RPC and is shown by `custos sweep`, as a line of the
// table (only when not 0) and in --json.
TEST_F(CustosToolMoreTest, SweepShowsTheMalformedIndexKeysItSkipped) {
  custosd_.Start(CUSTOSD_PATH);
  ToolRun clean = Tool({"sweep", "--json"});
  ASSERT_EQ(clean.exit, 0) << clean.err;
  EXPECT_EQ(nlohmann::json::parse(clean.out)["malformed_index_keys"], 0);
  ToolRun clean_text = Tool({"sweep"});
  ASSERT_EQ(clean_text.exit, 0) << clean_text.err;
  EXPECT_FALSE(Contains(clean_text.out, "malformed")) << clean_text.out;
  ASSERT_EQ(custosd_.Stop(), 0);
  {
    std::unique_ptr<leveldb::DB> owned = OpenStoppedRecords();
    ASSERT_NE(owned, nullptr);
    // Shorter than an instant: sorts before every entry of the index.
    const std::string key =
        std::string(keys::kDeadlinePrefix) + std::string("\x00\x01\x02", 3);
    ASSERT_TRUE(owned->Put(leveldb::WriteOptions(), key, "\x01\x01").ok());
  }
  custosd_.Start(CUSTOSD_PATH);
  ToolRun json = Tool({"sweep", "--json"});
  ASSERT_EQ(json.exit, 0) << json.err;
  const auto v = nlohmann::json::parse(json.out);
  EXPECT_EQ(v["malformed_index_keys"], 1);
  EXPECT_EQ(v["complete"], true);
  ToolRun text = Tool({"sweep"});
  ASSERT_EQ(text.exit, 0) << text.err;
  EXPECT_TRUE(Contains(text.out, "malformed index keys skipped")) << text.out;
}

// ---- subject report --html ----------------------------------------------

TEST_F(CustosToolMoreTest, SubjectReportAsHtmlGoesToANewPrivateFile) {
  custosd_.Start(CUSTOSD_PATH);
  const std::string subject = CreateAnnasRecord();
  const std::string aud = AddPrincipal("auditor-1", "auditor");
  ToolRun report =
      As("auditor-1", aud,
         {"subject", "report", subject, "--html", "--out", "anna.html"});
  ASSERT_EQ(report.exit, 0) << report.err;
  EXPECT_EQ(report.out, "report in anna.html\n");
  EXPECT_EQ(ModeOf(dir() + "/anna.html"), 0600u);
  const std::string html = Slurp(dir() + "/anna.html");
  EXPECT_TRUE(html.starts_with("<!DOCTYPE html>\n")) << html.substr(0, 100);
  EXPECT_TRUE(Contains(html, "<title>Personal data we hold about you</title>"));
  EXPECT_TRUE(Contains(html, "Anna"));
  EXPECT_TRUE(html.ends_with("</html>\n")) << html.substr(html.size() - 50);

  ToolRun exists =
      As("auditor-1", aud,
         {"subject", "report", subject, "--html", "--out", "anna.html"});
  EXPECT_EQ(exists.exit, 1);
  EXPECT_TRUE(Contains(exists.err, "anna.html exists")) << exists.err;
  ToolRun unknown =
      As("auditor-1", aud,
         {"subject", "report", "s00", "--html", "--out", "nobody.html"});
  EXPECT_EQ(unknown.exit, 1);
  EXPECT_TRUE(Contains(unknown.err, "NotFound")) << unknown.err;
  EXPECT_FALSE(std::filesystem::exists(dir() + "/nobody.html"));
  // Admins never read personal data.
  ToolRun admin = Tool({"subject", "report", subject, "--html"});
  EXPECT_EQ(admin.exit, 1);
  EXPECT_TRUE(Contains(admin.err, "PermissionDenied")) << admin.err;
}

// A report larger than the server's message limit (here 16 KiB: two
// records of a 10,000-byte field), which Auditor.subjectReport refuses,
// reaches the file whole: the tool takes it in chunks
// (Auditor.subjectReportTo).
TEST_F(CustosToolMoreTest,
       ASubjectReportLargerThanTheMessageLimitArrivesWhole) {
  custosd_.Start(CUSTOSD_PATH, {"--max-message-bytes", "16384"});
  const std::string a = AddPrincipal("authority-a", "user");
  const std::string value(10000, 'n');
  for (int i = 0; i < 2; ++i) {
    ToolRun created =
        As("authority-a", a,
           {"record", "create", "--kind", "request", "--field", "name"},
           "anna@example.org\n" + value + "\n");
    ASSERT_EQ(created.exit, 0) << created.err;
  }
  ToolRun found = Tool({"subject", "find"}, "anna@example.org\n");
  ASSERT_EQ(found.exit, 0) << found.err;
  const std::string subject = found.out.substr(0, found.out.find('\n'));
  const std::string aud = AddPrincipal("auditor-1", "auditor");
  ToolRun report = As("auditor-1", aud,
                      {"subject", "report", subject, "--out", "anna.json"});
  ASSERT_EQ(report.exit, 0) << report.err;
  const std::string json = Slurp(dir() + "/anna.json");
  EXPECT_GT(json.size(), 16384u);
  const auto document = nlohmann::json::parse(json);
  EXPECT_EQ(document["subject_id"], subject);
  EXPECT_EQ(document["records"].size(), 2u);
  const size_t first = json.find(value);
  ASSERT_NE(first, std::string::npos);
  EXPECT_NE(json.find(value, first + value.size()), std::string::npos);
}

// ---- register -------------------------------------------------------------

// The register of processing activities, over RPC, for an admin and for an
// auditor; the Commission-like redacted grantee and the field names appear,
// the subject's data never does.
TEST_F(CustosToolMoreTest, RegisterListsEachKindForAdminsAndAuditors) {
  custosd_.Start(CUSTOSD_PATH);
  CreateAnnasRecord();
  ToolRun json = Tool({"register", "--json"});
  ASSERT_EQ(json.exit, 0) << json.err;
  EXPECT_FALSE(Contains(json.out, "anna@example.org"));
  EXPECT_FALSE(Contains(json.out, "Anna"));
  const auto reg = nlohmann::json::parse(json.out);
  EXPECT_EQ(reg["format"], "custos-processing-register");
  nlohmann::json request;
  for (const auto& k : reg["kinds"]) {
    if (k["kind"] == "request") request = k;
  }
  ASSERT_FALSE(request.is_null()) << json.out;
  EXPECT_EQ(request["retention"]["block_after"], "P6M");
  EXPECT_EQ(request["field_names"],
            nlohmann::json::array({"identifier", "name"}));
  EXPECT_EQ(request["records"]["active"], 1);
  EXPECT_EQ(request["subjects"], 1);
  ASSERT_EQ(request["recipients"].size(), 1u);
  EXPECT_EQ(request["recipients"][0]["principal"], "authority-a");
  EXPECT_EQ(request["recipients"][0]["owner"], true);

  ToolRun table = Tool({"register"});
  ASSERT_EQ(table.exit, 0) << table.err;
  EXPECT_TRUE(Contains(table.out, "KIND")) << table.out;
  EXPECT_TRUE(Contains(
      table.out, "request  -      P6M    P3Y    P5Y      identifier,name"))
      << table.out;

  const std::string aud = AddPrincipal("auditor-1", "auditor");
  ToolRun html =
      As("auditor-1", aud, {"register", "--html", "--out", "register.html"});
  ASSERT_EQ(html.exit, 0) << html.err;
  EXPECT_EQ(html.out, "register in register.html\n");
  const std::string page = Slurp(dir() + "/register.html");
  EXPECT_TRUE(page.starts_with("<!DOCTYPE html>\n")) << page.substr(0, 100);
  EXPECT_TRUE(Contains(page, "<title>Register of processing activities"));
  EXPECT_TRUE(Contains(page, "authority-a"));

  ToolRun both = Tool({"register", "--json", "--html"});
  EXPECT_EQ(both.exit, 2);
  EXPECT_TRUE(Contains(both.err, "--json and --html exclude each other"))
      << both.err;
  ToolRun user = As("authority-a", "authority-a.token", {"register"});
  EXPECT_EQ(user.exit, 1);
  EXPECT_TRUE(Contains(user.err, "PermissionDenied")) << user.err;
}

// The register's and the statistics' tables say what they could not
// count, as their JSON and HTML do, and the register's table shows the
// security measures the man page promises (helper-129: a table's counts
// read as whole).
TEST_F(CustosToolMoreTest, TablesSayWhatTheyCouldNotCount) {
  custosd_.Start(CUSTOSD_PATH);
  CreateAnnasRecord();
  ASSERT_EQ(custosd_.Stop(), 0);
  {
    auto db = OpenStoppedRecords();
    ASSERT_TRUE(db != nullptr);
    // A record and a pending statistics delta that do not decode.
    ASSERT_TRUE(
        db->Put(leveldb::WriteOptions(), keys::Record(999), "not a record")
            .ok());
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), keys::StatsDelta(1u << 30),
                        "not a delta")
                    .ok());
  }
  custosd_.Start(CUSTOSD_PATH);
  ToolRun json = Tool({"register", "--json"});
  ASSERT_EQ(json.exit, 0) << json.err;
  ASSERT_EQ(nlohmann::json::parse(json.out)["unreadable_records"], 1);
  ToolRun table = Tool({"register"});
  ASSERT_EQ(table.exit, 0) << table.err;
  EXPECT_TRUE(Contains(table.out,
                       "records that could not be read, counted in no kind: 1"))
      << table.out;
  EXPECT_TRUE(Contains(table.out, "Security measures")) << table.out;
  EXPECT_TRUE(Contains(table.out, "backup retention (s)")) << table.out;

  ToolRun stats_json = Tool({"stats", "--json"});
  ASSERT_EQ(stats_json.exit, 0) << stats_json.err;
  ASSERT_EQ(nlohmann::json::parse(stats_json.out)["unreadable"], 1);
  ToolRun stats = Tool({"stats"});
  ASSERT_EQ(stats.exit, 0) << stats.err;
  EXPECT_TRUE(Contains(
      stats.out, "transitions that could not be read, counted nowhere: 1"))
      << stats.out;
}

// ---- verify, offline ----------------------------------------------------

TEST_F(CustosToolMoreTest, VerifyOfflineReadsAStoppedServersDataDirectory) {
  custosd_.Start(CUSTOSD_PATH);
  const std::string subject = CreateAnnasRecord();
  ASSERT_EQ(Tool({"subject", "shred", subject, "--yes"}).exit, 0);
  const std::vector<std::string> offline = {
      "verify",      "--chain",           "--erasure",        "--data-dir",
      "custos-data", "--master-key-file", "custos-master.key"};

  // While custosd runs, the data directory is locked.
  ToolRun locked = Tool(offline);
  EXPECT_EQ(locked.exit, 1);
  EXPECT_TRUE(Contains(locked.err,
                       "custos-data is in use (locked by a running "
                       "custosd): stop the server first"))
      << locked.err;

  ASSERT_EQ(custosd_.Stop(), 0);
  std::vector<std::string> json = offline;
  json.push_back("--json");
  ToolRun verified = Tool(json);
  ASSERT_EQ(verified.exit, 0) << verified.err;
  const auto v = nlohmann::json::parse(verified.out);
  EXPECT_EQ(v["chain"]["ok"], true);
  EXPECT_GE(v["chain"]["verified"].get<uint64_t>(), 3u);
  EXPECT_EQ(v["erasure"]["ok"], true);
  EXPECT_GE(v["erasure"]["witnesses"].get<uint64_t>(), 1u);  // The shred.
  EXPECT_EQ(v["erasure"]["found"], 0);
  EXPECT_EQ(v["erasure"]["corrupt_queue_entries"], 0);
  EXPECT_EQ(v["erasure"]["undecodable_sealed_entries"], 0);
  ToolRun text = Tool(offline);
  ASSERT_EQ(text.exit, 0) << text.err;
  EXPECT_TRUE(text.out.starts_with("chain ok: ")) << text.out;
  EXPECT_TRUE(Contains(text.out, "\nerasure ok: ")) << text.out;
  EXPECT_FALSE(Contains(text.out, "warning")) << text.out;

  // The counts of corrupt erasure data (issue 11 review), as only a
  // corruption sets them: shown beside "ok", which is about bytes found.
  {
    std::unique_ptr<leveldb::DB> owned = OpenStoppedRecords();
    ASSERT_NE(owned, nullptr);
    auto count = [](uint8_t n) {
      return std::string(7, '\0') + static_cast<char>(n);
    };
    leveldb::WriteBatch counts;
    counts.Put(std::string(keys::kErasureQueueCorrupt), count(3));
    counts.Put(std::string(keys::kErasureRangeUndecodable), count(5));
    ASSERT_TRUE(owned->Write(leveldb::WriteOptions(), &counts).ok());
  }
  ToolRun counted = Tool(json);
  ASSERT_EQ(counted.exit, 0) << counted.err;
  const auto c = nlohmann::json::parse(counted.out);
  EXPECT_EQ(c["erasure"]["ok"], true);
  EXPECT_EQ(c["erasure"]["corrupt_queue_entries"], 3);
  EXPECT_EQ(c["erasure"]["undecodable_sealed_entries"], 5);
  ToolRun counted_text = Tool(offline);
  ASSERT_EQ(counted_text.exit, 0) << counted_text.err;
  EXPECT_TRUE(
      Contains(counted_text.out, "\nwarning: 3 corrupt queued range deletions"))
      << counted_text.out;
  EXPECT_TRUE(Contains(counted_text.out,
                       "\nwarning: 5 undecodable sealed entries deleted "
                       "unwitnessed"))
      << counted_text.out;

  ToolRun nothing = Tool({"verify", "--chain", "--data-dir", "no-such-dir",
                          "--master-key-file", "custos-master.key"});
  EXPECT_EQ(nothing.exit, 1);
  EXPECT_TRUE(Contains(nothing.err, "no-such-dir holds no store"))
      << nothing.err;
  EXPECT_FALSE(std::filesystem::exists(dir() + "/no-such-dir"));  // Not made.
  ToolRun no_key = Tool({"verify", "--chain", "--data-dir", "custos-data"});
  EXPECT_EQ(no_key.exit, 2);
  EXPECT_TRUE(Contains(no_key.err, "--master-key-file")) << no_key.err;
  ToolRun wrong_key = Tool({"verify", "--chain", "--data-dir", "custos-data",
                            "--master-key-file", "custos-admin.token"});
  EXPECT_EQ(wrong_key.exit, 1);
  EXPECT_TRUE(Contains(wrong_key.err, "InvalidArgument")) << wrong_key.err;
}

// ---- TLS ----------------------------------------------------------------

TEST_F(CustosToolMoreTest, OverTlsTheToolVerifiesTheServerAgainstItsCa) {
  KeyAndCert ca, server_cert, other_ca;
  MakeCert(ca, "Custos Test CA", nullptr, 1);
  MakeCert(server_cert, "localhost", &ca, 2);
  MakeCert(other_ca, "Some Other CA", nullptr, 3);
  std::ofstream(dir() + "/ca.pem") << ca.cert_pem;
  std::ofstream(dir() + "/other-ca.pem") << other_ca.cert_pem;
  std::ofstream(dir() + "/server.pem") << server_cert.cert_pem;
  std::ofstream(dir() + "/server.key") << server_cert.key_pem;
  // custosd refuses a private key others may read.
  std::filesystem::permissions(
      dir() + "/server.key",
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  custosd_.Start(CUSTOSD_PATH,
                 {"--tls-cert", "server.pem", "--tls-key", "server.key"});
  // TcpPort waits for the "serving" line (the socket appears before it).
  const std::string addr =
      std::string("127.0.0.1:") + std::to_string(custosd_.TcpPort());
  ASSERT_TRUE(Contains(custosd_.Log(), "TLS on 127.0.0.1:")) << custosd_.Log();

  ToolRun who = Tool({"--addr", addr, "--cacert", "ca.pem", "--tls-server-name",
                      "localhost", "whoami", "--json"});
  ASSERT_EQ(who.exit, 0) << who.err;
  EXPECT_EQ(nlohmann::json::parse(who.out)["id"], "admin");
  // The environment works as the flags do.
  ToolRun env =
      RunTool(dir(), {"whoami"}, "",
              {std::string("CUSTOS_ADDR=") + addr, "CUSTOS_CACERT=ca.pem",
               "CUSTOS_TLS_SERVER_NAME=localhost"});
  EXPECT_EQ(env.exit, 0) << env.err;

  ToolRun wrong_ca = Tool({"--addr", addr, "--cacert", "other-ca.pem",
                           "--tls-server-name", "localhost", "whoami"});
  EXPECT_EQ(wrong_ca.exit, 1);
  EXPECT_TRUE(
      Contains(wrong_ca.err, std::string("cannot connect to ") + addr + ": "))
      << wrong_ca.err;
  EXPECT_TRUE(Contains(wrong_ca.err, "certificate")) << wrong_ca.err;
  // The certificate names localhost, not the address dialled.
  ToolRun wrong_name = Tool({"--addr", addr, "--cacert", "ca.pem", "whoami"});
  EXPECT_EQ(wrong_name.exit, 1);
  EXPECT_TRUE(
      Contains(wrong_name.err, std::string("cannot connect to ") + addr))
      << wrong_name.err;
  EXPECT_EQ(wrong_name.err,
            "custos: cannot connect to " + addr +
                ": TLS peer's certificate is not trusted (hostname mismatch): "
                "it does not carry the name 127.0.0.1; connect by a name it "
                "carries or give --tls-server-name\n");
  // Plain TCP to the TLS port: the server ends the connection; said so,
  // with what to check, and no word of kj's ("::writev(fd, ...)": the
  // walkthrough helper-117).
  ToolRun plain = Tool({"--addr", addr, "whoami"});
  EXPECT_EQ(plain.exit, 1);
  EXPECT_EQ(plain.err,
            "custos: login at " + addr +
                " failed: Unavailable: the connection to the server ended (is "
                "it a TLS server? give --cacert; is it custosd's RPC address, "
                "not its metrics port?)\n");
  ToolRun no_ca = Tool({"--addr", addr, "--cacert", "missing.pem", "whoami"});
  EXPECT_EQ(no_ca.exit, 1);
  EXPECT_TRUE(Contains(no_ca.err, "cannot read CA certificate missing.pem"))
      << no_ca.err;
}

}  // namespace
}  // namespace custos::testing
