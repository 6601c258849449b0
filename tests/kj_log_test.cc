// server/kj_log.h: what kj and Cap'n Proto log reaches custosd's stderr
// as its severity only, never its text (which may quote client bytes) nor
// its source location (issue 12: no source text in any log line).

#include "server/kj_log.h"

#include <gtest/gtest.h>
#include <kj/debug.h>

#include <string>

namespace custos::testing {
namespace {

TEST(QuietKjLogTest, ALogLineKeepsItsSeverityOnly) {
  const std::string secret = "anna@example.org";
  ::testing::internal::CaptureStderr();
  {
    server::QuietKjLog quiet;
    KJ_LOG(WARNING, "a client sent", secret);
    KJ_LOG(ERROR, "and this", secret);
  }
  const std::string logged = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(logged,
            "custosd: Cap'n Proto warning (its text withheld: it may "
            "quote what a client sent)\n"
            "custosd: Cap'n Proto error (its text withheld: it may "
            "quote what a client sent)\n");
  EXPECT_EQ(logged.find(secret), std::string::npos);
  EXPECT_EQ(logged.find("kj_log_test"), std::string::npos);
}

}  // namespace
}  // namespace custos::testing
