#include "storage/principals.h"

#include <algorithm>
#include <mutex>

#include "crypto/keyed_hash.h"
#include "storage/codec.h"
#include "storage/events.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"

namespace custos {

Principals::Principals(Store& store, Keystore& ledger,
                       crypto::SecretKey credential_key, const Limits& limits,
                       const Clock& clock)
    : store_(store),
      ledger_(ledger),
      credential_key_(std::move(credential_key)),
      limits_(limits),
      clock_(clock) {}

Status Principals::Load() {
  Status decoded;
  CUSTOS_RETURN_IF_ERROR(store_.Scan(keys::kPrincipalPrefix, {},
                                     [&](std::string_view, std::string_view v) {
                                       auto p = codec::DecodePrincipal(v);
                                       if (!p) {
                                         decoded = p.error();
                                         return false;
                                       }
                                       by_id_[p->info.id] = p->info;
                                       return true;
                                     }));
  return decoded;
}

Result<NewPrincipal> Principals::Bootstrap(std::string_view id,
                                           std::string_view display_name) {
  WriteLock lock = store_.Lock();
  {
    std::shared_lock read(mu_);
    if (!by_id_.empty()) {
      return Fail(Status::FailedPrecondition(
          "the store already has principals; ask an admin"));
    }
  }
  return AddLocked(std::move(lock), nullptr, id, display_name, {Role::kAdmin},
                   false);
}

Result<NewPrincipal> Principals::Recover(std::string_view id,
                                         std::string_view display_name) {
  WriteLock lock = store_.Lock();
  {
    std::shared_lock read(mu_);
    if (by_id_.empty()) {
      return Fail(Status::FailedPrecondition(
          "the store has no principals: it is new, or not the store meant"));
    }
  }
  return AddLocked(std::move(lock), nullptr, id, display_name, {Role::kAdmin},
                   false, /*recovered=*/true);
}

Result<NewPrincipal> Principals::Add(const PrincipalInfo& admin,
                                     std::string_view id,
                                     std::string_view display_name,
                                     const std::vector<Role>& roles,
                                     bool redacted) {
  return AddLocked(store_.Lock(), &admin, id, display_name, roles, redacted);
}

Result<NewPrincipal> Principals::AddLocked(WriteLock lock,
                                           const PrincipalInfo* by,
                                           std::string_view id,
                                           std::string_view display_name,
                                           const std::vector<Role>& roles,
                                           bool redacted, bool recovered) {
  CUSTOS_RETURN_IF_ERROR(CheckId(id, "a principal id", limits_.max_id_length));
  CUSTOS_RETURN_IF_ERROR(CheckLength(display_name, "a display name",
                                     limits_.max_display_name_length, false));
  if (roles.empty()) {
    return Fail(Status::InvalidArgument("a principal needs at least one role"));
  }
  const auto has = [&](Role r) {
    return std::find(roles.begin(), roles.end(), r) != roles.end();
  };
  // "Admin never reads personal data" is a cap in access.h; a principal
  // that is also an officer or auditor would hold both the cap and the
  // roles that exist to read personal data. Refused, not resolved.
  if (has(Role::kAdmin) && (has(Role::kOfficer) || has(Role::kAuditor))) {
    return Fail(Status::InvalidArgument(
        "the admin role cannot be combined with officer or auditor: an admin "
        "never reads personal data"));
  }
  // Officers and auditors exist to read personal data (for a purpose, for
  // a subject's report); a redacted principal never receives any.
  if (redacted && (has(Role::kOfficer) || has(Role::kAuditor))) {
    return Fail(Status::InvalidArgument(
        "a redacted principal cannot be an officer or an auditor: it never "
        "reads personal data"));
  }
  if (Get(id)) return Fail(Status::AlreadyExists("principal id is taken"));
  NewPrincipal created;
  created.token = crypto::GenerateToken();
  auto hash = crypto::HashToken(credential_key_, created.token);
  if (!hash) return Fail(hash.error());
  codec::StoredPrincipal stored;
  stored.info.id = std::string(id);
  stored.info.display_name = std::string(display_name);
  stored.info.roles = roles;
  std::sort(stored.info.roles.begin(), stored.info.roles.end());
  stored.info.roles.erase(
      std::unique(stored.info.roles.begin(), stored.info.roles.end()),
      stored.info.roles.end());
  stored.info.redacted = redacted;
  stored.info.created_at = clock_.Now();
  stored.credential_hash.assign(hash->begin(), hash->end());

  leveldb::WriteBatch batch;
  batch.Put(keys::Principal(id), codec::EncodePrincipal(stored));
  batch.Put(keys::Credential(AsStringView(*hash)), std::string(id));
  Event event = events::PrincipalEvent(by != nullptr ? *by : stored.info,
                                       EventAction::kPrincipalCreated,
                                       stored.info, stored.info.created_at);
  if (recovered) event.fields.push_back("recovered");
  auto ticket = store_.Apply(lock, batch, {event}, "creating principal");
  if (!ticket) return Fail(ticket.error());
  {
    std::unique_lock write(mu_);
    by_id_[stored.info.id] = stored.info;
  }
  lock.Unlock();
  CUSTOS_RETURN_IF_ERROR(store_.WaitDurable(*ticket));
  created.info = stored.info;
  return created;
}

Status Principals::Revoke(const PrincipalInfo& admin, std::string_view id) {
  WriteLock lock = store_.Lock();
  auto value = store_.Get(keys::Principal(id));
  if (!value) return value.error();
  if (!*value) return Status::NotFound("principal not found");
  auto stored = codec::DecodePrincipal(**value);
  if (!stored) return stored.error();
  if (stored->info.revoked) return Status::Ok();
  if (stored->info.HasRole(Role::kAdmin)) {
    std::shared_lock read(mu_);
    size_t admins = 0;
    for (const auto& [pid, info] : by_id_) {
      if (!info.revoked && info.HasRole(Role::kAdmin)) ++admins;
    }
    if (admins <= 1) {
      return Status::FailedPrecondition(
          "the last admin cannot be revoked: nobody could manage the store");
    }
  }
  stored->info.revoked = true;
  const Timestamp now = clock_.Now();
  stored->revoked_at_micros = ToMicros(now);
  // In the ledger first: a restore of an older backup revokes it again.
  auto ledgered = ledger_.LedgerCredential(id, "", now);
  if (!ledgered) return ledgered.error();
  leveldb::WriteBatch batch;
  batch.Put(keys::Principal(id), codec::EncodePrincipal(*stored));
  batch.Delete(keys::Credential(AsStringView(stored->credential_hash)));
  auto ticket = store_.Apply(
      lock, batch,
      {events::PrincipalEvent(admin, EventAction::kPrincipalRevoked,
                              stored->info, now)},
      "revoking principal");
  if (!ticket) {
    // Not applied: the ledger must not say it was (a failed undo leaves a
    // restore revoking a principal the store kept: never the other way).
    (void)ledger_.UndoLedgerCredential(id, *ledgered);
    return ticket.error();
  }
  {
    // Revoked in memory before the lock is released: no call that starts
    // after this one can act as the principal.
    std::unique_lock write(mu_);
    by_id_[stored->info.id] = stored->info;
  }
  lock.Unlock();
  return store_.WaitDurable(*ticket);
}

Result<std::string> Principals::RotateToken(const PrincipalInfo& admin,
                                            std::string_view id) {
  WriteLock lock = store_.Lock();
  auto value = store_.Get(keys::Principal(id));
  if (!value) return Fail(value.error());
  if (!*value) return Fail(Status::NotFound("principal not found"));
  auto stored = codec::DecodePrincipal(**value);
  if (!stored) return Fail(stored.error());
  if (stored->info.revoked) {
    return Fail(Status::FailedPrecondition(
        "a revoked principal's credential cannot be replaced"));
  }
  std::string token = crypto::GenerateToken();
  auto hash = crypto::HashToken(credential_key_, token);
  if (!hash) return Fail(hash.error());
  // In the ledger first: a restore of an older backup takes the new
  // credential, not the old one.
  auto ledgered =
      ledger_.LedgerCredential(id, AsStringView(*hash), clock_.Now());
  if (!ledgered) return Fail(ledgered.error());
  leveldb::WriteBatch batch;
  // One write: from it on, the old token finds no credential entry.
  batch.Delete(keys::Credential(AsStringView(stored->credential_hash)));
  stored->credential_hash.assign(hash->begin(), hash->end());
  batch.Put(keys::Principal(id), codec::EncodePrincipal(*stored));
  batch.Put(keys::Credential(AsStringView(*hash)), std::string(id));
  auto ticket = store_.Apply(
      lock, batch,
      {events::PrincipalEvent(admin, EventAction::kCredentialRotated,
                              stored->info, clock_.Now())},
      "replacing a credential");
  if (!ticket) {
    // Not applied: a restore must keep the token that still works.
    (void)ledger_.UndoLedgerCredential(id, *ledgered);
    return Fail(ticket.error());
  }
  {
    // After the write: an actor authenticated with the old token carries
    // the old epoch and is refused from now on.
    std::unique_lock write(mu_);
    ++epochs_[std::string(id)];
  }
  lock.Unlock();
  CUSTOS_RETURN_IF_ERROR(store_.WaitDurable(*ticket));
  return token;
}

std::vector<PrincipalInfo> Principals::List(std::string_view after_id,
                                            size_t limit) const {
  std::vector<PrincipalInfo> out;
  {
    std::shared_lock read(mu_);
    for (const auto& [id, info] : by_id_) {
      if (after_id.empty() || std::string_view(id) > after_id) {
        out.push_back(info);
      }
    }
  }
  const auto by_id = [](const auto& a, const auto& b) { return a.id < b.id; };
  if (limit != 0 && out.size() > limit) {
    std::partial_sort(out.begin(), out.begin() + static_cast<ptrdiff_t>(limit),
                      out.end(), by_id);
    out.resize(limit);
  } else {
    std::sort(out.begin(), out.end(), by_id);
  }
  return out;
}

uint64_t Principals::Epoch(std::string_view id) const {
  std::shared_lock read(mu_);
  auto it = epochs_.find(std::string(id));
  return it == epochs_.end() ? 0 : it->second;
}

Result<PrincipalInfo> Principals::Authenticate(std::string_view token,
                                               uint64_t* epoch) const {
  const Status denied = Status::Unauthenticated("invalid credential");
  auto hash = crypto::HashToken(credential_key_, token);
  if (!hash) return Fail(denied);
  // Held across the lookup and the epoch's read: RotateToken bumps the
  // epoch (exclusively) only after its write replaced the credential, so
  // a token found here was current at the epoch read here.
  std::shared_lock read(mu_);
  auto id = store_.Get(keys::Credential(AsStringView(*hash)));
  // A read failure is reported as what it is, not as a bad token.
  if (!id) return Fail(id.error());
  if (!*id) return Fail(denied);
  auto it = by_id_.find(**id);
  if (it == by_id_.end() || it->second.revoked) return Fail(denied);
  if (epoch != nullptr) {
    auto e = epochs_.find(**id);
    *epoch = e == epochs_.end() ? 0 : e->second;
  }
  return it->second;
}

Result<PrincipalInfo> Principals::Get(std::string_view id) const {
  std::shared_lock read(mu_);
  auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return Fail(Status::NotFound("principal not found"));
  return it->second;
}

Result<PrincipalInfo> Principals::Caller(std::string_view id) const {
  auto p = Get(id);
  if (!p || p->revoked) {
    return Fail(Status::Unauthenticated("principal is unknown or revoked"));
  }
  return p;
}

Result<PrincipalInfo> Principals::RequireRole(std::string_view id,
                                              Role role) const {
  return RequireAnyRole(id, {role});
}

Result<PrincipalInfo> Principals::RequireAnyRole(
    std::string_view id, std::initializer_list<Role> roles) const {
  auto p = Caller(id);
  if (!p) return p;
  for (Role role : roles) {
    if (p->HasRole(role)) return p;
  }
  std::string names;
  for (Role role : roles) {
    if (!names.empty()) names += " or ";
    names += RoleName(role);
  }
  return Fail(
      Status::PermissionDenied("this call needs the " + names + " role"));
}

bool Principals::IsActive(std::string_view id) const {
  auto p = Get(id);
  return p && !p->revoked;
}

}  // namespace custos
