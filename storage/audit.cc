#include "storage/audit.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "crypto/keyed_hash.h"
#include "storage/events.h"
#include "storage/retention_policy.h"

namespace custos {

Result<std::string> Audit::FindSubject(const PrincipalInfo& caller,
                                       std::string_view identifier) const {
  auto found = u_.subjects.Find(identifier);
  if (!found) return found;
  // No id is returned after the subject's shred.
  CUSTOS_RETURN_IF_ERROR(u_.subjects.CommitWhileLive(
      *found,
      events::SubjectEvent(caller, EventAction::kFindSubject, *found,
                           u_.clock.Now()),
      "recording a subject lookup"));
  return found;
}

Result<AccessHistoryPage> Audit::History(
    const PrincipalInfo& auditor, std::string_view subject_id, Timestamp from,
    Timestamp to, uint64_t after_seq, uint32_t limit,
    const BeforeDisclosure<AccessHistoryPage>& check) const {
  if (limit == 0 || limit > u_.limits.max_page_size) {
    return Fail(Status::InvalidArgument(
        std::string("limit must be 1 to ")
            .append(std::to_string(u_.limits.max_page_size))));
  }
  auto subject = u_.subjects.Read(subject_id);
  if (!subject) return Fail(subject.error());
  const Subjects& subjects = u_.subjects;
  const std::string subject_key_id(subject_id);
  auto key = subjects.Key(subject_key_id);
  if (!key) return Fail(key.error());
  // Shredded: nothing opens. Said so, as the subject report says it: an
  // empty page would read as "nobody received their data" (walkthrough
  // helper-117).
  if (!*key) return Fail(Status::NotFound("subject not found"));
  auto page = u_.store.history().ForSubject(
      std::string(subject_id), from, to, after_seq, limit,
      [&subjects](const std::string& id) { return subjects.Key(id); },
      [&subjects](const std::string& id) { return subjects.RetiringKey(id); });
  if (!page) return Fail(page.error());
  AccessHistoryPage out;
  for (const HistoryEntry& entry : page->entries) {
    out.events.push_back(events::ToAccessEvent(entry));
  }
  out.next_after_seq = page->next_after_seq;
  // The page discloses what was sealed under the subject's key: an event,
  // written before the page is returned, under the lock a shred takes
  // (none of it may be returned after the subject's shred). Not for a page
  // with nothing in it but earlier history reads (or nothing at all): they
  // carry no justification or field, and a client paging to the end, or
  // following the tail, would otherwise be fed its own events for ever.
  const bool discloses = std::any_of(
      page->entries.begin(), page->entries.end(), [](const HistoryEntry& e) {
        return e.header.action != EventAction::kAccessHistory;
      });
  if (!discloses) return out;
  if (check) CUSTOS_RETURN_IF_ERROR(check(out));
  // What it disclosed, for a breach scope: the subject's access history
  // (its events' justifications and field names).
  Event event = events::SubjectEvent(auditor, EventAction::kAccessHistory,
                                     subject_key_id, u_.clock.Now());
  event.fields = {"access_history"};
  CUSTOS_RETURN_IF_ERROR(subjects.CommitWhileLive(
      subject_key_id, event, "recording an access history read"));
  return out;
}

Result<ChainVerification> Audit::VerifyChain(
    const WorkProgressFn& progress,
    const std::vector<RecordedHead>& through) const {
  CUSTOS_RETURN_IF_ERROR(CheckRecordedHeads(through));
  std::vector<ChainAnchor> anchors;
  anchors.reserve(through.size());
  for (const RecordedHead& head : through) {
    ChainAnchor anchor{.seq = head.seq};
    const std::optional<std::string> link = crypto::FromHex(head.link_hex);
    // Checked: 64 hex digits.
    std::memcpy(anchor.link.data(), link->data(), anchor.link.size());
    anchors.push_back(anchor);
  }
  std::shared_ptr<const leveldb::Snapshot> snapshot;
  std::map<std::string, std::optional<RetentionPolicy>> stored_policies;
  {
    WriteLock lock = u_.store.Lock();
    CUSTOS_RETURN_IF_ERROR(u_.store.SyncApplied(lock));
    u_.store.RunSnapshotHook();
    snapshot = u_.store.TakeSnapshot();
    // Policies::Set writes a value and its event in one batch under this
    // lock: read here, the values are those of the snapshot.
    auto stored = u_.policies.ReadStored();
    if (!stored) return Fail(stored.error());
    stored_policies = std::move(*stored);
  }
  // The last policy_set event of each kind the walk verified: its seq and
  // fields ("kind:<kind>" first).
  std::map<std::string, std::pair<uint64_t, std::vector<std::string>>> last_set;
  auto each = [&last_set](const EventHeader& header,
                          const std::vector<std::string>& fields) {
    constexpr std::string_view kKind = "kind:";
    if (header.action != EventAction::kPolicySet || fields.empty() ||
        !fields.front().starts_with(kKind)) {
      return;
    }
    last_set[fields.front().substr(kKind.size())] = {header.seq, fields};
  };
  // Read without the lock, from the snapshot.
  auto report =
      u_.store.history().Verify(snapshot.get(), progress, anchors, each);
  if (!report) return Fail(report.error());
  ChainVerification out;
  out.ok = report->ok();
  out.problem =
      report->ok() ? "" : std::string(ChainProblemName(report->problem));
  out.first_broken = report->first_broken;
  out.verified = report->verified;
  out.head_seq = report->head_seq;
  out.head_link_hex = crypto::ToHex(report->head_link);
  out.anchors_matched = report->anchors_matched;
  out.anchors_folded = report->anchors_folded;
  out.anchor_last_held = report->anchor_last_held;
  // The walk verified every event from the checkpoint to the last stored
  // one (whatever the head, the anchors or the index scan found after it):
  // the policy_set events it met are all there are.
  if (!report->walked_to_end) return out;
  out.policies_checked = true;

  // What each kind's policy should be: what its last event set, else the
  // shipped default (no event is written for those), else none.
  struct Expected {
    uint64_t seq = 0;
    Result<RetentionPolicy> policy = Fail(Status::NotFound("no policy"));
    std::string text;  // As the event said it (or the default's).
  };
  const auto& describe = events::PolicyPeriodsText;
  std::map<std::string, Expected> expected;
  for (const RetentionPolicy& policy : DefaultPolicies()) {
    expected[policy.kind] = {.seq = 0,
                             .policy = policy,
                             .text = describe(events::PolicyFields(policy))};
  }
  for (const auto& [kind, set] : last_set) {
    expected[kind] = {.seq = set.first,
                      .policy = events::PolicyFromFields(set.second),
                      .text = describe(set.second)};
  }
  std::set<std::string> kinds;
  for (const auto& [kind, policy] : stored_policies) kinds.insert(kind);
  for (const auto& [kind, want] : expected) kinds.insert(kind);
  for (const std::string& kind : kinds) {
    auto want = expected.find(kind);
    auto have = stored_policies.find(kind);
    const bool stored = have != stored_policies.end();
    const bool stored_ok = stored && have->second.has_value();
    bool same;
    if (want == expected.end()) {
      same = !stored;
    } else {
      same = stored_ok && want->second.policy.has_value() &&
             *want->second.policy == *have->second;
    }
    if (same) continue;
    ++out.policy_differences_total;
    if (out.policy_differences.size() >= kMaxPolicyDifferences) continue;
    PolicyDifference d;
    d.kind = kind;
    if (want != expected.end()) {
      d.last_set_seq = want->second.seq;
      d.expected = want->second.text;
      d.expected_from = want->second.seq == 0
                            ? PolicyDifference::kShippedDefault
                            : PolicyDifference::kEvent;
    }
    if (!stored) {
      d.stored = PolicyDifference::kNone;
    } else if (!stored_ok) {
      d.stored = PolicyDifference::kUnauthenticated;
    } else {
      d.stored = PolicyDifference::kStored;
      d.stored_text = describe(events::PolicyFields(*have->second));
    }
    out.policy_differences.push_back(std::move(d));
  }
  return out;
}

Result<RecordedHead> Audit::DurableHead() const {
  WriteLock lock = u_.store.Lock();
  CUSTOS_RETURN_IF_ERROR(u_.store.SyncApplied(lock));
  const History::Head head = u_.store.history().head();
  return RecordedHead{.seq = head.last_seq,
                      .link_hex = crypto::ToHex(head.link)};
}

}  // namespace custos
