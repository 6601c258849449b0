#include "storage/record_store.h"

#include <algorithm>
#include <utility>

#include "storage/capnp_value.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "storage/limits.h"
#include "storage/period.h"

namespace custos {
namespace {

using codec::StoredRecord;
using codec::Transition;

static_assert(kMaxStoredRecordBytes <= capnp_value::kMaxValueBytes / 4,
              "a record written must read back with room to spare");

// The next deadline of a record under `policy`, always computed from its
// anchoring event (last change for close_after, closure otherwise), never
// by stepping from an earlier deadline.
Result<std::pair<int64_t, Transition>> NextDeadline(
    const StoredRecord& r, const RetentionPolicy& policy) {
  std::optional<Period> period;
  int64_t anchor = 0;
  Transition next = Transition::kNone;
  switch (r.state) {
    case RecordState::kActive:
      if (policy.close_after) {
        period = policy.close_after;
        anchor = r.updated_at_micros;
        next = Transition::kClose;
      }
      break;
    case RecordState::kClosed:
      anchor = r.closed_at_micros;
      if (policy.block_after) {
        period = policy.block_after;
        next = Transition::kBlock;
      } else {
        period = policy.erase_after;
        next = Transition::kErase;
      }
      break;
    case RecordState::kBlocked:
      anchor = r.closed_at_micros;
      period = policy.erase_after;
      next = Transition::kErase;
      break;
    case RecordState::kErased:
      break;
  }
  if (!period) return std::pair<int64_t, Transition>{0, Transition::kNone};
  auto due = AddPeriod(FromMicros(anchor), *period);
  if (!due) {
    return Fail(Status::InvalidArgument("deadline out of range: " +
                                        due.error().message()));
  }
  return std::pair<int64_t, Transition>{ToMicros(*due), next};
}

}  // namespace

Status RecordStore::Load() {
  auto value = store_.Get(keys::kNextRecordId);
  if (!value) return value.error();
  if (!*value) return Status::Ok();
  if ((*value)->size() != 8) {
    return Status::DataLoss("corrupt record id counter");
  }
  next_id_ = ReadBigEndian64(**value);
  return Status::Ok();
}

Result<StoredRecord> RecordStore::Read(uint64_t id) const {
  auto value = store_.Get(keys::Record(id));
  if (!value) return Fail(value.error());
  if (!*value) return Fail(Status::NotFound("record not found"));
  return codec::DecodeRecord(**value);
}

uint64_t RecordStore::AllocateId(const WriteLock& /*lock*/,
                                 leveldb::WriteBatch& batch) {
  std::string next;
  AppendBigEndian64(next, next_id_ + 1);
  batch.Put(ToSlice(keys::kNextRecordId), next);
  return next_id_;
}

Status RecordStore::Put(const WriteLock& /*lock*/, leveldb::WriteBatch& batch,
                        StoredRecord& r,
                        std::optional<int64_t> holds_at) const {
  if (r.next_deadline_micros != 0) {
    batch.Delete(keys::Deadline(r.next_deadline_micros, r.id));
  }
  r.next_deadline_micros = 0;
  r.next_transition = Transition::kNone;
  if (const auto policy = policies_.For(r.kind)) {
    auto next = NextDeadline(r, *policy);
    if (!next) return next.error();
    r.next_deadline_micros = next->first;
    r.next_transition = next->second;
    if (next->second == Transition::kErase) {
      // A legal hold postpones erasure to its end.
      auto holds =
          holds_.OnRecord(r, holds_at.value_or(ToMicros(clock_.Now())));
      if (!holds) return holds.error();
      for (const HoldView& h : *holds) {
        r.next_deadline_micros =
            std::max(r.next_deadline_micros, ToMicros(h.ends_at));
      }
    }
    if (next->second != Transition::kNone) {
      batch.Put(keys::Deadline(r.next_deadline_micros, r.id), "");
    }
  }
  // The size is checked on the encoding itself: whatever limits were
  // configured, a record that could not be read back is never written (it
  // would read as DataLoss for everyone, sweeps and admins included).
  const std::string value = codec::EncodeRecord(r);
  if (value.size() > kMaxStoredRecordBytes) {
    return Status::ResourceExhausted(
        std::string("a record may take at most ")
            .append(std::to_string(kMaxStoredRecordBytes))
            .append(" bytes stored"));
  }
  batch.Put(keys::Record(r.id), value);
  return Status::Ok();
}

}  // namespace custos
