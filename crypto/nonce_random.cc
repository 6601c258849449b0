#include "crypto/nonce_random.h"

#include <pthread.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "crypto/internal.h"

namespace custos::crypto {
namespace {

// Moves in the child at every fork().
std::atomic<uint64_t> fork_generation{0};

void ForkedChild() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

struct State {
  uint8_t key[crypto_stream_chacha20_KEYBYTES];
  uint8_t block[512];
  size_t left;  // Unused bytes at the end of `block`.
};
static_assert(sizeof(State::block) > sizeof(State::key));

// One per thread; `state` lives in guarded memory.
class ThreadGenerator {
 public:
  ThreadGenerator() = default;
  ThreadGenerator(const ThreadGenerator&) = delete;
  ThreadGenerator& operator=(const ThreadGenerator&) = delete;
  ~ThreadGenerator() {
    if (state_ != nullptr) sodium_free(state_);  // Wipes it first.
  }

  void Fill(std::span<uint8_t> out) {
    const uint64_t generation = fork_generation.load(std::memory_order_relaxed);
    if (state_ == nullptr) {
      state_ = static_cast<State*>(sodium_malloc(sizeof(State)));
      if (state_ == nullptr) std::abort();  // As sodium_malloc users do.
      seeded_generation_ = generation + 1;  // Not seeded yet.
    }
    if (seeded_generation_ != generation) {
      randombytes_buf(state_->key, sizeof(state_->key));
      state_->left = 0;
      sodium_memzero(state_->block, sizeof(state_->block));
      seeded_generation_ = generation;
    }
    while (!out.empty()) {
      if (state_->left == 0) Refill();
      const size_t n = std::min(out.size(), state_->left);
      uint8_t* from = state_->block + sizeof(state_->block) - state_->left;
      std::memcpy(out.data(), from, n);
      sodium_memzero(from, n);
      state_->left -= n;
      out = out.subspan(n);
    }
  }

 private:
  void Refill() {
    // Each key makes one block only, so a fixed nonce never repeats.
    static constexpr uint8_t kNonce[crypto_stream_chacha20_NONCEBYTES] = {};
    crypto_stream_chacha20(state_->block, sizeof(state_->block), kNonce,
                           state_->key);
    // The block's first bytes become the next key and are never output.
    std::memcpy(state_->key, state_->block, sizeof(state_->key));
    sodium_memzero(state_->block, sizeof(state_->key));
    state_->left = sizeof(state_->block) - sizeof(state_->key);
  }

  State* state_ = nullptr;
  uint64_t seeded_generation_ = 0;
};

}  // namespace

void NonceRandomBytes(std::span<uint8_t> out) {
  if (out.empty()) return;
  internal::EnsureSodiumInitialized();
  static std::once_flag at_fork;
  std::call_once(at_fork, [] {
    if (pthread_atfork(nullptr, nullptr, &ForkedChild) != 0) std::abort();
  });
  thread_local ThreadGenerator generator;
  generator.Fill(out);
}

}  // namespace custos::crypto
