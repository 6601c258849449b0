// Internal to storage/: the changes to records (DESIGN sections 2 and 3):
// create, grant, rectify, flag, contest, close, withdraw, erase, and legal
// holds on records and subjects. Owns the key family "a:" (who may list
// which record). Every change resolves the record as the caller sees it
// (record_view), checks the rules, writes the record through RecordStore and
// commits it with its access-history events in one write.
//
// The caller's roles are checked by the facade; this unit checks ownership,
// states and what the caller may see.
//
// Thread safety: thread-safe; each change holds the write lock from its
// read to its write.

#ifndef CUSTOS_STORAGE_RECORDS_H_
#define CUSTOS_STORAGE_RECORDS_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/erasure.h"
#include "storage/holds.h"
#include "storage/limits.h"
#include "storage/principals.h"
#include "storage/record_store.h"
#include "storage/record_view.h"
#include "storage/store.h"
#include "storage/subjects.h"
#include "storage/types.h"

namespace custos {

class Records {
 public:
  struct Units {
    Store& store;
    RecordStore& record_store;
    RecordViews& views;
    Subjects& subjects;
    const Principals& principals;
    const Policies& policies;
    Holds& holds;
    Erasure& erasure;
    const Limits& limits;
    const Clock& clock;
  };
  explicit Records(Units units) : u_(units) {}

  // As the Engine methods of the same names (storage/engine.h); `caller`
  // holds the role the facade required. Rectify, Flag and Contest refuse a
  // change that would take the record's personal bytes past
  // Limits::max_personal_bytes (ResourceExhausted, CheckRoom); Flag,
  // Contest, Grant and the holds refuse one past their count limits
  // (ResourceExhausted).
  Result<uint64_t> Create(const PrincipalInfo& caller, const NewRecord& record);
  // Engine::CreateRecords: every record in one write, or none.
  Result<std::vector<uint64_t>> CreateMany(
      const PrincipalInfo& caller, const std::vector<NewRecord>& records);
  Status Grant(const PrincipalInfo& caller, uint64_t id,
               std::string_view grantee);
  Result<uint64_t> Rectify(const PrincipalInfo& caller, uint64_t id,
                           std::string_view subject_id,
                           const std::vector<Field>& fields);
  Status Flag(const PrincipalInfo& caller, uint64_t id,
              std::string_view subject_id, std::string_view note,
              const std::optional<Purpose>& purpose);
  Status Contest(const PrincipalInfo& caller, uint64_t id,
                 std::string_view subject_id, std::string_view statement,
                 const std::vector<Field>& corrected);
  Status Close(const PrincipalInfo& caller, uint64_t id);
  Status Withdraw(const PrincipalInfo& caller, uint64_t id);
  Status Erase(const PrincipalInfo& caller, uint64_t id);

  Result<HoldView> SetRecordHold(const PrincipalInfo& officer,
                                 uint64_t record_id, std::string_view reason,
                                 Timestamp ends_at);
  Result<HoldView> SetSubjectHold(const PrincipalInfo& officer,
                                  std::string_view subject_id,
                                  std::string_view reason, Timestamp ends_at);
  // Releases the hold; erasures it postponed whose legal date has passed
  // become due at once.
  Status ReleaseHold(const PrincipalInfo& officer, std::string_view hold_id);

  // Engine::TEST_SetBeforeCreateGroup and TEST_QueuedCreates. The hook is
  // set before any create runs.
  void TEST_SetBeforeGroup(std::function<void()> hook) {
    before_group_ = std::move(hook);
  }
  size_t TEST_QueuedCreates() {
    std::lock_guard<std::mutex> lock(create_mu_);
    return create_queue_.size();
  }

 private:
  // What Create checks before touching the store: the record's limits, its
  // grantees, its kind's policy. The grantees, without duplicates or the
  // caller.
  Result<std::vector<std::string>> CheckNew(const PrincipalInfo& caller,
                                            const NewRecord& in) const;
  // Creates `records` (at least one) in one write with their events, ids
  // consecutive in order; with `name_position`, a refusal names the
  // record's position in the batch. Concurrent callers' creates queue: the
  // one at the head of the queue writes its own and those queued behind it
  // (up to Limits::max_batch_records records) in one write under one hold
  // of the write lock, as LevelDB's DB::Write does, so that synchronous
  // writers share one commit and hand the lock over once per write, not
  // once per create; it then waits for the write to be durable and wakes
  // the others once. A refusal of one caller's records leaves the others'
  // written.
  Result<std::vector<uint64_t>> CreateBatch(const PrincipalInfo& caller,
                                            std::span<const NewRecord> records,
                                            bool name_position);
  // One caller's creates, queued (CreateBatch). The caller's own fields are
  // set before queueing; the writer sets the results before `done`.
  struct QueuedCreate {
    QueuedCreate(const PrincipalInfo& who, std::span<const NewRecord> in,
                 std::vector<std::vector<std::string>>& grantees,
                 Subjects::Prepared& subjects, bool name_positions,
                 bool& written)
        : caller(who),
          records(in),
          grants(grantees),
          prepared(subjects),
          name_position(name_positions),
          committed(written) {}
    const PrincipalInfo& caller;
    std::span<const NewRecord> records;
    std::vector<std::vector<std::string>>& grants;
    Subjects::Prepared& prepared;
    const bool name_position;
    bool& committed;  // The records were written, or may have been.
    bool done = false;
    Status status;
    std::vector<uint64_t> ids;
    Store::Ticket ticket;
    std::condition_variable wake;
  };
  // Writes `group` (the head of the queue) in one write.
  void WriteCreates(const std::vector<QueuedCreate*>& group);
  // Adds `q`'s records to `batch` with the ids from `first` on, their
  // events to `events`, new field names to `cataloged`; the ids.
  Result<std::vector<uint64_t>> StageCreates(
      const WriteLock& lock, QueuedCreate& q, uint64_t first, Timestamp now,
      leveldb::WriteBatch& batch, std::vector<Event>& events,
      std::vector<std::pair<std::string, std::string>>& cataloged,
      std::map<std::string, std::string>& unapplied_subjects);
  // The key of a subject whose data is being changed: FailedPrecondition
  // once it was shredded.
  Result<SharedKey> LiveKey(std::string_view subject_id) const;
  // The personal bytes `r` holds as Limits::max_personal_bytes counts them
  // (field names and values) over its parts, flag notes ("note" and the
  // note) and contests ("statement", the statement, the corrected fields),
  // leaving out the part of `replaced_subject` (being rectified; empty for
  // none). Each value is opened to be counted exactly, and its plaintext
  // never leaves this function; a shredded subject's value, unreadable,
  // counts its sealed size. DataLoss if a value fails to open.
  Result<size_t> PersonalBytes(const codec::StoredRecord& r,
                               std::string_view replaced_subject) const;
  // OK if `added` more personal bytes fit in `r` beside those it holds
  // (PersonalBytes with `replaced_subject`); ResourceExhausted otherwise.
  // The one accounting Rectify, Flag and Contest use.
  Status CheckRoom(const codec::StoredRecord& r, size_t added,
                   std::string_view replaced_subject) const;
  // Writes the resolved record (after the change) with the transitions
  // found in force and its event `action` by `caller`.
  Status CommitChange(WriteLock lock, const PrincipalInfo& caller,
                      RecordViews::Resolved& resolved, EventAction action,
                      std::string_view what);

  // The field-name catalog of the register of processing activities
  // ("fk:", storage/register_builder.h): adds to `batch` the entry of each
  // name of `fields` for `kind` not yet known to be stored, and appends the
  // pair to `added`; Cataloged remembers them once the batch is applied, so
  // a name costs a write once per Open, not per record.
  void CatalogFieldNames(
      const WriteLock& lock, leveldb::WriteBatch& batch,
      const std::string& kind, const std::vector<Field>& fields,
      std::vector<std::pair<std::string, std::string>>& added) const;
  void Cataloged(const WriteLock& lock,
                 std::vector<std::pair<std::string, std::string>>& added);

  Units u_;
  // (kind, field name) pairs stored in "fk:". Guarded by the write lock.
  std::set<std::pair<std::string, std::string>> cataloged_;
  // Creates waiting to be written, in arrival order; the head's caller
  // writes. Guarded by create_mu_, as QueuedCreate::done is; a caller's
  // results are written by the head before it sets done, and read by the
  // caller after.
  std::mutex create_mu_;
  std::deque<QueuedCreate*> create_queue_;
  std::function<void()> before_group_;  // Tests only.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_RECORDS_H_
