// Random bytes for nonces and salts, without a system call each.
//
// libsodium's randombytes_buf asks the kernel (getrandom) on every call: a
// disclosing read, which seals one history part, paid for two of them
// (about 8% of its time). Nonces and salts need unpredictable, never
// repeated bytes, not a fresh trip to the kernel: each thread keeps a
// ChaCha20 key drawn from libsodium's CSPRNG and draws its output in blocks,
// replacing the key from each block before using the rest ("fast key
// erasure", so a key read from memory later does not reveal bytes already
// handed out). Keys themselves still come from RandomBytes/SecretKey.
//
// Fork: a child process must not repeat its parent's bytes (two nonces
// equal under one key would break XChaCha20-Poly1305), so every fork makes
// each thread of the child draw a new key before its next use.
//
// Thread safety: thread-safe; each thread has its own generator, kept in
// guarded memory (sodium_malloc) and freed when the thread ends.

#ifndef CUSTOS_CRYPTO_NONCE_RANDOM_H_
#define CUSTOS_CRYPTO_NONCE_RANDOM_H_

#include <cstdint>
#include <span>

namespace custos::crypto {

// Fills `out` with random bytes fit for nonces and salts (see above).
void NonceRandomBytes(std::span<uint8_t> out);

}  // namespace custos::crypto

#endif  // CUSTOS_CRYPTO_NONCE_RANDOM_H_
