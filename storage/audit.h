// Internal to storage/: the auditor's reading of the access history
// (DESIGN section 5): one subject's events in a time window, page by page,
// and the verification of the whole chain; and the lookup of a subject by
// their identifier, which the subject's history records. A page of the
// history is an event (access_history); the subject report, which is one
// too, is SubjectReportBuilder's.
//
// Thread safety: thread-safe; reads from one LevelDB snapshot each, and
// writes the events of lookups and history pages under the write lock.

#ifndef CUSTOS_STORAGE_AUDIT_H_
#define CUSTOS_STORAGE_AUDIT_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/limits.h"
#include "storage/policies.h"
#include "storage/store.h"
#include "storage/subjects.h"
#include "storage/types.h"

namespace custos {

class Audit {
 public:
  struct Units {
    Store& store;  // Its write lock and SyncApplied: VerifyChain.
    const Subjects& subjects;
    const Policies& policies;  // The stored ones: VerifyChain.
    const Limits& limits;
    const Clock& clock;
  };
  explicit Audit(Units units) : u_(units) {}

  // Engine::AccessHistory, the caller's role already checked. A page
  // that holds any event of the subject's other than earlier history reads
  // is a disclosure to `auditor`: an access_history event, written before
  // it is returned (none for an empty page, one of history reads only, or a
  // subject shredded before the call: nothing of theirs can be opened).
  // InvalidArgument for a limit of 0 or above Limits::max_page_size;
  // NotFound for an unknown subject, or one shredded while the page was
  // read.
  // Engine::FindSubject, the caller's role and the identifier's length
  // already checked: the subject id of `identifier`, the lookup written
  // down first as a find_subject event in the subject's history (the
  // caller learnt that the person is a data subject of the store). NotFound
  // (no event) for an identifier of no subject, or of one shredded before
  // the event was written.
  Result<std::string> FindSubject(const PrincipalInfo& caller,
                                  std::string_view identifier) const;

  // Engine::AccessHistory. `check` looks at the page before its event is
  // written (BeforeDisclosure).
  Result<AccessHistoryPage> History(
      const PrincipalInfo& auditor, std::string_view subject_id, Timestamp from,
      Timestamp to, uint64_t after_seq, uint32_t limit,
      const BeforeDisclosure<AccessHistoryPage>& check = {}) const;

  // Engine::VerifyChain. Under the write lock, every applied write is made
  // durable (Store::SyncApplied: a sync only when one is pending, as after
  // a shred, whose records side is never waited for) before the snapshot
  // the chain is read from: the head it reports is one a power loss cannot
  // take back (Recover would write a lost shred event again with another
  // link: a head recorded out of band would then look tampered with).
  // `through` are heads recorded earlier (problem "anchor" when the chain
  // no longer passes through one). Once the chain verified, the stored
  // policies (read under the same lock as the snapshot) are compared with
  // the last policy_set event of their kind, or, for a kind without one,
  // with the shipped default (DefaultPolicies()), or with none: problem
  // "policy", naming the kinds (a genuine older value put back, a policy
  // deleted, one failing its MAC). Errors: InvalidArgument for `through`
  // beyond CheckRecordedHeads (before any sync); that sync's failure, or
  // the store's earlier one; mapped LevelDB errors.
  Result<ChainVerification> VerifyChain(
      const WorkProgressFn& progress,
      const std::vector<RecordedHead>& through) const;

  // The head as it stands once every applied write is durable (the same
  // sync as VerifyChain's, under the write lock): what custosd logs for
  // an operator to keep out of band. Errors: as VerifyChain's sync.
  Result<RecordedHead> DurableHead() const;

 private:
  Units u_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_AUDIT_H_
