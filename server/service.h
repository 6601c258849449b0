// The RPC interfaces of schema/custos.capnp over the engine (docs/api.md).
//
// Each connection gets its own Gateway, and with it its own lane of the
// worker pool: its calls reach the engine in the order sent, on a worker
// thread, and come back to the event loop to be answered. Requests are
// turned into plain values on the loop thread before the engine call, and
// answers into Cap'n Proto builders after it: workers never touch either.
//
// Thread safety: the interface objects live on the event loop's thread.

#ifndef CUSTOS_SERVER_SERVICE_H_
#define CUSTOS_SERVER_SERVICE_H_

#include <kj/async.h>
#include <kj/timer.h>

#include <atomic>
#include <memory>
#include <string>

#include "schema/custos.capnp.h"
#include "server/worker_pool.h"
#include "storage/engine.h"

namespace custos::server {

// What every interface object of one connection shares.
// The progress of the last sweep a connection started (Admin.sweepProgress):
// written by the worker that sweeps, read by the connection's calls.
struct SweepStatus {
  std::atomic<bool> running{false};
  std::atomic<int> phase{0};  // A SweepPhase.
  std::atomic<uint64_t> records_done{0};
  std::atomic<uint64_t> batches{0};
  std::atomic<int64_t> started_micros{0};
};

struct Connection {
  Engine& engine;
  WorkerPool& pool;
  std::shared_ptr<WorkerPool::Lane> lane;
  kj::Timer& timer;
  // Failed logins on this connection: each one after the first doubles the
  // wait before the refusal (from 100 ms, at most 5 s).
  int failed_logins = 0;
  // The lane of the connection's long admin work (sweeps, shred
  // completion, re-keying, erasure verification, rotations, backups),
  // created at its first such call: a backup that runs for minutes holds
  // one worker, never the connection's other calls (docs/api.md).
  std::shared_ptr<WorkerPool::Lane> long_lane = nullptr;
  // ServerOptions::backup_dir.
  std::string backup_dir = "";
  // Shared with the worker of a running sweep, which may outlive the call.
  std::shared_ptr<SweepStatus> sweep_status = std::make_shared<SweepStatus>();
};

// The bootstrap capability of a new connection.
kj::Own<rpc::Gateway::Server> NewGateway(std::shared_ptr<Connection> conn);

}  // namespace custos::server

#endif  // CUSTOS_SERVER_SERVICE_H_
