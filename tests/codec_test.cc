// The stored forms of Custos values (storage/codec.h): every field survives
// an encode/decode round trip, and bytes that are not a valid message of
// the expected struct decode to DataLoss, never to an exception or a
// default value.

#include "storage/codec.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <kj/array.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "schema/storage.capnp.h"
#include "storage/period.h"
#include "storage/retention_policy.h"
#include "storage/sealing.h"
#include "storage/types.h"

namespace custos::codec {
namespace {

// Bytes with a NUL, high bytes and every bit pattern a sealed value or hash
// could hold.
Bytes BinaryBytes(size_t n, uint8_t seed) {
  Bytes out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(seed + 37 * i);
  out[0] = 0x00;
  if (n > 1) out[1] = 0xff;
  return out;
}

std::string AsString(const Bytes& b) { return std::string(b.begin(), b.end()); }

std::span<const uint8_t> AsSpan(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// A message with root T filled in by `fill`, as the codec stores it; lets a
// test write what the codec never would.
template <typename T, typename Fill>
std::string Build(Fill fill) {
  capnp::MallocMessageBuilder message;
  fill(message.initRoot<T>());
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()),
                     bytes.size());
}

// The number of segments a stored message has, from its segment table.
uint32_t SegmentCount(std::string_view stored) {
  uint32_t count_minus_one = 0;
  std::memcpy(&count_minus_one, stored.data(), sizeof count_minus_one);
  return count_minus_one + 1;
}

template <typename T>
std::optional<StatusCode> ErrorCode(const Result<T>& result) {
  if (result.has_value()) return std::nullopt;
  return result.error().code();
}

// Every decoder, by name, reduced to "which error, if any".
struct Decoder {
  const char* name;
  std::function<std::optional<StatusCode>(std::string_view)> decode;
};

std::vector<Decoder> AllDecoders() {
  return {
      {"FormatVersion",
       [](std::string_view b) { return ErrorCode(DecodeFormatVersion(b)); }},
      {"Principal",
       [](std::string_view b) { return ErrorCode(DecodePrincipal(b)); }},
      {"Subject",
       [](std::string_view b) { return ErrorCode(DecodeSubject(b)); }},
      {"Record", [](std::string_view b) { return ErrorCode(DecodeRecord(b)); }},
      {"Hold", [](std::string_view b) { return ErrorCode(DecodeHold(b)); }},
      {"Policy", [](std::string_view b) { return ErrorCode(DecodePolicy(b)); }},
      {"WrappedKey",
       [](std::string_view b) { return ErrorCode(DecodeWrappedKey(b)); }},
      {"Fields",
       [](std::string_view b) { return ErrorCode(DecodeFields(AsSpan(b))); }},
  };
}

Timestamp At(int64_t micros) { return FromMicros(micros); }

StoredPrincipal FullPrincipal() {
  StoredPrincipal p;
  p.info.id = "p-officer-7";
  p.info.display_name = "Officer Öberg \"7\"";
  p.info.roles = {Role::kAdmin, Role::kUser, Role::kAuditor, Role::kOfficer};
  p.info.redacted = true;
  p.info.revoked = true;
  p.info.created_at = At(1'780'000'000'123'456);
  p.credential_hash = BinaryBytes(32, 3);
  p.revoked_at_micros = 1'790'000'000'654'321;
  return p;
}

StoredSubject FullSubject() {
  StoredSubject s;
  s.id = "s-000042";
  s.blind_index = BinaryBytes(32, 5);
  s.sealed_identifier = BinaryBytes(57, 9);
  s.created_at_micros = 1'780'000'000'000'001;
  s.shredded = true;
  s.shredded_at_micros = 1'790'000'000'000'002;
  return s;
}

StoredRecord FullRecord() {
  StoredRecord r;
  r.id = std::numeric_limits<uint64_t>::max() - 5;
  r.kind = "request";
  r.owner = "p-owner";
  r.grants = {"p-grantee-1", "p-grantee-2", "p-grantee-3"};
  r.attributes = {{"country", "BE"}, {"empty", ""}, {"ref", "IMI/2026/17"}};
  r.parts = {{"s-1", 3, BinaryBytes(48, 1)},
             {"s-2", 5, BinaryBytes(64, 2)},
             {"s-3", 8, BinaryBytes(17, 4)}};
  r.sensitive = true;
  r.state = RecordState::kBlocked;
  r.version = 9;
  r.created_at_micros = 1'000'001;
  r.updated_at_micros = 2'000'002;
  r.closed_at_micros = 3'000'003;
  r.blocked_at_micros = 4'000'004;
  r.erased_at_micros = 5'000'005;
  r.flags = {{"p-grantee-1", 6'000'006, "s-1", BinaryBytes(40, 6)},
             {"p-grantee-2", 6'000'007, "s-2", BinaryBytes(41, 7)}};
  r.contests = {{"p-subject-1", 7'000'001, "s-1", BinaryBytes(60, 8)},
                {"p-subject-2", 7'000'002, "s-2", BinaryBytes(61, 9)},
                {"p-subject-3", 7'000'003, "s-3", BinaryBytes(62, 10)}};
  r.subject_ids = {"s-1", "s-2", "s-3", "s-old"};
  r.next_deadline_micros = 8'000'008;
  r.next_transition = Transition::kErase;
  return r;
}

HoldView RecordHold() {
  HoldView h;
  h.id = "h17";
  h.record_id = 4242;
  h.reason = "Case C-311/18 pending";
  h.set_by = "p-officer";
  h.set_at = At(1'780'000'000'000'000);
  h.ends_at = At(1'880'000'000'000'000);
  h.released_at = At(1'800'000'000'000'000);
  h.released_by = "p-admin";
  return h;
}

RetentionPolicy FullPolicy() {
  RetentionPolicy p;
  p.kind = "complaint";
  p.close_after = Period{.months = 18};
  p.block_after = Period{.weeks = 2, .days = 3, .hours = 4};
  p.erase_after = Period{.years = 3, .months = 12};
  p.history_after = Period{.years = 5, .minutes = 30, .seconds = 15};
  return p;
}

// --- Round trips ------------------------------------------------------------

TEST(CodecTest, FormatVersionRoundTrips) {
  for (uint32_t version : {1u, 7u, std::numeric_limits<uint32_t>::max()}) {
    auto decoded = DecodeFormatVersion(EncodeFormatInfo(version, 123'456));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
    EXPECT_EQ(*decoded, version);
  }
}

TEST(CodecTest, FormatInfoStoresItsCreationTime) {
  const std::string stored = EncodeFormatInfo(3, -1'234'567);
  kj::Array<capnp::word> words =
      kj::heapArray<capnp::word>(stored.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), stored.data(), stored.size());
  capnp::FlatArrayMessageReader reader(words);
  auto info = reader.getRoot<schema::FormatInfo>();
  EXPECT_EQ(info.getVersion(), 3u);
  EXPECT_EQ(info.getCreatedAtMicros(), -1'234'567);
}

TEST(CodecTest, PrincipalRoundTripsEveryField) {
  const StoredPrincipal in = FullPrincipal();
  auto out = DecodePrincipal(EncodePrincipal(in));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(out->info.id, in.info.id);
  EXPECT_EQ(out->info.display_name, in.info.display_name);
  EXPECT_EQ(out->info.roles, in.info.roles);
  EXPECT_TRUE(out->info.redacted);
  EXPECT_TRUE(out->info.revoked);
  EXPECT_EQ(out->info.created_at, in.info.created_at);
  EXPECT_EQ(out->credential_hash, in.credential_hash);
  EXPECT_EQ(out->revoked_at_micros, in.revoked_at_micros);
}

TEST(CodecTest, DefaultPrincipalRoundTrips) {
  auto out = DecodePrincipal(EncodePrincipal(StoredPrincipal{}));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(out->info.id, "");
  EXPECT_TRUE(out->info.roles.empty());
  EXPECT_FALSE(out->info.redacted);
  EXPECT_FALSE(out->info.revoked);
  EXPECT_EQ(out->info.created_at, At(0));
  EXPECT_TRUE(out->credential_hash.empty());
  EXPECT_EQ(out->revoked_at_micros, 0);
}

// A role a newer writer added grants nothing here; the known roles stay.
TEST(CodecTest, UnknownStoredRoleIsDropped) {
  const std::string stored = Build<schema::Principal>([](auto p) {
    p.setId("p-1");
    auto roles = p.initRoles(3);
    roles.set(0, schema::Role::AUDITOR);
    roles.set(1, static_cast<schema::Role>(9));
    roles.set(2, schema::Role::USER);
  });
  auto out = DecodePrincipal(stored);
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(out->info.roles, (std::vector<Role>{Role::kAuditor, Role::kUser}));
}

TEST(CodecTest, SubjectRoundTripsEveryField) {
  const StoredSubject in = FullSubject();
  auto out = DecodeSubject(EncodeSubject(in));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(out->id, in.id);
  EXPECT_EQ(out->blind_index, in.blind_index);
  EXPECT_EQ(out->sealed_identifier, in.sealed_identifier);
  EXPECT_EQ(out->created_at_micros, in.created_at_micros);
  EXPECT_TRUE(out->shredded);
  EXPECT_EQ(out->shredded_at_micros, in.shredded_at_micros);
}

TEST(CodecTest, UnshreddedSubjectStaysUnshredded) {
  StoredSubject in = FullSubject();
  in.shredded = false;
  in.shredded_at_micros = 0;
  auto out = DecodeSubject(EncodeSubject(in));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_FALSE(out->shredded);
  EXPECT_EQ(out->shredded_at_micros, 0);
}

void ExpectSameRecord(const StoredRecord& out, const StoredRecord& in) {
  EXPECT_EQ(out.id, in.id);
  EXPECT_EQ(out.kind, in.kind);
  EXPECT_EQ(out.owner, in.owner);
  EXPECT_EQ(out.grants, in.grants);
  EXPECT_EQ(out.attributes, in.attributes);
  ASSERT_EQ(out.parts.size(), in.parts.size());
  for (size_t i = 0; i < in.parts.size(); ++i) {
    SCOPED_TRACE("part " + std::to_string(i));
    EXPECT_EQ(out.parts[i].subject_id, in.parts[i].subject_id);
    EXPECT_EQ(out.parts[i].version, in.parts[i].version);
    EXPECT_EQ(out.parts[i].sealed, in.parts[i].sealed);
  }
  EXPECT_EQ(out.sensitive, in.sensitive);
  EXPECT_EQ(out.state, in.state);
  EXPECT_EQ(out.version, in.version);
  EXPECT_EQ(out.created_at_micros, in.created_at_micros);
  EXPECT_EQ(out.updated_at_micros, in.updated_at_micros);
  EXPECT_EQ(out.closed_at_micros, in.closed_at_micros);
  EXPECT_EQ(out.blocked_at_micros, in.blocked_at_micros);
  EXPECT_EQ(out.erased_at_micros, in.erased_at_micros);
  ASSERT_EQ(out.flags.size(), in.flags.size());
  for (size_t i = 0; i < in.flags.size(); ++i) {
    SCOPED_TRACE("flag " + std::to_string(i));
    EXPECT_EQ(out.flags[i].by, in.flags[i].by);
    EXPECT_EQ(out.flags[i].at_micros, in.flags[i].at_micros);
    EXPECT_EQ(out.flags[i].subject_id, in.flags[i].subject_id);
    EXPECT_EQ(out.flags[i].sealed_note, in.flags[i].sealed_note);
  }
  ASSERT_EQ(out.contests.size(), in.contests.size());
  for (size_t i = 0; i < in.contests.size(); ++i) {
    SCOPED_TRACE("contest " + std::to_string(i));
    EXPECT_EQ(out.contests[i].by, in.contests[i].by);
    EXPECT_EQ(out.contests[i].at_micros, in.contests[i].at_micros);
    EXPECT_EQ(out.contests[i].subject_id, in.contests[i].subject_id);
    EXPECT_EQ(out.contests[i].sealed_statement,
              in.contests[i].sealed_statement);
  }
  EXPECT_EQ(out.subject_ids, in.subject_ids);
  EXPECT_EQ(out.next_deadline_micros, in.next_deadline_micros);
  EXPECT_EQ(out.next_transition, in.next_transition);
}

TEST(CodecTest, RecordRoundTripsEveryField) {
  const StoredRecord in = FullRecord();
  auto out = DecodeRecord(EncodeRecord(in));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  ExpectSameRecord(*out, in);
}

TEST(CodecTest, RecordRoundTripsEveryStateAndTransition) {
  for (RecordState state : {RecordState::kActive, RecordState::kClosed,
                            RecordState::kBlocked, RecordState::kErased}) {
    for (Transition transition : {Transition::kNone, Transition::kClose,
                                  Transition::kBlock, Transition::kErase}) {
      SCOPED_TRACE("state " + std::to_string(static_cast<int>(state)) +
                   ", transition " +
                   std::to_string(static_cast<int>(transition)));
      StoredRecord in = FullRecord();
      in.state = state;
      in.next_transition = transition;
      auto out = DecodeRecord(EncodeRecord(in));
      ASSERT_TRUE(out.has_value()) << out.error().ToString();
      EXPECT_EQ(out->state, state);
      EXPECT_EQ(out->next_transition, transition);
    }
  }
}

TEST(CodecTest, EmptyRecordRoundTrips) {
  const StoredRecord in;
  auto out = DecodeRecord(EncodeRecord(in));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  ExpectSameRecord(*out, in);
}

// A value larger than the builder's first segment spans several segments;
// the stored form and the decoder must handle that.
TEST(CodecTest, LargeRecordSpansSegmentsAndRoundTrips) {
  StoredRecord in = FullRecord();
  in.parts[1].sealed = BinaryBytes(20'000, 11);
  in.attributes.push_back({"long", std::string(5'000, 'x')});
  const std::string stored = EncodeRecord(in);
  ASSERT_GT(SegmentCount(stored), 1u);
  auto out = DecodeRecord(stored);
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  ExpectSameRecord(*out, in);
}

TEST(CodecTest, UnknownStoredRecordStateIsDataLoss) {
  const std::string stored = Build<schema::Record>([](auto r) {
    r.setId(1);
    r.setKind("request");
    r.setState(static_cast<schema::State>(4));
  });
  auto out = DecodeRecord(stored);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code(), StatusCode::kDataLoss);
}

TEST(CodecTest, UnknownStoredTransitionIsDataLoss) {
  const std::string stored = Build<schema::Record>([](auto r) {
    r.setId(1);
    r.setKind("request");
    r.setNextTransition(static_cast<schema::Transition>(4));
  });
  auto out = DecodeRecord(stored);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code(), StatusCode::kDataLoss);

  // The same message with a known transition decodes.
  const std::string known = Build<schema::Record>([](auto r) {
    r.setId(1);
    r.setKind("request");
    r.setNextTransition(schema::Transition::ERASE);
  });
  auto decoded = DecodeRecord(known);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(decoded->next_transition, Transition::kErase);
}

void ExpectSameHold(const HoldView& out, const HoldView& in) {
  EXPECT_EQ(out.id, in.id);
  EXPECT_EQ(out.record_id, in.record_id);
  EXPECT_EQ(out.subject_id, in.subject_id);
  EXPECT_EQ(out.reason, in.reason);
  EXPECT_EQ(out.set_by, in.set_by);
  EXPECT_EQ(out.set_at, in.set_at);
  EXPECT_EQ(out.ends_at, in.ends_at);
  EXPECT_EQ(out.released_at, in.released_at);
  EXPECT_EQ(out.released_by, in.released_by);
}

TEST(CodecTest, ReleasedRecordHoldRoundTrips) {
  const HoldView in = RecordHold();
  auto out = DecodeHold(EncodeHold(in));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  ExpectSameHold(*out, in);
  EXPECT_EQ(out->record_id, std::optional<uint64_t>(4242));
  EXPECT_EQ(out->subject_id, std::nullopt);
}

TEST(CodecTest, UnreleasedSubjectHoldRoundTripsWithAbsentFields) {
  HoldView in = RecordHold();
  in.record_id.reset();
  in.subject_id = "s-000042";
  in.released_at.reset();
  in.released_by.clear();
  auto out = DecodeHold(EncodeHold(in));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  ExpectSameHold(*out, in);
  EXPECT_EQ(out->record_id, std::nullopt);
  EXPECT_EQ(out->subject_id, std::optional<std::string>("s-000042"));
  EXPECT_EQ(out->released_at, std::nullopt);
}

TEST(CodecTest, PolicyRoundTripsEveryPeriod) {
  const RetentionPolicy in = FullPolicy();
  auto out = DecodePolicy(EncodePolicy(in));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(*out, in);
  // Not normalised: eighteen months stay months, P3Y12M is not P4Y.
  EXPECT_EQ(out->close_after, (Period{.months = 18}));
  EXPECT_EQ(out->erase_after, (Period{.years = 3, .months = 12}));
}

// The instant a policy was set goes with it; a value without one (stored
// before 2026-12-07, or a shipped default) reads as 0.
TEST(CodecTest, PolicyRoundTripsTheInstantItWasSet) {
  const RetentionPolicy in = FullPolicy();
  int64_t set_at = -1;
  auto out = DecodePolicy(EncodePolicy(in, 1801234567000000), &set_at);
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(*out, in);
  EXPECT_EQ(set_at, 1801234567000000);
  out = DecodePolicy(EncodePolicy(in), &set_at);
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(set_at, 0);
}

TEST(CodecTest, PolicyWithoutOptionalPeriodsRoundTrips) {
  RetentionPolicy in = FullPolicy();
  in.close_after.reset();
  in.block_after.reset();
  auto out = DecodePolicy(EncodePolicy(in));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(*out, in);
  EXPECT_EQ(out->close_after, std::nullopt);
  EXPECT_EQ(out->block_after, std::nullopt);
}

TEST(CodecTest, DefaultPoliciesRoundTrip) {
  for (const RetentionPolicy& in : DefaultPolicies()) {
    SCOPED_TRACE(in.kind);
    auto out = DecodePolicy(EncodePolicy(in));
    ASSERT_TRUE(out.has_value()) << out.error().ToString();
    EXPECT_EQ(*out, in);
  }
}

std::string StoredPolicy(std::string_view close_after,
                         std::string_view block_after,
                         std::string_view erase_after,
                         std::string_view history_after) {
  auto text = [](std::string_view s) {
    return capnp::Text::Reader(s.data(), s.size());
  };
  return Build<schema::Policy>([&](auto p) {
    p.setKind("request");
    p.setCloseAfter(text(close_after));
    p.setBlockAfter(text(block_after));
    p.setEraseAfter(text(erase_after));
    p.setHistoryAfter(text(history_after));
  });
}

TEST(CodecTest, HandWrittenPolicyDecodes) {
  // The control for the malformed cases below.
  auto out = DecodePolicy(StoredPolicy("P1Y", "P6M", "P3Y", "P5Y"));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(out->kind, "request");
  EXPECT_EQ(out->close_after, (Period{.years = 1}));
  EXPECT_EQ(out->block_after, (Period{.months = 6}));
  EXPECT_EQ(out->erase_after, (Period{.years = 3}));
  EXPECT_EQ(out->history_after, (Period{.years = 5}));
}

TEST(CodecTest, MalformedStoredPeriodIsDataLoss) {
  const std::vector<std::string> malformed = {"P6X",  "6M",  "P-1Y", "P1.5Y",
                                              " P6M", "p6m", "PT",   "P10001Y"};
  for (const std::string& bad : malformed) {
    SCOPED_TRACE("'" + bad + "'");
    for (int field = 0; field < 4; ++field) {
      SCOPED_TRACE("field " + std::to_string(field));
      std::vector<std::string> periods = {"P1Y", "P6M", "P3Y", "P5Y"};
      periods[field] = bad;
      auto out = DecodePolicy(
          StoredPolicy(periods[0], periods[1], periods[2], periods[3]));
      ASSERT_FALSE(out.has_value());
      EXPECT_EQ(out.error().code(), StatusCode::kDataLoss);
    }
  }
}

// "" means absent, which close_after and block_after may be and
// erase_after and history_after may not.
TEST(CodecTest, MissingRequiredStoredPeriodIsDataLoss) {
  auto no_erase = DecodePolicy(StoredPolicy("", "", "", "P5Y"));
  ASSERT_FALSE(no_erase.has_value());
  EXPECT_EQ(no_erase.error().code(), StatusCode::kDataLoss);

  auto no_history = DecodePolicy(StoredPolicy("", "", "P3Y", ""));
  ASSERT_FALSE(no_history.has_value());
  EXPECT_EQ(no_history.error().code(), StatusCode::kDataLoss);

  auto optional_absent = DecodePolicy(StoredPolicy("", "", "P3Y", "P5Y"));
  ASSERT_TRUE(optional_absent.has_value())
      << optional_absent.error().ToString();
  EXPECT_EQ(optional_absent->close_after, std::nullopt);
  EXPECT_EQ(optional_absent->block_after, std::nullopt);
}

TEST(CodecTest, WrappedKeyRoundTrips) {
  const StoredWrappedKey in{std::numeric_limits<uint32_t>::max() - 1,
                            BinaryBytes(72, 13)};
  auto out = DecodeWrappedKey(EncodeWrappedKey(in));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(out->kek_version, in.kek_version);
  EXPECT_EQ(out->wrapped, in.wrapped);
}

schema::LedgerEntry::Reader ReadLedgerEntry(
    const std::string& stored, kj::Array<capnp::word>& words,
    std::optional<capnp::FlatArrayMessageReader>& reader) {
  words = kj::heapArray<capnp::word>(stored.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), stored.data(), stored.size());
  reader.emplace(words);
  return reader->getRoot<schema::LedgerEntry>();
}

TEST(CodecTest, LedgerEntryStoresTimeAndShredder) {
  const std::string stored = EncodeLedgerEntry(1'790'000'000'000'009, "p-adm");
  kj::Array<capnp::word> words;
  std::optional<capnp::FlatArrayMessageReader> reader;
  auto entry = ReadLedgerEntry(stored, words, reader);
  EXPECT_EQ(entry.getShreddedAtMicros(), 1'790'000'000'000'009);
  EXPECT_EQ(std::string_view(entry.getBy().cStr(), entry.getBy().size()),
            "p-adm");
}

// EncodeLedgerEntry takes a string_view; Cap'n Proto's Text::Reader needs a
// NUL after its bytes, checked (by throwing kj::Exception out of storage/)
// in KJ_DEBUG builds. Regression test: the view is copied first; this threw
// in the ASan (Debug) build before.
TEST(CodecTest, LedgerEntryTakesAByThatIsNotNulTerminated) {
  const std::string buffer = "p-admin-and-more";
  const std::string stored =
      EncodeLedgerEntry(5, std::string_view(buffer).substr(0, 7));
  kj::Array<capnp::word> words;
  std::optional<capnp::FlatArrayMessageReader> reader;
  auto entry = ReadLedgerEntry(stored, words, reader);
  EXPECT_EQ(std::string_view(entry.getBy().cStr(), entry.getBy().size()),
            "p-admin");
}

TEST(CodecTest, FieldsRoundTripInOrder) {
  const std::vector<Field> in = {
      {"name", "Anna Šimková"},
      {"email", "anna@example.eu"},
      {"empty", ""},
      {"", "value without a name"},
      {"binary", std::string("\0\x01\xff\xfe\x80 z\0", 8)},
  };
  ASSERT_EQ(in[4].value.size(), 8u);
  auto out = DecodeFields(EncodeFields(in));
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(*out, in);
}

TEST(CodecTest, NoFieldsRoundTripToNoFields) {
  const Bytes stored = EncodeFields({});
  EXPECT_FALSE(stored.empty());
  auto out = DecodeFields(stored);
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_TRUE(out->empty());
}

TEST(CodecTest, LargeFieldsSpanSegmentsAndRoundTrip) {
  std::vector<Field> in;
  for (int i = 0; i < 20; ++i) {
    in.push_back({'f' + std::to_string(i),
                  std::string(1'000 + i, static_cast<char>('a' + i))});
  }
  const Bytes stored = EncodeFields(in);
  ASSERT_GT(SegmentCount(AsString(stored)), 1u);
  auto out = DecodeFields(stored);
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(*out, in);
}

// --- Corruption -------------------------------------------------------------

// One valid stored message for each decoder, in AllDecoders() order.
std::vector<std::string> ValidMessages() {
  return {
      EncodeFormatInfo(2, 1'000),
      EncodePrincipal(FullPrincipal()),
      EncodeSubject(FullSubject()),
      EncodeRecord(FullRecord()),
      EncodeHold(RecordHold()),
      EncodePolicy(FullPolicy()),
      EncodeWrappedKey({4, BinaryBytes(72, 1)}),
      AsString(EncodeFields({{"name", "Anna"}, {"note", "x"}})),
  };
}

TEST(CodecTest, ValidMessagesDecode) {
  // The control for the corruption tests: each message they damage is
  // accepted intact.
  const auto decoders = AllDecoders();
  const auto messages = ValidMessages();
  ASSERT_EQ(decoders.size(), messages.size());
  for (size_t i = 0; i < decoders.size(); ++i) {
    SCOPED_TRACE(decoders[i].name);
    EXPECT_EQ(decoders[i].decode(messages[i]), std::nullopt);
  }
}

TEST(CodecTest, EmptyBytesAreDataLoss) {
  for (const Decoder& d : AllDecoders()) {
    SCOPED_TRACE(d.name);
    EXPECT_EQ(d.decode(""), StatusCode::kDataLoss);
  }
}

TEST(CodecTest, GarbageIsDataLoss) {
  const std::vector<std::string> garbage = {
      "not a capnp message",    // Not a whole number of words.
      std::string(8, '\0'),     // One segment of zero words: no root.
      std::string(64, '\0'),    // Likewise, with trailing zeros.
      std::string(64, '\xff'),  // 2^32 segments.
      std::string(64, '\xab'),  // Segment sizes far past the end.
      std::string("\0\0\0\0\x10\0\0\0", 8) + std::string(128, '\x5a'),
  };
  for (const Decoder& d : AllDecoders()) {
    SCOPED_TRACE(d.name);
    for (size_t g = 0; g < garbage.size(); ++g) {
      SCOPED_TRACE("garbage " + std::to_string(g));
      EXPECT_EQ(d.decode(garbage[g]), StatusCode::kDataLoss);
    }
  }
}

TEST(CodecTest, TruncatedMessageIsDataLoss) {
  const auto decoders = AllDecoders();
  const auto messages = ValidMessages();
  for (size_t i = 0; i < decoders.size(); ++i) {
    SCOPED_TRACE(decoders[i].name);
    for (size_t length = 0; length < messages[i].size(); ++length) {
      SCOPED_TRACE("length " + std::to_string(length));
      EXPECT_EQ(
          decoders[i].decode(std::string_view(messages[i]).substr(0, length)),
          StatusCode::kDataLoss);
    }
  }
}

TEST(CodecTest, TruncatedRecordIsDataLoss) {
  // Every prefix of a multi-segment record, including those that end on a
  // segment boundary.
  StoredRecord in = FullRecord();
  in.parts[0].sealed = BinaryBytes(4'000, 3);
  const std::string stored = EncodeRecord(in);
  ASSERT_GT(SegmentCount(stored), 1u);
  for (size_t length = 0; length < stored.size(); ++length) {
    auto out = DecodeRecord(std::string_view(stored).substr(0, length));
    ASSERT_FALSE(out.has_value()) << "length " << length;
    ASSERT_EQ(out.error().code(), StatusCode::kDataLoss) << "length " << length;
  }
}

TEST(CodecTest, TextWithoutItsTerminatorIsDataLoss) {
  // Cap'n Proto stores Text with a trailing NUL; a value whose NUL was
  // overwritten is corrupt, not a longer string.
  std::string stored = EncodeSubject(FullSubject());
  const std::string id = FullSubject().id;
  const size_t at = stored.find(id + '\0');
  ASSERT_NE(at, std::string::npos);
  stored[at + id.size()] = 'x';
  auto out = DecodeSubject(stored);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code(), StatusCode::kDataLoss);
}

// Cap'n Proto messages carry no type tag, so a message of one struct is
// often a valid message of another (every pointer field absent or of a
// compatible shape): a FormatInfo, which has no pointers, decodes as any
// struct whose fields may all be empty. These pairs are the ones whose
// layouts conflict (e.g. a Data where a List(Text) or a struct list is
// expected, or periods that do not parse), so the decoder can and must
// say DataLoss. (PersonalFields has no such pair here: its only field is a
// struct list at pointer 0, and Cap'n Proto reads the Text or Data every
// other struct keeps there as a list of empty structs.)
TEST(CodecTest, MessageOfAnotherStructIsDataLoss) {
  const std::string format = EncodeFormatInfo(2, 1'000);
  const std::string principal = EncodePrincipal(FullPrincipal());
  const std::string subject = EncodeSubject(FullSubject());
  const std::string record = EncodeRecord(FullRecord());
  const std::string hold = EncodeHold(RecordHold());
  const std::string wrapped = EncodeWrappedKey({4, BinaryBytes(72, 1)});
  const std::string fields = AsString(EncodeFields({{"name", "Anna"}}));

  struct Case {
    const char* what;
    std::optional<StatusCode> code;
  };
  const std::vector<Case> cases = {
      {"subject as principal", ErrorCode(DecodePrincipal(subject))},
      {"record as principal", ErrorCode(DecodePrincipal(record))},
      {"wrapped key as principal", ErrorCode(DecodePrincipal(wrapped))},
      {"principal as subject", ErrorCode(DecodeSubject(principal))},
      {"record as subject", ErrorCode(DecodeSubject(record))},
      {"fields as subject", ErrorCode(DecodeSubject(fields))},
      {"principal as record", ErrorCode(DecodeRecord(principal))},
      {"subject as record", ErrorCode(DecodeRecord(subject))},
      {"hold as record", ErrorCode(DecodeRecord(hold))},
      {"fields as record", ErrorCode(DecodeRecord(fields))},
      {"principal as hold", ErrorCode(DecodeHold(principal))},
      {"record as hold", ErrorCode(DecodeHold(record))},
      {"format info as policy", ErrorCode(DecodePolicy(format))},
      {"hold as policy", ErrorCode(DecodePolicy(hold))},
      {"record as policy", ErrorCode(DecodePolicy(record))},
      {"fields as wrapped key", ErrorCode(DecodeWrappedKey(fields))},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.code, StatusCode::kDataLoss) << c.what;
  }
}

}  // namespace
// Known answers: the associated data every stored ciphertext of a record
// and every subject's sealed identifier is bound to. A change of one byte
// would make every existing ciphertext fail to open, so the expected
// bytes are spelt out here, not computed by the code under test.
TEST(SealingAdTest, TheAssociatedDataIsAKnownAnswer) {
  auto bytes = [](std::string_view s) { return Bytes(s.begin(), s.end()); };
  EXPECT_EQ(sealing::PartAd(0x0102030405060708, "s0a", 9),
            bytes(std::string_view("custos-part-v1\0"
                                   "\x01\x02\x03\x04\x05\x06\x07\x08"
                                   "\0\0\0\0\0\0\0\x09"
                                   "s0a",
                                   34)));
  EXPECT_EQ(sealing::NoteAd("flag", 7, "s1", -2),
            bytes(std::string_view("custos-flag-v1\0"
                                   "\0\0\0\0\0\0\0\x07"
                                   "\xff\xff\xff\xff\xff\xff\xff\xfe"
                                   "s1",
                                   33)));
  EXPECT_EQ(sealing::IdentifierAd("s2b"),
            bytes(std::string_view("custos-subject-identifier-v1\0s2b", 32)));
  EXPECT_EQ(sealing::IdentifierAd(""),
            bytes(std::string_view("custos-subject-identifier-v1\0", 29)));
}

}  // namespace custos::codec
