// Internal to storage/: reminders (storage/reminders.h). Owns the key
// family "rm:" (the reminders delivered). Finds an owner's reminders from
// its access index ("a:", the records it owns or was granted), each record
// brought to its effective state now exactly as a read would
// (RecordViews::CatchUp), its next deadline the one the deadline index
// holds (RecordStore::Schedule), an erasure postponed by legal holds as
// every read and sweep postpones it (Holds::ErasableFrom): no period
// arithmetic of its own beyond the warning time and the open-too-long age.
//
// Cost: DueSoon reads every record in the caller's access index (owned or
// granted), one Get and one catch-up each, no decryption; it grows with the
// records the caller owns or was granted, not with the store
// (docs/accountability.md, "Reminders").
//
// Thread safety: thread-safe; MarkDelivered takes the write lock.

#ifndef CUSTOS_STORAGE_REMINDER_FINDER_H_
#define CUSTOS_STORAGE_REMINDER_FINDER_H_

#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/holds.h"
#include "storage/limits.h"
#include "storage/record_store.h"
#include "storage/record_view.h"
#include "storage/reminders.h"
#include "storage/store.h"
#include "storage/types.h"

namespace custos {

class ReminderFinder {
 public:
  struct Units {
    Store& store;
    const RecordStore& record_store;
    const RecordViews& views;
    const Holds& holds;
    const Limits& limits;
    const Clock& clock;
  };
  explicit ReminderFinder(Units units) : u_(units) {}

  // Engine::DueSoon: one page of the reminders of `owner`'s records now
  // (ReminderPage), by record id then reason, each with its delivery time
  // if it was delivered. REQUIRES: CheckReminderQuery(query).ok(). A
  // record that does not decode is left out and counted
  // (ReminderPage::skipped): it hides no other record's deadline.
  Result<ReminderPage> DueSoon(const PrincipalInfo& owner,
                               const ReminderQuery& query) const;

  // Engine::MarkRemindersDelivered: records each reminder as delivered to
  // `owner` now (a reminder already marked keeps its first time), and
  // drops the marks of the same record and reason at other deadlines
  // (superseded); an open-too-long reminder already marked at any instant
  // (another age) stays marked as it was. One write, no event (a reminder
  // discloses nothing).
  Status MarkDelivered(const PrincipalInfo& owner,
                       const std::vector<Reminder>& reminders);

 private:
  Units u_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_REMINDER_FINDER_H_
