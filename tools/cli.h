// What every verb of the `custos` tool shares: the connection to custosd
// (flags or environment, like Vault's and PostgreSQL's tools), output as
// aligned tables or JSON, ISO 8601 times, and the exit codes.
//
// Exit codes: 0 success, 1 refused or failed (by the server, or a server
// that cannot be reached), 2 usage (a malformed argument, a date without a
// zone). A verb reports failures by throwing Failure or UsageError; main
// turns them into a message on stderr and the exit code.

#ifndef CUSTOS_TOOLS_CLI_H_
#define CUSTOS_TOOLS_CLI_H_

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "schema/custos.capnp.h"
#include "storage/engine.h"
#include "storage/period.h"

namespace custos::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// Exit 1: refused or failed.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Exit 2: the command line is wrong.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A check for a numeric option: decimal digits only, no leading zero (but
// "0"), at most `max_digits` (server/number_option.h, DecimalNumber).
// CLI11 reads numbers with base 0, so "010" would be 8 and "0x2" 2
// (custos record get 0x2 read record 2; hold set 010 would hold record
// 8), "-5" a huge unsigned number.
CLI::Validator Decimal(size_t max_digits = 19);

// Where and as whom to connect. Defaults: custosd's embedded defaults run
// from the same directory.
struct ConnectionOptions {
  std::string addr;             // "unix:PATH" or "HOST:PORT". CUSTOS_ADDR.
  std::string principal;        // CUSTOS_PRINCIPAL.
  std::string token_file;       // CUSTOS_TOKEN_FILE; never a token itself.
  std::string cacert;           // CUSTOS_CACERT: PEM file; set = TLS.
  std::string tls_server_name;  // CUSTOS_TLS_SERVER_NAME; default: host.
  // Plain TCP (no cacert) to an address that is not loopback sends the
  // token unencrypted: refused unless this is set.
  bool allow_remote_plain_tcp = false;
  // How long connecting (TLS handshake included) and logging in may take.
  uint32_t timeout_seconds = 30;
};

// Adds --addr, --principal, --token-file, --cacert, --tls-server-name
// (with their environment variables as defaults), --allow-remote-plain-tcp
// and --timeout to `app`.
void AddConnectionOptions(CLI::App& app, ConnectionOptions& options);

// A logged-in session on custosd. It connects and logs in at its first
// use (session() or a facet), so a verb refuses its own usage errors (exit
// 2) before the token file is read or the server is reached: Failure
// naming the address if the server cannot be reached, or if the login is
// refused (one message for a wrong token, an unknown and a revoked
// principal, as the server gives one answer).
class Connection {
 public:
  explicit Connection(const ConnectionOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  rpc::Session::Client& session() {
    if (!session_) Connect();
    return *session_;
  }
  kj::WaitScope& wait() { return io_.waitScope; }
  kj::Timer& timer() { return io_.provider->getTimer(); }

  // The facets; Failure if the principal lacks the role.
  rpc::Officer::Client Officer();
  rpc::Auditor::Client Auditor();
  rpc::Admin::Client Admin();

  // Whether the logged-in principal holds `role` (Session.whoAmI, asked
  // once per connection), for verbs reachable through the auditor's and
  // the admin's facets alike. Throws kj::Exception as a call does (run it
  // inside Remote).
  bool HasRole(rpc::Role role);

 private:
  void Connect();

  kj::AsyncIoContext io_;
  const ConnectionOptions options_;
  kj::Own<kj::AsyncIoStream> stream_;
  kj::Own<capnp::TwoPartyClient> rpc_;
  kj::Own<rpc::Session::Client> session_;
  std::string addr_;
  std::optional<std::vector<rpc::Role>> roles_;  // HasRole's answer.
};

// A text of the server's answer, whole: a value may hold a NUL, which
// cStr() would cut it at (two attribute values differing after one would
// read, and merge, as one).
inline std::string Str(kj::StringPtr text) {
  return std::string(text.begin(), text.size());
}

// `text` safe for a terminal: C0 controls, DEL, the C1 controls (as
// UTF-8, U+0080 to U+009F), the bidirectional controls (U+061C, U+200E,
// U+200F, U+202A to U+202E, U+2066 to U+2069) and every byte that is not part
// of well-formed UTF-8 written as "\xNN" escapes, so a value a user stored
// cannot move the cursor, retitle the window, hide output or reorder a
// line (PrintJson escapes the same code points as \u escapes).
// Everything else, UTF-8 included, as is.
std::string Printable(std::string_view text);

// A document (a report's HTML or JSON) and a newline to standard output:
// as is into a pipe or file; to a terminal each line Printable, so that a
// control character stored in a value cannot act on the terminal.
void PrintDocument(std::string_view text);

// Runs `call` (which uses `connection`), turning a remote exception into a
// Failure whose message is the server's (already free of personal data).
void Remote(const std::function<void()>& call);

// Reads a line of standard input into `line` without its end ("\n" or
// "\r\n": a file written on Windows must not make "anna@example.org\r"
// another subject). False at the end of input.
// A line longer than kMaxInputLineBytes is a UsageError (no value a server
// takes is that long: a stored record is at most 16 MiB).
inline constexpr size_t kMaxInputLineBytes = 16 * 1024 * 1024;
bool ReadInputLine(std::string& line);
// Whether standard input holds more than blank lines before its end,
// waiting for the end at most kInputEndWait: a check after the lines a
// verb needs, which never blocks for long on a pipe its writer keeps open
// (lines sent after the bound are not seen).
inline constexpr std::chrono::milliseconds kInputEndWait{2000};
bool MoreInputWaiting();

// Reads the token in `path` (first line, a final "\r" dropped). Failure if
// it cannot be read, is not a regular file (a FIFO would block the tool),
// is longer than kMaxTokenFileBytes, is empty, or is readable by group or
// others (as PostgreSQL treats a .pgpass file that is: a token is a
// password). The checks are made on the file opened, not on its name.
inline constexpr size_t kMaxTokenFileBytes = 4096;
std::string ReadTokenFile(const std::string& path);

// A new file, mode 0600 (never briefly wider), created before the call
// whose result it is to hold (a token, a report): a path that cannot be
// created fails the command before the server acts (issues a token that
// would be lost, records a disclosure that reaches no file). Removed
// again unless filled.
class ReservedFile {
 public:
  // Failure if `path` exists or cannot be created. An empty path reserves
  // nothing (an optional --out not given).
  explicit ReservedFile(std::string path);
  ReservedFile(const ReservedFile&) = delete;
  ReservedFile& operator=(const ReservedFile&) = delete;
  ~ReservedFile();

  // Writes `content` and a newline, fsynced, and closes the file. Failure
  // (the file removed) if it cannot be written.
  void Fill(std::string_view content);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;  // Open until filled.
};

// ISO 8601 / RFC 3339 date-times with an explicit zone: "Z" or "+hh:mm",
// optional fraction up to microseconds. UsageError otherwise, naming the
// flag and the expected form.
int64_t ParseTime(std::string_view text, std::string_view flag);
// An ISO 8601 period ("P6M", "P3Y"); UsageError naming the flag otherwise.
Period ParsePeriodFlag(const std::string& text, std::string_view flag);
// Microseconds since the epoch as "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"; "" for 0.
std::string FormatTime(int64_t micros);
// The same for JSON: null for 0 (no such time).
nlohmann::json TimeJson(int64_t micros);

// Output of a reading verb: --json for scripts, a table otherwise.
struct Output {
  bool json = false;
};
void AddJsonFlag(CLI::App& verb, Output& output);
// The most items one call of a paged listing answers (the engine's default
// Limits::max_page_size): --page-size's default and bound.
inline constexpr uint32_t kMaxPageSize = 1000;
// --page-size N (1 to kMaxPageSize): items asked for per call of a paged
// listing (hold list, principal list); the verb asks until the last page.
// (Items set while it pages, with ids before the page it is at, are not
// listed: a paged listing is not one snapshot.)
void AddPageSizeOption(CLI::App& verb, uint32_t& page_size);
// Runs `page` (one call of a paged listing, after the given id; returns the
// answer's nextAfterId) from the first page to the last. Failure if a
// server's next page does not move on.
void ForEachPage(const std::function<std::string(const std::string&)>& page);
// The cursor of a listing paged by number (nextAfterSeq,
// nextAfterRecordId): `next`, after a page asked for after `after`.
// Failure if it does not move on (not 0 and not past `after`): a server
// answering so would make the tool loop, and its list grow, for ever
// (helper-129).
uint64_t NextPage(uint64_t after, uint64_t next);
void PrintJson(const nlohmann::json& value);

// A table printed with aligned columns; the header underlined.
class Table {
 public:
  explicit Table(std::vector<std::string> header)
      : header_(std::move(header)) {}
  // Cells are made Printable (they may hold what users stored).
  void Add(std::vector<std::string> row) {
    for (std::string& cell : row) cell = Printable(cell);
    rows_.push_back(std::move(row));
  }
  void Print() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

std::string RoleName(rpc::Role role);
rpc::Role ParseRole(const std::string& name);  // UsageError if unknown.
std::string StateName(rpc::RecordState state);

// "k=v" -> {k, v}; UsageError naming `flag` without '='.
std::pair<std::string, std::string> KeyValue(const std::string& text,
                                             std::string_view flag);

// One verb: its subcommand and what it runs once parsed: `run` with a
// Connection, or, for a verb that works on a stopped server's data
// directory, `offline` with none; a verb that works both ways has both,
// and `offline_when` (called once parsed) chooses. The verb run is the
// deepest one parsed (`backup verify`, not `backup`).
struct Verb {
  Verb(CLI::App* c, std::function<void(Connection&)> r)
      : command(c), run(std::move(r)) {}
  Verb(CLI::App* c, std::function<void()> o)
      : command(c), offline(std::move(o)) {}
  Verb(CLI::App* c, std::function<void(Connection&)> r, std::function<void()> o,
       std::function<bool()> when)
      : command(c),
        run(std::move(r)),
        offline(std::move(o)),
        offline_when(std::move(when)) {}

  // True if the parsed command line asks for the offline form.
  bool Offline() const { return offline && (!run || offline_when()); }

  CLI::App* command;
  std::function<void(Connection&)> run;
  std::function<void()> offline;
  std::function<bool()> offline_when;
};

// Opens the store in a stopped server's data directory `data_dir` under
// the master key in `key_file` (never creating one), for the offline
// verbs. Failure with a clear message if the directory holds no store, or
// is in use by a running custosd (its LevelDB LOCK; the message suggests
// asking the server over RPC instead when `rpc_alternative`).
std::unique_ptr<Engine> OpenOffline(const std::string& data_dir,
                                    const std::string& key_file,
                                    const Clock& clock,
                                    bool rpc_alternative = true);

// The verb families (tools/verbs_*.cc); each adds its subcommands to `app`.
void AddPrincipalVerbs(CLI::App& app, std::vector<Verb>& verbs);
void AddRecordVerbs(CLI::App& app, std::vector<Verb>& verbs);
void AddRetentionVerbs(CLI::App& app, std::vector<Verb>& verbs);
void AddSubjectVerbs(CLI::App& app, std::vector<Verb>& verbs);
void AddVerifyVerbs(CLI::App& app, std::vector<Verb>& verbs);
void AddPolicyVerbs(CLI::App& app, std::vector<Verb>& verbs);
void AddKeyVerbs(CLI::App& app, std::vector<Verb>& verbs);
void AddBackupVerbs(CLI::App& app, std::vector<Verb>& verbs);
void AddStoreVerbs(CLI::App& app, std::vector<Verb>& verbs);
void AddBreachVerbs(CLI::App& app, std::vector<Verb>& verbs);
void AddStatsVerbs(CLI::App& app, std::vector<Verb>& verbs);

}  // namespace custos::cli

#endif  // CUSTOS_TOOLS_CLI_H_
