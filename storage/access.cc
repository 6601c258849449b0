#include "storage/access.h"

#include <algorithm>

namespace custos {

View ViewFor(const AccessRequest& r) {
  const PrincipalInfo& who = r.caller;
  if (who.revoked) return View::kNone;
  View view = View::kNone;

  if (r.is_owner || r.is_grantee) {
    switch (r.state) {
      case RecordState::kActive:
        view = View::kFull;
        break;
      case RecordState::kClosed:
        view = View::kAttributes;
        break;
      case RecordState::kBlocked:
      case RecordState::kErased:
        break;
    }
  }
  if (who.HasRole(Role::kOfficer) && r.purpose_given) {
    switch (r.state) {
      case RecordState::kActive:  // As its grants allow: nothing added.
        break;
      case RecordState::kClosed:
      case RecordState::kBlocked:
        view = View::kFull;
        break;
      case RecordState::kErased:
        view = std::max(view, View::kAttributes);
        break;
    }
  }
  if (who.HasRole(Role::kAdmin)) view = std::max(view, View::kAttributes);

  // The redacted row of the matrix: attributes while ACTIVE or CLOSED,
  // nothing once BLOCKED. The cap applies whatever the grants.
  if (who.redacted || who.HasRole(Role::kAdmin)) {
    view = std::min(view, View::kAttributes);
  }
  return view;
}

Status CheckMayReadPersonalData(const PrincipalInfo& caller) {
  if (caller.HasRole(Role::kAdmin)) {
    return Status::PermissionDenied(
        "an admin never reads personal data, whatever its other roles");
  }
  if (caller.redacted) {
    return Status::PermissionDenied(
        "a redacted principal never reads personal data");
  }
  return Status::Ok();
}

}  // namespace custos
