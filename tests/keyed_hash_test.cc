#include "crypto/keyed_hash.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace custos::crypto {
namespace {

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

// ---- Keyed hash and blind index
// ----------------------------------------------

TEST(KeyedHashTest, IsKeyedBlake2b256) {
  SecretKey key = SecretKey::Generate();
  const std::vector<uint8_t> data = Bytes("some stored bytes");
  Digest expected;
  ASSERT_GE(sodium_init(), 0);
  ASSERT_EQ(
      crypto_generichash(expected.data(), expected.size(), data.data(),
                         data.size(), key.bytes().data(), key.bytes().size()),
      0);
  EXPECT_EQ(KeyedHash(key, data), expected);
}

TEST(KeyedHashTest, DependsOnTheKey) {
  SecretKey a = SecretKey::Generate();
  SecretKey b = SecretKey::Generate();
  EXPECT_NE(KeyedHash(a, Bytes("x")), KeyedHash(b, Bytes("x")));
}

// The hasher gives KeyedHash's digest of the concatenation of its pieces,
// for inputs shorter and longer than BLAKE2b's block, however cut.
TEST(KeyedHasherTest, EqualsKeyedHashOfTheConcatenation) {
  const SecretKey key = SecretKey::Generate();
  for (size_t size : {size_t{0}, size_t{1}, size_t{31}, size_t{128},
                      size_t{129}, size_t{1000}}) {
    std::vector<uint8_t> data(size);
    for (size_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>(i * 7);
    const std::span<const uint8_t> all(data);
    for (size_t cut : {size_t{0}, size / 3, size}) {
      KeyedHasher hasher(key);
      hasher.Update(all.first(cut)).Update(all.subspan(cut));
      EXPECT_EQ(hasher.Final(), KeyedHash(key, data)) << size << " " << cut;
    }
  }
}

TEST(KeyedHasherTest, NumbersAreTheirBigEndianBytes) {
  const SecretKey key = SecretKey::Generate();
  KeyedHasher hasher(key);
  hasher.Update(std::string_view("ab"))
      .UpdateBigEndian64(0x0102030405060708)
      .UpdateBigEndian32(0x0a0b0c0d);
  const std::vector<uint8_t> expected{'a', 'b', 1, 2,  3,  4,  5,
                                      6,   7,   8, 10, 11, 12, 13};
  EXPECT_EQ(hasher.Final(), KeyedHash(key, expected));
}

TEST(CombineKeysTest, IsKeyedHashOfTheTagContextIdAndInnerKey) {
  KeyPool pool;
  const SecretKey outer = SecretKey::Generate();
  const SecretKey inner = SecretKey::Generate();
  const SecretKey combined = CombineKeys(outer, inner, "part", 7, pool);
  std::vector<uint8_t> input;
  for (char c : std::string_view("custos-combine-v1\0part\0", 23)) {
    input.push_back(static_cast<uint8_t>(c));
  }
  for (int i = 0; i < 7; ++i) input.push_back(0);
  input.push_back(7);
  input.insert(input.end(), inner.bytes().begin(), inner.bytes().end());
  const Digest expected = KeyedHash(outer, input);
  EXPECT_TRUE(
      std::equal(expected.begin(), expected.end(), combined.bytes().begin()));
}

TEST(CombineKeysTest, ChangesWithEitherKeyAndTheId) {
  KeyPool pool;
  const SecretKey outer = SecretKey::Generate();
  const SecretKey inner = SecretKey::Generate();
  const SecretKey other = SecretKey::Generate();
  const SecretKey base = CombineKeys(outer, inner, "part", 1, pool);
  EXPECT_TRUE(base.Equals(CombineKeys(outer, inner, "part", 1, pool)));
  EXPECT_FALSE(base.Equals(CombineKeys(other, inner, "part", 1, pool)));
  EXPECT_FALSE(base.Equals(CombineKeys(outer, other, "part", 1, pool)));
  EXPECT_FALSE(base.Equals(CombineKeys(outer, inner, "part", 2, pool)));
  EXPECT_FALSE(base.Equals(CombineKeys(outer, inner, "note", 1, pool)));
}

TEST(BlindIndexTest, EqualIdentifiersGiveEqualIndexes) {
  SecretKey key = SecretKey::Generate();
  EXPECT_EQ(BlindIndex(key, "SSN 123-45-6789"),
            BlindIndex(key, std::string("SSN 123-45-") + "6789"));
}

TEST(BlindIndexTest, DifferentIdentifiersGiveDifferentIndexes) {
  SecretKey key = SecretKey::Generate();
  EXPECT_NE(BlindIndex(key, "alice"), BlindIndex(key, "alicE"));
  EXPECT_NE(BlindIndex(key, "alice"), BlindIndex(key, "alice "));
  EXPECT_NE(BlindIndex(key, ""), BlindIndex(key, std::string(1, '\0')));
}

TEST(BlindIndexTest, DifferentKeysGiveUnrelatedIndexes) {
  SecretKey a = SecretKey::Generate();
  SecretKey b = SecretKey::Generate();
  Digest ia = BlindIndex(a, "alice");
  Digest ib = BlindIndex(b, "alice");
  EXPECT_NE(ia, ib);
  // Unrelated, not merely different: about half the bits differ. With 256
  // bits the chance of falling outside [64, 192] is below 1e-15.
  int differing_bits = 0;
  for (size_t i = 0; i < ia.size(); ++i) {
    differing_bits += __builtin_popcount(static_cast<unsigned>(ia[i] ^ ib[i]));
  }
  EXPECT_GT(differing_bits, 64);
  EXPECT_LT(differing_bits, 192);
}

TEST(BlindIndexTest, IsKeyedHashOfTheDomainTagAndIdentifier) {
  SecretKey key = SecretKey::Generate();
  std::vector<uint8_t> input = Bytes("custos-bi-v1");
  input.push_back(0);
  const std::vector<uint8_t> id = Bytes("alice");
  input.insert(input.end(), id.begin(), id.end());
  EXPECT_EQ(BlindIndex(key, "alice"), KeyedHash(key, input));
  EXPECT_NE(BlindIndex(key, "alice"), KeyedHash(key, id));
}

// ---- Hash chain
// ---------------------------------------------------------------

class ChainTest : public ::testing::Test {
 protected:
  static constexpr size_t kEntries = 20;

  void SetUp() override {
    Digest previous = kChainGenesis;
    for (size_t i = 0; i < kEntries; ++i) {
      entries_.push_back(Bytes("event #" + std::to_string(i) + " payload"));
      previous = ChainLink(key_, previous, entries_.back());
      links_.push_back(previous);
    }
  }

  // Feeds entries[order[i]] with its stored link, from genesis; returns the
  // verifier for inspection.
  ChainVerifier Verify(const std::vector<size_t>& order) {
    ChainVerifier verifier(key_, kChainGenesis, 0);
    for (size_t i : order) verifier.Add(entries_[i], links_[i]);
    return verifier;
  }

  static std::vector<size_t> AllPositions() {
    std::vector<size_t> order(kEntries);
    for (size_t i = 0; i < kEntries; ++i) order[i] = i;
    return order;
  }

  SecretKey key_ = SecretKey::Generate();
  std::vector<std::vector<uint8_t>> entries_;
  std::vector<Digest> links_;
};

TEST_F(ChainTest, IntactChainVerifies) {
  ChainVerifier verifier = Verify(AllPositions());
  EXPECT_EQ(verifier.first_broken(), std::nullopt);
  EXPECT_EQ(verifier.verified(), kEntries);
  EXPECT_EQ(verifier.last_link(), links_.back());
}

TEST_F(ChainTest, LinksFollowTheDocumentedFormula) {
  std::vector<uint8_t> first(kChainGenesis.begin(), kChainGenesis.end());
  first.insert(first.end(), entries_[0].begin(), entries_[0].end());
  EXPECT_EQ(links_[0], KeyedHash(key_, first));
  std::vector<uint8_t> second(links_[0].begin(), links_[0].end());
  second.insert(second.end(), entries_[1].begin(), entries_[1].end());
  EXPECT_EQ(links_[1], KeyedHash(key_, second));
}

TEST_F(ChainTest, FlippedEntryByteBreaksAtThatEntry) {
  for (size_t k : {size_t{0}, size_t{7}, kEntries - 1}) {
    ChainVerifier verifier(key_, kChainGenesis, 0);
    for (size_t i = 0; i < kEntries; ++i) {
      std::vector<uint8_t> entry = entries_[i];
      if (i == k) entry[entry.size() / 2] ^= 0x01;
      EXPECT_EQ(verifier.Add(entry, links_[i]), i < k) << "k " << k;
    }
    EXPECT_EQ(verifier.first_broken(), k);
    EXPECT_EQ(verifier.verified(), k);
  }
}

TEST_F(ChainTest, FlippedStoredLinkBreaksAtThatEntry) {
  const size_t k = 11;
  ChainVerifier verifier(key_, kChainGenesis, 0);
  for (size_t i = 0; i < kEntries; ++i) {
    Digest link = links_[i];
    if (i == k) link[0] ^= 0x80;
    verifier.Add(entries_[i], link);
  }
  EXPECT_EQ(verifier.first_broken(), k);
}

TEST_F(ChainTest, DeletedEntryBreaksWhereTheNextEntryTakesItsPlace) {
  for (size_t k : {size_t{0}, size_t{5}, kEntries - 2}) {
    std::vector<size_t> order = AllPositions();
    order.erase(order.begin() + static_cast<ptrdiff_t>(k));
    ChainVerifier verifier = Verify(order);
    EXPECT_EQ(verifier.first_broken(), k) << "deleted " << k;
    EXPECT_EQ(verifier.verified(), k);
  }
}

// A chain cut short at the end is a valid shorter chain; callers detect it by
// comparing last_link() with the head they recorded.
TEST_F(ChainTest, TruncatedTailIsVisibleOnlyInTheLastLink) {
  std::vector<size_t> order = AllPositions();
  order.pop_back();
  ChainVerifier verifier = Verify(order);
  EXPECT_EQ(verifier.first_broken(), std::nullopt);
  EXPECT_NE(verifier.last_link(), links_.back());
}

TEST_F(ChainTest, SwappedEntriesBreakAtTheFirstSwappedPosition) {
  for (auto [i, j] :
       {std::pair<size_t, size_t>{3, 4}, std::pair<size_t, size_t>{2, 15},
        std::pair<size_t, size_t>{0, kEntries - 1}}) {
    std::vector<size_t> order = AllPositions();
    std::swap(order[i], order[j]);
    ChainVerifier verifier = Verify(order);
    EXPECT_EQ(verifier.first_broken(), i) << i << "<->" << j;
  }
}

TEST_F(ChainTest, WrongKeyBreaksAtTheFirstEntry) {
  SecretKey other = SecretKey::Generate();
  ChainVerifier verifier(other, kChainGenesis, 0);
  for (size_t i = 0; i < kEntries; ++i) verifier.Add(entries_[i], links_[i]);
  EXPECT_EQ(verifier.first_broken(), 0u);
  EXPECT_EQ(verifier.verified(), 0u);
}

TEST_F(ChainTest, AfterABreakEveryAddIsFalseAndNothingMoreIsAccepted) {
  ChainVerifier verifier(key_, kChainGenesis, 0);
  EXPECT_TRUE(verifier.Add(entries_[0], links_[0]));
  EXPECT_FALSE(verifier.Add(entries_[2], links_[2]));
  // Even the entry that would have been right is refused now.
  EXPECT_FALSE(verifier.Add(entries_[1], links_[1]));
  EXPECT_EQ(verifier.first_broken(), 1u);
  EXPECT_EQ(verifier.verified(), 1u);
  EXPECT_EQ(verifier.last_link(), links_[0]);
}

TEST_F(ChainTest, VerifierStartsFromACheckpoint) {
  const size_t checkpoint = 9;
  ChainVerifier verifier(key_, links_[checkpoint], checkpoint + 1);
  for (size_t i = checkpoint + 1; i < kEntries; ++i) {
    EXPECT_TRUE(verifier.Add(entries_[i], links_[i])) << i;
  }
  EXPECT_EQ(verifier.first_broken(), std::nullopt);
  EXPECT_EQ(verifier.verified(), kEntries - checkpoint - 1);
  EXPECT_EQ(verifier.last_link(), links_.back());
}

TEST_F(ChainTest, BreakAfterACheckpointIsReportedAtItsAbsolutePosition) {
  const size_t checkpoint = 9;
  const size_t k = 14;
  ChainVerifier verifier(key_, links_[checkpoint], checkpoint + 1);
  for (size_t i = checkpoint + 1; i < kEntries; ++i) {
    std::vector<uint8_t> entry = entries_[i];
    if (i == k) entry.push_back('!');
    verifier.Add(entry, links_[i]);
  }
  EXPECT_EQ(verifier.first_broken(), k);
  EXPECT_EQ(verifier.verified(), k - checkpoint - 1);
}

// ---- Tokens
// -------------------------------------------------------------------

bool IsLowerHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

TEST(TokenTest, GeneratedTokenIsPrefixAnd64LowercaseHexDigits) {
  std::string token = GenerateToken();
  ASSERT_EQ(token.size(), 5u + 64u);
  EXPECT_EQ(token.substr(0, 5), "cst1_");
  EXPECT_TRUE(std::all_of(token.begin() + 5, token.end(), IsLowerHexDigit))
      << token;
  EXPECT_NE(GenerateToken(), token);
}

TEST(TokenTest, VerifyAcceptsTheRightToken) {
  SecretKey key = SecretKey::Generate();
  std::string token = GenerateToken();
  Result<Digest> stored = HashToken(key, token);
  ASSERT_TRUE(stored.has_value()) << stored.error().ToString();
  EXPECT_TRUE(VerifyToken(key, token, *stored));
}

TEST(TokenTest, VerifyRejectsAnotherToken) {
  SecretKey key = SecretKey::Generate();
  std::string token = GenerateToken();
  Result<Digest> stored = HashToken(key, token);
  ASSERT_TRUE(stored.has_value());
  EXPECT_FALSE(VerifyToken(key, GenerateToken(), *stored));
  std::string near = token;
  near.back() = near.back() == '0' ? '1' : '0';
  EXPECT_FALSE(VerifyToken(key, near, *stored));
}

TEST(TokenTest, VerifyRejectsTheRightTokenUnderAnotherKey) {
  SecretKey key = SecretKey::Generate();
  SecretKey other = SecretKey::Generate();
  std::string token = GenerateToken();
  Result<Digest> stored = HashToken(key, token);
  ASSERT_TRUE(stored.has_value());
  EXPECT_FALSE(VerifyToken(other, token, *stored));
}

std::vector<std::string> MalformedTokens(const std::string& good) {
  std::string upper = good;
  std::transform(upper.begin() + 5, upper.end(), upper.begin() + 5,
                 [](char c) { return static_cast<char>(std::toupper(c)); });
  std::string non_hex = good;
  non_hex[10] = 'g';
  return {
      "",
      "cst1_",
      good.substr(5),                   // No prefix.
      "cst2_" + good.substr(5),         // Other version.
      "CST1_" + good.substr(5),         // Prefix is case-sensitive.
      good.substr(0, good.size() - 1),  // 63 digits.
      good + "0",                       // 65 digits.
      good.substr(0, good.size() - 2),  // 62 digits: whole bytes, too few.
      " " + good,
      good + "\n",
      upper == good ? good + "x" : upper,  // Uppercase digits.
      non_hex,
  };
}

TEST(TokenTest, MalformedTokensAreInvalidArgumentAndNeverVerify) {
  SecretKey key = SecretKey::Generate();
  // A token whose digits include letters, so the uppercase case differs.
  std::string good = "cst1_" + std::string(64, 'a');
  Result<Digest> stored = HashToken(key, good);
  ASSERT_TRUE(stored.has_value());
  for (const std::string& bad : MalformedTokens(good)) {
    Result<Digest> hashed = HashToken(key, bad);
    ASSERT_FALSE(hashed.has_value()) << "'" << bad << "'";
    EXPECT_EQ(hashed.error().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_FALSE(VerifyToken(key, bad, *stored)) << bad;
  }
}

TEST(TokenTest, StoredHashIsKeyedHashOfTheTokensRandomBytes) {
  SecretKey key = SecretKey::Generate();
  std::string token = GenerateToken();
  std::optional<std::string> raw = FromHex(std::string_view(token).substr(5));
  ASSERT_TRUE(raw.has_value());
  ASSERT_EQ(raw->size(), 32u);
  Result<Digest> stored = HashToken(key, token);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(*stored, KeyedHash(key, Bytes(*raw)));
}

// ---- Hex
// ----------------------------------------------------------------------

TEST(HexTest, RoundTripsEveryByteValue) {
  std::vector<uint8_t> all(256);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint8_t>(i);
  std::string hex = ToHex(all);
  ASSERT_EQ(hex.size(), 512u);
  std::optional<std::string> back = FromHex(hex);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(Bytes(*back), all);
}

TEST(HexTest, ToHexIsLowercase) {
  EXPECT_EQ(ToHex(std::vector<uint8_t>{0x00, 0xab, 0x10, 0xff}), "00ab10ff");
  EXPECT_EQ(ToHex(std::vector<uint8_t>{}), "");
}

TEST(HexTest, FromHexAcceptsBothCases) {
  EXPECT_EQ(FromHex("00ab10ff"), std::string("\x00\xab\x10\xff", 4));
  EXPECT_EQ(FromHex("00AB10FF"), std::string("\x00\xab\x10\xff", 4));
  EXPECT_EQ(FromHex(""), std::string());
}

TEST(HexTest, FromHexRejectsOddLengthAndNonHex) {
  EXPECT_EQ(FromHex("0"), std::nullopt);
  EXPECT_EQ(FromHex("abc"), std::nullopt);
  EXPECT_EQ(FromHex("zz"), std::nullopt);
  EXPECT_EQ(FromHex("0g"), std::nullopt);
  EXPECT_EQ(FromHex("00 1"), std::nullopt);
  EXPECT_EQ(FromHex("0x00"), std::nullopt);
  EXPECT_EQ(FromHex(std::string_view("00\0"
                                     "0",
                                     4)),
            std::nullopt);
}

// NamedMac is the keyed hash of tag, the name's length, the name and the
// body; the length keeps "ab"+"c" apart from "a"+"bc".
TEST(NamedMacTest, IsTheTaggedLengthPrefixedHashAndSplitsUnambiguously) {
  const SecretKey key = SecretKey::Generate();
  const Digest expected = KeyedHasher(key)
                              .Update(std::string_view("t\0", 2))
                              .UpdateBigEndian32(2)
                              .Update("ab")
                              .Update("c")
                              .Final();
  EXPECT_EQ(NamedMac(key, std::string_view("t\0", 2), "ab", "c"), expected);
  EXPECT_NE(NamedMac(key, std::string_view("t\0", 2), "a", "bc"), expected);
  EXPECT_NE(NamedMac(key, std::string_view("u\0", 2), "ab", "c"), expected);
}

}  // namespace
}  // namespace custos::crypto
