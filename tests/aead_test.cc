#include "crypto/aead.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace custos::crypto {
namespace {

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

// Decodes hex test data independently of the code under test.
std::vector<uint8_t> Hex(std::string_view hex) {
  std::vector<uint8_t> out(hex.size() / 2);
  size_t length = 0;
  EXPECT_EQ(sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(),
                           nullptr, &length, nullptr),
            0);
  EXPECT_EQ(length, out.size());
  return out;
}

std::vector<uint8_t> Pattern(size_t size) {
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(i * 7 + 3);
  return out;
}

void ExpectDecryptionFailed(const Result<std::vector<uint8_t>>& r) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kDataLoss);
  EXPECT_EQ(r.error().message(), "decryption failed");
}

const std::vector<uint8_t> kAd = Bytes("record 42 / subject 7 / v3");

TEST(AeadTest, RoundTripsEmptyOneByteAnd64KiB) {
  SecretKey key = SecretKey::Generate();
  for (size_t size : {size_t{0}, size_t{1}, size_t{64 * 1024}}) {
    const std::vector<uint8_t> plaintext = Pattern(size);
    std::vector<uint8_t> sealed = Seal(key, plaintext, kAd);
    EXPECT_EQ(sealed.size(), size + kSealOverhead);
    Result<std::vector<uint8_t>> opened = Open(key, sealed, kAd);
    ASSERT_TRUE(opened.has_value())
        << size << ": " << opened.error().ToString();
    EXPECT_EQ(*opened, plaintext) << size;
  }
}

TEST(AeadTest, RoundTripsWithEmptyAd) {
  SecretKey key = SecretKey::Generate();
  std::vector<uint8_t> sealed = Seal(key, Bytes("hello"), {});
  Result<std::vector<uint8_t>> opened = Open(key, sealed, {});
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(*opened, Bytes("hello"));
}

TEST(AeadTest, StringOverloadSealsTheStringBytes) {
  SecretKey key = SecretKey::Generate();
  std::vector<uint8_t> sealed = Seal(key, std::string_view("Alice"), kAd);
  Result<std::vector<uint8_t>> opened = Open(key, sealed, kAd);
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(*opened, Bytes("Alice"));
}

TEST(AeadTest, SealedFormStartsWithVersionOne) {
  SecretKey key = SecretKey::Generate();
  std::vector<uint8_t> sealed = Seal(key, Bytes("x"), kAd);
  ASSERT_EQ(sealed.size(), 1 + kSealOverhead);
  EXPECT_EQ(sealed[0], kSealedFormatV1);
  EXPECT_EQ(kSealOverhead, 41u);
}

TEST(AeadTest, FlippingAnySingleByteFailsWithDataLoss) {
  SecretKey key = SecretKey::Generate();
  const std::vector<uint8_t> sealed = Seal(key, Pattern(37), kAd);
  // Every position: version byte, each nonce byte, each ciphertext byte,
  // each tag byte; a low bit, a high bit and the whole byte.
  for (size_t i = 0; i < sealed.size(); ++i) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      std::vector<uint8_t> altered = sealed;
      altered[i] ^= mask;
      SCOPED_TRACE(testing::Message()
                   << "position " << i << " mask " << static_cast<int>(mask));
      ExpectDecryptionFailed(Open(key, altered, kAd));
    }
  }
}

TEST(AeadTest, WrongAdFailsWithDataLoss) {
  SecretKey key = SecretKey::Generate();
  std::vector<uint8_t> sealed = Seal(key, Bytes("secret"), kAd);
  ExpectDecryptionFailed(
      Open(key, sealed, Bytes("record 43 / subject 7 / v3")));
  ExpectDecryptionFailed(Open(key, sealed, {}));
  std::vector<uint8_t> longer = kAd;
  longer.push_back(0);
  ExpectDecryptionFailed(Open(key, sealed, longer));
}

TEST(AeadTest, WrongKeyFailsWithDataLoss) {
  SecretKey key = SecretKey::Generate();
  SecretKey other = SecretKey::Generate();
  std::vector<uint8_t> sealed = Seal(key, Bytes("secret"), kAd);
  ExpectDecryptionFailed(Open(other, sealed, kAd));
}

TEST(AeadTest, TruncatedInputFailsWithDataLoss) {
  SecretKey key = SecretKey::Generate();
  const std::vector<uint8_t> sealed = Seal(key, Bytes("secret"), kAd);
  for (size_t length = 0; length < sealed.size(); ++length) {
    SCOPED_TRACE(testing::Message() << "length " << length);
    ExpectDecryptionFailed(
        Open(key, std::span<const uint8_t>(sealed.data(), length), kAd));
  }
}

TEST(AeadTest, AppendedByteFailsWithDataLoss) {
  SecretKey key = SecretKey::Generate();
  std::vector<uint8_t> sealed = Seal(key, Bytes("secret"), kAd);
  sealed.push_back(0);
  ExpectDecryptionFailed(Open(key, sealed, kAd));
}

TEST(AeadTest, TwoSealsOfTheSamePlaintextDiffer) {
  SecretKey key = SecretKey::Generate();
  std::vector<uint8_t> a = Seal(key, Bytes("same"), kAd);
  std::vector<uint8_t> b = Seal(key, Bytes("same"), kAd);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_NE(a, b);
  // The nonces themselves differ, not just the output.
  EXPECT_NE(std::vector<uint8_t>(a.begin() + 1, a.begin() + 1 + kNonceSize),
            std::vector<uint8_t>(b.begin() + 1, b.begin() + 1 + kNonceSize));
}

// draft-irtf-cfrg-xchacha-03, Appendix A.3.1 (AEAD_XCHACHA20_POLY1305,
// developer-friendly hex form), as published by the draft's author in
// https://github.com/bikeshedders/xchacha-rfc, file
// draft-irtf-cfrg-xchacha-rfc-03.txt.
constexpr std::string_view kKatPlaintext =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one "
    "tip for the future, sunscreen would be it.";
constexpr std::string_view kKatPlaintextHex =
    "4c616469657320616e642047656e746c656d656e206f662074686520636c6173"
    "73206f66202739393a204966204920636f756c64206f6666657220796f75206f"
    "6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"
    "637265656e20776f756c642062652069742e";
constexpr std::string_view kKatAadHex = "50515253c0c1c2c3c4c5c6c7";
constexpr std::string_view kKatKeyHex =
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
constexpr std::string_view kKatIvHex =
    "404142434445464748494a4b4c4d4e4f5051525354555657";
constexpr std::string_view kKatCiphertextHex =
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
    "21f9664c97637da9768812f615c68b13b52e";
constexpr std::string_view kKatTagHex = "c0875924c1c7987947deafd8780acf49";

TEST(AeadTest, MatchesTheXChaChaDraftKnownAnswer) {
  const std::vector<uint8_t> plaintext = Hex(kKatPlaintextHex);
  ASSERT_EQ(plaintext, Bytes(kKatPlaintext));
  const std::vector<uint8_t> key = Hex(kKatKeyHex);
  const std::vector<uint8_t> nonce = Hex(kKatIvHex);
  ASSERT_EQ(key.size(), SecretKey::kSize);
  ASSERT_EQ(nonce.size(), kNonceSize);

  std::vector<uint8_t> expected = Hex(kKatCiphertextHex);
  const std::vector<uint8_t> tag = Hex(kKatTagHex);
  expected.insert(expected.end(), tag.begin(), tag.end());

  std::vector<uint8_t> out = internal::XChaCha20Poly1305Encrypt(
      std::span<const uint8_t, SecretKey::kSize>(key.data(), SecretKey::kSize),
      std::span<const uint8_t, kNonceSize>(nonce.data(), kNonceSize), plaintext,
      Hex(kKatAadHex));
  EXPECT_EQ(out, expected);
}

// Seal() is the bare cipher with the version byte prepended to the output and
// to the associated data; a sealed value built by hand that way must open.
TEST(AeadTest, SealedFormIsVersionNonceCipherOfVersionedAd) {
  Result<SecretKey> key = SecretKey::FromBytes(Hex(kKatKeyHex));
  ASSERT_TRUE(key.has_value());
  const std::vector<uint8_t> nonce = Hex(kKatIvHex);
  const std::vector<uint8_t> ad = Hex(kKatAadHex);
  std::vector<uint8_t> versioned_ad = {kSealedFormatV1};
  versioned_ad.insert(versioned_ad.end(), ad.begin(), ad.end());

  std::vector<uint8_t> sealed = {kSealedFormatV1};
  sealed.insert(sealed.end(), nonce.begin(), nonce.end());
  std::vector<uint8_t> body = internal::XChaCha20Poly1305Encrypt(
      key->bytes(),
      std::span<const uint8_t, kNonceSize>(nonce.data(), kNonceSize),
      Bytes(kKatPlaintext), versioned_ad);
  sealed.insert(sealed.end(), body.begin(), body.end());

  Result<std::vector<uint8_t>> opened = Open(*key, sealed, ad);
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  EXPECT_EQ(*opened, Bytes(kKatPlaintext));

  // The draft's own output (version not bound into the ad) must not open.
  std::vector<uint8_t> unbound = {kSealedFormatV1};
  unbound.insert(unbound.end(), nonce.begin(), nonce.end());
  std::vector<uint8_t> draft = Hex(kKatCiphertextHex);
  std::vector<uint8_t> tag = Hex(kKatTagHex);
  unbound.insert(unbound.end(), draft.begin(), draft.end());
  unbound.insert(unbound.end(), tag.begin(), tag.end());
  ExpectDecryptionFailed(Open(*key, unbound, ad));
}

}  // namespace
}  // namespace custos::crypto
