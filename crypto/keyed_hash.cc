#include "crypto/keyed_hash.h"

#include <sodium.h>

#include <cstring>

#include "crypto/internal.h"

namespace custos::crypto {
namespace {

static_assert(kDigestSize >= crypto_generichash_BYTES_MIN &&
              kDigestSize <= crypto_generichash_BYTES_MAX);
static_assert(SecretKey::kSize >= crypto_generichash_KEYBYTES_MIN &&
              SecretKey::kSize <= crypto_generichash_KEYBYTES_MAX);

// The NUL ends the domain tag, so no identifier can be mistaken for a
// different tag plus identifier.
constexpr uint8_t kBlindIndexTag[] = {'c', 'u', 's', 't', 'o', 's', '-',
                                      'b', 'i', '-', 'v', '1', '\0'};
static_assert(sizeof(kBlindIndexTag) == 13);

constexpr size_t kTokenBytes = 32;
constexpr size_t kTokenPrefixSize = sizeof(kTokenPrefix) - 1;
constexpr size_t kTokenSize = kTokenPrefixSize + 2 * kTokenBytes;

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

bool IsLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

}  // namespace

static_assert(sizeof(crypto_generichash_state) <= KeyedHasher::kStateSize &&
              alignof(crypto_generichash_state) <= KeyedHasher::kStateAlign);

KeyedHasher::KeyedHasher(const SecretKey& key) {
  internal::EnsureSodiumInitialized();
  crypto_generichash_init(state(), key.bytes().data(), key.bytes().size(),
                          kDigestSize);
}

// The state is derived from the key; do not leave it on the stack.
KeyedHasher::~KeyedHasher() { sodium_memzero(state_, sizeof(state_)); }

::crypto_generichash_blake2b_state* KeyedHasher::state() {
  return reinterpret_cast<crypto_generichash_state*>(state_);
}

KeyedHasher& KeyedHasher::Update(std::span<const uint8_t> data) {
  if (!data.empty()) {
    crypto_generichash_update(state(), data.data(), data.size());
  }
  return *this;
}

KeyedHasher& KeyedHasher::Update(std::string_view data) {
  return Update(AsBytes(data));
}

KeyedHasher& KeyedHasher::UpdateBigEndian32(uint32_t value) {
  uint8_t bytes[4];
  for (int i = 0; i < 4; ++i) {
    bytes[i] = static_cast<uint8_t>(value >> (8 * (3 - i)));
  }
  return Update(bytes);
}

KeyedHasher& KeyedHasher::UpdateBigEndian64(uint64_t value) {
  uint8_t bytes[8];
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<uint8_t>(value >> (8 * (7 - i)));
  }
  return Update(bytes);
}

Digest KeyedHasher::Final() {
  Digest out;
  FinalInto(out);
  return out;
}

void KeyedHasher::FinalInto(std::span<uint8_t, kDigestSize> out) {
  crypto_generichash_final(state(), out.data(), out.size());
}

Digest NamedMac(const SecretKey& key, std::string_view tag,
                std::string_view name, std::string_view body) {
  return KeyedHasher(key)
      .Update(tag)
      .UpdateBigEndian32(static_cast<uint32_t>(name.size()))
      .Update(name)
      .Update(body)
      .Final();
}

Digest KeyedHash(const SecretKey& key, std::span<const uint8_t> data) {
  KeyedHasher hasher(key);
  hasher.Update(data);
  return hasher.Final();
}

SecretKey CombineKeys(const SecretKey& outer, const SecretKey& inner,
                      std::string_view context, uint64_t id, KeyPool& pool) {
  static constexpr std::string_view kTag{"custos-combine-v1\0", 18};
  KeyedHasher hasher(outer);
  hasher.Update(AsBytes(kTag));
  hasher.Update(AsBytes(context));
  const uint8_t nul = 0;
  hasher.Update({&nul, 1});
  uint8_t id_bytes[8];
  for (int i = 0; i < 8; ++i) {
    id_bytes[i] = static_cast<uint8_t>(id >> (8 * (7 - i)));
  }
  hasher.Update(id_bytes);
  hasher.Update(inner.bytes());
  internal::WipedArray<uint8_t, kDigestSize> out;
  hasher.FinalInto(std::span<uint8_t, kDigestSize>(out.data(), out.size()));
  static_assert(kDigestSize == SecretKey::kSize);
  return std::move(*SecretKey::FromBytes(
      std::span<const uint8_t>(out.data(), out.size()), pool));
}

Digest BlindIndex(const SecretKey& blind_index_key,
                  std::string_view identifier) {
  KeyedHasher hasher(blind_index_key);
  hasher.Update(kBlindIndexTag);
  hasher.Update(AsBytes(identifier));
  return hasher.Final();
}

Digest ChainLink(const SecretKey& key, const Digest& previous,
                 std::span<const uint8_t> entry) {
  KeyedHasher hasher(key);
  hasher.Update(previous);
  hasher.Update(entry);
  return hasher.Final();
}

ChainVerifier::ChainVerifier(const SecretKey& key, const Digest& start_link,
                             uint64_t first_position)
    : key_(key),
      link_(start_link),
      first_position_(first_position),
      next_position_(first_position) {}

bool ChainVerifier::Add(std::span<const uint8_t> entry,
                        const Digest& stored_link) {
  if (first_broken_.has_value()) return false;
  Digest computed = ChainLink(key_, link_, entry);
  if (!ConstantTimeEquals(computed, stored_link)) {
    first_broken_ = next_position_;
    return false;
  }
  link_ = computed;
  ++next_position_;
  return true;
}

std::string GenerateToken() {
  internal::WipedArray<uint8_t, kTokenBytes> bytes;
  RandomBytes(std::span<uint8_t>(bytes.data(), bytes.size()));
  // Built in place, so no temporary copy of the token is left unwiped; the
  // extra byte takes sodium_bin2hex's terminating NUL.
  std::string token(kTokenSize + 1, '\0');
  std::memcpy(token.data(), kTokenPrefix, kTokenPrefixSize);
  sodium_bin2hex(token.data() + kTokenPrefixSize, 2 * kTokenBytes + 1,
                 bytes.data(), bytes.size());
  token.pop_back();
  return token;
}

Result<Digest> HashToken(const SecretKey& credential_key,
                         std::string_view token) {
  // Only the exact documented form is accepted: one token has one spelling,
  // so it has one hash.
  if (token.size() != kTokenSize ||
      token.substr(0, kTokenPrefixSize) != kTokenPrefix) {
    return Fail(Status::InvalidArgument("malformed token"));
  }
  std::string_view hex = token.substr(kTokenPrefixSize);
  for (char c : hex) {
    if (!IsLowerHex(c)) return Fail(Status::InvalidArgument("malformed token"));
  }
  internal::WipedArray<uint8_t, kTokenBytes> bytes;
  size_t length = 0;
  if (sodium_hex2bin(bytes.data(), bytes.size(), hex.data(), hex.size(),
                     nullptr, &length, nullptr) != 0 ||
      length != kTokenBytes) {
    return Fail(Status::InvalidArgument("malformed token"));
  }
  return KeyedHash(credential_key,
                   std::span<const uint8_t>(bytes.data(), bytes.size()));
}

bool VerifyToken(const SecretKey& credential_key, std::string_view token,
                 const Digest& stored) {
  Result<Digest> digest = HashToken(credential_key, token);
  if (!digest.has_value()) return false;
  return ConstantTimeEquals(*digest, stored);
}

std::string ToHex(std::span<const uint8_t> bytes) {
  std::string hex(2 * bytes.size() + 1, '\0');
  if (!bytes.empty()) {
    sodium_bin2hex(hex.data(), hex.size(), bytes.data(), bytes.size());
  }
  hex.pop_back();  // sodium_bin2hex's terminating NUL.
  return hex;
}

std::optional<std::string> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string bytes(hex.size() / 2, '\0');
  if (hex.empty()) return bytes;
  size_t length = 0;
  if (sodium_hex2bin(reinterpret_cast<unsigned char*>(bytes.data()),
                     bytes.size(), hex.data(), hex.size(), nullptr, &length,
                     nullptr) != 0 ||
      length != bytes.size()) {
    return std::nullopt;
  }
  return bytes;
}

}  // namespace custos::crypto
