// Internal to storage/: the keystore, a separate small LevelDB holding the
// subject data keys wrapped under the key-encryption key (KEK), and the
// erasure ledger. Kept apart from the records so that it can be compacted
// cheaply after every shred and rewrapped wholesale on master key rotation.
//
// Key layout (docs/storage.md):
//   "m:format"         FormatInfo
//   "m:kek"            u32 BE KEK version || Seal(KEK, check text)
//   "k:" subject id    WrappedKey
//   "l:" ledger hash   LedgerEntry
//
// Thread safety: thread-safe (LevelDB is; the KEK is read-only).

#ifndef CUSTOS_STORAGE_KEYSTORE_H_
#define CUSTOS_STORAGE_KEYSTORE_H_

#include <leveldb/db.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/keyed_hash.h"
#include "crypto/secret_key.h"

namespace custos {

class Keystore {
 public:
  // Opens or creates the keystore at `path`. FailedPrecondition when the
  // master key (through the KEK) does not match the one the keystore was
  // created with, or the format version is unknown.
  static Result<std::unique_ptr<Keystore>> Open(const std::string& path,
                                                bool create_if_missing,
                                                bool sync_writes,
                                                const crypto::SecretKey& master,
                                                Timestamp now);

  // Wraps and stores `dek` for `subject_id` (synchronously when configured).
  Status PutKey(std::string_view subject_id, const crypto::SecretKey& dek);

  // The unwrapped key, or nullptr when the subject has none (never had one,
  // or it was destroyed). DataLoss if the wrapped key fails to unwrap.
  Result<std::shared_ptr<const crypto::SecretKey>> GetKey(
      std::string_view subject_id);

  // The stored wrapped key bytes, or nullopt when there are none.
  Result<std::optional<std::vector<uint8_t>>> WrappedBytes(
      std::string_view subject_id);

  // True if a wrapped key is stored for the subject.
  Result<bool> HasKey(std::string_view subject_id);

  // In one atomic write: deletes the subject's wrapped key and records
  // `ledger_hash` in the erasure ledger. Then compacts the key's range so
  // the wrapped key is gone from the keystore's files.
  Status DestroyKey(std::string_view subject_id,
                    const crypto::Digest& ledger_hash, Timestamp at,
                    std::string_view by);

  // Compacts the subject's key range so a deleted wrapped key leaves the
  // keystore's files (DestroyKey does this; recovery calls it again).
  Status PurgeKey(std::string_view subject_id);

  Result<bool> InLedger(const crypto::Digest& ledger_hash);

  // Compacts every key range: after it returns, deleted keys are absent
  // from the keystore's files.
  void CompactAll();

 private:
  Keystore(std::unique_ptr<leveldb::DB> db, crypto::SecretKey kek,
           uint32_t kek_version, bool sync_writes);

  std::unique_ptr<leveldb::DB> db_;
  crypto::SecretKey kek_;
  uint32_t kek_version_;
  bool sync_writes_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_KEYSTORE_H_
