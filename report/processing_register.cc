#include "report/processing_register.h"

#include <string>
#include <string_view>

#include "report/internal.h"
#include "report/json_writer.h"
#include "storage/types.h"

namespace custos {
namespace {

using report_internal::AppendHtml;
using report_internal::JsonWriter;
using report_internal::Rfc3339;

std::string Esc(std::string_view s) {
  std::string out;
  AppendHtml(out, s);
  return out;
}

// "P6M", or "none" for a period the policy does not have.
std::string_view PeriodOrNone(const std::string& period) {
  return period.empty() ? std::string_view("none") : period;
}

std::string Roles(const RegisterKind::Recipient& r) {
  std::string out;
  for (Role role : r.roles) {
    if (!out.empty()) out += ", ";
    out += RoleName(role);
  }
  if (r.redacted) out += out.empty() ? "redacted" : ", redacted";
  return out;
}

}  // namespace

std::string RenderProcessingRegisterJson(const ProcessingRegister& reg) {
  JsonWriter w;
  w.BeginObject();
  w.Member("format", kProcessingRegisterFormat);
  w.Member("version", static_cast<uint64_t>(kProcessingRegisterVersion));
  w.TimeMember("generated_at", reg.generated_at);
  w.Member("unreadable_records", reg.unreadable_records);
  w.Key("kinds");
  w.BeginArray();
  for (const RegisterKind& k : reg.kinds) {
    w.BeginObject();
    w.Member("kind", k.kind);
    w.Key("retention");
    if (k.has_policy) {
      w.BeginObject();
      w.Member("close_after", k.close_after);
      w.Member("block_after", k.block_after);
      w.Member("erase_after", k.erase_after);
      w.Member("history_after", k.history_after);
      w.EndObject();
    } else {
      w.Null();
    }
    w.Key("retention_unauthenticated");
    w.Bool(k.policy_unauthenticated);
    w.StringArrayMember("field_names", k.field_names);
    w.Key("recipients");
    w.BeginArray();
    for (const auto& r : k.recipients) {
      w.BeginObject();
      w.Member("principal", r.principal_id);
      w.Key("roles");
      w.BeginArray();
      for (Role role : r.roles) w.String(RoleName(role));
      w.EndArray();
      w.Key("redacted");
      w.Bool(r.redacted);
      w.Key("owner");
      w.Bool(r.owner);
      w.Key("grantee");
      w.Bool(r.grantee);
      w.Member("records", static_cast<uint64_t>(r.records));
      w.EndObject();
    }
    w.EndArray();
    w.Key("records");
    w.BeginObject();
    w.Member("active", static_cast<uint64_t>(k.active));
    w.Member("closed", static_cast<uint64_t>(k.closed));
    w.Member("blocked", static_cast<uint64_t>(k.blocked));
    w.Member("erased", static_cast<uint64_t>(k.erased));
    w.EndObject();
    w.Member("subjects", static_cast<uint64_t>(k.subjects));
    w.EndObject();
  }
  w.EndArray();
  const RegisterSecurity& s = reg.security;
  w.Key("security");
  w.BeginObject();
  w.Member("encryption", s.encryption);
  w.Member("format_version", static_cast<uint64_t>(s.format_version));
  w.Key("kek_versions");
  w.BeginArray();
  for (uint32_t v : s.kek_versions) w.Number(v);
  w.EndArray();
  w.Member("deadline_bucket_seconds",
           static_cast<uint64_t>(s.deadline_bucket_seconds));
  w.Key("compact_after_erasure");
  w.Bool(s.compact_after_erasure);
  w.Member("erasure_compaction_delay_seconds",
           static_cast<uint64_t>(s.erasure_compaction_delay_seconds));
  w.Member("backup_retention_seconds",
           static_cast<uint64_t>(s.backup_retention_seconds));
  w.EndObject();
  w.EndObject();
  return w.Finish();
}

std::string RenderProcessingRegisterHtml(const ProcessingRegister& reg) {
  std::string out;
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>Register of processing activities</title>\n"
      "<style>body{font-family:sans-serif;margin:2em;max-width:60em}"
      "table{border-collapse:collapse}td,th{border:1px solid #999;"
      "padding:.2em .5em;text-align:left}</style>\n</head>\n<body>\n"
      "<h1>Register of processing activities</h1>\n<p>Generated from the "
      "store at <time datetime=\"";
  out += Rfc3339(reg.generated_at);
  out += "\">";
  out += Rfc3339(reg.generated_at);
  out += "</time>. It holds no personal data.</p>\n";
  if (reg.unreadable_records != 0) {
    out += "<p>Records that could not be read, counted in no kind: " +
           std::to_string(reg.unreadable_records) + ".</p>\n";
  }
  for (const RegisterKind& k : reg.kinds) {
    out += "<h2>Records of kind <code>" + Esc(k.kind) + "</code></h2>\n";
    out += "<table>\n";
    if (k.has_policy) {
      out += "<tr><th>Closed after inactivity</th><td>" +
             Esc(PeriodOrNone(k.close_after)) + "</td></tr>\n";
      out += "<tr><th>Blocked after closure</th><td>" +
             Esc(PeriodOrNone(k.block_after)) + "</td></tr>\n";
      out += "<tr><th>Erased after closure</th><td>" + Esc(k.erase_after) +
             "</td></tr>\n";
      out += "<tr><th>Access history kept after erasure</th><td>" +
             Esc(k.history_after) + "</td></tr>\n";
    } else if (k.policy_unauthenticated) {
      out +=
          "<tr><th>Retention</th><td>the stored policy failed to "
          "authenticate: unknown until an administrator sets it "
          "again</td></tr>\n";
    } else {
      out += "<tr><th>Retention</th><td>no policy</td></tr>\n";
    }
    std::string fields;
    for (const auto& f : k.field_names) {
      if (!fields.empty()) fields += ", ";
      fields += Esc(f);
    }
    out += "<tr><th>Categories of personal data (fields)</th><td>" +
           (fields.empty() ? std::string("none recorded") : fields) +
           "</td></tr>\n";
    out += "<tr><th>Records</th><td>" + std::to_string(k.active) + " active, " +
           std::to_string(k.closed) + " closed, " + std::to_string(k.blocked) +
           " blocked, " + std::to_string(k.erased) + " erased</td></tr>\n";
    out += "<tr><th>Data subjects</th><td>" + std::to_string(k.subjects) +
           "</td></tr>\n</table>\n";
    out +=
        "<h3>Recipients</h3>\n<table>\n<tr><th>Principal</th><th>Roles</th>"
        "<th>Holds</th><th>Records</th></tr>\n";
    for (const auto& r : k.recipients) {
      std::string holds = r.owner ? "owner" : "";
      if (r.grantee) holds += holds.empty() ? "grantee" : ", grantee";
      out += "<tr><td>" + Esc(r.principal_id) + "</td><td>" + Esc(Roles(r)) +
             "</td><td>" + holds + "</td><td>" + std::to_string(r.records) +
             "</td></tr>\n";
    }
    out += "</table>\n";
  }
  const RegisterSecurity& s = reg.security;
  out += "<h2>Security measures</h2>\n<table>\n";
  out += "<tr><th>Encryption</th><td>" + Esc(s.encryption) + "</td></tr>\n";
  std::string keks;
  for (uint32_t v : s.kek_versions) {
    if (!keks.empty()) keks += ", ";
    keks += std::to_string(v);
  }
  out += "<tr><th>Key-encryption key versions</th><td>" + keks + "</td></tr>\n";
  out += "<tr><th>Erasure key granularity</th><td>" +
         std::to_string(s.deadline_bucket_seconds) + " s</td></tr>\n";
  out += "<tr><th>Erased bytes leave the files</th><td>" +
         std::string(s.compact_after_erasure ? "yes" : "no") + ", after " +
         std::to_string(s.erasure_compaction_delay_seconds) + " s</td></tr>\n";
  out += "<tr><th>Backups decryptable for</th><td>" +
         std::to_string(s.backup_retention_seconds) + " s</td></tr>\n";
  out += "<tr><th>Store format</th><td>" + std::to_string(s.format_version) +
         "</td></tr>\n</table>\n</body>\n</html>\n";
  return out;
}

}  // namespace custos
