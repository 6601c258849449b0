// The custosd binary on its embedded defaults (issue 12): started in an
// empty directory it creates its master key and first admin credential
// (mode 0600), serves the unix socket, stops cleanly on SIGTERM, and a
// restart finds everything acknowledged before. Under systemd it takes the
// master key from $CREDENTIALS_DIRECTORY and serves its metrics endpoint.

#include <arpa/inet.h>
#include <capnp/any.h>
#include <capnp/ez-rpc.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "schema/custos.capnp.h"
#include "tests/custosd_process.h"

namespace custos::testing {
namespace {

namespace fs = std::filesystem;

class CustosdTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> extra = {},
             std::vector<std::string> env = {}) {
    custosd_.Start(CUSTOSD_PATH, std::move(extra), std::move(env));
  }
  int Stop() { return custosd_.Stop(); }
  std::string Socket() const { return custosd_.Socket(); }
  std::string AdminToken() const { return custosd_.AdminToken(); }

  CustosdProcess custosd_;
  const std::string& dir_ = custosd_.dir();
};

// `principal`'s session on `client`'s connection (pipelined: the login's
// answer is waited for by the first call made on it).
rpc::Session::Client LoginOn(capnp::EzRpcClient& client,
                             const std::string& principal,
                             const std::string& token) {
  auto login = client.getMain<rpc::Gateway>().loginRequest();
  login.setPrincipal(principal);
  login.setToken(token);
  return login.send().getSession();
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST_F(CustosdTest, StartsOnItsDefaultsStopsCleanlyAndKeepsWhatItAcknowledged) {
  Start();
  EXPECT_EQ(ModeOf(dir_ + "/custos-master.key"), 0600u);
  EXPECT_EQ(ModeOf(dir_ + "/custos-admin.token"), 0600u);
  EXPECT_EQ(ModeOf(Socket()), 0660u);
  const std::string token = AdminToken();
  ASSERT_FALSE(token.empty());
  {
    capnp::EzRpcClient client("unix:" + Socket());
    auto& wait = client.getWaitScope();
    auto session = LoginOn(client, "admin", token);
    auto create =
        session.adminRequest().send().getAdmin().createPrincipalRequest();
    create.setId("authority-a");
    create.setDisplayName("Authority A");
    create.initRoles(1).set(0, rpc::Role::USER);
    create.send().wait(wait);
  }
  const int status = Stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(fs::exists(Socket()));

  // A restart reuses the key and the store, and writes no new credential.
  Start();
  EXPECT_EQ(AdminToken(), token);
  capnp::EzRpcClient client("unix:" + Socket());
  auto& wait = client.getWaitScope();
  auto session = LoginOn(client, "admin", token);
  auto list = session.adminRequest().send().getAdmin().listPrincipalsRequest();
  auto response = list.send().wait(wait);
  auto principals = response.getPrincipals();
  bool found = false;
  for (auto p : principals) found = found || p.getId() == "authority-a";
  EXPECT_TRUE(found);
}

// What custosd creates is its own user's alone, whatever umask it was
// started with (here 022, under which LevelDB makes its directories 0755
// and its files 0644): they hold principals' display names, hold reasons
// and history headers. The socket stays 0660.
// A data directory made before, open to others (here 0755), is made 0700
// at start, and said so.
TEST_F(CustosdTest, WhatItCreatesIsItsOwnersAloneWhateverTheUmask) {
  const mode_t umask_before = ::umask(022);
  ASSERT_EQ(::mkdir((dir_ + "/custos-data").c_str(), 0755), 0);
  Start();
  ::umask(umask_before);
  EXPECT_EQ(ModeOf(dir_ + "/custos-data"), 0700u);
  EXPECT_EQ(ModeOf(dir_ + "/custos-data/records/CURRENT"), 0600u);
  EXPECT_EQ(ModeOf(Socket()), 0660u);
  EXPECT_NE(custosd_.Log().find("was open to others (mode 755); it is now "
                                "0700"),
            std::string::npos)
      << custosd_.Log();
  ASSERT_EQ(Stop(), 0);  // Nothing changes under the scan.
  EXPECT_EQ(OpenToOthers(dir_ + "/custos-data"), std::vector<std::string>{});
}

// Malformed requests to the real binary: the client reads only the
// generic error, and custosd's log holds no text of kj's (which quotes
// the failed expression and the client's bytes).
TEST_F(CustosdTest, MalformedRequestsLeaveNoKjTextOnTheWireNorInTheLog) {
  Start();
  {
    capnp::EzRpcClient client("unix:" + Socket());
    auto& wait = client.getWaitScope();
    auto gateway = client.getMain<rpc::Gateway>();
    for (int malformed = 0; malformed < 2; ++malformed) {
      auto req = gateway.loginRequest();
      capnp::AnyStruct::Builder params{
          static_cast<rpc::Gateway::LoginParams::Builder>(req)};
      if (malformed == 0) {
        // A Text without its NUL.
        auto bytes = params.getPointerSection()[0].initAs<capnp::Data>(6);
        memcpy(bytes.begin(), "Zq9Zq9", 6);
      } else {
        // A struct where a Text is expected.
        req.setPrincipal("Zq9Zq9");
        params.getPointerSection()[1].initAsAnyStruct(1, 0);
      }
      try {
        req.send().wait(wait);
        ADD_FAILURE() << "a malformed login was answered";
      } catch (const kj::Exception& e) {
        EXPECT_EQ(std::string(e.getDescription().cStr()),
                  "remote exception: InvalidArgument: malformed request");
      }
    }
  }
  const int status = Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const std::string log = custosd_.Log();
  EXPECT_EQ(log.find("Zq9"), std::string::npos) << log;
  EXPECT_EQ(log.find("expected"), std::string::npos) << log;
  EXPECT_EQ(log.find("Message contains"), std::string::npos) << log;
}

// Runs custosd with `args` to its end, in `dir`, with `env` added and, if
// `err_file` is given, its standard error there; its exit status.
int RunCustosd(const std::string& dir, std::vector<std::string> args,
               std::vector<std::string> env = {},
               const std::string& err_file = "",
               std::chrono::seconds deadline = std::chrono::seconds(0)) {
  args.insert(args.begin(), CUSTOSD_PATH);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(126);
    if (!err_file.empty()) {
      const int fd = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(126);
    }
    for (auto& e : env) putenv(e.data());
    execv(CUSTOSD_PATH, argv.data());
    _exit(127);
  }
  int status = 0;
  if (deadline.count() == 0) {
    waitpid(pid, &status, 0);
    return status;
  }
  // A run expected to end by itself: one still running at the deadline is
  // killed (its status then says so).
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status;
}

int RunCustosdCapturingStderr(const std::string& dir,
                              std::vector<std::string> args,
                              const std::string& err_file) {
  return RunCustosd(dir, std::move(args), {}, err_file);
}

// A run of custosd that is refused at start: its wait status and the first
// line it wrote to stderr (captured in `dir`/stderr).
struct Refusal {
  int status = 0;
  std::string first_line;
};
Refusal RunCustosdToItsRefusal(const std::string& dir,
                               std::vector<std::string> args) {
  const std::string err = dir + "/stderr";
  Refusal refusal;
  refusal.status = RunCustosdCapturingStderr(dir, std::move(args), err);
  std::ifstream in(err);
  std::getline(in, refusal.first_line);
  return refusal;
}

// A token file left from another store must not cost the new store its
// only admin: the start is refused before the admin is created, and once
// the file is gone the next start creates the admin and writes its token.
TEST_F(CustosdTest, ALeftoverTokenFileIsRefusedBeforeTheFirstAdminIsMade) {
  const std::string token = dir_ + "/custos-admin.token";
  { std::ofstream(token) << "token of another store\n"; }
  const std::string err = dir_ + "/stderr";
  const int status =
      RunCustosdCapturingStderr(dir_, {"--listen", "127.0.0.1:0"}, err);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::ifstream in(err);
  const std::string said((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(said.find("exists, but the store has no admin yet"),
            std::string::npos)
      << said;
  std::ifstream kept(token);
  std::string line;
  std::getline(kept, line);
  EXPECT_EQ(line, "token of another store");  // Never overwritten.

  fs::remove(token);
  Start();
  EXPECT_EQ(ModeOf(token), 0600u);
  EXPECT_EQ(AdminToken().empty(), false);
  EXPECT_EQ(Stop(), 0);
  // A restart with the token file in place is an ordinary restart.
  Start();
  EXPECT_EQ(Stop(), 0);
}

TEST_F(CustosdTest, ATlsPrivateKeyOthersMayReadIsRefused) {
  { std::ofstream(dir_ + "/tls.crt") << "certificate\n"; }
  { std::ofstream(dir_ + "/tls.key") << "private key\n"; }
  fs::permissions(dir_ + "/tls.key", fs::perms::owner_read |
                                         fs::perms::owner_write |
                                         fs::perms::group_read);
  const auto [status, line] =
      RunCustosdToItsRefusal(dir_, {"--listen", "127.0.0.1:0", "--tls-cert",
                                    "tls.crt", "--tls-key", "tls.key"});
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_EQ(line,
            "custosd: the TLS private key tls.key may be read by others than "
            "its owner (chmod 600)");
}

// custosd with `args` in `dir` is refused as a usage error (exit status 2)
// with the one line `said` on stderr, before it created anything.
void ExpectRefusedAsUsage(const std::string& dir,
                          const std::vector<std::string>& args,
                          const std::string& said) {
  const auto [status, line] = RunCustosdToItsRefusal(dir, args);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 2) << args.back();
  EXPECT_EQ(line, said) << args.back();
  EXPECT_FALSE(fs::exists(dir + "/custos-data")) << args.back();
  EXPECT_FALSE(fs::exists(dir + "/custos-master.key")) << args.back();
}

TEST_F(CustosdTest, TheProductionBuildRefusesTheTestClock) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"--test-clock", "2027-02-28T10:00:00Z"},
        std::vector<std::string>{"--test-clock=2027-02-28T10:00:00Z"},
        std::vector<std::string>{"--listen", "127.0.0.1:0", "--test-clock-file",
                                 "clock"}}) {
    ASSERT_NO_FATAL_FAILURE(ExpectRefusedAsUsage(
        dir_, args,
        "custosd: --test-clock is not available: this is the production "
        "build, whose clock is the system clock; the test clock exists only "
        "in the test build custosd-testclock (custosd(8))"));
    EXPECT_FALSE(fs::exists(dir_ + "/clock"));
  }
}

// A certificate without its key, or a key without its certificate, is a
// usage error (it exited 1, as a failure to start, against custosd(8)).
TEST_F(CustosdTest, ATlsCertificateWithoutItsKeyIsAUsageError) {
  for (const char* given : {"--tls-cert", "--tls-key"}) {
    ASSERT_NO_FATAL_FAILURE(ExpectRefusedAsUsage(
        dir_, {"--listen", "127.0.0.1:0", given, "tls.pem"},
        "custosd: --tls-cert and --tls-key go together"));
  }
}

// Fewer than three workers could leave none for the connections' calls
// while long work holds two (a sweep and a chain verification): refused
// (review helper-98), as a count past 256 was.
TEST_F(CustosdTest, AWorkerCountBelowThreeOrPast256IsRefused) {
  for (const char* n : {"0", "2", "257"}) {
    ASSERT_NO_FATAL_FAILURE(ExpectRefusedAsUsage(
        dir_, {"--workers", n},
        std::string("--workers: Value ") + n + " not in range 3 to 256"));
  }
}

// A sweep's pruning bound below 1 or past 10,000,000 (about 70 s of
// pruning at 7 µs an event, which custosd's stop waits for) is a usage
// error.
TEST_F(CustosdTest, AHistoryExaminedOutOfRangeIsRefused) {
  for (const char* n : {"0", "10000001"}) {
    ASSERT_NO_FATAL_FAILURE(
        ExpectRefusedAsUsage(dir_, {"--history-examined", n},
                             std::string("--history-examined: Value ") + n +
                                 " not in range 1 to 10000000"));
  }
  ASSERT_NO_FATAL_FAILURE(
      ExpectRefusedAsUsage(dir_, {"--history-examined", "0x10"},
                           "--history-examined: a decimal number is expected"));
}

// Reminder defaults out of range are refused naming the flag the operator
// gave, not the API field it sets.
TEST_F(CustosdTest, AReminderDefaultOutOfRangeIsRefusedNamingItsFlag) {
  ASSERT_NO_FATAL_FAILURE(ExpectRefusedAsUsage(
      dir_, {"--reminder-warn-before", "P2Y"},
      "custosd: --reminder-warn-before must be a period of at most P1Y"));
  ASSERT_NO_FATAL_FAILURE(ExpectRefusedAsUsage(
      dir_, {"--reminder-open-too-long", "P0D"},
      "custosd: --reminder-open-too-long must be a period longer than zero "
      "and of at most P10Y"));
}

// Numbers are decimal: CLI11 read "010" as 8 (a metrics port 8, a
// maintenance interval of 384 s for "0600") and took "nan" for a timeout.
TEST_F(CustosdTest, NumbersThatAreNotDecimalAreRefused) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"--metrics-port", "010"},
        std::vector<std::string>{"--maintenance-interval", "0x10"},
        std::vector<std::string>{"--erasure-compaction-delay", "0777"}}) {
    ASSERT_NO_FATAL_FAILURE(ExpectRefusedAsUsage(
        dir_, args, args[0] + ": a decimal number is expected"));
  }
  ASSERT_NO_FATAL_FAILURE(
      ExpectRefusedAsUsage(dir_, {"--tls-handshake-timeout", "nan"},
                           "--tls-handshake-timeout: a decimal number is "
                           "expected"));
}

// A negative erasure compaction delay, or one past the maximum, is a usage
// error, refused before anything is created.
TEST_F(CustosdTest, AnErasureCompactionDelayOutOfRangeIsRefused) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"--erasure-compaction-delay", "-1"},
        std::vector<std::string>{"--erasure-compaction-delay=-1"},
        std::vector<std::string>{"--erasure-compaction-delay", "2592001"}}) {
    ASSERT_NO_FATAL_FAILURE(ExpectRefusedAsUsage(
        dir_, args,
        "custosd: --erasure-compaction-delay must be between 0 and 2592000 "
        "seconds (0: erased bytes are compacted away inside each erasing "
        "call)"));
  }
}

// How many of `pid`'s open descriptors (in all, of the records and of the
// keystore database) and of its memory maps name a LevelDB table (*.ldb).
struct TableUse {
  int descriptors = 0;
  int records = 0;
  int keystore = 0;
  int maps = 0;
};
TableUse TablesOf(pid_t pid) {
  TableUse use;
  const std::string proc = "/proc/" + std::to_string(pid);
  for (const auto& fd : fs::directory_iterator(proc + "/fd")) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(fd.path(), ec);
    if (ec || target.extension() != ".ldb") continue;
    ++use.descriptors;
    const std::string dir = target.parent_path().filename().string();
    if (dir == "records") ++use.records;
    if (dir == "keystore") ++use.keystore;
  }
  std::ifstream maps(proc + "/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.ends_with(".ldb")) ++use.maps;
  }
  return use;
}

// --table-reads: the tables (written at the first start, replayed from the
// logs into tables at the next) are read with pread (the default), each
// keeping its descriptor and none mapped, or mapped (LevelDB's own files,
// which close their descriptor once mapped); any other value is a usage
// error.
TEST_F(CustosdTest, ReadsItsTablesAsTableReadsSays) {
  ASSERT_NO_FATAL_FAILURE(ExpectRefusedAsUsage(dir_, {"--table-reads", "mmap"},
                                               "--table-reads: mmap not in "
                                               "{pread,mapped}"));
  Start();
  ASSERT_EQ(Stop(), 0);
  Start();  // pread, the default.
  TableUse pread = TablesOf(custosd_.pid());
  EXPECT_GT(pread.records, 0);  // Both databases read with pread.
  EXPECT_GT(pread.keystore, 0);
  EXPECT_EQ(pread.maps, 0);
  ASSERT_EQ(Stop(), 0);
  Start({"--table-reads", "mapped"});
  TableUse mapped = TablesOf(custosd_.pid());
  EXPECT_EQ(mapped.descriptors, 0);
  EXPECT_GT(mapped.maps, 0);
}

// custosd raises its soft limit on open files to the hard one (tables read
// with pread keep a descriptor for at most a fifth of the soft limit of
// them): started under a soft limit of 1,024, /proc shows both equal.
TEST_F(CustosdTest, RaisesItsOpenFilesSoftLimitToTheHardOne) {
  rlimit before{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &before), 0);
  if (before.rlim_max <= 1024) {
    GTEST_SKIP() << "hard limit " << before.rlim_max << ": nothing to raise";
  }
  rlimit lowered = before;
  lowered.rlim_cur = 1024;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  Start();  // Inherits the lowered soft limit.
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &before), 0);
  std::ifstream limits("/proc/" + std::to_string(custosd_.pid()) + "/limits");
  std::string line, soft, hard;
  while (std::getline(limits, line)) {
    if (!line.starts_with("Max open files")) continue;
    std::istringstream fields(
        line.substr(std::string("Max open files").size()));
    fields >> soft >> hard;
  }
  EXPECT_EQ(soft, before.rlim_max == RLIM_INFINITY
                      ? "unlimited"
                      : std::to_string(before.rlim_max));
  EXPECT_EQ(soft, hard);
}

// A TCP port free a moment ago.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A plain TCP connection to 127.0.0.1:`port`; -1 if refused.
int HttpConnect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// `request` sent on the open connection `fd`; the answer, up to the end of
// its body (Content-Length): the server may keep the connection open for
// another request. What came before the connection ended, if it did.
std::string HttpOn(int fd, const std::string& request) {
  EXPECT_EQ(write(fd, request.data(), request.size()),
            static_cast<ssize_t>(request.size()));
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    answer.append(buf, n);
    const size_t end = answer.find("\r\n\r\n");
    const size_t length = answer.find("Content-Length: ");
    if (end == std::string::npos || length == std::string::npos) continue;
    const size_t body = std::stoul(answer.substr(length + 16));
    if (answer.size() >= end + 4 + body) break;
  }
  return answer;
}

// `request` sent over a new connection to 127.0.0.1:`port`; the whole
// answer ("" if the connection was refused).
std::string HttpExchange(int port, const std::string& request) {
  const int fd = HttpConnect(port);
  if (fd < 0) return "";
  std::string answer = HttpOn(fd, request);
  close(fd);
  return answer;
}

// A key given in CUSTOS_MASTER_KEY is read once and wiped: it is not left
// in the server's environment (helper-131: readable in /proc/<pid>/environ
// for the server's whole life).
TEST_F(CustosdTest, AMasterKeyFromTheEnvironmentIsNotLeftThere) {
  const std::string hex =
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  Start({}, {"CUSTOS_MASTER_KEY=" + hex});
  EXPECT_FALSE(fs::exists(dir_ + "/custos-master.key"));  // The variable's.
  std::ifstream in("/proc/" + std::to_string(custosd_.pid()) + "/environ",
                   std::ios::binary);
  ASSERT_TRUE(in.good());
  const std::string environ((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(environ.find(hex), std::string::npos);
  EXPECT_EQ(environ.find(hex.substr(0, 16)), std::string::npos);

  // With a key file too (the same key), the variable is not used, and is
  // wiped all the same (helper-132: left in place then).
  custosd_.Stop();
  const std::string key_file = dir_ + "/custos-master.key";
  {
    std::ofstream out(key_file);
    out << "custos-master-key-v1\n" << hex << "\n";
  }
  ASSERT_EQ(chmod(key_file.c_str(), 0600), 0);
  Start({}, {"CUSTOS_MASTER_KEY=" + hex});
  std::ifstream again("/proc/" + std::to_string(custosd_.pid()) + "/environ",
                      std::ios::binary);
  ASSERT_TRUE(again.good());
  const std::string environ_again((std::istreambuf_iterator<char>(again)), {});
  EXPECT_EQ(environ_again.find(hex.substr(0, 16)), std::string::npos);
}

TEST_F(CustosdTest, TakesItsMasterKeyFromSystemdCredentialsAndServesHealth) {
  // The operator's key, made once with custosd itself; systemd hands the
  // service a read-only copy (mode 0400) in $CREDENTIALS_DIRECTORY.
  const std::string credentials = dir_ + "/credentials";
  fs::create_directory(credentials);
  const int made =
      RunCustosd(dir_, {"--generate-master-key", credentials + "/master.key"});
  ASSERT_TRUE(WIFEXITED(made) && WEXITSTATUS(made) == 0) << made;
  ASSERT_EQ(chmod((credentials + "/master.key").c_str(), 0400), 0);
  const int port = FreePort();
  Start({"--metrics-port", std::to_string(port)},
        {"CREDENTIALS_DIRECTORY=" + credentials});
  // No key file was created: the credential was used.
  EXPECT_FALSE(fs::exists(dir_ + "/custos-master.key"));
  std::string health;
  for (int i = 0; i < 200 && health.empty(); ++i) {
    health =
        HttpExchange(port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    if (health.empty())
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(health.starts_with("HTTP/1.1 200 OK\r\n")) << health;
  EXPECT_TRUE(health.ends_with("\r\n\r\nok\n")) << health;
  const std::string metrics =
      HttpExchange(port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_NE(metrics.find("\ncustos_connections_open 0\n"), std::string::npos)
      << metrics;
  ASSERT_EQ(Stop(), 0);

  // The same store with the credential missing: refused, nothing created.
  fs::remove(credentials + "/master.key");
  const int refused = RunCustosd(dir_, {"--listen", "127.0.0.1:0"},
                                 {"CREDENTIALS_DIRECTORY=" + credentials});
  ASSERT_TRUE(WIFEXITED(refused)) << refused;
  EXPECT_EQ(WEXITSTATUS(refused), 1);
  EXPECT_FALSE(fs::exists(dir_ + "/custos-master.key"));
}

// The SEQ:LINK of the last "custosd: history head " line of `log` ("" when
// there is none).
std::string LastLoggedHead(const std::string& log) {
  const std::string said = "custosd: history head ";
  const size_t at = log.rfind(said);
  if (at == std::string::npos) return "";
  const size_t from = at + said.size();
  return log.substr(from, log.find_first_of(" \n", from) - from);
}

// How many lines of `log` are `line` exactly.
size_t LinesOf(const std::string& log, const std::string& line) {
  size_t n = 0;
  std::istringstream in(log);
  for (std::string l; std::getline(in, l);) n += l == line ? 1 : 0;
  return n;
}

// Its scheduled maintenance logs the access history's head whenever it
// moved (docs/operations.md, "Keeping the history's head out of band"),
// as SEQ:LINK: given back to verifyChain, the chain must pass through it.
TEST_F(CustosdTest, LogsTheHistoryHeadForVerificationsToCheckLater) {
  Start({"--maintenance-interval", "1"});
  // At start: the first admin's principal_created event.
  const std::string at_start = LastLoggedHead(custosd_.Log());
  ASSERT_TRUE(at_start.starts_with("1:")) << custosd_.Log();
  EXPECT_EQ(LinesOf(custosd_.Log(),
                    "custosd: history head " + at_start + " at start"),
            1u)
      << custosd_.Log();
  capnp::EzRpcClient client("unix:" + Socket());
  auto& wait = client.getWaitScope();
  auto admin =
      LoginOn(client, "admin", AdminToken()).adminRequest().send().getAdmin();
  // The first admin's principal_created event is the head until this one.
  auto create = admin.createPrincipalRequest();
  create.setId("authority-a");
  create.setDisplayName("Authority A");
  create.initRoles(1).set(0, rpc::Role::USER);
  create.send().wait(wait);
  std::string logged;
  for (int i = 0; i < 500 && !logged.starts_with("2:"); ++i) {
    logged = LastLoggedHead(custosd_.Log());
    if (!logged.starts_with("2:"))
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(logged.starts_with("2:")) << custosd_.Log();
  const std::string link = logged.substr(2);
  ASSERT_EQ(link.size(), 64u) << logged;

  auto verify = admin.verifyChainRequest();
  auto through = verify.initThrough(1);
  through[0].setSeq(2);
  through[0].setLinkHex(link);
  auto ok = verify.send().wait(wait);
  EXPECT_TRUE(ok.getOk()) << ok.getProblem().cStr();
  EXPECT_EQ(ok.getAnchorsMatched(), 1u);
  EXPECT_EQ(ok.getHeadSeq(), 2u);
  EXPECT_EQ(std::string(ok.getHeadLinkHex().cStr()), link);

  // A head this store never reached: "anchor", at the first seq past the
  // head.
  auto ahead = admin.verifyChainRequest();
  auto past = ahead.initThrough(1);
  past[0].setSeq(9);
  past[0].setLinkHex(link);
  auto broken = ahead.send().wait(wait);
  EXPECT_FALSE(broken.getOk());
  EXPECT_EQ(std::string(broken.getProblem().cStr()), "anchor");
  EXPECT_EQ(broken.getFirstBroken(), 3u);

  // Two more maintenance runs (one a second) see the same head.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  ASSERT_EQ(Stop(), 0);
  // Logged once per head by maintenance however many runs saw it, and
  // again at the clean stop.
  const std::string log = custosd_.Log();
  EXPECT_EQ(LinesOf(log, "custosd: history head " + logged), 1u) << log;
  EXPECT_EQ(LinesOf(log, "custosd: history head " + logged + " at stop"), 1u)
      << log;
}

// At start it logs the retention policies it read from the files and now
// obeys: a policy put back with the files while it was stopped shows in a
// log kept elsewhere (docs/operations.md).
TEST_F(CustosdTest, LogsTheRetentionPoliciesItObeysAtStart) {
  Start();
  EXPECT_EQ(LinesOf(custosd_.Log(),
                    "custosd: retention policy alert: erase_after:P6M, "
                    "history_after:P5Y"),
            1u)
      << custosd_.Log();
  EXPECT_EQ(LinesOf(custosd_.Log(),
                    "custosd: retention policy request: block_after:P6M, "
                    "erase_after:P3Y, history_after:P5Y"),
            1u)
      << custosd_.Log();
  {
    capnp::EzRpcClient client("unix:" + Socket());
    auto& wait = client.getWaitScope();
    auto admin =
        LoginOn(client, "admin", AdminToken()).adminRequest().send().getAdmin();
    auto set = admin.setPolicyRequest();
    auto policy = set.initPolicy();
    policy.setKind("alert");
    policy.setEraseAfter("P6M");
    policy.setHistoryAfter("P10Y");
    set.send().wait(wait);
  }
  ASSERT_EQ(Stop(), 0);
  Start();
  EXPECT_EQ(LinesOf(custosd_.Log(),
                    "custosd: retention policy alert: erase_after:P6M, "
                    "history_after:P10Y"),
            1u)
      << custosd_.Log();
  ASSERT_EQ(Stop(), 0);
}

// A second custosd given the socket a live one serves on (another data
// directory, the same --socket) is refused before it touches the file; it
// used to replace it, cutting the first server's clients off, and remove
// it at its stop (walkthrough, helper-112). A socket file no server
// answers on is still replaced (a restart after SIGKILL: CustosdKillTest).
TEST_F(CustosdTest, ASecondServerDoesNotTakeTheSocketOfALiveOne) {
  Start();
  const std::string other = dir_ + "/other";
  fs::create_directory(other);
  const std::string err = other + "/stderr";
  const int status = RunCustosd(other, {"--listen", "", "--socket", Socket()},
                                {}, err, std::chrono::seconds(20));
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::ifstream in(err);
  const std::string said((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(said.find("custosd: FailedPrecondition: another server listens "
                      "on " +
                      Socket() + ": not replaced\n"),
            std::string::npos)
      << said;
  // Refused before it made anything of a new store.
  EXPECT_FALSE(fs::exists(other + "/custos-data")) << said;
  EXPECT_FALSE(fs::exists(other + "/custos-master.key")) << said;
  EXPECT_FALSE(fs::exists(other + "/custos-admin.token")) << said;
  // The first one still answers on it.
  capnp::EzRpcClient client("unix:" + Socket());
  auto who = LoginOn(client, "admin", AdminToken())
                 .whoAmIRequest()
                 .send()
                 .wait(client.getWaitScope());
  EXPECT_EQ(std::string(who.getPrincipal().getId().cStr()), "admin");
  ASSERT_EQ(Stop(), 0);
}

// A port another process listens on, a remote address in plain TCP: the
// start is refused before the store, its key and its first admin exist
// (they were made first, and a retry then started on a store whose
// announcement of the admin had gone to the failed run's stderr).
TEST_F(CustosdTest, AnAddressThatCannotBeServedIsRefusedBeforeAnythingIsMade) {
  const int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken, reinterpret_cast<const sockaddr*>(&address),
                   sizeof(address)),
            0);
  ASSERT_EQ(::listen(taken, 4), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(
      ::getsockname(taken, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string port = std::to_string(ntohs(address.sin_port));
  struct Case {
    std::vector<std::string> args;
    std::string said;
  };
  const std::vector<Case> cases = {
      {{"--socket", "s", "--listen", "127.0.0.1:" + port},
       "custosd: Unavailable: cannot listen on TCP 127.0.0.1:" + port +
           ": Address already in use"},
      {{"--socket", "s", "--listen", "127.0.0.1:0", "--metrics-port", port},
       "custosd: Unavailable: cannot listen on the metrics address "
       "127.0.0.1:" +
           port + ": Address already in use"},
      {{"--socket", "s", "--listen", "0.0.0.0:0"},
       "custosd: InvalidArgument: plain TCP is served only on loopback "
       "(127.0.0.1, [::1], localhost) unless remote plain TCP is allowed "
       "explicitly (custosd --allow-remote-plain-tcp)"},
  };
  for (const Case& c : cases) {
    const std::string dir = dir_ + "/case" + std::to_string(&c - &cases[0]);
    fs::create_directory(dir);
    const auto [status, line] = RunCustosdToItsRefusal(dir, c.args);
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 1) << c.said;
    EXPECT_EQ(line, c.said);
    EXPECT_FALSE(fs::exists(dir + "/custos-data")) << c.said;
    EXPECT_FALSE(fs::exists(dir + "/custos-master.key")) << c.said;
    EXPECT_FALSE(fs::exists(dir + "/custos-admin.token")) << c.said;
    EXPECT_FALSE(fs::exists(dir + "/s")) << c.said;
  }
  ::close(taken);
}

// Another key than the store's (a rotation whose new key was not put
// where custosd reads its key: the walkthrough helper-117) is refused
// naming where the key was read and what to do.
TEST_F(CustosdTest, AnotherMasterKeyIsRefusedNamingWhereItWasRead) {
  Start();
  ASSERT_EQ(Stop(), 0);
  const std::string key = dir_ + "/custos-master.key";
  fs::rename(key, dir_ + "/custos-master.key.old");
  ASSERT_EQ(RunCustosd(dir_, {"--generate-master-key", key}), 0);
  const auto [status, line] =
      RunCustosdToItsRefusal(dir_, {"--listen", "", "--socket", dir_ + "/s"});
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_EQ(line,
            "custosd: FailedPrecondition: the master key does not match this "
            "data directory: the key read is the key file ./custos-master.key; "
            "after a master key rotation only the new key opens the store: "
            "put it there");
}

// At its stop custosd removes its socket only if the path still is the
// socket it bound: one another server has since put there (after the first
// one's was removed by hand) is left to that server.
TEST_F(CustosdTest, AtItsStopItRemovesItsSocketOnlyIfItIsStillItsOwn) {
  Start();
  ASSERT_EQ(::unlink(Socket().c_str()), 0);
  const int other = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(other, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(Socket().size(), sizeof(address.sun_path));
  std::memcpy(address.sun_path, Socket().data(), Socket().size());
  ASSERT_EQ(::bind(other, reinterpret_cast<const sockaddr*>(&address),
                   sizeof(address)),
            0);
  ASSERT_EQ(::listen(other, 4), 0);
  ASSERT_EQ(Stop(), 0);
  struct stat st {};
  EXPECT_EQ(::lstat(Socket().c_str(), &st), 0)
      << "the other socket was removed";
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  ::close(other);
}

// A stop waits, up to --stop-grace, for the answers its clients wait for;
// meanwhile /health, on a metrics connection already open, answers 503
// "stopping" (an orchestrator sends no more work there), and a second
// SIGTERM ends the wait at once. The answers held here are those of 64
// reads of a record of 180 KB that their client, not reading, leaves in
// the server's queue. Restarted, the store has the record.
TEST_F(CustosdTest, ItsStopSaysStoppingOnHealthAndASecondSignalEndsItsWait) {
  const int port = FreePort();
  Start({"--metrics-port", std::to_string(port), "--stop-grace", "600"});
  uint64_t id = 0;
  std::string user_token;
  {
    capnp::EzRpcClient client("unix:" + Socket());
    auto& wait = client.getWaitScope();
    auto admin =
        LoginOn(client, "admin", AdminToken()).adminRequest().send().getAdmin();
    auto create = admin.createPrincipalRequest();
    create.setId("authority-a");
    create.setDisplayName("Authority A");
    create.initRoles(1).set(0, rpc::Role::USER);
    user_token = create.send().wait(wait).getCreated().getToken().cStr();
  }
  capnp::EzRpcClient client("unix:" + Socket());
  auto& wait = client.getWaitScope();
  auto session = LoginOn(client, "authority-a", user_token);
  const std::string value(60000, 'v');
  {
    auto create = session.createRequest();
    auto r = create.initRecord();
    r.setKind("request");
    auto part = r.initPersonal(1)[0];
    part.setSubjectIdentifier("anna@example.org");
    auto fields = part.initFields(3);
    for (unsigned i = 0; i < 3; ++i) {
      fields[i].setName("f" + std::to_string(i));
      fields[i].setValue(value);
    }
    id = create.send().wait(wait).getId();
    ASSERT_GT(id, 0u);
  }
  const int http = HttpConnect(port);
  ASSERT_GE(http, 0);
  const std::string kHealth = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  const std::string serving = HttpOn(http, kHealth);
  EXPECT_TRUE(serving.starts_with("HTTP/1.1 200 OK\r\n")) << serving;
  EXPECT_TRUE(serving.ends_with("\r\n\r\nok\n")) << serving;

  // 64 reads sent, and their answers (11.5 MB) left unread: the loop runs
  // until the first answer is read (the calls are then written and being
  // answered, in order) and never again on this thread, so the client
  // reads at most the few answers back by then (the server needs about a
  // millisecond for each).
  std::vector<capnp::RemotePromise<rpc::Session::GetResults>> unread;
  for (int i = 0; i < 64; ++i) {
    auto get = session.getRequest();
    get.setId(id);
    unread.push_back(get.send());
  }
  auto first = kj::mv(unread.front());
  unread.erase(unread.begin());
  EXPECT_EQ(first.wait(wait).getRecord().getParts().size(), 1u);

  custosd_.Signal(SIGTERM);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fs::exists(Socket())) {  // The stop has begun once it is gone.
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const std::string stopping = HttpOn(http, kHealth);
  EXPECT_TRUE(stopping.starts_with("HTTP/1.1 503 Service Unavailable\r\n"))
      << stopping;
  EXPECT_TRUE(stopping.ends_with("\r\n\r\nstopping\n")) << stopping;
  close(http);

  // The unread answers hold the stop (an idle server is gone within a
  // second and a half: its connections' linger is one second).
  EXPECT_FALSE(custosd_.WaitForExit(std::chrono::milliseconds(2500)))
      << custosd_.Log();
  custosd_.Signal(SIGTERM);
  const std::optional<int> status =
      custosd_.WaitForExit(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value()) << "a second SIGTERM did not end the wait";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;

  Start();
  capnp::EzRpcClient again("unix:" + Socket());
  auto& again_wait = again.getWaitScope();
  auto get = LoginOn(again, "authority-a", user_token).getRequest();
  get.setId(id);
  auto read = get.send().wait(again_wait);
  ASSERT_EQ(read.getRecord().getParts().size(), 1u);
  EXPECT_EQ(
      std::string(read.getRecord().getParts()[0].getFields()[2].getValue()),
      value);
}

}  // namespace
}  // namespace custos::testing
