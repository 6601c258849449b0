#include "storage/keys.h"

#include "storage/leveldb_util.h"

namespace custos::keys {
namespace {

std::string Join(std::string_view prefix, std::string_view rest) {
  std::string key(prefix);
  key += rest;
  return key;
}
std::string JoinNumber(std::string_view prefix, uint64_t n) {
  std::string key(prefix);
  AppendBigEndian64(key, n);
  return key;
}
// A seq's prefix || u32 BE slot: a sealed part of that event.
std::string JoinSlot(std::string key, uint32_t slot) {
  AppendBigEndian32(key, slot);
  return key;
}
// prefix || name || NUL: no name is a prefix of another name's entries.
std::string JoinName(std::string_view prefix, std::string_view name) {
  std::string key = Join(prefix, name);
  key.push_back('\0');
  return key;
}

}  // namespace

std::string Principal(std::string_view id) {
  return Join(kPrincipalPrefix, id);
}
std::string Credential(std::string_view hash) { return Join("c:", hash); }
std::string Policy(std::string_view kind) { return Join(kPolicyPrefix, kind); }

std::string Subject(std::string_view id) { return Join("s:", id); }
std::string BlindIndex(std::string_view index) { return Join("b:", index); }
std::string SubjectRecordsPrefix(std::string_view subject) {
  return JoinName("x:", subject);
}
std::string SubjectRecord(std::string_view subject, uint64_t record_id) {
  std::string key = SubjectRecordsPrefix(subject);
  AppendBigEndian64(key, record_id);
  return key;
}

std::string Record(uint64_t id) { return JoinNumber(kRecordPrefix, id); }
std::string AclPrefix(std::string_view principal) {
  return JoinName("a:", principal);
}
std::string Acl(std::string_view principal, uint64_t record_id) {
  std::string key = AclPrefix(principal);
  AppendBigEndian64(key, record_id);
  return key;
}

std::string BucketSealed(uint64_t bucket, uint64_t record_id) {
  std::string key = BucketSealedBegin(bucket);
  AppendBigEndian64(key, record_id);
  return key;
}
std::string BucketSealedBegin(uint64_t bucket) {
  return JoinNumber(kBucketSealedPrefix, bucket);
}
std::string BucketSealedEnd(uint64_t bucket) {
  // Longer than any entry's key, with the largest id's bytes first.
  std::string key = BucketSealedBegin(bucket);
  key.append(9, '\xff');
  return key;
}

std::string RemindersPrefix(std::string_view owner) {
  return JoinName(kReminderPrefix, owner);
}
std::string ReminderDeadlinesPrefix(std::string_view owner, uint64_t record_id,
                                    uint8_t reason) {
  std::string key = RemindersPrefix(owner);
  AppendBigEndian64(key, record_id);
  key.push_back(static_cast<char>(reason));
  return key;
}
std::string Reminder(std::string_view owner, uint64_t record_id, uint8_t reason,
                     int64_t due_micros) {
  std::string key = ReminderDeadlinesPrefix(owner, record_id, reason);
  AppendBigEndian64(key, static_cast<uint64_t>(due_micros));
  return key;
}

std::string KindField(std::string_view kind, std::string_view field_name) {
  std::string key(kKindFieldPrefix);
  key.append(kind).push_back('\0');
  key.append(field_name);
  return key;
}

std::string StatsAggregate(std::string_view kind) {
  std::string key(kStatsAggregatePrefix);
  key.append(kind);
  return key;
}

std::string StatsDelta(uint64_t seq) {
  return JoinNumber(kStatsDeltaPrefix, seq);
}

std::string ErasedBucket(uint64_t bucket) {
  return JoinNumber(kErasedBucketPrefix, bucket);
}

std::string Deadline(int64_t due_micros, uint64_t record_id) {
  std::string key =
      JoinNumber(kDeadlinePrefix, static_cast<uint64_t>(due_micros));
  AppendBigEndian64(key, record_id);
  return key;
}

std::optional<DeadlineKey> ParseDeadline(std::string_view key) {
  if (key.size() != kDeadlinePrefix.size() + 16 ||
      !key.starts_with(kDeadlinePrefix)) {
    return std::nullopt;
  }
  const std::string_view rest = key.substr(kDeadlinePrefix.size());
  return DeadlineKey{static_cast<int64_t>(ReadBigEndian64(rest)),
                     ReadBigEndian64(rest.substr(8))};
}

std::string Hold(std::string_view id) { return Join(kHoldPrefix, id); }
std::string RecordHoldsPrefix(uint64_t record_id) {
  return JoinNumber("ho:r:", record_id);
}
std::string SubjectHoldsPrefix(std::string_view subject) {
  return JoinName("ho:s:", subject);
}

std::string CompactQueue(std::string_view key) {
  return Join(kCompactQueuePrefix, key);
}
std::string RangeDeleteQueue(std::string_view first) {
  return Join(kRangeDeleteQueuePrefix, first);
}
std::string RangeCompactQueue(std::string_view first) {
  return Join(kRangeCompactQueuePrefix, first);
}
std::string KeystoreCompactQueue(std::string_view subject_id) {
  return Join(kKeystoreCompactQueuePrefix, subject_id);
}

std::string RekeyCompactQueue(std::string_view subject_id) {
  return Join(kRekeyCompactQueuePrefix, subject_id);
}

std::string ShredQueue(std::string_view subject_id) {
  return Join(kShredQueuePrefix, subject_id);
}

std::string RekeyQueue(std::string_view subject_id) {
  return Join(kRekeyQueuePrefix, subject_id);
}

std::string Event(uint64_t seq) { return JoinNumber(kEventPrefix, seq); }
std::string HistoryIndexPrefix(std::string_view tag) {
  return Join(kHistoryIndexPrefix, tag);
}
std::string HistoryIndex(std::string_view tag, uint64_t seq) {
  std::string key = HistoryIndexPrefix(tag);
  AppendBigEndian64(key, seq);
  return key;
}
std::string HistoryReversePrefix(uint64_t seq) {
  return JoinNumber(kHistoryReversePrefix, seq);
}
std::string HistoryReverse(uint64_t seq, std::string_view tag) {
  return Join(HistoryReversePrefix(seq), tag);
}

std::string HistoryDroppedPrefix(uint64_t seq) {
  return JoinNumber(kHistoryDroppedPrefix, seq);
}
std::string HistoryDropped(uint64_t seq, uint32_t slot) {
  return JoinSlot(HistoryDroppedPrefix(seq), slot);
}

std::string DisclosurePrefix(std::string_view principal_id) {
  return JoinName(kDisclosurePrefix, principal_id);
}
std::string Disclosure(std::string_view principal_id, int64_t at_micros,
                       uint64_t seq) {
  std::string key = DisclosurePrefix(principal_id);
  // Flipping the sign bit orders two's-complement times as unsigned keys.
  AppendBigEndian64(key,
                    static_cast<uint64_t>(at_micros) ^ (uint64_t{1} << 63));
  AppendBigEndian64(key, seq);
  return key;
}
std::string DisclosurePartPrefix(uint64_t seq) {
  return JoinNumber(kDisclosurePartPrefix, seq);
}
std::string DisclosurePart(uint64_t seq, uint32_t slot) {
  return JoinSlot(DisclosurePartPrefix(seq), slot);
}

uint64_t NumberAfter(std::string_view key, std::string_view prefix) {
  return ReadBigEndian64(key.substr(prefix.size()));
}

}  // namespace custos::keys
