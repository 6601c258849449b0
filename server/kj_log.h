// kj's log lines, quietened: Cap'n Proto's and kj's own log messages (a
// warning about a connection, say) may quote bytes a client sent, so only
// their severity is written to stderr, never their text nor their source
// location (issue 12: no source text in any log line). kj's log callback
// is per thread: each thread that may run kj or Cap'n Proto code
// (custosd's main thread, the worker pool's threads, the maintenance
// thread) holds one for its lifetime.
//
// Thread safety: one object per thread, on that thread's stack.

#ifndef CUSTOS_SERVER_KJ_LOG_H_
#define CUSTOS_SERVER_KJ_LOG_H_

#include <kj/debug.h>
#include <kj/exception.h>

#include <cstdio>

namespace custos::server {

class QuietKjLog final : public kj::ExceptionCallback {
 public:
  void logMessage(kj::LogSeverity severity, const char* /*file*/, int /*line*/,
                  int /*contextDepth*/, kj::String&& /*text*/) override {
    std::fprintf(stderr,
                 "custosd: Cap'n Proto %s (its text withheld: it "
                 "may quote what a client sent)\n",
                 kj::str(severity).cStr());
  }
};

}  // namespace custos::server

#endif  // CUSTOS_SERVER_KJ_LOG_H_
