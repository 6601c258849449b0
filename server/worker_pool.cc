#include "server/worker_pool.h"

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
  std::unique_lock lock(mu_);
  while (true) {
    ready_cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
    if (ready_.empty()) return;  // Stopping, and nothing left to run.
    std::shared_ptr<Lane> lane = std::move(ready_.front());
    ready_.pop_front();
    std::move_only_function<void()> task = std::move(lane->tasks.front());
    lane->tasks.pop_front();
    lane->running = true;
    lock.unlock();
    task();
    task = nullptr;  // Destroyed outside the lock too.
    lock.lock();
    lane->running = false;
    // Back of the line: the other lanes with work go first.
    if (!lane->tasks.empty()) {
      ready_.push_back(std::move(lane));
      ready_cv_.notify_one();
    }
  }
}

}  // namespace custos::server
