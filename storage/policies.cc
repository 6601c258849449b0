#include "storage/policies.h"

#include <mutex>

#include "storage/codec.h"
#include "storage/events.h"
#include "storage/keys.h"

namespace custos {

Status Policies::Load() {
  Status decoded;
  CUSTOS_RETURN_IF_ERROR(store_.Scan(keys::kPolicyPrefix, {},
                                     [&](std::string_view, std::string_view v) {
                                       auto policy = codec::DecodePolicy(v);
                                       if (!policy) {
                                         decoded = policy.error();
                                         return false;
                                       }
                                       by_kind_[policy->kind] = *policy;
                                       return true;
                                     }));
  return decoded;
}

void Policies::AddDefaults(leveldb::WriteBatch& batch) {
  for (const RetentionPolicy& policy : DefaultPolicies()) {
    batch.Put(keys::Policy(policy.kind), codec::EncodePolicy(policy));
  }
}

Status Policies::Set(const PrincipalInfo& admin, const RetentionPolicy& policy,
                     Timestamp at) {
  CUSTOS_RETURN_IF_ERROR(ValidatePolicy(policy));
  WriteLock lock = store_.Lock();
  leveldb::WriteBatch batch;
  batch.Put(keys::Policy(policy.kind), codec::EncodePolicy(policy));
  auto ticket = store_.Apply(
      lock, batch, {events::PolicyEvent(admin, policy, at)}, "storing policy");
  if (!ticket) return ticket.error();
  {
    std::unique_lock write(mu_);
    by_kind_[policy.kind] = policy;
  }
  lock.Unlock();
  return store_.WaitDurable(*ticket);
}

std::vector<RetentionPolicy> Policies::List() const {
  std::shared_lock read(mu_);
  std::vector<RetentionPolicy> out;
  for (const auto& [kind, policy] : by_kind_) out.push_back(policy);
  return out;
}

std::optional<RetentionPolicy> Policies::For(const std::string& kind) const {
  std::shared_lock read(mu_);
  auto it = by_kind_.find(kind);
  if (it == by_kind_.end()) return std::nullopt;
  return it->second;
}

}  // namespace custos
