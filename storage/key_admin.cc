#include "storage/key_admin.h"

#include <leveldb/write_batch.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "crypto/secret_key.h"
#include "storage/codec.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "storage/limits.h"

namespace custos {
namespace {

// An event about no subject and no record.
Event AdminEvent(const PrincipalInfo& admin, EventAction action, Timestamp at,
                 std::vector<std::string> fields) {
  Event e;
  e.at = at;
  e.principal_id = admin.id;
  e.principal_name = admin.display_name;
  e.action = action;
  e.fields = std::move(fields);
  return e;
}

}  // namespace

Status KeyAdmin::Record(const PrincipalInfo& admin, EventAction action,
                        Timestamp at, std::vector<std::string> fields,
                        std::string_view what) {
  leveldb::WriteBatch batch;
  return u_.store.Commit(u_.store.Lock(), batch,
                         {AdminEvent(admin, action, at, std::move(fields))},
                         what);
}

codec::StoredAdminEvent KeyAdmin::PendingFor(const PrincipalInfo& admin,
                                             EventAction action, Timestamp at,
                                             std::vector<std::string> fields) {
  codec::StoredAdminEvent e;
  std::array<uint8_t, 8> id{};
  crypto::RandomBytes(id);
  e.id = ReadBigEndian64(
      std::string_view(reinterpret_cast<const char*>(id.data()), id.size()));
  e.principal_id = admin.id;
  e.principal_name = admin.display_name;
  e.action = static_cast<uint16_t>(action);
  e.at_micros = ToMicros(at);
  e.fields = std::move(fields);
  return e;
}

Status KeyAdmin::RecordPending(const codec::StoredAdminEvent& pending,
                               std::string_view encoded,
                               std::string_view what) {
  Event e;
  e.at = FromMicros(pending.at_micros);
  e.principal_id = pending.principal_id;
  e.principal_name = pending.principal_name;
  e.action = static_cast<EventAction>(pending.action);
  e.fields = pending.fields;
  std::string id;
  AppendBigEndian64(id, pending.id);
  leveldb::WriteBatch batch;
  batch.Put(ToSlice(keys::kAdminEventRecorded), id);
  CUSTOS_RETURN_IF_ERROR(u_.store.Commit(u_.store.Lock(), batch, {e}, what,
                                         /*force_sync=*/true));
  // The event is recorded: a failed drop is not this call's failure. The
  // next RecordPendingEvent finds the history holding it and drops it.
  (void)u_.keystore.DropPendingAdminEvent(encoded);
  return Status::Ok();
}

Status KeyAdmin::RecordPendingEvent() {
  auto bytes = u_.keystore.PendingAdminEvent();
  if (!bytes) return bytes.error();
  if (!*bytes) return Status::Ok();
  auto pending = codec::DecodeAdminEvent(**bytes);
  // One that does not decode, or names an action that never changes the
  // keystore, cannot be recorded: set aside (for whoever inspects the
  // files), it stops neither the store's Open nor the next change.
  const std::optional<EventAction> action =
      pending ? std::optional(static_cast<EventAction>(pending->action))
              : std::nullopt;
  if (action != EventAction::kRotateMasterKey &&
      action != EventAction::kExpireBackupKeys) {
    return u_.keystore.SetAsidePendingAdminEvent(**bytes);
  }
  auto recorded = u_.store.Get(keys::kAdminEventRecorded);
  if (!recorded) return recorded.error();
  if (*recorded && (*recorded)->size() == 8 &&
      ReadBigEndian64(**recorded) == pending->id) {
    // The history holds it; only the drop was lost.
    return u_.keystore.DropPendingAdminEvent(**bytes);
  }
  return RecordPending(*pending, **bytes, "recording a pending admin event");
}

Status KeyAdmin::RotateMaster(const PrincipalInfo& admin,
                              const crypto::SecretKey& new_master) {
  if (new_master.empty()) {
    return Status::InvalidArgument("a new master key must be given");
  }
  std::lock_guard pending_lock(pending_mu_);
  // An earlier change's event first: this change's replaces it in the
  // keystore.
  CUSTOS_RETURN_IF_ERROR(RecordPendingEvent());
  const codec::StoredAdminEvent pending =
      PendingFor(admin, EventAction::kRotateMasterKey, u_.clock.Now(), {});
  const std::string encoded = codec::EncodeAdminEvent(pending);
  CUSTOS_RETURN_IF_ERROR(u_.keystore.RotateMaster(new_master, encoded));
  Status recorded =
      RecordPending(pending, encoded, "recording master key rotation");
  if (!recorded.ok()) {
    // The rotation took effect: an operator told only "failed" could throw
    // the new key away, and the store with it (a review, helper-120).
    // Its event stays in the keystore: the next Open records it.
    return Status(recorded.code(),
                  "the master key was rotated (only the new key opens the "
                  "store now), but its event could not be written: " +
                      recorded.message());
  }
  return Status::Ok();
}

Result<KekRotationReport> KeyAdmin::RotateKek(
    const PrincipalInfo& admin, const KekRotationOptions& options) {
  if (options.batch_size == 0 || options.batch_size > kMaxKekBatchSize) {
    return Fail(Status::InvalidArgument("the batch size must be 1 to " +
                                        std::to_string(kMaxKekBatchSize)));
  }
  auto step = u_.keystore.RotateKek(options.batch_size, options.max_keys,
                                    options.progress);
  if (!step) return Fail(step.error());
  KekRotationReport report{step->kek_version, step->rewrapped, step->complete};
  std::vector<std::string> fields = {
      std::string("kek_version:").append(std::to_string(report.kek_version)),
      std::string("rewrapped:").append(std::to_string(report.rewrapped))};
  if (report.complete) fields.push_back("complete");
  CUSTOS_RETURN_IF_ERROR(Record(admin, EventAction::kRotateKek, u_.clock.Now(),
                                std::move(fields), "recording KEK rotation"));
  return report;
}

Result<std::vector<uint32_t>> KeyAdmin::KekVersions() const {
  return u_.keystore.KekVersions();
}

Result<BackupReport> KeyAdmin::Backup(const PrincipalInfo& admin,
                                      const std::string& dir,
                                      const WorkProgressFn& progress) {
  const Timestamp now = u_.clock.Now();
  auto report = backup::Write(u_.store, u_.keystore, dir, now, progress);
  if (!report) return Fail(report.error());
  CUSTOS_RETURN_IF_ERROR(
      Record(admin, EventAction::kBackup, now,
             {std::string("backup_id:").append(report->backup_id)},
             "recording backup"));
  return report;
}

Status KeyAdmin::ExportRestoreKit(const PrincipalInfo& admin,
                                  const std::string& path) {
  const Timestamp now = u_.clock.Now();
  {
    // Under the records' write lock: a revocation or token replacement
    // writes its ledger entry and its change (or takes the entry back)
    // under it, so the kit never carries an entry whose change failed (a
    // review, helper-102).
    WriteLock lock = u_.store.Lock();
    // Every erasure in force goes with the kit, written down or not: the
    // backup it restores may hold the record under a hold released since,
    // or under a longer policy (review helper-127).
    CUSTOS_RETURN_IF_ERROR(u_.sweeper.LedgerErasuresInForce(lock));
    CUSTOS_RETURN_IF_ERROR(
        backup::WriteKit(u_.keystore, path, now, u_.backup_retention));
  }
  return Record(admin, EventAction::kExportRestoreKit, now, {},
                "recording restore kit export");
}

Result<size_t> KeyAdmin::ExpireBackupKeys(const PrincipalInfo& admin) {
  const Timestamp now = u_.clock.Now();
  std::lock_guard pending_lock(pending_mu_);
  // An earlier change's event first: this change's would replace it in the
  // keystore.
  CUSTOS_RETURN_IF_ERROR(RecordPendingEvent());
  std::optional<codec::StoredAdminEvent> pending;
  std::string encoded;
  auto expired = u_.keystore.ExpireBackupKeys(
      now -
          std::chrono::duration_cast<Timestamp::duration>(u_.backup_retention),
      [&](const std::vector<std::string>& ids) {
        std::vector<std::string> fields;
        for (const std::string& id : ids) {
          fields.push_back(std::string("backup_id:").append(id));
        }
        pending = PendingFor(admin, EventAction::kExpireBackupKeys, now,
                             std::move(fields));
        encoded = codec::EncodeAdminEvent(*pending);
        return encoded;
      });
  if (!expired) return Fail(expired.error());
  if (expired->empty()) return size_t{0};
  // Written with the keys' destruction; if not recorded now, at the next
  // Open or keystore change.
  CUSTOS_RETURN_IF_ERROR(
      RecordPending(*pending, encoded, "recording backup key expiry"));
  return expired->size();
}

Status KeyAdmin::FinishRestore() {
  auto value = u_.store.Get(backup::kRestoreIntentKey);
  if (!value) return value.error();
  if (!*value) return Status::Ok();
  auto intent = backup::DecodeRestoreIntent(**value);
  if (!intent) return intent.error();
  if (!intent->complete) {
    return Status::FailedPrecondition(
        "the data directory holds a restore interrupted during its import: "
        "remove it and restore again");
  }
  auto plan = backup::PlanFromLedger(u_.keystore);
  if (!plan) return plan.error();
  auto erased = backup::Reapply(u_.store, u_.record_store, u_.keystore, *plan,
                                u_.clock.Now());
  if (!erased) return erased.error();
  // The shredded subjects' records: parts dropped, records ERASED.
  while (true) {
    auto done = u_.shredder.Complete(10000);
    if (!done) return done.error();
    if (*done == 0) break;
  }
  // Checked by the import in the backup's data, before it wrote anything.
  auto admin = u_.principals.Get(intent->admin_id);
  if (!admin) return admin.error();
  // The intent goes in the same write as the event: a crash before it
  // finishes the restore again at the next Open.
  leveldb::WriteBatch batch;
  batch.Delete(ToSlice(backup::kRestoreIntentKey));
  return u_.store.Commit(
      u_.store.Lock(), batch,
      {AdminEvent(
          *admin, EventAction::kRestore, u_.clock.Now(),
          {std::string("backup_id:").append(intent->backup_id),
           std::string("subjects_shredded:")
               .append(std::to_string(intent->subjects_shredded)),
           std::string("records_erased:").append(std::to_string(*erased)),
           std::string("events_pruned:")
               .append(std::to_string(plan->pruned_events.size()))})},
      "recording restore", /*force_sync=*/true);
}

}  // namespace custos
