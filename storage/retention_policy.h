// Retention policies: for each kind of record, the calendar periods that
// drive it through CLOSED, BLOCKED and ERASED (DESIGN.md section 3,
// docs/retention.md).
//
// A policy is a plain value. The engine stores its periods as the ISO 8601
// strings Period::ToString() produces and reads them back with ParsePeriod.
//
// Thread safety: values and pure functions; safe from any thread.

#ifndef CUSTOS_STORAGE_RETENTION_POLICY_H_
#define CUSTOS_STORAGE_RETENTION_POLICY_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/limits.h"
#include "storage/period.h"

namespace custos {

inline constexpr size_t kMaxPolicyKindLength = kMaxKindLength;

// The longest period a policy may give, each field on its own: 200 years
// (compared by effect, so P2400M and P73048D pass, P200YT1S does not). A
// record's deadlines chain at most three periods from one change (close
// after the last change, block or erase after closure, history after
// erasure), so from any instant up to kLatestCalendarInstant minus 600 years
// (year 9399) every deadline a valid policy gives can be represented:
// AddPeriod never fails on it (docs/retention.md, "Validation").
inline constexpr Period kMaxPolicyPeriod{.years = 200};

struct RetentionPolicy {
  // The record kind the policy governs ("request", "alert").
  // REQUIRES: CheckKind(kind) (the same rule as record kinds).
  std::string kind;

  // An ACTIVE record untouched this long is closed. Absent: records stay
  // ACTIVE until closed explicitly. REQUIRES: non-zero when present.
  std::optional<Period> close_after;

  // From closure to BLOCKED. Absent: no BLOCKED phase; the record goes from
  // CLOSED straight to ERASED (alerts). REQUIRES: non-zero when present.
  std::optional<Period> block_after;

  // From closure to ERASED. REQUIRES: non-zero; never ends before
  // block_after (see ValidatePolicy).
  Period erase_after;

  // How long access history is kept after the record is erased.
  // REQUIRES: never ends before erase_after (see ValidatePolicy).
  Period history_after;

  friend bool operator==(const RetentionPolicy&,
                         const RetentionPolicy&) = default;
};

// Returns OK if `policy` satisfies every REQUIRES above:
//   - kind is 1..64 characters from [a-z0-9_-];
//   - every period present has all components within the kMaxPeriod*
//     limits, and never ends after kMaxPolicyPeriod;
//   - close_after and block_after, when present, and erase_after are not
//     the zero period;
//   - erase_after is not before block_after: NeverEndsAfter(block_after,
//     erase_after), i.e. from every closure instant, erasure comes at or
//     after blocking;
//   - history_after is never shorter than erase_after:
//     NeverEndsAfter(erase_after, history_after), i.e. the history, counted
//     from erasure, lasts at least as long as the data was kept after
//     closure.
// Otherwise returns InvalidArgument naming the first rule broken and the
// fields involved.
Status ValidatePolicy(const RetentionPolicy& policy);

// The policies Custos ships, from the rules of the EU Internal Market
// Information System (DESIGN.md section 3):
//   request: block_after P6M, erase_after P3Y, history_after P5Y;
//   alert:   no BLOCKED phase, erase_after P6M, history_after P5Y.
// Neither has close_after. Every returned policy passes ValidatePolicy.
std::vector<RetentionPolicy> DefaultPolicies();

// The deadlines a record of `policy`'s kind gets when closed at `closed`,
// by the same period arithmetic (AddPeriod) the engine applies: blocked at
// closed + block_after (absent without a BLOCKED phase), erased at
// closed + erase_after, its access history pruned at erased +
// history_after. `close_after`, when present, is how long an untouched
// ACTIVE record waits before it is closed. InvalidArgument if a deadline
// falls outside the representable range.
struct ClosureDeadlines {
  std::optional<Timestamp> blocked;
  Timestamp erased;
  Timestamp history_pruned;
};
Result<ClosureDeadlines> DeadlinesAfterClosure(const RetentionPolicy& policy,
                                               Timestamp closed);

}  // namespace custos

#endif  // CUSTOS_STORAGE_RETENTION_POLICY_H_
