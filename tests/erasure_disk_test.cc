// Erased bytes leave the disk: after an erasure the engine compacts the
// affected ranges, and VerifyErasure scans every file to prove it.

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <stop_token>
#include <string>

#include "storage/erasure.h"
#include "storage/keys.h"
#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

using std::chrono::hours;
using std::chrono::sys_days;

// The erasure tests' helpers, over an engine opened as each test needs.
class ErasureTest : public EngineTest {
 protected:
  // Reopens the engine with `options`, and its admin and owner.
  void ReopenAs(const Options& options) {
    ReopenWith(options);
    admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
    owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
  }

  uint64_t ClosedAlert(const std::string& identifier) {
    NewRecord r;
    r.kind = "alert";
    r.personal = {{identifier, {{"name", "Person"}, {"note", "details"}}}};
    uint64_t id = *engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(engine_->Close(*owner_, id).ok());
    return id;
  }
  // Closes `n` alerts of 50 subjects (all due by 2027-03-01).
  void CloseAlerts(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      ClosedAlert("p" + std::to_string(i % 50) + "@example.org");
    }
  }
  // Sweeps as of `at`, the clock set there; the records erased.
  size_t SweepAt(Timestamp at) {
    SweepOptions options;
    options.as_of = at;
    clock_.Set(at);
    auto swept = engine_->Sweep(*admin_, options);
    EXPECT_TRUE(swept.has_value()) << swept.error().ToString();
    return swept.has_value() ? swept->erased : SIZE_MAX;
  }
  ErasureReport Verify() {
    auto report = engine_->VerifyErasure(*admin_);
    EXPECT_TRUE(report.has_value()) << report.error().ToString();
    return report.value_or(ErasureReport{});
  }
};

// Each erasure path with compaction after erasure on (the parameter true)
// and off (the control: the erased bytes are found).
class ErasureDiskTest : public ErasureTest,
                        public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    ErasureTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(ReopenCompacting(GetParam()));
  }
  bool compacting() const { return GetParam(); }

  void ReopenCompacting(bool compact) {
    Options options = MakeOptions();
    options.compact_after_erasure = compact;
    ReopenAs(options);
  }
};

TEST_P(ErasureDiskTest, SweptErasuresLeaveNoCiphertextInAnyFile) {
  for (int i = 0; i < 50; ++i) ClosedAlert('p' + std::to_string(i));
  SweepOptions options;
  options.as_of = At(2027, 3, 1);
  clock_.Set(options.as_of);
  auto swept = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(swept.has_value()) << swept.error().ToString();
  ASSERT_EQ(swept->erased, 50u);
  ErasureReport report = Verify();
  // Per record, its part as erased and as sealed before the close re-sealed
  // it under its deadline bucket; and the bucket's destroyed key.
  EXPECT_EQ(report.witnesses, 101u);
  if (compacting()) {
    EXPECT_EQ(report.found, 0u);
    EXPECT_TRUE(report.files_with_leftovers.empty());
  } else {
    // The control: without compaction the old record versions linger.
    EXPECT_EQ(report.found, 101u);
    EXPECT_FALSE(report.files_with_leftovers.empty());
  }
  // After a restart with compaction on (the fixture's default), nothing is
  // left either way: Open finishes what was queued.
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  EXPECT_EQ(Verify().found, 0u);
}

TEST_P(ErasureDiskTest, EarlyErasureLeavesNoCiphertextInAnyFile) {
  uint64_t id = ClosedAlert("anna@example.org");
  ASSERT_TRUE(engine_->EraseRecord(*owner_, id).ok());
  ErasureReport report = Verify();
  // The part as erased, and as sealed before the close re-sealed it.
  EXPECT_EQ(report.witnesses, 2u);
  EXPECT_EQ(report.found, compacting() ? 0u : 2u);
}

TEST_P(ErasureDiskTest, AShreddedSubjectLeavesNoIdentifierKeyOrPartInAnyFile) {
  for (int i = 0; i < 5; ++i) ClosedAlert("anna@example.org");
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  ASSERT_EQ(*engine_->CompleteShreds(100), 5u);
  ErasureReport report = Verify();
  // Five parts (each as dropped and as sealed before its close re-sealed
  // it), the sealed identifier, and the wrapped key.
  EXPECT_EQ(report.witnesses, 12u);
  if (compacting()) {
    EXPECT_EQ(report.found, 0u);
  } else {
    // Nothing is compacted, the keystore included: every erased value
    // lingers, which is what the option turns off.
    EXPECT_EQ(report.found, 12u);
  }
}

// Compaction left undone (switched off here; a crash mid-compaction leaves
// the same queue) is finished by the next Open that compacts.
TEST_P(ErasureDiskTest, QueuedCompactionsAreFinishedAtTheNextOpen) {
  uint64_t id = ClosedAlert("anna@example.org");
  ASSERT_TRUE(engine_->EraseRecord(*owner_, id).ok());
  ASSERT_NO_FATAL_FAILURE(ReopenCompacting(false));
  uint64_t second = ClosedAlert("ben@example.org");
  ASSERT_TRUE(engine_->EraseRecord(*owner_, second).ok());
  // Two witnesses per record (see EarlyErasureLeavesNoCiphertextInAnyFile).
  EXPECT_EQ(Verify().found, compacting() ? 2u : 4u);
  Reopen();  // Compaction on (the fixture's default).
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  EXPECT_EQ(Verify().found, 0u);
}

// Rectified (replaced) data leaves the disk by the next sweep.
TEST_P(ErasureDiskTest, RectifiedDataLeavesTheDiskByTheNextSweep) {
  NewRecord r;
  r.kind = "request";
  r.personal = {{"anna@example.org", {{"name", "Wrong Name"}}}};
  uint64_t id = *engine_->CreateRecord(*owner_, r);
  const std::string anna = *engine_->FindSubject(*admin_, "anna@example.org");
  ASSERT_TRUE(engine_->Rectify(*owner_, id, anna, {{"name", "Right Name"}}));
  EXPECT_EQ(Verify().witnesses, 1u);
  EXPECT_EQ(Verify().found, 1u);  // Not compacted inline.
  SweepOptions sweep;
  sweep.as_of = clock_.Now();
  ASSERT_TRUE(engine_->Sweep(*admin_, sweep).has_value());
  EXPECT_EQ(Verify().found, compacting() ? 0u : 1u);
}

// The keys a sweep's compaction rewrites (each queued record's current
// value written again, so that the range compaction drops its old
// versions) go in writes of at most Erasure::kRewriteKeysPerWrite: a sweep
// after 500,000 closes had rewritten all of them in one write, 601 MiB of
// memory in custosd, with every writer waiting for it. The bytes still go.
TEST_F(ErasureTest, QueuedKeysAreRewrittenInBoundedWritesAndStillLeave) {
  constexpr size_t kRecords = 2 * Erasure::kRewriteKeysPerWrite + 1;
  CloseAlerts(kRecords);
  const Engine::RewriteStats before = engine_->TEST_RewriteStats();
  ASSERT_EQ(SweepAt(At(2027, 3, 1)), kRecords);
  const Engine::RewriteStats after = engine_->TEST_RewriteStats();
  // Every record's key was queued by its close's re-seal (an erasure by
  // the bucket's key queues nothing more: its range goes whole) and
  // rewritten, in three writes or more, none over the bound.
  EXPECT_GE(after.keys - before.keys, kRecords);
  EXPECT_GE(after.writes - before.writes, 3u);
  EXPECT_LE(after.largest_keys, Erasure::kRewriteKeysPerWrite);
  // Per record, its part as erased and as sealed before its close; and the
  // bucket's destroyed key: none of them left in any file.
  ErasureReport report = Verify();
  EXPECT_EQ(report.witnesses, 2 * kRecords + 1);
  EXPECT_EQ(report.found, 0u);
}

// The queued keys are taken a pass of at most Erasure::kCompactKeysPerPass
// at a time (here 700), each pass rewritten, compacted and cleared from the
// queue: the whole queue had been read into memory and cleared in one
// write under one hold of the write lock (half a million entries after as
// many closes). Every key is rewritten once, the queue is left empty (a
// second sweep rewrites nothing), and the bytes still go.
TEST_F(ErasureTest, QueuedKeysAreCompactedInBoundedPassesAndStillLeave) {
  constexpr size_t kPerPass = 700;
  constexpr size_t kRecords = 3 * kPerPass + 1;
  engine_->TEST_SetCompactKeysPerPass(kPerPass);
  CloseAlerts(kRecords);
  const Engine::RewriteStats before = engine_->TEST_RewriteStats();
  ASSERT_EQ(SweepAt(At(2027, 3, 1)), kRecords);
  const Engine::RewriteStats after = engine_->TEST_RewriteStats();
  EXPECT_EQ(after.keys - before.keys, kRecords);
  EXPECT_EQ(after.passes - before.passes, 4u);
  EXPECT_EQ(after.largest_pass, kPerPass);
  ErasureReport report = Verify();
  EXPECT_EQ(report.witnesses, 2 * kRecords + 1);
  EXPECT_EQ(report.found, 0u);

  EXPECT_EQ(SweepAt(clock_.Now() + hours(1)), 0u);
  EXPECT_EQ(engine_->TEST_RewriteStats().keys, after.keys);
}

// A stop requested while the compaction runs (custosd stopping) ends it
// between two passes: the pass done is cleared from the queue, the rest
// stays queued, and the next sweep compacts it, every byte then gone.
TEST_F(ErasureTest, AStopEndsTheCompactionBetweenPassesAndTheNextFinishes) {
  constexpr size_t kPerPass = 700;
  constexpr size_t kRecords = 3 * kPerPass + 1;
  engine_->TEST_SetCompactKeysPerPass(kPerPass);
  CloseAlerts(kRecords);
  const Engine::RewriteStats before = engine_->TEST_RewriteStats();
  std::stop_source stop;
  // The first step is the bucket's range (compacted before the rewrite),
  // the second the first pass of queued keys.
  int steps = 0;
  engine_->TEST_SetAfterCompactionStep([&] {
    if (++steps == 2) stop.request_stop();
  });
  SweepOptions options;
  options.as_of = At(2027, 3, 1);
  clock_.Set(options.as_of);
  options.stop = stop.get_token();
  auto stopped = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_EQ(stopped->erased, kRecords);
  EXPECT_TRUE(stopped->stopped);
  EXPECT_EQ(steps, 2);
  const Engine::RewriteStats after = engine_->TEST_RewriteStats();
  EXPECT_EQ(after.passes - before.passes, 1u);
  EXPECT_EQ(after.keys - before.keys, kPerPass);

  engine_->TEST_SetAfterCompactionStep(nullptr);
  EXPECT_EQ(SweepAt(clock_.Now() + hours(1)), 0u);
  const Engine::RewriteStats last = engine_->TEST_RewriteStats();
  EXPECT_EQ(last.passes - after.passes, 3u);  // 700, 700 and 1.
  EXPECT_EQ(last.keys - before.keys, kRecords);
  ErasureReport report = Verify();
  EXPECT_EQ(report.witnesses, 2 * kRecords + 1);
  EXPECT_EQ(report.found, 0u);
}

// Stopped among the ranges (two buckets erased by key, the stop after the
// first range's compaction): only the range done leaves the queue, the
// other stays for the next call (here the next Open's). Clearing every
// range of a stopped call would leave the other's bytes uncompacted for
// good, where one table does not happen to hold both (here it does: the
// files alone cannot show it, the queue does).
TEST_F(ErasureTest, AStopAmongTheRangesLeavesTheRestQueuedForTheNext) {
  CloseAlerts(10);
  clock_.Set(clock_.Now() + hours(2));  // The next bucket's hour.
  CloseAlerts(10);
  std::stop_source stop;
  int steps = 0;
  engine_->TEST_SetAfterCompactionStep([&] {
    ++steps;
    stop.request_stop();
  });
  SweepOptions options;
  options.as_of = At(2027, 3, 2);
  clock_.Set(options.as_of);
  options.stop = stop.get_token();
  auto stopped = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_EQ(stopped->erased, 20u);
  EXPECT_EQ(stopped->buckets_destroyed, 2u);
  EXPECT_TRUE(stopped->stopped);
  EXPECT_EQ(steps, 1);
  auto ranges_queued = [this] {
    size_t n = 0;
    std::unique_ptr<leveldb::DB> db = OpenRaw("records");
    EXPECT_NE(db, nullptr);
    if (db == nullptr) return n;
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    const std::string prefix(keys::kRangeCompactQueuePrefix);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      ++n;
    }
    return n;
  };
  Close();
  EXPECT_EQ(ranges_queued(), 1u);
  Reopen();  // Compacts what is queued.
  Close();
  EXPECT_EQ(ranges_queued(), 0u);
  Reopen();
  admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
  EXPECT_EQ(SweepAt(clock_.Now() + hours(1)), 0u);
  EXPECT_EQ(Verify().found, 0u);
}

// A queue of exactly two passes (1,050 keys each): the empty read after a
// full pass ends the call, every entry is cleared (a second sweep rewrites
// nothing), and each pass's entries are cleared in writes of at most
// Erasure::kRewriteKeysPerWrite deletions (here 1,000 and 50).
TEST_F(ErasureTest, QueuedKeysInExactPassesAreAllCleared) {
  constexpr size_t kPerPass = Erasure::kRewriteKeysPerWrite + 50;
  constexpr size_t kRecords = 2 * kPerPass;
  engine_->TEST_SetCompactKeysPerPass(kPerPass);
  CloseAlerts(kRecords);
  const Engine::RewriteStats before = engine_->TEST_RewriteStats();
  ASSERT_EQ(SweepAt(At(2027, 3, 1)), kRecords);
  const Engine::RewriteStats after = engine_->TEST_RewriteStats();
  EXPECT_EQ(after.keys - before.keys, kRecords);
  EXPECT_EQ(after.passes - before.passes, 2u);
  EXPECT_EQ(after.largest_pass, kPerPass);
  EXPECT_EQ(after.largest_clear, Erasure::kRewriteKeysPerWrite);
  EXPECT_EQ(Verify().found, 0u);

  EXPECT_EQ(SweepAt(clock_.Now() + hours(1)), 0u);
  EXPECT_EQ(engine_->TEST_RewriteStats().keys, after.keys);
  EXPECT_EQ(engine_->TEST_RewriteStats().passes, after.passes);
}

// VerifyErasure looks at every byte offset of every file in the data
// directory, whatever the file: a leftover copied, shifted by three bytes,
// into a file no database knows is still found.
TEST_P(ErasureDiskTest, ALeftoverAtAnyOffsetOfAnyFileIsFound) {
  if (compacting()) GTEST_SKIP() << "needs the leftovers of no compaction";
  uint64_t id = ClosedAlert("anna@example.org");
  ASSERT_TRUE(engine_->EraseRecord(*owner_, id).ok());
  ErasureReport before = Verify();
  ASSERT_EQ(before.found, 2u);
  ASSERT_FALSE(before.files_with_leftovers.empty());
  std::ifstream in(dir_ + "/" + before.files_with_leftovers.front(),
                   std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  {
    std::ofstream out(dir_ + "/planted.bin", std::ios::binary);
    out << "xyz" << bytes;
  }
  ErasureReport after = Verify();
  EXPECT_EQ(after.found, 2u);
  EXPECT_EQ(after.files_with_leftovers.size(),
            before.files_with_leftovers.size() + 1);
  EXPECT_NE(std::find(after.files_with_leftovers.begin(),
                      after.files_with_leftovers.end(), "planted.bin"),
            after.files_with_leftovers.end());
}

TEST_P(ErasureDiskTest, OnlyAdminsVerify) {
  EXPECT_EQ(engine_->VerifyErasure(*owner_).error().code(),
            StatusCode::kPermissionDenied);
}

INSTANTIATE_TEST_SUITE_P(CompactionOnAndOff, ErasureDiskTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "Compacting" : "NotCompacting";
                         });

// Erasure compaction delayed (Options::erasure_compaction_delay), with
// compaction after erasure on: with it off nothing is ever compacted, delay
// or not, so those variants could not tell a delayed compaction from none
// (they were removed; the control of ErasureDiskTest covers "off").
class ErasureCompactionDelayTest : public ErasureTest {
 protected:
  static constexpr auto kDelay = std::chrono::hours(1);

  // Reopens with a delay of kDelay, then erases two closed records `apart`
  // from each other; both are still on disk after the second erasure
  // returns (two witnesses per record, see
  // ErasureDiskTest.EarlyErasureLeavesNoCiphertextInAnyFile).
  void EraseTwoApart(std::chrono::microseconds apart) {
    Options options = MakeOptions();
    options.erasure_compaction_delay = kDelay;
    ASSERT_NO_FATAL_FAILURE(ReopenAs(options));
    ASSERT_TRUE(engine_->EraseRecord(*owner_, ClosedAlert("anna")).ok());
    clock_.Advance(apart);
    ASSERT_TRUE(engine_->EraseRecord(*owner_, ClosedAlert("ben")).ok());
    EXPECT_EQ(Verify().found, 4u);
  }
};

// A configured delay: erased bytes may stay that long, then the next sweep
// compacts everything queued at once.
TEST_F(ErasureCompactionDelayTest, ErasedBytesLeaveByTheNextSweepAfterIt) {
  // Within the delay: still on disk.
  ASSERT_NO_FATAL_FAILURE(EraseTwoApart(std::chrono::minutes(30)));
  clock_.Advance(std::chrono::minutes(29));
  ASSERT_NO_FATAL_FAILURE(SweepNow());
  EXPECT_EQ(Verify().found, 4u);
  clock_.Advance(std::chrono::minutes(1));  // The first has waited 1 hour.
  ASSERT_NO_FATAL_FAILURE(SweepNow());
  // Both go in one compaction, the younger one too.
  EXPECT_EQ(Verify().found, 0u);
}

// With a delay, an early erasure never compacts inside the call, even once
// the oldest queued erasure has waited the delay (issue 11: off the
// callers' path); the next sweep does.
TEST_F(ErasureCompactionDelayTest, AnEarlyErasureNeverCompactsInTheCall) {
  ASSERT_NO_FATAL_FAILURE(EraseTwoApart(std::chrono::hours(2)));
  ASSERT_NO_FATAL_FAILURE(SweepNow());
  EXPECT_EQ(Verify().found, 0u);
}

// The clock set back after an erasure (an operator correcting a clock that
// ran ahead): the queued erasure's time is then in the future, and the
// delay is not waited from it (the bytes stayed until the clock reached
// that time plus the delay, a day past the bound here); the next sweep
// compacts.
TEST_F(ErasureCompactionDelayTest, AClockSetBackDoesNotHoldErasedBytesLonger) {
  Options options = MakeOptions();
  options.erasure_compaction_delay = kDelay;
  ASSERT_NO_FATAL_FAILURE(ReopenAs(options));
  ASSERT_TRUE(engine_->EraseRecord(*owner_, ClosedAlert("anna")).ok());
  ASSERT_NO_FATAL_FAILURE(SweepNow());
  EXPECT_EQ(Verify().found, 2u);  // Within the delay: still on disk.
  clock_.Set(clock_.Now() - std::chrono::hours(24));
  ASSERT_NO_FATAL_FAILURE(SweepNow());
  EXPECT_EQ(Verify().found, 0u);
}

// A store whose writes are all still in the memtable (no table file yet,
// no reopen): the erased record's versions, before and after its close,
// and its ERASED stub share the memtable. Flushed as they are, they would
// land in one table that the range compaction never takes as an input;
// the memtable is flushed before the queued keys are rewritten, so the
// rewrite sits above that table and the compaction merges it away
// (docs/retention.md, "Deletion bound", step 3).
class FreshStoreErasureTest : public EngineTest {};

TEST_F(FreshStoreErasureTest, AnErasureBeforeAnyTableFileLeavesNoCiphertext) {
  NewRecord r;
  r.kind = "alert";
  r.personal = {{"anna@example.org", {{"name", "Person"}}}};
  const uint64_t id = *engine_->CreateRecord(*owner_, r);
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  ASSERT_TRUE(engine_->EraseRecord(*owner_, id).ok());
  auto report = engine_->VerifyErasure(*admin_);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  // The part as erased, and as sealed before the close re-sealed it.
  EXPECT_EQ(report->witnesses, 2u);
  EXPECT_EQ(report->found, 0u);
  EXPECT_TRUE(report->files_with_leftovers.empty());
}

}  // namespace
}  // namespace custos::testing
