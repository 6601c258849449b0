#include "server/test_clock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <utility>

#include "base/time_text.h"

namespace custos::server {

Result<std::unique_ptr<TestClock>> TestClock::Start(Timestamp start,
                                                    std::string control_file) {
  CUSTOS_RETURN_IF_ERROR(Write(control_file, start));
  return std::unique_ptr<TestClock>(
      new TestClock(start, std::move(control_file)));
}

TestClock::TestClock(Timestamp start, std::string control_file)
    : control_file_(std::move(control_file)), now_(start) {}

Status TestClock::Write(const std::string& control_file, Timestamp t) {
  const std::string tmp = control_file + ".tmp";
  const std::string line = FormatTimestamp(t) + "\n";
  const int fd =
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Unavailable("cannot write " + tmp);
  const bool written =
      write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  const bool closed = close(fd) == 0;
  if (!written || !closed || rename(tmp.c_str(), control_file.c_str()) != 0) {
    return Status::Unavailable("cannot write " + control_file);
  }
  return Status::Ok();
}

Timestamp TestClock::Now() const {
  std::lock_guard lock(mu_);
  struct stat st {};
  if (stat(control_file_.c_str(), &st) != 0) return now_;
  const Version seen{st.st_ino, st.st_mtim, st.st_size};
  if (seen == version_) return now_;
  version_ = seen;
  std::ifstream in(control_file_);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  auto t = ParseTimestamp(text);
  if (!t) {
    std::fprintf(stderr, "custosd: test clock: %s ignored: %s\n",
                 control_file_.c_str(), t.error().ToString().c_str());
  } else if (*t < now_) {
    std::fprintf(stderr,
                 "custosd: test clock: %s ignored: it goes back from %s\n",
                 text.c_str(), FormatTimestamp(now_).c_str());
  } else if (*t != now_) {
    now_ = *t;
    std::fprintf(stderr, "custosd: test clock: now %s\n", text.c_str());
  }
  return now_;
}

}  // namespace custos::server
