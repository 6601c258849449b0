// A real custosd server (server::Server) on a real unix socket over a real
// engine in a temp directory, and a real Cap'n Proto client, for the RPC
// tests.

#ifndef CUSTOS_TESTS_SERVER_FIXTURE_H_
#define CUSTOS_TESTS_SERVER_FIXTURE_H_

#include <capnp/ez-rpc.h>
#include <capnp/rpc-twoparty.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "base/clock.h"
#include "crypto/secret_key.h"
#include "schema/custos.capnp.h"
#include "server/buffered_stream.h"
#include "server/errors.h"
#include "server/server.h"
#include "storage/engine.h"

namespace custos::testing {

// The status a call ended with: OK, or the one the server sent.
template <typename Promise>
Status StatusOf(Promise&& promise, kj::WaitScope& wait) {
  try {
    promise.wait(wait);
    return Status::Ok();
  } catch (const kj::Exception& e) {
    return server::FromException(e);
  }
}

class ServerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custos-server-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    options_.data_dir = dir_ + "/data";
    options_.clock = &clock_;
    options_.sync_writes = false;
    auto engine = Engine::Open(options_, MasterKey());
    ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
    engine_ = std::move(*engine);
    auto admin = engine_->BootstrapAdmin("admin", "Administrator");
    ASSERT_TRUE(admin.has_value());
    admin_token_ = admin->token;
    StartServer();
  }

  void TearDown() override {
    StopServer();
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartServer() {
    server::ServerOptions so;
    so.unix_socket = SocketPath();
    so.workers = 2;
    so.backup_dir = dir_;
    so.key_dir = dir_;
    so.TEST_sweep_progress = sweep_progress_hook_;
    if (server_options_hook_) server_options_hook_(so);
    server_ = std::make_unique<server::Server>(*engine_, so);
    std::promise<void> ready;
    auto ready_future = ready.get_future();
    thread_ = std::thread([this, &ready] {
      run_status_ = server_->Run([&] { ready.set_value(); });
    });
    ASSERT_EQ(ready_future.wait_for(std::chrono::seconds(30)),
              std::future_status::ready);
    client_ = std::make_unique<capnp::EzRpcClient>("unix:" + so.unix_socket);
    gateway_ = std::make_unique<rpc::Gateway::Client>(
        client_->getMain<rpc::Gateway>());
  }

  std::string SocketPath() const { return dir_ + "/custosd.sock"; }

  // Disconnects and stops the server; the engine stays open.
  void StopServer() {
    gateway_.reset();
    client_.reset();
    if (server_) server_->Stop();
    if (thread_.joinable()) thread_.join();
    EXPECT_TRUE(run_status_.ok()) << run_status_.ToString();
    server_.reset();
  }

  crypto::SecretKey MasterKey() {
    return *crypto::SecretKey::FromBytes(master_.bytes());
  }

  kj::WaitScope& wait() { return client_->getWaitScope(); }

  // Logs in; the session, or the status of the refusal.
  std::optional<rpc::Session::Client> Login(const std::string& principal,
                                            const std::string& token,
                                            Status* refused = nullptr) {
    auto req = gateway_->loginRequest();
    req.setPrincipal(principal);
    req.setToken(token);
    try {
      auto response = req.send().wait(wait());
      return response.getSession();
    } catch (const kj::Exception& e) {
      if (refused != nullptr) *refused = server::FromException(e);
      return std::nullopt;
    }
  }

  rpc::Session::Client AdminSession() {
    auto session = Login("admin", admin_token_);
    EXPECT_TRUE(session.has_value());
    return *session;
  }

  static rpc::Admin::Client AdminFacet(rpc::Session::Client& session) {
    return session.adminRequest().send().getAdmin();
  }

  // Creates a principal through the admin facet; returns its token.
  std::string CreatePrincipal(const std::string& id, rpc::Role role) {
    auto admin_session = AdminSession();
    auto req = AdminFacet(admin_session).createPrincipalRequest();
    req.setId(id);
    req.setDisplayName("Name of " + id);
    req.initRoles(1).set(0, role);
    auto response = req.send().wait(wait());
    return response.getCreated().getToken();
  }

  // Creates a principal and logs it in.
  rpc::Session::Client NewSession(const std::string& id, rpc::Role role) {
    const std::string token = CreatePrincipal(id, role);
    auto session = Login(id, token);
    EXPECT_TRUE(session.has_value());
    return *session;
  }

  // A second connection, on the client's event loop, whose messages of one
  // turn go out in one write (the server's BufferedStream, used here on the
  // client's side): calls sent together reach the server together, however
  // the threads are scheduled. EzRpcClient writes each message on its own,
  // and a server that is scheduled between two of them reads them apart.
  struct GatheringConnection {
    kj::Own<server::BufferedStream> stream;
    // Declared after the stream it uses: destroyed first.
    kj::Own<capnp::TwoPartyClient> rpc;

    rpc::Gateway::Client Gateway() {
      return rpc->bootstrap().castAs<rpc::Gateway>();
    }
  };

  GatheringConnection ConnectGathering() {
    auto address = client_->getIoProvider()
                       .getNetwork()
                       .parseAddress("unix:" + SocketPath())
                       .wait(wait());
    GatheringConnection c;
    c.stream =
        kj::heap<server::BufferedStream>(address->connect().wait(wait()));
    c.rpc = kj::heap<capnp::TwoPartyClient>(*c.stream);
    return c;
  }

  // Logs `id` in (its token from CreatePrincipal) over `connection`.
  rpc::Session::Client LoginOver(GatheringConnection& connection,
                                 const std::string& id,
                                 const std::string& token) {
    auto req = connection.Gateway().loginRequest();
    req.setPrincipal(id);
    req.setToken(token);
    return req.send().wait(wait()).getSession();
  }

  // Fills `r` with a "request" about `identifier`, granted to `grantee`
  // unless empty.
  static void FillRecord(rpc::NewRecord::Builder r,
                         const std::string& identifier, const std::string& name,
                         const std::string& grantee = "") {
    r.setKind("request");
    auto attrs = r.initAttributes(1);
    attrs[0].setKey("country");
    attrs[0].setValue("AT");
    auto part = r.initPersonal(1)[0];
    part.setSubjectIdentifier(identifier);
    auto fields = part.initFields(1);
    fields[0].setName("name");
    fields[0].setValue(name);
    if (!grantee.empty()) r.initGrants(1).set(0, grantee);
  }

  uint64_t CreateRecord(rpc::Session::Client& session,
                        const std::string& identifier = "anna@example.org",
                        const std::string& grantee = "") {
    auto req = session.createRequest();
    FillRecord(req.initRecord(), identifier, "Anna Example", grantee);
    return req.send().wait(wait()).getId();
  }

  ManualClock clock_{FromMicros(1'788'000'000'000'000)};
  std::string dir_;
  Options options_;
  crypto::SecretKey master_ = crypto::SecretKey::Generate();
  std::unique_ptr<Engine> engine_;
  std::string admin_token_;
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
  Status run_status_;
  // ServerOptions::TEST_sweep_progress of the next StartServer.
  std::function<void(const SweepProgress&)> sweep_progress_hook_ = nullptr;
  // Changes the options of the next StartServer (after the fixture's).
  std::function<void(server::ServerOptions&)> server_options_hook_ = nullptr;
  std::unique_ptr<capnp::EzRpcClient> client_;
  // Held by pointer: a Cap'n Proto client's destructor may throw.
  std::unique_ptr<rpc::Gateway::Client> gateway_;
};

}  // namespace custos::testing

#endif  // CUSTOS_TESTS_SERVER_FIXTURE_H_
