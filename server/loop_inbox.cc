#include "server/loop_inbox.h"

#include <utility>

namespace custos::server {

LoopInbox::~LoopInbox() = default;

void LoopInbox::Add(Delivery delivery) noexcept {
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> wake;
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(delivery));
    wake = kj::mv(wake_);
    if (wake.get() != nullptr) ++wakeups_;
  }
  // Outside the lock: the loop may already be running.
  if (wake.get() != nullptr) wake->fulfill();
}

size_t LoopInbox::TEST_wakeups() const {
  std::lock_guard lock(mu_);
  return wakeups_;
}

kj::Promise<void> LoopInbox::Serve() { return Next().eagerlyEvaluate(nullptr); }

kj::Promise<void> LoopInbox::Next() {
  std::vector<Delivery> due;
  {
    std::lock_guard lock(mu_);
    due.swap(queue_);
  }
  for (Delivery& d : due) {
    // A delivery fulfils or rejects a promise of the loop; should one
    // throw, the others still run (its call fails: its fulfiller, dropped
    // unfulfilled, rejects its promise).
    try {
      d();
    } catch (...) {
    }
  }
  due.clear();  // On the loop's thread: they may own its objects.
  // Asleep until a worker adds: the first to add wakes the loop. If one
  // added while these ran, the wake-up is given here instead: the loop
  // takes it when it next looks at its cross-thread events and its I/O,
  // once what is queued now has run (the continuations just released, the
  // other connections' events, and the runs of creates waiting to be
  // posted: kj::evalLast). Looping here at once instead would let a steady
  // stream of answers keep the loop from ever reaching those.
  auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
  bool added = false;
  {
    std::lock_guard lock(mu_);
    added = !queue_.empty();
    if (!added) wake_ = kj::mv(paf.fulfiller);
  }
  if (added) paf.fulfiller->fulfill();
  return paf.promise.then([this] { return Next(); });
}

}  // namespace custos::server
