// Internal to storage/: the keyring (docs/crypto.md, "Keyring"). The master
// key protects only this small set of random keys, stored in the keystore
// under "m:keyring":
//   - the key-encryption keys (KEKs), by version, that wrap subject data
//     keys; one of them is current (new data keys are wrapped under it);
//   - the blind-index key (subject lookups), the audit key (the history
//     chain), the credential key (principals' token hashes) and the ledger
//     key (the erasure ledger).
//   - backup keys (docs/operations.md, "Backups"): one per backup, named
//     "backup/" + backup id, with its creation time; destroyed once older
//     than the backup retention, so that the backup can no longer be read.
// Each key is wrapped on its own under the keyring key, a subkey derived
// from the master key (crypto::Subkey::kKeyring), with its name and version
// in the associated data. Rotating the master key rewraps these keys and
// nothing else; none of them changes, so every lookup, credential, record
// and history link stays valid.
//
// Thread safety: a value; not synchronised (the Keystore guards its own).

#ifndef CUSTOS_STORAGE_KEYRING_H_
#define CUSTOS_STORAGE_KEYRING_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/secret_key.h"

namespace custos {

// Keyring::Open's FailedPrecondition for another master key (custosd adds
// where its key came from).
inline constexpr std::string_view kMasterKeyMismatch =
    "the master key does not match this data directory";

class Keyring {
 public:
  // A new keyring: KEK version 1, current, and the four purpose keys, all
  // random.
  static Keyring Generate();

  // The keyring key of `master` (crypto::Subkey::kKeyring).
  static crypto::SecretKey RingKey(const crypto::SecretKey& master);

  // The stored form: every key wrapped under `ring_key`. Without
  // `with_backup_keys`, the backup keys are left out (the keyring a backup
  // carries: no backup may hold the key of another).
  std::string Seal(const crypto::SecretKey& ring_key,
                   bool with_backup_keys = true) const;
  // Reads a stored keyring. FailedPrecondition when `ring_key` is not the
  // key it was sealed under (another master key, or a wrapped key was
  // altered); DataLoss when the bytes are not a keyring or a key is
  // missing.
  static Result<Keyring> Open(std::string_view stored,
                              const crypto::SecretKey& ring_key);

  const crypto::SecretKey& blind_index() const;
  const crypto::SecretKey& audit() const;
  const crypto::SecretKey& credential() const;
  const crypto::SecretKey& ledger() const;

  uint32_t current_kek() const { return current_kek_; }
  // The KEK of `version`; null once it was dropped, or if it never existed.
  const crypto::SecretKey* Kek(uint32_t version) const;
  // Every KEK version held, ascending.
  std::vector<uint32_t> KekVersions() const;
  // Adds a random KEK with the next version and makes it current; returns
  // its version.
  uint32_t AddKek();
  // Destroys every KEK but the current one.
  void DropOldKeks();
  // Undoes AddKek (its keyring was never stored): destroys KEK `version`
  // and makes the newest remaining one current.
  void AbandonKek(uint32_t version);

  // Adds `key` as the key of backup `backup_id`, created at `created`.
  // REQUIRES: backup_id non-empty, without '/', not held yet.
  void AddBackupKey(const std::string& backup_id, crypto::SecretKey key,
                    Timestamp created);
  // The key of backup `backup_id`; null if none (never made, or destroyed).
  const crypto::SecretKey* BackupKey(std::string_view backup_id) const;
  struct BackupKeyInfo {
    std::string backup_id;
    Timestamp created;
  };
  // Every backup key held, by id.
  std::vector<BackupKeyInfo> BackupKeys() const;
  // Destroys every backup key created at or before `cutoff`; returns their
  // ids.
  std::vector<std::string> DropBackupKeysUpTo(Timestamp cutoff);

  // Takes `stored`'s KEKs, current KEK and backup keys, keeping this
  // keyring's purpose keys: Keystore::ReloadKeyring, after a write of the
  // keyring failed. The purpose keys never change while a store is open,
  // and their readers (the ledger's, without the keystore's key lock) hold
  // references to them (helper-131: the whole keyring was replaced, and a
  // concurrent ledger write read a freed key). REQUIRES: `stored` is this
  // keyring as stored (the same purpose keys).
  void TakeKeksAndBackupKeys(Keyring&& stored);

 private:
  Keyring() = default;

  uint32_t current_kek_ = 0;
  std::map<uint32_t, crypto::SecretKey> keks_;
  // "blind-index", "audit", "credential", "ledger": all four, always.
  std::map<std::string, crypto::SecretKey, std::less<>> purposes_;
  struct HeldBackupKey {
    crypto::SecretKey key;
    Timestamp created;
  };
  std::map<std::string, HeldBackupKey, std::less<>> backups_;  // By id.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_KEYRING_H_
