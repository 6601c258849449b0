// custos init (offline: a new store, as custosd's first start makes it);
// custos recover-admin (offline: a new admin, for the master key's holder);
// custos register (the register of processing activities).

#include <filesystem>
#include <iostream>
#include <memory>

#include "crypto/master_key.h"
#include "server/first_start.h"
#include "tools/cli.h"

namespace custos::cli {
namespace {

// The master key of a new store: the key file's if it exists (made
// beforehand with `custosd --generate-master-key`), else a new one written
// there. `created` says which.
crypto::SecretKey MasterKeyForNewStore(const std::string& file, bool& created) {
  created = !std::filesystem::exists(file);
  auto key = created ? crypto::GenerateMasterKeyFile(file)
                     : crypto::LoadMasterKeyFile(file);
  if (!key) throw Failure(key.error().ToString());
  return std::move(*key);
}

}  // namespace

void AddStoreVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  {
    struct Args {
      std::string data_dir = "./custos-data";
      std::string key_file = "./custos-master.key";
      std::string token_file = "./custos-admin.token";
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "init",
        "OFFLINE, on the server's host: create a new store, as custosd's "
        "first start does: the data directory (new or empty), the master key "
        "file (created, mode 0600, unless it exists) and the first admin, "
        "whose token is written to a new file (mode 0600); then start "
        "custosd on them\n"
        "example: custos init --data-dir /var/lib/custos/data "
        "--master-key-file /etc/custos/master.key --admin-token-file "
        "/var/lib/custos/admin.token");
    cmd->add_option("--data-dir", a->data_dir, "new or empty data directory")
        ->capture_default_str();
    cmd->add_option("--master-key-file", a->key_file,
                    "the master key file: used if it exists, else created")
        ->capture_default_str();
    cmd->add_option("--admin-token-file", a->token_file,
                    "new file for the first admin's token")
        ->capture_default_str();
    verbs.push_back(Verb{
        cmd, std::function<void()>([a] {
          std::error_code ec;
          if (std::filesystem::exists(a->data_dir, ec) &&
              !std::filesystem::is_empty(a->data_dir, ec)) {
            throw Failure("FailedPrecondition: " + a->data_dir +
                          " exists and is not empty: init makes a new store "
                          "(custosd opens an existing one)");
          }
          // Tried before the store is made (created and removed again:
          // BootstrapFirstAdmin then creates it before the admin), so that
          // a path that cannot be written leaves no store behind.
          { ReservedFile probe(a->token_file); }
          bool key_created = false;
          crypto::SecretKey master =
              MasterKeyForNewStore(a->key_file, key_created);
          SystemClock clock;
          Options options;
          options.data_dir = a->data_dir;
          options.clock = &clock;
          auto engine = Engine::Open(options, std::move(master));
          if (!engine) throw Failure(engine.error().ToString());
          auto admin = server::BootstrapFirstAdmin(**engine, a->token_file);
          if (!admin) throw Failure(admin.error().ToString());
          if (!*admin) throw Failure(a->data_dir + " already holds principals");
          std::cout << "new store in " << a->data_dir << "\n"
                    << "master key in " << a->key_file
                    << (key_created ? " (created, mode 0600): keep a copy "
                                      "apart from the data; without it "
                                      "nothing can be read\n"
                                    : " (existing)\n")
                    << "first admin '" << server::kFirstAdminId
                    << "', its token in " << a->token_file << " (mode 0600)\n"
                    << "start the server with: custosd --data-dir "
                    << a->data_dir << " --master-key-file " << a->key_file
                    << "\n";
        })});
  }
  {
    struct Args {
      std::string data_dir = "./custos-data";
      std::string key_file = "./custos-master.key";
      std::string token_file, id;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "recover-admin",
        "OFFLINE, on the server's host, with custosd stopped: create a new "
        "admin in an existing store, for whoever holds its master key, when "
        "no admin can log in (every admin's token lost, or a restore whose "
        "backup's admins were all revoked since); its token is written to a "
        "new file (mode 0600), and the history records the act "
        "(principal_created, 'recovered')\n"
        "example: custos recover-admin --id admin-2027 --data-dir "
        "/var/lib/custos/data --master-key-file /etc/custos/master.key "
        "--admin-token-file /var/lib/custos/admin-2027.token");
    cmd->add_option("--id", a->id, "the new admin's id (not taken)")
        ->required();
    cmd->add_option("--admin-token-file", a->token_file,
                    "new file for the new admin's token")
        ->required();
    cmd->add_option("--data-dir", a->data_dir, "the store's data directory")
        ->capture_default_str();
    cmd->add_option("--master-key-file", a->key_file, "the store's master key")
        ->capture_default_str();
    verbs.push_back(
        Verb{cmd, std::function<void()>([a] {
               // Never creates a store (a mistyped or half-restored
               // directory is refused, not made a new store with an admin).
               SystemClock clock;
               std::unique_ptr<Engine> engine =
                   OpenOffline(a->data_dir, a->key_file, clock,
                               /*rpc_alternative=*/false);
               Status s = server::RecoverAdmin(*engine, a->id, a->token_file);
               if (!s.ok()) throw Failure(s.ToString());
               std::cout << "new admin '" << a->id << "' in " << a->data_dir
                         << ", its token in " << a->token_file
                         << " (mode 0600); the history records it "
                            "(principal_created, recovered). Revoke the admins "
                            "whose tokens were lost once custosd runs again\n";
             })});
  }
  {
    struct Args {
      std::string out;
      bool json = false, html = false;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "register",
        "the register of processing activities: per record kind the "
        "retention in force, the categories of personal data and of "
        "recipients, the records by state and the subjects; the security "
        "measures. No personal data (auditors and admins)\n"
        "example: custos register --html --out register.html");
    cmd->add_flag("--json", a->json,
                  "the JSON document (docs/accountability.md)");
    cmd->add_flag("--html", a->html, "the self-contained HTML page");
    cmd->add_option("--out", a->out, "write to this new file, mode 0600");
    verbs.push_back(
        {cmd, [a](Connection& c) {
           if (a->json && a->html) {
             throw UsageError("--json and --html exclude each other");
           }
           ReservedFile out_file(a->out);
           std::string text;
           Remote([&] {
             // An auditor's facet for auditors, the admin's for admins.
             const bool auditor = c.HasRole(rpc::Role::AUDITOR);
             if (auditor) {
               auto req = c.Auditor().processingRegisterRequest();
               req.setHtml(a->html);
               text = Str(req.send().wait(c.wait()).getDocument());
             } else {
               auto req = c.Admin().processingRegisterRequest();
               req.setHtml(a->html);
               text = Str(req.send().wait(c.wait()).getDocument());
             }
           });
           if (!a->out.empty()) {
             out_file.Fill(text);
             std::cout << "register in " << a->out << "\n";
             return;
           }
           if (a->json || a->html) {
             if (text.ends_with('\n')) text.pop_back();
             PrintDocument(text);
             return;
           }
           const nlohmann::json reg =
               nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
           if (reg.is_discarded()) {
             throw Failure("the server's processing register is not JSON");
           }
           Table t({"KIND", "CLOSE", "BLOCK", "ERASE", "HISTORY", "FIELDS",
                    "ACTIVE", "CLOSED", "BLOCKED", "ERASED", "SUBJECTS",
                    "RECIPIENTS"});
           for (const auto& k : reg.at("kinds")) {
             auto period = [&k](const char* name) -> std::string {
               if (k.at("retention").is_null()) return "-";
               const std::string p = k.at("retention").at(name);
               return p.empty() ? "-" : p;
             };
             std::string fields;
             for (const auto& f : k.at("field_names")) {
               if (!fields.empty()) fields += ",";
               fields += f.get<std::string>();
             }
             std::string recipients;
             for (const auto& r : k.at("recipients")) {
               if (!recipients.empty()) recipients += ",";
               recipients += r.at("principal").get<std::string>();
             }
             const auto& n = k.at("records");
             t.Add({k.at("kind"), period("close_after"), period("block_after"),
                    period("erase_after"), period("history_after"),
                    fields.empty() ? "-" : fields,
                    std::to_string(n.at("active").get<uint64_t>()),
                    std::to_string(n.at("closed").get<uint64_t>()),
                    std::to_string(n.at("blocked").get<uint64_t>()),
                    std::to_string(n.at("erased").get<uint64_t>()),
                    std::to_string(k.at("subjects").get<uint64_t>()),
                    recipients.empty() ? "-" : recipients});
           }
           t.Print();
           // What the HTML and JSON say too (helper-129: the table left
           // out the unreadable records, and the security measures the
           // man page promises).
           if (const uint64_t unreadable =
                   reg.value("unreadable_records", uint64_t{0});
               unreadable != 0) {
             std::cout << "records that could not be read, counted in no "
                          "kind: "
                       << unreadable << "\n";
           }
           if (reg.contains("security")) {
             const auto& s = reg.at("security");
             std::string keks;
             for (const auto& v : s.at("kek_versions")) {
               if (!keks.empty()) keks += ",";
               keks += std::to_string(v.get<uint64_t>());
             }
             std::cout << "\nSecurity measures\n";
             Table security({"MEASURE", "VALUE"});
             security.Add({"encryption", s.at("encryption")});
             security.Add(
                 {"format version",
                  std::to_string(s.at("format_version").get<uint64_t>())});
             security.Add({"key-encryption key versions", keks});
             security.Add(
                 {"deadline bucket (s)",
                  std::to_string(
                      s.at("deadline_bucket_seconds").get<uint64_t>())});
             security.Add(
                 {"compaction after erasure",
                  s.at("compact_after_erasure").get<bool>() ? "yes" : "no"});
             security.Add(
                 {"erasure compaction delay (s)",
                  std::to_string(s.at("erasure_compaction_delay_seconds")
                                     .get<uint64_t>())});
             security.Add(
                 {"backup retention (s)",
                  std::to_string(
                      s.at("backup_retention_seconds").get<uint64_t>())});
             security.Print();
           }
           for (const auto& k : reg.at("kinds")) {
             if (k.value("retention_unauthenticated", false)) {
               std::cout << "the retention policy of kind '"
                         << Printable(k.at("kind").get<std::string>())
                         << "' failed to authenticate: set it again (custos "
                            "policy set)\n";
             }
           }
         }});
  }
}

}  // namespace custos::cli
