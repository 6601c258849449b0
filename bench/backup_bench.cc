// The cost of a backup and of a KEK rotation (issue 10: "benchmarks in
// bench/RESULTS.md give the cost of a KEK rotation and a backup for stores
// of 100,000 subjects / 1,000,000 records").
//
// One store is built once, through the engine (CreateRecord, sync_writes
// off): kSubjects subjects with kRecordsPerSubject records each. Then, one
// iteration each (a second would measure a warmer cache, not a second
// store): Backup into a fresh directory, VerifyBackup of it, and a full
// RotateKek (every data key rewrapped, batches of 1000, synchronous).
//
//   ./backup_bench            100,000 subjects, 1,000,000 records
//   ./backup_bench --quick    10,000 subjects, 100,000 records

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench/support.h"
#include "storage/engine.h"

namespace custos::bench {
namespace {

int g_subjects = 100000;
int g_records_per_subject = 10;

uint64_t DirBytes(const std::string& path) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(path)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

class BackupStore {
 public:
  BackupStore()
      : dir_("custos-backup-bench"),
        clock_(FromMicros(1798761600000000)),  // 2027-01-01T00:00:00Z.
        master_(crypto::SecretKey::Generate()) {
    options_.data_dir = dir_.path() + "/data";
    options_.table_reads = bench::TableReadsFromEnv();
    options_.sync_writes = false;
    options_.clock = &clock_;
    engine_ = Value(Engine::Open(options_, Copy(master_)), "open");
    Value(engine_->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
    admin_ =
        std::make_unique<Actor>(Value(engine_->ActorFor("admin"), "admin"));
    Value(engine_->CreatePrincipal(*admin_, "user", "User", {Role::kUser},
                                   /*redacted=*/false),
          "create user");
    const Actor user = Value(engine_->ActorFor("user"), "user actor");
    const auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < g_records_per_subject; ++r) {
      for (int s = 0; s < g_subjects; ++s) {
        NewRecord rec;
        rec.kind = "request";
        rec.attributes = {{"country", "AT"}, {"type", "license"}};
        rec.personal = {
            {std::string("subject-")
                 .append(std::to_string(s))
                 .append("@example.org"),
             {{"name", std::string("Person ").append(std::to_string(s))},
              {"born", "1980"}}}};
        Value(engine_->CreateRecord(user, rec), "create record");
      }
    }
    build_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    std::fprintf(stderr, "built %d subjects, %d records in %.0f s; %.0f MB\n",
                 g_subjects, g_subjects * g_records_per_subject, build_seconds_,
                 DirBytes(options_.data_dir) / 1e6);
  }

  static crypto::SecretKey Copy(const crypto::SecretKey& k) {
    return Value(crypto::SecretKey::FromBytes(k.bytes()), "copy key");
  }

  Engine& engine() { return *engine_; }
  const Actor& admin() const { return *admin_; }
  std::string NewBackupDir() {
    return dir_.path() + "/backup-" + std::to_string(++backups_);
  }

 private:
  TempDir dir_;
  ManualClock clock_;
  crypto::SecretKey master_;
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Actor> admin_;
  double build_seconds_ = 0;
  int backups_ = 0;
};

BackupStore& Store() {
  // Lives for the process, then closed and its directory removed.
  static BackupStore store;
  return store;
}

void BM_Backup(benchmark::State& state) {
  BackupStore& store = Store();
  std::string dir;
  uint64_t bytes = 0;
  for (auto _ : state) {
    dir = store.NewBackupDir();
    auto report = Value(store.engine().Backup(store.admin(), dir), "backup");
    bytes = report.files[0].size + report.files[1].size;
  }
  state.counters["backup_MB"] = static_cast<double>(bytes) / 1e6;
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(bytes) / 1e6,
                                              benchmark::Counter::kIsRate);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_Backup)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

void BM_VerifyBackup(benchmark::State& state) {
  BackupStore& store = Store();
  const std::string dir = store.NewBackupDir();
  Value(store.engine().Backup(store.admin(), dir), "backup");
  for (auto _ : state) {
    Value(Engine::VerifyBackup(dir), "verify");
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_VerifyBackup)
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();

void BM_RotateKek(benchmark::State& state) {
  BackupStore& store = Store();
  size_t rewrapped = 0;
  for (auto _ : state) {
    KekRotationOptions options;
    options.batch_size = 1000;
    auto report =
        Value(store.engine().RotateKek(store.admin(), options), "rotate");
    if (!report.complete) Check(Status::Internal("incomplete"), "rotate");
    rewrapped = report.rewrapped;
  }
  state.counters["keys"] = static_cast<double>(rewrapped);
}
BENCHMARK(BM_RotateKek)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

}  // namespace
}  // namespace custos::bench

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      custos::bench::g_subjects = 10000;
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
