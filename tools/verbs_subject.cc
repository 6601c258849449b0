// custos subject find|report|history|shred: a data subject's access
// request and erasure request.

#include <charconv>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/limits.h"
#include "tools/cli.h"

namespace custos::cli {
namespace {

// The tool's end of Auditor.subjectReportTo: the chunks appended to the
// text as they come, then the end. Shared with the caller: the RPC system
// destroys the sink when the server lets go of it, before or after the
// caller reads the answer.
struct ReceivedReport {
  std::string text;
  bool ended = false;
};

class ReportSink final : public rpc::ByteSink::Server {
 public:
  explicit ReportSink(std::shared_ptr<ReceivedReport> received)
      : received_(std::move(received)) {}

 protected:
  kj::Promise<void> write(WriteContext context) override {
    const auto chunk = context.getParams().getChunk();
    received_->text.append(reinterpret_cast<const char*>(chunk.begin()),
                           chunk.size());
    return kj::READY_NOW;
  }
  kj::Promise<void> end(EndContext) override {
    received_->ended = true;
    return kj::READY_NOW;
  }

 private:
  const std::shared_ptr<ReceivedReport> received_;
};

// The subject report of `subject_id` (`html`: the page), in chunks
// (subjectReportTo), or in one answer from a custosd built before
// subjectReportTo, which says Unimplemented. Throws kj::Exception as a
// call does (run it inside Remote).
std::string FetchReport(Connection& c, const std::string& subject_id,
                        bool html) {
  auto auditor = c.Auditor();
  auto received = std::make_shared<ReceivedReport>();
  auto req = auditor.subjectReportToRequest();
  req.setSubjectId(subject_id);
  req.setHtml(html);
  req.setSink(kj::heap<ReportSink>(received));
  uint64_t bytes = 0;
  try {
    bytes = req.send().wait(c.wait()).getBytes();
  } catch (const kj::Exception& e) {
    if (e.getType() != kj::Exception::Type::UNIMPLEMENTED) throw;
    if (html) {
      auto one = auditor.subjectReportHtmlRequest();
      one.setSubjectId(subject_id);
      return Str(one.send().wait(c.wait()).getHtml());
    }
    auto one = auditor.subjectReportRequest();
    one.setSubjectId(subject_id);
    return Str(one.send().wait(c.wait()).getJson());
  }
  if (!received->ended || bytes != received->text.size()) {
    throw Failure("the subject report arrived incomplete (" +
                  std::to_string(received->text.size()) + " of " +
                  std::to_string(bytes) + " bytes)");
  }
  return std::move(received->text);
}

}  // namespace

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
    verbs.push_back(
        {cmd, [](Connection& c) {
           std::string identifier;
           ReadInputLine(identifier);
           if (identifier.empty())
             throw UsageError(
                 "subject find reads the identifier from "
                 "standard input");
           // A file of identifiers piped in by mistake: the
           // first line's answer would read as the file's.
           if (MoreInputWaiting()) {
             throw UsageError(
                 "standard input holds more than one line: "
                 "subject find reads one identifier");
           }
           Remote([&] {
             // The auditor's facet for an auditor (who answers
             // access requests), else the admin's (a review,
             // helper-121: auditors were refused the admin's).
             auto find = [&](auto request) {
               request.setIdentifier(identifier);
               std::cout << Str(request.send().wait(c.wait()).getSubjectId())
                         << "\n";
             };
             if (c.HasRole(rpc::Role::AUDITOR))
               find(c.Auditor().findSubjectRequest());
             else
               find(c.Admin().findSubjectRequest());
           });
         }});
  }
  {
    struct Args {
      std::string id, out;
      bool html = false;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = subject->add_subcommand(
        "report",
        "the answer to a subject's access request: everything held and "
        "everyone who received it, as JSON for machines or (--html) as a "
        "page for the person it concerns (auditors; recorded)\n"
        "example: custos subject report s0123... --html --out report.html");
    cmd->add_option("id", a->id, "subject id (from subject find)")->required();
    cmd->add_option("--out", a->out, "write to this new file, mode 0600");
    cmd->add_flag("--html", a->html,
                  "the self-contained HTML page (docs/subject-report.md) "
                  "instead of JSON");
    verbs.push_back({cmd, [a](Connection& c) {
                       ReservedFile out_file(a->out);
                       std::string text;
                       Remote([&] {
                         // In chunks: a report larger than the server's message
                         // limit arrives too.
                         text = FetchReport(c, a->id, a->html);
                       });
                       // Both renderings end in a newline already.
                       if (!text.empty() && text.back() == '\n')
                         text.pop_back();
                       if (a->out.empty()) {
                         PrintDocument(text);
                         return;
                       }
                       // It holds personal data: 0600, like a token.
                       out_file.Fill(text);
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
           // The record's state then, as the man page says (helper-129);
           // an event about no record (a lookup, a report) shows "-".
           Table t({"SEQ", "AT", "PRINCIPAL", "ACTION", "RECORD", "KIND",
                    "STATE", "FIELDS", "PURPOSE"});
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
                   fields += Printable(Str(f));
                   field_list.push_back(Str(f));
                 }
                 all.push_back({{"seq", e.getSeq()},
                                {"at", TimeJson(e.getAtMicros())},
                                {"principal_id", Str(e.getPrincipalId())},
                                {"principal_name", Str(e.getPrincipalName())},
                                {"action", Str(e.getAction())},
                                {"record_id", e.getRecordId()},
                                {"record_kind", Str(e.getRecordKind())},
                                {"record_state", Str(e.getRecordState())},
                                {"fields", field_list},
                                {"purpose", Str(e.getPurpose())},
                                {"justification", Str(e.getJustification())}});
                 // Free text the audited principal wrote: shown as
                 // printable text only (no terminal control sequences),
                 // as every stored text the tool prints.
                 std::string why = Str(e.getPurpose());
                 if (e.getJustification().size() != 0) {
                   why += std::string(why.empty() ? "" : ": ") +
                          Printable(Str(e.getJustification()));
                 }
                 const bool about_a_record = e.getRecordId() != 0;
                 t.Add({std::to_string(e.getSeq()), FormatTime(e.getAtMicros()),
                        Str(e.getPrincipalId()), Str(e.getAction()),
                        about_a_record ? std::to_string(e.getRecordId()) : "-",
                        about_a_record ? Str(e.getRecordKind()) : "-",
                        about_a_record ? Str(e.getRecordState()) : "-", fields,
                        why});
               }
               after = NextPage(after, r.getNextAfterSeq());
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

namespace {

nlohmann::json ChainJson(const ChainVerification& v) {
  return {{"ok", v.ok},
          {"problem", v.problem},
          {"first_broken", v.first_broken},
          {"verified", v.verified},
          {"head_seq", v.head_seq},
          {"head_link", v.head_link_hex},
          {"anchors_matched", v.anchors_matched},
          {"anchors_folded", v.anchors_folded},
          {"anchor_last_held", v.anchor_last_held}};
}

// The stored retention policies against the chain: ok when they were
// compared and none differs.
nlohmann::json PoliciesJson(const ChainVerification& v) {
  nlohmann::json differences = nlohmann::json::array();
  for (const PolicyDifference& d : v.policy_differences) {
    differences.push_back(
        {{"kind", d.kind},
         {"expected_from", PolicyDifferenceFromName(d.expected_from)},
         {"last_set_seq", d.last_set_seq},
         {"expected", d.expected},
         {"stored", PolicyDifferenceStoredName(d.stored)},
         {"stored_text", d.stored_text}});
  }
  return {{"ok", v.policies_checked && v.policy_differences_total == 0},
          {"checked", v.policies_checked},
          {"differences", differences},
          {"total", v.policy_differences_total}};
}

// --through's SEQ:LINK, as `verify --chain` prints a head.
RecordedHead ParseRecordedHead(std::string_view text) {
  const size_t colon = text.find(':');
  RecordedHead head;
  const std::string_view seq = text.substr(0, colon);
  auto [end, error] =
      std::from_chars(seq.data(), seq.data() + seq.size(), head.seq);
  if (colon == std::string_view::npos || seq.empty() || error != std::errc() ||
      end != seq.data() + seq.size()) {
    throw UsageError(
        "--through: expected SEQ:LINK, a head as `custos verify --chain` "
        "prints it");
  }
  head.link_hex = std::string(text.substr(colon + 1));
  return head;
}

// The heads given, checked here as the engine would (a usage error, exit 2,
// before anything is opened or sent).
std::vector<RecordedHead> ParseRecordedHeads(
    const std::vector<std::string>& texts) {
  std::vector<RecordedHead> heads;
  for (const std::string& text : texts)
    heads.push_back(ParseRecordedHead(text));
  if (Status s = CheckRecordedHeads(heads); !s.ok())
    throw UsageError("--through: " + s.message());
  return heads;
}

// A chain found ok must have checked every head given (matched, or before
// the checkpoint): a server that ignores `through` (one older than the
// parameter) answers ok with neither count.
void RequireHeadsChecked(const ChainVerification& v, size_t given) {
  if (v.ok && v.anchors_matched + v.anchors_folded != given) {
    throw Failure(
        "the server did not check the recorded heads (is it older than "
        "this tool?): nothing is proven about them");
  }
}

// "ok" is about the bytes found; the two counts are reported beside it (a
// corrupt queue entry was carried out all the same; an undecodable entry
// was deleted, its bytes unwitnessed), never hidden.
nlohmann::json ErasureJson(uint64_t witnesses, uint64_t found,
                           const std::vector<std::string>& files,
                           uint64_t corrupt_queue_entries,
                           uint64_t undecodable_sealed_entries) {
  return {{"ok", found == 0},
          {"witnesses", witnesses},
          {"found", found},
          {"files", files},
          {"corrupt_queue_entries", corrupt_queue_entries},
          {"undecodable_sealed_entries", undecodable_sealed_entries}};
}

// Prints what verify found (as JSON or text); Failure if it found a
// problem.
void PrintVerification(const nlohmann::json& result, bool json) {
  bool ok = true;
  for (const auto& [what, found] : result.items())
    ok = ok && found["ok"].get<bool>();
  if (json) {
    PrintJson(result);
  } else {
    if (result.contains("chain")) {
      const auto& ch = result["chain"];
      const bool chain_ok = ch["ok"].get<bool>();
      std::cout << (chain_ok ? "chain ok" : "CHAIN BROKEN") << ": "
                << ch["verified"].get<uint64_t>() << " events verified, head "
                << ch["head_seq"].get<uint64_t>() << ":"
                << ch["head_link"].get<std::string>()
                << (chain_ok ? "" : " (not verified: do not keep it)") << "\n";
      const uint64_t matched = ch["anchors_matched"].get<uint64_t>();
      const uint64_t folded = ch["anchors_folded"].get<uint64_t>();
      if (matched + folded > 0) {
        std::cout << "through recorded heads: " << matched << " found";
        if (folded > 0) {
          std::cout << ", " << folded
                    << " before the checkpoint (not checked: their links "
                       "were folded away)";
        }
        std::cout << "\n";
      }
      if (!chain_ok) {
        const std::string problem = ch["problem"].get<std::string>();
        std::cout << "problem: " << problem << " at seq "
                  << ch["first_broken"].get<uint64_t>() << "\n";
        if (problem == "anchor") {
          const uint64_t held = ch["anchor_last_held"].get<uint64_t>();
          if (held == 0) {
            std::cout << "no recorded head before it held: the chain departs "
                         "from them at or before seq "
                      << ch["first_broken"].get<uint64_t>() << "\n";
          } else {
            std::cout << "the chain departs from the recorded heads after seq "
                      << held << " (the last that held), at or before seq "
                      << ch["first_broken"].get<uint64_t>() << "\n";
          }
        }
      }
    }
    if (result.contains("policies")) {
      const auto& p = result["policies"];
      if (!p["checked"].get<bool>()) {
        std::cout << "retention policies not compared with the chain (it "
                     "did not verify to its last event)\n";
      } else if (p["ok"].get<bool>()) {
        std::cout << "retention policies ok: as the chain last set them\n";
      } else {
        std::cout << "RETENTION POLICIES NOT AS LAST SET: "
                  << p["total"].get<uint64_t>()
                  << " kinds (check each, then set it: custos policy set)\n";
        for (const auto& d : p["differences"]) {
          const std::string stored = d["stored"].get<std::string>();
          const std::string from = d["expected_from"].get<std::string>();
          std::cout << "  " << Printable(d["kind"].get<std::string>())
                    << ": stored "
                    << (stored == "policy"
                            ? Printable(d["stored_text"].get<std::string>())
                        : stored == "none"
                            ? std::string("nothing")
                            : std::string("a value failing its MAC"))
                    << "; ";
          if (from == "event") {
            std::cout << "last set at seq " << d["last_set_seq"].get<uint64_t>()
                      << ": " << Printable(d["expected"].get<std::string>());
          } else if (from == "default") {
            std::cout << "never set, shipped default: "
                      << Printable(d["expected"].get<std::string>());
          } else {
            std::cout << "never set and no shipped default: no policy";
          }
          std::cout << "\n";
        }
        const uint64_t listed = p["differences"].size();
        if (p["total"].get<uint64_t>() > listed)
          std::cout << "  and " << p["total"].get<uint64_t>() - listed
                    << " more\n";
      }
    }
    if (result.contains("erasure")) {
      const auto& e = result["erasure"];
      std::cout << (e["ok"].get<bool>() ? "erasure ok" : "ERASED DATA FOUND")
                << ": " << e["witnesses"].get<uint64_t>()
                << " witnesses looked for, " << e["found"].get<uint64_t>()
                << " found\n";
      for (const auto& f : e["files"])
        std::cout << "  in " << f.get<std::string>() << "\n";
      const uint64_t corrupt = e["corrupt_queue_entries"].get<uint64_t>();
      const uint64_t undecodable =
          e["undecodable_sealed_entries"].get<uint64_t>();
      if (corrupt > 0)
        std::cout << "warning: " << corrupt
                  << " corrupt queued range deletions (carried out over "
                     "their bucket's range)\n";
      if (undecodable > 0)
        std::cout << "warning: " << undecodable
                  << " undecodable sealed entries deleted unwitnessed "
                     "(their bytes are not looked for)\n";
    }
  }
  if (!ok) throw Failure("verification found a problem");
}

}  // namespace

void AddVerifyVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  struct Args {
    bool chain = false, erasure = false;
    std::string data_dir, key_file, admin = "admin";
    std::vector<std::string> through;
    Output out;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "verify",
      "check the store's promises: --chain verifies the access history's "
      "hash chain (auditors, admins); --erasure looks for erased data and "
      "destroyed keys in every file (admins); exit 1 if a problem is found. "
      "With --data-dir, OFFLINE on a stopped server's data directory\n"
      "example: custos verify --chain --erasure\n"
      "example: custos verify --chain --data-dir /var/lib/custos/data "
      "--master-key-file /etc/custos/master.key");
  cmd->add_flag("--chain", a->chain, "verify the access-history chain");
  cmd->add_flag("--erasure", a->erasure,
                "look for erased bytes left in the files");
  cmd->add_option("--through", a->through,
                  "with --chain: a head printed by an earlier verification "
                  "(SEQ:LINK, repeatable, at most 1,000): the chain must "
                  "still pass through it (a cut tail is found only so)")
      ->needs(cmd->get_option("--chain"));
  auto* data_dir = cmd->add_option(
      "--data-dir", a->data_dir,
      "offline: the data directory of a stopped server (opened, never "
      "created)");
  cmd->add_option("--master-key-file", a->key_file,
                  "offline: its master key file (mode 0600)")
      ->needs(data_dir);
  data_dir->needs(cmd->get_option("--master-key-file"));
  cmd->add_option("--admin", a->admin, "offline: the admin as whom to verify")
      ->capture_default_str()
      ->needs(data_dir);
  AddJsonFlag(*cmd, a->out);
  auto require_what = [a] {
    if (!a->chain && !a->erasure)
      throw UsageError("verify: give --chain, --erasure or both");
  };
  auto recorded_heads = [a] { return ParseRecordedHeads(a->through); };
  auto online = [a, require_what, recorded_heads](Connection& c) {
    require_what();
    const std::vector<RecordedHead> through = recorded_heads();
    nlohmann::json result = nlohmann::json::object();
    Remote([&] {
      if (a->chain) {
        // The auditor's facet if the principal has the role, else the
        // admin's.
        const bool auditor = c.HasRole(rpc::Role::AUDITOR);
        const bool admin = c.HasRole(rpc::Role::ADMIN);
        // Said in the verb's words (the admin facet's refusal would name
        // the admin role alone).
        if (!auditor && !admin) {
          throw Failure(
              "PermissionDenied: verify --chain needs the auditor or the "
              "admin role");
        }
        auto check = [&](auto request) {
          auto list = request.initThrough(through.size());
          for (size_t i = 0; i < through.size(); ++i) {
            list[i].setSeq(through[i].seq);
            list[i].setLinkHex(through[i].link_hex);
          }
          auto response = request.send().wait(c.wait());
          const ChainVerification v{
              .ok = response.getOk(),
              .problem = Str(response.getProblem()),
              .first_broken = response.getFirstBroken(),
              .verified = response.getVerified(),
              .head_seq = response.getHeadSeq(),
              .head_link_hex = Str(response.getHeadLinkHex()),
              .anchors_matched = response.getAnchorsMatched(),
              .anchors_folded = response.getAnchorsFolded(),
              .anchor_last_held = response.getAnchorLastHeld(),
              .policies_checked = response.getPoliciesChecked(),
              .policy_differences =
                  [&] {
                    std::vector<PolicyDifference> out;
                    for (auto d : response.getPolicyDifferences()) {
                      const std::string from = Str(d.getExpectedFrom());
                      const std::string stored = Str(d.getStored());
                      out.push_back(
                          {.kind = Str(d.getKind()),
                           .expected_from =
                               from == "event" ? PolicyDifference::kEvent
                               : from == "default"
                                   ? PolicyDifference::kShippedDefault
                                   : PolicyDifference::kNoPolicy,
                           .last_set_seq = d.getLastSetSeq(),
                           .expected = Str(d.getExpected()),
                           .stored = stored == "policy"
                                         ? PolicyDifference::kStored
                                     : stored == "unauthenticated"
                                         ? PolicyDifference::kUnauthenticated
                                         : PolicyDifference::kNone,
                           .stored_text = Str(d.getStoredText())});
                    }
                    return out;
                  }(),
              .policy_differences_total = response.getPolicyDifferencesTotal()};
          RequireHeadsChecked(v, through.size());
          result["chain"] = ChainJson(v);
          result["policies"] = PoliciesJson(v);
        };
        if (auditor)
          check(c.Auditor().verifyChainRequest());
        else
          check(c.Admin().verifyChainRequest());
      }
      if (a->erasure) {
        auto r = c.Admin().verifyErasureRequest().send().wait(c.wait());
        std::vector<std::string> files;
        for (auto f : r.getFilesWithLeftovers()) files.emplace_back(Str(f));
        result["erasure"] = ErasureJson(r.getWitnesses(), r.getFound(), files,
                                        r.getCorruptQueueEntries(),
                                        r.getUndecodableSealedEntries());
      }
    });
    PrintVerification(result, a->out.json);
  };
  auto offline = [a, require_what, recorded_heads] {
    require_what();
    const std::vector<RecordedHead> through = recorded_heads();
    SystemClock clock;
    std::unique_ptr<Engine> engine =
        OpenOffline(a->data_dir, a->key_file, clock);
    auto actor = engine->ActorFor(a->admin);
    if (!actor)
      throw Failure("--admin " + a->admin + ": " + actor.error().ToString());
    nlohmann::json result = nlohmann::json::object();
    if (a->chain) {
      auto v = engine->VerifyChain(*actor, nullptr, through);
      if (!v) throw Failure(v.error().ToString());
      RequireHeadsChecked(*v, through.size());
      result["chain"] = ChainJson(*v);
      result["policies"] = PoliciesJson(*v);
    }
    if (a->erasure) {
      auto r = engine->VerifyErasure(*actor);
      if (!r) throw Failure(r.error().ToString());
      result["erasure"] =
          ErasureJson(r->witnesses, r->found, r->files_with_leftovers,
                      r->corrupt_queue_entries, r->undecodable_sealed_entries);
    }
    PrintVerification(result, a->out.json);
  };
  verbs.push_back(
      Verb{cmd, online, offline, [data_dir] { return data_dir->count() > 0; }});
}

}  // namespace custos::cli
