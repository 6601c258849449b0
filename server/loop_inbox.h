// The way back from the worker threads to the event loop (DESIGN section
// 7): what workers hand back is run on the loop's thread, in the order it
// was handed back, and the loop is woken once per batch, not once per call.
//
// A worker that adds to an empty inbox wakes the loop (one kj cross-thread
// fulfilment: a futex or eventfd write and, if the loop slept, a context
// switch); whatever any worker adds before the loop has emptied the inbox
// rides on that wake-up. The loop, once woken, takes everything queued at
// once. A run of pipelined calls therefore costs one wake-up of the loop
// per drained batch instead of one per call (bench/RESULTS.md, "Issue 12:
// fewer hand-offs per call"). The loop takes deliveries when it looks at
// its I/O and cross-thread events, after the events already queued (as it
// took kj's own cross-thread fulfilments): a steady stream of answers
// cannot keep it from reading requests, nor from handing over the runs of
// creates that wait for kj::evalLast (service.cc).
//
// What workers add is plain C++ (a result, and the loop's own fulfiller of
// the call's promise, which the worker only moves): workers never call into
// kj's promises or touch Cap'n Proto readers and builders.
//
// Thread safety: Add from any thread; everything else on the loop's thread.
// Every function added runs on the loop's thread or is destroyed there (in
// ~LoopInbox, when the loop stops first): a function may therefore own
// objects of the loop's thread (kj fulfillers).

#ifndef CUSTOS_SERVER_LOOP_INBOX_H_
#define CUSTOS_SERVER_LOOP_INBOX_H_

#include <kj/async.h>

#include <functional>
#include <mutex>
#include <vector>

namespace custos::server {

class LoopInbox {
 public:
  using Delivery = std::move_only_function<void()>;

  LoopInbox() = default;
  // Destroys what was never run (on the loop's thread).
  ~LoopInbox();
  LoopInbox(const LoopInbox&) = delete;
  LoopInbox& operator=(const LoopInbox&) = delete;

  // Any thread: `delivery` runs on the loop's thread, after every delivery
  // added before it. Wakes the loop if the inbox was empty. Terminates the
  // process if it cannot allocate (a delivery must never be destroyed on a
  // worker).
  void Add(Delivery delivery) noexcept;

  // The loop's thread: runs the deliveries as they come, until the promise
  // is dropped. The promise is eagerly evaluated; at most one at a time.
  kj::Promise<void> Serve();

  // For the tests: the times a worker woke the loop.
  size_t TEST_wakeups() const;

 private:
  kj::Promise<void> Next();

  mutable std::mutex mu_;
  std::vector<Delivery> queue_;  // Guarded by mu_.
  // Set while the loop waits for a delivery: the first Add fulfils it.
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> wake_;  // Guarded by mu_.
  size_t wakeups_ = 0;                                   // Guarded by mu_.
};

}  // namespace custos::server

#endif  // CUSTOS_SERVER_LOOP_INBOX_H_
