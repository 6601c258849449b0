#include "storage/keyring.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "crypto/key_wrap.h"
#include "crypto/master_key.h"
#include "storage/codec.h"

namespace custos {
namespace {

constexpr std::string_view kKek = "kek";
constexpr std::string_view kBlindIndex = "blind-index";
constexpr std::string_view kAudit = "audit";
constexpr std::string_view kCredential = "credential";
constexpr std::string_view kLedger = "ledger";
constexpr std::string_view kBackupPrefix = "backup/";
constexpr std::string_view kPurposes[] = {kBlindIndex, kAudit, kCredential,
                                          kLedger};

// The "subject id" slot of the key-wrap associated data. Subject ids never
// hold '/', so a keyring entry cannot be passed off as a data key.
std::string WrapName(std::string_view name) {
  return std::string("keyring/").append(name);
}

}  // namespace

Keyring Keyring::Generate() {
  Keyring k;
  k.current_kek_ = 1;
  k.keks_.emplace(1, crypto::SecretKey::Generate());
  for (std::string_view name : kPurposes) {
    k.purposes_.emplace(name, crypto::SecretKey::Generate());
  }
  return k;
}

crypto::SecretKey Keyring::RingKey(const crypto::SecretKey& master) {
  return crypto::DeriveSubkey(master, crypto::Subkey::kKeyring);
}

std::string Keyring::Seal(const crypto::SecretKey& ring_key,
                          bool with_backup_keys) const {
  codec::StoredKeyring stored;
  stored.current_kek = current_kek_;
  auto add = [&](std::string_view name, uint32_t version,
                 const crypto::SecretKey& key) {
    stored.entries.push_back(
        {std::string(name), version,
         crypto::WrapKey(ring_key, version, WrapName(name), key)});
  };
  for (const auto& [version, kek] : keks_) add(kKek, version, kek);
  for (const auto& [name, key] : purposes_) add(name, 1, key);
  if (with_backup_keys) {
    for (const auto& [id, held] : backups_) {
      const std::string name = std::string(kBackupPrefix).append(id);
      add(name, 1, held.key);
      stored.entries.back().created_at_micros = ToMicros(held.created);
    }
  }
  return codec::EncodeKeyring(stored);
}

Result<Keyring> Keyring::Open(std::string_view bytes,
                              const crypto::SecretKey& ring_key) {
  auto stored = codec::DecodeKeyring(bytes);
  if (!stored) return Fail(stored.error());
  Keyring k;
  k.current_kek_ = stored->current_kek;
  for (const auto& e : stored->entries) {
    auto key =
        crypto::UnwrapKey(ring_key, e.version, WrapName(e.name), e.wrapped);
    if (!key) {
      return Fail(Status::FailedPrecondition(std::string(kMasterKeyMismatch)));
    }
    if (e.name == kKek) {
      k.keks_.insert_or_assign(e.version, std::move(*key));
      continue;
    }
    if (e.name.starts_with(kBackupPrefix)) {
      const std::string id = e.name.substr(kBackupPrefix.size());
      if (id.empty() ||
          !k.backups_
               .emplace(id, HeldBackupKey{std::move(*key),
                                          FromMicros(e.created_at_micros)})
               .second) {
        return Fail(Status::DataLoss("corrupt keyring: unexpected entry"));
      }
      continue;
    }
    const bool known = std::find(std::begin(kPurposes), std::end(kPurposes),
                                 e.name) != std::end(kPurposes);
    if (!known || !k.purposes_.emplace(e.name, std::move(*key)).second) {
      return Fail(Status::DataLoss("corrupt keyring: unexpected entry"));
    }
  }
  if (k.purposes_.size() != std::size(kPurposes) ||
      k.Kek(k.current_kek_) == nullptr) {
    return Fail(Status::DataLoss("corrupt keyring: a key is missing"));
  }
  return k;
}

const crypto::SecretKey& Keyring::blind_index() const {
  return purposes_.find(kBlindIndex)->second;
}
const crypto::SecretKey& Keyring::audit() const {
  return purposes_.find(kAudit)->second;
}
const crypto::SecretKey& Keyring::credential() const {
  return purposes_.find(kCredential)->second;
}
const crypto::SecretKey& Keyring::ledger() const {
  return purposes_.find(kLedger)->second;
}

const crypto::SecretKey* Keyring::Kek(uint32_t version) const {
  auto it = keks_.find(version);
  return it == keks_.end() ? nullptr : &it->second;
}

std::vector<uint32_t> Keyring::KekVersions() const {
  std::vector<uint32_t> out;
  for (const auto& [version, kek] : keks_) out.push_back(version);
  return out;
}

uint32_t Keyring::AddKek() {
  const uint32_t version = keks_.empty() ? 1 : keks_.rbegin()->first + 1;
  keks_.emplace(version, crypto::SecretKey::Generate());
  current_kek_ = version;
  return version;
}

void Keyring::DropOldKeks() {
  std::erase_if(keks_,
                [&](const auto& entry) { return entry.first != current_kek_; });
}

void Keyring::AbandonKek(uint32_t version) {
  keks_.erase(version);
  current_kek_ = keks_.empty() ? 0 : keks_.rbegin()->first;
}

void Keyring::AddBackupKey(const std::string& backup_id, crypto::SecretKey key,
                           Timestamp created) {
  backups_.insert_or_assign(backup_id, HeldBackupKey{std::move(key), created});
}

const crypto::SecretKey* Keyring::BackupKey(std::string_view backup_id) const {
  auto it = backups_.find(backup_id);
  return it == backups_.end() ? nullptr : &it->second.key;
}

std::vector<Keyring::BackupKeyInfo> Keyring::BackupKeys() const {
  std::vector<BackupKeyInfo> out;
  for (const auto& [id, held] : backups_) out.push_back({id, held.created});
  return out;
}

std::vector<std::string> Keyring::DropBackupKeysUpTo(Timestamp cutoff) {
  std::vector<std::string> dropped;
  std::erase_if(backups_, [&](const auto& entry) {
    if (entry.second.created > cutoff) return false;
    dropped.push_back(entry.first);
    return true;
  });
  return dropped;
}

void Keyring::TakeKeksAndBackupKeys(Keyring&& stored) {
  current_kek_ = stored.current_kek_;
  keks_ = std::move(stored.keks_);
  backups_ = std::move(stored.backups_);
}

}  // namespace custos
