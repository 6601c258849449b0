#include "server/server.h"

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <utility>
#include <vector>

#include "server/service.h"
#include "server/worker_pool.h"

namespace custos::server {
namespace {

// Loopback hosts plain TCP may use without allow_remote_plain_tcp.
bool IsLoopback(const std::string& address) {
  const size_t colon = address.rfind(':');
  const std::string host = address.substr(0, colon);
  return host == "localhost" || host == "[::1]" || host.starts_with("127.");
}

// One client connection: destroyed in reverse order of declaration.
struct ConnectionState {
  kj::Own<kj::AsyncIoStream> stream;
  kj::Own<capnp::TwoPartyVatNetwork> network;
  kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc;
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

void Server::Stop() {
  std::lock_guard lock(stop_mu_);
  stop_requested_ = true;
  if (stop_) stop_->fulfill();
}

Status Server::Run(std::function<void()> ready) {
  if (options_.workers == 0) {
    return Status::InvalidArgument("workers must be at least 1");
  }
  if (!options_.tcp_address.empty() && !options_.allow_remote_plain_tcp &&
      !IsLoopback(options_.tcp_address)) {
    return Status::InvalidArgument(
        "plain TCP is served only on loopback (127.0.0.1, [::1], "
        "localhost) unless remote plain TCP is allowed explicitly");
  }
  auto io = kj::setupAsyncIo();
  auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
  {
    std::lock_guard lock(stop_mu_);
    stop_ = kj::mv(paf.fulfiller);
    if (stop_requested_) stop_->fulfill();
  }
  WorkerPool pool(options_.workers);
  QuietErrors errors;
  kj::TaskSet connections(errors);
  capnp::ReaderOptions reader_options;
  reader_options.traversalLimitInWords = options_.max_message_words;
  reader_options.nestingLimit = options_.max_nesting;

  std::function<kj::Promise<void>(kj::ConnectionReceiver&)> accept_loop =
      [&](kj::ConnectionReceiver& listener) -> kj::Promise<void> {
    return listener.accept().then(
        [&](kj::Own<kj::AsyncIoStream>&& stream) -> kj::Promise<void> {
          auto conn = std::make_shared<Connection>(Connection{
              engine_, pool, pool.NewLane(), io.provider->getTimer()});
          auto state = kj::heap<ConnectionState>();
          state->stream = kj::mv(stream);
          state->network = kj::heap<capnp::TwoPartyVatNetwork>(
              *state->stream, capnp::rpc::twoparty::Side::SERVER,
              reader_options);
          state->rpc = kj::heap<capnp::RpcSystem<capnp::rpc::twoparty::VatId>>(
              capnp::makeRpcServer(
                  *state->network,
                  capnp::Capability::Client(NewGateway(std::move(conn)))));
          state->rpc->setFlowLimit(options_.flow_limit_bytes);
          auto done = state->network->onDisconnect();
          connections.add(done.attach(kj::mv(state)));
          return accept_loop(listener);
        });
  };

  std::vector<kj::Own<kj::ConnectionReceiver>> listeners;
  kj::TaskSet accepting(errors);
  try {
    auto& network = io.provider->getNetwork();
    if (!options_.unix_socket.empty()) {
      // A socket file left by a stopped server is replaced.
      (void)unlink(options_.unix_socket.c_str());
      auto address =
          network.parseAddress(kj::str("unix:", options_.unix_socket.c_str()))
              .wait(io.waitScope);
      listeners.push_back(address->listen());
      if (chmod(options_.unix_socket.c_str(), 0660) != 0) {
        return Status::Unavailable("cannot set the unix socket's mode");
      }
    }
    if (!options_.tcp_address.empty()) {
      auto address =
          network.parseAddress(options_.tcp_address.c_str()).wait(io.waitScope);
      listeners.push_back(address->listen());
      tcp_port_ = static_cast<uint16_t>(listeners.back()->getPort());
    }
  } catch (const kj::Exception&) {
    // kj's message would name our source; the address is the operator's.
    return Status::Unavailable("cannot listen on the configured address");
  }
  if (listeners.empty()) {
    return Status::InvalidArgument("no unix socket and no TCP address given");
  }
  for (auto& listener : listeners) accepting.add(accept_loop(*listener));
  if (ready) ready();

  kj::Promise<void> stop = kj::mv(paf.promise);
  if (options_.stop_on_signals) {
    auto& port = io.unixEventPort;
    stop = stop.exclusiveJoin(port.onSignal(SIGTERM).ignoreResult())
               .exclusiveJoin(port.onSignal(SIGINT).ignoreResult());
  }
  stop.wait(io.waitScope);
  if (!options_.unix_socket.empty()) (void)unlink(options_.unix_socket.c_str());
  // Stop accepting, then drop every connection; `pool` (declared before
  // them) is destroyed last of the three and runs what was already posted,
  // so every engine call in flight completes.
  return Status::Ok();
}

}  // namespace custos::server
