// Wrapping of subject data keys (DEKs) under the key-encryption key (KEK).
//
// wrapped = Seal(kek, dek, ad) with
//   ad = "custos-dek-v1" || u32 big-endian kek_version || subject_id bytes
// so a wrapped key moved to another subject, or presented under another
// KEK version, fails to unwrap.

#ifndef CUSTOS_CRYPTO_KEY_WRAP_H_
#define CUSTOS_CRYPTO_KEY_WRAP_H_

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "crypto/secret_key.h"

namespace custos::crypto {

std::vector<uint8_t> WrapKey(const SecretKey& kek, uint32_t kek_version,
                             std::string_view subject_id, const SecretKey& dek);

// DataLoss("key unwrap failed") on any mismatch or corruption.
Result<SecretKey> UnwrapKey(const SecretKey& kek, uint32_t kek_version,
                            std::string_view subject_id,
                            std::span<const uint8_t> wrapped);
// The same, the key in a slot of `pool` (crypto/secret_key.h).
Result<SecretKey> UnwrapKey(const SecretKey& kek, uint32_t kek_version,
                            std::string_view subject_id,
                            std::span<const uint8_t> wrapped, KeyPool& pool);

}  // namespace custos::crypto

#endif  // CUSTOS_CRYPTO_KEY_WRAP_H_
