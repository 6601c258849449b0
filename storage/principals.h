// Internal to storage/: principals and their credentials (DESIGN section 1).
// Owns the key families "p:" and "c:" and keeps every principal in memory
// (they are few and read on every call).
//
// A credential is a random token of which only a keyed hash is stored.
// Authentication failures are Unauthenticated with one message, whether the
// token was malformed, unknown or revoked. Role failures of an identified
// caller are PermissionDenied.
//
// Thread safety: thread-safe. Changes take the store's write lock.

#ifndef CUSTOS_STORAGE_PRINCIPALS_H_
#define CUSTOS_STORAGE_PRINCIPALS_H_

#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/secret_key.h"
#include "storage/keystore.h"
#include "storage/limits.h"
#include "storage/store.h"
#include "storage/types.h"

namespace custos {

class Principals {
 public:
  // `store`, `ledger`, `limits` and `clock` REQUIRE: outlive this object.
  // `ledger`: where revocations and replaced credentials are recorded for
  // restores (Keystore::LedgerCredential).
  Principals(Store& store, Keystore& ledger, crypto::SecretKey credential_key,
             const Limits& limits, const Clock& clock);

  // Reads every principal into memory. Errors: DataLoss, mapped LevelDB.
  Status Load();

  // Creates the first admin, with its principal_created event (by itself).
  // FailedPrecondition once any principal exists.
  Result<NewPrincipal> Bootstrap(std::string_view id,
                                 std::string_view display_name);
  // Creates an admin in a store that has principals, for whoever holds the
  // master key (the store was opened with it) when no admin can log in: its
  // principal_created event is by itself and names `recovered`. Errors as
  // Add's; FailedPrecondition for a store without principals (a new one).
  Result<NewPrincipal> Recover(std::string_view id,
                               std::string_view display_name);
  // Creates a principal, with a principal_created event by `admin` (its id,
  // roles and whether it is redacted; never the credential). InvalidArgument
  // (id, name, no role, or admin combined with officer or auditor: an admin
  // never reads personal data, so it may not hold a role that does),
  // AlreadyExists (id taken).
  Result<NewPrincipal> Add(const PrincipalInfo& admin, std::string_view id,
                           std::string_view display_name,
                           const std::vector<Role>& roles, bool redacted);
  // Revokes, with a principal_revoked event by `admin`. NotFound for an
  // unknown id; FailedPrecondition for the last admin. Revoking a revoked
  // principal is OK, changes nothing and writes no event.
  Status Revoke(const PrincipalInfo& admin, std::string_view id);
  // Replaces the principal's credential with a new token, returned once:
  // the old token stops working when this returns. A credential_rotated
  // event by `admin` (never a token). NotFound for an unknown id;
  // FailedPrecondition for a revoked principal.
  Result<std::string> RotateToken(const PrincipalInfo& admin,
                                  std::string_view id);
  // The principals by id, those after `after_id` ("": from the first), at
  // most `limit` (0: all).
  std::vector<PrincipalInfo> List(std::string_view after_id = {},
                                  size_t limit = 0) const;

  // The principal holding `token`. Unauthenticated("invalid credential")
  // for a malformed, unknown or revoked token. `epoch`, when given,
  // receives the principal's credential epoch, read before the token is
  // looked up (so a token replaced meanwhile never yields the new epoch).
  Result<PrincipalInfo> Authenticate(std::string_view token,
                                     uint64_t* epoch = nullptr) const;
  // How many times the principal's credential was replaced since Load (0
  // for an unknown id). Actors carry the epoch they were authenticated at.
  uint64_t Epoch(std::string_view id) const;

  // NotFound for an unknown id (revoked ones are returned).
  Result<PrincipalInfo> Get(std::string_view id) const;
  // The acting principal of a call: Unauthenticated if unknown or revoked.
  Result<PrincipalInfo> Caller(std::string_view id) const;
  // Caller, then PermissionDenied unless it holds `role`.
  Result<PrincipalInfo> RequireRole(std::string_view id, Role role) const;
  // Caller, then PermissionDenied unless it holds one of `roles`.
  Result<PrincipalInfo> RequireAnyRole(std::string_view id,
                                       std::initializer_list<Role> roles) const;
  // True if `id` names an existing principal that is not revoked.
  bool IsActive(std::string_view id) const;

 private:
  // `by` null: the new principal creates itself (Bootstrap, and Recover,
  // whose event `recovered` marks).
  Result<NewPrincipal> AddLocked(WriteLock lock, const PrincipalInfo* by,
                                 std::string_view id,
                                 std::string_view display_name,
                                 const std::vector<Role>& roles, bool redacted,
                                 bool recovered = false);

  Store& store_;
  Keystore& ledger_;
  const crypto::SecretKey credential_key_;
  const Limits& limits_;
  const Clock& clock_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, PrincipalInfo> by_id_;  // Guarded by mu_.
  std::unordered_map<std::string, uint64_t> epochs_;      // Guarded by mu_.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_PRINCIPALS_H_
