#include "crypto/hash.h"

#include <sodium.h>

#include "crypto/internal.h"

namespace custos::crypto {
namespace {

static_assert(sizeof(crypto_generichash_state) <= 384);
static_assert(alignof(crypto_generichash_state) <= 64);

crypto_generichash_state* State(std::array<uint8_t, 384>& bytes) {
  return reinterpret_cast<crypto_generichash_state*>(bytes.data());
}

}  // namespace

Hasher::Hasher() {
  internal::EnsureSodiumInitialized();
  crypto_generichash_init(State(state_), nullptr, 0, kDigestSize);
}

void Hasher::Update(std::span<const uint8_t> data) {
  crypto_generichash_update(State(state_), data.data(), data.size());
}

void Hasher::Update(std::string_view data) {
  Update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()),
                                  data.size()));
}

Digest Hasher::Final() {
  Digest out;
  crypto_generichash_final(State(state_), out.data(), out.size());
  return out;
}

}  // namespace custos::crypto
