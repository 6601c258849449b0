// Issue 9, items 3 and 10: no single record or policy stops retention
// store-wide, and every per-call cost a caller controls is bounded. Each
// test is a regression test: it failed on the code before the fix (the
// failure seen is noted above it).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <leveldb/db.h>

#include <algorithm>
#include <string>
#include <vector>

#include "storage/codec.h"
#include "storage/events.h"
#include "storage/keys.h"
#include "storage/limits.h"
#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;

class RetentionBoundsTest : public EngineTest {
 protected:
  // Reopens the engine with `limits` instead of the defaults.
  void ReopenWith(const Limits& limits) {
    engine_.reset();
    Options options = MakeOptions();
    options.limits = limits;
    auto engine = Engine::Open(options, MasterKey());
    ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
    engine_ = std::move(*engine);
  }

  uint64_t CreateOfKind(const std::string& kind,
                        const std::string& identifier = "anna@example.org") {
    NewRecord r;
    r.kind = kind;
    r.personal = {{identifier, {{"name", "Anna"}}}};
    auto id = engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(id.has_value()) << id.error().ToString();
    return id.value_or(0);
  }

  // A closed alert; erasure is due on 2027-02-28 12:00.
  uint64_t ClosedAlert() {
    const uint64_t id = CreateOfKind("alert");
    EXPECT_TRUE(engine_->Close(*owner_, id).ok());
    return id;
  }

  Result<SweepReport> SweepAt(Timestamp as_of, size_t max_records = SIZE_MAX) {
    SweepOptions options;
    options.as_of = as_of;
    // A sweep writes only what is in force: the clock moves there first.
    if (as_of > clock_.Now()) clock_.Set(as_of);
    options.max_records = max_records;
    return engine_->Sweep(*admin_, options);
  }

  RecordState StateOf(uint64_t id) {
    auto view = engine_->GetRecord(*admin_, id);
    EXPECT_TRUE(view.has_value()) << view.error().ToString();
    return view ? view->state : RecordState::kActive;
  }

  std::string SubjectOf(uint64_t id) {
    return engine_->GetRecord(*owner_, id)->subject_ids.at(0);
  }

  // How many deadline-index entries the store holds (engine closed and
  // reopened around the count).
  int DeadlineEntries() {
    Close();
    int n = 0;
    {
      std::unique_ptr<leveldb::DB> db = OpenRaw("records");
      n = CountKeys(*db, keys::kDeadlinePrefix);
    }
    Reopen();
    return n;
  }

  static std::string Bytes(size_t n) { return std::string(n, 'v'); }
};

// ---- Item 3: policies whose deadlines cannot be represented ----------------

// Policy kinds are bounded (kMaxPolicyKinds): they are held in memory,
// listed in one answer and logged at each start of custosd. A kind over the
// bound is refused and nothing of it is stored; a kind already set can be
// set again.
TEST_F(RetentionBoundsTest, PolicyKindsAreBounded) {
  auto listed = engine_->ListPolicies(*admin_);
  ASSERT_TRUE(listed.has_value());
  const size_t shipped = listed->size();
  RetentionPolicy policy{.kind = "",
                         .close_after = std::nullopt,
                         .block_after = Period{.months = 6},
                         .erase_after = Period{.years = 3},
                         .history_after = Period{.years = 5}};
  for (size_t i = shipped; i < kMaxPolicyKinds; ++i) {
    policy.kind = "kind-" + std::to_string(i);
    ASSERT_TRUE(engine_->SetPolicy(*admin_, policy).ok()) << policy.kind;
  }
  policy.kind = "one-more";
  Status s = engine_->SetPolicy(*admin_, policy);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_EQ(s.message(),
            "a store holds at most 1000 retention policy kinds; this kind "
            "would be one more");
  listed = engine_->ListPolicies(*admin_);
  ASSERT_TRUE(listed.has_value());
  EXPECT_EQ(listed->size(), kMaxPolicyKinds);
  Reopen();
  listed = engine_->ListPolicies(*admin_);
  ASSERT_TRUE(listed.has_value());
  EXPECT_EQ(listed->size(), kMaxPolicyKinds);
  // One already set is set again.
  policy.kind = "kind-" + std::to_string(kMaxPolicyKinds - 1);
  policy.erase_after = Period{.years = 4};
  EXPECT_TRUE(engine_->SetPolicy(*admin_, policy).ok());
}

// Old code: SetPolicy returned OK, and every later sweep failed.
TEST_F(RetentionBoundsTest, SetPolicyRefusesAnEraseAfterOfEightThousandYears) {
  RetentionPolicy policy{.kind = "request",
                         .close_after = std::nullopt,
                         .block_after = Period{.months = 6},
                         .erase_after = Period{.years = 8000},
                         .history_after = Period{.years = 8000}};
  Status s = engine_->SetPolicy(*admin_, policy);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("erase_after"));
  // The shipped policy still governs requests.
  auto policies = engine_->ListPolicies(*admin_);
  ASSERT_TRUE(policies.has_value());
  for (const RetentionPolicy& p : *policies) {
    if (p.kind == "request") {
      EXPECT_EQ(p.erase_after, Period{.years = 3});
    }
  }
}

// Old code: SetPolicy returned OK, and owners could no longer close records
// ("deadline out of range").
TEST_F(RetentionBoundsTest, SetPolicyRefusesACloseAfterOfNineThousandYears) {
  RetentionPolicy policy{.kind = "request",
                         .close_after = Period{.years = 9999},
                         .block_after = Period{.months = 6},
                         .erase_after = Period{.years = 3},
                         .history_after = Period{.years = 5}};
  Status s = engine_->SetPolicy(*admin_, policy);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("close_after"));
  const uint64_t id = CreateOfKind("request");
  EXPECT_TRUE(engine_->Close(*owner_, id).ok());
}

// A policy stored before the check existed (written here by hand): its
// records are skipped and reported, every other record is swept.
// Old code: Sweep failed with "deadline out of range", nothing was erased.
TEST_F(RetentionBoundsTest,
       ASweepSkipsARecordWhoseDeadlineCannotBeComputedAndSweepsTheRest) {
  const uint64_t request = CreateOfKind("request");
  ASSERT_TRUE(engine_->Close(*owner_, request).ok());  // Blocked 2027-02-28.
  const uint64_t alert1 = ClosedAlert();
  const uint64_t alert2 = ClosedAlert();
  Close();
  WriteRaw(keys::Policy("request"),
           StoredPolicy({.kind = "request",
                         .close_after = std::nullopt,
                         .block_after = Period{.months = 6},
                         .erase_after = Period{.years = 8000},
                         .history_after = Period{.years = 8000}}));

  auto report = SweepAt(At(2027, 3, 1));
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->erased, 2u);
  EXPECT_EQ(report->blocked, 0u);
  EXPECT_EQ(StateOf(alert1), RecordState::kErased);
  EXPECT_EQ(StateOf(alert2), RecordState::kErased);
  // Not half transitioned: the stored request is left as it was (its index
  // entry is kept, below); reads see the block in force since its instant.
  EXPECT_EQ(StateOf(request), RecordState::kBlocked);
  ASSERT_EQ(report->skipped.size(), 1u);
  EXPECT_EQ(report->skipped[0].record_id, request);
  EXPECT_THAT(report->skipped[0].reason, HasSubstr("deadline"));

  // Its entry is kept, not deleted: the next sweep meets and reports it
  // again, and once the policy is fixed the record is swept.
  EXPECT_EQ(DeadlineEntries(), 1);
  report = SweepAt(At(2027, 3, 2));
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  ASSERT_EQ(report->skipped.size(), 1u);
  EXPECT_EQ(report->skipped[0].record_id, request);
  ASSERT_TRUE(engine_
                  ->SetPolicy(*admin_, {.kind = "request",
                                        .close_after = std::nullopt,
                                        .block_after = Period{.months = 6},
                                        .erase_after = Period{.years = 3},
                                        .history_after = Period{.years = 5}})
                  .ok());
  report = SweepAt(At(2027, 3, 3));
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_TRUE(report->skipped.empty());
  EXPECT_EQ(report->blocked, 1u);
  EXPECT_EQ(StateOf(request), RecordState::kBlocked);
}

// Old code: Sweep failed with DataLoss ("corrupt stored record") on every
// call, and no other record was erased.
TEST_F(RetentionBoundsTest, ASweepSkipsAnUndecodableRecordAndErasesTheRest) {
  const uint64_t first = ClosedAlert();
  const uint64_t broken = ClosedAlert();
  const uint64_t last = ClosedAlert();
  WriteRaw(keys::Record(broken), "garbage");

  // Within the alerts' bucket's hour: erased record by record, the broken
  // one skipped.
  auto report = SweepAt(At(2027, 2, 28));
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->erased, 2u);
  EXPECT_EQ(StateOf(first), RecordState::kErased);
  EXPECT_EQ(StateOf(last), RecordState::kErased);
  ASSERT_EQ(report->skipped.size(), 1u);
  EXPECT_EQ(report->skipped[0].record_id, broken);
  EXPECT_EQ(report->skipped[0].reason, "DataLoss: corrupt stored record");
  EXPECT_EQ(DeadlineEntries(), 1);  // Kept: reported, never dropped.
  EXPECT_EQ(report->buckets_destroyed, 0u);

  // Once the hour has ended, the bucket is erased by its key (no hold can
  // reach it), the broken record with it: its erasure is reported, and so
  // is its stub, which cannot be written.
  report = SweepAt(At(2027, 3, 1));
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->buckets_destroyed, 1u);
  EXPECT_EQ(report->erased, 1u);
  ASSERT_EQ(report->transitions.size(), 1u);
  EXPECT_EQ(report->transitions[0].record_id, broken);
  ASSERT_EQ(report->skipped.size(), 1u);
  EXPECT_EQ(report->skipped[0].record_id, broken);
  EXPECT_EQ(DeadlineEntries(), 1);
}

// The kept entry sorts first; a bounded sweep must not stall on it.
// Old code: Sweep failed with DataLoss.
TEST_F(RetentionBoundsTest, ABoundedSweepIsNotStalledByASkippedRecord) {
  const uint64_t broken = ClosedAlert();
  const uint64_t next = ClosedAlert();
  WriteRaw(keys::Record(broken), "garbage");

  auto report = SweepAt(At(2027, 2, 28), /*max_records=*/1);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->erased, 1u);
  EXPECT_EQ(StateOf(next), RecordState::kErased);
  EXPECT_EQ(report->skipped.size(), 1u);
}

// A dry run shows the same: the skipped record and the rest's transitions,
// and writes nothing. Old code: Sweep failed with DataLoss.
TEST_F(RetentionBoundsTest, ADryRunReportsTheSkippedRecordAndWritesNothing) {
  const uint64_t broken = ClosedAlert();
  const uint64_t other = ClosedAlert();
  WriteRaw(keys::Record(broken), "garbage");

  SweepOptions options;
  options.as_of = At(2027, 3, 1);
  options.dry_run = true;
  auto report = engine_->Sweep(*admin_, options);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->erased, 1u);
  ASSERT_EQ(report->skipped.size(), 1u);
  EXPECT_EQ(report->skipped[0].record_id, broken);
  EXPECT_EQ(StateOf(other), RecordState::kClosed);
  EXPECT_EQ(DeadlineEntries(), 2);
}

// Old code: ListRecords failed with DataLoss for the admin and the owner.
TEST_F(RetentionBoundsTest, AListingSkipsAnUndecodableRecordAndCountsIt) {
  const uint64_t first = CreateOfKind("alert");
  const uint64_t broken = CreateOfKind("alert");
  const uint64_t last = CreateOfKind("alert");
  WriteRaw(keys::Record(broken), "garbage");

  for (const Actor* actor : {admin_.get(), owner_.get()}) {
    auto page = engine_->ListRecords(*actor, ListQuery{});
    ASSERT_TRUE(page.has_value()) << page.error().ToString();
    ASSERT_EQ(page->records.size(), 2u);
    EXPECT_EQ(page->records[0].id, first);
    EXPECT_EQ(page->records[1].id, last);
    EXPECT_EQ(page->skipped, 1u);
  }
}

// A hostile review: a record that does not decode answered DataLoss to
// anyone who asked for its id, telling a principal who may not see it that
// it exists. Now only those who could see it learn it is corrupt.
TEST_F(RetentionBoundsTest,
       AnUndecodableRecordIsNotFoundToThoseWhoMayNotSeeIt) {
  const uint64_t broken = CreateOfKind("alert");
  ASSERT_TRUE(engine_->Grant(*owner_, broken, "authority-b").ok());
  WriteRaw(keys::Record(broken), "garbage");
  for (const Actor* actor :
       {owner_.get(), grantee_.get(), admin_.get(), officer_.get()}) {
    EXPECT_EQ(engine_->GetRecord(*actor, broken).error().code(),
              StatusCode::kDataLoss);
  }
  auto hidden = engine_->GetRecord(*stranger_, broken);
  ASSERT_FALSE(hidden.has_value());
  EXPECT_EQ(hidden.error().code(), StatusCode::kNotFound);
  EXPECT_EQ(hidden.error().message(), "record not found");
  // As a record that does not exist.
  EXPECT_EQ(engine_->GetRecord(*stranger_, broken + 100).error().message(),
            "record not found");
  auto many = engine_->GetRecords(*stranger_, {broken});
  ASSERT_TRUE(many.has_value()) << many.error().ToString();
  EXPECT_EQ((*many)[0].error().code(), StatusCode::kNotFound);
}

// ---- Items 3 and 10: flags and contests are bounded ------------------------

// The contest of the issue: 64 fields of 64 KiB (4 MiB) by one officer;
// sixteen of them made the record undecodable for everyone.
// Old code: OK (the record grew by 4 MiB).
TEST_F(RetentionBoundsTest, AContestPastThePersonalBytesLimitIsRefused) {
  const uint64_t id = CreateOfKind("request");
  const std::string subject = SubjectOf(id);
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());  // Officers see it now.
  std::vector<Field> corrected;
  for (int i = 0; i < 64; ++i) {
    corrected.push_back({'f' + std::to_string(i), Bytes(64 * 1024)});
  }
  Status s = engine_->Contest(*officer_, id, subject, "disputed", corrected);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("262144"));
  // Nothing else broke: the record reads, and a small contest is recorded.
  EXPECT_TRUE(
      engine_->Contest(*officer_, id, subject, "disputed", {{"born", "1981"}})
          .ok());
  auto view = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->contests.size(), 1u);
}

// Old code: the 65th contest was recorded.
TEST_F(RetentionBoundsTest, ContestsPerRecordAreBounded) {
  const uint64_t id = CreateOfKind("request");
  const std::string subject = SubjectOf(id);
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());
  for (int i = 0; i < 64; ++i) {
    ASSERT_TRUE(engine_->Contest(*officer_, id, subject, "disputed", {}).ok())
        << i;
  }
  Status s = engine_->Contest(*officer_, id, subject, "disputed", {});
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("64 contests"));
}

// Old code: the 65th flag was recorded.
TEST_F(RetentionBoundsTest, FlagsPerRecordAreBounded) {
  const uint64_t id = CreateOfKind("request");
  const std::string subject = SubjectOf(id);
  for (int i = 0; i < 64; ++i) {
    ASSERT_TRUE(engine_->FlagIncorrect(*owner_, id, subject, "wrong").ok())
        << i;
  }
  Status s = engine_->FlagIncorrect(*owner_, id, subject, "wrong");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("64 flags"));
}

// A record at the limit less 10 bytes: a flag note of 7 bytes ("note" +
// "1234567" = 11 bytes) does not fit. Old code: OK.
TEST_F(RetentionBoundsTest, FlagNotesCountTowardsThePersonalBytesLimit) {
  NewRecord r;
  r.kind = "request";
  // 4 * (2 + 65534) = 262144 = max_personal_bytes; less 10.
  r.personal = {{"anna@example.org",
                 {{"f0", Bytes(65534)},
                  {"f1", Bytes(65534)},
                  {"f2", Bytes(65534)},
                  {"f3", Bytes(65534 - 10)}}}};
  auto id = engine_->CreateRecord(*owner_, r);
  ASSERT_TRUE(id.has_value()) << id.error().ToString();
  const std::string subject = SubjectOf(*id);
  Status s = engine_->FlagIncorrect(*owner_, *id, subject, "1234567");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_TRUE(engine_->FlagIncorrect(*owner_, *id, subject, "123456").ok());
}

// A record created exactly at the limit over two subjects; rectifying one
// part with the same bytes does not make it bigger. Old code:
// InvalidArgument (the other part was counted by its sealed size).
TEST_F(RetentionBoundsTest, RectifyCountsOtherPartsByTheirFieldsNotSealedSize) {
  NewRecord r;
  r.kind = "request";
  // 2 * 2 * (2 + 65534) = 262144.
  r.personal = {
      {"anna@example.org", {{"f0", Bytes(65534)}, {"f1", Bytes(65534)}}},
      {"bob@example.org", {{"f0", Bytes(65534)}, {"f1", Bytes(65534)}}}};
  auto id = engine_->CreateRecord(*owner_, r);
  ASSERT_TRUE(id.has_value()) << id.error().ToString();
  auto view = engine_->GetRecord(*owner_, *id);
  ASSERT_TRUE(view.has_value());
  const std::string anna = view->parts.at(0).subject_id;
  auto version = engine_->Rectify(*owner_, *id, anna, r.personal[0].fields);
  EXPECT_TRUE(version.has_value()) << version.error().ToString();
  // One byte more is refused: the record's accumulated total is full.
  std::vector<Field> bigger = r.personal[0].fields;
  bigger[0].value += 'v';
  auto refused = engine_->Rectify(*owner_, *id, anna, bigger);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), StatusCode::kResourceExhausted);
}

// ---- Item 10: every per-call cost a caller controls is bounded -------------

// Old code: InvalidArgument (the accumulated grants are state, not input).
TEST_F(RetentionBoundsTest, AGrantPastMaxGrantsIsResourceExhausted) {
  Limits limits;
  limits.max_grants = 1;
  ReopenWith(limits);
  const uint64_t id = CreateRecord("anna@example.org", {"authority-b"});
  Status s = engine_->Grant(*owner_, id, "authority-c");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_EQ(engine_->GetRecord(*stranger_, id).error().code(),
            StatusCode::kNotFound);
}

// Old code: the 17th hold was set.
TEST_F(RetentionBoundsTest, HoldsPerRecordAreBounded) {
  const uint64_t id = CreateOfKind("request");
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(engine_->SetRecordHold(*officer_, id, "case 1", At(2030, 1, 1)))
        << i;
  }
  auto refused =
      engine_->SetRecordHold(*officer_, id, "case 1", At(2030, 1, 1));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.error().message(), HasSubstr("16 holds"));
  // A released hold makes room again.
  ASSERT_TRUE(engine_->ReleaseHold(*officer_, "h1").ok());
  EXPECT_TRUE(engine_->SetRecordHold(*officer_, id, "case 1", At(2030, 1, 1)));
}

// Old code: the 17th hold was set.
TEST_F(RetentionBoundsTest, HoldsPerSubjectAreBounded) {
  const std::string subject = SubjectOf(CreateOfKind("request"));
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(
        engine_->SetSubjectHold(*officer_, subject, "case 1", At(2030, 1, 1)))
        << i;
  }
  auto refused =
      engine_->SetSubjectHold(*officer_, subject, "case 1", At(2030, 1, 1));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), StatusCode::kResourceExhausted);
}

// A hold's end becomes an erased_at from which history_after is counted:
// bounded like a policy's period. Old code: the hold was set.
TEST_F(RetentionBoundsTest, AHoldEndingMoreThanTwoHundredYearsAheadIsRefused) {
  const uint64_t id = CreateOfKind("request");
  auto refused = engine_->SetRecordHold(*officer_, id, "case", At(2226, 9, 1));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(engine_->SetRecordHold(*officer_, id, "case", At(2226, 8, 31)));
}

// Old code: OK (each record examined cost filters x attributes).
TEST_F(RetentionBoundsTest, ListingAttributeFiltersAreBounded) {
  CreateRecord();
  ListQuery q;
  for (int i = 0; i < 65; ++i) {
    q.attribute_equals.push_back({'k' + std::to_string(i), "v"});
  }
  auto page = engine_->ListRecords(*owner_, q);
  ASSERT_FALSE(page.has_value());
  EXPECT_EQ(page.error().code(), StatusCode::kInvalidArgument);
  q.attribute_equals = {{"country", Bytes(1025)}};
  page = engine_->ListRecords(*owner_, q);
  ASSERT_FALSE(page.has_value());
  EXPECT_EQ(page.error().code(), StatusCode::kInvalidArgument);
  q.attribute_equals = {{"country", "AT"}};
  page = engine_->ListRecords(*owner_, q);
  ASSERT_TRUE(page.has_value()) << page.error().ToString();
  EXPECT_EQ(page->records.size(), 1u);
}

// Old code: NotFound (the identifier was hashed whatever its length).
TEST_F(RetentionBoundsTest, FindSubjectRefusesAnOverlongIdentifier) {
  auto found = engine_->FindSubject(*admin_, Bytes(257));
  ASSERT_FALSE(found.has_value());
  EXPECT_EQ(found.error().code(), StatusCode::kInvalidArgument);
}

// A limit is never reported as corruption: a record whose encoding would
// pass the decoder's bound is refused when written. Old code: created (and
// at 65 attributes it then read as DataLoss for everyone).
TEST_F(RetentionBoundsTest, ARecordTooLargeToStoreIsRefusedNotWritten) {
  Limits limits;
  limits.max_attribute_value_length = 1024 * 1024;
  ReopenWith(limits);
  NewRecord r;
  r.kind = "request";
  for (int i = 0; i < 17; ++i) {
    r.attributes.push_back({'a' + std::to_string(i), Bytes(1024 * 1024)});
  }
  auto id = engine_->CreateRecord(*owner_, r);
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error().code(), StatusCode::kResourceExhausted);
  auto page = engine_->ListRecords(*admin_, ListQuery{});
  ASSERT_TRUE(page.has_value()) << page.error().ToString();
  EXPECT_TRUE(page->records.empty());
}

// Old code: Open accepted it.
TEST_F(RetentionBoundsTest, OpenRefusesAPersonalBytesLimitNearTheDecoderBound) {
  engine_.reset();
  Options options = MakeOptions();
  options.limits.max_personal_bytes = 64 * 1024 * 1024;
  auto engine = Engine::Open(options, MasterKey());
  ASSERT_FALSE(engine.has_value());
  EXPECT_EQ(engine.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(engine.error().message(), HasSubstr("max_personal_bytes"));
}

// A stored policy carries a MAC under the keyring's ledger key: one written
// into the files without the key (here alerts' history kept a day), or a
// genuine one moved under another kind, is not used. Its kind's records are
// not created, nor given a deadline that needs the policy; they keep the
// ones they have (an erasure due goes ahead, an early erasure and a shred
// too); every sweep names the kind, until an admin sets it again.
TEST_F(RetentionBoundsTest, APolicyWrittenWithoutTheKeyIsNotUsed) {
  const uint64_t alert = ClosedAlert();  // Erasure due 2027-02-28 12:00.
  const uint64_t open = CreateOfKind("alert", "otto@example.org");
  const uint64_t doomed = CreateOfKind("alert", "eva@example.org");
  const RetentionPolicy alerts = ShippedPolicy("alert");
  RetentionPolicy forged = alerts;
  forged.history_after = Period{.days = 1};
  Close();
  const std::string genuine_alert = StoredPolicy(alerts);
  WriteRaw(keys::Policy("request"), genuine_alert);
  ForgePolicy(forged);

  const std::string refusal =
      "DataLoss: the stored retention policy of kind 'alert' failed to "
      "authenticate: set it again (custos policy set)";
  for (const char* kind : {"alert", "request"}) {
    NewRecord r;
    r.kind = kind;
    r.personal = {{"ben@example.org", {{"name", "Ben"}}}};
    auto created = engine_->CreateRecord(*owner_, r);
    ASSERT_FALSE(created.has_value()) << kind;
    EXPECT_EQ(created.error().ToString(),
              std::string("DataLoss: the stored retention policy of kind '") +
                  kind +
                  "' failed to authenticate: set it again (custos "
                  "policy set)");
  }
  auto listed = engine_->ListPolicies(*admin_);
  ASSERT_TRUE(listed.has_value());
  for (const RetentionPolicy& p : *listed) {
    EXPECT_NE(p.kind, "alert");
    EXPECT_NE(p.kind, "request");
  }
  // A close needs the policy's periods: refused. A change that keeps the
  // state keeps the deadline; an early erasure and a shred need none.
  EXPECT_EQ(engine_->Close(*owner_, open).ToString(), refusal);
  EXPECT_EQ(StateOf(open), RecordState::kActive);
  EXPECT_TRUE(engine_->EraseRecord(*admin_, doomed).ok());
  EXPECT_EQ(StateOf(doomed), RecordState::kErased);
  ASSERT_TRUE(engine_->ShredSubject(*admin_, SubjectOf(open)).ok());
  auto completed = engine_->CompleteShreds(100);
  ASSERT_TRUE(completed.has_value()) << completed.error().ToString();
  // ReapplyPolicies leaves the kind's records as scheduled.
  auto reapplied = engine_->ReapplyPolicies(*admin_);
  ASSERT_TRUE(reapplied.has_value()) << reapplied.error().ToString();
  EXPECT_EQ(*reapplied, 0u);

  // The alert's erasure is due: done by its stored deadline, nothing
  // skipped; the sweep names both kinds.
  auto report = SweepAt(At(2027, 3, 1));
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->erased, 1u);
  EXPECT_TRUE(report->skipped.empty());
  EXPECT_EQ(report->unauthenticated_policies,
            (std::vector<std::string>{"alert", "request"}));
  EXPECT_EQ(StateOf(alert), RecordState::kErased);

  // Set again by an admin: used, and named no more.
  ASSERT_TRUE(engine_->SetPolicy(*admin_, alerts).ok());
  EXPECT_GT(CreateOfKind("alert", "ben@example.org"), 0u);
  report = SweepAt(At(2027, 3, 2));
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->unauthenticated_policies,
            std::vector<std::string>{"request"});
  // The reopened store reads the new value as genuine.
  Close();
  Reopen();
  EXPECT_GT(CreateOfKind("alert", "eva@example.org"), 0u);
}

// A policy deleted from the files (no call deletes one): its kind's records
// are never left without a deadline (a review, helper-106: a sweep's block
// left a request with no erase deadline, and ReapplyPolicies stripped every
// request's). The transition that needs the policy is skipped, with why.
TEST_F(RetentionBoundsTest, ADeletedPolicyLeavesNoRecordWithoutADeadline) {
  const uint64_t request = CreateOfKind("request");
  ASSERT_TRUE(engine_->Close(*owner_, request).ok());  // Blocked 2027-02-28.
  DeleteRaw(keys::Policy("request"));
  auto reapplied = engine_->ReapplyPolicies(*admin_);
  ASSERT_TRUE(reapplied.has_value()) << reapplied.error().ToString();
  EXPECT_EQ(*reapplied, 0u);
  EXPECT_EQ(DeadlineEntries(), 1);
  auto report = SweepAt(At(2027, 3, 1));
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->blocked, 0u);
  ASSERT_EQ(report->skipped.size(), 1u);
  EXPECT_EQ(report->skipped[0].record_id, request);
  EXPECT_EQ(report->skipped[0].reason,
            "DataLoss: the retention policy of kind 'request' is missing: "
            "set it again (custos policy set)");
  EXPECT_EQ(DeadlineEntries(), 1);  // Kept: met and reported again.
  ASSERT_TRUE(engine_->SetPolicy(*admin_, ShippedPolicy("request")).ok());
  report = SweepAt(At(2027, 3, 2));
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->blocked, 1u);
  EXPECT_TRUE(report->skipped.empty());
}

// An owner's change to an ACTIVE record moves what close_after counts from:
// with the policy unauthenticated the new deadline cannot be computed, so
// the change is refused, not made with the old deadline kept (a review,
// helper-107: a record rectified every day still closed at the old one). A
// reader's look moves nothing.
TEST_F(RetentionBoundsTest, AnOwnersChangeNeedsTheCloseAfterItMoves) {
  const RetentionPolicy cases{.kind = "case",
                              .close_after = Period{.days = 30},
                              .block_after = std::nullopt,
                              .erase_after = Period{.months = 6},
                              .history_after = Period{.years = 5}};
  ASSERT_TRUE(engine_->SetPolicy(*admin_, cases).ok());
  const uint64_t id = CreateOfKind("case");
  const std::string anna = SubjectOf(id);
  ASSERT_TRUE(engine_->Grant(*owner_, id, "authority-b").ok());
  RetentionPolicy forged = cases;
  forged.close_after = Period{.years = 9};
  ForgePolicy(forged);
  clock_.Set(clock_.Now() + std::chrono::hours(24));
  auto rectified = engine_->Rectify(*owner_, id, anna, {{"name", "Anna M."}});
  ASSERT_FALSE(rectified.has_value());
  EXPECT_EQ(rectified.error().ToString(),
            "DataLoss: the stored retention policy of kind 'case' failed to "
            "authenticate: set it again (custos policy set)");
  EXPECT_TRUE(engine_->GetRecord(*owner_, id).has_value());
  // A recipient's flag is not the owner's change: it moves nothing, and is
  // made with the deadline kept.
  const Status flagged =
      engine_->FlagIncorrect(*grantee_, id, anna, "the name is misspelt");
  EXPECT_TRUE(flagged.ok()) << flagged.ToString();
  ASSERT_TRUE(engine_->SetPolicy(*admin_, cases).ok());
  EXPECT_TRUE(
      engine_->Rectify(*owner_, id, anna, {{"name", "Anna M."}}).has_value());
}

// A shred never waits on a policy: a record about two people whose block
// is in force, of a kind whose policy failed its MAC, has the shredded
// person's part dropped as stored (a review, helper-107: CompleteShreds
// failed on it every time, and so did Open after a restore).
TEST_F(RetentionBoundsTest, AShredIsCompletedWhenTheNextDeadlineNeedsAPolicy) {
  NewRecord r;
  r.kind = "request";
  r.personal = {{"anna@example.org", {{"name", "Anna"}}},
                {"ben@example.org", {{"name", "Ben"}}}};
  auto id = engine_->CreateRecord(*owner_, r);
  ASSERT_TRUE(id.has_value()) << id.error().ToString();
  ASSERT_TRUE(engine_->Close(*owner_, *id).ok());  // Blocked 2027-02-28.
  auto anna = engine_->FindSubject(*admin_, "anna@example.org");
  ASSERT_TRUE(anna.has_value());
  RetentionPolicy forged = ShippedPolicy("request");
  forged.erase_after = Period{.months = 7};
  ForgePolicy(forged);
  clock_.Set(At(2027, 3, 1));
  ASSERT_TRUE(engine_->ShredSubject(*admin_, *anna).ok());
  auto completed = engine_->CompleteShreds(100);
  ASSERT_TRUE(completed.has_value()) << completed.error().ToString();
  EXPECT_EQ(*completed, 1u);
  auto view = engine_->GetRecord(*admin_, *id);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kBlocked);  // In force, as read.
  EXPECT_EQ(view->subject_ids.size(), 1u);
  // Reopened (a restore finishes shreds inside Open): it opens.
  Close();
  Reopen();
  EXPECT_TRUE(engine_->GetRecord(*admin_, *id).has_value());
}

// The same with the record's only subject shredded: the shred erases the
// record, which needs no policy, so the block in force before the shred is
// written down first, at its instant (a review, helper-108: it was dropped,
// the record going from CLOSED straight to ERASED).
TEST_F(RetentionBoundsTest, AShredErasingTheRecordWritesTheBlockInForceFirst) {
  const uint64_t id = CreateOfKind("request");
  ASSERT_TRUE(engine_->Close(*owner_, id).ok());  // Blocked 2027-02-28.
  auto anna = engine_->FindSubject(*admin_, "anna@example.org");
  ASSERT_TRUE(anna.has_value());
  RetentionPolicy forged = ShippedPolicy("request");
  forged.erase_after = Period{.months = 7};
  ForgePolicy(forged);
  clock_.Set(At(2027, 3, 1));
  ASSERT_TRUE(engine_->ShredSubject(*admin_, *anna).ok());
  auto completed = engine_->CompleteShreds(100);
  ASSERT_TRUE(completed.has_value()) << completed.error().ToString();
  auto view = engine_->GetRecord(*admin_, id);
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->state, RecordState::kErased);
  ASSERT_TRUE(view->blocked_at.has_value());
  EXPECT_EQ(*view->blocked_at, At(2027, 2, 28, 12));
}

// The kinds a verification found differing, in order.
std::vector<std::string> KindsOf(const ChainVerification& v) {
  std::vector<std::string> kinds;
  for (const PolicyDifference& d : v.policy_differences)
    kinds.push_back(d.kind);
  return kinds;
}

// A verification of the chain compares the stored policies with what the
// chain says was last set, apart from the chain's own result: a genuine
// older value put back (its MAC holds: nothing else can tell), a shipped
// default put back over a set policy, a set policy deleted or failing its
// MAC, a shipped default deleted, and a policy of a kind never set copied
// in are each named, with what is stored and what was set; setting the
// policy again ends it. A store with its shipped defaults, which have no
// event, verifies.
TEST_F(RetentionBoundsTest, AVerificationFindsAPolicyRolledBack) {
  auto verify = [&] {
    auto v = engine_->VerifyChain(*admin_);
    EXPECT_TRUE(v.has_value()) << v.error().ToString();
    return v.value_or(ChainVerification{});
  };
  ChainVerification v = verify();
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_TRUE(v.policies_checked);
  EXPECT_EQ(v.policy_differences_total, 0u);

  RetentionPolicy first = ShippedPolicy("alert");
  first.history_after = Period{.years = 6};
  RetentionPolicy second = first;
  second.history_after = Period{.years = 10};
  ASSERT_TRUE(engine_->SetPolicy(*admin_, first).ok());
  Close();
  std::string older;  // The bytes stored then, MAC and all.
  {
    auto db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(
        db->Get(leveldb::ReadOptions(), keys::Policy("alert"), &older).ok());
  }
  Reopen();
  ASSERT_TRUE(engine_->SetPolicy(*admin_, second).ok());
  const uint64_t second_seq = verify().head_seq;
  EXPECT_EQ(verify().policy_differences_total, 0u);

  WriteRaw(keys::Policy("alert"), older);
  // In force after the reopen: the older value authenticates.
  auto listed = engine_->ListPolicies(*admin_);
  ASSERT_TRUE(listed.has_value());
  bool in_force = false;
  for (const RetentionPolicy& p : *listed)
    in_force = in_force || (p.kind == "alert" && p.history_after.years == 6);
  EXPECT_TRUE(in_force);
  v = verify();
  EXPECT_TRUE(v.ok) << v.problem;  // The chain itself is intact.
  EXPECT_EQ(v.problem, "");
  EXPECT_TRUE(v.policies_checked);
  ASSERT_EQ(KindsOf(v), std::vector<std::string>{"alert"});
  EXPECT_EQ(v.policy_differences_total, 1u);
  const PolicyDifference& rolled_back = v.policy_differences[0];
  EXPECT_EQ(rolled_back.expected_from, PolicyDifference::kEvent);
  EXPECT_EQ(rolled_back.last_set_seq, second_seq);
  EXPECT_EQ(rolled_back.expected, "erase_after:P6M, history_after:P10Y");
  EXPECT_EQ(rolled_back.stored, PolicyDifference::kStored);
  EXPECT_EQ(rolled_back.stored_text, "erase_after:P6M, history_after:P6Y");

  // The shipped default put back over a set policy: the same.
  Close();
  const std::string shipped_alert = StoredPolicy(ShippedPolicy("alert"));
  WriteRaw(keys::Policy("alert"), shipped_alert);
  EXPECT_EQ(KindsOf(verify()), std::vector<std::string>{"alert"});
  // A set policy failing its MAC, then deleted.
  ForgePolicy(second);
  v = verify();
  ASSERT_EQ(KindsOf(v), std::vector<std::string>{"alert"});
  EXPECT_EQ(v.policy_differences[0].stored, PolicyDifference::kUnauthenticated);
  DeleteRaw(keys::Policy("alert"));
  v = verify();
  ASSERT_EQ(KindsOf(v), std::vector<std::string>{"alert"});
  EXPECT_EQ(v.policy_differences[0].stored, PolicyDifference::kNone);

  // Set again: what the chain says is what is stored.
  ASSERT_TRUE(engine_->SetPolicy(*admin_, second).ok());
  EXPECT_EQ(verify().policy_differences_total, 0u);

  // A shipped default deleted (no event ever set it): from the default.
  DeleteRaw(keys::Policy("request"));
  v = verify();
  ASSERT_EQ(KindsOf(v), std::vector<std::string>{"request"});
  EXPECT_EQ(v.policy_differences[0].expected_from,
            PolicyDifference::kShippedDefault);
  EXPECT_EQ(v.policy_differences[0].last_set_seq, 0u);
  // A policy of a kind the chain never set, copied in with its MAC.
  Close();
  RetentionPolicy other = ShippedPolicy("alert");
  other.kind = "notice";
  const std::string unset = StoredPolicy(other);
  const std::string request = StoredPolicy(ShippedPolicy("request"));
  WriteRaw(keys::Policy("request"), request);
  EXPECT_EQ(verify().policy_differences_total, 0u);
  WriteRaw(keys::Policy("notice"), unset);
  v = verify();
  ASSERT_EQ(KindsOf(v), std::vector<std::string>{"notice"});
  EXPECT_EQ(v.policy_differences[0].expected_from, PolicyDifference::kNoPolicy);
  EXPECT_EQ(v.policy_differences[0].expected, "");

  // A chain problem found after the walk reached its end (an orphan index
  // entry anyone can write) still has the policies compared.
  WriteRaw(std::string(keys::kHistoryIndexPrefix) + "junk", "x");
  v = verify();
  EXPECT_EQ(v.problem, "index");
  EXPECT_TRUE(v.policies_checked);
  EXPECT_EQ(KindsOf(v), std::vector<std::string>{"notice"});
}

// A policy_set event is read back as a policy by value: its fields in any
// order, fields it does not know ignored; one it cannot read is DataLoss.
TEST(PolicyFromFieldsTest, ReadsAPolicySetEventsFieldsByValue) {
  RetentionPolicy policy{.kind = "request",
                         .close_after = Period{.months = 2},
                         .block_after = Period{.months = 6},
                         .erase_after = Period{.years = 3},
                         .history_after = Period{.years = 5}};
  std::vector<std::string> fields = events::PolicyFields(policy);
  EXPECT_EQ(events::PolicyFromFields(fields).value(), policy);
  std::reverse(fields.begin(), fields.end());
  fields.push_back("reason:a later build's field");
  EXPECT_EQ(events::PolicyFromFields(fields).value(), policy);
  for (std::vector<std::string> bad :
       {std::vector<std::string>{"kind:request", "erase_after:P3Y"},
        std::vector<std::string>{"kind:request", "erase_after:P3Y",
                                 "history_after:five years"},
        std::vector<std::string>{"kind:request", "kind:alert",
                                 "erase_after:P3Y", "history_after:P5Y"}}) {
    auto read = events::PolicyFromFields(bad);
    ASSERT_FALSE(read.has_value());
    EXPECT_EQ(read.error().ToString(),
              "DataLoss: a policy_set event's fields do not read");
  }
}

}  // namespace
}  // namespace custos::testing
