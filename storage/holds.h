// Internal to storage/: legal holds (DESIGN section 3, docs/retention.md
// "Legal holds"). Owns the key families "hold:", "ho:" and the counter
// "m:next_hold_id". A hold postpones erasure; it never changes visibility.
// Holds do not write records: whoever releases a hold reschedules the
// records it returns. A released hold stays indexed ("ho:") under what it
// covered, so the instant an erasure it postponed became due stays known
// (ErasableFrom).
//
// Thread safety: thread-safe; Add and Release REQUIRE the write lock.

#ifndef CUSTOS_STORAGE_HOLDS_H_
#define CUSTOS_STORAGE_HOLDS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/codec.h"
#include "storage/store.h"
#include "storage/types.h"

namespace custos {

// The spans [set, end or release) of every hold ever stored, with what
// each holds (a record, or a subject's records), read once and kept in
// memory (Holds::Spans) so that a sweep looks up no hold per record: an
// erasure instant no span of a record's own holds or of its subjects' holds
// covers is covered by no hold, and a deadline bucket no span overlaps
// holds no held record.
struct HoldSpans {
  struct Span {
    int64_t set = 0;
    int64_t end = 0;  // Its end or its release, whichever came first.
  };
  std::unordered_map<uint64_t, std::vector<Span>> by_record;
  std::unordered_map<std::string, std::vector<Span>> by_subject;  // Subject
                                                                  // holds.
  bool unknown = false;  // A hold did not decode: look every record up.

  // True unless no hold of the record itself or of one of its subjects
  // covers `at` (Holds::ErasableFrom's first question).
  bool MayHold(const codec::StoredRecord& record, int64_t at) const;
  // The records and subjects whose holds overlap [from, to): every record a
  // hold can reach in that span is one of them or one of their records.
  // Meaningless when `unknown`.
  void Overlapping(int64_t from, int64_t to, std::vector<uint64_t>& records,
                   std::vector<std::string>& subjects) const;
};

class Holds {
 public:
  Holds(Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // Stores `hold` (with its record_id or subject_id set) set by `officer`,
  // and its hold_set event; `record` is the held record (null for a subject
  // hold). InvalidArgument for an end not in the future, or more than
  // kMaxPolicyPeriod after now.
  Result<HoldView> Add(WriteLock lock, const PrincipalInfo& officer,
                       HoldView hold, std::string_view reason,
                       Timestamp ends_at, const codec::StoredRecord* record);

  // Adds the release of hold `hold_id` to `batch` and its hold_released
  // event to `events`, for the caller to write with the covered records'
  // new deadlines in one commit. Returns the ids of the records whose
  // erasure it may have postponed. NotFound for an unknown id;
  // FailedPrecondition if already released.
  // `released`, when given, receives the hold as released (for
  // ErasableFrom's `pending`, before the batch is written).
  Result<std::vector<uint64_t>> Release(const WriteLock& lock,
                                        const PrincipalInfo& officer,
                                        std::string_view hold_id,
                                        leveldb::WriteBatch& batch,
                                        std::vector<Event>& events,
                                        HoldView* released = nullptr);
  // How many holds, in force or not, are indexed under the record or the
  // subject: what ErasableFrom reads (bounded by Limits::max_holds_ever_*).
  Result<size_t> EverOnRecord(uint64_t record_id) const;
  Result<size_t> EverOnSubject(const std::string& subject_id) const;

  // The first instant at or after `legal` at which no hold covers the
  // record (its own holds and its subjects' subject holds): a hold counts
  // from its setting to its end or release, whichever comes first, and a
  // hold set at or after the instant the record became erasable does not
  // bring it back.
  // Ended and released holds count, so the answer does not depend on when
  // it is asked. Errors: DataLoss, mapped LevelDB.
  // `pending`, when given, is a hold as it will be once a batch not yet
  // written is (a release): it replaces the stored one of the same id.
  // `spans`, when given (and no `pending`), answers at once when no hold
  // covers `legal`.
  Result<int64_t> ErasableFrom(const codec::StoredRecord& record, int64_t legal,
                               const HoldView* pending = nullptr,
                               const HoldSpans* spans = nullptr) const;
  // Every hold's span, read from the store once and kept until a hold is
  // added, released or rewritten (Forget): no read at all when no hold was
  // ever set, none while the holds are unchanged. REQUIRES the write lock,
  // under which the holds change. Errors: mapped LevelDB (a hold that does
  // not decode sets `unknown`).
  Result<std::shared_ptr<const HoldSpans>> Spans(const WriteLock& lock) const;
  // The same, read from the store now, for callers without the lock.
  Result<HoldSpans> ReadSpans() const;
  // Drops the kept spans: the holds' entries were rewritten outside Add and
  // Release (Shredder::Unlink). REQUIRES the write lock.
  void Forget(const WriteLock& lock) const;

  // Reads of the store for holds: span loads (Spans, ReadSpans) and lookups
  // of one record's or subject's holds (ErasableFrom, OnRecord, ...). For
  // tests that show what a sweep asks.
  struct Lookups {
    uint64_t span_loads = 0;
    uint64_t record_lookups = 0;
  };
  Lookups TEST_Lookups() const {
    return {span_loads_.load(std::memory_order_relaxed),
            record_lookups_.load(std::memory_order_relaxed)};
  }

  // Holds in force at `at` covering the record: its own and its subjects'.
  Result<std::vector<HoldView>> OnRecord(const codec::StoredRecord& record,
                                         int64_t at) const;
  // Holds in force at `at` on the record itself only.
  Result<std::vector<HoldView>> OnRecordOnly(uint64_t record_id,
                                             int64_t at) const;
  // Holds in force at `at` covering the subject or any of its records. No
  // seek when no hold was ever set.
  Result<std::vector<HoldView>> OnSubject(const std::string& subject_id,
                                          int64_t at) const;
  // Holds in force at `at` on the subject itself only.
  Result<std::vector<HoldView>> OnSubjectOnly(const std::string& subject_id,
                                              int64_t at) const;
  // Every subject hold in force at `at`, on any subject. No seek when no
  // hold was ever set; otherwise one scan of every hold (holds are few).
  Result<std::vector<HoldView>> SubjectHoldsInForce(int64_t at) const;
  // Every hold in force now; with include_ended, released and ended too.
  // By id: those after `after_id` ("": from the first), at most `limit`
  // (0: all).
  Result<std::vector<HoldView>> List(bool include_ended,
                                     std::string_view after_id = {},
                                     size_t limit = 0) const;

  // "legal hold h3 (until 2027-03-01T00:00:00Z), legal hold h4 (...)";
  // without ids, "legal hold (until ...), ...": hold ids link the records a
  // hold on a subject covers, as subject ids do, so a caller who may not
  // see subject ids is not told them either.
  static std::string Describe(const std::vector<HoldView>& holds,
                              bool with_ids = true);

 private:
  // Holds indexed under `prefix` (only subject holds if `subject_only`):
  // those in force at `at`, or all of them if `at` is nullopt.
  Result<std::vector<HoldView>> Under(const std::string& prefix,
                                      std::optional<int64_t> at,
                                      bool subject_only) const;

  // Every stored hold `keep` accepts, in key order: those after `after_id`
  // ("": from the first), at most `limit` (0: all). DataLoss if one does
  // not decode.
  Result<std::vector<HoldView>> Where(
      const std::function<bool(const HoldView&)>& keep,
      std::string_view after_id = {}, size_t limit = 0) const;

  // Whether a hold was ever set in this store (its hold counter exists):
  // until one is, no record is held, and ErasableFrom answers without a
  // scan (a close, a withdrawal, a re-apply pay for no hold lookup).
  Result<bool> AnyEver() const;

  Store& store_;
  const Clock& clock_;
  // AnyEver's answer once known: -1 unknown, 0 none, 1 some. Add sets 1
  // before it writes; a store never loses its holds' entries.
  mutable std::atomic<int> any_ever_{-1};
  // Spans' kept answer, null until read and after a change. Guarded by the
  // store's write lock.
  mutable std::shared_ptr<const HoldSpans> spans_;
  mutable std::atomic<uint64_t> span_loads_{0};
  mutable std::atomic<uint64_t> record_lookups_{0};
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_HOLDS_H_
