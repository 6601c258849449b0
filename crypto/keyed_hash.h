// Keyed BLAKE2b (crypto_generichash with a key) for blind indexes, the
// erasure ledger, credentials and the access-history chain.
//
// Thread safety: all functions are reentrant.

#ifndef CUSTOS_CRYPTO_KEYED_HASH_H_
#define CUSTOS_CRYPTO_KEYED_HASH_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"
#include "crypto/secret_key.h"

// libsodium's BLAKE2b state (sodium/crypto_generichash_blake2b.h).
struct crypto_generichash_blake2b_state;

namespace custos::crypto {

inline constexpr size_t kDigestSize = 32;
using Digest = std::array<uint8_t, kDigestSize>;

// BLAKE2b-256 of `data` keyed with `key`.
Digest KeyedHash(const SecretKey& key, std::span<const uint8_t> data);

// A MAC of `body` bound to the `name` it is stored under, in the domain
// `tag`: KeyedHash of tag || u32 BE length of name || name || body (the
// length makes the split between name and body unambiguous). A value
// moved under another name, or to another domain, does not verify.
Digest NamedMac(const SecretKey& key, std::string_view tag,
                std::string_view name, std::string_view body);

// KeyedHash under `key` of the concatenation of the pieces fed to Update,
// without building it (no copy of the input is made). The BLAKE2b state,
// derived from the key, is wiped when the hasher is destroyed.
class KeyedHasher {
 public:
  explicit KeyedHasher(const SecretKey& key);
  ~KeyedHasher();
  KeyedHasher(const KeyedHasher&) = delete;
  KeyedHasher& operator=(const KeyedHasher&) = delete;

  KeyedHasher& Update(std::span<const uint8_t> data);
  KeyedHasher& Update(std::string_view data);
  // The 4 or 8 bytes of `value`, big-endian.
  KeyedHasher& UpdateBigEndian32(uint32_t value);
  KeyedHasher& UpdateBigEndian64(uint64_t value);
  // Call once: the hasher is spent afterwards.
  Digest Final();
  void FinalInto(std::span<uint8_t, kDigestSize> out);

  // libsodium's crypto_generichash_state, held here without its header.
  static constexpr size_t kStateSize = 384;
  static constexpr size_t kStateAlign = 64;

 private:
  ::crypto_generichash_blake2b_state* state();
  alignas(kStateAlign) unsigned char state_[kStateSize];
};

// Blind index of an external subject identifier: KeyedHash under the
// blind-index key of "custos-bi-v1\0" || identifier. Equal identifiers give
// equal indexes under one key; the index reveals nothing without the key.
Digest BlindIndex(const SecretKey& blind_index_key,
                  std::string_view identifier);

// A key that depends on two keys, so that destroying either destroys it:
// KeyedHash under `outer` of "custos-combine-v1\0" || context || "\0" ||
// u64 big-endian id || the bytes of `inner`, computed in a wiped buffer and
// returned in a slot of `pool`. Used for the part keys of deadline buckets
// (docs/crypto.md, "Deadline keys"). REQUIRES: `context` holds no NUL;
// `pool` outlives the key.
SecretKey CombineKeys(const SecretKey& outer, const SecretKey& inner,
                      std::string_view context, uint64_t id, KeyPool& pool);

// ---- Hash chain -----------------------------------------------------------
//
// link[0] = KeyedHash(key, kChainGenesis || entry[0])
// link[i] = KeyedHash(key, link[i-1] || entry[i])
// Entries are the stored bytes; callers put the sequence number inside the
// entry so a deleted or reordered entry breaks the chain at that position.

inline constexpr Digest kChainGenesis{};  // 32 zero bytes.

Digest ChainLink(const SecretKey& key, const Digest& previous,
                 std::span<const uint8_t> entry);

// Walks a chain entry by entry, without holding it in memory.
class ChainVerifier {
 public:
  // Starts after `start_link` (kChainGenesis, or a checkpoint's link) at
  // position `first_position`. `key` must outlive the verifier.
  ChainVerifier(const SecretKey& key, const Digest& start_link,
                uint64_t first_position);

  // Feeds the next entry and the link stored with it. Returns false (and
  // remembers the position) at the first entry whose stored link differs
  // from the recomputed one; later calls then return false without work.
  bool Add(std::span<const uint8_t> entry, const Digest& stored_link);

  // Position of the first broken link, if any.
  std::optional<uint64_t> first_broken() const { return first_broken_; }
  // Number of entries accepted so far.
  uint64_t verified() const { return next_position_ - first_position_; }
  const Digest& last_link() const { return link_; }

 private:
  const SecretKey& key_;
  Digest link_;
  uint64_t first_position_;
  uint64_t next_position_;
  std::optional<uint64_t> first_broken_;
};

// ---- Credentials ----------------------------------------------------------
//
// A principal's credential is a random 256-bit token, shown to the caller as
// "cst1_" + 64 lowercase hex digits. Only KeyedHash(credential_key, token
// bytes) is stored.

inline constexpr char kTokenPrefix[] = "cst1_";

// A fresh token in its textual form.
std::string GenerateToken();

// The stored hash of a textual token. InvalidArgument if the token is not of
// the documented form.
Result<Digest> HashToken(const SecretKey& credential_key,
                         std::string_view token);

// True iff `token` hashes to `stored`; the comparison is constant time.
// A malformed token is simply false.
bool VerifyToken(const SecretKey& credential_key, std::string_view token,
                 const Digest& stored);

// Lowercase hex of bytes, and back (nullopt on odd length or non-hex).
std::string ToHex(std::span<const uint8_t> bytes);
std::optional<std::string> FromHex(std::string_view hex);

}  // namespace custos::crypto

#endif  // CUSTOS_CRYPTO_KEYED_HASH_H_
