// Internal to storage/: the key layout of the records database, the one
// place that spells a key prefix. Families appear in the order of
// docs/storage.md, "Key layout"; each names its owning unit. Numbers are
// 8-byte big-endian, so numeric order is key order.
//
// Thread safety: pure functions.

#ifndef CUSTOS_STORAGE_KEYS_H_
#define CUSTOS_STORAGE_KEYS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace custos::keys {

// ---- Counters and markers under "m:": the format (store.cc), the record id
// floor (record_store.cc; the next id is derived at Open, docs/storage.md
// "Counters derived at Open"), the hold id (holds.cc), the prune cursor
// (sweeper.cc).
inline constexpr std::string_view kFormat = "m:format";
inline constexpr std::string_view kNextRecordId = "m:next_record_id";
inline constexpr std::string_view kNextHoldId = "m:next_hold_id";
inline constexpr std::string_view kHistoryPruneCursor =
    "m:history_prune_cursor";
// Whether history pruning sleeps, and until when (Sweeper::PruneState); and
// the earliest erasure written since its pass began (RecordStore::
// ErasedSincePass): i64 as u64 BE.
inline constexpr std::string_view kHistoryPruneGate = "m:history_prune_gate";
inline constexpr std::string_view kHistoryPruneErasedFrom =
    "m:history_prune_erased_from";
// Range deletions queued with a value that did not parse or named another
// last key (erasure.cc); u64.
inline constexpr std::string_view kErasureQueueCorrupt =
    "m:erasure_queue_corrupt";
// "pb:" entries a range deletion deleted whose value did not decode, so
// unwitnessed (erasure.cc); u64.
inline constexpr std::string_view kErasureRangeUndecodable =
    "m:erasure_range_undecodable";
// The id of the last admin event about a keystore change that the history
// holds, written with that event (key_admin.cc; the keystore keeps the
// event until then, Keystore::PendingAdminEvent); u64.
inline constexpr std::string_view kAdminEventRecorded =
    "m:admin_event_recorded";

// ---- Principals (principals.cc) -------------------------------------------
// "p:" id -> Principal; "c:" credential hash -> principal id.
inline constexpr std::string_view kPrincipalPrefix = "p:";
std::string Principal(std::string_view id);
std::string Credential(std::string_view credential_hash);

// ---- Policies (policies.cc) -----------------------------------------------
// "pol:" kind -> Policy.
inline constexpr std::string_view kPolicyPrefix = "pol:";
std::string Policy(std::string_view kind);

// ---- Subjects (subjects.cc) -----------------------------------------------
// "s:" id -> Subject; "b:" blind index -> subject id;
// "x:" subject || NUL || u64 record -> "" (the subject's records).
std::string Subject(std::string_view id);
std::string BlindIndex(std::string_view index);
std::string SubjectRecordsPrefix(std::string_view subject);
std::string SubjectRecord(std::string_view subject, uint64_t record_id);

// ---- Records (record_store.cc, records.cc) --------------------------------
// "r:" u64 id -> Record; "a:" principal || NUL || u64 id -> "" (the records
// a principal owns or was granted).
inline constexpr std::string_view kRecordPrefix = "r:";
std::string Record(uint64_t id);
std::string AclPrefix(std::string_view principal);
std::string Acl(std::string_view principal, uint64_t record_id);

// ---- Sealed contents by bucket (record_store.cc; deleted by range by
// erasure.cc) --------------------------------------------------------------
// "pb:" u64 bucket || u64 record id -> SealedContents: every ciphertext of a
// record sealed under that deadline bucket (none stay in its "r:" value).
// Ordered by bucket, so an erased bucket's ciphertexts are one range.
inline constexpr std::string_view kBucketSealedPrefix = "pb:";
std::string BucketSealed(uint64_t bucket, uint64_t record_id);
// The first key of bucket `bucket`'s range, and a key after its last entry
// and before the next bucket's first (its bytes are no entry's key).
std::string BucketSealedBegin(uint64_t bucket);
std::string BucketSealedEnd(uint64_t bucket);

// ---- Deadline index (record_store.cc, read by sweeper.cc) -----------------
// "d:" u64 due micros || u64 record id -> "".
inline constexpr std::string_view kDeadlinePrefix = "d:";
std::string Deadline(int64_t due_micros, uint64_t record_id);
// A deadline-index key read back: its due instant and record id.
struct DeadlineKey {
  int64_t due_micros = 0;
  uint64_t record_id = 0;
};
// nullopt unless `key` is kDeadlinePrefix followed by exactly 16 bytes
// (the only form Deadline() writes): a key is never read past its end.
std::optional<DeadlineKey> ParseDeadline(std::string_view key);

// ---- Erased deadline buckets (sweeper.cc) ---------------------------------
// "dx:" u64 bucket -> u64 micros: the sweep's as_of when it wrote down the
// erasure of every record due in the bucket, before destroying its key.
inline constexpr std::string_view kErasedBucketPrefix = "dx:";
std::string ErasedBucket(uint64_t bucket);

// ---- Field-name catalog (records.cc, read by register_builder.cc) ---------
// "fk:" kind || NUL || field name -> "": the field names the personal parts
// of a kind's records have held (the register of processing activities).
inline constexpr std::string_view kKindFieldPrefix = "fk:";
std::string KindField(std::string_view kind, std::string_view field_name);

// ---- Reminders delivered (reminder_finder.cc) -------------------------------
// "rm:" owner id NUL u64 record || u8 reason || u64 due micros -> u64
// delivered-at micros: the owner was told of that deadline (a Watcher's
// remind returned).
inline constexpr std::string_view kReminderPrefix = "rm:";
std::string RemindersPrefix(std::string_view owner);
std::string ReminderDeadlinesPrefix(std::string_view owner, uint64_t record_id,
                                    uint8_t reason);
std::string Reminder(std::string_view owner, uint64_t record_id, uint8_t reason,
                     int64_t due_micros);

// ---- Statistics index (stats_index.cc; deltas numbered by record_store.cc)
// "st:d:" u64 delta seq -> StatsDelta (a transition not yet folded);
// "st:k:" kind -> KindStats (folded counts; sorts after every delta, so a
// query seeks past the folded deltas' deletion markers and reads on);
// "st:u" -> u64 (deltas that did not decode, dropped by a fold; sorts after
// the aggregates, so a query reads it in the same scan);
// "m:stats_next_delta" -> u64 (a floor: every delta seq written is below
// it; exact in a store written before issue 16, kept up to
// RecordStore::kDeltasAhead ahead since); "m:stats_folded_through"
// -> u64 (every delta up to it is folded); "m:stats_indexed" -> "" (every
// record is in the index: absent in a store written before it, which Open
// indexes once).
inline constexpr std::string_view kStatsPrefix = "st:";
inline constexpr std::string_view kStatsDeltaPrefix = "st:d:";
inline constexpr std::string_view kStatsAggregatePrefix = "st:k:";
inline constexpr std::string_view kStatsUnreadable = "st:u";
inline constexpr std::string_view kStatsNextDelta = "m:stats_next_delta";
inline constexpr std::string_view kStatsFoldedThrough =
    "m:stats_folded_through";
inline constexpr std::string_view kStatsIndexed = "m:stats_indexed";
std::string StatsAggregate(std::string_view kind);
std::string StatsDelta(uint64_t seq);

// ---- Legal holds (holds.cc) -----------------------------------------------
// "hold:" id -> Hold; "ho:r:" u64 record || id -> "";
// "ho:s:" subject || NUL || id -> "s" (a subject hold) or "r" (a hold on one
// of the subject's records, so a shred sees it without a scan).
inline constexpr std::string_view kHoldPrefix = "hold:";
std::string Hold(std::string_view id);
std::string RecordHoldsPrefix(uint64_t record_id);
std::string SubjectHoldsPrefix(std::string_view subject);

// ---- Erasure (erasure.cc) -------------------------------------------------
// "ew:" complement of an erased nonce -> "" (complemented, so the witness
// itself never matches the scan for the nonce);
// "q:compact:" key -> u64 queued-at micros (records-database keys whose old
// versions must leave the files);
// "q:kcompact:" subject id -> u64 queued-at micros (destroyed keystore
// keys whose old versions must leave the keystore's files).
// "q:compact:" alone (an empty key queued) asks for the whole database to be
// compacted; kSpanLow and kSpanHigh sort before and after every key of the
// store, and are written (then deleted) around that compaction.
inline constexpr std::string_view kWitnessPrefix = "ew:";
inline constexpr std::string_view kCompactQueuePrefix = "q:compact:";
inline constexpr std::string_view kKeystoreCompactQueuePrefix = "q:kcompact:";
std::string CompactQueue(std::string_view key);
// "q:rdelete:" first key -> u64 queued-at micros || last key: a range of
// "pb:" entries whose bucket key was destroyed, to delete (witnessed);
// "q:crange:" first key -> u64 queued-at micros || last key: a range whose
// deleted entries' old versions must leave the files.
inline constexpr std::string_view kRangeDeleteQueuePrefix = "q:rdelete:";
inline constexpr std::string_view kRangeCompactQueuePrefix = "q:crange:";
std::string RangeDeleteQueue(std::string_view first);
std::string RangeCompactQueue(std::string_view first);
inline constexpr std::string_view kSpanLow = "!";
inline constexpr std::string_view kSpanHigh = "~";
std::string KeystoreCompactQueue(std::string_view subject_id);
// "q:krekey:" subject id -> u64 queued-at micros (re-keyed subjects, whose
// old wrapped key must leave the keystore's files).
inline constexpr std::string_view kRekeyCompactQueuePrefix = "q:krekey:";
std::string RekeyCompactQueue(std::string_view subject_id);

// ---- Shredder (shredder.cc) -----------------------------------------------
// "q:shred:" subject id -> u64 last record finished (empty at first).
inline constexpr std::string_view kShredQueuePrefix = "q:shred:";
std::string ShredQueue(std::string_view subject_id);

// ---- Re-keyer (rekeyer.cc) ------------------------------------------------
// "q:rekey:" subject id -> u8 stage || u64 cursor (a re-key in progress).
inline constexpr std::string_view kRekeyQueuePrefix = "q:rekey:";
std::string RekeyQueue(std::string_view subject_id);

// ---- Access history (history.cc) ------------------------------------------
// "e:" u64 seq -> Event; "h:" tag || u64 seq -> u32 slot || MAC;
// "hs:" u64 seq || tag -> ""; head and checkpoint under "m:".
inline constexpr std::string_view kEventPrefix = "e:";
inline constexpr std::string_view kHistoryIndexPrefix = "h:";
inline constexpr std::string_view kHistoryReversePrefix = "hs:";
inline constexpr std::string_view kHistoryHead = "m:history_head";
inline constexpr std::string_view kHistoryCheckpoint = "m:history_checkpoint";
std::string Event(uint64_t seq);
std::string HistoryIndexPrefix(std::string_view tag);
std::string HistoryIndex(std::string_view tag, uint64_t seq);
std::string HistoryReversePrefix(uint64_t seq);
std::string HistoryReverse(uint64_t seq, std::string_view tag);
// "hx:" u64 seq || u32 slot -> a MAC: the index entry of that sealed part
// was dropped with its shredded subject's index (History::DropSubjectIndex),
// so Verify knows the part's missing "h:"/"hs:" entries were not deleted by
// someone else.
inline constexpr std::string_view kHistoryDroppedPrefix = "hx:";
std::string HistoryDroppedPrefix(uint64_t seq);
std::string HistoryDropped(uint64_t seq, uint32_t slot);
// Disclosures by principal (docs/history.md, "The disclosure index"):
// "hp:" principal id NUL u64 (at µs with its sign bit flipped, so keys sort
// by time) || u64 seq -> ""; "hq:" u64 seq || u32 slot -> the subject id of
// that sealed part, sealed under the history's part-subject key;
// "m:history_disclosures_from" -> u64 seq, the first event indexed so.
inline constexpr std::string_view kDisclosurePrefix = "hp:";
inline constexpr std::string_view kDisclosurePartPrefix = "hq:";
inline constexpr std::string_view kHistoryDisclosuresFrom =
    "m:history_disclosures_from";
std::string DisclosurePrefix(std::string_view principal_id);
std::string Disclosure(std::string_view principal_id, int64_t at_micros,
                       uint64_t seq);
std::string DisclosurePartPrefix(uint64_t seq);
std::string DisclosurePart(uint64_t seq, uint32_t slot);

// The u64 that follows `prefix` in `key`. REQUIRES: key.size() >=
// prefix.size() + 8.
uint64_t NumberAfter(std::string_view key, std::string_view prefix);

}  // namespace custos::keys

#endif  // CUSTOS_STORAGE_KEYS_H_
