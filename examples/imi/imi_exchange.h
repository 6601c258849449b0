// An IMI-style exchange between public authorities, as a host application
// of Custos (issue 14, DESIGN section 1): competent authorities of member
// states exchange requests and alerts about service providers and
// professionals; the Commission receives alerts without personal data; an
// officer reads blocked data for a stated purpose; the data protection
// officer answers a person's access request with Custos's subject report.
//
// Everything goes through the generated Cap'n Proto client of
// schema/custos.capnp over a socket: this library never opens a data
// directory and never links the engine. Each party has its own connection
// and session, as separate authorities would.
//
// Errors: a refused call throws the kj::Exception the RPC system delivers;
// Refusal() turns one into the server's "<Code>: <message>".
//
// Thread safety: none. One Exchange is used from one thread (the thread
// whose event loop its connections share).

#ifndef CUSTOS_EXAMPLES_IMI_IMI_EXCHANGE_H_
#define CUSTOS_EXAMPLES_IMI_IMI_EXCHANGE_H_

#include <capnp/ez-rpc.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "schema/custos.capnp.h"

namespace imi {

// A competent authority of a member state ("de-bmas" for Germany, "DE").
struct Authority {
  std::string principal;
  std::string member_state;
  std::string name;
};

// The authorities of the story, and the Commission (a redacted principal:
// it receives alerts without personal data, whatever its grants).
const std::vector<Authority>& Authorities();
inline constexpr char kCommission[] = "eu-commission";
// The principal of a member state's competent authority ("" if none).
std::string AuthorityOf(const std::string& member_state);

using Fields = std::vector<std::pair<std::string, std::string>>;

// The personal data of one person (the professional, the service
// provider): an external identifier and named fields.
struct Person {
  std::string identifier;
  Fields fields;
};

// A request from one member state's authority to another's.
struct Request {
  std::string legislative_area;  // "professional-qualifications"...
  std::string from_state;
  std::string to_state;
  std::string sent_on;  // "2026-08-03"
  Person professional;
};

// An alert about a service provider established in a member state.
struct Alert {
  std::string legislative_area;  // "services"...
  std::string from_state;
  std::string establishment_state;
  std::string issued_on;
  Person provider;
};

// The alert coordinator of a member state decides which member states
// receive an alert sent by its authorities: by default the member state of
// establishment and the Commission, on a need-to-know basis; the
// coordinator may add member states it deems concerned.
class AlertCoordinator {
 public:
  explicit AlertCoordinator(std::string member_state);
  // Principals to grant the alert to, without its sender, in a stable
  // order: the authority of the establishment state, those of `also`, the
  // Commission.
  std::vector<std::string> Recipients(
      const Alert& alert, const std::vector<std::string>& also = {}) const;
  const std::string& member_state() const { return member_state_; }

 private:
  std::string member_state_;
};

// What one party sees of a record.
struct View {
  uint64_t id = 0;
  std::string kind;
  std::string owner;
  std::string state;  // "ACTIVE", "CLOSED", "BLOCKED", "ERASED"
  std::vector<std::string> grants;
  std::map<std::string, std::string> attributes;
  bool personal_included = false;
  // The personal fields, by subject identifier.
  std::map<std::string, std::map<std::string, std::string>> personal;
  std::map<std::string, std::string> subject_ids;  // identifier -> id
  uint64_t version = 0;
  int64_t created_at = 0;
  int64_t closed_at = 0;
  int64_t blocked_at = 0;
  int64_t erased_at = 0;
  // "by at note" for each flag ("" note when personal data is withheld).
  std::vector<std::string> flags;
};

struct SweepResult {
  uint64_t closed = 0;
  uint64_t blocked = 0;
  uint64_t erased = 0;
  uint64_t postponed = 0;
  // "<record id> <FROM>-><TO> <due>" per transition applied.
  std::vector<std::string> transitions;
  // "<record id> until <erasable at>" per erasure a hold postponed.
  std::vector<std::string> held;
};

// The answer to a person's access request (DESIGN section 5).
struct SubjectReport {
  std::string json;  // docs/subject-report.md, as the server produced it
  std::string html;  // A page for the person, rendered from the JSON.
};

// Times: microseconds since the epoch <-> "2027-02-28T12:00:00Z".
int64_t Micros(const std::string& iso);
std::string Iso(int64_t micros);

// "<Code>: <message>" of a refused call run by `call`; "" if it succeeded.
std::string Refusal(const std::function<void()>& call);

// The HTML page of a subject report's JSON (every string escaped).
std::string RenderReportHtml(const std::string& json);

class Exchange {
 public:
  // `address` as capnp::EzRpcClient takes it ("unix:/path/custosd.sock",
  // "127.0.0.1:7457"). Logs in as `admin_principal`.
  Exchange(std::string address, const std::string& admin_principal,
           const std::string& admin_token);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  kj::WaitScope& wait();

  // Creates the principals of the story (Authorities(), the Commission
  // redacted, the officers "de-officer" and "at-officer", the data
  // protection officer "imi-dpo" as auditor), logs each in, and makes sure
  // the "request" and "alert" policies of the IMI rules are in force
  // (setting them if the server has other ones). Returns the policies in
  // force as "kind block=... erase=... history=...".
  //
  // A principal that exists already as the story makes it (same display
  // name, that one role, same redaction, not revoked: an earlier run's) is
  // reused: its credential is rotated (Admin.rotateCredential), which ends
  // the sessions opened with its old token. Throws std::runtime_error,
  // naming it, if one of those ids belongs to another principal; then no
  // principal was created or changed.
  std::vector<std::string> SetUp();

  // Requests: sent by the authority of request.from_state, granted to
  // that of request.to_state. The answer is the responder's own record
  // (kind "request", attribute "answers" = the request's id), granted to
  // the requester.
  uint64_t SendRequest(const Request& request);
  uint64_t Answer(const std::string& responder, uint64_t request_id,
                  const std::string& requester, const Person& answer);

  // Alerts: sent by the authority of alert.from_state to the recipients
  // its member state's coordinator decides.
  uint64_t SendAlert(const Alert& alert, const AlertCoordinator& coordinator,
                     const std::vector<std::string>& also = {});

  // What `principal` sees of record `id`; throws (NotFound) if nothing.
  View See(const std::string& principal, uint64_t id);
  // An officer's read of closed or blocked data, for legal proceedings.
  View SeeForProceedings(const std::string& officer, uint64_t id,
                         const std::string& justification);

  // Flag and Rectify read the record first to learn the subject's id
  // (users have no findSubject): that read is a disclosure the history
  // records, as any read.
  // A recipient notes that `identifier`'s data is incorrect.
  void Flag(const std::string& principal, uint64_t id,
            const std::string& identifier, const std::string& note);
  // The owner replaces `identifier`'s data; the record's new version.
  uint64_t Rectify(const std::string& owner, uint64_t id,
                   const std::string& identifier, const Fields& fields);
  void Close(const std::string& owner, uint64_t id);
  // An unfounded alert: invisible to every user at once.
  void Withdraw(const std::string& owner, uint64_t id);

  // A legal hold on all of a person's records, at their request, set by
  // an officer; the hold's id.
  std::string HoldAtSubjectsRequest(const std::string& officer,
                                    const std::string& identifier,
                                    const std::string& reason, int64_t ends_at);

  // The administrator's retention sweep, now.
  SweepResult Sweep();

  // The data protection officer answers `identifier`'s access request.
  SubjectReport AnswerAccessRequest(const std::string& identifier);

 private:
  struct Party;
  Party& Login(const std::string& principal, const std::string& token);
  Party& Of(const std::string& principal);
  custos::rpc::Admin::Client Admin();
  std::string SubjectId(const std::string& identifier);

  std::string address_;
  // Connections in login order; the admin's first. Held by pointer: a
  // Cap'n Proto client's destructor may throw.
  std::vector<std::unique_ptr<Party>> parties_;
};

}  // namespace imi

#endif  // CUSTOS_EXAMPLES_IMI_IMI_EXCHANGE_H_
