#include "storage/retention_policy.h"

#include <string>
#include <string_view>

namespace custos {
namespace {

Status CheckPeriod(std::string_view kind, std::string_view field,
                   const Period& p, bool zero_allowed) {
  const std::string where =
      "policy '" + std::string(kind) + "': " + std::string(field);
  // Checked before the ordering rules: NeverEndsAfter is false for
  // out-of-limit periods, which would report a misleading reason.
  if (!p.IsWithinLimits()) {
    return Status::InvalidArgument(
        where + " has a negative component or one above its limit");
  }
  if (!zero_allowed && p.IsZero()) {
    return Status::InvalidArgument(where + " must not be zero");
  }
  // Within the component limits a period may still end after 9999 from
  // every closure date (P8000Y): the deadline could then never be computed,
  // and a sweep meeting it could not proceed. Compared by effect, exactly.
  if (!NeverEndsAfter(p, kMaxPolicyPeriod)) {
    return Status::InvalidArgument(
        where + " " + p.ToString() + " is longer than " +
        kMaxPolicyPeriod.ToString() + ", the longest period a policy may give");
  }
  return Status::Ok();
}

}  // namespace

Status ValidatePolicy(const RetentionPolicy& policy) {
  CUSTOS_RETURN_IF_ERROR(CheckKind(policy.kind));
  const std::string& kind = policy.kind;

  // A zero close_after would close records as they are created, and a zero
  // block_after would make CLOSED a state no one can observe (withdrawal
  // already blocks at once); a zero erase_after is erasure at closure, which
  // is what an explicit early erasure is for. All are refused as mistakes.
  // history_after needs no zero check: it may not be shorter than a
  // non-zero erase_after.
  if (policy.close_after) {
    CUSTOS_RETURN_IF_ERROR(
        CheckPeriod(kind, "close_after", *policy.close_after, false));
  }
  if (policy.block_after) {
    CUSTOS_RETURN_IF_ERROR(
        CheckPeriod(kind, "block_after", *policy.block_after, false));
  }
  CUSTOS_RETURN_IF_ERROR(
      CheckPeriod(kind, "erase_after", policy.erase_after, false));
  CUSTOS_RETURN_IF_ERROR(
      CheckPeriod(kind, "history_after", policy.history_after, true));

  // Months and days are not totally ordered (P1M is shorter than P30D from
  // 31 January and longer from 1 March), so "not before" must hold from
  // every possible closure date, not on average: a record erased while the
  // policy still promises it a BLOCKED phase, or history dropped before the
  // data it describes would have been, is a compliance failure on that one
  // date.
  if (policy.block_after &&
      !NeverEndsAfter(*policy.block_after, policy.erase_after)) {
    return Status::InvalidArgument(
        "policy '" + kind + "': erase_after " + policy.erase_after.ToString() +
        " ends before block_after " + policy.block_after->ToString() +
        " for some closure dates");
  }
  // The history is counted from erasure, so it always outlives the data;
  // the law also wants it kept at least as long as the data was. The time a
  // record spends ACTIVE has no bound a policy could express (touching a
  // record restarts close_after), so the rule compares with the retention
  // after closure, erase_after.
  if (!NeverEndsAfter(policy.erase_after, policy.history_after)) {
    return Status::InvalidArgument(
        "policy '" + kind + "': history_after " +
        policy.history_after.ToString() + " is shorter than erase_after " +
        policy.erase_after.ToString() + " for some dates");
  }
  return Status::Ok();
}

std::vector<RetentionPolicy> DefaultPolicies() {
  return {
      RetentionPolicy{.kind = "request",
                      .close_after = std::nullopt,
                      .block_after = Period{.months = 6},
                      .erase_after = Period{.years = 3},
                      .history_after = Period{.years = 5}},
      RetentionPolicy{.kind = "alert",
                      .close_after = std::nullopt,
                      .block_after = std::nullopt,
                      .erase_after = Period{.months = 6},
                      .history_after = Period{.years = 5}},
  };
}

Result<ClosureDeadlines> DeadlinesAfterClosure(const RetentionPolicy& policy,
                                               Timestamp closed) {
  ClosureDeadlines d;
  if (policy.block_after) {
    auto blocked = AddPeriod(closed, *policy.block_after);
    if (!blocked) return Fail(blocked.error());
    d.blocked = *blocked;
  }
  auto erased = AddPeriod(closed, policy.erase_after);
  if (!erased) return Fail(erased.error());
  d.erased = *erased;
  auto pruned = AddPeriod(d.erased, policy.history_after);
  if (!pruned) return Fail(pruned.error());
  d.history_pruned = *pruned;
  return d;
}

}  // namespace custos
