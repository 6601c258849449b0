#include "crypto/secret_key.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace custos::crypto {
namespace {

static_assert(!std::is_copy_constructible_v<SecretKey>);
static_assert(!std::is_copy_assignable_v<SecretKey>);
static_assert(std::is_nothrow_move_constructible_v<SecretKey>);
static_assert(std::is_nothrow_move_assignable_v<SecretKey>);

std::array<uint8_t, SecretKey::kSize> Counting(uint8_t first) {
  std::array<uint8_t, SecretKey::kSize> bytes;
  for (size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<uint8_t>(first + i);
  }
  return bytes;
}

SecretKey KeyFrom(const std::array<uint8_t, SecretKey::kSize>& bytes) {
  Result<SecretKey> key = SecretKey::FromBytes(bytes);
  EXPECT_TRUE(key.has_value());
  return std::move(*key);
}

TEST(SecretKeyTest, FromBytesHoldsExactlyThoseBytes) {
  const auto bytes = Counting(0x10);
  SecretKey key = KeyFrom(bytes);
  ASSERT_FALSE(key.empty());
  EXPECT_TRUE(std::equal(key.bytes().begin(), key.bytes().end(), bytes.begin(),
                         bytes.end()));
}

TEST(SecretKeyTest, FromBytesRejectsEveryOtherLength) {
  const std::vector<uint8_t> long_input(64, 7);
  for (size_t size : {0, 1, 16, 31, 33, 64}) {
    Result<SecretKey> key =
        SecretKey::FromBytes(std::span(long_input.data(), size));
    ASSERT_FALSE(key.has_value()) << size;
    EXPECT_EQ(key.error().code(), StatusCode::kInvalidArgument) << size;
  }
}

TEST(SecretKeyTest, GeneratedKeysAreNonEmptyAndDistinct) {
  SecretKey a = SecretKey::Generate();
  SecretKey b = SecretKey::Generate();
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  EXPECT_FALSE(a.Equals(b));
  EXPECT_FALSE(std::all_of(a.bytes().begin(), a.bytes().end(),
                           [](uint8_t v) { return v == 0; }));
}

TEST(SecretKeyTest, MoveConstructionLeavesTheSourceEmpty) {
  SecretKey source = KeyFrom(Counting(1));
  SecretKey target(std::move(source));
  EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move)
  ASSERT_FALSE(target.empty());
  EXPECT_TRUE(target.Equals(KeyFrom(Counting(1))));
}

TEST(SecretKeyTest, MoveAssignmentLeavesTheSourceEmptyAndReplacesTheTarget) {
  SecretKey source = KeyFrom(Counting(1));
  SecretKey target = KeyFrom(Counting(2));
  target = std::move(source);
  EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(target.Equals(KeyFrom(Counting(1))));
}

TEST(SecretKeyTest, MoveAssigningAnEmptyKeyEmptiesTheTarget) {
  SecretKey empty = KeyFrom(Counting(1));
  SecretKey sink(std::move(empty));
  SecretKey target = KeyFrom(Counting(2));
  target = std::move(empty);  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(target.empty());
}

TEST(SecretKeyTest, SelfMoveAssignmentKeepsTheKey) {
  SecretKey key = KeyFrom(Counting(3));
  SecretKey& alias = key;
  key = std::move(alias);
  ASSERT_FALSE(key.empty());
  EXPECT_TRUE(key.Equals(KeyFrom(Counting(3))));
}

TEST(SecretKeyTest, EqualsIsTrueForEqualBytes) {
  EXPECT_TRUE(KeyFrom(Counting(5)).Equals(KeyFrom(Counting(5))));
  SecretKey key = KeyFrom(Counting(5));
  EXPECT_TRUE(key.Equals(key));
}

TEST(SecretKeyTest, EqualsIsFalseWhenAnySingleByteDiffers) {
  const auto bytes = Counting(9);
  SecretKey key = KeyFrom(bytes);
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto other = bytes;
    other[i] ^= 0x01;
    EXPECT_FALSE(key.Equals(KeyFrom(other))) << "byte " << i;
  }
}

TEST(SecretKeyTest, EmptyKeysEqualNothing) {
  SecretKey a = KeyFrom(Counting(1));
  SecretKey b = KeyFrom(Counting(1));
  SecretKey a_sink(std::move(a));
  SecretKey b_sink(std::move(b));
  // NOLINTBEGIN(bugprone-use-after-move)
  EXPECT_FALSE(a.Equals(b));
  EXPECT_FALSE(a.Equals(a));
  EXPECT_FALSE(a.Equals(a_sink));
  EXPECT_FALSE(a_sink.Equals(a));
  // NOLINTEND(bugprone-use-after-move)
}

TEST(SecretKeyTest, KeyMemoryIsReadOnly) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  SecretKey key = KeyFrom(Counting(1));
  EXPECT_DEATH(
      {
        auto* p = const_cast<volatile uint8_t*>(key.bytes().data());
        p[0] = 0xff;
      },
      "");
}

TEST(ConstantTimeEqualsTest, EqualBytesAreEqual) {
  const std::vector<uint8_t> a = {1, 2, 3, 4};
  const std::vector<uint8_t> b = {1, 2, 3, 4};
  EXPECT_TRUE(ConstantTimeEquals(a, b));
  EXPECT_TRUE(ConstantTimeEquals(std::span<const uint8_t>(),
                                 std::span<const uint8_t>()));
}

TEST(ConstantTimeEqualsTest, OneDifferentByteIsUnequal) {
  const std::vector<uint8_t> a = {1, 2, 3, 4};
  for (size_t i = 0; i < a.size(); ++i) {
    std::vector<uint8_t> b = a;
    b[i] ^= 0x80;
    EXPECT_FALSE(ConstantTimeEquals(a, b)) << i;
  }
}

TEST(ConstantTimeEqualsTest, DifferentLengthsAreUnequal) {
  const std::vector<uint8_t> a = {1, 2, 3, 4};
  const std::vector<uint8_t> prefix = {1, 2, 3};
  EXPECT_FALSE(ConstantTimeEquals(a, prefix));
  EXPECT_FALSE(ConstantTimeEquals(prefix, a));
}

TEST(WipeTest, ZeroesEveryByte) {
  std::vector<uint8_t> buffer(100, 0xab);
  Wipe(buffer);
  EXPECT_TRUE(std::all_of(buffer.begin(), buffer.end(),
                          [](uint8_t v) { return v == 0; }));
  Wipe(std::span<uint8_t>());  // Nothing to do, and no crash.
}

TEST(RandomBytesTest, FillsTheBufferWithFreshBytes) {
  std::array<uint8_t, 64> a{};
  std::array<uint8_t, 64> b{};
  RandomBytes(a);
  RandomBytes(b);
  EXPECT_NE(a, b);
  EXPECT_NE(a, (std::array<uint8_t, 64>{}));
  RandomBytes(std::span<uint8_t>());  // Nothing to do, and no crash.
}

}  // namespace
}  // namespace custos::crypto

namespace custos::crypto {
namespace {

TEST(KeyPoolTest, PooledKeysHoldTheirBytesAndCountAsInUse) {
  KeyPool pool(4);
  std::vector<uint8_t> bytes(SecretKey::kSize, 0x5a);
  {
    auto key = SecretKey::FromBytes(bytes, pool);
    ASSERT_TRUE(key.has_value());
    EXPECT_TRUE(std::ranges::equal(key->bytes(), bytes));
    EXPECT_EQ(pool.keys_in_use(), 1u);
    SecretKey moved = std::move(*key);
    EXPECT_EQ(pool.keys_in_use(), 1u);
    EXPECT_TRUE(std::ranges::equal(moved.bytes(), bytes));
  }
  EXPECT_EQ(pool.keys_in_use(), 0u);
}

TEST(KeyPoolTest, AReleasedSlotIsWipedAndReused) {
  KeyPool pool(4);
  const uint8_t* slot = nullptr;
  {
    SecretKey key = SecretKey::Generate(pool);
    slot = key.bytes().data();
    // A generated key is not all zeros (probability 2^-256).
    EXPECT_FALSE(std::all_of(slot, slot + SecretKey::kSize,
                             [](uint8_t b) { return b == 0; }));
  }
  // The slab stays mapped while the pool lives: the slot must read zero.
  EXPECT_TRUE(std::all_of(slot, slot + SecretKey::kSize,
                          [](uint8_t b) { return b == 0; }));
  SecretKey again = SecretKey::Generate(pool);
  EXPECT_EQ(again.bytes().data(), slot);
  EXPECT_EQ(pool.slabs(), 1u);
}

TEST(KeyPoolTest, AFullSlabAddsAnother) {
  KeyPool pool(2);
  std::vector<SecretKey> keys;
  for (int i = 0; i < 5; ++i) keys.push_back(SecretKey::Generate(pool));
  EXPECT_EQ(pool.keys_in_use(), 5u);
  EXPECT_EQ(pool.slabs(), 3u);
  for (size_t i = 0; i < keys.size(); ++i) {
    for (size_t j = 0; j < i; ++j) EXPECT_FALSE(keys[i].Equals(keys[j]));
  }
  keys.clear();
  EXPECT_EQ(pool.keys_in_use(), 0u);
}

TEST(KeyPoolTest, FromBytesOfTheWrongSizeIsInvalidArgument) {
  KeyPool pool;
  std::vector<uint8_t> short_key(SecretKey::kSize - 1, 1);
  auto key = SecretKey::FromBytes(short_key, pool);
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.keys_in_use(), 0u);
}

}  // namespace
}  // namespace custos::crypto
