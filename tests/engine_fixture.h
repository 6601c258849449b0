// A real engine in a fresh temporary directory, with an injected clock and
// a few principals, for the storage tests.

#ifndef CUSTOS_TESTS_ENGINE_FIXTURE_H_
#define CUSTOS_TESTS_ENGINE_FIXTURE_H_

#include <gtest/gtest.h>
#include <leveldb/db.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "crypto/secret_key.h"
#include "storage/codec.h"
#include "storage/engine.h"
#include "storage/keys.h"
#include "storage/keystore.h"
#include "storage/policies.h"

namespace custos::testing {

// y-m-d at h:00 UTC.
inline Timestamp At(int y, unsigned m, unsigned d, int h = 12) {
  return Timestamp(
      std::chrono::sys_days(std::chrono::year(y) / std::chrono::month(m) /
                            std::chrono::day(d)) +
      std::chrono::hours(h));
}

// 2026-08-31T12:00:00Z.
inline Timestamp TestEpoch() { return At(2026, 8, 31); }

// Options as Custos opens its databases: no block compression, so that a
// raw open that rewrites the log into a table keeps the bytes verbatim.
inline leveldb::Options RawOptions() {
  leveldb::Options o;
  o.compression = leveldb::kNoCompression;
  return o;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custos-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    master_bytes_ = crypto::SecretKey::Generate();
    Reopen();
    auto admin = engine_->BootstrapAdmin("admin", "Administrator");
    ASSERT_TRUE(admin.has_value()) << admin.error().ToString();
    admin_token_ = admin->token;
    admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
    owner_ = AddPrincipal("authority-a", {Role::kUser});
    grantee_ = AddPrincipal("authority-b", {Role::kUser});
    stranger_ = AddPrincipal("authority-c", {Role::kUser});
    officer_ = AddPrincipal("officer", {Role::kOfficer});
    auditor_ = AddPrincipal("auditor", {Role::kAuditor});
  }

  void TearDown() override {
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }

  Options MakeOptions() {
    Options options;
    options.data_dir = dir_;
    options.clock = &clock_;
    options.sync_writes = false;  // Durability is not under test here.
    return options;
  }

  crypto::SecretKey MasterKey() {
    return *crypto::SecretKey::FromBytes(master_bytes_.bytes());
  }

  void Reopen() {
    engine_.reset();
    auto engine = Engine::Open(MakeOptions(), MasterKey());
    ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
    engine_ = std::move(*engine);
  }

  void Close() { engine_.reset(); }

  // Reopens the engine with `options` (MakeOptions() with changes: an
  // Options::env from tests/fault_env.h, say; it must outlive the engine).
  void ReopenWith(const Options& options) {
    engine_.reset();
    auto engine = Engine::Open(options, MasterKey());
    ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
    engine_ = std::move(*engine);
  }

  // Reopens the engine on `clock` (a HookClock over clock_, say) instead of
  // clock_. The caller keeps `clock` alive until the engine is closed.
  void ReopenWithClock(const Clock& clock) {
    engine_.reset();
    Options options = MakeOptions();
    options.clock = &clock;
    auto engine = Engine::Open(options, MasterKey());
    ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
    engine_ = std::move(*engine);
  }

  std::unique_ptr<Actor> AddPrincipal(const std::string& id,
                                      std::vector<Role> roles,
                                      bool redacted = false) {
    auto created =
        engine_->CreatePrincipal(*admin_, id, "Name of " + id, roles, redacted);
    EXPECT_TRUE(created.has_value()) << created.error().ToString();
    return std::make_unique<Actor>(*engine_->ActorFor(id));
  }

  // A record owned by owner_, granted to `grants`, about one subject.
  uint64_t CreateRecord(const std::string& identifier = "anna@example.org",
                        std::vector<std::string> grants = {},
                        bool sensitive = false) {
    NewRecord r;
    r.kind = "request";
    r.attributes = {{"country", "AT"}, {"type", "license"}};
    r.personal = {{identifier, {{"name", "Anna Example"}, {"born", "1980"}}}};
    r.grants = std::move(grants);
    r.sensitive = sensitive;
    auto id = engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(id.has_value()) << id.error().ToString();
    return id.value_or(0);
  }

  // A sweep as admin_ as of the clock's now, which must succeed; its
  // report.
  SweepReport SweepNow() {
    SweepOptions options;
    options.as_of = clock_.Now();
    auto report = engine_->Sweep(*admin_, options);
    EXPECT_TRUE(report.has_value()) << report.error().ToString();
    return report.value_or(SweepReport{});
  }

  static Purpose APurpose() {
    return {PurposeKind::kPublicInterest, "court order 12/2026"};
  }

  // Opens one of the store's LevelDBs ("records" or "keystore") directly,
  // for tests that inspect or tamper with stored bytes; null (and a test
  // failure) if it cannot. REQUIRES: the engine is closed.
  std::unique_ptr<leveldb::DB> OpenRaw(const std::string& name) {
    leveldb::DB* raw = nullptr;
    leveldb::Status s =
        leveldb::DB::Open(RawOptions(), dir_ + "/" + name, &raw);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return std::unique_ptr<leveldb::DB>(raw);
  }

  // Writes `value` under `key` in the records database, as someone with
  // the files but no key could, the engine closed; then reopens it.
  void WriteRaw(const std::string& key, const std::string& value) {
    Close();
    {
      std::unique_ptr<leveldb::DB> db = OpenRaw("records");
      ASSERT_NE(db, nullptr);
      ASSERT_TRUE(db->Put(leveldb::WriteOptions(), key, value).ok());
    }
    Reopen();
  }
  // The same, deleting `key`.
  void DeleteRaw(const std::string& key) {
    Close();
    {
      std::unique_ptr<leveldb::DB> db = OpenRaw("records");
      ASSERT_NE(db, nullptr);
      ASSERT_TRUE(db->Delete(leveldb::WriteOptions(), key).ok());
    }
    Reopen();
  }
  // Stores `policy` as someone without the key could: encoded, without the
  // MAC the engine adds (WriteRaw).
  void ForgePolicy(const RetentionPolicy& policy) {
    WriteRaw(keys::Policy(policy.kind), codec::EncodePolicy(policy));
  }

  // The shipped policy of `kind` (DefaultPolicies()); a test failure, and
  // an empty policy, if there is none.
  static RetentionPolicy ShippedPolicy(const std::string& kind) {
    for (const RetentionPolicy& p : DefaultPolicies()) {
      if (p.kind == kind) return p;
    }
    ADD_FAILURE() << "no shipped policy of kind " << kind;
    return {};
  }

  // The stored value of `policy` as the engine writes it (encoded, with its
  // MAC under the keyring's ledger key), for tests that write a policy no
  // build would (SetPolicy refuses it). REQUIRES: the engine is closed.
  std::string StoredPolicy(const RetentionPolicy& policy) {
    auto keystore = Keystore::Open(dir_ + "/keystore", false, MasterKey(),
                                   clock_.Now(), leveldb::Env::Default(), 1);
    EXPECT_TRUE(keystore.has_value()) << keystore.error().ToString();
    if (!keystore) return {};
    return Policies::StoredValue((*keystore)->keyring().ledger(), policy);
  }

  // How many keys of `db` start with `prefix`.
  static int CountKeys(leveldb::DB& db, std::string_view prefix) {
    std::unique_ptr<leveldb::Iterator> it(
        db.NewIterator(leveldb::ReadOptions()));
    int n = 0;
    for (it->Seek(leveldb::Slice(prefix.data(), prefix.size()));
         it->Valid() &&
         it->key().starts_with(leveldb::Slice(prefix.data(), prefix.size()));
         it->Next()) {
      ++n;
    }
    return n;
  }

  // Every byte of every file under `path`, concatenated.
  static std::string ReadAllFiles(const std::string& path) {
    std::string all;
    for (const auto& entry :
         std::filesystem::recursive_directory_iterator(path)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      all.append(std::istreambuf_iterator<char>(in), {});
    }
    return all;
  }

  ManualClock clock_{TestEpoch()};
  std::string dir_;
  crypto::SecretKey master_bytes_ = crypto::SecretKey::Generate();
  std::unique_ptr<Engine> engine_;
  std::string admin_token_;
  std::unique_ptr<Actor> admin_, owner_, grantee_, stranger_, officer_,
      auditor_;
};

}  // namespace custos::testing

#endif  // CUSTOS_TESTS_ENGINE_FIXTURE_H_
