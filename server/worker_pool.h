// The worker threads engine calls run on (DESIGN section 7: the event loop
// never waits on the disk).
//
// Tasks are posted to a Lane, one per connection. A lane's tasks run one
// at a time, in the order posted, so a connection's calls take effect in
// the order it sent them; lanes with work are served in turn (round robin),
// so a connection with hundreds of calls queued cannot starve one that
// sends a call at a time. A worker that finishes a task while no other
// lane waits runs its lane's next task itself: no wake-up of another
// worker, no hand-off of the lane between threads (its turn would come
// straight back). Answers go back to the event loop through a LoopInbox
// (server/loop_inbox.h); the pool itself knows nothing of kj.
//
// Each worker thread is named "custosd-worker" (top -H, ps -L, perf;
// LevelDB's background thread, started from a worker, inherits the name).
//
// Each worker thread logs kj's messages through server/kj_log.h.
//
// Thread safety: thread-safe. Tasks must not touch Cap'n Proto readers or
// builders (they belong to the event loop's thread).

#ifndef CUSTOS_SERVER_WORKER_POOL_H_
#define CUSTOS_SERVER_WORKER_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace custos::server {

class WorkerPool {
 public:
  class Lane;

  // REQUIRES: threads >= 1.
  explicit WorkerPool(size_t threads);
  // Runs every task already posted, then joins the workers.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  std::shared_ptr<Lane> NewLane();

  // Runs `task` on a worker once every task posted earlier to `lane` has
  // run.
  void Post(const std::shared_ptr<Lane>& lane,
            std::move_only_function<void()> task);

  size_t threads() const { return workers_.size(); }

 private:
  void Work();

  std::mutex mu_;
  std::condition_variable ready_cv_;
  // Lanes with queued tasks and none running, in turn order.
  std::deque<std::shared_ptr<Lane>> ready_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

class WorkerPool::Lane {
 private:
  friend class WorkerPool;
  std::deque<std::move_only_function<void()>> tasks;  // Guarded by mu_.
  bool running = false;                               // Guarded by mu_.
};

}  // namespace custos::server

#endif  // CUSTOS_SERVER_WORKER_POOL_H_
