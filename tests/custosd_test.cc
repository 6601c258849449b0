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
#include "tests/custosd_process.h"

namespace custos::testing {
namespace {

namespace fs = std::filesystem;

class CustosdTest : public ::testing::Test {
 protected:
  void Start() { custosd_.Start(CUSTOSD_PATH); }
  int Stop() { return custosd_.Stop(); }
  std::string Socket() const { return custosd_.Socket(); }
  std::string AdminToken() const { return custosd_.AdminToken(); }

  CustosdProcess custosd_;
  const std::string& dir_ = custosd_.dir();
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
