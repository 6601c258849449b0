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
  const size_t capacity_;
  mutable std::mutex mu_;
  Lru lru_;  // Most recently used first.
  std::unordered_map<std::string, Lru::iterator> index_;
  Counts counts_;  // Guarded by mu_.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_KEY_CACHE_H_
