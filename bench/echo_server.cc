// echo_server: the bare Cap'n Proto baseline of custos_load --echo
// (bench/README.md). Serves bench/echo.capnp's Echo on the unix socket
// given as its only argument, on one thread (as custosd's RPC loop), until
// SIGTERM or SIGINT.

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "bench/echo.capnp.h"

namespace {

class EchoImpl final : public custos::bench::echo::Echo::Server {
 protected:
  kj::Promise<void> echo(EchoContext context) override {
    context.getResults().setData(context.getParams().getData());
    return kj::READY_NOW;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: echo_server SOCKET_PATH\n");
    return 2;
  }
  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);
  const std::string path = argv[1];
  auto io = kj::setupAsyncIo();
  capnp::TwoPartyServer server(kj::heap<EchoImpl>());
  auto address = io.provider->getNetwork()
                     .parseAddress(std::string("unix:") + path)
                     .wait(io.waitScope);
  auto listener = address->listen();
  std::fprintf(stderr, "echo_server: serving unix:%s\n", path.c_str());
  auto& port = io.unixEventPort;
  server.listen(*listener)
      .exclusiveJoin(port.onSignal(SIGTERM).ignoreResult())
      .exclusiveJoin(port.onSignal(SIGINT).ignoreResult())
      .wait(io.waitScope);
  unlink(path.c_str());
  return 0;
}
