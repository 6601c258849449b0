#include "storage/statistics.h"

#include <chrono>

#include "storage/limits.h"

namespace custos {
namespace {

constexpr int64_t kDayMicros = int64_t{86400} * 1000 * 1000;
// The upper bound of each bucket but the last, in days.
constexpr std::array<int64_t, kCloseBuckets - 1> kBucketDays = {3, 7, 14, 28,
                                                                56};

}  // namespace

size_t CloseBucketOf(int64_t created_at_micros, int64_t closed_at_micros) {
  // Both instants lie within the range a Timestamp holds, so the
  // difference cannot overflow.
  const int64_t t = closed_at_micros - created_at_micros;
  for (size_t i = 0; i < kBucketDays.size(); ++i) {
    if (t <= kBucketDays[i] * kDayMicros) return i;
  }
  return kCloseBuckets - 1;
}

std::string_view CloseBucketName(size_t bucket) {
  static constexpr std::array<std::string_view, kCloseBuckets> kNames = {
      "3_days", "1_week", "2_weeks", "4_weeks", "8_weeks", "more"};
  return kNames[bucket];
}

std::string_view CloseBucketLabel(size_t bucket) {
  static constexpr std::array<std::string_view, kCloseBuckets> kLabels = {
      "within 3 days",  "within 1 week",  "within 2 weeks",
      "within 4 weeks", "within 8 weeks", "more"};
  return kLabels[bucket];
}

uint32_t MonthOf(int64_t micros) {
  using namespace std::chrono;
  const sys_days day =
      floor<days>(sys_time<microseconds>(microseconds(micros)));
  const year_month_day ymd(day);
  const int y = static_cast<int>(ymd.year());
  if (y < 1) return 101;
  if (y > 9999) return 999912;
  return static_cast<uint32_t>(y) * 100 +
         static_cast<uint32_t>(static_cast<unsigned>(ymd.month()));
}

bool IsValidMonth(uint32_t month) {
  const uint32_t y = month / 100, m = month % 100;
  return y >= 1 && y <= 9999 && m >= 1 && m <= 12;
}

Status CheckStatisticsQuery(const StatisticsQuery& query) {
  if (!query.kind.empty()) CUSTOS_RETURN_IF_ERROR(CheckKind(query.kind));
  for (uint32_t month : {query.from_month, query.to_month}) {
    if (month != 0 && !IsValidMonth(month)) {
      return Status::InvalidArgument(
          "a month is yyyymm, with a year from 1 to 9999 and a month from 1 "
          "to 12");
    }
  }
  if (query.from_month != 0 && query.to_month != 0 &&
      query.from_month > query.to_month) {
    return Status::InvalidArgument("from_month is after to_month");
  }
  return Status::Ok();
}

}  // namespace custos
