// The records database's one write path: Apply/Commit write a change and
// its access-history events together, concurrent commits share their
// fsyncs (group commit), a failed sync fails every waiter of its group and
// every later change (sticky), and sync_writes=false syncs only on request.
// Against a real LevelDB in a temporary directory.

#include "storage/store.h"

#include <gtest/gtest.h>
#include <leveldb/env.h>
#include <leveldb/write_batch.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/secret_key.h"
#include "storage/history.h"
#include "storage/keys.h"
#include "storage/log_sync_env.h"
#include "storage/options.h"

namespace custos {
namespace {

// 2026-08-31T12:00:00Z.
Timestamp T0() {
  return Timestamp(std::chrono::sys_days(std::chrono::year(2026) /
                                         std::chrono::August / 31) +
                   std::chrono::hours(12));
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custos-store-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    subject_key_ = std::make_shared<const crypto::SecretKey>(
        crypto::SecretKey::Generate());
  }

  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void OpenStore(bool sync_writes, const LevelDbTuning& tuning = {}) {
    Options options;
    options.data_dir = dir_;
    options.clock = &clock_;
    options.sync_writes = sync_writes;
    options.records_db = tuning;
    records_env_.SyncBefore(&keystore_env_);
    auto store = Store::Open(options, records_env_);
    ASSERT_TRUE(store.has_value()) << store.error().ToString();
    store_ = std::move(*store);
    ASSERT_TRUE(store_->is_new());
    leveldb::WriteBatch init;
    Status initialized = store_->Initialize(init, clock_.Now());
    ASSERT_TRUE(initialized.ok()) << initialized.ToString();
    SharedKey key = subject_key_;
    Status opened = store_->OpenHistory(
        crypto::SecretKey::Generate(),
        [key](const std::string&) -> Result<SharedKey> { return key; });
    ASSERT_TRUE(opened.ok()) << opened.ToString();
  }

  Event MakeEvent(uint64_t record_id, std::string subject_id) const {
    Event event;
    event.at = clock_.Now();
    event.principal_id = "p-writer";
    event.principal_name = "Writer";
    event.action = EventAction::kCreate;
    event.record_id = record_id;
    event.record_kind = "note";
    event.subject_ids.push_back(std::move(subject_id));
    return event;
  }

  // Commits key=value with one event about `subject_id`.
  Status CommitOne(const std::string& key, const std::string& value,
                   uint64_t record_id, const std::string& subject_id) {
    leveldb::WriteBatch batch;
    batch.Put(key, value);
    return store_->Commit(store_->Lock(), batch,
                          {MakeEvent(record_id, subject_id)}, "test commit");
  }

  std::optional<std::string> GetOrDie(std::string_view key) {
    auto value = store_->Get(key);
    EXPECT_TRUE(value.has_value()) << value.error().ToString();
    if (!value) return std::nullopt;
    return *value;
  }

  // Writes 512 values of 1 KiB straight to the records database, then
  // closes the store (LevelDB finishes writing any table first) and returns
  // the contents of its table files.
  std::vector<std::string> WriteHalfAMebibyteAndClose() {
    const std::string value(1024, 'v');
    for (uint64_t i = 1; i <= 512; ++i) {
      EXPECT_TRUE(store_->db()
                      .Put(leveldb::WriteOptions(), keys::Record(i), value)
                      .ok());
    }
    store_.reset();
    std::vector<std::string> tables;
    for (const auto& entry :
         std::filesystem::directory_iterator(dir_ + "/records")) {
      if (entry.path().extension() != ".ldb") continue;
      std::ifstream in(entry.path(), std::ios::binary);
      tables.emplace_back(std::istreambuf_iterator<char>(in),
                          std::istreambuf_iterator<char>());
    }
    return tables;
  }

  std::string dir_;
  ManualClock clock_{T0()};
  LogSyncEnv records_env_{leveldb::Env::Default()};
  LogSyncEnv keystore_env_{leveldb::Env::Default()};
  SharedKey subject_key_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, CommitWritesTheBatchAndItsEventsTogether) {
  OpenStore(/*sync_writes=*/true);
  ASSERT_EQ(store_->history().head().last_seq, 0u);

  leveldb::WriteBatch batch;
  batch.Put(keys::Record(7), "record seven");
  batch.Put(keys::Subject("s-anna"), "anna");
  Status committed = store_->Commit(store_->Lock(), batch,
                                    {MakeEvent(7, "s-anna")}, "create record");
  ASSERT_TRUE(committed.ok()) << committed.ToString();

  EXPECT_EQ(GetOrDie(keys::Record(7)), "record seven");
  EXPECT_EQ(GetOrDie(keys::Subject("s-anna")), "anna");
  EXPECT_TRUE(GetOrDie(keys::Event(1)).has_value());
  EXPECT_EQ(store_->history().head().last_seq, 1u);

  auto page = store_->history().Scan(0, 10);
  ASSERT_TRUE(page.has_value()) << page.error().ToString();
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].header.seq, 1u);
  EXPECT_EQ(page->entries[0].header.record_id, 7u);
  EXPECT_EQ(page->entries[0].header.action, EventAction::kCreate);
  EXPECT_EQ(page->entries[0].sealed_parts, 1u);
  EXPECT_EQ(store_->TEST_WriteCount(), 1u);
  EXPECT_EQ(store_->TEST_SyncCount(), 1u);
}

TEST_F(StoreTest, ConcurrentCommitsShareSyncsAndFormOneChain) {
  OpenStore(/*sync_writes=*/true);
  constexpr int kThreads = 16;
  constexpr int kCommitsPerThread = 50;
  constexpr uint64_t kTotal = kThreads * kCommitsPerThread;

  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCommitsPerThread; ++i) {
        const uint64_t id = static_cast<uint64_t>(t * kCommitsPerThread + i);
        Status s = CommitOne(keys::Record(id + 1), 'v' + std::to_string(id),
                             id + 1, "s-" + std::to_string(t));
        if (!s.ok()) {
          ++failures;
          ADD_FAILURE() << "commit " << id << ": " << s.ToString();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);

  for (uint64_t id = 0; id < kTotal; ++id) {
    EXPECT_EQ(GetOrDie(keys::Record(id + 1)), 'v' + std::to_string(id))
        << "record " << id + 1;
  }
  EXPECT_EQ(store_->history().head().last_seq, kTotal);
  auto report = store_->history().Verify();
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_TRUE(report->ok())
      << ChainProblemName(report->problem) << " at " << report->first_broken;
  EXPECT_EQ(report->first_seq, 1u);
  EXPECT_EQ(report->verified, kTotal);
  EXPECT_EQ(report->head_seq, kTotal);

  const uint64_t writes = store_->TEST_WriteCount();
  const uint64_t syncs = store_->TEST_SyncCount();
  std::cout << "writes=" << writes << " syncs=" << syncs << "\n";
  EXPECT_EQ(writes, kTotal);
  EXPECT_GE(syncs, 1u);
  EXPECT_LT(syncs, writes);
}

// Threads commit in a loop; once some commits are durable, the next sync is
// made to fail. Every commit that reported OK is present; every failure is
// the injected error; once a thread saw the error, every later commit of
// that thread fails with it, and so does any commit after all threads end.
TEST_F(StoreTest, FailedSyncFailsItsWholeGroupAndEveryLaterCommit) {
  OpenStore(/*sync_writes=*/true);
  constexpr int kThreads = 8;
  constexpr uint64_t kMaxCommitsPerThread = 100000;
  constexpr int kCommitsAfterFailure = 3;
  constexpr int kCommitsBeforeInjection = 40;

  struct Outcome {
    uint64_t id;
    Status status;
  };
  std::vector<std::vector<Outcome>> outcomes(kThreads);
  std::atomic<int> completed{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      int after_failure = -1;
      // Keep going until the failure has been injected and seen (bounded,
      // so a store that never fails ends the test instead of hanging it).
      for (uint64_t n = 0; n < kMaxCommitsPerThread; ++n) {
        const uint64_t id =
            static_cast<uint64_t>(t) * kMaxCommitsPerThread + n + 1;
        Status s = CommitOne(keys::Record(id), "v", id, "s-x");
        outcomes[t].push_back({id, s});
        ++completed;
        if (!s.ok() && after_failure < 0) after_failure = 0;
        if (after_failure >= 0 && after_failure++ == kCommitsAfterFailure) {
          break;
        }
      }
    });
  }
  while (completed.load() < kCommitsBeforeInjection) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  store_->TEST_FailNextSync(Status::Internal("disk on fire"));
  for (auto& thread : threads) thread.join();

  int succeeded = 0, failed = 0;
  for (int t = 0; t < kThreads; ++t) {
    bool seen_failure = false;
    for (const Outcome& outcome : outcomes[t]) {
      if (outcome.status.ok()) {
        EXPECT_FALSE(seen_failure)
            << "thread " << t << ": commit " << outcome.id
            << " succeeded after the sticky failure";
        ++succeeded;
        EXPECT_EQ(GetOrDie(keys::Record(outcome.id)), "v")
            << "acknowledged commit " << outcome.id << " is missing";
      } else {
        seen_failure = true;
        ++failed;
        EXPECT_EQ(outcome.status.code(), StatusCode::kInternal)
            << outcome.status.ToString();
        EXPECT_EQ(outcome.status.message(), "disk on fire");
      }
    }
    EXPECT_TRUE(seen_failure) << "thread " << t << " never saw the failure";
  }
  std::cout << "succeeded=" << succeeded << " failed=" << failed
            << " syncs=" << store_->TEST_SyncCount() << "\n";
  EXPECT_GE(succeeded, kCommitsBeforeInjection);
  ASSERT_GE(failed, 1);

  Status later = CommitOne("later", "v", 1, "s-x");
  EXPECT_EQ(later.code(), StatusCode::kInternal) << later.ToString();
  EXPECT_EQ(later.message(), "disk on fire");
  EXPECT_EQ(GetOrDie("later"), std::nullopt);
}

// Every waiter of the failing group gets the error, not only its leader:
// several changes are applied first, then each waits for durability.
TEST_F(StoreTest, FailedSyncIsReportedToEveryWaiterOfItsGroup) {
  OpenStore(/*sync_writes=*/true);
  constexpr int kWaiters = 6;
  std::vector<Store::Ticket> tickets;
  for (int i = 0; i < kWaiters; ++i) {
    leveldb::WriteBatch batch;
    batch.Put(keys::Record(i + 1), "v");
    WriteLock lock = store_->Lock();
    auto ticket =
        store_->Apply(lock, batch, {MakeEvent(i + 1, "s-x")}, "apply");
    ASSERT_TRUE(ticket.has_value()) << ticket.error().ToString();
    EXPECT_TRUE(ticket->sync);
    tickets.push_back(*ticket);
  }
  store_->TEST_FailNextSync(Status::Internal("disk on fire"));

  std::vector<Status> results(kWaiters);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = store_->WaitDurable(tickets[i]); });
  }
  for (auto& thread : threads) thread.join();
  for (int i = 0; i < kWaiters; ++i) {
    EXPECT_EQ(results[i].code(), StatusCode::kInternal)
        << "waiter " << i << ": " << results[i].ToString();
    EXPECT_EQ(results[i].message(), "disk on fire");
  }
  // One failed sync ended the group; nobody retried behind it.
  EXPECT_EQ(store_->TEST_SyncCount(), 1u);
  EXPECT_EQ(store_->WaitDurable(tickets[0]).code(), StatusCode::kInternal);
}

TEST_F(StoreTest, InvalidEventLeavesBatchUnwrittenAndHeadUnmoved) {
  OpenStore(/*sync_writes=*/true);
  ASSERT_TRUE(CommitOne(keys::Record(1), "first", 1, "s-a").ok());
  const History::Head before = store_->history().head();
  ASSERT_EQ(before.last_seq, 1u);
  const uint64_t writes_before = store_->TEST_WriteCount();

  leveldb::WriteBatch batch;
  batch.Put(keys::Record(2), "second");
  Event bad = MakeEvent(2, "s-a");
  bad.principal_id.clear();
  Status s = store_->Commit(store_->Lock(), batch, {bad}, "create record");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();

  EXPECT_EQ(GetOrDie(keys::Record(2)), std::nullopt);
  EXPECT_EQ(GetOrDie(keys::Event(2)), std::nullopt);
  const History::Head after = store_->history().head();
  EXPECT_EQ(after.last_seq, before.last_seq);
  EXPECT_EQ(after.link, before.link);
  EXPECT_EQ(store_->TEST_WriteCount(), writes_before);

  // A refused change is not a store failure: the next one goes through and
  // takes the sequence number the refused one did not use.
  ASSERT_TRUE(CommitOne(keys::Record(3), "third", 3, "s-a").ok());
  EXPECT_EQ(store_->history().head().last_seq, 2u);
  auto report = store_->history().Verify();
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->verified, 2u);
}

TEST_F(StoreTest, ScanRespectsPrefixStartAndStop) {
  OpenStore(/*sync_writes=*/false);
  leveldb::WriteBatch batch;
  for (const char* key : {"t:a", "t:b", "t:c", "t:d", "u:a", "s:z"}) {
    batch.Put(key, std::string("v-") + key);
  }
  ASSERT_TRUE(store_->Commit(store_->Lock(), batch, {}, "fill").ok());

  auto collect = [&](std::string_view prefix, std::string_view start,
                     size_t stop_after) {
    std::vector<std::string> seen;
    Status s = store_->Scan(prefix, start,
                            [&](std::string_view key, std::string_view value) {
                              EXPECT_EQ(value, "v-" + std::string(key));
                              seen.emplace_back(key);
                              return seen.size() < stop_after;
                            });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return seen;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(collect("t:", "", 100), (V{"t:a", "t:b", "t:c", "t:d"}));
  EXPECT_EQ(collect("t:", "t:b", 100), (V{"t:b", "t:c", "t:d"}));
  EXPECT_EQ(collect("t:", "t:bb", 100), (V{"t:c", "t:d"}));
  EXPECT_EQ(collect("t:", "", 2), (V{"t:a", "t:b"}));
  EXPECT_EQ(collect("t:", "t:c", 1), (V{"t:c"}));
  EXPECT_EQ(collect("u:", "", 100), (V{"u:a"}));
  EXPECT_EQ(collect("v:", "", 100), V{});
  // Regression: a start that sorts before the prefix starts at the prefix
  // (it used to end the scan at once, on "s:z").
  EXPECT_EQ(collect("t:", "s:", 100), (V{"t:a", "t:b", "t:c", "t:d"}));
}

TEST_F(StoreTest, LastKeyIsTheGreatestKeyOfThePrefixFromAStart) {
  OpenStore(/*sync_writes=*/false);
  leveldb::WriteBatch batch;
  const std::string ff_prefix = "w\xff";
  for (const std::string& key :
       {std::string("t:a"), std::string("t:b"), std::string("t:c"),
        std::string("t;"), std::string("u:a"), ff_prefix + "a",
        ff_prefix + "b"}) {
    batch.Put(key, "");
  }
  ASSERT_TRUE(store_->Commit(store_->Lock(), batch, {}, "fill").ok());
  auto last = [&](std::string_view prefix, std::string_view from) {
    auto key = store_->LastKey(prefix, from);
    EXPECT_TRUE(key.has_value()) << key.error().ToString();
    return key ? key->value_or("(none)") : "(error)";
  };
  EXPECT_EQ(last("t:", ""), "t:c");  // Not "t;", the next key after.
  EXPECT_EQ(last("t:", "t:c"), "t:c");
  EXPECT_EQ(last("t:", "t:cc"), "(none)");
  EXPECT_EQ(last("t:", "a"), "t:c");  // A start before the prefix.
  EXPECT_EQ(last("u:", ""), "u:a");   // The next key is another family's.
  EXPECT_EQ(last("v:", ""), "(none)");
  EXPECT_EQ(last(ff_prefix, ""), ff_prefix + "b");  // No key after it.
  // Deleted keys are not there; the ones before them are.
  leveldb::WriteBatch deletes;
  deletes.Delete("t:c");
  deletes.Delete("t:b");
  ASSERT_TRUE(store_->Commit(store_->Lock(), deletes, {}, "delete").ok());
  EXPECT_EQ(last("t:", ""), "t:a");
  EXPECT_EQ(last("t:", "t:b"), "(none)");
}

TEST_F(StoreTest, WithoutSyncWritesOnlyForcedCommitsSync) {
  OpenStore(/*sync_writes=*/false);
  leveldb::WriteBatch first;
  first.Put(keys::Record(1), "one");
  ASSERT_TRUE(
      store_->Commit(store_->Lock(), first, {MakeEvent(1, "s-a")}, "w").ok());
  EXPECT_EQ(store_->TEST_WriteCount(), 1u);
  EXPECT_EQ(store_->TEST_SyncCount(), 0u);

  {
    leveldb::WriteBatch batch;
    batch.Put(keys::Record(2), "two");
    WriteLock lock = store_->Lock();
    auto ticket = store_->Apply(lock, batch, {}, "w");
    lock.Unlock();
    ASSERT_TRUE(ticket.has_value());
    EXPECT_FALSE(ticket->sync);
    EXPECT_TRUE(store_->WaitDurable(*ticket).ok());
    EXPECT_EQ(store_->TEST_SyncCount(), 0u);
  }

  leveldb::WriteBatch forced;
  forced.Put(keys::Record(3), "three");
  ASSERT_TRUE(store_
                  ->Commit(store_->Lock(), forced, {MakeEvent(3, "s-a")}, "w",
                           /*force_sync=*/true)
                  .ok());
  EXPECT_EQ(store_->TEST_WriteCount(), 3u);
  EXPECT_EQ(store_->TEST_SyncCount(), 1u);
  EXPECT_EQ(GetOrDie(keys::Record(3)), "three");
}

// Options::records_db reaches LevelDB: with a 64 KiB write buffer, half a
// mebibyte of writes leaves tables...
TEST_F(StoreTest, ASmallWriteBufferReachesTheRecordsDatabase) {
  LevelDbTuning tuning;
  tuning.write_buffer_size = size_t{64} << 10;
  OpenStore(/*sync_writes=*/false, tuning);
  EXPECT_GE(WriteHalfAMebibyteAndClose().size(), 2u);
}

// ... and with a 4 MiB one (LevelDB's default) the same writes stay in the
// memtable and its log: no table.
TEST_F(StoreTest, A4MiBWriteBufferKeepsHalfAMebibyteInTheLog) {
  LevelDbTuning tuning;
  tuning.write_buffer_size = size_t{4} << 20;
  OpenStore(/*sync_writes=*/false, tuning);
  EXPECT_TRUE(WriteHalfAMebibyteAndClose().empty());
}

}  // namespace
}  // namespace custos
