// Internal to storage/: the access history (DESIGN section 5).
//
// Every operation on personal data is an event. History appends events to
// an append-only, hash-chained log kept in the records database, in the
// same LevelDB write as the change they describe; answers "who saw this
// person's data, when and why" for one subject; verifies the chain; and
// prunes events whose retention has ended without breaking the chain.
// docs/history.md describes the stored form, the chain and the contracts.
//
// What identifies a data subject in an event (the subject id, the
// justification of the purpose, the names of the fields touched) is sealed
// under that subject's data key, one sealed part per subject, so
// crypto-shredding the subject erases their history too. Who acted, when,
// on which record, and what action stay in clear.
//
// Thread safety: History is used by one writer at a time. Stage, Commit,
// Prune and DropSubjectIndex change the log and REQUIRE external
// serialisation (the engine's write mutex), and Stage and its Commit must
// be called under the same hold of it. Verify, ForSubject and Scan only read
// (each from one LevelDB snapshot) and may run concurrently with each other
// and with the writer. head() is thread-safe.

#ifndef CUSTOS_STORAGE_HISTORY_H_
#define CUSTOS_STORAGE_HISTORY_H_

#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/keyed_hash.h"
#include "crypto/secret_key.h"
#include "storage/key_cache.h"
#include "storage/types.h"

namespace custos {

// What was done. Stored as a Cap'n Proto enum (schema/history.capnp); the
// names below are part of the subject report and never change.
enum class EventAction {
  kCreate,
  kRead,
  kReadRestricted,  // A read of closed or blocked data for a stated purpose.
  kRectify,
  kFlag,
  kContest,
  kGrant,
  kClose,
  kWithdraw,
  kBlock,
  kErase,
  kExport,
  kHoldSet,
  kHoldReleased,
  kShred,
  kReport,
  kRotateMasterKey,
  kRotateKek,
  kPrincipalCreated,  // About no subject: who may act changed.
  kPrincipalRevoked,
  kRekey,              // The subject's data key was replaced (RekeySubject).
  kCredentialRotated,  // About no subject: a principal's token replaced.
  kBackup,             // Backups (storage/backup.h): events about no subject.
  kRestore,
  kExpireBackupKeys,
  kExportRestoreKit,
  // An auditor's breach scope (docs/accountability.md): per subject named,
  // their identifier disclosed to the auditor for a notification; about no
  // subject, the act itself (the principals examined, in clear).
  kBreachScope,
  // An auditor read a page of the subject's access history (its
  // justifications and field names, sealed under the subject's key).
  kAccessHistory,
  // An admin set a kind's retention policy: about no subject, its periods
  // in clear (Engine::SetPolicy).
  kPolicySet,
  // An admin or auditor found the subject by their identifier
  // (Engine::FindSubject): the caller learnt that the person is a data
  // subject of the store, and their subject id.
  kFindSubject,
};

// "create", "read", "read_restricted", "rectify", "flag", "contest",
// "grant", "close", "withdraw", "block", "erase", "export", "hold_set",
// "hold_released", "shred", "report", "rotate_master_key", "rotate_kek",
// "principal_created", "principal_revoked", "rekey", "credential_rotated",
// "backup", "restore", "expire_backup_keys", "export_restore_kit",
// "breach_scope", "access_history", "policy_set", "find_subject"; "unknown"
// for a value outside the enum.
std::string_view EventActionName(EventAction action);

// True for the actions of events about no subject and no record: key
// rotations, principals and their credentials, backups and restores,
// retention policies (docs/history.md, "Which call writes which event").
// Stage refuses such an event that names a subject (InvalidArgument):
// pruning never looks for a subject in them (Sweeper::SubjectEventDue).
bool NeverAboutASubject(EventAction action);

// True for the actions by which the acting principal received a subject's
// personal data: read, read_restricted, export, report, breach_scope,
// access_history and find_subject (the person's presence in the store).
// Stage indexes such events that name subjects by principal and time (the
// disclosure index, docs/history.md).
bool IsDisclosure(EventAction action);

// One event, as the engine reports it to Stage.
struct Event {
  Timestamp at;
  std::string principal_id;    // Required, non-empty.
  std::string principal_name;  // The display name at the time.
  EventAction action = EventAction::kRead;
  uint64_t record_id = 0;                   // 0 for events not about a record.
  std::string record_kind;                  // "" for events not about a record.
  std::optional<RecordState> record_state;  // At the time; none if no record.
  // The subjects concerned (subject ids, "s" + hex). Each non-empty, no
  // duplicates. May be empty (e.g. an event about no subject's data).
  std::vector<std::string> subject_ids;
  std::optional<Purpose> purpose;
  std::vector<std::string> fields;  // Names of the fields touched; never
                                    // values.
  // Empty, or one list per entry of subject_ids: the names of the fields
  // of that subject's that were touched, sealed into that subject's part
  // instead of `fields` (a record of several subjects: each subject's
  // report names only their own fields, not the others').
  std::vector<std::vector<std::string>> fields_by_subject;
};

// The part of a stored event that is in clear.
struct EventHeader {
  uint64_t seq = 0;
  Timestamp at;
  std::string principal_id;
  std::string principal_name;
  EventAction action = EventAction::kRead;
  uint64_t record_id = 0;
  std::string record_kind;
  std::optional<RecordState> record_state;
  std::optional<PurposeKind> purpose_kind;
};

// An event as a history query returns it.
struct HistoryEntry {
  EventHeader header;
  // From the queried subject's sealed part (ForSubject), or from the clear
  // header for an event that concerned no subject (Scan). Empty otherwise.
  std::string justification;
  std::vector<std::string> fields;
  // Scan only: how many subjects' sealed parts the event holds.
  size_t sealed_parts = 0;
};

struct HistoryPage {
  std::vector<HistoryEntry> entries;  // In ascending seq order.
  // Pass as after_seq to continue; 0 when the scan reached the end.
  uint64_t next_after_seq = 0;
};

// One disclosure to a principal (History::Disclosures): the event's clear
// header, and each sealed part that could be attributed and opened.
struct Disclosure {
  struct Part {
    std::string subject_id;
    std::string justification;
    std::vector<std::string> fields;
  };
  EventHeader header;
  size_t sealed_parts = 0;  // Parts the event holds.
  // The parts opened, in slot order. The others (sealed_parts minus these)
  // belong to shredded subjects: their key is gone, or their part's entry
  // in the disclosure index was dropped with the rest of their index.
  std::vector<Part> parts;
};

struct DisclosureWalk {
  // In (at, seq) order.
  std::vector<Disclosure> disclosures;
  // Index entries read: the walk's cost (pruned events are read and
  // skipped). Never more than the window's entries plus one.
  size_t examined = 0;
  // True when `limit` disclosures were found and more remain in the window.
  bool more = false;
  // Events before this seq were written by a build without the disclosure
  // index and are in no walk; 1 for a store that always had it.
  uint64_t indexed_from = 1;
  // When indexed_from > 1: the time of event indexed_from - 1, the last
  // event left out (disclosures at or before it may be missing), or none
  // if that event was pruned and its time is unknown.
  std::optional<Timestamp> unindexed_until;
};

// Looks up a subject's data key: the key, nullptr if the subject was
// shredded (or never existed), or an error (e.g. a keystore failure).
using KeyLookup = std::function<Result<SharedKey>(const std::string&)>;

// What Verify found.
struct ChainReport {
  enum class Problem {
    kNone,
    kCheckpoint,  // The checkpoint does not decode or its MAC is wrong.
    kMissing,     // An event between the start and the head is absent.
    kCorrupt,     // A stored event does not decode, or names another seq.
    kLink,        // A stored link differs from the recomputed one.
    kSeal,        // An event's stored bytes (its ciphertexts included) do
                  // not match their MAC, while its link verifies.
    kHead,        // The head disagrees with the last verified event
                  // (a truncated or extended tail, or a corrupt head).
    kIndex,       // An event's index entries (subject, disclosure) are
                  // missing, extra or fail to authenticate, while the
                  // event itself verifies.
    kAnchor,      // The chain, verified up to its head, does not pass
                  // through a head recorded earlier (ChainAnchor): its
                  // seq holds another link, or lies past the head (a
                  // tail cut and the head rewritten to match).
  };

  bool ok() const { return problem == Problem::kNone; }

  Problem problem = Problem::kNone;
  // The first sequence number that does not verify; 0 when ok().
  uint64_t first_broken = 0;
  // Where verification started: the checkpoint's next seq, or 1.
  uint64_t first_seq = 1;
  uint64_t verified = 0;  // Events (and stubs) whose links verified.
  uint64_t stubs = 0;     // Of which pruned stubs.
  // The stored head. Recording it out of band lets a later Verify prove
  // the log was not truncated and re-headed since (see docs/history.md).
  uint64_t head_seq = 0;
  crypto::Digest head_link{};
  // Of the anchors given: those whose link was compared and matched, and
  // those before the checkpoint's last folded event (not checked: their
  // links are no longer stored).
  uint64_t anchors_matched = 0;
  uint64_t anchors_folded = 0;
  // With kAnchor: the seq of the last anchor (in seq order) that matched
  // before the one that failed, 0 if none did. Events up to it are the
  // ones recorded; the chain departs after it, at or before first_broken
  // (a cut tail may have been written over by later events).
  uint64_t anchor_last_held = 0;
  // The walk verified every stored event from its start to the last one
  // (links, MACs, index entries), whatever the head, the anchors or the
  // orphan scan found after it: `each` saw every event there is.
  bool walked_to_end = false;
};

// Called by History::Verify for each verified event.
using VerifiedEventFn = std::function<void(
    const EventHeader& header, const std::vector<std::string>& clear_fields)>;

// A head recorded earlier, out of band (ChainVerification's head_seq and
// head_link_hex): the chain must still hold `link` at `seq`. Seq 0 is the
// empty history, whose link is kChainGenesis.
struct ChainAnchor {
  uint64_t seq = 0;
  crypto::Digest link{};
};

std::string_view ChainProblemName(ChainReport::Problem problem);

struct PruneResult {
  size_t stubbed = 0;   // Events replaced by their digest in this call.
  size_t examined = 0;  // Events (stubs included) the scan passed.
  // Examined events that do not decode or whose stored bytes fail their
  // MAC: kept as they are, never offered to `prunable` (Verify reports
  // them).
  std::vector<uint64_t> unauthenticated;
  size_t collapsed = 0;  // Stubs folded into the checkpoint and deleted.
  // Pass as after_seq to continue; 0 when the scan reached the head.
  uint64_t next_after_seq = 0;
};

class History {
 public:
  struct Options {
    // Prune's own writes are synchronous. (Stage's are whatever the
    // caller's write is.) Default: true.
    bool sync_writes = true;
    // Index entries or events examined per ForSubject / Scan call; the page
    // ends early, with a cursor, when it is reached. Default: 10000.
    // REQUIRES: >= 1.
    size_t max_scan = 10000;
  };

  // The result of Stage: what Commit makes current.
  struct Pending {
    uint64_t previous_seq = 0;  // The head seq Stage started from.
    uint64_t first_seq = 0;     // Seqs given to the staged events
    uint64_t last_seq = 0;      // (first_seq > last_seq when none).
    crypto::Digest link{};      // The link of last_seq.
  };

  struct Head {
    uint64_t last_seq = 0;  // 0: no event yet.
    crypto::Digest link{};  // kChainGenesis when no event yet.
  };

  // Reads the head from `db`. `db` is borrowed and must outlive the
  // History; `audit_key` is the keyring's audit key (storage/keyring.h).
  // The first Open by a build with the disclosure index writes where it
  // starts (m:history_disclosures_from: the head's seq + 1; synchronously).
  // Errors: DataLoss if the stored head or that marker does not decode; the
  // mapped LevelDB error (docs/storage.md) if it cannot be read or written.
  static Result<std::unique_ptr<History>> Open(leveldb::DB& db,
                                               crypto::SecretKey audit_key,
                                               Options options);
  static Result<std::unique_ptr<History>> Open(leveldb::DB& db,
                                               crypto::SecretKey audit_key) {
    return Open(db, std::move(audit_key), Options());
  }

  History(const History&) = delete;
  History& operator=(const History&) = delete;
  ~History();

  // Appends `events`, in order, to `batch`: gives them the next sequence
  // numbers, seals each subject's part under the key `keys` returns for it
  // (a subject whose key is nullptr gets no part), chains them, and puts
  // the events, their index entries (the disclosure index's too: see
  // Disclosures) and the new head. Nothing is visible, and the in-memory
  // head does not move, until the caller has written `batch` and called
  // Commit with the result. If the write fails, the caller just drops the
  // batch and the Pending: the next Stage reuses the same sequence numbers.
  // Errors (and then `batch` is left exactly as it was):
  //   InvalidArgument  an event without a principal id, with an empty or
  //                    repeated subject id, or an action outside the enum;
  //   whatever `keys` returns as an error.
  // An empty `events` stages nothing and returns an empty Pending.
  // REQUIRES: the caller serialises Stage/Commit and every other writer,
  // and calls no other Stage between this Stage and its Commit.
  Result<Pending> Stage(leveldb::WriteBatch& batch,
                        const std::vector<Event>& events,
                        const KeyLookup& keys);

  // Makes a staged append current, after its batch was written
  // successfully. A Pending that does not start from the current head (a
  // second Commit of it, or one staged before another Commit) is ignored.
  void Commit(const Pending& pending);

  // The last committed event.
  Head head() const;

  // Walks the chain from the checkpoint (if its MAC verifies) or from
  // genesis to the stored head, recomputing every link, and reports the
  // first sequence number that does not verify (ChainReport). Reads one
  // snapshot: `at` when given (the caller's, kept until this returns; the
  // engine's is taken once applied writes are durable, see
  // Audit::VerifyChain), else one of its own. A broken chain is a report,
  // not an error. Errors: a LevelDB read failure, mapped (DataLoss for
  // corruption LevelDB itself detects). Progress: "events" (verified, of
  // the head's sequence number less the first one's, plus one).
  // `anchors` (any order, duplicates allowed) are checked once the chain
  // and its head verify: an anchor at the link before the first event
  // walked is compared with the checkpoint's link (kChainGenesis without
  // one), an older one is folded (counted, not compared), any other must
  // be an event walked with that link; the first that fails is kAnchor
  // at its seq (at the head's seq + 1 when it lies past the head).
  // `each`, when given, is called with the header and clear fields of each
  // event (not stub) once its link, MAC and index entries verified, in seq
  // order, before the head, the anchors and the orphan index entries are
  // checked (events past the head included): ChainReport::walked_to_end
  // says whether it saw them all (Audit::VerifyChain reads the policy_set
  // events through it).
  Result<ChainReport> Verify(const leveldb::Snapshot* at = nullptr,
                             const WorkProgressFn& progress = nullptr,
                             std::span<const ChainAnchor> anchors = {},
                             const VerifiedEventFn& each = nullptr) const;

  // The events concerning `subject_id` with from <= at < to and
  // seq > after_seq, in seq order, at most `limit` of them, each with this
  // subject's justification and field names. Examines at most
  // Options::max_scan index entries, so a page may end early (and may be
  // empty) with a non-zero cursor. Pruned events are skipped. When `keys`
  // returns nullptr for the subject (shredded), the page is empty with
  // cursor 0. A part that does not open under the key `keys` returned is
  // tried under the key `retiring` returns (a subject being re-keyed has
  // parts under both), then under the key `keys` returns again (it may
  // have been replaced meanwhile); `retiring` may be empty.
  // Errors: InvalidArgument for limit 0; DataLoss if an indexed event does
  // not decode, names another seq, or its part, its header or its part's
  // commitment fails to authenticate under the subject's keys; whatever
  // `keys` returns as an error; a LevelDB read failure, mapped.
  Result<HistoryPage> ForSubject(const std::string& subject_id, Timestamp from,
                                 Timestamp to, uint64_t after_seq,
                                 uint32_t limit, const KeyLookup& keys,
                                 const KeyLookup& retiring = {}) const;

  // What ResealSubject did.
  struct ResealResult {
    size_t examined = 0;  // Index entries examined.
    size_t resealed = 0;  // Parts re-sealed (the others were under `to`
                          // already, or their event was pruned).
    // Pass as after_seq to continue; 0 when the index was read to the end.
    uint64_t next_after_seq = 0;
    // The replaced ciphertexts (for erasure witnesses) and the seqs of the
    // events rewritten (whose old versions must leave the files).
    std::vector<std::vector<uint8_t>> replaced;
    std::vector<uint64_t> rewritten_seqs;
  };
  // Re-keying: adds to `batch` the events of `subject_id` after `after_seq`
  // (at most `budget` index entries) with the subject's part opened under
  // `from` and sealed again under `to`, same associated data, same
  // plaintext, same commitment, a new MAC: the chain is unchanged. A part
  // that opens under `to` already is left alone. Nothing else changes.
  // Errors (and then `batch` must be dropped): DataLoss if a part opens
  // under neither key, or its plaintext does not match its commitment, or
  // an event does not decode; a LevelDB read failure, mapped.
  // REQUIRES: serialised with the other writers (see Stage), budget >= 1.
  Result<ResealResult> ResealSubject(leveldb::WriteBatch& batch,
                                     const std::string& subject_id,
                                     const crypto::SecretKey& from,
                                     const crypto::SecretKey& to,
                                     uint64_t after_seq, size_t budget) const;

  // The disclosures (IsDisclosure) received by `principal_id` with
  // from <= at < to, in time order, at most `limit` of them, each with the
  // parts of its subjects that can be attributed and opened: through the
  // disclosure index, so the cost grows with the principal's disclosures
  // in the window, not with the history. A part is attributed through its
  // entry in the index (the subject id sealed under a key derived from the
  // audit key) and opened as ForSubject opens it (`keys`, then `retiring`);
  // a shredded subject's part is counted, not opened. Pruned events are
  // skipped.
  // Errors: InvalidArgument for limit 0; DataLoss if an indexed event does
  // not decode, is not the principal's or not in the window as indexed, or
  // a part or its index entry fails to authenticate; whatever `keys`
  // returns as an error; a LevelDB read failure, mapped.
  Result<DisclosureWalk> Disclosures(const std::string& principal_id,
                                     Timestamp from, Timestamp to, size_t limit,
                                     const KeyLookup& keys,
                                     const KeyLookup& retiring = {}) const;

  // Every stored event with seq > after_seq, in seq order, at most `limit`,
  // examining at most Options::max_scan entries: the clear headers, plus
  // the clear justification and fields of events concerning no subject.
  // Stubs are skipped. For auditors' statistics and for events about no
  // subject (a shred, a subject report).
  // Errors: InvalidArgument for limit 0; DataLoss if an event does not
  // decode; a LevelDB read failure, mapped.
  Result<HistoryPage> Scan(uint64_t after_seq, uint32_t limit) const;

  // Adds to `batch` the deletion of up to `budget` of `subject_id`'s index
  // entries (and their reverse entries), so nothing in the live database
  // ties the subject to its events any more. For the engine to call after
  // shredding the subject, until it returns 0. Returns how many index
  // entries were added to `batch`; they are only gone once `batch` is
  // written, so calling again before that adds the same ones.
  // When `about_no_record_from` is given, it is lowered to the instant of
  // each event about no record whose entry (its MAC checked) is dropped
  // (a forged instant only wakes pruning early): such an
  // event is due by its age alone from then on (Sweeper::SubjectEventDue).
  // Errors: a LevelDB read failure, mapped.
  Result<size_t> DropSubjectIndex(
      leveldb::WriteBatch& batch, const std::string& subject_id, size_t budget,
      int64_t* about_no_record_from = nullptr) const;

  // For pruning an event about no record (docs/history.md, "Retention:
  // pruning and checkpoints"): the subjects whose parts event `seq` holds,
  // as the index knows them. `tags` are the index tags of the parts still
  // indexed (the event's `hs:` entries), `dropped` counts the parts whose
  // entries went with a shredded subject's index (`hx:`). Both empty for an
  // event about no subject (or one pruned). The entries are authenticated
  // as Verify does (each bound to the event's link, every part of the
  // event accounted for): DataLoss ("the index entries of history event N
  // do not authenticate") otherwise; a LevelDB read failure, mapped.
  struct IndexedParts {
    std::vector<crypto::Digest> tags;
    size_t dropped = 0;
  };
  Result<IndexedParts> PartsOf(uint64_t seq) const;

  // Calls `each` with the header of every event indexed under `tag` (one
  // subject's index, as PartsOf gives it), in seq order, stubs skipped,
  // until `each` returns false. Each event's stored bytes are checked
  // against their MAC first. Errors: DataLoss if an indexed event does not
  // decode, names another seq or fails its MAC ("an access-history event
  // failed to authenticate"); a LevelDB read failure, mapped.
  Status ForEachIndexed(
      const crypto::Digest& tag,
      const std::function<bool(const EventHeader&)>& each) const;

  // Retention. Examines up to `budget` stored events with seq > after_seq
  // (and past the checkpoint), and replaces each event for which
  // `prunable(header)` is true by a stub holding only the digest of its
  // bytes (its index entries are deleted). Then folds the leading run of
  // stubs (at most `budget` of them), after verifying their links, into the
  // checkpoint, deleting them. Everything in one write of its own (synchronous
  // per Options). The chain verifies as before. An examined event that does
  // not decode or fails its MAC is kept and listed (unauthenticated).
  // Errors (and nothing is written): DataLoss if the checkpoint fails to
  // authenticate, or the leading run of stubs does not verify from it (so
  // pruning never launders a broken chain); a LevelDB failure, mapped.
  // REQUIRES: serialised with the other writers (see Stage).
  Result<PruneResult> Prune(
      const std::function<bool(const EventHeader&)>& prunable, size_t budget,
      uint64_t after_seq = 0);
  // The same, but the changes are added to `batch` for the caller to write
  // (the engine commits them through its store with the rest of a sweep);
  // on error `batch` may hold part of them and must be dropped.
  Result<PruneResult> Prune(
      const std::function<bool(const EventHeader&)>& prunable, size_t budget,
      uint64_t after_seq, leveldb::WriteBatch& batch);

 private:
  History(leveldb::DB& db, crypto::SecretKey audit_key,
          crypto::SecretKey part_subject_key, Options options, Head head,
          uint64_t disclosures_from);

  // The index tag of `subject_id` (its id blinded under the audit key),
  // from tag_cache_ when there.
  crypto::Digest TagOf(const std::string& subject_id) const;

  // The part index entries of event `seq` (chain link `link`, `parts`
  // sealed parts): its "hs:" entries, read from `reverse_it`, each with
  // its "h:" twin, and its "hx:" markers, read from `dropped_it`; each
  // iterator positioned at or before the event's first entry, and left
  // past its last. `intact` when every entry authenticates (MACs bound to
  // tag, seq, slot and link) and every part is accounted for once (Verify,
  // PartsOf).
  struct PartIndex {
    std::vector<std::optional<crypto::Digest>> tag_of;  // By slot.
    size_t dropped = 0;
    bool intact = true;
  };
  Result<PartIndex> ReadPartIndex(leveldb::Iterator& reverse_it,
                                  leveldb::Iterator& dropped_it,
                                  const leveldb::ReadOptions& read,
                                  uint64_t seq, const crypto::Digest& link,
                                  size_t parts) const;

  leveldb::DB& db_;
  const crypto::SecretKey audit_key_;
  // Seals the subject ids of the disclosure index ("hq:"); derived from the
  // audit key.
  const crypto::SecretKey part_subject_key_;
  // The first seq the disclosure index covers (m:history_disclosures_from).
  const uint64_t disclosures_from_;
  const Options options_;

  mutable std::mutex mu_;  // Guards head_ (read by head() from any thread).
  Head head_;

  // Index tags of the subjects events were staged for (Stage only): a
  // keyed hash of a constant input, so computed once per subject. A tag is
  // no key material: it is what the index keys hold on disk (see
  // docs/decisions.md), so the map is ordinary memory. Bounded: emptied
  // when full; a subject's entry is dropped with its index
  // (DropSubjectIndex).
  static constexpr size_t kTagCacheCapacity = 4096;
  mutable std::mutex tag_mu_;
  mutable std::unordered_map<std::string, crypto::Digest> tag_cache_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_HISTORY_H_
