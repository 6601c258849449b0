#include "crypto/master_key.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace custos::crypto {
namespace {

namespace fs = std::filesystem;

constexpr char kHeader[] = "custos-master-key-v1\n";
// 32 bytes 0x00..0x1f.
constexpr char kKeyHex[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr char kTestEnvVar[] = "CUSTOS_MASTER_KEY_TEST_ONLY";

SecretKey ExpectedKey() {
  std::array<uint8_t, SecretKey::kSize> bytes;
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i);
  return std::move(*SecretKey::FromBytes(bytes));
}

// Strings in this file are built by appending, never as "literal" + string:
// at -O3 GCC 12 reports a false -Wrestrict on that operator+ (GCC bug 105329).

std::string ValidFileContents() {
  return std::string(kHeader) + kKeyHex + "\n";
}

class MasterKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (fs::path(::testing::TempDir()) / "master_key_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }

  void TearDown() override {
    ::unsetenv(kTestEnvVar);
    ::unsetenv(kMasterKeyEnvVar);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Writes `contents` to `name` in the test directory with exactly `mode`.
  std::string WriteFile(const std::string& name, const std::string& contents,
                        mode_t mode = 0600) {
    std::string path = (dir_ / name).string();
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << contents;
    }
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  std::string PathOf(const std::string& name) { return (dir_ / name).string(); }

  fs::path dir_;
};

void ExpectCode(const Result<SecretKey>& r, StatusCode code) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), code) << r.error().ToString();
}

// ---- Key file ---------------------------------------------------------------

TEST_F(MasterKeyTest, LoadsAValid0600File) {
  Result<SecretKey> key =
      LoadMasterKeyFile(WriteFile("k", ValidFileContents()));
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
  EXPECT_TRUE(key->Equals(ExpectedKey()));
}

TEST_F(MasterKeyTest, LoadsAReadOnly0400File) {
  Result<SecretKey> key =
      LoadMasterKeyFile(WriteFile("k", ValidFileContents(), 0400));
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
  EXPECT_TRUE(key->Equals(ExpectedKey()));
}

TEST_F(MasterKeyTest, AcceptsUppercaseHexDigits) {
  std::string upper = kKeyHex;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  Result<SecretKey> key =
      LoadMasterKeyFile(WriteFile("k", std::string(kHeader) + upper + "\n"));
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
  EXPECT_TRUE(key->Equals(ExpectedKey()));
}

TEST_F(MasterKeyTest, RefusesAWorldReadable0644File) {
  Result<SecretKey> key =
      LoadMasterKeyFile(WriteFile("k", ValidFileContents(), 0644));
  ExpectCode(key, StatusCode::kFailedPrecondition);
  EXPECT_NE(key.error().message().find("0644"), std::string::npos);
}

TEST_F(MasterKeyTest, RefusesAGroupReadable0640File) {
  Result<SecretKey> key =
      LoadMasterKeyFile(WriteFile("k", ValidFileContents(), 0640));
  ExpectCode(key, StatusCode::kFailedPrecondition);
  EXPECT_NE(key.error().message().find("0640"), std::string::npos);
}

TEST_F(MasterKeyTest, RefusesAnyGroupOrOtherBit) {
  for (mode_t mode : {0601, 0602, 0604, 0610, 0620, 0660, 0700 | 0007}) {
    std::string name = "k";
    name += std::to_string(mode);
    ExpectCode(LoadMasterKeyFile(WriteFile(name, ValidFileContents(), mode)),
               StatusCode::kFailedPrecondition);
  }
}

TEST_F(MasterKeyTest, RefusesASymlinkToAValidKeyFile) {
  std::string target = WriteFile("real", ValidFileContents());
  std::string link = PathOf("link");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  ExpectCode(LoadMasterKeyFile(link), StatusCode::kFailedPrecondition);
}

TEST_F(MasterKeyTest, RefusesADirectory) {
  std::string path = PathOf("dir");
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  ExpectCode(LoadMasterKeyFile(path), StatusCode::kFailedPrecondition);
}

TEST_F(MasterKeyTest, MissingFileIsNotFound) {
  ExpectCode(LoadMasterKeyFile(PathOf("absent")), StatusCode::kNotFound);
  ExpectCode(LoadMasterKeyFile(PathOf("no-such-dir/key")),
             StatusCode::kNotFound);
}

TEST_F(MasterKeyTest, RefusesAWrongHeader) {
  ExpectCode(LoadMasterKeyFile(WriteFile(
                 "k", std::string("custos-master-key-v2\n") + kKeyHex + "\n")),
             StatusCode::kInvalidArgument);
  ExpectCode(LoadMasterKeyFile(WriteFile(
                 "k2", std::string("CUSTOS-MASTER-KEY-V1\n") + kKeyHex + "\n")),
             StatusCode::kInvalidArgument);
}

TEST_F(MasterKeyTest, RefusesAMissingTrailingNewline) {
  // 85 bytes: too short.
  ExpectCode(LoadMasterKeyFile(WriteFile("k", std::string(kHeader) + kKeyHex)),
             StatusCode::kInvalidArgument);
  // 86 bytes but the last is not a newline.
  ExpectCode(
      LoadMasterKeyFile(WriteFile("k2", std::string(kHeader) + kKeyHex + " ")),
      StatusCode::kInvalidArgument);
}

TEST_F(MasterKeyTest, RefusesWrongLengths) {
  const std::string valid = ValidFileContents();
  ExpectCode(LoadMasterKeyFile(WriteFile("empty", "")),
             StatusCode::kInvalidArgument);
  ExpectCode(LoadMasterKeyFile(WriteFile("long", valid + "\n")),
             StatusCode::kInvalidArgument);
  ExpectCode(LoadMasterKeyFile(WriteFile(
                 "short", std::string(kHeader) + std::string(62, 'a') + "\n")),
             StatusCode::kInvalidArgument);
  ExpectCode(LoadMasterKeyFile(WriteFile("huge", valid + valid)),
             StatusCode::kInvalidArgument);
}

TEST_F(MasterKeyTest, RefusesNonHexDigits) {
  for (char bad : {'g', 'z', ' ', ':', '\n', '\0'}) {
    std::string contents = ValidFileContents();
    contents[sizeof(kHeader) - 1 + 10] = bad;
    ExpectCode(LoadMasterKeyFile(WriteFile("k", contents)),
               StatusCode::kInvalidArgument);
  }
}

TEST_F(MasterKeyTest, ErrorMessagesNeverContainKeyMaterial) {
  std::string contents = ValidFileContents();
  contents[sizeof(kHeader) - 1 + 63] = 'x';  // Last digit not hex.
  Result<SecretKey> key = LoadMasterKeyFile(WriteFile("k", contents));
  ExpectCode(key, StatusCode::kInvalidArgument);
  EXPECT_EQ(key.error().message().find(std::string(kKeyHex).substr(0, 16)),
            std::string::npos);

  Result<SecretKey> exposed =
      LoadMasterKeyFile(WriteFile("k2", ValidFileContents(), 0644));
  ExpectCode(exposed, StatusCode::kFailedPrecondition);
  EXPECT_EQ(exposed.error().message().find(std::string(kKeyHex).substr(0, 16)),
            std::string::npos);
}

// ---- Environment variable ---------------------------------------------------

TEST_F(MasterKeyTest, LoadsFromTheEnvironment) {
  ASSERT_EQ(::setenv(kTestEnvVar, kKeyHex, 1), 0);
  Result<SecretKey> key = LoadMasterKeyFromEnv(kTestEnvVar);
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
  EXPECT_TRUE(key->Equals(ExpectedKey()));
}

TEST_F(MasterKeyTest, LoadsFromTheDefaultVariable) {
  ASSERT_EQ(::setenv(kMasterKeyEnvVar, kKeyHex, 1), 0);
  Result<SecretKey> key = LoadMasterKeyFromEnv();
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
  EXPECT_TRUE(key->Equals(ExpectedKey()));
}

TEST_F(MasterKeyTest, UnsetVariableIsNotFound) {
  ::unsetenv(kTestEnvVar);
  ExpectCode(LoadMasterKeyFromEnv(kTestEnvVar), StatusCode::kNotFound);
}

TEST_F(MasterKeyTest, MalformedVariableIsInvalidArgument) {
  const std::string hex = kKeyHex;
  const std::string bad_values[] = {
      "",
      hex.substr(0, 63),
      hex + "0",
      hex + "\n",
      hex.substr(0, 63) + "g",
      std::string(kHeader) + hex,
      std::string(" ").append(hex, 1),
      // A placeholder, not a key (helper-131: it opened a store).
      std::string(64, '0'),
  };
  for (const std::string& value : bad_values) {
    ASSERT_EQ(::setenv(kTestEnvVar, value.c_str(), 1), 0);
    Result<SecretKey> key = LoadMasterKeyFromEnv(kTestEnvVar);
    ExpectCode(key, StatusCode::kInvalidArgument);
  }
}

// ---- Generation -------------------------------------------------------------

TEST_F(MasterKeyTest, GeneratedFileHasMode0600AndLoadsBackToTheSameKey) {
  std::string path = PathOf("generated");
  Result<SecretKey> generated = GenerateMasterKeyFile(path);
  ASSERT_TRUE(generated.has_value()) << generated.error().ToString();

  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_size, 86);

  Result<SecretKey> loaded = LoadMasterKeyFile(path);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_TRUE(loaded->Equals(*generated));
}

TEST_F(MasterKeyTest, GeneratedFileIsHeaderLowercaseHexNewline) {
  std::string path = PathOf("generated");
  ASSERT_TRUE(GenerateMasterKeyFile(path).has_value());
  std::ifstream in(path, std::ios::binary);
  std::string contents((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
  ASSERT_EQ(contents.size(), 86u);
  EXPECT_EQ(contents.substr(0, 21), kHeader);
  EXPECT_EQ(contents.back(), '\n');
  for (char c : contents.substr(21, 64)) {
    EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << c;
  }
}

TEST_F(MasterKeyTest, GeneratedModeIs0600WhateverTheUmask) {
  for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{0277}}) {
    mode_t old = ::umask(mask);
    std::string name = "generated";
    name += std::to_string(mask);
    std::string path = PathOf(name);
    Result<SecretKey> generated = GenerateMasterKeyFile(path);
    ::umask(old);
    ASSERT_TRUE(generated.has_value()) << generated.error().ToString();
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u) << "umask " << mask;
  }
}

TEST_F(MasterKeyTest, GenerateNeverOverwrites) {
  std::string path = PathOf("generated");
  Result<SecretKey> first = GenerateMasterKeyFile(path);
  ASSERT_TRUE(first.has_value());
  ExpectCode(GenerateMasterKeyFile(path), StatusCode::kAlreadyExists);
  Result<SecretKey> loaded = LoadMasterKeyFile(path);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_TRUE(loaded->Equals(*first));
}

TEST_F(MasterKeyTest, GenerateDoesNotFollowASymlink) {
  std::string target = PathOf("target");
  std::string link = PathOf("link");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  ExpectCode(GenerateMasterKeyFile(link), StatusCode::kAlreadyExists);
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(MasterKeyTest, GenerateInAMissingDirectoryIsInternal) {
  ExpectCode(GenerateMasterKeyFile(PathOf("no-such-dir/key")),
             StatusCode::kInternal);
}

TEST_F(MasterKeyTest, GeneratedKeysDiffer) {
  Result<SecretKey> a = GenerateMasterKeyFile(PathOf("a"));
  Result<SecretKey> b = GenerateMasterKeyFile(PathOf("b"));
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(a->Equals(*b));
}

// ---- Subkeys ----------------------------------------------------------------

constexpr Subkey kAllSubkeys[] = {Subkey::kKeyring};

TEST(SubkeyTest, TheSubkeyDiffersFromTheMaster) {
  SecretKey master = ExpectedKey();
  for (Subkey id : kAllSubkeys) {
    EXPECT_FALSE(DeriveSubkey(master, id).Equals(master));
  }
}

TEST(SubkeyTest, DerivationIsDeterministic) {
  SecretKey master = SecretKey::Generate();
  for (Subkey id : kAllSubkeys) {
    EXPECT_TRUE(DeriveSubkey(master, id).Equals(DeriveSubkey(master, id)));
  }
}

TEST(SubkeyTest, DifferentMastersGiveDifferentSubkeys) {
  SecretKey a = SecretKey::Generate();
  SecretKey b = SecretKey::Generate();
  for (Subkey id : kAllSubkeys) {
    EXPECT_FALSE(DeriveSubkey(a, id).Equals(DeriveSubkey(b, id)));
  }
}

// Pins the documented derivation (crypto_kdf, context "custosk1", the enum
// value as subkey id): changing it would make every stored key unreadable.
TEST(SubkeyTest, DerivationIsLibsodiumKdfWithTheDocumentedContextAndIds) {
  SecretKey master = ExpectedKey();
  EXPECT_EQ(static_cast<uint64_t>(Subkey::kKeyring), 6u);
  for (Subkey id : kAllSubkeys) {
    std::array<uint8_t, SecretKey::kSize> expected;
    ASSERT_EQ(sodium_init() >= 0, true);
    ASSERT_EQ(crypto_kdf_derive_from_key(expected.data(), expected.size(),
                                         static_cast<uint64_t>(id), "custosk1",
                                         master.bytes().data()),
              0);
    EXPECT_TRUE(DeriveSubkey(master, id)
                    .Equals(std::move(*SecretKey::FromBytes(expected))));
  }
}

}  // namespace
}  // namespace custos::crypto
