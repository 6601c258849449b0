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
// A deadline reminder is identified by (owner, record, reason, due
// instant): a deadline that moves (a change, a hold, a new policy) is a
// new reminder. An open-too-long reminder is identified by (owner, record)
// alone: its due instant depends on the age a query gives (queries with
// different ages must not deliver it again and again), and a record is
// created once.
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
  // Only records with a greater id: 0 for the first page, then the
  // previous page's next_after_record_id.
  uint64_t after_record_id = 0;
};

// One page of reminders (Engine::DueSoon): at most
// Limits::max_reminders_per_call of them, from at most
// Limits::max_list_scan records examined.
struct ReminderPage {
  // By record id, then reason.
  std::vector<Reminder> reminders;
  // Not 0: more records may have reminders; ask again with this as
  // ReminderQuery::after_record_id. 0: none after this page.
  uint64_t next_after_record_id = 0;
  // Records examined that did not decode (DataLoss), or whose next
  // deadline needs a retention policy that failed its MAC or is missing:
  // left out, counted, and their ids in order (a server that cuts the page
  // counts those before its cut).
  size_t skipped = 0;
  std::vector<uint64_t> skipped_ids;
};

// OK, or InvalidArgument naming the field ("warnBefore", "openTooLong")
// and the bound it breaks.
Status CheckReminderQuery(const ReminderQuery& query);

}  // namespace custos

#endif  // CUSTOS_STORAGE_REMINDERS_H_
