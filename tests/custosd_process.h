// A real custosd for tests: started on its embedded defaults in a fresh
// temporary directory (plus a free loopback TCP port), stopped with
// SIGTERM (or killed with SIGKILL), its directory removed. Its stderr goes
// to Log(), printed when the test has failed. With the test build
// custosd-testclock started with --test-clock, SetTestClock moves the
// server's clock (server/test_clock.h).

#ifndef CUSTOS_TESTS_CUSTOSD_PROCESS_H_
#define CUSTOS_TESTS_CUSTOSD_PROCESS_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace custos::testing {

// Every directory and file under `root`, `root` included (sockets aside:
// custosd makes its socket 0660 on purpose), that its group or others may
// read, write or enter, with its mode in octal.
inline std::vector<std::string> OpenToOthers(const std::string& root) {
  namespace fs = std::filesystem;
  std::vector<std::string> open;
  auto check = [&](const fs::directory_entry& entry) {
    if (entry.is_socket()) return;
    const auto perms = entry.status().permissions();
    if ((perms & (fs::perms::group_all | fs::perms::others_all)) !=
        fs::perms::none) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%03o",
                    static_cast<unsigned>(perms) & 0777u);
      open.push_back(entry.path().string() + " " + mode);
    }
  };
  check(fs::directory_entry(root));
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    check(entry);
  }
  return open;
}

class CustosdProcess {
 public:
  CustosdProcess() {
    char tmpl[] = "/tmp/custosd-test-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) ADD_FAILURE() << "mkdtemp";
    dir_ = tmpl;
  }
  ~CustosdProcess() {
    Stop();
    if (::testing::Test::HasFailure() && std::filesystem::exists(LogFile()))
      std::cerr << "custosd's log:\n" << Log();
    std::filesystem::remove_all(dir_);
  }
  CustosdProcess(const CustosdProcess&) = delete;
  CustosdProcess& operator=(const CustosdProcess&) = delete;

  // Starts `binary` with `--listen 127.0.0.1:0` and `extra` in dir(), with
  // `env` ("NAME=value") added to its environment, and waits (up to 60 s)
  // until it says where it serves: its listeners open and its socket's
  // mode set. (The socket file exists from the bind on, before the listen
  // and the chmod: a client connecting then was refused.) A test failure
  // if it exits first.
  void Start(const char* binary, std::vector<std::string> extra = {},
             std::vector<std::string> env = {}) {
    // Backups and kits anywhere in the test's directory.
    std::vector<std::string> args = {binary, "--listen", "127.0.0.1:0",
                                     "--backup-dir", dir_};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = LogFile();
    const size_t log_before = Log().size();  // A restart appends to it.
    pid_ = fork();
    if (pid_ == 0) {
      if (chdir(dir_.c_str()) != 0) _exit(126);
      const int fd =
          open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd < 0 || dup2(fd, 2) < 0) _exit(126);
      for (auto& e : env) putenv(e.data());
      execv(binary, argv.data());
      _exit(127);
    }
    ASSERT_GT(pid_, 0);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!SaysServingSince(log_before)) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "custosd did not say where it serves";
      int status = 0;
      ASSERT_EQ(waitpid(pid_, &status, WNOHANG), 0) << "custosd exited";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // SIGTERM and wait; returns the wait status (-1 if not running).
  int Stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  // Sends `sig` to the running custosd (nothing if none runs).
  void Signal(int sig) const {
    if (pid_ > 0) kill(pid_, sig);
  }

  // Waits up to `within` for custosd to exit; its wait status, or nullopt
  // if it still runs then (it is then left running).
  std::optional<int> WaitForExit(std::chrono::milliseconds within) {
    if (pid_ <= 0) return std::nullopt;
    const auto deadline = std::chrono::steady_clock::now() + within;
    for (;;) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // The TCP port custosd serves on, from its "serving" line (waited for
  // up to 60 s); 0 and a test failure if none.
  int TcpPort() const {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string log = Log();
      const size_t serving = log.rfind("custosd: serving ");
      const size_t at = log.find("127.0.0.1:", serving);
      if (serving != std::string::npos && at != std::string::npos &&
          log.find('\n', serving) != std::string::npos)
        return std::atoi(log.c_str() + at + 10);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "custosd did not say where it serves:\n" << Log();
    return 0;
  }

  // Whether the log, after its first `offset` bytes, holds a whole
  // "serving" line.
  bool SaysServingSince(size_t offset) const {
    const std::string log = Log();
    if (log.size() < offset) return false;
    const size_t serving = log.find("custosd: serving ", offset);
    return serving != std::string::npos &&
           log.find('\n', serving) != std::string::npos;
  }

  std::string LogFile() const { return dir_ + "/custosd.log"; }
  std::string Log() const {
    std::ifstream in(LogFile(), std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

  // SIGKILL and wait; returns the wait status (-1 if not running). The
  // socket file the dead server left is removed, so that the next Start
  // waits for the new server's.
  int Kill() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    std::filesystem::remove(Socket());
    return status;
  }

  // The test clock's control file, where custosd-testclock runs with its
  // default --test-clock-file.
  std::string TestClockFile() const { return dir_ + "/custos-test-clock"; }
  // Moves the test clock of a custosd-testclock started with --test-clock
  // (and the default --test-clock-file) to `iso` ("2027-02-28T10:00:00Z"):
  // every call the server receives after this returns sees that time.
  void SetTestClock(const std::string& iso) {
    const std::string tmp = TestClockFile() + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << iso << "\n";
      ASSERT_TRUE(out.good()) << tmp;
    }
    ASSERT_EQ(std::rename(tmp.c_str(), TestClockFile().c_str()), 0);
  }

  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }
  std::string Socket() const { return dir_ + "/custos-data/custosd.sock"; }
  std::string AdminTokenFile() const { return dir_ + "/custos-admin.token"; }
  std::string AdminToken() const {
    std::ifstream in(AdminTokenFile());
    std::string token;
    std::getline(in, token);
    return token;
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace custos::testing

#endif  // CUSTOS_TESTS_CUSTOSD_PROCESS_H_
