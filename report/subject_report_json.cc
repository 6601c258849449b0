#include "report/subject_report_json.h"

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "report/internal.h"
#include "storage/types.h"

namespace custos {
namespace {

using report_internal::ForEachCodePoint;
using report_internal::Rfc3339;

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  ForEachCodePoint(s, [&out](char32_t cp, std::string_view bytes) {
    switch (cp) {
      case '"':
        out += "\\\"";
        return;
      case '\\':
        out += "\\\\";
        return;
      case '\b':
        out += "\\b";
        return;
      case '\f':
        out += "\\f";
        return;
      case '\n':
        out += "\\n";
        return;
      case '\r':
        out += "\\r";
        return;
      case '\t':
        out += "\\t";
        return;
      // Valid JSON, but line terminators in JavaScript source: escaped so
      // the document can be pasted into a script safely.
      case 0x2028:
        out += "\\u2028";
        return;
      case 0x2029:
        out += "\\u2029";
        return;
      default:
        break;
    }
    if (cp < 0x20) {
      out += "\\u00";
      out += kHex[cp >> 4];
      out += kHex[cp & 0xF];
      return;
    }
    out += bytes;
  });
  out += '"';
}

// A streaming writer producing the layout of JavaScript's
// JSON.stringify(value, null, 2): one member or element per line, two spaces
// per level, "[]" and "{}" for empty containers.
class JsonWriter {
 public:
  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }

  // Starts a member of the current object; the next call writes its value.
  void Key(std::string_view key) {
    NewElement();
    AppendJsonString(out_, key);
    out_ += ": ";
    after_key_ = true;
  }

  void String(std::string_view s) {
    BeforeValue();
    AppendJsonString(out_, s);
  }
  void Number(uint64_t n) {
    BeforeValue();
    out_ += std::to_string(n);
  }
  void Null() {
    BeforeValue();
    out_ += "null";
  }
  void Time(Timestamp t) { String(Rfc3339(t)); }
  void OptionalTime(const std::optional<Timestamp>& t) {
    if (t.has_value()) {
      Time(*t);
    } else {
      Null();
    }
  }

  // Convenience for "key": value members.
  void Member(std::string_view key, std::string_view value) {
    Key(key);
    String(value);
  }
  void Member(std::string_view key, uint64_t value) {
    Key(key);
    Number(value);
  }
  void TimeMember(std::string_view key, Timestamp t) {
    Key(key);
    Time(t);
  }
  void TimeMember(std::string_view key, const std::optional<Timestamp>& t) {
    Key(key);
    OptionalTime(t);
  }
  void StringArrayMember(std::string_view key,
                         const std::vector<std::string>& values) {
    Key(key);
    BeginArray();
    for (const std::string& v : values) String(v);
    EndArray();
  }

  std::string Finish() {
    out_ += '\n';
    return std::move(out_);
  }

 private:
  struct Level {
    size_t count = 0;
  };

  void Indent() {
    out_ += '\n';
    out_.append(2 * levels_.size(), ' ');
  }
  void NewElement() {
    if (levels_.empty()) return;
    if (levels_.back().count++ > 0) out_ += ',';
    Indent();
  }
  void BeforeValue() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    NewElement();
  }
  void Open(char bracket) {
    BeforeValue();
    out_ += bracket;
    levels_.push_back(Level{});
  }
  void Close(char bracket) {
    const bool empty = levels_.back().count == 0;
    levels_.pop_back();
    if (!empty) Indent();
    out_ += bracket;
  }

  std::string out_;
  std::vector<Level> levels_;
  bool after_key_ = false;
};

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
