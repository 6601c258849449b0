// custos record create|get: store and read a record as the logged-in
// principal (the README's tour; host applications use the RPC API); custos
// due-soon: the reminders of the records it owns (Session.dueSoon).

#include <iostream>
#include <memory>

#include "tools/cli.h"

namespace custos::cli {
namespace {

nlohmann::json RecordJson(rpc::Record::Reader r) {
  nlohmann::json attributes = nlohmann::json::object();
  for (auto a : r.getAttributes())
    attributes[Str(a.getKey())] = Str(a.getValue());
  nlohmann::json parts = nlohmann::json::array();
  for (auto p : r.getParts()) {
    nlohmann::json fields = nlohmann::json::object();
    for (auto f : p.getFields()) fields[Str(f.getName())] = Str(f.getValue());
    parts.push_back({{"subject_id", Str(p.getSubjectId())},
                     {"subject_identifier", Str(p.getSubjectIdentifier())},
                     {"version", p.getVersion()},
                     {"fields", fields}});
  }
  nlohmann::json grants = nlohmann::json::array();
  for (auto g : r.getGrants()) grants.push_back(Str(g));
  return {{"id", r.getId()},
          {"kind", Str(r.getKind())},
          {"owner", Str(r.getOwner())},
          {"state", StateName(r.getState())},
          {"grants", grants},
          {"attributes", attributes},
          {"created_at", TimeJson(r.getCreatedAtMicros())},
          {"updated_at", TimeJson(r.getUpdatedAtMicros())},
          {"closed_at", TimeJson(r.getClosedAtMicros())},
          {"blocked_at", TimeJson(r.getBlockedAtMicros())},
          {"erased_at", TimeJson(r.getErasedAtMicros())},
          {"personal_included", r.getPersonalIncluded()},
          {"parts", parts}};
}

std::string ReasonName(rpc::ReminderReason reason) {
  switch (reason) {
    case rpc::ReminderReason::CLOSE_DUE:
      return "closeDue";
    case rpc::ReminderReason::BLOCK_DUE:
      return "blockDue";
    case rpc::ReminderReason::ERASE_DUE:
      return "eraseDue";
    case rpc::ReminderReason::OPEN_TOO_LONG:
      return "openTooLong";
  }
  return "unknown";
}

nlohmann::json ReminderJson(rpc::Reminder::Reader r) {
  nlohmann::json attributes = nlohmann::json::object();
  for (auto a : r.getAttributes())
    attributes[Str(a.getKey())] = Str(a.getValue());
  return {{"record_id", r.getRecordId()},
          {"kind", Str(r.getKind())},
          {"state", StateName(r.getState())},
          {"reason", ReasonName(r.getReason())},
          {"due_at", TimeJson(r.getDueAtMicros())},
          {"created_at", TimeJson(r.getCreatedAtMicros())},
          {"attributes", attributes},
          {"delivered_at", TimeJson(r.getDeliveredAtMicros())}};
}

}  // namespace

void AddRecordVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  auto* record = app.add_subcommand("record", "create and read records");
  record->require_subcommand(1);
  {
    struct Args {
      std::string kind;
      std::vector<std::string> attributes, fields, grants;
      bool sensitive = false;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = record->add_subcommand(
        "create",
        "create a record with one subject's personal data; the subject's "
        "identifier and then each --field's value, a line each, are read "
        "from standard input (never from the command line, where the "
        "process list shows them)\n"
        "example: printf 'anna@example.org\\nAnna Example\\n' | custos "
        "record create --kind request --attr country=AT --field name "
        "--grant authority-b");
    cmd->add_option("--kind", a->kind, "record kind")->required();
    cmd->add_option("--attr", a->attributes,
                    "attribute key=value (not "
                    "personal data)");
    cmd->add_option("--field", a->fields,
                    "personal field name; its value is the next line of "
                    "stdin, after the subject's identifier");
    cmd->add_option("--grant", a->grants, "principal that may read it");
    cmd->add_flag("--sensitive", a->sensitive,
                  "personal data only shown with a stated purpose");
    verbs.push_back(
        {cmd, [a](Connection& c) {
           std::vector<std::pair<std::string, std::string>> attrs, fields;
           for (const auto& t : a->attributes)
             attrs.push_back(KeyValue(t, "--attr"));
           for (const auto& name : a->fields) {
             if (name.empty() || name.find('=') != std::string::npos) {
               throw UsageError(
                   "--field takes a field name; its value is "
                   "read from standard input, never from the "
                   "command line");
             }
             fields.emplace_back(name, "");
           }
           std::string subject;
           if (!fields.empty()) {
             ReadInputLine(subject);
             if (subject.empty())
               throw UsageError(
                   "--field needs the subject's identifier on "
                   "standard input");
             for (auto& [name, value] : fields) {
               if (!ReadInputLine(value)) {
                 throw UsageError("--field " + name +
                                  ": no value on standard input (a line "
                                  "each, after the identifier)");
               }
             }
             // More values than names: personal data the user meant to
             // store would be dropped. Only what has arrived is looked at:
             // a writer that keeps its end open is not waited for.
             if (MoreInputWaiting()) {
               throw UsageError(
                   "standard input holds more lines than --field names "
                   "(a line each, after the identifier): nothing was "
                   "stored; name each field with --field");
             }
           }
           Remote([&] {
             auto req = c.session().createRequest();
             auto r = req.initRecord();
             r.setKind(a->kind);
             r.setSensitive(a->sensitive);
             auto al = r.initAttributes(attrs.size());
             for (size_t i = 0; i < attrs.size(); ++i) {
               al[i].setKey(attrs[i].first);
               al[i].setValue(attrs[i].second);
             }
             if (!subject.empty()) {
               auto part = r.initPersonal(1)[0];
               part.setSubjectIdentifier(subject);
               auto fl = part.initFields(fields.size());
               for (size_t i = 0; i < fields.size(); ++i) {
                 fl[i].setName(fields[i].first);
                 fl[i].setValue(fields[i].second);
               }
             }
             auto gl = r.initGrants(a->grants.size());
             for (size_t i = 0; i < a->grants.size(); ++i)
               gl.set(i, a->grants[i]);
             std::cout << req.send().wait(c.wait()).getId() << "\n";
           });
         }});
  }
  {
    struct Args {
      std::string warn_before, open_too_long;
      Output out;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "due-soon",
        "the reminders of the records you own: a closure, blocking or "
        "erasure due within the warning time, a record open too long "
        "(no personal data; docs/accountability.md, \"Reminders\")\n"
        "example: custos due-soon --warn-before P14D --json");
    cmd->add_option("--warn-before", a->warn_before,
                    "ISO 8601 period (default: the server's, P7D unless "
                    "configured; at most P1Y)");
    cmd->add_option("--open-too-long", a->open_too_long,
                    "ISO 8601 period (default: the server's, P30D unless "
                    "configured; at most P10Y)");
    AddJsonFlag(*cmd, a->out);
    verbs.push_back(
        {cmd, [a](Connection& c) {
           // Malformed periods are usage errors (exit 2), found
           // before the server is reached; their bounds are
           // the server's to check.
           if (!a->warn_before.empty())
             ParsePeriodFlag(a->warn_before, "--warn-before");
           if (!a->open_too_long.empty())
             ParsePeriodFlag(a->open_too_long, "--open-too-long");
           Remote([&] {
             // Every page (the server answers at most 1000 a call).
             nlohmann::json list = nlohmann::json::array();
             Table table({"RECORD", "KIND", "STATE", "REASON", "DUE", "CREATED",
                          "DELIVERED"});
             uint64_t after = 0;
             uint64_t skipped = 0;
             do {
               auto req = c.session().dueSoonRequest();
               req.setWarnBefore(a->warn_before);
               req.setOpenTooLong(a->open_too_long);
               req.setAfterRecordId(after);
               auto response = req.send().wait(c.wait());
               for (auto r : response.getReminders()) {
                 if (a->out.json) {
                   list.push_back(ReminderJson(r));
                 } else {
                   table.Add({std::to_string(r.getRecordId()), Str(r.getKind()),
                              StateName(r.getState()),
                              ReasonName(r.getReason()),
                              FormatTime(r.getDueAtMicros()),
                              FormatTime(r.getCreatedAtMicros()),
                              FormatTime(r.getDeliveredAtMicros())});
                 }
               }
               skipped += response.getSkipped();
               after = NextPage(after, response.getNextAfterRecordId());
             } while (after != 0);
             if (a->out.json) {
               return PrintJson({{"reminders", list}, {"skipped", skipped}});
             }
             table.Print();
             if (skipped > 0) {
               std::cout << skipped
                         << " records left out: unreadable, or "
                            "their next deadline needs a "
                            "retention policy that failed to "
                            "authenticate\n";
             }
           });
         }});
  }
  {
    struct Args {
      uint64_t id = 0;
      std::string purpose_kind, justification;
      Output out;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = record->add_subcommand(
        "get",
        "show a record as you may see it (a read of personal data is "
        "recorded in the subject's access history)\n"
        "example: custos record get 1 --json");
    cmd->add_option("id", a->id, "record id")->required()->check(Decimal());
    cmd->add_option("--purpose", a->purpose_kind,
                    "proof-of-exchange, subject-consent or public-interest "
                    "(for sensitive or blocked records)");
    cmd->add_option("--justification", a->justification,
                    "why, for the history (with --purpose)");
    AddJsonFlag(*cmd, a->out);
    verbs.push_back(
        {cmd, [a](Connection& c) {
           // Usage errors before the server is reached (exit 2).
           std::optional<rpc::PurposeKind> kind;
           if (a->purpose_kind == "proof-of-exchange")
             kind = rpc::PurposeKind::PROOF_OF_EXCHANGE;
           else if (a->purpose_kind == "subject-consent")
             kind = rpc::PurposeKind::SUBJECT_CONSENT;
           else if (a->purpose_kind == "public-interest")
             kind = rpc::PurposeKind::PUBLIC_INTEREST;
           else if (!a->purpose_kind.empty())
             throw UsageError(
                 "--purpose: proof-of-exchange, subject-consent or "
                 "public-interest");
           if (!kind && !a->justification.empty())
             throw UsageError("--justification goes with --purpose");
           Remote([&] {
             auto req = c.session().getRequest();
             req.setId(a->id);
             if (kind) {
               auto p = req.initPurpose();
               p.setKind(*kind);
               p.setJustification(a->justification);
             }
             auto response = req.send().wait(c.wait());
             auto r = response.getRecord();
             if (a->out.json) return PrintJson(RecordJson(r));
             // What users stored is made Printable.
             std::cout << "record " << r.getId() << "  kind "
                       << Printable(Str(r.getKind())) << "  owner "
                       << Printable(Str(r.getOwner())) << "  state "
                       << StateName(r.getState()) << "\n";
             // When it moved through its states (an officer's view of an
             // erased record is its attributes and these).
             std::cout << "  created " << FormatTime(r.getCreatedAtMicros());
             const std::pair<const char*, int64_t> moments[] = {
                 {"closed", r.getClosedAtMicros()},
                 {"blocked", r.getBlockedAtMicros()},
                 {"erased", r.getErasedAtMicros()}};
             for (const auto& [name, micros] : moments) {
               if (micros != 0)
                 std::cout << "  " << name << " " << FormatTime(micros);
             }
             std::cout << "\n";
             for (auto at : r.getAttributes())
               std::cout << "  " << Printable(Str(at.getKey())) << " = "
                         << Printable(Str(at.getValue())) << "\n";
             for (auto p : r.getParts()) {
               std::cout << "  subject "
                         << Printable(Str(p.getSubjectIdentifier())) << "\n";
               for (auto f : p.getFields())
                 std::cout << "    " << Printable(Str(f.getName())) << " = "
                           << Printable(Str(f.getValue())) << "\n";
             }
             if (!r.getPersonalIncluded())
               std::cout << "  (no personal data shown)\n";
           });
         }});
  }
}

}  // namespace custos::cli
