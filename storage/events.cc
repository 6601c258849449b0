#include "storage/events.h"

#include <algorithm>
#include <set>
#include <string_view>

namespace custos::events {
namespace {

Event By(const PrincipalInfo& who, EventAction action, Timestamp at) {
  Event e;
  e.at = at;
  e.principal_id = who.id;
  e.principal_name = who.display_name;
  e.action = action;
  return e;
}

void AddField(Event& e, const std::string& name) {
  if (std::find(e.fields.begin(), e.fields.end(), name) == e.fields.end()) {
    e.fields.push_back(name);
  }
}

}  // namespace

Event RecordEvent(const PrincipalInfo& who, EventAction action,
                  const codec::StoredRecord& r, Timestamp at) {
  Event e = By(who, action, at);
  e.record_id = r.id;
  e.record_kind = r.kind;
  e.record_state = r.state;
  e.subject_ids = r.subject_ids;
  return e;
}

const PrincipalInfo& RetentionPrincipal() {
  static const PrincipalInfo retention = [] {
    PrincipalInfo p;
    p.id = "custos:retention";
    p.display_name = "retention policy";
    p.roles = {Role::kAdmin};
    return p;
  }();
  return retention;
}

std::vector<Event> TransitionEvents(
    const codec::StoredRecord& r, const std::vector<PlannedTransition>& steps) {
  const PrincipalInfo& retention = RetentionPrincipal();
  std::vector<Event> out;
  for (const PlannedTransition& step : steps) {
    const EventAction action =
        step.to == RecordState::kClosed    ? EventAction::kClose
        : step.to == RecordState::kBlocked ? EventAction::kBlock
                                           : EventAction::kErase;
    out.push_back(RecordEvent(retention, action, r, step.due));
    out.back().record_state = step.to;
  }
  return out;
}

Event SubjectEvent(const PrincipalInfo& who, EventAction action,
                   const std::string& subject_id, Timestamp at) {
  Event e = By(who, action, at);
  e.subject_ids = {subject_id};
  return e;
}

std::vector<std::string> ReportFields(const SubjectReport& report) {
  std::set<std::string> names = {"identifier"};
  for (const SubjectReport::Record& r : report.records) {
    for (const Field& f : r.personal) names.insert(f.name);
    for (const FlagView& f : r.flags) {
      if (!f.note.empty()) names.insert("flag:note");
    }
    for (const ContestView& c : r.contests) {
      if (!c.statement.empty()) names.insert("contest:statement");
      for (const Field& f : c.corrected) names.insert("contest:" + f.name);
    }
  }
  if (!report.history.empty()) names.insert("access_history");
  return {names.begin(), names.end()};
}

Event PrincipalEvent(const PrincipalInfo& who, EventAction action,
                     const PrincipalInfo& target, Timestamp at) {
  Event e = By(who, action, at);
  e.fields = {std::string("principal:").append(target.id)};
  if (action == EventAction::kPrincipalCreated) {
    for (Role role : target.roles) {
      e.fields.push_back(std::string("role:").append(RoleName(role)));
    }
    if (target.redacted) e.fields.push_back("redacted");
  }
  return e;
}

std::vector<std::string> PolicyFields(const RetentionPolicy& policy) {
  std::vector<std::string> fields = {std::string("kind:").append(policy.kind)};
  if (policy.close_after) {
    fields.push_back("close_after:" + policy.close_after->ToString());
  }
  if (policy.block_after) {
    fields.push_back("block_after:" + policy.block_after->ToString());
  }
  fields.push_back("erase_after:" + policy.erase_after.ToString());
  fields.push_back("history_after:" + policy.history_after.ToString());
  return fields;
}

Result<RetentionPolicy> PolicyFromFields(
    const std::vector<std::string>& fields) {
  auto unreadable = [] {
    return Fail(Status::DataLoss("a policy_set event's fields do not read"));
  };
  std::optional<std::string> kind;
  std::optional<Period> close_after, block_after, erase_after, history_after;
  for (const std::string& field : fields) {
    const size_t colon = field.find(':');
    if (colon == std::string::npos) continue;
    const std::string_view name = std::string_view(field).substr(0, colon);
    const std::string_view value = std::string_view(field).substr(colon + 1);
    if (name == "kind") {
      if (kind) return unreadable();
      kind = std::string(value);
      continue;
    }
    std::optional<Period>* period = name == "close_after"     ? &close_after
                                    : name == "block_after"   ? &block_after
                                    : name == "erase_after"   ? &erase_after
                                    : name == "history_after" ? &history_after
                                                              : nullptr;
    if (period == nullptr) continue;
    if (period->has_value()) return unreadable();
    auto parsed = ParsePeriod(value);
    if (!parsed) return unreadable();
    *period = *parsed;
  }
  if (!kind || !erase_after || !history_after) return unreadable();
  RetentionPolicy policy;
  policy.kind = *kind;
  policy.close_after = close_after;
  policy.block_after = block_after;
  policy.erase_after = *erase_after;
  policy.history_after = *history_after;
  return policy;
}

std::string PolicyPeriodsText(const std::vector<std::string>& fields) {
  std::string text;
  for (size_t i = 1; i < fields.size(); ++i) {  // After "kind:<kind>".
    if (!text.empty()) text += ", ";
    text += fields[i];
  }
  return text;
}

Event PolicyEvent(const PrincipalInfo& who, const RetentionPolicy& policy,
                  Timestamp at) {
  Event e = By(who, EventAction::kPolicySet, at);
  e.fields = PolicyFields(policy);
  return e;
}

std::vector<Event> BreachScopeEvents(const PrincipalInfo& who,
                                     const BreachScope& scope, Timestamp at) {
  const Purpose purpose{PurposeKind::kLegalObligation, scope.purpose};
  std::vector<Event> events;
  for (const BreachSubject& s : scope.subjects) {
    Event e = SubjectEvent(who, EventAction::kBreachScope, s.subject_id, at);
    e.purpose = purpose;
    e.fields = {"identifier"};
    events.push_back(std::move(e));
  }
  Event act = By(who, EventAction::kBreachScope, at);
  act.purpose = purpose;
  for (const std::string& id : scope.principal_ids) {
    act.fields.push_back(std::string("principal:").append(id));
  }
  act.fields.push_back(
      std::string("from:").append(std::to_string(ToMicros(scope.from))));
  act.fields.push_back(
      std::string("to:").append(std::to_string(ToMicros(scope.to))));
  act.fields.push_back(
      std::string("subjects:").append(std::to_string(scope.subjects.size())));
  events.push_back(std::move(act));
  return events;
}

Event ReadEvent(const PrincipalInfo& who, const RecordView& view,
                const std::optional<Purpose>& purpose, Timestamp at) {
  // Reading closed or blocked data is possible only for a stated purpose.
  Event e =
      By(who,
         view.state == RecordState::kActive ? EventAction::kRead
                                            : EventAction::kReadRestricted,
         at);
  e.record_id = view.id;
  e.record_kind = view.kind;
  e.record_state = view.state;
  e.purpose = purpose;
  size_t names = 0;
  for (const PartView& part : view.parts) names += part.fields.size();
  e.subject_ids.reserve(view.parts.size());
  e.fields.reserve(names);
  e.fields_by_subject.resize(view.parts.size());
  // Each subject's part of the event names what of theirs was disclosed;
  // `fields` (the union) is what an event about no subject would keep.
  auto add = [&e](size_t i, const std::string& name) {
    AddField(e, name);
    auto& own = e.fields_by_subject[i];
    if (std::find(own.begin(), own.end(), name) == own.end()) {
      own.push_back(name);
    }
  };
  auto index_of = [&view](const std::string& subject_id) {
    for (size_t i = 0; i < view.parts.size(); ++i) {
      if (view.parts[i].subject_id == subject_id) return i;
    }
    return view.parts.size();
  };
  for (size_t i = 0; i < view.parts.size(); ++i) {
    e.subject_ids.push_back(view.parts[i].subject_id);
    // A part is shown with its subject's identifier (an e-mail address, a
    // national number): disclosed too, and named first.
    if (!view.parts[i].subject_identifier.empty()) add(i, "identifier");
    for (const Field& f : view.parts[i].fields) add(i, f.name);
  }
  // Flag notes and contests shown with the record are disclosed too, as
  // the data of the subject who flagged or contested (shown only while
  // that subject's part is).
  for (const FlagView& f : view.flags) {
    const size_t i = index_of(f.subject_id);
    if (!f.note.empty() && i < view.parts.size()) add(i, "flag:note");
  }
  for (const ContestView& c : view.contests) {
    const size_t i = index_of(c.subject_id);
    if (i == view.parts.size()) continue;
    if (!c.statement.empty()) add(i, "contest:statement");
    for (const Field& f : c.corrected) add(i, "contest:" + f.name);
  }
  return e;
}

std::vector<std::string> FieldNames(const std::vector<Field>& fields) {
  std::vector<std::string> names;
  for (const Field& f : fields) names.push_back(f.name);
  return names;
}

AccessEvent ToAccessEvent(const HistoryEntry& entry) {
  AccessEvent e;
  e.seq = entry.header.seq;
  e.at = entry.header.at;
  e.principal_id = entry.header.principal_id;
  e.principal_name = entry.header.principal_name;
  e.action = std::string(EventActionName(entry.header.action));
  e.record_id = entry.header.record_id;
  e.record_kind = entry.header.record_kind;
  e.record_state = entry.header.record_state;
  e.purpose = entry.header.purpose_kind;
  e.justification = entry.justification;
  e.fields = entry.fields;
  return e;
}

}  // namespace custos::events
