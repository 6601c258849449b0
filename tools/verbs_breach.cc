// custos breach scope: what a principal (a stolen credential, say)
// received in a time window, per person, and whom to notify
// (docs/accountability.md, "Breach scope").

#include <array>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "report/breach_scope.h"
#include "storage/breach_scope.h"
#include "tools/cli.h"

namespace custos::cli {
namespace {

std::vector<std::string> Texts(capnp::List<capnp::Text>::Reader list) {
  std::vector<std::string> out;
  for (auto t : list) out.push_back(Str(t));
  return out;
}

std::optional<PurposeKind> PurposeFromName(std::string_view name) {
  for (PurposeKind kind :
       {PurposeKind::kProofOfExchange, PurposeKind::kSubjectConsent,
        PurposeKind::kPublicInterest, PurposeKind::kLegalObligation}) {
    if (PurposeKindName(kind) == name) return kind;
  }
  return std::nullopt;
}

BreachScope FromRpc(rpc::BreachScope::Reader r) {
  BreachScope scope;
  scope.generated_at = FromMicros(r.getGeneratedAtMicros());
  scope.auditor_id = Str(r.getAuditorId());
  scope.principal_ids = Texts(r.getPrincipalIds());
  scope.from = FromMicros(r.getFromMicros());
  scope.to = FromMicros(r.getToMicros());
  scope.purpose = Str(r.getPurpose());
  scope.disclosures = r.getDisclosures();
  scope.without_identity = r.getWithoutIdentity();
  if (r.getUnindexedUntilMicros() != 0) {
    scope.unindexed_until = FromMicros(r.getUnindexedUntilMicros());
  }
  for (auto s : r.getSubjects()) {
    BreachSubject subject;
    subject.subject_id = Str(s.getSubjectId());
    subject.identifier = Str(s.getIdentifier());
    for (uint64_t id : s.getRecordIds()) subject.record_ids.push_back(id);
    subject.fields = Texts(s.getFields());
    for (auto d : s.getDisclosures()) {
      BreachDisclosure disclosure;
      disclosure.seq = d.getSeq();
      disclosure.at = FromMicros(d.getAtMicros());
      disclosure.principal_id = Str(d.getPrincipalId());
      disclosure.principal_name = Str(d.getPrincipalName());
      disclosure.action = Str(d.getAction());
      disclosure.record_id = d.getRecordId();
      disclosure.record_kind = Str(d.getRecordKind());
      disclosure.purpose = PurposeFromName(Str(d.getPurpose()));
      disclosure.justification = Str(d.getJustification());
      disclosure.fields = Texts(d.getFields());
      subject.disclosures.push_back(std::move(disclosure));
    }
    scope.subjects.push_back(std::move(subject));
  }
  return scope;
}

// docs/accountability.md, "Breach scope", gives the members.
nlohmann::json ScopeJson(const BreachScope& scope) {
  nlohmann::json subjects = nlohmann::json::array();
  for (const BreachSubject& s : scope.subjects) {
    nlohmann::json disclosures = nlohmann::json::array();
    for (const BreachDisclosure& d : s.disclosures) {
      disclosures.push_back(
          {{"seq", d.seq},
           {"at", TimeJson(ToMicros(d.at))},
           {"principal_id", d.principal_id},
           {"principal_name", d.principal_name},
           {"action", d.action},
           {"record_id", d.record_id == 0 ? nlohmann::json(nullptr)
                                          : nlohmann::json(d.record_id)},
           {"record_kind", d.record_kind},
           {"purpose",
            d.purpose ? nlohmann::json(std::string(PurposeKindName(*d.purpose)))
                      : nlohmann::json(nullptr)},
           {"justification", d.justification},
           {"fields", d.fields}});
    }
    subjects.push_back({{"subject_id", s.subject_id},
                        {"identifier", s.identifier},
                        {"records", s.record_ids},
                        {"fields", s.fields},
                        {"disclosures", disclosures}});
  }
  return {{"format", "custos-breach-scope"},
          {"version", 1},
          {"generated_at", TimeJson(ToMicros(scope.generated_at))},
          {"auditor", scope.auditor_id},
          {"principals", scope.principal_ids},
          {"from", TimeJson(ToMicros(scope.from))},
          {"to", TimeJson(ToMicros(scope.to))},
          {"purpose", scope.purpose},
          {"disclosures", scope.disclosures},
          {"without_identity", scope.without_identity},
          {"unindexed_until", scope.unindexed_until
                                  ? TimeJson(ToMicros(*scope.unindexed_until))
                                  : nlohmann::json(nullptr)},
          {"subjects", subjects}};
}

void PrintSummary(const BreachScope& scope) {
  // The ids as the server sent them: none is possible from a peer that is
  // not custosd, and front() of none is undefined (helper-129).
  std::cout << "breach scope of";
  for (size_t i = 0; i < scope.principal_ids.size(); ++i) {
    std::cout << (i == 0 ? " " : ", ") << Printable(scope.principal_ids[i]);
  }
  std::cout << " from " << FormatTime(ToMicros(scope.from)) << " to "
            << FormatTime(ToMicros(scope.to)) << ": " << scope.subjects.size()
            << " people to notify, " << scope.disclosures << " disclosures, "
            << scope.without_identity
            << " to people erased since (nobody to name)\n";
  if (scope.unindexed_until) {
    std::cout << "warning: disclosures at or before "
              << FormatTime(ToMicros(*scope.unindexed_until))
              << " were written before this store indexed them and may be "
                 "missing\n";
  }
}

}  // namespace

void AddBreachVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  auto* breach = app.add_subcommand(
      "breach", "a personal-data breach: whom it reached (auditors)");
  breach->require_subcommand(1);
  struct Args {
    std::vector<std::string> principals;
    std::string from, to, purpose, csv, html;
    Output out;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = breach->add_subcommand(
      "scope",
      "every disclosure the principals received in a window, per person, "
      "and the people to notify with their identifiers (GDPR Art. 33, 34); "
      "a recorded act of the auditor, with its purpose. The CSV and HTML "
      "files hold personal data: they are created with mode 0600\n"
      "example: custos breach scope --principal authority-b --from "
      "2027-03-01T00:00:00Z --to 2027-03-15T00:00:00+01:00 --purpose "
      "\"token of authority-b stolen, incident 2027-04\" --csv notify.csv "
      "--html scope.html");
  cmd->add_option("--principal", a->principals,
                  "a principal whose disclosures to scope (repeat for "
                  "several, at most 16)")
      ->required();
  cmd->add_option("--from", a->from,
                  "start of the window (inclusive; ISO 8601 with zone)")
      ->required();
  cmd->add_option("--to", a->to,
                  "end of the window (exclusive; ISO 8601 with zone)")
      ->required();
  cmd->add_option("--purpose", a->purpose,
                  "why (recorded in clear with the act: name the breach, "
                  "not a person)")
      ->required();
  cmd->add_option("--csv", a->csv,
                  "also write one row per disclosure per person to this new "
                  "file (mode 0600)");
  cmd->add_option("--html", a->html,
                  "also write a readable summary page to this new file "
                  "(mode 0600)");
  AddJsonFlag(*cmd, a->out);
  verbs.push_back(
      {cmd, [a](Connection& c) {
         const int64_t from = ParseTime(a->from, "--from");
         const int64_t to = ParseTime(a->to, "--to");
         if (to <= from) throw UsageError("--to must be after --from");
         if (a->principals.size() > kMaxBreachPrincipals)
           throw UsageError("--principal: at most 16");
         ReservedFile csv_file(a->csv);
         ReservedFile html_file(a->html);
         BreachScope scope;
         Remote([&] {
           auto req = c.Auditor().breachScopeRequest();
           auto ids = req.initPrincipalIds(a->principals.size());
           for (size_t i = 0; i < a->principals.size(); ++i)
             ids.set(i, a->principals[i]);
           req.setFromMicros(from);
           req.setToMicros(to);
           req.setPurpose(a->purpose);
           scope = FromRpc(req.send().wait(c.wait()).getScope());
         });
         // The scope was recorded: write what was asked for.
         if (!a->csv.empty()) {
           // Fill ends it with "\n": the last line keeps its CRLF.
           std::string csv = RenderBreachScopeCsv(scope);
           csv.pop_back();
           csv_file.Fill(csv);
         }
         if (!a->html.empty()) {
           std::string html = RenderBreachScopeHtml(scope);
           if (html.ends_with('\n')) html.pop_back();
           html_file.Fill(html);
         }
         if (a->out.json) return PrintJson(ScopeJson(scope));
         PrintSummary(scope);
         Table t({"IDENTIFIER", "SUBJECT", "RECORDS", "FIELDS", "DISCLOSURES"});
         for (const BreachSubject& s : scope.subjects) {
           std::string records, fields;
           for (uint64_t id : s.record_ids) {
             if (!records.empty()) records += ',';
             records += std::to_string(id);
           }
           for (const std::string& f : s.fields) {
             if (!fields.empty()) fields += ',';
             fields += f;
           }
           t.Add({s.identifier, s.subject_id, records, fields,
                  std::to_string(s.disclosures.size())});
         }
         t.Print();
         if (!a->csv.empty()) std::cout << "csv in " << a->csv << "\n";
         if (!a->html.empty()) std::cout << "html in " << a->html << "\n";
       }});
}

}  // namespace custos::cli
