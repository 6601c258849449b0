#include "storage/history.h"

#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>
#include <kj/io.h>
#include <leveldb/iterator.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <map>
#include <set>
#include <span>
#include <utility>
#include <vector>

#include "crypto/aead.h"
#include "crypto/nonce_random.h"
#include "schema/history.capnp.h"
#include "storage/capnp_value.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"

namespace custos {

std::string_view EventActionName(EventAction action) {
  switch (action) {
    case EventAction::kCreate:
      return "create";
    case EventAction::kRead:
      return "read";
    case EventAction::kReadRestricted:
      return "read_restricted";
    case EventAction::kRectify:
      return "rectify";
    case EventAction::kFlag:
      return "flag";
    case EventAction::kContest:
      return "contest";
    case EventAction::kGrant:
      return "grant";
    case EventAction::kClose:
      return "close";
    case EventAction::kWithdraw:
      return "withdraw";
    case EventAction::kBlock:
      return "block";
    case EventAction::kErase:
      return "erase";
    case EventAction::kExport:
      return "export";
    case EventAction::kHoldSet:
      return "hold_set";
    case EventAction::kHoldReleased:
      return "hold_released";
    case EventAction::kShred:
      return "shred";
    case EventAction::kReport:
      return "report";
    case EventAction::kRotateMasterKey:
      return "rotate_master_key";
    case EventAction::kRotateKek:
      return "rotate_kek";
    case EventAction::kPrincipalCreated:
      return "principal_created";
    case EventAction::kPrincipalRevoked:
      return "principal_revoked";
    case EventAction::kRekey:
      return "rekey";
    case EventAction::kCredentialRotated:
      return "credential_rotated";
    case EventAction::kBackup:
      return "backup";
    case EventAction::kRestore:
      return "restore";
    case EventAction::kExpireBackupKeys:
      return "expire_backup_keys";
    case EventAction::kExportRestoreKit:
      return "export_restore_kit";
    case EventAction::kBreachScope:
      return "breach_scope";
    case EventAction::kAccessHistory:
      return "access_history";
    case EventAction::kPolicySet:
      return "policy_set";
    case EventAction::kFindSubject:
      return "find_subject";
  }
  return "unknown";
}

bool NeverAboutASubject(EventAction action) {
  switch (action) {
    case EventAction::kRotateMasterKey:
    case EventAction::kRotateKek:
    case EventAction::kPrincipalCreated:
    case EventAction::kPrincipalRevoked:
    case EventAction::kCredentialRotated:
    case EventAction::kBackup:
    case EventAction::kRestore:
    case EventAction::kExpireBackupKeys:
    case EventAction::kExportRestoreKit:
    case EventAction::kPolicySet:
      return true;
    default:
      return false;
  }
}

bool IsDisclosure(EventAction action) {
  switch (action) {
    case EventAction::kRead:
    case EventAction::kReadRestricted:
    case EventAction::kExport:
    case EventAction::kReport:
    case EventAction::kBreachScope:
    case EventAction::kAccessHistory:
    case EventAction::kFindSubject:
      return true;
    default:
      return false;
  }
}

std::string_view ChainProblemName(ChainReport::Problem problem) {
  switch (problem) {
    case ChainReport::Problem::kNone:
      return "none";
    case ChainReport::Problem::kCheckpoint:
      return "checkpoint";
    case ChainReport::Problem::kMissing:
      return "missing";
    case ChainReport::Problem::kCorrupt:
      return "corrupt";
    case ChainReport::Problem::kLink:
      return "link";
    case ChainReport::Problem::kSeal:
      return "seal";
    case ChainReport::Problem::kHead:
      return "head";
    case ChainReport::Problem::kIndex:
      return "index";
    case ChainReport::Problem::kAnchor:
      return "anchor";
  }
  return "unknown";
}

namespace {

namespace hs = schema::history;
using crypto::Digest;
using crypto::kDigestSize;

// ---- Key layout (docs/history.md) ------------------------------------------

constexpr std::string_view kEventPrefix = keys::kEventPrefix;
constexpr std::string_view kHeadKey = keys::kHistoryHead;
constexpr std::string_view kCheckpointKey = keys::kHistoryCheckpoint;

// Domain tags of what is computed under the audit key. Each ends in a NUL so
// no tag is a prefix of another tag followed by data.
constexpr std::string_view kDigestTag{"custos-event-digest-v2\0", 23};
constexpr std::string_view kCommitmentTag{"custos-event-part-v2\0", 21};
constexpr std::string_view kMacTag{"custos-event-bytes-v2\0", 22};
constexpr std::string_view kIndexTag{"custos-history-index-v1\0", 24};
constexpr std::string_view kIndexEntryTag{"custos-history-index-entry-v1\0",
                                          30};
constexpr std::string_view kIndexDroppedTag{"custos-history-index-dropped-v1\0",
                                            32};
constexpr std::string_view kCheckpointTag{"custos-checkpoint-v1\0", 21};
constexpr std::string_view kPartAdTag{"custos-event-v1\0", 16};
constexpr std::string_view kPartSubjectKeyTag{"custos-disclosure-part-key-v1\0",
                                              30};
constexpr std::string_view kPartSubjectAdTag{"custos-disclosure-part-v1\0", 26};

std::string EventKey(uint64_t seq) { return keys::Event(seq); }

// Event keys are exactly the prefix and 8 bytes; anything else under the
// prefix is not ours and is reported as corrupt by Verify.
constexpr size_t kEventKeySize = kEventPrefix.size() + 8;

// The size of an empty leveldb::WriteBatch (its header: a sequence number
// and a count), as LevelDB gives it.
size_t EmptyBatchSize() {
  static const size_t size = leveldb::WriteBatch().ApproximateSize();
  return size;
}

std::string IndexPrefix(const Digest& tag) {
  return keys::HistoryIndexPrefix(AsStringView(tag));
}
std::string IndexKey(const Digest& tag, uint64_t seq) {
  return keys::HistoryIndex(AsStringView(tag), seq);
}
std::string ReversePrefix(uint64_t seq) {
  return keys::HistoryReversePrefix(seq);
}
std::string ReverseKey(uint64_t seq, const Digest& tag) {
  return keys::HistoryReverse(seq, AsStringView(tag));
}

std::string EncodeSlot(uint32_t slot) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<char>((slot >> (8 * (3 - i))) & 0xff);
  }
  return out;
}
std::optional<uint32_t> DecodeSlot(std::string_view in) {
  if (in.size() != 4) return std::nullopt;
  uint32_t slot = 0;
  for (char c : in) slot = (slot << 8) | static_cast<uint8_t>(c);
  return slot;
}

// An "h:" value: the slot, then the MAC binding it to its tag and event.
constexpr size_t kIndexValueSize = 4 + kDigestSize;

// ---- Keyed computations
// ------------------------------------------------------

// Keyed hashes under the audit key: each is the hash of its domain tag
// followed by its data, fed piece by piece rather than copied into one
// buffer.
using Hasher = crypto::KeyedHasher;

Digest Tagged(const crypto::SecretKey& key, std::string_view tag,
              std::span<const uint8_t> data) {
  return Hasher(key).Update(tag).Update(data).Final();
}

// The digest that enters the chain: the clear header and the commitment of
// each sealed part, never the ciphertexts, so that re-sealing a part under
// another key leaves it as it was; a stub keeps exactly this.
// Commitments are 32 bytes each and the header is length-prefixed, so the
// input has one parse.
Digest EventDigest(const crypto::SecretKey& key,
                   std::string_view canonical_header,
                   const std::vector<Digest>& commitments) {
  Hasher hasher(key);
  hasher.Update(kDigestTag)
      .UpdateBigEndian32(static_cast<uint32_t>(canonical_header.size()))
      .Update(canonical_header)
      .UpdateBigEndian32(static_cast<uint32_t>(commitments.size()));
  for (const Digest& c : commitments) hasher.Update(c);
  return hasher.Final();
}

// A sealed part's commitment: its plaintext (which holds a random salt)
// under the audit key, bound to its event and slot. The plaintext is hashed
// where it lies: no copy of it is made.
Digest PartCommitment(const crypto::SecretKey& key, uint64_t seq, uint32_t slot,
                      std::span<const uint8_t> plaintext) {
  return Hasher(key)
      .Update(kCommitmentTag)
      .UpdateBigEndian64(seq)
      .UpdateBigEndian32(slot)
      .Update(plaintext)
      .Final();
}

// The MAC of an event's stored bytes as they are now: what catches an
// altered ciphertext, which the chain does not cover.
Digest EventMac(const crypto::SecretKey& key, uint64_t seq,
                std::string_view event_bytes) {
  return Hasher(key)
      .Update(kMacTag)
      .UpdateBigEndian64(seq)
      .Update(event_bytes)
      .Final();
}

// The subject's index tag: the subject id blinded under the audit key, so
// the index holds no subject id in clear.
Digest IndexTagOf(const crypto::SecretKey& key, std::string_view subject_id) {
  return Tagged(key, kIndexTag, AsBytes(subject_id));
}

// The MAC in an "h:" value: what lets Verify tell an entry Stage wrote from
// one made up (another tag, another slot) without the subject's key.
// Bound to the event's chain link too, so an entry of one store (or of
// the same store before a restore, which hands its seqs out again) does
// not verify in another whose chain went another way.
Digest IndexEntryMac(const crypto::SecretKey& key, const Digest& tag,
                     uint64_t seq, uint32_t slot, const Digest& link) {
  return Hasher(key)
      .Update(kIndexEntryTag)
      .Update(tag)
      .UpdateBigEndian64(seq)
      .UpdateBigEndian32(slot)
      .Update(link)
      .Final();
}

// The value of an "hx:" marker: a part's index dropped with its shredded
// subject's (DropSubjectIndex), told apart from one deleted by someone
// without the audit key.
Digest IndexDroppedMac(const crypto::SecretKey& key, uint64_t seq,
                       uint32_t slot, const Digest& link) {
  return Hasher(key)
      .Update(kIndexDroppedTag)
      .UpdateBigEndian64(seq)
      .UpdateBigEndian32(slot)
      .Update(link)
      .Final();
}

std::string EncodeIndexValue(uint32_t slot, const Digest& mac) {
  std::string value = EncodeSlot(slot);
  value.append(AsStringView(mac));
  return value;
}

// The slot of an "h:" value (its MAC is Verify's to check).
std::optional<uint32_t> IndexSlot(std::string_view value) {
  if (value.size() != kIndexValueSize) return std::nullopt;
  return DecodeSlot(value.substr(0, 4));
}

Digest CheckpointMac(const crypto::SecretKey& key, uint64_t next_seq,
                     const Digest& link) {
  return Hasher(key)
      .Update(kCheckpointTag)
      .UpdateBigEndian64(next_seq)
      .Update(link)
      .Final();
}

// The key that seals the subject ids of the disclosure index: a subkey of
// the audit key, so the index needs no key of its own in the keyring.
crypto::SecretKey PartSubjectKey(const crypto::SecretKey& audit_key) {
  Digest d = Tagged(audit_key, kPartSubjectKeyTag, {});
  auto key = crypto::SecretKey::FromBytes(d);
  crypto::Wipe(d);
  return std::move(*key);
}

// Binds a sealed subject id of the disclosure index to its event and slot.
std::string PartSubjectAd(uint64_t seq, uint32_t slot) {
  std::string ad(kPartSubjectAdTag);
  AppendBigEndian64(ad, seq);
  ad += EncodeSlot(slot);
  return ad;
}

std::string PartAd(uint64_t seq, uint32_t slot,
                   kj::ArrayPtr<const kj::byte> canonical_header) {
  std::string ad(kPartAdTag);
  AppendBigEndian64(ad, seq);
  ad += EncodeSlot(slot);
  ad.append(reinterpret_cast<const char*>(canonical_header.begin()),
            canonical_header.size());
  return ad;
}

// ---- Cap'n Proto helpers
// -----------------------------------------------------

using capnp_value::AsText;
using capnp_value::Decode;
using capnp_value::FromText;
using capnp_value::ToBytes;

// A message whose first segment is on the stack, as large as the heap one
// of MallocMessageBuilder(kFirstSegmentWords), so that a message that fits
// in it is encoded the same, without a heap allocation and its zeroing per
// message. A larger message (a long justification, many field names, many
// parts) gets more segments from the heap, each at least as large as all
// before it (as MallocMessageBuilder grows). Every segment is wiped when
// the message goes: a subject's part is built in it before it is sealed.
class StackMessage final : public capnp::MessageBuilder {
 public:
  StackMessage() = default;
  ~StackMessage() override {
    crypto::Wipe(std::span<uint8_t>(reinterpret_cast<uint8_t*>(first_.data()),
                                    sizeof(first_)));
    for (std::vector<uint64_t>& segment : more_) {
      crypto::Wipe(
          std::span<uint8_t>(reinterpret_cast<uint8_t*>(segment.data()),
                             segment.size() * sizeof(uint64_t)));
    }
  }
  StackMessage(const StackMessage&) = delete;
  StackMessage& operator=(const StackMessage&) = delete;
  capnp::MessageBuilder& get() { return *this; }

  kj::ArrayPtr<capnp::word> allocateSegment(capnp::uint minimum) override {
    if (!first_given_ && minimum <= first_.size()) {
      first_given_ = true;
      allocated_ = first_.size();
      return Words(first_.data(), first_.size());
    }
    const size_t size = std::max<size_t>(minimum, allocated_);
    more_.emplace_back(size, 0);  // Zeroed, as MessageBuilder requires.
    allocated_ += size;
    return Words(more_.back().data(), size);
  }

 private:
  static kj::ArrayPtr<capnp::word> Words(uint64_t* data, size_t size) {
    return kj::arrayPtr(reinterpret_cast<capnp::word*>(data), size);
  }

  std::array<uint64_t, capnp_value::kFirstSegmentWords> first_{};
  bool first_given_ = false;
  size_t allocated_ = 0;
  std::vector<std::vector<uint64_t>> more_;
};

// The message in flat-array form, as capnp_value::ToBytes gives it (the
// same bytes), written straight into the string rather than through a
// flat array copied into it. A message of one segment (every message
// here, unless a field is very long) is its segment table (the segment
// count less one, then the segment's size in words, each a little-endian
// 32-bit number) followed by the segment, copied in one go.
std::string MessageBytes(capnp::MessageBuilder& message) {
  const kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments =
      message.getSegmentsForOutput();
  if (segments.size() == 1) {
    const kj::ArrayPtr<const kj::byte> segment = segments[0].asBytes();
    const uint32_t words = static_cast<uint32_t>(segments[0].size());
    std::string out(8 + segment.size(), '\0');
    for (int i = 0; i < 4; ++i) {
      out[4 + i] = static_cast<char>((words >> (8 * i)) & 0xff);
    }
    std::memcpy(out.data() + 8, segment.begin(), segment.size());
    return out;
  }
  std::string out(
      capnp::computeSerializedSizeInWords(message) * sizeof(capnp::word), '\0');
  kj::ArrayOutputStream stream(
      kj::arrayPtr(reinterpret_cast<kj::byte*>(out.data()), out.size()));
  capnp::writeMessage(stream, message);
  return out;
}

// An event header in canonical form: the very words capnp::canonicalize
// gives (a copy made with canonical=true into a flat array of the header's
// total size plus the root pointer), made on the stack when it fits.
// Without capnp::canonicalize's two heap arrays, and with its check that the
// copy is canonical (true of any copy made so) in debug builds only, about
// 3 % of a disclosing read's
// instructions (bench/RESULTS.md, "a disclosing read with less CPU").
// The header is no secret: it is stored in clear.
class CanonicalHeader {
 public:
  explicit CanonicalHeader(hs::EventHeader::Reader header) {
    const size_t words = header.totalSize().wordCount + 1;
    capnp::word* data = nullptr;
    if (words <= stack_.size()) {
      data = stack_.data();
      std::memset(data, 0, words * sizeof(capnp::word));
    } else {
      heap_ = kj::heapArray<capnp::word>(words);
      std::memset(heap_.begin(), 0, words * sizeof(capnp::word));
      data = heap_.begin();
    }
    capnp::FlatMessageBuilder builder(kj::arrayPtr(data, words));
    capnp::_::PointerHelpers<capnp::AnyPointer>::getInternalBuilder(
        builder.initRoot<capnp::AnyPointer>())
        .setStruct(capnp::_::PointerHelpers<hs::EventHeader>::getInternalReader(
                       header),
                   /*canonical=*/true);
    const kj::ArrayPtr<const capnp::word> output =
        builder.getSegmentsForOutput()[0];
#ifndef NDEBUG
    // What capnp::canonicalize checks of its own copy (debug builds only).
    const kj::ArrayPtr<const capnp::word> segments[] = {output};
    assert(capnp::SegmentArrayMessageReader(segments).isCanonical());
#endif
    bytes_ = output.asBytes();
  }
  CanonicalHeader(const CanonicalHeader&) = delete;
  CanonicalHeader& operator=(const CanonicalHeader&) = delete;

  kj::ArrayPtr<const kj::byte> asBytes() const { return bytes_; }

 private:
  std::array<capnp::word, 64> stack_;
  kj::Array<capnp::word> heap_;
  kj::ArrayPtr<const kj::byte> bytes_;
};

capnp::Data::Reader AsData(std::span<const uint8_t> b) {
  return capnp::Data::Reader(b.data(), b.size());
}
capnp::Data::Reader AsData(std::string_view s) { return AsData(AsBytes(s)); }
std::optional<Digest> DigestFrom(capnp::Data::Reader d) {
  if (d.size() != kDigestSize) return std::nullopt;
  Digest out;
  std::memcpy(out.data(), d.begin(), kDigestSize);
  return out;
}

// ---- Enum conversions ------------------------------------------------------

std::optional<hs::Action> ToSchema(EventAction a) {
  switch (a) {
    case EventAction::kCreate:
      return hs::Action::CREATE;
    case EventAction::kRead:
      return hs::Action::READ;
    case EventAction::kReadRestricted:
      return hs::Action::READ_RESTRICTED;
    case EventAction::kRectify:
      return hs::Action::RECTIFY;
    case EventAction::kFlag:
      return hs::Action::FLAG;
    case EventAction::kContest:
      return hs::Action::CONTEST;
    case EventAction::kGrant:
      return hs::Action::GRANT;
    case EventAction::kClose:
      return hs::Action::CLOSE;
    case EventAction::kWithdraw:
      return hs::Action::WITHDRAW;
    case EventAction::kBlock:
      return hs::Action::BLOCK;
    case EventAction::kErase:
      return hs::Action::ERASE;
    case EventAction::kExport:
      return hs::Action::EXPORT;
    case EventAction::kHoldSet:
      return hs::Action::HOLD_SET;
    case EventAction::kHoldReleased:
      return hs::Action::HOLD_RELEASED;
    case EventAction::kShred:
      return hs::Action::SHRED;
    case EventAction::kReport:
      return hs::Action::REPORT;
    case EventAction::kRotateMasterKey:
      return hs::Action::ROTATE_MASTER_KEY;
    case EventAction::kRotateKek:
      return hs::Action::ROTATE_KEK;
    case EventAction::kPrincipalCreated:
      return hs::Action::PRINCIPAL_CREATED;
    case EventAction::kPrincipalRevoked:
      return hs::Action::PRINCIPAL_REVOKED;
    case EventAction::kRekey:
      return hs::Action::REKEY;
    case EventAction::kCredentialRotated:
      return hs::Action::CREDENTIAL_ROTATED;
    case EventAction::kBackup:
      return hs::Action::BACKUP;
    case EventAction::kRestore:
      return hs::Action::RESTORE;
    case EventAction::kExpireBackupKeys:
      return hs::Action::EXPIRE_BACKUP_KEYS;
    case EventAction::kExportRestoreKit:
      return hs::Action::EXPORT_RESTORE_KIT;
    case EventAction::kBreachScope:
      return hs::Action::BREACH_SCOPE;
    case EventAction::kAccessHistory:
      return hs::Action::ACCESS_HISTORY;
    case EventAction::kPolicySet:
      return hs::Action::POLICY_SET;
    case EventAction::kFindSubject:
      return hs::Action::FIND_SUBJECT;
  }
  return std::nullopt;
}

std::optional<EventAction> FromSchema(hs::Action a) {
  switch (a) {
    case hs::Action::CREATE:
      return EventAction::kCreate;
    case hs::Action::READ:
      return EventAction::kRead;
    case hs::Action::READ_RESTRICTED:
      return EventAction::kReadRestricted;
    case hs::Action::RECTIFY:
      return EventAction::kRectify;
    case hs::Action::FLAG:
      return EventAction::kFlag;
    case hs::Action::CONTEST:
      return EventAction::kContest;
    case hs::Action::GRANT:
      return EventAction::kGrant;
    case hs::Action::CLOSE:
      return EventAction::kClose;
    case hs::Action::WITHDRAW:
      return EventAction::kWithdraw;
    case hs::Action::BLOCK:
      return EventAction::kBlock;
    case hs::Action::ERASE:
      return EventAction::kErase;
    case hs::Action::EXPORT:
      return EventAction::kExport;
    case hs::Action::HOLD_SET:
      return EventAction::kHoldSet;
    case hs::Action::HOLD_RELEASED:
      return EventAction::kHoldReleased;
    case hs::Action::SHRED:
      return EventAction::kShred;
    case hs::Action::REPORT:
      return EventAction::kReport;
    case hs::Action::ROTATE_MASTER_KEY:
      return EventAction::kRotateMasterKey;
    case hs::Action::ROTATE_KEK:
      return EventAction::kRotateKek;
    case hs::Action::PRINCIPAL_CREATED:
      return EventAction::kPrincipalCreated;
    case hs::Action::PRINCIPAL_REVOKED:
      return EventAction::kPrincipalRevoked;
    case hs::Action::REKEY:
      return EventAction::kRekey;
    case hs::Action::CREDENTIAL_ROTATED:
      return EventAction::kCredentialRotated;
    case hs::Action::BACKUP:
      return EventAction::kBackup;
    case hs::Action::RESTORE:
      return EventAction::kRestore;
    case hs::Action::EXPIRE_BACKUP_KEYS:
      return EventAction::kExpireBackupKeys;
    case hs::Action::EXPORT_RESTORE_KIT:
      return EventAction::kExportRestoreKit;
    case hs::Action::BREACH_SCOPE:
      return EventAction::kBreachScope;
    case hs::Action::ACCESS_HISTORY:
      return EventAction::kAccessHistory;
    case hs::Action::POLICY_SET:
      return EventAction::kPolicySet;
    case hs::Action::FIND_SUBJECT:
      return EventAction::kFindSubject;
  }
  return std::nullopt;
}

hs::RecordState ToSchema(std::optional<RecordState> s) {
  if (!s.has_value()) return hs::RecordState::NONE;
  switch (*s) {
    case RecordState::kActive:
      return hs::RecordState::ACTIVE;
    case RecordState::kClosed:
      return hs::RecordState::CLOSED;
    case RecordState::kBlocked:
      return hs::RecordState::BLOCKED;
    case RecordState::kErased:
      return hs::RecordState::ERASED;
  }
  return hs::RecordState::NONE;
}

// The outer optional is empty for an enumerant this build does not know.
std::optional<std::optional<RecordState>> FromSchema(hs::RecordState s) {
  switch (s) {
    case hs::RecordState::NONE:
      return std::optional<RecordState>();
    case hs::RecordState::ACTIVE:
      return RecordState::kActive;
    case hs::RecordState::CLOSED:
      return RecordState::kClosed;
    case hs::RecordState::BLOCKED:
      return RecordState::kBlocked;
    case hs::RecordState::ERASED:
      return RecordState::kErased;
  }
  return std::nullopt;
}

hs::PurposeKind ToSchema(const std::optional<Purpose>& p) {
  if (!p.has_value()) return hs::PurposeKind::NONE;
  switch (p->kind) {
    case PurposeKind::kProofOfExchange:
      return hs::PurposeKind::PROOF_OF_EXCHANGE;
    case PurposeKind::kSubjectConsent:
      return hs::PurposeKind::SUBJECT_CONSENT;
    case PurposeKind::kPublicInterest:
      return hs::PurposeKind::PUBLIC_INTEREST;
    case PurposeKind::kLegalObligation:
      return hs::PurposeKind::LEGAL_OBLIGATION;
  }
  return hs::PurposeKind::NONE;
}

std::optional<std::optional<PurposeKind>> FromSchema(hs::PurposeKind p) {
  switch (p) {
    case hs::PurposeKind::NONE:
      return std::optional<PurposeKind>();
    case hs::PurposeKind::PROOF_OF_EXCHANGE:
      return PurposeKind::kProofOfExchange;
    case hs::PurposeKind::SUBJECT_CONSENT:
      return PurposeKind::kSubjectConsent;
    case hs::PurposeKind::PUBLIC_INTEREST:
      return PurposeKind::kPublicInterest;
    case hs::PurposeKind::LEGAL_OBLIGATION:
      return PurposeKind::kLegalObligation;
  }
  return std::nullopt;
}

// ---- Stored forms
// ------------------------------------------------------------

struct StoredEventValue {
  uint64_t seq = 0;
  Digest link{};
  bool is_stub = false;
  std::string event_bytes;  // When !is_stub.
  Digest mac{};             // When !is_stub.
  Digest stub_digest{};     // When is_stub.
};

std::string EncodeStoredEvent(const StoredEventValue& v) {
  // One segment, sized to fit, so the encoding is a function of the value
  // (Verify re-encodes and compares, which catches a changed padding byte).
  // Its first segment on the stack when it fits (a disclosure's event
  // does): the same segment size, so the same bytes, without a heap
  // segment to allocate and zero per write.
  const size_t payload = v.is_stub ? kDigestSize : v.event_bytes.size();
  const size_t words = 24 + (payload + 7) / 8;
  std::array<uint64_t, 256> stack;
  std::vector<uint64_t> heap;
  uint64_t* first = stack.data();
  if (words > stack.size()) {
    heap.resize(words);
    first = heap.data();
  }
  std::memset(first, 0, words * sizeof(uint64_t));  // As capnp requires.
  capnp::MallocMessageBuilder message(
      kj::arrayPtr(reinterpret_cast<capnp::word*>(first), words),
      capnp::AllocationStrategy::FIXED_SIZE);
  auto b = message.initRoot<hs::StoredEvent>();
  b.setSeq(v.seq);
  b.setLink(AsData(v.link));
  if (v.is_stub) {
    b.setStub(AsData(v.stub_digest));
  } else {
    b.setEvent(AsData(v.event_bytes));
    b.setMac(AsData(v.mac));
  }
  return MessageBytes(message);
}

Result<StoredEventValue> DecodeStoredEvent(std::string_view bytes) {
  auto decoded = Decode<hs::StoredEvent>(
      bytes, "history event",
      [](hs::StoredEvent::Reader r) -> Result<StoredEventValue> {
        StoredEventValue v;
        v.seq = r.getSeq();
        auto link = DigestFrom(r.getLink());
        if (!link)
          return Fail(Status::DataLoss("corrupt stored history event"));
        v.link = *link;
        switch (r.which()) {
          case hs::StoredEvent::EVENT: {
            auto e = r.getEvent();
            v.event_bytes.assign(reinterpret_cast<const char*>(e.begin()),
                                 e.size());
            auto mac = DigestFrom(r.getMac());
            if (!mac) {
              return Fail(Status::DataLoss("corrupt stored history event"));
            }
            v.mac = *mac;
            return v;
          }
          case hs::StoredEvent::STUB: {
            auto d = DigestFrom(r.getStub());
            if (!d) {
              return Fail(Status::DataLoss("corrupt stored history event"));
            }
            v.is_stub = true;
            v.stub_digest = *d;
            return v;
          }
        }
        return Fail(Status::DataLoss("corrupt stored history event"));
      });
  if (!decoded.has_value()) return decoded;
  if (EncodeStoredEvent(*decoded) != bytes) {
    return Fail(Status::DataLoss("corrupt stored history event"));
  }
  return decoded;
}

// The head's message: the root pointer, one data word, the link's pointer
// and its 32 bytes. One segment of this size holds exactly what a larger
// first segment would, so the bytes are the same, without zeroing a large
// segment per write.
constexpr unsigned kHeadWords = 1 + 1 + 1 + kDigestSize / 8;

std::string EncodeHead(const History::Head& h) {
  // Its one segment on the stack: the same size, so the same bytes.
  std::array<uint64_t, kHeadWords> first{};
  capnp::MallocMessageBuilder message(
      kj::arrayPtr(reinterpret_cast<capnp::word*>(first.data()), first.size()),
      capnp::AllocationStrategy::FIXED_SIZE);
  auto b = message.initRoot<hs::Head>();
  b.setLastSeq(h.last_seq);
  b.setLink(AsData(h.link));
  return MessageBytes(message);
}

// The head, the checkpoint and the stored event wrapper are small values
// with one encoding each: a decoded value must re-encode to the very bytes
// read, so that no byte of them (padding included) can change unnoticed.
Result<History::Head> DecodeHead(std::string_view bytes) {
  auto head = Decode<hs::Head>(
      bytes, "history head", [](hs::Head::Reader r) -> Result<History::Head> {
        auto link = DigestFrom(r.getLink());
        if (!link) return Fail(Status::DataLoss("corrupt stored history head"));
        return History::Head{r.getLastSeq(), *link};
      });
  if (head.has_value() && EncodeHead(*head) != bytes) {
    return Fail(Status::DataLoss("corrupt stored history head"));
  }
  return head;
}

struct CheckpointValue {
  uint64_t next_seq = 1;
  Digest link{};
  Digest mac{};
};

std::string EncodeCheckpoint(const CheckpointValue& c) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<hs::Checkpoint>();
  b.setNextSeq(c.next_seq);
  b.setLink(AsData(c.link));
  b.setMac(AsData(c.mac));
  return ToBytes(message);
}

Result<CheckpointValue> DecodeCheckpoint(std::string_view bytes) {
  auto checkpoint = Decode<hs::Checkpoint>(
      bytes, "history checkpoint",
      [](hs::Checkpoint::Reader r) -> Result<CheckpointValue> {
        auto link = DigestFrom(r.getLink());
        auto mac = DigestFrom(r.getMac());
        if (!link || !mac) {
          return Fail(Status::DataLoss("corrupt stored history checkpoint"));
        }
        return CheckpointValue{r.getNextSeq(), *link, *mac};
      });
  if (checkpoint.has_value() && EncodeCheckpoint(*checkpoint) != bytes) {
    return Fail(Status::DataLoss("corrupt stored history checkpoint"));
  }
  return checkpoint;
}

// An Event message decoded: the header, its canonical bytes (bound into the
// parts' associated data), and the sealed parts.
struct DecodedEvent {
  EventHeader header;
  std::string canonical_header;
  std::string clear_justification;
  std::vector<std::string> clear_fields;
  std::vector<std::string> sealed_parts;
  std::vector<Digest> commitments;  // One per sealed part.
};

Result<DecodedEvent> DecodeEvent(std::string_view bytes) {
  return Decode<hs::Event>(
      bytes, "history event", [](hs::Event::Reader r) -> Result<DecodedEvent> {
        auto corrupt = [] {
          return Fail(Status::DataLoss("corrupt stored history event"));
        };
        DecodedEvent e;
        auto h = r.getHeader();
        e.header.seq = h.getSeq();
        e.header.at = FromMicros(h.getAtMicros());
        e.header.principal_id = FromText(h.getPrincipalId());
        e.header.principal_name = FromText(h.getPrincipalName());
        auto action = FromSchema(h.getAction());
        auto state = FromSchema(h.getRecordState());
        auto purpose = FromSchema(h.getPurposeKind());
        if (!action || !state || !purpose) return corrupt();
        e.header.action = *action;
        e.header.record_id = h.getRecordId();
        e.header.record_kind = FromText(h.getRecordKind());
        e.header.record_state = *state;
        e.header.purpose_kind = *purpose;
        e.clear_justification = FromText(h.getClearJustification());
        for (auto f : h.getClearFields()) e.clear_fields.push_back(FromText(f));
        kj::Array<capnp::word> canonical = capnp::canonicalize(h);
        e.canonical_header.assign(
            reinterpret_cast<const char*>(canonical.asBytes().begin()),
            canonical.asBytes().size());
        for (auto p : r.getParts()) {
          auto s = p.getSealed();
          e.sealed_parts.emplace_back(reinterpret_cast<const char*>(s.begin()),
                                      s.size());
          auto commitment = DigestFrom(p.getCommitment());
          if (!commitment) return corrupt();
          e.commitments.push_back(*commitment);
        }
        return e;
      });
}

struct SubjectPartValue {
  std::string subject_id;
  std::string justification;
  std::vector<std::string> fields;
};

// With a fresh random salt: see SubjectPart.salt.
std::string EncodeSubjectPart(const std::string& subject_id,
                              const std::string& justification,
                              const std::vector<std::string>& fields) {
  StackMessage message;
  auto b = message.get().initRoot<hs::SubjectPart>();
  b.setSubjectId(AsText(subject_id));
  b.setJustification(AsText(justification));
  auto list = b.initFields(fields.size());
  for (size_t i = 0; i < fields.size(); ++i) list.set(i, AsText(fields[i]));
  std::array<uint8_t, kDigestSize> salt;
  crypto::NonceRandomBytes(salt);
  b.setSalt(AsData(salt));
  crypto::Wipe(salt);
  return MessageBytes(message.get());
}

// An Event message: `header` copied, with these parts.
std::string EncodeEvent(hs::EventHeader::Reader header,
                        const std::vector<std::string>& sealed_parts,
                        const std::vector<Digest>& commitments) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto event = message.initRoot<hs::Event>();
  event.setHeader(header);
  auto parts = event.initParts(sealed_parts.size());
  for (size_t i = 0; i < sealed_parts.size(); ++i) {
    parts[i].setSealed(AsData(sealed_parts[i]));
    parts[i].setCommitment(AsData(commitments[i]));
  }
  return ToBytes(message);
}

Result<SubjectPartValue> DecodeSubjectPart(std::string_view bytes) {
  return Decode<hs::SubjectPart>(
      bytes, "history subject part",
      [](hs::SubjectPart::Reader r) -> Result<SubjectPartValue> {
        SubjectPartValue v;
        v.subject_id = FromText(r.getSubjectId());
        v.justification = FromText(r.getJustification());
        for (auto f : r.getFields()) v.fields.push_back(FromText(f));
        return v;
      });
}

// Whether one call's reads go into the block cache. Point reads fill it:
// with tables read by pread (Options::table_reads) a report or a breach
// scope reads the same blocks again and again (one per event looked up),
// and without the cache each look paid a read of its block. A walk over
// the whole history (the chain's verification, a scan for export) reads
// each block once and would only push those out. Mapped tables' blocks
// never enter the cache (LevelDB 1.23 caches only blocks it copied:
// table/format.cc, ReadBlock).
enum class CacheFill { kFill, kBypass };

// A consistent view for one reading call.
class Snapshot {
 public:
  Snapshot(leveldb::DB& db, CacheFill fill)
      : db_(db), snapshot_(db.GetSnapshot()) {
    options_.snapshot = snapshot_;
    options_.fill_cache = fill == CacheFill::kFill;
  }
  // As of `at` when given (the caller's, released by the caller), else of
  // a snapshot of its own.
  Snapshot(leveldb::DB& db, const leveldb::Snapshot* at, CacheFill fill)
      : db_(db),
        snapshot_(at != nullptr ? at : db.GetSnapshot()),
        own_(at == nullptr) {
    options_.snapshot = snapshot_;
    options_.fill_cache = fill == CacheFill::kFill;
  }
  ~Snapshot() {
    if (own_) db_.ReleaseSnapshot(snapshot_);
  }
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  const leveldb::ReadOptions& options() const { return options_; }

 private:
  leveldb::DB& db_;
  const leveldb::Snapshot* snapshot_;
  bool own_ = true;
  leveldb::ReadOptions options_;
};

// Reads `key`: the value, nullopt if absent, or the mapped error.
Result<std::optional<std::string>> Get(leveldb::DB& db,
                                       const leveldb::ReadOptions& options,
                                       std::string_view key,
                                       std::string_view what) {
  std::string value;
  leveldb::Status s = db.Get(options, ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return Fail(FromLevelDb(s, what));
  return std::optional<std::string>(std::move(value));
}

// Adds to `batch` the deletion of every key under `prefix`.
Status DeleteUnder(leveldb::DB& db, const leveldb::ReadOptions& options,
                   const std::string& prefix, leveldb::WriteBatch& batch,
                   std::string_view what) {
  std::unique_ptr<leveldb::Iterator> it(db.NewIterator(options));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    batch.Delete(it->key());
  }
  return FromLevelDb(it->status(), what);
}

uint64_t SeqOfEventKey(std::string_view key) {
  return ReadBigEndian64(key.substr(kEventPrefix.size()));
}

std::string ToString(const leveldb::Slice& s) { return s.ToString(); }

// Opens a subject's sealed part under `key`; failing that, under the key
// `retiring` gives (a subject being re-keyed has parts under both), then
// under the key `keys` gives now (a re-key may have replaced `key` since it
// was looked up). nullopt if none opens it.
Result<std::optional<std::vector<uint8_t>>> OpenPart(
    const std::string& subject_id, const SharedKey& key, const KeyLookup& keys,
    const KeyLookup& retiring, const std::string& sealed,
    const std::string& ad) {
  using Opened = std::optional<std::vector<uint8_t>>;
  auto plain = crypto::Open(*key, AsBytes(sealed), AsBytes(ad));
  if (plain.has_value()) return Opened(std::move(*plain));
  for (const KeyLookup* lookup : {&retiring, &keys}) {
    if (!*lookup) continue;
    Result<SharedKey> other = (*lookup)(subject_id);
    if (!other.has_value()) return Fail(other.error());
    if (*other == nullptr || *other == key) continue;
    plain = crypto::Open(**other, AsBytes(sealed), AsBytes(ad));
    if (plain.has_value()) return Opened(std::move(*plain));
  }
  return Opened();
}

Result<SubjectPartValue> AuthenticationFailed() {
  return Fail(
      Status::DataLoss("an access-history event failed to authenticate"));
}

// Opens part `slot` of `event` (stored at `seq`) as `subject_id`'s, under
// `key` and then as OpenPart tries, and checks it against its commitment
// and that it names the subject: DataLoss otherwise.
Result<SubjectPartValue> OpenSubjectPart(
    const crypto::SecretKey& audit_key, const DecodedEvent& event, uint64_t seq,
    uint32_t slot, const std::string& subject_id, const SharedKey& key,
    const KeyLookup& keys, const KeyLookup& retiring) {
  if (slot >= event.sealed_parts.size()) return AuthenticationFailed();
  const std::string ad = PartAd(
      seq, slot,
      kj::ArrayPtr<const kj::byte>(
          reinterpret_cast<const kj::byte*>(event.canonical_header.data()),
          event.canonical_header.size()));
  auto plain =
      OpenPart(subject_id, key, keys, retiring, event.sealed_parts[slot], ad);
  if (!plain.has_value()) return Fail(plain.error());
  if (!*plain) return AuthenticationFailed();
  // The commitment is what the chain covers: the part must be the one
  // that was staged, not another ciphertext under the same key.
  const bool committed = crypto::ConstantTimeEquals(
      PartCommitment(audit_key, seq, slot, **plain), event.commitments[slot]);
  auto part = DecodeSubjectPart(AsStringView(**plain));
  crypto::Wipe(**plain);
  if (!committed) return AuthenticationFailed();
  if (!part.has_value()) return Fail(part.error());
  if (part->subject_id != subject_id) return AuthenticationFailed();
  return part;
}

Status ValidateEvent(const Event& e) {
  if (e.principal_id.empty()) {
    return Status::InvalidArgument("an event needs a principal id");
  }
  if (!ToSchema(e.action).has_value()) {
    return Status::InvalidArgument("unknown event action");
  }
  if (NeverAboutASubject(e.action) && !e.subject_ids.empty()) {
    return Status::InvalidArgument(std::string("a ")
                                       .append(EventActionName(e.action))
                                       .append(" event is about no subject"));
  }
  if (!e.fields_by_subject.empty() &&
      e.fields_by_subject.size() != e.subject_ids.size()) {
    return Status::InvalidArgument(
        "an event's fields by subject do not match its subjects");
  }
  std::set<std::string_view> seen;
  for (const std::string& s : e.subject_ids) {
    if (s.empty()) {
      return Status::InvalidArgument("an event's subject id is empty");
    }
    if (!seen.insert(s).second) {
      return Status::InvalidArgument("an event names a subject twice");
    }
  }
  return Status::Ok();
}

}  // namespace

// ---- History
// -----------------------------------------------------------------

History::History(leveldb::DB& db, crypto::SecretKey audit_key,
                 crypto::SecretKey part_subject_key, Options options, Head head,
                 uint64_t disclosures_from)
    : db_(db),
      audit_key_(std::move(audit_key)),
      part_subject_key_(std::move(part_subject_key)),
      disclosures_from_(disclosures_from),
      options_(options),
      head_(head) {}

History::~History() = default;

Result<std::unique_ptr<History>> History::Open(leveldb::DB& db,
                                               crypto::SecretKey audit_key,
                                               Options options) {
  if (options.max_scan == 0) {
    return Fail(Status::InvalidArgument("max_scan must be at least 1"));
  }
  if (audit_key.empty()) {
    return Fail(Status::InvalidArgument("the audit key is empty"));
  }
  auto stored =
      Get(db, leveldb::ReadOptions(), kHeadKey, "reading history head");
  if (!stored.has_value()) return Fail(stored.error());
  Head head;
  if (stored->has_value()) {
    auto decoded = DecodeHead(**stored);
    if (!decoded.has_value()) return Fail(decoded.error());
    head = *decoded;
  }
  // Events staged before this build have no disclosure index entries; the
  // marker says where the index starts, so a walk can say what it misses.
  auto marker = Get(db, leveldb::ReadOptions(), keys::kHistoryDisclosuresFrom,
                    "reading history disclosure index marker");
  if (!marker.has_value()) return Fail(marker.error());
  uint64_t disclosures_from = head.last_seq + 1;
  if (marker->has_value()) {
    if ((*marker)->size() != 8) {
      return Fail(Status::DataLoss("corrupt history disclosure index marker"));
    }
    disclosures_from = ReadBigEndian64(**marker);
  } else {
    std::string value;
    AppendBigEndian64(value, disclosures_from);
    leveldb::WriteOptions write;
    write.sync = true;
    CUSTOS_RETURN_IF_ERROR(FromLevelDb(
        db.Put(write, ToSlice(keys::kHistoryDisclosuresFrom), ToSlice(value)),
        "writing history disclosure index marker"));
  }
  crypto::SecretKey part_subject_key = PartSubjectKey(audit_key);
  return std::unique_ptr<History>(new History(db, std::move(audit_key),
                                              std::move(part_subject_key),
                                              options, head, disclosures_from));
}

Digest History::TagOf(const std::string& subject_id) const {
  std::lock_guard<std::mutex> lock(tag_mu_);
  auto it = tag_cache_.find(subject_id);
  if (it != tag_cache_.end()) return it->second;
  if (tag_cache_.size() >= kTagCacheCapacity) tag_cache_.clear();
  const Digest tag = IndexTagOf(audit_key_, subject_id);
  tag_cache_.emplace(subject_id, tag);
  return tag;
}

History::Head History::head() const {
  std::lock_guard<std::mutex> lock(mu_);
  return head_;
}

Result<History::Pending> History::Stage(leveldb::WriteBatch& batch,
                                        const std::vector<Event>& events,
                                        const KeyLookup& keys) {
  for (const Event& e : events) CUSTOS_RETURN_IF_ERROR(ValidateEvent(e));

  const Head start = head();
  Pending pending;
  pending.previous_seq = start.last_seq;
  pending.first_seq = start.last_seq + 1;
  pending.last_seq = start.last_seq;
  pending.link = start.link;
  if (events.empty()) return pending;

  // Built apart and appended at the end, so a failure leaves `batch` as it
  // was; or, when `batch` is empty (a disclosure's commit), built in it and
  // cleared on failure, which leaves it as empty as it was, without the
  // copy.
  leveldb::WriteBatch apart;
  const bool in_place = batch.ApproximateSize() == EmptyBatchSize();
  leveldb::WriteBatch& staged = in_place ? batch : apart;
  // Clears `batch` on any way out (an error, an exception) but success.
  struct ClearUnlessStaged {
    leveldb::WriteBatch* batch;
    ~ClearUnlessStaged() {
      if (batch != nullptr) batch->Clear();
    }
  } clear_unless_staged{in_place ? &batch : nullptr};
  uint64_t seq = start.last_seq;
  Digest link = start.link;
  for (const Event& e : events) {
    ++seq;
    StackMessage message;
    auto event = message.get().initRoot<hs::Event>();
    auto h = event.initHeader();
    h.setSeq(seq);
    h.setAtMicros(ToMicros(e.at));
    h.setPrincipalId(AsText(e.principal_id));
    h.setPrincipalName(AsText(e.principal_name));
    h.setAction(*ToSchema(e.action));
    h.setRecordId(e.record_id);
    h.setRecordKind(AsText(e.record_kind));
    h.setRecordState(ToSchema(e.record_state));
    h.setPurposeKind(ToSchema(e.purpose));
    const std::string justification =
        e.purpose.has_value() ? e.purpose->justification : std::string();
    // Only an event about no subject keeps these in clear: otherwise they
    // are about the subjects, and go into their sealed parts (and nowhere
    // at all if every subject's key is already gone).
    if (e.subject_ids.empty()) {
      h.setClearJustification(AsText(justification));
      auto fields = h.initClearFields(e.fields.size());
      for (size_t i = 0; i < e.fields.size(); ++i) {
        fields.set(i, AsText(e.fields[i]));
      }
    }
    const CanonicalHeader canonical(h.asReader());

    std::vector<std::vector<uint8_t>> sealed;
    std::vector<Digest> commitments;
    std::vector<Digest> tags;
    std::vector<const std::string*> sealed_subjects;  // Those given a part.
    for (size_t i = 0; i < e.subject_ids.size(); ++i) {
      const std::string& subject = e.subject_ids[i];
      Result<SharedKey> key = keys(subject);
      if (!key.has_value()) return Fail(key.error());
      if (*key == nullptr) continue;  // Shredded: nothing to seal under.
      const uint32_t slot = static_cast<uint32_t>(sealed.size());
      std::string plain = EncodeSubjectPart(
          subject, justification,
          e.fields_by_subject.empty() ? e.fields : e.fields_by_subject[i]);
      commitments.push_back(
          PartCommitment(audit_key_, seq, slot, AsBytes(plain)));
      sealed.push_back(
          crypto::Seal(**key, AsBytes(plain),
                       AsBytes(PartAd(seq, slot, canonical.asBytes()))));
      crypto::Wipe(std::span<uint8_t>(reinterpret_cast<uint8_t*>(plain.data()),
                                      plain.size()));
      tags.push_back(TagOf(subject));
      sealed_subjects.push_back(&subject);
    }
    auto parts = event.initParts(sealed.size());
    for (size_t i = 0; i < sealed.size(); ++i) {
      parts[i].setSealed(AsData(sealed[i]));
      parts[i].setCommitment(AsData(commitments[i]));
    }

    StoredEventValue stored;
    stored.seq = seq;
    stored.event_bytes = MessageBytes(message.get());
    stored.mac = EventMac(audit_key_, seq, stored.event_bytes);
    const std::string_view canonical_bytes(
        reinterpret_cast<const char*>(canonical.asBytes().begin()),
        canonical.asBytes().size());
    link = crypto::ChainLink(
        audit_key_, link,
        EventDigest(audit_key_, canonical_bytes, commitments));
    stored.link = link;
    staged.Put(EventKey(seq), EncodeStoredEvent(stored));
    for (size_t slot = 0; slot < tags.size(); ++slot) {
      const auto part = static_cast<uint32_t>(slot);
      staged.Put(IndexKey(tags[slot], seq),
                 EncodeIndexValue(part, IndexEntryMac(audit_key_, tags[slot],
                                                      seq, part, link)));
      staged.Put(ReverseKey(seq, tags[slot]), "");
    }
    // The disclosure index: who received which subjects' data, when.
    if (IsDisclosure(e.action) && !e.subject_ids.empty()) {
      staged.Put(keys::Disclosure(e.principal_id, ToMicros(e.at), seq), "");
      for (size_t slot = 0; slot < sealed_subjects.size(); ++slot) {
        const auto part = static_cast<uint32_t>(slot);
        const std::vector<uint8_t> sealed_id =
            crypto::Seal(part_subject_key_, AsBytes(*sealed_subjects[slot]),
                         AsBytes(PartSubjectAd(seq, part)));
        staged.Put(keys::DisclosurePart(seq, part),
                   ToSlice(AsStringView(sealed_id)));
      }
    }
  }
  staged.Put(ToSlice(kHeadKey), EncodeHead(Head{seq, link}));
  if (!in_place) batch.Append(staged);
  clear_unless_staged.batch = nullptr;
  pending.last_seq = seq;
  pending.link = link;
  return pending;
}

void History::Commit(const Pending& pending) {
  if (pending.first_seq > pending.last_seq) return;
  std::lock_guard<std::mutex> lock(mu_);
  // A stale Pending means the caller broke Stage/Commit's protocol; moving
  // the head to it would fork the in-memory chain from the stored one.
  assert(pending.previous_seq == head_.last_seq);
  if (pending.previous_seq != head_.last_seq) return;
  head_ = Head{pending.last_seq, pending.link};
}

Result<ChainReport> History::Verify(const leveldb::Snapshot* at,
                                    const WorkProgressFn& progress,
                                    std::span<const ChainAnchor> anchors,
                                    const VerifiedEventFn& each) const {
  Snapshot snapshot(db_, at, CacheFill::kBypass);
  ChainReport report;

  auto stored_head =
      Get(db_, snapshot.options(), kHeadKey, "reading history head");
  if (!stored_head.has_value()) return Fail(stored_head.error());
  std::optional<Head> head = Head{};
  if (stored_head->has_value()) {
    auto decoded = DecodeHead(**stored_head);
    head = decoded.has_value() ? std::optional<Head>(*decoded) : std::nullopt;
  }
  if (head.has_value()) {
    report.head_seq = head->last_seq;
    report.head_link = head->link;
  }

  auto stored_checkpoint = Get(db_, snapshot.options(), kCheckpointKey,
                               "reading history checkpoint");
  if (!stored_checkpoint.has_value()) return Fail(stored_checkpoint.error());
  uint64_t start_seq = 1;
  Digest start_link = crypto::kChainGenesis;
  if (stored_checkpoint->has_value()) {
    auto checkpoint = DecodeCheckpoint(**stored_checkpoint);
    if (!checkpoint.has_value()) {
      report.problem = ChainReport::Problem::kCheckpoint;
      report.first_broken = 1;
      return report;
    }
    const Digest mac =
        CheckpointMac(audit_key_, checkpoint->next_seq, checkpoint->link);
    if (checkpoint->next_seq == 0 ||
        !crypto::ConstantTimeEquals(mac, checkpoint->mac)) {
      report.problem = ChainReport::Problem::kCheckpoint;
      report.first_seq = std::max<uint64_t>(checkpoint->next_seq, 1);
      report.first_broken = report.first_seq;
      return report;
    }
    start_seq = checkpoint->next_seq;
    start_link = checkpoint->link;
  }
  report.first_seq = start_seq;
  // Every store this build opens (records format 5) indexed disclosures
  // from its first event: a marker saying otherwise was deleted (Open
  // writes a missing one as the head + 1) or changed, and breach scopes
  // would leave out what came before it.
  if (disclosures_from_ != 1) {
    report.problem = ChainReport::Problem::kIndex;
    report.first_broken = 1;
    return report;
  }

  crypto::ChainVerifier verifier(audit_key_, start_link, start_seq);
  auto broken = [&report](ChainReport::Problem problem, uint64_t seq) {
    report.problem = problem;
    report.first_broken = seq;
  };
  // The anchors in seq order, compared as the walk passes their seq; the
  // first that fails is reported once the chain and its head verified.
  std::vector<ChainAnchor> pending(anchors.begin(), anchors.end());
  std::sort(
      pending.begin(), pending.end(),
      [](const ChainAnchor& a, const ChainAnchor& b) { return a.seq < b.seq; });
  auto next_anchor = pending.begin();
  std::optional<uint64_t> anchor_broken;
  auto check_anchors = [&](uint64_t seq, const Digest& link) {
    for (; next_anchor != pending.end() && next_anchor->seq == seq;
         ++next_anchor) {
      if (crypto::ConstantTimeEquals(next_anchor->link, link)) {
        ++report.anchors_matched;
        if (!anchor_broken) report.anchor_last_held = seq;
      } else if (!anchor_broken) {
        anchor_broken = seq;
      }
    }
  };
  // (start_seq >= 1: no overflow, whatever an anchor's seq.)
  for (; next_anchor != pending.end() && next_anchor->seq < start_seq - 1;
       ++next_anchor) {
    ++report.anchors_folded;
  }
  check_anchors(start_seq - 1, start_link);
  uint64_t expected = start_seq;
  const uint64_t total =
      report.head_seq >= start_seq ? report.head_seq - start_seq + 1 : 0;
  ReportProgress(progress, "events", "events", 0, total);
  // The index entries of each event, read in step with the walk (their
  // keys start with the seq, so each family is one forward scan).
  std::unique_ptr<leveldb::Iterator> reverse_it(
      db_.NewIterator(snapshot.options()));
  std::unique_ptr<leveldb::Iterator> dropped_it(
      db_.NewIterator(snapshot.options()));
  std::unique_ptr<leveldb::Iterator> parts_it(
      db_.NewIterator(snapshot.options()));
  reverse_it->Seek(ReversePrefix(start_seq));
  dropped_it->Seek(keys::HistoryDroppedPrefix(start_seq));
  parts_it->Seek(keys::DisclosurePartPrefix(start_seq));
  // Whether event `seq`'s index entries are what Stage, DropSubjectIndex
  // and Prune leave: for each sealed part, either its "h:"/"hs:" pair
  // (with a MAC binding tag, seq and slot) or a dropped marker ("hx:",
  // MAC'd); for a disclosure, its "hp:" entry and, for each part still
  // indexed, an "hq:" entry naming the subject whose tag the pair holds;
  // for a stub, none at all. A part whose entries were deleted would be
  // missing from its subject's report and from breach scopes while the
  // chain still verified.
  auto indexes_intact = [&](uint64_t seq, const Digest& link,
                            const DecodedEvent* event) -> Result<bool> {
    const size_t parts = event != nullptr ? event->sealed_parts.size() : 0;
    auto index = ReadPartIndex(*reverse_it, *dropped_it, snapshot.options(),
                               seq, link, parts);
    if (!index) return Fail(index.error());
    bool intact = index->intact;
    const std::vector<std::optional<Digest>>& tag_of = index->tag_of;
    // The sealed subject ids ("hq:"), read once, by slot.
    const std::string sealed_ids = keys::DisclosurePartPrefix(seq);
    size_t sealed_id_entries = 0;
    std::map<uint32_t, std::string> sealed_id_of;
    for (; parts_it->Valid() && parts_it->key().starts_with(sealed_ids);
         parts_it->Next()) {
      ++sealed_id_entries;
      const std::string key = ToString(parts_it->key());
      if (key.size() != sealed_ids.size() + 4) continue;  // Counted only.
      sealed_id_of[*DecodeSlot(std::string_view(key).substr(
          sealed_ids.size()))] = ToString(parts_it->value());
    }
    CUSTOS_RETURN_IF_ERROR(
        FromLevelDb(parts_it->status(), "reading history disclosure index"));
    const bool indexed_disclosure = event != nullptr && parts > 0 &&
                                    IsDisclosure(event->header.action) &&
                                    seq >= disclosures_from_;
    if (!indexed_disclosure) return intact && sealed_id_entries == 0;
    auto entry = Get(db_, snapshot.options(),
                     keys::Disclosure(event->header.principal_id,
                                      ToMicros(event->header.at), seq),
                     "reading history disclosure index");
    if (!entry.has_value()) return Fail(entry.error());
    if (!entry->has_value()) return false;
    size_t expected_ids = 0;
    for (uint32_t slot = 0; slot < parts; ++slot) {
      if (!tag_of[slot]) continue;  // Dropped: so is its sealed id.
      ++expected_ids;
      auto sealed_id = sealed_id_of.find(slot);
      if (sealed_id == sealed_id_of.end()) return false;
      auto id = crypto::Open(part_subject_key_, AsBytes(sealed_id->second),
                             AsBytes(PartSubjectAd(seq, slot)));
      if (!id.has_value()) return false;
      const bool same = crypto::ConstantTimeEquals(
          IndexTagOf(audit_key_, AsStringView(*id)), *tag_of[slot]);
      crypto::Wipe(*id);
      if (!same) return false;
    }
    return intact && sealed_id_entries == expected_ids;
  };
  std::unique_ptr<leveldb::Iterator> it(db_.NewIterator(snapshot.options()));
  for (it->Seek(EventKey(start_seq));
       it->Valid() && it->key().starts_with(ToSlice(kEventPrefix));
       it->Next()) {
    if (it->key().size() != kEventKeySize) {
      broken(ChainReport::Problem::kCorrupt, expected);
      break;
    }
    const uint64_t seq = SeqOfEventKey(ToString(it->key()));
    if (seq != expected) {
      broken(ChainReport::Problem::kMissing, expected);
      break;
    }
    auto stored = DecodeStoredEvent(ToString(it->value()));
    if (!stored.has_value() || stored->seq != seq) {
      broken(ChainReport::Problem::kCorrupt, seq);
      break;
    }
    std::optional<DecodedEvent> event;
    if (!stored->is_stub) {
      auto decoded = DecodeEvent(stored->event_bytes);
      if (!decoded.has_value()) {
        broken(ChainReport::Problem::kCorrupt, seq);
        break;
      }
      event = std::move(*decoded);
    }
    const Digest digest = stored->is_stub
                              ? stored->stub_digest
                              : EventDigest(audit_key_, event->canonical_header,
                                            event->commitments);
    if (!verifier.Add(digest, stored->link)) {
      broken(ChainReport::Problem::kLink, seq);
      break;
    }
    if (stored->is_stub) {
      ++report.stubs;
    } else {
      // The link authenticates the header and the commitments; the MAC
      // the bytes as stored now, ciphertexts included.
      if (!crypto::ConstantTimeEquals(
              EventMac(audit_key_, seq, stored->event_bytes), stored->mac)) {
        broken(ChainReport::Problem::kSeal, seq);
        break;
      }
      // The seq inside the header is what ties the event to its place.
      if (event->header.seq != seq) {
        broken(ChainReport::Problem::kCorrupt, seq);
        break;
      }
    }
    auto intact = indexes_intact(seq, stored->link, event ? &*event : nullptr);
    if (!intact.has_value()) return Fail(intact.error());
    if (!*intact) {
      broken(ChainReport::Problem::kIndex, seq);
      break;
    }
    check_anchors(seq, stored->link);
    if (each && event) each(event->header, event->clear_fields);
    ++expected;
    ReportProgress(progress, "events", "events", expected - start_seq, total);
  }
  ReportProgress(progress, "events", "events", expected - start_seq, total,
                 /*last=*/true);
  CUSTOS_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading history"));
  report.verified = verifier.verified();
  if (!report.ok()) return report;
  report.walked_to_end = true;

  const uint64_t last = expected - 1;
  if (!head.has_value()) {
    broken(ChainReport::Problem::kHead, last + 1);
  } else if (head->last_seq != last) {
    // A shorter chain than the head: the first missing event; a longer one:
    // the first event the head does not cover.
    broken(ChainReport::Problem::kHead, std::min(head->last_seq, last) + 1);
  } else if (!crypto::ConstantTimeEquals(head->link, verifier.last_link())) {
    broken(ChainReport::Problem::kHead, std::max<uint64_t>(last, 1));
  }
  if (!report.ok()) return report;
  // An anchor past the head: its events were cut and the head rewritten.
  if (!anchor_broken && next_anchor != pending.end()) anchor_broken = last + 1;
  if (anchor_broken) {
    broken(ChainReport::Problem::kAnchor, *anchor_broken);
    return report;
  }

  // The walk examined every "h:" entry through its "hs:" twin; one without
  // a twin was never examined (and a shred's DropSubjectIndex would meet
  // it under its tag): reported at the lowest such seq.
  std::optional<uint64_t> orphan;
  const std::string index_prefix(keys::kHistoryIndexPrefix);
  std::unique_ptr<leveldb::Iterator> index_it(
      db_.NewIterator(snapshot.options()));
  for (index_it->Seek(index_prefix);
       index_it->Valid() && index_it->key().starts_with(index_prefix);
       index_it->Next()) {
    const std::string key = ToString(index_it->key());
    if (key.size() != index_prefix.size() + kDigestSize + 8) {
      orphan = std::min(orphan.value_or(report.first_seq), report.first_seq);
      continue;
    }
    const uint64_t seq =
        ReadBigEndian64(std::string_view(key).substr(key.size() - 8));
    Digest tag;
    std::memcpy(tag.data(), key.data() + index_prefix.size(), kDigestSize);
    auto twin = Get(db_, snapshot.options(), ReverseKey(seq, tag),
                    "reading history index");
    if (!twin.has_value()) return Fail(twin.error());
    if (!twin->has_value()) orphan = std::min(orphan.value_or(seq), seq);
  }
  CUSTOS_RETURN_IF_ERROR(
      FromLevelDb(index_it->status(), "reading history index"));
  if (orphan) broken(ChainReport::Problem::kIndex, *orphan);
  return report;
}

Result<HistoryPage> History::ForSubject(const std::string& subject_id,
                                        Timestamp from, Timestamp to,
                                        uint64_t after_seq, uint32_t limit,
                                        const KeyLookup& keys,
                                        const KeyLookup& retiring) const {
  if (limit == 0) return Fail(Status::InvalidArgument("limit must be >= 1"));
  HistoryPage page;
  Result<SharedKey> key = keys(subject_id);
  if (!key.has_value()) return Fail(key.error());
  if (*key == nullptr || after_seq == UINT64_MAX) return page;

  Snapshot snapshot(db_, CacheFill::kFill);
  const Digest tag = IndexTagOf(audit_key_, subject_id);
  const std::string prefix = IndexPrefix(tag);
  const auto authentication_failed = [] {
    return Fail(
        Status::DataLoss("an access-history event failed to authenticate"));
  };

  size_t examined = 0;
  uint64_t last_examined = after_seq;
  bool more = false;
  std::unique_ptr<leveldb::Iterator> it(db_.NewIterator(snapshot.options()));
  for (it->Seek(IndexKey(tag, after_seq + 1));
       it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (page.entries.size() == limit || examined == options_.max_scan) {
      more = true;
      break;
    }
    ++examined;
    const std::string index_key = ToString(it->key());
    if (index_key.size() != prefix.size() + 8) {
      return Fail(Status::DataLoss("corrupt history index entry"));
    }
    const uint64_t seq =
        ReadBigEndian64(std::string_view(index_key).substr(prefix.size()));
    last_examined = seq;
    auto slot = IndexSlot(ToString(it->value()));
    if (!slot) return Fail(Status::DataLoss("corrupt history index entry"));

    auto value =
        Get(db_, snapshot.options(), EventKey(seq), "reading history event");
    if (!value.has_value()) return Fail(value.error());
    if (!value->has_value()) continue;  // Pruned and folded.
    auto stored = DecodeStoredEvent(**value);
    if (!stored.has_value()) return Fail(stored.error());
    if (stored->seq != seq) return authentication_failed();
    if (stored->is_stub) continue;  // Pruned.
    auto event = DecodeEvent(stored->event_bytes);
    if (!event.has_value()) return Fail(event.error());
    if (event->header.seq != seq) return authentication_failed();
    if (event->header.at < from || event->header.at >= to) continue;
    auto part = OpenSubjectPart(audit_key_, *event, seq, *slot, subject_id,
                                *key, keys, retiring);
    if (!part.has_value()) return Fail(part.error());

    HistoryEntry entry;
    entry.header = std::move(event->header);
    entry.justification = std::move(part->justification);
    entry.fields = std::move(part->fields);
    page.entries.push_back(std::move(entry));
  }
  CUSTOS_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading history index"));
  page.next_after_seq = more ? last_examined : 0;
  return page;
}

Result<DisclosureWalk> History::Disclosures(const std::string& principal_id,
                                            Timestamp from, Timestamp to,
                                            size_t limit, const KeyLookup& keys,
                                            const KeyLookup& retiring) const {
  if (limit == 0) return Fail(Status::InvalidArgument("limit must be >= 1"));
  DisclosureWalk walk;
  Snapshot snapshot(db_, CacheFill::kFill);
  walk.indexed_from = disclosures_from_;
  if (disclosures_from_ > 1) {
    auto before = Get(db_, snapshot.options(), EventKey(disclosures_from_ - 1),
                      "reading history event");
    if (!before.has_value()) return Fail(before.error());
    if (before->has_value()) {
      auto stored = DecodeStoredEvent(**before);
      if (!stored.has_value()) return Fail(stored.error());
      if (!stored->is_stub) {
        auto event = DecodeEvent(stored->event_bytes);
        if (!event.has_value()) return Fail(event.error());
        walk.unindexed_until = event->header.at;
      }
    }
  }
  if (from >= to) return walk;

  const auto corrupt = [] {
    return Fail(Status::DataLoss("corrupt history disclosure index entry"));
  };
  const std::string prefix = keys::DisclosurePrefix(principal_id);
  const std::string end = keys::Disclosure(principal_id, ToMicros(to), 0);
  std::unique_ptr<leveldb::Iterator> it(db_.NewIterator(snapshot.options()));
  for (it->Seek(keys::Disclosure(principal_id, ToMicros(from), 0));
       it->Valid() && it->key().starts_with(prefix) &&
       it->key().compare(ToSlice(end)) < 0;
       it->Next()) {
    ++walk.examined;
    if (walk.disclosures.size() == limit) {
      walk.more = true;
      break;
    }
    const std::string index_key = ToString(it->key());
    if (index_key.size() != prefix.size() + 16) return corrupt();
    const uint64_t seq =
        ReadBigEndian64(std::string_view(index_key).substr(prefix.size() + 8));

    auto value =
        Get(db_, snapshot.options(), EventKey(seq), "reading history event");
    if (!value.has_value()) return Fail(value.error());
    if (!value->has_value()) continue;  // Pruned and folded.
    auto stored = DecodeStoredEvent(**value);
    if (!stored.has_value()) return Fail(stored.error());
    if (stored->seq != seq) return Fail(AuthenticationFailed().error());
    if (stored->is_stub) continue;  // Pruned.
    auto event = DecodeEvent(stored->event_bytes);
    if (!event.has_value()) return Fail(event.error());
    // The index entry must be this event's: its principal, its time, a
    // disclosure. (The event itself is authenticated by the chain.)
    if (event->header.seq != seq ||
        event->header.principal_id != principal_id || event->header.at < from ||
        event->header.at >= to || !IsDisclosure(event->header.action)) {
      return Fail(AuthenticationFailed().error());
    }

    Disclosure d;
    d.sealed_parts = event->sealed_parts.size();
    for (uint32_t slot = 0; slot < d.sealed_parts; ++slot) {
      auto sealed_id =
          Get(db_, snapshot.options(), keys::DisclosurePart(seq, slot),
              "reading history disclosure index");
      if (!sealed_id.has_value()) return Fail(sealed_id.error());
      if (!sealed_id->has_value())
        continue;  // Dropped with a shredded
                   // subject's index.
      auto id = crypto::Open(part_subject_key_, AsBytes(**sealed_id),
                             AsBytes(PartSubjectAd(seq, slot)));
      if (!id.has_value()) return corrupt();
      const std::string subject_id(AsStringView(*id));
      Result<SharedKey> key = keys(subject_id);
      if (!key.has_value()) return Fail(key.error());
      if (*key == nullptr) continue;  // Shredded.
      auto part = OpenSubjectPart(audit_key_, *event, seq, slot, subject_id,
                                  *key, keys, retiring);
      if (!part.has_value()) return Fail(part.error());
      d.parts.push_back(Disclosure::Part{std::move(part->subject_id),
                                         std::move(part->justification),
                                         std::move(part->fields)});
    }
    d.header = std::move(event->header);
    walk.disclosures.push_back(std::move(d));
  }
  CUSTOS_RETURN_IF_ERROR(
      FromLevelDb(it->status(), "reading history disclosure index"));
  return walk;
}

Result<HistoryPage> History::Scan(uint64_t after_seq, uint32_t limit) const {
  if (limit == 0) return Fail(Status::InvalidArgument("limit must be >= 1"));
  HistoryPage page;
  if (after_seq == UINT64_MAX) return page;
  Snapshot snapshot(db_, CacheFill::kBypass);
  size_t examined = 0;
  uint64_t last_examined = after_seq;
  bool more = false;
  std::unique_ptr<leveldb::Iterator> it(db_.NewIterator(snapshot.options()));
  for (it->Seek(EventKey(after_seq + 1));
       it->Valid() && it->key().starts_with(ToSlice(kEventPrefix));
       it->Next()) {
    if (page.entries.size() == limit || examined == options_.max_scan) {
      more = true;
      break;
    }
    ++examined;
    if (it->key().size() != kEventKeySize) {
      return Fail(Status::DataLoss("corrupt history event key"));
    }
    const uint64_t seq = SeqOfEventKey(ToString(it->key()));
    last_examined = seq;
    auto stored = DecodeStoredEvent(ToString(it->value()));
    if (!stored.has_value()) return Fail(stored.error());
    if (stored->is_stub) continue;
    auto event = DecodeEvent(stored->event_bytes);
    if (!event.has_value()) return Fail(event.error());
    HistoryEntry entry;
    entry.header = std::move(event->header);
    entry.justification = std::move(event->clear_justification);
    entry.fields = std::move(event->clear_fields);
    entry.sealed_parts = event->sealed_parts.size();
    page.entries.push_back(std::move(entry));
  }
  CUSTOS_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading history"));
  page.next_after_seq = more ? last_examined : 0;
  return page;
}

Result<size_t> History::DropSubjectIndex(leveldb::WriteBatch& batch,
                                         const std::string& subject_id,
                                         size_t budget,
                                         int64_t* about_no_record_from) const {
  const Digest tag = IndexTagOf(audit_key_, subject_id);
  {
    // The subject is being shredded: its tag is not kept in memory.
    std::lock_guard<std::mutex> lock(tag_mu_);
    tag_cache_.erase(subject_id);
  }
  const std::string prefix = IndexPrefix(tag);
  size_t dropped = 0;
  std::unique_ptr<leveldb::Iterator> it(
      db_.NewIterator(leveldb::ReadOptions()));
  for (it->Seek(prefix);
       dropped < budget && it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    const std::string key = ToString(it->key());
    batch.Delete(key);
    ++dropped;
    if (key.size() != prefix.size() + 8) continue;
    const uint64_t seq =
        ReadBigEndian64(std::string_view(key).substr(prefix.size()));
    // The twin goes whatever: it carries this subject's tag.
    batch.Delete(ReverseKey(seq, tag));
    const std::string value = ToString(it->value());
    auto slot = IndexSlot(value);
    if (!slot) continue;
    // So does the part's sealed subject id, if it is this subject's (its
    // key, the part-subject key, outlives the shred).
    auto sealed_id =
        Get(db_, leveldb::ReadOptions(), keys::DisclosurePart(seq, *slot),
            "reading history disclosure index");
    if (!sealed_id.has_value()) return Fail(sealed_id.error());
    if (sealed_id->has_value()) {
      auto id = crypto::Open(part_subject_key_, AsBytes(**sealed_id),
                             AsBytes(PartSubjectAd(seq, *slot)));
      if (id.has_value()) {
        if (AsStringView(*id) == subject_id) {
          batch.Delete(keys::DisclosurePart(seq, *slot));
        }
        crypto::Wipe(*id);
      }
    }
    // Only an entry Stage wrote (its MAC, under the event's link, and its
    // reverse entry) stands for a part of this subject's: the marker that
    // tells Verify the part's entries were dropped, not deleted, must not
    // be had for another subject's part by planting an entry under this
    // subject's tag. Anything else is only deleted.
    auto reverse = Get(db_, leveldb::ReadOptions(), ReverseKey(seq, tag),
                       "reading history index");
    if (!reverse.has_value()) return Fail(reverse.error());
    auto stored_event = Get(db_, leveldb::ReadOptions(), EventKey(seq),
                            "reading history event");
    if (!stored_event.has_value()) return Fail(stored_event.error());
    if (!reverse->has_value() || !stored_event->has_value()) continue;
    auto stored = DecodeStoredEvent(**stored_event);
    if (!stored.has_value() || stored->seq != seq || stored->is_stub ||
        !crypto::ConstantTimeEquals(
            IndexEntryMac(audit_key_, tag, seq, *slot, stored->link),
            AsBytes(std::string_view(value).substr(4)))) {
      continue;
    }
    const Digest mac = IndexDroppedMac(audit_key_, seq, *slot, stored->link);
    batch.Put(keys::HistoryDropped(seq, *slot), ToSlice(AsStringView(mac)));
    if (about_no_record_from != nullptr) {
      // Its instant, as the header says (an event that does not decode is
      // kept by pruning whatever: nothing to wake it for).
      auto event = DecodeEvent(stored->event_bytes);
      if (event.has_value() && event->header.record_id == 0) {
        *about_no_record_from =
            std::min(*about_no_record_from, ToMicros(event->header.at));
      }
    }
  }
  CUSTOS_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading history index"));
  return dropped;
}

Result<History::ResealResult> History::ResealSubject(
    leveldb::WriteBatch& batch, const std::string& subject_id,
    const crypto::SecretKey& from, const crypto::SecretKey& to,
    uint64_t after_seq, size_t budget) const {
  ResealResult result;
  if (after_seq == UINT64_MAX) return result;
  const Digest tag = IndexTagOf(audit_key_, subject_id);
  const std::string prefix = IndexPrefix(tag);
  const auto failed = [] {
    return Fail(
        Status::DataLoss("an access-history event failed to authenticate"));
  };
  const leveldb::ReadOptions read;
  bool more = false;
  std::unique_ptr<leveldb::Iterator> it(db_.NewIterator(read));
  for (it->Seek(IndexKey(tag, after_seq + 1));
       it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (result.examined == budget) {
      more = true;
      break;
    }
    ++result.examined;
    const std::string index_key = ToString(it->key());
    if (index_key.size() != prefix.size() + 8) {
      return Fail(Status::DataLoss("corrupt history index entry"));
    }
    const uint64_t seq =
        ReadBigEndian64(std::string_view(index_key).substr(prefix.size()));
    result.next_after_seq = seq;
    auto slot = IndexSlot(ToString(it->value()));
    if (!slot) return Fail(Status::DataLoss("corrupt history index entry"));
    auto value = Get(db_, read, EventKey(seq), "reading history event");
    if (!value.has_value()) return Fail(value.error());
    if (!value->has_value()) continue;  // Pruned and folded.
    auto stored = DecodeStoredEvent(**value);
    if (!stored.has_value()) return Fail(stored.error());
    if (stored->seq != seq) return failed();
    if (stored->is_stub) continue;  // Pruned: nothing sealed is left.
    auto event = DecodeEvent(stored->event_bytes);
    if (!event.has_value()) return Fail(event.error());
    if (event->header.seq != seq || *slot >= event->sealed_parts.size()) {
      return failed();
    }
    const std::string ad = PartAd(
        seq, *slot,
        kj::ArrayPtr<const kj::byte>(
            reinterpret_cast<const kj::byte*>(event->canonical_header.data()),
            event->canonical_header.size()));
    std::string& sealed = event->sealed_parts[*slot];
    auto plain = crypto::Open(from, AsBytes(sealed), AsBytes(ad));
    if (!plain.has_value()) {
      // Sealed under `to` already (staged during the re-key, or re-sealed
      // by an earlier, interrupted pass).
      auto current = crypto::Open(to, AsBytes(sealed), AsBytes(ad));
      if (!current.has_value()) return failed();
      crypto::Wipe(*current);
      continue;
    }
    const bool committed = crypto::ConstantTimeEquals(
        PartCommitment(audit_key_, seq, *slot, *plain),
        event->commitments[*slot]);
    if (!committed) {
      crypto::Wipe(*plain);
      return failed();
    }
    std::vector<uint8_t> resealed = crypto::Seal(to, *plain, AsBytes(ad));
    crypto::Wipe(*plain);
    result.replaced.emplace_back(sealed.begin(), sealed.end());
    sealed.assign(AsStringView(resealed));

    // The header is copied from the stored bytes, so its canonical form,
    // and with the commitments the digest and the link, stay as they were.
    auto reencoded = Decode<hs::Event>(
        stored->event_bytes, "history event",
        [&](hs::Event::Reader r) -> Result<std::string> {
          return EncodeEvent(r.getHeader(), event->sealed_parts,
                             event->commitments);
        });
    if (!reencoded.has_value()) return Fail(reencoded.error());
    StoredEventValue rewritten;
    rewritten.seq = seq;
    rewritten.link = stored->link;
    rewritten.event_bytes = std::move(*reencoded);
    rewritten.mac = EventMac(audit_key_, seq, rewritten.event_bytes);
    batch.Put(EventKey(seq), EncodeStoredEvent(rewritten));
    result.rewritten_seqs.push_back(seq);
    ++result.resealed;
  }
  CUSTOS_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading history index"));
  if (!more) result.next_after_seq = 0;
  return result;
}

Result<History::IndexedParts> History::PartsOf(uint64_t seq) const {
  IndexedParts parts;
  const leveldb::ReadOptions read;
  const Status unauthenticated =
      Status::DataLoss("the index entries of history event " +
                       std::to_string(seq) + " do not authenticate");
  // The event's link and number of parts: the entries must be its own,
  // every part accounted for, each entry's MAC bound to the link (as
  // Verify checks them). A made-up entry must not turn an event about no
  // subject into one a sweep prunes (a review, helper-126).
  auto value = Get(db_, read, EventKey(seq), "reading history event");
  if (!value.has_value()) return Fail(value.error());
  if (!value->has_value()) return parts;  // Pruned and folded.
  auto stored = DecodeStoredEvent(**value);
  if (!stored.has_value() || stored->seq != seq) return Fail(unauthenticated);
  if (stored->is_stub) return parts;
  auto event = DecodeEvent(stored->event_bytes);
  if (!event.has_value() || event->header.seq != seq) {
    return Fail(unauthenticated);
  }
  std::unique_ptr<leveldb::Iterator> reverse_it(db_.NewIterator(read));
  std::unique_ptr<leveldb::Iterator> dropped_it(db_.NewIterator(read));
  reverse_it->Seek(ReversePrefix(seq));
  dropped_it->Seek(keys::HistoryDroppedPrefix(seq));
  auto index = ReadPartIndex(*reverse_it, *dropped_it, read, seq, stored->link,
                             event->sealed_parts.size());
  if (!index) return Fail(index.error());
  if (!index->intact) return Fail(unauthenticated);
  for (const std::optional<Digest>& tag : index->tag_of) {
    if (tag) parts.tags.push_back(*tag);
  }
  parts.dropped = index->dropped;
  return parts;
}

Result<History::PartIndex> History::ReadPartIndex(
    leveldb::Iterator& reverse_it, leveldb::Iterator& dropped_it,
    const leveldb::ReadOptions& read, uint64_t seq, const Digest& link,
    size_t parts) const {
  PartIndex index;
  index.tag_of.resize(parts);
  std::vector<bool> covered(parts, false);
  const std::string reverse = ReversePrefix(seq);
  for (; reverse_it.Valid() && reverse_it.key().starts_with(reverse);
       reverse_it.Next()) {
    const std::string key = ToString(reverse_it.key());
    if (key.size() != reverse.size() + kDigestSize) {
      index.intact = false;
      continue;
    }
    Digest tag;
    std::memcpy(tag.data(), key.data() + reverse.size(), kDigestSize);
    auto value = Get(db_, read, IndexKey(tag, seq), "reading history index");
    if (!value.has_value()) return Fail(value.error());
    auto slot = value->has_value() ? IndexSlot(**value) : std::nullopt;
    if (!slot || *slot >= parts || covered[*slot] ||
        !crypto::ConstantTimeEquals(
            IndexEntryMac(audit_key_, tag, seq, *slot, link),
            AsBytes(std::string_view(**value).substr(4)))) {
      index.intact = false;
      continue;
    }
    covered[*slot] = true;
    index.tag_of[*slot] = tag;
  }
  CUSTOS_RETURN_IF_ERROR(
      FromLevelDb(reverse_it.status(), "reading history index"));
  const std::string dropped = keys::HistoryDroppedPrefix(seq);
  for (; dropped_it.Valid() && dropped_it.key().starts_with(dropped);
       dropped_it.Next()) {
    const std::string key = ToString(dropped_it.key());
    auto slot = key.size() == dropped.size() + 4
                    ? DecodeSlot(std::string_view(key).substr(dropped.size()))
                    : std::nullopt;
    if (!slot || *slot >= parts || covered[*slot] ||
        !crypto::ConstantTimeEquals(
            IndexDroppedMac(audit_key_, seq, *slot, link),
            AsBytes(ToString(dropped_it.value())))) {
      index.intact = false;
      continue;
    }
    covered[*slot] = true;
    ++index.dropped;
  }
  CUSTOS_RETURN_IF_ERROR(
      FromLevelDb(dropped_it.status(), "reading history index"));
  for (bool c : covered) index.intact = index.intact && c;
  return index;
}

Status History::ForEachIndexed(
    const Digest& tag,
    const std::function<bool(const EventHeader&)>& each) const {
  const leveldb::ReadOptions read;
  const std::string prefix = IndexPrefix(tag);
  const Status authentication_failed =
      Status::DataLoss("an access-history event failed to authenticate");
  std::unique_ptr<leveldb::Iterator> it(db_.NewIterator(read));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    if (it->key().size() != prefix.size() + 8) {
      return Status::DataLoss("corrupt history index entry");
    }
    const uint64_t seq =
        ReadBigEndian64(std::string_view(it->key().data(), it->key().size())
                            .substr(prefix.size()));
    auto value = Get(db_, read, EventKey(seq), "reading history event");
    if (!value.has_value()) return value.error();
    if (!value->has_value()) continue;  // Pruned and folded.
    auto stored = DecodeStoredEvent(**value);
    if (!stored.has_value() || stored->seq != seq) return authentication_failed;
    if (stored->is_stub) continue;  // Pruned.
    auto event = DecodeEvent(stored->event_bytes);
    if (!event.has_value() || event->header.seq != seq ||
        !crypto::ConstantTimeEquals(
            EventMac(audit_key_, seq, stored->event_bytes), stored->mac)) {
      return authentication_failed;
    }
    if (!each(event->header)) return Status::Ok();
  }
  return FromLevelDb(it->status(), "reading history index");
}

Result<PruneResult> History::Prune(
    const std::function<bool(const EventHeader&)>& prunable, size_t budget,
    uint64_t after_seq) {
  leveldb::WriteBatch batch;
  auto result = Prune(prunable, budget, after_seq, batch);
  if (!result) return result;
  if (result->stubbed == 0 && result->collapsed == 0) return result;
  leveldb::WriteOptions write;
  write.sync = options_.sync_writes;
  CUSTOS_RETURN_IF_ERROR(
      FromLevelDb(db_.Write(write, &batch), "pruning history"));
  return result;
}

Result<PruneResult> History::Prune(
    const std::function<bool(const EventHeader&)>& prunable, size_t budget,
    uint64_t after_seq, leveldb::WriteBatch& batch) {
  PruneResult result;
  const Head head = this->head();
  const leveldb::ReadOptions read;

  auto stored_checkpoint =
      Get(db_, read, kCheckpointKey, "reading history checkpoint");
  if (!stored_checkpoint.has_value()) return Fail(stored_checkpoint.error());
  uint64_t start_seq = 1;
  Digest start_link = crypto::kChainGenesis;
  if (stored_checkpoint->has_value()) {
    auto checkpoint = DecodeCheckpoint(**stored_checkpoint);
    if (!checkpoint.has_value()) return Fail(checkpoint.error());
    if (checkpoint->next_seq == 0 ||
        !crypto::ConstantTimeEquals(
            CheckpointMac(audit_key_, checkpoint->next_seq, checkpoint->link),
            checkpoint->mac)) {
      return Fail(
          Status::DataLoss("the history checkpoint failed to authenticate"));
    }
    start_seq = checkpoint->next_seq;
    start_link = checkpoint->link;
  }

  struct Stub {
    Digest digest;
    Digest link;
  };
  std::map<uint64_t, Stub> stubbed;  // In this call; not yet in the DB.

  // Stub the prunable events.
  {
    const uint64_t from = std::max(
        start_seq, after_seq == UINT64_MAX ? UINT64_MAX : after_seq + 1);
    size_t examined = 0;
    std::unique_ptr<leveldb::Iterator> it(db_.NewIterator(read));
    for (it->Seek(EventKey(from));
         it->Valid() && it->key().starts_with(ToSlice(kEventPrefix));
         it->Next()) {
      if (it->key().size() != kEventKeySize) {
        return Fail(Status::DataLoss("corrupt history event key"));
      }
      const uint64_t seq = SeqOfEventKey(ToString(it->key()));
      if (seq > head.last_seq) break;
      if (examined == budget) {
        result.next_after_seq = seq - 1;
        break;
      }
      ++examined;
      ++result.examined;
      // The decision is made on the header: it must be the one written.
      // (A stub made of an altered event would carry the alteration's
      // digest.) One that does not decode or fails its MAC is kept, and
      // said, and the rest pruned: one bad event must not stop retention.
      auto stored = DecodeStoredEvent(ToString(it->value()));
      if (!stored.has_value() || stored->seq != seq) {
        result.unauthenticated.push_back(seq);
        continue;
      }
      if (stored->is_stub) continue;
      auto event = DecodeEvent(stored->event_bytes);
      if (!event.has_value() ||
          !crypto::ConstantTimeEquals(
              EventMac(audit_key_, seq, stored->event_bytes), stored->mac) ||
          event->header.seq != seq) {
        result.unauthenticated.push_back(seq);
        continue;
      }
      if (!prunable(event->header)) continue;

      StoredEventValue stub;
      stub.seq = seq;
      stub.link = stored->link;
      stub.is_stub = true;
      stub.stub_digest =
          EventDigest(audit_key_, event->canonical_header, event->commitments);
      batch.Put(EventKey(seq), EncodeStoredEvent(stub));
      stubbed[seq] = Stub{stub.stub_digest, stub.link};
      ++result.stubbed;

      const std::string reverse = ReversePrefix(seq);
      std::unique_ptr<leveldb::Iterator> rit(db_.NewIterator(read));
      for (rit->Seek(reverse); rit->Valid() && rit->key().starts_with(reverse);
           rit->Next()) {
        const std::string key = ToString(rit->key());
        batch.Delete(key);
        if (key.size() == reverse.size() + kDigestSize) {
          Digest tag;
          std::memcpy(tag.data(), key.data() + reverse.size(), kDigestSize);
          batch.Delete(IndexKey(tag, seq));
        }
      }
      CUSTOS_RETURN_IF_ERROR(
          FromLevelDb(rit->status(), "reading history index"));
      CUSTOS_RETURN_IF_ERROR(DeleteUnder(db_, read,
                                         keys::HistoryDroppedPrefix(seq), batch,
                                         "reading history index"));
      if (IsDisclosure(event->header.action)) {
        batch.Delete(keys::Disclosure(event->header.principal_id,
                                      ToMicros(event->header.at), seq));
        CUSTOS_RETURN_IF_ERROR(
            DeleteUnder(db_, read, keys::DisclosurePartPrefix(seq), batch,
                        "reading history disclosure index"));
      }
    }
    CUSTOS_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading history"));
  }

  // Fold the leading run of stubs into the checkpoint, verifying it first.
  {
    crypto::ChainVerifier verifier(audit_key_, start_link, start_seq);
    uint64_t expected = start_seq;
    std::unique_ptr<leveldb::Iterator> it(db_.NewIterator(read));
    for (it->Seek(EventKey(start_seq));
         result.collapsed < budget && it->Valid() &&
         it->key().starts_with(ToSlice(kEventPrefix));
         it->Next()) {
      if (it->key().size() != kEventKeySize) break;
      const uint64_t seq = SeqOfEventKey(ToString(it->key()));
      if (seq != expected) break;  // A gap: Verify reports it; stop here.
      Stub stub;
      if (auto found = stubbed.find(seq); found != stubbed.end()) {
        stub = found->second;
      } else {
        auto stored = DecodeStoredEvent(ToString(it->value()));
        if (!stored.has_value() || stored->seq != seq || !stored->is_stub) {
          break;
        }
        stub = Stub{stored->stub_digest, stored->link};
      }
      if (!verifier.Add(stub.digest, stub.link)) {
        return Fail(Status::DataLoss("the history chain is broken at " +
                                     std::to_string(seq) +
                                     "; nothing was pruned"));
      }
      batch.Delete(EventKey(seq));
      ++expected;
      ++result.collapsed;
    }
    CUSTOS_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading history"));
    if (result.collapsed > 0) {
      CheckpointValue checkpoint;
      checkpoint.next_seq = expected;
      checkpoint.link = verifier.last_link();
      checkpoint.mac = CheckpointMac(audit_key_, expected, checkpoint.link);
      batch.Put(ToSlice(kCheckpointKey), EncodeCheckpoint(checkpoint));
    }
  }

  return result;
}

}  // namespace custos
