// The JSON writer shared by report/'s renderings, private to report/,
// with JSON.stringify(value, null, 2)'s layout. It takes untrusted text and
// always writes valid UTF-8 (invalid bytes become U+FFFD). HTML escaping is
// report/internal.h's AppendHtml.

#ifndef CUSTOS_REPORT_JSON_WRITER_H_
#define CUSTOS_REPORT_JSON_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "report/internal.h"

namespace custos::report_internal {

inline void AppendJsonString(std::string& out, std::string_view s) {
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
  void Bool(bool b) {
    BeforeValue();
    out_ += b ? "true" : "false";
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

}  // namespace custos::report_internal

#endif  // CUSTOS_REPORT_JSON_WRITER_H_
