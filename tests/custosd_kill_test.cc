// custosd SIGKILLed under load and restarted, again and again (issue 12,
// DESIGN section 7: "a server that is killed at any instant restarts with
// every acknowledged write intact and its indexes consistent"). A real
// custosd child with its default synchronous writes; a client creating
// records continuously (a few calls in flight) and noting every create the
// server acknowledged; SIGKILL at a random moment; a restart on the same
// data directory; every acknowledged record there with its content, and
// the history chain whole.
//
// Iterations: 20, or CUSTOS_KILL_ITERATIONS (compile definition: fewer in
// sanitizer builds; or the environment variable of that name). The seed of
// the kill moments is printed; CUSTOS_KILL_SEED replays one.

#include <capnp/ez-rpc.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "schema/custos.capnp.h"
#include "tests/custosd_process.h"

#ifndef CUSTOS_KILL_ITERATIONS
#define CUSTOS_KILL_ITERATIONS 20
#endif

namespace custos::testing {
namespace {

struct Acked {
  uint64_t id;
  std::string content;
};

// From CUSTOS_KILL_ITERATIONS if set: a whole number of at least 1, else
// the test fails (a 0 or a typo must not pass without a single kill).
int Iterations() {
  const char* env = std::getenv("CUSTOS_KILL_ITERATIONS");
  if (env == nullptr) return CUSTOS_KILL_ITERATIONS;
  char* end = nullptr;
  const long n = std::strtol(env, &end, 10);
  EXPECT_TRUE(*env != '\0' && *end == '\0' && n >= 1 && n <= 10000)
      << "CUSTOS_KILL_ITERATIONS=" << env;
  return n >= 1 && n <= 10000 && *end == '\0' ? static_cast<int>(n) : 1;
}

// A session of `principal` on `socket`; the connection is retried for a
// few seconds (a restarted server's socket file appears just before it
// listens).
struct Client {
  Client(const std::string& socket, const std::string& principal,
         const std::string& token) {
    for (int attempt = 0;; ++attempt) {
      try {
        connection = std::make_unique<capnp::EzRpcClient>("unix:" + socket);
        auto login = connection->getMain<rpc::Gateway>().loginRequest();
        login.setPrincipal(principal);
        login.setToken(token);
        session = std::make_unique<rpc::Session::Client>(
            login.send().wait(connection->getWaitScope()).getSession());
        return;
      } catch (const kj::Exception&) {
        session.reset();
        connection.reset();
        if (attempt == 100) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
  ~Client() {
    session.reset();
    connection.reset();
  }
  kj::WaitScope& wait() { return connection->getWaitScope(); }

  std::unique_ptr<capnp::EzRpcClient> connection;
  // Held by pointer: a Cap'n Proto client's destructor may throw.
  std::unique_ptr<rpc::Session::Client> session;
};

// Creates records until the connection breaks, `kInFlight` calls at a
// time; every acknowledged one is appended to `acked`.
void Write(const std::string& socket, const std::string& token, int round,
           std::mutex& mu, std::vector<Acked>& acked,
           std::atomic<int>& acked_this_round) {
  constexpr size_t kInFlight = 4;
  try {
    Client client(socket, "writer", token);
    std::deque<std::pair<std::string,
                         capnp::RemotePromise<rpc::Session::CreateResults>>>
        sent;
    for (int n = 0;; ++n) {
      const std::string content =
          "round " + std::to_string(round) + " write " + std::to_string(n);
      auto create = client.session->createRequest();
      auto r = create.initRecord();
      r.setKind("request");
      auto part = r.initPersonal(1)[0];
      part.setSubjectIdentifier("person-" + std::to_string(n % 4) +
                                "@example.org");
      auto fields = part.initFields(1);
      fields[0].setName("content");
      fields[0].setValue(content);
      sent.emplace_back(content, create.send());
      if (sent.size() < kInFlight) continue;
      const uint64_t id = sent.front().second.wait(client.wait()).getId();
      {
        std::lock_guard lock(mu);
        acked.push_back({id, sent.front().first});
      }
      ++acked_this_round;
      sent.pop_front();
    }
  } catch (const kj::Exception&) {
    // The server was killed: what was not acknowledged may or may not be
    // there.
  }
}

class CustosdKillTest : public ::testing::Test {
 protected:
  // Reads every acknowledged record back as "writer" and checks the chain
  // as "admin"; a test failure for anything missing or different.
  void CheckEverythingAcknowledged(const std::string& writer_token,
                                   const std::vector<Acked>& acked) {
    Client writer(custosd_.Socket(), "writer", writer_token);
    constexpr size_t kBatch = 100;  // The server's default max batch.
    for (size_t start = 0; start < acked.size(); start += kBatch) {
      const size_t n = std::min(kBatch, acked.size() - start);
      auto get_many = writer.session->getManyRequest();
      auto ids = get_many.initIds(static_cast<unsigned>(n));
      for (size_t i = 0; i < n; ++i) ids.set(i, acked[start + i].id);
      auto response = get_many.send().wait(writer.wait());
      auto results = response.getResults();
      ASSERT_EQ(results.size(), n);
      for (size_t i = 0; i < n; ++i) {
        const Acked& a = acked[start + i];
        ASSERT_EQ(results[i].getId(), a.id);
        ASSERT_TRUE(results[i].isRecord()) << a.content << " (id " << a.id
                                           << ") was acknowledged and is gone: "
                                           << results[i].getError().cStr();
        auto record = results[i].getRecord();
        ASSERT_EQ(record.getParts().size(), 1u) << a.content;
        EXPECT_EQ(std::string(record.getParts()[0].getFields()[0].getValue()),
                  a.content);
      }
    }
    Client admin(custosd_.Socket(), "admin", admin_token_);
    auto verify = admin.session->adminRequest()
                      .send()
                      .getAdmin()
                      .verifyChainRequest()
                      .send()
                      .wait(admin.wait());
    EXPECT_TRUE(verify.getOk()) << verify.getProblem().cStr();
  }

  CustosdProcess custosd_;
  std::string admin_token_;
};

TEST_F(CustosdKillTest, EveryAcknowledgedWriteSurvivesSigkill) {
  custosd_.Start(CUSTOSD_PATH);
  admin_token_ = custosd_.AdminToken();
  std::string writer_token;
  {
    Client admin(custosd_.Socket(), "admin", admin_token_);
    auto req = admin.session->adminRequest()
                   .send()
                   .getAdmin()
                   .createPrincipalRequest();
    req.setId("writer");
    req.setDisplayName("Writer");
    req.initRoles(1).set(0, rpc::Role::USER);
    writer_token = req.send().wait(admin.wait()).getCreated().getToken().cStr();
  }

  const char* seed_env = std::getenv("CUSTOS_KILL_SEED");
  const unsigned seed = seed_env != nullptr
                            ? static_cast<unsigned>(std::atoi(seed_env))
                            : std::random_device{}();
  std::printf("CUSTOS_KILL_SEED=%u\n", seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(0, 150);

  std::mutex mu;
  std::vector<Acked> acked;
  const int iterations = Iterations();
  for (int round = 0; round < iterations; ++round) {
    if (round > 0) custosd_.Start(CUSTOSD_PATH);
    {
      std::lock_guard lock(mu);
      CheckEverythingAcknowledged(writer_token, acked);
      if (HasFatalFailure()) return;
    }
    std::atomic<int> acked_this_round = 0;
    std::thread writer(Write, custosd_.Socket(), writer_token, round,
                       std::ref(mu), std::ref(acked),
                       std::ref(acked_this_round));
    // At least one acknowledged write per round, then a random moment.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (acked_this_round == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    const int status = custosd_.Kill();
    writer.join();
    ASSERT_GT(acked_this_round, 0) << "round " << round;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "round " << round << ": custosd had already ended: " << status;
  }
  custosd_.Start(CUSTOSD_PATH);
  CheckEverythingAcknowledged(writer_token, acked);
  std::printf("%zu acknowledged writes over %d kills\n", acked.size(),
              iterations);
  const int status = custosd_.Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace custos::testing
