// BreachScope: what the principals named received in a time window, per
// data subject, and whom to notify (DESIGN section 7a, "breach scope";
// docs/accountability.md).
//
// A BreachScope is a plain value the engine fills when an auditor scopes a
// personal-data breach, e.g. a credential known to be stolen
// (Engine::ProduceBreachScope). Rendering it is not storage's job:
// report/breach_scope.h gives CSV and a readable HTML summary.
//
// Every string in it may come from a host application or a person (kinds,
// field names, principal names, justifications, identifiers) and is kept
// as given: whoever renders it must treat all of them as untrusted.
//
// Thread safety: values; no shared state.

#ifndef CUSTOS_STORAGE_BREACH_SCOPE_H_
#define CUSTOS_STORAGE_BREACH_SCOPE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "storage/types.h"

namespace custos {

// At most this many principals per breach scope.
inline constexpr size_t kMaxBreachPrincipals = 16;
// The longest window of a breach scope: about five years, the default time
// access history is kept after erasure (DESIGN section 3).
inline constexpr std::chrono::days kMaxBreachWindow{1830};

struct BreachQuery {
  // The principals whose disclosures are scoped: 1 to kMaxBreachPrincipals
  // existing principal ids, none twice.
  std::vector<std::string> principal_ids;
  Timestamp from;  // Inclusive.
  Timestamp to;    // Exclusive; from < to, to - from <= kMaxBreachWindow.
  // Why the auditor scopes the breach (required; recorded with the act as
  // a legal_obligation purpose). Stored in clear in the act's event about
  // no subject: it must name the breach, never a person.
  std::string purpose;
};

// One disclosure of the subject's data to a principal in scope.
struct BreachDisclosure {
  uint64_t seq = 0;  // The access-history event.
  Timestamp at;
  std::string principal_id;
  std::string principal_name;  // At the time.
  std::string action;          // "read", "read_restricted", "report", …
  uint64_t record_id = 0;      // 0 for a disclosure about no record.
  std::string record_kind;
  std::optional<RecordState> record_state;  // At the time.
  std::optional<PurposeKind> purpose;
  std::string justification;
  std::vector<std::string> fields;  // Names, never values.
};

// A subject whose data a principal in scope received: one to notify.
struct BreachSubject {
  std::string subject_id;
  // The external identifier the host registered the subject by (an
  // e-mail, a national number…): what the notification is addressed with.
  std::string identifier;
  std::vector<uint64_t> record_ids;  // Ascending, each once.
  std::vector<std::string> fields;   // Every field name disclosed, sorted.
  std::vector<BreachDisclosure> disclosures;  // By (at, seq).
};

struct BreachScope {
  Timestamp generated_at;
  std::string auditor_id;  // Who produced it.
  std::vector<std::string> principal_ids;
  Timestamp from;
  Timestamp to;
  std::string purpose;
  std::vector<BreachSubject> subjects;  // By subject id.
  // Disclosure events in the window, all principals in scope together.
  uint64_t disclosures = 0;
  // Subjects' parts of those events that name nobody any more: the subject
  // was shredded (their identity is gone with their key, by design).
  uint64_t without_identity = 0;
  // Set when the store's disclosure index starts inside or after the
  // window (a store written by a build without it): disclosures at or
  // before this instant may be missing from this scope.
  std::optional<Timestamp> unindexed_until;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_BREACH_SCOPE_H_
