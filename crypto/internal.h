// Helpers private to crypto/; nothing outside crypto/ includes this file.

#ifndef CUSTOS_CRYPTO_INTERNAL_H_
#define CUSTOS_CRYPTO_INTERNAL_H_

#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdlib>

namespace custos::crypto::internal {

// Every entry point that allocates guarded memory, draws random bytes or runs
// a primitive calls this first. sodium_init() picks the fastest
// implementation of each primitive and sets up sodium_malloc(); the
// function-local static makes the first call race-free and later calls free.
inline void EnsureSodiumInitialized() {
  static const bool initialized = sodium_init() >= 0;
  // Without a working CSPRNG nothing here can be done safely, and no caller
  // could handle it: this is not an expected failure.
  if (!initialized) std::abort();
}

// A stack buffer for transient secrets (hex digits of a key, a decoded
// token) that is wiped when it goes out of scope, whichever path leaves it.
template <typename T, size_t N>
class WipedArray {
 public:
  WipedArray() = default;
  WipedArray(const WipedArray&) = delete;
  WipedArray& operator=(const WipedArray&) = delete;
  ~WipedArray() { sodium_memzero(data_.data(), sizeof(data_)); }

  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  static constexpr size_t size() { return N; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }

 private:
  std::array<T, N> data_{};
};

}  // namespace custos::crypto::internal

#endif  // CUSTOS_CRYPTO_INTERNAL_H_
