// custos whoami; custos principal add|list|revoke|rotate-token.

#include <iostream>
#include <memory>

#include "tools/cli.h"

namespace custos::cli {
namespace {

nlohmann::json PrincipalJson(rpc::Principal::Reader p) {
  nlohmann::json roles = nlohmann::json::array();
  for (rpc::Role r : p.getRoles()) roles.push_back(RoleName(r));
  return {{"id", Str(p.getId())},
          {"display_name", Str(p.getDisplayName())},
          {"roles", roles},
          {"redacted", p.getRedacted()},
          {"revoked", p.getRevoked()},
          {"created_at", TimeJson(p.getCreatedAtMicros())}};
}

std::string RolesText(rpc::Principal::Reader p) {
  std::string out;
  for (rpc::Role r : p.getRoles()) {
    if (!out.empty()) out.push_back(',');
    out += RoleName(r);
  }
  return out;
}

}  // namespace

void AddPrincipalVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  {
    auto* cmd = app.add_subcommand("whoami",
                                   "show the principal you are logged in as\n"
                                   "example: custos whoami --json");
    auto out = std::make_shared<Output>();
    AddJsonFlag(*cmd, *out);
    verbs.push_back({cmd, [out](Connection& c) {
                       Remote([&] {
                         auto r =
                             c.session().whoAmIRequest().send().wait(c.wait());
                         auto p = r.getPrincipal();
                         if (out->json) return PrintJson(PrincipalJson(p));
                         std::cout << Printable(Str(p.getId())) << " ("
                                   << Printable(Str(p.getDisplayName()))
                                   << "), roles " << RolesText(p) << "\n";
                       });
                     }});
  }
  auto* principal = app.add_subcommand("principal", "manage principals");
  principal->require_subcommand(1);
  {
    struct Args {
      std::string id, name, out;
      std::vector<std::string> roles;
      bool redacted = false;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = principal->add_subcommand(
        "add",
        "create a principal; its token is written to a new file, mode 0600\n"
        "example: custos principal add authority-a --name 'Authority A' "
        "--role user --out authority-a.token");
    cmd->add_option("id", a->id, "principal id")->required();
    cmd->add_option("--name", a->name, "display name (default: the id)");
    cmd->add_option("--role", a->roles, "user, officer, auditor or admin")
        ->required();
    cmd->add_flag("--redacted", a->redacted,
                  "receives records without personal data (e.g. the "
                  "Commission in IMI)");
    cmd->add_option("--out", a->out, "token file to create")->required();
    verbs.push_back({cmd, [a](Connection& c) {
                       std::vector<rpc::Role> roles;
                       for (const auto& r : a->roles)
                         roles.push_back(ParseRole(r));
                       ReservedFile token_file(a->out);
                       Remote([&] {
                         auto req = c.Admin().createPrincipalRequest();
                         req.setId(a->id);
                         req.setDisplayName(a->name.empty() ? a->id : a->name);
                         req.setRedacted(a->redacted);
                         auto list = req.initRoles(roles.size());
                         for (size_t i = 0; i < roles.size(); ++i)
                           list.set(i, roles[i]);
                         auto r = req.send().wait(c.wait());
                         token_file.Fill(Str(r.getCreated().getToken()));
                       });
                       std::cout << "created " << a->id << "; token in "
                                 << a->out << "\n";
                     }});
  }
  {
    struct Args {
      uint32_t page_size = kMaxPageSize;
      Output out;
    };
    auto a = std::make_shared<Args>();
    auto* cmd =
        principal->add_subcommand("list",
                                  "list principals, revoked ones included\n"
                                  "example: custos principal list");
    AddPageSizeOption(*cmd, a->page_size);
    AddJsonFlag(*cmd, a->out);
    verbs.push_back(
        {cmd, [a](Connection& c) {
           nlohmann::json all = nlohmann::json::array();
           Table t({"ID", "NAME", "ROLES", "REDACTED", "REVOKED", "CREATED"});
           Remote([&] {
             ForEachPage([&](const std::string& after) {
               auto req = c.Admin().listPrincipalsRequest();
               req.setAfterId(after);
               req.setLimit(a->page_size);
               auto r = req.send().wait(c.wait());
               for (auto p : r.getPrincipals()) {
                 all.push_back(PrincipalJson(p));
                 t.Add({Str(p.getId()), Str(p.getDisplayName()), RolesText(p),
                        p.getRedacted() ? "yes" : "no",
                        p.getRevoked() ? "yes" : "no",
                        FormatTime(p.getCreatedAtMicros())});
               }
               return Str(r.getNextAfterId());
             });
           });
           if (a->out.json) return PrintJson(all);
           t.Print();
         }});
  }
  {
    auto id = std::make_shared<std::string>();
    auto* cmd = principal->add_subcommand(
        "revoke",
        "revoke a principal: its sessions lose every right at once\n"
        "example: custos principal revoke authority-a");
    cmd->add_option("id", *id, "principal id")->required();
    verbs.push_back({cmd, [id](Connection& c) {
                       Remote([&] {
                         auto req = c.Admin().revokePrincipalRequest();
                         req.setId(*id);
                         req.send().wait(c.wait());
                       });
                       std::cout << "revoked " << *id << "\n";
                     }});
  }
  {
    struct Args {
      std::string id, out;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = principal->add_subcommand(
        "rotate-token",
        "give a principal a new token (the old one stops working at once), "
        "written to a new file, mode 0600\n"
        "example: custos principal rotate-token authority-a --out a.token");
    cmd->add_option("id", a->id, "principal id")->required();
    cmd->add_option("--out", a->out, "token file to create")->required();
    verbs.push_back({cmd, [a](Connection& c) {
                       ReservedFile token_file(a->out);
                       Remote([&] {
                         auto req = c.Admin().rotateCredentialRequest();
                         req.setId(a->id);
                         auto r = req.send().wait(c.wait());
                         token_file.Fill(Str(r.getToken()));
                       });
                       std::cout << "new token for " << a->id << " in "
                                 << a->out << "\n";
                     }});
  }
}

}  // namespace custos::cli
