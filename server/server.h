// custosd's server: listens on a unix socket and TCP (TLS when a
// certificate is configured), serves the RPC API of schema/custos.capnp to
// each connection with its own Gateway, runs engine calls on a worker pool,
// and serves its metrics over HTTP on loopback (docs/api.md,
// docs/operations.md).
//
// Thread safety: Run() on one thread; Stop() from any thread.

#ifndef CUSTOS_SERVER_SERVER_H_
#define CUSTOS_SERVER_SERVER_H_

#include <kj/async.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>

#include "base/status.h"
#include "crypto/guarded_bytes.h"
#include "server/metrics.h"
#include "storage/engine.h"
#include "storage/reminders.h"

namespace custos::server {

struct ServerOptions {
  // Path of the unix socket (created mode 0660; a stale socket file is
  // replaced). Empty: none.
  std::string unix_socket;
  // "host:port" to listen on with plain TCP. Empty: none. Port 0 picks a
  // free port (tcp_port() says which).
  std::string tcp_address;
  // Plain TCP is refused on anything but loopback unless this is set.
  bool allow_remote_plain_tcp = false;
  // TLS on the TCP listener (kj-tls, OpenSSL): the server's certificate
  // chain and private key, PEM text, the key in guarded memory (shared, so
  // the options stay copyable). Both empty or null: plain TCP. With TLS,
  // any address may be listened on. The unix socket never uses TLS. The
  // parsed key lives in OpenSSL's secure heap (CRYPTO_secure_malloc_init:
  // locked, guard pages), which Run sets up: FailedPrecondition if it
  // cannot.
  std::string tls_certificate_pem;
  std::shared_ptr<const crypto::GuardedBytes> tls_private_key_pem;
  // A TLS connection whose handshake has not finished this long after it
  // was accepted is closed. Default: 10 s.
  std::chrono::milliseconds tls_handshake_timeout{10'000};
  // A connection with no login that succeeded this long after it was
  // accepted (its TLS handshake included) is closed: a slot of
  // max_connections is not held by a client that never says who it is.
  // Default: 30 s.
  std::chrono::milliseconds login_timeout{30'000};
  // How long a client's ByteSink (Auditor.subjectReportTo) may take to
  // take one chunk, or the end, before the call ends with Unavailable.
  // Default: 60 s.
  std::chrono::milliseconds sink_timeout{60'000};
  // How long a client's ByteSink may take to take the whole of one subject
  // report (every chunk and the end), however promptly it takes each one:
  // past it the call ends with Unavailable, and the report's document and
  // slot are freed. Default: 10 min.
  std::chrono::milliseconds sink_deadline{600'000};
  // The stop's grace (Stop, SIGTERM, SIGINT): the server stops accepting
  // connections and refuses calls that arrive from then on (Unavailable),
  // and waits this long at most for the calls it had taken to be answered
  // and the answers sent: each connection, once nothing of its client
  // waits, is closed for writing and ends when its client closes it or a
  // second later; past this, the connections left are closed at once (a
  // second Stop or signal ends the wait too). A call still running then
  // (a backup of a large store), and those queued behind it, go on to
  // their end, without their answers, before Run returns. 0: no wait.
  // 0 to 3600 s (Run refuses others). Default: 10 s.
  std::chrono::milliseconds stop_grace{10'000};
  // Called on Run's thread as the stop begins, before the wait for the
  // answers (custosd asks its scheduled maintenance to end there).
  std::function<void()> on_stop = nullptr;
  // Client connections open at once (unix socket and TCP, TLS handshakes
  // under way included). One more is accepted and closed at once: on the
  // unix socket and plain TCP after an RPC Abort "ResourceExhausted: too
  // many connections ...", with TLS without a word. Default: 256.
  // REQUIRES: >= 1.
  size_t max_connections = 256;
  // Calls of one connection received and not yet answered. One more is
  // answered at once with ResourceExhausted, without reaching the engine
  // (server/call_meter.h). Default: 1024. REQUIRES: >= 1.
  size_t max_calls_in_flight = 1024;
  // "host:port" of the metrics endpoint (HTTP: /metrics in Prometheus text
  // format, /health). Loopback only. Empty: none. Port 0 picks a free port
  // (metrics_port() says which).
  std::string metrics_address;
  // Absolute directory inside which Admin.backup, verifyBackup and
  // exportRestoreKit may write and read (their paths, symbolic links
  // resolved, must lie inside it; PermissionDenied otherwise). Empty: those
  // calls are refused with FailedPrecondition.
  std::string backup_dir;
  // Absolute directory inside which Admin.rotateMasterKey may read a new
  // master key file (as backup_dir: PermissionDenied outside it, whether
  // the file exists or not, so the call cannot probe the host's files).
  // Empty: the call is refused with FailedPrecondition.
  std::string key_dir;
  // Engine calls run on this many threads. REQUIRES: >= 1; long work may
  // hold two at once (LongWork's two lanes), so fewer than 3 can leave the
  // connections' calls waiting for it (custosd refuses fewer). A synchronous
  // write keeps its worker until its group commit is durable, so at most
  // this many writes share one fsync (docs/decisions.md).
  size_t workers = 16;
  // Largest message a connection may send, in 8-byte words (Cap'n Proto's
  // traversal limit, checked when the message is read: a larger one ends
  // the connection, and nothing of it reaches the engine). Default: 2^20
  // words (8 MiB).
  uint64_t max_message_words = 1 << 20;
  // Nesting depth of a request (Cap'n Proto's nesting limit; deeper is an
  // error of that call). Default: 32.
  int max_nesting = 32;
  // Bytes of call messages in flight per connection before the server
  // stops reading from it (RpcSystem::setFlowLimit, which counts words:
  // this / 8). Default: 8 MiB.
  size_t flow_limit_bytes = 8 << 20;
  // Reminders (Session.dueSoon and Session.watch; docs/accountability.md,
  // "Reminders"): the warning time before a deadline and the age at which
  // an ACTIVE record is open too long, for calls that give none.
  // REQUIRES: CheckReminderQuery accepts them (Run returns InvalidArgument
  // otherwise). Defaults: P7D and P30D.
  Period reminder_warn_before = kDefaultReminderWarnBefore;
  Period reminder_open_too_long = kDefaultReminderOpenTooLong;
  // How often every watch is checked for reminders not yet delivered (a
  // watch is also checked when it starts). Default: 60 s. REQUIRES: >= 1 ms.
  std::chrono::milliseconds reminder_interval{60'000};
  // Stop on SIGTERM and SIGINT (custosd). REQUIRES: the caller called
  // kj::UnixEventPort::captureSignal for both before starting any thread.
  bool stop_on_signals = false;
  // Tests only: called on the sweeping worker after each progress report
  // of an Admin.sweep has been published (Admin.sweepProgress answers with
  // it), before the sweep goes on, so a test can hold a sweep mid-way.
  // Default: none.
  std::function<void(const SweepProgress&)> TEST_sweep_progress = nullptr;
  // Tests only: called on the working thread after each progress report of
  // a long call has been published (Admin.progress answers with it), so a
  // test can hold the call mid-way. Default: none.
  std::function<void(const WorkProgress&)> TEST_work_progress = nullptr;
  // Tests only: called on the event loop's thread each time a periodic
  // check of one watch has ended (its reminders found, and those not yet
  // delivered sent and marked, or the check failed), so a test can wait
  // for checks rather than for wall time. Default: none.
  std::function<void()> TEST_reminder_check_done = nullptr;
  // Tests only: called on the event loop's thread with the number of
  // watches whenever it changed. Default: none.
  std::function<void(size_t)> TEST_reminder_watches = nullptr;
};

// Whether `path` may serve as the server's unix socket: absent (OK), a
// socket no server answers on (OK, *stale set: left by a server that was
// killed; Run replaces it), or refused: FailedPrecondition for a path that
// is not a socket or one a server answers on (another custosd: replacing
// it would cut that server's clients off), Unavailable when it cannot be
// told. custosd checks it before it creates anything.
Status CheckSocketPath(const std::string& path, bool* stale = nullptr);

// Whether HOST:PORT `address` names loopback: localhost, [::1], or a
// 127.x.y.z of exactly four decimal numbers (inet_pton's form; a name
// such as 127.example.org or 127.0.0.1.5 may resolve anywhere). Plain TCP is
// served there only (unless allowed), and the custos tool sends a token in
// plain TCP there only (unless allowed).
bool IsLoopbackAddress(const std::string& address);

// Whether Run could listen where `options` say: the rules of the addresses
// (TLS given whole, plain TCP and metrics on loopback unless allowed), the
// unix socket by CheckSocketPath, and the TCP and metrics addresses by
// listening on them, then releasing them (another process can still take
// one before Run listens: Run then fails as before). Unavailable "cannot
// listen on ...: <the system's reason>" names the address refused.
// custosd checks it before it creates anything.
Status CheckListenAddresses(const ServerOptions& options);

class Server {
 public:
  // `engine` REQUIRES: outlives the server.
  Server(Engine& engine, ServerOptions options);
  ~Server();

  // Listens, calls `ready` once every listener is open, and serves until
  // Stop() or (with stop_on_signals) a signal. Then stops accepting,
  // refuses the calls that arrive, waits up to stop_grace for the calls it
  // took to be answered, closing each connection for writing once it is
  // quiet (a second Stop() or signal ends the wait), closes the
  // connections left and lets the engine calls still running finish
  // before it returns. InvalidArgument for a bad or non-loopback address
  // (plain TCP, metrics) or a TLS certificate or key that cannot be read;
  // Unavailable when a listener cannot be opened.
  Status Run(std::function<void()> ready = {});

  // Makes Run return. Safe from any thread, before or during Run. Called
  // again while Run waits for its calls' answers (stop_grace), ends that
  // wait.
  void Stop();

  // The TCP port listened on, once `ready` was called; 0 if none.
  uint16_t tcp_port() const { return tcp_port_; }
  // The metrics endpoint's port, once `ready` was called; 0 if none.
  uint16_t metrics_port() const { return metrics_port_; }

  // The server's counters. Only SetMaintenance may be called from another
  // thread while Run runs.
  Metrics& metrics() { return metrics_; }

 private:
  Engine& engine_;
  ServerOptions options_;
  uint16_t tcp_port_ = 0;
  uint16_t metrics_port_ = 0;
  Metrics metrics_;
  std::mutex stop_mu_;
  bool stop_requested_ = false;
  // Requested by Stop() and by a signal: an admin's sweep in progress
  // ends after the batch it is writing (SweepOptions::stop), so that it
  // does not hold the stop back.
  std::stop_source stopping_;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop_;  // Guarded.
  // A second Stop(): the wait for the answers ends.
  bool hurry_requested_ = false;                          // Guarded.
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> hurry_;  // Guarded.
};

}  // namespace custos::server

#endif  // CUSTOS_SERVER_SERVER_H_
