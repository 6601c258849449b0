#include "base/time_text.h"

#include <gtest/gtest.h>

#include <string>

namespace custos {
namespace {

TEST(TimeTextTest, ParsesUtcAndOffsetsToTheSameInstant) {
  auto utc = ParseTimestamp("2027-02-28T10:00:00Z");
  auto plus = ParseTimestamp("2027-02-28T11:00:00+01:00");
  auto minus = ParseTimestamp("2027-02-28T04:30:00-05:30");
  ASSERT_TRUE(utc && plus && minus);
  EXPECT_EQ(ToMicros(*utc), 1'803'808'800'000'000);
  EXPECT_EQ(*plus, *utc);
  EXPECT_EQ(*minus, *utc);
}

TEST(TimeTextTest, ParsesAFractionUpToMicroseconds) {
  auto half = ParseTimestamp("1970-01-01T00:00:01.5Z");
  auto micro = ParseTimestamp("1970-01-01T00:00:00.000001Z");
  ASSERT_TRUE(half && micro);
  EXPECT_EQ(ToMicros(*half), 1'500'000);
  EXPECT_EQ(ToMicros(*micro), 1);
}

TEST(TimeTextTest, RefusesWhatIsNotADateTimeWithAZone) {
  for (const char* text :
       {"", "2027-02-28T10:00:00", "2027-02-29T10:00:00Z",
        "2027-02-28 10:00:00Z", "2027-02-28T24:00:00Z", "2027-02-28T10:60:00Z",
        "2027-02-28T10:00:00.Z", "2027-02-28T10:00:00.1234567Z",
        "2027-02-28T10:00:00+0100", "2027-02-28T10:00:00Zx",
        "27-02-28T10:00Z"}) {
    auto t = ParseTimestamp(text);
    ASSERT_FALSE(t.has_value()) << text;
    EXPECT_EQ(t.error().code(), StatusCode::kInvalidArgument) << text;
  }
}

TEST(TimeTextTest, FormatsInUtcAndParsesBack) {
  EXPECT_EQ(FormatTimestamp(FromMicros(1'803'808'800'000'000)),
            "2027-02-28T10:00:00Z");
  EXPECT_EQ(FormatTimestamp(FromMicros(1'803'808'800'000'042)),
            "2027-02-28T10:00:00.000042Z");
  EXPECT_EQ(FormatTimestamp(FromMicros(-1'000'000)), "1969-12-31T23:59:59Z");
  const Timestamp t = FromMicros(1'788'000'000'123'456);
  EXPECT_EQ(*ParseTimestamp(FormatTimestamp(t)), t);
}

}  // namespace
}  // namespace custos
