// imi_demo: the IMI story of examples/imi/README.md, told against a
// running custosd-testclock (the test build of custosd, whose clock this
// program moves by rewriting its control file, since the story spans five
// years). It uses only the RPC API, through examples/imi/imi_exchange.h.
//
//   imi_demo --connect unix:custos-data/custosd.sock
//            --admin-token-file custos-admin.token
//            --test-clock-file custos-test-clock --out imi-reports

#include <kj/exception.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "examples/imi/imi_exchange.h"

namespace {

// Moves the server's test clock: a new file renamed over the control file,
// so the server never reads half of it.
void At(const std::string& clock_file, const std::string& iso) {
  const std::string tmp = clock_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << iso << "\n";
    if (!out.good())
      throw std::runtime_error(std::string("cannot write ") + tmp);
  }
  if (std::rename(tmp.c_str(), clock_file.c_str()) != 0) {
    throw std::runtime_error(std::string("cannot replace ") + clock_file);
  }
  std::cout << "\n== " << iso << "\n";
}

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

void Show(imi::Exchange& x, const std::string& who, uint64_t id) {
  std::string seen;
  const std::string refusal =
      imi::Refusal([&] { seen = Describe(x.See(who, id)); });
  std::cout << "  " << who << " sees record " << id << ": "
            << (refusal.empty() ? seen : refusal) << "\n";
}

void ShowSweep(const imi::SweepResult& s) {
  std::cout << "  sweep: blocked " << s.blocked << ", erased " << s.erased
            << ", postponed by holds " << s.postponed << "\n";
  for (const auto& t : s.transitions) std::cout << "    " << t << "\n";
  for (const auto& h : s.held) std::cout << "    held: " << h << "\n";
}

int Run(const std::string& address, const std::string& token_file,
        const std::string& clock, const std::string& out_dir) {
  std::ifstream in(token_file);
  std::string token;
  std::getline(in, token);
  if (token.empty())
    throw std::runtime_error(std::string("no token in ") + token_file);
  imi::Exchange x(address, "admin", token);

  At(clock, "2026-08-03T09:00:00Z");
  std::cout << "  policies in force:\n";
  for (const auto& p : x.SetUp()) std::cout << "    " << p << "\n";
  imi::Request request{"professional-qualifications",
                       "AT",
                       "DE",
                       "2026-08-03",
                       {"lena.schmidt@example.de",
                        {{"name", "Lena Schmidt"},
                         {"qualification", "Meisterin im Elektrohandwerk"}}}};
  const uint64_t r = x.SendRequest(request);
  std::cout << "  at-bmdw asks de-bmas about Lena Schmidt: request " << r
            << "\n";
  for (const char* p : {"de-bmas", "fr-dgccrf"}) Show(x, p, r);

  At(clock, "2026-08-10T10:00:00Z");
  const uint64_t a =
      x.Answer("de-bmas", r, "at-bmdw",
               {"lena.schmidt@example.de",
                {{"register", "HWK Berlin 4711"}, {"valid", "yes"}}});
  std::cout << "  de-bmas answers: record " << a << "\n";
  Show(x, "at-bmdw", a);

  At(clock, "2026-08-17T08:00:00Z");
  imi::Alert alert{"services",
                   "DE",
                   "FR",
                   "2026-08-17",
                   {"jan.kowalski@example.fr",
                    {{"name", "Jan Kowalski"}, {"registration", "RCS 123"}}}};
  const uint64_t l1 = x.SendAlert(alert, imi::AlertCoordinator("DE"), {"AT"});
  std::cout << "  de-bmas alerts about Jan Kowalski (established in FR); "
               "DE's coordinator adds AT: alert "
            << l1 << "\n";
  for (const char* p : {"fr-dgccrf", "at-bmdw", "eu-commission"}) {
    Show(x, p, l1);
  }

  At(clock, "2026-08-20T14:00:00Z");
  x.Flag("at-bmdw", l1, "jan.kowalski@example.fr",
         "registration number is RCS 124");
  std::cout << "  at-bmdw flags the registration number as incorrect\n";
  At(clock, "2026-08-21T09:00:00Z");
  const uint64_t version =
      x.Rectify("de-bmas", l1, "jan.kowalski@example.fr",
                {{"name", "Jan Kowalski"}, {"registration", "RCS 124"}});
  std::cout << "  de-bmas rectifies it: version " << version << "\n";
  Show(x, "fr-dgccrf", l1);

  At(clock, "2026-08-31T12:00:00Z");
  x.Close("at-bmdw", r);
  x.Close("de-bmas", a);
  std::cout << "  the request and its answer are closed\n";
  Show(x, "de-bmas", r);

  At(clock, "2026-09-01T10:00:00Z");
  imi::Alert unfounded{
      "services",
      "FR",
      "AT",
      "2026-09-01",
      {"max.huber@example.at", {{"name", "Max Huber"}, {"trade", "roofer"}}}};
  const uint64_t l2 = x.SendAlert(unfounded, imi::AlertCoordinator("FR"));
  std::cout << "  fr-dgccrf alerts about Max Huber: alert " << l2 << "\n";
  Show(x, "at-bmdw", l2);
  At(clock, "2026-09-02T10:00:00Z");
  x.Withdraw("fr-dgccrf", l2);
  std::cout << "  the alert was unfounded: withdrawn\n";
  for (const char* p : {"fr-dgccrf", "at-bmdw", "eu-commission"}) {
    Show(x, p, l2);
  }
  At(clock, "2026-09-03T10:00:00Z");
  std::cout << "  at Max Huber's request, a legal hold until 2027-12-31: "
            << x.HoldAtSubjectsRequest(
                   "at-officer", "max.huber@example.at",
                   "at the subject's request: damages claim, HG Wien 10 Cg "
                   "1/26",
                   imi::Micros("2027-12-31T00:00:00Z"))
            << "\n";

  At(clock, "2026-10-15T16:00:00Z");
  x.Close("de-bmas", l1);
  std::cout << "  de-bmas closes the alert\n";
  for (const char* p : {"fr-dgccrf", "eu-commission"}) Show(x, p, l1);

  At(clock, "2027-02-28T12:00:00Z");
  for (const char* p : {"at-bmdw", "de-bmas"}) Show(x, p, r);
  ShowSweep(x.Sweep());
  At(clock, "2027-03-02T10:00:00Z");
  ShowSweep(x.Sweep());
  At(clock, "2027-04-15T16:00:00Z");
  ShowSweep(x.Sweep());
  At(clock, "2027-06-01T09:00:00Z");
  Show(x, "de-officer", r);
  std::cout << "  de-officer, for legal proceedings: "
            << Describe(x.SeeForProceedings("de-officer", r,
                                            "LG Berlin 12 O 345/27"))
            << "\n";
  At(clock, "2027-12-31T00:00:00Z");
  ShowSweep(x.Sweep());
  At(clock, "2029-08-31T12:00:00Z");
  ShowSweep(x.Sweep());

  At(clock, "2031-05-05T10:00:00Z");
  std::filesystem::create_directories(out_dir);
  for (const char* who : {"lena.schmidt@example.de", "jan.kowalski@example.fr",
                          "max.huber@example.at"}) {
    const imi::SubjectReport report = x.AnswerAccessRequest(who);
    const std::string base = out_dir + "/" + who;
    std::ofstream(base + ".json") << report.json;
    std::ofstream(base + ".html") << report.html;
    std::cout << "  access request of " << who << ": " << base
              << ".json and .html\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"The IMI story of examples/imi/README.md against custosd"};
  std::string address = "unix:custos-data/custosd.sock";
  std::string token_file = "custos-admin.token";
  std::string clock = "custos-test-clock";
  std::string out_dir = "imi-reports";
  app.add_option("--connect", address, "the server's address")
      ->capture_default_str();
  app.add_option("--admin-token-file", token_file,
                 "the first admin's token, as custosd wrote it")
      ->capture_default_str();
  app.add_option("--test-clock-file", clock, "custosd-testclock's control file")
      ->capture_default_str();
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
