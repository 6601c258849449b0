#include "report/breach_scope.h"

#include <string_view>
#include <vector>

#include "report/internal.h"
#include "storage/types.h"

namespace custos {
namespace {

using report_internal::AppendHtml;
using report_internal::ForEachCodePoint;
using report_internal::Rfc3339;

std::string Joined(const std::vector<std::string>& items,
                   std::string_view separator) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

std::string PurposeName(const BreachDisclosure& d) {
  return d.purpose ? std::string(PurposeKindName(*d.purpose)) : std::string();
}

// ---- CSV --------------------------------------------------------------------

void AppendCsvCell(std::string& out, std::string_view cell) {
  std::string text;
  ForEachCodePoint(
      cell, [&text](char32_t, std::string_view bytes) { text += bytes; });
  // A spreadsheet runs a cell starting with these as a formula (CSV
  // injection): an identifier or a justification must stay text.
  if (!text.empty() && (text[0] == '=' || text[0] == '+' || text[0] == '-' ||
                        text[0] == '@' || text[0] == '\t' || text[0] == '\r')) {
    text.insert(text.begin(), '\'');
  }
  if (text.find_first_of(",\"\r\n") == std::string::npos) {
    out += text;
    return;
  }
  out += '"';
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

void AppendCsvRow(std::string& out, const std::vector<std::string>& cells) {
  for (size_t i = 0; i < cells.size(); ++i) {
    if (i > 0) out += ',';
    AppendCsvCell(out, cells[i]);
  }
  out += "\r\n";
}

// ---- HTML -------------------------------------------------------------------

std::string Esc(std::string_view s) {
  std::string out;
  AppendHtml(out, s);
  return out;
}

constexpr std::string_view kStyle = R"css(
body { margin: 2rem; color: #1f2328; background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial,
    sans-serif; }
h1 { font-size: 1.6rem; margin: 0 0 .5rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1.5rem 0 .25rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; vertical-align: top; padding: .3rem .5rem;
  border-bottom: 1px solid #d0d7de; }
th { background: #f6f8fa; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
.warn { background: #fff8c5; border: 1px solid #d4a72c; padding: .5rem 1rem; }
code { font-family: ui-monospace, monospace; }
)css";

}  // namespace

std::string RenderBreachScopeCsv(const BreachScope& scope) {
  std::string out;
  AppendCsvRow(out, {"subject_id", "identifier", "at", "principal_id",
                     "principal_name", "action", "record_id", "record_kind",
                     "purpose", "justification", "fields"});
  for (const BreachSubject& s : scope.subjects) {
    for (const BreachDisclosure& d : s.disclosures) {
      AppendCsvRow(out, {s.subject_id, s.identifier, Rfc3339(d.at),
                         d.principal_id, d.principal_name, d.action,
                         d.record_id == 0 ? "" : std::to_string(d.record_id),
                         d.record_kind, PurposeName(d), d.justification,
                         Joined(d.fields, ";")});
    }
  }
  return out;
}

std::string RenderBreachScopeHtml(const BreachScope& scope) {
  std::string out =
      "<!DOCTYPE html>\n"
      "<html lang=\"en\">\n"
      "<head>\n"
      "<meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
      "'none'; style-src 'unsafe-inline'\">\n"
      "<meta name=\"referrer\" content=\"no-referrer\">\n"
      "<title>Breach scope</title>\n<style>";
  out += kStyle;
  out += "</style>\n</head>\n<body>\n<h1>Breach scope</h1>\n<dl>\n";
  auto item = [&out](std::string_view term, const std::string& escaped) {
    out += "<dt>";
    out += term;
    out += "</dt><dd>";
    out += escaped;
    out += "</dd>\n";
  };
  std::vector<std::string> principals;
  for (const std::string& p : scope.principal_ids) principals.push_back(Esc(p));
  item("Principals", std::string("<code>") +
                         Joined(principals, "</code>, <code>") + "</code>");
  item("Window", Esc(Rfc3339(scope.from)) + " (inclusive) to " +
                     Esc(Rfc3339(scope.to)) + " (exclusive)");
  item("Purpose", Esc(scope.purpose));
  item("Produced", Esc(Rfc3339(scope.generated_at)) + " by <code>" +
                       Esc(scope.auditor_id) + "</code>");
  item("People to notify", std::to_string(scope.subjects.size()));
  item("Disclosures in the window", std::to_string(scope.disclosures));
  item("Disclosures to people since erased",
       std::to_string(scope.without_identity) +
           " (their identity was destroyed with their key; nobody to name)");
  out += "</dl>\n";
  if (scope.unindexed_until) {
    out += "<p class=\"warn\">This store indexed disclosures only from ";
    out += Esc(Rfc3339(*scope.unindexed_until));
    out +=
        " on: disclosures at or before that instant may be missing from this "
        "scope (see docs/accountability.md).</p>\n";
  }

  out +=
      "<h2>People to notify</h2>\n<table>\n<tr><th>Identifier</th>"
      "<th>Subject id</th><th>Records</th><th>Data disclosed</th>"
      "<th>Disclosures</th></tr>\n";
  for (const BreachSubject& s : scope.subjects) {
    std::vector<std::string> records;
    for (uint64_t id : s.record_ids) records.push_back(std::to_string(id));
    out += std::string("<tr><td>") + Esc(s.identifier) + "</td><td><code>" +
           Esc(s.subject_id) + "</code></td><td>" + Joined(records, ", ") +
           "</td><td>" + Esc(Joined(s.fields, ", ")) + "</td><td>" +
           std::to_string(s.disclosures.size()) + "</td></tr>\n";
  }
  out += "</table>\n";

  out += "<h2>Disclosures per person</h2>\n";
  for (const BreachSubject& s : scope.subjects) {
    out += std::string("<h3>") + Esc(s.identifier) + " <code>" +
           Esc(s.subject_id) +
           "</code></h3>\n<table>\n<tr><th>When</th><th>To</th><th>Action</th>"
           "<th>Record</th><th>Why</th><th>Data</th></tr>\n";
    for (const BreachDisclosure& d : s.disclosures) {
      std::string record =
          d.record_id == 0
              ? std::string("&mdash;")
              : std::to_string(d.record_id) + " (" + Esc(d.record_kind) + ")";
      std::string why = Esc(PurposeName(d));
      if (!d.justification.empty()) {
        if (!why.empty()) why += ": ";
        why += Esc(d.justification);
      }
      out += std::string("<tr><td>") + Esc(Rfc3339(d.at)) + "</td><td><code>" +
             Esc(d.principal_id) + "</code> " + Esc(d.principal_name) +
             "</td><td>" + Esc(d.action) + "</td><td>" + record + "</td><td>" +
             why + "</td><td>" + Esc(Joined(d.fields, ", ")) + "</td></tr>\n";
    }
    out += "</table>\n";
  }
  out += "</body>\n</html>\n";
  return out;
}

}  // namespace custos
