#include "crypto/aead.h"

#include <sodium.h>

#include <array>
#include <cstdlib>
#include <cstring>

#include "crypto/internal.h"
#include "crypto/nonce_random.h"

namespace custos::crypto {
namespace {

static_assert(kNonceSize == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
static_assert(kTagSize == crypto_aead_xchacha20poly1305_ietf_ABYTES);
static_assert(SecretKey::kSize == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);

constexpr size_t kVersionOffset = 0;
constexpr size_t kNonceOffset = 1;
constexpr size_t kCiphertextOffset = kNonceOffset + kNonceSize;

// The associated data handed to the cipher: version || caller's ad. The
// cipher takes a single ad buffer, so the two are concatenated; short ads
// (record ids, subject ids) stay on the stack.
class VersionedAd {
 public:
  explicit VersionedAd(std::span<const uint8_t> ad) {
    size_ = 1 + ad.size();
    if (size_ <= inline_.size()) {
      data_ = inline_.data();
    } else {
      heap_.resize(size_);
      data_ = heap_.data();
    }
    data_[0] = kSealedFormatV1;
    if (!ad.empty()) std::memcpy(data_ + 1, ad.data(), ad.size());
  }
  VersionedAd(const VersionedAd&) = delete;
  VersionedAd& operator=(const VersionedAd&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::array<uint8_t, 256> inline_;
  std::vector<uint8_t> heap_;
  uint8_t* data_;
  size_t size_;
};

// Encrypts into `out`, which has room for plaintext.size() + kTagSize bytes.
void EncryptInto(uint8_t* out, const uint8_t* key, const uint8_t* nonce,
                 std::span<const uint8_t> plaintext, const uint8_t* ad,
                 size_t ad_size) {
  if (plaintext.size() > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX) {
    std::abort();  // Far beyond any record limit; not reachable in practice.
  }
  unsigned long long out_size = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out, &out_size, plaintext.data(),
                                             plaintext.size(), ad, ad_size,
                                             /*nsec=*/nullptr, nonce, key);
}

Status DecryptionFailed() { return Status::DataLoss("decryption failed"); }

}  // namespace

std::vector<uint8_t> Seal(const SecretKey& key,
                          std::span<const uint8_t> plaintext,
                          std::span<const uint8_t> ad) {
  internal::EnsureSodiumInitialized();
  std::vector<uint8_t> sealed(kSealOverhead + plaintext.size());
  sealed[kVersionOffset] = kSealedFormatV1;
  // 192-bit random nonces: collisions are negligible however many values one
  // key seals, so no counter state is needed.
  NonceRandomBytes(
      std::span<uint8_t>(sealed.data() + kNonceOffset, kNonceSize));
  VersionedAd full_ad(ad);
  EncryptInto(sealed.data() + kCiphertextOffset, key.bytes().data(),
              sealed.data() + kNonceOffset, plaintext, full_ad.data(),
              full_ad.size());
  return sealed;
}

std::vector<uint8_t> Seal(const SecretKey& key, std::string_view plaintext,
                          std::span<const uint8_t> ad) {
  return Seal(
      key,
      std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(plaintext.data()), plaintext.size()),
      ad);
}

Result<std::vector<uint8_t>> Open(const SecretKey& key,
                                  std::span<const uint8_t> sealed,
                                  std::span<const uint8_t> ad) {
  if (sealed.size() < kSealOverhead ||
      sealed[kVersionOffset] != kSealedFormatV1) {
    return Fail(DecryptionFailed());
  }
  internal::EnsureSodiumInitialized();
  VersionedAd full_ad(ad);
  std::vector<uint8_t> plaintext(sealed.size() - kSealOverhead);
  unsigned long long plaintext_size = 0;
  // Pass nullptr rather than an empty vector's data(): libsodium only
  // requires the output pointer when there is output.
  uint8_t* out = plaintext.empty() ? nullptr : plaintext.data();
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          out, &plaintext_size, /*nsec=*/nullptr,
          sealed.data() + kCiphertextOffset, sealed.size() - kCiphertextOffset,
          full_ad.data(), full_ad.size(), sealed.data() + kNonceOffset,
          key.bytes().data()) != 0) {
    Wipe(plaintext);
    return Fail(DecryptionFailed());
  }
  return plaintext;
}

namespace internal {

std::vector<uint8_t> XChaCha20Poly1305Encrypt(
    std::span<const uint8_t, SecretKey::kSize> key,
    std::span<const uint8_t, kNonceSize> nonce,
    std::span<const uint8_t> plaintext, std::span<const uint8_t> ad) {
  EnsureSodiumInitialized();
  std::vector<uint8_t> out(plaintext.size() + kTagSize);
  EncryptInto(out.data(), key.data(), nonce.data(), plaintext, ad.data(),
              ad.size());
  return out;
}

}  // namespace internal
}  // namespace custos::crypto
