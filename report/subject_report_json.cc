#include "report/subject_report_json.h"

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "report/internal.h"
#include "report/json_writer.h"
#include "storage/types.h"

namespace custos {
namespace {

using report_internal::JsonWriter;
using report_internal::Rfc3339;

void WriteFields(JsonWriter& w, std::string_view key,
                 const std::vector<Field>& fields) {
  w.Key(key);
  w.BeginArray();
  for (const Field& f : fields) {
    w.BeginObject();
    w.Member("name", f.name);
    w.Member("value", f.value);
    w.EndObject();
  }
  w.EndArray();
}

void WriteHold(JsonWriter& w, const HoldView& h) {
  w.BeginObject();
  w.Member("id", h.id);
  w.Key("record_id");
  if (h.record_id.has_value()) {
    w.Number(*h.record_id);
  } else {
    w.Null();
  }
  w.Key("subject_id");
  if (h.subject_id.has_value()) {
    w.String(*h.subject_id);
  } else {
    w.Null();
  }
  w.Member("reason", h.reason);
  w.Member("set_by", h.set_by);
  w.TimeMember("set_at", h.set_at);
  w.TimeMember("ends_at", h.ends_at);
  w.TimeMember("released_at", h.released_at);
  w.Member("released_by", h.released_by);
  w.EndObject();
}

void WriteHolds(JsonWriter& w, std::string_view key,
                const std::vector<HoldView>& holds) {
  w.Key(key);
  w.BeginArray();
  for (const HoldView& h : holds) WriteHold(w, h);
  w.EndArray();
}

void WriteRecord(JsonWriter& w, const SubjectReport::Record& r) {
  w.BeginObject();
  w.Member("id", r.id);
  w.Member("kind", r.kind);
  w.Member("state", RecordStateName(r.state));
  w.Member("owner", r.owner);
  w.StringArrayMember("recipients", r.recipients);
  w.TimeMember("created_at", r.created_at);
  w.TimeMember("closed_at", r.closed_at);
  w.TimeMember("blocked_at", r.blocked_at);
  w.TimeMember("erased_at", r.erased_at);
  w.TimeMember("next_deadline", r.next_deadline);
  w.Member("next_transition", r.next_transition);
  WriteFields(w, "personal", r.personal);
  w.Key("flags");
  w.BeginArray();
  for (const FlagView& f : r.flags) {
    w.BeginObject();
    w.Member("by", f.by);
    w.TimeMember("at", f.at);
    w.Member("subject_id", f.subject_id);
    w.Member("note", f.note);
    w.EndObject();
  }
  w.EndArray();
  w.Key("contests");
  w.BeginArray();
  for (const ContestView& c : r.contests) {
    w.BeginObject();
    w.Member("by", c.by);
    w.TimeMember("at", c.at);
    w.Member("subject_id", c.subject_id);
    w.Member("statement", c.statement);
    WriteFields(w, "corrected", c.corrected);
    w.EndObject();
  }
  w.EndArray();
  WriteHolds(w, "holds", r.holds);
  w.EndObject();
}

void WriteAccess(JsonWriter& w, const SubjectReport::Access& a) {
  w.BeginObject();
  w.TimeMember("at", a.at);
  w.Member("principal_id", a.principal_id);
  w.Member("principal_name", a.principal_name);
  w.Member("action", a.action);
  w.Member("record_id", a.record_id);
  w.Member("record_kind", a.record_kind);
  w.Member("record_state", a.record_state);
  w.Member("purpose", a.purpose);
  w.Member("justification", a.justification);
  w.StringArrayMember("fields", a.fields);
  w.EndObject();
}

}  // namespace

std::string RenderSubjectReportJson(const SubjectReport& report) {
  JsonWriter w;
  w.BeginObject();
  w.Member("format", kSubjectReportFormat);
  w.Member("version", static_cast<uint64_t>(kSubjectReportVersion));
  w.TimeMember("generated_at", report.generated_at);
  w.Member("subject_id", report.subject_id);
  w.Member("subject_identifier", report.subject_identifier);
  w.Key("principals");
  w.BeginArray();
  for (const auto& p : report.principals) {
    w.BeginObject();
    w.Member("id", p.id);
    w.Member("name", p.name);
    w.EndObject();
  }
  w.EndArray();
  w.Key("records");
  w.BeginArray();
  for (const auto& r : report.records) WriteRecord(w, r);
  w.EndArray();
  WriteHolds(w, "subject_holds", report.subject_holds);
  w.Key("history");
  w.BeginArray();
  for (const auto& a : report.history) WriteAccess(w, a);
  w.EndArray();
  w.EndObject();
  return w.Finish();
}

}  // namespace custos
