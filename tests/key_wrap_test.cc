#include "crypto/key_wrap.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "crypto/aead.h"

namespace custos::crypto {
namespace {

void ExpectUnwrapFailed(const Result<SecretKey>& r) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kDataLoss);
  EXPECT_EQ(r.error().message(), "key unwrap failed");
}

class KeyWrapTest : public ::testing::Test {
 protected:
  SecretKey kek_ = SecretKey::Generate();
  SecretKey dek_ = SecretKey::Generate();
};

TEST_F(KeyWrapTest, UnwrapReturnsTheWrappedKey) {
  std::vector<uint8_t> wrapped = WrapKey(kek_, 1, "subject-7", dek_);
  EXPECT_EQ(wrapped.size(), SecretKey::kSize + kSealOverhead);
  Result<SecretKey> unwrapped = UnwrapKey(kek_, 1, "subject-7", wrapped);
  ASSERT_TRUE(unwrapped.has_value()) << unwrapped.error().ToString();
  EXPECT_TRUE(unwrapped->Equals(dek_));
}

TEST_F(KeyWrapTest, EmptySubjectIdRoundTrips) {
  std::vector<uint8_t> wrapped = WrapKey(kek_, 0, "", dek_);
  Result<SecretKey> unwrapped = UnwrapKey(kek_, 0, "", wrapped);
  ASSERT_TRUE(unwrapped.has_value());
  EXPECT_TRUE(unwrapped->Equals(dek_));
}

TEST_F(KeyWrapTest, WrongSubjectIdFailsWithDataLoss) {
  std::vector<uint8_t> wrapped = WrapKey(kek_, 1, "subject-7", dek_);
  ExpectUnwrapFailed(UnwrapKey(kek_, 1, "subject-8", wrapped));
  ExpectUnwrapFailed(UnwrapKey(kek_, 1, "subject-70", wrapped));
  ExpectUnwrapFailed(UnwrapKey(kek_, 1, "", wrapped));
}

TEST_F(KeyWrapTest, WrongKekVersionFailsWithDataLoss) {
  std::vector<uint8_t> wrapped = WrapKey(kek_, 1, "subject-7", dek_);
  ExpectUnwrapFailed(UnwrapKey(kek_, 2, "subject-7", wrapped));
  ExpectUnwrapFailed(UnwrapKey(kek_, 0, "subject-7", wrapped));
  ExpectUnwrapFailed(UnwrapKey(kek_, 0x01000000, "subject-7", wrapped));
}

TEST_F(KeyWrapTest, WrongKekFailsWithDataLoss) {
  std::vector<uint8_t> wrapped = WrapKey(kek_, 1, "subject-7", dek_);
  SecretKey other = SecretKey::Generate();
  ExpectUnwrapFailed(UnwrapKey(other, 1, "subject-7", wrapped));
}

TEST_F(KeyWrapTest, AlteredOrTruncatedWrappedKeyFailsWithDataLoss) {
  const std::vector<uint8_t> wrapped = WrapKey(kek_, 1, "subject-7", dek_);
  for (size_t i = 0; i < wrapped.size(); ++i) {
    std::vector<uint8_t> altered = wrapped;
    altered[i] ^= 0x01;
    ExpectUnwrapFailed(UnwrapKey(kek_, 1, "subject-7", altered));
  }
  ExpectUnwrapFailed(
      UnwrapKey(kek_, 1, "subject-7",
                std::span<const uint8_t>(wrapped.data(), wrapped.size() - 1)));
  ExpectUnwrapFailed(UnwrapKey(kek_, 1, "subject-7", {}));
}

TEST_F(KeyWrapTest, TwoWrapsOfOneKeyDiffer) {
  EXPECT_NE(WrapKey(kek_, 1, "s", dek_), WrapKey(kek_, 1, "s", dek_));
}

// Pins the documented associated data: "custos-dek-v1" || u32 BE version ||
// subject id.
TEST_F(KeyWrapTest, WrappedKeyIsSealedUnderTheDocumentedAd) {
  std::vector<uint8_t> wrapped = WrapKey(kek_, 0x01020304, "subj", dek_);
  const std::string ad_text = std::string("custos-dek-v1") +
                              std::string("\x01\x02\x03\x04", 4) + "subj";
  const std::vector<uint8_t> ad(ad_text.begin(), ad_text.end());
  Result<std::vector<uint8_t>> opened = Open(kek_, wrapped, ad);
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  ASSERT_EQ(opened->size(), SecretKey::kSize);
  EXPECT_TRUE(std::equal(opened->begin(), opened->end(), dek_.bytes().begin()));
}

TEST_F(KeyWrapTest, AuthenticValueOfTheWrongLengthIsNotAKey) {
  const std::string ad_text =
      std::string("custos-dek-v1") + std::string("\0\0\0\1", 4) + "s";
  const std::vector<uint8_t> ad(ad_text.begin(), ad_text.end());
  const std::vector<uint8_t> short_key(31, 0x42);
  ExpectUnwrapFailed(UnwrapKey(kek_, 1, "s", Seal(kek_, short_key, ad)));
}

}  // namespace
}  // namespace custos::crypto
