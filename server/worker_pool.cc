#include "server/worker_pool.h"

#include <pthread.h>

#include <utility>

#include "server/kj_log.h"

namespace custos::server {

WorkerPool::WorkerPool(size_t threads) {
  for (size_t i = 0; i < threads; ++i)
    workers_.emplace_back([this] { Work(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  ready_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

std::shared_ptr<WorkerPool::Lane> WorkerPool::NewLane() {
  return std::make_shared<Lane>();
}

void WorkerPool::Post(const std::shared_ptr<Lane>& lane,
                      std::move_only_function<void()> task) {
  {
    std::lock_guard lock(mu_);
    lane->tasks.push_back(std::move(task));
    if (lane->running || lane->tasks.size() > 1) return;  // Already queued.
    ready_.push_back(lane);
  }
  ready_cv_.notify_one();
}

void WorkerPool::Work() {
  QuietKjLog kj_log;  // kj's log callback is per thread.
  // Its name in top -H, ps -L and perf (at most 15 characters).
  pthread_setname_np(pthread_self(), "custosd-worker");
  std::unique_lock lock(mu_);
  std::shared_ptr<Lane> lane;  // The lane this worker serves next.
  while (true) {
    if (lane == nullptr) {
      ready_cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
      if (ready_.empty()) return;  // Stopping, and nothing left to run.
      lane = std::move(ready_.front());
      ready_.pop_front();
    }
    std::move_only_function<void()> task = std::move(lane->tasks.front());
    lane->tasks.pop_front();
    lane->running = true;
    lock.unlock();
    task();
    task = nullptr;  // Destroyed outside the lock too.
    lock.lock();
    lane->running = false;
    if (lane->tasks.empty()) {
      lane = nullptr;
    } else if (!ready_.empty()) {
      // Back of the line: the other lanes with work go first.
      ready_.push_back(std::move(lane));
      lane = std::move(ready_.front());
      ready_.pop_front();
    }
    // Otherwise no other lane waits: this worker stays on its lane, with
    // no hand-off to another worker (which the round robin would have
    // given the lane back to anyway). Either way the number of lanes
    // waiting is what it was, so the wake-ups Post gave for them still
    // stand.
  }
}

}  // namespace custos::server
