// The cost of listing a principal's visible records against the size of
// the store (issue 16, "Growth"): a page of 100 from a random cursor, in
// one store grown in place from 10,000 to 100,000 to 1,000,000 records.
// Ten owners create the records in turn, so the listing principal (the
// first owner) sees one record in ten: the page comes from its access
// index, among everyone else's records. Each record has one subject part
// of about 256 bytes (4 fields) and 3 attributes; subjects are a pool of
// 1,000, so every read finds its subject's key cached. Writes are not
// synced; time comes from a ManualClock. Items are records listed. After
// each growth the store is settled (compacted, synced, reopened). Run
// without random interleaving (bench/compare.py does): the store only
// grows, so shuffled repetitions would measure the larger store.

#include <benchmark/benchmark.h>
#include <leveldb/db.h>
#include <leveldb/options.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "bench/support.h"
#include "crypto/secret_key.h"
#include "storage/engine.h"
#include "storage/types.h"

namespace custos {
namespace {

using bench::Value;

constexpr int64_t kStartMicros = 1'750'000'000'000'000;  // June 2025.
constexpr int kOwners = 10;
constexpr int kSubjects = 1'000;
constexpr int kBatch = 100;  // Limits::max_batch_records' default.
constexpr uint32_t kPage = 100;

class TempDir : public bench::TempDir {
 public:
  TempDir() : bench::TempDir("custos-list-bench") {}
};

std::string Identifier(int n) { return bench::SubjectIdentifier(n); }

class Listing {
 public:
  Listing()
      : clock_(FromMicros(kStartMicros)),
        master_(crypto::SecretKey::Generate()) {
    options_.data_dir = dir_.path() + "/data";
    options_.table_reads = bench::TableReadsFromEnv();
    options_.sync_writes = false;
    options_.clock = &clock_;
    Open();
    Value(engine_->BootstrapAdmin("admin", "Admin"), "bootstrap admin");
    const Actor admin = Value(engine_->ActorFor("admin"), "admin actor");
    for (int i = 0; i < kOwners; ++i) {
      const std::string id = "owner-" + std::to_string(i);
      Value(engine_->CreatePrincipal(admin, id, id, {Role::kUser},
                                     /*redacted=*/false),
            "create owner");
      owners_.push_back(Value(engine_->ActorFor(id), "owner actor"));
    }
  }

  // Creates records, the owners in turn, until the store holds `records`;
  // then settles the store (below) if it grew.
  void GrowTo(uint64_t records) {
    if (created_ >= records) return;
    while (created_ < records) {
      const int owner = static_cast<int>((created_ / kBatch) % kOwners);
      std::vector<NewRecord> batch;
      for (int i = 0; i < kBatch; ++i) {
        const int subject = static_cast<int>((created_ + i) % kSubjects);
        NewRecord r;
        r.kind = "request";
        r.attributes = {{"status", "open"},
                        {"channel", "web-form"},
                        {"case", "c" + std::to_string(created_ + i)}};
        r.personal.push_back({Identifier(subject),
                              {{"name", "Alex Example"},
                               {"email", Identifier(subject)},
                               {"phone", "+32 470 12 34 56"},
                               {"notes", std::string(170, 'x')}}});
        batch.push_back(std::move(r));
      }
      auto ids = Value(engine_->CreateRecords(owners_[owner], batch),
                       "create records");
      if (owner == 0) mine_.insert(mine_.end(), ids.begin(), ids.end());
      created_ += kBatch;
      clock_.Advance(std::chrono::seconds(1));
    }
    Settle();
  }

  Engine& engine() { return *engine_; }
  const Actor& lister() const { return owners_[0]; }
  const std::vector<uint64_t>& mine() const { return mine_; }
  uint64_t created() const { return created_; }

 private:
  void Open() { engine_ = bench::OpenEngine(options_, master_); }

  // Closes the engine, compacts the whole records database, flushes every
  // dirty page and reopens: the pages listed then pay for the listing, not
  // for the growth's compactions and writeback (in the sixth full run the
  // first page of 1,000,000 took 5.5 times the next runs').
  void Settle() {
    engine_.reset();
    bench::CompactDatabase(options_.data_dir + "/records");
    ::sync();
    Open();
  }

  TempDir dir_;
  ManualClock clock_;
  crypto::SecretKey master_;
  Options options_;
  std::unique_ptr<Engine> engine_;
  std::vector<Actor> owners_;
  std::vector<uint64_t> mine_;  // The lister's records, ascending.
  uint64_t created_ = 0;
};

Listing& TheListing() {
  // Kept to the end of the run, then closed and its directory removed
  // (a pointer never deleted left its store in /tmp after every run).
  static Listing listing;
  return listing;
}

void BM_ListGrowth(benchmark::State& state) {
  Listing& listing = TheListing();
  listing.GrowTo(static_cast<uint64_t>(state.range(0)));
  const std::vector<uint64_t>& mine = listing.mine();
  std::mt19937_64 rng(44);
  std::uniform_int_distribution<size_t> pick(0, mine.size() - kPage - 1);
  ListQuery query;
  query.limit = kPage;
  int64_t records = 0;
  for (auto _ : state) {
    query.after_id = mine[pick(rng)];
    Result<ListPage> page =
        listing.engine().ListRecords(listing.lister(), query);
    if (!page || page->records.size() != kPage) {
      state.SkipWithError("ListRecords did not return a full page");
      break;
    }
    records += static_cast<int64_t>(page->records.size());
    benchmark::DoNotOptimize(page->records.data());
  }
  state.SetItemsProcessed(records);
  state.counters["store_records"] =
      benchmark::Counter(static_cast<double>(listing.created()));
  state.counters["visible_records"] =
      benchmark::Counter(static_cast<double>(mine.size()));
}
// In this order: the store only grows.
BENCHMARK(BM_ListGrowth)
    ->ArgName("records")
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->UseRealTime();

}  // namespace
}  // namespace custos

BENCHMARK_MAIN();
