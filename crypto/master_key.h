// The master key and the subkeys derived from it.
//
// Key file format (version 1), exactly 86 bytes:
//   "custos-master-key-v1\n" (21 bytes) + 64 lowercase or uppercase hex
//   digits + "\n".
// A key file is accepted only if it is a regular file (not a symlink, not a
// directory) whose mode grants nothing to group or others (0600 or 0400).
// The environment-variable form holds the same 64 hex digits alone.
//
// Subkeys are derived with crypto_kdf_derive_from_key under the 8-byte
// context "custosk1"; each Subkey value below is a subkey id and is never
// reused for another purpose (see docs/crypto.md).

#ifndef CUSTOS_CRYPTO_MASTER_KEY_H_
#define CUSTOS_CRYPTO_MASTER_KEY_H_

#include <cstdint>
#include <string>

#include "base/status.h"
#include "crypto/secret_key.h"

namespace custos::crypto {

inline constexpr char kMasterKeyEnvVar[] = "CUSTOS_MASTER_KEY";
inline constexpr char kKdfContext[] = "custosk1";  // 8 bytes, no NUL used.

enum class Subkey : uint64_t {
  // Ids 1 to 5 derived the key-encryption, blind-index, audit, credential
  // and ledger keys in keystore format 1. Those keys are random now, kept
  // in the keyring (storage/keyring.h); the ids are retired, never reused.
  kKeyring = 6,  // Wraps each key of the keyring.
};

// Reads a master key file. Errors:
//   NotFound           the file does not exist;
//   FailedPrecondition not a regular file, or readable/writable by group or
//                      others (the message names the mode, never contents);
//   InvalidArgument    wrong header, length or hex digits;
//   Internal           an I/O error.
Result<SecretKey> LoadMasterKeyFile(const std::string& path);

// Parses the 64 hex digits in environment variable `var`. NotFound if unset,
// InvalidArgument if malformed.
Result<SecretKey> LoadMasterKeyFromEnv(const char* var = kMasterKeyEnvVar);

// Creates `path` (mode 0600, O_EXCL: never overwrites) holding a fresh
// random master key, fsyncs it, and returns the key. AlreadyExists if the
// file exists; Internal on I/O errors.
Result<SecretKey> GenerateMasterKeyFile(const std::string& path);

// Derives subkey `id` of `master` (crypto_kdf_derive_from_key).
SecretKey DeriveSubkey(const SecretKey& master, Subkey id);

}  // namespace custos::crypto

#endif  // CUSTOS_CRYPTO_MASTER_KEY_H_
