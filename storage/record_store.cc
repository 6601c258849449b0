#include "storage/record_store.h"

#include <algorithm>
#include <utility>

#include "crypto/aead.h"
#include "storage/capnp_value.h"
#include "storage/erasure.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "storage/limits.h"
#include "storage/period.h"
#include "storage/sealing.h"
#include "storage/stats_index.h"

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
        // Records written before the owner's changes were stored count
        // from their last change of any kind: late, never early.
        anchor = codec::CloseAnchor(r);
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
  uint64_t floor = 1;
  if (*value) {
    if ((*value)->size() != 8) {
      return Status::DataLoss("corrupt record id counter");
    }
    floor = ReadBigEndian64(**value);
  }
  // Records are never deleted (an erased one keeps its entry): the last
  // one has the greatest id ever given.
  auto last = store_.LastKey(keys::kRecordPrefix, {});
  if (!last) return last.error();
  uint64_t next = floor;
  if (*last) {
    if ((*last)->size() != keys::kRecordPrefix.size() + 8) {
      return Status::DataLoss("corrupt record key");
    }
    next = std::max(next, keys::NumberAfter(**last, keys::kRecordPrefix) + 1);
  }
  next_id_ = next;
  id_floor_ = floor;
  pending_floor_ = 0;
  auto erased = store_.Get(keys::kHistoryPruneErasedFrom);
  if (!erased) return erased.error();
  // One that does not decode: as if every record had been erased at the
  // earliest instant (pruning wakes, and its next pass starts again).
  erased_since_pass_ = !*erased ? kNoErasure
                       : (*erased)->size() == 8
                           ? static_cast<int64_t>(ReadBigEndian64(**erased))
                           : INT64_MIN;
  return LoadDeltaCounter();
}

int64_t RecordStore::ErasedSincePass(const WriteLock& /*lock*/) const {
  return erased_since_pass_;
}

void RecordStore::PutErasedSincePassReset(leveldb::WriteBatch& batch) {
  std::string none;
  AppendBigEndian64(none, static_cast<uint64_t>(kNoErasure));
  batch.Put(ToSlice(keys::kHistoryPruneErasedFrom), none);
}

void RecordStore::ErasedSincePassReset(const WriteLock& /*lock*/) {
  erased_since_pass_ = kNoErasure;
}

void RecordStore::HistoryDueFrom(const WriteLock& /*lock*/,
                                 leveldb::WriteBatch& batch, int64_t from) {
  erased_since_pass_ = std::min(erased_since_pass_, from);
  std::string value;
  AppendBigEndian64(value, static_cast<uint64_t>(erased_since_pass_));
  batch.Put(ToSlice(keys::kHistoryPruneErasedFrom), value);
}

Status RecordStore::LoadDeltaCounter() {
  auto value = store_.Get(keys::kStatsNextDelta);
  if (!value) return value.error();
  uint64_t stored = 1;  // Written only by builds before issue 16.
  if (*value) {
    if ((*value)->size() != 8) {
      return Status::DataLoss("corrupt statistics delta counter");
    }
    stored = ReadBigEndian64(**value);
  }
  auto derived = StatsIndex::NextDelta(store_);
  if (!derived) return derived.error();
  next_delta_ = std::max(stored, *derived);
  delta_floor_ = stored;
  return Status::Ok();
}

Status RecordStore::KeepDeltaFloor(leveldb::WriteBatch& batch) const {
  // Every number staged so far is below next_delta_.
  if (next_delta_ <= delta_floor_) return Status::Ok();
  // A floor put by an earlier Put is taken only once it reads back: its
  // batch may have been dropped (once in kDeltasAhead + 1 deltas).
  auto value = store_.Get(keys::kStatsNextDelta);
  if (!value) return value.error();
  if (*value && (*value)->size() == 8) {
    delta_floor_ = std::max(delta_floor_, ReadBigEndian64(**value));
  }
  if (next_delta_ <= delta_floor_) return Status::Ok();
  std::string floor;
  AppendBigEndian64(floor, next_delta_ + kDeltasAhead);
  batch.Put(ToSlice(keys::kStatsNextDelta), floor);
  return Status::Ok();
}

Result<StoredRecord> RecordStore::Read(uint64_t id) const {
  // The "r:" value and its "pb:" entry as of one instant: a reader without
  // the write lock must not take an old value and a newer entry (or none,
  // the bucket moved) and report a healthy record as DataLoss.
  const auto snapshot = store_.TakeSnapshot();
  auto value = store_.Get(keys::Record(id), snapshot.get());
  if (!value) return Fail(value.error());
  if (!*value) return Fail(Status::NotFound("record not found"));
  auto record = codec::DecodeRecord(**value);
  if (!record) return Fail(record.error());
  CUSTOS_RETURN_IF_ERROR(LoadSealed(*record, snapshot.get()));
  return record;
}

Result<StoredRecord> RecordStore::ReadUnmerged(uint64_t id) const {
  auto value = store_.Get(keys::Record(id));
  if (!value) return Fail(value.error());
  if (!*value) return Fail(Status::NotFound("record not found"));
  return codec::DecodeRecord(**value);
}

void RecordStore::DropSealed(StoredRecord& r) {
  r.sealed_pending = false;
  r.sealed_stored_bucket = 0;
  for (auto& p : r.parts) p.sealed.clear();
  for (auto& f : r.flags) f.sealed_note.clear();
  for (auto& c : r.contests) c.sealed_statement.clear();
}

Status RecordStore::LoadSealed(StoredRecord& r,
                               const leveldb::Snapshot* snapshot) const {
  if (!r.sealed_pending) return Status::Ok();
  auto value = store_.Get(keys::BucketSealed(r.erase_bucket, r.id), snapshot);
  if (!value) return value.error();
  r.sealed_pending = false;
  if (!*value) {
    // None left: the bucket's key was destroyed and its range deleted (or
    // the record never held a ciphertext). Its sealed fields stay empty.
    r.sealed_stored_bucket = 0;
    return Status::Ok();
  }
  r.sealed_stored_bucket = r.erase_bucket;
  return codec::MergeSealedContents(**value, r);
}

std::string RecordStore::SealedKey(const StoredRecord& r) {
  return r.erase_bucket == 0 ? keys::Record(r.id)
                             : keys::BucketSealed(r.erase_bucket, r.id);
}

uint64_t RecordStore::AllocateIds(const WriteLock& /*lock*/,
                                  leveldb::WriteBatch& batch, size_t n) {
  pending_floor_ = 0;
  if (next_id_ + n > id_floor_) {
    pending_floor_ = next_id_ + n + kIdsAhead;
    std::string floor;
    AppendBigEndian64(floor, pending_floor_);
    batch.Put(ToSlice(keys::kNextRecordId), floor);
  }
  return next_id_;
}

// A change that left its state as it was (a rewrite of its ciphertexts, a
// grant, a rectification) keeps it so; a close, a withdrawal or a
// transition does not; nor does an owner's change to an ACTIVE record
// due to close, which moves what its close deadline counts from.
bool RecordStore::ScheduleFitsState(const StoredRecord& r) {
  switch (r.state) {
    case RecordState::kActive:
      return r.next_transition == Transition::kNone ||
             (r.next_transition == Transition::kClose &&
              codec::CloseAnchor(r) == r.close_anchor_as_stored);
    case RecordState::kClosed:
      return r.next_transition == Transition::kBlock ||
             r.next_transition == Transition::kErase;
    case RecordState::kBlocked:
      return r.next_transition == Transition::kErase;
    case RecordState::kErased:
      return r.next_transition == Transition::kNone;
  }
  return false;
}

Status RecordStore::Schedule(StoredRecord& r, const HoldView* pending,
                             const HoldSpans* spans, int64_t not_before) const {
  // An erased record has no next deadline whatever its policy says.
  if (r.state == RecordState::kErased) {
    r.next_deadline_micros = 0;
    r.next_transition = Transition::kNone;
    return Status::Ok();
  }
  int64_t set_at = 0;
  auto policy = policies_.For(r.kind, &set_at);
  if (!policy || !*policy) {
    // The kind's stored policy failed its MAC, or is gone (none can be
    // deleted, and no record is created without one): the files were
    // written without the key. A change that leaves the record's state as
    // it was keeps the deadline computed under the policy in force then
    // (so erasures, re-keys, shreds and restores go on); one that needs a
    // new deadline is refused, never left without one.
    if (!ScheduleFitsState(r)) {
      return policy
                 ? Status::DataLoss("the retention policy of kind '" + r.kind +
                                    "' is missing: set it again (custos "
                                    "policy set)")
                 : policy.error();
    }
    if (r.next_transition == Transition::kErase) {
      auto erasable =
          holds_.ErasableFrom(r, r.next_deadline_micros, pending, spans);
      if (!erasable) return erasable.error();
      r.next_deadline_micros = *erasable;
    }
    return Status::Ok();
  }
  r.next_deadline_micros = 0;
  r.next_transition = Transition::kNone;
  auto next = NextDeadline(r, **policy);
  if (!next) return next.error();
  // Never before `not_before` (the change computing it, or the transition
  // before it in a catch-up), whatever the transition; nor before the
  // policy computing it was set: a catch-up's later step computed under a
  // policy set since the stored deadline is not dated before the change
  // (where a hold set meanwhile would not count), whether or not the
  // change could write the earlier steps down (helper-130). Never after
  // now for that, though: a policy set while the clock was ahead would
  // otherwise hold back every deadline of its kind once the clock is put
  // right (helper-134).
  next->first = std::max(next->first, not_before);
  if (set_at > next->first) {
    next->first =
        std::max(next->first, std::min(set_at, ToMicros(clock_.Now())));
  }
  r.next_deadline_micros = next->first;
  r.next_transition = next->second;
  if (next->second == Transition::kErase) {
    // A legal hold postpones erasure to the first instant none covers it.
    auto erasable = holds_.ErasableFrom(r, next->first, pending, spans);
    if (!erasable) return erasable.error();
    r.next_deadline_micros = *erasable;
  }
  return Status::Ok();
}

Result<std::vector<PlannedTransition>> RecordStore::CatchUp(
    StoredRecord& r, int64_t at, leveldb::WriteBatch& batch, bool* erasure_held,
    Status* schedule_error, const HoldSpans* spans) const {
  std::vector<PlannedTransition> steps;
  if (erasure_held != nullptr) *erasure_held = false;
  // The stored deadline is the one in force (a policy changed since applies
  // once ReapplyPolicies recomputed it); each later one is computed as the
  // sweep's Put would have. A hold may postpone an erasure past the stored
  // instant but never advance it, so a record whose stored deadline is
  // still ahead is already in its effective state.
  while (r.next_transition != Transition::kNone &&
         r.next_deadline_micros <= at) {
    int64_t due = r.next_deadline_micros;
    if (r.next_transition == Transition::kErase) {
      auto erasable = holds_.ErasableFrom(r, due, nullptr, spans);
      if (!erasable) return Fail(erasable.error());
      if (*erasable > at) {
        r.next_deadline_micros = *erasable;
        if (erasure_held != nullptr) *erasure_held = true;
        break;
      }
      due = *erasable;
    }
    PlannedTransition step{r.id, r.state, r.state, FromMicros(due)};
    switch (r.next_transition) {
      case Transition::kClose:
        r.state = RecordState::kClosed;
        r.closed_at_micros = due;
        break;
      case Transition::kBlock:
        r.state = RecordState::kBlocked;
        r.blocked_at_micros = due;
        break;
      case Transition::kErase:
        Erasure::EraseContents(r, due, ToMicros(clock_.Now()), batch);
        break;
      case Transition::kNone:
        break;
    }
    step.to = r.state;
    steps.push_back(step);
    // The next deadline is never before this step: under a policy
    // shortened since the stored deadline was computed, the next one may
    // lie earlier, and an erasure dated there would ignore a hold set
    // between the two (helper-126).
    Status next = Schedule(r, nullptr, spans, ToMicros(step.due));
    if (!next.ok()) {
      // The transition is in force; only the one after it is unknown (a
      // policy whose deadline cannot be represented). The effective state
      // stands; whoever writes the record gets the error from Put.
      r.next_transition = Transition::kNone;
      r.next_deadline_micros = 0;
      if (schedule_error != nullptr) *schedule_error = next;
      break;
    }
  }
  return steps;
}

Status RecordStore::Reseal(const WriteLock& lock, StoredRecord& r, uint64_t to,
                           leveldb::WriteBatch& batch) const {
  DeadlineKeys& deadline_keys = subjects_.deadline_keys();
  SharedKey to_bucket;
  if (to != 0) {
    auto key = deadline_keys.GetOrCreate(lock, to);
    if (!key) return key.error();
    to_bucket = std::move(*key);
    // A record sealed into a bucket erased by key before (its key made
    // again; its erase deadline is then in the bucket's ended hour, in
    // force already) is not erased by that erasure: the bucket's marker
    // goes, so that the sweep that erases the bucket again (by the new key,
    // or record by record) writes and reports its erasure. The bucket's
    // records erased by the old key whose stubs are not written yet hold no
    // ciphertext any more (their "pb:" entries went with the bucket's
    // range, deleted right after the old key by that sweep, or by Open
    // after a crash): nothing of theirs is opened under the new key (a
    // re-key skips their empty ciphertexts); that sweep writes their stubs
    // and, their marker gone, reports their erasures a second time
    // (tests/deadline_keys_test.cc, ResealIntoAnErasedBucketTest).
    batch.Delete(keys::ErasedBucket(to));
  }
  // Worked on copies: `r` changes only once every ciphertext is re-sealed.
  std::vector<codec::StoredPart> parts = r.parts;
  std::vector<codec::StoredFlag> flags = r.flags;
  std::vector<codec::StoredContest> contests = r.contests;
  leveldb::WriteBatch witnesses;
  // Where the old ciphertexts were: their old versions must leave the files.
  const std::string old_key = SealedKey(r);
  auto reseal = [&](const std::string& subject_id, codec::Bytes& sealed,
                    const sealing::Bytes& ad, std::string_view what) {
    if (sealed.empty()) return Status::Ok();
    auto key = subjects_.Key(subject_id);
    if (!key) return key.error();
    // Shredded: unreadable for good, dropped by CompleteShreds.
    if (!*key) return Status::Ok();
    auto plain =
        OpenSealed(subject_id, **key, r.erase_bucket, sealed, ad, what);
    if (!plain) return plain.error();
    codec::Bytes resealed;
    if (to == 0) {
      resealed = crypto::Seal(**key, *plain, ad);
    } else {
      resealed = crypto::Seal(deadline_keys.PartKey(*to_bucket, **key, to),
                              *plain, ad);
    }
    crypto::Wipe(*plain);
    Erasure::AddWitness(witnesses, sealed);
    sealed = std::move(resealed);
    return Status::Ok();
  };
  for (auto& part : parts) {
    CUSTOS_RETURN_IF_ERROR(
        reseal(part.subject_id, part.sealed,
               sealing::PartAd(r.id, part.subject_id, part.version),
               "a personal part"));
  }
  for (auto& f : flags) {
    CUSTOS_RETURN_IF_ERROR(
        reseal(f.subject_id, f.sealed_note,
               sealing::NoteAd("flag", r.id, f.subject_id, f.at_micros),
               "a flag note"));
  }
  for (auto& c : contests) {
    CUSTOS_RETURN_IF_ERROR(
        reseal(c.subject_id, c.sealed_statement,
               sealing::NoteAd("contest", r.id, c.subject_id, c.at_micros),
               "a contest"));
  }
  r.parts = std::move(parts);
  r.flags = std::move(flags);
  r.contests = std::move(contests);
  r.erase_bucket = to;
  batch.Append(witnesses);
  Erasure::Queue(batch, old_key, ToMicros(clock_.Now()));
  return Status::Ok();
}

Result<codec::Bytes> RecordStore::OpenSealed(const std::string& subject_id,
                                             const crypto::SecretKey& key,
                                             uint64_t bucket,
                                             const codec::Bytes& sealed,
                                             const codec::Bytes& ad,
                                             std::string_view what) const {
  auto part_key = subjects_.deadline_keys().PartKey(key, bucket);
  if (!part_key) return Fail(part_key.error());
  auto plain = crypto::Open(*part_key ? **part_key : key, sealed, ad);
  if (plain) return std::move(*plain);
  // Not under `key`: sealed under the retiring key of a re-key under way,
  // or `key` was replaced since it was looked up. Subjects knows which key
  // to try next; its fields are encoded again as SealFields encodes them.
  auto fields = subjects_.OpenFields(subject_id, key, bucket, sealed, ad, what);
  if (!fields) return Fail(fields.error());
  codec::Bytes bytes = codec::EncodeFields(*fields);
  for (Field& f : *fields) {
    crypto::Wipe(std::span<uint8_t>(reinterpret_cast<uint8_t*>(f.value.data()),
                                    f.value.size()));
  }
  return bytes;
}

Status RecordStore::Put(const WriteLock& lock, leveldb::WriteBatch& batch,
                        StoredRecord& r, const HoldView* pending,
                        const HoldSpans* spans) const {
  return Write(lock, batch, r, true, pending, spans);
}

Status RecordStore::PutKeepingSchedule(const WriteLock& lock,
                                       leveldb::WriteBatch& batch,
                                       StoredRecord& r) const {
  return Write(lock, batch, r, false, nullptr, nullptr);
}

Status RecordStore::Write(const WriteLock& lock, leveldb::WriteBatch& batch,
                          StoredRecord& r, bool reschedule,
                          const HoldView* pending,
                          const HoldSpans* spans) const {
  if (r.sealed_pending) {
    // Writing it would drop its ciphertexts: a caller decoded it alone.
    return Status::Internal("a record written without its sealed contents");
  }
  const int64_t indexed = r.indexed_deadline_micros;
  if (reschedule) {
    const int64_t came_with = r.next_deadline_micros;
    const Transition came_for = r.next_transition;
    CUSTOS_RETURN_IF_ERROR(Schedule(r, pending, spans));
    const int64_t now = ToMicros(clock_.Now());
    // A date in the past that the record did not come with: the policy
    // was shortened since its deadline was computed (a caller's catch-up
    // computes the same deadline as this, under the same policy). The
    // record was in use until now: the transition is due now, and, for an
    // erasure, a hold covering now (or set since the shortened date)
    // postpones it (helper-124: the hold was ignored and the erasure
    // back-dated; helper-126: through a shortened block or close too).
    if (r.next_transition != Transition::kNone &&
        r.next_deadline_micros < now &&
        (r.next_deadline_micros != came_with ||
         r.next_transition != came_for)) {
      CUSTOS_RETURN_IF_ERROR(Schedule(r, pending, spans, now));
    }
  }
  // The seal follows the erase deadline (docs/retention.md, "Deadline
  // keys"): an erased record has nothing sealed left.
  const uint64_t bucket = DeadlineKeys::BucketFor(r);
  leveldb::WriteBatch resealed;
  if (r.state == RecordState::kErased) {
    r.erase_bucket = 0;
  } else if (bucket != r.erase_bucket) {
    CUSTOS_RETURN_IF_ERROR(Reseal(lock, r, bucket, resealed));
  }
  // The size is checked on the encoding itself: whatever limits were
  // configured, a record that could not be read back is never written (it
  // would read as DataLoss for everyone, sweeps and admins included).
  // Sealed under a bucket: the ciphertexts go to the bucket's "pb:" entry
  // (none when the record holds none), the "r:" value keeps none.
  const std::string value = codec::EncodeRecord(r);
  std::string sealed;
  if (r.erase_bucket != 0 && codec::HasSealedContents(r)) {
    sealed = codec::EncodeSealedContents(r);
  }
  if (value.size() + sealed.size() > kMaxStoredRecordBytes) {
    return Status::ResourceExhausted(
        std::string("a record may take at most ")
            .append(std::to_string(kMaxStoredRecordBytes))
            .append(" bytes stored"));
  }
  batch.Append(resealed);
  if (indexed != 0) batch.Delete(keys::Deadline(indexed, r.id));
  if (r.next_transition != Transition::kNone) {
    batch.Put(keys::Deadline(r.next_deadline_micros, r.id),
              EncodeDeadlineEntry(r));
  }
  r.indexed_deadline_micros = r.next_deadline_micros;
  r.close_anchor_as_stored = codec::CloseAnchor(r);
  batch.Put(keys::Record(r.id), value);
  const uint64_t sealed_bucket = sealed.empty() ? 0 : r.erase_bucket;
  if (r.sealed_stored_bucket != 0 && r.sealed_stored_bucket != sealed_bucket) {
    batch.Delete(keys::BucketSealed(r.sealed_stored_bucket, r.id));
  }
  if (sealed_bucket != 0) {
    batch.Put(keys::BucketSealed(sealed_bucket, r.id), sealed);
  }
  r.sealed_stored_bucket = sealed_bucket;
  if (r.state == RecordState::kErased) {
    // Lowered by a record becoming ERASED (a shred rewrites records erased
    // long ago: they would wake pruning for nothing), but put with every
    // erased record: an earlier batch that lowered it may have been
    // dropped, and this one be its retry.
    if (r.stored_state != RecordState::kErased) {
      erased_since_pass_ = std::min(erased_since_pass_, r.erased_at_micros);
    }
    std::string from;
    AppendBigEndian64(from, static_cast<uint64_t>(erased_since_pass_));
    batch.Put(ToSlice(keys::kHistoryPruneErasedFrom), from);
  }
  // Its transitions since it was stored, in the statistics index.
  return StageStatistics(lock, batch, r);
}

Status RecordStore::StageStatistics(const WriteLock& /*lock*/,
                                    leveldb::WriteBatch& batch,
                                    StoredRecord& r) const {
  if (statistics_index_) {
    // Load derives the next number from the last delta and the fold
    // cursor; the floor is written once in kDeltasAhead + 1 numbers.
    const size_t staged = StatsIndex::Stage(batch, r, next_delta_);
    next_delta_ += staged;
    if (staged != 0) CUSTOS_RETURN_IF_ERROR(KeepDeltaFloor(batch));
  }
  r.stored_state = r.state;
  return Status::Ok();
}

std::string RecordStore::EncodeDeadlineEntry(const codec::StoredRecord& r) {
  return {static_cast<char>(r.next_transition), static_cast<char>(r.state)};
}

std::optional<RecordStore::DeadlineEntry> RecordStore::DecodeDeadlineEntry(
    std::string_view value) {
  if (value.size() != 2) return std::nullopt;
  const auto next = static_cast<uint8_t>(value[0]);
  const auto state = static_cast<uint8_t>(value[1]);
  if (next > static_cast<uint8_t>(codec::Transition::kErase) ||
      state > static_cast<uint8_t>(RecordState::kErased)) {
    return std::nullopt;
  }
  return DeadlineEntry{static_cast<codec::Transition>(next),
                       static_cast<RecordState>(state)};
}

}  // namespace custos
