// The test clock of custosd-testclock, the test build of custosd
// (docs/man/custosd.8, docs/decisions.md): a clock that stands still at the
// instant written in a control file, so a test moves a real server's time
// by rewriting that file. Built only into custosd-testclock and its tests;
// the production custosd has no code for it and refuses --test-clock.
//
// The control file holds one ISO 8601 date-time with a zone
// ("2027-02-28T10:00:00Z", base/time_text.h) and an optional newline. The
// file is looked at on every Now(): once a writer has replaced it (write a
// new file, then rename it over the old one, so a reader never sees half
// of it), every later call of the server sees the new time. Content that
// does not parse, or a time before the current one, is ignored (and said
// once on stderr): this clock, like a real one, never goes back.
//
// Thread safety: Now() may be called from any thread.

#ifndef CUSTOS_SERVER_TEST_CLOCK_H_
#define CUSTOS_SERVER_TEST_CLOCK_H_

#include <sys/types.h>

#include <ctime>
#include <memory>
#include <mutex>
#include <string>

#include "base/clock.h"
#include "base/status.h"

namespace custos::server {

class TestClock final : public Clock {
 public:
  // Writes `start` to `control_file` (replacing it) and returns a clock
  // standing at `start`. Unavailable if the file cannot be written.
  static Result<std::unique_ptr<TestClock>> Start(Timestamp start,
                                                  std::string control_file);

  Timestamp Now() const override;

  // Writes `t` to `control_file` atomically (a temporary file renamed over
  // it), as a test does to move a server's clock.
  static Status Write(const std::string& control_file, Timestamp t);

 private:
  TestClock(Timestamp start, std::string control_file);

  // The identity of the file's last version read: a rename gives a new
  // inode, an in-place rewrite a new mtime or size.
  struct Version {
    ino_t inode = 0;
    timespec mtime{};
    off_t size = -1;
    bool operator==(const Version& o) const {
      return inode == o.inode && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec && size == o.size;
    }
  };

  const std::string control_file_;
  mutable std::mutex mu_;
  mutable Timestamp now_;    // Guarded by mu_.
  mutable Version version_;  // Guarded by mu_.
};

}  // namespace custos::server

#endif  // CUSTOS_SERVER_TEST_CLOCK_H_
