// custos stats: statistics that survive erasure (docs/accountability.md),
// the IMI report's "Time needed to deal with a request" table first; with
// --engine, the engine's counters since custosd started.

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "storage/statistics.h"
#include "tools/cli.h"

namespace custos::cli {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "2026-08" -> 202608. UsageError naming `flag` otherwise.
uint32_t ParseMonth(const std::string& text, std::string_view flag) {
  // Digits only where digits go: sscanf's %u alone took " 026" or "+9"
  // (helper-129).
  const bool shaped = text.size() == 7 && text[4] == '-' &&
                      std::all_of(text.begin(), text.begin() + 4, IsDigit) &&
                      std::all_of(text.begin() + 5, text.end(), IsDigit);
  const unsigned y =
      shaped ? static_cast<unsigned>(std::stoul(text.substr(0, 4))) : 0;
  const unsigned m =
      shaped ? static_cast<unsigned>(std::stoul(text.substr(5, 2))) : 0;
  if (!shaped || !IsValidMonth(y * 100 + m)) {
    throw UsageError(std::string(flag) + " takes a month as YYYY-MM, not '" +
                     Printable(text) + "'");
  }
  return y * 100 + m;
}

std::string MonthName(uint32_t month) {
  char out[16];
  std::snprintf(out, sizeof(out), "%04u-%02u", month / 100, month % 100);
  return out;
}

nlohmann::json MonthJson(rpc::MonthStatistics::Reader m) {
  nlohmann::json within = nlohmann::json::object();
  auto buckets = m.getClosedWithin();
  for (size_t i = 0; i < kCloseBuckets; ++i) {
    within[std::string(CloseBucketName(i))] =
        i < buckets.size() ? buckets[static_cast<unsigned>(i)] : 0;
  }
  nlohmann::json out = {{"created", m.getCreated()},
                        {"closed", m.getClosed()},
                        {"blocked", m.getBlocked()},
                        {"erased", m.getErased()},
                        {"closed_within", within}};
  if (m.getMonth() != 0) out["month"] = MonthName(m.getMonth());
  return out;
}

nlohmann::json StatisticsJson(rpc::Statistics::Reader s) {
  nlohmann::json kinds = nlohmann::json::array();
  for (auto k : s.getKinds()) {
    nlohmann::json months = nlohmann::json::array();
    for (auto m : k.getMonths()) months.push_back(MonthJson(m));
    nlohmann::json attributes = nlohmann::json::array();
    for (auto a : k.getAttributes()) {
      nlohmann::json values = nlohmann::json::object();
      for (auto v : a.getValues()) values[Str(v.getValue())] = v.getRecords();
      attributes.push_back({{"name", Str(a.getName())},
                            {"values", values},
                            {"other", a.getOther()}});
    }
    kinds.push_back({{"kind", Str(k.getKind())},
                     {"records",
                      {{"active", k.getActive()},
                       {"closed", k.getClosed()},
                       {"blocked", k.getBlocked()},
                       {"erased", k.getErased()}}},
                     {"total", MonthJson(k.getTotal())},
                     {"months", months},
                     {"attributes", attributes},
                     {"other_attributes", k.getOtherAttributes()}});
  }
  nlohmann::json buckets = nlohmann::json::array();
  for (size_t i = 0; i < kCloseBuckets; ++i) {
    buckets.push_back(std::string(CloseBucketName(i)));
  }
  auto month_or_null = [](uint32_t month) -> nlohmann::json {
    if (month == 0) return nullptr;
    return MonthName(month);
  };
  return {
      {"format", "custos-statistics"},
      {"version", 1},
      {"generated_at", TimeJson(s.getGeneratedAtMicros())},
      {"query",
       {{"kind", s.getKind().size() == 0 ? nlohmann::json(nullptr)
                                         : nlohmann::json(Str(s.getKind()))},
        {"from", month_or_null(s.getFromMonth())},
        {"to", month_or_null(s.getToMonth())}}},
      {"close_buckets", buckets},
      {"total", MonthJson(s.getTotal())},
      {"kinds", kinds},
      {"pending", s.getPending()},
      {"unreadable", s.getUnreadable()}};
}

// "n (p%)" of the closures `closed`.
std::string Share(uint64_t n, uint64_t closed) {
  if (closed == 0) return std::to_string(n);
  char out[48];
  std::snprintf(out, sizeof(out), "%llu (%.1f%%)",
                static_cast<unsigned long long>(n),
                100.0 * static_cast<double>(n) / static_cast<double>(closed));
  return out;
}

void AddTimeRow(Table& t, const std::string& kind,
                rpc::MonthStatistics::Reader m) {
  std::vector<std::string> row = {kind, std::to_string(m.getClosed())};
  auto buckets = m.getClosedWithin();
  for (size_t i = 0; i < kCloseBuckets; ++i) {
    row.push_back(
        Share(i < buckets.size() ? buckets[static_cast<unsigned>(i)] : 0,
              m.getClosed()));
  }
  t.Add(std::move(row));
}

void PrintStatistics(rpc::Statistics::Reader s) {
  std::cout << "Time needed to deal with a request (records closed, by time "
               "from creation to closure)\n";
  std::vector<std::string> header = {"KIND", "CLOSED"};
  for (size_t i = 0; i < kCloseBuckets; ++i) {
    std::string label(CloseBucketLabel(i));
    for (char& c : label) c = static_cast<char>(std::toupper(c));
    header.push_back(label);
  }
  Table time(header);
  for (auto k : s.getKinds()) AddTimeRow(time, Str(k.getKind()), k.getTotal());
  if (s.getKinds().size() > 1) AddTimeRow(time, "all", s.getTotal());
  time.Print();

  std::cout << "\nRecords by state now, and transitions in the months "
               "counted\n";
  Table records({"KIND", "ACTIVE", "CLOSED", "BLOCKED", "ERASED", "CREATED",
                 "CLOSED IN", "BLOCKED IN", "ERASED IN"});
  for (auto k : s.getKinds()) {
    auto t = k.getTotal();
    records.Add({Str(k.getKind()), std::to_string(k.getActive()),
                 std::to_string(k.getClosed()), std::to_string(k.getBlocked()),
                 std::to_string(k.getErased()), std::to_string(t.getCreated()),
                 std::to_string(t.getClosed()), std::to_string(t.getBlocked()),
                 std::to_string(t.getErased())});
  }
  records.Print();

  std::cout << "\nBy month (UTC)\n";
  Table months({"KIND", "MONTH", "CREATED", "CLOSED", "BLOCKED", "ERASED"});
  for (auto k : s.getKinds()) {
    for (auto m : k.getMonths()) {
      months.Add({Str(k.getKind()), MonthName(m.getMonth()),
                  std::to_string(m.getCreated()), std::to_string(m.getClosed()),
                  std::to_string(m.getBlocked()),
                  std::to_string(m.getErased())});
    }
  }
  months.Print();

  std::cout << "\nRecords created, by attribute value (all time)\n";
  Table attributes({"KIND", "ATTRIBUTE", "VALUE", "RECORDS"});
  for (auto k : s.getKinds()) {
    for (auto a : k.getAttributes()) {
      for (auto v : a.getValues()) {
        attributes.Add({Str(k.getKind()), Str(a.getName()), Str(v.getValue()),
                        std::to_string(v.getRecords())});
      }
      if (a.getOther() != 0) {
        attributes.Add({Str(k.getKind()), Str(a.getName()), "(other)",
                        std::to_string(a.getOther())});
      }
    }
    if (k.getOtherAttributes() != 0) {
      attributes.Add({Str(k.getKind()), "(other)", "",
                      std::to_string(k.getOtherAttributes())});
    }
  }
  attributes.Print();
  // As the JSON says (helper-129: the tables left it out, and their counts
  // read as whole).
  if (s.getUnreadable() != 0) {
    std::cout << "\ntransitions that could not be read, counted nowhere: "
              << s.getUnreadable() << "\n";
  }
}

void PrintEngineCounters(Connection& c, bool json) {
  auto response = c.Admin().statsRequest().send().wait(c.wait());
  auto s = response.getStats();
  if (json) {
    nlohmann::json per_sync = nullptr;  // No sync yet.
    if (s.getSyncs() != 0) {
      per_sync = static_cast<double>(s.getWrites()) /
                 static_cast<double>(s.getSyncs());
    }
    return PrintJson({{"writes", s.getWrites()},
                      {"syncs", s.getSyncs()},
                      {"writes_per_sync", per_sync},
                      {"cached_keys", s.getCachedKeys()},
                      {"key_cache_hits", s.getKeyCacheHits()},
                      {"key_cache_misses", s.getKeyCacheMisses()}});
  }
  char per_sync[32] = "-";
  if (s.getSyncs() != 0) {
    std::snprintf(
        per_sync, sizeof(per_sync), "%.2f",
        static_cast<double>(s.getWrites()) / static_cast<double>(s.getSyncs()));
  }
  Table t({"STATISTIC", "VALUE"});
  t.Add({"records-database writes", std::to_string(s.getWrites())});
  t.Add({"log syncs", std::to_string(s.getSyncs())});
  t.Add({"writes per sync", per_sync});
  t.Add({"subject keys cached", std::to_string(s.getCachedKeys())});
  t.Add({"key-cache hits", std::to_string(s.getKeyCacheHits())});
  t.Add({"key-cache misses", std::to_string(s.getKeyCacheMisses())});
  t.Print();
}

// Admin.progress: JSON, or a line or two of text.
nlohmann::json ProgressJson(rpc::WorkProgress::Reader p) {
  return {{"operation", Str(p.getOperation())},
          {"running", p.getRunning()},
          {"phase", Str(p.getPhase())},
          {"unit", Str(p.getUnit())},
          {"done", p.getDone()},
          {"total", p.getTotal()},
          {"started", TimeJson(p.getStartedMicros())},
          {"ended", TimeJson(p.getEndedMicros())},
          {"outcome", Str(p.getOutcome())}};
}

// One lane's last long call, as text; "" when there was none.
std::string ProgressText(rpc::WorkProgress::Reader p) {
  if (p.getOperation().size() == 0) return "";
  std::string text = Str(p.getOperation()) + ": " +
                     (p.getRunning() ? "running" : "ended") + ", started " +
                     FormatTime(p.getStartedMicros());
  if (!p.getRunning()) {
    text += ", ended " + FormatTime(p.getEndedMicros()) + ": " +
            Str(p.getOutcome());
  }
  text += "\n";
  if (p.getPhase().size() != 0) {
    text += "  " + Str(p.getPhase()) + ": " + std::to_string(p.getDone());
    if (p.getTotal() != 0) text += " of " + std::to_string(p.getTotal());
    text += " " + Str(p.getUnit()) + "\n";
  }
  return text;
}

// Admin.progress: the maintenance lane's last long call (as the JSON's
// top level, as before the reading lane existed), then the reading
// lane's.
void PrintProgress(rpc::Admin::ProgressResults::Reader r, bool json) {
  if (json) {
    nlohmann::json j = ProgressJson(r.getProgress());
    j["reading"] = ProgressJson(r.getReading());
    return PrintJson(j);
  }
  const std::string maintenance = ProgressText(r.getProgress());
  const std::string reading = ProgressText(r.getReading());
  if (maintenance.empty() && reading.empty()) {
    std::cout << "no long operation since the server started\n";
    return;
  }
  std::cout << maintenance;
  if (!reading.empty()) std::cout << "reading lane: " << reading;
}

}  // namespace

void AddStatsVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  struct Args {
    bool json = false, engine = false;
    std::string kind, from, to;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "stats",
      "statistics that survive erasure: the time needed to deal with a "
      "request (the IMI report's table), records by state, transitions by "
      "month, records by attribute value; erased records included, no "
      "personal data (auditors and admins). --engine: the engine's "
      "counters since custosd started instead (admins)\n"
      "example: custos stats --kind request --from 2026-01 --to 2026-12");
  cmd->add_flag("--json", a->json, "the numbers as JSON (docs/api.md)");
  cmd->add_flag("--engine", a->engine,
                "the engine's counters: writes, log syncs, key cache");
  cmd->add_option("--kind", a->kind, "one record kind only");
  cmd->add_option("--from", a->from, "first month counted, YYYY-MM (UTC)");
  cmd->add_option("--to", a->to, "last month counted, YYYY-MM (UTC)");
  verbs.push_back(
      {cmd, [a](Connection& c) {
         if (a->engine) {
           if (!a->kind.empty() || !a->from.empty() || !a->to.empty()) {
             throw UsageError("--engine takes no --kind, --from or --to");
           }
           Remote([&] { PrintEngineCounters(c, a->json); });
           return;
         }
         const uint32_t from =
             a->from.empty() ? 0 : ParseMonth(a->from, "--from");
         const uint32_t to = a->to.empty() ? 0 : ParseMonth(a->to, "--to");
         if (from != 0 && to != 0 && from > to) {
           throw UsageError("--from is after --to");
         }
         Remote([&] {
           // The auditor's facet for auditors, the admin's for
           // admins.
           const bool auditor = c.HasRole(rpc::Role::AUDITOR);
           auto show = [&](auto response) {
             auto s = response.getStatistics();
             if (a->json) return PrintJson(StatisticsJson(s));
             PrintStatistics(s);
           };
           if (auditor) {
             auto req = c.Auditor().statisticsRequest();
             req.setKind(a->kind);
             req.setFromMonth(from);
             req.setToMonth(to);
             show(req.send().wait(c.wait()));
           } else {
             auto req = c.Admin().statisticsRequest();
             req.setKind(a->kind);
             req.setFromMonth(from);
             req.setToMonth(to);
             show(req.send().wait(c.wait()));
           }
         });
       }});
  {
    auto out = std::make_shared<Output>();
    auto* progress = app.add_subcommand(
        "progress",
        "the last long operation the server ran, or runs now (a sweep, "
        "backup, erasure verification, rotation, shred completion...), and "
        "the last verifyChain or processingRegister (the reading lane): "
        "its phase, how far it has come, and how it ended (admins)\n"
        "example: custos progress");
    AddJsonFlag(*progress, *out);
    verbs.push_back({progress, [out](Connection& c) {
                       Remote([&] {
                         auto r =
                             c.Admin().progressRequest().send().wait(c.wait());
                         PrintProgress(r, out->json);
                       });
                     }});
  }
}

}  // namespace custos::cli
