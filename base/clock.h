// Time in Custos: UTC instants with microsecond resolution, read only from
// an injected Clock so tests can move time forward years in a millisecond.
//
// Thread safety: SystemClock is thread-safe; ManualClock is thread-safe
// (its time is an atomic).

#ifndef CUSTOS_BASE_CLOCK_H_
#define CUSTOS_BASE_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace custos {

// An instant in UTC, microseconds since the Unix epoch.
using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;

inline int64_t ToMicros(Timestamp t) { return t.time_since_epoch().count(); }
inline Timestamp FromMicros(int64_t micros) {
  return Timestamp(std::chrono::microseconds(micros));
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp Now() const = 0;
};

// The wall clock. Used by main() only; never constructed inside the engine.
class SystemClock final : public Clock {
 public:
  Timestamp Now() const override {
    return std::chrono::time_point_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now());
  }
};

// A clock that moves only when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Timestamp start) : micros_(ToMicros(start)) {}
  Timestamp Now() const override { return FromMicros(micros_.load()); }
  void Set(Timestamp t) { micros_.store(ToMicros(t)); }
  void Advance(std::chrono::microseconds d) { micros_.fetch_add(d.count()); }

 private:
  std::atomic<int64_t> micros_;
};

}  // namespace custos

#endif  // CUSTOS_BASE_CLOCK_H_
