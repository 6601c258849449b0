// custos keys rotate-master|rotate-kek|versions; custos backup DIR, backup
// verify|kit|expire-keys; custos restore (offline: the server is stopped
// and the tool opens the new data directory itself).

#include <filesystem>
#include <iostream>
#include <memory>

#include "base/clock.h"
#include "base/time_text.h"
#include "crypto/master_key.h"
#include "storage/engine.h"
#include "tools/cli.h"

namespace custos::cli {
namespace {

// Paths go to the server, which runs elsewhere: they must be absolute.
std::string ServerPath(const std::string& path, std::string_view flag) {
  if (!std::filesystem::path(path).is_absolute())
    throw UsageError(std::string(flag) +
                     ": an absolute path on the server's host");
  return path;
}

nlohmann::json FilesJson(capnp::List<rpc::BackupFile>::Reader files) {
  nlohmann::json all = nlohmann::json::array();
  for (auto f : files)
    all.push_back({{"name", Str(f.getName())},
                   {"size", f.getSize()},
                   {"blake2b", Str(f.getBlake2bHex())}});
  return all;
}

void PrintFiles(capnp::List<rpc::BackupFile>::Reader files) {
  Table t({"FILE", "BYTES", "BLAKE2B"});
  for (auto f : files)
    t.Add({Str(f.getName()), std::to_string(f.getSize()),
           Str(f.getBlake2bHex())});
  t.Print();
}

}  // namespace

void AddKeyVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  auto* keys = app.add_subcommand("keys", "key rotation (admins)");
  keys->require_subcommand(1);
  {
    auto file = std::make_shared<std::string>();
    auto* cmd = keys->add_subcommand(
        "rotate-master",
        "rewrap the keyring under a new master key, read by the server from "
        "a key file on its host (mode 0600); afterwards the old master key "
        "opens nothing\n"
        "example: custos keys rotate-master --key-file "
        "/var/lib/custos/keys/master.key.new (packaged; embedded: beside "
        "custos-master.key)");
    cmd->add_option("--key-file", *file, "absolute path on the server")
        ->required();
    verbs.push_back({cmd, [file](Connection& c) {
                       // Checked before the server is reached (exit 2).
                       const std::string key_file =
                           ServerPath(*file, "--key-file");
                       Remote([&] {
                         auto req = c.Admin().rotateMasterKeyRequest();
                         req.setKeyFile(key_file);
                         req.send().wait(c.wait());
                       });
                       std::cout
                           << "master key rotated: from now on only the new "
                              "key opens the store (put it where custosd "
                              "reads its key before the next start); keep "
                              "the old one until the last backup taken "
                              "before this rotation has aged out (at most "
                              "the backup retention), then destroy it\n";
                     }});
  }
  {
    struct Args {
      uint64_t batch = 1000;
      Output out;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = keys->add_subcommand(
        "rotate-kek",
        "start or resume a key-encryption-key rotation and run it to the "
        "end: every subject's data key is rewrapped, in batches\n"
        "example: custos keys rotate-kek --batch 1000");
    cmd->add_option("--batch", a->batch,
                    "keys per batch (one synchronous write): 1 to " +
                        std::to_string(kMaxKekBatchSize))
        ->capture_default_str()
        ->check(Decimal(5))
        ->check(CLI::Range(uint64_t{1}, uint64_t{kMaxKekBatchSize}));
    AddJsonFlag(*cmd, a->out);
    verbs.push_back(
        {cmd, [a](Connection& c) {
           uint64_t total = 0;
           uint32_t version = 0;
           Remote([&] {
             auto admin = c.Admin();
             bool complete = false;
             while (!complete) {
               auto req = admin.rotateKekRequest();
               req.setBatchSize(a->batch);
               req.setMaxKeys(0);
               auto r = req.send().wait(c.wait());
               total += r.getRewrapped();
               version = r.getKekVersion();
               complete = r.getComplete();
             }
           });
           if (a->out.json)
             return PrintJson({{"kek_version", version}, {"rewrapped", total}});
           std::cout << "key-encryption key version " << version << ": "
                     << total << " data keys rewrapped\n";
         }});
  }
  {
    auto out = std::make_shared<Output>();
    auto* cmd =
        keys->add_subcommand("versions",
                             "the key-encryption key versions still in use\n"
                             "example: custos keys versions");
    AddJsonFlag(*cmd, *out);
    verbs.push_back({cmd, [out](Connection& c) {
                       Remote([&] {
                         auto r = c.Admin().kekVersionsRequest().send().wait(
                             c.wait());
                         nlohmann::json v = nlohmann::json::array();
                         for (uint32_t x : r.getVersions()) v.push_back(x);
                         if (out->json) return PrintJson(v);
                         for (uint32_t x : r.getVersions())
                           std::cout << x << "\n";
                       });
                     }});
  }
}

void AddBackupVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  auto* backup = app.add_subcommand(
      "backup",
      "back up the store into a new directory on the server's host\n"
      "example: custos backup /var/backups/custos/2027-01-31");
  {
    struct Args {
      std::string dir;
      Output out;
    };
    auto a = std::make_shared<Args>();
    backup->add_option("dir", a->dir, "new directory (absolute, server host)");
    AddJsonFlag(*backup, a->out);
    auto* verify = backup->add_subcommand(
        "verify",
        "check a backup's files against its manifest (sizes, checksums) and "
        "their framing, without keys and without restoring it (whether its "
        "key still lives and its contents open, only a restore tells)\n"
        "example: custos backup verify /var/backups/custos/x");
    auto vdir = std::make_shared<std::string>();
    auto vout = std::make_shared<Output>();
    verify->add_option("dir", *vdir, "backup directory")->required();
    AddJsonFlag(*verify, *vout);
    auto* kit = backup->add_subcommand(
        "kit",
        "write the restore kit (the erasure ledger a restore re-applies) to "
        "a new file on the server's host\n"
        "example: custos backup kit /var/backups/custos/kit-2027-01-31");
    auto kpath = std::make_shared<std::string>();
    kit->add_option("path", *kpath, "new file (absolute)")->required();
    auto* expire = backup->add_subcommand(
        "expire-keys",
        "destroy the keys of backups older than the backup retention\n"
        "example: custos backup expire-keys");
    verbs.push_back(
        {backup, [a](Connection& c) {
           if (a->dir.empty()) throw UsageError("backup: give a directory");
           const std::string dir = ServerPath(a->dir, "dir");
           Remote([&] {
             auto req = c.Admin().backupRequest();
             req.setDir(dir);
             auto response = req.send().wait(c.wait());
             auto r = response.getReport();
             if (a->out.json) {
               return PrintJson({{"backup_id", Str(r.getBackupId())},
                                 {"created", TimeJson(r.getCreatedMicros())},
                                 {"records_entries", r.getRecordsEntries()},
                                 {"keystore_entries", r.getKeystoreEntries()},
                                 {"files", FilesJson(r.getFiles())}});
             }
             std::cout << "backup " << Str(r.getBackupId()) << " of "
                       << r.getRecordsEntries() << " records entries and "
                       << r.getKeystoreEntries() << " keystore entries\n";
             PrintFiles(r.getFiles());
           });
         }});
    verbs.push_back(
        {verify, [vdir, vout](Connection& c) {
           const std::string dir = ServerPath(*vdir, "dir");
           Remote([&] {
             auto req = c.Admin().verifyBackupRequest();
             req.setDir(dir);
             auto response = req.send().wait(c.wait());
             auto v = response.getVerification();
             if (vout->json) {
               return PrintJson({{"backup_id", Str(v.getBackupId())},
                                 {"format_version", v.getFormatVersion()},
                                 {"created", TimeJson(v.getCreatedMicros())},
                                 {"records_chunks", v.getRecordsChunks()},
                                 {"keystore_chunks", v.getKeystoreChunks()},
                                 {"files", FilesJson(v.getFiles())}});
             }
             std::cout << "backup " << Str(v.getBackupId())
                       << " verifies (format " << v.getFormatVersion() << ")\n";
             PrintFiles(v.getFiles());
           });
         }});
    verbs.push_back({kit, [kpath](Connection& c) {
                       const std::string path = ServerPath(*kpath, "path");
                       Remote([&] {
                         auto req = c.Admin().exportRestoreKitRequest();
                         req.setPath(path);
                         req.send().wait(c.wait());
                       });
                       std::cout << "restore kit in " << *kpath << "\n";
                     }});
    verbs.push_back(
        {expire, [](Connection& c) {
           Remote([&] {
             auto r = c.Admin().expireBackupKeysRequest().send().wait(c.wait());
             std::cout << r.getExpired() << " backup keys destroyed\n";
           });
         }});
  }
  {
    struct Args {
      std::string dir, kit, data_dir, key_file, admin = "admin";
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "restore",
        "OFFLINE, on the server's host: restore a backup into a new data "
        "directory, re-applying the erasures made since, up to when the "
        "restore kit was written (use the newest kit); then start custosd "
        "on it\n"
        "example: custos restore /var/backups/custos/2027-01-31 --kit "
        "/var/backups/custos/kit --data-dir /var/lib/custos-new "
        "--master-key-file /etc/custos/master.key");
    cmd->add_option("dir", a->dir, "backup directory")->required();
    cmd->add_option("--kit", a->kit, "restore kit file")->required();
    cmd->add_option("--data-dir", a->data_dir, "new, empty data directory")
        ->required();
    cmd->add_option("--master-key-file", a->key_file,
                    "the master key (mode 0600)")
        ->required();
    cmd->add_option("--admin", a->admin,
                    "an admin of the backed-up store, named in the restore "
                    "event")
        ->capture_default_str();
    verbs.push_back(Verb{
        cmd, std::function<void()>([a] {
          auto master = crypto::LoadMasterKeyFile(a->key_file);
          if (!master) throw Failure(master.error().ToString());
          SystemClock clock;
          Options options;
          options.data_dir = a->data_dir;
          options.clock = &clock;
          // What the kit re-applies ends when it was
          // written: said before anything is restored.
          auto kit = Engine::InspectRestoreKit(a->kit, *master);
          if (!kit) throw Failure(kit.error().ToString());
          std::cout << "restore kit written " << FormatTimestamp(kit->written)
                    << ": erasures made after it are not "
                       "in it and are not re-applied (only what falls due "
                       "by the schedule is, by the restored store's "
                       "sweeps)\n";
          Status s = Engine::Restore(a->dir, options, std::move(*master),
                                     a->kit, a->admin);
          if (!s.ok()) throw Failure(s.ToString());
          std::cout << "restored into " << a->data_dir << "\n";
        })});
  }
}

}  // namespace custos::cli
