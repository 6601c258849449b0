// An unkeyed BLAKE2b-256 checksum over a stream of bytes (libsodium's
// crypto_generichash without a key), for file checksums: it detects
// corruption, not tampering by someone who can rewrite the checksum too.
//
// Thread safety: a Hasher is a value; not synchronised.

#ifndef CUSTOS_CRYPTO_HASH_H_
#define CUSTOS_CRYPTO_HASH_H_

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "crypto/keyed_hash.h"

namespace custos::crypto {

class Hasher {
 public:
  Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void Update(std::span<const uint8_t> data);
  void Update(std::string_view data);
  // The digest of everything given. REQUIRES: called once.
  Digest Final();

 private:
  // crypto_generichash_state, 384 bytes, 64-aligned.
  alignas(64) std::array<uint8_t, 384> state_;
};

}  // namespace custos::crypto

#endif  // CUSTOS_CRYPTO_HASH_H_
