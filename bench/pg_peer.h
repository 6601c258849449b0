// A throwaway PostgreSQL server for benchmarks that compare Custos with
// PostgreSQL (issues 11 and 16).
//
// PgPeer::Start() runs Debian's PostgreSQL 15 binaries
// (/usr/lib/postgresql/15/bin by default): `initdb` into a fresh mkdtemp()
// directory under /tmp, then `postgres` on that data directory, listening
// only on a unix socket in the same directory (listen_addresses = ''; no
// TCP port is opened). The destructor stops the server (fast shutdown) and
// removes the directory.
//
// Running as root: initdb and postgres refuse to run as root. When the
// process's effective uid is 0, the directory is given to
// PgPeerOptions::run_as (default "nobody") and both programs run as that
// user (setgroups/setgid/setuid in the forked child, before exec). As
// root, the client still connects: root passes the directory's permission
// checks. Otherwise they run as the calling user.
//
// If the benchmark process dies without running the destructor (abort,
// SIGKILL), the server gets SIGQUIT (PR_SET_PDEATHSIG) and exits, but the
// directory (/tmp/custos-pg-peer-XXXXXX) is left behind.
//
// Thread safety: a PgPeer is used from one thread. The forked children are
// started with fork() and exec(), so start it before starting threads.

#ifndef CUSTOS_BENCH_PG_PEER_H_
#define CUSTOS_BENCH_PG_PEER_H_

#include <libpq-fe.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace custos::bench {

struct PgPeerOptions {
  // Directory holding initdb and postgres.
  // Default: "/usr/lib/postgresql/15/bin".
  std::string bin_dir = "/usr/lib/postgresql/15/bin";

  // When false, the server runs with fsync = off, synchronous_commit = off
  // and full_page_writes = off (nothing is durable, as with Custos's
  // Options::sync_writes = false). When true, PostgreSQL's defaults (all
  // three on).
  // Default: false.
  bool fsync = false;

  // The user initdb and postgres run as when this process runs as root.
  // Ignored otherwise.
  // Default: "nobody".
  std::string run_as = "nobody";

  // Extra server settings, each passed as `-c name=value`, after the
  // harness's own (listen_addresses, unix_socket_directories, fsync,
  // synchronous_commit, full_page_writes), e.g. {"autovacuum", "off"}.
  std::vector<std::pair<std::string, std::string>> settings;

  // How long initdb may take, and how long the server may take to accept
  // connections once started. Past either, Start() fails.
  // Default: 120 s and 30 s.
  std::chrono::seconds initdb_timeout{120};
  std::chrono::seconds start_timeout{30};
};

// An open libpq connection, closed (PQfinish) when destroyed.
struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;

// A result, cleared (PQclear) when destroyed.
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

class PgPeer {
 public:
  // Creates the directory, runs initdb and starts the server; returns once
  // the server accepts connections.
  // Errors: NotFound if bin_dir has no initdb or postgres, or run_as is no
  // user; Unavailable if initdb fails, the server exits, or either step
  // takes longer than its timeout (the message then carries the tail of
  // the program's log); Internal for a failed system call. On error
  // nothing is left running and the directory is removed.
  static Result<std::unique_ptr<PgPeer>> Start(const PgPeerOptions& options);

  // Stops the server (SIGINT, fast shutdown; SIGKILL if it has not exited
  // after 30 s) and removes the directory.
  ~PgPeer();
  PgPeer(const PgPeer&) = delete;
  PgPeer& operator=(const PgPeer&) = delete;

  // A new connection to database "postgres" as the superuser "custos".
  // Errors: Unavailable, with libpq's message.
  Result<PgConn> Connect() const;

  // The libpq connection string Connect() uses
  // ("host=<dir> dbname=postgres user=custos").
  const std::string& conninfo() const { return conninfo_; }
  // The temporary directory: data directory "data", the socket, "server.log".
  const std::string& dir() const { return dir_; }
  // The server's version, as `SHOW server_version` says.
  const std::string& server_version() const { return server_version_; }

 private:
  PgPeer() = default;
  void Stop();

  std::string dir_;
  std::string conninfo_;
  std::string server_version_;
  pid_t server_pid_ = -1;
};

// Runs `sql` (one or more statements, no parameters) on `conn`.
// Errors: Internal, with the server's message.
Status PgExec(PGconn* conn, const std::string& sql);

// Runs `sql` (a COPY ... FROM STDIN in text format) on `conn` with `rows`
// rows, row i appended by `row(i, out)` with its newline; the data goes in
// chunks of about 1 MiB. Errors: Internal, with the server's message.
Status PgCopy(PGconn* conn, const std::string& sql, int64_t rows,
              const std::function<void(int64_t, std::string&)>& row);

// Appends `bytes` as a bytea in hex, its backslash escaped for COPY's
// text format.
void AppendCopyBytea(std::string& out, std::span<const uint8_t> bytes);

}  // namespace custos::bench

#endif  // CUSTOS_BENCH_PG_PEER_H_
