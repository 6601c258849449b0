// The RPC interfaces of schema/custos.capnp over the engine (docs/api.md).
//
// Each connection gets its own Gateway, and with it its own lane of the
// worker pool: its calls reach the engine in the order sent, on a worker
// thread, and come back to the event loop to be answered. Long admin work
// has one lane for the whole server (LongWork). Requests are
// turned into plain values on the loop thread before the engine call, and
// answers into Cap'n Proto builders after it: workers never touch either.
//
// Thread safety: the interface objects live on the event loop's thread.

#ifndef CUSTOS_SERVER_SERVICE_H_
#define CUSTOS_SERVER_SERVICE_H_

#include <kj/async.h>
#include <kj/timer.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "schema/custos.capnp.h"
#include "server/worker_pool.h"
#include "storage/engine.h"

namespace custos::server {

// The progress of the last sweep the server started (Admin.sweepProgress):
// written by the worker that sweeps, read by any connection's calls.
struct SweepStatus {
  std::atomic<bool> running{false};
  std::atomic<int> phase{0};  // A SweepPhase.
  std::atomic<uint64_t> records_done{0};
  std::atomic<uint64_t> batches{0};
  std::atomic<int64_t> started_micros{0};
};

// The server's one lane of long admin work (sweeps, shred completion,
// policy re-application, re-keying, erasure and chain verification, key
// rotations, backups and their verification), shared by every connection:
// at most one such call runs at a time, server-wide, on this lane of the
// pool; one that arrives meanwhile, from any connection, is refused at once
// with Unavailable and changes nothing (docs/api.md, docs/decisions.md).
struct LongWork {
  std::shared_ptr<WorkerPool::Lane> lane = nullptr;
  // True from a long call's acceptance (on the event loop's thread) until
  // its engine work ends (on the worker, before the answer is sent).
  std::atomic<bool> busy{false};
  SweepStatus sweep;
  // ServerOptions::TEST_sweep_progress.
  std::function<void(const SweepProgress&)> TEST_sweep_progress = nullptr;
};

// What every interface object of one connection shares.
struct CreateBatch;

struct Connection {
  Engine& engine;
  WorkerPool& pool;
  std::shared_ptr<WorkerPool::Lane> lane;
  kj::Timer& timer;
  // Failed logins on this connection: each one after the first doubles the
  // wait before the refusal (from 100 ms, at most 5 s).
  int failed_logins = 0;
  // The server's long work (shared by every connection): a backup that
  // runs for minutes holds one worker, never the connection's other calls.
  std::shared_ptr<LongWork> long_work = nullptr;
  // ServerOptions::backup_dir.
  std::string backup_dir = "";
  // The creates of one session that wait, consecutive in the lane, for
  // their one CreateRecords write (service.cc, CreateBatch). Touched on the
  // event loop's thread only; any other call posted to the lane closes it,
  // so calls keep the order they were sent in.
  std::shared_ptr<CreateBatch> open_creates = nullptr;
};

// The bootstrap capability of a new connection.
kj::Own<rpc::Gateway::Server> NewGateway(std::shared_ptr<Connection> conn);

}  // namespace custos::server

#endif  // CUSTOS_SERVER_SERVICE_H_
