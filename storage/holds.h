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
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/codec.h"
#include "storage/store.h"
#include "storage/types.h"

namespace custos {

// The spans [set, end or release) of every hold ever stored, read once
// (Holds::Spans) so that a sweep need not look up holds per record: an
// erasure instant no span covers is covered by no hold of any record.
struct HoldSpans {
  std::vector<std::pair<int64_t, int64_t>> spans;
  bool unknown = false;  // A hold did not decode: look every record up.
  // True unless no hold can cover `at`.
  bool MayCover(int64_t at) const;
  // True unless no hold can cover any instant of [from, to).
  bool MayCoverAny(int64_t from, int64_t to) const;
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
  // hold set after the record became erasable does not bring it back.
  // Ended and released holds count, so the answer does not depend on when
  // it is asked. Errors: DataLoss, mapped LevelDB.
  // `pending`, when given, is a hold as it will be once a batch not yet
  // written is (a release): it replaces the stored one of the same id.
  // `spans`, when given (and no `pending`), answers at once when no hold
  // covers `legal`.
  Result<int64_t> ErasableFrom(const codec::StoredRecord& record, int64_t legal,
                               const HoldView* pending = nullptr,
                               const HoldSpans* spans = nullptr) const;
  // Every hold's span. One seek when no hold was ever set. Errors: mapped
  // LevelDB (a hold that does not decode sets `unknown`).
  Result<HoldSpans> Spans() const;

  // Holds in force at `at` covering the record: its own and its subjects'.
  Result<std::vector<HoldView>> OnRecord(const codec::StoredRecord& record,
                                         int64_t at) const;
  // Holds in force at `at` on the record itself only.
  Result<std::vector<HoldView>> OnRecordOnly(uint64_t record_id,
                                             int64_t at) const;
  // Holds in force at `at` covering the subject or any of its records.
  Result<std::vector<HoldView>> OnSubject(const std::string& subject_id,
                                          int64_t at) const;
  // Holds in force at `at` on the subject itself only.
  Result<std::vector<HoldView>> OnSubjectOnly(const std::string& subject_id,
                                              int64_t at) const;
  // Every subject hold in force at `at`, on any subject. No seek when no
  // hold was ever set; otherwise one scan of every hold (holds are few).
  Result<std::vector<HoldView>> SubjectHoldsInForce(int64_t at) const;
  // Every hold in force now; with include_ended, released and ended too.
  Result<std::vector<HoldView>> List(bool include_ended) const;

  // "legal hold h3 (until 2027-03-01T00:00:00Z), legal hold h4 (...)".
  static std::string Describe(const std::vector<HoldView>& holds);

 private:
  // Holds indexed under `prefix` (only subject holds if `subject_only`):
  // those in force at `at`, or all of them if `at` is nullopt.
  Result<std::vector<HoldView>> Under(const std::string& prefix,
                                      std::optional<int64_t> at,
                                      bool subject_only) const;

  // Every stored hold `keep` accepts, in key order. DataLoss if one does
  // not decode.
  Result<std::vector<HoldView>> Where(
      const std::function<bool(const HoldView&)>& keep) const;

  // Whether a hold was ever set in this store (its hold counter exists):
  // until one is, no record is held, and ErasableFrom answers without a
  // scan (a close, a withdrawal, a re-apply pay for no hold lookup).
  Result<bool> AnyEver() const;

  Store& store_;
  const Clock& clock_;
  // AnyEver's answer once known: -1 unknown, 0 none, 1 some. Add sets 1
  // before it writes; a store never loses its holds' entries.
  mutable std::atomic<int> any_ever_{-1};
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_HOLDS_H_
