// Backups (issue 10; docs/operations.md, "Backups"): a consistent online
// snapshot of the whole store into a directory, its verification without a
// store, a restore kit, and restoring into a new data directory without
// bringing back anything erased since.
//
// A backup directory holds three files:
//   records.dump     the records database at the backup's instant, a
//                    logical dump (framing below), sealed in chunks under
//                    the backup's own random key. Personal data in it is
//                    sealed under subject keys too; the rest (blind
//                    indexes, subject ids, record indexes, attributes,
//                    history headers) links a person to their records and
//                    must not outlive the backup key.
//   keystore.sealed  the keystore at the same instant (the keyring without
//                    backup keys, the wrapped data keys, the ledger), the
//                    same framing, sealed the same way. The backup key
//                    lives only in the live store's keyring and is
//                    destroyed once older than Options::backup_retention:
//                    then nothing can open either file, so the backup is
//                    undecipherable for good and reveals only sizes.
//   manifest         text: format version, backup id, creation time, each
//                    file's size and BLAKE2b-256, and a checksum of the
//                    manifest itself. Written last: a backup without one
//                    is incomplete.
//
// Dump framing: an 8-byte magic, then per entry u32 BE key length, key,
// u32 BE value length, value; then u32 BE 0xFFFFFFFF and u64 BE the number
// of entries. Sealed chunks: an 8-byte magic, then per chunk u32 BE length
// and crypto::Seal(backup key, up to 1 MiB of the dump, ad = "custos
// backup " || backup id || " " || file name || u64 BE chunk index || u8 1
// for the last chunk else 0), so chunks cannot be reordered, dropped,
// truncated or moved between the two files unnoticed.
//
// The units here are internal to storage/; Engine::Backup, VerifyBackup,
// ExportRestoreKit and Restore (storage/engine.h) are the public calls.
//
// Thread safety: Write may run while the store is written; the rest are
// functions of their arguments.

#ifndef CUSTOS_STORAGE_BACKUP_H_
#define CUSTOS_STORAGE_BACKUP_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/secret_key.h"
#include "storage/types.h"

namespace custos {

class Erasure;
class Keystore;
class RecordStore;
class Store;
struct Options;

// One file of a backup as its manifest lists it.
struct BackupFile {
  std::string name;
  uint64_t size = 0;
  std::string blake2b_hex;  // BLAKE2b-256 of the file, 64 hex digits.
};

struct BackupReport {
  std::string backup_id;  // "b" + 32 hex digits.
  Timestamp created;
  uint64_t records_entries = 0;   // Key/value pairs of records/.
  uint64_t keystore_entries = 0;  // Key/value pairs of keystore/.
  std::vector<BackupFile> files;  // As in the manifest.
};

struct BackupVerification {
  uint32_t format_version = 0;
  std::string backup_id;
  Timestamp created;
  std::vector<BackupFile> files;
  uint64_t records_chunks = 0;   // Sealed chunks of records.dump.
  uint64_t keystore_chunks = 0;  // Sealed chunks of keystore.sealed.
};

namespace backup {

// The backup format this build writes and reads.
// Version 1 kept records.dump unsealed; it is not read (docs/decisions.md,
// 2026-12-02).
inline constexpr uint32_t kFormatVersion = 2;

// Takes one instant of both databases (the records' write lock and the
// keystore's exclusive key lock held together while the two LevelDB
// snapshots are taken) after adding a new backup key to the keyring, then
// streams both into `dir` (created; REQUIRES: absent or empty) without the
// locks. Under the write lock, before the snapshots, every records write
// applied so far is made durable (Store::SyncApplied): a backup holds
// nothing a power loss could take from the live store (a shred's unsynced
// records side). Errors: AlreadyExists if `dir` holds files; that sync's
// failure (then no file is written); Internal for a file that cannot be
// written; mapped LevelDB errors. Progress: "records", then "keystore"
// (entries written; no total).
Result<BackupReport> Write(Store& store, Keystore& keystore,
                           const std::string& dir, Timestamp now,
                           const WorkProgressFn& progress = nullptr);

// Checks `dir` without a store and without keys: the manifest's format
// version (FailedPrecondition for another one) and checksum, every listed
// file's presence (NotFound naming it), size and BLAKE2b (DataLoss naming
// it), and that records.dump and keystore.sealed are well-formed sequences
// of sealed chunks (DataLoss). What the chunks hold needs the backup key:
// it is authenticated and parsed by a restore. Progress: "checksums" (bytes
// of the listed files, of their total).
Result<BackupVerification> Verify(const std::string& dir,
                                  const WorkProgressFn& progress = nullptr);

// Writes the restore kit to `path` (REQUIRES: does not exist): when it was
// written (`now`), the backup keys the keyring holds that are younger than
// `retention` at `now`, and every erasure ledger entry, sealed under the
// keyring key of the master key the keystore is open with. Internal if the
// file cannot be written.
Status WriteKit(Keystore& keystore, const std::string& path, Timestamp now,
                std::chrono::microseconds retention);

// What a restore kit says of itself, opened with `master`: when it was
// written (a restore re-applies the erasures made up to then, not after),
// how many backup keys and ledger entries it holds. FailedPrecondition for
// a master key that does not open it or a kit of Custos's first format
// (which said nothing of its time); DataLoss for a corrupt one.
struct KitSummary {
  Timestamp written;
  size_t backup_keys = 0;
  size_t ledger_entries = 0;
};
Result<KitSummary> ReadKitSummary(const std::string& path,
                                  const crypto::SecretKey& master);

// A restore in progress, in the restored records database under
// kRestoreIntentKey from the first write of the import until the restore
// is finished: Engine::Open finishes a complete one before it returns and
// refuses to open an incomplete one (a crash during the import).
inline constexpr std::string_view kRestoreIntentKey = "q:restore";
struct RestoreIntent {
  std::string admin_id;  // Who restores: an admin of the backup's store.
  std::string backup_id;
  uint64_t subjects_shredded = 0;  // Marked shredded at import.
  bool complete = false;           // Set by the import's last (synced) write.
};
std::string EncodeRestoreIntent(const RestoreIntent& intent);
// DataLoss for a corrupt value.
Result<RestoreIntent> DecodeRestoreIntent(std::string_view value);

// Restore, step 1, without an engine: verifies the backup, opens the kit
// with `master`, finds the backup's key (FailedPrecondition "the key of
// this backup has expired ..." when the kit has none: the backup is older
// than the backup retention, or the kit older than the backup), decrypts
// both dumps and checks, before writing anything, that `admin_id` is an
// admin of the backup's store (Unauthenticated if unknown or revoked,
// PermissionDenied without the role). Then writes both databases into
// options.data_dir (FailedPrecondition if it holds a store): the records
// with the restore intent in their first write, the keystore with the
// kit's ledger merged in (without the erasures and prunings of records and
// events the backup does not hold: the restored store hands those ids and
// seqs out again), shredding at once every subject the ledger names (its
// keys are not written at all; the subject is marked shredded at `now`,
// unlinked from its identifier and queued for CompleteShreds).
// FailedPrecondition when `master` opens neither the kit nor the backup's
// keyring; DataLoss for a corrupt backup or kit.
Result<RestoreIntent> Import(const std::string& backup_dir,
                             const Options& options,
                             const crypto::SecretKey& master,
                             const std::string& kit_path,
                             std::string_view admin_id, Timestamp now);

// What a restore must erase again in the restored store: the ledger's
// record erasures and history prunings.
struct RestorePlan {
  // Ledger hash of a record ("le:" key) -> erased-at µs.
  std::map<std::string, int64_t> erased_records;
  std::set<uint64_t> pruned_events;
};

// The plan, from the restored store's keystore ledger. DataLoss for a
// corrupt entry.
Result<RestorePlan> PlanFromLedger(Keystore& keystore);

// Restore, step 2, on the opened restored store: erases every record of
// plan.erased_records at its original erasure time (attributes kept, as
// EraseRecord; holds are not consulted: the live store already erased it),
// and prunes plan.pruned_events. Returns the number of records erased.
// Idempotent: a restore interrupted during it is run again whole.
Result<size_t> Reapply(Store& store, RecordStore& record_store,
                       Keystore& keystore, const RestorePlan& plan,
                       Timestamp now);

}  // namespace backup
}  // namespace custos

#endif  // CUSTOS_STORAGE_BACKUP_H_
