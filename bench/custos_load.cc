// custos_load: the end-to-end load tool of issue 12 (bench/README.md,
// figures in bench/RESULTS.md).
//
// Three targets, one workload shape, one report format:
//
//  - custosd (default): N client connections to a running custosd (--connect)
//    or to a throwaway one it starts (--start-server), each logged in as a
//    user principal, each keeping D calls in flight (the pipelining depth),
//    drawn from a weighted mix of create/get/list/close.
//  - --echo: the same connections and depth against a bare Cap'n Proto echo
//    server (bench/echo_server.cc), each call carrying as many bytes as a
//    create's record: what Cap'n Proto RPC costs with no engine behind it.
//  - --in-process: N threads calling Engine::CreateRecord on an engine of
//    their own (no RPC), one call in flight each; with --batch B,
//    Engine::CreateRecords of B records a call (what custosd does with a
//    run of B pipelined creates), each record counted as one operation
//    whose latency is its call's.
//  - --scenario report|shred|sweep|breach: instead of a load, one auditor's
//    or admin's call of issue 16's workloads 6, 5, 4 and 8 (a subject
//    report, a shred and its completion, a sweep of 1,000 due records on
//    the test build custosd-testclock; a breach scope of one principal over
//    a window of 1,000 disclosures in a history of 1,000,000 events, then
//    the statistics, on custosd-testclock too) timed alone on a custosd it
//    starts, --repeat times, each on fresh data made first over RPC (the
//    breach's history made once: "admin scenarios" below).
//
// Every connection runs on ONE kj event loop in the main thread: the client
// costs one core at most, however many connections, and never competes with
// itself for the two cores of the test machines.
//
// A record of the load is always of kind "request", with 4 attributes and
// one personal part whose field names and values total 256 bytes; its
// subject is one of 256 (as concurrency_bench's), so subject keys are
// created during the warm-up and then come from the server's key cache.
// The scenarios' records are the same but for their subject (and the
// sweep's due ones, of kind "alert"; the breach's, granted to its five
// readers).
//
// Output: one JSON object on stdout (throughput, latency percentiles
// overall and per operation, and with --start-server the server's peak
// resident memory, VmHWM), and one human line on stderr.

#include <arpa/inet.h>
#include <capnp/ez-rpc.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/async.h>
#include <kj/exception.h>
#include <kj/vector.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/time_text.h"
#include "bench/echo.capnp.h"
#include "bench/support.h"
#include "crypto/secret_key.h"
#include "schema/custos.capnp.h"
#include "server/test_clock.h"
#include "storage/engine.h"
#include "storage/types.h"

namespace custos::bench {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

// Bytes of personal data (field names and values) per record.
constexpr size_t kPersonalBytes = kWorkloadPersonalBytes;
// Distinct data subjects the records are about.
constexpr int kSubjectPool = 256;
// The principal the tool creates when it logs in as the first admin.
constexpr char kLoadPrincipal[] = "load-user";
// What each connection creates first when the mix has no creates.
constexpr size_t kSeedRecords = 100;

// The first four are the mix's; the last five the timed calls of the
// admin scenarios (--scenario).
enum Op {
  kCreate,
  kGet,
  kList,
  kClose,
  kEcho,
  kSubjectReport,
  kShredSubject,
  kSweep,
  kBreachScope,
  kStatistics,
  kOpCount
};
constexpr const char* kOpNames[kOpCount] = {
    "create",         "get",   "list",  "close",        "echo",
    "subject_report", "shred", "sweep", "breach_scope", "statistics"};

// A loopback TCP port free now (bound to port 0 and released): what the
// started custosd listens on with --tcp. Another process may take it in
// between; the server then fails to start and the run stops saying so.
int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("custos_load: finding a free port");
    std::exit(2);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct LoadOptions {
  std::string connect;  // "unix:PATH" or "HOST:PORT".
  bool start_server = false;
  bool echo = false;
  bool in_process = false;
  bool no_sync = false;
  bool tcp = false;  // With --start-server: connect over loopback TCP.
  // --scenario breach: the scope and the statistics timed over the unix
  // socket, then again over loopback TCP to the same custosd, in the same
  // history (figures tcp_scope_us, tcp_stats_us).
  bool tcp_too = false;
  // --scenario breach: then stop custosd (SIGTERM), start it again on the
  // same data (its test clock where it stood) and time the scope and the
  // statistics once more over the unix socket: synced (figures
  // restarted_sync_scope_us, restarted_sync_stats_us), then, after one
  // more restart, with --no-sync (nosync_scope_us, nosync_stats_us).
  bool then_no_sync = false;
  int connections = 1;
  int depth = 1;
  int batch = 1;  // With --in-process: records per CreateRecords call.
  double duration_seconds = 10;
  double warmup_seconds = 1;
  uint64_t count = 0;  // Measured operations; 0 = run for the duration.
  std::string mix = "create=4,get=4,list=1,close=1";
  std::string principal;
  std::string token_file;
  std::string admin_token_file;
  std::string server_binary = CUSTOS_LOAD_CUSTOSD;
  std::string echo_binary = CUSTOS_LOAD_ECHO_SERVER;
  std::string testclock_binary = CUSTOS_LOAD_CUSTOSD_TESTCLOCK;
  std::vector<std::string> server_args;
  // --scenario: "report", "shred", "sweep" or "breach" ("" for the load).
  std::string scenario;
  int repeat = 3;
  // The scenario's size (0: its default, kDefaultScenarioRecords).
  int records = 0;
  // With --scenario: seconds to wait after each sync(2) that settles the
  // setup, and before each shred (after the previous completion), so that
  // custosd's LevelDB compactions of the setup's writes are over before a
  // call is timed (0: no wait, the figures compare.py records).
  int settle_seconds = 0;
  // With --scenario: each settling also waits until the files of custosd's
  // data directory keep their names and sizes for a second (its LevelDB
  // compactions over: a compaction writes its tables as it goes), at most
  // two minutes.
  bool settle_quiet = false;
  // --scenario breach: the suspect's reads in the window, and the events
  // the history holds once the setup is done.
  int disclosures = 1000;
  uint64_t events = 1'000'000;
  // --scenario sweep --half: every other record of the store due, in one
  // group, one sweep (issue 16's workload 4 at its size with --records
  // 1000000: 500,000 due, spread). The store is made by a custosd started
  // with --no-sync, its records created one a call, kMillionDepth in
  // flight on one connection, timed (issue 16's workload 1 over RPC, with
  // custosd's peak resident memory after the creates), then closed; then
  // custosd is restarted on the same data with the durability asked (sync
  // unless --no-sync) and the sweep is timed.
  bool half = false;
};

std::string Identifier(uint64_t serial) {
  char buffer[48];
  std::snprintf(buffer, sizeof(buffer), "subject-%07d@example.org",
                static_cast<int>(serial % kSubjectPool));
  return buffer;
}

// A record of `kind` about `identifier`, as the engine's type: 4
// attributes, one personal part of kPersonalBytes.
NewRecord MakeRecordAbout(const std::string& identifier, uint64_t serial,
                          const std::string& kind = "request") {
  return WorkloadRecord(kind, identifier, serial);
}

// The record every create of the load sends: about one of kSubjectPool
// subjects.
NewRecord MakeRecord(uint64_t serial) {
  return MakeRecordAbout(Identifier(serial), serial);
}

// The same record, into an RPC message.
void FillRecord(const NewRecord& record, rpc::NewRecord::Builder out) {
  out.setKind(record.kind);
  auto attributes = out.initAttributes(record.attributes.size());
  for (size_t i = 0; i < record.attributes.size(); ++i) {
    attributes[i].setKey(record.attributes[i].key);
    attributes[i].setValue(record.attributes[i].value);
  }
  if (!record.grants.empty()) {
    auto grants = out.initGrants(record.grants.size());
    for (size_t i = 0; i < record.grants.size(); ++i) {
      grants.set(i, record.grants[i]);
    }
  }
  auto parts = out.initPersonal(record.personal.size());
  for (size_t i = 0; i < record.personal.size(); ++i) {
    parts[i].setSubjectIdentifier(record.personal[i].subject_identifier);
    const auto& in_fields = record.personal[i].fields;
    auto fields = parts[i].initFields(in_fields.size());
    for (size_t j = 0; j < in_fields.size(); ++j) {
      fields[j].setName(in_fields[j].name);
      fields[j].setValue(in_fields[j].value);
    }
  }
}

// Bytes of a create's record as a standalone message: what an echo carries.
size_t RecordMessageBytes() {
  capnp::MallocMessageBuilder message;
  FillRecord(MakeRecord(0), message.initRoot<rpc::NewRecord>());
  return capnp::computeSerializedSizeInWords(message) * sizeof(capnp::word);
}

// Weights of the four record operations, from "create=4,get=4,...".
std::optional<std::vector<double>> ParseMix(const std::string& text) {
  std::vector<double> weights(4, 0);
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return std::nullopt;
    const std::string name = item.substr(0, eq);
    const auto it = std::find(kOpNames, kOpNames + 4, name);
    if (it == kOpNames + 4) return std::nullopt;
    try {
      weights[it - kOpNames] = std::stod(item.substr(eq + 1));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  if (std::all_of(weights.begin(), weights.end(),
                  [](double w) { return w <= 0; })) {
    return std::nullopt;
  }
  return weights;
}

// Latencies and errors of one operation.
struct OpStats {
  std::vector<int64_t> nanos;
  uint64_t errors = 0;
  std::string first_error;
};

int64_t Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t at = static_cast<size_t>(p * static_cast<double>(sorted.size()));
  return sorted[std::min(at, sorted.size() - 1)];
}

json LatencyJson(std::vector<int64_t> nanos) {
  std::sort(nanos.begin(), nanos.end());
  auto us = [](int64_t ns) { return static_cast<double>(ns) / 1000.0; };
  return {{"p50", us(Percentile(nanos, 0.50))},
          {"p99", us(Percentile(nanos, 0.99))},
          {"p999", us(Percentile(nanos, 0.999))},
          {"max", us(nanos.empty() ? 0 : nanos.back())}};
}

// What a run measured, whatever the target.
struct Measured {
  OpStats ops[kOpCount];
  double seconds = 0;
};

json Report(const Measured& m) {
  json per_op = json::object();
  std::vector<int64_t> all;
  uint64_t errors = 0;
  for (int op = 0; op < kOpCount; ++op) {
    const OpStats& s = m.ops[op];
    if (s.nanos.empty() && s.errors == 0) continue;
    all.insert(all.end(), s.nanos.begin(), s.nanos.end());
    errors += s.errors;
    json j = {{"count", s.nanos.size()},
              {"errors", s.errors},
              {"ops_per_s", static_cast<double>(s.nanos.size()) / m.seconds},
              {"latency_us", LatencyJson(s.nanos)}};
    if (!s.first_error.empty()) j["first_error"] = s.first_error;
    per_op[kOpNames[op]] = std::move(j);
  }
  return {{"seconds", m.seconds},
          {"ops", all.size()},
          {"errors", errors},
          {"ops_per_s", static_cast<double>(all.size()) / m.seconds},
          {"latency_us", LatencyJson(all)},
          {"per_op", std::move(per_op)}};
}

// When measuring starts and operations stop being issued.
class Window {
 public:
  explicit Window(const LoadOptions& o)
      : measure_from_(Clock::now() + ToDuration(o.warmup_seconds)),
        stop_at_(o.count > 0 ? Clock::time_point::max()
                             : measure_from_ + ToDuration(o.duration_seconds)),
        count_(o.count) {}

  // Whether another operation may start now; `measured` says whether it
  // counts.
  bool Next(bool* measured) {
    const auto now = Clock::now();
    if (now >= stop_at_) return false;
    *measured = now >= measure_from_;
    if (*measured && count_ > 0 && issued_.fetch_add(1) >= count_) return false;
    return true;
  }
  Clock::time_point measure_from() const { return measure_from_; }

  // The end of the measured window: the last measured completion.
  void Completed(Clock::time_point at) {
    std::lock_guard lock(mu_);
    last_ = std::max(last_, at);
  }
  double Seconds() const {
    return std::chrono::duration<double>(last_ - measure_from_).count();
  }

 private:
  static Clock::duration ToDuration(double s) {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(s));
  }
  const Clock::time_point measure_from_;
  const Clock::time_point stop_at_;
  const uint64_t count_;
  std::atomic<uint64_t> issued_{0};
  std::mutex mu_;
  Clock::time_point last_{};
};

// ---------------------------------------------------------------- servers

// A child process (custosd or echo_server) in a temp directory, stopped
// with SIGTERM; its stderr goes to DIR/server.log.
class ChildServer {
 public:
  explicit ChildServer(const std::string& name) : dir_(name) {}
  ~ChildServer() { Stop(); }
  // What Memory() reports.
  struct MemoryFigures {
    uint64_t peak_kib = 0;  // VmHWM: the kernel's peak of the resident set.
    uint64_t rss_kib = 0;   // VmRSS, now.
    // The peaks of the resident set's two parts, sampled every 100 ms from
    // the start: RssAnon (the heap, stacks: what the process allocated)
    // and RssFile (mapped files' pages: LevelDB's mapped tables, which the
    // kernel may drop and read again).
    uint64_t peak_anon_kib = 0;
    uint64_t peak_file_kib = 0;
  };
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;

  // Starts argv in dir() and waits (up to 60 s) for `ready` in its log
  // (custosd's "custosd: serving": its socket then accepts connections),
  // written by this start (a restart appends to the same log).
  void Start(std::vector<std::string> args, const std::string& ready) {
    const size_t logged_before = Log().size();
    // The child runs in dir(): a binary named relative to ours must still
    // be found there.
    args[0] = std::filesystem::absolute(args[0]).string();
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = dir_.path() + "/server.log";
    pid_ = fork();
    if (pid_ == 0) {
      if (chdir(dir_.path().c_str()) != 0) _exit(126);
      if (std::freopen(log.c_str(), "a", stderr) == nullptr) _exit(126);
      execv(argv[0], argv.data());
      std::fprintf(stderr, "cannot run %s: %s\n", argv[0],
                   std::strerror(errno));
      std::fflush(stderr);
      _exit(127);
    }
    if (pid_ < 0) Die("fork");
    // This process's peaks only (a restart starts them again).
    peak_anon_ = 0;
    peak_file_ = 0;
    sampling_ = true;
    sampler_ = std::thread([this, pid = pid_] {
      while (sampling_) {
        const MemoryFigures now = ReadStatus(pid);
        if (now.peak_anon_kib > peak_anon_) peak_anon_ = now.peak_anon_kib;
        if (now.peak_file_kib > peak_file_) peak_file_ = now.peak_file_kib;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Log().find(ready, logged_before) == std::string::npos) {
      int status = 0;
      const bool exited = waitpid(pid_, &status, WNOHANG) != 0;
      if (exited || Clock::now() > deadline) {
        if (exited) pid_ = -1;
        Stop();  // One that hangs.
        const std::string said = Log();
        // Die's exit() runs no destructor: the directory goes now.
        std::error_code ignored;
        std::filesystem::remove_all(dir_.path(), ignored);
        Die("the server did not start; its log:\n" + said);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // The server's resident memory, in KiB, from /proc/PID/status; 0 if
  // unknown.
  MemoryFigures Memory() const {
    MemoryFigures m = ReadStatus(pid_);
    m.peak_anon_kib = std::max<uint64_t>(peak_anon_, m.peak_anon_kib);
    m.peak_file_kib = std::max<uint64_t>(peak_file_, m.peak_file_kib);
    return m;
  }

  // Stops the server with SIGTERM and waits for it; false if it did not
  // exit with status 0 (true if it was not running).
  bool Stop() {
    if (sampler_.joinable()) {
      sampling_ = false;
      sampler_.join();
    }
    if (pid_ <= 0) return true;
    kill(pid_, SIGTERM);
    int status = 0;
    const bool reaped = waitpid(pid_, &status, 0) == pid_;
    pid_ = -1;
    return reaped && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  const std::string& dir() const { return dir_.path(); }
  std::string Log() const {
    std::ifstream in(dir_.path() + "/server.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  [[noreturn]] static void Die(const std::string& what) {
    std::fprintf(stderr, "custos_load: %s\n", what.c_str());
    std::exit(1);
  }

 private:
  // `pid`'s VmHWM, VmRSS, and its RssAnon and RssFile now (in the peak_
  // fields), in KiB; zeros once it is gone.
  static MemoryFigures ReadStatus(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    MemoryFigures m;
    const std::pair<std::string_view, uint64_t*> fields[] = {
        {"VmHWM:", &m.peak_kib},
        {"VmRSS:", &m.rss_kib},
        {"RssAnon:", &m.peak_anon_kib},
        {"RssFile:", &m.peak_file_kib}};
    for (std::string line; std::getline(in, line);) {
      for (const auto& [name, value] : fields) {
        if (line.starts_with(name))
          *value = std::stoull(line.substr(name.size()));
      }
    }
    return m;
  }

  TempDir dir_;  // Removed after the server has stopped (declared first).
  pid_t pid_ = -1;
  std::atomic<bool> sampling_{false};
  std::atomic<uint64_t> peak_anon_{0};
  std::atomic<uint64_t> peak_file_{0};
  std::thread sampler_;  // Stopped by Stop().
};

json MemoryJson(const ChildServer::MemoryFigures& m) {
  return {{"peak_rss_kib", m.peak_kib},
          {"rss_kib", m.rss_kib},
          {"peak_anon_kib", m.peak_anon_kib},
          {"peak_file_kib", m.peak_file_kib}};
}

std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) ChildServer::Die("cannot read " + path);
  return line;
}

// Starts `binary` (custosd, or custosd-testclock) in `server`'s directory
// on its defaults, listening on a free loopback port with --tcp (else on
// 127.0.0.1:0), plus --no-sync if asked, then `extra` and the
// --server-arg's; returns the address to connect to: that port with --tcp,
// else the unix socket. The first admin's token is then in
// DIR/custos-admin.token.
std::string StartCustosd(ChildServer& server, const LoadOptions& o,
                         const std::string& binary,
                         const std::vector<std::string>& extra) {
  const std::string tcp_address =
      o.tcp ? "127.0.0.1:" + std::to_string(FreeLoopbackPort())
            : std::string("127.0.0.1:0");
  std::vector<std::string> args = {binary, "--listen", tcp_address};
  if (o.no_sync) args.push_back("--no-sync");
  args.insert(args.end(), extra.begin(), extra.end());
  args.insert(args.end(), o.server_args.begin(), o.server_args.end());
  server.Start(args, "custosd: serving");
  return o.tcp ? tcp_address
               : "unix:" + server.dir() + "/custos-data/custosd.sock";
}

// ------------------------------------------------------------ RPC driving

// One client connection and what its calls created.
struct Connection {
  std::unique_ptr<capnp::EzRpcClient> client;
  // Held by pointer and destroyed before `client` (declared after it).
  std::optional<rpc::Session::Client> session;
  std::optional<echo::Echo::Client> echo;
  std::vector<uint64_t> active;  // Created and not closed.
  std::mt19937_64 rng;
};

class RpcLoad {
 public:
  RpcLoad(const LoadOptions& o, std::vector<double> weights)
      : o_(o),
        weights_(std::move(weights)),
        echo_bytes_(RecordMessageBytes()) {}

  // Connects, logs in (unless echo), runs, and returns what was measured.
  Measured Run(const std::string& address, const std::string& principal,
               const std::string& token) {
    // EzRpcClients made on one thread share its event loop.
    for (int i = 0; i < o_.connections; ++i) {
      auto c = std::make_unique<Connection>();
      c->client = std::make_unique<capnp::EzRpcClient>(address);
      c->rng.seed(static_cast<uint64_t>(i) + 1);
      connections_.push_back(std::move(c));
    }
    auto& wait = connections_[0]->client->getWaitScope();
    for (auto& c : connections_) {
      if (o_.echo) {
        c->echo = c->client->getMain<echo::Echo>();
        continue;
      }
      auto req = c->client->getMain<rpc::Gateway>().loginRequest();
      req.setPrincipal(principal);
      req.setToken(token);
      c->session = req.send().wait(wait).getSession();
    }
    window_.emplace(o_);
    kj::Vector<kj::Promise<void>> lanes;
    for (auto& c : connections_) {
      for (int d = 0; d < o_.depth; ++d) lanes.add(Lane(*c));
    }
    kj::joinPromises(lanes.releaseAsArray()).wait(wait);
    measured_.seconds = window_->Seconds();
    Measured out = std::move(measured_);
    for (auto& c : connections_) {
      c->session.reset();
      c->echo.reset();
    }
    return out;
  }

  size_t echo_bytes() const { return echo_bytes_; }

 private:
  Op Pick(Connection& c) {
    if (o_.echo) return kEcho;
    // A mix without creates (reads or lists alone) reads what each
    // connection created first, in the warm-up: kSeedRecords records.
    if (weights_[kCreate] <= 0 && c.active.size() < kSeedRecords) {
      return kCreate;
    }
    std::discrete_distribution<int> pick(weights_.begin(), weights_.end());
    const Op op = static_cast<Op>(pick(c.rng));
    // Get and close need an active record of this connection's.
    if ((op == kGet || op == kClose) && c.active.empty()) return kCreate;
    return op;
  }

  // One lane: one call in flight at a time, the next sent when it returns.
  kj::Promise<void> Lane(Connection& c) {
    bool measured = false;
    if (!window_->Next(&measured)) return kj::READY_NOW;
    const Op op = Pick(c);
    const auto started = Clock::now();
    auto done = [this, op, started, measured]() {
      const auto now = Clock::now();
      if (!measured) return;
      measured_.ops[op].nanos.push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - started)
              .count());
      window_->Completed(now);
    };
    auto failed = [this, op, measured](kj::Exception&& e) {
      if (!measured) return;
      OpStats& s = measured_.ops[op];
      if (s.errors++ == 0) s.first_error = e.getDescription().cStr();
      window_->Completed(Clock::now());
    };
    kj::Promise<void> call = nullptr;
    switch (op) {
      case kCreate: {
        auto req = c.session->createRequest();
        FillRecord(MakeRecord(serial_++), req.initRecord());
        call = req.send().then([&c, done](auto&& response) {
          c.active.push_back(response.getId());
          done();
        });
        break;
      }
      case kGet: {
        auto req = c.session->getRequest();
        req.setId(c.active[c.rng() % c.active.size()]);
        call = req.send().then([done](auto&&) { done(); });
        break;
      }
      case kList: {
        auto req = c.session->listRequest();
        auto query = req.initQuery();
        query.setKind("request");
        query.setLimit(10);
        call = req.send().then([done](auto&&) { done(); });
        break;
      }
      case kClose: {
        // Taken out of `active` now: no other lane gets or closes it.
        const size_t at = c.rng() % c.active.size();
        const uint64_t id = c.active[at];
        c.active[at] = c.active.back();
        c.active.pop_back();
        auto req = c.session->closeRequest();
        req.setId(id);
        call = req.send().then([done](auto&&) { done(); });
        break;
      }
      case kEcho: {
        auto req = c.echo->echoRequest();
        auto data = req.initData(echo_bytes_);
        std::fill(data.begin(), data.end(), 'x');
        call = req.send().then([done](auto&&) { done(); });
        break;
      }
      case kSubjectReport:
      case kShredSubject:
      case kSweep:
      case kBreachScope:
      case kStatistics:
      case kOpCount:
        break;
    }
    return call.catch_(kj::mv(failed)).then([this, &c] { return Lane(c); });
  }

  const LoadOptions& o_;
  const std::vector<double> weights_;
  const size_t echo_bytes_;
  std::optional<Window> window_;  // From when every connection is ready.
  std::vector<std::unique_ptr<Connection>> connections_;
  Measured measured_;
  uint64_t serial_ = 0;
};

// ------------------------------------------------------------- in process

// N threads creating records on one engine of their own (no RPC).
Measured RunInProcess(const LoadOptions& o) {
  TempDir dir("custos-load");
  SystemClock clock;
  Options options;
  options.data_dir = dir.path() + "/data";
  options.table_reads = bench::TableReadsFromEnv();
  options.clock = &clock;
  options.sync_writes = !o.no_sync;
  auto engine = Value(Engine::Open(options, crypto::SecretKey::Generate()),
                      "open engine");
  Value(engine->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
  const Actor admin = Value(engine->ActorFor("admin"), "admin actor");
  Value(engine->CreatePrincipal(admin, kLoadPrincipal, "Load", {Role::kUser},
                                /*redacted=*/false),
        "create user");
  const Actor user = Value(engine->ActorFor(kLoadPrincipal), "user actor");

  Window window(o);
  std::atomic<uint64_t> serial{0};
  std::vector<Measured> per_thread(o.connections);
  std::vector<std::thread> threads;
  for (int t = 0; t < o.connections; ++t) {
    threads.emplace_back([&, t] {
      OpStats& s = per_thread[t].ops[kCreate];
      bool measured = false;
      while (window.Next(&measured)) {
        if (o.batch > 1) {
          std::vector<NewRecord> records;
          for (int i = 0; i < o.batch; ++i) {
            records.push_back(MakeRecord(serial.fetch_add(1)));
          }
          const auto started = Clock::now();
          auto ids = engine->CreateRecords(user, records);
          const auto now = Clock::now();
          if (!measured) continue;
          if (ids) {
            const auto nanos =
                std::chrono::duration_cast<std::chrono::nanoseconds>(now -
                                                                     started)
                    .count();
            s.nanos.insert(s.nanos.end(), records.size(), nanos);
          } else if (s.errors++ == 0) {
            s.first_error = ids.error().ToString();
          }
          window.Completed(now);
          continue;
        }
        const NewRecord record = MakeRecord(serial.fetch_add(1));
        const auto started = Clock::now();
        auto id = engine->CreateRecord(user, record);
        const auto now = Clock::now();
        if (!measured) continue;
        if (id) {
          s.nanos.push_back(
              std::chrono::duration_cast<std::chrono::nanoseconds>(now -
                                                                   started)
                  .count());
        } else if (s.errors++ == 0) {
          s.first_error = id.error().ToString();
        }
        window.Completed(now);
      }
    });
  }
  for (auto& t : threads) t.join();
  Measured out;
  for (auto& m : per_thread) {
    OpStats& s = out.ops[kCreate];
    s.nanos.insert(s.nanos.end(), m.ops[kCreate].nanos.begin(),
                   m.ops[kCreate].nanos.end());
    if (s.errors == 0) s.first_error = m.ops[kCreate].first_error;
    s.errors += m.ops[kCreate].errors;
  }
  out.seconds = window.Seconds();
  engine.reset();
  return out;
}

// -------------------------------------------------------- admin scenarios
//
// --scenario report|shred|sweep|breach: the auditor's or admin's call of
// issue 16's workloads 6, 5, 4 and 8, timed alone over RPC (one call in
// flight, nothing else running) against a throwaway custosd, --repeat
// times, each time on fresh data of the same shape (breach: on the one
// history, made once). All the data is made first, through the user API
// with pipelined calls (createMany and getMany of kBatch records,
// kBatchDepth of them in flight, breach's reads kReadDepth; closes
// kCloseDepth in flight), then each repetition's call is timed from its
// send to its answer. The server's scheduled maintenance is pushed out of
// the way (--maintenance-interval 86400), so that no timed call shares the
// engine with a sweep or a shred completion it did not ask for. Any failed
// call, and any count that is not the expected one, stops the run with
// exit status 1.

// Records (or ids) per createMany or getMany: the server's default
// max_batch_records.
constexpr size_t kBatch = 100;
// The load user's connections for the setup: custosd runs one
// connection's calls one at a time (docs/api.md, "Threading and
// ordering"), so closes, each its own write, share fsyncs only when they
// come from several.
constexpr size_t kSetupConnections = 8;
// Setup calls kept in flight, over all those connections.
constexpr size_t kBatchDepth = 16;
constexpr size_t kCloseDepth = 64;
// report: reads of each of the subject's records (with its create, ten
// events per record: 1,000 records, 10,000 events, as engine_bench's
// BM_ProduceSubjectReport).
constexpr int kReadsPerRecord = 9;
// sweep: records due at each sweep (as sweep_bench's BM_Sweep1000Due).
constexpr int kDuePerSweep = 1000;
// sweep: the store's records made (and held by this client) at a time.
constexpr size_t kSetupChunk = 100'000;
// sweep --half: creates in flight (one a call, one connection), as
// compare.py's load runs' "-c 1 -d 16".
constexpr size_t kMillionDepth = 16;
// shred: Admin.completeShreds' budget per call.
constexpr uint64_t kCompleteBudget = 10000;
// The second principal the report scenario creates.
constexpr char kAuditorPrincipal[] = "load-auditor";

// The sweep's calendar, on the test clock (custosd-testclock): the store is
// made at kClockStart; due group g (an alert policy's P6M after its close)
// is closed at kClockStart + g hours + 10 minutes, so each group's erase
// deadline lies in an erase bucket (one UTC hour) of its own; sweep g runs
// at kFirstSweep + g hours, when group g's bucket hour has ended and group
// g + 1 is due only five minutes later.
constexpr char kClockStart[] = "2026-01-01T12:00:00Z";
constexpr char kFirstSweep[] = "2026-07-01T13:05:00Z";

// breach, as breach_bench's History: every record is about a subject of
// its own and granted to kSuspectPrincipal and to kBreachOtherReaders
// other readers. The records are created at kClockStart; the suspect's
// --disclosures reads fall in the window [kBreachFrom, kBreachTo); then
// the others' reads (and the suspect's, one batch in ten) from
// kBreachAfter on, one second apart, until the history holds --events.
constexpr char kSuspectPrincipal[] = "load-suspect";
constexpr int kBreachOtherReaders = 4;
constexpr char kBreachFrom[] = "2026-01-01T13:00:00Z";
constexpr char kBreachTo[] = "2026-01-01T14:00:00Z";
constexpr char kBreachAfter[] = "2026-01-01T15:00:00Z";
// breach: each reader's connections for the setup's reads (a connection's
// calls run one at a time), and the getMany calls in flight over all of
// them.
constexpr size_t kReaderConnections = 2;
constexpr size_t kReadDepth = 16;
// breach: what the scope's act records in clear; it names the benchmark,
// never a person.
constexpr char kBreachPurpose[] =
    "custos_load benchmark: the credential of load-suspect taken as stolen";

int DefaultScenarioRecords(const std::string& scenario) {
  if (scenario == "report") return 1000;
  if (scenario == "shred") return 10;
  return 10000;  // sweep and breach: the store.
}

// A scenario's failure: what failed, and with what. Thrown to Main, so
// that the started server is stopped on the way.
struct ScenarioFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void Fail(const std::string& what) { throw ScenarioFailure(what); }

// Runs `f`, a step of a scenario; a failed call becomes a ScenarioFailure
// naming the step.
template <typename F>
auto Step(const std::string& step, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const kj::Exception& e) {
    Fail(step + ": " + e.getDescription().cStr());
  }
}

int64_t NanosSince(Clock::time_point started) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() -
                                                              started)
      .count();
}

Timestamp At(const char* iso) {
  auto t = ParseTimestamp(iso);
  if (!t) Fail(std::string("bad instant ") + iso);
  return *t;
}

// One principal's connection, on the main thread's event loop.
struct Party {
  Party(const std::string& address, const std::string& principal,
        const std::string& token)
      : client(std::make_unique<capnp::EzRpcClient>(address)) {
    auto login = client->getMain<rpc::Gateway>().loginRequest();
    login.setPrincipal(principal);
    login.setToken(token);
    session = Step("logging in as " + principal, [&] {
      return login.send().wait(client->getWaitScope()).getSession();
    });
  }
  std::unique_ptr<capnp::EzRpcClient> client;
  // Destroyed before `client` (declared after it).
  std::optional<rpc::Session::Client> session;
};

// What a scenario may ask of the custosd it runs against (RunScenario's):
// its memory figures now, and a restart on the same data with the
// durability the options ask (its clock where it stood), which returns
// the new unix socket's address.
struct ServerHooks {
  std::function<ChildServer::MemoryFigures()> memory;
  std::function<std::string()> restart;
};

// What a scenario measured: its timed calls (one per repetition, in
// Measured's op), and its own figures for the JSON.
struct ScenarioResult {
  Measured measured;
  json figures = json::object();
};

class AdminScenario {
 public:
  // Logs in as the first admin and creates the load principal (a user).
  // `clock_file`: the started custosd-testclock's control file (sweep).
  // `data_dir`: its data directory, watched by --settle-quiet.
  // `tcp_address`: with --tcp-too, the same custosd's TCP address.
  AdminScenario(const LoadOptions& o, std::string address,
                const std::string& admin_token, std::string clock_file,
                std::string data_dir, std::string tcp_address = "",
                ServerHooks hooks = {})
      : o_(o),
        hooks_(std::move(hooks)),
        admin_token_(admin_token),
        address_(std::move(address)),
        tcp_address_(std::move(tcp_address)),
        clock_file_(std::move(clock_file)),
        data_dir_(std::move(data_dir)),
        admin_(address_, "admin", admin_token) {
    admin_facet_ = Step("the admin facet", [&] {
      return admin_.session->adminRequest().send().wait(wait()).getAdmin();
    });
    const std::string token = CreatePrincipal(kLoadPrincipal, rpc::Role::USER);
    for (size_t i = 0; i < kSetupConnections; ++i) {
      users_.push_back(
          std::make_unique<Party>(address_, kLoadPrincipal, token));
    }
  }

  ScenarioResult Run(int records) {
    const auto started = Clock::now();
    ScenarioResult r;
    if (o_.scenario == "report") {
      r = Report(records);
    } else if (o_.scenario == "shred") {
      r = Shred(records);
    } else if (o_.scenario == "breach") {
      r = Breach(records);
    } else {
      r = Sweep(records);
    }
    r.figures["seconds_in_all"] =
        std::chrono::duration<double>(Clock::now() - started).count();
    return r;
  }

  // The breach's scope and statistics measured again (MeasureBreach,
  // figures PREFIXscope_us and PREFIXstats_us, not the scenario's timed
  // calls) by the auditor over a new connection to `address`: the same
  // custosd's TCP address (--tcp-too), or its unix socket after a restart
  // on the same data (--then-no-sync). After Breach().
  void MeasureBreachOver(const std::string& address, const std::string& prefix,
                         ScenarioResult& r) {
    Party party(address, kAuditorPrincipal, auditor_token_);
    auto facet = Step("the auditor facet (" + prefix + ")", [&] {
      return party.session->auditorRequest().send().wait(wait()).getAuditor();
    });
    MeasureBreach(facet, prefix, /*timed_calls=*/false, r);
  }

 private:
  kj::WaitScope& wait() { return admin_.client->getWaitScope(); }
  // The load user's session for setup call `i`.
  rpc::Session::Client& User(size_t i) {
    return *users_[i % users_.size()]->session;
  }

  // A new principal with `role`; its token.
  std::string CreatePrincipal(const std::string& id, rpc::Role role) {
    auto req = admin_facet_->createPrincipalRequest();
    req.setId(id);
    req.setDisplayName("custos_load");
    req.initRoles(1).set(0, role);
    return Step("creating the principal " + id, [&] {
      return std::string(
          req.send().wait(wait()).getCreated().getToken().cStr());
    });
  }

  // Calls call(i) for i in [0, n), at most `depth` in flight (each lane
  // sends its next call when its last has returned), and waits for all of
  // them; a failed call is thrown (kj::Exception).
  void Pipeline(size_t n, size_t depth,
                const std::function<kj::Promise<void>(size_t)>& call) {
    size_t next = 0;
    std::function<kj::Promise<void>()> lane = [&]() -> kj::Promise<void> {
      if (next >= n) return kj::READY_NOW;
      return call(next++).then([&lane] { return lane(); });
    };
    kj::Vector<kj::Promise<void>> lanes;
    for (size_t d = 0; d < std::min(depth, n); ++d) lanes.add(lane());
    kj::joinPromises(lanes.releaseAsArray()).wait(wait());
  }

  // Creates `records` as the load user, kBatch a call; their ids, in order.
  std::vector<uint64_t> CreateAll(const std::vector<NewRecord>& records) {
    std::vector<uint64_t> ids(records.size(), 0);
    const size_t calls = (records.size() + kBatch - 1) / kBatch;
    Step("creating " + std::to_string(records.size()) + " records", [&] {
      Pipeline(calls, kBatchDepth, [&](size_t c) {
        const size_t from = c * kBatch;
        const size_t n = std::min(kBatch, records.size() - from);
        auto req = User(c).createManyRequest();
        auto list = req.initRecords(static_cast<unsigned>(n));
        for (size_t i = 0; i < n; ++i) FillRecord(records[from + i], list[i]);
        return req.send().then([&ids, from, n](auto&& response) {
          auto got = response.getIds();
          for (size_t i = 0; i < std::min<size_t>(n, got.size()); ++i) {
            ids[from + i] = got[i];
          }
        });
      });
    });
    if (std::count(ids.begin(), ids.end(), 0) != 0) {
      Fail("createMany returned fewer ids than records");
    }
    return ids;
  }

  // The load user reads each of `ids` `times` times, kBatch ids a getMany:
  // each read returns the personal part and writes a read event.
  void ReadAll(const std::vector<uint64_t>& ids, int times) {
    const size_t per_round = (ids.size() + kBatch - 1) / kBatch;
    size_t disclosed = 0;
    Step("reading the records", [&] {
      Pipeline(per_round * static_cast<size_t>(times), kBatchDepth,
               [&](size_t c) {
                 const size_t from = (c % per_round) * kBatch;
                 const size_t n = std::min(kBatch, ids.size() - from);
                 auto req = User(c).getManyRequest();
                 auto list = req.initIds(static_cast<unsigned>(n));
                 for (size_t i = 0; i < n; ++i) list.set(i, ids[from + i]);
                 return req.send().then([&disclosed](auto&& response) {
                   for (auto result : response.getResults()) {
                     if (result.isRecord() &&
                         result.getRecord().getPersonalIncluded()) {
                       ++disclosed;
                     }
                   }
                 });
               });
    });
    if (disclosed != ids.size() * static_cast<size_t>(times)) {
      Fail("reading the records: " + std::to_string(disclosed) + " of " +
           std::to_string(ids.size() * static_cast<size_t>(times)) +
           " reads returned the personal part");
    }
  }

  // The subject id of `identifier`, from the admin.
  std::string FindSubject(const std::string& identifier) {
    auto req = admin_facet_->findSubjectRequest();
    req.setIdentifier(identifier);
    return Step("finding a subject", [&] {
      return std::string(req.send().wait(wait()).getSubjectId().cStr());
    });
  }

  // The auditor facet of kAuditorPrincipal, created (and logged in) on
  // first use.
  rpc::Auditor::Client& AuditorFacet() {
    if (!auditor_facet_) {
      auditor_token_ = CreatePrincipal(kAuditorPrincipal, rpc::Role::AUDITOR);
      auditor_.emplace(address_, kAuditorPrincipal, auditor_token_);
      auditor_facet_ = Step("the auditor facet", [&] {
        return auditor_->session->auditorRequest()
            .send()
            .wait(wait())
            .getAuditor();
      });
    }
    return *auditor_facet_;
  }

  // A sweep that must find nothing due (it folds the statistics deltas the
  // setup wrote), then Settle().
  void SweepNothingDue() {
    const SweepFigures warm = SweepOnce("the settling sweep");
    if (warm.erased != 0 || warm.closed != 0 || warm.blocked != 0) {
      Fail("the settling sweep found due records");
    }
    Settle();
  }

  void MoveClock(Timestamp t) {
    const Status written = server::TestClock::Write(clock_file_, t);
    if (!written.ok()) Fail("moving the test clock: " + written.ToString());
  }

  // Workload 6: an auditor produces the report of a subject with `records`
  // records and ten events per record (its creates and nine reads of each
  // by their owner); the JSON's records and events are counted.
  ScenarioResult Report(int records) {
    rpc::Auditor::Client& facet = AuditorFacet();
    const auto setup_started = Clock::now();
    std::vector<std::string> subjects;
    for (int rep = 0; rep < o_.repeat; ++rep) {
      const std::string identifier =
          "report-subject-" + std::to_string(rep) + "@example.org";
      std::vector<NewRecord> batch;
      for (int i = 0; i < records; ++i) {
        batch.push_back(MakeRecordAbout(identifier, serial_++));
      }
      ReadAll(CreateAll(batch), kReadsPerRecord);
      subjects.push_back(FindSubject(identifier));
    }
    Settle();
    ScenarioResult r;
    r.figures["setup_seconds"] = Seconds(setup_started);
    // Each record's creation and reads, and the lookup of her above (an
    // event about her and no record is in her report).
    const size_t events =
        static_cast<size_t>(records) * (1 + kReadsPerRecord) + 1;
    json bytes = json::array();
    for (const std::string& subject : subjects) {
      auto req = facet.subjectReportRequest();
      req.setSubjectId(subject);
      const auto started = Clock::now();
      auto response =
          Step("the subject report", [&] { return req.send().wait(wait()); });
      r.measured.ops[kSubjectReport].nanos.push_back(NanosSince(started));
      const std::string text = response.getJson().cStr();
      bytes.push_back(text.size());
      const json report =
          json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (report.is_discarded() || !report.contains("records") ||
          !report.contains("history")) {
        Fail("the subject report is not the JSON of docs/subject-report.md");
      }
      if (report["records"].size() != static_cast<size_t>(records) ||
          report["history"].size() != events) {
        Fail("the subject report has " +
             std::to_string(report["records"].size()) + " records and " +
             std::to_string(report["history"].size()) + " events, not " +
             std::to_string(records) + " and " + std::to_string(events));
      }
    }
    r.figures["events"] = events;
    r.figures["report_bytes"] = std::move(bytes);
    return r;
  }

  // Workload 5: the admin shreds a subject of `records` records; then its
  // completion (Admin.completeShreds until nothing is pending) is timed
  // apart, and must have rewritten exactly the subject's records.
  ScenarioResult Shred(int records) {
    const auto setup_started = Clock::now();
    std::vector<std::string> subjects;
    for (int rep = 0; rep < o_.repeat; ++rep) {
      const std::string identifier =
          "shred-subject-" + std::to_string(rep) + "@example.org";
      std::vector<NewRecord> batch;
      for (int i = 0; i < records; ++i) {
        batch.push_back(MakeRecordAbout(identifier, serial_++));
      }
      CreateAll(batch);
      subjects.push_back(FindSubject(identifier));
    }
    Settle();
    ScenarioResult r;
    r.figures["setup_seconds"] = Seconds(setup_started);
    json complete_us = json::array();
    json rewritten = json::array();
    for (size_t rep = 0; rep < subjects.size(); ++rep) {
      if (rep > 0) Pause();  // After the previous completion's writes.
      auto shred = admin_facet_->shredSubjectRequest();
      shred.setSubjectId(subjects[rep]);
      const auto started = Clock::now();
      Step("the shred", [&] { shred.send().wait(wait()); });
      r.measured.ops[kShredSubject].nanos.push_back(NanosSince(started));

      const auto completing = Clock::now();
      uint64_t total = 0;
      for (;;) {
        auto req = admin_facet_->completeShredsRequest();
        req.setBudget(kCompleteBudget);
        const uint64_t done = Step("completing the shred", [&] {
          return req.send().wait(wait()).getRewritten();
        });
        if (done == 0) break;
        total += done;
      }
      complete_us.push_back(static_cast<double>(NanosSince(completing)) /
                            1000.0);
      rewritten.push_back(total);
      if (total != static_cast<uint64_t>(records)) {
        Fail("completing the shred rewrote " + std::to_string(total) +
             " records, not the subject's " + std::to_string(records));
      }
      auto find = admin_facet_->findSubjectRequest();
      find.setIdentifier("shred-subject-" + std::to_string(rep) +
                         "@example.org");
      bool found = true;
      try {
        find.send().wait(wait());
      } catch (const kj::Exception& e) {
        found = !std::string_view(e.getDescription().cStr())
                     .starts_with("remote exception: NotFound:");
      }
      if (found) Fail("a shredded subject can still be found");
    }
    r.figures["complete_us"] = std::move(complete_us);
    r.figures["rewritten"] = std::move(rewritten);
    return r;
  }

  // Workload 4: a store of `records` records (kinds request and alert),
  // --repeat groups of kDuePerSweep alerts spread evenly over it (record i
  // is in group i % stride), group g closed at its own hour; sweep g, at
  // the test clock's kFirstSweep + g hours, must erase exactly group g.
  // --half: one group of every other record (stride 2), one sweep.
  ScenarioResult Sweep(int records) {
    const int groups = o_.half ? 1 : o_.repeat;
    const int due_per_group = o_.half ? records / 2 : kDuePerSweep;
    const int stride = o_.half ? 2 : records / kDuePerSweep;
    const auto setup_started = Clock::now();
    ScenarioResult r;
    const auto kind = [&](int i) {
      const bool due = i < stride * due_per_group && i % stride < groups;
      return due ? "alert" : "request";
    };
    std::vector<uint64_t> ids;
    if (o_.half) {
      // One a call, timed, on one connection (custosd runs a connection's
      // calls in order, one at a time, as the load runs' creates).
      ids.assign(static_cast<size_t>(records), 0);
      const uint64_t first_serial = serial_;
      serial_ += static_cast<uint64_t>(records);
      const auto creates_started = Clock::now();
      Step("creating " + std::to_string(records) + " records one a call", [&] {
        Pipeline(ids.size(), kMillionDepth, [&](size_t i) {
          const uint64_t serial = first_serial + i;
          auto req = User(0).createRequest();
          FillRecord(MakeRecordAbout(Identifier(serial), serial,
                                     kind(static_cast<int>(i))),
                     req.initRecord());
          return req.send().then(
              [&ids, i](auto&& response) { ids[i] = response.getId(); });
        });
      });
      const double create_seconds = Seconds(creates_started);
      if (std::count(ids.begin(), ids.end(), 0) != 0) {
        Fail("a create returned no id");
      }
      r.figures["create_seconds"] = create_seconds;
      r.figures["create_us_per_op"] = create_seconds * 1e6 / records;
      r.figures["create_server"] = MemoryJson(hooks_.memory());
    } else {
      // Made and sent kSetupChunk records at a time: a million NewRecords
      // at once would hold about a gigabyte in this client.
      std::vector<NewRecord> batch;
      for (int i = 0; i < records; ++i) {
        batch.push_back(MakeRecordAbout(Identifier(serial_), serial_, kind(i)));
        ++serial_;
        if (batch.size() == kSetupChunk || i + 1 == records) {
          const std::vector<uint64_t> made = CreateAll(batch);
          ids.insert(ids.end(), made.begin(), made.end());
          batch.clear();
        }
      }
    }
    for (int g = 0; g < groups; ++g) {
      MoveClock(At(kClockStart) + std::chrono::hours(g) +
                std::chrono::minutes(10));
      std::vector<uint64_t> group;
      for (int i = g; i < stride * due_per_group; i += stride) {
        group.push_back(ids[static_cast<size_t>(i)]);
      }
      Step("closing the due records", [&] {
        Pipeline(group.size(), kCloseDepth, [&](size_t i) {
          auto req = User(i).closeRequest();
          req.setId(group[i]);
          return req.send().then([](auto&&) {});
        });
      });
    }
    // custosd's memory after the closes and after the settling sweep
    // (--half: the peak of the setup's custosd is taken in one of them).
    if (o_.half) r.figures["closed_server"] = MemoryJson(hooks_.memory());
    // Nothing due yet: this sweep folds the setup's statistics deltas, as
    // sweep_bench's settling does (else the first timed sweep would).
    SweepNothingDue();
    if (o_.half) {
      r.figures["settled_server"] = MemoryJson(hooks_.memory());
      // The setup's custosd ran with --no-sync: the sweep is timed by one
      // started on the same data with the durability asked.
      const auto restart_started = Clock::now();
      const std::string address = hooks_.restart();
      restarted_admin_.emplace(address, "admin", admin_token_);
      admin_facet_ = Step("the admin facet after the restart", [&] {
        return restarted_admin_->session->adminRequest()
            .send()
            .wait(wait())
            .getAdmin();
      });
      Settle();
      r.figures["restart_seconds"] = Seconds(restart_started);
    }
    r.figures["setup_seconds"] = Seconds(setup_started);
    json erased = json::array();
    for (int g = 0; g < groups; ++g) {
      MoveClock(At(kFirstSweep) + std::chrono::hours(g));
      const auto started = Clock::now();
      const SweepFigures swept = SweepOnce("the sweep");
      r.measured.ops[kSweep].nanos.push_back(NanosSince(started));
      erased.push_back(swept.erased);
      if (swept.erased != static_cast<uint64_t>(due_per_group) ||
          swept.closed != 0 || swept.blocked != 0 || !swept.complete ||
          swept.skipped != 0) {
        Fail("sweep " + std::to_string(g) + " erased " +
             std::to_string(swept.erased) + " records (closed " +
             std::to_string(swept.closed) + ", blocked " +
             std::to_string(swept.blocked) + ", skipped " +
             std::to_string(swept.skipped) +
             (swept.complete ? "" : ", incomplete") + "), not the " +
             std::to_string(due_per_group) + " due");
      }
    }
    r.figures["store_records"] = records;
    r.figures["due_per_sweep"] = due_per_group;
    r.figures["erased"] = std::move(erased);
    return r;
  }

  // Workload 8: an auditor's breach scope of kSuspectPrincipal over the
  // window, in a history of --events events (breach_bench's History, made
  // over RPC), then the statistics in the same store. The history is made
  // once: each repetition scopes the same window (each scope's own events
  // come after it) and must find exactly the --disclosures disclosures and
  // one subject per distinct record they read; each statistics query must
  // count the `records` creates.
  ScenarioResult Breach(int records) {
    rpc::Auditor::Client& auditor = AuditorFacet();
    const auto setup_started = Clock::now();
    // The suspect first, then the other readers: each with
    // kReaderConnections connections, used in turn.
    std::vector<std::string> readers = {kSuspectPrincipal};
    for (int i = 0; i < kBreachOtherReaders; ++i) {
      readers.push_back("load-reader-" + std::to_string(i));
    }
    std::vector<std::vector<std::unique_ptr<Party>>> parties;
    for (const std::string& id : readers) {
      const std::string token = CreatePrincipal(id, rpc::Role::USER);
      auto& connections = parties.emplace_back();
      for (size_t i = 0; i < kReaderConnections; ++i) {
        connections.push_back(std::make_unique<Party>(address_, id, token));
      }
    }
    std::vector<NewRecord> batch;
    for (int i = 0; i < records; ++i) {
      NewRecord record = MakeRecordAbout(SubjectIdentifier(i), serial_++);
      record.grants = readers;
      batch.push_back(std::move(record));
    }
    const std::vector<uint64_t> ids = CreateAll(batch);
    uint64_t events = ids.size();  // One per create.

    // `reads` reads of the next ids (round and round), kBatch a getMany,
    // kReadDepth in flight: call c by readers[who(c)], sent once the test
    // clock stands at at(c). A call the server runs later than it was sent
    // takes a later call's instant, never an earlier one (the clock never
    // goes back), so each call's event lies in [at(c), at(last)]. Every
    // read must return the personal part: each then wrote its event.
    size_t next_id = 0;
    std::vector<size_t> turns(parties.size(), 0);
    auto read = [&](const std::string& step, uint64_t reads,
                    const std::function<size_t(size_t)>& who,
                    const std::function<Timestamp(size_t)>& at) {
      const size_t calls = static_cast<size_t>((reads + kBatch - 1) / kBatch);
      uint64_t disclosed = 0;
      Step(step, [&] {
        Pipeline(calls, kReadDepth, [&](size_t c) {
          const size_t n = static_cast<size_t>(
              std::min<uint64_t>(kBatch, reads - c * kBatch));
          auto& connections = parties[who(c)];
          auto& party = *connections[turns[who(c)]++ % connections.size()];
          auto req = party.session->getManyRequest();
          auto list = req.initIds(static_cast<unsigned>(n));
          for (size_t i = 0; i < n; ++i) {
            list.set(i, ids[next_id++ % ids.size()]);
          }
          MoveClock(at(c));
          return req.send().then([&disclosed](auto&& response) {
            for (auto result : response.getResults()) {
              if (result.isRecord() &&
                  result.getRecord().getPersonalIncluded()) {
                ++disclosed;
              }
            }
          });
        });
      });
      if (disclosed != reads) {
        Fail(step + ": " + std::to_string(disclosed) + " of " +
             std::to_string(reads) + " reads returned the personal part");
      }
      events += reads;
    };

    const Timestamp from = At(kBreachFrom);
    const Timestamp to = At(kBreachTo);
    const auto disclosures = static_cast<uint64_t>(o_.disclosures);
    // Spread over the window as breach_bench's: call c at from + c/calls
    // of it.
    const int64_t span = ToMicros(to) - ToMicros(from) - 1;
    const auto window_calls =
        static_cast<int64_t>((disclosures + kBatch - 1) / kBatch);
    read(
        "the suspect's reads in the window", disclosures,
        [](size_t) { return size_t{0}; },
        [&](size_t c) {
          return from + std::chrono::microseconds(
                            span * static_cast<int64_t>(c) / window_calls);
        });
    // Each record is about a subject of its own.
    const uint64_t subjects = std::min<uint64_t>(disclosures, ids.size());
    if (o_.events > events) {
      const Timestamp after = At(kBreachAfter);
      read(
          "the reads after the window", o_.events - events,
          [](size_t c) {
            return c % 10 == 9 ? size_t{0} : 1 + c % kBreachOtherReaders;
          },
          [&](size_t c) {
            return after + std::chrono::seconds(static_cast<int64_t>(c));
          });
    }
    // Nothing is due (no record is closed); this sweep folds the creates'
    // statistics deltas, as breach_bench folds before its query.
    SweepNothingDue();
    ScenarioResult r;
    r.figures["setup_seconds"] = Seconds(setup_started);

    breach_ = BreachWindow{from, to, disclosures, subjects,
                           static_cast<uint64_t>(records)};
    MeasureBreach(auditor, "", /*timed_calls=*/true, r);
    if (!tcp_address_.empty()) {
      // The same auditor over a connection of its own to the TCP address.
      MeasureBreachOver(tcp_address_, "tcp_", r);
    }
    r.figures["events"] = events;
    r.figures["disclosures"] = disclosures;
    r.figures["subjects"] = subjects;
    return r;
  }

  // The breach's scope and statistics measured by `facet`: one of each
  // untimed first (so that no transport's figures include another's
  // warming of custosd), then --repeat scopes and --repeat statistics
  // queries, each timed alone and checked against breach_; their times go
  // to r's figures PREFIXscope_us and PREFIXstats_us, and with
  // `timed_calls` to its measured calls (op_us: the first transport's).
  void MeasureBreach(rpc::Auditor::Client& facet, const std::string& prefix,
                     bool timed_calls, ScenarioResult& r) {
    // The scope of kSuspectPrincipal over the window.
    const auto scope_request = [&] {
      auto req = facet.breachScopeRequest();
      req.initPrincipalIds(1).set(0, kSuspectPrincipal);
      req.setFromMicros(ToMicros(breach_.from));
      req.setToMicros(ToMicros(breach_.to));
      req.setPurpose(kBreachPurpose);
      return req;
    };
    {
      auto req = scope_request();
      Step("the untimed breach scope", [&] { return req.send().wait(wait()); });
      auto stats = facet.statisticsRequest();
      Step("the untimed statistics", [&] { return stats.send().wait(wait()); });
    }
    json scope_us = json::array();
    for (int rep = 0; rep < o_.repeat; ++rep) {
      auto req = scope_request();
      const auto started = Clock::now();
      auto response =
          Step("the breach scope", [&] { return req.send().wait(wait()); });
      const int64_t nanos = NanosSince(started);
      if (timed_calls) r.measured.ops[kBreachScope].nanos.push_back(nanos);
      scope_us.push_back(static_cast<double>(nanos) / 1000.0);
      auto scope = response.getScope();
      if (scope.getDisclosures() != breach_.disclosures ||
          scope.getSubjects().size() != breach_.subjects) {
        Fail("the breach scope found " +
             std::to_string(scope.getDisclosures()) + " disclosures about " +
             std::to_string(scope.getSubjects().size()) + " subjects, not " +
             std::to_string(breach_.disclosures) + " about " +
             std::to_string(breach_.subjects));
      }
    }
    json stats_us = json::array();
    for (int rep = 0; rep < o_.repeat; ++rep) {
      auto req = facet.statisticsRequest();  // Every kind, every month.
      const auto started = Clock::now();
      auto response =
          Step("the statistics", [&] { return req.send().wait(wait()); });
      const int64_t nanos = NanosSince(started);
      if (timed_calls) r.measured.ops[kStatistics].nanos.push_back(nanos);
      stats_us.push_back(static_cast<double>(nanos) / 1000.0);
      auto stats = response.getStatistics();
      uint64_t created = 0;
      for (auto kind : stats.getKinds()) {
        created += kind.getTotal().getCreated();
      }
      if (created != breach_.records) {
        Fail("the statistics count " + std::to_string(created) +
             " records created, not " + std::to_string(breach_.records));
      }
      // The query timed is the folded one, as breach_bench's.
      if (stats.getPending() != 0) {
        Fail("the statistics have " + std::to_string(stats.getPending()) +
             " transitions not folded");
      }
    }
    r.figures[prefix + "scope_us"] = std::move(scope_us);
    r.figures[prefix + "stats_us"] = std::move(stats_us);
  }

  struct SweepFigures {
    uint64_t closed, blocked, erased, skipped;
    bool complete;
  };
  // An admin sweep at the server's now, with no bound.
  SweepFigures SweepOnce(const std::string& step) {
    auto req = admin_facet_->sweepRequest();
    req.setAsOfMicros(0);
    req.setDryRun(false);
    req.setMaxRecords(0);
    return Step(step, [&] {
      auto response = req.send().wait(wait());
      auto report = response.getReport();
      return SweepFigures{report.getClosed(), report.getBlocked(),
                          report.getErased(), report.getSkipped(),
                          report.getComplete()};
    });
  }

  // The setup's dirty pages written out (sync(2)), as the in-process
  // benchmarks settle their stores: otherwise the first timed call that
  // syncs (a shred's keystore write always does) waits for them.
  void Settle() const {
    ::sync();
    Pause();
  }
  // --settle-quiet: until the regular files under the data directory keep
  // their names and sizes for four polls 250 ms apart.
  void WaitQuiet() const {
    const auto deadline = Clock::now() + std::chrono::minutes(2);
    std::vector<std::pair<std::string, uintmax_t>> last;
    for (int unchanged = 0; unchanged < 4;) {
      if (Clock::now() > deadline) {
        Fail("custosd's data directory was still changing after 2 minutes");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      std::vector<std::pair<std::string, uintmax_t>> now;
      std::error_code error;
      for (auto it =
               std::filesystem::recursive_directory_iterator(data_dir_, error);
           !error && it != std::filesystem::recursive_directory_iterator();
           it.increment(error)) {
        std::error_code gone;  // A file removed between listing and size.
        if (!it->is_regular_file(gone)) continue;
        const uintmax_t size = it->file_size(gone);
        if (!gone) now.emplace_back(it->path().string(), size);
      }
      if (error) continue;  // A directory changed under the walk: again.
      std::sort(now.begin(), now.end());
      unchanged = now == last ? unchanged + 1 : 0;
      last = std::move(now);
    }
  }
  // --settle-seconds: LevelDB compacts a burst of writes in the
  // background for seconds after it; a call timed meanwhile shares the
  // disk with that compaction ("Issue 16: the shred's cost" in
  // bench/RESULTS.md).
  // --settle-quiet: first until the files of the data directory stop
  // changing (WaitQuiet), then what they wrote synced.
  void Pause() const {
    if (o_.settle_quiet) {
      WaitQuiet();
      ::sync();
    }
    if (o_.settle_seconds > 0) {
      std::this_thread::sleep_for(std::chrono::seconds(o_.settle_seconds));
    }
  }

  static double Seconds(Clock::time_point since) {
    return std::chrono::duration<double>(Clock::now() - since).count();
  }

  const LoadOptions& o_;
  const ServerHooks hooks_;
  const std::string admin_token_;
  const std::string address_;
  const std::string tcp_address_;  // --tcp-too, else empty.
  const std::string clock_file_;
  const std::string data_dir_;
  Party admin_;
  // sweep --half: the admin's connection to the restarted custosd.
  std::optional<Party> restarted_admin_;
  std::vector<std::unique_ptr<Party>> users_;
  std::optional<Party> auditor_;
  std::string auditor_token_;
  // Destroyed before the parties (declared after them).
  std::optional<rpc::Admin::Client> admin_facet_;
  std::optional<rpc::Auditor::Client> auditor_facet_;
  uint64_t serial_ = 0;
  // What Breach() made: the window, the disclosures and distinct subjects
  // a scope of it must find, and the records the statistics must count.
  struct BreachWindow {
    Timestamp from, to;
    uint64_t disclosures = 0, subjects = 0, records = 0;
  };
  BreachWindow breach_;
};

// Runs --scenario against a custosd it starts, prints the JSON; 0, or 1 if
// any call failed or any count was wrong (ScenarioFailure, thrown once the
// server is stopped).
int RunScenario(const LoadOptions& o) {
  const bool sweep = o.scenario == "sweep";
  const bool breach = o.scenario == "breach";
  const int records =
      o.records > 0 ? o.records : DefaultScenarioRecords(o.scenario);
  if (o.half &&
      (!sweep || o.repeat != 1 || records < 2 || o.tcp || o.tcp_too)) {
    std::fprintf(stderr,
                 "custos_load: --half is for --scenario sweep with --repeat "
                 "1 and --records of at least 2, over the unix socket (the "
                 "restarted custosd is reached there)\n");
    return 2;
  }
  if (sweep && !o.half && records / kDuePerSweep < o.repeat) {
    std::fprintf(stderr,
                 "custos_load: --scenario sweep needs --records of at least "
                 "%d x --repeat (%d due records a sweep)\n",
                 kDuePerSweep, kDuePerSweep);
    return 2;
  }
  if (breach && o.events < static_cast<uint64_t>(records) +
                               static_cast<uint64_t>(o.disclosures)) {
    std::fprintf(stderr,
                 "custos_load: --scenario breach needs --events of at least "
                 "--records + --disclosures (a create and a read each)\n");
    return 2;
  }
  // Both move the server's clock.
  const bool test_clock = sweep || breach;
  ChildServer server("custos-load-custosd");
  // The scheduled maintenance's sweeps and shred completions would share
  // the engine with the timed calls: once a day is never, here.
  std::vector<std::string> extra = {"--maintenance-interval", "86400"};
  std::string clock_file;
  if (test_clock) {
    clock_file = server.dir() + "/custos-test-clock";
    extra.insert(extra.end(), {"--test-clock", kClockStart, "--test-clock-file",
                               clock_file});
  }
  // --tcp-too: custosd listens on a known loopback port, the scenario
  // starts on its unix socket.
  LoadOptions start = o;
  start.tcp = o.tcp || o.tcp_too;
  // --half: the store is made without sync (ServerHooks::restart then
  // starts custosd again with the durability asked).
  if (o.half) start.no_sync = true;
  std::string address = StartCustosd(
      server, start, test_clock ? o.testclock_binary : o.server_binary, extra);
  std::string tcp_address;
  if (o.tcp_too) {
    tcp_address = address;
    address = "unix:" + server.dir() + "/custos-data/custosd.sock";
  }
  ScenarioResult r;
  // --then-no-sync and --half: the first custosd's memory, before its
  // restarts.
  std::optional<ChildServer::MemoryFigures> first_memory;
  ServerHooks hooks;
  hooks.memory = [&server] { return server.Memory(); };
  hooks.restart = [&] {
    first_memory = server.Memory();
    const std::string now = ReadLine(clock_file);
    if (!server.Stop()) Fail("custosd did not stop cleanly on SIGTERM");
    StartCustosd(server, o, o.testclock_binary,
                 {"--maintenance-interval", "86400", "--test-clock", now,
                  "--test-clock-file", clock_file});
    return "unix:" + server.dir() + "/custos-data/custosd.sock";
  };
  try {
    AdminScenario scenario(
        o, address, ReadLine(server.dir() + "/custos-admin.token"), clock_file,
        server.dir() + "/custos-data", tcp_address, hooks);
    r = scenario.Run(records);
    if (o.then_no_sync) {
      // Restarted twice on the same data, its clock where it stood: synced
      // (restarted_sync_: what the sync-off figures are paired with, both
      // measured by a custosd just started on the history, its caches
      // cold), then with --no-sync (nosync_). SIGTERM: custosd finishes
      // what is in flight and closes the engine.
      first_memory = server.Memory();
      for (const bool no_sync : {false, true}) {
        const std::string now = ReadLine(clock_file);
        if (!server.Stop()) Fail("custosd did not stop cleanly on SIGTERM");
        LoadOptions again = o;
        again.no_sync = no_sync;
        StartCustosd(server, again, o.testclock_binary,
                     {"--maintenance-interval", "86400", "--test-clock", now,
                      "--test-clock-file", clock_file});
        scenario.MeasureBreachOver(
            "unix:" + server.dir() + "/custos-data/custosd.sock",
            no_sync ? "nosync_" : "restarted_sync_", r);
      }
    }
  } catch (const ScenarioFailure&) {
    // What the server said about it, before its directory goes.
    const std::string log = server.Log();
    size_t from = log.size();
    for (int lines = 0; lines < 21 && from > 0; lines += 1) {
      from = log.rfind('\n', from - 1);
      if (from == std::string::npos) {
        from = 0;
        break;
      }
    }
    std::fprintf(stderr, "custos_load: the end of custosd's log:\n%s\n",
                 log.substr(from).c_str());
    throw;
  }

  Measured& m = r.measured;
  json op_us = json::array();
  for (const OpStats& s : m.ops) {
    for (int64_t ns : s.nanos) {
      m.seconds += static_cast<double>(ns) / 1e9;
      op_us.push_back(static_cast<double>(ns) / 1000.0);
    }
  }
  json out = {
      {"scenario", o.scenario}, {"connections", 1},   {"depth", 1},
      {"repeat", o.repeat},     {"records", records}, {"sync", !o.no_sync}};
  out["address"] =
      o.tcp ? "tcp " + address + " (started)" : std::string("unix (started)");
  if (o.tcp_too) out["tcp_address"] = "tcp " + tcp_address + " (started)";
  if (o.then_no_sync) {
    out["then_no_sync"] =
        "custosd restarted on the same data, synced, then with --no-sync";
  }
  if (o.half) {
    out["half"] =
        "the store made by a custosd with --no-sync, the sweep timed by one "
        "restarted on the same data";
  }
  out["server"] = MemoryJson(first_memory ? *first_memory : server.Memory());
  if (first_memory) out["server_restarted"] = MemoryJson(server.Memory());
  server.Stop();
  out["target"] = "custosd";
  out.update(Report(m));
  out["op_us"] = op_us;
  out.update(r.figures);
  std::printf("%s\n", out.dump(2).c_str());

  std::string times;
  for (const auto& t : op_us) {
    times += (times.empty() ? "" : ", ") +
             std::to_string(static_cast<int64_t>(t.get<double>()));
  }
  std::fprintf(stderr,
               "custos_load: scenario %s, %d records, %s, %s: %s us "
               "(%d repetitions; setup %.1f s)\n",
               o.scenario.c_str(), records, o.no_sync ? "no sync" : "sync",
               o.tcp ? "tcp" : "unix", times.c_str(), o.repeat,
               r.figures.value("setup_seconds", 0.0));
  return 0;
}

// ------------------------------------------------------------------- main

// Logs in as the first admin (id "admin") and creates the load principal,
// or (a store that already has one) replaces its token; returns the token.
std::string CreateLoadPrincipal(const std::string& address,
                                const std::string& admin_token) {
  capnp::EzRpcClient client(address);
  auto& wait = client.getWaitScope();
  auto login = client.getMain<rpc::Gateway>().loginRequest();
  login.setPrincipal("admin");
  login.setToken(admin_token);
  auto admin = login.send().getSession().adminRequest().send().getAdmin();
  auto create = admin.createPrincipalRequest();
  create.setId(kLoadPrincipal);
  create.setDisplayName("custos_load");
  create.initRoles(1).set(0, rpc::Role::USER);
  try {
    auto response = create.send().wait(wait);
    return response.getCreated().getToken();
  } catch (const kj::Exception& e) {
    if (!e.getDescription().startsWith("remote exception: AlreadyExists:") &&
        !e.getDescription().startsWith("AlreadyExists:")) {
      throw;
    }
  }
  auto rotate = admin.rotateCredentialRequest();
  rotate.setId(kLoadPrincipal);
  auto response = rotate.send().wait(wait);
  return response.getToken();
}

int Main(int argc, char** argv) {
  LoadOptions o;
  CLI::App app{
      "custos_load: drives custosd (or a bare Cap'n Proto echo server, or "
      "the engine in process) and reports throughput and latency as JSON"};
  app.add_option("--connect", o.connect,
                 "a running custosd: unix:PATH or HOST:PORT");
  app.add_flag("--start-server", o.start_server,
               "start a throwaway server (custosd, or echo_server with "
               "--echo) in a temp dir, and report its peak RSS");
  app.add_flag("--echo", o.echo, "drive a bare Cap'n Proto echo server");
  app.add_flag("--in-process", o.in_process,
               "Engine::CreateRecord from --connections threads, no RPC");
  app.add_flag("--tcp", o.tcp,
               "with --start-server: connect to the started custosd over "
               "TCP on 127.0.0.1 instead of its unix socket");
  app.add_flag("--tcp-too", o.tcp_too,
               "with --scenario breach: time the scope and the statistics "
               "over the unix socket, then again over loopback TCP to the "
               "same custosd (tcp_scope_us, tcp_stats_us)")
      ->excludes("--tcp");
  app.add_flag("--then-no-sync", o.then_no_sync,
               "with --scenario breach: then restart the custosd on the same "
               "data with --no-sync and time the scope and the statistics "
               "again over its unix socket (nosync_scope_us, "
               "nosync_stats_us), after a synced restart "
               "(restarted_sync_scope_us, restarted_sync_stats_us)")
      ->excludes("--tcp");
  app.add_flag("--no-sync", o.no_sync,
               "the started custosd (or in-process engine) does not fsync");
  app.add_option("-c,--connections", o.connections,
                 "client connections (threads with --in-process)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("-d,--depth", o.depth, "calls in flight per connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--batch", o.batch,
                 "with --in-process: records per Engine::CreateRecords call")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--duration", o.duration_seconds, "measured seconds")
      ->capture_default_str();
  app.add_option("--warmup", o.warmup_seconds,
                 "seconds of load before measuring")
      ->capture_default_str();
  app.add_option("--count", o.count,
                 "measured operations instead of --duration (0: duration)")
      ->capture_default_str();
  app.add_option("--mix", o.mix,
                 "weights of create, get, list, close (without creates, each "
                 "connection first creates 100 records, in the warm-up)")
      ->capture_default_str();
  app.add_option("--principal", o.principal,
                 "log in as this user principal (with --token-file)");
  app.add_option("--token-file", o.token_file, "its token");
  app.add_option("--admin-token-file", o.admin_token_file,
                 "log in as the first admin and create the user "
                 "'load-user' (instead of --principal)");
  app.add_option("--server-binary", o.server_binary,
                 "custosd for --start-server")
      ->capture_default_str();
  app.add_option("--echo-server-binary", o.echo_binary,
                 "echo_server for --start-server --echo")
      ->capture_default_str();
  app.add_option("--scenario", o.scenario,
                 "instead of the load, time one admin or auditor call on a "
                 "started custosd, --repeat times: report (a subject's "
                 "report), shred (a subject's shred, then its completion), "
                 "sweep (1,000 due; custosd-testclock) or breach (a breach "
                 "scope, then the statistics, in a history of --events; "
                 "custosd-testclock)")
      ->check(CLI::IsMember({"report", "shred", "sweep", "breach"}));
  app.add_option("--repeat", o.repeat,
                 "with --scenario: timed calls, each on fresh data (breach: "
                 "all on the one history)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--records", o.records,
                 "with --scenario: the subject's records (report: 1000, "
                 "with 10 events each; shred: 10), or the store's (sweep, "
                 "breach: 10000)")
      ->check(CLI::Range(1, 10'000'000));
  app.add_option("--settle-seconds", o.settle_seconds,
                 "with --scenario: wait this long after the setup's sync, "
                 "and before each shred after the first, so that the "
                 "server's compactions are over before a call is timed")
      ->capture_default_str()
      ->check(CLI::Range(0, 600));
  app.add_flag("--settle-quiet", o.settle_quiet,
               "with --scenario: each settling also waits until the files "
               "of the server's data directory keep their names and sizes "
               "for a second (its compactions over), at most 2 minutes");
  app.add_option("--disclosures", o.disclosures,
                 "with --scenario breach: the suspect's reads in the window "
                 "(at most the server's default breach limit)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000));
  app.add_option("--events", o.events,
                 "with --scenario breach: the history's events once made "
                 "(one per create and per read)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{100'000'000}));
  app.add_flag("--half", o.half,
               "with --scenario sweep and --repeat 1: every other record "
               "due, swept at once (--records 1000000: issue 16's 500,000 "
               "due of 1,000,000, spread)");
  app.add_option("--testclock-server-binary", o.testclock_binary,
                 "custosd-testclock for --scenario sweep and breach")
      ->capture_default_str();
  app.add_option("--server-arg", o.server_args,
                 "one more argument for the started custosd "
                 "(--server-arg=--workers=8)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  const auto weights = ParseMix(o.mix);
  if (!weights) {
    std::fprintf(stderr, "custos_load: bad --mix '%s'\n", o.mix.c_str());
    return 2;
  }
  if ((o.tcp_too || o.then_no_sync) && o.scenario != "breach") {
    std::fprintf(stderr,
                 "custos_load: --tcp-too and --then-no-sync are for "
                 "--scenario breach only\n");
    return 2;
  }
  if (o.then_no_sync && o.no_sync) {
    std::fprintf(stderr,
                 "custos_load: --then-no-sync restarts a synced custosd "
                 "without sync; not with --no-sync\n");
    return 2;
  }
  if (o.tcp && (!o.start_server || o.echo)) {
    std::fprintf(stderr,
                 "custos_load: --tcp needs --start-server, no --echo\n");
    return 2;
  }
  if (!o.in_process && o.start_server == !o.connect.empty()) {
    std::fprintf(stderr,
                 "custos_load: give --connect or --start-server (or "
                 "--in-process)\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (!o.scenario.empty()) {
    if (!o.start_server || o.echo || o.in_process || !o.connect.empty()) {
      std::fprintf(stderr,
                   "custos_load: --scenario needs --start-server, and no "
                   "--echo, --in-process or --connect\n");
      return 2;
    }
    try {
      return RunScenario(o);
    } catch (const ScenarioFailure& e) {
      std::fprintf(stderr, "custos_load: --scenario %s failed: %s\n",
                   o.scenario.c_str(), e.what());
      return 1;
    }
  }

  json out = {{"connections", o.connections},
              {"depth", o.in_process ? 1 : o.depth}};
  if (o.in_process) out["batch"] = o.batch;
  // Known only for a server or engine this run started.
  const bool sync_known = !o.echo && (o.in_process || o.start_server);
  if (sync_known) out["sync"] = !o.no_sync;
  Measured m;
  std::optional<ChildServer> server;
  std::string target;
  if (o.in_process) {
    target = "in-process";
    m = RunInProcess(o);
  } else {
    std::string address = o.connect;
    std::string principal = o.principal;
    std::string token;
    if (o.start_server && o.echo) {
      server.emplace("custos-load-echo");
      const std::string socket = server->dir() + "/echo.sock";
      server->Start({o.echo_binary, socket}, "echo_server: serving");
      address = "unix:" + socket;
    } else if (o.start_server) {
      server.emplace("custos-load-custosd");
      address = StartCustosd(*server, o, o.server_binary, {});
      o.admin_token_file = server->dir() + "/custos-admin.token";
    }
    if (!o.echo) {
      if (!o.admin_token_file.empty()) {
        token = CreateLoadPrincipal(address, ReadLine(o.admin_token_file));
        principal = kLoadPrincipal;
      } else if (!principal.empty() && !o.token_file.empty()) {
        token = ReadLine(o.token_file);
      } else {
        std::fprintf(stderr,
                     "custos_load: give --principal and --token-file, or "
                     "--admin-token-file\n");
        return 2;
      }
    }
    target = o.echo ? "echo" : "custosd";
    {
      RpcLoad load(o, *weights);
      m = load.Run(address, principal, token);
      if (o.echo) out["echo_bytes"] = load.echo_bytes();
      if (server) out["server"] = MemoryJson(server->Memory());
    }  // The load's connections closed: custosd's stop waits up to a
       // second for a client still connected (docs/api.md, "Threading and
       // ordering").
    out["address"] = !o.start_server ? address
                     : o.tcp         ? "tcp " + address + " (started)"
                                     : std::string("unix (started)");
    if (server) server->Stop();
  }
  out["target"] = target;
  if (!o.echo && !o.in_process) out["mix"] = o.mix;
  out.update(Report(m));
  std::printf("%s\n", out.dump(2).c_str());

  const json& lat = out["latency_us"];
  std::fprintf(stderr,
               "custos_load: %s, %d conn x depth %d, %s: %.0f ops/s, "
               "p50 %.0f us, p99 %.0f us, p999 %.0f us, %llu errors",
               target.c_str(), o.connections, o.in_process ? 1 : o.depth,
               o.echo        ? "no engine"
               : !sync_known ? "server's durability"
               : o.no_sync   ? "no sync"
                             : "sync",
               out["ops_per_s"].get<double>(), lat["p50"].get<double>(),
               lat["p99"].get<double>(), lat["p999"].get<double>(),
               static_cast<unsigned long long>(out["errors"].get<uint64_t>()));
  if (out.contains("server")) {
    std::fprintf(stderr, ", server peak RSS %llu KiB",
                 static_cast<unsigned long long>(
                     out["server"]["peak_rss_kib"].get<uint64_t>()));
  }
  std::fprintf(stderr, "\n");
  return out["errors"].get<uint64_t>() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace custos::bench

int main(int argc, char** argv) {
  try {
    return custos::bench::Main(argc, argv);
  } catch (const kj::Exception& e) {
    // A refused login or principal creation, or a lost connection.
    std::fprintf(stderr, "custos_load: %s\n", e.getDescription().cStr());
    return 1;
  }
}
