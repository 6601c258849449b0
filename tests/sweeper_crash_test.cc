// Crash safety of the sweeper (docs/retention.md, "Sweeper"; issue 4): a
// child process sweeps a large backlog with synchronous writes and is killed
// with SIGKILL at random moments, many times. After every kill the store must
// hold every record in exactly one legal state, with the personal data that
// state allows, and the deadline index must agree with the records; the
// states only move forward; and a last sweep must finish the work.
//
// The child is this test binary executed again (fork, then exec of
// /proc/self/exe running only SweeperCrashChild.DISABLED_SweepUntilKilled),
// not a bare fork. LevelDB's default Env starts its one background
// (compaction) thread the first time a process needs it and never again; a
// bare fork of a parent that already used LevelDB (this parent reopens the
// store after every kill) inherits the "started" flag but not the thread, so
// the child would wait forever on any compaction: CompactRange after the
// sweep's erasures, or a write once level 0 is full. An exec'd child is a
// fresh process, like a server restarted after a crash.
//
// The random kill delays come from a std::mt19937 with a fixed seed, printed
// in the log; set CUSTOS_SWEEPER_CRASH_SEED to replay another seed.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "storage/codec.h"
#include "storage/keys.h"
#include "tests/engine_fixture.h"

extern char** environ;

namespace custos::testing {
namespace {

using std::chrono::hours;
using std::chrono::sys_days;
using namespace std::chrono_literals;

// The backlog: kRecords records, half requests and half alerts, all closed
// (or withdrawn) at TestEpoch(), over kSubjects subjects. Big enough that
// one child's at most 30 ms of sweeping never drains it (in batches of
// kChildBatchSize, synchronous, a release build swept 10 to 15 records per
// ms on the development VM, an ASan build 3 to 6), so that nearly every kill
// lands mid-sweep; small enough that the test takes seconds under ASan.
constexpr int kRecords = 3000;
constexpr int kSubjects = 100;
// Children killed (or, if the sweep beats the kill, finished).
constexpr int kRuns = 20;
// Children sweep as of FirstAsOf() (alerts erased, requests blocked) until
// that work is done or kMaxFirstPhaseRuns ran, then as of FinalAsOf()
// (everything erased): so that both the CLOSED -> BLOCKED -> ERASED steps
// and CLOSED -> ERASED in one write are interrupted.
constexpr int kMaxFirstPhaseRuns = kRuns / 3;
// Records per write batch in the children: small, so a sweep is many
// synchronous batches and a kill lands between or inside them.
constexpr size_t kChildBatchSize = 2;
// A kill comes this long after the child wrote its first batch.
constexpr int kMinKillDelayMs = 1;
constexpr int kMaxKillDelayMs = 30;
constexpr uint32_t kDefaultSeed = 20261124;

constexpr char kChildEnv[] = "CUSTOS_SWEEPER_CRASH_CHILD";
constexpr char kSeedEnv[] = "CUSTOS_SWEEPER_CRASH_SEED";
constexpr char kChildTestName[] = "SweeperCrashChild.DISABLED_SweepUntilKilled";
// Exit codes of a child that failed before being killed.
constexpr int kChildBadSpec = 2;
constexpr int kChildOpenFailed = 3;
constexpr int kChildSweepFailed = 4;

Timestamp At(int y, unsigned m, unsigned d, int h = 12) {
  return Timestamp(sys_days(std::chrono::year(y) / m / d) + hours(h));
}
// Past the alerts' erasure and the requests' blocking (2027-02-28), before
// the requests' erasure (2029-08-31).
Timestamp FirstAsOf() { return At(2027, 6, 1); }
// Past every deadline of the backlog.
Timestamp FinalAsOf() { return At(2040, 1, 1); }

// ---- The child --------------------------------------------------------------

std::string Hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

std::optional<std::vector<uint8_t>> Unhex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::vector<uint8_t> out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = digit(hex[i]), lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<uint8_t>(hi * 16 + lo));
  }
  return out;
}

// What the parent tells a child, in kChildEnv: "dir:keyhex:as_of_micros:fd".
struct ChildSpec {
  std::string data_dir;
  std::string master_key_hex;
  int64_t as_of_micros = 0;
  int ready_fd = -1;

  std::string Encode() const {
    return data_dir + ":" + master_key_hex + ":" +
           std::to_string(as_of_micros) + ":" + std::to_string(ready_fd);
  }
  static std::optional<ChildSpec> Decode(std::string_view text) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
      const size_t colon = text.find(':', start);
      parts.emplace_back(text.substr(start, colon - start));
      if (colon == std::string_view::npos) break;
      start = colon + 1;
    }
    if (parts.size() != 4) return std::nullopt;
    ChildSpec spec;
    spec.data_dir = parts[0];
    spec.master_key_hex = parts[1];
    char* end = nullptr;
    spec.as_of_micros = std::strtoll(parts[2].c_str(), &end, 10);
    if (*end != '\0') return std::nullopt;
    spec.ready_fd = static_cast<int>(std::strtol(parts[3].c_str(), &end, 10));
    if (*end != '\0') return std::nullopt;
    return spec;
  }
};

[[noreturn]] void ChildFail(int code, const std::string& what) {
  std::fprintf(stderr, "sweeper crash child: %s\n", what.c_str());
  _exit(code);
}

// Opens the store with synchronous writes, says "ready" on the pipe, sweeps
// everything due by spec.as_of in batches of kChildBatchSize, closes the
// store, says "done", and exits 0 -- unless killed first.
[[noreturn]] void RunChild(const ChildSpec& spec) {
  auto key_bytes = Unhex(spec.master_key_hex);
  if (!key_bytes) ChildFail(kChildBadSpec, "bad master key");
  auto master = crypto::SecretKey::FromBytes(*key_bytes);
  if (!master) ChildFail(kChildBadSpec, master.error().ToString());
  ManualClock clock(FromMicros(spec.as_of_micros));
  Options options;
  options.data_dir = spec.data_dir;
  options.clock = &clock;
  options.sync_writes = true;  // Durability is under test here.
  auto engine = Engine::Open(options, std::move(*master));
  if (!engine) ChildFail(kChildOpenFailed, engine.error().ToString());
  auto admin = (*engine)->ActorFor("admin");
  if (!admin) ChildFail(kChildOpenFailed, admin.error().ToString());
  SweepOptions sweep;
  sweep.as_of = FromMicros(spec.as_of_micros);
  sweep.batch_size = kChildBatchSize;
  // "Ready" once the first batch is written: the parent's kill then lands
  // in the sweep, however slowly the process started (sanitizers, load).
  bool told = false;
  const int ready_fd = spec.ready_fd;
  sweep.progress = [&told, ready_fd](const SweepProgress&) {
    if (told) return;
    told = true;
    if (write(ready_fd, "r", 1) != 1) ChildFail(kChildBadSpec, "pipe");
  };
  auto report = (*engine)->Sweep(*admin, sweep);
  if (!report) ChildFail(kChildSweepFailed, report.error().ToString());
  if (!report->complete) ChildFail(kChildSweepFailed, "sweep incomplete");
  engine->reset();
  if (write(spec.ready_fd, "d", 1) != 1) ChildFail(kChildBadSpec, "pipe");
  _exit(0);
}

// The entry point of the exec'd child; never run otherwise (DISABLED_, and
// it needs the parent's spec). It reports through its exit status and the
// pipe, not through GoogleTest: the parent kills it before any result.
TEST(SweeperCrashChild, DISABLED_SweepUntilKilled) {
  const char* text = std::getenv(kChildEnv);
  if (text == nullptr) {
    GTEST_SKIP() << "helper process of SweeperCrashTest, started by it";
  }
  auto spec = ChildSpec::Decode(text);
  if (!spec) ChildFail(kChildBadSpec, std::string("bad spec: ") + text);
  RunChild(*spec);
}

// ---- The parent -------------------------------------------------------------

// How one record of the backlog was made.
struct Planned {
  uint64_t id = 0;
  int index = 0;     // Position in the backlog; picks the fields.
  std::string kind;  // "request" or "alert".
  bool withdrawn = false;
  std::string identifier;
};

// One state a record may be found in, with what must go with it.
struct LegalState {
  RecordState state;
  std::optional<Timestamp> blocked_at;  // Checked when set.
  std::optional<Timestamp> erased_at;   // Checked when set.
  int64_t next_deadline_micros;         // 0: none.
  codec::Transition next_transition;
};

// Every record was closed (or withdrawn, which sets closed_at for an ACTIVE
// record) at TestEpoch(). Requests: blocked 6 months after closure, erased 3
// years after; alerts: erased 6 months after, no BLOCKED phase.
std::vector<LegalState> LegalStates(const Planned& p) {
  const Timestamp six_months = At(2027, 2, 28);
  const Timestamp erase = p.kind == "request" ? At(2029, 8, 31) : six_months;
  const LegalState erased{RecordState::kErased, std::nullopt, erase, 0,
                          codec::Transition::kNone};
  if (p.withdrawn) {
    return {{RecordState::kBlocked, TestEpoch(), std::nullopt, ToMicros(erase),
             codec::Transition::kErase},
            erased};
  }
  if (p.kind == "request") {
    return {{RecordState::kClosed, std::nullopt, std::nullopt,
             ToMicros(six_months), codec::Transition::kBlock},
            {RecordState::kBlocked, six_months, std::nullopt, ToMicros(erase),
             codec::Transition::kErase},
            erased};
  }
  return {{RecordState::kClosed, std::nullopt, std::nullopt, ToMicros(erase),
           codec::Transition::kErase},
          erased};
}

uint64_t ReadU64BigEndian(std::string_view bytes) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

// What one look at the store found.
struct Census {
  std::map<RecordState, int> states;
  // Sum over records of the state's rank (CLOSED 1, BLOCKED 2, ERASED 3):
  // grows with every transition applied.
  int progress = 0;
  int index_entries = 0;
  // Index entries due at or before the as_of of the last child.
  int due_entries = 0;
};

class SweeperCrashTest : public EngineTest {
 protected:
  // Reports one inconsistency; after the first 20, only counts them.
  void Violation(const std::string& what) {
    if (++violations_ <= 20) ADD_FAILURE() << what;
  }

  void BuildBacklog() {
    for (int i = 0; i < kRecords; ++i) {
      Planned p;
      p.index = i;
      p.kind = i % 2 == 0 ? "request" : "alert";
      p.identifier =
          "subject-" + std::to_string(i % kSubjects) + "@example.org";
      NewRecord r;
      r.kind = p.kind;
      r.attributes = {{"case", "case-" + std::to_string(i)}};
      r.personal = {{p.identifier, Fields(i)}};
      auto id = engine_->CreateRecord(*owner_, r);
      ASSERT_TRUE(id.has_value()) << id.error().ToString();
      p.id = *id;
      // One in five withdrawn: half of those while ACTIVE, half once closed.
      if (i % 10 == 3) {
        p.withdrawn = true;
      } else {
        ASSERT_TRUE(engine_->Close(*owner_, p.id).ok());
        p.withdrawn = i % 10 == 7;
      }
      if (p.withdrawn) {
        ASSERT_TRUE(engine_->Withdraw(*owner_, p.id).ok());
      }
      planned_.push_back(std::move(p));
    }
  }

  // Records not stored as ERASED whose bucket a sweep erased by key ("dx:"):
  // read from the records database, the engine closed.
  int StubsLeftToWrite() {
    auto db = OpenRaw("records");
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    std::set<uint64_t> erased_buckets;
    const std::string marker(keys::kErasedBucketPrefix);
    for (it->Seek(marker); it->Valid() && it->key().starts_with(marker);
         it->Next()) {
      erased_buckets.insert(keys::NumberAfter(it->key().ToString(), marker));
    }
    int stubs = 0;
    const std::string prefix(keys::kRecordPrefix);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      auto record = codec::DecodeRecord(it->value().ToString());
      if (!record) {
        Violation("undecodable record: " + record.error().ToString());
        continue;
      }
      if (record->state != RecordState::kErased &&
          erased_buckets.contains(record->erase_bucket)) {
        ++stubs;
      }
    }
    return stubs;
  }

  static std::vector<Field> Fields(int i) {
    return {{"name", "Person " + std::to_string(i)},
            {"note", std::string(64, static_cast<char>('a' + i % 26))}};
  }

  // Starts a child sweeping as of `as_of`; returns its pid and sets
  // `ready_fd` to the read end of its pipe.
  pid_t StartChild(Timestamp as_of, int& ready_fd) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return -1;
    }
    ChildSpec spec{dir_, Hex(master_bytes_.bytes()), ToMicros(as_of), fds[1]};
    // Everything the child needs is built before fork(): between fork and
    // exec it only calls async-signal-safe functions.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, kChildEnv, sizeof(kChildEnv) - 1) != 0) {
        env_strings.emplace_back(*e);
      }
    }
    env_strings.push_back(std::string(kChildEnv) + "=" + spec.Encode());
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe";
    std::string filter = std::string("--gtest_filter=") + kChildTestName;
    std::string disabled = "--gtest_also_run_disabled_tests";
    std::array<char*, 4> argv{exe.data(), filter.data(), disabled.data(),
                              nullptr};
    const int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    const pid_t pid = fork();
    if (pid == 0) {
      // GoogleTest's banner would clutter the parent's log; errors go to
      // stderr.
      if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
      fcntl(fds[1], F_SETFD, 0);  // The write end survives exec.
      execve(exe.c_str(), argv.data(), envp.data());
      _exit(127);
    }
    if (devnull >= 0) close(devnull);
    close(fds[1]);
    if (pid < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      close(fds[0]);
      return -1;
    }
    ready_fd = fds[0];
    return pid;
  }

  // Opens the store (engine, then its records database directly), checks
  // every record and the deadline index, and closes it again. `seen` holds
  // each record's state at the last look (updated here): states only move
  // forward. Index entries due by `due_by` are counted as work left. With
  // `all_personal_data`, every record's personal data is read by an officer;
  // otherwise only that of records whose state changed since `seen`.
  Census CheckStore(Timestamp due_by, std::map<uint64_t, RecordState>& seen,
                    bool all_personal_data) {
    Census census;
    Reopen();
    if (engine_ == nullptr) return census;
    std::map<uint64_t, const LegalState*> found;
    std::vector<std::vector<LegalState>> legal;
    legal.reserve(planned_.size());
    for (const Planned& p : planned_) {
      const std::string where = "record " + std::to_string(p.id) + " (" +
                                p.kind + (p.withdrawn ? ", withdrawn" : "") +
                                ")";
      legal.push_back(LegalStates(p));
      auto view = engine_->GetRecord(*admin_, p.id);
      if (!view) {
        Violation(where + ": admin cannot read it: " + view.error().ToString());
        continue;
      }
      const LegalState* match = nullptr;
      for (const LegalState& s : legal.back()) {
        if (s.state == view->state) match = &s;
      }
      const std::string state_name(RecordStateName(view->state));
      if (match == nullptr) {
        Violation(where + ": illegal state " + state_name);
        continue;
      }
      found[p.id] = match;
      ++census.states[view->state];
      census.progress += static_cast<int>(view->state);
      auto last = seen.find(p.id);
      const bool changed = last == seen.end() || last->second != view->state;
      if (last != seen.end() && last->second > view->state) {
        Violation(where + ": went back from " +
                  std::string(RecordStateName(last->second)) + " to " +
                  state_name);
      }
      seen[p.id] = view->state;
      if (view->closed_at != TestEpoch()) {
        Violation(where + ": closed_at moved");
      }
      if (match->blocked_at && view->blocked_at != match->blocked_at) {
        Violation(where + ": " + state_name + " with a wrong blocked_at");
      }
      if (match->erased_at && view->erased_at != match->erased_at) {
        Violation(where + ": ERASED with a wrong erased_at");
      }
      if (view->state != RecordState::kErased && view->erased_at) {
        Violation(where + ": " + state_name + " with an erased_at");
      }
      // Personal data: gone exactly when ERASED, even for an officer with a
      // purpose; intact otherwise. Between kills, only records whose state
      // changed are read this way: the others were read in the same state
      // before, and the admin view above would show an older version coming
      // back (an officer's read is also an access-history event, a write).
      if (!changed && !all_personal_data) continue;
      auto officer = engine_->GetRecord(*officer_, p.id, APurpose());
      if (!officer) {
        Violation(where +
                  ": officer cannot read it: " + officer.error().ToString());
        continue;
      }
      if (view->state == RecordState::kErased) {
        if (!officer->parts.empty() || officer->personal_included) {
          Violation(where + ": ERASED but personal data is still shown");
        }
      } else if (!officer->personal_included || officer->parts.size() != 1 ||
                 officer->parts[0].subject_identifier != p.identifier ||
                 officer->parts[0].fields != Fields(p.index)) {
        Violation(where + ": " + state_name +
                  " but its personal data is not intact");
      }
    }
    Close();
    CheckIndex(found, due_by, census);
    return census;
  }

  // The records database read directly, engine closed: every record's
  // stored next deadline is the one its state calls for, each non-zero one
  // has exactly one "d:" entry, and every "d:" entry is some record's
  // current deadline.
  void CheckIndex(const std::map<uint64_t, const LegalState*>& found,
                  Timestamp due_by, Census& census) {
    leveldb::DB* raw = nullptr;
    leveldb::Status opened =
        leveldb::DB::Open(RawOptions(), dir_ + "/records", &raw);
    if (!opened.ok()) {
      Violation("cannot open the records database: " + opened.ToString());
      return;
    }
    std::unique_ptr<leveldb::DB> db(raw);
    std::unique_ptr<leveldb::Iterator> it(
        db->NewIterator(leveldb::ReadOptions()));
    std::map<uint64_t, codec::StoredRecord> records;
    const leveldb::Slice record_prefix(keys::kRecordPrefix.data(),
                                       keys::kRecordPrefix.size());
    for (it->Seek(record_prefix);
         it->Valid() && it->key().starts_with(record_prefix); it->Next()) {
      auto record = codec::DecodeRecord(it->value().ToString());
      if (!record) {
        Violation("undecodable record: " + record.error().ToString());
        continue;
      }
      if (it->key().ToString() != keys::Record(record->id)) {
        Violation("record " + std::to_string(record->id) +
                  " under a wrong key");
      }
      records[record->id] = std::move(*record);
    }
    if (records.size() != planned_.size()) {
      Violation("the store holds " + std::to_string(records.size()) +
                " records, not " + std::to_string(planned_.size()));
    }
    for (const auto& [id, legal] : found) {
      auto r = records.find(id);
      if (r == records.end()) continue;
      if (r->second.next_deadline_micros != legal->next_deadline_micros ||
          r->second.next_transition != legal->next_transition) {
        Violation("record " + std::to_string(id) +
                  ": stored next deadline does not match its state " +
                  std::string(RecordStateName(legal->state)));
      }
    }
    std::map<uint64_t, int> entries;
    const leveldb::Slice deadlines(keys::kDeadlinePrefix.data(),
                                   keys::kDeadlinePrefix.size());
    for (it->Seek(deadlines); it->Valid() && it->key().starts_with(deadlines);
         it->Next()) {
      ++census.index_entries;
      const std::string key = it->key().ToString();
      if (key.size() != keys::kDeadlinePrefix.size() + 16) {
        Violation("malformed deadline key of " + std::to_string(key.size()) +
                  " bytes");
        continue;
      }
      const int64_t due =
          static_cast<int64_t>(keys::NumberAfter(key, keys::kDeadlinePrefix));
      const uint64_t id = ReadU64BigEndian(
          std::string_view(key).substr(keys::kDeadlinePrefix.size() + 8));
      if (due <= ToMicros(due_by)) ++census.due_entries;
      ++entries[id];
      auto r = records.find(id);
      if (r == records.end()) {
        Violation("deadline entry for missing record " + std::to_string(id));
      } else if (r->second.next_deadline_micros != due) {
        Violation("deadline entry for record " + std::to_string(id) + " at " +
                  std::to_string(due) + ", but its deadline is " +
                  std::to_string(r->second.next_deadline_micros));
      }
    }
    if (!it->status().ok()) Violation("iterating: " + it->status().ToString());
    for (const auto& [id, r] : records) {
      const int expected = r.next_deadline_micros != 0 ? 1 : 0;
      if (entries[id] != expected) {
        Violation("record " + std::to_string(id) + " has " +
                  std::to_string(entries[id]) + " deadline entries, not " +
                  std::to_string(expected));
      }
    }
  }

  std::vector<Planned> planned_;
  int violations_ = 0;
};

std::string Describe(const Census& c) {
  auto count = [&](RecordState s) {
    auto it = c.states.find(s);
    return std::to_string(it == c.states.end() ? 0 : it->second);
  };
  return "CLOSED " + count(RecordState::kClosed) + ", BLOCKED " +
         count(RecordState::kBlocked) + ", ERASED " +
         count(RecordState::kErased) + "; index entries " +
         std::to_string(c.index_entries) + " (" +
         std::to_string(c.due_entries) + " due)";
}

TEST_F(SweeperCrashTest, KilledSweepsLeaveEveryRecordConsistentAndResume) {
  const auto started = std::chrono::steady_clock::now();
  uint32_t seed = kDefaultSeed;
  if (const char* s = std::getenv(kSeedEnv)) {
    seed = static_cast<uint32_t>(std::strtoul(s, nullptr, 10));
  }
  std::printf("[ seed     ] %u (set %s to replay another)\n", seed, kSeedEnv);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(kMinKillDelayMs, kMaxKillDelayMs);

  ASSERT_NO_FATAL_FAILURE(BuildBacklog());
  // The children open the store themselves: LevelDB's lock allows one
  // process at a time.
  Close();
  std::map<uint64_t, RecordState> seen;
  Census census = CheckStore(FirstAsOf(), seen, /*all_personal_data=*/true);
  ASSERT_EQ(violations_, 0);
  std::printf(
      "[ backlog  ] %d records: %s; built and checked in %.1f s\n", kRecords,
      Describe(census).c_str(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count());

  int finished = 0, killed_before_sweeping = 0, killed_mid_sweep = 0,
      killed_without_progress = 0;
  bool first_phase = true;
  for (int run = 0; run < kRuns; ++run) {
    if (run == kMaxFirstPhaseRuns || census.due_entries == 0) {
      first_phase = false;
    }
    const Timestamp as_of = first_phase ? FirstAsOf() : FinalAsOf();
    int ready_fd = -1;
    const pid_t pid = StartChild(as_of, ready_fd);
    ASSERT_GT(pid, 0);
    // The delay runs from the child's "ready", so that it lands in the sweep
    // and not in the start of the process (much slower under ASan).
    pollfd pfd{ready_fd, POLLIN, 0};
    const int polled = poll(&pfd, 1, /*timeout ms=*/60'000);
    char signal_byte = 0;
    const bool ready = polled == 1 && read(ready_fd, &signal_byte, 1) == 1;
    const int delay = delay_ms(rng);
    if (ready) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    close(ready_fd);
    const bool was_killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    ASSERT_TRUE(ready) << "child " << run << " never got to sweep; status "
                       << status << " (exit code "
                       << (WIFEXITED(status) ? WEXITSTATUS(status) : -1)
                       << "; see its stderr above)";
    ASSERT_TRUE(was_killed || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
        << "child " << run << " failed: status " << status << " (exit code "
        << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << ")";

    const int progress_before = census.progress;
    census = CheckStore(as_of, seen, /*all_personal_data=*/false);
    ASSERT_EQ(violations_, 0) << "after run " << run;
    const bool progressed = census.progress > progress_before;
    std::string outcome;
    if (!was_killed) {
      ++finished;
      outcome = "finished";
      EXPECT_EQ(census.due_entries, 0) << "a finished sweep left work due";
    } else if (progressed && census.due_entries > 0) {
      ++killed_mid_sweep;
      outcome = "killed mid-sweep";
    } else if (progressed) {
      ++killed_without_progress;  // After its last batch (e.g. compacting).
      outcome = "killed after its last batch";
    } else {
      ++killed_before_sweeping;
      outcome = census.due_entries > 0 ? "killed before its first batch"
                                       : "killed, nothing was due";
    }
    std::printf("[ run %2d   ] as of %s, kill after %2d ms: %-28s %s\n", run,
                first_phase ? "2027-06-01" : "2040-01-01", delay,
                outcome.c_str(), Describe(census).c_str());
  }
  std::printf(
      "[ kills    ] %d runs: %d killed mid-sweep, %d killed after their last "
      "batch, %d killed before their first, %d finished\n",
      kRuns, killed_mid_sweep, killed_without_progress, killed_before_sweeping,
      finished);
  // The kills must really interrupt sweeps: otherwise this test would only
  // show that complete sweeps work.
  EXPECT_GE(killed_mid_sweep, kRuns / 4);

  // The next sweep finishes the work: every record reaches its final state
  // and the deadline index is empty. It reports the erasure of every record
  // not yet erased, except those whose bucket an earlier sweep erased by
  // key (reported by that sweep; only their stubs are left to write).
  const int erased_by_key = StubsLeftToWrite();
  Reopen();
  SweepOptions options;
  options.as_of = FinalAsOf();
  clock_.Set(options.as_of);
  auto report = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_TRUE(report->complete);
  const int left = kRecords - census.states[RecordState::kErased];
  EXPECT_EQ(report->erased, static_cast<size_t>(left - erased_by_key));
  auto again = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->transitions.empty());
  Close();
  census = CheckStore(FinalAsOf(), seen, /*all_personal_data=*/true);
  EXPECT_EQ(violations_, 0);
  EXPECT_EQ(census.states[RecordState::kErased], kRecords);
  EXPECT_EQ(census.index_entries, 0);
  std::printf(
      "[ final    ] %s; test took %.1f s\n", Describe(census).c_str(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count());
}

}  // namespace
}  // namespace custos::testing
