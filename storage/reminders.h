// Reminders: what an owner must act on soon (DESIGN section 7a,
// "reminders"; docs/accountability.md, "Reminders").
//
// A Reminder names one record its owner still sees (ACTIVE or CLOSED) and
// one deadline: the record's next transition (its closure, blocking or
// erasure) within the warning time, or the instant an ACTIVE record had
// been open (since its creation) longer than the configured age. It
// carries no personal data: ids, kind, attributes (non-personal by
// definition), state and instants only.
//
// A reminder is identified by (owner, record, reason, due instant): a
// deadline that moves (a change, a hold, a new policy) is a new reminder.
// Engine::DueSoon lists them, Engine::MarkRemindersDelivered remembers for
// good that the owner was told.
//
// Thread safety: values and pure functions; safe from any thread.

#ifndef CUSTOS_STORAGE_REMINDERS_H_
#define CUSTOS_STORAGE_REMINDERS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/period.h"
#include "storage/types.h"

namespace custos {

enum class ReminderReason : uint8_t {
  kCloseDue = 1,    // ACTIVE: closed at due_at (policy close_after).
  kBlockDue = 2,    // CLOSED: blocked at due_at; the owner sees it no more.
  kEraseDue = 3,    // CLOSED: erased at due_at (a kind without BLOCKED).
  kOpenTooLong = 4  // ACTIVE since created_at; due_at = created + age.
};

// "closeDue", "blockDue", "eraseDue", "openTooLong" (as in the schema).
const char* ReminderReasonName(ReminderReason reason);

struct Reminder {
  uint64_t record_id = 0;
  std::string kind;
  std::vector<Attribute> attributes;         // Non-personal.
  RecordState state = RecordState::kActive;  // Effective, at the query.
  ReminderReason reason = ReminderReason::kCloseDue;
  // The deadline (after any legal hold) or, for kOpenTooLong, the instant
  // the record had been open the configured age.
  Timestamp due_at;
  Timestamp created_at;
  // When the owner was told (MarkRemindersDelivered); nullopt if never.
  std::optional<Timestamp> delivered_at;
};

// The defaults custosd uses (custosd --reminder-warn-before,
// --reminder-open-too-long).
inline constexpr Period kDefaultReminderWarnBefore{.days = 7};
inline constexpr Period kDefaultReminderOpenTooLong{.days = 30};
// The bounds of a query, compared by effect (NeverEndsAfter).
inline constexpr Period kMaxReminderWarnBefore{.years = 1};
inline constexpr Period kMaxReminderOpenTooLong{.years = 10};

struct ReminderQuery {
  // A deadline is reminded from this long before it. P0D: deadlines are
  // never reminded (only kOpenTooLong). REQUIRES: never ends after
  // kMaxReminderWarnBefore.
  Period warn_before = kDefaultReminderWarnBefore;
  // An ACTIVE record open this long since its creation is reminded.
  // REQUIRES: not zero, never ends after kMaxReminderOpenTooLong.
  Period open_too_long = kDefaultReminderOpenTooLong;
};

// OK, or InvalidArgument naming the field ("warnBefore", "openTooLong")
// and the bound it breaks.
Status CheckReminderQuery(const ReminderQuery& query);

}  // namespace custos

#endif  // CUSTOS_STORAGE_REMINDERS_H_
