#include "tools/cli.h"

#include <fcntl.h>
#include <kj/compat/tls.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>

#include "base/status.h"
#include "base/time_text.h"
#include "crypto/master_key.h"
#include "server/errors.h"
#include "server/first_start.h"
#include "server/number_option.h"
#include "server/server.h"

namespace custos::cli {
namespace {

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

// The host of "HOST:PORT" ("[v6]:PORT" too); "" for a unix address.
std::string HostOf(const std::string& addr) {
  if (addr.starts_with("unix:")) return "";
  if (addr.starts_with("[")) return addr.substr(1, addr.find(']') - 1);
  return addr.substr(0, addr.rfind(':'));
}

// kj's description of a failure to connect, without the parameters kj
// appends ("DNS lookup failed.; params.host = ..."): its first clause,
// ending in the system's reason.
std::string Describe(const kj::Exception& e) {
  const std::string all(Str(e.getDescription()));
  std::string text = all.substr(0, all.find(';'));
  while (text.ends_with('.')) text.pop_back();
  // OpenSSL's reason for a certificate refused ("hostname mismatch"):
  // kj puts it after the text as "; reason = ...".
  constexpr std::string_view kReason = "; reason = ";
  const size_t reason = all.find(kReason);
  if (reason != std::string::npos) {
    std::string why = all.substr(reason + kReason.size());
    why = why.substr(0, why.find(';'));
    text += " (" + why + ")";
  }
  return text;
}

}  // namespace

void AddConnectionOptions(CLI::App& app, ConnectionOptions& o) {
  o.addr = Env("CUSTOS_ADDR", "unix:./custos-data/custosd.sock");
  o.principal = Env("CUSTOS_PRINCIPAL", "admin");
  o.token_file = Env("CUSTOS_TOKEN_FILE", "./custos-admin.token");
  o.cacert = Env("CUSTOS_CACERT", "");
  o.tls_server_name = Env("CUSTOS_TLS_SERVER_NAME", "");
  app.add_option("--addr", o.addr,
                 "server: unix:PATH or HOST:PORT (env CUSTOS_ADDR)")
      ->capture_default_str();
  app.add_option("--principal", o.principal,
                 "principal to log in as (env CUSTOS_PRINCIPAL)")
      ->capture_default_str();
  app.add_option("--token-file", o.token_file,
                 "file holding the principal's token, mode 0600 "
                 "(env CUSTOS_TOKEN_FILE)")
      ->capture_default_str();
  app.add_option("--cacert", o.cacert,
                 "PEM file of the CA that signed the server's certificate; "
                 "connects with TLS (env CUSTOS_CACERT)");
  app.add_option("--tls-server-name", o.tls_server_name,
                 "name the server's certificate must carry; default: the "
                 "host of --addr (env CUSTOS_TLS_SERVER_NAME)");
  app.add_flag("--allow-remote-plain-tcp", o.allow_remote_plain_tcp,
               "log in over plain TCP to an address that is not loopback "
               "(the token crosses the network unencrypted)");
  app.add_option("--timeout", o.timeout_seconds,
                 "seconds connecting and logging in may take")
      ->capture_default_str()
      ->check(CLI::Range(uint32_t{1}, uint32_t{3600}));
}

Connection::Connection(const ConnectionOptions& o)
    : io_(kj::setupAsyncIo()), options_(o), addr_(o.addr) {}

void Connection::Connect() {
  const ConnectionOptions& o = options_;
  // Cap'n Proto sends the login with the bootstrap, before the server has
  // answered anything: to a TLS port, or through a network, the token
  // would be on the wire in clear (helper-129). Checked before the token
  // file is even read.
  if (!o.addr.starts_with("unix:") && o.cacert.empty() &&
      !o.allow_remote_plain_tcp && !server::IsLoopbackAddress(o.addr)) {
    throw UsageError(
        "--addr " + Printable(o.addr) +
        " is not loopback: give --cacert to log in with TLS (plain TCP "
        "would send the token unencrypted), or --allow-remote-plain-tcp "
        "if the server allows it and the network is trusted");
  }
  const std::string token = ReadTokenFile(o.token_file);
  // Connecting and logging in end within the timeout, all steps together
  // (name lookup, connect, TLS handshake, login): a peer that accepts and
  // never answers must not hang a script for ever (helper-129; helper-132:
  // each step had the whole timeout).
  bool timed_out = false;
  const kj::TimePoint deadline =
      io_.provider->getTimer().now() + o.timeout_seconds * kj::SECONDS;
  auto within = [&]<typename T>(kj::Promise<T> promise) {
    return promise.exclusiveJoin(io_.provider->getTimer().atTime(deadline).then(
        [&timed_out]() -> kj::Promise<T> {
          timed_out = true;
          return KJ_EXCEPTION(DISCONNECTED, "timed out");
        }));
  };
  const std::string too_long = "no answer from " + Printable(o.addr) +
                               " within " + std::to_string(o.timeout_seconds) +
                               " s (--timeout)";
  try {
    auto address = within(io_.provider->getNetwork().parseAddress(o.addr))
                       .wait(io_.waitScope);
    stream_ = within(address->connect()).wait(io_.waitScope);
    if (!o.cacert.empty()) {
      std::ifstream in(o.cacert);
      std::string pem((std::istreambuf_iterator<char>(in)), {});
      if (pem.empty()) throw Failure("cannot read CA certificate " + o.cacert);
      kj::TlsCertificate ca(kj::StringPtr(pem.c_str()));
      kj::TlsContext::Options options;
      options.useSystemTrustStore = false;
      options.trustedCertificates = kj::arrayPtr(&ca, 1);
      kj::TlsContext tls(kj::mv(options));
      const std::string name =
          o.tls_server_name.empty() ? HostOf(o.addr) : o.tls_server_name;
      stream_ = within(tls.wrapClient(kj::mv(stream_), name.c_str()))
                    .wait(io_.waitScope);
    }
  } catch (const kj::Exception& e) {
    if (timed_out) throw Failure("cannot connect: " + too_long);
    std::string why = Describe(e);
    if (why.ends_with("(hostname mismatch)")) {
      const std::string name =
          o.tls_server_name.empty() ? HostOf(o.addr) : o.tls_server_name;
      why += ": it does not carry the name " + name +
             "; connect by a name it carries or give --tls-server-name";
    }
    throw Failure("cannot connect to " + o.addr + ": " + why);
  }
  rpc_ = kj::heap<capnp::TwoPartyClient>(*stream_);
  auto login = rpc_->bootstrap().castAs<rpc::Gateway>().loginRequest();
  login.setPrincipal(o.principal);
  login.setToken(token);
  try {
    kj::Promise<capnp::Response<rpc::Gateway::LoginResults>> sent =
        login.send();
    auto response = within(kj::mv(sent)).wait(io_.waitScope);
    session_ = kj::heap<rpc::Session::Client>(response.getSession());
  } catch (const kj::Exception& e) {
    if (timed_out) throw Failure("login failed: " + too_long);
    const Status s = server::FromException(e);
    if (s.code() == StatusCode::kUnauthenticated) {
      throw Failure("login as " + o.principal + " at " + o.addr +
                    " refused (unknown principal, wrong or revoked token)");
    }
    // A peer that ended the connection at once: a TLS server spoken to in
    // plain TCP, or another service's port.
    const std::string hint =
        s.code() == StatusCode::kUnavailable && o.cacert.empty()
            ? " (is it a TLS server? give --cacert; is it custosd's RPC "
              "address, not its metrics port?)"
            : "";
    throw Failure("login at " + o.addr + " failed: " + s.ToString() + hint);
  }
}

Connection::~Connection() = default;

rpc::Officer::Client Connection::Officer() {
  return session().officerRequest().send().getOfficer();
}
rpc::Auditor::Client Connection::Auditor() {
  return session().auditorRequest().send().getAuditor();
}
rpc::Admin::Client Connection::Admin() {
  return session().adminRequest().send().getAdmin();
}

bool Connection::HasRole(rpc::Role role) {
  if (!roles_) {
    auto who = session().whoAmIRequest().send().wait(wait());
    roles_.emplace();
    for (rpc::Role r : who.getPrincipal().getRoles()) roles_->push_back(r);
  }
  return std::find(roles_->begin(), roles_->end(), role) != roles_->end();
}

void Remote(const std::function<void()>& call) {
  try {
    call();
  } catch (const kj::Exception& e) {
    throw Failure(server::FromException(e).ToString());
  }
}

std::string ReadTokenFile(const std::string& path) {
  // Non-blocking: opening a FIFO with no writer must not hang the tool
  // (helper-129); it is refused below as not a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    throw Failure("cannot read token file " + path + ": " +
                  std::strerror(errno));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    throw Failure("cannot read token file " + path + ": " +
                  std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    throw Failure("token file " + path + " is not a regular file");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    throw Failure("token file " + path +
                  " is readable by group or others; chmod 600 it");
  }
  std::string content;
  char chunk[1024];
  while (true) {
    const ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      throw Failure("cannot read token file " + path + ": " +
                    std::strerror(errno));
    }
    if (n == 0) break;
    content.append(chunk, static_cast<size_t>(n));
    if (content.size() > kMaxTokenFileBytes) {
      throw Failure("token file " + path + " is longer than " +
                    std::to_string(kMaxTokenFileBytes) +
                    " bytes: it is not a token file");
    }
  }
  std::string token = content.substr(0, content.find('\n'));
  // A file edited where lines end in CR LF (helper-129).
  if (token.ends_with('\r')) token.pop_back();
  if (token.empty()) throw Failure("no token in " + path);
  return token;
}

ReservedFile::ReservedFile(std::string path) : path_(std::move(path)) {
  if (path_.empty()) return;
  auto fd = server::CreatePrivateFile(path_);
  if (!fd) throw Failure(fd.error().message());
  fd_ = *fd;
}

ReservedFile::~ReservedFile() {
  if (fd_ < 0) return;
  close(fd_);
  unlink(path_.c_str());
}

void ReservedFile::Fill(std::string_view content) {
  const int fd = fd_;
  fd_ = -1;  // Closed (and on failure removed) by FillPrivateFile.
  const Status s = server::FillPrivateFile(fd, path_, content);
  if (!s.ok()) throw Failure(s.message());
}

int64_t ParseTime(std::string_view text, std::string_view flag) {
  auto t = ParseTimestamp(text);
  if (!t) {
    throw UsageError(std::string(flag) + ": expected a date-time with a " +
                     "zone, as 2027-01-31T09:00:00Z or " +
                     "2027-01-31T10:00:00+01:00, not '" + std::string(text) +
                     "'");
  }
  return ToMicros(*t);
}

Period ParsePeriodFlag(const std::string& text, std::string_view flag) {
  auto p = ParsePeriod(text);
  if (!p) {
    throw UsageError(std::string(flag) +
                     ": expected an ISO 8601 duration such as P6M or P3Y: " +
                     p.error().message());
  }
  return *p;
}

std::string FormatTime(int64_t micros) {
  if (micros == 0) return "";
  return FormatTimestamp(FromMicros(micros));
}

nlohmann::json TimeJson(int64_t micros) {
  if (micros == 0) return nullptr;
  return FormatTime(micros);
}

void AddJsonFlag(CLI::App& verb, Output& output) {
  verb.add_flag("--json", output.json, "print JSON, for scripts");
}

void ForEachPage(const std::function<std::string(const std::string&)>& page) {
  std::string after;
  do {
    const std::string next = page(after);
    if (!next.empty() && next <= after) {
      throw Failure("the server's next page does not move on");
    }
    after = next;
  } while (!after.empty());
}

uint64_t NextPage(uint64_t after, uint64_t next) {
  if (next != 0 && next <= after) {
    throw Failure("the server's next page does not move on");
  }
  return next;
}

CLI::Validator Decimal(size_t max_digits) {
  return server::DecimalNumber(max_digits);
}

void AddPageSizeOption(CLI::App& verb, uint32_t& page_size) {
  verb.add_option("--page-size", page_size,
                  "items asked for per call (the server may answer fewer, "
                  "to fit its message limit)")
      ->capture_default_str()
      ->check(Decimal(4))
      ->check(CLI::Range(uint32_t{1}, kMaxPageSize));
}

namespace {

constexpr char kHex[] = "0123456789abcdef";

// The length of the well-formed UTF-8 sequence at text[i] (1 to 4), or 0
// when the bytes there are not one (a lone continuation byte, a raw C1
// byte such as 0x9b, a lead byte without its continuations).
size_t Utf8Length(std::string_view text, size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  const size_t n = c < 0x80                 ? 1
                   : c >= 0xc2 && c <= 0xdf ? 2
                   : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;
  if (n == 0 || i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return 0;
  }
  return n;
}

// The code point of the well-formed sequence of `n` bytes at text[i].
uint32_t CodePoint(std::string_view text, size_t i, size_t n) {
  const auto c = static_cast<unsigned char>(text[i]);
  uint32_t cp = n == 1   ? c
                : n == 2 ? (c & 0x1fu)
                : n == 3 ? (c & 0x0fu)
                         : (c & 0x07u);
  for (size_t k = 1; k < n; ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3fu);
  }
  return cp;
}

// Whether a terminal may act on code point `cp` rather than show it: the
// C0 controls, DEL, the C1 controls, and the bidirectional controls that
// reorder how a line reads (U+061C, U+200E, U+200F, U+202A to U+202E,
// U+2066 to U+2069; helper-129, helper-132).
bool ActsOnTerminal(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
         cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

void PrintJson(const nlohmann::json& value) {
  // Text that is not UTF-8 (nothing on the server requires it) is printed
  // with U+FFFD in its place rather than aborting the command.
  const std::string dumped =
      value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  // The dump escapes the C0 controls only: DEL, the C1 and the
  // bidirectional controls are escaped here too (\u009b), so the output
  // cannot act on a terminal either (helper-129). Such bytes occur only
  // inside strings, where the escape means the same.
  std::string out;
  out.reserve(dumped.size());
  for (size_t i = 0; i < dumped.size();) {
    const size_t n = std::max<size_t>(Utf8Length(dumped, i), 1);
    const uint32_t cp = CodePoint(dumped, i, n);
    // (Below 0x7f only the dump's own line breaks are left raw.)
    if (cp >= 0x7f && ActsOnTerminal(cp)) {
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4)
        out += kHex[(cp >> shift) & 0xf];
    } else {
      out.append(dumped, i, n);
    }
    i += n;
  }
  std::cout << out << "\n";
}

std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  auto escape = [&out](unsigned char c) {
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  };
  for (size_t i = 0; i < text.size();) {
    const size_t n = Utf8Length(text, i);
    if (n == 0) {
      // Not UTF-8: a raw C1 byte (0x9b is CSI to an 8-bit terminal) or a
      // stray byte, escaped alone (helper-129).
      escape(static_cast<unsigned char>(text[i]));
      ++i;
      continue;
    }
    if (ActsOnTerminal(CodePoint(text, i, n))) {
      for (size_t k = 0; k < n; ++k) {
        escape(static_cast<unsigned char>(text[i + k]));
      }
    } else {
      out.append(text, i, n);
    }
    i += n;
  }
  return out;
}

namespace {

// Standard input, read with read(2) into a buffer of ours, so that what
// has arrived beyond the lines read is known (MoreInputWaiting).
struct Input {
  std::string buffered;
  bool ended = false;

  // Appends what one read(2) gives; false at the end (or an error).
  bool ReadSome() {
    char chunk[4096];
    while (true) {
      const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ended = true;
        return false;
      }
      buffered.append(chunk, static_cast<size_t>(n));
      return true;
    }
  }
};

Input& StandardInput() {
  static Input input;
  return input;
}

}  // namespace

bool ReadInputLine(std::string& line) {
  Input& in = StandardInput();
  // Where the search for the line's end goes on: what was searched is not
  // searched again as a long line arrives in pieces.
  size_t searched = 0;
  while (true) {
    const size_t end = in.buffered.find('\n', searched);
    if (end != std::string::npos) {
      line = in.buffered.substr(0, end);
      in.buffered.erase(0, end + 1);
      break;
    }
    searched = in.buffered.size();
    if (searched > kMaxInputLineBytes) {
      throw UsageError("a line of standard input is longer than " +
                       std::to_string(kMaxInputLineBytes / (1024 * 1024)) +
                       " MiB: nothing was sent");
    }
    if (in.ended || !in.ReadSome()) {
      if (in.buffered.empty()) return false;
      line = std::move(in.buffered);  // A last line without its newline.
      in.buffered.clear();
      break;
    }
  }
  if (line.ends_with('\r')) line.pop_back();
  return true;
}

bool MoreInputWaiting() {
  Input& in = StandardInput();
  // The end of input is waited for, up to a bound: a line the writer sends
  // a moment after the others is still seen (helper-115), and a writer
  // that keeps its end open is answered after the bound (helper-114).
  const auto deadline = std::chrono::steady_clock::now() + kInputEndWait;
  while (true) {
    if (in.buffered.find_first_not_of(" \t\r\n") != std::string::npos)
      return true;
    in.buffered.clear();
    if (in.ended) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd ready{.fd = STDIN_FILENO, .events = POLLIN, .revents = 0};
    const int polled = ::poll(&ready, 1, static_cast<int>(left.count()));
    if (polled < 0 && errno == EINTR) continue;
    if (polled != 1) return false;  // The bound passed (or poll failed).
    if (!in.ReadSome()) return false;
  }
}

void PrintDocument(std::string_view text) {
  if (!isatty(STDOUT_FILENO)) {
    std::cout << text << "\n";
    return;
  }
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::cout << Printable(text.substr(start, end - start)) << "\n";
    start = end + 1;
  }
}

void Table::Print() const {
  std::vector<size_t> width(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  };
  print(header_);
  std::vector<std::string> rule;
  for (size_t w : width) rule.emplace_back(w, '-');
  print(rule);
  for (const auto& row : rows_) print(row);
}

std::string RoleName(rpc::Role role) {
  switch (role) {
    case rpc::Role::USER:
      return "user";
    case rpc::Role::OFFICER:
      return "officer";
    case rpc::Role::AUDITOR:
      return "auditor";
    case rpc::Role::ADMIN:
      return "admin";
  }
  return "?";
}

rpc::Role ParseRole(const std::string& name) {
  for (rpc::Role r : {rpc::Role::USER, rpc::Role::OFFICER, rpc::Role::AUDITOR,
                      rpc::Role::ADMIN}) {
    if (RoleName(r) == name) return r;
  }
  throw UsageError("--role: one of user, officer, auditor, admin, not '" +
                   name + "'");
}

std::string StateName(rpc::RecordState state) {
  switch (state) {
    case rpc::RecordState::ACTIVE:
      return "active";
    case rpc::RecordState::CLOSED:
      return "closed";
    case rpc::RecordState::BLOCKED:
      return "blocked";
    case rpc::RecordState::ERASED:
      return "erased";
  }
  return "?";
}

std::unique_ptr<Engine> OpenOffline(const std::string& data_dir,
                                    const std::string& key_file,
                                    const Clock& clock, bool rpc_alternative) {
  auto master = crypto::LoadMasterKeyFile(key_file);
  if (!master) throw Failure(master.error().ToString());
  Options options;
  options.data_dir = data_dir;
  options.clock = &clock;
  options.create_if_missing = false;
  auto engine = Engine::Open(options, std::move(*master));
  if (engine) return std::move(*engine);
  switch (engine.error().code()) {
    case StatusCode::kUnavailable:
      throw Failure(data_dir +
                    " is in use (locked by a running custosd): stop the "
                    "server first" +
                    (rpc_alternative
                         ? ", or leave out --data-dir to ask it over RPC"
                         : ""));
    case StatusCode::kNotFound:
      throw Failure(data_dir + " holds no store");
    default:
      throw Failure(engine.error().ToString());
  }
}

std::pair<std::string, std::string> KeyValue(const std::string& text,
                                             std::string_view flag) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    // The text is not echoed: it may be a personal field's value.
    throw UsageError(std::string(flag) + ": expected name=value");
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

}  // namespace custos::cli
