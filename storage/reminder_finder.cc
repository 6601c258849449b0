#include "storage/reminder_finder.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "storage/keys.h"
#include "storage/leveldb_util.h"

namespace custos {
namespace {

// The reason a record's next transition gives, while its owner sees it.
std::optional<ReminderReason> ReasonOf(codec::Transition next) {
  switch (next) {
    case codec::Transition::kClose:
      return ReminderReason::kCloseDue;
    case codec::Transition::kBlock:
      return ReminderReason::kBlockDue;
    case codec::Transition::kErase:
      return ReminderReason::kEraseDue;
    case codec::Transition::kNone:
      break;
  }
  return std::nullopt;
}

}  // namespace

Result<ReminderPage> ReminderFinder::DueSoon(const PrincipalInfo& owner,
                                             const ReminderQuery& query) const {
  if (query.after_record_id == UINT64_MAX) return ReminderPage{};
  const Timestamp now = u_.clock.Now();
  const int64_t now_micros = ToMicros(now);
  auto horizon = AddPeriod(now, query.warn_before);
  if (!horizon) return Fail(horizon.error());
  const int64_t horizon_micros = ToMicros(*horizon);
  // Read once: most stores hold no hold covering a record.
  auto spans = u_.holds.ReadSpans();
  if (!spans) return Fail(spans.error());
  const std::string prefix = keys::AclPrefix(owner.id);
  std::string start = prefix;
  AppendBigEndian64(start, query.after_record_id + 1);
  // A record adds at most two reminders (REQUIRES of the limit): stop
  // before one could overflow the page.
  const size_t max_reminders = u_.limits.max_reminders_per_call;
  ReminderPage page;
  std::vector<Reminder>& out = page.reminders;
  size_t examined = 0;
  Status failure;
  // TODO(perf): one read and one catch-up per record the caller owns or was
  // granted; an index by owner and deadline would make it grow with the
  // reminders instead (docs/accountability.md, "Reminders").
  CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
      prefix, start, [&](std::string_view key, std::string_view /*value*/) {
        const uint64_t id = keys::NumberAfter(key, prefix);
        if (examined == u_.limits.max_list_scan ||
            out.size() + 2 > max_reminders) {
          page.next_after_record_id = id - 1;
          return false;
        }
        ++examined;
        auto record = u_.record_store.Read(id);
        if (!record) {
          if (record.error().code() == StatusCode::kNotFound) return true;
          // One record that does not decode hides no other's deadline.
          if (record.error().code() == StatusCode::kDataLoss) {
            ++page.skipped;
            page.skipped_ids.push_back(id);
            return true;
          }
          failure = record.error();
          return false;
        }
        if (record->owner != owner.id) return true;  // Granted only.
        leveldb::WriteBatch scratch;
        int64_t erased_by_shred = 0;
        auto caught_up =
            u_.views.CatchUp(*record, now_micros, scratch, &erased_by_shred);
        if (!caught_up) {
          if (caught_up.error().code() == StatusCode::kDataLoss) {
            ++page.skipped;
            page.skipped_ids.push_back(id);
            return true;
          }
          failure = caught_up.error();
          return false;
        }
        // The owner sees ACTIVE and CLOSED records only
        // (docs/access-rules.md); a record erased by shreds is ERASED.
        const RecordState state = record->state;
        if (erased_by_shred != 0 ||
            (state != RecordState::kActive && state != RecordState::kClosed)) {
          return true;
        }
        // A transition in force whose next deadline needs a policy that
        // failed its MAC or is missing (docs/storage.md, "Policies"): what
        // is due next is unknown; left out and counted, not dropped.
        // (A BLOCKED one is reminded of nothing anyway.)
        if (!RecordStore::ScheduleFitsState(*record)) {
          ++page.skipped;
          page.skipped_ids.push_back(id);
          return true;
        }
        auto add = [&](ReminderReason reason, int64_t due) {
          Reminder r;
          r.record_id = id;
          r.kind = record->kind;
          r.attributes = record->attributes;
          r.state = state;
          r.reason = reason;
          r.due_at = FromMicros(due);
          r.created_at = FromMicros(record->created_at_micros);
          out.push_back(std::move(r));
        };
        // The next deadline as the deadline index holds it, after the
        // catch-up (so after now); an erasure at the first instant no
        // legal hold covers the record, as CatchUp and the sweep apply it.
        const auto reason = ReasonOf(record->next_transition);
        int64_t due = record->next_deadline_micros;
        if (reason == ReminderReason::kEraseDue) {
          auto erasable = u_.holds.ErasableFrom(*record, due, nullptr, &*spans);
          if (!erasable) {
            failure = erasable.error();
            return false;
          }
          due = *erasable;
        }
        if (reason && due > now_micros && due <= horizon_micros) {
          add(*reason, due);
        }
        if (state == RecordState::kActive) {
          auto aged = AddPeriod(FromMicros(record->created_at_micros),
                                query.open_too_long);
          if (!aged) {
            failure = aged.error();
            return false;
          }
          if (*aged <= now) add(ReminderReason::kOpenTooLong, ToMicros(*aged));
        }
        return true;
      }));
  CUSTOS_RETURN_IF_ERROR(failure);
  for (Reminder& r : out) {
    const auto reason = static_cast<uint8_t>(r.reason);
    std::optional<std::string> mark;
    if (r.reason == ReminderReason::kOpenTooLong) {
      // Any mark of the record's open-too-long reminder, whatever age the
      // query that delivered it gave (its first, by key).
      CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
          keys::ReminderDeadlinesPrefix(owner.id, r.record_id, reason), "",
          [&](std::string_view /*key*/, std::string_view value) {
            mark = std::string(value);
            return false;
          }));
    } else {
      auto got = u_.store.Get(
          keys::Reminder(owner.id, r.record_id, reason, ToMicros(r.due_at)));
      if (!got) return Fail(got.error());
      mark = std::move(*got);
    }
    if (!mark) continue;
    if (mark->size() != 8) {
      return Fail(Status::DataLoss("corrupt reminder delivery mark"));
    }
    r.delivered_at = FromMicros(static_cast<int64_t>(ReadBigEndian64(*mark)));
  }
  return page;
}

Status ReminderFinder::MarkDelivered(const PrincipalInfo& owner,
                                     const std::vector<Reminder>& reminders) {
  if (reminders.empty()) return Status::Ok();
  std::string now;
  AppendBigEndian64(now, static_cast<uint64_t>(ToMicros(u_.clock.Now())));
  WriteLock lock = u_.store.Lock();
  leveldb::WriteBatch batch;
  for (const Reminder& r : reminders) {
    const auto reason = static_cast<uint8_t>(r.reason);
    const std::string mark =
        keys::Reminder(owner.id, r.record_id, reason, ToMicros(r.due_at));
    bool marked = false;
    const std::string others =
        keys::ReminderDeadlinesPrefix(owner.id, r.record_id, reason);
    // An open-too-long reminder's mark, whatever its instant, stands for
    // every age (storage/reminders.h): kept, never superseded. Another
    // reason's mark at another instant is of a deadline since moved.
    const bool open_too_long = r.reason == ReminderReason::kOpenTooLong;
    CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
        others, "", [&](std::string_view key, std::string_view /*value*/) {
          if (key == mark || open_too_long) {
            marked = true;
          } else {
            batch.Delete(ToSlice(key));
          }
          return true;
        }));
    if (!marked) batch.Put(ToSlice(mark), ToSlice(now));
  }
  return u_.store.Commit(std::move(lock), batch, {}, "marking reminders");
}

const char* ReminderReasonName(ReminderReason reason) {
  switch (reason) {
    case ReminderReason::kCloseDue:
      return "closeDue";
    case ReminderReason::kBlockDue:
      return "blockDue";
    case ReminderReason::kEraseDue:
      return "eraseDue";
    case ReminderReason::kOpenTooLong:
      return "openTooLong";
  }
  return "unknown";
}

Status CheckReminderQuery(const ReminderQuery& query) {
  if (!query.warn_before.IsWithinLimits() ||
      !NeverEndsAfter(query.warn_before, kMaxReminderWarnBefore)) {
    return Status::InvalidArgument(
        std::string("warnBefore must be a period of at most ")
            .append(kMaxReminderWarnBefore.ToString()));
  }
  if (query.open_too_long.IsZero() || !query.open_too_long.IsWithinLimits() ||
      !NeverEndsAfter(query.open_too_long, kMaxReminderOpenTooLong)) {
    return Status::InvalidArgument(
        std::string("openTooLong must be a period longer than zero and of at "
                    "most ")
            .append(kMaxReminderOpenTooLong.ToString()));
  }
  return Status::Ok();
}

}  // namespace custos
