// SecretKey: a 256-bit key held in libsodium guarded memory.
//
// The bytes live in a sodium_malloc() region (guard pages around it, locked
// against swapping where the system allows, read-only after construction)
// and are wiped by sodium_free() when the key is destroyed or moved from.
// Keys are move-only: copying one would leave a second copy to wipe.
//
// Thread safety: a const SecretKey may be read from several threads.

#ifndef CUSTOS_CRYPTO_SECRET_KEY_H_
#define CUSTOS_CRYPTO_SECRET_KEY_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/status.h"

namespace custos::crypto {

class SecretKey {
 public:
  static constexpr size_t kSize = 32;

  // A fresh key from libsodium's CSPRNG.
  static SecretKey Generate();

  // Copies `bytes` into guarded memory. InvalidArgument unless
  // bytes.size() == kSize. The caller remains responsible for wiping its
  // own copy.
  static Result<SecretKey> FromBytes(std::span<const uint8_t> bytes);

  SecretKey(SecretKey&& other) noexcept;
  SecretKey& operator=(SecretKey&& other) noexcept;
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;
  ~SecretKey();

  // The key bytes; valid while this object lives and is not moved from.
  // REQUIRES: !empty().
  std::span<const uint8_t, kSize> bytes() const;

  // True for a moved-from key.
  bool empty() const { return data_ == nullptr; }

  // Constant-time comparison (sodium_memcmp). Empty keys equal nothing.
  bool Equals(const SecretKey& other) const;

 private:
  explicit SecretKey(uint8_t* data) : data_(data) {}
  uint8_t* data_ = nullptr;  // sodium_malloc'd, kSize bytes, read-only.
};

// Fills `out` with random bytes from libsodium's CSPRNG.
void RandomBytes(std::span<uint8_t> out);

// Constant-time equality of two byte strings of equal length; false if the
// lengths differ (the length itself is not secret).
bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

// Zeroes `buffer` in a way the compiler may not optimise away.
void Wipe(std::span<uint8_t> buffer);

}  // namespace custos::crypto

#endif  // CUSTOS_CRYPTO_SECRET_KEY_H_
