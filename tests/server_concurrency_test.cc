// 32 clients at once (issue 12): each on its own connection to a real
// server over its real unix socket, from its own thread and event loop,
// creating, reading, listing and closing records, some about the same
// people. No call may fail, and afterwards the store must be consistent:
// every acknowledged create readable by its owner with its content, the
// counts by state what the clients did, the history chain whole.
//
// And fairness (DESIGN section 7): a client pipelining hundreds of calls
// cannot starve one that sends a call at a time.

#include <capnp/ez-rpc.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <latch>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "schema/custos.capnp.h"
#include "tests/server_fixture.h"

namespace custos::testing {
namespace {

constexpr int kClients = 32;
constexpr int kRounds = 24;  // Per client.

// What one client was told: its records by id, and their content.
struct Written {
  std::string tag;  // The attribute "tag"; also in the personal field.
  bool closed = false;
};

struct ClientLog {
  std::map<uint64_t, Written> records;
  std::vector<std::string> errors;
};

std::string Tag(int client, int round) {
  return "c" + std::to_string(client) + "-r" + std::to_string(round);
}

// Fills `r`: a request with attribute tag=`tag` about one of eight people
// shared by every client, whose "note" field is "note " + tag.
void Fill(rpc::NewRecord::Builder r, const std::string& tag, int person) {
  r.setKind("request");
  auto attrs = r.initAttributes(1);
  attrs[0].setKey("tag");
  attrs[0].setValue(tag);
  auto part = r.initPersonal(1)[0];
  part.setSubjectIdentifier("person-" + std::to_string(person) +
                            "@example.org");
  auto fields = part.initFields(1);
  fields[0].setName("note");
  fields[0].setValue("note " + tag);
}

// One client's work: create every round; read back every third record;
// close every fourth; list its records every fifth round and check the
// count. Every failure is logged, never thrown.
// All clients log in, wait at `start` for each other, then work at once.
void RunClient(const std::string& socket, const std::string& principal,
               const std::string& token, int client, std::latch& start,
               ClientLog& log) {
  bool arrived = false;
  try {
    capnp::EzRpcClient rpc_client("unix:" + socket);
    auto& wait = rpc_client.getWaitScope();
    auto login = rpc_client.getMain<rpc::Gateway>().loginRequest();
    login.setPrincipal(principal);
    login.setToken(token);
    auto session = login.send().wait(wait).getSession();
    session.whoAmIRequest().send().wait(wait);  // Logged in.
    arrived = true;
    start.arrive_and_wait();
    for (int round = 0; round < kRounds; ++round) {
      const std::string tag = Tag(client, round);
      auto create = session.createRequest();
      Fill(create.initRecord(), tag, (client + round) % 8);
      const uint64_t id = create.send().wait(wait).getId();
      log.records[id] = Written{tag, false};
      if (round % 3 == 0) {
        auto get = session.getRequest();
        get.setId(id);
        auto response = get.send().wait(wait);
        auto record = response.getRecord();
        const auto parts = record.getParts();
        if (record.getState() != rpc::RecordState::ACTIVE ||
            parts.size() != 1 || parts[0].getFields().size() != 1 ||
            parts[0].getFields()[0].getValue() != ("note " + tag).c_str()) {
          log.errors.push_back(tag + ": read back wrong");
        }
      }
      if (round % 4 == 1) {
        auto close = session.closeRequest();
        close.setId(id);
        close.send().wait(wait);
        log.records[id].closed = true;
      }
      if (round % 5 == 4) {
        auto list = session.listRequest();
        list.initQuery().setLimit(1000);
        auto response = list.send().wait(wait);
        if (response.getRecords().size() != log.records.size()) {
          log.errors.push_back(
              tag + ": listed " + std::to_string(response.getRecords().size()) +
              " records, not " + std::to_string(log.records.size()));
        }
      }
    }
  } catch (const kj::Exception& e) {
    log.errors.push_back(std::string(e.getDescription().cStr()));
  }
  if (!arrived) start.count_down();  // Never leave the others waiting.
}

using ServerConcurrencyTest = ServerFixture;

TEST_F(ServerConcurrencyTest, ThirtyTwoClientsAtOnceLeaveAConsistentStore) {
  std::vector<std::string> tokens;
  for (int c = 0; c < kClients; ++c) {
    tokens.push_back(
        CreatePrincipal("client-" + std::to_string(c), rpc::Role::USER));
  }
  std::vector<ClientLog> logs(kClients);
  std::vector<std::thread> threads;
  std::latch start(kClients);
  const std::string socket = SocketPath();
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back(RunClient, socket, "client-" + std::to_string(c),
                         tokens[c], c, std::ref(start), std::ref(logs[c]));
  }
  for (auto& t : threads) t.join();

  size_t total = 0, closed = 0;
  std::set<uint64_t> all_ids;
  for (int c = 0; c < kClients; ++c) {
    EXPECT_EQ(logs[c].errors, std::vector<std::string>{}) << "client " << c;
    EXPECT_EQ(logs[c].records.size(), size_t{kRounds}) << "client " << c;
    for (const auto& [id, written] : logs[c].records) {
      all_ids.insert(id);
      closed += written.closed ? 1 : 0;
    }
    total += logs[c].records.size();
  }
  ASSERT_EQ(all_ids.size(), total) << "an id was given twice";
  ASSERT_EQ(total, size_t{kClients * kRounds});

  // Every owner finds exactly its records, each with its content.
  for (int c = 0; c < kClients; ++c) {
    auto session = Login("client-" + std::to_string(c), tokens[c]);
    ASSERT_TRUE(session);
    auto list = session->listRequest();
    list.initQuery().setLimit(1000);
    auto listed = list.send().wait(wait());
    ASSERT_EQ(listed.getRecords().size(), logs[c].records.size());
    auto get_many = session->getManyRequest();
    auto ids = get_many.initIds(static_cast<unsigned>(logs[c].records.size()));
    unsigned i = 0;
    for (const auto& [id, written] : logs[c].records) ids.set(i++, id);
    auto got = get_many.send().wait(wait());
    ASSERT_EQ(got.getResults().size(), logs[c].records.size());
    for (auto result : got.getResults()) {
      const Written& written = logs[c].records.at(result.getId());
      ASSERT_TRUE(result.isRecord())
          << written.tag << ": " << result.getError().cStr();
      auto record = result.getRecord();
      ASSERT_EQ(record.getAttributes().size(), 1u);
      EXPECT_EQ(std::string(record.getAttributes()[0].getValue()), written.tag);
      EXPECT_EQ(record.getOwner(), ("client-" + std::to_string(c)).c_str());
      if (written.closed) {
        EXPECT_EQ(record.getState(), rpc::RecordState::CLOSED) << written.tag;
        EXPECT_FALSE(record.getPersonalIncluded()) << written.tag;
      } else {
        EXPECT_EQ(record.getState(), rpc::RecordState::ACTIVE) << written.tag;
        ASSERT_EQ(record.getParts().size(), 1u) << written.tag;
        EXPECT_EQ(std::string(record.getParts()[0].getFields()[0].getValue()),
                  "note " + written.tag);
      }
    }
  }

  // The counts by state, as the admin sees them.
  auto admin = AdminSession();
  auto count = [&](rpc::RecordState state) {
    size_t n = 0;
    uint64_t after = 0;
    do {
      auto list = admin.listRequest();
      auto query = list.initQuery();
      query.setHasState(true);
      query.setState(state);
      query.setLimit(1000);
      query.setAfterId(after);
      auto response = list.send().wait(wait());
      n += response.getRecords().size();
      after = response.getNextAfterId();
    } while (after != 0);
    return n;
  };
  EXPECT_EQ(count(rpc::RecordState::ACTIVE), total - closed);
  EXPECT_EQ(count(rpc::RecordState::CLOSED), closed);

  auto verify = AdminFacet(admin).verifyChainRequest().send().wait(wait());
  EXPECT_TRUE(verify.getOk()) << verify.getProblem().cStr();
  // At least a create per record and a close per closed one.
  EXPECT_GE(verify.getVerified(), total + closed);
  EXPECT_EQ(verify.getVerified(), verify.getHeadSeq());
}

// One worker, so that the two connections' lanes take turns on it: a
// client keeps kDepth createMany calls in flight on its connection (each
// answer sends the next; each call is a task of its own that takes the
// worker longer than the event loop takes to queue the next, so its lane
// always has calls waiting) while another, on its own connection, sends
// one call, waits for its answer, and sends the next. Counted, not timed:
// while the lone call waits, the pipelining client may get the answers
// already on their way (its calls in flight) and the call the worker runs
// in turn with the lone one; a server that kept serving the busy
// connection while it had calls queued would answer the lone call only
// once the pipelining stopped, kCap calls. Both clients run on the test
// thread's event loop, so the count taken when the lone answer arrives is
// what the busy client had received by then: no other thread's
// scheduling comes between the two.
TEST_F(ServerConcurrencyTest,
       APipeliningClientCannotStarveOneCallingOneAtATime) {
  constexpr int kDepth = 16;
  constexpr int kRecordsPerCall = 25;
  constexpr int kLoneCalls = 10;
  constexpr int kCap = 400;  // The pipelining client stops after these.
  StopServer();
  server_options_hook_ = [](server::ServerOptions& so) { so.workers = 1; };
  StartServer();
  const std::string busy_token = CreatePrincipal("busy", rpc::Role::USER);
  auto lone = NewSession("lone", rpc::Role::USER);
  GatheringConnection busy_connection = ConnectGathering();
  auto busy = LoginOver(busy_connection, "busy", busy_token);

  int sent = 0;
  int answered = 0;
  bool stop = false;
  std::string busy_error;
  auto started = kj::newPromiseAndFulfiller<void>();
  kj::PromiseFulfiller<void>& busy_started = *started.fulfiller;
  struct Errors final : kj::TaskSet::ErrorHandler {
    Errors(std::string& e, kj::PromiseFulfiller<void>& s)
        : error(e), started(s) {}
    std::string& error;
    kj::PromiseFulfiller<void>& started;
    void taskFailed(kj::Exception&& e) override {
      if (error.empty()) error = e.getDescription().cStr();
      if (started.isWaiting()) started.fulfill();  // Never leave it waiting.
    }
  } errors(busy_error, busy_started);
  kj::TaskSet tasks(errors);
  std::function<void()> send = [&] {
    if (sent >= kCap || stop) return;
    ++sent;
    auto create = busy.createManyRequest();
    auto records = create.initRecords(kRecordsPerCall);
    for (int i = 0; i < kRecordsPerCall; ++i) {
      Fill(records[i], "busy", (sent + i) % 8);
    }
    tasks.add(create.send().then([&](auto&&) {
      if (++answered == kDepth) busy_started.fulfill();  // Its lane is busy.
      send();
    }));
  };
  for (int i = 0; i < kDepth; ++i) send();
  started.promise.wait(wait());
  ASSERT_EQ(busy_error, "");

  int worst = 0;
  for (int call = 0; call < kLoneCalls; ++call) {
    const int before = answered;
    lone.whoAmIRequest().send().wait(wait());
    worst = std::max(worst, answered - before);
  }
  const int total = answered;
  stop = true;
  tasks.onEmpty().wait(wait());
  EXPECT_EQ(busy_error, "");
  EXPECT_LT(total, kCap) << "the pipelining client had stopped";
  EXPECT_LE(worst, 2 * kDepth)
      << "answers the pipelining client got while one call waited";
}

}  // namespace
}  // namespace custos::testing
