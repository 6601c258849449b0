// Admin.progress (issue 12: "long admin work ... reports progress"): the
// server's last long call, what the engine reported of it while it ran,
// and how it ended, over a real socket.

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/server_fixture.h"

namespace custos::testing {
namespace {

// Holds the long call at its first progress report of `phase` (through
// ServerOptions::TEST_work_progress) until Release(), at most a minute.
class WorkGate {
 public:
  explicit WorkGate(std::string phase) : phase_(std::move(phase)) {}
  void OnProgress(const WorkProgress& progress) {
    std::unique_lock lock(mu_);
    if (reached_ || progress.phase != phase_) return;
    reached_ = true;
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::minutes(1), [this] { return released_; });
  }
  bool Reached() {
    std::lock_guard lock(mu_);
    return reached_;
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  const std::string phase_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool reached_ = false;
  bool released_ = false;
};

class ServerProgressTest : public ServerFixture {
 protected:
  capnp::Response<rpc::Admin::ProgressResults> Ask(rpc::Admin::Client& admin) {
    return admin.progressRequest().send().wait(wait());
  }

  // Restarts the server with `gate` holding its first long call that
  // reports the gate's phase.
  void RestartWithGate(const std::shared_ptr<WorkGate>& gate) {
    StopServer();
    server_options_hook_ = [gate](server::ServerOptions& so) {
      so.TEST_work_progress = [gate](const WorkProgress& p) {
        gate->OnProgress(p);
      };
    };
    StartServer();
  }

  // Runs the client's event loop until `gate` holds `call` (at most a
  // minute).
  template <typename Promise>
  void PumpUntilHeld(Promise& call, WorkGate& gate) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::minutes(1);
    while (!gate.Reached()) {
      ASSERT_FALSE(call.poll(wait())) << "the call ended unheld";
      ASSERT_LT(std::chrono::steady_clock::now(), deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  // Restarts the server recording every progress report it publishes.
  void RecordReports() {
    StopServer();
    server_options_hook_ = [this](server::ServerOptions& so) {
      so.TEST_work_progress = [this](const WorkProgress& p) {
        std::lock_guard lock(mu_);
        reports_.push_back({std::string(p.phase), p.done, p.total});
      };
    };
    StartServer();
  }

  struct Report {
    std::string phase;
    uint64_t done = 0;
    uint64_t total = 0;
  };
  // The phases reported since the last call, in order, each with its last
  // counts.
  std::vector<Report> Phases() {
    std::lock_guard lock(mu_);
    std::vector<Report> phases;
    for (const Report& r : reports_) {
      if (phases.empty() || phases.back().phase != r.phase) {
        phases.push_back(r);
      } else {
        phases.back() = r;
      }
    }
    reports_.clear();
    return phases;
  }
  static std::vector<std::string> NamesOf(const std::vector<Report>& phases) {
    std::vector<std::string> names;
    for (const Report& r : phases) names.push_back(r.phase);
    return names;
  }

  std::mutex mu_;
  std::vector<Report> reports_;
};

using PhaseList = std::vector<std::string>;

TEST_F(ServerProgressTest, EachLongCallLeavesItsNamePhaseCountsAndOutcome) {
  RecordReports();
  auto admin_session = AdminSession();
  auto admin = AdminFacet(admin_session);
  auto none = Ask(admin);
  EXPECT_EQ(none.getProgress().getOperation(), "");
  EXPECT_FALSE(none.getProgress().getRunning());
  EXPECT_EQ(none.getProgress().getStartedMicros(), 0);
  EXPECT_EQ(none.getReading().getOperation(), "");

  auto a = NewSession("authority-a", rpc::Role::USER);
  CreateRecord(a, "anna@example.org");
  CreateRecord(a, "ben@example.org");
  const int64_t now = ToMicros(clock_.Now());

  admin.verifyErasureRequest().send().wait(wait());
  auto erasure = Ask(admin);
  auto e = erasure.getProgress();
  EXPECT_EQ(e.getOperation(), "verifyErasure");
  EXPECT_FALSE(e.getRunning());
  EXPECT_EQ(e.getPhase(), "files");
  EXPECT_EQ(e.getUnit(), "files");
  EXPECT_GT(e.getTotal(), 2u);  // Two databases' files at least.
  EXPECT_EQ(e.getDone(), e.getTotal());
  EXPECT_EQ(e.getStartedMicros(), now);
  EXPECT_EQ(e.getEndedMicros(), now);
  EXPECT_EQ(e.getOutcome(), "OK");
  EXPECT_EQ(NamesOf(Phases()), (PhaseList{"witnesses", "files"}));

  // The reading lane's board: the maintenance lane's still shows the
  // erasure verification.
  auto chain = admin.verifyChainRequest().send().wait(wait());
  auto verified = Ask(admin);
  EXPECT_EQ(verified.getProgress().getOperation(), "verifyErasure");
  auto c = verified.getReading();
  EXPECT_EQ(c.getOperation(), "verifyChain");
  EXPECT_EQ(c.getPhase(), "events");
  EXPECT_EQ(c.getDone(), chain.getVerified());
  EXPECT_EQ(c.getTotal(), chain.getVerified());
  EXPECT_GE(c.getDone(), 2u);  // The two creates' events at least.
  Phases();
  // The register of processing is on the reading lane too.
  auto reg = admin.processingRegisterRequest();
  reg.setHtml(false);
  reg.send().wait(wait());
  auto registered = Ask(admin);
  EXPECT_EQ(registered.getReading().getOperation(), "processingRegister");
  EXPECT_EQ(registered.getReading().getOutcome(), "OK");
  EXPECT_EQ(registered.getProgress().getOperation(), "verifyErasure");
  Phases();

  auto backup = admin.backupRequest();
  backup.setDir(dir_ + "/backup-1");
  auto backup_response = backup.send().wait(wait());
  auto written = backup_response.getReport();
  auto backed_up = Ask(admin);
  EXPECT_EQ(backed_up.getProgress().getOperation(), "backup");
  EXPECT_EQ(backed_up.getProgress().getPhase(), "manifest");  // The last.
  EXPECT_EQ(backed_up.getProgress().getOutcome(), "OK");
  const auto backup_phases = Phases();
  ASSERT_EQ(NamesOf(backup_phases),
            (PhaseList{"records", "keystore", "manifest"}));
  EXPECT_EQ(backup_phases[0].done, written.getRecordsEntries());
  EXPECT_EQ(backup_phases[1].done, written.getKeystoreEntries());

  auto check = admin.verifyBackupRequest();
  check.setDir(dir_ + "/backup-1");
  auto check_response = check.send().wait(wait());
  auto checked = Ask(admin);
  EXPECT_EQ(checked.getProgress().getOperation(), "verifyBackup");
  EXPECT_EQ(checked.getProgress().getPhase(), "structure");
  const auto check_phases = Phases();
  ASSERT_EQ(NamesOf(check_phases), (PhaseList{"checksums", "structure"}));
  uint64_t bytes = 0;
  for (auto f : written.getFiles()) bytes += f.getSize();
  EXPECT_EQ(check_phases[0].total, bytes);
  EXPECT_EQ(check_phases[0].done, bytes);
  auto v = check_response.getVerification();
  EXPECT_EQ(check_phases[1].done, v.getRecordsChunks() + v.getKeystoreChunks());

  auto rotate = admin.rotateKekRequest();
  rotate.setBatchSize(1);
  auto rotated = rotate.send().wait(wait());
  ASSERT_TRUE(rotated.getComplete());
  auto keys = Ask(admin);
  auto k = keys.getProgress();
  EXPECT_EQ(k.getOperation(), "rotateKek");
  EXPECT_EQ(k.getPhase(), "keys");
  EXPECT_EQ(k.getDone(), 2u);   // Anna's and Ben's keys, one a batch.
  EXPECT_EQ(k.getTotal(), 0u);  // No maxKeys: not known ahead.
  Phases();

  auto shred = admin.shredSubjectRequest();
  auto find = admin.findSubjectRequest();
  find.setIdentifier("anna@example.org");
  shred.setSubjectId(find.send().wait(wait()).getSubjectId());
  shred.send().wait(wait());
  Phases();
  auto complete = admin.completeShredsRequest();
  complete.setBudget(100);
  EXPECT_EQ(complete.send().wait(wait()).getRewritten(), 1u);
  auto completed = Ask(admin);
  EXPECT_EQ(completed.getProgress().getOperation(), "completeShreds");
  EXPECT_EQ(completed.getProgress().getPhase(), "compacting");
  const auto shred_phases = Phases();
  ASSERT_EQ(NamesOf(shred_phases), (PhaseList{"records", "compacting"}));
  EXPECT_EQ(shred_phases[0].done, 1u);

  admin.reapplyPoliciesRequest().send().wait(wait());
  auto reapplied = Ask(admin);
  EXPECT_EQ(reapplied.getProgress().getOperation(), "reapplyPolicies");
  EXPECT_EQ(reapplied.getProgress().getPhase(), "records");
  EXPECT_EQ(reapplied.getProgress().getDone(), 2u);  // Both records seen.
  EXPECT_EQ(reapplied.getProgress().getOutcome(), "OK");

  // A call without phases: its name and outcome only.
  admin.expireBackupKeysRequest().send().wait(wait());
  auto expired = Ask(admin);
  EXPECT_EQ(expired.getProgress().getOperation(), "expireBackupKeys");
  EXPECT_EQ(expired.getProgress().getPhase(), "");
  EXPECT_EQ(expired.getProgress().getOutcome(), "OK");
}

TEST_F(ServerProgressTest, AFailedOrRefusedCallSaysHow) {
  auto admin_session = AdminSession();
  auto admin = AdminFacet(admin_session);
  // Into a directory that is not empty: the backup fails once started.
  std::filesystem::create_directories(dir_ + "/full");
  { std::ofstream(dir_ + "/full/something") << "x"; }
  auto backup = admin.backupRequest();
  backup.setDir(dir_ + "/full");
  EXPECT_EQ(StatusOf(backup.send(), wait()).code(), StatusCode::kAlreadyExists);
  auto failed = Ask(admin);
  EXPECT_EQ(failed.getProgress().getOperation(), "backup");
  EXPECT_FALSE(failed.getProgress().getRunning());
  EXPECT_EQ(failed.getProgress().getOutcome(), "AlreadyExists");

  // Refused for its arguments: it is the last long call all the same.
  auto oversized = admin.rotateKekRequest();
  oversized.setBatchSize(kMaxKekBatchSize + 1);
  EXPECT_EQ(StatusOf(oversized.send(), wait()).code(),
            StatusCode::kInvalidArgument);
  auto refused = Ask(admin);
  EXPECT_EQ(refused.getProgress().getOperation(), "rotateKek");
  EXPECT_FALSE(refused.getProgress().getRunning());
  EXPECT_EQ(refused.getProgress().getPhase(), "");
  EXPECT_EQ(refused.getProgress().getOutcome(), "InvalidArgument");
  EXPECT_NE(refused.getProgress().getEndedMicros(), 0);

  // Only admins ask.
  auto auditor = NewSession("auditor-1", rpc::Role::AUDITOR);
  auto facet = AdminFacet(auditor);
  EXPECT_EQ(StatusOf(facet.progressRequest().send(), wait()).code(),
            StatusCode::kPermissionDenied);
}

TEST_F(ServerProgressTest, ALongCallsProgressIsSeenWhileItRuns) {
  auto gate = std::make_shared<WorkGate>("files");
  RestartWithGate(gate);
  auto admin_session = AdminSession();
  auto admin = AdminFacet(admin_session);
  auto verify = admin.verifyErasureRequest().send();
  auto release = kj::defer([&] { gate->Release(); });
  ASSERT_NO_FATAL_FAILURE(PumpUntilHeld(verify, *gate));
  // Held as its scan of the files begins: from another connection too.
  const std::string token = CreatePrincipal("admin-2", rpc::Role::ADMIN);
  auto other_session = Login("admin-2", token);
  ASSERT_TRUE(other_session.has_value());
  auto other = AdminFacet(*other_session);
  auto mid = Ask(other);
  auto m = mid.getProgress();
  EXPECT_EQ(m.getOperation(), "verifyErasure");
  EXPECT_TRUE(m.getRunning());
  EXPECT_EQ(m.getPhase(), "files");
  EXPECT_EQ(m.getDone(), 0u);
  EXPECT_GT(m.getTotal(), 0u);
  EXPECT_EQ(m.getEndedMicros(), 0);
  EXPECT_EQ(m.getOutcome(), "");
  // A second long call meanwhile is refused at once as Unavailable: it
  // never had the lane, and the board still shows the running one.
  auto second = other.backupRequest();
  second.setDir(dir_ + "/backup-2");
  EXPECT_EQ(StatusOf(second.send(), wait()).code(), StatusCode::kUnavailable);
  auto still = Ask(other);
  EXPECT_EQ(still.getProgress().getOperation(), "verifyErasure");
  EXPECT_TRUE(still.getProgress().getRunning());
  gate->Release();
  verify.wait(wait());
  auto after = Ask(other);
  EXPECT_FALSE(after.getProgress().getRunning());
  EXPECT_EQ(after.getProgress().getDone(), after.getProgress().getTotal());
  EXPECT_EQ(after.getProgress().getOutcome(), "OK");
}

// The two long lanes: an auditor's chain verification held mid-way keeps
// neither an administrator's maintenance waiting nor its board; a second
// read meanwhile is refused on the reading lane alone.
TEST_F(ServerProgressTest, AnAuditorsLongReadKeepsNoMaintenanceWaiting) {
  auto gate = std::make_shared<WorkGate>("events");
  RestartWithGate(gate);
  auto a = NewSession("authority-a", rpc::Role::USER);
  CreateRecord(a, "anna@example.org");
  auto auditor_session = NewSession("auditor-1", rpc::Role::AUDITOR);
  auto auditor = auditor_session.auditorRequest().send().getAuditor();
  auto verify = auditor.verifyChainRequest().send();
  auto release = kj::defer([&] { gate->Release(); });
  ASSERT_NO_FATAL_FAILURE(PumpUntilHeld(verify, *gate));
  auto admin_session = AdminSession();
  auto admin = AdminFacet(admin_session);
  // Maintenance runs meanwhile, and its board is its own.
  auto sweep = admin.sweepRequest().send().wait(wait());
  EXPECT_EQ(sweep.getReport().getClosed(), 0u);
  auto mid = Ask(admin);
  EXPECT_EQ(mid.getProgress().getOperation(), "sweep");
  EXPECT_EQ(mid.getProgress().getOutcome(), "OK");
  EXPECT_EQ(mid.getReading().getOperation(), "verifyChain");
  EXPECT_TRUE(mid.getReading().getRunning());
  // Another read, of either facet, is refused while the first runs.
  const std::string kBusy =
      "another verifyChain or processingRegister is running on this server; "
      "try again once it has ended";
  auto register_request = auditor.processingRegisterRequest();
  const Status refused = StatusOf(register_request.send(), wait());
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_EQ(refused.message(), kBusy);
  const Status admin_refused =
      StatusOf(admin.verifyChainRequest().send(), wait());
  EXPECT_EQ(admin_refused.code(), StatusCode::kUnavailable);
  EXPECT_EQ(admin_refused.message(), kBusy);
  gate->Release();
  EXPECT_TRUE(verify.wait(wait()).getOk());
  auto after = Ask(admin);
  EXPECT_FALSE(after.getReading().getRunning());
  EXPECT_EQ(after.getReading().getOutcome(), "OK");
  EXPECT_EQ(after.getProgress().getOperation(), "sweep");
}

}  // namespace
}  // namespace custos::testing
