// Internal to storage/: a bounded LRU cache of unwrapped subject data keys.
//
// Keys stay in libsodium guarded memory (crypto::SecretKey); the cache hands
// out shared pointers so a key evicted while a read is decrypting with it
// lives until that read ends, then is wiped.
//
// Thread safety: all methods are thread-safe. GetOrLoad runs the loader
// under the cache's lock, so an Evict() that returns has no concurrent load
// that could put the evicted key back.

#ifndef CUSTOS_STORAGE_KEY_CACHE_H_
#define CUSTOS_STORAGE_KEY_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "base/status.h"
#include "crypto/secret_key.h"

namespace custos {

using SharedKey = std::shared_ptr<const crypto::SecretKey>;

class KeyCache {
 public:
  // Loads a key that is not cached. Returns nullptr for "no such key" (a
  // shredded subject), which is not cached.
  using Loader = std::function<Result<SharedKey>(const std::string&)>;

  // REQUIRES: capacity >= 1.
  explicit KeyCache(size_t capacity);

  Result<SharedKey> GetOrLoad(const std::string& subject_id,
                              const Loader& loader);
  // Caches a key the caller just created (so it need not be unwrapped
  // again). Replaces any cached key of the subject.
  void Put(const std::string& subject_id, SharedKey key);
  void Evict(const std::string& subject_id);
  void Clear();
  // size() and counts() take no lock: GetOrLoad holds the cache's mutex
  // while its loader reads the keystore (which may wait for a KEK
  // rotation's batch), and custosd's event loop reads them for /metrics
  // (a review, helper-123: a scrape froze the loop). Each is exact as of
  // some instant; the two need not be of the same one.
  size_t size() const;

  // GetOrLoad calls answered from the cache (hits) and by the loader
  // (misses) since construction.
  struct Counts {
    uint64_t hits = 0;
    uint64_t misses = 0;
  };
  Counts counts() const;

 private:
  using Lru = std::list<std::pair<std::string, SharedKey>>;
  // Sets size_ from lru_ (under mu_).
  void Sized() { size_.store(lru_.size(), std::memory_order_relaxed); }

  const size_t capacity_;
  mutable std::mutex mu_;
  Lru lru_;  // Most recently used first.
  std::unordered_map<std::string, Lru::iterator> index_;
  // Written under mu_, read without it.
  std::atomic<size_t> size_{0};
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_KEY_CACHE_H_
