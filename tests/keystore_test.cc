// The keystore: created once under a master key and refused under another,
// subject keys wrapped and unwrapped, destroyed keys unusable at once and
// recorded in the ledger, and their wrapped bytes gone from the files only
// after PurgeKeys. Against a real LevelDB in a temporary directory.

#include "storage/keystore.h"

#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/keyed_hash.h"
#include "crypto/secret_key.h"

namespace custos {
namespace {

// 2026-08-31T12:00:00Z.
Timestamp T0() {
  return Timestamp(std::chrono::sys_days(std::chrono::year(2026) /
                                         std::chrono::August / 31) +
                   std::chrono::hours(12));
}

SharedKey NewKey() {
  return std::make_shared<const crypto::SecretKey>(
      crypto::SecretKey::Generate());
}

crypto::Digest LedgerHash(uint8_t fill) {
  crypto::Digest hash;
  hash.fill(fill);
  return hash;
}

class KeystoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custos-keystore-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/keystore";
  }

  void TearDown() override {
    keystore_.reset();
    std::filesystem::remove_all(dir_);
  }

  Result<std::unique_ptr<Keystore>> OpenWith(const crypto::SecretKey& master,
                                             bool create_if_missing) {
    return Keystore::Open(path_, create_if_missing, master, T0(),
                          leveldb::Env::Default(), /*cache_capacity=*/16);
  }

  void Open() {
    auto opened = OpenWith(master_, true);
    ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
    keystore_ = std::move(*opened);
  }

  // How many files under the keystore directory contain `bytes`.
  int FilesContaining(const std::vector<uint8_t>& bytes) const {
    int found = 0;
    const std::string needle(bytes.begin(), bytes.end());
    for (const auto& entry : std::filesystem::directory_iterator(path_)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string contents((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
      if (contents.find(needle) != std::string::npos) ++found;
    }
    return found;
  }

  std::string dir_;
  std::string path_;
  crypto::SecretKey master_ = crypto::SecretKey::Generate();
  std::unique_ptr<Keystore> keystore_;
};

TEST_F(KeystoreTest, OpenCreatesAndReopensUnderTheSameMasterKey) {
  Open();
  ASSERT_TRUE(std::filesystem::exists(path_));
  ASSERT_TRUE(keystore_->PutKey("s-anna", NewKey()).has_value());
  keystore_.reset();

  auto reopened = OpenWith(master_, /*create_if_missing=*/false);
  ASSERT_TRUE(reopened.has_value()) << reopened.error().ToString();
  auto has = (*reopened)->HasKey("s-anna");
  ASSERT_TRUE(has.has_value());
  EXPECT_TRUE(*has);
}

TEST_F(KeystoreTest, ReopeningUnderAnotherMasterKeyIsFailedPrecondition) {
  Open();
  keystore_.reset();
  auto reopened = OpenWith(crypto::SecretKey::Generate(), true);
  ASSERT_FALSE(reopened.has_value());
  EXPECT_EQ(reopened.error().code(), StatusCode::kFailedPrecondition)
      << reopened.error().ToString();
  // The refusal changed nothing: the right key still opens it.
  auto again = OpenWith(master_, false);
  EXPECT_TRUE(again.has_value()) << again.error().ToString();
}

TEST_F(KeystoreTest, MissingKeystoreWithoutCreateIsNotFound) {
  auto opened = OpenWith(master_, /*create_if_missing=*/false);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().code(), StatusCode::kNotFound)
      << opened.error().ToString();
}

// A keystore that lost its format entry but holds a keyring is damaged,
// not new: it is refused, its keyring left as it was (helper-131: a new
// keyring was written over it, and every wrapped key was lost).
TEST_F(KeystoreTest, AKeystoreWithoutItsFormatEntryIsNotMadeNew) {
  Open();
  ASSERT_TRUE(keystore_->PutKey("s-anna", NewKey()).has_value());
  keystore_.reset();
  std::string keyring_before;
  {
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(
        db->Get(leveldb::ReadOptions(), "m:keyring", &keyring_before).ok());
    ASSERT_TRUE(db->Delete(leveldb::WriteOptions(), "m:format").ok());
  }
  for (bool create : {false, true}) {
    auto opened = OpenWith(master_, create);
    ASSERT_FALSE(opened.has_value()) << create;
    EXPECT_EQ(opened.error().code(), StatusCode::kDataLoss)
        << opened.error().ToString();
  }
  leveldb::DB* raw = nullptr;
  ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
  std::unique_ptr<leveldb::DB> db(raw);
  std::string keyring_after;
  ASSERT_TRUE(
      db->Get(leveldb::ReadOptions(), "m:keyring", &keyring_after).ok());
  EXPECT_EQ(keyring_after, keyring_before);
}

// Nor is an empty keystore of a store that exists made new (helper-132).
TEST_F(KeystoreTest, AnEmptyKeystoreIsMadeNewOnlyWhenAskedTo) {
  {
    leveldb::Options create;
    create.create_if_missing = true;
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(create, path_, &raw).ok());
    delete raw;
  }
  auto refused = OpenWith(master_, /*create_if_missing=*/false);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), StatusCode::kDataLoss)
      << refused.error().ToString();
  auto made = OpenWith(master_, /*create_if_missing=*/true);
  EXPECT_TRUE(made.has_value()) << made.error().ToString();
}

TEST_F(KeystoreTest, PutKeyThenGetKeyReturnsTheSameKeyBytes) {
  Open();
  SharedKey dek = NewKey();
  const std::vector<uint8_t> expected(dek->bytes().begin(), dek->bytes().end());
  ASSERT_TRUE(keystore_->PutKey("s-anna", dek).has_value());
  ASSERT_TRUE(keystore_->PutKey("s-ben", NewKey()).has_value());

  auto cached = keystore_->GetKey("s-anna");
  ASSERT_TRUE(cached.has_value()) << cached.error().ToString();
  ASSERT_NE(*cached, nullptr);
  EXPECT_TRUE(std::ranges::equal((*cached)->bytes(), expected));

  // Unwrapped from the stored bytes, not served from the cache.
  keystore_->ClearCache();
  ASSERT_EQ(keystore_->CachedKeyCount(), 0u);
  auto unwrapped = keystore_->GetKey("s-anna");
  ASSERT_TRUE(unwrapped.has_value()) << unwrapped.error().ToString();
  ASSERT_NE(*unwrapped, nullptr);
  EXPECT_NE(*unwrapped, dek);
  EXPECT_TRUE(std::ranges::equal((*unwrapped)->bytes(), expected));

  // And after a restart. Keys handed out must not outlive their Keystore
  // (they live in its key pool).
  cached->reset();
  unwrapped->reset();
  keystore_.reset();
  Open();
  auto reopened = keystore_->GetKey("s-anna");
  ASSERT_TRUE(reopened.has_value()) << reopened.error().ToString();
  ASSERT_NE(*reopened, nullptr);
  EXPECT_TRUE(std::ranges::equal((*reopened)->bytes(), expected));
  auto other = keystore_->GetKey("s-ben");
  ASSERT_TRUE(other.has_value());
  ASSERT_NE(*other, nullptr);
  EXPECT_FALSE((*other)->Equals(**reopened));
}

// The shred intent goes in the key's destruction batch, survives a reopen,
// reads back as written, and goes with DropShredIntents; a destruction
// without one (the keystore's own tests, a bucket key) writes none.
TEST_F(KeystoreTest, AShredIntentIsWrittenWithTheKeysDestructionAndDropped) {
  Open();
  ASSERT_TRUE(keystore_->PutKey("s-anna", NewKey()).has_value());
  ASSERT_TRUE(keystore_->PutKey("s-ben", NewKey()).has_value());
  const Timestamp at = T0() + std::chrono::seconds(7);
  ASSERT_TRUE(keystore_
                  ->DestroyKey("s-anna", LedgerHash(1), at, "admin-1",
                               std::string_view("ew:witness"))
                  .ok());
  ASSERT_TRUE(
      keystore_->DestroyKey("s-ben", LedgerHash(2), at, "admin-1").ok());
  keystore_.reset();
  Open();
  auto intents = keystore_->ShredIntents();
  ASSERT_TRUE(intents.has_value()) << intents.error().ToString();
  ASSERT_EQ(intents->size(), 1u);
  EXPECT_EQ((*intents)[0].first, "s-anna");
  EXPECT_EQ((*intents)[0].second.at_micros, ToMicros(at));
  EXPECT_EQ((*intents)[0].second.witness, "ew:witness");
  EXPECT_EQ((*intents)[0].second.by, "admin-1");

  ASSERT_TRUE(keystore_->DropShredIntents({"s-anna"}).ok());
  intents = keystore_->ShredIntents();
  ASSERT_TRUE(intents.has_value());
  EXPECT_TRUE(intents->empty());
}

TEST_F(KeystoreTest, AMalformedShredIntentIsDataLoss) {
  Open();
  keystore_.reset();
  {
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), path_, &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), "i:s-anna", "short").ok());
  }
  Open();
  EXPECT_EQ(keystore_->ShredIntents().error().code(), StatusCode::kDataLoss);
}

TEST_F(KeystoreTest, GetKeyOfAnUnknownSubjectIsNull) {
  Open();
  ASSERT_TRUE(keystore_->PutKey("s-anna", NewKey()).has_value());
  auto key = keystore_->GetKey("s-nobody");
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
  EXPECT_EQ(*key, nullptr);
  auto has = keystore_->HasKey("s-nobody");
  ASSERT_TRUE(has.has_value());
  EXPECT_FALSE(*has);
  auto wrapped = keystore_->WrappedBytes("s-nobody");
  ASSERT_TRUE(wrapped.has_value());
  EXPECT_EQ(*wrapped, std::nullopt);
}

TEST_F(KeystoreTest, DestroyKeyEvictsAtOnceAndRecordsTheLedgerHash) {
  Open();
  ASSERT_TRUE(keystore_->PutKey("s-anna", NewKey()).has_value());
  ASSERT_TRUE(keystore_->PutKey("s-ben", NewKey()).has_value());
  auto before = keystore_->GetKey("s-anna");
  ASSERT_TRUE(before.has_value());
  ASSERT_NE(*before, nullptr);
  ASSERT_EQ(keystore_->CachedKeyCount(), 2u);
  const crypto::Digest hash = LedgerHash(0x42);
  auto in_ledger = keystore_->InLedger(hash);
  ASSERT_TRUE(in_ledger.has_value());
  ASSERT_FALSE(*in_ledger);

  Status destroyed = keystore_->DestroyKey("s-anna", hash, T0(), "officer");
  ASSERT_TRUE(destroyed.ok()) << destroyed.ToString();

  EXPECT_EQ(keystore_->CachedKeyCount(), 1u);
  auto after = keystore_->GetKey("s-anna");
  ASSERT_TRUE(after.has_value()) << after.error().ToString();
  EXPECT_EQ(*after, nullptr);
  auto has = keystore_->HasKey("s-anna");
  ASSERT_TRUE(has.has_value());
  EXPECT_FALSE(*has);
  in_ledger = keystore_->InLedger(hash);
  ASSERT_TRUE(in_ledger.has_value());
  EXPECT_TRUE(*in_ledger);
  in_ledger = keystore_->InLedger(LedgerHash(0x43));
  ASSERT_TRUE(in_ledger.has_value());
  EXPECT_FALSE(*in_ledger);

  // The other subject is untouched.
  auto ben = keystore_->GetKey("s-ben");
  ASSERT_TRUE(ben.has_value());
  EXPECT_NE(*ben, nullptr);

  // Durable: still destroyed and in the ledger after a restart. Keys handed
  // out must not outlive their Keystore (they live in its key pool).
  before->reset();
  ben->reset();
  keystore_.reset();
  Open();
  after = keystore_->GetKey("s-anna");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(*after, nullptr);
  in_ledger = keystore_->InLedger(hash);
  ASSERT_TRUE(in_ledger.has_value());
  EXPECT_TRUE(*in_ledger);
}

TEST_F(KeystoreTest, WrappedBytesStayInTheFilesUntilPurgeKeys) {
  Open();
  ASSERT_TRUE(keystore_->PutKey("s-anna", NewKey()).has_value());
  ASSERT_TRUE(keystore_->PutKey("s-ben", NewKey()).has_value());
  auto anna = keystore_->WrappedBytes("s-anna");
  ASSERT_TRUE(anna.has_value()) << anna.error().ToString();
  ASSERT_TRUE(anna->has_value());
  const std::vector<uint8_t> anna_bytes = **anna;
  auto ben = keystore_->WrappedBytes("s-ben");
  ASSERT_TRUE(ben.has_value() && ben->has_value());
  const std::vector<uint8_t> ben_bytes = **ben;
  ASSERT_GE(anna_bytes.size(), 32u);
  ASSERT_GE(FilesContaining(anna_bytes), 1);

  ASSERT_TRUE(
      keystore_->DestroyKey("s-anna", LedgerHash(1), T0(), "officer").ok());
  auto gone = keystore_->WrappedBytes("s-anna");
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(*gone, std::nullopt);
  // Destroyed, but its bytes have not left the files yet.
  EXPECT_GE(FilesContaining(anna_bytes), 1);

  Status purged = keystore_->PurgeKeys({"s-anna"});
  ASSERT_TRUE(purged.ok()) << purged.ToString();
  EXPECT_EQ(FilesContaining(anna_bytes), 0);
  // A live key outside (and inside) nothing else was purged.
  auto ben_after = keystore_->GetKey("s-ben");
  ASSERT_TRUE(ben_after.has_value());
  EXPECT_NE(*ben_after, nullptr);
  keystore_->ClearCache();
  ben_after = keystore_->GetKey("s-ben");
  ASSERT_TRUE(ben_after.has_value()) << ben_after.error().ToString();
  EXPECT_NE(*ben_after, nullptr);
  EXPECT_GE(FilesContaining(ben_bytes), 1);
}

TEST_F(KeystoreTest, PurgeKeysLeavesALiveKeyInTheRangeAlone) {
  Open();
  SharedKey dek = NewKey();
  ASSERT_TRUE(keystore_->PutKey("s-anna", dek).has_value());
  ASSERT_TRUE(keystore_->PutKey("s-ben", NewKey()).has_value());
  ASSERT_TRUE(
      keystore_->DestroyKey("s-ben", LedgerHash(2), T0(), "officer").ok());
  ASSERT_TRUE(keystore_->PurgeKeys({"s-anna", "s-ben"}).ok());
  keystore_->ClearCache();
  auto anna = keystore_->GetKey("s-anna");
  ASSERT_TRUE(anna.has_value()) << anna.error().ToString();
  ASSERT_NE(*anna, nullptr);
  EXPECT_TRUE((*anna)->Equals(*dek));
}

}  // namespace
}  // namespace custos
