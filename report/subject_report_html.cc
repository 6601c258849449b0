#include "report/subject_report_html.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "report/internal.h"
#include "report/subject_report_json.h"  // kSubjectReportFormat, ...Version.
#include "storage/types.h"

namespace custos {
namespace {

using report_internal::AppendHtml;
using report_internal::CivilTime;
using report_internal::ForEachCodePoint;
using report_internal::Rfc3339;
using report_internal::ToCivil;

// "28 February 2027 at 12:00 UTC".
std::string HumanTime(Timestamp t) {
  static constexpr const char* kMonths[] = {
      "January", "February", "March",     "April",   "May",      "June",
      "July",    "August",   "September", "October", "November", "December"};
  const CivilTime c = ToCivil(t);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%u %s %d at %02u:%02u UTC", c.day,
                kMonths[(c.month - 1) % 12], c.year, c.hour, c.minute);
  return buf;
}

std::string Esc(std::string_view s) {
  std::string out;
  AppendHtml(out, s);
  return out;
}

// <time datetime="2027-02-28T12:00:00Z">28 February 2027 at 12:00 UTC</time>
std::string TimeElement(Timestamp t) {
  return "<time datetime=\"" + Rfc3339(t) + "\">" + HumanTime(t) + "</time>";
}

// "In it", "In all of them", "In 2 of them": k of the n records.
std::string InHowMany(size_t k, size_t n) {
  if (k == n) return n == 1 ? "In it" : "In all of them";
  return "In " + std::to_string(k) + " of them";
}

// "1 record", "3 records".
std::string Count(size_t n, std::string_view singular,
                  std::string_view plural) {
  return std::to_string(n) + " " + std::string(n == 1 ? singular : plural);
}

std::string_view StateLabel(RecordState state) {
  switch (state) {
    case RecordState::kActive:
      return "Active";
    case RecordState::kClosed:
      return "Closed";
    case RecordState::kBlocked:
      return "Blocked";
    case RecordState::kErased:
      return "Erased";
  }
  return "Unknown";
}

std::string_view StateClass(RecordState state) {
  switch (state) {
    case RecordState::kActive:
      return "state-active";
    case RecordState::kClosed:
      return "state-closed";
    case RecordState::kBlocked:
      return "state-blocked";
    case RecordState::kErased:
      return "state-erased";
  }
  return "state-unknown";
}

// The state at the time of an event, as in "while closed"; unknown names
// (the field is a string) are shown escaped as they are.
std::string StateThen(std::string_view name) {
  if (name == "CLOSED") return "while closed";
  if (name == "BLOCKED") return "while blocked";
  if (name == "ERASED") return "after erasure";
  return "state then: " + Esc(name);
}

std::string ActionWords(std::string_view action) {
  static constexpr std::pair<std::string_view, std::string_view> kWords[] = {
      {"create", "recorded your data"},
      {"read", "saw your data"},
      {"read_restricted", "consulted your closed or blocked data"},
      {"rectify", "corrected your data"},
      {"flag", "flagged your data as possibly incorrect"},
      {"grant", "shared the record with another party"},
      {"close", "closed the record"},
      {"withdraw", "withdrew the record as unfounded"},
      {"block", "blocked the record"},
      {"erase", "erased your data in the record"},
      {"export", "exported your data"},
      {"hold_set", "placed a legal hold"},
      {"hold_released", "released a legal hold"},
      {"contest", "recorded that you contest the data"},
      {"shred", "erased all your data"},
      {"report", "produced a report on your data"},
      {"breach_scope",
       "looked up which of your data a security breach reached, to tell you"},
      {"access_history", "looked at the record of who used your data"},
      {"find_subject", "looked you up by your identifier"},
  };
  for (const auto& [name, words] : kWords) {
    if (name == action) return std::string(words);
  }
  return Esc(action);
}

std::string PurposeWords(std::string_view purpose) {
  if (purpose == "proof_of_exchange") return "Proof of an exchange";
  if (purpose == "subject_consent") return "With your consent";
  if (purpose == "public_interest") {
    return "Overriding public interest (such as legal proceedings)";
  }
  if (purpose == "legal_obligation") {
    return "A legal obligation (such as telling you of a data breach)";
  }
  return Esc(purpose);
}

bool HoldInForce(const HoldView& h, Timestamp now) {
  return !h.released_at.has_value() && h.ends_at > now;
}

constexpr std::string_view kStyle = R"css(
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #eef1f4; color: #1f2328;
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto,
    "Helvetica Neue", Arial, sans-serif; }
main { max-width: 60rem; margin: 0 auto; padding: 2rem 2rem 3rem;
  background: #fff; }
h1 { font-size: 1.9rem; line-height: 1.2; margin: 0 0 .5rem; }
h2 { font-size: 1.35rem; margin: 2.5rem 0 1rem; padding-bottom: .3rem;
  border-bottom: 2px solid #d0d7de; }
h3 { font-size: 1.15rem; margin: 0 0 .5rem; }
h4 { font-size: 1rem; margin: 1.25rem 0 .4rem; }
p { margin: .5rem 0; }
.lead { color: #57606a; margin: 0; }
.summary { background: #f3f7fd; border-left: 4px solid #0969da;
  padding: .75rem 1.25rem; border-radius: 0 6px 6px 0; }
.summary ul { margin: .25rem 0; padding-left: 1.25rem; }
.record { border: 1px solid #d0d7de; border-radius: 8px;
  padding: 1rem 1.25rem; margin: 1.25rem 0; }
.record.erased { background: #fafbfc; }
.kind { color: #57606a; font-weight: normal; }
.state { display: inline-block; margin-left: .4rem; padding: .05rem .6rem;
  border-radius: 1rem; font-size: .8rem; font-weight: 600;
  vertical-align: middle; }
.state-active { background: #dafbe1; color: #116329; }
.state-closed { background: #ddf4ff; color: #0a3069; }
.state-blocked { background: #fff1c2; color: #7d4e00; }
.state-erased, .state-unknown { background: #e7eaee; color: #424a53; }
.explain { margin: .25rem 0 .75rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr;
  gap: .2rem 1.25rem; margin: .5rem 0; }
dl.facts dt { color: #57606a; }
dl.facts dd { margin: 0; }
table { width: 100%; border-collapse: collapse; font-size: .95rem;
  margin: .4rem 0; }
th, td { text-align: left; vertical-align: top; padding: .4rem .6rem;
  border-bottom: 1px solid #d0d7de; overflow-wrap: break-word; }
table.fields, table.holds, table.history { table-layout: fixed; }
table.fields td:first-child, table.fields th:first-child { width: 30%; }
.scroll { overflow-x: auto; }
table.history { min-width: 44rem; }
col.c-when { width: 8rem; }
col.c-who { width: 9.5rem; }
col.c-what { width: 8.5rem; }
col.c-record { width: 7.5rem; }
col.c-data { width: 8rem; }
th { background: #f6f8fa; font-weight: 600; }
td.value, .statement { white-space: pre-wrap; }
.statement { margin: .25rem 0; padding: .4rem .75rem;
  border-left: 3px solid #d0d7de; }
.muted { color: #57606a; font-size: .9rem; }
.none { color: #57606a; font-style: italic; }
.id { color: #57606a; font-size: .85rem; }
.notice { background: #fff8e5; border: 1px solid #f0d78c; border-radius: 6px;
  padding: .5rem .75rem; }
a { color: #0969da; }
footer { margin-top: 3rem; color: #57606a; font-size: .85rem; }
@media (max-width: 40rem) {
  main { padding: 1rem; }
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: .4rem; }
}
@media print {
  body { background: #fff; }
  main { padding: 0; max-width: none; }
  .record, tr { break-inside: avoid; }
}
)css";

class HtmlRenderer {
 public:
  explicit HtmlRenderer(const SubjectReport& report) : report_(report) {
    for (const auto& p : report.principals) names_.emplace(p.id, p.name);
    for (const auto& r : report.records) records_.emplace(r.id, &r);
  }

  std::string Render() {
    out_ +=
        "<!DOCTYPE html>\n"
        "<html lang=\"en\">\n"
        "<head>\n"
        "<meta charset=\"utf-8\">\n"
        // Defence in depth: even if some string escaped escaping, the page
        // may load nothing and run nothing.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
        "'none'; style-src 'unsafe-inline'\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, "
        "initial-scale=1\">\n"
        "<title>Personal data we hold about you</title>\n"
        "<style>";
    out_ += kStyle;
    out_ += "</style>\n</head>\n<body>\n<main>\n";
    Header();
    Summary();
    Records();
    SubjectHolds();
    History();
    About();
    out_ += "<footer>Format ";
    out_ += kSubjectReportFormat;
    out_ += ", version " + std::to_string(kSubjectReportVersion) +
            ". The same report is available as JSON for machines.</footer>\n";
    out_ += "</main>\n</body>\n</html>\n";
    return std::move(out_);
  }

 private:
  // "Name (id)" when a name is known, else the id.
  std::string Who(std::string_view id, std::string_view name = {}) {
    if (name.empty()) {
      auto it = names_.find(std::string(id));
      if (it != names_.end()) name = it->second;
    }
    if (name.empty() || name == id) return Esc(id);
    return Esc(name) + " <span class=\"id\">(" + Esc(id) + ")</span>";
  }

  // Holds in force that cover record `r`: its own and the subject's.
  std::vector<const HoldView*> HoldsInForce(const SubjectReport::Record& r) {
    std::vector<const HoldView*> holds;
    for (const auto& h : r.holds) {
      if (HoldInForce(h, report_.generated_at)) holds.push_back(&h);
    }
    for (const auto& h : report_.subject_holds) {
      if (HoldInForce(h, report_.generated_at)) holds.push_back(&h);
    }
    return holds;
  }

  // The latest end of the holds in force that cover `r`, if any.
  std::optional<Timestamp> HoldEnd(const SubjectReport::Record& r) {
    std::optional<Timestamp> end;
    for (const HoldView* h : HoldsInForce(r)) {
      if (!end.has_value() || h->ends_at > *end) end = h->ends_at;
    }
    return end;
  }

  // True when r's next transition is an erasure that a hold in force
  // postpones beyond its deadline.
  bool ErasurePostponed(const SubjectReport::Record& r) {
    const std::optional<Timestamp> end = HoldEnd(r);
    return r.next_transition == "erase" && r.next_deadline.has_value() &&
           end.has_value() && *end > *r.next_deadline;
  }

  void Header() {
    out_ += "<header>\n<h1>Personal data we hold about you</h1>\n";
    out_ += "<p class=\"lead\">Report for <strong>";
    AppendHtml(out_, report_.subject_identifier);
    out_ += "</strong>";
    if (!report_.subject_id.empty()) {
      out_ += " <span class=\"id\">(our reference: ";
      AppendHtml(out_, report_.subject_id);
      out_ += ")</span>";
    }
    out_ += "<br>Generated on " + TimeElement(report_.generated_at) +
            ".</p>\n</header>\n";
  }

  void Summary() {
    size_t held = 0, erased = 0, active = 0, closed = 0, blocked = 0;
    size_t contested = 0;
    const SubjectReport::Record* next = nullptr;
    for (const auto& r : report_.records) {
      switch (r.state) {
        case RecordState::kActive:
          ++active;
          break;
        case RecordState::kClosed:
          ++closed;
          break;
        case RecordState::kBlocked:
          ++blocked;
          break;
        case RecordState::kErased:
          break;
      }
      (r.state == RecordState::kErased ? erased : held)++;
      if (!r.contests.empty()) ++contested;
      if (r.next_deadline.has_value() && !r.next_transition.empty() &&
          !ErasurePostponed(r) &&
          (next == nullptr || *r.next_deadline < *next->next_deadline)) {
        next = &r;
      }
    }

    out_ +=
        "<section id=\"summary\">\n<h2>Summary</h2>\n<div class=\"summary\">\n";
    const size_t n = report_.records.size();
    if (n == 0) {
      out_ += "<p>We hold no records about you.</p>\n";
    } else {
      out_ += "<p>We hold <strong>" + Count(n, "record", "records") +
              "</strong> about you.</p>\n<ul>\n";
      if (held > 0) {
        std::vector<std::string> parts;
        if (active > 0)
          parts.push_back(std::to_string(active) + " in active use");
        if (closed > 0) parts.push_back(std::to_string(closed) + " closed");
        if (blocked > 0) {
          parts.push_back(std::to_string(blocked) +
                          " blocked (kept but no longer used)");
        }
        std::string list;
        for (size_t i = 0; i < parts.size(); ++i) {
          if (i > 0) list += i + 1 == parts.size() ? " and " : ", ";
          list += parts[i];
        }
        out_ +=
            "<li>" + InHowMany(held, n) + ", your personal data is still held";
        if (!list.empty()) out_ += ": " + list;
        out_ += ".</li>\n";
      }
      if (erased > 0) {
        out_ += "<li>" + InHowMany(erased, n) +
                ", your personal data has been erased. We keep only the fact "
                "that the record existed and who saw your data, so that you "
                "can still find out.</li>\n";
      }
      if (next != nullptr) {
        out_ +=
            "<li>Next scheduled change: " + NextEventPhrase(*next) +
            (*next->next_deadline > report_.generated_at ? " is due to be "
                                                         : " was due to be ") +
            NextEventVerb(*next) + " on " + TimeElement(*next->next_deadline) +
            (*next->next_deadline > report_.generated_at
                 ? ".</li>\n"
                 : " and will be at the next scheduled run.</li>\n");
      }
      if (contested > 0) {
        out_ += "<li>You contested data in " +
                Count(contested, "record", "records") + ".</li>\n";
      }
      out_ += "</ul>\n";
    }

    size_t holds_in_force = 0;
    for (const auto& r : report_.records) {
      for (const auto& h : r.holds) {
        holds_in_force += HoldInForce(h, report_.generated_at) ? 1 : 0;
      }
    }
    for (const auto& h : report_.subject_holds) {
      holds_in_force += HoldInForce(h, report_.generated_at) ? 1 : 0;
    }
    if (holds_in_force > 0) {
      out_ += "<p>" + Count(holds_in_force, "legal hold", "legal holds") +
              (holds_in_force == 1 ? " is" : " are") +
              (holds_in_force == 1
                   ? " in force: while it lasts, the data it covers is not "
                     "erased, but it is not used or shown any more than "
                     "before.</p>\n"
                   : " in force: while they last, the data they cover is not "
                     "erased, but it is not used or shown any more than "
                     "before.</p>\n");
    }

    if (report_.history.empty()) {
      out_ += "<p>No access to your data has been recorded.</p>\n";
    } else {
      std::map<std::string_view, int> who;
      for (const auto& a : report_.history) who[a.principal_id] = 1;
      out_ += "<p>Your data was recorded, seen, shared or changed <strong>" +
              Count(report_.history.size(), "time", "times") + "</strong> by " +
              Count(who.size(), "party", "different parties") +
              ". <a href=\"#history\">See who, when and why.</a></p>\n";
    }
    out_ += "</div>\n</section>\n";
  }

  // The subject of "... is due to be blocked": "record 17" or "your
  // personal data in record 17", with a link to the record.
  static std::string NextEventPhrase(const SubjectReport::Record& r) {
    const std::string id = std::to_string(r.id);
    const std::string link =
        "<a href=\"#record-" + id + "\">record " + id + "</a>";
    return r.next_transition == "erase" ? "your personal data in " + link
                                        : link;
  }

  // "closed", "blocked", "erased", or the unknown transition quoted.
  static std::string NextEventVerb(const SubjectReport::Record& r) {
    if (r.next_transition == "close") return "closed";
    if (r.next_transition == "block") return "blocked";
    if (r.next_transition == "erase") return "erased";
    return "changed (&ldquo;" + Esc(r.next_transition) + "&rdquo;)";
  }

  void Records() {
    out_ += "<section id=\"records\">\n<h2>Your records</h2>\n";
    if (report_.records.empty()) {
      out_ += "<p class=\"none\">There are no records about you.</p>\n";
    }
    for (const auto& r : report_.records) RecordSection(r);
    out_ += "</section>\n";
  }

  std::string StateExplanation(const SubjectReport::Record& r) {
    switch (r.state) {
      case RecordState::kActive:
        return "In active use: the organisation holding it and those it was "
               "shared with can see your data.";
      case RecordState::kClosed:
        return "Closed: the matter is finished. Those who used the record no "
               "longer see your personal data; officers may consult it only "
               "for a stated reason, which is recorded.";
      case RecordState::kBlocked:
        return "Blocked: kept but no longer used; visible only for legal "
               "reasons (to prove an exchange took place, with your consent, "
               "or for an overriding public interest such as legal "
               "proceedings). Every such consultation is recorded with its "
               "reason.";
      case RecordState::kErased: {
        std::string s = "Erased: your personal data in this record was erased";
        if (r.erased_at.has_value()) s += " on " + TimeElement(*r.erased_at);
        return s +
               ". Only non-personal information about the record (its kind, "
               "who held it, its dates) and the history of who saw your data "
               "are kept.";
      }
    }
    return "Its state is unknown.";
  }

  std::string NextStep(const SubjectReport::Record& r) {
    const Timestamp now = report_.generated_at;
    const std::optional<Timestamp> hold_end = HoldEnd(r);

    if (!r.next_deadline.has_value()) {
      if (r.state == RecordState::kErased) {
        return "Nothing further. The history of who saw your data is kept "
               "for a limited time, then deleted too.";
      }
      std::string s = r.state == RecordState::kActive
                          ? "No end date is set yet: the retention periods "
                            "start once the record is closed."
                          : "No further change is scheduled.";
      if (hold_end.has_value()) {
        s += " A legal hold keeps it from being erased until " +
             TimeElement(*hold_end) + " at the latest.";
      }
      return s;
    }

    const Timestamp due = *r.next_deadline;
    const std::string when = TimeElement(due);
    const std::string& t = r.next_transition;
    if (ErasurePostponed(r)) {
      return std::string(due > now ? "Your personal data in it is due to be "
                                     "erased on "
                                   : "Your personal data in it was due to be "
                                     "erased on ") +
             when +
             ", but a legal hold postpones the erasure until the hold is "
             "released or ends (" +
             TimeElement(*hold_end) + " at the latest).";
    }
    if (due <= now) {
      std::string what;
      if (t == "close") {
        what = "Its closing";
      } else if (t == "block") {
        what = "Its blocking";
      } else if (t == "erase") {
        what = "The erasure of your personal data in it";
      } else {
        what = "The next change (&ldquo;" + Esc(t) + "&rdquo;)";
      }
      return what + " was due on " + when +
             " and will take place at the next scheduled run.";
    }
    if (t == "close") {
      return "If nobody works on it before then, it will be closed on " + when +
             ".";
    }
    if (t == "block") {
      return "On " + when +
             " it will be blocked: kept but no longer used, visible only for "
             "legal reasons.";
    }
    if (t == "erase") {
      return "On " + when + " your personal data in it will be erased.";
    }
    if (t.empty()) return "Next scheduled change: " + when + ".";
    return "Next scheduled change (&ldquo;" + Esc(t) + "&rdquo;): " + when +
           ".";
  }

  void RecordSection(const SubjectReport::Record& r) {
    const std::string id = std::to_string(r.id);
    const bool erased = r.state == RecordState::kErased;
    out_ += "<article class=\"record";
    if (erased) out_ += " erased";
    out_ += "\" id=\"record-" + id + "\">\n<h3>Record " + id;
    if (!r.kind.empty()) {
      out_ += " <span class=\"kind\">&middot; ";
      AppendHtml(out_, r.kind);
      out_ += "</span>";
    }
    out_ += " <span class=\"state ";
    out_ += StateClass(r.state);
    out_ += "\">";
    out_ += StateLabel(r.state);
    out_ += "</span></h3>\n<p class=\"explain\">" + StateExplanation(r) +
            "</p>\n<dl class=\"facts\">\n";
    out_ += "<dt>Held by</dt><dd>" + Who(r.owner) + "</dd>\n";
    out_ += "<dt>Shared with</dt><dd>";
    if (r.recipients.empty()) {
      out_ += "nobody else";
    } else {
      for (size_t i = 0; i < r.recipients.size(); ++i) {
        if (i > 0) out_ += ", ";
        out_ += Who(r.recipients[i]);
      }
    }
    out_ += "</dd>\n";
    out_ += "<dt>Created</dt><dd>" + TimeElement(r.created_at) + "</dd>\n";
    if (r.closed_at) {
      out_ += "<dt>Closed</dt><dd>" + TimeElement(*r.closed_at) + "</dd>\n";
    }
    if (r.blocked_at) {
      out_ += "<dt>Blocked</dt><dd>" + TimeElement(*r.blocked_at) + "</dd>\n";
    }
    if (r.erased_at) {
      out_ += "<dt>Erased</dt><dd>" + TimeElement(*r.erased_at) + "</dd>\n";
    }
    out_ += "<dt>What happens next</dt><dd>" + NextStep(r) + "</dd>\n</dl>\n";

    out_ += "<h4>Your data in this record</h4>\n";
    if (!r.personal.empty()) {
      FieldTable(r.personal, "Item", "What we hold");
    } else if (erased) {
      out_ += "<p class=\"none\">None any more: it was erased";
      if (r.erased_at) out_ += " on " + TimeElement(*r.erased_at);
      out_ += ".</p>\n";
    } else {
      out_ +=
          "<p class=\"none\">No personal data of yours remains in this "
          "record.</p>\n";
    }

    if (!r.flags.empty()) {
      out_ += "<h4>Notes that your data may be incorrect</h4>\n";
      for (const FlagView& f : r.flags) {
        out_ += "<p>On " + TimeElement(f.at) + ", " + Who(f.by) +
                " noted that your data in this record may be incorrect";
        if (f.note.empty()) {
          out_ += ". The note was erased with the data.</p>\n";
          continue;
        }
        out_ += ":</p>\n<p class=\"statement\">";
        AppendHtml(out_, f.note);
        out_ += "</p>\n";
      }
    }

    if (!r.contests.empty()) {
      out_ += "<h4>Your objections</h4>\n";
      for (const ContestView& c : r.contests) {
        out_ += "<p>On " + TimeElement(c.at) + ", " + Who(c.by) +
                " recorded that you contest the accuracy or lawfulness of this "
                "data. It is shown with the data whenever the data is "
                "consulted.</p>\n";
        if (!c.statement.empty()) {
          out_ += "<p class=\"statement\">";
          AppendHtml(out_, c.statement);
          out_ += "</p>\n";
        }
        if (!c.corrected.empty()) {
          out_ +=
              "<p class=\"muted\">Corrected information recorded with "
              "it:</p>\n";
          FieldTable(c.corrected, "Item", "Corrected value");
        }
      }
    }

    if (!r.holds.empty()) {
      out_ += "<h4>Legal holds on this record</h4>\n";
      HoldTable(r.holds);
    }
    if (!erased) {
      bool subject_hold = false;
      for (const auto& h : report_.subject_holds) {
        subject_hold |= HoldInForce(h, report_.generated_at);
      }
      if (subject_hold) {
        out_ +=
            "<p class=\"muted\">This record is also covered by a "
            "<a href=\"#holds\">legal hold on all your records</a>.</p>\n";
      }
    }
    out_ += "</article>\n";
  }

  void FieldTable(const std::vector<Field>& fields, std::string_view name_head,
                  std::string_view value_head) {
    out_ += "<table class=\"fields\">\n<tr><th scope=\"col\">";
    out_ += name_head;
    out_ += "</th><th scope=\"col\">";
    out_ += value_head;
    out_ += "</th></tr>\n";
    for (const Field& f : fields) {
      out_ += "<tr><td>";
      AppendHtml(out_, f.name);
      out_ += "</td><td class=\"value\">";
      AppendHtml(out_, f.value);
      out_ += "</td></tr>\n";
    }
    out_ += "</table>\n";
  }

  void HoldTable(const std::vector<HoldView>& holds) {
    out_ +=
        "<table class=\"holds\">\n<tr><th scope=\"col\">Reason</th>"
        "<th scope=\"col\">Set</th><th scope=\"col\">Until</th>"
        "<th scope=\"col\">Status</th></tr>\n";
    for (const HoldView& h : holds) {
      out_ += "<tr><td class=\"value\">";
      AppendHtml(out_, h.reason);
      out_ += "<br><span class=\"id\">hold ";
      AppendHtml(out_, h.id);
      out_ += "</span></td><td>" + TimeElement(h.set_at) + "<br>by " +
              Who(h.set_by) + "</td><td>" + TimeElement(h.ends_at) +
              "</td><td>";
      if (h.released_at.has_value()) {
        out_ += "Released on " + TimeElement(*h.released_at);
        if (!h.released_by.empty()) out_ += " by " + Who(h.released_by);
      } else if (h.ends_at <= report_.generated_at) {
        out_ += "Ended";
      } else {
        out_ += "<strong>In force</strong>: erasure is postponed";
      }
      out_ += "</td></tr>\n";
    }
    out_ += "</table>\n";
  }

  void SubjectHolds() {
    if (report_.subject_holds.empty()) return;
    out_ +=
        "<section id=\"holds\">\n<h2>Legal holds on all your "
        "records</h2>\n<p>A legal hold (for example for legal proceedings, "
        "or at your request) postpones the erasure of your data until it "
        "is released or ends. It never makes your data visible to "
        "anyone.</p>\n";
    HoldTable(report_.subject_holds);
    out_ += "</section>\n";
  }

  void History() {
    out_ +=
        "<section id=\"history\">\n<h2>Who saw or received your "
        "data</h2>\n";
    if (report_.history.empty()) {
      out_ +=
          "<p class=\"none\">No access to your data has been "
          "recorded.</p>\n</section>\n";
      return;
    }
    out_ +=
        "<p>Every time your data was recorded, seen, shared or changed, "
        "oldest first, including on records whose data has since been "
        "erased. Only the names of the items concerned are listed, never "
        "their values.</p>\n"
        "<div class=\"scroll\">\n<table class=\"history\">\n"
        "<colgroup><col class=\"c-when\"><col class=\"c-who\"><col "
        "class=\"c-what\"><col class=\"c-record\"><col class=\"c-data\">"
        "<col></colgroup>\n"
        "<tr><th scope=\"col\">When</th>"
        "<th scope=\"col\">Who</th><th scope=\"col\">What</th>"
        "<th scope=\"col\">Record</th><th scope=\"col\">Data concerned</th>"
        "<th scope=\"col\">Why</th></tr>\n";
    static constexpr std::string_view kGrantee = "grantee:";
    for (const auto& a : report_.history) {
      // A grant names its grantee among the fields; it is shown as the
      // recipient, not as data. Only a grant's: a field a record stores may
      // be named "grantee:..." too, and is data (a review, helper-121).
      std::string recipients;
      std::vector<std::string_view> fields;
      for (const std::string& f : a.fields) {
        if (a.action == "grant" && f.starts_with(kGrantee)) {
          if (!recipients.empty()) recipients += ", ";
          recipients += Who(std::string_view(f).substr(kGrantee.size()));
        } else {
          fields.push_back(f);
        }
      }
      std::string what;
      if (a.action == "grant" && !recipients.empty()) {
        what = "shared the record with " + recipients;
      } else {
        what = ActionWords(a.action);
        if (!recipients.empty()) what += " (to " + recipients + ")";
      }
      out_ += "<tr><td>" + TimeElement(a.at) + "</td><td>" +
              Who(a.principal_id, a.principal_name) + "</td><td>" + what +
              "</td><td>";
      const std::string id = std::to_string(a.record_id);
      const auto it = records_.find(a.record_id);
      if (a.record_id == 0) {
        out_ += "&mdash;";
      } else if (it != records_.end()) {
        out_ += "<a href=\"#record-" + id + "\">" + id + "</a>";
      } else {
        out_ += id;
      }
      if (!a.record_kind.empty()) out_ += " &middot; " + Esc(a.record_kind);
      // Routine use happens while ACTIVE; only the other states are worth
      // pointing out.
      if (!a.record_state.empty() && a.record_state != "ACTIVE") {
        out_ += "<br><span class=\"muted\">" + StateThen(a.record_state) +
                "</span>";
      }
      if (it != records_.end() && it->second->state == RecordState::kErased &&
          a.record_state != "ERASED") {
        out_ += "<br><span class=\"muted\">(since erased)</span>";
      }
      out_ += "</td><td>";
      if (fields.empty()) {
        out_ += "<span class=\"none\">none</span>";
      } else {
        for (size_t i = 0; i < fields.size(); ++i) {
          if (i > 0) out_ += ", ";
          AppendHtml(out_, fields[i]);
        }
      }
      out_ += "</td><td>";
      if (a.purpose.empty() && a.justification.empty()) {
        out_ +=
            "<span class=\"none\">Routine use; no reason had to be "
            "given</span>";
      } else {
        if (!a.purpose.empty()) out_ += PurposeWords(a.purpose);
        if (!a.justification.empty()) {
          if (!a.purpose.empty()) out_ += ": ";
          out_ += "&ldquo;" + Esc(a.justification) + "&rdquo;";
        }
      }
      out_ += "</td></tr>\n";
    }
    out_ += "</table>\n</div>\n</section>\n";
  }

  void About() {
    out_ +=
        "<section id=\"about\">\n<h2>About this report</h2>\n"
        "<p>A record moves through these stages, always in this order, and "
        "never comes back from erasure:</p>\n<dl class=\"facts\">\n"
        "<dt><span class=\"state state-active\">Active</span></dt><dd>In use "
        "by the organisation holding it and those it was shared with.</dd>\n"
        "<dt><span class=\"state state-closed\">Closed</span></dt><dd>The "
        "matter is finished; its users no longer see your personal "
        "data.</dd>\n"
        "<dt><span class=\"state state-blocked\">Blocked</span></dt><dd>Kept "
        "but no longer used; visible only for legal reasons, each time with "
        "a recorded reason.</dd>\n"
        "<dt><span class=\"state state-erased\">Erased</span></dt><dd>Your "
        "personal data is destroyed; the history of who saw it is kept for a "
        "limited time so that you can still find out.</dd>\n</dl>\n"
        "<p>Times are in Coordinated Universal Time (UTC). Retention periods "
        "are set for each kind of record; a legal hold can postpone "
        "an erasure but never makes data visible again.</p>\n</section>\n";
  }

  const SubjectReport& report_;
  std::map<std::string, std::string_view> names_;
  std::map<uint64_t, const SubjectReport::Record*> records_;
  std::string out_;
};

}  // namespace

std::string RenderSubjectReportHtml(const SubjectReport& report) {
  return HtmlRenderer(report).Render();
}

}  // namespace custos
