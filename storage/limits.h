// Limits on what callers may store, and every check of caller input against
// them. Public: the server checks network input with the same functions the
// engine uses, and the checks need no engine, so they can be fuzzed alone.
//
// Every check returns OK or InvalidArgument naming the limit and the
// offending item by position or name, never echoing the value (a value may
// be personal data or arbitrary bytes from a client).
//
// The rule for the code (docs/storage.md, "Limits"): input that breaks a
// limit on what one call may carry is InvalidArgument; a change that would
// push what a record or subject accumulates (personal bytes, flags,
// contests, grants, holds) past its limit is ResourceExhausted. Neither is
// ever DataLoss: a record too large to read back is never written.
//
// Thread safety: values and pure functions; safe from any thread.

#ifndef CUSTOS_STORAGE_LIMITS_H_
#define CUSTOS_STORAGE_LIMITS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "storage/breach_scope.h"
#include "storage/types.h"

namespace custos {

// The most access-history events one sweep's pruning may be asked to
// examine (SweepOptions::max_history_examined; custosd's --history-examined
// and Admin.sweep's maxHistoryExamined): a sweep of 30 s to 5 minutes at
// 3 to 30 µs an event (bench/RESULTS.md, "History pruning in chunks").
inline constexpr size_t kMaxHistoryExamined = 10'000'000;

// Record kinds and policy kinds: 1 to kMaxKindLength characters from
// [a-z0-9_-]. One rule for both, so every kind a record can have can have a
// policy.
inline constexpr size_t kMaxKindLength = 64;

// The largest encoded record the engine writes (RecordStore::Put refuses a
// larger one with ResourceExhausted): a quarter of what the decoder reads
// (capnp_value::kMaxValueBytes), so every record written reads back.
inline constexpr size_t kMaxStoredRecordBytes = 16 * 1024 * 1024;

// The largest Limits::max_personal_bytes Engine::Open accepts: with every
// other limit at its default, a record then stays far below
// kMaxStoredRecordBytes.
inline constexpr size_t kMaxPersonalBytesLimit = 4 * 1024 * 1024;

// The most data keys Engine::RotateKek rewraps in one synchronous write
// (KekRotationOptions::batch_size): one batch is one LevelDB write batch,
// held in memory whole (about 100 bytes a key).
inline constexpr size_t kMaxKekBatchSize = 10000;

// The largest budget Engine::CompleteShreds takes: it holds the write lock
// (no create, read with its event or close runs) while it rewrites that
// many records, gathering their ids first. (A subject whose records are
// all rewritten is then unlinked from its history under the same hold, in
// steps of 1,000 events the budget does not count.)
inline constexpr size_t kMaxShredBudget = 100000;

// The most recorded heads one VerifyChain checks the chain against: each is
// a comparison made as the walk passes it, and the list is sorted once.
inline constexpr size_t kMaxRecordedHeads = 1000;

// The most retention policy kinds a store holds: Engine::SetPolicy refuses
// a kind beyond them with ResourceExhausted (a kind already set can always
// be set again). Each is kept in memory, answered whole by ListPolicies,
// compared by a chain verification and logged by custosd at its start.
inline constexpr size_t kMaxPolicyKinds = 1000;

// Defaults are documented in docs/storage.md ("Limits").
struct Limits {
  size_t max_id_length = 64;  // Principal ids.
  size_t max_display_name_length = 256;
  size_t max_identifier_length = 256;  // External subject identifiers.
  size_t max_attributes = 64;
  size_t max_attribute_key_length = 64;
  size_t max_attribute_value_length = 1024;
  size_t max_subjects_per_record = 16;
  size_t max_fields_per_part = 64;
  size_t max_field_name_length = 64;
  size_t max_field_value_length = 64 * 1024;
  // Field names and values over a record's parts, flag notes ("note" and
  // the note) and contests ("statement", the statement and the corrected
  // fields). REQUIRES: at most kMaxPersonalBytesLimit.
  size_t max_personal_bytes = 256 * 1024;
  size_t max_grants = 64;
  size_t max_flags_per_record = 64;
  size_t max_contests_per_record = 64;
  size_t max_holds_per_record = 16;   // In force at once, on the record.
  size_t max_holds_per_subject = 16;  // In force at once, on the subject.
  // Set over the record's (the subject's) life, ended and released ones
  // included: each is read when a due erasure's instant is computed.
  size_t max_holds_ever_per_record = 64;
  size_t max_holds_ever_per_subject = 64;
  size_t max_note_length = 4096;  // Flag notes, contest statements, reasons.
  size_t max_justification_length = 1024;
  uint32_t max_page_size = 1000;
  size_t max_list_scan = 10000;  // Records examined per ListRecords call
                                 // (and per DueSoon call).
  // Reminders per DueSoon answer (and per Watcher.remind call). A reminder
  // carries its record's attributes (up to about 70 KiB): custosd also
  // cuts a page to the records whose reminders fit its message limit.
  // REQUIRES: at least 2 (a record has at most two reminders).
  size_t max_reminders_per_call = 1000;
  // Records per CreateRecords call and ids per GetRecords call: one batch
  // is one write (and one fsync), so its size bounds the write lock's hold
  // and the answer's size. REQUIRES: at least 1.
  size_t max_batch_records = 100;
  // Disclosure events one breach scope may gather (all its principals
  // together); beyond, ResourceExhausted: split the window. It bounds the
  // work and the answer of one call. REQUIRES: at least 1.
  size_t max_breach_disclosures = 100000;
};

// A record or policy kind (see kMaxKindLength).
Status CheckKind(std::string_view kind);

// A principal id: 1 to `max` characters from [a-z0-9._-]; `what` names it
// in the message ("a principal id").
Status CheckId(std::string_view id, std::string_view what, size_t max);

// 1 (or 0 when allow_empty) to `max` bytes.
Status CheckLength(std::string_view value, std::string_view what, size_t max,
                   bool allow_empty);

// The fields of one personal part: count, name and value lengths, no name
// twice. Adds the part's bytes (names and values) to *total_bytes.
Status CheckFields(const std::vector<Field>& fields, const Limits& limits,
                   size_t* total_bytes);

// A purpose, when given, has a justification within the limit.
Status CheckPurpose(const std::optional<Purpose>& purpose,
                    const Limits& limits);

// A listing's query: `limit` within 1..max_page_size, the purpose, the kind
// filter (CheckKind), and the attribute filters (at most max_attributes, keys
// and values within the attribute limits), so the work per record examined is
// bounded.
Status CheckListQuery(const ListQuery& query, const Limits& limits);

// Counts of the lists one call carries, checked on network input before
// the lists are copied (server/service.cc), with the messages the full
// checks give: a record's attributes, personal parts, the fields of its
// largest part and its grants; a listing's attribute filters; the fields
// of one part (a rectification, a contest's corrections).
Status CheckNewRecordCounts(size_t attributes, size_t parts, size_t most_fields,
                            size_t grants, const Limits& limits);
Status CheckListFilterCount(size_t attributes, const Limits& limits);
Status CheckFieldCount(size_t fields, const Limits& limits);

// The size of a batch call (CreateRecords, GetRecords): 1 to
// max_batch_records items.
Status CheckBatchSize(size_t items, const Limits& limits);

// Heads to verify the chain through: at most kMaxRecordedHeads, each link
// exactly 64 hex digits, and at seq 0 (the empty history) only its link,
// 64 zeros. The count alone: for a list not yet copied.
Status CheckRecordedHeadCount(size_t count);
// The link of the `index`-th head (from 0): exactly 64 hex digits.
Status CheckRecordedHeadLink(size_t index, std::string_view link_hex);
Status CheckRecordedHeads(const std::vector<RecordedHead>& heads);

// A breach scope's query: 1 to kMaxBreachPrincipals principal ids (each a
// valid id within max_id_length, none twice), from < to, a window of at
// most kMaxBreachWindow, and a purpose of 1 to max_justification_length
// bytes.
Status CheckBreachQuery(const BreachQuery& query, const Limits& limits);

// Everything about a new record that can be checked without the store:
// kind, attributes, parts (count, identifiers, fields, no subject twice,
// total personal bytes) and the number of grants. Whether the grantees
// exist and a policy governs the kind is for the engine to check.
Status ValidateNewRecord(const NewRecord& record, const Limits& limits);

}  // namespace custos

#endif  // CUSTOS_STORAGE_LIMITS_H_
