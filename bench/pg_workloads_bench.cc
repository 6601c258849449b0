// The PostgreSQL 15 peers of issue 16's workloads 1, 2, 3, 5, 6, 7 and 8 (the
// sweep, workload 4, is sweep_pg_bench's): "PostgreSQL with an encrypted
// bytea column, indexes and a scheduled DELETE", as a Google Benchmark
// binary whose names and arguments a script can pair with the Custos
// benchmarks (engine_bench, shred_bench, concurrency_bench). Results are
// recorded in bench/RESULTS.md ("Issue 16: PostgreSQL peers of the
// workloads"); how to run the full sizes: bench/README.md or --help.
//
// One throwaway server (bench/pg_peer.h) per process, started before the
// first benchmark and removed at exit: fsync and full_page_writes on
// (PostgreSQL's defaults), autovacuum off (each store is vacuumed and
// analysed by its setup, so nothing runs behind the measurement's back).
// Synchronous durability is per connection: `SET synchronous_commit = on`
// (sync:1: every commit waits for its WAL flush, as Custos's
// Options::sync_writes = true waits for LevelDB's fsync) or `off` (sync:0:
// the commit returns before the flush; as with sync_writes = false a crash
// may lose the last commits, but never corrupts the store).
//
// Each store lives in its own PostgreSQL schema (search_path), with two
// tables:
//
//   records(id bigint primary key, owner text, kind text, subject text,
//           part bytea, status text, channel text, priority text,
//           case_ref text)  + B-tree indexes on (owner, id) and (subject)
//   events(seq bigserial primary key, at timestamptz default now(),
//          principal text, action text, record_id bigint, subject text,
//          part bytea)      + a B-tree index on (subject, seq)
//
// `part` is what Custos stores for a subject part, as in sweep_pg_bench:
// crypto::Seal (Custos's XChaCha20-Poly1305 seal, fresh random nonce) of
// kPartBytes bytes under one key, sealed and opened by the client (here),
// so PostgreSQL's side does the same AEAD work as Custos's. An event's
// `part` is the seal of kEventPartBytes bytes, about Custos's sealed
// SubjectPart (subject id, justification, field names, 32 B of salt). The
// four text attributes are concurrency_bench's (status, channel, priority,
// case). `subject` and `owner` are in clear (they are what the indexes
// look up; Custos keeps a keyed blind index of the identifier instead).
// Custos's access history is modelled by `events`: one row per create and
// per disclosure, written in the same transaction, as Custos writes its
// event in the same LevelDB write. Not modelled: Custos's hash chain and
// MACs over events, its sealed identifier, its per-subject keys.
//
// Workloads (the Custos benchmark each pairs with in brackets; all
// UseRealTime, every statement a prepared statement, binary parameters):
//
// 1. BM_PgCreate/sync:S (engine_bench BM_CreateRecordExistingSubject/256,
//    BM_CreateRecordExistingSubjectSyncWrites/256): --records creates into
//    an empty store, **one transaction per record**: one statement, an
//    INSERT of the record and of its create event (a data-modifying CTE),
//    committed alone; subjects cycle over kSubjectPool.
// 2. BM_PgGetRecord/sync:S (BM_GetRecord/256, BM_GetRecordSyncWrites): the
//    owner reads a random record of a store of --read_records records over
//    kSubjectPool subjects (warm: all of it in shared_buffers), and its
//    read event is INSERTed in the same statement (CTE: one transaction);
//    the part is opened, the event part sealed.
// 3. BM_PgListRecords/sync:S (BM_ListRecords/256): a page of 100 of the
//    owner's records after a random id (keyset pagination on the (owner,
//    id) index), in one transaction with the page's 100 read events, as
//    Custos records a page's disclosures in one commit: BEGIN; SELECT ...
//    WHERE owner = $1 AND id > $2 ORDER BY id LIMIT 100; open the 100
//    parts, seal 100 event parts; one 100-row INSERT; COMMIT. Items are
//    records.
// 5. BM_PgShredSubject/records:R/subjects:N/events:E/sync:S
//    (shred_bench BM_ShredLatencyKeystoreSize/N, sync on: at N = 1,000
//    warm, R = 10 and 10,000; at N = 1,000,000 just opened, R = 10,000;
//    engine_bench BM_ShredSubject/R when run alone): one subject
//    holding R records (each with its create event) erased from a store of
//    N other subjects holding one record (and create event) each. One
//    statement, one transaction: DELETE of the subject's records, a `shred`
//    event, and with events:1 the subject struck from its events (UPDATE
//    events SET subject = NULL, part = NULL): the semantics of Custos's
//    shred, which keeps every event's clear header (who, when, which
//    record, what action) and makes the subject's part of it
//    undecipherable. events:0 is the plain "DELETE of its rows",
//    which leaves the subject's events as they were. Custos keeps the
//    records themselves (ERASED, attributes only) where PostgreSQL deletes
//    them. Each iteration erases another of kVictims subjects, timed alone
//    (manual time; median/min/max counters); the dead tuples stay (no
//    VACUUM: what is timed is the DELETE).
// 6. BM_PgSubjectReport/sync:S (engine_bench BM_ProduceSubjectReport): an
//    auditor's report of a subject with 1,000 records and 10,000 events
//    (its 1,000 creates and 9,000 reads, interleaved with 10,000 records
//    and 9,000 reads of 1,000 other subjects, as engine_bench builds it):
//    in one REPEATABLE READ transaction, the SELECT of its records and of
//    its events (both through the subject indexes), every part opened, and
//    a `report` event INSERTed.
// 7. BM_PgSyncCreate/threads:T (concurrency_bench
//    BM_SyncCreateExistingSubject/threads:T): T threads, one connection
//    each, synchronous_commit on, committing workload 1's creates into one
//    store; items/s is the throughput of all of them. At T > 1 the counter
//    x_1_thread is that throughput over the 1-thread run's (when it ran in
//    this process): the "16 synced writers >= 4x one". Each run's
//    Teardown prints its commits per WAL sync (pg_stat_wal) on stderr.
//    BM_PgMixed/sync:S/threads:32 (custos_load's rpc_mixed_c32 and
//    rpc_mixed_c32_nosync): 32 connections doing custos_load's mixed work
//    (create 4, get 4, list 1, close 1), one call at a time each, into an
//    empty store; items/s is the throughput of all of them, counters
//    p50_us, p99_us and p999_us the latencies of every call (see
//    BM_PgMixed).
//
// 8. BM_PgBreachScope/events:E/disclosures:D/sync:S and
//    BM_PgStatisticsInHistory/events:E (breach_bench's BM_BreachScope and
//    BM_StatisticsInHistory): breach_bench's history of E =
//    --breach_events events in a store of its own, a scope of the
//    disclosures to one principal in a window, and the statistics as a
//    GROUP BY over the records (BreachStore() and the benchmarks below).
//
// BM_DiskFdatasync/at:0 and at:1, first and last: the disk's own flush (an
// 8 KiB pwrite + fdatasync in /tmp), the floor of a synchronous commit,
// measured at the start and the end of the run (on the 2-vCPU VM of
// bench/RESULTS.md it moves with how idle the CPUs are, and every sync:1
// figure with it).

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "base/status.h"
#include "bench/pg_peer.h"
#include "bench/support.h"
#include "crypto/aead.h"
#include "crypto/secret_key.h"

namespace custos {
namespace {

using bench::AppendCopyBytea;
using bench::Check;
using bench::PgConn;
using bench::PgCopy;
using bench::PgExec;
using bench::PgResult;
using bench::Value;
using SteadyClock = std::chrono::steady_clock;

// Plaintext bytes of a record's subject part (issue 16: 256 B).
constexpr size_t kPartBytes = 256;
// Plaintext bytes of an event's sealed part.
constexpr size_t kEventPartBytes = 112;
// Distinct subjects of the create, read and list stores (engine_bench).
constexpr int kSubjectPool = 1'000;
constexpr int kPageSize = 100;
// Workload 7's list page (custos_load's mixed load lists 10).
constexpr int kMixedPage = 10;
// Subjects erased per shred benchmark run, one per iteration.
constexpr int kVictims = 5;
// The reported subject's records and reads, and the others' (engine_bench).
constexpr int kReportRecords = 1'000;
constexpr int kReportReads = 9'000;
constexpr int kReportOtherSubjects = 1'000;
constexpr int kReportOtherRecords = 10'000;
// The breach store (breach_bench's history): records about a subject of
// their own each; disclosures to "suspect" in three windows of an hour;
// reads in batches.
constexpr int kBreachRecords = 10'000;
constexpr int kBreachWindows[] = {100, 1'000, 10'000};
constexpr int kBreachBatch = 100;
constexpr int kBreachOtherReaders = 4;
constexpr int kBreachMinEvents = kBreachRecords + 100 + 1'000 + 10'000;
constexpr int64_t kBreachStartMicros = 1'750'000'000'000'000;  // June 2025.
constexpr int64_t kHourMicros = int64_t{3'600'000'000};
constexpr char kSuspect[] = "suspect";
constexpr char kOwner[] = "user";
constexpr char kAdmin[] = "admin";
constexpr char kAuditor[] = "auditor";

// ---- Flags (ours; Google Benchmark's own are passed on to it) ----

struct Flags {
  int records = 10'000;       // BM_PgCreate: records created per run.
  int read_records = 10'000;  // The read and list store.
  std::vector<int> subjects = {1'000, 100'000};  // The shred stores.
  int breach_events = 1'000'000;                 // The breach store's history.
  std::string pg_bin = bench::PgPeerOptions().bin_dir;
  std::vector<std::pair<std::string, std::string>> pg_settings;
};

Flags& TheFlags() {
  static Flags flags;
  return flags;
}

void PrintUsage(const char* program) {
  std::fprintf(
      stderr,
      "usage: %s [--records=N] [--read_records=N] [--subjects=N[,N...]]\n"
      "          [--breach_events=N] [--pg_bin=DIR] "
      "[--pg_setting=NAME=VALUE]...\n"
      "          [Google Benchmark flags: --benchmark_filter=REGEX,\n"
      "           --benchmark_format=json, --benchmark_out=FILE, ...]\n"
      "  --records       records created by each BM_PgCreate run (10000)\n"
      "  --read_records  records in the store BM_PgGetRecord and\n"
      "                  BM_PgListRecords read (10000)\n"
      "  --subjects      the shred stores' subjects (1000,100000); issue "
      "16's\n"
      "                  full sizes: --records=1000000 "
      "--subjects=1000,1000000\n"
      "  --breach_events the breach store's events (1000000)\n"
      "  --pg_bin        PostgreSQL's binaries (/usr/lib/postgresql/15/bin)\n"
      "  --pg_setting    a server setting (-c NAME=VALUE), e.g. "
      "shared_buffers=1GB\n",
      program);
}

std::optional<int> ParseCount(std::string_view text) {
  int value = 0;
  const auto [end, error] =
      std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value <= 0) {
    return std::nullopt;
  }
  return value;
}

// Takes our flags out of argv (so that benchmark::Initialize sees its own
// only). Exits with the usage on a malformed one.
void ParseFlags(int* argc, char** argv) {
  Flags& flags = TheFlags();
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value_of =
        [&](std::string_view flag) -> std::optional<std::string_view> {
      if (arg.starts_with(flag) && arg.size() > flag.size() &&
          arg[flag.size()] == '=') {
        return arg.substr(flag.size() + 1);
      }
      return std::nullopt;
    };
    bool ok = true;
    if (auto records = value_of("--records")) {
      const std::optional<int> n = ParseCount(*records);
      ok = n.has_value();
      flags.records = n.value_or(0);
    } else if (auto read = value_of("--read_records")) {
      const std::optional<int> n = ParseCount(*read);
      ok = n.has_value() && *n > kPageSize;
      flags.read_records = n.value_or(0);
    } else if (auto subjects = value_of("--subjects")) {
      flags.subjects.clear();
      std::stringstream in{std::string(*subjects)};
      for (std::string part; std::getline(in, part, ',');) {
        const std::optional<int> n = ParseCount(part);
        ok = ok && n.has_value();
        flags.subjects.push_back(n.value_or(0));
      }
      ok = ok && !flags.subjects.empty();
    } else if (auto events = value_of("--breach_events")) {
      const std::optional<int> n = ParseCount(*events);
      ok = n.has_value() && *n >= kBreachMinEvents;
      flags.breach_events = n.value_or(0);
    } else if (auto bin = value_of("--pg_bin")) {
      flags.pg_bin = *bin;
    } else if (auto setting = value_of("--pg_setting")) {
      const size_t equals = setting->find('=');
      ok = equals != std::string_view::npos;
      if (ok) {
        flags.pg_settings.emplace_back(setting->substr(0, equals),
                                       setting->substr(equals + 1));
      }
    } else {
      if (arg == "--help") PrintUsage(argv[0]);  // Then Benchmark's own.
      argv[kept++] = argv[i];
      continue;
    }
    if (!ok) {
      std::fprintf(stderr, "bad flag: %s\n", argv[i]);
      PrintUsage(argv[0]);
      std::exit(2);
    }
  }
  *argc = kept;
}

// ---- The server, connections, statements ----

std::unique_ptr<bench::PgPeer>& ServerSlot() {
  static std::unique_ptr<bench::PgPeer> server;
  return server;
}

bench::PgPeer& Server() {
  std::unique_ptr<bench::PgPeer>& server = ServerSlot();
  if (server == nullptr) {
    bench::PgPeerOptions options;
    options.bin_dir = TheFlags().pg_bin;
    options.fsync = true;  // fsync, synchronous_commit, full_page_writes on.
    options.settings = {{"autovacuum", "off"},
                        {"client_min_messages", "warning"}};
    options.settings.insert(options.settings.end(),
                            TheFlags().pg_settings.begin(),
                            TheFlags().pg_settings.end());
    server = Value(bench::PgPeer::Start(options), "start PostgreSQL");
  }
  return *server;
}

// One parameter of a prepared statement, sent in binary format (for text
// the bytes themselves, for bigint 8 bytes big-endian, for bytea the bytes).
struct Param {
  const char* data;
  int length;
};
Param Bytes(std::string_view bytes) {
  return {bytes.data(), static_cast<int>(bytes.size())};
}
Param Bytes(const std::vector<uint8_t>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()),
          static_cast<int>(bytes.size())};
}

std::string BigEndian(int64_t value) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  return out;
}

// Runs prepared statement `name` with binary parameters; binary results
// unless `text_results`. Internal, with the server's message, unless the
// result is PGRES_COMMAND_OK or PGRES_TUPLES_OK.
Result<PgResult> Run(PGconn* conn, const char* name,
                     std::span<const Param> params, bool text_results = false) {
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats(params.size(), 1);
  values.reserve(params.size());
  lengths.reserve(params.size());
  for (const Param& p : params) {
    values.push_back(p.data);
    lengths.push_back(p.length);
  }
  PgResult result(PQexecPrepared(conn, name, static_cast<int>(params.size()),
                                 values.data(), lengths.data(), formats.data(),
                                 text_results ? 0 : 1));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return Fail(
        Status::Internal(std::string(name) + ": " + PQerrorMessage(conn)));
  }
  return result;
}

// The statements, prepared on every session (each names tables of the
// session's search_path, which must exist).
std::string ListEventsInsert(int rows = kPageSize) {
  std::string sql =
      "INSERT INTO events (principal, action, record_id, subject, part) "
      "VALUES ";
  for (int i = 0; i < rows; ++i) {
    const int base = 2 + 3 * i;
    sql += std::string(i == 0 ? "" : ", ") + "($1, 'read', $" +
           std::to_string(base) + ", $" + std::to_string(base + 1) + ", $" +
           std::to_string(base + 2) + ")";
  }
  return sql;
}

const std::vector<std::pair<const char*, std::string>>& Statements() {
  static const std::vector<std::pair<const char*, std::string>> statements = {
      // $1 owner, $2 subject, $3 part, $4 case, $5 the event's part.
      {"create",
       "WITH r AS (INSERT INTO records (id, owner, kind, subject, part, "
       "status, channel, priority, case_ref) VALUES (nextval('records_id'), "
       "$1, 'alert', $2, $3, 'open', 'web-form', 'normal', $4) RETURNING id, "
       "subject) INSERT INTO events (principal, action, record_id, subject, "
       "part) SELECT $1, 'create', id, subject, $5 FROM r RETURNING "
       "record_id"},
      // $1 id, $2 reader, $3 the event's part.
      {"get",
       "WITH r AS (SELECT id, subject, part FROM records WHERE id = $1 AND "
       "owner = $2), e AS (INSERT INTO events (principal, action, record_id, "
       "subject, part) SELECT $2, 'read', id, subject, $3 FROM r) SELECT "
       "part FROM r"},
      // $1 owner, $2 after id.
      {"list_page",
       "SELECT id, subject, part FROM records WHERE owner = $1 AND id > $2 "
       "ORDER BY id LIMIT 100"},
      {"list_events", ListEventsInsert()},
      // Workload 7's list (custos_load's: the first kMixedPage of the
      // owner's records) and its events; $1 owner.
      {"mixed_list",
       "SELECT id, subject, part FROM records WHERE owner = $1 ORDER BY id "
       "LIMIT " +
           std::to_string(kMixedPage)},
      {"mixed_list_events", ListEventsInsert(kMixedPage)},
      // $1 id, $2 owner, $3 the re-sealed part, $4 the event's part.
      {"close",
       "WITH r AS (UPDATE records SET status = 'closed', part = $3 WHERE id = "
       "$1 AND owner = $2 RETURNING id, subject) INSERT INTO events "
       "(principal, action, record_id, subject, part) SELECT $2, 'close', id, "
       "subject, $4 FROM r RETURNING record_id"},
      // $1 subject, $2 admin.
      {"shred_records",
       "WITH d AS (DELETE FROM records WHERE subject = $1 RETURNING 1), s AS "
       "(INSERT INTO events (principal, action) VALUES ($2, 'shred')) SELECT "
       "(SELECT count(*) FROM d), 0::bigint"},
      {"shred_records_events",
       "WITH d AS (DELETE FROM records WHERE subject = $1 RETURNING 1), u AS "
       "(UPDATE events SET subject = NULL, part = NULL WHERE subject = $1 "
       "RETURNING 1), s AS (INSERT INTO events (principal, action) VALUES "
       "($2, 'shred')) SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM "
       "u)"},
      // $1 subject.
      {"report_records",
       "SELECT id, kind, status, channel, priority, case_ref, part FROM "
       "records WHERE subject = $1 ORDER BY id"},
      {"report_events",
       "SELECT seq, at, principal, action, record_id, part FROM events WHERE "
       "subject = $1 ORDER BY seq"},
      // $1 principal, $2 action, $3 subject, $4 part.
      {"event",
       "INSERT INTO events (principal, action, subject, part) VALUES ($1, "
       "$2, $3, $4)"},
  };
  return statements;
}

// A connection to the store in schema `store`, with synchronous_commit
// `sync` and every statement prepared: Statements() and `extra` (those of
// one store's own columns).
Result<PgConn> Session(
    const std::string& store, bool sync,
    std::span<const std::pair<const char*, std::string>> extra = {}) {
  auto conn = Server().Connect();
  if (!conn) return Fail(conn.error());
  Status set = PgExec(
      conn->get(), std::string("SET search_path = ") + store +
                       "; SET synchronous_commit = " + (sync ? "on" : "off"));
  if (!set.ok()) return Fail(set);
  std::vector<std::pair<const char*, std::string>> statements = Statements();
  statements.insert(statements.end(), extra.begin(), extra.end());
  for (const auto& [name, sql] : statements) {
    PgResult result(
        PQprepare(conn->get(), name, sql.c_str(), 0, /*paramTypes=*/nullptr));
    if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
      return Fail(Status::Internal(std::string("prepare ") + name + ": " +
                                   PQerrorMessage(conn->get())));
    }
  }
  return std::move(*conn);
}

// The connection that builds stores (main thread only).
PGconn* Admin() {
  static PgConn conn = Value(Server().Connect(), "connect");
  return conn.get();
}

// ---- Stores ----

// One key for every seal: an AEAD costs the same under any key.
const crypto::SecretKey& Key() {
  static const crypto::SecretKey key = crypto::SecretKey::Generate();
  return key;
}

std::vector<uint8_t> SealPart() {
  static const std::string plaintext(kPartBytes, 'x');
  return crypto::Seal(Key(), plaintext, {});
}
std::vector<uint8_t> SealEventPart() {
  static const std::string plaintext(kEventPartBytes, 'e');
  return crypto::Seal(Key(), plaintext, {});
}
// Opens a part of `size` bytes; false if it does not open.
bool OpenPart(const char* bytes, int size) {
  Result<std::vector<uint8_t>> plain = crypto::Open(
      Key(),
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes),
                               static_cast<size_t>(size)),
      {});
  return plain.has_value();
}

std::string Subject(int n) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "subject-%07d", n);
  return buffer;
}

// Drops schema `store` if it exists and creates it with empty tables and
// their indexes (built after the load when `indexes` is false: Index()).
void CreateStore(const std::string& store, bool indexes) {
  Check(PgExec(Admin(), "DROP SCHEMA IF EXISTS " + store +
                            " CASCADE; CREATE SCHEMA " + store +
                            "; SET search_path = " + store +
                            ";"
                            "CREATE SEQUENCE records_id;"
                            "CREATE TABLE records (id bigint PRIMARY KEY,"
                            " owner text NOT NULL, kind text NOT NULL,"
                            " subject text NOT NULL, part bytea NOT NULL,"
                            " status text NOT NULL, channel text NOT NULL,"
                            " priority text NOT NULL, case_ref text NOT NULL);"
                            "CREATE TABLE events (seq bigserial PRIMARY KEY,"
                            " at timestamptz NOT NULL DEFAULT now(),"
                            " principal text NOT NULL, action text NOT NULL,"
                            " record_id bigint, subject text, part bytea)"),
        "create store");
  if (indexes) {
    Check(PgExec(Admin(),
                 "CREATE INDEX records_owner_id ON records (owner, id);"
                 "CREATE INDEX records_subject ON records (subject);"
                 "CREATE INDEX events_subject_seq ON events (subject, seq)"),
          "create indexes");
  }
}

void Index(const std::string& store) {
  Check(PgExec(Admin(),
               "SET search_path = " + store +
                   ";"
                   "CREATE INDEX records_owner_id ON records (owner, id);"
                   "CREATE INDEX records_subject ON records (subject);"
                   "CREATE INDEX events_subject_seq ON events (subject, seq)"),
        "create indexes");
}

// Hint bits set, statistics fresh, sequences past the loaded ids, dirty
// buffers written and synced: the timed statements pay for their own work.
void Settle(const std::string& store) {
  // Separate statements: VACUUM cannot run in the implicit transaction of
  // a multi-statement string.
  for (const std::string& sql :
       {"SET search_path = " + store,
        std::string("SELECT setval('records_id', (SELECT coalesce(max(id), 0) "
                    "+ 1 FROM records), false)"),
        std::string("SELECT setval('events_seq_seq', (SELECT "
                    "coalesce(max(seq), 0) + 1 FROM events), false)"),
        std::string("VACUUM (ANALYZE) records"),
        std::string("VACUUM (ANALYZE) events"), std::string("CHECKPOINT")}) {
    Check(PgExec(Admin(), sql), "settle");
  }
  ::sync();
}

// COPY of records ids first_id.. (`count` of them), record i concerning
// subject `subject_of(i)`, owned by kOwner.
void CopyRecords(int64_t first_id, int64_t count,
                 const std::function<std::string(int64_t)>& subject_of) {
  Check(PgCopy(Admin(),
               "COPY records (id, owner, kind, subject, part, status, channel, "
               "priority, case_ref) FROM STDIN",
               count,
               [&](int64_t i, std::string& out) {
                 out += std::to_string(first_id + i);
                 out += '\t';
                 out += kOwner;
                 out += "\talert\t";
                 out += subject_of(i);
                 out += '\t';
                 AppendCopyBytea(out, SealPart());
                 out += "\topen\tweb-form\tnormal\tcase-";
                 out += std::to_string(first_id + i);
                 out += '\n';
               }),
        "copy");
}

// An event of a store being loaded: `action` by `principal` on record
// `record_id` of `subject`.
struct EventRow {
  std::string principal;
  const char* action;
  int64_t record_id;
  std::string subject;
  int64_t at_micros = 0;  // Its time, when the COPY is timed.
};

// `micros` since the epoch as a timestamptz in COPY's text format.
std::string TimestampText(int64_t micros) {
  const time_t seconds = static_cast<time_t>(micros / 1'000'000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02d %02d:%02d:%02d.%06d+00",
                utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                utc.tm_min, utc.tm_sec, static_cast<int>(micros % 1'000'000));
  return buffer;
}

// COPY of events seq first_seq.. (`count` of them), event i `event_of(i)`,
// each with a sealed part; `timed`: at its at_micros (otherwise now()).
void CopyEvents(int64_t first_seq, int64_t count,
                const std::function<EventRow(int64_t)>& event_of,
                bool timed = false) {
  Check(PgCopy(Admin(),
               std::string("COPY events (seq, ") + (timed ? "at, " : "") +
                   "principal, action, record_id, subject, part) FROM STDIN",
               count,
               [&](int64_t i, std::string& out) {
                 const EventRow event = event_of(i);
                 out += std::to_string(first_seq + i);
                 out += '\t';
                 if (timed) {
                   out += TimestampText(event.at_micros);
                   out += '\t';
                 }
                 out += event.principal;
                 out += '\t';
                 out += event.action;
                 out += '\t';
                 out += std::to_string(event.record_id);
                 out += '\t';
                 out += event.subject;
                 out += '\t';
                 AppendCopyBytea(out, SealEventPart());
                 out += '\n';
               }),
        "copy");
}

int64_t MaxOf(const std::string& store, const char* column, const char* table) {
  PgResult result(PQexec(Admin(), (std::string("SELECT coalesce(max(") +
                                   column + "), 0) FROM " + store + "." + table)
                                      .c_str()));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    std::fprintf(stderr, "max: %s\n", PQerrorMessage(Admin()));
    std::abort();
  }
  return std::strtoll(PQgetvalue(result.get(), 0, 0), nullptr, 10);
}

// "1.23 0.98 0.75" from /proc/loadavg.
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

void SyncLabel(benchmark::State& state, bool sync) {
  state.SetLabel(sync ? "synchronous_commit=on" : "synchronous_commit=off");
}

// ---- 1. Create ----

// One create: the record and its create event, one statement committed
// alone. False (and the error skipped with) on failure.
bool CreateOne(benchmark::State& state, PGconn* conn,
               const std::string& subject, int64_t serial) {
  const std::vector<uint8_t> part = SealPart();
  const std::vector<uint8_t> event_part = SealEventPart();
  const std::string case_ref = "case-" + std::to_string(serial);
  const Param params[] = {Bytes(kOwner), Bytes(subject), Bytes(part),
                          Bytes(case_ref), Bytes(event_part)};
  Result<PgResult> result = Run(conn, "create", params);
  if (!result || PQntuples(result->get()) != 1) {
    state.SkipWithError(result ? "create returned no row"
                               : result.error().ToString().c_str());
    return false;
  }
  return true;
}

void BM_PgCreate(benchmark::State& state) {
  const bool sync = state.range(0) != 0;
  const std::string store = "create_store";
  CreateStore(store, /*indexes=*/true);
  Settle(store);
  PgConn conn = Value(Session(store, sync), "session");
  std::vector<std::string> subjects;
  for (int i = 0; i < kSubjectPool; ++i) subjects.push_back(Subject(i));
  int64_t serial = 0;
  for (auto _ : state) {
    // The seals are in the timed region, as Custos seals in CreateRecord.
    if (!CreateOne(state, conn.get(),
                   subjects[static_cast<size_t>(serial % kSubjectPool)],
                   serial)) {
      break;
    }
    ++serial;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["part_bytes"] =
      static_cast<double>(kPartBytes + crypto::kSealOverhead);
  SyncLabel(state, sync);
}

// ---- 2, 3. Read and list ----

// The read store: --read_records records (ids 1..) over kSubjectPool
// subjects, each with its create event; built on first use, shared by the
// read and list benchmarks (its events grow with every read).
const std::string& ReadStore() {
  static const std::string store = [] {
    const std::string name = "read_store";
    const int records = TheFlags().read_records;
    CreateStore(name, /*indexes=*/false);
    CopyRecords(1, records, [](int64_t i) {
      return Subject(static_cast<int>(i % kSubjectPool));
    });
    CopyEvents(1, records, [](int64_t i) {
      return EventRow{kOwner, "create", i + 1,
                      Subject(static_cast<int>(i % kSubjectPool))};
    });
    Index(name);
    Settle(name);
    return name;
  }();
  return store;
}

// Reads the whole store once, so that "warm" means in shared_buffers.
void Warm(PGconn* conn) {
  Check(PgExec(conn,
               "SELECT count(*), sum(length(part)) FROM records;"
               "SELECT count(*) FROM records WHERE owner = 'user' AND id > 0"),
        "warm");
}

void BM_PgGetRecord(benchmark::State& state) {
  const bool sync = state.range(0) != 0;
  const std::string& store = ReadStore();
  PgConn conn = Value(Session(store, sync), "session");
  Warm(conn.get());
  const int records = TheFlags().read_records;
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> pick(1, records);
  for (auto _ : state) {
    const std::string id = BigEndian(pick(rng));
    const std::vector<uint8_t> event_part = SealEventPart();
    const Param params[] = {Bytes(id), Bytes(kOwner), Bytes(event_part)};
    Result<PgResult> result = Run(conn.get(), "get", params);
    if (!result || PQntuples(result->get()) != 1 ||
        !OpenPart(PQgetvalue(result->get(), 0, 0),
                  PQgetlength(result->get(), 0, 0))) {
      state.SkipWithError(result ? "get did not return the part"
                                 : result.error().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  SyncLabel(state, sync);
}

void BM_PgListRecords(benchmark::State& state) {
  const bool sync = state.range(0) != 0;
  const std::string& store = ReadStore();
  PgConn conn = Value(Session(store, sync), "session");
  Warm(conn.get());
  const int records = TheFlags().read_records;
  std::mt19937_64 rng(44);
  std::uniform_int_distribution<int64_t> pick(0, records - kPageSize - 1);
  int64_t listed = 0;
  std::vector<std::vector<uint8_t>> event_parts(kPageSize);
  std::vector<Param> params;
  for (auto _ : state) {
    const std::string after = BigEndian(pick(rng));
    const Param page_params[] = {Bytes(kOwner), Bytes(after)};
    Status begun = PgExec(conn.get(), "BEGIN");
    Result<PgResult> page = Run(conn.get(), "list_page", page_params);
    if (!begun.ok() || !page || PQntuples(page->get()) != kPageSize) {
      state.SkipWithError("list did not return a full page");
      break;
    }
    PGresult* rows = page->get();
    params.clear();
    params.push_back(Bytes(kOwner));
    bool opened = true;
    for (int r = 0; r < kPageSize; ++r) {
      opened =
          opened && OpenPart(PQgetvalue(rows, r, 2), PQgetlength(rows, r, 2));
      event_parts[static_cast<size_t>(r)] = SealEventPart();
      params.push_back({PQgetvalue(rows, r, 0), PQgetlength(rows, r, 0)});
      params.push_back({PQgetvalue(rows, r, 1), PQgetlength(rows, r, 1)});
      params.push_back(Bytes(event_parts[static_cast<size_t>(r)]));
    }
    Result<PgResult> events = Run(conn.get(), "list_events", params);
    Status committed = PgExec(conn.get(), "COMMIT");
    if (!opened || !events || !committed.ok()) {
      state.SkipWithError("the page's parts or events failed");
      break;
    }
    listed += kPageSize;
  }
  state.SetItemsProcessed(listed);
  SyncLabel(state, sync);
}

// ---- 5. Erase one subject ----

// The shred store of `subjects` subjects, one record (and its create
// event) each; built on first use and kept (one schema per size).
std::string ShredStore(int subjects) {
  static std::map<int, std::string> stores;
  if (auto it = stores.find(subjects); it != stores.end()) return it->second;
  const std::string name = "shred_" + std::to_string(subjects);
  CreateStore(name, /*indexes=*/false);
  CopyRecords(1, subjects,
              [](int64_t i) { return Subject(static_cast<int>(i)); });
  CopyEvents(1, subjects, [](int64_t i) {
    return EventRow{kOwner, "create", i + 1, Subject(static_cast<int>(i))};
  });
  Index(name);
  Settle(name);
  stores[subjects] = name;
  return name;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Args: records of the erased subject, subjects of the store, events
// (1: strike the subject from its events too), sync.
void BM_PgShredSubject(benchmark::State& state) {
  const int64_t records = state.range(0);
  const int subjects = static_cast<int>(state.range(1));
  const bool events = state.range(2) != 0;
  const bool sync = state.range(3) != 0;
  const auto setup_start = SteadyClock::now();
  const std::string store = ShredStore(subjects);
  // This run's victims, kVictims new subjects of `records` records each
  // (and their create events), loaded after the store's other subjects.
  static int run = 0;
  ++run;
  std::vector<std::string> victims;
  for (int v = 0; v < kVictims; ++v) {
    victims.push_back("victim-" + std::to_string(run) + "-" +
                      std::to_string(v));
  }
  const int64_t first_id = MaxOf(store, "id", "records") + 1;
  const int64_t first_seq = MaxOf(store, "seq", "events") + 1;
  Check(PgExec(Admin(), "SET search_path = " + store), "search_path");
  const int64_t rows = records * kVictims;
  CopyRecords(first_id, rows, [&](int64_t i) {
    return victims[static_cast<size_t>(i / records)];
  });
  CopyEvents(first_seq, rows, [&](int64_t i) {
    return EventRow{kOwner, "create", first_id + i,
                    victims[static_cast<size_t>(i / records)]};
  });
  Settle(store);
  PgConn conn = Value(Session(store, sync), "session");
  const double setup_s = SecondsSince(setup_start);

  const char* statement = events ? "shred_records_events" : "shred_records";
  std::vector<double> millis;
  size_t next = 0;
  for (auto _ : state) {
    const std::string& victim = victims[next++ % victims.size()];
    const Param params[] = {Bytes(victim), Bytes(kAdmin)};
    const auto start = SteadyClock::now();
    Result<PgResult> result = Run(conn.get(), statement, params,
                                  /*text_results=*/true);
    const auto elapsed = SteadyClock::now() - start;
    if (!result || PQntuples(result->get()) != 1) {
      state.SkipWithError(result ? "shred returned no row"
                                 : result.error().ToString().c_str());
      break;
    }
    const int64_t deleted =
        std::strtoll(PQgetvalue(result->get(), 0, 0), nullptr, 10);
    const int64_t struck =
        std::strtoll(PQgetvalue(result->get(), 0, 1), nullptr, 10);
    if (deleted != records || struck != (events ? records : 0)) {
      state.SkipWithError("the shred did not erase the subject's rows");
      break;
    }
    state.SetIterationTime(std::chrono::duration<double>(elapsed).count());
    millis.push_back(
        std::chrono::duration<double, std::milli>(elapsed).count());
  }
  if (millis.empty()) return;
  state.SetItemsProcessed(state.iterations());
  state.counters["median_ms"] = Median(millis);
  state.counters["min_ms"] = *std::min_element(millis.begin(), millis.end());
  state.counters["max_ms"] = *std::max_element(millis.begin(), millis.end());
  state.counters["setup_s"] = setup_s;
  std::string each;
  for (double m : millis) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%s%.3f", each.empty() ? "" : " ", m);
    each += buffer;
  }
  state.SetLabel(
      std::string(sync ? "synchronous_commit=on" : "synchronous_commit=off") +
      "; shreds ms: " + each);
}

// ---- 6. Subject report ----

// The report store: kReportRecords records of subject 0, each followed by
// kReportOtherRecords / kReportRecords records of the kReportOtherSubjects
// others; a create event per record, then kReportReads reads of subject 0's
// records, each followed by a read of another's (engine_bench's
// SubjectReportStore). Built on first use.
const std::string& ReportStore() {
  static const std::string store = [] {
    const std::string name = "report_store";
    constexpr int kPerMine = 1 + kReportOtherRecords / kReportRecords;
    constexpr int64_t kRecords = kReportRecords + kReportOtherRecords;
    // Record i (0-based, id i + 1): subject 0's when i % kPerMine == 0.
    const auto subject_of = [](int64_t i) {
      if (i % kPerMine == 0) return Subject(0);
      const int64_t other = i / kPerMine * (kPerMine - 1) + i % kPerMine - 1;
      return Subject(1 + static_cast<int>(other % kReportOtherSubjects));
    };
    CreateStore(name, /*indexes=*/false);
    CopyRecords(1, kRecords, subject_of);
    CopyEvents(1, kRecords + 2 * kReportReads, [&](int64_t e) -> EventRow {
      if (e < kRecords) return {kOwner, "create", e + 1, subject_of(e)};
      const int64_t read = (e - kRecords) / 2;
      int64_t record = 0;  // 0-based.
      if ((e - kRecords) % 2 == 0) {
        record = read % kReportRecords * kPerMine;
      } else {
        const int64_t other = read * 7 % kReportOtherRecords;
        record = other / (kPerMine - 1) * kPerMine + other % (kPerMine - 1) + 1;
      }
      return {kOwner, "read", record + 1, subject_of(record)};
    });
    Index(name);
    Settle(name);
    return name;
  }();
  return store;
}

void BM_PgSubjectReport(benchmark::State& state) {
  const bool sync = state.range(0) != 0;
  const std::string& store = ReportStore();
  PgConn conn = Value(Session(store, sync), "session");
  const std::string subject = Subject(0);
  int events = 0;
  for (auto _ : state) {
    const Param params[] = {Bytes(subject)};
    Status begun = PgExec(conn.get(), "BEGIN ISOLATION LEVEL REPEATABLE READ");
    Result<PgResult> records = Run(conn.get(), "report_records", params);
    Result<PgResult> history = Run(conn.get(), "report_events", params);
    if (!begun.ok() || !records || !history ||
        PQntuples(records->get()) != kReportRecords ||
        PQntuples(history->get()) < kReportRecords + kReportReads) {
      state.SkipWithError("the report is not the subject's");
      break;
    }
    bool opened = true;
    for (int r = 0; r < PQntuples(records->get()); ++r) {
      opened = opened && OpenPart(PQgetvalue(records->get(), r, 6),
                                  PQgetlength(records->get(), r, 6));
    }
    events = PQntuples(history->get());
    for (int r = 0; r < events; ++r) {
      opened = opened && OpenPart(PQgetvalue(history->get(), r, 5),
                                  PQgetlength(history->get(), r, 5));
    }
    const std::vector<uint8_t> event_part = SealEventPart();
    const Param event[] = {Bytes(kAuditor), Bytes("report"), Bytes(subject),
                           Bytes(event_part)};
    Result<PgResult> written = Run(conn.get(), "event", event);
    Status committed = PgExec(conn.get(), "COMMIT");
    if (!opened || !written || !committed.ok()) {
      state.SkipWithError("the report's parts or event failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["records"] = kReportRecords;
  state.counters["events"] = events;
  SyncLabel(state, sync);
}

// ---- 8. Breach scope and statistics ----

// The breach store, breach_bench's history in PostgreSQL: kBreachRecords
// records (id i + 1 about subject i, created at kBreachStartMicros in June
// 2025, a `created` column of their own) and --breach_events events: the
// records' creates; then the windows' reads by kSuspect, one hour each,
// two hours apart, in batches of kBreachBatch spread over the hour; then
// batches of reads by the other readers and by kSuspect (every tenth), one
// second apart, after the windows. Reads cycle over the records in order.
// Indexed as the other stores, and on events (principal, at): what a scope
// looks up. Built on first use.
const std::string& BreachStore() {
  static const std::string store = [] {
    const std::string name = "breach_store";
    CreateStore(name, /*indexes=*/false);
    Check(PgExec(Admin(), "ALTER TABLE " + name +
                              ".records ADD COLUMN created timestamptz NOT "
                              "NULL DEFAULT '" +
                              TimestampText(kBreachStartMicros) + "'"),
          "add created");
    CopyRecords(1, kBreachRecords,
                [](int64_t i) { return Subject(static_cast<int>(i)); });
    constexpr int64_t kWindowReads = kBreachMinEvents - kBreachRecords;
    const int64_t after_windows = kBreachStartMicros +
                                  2 * kHourMicros * std::size(kBreachWindows) +
                                  kHourMicros;
    CopyEvents(
        1, TheFlags().breach_events,
        [&](int64_t e) -> EventRow {
          if (e < kBreachRecords) {
            return {kOwner, "create", e + 1, Subject(static_cast<int>(e)),
                    kBreachStartMicros};
          }
          const int64_t read = e - kBreachRecords;
          const int64_t record = read % kBreachRecords;
          EventRow row{kSuspect, "read", record + 1,
                       Subject(static_cast<int>(record))};
          if (read < kWindowReads) {
            int64_t first = 0;
            for (size_t w = 0; w < std::size(kBreachWindows); ++w) {
              const int64_t reads = kBreachWindows[w];
              if (read < first + reads) {
                const int64_t batch = (read - first) / kBreachBatch;
                row.at_micros =
                    kBreachStartMicros +
                    kHourMicros * (2 * static_cast<int64_t>(w) + 1) +
                    (kHourMicros - 1) * batch / (reads / kBreachBatch);
                break;
              }
              first += reads;
            }
            return row;
          }
          const int64_t turn = (read - kWindowReads) / kBreachBatch;
          if (turn % 10 != 9) {
            row.principal =
                "reader-" + std::to_string(turn % kBreachOtherReaders);
          }
          row.at_micros = after_windows + (turn + 1) * 1'000'000;
          return row;
        },
        /*timed=*/true);
    Index(name);
    Check(PgExec(Admin(), "CREATE INDEX events_principal_at ON " + name +
                              ".events (principal, at)"),
          "create the disclosure index");
    Settle(name);
    return name;
  }();
  return store;
}

// The breach store's own statements.
const std::vector<std::pair<const char*, std::string>>& BreachStatements() {
  static const std::vector<std::pair<const char*, std::string>> statements = {
      // $1 principal, $2 from, $3 to (micros since the epoch, [from, to)).
      {"breach_scope",
       "SELECT e.seq, e.at, e.action, e.record_id, e.subject, e.part, r.kind, "
       "r.status FROM events e LEFT JOIN records r ON r.id = e.record_id "
       "WHERE e.principal = $1 AND e.at >= 'epoch'::timestamptz + $2::bigint "
       "* interval '1 microsecond' AND e.at < 'epoch'::timestamptz + "
       "$3::bigint * interval '1 microsecond' ORDER BY e.subject, e.at, "
       "e.seq"},
      {"statistics",
       "SELECT kind, status, date_trunc('month', created) AS month, count(*), "
       "count(status), count(channel), count(priority), count(case_ref) FROM "
       "records GROUP BY kind, status, month ORDER BY kind, status, month"},
  };
  return statements;
}

// Window w's [from, to), as BreachStore() reads it.
std::pair<int64_t, int64_t> BreachWindow(int disclosures) {
  for (size_t w = 0; w < std::size(kBreachWindows); ++w) {
    if (kBreachWindows[w] == disclosures) {
      const int64_t from =
          kBreachStartMicros + kHourMicros * (2 * static_cast<int64_t>(w) + 1);
      return {from, from + kHourMicros};
    }
  }
  std::fprintf(stderr, "no window of %d disclosures\n", disclosures);
  std::abort();
}

// BM_PgBreachScope/events:E/disclosures:D/sync:S (breach_bench
// BM_BreachScope/events:E/disclosures:D/sync:S): an auditor scopes the
// disclosures to kSuspect in the window holding D of them, as Custos's
// Engine::ProduceBreachScope: in one REPEATABLE READ transaction, the
// window's events (through the (principal, at) index) with their records'
// kind and status, each event's part opened, the disclosures grouped by
// subject; then one `breach_scope` event per subject (COPY) and one for
// the act, committed with synchronous_commit S.
void BM_PgBreachScope(benchmark::State& state) {
  const int disclosures = static_cast<int>(state.range(1));
  const bool sync = state.range(2) != 0;
  const std::string& store = BreachStore();
  PgConn conn = Value(Session(store, sync, BreachStatements()), "session");
  const auto [from, to] = BreachWindow(disclosures);
  const std::string from_param = BigEndian(from);
  const std::string to_param = BigEndian(to);
  int found = 0;
  size_t subjects = 0;
  for (auto _ : state) {
    const Param params[] = {Bytes(kSuspect), Bytes(from_param),
                            Bytes(to_param)};
    Status begun = PgExec(conn.get(), "BEGIN ISOLATION LEVEL REPEATABLE READ");
    Result<PgResult> window = Run(conn.get(), "breach_scope", params);
    if (!begun.ok() || !window) {
      state.SkipWithError(begun.ok() ? window.error().ToString().c_str()
                                     : begun.ToString().c_str());
      break;
    }
    found = PQntuples(window->get());
    std::map<std::string, int> by_subject;
    bool opened = true;
    for (int r = 0; r < found; ++r) {
      opened = opened && OpenPart(PQgetvalue(window->get(), r, 5),
                                  PQgetlength(window->get(), r, 5));
      ++by_subject[PQgetvalue(window->get(), r, 4)];
    }
    subjects = by_subject.size();
    std::vector<const std::string*> names;
    for (const auto& entry : by_subject) names.push_back(&entry.first);
    Status copied = PgCopy(
        conn.get(), "COPY events (principal, action, subject, part) FROM STDIN",
        static_cast<int64_t>(names.size()), [&](int64_t i, std::string& out) {
          out += kAuditor;
          out += "\tbreach_scope\t";
          out += *names[static_cast<size_t>(i)];
          out += '\t';
          AppendCopyBytea(out, SealEventPart());
          out += '\n';
        });
    const std::vector<uint8_t> event_part = SealEventPart();
    const Param act[] = {Bytes(kAuditor), Bytes("breach_scope_act"), Bytes(""),
                         Bytes(event_part)};
    Result<PgResult> written = Run(conn.get(), "event", act);
    Status committed = PgExec(conn.get(), "COMMIT");
    if (!opened || !copied.ok() || !written || !committed.ok()) {
      state.SkipWithError("the scope's parts or events failed");
      break;
    }
  }
  if (found != disclosures) {
    state.SkipWithError("the scope did not find the window's disclosures");
  }
  state.counters["disclosures"] = found;
  state.counters["subjects"] = static_cast<double>(subjects);
  SyncLabel(state, sync);
}

// BM_PgStatisticsInHistory/events:E (breach_bench BM_StatisticsInHistory):
// the breach store's records counted by kind, status and month of
// creation, with the attributes present: Custos's statistics answer,
// computed from the live records (Custos reads a folded index instead,
// which keeps counting records after their erasure). A read: no commit to
// sync.
void BM_PgStatisticsInHistory(benchmark::State& state) {
  PgConn conn =
      Value(Session(BreachStore(), false, BreachStatements()), "session");
  int64_t created = 0;
  for (auto _ : state) {
    Result<PgResult> result =
        Run(conn.get(), "statistics", {}, /*text_results=*/true);
    if (!result) {
      state.SkipWithError(result.error().ToString().c_str());
      break;
    }
    created = 0;
    for (int r = 0; r < PQntuples(result->get()); ++r) {
      created += std::strtoll(PQgetvalue(result->get(), r, 3), nullptr, 10);
    }
  }
  if (created != kBreachRecords) {
    state.SkipWithError("the statistics do not count the store's records");
  }
}

// ---- 7. Concurrent synced writers ----

// Commits of BM_PgSyncCreate's threads, ever.
std::atomic<int64_t> concurrent_commits{0};
std::atomic<int64_t> concurrent_serial{0};
// Throughput (commits/s) of the last run at each thread count.
std::map<int, double>& ConcurrentRates() {
  static std::map<int, double> rates;
  return rates;
}

// WAL syncs so far (pg_stat_wal.wal_sync): the statistics each backend
// has flushed to shared memory, which it does at exit at the latest.
int64_t WalSyncs() {
  PgResult result(PQexec(Admin(), "SELECT wal_sync FROM pg_stat_wal"));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    std::fprintf(stderr, "pg_stat_wal: %s\n", PQerrorMessage(Admin()));
    std::abort();
  }
  return std::strtoll(PQgetvalue(result.get(), 0, 0), nullptr, 10);
}

// Commits and WAL syncs when the run's Setup finished.
int64_t commits_at_setup = 0;
int64_t wal_syncs_at_setup = 0;

void OpenConcurrentStore(const benchmark::State&) {
  CreateStore("concurrent_store", /*indexes=*/true);
  Settle("concurrent_store");
  commits_at_setup = concurrent_commits.load();
  wal_syncs_at_setup = WalSyncs();
}

// The group-commit factor of the run, printed (a Teardown cannot set
// counters): commits over WAL syncs between Setup and Teardown. The
// threads' backends have exited (their statistics flushed) once their
// connections are closed, which a short wait covers; the WAL writer's own
// syncs may be missing (it flushes its statistics now and then).
void CloseConcurrentStore(const benchmark::State& state) {
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int64_t commits = concurrent_commits.load() - commits_at_setup;
  const int64_t syncs = WalSyncs() - wal_syncs_at_setup;
  std::fprintf(stderr,
               "BM_PgSyncCreate/threads:%d: %lld commits, %lld WAL syncs "
               "(pg_stat_wal): %.2f commits per sync\n",
               state.threads(), static_cast<long long>(commits),
               static_cast<long long>(syncs),
               syncs == 0
                   ? 0.0
                   : static_cast<double>(commits) / static_cast<double>(syncs));
}

void BM_PgSyncCreate(benchmark::State& state) {
  // Each thread's connection, made before the timed loop.
  PgConn conn = Value(Session("concurrent_store", /*sync=*/true), "session");
  const bool counting = state.thread_index() == 0;
  SteadyClock::time_point start;
  int64_t commits_before = 0;
  bool first = true;
  for (auto _ : state) {
    // All threads enter the loop at one barrier: thread 0's first
    // iteration starts the clock (another thread's first commit takes far
    // longer than getting here).
    if (counting && first) {
      start = SteadyClock::now();
      commits_before = concurrent_commits.load();
      first = false;
    }
    const int64_t serial = concurrent_serial.fetch_add(1);
    if (!CreateOne(state, conn.get(),
                   Subject(static_cast<int>(serial % kSubjectPool)), serial)) {
      break;
    }
    concurrent_commits.fetch_add(1, std::memory_order_relaxed);
  }
  state.SetItemsProcessed(state.iterations());
  // And leave it at one barrier, after every thread's last commit.
  if (!counting || first) return;
  const double rate =
      static_cast<double>(concurrent_commits.load() - commits_before) /
      SecondsSince(start);
  ConcurrentRates()[state.threads()] = rate;
  state.counters["commits_per_s"] = rate;
  if (auto one = ConcurrentRates().find(1);
      state.threads() > 1 && one != ConcurrentRates().end()) {
    state.counters["x_1_thread"] = rate / one->second;
  }
  state.SetLabel("synchronous_commit=on");
}

// ---- 7. Mixed work from 32 clients ----

// custos_load's mixed load (its default mix: create 4, get 4, list 1,
// close 1; a get or close with no record of the client's own open becomes
// a create) on PostgreSQL: each thread one connection, one call at a time,
// synchronous_commit per sync:S, into a store made empty by the Setup. A
// get reads one of the thread's open records with its read event; a list
// reads the owner's first kMixedPage records and writes their read events
// in one transaction; a close re-seals the part and writes the close
// event. Items are calls of every kind; each call's latency is kept, and
// thread 0 reports the percentiles of all of them (p50_us, p99_us,
// p999_us) once every thread has handed its own over.
std::vector<std::vector<double>> mixed_latencies;
std::atomic<int> mixed_handed{0};
std::mutex mixed_mu;

void OpenMixedStore(const benchmark::State& state) {
  CreateStore("mixed_store", /*indexes=*/true);
  Settle("mixed_store");
  mixed_latencies.assign(static_cast<size_t>(state.threads()), {});
  mixed_handed = 0;
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto at = static_cast<size_t>(p * static_cast<double>(sorted.size()));
  return sorted[std::min(at, sorted.size() - 1)];
}

void BM_PgMixed(benchmark::State& state) {
  const bool sync = state.range(0) != 0;
  PgConn conn = Value(Session("mixed_store", sync), "session");
  std::mt19937_64 rng(1000 + static_cast<uint64_t>(state.thread_index()));
  std::vector<int64_t> open;  // This thread's records not closed yet.
  std::vector<double> latencies;
  std::vector<std::vector<uint8_t>> event_parts(kMixedPage);
  std::vector<Param> params;
  for (auto _ : state) {
    int op = static_cast<int>(rng() % 10);  // 0-3 create, 4-7 get, 8 list.
    if (op != 8 && op >= 4 && open.empty()) op = 0;
    const auto started = SteadyClock::now();
    bool ok = true;
    if (op < 4) {
      const int64_t serial = concurrent_serial.fetch_add(1);
      const std::vector<uint8_t> part = SealPart();
      const std::vector<uint8_t> event_part = SealEventPart();
      const std::string case_ref = "case-" + std::to_string(serial);
      const std::string subject =
          Subject(static_cast<int>(serial % kSubjectPool));
      const Param p[] = {Bytes(kOwner), Bytes(subject), Bytes(part),
                         Bytes(case_ref), Bytes(event_part)};
      Result<PgResult> r = Run(conn.get(), "create", p);
      ok = r && PQntuples(r->get()) == 1 && PQgetlength(r->get(), 0, 0) == 8;
      if (ok) {  // A bigint in binary: 8 bytes, big-endian.
        int64_t id = 0;
        for (int i = 0; i < 8; ++i) {
          id = (id << 8) | static_cast<uint8_t>(PQgetvalue(r->get(), 0, 0)[i]);
        }
        open.push_back(id);
      }
    } else if (op < 8) {
      const std::string id = BigEndian(open[rng() % open.size()]);
      const std::vector<uint8_t> event_part = SealEventPart();
      const Param p[] = {Bytes(id), Bytes(kOwner), Bytes(event_part)};
      Result<PgResult> r = Run(conn.get(), "get", p);
      ok = r && PQntuples(r->get()) == 1 &&
           OpenPart(PQgetvalue(r->get(), 0, 0), PQgetlength(r->get(), 0, 0));
    } else if (op == 8) {
      const Param p[] = {Bytes(kOwner)};
      ok = PgExec(conn.get(), "BEGIN").ok();
      Result<PgResult> page = Run(conn.get(), "mixed_list", p);
      ok = ok && page.has_value();
      const int rows = ok ? PQntuples(page->get()) : 0;
      params.clear();
      params.push_back(Bytes(kOwner));
      for (int r = 0; ok && r < rows; ++r) {
        PGresult* got = page->get();
        ok = OpenPart(PQgetvalue(got, r, 2), PQgetlength(got, r, 2));
        event_parts[static_cast<size_t>(r)] = SealEventPart();
        params.push_back({PQgetvalue(got, r, 0), PQgetlength(got, r, 0)});
        params.push_back({PQgetvalue(got, r, 1), PQgetlength(got, r, 1)});
        params.push_back(Bytes(event_parts[static_cast<size_t>(r)]));
      }
      // A full page's statement; a store with fewer records writes no
      // events (only the first moments of a run).
      if (ok && rows == kMixedPage) {
        ok = Run(conn.get(), "mixed_list_events", params).has_value();
      }
      ok = PgExec(conn.get(), "COMMIT").ok() && ok;
    } else {
      const size_t at = rng() % open.size();
      const std::string id = BigEndian(open[at]);
      open[at] = open.back();
      open.pop_back();
      const std::vector<uint8_t> part = SealPart();
      const std::vector<uint8_t> event_part = SealEventPart();
      const Param p[] = {Bytes(id), Bytes(kOwner), Bytes(part),
                         Bytes(event_part)};
      Result<PgResult> r = Run(conn.get(), "close", p);
      ok = r && PQntuples(r->get()) == 1;
    }
    latencies.push_back(
        std::chrono::duration<double, std::micro>(SteadyClock::now() - started)
            .count());
    if (!ok) {
      state.SkipWithError("a mixed call failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  SyncLabel(state, sync);
  {
    std::lock_guard lock(mixed_mu);
    mixed_latencies[static_cast<size_t>(state.thread_index())] =
        std::move(latencies);
  }
  mixed_handed.fetch_add(1);
  if (state.thread_index() != 0) return;
  // Every thread has left the timed loop; each hands its latencies over
  // right after.
  while (mixed_handed.load() < state.threads()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::vector<double> all;
  {
    std::lock_guard lock(mixed_mu);
    for (const auto& each : mixed_latencies) {
      all.insert(all.end(), each.begin(), each.end());
    }
  }
  std::sort(all.begin(), all.end());
  state.counters["p50_us"] = Percentile(all, 0.50);
  state.counters["p99_us"] = Percentile(all, 0.99);
  state.counters["p999_us"] = Percentile(all, 0.999);
}

// ---- The disk's own flush ----

// An 8 KiB pwrite (a WAL page) and an fdatasync of a file in /tmp, where
// the server's data directory is: what one synchronous commit waits for at
// least. Registered first and last (at:0, at:1): on a shared virtual disk
// this latency moves during a run, and every sync:1 figure with it.
void BM_DiskFdatasync(benchmark::State& state) {
  bench::TempDir dir("custos-pg-workloads-fsync");
  const std::string path = dir.path() + "/probe";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    state.SkipWithError("cannot open the probe file");
    return;
  }
  const std::string page(8192, 'w');
  for (auto _ : state) {
    if (::pwrite(fd, page.data(), page.size(), 0) !=
            static_cast<ssize_t>(page.size()) ||
        ::fdatasync(fd) != 0) {
      state.SkipWithError("pwrite or fdatasync failed");
      break;
    }
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
}

// ---- Registration ----

void Register() {
  benchmark::RegisterBenchmark("BM_DiskFdatasync", BM_DiskFdatasync)
      ->ArgName("at")
      ->Arg(0)
      ->MinTime(1.0)
      ->UseRealTime();
  for (int sync : {0, 1}) {
    benchmark::RegisterBenchmark("BM_PgCreate", BM_PgCreate)
        ->ArgName("sync")
        ->Arg(sync)
        ->Iterations(TheFlags().records)
        ->UseRealTime();
  }
  for (int sync : {0, 1}) {
    benchmark::RegisterBenchmark("BM_PgGetRecord", BM_PgGetRecord)
        ->ArgName("sync")
        ->Arg(sync)
        ->UseRealTime();
  }
  for (int sync : {0, 1}) {
    benchmark::RegisterBenchmark("BM_PgListRecords", BM_PgListRecords)
        ->ArgName("sync")
        ->Arg(sync)
        ->UseRealTime();
  }
  // Smallest store first: each store is kept once built.
  std::vector<int> subjects = TheFlags().subjects;
  std::sort(subjects.begin(), subjects.end());
  for (int n : subjects) {
    for (int records : {10, 10'000}) {
      for (int events : {1, 0}) {
        for (int sync : {0, 1}) {
          benchmark::RegisterBenchmark("BM_PgShredSubject", BM_PgShredSubject)
              ->ArgNames({"records", "subjects", "events", "sync"})
              ->Args({records, n, events, sync})
              ->Iterations(kVictims)
              ->UseManualTime()
              ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
  for (int sync : {0, 1}) {
    benchmark::RegisterBenchmark("BM_PgSubjectReport", BM_PgSubjectReport)
        ->ArgName("sync")
        ->Arg(sync)
        ->Iterations(10)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  // The breach store is built once, for the first of them.
  for (int sync : {0, 1}) {
    for (int disclosures : kBreachWindows) {
      benchmark::RegisterBenchmark("BM_PgBreachScope", BM_PgBreachScope)
          ->ArgNames({"events", "disclosures", "sync"})
          ->Args({TheFlags().breach_events, disclosures, sync})
          ->Iterations(5)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  benchmark::RegisterBenchmark("BM_PgStatisticsInHistory",
                               BM_PgStatisticsInHistory)
      ->ArgName("events")
      ->Arg(TheFlags().breach_events)
      ->Iterations(5)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_PgSyncCreate", BM_PgSyncCreate)
      ->Setup(OpenConcurrentStore)
      ->Teardown(CloseConcurrentStore)
      ->Threads(1)
      ->Threads(4)
      ->Threads(16)
      ->MinTime(2.0)
      ->UseRealTime();
  for (int sync : {0, 1}) {
    benchmark::RegisterBenchmark("BM_PgMixed", BM_PgMixed)
        ->ArgName("sync")
        ->Arg(sync)
        ->Setup(OpenMixedStore)
        ->Threads(32)
        ->MinTime(1.0)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("BM_DiskFdatasync", BM_DiskFdatasync)
      ->ArgName("at")
      ->Arg(1)
      ->MinTime(1.0)
      ->UseRealTime();
}

bool ListingOnly(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--benchmark_list_tests" ||
        arg == "--benchmark_list_tests=true") {
      return true;
    }
  }
  return false;
}

int Main(int argc, char** argv) {
  ParseFlags(&argc, argv);
  Register();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (!ListingOnly(argc, argv)) {
    const bench::PgPeer& server = Server();
    benchmark::AddCustomContext("postgresql", server.server_version());
    benchmark::AddCustomContext(
        "postgresql_settings",
        "fsync=on full_page_writes=on autovacuum=off; synchronous_commit per "
        "benchmark (sync:0 off, sync:1 on)");
    benchmark::AddCustomContext("loadavg_start", LoadAverage());
    benchmark::AddCustomContext(
        "sizes",
        "records=" + std::to_string(TheFlags().records) +
            " read_records=" + std::to_string(TheFlags().read_records));
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (auto& rates = ConcurrentRates();
      rates.contains(1) && rates.contains(16)) {
    std::fprintf(stderr, "BM_PgSyncCreate: 16 threads / 1 thread = %.2fx\n",
                 rates[16] / rates[1]);
  }
  if (ServerSlot() != nullptr) {
    std::fprintf(stderr, "load average at the end: %s\n",
                 LoadAverage().c_str());
  }
  ServerSlot().reset();
  return 0;
}

}  // namespace
}  // namespace custos

int main(int argc, char** argv) { return custos::Main(argc, argv); }
