// Limits on what callers may store, and every check of caller input against
// them. Public: the server checks network input with the same functions the
// engine uses, and the checks need no engine, so they can be fuzzed alone.
//
// Every check returns OK or InvalidArgument naming the limit and the
// offending item by position or name, never echoing the value (a value may
// be personal data or arbitrary bytes from a client).
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
#include "storage/types.h"

namespace custos {

// Record kinds and policy kinds: 1 to kMaxKindLength characters from
// [a-z0-9_-]. One rule for both, so every kind a record can have can have a
// policy.
inline constexpr size_t kMaxKindLength = 64;

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
  size_t max_personal_bytes = 256 * 1024;  // Sum over a record's fields.
  size_t max_grants = 64;
  size_t max_note_length = 4096;  // Flag notes, contest statements, reasons.
  size_t max_justification_length = 1024;
  uint32_t max_page_size = 1000;
  size_t max_list_scan = 10000;  // Records examined per ListRecords call.
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

// Everything about a new record that can be checked without the store:
// kind, attributes, parts (count, identifiers, fields, no subject twice,
// total personal bytes) and the number of grants. Whether the grantees
// exist and a policy governs the kind is for the engine to check.
Status ValidateNewRecord(const NewRecord& record, const Limits& limits);

}  // namespace custos

#endif  // CUSTOS_STORAGE_LIMITS_H_
