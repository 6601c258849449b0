// Micro-benchmarks of the crypto primitives the engine calls per record and
// per request. Results are recorded in bench/RESULTS.md.

#include <benchmark/benchmark.h>
#include <sodium.h>

#include <cstdint>
#include <string>
#include <vector>

#include "crypto/aead.h"
#include "crypto/key_wrap.h"
#include "crypto/keyed_hash.h"
#include "crypto/secret_key.h"

namespace custos::crypto {
namespace {

// A typical associated data: record id, subject id and version.
const std::vector<uint8_t> kAd(40, 0x5a);

void BM_Seal(benchmark::State& state) {
  SecretKey key = SecretKey::Generate();
  const std::vector<uint8_t> plaintext(static_cast<size_t>(state.range(0)),
                                       0x42);
  for (auto _ : state) {
    std::vector<uint8_t> sealed = Seal(key, plaintext, kAd);
    benchmark::DoNotOptimize(sealed.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          state.range(0));
}
BENCHMARK(BM_Seal)->Arg(64)->Arg(128)->Arg(256)->Arg(1024)->Arg(64 * 1024);

void BM_Open(benchmark::State& state) {
  SecretKey key = SecretKey::Generate();
  const std::vector<uint8_t> plaintext(static_cast<size_t>(state.range(0)),
                                       0x42);
  const std::vector<uint8_t> sealed = Seal(key, plaintext, kAd);
  for (auto _ : state) {
    Result<std::vector<uint8_t>> opened = Open(key, sealed, kAd);
    if (!opened.has_value()) {
      state.SkipWithError("open failed");
      break;
    }
    benchmark::DoNotOptimize(opened->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          state.range(0));
}
BENCHMARK(BM_Open)->Arg(64)->Arg(128)->Arg(256)->Arg(1024)->Arg(64 * 1024);

// Includes placing the key in fresh guarded memory (sodium_malloc, mprotect,
// and sodium_free when it is dropped): the cost of a DEK cache miss.
void BM_UnwrapKey(benchmark::State& state) {
  SecretKey kek = SecretKey::Generate();
  SecretKey dek = SecretKey::Generate();
  const std::vector<uint8_t> wrapped = WrapKey(kek, 1, "subject-000042", dek);
  for (auto _ : state) {
    Result<SecretKey> key = UnwrapKey(kek, 1, "subject-000042", wrapped);
    if (!key.has_value()) {
      state.SkipWithError("unwrap failed");
      break;
    }
    benchmark::DoNotOptimize(key->bytes().data());
  }
}
BENCHMARK(BM_UnwrapKey);

// The guarded-memory part of UnwrapKey alone, for comparison.
void BM_SecretKeyFromBytes(benchmark::State& state) {
  const std::vector<uint8_t> bytes(SecretKey::kSize, 0x33);
  for (auto _ : state) {
    Result<SecretKey> key = SecretKey::FromBytes(bytes);
    benchmark::DoNotOptimize(key->bytes().data());
  }
}
BENCHMARK(BM_SecretKeyFromBytes);

void BM_BlindIndex(benchmark::State& state) {
  SecretKey key = SecretKey::Generate();
  const std::string identifier = "national-id:19750612-1234";
  for (auto _ : state) {
    Digest index = BlindIndex(key, identifier);
    benchmark::DoNotOptimize(index);
  }
}
BENCHMARK(BM_BlindIndex);

// One access-history event of a typical size.
void BM_ChainLink(benchmark::State& state) {
  SecretKey key = SecretKey::Generate();
  const std::vector<uint8_t> entry(static_cast<size_t>(state.range(0)), 0x17);
  Digest link = kChainGenesis;
  for (auto _ : state) {
    link = ChainLink(key, link, entry);
    benchmark::DoNotOptimize(link);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          state.range(0));
}
BENCHMARK(BM_ChainLink)->Arg(256);

// The keyed hashes of an access-history event (issues 11/16), by input
// size: 64 B (a chain link), 128 and 256 B (a part commitment, an event
// digest), 640 B (the MAC of an event's stored bytes). BLAKE2b compresses
// the key block and then one block per started 128 bytes of input.
void BM_KeyedHash(benchmark::State& state) {
  SecretKey key = SecretKey::Generate();
  const std::vector<uint8_t> data(static_cast<size_t>(state.range(0)), 0x17);
  for (auto _ : state) {
    Digest d = KeyedHash(key, data);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_KeyedHash)->Arg(64)->Arg(128)->Arg(256)->Arg(640);

// The other keyed PRF libsodium offers with a 256-bit output, for the
// primitive choice: HMAC-SHA-512-256 (crypto_auth) of the same inputs.
// (Poly1305 is a one-time authenticator and SipHash's output is 64 bits:
// neither could stand for the history's MACs and digests.)
void BM_HmacSha512256(benchmark::State& state) {
  if (sodium_init() < 0) {
    state.SkipWithError("sodium_init failed");
    return;
  }
  uint8_t key[crypto_auth_hmacsha512256_KEYBYTES];
  randombytes_buf(key, sizeof(key));
  const std::vector<uint8_t> data(static_cast<size_t>(state.range(0)), 0x17);
  uint8_t mac[crypto_auth_hmacsha512256_BYTES];
  for (auto _ : state) {
    crypto_auth_hmacsha512256(mac, data.data(), data.size(), key);
    benchmark::DoNotOptimize(mac);
  }
  sodium_memzero(key, sizeof(key));
}
BENCHMARK(BM_HmacSha512256)->Arg(64)->Arg(128)->Arg(256)->Arg(640);

void BM_VerifyToken(benchmark::State& state) {
  SecretKey key = SecretKey::Generate();
  const std::string token = GenerateToken();
  const Digest stored = *HashToken(key, token);
  for (auto _ : state) {
    bool ok = VerifyToken(key, token, stored);
    if (!ok) state.SkipWithError("token rejected");
    benchmark::DoNotOptimize(ok);
  }
}
BENCHMARK(BM_VerifyToken);

}  // namespace
}  // namespace custos::crypto
