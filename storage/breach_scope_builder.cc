#include "storage/breach_scope_builder.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "storage/events.h"

namespace custos {
namespace {

BreachDisclosure ToBreachDisclosure(const EventHeader& h,
                                    const Disclosure::Part& part) {
  BreachDisclosure d;
  d.seq = h.seq;
  d.at = h.at;
  d.principal_id = h.principal_id;
  d.principal_name = h.principal_name;
  d.action = std::string(EventActionName(h.action));
  d.record_id = h.record_id;
  d.record_kind = h.record_kind;
  d.record_state = h.record_state;
  d.purpose = h.purpose_kind;
  d.justification = part.justification;
  d.fields = part.fields;
  return d;
}

}  // namespace

Result<BreachScope> BreachScopeBuilder::Produce(
    const PrincipalInfo& auditor, const BreachQuery& query,
    const BeforeDisclosure<BreachScope>& check) {
  CUSTOS_RETURN_IF_ERROR(CheckBreachQuery(query, u_.limits));
  // A mistyped id must not read as "received nothing": revoked principals
  // (the usual case: the stolen credential was revoked) are still known.
  for (size_t i = 0; i < query.principal_ids.size(); ++i) {
    auto p = u_.principals.Get(query.principal_ids[i]);
    if (!p) {
      if (p.error().code() == StatusCode::kNotFound) {
        // By position: a caller's text is not echoed.
        return Fail(Status::NotFound("principal " + std::to_string(i + 1) +
                                     " of the breach scope is not known"));
      }
      return Fail(p.error());
    }
  }

  BreachScope scope;
  scope.generated_at = u_.clock.Now();
  scope.auditor_id = auditor.id;
  scope.principal_ids = query.principal_ids;
  scope.from = query.from;
  scope.to = query.to;
  scope.purpose = query.purpose;

  const KeyLookup keys = [this](const std::string& id) {
    return u_.subjects.Key(id);
  };
  const KeyLookup retiring = [this](const std::string& id) {
    return u_.subjects.RetiringKey(id);
  };
  std::map<std::string, BreachSubject> by_subject;
  std::map<std::string, std::set<uint64_t>> records;
  std::map<std::string, std::set<std::string>> fields;
  size_t budget = u_.limits.max_breach_disclosures;
  for (const std::string& principal : query.principal_ids) {
    // With the budget spent, one more disclosure is one too many.
    auto walk = u_.store.history().Disclosures(principal, query.from, query.to,
                                               std::max<size_t>(budget, 1),
                                               keys, retiring);
    if (!walk) return Fail(walk.error());
    if (walk->more || walk->disclosures.size() > budget) {
      return Fail(Status::ResourceExhausted(
          std::string("more than ")
              .append(std::to_string(u_.limits.max_breach_disclosures))
              .append(" disclosures in the window; split it")));
    }
    budget -= walk->disclosures.size();
    if (walk->indexed_from > 1 &&
        (!walk->unindexed_until || query.from <= *walk->unindexed_until)) {
      // Unknown (the last unindexed event was pruned): the whole window.
      scope.unindexed_until = walk->unindexed_until.value_or(query.to);
    }
    for (const Disclosure& d : walk->disclosures) {
      ++scope.disclosures;
      scope.without_identity += d.sealed_parts - d.parts.size();
      for (const Disclosure::Part& part : d.parts) {
        BreachSubject& s = by_subject[part.subject_id];
        s.disclosures.push_back(ToBreachDisclosure(d.header, part));
        if (d.header.record_id != 0) {
          records[part.subject_id].insert(d.header.record_id);
        }
        fields[part.subject_id].insert(part.fields.begin(), part.fields.end());
      }
    }
  }

  for (auto& [id, s] : by_subject) {
    s.subject_id = id;
    s.record_ids.assign(records[id].begin(), records[id].end());
    s.fields.assign(fields[id].begin(), fields[id].end());
    std::sort(s.disclosures.begin(), s.disclosures.end(),
              [](const BreachDisclosure& a, const BreachDisclosure& b) {
                return a.at != b.at ? a.at < b.at : a.seq < b.seq;
              });
    auto key = u_.subjects.Key(id);
    if (!key) return Fail(key.error());
    if (!*key) continue;  // Shredded since its parts were opened: below.
    auto identifier = u_.subjects.Identifier(id, **key);
    if (!identifier) return Fail(identifier.error());
    s.identifier = std::move(*identifier);
  }

  // The scope discloses the subjects' identifiers and what they were
  // disclosed: events, written before it is returned. Checked under the
  // lock a shred takes, as for a subject report: a subject shredded
  // meanwhile is counted without identity, and gets no event (there is no
  // key to seal it under).
  // What is about to be returned is looked at first, with nothing written
  // (an answer too large to send): no event may say the auditor received
  // a scope that never reached it.
  for (auto& [id, s] : by_subject) scope.subjects.push_back(std::move(s));
  if (check) CUSTOS_RETURN_IF_ERROR(check(scope));
  WriteLock lock = u_.store.Lock();
  Status failure;
  std::erase_if(scope.subjects, [&](const BreachSubject& s) {
    if (!failure.ok()) return false;
    auto key = u_.subjects.Key(s.subject_id);
    if (!key) {
      failure = key.error();
      return false;
    }
    if (*key) return false;
    scope.without_identity += s.disclosures.size();
    return true;
  });
  CUSTOS_RETURN_IF_ERROR(failure);
  leveldb::WriteBatch batch;
  CUSTOS_RETURN_IF_ERROR(u_.store.Commit(
      std::move(lock), batch,
      events::BreachScopeEvents(auditor, scope, scope.generated_at),
      "recording breach scope"));
  return scope;
}

}  // namespace custos
