#include "storage/types.h"

#include <algorithm>

namespace custos {

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kUser:
      return "user";
    case Role::kOfficer:
      return "officer";
    case Role::kAuditor:
      return "auditor";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::string_view SweepPhaseName(SweepPhase phase) {
  switch (phase) {
    case SweepPhase::kTransitions:
      return "transitions";
    case SweepPhase::kDestroyingKeys:
      return "destroying_keys";
    case SweepPhase::kPruningHistory:
      return "pruning_history";
    case SweepPhase::kCompacting:
      return "compacting";
  }
  return "unknown";
}

std::string_view RecordStateName(RecordState state) {
  switch (state) {
    case RecordState::kActive:
      return "ACTIVE";
    case RecordState::kClosed:
      return "CLOSED";
    case RecordState::kBlocked:
      return "BLOCKED";
    case RecordState::kErased:
      return "ERASED";
  }
  return "UNKNOWN";
}

std::string_view PurposeKindName(PurposeKind kind) {
  switch (kind) {
    case PurposeKind::kProofOfExchange:
      return "proof_of_exchange";
    case PurposeKind::kSubjectConsent:
      return "subject_consent";
    case PurposeKind::kPublicInterest:
      return "public_interest";
    case PurposeKind::kLegalObligation:
      return "legal_obligation";
  }
  return "unknown";
}

std::string_view PolicyDifferenceFromName(PolicyDifference::From from) {
  switch (from) {
    case PolicyDifference::kNoPolicy:
      return "none";
    case PolicyDifference::kShippedDefault:
      return "default";
    case PolicyDifference::kEvent:
      return "event";
  }
  return "unknown";
}

std::string_view PolicyDifferenceStoredName(PolicyDifference::Stored stored) {
  switch (stored) {
    case PolicyDifference::kNone:
      return "none";
    case PolicyDifference::kUnauthenticated:
      return "unauthenticated";
    case PolicyDifference::kStored:
      return "policy";
  }
  return "unknown";
}

bool PrincipalInfo::HasRole(Role role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

}  // namespace custos
