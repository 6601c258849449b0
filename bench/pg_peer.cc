#include "bench/pg_peer.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>

namespace custos::bench {
namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(50);
// A fast shutdown of an idle server takes well under a second; past this,
// the server is killed.
constexpr auto kStopTimeout = std::chrono::seconds(30);
// The superuser initdb creates, and the user Connect() connects as.
constexpr char kSuperuser[] = "custos";

Status Errno(const std::string& what) {
  return Status::Internal(what + ": " + std::strerror(errno));
}

struct Credentials {
  uid_t uid;
  gid_t gid;
};

// The last `bytes` bytes of the file at `path`, for error messages.
std::string Tail(const std::string& path, std::streamoff bytes = 2000) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "(no log)";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(size > bytes ? size - bytes : 0);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Forks and execs `argv` (argv[0] is the program's path) with stdout and
// stderr appended to `log_path`, stdin from /dev/null, `dir` as working
// directory and a minimal environment; as `as` when given. The child gets
// SIGQUIT when this process dies.
Result<pid_t> Spawn(const std::vector<std::string>& argv,
                    const std::string& log_path, const std::string& dir,
                    std::optional<Credentials> as) {
  const int log_fd =
      ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return Fail(Errno("open " + log_path));
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    ::close(log_fd);
    return Fail(Errno("open /dev/null"));
  }
  // Everything the child needs is built before fork(): between fork() and
  // exec() it calls async-signal-safe functions only.
  std::vector<char*> args;
  for (const std::string& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  static constexpr const char* kEnv[] = {"PATH=/usr/bin:/bin", "LC_ALL=C",
                                         "TZ=UTC", nullptr};
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    ::close(null_fd);
    return Fail(Errno("fork"));
  }
  if (pid == 0) {
    if (::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 ||
        ::dup2(log_fd, 2) < 0) {
      ::_exit(126);
    }
    if (as && (::setgroups(0, nullptr) != 0 || ::setgid(as->gid) != 0 ||
               ::setuid(as->uid) != 0)) {
      static constexpr char kMessage[] = "pg_peer: cannot drop privileges\n";
      [[maybe_unused]] ssize_t ignored =
          ::write(2, kMessage, sizeof(kMessage) - 1);
      ::_exit(126);
    }
    // After setuid: a change of credentials clears the death signal.
    ::prctl(PR_SET_PDEATHSIG, SIGQUIT);
    if (::getppid() != parent) ::_exit(126);
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    ::execve(args[0], args.data(), const_cast<char* const*>(kEnv));
    static constexpr char kMessage[] = "pg_peer: exec failed\n";
    [[maybe_unused]] ssize_t ignored =
        ::write(2, kMessage, sizeof(kMessage) - 1);
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(null_fd);
  return pid;
}

// Whether `pid` has exited (and reaps it); its wait status in `status`.
bool Exited(pid_t pid, int* status) {
  return ::waitpid(pid, status, WNOHANG) == pid;
}

void Kill(pid_t pid) {
  ::kill(pid, SIGKILL);
  int ignored = 0;
  ::waitpid(pid, &ignored, 0);
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status))
    return std::string("exit status ") + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string("signal ") + std::to_string(WTERMSIG(status));
  return std::string("wait status ") + std::to_string(status);
}

}  // namespace

Result<std::unique_ptr<PgPeer>> PgPeer::Start(const PgPeerOptions& options) {
  const std::string initdb = options.bin_dir + "/initdb";
  const std::string postgres = options.bin_dir + "/postgres";
  for (const std::string* program : {&initdb, &postgres}) {
    if (::access(program->c_str(), X_OK) != 0) {
      return Fail(Status::NotFound(
          *program + " is not an executable (Debian package postgresql-15)"));
    }
  }
  std::optional<Credentials> as;
  if (::geteuid() == 0) {
    const passwd* user = ::getpwnam(options.run_as.c_str());
    if (user == nullptr) {
      return Fail(Status::NotFound("no user '" + options.run_as +
                                   "' to run PostgreSQL as (root cannot)"));
    }
    as = Credentials{user->pw_uid, user->pw_gid};
  }

  std::unique_ptr<PgPeer> peer(new PgPeer());
  std::string dir = "/tmp/custos-pg-peer-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) return Fail(Errno("mkdtemp"));
  peer->dir_ = dir;  // From here on the destructor removes it.
  if (as && ::chown(dir.c_str(), as->uid, as->gid) != 0) {
    return Fail(Errno("chown " + dir));
  }
  const std::string data = dir + "/data";

  const std::string initdb_log = dir + "/initdb.log";
  auto initdb_pid = Spawn({initdb, "-D", data, "-U", kSuperuser, "--auth=trust",
                           "--encoding=UTF8", "--locale=C", "--no-sync"},
                          initdb_log, dir, as);
  if (!initdb_pid) return Fail(initdb_pid.error());
  const auto initdb_deadline =
      std::chrono::steady_clock::now() + options.initdb_timeout;
  int status = 0;
  while (!Exited(*initdb_pid, &status)) {
    if (std::chrono::steady_clock::now() > initdb_deadline) {
      Kill(*initdb_pid);
      return Fail(
          Status::Unavailable(std::string("initdb did not finish in ") +
                              std::to_string(options.initdb_timeout.count()) +
                              " s; its log:\n" + Tail(initdb_log)));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Fail(Status::Unavailable(std::string("initdb failed (") +
                                    DescribeExit(status) + "); its log:\n" +
                                    Tail(initdb_log)));
  }

  const char* durable = options.fsync ? "on" : "off";
  std::vector<std::string> argv = {postgres,
                                   "-D",
                                   data,
                                   "-k",
                                   dir,
                                   "-c",
                                   "listen_addresses=",
                                   "-c",
                                   std::string("fsync=") + durable,
                                   "-c",
                                   std::string("synchronous_commit=") + durable,
                                   "-c",
                                   std::string("full_page_writes=") + durable};
  for (const auto& [name, value] : options.settings) {
    argv.push_back("-c");
    argv.push_back(name + "=" + value);
  }
  const std::string server_log = dir + "/server.log";
  auto server_pid = Spawn(argv, server_log, dir, as);
  if (!server_pid) return Fail(server_pid.error());
  peer->server_pid_ = *server_pid;
  peer->conninfo_ = "host=" + dir + " dbname=postgres user=" + kSuperuser +
                    " connect_timeout=10";

  const auto start_deadline =
      std::chrono::steady_clock::now() + options.start_timeout;
  while (PQping(peer->conninfo_.c_str()) != PQPING_OK) {
    if (Exited(peer->server_pid_, &status)) {
      peer->server_pid_ = -1;
      return Fail(Status::Unavailable(std::string("postgres exited (") +
                                      DescribeExit(status) + "); its log:\n" +
                                      Tail(server_log)));
    }
    if (std::chrono::steady_clock::now() > start_deadline) {
      return Fail(Status::Unavailable(
          std::string("postgres did not accept connections in ") +
          std::to_string(options.start_timeout.count()) + " s; its log:\n" +
          Tail(server_log)));
    }
    std::this_thread::sleep_for(kPollInterval);
  }

  auto conn = peer->Connect();
  if (!conn) return Fail(conn.error());
  PgResult version(PQexec(conn->get(), "SHOW server_version"));
  if (PQresultStatus(version.get()) != PGRES_TUPLES_OK) {
    return Fail(Status::Internal(std::string("SHOW server_version: ") +
                                 PQerrorMessage(conn->get())));
  }
  peer->server_version_ = PQgetvalue(version.get(), 0, 0);
  return peer;
}

PgPeer::~PgPeer() { Stop(); }

void PgPeer::Stop() {
  if (server_pid_ > 0) {
    ::kill(server_pid_, SIGINT);
    const auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
    int status = 0;
    while (!Exited(server_pid_, &status)) {
      if (std::chrono::steady_clock::now() > deadline) {
        Kill(server_pid_);
        break;
      }
      std::this_thread::sleep_for(kPollInterval);
    }
    server_pid_ = -1;
  }
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    dir_.clear();
  }
}

Result<PgConn> PgPeer::Connect() const {
  PgConn conn(PQconnectdb(conninfo_.c_str()));
  if (conn == nullptr)
    return Fail(Status::Unavailable("PQconnectdb: no memory"));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return Fail(Status::Unavailable(std::string("connect to PostgreSQL: ") +
                                    PQerrorMessage(conn.get())));
  }
  return conn;
}

Status PgExec(PGconn* conn, const std::string& sql) {
  PgResult result(PQexec(conn, sql.c_str()));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return Status::Internal(sql.substr(0, 60) + ": " + PQerrorMessage(conn));
  }
  return Status::Ok();
}

Status PgCopy(PGconn* conn, const std::string& sql, int64_t rows,
              const std::function<void(int64_t, std::string&)>& row) {
  constexpr size_t kChunk = 1 << 20;
  PgResult copy(PQexec(conn, sql.c_str()));
  if (PQresultStatus(copy.get()) != PGRES_COPY_IN) {
    return Status::Internal(sql.substr(0, 60) + ": " + PQerrorMessage(conn));
  }
  std::string chunk;
  for (int64_t i = 0; i < rows; ++i) {
    row(i, chunk);
    if (chunk.size() >= kChunk || i + 1 == rows) {
      if (PQputCopyData(conn, chunk.data(), static_cast<int>(chunk.size())) !=
          1) {
        return Status::Internal(std::string("COPY data: ") +
                                PQerrorMessage(conn));
      }
      chunk.clear();
    }
  }
  if (PQputCopyEnd(conn, nullptr) != 1) {
    return Status::Internal(std::string("COPY end: ") + PQerrorMessage(conn));
  }
  Status status;
  for (PgResult result(PQgetResult(conn)); result != nullptr;
       result.reset(PQgetResult(conn))) {
    if (status.ok() && PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
      status = Status::Internal(std::string("COPY: ") + PQerrorMessage(conn));
    }
  }
  return status;
}

void AppendCopyBytea(std::string& out, std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\\\x";
  for (uint8_t byte : bytes) {
    out += kHex[byte >> 4];
    out += kHex[byte & 0xf];
  }
}

}  // namespace custos::bench
