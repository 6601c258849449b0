#include "storage/policies.h"

#include <mutex>

#include "crypto/keyed_hash.h"
#include "storage/codec.h"
#include "storage/events.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "storage/limits.h"

namespace custos {

namespace {

constexpr std::string_view kPolicyMacTag{"custos-policy-v1\0", 17};

crypto::Digest PolicyMac(const crypto::SecretKey& mac_key, std::string_view key,
                         std::string_view encoded) {
  return crypto::NamedMac(mac_key, kPolicyMacTag, key, encoded);
}

}  // namespace

std::string Policies::StoredValue(const crypto::SecretKey& mac_key,
                                  const RetentionPolicy& policy,
                                  int64_t set_at_micros) {
  std::string value = codec::EncodePolicy(policy, set_at_micros);
  value.append(
      AsStringView(PolicyMac(mac_key, keys::Policy(policy.kind), value)));
  return value;
}

Result<std::map<std::string, std::optional<RetentionPolicy>>>
Policies::ReadStored(std::map<std::string, int64_t>* set_at) const {
  std::map<std::string, std::optional<RetentionPolicy>> stored;
  CUSTOS_RETURN_IF_ERROR(store_.Scan(
      keys::kPolicyPrefix, {}, [&](std::string_view key, std::string_view v) {
        const std::string kind(key.substr(keys::kPolicyPrefix.size()));
        std::optional<RetentionPolicy>& out = stored[kind];
        if (v.size() <= crypto::kDigestSize) return true;
        const std::string_view encoded =
            v.substr(0, v.size() - crypto::kDigestSize);
        if (!crypto::ConstantTimeEquals(
                PolicyMac(mac_key_, key, encoded),
                AsBytes(v.substr(v.size() - crypto::kDigestSize)))) {
          return true;
        }
        int64_t set_at_micros = 0;
        auto policy = codec::DecodePolicy(encoded, &set_at_micros);
        if (policy.has_value() && policy->kind == kind) {
          out = std::move(*policy);
          if (set_at != nullptr) (*set_at)[kind] = set_at_micros;
        }
        return true;
      }));
  return stored;
}

Status Policies::Load() {
  std::map<std::string, int64_t> set_at;
  auto stored = ReadStored(&set_at);
  if (!stored) return stored.error();
  std::map<std::string, InUse> by_kind;
  std::set<std::string> unauthenticated;
  for (auto& [kind, policy] : *stored) {
    if (policy) {
      by_kind[kind] = InUse{std::move(*policy), set_at[kind]};
    } else {
      unauthenticated.insert(kind);
    }
  }
  std::unique_lock write(mu_);
  by_kind_ = std::move(by_kind);
  unauthenticated_ = std::move(unauthenticated);
  return Status::Ok();
}

void Policies::AddDefaults(leveldb::WriteBatch& batch,
                           const crypto::SecretKey& mac_key) {
  for (const RetentionPolicy& policy : DefaultPolicies()) {
    batch.Put(keys::Policy(policy.kind), StoredValue(mac_key, policy));
  }
}

Status Policies::Set(const PrincipalInfo& admin, const RetentionPolicy& policy,
                     Timestamp at, const InForceFn& in_force) {
  CUSTOS_RETURN_IF_ERROR(ValidatePolicy(policy));
  WriteLock lock = store_.Lock();
  {
    // Under the write lock: no other Set adds a kind meanwhile.
    std::shared_lock read(mu_);
    const bool known = by_kind_.contains(policy.kind) ||
                       unauthenticated_.contains(policy.kind);
    if (!known &&
        by_kind_.size() + unauthenticated_.size() >= kMaxPolicyKinds) {
      return Status::ResourceExhausted(
          "a store holds at most " + std::to_string(kMaxPolicyKinds) +
          " retention policy kinds; this kind would be one more");
    }
  }
  leveldb::WriteBatch batch;
  std::vector<Event> written;
  Timestamp when = at;
  if (in_force) CUSTOS_RETURN_IF_ERROR(in_force(lock, batch, written, when));
  batch.Put(keys::Policy(policy.kind),
            StoredValue(mac_key_, policy, ToMicros(when)));
  written.push_back(events::PolicyEvent(admin, policy, when));
  auto ticket = store_.Apply(lock, batch, written, "storing policy");
  if (!ticket) return ticket.error();
  {
    std::unique_lock write(mu_);
    by_kind_[policy.kind] = InUse{policy, ToMicros(when)};
    unauthenticated_.erase(policy.kind);
  }
  lock.Unlock();
  return store_.WaitDurable(*ticket);
}

std::vector<RetentionPolicy> Policies::List(
    std::vector<int64_t>* set_at) const {
  std::shared_lock read(mu_);
  std::vector<RetentionPolicy> out;
  if (set_at != nullptr) set_at->clear();
  for (const auto& [kind, in_use] : by_kind_) {
    out.push_back(in_use.policy);
    if (set_at != nullptr) set_at->push_back(in_use.set_at);
  }
  return out;
}

Result<std::optional<RetentionPolicy>> Policies::For(const std::string& kind,
                                                     int64_t* set_at) const {
  std::shared_lock read(mu_);
  if (unauthenticated_.contains(kind)) {
    return Fail(Status::DataLoss(
        "the stored retention policy of kind '" + kind +
        "' failed to authenticate: set it again (custos policy set)"));
  }
  auto it = by_kind_.find(kind);
  if (it == by_kind_.end()) return std::optional<RetentionPolicy>();
  if (set_at != nullptr) *set_at = it->second.set_at;
  return std::optional<RetentionPolicy>(it->second.policy);
}

std::vector<std::string> Policies::Unauthenticated() const {
  std::shared_lock read(mu_);
  return {unauthenticated_.begin(), unauthenticated_.end()};
}

}  // namespace custos
