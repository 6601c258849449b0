// custos: the administrators' command-line tool (issue 13; this is its
// first slice). Every verb talks to a running custosd over RPC.
//
// Connection, from flags or the environment (like Vault's and PostgreSQL's
// tools): --addr / CUSTOS_ADDR ("unix:PATH" or "HOST:PORT"; default
// unix:./custos-data/custosd.sock), --principal / CUSTOS_PRINCIPAL (default
// admin), --token-file / CUSTOS_TOKEN_FILE (default ./custos-admin.token).
// A token is never taken on the command line, where other users could see
// it in the process list.
//
// Exit codes: 0 success, 1 refused or failed, 2 usage.

#include <capnp/ez-rpc.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "schema/custos.capnp.h"
#include "server/errors.h"

namespace {

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

// "k=v" -> {k, v}; nullopt without '='.
std::optional<std::pair<std::string, std::string>> KeyValue(
    const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return std::nullopt;
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

std::string ReadToken(const std::string& path) {
  std::ifstream in(path);
  std::string token;
  std::getline(in, token);
  return token;
}

const char* StateName(custos::rpc::RecordState s) {
  switch (s) {
    case custos::rpc::RecordState::ACTIVE:
      return "ACTIVE";
    case custos::rpc::RecordState::CLOSED:
      return "CLOSED";
    case custos::rpc::RecordState::BLOCKED:
      return "BLOCKED";
    case custos::rpc::RecordState::ERASED:
      return "ERASED";
  }
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"custos: administer a running custosd"};
  app.require_subcommand(1);
  std::string addr = Env("CUSTOS_ADDR", "unix:./custos-data/custosd.sock");
  std::string principal = Env("CUSTOS_PRINCIPAL", "admin");
  std::string token_file = Env("CUSTOS_TOKEN_FILE", "./custos-admin.token");
  app.add_option("--addr", addr, "server address (env CUSTOS_ADDR)");
  app.add_option("--principal", principal,
                 "principal to log in as (env CUSTOS_PRINCIPAL)");
  app.add_option("--token-file", token_file,
                 "file holding the principal's token (env CUSTOS_TOKEN_FILE)");

  auto* whoami = app.add_subcommand("whoami", "show the logged-in principal");

  auto* principal_cmd = app.add_subcommand("principal", "manage principals");
  principal_cmd->require_subcommand(1);
  auto* principal_add = principal_cmd->add_subcommand(
      "add",
      "create a principal; its token is written to --out (mode 0600)\n"
      "example: custos principal add authority-a --role user --out a.token");
  std::string new_id, new_name, token_out;
  std::vector<std::string> new_roles;
  principal_add->add_option("id", new_id, "principal id")->required();
  principal_add->add_option("--name", new_name, "display name");
  principal_add->add_option("--role", new_roles, "user|officer|auditor|admin")
      ->required();
  principal_add->add_option("--out", token_out, "token file to create")
      ->required();

  auto* record_cmd = app.add_subcommand("record", "records");
  record_cmd->require_subcommand(1);
  auto* record_create = record_cmd->add_subcommand(
      "create",
      "create a record with one subject's personal data\n"
      "example: custos record create --kind request --attr country=AT "
      "--subject anna@example.org --field name=Anna");
  std::string kind, subject;
  std::vector<std::string> attrs, fields, grants;
  record_create->add_option("--kind", kind, "record kind")->required();
  record_create->add_option("--attr", attrs, "attribute key=value");
  record_create->add_option("--subject", subject,
                            "the data subject's identifier");
  record_create->add_option("--field", fields, "personal field name=value");
  record_create->add_option("--grant", grants, "principal that may read it");
  auto* record_get = record_cmd->add_subcommand(
      "get", "show a record as you may see it\nexample: custos record get 1");
  uint64_t record_id = 0;
  record_get->add_option("id", record_id, "record id")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  const std::string token = ReadToken(token_file);
  if (token.empty()) {
    std::fprintf(stderr, "custos: no token in %s\n", token_file.c_str());
    return 1;
  }
  try {
    capnp::EzRpcClient client(addr);
    auto& wait = client.getWaitScope();
    auto login = client.getMain<custos::rpc::Gateway>().loginRequest();
    login.setPrincipal(principal);
    login.setToken(token);
    auto session = login.send().getSession();

    if (*whoami) {
      auto response = session.whoAmIRequest().send().wait(wait);
      auto who = response.getPrincipal();
      std::printf("%s (%s)\n", who.getId().cStr(), who.getDisplayName().cStr());
    } else if (*principal_add) {
      auto req =
          session.adminRequest().send().getAdmin().createPrincipalRequest();
      req.setId(new_id);
      req.setDisplayName(new_name.empty() ? new_id : new_name);
      auto roles = req.initRoles(new_roles.size());
      for (size_t i = 0; i < new_roles.size(); ++i) {
        const std::string& r = new_roles[i];
        if (r == "user")
          roles.set(i, custos::rpc::Role::USER);
        else if (r == "officer")
          roles.set(i, custos::rpc::Role::OFFICER);
        else if (r == "auditor")
          roles.set(i, custos::rpc::Role::AUDITOR);
        else if (r == "admin")
          roles.set(i, custos::rpc::Role::ADMIN);
        else {
          std::fprintf(stderr, "custos: unknown role %s\n", r.c_str());
          return 2;
        }
      }
      auto response = req.send().wait(wait);
      auto created = response.getCreated();
      std::ofstream out(token_out, std::ios::trunc);
      std::filesystem::permissions(token_out,
                                   std::filesystem::perms::owner_read |
                                       std::filesystem::perms::owner_write);
      out << created.getToken().cStr() << "\n";
      std::printf("created %s; token in %s\n",
                  created.getPrincipal().getId().cStr(), token_out.c_str());
    } else if (*record_create) {
      auto req = session.createRequest();
      auto r = req.initRecord();
      r.setKind(kind);
      auto a = r.initAttributes(attrs.size());
      for (size_t i = 0; i < attrs.size(); ++i) {
        auto kv = KeyValue(attrs[i]);
        if (!kv) {
          std::fprintf(stderr, "custos: --attr wants key=value\n");
          return 2;
        }
        a[i].setKey(kv->first);
        a[i].setValue(kv->second);
      }
      if (!subject.empty()) {
        auto part = r.initPersonal(1)[0];
        part.setSubjectIdentifier(subject);
        auto f = part.initFields(fields.size());
        for (size_t i = 0; i < fields.size(); ++i) {
          auto kv = KeyValue(fields[i]);
          if (!kv) {
            std::fprintf(stderr, "custos: --field wants name=value\n");
            return 2;
          }
          f[i].setName(kv->first);
          f[i].setValue(kv->second);
        }
      }
      auto g = r.initGrants(grants.size());
      for (size_t i = 0; i < grants.size(); ++i) g.set(i, grants[i]);
      std::printf("%llu\n", static_cast<unsigned long long>(
                                req.send().wait(wait).getId()));
    } else if (*record_get) {
      auto req = session.getRequest();
      req.setId(record_id);
      auto response = req.send().wait(wait);
      auto rec = response.getRecord();
      std::printf("record %llu  kind %s  owner %s  state %s\n",
                  static_cast<unsigned long long>(rec.getId()),
                  rec.getKind().cStr(), rec.getOwner().cStr(),
                  StateName(rec.getState()));
      for (auto a : rec.getAttributes()) {
        std::printf("  %s = %s\n", a.getKey().cStr(), a.getValue().cStr());
      }
      for (auto p : rec.getParts()) {
        std::printf("  subject %s\n", p.getSubjectIdentifier().cStr());
        for (auto f : p.getFields()) {
          std::printf("    %s = %s\n", f.getName().cStr(), f.getValue().cStr());
        }
      }
      if (!rec.getPersonalIncluded())
        std::printf("  (no personal data shown)\n");
    }
  } catch (const kj::Exception& e) {
    const custos::Status s = custos::server::FromException(e);
    std::fprintf(stderr, "custos: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
