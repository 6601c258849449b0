// custosd: the Custos server (man page docs/custosd.8, docs/operations.md).
//
// With no arguments it runs on its embedded defaults: the data directory
// ./custos-data, a master key file ./custos-master.key (created, mode 0600,
// on first start), a first admin credential written once to
// ./custos-admin.token (mode 0600), the unix socket
// ./custos-data/custosd.sock and TCP on 127.0.0.1:7457; erased bytes are
// compacted by its maintenance timer, 300 s after their erasure at the
// earliest (--erasure-compaction-delay). SIGTERM and SIGINT
// stop it cleanly. Under systemd (packaging/custosd.service) the master key
// comes from the service's credentials ($CREDENTIALS_DIRECTORY).
//
// Built a second time, with CUSTOS_TEST_CLOCK defined, as
// custosd-testclock: the test build, whose --test-clock option lets a test
// move the server's clock (server/test_clock.h). This production build has
// no test clock and refuses the option.

#include <kj/async-unix.h>
#include <signal.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>

#include "base/clock.h"
#include "crypto/master_key.h"
#include "server/first_start.h"
#include "server/kj_log.h"
#include "server/maintenance.h"
#include "server/number_option.h"
#include "server/server.h"
#include "storage/engine.h"
#include "storage/keyring.h"
#include "storage/limits.h"
#include "storage/period.h"
#include "storage/reminders.h"
#ifdef CUSTOS_TEST_CLOCK
#include "base/time_text.h"
#include "server/test_clock.h"
#endif

namespace {

using custos::Status;

// A PEM private key file is a few kilobytes; more is not one.
constexpr size_t kMaxTlsKeyFileBytes = 1 << 20;

// --erasure-compaction-delay, in seconds. The default keeps EraseRecord's
// compaction off the caller's path and batches it, yet bounds how long an
// early-erased record's ciphertext stays on disk (still decipherable by the
// subject's and bucket's keys until compacted) to minutes: with the
// default --maintenance-interval, 300 + 60 s. The maximum keeps the bound
// a bound (docs/decisions.md, "custosd's erasure compaction delay").
constexpr int64_t kDefaultErasureCompactionDelay = 300;
constexpr int64_t kMaxErasureCompactionDelay = 30 * 24 * 3600;

// Raises the soft limit on open files to the hard one: tables read with
// pread keep their descriptor for at most a fifth of the soft limit of
// them (storage/log_sync_env.h), and the usual soft 1,024 gives 204 for
// the 850 tables of a store of a million records. A failure leaves the
// limit as it was (past the budget a table opens its file per read).
void RaiseOpenFilesLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 ||
      limit.rlim_cur >= limit.rlim_max) {
    return;
  }
  limit.rlim_cur = limit.rlim_max;
  (void)setrlimit(RLIMIT_NOFILE, &limit);
}

int Die(const std::string& what) {
  std::fprintf(stderr, "custosd: %s\n", what.c_str());
  return 1;
}

// Reads a whole (small) file; nullopt if it cannot be read.
std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return text;
}

// The master key: from the systemd credential `credential` when
// $CREDENTIALS_DIRECTORY is set (and `credential` is not empty; never
// created), else from the key file if it exists, else from
// CUSTOS_MASTER_KEY, else (only for a data directory that holds no store
// yet) a new key file. `*from_file`: whether it is the key file's;
// `*source`: where it came from, for an operator.
custos::Result<custos::crypto::SecretKey> MasterKey(
    const std::string& file, const std::string& dir,
    const std::string& credential, bool* from_file, std::string* source) {
  *from_file = false;
  // CUSTOS_MASTER_KEY is read at most once, whichever source is used: on
  // return its value is wiped where it lies and the variable removed, so
  // the key is not left in /proc/<pid>/environ, a core dump or a child's
  // environment for the life of the server (helper-131, helper-132).
  struct WipeKeyVariable {
    ~WipeKeyVariable() {
      if (char* value = std::getenv("CUSTOS_MASTER_KEY"); value != nullptr) {
        sodium_memzero(value, std::strlen(value));
        ::unsetenv("CUSTOS_MASTER_KEY");
      }
    }
  } wipe_key_variable;
  const char* credentials = std::getenv("CREDENTIALS_DIRECTORY");
  if (credentials != nullptr && *credentials != '\0' && !credential.empty()) {
    const std::string path = std::string(credentials) + "/" + credential;
    if (!std::filesystem::exists(path)) {
      return custos::Fail(Status::FailedPrecondition(
          "$CREDENTIALS_DIRECTORY holds no credential '" + credential +
          "' (the master key; see LoadCredential= in custosd.service)"));
    }
    *source = "the systemd credential '" + credential + "'";
    return custos::crypto::LoadMasterKeyFile(path);
  }
  if (std::filesystem::exists(file)) {
    *from_file = true;
    *source = "the key file " + file;
    return custos::crypto::LoadMasterKeyFile(file);
  }
  *source = "CUSTOS_MASTER_KEY";
  auto from_env = custos::crypto::LoadMasterKeyFromEnv();
  if (from_env || from_env.error().code() != custos::StatusCode::kNotFound) {
    return from_env;
  }
  if (std::filesystem::exists(dir + "/records")) {
    return custos::Fail(Status::FailedPrecondition(
        "the data directory holds a store but there is no master key file "
        "at " +
        file + " and CUSTOS_MASTER_KEY is not set"));
  }
  *from_file = true;
  *source = "the new key file " + file;
  auto created = custos::crypto::GenerateMasterKeyFile(file);
  if (created) {
    std::fprintf(stderr,
                 "custosd: created a new master key in %s (mode 0600); "
                 "keep a copy apart from the data: without it nothing can "
                 "be read\n",
                 file.c_str());
  }
  return created;
}

#ifndef CUSTOS_TEST_CLOCK
// True if `argv` names the test build's clock options, which this build
// does not have.
bool AsksForTestClock(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]).starts_with("--test-clock")) return true;
  }
  return false;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists (kj requires it), so a signal reaches the
  // event loop instead of killing the process mid-write.
  // For the process's lifetime (this thread's; server/kj_log.h).
  custos::server::QuietKjLog quiet_kj_log;
  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);
  signal(SIGPIPE, SIG_IGN);
  // Everything custosd creates is its own user's alone, whatever umask it
  // was started with (the packaged unit's UMask=0077): LevelDB creates its
  // directories 0755 and its files 0644 less the umask, and they hold
  // principals' display names, hold reasons and history headers. The unix
  // socket is made 0660 explicitly (server.cc); inside the data directory,
  // now 0700, it serves its owner only (docs/operations.md).
  ::umask(077);

#ifndef CUSTOS_TEST_CLOCK
  if (AsksForTestClock(argc, argv)) {
    std::fprintf(stderr,
                 "custosd: --test-clock is not available: this is the "
                 "production build, whose clock is the system clock; the "
                 "test clock exists only in the test build "
                 "custosd-testclock (custosd(8))\n");
    return 2;
  }
#endif
  CLI::App app{"custosd: the Custos storage server"};
  std::string data_dir = "./custos-data";
  std::string key_file = "./custos-master.key";
  std::string token_file = "./custos-admin.token";
  std::string socket_path;  // Default: <data_dir>/custosd.sock.
  std::string backup_dir = "./custos-backups";
  std::string key_dir;  // "": the directory of --master-key-file.
  std::string listen = "127.0.0.1:7457";
  bool allow_remote_plain_tcp = false;
  bool no_sync = false;
  size_t workers = 16;
  int maintenance_seconds = 60;
  size_t history_examined = custos::Options{}.history_examined_per_sweep;
  // Off the callers' path by default (docs/decisions.md, issue 11): the
  // engine's default, 0, compacts inside every erasing call.
  int64_t erasure_compaction_delay_seconds = kDefaultErasureCompactionDelay;
  std::string key_credential = "master.key";
  std::string generate_key_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  double tls_handshake_seconds = 10;
  double login_timeout_seconds = 30;
  double stop_grace_seconds = 10;
  size_t max_connections = 256;
  size_t max_calls_in_flight = 1024;
  size_t max_message_bytes = 8 << 20;
  int metrics_port = 0;
  std::string reminder_warn_before =
      custos::kDefaultReminderWarnBefore.ToString();
  std::string reminder_open_too_long =
      custos::kDefaultReminderOpenTooLong.ToString();
  int reminder_interval_seconds = 60;
  app.add_option("--data-dir", data_dir, "the data directory")
      ->capture_default_str();
  app.add_option("--master-key-file", key_file,
                 "the master key file (created on first start)")
      ->capture_default_str();
  app.add_option("--admin-token-file", token_file,
                 "where the first admin's credential is written once")
      ->capture_default_str();
  app.add_option("--socket", socket_path,
                 "the unix socket (default: DATA_DIR/custosd.sock; '' for "
                 "none)");
  app.add_option("--backup-dir", backup_dir,
                 "the only directory where admins' backups and restore kits "
                 "are written and read (created, mode 0700, if missing)")
      ->capture_default_str();
  app.add_option("--key-dir", key_dir,
                 "the only directory from which an admin's master key "
                 "rotation reads the new key file (default: the directory "
                 "of --master-key-file when the master key is read from "
                 "that file; none when it comes from a systemd credential "
                 "or CUSTOS_MASTER_KEY)");
  app.add_option("--listen", listen, "host:port for TCP ('' for none)")
      ->capture_default_str();
  app.add_flag("--allow-remote-plain-tcp", allow_remote_plain_tcp,
               "serve plain TCP on a non-loopback address");
  // At least 3: long work holds up to two workers at once (a maintenance
  // call and a reading call, server/service.h, LongWork), and the
  // connections' calls need one meanwhile.
  app.add_option("--workers", workers,
                 "threads running engine calls (two may be held by long "
                 "work at once)")
      ->capture_default_str()
      ->check(custos::server::DecimalNumber())
      ->check(CLI::Range(3, 256));
  app.add_option("--maintenance-interval", maintenance_seconds,
                 "seconds between scheduled sweeps, backup-key expiry and "
                 "shred completion")
      ->capture_default_str()
      ->check(custos::server::DecimalNumber())
      ->check(CLI::Range(1, 86400));
  app.add_option("--history-examined", history_examined,
                 "access-history events each sweep examines for pruning "
                 "beyond those written since the last (a pass over the log "
                 "takes about its length / this many sweeps)")
      ->capture_default_str()
      ->check(custos::server::DecimalNumber())
      ->check(CLI::Range(size_t{1}, custos::kMaxHistoryExamined));
  app.add_option(
         "--erasure-compaction-delay", erasure_compaction_delay_seconds,
         "seconds (0 to 2592000) erased bytes may wait on disk before a "
         "compaction removes them, batched (0: inside each erasing call); "
         "they are gone within this delay plus --maintenance-interval")
      ->capture_default_str()
      ->check(custos::server::DecimalNumber(19, /*signed_ok=*/true));
  app.add_option("--master-key-credential", key_credential,
                 "name of the systemd credential holding the master key, "
                 "used (and required) when $CREDENTIALS_DIRECTORY is set; "
                 "'' to ignore credentials")
      ->capture_default_str();
  app.add_option("--generate-master-key", generate_key_file,
                 "write a new master key to this file (mode 0600, never "
                 "overwritten) and exit");
  app.add_option("--tls-cert", tls_cert_file,
                 "PEM certificate chain: TCP is served with TLS (any "
                 "address); needs --tls-key");
  app.add_option("--tls-key", tls_key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-handshake-timeout", tls_handshake_seconds,
                 "seconds a TLS client has to finish its handshake")
      ->capture_default_str()
      ->check(custos::server::FiniteNumber())
      ->check(CLI::Range(0.01, 3600.0));
  app.add_option("--login-timeout", login_timeout_seconds,
                 "seconds a connection has to log in before it is closed")
      ->capture_default_str()
      ->check(custos::server::FiniteNumber())
      ->check(CLI::Range(0.01, 3600.0));
  app.add_option("--stop-grace", stop_grace_seconds,
                 "seconds a stop (SIGTERM, SIGINT) waits for the calls in "
                 "flight to end and be answered before it closes the "
                 "connections")
      ->capture_default_str()
      ->check(custos::server::FiniteNumber())
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--max-connections", max_connections,
                 "client connections open at once; more are refused")
      ->capture_default_str()
      ->check(custos::server::DecimalNumber())
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--max-calls-in-flight", max_calls_in_flight,
                 "unanswered calls per connection; more are refused with "
                 "ResourceExhausted")
      ->capture_default_str()
      ->check(custos::server::DecimalNumber())
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--max-message-bytes", max_message_bytes,
                 "largest RPC message a client may send (a larger one ends "
                 "its connection) and the server may answer (a larger "
                 "answer is refused with ResourceExhausted)")
      ->capture_default_str()
      ->check(custos::server::DecimalNumber())
      ->check(CLI::Range(size_t{4096}, size_t{1} << 30));
  app.add_option("--metrics-port", metrics_port,
                 "serve /metrics and /health over HTTP on 127.0.0.1:PORT "
                 "(0: off)")
      ->capture_default_str()
      ->check(custos::server::DecimalNumber())
      ->check(CLI::Range(0, 65535));
  app.add_option("--reminder-warn-before", reminder_warn_before,
                 "ISO 8601 period: owners are reminded of a record's "
                 "closure, blocking or erasure this long before it (P0D: "
                 "never; at most P1Y), unless their call says otherwise")
      ->capture_default_str();
  app.add_option("--reminder-open-too-long", reminder_open_too_long,
                 "ISO 8601 period: owners are reminded of an ACTIVE record "
                 "open this long since its creation (at most P10Y), unless "
                 "their call says otherwise")
      ->capture_default_str();
  app.add_option("--reminder-interval", reminder_interval_seconds,
                 "seconds between two checks of every watch for reminders "
                 "not yet delivered")
      ->capture_default_str()
      ->check(custos::server::DecimalNumber())
      ->check(CLI::Range(1, 86400));
  app.add_flag("--no-sync", no_sync,
               "do not fsync before acknowledging writes (tests only: a "
               "crash may lose acknowledged writes)");
  std::string table_reads(custos::TableReadsName(custos::kDefaultTableReads));
  app.add_option("--table-reads", table_reads,
                 "how LevelDB reads the tables: with pread, or through its "
                 "memory map (docs/operations.md, \"Memory\")")
      ->capture_default_str()
      ->check(CLI::IsMember({"pread", "mapped"}));
#ifdef CUSTOS_TEST_CLOCK
  std::string test_clock_start;
  std::string test_clock_file = "./custos-test-clock";
  auto* test_clock_option =
      app.add_option("--test-clock", test_clock_start,
                     "TEST BUILD ONLY: the server's clock stands at this "
                     "date-time (as 2027-02-28T10:00:00Z) and moves only "
                     "when --test-clock-file is rewritten");
  app.add_option("--test-clock-file", test_clock_file,
                 "TEST BUILD ONLY: the file holding the test clock's time, "
                 "written at start and re-read whenever it is replaced")
      ->capture_default_str()
      ->needs(test_clock_option);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is 0; a usage error 2.
  }
  if (!app.count("--socket")) socket_path = data_dir + "/custosd.sock";
  if (erasure_compaction_delay_seconds < 0 ||
      erasure_compaction_delay_seconds > kMaxErasureCompactionDelay) {
    std::fprintf(stderr,
                 "custosd: --erasure-compaction-delay must be between 0 and "
                 "%lld seconds (0: erased bytes are compacted away inside "
                 "each erasing call)\n",
                 static_cast<long long>(kMaxErasureCompactionDelay));
    return 2;
  }
#ifdef CUSTOS_TEST_CLOCK
  std::optional<custos::Timestamp> test_clock_at;
  if (app.count("--test-clock")) {
    auto start = custos::ParseTimestamp(test_clock_start);
    if (!start) {
      std::fprintf(stderr, "custosd: --test-clock: %s\n",
                   start.error().ToString().c_str());
      return 2;
    }
    test_clock_at = *start;
  }
#endif
  custos::ReminderQuery reminder_defaults;
  {
    auto warn = custos::ParsePeriod(reminder_warn_before);
    if (!warn) {
      std::fprintf(stderr, "custosd: --reminder-warn-before: %s\n",
                   warn.error().ToString().c_str());
      return 2;
    }
    auto open = custos::ParsePeriod(reminder_open_too_long);
    if (!open) {
      std::fprintf(stderr, "custosd: --reminder-open-too-long: %s\n",
                   open.error().ToString().c_str());
      return 2;
    }
    reminder_defaults = {.warn_before = *warn, .open_too_long = *open};
    const Status checked = custos::CheckReminderQuery(reminder_defaults);
    if (!checked.ok()) {
      // The engine names the API's fields; the operator gave the flags.
      std::string message = checked.message();
      for (auto [field, flag] :
           {std::pair{"warnBefore", "--reminder-warn-before"},
            std::pair{"openTooLong", "--reminder-open-too-long"}}) {
        if (message.starts_with(field))
          message = flag + message.substr(std::string_view(field).size());
      }
      std::fprintf(stderr, "custosd: %s\n", message.c_str());
      return 2;
    }
  }
  if (!generate_key_file.empty()) {
    auto created = custos::crypto::GenerateMasterKeyFile(generate_key_file);
    if (!created) return Die(created.error().ToString());
    std::fprintf(stderr, "custosd: wrote a new master key to %s (mode 0600)\n",
                 generate_key_file.c_str());
    return 0;
  }
  if (tls_cert_file.empty() != tls_key_file.empty()) {
    std::fprintf(stderr, "custosd: --tls-cert and --tls-key go together\n");
    return 2;  // A usage error, as the parser's own.
  }
  // The private key goes from its file straight into guarded memory; once
  // parsed, its secret numbers live in OpenSSL's secure heap
  // (server/server.h).
  std::string tls_cert_pem;
  std::shared_ptr<const custos::crypto::GuardedBytes> tls_key_pem;
  if (!tls_cert_file.empty()) {
    auto cert = ReadFile(tls_cert_file);
    if (!cert) return Die("cannot read the TLS certificate " + tls_cert_file);
    tls_cert_pem = std::move(*cert);
    struct stat key_stat {};
    if (::stat(tls_key_file.c_str(), &key_stat) == 0 &&
        (key_stat.st_mode & 077) != 0) {
      return Die("the TLS private key " + tls_key_file +
                 " may be read by others than its owner (chmod 600)");
    }
    auto key = custos::crypto::GuardedBytes::ReadFile(tls_key_file,
                                                      kMaxTlsKeyFileBytes);
    if (!key)
      return Die("cannot read the TLS private key: " + key.error().message());
    tls_key_pem =
        std::make_shared<const custos::crypto::GuardedBytes>(std::move(*key));
  }

  // Where it will listen, checked before anything (a new store's key,
  // admin and data directory) is created: a socket another server answers
  // on, a port in use, a remote address without TLS are refused first.
  custos::server::ServerOptions server_options;
  server_options.unix_socket = socket_path;
  server_options.tcp_address = listen;
  server_options.allow_remote_plain_tcp = allow_remote_plain_tcp;
  server_options.tls_certificate_pem = std::move(tls_cert_pem);
  server_options.tls_private_key_pem = std::move(tls_key_pem);
  if (metrics_port > 0) {
    server_options.metrics_address =
        "127.0.0.1:" + std::to_string(metrics_port);
  }
  if (Status s = custos::server::CheckListenAddresses(server_options);
      !s.ok()) {
    return Die(s.ToString());
  }

  bool key_from_file = false;
  std::string key_source;
  auto master = MasterKey(key_file, data_dir, key_credential, &key_from_file,
                          &key_source);
  if (!master) return Die(master.error().ToString());
  custos::SystemClock system_clock;
  const custos::Clock* clock = &system_clock;
#ifdef CUSTOS_TEST_CLOCK
  std::unique_ptr<custos::server::TestClock> test_clock;
  if (test_clock_at) {
    auto started =
        custos::server::TestClock::Start(*test_clock_at, test_clock_file);
    if (!started) return Die(started.error().ToString());
    test_clock = std::move(*started);
    clock = test_clock.get();
    std::fprintf(stderr,
                 "custosd: TEST CLOCK: time stands at %s and moves when %s is "
                 "rewritten; never use this build for real data\n",
                 custos::FormatTimestamp(*test_clock_at).c_str(),
                 test_clock_file.c_str());
  }
#endif
  RaiseOpenFilesLimit();  // Before the first table is opened.
  custos::Options options;
  options.data_dir = data_dir;
  options.clock = clock;
  options.sync_writes = !no_sync;
  options.table_reads = *custos::TableReadsFromName(table_reads);  // Checked.
  options.erasure_compaction_delay =
      std::chrono::seconds(erasure_compaction_delay_seconds);
  options.history_examined_per_sweep = history_examined;
  auto engine = custos::Engine::Open(options, std::move(*master));
  if (!engine) {
    const Status& e = engine.error();
    if (e.code() == custos::StatusCode::kFailedPrecondition &&
        e.message() == custos::kMasterKeyMismatch) {
      // The operator's likeliest cause: a rotation whose new key was not
      // put where custosd reads its key (docs/operations.md).
      return Die(e.ToString() + ": the key read is " + key_source +
                 "; after a master key rotation only the new key opens the "
                 "store: put it there");
    }
    return Die(e.ToString());
  }
  // The umask above covers what custosd creates; a data directory made
  // before (by an earlier custosd, by hand, or for `custos init`) under a
  // wider umask would leave its files reachable by others.
  {
    struct stat st {};
    if (::stat(data_dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      if (::chmod(data_dir.c_str(), 0700) != 0) {
        return Die("cannot make the data directory " + data_dir +
                   " private (mode 0700)");
      }
      std::fprintf(stderr,
                   "custosd: the data directory %s was open to others (mode "
                   "%03o); it is now 0700\n",
                   data_dir.c_str(), static_cast<unsigned>(st.st_mode & 0777));
    }
  }

  auto bootstrapped = custos::server::BootstrapFirstAdmin(**engine, token_file);
  if (!bootstrapped) return Die(bootstrapped.error().ToString());
  if (*bootstrapped) {
    std::fprintf(stderr,
                 "custosd: first admin '%s' created; its credential is in "
                 "%s (mode 0600), shown nowhere else\n",
                 custos::server::kFirstAdminId, token_file.c_str());
  }

  server_options.workers = workers;
  {
    std::error_code ec;
    const std::filesystem::path dir = std::filesystem::absolute(backup_dir, ec);
    if (ec) return Die("cannot resolve --backup-dir " + backup_dir);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Die("cannot create the backup directory " + dir.string());
    }
    if (!std::filesystem::is_directory(dir, ec)) {
      return Die("--backup-dir " + dir.string() + " is not a directory");
    }
    server_options.backup_dir = dir.string();
  }
  {
    std::error_code ec;
    // By default the key file's directory, when the key came from that
    // file; none when it came from a systemd credential or the
    // environment (rotations are then refused until --key-dir is given).
    std::filesystem::path given = key_dir;
    if (given.empty() && key_from_file) {
      given = std::filesystem::path(key_file).parent_path();
      if (given.empty()) given = ".";
    }
    if (!given.empty()) {
      const std::filesystem::path dir = std::filesystem::absolute(given, ec);
      if (ec) return Die("cannot resolve --key-dir " + key_dir);
      if (!key_dir.empty() && ::mkdir(dir.c_str(), 0700) != 0 &&
          errno != EEXIST) {
        return Die("cannot create the key directory " + dir.string());
      }
      server_options.key_dir = dir.string();
    }
  }
  server_options.tls_handshake_timeout = std::chrono::milliseconds(
      static_cast<int64_t>(tls_handshake_seconds * 1000));
  server_options.login_timeout = std::chrono::milliseconds(
      static_cast<int64_t>(login_timeout_seconds * 1000));
  server_options.stop_grace = std::chrono::milliseconds(
      static_cast<int64_t>(stop_grace_seconds * 1000));
  server_options.max_connections = max_connections;
  server_options.max_calls_in_flight = max_calls_in_flight;
  server_options.max_message_words = max_message_bytes / sizeof(uint64_t);
  server_options.reminder_warn_before = reminder_defaults.warn_before;
  server_options.reminder_open_too_long = reminder_defaults.open_too_long;
  server_options.reminder_interval =
      std::chrono::seconds(reminder_interval_seconds);
  server_options.stop_on_signals = true;
  // Scheduled maintenance (server/maintenance.h): what is due is swept
  // (and physically erased), backup keys past their retention destroyed,
  // shreds completed, records counted by state for the metrics.
  std::mutex maintenance_mu;
  std::condition_variable maintenance_cv;
  bool stopping = false;
  // Requested as custosd stops: a run in progress ends after the batch it
  // is writing (Engine::RunMaintenance), so that a long sweep does not
  // hold the stop back.
  std::stop_source maintenance_stop;
  // Asked to end as soon as the stop begins, not once the calls' answers
  // have gone out: a run would otherwise go on, or even begin, during the
  // stop's grace.
  const auto stop_maintenance = [&] {
    {
      std::lock_guard lock(maintenance_mu);
      stopping = true;
    }
    maintenance_stop.request_stop();
    maintenance_cv.notify_all();
  };
  server_options.on_stop = stop_maintenance;
  custos::server::Server server(**engine, server_options);

  // The history's head, logged at start, after each maintenance run that
  // saw it move, and at a clean stop (docs/operations.md, "Keeping the
  // history's head out of band"): touched by the maintenance thread only
  // between the first and the last.
  custos::server::MaintenanceLog maintenance_log;
  custos::server::LogHistoryHead(**engine, maintenance_log, "at start",
                                 /*only_if_moved=*/false);
  custos::server::LogPoliciesInForce(**engine);
  std::thread maintenance([&] {
    custos::server::QuietKjLog thread_kj_log;
    std::unique_lock lock(maintenance_mu);
    while (!maintenance_cv.wait_for(lock,
                                    std::chrono::seconds(maintenance_seconds),
                                    [&] { return stopping; })) {
      lock.unlock();
      custos::server::RunScheduledMaintenance(
          **engine, server.metrics(), /*shred_budget=*/10000, &maintenance_log,
          maintenance_stop.get_token());
      lock.lock();
    }
  });
  Status run = server.Run([&] {
    std::string where;
    if (!socket_path.empty()) where = "unix:" + socket_path;
    if (!listen.empty()) {
      if (!where.empty()) where += " and ";
      if (!tls_cert_file.empty()) where += "TLS on ";
      where += listen.substr(0, listen.rfind(':') + 1);
      where += std::to_string(server.tcp_port());
    }
    if (server.metrics_port() != 0) {
      where += "; metrics on http://127.0.0.1:";
      where += std::to_string(server.metrics_port());
      where += "/metrics";
    }
    std::fprintf(stderr, "custosd: serving %s\n", where.c_str());
  });
  stop_maintenance();  // Done already, unless Run failed.
  maintenance.join();
  // Every call has ended: the head no later write can move.
  custos::server::LogHistoryHead(**engine, maintenance_log, "at stop",
                                 /*only_if_moved=*/false);
  if (!run.ok()) return Die(run.ToString());
  std::fprintf(stderr, "custosd: stopped\n");
  return 0;
}
