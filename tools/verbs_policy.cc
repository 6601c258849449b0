// custos policy list|set|apply|deadlines: retention policies.

#include <iostream>
#include <memory>

#include "storage/period.h"
#include "storage/retention_policy.h"
#include "tools/cli.h"

namespace custos::cli {
namespace {

nlohmann::json PolicyJson(rpc::RetentionPolicy::Reader p) {
  auto text = [](capnp::Text::Reader t) -> nlohmann::json {
    if (t.size() == 0) return nullptr;
    return Str(t);
  };
  return {{"kind", Str(p.getKind())},
          {"close_after", text(p.getCloseAfter())},
          {"block_after", text(p.getBlockAfter())},
          {"erase_after", text(p.getEraseAfter())},
          {"history_after", text(p.getHistoryAfter())},
          {"set_at", TimeJson(p.getSetAtMicros())}};
}

}  // namespace

void AddPolicyVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  auto* policy = app.add_subcommand(
      "policy", "retention policies: how long each kind of record is kept");
  policy->require_subcommand(1);
  {
    auto out = std::make_shared<Output>();
    auto* cmd = policy->add_subcommand(
        "list", "the policies in force\nexample: custos policy list");
    AddJsonFlag(*cmd, *out);
    verbs.push_back(
        {cmd, [out](Connection& c) {
           Remote([&] {
             auto r = c.session().listPoliciesRequest().send().wait(c.wait());
             if (out->json) {
               nlohmann::json all = nlohmann::json::array();
               for (auto p : r.getPolicies()) all.push_back(PolicyJson(p));
               return PrintJson(all);
             }
             Table t({"KIND", "CLOSE AFTER", "BLOCK AFTER", "ERASE AFTER",
                      "HISTORY AFTER", "SET AT"});
             for (auto p : r.getPolicies()) {
               t.Add({Str(p.getKind()), Str(p.getCloseAfter()),
                      Str(p.getBlockAfter()), Str(p.getEraseAfter()),
                      Str(p.getHistoryAfter()),
                      p.getSetAtMicros() == 0
                          ? "-"
                          : FormatTime(p.getSetAtMicros())});
             }
             t.Print();
           });
         }});
  }
  {
    struct Args {
      std::string kind, close, block, erase, history;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = policy->add_subcommand(
        "set",
        "set the policy of a record kind (ISO 8601 durations); records "
        "already stored keep their deadlines until `policy apply`\n"
        "example: custos policy set complaint --close-after P30D "
        "--erase-after P1Y --history-after P5Y");
    cmd->add_option("kind", a->kind, "record kind")->required();
    cmd->add_option("--close-after", a->close,
                    "close an untouched ACTIVE record after this");
    cmd->add_option("--block-after", a->block,
                    "from closure to BLOCKED (none: no BLOCKED phase)");
    cmd->add_option("--erase-after", a->erase, "from closure to ERASED")
        ->required();
    cmd->add_option("--history-after", a->history,
                    "access history kept after erasure")
        ->required();
    verbs.push_back({cmd, [a](Connection& c) {
                       // Checked here for a usage error; the server checks
                       // again (and the rules between periods).
                       for (auto [text, flag] :
                            {std::pair{&a->close, "--close-after"},
                             {&a->block, "--block-after"},
                             {&a->erase, "--erase-after"},
                             {&a->history, "--history-after"}}) {
                         if (!text->empty()) ParsePeriodFlag(*text, flag);
                       }
                       Remote([&] {
                         auto req = c.Admin().setPolicyRequest();
                         auto p = req.initPolicy();
                         p.setKind(a->kind);
                         p.setCloseAfter(a->close);
                         p.setBlockAfter(a->block);
                         p.setEraseAfter(a->erase);
                         p.setHistoryAfter(a->history);
                         req.send().wait(c.wait());
                       });
                       std::cout << "policy " << a->kind << " set\n";
                     }});
  }
  {
    auto* cmd = policy->add_subcommand(
        "apply",
        "give every stored record the deadlines of the policies now in "
        "force\nexample: custos policy apply");
    verbs.push_back(
        {cmd, [](Connection& c) {
           Remote([&] {
             auto r = c.Admin().reapplyPoliciesRequest().send().wait(c.wait());
             std::cout << r.getUpdated() << " records given new deadlines\n";
           });
         }});
  }
  {
    struct Args {
      std::string kind, closed;
      Output out;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = policy->add_subcommand(
        "deadlines",
        "the deadlines a record of KIND closed at a given time would get, "
        "computed as the engine computes them (Regulation 1182/71), to "
        "check a policy against the law before applying it\n"
        "example: custos policy deadlines request --closed "
        "2026-08-31T12:00:00Z");
    cmd->add_option("kind", a->kind, "record kind")->required();
    cmd->add_option("--closed", a->closed,
                    "when the record is closed (ISO 8601 with a zone)")
        ->required();
    AddJsonFlag(*cmd, a->out);
    verbs.push_back(
        {cmd, [a](Connection& c) {
           const int64_t closed = ParseTime(a->closed, "--closed");
           RetentionPolicy rule;
           bool found = false;
           // A period the server sent that does not parse is the server's
           // fault, not a usage error (helper-129: it exited 2).
           auto stored = [](const std::string& text, const char* field) {
             auto p = ParsePeriod(text);
             if (!p) {
               throw Failure(std::string("the server's policy has a period (") +
                             field + ") that is not an ISO 8601 duration");
             }
             return *p;
           };
           Remote([&] {
             auto r = c.session().listPoliciesRequest().send().wait(c.wait());
             for (auto p : r.getPolicies()) {
               if (p.getKind() != a->kind) continue;
               found = true;
               rule.kind = a->kind;
               if (p.getCloseAfter().size() > 0)
                 rule.close_after =
                     stored(Str(p.getCloseAfter()), "closeAfter");
               if (p.getBlockAfter().size() > 0)
                 rule.block_after =
                     stored(Str(p.getBlockAfter()), "blockAfter");
               rule.erase_after = stored(Str(p.getEraseAfter()), "eraseAfter");
               rule.history_after =
                   stored(Str(p.getHistoryAfter()), "historyAfter");
             }
           });
           if (!found) throw Failure("NotFound: no policy for kind " + a->kind);
           auto d = DeadlinesAfterClosure(rule, FromMicros(closed));
           if (!d) throw Failure(d.error().ToString());
           const int64_t blocked = d->blocked ? ToMicros(*d->blocked) : 0;
           const std::string close_after =
               rule.close_after ? rule.close_after->ToString() : "";
           if (a->out.json) {
             return PrintJson(
                 {{"kind", a->kind},
                  {"closed", TimeJson(closed)},
                  {"close_after_untouched", close_after.empty()
                                                ? nlohmann::json(nullptr)
                                                : nlohmann::json(close_after)},
                  {"blocked", TimeJson(blocked)},
                  {"erased", TimeJson(ToMicros(d->erased))},
                  {"history_pruned", TimeJson(ToMicros(d->history_pruned))}});
           }
           Table t({"EVENT", "AT"});
           if (!close_after.empty())
             t.Add({"closed when untouched for", close_after});
           t.Add({"closed", FormatTime(closed)});
           t.Add({"blocked",
                  blocked == 0 ? "(no BLOCKED phase)" : FormatTime(blocked)});
           t.Add({"erased", FormatTime(ToMicros(d->erased))});
           t.Add({"history pruned", FormatTime(ToMicros(d->history_pruned))});
           t.Print();
         }});
  }
}

}  // namespace custos::cli
