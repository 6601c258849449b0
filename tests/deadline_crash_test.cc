// Crash safety of deadline keys (docs/retention.md, "Deadline keys", crash
// windows; issue 11), in the manner of tests/sweeper_crash_test.cc: a child
// process sweeps a backlog of closed records spread over many deadline
// buckets and is killed with SIGKILL at random moments, its sweeps moving
// forward over the buckets. After every kill, with the engine closed and
// the databases read directly:
//   - a record not written down as erased has its bucket's key (no bucket
//     key is destroyed before every record due in it is written down), and
//     reads intact to an officer while its deadline has not passed;
//   - no record is erased before its deadline (nothing erased early);
//   - after a sweep that returned, no key of a bucket whose hour ended by
//     its as_of is left (what a sweep reports erased is undecipherable).
// A last sweep finishes the work; then no bucket key is left, and none of
// their wrapped bytes in the keystore's files.
//
// The random kill delays come from a std::mt19937 with a fixed seed, printed
// in the log; set CUSTOS_DEADLINE_CRASH_SEED to replay another seed.

#include <gtest/gtest.h>
#include <leveldb/db.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "storage/codec.h"
#include "storage/deadline_keys.h"
#include "storage/keys.h"
#include "storage/keystore.h"
#include "tests/child_process.h"
#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

using std::chrono::hours;
using namespace std::chrono_literals;

// kRecords alerts, closed one hour apart modulo kBuckets: kBuckets buckets
// of erase deadlines.
constexpr int kRecords = 480;
constexpr int kBuckets = 48;
constexpr int kSubjects = 40;
constexpr int kRuns = 20;
constexpr size_t kChildBatchSize = 2;
// A child sweeps one step (about 25 records, three buckets, so about 13
// batches) with synchronous writes and kChildPause between batches, so
// that a step takes a few hundred ms whatever the build type and the
// machine's speed (a Release child without pauses finished most steps
// before the kill, and the test's control of enough kills failed): kills
// land in its erasure batches, between them, in the destruction of the
// bucket keys, in the compaction, or after it.
constexpr auto kChildPause = std::chrono::milliseconds(5);
// Every other kill lands in a sweep's first milliseconds, where it erases
// buckets by key (a marker synced, then the keys destroyed); the others
// anywhere in the record-by-record rewrite that follows.
constexpr int kMinKillDelayMs = 1;
constexpr int kEarlyKillDelayMs = 15;
constexpr int kMaxKillDelayMs = 300;
constexpr uint32_t kDefaultSeed = 20261202;

constexpr char kChildEnv[] = "CUSTOS_DEADLINE_CRASH_CHILD";
constexpr char kSeedEnv[] = "CUSTOS_DEADLINE_CRASH_SEED";
constexpr char kChildTestName[] =
    "DeadlineCrashChild.DISABLED_SweepUntilKilled";
constexpr int kChildBadSpec = 2;
constexpr int kChildOpenFailed = 3;
constexpr int kChildSweepFailed = 4;

Timestamp FinalAsOf() { return At(2040, 1, 1); }

[[noreturn]] void ChildFail(int code, const std::string& what) {
  std::fprintf(stderr, "deadline crash child: %s\n", what.c_str());
  _exit(code);
}

// The child: "dir:keyhex:as_of_micros" in kChildEnv. Opens the store with
// synchronous writes, says 'r', sweeps as of as_of in batches of
// kChildBatchSize, closes, says 'd', exits 0, unless killed first.
TEST(DeadlineCrashChild, DISABLED_SweepUntilKilled) {
  auto args = ReadChildArgs(kChildEnv);
  if (!args) GTEST_SKIP() << "helper process of DeadlineCrashTest";
  const std::string& v = args->value;
  const size_t a = v.find(':'), b = v.find(':', a + 1);
  if (a == std::string::npos || b == std::string::npos) {
    ChildFail(kChildBadSpec, "bad spec");
  }
  auto key_bytes = Unhex(v.substr(a + 1, b - a - 1));
  if (!key_bytes) ChildFail(kChildBadSpec, "bad master key");
  auto master = crypto::SecretKey::FromBytes(*key_bytes);
  if (!master) ChildFail(kChildBadSpec, master.error().ToString());
  const int64_t as_of = std::stoll(v.substr(b + 1));
  ManualClock clock(FromMicros(as_of));
  Options options;
  options.data_dir = v.substr(0, a);
  options.clock = &clock;
  options.sync_writes = true;  // Durability is under test here.
  auto engine = Engine::Open(options, std::move(*master));
  if (!engine) ChildFail(kChildOpenFailed, engine.error().ToString());
  auto admin = (*engine)->ActorFor("admin");
  if (!admin) ChildFail(kChildOpenFailed, admin.error().ToString());
  if (write(args->fd, "r", 1) != 1) ChildFail(kChildBadSpec, "pipe");
  SweepOptions sweep;
  sweep.as_of = FromMicros(as_of);
  sweep.batch_size = kChildBatchSize;
  sweep.pause_between_batches = kChildPause;
  auto report = (*engine)->Sweep(*admin, sweep);
  if (!report) ChildFail(kChildSweepFailed, report.error().ToString());
  engine->reset();
  if (write(args->fd, "d", 1) != 1) ChildFail(kChildBadSpec, "pipe");
  _exit(0);
}

struct Planned {
  uint64_t id = 0;
  int index = 0;
  std::string identifier;
  int64_t deadline = 0;  // Its erasure, µs.
  uint64_t bucket = 0;
};

class DeadlineCrashTest : public EngineTest {
 protected:
  void Violation(const std::string& what) {
    if (++violations_ <= 20) ADD_FAILURE() << what;
  }

  static std::vector<Field> Fields(int i) {
    return {{"name", "Person " + std::to_string(i)}};
  }

  void BuildBacklog() {
    for (int i = 0; i < kRecords; ++i) {
      clock_.Set(TestEpoch() + hours(i % kBuckets));
      Planned p;
      p.index = i;
      p.identifier =
          "subject-" + std::to_string(i % kSubjects) + "@example.org";
      NewRecord r;
      r.kind = "alert";
      r.attributes = {{"case", "case-" + std::to_string(i)}};
      r.personal = {{p.identifier, Fields(i)}};
      auto id = engine_->CreateRecord(*owner_, r);
      ASSERT_TRUE(id.has_value()) << id.error().ToString();
      p.id = *id;
      ASSERT_TRUE(engine_->Close(*owner_, p.id).ok());
      planned_.push_back(std::move(p));
    }
    Close();
    auto records = Records();
    for (Planned& p : planned_) {
      const codec::StoredRecord& r = records.at(p.id);
      p.deadline = r.next_deadline_micros;
      p.bucket = r.erase_bucket;
      ASSERT_EQ(p.bucket, DeadlineKeys::BucketOf(p.deadline));
    }
    initial_keys_ = BucketKeys();
    ASSERT_EQ(initial_keys_.size(), static_cast<size_t>(kBuckets));
  }

  std::map<uint64_t, codec::StoredRecord> Records() {
    std::map<uint64_t, codec::StoredRecord> out;
    auto db = OpenRaw("records");
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    const std::string prefix(keys::kRecordPrefix);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      auto record = codec::DecodeRecord(it->value().ToString());
      if (!record) {
        Violation("undecodable record: " + record.error().ToString());
        continue;
      }
      out[record->id] = std::move(*record);
    }
    return out;
  }

  // Buckets whose erasure a sweep wrote down by key ("dx:").
  std::set<uint64_t> ErasedBuckets() {
    std::set<uint64_t> out;
    auto db = OpenRaw("records");
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    const std::string prefix(keys::kErasedBucketPrefix);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      out.insert(keys::NumberAfter(it->key().ToString(), prefix));
    }
    return out;
  }

  // Live bucket keys: bucket -> wrapped bytes.
  std::map<uint64_t, std::string> BucketKeys() {
    std::map<uint64_t, std::string> out;
    auto db = OpenRaw("keystore");
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    for (it->Seek("k:~b"); it->Valid() && it->key().starts_with("k:~b");
         it->Next()) {
      const uint64_t bucket =
          std::stoull(it->key().ToString().substr(4), nullptr, 16);
      auto wrapped = codec::DecodeWrappedKey(it->value().ToString());
      if (!wrapped) {
        Violation("undecodable bucket key");
        continue;
      }
      out[bucket] =
          std::string(wrapped->wrapped.begin(), wrapped->wrapped.end());
    }
    return out;
  }

  // Checks the store after a child swept as of `as_of` (`finished`: its
  // sweep returned). `max_as_of`: the latest as_of any child was given.
  void CheckStore(int64_t as_of, int64_t max_as_of, bool finished) {
    auto records = Records();
    auto live = BucketKeys();
    auto erased_buckets = ErasedBuckets();
    for (const Planned& p : planned_) {
      const std::string where = "record " + std::to_string(p.id);
      auto found = records.find(p.id);
      if (found == records.end()) {
        Violation(where + ": missing");
        continue;
      }
      const codec::StoredRecord& r = found->second;
      if (r.state == RecordState::kErased) {
        if (p.deadline > max_as_of) Violation(where + ": erased early");
        if (!r.parts.empty()) Violation(where + ": erased with parts");
        continue;
      }
      if (r.state != RecordState::kClosed) {
        Violation(where + ": illegal state");
        continue;
      }
      if (r.erase_bucket != p.bucket || r.next_deadline_micros != p.deadline) {
        Violation(where + ": moved to another bucket or deadline");
      }
      // A live record's bucket key may go only once the erasure of every
      // record due in it is written down by key ("dx:"), after its hour.
      if (!live.contains(r.erase_bucket) &&
          !(erased_buckets.contains(r.erase_bucket) &&
            p.deadline <= max_as_of)) {
        Violation(where +
                  ": its bucket key was destroyed before its "
                  "erasure was written down");
      }
    }
    if (finished) {
      for (const auto& [bucket, wrapped] : live) {
        if (DeadlineKeys::BucketEnd(bucket) - 1 <= as_of) {
          Violation("a finished sweep left the key of ended bucket " +
                    std::to_string(bucket));
        }
      }
    }
    // Through the engine: what has not reached its deadline reads intact.
    clock_.Set(FromMicros(std::max(ToMicros(clock_.Now()), max_as_of)));
    Reopen();
    for (const Planned& p : planned_) {
      if (p.deadline <= ToMicros(clock_.Now())) continue;
      auto view = engine_->GetRecord(*officer_, p.id, APurpose());
      if (!view) {
        Violation("record " + std::to_string(p.id) +
                  ": officer cannot read it: " + view.error().ToString());
      } else if (!view->personal_included || view->parts.size() != 1 ||
                 view->parts[0].fields != Fields(p.index)) {
        Violation("record " + std::to_string(p.id) + ": not intact");
      }
    }
    Close();
  }

  std::vector<Planned> planned_;
  std::map<uint64_t, std::string> initial_keys_;
  int violations_ = 0;
};

TEST_F(DeadlineCrashTest, KilledSweepsNeverDestroyABucketKeyEarlyAndResume) {
  uint32_t seed = kDefaultSeed;
  if (const char* s = std::getenv(kSeedEnv)) {
    seed = static_cast<uint32_t>(std::strtoul(s, nullptr, 10));
  }
  std::printf("[ seed     ] %u (set %s to replay another)\n", seed, kSeedEnv);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> early_ms(kMinKillDelayMs,
                                              kEarlyKillDelayMs);
  std::uniform_int_distribution<int> delay_ms(kMinKillDelayMs, kMaxKillDelayMs);

  ASSERT_NO_FATAL_FAILURE(BuildBacklog());
  // The as_of of each run: the ends of the buckets, in steps, so that each
  // child has a few buckets to erase and destroy.
  std::vector<int64_t> ends;
  for (const auto& [bucket, wrapped] : initial_keys_) {
    ends.push_back(DeadlineKeys::BucketEnd(bucket) - 1);
  }
  int64_t max_as_of = 0;
  int finished = 0, killed = 0, destroyed_while_killed = 0;
  size_t live_before = initial_keys_.size();
  for (int run = 0; run < kRuns; ++run) {
    const size_t step =
        std::min(ends.size() - 1,
                 (run + 1) * ends.size() / static_cast<size_t>(kRuns - 2));
    const int64_t as_of = ends[step];
    max_as_of = std::max(max_as_of, as_of);
    Child child = StartChild(
        kChildTestName, kChildEnv,
        dir_ + ":" + Hex(master_bytes_.bytes()) + ":" + std::to_string(as_of));
    ASSERT_GT(child.pid, 0);
    auto ready = ReadFromChild(child, 60'000);
    ASSERT_EQ(ready, std::optional<char>('r')) << "child " << run;
    std::this_thread::sleep_for(std::chrono::milliseconds(
        run % 2 == 0 ? early_ms(rng) : delay_ms(rng)));
    const int status = KillChild(child);
    const bool was_killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    ASSERT_TRUE(was_killed || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
        << "child " << run << " failed: status " << status;
    finished += was_killed ? 0 : 1;
    killed += was_killed ? 1 : 0;
    CheckStore(as_of, max_as_of, !was_killed);
    ASSERT_EQ(violations_, 0) << "after run " << run;
    const size_t live_after = BucketKeys().size();
    int erased = 0;
    for (const auto& [id, r] : Records()) {
      erased += r.state == RecordState::kErased ? 1 : 0;
    }
    if (was_killed && live_after < live_before) ++destroyed_while_killed;
    std::printf("[ run %2d   ] %s; erased %d; bucket keys %zu -> %zu\n", run,
                was_killed ? "killed  " : "finished", erased, live_before,
                live_after);
    live_before = live_after;
  }
  std::printf(
      "[ kills    ] %d killed (%d of them after destroying keys), %d "
      "finished\n",
      killed, destroyed_while_killed, finished);
  EXPECT_GE(killed, kRuns / 4);

  // A last sweep finishes: every record erased, no bucket key left, and
  // none of their wrapped bytes in the keystore's files.
  clock_.Set(FinalAsOf());
  Reopen();
  SweepOptions options;
  options.as_of = FinalAsOf();
  auto report = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_TRUE(report->complete);
  auto verified = engine_->VerifyErasure(*admin_);
  ASSERT_TRUE(verified.has_value()) << verified.error().ToString();
  EXPECT_EQ(verified->found, 0u);
  Close();
  for (const auto& [id, r] : Records()) {
    EXPECT_EQ(r.state, RecordState::kErased) << "record " << id;
  }
  EXPECT_TRUE(BucketKeys().empty());
  const std::string files = ReadAllFiles(dir_ + "/keystore");
  for (const auto& [bucket, wrapped] : initial_keys_) {
    EXPECT_EQ(files.find(wrapped), std::string::npos)
        << "the key of bucket " << bucket << " is still in the files";
  }
}

}  // namespace
}  // namespace custos::testing
