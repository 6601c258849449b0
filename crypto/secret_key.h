// SecretKey: a 256-bit key held in libsodium guarded memory.
//
// A key made by Generate() or FromBytes() lives in a sodium_malloc() region
// of its own (guard pages around it, locked against swapping where the
// system allows, read-only after construction) and is wiped by sodium_free()
// when the key is destroyed. That costs several system calls per key
// (mmap, mprotect, mlock; munlock, munmap), each flushing the TLB of every
// core: fine for the few long-lived keys (master, KEK, subkeys).
//
// The many short-lived data keys come from a KeyPool instead: slabs of
// slots in sodium_malloc() regions (guard pages around each slab, locked),
// a slot wiped with sodium_memzero() the moment its key is destroyed and
// reused for the next key, with no system call once a slab exists. Pooled
// keys are not read-only: a slab holds keys being written. See
// docs/crypto.md and docs/decisions.md.
//
// Keys are move-only: copying one would leave a second copy to wipe.
//
// Thread safety: a const SecretKey may be read from several threads.
// KeyPool is thread-safe.

#ifndef CUSTOS_CRYPTO_SECRET_KEY_H_
#define CUSTOS_CRYPTO_SECRET_KEY_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "base/status.h"

namespace custos::crypto {

class KeyPool;

class SecretKey {
 public:
  static constexpr size_t kSize = 32;

  // A fresh key from libsodium's CSPRNG.
  static SecretKey Generate();

  // Copies `bytes` into guarded memory. InvalidArgument unless
  // bytes.size() == kSize. The caller remains responsible for wiping its
  // own copy.
  static Result<SecretKey> FromBytes(std::span<const uint8_t> bytes);

  // The same, in a slot of `pool` (see above). REQUIRES: `pool` outlives
  // the key.
  static SecretKey Generate(KeyPool& pool);
  static Result<SecretKey> FromBytes(std::span<const uint8_t> bytes,
                                     KeyPool& pool);

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
  SecretKey(uint8_t* data, KeyPool* pool) : data_(data), pool_(pool) {}
  void Release();
  // kSize bytes: sodium_malloc'd and read-only, or a slot of pool_.
  uint8_t* data_ = nullptr;
  KeyPool* pool_ = nullptr;
};

// Slabs of guarded slots for data keys (see above).
class KeyPool {
 public:
  // Slots per slab. Default: 1024 (32 KiB of keys per slab).
  // REQUIRES: >= 1.
  explicit KeyPool(size_t slots_per_slab = 1024);
  // REQUIRES: every key made from the pool was destroyed (aborts if not:
  // a live key would point into freed memory).
  ~KeyPool();
  KeyPool(const KeyPool&) = delete;
  KeyPool& operator=(const KeyPool&) = delete;

  // Slots in use, and slabs allocated (for tests and metrics).
  size_t keys_in_use() const;
  size_t slabs() const;

 private:
  friend class SecretKey;
  uint8_t* Acquire();           // A zeroed slot.
  void Release(uint8_t* slot);  // Wipes it and makes it free.

  const size_t slots_per_slab_;
  mutable std::mutex mu_;
  std::vector<uint8_t*> slabs_;  // sodium_malloc'd.
  std::vector<uint8_t*> free_;   // Zeroed slots.
  size_t in_use_ = 0;
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
