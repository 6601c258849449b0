// custosd's transports, limits and metrics (issue 12): a real server on a
// real unix socket and TCP port, real clients (Cap'n Proto over kj-tls with
// a CA and certificates made here with OpenSSL, raw sockets, kj-http), a
// real engine on LevelDB in a temp directory.

#include <capnp/any.h>
#include <capnp/ez-rpc.h>
#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.capnp.h>
#include <capnp/serialize-async.h>
#include <capnp/serialize.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <kj/compat/http.h>
#include <kj/compat/tls.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "crypto/guarded_bytes.h"
#include "crypto/secret_key.h"
#include "schema/custos.capnp.h"
#include "server/errors.h"
#include "server/maintenance.h"
#include "server/server.h"
#include "storage/engine.h"
#include "tests/server_fixture.h"
#include "tests/test_ca.h"

namespace custos::testing {
namespace {

using server::FromException;

// ---- The fixture
// --------------------------------------------------------------

class ServerNetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custos-server-net-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Options options;
    options.data_dir = dir_ + "/data";
    options.clock = &clock_;
    options.sync_writes = false;
    options.history_examined_per_sweep = history_examined_per_sweep_;
    auto engine = Engine::Open(options, crypto::SecretKey::Generate());
    ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
    engine_ = std::move(*engine);
    auto admin = engine_->BootstrapAdmin("admin", "Administrator");
    ASSERT_TRUE(admin.has_value());
    admin_token_ = admin->token;
    options_.unix_socket = dir_ + "/custosd.sock";
    options_.workers = 2;
  }

  // Starts the server on options_ and connects client_ over the unix
  // socket.
  void Start() {
    server_ = std::make_unique<server::Server>(*engine_, options_);
    std::promise<void> ready;
    auto ready_future = ready.get_future();
    thread_ = std::thread([this, &ready] {
      run_status_ = server_->Run([&] { ready.set_value(); });
    });
    ASSERT_EQ(ready_future.wait_for(std::chrono::seconds(30)),
              std::future_status::ready);
    client_ =
        std::make_unique<capnp::EzRpcClient>("unix:" + options_.unix_socket);
  }

  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop();
    if (thread_.joinable()) thread_.join();
    EXPECT_TRUE(run_status_.ok()) << run_status_.ToString();
    server_.reset();
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }

  kj::WaitScope& wait() { return client_->getWaitScope(); }

  // A raw connection to the server's unix socket (-1 if it cannot be
  // made): what a client that speaks no Cap'n Proto, or speaks it by
  // hand, holds.
  int ConnectUnix() const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return fd;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (options_.unix_socket.size() >= sizeof(addr.sun_path)) {
      ::close(fd);
      return -1;
    }
    std::strcpy(addr.sun_path, options_.unix_socket.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
  kj::AsyncIoProvider& io() { return client_->getIoProvider(); }

  rpc::Session::Client Login(rpc::Gateway::Client gateway) {
    auto req = gateway.loginRequest();
    req.setPrincipal("admin");
    req.setToken(admin_token_);
    return req.send().getSession();
  }

  // An authority with the user role and a session of it on client_. One
  // call at a time (some tests allow few calls in flight).
  rpc::Session::Client UserSession() {
    auto admin_login = client_->getMain<rpc::Gateway>().loginRequest();
    admin_login.setPrincipal("admin");
    admin_login.setToken(admin_token_);
    auto admin_session = admin_login.send().wait(wait()).getSession();
    auto admin = admin_session.adminRequest().send().wait(wait()).getAdmin();
    auto create = admin.createPrincipalRequest();
    create.setId("authority-a");
    create.setDisplayName("Authority A");
    create.initRoles(1).set(0, rpc::Role::USER);
    auto created = create.send().wait(wait());
    auto login = client_->getMain<rpc::Gateway>().loginRequest();
    login.setPrincipal("authority-a");
    login.setToken(created.getCreated().getToken());
    return login.send().wait(wait()).getSession();
  }

  static capnp::Request<rpc::Session::CreateParams, rpc::Session::CreateResults>
  CreateRequest(rpc::Session::Client& session, const std::string& name) {
    auto req = session.createRequest();
    auto r = req.initRecord();
    r.setKind("request");
    auto part = r.initPersonal(1)[0];
    part.setSubjectIdentifier("anna@example.org");
    auto fields = part.initFields(1);
    fields[0].setName("name");
    fields[0].setValue(name);
    return req;
  }

  size_t RecordCount(rpc::Session::Client& session) {
    auto req = session.listRequest();
    req.initQuery().setLimit(1000);
    auto response = req.send().wait(wait());
    return response.getRecords().size();
  }

  // GET `path` from the metrics endpoint with kj-http's client: status and
  // body.
  std::pair<uint, std::string> HttpGet(const std::string& path) {
    kj::HttpHeaderTable table;
    auto address = io().getNetwork()
                       .parseAddress("127.0.0.1", server_->metrics_port())
                       .wait(wait());
    auto http = kj::newHttpClient(io().getTimer(), table, *address);
    kj::HttpHeaders headers(table);
    headers.set(kj::HttpHeaderId::HOST, "127.0.0.1");
    auto response = http->request(kj::HttpMethod::GET, path.c_str(), headers)
                        .response.wait(wait());
    auto body = response.body->readAllText().wait(wait());
    return {response.statusCode, std::string(body.cStr(), body.size())};
  }

  ManualClock clock_{FromMicros(1'788'000'000'000'000)};
  std::string dir_;
  std::unique_ptr<Engine> engine_;
  std::string admin_token_;
  server::ServerOptions options_;
  // Options::history_examined_per_sweep of the engine SetUp opens.
  size_t history_examined_per_sweep_ = Options{}.history_examined_per_sweep;
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
  Status run_status_;
  std::unique_ptr<capnp::EzRpcClient> client_;
};

// ---- TLS
// ----------------------------------------------------------------------

class ServerTlsTest : public ServerNetTest {
 protected:
  void SetUp() override {
    ServerNetTest::SetUp();
    MakeCert(ca_, "Custos Test CA", nullptr, 1);
    MakeCert(server_cert_, "localhost", &ca_, 2);
    MakeCert(other_ca_, "Some Other CA", nullptr, 3);
    options_.tcp_address = "127.0.0.1:0";
    options_.tls_certificate_pem = server_cert_.cert_pem;
    options_.tls_private_key_pem = std::make_shared<const crypto::GuardedBytes>(
        crypto::GuardedBytes::Copy(server_cert_.key_pem));
    // Long enough for a handshake in a sanitizer build on a loaded
    // machine; the tests of the timeout shorten it.
    options_.tls_handshake_timeout = std::chrono::seconds(10);
  }

  // A TLS stream to the server, verified against `ca` for `localhost`.
  kj::Promise<kj::Own<kj::AsyncIoStream>> ConnectTls(kj::TlsContext& tls) {
    auto address = io().getNetwork()
                       .parseAddress("127.0.0.1", server_->tcp_port())
                       .wait(wait());
    auto stream = address->connect().wait(wait());
    return tls.wrapClient(kj::mv(stream), "localhost");
  }

  KeyAndCert ca_, server_cert_, other_ca_;
};

TEST_F(ServerTlsTest, AClientVerifyingTheServerAgainstItsCaIsServed) {
  // The server parses its private key into OpenSSL's secure heap (which the
  // test's own keys, freed by now, may have used before; OpenSSL 3's
  // CRYPTO_secure_used crashes before the heap exists).
  const size_t secure_before =
      CRYPTO_secure_malloc_initialized() ? CRYPTO_secure_used() : 0;
  Start();
  EXPECT_EQ(CRYPTO_secure_malloc_initialized(), 1);
  EXPECT_GT(CRYPTO_secure_used(), secure_before);
  kj::TlsCertificate ca(ca_.cert_pem.c_str());
  kj::TlsContext::Options tls_options;
  tls_options.useSystemTrustStore = false;
  tls_options.trustedCertificates = kj::arrayPtr(&ca, 1);
  kj::TlsContext tls(kj::mv(tls_options));
  auto stream = ConnectTls(tls).wait(wait());
  capnp::TwoPartyClient rpc(*stream);
  auto session = Login(rpc.bootstrap().castAs<rpc::Gateway>());
  auto response = session.whoAmIRequest().send().wait(wait());
  EXPECT_EQ(std::string(response.getPrincipal().getId().cStr()), "admin");
}

TEST_F(ServerTlsTest, AClientTrustingAnotherCaRefusesTheServer) {
  Start();
  kj::TlsCertificate other(other_ca_.cert_pem.c_str());
  kj::TlsContext::Options tls_options;
  tls_options.useSystemTrustStore = false;
  tls_options.trustedCertificates = kj::arrayPtr(&other, 1);
  kj::TlsContext tls(kj::mv(tls_options));
  try {
    ConnectTls(tls).wait(wait());
    FAIL() << "the handshake succeeded against an untrusted certificate";
  } catch (const kj::Exception& e) {
    EXPECT_NE(std::string(e.getDescription().cStr()).find("certificate"),
              std::string::npos)
        << e.getDescription().cStr();
  }
}

TEST_F(ServerTlsTest, PlainRpcOnTheTlsPortIsNotServed) {
  options_.tls_handshake_timeout = std::chrono::milliseconds(300);
  Start();
  auto address = io().getNetwork()
                     .parseAddress("127.0.0.1", server_->tcp_port())
                     .wait(wait());
  auto stream = address->connect().wait(wait());
  capnp::TwoPartyClient rpc(*stream);
  auto login = rpc.bootstrap().castAs<rpc::Gateway>().loginRequest();
  login.setPrincipal("admin");
  login.setToken(admin_token_);
  EXPECT_ANY_THROW(login.send().wait(wait()));
}

TEST_F(ServerTlsTest, AConnectionThatNeverHandshakesIsClosedAfterTheTimeout) {
  options_.tls_handshake_timeout = std::chrono::milliseconds(300);
  Start();
  auto address = io().getNetwork()
                     .parseAddress("127.0.0.1", server_->tcp_port())
                     .wait(wait());
  // Before the connect: the server's timer starts at its accept, which
  // may come before connect() returns here.
  const auto start = std::chrono::steady_clock::now();
  auto stream = address->connect().wait(wait());
  char byte = 0;
  // Sends nothing: the server closes the connection (end of stream).
  auto read = io().getTimer().timeoutAfter(10 * kj::SECONDS,
                                           stream->tryRead(&byte, 1, 1));
  EXPECT_EQ(read.wait(wait()), 0u);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST(ServerOptionsTest, PlainRemoteTcpAndHalfOrBadTlsConfigurationsAreRefused) {
  char tmpl[] = "/tmp/custos-server-net-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ManualClock clock{FromMicros(1'788'000'000'000'000)};
  Options options;
  options.data_dir = dir + "/data";
  options.clock = &clock;
  options.sync_writes = false;
  auto engine = Engine::Open(options, crypto::SecretKey::Generate());
  ASSERT_TRUE(engine.has_value());
  server::ServerOptions so;
  so.tcp_address = "0.0.0.0:0";
  // Without TLS, a non-loopback address is refused; so is a non-loopback
  // metrics endpoint.
  Status plain = server::Server(**engine, so).Run();
  EXPECT_EQ(plain.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(plain.message().starts_with("plain TCP is served only on "))
      << plain.ToString();
  // A name that merely starts like a loopback address is not one, nor one
  // that only looks numeric (helper-132: 127.0.0.1.5 was taken for one).
  for (const char* address :
       {"127.0.0.1:0", "127.1.2.3:8080", "localhost:0", "[::1]:0"}) {
    EXPECT_TRUE(server::IsLoopbackAddress(address)) << address;
  }
  for (const char* address :
       {"127.0.0.1.5:0", "127.1:0", "127.0.0.256:0", "127.example.org:0",
        "128.0.0.1:0", "0.0.0.0:0", "1127.0.0.1:0"}) {
    EXPECT_FALSE(server::IsLoopbackAddress(address)) << address;
  }
  server::ServerOptions dotted;
  dotted.tcp_address = "127.0.0.1.5:0";
  EXPECT_TRUE(server::Server(**engine, dotted)
                  .Run()
                  .message()
                  .starts_with("plain TCP is served only on "));
  server::ServerOptions named;
  named.tcp_address = "127.example.org:0";
  EXPECT_TRUE(server::Server(**engine, named)
                  .Run()
                  .message()
                  .starts_with("plain TCP is served only on "));
  server::ServerOptions metrics_remote;
  metrics_remote.tcp_address = "127.0.0.1:0";
  metrics_remote.metrics_address = "0.0.0.0:0";
  EXPECT_EQ(server::Server(**engine, metrics_remote).Run().ToString(),
            "InvalidArgument: the metrics endpoint is served only on loopback");
  so.tls_certificate_pem = "-----BEGIN CERTIFICATE-----\n";
  Status s = server::Server(**engine, so).Run();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "TLS needs both a certificate and a private key");
  so.tls_private_key_pem = std::make_shared<const crypto::GuardedBytes>(
      crypto::GuardedBytes::Copy("-----BEGIN PRIVATE KEY-----\n"));
  s = server::Server(**engine, so).Run();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "the TLS certificate or private key cannot be read");
  engine->reset();
  std::filesystem::remove_all(dir);
}

// ---- Limits
// -------------------------------------------------------------------

TEST_F(ServerNetTest, AConnectionOverTheLimitIsRefusedWithResourceExhausted) {
  options_.max_connections = 2;
  Start();
  // client_ and `second` take the two places.
  ASSERT_TRUE(
      StatusOf(Login(client_->getMain<rpc::Gateway>()).whoAmIRequest().send(),
               wait())
          .ok());
  auto second =
      std::make_unique<capnp::EzRpcClient>("unix:" + options_.unix_socket);
  ASSERT_TRUE(
      StatusOf(Login(second->getMain<rpc::Gateway>()).whoAmIRequest().send(),
               wait())
          .ok());
  {
    capnp::EzRpcClient third("unix:" + options_.unix_socket);
    const Status refused = StatusOf(
        Login(third.getMain<rpc::Gateway>()).whoAmIRequest().send(), wait());
    EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted)
        << refused.ToString();
    EXPECT_EQ(refused.message(),
              "too many connections to this server; try again later");
  }
  // A place freed is taken again.
  second.reset();
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    capnp::EzRpcClient fourth("unix:" + options_.unix_socket);
    served =
        StatusOf(Login(fourth.getMain<rpc::Gateway>()).whoAmIRequest().send(),
                 wait())
            .ok();
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(served);
}

TEST_F(ServerNetTest, CallsOverTheInFlightLimitAreRefusedAndChangeNothing) {
  options_.max_calls_in_flight = 2;
  Start();
  auto session = UserSession();
  ASSERT_EQ(RecordCount(session), 0u);
  // 40 creates sent at once, the first ones held in the engine until the
  // others have been answered: two in flight, the 38 others refused,
  // however the threads are scheduled. (Answered as they came, a client
  // whose messages the server read one by one could have had none
  // refused.)
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  engine_->TEST_SetBeforeCreateGroup([released] { released.wait(); });
  std::vector<kj::Promise<Status>> calls;
  for (int i = 0; i < 40; ++i) {
    calls.push_back(
        CreateRequest(session, "Anna " + std::to_string(i))
            .send()
            .then([](auto&&) { return Status::Ok(); },
                  [](kj::Exception&& e) { return FromException(e); }));
  }
  size_t created = 0, refused = 0;
  auto count = [&](kj::Promise<Status>& call) {
    const Status s = call.wait(wait());
    if (s.ok()) {
      ++created;
    } else {
      EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
      EXPECT_EQ(s.message(),
                "too many calls in flight on this connection (at most 2)");
      ++refused;
    }
  };
  for (size_t i = 2; i < calls.size(); ++i) {
    // Bounded: a call the server queued instead of refusing would wait
    // for the held ones forever.
    calls[i] = io().getTimer()
                   .timeoutAfter(60 * kj::SECONDS, kj::mv(calls[i]))
                   .catch_([](kj::Exception&&) {
                     return Status::Internal("not answered while held");
                   });
    count(calls[i]);
  }
  EXPECT_EQ(refused, 38u);
  release.set_value();
  count(calls[0]);
  count(calls[1]);
  EXPECT_EQ(created, 2u);
  EXPECT_EQ(created + refused, 40u);
  // Only the answered creates are in the store.
  EXPECT_EQ(RecordCount(session), created);
  // A call pipelined on a refused call's answer is refused too, and the
  // connection goes on.
  std::vector<kj::Promise<Status>> facets;
  for (int i = 0; i < 20; ++i) {
    facets.push_back(
        session.adminRequest()
            .send()
            .getAdmin()
            .listPrincipalsRequest()
            .send()
            .then([](auto&&) { return Status::Ok(); },
                  [](kj::Exception&& e) { return FromException(e); }));
  }
  for (auto& f : facets) {
    const Status s = f.wait(wait());
    // A user gets PermissionDenied for the facet, unless refused first.
    EXPECT_TRUE(s.code() == StatusCode::kPermissionDenied ||
                s.code() == StatusCode::kResourceExhausted)
        << s.ToString();
  }
  EXPECT_EQ(RecordCount(session), created);
}

// What a raw client that never sends Finish read: its messages are sent
// one at a time, each answer read before the next message is sent, so the
// server has read everything when it ends the connection (unread bytes
// would make the close a reset, losing its Abort).
struct Unreleased {
  size_t answers = 0;        // Returns to the messages sent.
  std::string abort_reason;  // "" if the connection was not ended.
};

// Sends `count` messages made by `make(message, question)` (question ids
// from 0), stopping at an Abort.
template <typename Make>
Unreleased SendWithoutFinish(kj::AsyncIoProvider& io, kj::WaitScope& wait,
                             const std::string& socket, uint32_t count,
                             Make make) {
  auto address =
      io.getNetwork().parseAddress(kj::str("unix:", socket.c_str())).wait(wait);
  auto stream = address->connect().wait(wait);
  Unreleased r;
  for (uint32_t q = 0; q < count && r.abort_reason.empty(); ++q) {
    capnp::MallocMessageBuilder message;
    make(message.initRoot<capnp::rpc::Message>(), q);
    capnp::writeMessage(*stream, message).wait(wait);
    for (;;) {  // Up to this message's answer, or the Abort.
      auto next = capnp::tryReadMessage(*stream).wait(wait);
      KJ_IF_MAYBE (reader, next) {
        auto root = (*reader)->getRoot<capnp::rpc::Message>();
        if (root.isAbort()) {
          r.abort_reason = root.getAbort().getReason().cStr();
          break;
        }
        if (root.isReturn() && root.getReturn().getAnswerId() == q) {
          ++r.answers;
          break;
        }
      } else {
        r.abort_reason = "(closed without an Abort)";
        break;
      }
    }
  }
  return r;
}

// A bootstrap, then calls to a method the gateway does not have (answered
// at once), each with its own question id, or, with `reuse`, all with
// question id 1.
auto GatewayCalls(bool reuse = false) {
  return [reuse](capnp::rpc::Message::Builder m, uint32_t q) {
    if (q == 0) {
      m.initBootstrap().setQuestionId(0);
      return;
    }
    auto call = m.initCall();
    call.setQuestionId(reuse ? 1 : q);
    call.initTarget().initPromisedAnswer().setQuestionId(0);
    call.setInterfaceId(capnp::typeId<rpc::Gateway>());
    call.setMethodId(9);
    call.initParams().initContent().initAsAnyStruct(0, 0);
  };
}

// A client's Finish releases an answer; until then the server keeps it
// (the RpcSystem's answer entry, and the answer's question id here), a
// refused call's and a bootstrap's too. A client that never sends Finish
// (here a raw one that never logs in) had made them grow without bound:
// with 4,096 answers not released (four times the calls in flight, at
// least 4,096), its next call or bootstrap ends its connection. Other
// connections go on.
TEST_F(ServerNetTest, AConnectionThatReleasesNoAnswerIsEnded) {
  options_.metrics_address = "127.0.0.1:0";
  Start();  // 1,024 calls in flight.
  auto session = UserSession();
  const std::string kEnded =
      "ResourceExhausted: too many answers not released on this connection "
      "(at most 4096); the connection is ended";
  // Calls: the bootstrap and 4,095 calls answered, the next one ends it.
  Unreleased calls = SendWithoutFinish(io(), wait(), options_.unix_socket,
                                       4096 + 1, GatewayCalls());
  EXPECT_EQ(calls.answers, 4096u);
  EXPECT_EQ(calls.abort_reason, kEnded);
  // Bootstraps alone (no call at all): the same.
  Unreleased bootstraps =
      SendWithoutFinish(io(), wait(), options_.unix_socket, 4096 + 1,
                        [](capnp::rpc::Message::Builder m, uint32_t q) {
                          m.initBootstrap().setQuestionId(q);
                        });
  EXPECT_EQ(bootstraps.answers, 4096u);
  EXPECT_EQ(bootstraps.abort_reason, kEnded);
  // A question id used again before its Finish ends the connection too.
  Unreleased reused = SendWithoutFinish(io(), wait(), options_.unix_socket, 3,
                                        GatewayCalls(/*reuse=*/true));
  EXPECT_EQ(reused.answers, 2u);
  EXPECT_EQ(reused.abort_reason,
            "InvalidArgument: a question id used again before its Finish; "
            "the connection is ended");
  // Only those connections: the fixture's goes on.
  const Status s = StatusOf(session.whoAmIRequest().send(), wait());
  EXPECT_TRUE(s.ok()) << s.ToString();
  // Each ending is counted, by its reason.
  const std::string text = HttpGet("/metrics").second;
  EXPECT_NE(text.find("\ncustos_connections_ended_total{reason="
                      "\"answers_not_released\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\ncustos_connections_ended_total{reason="
                      "\"question_reused\"} 1\n"),
            std::string::npos)
      << text;
}

// A client that sends and never reads: its answers once waited in Cap'n
// Proto's queue without a bound (a review, helper-123). With 32-KiB
// messages the bound is 256 KiB: the connection is ended well before its
// client has sent 32 MiB of bootstraps and finishes, and the server goes
// on serving the others.
TEST_F(ServerNetTest, AClientThatNeverReadsItsAnswersIsEnded) {
  options_.max_message_words = 4096;
  options_.metrics_address = "127.0.0.1:0";
  Start();
  auto session = UserSession();
  const int fd = ConnectUnix();
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
  // One bootstrap and its Finish, again and again: each leaves an answer.
  std::string pairs;
  for (uint32_t q = 0; q < 64; ++q) {
    for (bool finish : {false, true}) {
      capnp::MallocMessageBuilder message;
      auto m = message.initRoot<capnp::rpc::Message>();
      if (finish) {
        m.initFinish().setQuestionId(q);
      } else {
        m.initBootstrap().setQuestionId(q);
      }
      auto words = capnp::messageToFlatArray(message);
      pairs.append(reinterpret_cast<const char*>(words.asBytes().begin()),
                   words.asBytes().size());
    }
  }
  size_t sent = 0;
  bool ended = false;
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!ended && sent < 32u * 1024 * 1024 &&
         std::chrono::steady_clock::now() < give_up) {
    size_t off = 0;
    while (off < pairs.size()) {
      const ssize_t n =
          ::send(fd, pairs.data() + off, pairs.size() - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<size_t>(n);
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
        ended = true;
        break;
      }
      ASSERT_TRUE(n < 0 && errno == EAGAIN) << std::strerror(errno);
      // Let the server read and answer (into buffers nobody reads).
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      if (std::chrono::steady_clock::now() >= give_up) break;
    }
  }
  ::close(fd);
  EXPECT_TRUE(ended) << sent << " bytes sent and the connection lives";
  // Only that connection: the fixture's goes on, and the ending is counted.
  const Status s = StatusOf(session.whoAmIRequest().send(), wait());
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_NE(HttpGet("/metrics")
                .second.find("\ncustos_connections_ended_total{reason="
                             "\"answers_not_read\"} 1\n"),
            std::string::npos);
}

// An accept that fails (here: the process out of descriptors) once ended
// the listener's loop for good: custosd ran on and served no new client
// (a review, helper-123). It is counted and tried again.
TEST_F(ServerNetTest, AnAcceptThatFailsIsTriedAgain) {
#if defined(__SANITIZE_ADDRESS__)
  // The ASan build's UBSan needs descriptors of its own while the process
  // has none left (it checks memory through a pipe, and reported the
  // server's promise nodes as invalid objects): run in the plain and
  // TSan builds.
  GTEST_SKIP() << "UBSan needs free descriptors";
#endif
  options_.metrics_address = "127.0.0.1:0";
  Start();
  size_t open_fds = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)entry;
    ++open_fds;
  }
  rlimit before{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &before), 0);
  rlimit lowered = before;
  lowered.rlim_cur = open_fds + 6;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  std::vector<int> clients;
  for (int i = 0; i < 32; ++i) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) break;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, options_.unix_socket.c_str());
    (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    clients.push_back(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (int fd : clients) ::close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &before), 0);

  capnp::EzRpcClient other("unix:" + options_.unix_socket);
  auto login = other.getMain<rpc::Gateway>().loginRequest();
  login.setPrincipal("admin");
  login.setToken(admin_token_);
  auto& timer = other.getIoProvider().getTimer();
  try {
    timer.timeoutAfter(10 * kj::SECONDS, login.send().ignoreResult())
        .wait(other.getWaitScope());
  } catch (const kj::Exception& e) {
    FAIL() << "a new client was not served: " << e.getDescription().cStr();
  }
  const std::string text = HttpGet("/metrics").second;
  EXPECT_EQ(text.find("\ncustos_accept_failures_total 0\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\ncustos_accept_failures_total "), std::string::npos);
}

// Idle connections to the metrics endpoint were unbounded (each held 15 s
// by kj's header timeout): they could use up custosd's descriptors (a
// review, helper-123). At most 16 are open; one more is closed at once.
TEST_F(ServerNetTest, AtMostSixteenMetricsConnectionsAreOpen) {
  options_.metrics_address = "127.0.0.1:0";
  Start();
  auto connect = [this] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(server_->metrics_port());
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
              0);
    return fd;
  };
  std::vector<int> idle;
  for (int i = 0; i < 16; ++i) idle.push_back(connect());
  // The server has taken them all (an HTTP answer on the 16th would need
  // a request: none is sent).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const int extra = connect();
  pollfd p{extra, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1) << "the 17th connection stays open";
  char byte = 0;
  EXPECT_EQ(::recv(extra, &byte, 1, 0), 0);  // Closed, nothing sent.
  ::close(extra);
  // An idle one is still open.
  p = pollfd{idle[0], POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  for (int fd : idle) ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(HttpGet("/health").first, 200u);
}

// A connection that never logs in held one of max_connections for good:
// a few silent ones locked every client out (a review, helper-123). It is
// closed once login_timeout passed; one logged in is not.
TEST_F(ServerNetTest, AConnectionThatNeverLogsInIsClosed) {
  options_.login_timeout = std::chrono::milliseconds(300);
  Start();
  auto session = UserSession();  // Logged in.
  const int fd = ConnectUnix();
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const auto start = std::chrono::steady_clock::now();
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1) << "the silent connection stays open";
  char byte = 0;
  EXPECT_EQ(::recv(fd, &byte, 1, 0), 0);
  ::close(fd);
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(250));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const Status s = StatusOf(session.whoAmIRequest().send(), wait());
  EXPECT_TRUE(s.ok()) << s.ToString();
}

// A stop closes an idle connection for writing at once (its client reads
// the end, before the second the server then gives it: a half-close, not
// the close), and, as this client keeps its end open, ends it a second
// later: well within a grace of a minute, which a client that never
// closes would otherwise hold the stop for. (The login timeout, which
// also closes a connection like this one, is set past both.)
TEST_F(ServerNetTest, AStopClosesAnIdleConnectionForWritingAndEndsItSoon) {
  options_.stop_grace = std::chrono::minutes(1);
  options_.login_timeout = std::chrono::minutes(10);
  Start();
  const int fd = ConnectUnix();
  ASSERT_GE(fd, 0) << std::strerror(errno);
  // Served before the stop: the bootstrap's answer read (a connection
  // the server has not accepted yet is reset when its listener closes).
  {
    capnp::MallocMessageBuilder message;
    message.initRoot<capnp::rpc::Message>().initBootstrap().setQuestionId(0);
    auto words = capnp::messageToFlatArray(message);
    ASSERT_EQ(::write(fd, words.asBytes().begin(), words.asBytes().size()),
              static_cast<ssize_t>(words.asBytes().size()));
  }
  char buffer[4096];
  ASSERT_GT(::read(fd, buffer, sizeof(buffer)), 0) << std::strerror(errno);
  client_.reset();
  const auto stopped_at = std::chrono::steady_clock::now();
  server_->Stop();
  // The end of the stream (read returns 0), while this end is still open.
  ssize_t n = 0;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) {
  }
  EXPECT_EQ(n, 0) << std::strerror(errno);
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at,
            std::chrono::milliseconds(900));
  thread_.join();
  const auto stop_took = std::chrono::steady_clock::now() - stopped_at;
  EXPECT_GE(stop_took, std::chrono::seconds(1));
  EXPECT_LT(stop_took, std::chrono::seconds(10));
  ::close(fd);
}

// A metrics connection open when the server stops: the count of open
// ones was destroyed before the connections' tasks, which count down (a
// use after scope; a review, helper-126; seen by the ASan build).
TEST_F(ServerNetTest, AStopWithAMetricsConnectionOpenIsClean) {
  options_.metrics_address = "127.0.0.1:0";
  Start();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(server_->metrics_port());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server_->Stop();
  thread_.join();
  EXPECT_TRUE(run_status_.ok()) << run_status_.ToString();
  ::close(fd);
}

// A Finish that comes before its call's Return (the client gave up on it)
// releases the call's place once it is answered: with one call in flight
// allowed, logins each finished at once, then answered after their wait,
// are never refused for the place of the one before, and the connection
// is never ended for answers not released (review helper-98: the call
// meter's early-Finish path had no test).
TEST_F(ServerNetTest, AFinishBeforeTheReturnReleasesTheCallsPlace) {
  options_.max_calls_in_flight = 1;
  Start();
  auto address =
      io().getNetwork()
          .parseAddress(kj::str("unix:", options_.unix_socket.c_str()))
          .wait(wait());
  auto stream = address->connect().wait(wait());
  auto send = [&](auto fill) {
    capnp::MallocMessageBuilder message;
    fill(message.initRoot<capnp::rpc::Message>());
    capnp::writeMessage(*stream, message).wait(wait());
  };
  send([](capnp::rpc::Message::Builder m) {
    m.initBootstrap().setQuestionId(0);
  });
  std::vector<std::string> reasons;
  for (uint32_t q = 1; q <= 4; ++q) {
    send([q](capnp::rpc::Message::Builder m) {
      auto call = m.initCall();
      call.setQuestionId(q);
      call.initTarget().initPromisedAnswer().setQuestionId(0);
      call.setInterfaceId(capnp::typeId<rpc::Gateway>());
      call.setMethodId(0);  // login
      auto params =
          call.initParams().initContent().initAs<rpc::Gateway::LoginParams>();
      params.setPrincipal("admin");
      params.setToken("wrong");
    });
    // Released at once: the second login on the connection waits 100 ms,
    // the third 200, the fourth 400, so this comes before their Return.
    send([q](capnp::rpc::Message::Builder m) {
      m.initFinish().setQuestionId(q);
    });
    for (;;) {
      auto next = capnp::tryReadMessage(*stream).wait(wait());
      KJ_IF_MAYBE (reader, next) {
        auto root = (*reader)->getRoot<capnp::rpc::Message>();
        ASSERT_FALSE(root.isAbort()) << root.getAbort().getReason().cStr();
        if (root.isReturn() && root.getReturn().getAnswerId() == q) {
          auto ret = root.getReturn();
          reasons.push_back(ret.isException()
                                ? ret.getException().getReason().cStr()
                                : "(not an exception)");
          break;
        }
      } else {
        FAIL() << "the connection was closed";
      }
    }
  }
  EXPECT_EQ(reasons,
            std::vector<std::string>(4, "Unauthenticated: invalid credential"));
}

// The flow limit (RpcSystem::setFlowLimit) is backpressure, not a
// refusal: once the calls a connection has in flight hold more than it,
// the server stops reading that connection until some are answered. Here
// 40 creates of about 32 KiB each are sent at once while the first run of
// them is held in the engine, against a limit of 64 KiB and of 4 calls in
// flight: the server reads two or three (Cap'n Proto stops once the words
// in flight exceed the limit) and leaves the rest unread, so none is
// refused and, once released, all 40 are created. With the default limit
// (8 MiB) it reads them all while the first are held and refuses 36 or so
// with "too many calls in flight" (checked by hand: the test then fails).
TEST_F(ServerNetTest, TheFlowLimitStopsReadingAConnectionInsteadOfRefusing) {
  options_.max_calls_in_flight = 4;
  options_.flow_limit_bytes = 64 * 1024;
  Start();
  auto session = UserSession();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  bool is_released = false;
  auto release_once = [&] {
    if (!is_released) release.set_value();
    is_released = true;
  };
  engine_->TEST_SetBeforeCreateGroup([released] { released.wait(); });
  auto release_at_exit = kj::defer([&] { release_once(); });
  constexpr int kCalls = 40;
  std::vector<kj::ForkedPromise<Status>> calls;
  for (int i = 0; i < kCalls; ++i) {
    auto req = CreateRequest(session, "Anna " + std::to_string(i));
    auto fields = req.getRecord().getPersonal()[0].initFields(2);
    fields[0].setName("name");
    fields[0].setValue("Anna " + std::to_string(i));
    fields[1].setName("letter");
    fields[1].setValue(std::string(32 * 1024, 'x'));
    calls.push_back(
        req.send()
            .then([](auto&&) { return Status::Ok(); },
                  [](kj::Exception&& e) { return FromException(e); })
            .fork());
  }
  // While the first are held, no call is answered: the ones the server did
  // not read cannot be refused. (A server that read them all answers the
  // refusals within milliseconds; the second is only how long we look.)
  kj::Promise<void> any_answered = kj::NEVER_DONE;
  for (auto& call : calls) {
    any_answered = any_answered.exclusiveJoin(call.addBranch().ignoreResult());
  }
  const bool early =
      io().getTimer()
          .timeoutAfter(1 * kj::SECONDS, kj::mv(any_answered))
          .then([] { return true; }, [](kj::Exception&&) { return false; })
          .wait(wait());
  EXPECT_FALSE(early) << "a call was answered while the first were held";
  release_once();
  size_t created = 0;
  for (auto& call : calls) {
    const Status s = call.addBranch().wait(wait());
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (s.ok()) ++created;
  }
  EXPECT_EQ(created, static_cast<size_t>(kCalls));
  EXPECT_EQ(RecordCount(session), static_cast<size_t>(kCalls));
}

TEST_F(ServerNetTest, AMessageOverTheSizeLimitEndsItsConnectionOnly) {
  options_.max_message_words = 4096;  // 32 KiB.
  Start();
  auto session = UserSession();
  {
    capnp::EzRpcClient other("unix:" + options_.unix_socket);
    auto gateway = other.getMain<rpc::Gateway>();
    auto req = gateway.loginRequest();
    req.setPrincipal("admin");
    req.setToken(std::string(64 * 1024, 'x'));
    try {
      req.send().wait(wait());
      FAIL() << "a 64 KiB message was read";
    } catch (const kj::Exception& e) {
      EXPECT_EQ(e.getType(), kj::Exception::Type::DISCONNECTED)
          << e.getDescription().cStr();
    }
  }
  // Nothing reached the engine; the other connection is served. A create
  // just under the limit is served, one over it ends its connection.
  EXPECT_EQ(RecordCount(session), 0u);
  ASSERT_TRUE(
      StatusOf(CreateRequest(session, std::string(16 * 1024, 'a')).send(),
               wait())
          .ok());
  EXPECT_EQ(RecordCount(session), 1u);
  // The connection ends with the server's Abort, whose reason is the
  // generic one (not Cap'n Proto's "Message is too large ..."); a client
  // whose own next write fails first reads its own error (Internal: not a
  // server status).
  const Status over = StatusOf(
      CreateRequest(session, std::string(40 * 1024, 'b')).send(), wait());
  EXPECT_TRUE(over.ToString() == "InvalidArgument: malformed request" ||
              over.code() == StatusCode::kInternal)
      << over.ToString();
  EXPECT_EQ(over.message().find("too large"), std::string::npos);
  client_ =
      std::make_unique<capnp::EzRpcClient>("unix:" + options_.unix_socket);
  auto admin = Login(client_->getMain<rpc::Gateway>());
  EXPECT_EQ(RecordCount(admin), 1u);
}

// ---- Malformed requests
// -------------------------------------------------------

// The description a malformed call's exception carries on the client,
// after checking that it holds no trace of kj's text.
std::string MalformedCallText(kj::Promise<void> call, kj::WaitScope& wait) {
  try {
    call.wait(wait);
  } catch (const kj::Exception& e) {
    const std::string text = e.getDescription().cStr();
    EXPECT_EQ(text.find(".c++"), std::string::npos) << text;
    EXPECT_EQ(text.find(".cc"), std::string::npos) << text;
    EXPECT_EQ(text.find(".h:"), std::string::npos) << text;
    EXPECT_EQ(text.find("KJ_"), std::string::npos) << text;
    EXPECT_EQ(text.find("expected"), std::string::npos) << text;
    EXPECT_FALSE(std::regex_search(text, std::regex(":[0-9]+"))) << text;
    return text;
  }
  ADD_FAILURE() << "a malformed call was answered";
  return "";
}

constexpr char kMalformed[] =
    "remote exception: InvalidArgument: malformed request";

TEST_F(ServerNetTest, MalformedRequestsGetOneGenericErrorWithoutKjText) {
  options_.max_nesting = 8;
  Start();
  auto gateway = client_->getMain<rpc::Gateway>();
  // A Text that is not NUL-terminated: the principal's bytes as Data.
  {
    auto req = gateway.loginRequest();
    capnp::AnyStruct::Builder params{
        static_cast<rpc::Gateway::LoginParams::Builder>(req)};
    auto bytes = params.getPointerSection()[0].initAs<capnp::Data>(5);
    memcpy(bytes.begin(), "admin", 5);
    req.setToken(admin_token_);
    EXPECT_EQ(MalformedCallText(req.send().ignoreResult(), wait()), kMalformed);
  }
  // A struct pointer where a Text (a list) is expected.
  {
    auto req = gateway.loginRequest();
    req.setPrincipal("admin");
    capnp::AnyStruct::Builder params{
        static_cast<rpc::Gateway::LoginParams::Builder>(req)};
    params.getPointerSection()[1].initAsAnyStruct(1, 0);
    EXPECT_EQ(MalformedCallText(req.send().ignoreResult(), wait()), kMalformed);
  }
  auto session = UserSession();
  // A struct pointer where a list of structs is expected.
  {
    auto req = session.createRequest();
    auto record = req.initRecord();
    record.setKind("request");
    capnp::AnyStruct::Builder raw{rpc::NewRecord::Builder(record)};
    raw.getPointerSection()[1].initAsAnyStruct(1, 1);  // attributes
    EXPECT_EQ(MalformedCallText(req.send().ignoreResult(), wait()), kMalformed);
  }
  // Deeper than the nesting limit: a request's parts' fields.
  {
    auto req = CreateRequest(session, "Anna Example");
    EXPECT_EQ(MalformedCallText(req.send().ignoreResult(), wait()), kMalformed);
  }
  // Our own messages are sent as they are; nothing was created, and the
  // connection goes on.
  auto bad = session.createRequest();
  bad.initRecord().setKind("no-such-kind");
  const Status refused = StatusOf(bad.send(), wait());
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(refused.message().starts_with("no retention policy"))
      << refused.ToString();
  auto list = session.listRequest();
  list.initQuery().setLimit(10);
  EXPECT_EQ(list.send().wait(wait()).getRecords().size(), 0u);
}

// Sends `message` on a new raw connection to the server and reads the one
// message the server answers with before it closes the connection.
kj::Own<capnp::MessageReader> RawExchange(kj::AsyncIoProvider& io,
                                          kj::WaitScope& wait,
                                          const std::string& socket,
                                          capnp::MessageBuilder& message) {
  auto address =
      io.getNetwork().parseAddress(kj::str("unix:", socket.c_str())).wait(wait);
  auto stream = address->connect().wait(wait);
  capnp::writeMessage(*stream, message).wait(wait);
  return capnp::readMessage(*stream).wait(wait).attach(kj::mv(stream));
}

TEST_F(ServerNetTest, MessagesTheRpcSystemCannotReadEndWithTheGenericError) {
  options_.max_message_words = 4096;  // 32 KiB.
  Start();
  // Over the size limit (Cap'n Proto: "Message is too large ..."): a
  // Bootstrap carrying 40 KiB.
  {
    capnp::MallocMessageBuilder message;
    auto bootstrap = message.initRoot<capnp::rpc::Message>().initBootstrap();
    bootstrap.setQuestionId(0);
    auto bytes =
        bootstrap.getDeprecatedObjectId().initAs<capnp::Data>(40 * 1024);
    memset(bytes.begin(), 'x', bytes.size());
    auto answer = RawExchange(io(), wait(), options_.unix_socket, message);
    auto root = answer->getRoot<capnp::rpc::Message>();
    ASSERT_TRUE(root.isAbort());
    EXPECT_EQ(std::string(root.getAbort().getReason().cStr()),
              "InvalidArgument: malformed request");
  }
  // A call to a capability the server never exported.
  {
    capnp::MallocMessageBuilder message;
    auto call = message.initRoot<capnp::rpc::Message>().initCall();
    call.setQuestionId(0);
    call.initTarget().setImportedCap(12345);
    call.setInterfaceId(capnp::typeId<rpc::Gateway>());
    call.setMethodId(0);
    call.initParams().initContent().initAsAnyStruct(0, 2);
    auto answer = RawExchange(io(), wait(), options_.unix_socket, message);
    auto root = answer->getRoot<capnp::rpc::Message>();
    ASSERT_TRUE(root.isAbort() || root.isReturn());
    const std::string reason =
        root.isAbort() ? root.getAbort().getReason().cStr()
                       : root.getReturn().getException().getReason().cStr();
    EXPECT_EQ(reason, "InvalidArgument: malformed request");
  }
  // The server goes on.
  EXPECT_TRUE(
      StatusOf(Login(client_->getMain<rpc::Gateway>()).whoAmIRequest().send(),
               wait())
          .ok());
}

// ---- Metrics
// ------------------------------------------------------------------

bool HasLine(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos ||
         text.starts_with(line + "\n");
}

TEST_F(ServerNetTest, MetricsCountCallsAndErrorsByMethodAndHealthAnswers) {
  options_.metrics_address = "127.0.0.1:0";
  Start();
  ASSERT_GT(server_->metrics_port(), 0);
  auto session = UserSession();
  const uint64_t id =
      CreateRequest(session, "Anna Example").send().wait(wait()).getId();
  // The owner reads it: Anna's key, cached by the create, is a hit.
  auto get = session.getRequest();
  get.setId(id);
  get.send().wait(wait());
  auto bad = session.createRequest();
  bad.initRecord().setKind("no-such-kind");
  ASSERT_EQ(StatusOf(bad.send(), wait()).code(),
            StatusCode::kFailedPrecondition);

  auto [status, text] = HttpGet("/metrics");
  EXPECT_EQ(status, 200u);
  // Two logins (admin, authority-a), two creates, one of them refused.
  EXPECT_TRUE(
      HasLine(text, "custos_rpc_requests_total{method=\"Gateway.login\"} 2"))
      << text;
  EXPECT_TRUE(
      HasLine(text, "custos_rpc_requests_total{method=\"Session.create\"} 2"))
      << text;
  EXPECT_TRUE(HasLine(text,
                      "custos_rpc_errors_total{method=\"Session.create\","
                      "code=\"FailedPrecondition\"} 1"))
      << text;
  EXPECT_TRUE(HasLine(
      text, "custos_rpc_duration_seconds_count{method=\"Session.create\"} 2"))
      << text;
  EXPECT_TRUE(HasLine(text,
                      "custos_rpc_duration_seconds_bucket{method=\"Session."
                      "create\",le=\"+Inf\"} 2"))
      << text;
  EXPECT_TRUE(HasLine(text, "# TYPE custos_rpc_duration_seconds histogram"))
      << text;
  EXPECT_TRUE(HasLine(text, "custos_connections_open 1")) << text;
  EXPECT_TRUE(HasLine(text, "custos_connections_refused_total 0")) << text;
  EXPECT_TRUE(HasLine(text, "custos_rpc_refused_total 0")) << text;
  const EngineStats stats = engine_->Stats();
  EXPECT_GT(stats.writes, 0u);
  EXPECT_GT(stats.key_cache_hits, 0u);
  EXPECT_TRUE(HasLine(
      text, "custos_store_writes_total " + std::to_string(stats.writes)))
      << text;
  EXPECT_TRUE(
      HasLine(text, "custos_store_syncs_total " + std::to_string(stats.syncs)))
      << text;
  EXPECT_TRUE(HasLine(text, "custos_key_cache_hits_total " +
                                std::to_string(stats.key_cache_hits)))
      << text;
  EXPECT_TRUE(HasLine(text, "custos_key_cache_misses_total " +
                                std::to_string(stats.key_cache_misses)))
      << text;
  // Nothing a client sent is a label.
  EXPECT_EQ(text.find("Anna"), std::string::npos);
  EXPECT_EQ(text.find("authority-a"), std::string::npos);

  auto [health_status, health] = HttpGet("/health");
  EXPECT_EQ(health_status, 200u);
  EXPECT_EQ(health, "ok\n");
  EXPECT_EQ(HttpGet("/nothing-here").first, 404u);
}

TEST_F(ServerNetTest, MaintenanceFiguresAppearOnceSet) {
  options_.metrics_address = "127.0.0.1:0";
  Start();
  EXPECT_EQ(HttpGet("/metrics").second.find("custos_sweep_backlog"),
            std::string::npos);
  server::MaintenanceFigures figures;
  figures.finished_unix_seconds = 1'788'000'000;
  figures.ok = true;
  figures.sweep_complete = false;
  figures.erased = 3;
  figures.shred_records_rewritten = 7;
  figures.history_pruned = 11;
  figures.history_behind = 1234;
  server_->metrics().SetMaintenance(figures);
  const std::string text = HttpGet("/metrics").second;
  EXPECT_TRUE(HasLine(text, "custos_history_last_pruned 11")) << text;
  EXPECT_TRUE(HasLine(text, "custos_history_prune_behind 1234")) << text;
  // A failed run has no report: the history gauges stay those of the last
  // run that succeeded (0 would say the pruning reached the head).
  server::MaintenanceFigures failed;
  failed.finished_unix_seconds = 1'788'000'060;
  server_->metrics().SetMaintenance(failed);
  const std::string after = HttpGet("/metrics").second;
  EXPECT_TRUE(HasLine(after, "custos_maintenance_last_run_ok 0")) << after;
  EXPECT_TRUE(HasLine(after, "custos_history_prune_behind 1234")) << after;
  EXPECT_TRUE(HasLine(text, "custos_sweep_backlog 1")) << text;
  EXPECT_TRUE(HasLine(text, "custos_sweep_last_transitions{kind=\"erased\"} 3"))
      << text;
  EXPECT_TRUE(HasLine(text, "custos_shred_last_records_rewritten 7")) << text;
  EXPECT_TRUE(
      HasLine(text, "custos_maintenance_last_run_timestamp_seconds 1788000000"))
      << text;
}

// A run custosd's stop ended (or that ended as it stopped) counts no
// records: the count scans every record, and the stop must not wait for it.
TEST_F(ServerNetTest, AMaintenanceRunWhileStoppingCountsNoRecords) {
  options_.metrics_address = "127.0.0.1:0";
  Start();
  auto session = UserSession();
  CreateRequest(session, "Anna").send().wait(wait());
  std::stop_source stop;
  stop.request_stop();
  server::RunScheduledMaintenance(*engine_, server_->metrics(), 10000, nullptr,
                                  stop.get_token());
  std::string text = HttpGet("/metrics").second;
  EXPECT_TRUE(HasLine(text, "custos_maintenance_last_run_ok 1")) << text;
  EXPECT_TRUE(HasLine(text, "custos_sweep_backlog 1")) << text;
  EXPECT_EQ(text.find("custos_records{"), std::string::npos) << text;
  server::RunScheduledMaintenance(*engine_, server_->metrics(), 10000);
  text = HttpGet("/metrics").second;
  EXPECT_TRUE(HasLine(text, "custos_records{state=\"active\"} 1")) << text;
  EXPECT_TRUE(HasLine(text, "custos_sweep_backlog 0")) << text;
}

TEST_F(ServerNetTest, RecordsByStateAreExportedFromTheLastMaintenanceCount) {
  options_.metrics_address = "127.0.0.1:0";
  Start();
  EXPECT_EQ(HttpGet("/metrics").second.find("custos_records"),
            std::string::npos);
  auto session = UserSession();
  CreateRequest(session, "Anna").send().wait(wait());
  auto close = session.closeRequest();
  close.setId(CreateRequest(session, "Ben").send().wait(wait()).getId());
  close.send().wait(wait());
  auto withdraw = session.withdrawRequest();
  withdraw.setId(CreateRequest(session, "Cleo").send().wait(wait()).getId());
  withdraw.send().wait(wait());

  // What custosd's maintenance thread runs, here on the test's thread.
  server::RunScheduledMaintenance(*engine_, server_->metrics(), 10000);
  std::string text = HttpGet("/metrics").second;
  EXPECT_TRUE(HasLine(text, "# TYPE custos_records gauge")) << text;
  EXPECT_TRUE(HasLine(text, "custos_records{state=\"active\"} 1")) << text;
  EXPECT_TRUE(HasLine(text, "custos_records{state=\"closed\"} 1")) << text;
  EXPECT_TRUE(HasLine(text, "custos_records{state=\"blocked\"} 1")) << text;
  EXPECT_TRUE(HasLine(text, "custos_records{state=\"erased\"} 0")) << text;
  EXPECT_TRUE(HasLine(text, "custos_records_unreadable 0")) << text;
  EXPECT_TRUE(
      HasLine(text, "custos_records_counted_timestamp_seconds 1788000000"))
      << text;
  EXPECT_TRUE(HasLine(text, "custos_maintenance_last_run_ok 1")) << text;

  // Seven months on, the next run blocks the closed record and counts
  // again; a scrape in between scans nothing and shows the last count.
  clock_.Set(FromMicros(1'788'000'000'000'000 + 214 * 86'400'000'000LL));
  text = HttpGet("/metrics").second;
  EXPECT_TRUE(HasLine(text, "custos_records{state=\"closed\"} 1")) << text;
  server::RunScheduledMaintenance(*engine_, server_->metrics(), 10000);
  text = HttpGet("/metrics").second;
  EXPECT_TRUE(HasLine(text, "custos_records{state=\"active\"} 1")) << text;
  EXPECT_TRUE(HasLine(text, "custos_records{state=\"closed\"} 0")) << text;
  EXPECT_TRUE(HasLine(text, "custos_records{state=\"blocked\"} 2")) << text;
  EXPECT_TRUE(
      HasLine(text, "custos_sweep_last_transitions{kind=\"blocked\"} 1"))
      << text;
  EXPECT_TRUE(HasLine(text, "custos_records_counted_timestamp_seconds " +
                                std::to_string(1'788'000'000 + 214 * 86'400)))
      << text;
}

// The engine's pruning bound at 1: each sweep examines one event beyond
// those written since the last.
class ServerNetPruningTest : public ServerNetTest {
 protected:
  ServerNetPruningTest() { history_examined_per_sweep_ = 1; }
};

// How far the last sweep's pruning is from the head of the log is
// exported from a real maintenance run (helper-133: a pruning backlog was
// seen nowhere).
TEST_F(ServerNetPruningTest, APruningBacklogIsExported) {
  options_.metrics_address = "127.0.0.1:0";
  Start();
  auto session = UserSession();
  for (const char* name : {"Anna", "Ben", "Cleo"}) {
    CreateRequest(session, name).send().wait(wait());
  }
  server::RunScheduledMaintenance(*engine_, server_->metrics(), 10000);
  const std::string text = HttpGet("/metrics").second;
  // The first sweep since the engine opened counts nothing written
  // before it: its pruning examined the oldest event only (none due).
  EXPECT_TRUE(HasLine(text, "custos_history_last_pruned 0")) << text;
  auto head = engine_->DurableHistoryHead();
  ASSERT_TRUE(head.has_value()) << head.error().ToString();
  ASSERT_GT(head->seq, 3u);
  EXPECT_TRUE(HasLine(
      text, "custos_history_prune_behind " + std::to_string(head->seq - 1)))
      << text;
}

// An answer Cap'n Proto refuses to send (over the message limit; list of
// policies is not checked, docs/api.md) was counted a success, and the
// error sent instead was not counted (a review, helper-123).
TEST_F(ServerNetTest, AnAnswerTooLargeToSendIsCountedAsAnError) {
  options_.max_message_words = 256;
  options_.metrics_address = "127.0.0.1:0";
  Start();
  auto session = Login(client_->getMain<rpc::Gateway>());
  auto admin = session.adminRequest().send().getAdmin();
  for (int i = 0; i < 40; ++i) {
    auto set = admin.setPolicyRequest();
    auto p = set.initPolicy();
    p.setKind("kind-with-a-long-name-" + std::to_string(i));
    p.setEraseAfter("P1Y");
    p.setHistoryAfter("P2Y");
    set.send().wait(wait());
  }
  const Status s = StatusOf(session.listPoliciesRequest().send(), wait());
  ASSERT_FALSE(s.ok());
  const std::string text = HttpGet("/metrics").second;
  EXPECT_TRUE(HasLine(
      text, "custos_rpc_requests_total{method=\"Session.listPolicies\"} 1"))
      << text;
  EXPECT_NE(
      text.find("custos_rpc_errors_total{method=\"Session.listPolicies\","),
      std::string::npos)
      << text;
}

}  // namespace
}  // namespace custos::testing
