// A clock that runs a hook once, on the n-th call to Now() after Arm(): a
// test interleaves a second call at a chosen point of a first (a shred in
// the middle of a read, say). Tests of races only; not thread-safe.

#ifndef CUSTOS_TESTS_HOOK_CLOCK_H_
#define CUSTOS_TESTS_HOOK_CLOCK_H_

#include <functional>
#include <utility>

#include "base/clock.h"

namespace custos::testing {

class HookClock final : public Clock {
 public:
  explicit HookClock(const ManualClock& base) : base_(base) {}
  Timestamp Now() const override {
    if (armed_ && --countdown_ == 0) {
      armed_ = false;
      hook_();
    }
    return base_.Now();
  }
  void Arm(int nth, std::function<void()> hook) {
    countdown_ = nth;
    hook_ = std::move(hook);
    armed_ = true;
  }

 private:
  const ManualClock& base_;
  mutable bool armed_ = false;
  mutable int countdown_ = 0;
  std::function<void()> hook_;
};

}  // namespace custos::testing

#endif  // CUSTOS_TESTS_HOOK_CLOCK_H_
