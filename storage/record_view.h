// Internal to storage/: the read path. Resolves a record's effective state
// for a caller (every deadline passed is in force, and a record whose every
// subject was shredded reads as ERASED at once), decides the view with
// access.h, opens what may be shown, and records the disclosure in the access
// history before any personal data is returned (DESIGN sections 2 and 5).
//
// Thread safety: thread-safe. Reads take no lock; recording a disclosure
// commits through the store.

#ifndef CUSTOS_STORAGE_RECORD_VIEW_H_
#define CUSTOS_STORAGE_RECORD_VIEW_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/access.h"
#include "storage/codec.h"
#include "storage/limits.h"
#include "storage/record_store.h"
#include "storage/store.h"
#include "storage/subjects.h"
#include "storage/types.h"

namespace custos {

class RecordViews {
 public:
  // A record as a caller sees it.
  struct Resolved {
    // In its effective state now (CatchUp below): a change that writes it
    // back writes the transitions in `caught_up` with it.
    codec::StoredRecord record;
    std::vector<PlannedTransition> caught_up;
    RecordState state = RecordState::kActive;  // Effective state.
    int64_t erased_at_micros = 0;
    View view = View::kNone;
    bool sees_subject_ids = false;  // Admin, officer or auditor caller.
  };

  // Arguments REQUIRE: outlive this object.
  RecordViews(Store& store, const RecordStore& records,
              const Subjects& subjects, const Limits& limits,
              const Clock& clock)
      : store_(store),
        records_(records),
        subjects_(subjects),
        limits_(limits),
        clock_(clock) {}

  // Record `id` as `caller` sees it. NotFound if it does not exist or the
  // caller may not see it (one answer for both).
  Result<Resolved> Resolve(const PrincipalInfo& caller, uint64_t id,
                           bool purpose_given) const;
  Result<Resolved> Resolve(const PrincipalInfo& caller,
                           codec::StoredRecord record,
                           bool purpose_given) const;

  // Brings `r` to its effective state at `at`, shreds included: as
  // RecordStore::CatchUp (whose transitions it returns, and whose erasures
  // add to `batch`), except that a record with parts, the subjects of all
  // of which were shredded by `at`, was ERASED by the last of those shreds
  // and no deadline after that instant applies to it. `*erased_by_shred`
  // receives that instant (0 when it does not apply), even when the record
  // was already ERASED (by a deadline before it); `r`'s state is left for
  // the caller to set. `spans`, when given, are the holds as kept in
  // memory (RecordStore::CatchUp). Errors: reading holds, keys or a
  // shredded subject's entry (never a default).
  Result<std::vector<PlannedTransition>> CatchUp(
      codec::StoredRecord& r, int64_t at, leveldb::WriteBatch& batch,
      int64_t* erased_by_shred, const HoldSpans* spans = nullptr) const;
  // The instant the shred of the last of `r`'s parts' subjects erased it,
  // if that was at or before `at`; 0 when it was not (a part's key lives,
  // or the record has no part). Errors: reading keys or a subject's entry.
  Result<int64_t> ErasedByShred(const codec::StoredRecord& r, int64_t at) const;

  // Engine::CountRecordsByState (storage/engine.h): every record ("r:"),
  // read from one scan and brought to its effective state at `at` in
  // memory (CatchUp; nothing is written). A record that fails with
  // DataLoss is counted as unreadable; any other error stops the count.
  Result<RecordStateCounts> CountByState(Timestamp at) const;

  // The view of a resolved record, with personal data opened when the view
  // allows it (and a purpose was given for a sensitive record). DataLoss if
  // a ciphertext fails to authenticate.
  // Takes `resolved` to move its strings into the view.
  Result<RecordView> Build(Resolved resolved,
                           const std::optional<Purpose>& purpose) const;

  // Engine::GetRecord and Engine::ListRecords (storage/engine.h). List
  // leaves out, and counts in ListPage::skipped, each record examined that
  // fails with DataLoss (a corrupt record or ciphertext).
  // A record written between the views' build and the disclosures' commit
  // (another caller's close, rectification, erasure) makes the call build
  // its views again, up to kReadAttempts times in all; then Unavailable
  // (try again).
  // Each calls `check` (if set) on what it is about to return, before
  // recording its disclosures, and returns its refusal instead.
  Result<RecordView> Get(const PrincipalInfo& caller, uint64_t id,
                         const std::optional<Purpose>& purpose,
                         const BeforeDisclosure<RecordView>& check);
  Result<ListPage> List(const PrincipalInfo& caller, const ListQuery& query,
                        const BeforeDisclosure<ListPage>& check);
  // Engine::GetRecords: one answer per id, NotFound or DataLoss as Get
  // would answer it; the disclosures of all of them in one commit.
  Result<std::vector<Result<RecordView>>> GetMany(
      const PrincipalInfo& caller, const std::vector<uint64_t>& ids,
      const std::optional<Purpose>& purpose,
      const BeforeDisclosure<std::vector<Result<RecordView>>>& check);

 private:
  // Records the disclosures of `views` (those with personal data) in one
  // commit. Data is returned only once this succeeded. `generation` is
  // Store::Generation() read before the views' records were read: unless
  // it moved, nothing changed since, and nothing is read again.
  // `changed` is set when it refuses because a view no longer matches the
  // stored record (the caller builds its views again).
  Status RecordReads(const PrincipalInfo& who,
                     const std::vector<const RecordView*>& views,
                     const std::optional<Purpose>& purpose, uint64_t generation,
                     bool* changed);
  // One attempt of Get, GetMany and List; `changed` as RecordReads says.
  Result<RecordView> GetOnce(const PrincipalInfo& caller, uint64_t id,
                             const std::optional<Purpose>& purpose,
                             const BeforeDisclosure<RecordView>& check,
                             bool* changed);
  Result<std::vector<Result<RecordView>>> GetManyOnce(
      const PrincipalInfo& caller, const std::vector<uint64_t>& ids,
      const std::optional<Purpose>& purpose,
      const BeforeDisclosure<std::vector<Result<RecordView>>>& check,
      bool* changed);
  Result<ListPage> ListOnce(const PrincipalInfo& caller, const ListQuery& query,
                            const BeforeDisclosure<ListPage>& check,
                            bool* changed);
  // Runs `once(&changed)` until it succeeds or fails for another reason
  // than a concurrent change, at most kReadAttempts times.
  template <typename Once>
  static auto Retried(const Once& once) -> decltype(once(nullptr));
  static constexpr int kReadAttempts = 4;

  Store& store_;
  const RecordStore& records_;
  const Subjects& subjects_;
  const Limits& limits_;
  const Clock& clock_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_RECORD_VIEW_H_
