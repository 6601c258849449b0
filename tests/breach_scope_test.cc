// Breach scope through the engine (DESIGN section 7a, issue 15): every
// disclosure the principals named received in a window, per subject, with
// the identifiers to notify them by; an audited act of an auditor; its cost
// bounded by the window's disclosures.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "report/subject_report_html.h"
#include "report/subject_report_json.h"
#include "tests/engine_fixture.h"

namespace custos::testing {
namespace {

using std::chrono::hours;

class BreachScopeTest : public EngineTest {
 protected:
  // A record owned by owner_ about the subjects of `identifiers` (fields
  // "name" and "born" each), granted to authority-b.
  uint64_t RecordAbout(std::vector<std::string> identifiers,
                       bool sensitive = false) {
    NewRecord r;
    r.kind = "request";
    for (const std::string& identifier : identifiers) {
      r.personal.push_back({identifier, {{"name", "N"}, {"born", "1980"}}});
    }
    r.grants = {"authority-b"};
    r.sensitive = sensitive;
    auto id = engine_->CreateRecord(*owner_, r);
    EXPECT_TRUE(id.has_value()) << id.error().ToString();
    return id.value_or(0);
  }

  void ReadAt(const Actor& who, uint64_t id, Timestamp at,
              const std::optional<Purpose>& purpose = {}) {
    clock_.Set(at);
    auto view = engine_->GetRecord(who, id, purpose);
    ASSERT_TRUE(view.has_value()) << view.error().ToString();
  }

  BreachQuery Query(std::vector<std::string> principals, Timestamp from,
                    Timestamp to) {
    return BreachQuery{std::move(principals), from, to,
                       "credential of authority-b stolen, incident 2026-17"};
  }

  BreachScope Scope(const BreachQuery& query) {
    auto scope = engine_->ProduceBreachScope(*auditor_, query);
    EXPECT_TRUE(scope.has_value()) << scope.error().ToString();
    return scope.value_or(BreachScope{});
  }

  std::string SubjectOf(const std::string& identifier) {
    auto id = engine_->FindSubject(*auditor_, identifier);
    EXPECT_TRUE(id.has_value()) << id.error().ToString();
    return id.value_or("");
  }

  static std::vector<std::string> Ids(const BreachScope& scope) {
    std::vector<std::string> ids;
    for (const BreachSubject& s : scope.subjects) ids.push_back(s.identifier);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  const Timestamp t0_ = TestEpoch();
};

TEST_F(BreachScopeTest, EachSubjectReachedInTheWindowWithWhatWhenAndWhy) {
  const uint64_t r1 = RecordAbout({"anna@example.org"});
  const uint64_t r2 = RecordAbout({"anna@example.org", "ben@example.org"});
  const uint64_t r3 = RecordAbout({"carl@example.org"}, /*sensitive=*/true);
  ReadAt(*grantee_, r1, t0_ + hours(1));
  ReadAt(*grantee_, r2, t0_ + hours(2));
  ReadAt(*grantee_, r3, t0_ + hours(3), APurpose());
  clock_.Set(t0_ + hours(5));

  BreachScope scope =
      Scope(Query({"authority-b"}, t0_ + hours(1), t0_ + hours(4)));
  EXPECT_EQ(scope.disclosures, 3u);
  EXPECT_EQ(scope.without_identity, 0u);
  EXPECT_FALSE(scope.unindexed_until.has_value());
  EXPECT_EQ(scope.auditor_id, "auditor");
  EXPECT_EQ(scope.generated_at, t0_ + hours(5));
  ASSERT_EQ(Ids(scope),
            (std::vector<std::string>{"anna@example.org", "ben@example.org",
                                      "carl@example.org"}));
  const std::string anna = SubjectOf("anna@example.org");
  auto it = std::find_if(
      scope.subjects.begin(), scope.subjects.end(),
      [&](const BreachSubject& s) { return s.subject_id == anna; });
  ASSERT_NE(it, scope.subjects.end());
  EXPECT_EQ(it->identifier, "anna@example.org");
  EXPECT_EQ(it->record_ids, (std::vector<uint64_t>{r1, r2}));
  EXPECT_EQ(it->fields,
            (std::vector<std::string>{"born", "identifier", "name"}));
  ASSERT_EQ(it->disclosures.size(), 2u);
  EXPECT_EQ(it->disclosures[0].at, t0_ + hours(1));
  EXPECT_EQ(it->disclosures[0].record_id, r1);
  EXPECT_EQ(it->disclosures[0].principal_id, "authority-b");
  EXPECT_EQ(it->disclosures[0].principal_name, "Name of authority-b");
  EXPECT_EQ(it->disclosures[0].action, "read");
  EXPECT_EQ(it->disclosures[0].record_kind, "request");
  EXPECT_EQ(it->disclosures[1].record_id, r2);

  // The sensitive record was read for a stated purpose: it is in the scope.
  const std::string carl = SubjectOf("carl@example.org");
  it = std::find_if(
      scope.subjects.begin(), scope.subjects.end(),
      [&](const BreachSubject& s) { return s.subject_id == carl; });
  ASSERT_NE(it, scope.subjects.end());
  ASSERT_EQ(it->disclosures.size(), 1u);
  EXPECT_EQ(it->disclosures[0].purpose, PurposeKind::kPublicInterest);
  EXPECT_EQ(it->disclosures[0].justification, "court order 12/2026");
  EXPECT_EQ(it->disclosures[0].fields,
            (std::vector<std::string>{"identifier", "name", "born"}));
}

TEST_F(BreachScopeTest, TheWindowIsHalfOpenAndOtherPrincipalsAreLeftOut) {
  const uint64_t r1 = RecordAbout({"anna@example.org"});
  const uint64_t r2 = RecordAbout({"ben@example.org"});
  const uint64_t r3 = RecordAbout({"carl@example.org"});
  ReadAt(*grantee_, r1, t0_ + hours(1));  // At from: in.
  ReadAt(*grantee_, r2, t0_ + hours(2));  // At to: out.
  ReadAt(*owner_, r3, t0_ + hours(1));    // Another principal: out.
  BreachScope scope =
      Scope(Query({"authority-b"}, t0_ + hours(1), t0_ + hours(2)));
  EXPECT_EQ(Ids(scope), (std::vector<std::string>{"anna@example.org"}));
  EXPECT_EQ(scope.disclosures, 1u);
  // Creating a record is not a disclosure to its owner.
  EXPECT_EQ(Scope(Query({"authority-a"}, t0_, t0_ + hours(1))).disclosures, 0u);
}

TEST_F(BreachScopeTest, SeveralPrincipalsAreScopedTogetherPerSubject) {
  const uint64_t r1 = RecordAbout({"anna@example.org"});
  const uint64_t r2 = RecordAbout({"ben@example.org"});
  ReadAt(*grantee_, r1, t0_ + hours(2));
  ReadAt(*owner_, r1, t0_ + hours(1));
  ReadAt(*owner_, r2, t0_ + hours(3));
  BreachScope scope =
      Scope(Query({"authority-b", "authority-a"}, t0_, t0_ + hours(24)));
  EXPECT_EQ(scope.disclosures, 3u);
  ASSERT_EQ(Ids(scope),
            (std::vector<std::string>{"anna@example.org", "ben@example.org"}));
  const std::string anna = SubjectOf("anna@example.org");
  const BreachSubject& a = scope.subjects[0].subject_id == anna
                               ? scope.subjects[0]
                               : scope.subjects[1];
  // Both principals' disclosures of Anna's data, in time order.
  ASSERT_EQ(a.disclosures.size(), 2u);
  EXPECT_EQ(a.disclosures[0].principal_id, "authority-a");
  EXPECT_EQ(a.disclosures[1].principal_id, "authority-b");
  EXPECT_EQ(a.record_ids, (std::vector<uint64_t>{r1}));
}

TEST_F(BreachScopeTest, AStolenAuditorsSubjectReportsAreDisclosuresToo) {
  RecordAbout({"anna@example.org"});
  const std::string anna = SubjectOf("anna@example.org");
  clock_.Set(t0_ + hours(1));
  ASSERT_TRUE(engine_->ProduceSubjectReport(*auditor_, anna).has_value());
  auto second = AddPrincipal("auditor-2", {Role::kAuditor});
  auto scope = engine_->ProduceBreachScope(
      *second, Query({"auditor"}, t0_, t0_ + hours(24)));
  ASSERT_TRUE(scope.has_value()) << scope.error().ToString();
  ASSERT_EQ(scope->subjects.size(), 1u);
  EXPECT_EQ(scope->subjects[0].subject_id, anna);
  // The auditor's lookup of Anna (SubjectOf), then the report.
  ASSERT_EQ(scope->subjects[0].disclosures.size(), 2u);
  EXPECT_EQ(scope->subjects[0].disclosures[0].action, "find_subject");
  EXPECT_EQ(scope->subjects[0].disclosures[1].action, "report");
  EXPECT_EQ(scope->subjects[0].disclosures[1].record_id, 0u);
  // What the report disclosed (a review, helper-121: it named nothing, so
  // the scope said the person lost no data): her identifier, every field
  // of hers held, and her access history.
  const std::vector<std::string> everything = {"access_history", "born",
                                               "identifier", "name"};
  EXPECT_EQ(scope->subjects[0].disclosures[1].fields, everything);
  EXPECT_EQ(scope->subjects[0].fields, everything);
  EXPECT_TRUE(scope->subjects[0].record_ids.empty());
}

TEST_F(BreachScopeTest, AShreddedSubjectIsCountedWithoutIdentity) {
  const uint64_t r1 = RecordAbout({"anna@example.org", "ben@example.org"});
  ReadAt(*grantee_, r1, t0_ + hours(1));
  const std::string ben = SubjectOf("ben@example.org");
  ASSERT_TRUE(engine_->ShredSubject(*admin_, ben).ok());
  BreachScope scope = Scope(Query({"authority-b"}, t0_, t0_ + hours(24)));
  EXPECT_EQ(scope.disclosures, 1u);
  EXPECT_EQ(scope.without_identity, 1u);
  EXPECT_EQ(Ids(scope), (std::vector<std::string>{"anna@example.org"}));
  // Once the shred's bookkeeping is done (its index dropped), the same.
  ASSERT_TRUE(engine_->CompleteShreds(100).has_value());
  scope = Scope(Query({"authority-b"}, t0_, t0_ + hours(24)));
  EXPECT_EQ(scope.disclosures, 1u);
  EXPECT_EQ(scope.without_identity, 1u);
  EXPECT_EQ(Ids(scope), (std::vector<std::string>{"anna@example.org"}));
}

TEST_F(BreachScopeTest, OnlyAuditorsScopeBreachesAndQueriesAreBounded) {
  const BreachQuery ok = Query({"authority-b"}, t0_, t0_ + hours(24));
  for (const Actor* who : {grantee_.get(), officer_.get(), admin_.get()}) {
    auto refused = engine_->ProduceBreachScope(*who, ok);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code(), StatusCode::kPermissionDenied)
        << who->id();
  }
  auto code = [&](const BreachQuery& q) {
    auto r = engine_->ProduceBreachScope(*auditor_, q);
    return r ? StatusCode::kOk : r.error().code();
  };
  EXPECT_EQ(code(Query({}, t0_, t0_ + hours(1))), StatusCode::kInvalidArgument);
  std::vector<std::string> seventeen;
  for (int i = 0; i < 17; ++i)
    seventeen.push_back(std::string("p").append(std::to_string(i)));
  EXPECT_EQ(code(Query(seventeen, t0_, t0_ + hours(1))),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Query({"authority-b", "authority-b"}, t0_, t0_ + hours(1))),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Query({"authority-b"}, t0_, t0_)),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Query({"authority-b"}, t0_,
                       t0_ + kMaxBreachWindow + std::chrono::microseconds(1))),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Query({"authority-b"}, t0_, t0_ + kMaxBreachWindow)),
            StatusCode::kOk);
  EXPECT_EQ(code(Query({"authority-b"}, Timestamp::min(), Timestamp::max())),
            StatusCode::kInvalidArgument);
  BreachQuery no_purpose = ok;
  no_purpose.purpose.clear();
  EXPECT_EQ(code(no_purpose), StatusCode::kInvalidArgument);
  // A mistyped principal is not "nobody to notify".
  // Named by its position, the caller's text not echoed (helper-113).
  auto unknown = engine_->ProduceBreachScope(
      *auditor_, Query({"authority-b", "authority-x"}, t0_, t0_ + hours(1)));
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().ToString(),
            "NotFound: principal 2 of the breach scope is not known");
  // A revoked principal (the stolen credential's) is scoped as any other.
  ASSERT_TRUE(engine_->RevokePrincipal(*admin_, "authority-b").ok());
  EXPECT_EQ(code(ok), StatusCode::kOk);
}

TEST_F(BreachScopeTest, TheActIsRecordedWithItsPurposeInEachSubjectsHistory) {
  const uint64_t r1 = RecordAbout({"anna@example.org"});
  ReadAt(*grantee_, r1, t0_ + hours(1));
  const std::string anna = SubjectOf("anna@example.org");
  const uint64_t head = engine_->VerifyChain(*auditor_)->head_seq;
  clock_.Set(t0_ + hours(2));
  BreachScope scope = Scope(Query({"authority-b"}, t0_, t0_ + hours(24)));
  ASSERT_EQ(scope.subjects.size(), 1u);
  // One event for Anna, one about no subject for the act.
  auto chain = engine_->VerifyChain(*auditor_);
  ASSERT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->ok);
  EXPECT_EQ(chain->head_seq, head + 2);
  auto history = engine_->AccessHistory(*auditor_, anna, Timestamp::min(),
                                        Timestamp::max(), 0, 100);
  ASSERT_TRUE(history.has_value());
  const AccessEvent& last = history->events.back();
  EXPECT_EQ(last.action, "breach_scope");
  EXPECT_EQ(last.principal_id, "auditor");
  EXPECT_EQ(last.at, t0_ + hours(2));
  EXPECT_EQ(last.purpose, PurposeKind::kLegalObligation);
  EXPECT_EQ(last.justification,
            "credential of authority-b stolen, incident 2026-17");
  EXPECT_EQ(last.fields, (std::vector<std::string>{"identifier"}));
  // The auditor received Anna's identifier: a disclosure in its own
  // scope, should the auditor's credential be the stolen one.
  auto second = AddPrincipal("auditor-2", {Role::kAuditor});
  auto of_auditor = engine_->ProduceBreachScope(
      *second, Query({"auditor"}, t0_, t0_ + hours(24)));
  ASSERT_TRUE(of_auditor.has_value());
  ASSERT_EQ(of_auditor->subjects.size(), 1u);
  // Its lookup of Anna (SubjectOf) first, then the breach scope (and the
  // history read just above).
  ASSERT_EQ(of_auditor->subjects[0].disclosures.size(), 3u);
  EXPECT_EQ(of_auditor->subjects[0].disclosures[0].action, "find_subject");
  EXPECT_EQ(of_auditor->subjects[0].disclosures[1].action, "breach_scope");
  EXPECT_EQ(of_auditor->subjects[0].disclosures[2].action, "access_history");
  EXPECT_EQ(of_auditor->subjects[0].disclosures[2].fields,
            (std::vector<std::string>{"access_history"}));
}

TEST_F(BreachScopeTest, ThePersonsReportSaysTheirDataWasLookedUpAndWhy) {
  const uint64_t r1 = RecordAbout({"anna@example.org"});
  ReadAt(*grantee_, r1, t0_ + hours(1));
  Scope(Query({"authority-b"}, t0_, t0_ + hours(24)));
  auto report =
      engine_->ProduceSubjectReport(*auditor_, SubjectOf("anna@example.org"));
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  const std::string json = RenderSubjectReportJson(*report);
  EXPECT_NE(json.find("\"breach_scope\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"legal_obligation\""), std::string::npos) << json;
  const std::string html = RenderSubjectReportHtml(*report);
  EXPECT_NE(html.find("looked up which of your data a security breach "
                      "reached, to tell you"),
            std::string::npos);
  EXPECT_NE(html.find("A legal obligation (such as telling you of a data "
                      "breach)"),
            std::string::npos);
  EXPECT_NE(html.find("credential of authority-b stolen, incident 2026-17"),
            std::string::npos);
}

TEST_F(BreachScopeTest, AHugeHistoryOutsideTheWindowCostsNothing) {
  // A limit of three disclosures per scope: a walk that examined anything
  // outside the window would exceed it.
  Options options = MakeOptions();
  options.limits.max_breach_disclosures = 3;
  engine_.reset();
  auto engine = Engine::Open(options, MasterKey());
  ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
  engine_ = std::move(*engine);

  const uint64_t r1 = RecordAbout({"anna@example.org"});
  for (int i = 0; i < 200; ++i) ReadAt(*grantee_, r1, t0_ + hours(1));
  for (int i = 0; i < 200; ++i) ReadAt(*owner_, r1, t0_ + hours(30));
  for (int i = 0; i < 3; ++i) ReadAt(*grantee_, r1, t0_ + hours(30));
  for (int i = 0; i < 200; ++i) ReadAt(*grantee_, r1, t0_ + hours(60));

  BreachScope scope =
      Scope(Query({"authority-b"}, t0_ + hours(24), t0_ + hours(48)));
  EXPECT_EQ(scope.disclosures, 3u);
  ASSERT_EQ(scope.subjects.size(), 1u);
  EXPECT_EQ(scope.subjects[0].disclosures.size(), 3u);
  // The budget is shared by the principals: spent by authority-b, one
  // disclosure to authority-a is one too many, and none is not.
  auto shared = engine_->ProduceBreachScope(
      *auditor_,
      Query({"authority-b", "authority-c"}, t0_ + hours(24), t0_ + hours(48)));
  ASSERT_TRUE(shared.has_value()) << shared.error().ToString();
  auto spent = engine_->ProduceBreachScope(
      *auditor_,
      Query({"authority-b", "authority-a"}, t0_ + hours(24), t0_ + hours(48)));
  ASSERT_FALSE(spent.has_value());
  EXPECT_EQ(spent.error().code(), StatusCode::kResourceExhausted);
  // One more in the window is one too many.
  ReadAt(*grantee_, r1, t0_ + hours(31));
  auto over = engine_->ProduceBreachScope(
      *auditor_, Query({"authority-b"}, t0_ + hours(24), t0_ + hours(48)));
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace custos::testing
