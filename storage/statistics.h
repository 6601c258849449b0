// Statistics that survive erasure (issue 15, docs/accountability.md
// "Statistics that survive erasure"): counts by record kind, state, month
// and attribute value, and the time from creation to closure in the
// buckets of the IMI annual report's table "Time needed to deal with a
// request". Erased records keep counting: an erasure moves a record from
// one state's count to another, it never takes back its creation or its
// closure.
//
// Nothing in it is personal data: kinds, states, months, the non-personal
// attributes the host stores in clear, and counts. No count names a record
// or a subject.
//
// The value types and the pure rules (buckets, months, caps, the query's
// bounds) are public; the index that answers them is internal to storage/
// (storage/stats_index.h).
//
// Thread safety: pure functions and value types.

#ifndef CUSTOS_STORAGE_STATISTICS_H_
#define CUSTOS_STORAGE_STATISTICS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace custos {

// The buckets of the IMI report's "Time needed to deal with a request",
// by the time from a record's creation to its closure (closed_at -
// created_at, to the microsecond):
//
//   bucket  name       time to closure t
//   0       3_days     t <= 3 days
//   1       1_week     3 days < t <= 7 days
//   2       2_weeks    7 days < t <= 14 days
//   3       4_weeks    14 days < t <= 28 days
//   4       8_weeks    28 days < t <= 56 days
//   5       more       t > 56 days
//
// A day is 86400 s (the time is a duration, not a calendar period). A
// negative time (a clock set back) counts as 3_days.
inline constexpr size_t kCloseBuckets = 6;
size_t CloseBucketOf(int64_t created_at_micros, int64_t closed_at_micros);
// "3_days", "1_week", "2_weeks", "4_weeks", "8_weeks", "more".
// REQUIRES: bucket < kCloseBuckets.
std::string_view CloseBucketName(size_t bucket);
// As the IMI table heads its columns: "within 3 days", ..., "more".
std::string_view CloseBucketLabel(size_t bucket);

// A month as the number yyyymm (202612), of an instant in UTC. Instants
// before year 1 or after 9999 are clamped to 000101 and 999912.
uint32_t MonthOf(int64_t micros);
// True for yyyymm with 1 <= yyyy <= 9999 and 1 <= mm <= 12.
bool IsValidMonth(uint32_t month);

// Bounds on what the index keeps per record kind, so that neither an
// attacker nor a free-text attribute can blow it up. Beyond them a
// record's attribute is counted, not named:
// - at most kMaxStatisticsAttributeNames attribute names per kind (the
//   first met, in the order the index folds records); a record's
//   attribute with a further name adds to KindStatistics::other_attributes;
// - at most kMaxStatisticsValuesPerAttribute values per attribute name
//   (the first met); a further value, or a value longer than
//   kMaxStatisticsValueLength bytes, adds to AttributeStatistics::other.
inline constexpr size_t kMaxStatisticsAttributeNames = 32;
inline constexpr size_t kMaxStatisticsValuesPerAttribute = 64;
inline constexpr size_t kMaxStatisticsValueLength = 64;

// What to count. Every field is optional.
struct StatisticsQuery {
  std::string kind;         // Empty: every kind.
  uint32_t from_month = 0;  // yyyymm, inclusive; 0: from the first.
  uint32_t to_month = 0;    // yyyymm, inclusive; 0: to the last.
};
// InvalidArgument for a kind CheckKind refuses (when given), a month that
// is not IsValidMonth (when given), or from_month > to_month.
Status CheckStatisticsQuery(const StatisticsQuery& query);

// One month's transitions (of one kind, or of all).
struct MonthStatistics {
  uint32_t month = 0;  // yyyymm; 0 in a total.
  // Records created, closed, blocked and erased in the month (each record
  // counts once per transition, in the month of its instant).
  uint64_t created = 0, closed = 0, blocked = 0, erased = 0;
  // The records closed in the month, by time from creation to closure.
  std::array<uint64_t, kCloseBuckets> closed_within{};
};

// The records of a kind created with one attribute name, by value.
struct AttributeStatistics {
  std::string name;
  std::vector<std::pair<std::string, uint64_t>> values;  // By value.
  uint64_t other = 0;  // Values beyond the caps (see above).
};

struct KindStatistics {
  std::string kind;
  // Records by stored state now (active, closed, blocked, erased: the
  // order of RecordState), whatever the month range: the transitions the
  // store has written down (a deadline passed is written down by the next
  // sweep, which the server runs on a timer).
  std::array<uint64_t, 4> by_state{};
  std::vector<MonthStatistics> months;  // Ascending; months with any count.
  MonthStatistics total;                // The months above summed.
  // Records created with each attribute, over all time (not by month).
  std::vector<AttributeStatistics> attributes;  // By name.
  uint64_t other_attributes = 0;
};

struct Statistics {
  Timestamp generated_at;
  StatisticsQuery query;
  std::vector<KindStatistics> kinds;  // By kind.
  MonthStatistics total;              // Every kind's total summed.
  // Transitions recorded since the index was last folded (maintenance),
  // included in the counts above: the query's cost grows with them.
  uint64_t pending = 0;
  // Transitions recorded but unreadable (a corrupt delta, or one of a
  // kind whose folded aggregate is corrupt: dropped by the fold, skipped
  // by a query), counted nowhere above.
  uint64_t unreadable = 0;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_STATISTICS_H_
