// Value types of the Custos engine's public API.
//
// Personal data appears only in PersonalPartInput / PartView fields, in flag
// notes and in contest statements; everything else is non-personal.

#ifndef CUSTOS_STORAGE_TYPES_H_
#define CUSTOS_STORAGE_TYPES_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace custos {

enum class Role { kUser, kOfficer, kAuditor, kAdmin };
enum class RecordState { kActive, kClosed, kBlocked, kErased };

std::string_view RoleName(Role role);
std::string_view RecordStateName(RecordState state);

struct PrincipalInfo {
  std::string id;
  std::string display_name;
  std::vector<Role> roles;
  bool redacted = false;
  bool revoked = false;
  Timestamp created_at;

  bool HasRole(Role role) const;
};

// Returned once when a principal is created: the token is never stored and
// cannot be recovered.
struct NewPrincipal {
  PrincipalInfo info;
  std::string token;
};

struct Attribute {
  std::string key;
  std::string value;
  bool operator==(const Attribute&) const = default;
};

struct Field {
  std::string name;
  std::string value;
  bool operator==(const Field&) const = default;
};

// One data subject's personal data in a record, as the host supplies it.
struct PersonalPartInput {
  std::string subject_identifier;  // External id: e-mail, national number…
  std::vector<Field> fields;
};

struct NewRecord {
  std::string kind;
  std::vector<Attribute> attributes;
  std::vector<PersonalPartInput> personal;
  std::vector<std::string> grants;  // Principal ids.
  bool sensitive = false;
};

// Why an officer reads closed or blocked data, or anyone reads sensitive
// data (DESIGN section 2).
enum class PurposeKind {
  kProofOfExchange,
  kSubjectConsent,
  kPublicInterest,  // e.g. legal proceedings.
  // A duty the law puts on the controller, e.g. notifying a personal-data
  // breach (GDPR Art. 33, 34): the purpose of a breach scope.
  kLegalObligation,
};
std::string_view PurposeKindName(PurposeKind kind);

struct Purpose {
  PurposeKind kind;
  std::string justification;  // Required, non-empty.
};

struct PartView {
  std::string subject_id;
  std::string subject_identifier;
  uint64_t version = 0;
  std::vector<Field> fields;
};

struct FlagView {
  std::string by;
  Timestamp at;
  std::string subject_id;
  std::string note;  // Empty unless personal data is shown.
};

struct ContestView {
  std::string by;
  Timestamp at;
  std::string subject_id;
  std::string statement;         // Empty unless personal data is shown.
  std::vector<Field> corrected;  // Empty unless personal data is shown.
};

// What a caller sees of a record. `personal_included` says whether parts,
// flag notes and contest contents were disclosed.
struct RecordView {
  uint64_t id = 0;
  std::string kind;
  std::string owner;
  std::vector<std::string> grants;
  std::vector<Attribute> attributes;
  RecordState state = RecordState::kActive;
  bool sensitive = false;
  uint64_t version = 0;
  Timestamp created_at;
  Timestamp updated_at;
  std::optional<Timestamp> closed_at;
  std::optional<Timestamp> blocked_at;
  std::optional<Timestamp> erased_at;
  std::vector<std::string> subject_ids;

  bool personal_included = false;
  // True when personal data was withheld only because the record is
  // sensitive and no purpose was given.
  bool purpose_required = false;
  std::vector<PartView> parts;
  std::vector<FlagView> flags;
  std::vector<ContestView> contests;
};

// A legal hold (DESIGN section 3): postpones erasure of one record, or of
// every record of one subject, until released or ended.
struct HoldView {
  std::string id;                     // Assigned by the engine ("h" + digits).
  std::optional<uint64_t> record_id;  // Exactly one of record_id and
  std::optional<std::string> subject_id;  // subject_id is set.
  std::string reason;
  std::string set_by;  // Principal id.
  Timestamp set_at;
  Timestamp ends_at;
  std::optional<Timestamp> released_at;
  std::string released_by;
};

// One event of a subject's access history, as an auditor sees it
// (docs/history.md).
struct AccessEvent {
  uint64_t seq = 0;
  Timestamp at;
  std::string principal_id;
  std::string principal_name;  // The display name at the time.
  std::string action;          // "create", "read", "read_restricted", …
  uint64_t record_id = 0;      // 0 for events not about a record.
  std::string record_kind;
  std::optional<RecordState> record_state;  // At the time of the event.
  std::optional<PurposeKind> purpose;
  std::string justification;
  // Names of the fields touched, never values. A grant lists its grantee
  // as "grantee:<principal id>".
  std::vector<std::string> fields;
};

struct AccessHistoryPage {
  std::vector<AccessEvent> events;  // In sequence order.
  uint64_t next_after_seq = 0;      // 0 when there is no more.
};

// The result of verifying the access-history chain.
// A kind whose stored retention policy is not what the access history says
// was last set (ChainVerification). The texts are the periods as a
// policy_set event gives them, after its kind: "erase_after:P6M,
// history_after:P5Y" (close_after and block_after first when set).
struct PolicyDifference {
  enum From { kNoPolicy, kShippedDefault, kEvent };
  enum Stored { kNone, kUnauthenticated, kStored };
  std::string kind;
  // What the chain says: no policy at all (no event and no shipped
  // default names the kind), the shipped default, or the kind's last
  // policy_set event, at last_set_seq.
  From expected_from = kNoPolicy;
  uint64_t last_set_seq = 0;
  std::string expected;
  // What the files hold: nothing, a value failing its MAC (or not
  // decoding), or a policy, as stored_text.
  Stored stored = kNone;
  std::string stored_text;
};

// The most PolicyDifference a verification lists (their total is counted).
inline constexpr size_t kMaxPolicyDifferences = 100;

// Their names over RPC and in the tool's JSON: "none", "default", "event";
// "none", "unauthenticated", "policy".
std::string_view PolicyDifferenceFromName(PolicyDifference::From from);
std::string_view PolicyDifferenceStoredName(PolicyDifference::Stored stored);

struct ChainVerification {
  bool ok = true;
  std::string problem;        // "" when ok; otherwise what broke.
  uint64_t first_broken = 0;  // The first sequence number that fails.
  uint64_t verified = 0;      // Entries whose links verified.
  uint64_t head_seq = 0;      // The last sequence number of the log.
  // The head's link, lowercase hex. Recorded out of band (e.g. by the
  // operator after each verification), it lets a later verification prove
  // that the log was not truncated and re-headed since.
  std::string head_link_hex;
  // Of the heads given to verify through (RecordedHead): those found with
  // their link, and those older than the checkpoint's last folded event
  // (not checked: their links are no longer stored).
  uint64_t anchors_matched = 0;
  uint64_t anchors_folded = 0;
  // Problem "anchor": the last recorded head (in seq order) that held
  // before the one that failed, 0 if none: the chain departs from what was
  // recorded after it, at or before first_broken.
  uint64_t anchor_last_held = 0;
  // Apart from the chain (ok, problem and first_broken are the chain's
  // alone): whether the stored retention policies were compared with it
  // (the walk reached the last stored event, whatever else it found), and
  // the kinds whose stored policy is not what the chain says was last set
  // (its last policy_set event, or the shipped default for a kind without
  // one): an older value put back, a policy deleted, added or failing its
  // MAC. At most kMaxPolicyDifferences, in kind order; the total beside.
  bool policies_checked = false;
  std::vector<PolicyDifference> policy_differences;
  uint64_t policy_differences_total = 0;
};

// A head recorded out of band from an earlier verification (its head_seq
// and head_link_hex), for a later one to check that the chain still passes
// through it: problem "anchor" when it does not (docs/history.md, "What the
// chain cannot catch on its own").
struct RecordedHead {
  uint64_t seq = 0;
  std::string link_hex;  // 64 hex digits.
};

struct ListQuery {
  std::optional<std::string> kind;
  std::optional<RecordState> state;
  std::vector<Attribute> attribute_equals;  // All must match.
  std::optional<Timestamp> created_from;    // Inclusive.
  std::optional<Timestamp> created_to;      // Exclusive.
  uint64_t after_id = 0;                    // Cursor: start after this id.
  uint32_t limit = 100;                     // 1..Limits::max_page_size.
  std::optional<Purpose> purpose;           // For officers.
};

struct ListPage {
  std::vector<RecordView> records;
  // Pass as after_id to continue; 0 when the scan reached the end.
  uint64_t next_after_id = 0;
  // Records examined that could not be read (DataLoss: a stored record or
  // ciphertext is corrupt), left out of the page so the rest can be listed.
  // GetRecord on one of them returns the DataLoss.
  size_t skipped = 0;
};

// A look at what Engine::GetRecord, GetRecords or ListRecords is about to
// return, before the disclosures in it are recorded: OK to go on; any
// other status is returned instead, and nothing is recorded, so that no
// history says a principal received data that never reached it (custosd
// refuses there an answer too large to send). Called on the caller's
// thread, under no lock, once per attempt (a read repeated after a
// concurrent change is looked at again).
template <typename Answer>
using BeforeDisclosure = std::function<Status(const Answer&)>;

// How far a long engine operation has come (custosd's Admin.progress):
// Engine::VerifyErasure, Backup, VerifyBackup, VerifyChain, RotateKek
// (KekRotationOptions::progress) and CompleteShreds report through a
// WorkProgressFn. `phase` names what the operation does now (each lists its
// phases), `done` counts the phase's `unit`s so far, of `total` (0: not
// known ahead). Reported as each phase begins, every kProgressEvery units
// and as it ends, on the working thread; CompleteShreds reports under the
// write lock. A WorkProgressFn must be quick and must not call the engine.
struct WorkProgress {
  std::string_view phase;
  std::string_view unit;
  uint64_t done = 0;
  uint64_t total = 0;
};
using WorkProgressFn = std::function<void(const WorkProgress&)>;
inline constexpr uint64_t kProgressEvery = 1000;

// Calls `fn` (when set) with the phase, unit and counts when done is a
// multiple of kProgressEvery (0 included: the phase begins), when it
// reaches a known total, and when `last` (the phase's end).
inline void ReportProgress(const WorkProgressFn& fn, std::string_view phase,
                           std::string_view unit, uint64_t done,
                           uint64_t total = 0, bool last = false) {
  if (fn == nullptr) return;
  if (last || done % kProgressEvery == 0 || done == total) {
    fn(WorkProgress{phase, unit, done, total});
  }
}

// What Engine::Sweep() does in one call (docs/retention.md, "Sweeper").
// Where a sweep is (SweepOptions::progress).
enum class SweepPhase {
  kTransitions,     // Applying due transitions, batch by batch.
  kDestroyingKeys,  // Destroying the keys of ended buckets: first those
                    // erased whole by key, after the transitions those
                    // emptied record by record.
  kPruningHistory,  // Pruning access-history events whose retention ended.
  kCompacting,      // Removing erased bytes from the files: the ranges
                    // of buckets erased by key, before the transitions;
                    // everything else queued, last.
};
// "transitions", "destroying_keys", "pruning_history", "compacting".
std::string_view SweepPhaseName(SweepPhase phase);

struct SweepProgress {
  SweepPhase phase = SweepPhase::kTransitions;
  size_t records_done = 0;  // Due records processed so far (skipped apart).
  size_t batches = 0;       // Batches of transitions committed so far.
};

struct SweepOptions {
  // Apply every transition due at or before this instant. REQUIRES: not
  // after now, unless dry_run (a sweep writes down only what is in force).
  Timestamp as_of;
  // List what would happen, change nothing. A dry run may look ahead.
  bool dry_run = false;
  // Records transitioned per write lock hold. Default: 100.
  size_t batch_size = 100;
  // Stop after this many records (the rest waits for the next sweep).
  size_t max_records = SIZE_MAX;
  // Pause between batches, so a backlog leaves room for foreground work
  // (between pruning's chunks too).
  std::chrono::microseconds pause_between_batches{0};
  // Access-history events pruning examines in this sweep, from where the
  // last sweep's pruning stopped to the head of the log at most: in chunks
  // of batch_size (at least 100), each under a write lock of its own.
  // Unset: Options::history_examined_per_sweep (default 10,000) plus the
  // events written from the last pruning sweep's beginning to this one's
  // (its own transitions' go to the next sweep), so that a pass
  // over the log always ends however busy the store (docs/history.md).
  // Set: exactly this many at most. REQUIRES: 1 to kMaxHistoryExamined
  // (10,000,000; storage/limits.h) when set.
  std::optional<size_t> max_history_examined = std::nullopt;
  // Called on the sweeping thread, never under the write lock: after each
  // batch of transitions, and as each later phase begins (kCompacting
  // also once before the transitions, when buckets were erased by key). Must be
  // quick and must not call the engine. Default: none.
  std::function<void(const SweepProgress&)> progress = nullptr;
  // A stop requested ends the sweep early, with what it did written down
  // and SweepReport::stopped set: after the batch of transitions, the
  // chunk of pruning or the range or pass of compaction in progress (what
  // is left stays queued, for the next sweep or the next Engine::Open,
  // which compacts the queue before it returns). The keys of due buckets left
  // empty are still destroyed (DestroyDueBuckets). custosd requests it when it
  // stops. Default: none.
  std::stop_token stop = {};
};

struct PlannedTransition {
  uint64_t record_id = 0;
  RecordState from = RecordState::kActive;
  RecordState to = RecordState::kActive;
  Timestamp due;
};

// An erasure legally due that legal holds postpone past a sweep's as_of.
struct HeldErasure {
  uint64_t record_id = 0;
  // When it becomes due if no hold is set, extended or released meanwhile.
  Timestamp erasable_at;
  // The holds that still apply at as_of.
  std::vector<std::string> hold_ids;
};

// A due record a sweep could not process, left exactly as it was
// (docs/retention.md, "Sweeper").
struct SkippedRecord {
  uint64_t record_id = 0;
  // The error, e.g. "DataLoss: corrupt stored record" or "InvalidArgument:
  // deadline out of range: ...". Never personal data.
  std::string reason;
};

// Engine::CountRecordsByState: how many records are in each visibility
// state at `as_of`, their effective state then (every deadline due by then
// in force, a record whose every subject was shredded ERASED).
struct RecordStateCounts {
  Timestamp as_of{};
  uint64_t active = 0;
  uint64_t closed = 0;
  uint64_t blocked = 0;
  uint64_t erased = 0;
  // Records that could not be read (DataLoss: a corrupt stored record),
  // counted in no state.
  uint64_t unreadable = 0;
};

struct SweepReport {
  size_t closed = 0;
  size_t blocked = 0;
  size_t erased = 0;
  // Erasures this sweep found due and postponed to a legal hold's end. A
  // record whose hold was in force when its deadline was last written
  // (close, block, policy re-apply, the hold's setting) already has the
  // hold's end as its deadline and is not counted (docs/retention.md).
  size_t postponed = 0;
  // Each of them, with the holds that apply.
  std::vector<HeldErasure> held;
  // History events pruning examined that do not decode or fail their MAC:
  // kept, not pruned (VerifyChain says what is wrong with them). Counted
  // when the pruning cursor passes them, not by every sweep.
  size_t history_unauthenticated = 0;
  // Record kinds whose stored retention policy failed its MAC when the
  // store was opened (written without the key, docs/storage.md
  // "Policies"): their records keep the deadlines they have, none that
  // needs the policy is computed (those records are skipped, with the
  // reason), and their history is not pruned, until an admin sets the
  // policy again. Listed by every sweep (a dry run too) while so.
  std::vector<std::string> unauthenticated_policies;
  // Access-history events pruned because their retention ended
  // (docs/history.md, "Retention").
  size_t history_pruned = 0;
  // Access-history events left between where pruning stopped and the
  // head of the log (0: it reached the head). An event is pruned when
  // pruning examines it due: a pass examines every event, then sleeps
  // and examines only those written since, until one it kept can be due
  // (docs/history.md, "Retention"); so this is how far pruning has to go:
  // an operator's measure of how late pruning may be
  // (custos_history_prune_behind).
  uint64_t history_behind = 0;
  // Access-history events this sweep's pruning examined (stubs included).
  uint64_t history_examined = 0;
  // Every transition applied (or, in a dry run, that would be), in order.
  std::vector<PlannedTransition> transitions;
  // False when max_records stopped the sweep with work still due, or a
  // stop was requested while it ran (SweepOptions::stop; see `stopped`).
  bool complete = true;
  // A stop was requested while the sweep ran (SweepOptions::stop): it
  // ended at the next boundary, and what is left of it, if anything,
  // waits for the next sweep.
  bool stopped = false;
  // Deadline buckets whose keys the sweep destroyed: every record due in
  // them was written down as erased (or moved by a hold) first
  // (docs/retention.md, "Deadline keys").
  size_t buckets_destroyed = 0;
  // Records the sweep met and could not process: skipped, not counted
  // against max_records, and met again (and reported) by every sweep until
  // repaired. In id order of meeting; one entry per record.
  std::vector<SkippedRecord> skipped;
  // Deadline-index keys of the wrong form ("d:" not followed by exactly a
  // u64 instant and a u64 record id; this engine writes none) the sweep
  // met: each skipped (it names no record), counted once per sweep, and
  // met again by every sweep until removed.
  size_t malformed_index_keys = 0;
  // Engine::RunMaintenance only: records of shredded subjects its shred
  // completion rewrote (0: none was pending).
  size_t shred_records_rewritten = 0;
  // False when folding the statistics index failed after the sweep
  // committed (Engine::Sweep, RunMaintenance): the sweep's result stands,
  // the next one folds again, and Engine::FoldStatistics returns the error.
  bool statistics_folded = true;
};

// Engine::RotateKek's bounds.
struct KekRotationOptions {
  // Data keys rewrapped per synchronous write. Default: 1000.
  size_t batch_size = 1000;
  // Stop after this many (the next call continues). Default: no limit.
  size_t max_keys = SIZE_MAX;
  // Phase "keys" (rewrapped by this call, of max_keys when bounded), after
  // each batch's write. Default: none.
  WorkProgressFn progress = nullptr;
};

struct KekRotationReport {
  uint32_t kek_version = 0;  // The KEK every data key now moves under.
  size_t rewrapped = 0;      // By this call.
  // True once no data key is left under an old KEK and the old KEKs are
  // destroyed; false when max_keys stopped the call first.
  bool complete = false;
};

// Tests only: the erasure compactions' rewrites of queued keys
// (Erasure::CompactQueued; Engine::TEST_RewriteStats).
struct ErasureRewriteStats {
  size_t writes = 0;         // Writes of rewritten keys.
  size_t keys = 0;           // Keys rewritten, over all of them.
  size_t largest_keys = 0;   // The most keys one write held.
  size_t passes = 0;         // Passes over queued keys.
  size_t largest_pass = 0;   // The most keys one pass held.
  size_t largest_clear = 0;  // The most entries one clearing write covered.
};

// What Engine::VerifyErasure() found.
struct ErasureReport {
  // Erased ciphertexts and destroyed keys the engine knows of (by witness).
  size_t witnesses = 0;
  // How many of them still appear, in any file of the data directory.
  size_t found = 0;
  // Files (relative to data_dir) in which any was found.
  std::vector<std::string> files_with_leftovers;
  // Queued range deletions ("q:rdelete:") whose value did not parse or
  // named another last key than its bucket's, ever: each was carried out
  // over its bucket's "pb:" range, computed from its first key (the stored
  // last key is never trusted; nothing is deleted when the first key names
  // no bucket's range).
  uint64_t corrupt_queue_entries = 0;
  // Entries of a deleted "pb:" range whose value did not decode, ever:
  // deleted all the same, but with no witness (their ciphertexts could not
  // be found in them), so this scan cannot look for their bytes.
  uint64_t undecodable_sealed_entries = 0;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_TYPES_H_
