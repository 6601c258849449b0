// Internal to storage/: the administrator's work on keys and backups
// (DESIGN section 6; docs/crypto.md, docs/operations.md): rotating the
// master key and the key-encryption key, writing a backup and a restore
// kit, letting backup keys expire after Options::backup_retention, and
// finishing at Open a restore that backup::Import left. Each act is an
// access-history event about no subject, committed through the store after
// the keystore's own change.
//
// Thread safety: thread-safe; the keystore serialises its own changes, and
// every event commits through Store::Commit.

#ifndef CUSTOS_STORAGE_KEY_ADMIN_H_
#define CUSTOS_STORAGE_KEY_ADMIN_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/secret_key.h"
#include "storage/backup.h"
#include "storage/codec.h"
#include "storage/keystore.h"
#include "storage/principals.h"
#include "storage/record_store.h"
#include "storage/shredder.h"
#include "storage/store.h"
#include "storage/sweeper.h"
#include "storage/types.h"

namespace custos {

class KeyAdmin {
 public:
  struct Units {
    Store& store;
    Keystore& keystore;
    RecordStore& record_store;
    Shredder& shredder;
    // Writes down the erasures in force before a restore kit is written.
    const Sweeper& sweeper;
    const Principals& principals;
    const Clock& clock;
    std::chrono::microseconds backup_retention;  // REQUIRES: > 0.
  };
  explicit KeyAdmin(Units units) : u_(units) {}

  // Engine::RotateMasterKey. InvalidArgument for an empty key.
  Status RotateMaster(const PrincipalInfo& admin,
                      const crypto::SecretKey& new_master);
  // Engine::RotateKek. InvalidArgument for a batch size of 0 or over
  // kMaxKekBatchSize.
  Result<KekRotationReport> RotateKek(const PrincipalInfo& admin,
                                      const KekRotationOptions& options);
  // Engine::KekVersions.
  Result<std::vector<uint32_t>> KekVersions() const;

  // Engine::Backup, Engine::ExportRestoreKit.
  Result<BackupReport> Backup(const PrincipalInfo& admin,
                              const std::string& dir,
                              const WorkProgressFn& progress);
  Status ExportRestoreKit(const PrincipalInfo& admin, const std::string& path);

  // Destroys the keys of backups older than the retention; one event if
  // any expired. Engine::ExpireBackupKeys, and every sweep.
  Result<size_t> ExpireBackupKeys(const PrincipalInfo& admin);

  // Finishes a restore the import left (backup::kRestoreIntentKey): the
  // ledger's erasures and prunings, the shredded subjects' records, the
  // restore event. At Open, after the shredder's and rekeyer's recovery and
  // before Open returns; nothing if there is no intent. FailedPrecondition
  // if the import itself was interrupted.
  Status FinishRestore();

  // Records in the history the admin event of a keystore change the
  // history may not hold (Keystore::PendingAdminEvent: a crash, or a failed
  // write of the records database, came between the change and its event),
  // at the instant and by the principal of the change, unless the history
  // holds it already; then drops it from the keystore. At Open, and before
  // each keystore change that carries an event (so none is overwritten
  // unrecorded; every sweep and maintenance run expires backup keys, so
  // they do it too). A pending event that does not decode, or names an
  // action that never changes the keystore, is set aside
  // (Keystore::SetAsidePendingAdminEvent). Errors: the reads' and the
  // writes' (while the records database cannot be written, so no backup
  // key expires until a restart's Open records the event).
  Status RecordPendingEvent();

 private:
  // Commits one event about no subject, by `admin`, with `fields`.
  Status Record(const PrincipalInfo& admin, EventAction action, Timestamp at,
                std::vector<std::string> fields, std::string_view what);
  // A keystore change's admin event, encoded for the keystore to write with
  // the change (a random id).
  static codec::StoredAdminEvent PendingFor(const PrincipalInfo& admin,
                                            EventAction action, Timestamp at,
                                            std::vector<std::string> fields);
  // Commits `pending`'s event with its id as the history's last (synced),
  // then drops it (`encoded`, as the keystore holds it) from the keystore.
  Status RecordPending(const codec::StoredAdminEvent& pending,
                       std::string_view encoded, std::string_view what);

  // Held from a keystore change that carries an event until that event is
  // recorded: two such changes at once cannot overwrite each other's
  // pending event.
  std::mutex pending_mu_;

  Units u_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_KEY_ADMIN_H_
