#include "crypto/key_wrap.h"

#include <cstring>
#include <string>

#include "crypto/aead.h"

namespace custos::crypto {
namespace {

constexpr std::string_view kWrapAdPrefix = "custos-dek-v1";

// "custos-dek-v1" || u32 big-endian kek_version || subject_id.
std::vector<uint8_t> WrapAd(uint32_t kek_version, std::string_view subject_id) {
  std::vector<uint8_t> ad(kWrapAdPrefix.size() + 4 + subject_id.size());
  uint8_t* p = ad.data();
  std::memcpy(p, kWrapAdPrefix.data(), kWrapAdPrefix.size());
  p += kWrapAdPrefix.size();
  for (int shift = 24; shift >= 0; shift -= 8) {
    *p++ = static_cast<uint8_t>(kek_version >> shift);
  }
  if (!subject_id.empty()) {
    std::memcpy(p, subject_id.data(), subject_id.size());
  }
  return ad;
}

Status UnwrapFailed() { return Status::DataLoss("key unwrap failed"); }

}  // namespace

std::vector<uint8_t> WrapKey(const SecretKey& kek, uint32_t kek_version,
                             std::string_view subject_id,
                             const SecretKey& dek) {
  return Seal(kek, dek.bytes(), WrapAd(kek_version, subject_id));
}

namespace {

Result<SecretKey> Unwrap(const SecretKey& kek, uint32_t kek_version,
                         std::string_view subject_id,
                         std::span<const uint8_t> wrapped, KeyPool* pool) {
  Result<std::vector<uint8_t>> dek =
      Open(kek, wrapped, WrapAd(kek_version, subject_id));
  if (!dek.has_value()) return Fail(UnwrapFailed());
  // The plaintext sits in ordinary heap memory only until it is copied into
  // guarded memory; wipe it before the vector frees it.
  Result<SecretKey> key = pool != nullptr ? SecretKey::FromBytes(*dek, *pool)
                                          : SecretKey::FromBytes(*dek);
  Wipe(*dek);
  if (!key.has_value()) return Fail(UnwrapFailed());  // Not a 32-byte key.
  return key;
}

}  // namespace

Result<SecretKey> UnwrapKey(const SecretKey& kek, uint32_t kek_version,
                            std::string_view subject_id,
                            std::span<const uint8_t> wrapped) {
  return Unwrap(kek, kek_version, subject_id, wrapped, nullptr);
}

Result<SecretKey> UnwrapKey(const SecretKey& kek, uint32_t kek_version,
                            std::string_view subject_id,
                            std::span<const uint8_t> wrapped, KeyPool& pool) {
  return Unwrap(kek, kek_version, subject_id, wrapped, &pool);
}

}  // namespace custos::crypto
