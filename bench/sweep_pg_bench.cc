// The PostgreSQL 15 peer of sweep_bench (issue 11, "Benchmarks"; the first
// piece of issue 16's side-by-side run): what a retention sweep costs when
// the records live in a PostgreSQL table with an indexed deadline column and
// are erased by `DELETE`, and how long until their bytes are physically
// gone (`DELETE`, then `VACUUM FULL`, which rewrites the table and its
// indexes without the dead rows). Results are recorded in bench/RESULTS.md.
//
// A throwaway server (bench/pg_peer.h) is started for the run and removed
// after it, with autovacuum off (nothing vacuums behind the measurement's
// back) and fsync off by default (--fsync=on for PostgreSQL's defaults).
// One table per store:
//
//   records(id bigserial primary key, part bytea, kind text, subject text,
//           ref text, state text, erase_after timestamptz)
//   + a B-tree index on erase_after
//
// `part` is what Custos stores for a subject part: crypto::Seal (Custos's
// own XChaCha20-Poly1305 seal: version byte, 24-byte nonce, ciphertext,
// 16-byte tag) of --part_bytes (default 256) bytes of plaintext under one
// random key, i.e. 297 bytes per row. The four text columns are the
// attributes. Rows are loaded with COPY (text format), then the index is
// built, then the store is settled: VACUUM ANALYZE, CHECKPOINT, sync().
//
// Two workloads, both with the due rows either "clustered" (the first ids)
// or "spread" (evenly over the id range), as in sweep_bench:
//
// - sweep1000: the layout of sweep_bench: 6 groups of 1,000 due rows, group
//   g due at its own hour; the others ("bulk") one in four with a deadline
//   three years on (in the index, never due), the rest NULL. Three sweeps
//   `DELETE FROM records WHERE erase_after <= $1` (groups 0-2; each must
//   delete exactly 1,000 rows), then VACUUM + CHECKPOINT (untimed), then
//   three sweeps of `DELETE` followed by `VACUUM FULL records` (groups 3-5),
//   each timed on its own. As sweep_bench's compaction off and on.
// - half (--half[=RECORDS]): RECORDS rows (default 1,000,000), half due at one
//   instant: one `DELETE` of them, then one `VACUUM FULL`.
//
// Every statement is sent by libpq in autocommit mode; a time is the
// client's wall time from sending the statement to its result (commit
// included). Figures per due row are the time divided by the rows deleted.

#include <libpq-fe.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
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

constexpr int kDuePerSweep = 1'000;
constexpr int kSweepsPerRun = 3;
constexpr int kGroups = 2 * kSweepsPerRun;
constexpr int kSubjectPool = 1'000;

enum class Layout { kClustered = 0, kSpread = 1 };

const char* Name(Layout layout) {
  return layout == Layout::kClustered ? "clustered" : "spread";
}

double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

// "1.23 0.98 0.75" from /proc/loadavg.
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

// The deadline of due group `group`: one hour apart, as in sweep_bench.
std::string GroupDeadline(int group) {
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "2026-07-01 %02d:00:00+00", group);
  return buffer;
}
constexpr char kFarDeadline[] = "2029-07-01 00:00:00+00";

struct Args {
  std::vector<int> records = {10'000, 100'000};
  std::vector<Layout> layouts = {Layout::kClustered, Layout::kSpread};
  bool fsync = false;
  bool sweeps = true;
  int half_records = 0;  // 0: no "half" workload.
  std::vector<Layout> half_layouts = {Layout::kClustered, Layout::kSpread};
  int part_bytes = 256;
  std::string json;
  std::string pg_bin = bench::PgPeerOptions().bin_dir;
  std::vector<std::pair<std::string, std::string>> pg_settings;
};

[[noreturn]] void Usage(const char* program, int exit_code = 2) {
  std::fprintf(
      stderr,
      "usage: %s [--records=10000,100000[,...]] [--layouts=clustered,spread]\n"
      "          [--fsync=off|on] [--no_sweeps] [--half[=RECORDS]]\n"
      "          [--half_layouts=clustered,spread] [--part_bytes=256]\n"
      "          [--json=FILE]\n"
      "          [--pg_bin=DIR] [--pg_setting=NAME=VALUE]...\n"
      "  --records     store sizes of the sweep1000 workload (>= 6000)\n"
      "  --half        also DELETE half of a store of RECORDS rows\n"
      "                (default 1000000), then VACUUM FULL\n"
      "  --half_layouts  the layouts of the half workload (default both)\n"
      "  --no_sweeps   skip the sweep1000 workload\n"
      "  --pg_bin      PostgreSQL's binaries (default "
      "/usr/lib/postgresql/15/bin)\n"
      "  --pg_setting  a server setting (-c NAME=VALUE), e.g. "
      "shared_buffers=1GB\n",
      program);
  std::exit(exit_code);
}

// A positive count from the command line, or nullopt.
std::optional<int> ParseCount(std::string_view text) {
  int value = 0;
  const auto [end, error] =
      std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value <= 0) {
    return std::nullopt;
  }
  return value;
}

std::vector<std::string> SplitCommas(std::string_view text) {
  std::vector<std::string> parts;
  std::stringstream in{std::string(text)};
  for (std::string part; std::getline(in, part, ',');) parts.push_back(part);
  return parts;
}

// A comma-separated list of layout names.
std::vector<Layout> ParseLayouts(std::string_view names, const char* program) {
  std::vector<Layout> layouts;
  for (const std::string& name : SplitCommas(names)) {
    if (name == "clustered") {
      layouts.push_back(Layout::kClustered);
    } else if (name == "spread") {
      layouts.push_back(Layout::kSpread);
    } else {
      Usage(program);
    }
  }
  return layouts;
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value_of =
        [&](std::string_view flag) -> std::optional<std::string_view> {
      if (arg.starts_with(flag) && arg.size() > flag.size() &&
          arg[flag.size()] == '=') {
        return arg.substr(flag.size() + 1);
      }
      return std::nullopt;
    };
    if (arg == "--help") Usage(argv[0], 0);
    if (auto v = value_of("--records")) {
      args.records.clear();
      for (const std::string& n : SplitCommas(*v)) {
        const std::optional<int> count = ParseCount(n);
        if (!count || *count < kGroups * kDuePerSweep) Usage(argv[0]);
        args.records.push_back(*count);
      }
    } else if (auto layouts = value_of("--layouts")) {
      args.layouts = ParseLayouts(*layouts, argv[0]);
    } else if (auto half_layouts = value_of("--half_layouts")) {
      args.half_layouts = ParseLayouts(*half_layouts, argv[0]);
    } else if (auto fsync = value_of("--fsync")) {
      if (*fsync != "on" && *fsync != "off") Usage(argv[0]);
      args.fsync = *fsync == "on";
    } else if (arg == "--no_sweeps") {
      args.sweeps = false;
    } else if (arg == "--half") {
      args.half_records = 1'000'000;
    } else if (auto half = value_of("--half")) {
      const std::optional<int> count = ParseCount(*half);
      if (!count || *count < 2) Usage(argv[0]);
      args.half_records = *count;
    } else if (auto bytes = value_of("--part_bytes")) {
      const std::optional<int> count = ParseCount(*bytes);
      if (!count) Usage(argv[0]);
      args.part_bytes = *count;
    } else if (auto json = value_of("--json")) {
      args.json = *json;
    } else if (auto bin = value_of("--pg_bin")) {
      args.pg_bin = *bin;
    } else if (auto setting = value_of("--pg_setting")) {
      const size_t equals = setting->find('=');
      if (equals == std::string_view::npos) Usage(argv[0]);
      args.pg_settings.emplace_back(setting->substr(0, equals),
                                    setting->substr(equals + 1));
    } else {
      Usage(argv[0]);
    }
  }
  return args;
}

// One table's rows: for each row, the due group it belongs to (-1: bulk).
std::vector<int8_t> DueGroups(int records, Layout layout, int groups,
                              int due_per_group) {
  const int due_total = groups * due_per_group;
  if (records < due_total) {  // ParseArgs allows no such store.
    std::fprintf(stderr, "a store needs at least %d records\n", due_total);
    std::abort();
  }
  std::vector<int8_t> group_of(static_cast<size_t>(records), -1);
  for (int j = 0; j < due_total; ++j) {
    const int64_t position =
        layout == Layout::kClustered
            ? j
            : static_cast<int64_t>(j) * records / due_total;
    group_of[static_cast<size_t>(position)] = static_cast<int8_t>(
        layout == Layout::kClustered ? j / due_per_group : j % groups);
  }
  return group_of;
}

// Hint bits set, statistics fresh, dirty buffers written and synced: the
// timed statements pay for their own work only.
void Settle(PGconn* conn) {
  Check(PgExec(conn, "VACUUM (ANALYZE) records"), "vacuum analyze");
  Check(PgExec(conn, "CHECKPOINT"), "checkpoint");
  ::sync();
}

// Drops and re-creates table "records", loads one row per entry of
// `group_of` with COPY, builds the deadline index and settles the table.
void Load(PGconn* conn, const std::vector<int8_t>& group_of, int part_bytes) {
  Check(PgExec(conn,
               "DROP TABLE IF EXISTS records;"
               "CREATE TABLE records (id bigserial PRIMARY KEY,"
               " part bytea NOT NULL, kind text NOT NULL,"
               " subject text NOT NULL, ref text NOT NULL,"
               " state text NOT NULL, erase_after timestamptz)"),
        "create table");
  const crypto::SecretKey key = crypto::SecretKey::Generate();
  const std::vector<uint8_t> plaintext(static_cast<size_t>(part_bytes), 'x');
  int bulk = 0;
  Check(PgCopy(conn,
               "COPY records (part, kind, subject, ref, state, erase_after) "
               "FROM STDIN",
               static_cast<int64_t>(group_of.size()),
               [&](int64_t i, std::string& chunk) {
                 const int group = group_of[static_cast<size_t>(i)];
                 AppendCopyBytea(
                     chunk, crypto::Seal(
                                key, std::span<const uint8_t>(plaintext), {}));
                 char subject[48];
                 std::snprintf(subject, sizeof(subject),
                               "subject-%05d@example.org",
                               static_cast<int>(i % kSubjectPool));
                 chunk += group >= 0 ? "\talert\t" : "\trequest\t";
                 chunk += subject;
                 chunk += '\t';
                 chunk += std::to_string(i);
                 if (group >= 0) {
                   chunk += "\tclosed\t";
                   chunk += GroupDeadline(group);
                 } else if (bulk++ % 4 == 0) {
                   chunk += "\twithdrawn\t";
                   chunk += kFarDeadline;
                 } else {
                   chunk += "\tactive\t\\N";
                 }
                 chunk += '\n';
               }),
        "copy");
  Check(
      PgExec(conn, "CREATE INDEX records_erase_after ON records (erase_after)"),
      "create index");
  Settle(conn);
}

// The one integer `sql` returns.
int64_t QueryInt(PGconn* conn, const char* sql) {
  PgResult result(PQexec(conn, sql));
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    std::fprintf(stderr, "%s: %s\n", sql, PQerrorMessage(conn));
    std::abort();
  }
  return std::strtoll(PQgetvalue(result.get(), 0, 0), nullptr, 10);
}

int64_t TableBytes(PGconn* conn) {
  return QueryInt(conn, "SELECT pg_total_relation_size('records')");
}
// The table alone (its heap), without its indexes and TOAST.
int64_t HeapBytes(PGconn* conn) {
  return QueryInt(conn, "SELECT pg_relation_size('records')");
}
// Where the write-ahead log is, in bytes: differences are WAL written.
int64_t WalPosition(PGconn* conn) {
  return QueryInt(
      conn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint");
}

// DELETE of the rows due at `deadline`; returns the time in ms. Aborts
// unless exactly `expected` rows were deleted.
double TimedDelete(PGconn* conn, const std::string& deadline, int expected) {
  const char* params[] = {deadline.c_str()};
  const auto started = std::chrono::steady_clock::now();
  PgResult result(PQexecParams(conn,
                               "DELETE FROM records WHERE erase_after <= $1", 1,
                               nullptr, params, nullptr, nullptr, 0));
  const double ms = MillisSince(started);
  if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
    std::fprintf(stderr, "DELETE: %s\n", PQerrorMessage(conn));
    std::abort();
  }
  if (std::atoi(PQcmdTuples(result.get())) != expected) {
    std::fprintf(stderr, "DELETE removed %s rows, expected %d\n",
                 PQcmdTuples(result.get()), expected);
    std::abort();
  }
  return ms;
}

double TimedVacuumFull(PGconn* conn) {
  const auto started = std::chrono::steady_clock::now();
  Check(PgExec(conn, "VACUUM FULL records"), "vacuum full");
  return MillisSince(started);
}

double Mean(const std::vector<double>& values) {
  return std::accumulate(values.begin(), values.end(), 0.0) /
         static_cast<double>(values.size());
}

std::string Join(const std::vector<double>& values) {
  std::string text;
  char buffer[32];
  for (double value : values) {
    std::snprintf(buffer, sizeof(buffer), "%s%.1f", text.empty() ? "" : ", ",
                  value);
    text += buffer;
  }
  return text;
}

struct Row {
  std::string workload;
  int records = 0;
  Layout layout = Layout::kClustered;
  int due = 0;
  std::vector<double> delete_ms;       // DELETE alone.
  std::vector<double> delete_full_ms;  // DELETE of the sweeps with VACUUM FULL.
  std::vector<double> vacuum_full_ms;
  int64_t bytes_before = 0;
  int64_t bytes_after = 0;
  std::string load_before;
  std::string load_after;
  double load_seconds = 0;
};

void Print(const Row& row) {
  const double delete_us = Mean(row.delete_ms) * 1e3 / row.due;
  const double gone_ms = Mean(row.delete_full_ms) + Mean(row.vacuum_full_ms);
  std::printf(
      "%-9s %9d %-9s %7d | DELETE %9.2f ms %8.2f us/row [%s] | DELETE+VACUUM "
      "FULL %9.1f ms %8.2f us/row [DELETE %s; VACUUM FULL %s] | %.1f -> %.1f "
      "MiB | load %s -> %s\n",
      row.workload.c_str(), row.records, Name(row.layout), row.due,
      Mean(row.delete_ms), delete_us, Join(row.delete_ms).c_str(), gone_ms,
      gone_ms * 1e3 / row.due, Join(row.delete_full_ms).c_str(),
      Join(row.vacuum_full_ms).c_str(),
      static_cast<double>(row.bytes_before) / (1 << 20),
      static_cast<double>(row.bytes_after) / (1 << 20), row.load_before.c_str(),
      row.load_after.c_str());
  std::fflush(stdout);
}

nlohmann::json ToJson(const Row& row) {
  const double gone_ms = Mean(row.delete_full_ms) + Mean(row.vacuum_full_ms);
  return {{"workload", row.workload},
          {"records", row.records},
          {"layout", Name(row.layout)},
          {"due", row.due},
          {"delete_ms", row.delete_ms},
          {"delete_us_per_row", Mean(row.delete_ms) * 1e3 / row.due},
          {"delete_before_vacuum_full_ms", row.delete_full_ms},
          {"vacuum_full_ms", row.vacuum_full_ms},
          {"delete_vacuum_full_us_per_row", gone_ms * 1e3 / row.due},
          {"table_bytes_before", row.bytes_before},
          {"table_bytes_after", row.bytes_after},
          {"load_seconds", row.load_seconds},
          {"loadavg_before", row.load_before},
          {"loadavg_after", row.load_after}};
}

Row Sweep1000(PGconn* conn, int records, Layout layout, int part_bytes) {
  Row row;
  row.workload = "sweep1000";
  row.records = records;
  row.layout = layout;
  row.due = kDuePerSweep;
  const auto load_started = std::chrono::steady_clock::now();
  Load(conn, DueGroups(records, layout, kGroups, kDuePerSweep), part_bytes);
  row.load_seconds = MillisSince(load_started) / 1e3;
  row.bytes_before = TableBytes(conn);
  row.load_before = LoadAverage();
  int group = 0;
  for (int i = 0; i < kSweepsPerRun; ++i) {
    row.delete_ms.push_back(
        TimedDelete(conn, GroupDeadline(group++), kDuePerSweep));
  }
  Settle(conn);
  for (int i = 0; i < kSweepsPerRun; ++i) {
    row.delete_full_ms.push_back(
        TimedDelete(conn, GroupDeadline(group++), kDuePerSweep));
    row.vacuum_full_ms.push_back(TimedVacuumFull(conn));
    Check(PgExec(conn, "CHECKPOINT"), "checkpoint");
  }
  row.load_after = LoadAverage();
  row.bytes_after = TableBytes(conn);
  return row;
}

Row Half(PGconn* conn, int records, Layout layout, int part_bytes) {
  const int due = records / 2;
  Row row;
  row.workload = "half";
  row.records = records;
  row.layout = layout;
  row.due = due;
  const auto load_started = std::chrono::steady_clock::now();
  Load(conn, DueGroups(records, layout, 1, due), part_bytes);
  row.load_seconds = MillisSince(load_started) / 1e3;
  row.bytes_before = TableBytes(conn);
  const int64_t heap_before = HeapBytes(conn);
  row.load_before = LoadAverage();
  const int64_t wal_start = WalPosition(conn);
  row.delete_ms.push_back(TimedDelete(conn, GroupDeadline(0), due));
  const int64_t wal_deleted = WalPosition(conn);
  // The same DELETE is the first half of "bytes gone".
  row.delete_full_ms = row.delete_ms;
  row.vacuum_full_ms.push_back(TimedVacuumFull(conn));
  const int64_t wal_vacuumed = WalPosition(conn);
  row.load_after = LoadAverage();
  row.bytes_after = TableBytes(conn);
  // What the bytes-gone analysis compares with LevelDB's compactions
  // (bench/RESULTS.md, "Issue 16: what bounds bytes gone"): on stderr, so
  // the printed row and the JSON stay as compare.py reads them.
  const auto mib = [](int64_t bytes) {
    return static_cast<double>(bytes) / (1 << 20);
  };
  std::fprintf(stderr,
               "[sweep_pg_bench] half %s: heap %.1f -> %.1f MiB, with "
               "indexes and TOAST %.1f -> %.1f MiB; WAL written by the "
               "DELETE %.1f MiB, by the VACUUM FULL %.1f MiB\n",
               Name(layout), mib(heap_before), mib(HeapBytes(conn)),
               mib(row.bytes_before), mib(row.bytes_after),
               mib(wal_deleted - wal_start), mib(wal_vacuumed - wal_deleted));
  return row;
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  bench::PgPeerOptions options;
  options.bin_dir = args.pg_bin;
  options.fsync = args.fsync;
  options.settings = {{"autovacuum", "off"},
                      {"client_min_messages", "warning"}};
  options.settings.insert(options.settings.end(), args.pg_settings.begin(),
                          args.pg_settings.end());
  std::unique_ptr<bench::PgPeer> peer =
      Value(bench::PgPeer::Start(options), "start PostgreSQL");
  PgConn conn = Value(peer->Connect(), "connect");
  std::printf(
      "PostgreSQL %s in %s, fsync=%s, autovacuum off; part %d B sealed "
      "(%zu B); load average %s\n",
      peer->server_version().c_str(), peer->dir().c_str(),
      args.fsync ? "on" : "off", args.part_bytes,
      args.part_bytes + crypto::kSealOverhead, LoadAverage().c_str());
  std::fflush(stdout);

  std::vector<Row> rows;
  if (args.sweeps) {
    for (int records : args.records) {
      for (Layout layout : args.layouts) {
        rows.push_back(Sweep1000(conn.get(), records, layout, args.part_bytes));
        Print(rows.back());
      }
    }
  }
  if (args.half_records > 0) {
    for (Layout layout : args.half_layouts) {
      rows.push_back(
          Half(conn.get(), args.half_records, layout, args.part_bytes));
      Print(rows.back());
    }
  }
  if (!args.json.empty()) {
    nlohmann::json out = {{"server_version", peer->server_version()},
                          {"fsync", args.fsync},
                          {"part_bytes", args.part_bytes},
                          {"rows", nlohmann::json::array()}};
    for (const Row& row : rows) out["rows"].push_back(ToJson(row));
    std::ofstream(args.json) << out.dump(2) << '\n';
  }
  return 0;
}

}  // namespace
}  // namespace custos

int main(int argc, char** argv) { return custos::Main(argc, argv); }
