// Crash tests: run this test binary again as a child process that runs one
// disabled test (the child's body), tell it what to do through one
// environment variable, hear from it through a pipe, and kill it.

#ifndef CUSTOS_TESTS_CHILD_PROCESS_H_
#define CUSTOS_TESTS_CHILD_PROCESS_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace custos::testing {

struct Child {
  pid_t pid = -1;
  int pipe_fd = -1;  // Read end: what the child writes to its fd.
};

// Starts `/proc/self/exe --gtest_filter=<test_name>` with
// `env_name=<value>:<fd>` in its environment, where <fd> is the write end of
// a pipe the parent reads from Child::pipe_fd. Everything is built before
// fork(); between fork and exec the child calls only async-signal-safe
// functions. Its stdout goes to /dev/null.
inline Child StartChild(const std::string& test_name,
                        const std::string& env_name, const std::string& value) {
  Child child;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return child;
  }
  std::vector<std::string> env_strings;
  const std::string prefix = env_name + "=";
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).substr(0, prefix.size()) != prefix) {
      env_strings.emplace_back(*e);
    }
  }
  env_strings.push_back(prefix + value + ":" + std::to_string(fds[1]));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::string filter = "--gtest_filter=" + test_name;
  std::string disabled = "--gtest_also_run_disabled_tests";
  std::array<char*, 4> argv{exe.data(), filter.data(), disabled.data(),
                            nullptr};
  const int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  const pid_t pid = fork();
  if (pid == 0) {
    if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
    fcntl(fds[1], F_SETFD, 0);  // The write end survives exec.
    execve(exe.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  if (devnull >= 0) close(devnull);
  close(fds[1]);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    close(fds[0]);
    return child;
  }
  child.pid = pid;
  child.pipe_fd = fds[0];
  return child;
}

// In the child: the value the parent gave (without the fd) and the fd to
// write to; nullopt when not started by StartChild.
struct ChildArgs {
  std::string value;
  int fd = -1;
};
inline std::optional<ChildArgs> ReadChildArgs(const char* env_name) {
  const char* text = std::getenv(env_name);
  if (text == nullptr) return std::nullopt;
  const std::string_view all(text);
  const size_t colon = all.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  ChildArgs args;
  args.value = std::string(all.substr(0, colon));
  char* end = nullptr;
  const std::string fd(all.substr(colon + 1));
  args.fd = static_cast<int>(std::strtol(fd.c_str(), &end, 10));
  if (end == fd.c_str() || *end != '\0') return std::nullopt;
  return args;
}

// Waits up to `timeout_ms` for one byte from the child; nullopt on timeout
// or end of file.
inline std::optional<char> ReadFromChild(const Child& child, int timeout_ms) {
  pollfd p{child.pipe_fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
  char c = 0;
  if (read(child.pipe_fd, &c, 1) != 1) return std::nullopt;
  return c;
}

// SIGKILLs the child (if still running) and reaps it. Returns its wait
// status.
inline int KillChild(Child& child) {
  int status = 0;
  if (child.pid > 0) {
    kill(child.pid, SIGKILL);
    waitpid(child.pid, &status, 0);
    child.pid = -1;
  }
  if (child.pipe_fd >= 0) {
    close(child.pipe_fd);
    child.pipe_fd = -1;
  }
  return status;
}

inline std::string Hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

inline std::optional<std::vector<uint8_t>> Unhex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::vector<uint8_t> out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = digit(hex[i]), lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<uint8_t>(hi * 16 + lo));
  }
  return out;
}

}  // namespace custos::testing

#endif  // CUSTOS_TESTS_CHILD_PROCESS_H_
