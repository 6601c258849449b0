// The test clock of custosd-testclock (server/test_clock.h).

#include "server/test_clock.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "base/time_text.h"

namespace custos::server {
namespace {

class TestClockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custos-test-clock-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    file_ = dir_ + "/clock";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static Timestamp At(const char* text) { return *ParseTimestamp(text); }

  std::string dir_;
  std::string file_;
};

TEST_F(TestClockTest, StandsAtItsStartAndWritesItToTheControlFile) {
  auto clock = TestClock::Start(At("2026-08-31T10:00:00Z"), file_);
  ASSERT_TRUE(clock.has_value()) << clock.error().ToString();
  EXPECT_EQ((*clock)->Now(), At("2026-08-31T10:00:00Z"));
  EXPECT_EQ((*clock)->Now(), At("2026-08-31T10:00:00Z"));
  std::ifstream in(file_);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "2026-08-31T10:00:00Z");
}

TEST_F(TestClockTest, MovesAtOnceWhenTheFileIsReplaced) {
  auto clock = *TestClock::Start(At("2026-08-31T10:00:00Z"), file_);
  ASSERT_TRUE(TestClock::Write(file_, At("2027-02-28T09:59:59Z")).ok());
  EXPECT_EQ(clock->Now(), At("2027-02-28T09:59:59Z"));
  ASSERT_TRUE(TestClock::Write(file_, At("2027-02-28T10:00:00Z")).ok());
  EXPECT_EQ(clock->Now(), At("2027-02-28T10:00:00Z"));
  // Rewritten in place, with an offset and no newline.
  {
    std::ofstream out(file_, std::ios::trunc);
    out << "2029-08-31T12:00:00+02:00";
  }
  EXPECT_EQ(clock->Now(), At("2029-08-31T10:00:00Z"));
}

TEST_F(TestClockTest, IgnoresGarbageAndNeverGoesBack) {
  auto clock = *TestClock::Start(At("2027-01-01T00:00:00Z"), file_);
  {
    std::ofstream out(file_, std::ios::trunc);
    out << "next tuesday\n";
  }
  EXPECT_EQ(clock->Now(), At("2027-01-01T00:00:00Z"));
  ASSERT_TRUE(TestClock::Write(file_, At("2026-12-31T23:59:59Z")).ok());
  EXPECT_EQ(clock->Now(), At("2027-01-01T00:00:00Z"));
  std::filesystem::remove(file_);
  EXPECT_EQ(clock->Now(), At("2027-01-01T00:00:00Z"));
  ASSERT_TRUE(TestClock::Write(file_, At("2027-01-01T00:00:01Z")).ok());
  EXPECT_EQ(clock->Now(), At("2027-01-01T00:00:01Z"));
}

TEST_F(TestClockTest, StartFailsWhereTheFileCannotBeWritten) {
  auto clock =
      TestClock::Start(At("2027-01-01T00:00:00Z"), dir_ + "/no-such-dir/clock");
  ASSERT_FALSE(clock.has_value());
  EXPECT_EQ(clock.error().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace custos::server
