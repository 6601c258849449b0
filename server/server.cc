#include "server/server.h"

#include <arpa/inet.h>
#include <capnp/message.h>
#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.capnp.h>
#include <capnp/serialize-async.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/compat/http.h>
#include <kj/compat/tls.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "server/buffered_stream.h"
#include "server/call_meter.h"
#include "server/errors.h"
#include "server/loop_inbox.h"
#include "server/service.h"
#include "server/worker_pool.h"

namespace custos::server {
namespace {}  // namespace

Status CheckSocketPath(const std::string& path, bool* stale) {
  if (stale != nullptr) *stale = false;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::Ok()
                           : Status::Unavailable(
                                 "cannot examine the unix socket path " + path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status::FailedPrecondition(path +
                                      " exists and is not a socket: not "
                                      "replaced");
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return Status::InvalidArgument("the unix socket path " + path +
                                   " is too long");
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  // Not blocking: a listener whose backlog is full would hold a blocking
  // connect (and custosd's start) until it accepts (helper-114).
  const int fd =
      ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::Unavailable("cannot create a socket");
  const int connected = ::connect(
      fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  const int error = errno;
  ::close(fd);
  if (connected == 0 || error == EAGAIN) {  // EAGAIN: a listener, full.
    return Status::FailedPrecondition("another server listens on " + path +
                                      ": not replaced");
  }
  if (error == ENOENT)
    return Status::Ok();  // Removed since: a stopping
                          // server's, now absent.
  if (error != ECONNREFUSED) {
    return Status::Unavailable("cannot tell whether a server listens on " +
                               path);
  }
  if (stale != nullptr) *stale = true;
  return Status::Ok();
}

namespace {

// CheckSocketPath, then the removal of a stale socket file.
Status ClaimSocketPath(const std::string& path) {
  bool stale = false;
  CUSTOS_RETURN_IF_ERROR(CheckSocketPath(path, &stale));
  if (stale) (void)::unlink(path.c_str());  // Left by a server that stopped.
  return Status::Ok();
}

// OpenSSL's secure heap (a power of two): room for the private keys of a
// TLS certificate chain, RSA 4096 included, many times over.
constexpr size_t kTlsSecureHeapBytes = 64 * 1024;

// A failed accept is tried again after this long (Run's accept loops).
constexpr int64_t kAcceptRetryMs = 100;
// How often the stop looks whether the calls it waits for have ended.
constexpr int64_t kDrainPollMs = 5;
// How long the stop waits for a client to close a connection it closed
// for writing.
constexpr int64_t kStopLingerMs = 1000;
// The metrics endpoint: connections open at once, and how long one may
// take to send its request's headers (kj's default is 15 s).
constexpr size_t kMaxMetricsConnections = 16;
constexpr int64_t kMetricsHeaderTimeoutMs = 5000;

}  // namespace

bool IsLoopbackAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  const std::string host = address.substr(0, colon);
  if (host == "localhost" || host == "[::1]") return true;
  // 127.x.y.z as exactly four decimal numbers (inet_pton's form): anything
  // else is a name for the resolver and may resolve anywhere, even when it
  // merely looks numeric ("127.0.0.1.5", "127.example.org"; helper-132).
  in_addr parsed{};
  return ::inet_pton(AF_INET, host.c_str(), &parsed) == 1 &&
         (ntohl(parsed.s_addr) >> 24) == 127;
}

namespace {

bool HasTlsKey(const ServerOptions& options) {
  return options.tls_private_key_pem != nullptr &&
         !options.tls_private_key_pem->empty();
}

// Whether the options ask for TLS (a certificate or a key given).
bool ServesTls(const ServerOptions& options) {
  return !options.tls_certificate_pem.empty() || HasTlsKey(options);
}

// The rules the addresses to listen on must follow, whatever is free.
Status CheckAddressRules(const ServerOptions& options) {
  const bool has_key = HasTlsKey(options);
  const bool tls = ServesTls(options);
  if (tls && (options.tls_certificate_pem.empty() || !has_key)) {
    return Status::InvalidArgument(
        "TLS needs both a certificate and a private key");
  }
  if (!tls && !options.tcp_address.empty() && !options.allow_remote_plain_tcp &&
      !IsLoopbackAddress(options.tcp_address)) {
    return Status::InvalidArgument(
        "plain TCP is served only on loopback (127.0.0.1, [::1], "
        "localhost) unless remote plain TCP is allowed explicitly (custosd "
        "--allow-remote-plain-tcp)");
  }
  if (!options.metrics_address.empty() &&
      !IsLoopbackAddress(options.metrics_address)) {
    return Status::InvalidArgument(
        "the metrics endpoint is served only on loopback");
  }
  return Status::Ok();
}

// A failed listen on `listening_on`, with the system's reason kj's
// description ends with ("...: Address already in use") and nothing else
// of it: kj's message would name our source; the address is the
// operator's.
Status ListenFailure(const std::string& listening_on, const kj::Exception& e) {
  const std::string description(e.getDescription().cStr());
  const size_t colon = description.rfind(": ");
  std::string why =
      colon == std::string::npos ? "" : ": " + description.substr(colon + 2);
  why = why.substr(0, why.find(';'));  // Not kj's "; toString() = ...".
  return Status::Unavailable("cannot listen on " + listening_on + why);
}

// One client connection: destroyed in reverse order of declaration.
struct ConnectionState {
  // The server's open connections, which the stop waits on (Quiet) before
  // it closes them; this one's entry is removed first.
  std::set<ConnectionState*>* open = nullptr;
  BufferedStream* buffered = nullptr;
  // The connection's descriptor, owned by `stream` (under TLS, by the
  // stream it wraps).
  kj::Maybe<int> socket;
  // The stop: when it closed the connection for writing, and what ends
  // the connection without waiting for its client any more.
  std::optional<kj::TimePoint> closing_since;
  kj::Own<kj::PromiseFulfiller<void>> close_now;
  ~ConnectionState() {
    if (open != nullptr) open->erase(this);
  }
  // No call of the client's waits for its answer, every message written
  // has gone out (or cannot: the stream broke), and nothing the client
  // sent waits to be read (read ahead, or in the socket: a call in it is
  // to be answered, with the stop's refusal, before the connection is
  // closed for writing).
  bool Quiet() {
    if (metered->CallsAwaited() != 0 || network->getCurrentQueueCount() != 0 ||
        !buffered->Idle() || buffered->ReadAhead()) {
      return false;
    }
    KJ_IF_MAYBE (fd, socket) {
      int unread = 0;
      if (::ioctl(*fd, FIONREAD, &unread) == 0 && unread > 0) return false;
    }
    return true;
  }
  // Consecutive looks of the stop that found it Quiet.
  int quiet_looks = 0;
  kj::Own<kj::AsyncIoStream> stream;
  kj::Own<capnp::TwoPartyVatNetwork> network;
  kj::Own<MeteredNetwork> metered;
  kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc;
};

// A connection over max_connections: an RPC Abort saying why, then the
// end of the stream; closed once the client closes its end (or after a
// second).
kj::Promise<void> RefuseConnection(kj::Own<kj::AsyncIoStream> stream,
                                   kj::Timer& timer) {
  auto message = kj::heap<capnp::MallocMessageBuilder>(64);
  const kj::Exception e = ToException(Status::ResourceExhausted(
      "too many connections to this server; try again later"));
  auto abort = message->initRoot<capnp::rpc::Message>().initAbort();
  abort.setReason(e.getDescription());
  abort.setType(static_cast<capnp::rpc::Exception::Type>(e.getType()));
  kj::AsyncIoStream& s = *stream;
  auto done = capnp::writeMessage(s, *message).then([&s] {
    s.shutdownWrite();
    return s.readAllBytes(1 << 16).ignoreResult();
  });
  return timer.timeoutAfter(1 * kj::SECONDS, kj::mv(done))
      .attach(kj::mv(message), kj::mv(stream));
}

// The metrics endpoint: GET /metrics (Prometheus text format) and GET
// /health (200 "ok" while the server serves; 503 "stopping" once a stop
// has begun, to the connections still open during its grace, so that an
// orchestrator sends no more work to a server on its way out).
class MetricsService final : public kj::HttpService {
 public:
  MetricsService(const Metrics& metrics, const Engine& engine,
                 const kj::HttpHeaderTable& table, std::stop_token stopping)
      : metrics_(metrics),
        engine_(engine),
        table_(table),
        stopping_(std::move(stopping)) {}

  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url,
                            const kj::HttpHeaders&, kj::AsyncInputStream&,
                            Response& response) override {
    std::string_view path(url.cStr(), url.size());
    if (!path.starts_with("/")) {  // Absolute form: http://host/path.
      const size_t host = path.find("://");
      path = host == std::string_view::npos
                 ? std::string_view()
                 : path.substr(std::min(path.size(), path.find('/', host + 3)));
    }
    path = path.substr(0, path.find('?'));
    kj::HttpHeaders headers(table_);
    uint status = 200;
    const char* status_text = "OK";
    std::string body;
    if (method != kj::HttpMethod::GET) {
      status = 405;
      status_text = "Method Not Allowed";
      body = "only GET\n";
    } else if (path == "/metrics") {
      body = metrics_.Render(engine_);
      headers.set(kj::HttpHeaderId::CONTENT_TYPE,
                  "text/plain; version=0.0.4; charset=utf-8");
    } else if (path == "/health") {
      if (stopping_.stop_requested()) {
        status = 503;
        status_text = "Service Unavailable";
        body = "stopping\n";
      } else {
        body = "ok\n";
      }
      headers.set(kj::HttpHeaderId::CONTENT_TYPE, "text/plain");
    } else {
      status = 404;
      status_text = "Not Found";
      body = "not found\n";
    }
    auto stream = response.send(status, status_text, headers, body.size());
    auto text = kj::heapString(body.data(), body.size());
    auto write = stream->write(text.begin(), text.size());
    return write.attach(kj::mv(stream), kj::mv(text));
  }

 private:
  const Metrics& metrics_;
  const Engine& engine_;
  const kj::HttpHeaderTable& table_;
  const std::stop_token stopping_;
};

// Errors of a connection's task: the connection ends; nothing of the
// exception (which may quote a client's bytes) is logged.
class QuietErrors final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&&) override {}
};

}  // namespace

Server::Server(Engine& engine, ServerOptions options)
    : engine_(engine), options_(std::move(options)) {}

Server::~Server() = default;

Status CheckListenAddresses(const ServerOptions& options) {
  CUSTOS_RETURN_IF_ERROR(CheckAddressRules(options));
  if (!options.unix_socket.empty())
    CUSTOS_RETURN_IF_ERROR(CheckSocketPath(options.unix_socket));
  if (options.tcp_address.empty() && options.metrics_address.empty())
    return Status::Ok();
  // Listened on as Run listens (kj resolves the names), both at once as
  // Run holds them, and released on return.
  auto io = kj::setupAsyncIo();
  std::vector<kj::Own<kj::ConnectionReceiver>> trial;
  std::string listening_on;
  try {
    auto& network = io.provider->getNetwork();
    if (!options.tcp_address.empty()) {
      listening_on = "TCP " + options.tcp_address;
      trial.push_back(network.parseAddress(options.tcp_address.c_str())
                          .wait(io.waitScope)
                          ->listen());
    }
    if (!options.metrics_address.empty()) {
      listening_on = "the metrics address " + options.metrics_address;
      trial.push_back(network.parseAddress(options.metrics_address.c_str())
                          .wait(io.waitScope)
                          ->listen());
    }
  } catch (const kj::Exception& e) {
    return ListenFailure(listening_on, e);
  }
  return Status::Ok();
}

void Server::Stop() {
  stopping_.request_stop();
  std::lock_guard lock(stop_mu_);
  if (stop_requested_) {
    hurry_requested_ = true;
    if (hurry_) hurry_->fulfill();
    return;
  }
  stop_requested_ = true;
  if (stop_) stop_->fulfill();
}

Status Server::Run(std::function<void()> ready) {
  if (options_.workers == 0) {
    return Status::InvalidArgument("workers must be at least 1");
  }
  if (options_.max_connections == 0 || options_.max_calls_in_flight == 0) {
    return Status::InvalidArgument(
        "the connection and calls-in-flight limits must be at least 1");
  }
  if (options_.stop_grace < std::chrono::milliseconds(0) ||
      options_.stop_grace > std::chrono::hours(1)) {
    return Status::InvalidArgument("the stop's grace must be 0 to 3600 s");
  }
  if (options_.reminder_interval < std::chrono::milliseconds(1)) {
    return Status::InvalidArgument(
        "the reminder interval must be at least 1 ms");
  }
  CUSTOS_RETURN_IF_ERROR(
      CheckReminderQuery({.warn_before = options_.reminder_warn_before,
                          .open_too_long = options_.reminder_open_too_long}));
  CUSTOS_RETURN_IF_ERROR(CheckAddressRules(options_));
  const bool tls = ServesTls(options_);
  auto io = kj::setupAsyncIo();
  kj::Timer& timer = io.provider->getTimer();
  // Both null without TLS. The context is given the keypair by reference:
  // it is kept as long.
  kj::Own<kj::TlsKeypair> tls_keypair;
  kj::Own<kj::TlsContext> tls_context;
  if (tls) {
    // The key's secret numbers go to OpenSSL's secure heap (private key
    // decoders allocate them there once it exists), never to its ordinary
    // heap; the PEM text is read from guarded memory without a copy.
    // 1: the heap exists and is locked and guarded; 2 would mean it exists
    // but could not be locked (mlock refused): refused as well, since the
    // key could then be swapped out.
    if (CRYPTO_secure_malloc_initialized() == 0 &&
        CRYPTO_secure_malloc_init(kTlsSecureHeapBytes, 32) != 1) {
      CRYPTO_secure_malloc_done();
      return Status::FailedPrecondition(
          "OpenSSL's secure heap for the TLS private key cannot be set up "
          "and locked (is the locked-memory limit, LimitMEMLOCK, too low?)");
    }
    try {
      tls_keypair = kj::heap<kj::TlsKeypair>(kj::TlsKeypair{
          kj::TlsPrivateKey(options_.tls_private_key_pem->c_str()),
          kj::TlsCertificate(options_.tls_certificate_pem.c_str())});
      kj::TlsContext::Options tls_options;
      tls_options.useSystemTrustStore = false;
      tls_options.minVersion = kj::TlsVersion::TLS_1_2;
      tls_options.defaultKeypair = *tls_keypair;
      tls_context = kj::heap<kj::TlsContext>(kj::mv(tls_options));
    } catch (const kj::Exception&) {
      // OpenSSL's text may quote the file; kj's names our source.
      return Status::InvalidArgument(
          "the TLS certificate or private key cannot be read");
    }
  }
  auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
  auto hurry_paf = kj::newPromiseAndCrossThreadFulfiller<void>();
  {
    std::lock_guard lock(stop_mu_);
    stop_ = kj::mv(paf.fulfiller);
    hurry_ = kj::mv(hurry_paf.fulfiller);
    if (stop_requested_) stop_->fulfill();
    if (hurry_requested_) hurry_->fulfill();
  }
  // Before the pool, which hands answers to it until the pool's destructor
  // has run the last task: destroyed after it, on this thread.
  LoopInbox inbox;
  WorkerPool pool(options_.workers);
  // Declared after the pool: dropped first, while the pool may still run
  // tasks (their answers then stay in the inbox and are destroyed with it).
  kj::Promise<void> answering = inbox.Serve();
  auto long_work = std::make_shared<LongWork>();
  // Subject reports being sent to clients' sinks, server-wide (service.cc).
  auto server_streams = std::make_shared<ReportStreams>();
  long_work->lane = pool.NewLane();
  long_work->TEST_sweep_progress = options_.TEST_sweep_progress;
  long_work->TEST_work_progress = options_.TEST_work_progress;
  long_work->stop = stopping_.get_token();
  auto reading_work = std::make_shared<LongWork>();
  reading_work->lane = pool.NewLane();
  reading_work->TEST_work_progress = options_.TEST_work_progress;
  // Before the connections, which share it: outlives them.
  auto watches = std::make_shared<Watches>(
      engine_, pool, inbox, timer,
      ReminderSettings{
          .warn_before = options_.reminder_warn_before,
          .open_too_long = options_.reminder_open_too_long,
          .interval = options_.reminder_interval.count() * kj::MILLISECONDS,
          .max_message_words = options_.max_message_words,
          .TEST_check_done = options_.TEST_reminder_check_done,
          .TEST_watches = options_.TEST_reminder_watches});
  kj::Promise<void> reminding = watches->Run();
  QuietErrors errors;
  size_t open_connections = 0;  // Before `connections`, which counts down.
  // Before `connections`, whose states remove themselves (ConnectionState).
  std::set<ConnectionState*> open_states;
  kj::TaskSet connections(errors);
  capnp::ReaderOptions reader_options;
  reader_options.traversalLimitInWords = options_.max_message_words;
  reader_options.nestingLimit = options_.max_nesting;

  // Serves one connection (after its TLS handshake, if any) until the
  // client disconnects.
  // `socket`: the connection's descriptor (under TLS too: the TLS stream
  // has none of its own), which the stop looks at for unread bytes.
  auto serve = [&](kj::Own<kj::AsyncIoStream>&& stream, kj::TimePoint accepted,
                   kj::Maybe<int> socket) -> kj::Promise<void> {
    auto conn = std::make_shared<Connection>(
        Connection{engine_, pool, inbox, pool.NewLane(), timer});
    conn->backup_dir = options_.backup_dir;
    conn->key_dir = options_.key_dir;
    conn->max_message_words = options_.max_message_words;
    conn->sink_timeout = options_.sink_timeout;
    conn->sink_deadline = options_.sink_deadline;
    conn->server_streams = server_streams;
    conn->long_work = long_work;
    conn->reading_work = reading_work;
    conn->watches = watches;
    conn->stopping = stopping_.get_token();
    auto state = kj::heap<ConnectionState>();
    state->socket = socket;
    // Reads ahead and gathers each turn's writes: fewer system calls per
    // call (server/buffered_stream.h).
    auto buffered = kj::heap<BufferedStream>(kj::mv(stream));
    BufferedStream& last_words = *buffered;
    state->buffered = &last_words;
    state->stream = kj::mv(buffered);
    state->network = kj::heap<capnp::TwoPartyVatNetwork>(
        *state->stream, capnp::rpc::twoparty::Side::SERVER, reader_options);
    // Answers left unread: at most eight of the largest messages wait.
    state->metered = kj::heap<MeteredNetwork>(
        *state->network, metrics_, options_.max_calls_in_flight,
        8 * options_.max_message_words * sizeof(capnp::word));
    state->rpc = kj::heap<capnp::RpcSystem<capnp::rpc::twoparty::VatId>>(
        capnp::makeRpcServer(*state->metered,
                             capnp::Capability::Client(NewGateway(conn))));
    state->rpc->setFlowLimit(options_.flow_limit_bytes / sizeof(capnp::word));
    state->open = &open_states;
    open_states.insert(state.get());
    // No login within login_timeout of the accept (a TLS handshake
    // included): the connection is closed, as if it had ended (helper-123:
    // a silent connection held its slot for good).
    const auto login_timeout = options_.login_timeout /
                               std::chrono::milliseconds(1) * kj::MILLISECONDS;
    auto closed_by_stop = kj::newPromiseAndFulfiller<void>();
    state->close_now = kj::mv(closed_by_stop.fulfiller);
    auto login_deadline = timer.atTime(accepted + login_timeout)
                              .then([conn]() -> kj::Promise<void> {
                                if (conn->logged_in) return kj::NEVER_DONE;
                                return kj::READY_NOW;
                              });
    // Its watches end with it, whatever still holds their handles (a
    // Watcher that resolved to its own handle, say).
    auto ended = kj::defer([watches, conn = std::move(conn)]() {
      conn->ended = true;
      watches->RemoveConnection(*conn);
    });
    // Once disconnected, what the connection wrote last (the Abort that
    // says why it ends) goes out before the stream is closed: for at most
    // a second, and not at all if the stream broke.
    // (Its watches end at the disconnection: `ended` is dropped then.)
    return state->network->onDisconnect()
        .exclusiveJoin(state->metered->Ended())
        .exclusiveJoin(kj::mv(login_deadline))
        .exclusiveJoin(kj::mv(closed_by_stop.promise))
        .attach(kj::mv(ended))
        .then([&last_words, &timer] {
          return timer.timeoutAfter(1 * kj::SECONDS, last_words.Drained());
        })
        .then([] {}, [](kj::Exception&&) {})
        .attach(kj::mv(state));
  };

  // An accept that fails (out of descriptors or memory: EMFILE, ENFILE,
  // ENOMEM) is counted and tried again a moment later: a listener that
  // stopped for good would leave custosd running and serving nobody
  // (helper-123).
  const auto accept_again = [&](auto&& loop) {
    metrics_.AcceptFailed();
    return timer.afterDelay(kAcceptRetryMs * kj::MILLISECONDS)
        .then(kj::mv(loop));
  };
  std::function<kj::Promise<void>(kj::ConnectionReceiver&, bool)> accept_loop =
      [&](kj::ConnectionReceiver& listener,
          bool with_tls) -> kj::Promise<void> {
    // (kj's accept throws at once on EMFILE: evalNow makes it a rejection.)
    return kj::evalNow([&] { return listener.accept(); })
        .then(
            [&, with_tls](kj::Own<kj::AsyncIoStream>&& stream) {
              if (open_connections >= options_.max_connections) {
                metrics_.ConnectionRefused();
                // A TLS client cannot read an RPC message before its handshake.
                if (!with_tls) {
                  connections.add(RefuseConnection(kj::mv(stream), timer));
                }
                return accept_loop(listener, with_tls);
              }
              ++open_connections;
              metrics_.ConnectionOpened();
              const kj::TimePoint accepted = timer.now();
              auto closed = kj::defer([&] {
                --open_connections;
                metrics_.ConnectionClosed();
              });
              kj::Promise<void> served = nullptr;
              if (with_tls) {
                // A handshake that fails or stalls closes the stream (owned by
                // the cancelled handshake) and is only counted.
                const kj::Maybe<int> socket = stream->getFd();
                const auto timeout = options_.tls_handshake_timeout /
                                     std::chrono::milliseconds(1) *
                                     kj::MILLISECONDS;
                served =
                    timer
                        .timeoutAfter(timeout,
                                      tls_context->wrapServer(kj::mv(stream)))
                        .then(
                            [&, accepted,
                             socket](kj::Own<kj::AsyncIoStream>&& wrapped) {
                              return serve(kj::mv(wrapped), accepted, socket);
                            },
                            [&](kj::Exception&&) -> kj::Promise<void> {
                              metrics_.TlsHandshakeFailed();
                              return kj::READY_NOW;
                            });
              } else {
                const kj::Maybe<int> socket = stream->getFd();
                served = serve(kj::mv(stream), accepted, socket);
              }
              connections.add(served.attach(kj::mv(closed)));
              return accept_loop(listener, with_tls);
            },
            [&, with_tls](kj::Exception&&) -> kj::Promise<void> {
              return accept_again(
                  [&, with_tls] { return accept_loop(listener, with_tls); });
            });
  };

  std::vector<kj::Own<kj::ConnectionReceiver>> listeners;  // RPC.
  kj::Own<kj::ConnectionReceiver> metrics_listener;
  kj::HttpHeaderTable http_headers;
  MetricsService metrics_service(metrics_, engine_, http_headers,
                                 stopping_.get_token());
  kj::HttpServerSettings http_settings;
  http_settings.headerTimeout = kMetricsHeaderTimeoutMs * kj::MILLISECONDS;
  kj::HttpServer http(timer, http_headers, metrics_service, http_settings);
  // Dropped first at the stop: no connection is accepted once it begins.
  auto accepting = kj::heap<kj::TaskSet>(errors);
  // The metrics endpoint's connections: at most kMaxMetricsConnections at
  // once (one more is closed at once), so that idle ones cannot use up the
  // process's descriptors; each served by the HTTP server.
  size_t metrics_open = 0;  // Before the task set, which counts down.
  kj::TaskSet metrics_connections(errors);
  std::function<kj::Promise<void>(kj::ConnectionReceiver&)> metrics_loop =
      [&](kj::ConnectionReceiver& listener) -> kj::Promise<void> {
    return kj::evalNow([&] { return listener.accept(); })
        .then(
            [&](kj::Own<kj::AsyncIoStream>&& stream) {
              if (metrics_open < kMaxMetricsConnections) {
                ++metrics_open;
                metrics_connections.add(http.listenHttp(kj::mv(stream))
                                            .attach(kj::defer([&metrics_open] {
                                              --metrics_open;
                                            })));
              }
              return metrics_loop(listener);
            },
            [&](kj::Exception&&) -> kj::Promise<void> {
              return accept_again([&] { return metrics_loop(listener); });
            });
  };
  // What the listening below is on (for its error), and the socket file
  // made (removed at the stop only if it is still this one).
  std::string listening_on;
  std::optional<std::pair<dev_t, ino_t>> socket_inode;
  try {
    auto& network = io.provider->getNetwork();
    if (!options_.unix_socket.empty()) {
      // A socket file left by a stopped server is replaced; a live one is
      // not.
      CUSTOS_RETURN_IF_ERROR(ClaimSocketPath(options_.unix_socket));
      listening_on = "the unix socket " + options_.unix_socket;
      auto address =
          network.parseAddress(kj::str("unix:", options_.unix_socket.c_str()))
              .wait(io.waitScope);
      listeners.push_back(address->listen());
      if (chmod(options_.unix_socket.c_str(), 0660) != 0) {
        return Status::Unavailable("cannot set the unix socket's mode");
      }
      struct stat st {};
      if (::lstat(options_.unix_socket.c_str(), &st) == 0) {
        socket_inode = std::pair{st.st_dev, st.st_ino};
      }
    }
    if (!options_.tcp_address.empty()) {
      listening_on = "TCP " + options_.tcp_address;
      auto address =
          network.parseAddress(options_.tcp_address.c_str()).wait(io.waitScope);
      listeners.push_back(address->listen());
      tcp_port_ = static_cast<uint16_t>(listeners.back()->getPort());
    }
    if (!options_.metrics_address.empty()) {
      listening_on = "the metrics address " + options_.metrics_address;
      auto address = network.parseAddress(options_.metrics_address.c_str())
                         .wait(io.waitScope);
      metrics_listener = address->listen();
      metrics_port_ = static_cast<uint16_t>(metrics_listener->getPort());
    }
  } catch (const kj::Exception& e) {
    return ListenFailure(listening_on, e);
  }
  if (listeners.empty()) {
    return Status::InvalidArgument("no unix socket and no TCP address given");
  }
  const bool tcp_is_last = !options_.tcp_address.empty();
  for (size_t i = 0; i < listeners.size(); ++i) {
    const bool tcp = tcp_is_last && i + 1 == listeners.size();
    accepting->add(accept_loop(*listeners[i], tcp && tls));
  }
  if (metrics_listener) accepting->add(metrics_loop(*metrics_listener));
  if (ready) ready();

  // `requested` (a Stop()), or with stop_on_signals the next SIGTERM or
  // SIGINT: the stop, then the end of its wait.
  const auto or_signal = [&](kj::Promise<void> requested) {
    if (!options_.stop_on_signals) return requested;
    auto& port = io.unixEventPort;
    return requested.exclusiveJoin(port.onSignal(SIGTERM).ignoreResult())
        .exclusiveJoin(port.onSignal(SIGINT).ignoreResult());
  };
  or_signal(kj::mv(paf.promise)).wait(io.waitScope);
  stopping_.request_stop();  // A signal's stop, too.
  if (options_.on_stop) options_.on_stop();
  // No connection is accepted from now on: the socket file goes, then the
  // listening sockets close (a client that connects is refused by the
  // system). A TLS handshake under way may still end while the stop waits
  // for other connections, and is then closed like them; otherwise it is
  // cancelled.
  accepting = nullptr;
  if (socket_inode) {
    // Not a file another server has put there since (the socket is still
    // open, so a starting server sees it live and leaves it).
    struct stat st {};
    if (::lstat(options_.unix_socket.c_str(), &st) == 0 &&
        std::pair{st.st_dev, st.st_ino} == *socket_inode) {
      (void)::unlink(options_.unix_socket.c_str());
    }
  }
  listeners.clear();
  metrics_listener = nullptr;
  // The watches hold the Watchers of connections about to close (and those
  // connections the watches): the cycle ends here.
  { auto ended = kj::mv(reminding); }
  watches->Clear();
  // Dropping the Watchers queued their release: run it while the
  // connections and the loop exist.
  io.waitScope.poll();
  // The drain, for stop_grace at most: the calls taken before the stop
  // are answered and the answers go out (a sweep ends after its batch and
  // answers with what it did); a call that arrives now is refused
  // (Connection::stopping). The loop runs while it waits: it hands the
  // answers over, writes them, and reads, and refuses, what the clients
  // still send. Each connection, once quiet, is closed for writing (its
  // client reads every answer, then the end) and ends when its client
  // closes it, or a second later (kStopLingerMs), within the grace: closed
  // at once, what the kernel still had to send could be lost (a client's
  // late bytes make it reset the connection), and a client that keeps its
  // end open is not waited for longer. A call that crosses the close for
  // writing (sent as it happens) is refused but its answer cannot be sent:
  // its client sees the connection end. A second Stop() or signal ends the
  // wait.
  bool hurried = false;
  auto hurrying = or_signal(kj::mv(hurry_paf.promise))
                      .then([&hurried] { hurried = true; })
                      .eagerlyEvaluate(nullptr);
  const kj::TimePoint give_up = timer.now() + options_.stop_grace /
                                                  std::chrono::milliseconds(1) *
                                                  kj::MILLISECONDS;
  while (!hurried && timer.now() < give_up && !open_states.empty()) {
    const kj::TimePoint now = timer.now();
    for (ConnectionState* c : open_states) {
      if (c->closing_since.has_value()) {
        if (now - *c->closing_since >= kStopLingerMs * kj::MILLISECONDS &&
            c->close_now->isWaiting()) {
          c->close_now->fulfill();  // Ends in the loop's next turn.
        }
      } else if (!c->Quiet()) {
        c->quiet_looks = 0;
      } else if (++c->quiet_looks >= 2) {  // Not between two of its calls.
        c->closing_since = now;
        c->buffered->shutdownWrite();
      }
    }
    timer.afterDelay(kDrainPollMs * kj::MILLISECONDS).wait(io.waitScope);
  }
  // Then every connection is dropped; `pool` (declared before them) is
  // destroyed last of the three and runs what was still posted (a call
  // past the grace), so every engine call taken completes.
  return Status::Ok();
}

}  // namespace custos::server
