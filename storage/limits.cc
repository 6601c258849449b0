#include "storage/limits.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>

namespace custos {
namespace {

bool IsKindChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool IsIdChar(char c) { return IsKindChar(c) || c == '.'; }

// "<prefix> <max> <noun>", e.g. "a record may hold at most 64 attributes".
Status TooMany(std::string_view prefix, size_t max, std::string_view noun) {
  return Status::InvalidArgument(std::string(prefix) + " " +
                                 std::to_string(max) + " " + std::string(noun));
}

// Count, key and value lengths of a list of attributes; `too_many` says
// what holds them ("a record may hold at most").
Status CheckAttributeCount(size_t count, const Limits& limits,
                           std::string_view too_many) {
  if (count > limits.max_attributes) {
    return TooMany(too_many, limits.max_attributes, "attributes");
  }
  return Status::Ok();
}

constexpr std::string_view kRecordAttributes = "a record may hold at most";
constexpr std::string_view kListFilters = "a listing may filter on at most";

Status CheckAttributes(const std::vector<Attribute>& attributes,
                       const Limits& limits, std::string_view too_many) {
  CUSTOS_RETURN_IF_ERROR(
      CheckAttributeCount(attributes.size(), limits, too_many));
  // An attribute is named by its position (from 0), never by its key: a
  // caller's text is not echoed, whatever it holds.
  for (size_t i = 0; i < attributes.size(); ++i) {
    const Attribute& a = attributes[i];
    CUSTOS_RETURN_IF_ERROR(CheckLength(a.key, "an attribute key",
                                       limits.max_attribute_key_length, false));
    CUSTOS_RETURN_IF_ERROR(
        CheckLength(a.value, "the value of attribute " + std::to_string(i),
                    limits.max_attribute_value_length, true));
  }
  return Status::Ok();
}

}  // namespace

Status CheckKind(std::string_view kind) {
  if (kind.empty()) return Status::InvalidArgument("a kind is empty");
  if (kind.size() > kMaxKindLength) {
    return Status::InvalidArgument("a kind is longer than " +
                                   std::to_string(kMaxKindLength) +
                                   " characters");
  }
  for (size_t i = 0; i < kind.size(); ++i) {
    if (!IsKindChar(kind[i])) {
      // The character itself is not echoed: a kind may arrive from a client
      // as arbitrary bytes, and the position is enough to find it.
      return Status::InvalidArgument(
          "a kind may contain only [a-z0-9_-]; character at position " +
          std::to_string(i) + " is not allowed");
    }
  }
  return Status::Ok();
}

Status CheckId(std::string_view id, std::string_view what, size_t max) {
  if (id.empty() || id.size() > max) {
    return Status::InvalidArgument(std::string(what) + " must be 1 to " +
                                   std::to_string(max) + " characters");
  }
  if (!std::all_of(id.begin(), id.end(), IsIdChar)) {
    return Status::InvalidArgument(std::string(what) +
                                   " may hold only a-z, 0-9, '-', '_', '.'");
  }
  return Status::Ok();
}

Status CheckLength(std::string_view value, std::string_view what, size_t max,
                   bool allow_empty) {
  if ((!allow_empty && value.empty()) || value.size() > max) {
    return Status::InvalidArgument(std::string(what) + " must be " +
                                   (allow_empty ? "at most " : "1 to ") +
                                   std::to_string(max) + " bytes");
  }
  return Status::Ok();
}

Status CheckFieldCount(size_t fields, const Limits& limits) {
  if (fields > limits.max_fields_per_part) {
    return TooMany("a personal part may hold at most",
                   limits.max_fields_per_part, "fields");
  }
  return Status::Ok();
}

Status CheckListFilterCount(size_t attributes, const Limits& limits) {
  return CheckAttributeCount(attributes, limits, kListFilters);
}

Status CheckNewRecordCounts(size_t attributes, size_t parts, size_t most_fields,
                            size_t grants, const Limits& limits) {
  CUSTOS_RETURN_IF_ERROR(
      CheckAttributeCount(attributes, limits, kRecordAttributes));
  if (parts > limits.max_subjects_per_record) {
    return TooMany("a record may concern at most",
                   limits.max_subjects_per_record, "subjects");
  }
  CUSTOS_RETURN_IF_ERROR(CheckFieldCount(most_fields, limits));
  if (grants > limits.max_grants) {
    return TooMany("a record may have at most", limits.max_grants, "grants");
  }
  return Status::Ok();
}

Status CheckFields(const std::vector<Field>& fields, const Limits& limits,
                   size_t* total_bytes) {
  CUSTOS_RETURN_IF_ERROR(CheckFieldCount(fields.size(), limits));
  // A field is named by its position in its part (from 0), never by its
  // name: a caller's text is not echoed, whatever it holds.
  std::map<std::string_view, size_t> names;
  for (size_t i = 0; i < fields.size(); ++i) {
    const Field& f = fields[i];
    CUSTOS_RETURN_IF_ERROR(CheckLength(f.name, "a field name",
                                       limits.max_field_name_length, false));
    CUSTOS_RETURN_IF_ERROR(
        CheckLength(f.value, "the value of field " + std::to_string(i),
                    limits.max_field_value_length, true));
    auto [first, added] = names.emplace(f.name, i);
    if (!added) {
      return Status::InvalidArgument("fields " + std::to_string(first->second) +
                                     " and " + std::to_string(i) +
                                     " of a personal part have the same name");
    }
    *total_bytes += f.name.size() + f.value.size();
  }
  return Status::Ok();
}

Status CheckPurpose(const std::optional<Purpose>& purpose,
                    const Limits& limits) {
  if (!purpose) return Status::Ok();
  return CheckLength(purpose->justification, "a purpose's justification",
                     limits.max_justification_length, false);
}

Status CheckListQuery(const ListQuery& q, const Limits& limits) {
  if (q.limit == 0 || q.limit > limits.max_page_size) {
    return Status::InvalidArgument(
        std::string("limit must be 1 to ")
            .append(std::to_string(limits.max_page_size)));
  }
  CUSTOS_RETURN_IF_ERROR(CheckPurpose(q.purpose, limits));
  // A kind no record can have (8 MiB of it, capitals) is refused, not
  // compared with every record scanned.
  if (q.kind) CUSTOS_RETURN_IF_ERROR(CheckKind(*q.kind));
  return CheckAttributes(q.attribute_equals, limits, kListFilters);
}

Status CheckBatchSize(size_t items, const Limits& limits) {
  if (items == 0 || items > limits.max_batch_records) {
    return Status::InvalidArgument(
        std::string("a batch must hold 1 to ")
            .append(std::to_string(limits.max_batch_records))
            .append(" items"));
  }
  return Status::Ok();
}

Status CheckRecordedHeadCount(size_t count) {
  if (count > kMaxRecordedHeads) {
    return Status::InvalidArgument("at most " +
                                   std::to_string(kMaxRecordedHeads) +
                                   " recorded heads per verification");
  }
  return Status::Ok();
}

Status CheckRecordedHeadLink(size_t index, std::string_view hex) {
  const bool digits =
      hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) != 0;
      });
  if (!digits) {
    return Status::InvalidArgument("recorded head " +
                                   std::to_string(index + 1) +
                                   ": its link must be 64 hex digits");
  }
  return Status::Ok();
}

Status CheckRecordedHeads(const std::vector<RecordedHead>& heads) {
  CUSTOS_RETURN_IF_ERROR(CheckRecordedHeadCount(heads.size()));
  for (size_t i = 0; i < heads.size(); ++i) {
    CUSTOS_RETURN_IF_ERROR(CheckRecordedHeadLink(i, heads[i].link_hex));
    if (heads[i].seq == 0 &&
        heads[i].link_hex.find_first_not_of('0') != std::string::npos) {
      return Status::InvalidArgument(
          "recorded head " + std::to_string(i + 1) +
          ": seq 0 is the empty history, whose link is 64 zeros");
    }
  }
  return Status::Ok();
}

Status CheckBreachQuery(const BreachQuery& q, const Limits& limits) {
  if (q.principal_ids.empty() ||
      q.principal_ids.size() > kMaxBreachPrincipals) {
    return Status::InvalidArgument(
        std::string("a breach scope names 1 to ")
            .append(std::to_string(kMaxBreachPrincipals))
            .append(" principals"));
  }
  std::set<std::string_view> seen;
  for (const std::string& id : q.principal_ids) {
    CUSTOS_RETURN_IF_ERROR(CheckId(id, "a principal id", limits.max_id_length));
    if (!seen.insert(id).second) {
      return Status::InvalidArgument("a breach scope names a principal twice");
    }
  }
  if (q.from >= q.to) {
    return Status::InvalidArgument(
        "a breach scope's window must end after it "
        "starts");
  }
  // from < to, so the difference fits in a u64 (and not always in an i64).
  const uint64_t window = static_cast<uint64_t>(ToMicros(q.to)) -
                          static_cast<uint64_t>(ToMicros(q.from));
  if (window > static_cast<uint64_t>(
                   std::chrono::microseconds(kMaxBreachWindow).count())) {
    return Status::InvalidArgument(
        std::string("a breach scope's window is at most ")
            .append(std::to_string(kMaxBreachWindow.count()))
            .append(" days; split it"));
  }
  return CheckLength(q.purpose, "a breach scope's purpose",
                     limits.max_justification_length, false);
}

Status ValidateNewRecord(const NewRecord& in, const Limits& limits) {
  CUSTOS_RETURN_IF_ERROR(CheckKind(in.kind));
  CUSTOS_RETURN_IF_ERROR(
      CheckAttributes(in.attributes, limits, kRecordAttributes));
  size_t most_fields = 0;
  for (const PersonalPartInput& part : in.personal)
    most_fields = std::max(most_fields, part.fields.size());
  // Counts first, as on network input (CheckNewRecordCounts).
  CUSTOS_RETURN_IF_ERROR(CheckNewRecordCounts(in.attributes.size(),
                                              in.personal.size(), most_fields,
                                              in.grants.size(), limits));
  size_t personal_bytes = 0;
  for (const PersonalPartInput& part : in.personal) {
    CUSTOS_RETURN_IF_ERROR(CheckLength(part.subject_identifier,
                                       "a subject identifier",
                                       limits.max_identifier_length, false));
    CUSTOS_RETURN_IF_ERROR(CheckFields(part.fields, limits, &personal_bytes));
  }
  for (size_t i = 0; i < in.personal.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (in.personal[i].subject_identifier ==
          in.personal[j].subject_identifier) {
        return Status::InvalidArgument(
            "two personal parts name the same subject");
      }
    }
  }
  if (personal_bytes > limits.max_personal_bytes) {
    return TooMany("a record's personal data may total at most",
                   limits.max_personal_bytes, "bytes");
  }
  return Status::Ok();
}

}  // namespace custos
