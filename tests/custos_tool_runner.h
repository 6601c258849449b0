// Runs the real `custos` binary (CUSTOS_PATH) for the tool's end-to-end
// tests: in a given directory, with standard input from a string and its
// standard output and error captured (never a terminal).

#ifndef CUSTOS_TESTS_CUSTOS_TOOL_RUNNER_H_
#define CUSTOS_TESTS_CUSTOS_TOOL_RUNNER_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/custosd_process.h"

namespace custos::testing {

struct ToolRun {
  int exit = -1;  // -1 if it did not exit normally.
  std::string out, err;
};

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

inline mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

// Runs `custos args...` in `dir` (so the defaults apply there: the socket
// unix:./custos-data/custosd.sock, the token file ./custos-admin.token),
// `input` on stdin, `env` ("NAME=value") as its whole environment besides
// PATH. Uses the files tool.{in,out,err} in `dir`.
// With `keep_input_open`, `input` comes through a pipe whose writing end
// stays open until the tool exits, as a host program's that waits for the
// answer before closing it, and `late_input` (if any) follows 300 ms after
// it; a tool still running after 10 s is killed (exit -1).
inline ToolRun RunTool(const std::string& dir,
                       const std::vector<std::string>& args,
                       const std::string& input = "",
                       const std::vector<std::string>& env = {},
                       bool keep_input_open = false,
                       const std::string& late_input = "") {
  const std::string out = dir + "/tool.out", err = dir + "/tool.err",
                    in = dir + "/tool.in";
  std::ofstream(in, std::ios::trunc) << input;
  std::vector<std::string> argv_strings = {CUSTOS_PATH};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = env;
  env_strings.push_back("PATH=/usr/bin:/bin");
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  int pipe_ends[2] = {-1, -1};
  if (keep_input_open && pipe2(pipe_ends, O_CLOEXEC) != 0) return ToolRun{};
  const pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(126);
    if (keep_input_open) close(pipe_ends[1]);  // (dup2 clears CLOEXEC.)
    const int i = keep_input_open ? pipe_ends[0] : open(in.c_str(), O_RDONLY);
    const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (i < 0 || o < 0 || e < 0) _exit(126);
    dup2(i, 0);
    dup2(o, 1);
    dup2(e, 2);
    execve(CUSTOS_PATH, argv.data(), envp.data());
    _exit(127);
  }
  ToolRun run;
  int status = 0;
  if (keep_input_open) {
    close(pipe_ends[0]);
    // A tool that exits first must not take the test down with SIGPIPE.
    const auto previous = std::signal(SIGPIPE, SIG_IGN);
    (void)!write(pipe_ends[1], input.data(), input.size());
    if (!late_input.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      (void)!write(pipe_ends[1], late_input.data(), late_input.size());
    }
    std::signal(SIGPIPE, previous);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    close(pipe_ends[1]);
  } else {
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
  }
  run.exit = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.out = Slurp(out);
  run.err = Slurp(err);
  return run;
}

// The fixture of the tool's tests: a custosd in a temporary directory
// (started by the test or its SetUp) and the tool run there, as the admin
// by default.
class CustosToolFixture : public ::testing::Test {
 protected:
  // Runs `custos args...` in the server's directory (so the defaults
  // apply: its socket, the admin token file), `input` on stdin.
  ToolRun Tool(const std::vector<std::string>& args,
               const std::string& input = "",
               const std::vector<std::string>& env = {}) {
    return RunTool(dir(), args, input, env);
  }

  // As Tool, logged in as `principal` with the token in `token_file`.
  ToolRun As(const std::string& principal, const std::string& token_file,
             std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(),
                {"--principal", principal, "--token-file", token_file});
    return Tool(args, input);
  }

  // Adds a principal through the tool; returns its token file.
  std::string AddPrincipal(const std::string& id, const std::string& role) {
    const std::string file = id + ".token";
    ToolRun r = Tool({"principal", "add", id, "--role", role, "--out", file});
    EXPECT_EQ(r.exit, 0) << r.err;
    return file;
  }

  const std::string& dir() const { return custosd_.dir(); }
  CustosdProcess custosd_;
};

}  // namespace custos::testing

#endif  // CUSTOS_TESTS_CUSTOS_TOOL_RUNNER_H_
