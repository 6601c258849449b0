// custos sweep; custos hold set|release|list.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string_view>

#include "storage/limits.h"
#include "tools/cli.h"

namespace custos::cli {
namespace {

nlohmann::json HoldJson(rpc::Hold::Reader h) {
  return {{"id", Str(h.getId())},
          {"record_id", h.getRecordId()},
          {"subject_id", Str(h.getSubjectId())},
          {"reason", Str(h.getReason())},
          {"set_by", Str(h.getSetBy())},
          {"set_at", TimeJson(h.getSetAtMicros())},
          {"ends_at", TimeJson(h.getEndsAtMicros())},
          {"released_at", TimeJson(h.getReleasedAtMicros())},
          {"released_by", Str(h.getReleasedBy())}};
}

// While a sweep runs, a progress bar redrawn on stderr every 100 ms: the
// time waited and, from Admin.sweepProgress (asked every 500 ms on the
// connection's ordinary lane while the sweep holds the long one), the
// sweep's phase and the due records processed so far. The sweep has no
// total (the engine counts what is due as it goes), so the bar itself
// only moves. Only on a terminal: when stdout and stderr are both ttys
// (and TERM is not "dumb"), and never with --json.
class SweepIndicator {
 public:
  SweepIndicator(Connection& c, bool json)
      : shown_(!json && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO) &&
               std::string_view(Env("TERM")) != "dumb") {
    if (!shown_) return;
    admin_ = c.Admin();
    start_ = std::chrono::steady_clock::now();
    ticks_ = Tick(c.timer(), 0).eagerlyEvaluate(nullptr);
  }
  // Clears the line.
  ~SweepIndicator() {
    if (!shown_) return;
    ticks_ = nullptr;
    poll_ = nullptr;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
  SweepIndicator(const SweepIndicator&) = delete;
  SweepIndicator& operator=(const SweepIndicator&) = delete;

 private:
  static const char* Env(const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? "" : v;
  }

  // Asks for the sweep's progress unless an answer is still awaited; a
  // server without the call (or any failure) leaves the line as it was.
  void Poll() {
    if (polling_ || admin_ == nullptr) return;
    polling_ = true;
    KJ_IF_MAYBE (admin, admin_) {
      poll_ = admin->sweepProgressRequest()
                  .send()
                  .then([this](auto response) {
                    if (response.getRunning()) {
                      progress_ =
                          std::string(", ")
                              .append(Str(response.getPhase()))
                              .append(": ")
                              .append(std::to_string(response.getRecordsDone()))
                              .append(" records");
                    }
                  })
                  .catch_([](kj::Exception&&) {})
                  .then([this] { polling_ = false; })
                  .eagerlyEvaluate(nullptr);
    }
  }

  kj::Promise<void> Tick(kj::Timer& timer, int frame) {
    constexpr int kWidth = 20, kBlock = 5;
    const int at = frame % (2 * (kWidth - kBlock));
    const int left = at < kWidth - kBlock ? at : 2 * (kWidth - kBlock) - at;
    std::string bar(kWidth, ' ');
    bar.replace(left, kBlock, kBlock, '=');
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
            .count();
    std::fprintf(stderr, "\r\033[K[%s] sweeping, %.1f s%s", bar.c_str(),
                 seconds, progress_.c_str());
    std::fflush(stderr);
    if (frame % 5 == 1) Poll();
    return timer.afterDelay(100 * kj::MILLISECONDS)
        .then([this, t = &timer, frame] { return Tick(*t, frame + 1); });
  }

  bool shown_;
  std::chrono::steady_clock::time_point start_;
  kj::Maybe<rpc::Admin::Client> admin_;
  std::string progress_;  // ", transitions: 1200 records", once known.
  bool polling_ = false;
  kj::Promise<void> poll_ = nullptr;
  kj::Promise<void> ticks_ = nullptr;
};

}  // namespace

void AddRetentionVerbs(CLI::App& app, std::vector<Verb>& verbs) {
  {
    struct Args {
      bool dry_run = false;
      std::string as_of;
      uint64_t max_records = 0;
      uint64_t history_examined = 0;
      Output out;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "sweep",
        "write down the closures, blockings and erasures due and erase what "
        "is due (custosd also sweeps on its own timer)\n"
        "example: custos sweep --dry-run --as-of 2027-07-01T00:00:00Z");
    cmd->add_flag("--dry-run", a->dry_run, "count what is due; change nothing");
    cmd->add_option("--as-of", a->as_of,
                    "look ahead to this date-time (ISO 8601 with a zone); "
                    "dry runs only");
    cmd->add_option("--max-records", a->max_records,
                    "stop after this many records (0: no bound); \"more is "
                    "due\" then says to run it again")
        ->check(Decimal(12));
    cmd->add_option("--history-examined", a->history_examined,
                    "access-history events its pruning examines, 1 to "
                    "10000000 (default: custosd's --history-examined plus "
                    "those written since the last sweep began); more "
                    "catches up a pruning backlog (\"history events left\")")
        ->check(Decimal(8))
        ->check(CLI::Range(uint64_t{1},
                           static_cast<uint64_t>(custos::kMaxHistoryExamined)));
    AddJsonFlag(*cmd, a->out);
    verbs.push_back(
        {cmd, [a](Connection& c) {
           int64_t as_of = 0;
           if (a->dry_run && a->history_examined != 0)
             throw UsageError(
                 "--history-examined is for sweeps that write: a dry run "
                 "does not prune");
           if (!a->as_of.empty()) {
             if (!a->dry_run)
               throw UsageError(
                   "--as-of is for dry runs only (--dry-run): a "
                   "sweep never acts in the future");
             as_of = ParseTime(a->as_of, "--as-of");
           }
           Remote([&] {
             auto req = c.Admin().sweepRequest();
             req.setAsOfMicros(as_of);
             req.setDryRun(a->dry_run);
             req.setMaxRecords(a->max_records);
             req.setMaxHistoryExamined(a->history_examined);
             auto response = [&] {
               SweepIndicator indicator(c, a->out.json);
               return req.send().wait(c.wait());
             }();
             auto r = response.getReport();
             if (a->out.json) {
               nlohmann::json v(
                   {{"dry_run", a->dry_run},
                    {"closed", r.getClosed()},
                    {"blocked", r.getBlocked()},
                    {"erased", r.getErased()},
                    {"postponed", r.getPostponed()},
                    {"history_pruned", r.getHistoryPruned()},
                    {"history_unauthenticated", r.getHistoryUnauthenticated()},
                    {"unauthenticated_policies",
                     [&] {
                       std::vector<std::string> kinds;
                       for (auto k : r.getUnauthenticatedPolicies()) {
                         kinds.emplace_back(Str(k));
                       }
                       return kinds;
                     }()},
                    {"skipped", r.getSkipped()},
                    {"malformed_index_keys", r.getMalformedIndexKeys()},
                    {"complete", r.getComplete()}});
               // Only a sweep that writes prunes: a dry run's would say
               // "at the head" of a pass it never made.
               if (!a->dry_run) {
                 v["history_behind"] = r.getHistoryBehind();
                 v["history_examined"] = r.getHistoryExamined();
               }
               return PrintJson(v);
             }
             Table t({"TRANSITION", a->dry_run ? "DUE" : "DONE"});
             t.Add({"closed", std::to_string(r.getClosed())});
             t.Add({"blocked", std::to_string(r.getBlocked())});
             t.Add({"erased", std::to_string(r.getErased())});
             t.Add({"postponed by a hold", std::to_string(r.getPostponed())});
             t.Add({"history events pruned",
                    std::to_string(r.getHistoryPruned())});
             if (!a->dry_run) {
               t.Add({"history events examined",
                      std::to_string(r.getHistoryExamined())});
               t.Add({"history events left to examine in this pass",
                      std::to_string(r.getHistoryBehind())});
             }
             t.Add({"skipped (unreadable)", std::to_string(r.getSkipped())});
             if (r.getHistoryUnauthenticated() > 0) {
               t.Add({"history events kept (failed to authenticate)",
                      std::to_string(r.getHistoryUnauthenticated())});
             }
             if (r.getMalformedIndexKeys() > 0) {
               t.Add({"malformed index keys skipped",
                      std::to_string(r.getMalformedIndexKeys())});
             }
             t.Print();
             for (auto kind : r.getUnauthenticatedPolicies()) {
               // Printable: a kind named by a key written without the key.
               std::cout << "the retention policy of kind '"
                         << Printable(Str(kind))
                         << "' failed to authenticate: set it again (custos "
                            "policy set)\n";
             }
             if (!r.getComplete())
               std::cout << "more is due: run the sweep again\n";
           });
         }});
  }
  auto* hold = app.add_subcommand("hold", "legal holds (officers)");
  hold->require_subcommand(1);
  {
    struct Args {
      uint64_t record = 0;
      std::string subject, reason, until;
      Output out;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = hold->add_subcommand(
        "set",
        "keep a record, or every record of a subject (--subject), from "
        "erasure until a date, for a stated reason (officers)\n"
        "example: custos hold set 42 --reason 'court case 12/2027' "
        "--until 2029-01-01T00:00:00Z");
    auto* record_opt =
        cmd->add_option("record", a->record, "record id")->check(Decimal());
    cmd->add_option("--subject", a->subject, "subject id, instead of a record")
        ->excludes(record_opt);
    cmd->add_option("--reason", a->reason, "why (recorded)")->required();
    cmd->add_option("--until", a->until,
                    "when the hold ends (ISO 8601 with a zone)")
        ->required();
    AddJsonFlag(*cmd, a->out);
    verbs.push_back(
        {cmd, [a](Connection& c) {
           if (a->record == 0 && a->subject.empty())
             throw UsageError("hold set: give a record id or --subject");
           const int64_t until = ParseTime(a->until, "--until");
           Remote([&] {
             auto officer = c.Officer();
             auto print = [&](rpc::Hold::Reader h) {
               if (a->out.json) return PrintJson(HoldJson(h));
               std::cout << "hold " << Str(h.getId()) << " on "
                         << (a->subject.empty()
                                 ? "record " + std::to_string(a->record)
                                 : "subject " + a->subject)
                         << " until " << FormatTime(until) << "\n";
             };
             if (a->subject.empty()) {
               auto req = officer.setRecordHoldRequest();
               req.setId(a->record);
               req.setReason(a->reason);
               req.setEndsAtMicros(until);
               auto response = req.send().wait(c.wait());
               print(response.getHold());
             } else {
               auto req = officer.setSubjectHoldRequest();
               req.setSubjectId(a->subject);
               req.setReason(a->reason);
               req.setEndsAtMicros(until);
               auto response = req.send().wait(c.wait());
               print(response.getHold());
             }
           });
         }});
  }
  {
    auto id = std::make_shared<std::string>();
    auto* cmd = hold->add_subcommand(
        "release",
        "release a hold: the record's erasure is due again at once if its "
        "date has passed\nexample: custos hold release h1");
    cmd->add_option("id", *id, "hold id")->required();
    verbs.push_back({cmd, [id](Connection& c) {
                       Remote([&] {
                         auto req = c.Officer().releaseHoldRequest();
                         req.setHoldId(*id);
                         req.send().wait(c.wait());
                       });
                       std::cout << "released " << *id << "\n";
                     }});
  }
  {
    struct Args {
      bool all = false;
      uint32_t page_size = kMaxPageSize;
      Output out;
    };
    auto a = std::make_shared<Args>();
    auto* cmd =
        hold->add_subcommand("list",
                             "list holds in force (--all: ended ones too)\n"
                             "example: custos hold list --all --json");
    cmd->add_flag("--all", a->all, "include released and ended holds");
    AddPageSizeOption(*cmd, a->page_size);
    AddJsonFlag(*cmd, a->out);
    verbs.push_back(
        {cmd, [a](Connection& c) {
           nlohmann::json all = nlohmann::json::array();
           Table t({"ID", "RECORD", "SUBJECT", "UNTIL", "SET BY", "RELEASED",
                    "REASON"});
           Remote([&] {
             ForEachPage([&](const std::string& after) {
               auto req = c.Officer().listHoldsRequest();
               req.setIncludeEnded(a->all);
               req.setAfterId(after);
               req.setLimit(a->page_size);
               auto response = req.send().wait(c.wait());
               for (auto h : response.getHolds()) {
                 all.push_back(HoldJson(h));
                 t.Add({Str(h.getId()),
                        h.getRecordId() == 0 ? std::string()
                                             : std::to_string(h.getRecordId()),
                        Str(h.getSubjectId()), FormatTime(h.getEndsAtMicros()),
                        Str(h.getSetBy()), FormatTime(h.getReleasedAtMicros()),
                        Str(h.getReason())});
               }
               return Str(response.getNextAfterId());
             });
           });
           if (a->out.json) return PrintJson(all);
           t.Print();
         }});
  }
}

}  // namespace custos::cli
