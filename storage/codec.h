// Internal to storage/: the stored forms of Custos values and their
// encoding as Cap'n Proto messages (schema/storage.capnp).
//
// Decode functions return DataLoss for bytes that are not a valid message
// of the expected struct; they never throw.

#ifndef CUSTOS_STORAGE_CODEC_H_
#define CUSTOS_STORAGE_CODEC_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "storage/retention_policy.h"
#include "storage/types.h"

namespace custos::codec {

using Bytes = std::vector<uint8_t>;

struct StoredPrincipal {
  PrincipalInfo info;
  Bytes credential_hash;
  int64_t revoked_at_micros = 0;
};

struct StoredSubject {
  std::string id;
  Bytes blind_index;
  Bytes sealed_identifier;
  int64_t created_at_micros = 0;
  bool shredded = false;
  int64_t shredded_at_micros = 0;
};

struct StoredPart {
  std::string subject_id;
  uint64_t version = 0;
  Bytes sealed;
};

struct StoredFlag {
  std::string by;
  int64_t at_micros = 0;
  std::string subject_id;
  Bytes sealed_note;
};

struct StoredContest {
  std::string by;
  int64_t at_micros = 0;
  std::string subject_id;
  Bytes sealed_statement;
};

enum class Transition : uint8_t { kNone = 0, kClose, kBlock, kErase };

struct StoredRecord;
// What an ACTIVE record's close_after counts from: the owner's last change,
// or, in records written before that was stored, the last change of any
// kind.
int64_t CloseAnchor(const StoredRecord& r);

struct StoredRecord {
  uint64_t id = 0;
  std::string kind;
  std::string owner;
  std::vector<std::string> grants;
  std::vector<Attribute> attributes;
  std::vector<StoredPart> parts;
  bool sensitive = false;
  RecordState state = RecordState::kActive;
  uint64_t version = 0;
  int64_t created_at_micros = 0;
  int64_t updated_at_micros = 0;
  // The owner's last change (creation included): an idle period
  // (close_after) counts from it, so no other principal keeps a record
  // open. 0 in records written before it was stored: updated_at counts.
  int64_t owner_changed_at_micros = 0;
  int64_t closed_at_micros = 0;
  int64_t blocked_at_micros = 0;
  int64_t erased_at_micros = 0;
  std::vector<StoredFlag> flags;
  std::vector<StoredContest> contests;
  std::vector<std::string> subject_ids;
  int64_t next_deadline_micros = 0;  // 0 = none.
  Transition next_transition = Transition::kNone;
  // The deadline bucket its parts, flag notes and contests are sealed under
  // (storage/deadline_keys.h); 0 = the subjects' data keys alone.
  uint64_t erase_bucket = 0;
  // Not stored: the bucket of the "pb:" entry holding its ciphertexts as
  // stored (0 = none: kept inline, or none left), set by DecodeRecord
  // (erase_bucket), by RecordStore::LoadSealed and RecordStore::Put, so Put
  // deletes the right entry when the bucket moves.
  uint64_t sealed_stored_bucket = 0;
  // Not stored: true when the record was decoded from its "r:" value alone
  // and its ciphertexts are still in its "pb:" entry (RecordStore::
  // LoadSealed merges them). RecordStore::Put refuses such a record.
  bool sealed_pending = false;
  // Not stored: the deadline whose index entry exists for this record
  // (set by DecodeRecord and RecordStore::Put), so a record whose next
  // deadline was recomputed in memory still moves the right entry.
  int64_t indexed_deadline_micros = 0;
  // Not stored: the anchor of an ACTIVE record's close deadline as stored
  // (CloseAnchor; set by DecodeRecord and RecordStore::Put), so that a
  // change that moved it is told from one that did not when the policy is
  // not available to compute the deadline again (RecordStore::Schedule).
  int64_t close_anchor_as_stored = 0;
  // Not stored: the state the record was stored in (set by DecodeRecord and
  // RecordStore::Put); nullopt for a record never stored. Put records the
  // transitions from it in the statistics index (storage/stats_index.h).
  std::optional<RecordState> stored_state;
};

// A stored time that may be absent (0 = none), as a Timestamp.
inline std::optional<Timestamp> OptionalTime(int64_t micros) {
  if (micros == 0) return std::nullopt;
  return FromMicros(micros);
}

struct StoredWrappedKey {
  uint32_t kek_version = 0;
  Bytes wrapped;
};

std::string EncodeFormatInfo(uint32_t version, int64_t created_at_micros);
Result<uint32_t> DecodeFormatVersion(std::string_view bytes);

std::string EncodePrincipal(const StoredPrincipal& p);
Result<StoredPrincipal> DecodePrincipal(std::string_view bytes);

std::string EncodeSubject(const StoredSubject& s);
Result<StoredSubject> DecodeSubject(std::string_view bytes);

// A record with erase_bucket != 0 is encoded with its sealed fields empty:
// its ciphertexts are in its "pb:" entry (EncodeSealedContents).
std::string EncodeRecord(const StoredRecord& r);
Result<StoredRecord> DecodeRecord(std::string_view bytes);

// Every ciphertext of `r` (its parts', flags' notes and contests'
// statements), in order: the value of its "pb:" entry.
std::string EncodeSealedContents(const StoredRecord& r);
// Whether `r` holds any ciphertext at all.
bool HasSealedContents(const StoredRecord& r);
// Puts the ciphertexts of a "pb:" value back into `r`. DataLoss if the
// bytes do not decode or do not match the record's parts, flags and
// contests.
Status MergeSealedContents(std::string_view bytes, StoredRecord& r);
// The ciphertexts of a "pb:" value, for witnessing them (storage/erasure.h).
// DataLoss if the bytes do not decode.
Result<std::vector<Bytes>> DecodeSealedContents(std::string_view bytes);

std::string EncodeHold(const HoldView& h);
Result<HoldView> DecodeHold(std::string_view bytes);

// `set_at_micros`: when the policy was set (Policies::For).
std::string EncodePolicy(const RetentionPolicy& p, int64_t set_at_micros = 0);
// DataLoss if the bytes or any stored period are malformed. With
// `set_at_micros`, stores there when it was set (0 if not recorded).
Result<RetentionPolicy> DecodePolicy(std::string_view bytes,
                                     int64_t* set_at_micros = nullptr);

std::string EncodeWrappedKey(const StoredWrappedKey& k);
Result<StoredWrappedKey> DecodeWrappedKey(std::string_view bytes);

struct StoredKeyringEntry {
  std::string name;
  uint32_t version = 0;
  Bytes wrapped;
  int64_t created_at_micros = 0;  // Backup keys only.
};
struct StoredKeyring {
  uint32_t current_kek = 0;
  std::vector<StoredKeyringEntry> entries;
};
std::string EncodeKeyring(const StoredKeyring& k);
Result<StoredKeyring> DecodeKeyring(std::string_view bytes);

std::string EncodeLedgerEntry(int64_t shredded_at_micros, std::string_view by);

// An admin event about a change of the keystore, kept with that change
// until the access history holds it (KeyAdmin; schema PendingAdminEvent).
struct StoredAdminEvent {
  uint64_t id = 0;
  std::string principal_id;
  std::string principal_name;
  uint16_t action = 0;  // EventAction's value.
  int64_t at_micros = 0;
  std::vector<std::string> fields;
};
std::string EncodeAdminEvent(const StoredAdminEvent& e);
Result<StoredAdminEvent> DecodeAdminEvent(std::string_view bytes);

// The plaintext of personal parts, flag notes and contest statements.
Bytes EncodeFields(const std::vector<Field>& fields);
Result<std::vector<Field>> DecodeFields(std::span<const uint8_t> bytes);

}  // namespace custos::codec

#endif  // CUSTOS_STORAGE_CODEC_H_
