// The cache of unwrapped subject keys: bounded, least recently used first
// out, never caching "no such key" or an error, and never letting a load
// that raced an Evict() put the evicted key back.

#include "storage/key_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "crypto/secret_key.h"

namespace custos {
namespace {

SharedKey NewKey() {
  return std::make_shared<const crypto::SecretKey>(
      crypto::SecretKey::Generate());
}

// A loader over a fixed map of keys that counts its calls; a subject not in
// the map has no key (nullptr).
class CountingLoader {
 public:
  void Add(const std::string& subject_id, SharedKey key) {
    keys_[subject_id] = std::move(key);
  }
  void Remove(const std::string& subject_id) { keys_.erase(subject_id); }
  SharedKey Key(const std::string& subject_id) const {
    return keys_.at(subject_id);
  }
  int calls(const std::string& subject_id) const {
    auto it = calls_.find(subject_id);
    return it == calls_.end() ? 0 : it->second;
  }
  KeyCache::Loader AsLoader() {
    return [this](const std::string& id) -> Result<SharedKey> {
      ++calls_[id];
      auto it = keys_.find(id);
      if (it == keys_.end()) return SharedKey();
      return it->second;
    };
  }

 private:
  std::map<std::string, SharedKey> keys_;
  std::map<std::string, int> calls_;
};

class KeyCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* id : {"s-a", "s-b", "s-c", "s-d"})
      source_.Add(id, NewKey());
    loader_ = source_.AsLoader();
  }

  // Loads `id` and asserts it came back as the source's key.
  void Load(KeyCache& cache, const std::string& id) {
    auto key = cache.GetOrLoad(id, loader_);
    ASSERT_TRUE(key.has_value()) << key.error().ToString();
    ASSERT_EQ(*key, source_.Key(id));
  }

  CountingLoader source_;
  KeyCache::Loader loader_;
};

TEST_F(KeyCacheTest, LoadsOnceThenServesFromCache) {
  KeyCache cache(4);
  Load(cache, "s-a");
  Load(cache, "s-a");
  Load(cache, "s-a");
  EXPECT_EQ(source_.calls("s-a"), 1);
  EXPECT_EQ(cache.size(), 1u);
}

TEST_F(KeyCacheTest, CountsHitsAndMisses) {
  KeyCache cache(1);
  Load(cache, "s-a");                              // Miss.
  Load(cache, "s-a");                              // Hit.
  Load(cache, "s-b");                              // Miss; s-a out.
  Load(cache, "s-a");                              // Miss.
  auto none = cache.GetOrLoad("s-none", loader_);  // Miss, not cached.
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(*none, nullptr);
  const KeyCache::Counts counts = cache.counts();
  EXPECT_EQ(counts.hits, 1u);
  EXPECT_EQ(counts.misses, 4u);
}

TEST_F(KeyCacheTest, SizeNeverExceedsCapacity) {
  KeyCache cache(2);
  Load(cache, "s-a");
  Load(cache, "s-b");
  EXPECT_EQ(cache.size(), 2u);
  Load(cache, "s-c");
  EXPECT_EQ(cache.size(), 2u);
  Load(cache, "s-d");
  EXPECT_EQ(cache.size(), 2u);
}

TEST_F(KeyCacheTest, LeastRecentlyLoadedIsEvictedFirst) {
  KeyCache cache(2);
  Load(cache, "s-a");
  Load(cache, "s-b");
  Load(cache, "s-c");  // Evicts s-a.

  Load(cache, "s-b");
  Load(cache, "s-c");
  EXPECT_EQ(source_.calls("s-b"), 1);
  EXPECT_EQ(source_.calls("s-c"), 1);
  Load(cache, "s-a");
  EXPECT_EQ(source_.calls("s-a"), 2);
}

TEST_F(KeyCacheTest, GetRefreshesRecency) {
  KeyCache cache(2);
  Load(cache, "s-a");
  Load(cache, "s-b");
  Load(cache, "s-a");  // A hit: s-a becomes the most recently used.
  Load(cache, "s-c");  // So s-b, not s-a, is evicted.

  Load(cache, "s-a");
  EXPECT_EQ(source_.calls("s-a"), 1);
  Load(cache, "s-b");
  EXPECT_EQ(source_.calls("s-b"), 2);
}

TEST_F(KeyCacheTest, CapacityOneKeepsOnlyTheLastKey) {
  KeyCache cache(1);
  Load(cache, "s-a");
  Load(cache, "s-b");
  EXPECT_EQ(cache.size(), 1u);
  Load(cache, "s-b");
  EXPECT_EQ(source_.calls("s-b"), 1);
  Load(cache, "s-a");
  EXPECT_EQ(source_.calls("s-a"), 2);
}

TEST_F(KeyCacheTest, MissingKeyIsNotCached) {
  KeyCache cache(4);
  source_.Remove("s-a");

  auto first = cache.GetOrLoad("s-a", loader_);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, nullptr);
  EXPECT_EQ(cache.size(), 0u);

  auto second = cache.GetOrLoad("s-a", loader_);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(*second, nullptr);
  EXPECT_EQ(source_.calls("s-a"), 2);
}

TEST_F(KeyCacheTest, KeyFoundAfterAMissIsCached) {
  KeyCache cache(4);
  KeyCache::Loader missing = [](const std::string&) -> Result<SharedKey> {
    return SharedKey();
  };
  auto miss = cache.GetOrLoad("s-a", missing);
  ASSERT_TRUE(miss.has_value());
  EXPECT_EQ(*miss, nullptr);

  Load(cache, "s-a");
  Load(cache, "s-a");
  EXPECT_EQ(source_.calls("s-a"), 1);
  EXPECT_EQ(cache.size(), 1u);
}

TEST_F(KeyCacheTest, LoaderErrorIsReturnedAndNotCached) {
  KeyCache cache(4);
  int failing_calls = 0;
  KeyCache::Loader failing = [&](const std::string&) -> Result<SharedKey> {
    ++failing_calls;
    return Fail(Status::DataLoss("corrupt stored wrapped key"));
  };

  auto first = cache.GetOrLoad("s-a", failing);
  ASSERT_FALSE(first.has_value());
  EXPECT_EQ(first.error().code(), StatusCode::kDataLoss);
  EXPECT_EQ(first.error().message(), "corrupt stored wrapped key");
  EXPECT_EQ(cache.size(), 0u);

  auto second = cache.GetOrLoad("s-a", failing);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), StatusCode::kDataLoss);
  EXPECT_EQ(failing_calls, 2);

  // The error left nothing behind: a working loader is asked next.
  Load(cache, "s-a");
  EXPECT_EQ(source_.calls("s-a"), 1);
}

TEST_F(KeyCacheTest, EvictRemovesTheKey) {
  KeyCache cache(4);
  Load(cache, "s-a");
  Load(cache, "s-b");
  cache.Evict("s-a");
  EXPECT_EQ(cache.size(), 1u);

  Load(cache, "s-a");
  EXPECT_EQ(source_.calls("s-a"), 2);
  Load(cache, "s-b");
  EXPECT_EQ(source_.calls("s-b"), 1);
}

TEST_F(KeyCacheTest, EvictOfAnUncachedSubjectChangesNothing) {
  KeyCache cache(4);
  Load(cache, "s-a");
  cache.Evict("s-z");
  EXPECT_EQ(cache.size(), 1u);
  Load(cache, "s-a");
  EXPECT_EQ(source_.calls("s-a"), 1);
}

TEST_F(KeyCacheTest, EvictedSubjectWithoutKeyLoadsAsNull) {
  KeyCache cache(4);
  Load(cache, "s-a");
  // The subject is shredded: its key is gone from the store, then evicted.
  source_.Remove("s-a");
  cache.Evict("s-a");

  auto key = cache.GetOrLoad("s-a", loader_);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(*key, nullptr);
}

TEST_F(KeyCacheTest, PutIsServedWithoutLoading) {
  KeyCache cache(4);
  SharedKey created = NewKey();
  cache.Put("s-new", created);
  EXPECT_EQ(cache.size(), 1u);

  auto key = cache.GetOrLoad("s-new", loader_);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(*key, created);
  EXPECT_EQ(source_.calls("s-new"), 0);
}

TEST_F(KeyCacheTest, PutReplacesTheCachedKey) {
  KeyCache cache(4);
  Load(cache, "s-a");
  SharedKey replacement = NewKey();
  cache.Put("s-a", replacement);
  EXPECT_EQ(cache.size(), 1u);

  auto key = cache.GetOrLoad("s-a", loader_);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(*key, replacement);
  EXPECT_EQ(source_.calls("s-a"), 1);
}

TEST_F(KeyCacheTest, PutRespectsCapacityAndRecency) {
  KeyCache cache(2);
  Load(cache, "s-a");
  Load(cache, "s-b");
  cache.Put("s-a", source_.Key("s-a"));  // s-a becomes the most recent.
  cache.Put("s-c", source_.Key("s-c"));  // So s-b is evicted.
  EXPECT_EQ(cache.size(), 2u);

  Load(cache, "s-a");
  EXPECT_EQ(source_.calls("s-a"), 1);
  Load(cache, "s-b");
  EXPECT_EQ(source_.calls("s-b"), 2);
}

TEST_F(KeyCacheTest, ClearEmptiesTheCache) {
  KeyCache cache(4);
  Load(cache, "s-a");
  Load(cache, "s-b");
  cache.Clear();
  EXPECT_EQ(cache.size(), 0u);
  Load(cache, "s-a");
  EXPECT_EQ(source_.calls("s-a"), 2);
}

TEST_F(KeyCacheTest, EvictedKeyStaysUsableByItsHolder) {
  KeyCache cache(4);
  std::array<uint8_t, crypto::SecretKey::kSize> expected{};
  {
    auto generated = crypto::SecretKey::Generate();
    std::ranges::copy(generated.bytes(), expected.begin());
    cache.Put("s-a",
              std::make_shared<const crypto::SecretKey>(std::move(generated)));
  }
  auto held = cache.GetOrLoad("s-a", loader_);
  ASSERT_TRUE(held.has_value());
  ASSERT_NE(*held, nullptr);
  EXPECT_EQ(held->use_count(), 2);  // The cache's and ours.

  cache.Evict("s-a");
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(held->use_count(), 1);  // The cache let go; ours keeps it alive.
  ASSERT_FALSE((*held)->empty());
  EXPECT_TRUE(std::ranges::equal((*held)->bytes(), expected));
}

TEST_F(KeyCacheTest, KeyPushedOutByCapacityStaysUsableByItsHolder) {
  KeyCache cache(1);
  auto held = cache.GetOrLoad("s-a", loader_);
  ASSERT_TRUE(held.has_value());
  ASSERT_NE(*held, nullptr);
  Load(cache, "s-b");  // Pushes s-a out.
  EXPECT_EQ(cache.size(), 1u);
  // Only the holder and the loader's source still own the key.
  EXPECT_EQ(held->use_count(), 2);
  EXPECT_TRUE((*held)->Equals(*source_.Key("s-a")));
}

// Several threads load keys while others evict them. A subject being
// evicted is first marked dead (its loader returns nullptr from then on, as
// for a shredded subject). After Evict() returns, no load that started
// before the eviction may have put the key back, so the evicting thread's
// own GetOrLoad must see nullptr. The loader sleeps between reading the
// flag and returning, and the evictor before looking, which widens the
// window an implementation that loaded outside its lock would lose (such
// an implementation fails this test in practically every run).
TEST(KeyCacheConcurrencyTest, LoadRacingEvictNeverRestoresTheKey) {
  constexpr int kSubjects = 16;
  constexpr int kLoaders = 3;
  constexpr int kEvictors = 2;
  constexpr int kLoaderIterations = 4000;
  constexpr int kEvictorIterations = 2000;

  std::vector<std::string> ids;
  std::vector<SharedKey> keys;
  for (int i = 0; i < kSubjects; ++i) {
    ids.push_back("s-" + std::to_string(i));
    keys.push_back(NewKey());
  }
  std::array<std::atomic<bool>, kSubjects> alive;
  for (auto& a : alive) a.store(true);
  auto index_of = [&](const std::string& id) {
    return static_cast<size_t>(std::stoi(id.substr(2)));
  };
  KeyCache::Loader loader = [&](const std::string& id) -> Result<SharedKey> {
    const size_t i = index_of(id);
    const bool live = alive[i].load();
    std::this_thread::sleep_for(std::chrono::microseconds(10));
    if (!live) return SharedKey();
    return keys[i];
  };

  KeyCache cache(8);  // Fewer slots than subjects: capacity evicts too.
  std::atomic<int> wrong_key{0};
  std::atomic<int> load_errors{0};
  std::atomic<int> restored_after_evict{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kLoaders; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < kLoaderIterations; ++n) {
        const size_t i = static_cast<size_t>(n * 7 + t * 3) % kSubjects;
        auto key = cache.GetOrLoad(ids[i], loader);
        if (!key) {
          ++load_errors;
        } else if (*key != nullptr && *key != keys[i]) {
          ++wrong_key;
        }
      }
    });
  }
  // Each evictor owns half the subjects, so no other thread revives a
  // subject between its Evict() and its check.
  for (int t = 0; t < kEvictors; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < kEvictorIterations; ++n) {
        const size_t i =
            static_cast<size_t>(t + kEvictors * (n % (kSubjects / kEvictors)));
        alive[i].store(false);
        cache.Evict(ids[i]);
        // Give a load that raced the eviction time to land before looking.
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        auto key = cache.GetOrLoad(ids[i], loader);
        if (!key) {
          ++load_errors;
        } else if (*key != nullptr) {
          ++restored_after_evict;
        }
        alive[i].store(true);
      }
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(restored_after_evict.load(), 0);
  EXPECT_EQ(wrong_key.load(), 0);
  EXPECT_EQ(load_errors.load(), 0);
  EXPECT_LE(cache.size(), 8u);
}

// size() and counts() do not wait for a load under way: custosd's event
// loop reads them for /metrics while a worker's load may wait for a KEK
// rotation's batch (a review, helper-123: a scrape froze the loop).
TEST(KeyCacheConcurrencyTest, SizeAndCountsDoNotWaitForALoad) {
  KeyCache cache(4);
  cache.Put("s-1", NewKey());
  std::atomic<bool> loading{false};
  std::atomic<bool> release{false};
  KeyCache::Loader slow = [&](const std::string&) -> Result<SharedKey> {
    loading = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return NewKey();
  };
  std::thread loader([&] { ASSERT_TRUE(cache.GetOrLoad("s-2", slow)); });
  while (!loading) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // The load holds the cache's mutex: these answer anyway, at once.
  std::atomic<bool> answered{false};
  size_t size = 0;
  KeyCache::Counts counts;
  std::thread reader([&] {
    size = cache.size();
    counts = cache.counts();
    answered = true;
  });
  for (int i = 0; i < 2000 && !answered; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const bool answered_during_load = answered;
  release = true;
  loader.join();
  reader.join();
  EXPECT_TRUE(answered_during_load);
  EXPECT_EQ(size, 1u);
  EXPECT_EQ(counts.hits, 0u);
  EXPECT_EQ(counts.misses, 1u);
  EXPECT_EQ(cache.size(), 2u);
}

}  // namespace
}  // namespace custos
