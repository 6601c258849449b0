#include "crypto/secret_key.h"

#include <sodium.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <new>
#include <utility>

#include "crypto/internal.h"

namespace custos::crypto {
namespace {

// A writable guarded region of SecretKey::kSize bytes. Running out of
// guarded memory is treated like any other failed allocation.
uint8_t* AllocateGuarded() {
  internal::EnsureSodiumInitialized();
  void* p = sodium_malloc(SecretKey::kSize);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<uint8_t*>(p);
}

// Once filled, the key is never written again; read-only pages turn a stray
// write into a crash instead of a silently changed key.
uint8_t* MakeReadOnly(uint8_t* p) {
  if (sodium_mprotect_readonly(p) != 0) {
    sodium_free(p);
    std::abort();
  }
  return p;
}

}  // namespace

SecretKey SecretKey::Generate() {
  uint8_t* p = AllocateGuarded();
  randombytes_buf(p, kSize);
  return SecretKey(MakeReadOnly(p), nullptr);
}

Result<SecretKey> SecretKey::FromBytes(std::span<const uint8_t> bytes) {
  if (bytes.size() != kSize) {
    return Fail(Status::InvalidArgument("a key must be 32 bytes"));
  }
  uint8_t* p = AllocateGuarded();
  std::copy(bytes.begin(), bytes.end(), p);
  return SecretKey(MakeReadOnly(p), nullptr);
}

SecretKey SecretKey::Generate(KeyPool& pool) {
  uint8_t* p = pool.Acquire();
  randombytes_buf(p, kSize);
  return SecretKey(p, &pool);
}

Result<SecretKey> SecretKey::FromBytes(std::span<const uint8_t> bytes,
                                       KeyPool& pool) {
  if (bytes.size() != kSize) {
    return Fail(Status::InvalidArgument("a key must be 32 bytes"));
  }
  uint8_t* p = pool.Acquire();
  std::copy(bytes.begin(), bytes.end(), p);
  return SecretKey(p, &pool);
}

SecretKey::SecretKey(SecretKey&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      pool_(std::exchange(other.pool_, nullptr)) {}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    pool_ = std::exchange(other.pool_, nullptr);
  }
  return *this;
}

SecretKey::~SecretKey() { Release(); }

void SecretKey::Release() {
  if (data_ == nullptr) return;
  if (pool_ != nullptr) {
    pool_->Release(data_);
  } else {
    // sodium_free() makes the region writable again, zeroes it and unmaps
    // it.
    sodium_free(data_);
  }
  data_ = nullptr;
  pool_ = nullptr;
}

KeyPool::KeyPool(size_t slots_per_slab)
    : slots_per_slab_(std::max<size_t>(slots_per_slab, 1)) {}

KeyPool::~KeyPool() {
  if (in_use_ != 0) std::abort();  // A live key would point into a freed slab.
  for (uint8_t* slab : slabs_) sodium_free(slab);  // Zeroes and unmaps.
}

uint8_t* KeyPool::Acquire() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty()) {
    internal::EnsureSodiumInitialized();
    void* p = sodium_malloc(slots_per_slab_ * SecretKey::kSize);
    if (p == nullptr) throw std::bad_alloc();
    auto* slab = static_cast<uint8_t*>(p);
    sodium_memzero(slab, slots_per_slab_ * SecretKey::kSize);
    slabs_.push_back(slab);
    for (size_t i = slots_per_slab_; i > 0; --i) {
      free_.push_back(slab + (i - 1) * SecretKey::kSize);
    }
  }
  uint8_t* slot = free_.back();
  free_.pop_back();
  ++in_use_;
  return slot;
}

void KeyPool::Release(uint8_t* slot) {
  sodium_memzero(slot, SecretKey::kSize);
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(slot);
  --in_use_;
}

size_t KeyPool::keys_in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

size_t KeyPool::slabs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slabs_.size();
}

std::span<const uint8_t, SecretKey::kSize> SecretKey::bytes() const {
  assert(data_ != nullptr);
  return std::span<const uint8_t, kSize>(data_, kSize);
}

bool SecretKey::Equals(const SecretKey& other) const {
  if (data_ == nullptr || other.data_ == nullptr) return false;
  return sodium_memcmp(data_, other.data_, kSize) == 0;
}

void RandomBytes(std::span<uint8_t> out) {
  if (out.empty()) return;
  internal::EnsureSodiumInitialized();
  randombytes_buf(out.data(), out.size());
}

bool ConstantTimeEquals(std::span<const uint8_t> a,
                        std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

void Wipe(std::span<uint8_t> buffer) {
  if (buffer.empty()) return;
  sodium_memzero(buffer.data(), buffer.size());
}

}  // namespace custos::crypto
