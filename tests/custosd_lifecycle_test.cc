// The whole life of an information request between two authorities
// (issue 12), against a real custosd over its real unix socket with the
// generated Cap'n Proto client, its time moved by the test build's clock
// (custosd-testclock --test-clock, server/test_clock.h): created with a
// grant, read by the grantee, closed (the grantee sees attributes only),
// BLOCKED at its deadline, read by an officer with a purpose, ERASED at
// its deadline (then read as a record that never existed), and the
// auditor's history showing who read it.

#include <capnp/ez-rpc.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/time_text.h"
#include "schema/custos.capnp.h"
#include "server/errors.h"
#include "tests/custosd_process.h"

namespace custos::testing {
namespace {

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

int64_t Micros(const char* iso) { return ToMicros(*ParseTimestamp(iso)); }

// One party: its own connection and session.
struct Party {
  Party(const std::string& socket, const std::string& principal,
        const std::string& token)
      : client(std::make_unique<capnp::EzRpcClient>("unix:" + socket)) {
    auto login = client->getMain<rpc::Gateway>().loginRequest();
    login.setPrincipal(principal);
    login.setToken(token);
    session = std::make_unique<rpc::Session::Client>(
        login.send().wait(client->getWaitScope()).getSession());
  }
  kj::WaitScope& wait() { return client->getWaitScope(); }

  std::unique_ptr<capnp::EzRpcClient> client;
  // Held by pointer: a Cap'n Proto client's destructor may throw.
  std::unique_ptr<rpc::Session::Client> session;
};

class CustosdLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::string> args = {"--test-clock", "2026-08-31T10:00:00Z",
                                     "--maintenance-interval",
                                     MaintenanceInterval()};
    for (std::string& a : ExtraArgs()) args.push_back(std::move(a));
    custosd_.Start(CUSTOSD_TESTCLOCK_PATH, args);
    admin_ = std::make_unique<Party>(custosd_.Socket(), "admin",
                                     custosd_.AdminToken());
  }
  void TearDown() override {
    parties_.clear();
    admin_.reset();
    const int status = custosd_.Stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }

  // By default the timer's sweeps stay out of the way: the test sweeps
  // when it means to.
  virtual std::string MaintenanceInterval() const { return "86400"; }
  // More of custosd's options.
  virtual std::vector<std::string> ExtraArgs() const { return {}; }

  rpc::Admin::Client Admin() {
    return admin_->session->adminRequest().send().getAdmin();
  }

  // Creates a principal with `role` and connects it.
  Party& Connect(const std::string& id, rpc::Role role) {
    auto req = Admin().createPrincipalRequest();
    req.setId(id);
    req.setDisplayName("Name of " + id);
    req.initRoles(1).set(0, role);
    auto created = req.send().wait(admin_->wait());
    const std::string token = created.getCreated().getToken().cStr();
    parties_.push_back(std::make_unique<Party>(custosd_.Socket(), id, token));
    return *parties_.back();
  }

  CustosdProcess custosd_;
  std::unique_ptr<Party> admin_;
  std::vector<std::unique_ptr<Party>> parties_;
};

TEST_F(CustosdLifecycleTest, AnInformationRequestLivesAndDiesOnSchedule) {
  Party& a = Connect("authority-a", rpc::Role::USER);
  Party& b = Connect("authority-b", rpc::Role::USER);
  Party& officer = Connect("officer", rpc::Role::OFFICER);
  Party& auditor = Connect("auditor", rpc::Role::AUDITOR);
  kj::WaitScope& wait = a.wait();  // One thread: one event loop for all.

  // Authority A asks authority B about Anna, on 31 August 2026.
  auto create = a.session->createRequest();
  auto r = create.initRecord();
  r.setKind("request");
  auto attrs = r.initAttributes(1);
  attrs[0].setKey("area");
  attrs[0].setValue("services");
  auto part = r.initPersonal(1)[0];
  part.setSubjectIdentifier("anna@example.org");
  auto fields = part.initFields(1);
  fields[0].setName("name");
  fields[0].setValue("Anna Example");
  r.initGrants(1).set(0, "authority-b");
  const uint64_t id = create.send().wait(wait).getId();
  ASSERT_GT(id, 0u);

  auto get = [&](Party& p, uint64_t which, bool with_purpose = false) {
    auto req = p.session->getRequest();
    req.setId(which);
    if (with_purpose) {
      auto purpose = req.initPurpose();
      purpose.setKind(rpc::PurposeKind::PUBLIC_INTEREST);
      purpose.setJustification("legal proceedings 4 C 12/26");
    }
    return req.send();
  };
  // What a record that never existed gets: every refusal must read so.
  const Status never = StatusOf(get(b, id + 1000), wait);
  ASSERT_EQ(never.code(), StatusCode::kNotFound);

  // B reads it in full.
  {
    auto response = get(b, id).wait(wait);
    auto record = response.getRecord();
    EXPECT_EQ(record.getState(), rpc::RecordState::ACTIVE);
    ASSERT_TRUE(record.getPersonalIncluded());
    ASSERT_EQ(record.getParts().size(), 1u);
    EXPECT_EQ(std::string(record.getParts()[0].getFields()[0].getValue()),
              "Anna Example");
    EXPECT_EQ(record.getCreatedAtMicros(), Micros("2026-08-31T10:00:00Z"));
  }

  // A closes it at 12:00; B sees the attributes only.
  custosd_.SetTestClock("2026-08-31T12:00:00Z");
  auto close = a.session->closeRequest();
  close.setId(id);
  close.send().wait(wait);
  {
    auto response = get(b, id).wait(wait);
    auto record = response.getRecord();
    EXPECT_EQ(record.getState(), rpc::RecordState::CLOSED);
    EXPECT_EQ(record.getClosedAtMicros(), Micros("2026-08-31T12:00:00Z"));
    EXPECT_FALSE(record.getPersonalIncluded());
    EXPECT_EQ(record.getParts().size(), 0u);
    ASSERT_EQ(record.getAttributes().size(), 1u);
    EXPECT_EQ(std::string(record.getAttributes()[0].getValue()), "services");
  }

  // Blocked six months after closure: 31 August + 6 months is the last
  // day of February (Regulation 1182/71). One second before, still closed.
  const int64_t blocked_at = Micros("2027-02-28T12:00:00Z");
  custosd_.SetTestClock("2027-02-28T11:59:59Z");
  {
    auto response = get(b, id).wait(wait);
    EXPECT_EQ(response.getRecord().getState(), rpc::RecordState::CLOSED);
  }
  // At the deadline, before any sweep: gone for the authorities.
  custosd_.SetTestClock("2027-02-28T12:00:00Z");
  for (Party* p : {&a, &b}) {
    const Status blocked = StatusOf(get(*p, id), wait);
    EXPECT_EQ(blocked.code(), StatusCode::kNotFound);
    EXPECT_EQ(blocked.ToString(), never.ToString());
  }
  // The sweep writes down what is already in force.
  custosd_.SetTestClock("2027-02-28T12:05:00Z");
  {
    auto req = Admin().sweepRequest();
    auto response = req.send().wait(wait);
    auto report = response.getReport();
    EXPECT_EQ(report.getBlocked(), 1u);
    EXPECT_EQ(report.getErased(), 0u);
    EXPECT_TRUE(report.getComplete());
    ASSERT_EQ(report.getTransitions().size(), 1u);
    auto t = report.getTransitions()[0];
    EXPECT_EQ(t.getRecordId(), id);
    EXPECT_EQ(t.getFrom(), rpc::RecordState::CLOSED);
    EXPECT_EQ(t.getTo(), rpc::RecordState::BLOCKED);
    EXPECT_EQ(t.getDueMicros(), blocked_at);
  }
  for (Party* p : {&a, &b}) {
    EXPECT_EQ(StatusOf(get(*p, id), wait).ToString(), never.ToString());
  }

  // The officer: nothing without a purpose; everything with one.
  EXPECT_EQ(StatusOf(get(officer, id), wait).ToString(), never.ToString());
  custosd_.SetTestClock("2027-06-01T09:00:00Z");
  {
    auto response = get(officer, id, /*with_purpose=*/true).wait(wait);
    auto record = response.getRecord();
    EXPECT_EQ(record.getState(), rpc::RecordState::BLOCKED);
    EXPECT_EQ(record.getBlockedAtMicros(), blocked_at);
    ASSERT_TRUE(record.getPersonalIncluded());
    ASSERT_EQ(record.getParts().size(), 1u);
    EXPECT_EQ(std::string(record.getParts()[0].getFields()[0].getValue()),
              "Anna Example");
  }

  // Erased three years after closure, to the second.
  const int64_t erased_at = Micros("2029-08-31T12:00:00Z");
  // (The admin sees attributes in every state, and its reads disclose
  // nothing: they leave the history as it is.)
  custosd_.SetTestClock("2029-08-31T11:59:59Z");
  {
    auto response = get(*admin_, id).wait(wait);
    EXPECT_EQ(response.getRecord().getState(), rpc::RecordState::BLOCKED);
  }
  custosd_.SetTestClock("2029-08-31T12:00:00Z");
  {
    auto response = get(*admin_, id).wait(wait);
    auto record = response.getRecord();
    EXPECT_EQ(record.getState(), rpc::RecordState::ERASED);
    EXPECT_FALSE(record.getPersonalIncluded());
    EXPECT_EQ(record.getParts().size(), 0u);
  }
  custosd_.SetTestClock("2029-08-31T13:00:00Z");
  {
    auto response = Admin().sweepRequest().send().wait(wait);
    auto report = response.getReport();
    EXPECT_EQ(report.getErased(), 1u);
    EXPECT_EQ(report.getBlocked(), 0u);
    ASSERT_EQ(report.getTransitions().size(), 1u);
    EXPECT_EQ(report.getTransitions()[0].getTo(), rpc::RecordState::ERASED);
    EXPECT_EQ(report.getTransitions()[0].getDueMicros(), erased_at);
  }
  for (Party* p : {&a, &b}) {
    EXPECT_EQ(StatusOf(get(*p, id), wait).ToString(), never.ToString());
  }
  {
    auto response = get(officer, id, true).wait(wait);
    auto record = response.getRecord();
    EXPECT_EQ(record.getState(), rpc::RecordState::ERASED);
    EXPECT_EQ(record.getErasedAtMicros(), erased_at);
    EXPECT_FALSE(record.getPersonalIncluded());
    ASSERT_EQ(record.getAttributes().size(), 1u);
    EXPECT_EQ(std::string(record.getAttributes()[0].getValue()), "services");
  }

  // The auditor answers Anna's access request: who received her data and
  // who read it, after the data itself is gone. The sweeps' transitions
  // are the sweeping admin's acts, at the legal instant; the auditor's own
  // lookup of Anna is the last event (about no record).
  auto facet = auditor.session->auditorRequest().send().getAuditor();
  auto find = facet.findSubjectRequest();
  find.setIdentifier("anna@example.org");
  const std::string subject = find.send().wait(wait).getSubjectId().cStr();
  auto history = facet.accessHistoryRequest();
  history.setSubjectId(subject);
  history.setLimit(100);
  auto response = history.send().wait(wait);
  std::vector<std::string> seen;
  for (auto e : response.getEvents()) {
    const bool lookup =
        std::string_view(e.getAction().cStr()) == "find_subject";
    EXPECT_EQ(e.getRecordId(), lookup ? 0u : id);
    seen.push_back(std::string(e.getPrincipalId().cStr()) + " " +
                   e.getAction().cStr() + " " +
                   FormatTimestamp(FromMicros(e.getAtMicros())));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "authority-a create 2026-08-31T10:00:00Z",
                      "authority-a grant 2026-08-31T10:00:00Z",
                      "authority-b read 2026-08-31T10:00:00Z",
                      "authority-a close 2026-08-31T12:00:00Z",
                      "admin block 2027-02-28T12:00:00Z",
                      "officer read_restricted 2027-06-01T09:00:00Z",
                      "admin erase 2029-08-31T12:00:00Z",
                      "auditor find_subject 2029-08-31T13:00:00Z",
                  }));

  // The chain over all of it verifies.
  auto verify = facet.verifyChainRequest().send().wait(wait);
  EXPECT_TRUE(verify.getOk()) << verify.getProblem().cStr();
}

class CustosdTimerTest : public CustosdLifecycleTest {
 protected:
  std::string MaintenanceInterval() const override { return "1"; }
};

TEST_F(CustosdTimerTest, TheServersOwnSweepsRunOnTheTestClock) {
  Party& a = Connect("authority-a", rpc::Role::USER);
  Party& auditor = Connect("auditor", rpc::Role::AUDITOR);
  kj::WaitScope& wait = a.wait();
  auto create = a.session->createRequest();
  auto r = create.initRecord();
  r.setKind("request");
  auto part = r.initPersonal(1)[0];
  part.setSubjectIdentifier("anna@example.org");
  auto fields = part.initFields(1);
  fields[0].setName("name");
  fields[0].setValue("Anna Example");
  const uint64_t id = create.send().wait(wait).getId();
  auto close = a.session->closeRequest();
  close.setId(id);
  close.send().wait(wait);

  auto facet = auditor.session->auditorRequest().send().getAuditor();
  auto find = facet.findSubjectRequest();
  find.setIdentifier("anna@example.org");
  const std::string subject = find.send().wait(wait).getSubjectId().cStr();
  // The "block" events of Anna's history, as "principal at".
  auto blocks = [&] {
    auto history = facet.accessHistoryRequest();
    history.setSubjectId(subject);
    history.setLimit(100);
    auto response = history.send().wait(wait);
    std::vector<std::string> seen;
    for (auto e : response.getEvents()) {
      if (e.getAction() == "block") {
        seen.push_back(std::string(e.getPrincipalId().cStr()) + " " +
                       FormatTimestamp(FromMicros(e.getAtMicros())));
      }
    }
    return seen;
  };
  // Seconds of real time pass, and the timer runs, but the server's time
  // stands still: nothing is due.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(blocks(), std::vector<std::string>{});

  // Six months on, the timer's next run blocks it (no admin sweeps here).
  custosd_.SetTestClock("2027-02-28T10:00:00Z");
  std::vector<std::string> seen;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((seen = blocks()).empty() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(seen,
            std::vector<std::string>{"custos:retention 2027-02-28T10:00:00Z"});
}

// custosd's --erasure-compaction-delay (issue 11: physical removal off the
// callers' path). The timer stays out of the way here (the fixture's
// interval, a day): what compacts is what the test calls.
class CustosdErasureDelayTest : public CustosdLifecycleTest {
 protected:
  std::vector<std::string> ExtraArgs() const override {
    return {"--erasure-compaction-delay", "3600"};
  }

  // Creates an ACTIVE record of `a`'s with one personal part; its id.
  uint64_t CreateRecord(Party& a, const std::string& identifier) {
    auto create = a.session->createRequest();
    auto r = create.initRecord();
    r.setKind("request");
    auto part = r.initPersonal(1)[0];
    part.setSubjectIdentifier(identifier);
    auto fields = part.initFields(1);
    fields[0].setName("name");
    fields[0].setValue("Name of " + identifier);
    return create.send().wait(a.wait()).getId();
  }
  void Erase(Party& a, uint64_t id) {
    auto erase = a.session->eraseRequest();
    erase.setId(id);
    erase.send().wait(a.wait());
  }
  // VerifyErasure over RPC: {witnesses, found}.
  std::pair<uint64_t, uint64_t> Verify() {
    auto report = Admin().verifyErasureRequest().send().wait(admin_->wait());
    EXPECT_EQ(report.getCorruptQueueEntries(), 0u);
    EXPECT_EQ(report.getUndecodableSealedEntries(), 0u);
    return {report.getWitnesses(), report.getFound()};
  }
  static std::pair<uint64_t, uint64_t> Counts(uint64_t witnesses,
                                              uint64_t found) {
    return {witnesses, found};
  }
};

TEST_F(CustosdErasureDelayTest, AnEarlyErasureReturnsWithoutCompacting) {
  Party& a = Connect("authority-a", rpc::Role::USER);
  const uint64_t anna = CreateRecord(a, "anna@example.org");
  const uint64_t ben = CreateRecord(a, "ben@example.org");
  Erase(a, anna);
  // One witness (the erased part, sealed inline: an ACTIVE record has no
  // erase-deadline bucket), still in the files: the call did not compact.
  EXPECT_EQ(Verify(), Counts(1, 1));

  // An hour on, Anna's erasure has waited the delay; Ben's erasure, a
  // caller's call, still does not compact: that is the sweeps' work.
  custosd_.SetTestClock("2026-08-31T11:00:00Z");
  Erase(a, ben);
  EXPECT_EQ(Verify(), Counts(2, 2));

  // An admin's sweep compacts everything queued at once, once the oldest
  // has waited the delay: Ben's younger erasure goes with Anna's.
  auto swept = Admin().sweepRequest().send().wait(admin_->wait());
  EXPECT_EQ(swept.getReport().getErased(), 0u);  // Nothing was due.
  EXPECT_EQ(Verify(), Counts(2, 0));
}

// The same, with the server's own timer running every second.
class CustosdErasureDelayTimerTest : public CustosdErasureDelayTest {
 protected:
  std::string MaintenanceInterval() const override { return "1"; }
};

TEST_F(CustosdErasureDelayTimerTest, TheTimerCompactsOnceTheDelayHasPassed) {
  Party& a = Connect("authority-a", rpc::Role::USER);
  Erase(a, CreateRecord(a, "anna@example.org"));
  EXPECT_EQ(Verify(), Counts(1, 1));
  // Seconds of real time pass, and the timer runs, but the server's time
  // stands still: the delay has not passed, the bytes stay.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(Verify(), Counts(1, 1));

  // One second short of the delay, then the delay: the timer's next pass
  // compacts (no call of the test's erases or sweeps anything).
  custosd_.SetTestClock("2026-08-31T10:59:59Z");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(Verify(), Counts(1, 1));
  custosd_.SetTestClock("2026-08-31T11:00:00Z");
  std::pair<uint64_t, uint64_t> seen;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((seen = Verify()).second != 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(seen, Counts(1, 0));
}

}  // namespace
}  // namespace custos::testing
