// The IMI scenario of issue 14, scripted against a real custosd-testclock
// process over its unix socket, through examples/imi (the generated Cap'n
// Proto client only). The server's clock is moved by the test build's
// control file; every step asserts what each party sees, with the exact
// dates of Regulation 1182/71 (a period of months ending on a day that
// does not exist ends on the last day of that month).
//
// One story, in the order of its dates (a clock never goes back):
//   2026-08-03  AT asks DE about a professional (request R)
//   2026-08-10  DE answers (record A, granted to AT)
//   2026-08-17  DE alerts about a provider established in FR (alert L1):
//               FR and the Commission by default, AT added by DE's
//               coordinator; the Commission sees no personal data
//   2026-08-20  AT flags L1's data as incorrect; 08-21 DE rectifies it
//   2026-08-31  R and A closed: personal data invisible to the recipient
//   2026-09-01  FR alerts about a provider established in AT (alert L2);
//               09-02 withdrawn as unfounded: invisible at once to all
//   2026-09-03  a legal hold on L2's provider, at his request
//   2026-10-15  L1 closed: personal data invisible at once
//   2027-02-28  R and A blocked (31 August + 6 months)
//   2027-03-02  L2's erasure due, postponed by the hold
//   2027-04-15  L1 erased (15 October + 6 months)
//   2027-06-01  an officer reads R for legal proceedings
//   2027-12-31  the hold ends: L2 erased at once
//   2029-08-31  R and A erased (31 August + 3 years)
//   2031-05-05  the access requests of the professional and of both
//               providers: the subject reports (JSON, and the host's HTML
//               page) list every recipient and reader, and when

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "examples/imi/imi_exchange.h"
#include "tests/custosd_process.h"

namespace imi {
namespace {

using custos::testing::CustosdProcess;
using Seen = std::map<std::string, std::string>;

constexpr char kNotFound[] = "NotFound: record not found";
constexpr char kLena[] = "lena.schmidt@example.de";
constexpr char kJan[] = "jan.kowalski@example.fr";
constexpr char kMax[] = "max.huber@example.at";

// A report's records, one line each.
std::vector<std::string> Records(const nlohmann::json& report) {
  auto time = [](const nlohmann::json& t) {
    return t.is_null() ? std::string("-") : t.get<std::string>();
  };
  std::vector<std::string> out;
  for (const auto& r : report.at("records")) {
    std::string to;
    for (const auto& g : r.at("recipients")) {
      if (!to.empty()) to += " ";
      to += g.get<std::string>();
    }
    out.push_back(std::to_string(r.at("id").get<uint64_t>()) + " " +
                  r.at("kind").get<std::string>() + " " +
                  r.at("state").get<std::string>() + " " +
                  r.at("owner").get<std::string>() + " to [" + to +
                  "] created " + time(r.at("created_at")) + " closed " +
                  time(r.at("closed_at")) + " blocked " +
                  time(r.at("blocked_at")) + " erased " +
                  time(r.at("erased_at")) + " personal " +
                  std::to_string(r.at("personal").size()));
  }
  return out;
}

// A report's history, one line each: "at principal action record", then
// the purpose and justification if any, and a grant's grantee or a hold.
std::vector<std::string> History(const nlohmann::json& report) {
  std::vector<std::string> out;
  for (const auto& e : report.at("history")) {
    std::string line = e.at("at").get<std::string>() + " " +
                       e.at("principal_id").get<std::string>() + " " +
                       e.at("action").get<std::string>() + " " +
                       std::to_string(e.at("record_id").get<uint64_t>());
    if (!e.at("purpose").get<std::string>().empty()) {
      line += std::string(" ") + e.at("purpose").get<std::string>() + " " +
              e.at("justification").get<std::string>();
    }
    for (const auto& f : e.at("fields")) {
      const std::string field = f.get<std::string>();
      if (field.rfind("grantee:", 0) == 0 || field.rfind("hold:", 0) == 0) {
        line += std::string(" ") + field;
      }
    }
    out.push_back(line);
  }
  return out;
}

class ImiScenarioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    custosd_.Start(CUSTOSD_TESTCLOCK_PATH,
                   {"--test-clock", "2026-08-03T09:00:00Z",
                    "--maintenance-interval", "86400", "--no-sync"});
    exchange_ = std::make_unique<Exchange>("unix:" + custosd_.Socket(), "admin",
                                           custosd_.AdminToken());
  }
  void TearDown() override {
    exchange_.reset();
    const int status = custosd_.Stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  void At(const std::string& iso) { custosd_.SetTestClock(iso); }
  // The refusal `principal` gets reading record `id` ("" if none).
  std::string Refused(const std::string& principal, uint64_t id) {
    return Refusal([&] { exchange_->See(principal, id); });
  }

  CustosdProcess custosd_;
  std::unique_ptr<Exchange> exchange_;
};

TEST(AlertCoordinatorTest, DefaultsToEstablishmentStateAndCommission) {
  Alert alert;
  alert.from_state = "DE";
  alert.establishment_state = "FR";
  EXPECT_EQ(AlertCoordinator("DE").Recipients(alert),
            (std::vector<std::string>{"fr-dgccrf", "eu-commission"}));
  EXPECT_EQ(
      AlertCoordinator("DE").Recipients(alert, {"AT", "DE", "FR"}),
      (std::vector<std::string>{"fr-dgccrf", "at-bmdw", "eu-commission"}));
}

TEST(ReportHtmlTest, EscapesEveryStringOfTheReport) {
  const std::string json = R"({
    "generated_at": "2031-05-05T10:00:00Z",
    "subject_identifier": "<script>alert(1)</script>",
    "principals": [{"id": "x&y", "name": "\"Q\" <b>"}],
    "records": [{"id": 7, "kind": "alert", "state": "ERASED", "owner": "x&y",
                 "recipients": ["o'k"], "closed_at": null,
                 "erased_at": "2027-04-15T16:00:00Z", "personal": []}],
    "history": [{"at": "2026-08-17T08:00:00Z", "principal_id": "x&y",
                 "action": "read", "record_id": 7, "purpose": "",
                 "justification": "", "fields": ["grantee:<i>"]}]
  })";
  const std::string html = RenderReportHtml(json);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_EQ(html.find("\"Q\" <b>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"),
            std::string::npos);
  EXPECT_NE(html.find("<td>&quot;Q&quot; &lt;b&gt; (x&amp;y)</td>"),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("<td>o&#39;k</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>read to &lt;i&gt;</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>none</td>"), std::string::npos);
}

// imi_demo run twice against the same server (the one of `./dev run`):
// the second SetUp takes over the story's principals with new tokens, and
// the first run's sessions end.
TEST_F(ImiScenarioTest, SetUpAgainTakesOverTheStorysPrincipals) {
  exchange_->SetUp();
  Exchange again("unix:" + custosd_.Socket(), "admin", custosd_.AdminToken());
  EXPECT_EQ(again.SetUp().size(), 2u);
  Request request;
  request.legislative_area = "professional-qualifications";
  request.from_state = "AT";
  request.to_state = "DE";
  request.sent_on = "2026-08-03";
  request.professional = {kLena, {{"name", "Lena Schmidt"}}};
  const uint64_t r = again.SendRequest(request);
  EXPECT_EQ(again.See("de-bmas", r).personal.at(kLena).at("name"),
            "Lena Schmidt");
  EXPECT_EQ(Refused("de-bmas", r), "Unauthenticated: invalid credential");
}

// A principal of one of the story's ids that the story did not make (here
// with another role) is refused, never taken over.
TEST_F(ImiScenarioTest, SetUpRefusesAPrincipalItDidNotMake) {
  capnp::EzRpcClient client("unix:" + custosd_.Socket());
  auto login = client.getMain<custos::rpc::Gateway>().loginRequest();
  login.setPrincipal("admin");
  login.setToken(custosd_.AdminToken());
  auto admin = login.send()
                   .wait(client.getWaitScope())
                   .getSession()
                   .adminRequest()
                   .send()
                   .getAdmin();
  auto create = admin.createPrincipalRequest();
  create.setId("at-officer");
  create.setDisplayName("Officer, Austrian IMI coordinator");
  create.initRoles(1).set(0, custos::rpc::Role::AUDITOR);
  create.send().wait(client.getWaitScope());
  try {
    exchange_->SetUp();
    ADD_FAILURE() << "SetUp took over at-officer";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "principal at-officer exists but is not the story's (another "
              "display name, role, redaction, or revoked): use a server of "
              "your own");
  }
  // Refused before anything changed: none of the story's principals made.
  auto listed =
      admin.listPrincipalsRequest().send().wait(client.getWaitScope());
  std::vector<std::string> ids;
  for (auto p : listed.getPrincipals()) ids.emplace_back(p.getId().cStr());
  EXPECT_EQ(ids, (std::vector<std::string>{"admin", "at-officer"}));
}

TEST_F(ImiScenarioTest, RequestsAlertsAndAnAccessRequestYearsLater) {
  Exchange& x = *exchange_;
  EXPECT_EQ(x.SetUp(), (std::vector<std::string>{
                           "alert block= erase=P6M history=P5Y",
                           "request block=P6M erase=P3Y history=P5Y",
                       }));

  // --- 2026-08-03: Austria asks Germany about a professional. -----------
  Request request;
  request.legislative_area = "professional-qualifications";
  request.from_state = "AT";
  request.to_state = "DE";
  request.sent_on = "2026-08-03";
  request.professional = {kLena,
                          {{"name", "Lena Schmidt"},
                           {"qualification", "Meisterin im Elektrohandwerk"}}};
  const uint64_t r = x.SendRequest(request);
  {
    const View v = x.See("de-bmas", r);
    EXPECT_EQ(v.state, "ACTIVE");
    EXPECT_EQ(v.owner, "at-bmdw");
    EXPECT_EQ(v.grants, std::vector<std::string>{"de-bmas"});
    ASSERT_TRUE(v.personal_included);
    EXPECT_EQ(v.personal.at(kLena).at("name"), "Lena Schmidt");
    EXPECT_EQ(v.attributes.at("legislative_area"),
              "professional-qualifications");
    EXPECT_EQ(v.created_at, Micros("2026-08-03T09:00:00Z"));
  }
  // Need to know: nobody else learns that it exists.
  for (const char* other : {"fr-dgccrf", "eu-commission"}) {
    EXPECT_EQ(Refused(other, r), kNotFound) << other;
  }

  // --- 2026-08-10: Germany answers. ------------------------------------
  At("2026-08-10T10:00:00Z");
  const uint64_t a =
      x.Answer("de-bmas", r, "at-bmdw",
               {kLena, {{"register", "HWK Berlin 4711"}, {"valid", "yes"}}});
  {
    const View v = x.See("at-bmdw", a);
    EXPECT_EQ(v.personal.at(kLena).at("register"), "HWK Berlin 4711");
    EXPECT_EQ(v.attributes.at("answers"), std::to_string(r));
  }

  // --- 2026-08-17: Germany alerts about a provider established in FR. ---
  At("2026-08-17T08:00:00Z");
  Alert alert;
  alert.legislative_area = "services";
  alert.from_state = "DE";
  alert.establishment_state = "FR";
  alert.issued_on = "2026-08-17";
  alert.provider = {kJan,
                    {{"name", "Jan Kowalski"}, {"registration", "RCS 123"}}};
  const uint64_t l1 = x.SendAlert(alert, AlertCoordinator("DE"), {"AT"});
  for (const char* recipient : {"fr-dgccrf", "at-bmdw"}) {
    const View v = x.See(recipient, l1);
    EXPECT_EQ(v.state, "ACTIVE") << recipient;
    ASSERT_TRUE(v.personal_included) << recipient;
    EXPECT_EQ(v.personal.at(kJan).at("name"), "Jan Kowalski") << recipient;
  }
  {
    const View v = x.See("eu-commission", l1);
    EXPECT_EQ(v.grants, (std::vector<std::string>{"fr-dgccrf", "at-bmdw",
                                                  "eu-commission"}));
    EXPECT_FALSE(v.personal_included);
    EXPECT_TRUE(v.personal.empty());
    EXPECT_EQ(v.attributes, (Seen{{"established_in", "FR"},
                                  {"from", "DE"},
                                  {"issued_on", "2026-08-17"},
                                  {"legislative_area", "services"}}));
  }

  // --- 2026-08-20: Austria flags the data as incorrect. -----------------
  At("2026-08-20T14:00:00Z");
  x.Flag("at-bmdw", l1, kJan, "registration number is RCS 124");
  EXPECT_EQ(x.See("de-bmas", l1).flags,
            std::vector<std::string>{
                "at-bmdw 2026-08-20T14:00:00Z registration number is RCS 124"});
  // The Commission learns that a flag exists, never what it says.
  EXPECT_EQ(x.See("eu-commission", l1).flags,
            std::vector<std::string>{"at-bmdw 2026-08-20T14:00:00Z "});
  // Only the sender rectifies.
  EXPECT_EQ(Refusal([&] {
              x.Rectify("at-bmdw", l1, kJan, {{"registration", "RCS 124"}});
            }),
            "PermissionDenied: only the record's owner may do this");

  // --- 2026-08-21: Germany rectifies. ------------------------------------
  At("2026-08-21T09:00:00Z");
  EXPECT_EQ(x.Rectify("de-bmas", l1, kJan,
                      {{"name", "Jan Kowalski"}, {"registration", "RCS 124"}}),
            2u);
  {
    const View v = x.See("fr-dgccrf", l1);
    EXPECT_EQ(v.version, 2u);
    EXPECT_EQ(v.personal.at(kJan).at("registration"), "RCS 124");
  }

  // --- 2026-08-31 12:00: the request and its answer are closed. --------
  At("2026-08-31T12:00:00Z");
  x.Close("at-bmdw", r);
  x.Close("de-bmas", a);
  {
    const View v = x.See("de-bmas", r);
    EXPECT_EQ(v.state, "CLOSED");
    EXPECT_EQ(v.closed_at, Micros("2026-08-31T12:00:00Z"));
    EXPECT_FALSE(v.personal_included);
    EXPECT_TRUE(v.personal.empty());
    EXPECT_EQ(v.attributes.at("to"), "DE");
  }

  // --- 2026-09-01: France alerts about a provider established in AT. ---
  At("2026-09-01T10:00:00Z");
  Alert unfounded;
  unfounded.legislative_area = "services";
  unfounded.from_state = "FR";
  unfounded.establishment_state = "AT";
  unfounded.issued_on = "2026-09-01";
  unfounded.provider = {kMax, {{"name", "Max Huber"}, {"trade", "roofer"}}};
  const uint64_t l2 = x.SendAlert(unfounded, AlertCoordinator("FR"));
  EXPECT_EQ(x.See("at-bmdw", l2).personal.at(kMax).at("name"), "Max Huber");
  EXPECT_EQ(x.See("eu-commission", l2).state, "ACTIVE");

  // --- 2026-09-02: it was unfounded: withdrawn, invisible at once. ------
  At("2026-09-02T10:00:00Z");
  x.Withdraw("fr-dgccrf", l2);
  for (const char* p : {"fr-dgccrf", "at-bmdw", "eu-commission", "de-bmas"}) {
    EXPECT_EQ(Refused(p, l2), kNotFound) << p;
  }

  // --- 2026-09-03: Max Huber asks that his data be kept: he is suing. --
  At("2026-09-03T10:00:00Z");
  const std::string hold = x.HoldAtSubjectsRequest(
      "at-officer", kMax,
      "at the subject's request: damages claim, HG Wien 10 Cg 1/26",
      Micros("2027-12-31T00:00:00Z"));
  EXPECT_EQ(hold, "h1");  // The store's first hold.

  // --- 2026-10-15 16:00: Germany closes the alert. ------------------------
  At("2026-10-15T16:00:00Z");
  x.Close("de-bmas", l1);
  for (const char* p : {"fr-dgccrf", "at-bmdw", "eu-commission"}) {
    const View v = x.See(p, l1);
    EXPECT_EQ(v.state, "CLOSED") << p;
    EXPECT_FALSE(v.personal_included) << p;
    EXPECT_TRUE(v.personal.empty()) << p;
  }

  // --- 2027-02-28: R and A blocked, six months after 31 August. --------
  At("2027-02-28T11:59:59Z");
  EXPECT_EQ(x.See("de-bmas", r).state, "CLOSED");
  At("2027-02-28T12:00:00Z");
  for (const char* p : {"at-bmdw", "de-bmas"}) {
    EXPECT_EQ(Refused(p, r), kNotFound) << p;
    EXPECT_EQ(Refused(p, a), kNotFound) << p;
  }
  {
    const SweepResult s = x.Sweep();
    EXPECT_EQ(s.blocked, 2u);
    EXPECT_EQ(s.erased, 0u);
    EXPECT_EQ(s.transitions,
              (std::vector<std::string>{
                  std::to_string(r) + " CLOSED->BLOCKED 2027-02-28T12:00:00Z",
                  std::to_string(a) + " CLOSED->BLOCKED 2027-02-28T12:00:00Z",
              }));
  }

  // --- 2027-03-02: L2's erasure is due, but the hold postpones it. -----
  At("2027-03-02T10:00:00Z");
  {
    const SweepResult s = x.Sweep();
    EXPECT_EQ(s.erased, 0u);
    EXPECT_EQ(s.postponed, 1u);
    EXPECT_EQ(s.held, std::vector<std::string>{std::to_string(l2) +
                                               " until 2027-12-31T00:00:00Z"});
  }
  EXPECT_EQ(x.See("admin", l2).state, "BLOCKED");

  // --- 2027-04-15: L1 erased, six months after its closure. -------------
  At("2027-04-15T15:59:59Z");
  EXPECT_EQ(x.See("fr-dgccrf", l1).state, "CLOSED");
  At("2027-04-15T16:00:00Z");
  for (const char* p : {"fr-dgccrf", "at-bmdw", "eu-commission", "de-bmas"}) {
    EXPECT_EQ(Refused(p, l1), kNotFound) << p;
  }
  {
    const SweepResult s = x.Sweep();
    EXPECT_EQ(s.erased, 1u);
    EXPECT_EQ(s.transitions,
              std::vector<std::string>{std::to_string(l1) +
                                       " CLOSED->ERASED 2027-04-15T16:00:00Z"});
  }

  // --- 2027-06-01: an officer reads R for legal proceedings. ------------
  At("2027-06-01T09:00:00Z");
  EXPECT_EQ(Refused("de-officer", r), kNotFound);  // Not without a purpose.
  {
    const View v =
        x.SeeForProceedings("de-officer", r, "LG Berlin 12 O 345/27");
    EXPECT_EQ(v.state, "BLOCKED");
    EXPECT_EQ(v.blocked_at, Micros("2027-02-28T12:00:00Z"));
    ASSERT_TRUE(v.personal_included);
    EXPECT_EQ(v.personal.at(kLena).at("qualification"),
              "Meisterin im Elektrohandwerk");
  }

  // --- 2027-12-31: the hold ends; L2's erasure is due at once. ----------
  At("2027-12-31T00:00:00Z");
  {
    const SweepResult s = x.Sweep();
    EXPECT_EQ(s.erased, 1u);
    EXPECT_EQ(s.postponed, 0u);
    // Due when the hold ended, not at the original deadline.
    EXPECT_EQ(s.transitions, std::vector<std::string>{
                                 std::to_string(l2) +
                                 " BLOCKED->ERASED 2027-12-31T00:00:00Z"});
  }
  EXPECT_EQ(x.See("admin", l2).state, "ERASED");

  // --- 2029-08-31: R and A erased, three years after closure. ----------
  At("2029-08-31T11:59:59Z");
  EXPECT_EQ(x.See("admin", r).state, "BLOCKED");
  At("2029-08-31T12:00:00Z");
  EXPECT_EQ(x.See("admin", r).state, "ERASED");
  {
    const SweepResult s = x.Sweep();
    EXPECT_EQ(s.erased, 2u);
    EXPECT_EQ(s.transitions,
              (std::vector<std::string>{
                  std::to_string(r) + " BLOCKED->ERASED 2029-08-31T12:00:00Z",
                  std::to_string(a) + " BLOCKED->ERASED 2029-08-31T12:00:00Z",
              }));
  }
  {
    const View v = x.SeeForProceedings("de-officer", r, "LG Berlin appeal");
    EXPECT_EQ(v.state, "ERASED");
    EXPECT_EQ(v.erased_at, Micros("2029-08-31T12:00:00Z"));
    EXPECT_FALSE(v.personal_included);
  }

  // --- 2031-05-05: the access requests, years after the erasures. -------
  At("2031-05-05T10:00:00Z");
  {
    const SubjectReport lena = x.AnswerAccessRequest(kLena);
    const nlohmann::json report = nlohmann::json::parse(lena.json);
    EXPECT_EQ(report.at("generated_at"), "2031-05-05T10:00:00Z");
    EXPECT_EQ(report.at("subject_identifier"), kLena);
    EXPECT_EQ(Records(report),
              (std::vector<std::string>{
                  std::to_string(r) +
                      " request ERASED at-bmdw to [de-bmas] created "
                      "2026-08-03T09:00:00Z closed 2026-08-31T12:00:00Z "
                      "blocked 2027-02-28T12:00:00Z erased "
                      "2029-08-31T12:00:00Z personal 0",
                  std::to_string(a) +
                      " request ERASED de-bmas to [at-bmdw] created "
                      "2026-08-10T10:00:00Z closed 2026-08-31T12:00:00Z "
                      "blocked 2027-02-28T12:00:00Z erased "
                      "2029-08-31T12:00:00Z personal 0",
              }));
    const std::string rs = std::to_string(r);
    const std::string as = std::to_string(a);
    EXPECT_EQ(
        History(report),
        (std::vector<std::string>{
            "2026-08-03T09:00:00Z at-bmdw create " + rs,
            "2026-08-03T09:00:00Z at-bmdw grant " + rs + " grantee:de-bmas",
            "2026-08-03T09:00:00Z de-bmas read " + rs,
            "2026-08-10T10:00:00Z de-bmas create " + as,
            "2026-08-10T10:00:00Z de-bmas grant " + as + " grantee:at-bmdw",
            "2026-08-10T10:00:00Z at-bmdw read " + as,
            "2026-08-31T12:00:00Z at-bmdw close " + rs,
            "2026-08-31T12:00:00Z de-bmas close " + as,
            "2027-02-28T12:00:00Z admin block " + rs,
            "2027-02-28T12:00:00Z admin block " + as,
            "2027-06-01T09:00:00Z de-officer read_restricted " + rs +
                " public_interest LG Berlin 12 O 345/27",
            "2029-08-31T12:00:00Z admin erase " + rs,
            "2029-08-31T12:00:00Z admin erase " + as,
            // The data protection officer's lookup of Lena, to answer her.
            "2031-05-05T10:00:00Z imi-dpo find_subject 0",
        }));
    // The page for the person: who received her data and when, by name.
    EXPECT_NE(lena.html.find("<td>2026-08-03T09:00:00Z</td><td>"
                             "Bundesministerium für Arbeit und Soziales "
                             "(de-bmas)</td><td>read</td>"),
              std::string::npos)
        << lena.html;
    EXPECT_NE(lena.html.find("<td>public_interest: LG Berlin 12 O "
                             "345/27</td>"),
              std::string::npos);
    EXPECT_EQ(lena.html.find("Meisterin"), std::string::npos);
  }
  {
    // Jan Kowalski: the alert's recipients, the Commission among them
    // (granted, though it never got his data: no read of its own).
    const nlohmann::json report =
        nlohmann::json::parse(x.AnswerAccessRequest(kJan).json);
    EXPECT_EQ(Records(report),
              std::vector<std::string>{
                  std::to_string(l1) +
                  " alert ERASED de-bmas to [fr-dgccrf at-bmdw eu-commission] "
                  "created 2026-08-17T08:00:00Z closed 2026-10-15T16:00:00Z "
                  "blocked - erased 2027-04-15T16:00:00Z personal 0"});
    const std::string l = std::to_string(l1);
    EXPECT_EQ(
        History(report),
        (std::vector<std::string>{
            "2026-08-17T08:00:00Z de-bmas create " + l,
            "2026-08-17T08:00:00Z de-bmas grant " + l + " grantee:fr-dgccrf",
            "2026-08-17T08:00:00Z de-bmas grant " + l + " grantee:at-bmdw",
            "2026-08-17T08:00:00Z de-bmas grant " + l +
                " grantee:eu-commission",
            "2026-08-17T08:00:00Z fr-dgccrf read " + l,
            "2026-08-17T08:00:00Z at-bmdw read " + l,
            // Flag and Rectify read the record first, for the
            // subject's id.
            "2026-08-20T14:00:00Z at-bmdw read " + l,
            "2026-08-20T14:00:00Z at-bmdw flag " + l,
            // The sender reads the flag; Austria's refused rectify
            // read the record first.
            "2026-08-20T14:00:00Z de-bmas read " + l,
            "2026-08-20T14:00:00Z at-bmdw read " + l,
            "2026-08-21T09:00:00Z de-bmas read " + l,
            "2026-08-21T09:00:00Z de-bmas rectify " + l,
            "2026-08-21T09:00:00Z fr-dgccrf read " + l,
            "2026-10-15T16:00:00Z de-bmas close " + l,
            "2027-04-15T16:00:00Z admin erase " + l,
            "2031-05-05T10:00:00Z imi-dpo find_subject 0",
        }));
    // The flag survives, its note erased with the data.
    ASSERT_EQ(report.at("records")[0].at("flags").size(), 1u);
    EXPECT_EQ(report.at("records")[0].at("flags")[0].at("by"), "at-bmdw");
    EXPECT_EQ(report.at("records")[0].at("flags")[0].at("note"), "");
  }
  {
    // Max Huber: withdrawn, held at his request, erased when it ended.
    const nlohmann::json report =
        nlohmann::json::parse(x.AnswerAccessRequest(kMax).json);
    EXPECT_EQ(Records(report),
              std::vector<std::string>{
                  std::to_string(l2) +
                  " alert ERASED fr-dgccrf to [at-bmdw eu-commission] "
                  "created 2026-09-01T10:00:00Z closed 2026-09-02T10:00:00Z "
                  "blocked 2026-09-02T10:00:00Z erased 2027-12-31T00:00:00Z "
                  "personal 0"});
    const std::string l = std::to_string(l2);
    EXPECT_EQ(
        History(report),
        (std::vector<std::string>{
            "2026-09-01T10:00:00Z fr-dgccrf create " + l,
            "2026-09-01T10:00:00Z fr-dgccrf grant " + l + " grantee:at-bmdw",
            "2026-09-01T10:00:00Z fr-dgccrf grant " + l +
                " grantee:eu-commission",
            "2026-09-01T10:00:00Z at-bmdw read " + l,
            "2026-09-02T10:00:00Z fr-dgccrf withdraw " + l,
            // The lookup that found Max for the hold he asked for.
            "2026-09-03T10:00:00Z imi-dpo find_subject 0",
            "2026-09-03T10:00:00Z at-officer hold_set 0 hold:" + hold,
            "2027-12-31T00:00:00Z admin erase " + l,
            "2031-05-05T10:00:00Z imi-dpo find_subject 0",
        }));
  }
}

}  // namespace
}  // namespace imi
