#include "crypto/nonce_random.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace custos::crypto {
namespace {

using Nonce = std::array<uint8_t, 24>;

Nonce Draw() {
  Nonce n;
  NonceRandomBytes(n);
  return n;
}

TEST(NonceRandomTest, DrawsNeverRepeatAcrossBlocksAndThreads) {
  // 2,000 draws of 24 bytes span about 100 of a thread's blocks.
  std::vector<Nonce> all;
  std::vector<std::vector<Nonce>> per_thread(4);
  std::vector<std::thread> threads;
  for (auto& out : per_thread) {
    threads.emplace_back([&out] {
      for (int i = 0; i < 2000; ++i) out.push_back(Draw());
    });
  }
  for (auto& t : threads) t.join();
  std::set<Nonce> distinct;
  for (const auto& out : per_thread) distinct.insert(out.begin(), out.end());
  EXPECT_EQ(distinct.size(), 4u * 2000u);
  EXPECT_EQ(distinct.count(Nonce{}), 0u);
}

TEST(NonceRandomTest, ALargeRequestSpanningBlocksIsFilledWhole) {
  std::vector<uint8_t> big(5000, 0);
  NonceRandomBytes(big);
  // No run of 32 zero bytes: every part of the buffer was written.
  size_t zeros = 0, longest = 0;
  for (uint8_t b : big) {
    zeros = b == 0 ? zeros + 1 : 0;
    longest = std::max(longest, zeros);
  }
  EXPECT_LT(longest, 32u);
}

// A forked child must not hand out its parent's next bytes: equal nonces
// under one key would break the AEAD. Both draw once after the fork; the
// child sends its draw to the parent.
TEST(NonceRandomTest, AForkedChildDoesNotRepeatItsParent) {
  Draw();  // The generator of this thread exists before the fork.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    const Nonce n = Draw();
    const bool ok =
        write(fds[1], n.data(), n.size()) == static_cast<ssize_t>(n.size());
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  const Nonce parent = Draw();
  Nonce child{};
  ASSERT_EQ(read(fds[0], child.data(), child.size()),
            static_cast<ssize_t>(child.size()));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(parent, child);
}

}  // namespace
}  // namespace custos::crypto
