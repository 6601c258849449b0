// Engine: the Custos storage engine. Records with personal data encrypted
// per data subject, visibility states, need-to-know access, and erasure by
// crypto-shredding, on two LevelDB databases (see docs/storage.md).
//
// Every call that touches a record takes the acting principal (an Actor,
// obtainable only from the engine). Reads and refusals follow
// docs/access-rules.md: a record the caller may not see is NotFound, exactly
// as a record that does not exist.
//
// Every change is one atomic LevelDB write batch with its access-history
// events, acknowledged once durable unless Options::sync_writes is false;
// concurrent changes share their fsyncs (group commit).
//
// Errors common to every call taking an Actor: Unauthenticated if the
// actor's principal is unknown or revoked; PermissionDenied if it lacks the
// role the call needs.
//
// Thread safety: an Engine may be used from several threads at once. Changes
// are serialised internally; reads run concurrently with them.
//
// The engine is a facade: each method checks the caller's role and calls
// the unit that owns the capability (docs/storage.md, "Where things live").

#ifndef CUSTOS_STORAGE_ENGINE_H_
#define CUSTOS_STORAGE_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/secret_key.h"
#include "storage/backup.h"
#include "storage/breach_scope.h"
#include "storage/limits.h"
#include "storage/options.h"
#include "storage/processing_register.h"
#include "storage/reminders.h"
#include "storage/retention_policy.h"
#include "storage/statistics.h"
#include "storage/subject_report.h"
#include "storage/types.h"

namespace custos {

// The acting principal of a call. Obtained from Engine::Authenticate or
// Engine::ActorFor; roles and revocation are re-checked on every call.
class Actor {
 public:
  const std::string& id() const { return id_; }

 private:
  friend class Engine;
  Actor(std::string id, uint64_t epoch) : id_(std::move(id)), epoch_(epoch) {}
  std::string id_;
  // The principal's credential epoch when it was authenticated: a replaced
  // credential (Engine::RotateCredential) ends the actors of the old one.
  uint64_t epoch_ = 0;
};

// Engine::Stats: counters since Open.
struct EngineStats {
  // Writes applied to the records database and log syncs issued (their
  // ratio is the mean group-commit batch size).
  uint64_t writes = 0;
  uint64_t syncs = 0;
  // Unwrapped subject keys in the key cache, and lookups of a subject's
  // key answered from it (hits) or by unwrapping it (misses).
  size_t cached_keys = 0;
  uint64_t key_cache_hits = 0;
  uint64_t key_cache_misses = 0;
};

class Engine {
 public:
  // The on-disk format this build reads and writes.
  static constexpr uint32_t kFormatVersion = 7;  // Store::kFormatVersion

  // Opens (or creates) the store in options.data_dir under `master_key`.
  // Errors: InvalidArgument (bad options, among them a
  // limits.max_personal_bytes above kMaxPersonalBytesLimit), NotFound (no store
  // and !create_if_missing), FailedPrecondition (unknown format version, or a
  // master key that does not match this store), Unavailable (locked by
  // another process), DataLoss (corrupt store), Internal.
  static Result<std::unique_ptr<Engine>> Open(const Options& options,
                                              crypto::SecretKey master_key);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---- Principals -------------------------------------------------------

  // Creates the first admin of an empty store. FailedPrecondition once any
  // principal exists.
  Result<NewPrincipal> BootstrapAdmin(std::string_view id,
                                      std::string_view display_name);
  // Creates a new admin in a store that has principals: the way back in
  // for whoever holds the master key when no admin can log in (every
  // admin's token lost, or a restore whose backup's admins were all revoked
  // since: docs/operations.md, "When no admin can log in"). Never reachable
  // over RPC: `custos recover-admin` calls it offline. Its
  // principal_created event is by the new admin and names `recovered`.
  // InvalidArgument (id, name), AlreadyExists (id taken),
  // FailedPrecondition for a store without principals (a new one).
  Result<NewPrincipal> RecoverAdmin(std::string_view id,
                                    std::string_view display_name);
  // Admin only (PermissionDenied otherwise). InvalidArgument for the admin
  // role combined with officer or auditor (an admin never reads personal
  // data). AlreadyExists for a taken id. Writes a principal_created event.
  Result<NewPrincipal> CreatePrincipal(const Actor& admin, std::string_view id,
                                       std::string_view display_name,
                                       const std::vector<Role>& roles,
                                       bool redacted);
  Result<std::vector<PrincipalInfo>> ListPrincipals(
      const Actor& admin, std::string_view after_id = {}, size_t limit = 0);
  // Revoked principals can no longer authenticate or act. NotFound for an
  // unknown id. Writes a principal_revoked event.
  Status RevokePrincipal(const Actor& admin, std::string_view id);
  // Admin only. Replaces the principal's credential; returns the new token
  // (shown once). The old token is refused from the moment this returns,
  // and sessions opened with it end at once where the server re-checks
  // (docs/api.md). NotFound for an unknown id, FailedPrecondition for a
  // revoked principal.
  Result<std::string> RotateCredential(const Actor& admin, std::string_view id);
  // Unauthenticated("invalid credential") for an unknown, malformed or
  // revoked token; the message does not say which.
  Result<Actor> Authenticate(std::string_view token);
  // For trusted in-process callers (the admin tool, tests). NotFound for an
  // unknown id, Unauthenticated for a revoked one.
  Result<Actor> ActorFor(std::string_view principal_id);
  // The engine's clock (Options::clock).
  Timestamp Now() const;
  // The limits it was opened with (Options::limits), for callers that check
  // input before they hand it over (custosd).
  const Limits& limits() const;

  // The acting principal as it stands now (its roles, for the server's
  // facets). Unauthenticated once it is revoked (or unknown).
  Result<PrincipalInfo> WhoAmI(const Actor& actor);
  // OK if `actor` may act now with one of `roles`; otherwise the error the
  // engine's own calls give (Unauthenticated, PermissionDenied naming the
  // roles). From memory, without a read: custosd asks it on its event loop
  // before a call takes a server-wide lane.
  Status MayAct(const Actor& actor, std::initializer_list<Role> roles) const;

  // ---- Records ----------------------------------------------------------

  // ---- Retention (docs/retention.md) -------------------------------------

  // Admin only. Validates and stores the policy of policy.kind (replacing
  // any): InvalidArgument, naming the field, for a policy ValidatePolicy
  // refuses, among them any period longer than kMaxPolicyPeriod (200
  // years), whose deadlines could not be represented. Applies to deadlines
  // computed from now on; see ReapplyPolicies.
  Status SetPolicy(const Actor& admin, const RetentionPolicy& policy);
  // Any principal: the policies, by kind. With `set_at_micros`, when each
  // was set goes there, in the same order (0: a shipped default never
  // set, or one set before 2026-12-07, when the set time began to be
  // stored).
  Result<std::vector<RetentionPolicy>> ListPolicies(
      const Actor& actor, std::vector<int64_t>* set_at_micros = nullptr);
  // Admin only. Recomputes every open deadline from its anchoring event
  // under the current policies. Returns the number of records updated.
  // Progress: "records" (examined, under the write lock).
  Result<size_t> ReapplyPolicies(const Actor& admin,
                                 const WorkProgressFn& progress = nullptr);

  // Applies the transitions due by options.as_of, reading only the deadline
  // index. Each record's transitions (and its next deadline) are one
  // atomic write; running it again, or after a crash, finishes the work
  // and never applies a transition twice. Transitions take effect at their
  // due instant (closed_at, blocked_at, erased_at), whenever the sweep ran:
  // every call sees a record in its effective state, and the sweep writes
  // that down and erases physically. A record that cannot be processed (it
  // does not decode, a deadline cannot be represented, a hold covering it
  // does not decode) is left as it was, listed in SweepReport::skipped, and
  // the sweep carries on; its index entry is kept, so every later sweep
  // reports it until repaired. Admin only. InvalidArgument for an as_of
  // after now unless options.dry_run (a dry run may look ahead).
  Result<SweepReport> Sweep(const Actor& admin, const SweepOptions& options);

  // Caller needs role user. Creates the record ACTIVE, owned by the caller;
  // subjects named by unknown identifiers are registered with a new key.
  // FailedPrecondition if no retention policy exists for the kind.
  // Returns the new record id.
  Result<uint64_t> CreateRecord(const Actor& actor, const NewRecord& record);

  // CreateRecord for several records in one atomic write (one fsync, one
  // commit of their events): all of them are created, with consecutive
  // ids in the order given, or none. InvalidArgument for an empty batch or
  // one of more than Limits::max_batch_records records; a record refused
  // refuses the batch with CreateRecord's error, its message starting
  // "record <position>: " (from 0). Returns the new ids in order.
  Result<std::vector<uint64_t>> CreateRecords(
      const Actor& actor, const std::vector<NewRecord>& records);

  // The caller's view of record `id` (docs/access-rules.md). `purpose` is
  // needed by officers for closed and blocked records and by anyone for the
  // personal data of sensitive records. NotFound if the caller may not see
  // it; DataLoss if a stored ciphertext fails to authenticate, or if the
  // record does not decode (NotFound then to a caller who is neither an
  // officer, an admin, nor its owner or a grantee).
  // `check` (types.h) sees the view before its disclosure is recorded.
  Result<RecordView> GetRecord(const Actor& actor, uint64_t id,
                               const std::optional<Purpose>& purpose = {},
                               const BeforeDisclosure<RecordView>& check = {});

  // GetRecord for several ids under one purpose: one answer per id, in
  // order, each the view or the error GetRecord would give it (NotFound
  // alike for a missing record and one the caller may not see; DataLoss).
  // Every disclosure is recorded in one commit before anything is
  // returned. The call fails as a whole (and returns nothing) for an empty
  // batch or one of more than Limits::max_batch_records ids
  // (InvalidArgument), an invalid purpose, any other error, or with
  // NotFound when a record disclosed changed between its read and that
  // commit (as ListRecords), or with the status `check` returns for the
  // answers (before anything is recorded).
  Result<std::vector<Result<RecordView>>> GetRecords(
      const Actor& actor, const std::vector<uint64_t>& ids,
      const std::optional<Purpose>& purpose = {},
      const BeforeDisclosure<std::vector<Result<RecordView>>>& check = {});

  // Records the caller may see, in id order, filtered. Examines at most
  // Limits::max_list_scan records per call; a page may hold fewer than
  // `limit` records while next_after_id != 0. A record that cannot be read
  // (DataLoss) is left out and counted in ListPage::skipped. InvalidArgument
  // for a query out of limits (CheckListQuery, storage/limits.h). `check`
  // sees the page before its disclosures are recorded.
  Result<ListPage> ListRecords(const Actor& actor, const ListQuery& query,
                               const BeforeDisclosure<ListPage>& check = {});

  // Owner only, ACTIVE only. The grantee must be an existing, unrevoked
  // principal (InvalidArgument otherwise). ResourceExhausted if the record
  // already has Limits::max_grants grantees.
  Status Grant(const Actor& actor, uint64_t id, std::string_view grantee);

  // Replaces the fields of one subject's part (owner only, ACTIVE only).
  // Returns the record's new version. InvalidArgument for fields out of
  // their limits (CheckFields); ResourceExhausted if the record's personal
  // bytes would exceed Limits::max_personal_bytes.
  Result<uint64_t> Rectify(const Actor& actor, uint64_t id,
                           std::string_view subject_id,
                           const std::vector<Field>& fields);

  // A principal that sees the personal data notes that some of a subject's
  // data is incorrect. The note is encrypted under the subject's key.
  // InvalidArgument for an empty or oversized note; ResourceExhausted if the
  // record has Limits::max_flags_per_record flags, or the note would take
  // its personal bytes past Limits::max_personal_bytes.
  Status FlagIncorrect(const Actor& actor, uint64_t id,
                       std::string_view subject_id, std::string_view note,
                       const std::optional<Purpose>& purpose = {});

  // Records that the data subject contests accuracy or lawfulness, with the
  // corrected information; shown with the record from then on. Officer
  // only; any state but ERASED. InvalidArgument for a statement or fields
  // out of their limits; ResourceExhausted if the record has
  // Limits::max_contests_per_record contests, or the contest would take its
  // personal bytes past Limits::max_personal_bytes.
  Status Contest(const Actor& actor, uint64_t id, std::string_view subject_id,
                 std::string_view statement,
                 const std::vector<Field>& corrected);

  // ACTIVE -> CLOSED. Owner only.
  Status Close(const Actor& actor, uint64_t id);
  // ACTIVE or CLOSED -> BLOCKED at once (an unfounded alert). Owner only.
  Status Withdraw(const Actor& actor, uint64_t id);
  // Any state but ERASED -> ERASED: destroys the personal parts, keeps the
  // attributes. Owner (while the record is visible to it) or admin.
  // FailedPrecondition, naming the holds, while a legal hold covers it.
  // With Options::erasure_compaction_delay 0, the erased bytes are
  // compacted away before it returns; with a delay, never inside it (the
  // next sweep does it once the delay has passed: docs/retention.md,
  // "Deletion bound").
  Status EraseRecord(const Actor& actor, uint64_t id);

  // ---- Reminders (storage/reminders.h; docs/accountability.md) -----------

  // Role user. The reminders of the records the caller owns and still sees
  // (ACTIVE or CLOSED, as of now): each next deadline (closure, blocking,
  // erasure; after any legal hold) within query.warn_before, and each
  // ACTIVE record open query.open_too_long or longer; by record id, then
  // reason, each with the time it was marked delivered, if it was. One
  // page (ReminderPage): records after query.after_record_id, at most
  // Limits::max_reminders_per_call reminders from at most
  // Limits::max_list_scan records examined; a record that does not decode
  // is left out and counted (ReminderPage::skipped).
  // Read-only, no event (it discloses no personal data). Costs one read
  // per record examined. InvalidArgument for a query CheckReminderQuery
  // refuses.
  Result<ReminderPage> DueSoon(const Actor& actor, const ReminderQuery& query);
  // Role user. Remembers for good that the caller was told of `reminders`
  // (as DueSoon returned them; delivered_at is ignored): DueSoon gives them
  // with that time from then on. Marks of the same record and reason at
  // another deadline are dropped (not those of an open-too-long reminder,
  // which stand for every age). One write.
  Status MarkRemindersDelivered(const Actor& actor,
                                const std::vector<Reminder>& reminders);

  // ---- Legal holds (docs/retention.md, "Legal holds") -------------------

  // Officer only. Holds one record, or every record of one subject, until
  // `ends_at` (which must be later than now) or release. A hold postpones
  // erasure: the record is erased at the first instant no hold covers it
  // (at the hold's end or release), and EraseRecord and ShredSubject are
  // refused with FailedPrecondition naming the holds. It never changes what
  // anyone can see. NotFound for an unknown record or subject;
  // FailedPrecondition for a record already ERASED (by its deadline too);
  // InvalidArgument for an empty or oversized reason, or an end not in the
  // future or more than kMaxPolicyPeriod (200 years) ahead;
  // ResourceExhausted if Limits::max_holds_per_record (or
  // max_holds_per_subject) holds are already in force on it.
  Result<HoldView> SetRecordHold(const Actor& officer, uint64_t record_id,
                                 std::string_view reason, Timestamp ends_at);
  Result<HoldView> SetSubjectHold(const Actor& officer,
                                  std::string_view subject_id,
                                  std::string_view reason, Timestamp ends_at);
  // Officer only. Erasures the hold postponed become due at once, dated at
  // the release. NotFound
  // for an unknown id; FailedPrecondition if already released.
  Status ReleaseHold(const Actor& officer, std::string_view hold_id);
  // Officer, auditor or admin (PermissionDenied otherwise). The holds in
  // force now; with include_ended, released and ended ones too. By id,
  // those after `after_id` ("": from the first), at most `limit` (0: all).
  Result<std::vector<HoldView>> ListHolds(const Actor& actor,
                                          bool include_ended,
                                          std::string_view after_id = {},
                                          size_t limit = 0);

  // ---- Access history and subject reports (docs/history.md) -------------

  // Auditor only, and never an admin (PermissionDenied). Who saw or changed
  // the subject's data, when and why:
  // events with from <= at < to and seq > after_seq, in order, at most
  // `limit` (1..Limits::max_page_size). Includes events on records erased
  // long ago; nothing once the subject is shredded (its history is sealed
  // under its destroyed key). NotFound for an unknown subject id, which a
  // shredded subject's becomes once CompleteShreds has finished it.
  // `check` looks at a page that discloses something before its
  // access_history event is written (BeforeDisclosure).
  Result<AccessHistoryPage> AccessHistory(
      const Actor& auditor, std::string_view subject_id, Timestamp from,
      Timestamp to, uint64_t after_seq = 0, uint32_t limit = 100,
      const BeforeDisclosure<AccessHistoryPage>& check = {});

  // Auditor or admin. Walks the whole hash chain of the access history and
  // reports the first sequence number that fails to verify. First makes
  // every applied write durable (one records sync if one is pending, as
  // after a shred), so the head it reports cannot be taken back by a power
  // loss. `through`: heads recorded out of band from earlier
  // verifications (or custosd's log), each of which the chain must still
  // pass through with the same link: problem "anchor" otherwise (a tail
  // cut and the head rewritten to match, which nothing else shows;
  // docs/history.md). Errors: InvalidArgument for more than
  // kMaxRecordedHeads or a link that is not 64 hex digits; that sync's
  // failure, or an earlier failed sync or write of the store (reopen it).
  // Progress: "events".
  Result<ChainVerification> VerifyChain(
      const Actor& actor, const WorkProgressFn& progress = nullptr,
      const std::vector<RecordedHead>& through = {});

  // The history's head (seq and link) once every applied write is durable:
  // no role, for custosd's log (docs/operations.md, "Keeping the history's
  // head out of band"). Errors: that sync's failure, or the store's
  // earlier one.
  Result<RecordedHead> DurableHistoryHead();

  // The retention policies this engine obeys (loaded at Open, or set
  // since), and the kinds whose stored policy failed to authenticate: no
  // role, for custosd's log at start (docs/operations.md, "Keeping the
  // history's head out of band"). A policy carries no personal data.
  struct PoliciesInForce {
    std::vector<RetentionPolicy> policies;
    std::vector<std::string> unauthenticated;
  };
  PoliciesInForce PoliciesInForceNow() const;

  // Auditor or admin. The register of processing activities
  // (storage/processing_register.h, docs/accountability.md): per record
  // kind, the periods in force, the field names its personal parts have
  // held, who owns or received its records, its records by effective state
  // now and its subjects; and the security measures. Holds no personal
  // data. Reads every record: its cost grows with the store.
  Result<ProcessingRegister> ProduceProcessingRegister(const Actor& actor);

  // Auditor or admin. Statistics that survive erasure
  // (storage/statistics.h, docs/accountability.md): per record kind, the
  // records by state, the records created, closed, blocked and erased per
  // month, the time from creation to closure in the IMI report's buckets,
  // and the records created per attribute value; erased records included.
  // Holds no personal data; writes nothing. Answered from the statistics
  // index: its cost grows with the kinds, months and attribute values and
  // the transitions since the last fold (FoldStatistics), not with the
  // records. Counts the transitions written down (a deadline passed is
  // written down by the next sweep). InvalidArgument for a query
  // CheckStatisticsQuery refuses; DataLoss for a corrupt index entry.
  Result<Statistics> ProduceStatistics(const Actor& actor,
                                       const StatisticsQuery& query);
  // Folds the transitions recorded since the last fold into the
  // statistics' aggregates (no caller: trusted in-process use, as
  // RunMaintenance, which calls it, and Sweep). Idempotent and crash-safe.
  // Returns how many were folded.
  Result<size_t> FoldStatistics();

  // Auditor only, and never an admin (PermissionDenied). Everything held on
  // the subject, for their access request: the personal data still held in
  // any state, states and deadlines, holds, flag notes, contests and the
  // full access history. Producing it is itself an event.
  // NotFound for an unknown or shredded subject.
  // `check` looks at the report before its event is written
  // (BeforeDisclosure): custosd refuses there one too large to send.
  Result<SubjectReport> ProduceSubjectReport(
      const Actor& auditor, std::string_view subject_id,
      const BeforeDisclosure<SubjectReport>& check = {});

  // Auditor only, and never an admin (PermissionDenied). The scope of a
  // personal-data breach (docs/accountability.md): every disclosure the
  // principals named received with query.from <= at < query.to, per data
  // subject (records, fields by name, when, why), and each subject's
  // identifier to notify them by. Its cost grows with those disclosures,
  // not with the history. Disclosures to subjects shredded since are
  // counted, without identity. Producing it is itself recorded: a
  // breach_scope event per subject in it and one for the act, with the
  // stated purpose (kind legal_obligation).
  // InvalidArgument for a query CheckBreachQuery (storage/limits.h)
  // refuses; NotFound naming a principal id that no principal has or had;
  // ResourceExhausted for more than Limits::max_breach_disclosures
  // disclosures (split the window).
  // `check` looks at the scope before its events are written
  // (BeforeDisclosure).
  Result<BreachScope> ProduceBreachScope(
      const Actor& auditor, const BreachQuery& query,
      const BeforeDisclosure<BreachScope>& check = {});

  // ---- Subjects ---------------------------------------------------------

  // Admin or auditor: the subject id of an external identifier, the lookup
  // written down first as a find_subject event in the subject's history
  // (the caller learnt that the person is a data subject here: their
  // report names who looked them up). NotFound if none (or shredded; no
  // event); InvalidArgument for an empty identifier or one longer than
  // Limits::max_identifier_length.
  Result<std::string> FindSubject(const Actor& actor,
                                  std::string_view identifier);

  // Admin only. Refused (FailedPrecondition, naming them) while a legal
  // hold covers any record of the subject: a hold on the subject, on one
  // of its records, or on another subject of one of its records.
  // NotFound for an unknown subject, or a shredded one whose key is gone;
  // DataLoss("corrupt subject") for a stored blind index of the wrong size.
  // A subject already marked shredded whose key survived (an earlier call
  // failed in the key's destruction) is finished without the hold check:
  // its records side is made durable, then only its key is destroyed, at
  // the first call's shred time (one shred event, the first call's).
  // Destroys the subject's data key (crypto-shredding): at once
  // every part, flag note and contest of that subject is undecipherable
  // everywhere, and records left with no readable part read as ERASED.
  // Costs the same whatever the subject's data and the store's size: the
  // destroyed key and sealed identifier leave the files at the next
  // CompleteShreds, Sweep, EraseRecord or Open (Options::
  // compact_after_erasure). The bookkeeping on records is finished later,
  // in bounded steps, by CompleteShreds().
  Status ShredSubject(const Actor& actor, std::string_view subject_id);

  // Admin only. Replaces the subject's data key, when it may be
  // compromised: every part, flag note and contest of the subject, its
  // sealed identifier and its access-history parts are sealed again under a
  // new key, in batches of Options::rekey_batch_size, and the old key is
  // destroyed before this returns; its old ciphertexts and wrapped key leave
  // the files like erased ones (Options::compact_after_erasure). Everything
  // reads as before, and the history chain still verifies. Writes a
  // `rekey` event. Crash-safe: Open finishes an interrupted re-key, and so
  // does calling this again. A legal hold does not prevent it (nothing is
  // erased). NotFound for an unknown or shredded subject; DataLoss if a
  // ciphertext of the subject opens under neither key.
  Status RekeySubject(const Actor& admin, std::string_view subject_id);

  // Admin only. Scans every byte of every file of the data directory for
  // the erased ciphertexts and destroyed wrapped keys recorded as erasure
  // witnesses (their random nonces, which reveal nothing), and reports what
  // it finds. Reads files while the engine runs; cost grows with the size of
  // the data directory. Progress (`progress`, WorkProgress): "witnesses",
  // then "files".
  Result<ErasureReport> VerifyErasure(const Actor& admin,
                                      const WorkProgressFn& progress = nullptr);

  // ---- Keys (docs/crypto.md, "Keyring" and "Rotation") --------------------

  // Admin only. Rewraps the keyring under `new_master` and compacts the old
  // wrapped keyring out of the keystore's files: from then on only
  // `new_master` opens the data directory (the caller stores it first).
  // Every record, subject lookup, credential and history link stays valid:
  // no key in the keyring changes. Writes a rotate_master_key event.
  // InvalidArgument for an empty key.
  Status RotateMasterKey(const Actor& admin,
                         const crypto::SecretKey& new_master);
  // Admin only. Starts a KEK rotation (a new key-encryption key, used for
  // every new data key at once) or resumes the one in progress, rewrapping
  // subject data keys under it in bounded synchronous batches; records are
  // not rewritten. A call stopped by max_keys, an error or a crash is
  // continued by the next call. When no data key is left under an old KEK,
  // the old KEKs are destroyed and compacted away. Writes a rotate_kek
  // event per call. InvalidArgument for a batch_size of 0 or over
  // kMaxKekBatchSize (storage/limits.h), before anything starts.
  Result<KekRotationReport> RotateKek(const Actor& admin,
                                      const KekRotationOptions& options = {});
  // Admin only. The KEK versions the keyring holds, ascending.
  Result<std::vector<uint32_t>> KekVersions(const Actor& admin);

  // ---- Backups (storage/backup.h; docs/operations.md, "Backups") ---------

  // Admin only. Writes a consistent snapshot of the whole store, both
  // databases at one instant, into `dir` (created; AlreadyExists unless
  // absent or empty) while writes continue. Both parts are sealed
  // under a new backup key kept only in this store's keyring and destroyed
  // once older than Options::backup_retention (ExpireBackupKeys, Sweep):
  // from then on the backup cannot be decrypted at all. Writes a backup
  // event. Errors: Internal for a file that cannot be written. Progress:
  // "records" and "keystore" (entries written, no total).
  Result<BackupReport> Backup(const Actor& admin, const std::string& dir,
                              const WorkProgressFn& progress = nullptr);
  // Checks a backup without a store or keys: manifest format version
  // (FailedPrecondition for an unknown one), manifest checksum, every
  // file's presence (NotFound naming it), size and BLAKE2b (DataLoss naming
  // it), and that both files are well-formed sealed chunks (DataLoss); what
  // the chunks hold is authenticated and parsed only by Restore. Progress:
  // "checksums" (bytes of the manifest's files).
  static Result<BackupVerification> VerifyBackup(
      const std::string& dir, const WorkProgressFn& progress = nullptr);
  // Admin only. Writes to `path` (which must not exist) a restore kit: the
  // backup keys held now and the erasure ledger, sealed under the master
  // key. A restore needs one at least as new as the backup; see
  // docs/operations.md for keeping kits within the backup retention.
  // The ledger has every erasure in force by now, whether a sweep has
  // written it down or not (Sweeper::LedgerErasuresInForce, written to
  // the live ledger first).
  // Writes an export_restore_kit event.
  Status ExportRestoreKit(const Actor& admin, const std::string& path);
  // Admin only. Destroys the backup keys older than
  // Options::backup_retention and compacts them out of the keystore's
  // files; returns how many. Writes an expire_backup_keys event when it
  // destroyed any. Sweep (not a dry run) calls it too, whether the sweep
  // succeeded or not.
  Result<size_t> ExpireBackupKeys(const Actor& admin);
  // Restores the backup in `backup_dir` into the new data directory of
  // `new_store` (FailedPrecondition if it holds a store), re-applying the
  // erasure ledger of `kit_path` (ExportRestoreKit of the live store):
  // subjects shredded, records erased and history pruned after the backup
  // up to the kit's writing stay gone (erasures after it are not in the
  // kit: restore with the newest), and VerifyErasure on the restored store
  // finds nothing.
  // `admin_id` must be an admin of the restored store, checked in the
  // backup before anything is written (Unauthenticated if unknown or
  // revoked, PermissionDenied without the role); the restore is a restore
  // event by it. The restored data carries a restore intent that Open
  // finishes before it returns, so a restore interrupted after its import
  // is finished by the next Open; one that fails with an error during its
  // import removes what it wrote; one interrupted (a crash) during it is
  // refused by Open (FailedPrecondition: remove the directory and restore
  // again). Errors: those of VerifyBackup; FailedPrecondition
  // "the key of this backup has expired ..." once the backup is older than
  // `new_store`'s backup retention by its clock (whatever kit holds its
  // key), or the kit older than the backup, and when `master` opens
  // neither kit nor backup, and for a kit of Custos's first format;
  // DataLoss for a corrupt kit.
  static Status Restore(const std::string& backup_dir, const Options& new_store,
                        crypto::SecretKey master, const std::string& kit_path,
                        std::string_view admin_id);

  // What the restore kit at `kit_path` says of itself, opened with
  // `master` (errors as Restore's for the kit): when it was written, and
  // how many backup keys and erasure ledger entries it holds.
  struct RestoreKitSummary {
    Timestamp written;
    size_t backup_keys = 0;
    size_t ledger_entries = 0;
  };
  static Result<RestoreKitSummary> InspectRestoreKit(
      const std::string& kit_path, const crypto::SecretKey& master);

  // The server's scheduled maintenance (no caller: trusted in-process use
  // only; its events name the principal "custos:retention"): sweeps what is
  // due now, expires backup keys past Options::backup_retention, and
  // completes up to `shred_budget` records of shredded subjects. Returns
  // the sweep's report (each step is attempted whatever the ones before it
  // returned; the first failure is the result). Then folds the statistics
  // (FoldStatistics), whatever failed before: a fold failure fails nothing
  // and is reported in SweepReport::statistics_folded. A stop requested
  // through `stop` ends the sweep early (SweepOptions::stop) and skips the
  // shred completion and the fold, which the next run does.
  Result<SweepReport> RunMaintenance(size_t shred_budget,
                                     std::stop_token stop = {});

  // Rewrites up to `budget` records of shredded subjects: drops their parts
  // and their subject ids (from the records, flags and contests) and moves
  // records with no part left to ERASED. Once a subject's records are done,
  // removes what else names it (its entry with the blind index, its hold
  // entries, its id in holds) and queues a compaction of the whole store,
  // after which no file names the subject (the MANIFEST: after the next
  // Open). Returns how many records were rewritten; 0 means nothing is
  // pending. Then compacts what erasures queued
  // (Options::compact_after_erasure), shredded keys included.
  // InvalidArgument for a budget over kMaxShredBudget (storage/limits.h);
  // a budget of 0 only finishes interrupted shreds' key destruction.
  // Progress: "records" (rewritten; reported under the write lock).
  Result<size_t> CompleteShreds(size_t budget,
                                const WorkProgressFn& progress = nullptr);

  // Admin only. How many records are in each visibility state at `as_of`,
  // their effective state at that instant (as every call sees them,
  // whether a sweep has written the transitions down or not). Read-only:
  // writes nothing, not even an event. A scan of every record, each
  // caught up: dear on a large store, so custosd counts in its scheduled
  // maintenance (CountRecordsForMaintenance), never on a scrape. Records
  // that do not decode are counted as unreadable. An `as_of` before
  // transitions already written down does not undo them: count at now (or
  // later, a projection). Errors: those of the store.
  Result<RecordStateCounts> CountRecordsByState(const Actor& admin,
                                                Timestamp as_of);
  // CountRecordsByState for the server's scheduled maintenance (no
  // caller: trusted in-process use only, as RunMaintenance).
  Result<RecordStateCounts> CountRecordsForMaintenance(Timestamp as_of);

  // Counters for custosd's metrics: cheap, no scan. Thread-safe.
  EngineStats Stats() const;

  // Number of unwrapped keys currently cached (for tests and metrics).
  size_t TEST_CachedKeyCount() const;
  // Writes applied and log syncs issued since Open (their ratio is the
  // group-commit factor).
  uint64_t TEST_WriteCount() const;
  uint64_t TEST_SyncCount() const;
  // Times a caller slept waiting for a sync of the records' log that
  // another caller ran.
  uint64_t TEST_SyncSleeps() const;
  // Makes the records database's next group sync fail with `status`, as a
  // failing disk would (the store then refuses every change until reopened).
  void TEST_FailNextSync(Status status);
  // `hook` runs when a backup or VerifyChain takes its records snapshot,
  // under the write lock (Store::TEST_SetSnapshotHook).
  void TEST_SetSnapshotHook(std::function<void()> hook);
  // Removes every cached key, so the next read unwraps from the keystore.
  void TEST_ClearKeyCache();
  // `hook` runs in the caller at the head of the create queue before it
  // takes the creates queued behind it (Records::CreateBatch), outside
  // every lock; TEST_QueuedCreates is the queue's length, its head included.
  void TEST_SetBeforeCreateGroup(std::function<void()> hook);
  size_t TEST_QueuedCreates() const;
  // Reads of the store for legal holds since Open: loads of every hold's
  // span, and lookups of one record's or one subject's holds.
  struct HoldLookups {
    uint64_t span_loads = 0;
    uint64_t record_lookups = 0;
  };
  HoldLookups TEST_HoldLookups() const;
  // `hook` runs in each range deletion (a sweep's, RunMaintenance's) once
  // it has read which ranges are queued, before its first write, outside
  // every lock (Erasure::TEST_SetAfterRangeQueueRead). REQUIRES: no call
  // of the engine running.
  void TEST_SetAfterRangeQueueRead(std::function<void()> hook);
  // The erasure compactions' rewrites of queued keys since Open
  // (Erasure::kRewriteKeysPerWrite), and their passes.
  using RewriteStats = ErasureRewriteStats;
  RewriteStats TEST_RewriteStats() const;
  // Passes of at most `keys` queued keys (Erasure::kCompactKeysPerPass).
  // REQUIRES: keys >= 1; no call of the engine running.
  void TEST_SetCompactKeysPerPass(size_t keys);
  // Called by the erasure compaction after each range it compacted and
  // each pass of queued keys (Erasure::TEST_SetAfterCompactionStep).
  // REQUIRES: no call of the engine running.
  void TEST_SetAfterCompactionStep(std::function<void()> hook);
  // Called by a sweep's pruning after each chunk it examined, holding the
  // pruning's lock (Sweeper::TEST_SetAfterPruneChunk). REQUIRES: no call
  // of the engine running.
  void TEST_SetAfterPruneChunk(std::function<void()> hook);

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  static uint64_t EpochOf(const Actor& actor) { return actor.epoch_; }
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_ENGINE_H_
