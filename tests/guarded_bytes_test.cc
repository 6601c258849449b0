// GuardedBytes: a file read straight into guarded memory, whole, with the
// errors a caller must tell apart.

#include "crypto/guarded_bytes.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace custos::crypto {
namespace {

class GuardedBytesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custos-guarded-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  std::string dir_;
};

TEST_F(GuardedBytesTest, ReadsAFileWholeAndEndsItWithANul) {
  const std::string pem =
      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  auto bytes = GuardedBytes::ReadFile(Write("key.pem", pem), 1024);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().ToString();
  EXPECT_EQ(bytes->view(), pem);
  EXPECT_EQ(bytes->size(), pem.size());
  EXPECT_EQ(std::string(bytes->c_str()), pem);

  GuardedBytes moved = std::move(*bytes);
  EXPECT_EQ(moved.view(), pem);
  EXPECT_TRUE(bytes->empty());
  EXPECT_STREQ(bytes->c_str(), "");
}

TEST_F(GuardedBytesTest, RefusesAMissingAnEmptyAndATooLargeFile) {
  auto missing = GuardedBytes::ReadFile(dir_ + "/none.pem", 1024);
  EXPECT_EQ(missing.error().code(), StatusCode::kNotFound);
  auto empty = GuardedBytes::ReadFile(Write("empty.pem", ""), 1024);
  EXPECT_EQ(empty.error().code(), StatusCode::kInvalidArgument);
  auto large =
      GuardedBytes::ReadFile(Write("large.pem", std::string(11, 'k')), 10);
  EXPECT_EQ(large.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(large.error().message().find("kkkk"), std::string::npos);
  auto at_limit =
      GuardedBytes::ReadFile(Write("ten.pem", std::string(10, 'k')), 10);
  EXPECT_TRUE(at_limit.has_value());
  auto directory = GuardedBytes::ReadFile(dir_, 1024);
  EXPECT_EQ(directory.error().code(), StatusCode::kInternal);
}

TEST_F(GuardedBytesTest, CopyHoldsTheBytesGiven) {
  GuardedBytes copy = GuardedBytes::Copy(std::string_view("a\0b", 3));
  EXPECT_EQ(copy.view(), std::string_view("a\0b", 3));
  EXPECT_TRUE(GuardedBytes::Copy("").empty());
}

}  // namespace
}  // namespace custos::crypto
