// The facade: each method checks the caller's role and makes one call into
// the unit that owns the capability; Open builds the units and wires them
// (docs/storage.md, "Where things live").

#include "storage/engine.h"

#include <leveldb/env.h>

#include "crypto/master_key.h"
#include "storage/access.h"
#include "storage/audit.h"
#include "storage/backup.h"
#include "storage/breach_scope_builder.h"
#include "storage/erasure.h"
#include "storage/events.h"
#include "storage/holds.h"
#include "storage/key_admin.h"
#include "storage/keystore.h"
#include "storage/limits.h"
#include "storage/log_sync_env.h"
#include "storage/policies.h"
#include "storage/principals.h"
#include "storage/record_store.h"
#include "storage/record_view.h"
#include "storage/records.h"
#include "storage/register_builder.h"
#include "storage/rekeyer.h"
#include "storage/reminder_finder.h"
#include "storage/shredder.h"
#include "storage/stats_index.h"
#include "storage/store.h"
#include "storage/subject_report_builder.h"
#include "storage/subjects.h"
#include "storage/sweeper.h"

namespace custos {

static_assert(Engine::kFormatVersion == Store::kFormatVersion);

// The units, in the order they are built: each refers only to units built
// before it, and members are destroyed in reverse order.
namespace {

// Records written down per write before a policy change (as a sweep's
// default batch, SweepOptions::batch_size).
constexpr size_t kWriteDownBatch = 100;

// A copy of a keyring key for a unit that keeps its own (guarded memory).
crypto::SecretKey CopyKey(const crypto::SecretKey& key) {
  return std::move(*crypto::SecretKey::FromBytes(key.bytes()));
}

}  // namespace

struct Engine::Impl {
  Impl(const Options& options_in, std::unique_ptr<LogSyncEnv> records_env_in,
       std::unique_ptr<Keystore> keystore_in, std::unique_ptr<Store> store_in)
      : options(options_in),
        clock(*options.clock),
        records_env(std::move(records_env_in)),
        keystore(std::move(keystore_in)),
        store(std::move(store_in)),
        principals(*store, *keystore, CopyKey(keystore->keyring().credential()),
                   options.limits, clock),
        policies(*store, CopyKey(keystore->keyring().ledger())),
        subjects(*store, *keystore, CopyKey(keystore->keyring().blind_index()),
                 clock, options.sync_writes),
        holds(*store, clock),
        erasure(*store, *keystore, options),
        record_store(*store, policies, holds, subjects, clock),
        views(*store, record_store, subjects, options.limits, clock),
        records({*store, record_store, views, subjects, principals, policies,
                 holds, erasure, options.limits, clock}),
        sweeper({*store, record_store, views, policies, holds, erasure,
                 subjects.deadline_keys(), clock,
                 options.history_examined_per_sweep}),
        shredder({*store, *keystore, subjects, holds, record_store, views,
                  erasure, clock},
                 CopyKey(keystore->keyring().ledger())),
        reports({*store, subjects, record_store, holds, principals,
                 options.limits, clock}),
        rekeyer({*store, *keystore, subjects, record_store, erasure, clock},
                options.rekey_batch_size),
        audit({*store, subjects, policies, options.limits, clock}),
        breaches({*store, subjects, principals, options.limits, clock}),
        key_admin({*store, *keystore, record_store, shredder, sweeper,
                   principals, clock, options.backup_retention}),
        register_builder({*store, record_store, views, policies, principals,
                          *keystore, options, clock}),
        reminders({*store, record_store, views, holds, options.limits, clock}),
        stats_index(*store) {}

  // The acting principal of a call: Unauthenticated if it is unknown or
  // revoked, or if its credential was replaced since the actor was
  // authenticated (a session opened with the old token ends there).
  Result<PrincipalInfo> Caller(const Actor& actor) const {
    if (principals.Epoch(actor.id()) != Engine::EpochOf(actor)) {
      return Fail(Status::Unauthenticated("invalid credential"));
    }
    return principals.Caller(actor.id());
  }
  Result<PrincipalInfo> RequireRole(const Actor& actor, Role role) const {
    return RequireAnyRole(actor, {role});
  }
  Result<PrincipalInfo> RequireAnyRole(
      const Actor& actor, std::initializer_list<Role> roles) const {
    auto caller = Caller(actor);
    if (!caller) return caller;
    return principals.RequireAnyRole(actor.id(), roles);
  }

  const Options options;
  const Clock& clock;
  std::unique_ptr<LogSyncEnv> records_env;
  std::unique_ptr<Keystore> keystore;
  std::unique_ptr<Store> store;
  Principals principals;
  Policies policies;
  Subjects subjects;
  Holds holds;
  Erasure erasure;
  RecordStore record_store;
  RecordViews views;
  Records records;
  Sweeper sweeper;
  Shredder shredder;
  SubjectReportBuilder reports;
  Rekeyer rekeyer;
  Audit audit;
  BreachScopeBuilder breaches;
  KeyAdmin key_admin;
  RegisterBuilder register_builder;
  ReminderFinder reminders;
  StatsIndex stats_index;
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::Open(const Options& options,
                                             crypto::SecretKey master_key) {
  CUSTOS_RETURN_IF_ERROR(CheckOptions(options));
  if (master_key.empty()) {
    return Fail(Status::InvalidArgument("a master key must be given"));
  }
  leveldb::Env* base_env =
      options.env != nullptr ? options.env : leveldb::Env::Default();
  if (options.create_if_missing) {
    (void)base_env->CreateDir(options.data_dir);  // May exist.
  }
  auto records_env =
      std::make_unique<LogSyncEnv>(base_env, options.table_reads);
  auto store = Store::Open(options, *records_env);
  if (!store) return Fail(store.error());
  const Timestamp now = options.clock->Now();

  // The keystore is created only together with a new records database: a
  // store whose keystore vanished must not silently get an empty one (every
  // record would read as erased, under any master key). It is created
  // before the records database is marked as a store, so a first start
  // killed in between simply starts over.
  auto keystore =
      Keystore::Open(options.data_dir + "/keystore",
                     /*create_if_missing=*/(*store)->is_new(), master_key, now,
                     base_env, options.key_cache_capacity, options.table_reads);
  if (!keystore) {
    if (keystore.error().code() == StatusCode::kNotFound) {
      return Fail(Status::DataLoss("the keystore of " + options.data_dir +
                                   " is missing"));
    }
    return Fail(keystore.error());
  }
  // The keystore's logs are synced before the records': a record is never
  // durable before the key it is sealed under.
  records_env->SyncBefore(&(*keystore)->log_env());
  if ((*store)->is_new()) {
    // A new store starts with the shipped policies (DESIGN section 3).
    leveldb::WriteBatch batch;
    Policies::AddDefaults(batch, (*keystore)->keyring().ledger());
    CUSTOS_RETURN_IF_ERROR((*store)->Initialize(batch, now));
  }
  Keystore* keys = keystore->get();  // Owned by Impl, which outlives it.
  CUSTOS_RETURN_IF_ERROR((*store)->OpenHistory(
      CopyKey((*keystore)->keyring().audit()),
      [keys](const std::string& id) { return keys->GetKey(id); }));

  auto impl = std::make_unique<Impl>(options, std::move(records_env),
                                     std::move(*keystore), std::move(*store));
  impl->record_store.TEST_SetStatisticsIndex(options.TEST_statistics_index);
  CUSTOS_RETURN_IF_ERROR(impl->principals.Load());
  CUSTOS_RETURN_IF_ERROR(impl->policies.Load());
  CUSTOS_RETURN_IF_ERROR(impl->record_store.Load());
  CUSTOS_RETURN_IF_ERROR(impl->shredder.Recover());
  CUSTOS_RETURN_IF_ERROR(impl->rekeyer.Recover());
  CUSTOS_RETURN_IF_ERROR(impl->key_admin.FinishRestore());
  // A keystore change whose event a crash (or a failed write) kept from
  // the history: recorded now, with the change's instant and principal.
  CUSTOS_RETURN_IF_ERROR(impl->key_admin.RecordPendingEvent());
  // A store written before the statistics index is indexed once.
  CUSTOS_RETURN_IF_ERROR(impl->stats_index.Initialize(impl->record_store));
  // Erased bytes an interrupted call left on disk go now: the ranges of
  // buckets whose key was destroyed first, then the compactions.
  CUSTOS_RETURN_IF_ERROR(impl->erasure.DeleteQueuedRanges());
  CUSTOS_RETURN_IF_ERROR(impl->erasure.CompactQueued());
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

// ---- Principals ------------------------------------------------------------

Result<NewPrincipal> Engine::BootstrapAdmin(std::string_view id,
                                            std::string_view display_name) {
  return impl_->principals.Bootstrap(id, display_name);
}

Result<NewPrincipal> Engine::RecoverAdmin(std::string_view id,
                                          std::string_view display_name) {
  return impl_->principals.Recover(id, display_name);
}

Result<NewPrincipal> Engine::CreatePrincipal(const Actor& admin,
                                             std::string_view id,
                                             std::string_view display_name,
                                             const std::vector<Role>& roles,
                                             bool redacted) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  return impl_->principals.Add(*caller, id, display_name, roles, redacted);
}

Result<std::vector<PrincipalInfo>> Engine::ListPrincipals(
    const Actor& admin, std::string_view after_id, size_t limit) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  return impl_->principals.List(after_id, limit);
}

Status Engine::RevokePrincipal(const Actor& admin, std::string_view id) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return caller.error();
  return impl_->principals.Revoke(*caller, id);
}

Result<std::string> Engine::RotateCredential(const Actor& admin,
                                             std::string_view id) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  return impl_->principals.RotateToken(*caller, id);
}

Result<Actor> Engine::Authenticate(std::string_view token) {
  uint64_t epoch = 0;
  auto p = impl_->principals.Authenticate(token, &epoch);
  if (!p) return Fail(p.error());
  return Actor(p->id, epoch);
}

Result<Actor> Engine::ActorFor(std::string_view principal_id) {
  auto p = impl_->principals.Get(principal_id);
  if (!p) return Fail(p.error());
  if (p->revoked) return Fail(Status::Unauthenticated("principal is revoked"));
  return Actor(p->id, impl_->principals.Epoch(principal_id));
}

Timestamp Engine::Now() const { return impl_->clock.Now(); }

const Limits& Engine::limits() const { return impl_->options.limits; }

Result<PrincipalInfo> Engine::WhoAmI(const Actor& actor) {
  return impl_->Caller(actor);
}

Status Engine::MayAct(const Actor& actor,
                      std::initializer_list<Role> roles) const {
  auto caller = impl_->RequireAnyRole(actor, roles);
  return caller ? Status::Ok() : caller.error();
}

// ---- Retention -------------------------------------------------------------

Status Engine::SetPolicy(const Actor& admin, const RetentionPolicy& policy) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return caller.error();
  // Refused before anything is written down.
  CUSTOS_RETURN_IF_ERROR(ValidatePolicy(policy));
  // What was in force under the old policy is written down first
  // (Sweeper::WriteDownDue): the new one applies to the deadlines computed
  // after it. A kind without a policy has no records (none is created
  // without one), so nothing to write down; one whose stored policy failed
  // its MAC may have some.
  auto current = impl_->policies.For(policy.kind);
  const bool has_records = !current.has_value() || current->has_value();
  // In bounded writes first, then what fell due meanwhile (it sorts after
  // where they stopped) in the policy's own write.
  std::string resume_key;
  if (has_records) {
    CUSTOS_RETURN_IF_ERROR(impl_->sweeper.WriteDownDueInBatches(
        policy.kind, kWriteDownBatch, resume_key));
  }
  return impl_->policies.Set(
      *caller, policy, impl_->clock.Now(),
      [&](const WriteLock& lock, leveldb::WriteBatch& batch,
          std::vector<Event>& events, Timestamp& at) -> Status {
        if (has_records) {
          auto more = impl_->sweeper.WriteDownDue(lock, policy.kind, 0,
                                                  resume_key, batch, events);
          if (!more) return more.error();
        }
        // After the transitions' own "now": never dated before them.
        at = impl_->clock.Now();
        return Status::Ok();
      });
}

Result<std::vector<RetentionPolicy>> Engine::ListPolicies(
    const Actor& actor, std::vector<int64_t>* set_at_micros) {
  auto caller = impl_->Caller(actor);
  if (!caller) return Fail(caller.error());
  return impl_->policies.List(set_at_micros);
}

Result<size_t> Engine::ReapplyPolicies(const Actor& admin,
                                       const WorkProgressFn& progress) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  return impl_->sweeper.ReapplyPolicies(progress);
}

Result<SweepReport> Engine::Sweep(const Actor& admin,
                                  const SweepOptions& options) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  // A sweep refused for its arguments does nothing, backup-key expiry
  // included (a review, helper-100).
  CUSTOS_RETURN_IF_ERROR(impl_->sweeper.CheckOptions(options));
  auto report = impl_->sweeper.Sweep(*caller, options);
  if (options.dry_run) return report;
  // Backups age out on the sweep's schedule too, whether the sweep
  // succeeded or not: one record or bucket the sweep cannot process must
  // not keep every backup key alive (the sweep's error comes first).
  auto expired = impl_->key_admin.ExpireBackupKeys(*caller);
  if (!report) return report;
  if (!expired) return Fail(expired.error());
  // The sweep committed: a statistics failure is reported, not returned.
  report->statistics_folded = impl_->stats_index.Fold().has_value();
  return report;
}

Result<SweepReport> Engine::RunMaintenance(size_t shred_budget,
                                           std::stop_token stop) {
  const PrincipalInfo& system = events::RetentionPrincipal();
  SweepOptions options;
  options.as_of = impl_->clock.Now();
  options.stop = stop;
  // Every step is attempted; the first failure is the result. The fold
  // runs whatever failed before it (what committed is worth counting), and
  // its own failure fails nothing: it is reported in statistics_folded.
  auto report = impl_->sweeper.Sweep(system, options);
  Status failure = report ? Status::Ok() : report.error();
  // Each step runs whatever failed before it: a sweep that fails on one
  // record or bucket every time must not stop backups from aging out nor
  // shreds from completing.
  auto expired = impl_->key_admin.ExpireBackupKeys(system);
  if (!expired && failure.ok()) failure = expired.error();
  // Stopped (the sweep's report says so, or the request came after it):
  // the shreds and the fold wait for the next run.
  if (stop.stop_requested()) {
    if (!failure.ok()) return Fail(failure);
    report->stopped = true;
    report->complete = false;
    report->statistics_folded = false;
    return report;
  }
  auto completed = impl_->shredder.Complete(shred_budget);
  if (!completed && failure.ok()) failure = completed.error();
  if (completed && report) report->shred_records_rewritten = *completed;
  const bool folded = impl_->stats_index.Fold().has_value();
  if (!failure.ok()) return Fail(failure);
  report->statistics_folded = folded;
  return report;
}

// ---- Records ---------------------------------------------------------------

Result<uint64_t> Engine::CreateRecord(const Actor& actor, const NewRecord& in) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return Fail(caller.error());
  return impl_->records.Create(*caller, in);
}

Result<std::vector<uint64_t>> Engine::CreateRecords(
    const Actor& actor, const std::vector<NewRecord>& records) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return Fail(caller.error());
  return impl_->records.CreateMany(*caller, records);
}

Result<std::vector<Result<RecordView>>> Engine::GetRecords(
    const Actor& actor, const std::vector<uint64_t>& ids,
    const std::optional<Purpose>& purpose,
    const BeforeDisclosure<std::vector<Result<RecordView>>>& check) {
  auto caller = impl_->Caller(actor);
  if (!caller) return Fail(caller.error());
  return impl_->views.GetMany(*caller, ids, purpose, check);
}

Result<RecordView> Engine::GetRecord(
    const Actor& actor, uint64_t id, const std::optional<Purpose>& purpose,
    const BeforeDisclosure<RecordView>& check) {
  auto caller = impl_->Caller(actor);
  if (!caller) return Fail(caller.error());
  return impl_->views.Get(*caller, id, purpose, check);
}

Result<ListPage> Engine::ListRecords(const Actor& actor, const ListQuery& q,
                                     const BeforeDisclosure<ListPage>& check) {
  auto caller = impl_->Caller(actor);
  if (!caller) return Fail(caller.error());
  return impl_->views.List(*caller, q, check);
}

Status Engine::Grant(const Actor& actor, uint64_t id,
                     std::string_view grantee) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return caller.error();
  return impl_->records.Grant(*caller, id, grantee);
}

Result<uint64_t> Engine::Rectify(const Actor& actor, uint64_t id,
                                 std::string_view subject_id,
                                 const std::vector<Field>& fields) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return Fail(caller.error());
  return impl_->records.Rectify(*caller, id, subject_id, fields);
}

Status Engine::FlagIncorrect(const Actor& actor, uint64_t id,
                             std::string_view subject_id, std::string_view note,
                             const std::optional<Purpose>& purpose) {
  auto caller = impl_->Caller(actor);
  if (!caller) return caller.error();
  return impl_->records.Flag(*caller, id, subject_id, note, purpose);
}

Status Engine::Contest(const Actor& actor, uint64_t id,
                       std::string_view subject_id, std::string_view statement,
                       const std::vector<Field>& corrected) {
  auto caller = impl_->RequireRole(actor, Role::kOfficer);
  if (!caller) return caller.error();
  return impl_->records.Contest(*caller, id, subject_id, statement, corrected);
}

Status Engine::Close(const Actor& actor, uint64_t id) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return caller.error();
  return impl_->records.Close(*caller, id);
}

Status Engine::Withdraw(const Actor& actor, uint64_t id) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return caller.error();
  return impl_->records.Withdraw(*caller, id);
}

Status Engine::EraseRecord(const Actor& actor, uint64_t id) {
  // Owner (a user) or admin; which of the two is decided on the record.
  auto caller = impl_->Caller(actor);
  if (!caller) return caller.error();
  return impl_->records.Erase(*caller, id);
}

// ---- Legal holds -----------------------------------------------------------

Result<HoldView> Engine::SetRecordHold(const Actor& officer, uint64_t record_id,
                                       std::string_view reason,
                                       Timestamp ends_at) {
  auto caller = impl_->RequireRole(officer, Role::kOfficer);
  if (!caller) return Fail(caller.error());
  return impl_->records.SetRecordHold(*caller, record_id, reason, ends_at);
}

Result<HoldView> Engine::SetSubjectHold(const Actor& officer,
                                        std::string_view subject_id,
                                        std::string_view reason,
                                        Timestamp ends_at) {
  auto caller = impl_->RequireRole(officer, Role::kOfficer);
  if (!caller) return Fail(caller.error());
  return impl_->records.SetSubjectHold(*caller, subject_id, reason, ends_at);
}

Status Engine::ReleaseHold(const Actor& officer, std::string_view hold_id) {
  auto caller = impl_->RequireRole(officer, Role::kOfficer);
  if (!caller) return caller.error();
  return impl_->records.ReleaseHold(*caller, hold_id);
}

Result<std::vector<HoldView>> Engine::ListHolds(const Actor& actor,
                                                bool include_ended,
                                                std::string_view after_id,
                                                size_t limit) {
  auto caller = impl_->RequireAnyRole(
      actor, {Role::kOfficer, Role::kAuditor, Role::kAdmin});
  if (!caller) return Fail(caller.error());
  return impl_->holds.List(include_ended, after_id, limit);
}

// ---- Access history and subject reports ------------------------------------

Result<AccessHistoryPage> Engine::AccessHistory(
    const Actor& auditor, std::string_view subject_id, Timestamp from,
    Timestamp to, uint64_t after_seq, uint32_t limit,
    const BeforeDisclosure<AccessHistoryPage>& check) {
  auto caller = impl_->RequireRole(auditor, Role::kAuditor);
  if (!caller) return Fail(caller.error());
  CUSTOS_RETURN_IF_ERROR(CheckMayReadPersonalData(*caller));
  return impl_->audit.History(*caller, subject_id, from, to, after_seq, limit,
                              check);
}

Result<ChainVerification> Engine::VerifyChain(
    const Actor& actor, const WorkProgressFn& progress,
    const std::vector<RecordedHead>& through) {
  auto caller = impl_->RequireAnyRole(actor, {Role::kAuditor, Role::kAdmin});
  if (!caller) return Fail(caller.error());
  return impl_->audit.VerifyChain(progress, through);
}

Result<RecordedHead> Engine::DurableHistoryHead() {
  return impl_->audit.DurableHead();
}

Engine::PoliciesInForce Engine::PoliciesInForceNow() const {
  return {impl_->policies.List(), impl_->policies.Unauthenticated()};
}

Result<ProcessingRegister> Engine::ProduceProcessingRegister(
    const Actor& actor) {
  auto caller = impl_->RequireAnyRole(actor, {Role::kAuditor, Role::kAdmin});
  if (!caller) return Fail(caller.error());
  return impl_->register_builder.Build();
}

Result<Statistics> Engine::ProduceStatistics(const Actor& actor,
                                             const StatisticsQuery& query) {
  auto caller = impl_->RequireAnyRole(actor, {Role::kAuditor, Role::kAdmin});
  if (!caller) return Fail(caller.error());
  CUSTOS_RETURN_IF_ERROR(CheckStatisticsQuery(query));
  return impl_->stats_index.Read(query, impl_->clock.Now());
}

Result<size_t> Engine::FoldStatistics() { return impl_->stats_index.Fold(); }

Result<SubjectReport> Engine::ProduceSubjectReport(
    const Actor& auditor, std::string_view subject_id,
    const BeforeDisclosure<SubjectReport>& check) {
  auto caller = impl_->RequireRole(auditor, Role::kAuditor);
  if (!caller) return Fail(caller.error());
  CUSTOS_RETURN_IF_ERROR(CheckMayReadPersonalData(*caller));
  return impl_->reports.Produce(*caller, subject_id, check);
}

Result<BreachScope> Engine::ProduceBreachScope(
    const Actor& auditor, const BreachQuery& query,
    const BeforeDisclosure<BreachScope>& check) {
  auto caller = impl_->RequireRole(auditor, Role::kAuditor);
  if (!caller) return Fail(caller.error());
  CUSTOS_RETURN_IF_ERROR(CheckMayReadPersonalData(*caller));
  return impl_->breaches.Produce(*caller, query, check);
}

// ---- Reminders -------------------------------------------------------------

Result<ReminderPage> Engine::DueSoon(const Actor& actor,
                                     const ReminderQuery& query) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return Fail(caller.error());
  CUSTOS_RETURN_IF_ERROR(CheckReminderQuery(query));
  return impl_->reminders.DueSoon(*caller, query);
}

Status Engine::MarkRemindersDelivered(const Actor& actor,
                                      const std::vector<Reminder>& reminders) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return caller.error();
  return impl_->reminders.MarkDelivered(*caller, reminders);
}

// ---- Subjects and erasure --------------------------------------------------

Result<std::string> Engine::FindSubject(const Actor& actor,
                                        std::string_view identifier) {
  auto caller = impl_->RequireAnyRole(actor, {Role::kAdmin, Role::kAuditor});
  if (!caller) return Fail(caller.error());
  CUSTOS_RETURN_IF_ERROR(
      CheckLength(identifier, "a subject identifier",
                  impl_->options.limits.max_identifier_length, false));
  return impl_->audit.FindSubject(*caller, identifier);
}

Status Engine::ShredSubject(const Actor& actor, std::string_view subject_id) {
  auto caller = impl_->RequireRole(actor, Role::kAdmin);
  if (!caller) return caller.error();
  return impl_->shredder.Shred(*caller, subject_id);
}

Status Engine::RekeySubject(const Actor& admin, std::string_view subject_id) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return caller.error();
  return impl_->rekeyer.Rekey(*caller, subject_id);
}

Result<ErasureReport> Engine::VerifyErasure(const Actor& admin,
                                            const WorkProgressFn& progress) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  return impl_->erasure.Verify(progress);
}

// ---- Keys and backups ------------------------------------------------------

Status Engine::RotateMasterKey(const Actor& admin,
                               const crypto::SecretKey& new_master) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return caller.error();
  return impl_->key_admin.RotateMaster(*caller, new_master);
}

Result<KekRotationReport> Engine::RotateKek(const Actor& admin,
                                            const KekRotationOptions& options) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  return impl_->key_admin.RotateKek(*caller, options);
}

Result<std::vector<uint32_t>> Engine::KekVersions(const Actor& admin) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  return impl_->key_admin.KekVersions();
}

Result<BackupReport> Engine::Backup(const Actor& admin, const std::string& dir,
                                    const WorkProgressFn& progress) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  return impl_->key_admin.Backup(*caller, dir, progress);
}

Result<BackupVerification> Engine::VerifyBackup(
    const std::string& dir, const WorkProgressFn& progress) {
  return backup::Verify(dir, progress);
}

Status Engine::ExportRestoreKit(const Actor& admin, const std::string& path) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return caller.error();
  return impl_->key_admin.ExportRestoreKit(*caller, path);
}

Result<size_t> Engine::ExpireBackupKeys(const Actor& admin) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  return impl_->key_admin.ExpireBackupKeys(*caller);
}

Status Engine::Restore(const std::string& backup_dir, const Options& new_store,
                       crypto::SecretKey master, const std::string& kit_path,
                       std::string_view admin_id) {
  if (new_store.clock == nullptr || new_store.data_dir.empty()) {
    return Status::InvalidArgument("data_dir and a clock must be given");
  }
  // Refuses a bad admin before writing anything; what it writes carries
  // the restore intent, which Open finishes (here, or after a crash at
  // the next Open) before it returns.
  auto intent = backup::Import(backup_dir, new_store, master, kit_path,
                               admin_id, new_store.clock->Now());
  if (!intent) return intent.error();
  Options options = new_store;
  options.create_if_missing = false;
  auto engine = Open(options, std::move(master));
  return engine ? Status::Ok() : engine.error();
}

Result<Engine::RestoreKitSummary> Engine::InspectRestoreKit(
    const std::string& kit_path, const crypto::SecretKey& master) {
  auto kit = backup::ReadKitSummary(kit_path, master);
  if (!kit) return Fail(kit.error());
  return RestoreKitSummary{.written = kit->written,
                           .backup_keys = kit->backup_keys,
                           .ledger_entries = kit->ledger_entries};
}

Result<size_t> Engine::CompleteShreds(size_t budget,
                                      const WorkProgressFn& progress) {
  if (budget > kMaxShredBudget) {
    return Fail(Status::InvalidArgument("the budget must be at most " +
                                        std::to_string(kMaxShredBudget)));
  }
  return impl_->shredder.Complete(budget, progress);
}

Result<RecordStateCounts> Engine::CountRecordsByState(const Actor& admin,
                                                      Timestamp as_of) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  return impl_->views.CountByState(as_of);
}

Result<RecordStateCounts> Engine::CountRecordsForMaintenance(Timestamp as_of) {
  return impl_->views.CountByState(as_of);
}

EngineStats Engine::Stats() const {
  EngineStats stats;
  stats.writes = impl_->store->TEST_WriteCount();
  stats.syncs = impl_->store->TEST_SyncCount();
  stats.cached_keys = impl_->keystore->CachedKeyCount();
  const KeyCache::Counts counts = impl_->keystore->CacheCounts();
  stats.key_cache_hits = counts.hits;
  stats.key_cache_misses = counts.misses;
  return stats;
}

size_t Engine::TEST_CachedKeyCount() const {
  return impl_->keystore->CachedKeyCount();
}
void Engine::TEST_ClearKeyCache() { impl_->keystore->ClearCache(); }
void Engine::TEST_SetBeforeCreateGroup(std::function<void()> hook) {
  impl_->records.TEST_SetBeforeGroup(std::move(hook));
}
size_t Engine::TEST_QueuedCreates() const {
  return impl_->records.TEST_QueuedCreates();
}
Engine::HoldLookups Engine::TEST_HoldLookups() const {
  const Holds::Lookups lookups = impl_->holds.TEST_Lookups();
  return {lookups.span_loads, lookups.record_lookups};
}
uint64_t Engine::TEST_WriteCount() const {
  return impl_->store->TEST_WriteCount();
}
uint64_t Engine::TEST_SyncCount() const {
  return impl_->store->TEST_SyncCount();
}
uint64_t Engine::TEST_SyncSleeps() const {
  return impl_->store->TEST_SyncSleeps();
}
void Engine::TEST_FailNextSync(Status status) {
  impl_->store->TEST_FailNextSync(std::move(status));
}
void Engine::TEST_SetSnapshotHook(std::function<void()> hook) {
  impl_->store->TEST_SetSnapshotHook(std::move(hook));
}

Engine::RewriteStats Engine::TEST_RewriteStats() const {
  return impl_->erasure.TEST_rewrite_stats();
}

void Engine::TEST_SetCompactKeysPerPass(size_t keys) {
  impl_->erasure.TEST_SetCompactKeysPerPass(keys);
}

void Engine::TEST_SetAfterRangeQueueRead(std::function<void()> hook) {
  impl_->erasure.TEST_SetAfterRangeQueueRead(std::move(hook));
}

void Engine::TEST_SetAfterCompactionStep(std::function<void()> hook) {
  impl_->erasure.TEST_SetAfterCompactionStep(std::move(hook));
}

void Engine::TEST_SetAfterPruneChunk(std::function<void()> hook) {
  impl_->sweeper.TEST_SetAfterPruneChunk(std::move(hook));
}

}  // namespace custos
