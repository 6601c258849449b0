// custos subject find|report|history|shred: a data subject's access
// request and erasure request.

#include <fstream>
#include <iostream>
#include <memory>

#include "tools/cli.h"

namespace custos::cli {

void AddSubjectVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  auto* subject = app.add_subcommand(
      "subject", "a data subject: find, report, history, shred");
  subject->require_subcommand(1);
  {
    auto* cmd = subject->add_subcommand(
        "find",
        "print the subject id of an identifier read from standard input "
        "(never from the command line, where the process list shows it)\n"
        "example: echo anna@example.org | custos subject find");
    verbs.push_back({cmd, [](Connection& c) {
                       std::string identifier;
                       std::getline(std::cin, identifier);
                       if (identifier.empty())
                         throw UsageError(
                             "subject find reads the identifier from "
                             "standard input");
                       Remote([&] {
                         auto req = c.Admin().findSubjectRequest();
                         req.setIdentifier(identifier);
                         std::cout
                             << req.send().wait(c.wait()).getSubjectId().cStr()
                             << "\n";
                       });
                     }});
  }
  {
    struct Args {
      std::string id, out;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = subject->add_subcommand(
        "report",
        "the answer to a subject's access request, as JSON: everything held "
        "and everyone who received it (auditors; recorded)\n"
        "example: custos subject report s0123... --out report.json");
    cmd->add_option("id", a->id, "subject id (from subject find)")->required();
    cmd->add_option("--out", a->out, "write to this new file, mode 0600");
    verbs.push_back({cmd, [a](Connection& c) {
                       if (!a->out.empty()) RequireNewFile(a->out);
                       std::string json;
                       Remote([&] {
                         auto req = c.Auditor().subjectReportRequest();
                         req.setSubjectId(a->id);
                         json = req.send().wait(c.wait()).getJson().cStr();
                       });
                       if (a->out.empty()) {
                         std::cout << json << "\n";
                         return;
                       }
                       // It holds personal data: 0600, like a token.
                       WritePrivateFile(a->out, json);
                       std::cout << "report in " << a->out << "\n";
                     }});
  }
  {
    struct Args {
      std::string id, from, to;
      Output out;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = subject->add_subcommand(
        "history",
        "who did what with a subject's data, and when (auditors)\n"
        "example: custos subject history s0123... --from "
        "2027-01-01T00:00:00Z --json");
    cmd->add_option("id", a->id, "subject id")->required();
    cmd->add_option("--from", a->from, "from (inclusive; ISO 8601 with zone)");
    cmd->add_option("--to", a->to, "to (exclusive; ISO 8601 with zone)");
    AddJsonFlag(*cmd, a->out);
    verbs.push_back(
        {cmd, [a](Connection& c) {
           const int64_t from =
               a->from.empty() ? 0 : ParseTime(a->from, "--from");
           const int64_t to = a->to.empty() ? 0 : ParseTime(a->to, "--to");
           nlohmann::json all = nlohmann::json::array();
           Table t({"SEQ", "AT", "PRINCIPAL", "ACTION", "RECORD", "KIND",
                    "FIELDS"});
           Remote([&] {
             auto auditor = c.Auditor();
             uint64_t after = 0;
             do {
               auto req = auditor.accessHistoryRequest();
               req.setSubjectId(a->id);
               req.setFromMicros(from);
               req.setToMicros(to);
               req.setAfterSeq(after);
               req.setLimit(500);
               auto r = req.send().wait(c.wait());
               for (auto e : r.getEvents()) {
                 std::string fields;
                 nlohmann::json field_list = nlohmann::json::array();
                 for (auto f : e.getFields()) {
                   if (!fields.empty()) fields.push_back(',');
                   fields += f.cStr();
                   field_list.push_back(f.cStr());
                 }
                 all.push_back({{"seq", e.getSeq()},
                                {"at", TimeJson(e.getAtMicros())},
                                {"principal_id", e.getPrincipalId().cStr()},
                                {"principal_name", e.getPrincipalName().cStr()},
                                {"action", e.getAction().cStr()},
                                {"record_id", e.getRecordId()},
                                {"record_kind", e.getRecordKind().cStr()},
                                {"fields", field_list}});
                 t.Add({std::to_string(e.getSeq()), FormatTime(e.getAtMicros()),
                        e.getPrincipalId().cStr(), e.getAction().cStr(),
                        std::to_string(e.getRecordId()),
                        e.getRecordKind().cStr(), fields});
               }
               after = r.getNextAfterSeq();
             } while (after != 0);
           });
           if (a->out.json) return PrintJson(all);
           t.Print();
         }});
  }
  {
    auto id = std::make_shared<std::string>();
    auto* cmd = subject->add_subcommand(
        "rekey",
        "give a subject a new data key (when the old one may be "
        "compromised): every part, note and history part is sealed again\n"
        "example: custos subject rekey s0123...");
    cmd->add_option("id", *id, "subject id")->required();
    verbs.push_back({cmd, [id](Connection& c) {
                       Remote([&] {
                         auto req = c.Admin().rekeySubjectRequest();
                         req.setSubjectId(*id);
                         req.send().wait(c.wait());
                       });
                       std::cout << "re-keyed " << *id << "\n";
                     }});
  }
  {
    struct Args {
      std::string id;
      bool yes = false;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = subject->add_subcommand(
        "shred",
        "erase a subject everywhere at once by destroying their key "
        "(irreversible; needs --yes)\n"
        "example: custos subject shred s0123... --yes");
    cmd->add_option("id", a->id, "subject id")->required();
    cmd->add_flag("--yes", a->yes, "confirm: this cannot be undone");
    verbs.push_back({cmd, [a](Connection& c) {
                       if (!a->yes)
                         throw UsageError(
                             "subject shred cannot be undone: add --yes");
                       Remote([&] {
                         auto req = c.Admin().shredSubjectRequest();
                         req.setSubjectId(a->id);
                         req.send().wait(c.wait());
                       });
                       std::cout << "shredded " << a->id << "\n";
                     }});
  }
}

void AddVerifyVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  struct Args {
    bool chain = false, erasure = false;
    Output out;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "verify",
      "check the store's promises: --chain verifies the access history's "
      "hash chain (auditors, admins); --erasure looks for erased data and "
      "destroyed keys in every file (admins); exit 1 if a problem is found\n"
      "example: custos verify --chain --erasure");
  cmd->add_flag("--chain", a->chain, "verify the access-history chain");
  cmd->add_flag("--erasure", a->erasure,
                "look for erased bytes left in the files");
  AddJsonFlag(*cmd, a->out);
  verbs.push_back(
      {cmd, [a](Connection& c) {
         if (!a->chain && !a->erasure)
           throw UsageError(
               "verify: give --chain, --erasure or "
               "both");
         bool ok = true;
         nlohmann::json result = nlohmann::json::object();
         Remote([&] {
           if (a->chain) {
             // The auditor's facet if the principal has the
             // role, else the admin's.
             auto who = c.session().whoAmIRequest().send().wait(c.wait());
             bool auditor = false;
             for (rpc::Role r : who.getPrincipal().getRoles())
               auditor = auditor || r == rpc::Role::AUDITOR;
             auto check = [&](auto response) {
               ok = ok && response.getOk();
               result["chain"] = {
                   {"ok", response.getOk()},
                   {"problem", response.getProblem().cStr()},
                   {"verified", response.getVerified()},
                   {"head_seq", response.getHeadSeq()},
                   {"head_link", response.getHeadLinkHex().cStr()}};
             };
             if (auditor)
               check(c.Auditor().verifyChainRequest().send().wait(c.wait()));
             else
               check(c.Admin().verifyChainRequest().send().wait(c.wait()));
           }
           if (a->erasure) {
             auto r = c.Admin().verifyErasureRequest().send().wait(c.wait());
             nlohmann::json files = nlohmann::json::array();
             for (auto f : r.getFilesWithLeftovers()) files.push_back(f.cStr());
             ok = ok && r.getFound() == 0;
             result["erasure"] = {{"ok", r.getFound() == 0},
                                  {"witnesses", r.getWitnesses()},
                                  {"found", r.getFound()},
                                  {"files", files}};
           }
         });
         if (a->out.json) {
           PrintJson(result);
         } else {
           if (result.contains("chain")) {
             const auto& ch = result["chain"];
             std::cout << (ch["ok"].get<bool>() ? "chain ok" : "CHAIN BROKEN")
                       << ": " << ch["verified"].get<uint64_t>()
                       << " events verified, head "
                       << ch["head_seq"].get<uint64_t>() << "\n";
             if (!ch["ok"].get<bool>())
               std::cout << "problem: " << ch["problem"].get<std::string>()
                         << "\n";
           }
           if (result.contains("erasure")) {
             const auto& e = result["erasure"];
             std::cout << (e["ok"].get<bool>() ? "erasure ok"
                                               : "ERASED DATA FOUND")
                       << ": " << e["witnesses"].get<uint64_t>()
                       << " witnesses looked for, "
                       << e["found"].get<uint64_t>() << " found\n";
             for (const auto& f : e["files"])
               std::cout << "  in " << f.get<std::string>() << "\n";
           }
         }
         if (!ok) throw Failure("verification found a problem");
       }});
}

}  // namespace custos::cli
