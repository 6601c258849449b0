// Internal to storage/: the retention policies (DESIGN section 3). Owns the
// key family "pol:" and keeps every policy in memory (they are few and read
// on every change).
//
// Thread safety: thread-safe. Set takes the store's write lock.

#ifndef CUSTOS_STORAGE_POLICIES_H_
#define CUSTOS_STORAGE_POLICIES_H_

#include <leveldb/write_batch.h>

#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/retention_policy.h"
#include "storage/store.h"

namespace custos {

class Policies {
 public:
  explicit Policies(Store& store) : store_(store) {}

  // Reads every policy into memory. Errors: DataLoss, mapped LevelDB.
  Status Load();
  // Adds the shipped policies (DefaultPolicies()) to a new store's batch.
  static void AddDefaults(leveldb::WriteBatch& batch);

  // Validates and stores `policy`, replacing any of its kind, with a
  // policy_set event by `admin` at `at` (events::PolicyEvent).
  // InvalidArgument from ValidatePolicy.
  Status Set(const PrincipalInfo& admin, const RetentionPolicy& policy,
             Timestamp at);
  // Every policy, by kind.
  std::vector<RetentionPolicy> List() const;
  // The policy of `kind`, if any.
  std::optional<RetentionPolicy> For(const std::string& kind) const;

 private:
  Store& store_;
  mutable std::shared_mutex mu_;
  std::map<std::string, RetentionPolicy> by_kind_;  // Guarded by mu_.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_POLICIES_H_
