#include "storage/holds.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "storage/events.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "storage/retention_policy.h"

namespace custos {
namespace {

// The hold_set / hold_released event of `hold`. A subject hold whose
// subject was shredded names no subject any more (CompleteShreds cleared
// its id): its event concerns nobody.
Event HoldEvent(const PrincipalInfo& who, EventAction action,
                const HoldView& hold, const codec::StoredRecord* record,
                Timestamp at) {
  Event e = record != nullptr
                ? events::RecordEvent(who, action, *record, at)
                : events::SubjectEvent(who, action, *hold.subject_id, at);
  if (record == nullptr && hold.subject_id->empty()) e.subject_ids.clear();
  std::string field = "hold:";
  field += hold.id;
  e.fields = {std::move(field)};
  return e;
}

}  // namespace

Result<HoldView> Holds::Add(WriteLock lock, const PrincipalInfo& officer,
                            HoldView hold, std::string_view reason,
                            Timestamp ends_at,
                            const codec::StoredRecord* record) {
  const Timestamp now = clock_.Now();
  if (ends_at <= now) {
    return Fail(Status::InvalidArgument("a hold must end in the future"));
  }
  // A hold's end can become a record's erased_at, from which history_after
  // is counted: bounded as a policy's period is, so that deadline can
  // always be represented.
  auto latest = AddPeriod(now, kMaxPolicyPeriod);
  if (!latest || ends_at > *latest) {
    return Fail(Status::InvalidArgument(std::string("a hold may end at most ")
                                            .append(kMaxPolicyPeriod.ToString())
                                            .append(" from now")));
  }
  auto counter = store_.Get(keys::kNextHoldId);
  if (!counter) return Fail(counter.error());
  uint64_t next = 1;
  if (*counter) {
    if ((*counter)->size() != 8) {
      return Fail(Status::DataLoss("corrupt hold counter"));
    }
    next = ReadBigEndian64(**counter);
  }
  any_ever_.store(1, std::memory_order_release);
  // Before the commit, under the lock: the next Spans reads the new hold.
  Forget(lock);
  // Built by insert: GCC 12 -O3 misreports "h" + string as -Wrestrict.
  hold.id = std::to_string(next);
  hold.id.insert(0, 1, 'h');
  hold.reason = std::string(reason);
  hold.set_by = officer.id;
  hold.set_at = now;
  hold.ends_at = ends_at;

  leveldb::WriteBatch batch;
  batch.Put(keys::Hold(hold.id), codec::EncodeHold(hold));
  std::string next_counter;
  AppendBigEndian64(next_counter, next + 1);
  batch.Put(ToSlice(keys::kNextHoldId), next_counter);
  if (hold.record_id) {
    batch.Put(keys::RecordHoldsPrefix(*hold.record_id) + hold.id, "");
    for (const std::string& subject : record->subject_ids) {
      batch.Put(keys::SubjectHoldsPrefix(subject) + hold.id, "r");
    }
  } else {
    batch.Put(keys::SubjectHoldsPrefix(*hold.subject_id) + hold.id, "s");
  }
  CUSTOS_RETURN_IF_ERROR(store_.Commit(
      std::move(lock), batch,
      {HoldEvent(officer, EventAction::kHoldSet, hold, record, now)},
      "setting hold"));
  return hold;
}

Result<std::vector<uint64_t>> Holds::Release(const WriteLock& lock,
                                             const PrincipalInfo& officer,
                                             std::string_view hold_id,
                                             leveldb::WriteBatch& batch,
                                             std::vector<Event>& events,
                                             HoldView* released) {
  auto value = store_.Get(keys::Hold(hold_id));
  if (!value) return Fail(value.error());
  if (!*value) return Fail(Status::NotFound("hold not found"));
  auto hold = codec::DecodeHold(**value);
  if (!hold) return Fail(hold.error());
  if (hold->released_at) {
    return Fail(Status::FailedPrecondition("the hold was already released"));
  }
  const Timestamp now = clock_.Now();
  // The caller writes the release under the lock it holds: whoever reads
  // the spans next does so after that write, or after its failure.
  Forget(lock);
  hold->released_at = now;
  hold->released_by = officer.id;

  batch.Put(keys::Hold(hold->id), codec::EncodeHold(*hold));
  // The index entries stay: ErasableFrom needs the released hold's span.
  std::vector<uint64_t> records;
  std::optional<codec::StoredRecord> held_record;
  if (hold->record_id) {
    records.push_back(*hold->record_id);
    auto stored = store_.Get(keys::Record(*hold->record_id));
    if (!stored) return Fail(stored.error());
    if (*stored) {
      auto record = codec::DecodeRecord(**stored);
      if (!record) return Fail(record.error());
      held_record = std::move(*record);
    }
  } else if (!hold->subject_id->empty()) {
    const std::string prefix = keys::SubjectRecordsPrefix(*hold->subject_id);
    CUSTOS_RETURN_IF_ERROR(
        store_.Scan(prefix, {}, [&](std::string_view key, std::string_view) {
          records.push_back(keys::NumberAfter(key, prefix));
          return true;
        }));
  }
  events.push_back(HoldEvent(officer, EventAction::kHoldReleased, *hold,
                             held_record ? &*held_record : nullptr, now));
  if (released != nullptr) *released = *hold;
  return records;
}

Result<std::vector<HoldView>> Holds::Under(const std::string& prefix,
                                           std::optional<int64_t> at,
                                           bool subject_only) const {
  record_lookups_.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::string> ids;
  CUSTOS_RETURN_IF_ERROR(store_.Scan(
      prefix, {}, [&](std::string_view key, std::string_view value) {
        if (!subject_only || value == "s") {
          ids.emplace_back(key.substr(prefix.size()));
        }
        return true;
      }));
  std::vector<HoldView> holds;
  for (const std::string& id : ids) {
    auto value = store_.Get(keys::Hold(id));
    if (!value) return Fail(value.error());
    if (!*value) return Fail(Status::DataLoss("a hold index names no hold"));
    auto hold = codec::DecodeHold(**value);
    if (!hold) return Fail(hold.error());
    if (!at || (!hold->released_at && ToMicros(hold->ends_at) > *at)) {
      holds.push_back(std::move(*hold));
    }
  }
  return holds;
}

Result<size_t> Holds::EverOnRecord(uint64_t record_id) const {
  size_t n = 0;
  CUSTOS_RETURN_IF_ERROR(store_.Scan(keys::RecordHoldsPrefix(record_id), {},
                                     [&](std::string_view, std::string_view) {
                                       ++n;
                                       return true;
                                     }));
  return n;
}

Result<size_t> Holds::EverOnSubject(const std::string& subject_id) const {
  size_t n = 0;
  CUSTOS_RETURN_IF_ERROR(
      store_.Scan(keys::SubjectHoldsPrefix(subject_id), {},
                  [&](std::string_view, std::string_view value) {
                    n += value == "s" ? 1 : 0;
                    return true;
                  }));
  return n;
}

namespace {

bool Covers(const std::vector<HoldSpans::Span>& spans, int64_t at) {
  for (const HoldSpans::Span& span : spans) {
    // Set at the erasure instant: the record was ERASED by then.
    if (span.set < at && at < span.end) return true;
  }
  return false;
}

bool Overlaps(const std::vector<HoldSpans::Span>& spans, int64_t from,
              int64_t to) {
  for (const HoldSpans::Span& span : spans) {
    if (span.set < to && from < span.end) return true;
  }
  return false;
}

}  // namespace

bool HoldSpans::MayHold(const codec::StoredRecord& record, int64_t at) const {
  if (unknown) return true;
  auto own = by_record.find(record.id);
  if (own != by_record.end() && Covers(own->second, at)) return true;
  for (const std::string& subject : record.subject_ids) {
    auto held = by_subject.find(subject);
    if (held != by_subject.end() && Covers(held->second, at)) return true;
  }
  return false;
}

void HoldSpans::Overlapping(int64_t from, int64_t to,
                            std::vector<uint64_t>& records,
                            std::vector<std::string>& subjects) const {
  records.clear();
  subjects.clear();
  for (const auto& [id, held] : by_record) {
    if (Overlaps(held, from, to)) records.push_back(id);
  }
  for (const auto& [subject, held] : by_subject) {
    if (Overlaps(held, from, to)) subjects.push_back(subject);
  }
}

Result<HoldSpans> Holds::ReadSpans() const {
  span_loads_.fetch_add(1, std::memory_order_relaxed);
  HoldSpans spans;
  CUSTOS_RETURN_IF_ERROR(store_.Scan(
      keys::kHoldPrefix, {}, [&](std::string_view, std::string_view value) {
        auto hold = codec::DecodeHold(value);
        if (!hold) {
          spans.unknown = true;
          return false;
        }
        HoldSpans::Span span{ToMicros(hold->set_at), ToMicros(hold->ends_at)};
        if (hold->released_at) {
          span.end = std::min(span.end, ToMicros(*hold->released_at));
        }
        if (hold->record_id) {
          spans.by_record[*hold->record_id].push_back(span);
        } else if (hold->subject_id) {
          spans.by_subject[*hold->subject_id].push_back(span);
        }
        return true;
      }));
  return spans;
}

Result<std::shared_ptr<const HoldSpans>> Holds::Spans(
    const WriteLock& /*lock*/) const {
  if (spans_) return spans_;
  auto any = AnyEver();
  if (!any) return Fail(any.error());
  HoldSpans spans;  // None: no hold was ever set, so no read.
  if (*any) {
    auto read = ReadSpans();
    if (!read) return Fail(read.error());
    spans = std::move(*read);
  }
  // Kept until Add, Release or Forget drops it, each under the lock.
  spans_ = std::make_shared<const HoldSpans>(std::move(spans));
  return spans_;
}

void Holds::Forget(const WriteLock& /*lock*/) const { spans_.reset(); }

Result<bool> Holds::AnyEver() const {
  const int known = any_ever_.load(std::memory_order_acquire);
  if (known >= 0) return known == 1;
  auto counter = store_.Get(keys::kNextHoldId);
  if (!counter) return Fail(counter.error());
  int unknown = -1;
  if (!*counter) {
    // Only from unknown: an Add that set 1 meanwhile wins.
    any_ever_.compare_exchange_strong(unknown, 0, std::memory_order_acq_rel);
    return any_ever_.load(std::memory_order_acquire) == 1;
  }
  any_ever_.store(1, std::memory_order_release);
  return true;
}

Result<int64_t> Holds::ErasableFrom(const codec::StoredRecord& r, int64_t legal,
                                    const HoldView* pending,
                                    const HoldSpans* spans) const {
  // No hold of the record or of its subjects covers the legal instant.
  if (spans != nullptr && pending == nullptr && !spans->MayHold(r, legal)) {
    return legal;
  }
  if (pending == nullptr) {
    auto any = AnyEver();
    if (!any) return Fail(any.error());
    if (!*any) return legal;
  }
  auto holds = Under(keys::RecordHoldsPrefix(r.id), std::nullopt, false);
  if (!holds) return Fail(holds.error());
  for (const std::string& subject : r.subject_ids) {
    auto more = Under(keys::SubjectHoldsPrefix(subject), std::nullopt, true);
    if (!more) return Fail(more.error());
    holds->insert(holds->end(), more->begin(), more->end());
  }
  if (pending != nullptr) {
    for (HoldView& h : *holds) {
      if (h.id == pending->id) h = *pending;
    }
  }
  // Spans [set, end): each hold covering the erasure instant found so far
  // moves it to that hold's end, until none does.
  int64_t erasable = legal;
  for (bool moved = true; moved;) {
    moved = false;
    for (const HoldView& h : *holds) {
      int64_t end = ToMicros(h.ends_at);
      if (h.released_at) end = std::min(end, ToMicros(*h.released_at));
      // A hold set at the erasure instant itself comes too late: the
      // record reads ERASED from that instant on (as SetRecordHold
      // refuses), and nothing brings it back.
      if (ToMicros(h.set_at) < erasable && erasable < end) {
        erasable = end;
        moved = true;
      }
    }
  }
  return erasable;
}

Result<std::vector<HoldView>> Holds::OnRecord(const codec::StoredRecord& r,
                                              int64_t at) const {
  auto holds = OnRecordOnly(r.id, at);
  if (!holds) return holds;
  for (const std::string& subject : r.subject_ids) {
    auto more = OnSubjectOnly(subject, at);
    if (!more) return more;
    holds->insert(holds->end(), more->begin(), more->end());
  }
  return holds;
}

Result<std::vector<HoldView>> Holds::OnRecordOnly(uint64_t record_id,
                                                  int64_t at) const {
  return Under(keys::RecordHoldsPrefix(record_id), at, false);
}

Result<std::vector<HoldView>> Holds::OnSubject(const std::string& subject_id,
                                               int64_t at) const {
  // No hold ever set (known in memory after the first ask): no index read,
  // as a shred's hold check would otherwise pay for one.
  auto any = AnyEver();
  if (!any) return Fail(any.error());
  if (!*any) return std::vector<HoldView>();
  return Under(keys::SubjectHoldsPrefix(subject_id), at, false);
}

Result<std::vector<HoldView>> Holds::OnSubjectOnly(
    const std::string& subject_id, int64_t at) const {
  return Under(keys::SubjectHoldsPrefix(subject_id), at, true);
}

Result<std::vector<HoldView>> Holds::Where(
    const std::function<bool(const HoldView&)>& keep, std::string_view after_id,
    size_t limit) const {
  std::vector<HoldView> holds;
  Status decoded;
  // Past `after_id` itself: the smallest key after it.
  const std::string start =
      after_id.empty() ? std::string() : keys::Hold(after_id).append(1, '\0');
  CUSTOS_RETURN_IF_ERROR(store_.Scan(
      keys::kHoldPrefix, start, [&](std::string_view, std::string_view value) {
        auto hold = codec::DecodeHold(value);
        if (!hold) {
          decoded = hold.error();
          return false;
        }
        if (keep(*hold)) holds.push_back(std::move(*hold));
        return limit == 0 || holds.size() < limit;
      }));
  CUSTOS_RETURN_IF_ERROR(decoded);
  return holds;
}

Result<std::vector<HoldView>> Holds::SubjectHoldsInForce(int64_t at) const {
  auto any = AnyEver();
  if (!any) return Fail(any.error());
  if (!*any) return std::vector<HoldView>();
  return Where([at](const HoldView& h) {
    return h.subject_id && !h.released_at && ToMicros(h.ends_at) > at;
  });
}

Result<std::vector<HoldView>> Holds::List(bool include_ended,
                                          std::string_view after_id,
                                          size_t limit) const {
  const int64_t now = ToMicros(clock_.Now());
  return Where(
      [&](const HoldView& h) {
        return include_ended || (!h.released_at && ToMicros(h.ends_at) > now);
      },
      after_id, limit);
}

std::string Holds::Describe(const std::vector<HoldView>& holds, bool with_ids) {
  std::string out;
  for (const HoldView& h : holds) {
    if (!out.empty()) out += ", ";
    const auto seconds = std::chrono::floor<std::chrono::seconds>(h.ends_at);
    const std::time_t t = seconds.time_since_epoch().count();
    std::tm tm{};
    gmtime_r(&t, &tm);
    char when[32];
    std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    out += "legal hold ";
    if (with_ids) {
      out += h.id;
      out += " ";
    }
    out += "(until ";
    out += when;
    out += ")";
  }
  return out;
}

}  // namespace custos
