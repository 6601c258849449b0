// Issue 9: holds cover what they say, an erased person cannot be linked to
// their records, admins never read personal data, and the subject report
// holds everything held on the person.

#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/env.h>

#include <algorithm>
#include <memory>

#include "crypto/keyed_hash.h"
#include "report/subject_report_html.h"
#include "report/subject_report_json.h"
#include "storage/codec.h"
#include "storage/history.h"
#include "storage/keys.h"
#include "storage/keystore.h"
#include "storage/leveldb_util.h"
#include "tests/engine_fixture.h"
#include "tests/fault_env.h"

namespace custos::testing {
namespace {

using namespace std::chrono_literals;

class UnlinkableErasureTest : public EngineTest {
 protected:
  // A record owned by owner_ about both identifiers, granted to grantee_.
  uint64_t SharedRecord(const std::string& a, const std::string& b) {
    NewRecord r;
    r.kind = "request";
    r.personal = {{a, {{"name", "Person A"}}}, {b, {{"name", "Person B"}}}};
    r.grants = {"authority-b"};
    auto id = engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(id.has_value()) << id.error().ToString();
    return id.value_or(0);
  }
  std::string Subject(const std::string& identifier) {
    return *engine_->FindSubject(*admin_, identifier);
  }
  // The keystore, opened directly (the engine is closed, and reopened
  // after if it was open), to read the keyring's keys.
  template <typename F>
  void WithKeystore(F use) {
    const bool was_open = engine_ != nullptr;
    if (was_open) Close();
    auto keystore =
        Keystore::Open(dir_ + "/keystore", false, MasterKey(), clock_.Now(),
                       leveldb::Env::Default(), /*cache_capacity=*/1);
    ASSERT_TRUE(keystore.has_value()) << keystore.error().ToString();
    use(**keystore);
    keystore->reset();
    if (was_open) ReopenAll();
  }
  std::string BlindIndexBytes(const std::string& identifier) {
    std::string out;
    WithKeystore([&](Keystore& k) {
      out = std::string(AsStringView(
          crypto::BlindIndex(k.keyring().blind_index(), identifier)));
    });
    return out;
  }
  void ReopenAll() {
    Reopen();
    admin_ = std::make_unique<Actor>(*engine_->ActorFor("admin"));
    owner_ = std::make_unique<Actor>(*engine_->ActorFor("authority-a"));
    grantee_ = std::make_unique<Actor>(*engine_->ActorFor("authority-b"));
    officer_ = std::make_unique<Actor>(*engine_->ActorFor("officer"));
    auditor_ = std::make_unique<Actor>(*engine_->ActorFor("auditor"));
  }
  // Every event of the history, read with the audit key (engine closed).
  std::vector<HistoryEntry> AllEvents() {
    std::optional<crypto::SecretKey> audit;
    WithKeystore([&](Keystore& k) {
      audit =
          std::move(*crypto::SecretKey::FromBytes(k.keyring().audit().bytes()));
    });
    if (!audit) return {};
    std::unique_ptr<leveldb::DB> db = OpenRaw("records");
    if (db == nullptr) return {};
    auto history = History::Open(*db, std::move(*audit));
    EXPECT_TRUE(history.has_value());
    if (!history) return {};
    auto page = (*history)->Scan(0, 10000);
    EXPECT_TRUE(page.has_value());
    return page ? page->entries : std::vector<HistoryEntry>{};
  }
  // Writes a principal as a store made before the role rule could hold
  // one (engine closed).
  void WriteLegacyPrincipal(const std::string& id, std::vector<Role> roles) {
    std::unique_ptr<leveldb::DB> db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    codec::StoredPrincipal p;
    p.info.id = id;
    p.info.display_name = "Legacy " + id;
    p.info.roles = std::move(roles);
    p.info.created_at = clock_.Now();
    p.credential_hash.assign(32, 7);
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), keys::Principal(id),
                        codec::EncodePrincipal(p))
                    .ok());
  }
};

// ---- Item 5: holds cover what they say --------------------------------------

// A subject hold on B covers the record B shares with A: shredding A would
// destroy A's part of a held record, so it is refused, as erasing the
// record is.
TEST_F(UnlinkableErasureTest, ASubjectHoldOnACoSubjectRefusesTheShred) {
  uint64_t shared = SharedRecord("anna@example.org", "ben@example.org");
  const std::string anna = Subject("anna@example.org");
  const std::string ben = Subject("ben@example.org");
  auto hold = engine_->SetSubjectHold(*officer_, ben, "proceedings 4 C 12/26",
                                      At(2028, 1, 1));
  ASSERT_TRUE(hold.has_value()) << hold.error().ToString();
  EXPECT_EQ(engine_->EraseRecord(*admin_, shared).code(),
            StatusCode::kFailedPrecondition);

  Status shred = engine_->ShredSubject(*admin_, anna);
  EXPECT_EQ(shred.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(shred.message(),
            "shredding refused: the subject is under legal hold " + hold->id +
                " (until 2028-01-01T12:00:00Z)");
  EXPECT_EQ(shred.message().find("example.org"), std::string::npos);
  // Refused means nothing happened: Anna's part is still there.
  auto view = engine_->GetRecord(*owner_, shared);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->parts.size(), 2u);

  ASSERT_TRUE(engine_->ReleaseHold(*officer_, hold->id).ok());
  EXPECT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
}

// A shred is written down, then its key is destroyed; should the
// destruction fail, the key survives until the shred is finished, and a
// read must still not give the subject's data: its identifier was cleared
// with the shred's intent, and no copy cached by an earlier read opens
// in its place (review of the sealed-identifier cache).
TEST_F(UnlinkableErasureTest, AShredWhoseKeyDestructionFailedDisclosesNothing) {
  const uint64_t id = CreateRecord("anna@example.org");
  const std::string anna = Subject("anna@example.org");
  FaultEnv env;  // To make the keystore's synchronous log writes fail.
  Options options = MakeOptions();
  options.env = &env;
  ReopenWith(options);
  auto before = engine_->GetRecord(*owner_, id);
  ASSERT_TRUE(before.has_value()) << before.error().ToString();
  ASSERT_EQ(before->parts.size(), 1u);
  EXPECT_EQ(before->parts[0].subject_identifier, "anna@example.org");

  env.keystore.fail_syncs = true;
  Status shred = engine_->ShredSubject(*admin_, anna);
  EXPECT_EQ(shred.code(), StatusCode::kInternal) << shred.ToString();

  auto after = engine_->GetRecord(*owner_, id);
  ASSERT_FALSE(after.has_value()) << after->parts[0].subject_identifier;
  EXPECT_EQ(after.error().code(), StatusCode::kDataLoss);
  EXPECT_EQ(after.error().message().find("anna"), std::string::npos);
  engine_.reset();  // Before `env`.
}

// A subject hold on a subject that shares no record with A does not cover
// A's records: the shred goes ahead, even while B shares a record with a
// third subject.
TEST_F(UnlinkableErasureTest, ASubjectHoldOnAnUnrelatedSubjectAllowsTheShred) {
  SharedRecord("ben@example.org", "carl@example.org");
  CreateRecord("anna@example.org");
  CreateRecord("anna@example.org");
  const std::string ben = Subject("ben@example.org");
  ASSERT_TRUE(engine_->SetSubjectHold(*officer_, ben, "proceedings 4 C 12/26",
                                      At(2028, 1, 1)));
  EXPECT_EQ(engine_->ShredSubject(*admin_, Subject("carl@example.org")).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_TRUE(engine_->ShredSubject(*admin_, Subject("anna@example.org")).ok());
}

// However the hold was set: a hold on B set before the shared record
// existed covers it too.
TEST_F(UnlinkableErasureTest, AHoldSetBeforeTheSharedRecordStillCoversIt) {
  CreateRecord("ben@example.org");
  const std::string ben = Subject("ben@example.org");
  ASSERT_TRUE(
      engine_->SetSubjectHold(*officer_, ben, "proceedings", At(2028, 1, 1)));
  SharedRecord("anna@example.org", "ben@example.org");
  EXPECT_EQ(engine_->ShredSubject(*admin_, Subject("anna@example.org")).code(),
            StatusCode::kFailedPrecondition);
}

// A record hold on the shared record refuses shredding either subject.
TEST_F(UnlinkableErasureTest, ARecordHoldOnASharedRecordRefusesBothShreds) {
  uint64_t shared = SharedRecord("anna@example.org", "ben@example.org");
  ASSERT_TRUE(
      engine_->SetRecordHold(*officer_, shared, "proceedings", At(2028, 1, 1)));
  EXPECT_EQ(engine_->ShredSubject(*admin_, Subject("anna@example.org")).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine_->ShredSubject(*admin_, Subject("ben@example.org")).code(),
            StatusCode::kFailedPrecondition);
}

// ---- Item 7: nothing maps an erased person to their records -----------------

TEST_F(UnlinkableErasureTest, AfterTheShredNoFileHoldsTheSubjectIdOrIndex) {
  uint64_t own = CreateRecord("anna@example.org", {"authority-b"});
  uint64_t shared = SharedRecord("anna@example.org", "ben@example.org");
  const std::string anna = Subject("anna@example.org");
  const std::string ben = Subject("ben@example.org");
  ASSERT_TRUE(
      engine_->FlagIncorrect(*grantee_, shared, anna, "wrong name").ok());
  ASSERT_TRUE(engine_->FlagIncorrect(*grantee_, shared, ben, "wrong too").ok());
  ASSERT_TRUE(engine_->Close(*owner_, shared).ok());
  ASSERT_TRUE(engine_->Contest(*officer_, shared, anna, "not me", {}).ok());
  // Holds that no longer refuse the shred but named the subject: one
  // released, one ended, one on the shared record that ended.
  auto released =
      engine_->SetSubjectHold(*officer_, anna, "request", At(2027, 1, 1));
  ASSERT_TRUE(released.has_value());
  ASSERT_TRUE(engine_->ReleaseHold(*officer_, released->id).ok());
  ASSERT_TRUE(
      engine_->SetSubjectHold(*officer_, anna, "short", clock_.Now() + 1h));
  ASSERT_TRUE(
      engine_->SetRecordHold(*officer_, shared, "short", clock_.Now() + 1h));
  ASSERT_TRUE(engine_->ProduceSubjectReport(*auditor_, anna).has_value());
  clock_.Advance(2h);

  const std::string index = BlindIndexBytes("anna@example.org");
  ASSERT_EQ(index.size(), 32u);
  Close();
  // Control: before the shred both are in the files.
  EXPECT_NE(ReadAllFiles(dir_).find(anna), std::string::npos);
  EXPECT_NE(ReadAllFiles(dir_).find(index), std::string::npos);
  ReopenAll();

  ASSERT_TRUE(engine_->ShredSubject(*admin_, anna).ok());
  ASSERT_EQ(*engine_->CompleteShreds(100), 2u);
  EXPECT_EQ(*engine_->CompleteShreds(100), 0u);

  // The records work on for the others, and name Anna nowhere.
  auto view = engine_->GetRecord(*officer_, shared, APurpose());
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_EQ(view->subject_ids, std::vector<std::string>{ben});
  ASSERT_EQ(view->parts.size(), 1u);
  EXPECT_EQ(view->parts[0].subject_identifier, "ben@example.org");
  ASSERT_EQ(view->flags.size(), 2u);
  EXPECT_EQ(view->flags[0].subject_id, "");
  EXPECT_EQ(view->flags[0].note, "");
  EXPECT_EQ(view->flags[0].by, "authority-b");
  EXPECT_EQ(view->flags[1].note, "wrong too");
  ASSERT_EQ(view->contests.size(), 1u);
  EXPECT_EQ(view->contests[0].subject_id, "");
  EXPECT_EQ(view->contests[0].by, "officer");
  auto erased = engine_->GetRecord(*admin_, own);
  ASSERT_TRUE(erased.has_value());
  EXPECT_EQ(erased->state, RecordState::kErased);
  EXPECT_TRUE(erased->subject_ids.empty());
  auto holds = engine_->ListHolds(*admin_, true);
  ASSERT_TRUE(holds.has_value());
  ASSERT_EQ(holds->size(), 3u);
  for (const HoldView& h : *holds) {
    EXPECT_NE(h.subject_id.value_or(""), anna) << h.id;
  }
  EXPECT_EQ(
      engine_
          ->AccessHistory(*auditor_, anna, Timestamp::min(), Timestamp::max())
          .error()
          .code(),
      StatusCode::kNotFound);
  EXPECT_TRUE(engine_->VerifyChain(*auditor_)->ok);

  // LevelDB's MANIFEST names the boundary keys of tables that the
  // compaction deleted until an open writes a fresh one: the bound is the
  // next Open, as for a shredded key (ShredTest).
  ReopenAll();
  Close();
  const std::string files = ReadAllFiles(dir_);
  EXPECT_EQ(files.find(anna), std::string::npos);
  EXPECT_EQ(files.find(index), std::string::npos);
  EXPECT_NE(files.find(ben), std::string::npos);  // Control.
  ReopenAll();
  EXPECT_TRUE(engine_->VerifyChain(*auditor_)->ok);
  EXPECT_TRUE(engine_->ProduceSubjectReport(*auditor_, ben).has_value());
}

// A crash after the shred's intent, before its key went: Open finishes the
// shred, and CompleteShreds then unlinks the subject as usual.
TEST_F(UnlinkableErasureTest, AShredFinishedAtOpenIsUnlinkedByCompleteShreds) {
  CreateRecord("anna@example.org");
  const std::string anna = Subject("anna@example.org");
  Close();
  {
    std::unique_ptr<leveldb::DB> db = OpenRaw("records");
    ASSERT_NE(db, nullptr);
    std::string value;
    ASSERT_TRUE(
        db->Get(leveldb::ReadOptions(), keys::Subject(anna), &value).ok());
    codec::StoredSubject s = *codec::DecodeSubject(value);
    s.shredded = true;
    s.shredded_at_micros = ToMicros(clock_.Now());
    leveldb::WriteBatch batch;
    batch.Put(keys::Subject(anna), codec::EncodeSubject(s));
    batch.Delete(keys::BlindIndex(AsStringView(s.blind_index)));
    batch.Put(keys::ShredQueue(anna), "");
    ASSERT_TRUE(db->Write(leveldb::WriteOptions(), &batch).ok());
  }
  ReopenAll();
  ASSERT_EQ(*engine_->CompleteShreds(100), 1u);
  ReopenAll();
  Close();
  const std::string files = ReadAllFiles(dir_);
  EXPECT_EQ(files.find(anna), std::string::npos);
  EXPECT_EQ(files.find(BlindIndexBytes("anna@example.org")), std::string::npos);
}

// ---- Item 8: admin never reads personal data --------------------------------

TEST_F(UnlinkableErasureTest, AdminCannotBeCombinedWithOfficerOrAuditor) {
  for (Role other : {Role::kAuditor, Role::kOfficer}) {
    auto created = engine_->CreatePrincipal(*admin_, "mixed", "Mixed",
                                            {Role::kAdmin, other}, false);
    ASSERT_FALSE(created.has_value());
    EXPECT_EQ(created.error().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(engine_->ActorFor("mixed").error().code(), StatusCode::kNotFound);
  // A user may be an admin: it sees its own records' attributes only.
  EXPECT_TRUE(engine_->CreatePrincipal(*admin_, "user-admin", "UA",
                                       {Role::kAdmin, Role::kUser}, false));
}

// Belt and braces: a principal holding admin with auditor or officer (as a
// store written before the rule may hold) gets no personal data from any
// call that returns some.
TEST_F(UnlinkableErasureTest, AnAdminGetsNoPersonalDataOnAnyPath) {
  uint64_t id = CreateRecord("anna@example.org");
  ASSERT_TRUE(engine_->Withdraw(*owner_, id).ok());  // BLOCKED.
  const std::string anna = Subject("anna@example.org");
  Close();
  WriteLegacyPrincipal("admin-auditor", {Role::kAdmin, Role::kAuditor});
  WriteLegacyPrincipal("admin-officer", {Role::kAdmin, Role::kOfficer});
  ReopenAll();
  for (const char* id_of : {"admin-auditor", "admin-officer"}) {
    SCOPED_TRACE(id_of);
    Actor who = *engine_->ActorFor(id_of);
    EXPECT_EQ(engine_->ProduceSubjectReport(who, anna).error().code(),
              StatusCode::kPermissionDenied);
    EXPECT_EQ(
        engine_->AccessHistory(who, anna, Timestamp::min(), Timestamp::max())
            .error()
            .code(),
        StatusCode::kPermissionDenied);
    auto view = engine_->GetRecord(who, id, APurpose());
    ASSERT_TRUE(view.has_value());
    EXPECT_FALSE(view->personal_included);
    EXPECT_TRUE(view->parts.empty());
    ListQuery q;
    q.purpose = APurpose();
    auto page = engine_->ListRecords(who, q);
    ASSERT_TRUE(page.has_value());
    for (const RecordView& v : page->records) {
      EXPECT_FALSE(v.personal_included);
      EXPECT_TRUE(v.parts.empty());
    }
  }
}

// Who changed how long data is kept is in the history: a policy set is an
// event by the admin, its periods in clear; a refused one writes none.
TEST_F(UnlinkableErasureTest, SettingAPolicyIsAnAuditedEvent) {
  const RetentionPolicy policy{.kind = "alert",
                               .close_after = std::nullopt,
                               .block_after = Period{.months = 1},
                               .erase_after = Period{.months = 9},
                               .history_after = Period{.years = 6}};
  ASSERT_TRUE(engine_->SetPolicy(*admin_, policy).ok());
  RetentionPolicy shorter = policy;
  shorter.history_after = Period{.months = 1};  // Shorter than the data.
  EXPECT_EQ(engine_->SetPolicy(*admin_, shorter).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->SetPolicy(*owner_, policy).code(),
            StatusCode::kPermissionDenied);
  Close();
  std::vector<std::string> seen;
  for (const HistoryEntry& e : AllEvents()) {
    if (EventActionName(e.header.action) != "policy_set") continue;
    std::string line = e.header.principal_id + ":";
    for (const std::string& f : e.fields) line += " " + f;
    EXPECT_EQ(e.header.record_id, 0u);
    seen.push_back(line);
  }
  EXPECT_EQ(seen, std::vector<std::string>{
                      "admin: kind:alert block_after:P1M erase_after:P9M "
                      "history_after:P6Y"});
}

// The master key's holder's way back in (custos recover-admin): a new
// admin in a store that has one, its act in the history by itself and
// marked, its token nowhere in the files.
TEST_F(UnlinkableErasureTest, ARecoveredAdminIsAnAuditedEventMarkedRecovered) {
  auto recovered = engine_->RecoverAdmin("admin-r", "Recovered");
  ASSERT_TRUE(recovered.has_value()) << recovered.error().ToString();
  auto actor = engine_->Authenticate(recovered->token);
  ASSERT_TRUE(actor.has_value()) << actor.error().ToString();
  EXPECT_TRUE(
      engine_->CreatePrincipal(*actor, "clerk", "Clerk", {Role::kUser}, false)
          .has_value());
  EXPECT_EQ(engine_->RecoverAdmin("admin-r", "Again").error().ToString(),
            "AlreadyExists: principal id is taken");
  EXPECT_EQ(engine_->RecoverAdmin("admin", "Taken").error().code(),
            StatusCode::kAlreadyExists);
  Close();
  std::vector<std::string> seen;
  for (const HistoryEntry& e : AllEvents()) {
    if (EventActionName(e.header.action) != "principal_created") continue;
    std::string line = e.header.principal_id + ":";
    for (const std::string& f : e.fields) line += " " + f;
    seen.push_back(line);
  }
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen[seen.size() - 2],
            "admin-r: principal:admin-r role:admin recovered");
  EXPECT_EQ(seen.back(), "admin-r: principal:clerk role:user");
  EXPECT_EQ(ReadAllFiles(dir_).find(recovered->token), std::string::npos);
}

TEST_F(UnlinkableErasureTest, CreatingAndRevokingPrincipalsAreAuditedEvents) {
  auto created =
      engine_->CreatePrincipal(*admin_, "clerk", "Clerk", {Role::kUser}, true);
  ASSERT_TRUE(created.has_value());
  ASSERT_TRUE(engine_->RevokePrincipal(*admin_, "clerk").ok());
  ASSERT_TRUE(engine_->RevokePrincipal(*admin_, "clerk").ok());  // No change.
  Close();
  std::vector<std::string> seen;
  for (const HistoryEntry& e : AllEvents()) {
    const std::string action(EventActionName(e.header.action));
    if (action != "principal_created" && action != "principal_revoked") {
      continue;
    }
    std::string line = action + " by " + e.header.principal_id + ":";
    for (const std::string& f : e.fields) line += " " + f;
    seen.push_back(line);
    for (const std::string& f : e.fields) {
      EXPECT_EQ(f.find(created->token), std::string::npos);
    }
  }
  // The fixture's five principals, the bootstrap admin, then the clerk.
  ASSERT_EQ(seen.size(), 8u);
  EXPECT_EQ(seen[0], "principal_created by admin: principal:admin role:admin");
  EXPECT_EQ(seen[6],
            "principal_created by admin: principal:clerk role:user redacted");
  EXPECT_EQ(seen[7], "principal_revoked by admin: principal:clerk");
  EXPECT_EQ(ReadAllFiles(dir_).find(created->token), std::string::npos);
}

// ---- Item 9: the subject report is complete ---------------------------------

TEST_F(UnlinkableErasureTest, FlagNotesAboutTheSubjectAreInTheReport) {
  uint64_t shared = SharedRecord("anna@example.org", "ben@example.org");
  const std::string anna = Subject("anna@example.org");
  const std::string ben = Subject("ben@example.org");
  clock_.Set(At(2026, 9, 1, 10));
  ASSERT_TRUE(
      engine_->FlagIncorrect(*grantee_, shared, anna, "born 1981, not 1980")
          .ok());
  ASSERT_TRUE(engine_->FlagIncorrect(*grantee_, shared, ben, "about Ben").ok());
  auto report = engine_->ProduceSubjectReport(*auditor_, anna);
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  ASSERT_EQ(report->records.size(), 1u);
  ASSERT_EQ(report->records[0].flags.size(), 1u);
  const FlagView& flag = report->records[0].flags[0];
  EXPECT_EQ(flag.by, "authority-b");
  EXPECT_EQ(flag.at, At(2026, 9, 1, 10));
  EXPECT_EQ(flag.note, "born 1981, not 1980");
  EXPECT_TRUE(std::any_of(
      report->principals.begin(), report->principals.end(),
      [](const SubjectReport::Principal& p) { return p.id == "authority-b"; }));

  const std::string json = RenderSubjectReportJson(*report);
  EXPECT_NE(json.find("\"note\": \"born 1981, not 1980\""), std::string::npos)
      << json;
  EXPECT_EQ(json.find("about Ben"), std::string::npos);
  const std::string html = RenderSubjectReportHtml(*report);
  EXPECT_NE(html.find("born 1981, not 1980"), std::string::npos);
  EXPECT_EQ(html.find("about Ben"), std::string::npos);
}

}  // namespace
}  // namespace custos::testing
