// Internal to storage/: the access-history events of engine acts
// (docs/history.md, "Which call writes which event"), built in one place,
// and their public form.
//
// Thread safety: pure functions.

#ifndef CUSTOS_STORAGE_EVENTS_H_
#define CUSTOS_STORAGE_EVENTS_H_

#include <optional>
#include <string>
#include <vector>

#include "storage/breach_scope.h"
#include "storage/codec.h"
#include "storage/history.h"
#include "storage/retention_policy.h"
#include "storage/subject_report.h"
#include "storage/types.h"

namespace custos::events {

// `who` did `action` on record `r` (in its state after the change) at `at`,
// concerning every subject of the record.
Event RecordEvent(const PrincipalInfo& who, EventAction action,
                  const codec::StoredRecord& r, Timestamp at);

// The transitions a change found in force on `r` (RecordStore::CatchUp),
// written with the change: each at its due instant, by the retention policy
// (principal "custos:retention", an id no principal can have).
// The principal retention acts as when no one asked: transitions found in
// force by a change, and the server's scheduled maintenance. Its id,
// "custos:retention", is one no principal can have (':' is not allowed).
const PrincipalInfo& RetentionPrincipal();

std::vector<Event> TransitionEvents(
    const codec::StoredRecord& r, const std::vector<PlannedTransition>& steps);

// `who` did `action` concerning one subject, about no record.
Event SubjectEvent(const PrincipalInfo& who, EventAction action,
                   const std::string& subject_id, Timestamp at);

// What a subject report disclosed, as the names of a disclosure's fields
// (the report event's, sealed in the subject's part; what a breach scope
// lists): "identifier", the name of every field of the subject's data
// held, "flag:note" and "contest:statement" and "contest:<field>" as a
// read names them, and "access_history" when the report held any event.
// Sorted, each once.
std::vector<std::string> ReportFields(const SubjectReport& report);

// `who` created (kPrincipalCreated) or revoked (kPrincipalRevoked)
// principal `target`: an event about no subject and no record, whose fields
// (in clear) are "principal:<id>", then for a creation "role:<name>" per
// role and "redacted" if it is. Never the credential.
Event PrincipalEvent(const PrincipalInfo& who, EventAction action,
                     const PrincipalInfo& target, Timestamp at);

// `who` set `policy` (kPolicySet): an event about no subject and no record,
// whose fields (in clear) are "kind:<kind>", then "close_after:<period>"
// and "block_after:<period>" when present, "erase_after:<period>" and
// "history_after:<period>" (ISO 8601, Period::ToString).
Event PolicyEvent(const PrincipalInfo& who, const RetentionPolicy& policy,
                  Timestamp at);

// Those fields of `policy`'s event, alone (Audit::VerifyChain compares the
// stored policies with them).
std::vector<std::string> PolicyFields(const RetentionPolicy& policy);

// A policy_set event's fields after its "kind:" one, joined with ", "
// ("erase_after:P6M, history_after:P5Y"): how the periods are shown.
std::string PolicyPeriodsText(const std::vector<std::string>& fields);

// The policy a policy_set event's fields name: "kind:" and the periods,
// read back with ParsePeriod, in any order; fields it does not know are
// ignored. DataLoss when the kind, erase_after or history_after is
// missing, a period does not parse, or a field comes twice.
Result<RetentionPolicy> PolicyFromFields(
    const std::vector<std::string>& fields);

// The disclosure of `view` (which included personal data) to `who`: a read,
// or a read_restricted when the record was not ACTIVE, naming every field,
// flag note and contest content shown.
Event ReadEvent(const PrincipalInfo& who, const RecordView& view,
                const std::optional<Purpose>& purpose, Timestamp at);

// The events of `scope`, produced by `who` at `at`
// (docs/accountability.md): a breach_scope event per subject in it (their
// identifier was disclosed: field "identifier"), then one about no subject
// for the act, whose fields (in clear) are "principal:<id>" per principal
// scoped, "from:<µs>", "to:<µs>" and "subjects:<n>". Each has the purpose
// {legal_obligation, scope.purpose}.
std::vector<Event> BreachScopeEvents(const PrincipalInfo& who,
                                     const BreachScope& scope, Timestamp at);

// The names of `fields`, never their values.
std::vector<std::string> FieldNames(const std::vector<Field>& fields);

// An event as an auditor sees it.
AccessEvent ToAccessEvent(const HistoryEntry& entry);

}  // namespace custos::events

#endif  // CUSTOS_STORAGE_EVENTS_H_
