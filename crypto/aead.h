// Authenticated encryption: XChaCha20-Poly1305-IETF with associated data.
//
// Sealed byte format, version 1:
//   offset 0   1 byte   format version, 0x01
//   offset 1  24 bytes  nonce, fresh from the CSPRNG for every Seal
//   offset 25  n bytes  ciphertext (same length as the plaintext)
//   then      16 bytes  Poly1305 tag
// The version byte is also bound into the associated data actually passed
// to the cipher (version || caller's ad), so it cannot be altered.
//
// Thread safety: all functions are reentrant.

#ifndef CUSTOS_CRYPTO_AEAD_H_
#define CUSTOS_CRYPTO_AEAD_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "crypto/secret_key.h"

namespace custos::crypto {

inline constexpr uint8_t kSealedFormatV1 = 0x01;
inline constexpr size_t kNonceSize = 24;
inline constexpr size_t kTagSize = 16;
inline constexpr size_t kSealOverhead = 1 + kNonceSize + kTagSize;

// Encrypts `plaintext` under `key`, authenticating `ad` too. Never fails.
std::vector<uint8_t> Seal(const SecretKey& key,
                          std::span<const uint8_t> plaintext,
                          std::span<const uint8_t> ad);

// Decrypts a Seal() output. DataLoss("decryption failed") for any failure:
// truncated input, unknown version, wrong key, wrong ad, altered byte. The
// message never says which.
Result<std::vector<uint8_t>> Open(const SecretKey& key,
                                  std::span<const uint8_t> sealed,
                                  std::span<const uint8_t> ad);

// Convenience overloads for string data.
std::vector<uint8_t> Seal(const SecretKey& key, std::string_view plaintext,
                          std::span<const uint8_t> ad);

namespace internal {
// The bare cipher with a caller-chosen nonce and no version byte: the
// primitive Seal() is built on, exposed for known-answer tests only.
// Returns ciphertext || tag.
std::vector<uint8_t> XChaCha20Poly1305Encrypt(
    std::span<const uint8_t, SecretKey::kSize> key,
    std::span<const uint8_t, kNonceSize> nonce,
    std::span<const uint8_t> plaintext, std::span<const uint8_t> ad);
}  // namespace internal

}  // namespace custos::crypto

#endif  // CUSTOS_CRYPTO_AEAD_H_
