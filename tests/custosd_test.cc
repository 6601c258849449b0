// The custosd binary on its embedded defaults (issue 12): started in an
// empty directory it creates its master key and first admin credential
// (mode 0600), serves the unix socket, stops cleanly on SIGTERM, and a
// restart finds everything acknowledged before.

#include <capnp/ez-rpc.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "schema/custos.capnp.h"

namespace custos::testing {
namespace {

namespace fs = std::filesystem;

class CustosdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custosd-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    Stop();
    fs::remove_all(dir_);
  }

  // Starts custosd with no arguments but a free TCP port, in dir_, and
  // waits for its socket.
  void Start() {
    pid_ = fork();
    if (pid_ == 0) {
      if (chdir(dir_.c_str()) != 0) _exit(126);
      execl(CUSTOSD_PATH, CUSTOSD_PATH, "--listen", "127.0.0.1:0",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_GT(pid_, 0);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(Socket())) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "custosd did not create its socket";
      int status = 0;
      ASSERT_EQ(waitpid(pid_, &status, WNOHANG), 0) << "custosd exited";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // SIGTERM; returns the exit status.
  int Stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  std::string Socket() const { return dir_ + "/custos-data/custosd.sock"; }

  std::string AdminToken() {
    std::ifstream in(dir_ + "/custos-admin.token");
    std::string token;
    std::getline(in, token);
    return token;
  }

  std::string dir_;
  pid_t pid_ = -1;
};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST_F(CustosdTest, StartsOnItsDefaultsStopsCleanlyAndKeepsWhatItAcknowledged) {
  Start();
  EXPECT_EQ(ModeOf(dir_ + "/custos-master.key"), 0600u);
  EXPECT_EQ(ModeOf(dir_ + "/custos-admin.token"), 0600u);
  EXPECT_EQ(ModeOf(Socket()), 0660u);
  const std::string token = AdminToken();
  ASSERT_FALSE(token.empty());
  {
    capnp::EzRpcClient client("unix:" + Socket());
    auto& wait = client.getWaitScope();
    auto login = client.getMain<rpc::Gateway>().loginRequest();
    login.setPrincipal("admin");
    login.setToken(token);
    auto session = login.send().getSession();
    auto create =
        session.adminRequest().send().getAdmin().createPrincipalRequest();
    create.setId("authority-a");
    create.setDisplayName("Authority A");
    create.initRoles(1).set(0, rpc::Role::USER);
    create.send().wait(wait);
  }
  const int status = Stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(fs::exists(Socket()));

  // A restart reuses the key and the store, and writes no new credential.
  Start();
  EXPECT_EQ(AdminToken(), token);
  capnp::EzRpcClient client("unix:" + Socket());
  auto& wait = client.getWaitScope();
  auto login = client.getMain<rpc::Gateway>().loginRequest();
  login.setPrincipal("admin");
  login.setToken(token);
  auto session = login.send().getSession();
  auto list = session.adminRequest().send().getAdmin().listPrincipalsRequest();
  auto response = list.send().wait(wait);
  auto principals = response.getPrincipals();
  bool found = false;
  for (auto p : principals) found = found || p.getId() == "authority-a";
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace custos::testing
