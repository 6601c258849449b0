#include "storage/subject_report_builder.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "storage/events.h"
#include "storage/keys.h"
#include "storage/sealing.h"

namespace custos {

Result<SubjectReport> SubjectReportBuilder::Produce(
    const PrincipalInfo& auditor, std::string_view subject_id,
    const BeforeDisclosure<SubjectReport>& check) {
  const std::string subject(subject_id);
  auto stored = u_.subjects.Read(subject);
  if (!stored) return Fail(stored.error());
  auto key = u_.subjects.Key(subject);
  if (!key) return Fail(key.error());
  if (!*key) return Fail(Status::NotFound("subject not found"));

  SubjectReport report;
  const Timestamp now = u_.clock.Now();
  report.generated_at = now;
  report.subject_id = subject;
  auto identifier = u_.subjects.Identifier(subject, **key);
  if (!identifier) return Fail(identifier.error());
  report.subject_identifier = std::move(*identifier);

  std::set<std::string> named;  // Principal ids to name in the report.

  // The subject's records, through its index.
  std::vector<uint64_t> ids;
  const std::string prefix = keys::SubjectRecordsPrefix(subject);
  CUSTOS_RETURN_IF_ERROR(
      u_.store.Scan(prefix, {}, [&](std::string_view k, std::string_view) {
        ids.push_back(keys::NumberAfter(k, prefix));
        return true;
      }));
  const int64_t now_micros = ToMicros(now);
  for (uint64_t id : ids) {
    auto r = u_.record_store.Read(id);
    if (!r) {
      if (r.error().code() == StatusCode::kNotFound) continue;
      return Fail(r.error());
    }
    // In its effective state: a deadline passed is in force, sweep or not.
    leveldb::WriteBatch scratch;
    auto caught_up = u_.record_store.CatchUp(*r, now_micros, scratch);
    if (!caught_up) return Fail(caught_up.error());
    SubjectReport::Record out;
    out.id = r->id;
    out.kind = r->kind;
    out.state = r->state;
    out.owner = r->owner;
    out.recipients = r->grants;
    named.insert(r->owner);
    named.insert(r->grants.begin(), r->grants.end());
    out.created_at = FromMicros(r->created_at_micros);
    out.closed_at = codec::OptionalTime(r->closed_at_micros);
    out.blocked_at = codec::OptionalTime(r->blocked_at_micros);
    out.erased_at = codec::OptionalTime(r->erased_at_micros);
    if (r->next_transition != codec::Transition::kNone) {
      out.next_deadline = FromMicros(r->next_deadline_micros);
      out.next_transition =
          r->next_transition == codec::Transition::kClose   ? "close"
          : r->next_transition == codec::Transition::kBlock ? "block"
                                                            : "erase";
    }
    for (const auto& part : r->parts) {
      if (part.subject_id != subject) continue;
      auto fields = u_.subjects.OpenFields(
          subject, **key, r->erase_bucket, part.sealed,
          sealing::PartAd(r->id, subject, part.version), "personal data");
      if (!fields) return Fail(fields.error());
      out.personal = std::move(*fields);
    }
    for (const auto& f : r->flags) {
      if (f.subject_id != subject) continue;
      FlagView view{f.by, FromMicros(f.at_micros), f.subject_id, ""};
      named.insert(f.by);
      if (!f.sealed_note.empty()) {
        auto fields = u_.subjects.OpenFields(
            subject, **key, r->erase_bucket, f.sealed_note,
            sealing::NoteAd("flag", r->id, subject, f.at_micros),
            "personal data");
        if (!fields) return Fail(fields.error());
        if (!fields->empty()) view.note = std::move(fields->front().value);
      }
      out.flags.push_back(std::move(view));
    }
    for (const auto& c : r->contests) {
      if (c.subject_id != subject) continue;
      ContestView view{c.by, FromMicros(c.at_micros), c.subject_id, "", {}};
      named.insert(c.by);
      if (!c.sealed_statement.empty()) {
        auto fields = u_.subjects.OpenFields(
            subject, **key, r->erase_bucket, c.sealed_statement,
            sealing::NoteAd("contest", r->id, subject, c.at_micros),
            "personal data");
        if (!fields) return Fail(fields.error());
        sealing::SplitContest(std::move(*fields), view.statement,
                              view.corrected);
      }
      out.contests.push_back(std::move(view));
    }
    auto holds = u_.holds.OnRecordOnly(r->id, now_micros);
    if (!holds) return Fail(holds.error());
    for (const HoldView& h : *holds) named.insert(h.set_by);
    out.holds = std::move(*holds);
    report.records.push_back(std::move(out));
  }
  auto subject_holds = u_.holds.OnSubjectOnly(subject, now_micros);
  if (!subject_holds) return Fail(subject_holds.error());
  for (const HoldView& h : *subject_holds) named.insert(h.set_by);
  report.subject_holds = std::move(*subject_holds);

  // The full access history, page by page.
  const KeyLookup keys = [this](const std::string& id) {
    return u_.subjects.Key(id);
  };
  const KeyLookup retiring = [this](const std::string& id) {
    return u_.subjects.RetiringKey(id);
  };
  uint64_t after_seq = 0;
  do {
    auto page = u_.store.history().ForSubject(
        subject, Timestamp::min(), Timestamp::max(), after_seq,
        u_.limits.max_page_size, keys, retiring);
    if (!page) return Fail(page.error());
    for (const HistoryEntry& entry : page->entries) {
      SubjectReport::Access a;
      a.at = entry.header.at;
      a.principal_id = entry.header.principal_id;
      a.principal_name = entry.header.principal_name;
      a.action = std::string(EventActionName(entry.header.action));
      a.record_id = entry.header.record_id;
      a.record_kind = entry.header.record_kind;
      if (entry.header.record_state) {
        a.record_state =
            std::string(RecordStateName(*entry.header.record_state));
      }
      if (entry.header.purpose_kind) {
        a.purpose = std::string(PurposeKindName(*entry.header.purpose_kind));
      }
      a.justification = entry.justification;
      a.fields = entry.fields;
      report.history.push_back(std::move(a));
    }
    after_seq = page->next_after_seq;
  } while (after_seq != 0);
  // Oldest first by time, not by sequence: a transition the sweep writes
  // down after its deadline is dated at the deadline, before reads made in
  // between (ties keep the sequence's order).
  std::stable_sort(report.history.begin(), report.history.end(),
                   [](const SubjectReport::Access& a,
                      const SubjectReport::Access& b) { return a.at < b.at; });

  for (const std::string& id : named) {
    auto p = u_.principals.Get(id);
    report.principals.push_back({id, p ? p->display_name : ""});
  }

  // Producing the report discloses everything in it: an event. Everything
  // was opened before the lock, and the report holds data of this subject
  // only: shredded since, none of it may be returned after its shred (nor
  // its event be written with no key to seal it under). Checked under
  // the lock the shred takes, as RecordViews::RecordReads does for reads.
  if (check) CUSTOS_RETURN_IF_ERROR(check(report));
  Event event =
      events::SubjectEvent(auditor, EventAction::kReport, subject, now);
  event.fields = events::ReportFields(report);
  CUSTOS_RETURN_IF_ERROR(
      u_.subjects.CommitWhileLive(subject, event, "recording subject report"));
  return report;
}

}  // namespace custos
