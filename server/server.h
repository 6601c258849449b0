// custosd's server: listens on a unix socket and TCP, serves the RPC API of
// schema/custos.capnp to each connection with its own Gateway, and runs
// engine calls on a worker pool (docs/api.md, docs/operations.md).
//
// Thread safety: Run() on one thread; Stop() from any thread.

#ifndef CUSTOS_SERVER_SERVER_H_
#define CUSTOS_SERVER_SERVER_H_

#include <kj/async.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "base/status.h"
#include "storage/engine.h"

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
  // Engine calls run on this many threads. REQUIRES: >= 1.
  size_t workers = 4;
  // Largest request a connection may send, in 8-byte words (Cap'n Proto's
  // traversal limit; a larger message ends the connection). Default 8 MiB.
  uint64_t max_message_words = 1 << 20;
  // Nesting depth of a request (Cap'n Proto's nesting limit).
  int max_nesting = 32;
  // Bytes of calls in flight per connection before the server stops
  // reading from it (RpcSystem::setFlowLimit).
  size_t flow_limit_bytes = 8 << 20;
  // Stop on SIGTERM and SIGINT (custosd). REQUIRES: the caller called
  // kj::UnixEventPort::captureSignal for both before starting any thread.
  bool stop_on_signals = false;
};

class Server {
 public:
  // `engine` REQUIRES: outlives the server.
  Server(Engine& engine, ServerOptions options);
  ~Server();

  // Listens, calls `ready` once every listener is open, and serves until
  // Stop() or (with stop_on_signals) a signal. Then stops accepting, closes
  // the connections and lets the engine calls already running finish
  // before it returns. InvalidArgument for a bad or non-loopback address;
  // Unavailable when a listener cannot be opened.
  Status Run(std::function<void()> ready = {});

  // Makes Run return. Safe from any thread, before or during Run.
  void Stop();

  // The TCP port listened on, once `ready` was called; 0 if none.
  uint16_t tcp_port() const { return tcp_port_; }

 private:
  Engine& engine_;
  ServerOptions options_;
  uint16_t tcp_port_ = 0;
  std::mutex stop_mu_;
  bool stop_requested_ = false;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop_;  // Guarded.
};

}  // namespace custos::server

#endif  // CUSTOS_SERVER_SERVER_H_
