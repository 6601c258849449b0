// The visibility rules of DESIGN section 2, as one pure function.
//
// This is internal to storage/: the engine calls it for every read and
// before every change, so a single table decides who sees what.

#ifndef CUSTOS_STORAGE_ACCESS_H_
#define CUSTOS_STORAGE_ACCESS_H_

#include "base/status.h"
#include "storage/types.h"

namespace custos {

enum class View {
  kNone,        // The record does not exist for this caller.
  kAttributes,  // Non-personal attributes, state and timestamps.
  kFull,        // Attributes and personal data.
};

struct AccessRequest {
  const PrincipalInfo& caller;
  bool is_owner = false;
  bool is_grantee = false;
  RecordState state = RecordState::kActive;
  bool purpose_given = false;  // A valid Purpose accompanies the call.
};

// The view the caller gets of a record. Rules, combined by taking the
// widest, then capped:
//   owner / grantee:  ACTIVE full, CLOSED attributes, BLOCKED/ERASED none.
//   officer + purpose: ACTIVE as the grants allow, CLOSED and BLOCKED full,
//                      ERASED attributes (with the erasure time).
//   admin:            attributes in every state.
//   caps: a redacted principal, and any admin, never gets personal data
//         ("admin never reads personal data").
// Auditors and strangers get nothing beyond their grants. A revoked
// principal gets nothing.
View ViewFor(const AccessRequest& request);

// The same caps, for the paths that disclose personal data without a
// record view (a subject's access history, the subject report):
// PermissionDenied for any admin (whatever its other roles; refused at
// creation since 2026-12-02, but a store may hold one from before) and for a
// redacted principal; Ok otherwise.
Status CheckMayReadPersonalData(const PrincipalInfo& caller);

}  // namespace custos

#endif  // CUSTOS_STORAGE_ACCESS_H_
