// Internal to storage/: the retention policies (DESIGN section 3). Owns the
// key family "pol:" and keeps every policy in memory (they are few and read
// on every change). Each stored value is the encoded policy followed by a
// MAC of it (and its key) under the keyring's ledger key: a policy written
// into the files without that key (a history kept a day, records never
// erased) is not used (docs/storage.md, "Policies").
//
// Thread safety: thread-safe. Set takes the store's write lock.

#ifndef CUSTOS_STORAGE_POLICIES_H_
#define CUSTOS_STORAGE_POLICIES_H_

#include <leveldb/write_batch.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "crypto/secret_key.h"
#include "storage/retention_policy.h"
#include "storage/store.h"

namespace custos {

class Policies {
 public:
  // `mac_key`: the keyring's ledger key (a copy).
  Policies(Store& store, crypto::SecretKey mac_key)
      : store_(store), mac_key_(std::move(mac_key)) {}

  // Reads every policy into memory. A value that does not decode or fails
  // its MAC is not used: its kind is unauthenticated (For says so) until an
  // admin sets it again. Errors: mapped LevelDB.
  Status Load();
  // The stored policies as they are in the files now, by kind: nullopt
  // for a value that does not decode or fails its MAC (as Load reads
  // them). The caller holds the store's write lock when it must be
  // consistent with a snapshot taken under it. Errors: mapped LevelDB.
  // With `set_at`, when each of those was set (Policies::For) goes there.
  Result<std::map<std::string, std::optional<RetentionPolicy>>> ReadStored(
      std::map<std::string, int64_t>* set_at = nullptr) const;
  // Adds the shipped policies (DefaultPolicies()) to a new store's batch,
  // under `mac_key` (the keyring's ledger key).
  static void AddDefaults(leveldb::WriteBatch& batch,
                          const crypto::SecretKey& mac_key);
  // The stored value of `policy`, set at `set_at_micros`: encoded, then
  // its MAC under `mac_key`.
  static std::string StoredValue(const crypto::SecretKey& mac_key,
                                 const RetentionPolicy& policy,
                                 int64_t set_at_micros = 0);

  // Adds to a policy's write what must be written with it (under the
  // store's write lock, before the new policy is in use); its error
  // stops the change. It may set `at`, the policy_set event's time, to
  // its own "now" read under the lock, so the event is never dated before
  // the transitions it writes (helper-130).
  using InForceFn =
      std::function<Status(const WriteLock& lock, leveldb::WriteBatch& batch,
                           std::vector<Event>& events, Timestamp& at)>;
  // Validates and stores `policy`, replacing any of its kind, with a
  // policy_set event by `admin` at `at` (events::PolicyEvent). When given,
  // `in_force` is called once the change is accepted, under the write
  // lock, and what it adds is written in the same batch, its events
  // before the policy's (Engine::SetPolicy writes down there what was in
  // force under the old policy). InvalidArgument from ValidatePolicy.
  Status Set(const PrincipalInfo& admin, const RetentionPolicy& policy,
             Timestamp at, const InForceFn& in_force = nullptr);
  // Every policy in use, by kind (not the unauthenticated ones). With
  // `set_at`, when each was set goes there, in the same order
  // (microseconds; 0 as For says).
  std::vector<RetentionPolicy> List(
      std::vector<int64_t>* set_at = nullptr) const;
  // The policy of `kind`, if any. DataLoss for a kind whose stored policy
  // did not authenticate (or decode) when loaded: its records are neither
  // created nor scheduled, and a sweep skips them, until it is set again.
  // With `set_at`, when the policy returned was set goes there, read with
  // it (microseconds; authenticated with it): no deadline computed under
  // it is dated before then (RecordStore::Schedule), so a step a read
  // computes under a policy set since the step before it never lies
  // before a hold set meanwhile (helper-130). 0 for a shipped default or
  // a policy stored before 2026-12-07.
  Result<std::optional<RetentionPolicy>> For(const std::string& kind,
                                             int64_t* set_at = nullptr) const;
  // The kinds whose stored policy did not authenticate, in order.
  std::vector<std::string> Unauthenticated() const;

 private:
  Store& store_;
  const crypto::SecretKey mac_key_;
  mutable std::shared_mutex mu_;
  struct InUse {
    RetentionPolicy policy;
    int64_t set_at = 0;  // Microseconds.
  };
  std::map<std::string, InUse> by_kind_;   // Guarded by mu_.
  std::set<std::string> unauthenticated_;  // Guarded by mu_.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_POLICIES_H_
