#include "examples/imi/imi_exchange.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

#include "base/clock.h"
#include "base/time_text.h"

namespace imi {

namespace rpc = custos::rpc;

const std::vector<Authority>& Authorities() {
  static const std::vector<Authority> kAuthorities = {
      {"de-bmas", "DE", "Bundesministerium für Arbeit und Soziales"},
      {"fr-dgccrf", "FR",
       "Direction générale de la concurrence, de la consommation et de la "
       "répression des fraudes"},
      {"at-bmdw", "AT",
       "Bundesministerium für Digitalisierung und "
       "Wirtschaftsstandort"},
  };
  return kAuthorities;
}

std::string AuthorityOf(const std::string& member_state) {
  for (const Authority& a : Authorities()) {
    if (a.member_state == member_state) return a.principal;
  }
  return "";
}

AlertCoordinator::AlertCoordinator(std::string member_state)
    : member_state_(std::move(member_state)) {}

std::vector<std::string> AlertCoordinator::Recipients(
    const Alert& alert, const std::vector<std::string>& also) const {
  std::vector<std::string> out;
  const std::string sender = AuthorityOf(alert.from_state);
  auto add = [&](const std::string& principal) {
    if (principal.empty() || principal == sender) return;
    if (std::find(out.begin(), out.end(), principal) != out.end()) return;
    out.push_back(principal);
  };
  add(AuthorityOf(alert.establishment_state));
  for (const std::string& state : also) add(AuthorityOf(state));
  add(kCommission);
  return out;
}

int64_t Micros(const std::string& iso) {
  auto t = custos::ParseTimestamp(iso);
  if (!t.has_value())
    throw std::invalid_argument(std::string("bad date: ") + iso);
  return custos::ToMicros(*t);
}

std::string Iso(int64_t micros) {
  if (micros == 0) return "";
  return custos::FormatTimestamp(custos::FromMicros(micros));
}

std::string Refusal(const std::function<void()>& call) {
  try {
    call();
    return "";
  } catch (const kj::Exception& e) {
    std::string text = e.getDescription().cStr();
    // The RPC system prefixes what the server sent.
    const std::string prefix = "remote exception: ";
    if (text.rfind(prefix, 0) == 0) text = text.substr(prefix.size());
    return text;
  }
}

namespace {

std::string StateName(rpc::RecordState s) {
  switch (s) {
    case rpc::RecordState::ACTIVE:
      return "ACTIVE";
    case rpc::RecordState::CLOSED:
      return "CLOSED";
    case rpc::RecordState::BLOCKED:
      return "BLOCKED";
    case rpc::RecordState::ERASED:
      return "ERASED";
  }
  return "?";
}

View ToView(rpc::Record::Reader r) {
  View v;
  v.id = r.getId();
  v.kind = r.getKind().cStr();
  v.owner = r.getOwner().cStr();
  v.state = StateName(r.getState());
  for (auto g : r.getGrants()) v.grants.emplace_back(g.cStr());
  for (auto a : r.getAttributes()) {
    v.attributes[a.getKey().cStr()] = a.getValue().cStr();
  }
  v.personal_included = r.getPersonalIncluded();
  for (auto p : r.getParts()) {
    auto& fields = v.personal[p.getSubjectIdentifier().cStr()];
    for (auto f : p.getFields())
      fields[f.getName().cStr()] = f.getValue().cStr();
    v.subject_ids[p.getSubjectIdentifier().cStr()] = p.getSubjectId().cStr();
  }
  v.version = r.getVersion();
  v.created_at = r.getCreatedAtMicros();
  v.closed_at = r.getClosedAtMicros();
  v.blocked_at = r.getBlockedAtMicros();
  v.erased_at = r.getErasedAtMicros();
  for (auto f : r.getFlags()) {
    v.flags.push_back(std::string(f.getBy().cStr()) + " " +
                      Iso(f.getAtMicros()) + " " + f.getNote().cStr());
  }
  return v;
}

void FillPerson(rpc::PersonalPart::Builder part, const Person& person) {
  part.setSubjectIdentifier(person.identifier);
  auto fields = part.initFields(person.fields.size());
  for (size_t i = 0; i < person.fields.size(); ++i) {
    fields[i].setName(person.fields[i].first);
    fields[i].setValue(person.fields[i].second);
  }
}

void FillAttributes(rpc::NewRecord::Builder r, const Fields& attributes) {
  auto out = r.initAttributes(attributes.size());
  for (size_t i = 0; i < attributes.size(); ++i) {
    out[i].setKey(attributes[i].first);
    out[i].setValue(attributes[i].second);
  }
}

void FillGrants(rpc::NewRecord::Builder r,
                const std::vector<std::string>& grants) {
  auto out = r.initGrants(grants.size());
  for (size_t i = 0; i < grants.size(); ++i) out.set(i, grants[i]);
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Text(const nlohmann::json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

}  // namespace

std::string RenderReportHtml(const std::string& json) {
  const nlohmann::json report = nlohmann::json::parse(json);
  std::map<std::string, std::string> names;
  for (const auto& p : report.at("principals")) {
    names[Text(p.at("id"))] = Text(p.at("name"));
  }
  auto who = [&](const std::string& id) {
    auto it = names.find(id);
    return it == names.end() || it->second.empty()
               ? Escape(id)
               : Escape(it->second) + std::string(" (") + Escape(id) + ")";
  };
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" "
      "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
      "<title>Your personal data in IMI</title>"
      "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
      "td,th{border:1px solid #999;padding:.2em .5em}"
      "table{border-collapse:collapse}</style></head><body>\n";
  h += std::string("<h1>Your personal data in IMI</h1>\n<p>Report for <b>") +
       Escape(Text(report.at("subject_identifier"))) + "</b>, produced on " +
       Escape(Text(report.at("generated_at"))) + ".</p>\n";
  h += "<h2>Records about you</h2>\n<table><tr><th>record</th><th>kind</th>"
       "<th>state</th><th>held by</th><th>sent to</th><th>closed</th>"
       "<th>erased</th><th>data still held</th></tr>\n";
  for (const auto& r : report.at("records")) {
    std::string recipients;
    for (const auto& g : r.at("recipients")) {
      if (!recipients.empty()) recipients += ", ";
      recipients += who(Text(g));
    }
    std::string data;
    for (const auto& f : r.at("personal")) {
      data += Escape(Text(f.at("name"))) + ": " + Escape(Text(f.at("value"))) +
              "<br>";
    }
    h += std::string("<tr><td>") + Escape(Text(r.at("id"))) + "</td><td>" +
         Escape(Text(r.at("kind"))) + "</td><td>" +
         Escape(Text(r.at("state"))) + "</td><td>" + who(Text(r.at("owner"))) +
         "</td><td>" + recipients + "</td><td>" +
         Escape(Text(r.at("closed_at"))) + "</td><td>" +
         Escape(Text(r.at("erased_at"))) + "</td><td>" +
         (data.empty() ? std::string("none") : data) + "</td></tr>\n";
  }
  h += "</table>\n<h2>Who received or saw your data</h2>\n<table><tr>"
       "<th>when</th><th>who</th><th>what</th><th>record</th><th>why</th>"
       "</tr>\n";
  for (const auto& e : report.at("history")) {
    std::string why = Text(e.at("purpose"));
    if (!Text(e.at("justification")).empty()) {
      why += std::string(": ") + Text(e.at("justification"));
    }
    std::string what = Text(e.at("action"));
    for (const auto& f : e.at("fields")) {
      const std::string field = Text(f);
      if (field.rfind("grantee:", 0) == 0)
        what += std::string(" to ") + field.substr(8);
    }
    h += std::string("<tr><td>") + Escape(Text(e.at("at"))) + "</td><td>" +
         who(Text(e.at("principal_id"))) + "</td><td>" + Escape(what) +
         "</td><td>" + Escape(Text(e.at("record_id"))) + "</td><td>" +
         Escape(why) + "</td></tr>\n";
  }
  h += "</table>\n</body></html>\n";
  return h;
}

struct Exchange::Party {
  Party(const std::string& address, const std::string& principal,
        const std::string& token)
      : id(principal), client(std::make_unique<capnp::EzRpcClient>(address)) {
    auto login = client->getMain<rpc::Gateway>().loginRequest();
    login.setPrincipal(principal);
    login.setToken(token);
    session = std::make_unique<rpc::Session::Client>(
        login.send().wait(client->getWaitScope()).getSession());
  }
  std::string id;
  std::unique_ptr<capnp::EzRpcClient> client;
  std::unique_ptr<rpc::Session::Client> session;
};

Exchange::Exchange(std::string address, const std::string& admin_principal,
                   const std::string& admin_token)
    : address_(std::move(address)) {
  Login(admin_principal, admin_token);
}

Exchange::~Exchange() {
  // Sessions before their connections, the admin's connection last.
  while (!parties_.empty()) parties_.pop_back();
}

kj::WaitScope& Exchange::wait() {
  return parties_.front()->client->getWaitScope();
}

Exchange::Party& Exchange::Login(const std::string& principal,
                                 const std::string& token) {
  parties_.push_back(std::make_unique<Party>(address_, principal, token));
  return *parties_.back();
}

Exchange::Party& Exchange::Of(const std::string& principal) {
  for (auto& p : parties_) {
    if (p->id == principal) return *p;
  }
  throw std::invalid_argument(std::string("not logged in: ") + principal);
}

rpc::Admin::Client Exchange::Admin() {
  return parties_.front()->session->adminRequest().send().getAdmin();
}

std::vector<std::string> Exchange::SetUp() {
  struct Setup {
    std::string id;
    std::string name;
    rpc::Role role;
    bool redacted;
  };
  std::vector<Setup> principals;
  for (const Authority& a : Authorities()) {
    principals.push_back({a.principal, a.name, rpc::Role::USER, false});
  }
  principals.push_back(
      {kCommission, "European Commission", rpc::Role::USER, true});
  principals.push_back({"de-officer", "Officer, Landgericht Berlin liaison",
                        rpc::Role::OFFICER, false});
  principals.push_back({"at-officer", "Officer, Austrian IMI coordinator",
                        rpc::Role::OFFICER, false});
  principals.push_back(
      {"imi-dpo", "IMI data protection officer", rpc::Role::AUDITOR, false});
  // A second run against the same server finds the principals the first
  // one made: it takes them over with new tokens, since a token is shown
  // only once. Anyone else's principal of the same id is left alone, and
  // nothing is changed before all of them are checked.
  auto existing = Admin().listPrincipalsRequest().send().wait(wait());
  std::vector<bool> exists;
  for (const Setup& p : principals) {
    exists.push_back(false);
    for (auto e : existing.getPrincipals()) {
      if (p.id != e.getId().cStr()) continue;
      const bool the_storys =
          !e.getRevoked() && p.name == e.getDisplayName().cStr() &&
          e.getRoles().size() == 1 && e.getRoles()[0] == p.role &&
          e.getRedacted() == p.redacted;
      if (!the_storys) {
        throw std::runtime_error(
            std::string("principal ") + p.id +
            " exists but is not the story's (another display name, role, "
            "redaction, or revoked): use a server of your own");
      }
      exists.back() = true;
    }
  }
  for (size_t i = 0; i < principals.size(); ++i) {
    const Setup& p = principals[i];
    std::string token;
    if (exists[i]) {
      auto rotate = Admin().rotateCredentialRequest();
      rotate.setId(p.id);
      token = rotate.send().wait(wait()).getToken().cStr();
    } else {
      auto req = Admin().createPrincipalRequest();
      req.setId(p.id);
      req.setDisplayName(p.name);
      req.initRoles(1).set(0, p.role);
      req.setRedacted(p.redacted);
      token = req.send().wait(wait()).getCreated().getToken().cStr();
    }
    Login(p.id, token);
  }

  // The IMI Regulation's periods (Articles 14 and 15): requests blocked
  // six months after closure and erased three years after it; alerts
  // erased six months after closure; history kept five years after.
  const std::vector<std::vector<std::string>> wanted = {
      {"request", "P6M", "P3Y", "P5Y"}, {"alert", "", "P6M", "P5Y"}};
  auto in_force = [&] {
    auto response =
        parties_.front()->session->listPoliciesRequest().send().wait(wait());
    std::vector<std::string> out;
    for (auto p : response.getPolicies()) {
      out.push_back(std::string(p.getKind().cStr()) +
                    " block=" + p.getBlockAfter().cStr() +
                    " erase=" + p.getEraseAfter().cStr() +
                    " history=" + p.getHistoryAfter().cStr());
    }
    return out;
  };
  const std::vector<std::string> before = in_force();
  for (const auto& w : wanted) {
    const std::string line =
        w[0] + " block=" + w[1] + " erase=" + w[2] + " history=" + w[3];
    if (std::find(before.begin(), before.end(), line) != before.end()) {
      continue;
    }
    auto req = Admin().setPolicyRequest();
    auto p = req.initPolicy();
    p.setKind(w[0]);
    p.setBlockAfter(w[1]);
    p.setEraseAfter(w[2]);
    p.setHistoryAfter(w[3]);
    req.send().wait(wait());
  }
  return in_force();
}

uint64_t Exchange::SendRequest(const Request& request) {
  Party& from = Of(AuthorityOf(request.from_state));
  auto req = from.session->createRequest();
  auto r = req.initRecord();
  r.setKind("request");
  FillAttributes(r, {{"legislative_area", request.legislative_area},
                     {"from", request.from_state},
                     {"to", request.to_state},
                     {"sent_on", request.sent_on}});
  FillPerson(r.initPersonal(1)[0], request.professional);
  FillGrants(r, {AuthorityOf(request.to_state)});
  return req.send().wait(wait()).getId();
}

uint64_t Exchange::Answer(const std::string& responder, uint64_t request_id,
                          const std::string& requester, const Person& answer) {
  auto req = Of(responder).session->createRequest();
  auto r = req.initRecord();
  r.setKind("request");
  FillAttributes(r, {{"answers", std::to_string(request_id)}});
  FillPerson(r.initPersonal(1)[0], answer);
  FillGrants(r, {requester});
  return req.send().wait(wait()).getId();
}

uint64_t Exchange::SendAlert(const Alert& alert,
                             const AlertCoordinator& coordinator,
                             const std::vector<std::string>& also) {
  if (coordinator.member_state() != alert.from_state) {
    throw std::invalid_argument(
        "an alert goes out through its own member state's coordinator");
  }
  auto req = Of(AuthorityOf(alert.from_state)).session->createRequest();
  auto r = req.initRecord();
  r.setKind("alert");
  FillAttributes(r, {{"legislative_area", alert.legislative_area},
                     {"from", alert.from_state},
                     {"established_in", alert.establishment_state},
                     {"issued_on", alert.issued_on}});
  FillPerson(r.initPersonal(1)[0], alert.provider);
  FillGrants(r, coordinator.Recipients(alert, also));
  return req.send().wait(wait()).getId();
}

View Exchange::See(const std::string& principal, uint64_t id) {
  auto req = Of(principal).session->getRequest();
  req.setId(id);
  auto response = req.send().wait(wait());
  return ToView(response.getRecord());
}

View Exchange::SeeForProceedings(const std::string& officer, uint64_t id,
                                 const std::string& justification) {
  auto req = Of(officer).session->getRequest();
  req.setId(id);
  auto purpose = req.initPurpose();
  purpose.setKind(rpc::PurposeKind::PUBLIC_INTEREST);
  purpose.setJustification(justification);
  auto response = req.send().wait(wait());
  return ToView(response.getRecord());
}

void Exchange::Flag(const std::string& principal, uint64_t id,
                    const std::string& identifier, const std::string& note) {
  const View v = See(principal, id);
  auto req = Of(principal).session->flagRequest();
  req.setId(id);
  req.setSubjectId(v.subject_ids.at(identifier));
  req.setNote(note);
  req.send().wait(wait());
}

uint64_t Exchange::Rectify(const std::string& owner, uint64_t id,
                           const std::string& identifier,
                           const Fields& fields) {
  const View v = See(owner, id);
  auto req = Of(owner).session->rectifyRequest();
  req.setId(id);
  req.setSubjectId(v.subject_ids.at(identifier));
  auto out = req.initFields(fields.size());
  for (size_t i = 0; i < fields.size(); ++i) {
    out[i].setName(fields[i].first);
    out[i].setValue(fields[i].second);
  }
  return req.send().wait(wait()).getVersion();
}

void Exchange::Close(const std::string& owner, uint64_t id) {
  auto req = Of(owner).session->closeRequest();
  req.setId(id);
  req.send().wait(wait());
}

void Exchange::Withdraw(const std::string& owner, uint64_t id) {
  auto req = Of(owner).session->withdrawRequest();
  req.setId(id);
  req.send().wait(wait());
}

std::string Exchange::SubjectId(const std::string& identifier) {
  auto auditor = Of("imi-dpo").session->auditorRequest().send().getAuditor();
  auto req = auditor.findSubjectRequest();
  req.setIdentifier(identifier);
  return req.send().wait(wait()).getSubjectId().cStr();
}

std::string Exchange::HoldAtSubjectsRequest(const std::string& officer,
                                            const std::string& identifier,
                                            const std::string& reason,
                                            int64_t ends_at) {
  const std::string subject = SubjectId(identifier);
  auto facet = Of(officer).session->officerRequest().send().getOfficer();
  auto req = facet.setSubjectHoldRequest();
  req.setSubjectId(subject);
  req.setReason(reason);
  req.setEndsAtMicros(ends_at);
  auto response = req.send().wait(wait());
  return response.getHold().getId().cStr();
}

SweepResult Exchange::Sweep() {
  auto response = Admin().sweepRequest().send().wait(wait());
  auto report = response.getReport();
  SweepResult out;
  out.closed = report.getClosed();
  out.blocked = report.getBlocked();
  out.erased = report.getErased();
  out.postponed = report.getPostponed();
  for (auto t : report.getTransitions()) {
    out.transitions.push_back(
        std::to_string(t.getRecordId()) + " " + StateName(t.getFrom()) + "->" +
        StateName(t.getTo()) + " " + Iso(t.getDueMicros()));
  }
  for (auto h : report.getHeld()) {
    out.held.push_back(std::to_string(h.getRecordId()) + " until " +
                       Iso(h.getErasableAtMicros()));
  }
  // Lists fitted to the server's message limit: the rest counted.
  if (report.getTransitionsOmitted() > 0) {
    out.transitions.push_back(
        "... and " + std::to_string(report.getTransitionsOmitted()) + " more");
  }
  if (report.getHeldOmitted() > 0) {
    out.held.push_back("... and " + std::to_string(report.getHeldOmitted()) +
                       " more");
  }
  return out;
}

SubjectReport Exchange::AnswerAccessRequest(const std::string& identifier) {
  const std::string subject = SubjectId(identifier);
  auto auditor = Of("imi-dpo").session->auditorRequest().send().getAuditor();
  auto req = auditor.subjectReportRequest();
  req.setSubjectId(subject);
  auto response = req.send().wait(wait());
  SubjectReport out;
  out.json = response.getJson().cStr();
  out.html = RenderReportHtml(out.json);
  return out;
}

}  // namespace imi
