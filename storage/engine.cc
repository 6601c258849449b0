#include "storage/engine.h"

#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/write_batch.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "crypto/aead.h"
#include "crypto/keyed_hash.h"
#include "crypto/master_key.h"
#include "storage/access.h"
#include "storage/codec.h"
#include "storage/history.h"
#include "storage/key_cache.h"
#include "storage/keystore.h"
#include "storage/leveldb_util.h"

namespace custos {

// ---- Names ------------------------------------------------------------------

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kUser:
      return "user";
    case Role::kOfficer:
      return "officer";
    case Role::kAuditor:
      return "auditor";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::string_view RecordStateName(RecordState state) {
  switch (state) {
    case RecordState::kActive:
      return "ACTIVE";
    case RecordState::kClosed:
      return "CLOSED";
    case RecordState::kBlocked:
      return "BLOCKED";
    case RecordState::kErased:
      return "ERASED";
  }
  return "UNKNOWN";
}

std::string_view PurposeKindName(PurposeKind kind) {
  switch (kind) {
    case PurposeKind::kProofOfExchange:
      return "proof_of_exchange";
    case PurposeKind::kSubjectConsent:
      return "subject_consent";
    case PurposeKind::kPublicInterest:
      return "public_interest";
  }
  return "unknown";
}

bool PrincipalInfo::HasRole(Role role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

namespace {

using codec::StoredPrincipal;
using codec::StoredRecord;
using codec::StoredSubject;

// ---- Key layout of the records database (docs/storage.md)
// --------------------

constexpr char kFormatKey[] = "m:format";
constexpr char kNextRecordIdKey[] = "m:next_record_id";

std::string PrincipalKey(std::string_view id) { return "p:" + std::string(id); }
std::string CredentialKey(const crypto::Digest& hash) {
  return "c:" + std::string(AsStringView(hash));
}
std::string SubjectKey(std::string_view id) { return "s:" + std::string(id); }
std::string BlindIndexKey(const crypto::Digest& index) {
  return "b:" + std::string(AsStringView(index));
}
std::string RecordKey(uint64_t id) {
  std::string key = "r:";
  AppendBigEndian64(key, id);
  return key;
}
std::string AclPrefix(std::string_view principal) {
  std::string key = "a:";
  key += principal;
  key.push_back('\0');
  return key;
}
std::string AclKey(std::string_view principal, uint64_t id) {
  std::string key = AclPrefix(principal);
  AppendBigEndian64(key, id);
  return key;
}
std::string SubjectRecordsPrefix(std::string_view subject) {
  std::string key = "x:";
  key += subject;
  key.push_back('\0');
  return key;
}
std::string SubjectRecordKey(std::string_view subject, uint64_t id) {
  std::string key = SubjectRecordsPrefix(subject);
  AppendBigEndian64(key, id);
  return key;
}
constexpr char kDeadlinePrefix[] = "d:";
// Deadline index: "d:" || u64 BE due micros || u64 BE record id -> "".
std::string DeadlineKey(int64_t due_micros, uint64_t id) {
  std::string key = kDeadlinePrefix;
  AppendBigEndian64(key, static_cast<uint64_t>(due_micros));
  AppendBigEndian64(key, id);
  return key;
}
std::string PolicyKey(std::string_view kind) {
  return "pol:" + std::string(kind);
}
// Legal holds: "hold:" id -> Hold; "ho:r:" u64 BE record || id -> "";
// "ho:s:" subject || NUL || id -> "s" (a subject hold) or "r" (a hold on
// one of the subject's records, so a shred can see it without a scan).
constexpr char kNextHoldIdKey[] = "m:next_hold_id";
std::string HoldKey(std::string_view id) { return "hold:" + std::string(id); }
std::string RecordHoldsPrefix(uint64_t record_id) {
  std::string key = "ho:r:";
  AppendBigEndian64(key, record_id);
  return key;
}
std::string SubjectHoldsPrefix(std::string_view subject) {
  std::string key = "ho:s:";
  key += subject;
  key.push_back('\0');
  return key;
}
// Erasure witnesses: "ew:" || the bitwise complement of the nonce of an
// erased ciphertext or destroyed wrapped key -> "". Stored complemented so
// the witness itself never matches the scan for the nonce.
constexpr char kWitnessPrefix[] = "ew:";
constexpr size_t kWitnessNonceOffset = 1;  // Sealed v1: version byte first.
// Keys whose old versions must be compacted away: "q:compact:" || key.
constexpr char kCompactQueuePrefix[] = "q:compact:";
constexpr char kShredQueuePrefix[] = "q:shred:";
std::string ShredQueueKey(std::string_view subject) {
  return kShredQueuePrefix + std::string(subject);
}

// ---- Associated data binding ciphertexts to their place
// ----------------------

std::vector<uint8_t> PartAd(uint64_t record_id, std::string_view subject_id,
                            uint64_t version) {
  std::string ad = "custos-part-v1";
  ad.push_back('\0');
  AppendBigEndian64(ad, record_id);
  AppendBigEndian64(ad, version);
  ad += subject_id;
  return {ad.begin(), ad.end()};
}
// Flag notes and contest statements: bound to record, subject, what and when.
std::vector<uint8_t> NoteAd(std::string_view what, uint64_t record_id,
                            std::string_view subject_id, int64_t at_micros) {
  std::string ad = "custos-";
  ad += what;
  ad += "-v1";
  ad.push_back('\0');
  AppendBigEndian64(ad, record_id);
  AppendBigEndian64(ad, static_cast<uint64_t>(at_micros));
  ad += subject_id;
  return {ad.begin(), ad.end()};
}
std::vector<uint8_t> IdentifierAd(std::string_view subject_id) {
  std::string ad = "custos-subject-identifier-v1";
  ad.push_back('\0');
  ad += subject_id;
  return {ad.begin(), ad.end()};
}

// ---- Input validation ------------------------------------------------------

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

Status CheckId(std::string_view id, std::string_view what, size_t max) {
  if (id.empty() || id.size() > max) {
    return Status::InvalidArgument(std::string(what) + " must be 1 to " +
                                   std::to_string(max) + " characters");
  }
  if (!std::all_of(id.begin(), id.end(), IsIdChar)) {
    return Status::InvalidArgument(std::string(what) +
                                   " may hold only a-z, 0-9, '-', '_', '.'");
  }
  return Status::Ok();
}

Status CheckLength(std::string_view value, std::string_view what, size_t max,
                   bool allow_empty) {
  if ((!allow_empty && value.empty()) || value.size() > max) {
    return Status::InvalidArgument(std::string(what) + " must be " +
                                   (allow_empty ? "at most " : "1 to ") +
                                   std::to_string(max) + " bytes");
  }
  return Status::Ok();
}

Status CheckFields(const std::vector<Field>& fields, const Limits& limits,
                   size_t* total_bytes) {
  if (fields.size() > limits.max_fields_per_part) {
    return Status::InvalidArgument("a personal part may hold at most " +
                                   std::to_string(limits.max_fields_per_part) +
                                   " fields");
  }
  std::set<std::string_view> names;
  for (const Field& f : fields) {
    CUSTOS_RETURN_IF_ERROR(CheckLength(f.name, "a field name",
                                       limits.max_field_name_length, false));
    CUSTOS_RETURN_IF_ERROR(CheckLength(f.value, "field '" + f.name + "'",
                                       limits.max_field_value_length, true));
    if (!names.insert(f.name).second) {
      return Status::InvalidArgument("field '" + f.name + "' appears twice");
    }
    *total_bytes += f.name.size() + f.value.size();
  }
  return Status::Ok();
}

Status CheckPurpose(const std::optional<Purpose>& purpose,
                    const Limits& limits) {
  if (!purpose) return Status::Ok();
  return CheckLength(purpose->justification, "a purpose's justification",
                     limits.max_justification_length, false);
}

std::optional<Timestamp> OptionalTime(int64_t micros) {
  if (micros == 0) return std::nullopt;
  return FromMicros(micros);
}

}  // namespace

// ---- Engine::Impl
// --------------------------------------------------------------

class Engine::Impl {
 public:
  Impl(Options options, crypto::SecretKey blind_index_key,
       crypto::SecretKey credential_key, crypto::SecretKey ledger_key,
       std::unique_ptr<leveldb::DB> db, std::unique_ptr<Keystore> keystore)
      : options_(std::move(options)),
        limits_(options_.limits),
        clock_(*options_.clock),
        blind_index_key_(std::move(blind_index_key)),
        credential_key_(std::move(credential_key)),
        ledger_key_(std::move(ledger_key)),
        db_(std::move(db)),
        keystore_(std::move(keystore)),
        key_cache_(options_.key_cache_capacity) {}

  Status Load();
  Status FinishInterruptedShreds();

  Result<NewPrincipal> AddPrincipal(std::string_view id,
                                    std::string_view display_name,
                                    const std::vector<Role>& roles,
                                    bool redacted);
  Result<PrincipalInfo> Principal(std::string_view id) const;
  Result<PrincipalInfo> RequireRole(const Actor& actor, Role role) const;
  Result<PrincipalInfo> Caller(const Actor& actor) const;

  Result<StoredRecord> ReadRecord(uint64_t id) const;
  Result<SharedKey> KeyFor(const std::string& subject_id);
  Result<std::string> FindOrCreateSubject(
      std::string_view identifier, leveldb::WriteBatch& batch,
      std::map<std::string, SharedKey>& keys,
      std::map<std::string, std::string>& created_in_batch);

  // The record as the caller sees it: the effective state (a record whose
  // every subject was shredded reads as ERASED at once) and the view.
  struct Resolved {
    StoredRecord record;
    RecordState state;
    int64_t erased_at_micros;
    View view;
    bool sees_subject_ids = false;  // Admin, officer or auditor caller.
  };
  Result<Resolved> Resolve(const PrincipalInfo& caller, uint64_t id,
                           bool purpose_given);
  Result<Resolved> ResolveRecord(const PrincipalInfo& caller,
                                 StoredRecord record, bool purpose_given);
  Result<RecordView> BuildView(const Resolved& resolved,
                               const std::optional<Purpose>& purpose);

  Status Write(leveldb::WriteBatch& batch, std::string_view what);
  // Appends `events` to the access history in `batch`, then writes it: the
  // change and its events are one atomic write. REQUIRES: write_mu_ held.
  Status WriteWithEvents(leveldb::WriteBatch& batch,
                         const std::vector<Event>& events,
                         std::string_view what, bool force_sync = false);
  // The event of `who` doing `action` on record `r` (in its state after
  // the change), concerning every subject of the record.
  Event RecordEvent(const PrincipalInfo& who, EventAction action,
                    const StoredRecord& r) const;
  // The disclosure event of a view that included personal data.
  Event ReadEvent(const PrincipalInfo& who, const RecordView& view,
                  const std::optional<Purpose>& purpose) const;
  // Records the disclosures of `views` (those with personal data) in one
  // write. Data is returned only once this succeeded.
  Status RecordReads(const PrincipalInfo& who,
                     const std::vector<const RecordView*>& views,
                     const std::optional<Purpose>& purpose);
  // Recomputes the record's next deadline, moves its deadline index entry,
  // and adds the record to `batch`: every change of a record goes through
  // here, so the index never disagrees with the records.
  // Prunes access history whose retention ended by `as_of` (history_after
  // past the erasure of the record it concerns), examining at most `budget`
  // events from a cursor that cycles through the log across calls, so each
  // sweep costs the same whatever the history's size. Returns the number
  // of events pruned.
  Result<size_t> PruneHistory(int64_t as_of, size_t budget);
  // Holds are judged active at `holds_at` (default: now).
  Status PutRecord(leveldb::WriteBatch& batch, StoredRecord& r,
                   std::optional<int64_t> holds_at = std::nullopt);
  // Holds in force at `at` covering the record (its own and its subjects').
  Result<std::vector<HoldView>> HoldsOnRecord(const StoredRecord& r,
                                              int64_t at) const;
  // Holds in force at `at` covering the subject or any of its records.
  Result<std::vector<HoldView>> HoldsOnSubject(const std::string& subject_id,
                                               int64_t at) const;
  Result<std::vector<HoldView>> HoldsUnder(const std::string& prefix,
                                           int64_t at, bool subject_only) const;
  // Stores a hold on `record` (or, when null, on hold.subject_id) with its
  // hold_set event. REQUIRES: write_mu_ held.
  Result<HoldView> AddHold(const PrincipalInfo& officer, HoldView hold,
                           std::string_view reason, Timestamp ends_at,
                           const StoredRecord* record);
  // The hold_set / hold_released event of `hold`.
  Event HoldEvent(const PrincipalInfo& who, EventAction action,
                  const HoldView& hold, const StoredRecord* record) const;
  Result<std::optional<RetentionPolicy>> PolicyFor(
      const std::string& kind) const;
  // Applies the record's due transition at its due instant; an erasure
  // adds its witnesses and compaction entry to `batch`.
  void ApplyTransition(StoredRecord& r, leveldb::WriteBatch& batch) const;
  // Compacts the key ranges queued by erasures (Options::
  // compact_after_erasure), so their old versions leave the files.
  // Takes write_mu_ itself: REQUIRES the caller does not hold it.
  Status CompactErased();

  const Options options_;
  const Limits& limits_;
  const Clock& clock_;
  crypto::SecretKey blind_index_key_;
  crypto::SecretKey credential_key_;
  crypto::SecretKey ledger_key_;
  std::unique_ptr<leveldb::DB> db_;
  std::unique_ptr<Keystore> keystore_;
  KeyCache key_cache_;
  std::unique_ptr<History> history_;

  // Serialises every change: each is a read-modify-write of one batch.
  std::mutex write_mu_;
  uint64_t next_record_id_ = 1;  // Guarded by write_mu_.

  // Policies are few and read on every change: all of them live here.
  mutable std::shared_mutex policies_mu_;
  std::map<std::string, RetentionPolicy> policies_;

  // Principals are few and read on every call: all of them live here.
  mutable std::shared_mutex principals_mu_;
  std::unordered_map<std::string, PrincipalInfo> principals_;
};

Status Engine::Impl::Write(leveldb::WriteBatch& batch, std::string_view what) {
  leveldb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  return FromLevelDb(db_->Write(wo, &batch), what);
}

Result<std::optional<RetentionPolicy>> Engine::Impl::PolicyFor(
    const std::string& kind) const {
  std::shared_lock lock(policies_mu_);
  auto it = policies_.find(kind);
  if (it == policies_.end()) return std::optional<RetentionPolicy>();
  return std::optional<RetentionPolicy>(it->second);
}

namespace {
// The next deadline of a record under `policy`, always computed from its
// anchoring event (last change for close_after, closure otherwise), never
// by stepping from an earlier deadline.
Result<std::pair<int64_t, codec::Transition>> NextDeadline(
    const StoredRecord& r, const RetentionPolicy& policy) {
  using codec::Transition;
  std::optional<Period> period;
  int64_t anchor = 0;
  Transition next = Transition::kNone;
  switch (r.state) {
    case RecordState::kActive:
      if (policy.close_after) {
        period = policy.close_after;
        anchor = r.updated_at_micros;
        next = Transition::kClose;
      }
      break;
    case RecordState::kClosed:
      anchor = r.closed_at_micros;
      if (policy.block_after) {
        period = policy.block_after;
        next = Transition::kBlock;
      } else {
        period = policy.erase_after;
        next = Transition::kErase;
      }
      break;
    case RecordState::kBlocked:
      anchor = r.closed_at_micros;
      period = policy.erase_after;
      next = Transition::kErase;
      break;
    case RecordState::kErased:
      break;
  }
  if (!period) return std::pair<int64_t, Transition>{0, Transition::kNone};
  auto due = AddPeriod(FromMicros(anchor), *period);
  if (!due) {
    return Fail(Status::InvalidArgument("deadline out of range: " +
                                        due.error().message()));
  }
  return std::pair<int64_t, Transition>{ToMicros(*due), next};
}
}  // namespace

Status Engine::Impl::PutRecord(leveldb::WriteBatch& batch, StoredRecord& r,
                               std::optional<int64_t> holds_at) {
  if (r.next_deadline_micros != 0) {
    batch.Delete(DeadlineKey(r.next_deadline_micros, r.id));
  }
  r.next_deadline_micros = 0;
  r.next_transition = codec::Transition::kNone;
  auto policy = PolicyFor(r.kind);
  if (!policy) return policy.error();
  if (*policy) {
    auto next = NextDeadline(r, **policy);
    if (!next) return next.error();
    r.next_deadline_micros = next->first;
    r.next_transition = next->second;
    if (next->second == codec::Transition::kErase) {
      // A legal hold postpones erasure to its end.
      auto holds = HoldsOnRecord(r, holds_at.value_or(ToMicros(clock_.Now())));
      if (!holds) return holds.error();
      for (const HoldView& h : *holds) {
        r.next_deadline_micros =
            std::max(r.next_deadline_micros, ToMicros(h.ends_at));
      }
    }
    if (next->second != codec::Transition::kNone) {
      batch.Put(DeadlineKey(r.next_deadline_micros, r.id), "");
    }
  }
  batch.Put(RecordKey(r.id), codec::EncodeRecord(r));
  return Status::Ok();
}

Result<std::vector<HoldView>> Engine::Impl::HoldsUnder(
    const std::string& prefix, int64_t at, bool subject_only) const {
  std::vector<HoldView> holds;
  std::unique_ptr<leveldb::Iterator> it(
      db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    if (subject_only && it->value().ToString() != "s") continue;
    std::string id = it->key().ToString().substr(prefix.size());
    std::string value;
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), HoldKey(id), &value);
    if (!s.ok()) return Fail(FromLevelDb(s, "reading hold"));
    auto hold = codec::DecodeHold(value);
    if (!hold) return Fail(hold.error());
    if (!hold->released_at && ToMicros(hold->ends_at) > at) {
      holds.push_back(std::move(*hold));
    }
  }
  if (!it->status().ok())
    return Fail(FromLevelDb(it->status(), "reading holds"));
  return holds;
}

Result<std::vector<HoldView>> Engine::Impl::HoldsOnRecord(const StoredRecord& r,
                                                          int64_t at) const {
  auto holds = HoldsUnder(RecordHoldsPrefix(r.id), at, false);
  if (!holds) return holds;
  for (const std::string& subject : r.subject_ids) {
    auto more = HoldsUnder(SubjectHoldsPrefix(subject), at, true);
    if (!more) return more;
    holds->insert(holds->end(), more->begin(), more->end());
  }
  return holds;
}

Result<std::vector<HoldView>> Engine::Impl::HoldsOnSubject(
    const std::string& subject_id, int64_t at) const {
  return HoldsUnder(SubjectHoldsPrefix(subject_id), at, false);
}

namespace {
// "legal hold h3 (until 2027-03-01T00:00:00Z), legal hold h4 (...)".
std::string DescribeHolds(const std::vector<HoldView>& holds) {
  std::string out;
  for (const HoldView& h : holds) {
    if (!out.empty()) out += ", ";
    const auto seconds = std::chrono::floor<std::chrono::seconds>(h.ends_at);
    const std::time_t t = seconds.time_since_epoch().count();
    std::tm tm{};
    gmtime_r(&t, &tm);
    char when[32];
    std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    out += "legal hold " + h.id + " (until " + when + ")";
  }
  return out;
}
}  // namespace

namespace {
// Records, in `batch`, a witness of a sealed value about to be erased.
void AddWitness(leveldb::WriteBatch& batch, const codec::Bytes& sealed) {
  if (sealed.size() < kWitnessNonceOffset + crypto::kNonceSize) return;
  std::string key = kWitnessPrefix;
  for (size_t i = 0; i < crypto::kNonceSize; ++i) {
    key.push_back(static_cast<char>(~sealed[kWitnessNonceOffset + i]));
  }
  batch.Put(key, "");
}

// Erasure: the personal parts, flag notes and contest contents go; who
// flagged or contested, and when, stays with the attributes. Witnesses of
// what went, and the record's key for compaction, join `batch`.
// The compaction queue's value: when the key was queued (u64 BE micros).
std::string QueuedAt(int64_t micros) {
  std::string value;
  AppendBigEndian64(value, static_cast<uint64_t>(micros));
  return value;
}

void EraseContents(StoredRecord& r, int64_t at_micros, int64_t now_micros,
                   leveldb::WriteBatch& batch) {
  r.state = RecordState::kErased;
  r.erased_at_micros = at_micros;
  for (const auto& p : r.parts) AddWitness(batch, p.sealed);
  for (const auto& f : r.flags) AddWitness(batch, f.sealed_note);
  for (const auto& c : r.contests) AddWitness(batch, c.sealed_statement);
  r.parts.clear();
  for (auto& f : r.flags) f.sealed_note.clear();
  for (auto& c : r.contests) c.sealed_statement.clear();
  batch.Put(kCompactQueuePrefix + RecordKey(r.id), QueuedAt(now_micros));
}
}  // namespace

Status Engine::Impl::CompactErased() {
  if (!options_.compact_after_erasure) return Status::Ok();
  // Gather the queued keys and compact the span they cover once: erased
  // records tend to be neighbours (ids grow with time, and records closed
  // together are due together), and one range compaction rewrites each
  // overlapping file once instead of once per key.
  // The compaction itself runs without the write lock: LevelDB allows
  // writes meanwhile, and foreground calls must not wait for it.
  std::unique_lock<std::mutex> lock(write_mu_);
  std::vector<std::string> keys;
  std::vector<std::string> queued_values;  // To spot re-queued keys.
  int64_t oldest = INT64_MAX;
  std::unique_ptr<leveldb::Iterator> it(
      db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(kCompactQueuePrefix);
       it->Valid() && it->key().starts_with(kCompactQueuePrefix); it->Next()) {
    keys.push_back(it->key().ToString());
    const std::string value = it->value().ToString();
    queued_values.push_back(value);
    // An entry without a time (none is written so) counts as oldest.
    oldest = std::min<int64_t>(
        oldest, value.size() == 8 ? static_cast<int64_t>(ReadBigEndian64(value))
                                  : INT64_MIN);
  }
  if (!it->status().ok()) {
    return FromLevelDb(it->status(), "reading compaction queue");
  }
  // An open iterator pins the table files it reads: LevelDB would keep the
  // very files this compaction makes obsolete (and delete them only after
  // some later compaction).
  it.reset();
  if (keys.empty()) return Status::Ok();
  // With a delay, wait until the oldest erasure has waited that long, then
  // compact everything queued at once.
  const int64_t delay = options_.erasure_compaction_delay.count();
  if (delay > 0 && oldest != INT64_MIN &&
      oldest > ToMicros(clock_.Now()) - delay) {
    return Status::Ok();
  }
  const size_t skip = sizeof(kCompactQueuePrefix) - 1;
  std::string first = keys.front().substr(skip), last = first;
  for (const std::string& k : keys) {
    first = std::min(first, k.substr(skip));
    last = std::max(last, k.substr(skip));
  }
  lock.unlock();
  const leveldb::Slice begin(first), end(last);
  db_->CompactRange(&begin, &end);
  // If an erased key's old and new versions were flushed into one table on
  // the deepest level overlapping the range, the compaction above did not
  // take that table as input. Writing each key again (its current value,
  // unchanged) and compacting once more puts a newer table above it, which
  // the second compaction merges into it, dropping the old versions.
  lock.lock();
  leveldb::WriteBatch rewrite;
  for (const std::string& queued : keys) {
    const std::string key = queued.substr(skip);
    std::string value;
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), key, &value);
    if (s.ok()) {
      rewrite.Put(key, value);
    } else if (s.IsNotFound()) {
      rewrite.Delete(key);
    } else {
      return FromLevelDb(s, "rewriting erased keys");
    }
  }
  CUSTOS_RETURN_IF_ERROR(Write(rewrite, "rewriting erased keys"));
  lock.unlock();
  db_->CompactRange(&begin, &end);
  // Only now is the work done: a crash before this point leaves the queue
  // as it was, and the next call (at the latest the next Open) redoes it.
  // An entry re-queued meanwhile (same key, newer time) stays for the next
  // call.
  lock.lock();
  leveldb::WriteBatch done;
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string value;
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), keys[i], &value);
    if (s.ok() && value == queued_values[i]) done.Delete(keys[i]);
  }
  return Write(done, "clearing compaction queue");
}

void Engine::Impl::ApplyTransition(StoredRecord& r,
                                   leveldb::WriteBatch& batch) const {
  const int64_t due = r.next_deadline_micros;
  switch (r.next_transition) {
    case codec::Transition::kClose:
      r.state = RecordState::kClosed;
      r.closed_at_micros = due;
      break;
    case codec::Transition::kBlock:
      r.state = RecordState::kBlocked;
      r.blocked_at_micros = due;
      break;
    case codec::Transition::kErase:
      EraseContents(r, due, ToMicros(clock_.Now()), batch);
      break;
    case codec::Transition::kNone:
      break;
  }
}

Status Engine::Impl::WriteWithEvents(leveldb::WriteBatch& batch,
                                     const std::vector<Event>& events,
                                     std::string_view what, bool force_sync) {
  auto pending = history_->Stage(
      batch, events, [this](const std::string& id) { return KeyFor(id); });
  if (!pending) return pending.error();
  leveldb::WriteOptions wo;
  wo.sync = force_sync || options_.sync_writes;
  CUSTOS_RETURN_IF_ERROR(FromLevelDb(db_->Write(wo, &batch), what));
  history_->Commit(*pending);
  return Status::Ok();
}

Event Engine::Impl::RecordEvent(const PrincipalInfo& who, EventAction action,
                                const StoredRecord& r) const {
  Event e;
  e.at = clock_.Now();
  e.principal_id = who.id;
  e.principal_name = who.display_name;
  e.action = action;
  e.record_id = r.id;
  e.record_kind = r.kind;
  e.record_state = r.state;
  e.subject_ids = r.subject_ids;
  return e;
}

Event Engine::Impl::ReadEvent(const PrincipalInfo& who, const RecordView& view,
                              const std::optional<Purpose>& purpose) const {
  Event e;
  e.at = clock_.Now();
  e.principal_id = who.id;
  e.principal_name = who.display_name;
  // Reading closed or blocked data is possible only for a stated purpose.
  e.action = view.state == RecordState::kActive ? EventAction::kRead
                                                : EventAction::kReadRestricted;
  e.record_id = view.id;
  e.record_kind = view.kind;
  e.record_state = view.state;
  e.purpose = purpose;
  auto touch = [&e](const std::string& name) {
    if (std::find(e.fields.begin(), e.fields.end(), name) == e.fields.end()) {
      e.fields.push_back(name);
    }
  };
  for (const PartView& part : view.parts) {
    e.subject_ids.push_back(part.subject_id);
    for (const Field& f : part.fields) touch(f.name);
  }
  // Flag notes and contests shown with the record are disclosed too.
  for (const FlagView& f : view.flags) {
    if (!f.note.empty()) touch("flag:note");
  }
  for (const ContestView& c : view.contests) {
    if (!c.statement.empty()) touch("contest:statement");
    for (const Field& f : c.corrected) touch("contest:" + f.name);
  }
  return e;
}

Status Engine::Impl::RecordReads(const PrincipalInfo& who,
                                 const std::vector<const RecordView*>& views,
                                 const std::optional<Purpose>& purpose) {
  std::vector<Event> events;
  for (const RecordView* view : views) {
    if (view->personal_included)
      events.push_back(ReadEvent(who, *view, purpose));
  }
  if (events.empty()) return Status::Ok();
  std::lock_guard<std::mutex> lock(write_mu_);
  leveldb::WriteBatch batch;
  return WriteWithEvents(batch, events, "recording disclosure");
}

namespace {
std::vector<std::string> FieldNames(const std::vector<Field>& fields) {
  std::vector<std::string> names;
  for (const Field& f : fields) names.push_back(f.name);
  return names;
}
}  // namespace

Result<size_t> Engine::Impl::PruneHistory(int64_t as_of, size_t budget) {
  static constexpr char kPruneCursorKey[] = "m:history_prune_cursor";
  std::lock_guard<std::mutex> lock(write_mu_);
  uint64_t after_seq = 0;
  std::string cursor;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), kPruneCursorKey, &cursor);
  if (s.ok() && cursor.size() == 8) after_seq = ReadBigEndian64(cursor);
  std::map<uint64_t, bool> prunable_records;  // Decided once per call.
  Status failure;
  auto prunable = [&](const EventHeader& h) {
    if (h.record_id == 0 || !failure.ok()) return false;
    auto known = prunable_records.find(h.record_id);
    if (known != prunable_records.end()) return known->second;
    bool verdict = false;
    auto record = ReadRecord(h.record_id);
    if (record && record->state == RecordState::kErased) {
      auto policy = PolicyFor(record->kind);
      if (policy && *policy) {
        auto until = AddPeriod(FromMicros(record->erased_at_micros),
                               (*policy)->history_after);
        verdict = until && ToMicros(*until) <= as_of;
      }
    } else if (!record && record.error().code() != StatusCode::kNotFound) {
      failure = record.error();
    }
    prunable_records[h.record_id] = verdict;
    return verdict;
  };
  auto result = history_->Prune(prunable, budget, after_seq);
  if (!failure.ok()) return Fail(failure);
  if (!result) return Fail(result.error());
  leveldb::WriteBatch batch;
  std::string next;
  AppendBigEndian64(next, result->next_after_seq);
  batch.Put(kPruneCursorKey, next);
  if (result->stubbed > 0) {
    // The pruned events' old bytes must leave the files like any erased
    // data: queue the span of event keys this call examined.
    const uint64_t last = result->next_after_seq != 0
                              ? result->next_after_seq
                              : history_->head().last_seq;
    const std::string queued_at = QueuedAt(ToMicros(clock_.Now()));
    for (uint64_t seq : {after_seq + 1, last}) {
      std::string key = "e:";
      AppendBigEndian64(key, seq);
      batch.Put(kCompactQueuePrefix + key, queued_at);
    }
  }
  CUSTOS_RETURN_IF_ERROR(Write(batch, "storing prune cursor"));
  return result->stubbed;
}

Status Engine::Impl::Load() {
  std::string value;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), kNextRecordIdKey, &value);
  if (s.ok() && value.size() == 8) {
    next_record_id_ = ReadBigEndian64(value);
  } else if (!s.IsNotFound()) {
    return s.ok() ? Status::DataLoss("corrupt record id counter")
                  : FromLevelDb(s, "reading record id counter");
  }
  std::unique_ptr<leveldb::Iterator> it(
      db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek("p:"); it->Valid() && it->key().starts_with("p:"); it->Next()) {
    auto p = codec::DecodePrincipal(it->value().ToString());
    if (!p) return p.error();
    principals_[p->info.id] = p->info;
  }
  if (!it->status().ok())
    return FromLevelDb(it->status(), "loading principals");
  for (it->Seek("pol:"); it->Valid() && it->key().starts_with("pol:");
       it->Next()) {
    auto policy = codec::DecodePolicy(it->value().ToString());
    if (!policy) return policy.error();
    policies_[policy->kind] = *policy;
  }
  return FromLevelDb(it->status(), "loading policies");
}

// A shred is first written as an intent in the records database, then the
// key is destroyed in the keystore, then it is reported. A crash between
// the two leaves an intent whose key still exists: finish it now, before
// anyone can read with that key.
Status Engine::Impl::FinishInterruptedShreds() {
  std::unique_ptr<leveldb::Iterator> it(
      db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(kShredQueuePrefix);
       it->Valid() && it->key().starts_with(kShredQueuePrefix); it->Next()) {
    std::string subject_id =
        it->key().ToString().substr(sizeof(kShredQueuePrefix) - 1);
    auto has = keystore_->HasKey(subject_id);
    if (!has) return has.error();
    if (!*has) {
      // Destroyed, but the crash may have come before the compaction.
      CUSTOS_RETURN_IF_ERROR(keystore_->PurgeKey(subject_id));
      continue;
    }
    std::string value;
    leveldb::Status s =
        db_->Get(leveldb::ReadOptions(), SubjectKey(subject_id), &value);
    if (!s.ok()) return FromLevelDb(s, "reading shredded subject");
    auto subject = codec::DecodeSubject(value);
    if (!subject) return subject.error();
    crypto::Digest index{};
    std::copy_n(subject->blind_index.begin(),
                std::min(subject->blind_index.size(), index.size()),
                index.begin());
    CUSTOS_RETURN_IF_ERROR(keystore_->DestroyKey(
        subject_id, crypto::KeyedHash(ledger_key_, index),
        FromMicros(subject->shredded_at_micros), "recovery"));
  }
  return FromLevelDb(it->status(), "scanning shred intents");
}

Result<PrincipalInfo> Engine::Impl::Principal(std::string_view id) const {
  std::shared_lock lock(principals_mu_);
  auto it = principals_.find(std::string(id));
  if (it == principals_.end()) {
    return Fail(Status::NotFound("principal not found"));
  }
  return it->second;
}

Result<PrincipalInfo> Engine::Impl::Caller(const Actor& actor) const {
  auto p = Principal(actor.id());
  if (!p || p->revoked) {
    return Fail(Status::PermissionDenied("principal is unknown or revoked"));
  }
  return p;
}

Result<PrincipalInfo> Engine::Impl::RequireRole(const Actor& actor,
                                                Role role) const {
  auto p = Caller(actor);
  if (!p) return p;
  if (!p->HasRole(role)) {
    return Fail(Status::PermissionDenied(
        "this call needs the " + std::string(RoleName(role)) + " role"));
  }
  return p;
}

Result<NewPrincipal> Engine::Impl::AddPrincipal(std::string_view id,
                                                std::string_view display_name,
                                                const std::vector<Role>& roles,
                                                bool redacted) {
  CUSTOS_RETURN_IF_ERROR(CheckId(id, "a principal id", limits_.max_id_length));
  if (auto s = CheckLength(display_name, "a display name",
                           limits_.max_display_name_length, false);
      !s.ok()) {
    return Fail(s);
  }
  if (roles.empty()) {
    return Fail(Status::InvalidArgument("a principal needs at least one role"));
  }
  // Caller holds write_mu_.
  if (Principal(id)) {
    return Fail(Status::AlreadyExists("principal id is taken"));
  }
  NewPrincipal created;
  created.token = crypto::GenerateToken();
  auto hash = crypto::HashToken(credential_key_, created.token);
  if (!hash) return Fail(hash.error());
  StoredPrincipal stored;
  stored.info.id = std::string(id);
  stored.info.display_name = std::string(display_name);
  stored.info.roles = roles;
  std::sort(stored.info.roles.begin(), stored.info.roles.end());
  stored.info.roles.erase(
      std::unique(stored.info.roles.begin(), stored.info.roles.end()),
      stored.info.roles.end());
  stored.info.redacted = redacted;
  stored.info.created_at = clock_.Now();
  stored.credential_hash.assign(hash->begin(), hash->end());

  leveldb::WriteBatch batch;
  batch.Put(PrincipalKey(id), codec::EncodePrincipal(stored));
  batch.Put(CredentialKey(*hash), std::string(id));
  CUSTOS_RETURN_IF_ERROR(Write(batch, "creating principal"));
  {
    std::unique_lock lock(principals_mu_);
    principals_[stored.info.id] = stored.info;
  }
  created.info = stored.info;
  return created;
}

Result<StoredRecord> Engine::Impl::ReadRecord(uint64_t id) const {
  std::string value;
  leveldb::Status s = db_->Get(leveldb::ReadOptions(), RecordKey(id), &value);
  if (s.IsNotFound()) return Fail(Status::NotFound("record not found"));
  if (!s.ok()) return Fail(FromLevelDb(s, "reading record"));
  return codec::DecodeRecord(value);
}

Result<SharedKey> Engine::Impl::KeyFor(const std::string& subject_id) {
  return key_cache_.GetOrLoad(subject_id, [this](const std::string& id) {
    return keystore_->GetKey(id);
  });
}

Result<std::string> Engine::Impl::FindOrCreateSubject(
    std::string_view identifier, leveldb::WriteBatch& batch,
    std::map<std::string, SharedKey>& keys,
    std::map<std::string, std::string>& created_in_batch) {
  crypto::Digest index = crypto::BlindIndex(blind_index_key_, identifier);
  std::string index_key = BlindIndexKey(index);
  if (auto it = created_in_batch.find(index_key);
      it != created_in_batch.end()) {
    return it->second;
  }
  std::string subject_id;
  leveldb::Status s = db_->Get(leveldb::ReadOptions(), index_key, &subject_id);
  if (s.ok()) {
    auto key = KeyFor(subject_id);
    if (!key) return Fail(key.error());
    if (*key) {
      keys[subject_id] = *key;
      return subject_id;
    }
    // The index points at a shredded subject (a shred interrupted before
    // its index entry went): the identifier gets a new subject below.
  } else if (!s.IsNotFound()) {
    return Fail(FromLevelDb(s, "reading blind index"));
  }

  std::array<uint8_t, 16> random;
  crypto::RandomBytes(random);
  subject_id = "s" + crypto::ToHex(random);
  crypto::SecretKey dek = crypto::SecretKey::Generate();
  StoredSubject subject;
  subject.id = subject_id;
  subject.blind_index.assign(index.begin(), index.end());
  subject.sealed_identifier =
      crypto::Seal(dek, identifier, IdentifierAd(subject_id));
  subject.created_at_micros = ToMicros(clock_.Now());
  // The key goes to the keystore before the records database references
  // it; a crash in between leaves only an unused wrapped key.
  CUSTOS_RETURN_IF_ERROR(keystore_->PutKey(subject_id, dek));
  batch.Put(SubjectKey(subject_id), codec::EncodeSubject(subject));
  batch.Put(index_key, subject_id);
  keys[subject_id] = std::make_shared<const crypto::SecretKey>(std::move(dek));
  // The key is in the keystore already; caching it spares the history's
  // lookup (and every read soon after) an unwrap.
  key_cache_.Put(subject_id, keys[subject_id]);
  created_in_batch[index_key] = subject_id;
  return subject_id;
}

Result<Engine::Impl::Resolved> Engine::Impl::ResolveRecord(
    const PrincipalInfo& caller, StoredRecord record, bool purpose_given) {
  Resolved r{std::move(record), RecordState::kActive, 0, View::kNone};
  r.state = r.record.state;
  r.erased_at_micros = r.record.erased_at_micros;
  if (r.state != RecordState::kErased && !r.record.parts.empty()) {
    bool any_readable = false;
    for (const auto& part : r.record.parts) {
      auto key = KeyFor(part.subject_id);
      if (!key) return Fail(key.error());
      if (*key) {
        any_readable = true;
        break;
      }
    }
    if (!any_readable) {
      // Every subject was shredded; CompleteShreds() will write this down.
      r.state = RecordState::kErased;
      std::string value;
      if (db_->Get(leveldb::ReadOptions(),
                   SubjectKey(r.record.parts.front().subject_id), &value)
              .ok()) {
        if (auto s = codec::DecodeSubject(value); s) {
          r.erased_at_micros = s->shredded_at_micros;
        }
      }
    }
  }
  const auto& grants = r.record.grants;
  AccessRequest request{.caller = caller,
                        .is_owner = r.record.owner == caller.id,
                        .is_grantee = std::find(grants.begin(), grants.end(),
                                                caller.id) != grants.end(),
                        .state = r.state,
                        .purpose_given = purpose_given};
  r.view = ViewFor(request);
  r.sees_subject_ids = caller.HasRole(Role::kAdmin) ||
                       caller.HasRole(Role::kOfficer) ||
                       caller.HasRole(Role::kAuditor);
  if (r.view == View::kNone) {
    return Fail(Status::NotFound("record not found"));
  }
  return r;
}

Result<Engine::Impl::Resolved> Engine::Impl::Resolve(
    const PrincipalInfo& caller, uint64_t id, bool purpose_given) {
  auto record = ReadRecord(id);
  if (!record) return Fail(record.error());
  return ResolveRecord(caller, std::move(*record), purpose_given);
}

Result<RecordView> Engine::Impl::BuildView(
    const Resolved& resolved, const std::optional<Purpose>& purpose) {
  const StoredRecord& r = resolved.record;
  RecordView v;
  v.id = r.id;
  v.kind = r.kind;
  v.owner = r.owner;
  v.grants = r.grants;
  v.attributes = r.attributes;
  v.state = resolved.state;
  v.sensitive = r.sensitive;
  v.version = r.version;
  v.created_at = FromMicros(r.created_at_micros);
  v.updated_at = FromMicros(r.updated_at_micros);
  v.closed_at = OptionalTime(r.closed_at_micros);
  v.blocked_at = OptionalTime(r.blocked_at_micros);
  v.erased_at = OptionalTime(resolved.erased_at_micros);
  // Subject ids are pseudonyms that link a person's records: shown with
  // the personal data, or to the roles that act on subjects (shredding,
  // holds, reports), never in an attributes-only view of other callers.
  if (resolved.sees_subject_ids) v.subject_ids = r.subject_ids;
  for (const auto& f : r.flags) {
    v.flags.push_back({f.by, FromMicros(f.at_micros),
                       resolved.sees_subject_ids ? f.subject_id : "", ""});
  }
  for (const auto& c : r.contests) {
    v.contests.push_back({c.by,
                          FromMicros(c.at_micros),
                          resolved.sees_subject_ids ? c.subject_id : "",
                          "",
                          {}});
  }
  if (resolved.view != View::kFull) return v;
  if (r.sensitive && !purpose) {
    v.purpose_required = true;
    return v;
  }
  v.personal_included = true;
  v.subject_ids = r.subject_ids;
  for (size_t i = 0; i < r.flags.size(); ++i) {
    v.flags[i].subject_id = r.flags[i].subject_id;
  }
  for (size_t i = 0; i < r.contests.size(); ++i) {
    v.contests[i].subject_id = r.contests[i].subject_id;
  }

  // Parts of shredded subjects are skipped: their key is gone.
  for (const auto& part : r.parts) {
    auto key = KeyFor(part.subject_id);
    if (!key) return Fail(key.error());
    if (!*key) continue;
    auto plain = crypto::Open(**key, part.sealed,
                              PartAd(r.id, part.subject_id, part.version));
    if (!plain)
      return Fail(Status::DataLoss("a personal part failed to decrypt"));
    auto fields = codec::DecodeFields(*plain);
    crypto::Wipe(*plain);
    if (!fields) return Fail(fields.error());
    PartView pv{part.subject_id, "", part.version, std::move(*fields)};
    std::string value;
    leveldb::Status s =
        db_->Get(leveldb::ReadOptions(), SubjectKey(part.subject_id), &value);
    if (!s.ok()) return Fail(FromLevelDb(s, "reading subject"));
    auto subject = codec::DecodeSubject(value);
    if (!subject) return Fail(subject.error());
    auto identifier = crypto::Open(**key, subject->sealed_identifier,
                                   IdentifierAd(part.subject_id));
    if (!identifier) {
      return Fail(Status::DataLoss("a subject identifier failed to decrypt"));
    }
    pv.subject_identifier.assign(identifier->begin(), identifier->end());
    crypto::Wipe(*identifier);
    v.parts.push_back(std::move(pv));
  }
  for (size_t i = 0; i < r.flags.size(); ++i) {
    const auto& f = r.flags[i];
    auto key = KeyFor(f.subject_id);
    if (!key) return Fail(key.error());
    if (!*key || f.sealed_note.empty()) continue;
    auto plain = crypto::Open(**key, f.sealed_note,
                              NoteAd("flag", r.id, f.subject_id, f.at_micros));
    if (!plain) return Fail(Status::DataLoss("a flag note failed to decrypt"));
    auto fields = codec::DecodeFields(*plain);
    if (!fields) return Fail(fields.error());
    if (!fields->empty()) v.flags[i].note = fields->front().value;
  }
  for (size_t i = 0; i < r.contests.size(); ++i) {
    const auto& c = r.contests[i];
    auto key = KeyFor(c.subject_id);
    if (!key) return Fail(key.error());
    if (!*key || c.sealed_statement.empty()) continue;
    auto plain =
        crypto::Open(**key, c.sealed_statement,
                     NoteAd("contest", r.id, c.subject_id, c.at_micros));
    if (!plain) return Fail(Status::DataLoss("a contest failed to decrypt"));
    auto fields = codec::DecodeFields(*plain);
    if (!fields) return Fail(fields.error());
    // The statement is stored as the first field, named "statement".
    for (auto& f : *fields) {
      if (v.contests[i].statement.empty() && f.name == "statement") {
        v.contests[i].statement = std::move(f.value);
      } else {
        v.contests[i].corrected.push_back(std::move(f));
      }
    }
  }
  return v;
}

// ---- Engine
// ------------------------------------------------------------------------

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::Open(const Options& options,
                                             crypto::SecretKey master_key) {
  if (options.data_dir.empty()) {
    return Fail(Status::InvalidArgument("data_dir must be set"));
  }
  if (options.clock == nullptr) {
    return Fail(Status::InvalidArgument("a clock must be given"));
  }
  if (master_key.empty()) {
    return Fail(Status::InvalidArgument("a master key must be given"));
  }
  if (options.limits.max_page_size == 0 || options.limits.max_list_scan == 0 ||
      options.key_cache_capacity == 0 ||
      options.erasure_compaction_delay.count() < 0) {
    return Fail(Status::InvalidArgument(
        "max_page_size, max_list_scan and key_cache_capacity must be at "
        "least 1, erasure_compaction_delay at least 0"));
  }
  if (options.create_if_missing) {
    leveldb::Env::Default()->CreateDir(options.data_dir);  // May exist.
  }
  leveldb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.paranoid_checks = true;
  leveldb::DB* raw = nullptr;
  leveldb::Status s =
      leveldb::DB::Open(db_options, options.data_dir + "/records", &raw);
  if (!s.ok()) {
    if (s.IsInvalidArgument() && !options.create_if_missing) {
      return Fail(Status::NotFound("no Custos store in " + options.data_dir));
    }
    return Fail(FromLevelDb(s, "opening records database"));
  }
  std::unique_ptr<leveldb::DB> db(raw);
  const Timestamp now = options.clock->Now();

  std::string format;
  s = db->Get(leveldb::ReadOptions(), kFormatKey, &format);
  const bool new_store = s.IsNotFound();
  if (!new_store) {
    if (!s.ok()) return Fail(FromLevelDb(s, "reading format version"));
    auto version = codec::DecodeFormatVersion(format);
    if (!version) return Fail(version.error());
    if (*version != kFormatVersion) {
      return Fail(Status::FailedPrecondition(
          "data directory format version " + std::to_string(*version) +
          " is not supported (this build reads version " +
          std::to_string(kFormatVersion) + ")"));
    }
  }

  // The keystore is created only together with a new records database: a
  // store whose keystore vanished must not silently get an empty one (every
  // record would read as erased, under any master key). It is created
  // before the records database is marked as a store, so a first start
  // killed in between simply starts over.
  auto keystore = Keystore::Open(options.data_dir + "/keystore",
                                 /*create_if_missing=*/new_store,
                                 options.sync_writes, master_key, now);
  if (!keystore) {
    if (keystore.error().code() == StatusCode::kNotFound) {
      return Fail(Status::DataLoss("the keystore of " + options.data_dir +
                                   " is missing"));
    }
    return Fail(keystore.error());
  }
  if (new_store) {
    leveldb::WriteOptions wo;
    wo.sync = true;
    // A new store starts with the shipped policies (DESIGN section 3).
    leveldb::WriteBatch batch;
    batch.Put(kFormatKey,
              codec::EncodeFormatInfo(kFormatVersion, ToMicros(now)));
    for (const RetentionPolicy& policy : DefaultPolicies()) {
      batch.Put(PolicyKey(policy.kind), codec::EncodePolicy(policy));
    }
    s = db->Write(wo, &batch);
    if (!s.ok()) return Fail(FromLevelDb(s, "writing format version"));
  }

  auto impl = std::make_unique<Impl>(
      options, crypto::DeriveSubkey(master_key, crypto::Subkey::kBlindIndex),
      crypto::DeriveSubkey(master_key, crypto::Subkey::kCredential),
      crypto::DeriveSubkey(master_key, crypto::Subkey::kLedger), std::move(db),
      std::move(*keystore));
  CUSTOS_RETURN_IF_ERROR(impl->Load());
  History::Options history_options;
  history_options.sync_writes = options.sync_writes;
  auto history = History::Open(
      *impl->db_, crypto::DeriveSubkey(master_key, crypto::Subkey::kAudit),
      history_options);
  if (!history) return Fail(history.error());
  impl->history_ = std::move(*history);
  CUSTOS_RETURN_IF_ERROR(impl->FinishInterruptedShreds());
  // Erased bytes an interrupted call left on disk go now.
  CUSTOS_RETURN_IF_ERROR(impl->CompactErased());
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

// ---- Principals
// ----------------------------------------------------------------------

Result<NewPrincipal> Engine::BootstrapAdmin(std::string_view id,
                                            std::string_view display_name) {
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  {
    std::shared_lock plock(impl_->principals_mu_);
    if (!impl_->principals_.empty()) {
      return Fail(Status::FailedPrecondition(
          "the store already has principals; ask an admin"));
    }
  }
  return impl_->AddPrincipal(id, display_name, {Role::kAdmin}, false);
}

Result<NewPrincipal> Engine::CreatePrincipal(const Actor& admin,
                                             std::string_view id,
                                             std::string_view display_name,
                                             const std::vector<Role>& roles,
                                             bool redacted) {
  if (auto p = impl_->RequireRole(admin, Role::kAdmin); !p)
    return Fail(p.error());
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  return impl_->AddPrincipal(id, display_name, roles, redacted);
}

Result<std::vector<PrincipalInfo>> Engine::ListPrincipals(const Actor& admin) {
  if (auto p = impl_->RequireRole(admin, Role::kAdmin); !p)
    return Fail(p.error());
  std::vector<PrincipalInfo> out;
  std::shared_lock lock(impl_->principals_mu_);
  for (const auto& [id, info] : impl_->principals_) out.push_back(info);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

Status Engine::RevokePrincipal(const Actor& admin, std::string_view id) {
  if (auto p = impl_->RequireRole(admin, Role::kAdmin); !p) return p.error();
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  std::string value;
  leveldb::Status s =
      impl_->db_->Get(leveldb::ReadOptions(), PrincipalKey(id), &value);
  if (s.IsNotFound()) return Status::NotFound("principal not found");
  if (!s.ok()) return FromLevelDb(s, "reading principal");
  auto stored = codec::DecodePrincipal(value);
  if (!stored) return stored.error();
  if (stored->info.revoked) return Status::Ok();
  if (stored->info.HasRole(Role::kAdmin)) {
    std::shared_lock plock(impl_->principals_mu_);
    size_t admins = 0;
    for (const auto& [pid, info] : impl_->principals_) {
      if (!info.revoked && info.HasRole(Role::kAdmin)) ++admins;
    }
    if (admins <= 1) {
      return Status::FailedPrecondition(
          "the last admin cannot be revoked: nobody could manage the store");
    }
  }
  stored->info.revoked = true;
  stored->revoked_at_micros = ToMicros(impl_->clock_.Now());
  leveldb::WriteBatch batch;
  batch.Put(PrincipalKey(id), codec::EncodePrincipal(*stored));
  crypto::Digest hash{};
  std::copy_n(stored->credential_hash.begin(),
              std::min(stored->credential_hash.size(), hash.size()),
              hash.begin());
  batch.Delete(CredentialKey(hash));
  CUSTOS_RETURN_IF_ERROR(impl_->Write(batch, "revoking principal"));
  std::unique_lock plock(impl_->principals_mu_);
  impl_->principals_[stored->info.id] = stored->info;
  return Status::Ok();
}

Result<Actor> Engine::Authenticate(std::string_view token) {
  const Status denied = Status::PermissionDenied("invalid credential");
  auto hash = crypto::HashToken(impl_->credential_key_, token);
  if (!hash) return Fail(denied);
  std::string id;
  leveldb::Status s =
      impl_->db_->Get(leveldb::ReadOptions(), CredentialKey(*hash), &id);
  if (!s.ok()) return Fail(denied);
  auto p = impl_->Principal(id);
  if (!p || p->revoked) return Fail(denied);
  return Actor(p->id);
}

Result<Actor> Engine::ActorFor(std::string_view principal_id) {
  auto p = impl_->Principal(principal_id);
  if (!p) return Fail(p.error());
  if (p->revoked) return Fail(Status::PermissionDenied("principal is revoked"));
  return Actor(p->id);
}

// ---- Records
// ---------------------------------------------------------------------------

Result<uint64_t> Engine::CreateRecord(const Actor& actor, const NewRecord& in) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return Fail(caller.error());
  const Limits& limits = impl_->limits_;
  if (auto s = CheckId(in.kind, "a record kind", limits.max_id_length);
      !s.ok()) {
    return Fail(s);
  }
  if (in.attributes.size() > limits.max_attributes) {
    return Fail(Status::InvalidArgument("a record may hold at most " +
                                        std::to_string(limits.max_attributes) +
                                        " attributes"));
  }
  for (const auto& a : in.attributes) {
    if (auto s = CheckLength(a.key, "an attribute key",
                             limits.max_attribute_key_length, false);
        !s.ok()) {
      return Fail(s);
    }
    if (auto s = CheckLength(a.value, "attribute '" + a.key + "'",
                             limits.max_attribute_value_length, true);
        !s.ok()) {
      return Fail(s);
    }
  }
  if (in.personal.size() > limits.max_subjects_per_record) {
    return Fail(Status::InvalidArgument(
        "a record may concern at most " +
        std::to_string(limits.max_subjects_per_record) + " subjects"));
  }
  size_t personal_bytes = 0;
  for (const auto& part : in.personal) {
    if (auto s = CheckLength(part.subject_identifier, "a subject identifier",
                             limits.max_identifier_length, false);
        !s.ok()) {
      return Fail(s);
    }
    if (auto s = CheckFields(part.fields, limits, &personal_bytes); !s.ok()) {
      return Fail(s);
    }
  }
  for (size_t i = 0; i < in.personal.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (in.personal[i].subject_identifier ==
          in.personal[j].subject_identifier) {
        return Fail(Status::InvalidArgument(
            "two personal parts name the same subject"));
      }
    }
  }
  if (personal_bytes > limits.max_personal_bytes) {
    return Fail(Status::InvalidArgument(
        "a record's personal data may total at most " +
        std::to_string(limits.max_personal_bytes) + " bytes"));
  }
  if (in.grants.size() > limits.max_grants) {
    return Fail(Status::InvalidArgument("a record may have at most " +
                                        std::to_string(limits.max_grants) +
                                        " grants"));
  }
  std::vector<std::string> grants;
  for (const auto& g : in.grants) {
    auto p = impl_->Principal(g);
    if (!p || p->revoked) {
      return Fail(Status::InvalidArgument("grantee is not a known principal"));
    }
    if (g != caller->id &&
        std::find(grants.begin(), grants.end(), g) == grants.end()) {
      grants.push_back(g);
    }
  }

  auto policy = impl_->PolicyFor(in.kind);
  if (!policy) return Fail(policy.error());
  if (!*policy) {
    return Fail(Status::FailedPrecondition(
        "no retention policy for kind '" + in.kind +
        "': no data is stored without a retention rule"));
  }

  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  leveldb::WriteBatch batch;
  StoredRecord r;
  r.id = impl_->next_record_id_;
  r.kind = in.kind;
  r.owner = caller->id;
  r.grants = std::move(grants);
  r.attributes = in.attributes;
  r.sensitive = in.sensitive;
  r.state = RecordState::kActive;
  r.version = 1;
  r.created_at_micros = r.updated_at_micros = ToMicros(impl_->clock_.Now());

  std::map<std::string, SharedKey> keys;
  std::map<std::string, std::string> created;
  for (const auto& part : in.personal) {
    auto subject_id = impl_->FindOrCreateSubject(part.subject_identifier, batch,
                                                 keys, created);
    if (!subject_id) return Fail(subject_id.error());
    std::vector<uint8_t> plain = codec::EncodeFields(part.fields);
    r.parts.push_back({*subject_id, r.version,
                       crypto::Seal(*keys[*subject_id], plain,
                                    PartAd(r.id, *subject_id, r.version))});
    crypto::Wipe(plain);
    r.subject_ids.push_back(*subject_id);
    batch.Put(SubjectRecordKey(*subject_id, r.id), "");
  }
  CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(batch, r));
  batch.Put(AclKey(r.owner, r.id), "");
  for (const auto& g : r.grants) batch.Put(AclKey(g, r.id), "");
  std::string next;
  AppendBigEndian64(next, r.id + 1);
  batch.Put(kNextRecordIdKey, next);
  Event event = impl_->RecordEvent(*caller, EventAction::kCreate, r);
  for (const auto& part : in.personal) {
    for (const Field& f : part.fields) {
      if (std::find(event.fields.begin(), event.fields.end(), f.name) ==
          event.fields.end()) {
        event.fields.push_back(f.name);
      }
    }
  }
  // Grants given at creation are disclosures too: one grant event each.
  std::vector<Event> events{event};
  for (const std::string& grantee : r.grants) {
    events.push_back(impl_->RecordEvent(*caller, EventAction::kGrant, r));
    events.back().fields = {"grantee:" + grantee};
  }
  CUSTOS_RETURN_IF_ERROR(
      impl_->WriteWithEvents(batch, events, "creating record"));
  impl_->next_record_id_ = r.id + 1;
  return r.id;
}

Result<RecordView> Engine::GetRecord(const Actor& actor, uint64_t id,
                                     const std::optional<Purpose>& purpose) {
  auto caller = impl_->Caller(actor);
  if (!caller) return Fail(caller.error());
  if (auto s = CheckPurpose(purpose, impl_->limits_); !s.ok()) return Fail(s);
  auto resolved = impl_->Resolve(*caller, id, purpose.has_value());
  if (!resolved) return Fail(resolved.error());
  auto view = impl_->BuildView(*resolved, purpose);
  if (!view) return view;
  CUSTOS_RETURN_IF_ERROR(impl_->RecordReads(*caller, {&*view}, purpose));
  return view;
}

Result<ListPage> Engine::ListRecords(const Actor& actor, const ListQuery& q) {
  auto caller = impl_->Caller(actor);
  if (!caller) return Fail(caller.error());
  if (q.limit == 0 || q.limit > impl_->limits_.max_page_size) {
    return Fail(Status::InvalidArgument(
        "limit must be 1 to " + std::to_string(impl_->limits_.max_page_size)));
  }
  if (auto s = CheckPurpose(q.purpose, impl_->limits_); !s.ok()) return Fail(s);

  // Officers and admins may see records beyond their grants, so they scan
  // every record; everyone else scans only their access index.
  const bool scan_all =
      caller->HasRole(Role::kAdmin) || caller->HasRole(Role::kOfficer);
  const std::string prefix = scan_all ? "r:" : AclPrefix(caller->id);
  std::string start = prefix;
  AppendBigEndian64(start, q.after_id + 1);
  if (q.after_id == UINT64_MAX) return ListPage{};

  ListPage page;
  size_t examined = 0;
  std::unique_ptr<leveldb::Iterator> it(
      impl_->db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(start); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    uint64_t id = ReadBigEndian64(key.substr(prefix.size()));
    if (examined == impl_->limits_.max_list_scan ||
        page.records.size() == q.limit) {
      page.next_after_id = id - 1;
      break;
    }
    ++examined;
    Result<StoredRecord> record =
        scan_all ? codec::DecodeRecord(it->value().ToString())
                 : impl_->ReadRecord(id);
    if (!record) {
      if (record.error().code() == StatusCode::kNotFound) continue;
      return Fail(record.error());
    }
    if (q.kind && record->kind != *q.kind) continue;
    if (q.created_from && record->created_at_micros < ToMicros(*q.created_from))
      continue;
    if (q.created_to && record->created_at_micros >= ToMicros(*q.created_to))
      continue;
    bool attributes_match = std::all_of(
        q.attribute_equals.begin(), q.attribute_equals.end(),
        [&](const Attribute& want) {
          return std::find(record->attributes.begin(), record->attributes.end(),
                           want) != record->attributes.end();
        });
    if (!attributes_match) continue;
    auto resolved = impl_->ResolveRecord(*caller, std::move(*record),
                                         q.purpose.has_value());
    if (!resolved) {
      if (resolved.error().code() == StatusCode::kNotFound) continue;
      return Fail(resolved.error());
    }
    if (q.state && resolved->state != *q.state) continue;
    auto view = impl_->BuildView(*resolved, q.purpose);
    if (!view) return Fail(view.error());
    page.records.push_back(std::move(*view));
  }
  if (!it->status().ok()) {
    return Fail(FromLevelDb(it->status(), "listing records"));
  }
  std::vector<const RecordView*> views;
  for (const RecordView& v : page.records) views.push_back(&v);
  CUSTOS_RETURN_IF_ERROR(impl_->RecordReads(*caller, views, q.purpose));
  return page;
}

// Shared shape of the owner's changes: resolve as the caller, require
// ownership and a state, apply, write.
namespace {
Status RequireOwner(const PrincipalInfo& caller, const StoredRecord& r) {
  if (r.owner != caller.id) {
    return Status::PermissionDenied("only the record's owner may do this");
  }
  return Status::Ok();
}
Status RequireState(RecordState actual,
                    std::initializer_list<RecordState> allowed,
                    std::string_view action) {
  for (RecordState s : allowed) {
    if (s == actual) return Status::Ok();
  }
  return Status::FailedPrecondition("cannot " + std::string(action) +
                                    " a record that is " +
                                    std::string(RecordStateName(actual)));
}
}  // namespace

Status Engine::Grant(const Actor& actor, uint64_t id,
                     std::string_view grantee) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return caller.error();
  auto target = impl_->Principal(grantee);
  if (!target || target->revoked) {
    return Status::InvalidArgument("grantee is not a known principal");
  }
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  auto resolved = impl_->Resolve(*caller, id, false);
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  CUSTOS_RETURN_IF_ERROR(RequireOwner(*caller, r));
  CUSTOS_RETURN_IF_ERROR(
      RequireState(resolved->state, {RecordState::kActive}, "grant access to"));
  if (r.owner == target->id || std::find(r.grants.begin(), r.grants.end(),
                                         target->id) != r.grants.end()) {
    return Status::Ok();
  }
  if (r.grants.size() >= impl_->limits_.max_grants) {
    return Status::InvalidArgument("a record may have at most " +
                                   std::to_string(impl_->limits_.max_grants) +
                                   " grants");
  }
  r.grants.push_back(target->id);
  r.updated_at_micros = ToMicros(impl_->clock_.Now());
  leveldb::WriteBatch batch;
  CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(batch, r));
  batch.Put(AclKey(target->id, r.id), "");
  Event event = impl_->RecordEvent(*caller, EventAction::kGrant, r);
  event.fields = {"grantee:" + target->id};
  return impl_->WriteWithEvents(batch, {event}, "granting access");
}

Result<uint64_t> Engine::Rectify(const Actor& actor, uint64_t id,
                                 std::string_view subject_id,
                                 const std::vector<Field>& fields) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return Fail(caller.error());
  size_t bytes = 0;
  if (auto s = CheckFields(fields, impl_->limits_, &bytes); !s.ok())
    return Fail(s);
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  auto resolved = impl_->Resolve(*caller, id, false);
  if (!resolved) return Fail(resolved.error());
  StoredRecord& r = resolved->record;
  if (auto s = RequireOwner(*caller, r); !s.ok()) return Fail(s);
  if (auto s = RequireState(resolved->state, {RecordState::kActive}, "rectify");
      !s.ok()) {
    return Fail(s);
  }
  auto part = std::find_if(r.parts.begin(), r.parts.end(), [&](const auto& p) {
    return p.subject_id == subject_id;
  });
  if (part == r.parts.end()) {
    return Fail(
        Status::InvalidArgument("the record holds no part for that subject"));
  }
  auto key = impl_->KeyFor(part->subject_id);
  if (!key) return Fail(key.error());
  if (!*key) {
    return Fail(Status::FailedPrecondition("that subject has been erased"));
  }
  // The new personal data total must stay within the limit.
  for (const auto& other : r.parts) {
    if (other.subject_id == subject_id) continue;
    bytes += other.sealed.size();  // An upper bound of its plaintext size.
  }
  if (bytes > impl_->limits_.max_personal_bytes) {
    return Fail(Status::InvalidArgument(
        "a record's personal data may total at most " +
        std::to_string(impl_->limits_.max_personal_bytes) + " bytes"));
  }
  r.version += 1;
  std::vector<uint8_t> plain = codec::EncodeFields(fields);
  leveldb::WriteBatch batch;
  // The replaced data must not linger either: witnessed and queued for
  // the next compaction (the next sweep, erasure or Open), not compacted
  // here, so rectifying stays cheap.
  AddWitness(batch, part->sealed);
  batch.Put(kCompactQueuePrefix + RecordKey(r.id),
            QueuedAt(ToMicros(impl_->clock_.Now())));
  part->version = r.version;
  part->sealed =
      crypto::Seal(**key, plain, PartAd(r.id, part->subject_id, r.version));
  crypto::Wipe(plain);
  r.updated_at_micros = ToMicros(impl_->clock_.Now());
  CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(batch, r));
  Event event = impl_->RecordEvent(*caller, EventAction::kRectify, r);
  event.subject_ids = {part->subject_id};
  event.fields = FieldNames(fields);
  CUSTOS_RETURN_IF_ERROR(
      impl_->WriteWithEvents(batch, {event}, "rectifying record"));
  return r.version;
}

Status Engine::FlagIncorrect(const Actor& actor, uint64_t id,
                             std::string_view subject_id, std::string_view note,
                             const std::optional<Purpose>& purpose) {
  auto caller = impl_->Caller(actor);
  if (!caller) return caller.error();
  CUSTOS_RETURN_IF_ERROR(CheckPurpose(purpose, impl_->limits_));
  CUSTOS_RETURN_IF_ERROR(
      CheckLength(note, "a note", impl_->limits_.max_note_length, false));
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  auto resolved = impl_->Resolve(*caller, id, purpose.has_value());
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  if (resolved->view != View::kFull || (r.sensitive && !purpose)) {
    return Status::PermissionDenied(
        "flagging needs access to the record's personal data");
  }
  if (std::find(r.subject_ids.begin(), r.subject_ids.end(), subject_id) ==
      r.subject_ids.end()) {
    return Status::InvalidArgument("the record holds no part for that subject");
  }
  auto key = impl_->KeyFor(std::string(subject_id));
  if (!key) return key.error();
  if (!*key) return Status::FailedPrecondition("that subject has been erased");
  codec::StoredFlag flag{
      caller->id, ToMicros(impl_->clock_.Now()), std::string(subject_id), {}};
  std::vector<uint8_t> plain =
      codec::EncodeFields({{"note", std::string(note)}});
  flag.sealed_note = crypto::Seal(
      **key, plain, NoteAd("flag", r.id, flag.subject_id, flag.at_micros));
  crypto::Wipe(plain);
  r.flags.push_back(std::move(flag));
  r.updated_at_micros = ToMicros(impl_->clock_.Now());
  leveldb::WriteBatch batch;
  CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(batch, r));
  Event event = impl_->RecordEvent(*caller, EventAction::kFlag, r);
  event.subject_ids = {std::string(subject_id)};
  event.purpose = purpose;
  event.fields = {"note"};
  return impl_->WriteWithEvents(batch, {event}, "flagging record");
}

Status Engine::Contest(const Actor& actor, uint64_t id,
                       std::string_view subject_id, std::string_view statement,
                       const std::vector<Field>& corrected) {
  auto caller = impl_->RequireRole(actor, Role::kOfficer);
  if (!caller) return caller.error();
  CUSTOS_RETURN_IF_ERROR(CheckLength(statement, "a contest statement",
                                     impl_->limits_.max_note_length, false));
  size_t bytes = 0;
  CUSTOS_RETURN_IF_ERROR(CheckFields(corrected, impl_->limits_, &bytes));
  for (const auto& f : corrected) {
    if (f.name == "statement") {
      return Status::InvalidArgument("'statement' is reserved as a field name");
    }
  }
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  // Recording a contest is done for the data subject: it is the subject's
  // consent that makes the officer's view of the record lawful here.
  auto resolved = impl_->Resolve(*caller, id, /*purpose_given=*/true);
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  CUSTOS_RETURN_IF_ERROR(RequireState(
      resolved->state,
      {RecordState::kActive, RecordState::kClosed, RecordState::kBlocked},
      "contest"));
  if (std::find(r.subject_ids.begin(), r.subject_ids.end(), subject_id) ==
      r.subject_ids.end()) {
    return Status::InvalidArgument("the record holds no part for that subject");
  }
  auto key = impl_->KeyFor(std::string(subject_id));
  if (!key) return key.error();
  if (!*key) return Status::FailedPrecondition("that subject has been erased");
  codec::StoredContest contest{
      caller->id, ToMicros(impl_->clock_.Now()), std::string(subject_id), {}};
  std::vector<Field> fields{{"statement", std::string(statement)}};
  fields.insert(fields.end(), corrected.begin(), corrected.end());
  std::vector<uint8_t> plain = codec::EncodeFields(fields);
  contest.sealed_statement = crypto::Seal(
      **key, plain,
      NoteAd("contest", r.id, contest.subject_id, contest.at_micros));
  crypto::Wipe(plain);
  r.contests.push_back(std::move(contest));
  r.updated_at_micros = ToMicros(impl_->clock_.Now());
  leveldb::WriteBatch batch;
  CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(batch, r));
  Event event = impl_->RecordEvent(*caller, EventAction::kContest, r);
  event.subject_ids = {std::string(subject_id)};
  event.fields = FieldNames(fields);
  return impl_->WriteWithEvents(batch, {event}, "recording contest");
}

Status Engine::Close(const Actor& actor, uint64_t id) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return caller.error();
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  auto resolved = impl_->Resolve(*caller, id, false);
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  CUSTOS_RETURN_IF_ERROR(RequireOwner(*caller, r));
  CUSTOS_RETURN_IF_ERROR(
      RequireState(resolved->state, {RecordState::kActive}, "close"));
  r.state = RecordState::kClosed;
  r.closed_at_micros = r.updated_at_micros = ToMicros(impl_->clock_.Now());
  leveldb::WriteBatch batch;
  CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(batch, r));
  return impl_->WriteWithEvents(
      batch, {impl_->RecordEvent(*caller, EventAction::kClose, r)},
      "closing record");
}

Status Engine::Withdraw(const Actor& actor, uint64_t id) {
  auto caller = impl_->RequireRole(actor, Role::kUser);
  if (!caller) return caller.error();
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  auto resolved = impl_->Resolve(*caller, id, false);
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  CUSTOS_RETURN_IF_ERROR(RequireOwner(*caller, r));
  CUSTOS_RETURN_IF_ERROR(
      RequireState(resolved->state,
                   {RecordState::kActive, RecordState::kClosed}, "withdraw"));
  const int64_t now = ToMicros(impl_->clock_.Now());
  r.state = RecordState::kBlocked;
  if (r.closed_at_micros == 0) r.closed_at_micros = now;
  r.blocked_at_micros = r.updated_at_micros = now;
  leveldb::WriteBatch batch;
  CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(batch, r));
  return impl_->WriteWithEvents(
      batch, {impl_->RecordEvent(*caller, EventAction::kWithdraw, r)},
      "withdrawing record");
}

Status Engine::EraseRecord(const Actor& actor, uint64_t id) {
  auto caller = impl_->Caller(actor);
  if (!caller) return caller.error();
  std::unique_lock<std::mutex> lock(impl_->write_mu_);
  auto resolved = impl_->Resolve(*caller, id, false);
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  if (!caller->HasRole(Role::kAdmin)) {
    if (!caller->HasRole(Role::kUser)) {
      return Status::PermissionDenied("this call needs the user or admin role");
    }
    CUSTOS_RETURN_IF_ERROR(RequireOwner(*caller, r));
  }
  if (resolved->state == RecordState::kErased) {
    return Status::FailedPrecondition("the record is already ERASED");
  }
  const int64_t now = ToMicros(impl_->clock_.Now());
  auto holds = impl_->HoldsOnRecord(r, now);
  if (!holds) return holds.error();
  if (!holds->empty()) {
    return Status::FailedPrecondition("erasure refused: the record is under " +
                                      DescribeHolds(*holds));
  }
  leveldb::WriteBatch batch;
  EraseContents(r,
                resolved->state == RecordState::kErased
                    ? resolved->erased_at_micros
                    : now,
                now, batch);
  r.updated_at_micros = now;
  CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(batch, r));
  CUSTOS_RETURN_IF_ERROR(impl_->WriteWithEvents(
      batch, {impl_->RecordEvent(*caller, EventAction::kErase, r)},
      "erasing record"));
  lock.unlock();
  return impl_->CompactErased();
}

// ---- Subjects
// ---------------------------------------------------------------------------

Result<std::string> Engine::FindSubject(const Actor& actor,
                                        std::string_view identifier) {
  auto caller = impl_->Caller(actor);
  if (!caller) return Fail(caller.error());
  if (!caller->HasRole(Role::kAdmin) && !caller->HasRole(Role::kAuditor)) {
    return Fail(
        Status::PermissionDenied("this call needs the admin or auditor role"));
  }
  crypto::Digest index =
      crypto::BlindIndex(impl_->blind_index_key_, identifier);
  std::string subject_id;
  leveldb::Status s = impl_->db_->Get(leveldb::ReadOptions(),
                                      BlindIndexKey(index), &subject_id);
  if (s.IsNotFound()) return Fail(Status::NotFound("subject not found"));
  if (!s.ok()) return Fail(FromLevelDb(s, "reading blind index"));
  auto key = impl_->KeyFor(subject_id);
  if (!key) return Fail(key.error());
  if (!*key) return Fail(Status::NotFound("subject not found"));
  return subject_id;
}

Status Engine::ShredSubject(const Actor& actor, std::string_view subject_id) {
  auto caller = impl_->RequireRole(actor, Role::kAdmin);
  if (!caller) return caller.error();
  std::unique_lock<std::mutex> lock(impl_->write_mu_);
  std::string value;
  leveldb::Status s =
      impl_->db_->Get(leveldb::ReadOptions(), SubjectKey(subject_id), &value);
  if (s.IsNotFound()) return Status::NotFound("subject not found");
  if (!s.ok()) return FromLevelDb(s, "reading subject");
  auto subject = codec::DecodeSubject(value);
  if (!subject) return subject.error();
  if (subject->shredded) {
    // Reported done only once the key is gone; a shred whose key
    // destruction failed is finished by asking again.
    auto has = impl_->keystore_->HasKey(subject_id);
    if (!has) return has.error();
    if (!*has) return Status::NotFound("subject not found");
  }
  crypto::Digest index{};
  if (subject->blind_index.size() != index.size()) {
    return Status::DataLoss("corrupt subject");
  }
  std::copy(subject->blind_index.begin(), subject->blind_index.end(),
            index.begin());
  const Timestamp now = impl_->clock_.Now();
  auto holds = impl_->HoldsOnSubject(std::string(subject_id), ToMicros(now));
  if (!holds) return holds.error();
  if (!holds->empty()) {
    return Status::FailedPrecondition(
        "shredding refused: the subject is under " + DescribeHolds(*holds));
  }

  // Order (docs/storage.md, "Shredding"): 1. intent + subject marked and
  // unlinked from its identifier, in the records database; 2. key destroyed
  // and ledger written, in the keystore, synchronously; 3. cache evicted;
  // then reported. A crash after 1 is completed at the next Open.
  subject->shredded = true;
  subject->shredded_at_micros = ToMicros(now);
  leveldb::WriteBatch batch;
  // Witnesses of the sealed identifier and the wrapped key, so
  // VerifyErasure can look for them; the keystore compacts its own files.
  AddWitness(batch, subject->sealed_identifier);
  auto wrapped = impl_->keystore_->WrappedBytes(subject_id);
  if (!wrapped) return wrapped.error();
  if (*wrapped) AddWitness(batch, **wrapped);
  subject->sealed_identifier.clear();
  batch.Put(SubjectKey(subject_id), codec::EncodeSubject(*subject));
  batch.Delete(BlindIndexKey(index));
  batch.Put(ShredQueueKey(subject_id), "");
  batch.Put(kCompactQueuePrefix + SubjectKey(subject_id),
            QueuedAt(ToMicros(now)));
  // The shred event is sealed under the subject's key like the rest of its
  // history, and becomes unreadable with it.
  Event event;
  event.at = now;
  event.principal_id = caller->id;
  event.principal_name = caller->display_name;
  event.action = EventAction::kShred;
  event.subject_ids = {std::string(subject_id)};
  CUSTOS_RETURN_IF_ERROR(impl_->WriteWithEvents(
      batch, {event}, "recording shred intent", /*force_sync=*/true));
  CUSTOS_RETURN_IF_ERROR(impl_->keystore_->DestroyKey(
      subject_id, crypto::KeyedHash(impl_->ledger_key_, index), now,
      caller->id));
  impl_->key_cache_.Evict(std::string(subject_id));
  lock.unlock();
  return impl_->CompactErased();
}

Result<size_t> Engine::CompleteShreds(size_t budget) {
  std::unique_lock<std::mutex> lock(impl_->write_mu_);
  size_t rewritten = 0;
  // The iterators live in this scope only: an open iterator pins the table
  // files it reads, and the compaction below must be free to delete them.
  {
    std::unique_ptr<leveldb::Iterator> queue(
        impl_->db_->NewIterator(leveldb::ReadOptions()));
    for (queue->Seek(kShredQueuePrefix);
         queue->Valid() && queue->key().starts_with(kShredQueuePrefix) &&
         rewritten < budget;
         queue->Next()) {
      std::string subject_id =
          queue->key().ToString().substr(sizeof(kShredQueuePrefix) - 1);
      std::string value;
      leveldb::Status s = impl_->db_->Get(leveldb::ReadOptions(),
                                          SubjectKey(subject_id), &value);
      if (!s.ok()) return Fail(FromLevelDb(s, "reading shredded subject"));
      auto subject = codec::DecodeSubject(value);
      if (!subject) return Fail(subject.error());

      // The queue entry's value is the last record id finished (empty at
      // first): resuming after it skips the deleted index entries a plain seek
      // would have to step over again on every call.
      const std::string prefix = SubjectRecordsPrefix(subject_id);
      std::string start = prefix;
      const std::string cursor = queue->value().ToString();
      if (cursor.size() == 8)
        AppendBigEndian64(start, ReadBigEndian64(cursor) + 1);
      std::unique_ptr<leveldb::Iterator> it(
          impl_->db_->NewIterator(leveldb::ReadOptions()));
      bool finished = true;
      for (it->Seek(start); it->Valid() && it->key().starts_with(prefix);
           it->Next()) {
        if (rewritten == budget) {
          finished = false;
          break;
        }
        std::string_view key(it->key().data(), it->key().size());
        uint64_t id = ReadBigEndian64(key.substr(prefix.size()));
        leveldb::WriteBatch batch;
        batch.Delete(it->key());
        std::string next_cursor;
        AppendBigEndian64(next_cursor, id);
        batch.Put(queue->key(), next_cursor);
        auto record = impl_->ReadRecord(id);
        if (record) {
          auto& parts = record->parts;
          size_t before = parts.size();
          for (const auto& p : parts) {
            if (p.subject_id == subject_id) AddWitness(batch, p.sealed);
          }
          std::erase_if(
              parts, [&](const auto& p) { return p.subject_id == subject_id; });
          for (auto& f : record->flags) {
            if (f.subject_id != subject_id) continue;
            AddWitness(batch, f.sealed_note);
            f.sealed_note.clear();
          }
          for (auto& c : record->contests) {
            if (c.subject_id != subject_id) continue;
            AddWitness(batch, c.sealed_statement);
            c.sealed_statement.clear();
          }
          batch.Put(kCompactQueuePrefix + RecordKey(record->id),
                    QueuedAt(ToMicros(impl_->clock_.Now())));
          if (before > 0 && parts.empty() &&
              record->state != RecordState::kErased) {
            record->state = RecordState::kErased;
            record->erased_at_micros = subject->shredded_at_micros;
          }
          CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(batch, *record));
        } else if (record.error().code() != StatusCode::kNotFound) {
          return Fail(record.error());
        }
        CUSTOS_RETURN_IF_ERROR(impl_->Write(batch, "finishing shred"));
        ++rewritten;
      }
      if (!it->status().ok())
        return Fail(FromLevelDb(it->status(), "scanning subject records"));
      if (finished) {
        // Unlink the subject from its (now unreadable) history events, in
        // steps, then retire the queue entry with the last step.
        while (true) {
          leveldb::WriteBatch batch;
          auto dropped =
              impl_->history_->DropSubjectIndex(batch, subject_id, 1000);
          if (!dropped) return Fail(dropped.error());
          if (*dropped == 0) batch.Delete(queue->key());
          CUSTOS_RETURN_IF_ERROR(impl_->Write(batch, "finishing shred"));
          if (*dropped == 0) break;
        }
      }
    }
  }
  lock.unlock();
  if (rewritten > 0) CUSTOS_RETURN_IF_ERROR(impl_->CompactErased());
  return rewritten;
}

// ---- Legal holds

Event Engine::Impl::HoldEvent(const PrincipalInfo& who, EventAction action,
                              const HoldView& hold,
                              const StoredRecord* record) const {
  Event e;
  if (record != nullptr) {
    e = RecordEvent(who, action, *record);
  } else {
    e.at = clock_.Now();
    e.principal_id = who.id;
    e.principal_name = who.display_name;
    e.action = action;
    e.subject_ids = {*hold.subject_id};
  }
  e.fields = {"hold:" + hold.id};
  return e;
}

Result<HoldView> Engine::Impl::AddHold(const PrincipalInfo& officer,
                                       HoldView hold, std::string_view reason,
                                       Timestamp ends_at,
                                       const StoredRecord* record) {
  // Caller holds write_mu_.
  const Timestamp now = clock_.Now();
  if (ends_at <= now) {
    return Fail(Status::InvalidArgument("a hold must end in the future"));
  }
  std::string counter;
  uint64_t next = 1;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), kNextHoldIdKey, &counter);
  if (s.ok() && counter.size() == 8) {
    next = ReadBigEndian64(counter);
  } else if (!s.IsNotFound()) {
    return Fail(FromLevelDb(s, "reading hold counter"));
  }
  hold.id = "h" + std::to_string(next);
  hold.reason = std::string(reason);
  hold.set_by = officer.id;
  hold.set_at = now;
  hold.ends_at = ends_at;

  leveldb::WriteBatch batch;
  batch.Put(HoldKey(hold.id), codec::EncodeHold(hold));
  std::string next_counter;
  AppendBigEndian64(next_counter, next + 1);
  batch.Put(kNextHoldIdKey, next_counter);
  if (hold.record_id) {
    batch.Put(RecordHoldsPrefix(*hold.record_id) + hold.id, "");
    for (const std::string& subject : record->subject_ids) {
      batch.Put(SubjectHoldsPrefix(subject) + hold.id, "r");
    }
  } else {
    batch.Put(SubjectHoldsPrefix(*hold.subject_id) + hold.id, "s");
  }
  CUSTOS_RETURN_IF_ERROR(WriteWithEvents(
      batch, {HoldEvent(officer, EventAction::kHoldSet, hold, record)},
      "setting hold"));
  return hold;
}

Result<HoldView> Engine::SetRecordHold(const Actor& officer, uint64_t record_id,
                                       std::string_view reason,
                                       Timestamp ends_at) {
  auto caller = impl_->RequireRole(officer, Role::kOfficer);
  if (!caller) return Fail(caller.error());
  if (auto s = CheckLength(reason, "a hold's reason",
                           impl_->limits_.max_note_length, false);
      !s.ok()) {
    return Fail(s);
  }
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  auto record = impl_->ReadRecord(record_id);
  if (!record) return Fail(record.error());
  HoldView hold;
  hold.record_id = record_id;
  return impl_->AddHold(*caller, std::move(hold), reason, ends_at, &*record);
}

Result<HoldView> Engine::SetSubjectHold(const Actor& officer,
                                        std::string_view subject_id,
                                        std::string_view reason,
                                        Timestamp ends_at) {
  auto caller = impl_->RequireRole(officer, Role::kOfficer);
  if (!caller) return Fail(caller.error());
  if (auto s = CheckLength(reason, "a hold's reason",
                           impl_->limits_.max_note_length, false);
      !s.ok()) {
    return Fail(s);
  }
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  std::string value;
  leveldb::Status s =
      impl_->db_->Get(leveldb::ReadOptions(), SubjectKey(subject_id), &value);
  if (s.IsNotFound()) return Fail(Status::NotFound("subject not found"));
  if (!s.ok()) return Fail(FromLevelDb(s, "reading subject"));
  auto subject = codec::DecodeSubject(value);
  if (!subject) return Fail(subject.error());
  if (subject->shredded) return Fail(Status::NotFound("subject not found"));
  HoldView hold;
  hold.subject_id = std::string(subject_id);
  return impl_->AddHold(*caller, std::move(hold), reason, ends_at, nullptr);
}

Status Engine::ReleaseHold(const Actor& officer, std::string_view hold_id) {
  auto caller = impl_->RequireRole(officer, Role::kOfficer);
  if (!caller) return caller.error();
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  std::string value;
  leveldb::Status s =
      impl_->db_->Get(leveldb::ReadOptions(), HoldKey(hold_id), &value);
  if (s.IsNotFound()) return Status::NotFound("hold not found");
  if (!s.ok()) return FromLevelDb(s, "reading hold");
  auto hold = codec::DecodeHold(value);
  if (!hold) return hold.error();
  if (hold->released_at) {
    return Status::FailedPrecondition("the hold was already released");
  }
  hold->released_at = impl_->clock_.Now();
  hold->released_by = caller->id;

  // The release and its unlinking are one write; a record's rescheduled
  // deadline is a second one. A crash between them leaves the deadline at
  // the hold's end: late, never early, and the sweeper then erases.
  leveldb::WriteBatch batch;
  batch.Put(HoldKey(hold->id), codec::EncodeHold(*hold));
  std::vector<uint64_t> records;
  if (hold->record_id) {
    batch.Delete(RecordHoldsPrefix(*hold->record_id) + hold->id);
    records.push_back(*hold->record_id);
  } else {
    batch.Delete(SubjectHoldsPrefix(*hold->subject_id) + hold->id);
    const std::string prefix = SubjectRecordsPrefix(*hold->subject_id);
    std::unique_ptr<leveldb::Iterator> it(
        impl_->db_->NewIterator(leveldb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      records.push_back(
          ReadBigEndian64(std::string_view(it->key().data(), it->key().size())
                              .substr(prefix.size())));
    }
    if (!it->status().ok()) return FromLevelDb(it->status(), "reading holds");
  }
  std::optional<StoredRecord> held_record;
  if (hold->record_id) {
    auto record = impl_->ReadRecord(*hold->record_id);
    if (record) {
      for (const std::string& subject : record->subject_ids) {
        batch.Delete(SubjectHoldsPrefix(subject) + hold->id);
      }
      held_record = std::move(*record);
    }
  }
  CUSTOS_RETURN_IF_ERROR(impl_->WriteWithEvents(
      batch,
      {impl_->HoldEvent(*caller, EventAction::kHoldReleased, *hold,
                        held_record ? &*held_record : nullptr)},
      "releasing hold"));
  // Postponed erasures whose legal date has passed become due at once.
  leveldb::WriteBatch deadlines;
  for (uint64_t id : records) {
    auto record = impl_->ReadRecord(id);
    if (!record) {
      if (record.error().code() == StatusCode::kNotFound) continue;
      return record.error();
    }
    CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(deadlines, *record));
  }
  return impl_->Write(deadlines, "rescheduling released erasures");
}

Result<std::vector<HoldView>> Engine::ListHolds(const Actor& actor,
                                                bool include_ended) {
  auto caller = impl_->Caller(actor);
  if (!caller) return Fail(caller.error());
  if (!caller->HasRole(Role::kOfficer) && !caller->HasRole(Role::kAuditor) &&
      !caller->HasRole(Role::kAdmin)) {
    return Fail(Status::PermissionDenied(
        "this call needs the officer, auditor or admin role"));
  }
  const int64_t now = ToMicros(impl_->clock_.Now());
  std::vector<HoldView> holds;
  std::unique_ptr<leveldb::Iterator> it(
      impl_->db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek("hold:"); it->Valid() && it->key().starts_with("hold:");
       it->Next()) {
    auto hold = codec::DecodeHold(it->value().ToString());
    if (!hold) return Fail(hold.error());
    const bool in_force = !hold->released_at && ToMicros(hold->ends_at) > now;
    if (in_force || include_ended) holds.push_back(std::move(*hold));
  }
  if (!it->status().ok()) {
    return Fail(FromLevelDb(it->status(), "listing holds"));
  }
  return holds;
}

// ---- Retention
// ---------------------------------------------------------------

Status Engine::SetPolicy(const Actor& admin, const RetentionPolicy& policy) {
  if (auto p = impl_->RequireRole(admin, Role::kAdmin); !p) return p.error();
  CUSTOS_RETURN_IF_ERROR(ValidatePolicy(policy));
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  leveldb::WriteBatch batch;
  batch.Put(PolicyKey(policy.kind), codec::EncodePolicy(policy));
  CUSTOS_RETURN_IF_ERROR(impl_->Write(batch, "storing policy"));
  std::unique_lock plock(impl_->policies_mu_);
  impl_->policies_[policy.kind] = policy;
  return Status::Ok();
}

Result<std::vector<RetentionPolicy>> Engine::ListPolicies(const Actor& actor) {
  if (auto p = impl_->Caller(actor); !p) return Fail(p.error());
  std::shared_lock lock(impl_->policies_mu_);
  std::vector<RetentionPolicy> out;
  for (const auto& [kind, policy] : impl_->policies_) out.push_back(policy);
  return out;
}

Result<size_t> Engine::ReapplyPolicies(const Actor& admin) {
  if (auto p = impl_->RequireRole(admin, Role::kAdmin); !p) {
    return Fail(p.error());
  }
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  // Open deadlines are exactly the records that are not ERASED; ACTIVE
  // records without close_after have none, so walk the records themselves.
  size_t updated = 0;
  std::unique_ptr<leveldb::Iterator> it(
      impl_->db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek("r:"); it->Valid() && it->key().starts_with("r:"); it->Next()) {
    auto record = codec::DecodeRecord(it->value().ToString());
    if (!record) return Fail(record.error());
    if (record->state == RecordState::kErased) continue;
    const int64_t before = record->next_deadline_micros;
    const auto before_transition = record->next_transition;
    leveldb::WriteBatch batch;
    CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(batch, *record));
    if (record->next_deadline_micros == before &&
        record->next_transition == before_transition) {
      continue;
    }
    CUSTOS_RETURN_IF_ERROR(impl_->Write(batch, "re-applying policy"));
    ++updated;
  }
  if (!it->status().ok()) {
    return Fail(FromLevelDb(it->status(), "re-applying policies"));
  }
  return updated;
}

Result<SweepReport> Engine::Sweep(const Actor& admin,
                                  const SweepOptions& options) {
  auto caller = impl_->RequireRole(admin, Role::kAdmin);
  if (!caller) return Fail(caller.error());
  if (options.batch_size == 0) {
    return Fail(Status::InvalidArgument("batch_size must be at least 1"));
  }
  const int64_t as_of = ToMicros(options.as_of);
  SweepReport report;
  // In a dry run nothing is written, so the index does not shrink: walk it
  // from a moving start key instead of re-seeking its beginning.
  std::string resume_key = kDeadlinePrefix;
  size_t processed = 0;
  while (true) {
    size_t in_batch = 0;
    bool more_due = false;
    {
      std::lock_guard<std::mutex> lock(impl_->write_mu_);
      std::unique_ptr<leveldb::Iterator> it(
          impl_->db_->NewIterator(leveldb::ReadOptions()));
      leveldb::WriteBatch batch;
      std::vector<Event> events;
      for (it->Seek(resume_key);
           it->Valid() && it->key().starts_with(kDeadlinePrefix); it->Next()) {
        std::string_view key(it->key().data(), it->key().size());
        const std::string_view rest = key.substr(sizeof(kDeadlinePrefix) - 1);
        const int64_t due = static_cast<int64_t>(ReadBigEndian64(rest));
        if (due > as_of) break;
        if (in_batch == options.batch_size ||
            processed == options.max_records) {
          more_due = true;
          break;
        }
        const uint64_t id = ReadBigEndian64(rest.substr(8));
        resume_key = std::string(key) + '\0';
        auto record = impl_->ReadRecord(id);
        if (!record) {
          if (record.error().code() != StatusCode::kNotFound) {
            return Fail(record.error());
          }
          batch.Delete(it->key());  // A stray entry: its record is gone.
          continue;
        }
        if (record->next_deadline_micros != due) {
          batch.Delete(it->key());  // Stale: the record moved on.
          continue;
        }
        // Apply every transition due by as_of, in order, in one write.
        while (record->next_transition != codec::Transition::kNone &&
               record->next_deadline_micros <= as_of) {
          leveldb::WriteBatch scratch;
          leveldb::WriteBatch& target = options.dry_run ? scratch : batch;
          if (record->next_transition == codec::Transition::kErase) {
            auto holds = impl_->HoldsOnRecord(*record, as_of);
            if (!holds) return Fail(holds.error());
            if (!holds->empty()) {
              // Postponed: PutRecord moves the deadline to the hold's end.
              ++report.postponed;
              CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(target, *record, as_of));
              break;
            }
          }
          PlannedTransition step{id, record->state, record->state,
                                 FromMicros(record->next_deadline_micros)};
          impl_->ApplyTransition(*record, target);
          step.to = record->state;
          switch (step.to) {
            case RecordState::kClosed:
              ++report.closed;
              break;
            case RecordState::kBlocked:
              ++report.blocked;
              break;
            case RecordState::kErased:
              ++report.erased;
              break;
            case RecordState::kActive:
              break;
          }
          report.transitions.push_back(step);
          if (!options.dry_run) {
            const EventAction action =
                step.to == RecordState::kClosed    ? EventAction::kClose
                : step.to == RecordState::kBlocked ? EventAction::kBlock
                                                   : EventAction::kErase;
            events.push_back(impl_->RecordEvent(*caller, action, *record));
            events.back().at = step.due;
          }
          CUSTOS_RETURN_IF_ERROR(impl_->PutRecord(target, *record, as_of));
        }
        ++in_batch;
        ++processed;
      }
      if (!it->status().ok()) {
        return Fail(FromLevelDb(it->status(), "reading deadline index"));
      }
      if (!options.dry_run && batch.ApproximateSize() > 12) {
        CUSTOS_RETURN_IF_ERROR(
            impl_->WriteWithEvents(batch, events, "sweeping"));
      }
    }
    if (!more_due) break;
    if (processed == options.max_records) {
      report.complete = false;
      break;
    }
    if (options.pause_between_batches.count() > 0) {
      std::this_thread::sleep_for(options.pause_between_batches);
    }
  }
  if (!options.dry_run) {
    auto pruned =
        impl_->PruneHistory(as_of, std::max<size_t>(options.batch_size, 100));
    if (!pruned) return Fail(pruned.error());
    report.history_pruned = *pruned;
    // Compacts what this sweep erased and pruned, and finishes compactions
    // an earlier, interrupted call left queued.
    CUSTOS_RETURN_IF_ERROR(impl_->CompactErased());
  }
  return report;
}

// ---- Access history and subject reports

namespace {
AccessEvent ToAccessEvent(const HistoryEntry& entry) {
  AccessEvent e;
  e.seq = entry.header.seq;
  e.at = entry.header.at;
  e.principal_id = entry.header.principal_id;
  e.principal_name = entry.header.principal_name;
  e.action = std::string(EventActionName(entry.header.action));
  e.record_id = entry.header.record_id;
  e.record_kind = entry.header.record_kind;
  e.record_state = entry.header.record_state;
  e.purpose = entry.header.purpose_kind;
  e.justification = entry.justification;
  e.fields = entry.fields;
  return e;
}
}  // namespace

Result<AccessHistoryPage> Engine::AccessHistory(const Actor& auditor,
                                                std::string_view subject_id,
                                                Timestamp from, Timestamp to,
                                                uint64_t after_seq,
                                                uint32_t limit) {
  auto caller = impl_->RequireRole(auditor, Role::kAuditor);
  if (!caller) return Fail(caller.error());
  if (limit == 0 || limit > impl_->limits_.max_page_size) {
    return Fail(Status::InvalidArgument(
        "limit must be 1 to " + std::to_string(impl_->limits_.max_page_size)));
  }
  std::string value;
  leveldb::Status s =
      impl_->db_->Get(leveldb::ReadOptions(), SubjectKey(subject_id), &value);
  if (s.IsNotFound()) return Fail(Status::NotFound("subject not found"));
  if (!s.ok()) return Fail(FromLevelDb(s, "reading subject"));
  auto page = impl_->history_->ForSubject(
      std::string(subject_id), from, to, after_seq, limit,
      [this](const std::string& id) { return impl_->KeyFor(id); });
  if (!page) return Fail(page.error());
  AccessHistoryPage out;
  for (const HistoryEntry& entry : page->entries) {
    out.events.push_back(ToAccessEvent(entry));
  }
  out.next_after_seq = page->next_after_seq;
  return out;
}

Result<ChainVerification> Engine::VerifyChain(const Actor& actor) {
  auto caller = impl_->Caller(actor);
  if (!caller) return Fail(caller.error());
  if (!caller->HasRole(Role::kAuditor) && !caller->HasRole(Role::kAdmin)) {
    return Fail(
        Status::PermissionDenied("this call needs the auditor or admin role"));
  }
  auto report = impl_->history_->Verify();
  if (!report) return Fail(report.error());
  ChainVerification out;
  out.ok = report->ok();
  out.problem =
      report->ok() ? "" : std::string(ChainProblemName(report->problem));
  out.first_broken = report->first_broken;
  out.verified = report->verified;
  out.head_seq = report->head_seq;
  out.head_link_hex = crypto::ToHex(report->head_link);
  return out;
}

Result<SubjectReport> Engine::ProduceSubjectReport(
    const Actor& auditor, std::string_view subject_id) {
  auto caller = impl_->RequireRole(auditor, Role::kAuditor);
  if (!caller) return Fail(caller.error());
  const std::string subject(subject_id);
  std::string value;
  leveldb::Status s =
      impl_->db_->Get(leveldb::ReadOptions(), SubjectKey(subject), &value);
  if (s.IsNotFound()) return Fail(Status::NotFound("subject not found"));
  if (!s.ok()) return Fail(FromLevelDb(s, "reading subject"));
  auto stored = codec::DecodeSubject(value);
  if (!stored) return Fail(stored.error());
  auto key = impl_->KeyFor(subject);
  if (!key) return Fail(key.error());
  if (!*key) return Fail(Status::NotFound("subject not found"));

  SubjectReport report;
  const Timestamp now = impl_->clock_.Now();
  report.generated_at = now;
  report.subject_id = subject;
  auto identifier =
      crypto::Open(**key, stored->sealed_identifier, IdentifierAd(subject));
  if (!identifier) {
    return Fail(Status::DataLoss("a subject identifier failed to decrypt"));
  }
  report.subject_identifier.assign(identifier->begin(), identifier->end());
  crypto::Wipe(*identifier);

  std::set<std::string> named;  // Principal ids to name in the report.
  auto open_fields =
      [&](const codec::Bytes& sealed,
          const std::vector<uint8_t>& ad) -> Result<std::vector<Field>> {
    auto plain = crypto::Open(**key, sealed, ad);
    if (!plain)
      return Fail(Status::DataLoss("personal data failed to decrypt"));
    auto fields = codec::DecodeFields(*plain);
    crypto::Wipe(*plain);
    return fields;
  };

  // The subject's records, through its index.
  std::vector<uint64_t> ids;
  {
    const std::string prefix = SubjectRecordsPrefix(subject);
    std::unique_ptr<leveldb::Iterator> it(
        impl_->db_->NewIterator(leveldb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      ids.push_back(
          ReadBigEndian64(std::string_view(it->key().data(), it->key().size())
                              .substr(prefix.size())));
    }
    if (!it->status().ok()) {
      return Fail(FromLevelDb(it->status(), "reading the subject's records"));
    }
  }
  const int64_t now_micros = ToMicros(now);
  for (uint64_t id : ids) {
    auto r = impl_->ReadRecord(id);
    if (!r) {
      if (r.error().code() == StatusCode::kNotFound) continue;
      return Fail(r.error());
    }
    SubjectReport::Record out;
    out.id = r->id;
    out.kind = r->kind;
    out.state = r->state;
    out.owner = r->owner;
    out.recipients = r->grants;
    named.insert(r->owner);
    named.insert(r->grants.begin(), r->grants.end());
    out.created_at = FromMicros(r->created_at_micros);
    out.closed_at = OptionalTime(r->closed_at_micros);
    out.blocked_at = OptionalTime(r->blocked_at_micros);
    out.erased_at = OptionalTime(r->erased_at_micros);
    if (r->next_transition != codec::Transition::kNone) {
      out.next_deadline = FromMicros(r->next_deadline_micros);
      out.next_transition =
          r->next_transition == codec::Transition::kClose   ? "close"
          : r->next_transition == codec::Transition::kBlock ? "block"
                                                            : "erase";
    }
    for (const auto& part : r->parts) {
      if (part.subject_id != subject) continue;
      auto fields =
          open_fields(part.sealed, PartAd(r->id, subject, part.version));
      if (!fields) return Fail(fields.error());
      out.personal = std::move(*fields);
    }
    for (const auto& c : r->contests) {
      if (c.subject_id != subject) continue;
      ContestView view{c.by, FromMicros(c.at_micros), c.subject_id, "", {}};
      named.insert(c.by);
      if (!c.sealed_statement.empty()) {
        auto fields = open_fields(
            c.sealed_statement, NoteAd("contest", r->id, subject, c.at_micros));
        if (!fields) return Fail(fields.error());
        for (auto& f : *fields) {
          if (view.statement.empty() && f.name == "statement") {
            view.statement = std::move(f.value);
          } else {
            view.corrected.push_back(std::move(f));
          }
        }
      }
      out.contests.push_back(std::move(view));
    }
    auto holds = impl_->HoldsUnder(RecordHoldsPrefix(r->id), now_micros, false);
    if (!holds) return Fail(holds.error());
    for (const HoldView& h : *holds) named.insert(h.set_by);
    out.holds = std::move(*holds);
    report.records.push_back(std::move(out));
  }
  auto subject_holds =
      impl_->HoldsUnder(SubjectHoldsPrefix(subject), now_micros, true);
  if (!subject_holds) return Fail(subject_holds.error());
  for (const HoldView& h : *subject_holds) named.insert(h.set_by);
  report.subject_holds = std::move(*subject_holds);

  // The full access history, page by page.
  uint64_t after_seq = 0;
  do {
    auto page = impl_->history_->ForSubject(
        subject, Timestamp::min(), Timestamp::max(), after_seq,
        impl_->limits_.max_page_size,
        [this](const std::string& id) { return impl_->KeyFor(id); });
    if (!page) return Fail(page.error());
    for (const HistoryEntry& entry : page->entries) {
      SubjectReport::Access a;
      a.at = entry.header.at;
      a.principal_id = entry.header.principal_id;
      a.principal_name = entry.header.principal_name;
      a.action = std::string(EventActionName(entry.header.action));
      a.record_id = entry.header.record_id;
      a.record_kind = entry.header.record_kind;
      if (entry.header.record_state) {
        a.record_state =
            std::string(RecordStateName(*entry.header.record_state));
      }
      if (entry.header.purpose_kind) {
        a.purpose = std::string(PurposeKindName(*entry.header.purpose_kind));
      }
      a.justification = entry.justification;
      a.fields = entry.fields;
      report.history.push_back(std::move(a));
    }
    after_seq = page->next_after_seq;
  } while (after_seq != 0);

  for (const std::string& id : named) {
    auto p = impl_->Principal(id);
    report.principals.push_back({id, p ? p->display_name : ""});
  }

  // Producing the report discloses everything in it: an event.
  Event event;
  event.at = now;
  event.principal_id = caller->id;
  event.principal_name = caller->display_name;
  event.action = EventAction::kReport;
  event.subject_ids = {subject};
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  leveldb::WriteBatch batch;
  CUSTOS_RETURN_IF_ERROR(
      impl_->WriteWithEvents(batch, {event}, "recording subject report"));
  return report;
}

// ---- Erasure verification
// ----------------------------------------------------

Result<ErasureReport> Engine::VerifyErasure(const Actor& admin) {
  if (auto p = impl_->RequireRole(admin, Role::kAdmin); !p) {
    return Fail(p.error());
  }
  // The nonces to look for, and their first 8 bytes as a quick filter.
  std::unordered_set<std::string> nonces;
  std::unordered_set<uint64_t> prefixes;
  std::unique_ptr<leveldb::Iterator> it(
      impl_->db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(kWitnessPrefix);
       it->Valid() && it->key().starts_with(kWitnessPrefix); it->Next()) {
    std::string nonce = it->key().ToString().substr(sizeof(kWitnessPrefix) - 1);
    if (nonce.size() != crypto::kNonceSize) continue;
    for (char& c : nonce) c = static_cast<char>(~c);
    uint64_t prefix = 0;
    std::memcpy(&prefix, nonce.data(), sizeof(prefix));
    prefixes.insert(prefix);
    nonces.insert(std::move(nonce));
  }
  if (!it->status().ok()) {
    return Fail(FromLevelDb(it->status(), "reading erasure witnesses"));
  }
  it.reset();  // An open iterator would pin obsolete table files.
  ErasureReport report;
  report.witnesses = nonces.size();
  std::unordered_set<std::string> found;
  std::error_code ec;
  const std::filesystem::path root(impl_->options_.data_dir);
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(root, ec)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
    bool leftovers = false;
    for (size_t i = 0; i + crypto::kNonceSize <= bytes.size(); ++i) {
      uint64_t prefix = 0;
      std::memcpy(&prefix, bytes.data() + i, sizeof(prefix));
      if (!prefixes.contains(prefix)) continue;
      std::string candidate = bytes.substr(i, crypto::kNonceSize);
      if (nonces.contains(candidate)) {
        found.insert(std::move(candidate));
        leftovers = true;
      }
    }
    if (leftovers) {
      report.files_with_leftovers.push_back(
          std::filesystem::relative(entry.path(), root).string());
    }
  }
  if (ec) {
    return Fail(
        Status::Internal("scanning the data directory: " + ec.message()));
  }
  std::sort(report.files_with_leftovers.begin(),
            report.files_with_leftovers.end());
  report.found = found.size();
  return report;
}

size_t Engine::TEST_CachedKeyCount() const { return impl_->key_cache_.size(); }
void Engine::TEST_ClearKeyCache() { impl_->key_cache_.Clear(); }

}  // namespace custos
