// imi_demo: the IMI story of examples/imi/README.md, told against a
// running custosd through examples/imi/imi_exchange.h (the RPC API only).
// Each step prints what each party sees and checks it against what the
// story says that party should see.
//
// Two modes, chosen by --test-clock-file:
//   - with it, against custosd-testclock (the test build of custosd): the
//     whole five-year story, the server's clock moved date by date by
//     rewriting its control file;
//   - without it, against any custosd on the real clock (the production
//     one of `./dev run`): the present-day part of the story, every step
//     that needs no clock moved; blocking and erasure need years. It runs
//     again against the same server: the story's principals are reused
//     (Exchange::SetUp) and each run makes new records.
//
//   imi_demo --connect unix:custos-data/custosd.sock
//            --admin-token-file custos-admin.token
//            [--test-clock-file custos-test-clock] --out imi-reports
//
// Exits 0 if every party saw what it should; 1 if one saw something else
// (each such view is printed as "UNEXPECTED") or a call failed.

#include <fcntl.h>
#include <kj/exception.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "examples/imi/imi_exchange.h"

namespace {

constexpr char kNotFound[] = "NotFound: record not found";
constexpr char kLena[] = "lena.schmidt@example.de";
constexpr char kJan[] = "jan.kowalski@example.fr";
constexpr char kMax[] = "max.huber@example.at";

// "STATE, personal data: name=value ..." or "STATE, no personal data".
std::string Describe(const imi::View& v) {
  std::string out = v.state;
  if (v.personal_included) {
    out += ", personal data:";
    for (const auto& [identifier, fields] : v.personal) {
      for (const auto& [name, value] : fields) {
        out += std::string(" ") + name + "=" + value;
      }
    }
  } else {
    out += ", no personal data";
  }
  return out;
}

// The flags without their times, which differ from run to run on the real
// clock: "flag by <who>: <note>", or "(note withheld)".
std::string DescribeFlags(const imi::View& v) {
  std::string out;
  for (const std::string& flag : v.flags) {
    const size_t by_end = flag.find(' ');
    const size_t at_end = flag.find(' ', by_end + 1);
    const std::string note = flag.substr(at_end + 1);
    if (!out.empty()) out += "; ";
    out += std::string("flag by ") + flag.substr(0, by_end) + ": " +
           (note.empty() ? std::string("(note withheld)") : note);
  }
  return out.empty() ? std::string("no flags") : out;
}

// The story as it is told: its moments and the checks of what each party
// sees, counting what was unexpected.
class Story {
 public:
  // `clock_file`: custosd-testclock's control file, or "" on the real
  // clock.
  Story(imi::Exchange& x, std::string clock_file)
      : x_(x), clock_file_(std::move(clock_file)) {}

  imi::Exchange& x() { return x_; }
  bool moves_clock() const { return !clock_file_.empty(); }

  // With a test clock, moves it to `iso`: a new file renamed over the
  // control file, so the server never reads half of it. On the real clock,
  // only says which moment of the story comes next.
  void At(const std::string& iso) {
    if (!moves_clock()) {
      std::cout << "\n== the story's " << iso << ", told now\n";
      return;
    }
    const std::string tmp = clock_file_ + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << iso << "\n";
      if (!out.good())
        throw std::runtime_error(std::string("cannot write ") + tmp);
    }
    if (std::rename(tmp.c_str(), clock_file_.c_str()) != 0) {
      throw std::runtime_error(std::string("cannot replace ") + clock_file_);
    }
    std::cout << "\n== " << iso << "\n";
  }

  // Prints what `who` sees of record `id` (described by `describe`, or the
  // refusal) and checks that it is `expected`.
  void Sees(const std::string& who, uint64_t id, const std::string& expected,
            std::string (*describe)(const imi::View&) = Describe) {
    std::string seen;
    const std::string refusal =
        imi::Refusal([&] { seen = describe(x_.See(who, id)); });
    if (!refusal.empty()) seen = refusal;
    Check(std::string(who) + " sees record " + std::to_string(id), seen,
          expected);
  }

  // Prints "<what>: <seen>", and an UNEXPECTED line unless it is
  // `expected`.
  void Check(const std::string& what, const std::string& seen,
             const std::string& expected) {
    std::cout << "  " << what << ": " << seen << "\n";
    if (seen == expected) return;
    std::cout << "    UNEXPECTED: the story says " << expected << "\n";
    ++unexpected_;
  }

  int unexpected() const { return unexpected_; }

 private:
  imi::Exchange& x_;
  std::string clock_file_;
  int unexpected_ = 0;
};

// The records of one telling of the story.
struct Told {
  uint64_t request = 0;    // Austria asks Germany about Lena Schmidt.
  uint64_t answer = 0;     // Germany's answer.
  uint64_t alert = 0;      // About Jan Kowalski, closed in October.
  uint64_t unfounded = 0;  // About Max Huber, withdrawn.
};

// From 2026-08-03 to 2026-10-15: every step that takes effect at once,
// told on either clock.
Told TellTheFirstMonths(Story& s) {
  imi::Exchange& x = s.x();
  Told told;
  s.At("2026-08-03T09:00:00Z");
  std::cout << "  policies in force:\n";
  for (const auto& p : x.SetUp()) std::cout << "    " << p << "\n";
  imi::Request request{"professional-qualifications",
                       "AT",
                       "DE",
                       "2026-08-03",
                       {kLena,
                        {{"name", "Lena Schmidt"},
                         {"qualification", "Meisterin im Elektrohandwerk"}}}};
  told.request = x.SendRequest(request);
  std::cout << "  at-bmdw asks de-bmas about Lena Schmidt: request "
            << told.request << "\n";
  s.Sees("de-bmas", told.request,
         "ACTIVE, personal data: name=Lena Schmidt "
         "qualification=Meisterin im Elektrohandwerk");
  for (const char* p : {"fr-dgccrf", "eu-commission"}) {
    s.Sees(p, told.request, kNotFound);
  }

  s.At("2026-08-10T10:00:00Z");
  told.answer =
      x.Answer("de-bmas", told.request, "at-bmdw",
               {kLena, {{"register", "HWK Berlin 4711"}, {"valid", "yes"}}});
  std::cout << "  de-bmas answers: record " << told.answer << "\n";
  s.Sees("at-bmdw", told.answer,
         "ACTIVE, personal data: register=HWK Berlin 4711 valid=yes");

  s.At("2026-08-17T08:00:00Z");
  imi::Alert alert{
      "services",
      "DE",
      "FR",
      "2026-08-17",
      {kJan, {{"name", "Jan Kowalski"}, {"registration", "RCS 123"}}}};
  told.alert = x.SendAlert(alert, imi::AlertCoordinator("DE"), {"AT"});
  std::cout << "  de-bmas alerts about Jan Kowalski (established in FR); "
               "DE's coordinator adds AT: alert "
            << told.alert << "\n";
  for (const char* p : {"fr-dgccrf", "at-bmdw"}) {
    s.Sees(p, told.alert,
           "ACTIVE, personal data: name=Jan Kowalski registration=RCS 123");
  }
  s.Sees("eu-commission", told.alert, "ACTIVE, no personal data");

  s.At("2026-08-20T14:00:00Z");
  x.Flag("at-bmdw", told.alert, kJan, "registration number is RCS 124");
  std::cout << "  at-bmdw flags the registration number as incorrect\n";
  s.Sees("de-bmas", told.alert,
         "flag by at-bmdw: registration number is RCS 124", DescribeFlags);
  s.Sees("eu-commission", told.alert, "flag by at-bmdw: (note withheld)",
         DescribeFlags);
  s.Check(
      "at-bmdw tries to rectify it", imi::Refusal([&] {
        x.Rectify("at-bmdw", told.alert, kJan, {{"registration", "RCS 124"}});
      }),
      "PermissionDenied: only the record's owner may do this");

  s.At("2026-08-21T09:00:00Z");
  const uint64_t version =
      x.Rectify("de-bmas", told.alert, kJan,
                {{"name", "Jan Kowalski"}, {"registration", "RCS 124"}});
  s.Check("de-bmas rectifies it: version", std::to_string(version), "2");
  s.Sees("fr-dgccrf", told.alert,
         "ACTIVE, personal data: name=Jan Kowalski registration=RCS 124");

  s.At("2026-08-31T12:00:00Z");
  x.Close("at-bmdw", told.request);
  x.Close("de-bmas", told.answer);
  std::cout << "  the request and its answer are closed\n";
  s.Sees("de-bmas", told.request, "CLOSED, no personal data");
  s.Sees("at-bmdw", told.answer, "CLOSED, no personal data");

  s.At("2026-09-01T10:00:00Z");
  imi::Alert unfounded{"services",
                       "FR",
                       "AT",
                       "2026-09-01",
                       {kMax, {{"name", "Max Huber"}, {"trade", "roofer"}}}};
  told.unfounded = x.SendAlert(unfounded, imi::AlertCoordinator("FR"));
  std::cout << "  fr-dgccrf alerts about Max Huber: alert " << told.unfounded
            << "\n";
  s.Sees("at-bmdw", told.unfounded,
         "ACTIVE, personal data: name=Max Huber trade=roofer");
  s.Sees("eu-commission", told.unfounded, "ACTIVE, no personal data");
  s.At("2026-09-02T10:00:00Z");
  x.Withdraw("fr-dgccrf", told.unfounded);
  std::cout << "  the alert was unfounded: withdrawn\n";
  for (const char* p : {"fr-dgccrf", "at-bmdw", "eu-commission", "de-bmas"}) {
    s.Sees(p, told.unfounded, kNotFound);
  }

  // The hold lasts until 31 December of the year after the request (on
  // the test clock, 2027-12-31): in the future on either clock.
  s.At("2026-09-03T10:00:00Z");
  const std::string year =
      imi::Iso(x.See("at-bmdw", told.request).created_at).substr(0, 4);
  const std::string hold_ends =
      std::to_string(std::stoi(year) + 1) + "-12-31T00:00:00Z";
  std::cout << "  at Max Huber's request, a legal hold until " << hold_ends
            << ": "
            << x.HoldAtSubjectsRequest(
                   "at-officer", kMax,
                   "at the subject's request: damages claim, HG Wien 10 Cg "
                   "1/26",
                   imi::Micros(hold_ends))
            << "\n";

  s.At("2026-10-15T16:00:00Z");
  x.Close("de-bmas", told.alert);
  std::cout << "  de-bmas closes the alert\n";
  for (const char* p : {"fr-dgccrf", "at-bmdw", "eu-commission"}) {
    s.Sees(p, told.alert, "CLOSED, no personal data");
  }
  return told;
}

// An officer reads the request, closed or blocked (`state`), for legal
// proceedings: "not found" without a purpose, the data with one.
void TheOfficerReadsTheRequest(Story& s, const Told& told,
                               const std::string& state) {
  s.Sees("de-officer", told.request, kNotFound);
  std::string seen;
  const std::string refusal = imi::Refusal([&] {
    seen = Describe(s.x().SeeForProceedings("de-officer", told.request,
                                            "LG Berlin 12 O 345/27"));
  });
  s.Check("de-officer, for legal proceedings, sees record " +
              std::to_string(told.request),
          refusal.empty() ? seen : refusal,
          state +
              ", personal data: name=Lena Schmidt "
              "qualification=Meisterin im Elektrohandwerk");
}

void ShowSweep(Story& s, const imi::SweepResult& r, uint64_t blocked,
               uint64_t erased, uint64_t postponed) {
  s.Check("sweep: blocked, erased, postponed by holds",
          std::to_string(r.blocked) + ", " + std::to_string(r.erased) + ", " +
              std::to_string(r.postponed),
          std::to_string(blocked) + ", " + std::to_string(erased) + ", " +
              std::to_string(postponed));
  for (const auto& t : r.transitions) std::cout << "    " << t << "\n";
  for (const auto& h : r.held) std::cout << "    held: " << h << "\n";
}

// From 2027-02-28 to 2029-08-31: blocking and erasure, on the test clock
// only (the counts assume a server of the story's own).
void TellTheLaterYears(Story& s, const Told& told) {
  imi::Exchange& x = s.x();
  s.At("2027-02-28T12:00:00Z");
  for (const char* p : {"at-bmdw", "de-bmas"}) {
    s.Sees(p, told.request, kNotFound);
    s.Sees(p, told.answer, kNotFound);
  }
  ShowSweep(s, x.Sweep(), 2, 0, 0);
  s.At("2027-03-02T10:00:00Z");
  ShowSweep(s, x.Sweep(), 0, 0, 1);
  s.At("2027-04-15T16:00:00Z");
  for (const char* p : {"fr-dgccrf", "at-bmdw", "eu-commission"}) {
    s.Sees(p, told.alert, kNotFound);
  }
  ShowSweep(s, x.Sweep(), 0, 1, 0);
  s.At("2027-06-01T09:00:00Z");
  TheOfficerReadsTheRequest(s, told, "BLOCKED");
  s.At("2027-12-31T00:00:00Z");
  ShowSweep(s, x.Sweep(), 0, 1, 0);
  s.At("2029-08-31T12:00:00Z");
  ShowSweep(s, x.Sweep(), 0, 2, 0);
  s.Check("de-officer, for legal proceedings, sees record " +
              std::to_string(told.request),
          Describe(x.SeeForProceedings("de-officer", told.request,
                                       "LG Berlin appeal")),
          "ERASED, no personal data");
}

// A subject report is personal data: its file is the owner's alone (0600),
// also when an earlier run left it with a wider mode (emptied before its
// mode is narrowed, so nothing is readable in between), as `custos subject
// report --out` writes it.
void WritePrivateFile(const std::string& path, const std::string& text) {
  const int fd =
      ::open(path.c_str(),
             O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw std::runtime_error(std::string("cannot write ") + path);
  bool ok = ::fchmod(fd, 0600) == 0;
  for (size_t done = 0; ok && done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ::close(fd) == 0 && ok;
  if (!ok) throw std::runtime_error(std::string("cannot write ") + path);
}

// Each person's access request: the reports written to `out_dir`, each
// checked to list this telling's records about the person.
void AnswerTheAccessRequests(Story& s, const Told& told,
                             const std::string& out_dir) {
  // The reports' directory too, when the demo makes it (their names are
  // people's identifiers); one given that exists is left as it is (a
  // review, helper-122: `--out .` made the user's own directory 0700).
  if (std::filesystem::create_directories(out_dir)) {
    std::filesystem::permissions(out_dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace);
  }
  const std::vector<std::pair<std::string, std::vector<uint64_t>>> people = {
      {kLena, {told.request, told.answer}},
      {kJan, {told.alert}},
      {kMax, {told.unfounded}}};
  for (const auto& [who, records] : people) {
    const imi::SubjectReport report = s.x().AnswerAccessRequest(who);
    const std::string base = out_dir + "/" + who;
    WritePrivateFile(base + ".json", report.json);
    WritePrivateFile(base + ".html", report.html);
    std::cout << "  access request of " << who << ": " << base
              << ".json and .html\n";
    const nlohmann::json parsed = nlohmann::json::parse(report.json);
    std::vector<uint64_t> listed;
    for (const auto& r : parsed.at("records")) {
      listed.push_back(r.at("id").get<uint64_t>());
    }
    std::string missing;
    for (uint64_t id : records) {
      if (std::find(listed.begin(), listed.end(), id) != listed.end()) {
        continue;
      }
      if (!missing.empty()) missing += " ";
      missing += std::to_string(id);
    }
    s.Check("  this telling's records missing from it",
            missing.empty() ? std::string("none") : missing, "none");
  }
}

int Run(const std::string& address, const std::string& token_file,
        const std::string& clock, const std::string& out_dir) {
  std::ifstream in(token_file);
  std::string token;
  std::getline(in, token);
  if (token.empty())
    throw std::runtime_error(std::string("no token in ") + token_file);
  imi::Exchange x(address, "admin", token);
  Story s(x, clock);

  const Told told = TellTheFirstMonths(s);
  if (s.moves_clock()) {
    TellTheLaterYears(s, told);
  } else {
    std::cout << "\n== now, the officer's read of the closed request\n";
    TheOfficerReadsTheRequest(s, told, "CLOSED");
    std::cout << "\n== later: blocked six months after closure, erased three "
                 "years after it,\n"
                 "   held until the hold ends: years from now on the real "
                 "clock. The whole story\n"
                 "   needs custosd-testclock: examples/imi/README.md, "
                 "\"The whole story,\n"
                 "   against custosd-testclock\".\n";
  }
  s.At("2031-05-05T10:00:00Z");
  AnswerTheAccessRequests(s, told, out_dir);
  if (s.unexpected() > 0) {
    std::cout << "\n" << s.unexpected() << " view(s) UNEXPECTED\n";
    return 1;
  }
  std::cout << "\nevery party saw what the story says\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "The IMI story of examples/imi/README.md against custosd: the whole "
      "story with --test-clock-file (custosd-testclock), its present-day "
      "part without (any custosd, on the real clock). Exits 1 if a party "
      "sees something else than the story says."};
  std::string address = "unix:custos-data/custosd.sock";
  std::string token_file = "custos-admin.token";
  std::string clock;
  std::string out_dir = "imi-reports";
  app.add_option("--connect", address, "the server's address")
      ->capture_default_str();
  app.add_option("--admin-token-file", token_file,
                 "the first admin's token, as custosd wrote it")
      ->capture_default_str();
  app.add_option("--test-clock-file", clock,
                 "custosd-testclock's control file: tell the whole story, "
                 "moving the server's clock (a new server each time)");
  app.add_option("--out", out_dir, "where the subject reports are written")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return Run(address, token_file, clock, out_dir);
  } catch (const kj::Exception& e) {
    std::cerr << "imi_demo: " << e.getDescription().cStr() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "imi_demo: " << e.what() << "\n";
  }
  return 1;
}
