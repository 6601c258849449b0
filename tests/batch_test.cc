// Engine::CreateRecords and Engine::GetRecords (issue 12, batch forms): one
// write for a batch, all or nothing, one answer per id.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "storage/engine.h"
#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

class BatchTest : public EngineTest {
 protected:
  static NewRecord Request(const std::string& identifier,
                           const std::string& name) {
    NewRecord r;
    r.kind = "request";
    r.attributes = {{"country", "AT"}};
    r.personal = {{identifier, {{"name", name}}}};
    return r;
  }

  // Makes the first caller to reach the head of the create queue wait
  // (at most 30 s) until `callers` creates are queued, itself included;
  // counts the heads in `heads`.
  void HoldTheFirstHeadUntilQueued(std::atomic<int>& heads, size_t callers) {
    engine_->TEST_SetBeforeCreateGroup([this, &heads, callers] {
      if (heads.fetch_add(1) != 0) return;
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (engine_->TEST_QueuedCreates() < callers &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }

  // The events of `action` in the history of `subject_id`.
  int CountEvents(const std::string& subject_id, const std::string& action) {
    auto history = engine_->AccessHistory(*auditor_, subject_id,
                                          Timestamp::min(), Timestamp::max());
    EXPECT_TRUE(history.has_value()) << history.error().ToString();
    int n = 0;
    if (history) {
      for (const AccessEvent& e : history->events) n += e.action == action;
    }
    return n;
  }

  // The records owner_ may list, by id.
  std::vector<uint64_t> OwnedIds() {
    ListQuery q;
    auto page = engine_->ListRecords(*owner_, q);
    EXPECT_TRUE(page.has_value()) << page.error().ToString();
    std::vector<uint64_t> ids;
    if (page) {
      for (const RecordView& v : page->records) ids.push_back(v.id);
    }
    return ids;
  }
};

TEST_F(BatchTest, CreateRecordsWritesTheWholeBatchInOneWrite) {
  std::vector<NewRecord> batch = {Request("anna@example.org", "Anna"),
                                  Request("ben@example.org", "Ben"),
                                  Request("anna@example.org", "Anna again")};
  batch[1].grants = {"authority-b"};
  const uint64_t writes_before = engine_->TEST_WriteCount();
  auto ids = engine_->CreateRecords(*owner_, batch);
  ASSERT_TRUE(ids.has_value()) << ids.error().ToString();
  EXPECT_EQ(engine_->TEST_WriteCount() - writes_before, 1u);
  ASSERT_EQ(ids->size(), 3u);
  EXPECT_EQ((*ids)[1], (*ids)[0] + 1);
  EXPECT_EQ((*ids)[2], (*ids)[0] + 2);

  auto second = engine_->GetRecord(*grantee_, (*ids)[1]);
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  ASSERT_EQ(second->parts.size(), 1u);
  EXPECT_EQ(second->parts[0].fields[0].value, "Ben");
  // Anna, new to the store and named twice in one batch, is one subject.
  auto first = engine_->GetRecord(*owner_, (*ids)[0]);
  auto third = engine_->GetRecord(*owner_, (*ids)[2]);
  ASSERT_TRUE(first.has_value() && third.has_value());
  EXPECT_EQ(first->subject_ids, third->subject_ids);
  EXPECT_EQ(third->parts[0].fields[0].value, "Anna again");
  auto anna = engine_->FindSubject(*admin_, "anna@example.org");
  ASSERT_TRUE(anna.has_value());
  EXPECT_EQ(first->subject_ids, std::vector<std::string>{*anna});

  // Each record has its create event (and the grant its grant event).
  EXPECT_EQ(CountEvents(*anna, "create"), 2);

  // A later single create takes the next id.
  EXPECT_EQ(CreateRecord(), (*ids)[2] + 1);
}

// Concurrent callers' creates queue behind the one being written; the
// caller at the head writes its own and all those queued behind it in one
// write (Records::CreateBatch). The head is held (TEST_SetBeforeCreateGroup,
// which runs before it takes the queue) until every other caller has
// queued, so the grouping is certain, not a matter of timing: eight
// creates, one write. A new subject named by two callers of one write is
// one subject.
TEST_F(BatchTest, ConcurrentCreatesQueuedBehindTheHeadShareOneWrite) {
  constexpr int kCallers = 8;
  std::atomic<int> heads{0};
  HoldTheFirstHeadUntilQueued(heads, kCallers);
  const uint64_t writes_before = engine_->TEST_WriteCount();
  std::vector<Result<uint64_t>> ids(kCallers, Fail(Status::Internal("unset")));
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      // Callers 1 and 2 name one subject new to the store.
      const std::string identifier =
          i == 1 || i == 2 ? "shared@example.org"
                           : "person-" + std::to_string(i) + "@example.org";
      ids[i] = engine_->CreateRecord(
          *owner_, Request(identifier, "Name " + std::to_string(i)));
    });
    // The first caller is the head before the others queue.
    if (i == 0) {
      while (heads.load() == 0) std::this_thread::yield();
    }
  }
  for (std::thread& t : callers) t.join();
  engine_->TEST_SetBeforeCreateGroup(nullptr);

  EXPECT_EQ(engine_->TEST_WriteCount() - writes_before, 1u);
  EXPECT_EQ(heads.load(), 1);
  std::set<uint64_t> distinct;
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(ids[i].has_value()) << i << ": " << ids[i].error().ToString();
    distinct.insert(*ids[i]);
    auto view = engine_->GetRecord(*owner_, *ids[i]);
    ASSERT_TRUE(view.has_value()) << view.error().ToString();
    ASSERT_EQ(view->parts.size(), 1u);
    EXPECT_EQ(view->parts[0].fields[0].value, "Name " + std::to_string(i));
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kCallers));
  auto one = engine_->GetRecord(*owner_, *ids[1]);
  auto two = engine_->GetRecord(*owner_, *ids[2]);
  ASSERT_TRUE(one.has_value() && two.has_value());
  EXPECT_EQ(one->subject_ids, two->subject_ids);
  auto shared = engine_->FindSubject(*admin_, "shared@example.org");
  ASSERT_TRUE(shared.has_value()) << shared.error().ToString();
  EXPECT_EQ(one->subject_ids, std::vector<std::string>{*shared});
  // Each of the two creates about the shared subject has its event.
  EXPECT_EQ(CountEvents(*shared, "create"), 2);
  // The next create, alone, takes the next id.
  EXPECT_EQ(CreateRecord(),
            *std::max_element(distinct.begin(), distinct.end()) + 1);
}

// With synchronous writes, the head of a group waits for the sync that
// makes the group's write durable and only then wakes the others: one
// write, one sync, and no caller of the group sleeps in the group sync
// (woken once written, each would call WaitDurable while the first of
// them synced, and sleep until it had).
TEST_F(BatchTest, TheHeadSyncsItsGroupBeforeWakingTheOthers) {
  constexpr int kCallers = 8;
  Options options = MakeOptions();
  options.sync_writes = true;
  ReopenWith(options);
  // Every subject exists already: the creates make no keystore sync.
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(
        engine_
            ->CreateRecord(
                *owner_, Request("person-" + std::to_string(i) + "@example.org",
                                 "Earlier"))
            .has_value());
  }
  std::atomic<int> heads{0};
  HoldTheFirstHeadUntilQueued(heads, kCallers);
  const uint64_t writes_before = engine_->TEST_WriteCount();
  const uint64_t syncs_before = engine_->TEST_SyncCount();
  const uint64_t sleeps_before = engine_->TEST_SyncSleeps();
  std::vector<Result<uint64_t>> ids(kCallers, Fail(Status::Internal("unset")));
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      ids[i] = engine_->CreateRecord(
          *owner_, Request("person-" + std::to_string(i) + "@example.org",
                           "Name " + std::to_string(i)));
    });
    if (i == 0) {
      while (heads.load() == 0) std::this_thread::yield();
    }
  }
  for (std::thread& t : callers) t.join();
  engine_->TEST_SetBeforeCreateGroup(nullptr);

  EXPECT_EQ(heads.load(), 1);
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(ids[i].has_value()) << i << ": " << ids[i].error().ToString();
  }
  EXPECT_EQ(engine_->TEST_WriteCount() - writes_before, 1u);
  EXPECT_EQ(engine_->TEST_SyncCount() - syncs_before, 1u);
  EXPECT_EQ(engine_->TEST_SyncSleeps() - sleeps_before, 0u);
}

TEST_F(BatchTest, ARefusedRecordRefusesTheWholeBatchNamingItsPosition) {
  std::vector<NewRecord> batch = {Request("anna@example.org", "Anna"),
                                  Request("ben@example.org", "Ben")};
  batch[1].kind = "no-such-kind";
  auto refused = engine_->CreateRecords(*owner_, batch);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(refused.error().message().starts_with("record 1: "))
      << refused.error().ToString();

  batch[1] = Request("ben@example.org", "Ben");
  batch[1].grants = {"nobody"};
  refused = engine_->CreateRecords(*owner_, batch);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.error().message(),
            "record 1: grantee is not a known principal");

  // Nothing was stored: no record, no subject.
  EXPECT_TRUE(OwnedIds().empty());
  EXPECT_EQ(engine_->FindSubject(*admin_, "anna@example.org").error().code(),
            StatusCode::kNotFound);
  const uint64_t next = CreateRecord();
  EXPECT_EQ(OwnedIds(), std::vector<uint64_t>{next});
}

TEST_F(BatchTest, BatchesOutOfLimitsAreRefused) {
  const size_t max = Limits().max_batch_records;
  EXPECT_EQ(max, 100u);
  std::vector<NewRecord> too_many(max + 1, Request("anna@example.org", "A"));
  auto refused = engine_->CreateRecords(*owner_, too_many);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.error().message(), "a batch must hold 1 to 100 items");
  EXPECT_EQ(engine_->CreateRecords(*owner_, {}).error().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(OwnedIds().empty());

  std::vector<uint64_t> ids(max + 1, 1);
  EXPECT_EQ(engine_->GetRecords(*owner_, ids).error().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->GetRecords(*owner_, {}).error().code(),
            StatusCode::kInvalidArgument);

  // At the limit, it is one write.
  std::vector<NewRecord> full(max, Request("anna@example.org", "A"));
  const uint64_t writes_before = engine_->TEST_WriteCount();
  auto created = engine_->CreateRecords(*owner_, full);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  EXPECT_EQ(created->size(), max);
  EXPECT_EQ(engine_->TEST_WriteCount() - writes_before, 1u);
}

TEST_F(BatchTest, CreateRecordsNeedsTheUserRole) {
  auto refused = engine_->CreateRecords(*officer_, {Request("a@b.c", "A")});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), StatusCode::kPermissionDenied);
}

TEST_F(BatchTest, GetRecordsAnswersEachIdAndRecordsTheReadsInOneCommit) {
  const uint64_t granted = CreateRecord("anna@example.org", {"authority-b"});
  const uint64_t hidden = CreateRecord("ben@example.org");
  const uint64_t missing = hidden + 100;
  const uint64_t writes_before = engine_->TEST_WriteCount();
  auto answers =
      engine_->GetRecords(*grantee_, {granted, hidden, missing, granted});
  ASSERT_TRUE(answers.has_value()) << answers.error().ToString();
  EXPECT_EQ(engine_->TEST_WriteCount() - writes_before, 1u);
  ASSERT_EQ(answers->size(), 4u);
  ASSERT_TRUE((*answers)[0].has_value());
  EXPECT_EQ((*answers)[0]->id, granted);
  EXPECT_TRUE((*answers)[0]->personal_included);
  EXPECT_EQ((*answers)[0]->parts[0].fields[0].value, "Anna Example");
  ASSERT_FALSE((*answers)[1].has_value());
  ASSERT_FALSE((*answers)[2].has_value());
  // Not allowed to see and not there: one answer.
  EXPECT_EQ((*answers)[1].error().code(), StatusCode::kNotFound);
  EXPECT_EQ((*answers)[1].error().ToString(), (*answers)[2].error().ToString());
  EXPECT_TRUE((*answers)[3].has_value());

  // Both disclosures are in Anna's history; nothing in Ben's.
  auto anna = engine_->FindSubject(*admin_, "anna@example.org");
  auto ben = engine_->FindSubject(*admin_, "ben@example.org");
  ASSERT_TRUE(anna.has_value() && ben.has_value());
  auto reads = [&](const std::string& subject) {
    auto history = engine_->AccessHistory(*auditor_, subject, Timestamp::min(),
                                          Timestamp::max());
    EXPECT_TRUE(history.has_value());
    int n = 0;
    for (const AccessEvent& e : history->events) {
      if (e.action == "read" && e.principal_id == "authority-b") ++n;
    }
    return n;
  };
  EXPECT_EQ(reads(*anna), 2);
  EXPECT_EQ(reads(*ben), 0);
}

TEST_F(BatchTest, GetRecordsWithNothingDisclosedWritesNothing) {
  const uint64_t hidden = CreateRecord();
  const uint64_t writes_before = engine_->TEST_WriteCount();
  auto answers = engine_->GetRecords(*stranger_, {hidden, hidden + 1});
  ASSERT_TRUE(answers.has_value());
  EXPECT_EQ(engine_->TEST_WriteCount(), writes_before);
  EXPECT_EQ((*answers)[0].error().code(), StatusCode::kNotFound);
  EXPECT_EQ((*answers)[1].error().code(), StatusCode::kNotFound);
}

TEST_F(BatchTest, GetRecordsOfARevokedPrincipalIsRefusedAsAWhole) {
  const uint64_t id = CreateRecord("anna@example.org", {"authority-b"});
  ASSERT_TRUE(engine_->RevokePrincipal(*admin_, "authority-b").ok());
  auto refused = engine_->GetRecords(*grantee_, {id});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace custos::testing
