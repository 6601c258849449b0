#include "storage/key_cache.h"

namespace custos {

KeyCache::KeyCache(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

Result<SharedKey> KeyCache::GetOrLoad(const std::string& subject_id,
                                      const Loader& loader) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(subject_id);
  if (it != index_.end()) {
    hits_.fetch_add(1, std::memory_order_relaxed);
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  Result<SharedKey> loaded = loader(subject_id);
  if (!loaded || *loaded == nullptr) return loaded;
  lru_.emplace_front(subject_id, *loaded);
  index_[subject_id] = lru_.begin();
  if (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  Sized();
  return loaded;
}

void KeyCache::Put(const std::string& subject_id, SharedKey key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = index_.find(subject_id); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
  lru_.emplace_front(subject_id, std::move(key));
  index_[subject_id] = lru_.begin();
  if (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  Sized();
}

void KeyCache::Evict(const std::string& subject_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(subject_id);
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
  Sized();
}

void KeyCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  index_.clear();
  lru_.clear();
  Sized();
}

KeyCache::Counts KeyCache::counts() const {
  return {hits_.load(std::memory_order_relaxed),
          misses_.load(std::memory_order_relaxed)};
}

size_t KeyCache::size() const { return size_.load(std::memory_order_relaxed); }

}  // namespace custos
