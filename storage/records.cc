#include "storage/records.h"

#include <algorithm>
#include <iterator>
#include <map>

#include "storage/events.h"
#include "storage/keys.h"
#include "storage/sealing.h"

namespace custos {
namespace {

using codec::StoredRecord;

Status RequireOwner(const PrincipalInfo& caller, const StoredRecord& r) {
  if (r.owner != caller.id) {
    return Status::PermissionDenied("only the record's owner may do this");
  }
  return Status::Ok();
}

Status RequireState(RecordState actual,
                    std::initializer_list<RecordState> allowed,
                    std::string_view action) {
  for (RecordState s : allowed) {
    if (s == actual) return Status::Ok();
  }
  return Status::FailedPrecondition("cannot " + std::string(action) +
                                    " a record that is " +
                                    std::string(RecordStateName(actual)));
}

// `s`, naming the record's position in its batch when `name_position`.
Status AtPosition(bool name_position, size_t i, const Status& s) {
  if (!name_position) return s;
  return Status(s.code(), std::string("record ")
                              .append(std::to_string(i))
                              .append(": ")
                              .append(s.message()));
}

Status RequireSubject(const StoredRecord& r, std::string_view subject_id) {
  if (std::find(r.subject_ids.begin(), r.subject_ids.end(), subject_id) ==
      r.subject_ids.end()) {
    return Status::InvalidArgument("the record holds no part for that subject");
  }
  return Status::Ok();
}

}  // namespace

Result<SharedKey> Records::LiveKey(std::string_view subject_id) const {
  auto key = u_.subjects.Key(std::string(subject_id));
  if (!key) return key;
  if (!*key) {
    return Fail(Status::FailedPrecondition("that subject has been erased"));
  }
  return key;
}

Result<size_t> Records::PersonalBytes(const StoredRecord& r,
                                      std::string_view replaced_subject) const {
  size_t total = 0;
  // Counted exactly, as ValidateNewRecord counts a new record: the sealed
  // size would overcount (encoding and seal overhead), so a record created
  // at the limit could never be rectified even to the same bytes.
  auto count = [&](const std::string& subject_id, const codec::Bytes& sealed,
                   const sealing::Bytes& ad, std::string_view what) -> Status {
    if (sealed.empty()) return Status::Ok();
    auto key = u_.subjects.Key(subject_id);
    if (!key) return key.error();
    if (!*key) {
      // Shredded: unreadable, but stored until CompleteShreds drops it.
      total += sealed.size();
      return Status::Ok();
    }
    // During a re-key what is not re-sealed yet is under the retiring key.
    auto fields = u_.subjects.OpenFields(subject_id, **key, r.erase_bucket,
                                         sealed, ad, what);
    if (!fields) return fields.error();
    for (const Field& f : *fields) total += f.name.size() + f.value.size();
    return Status::Ok();
  };
  for (const auto& part : r.parts) {
    if (part.subject_id == replaced_subject) continue;
    CUSTOS_RETURN_IF_ERROR(
        count(part.subject_id, part.sealed,
              sealing::PartAd(r.id, part.subject_id, part.version),
              "a personal part"));
  }
  for (const auto& f : r.flags) {
    CUSTOS_RETURN_IF_ERROR(
        count(f.subject_id, f.sealed_note,
              sealing::NoteAd("flag", r.id, f.subject_id, f.at_micros),
              "a flag note"));
  }
  for (const auto& c : r.contests) {
    CUSTOS_RETURN_IF_ERROR(
        count(c.subject_id, c.sealed_statement,
              sealing::NoteAd("contest", r.id, c.subject_id, c.at_micros),
              "a contest"));
  }
  return total;
}

Status Records::CheckRoom(const StoredRecord& r, size_t added,
                          std::string_view replaced_subject) const {
  auto held = PersonalBytes(r, replaced_subject);
  if (!held) return held.error();
  if (added > u_.limits.max_personal_bytes ||
      *held > u_.limits.max_personal_bytes - added) {
    return Status::ResourceExhausted(
        std::string("a record's personal data may total at most ")
            .append(std::to_string(u_.limits.max_personal_bytes))
            .append(" bytes"));
  }
  return Status::Ok();
}

Status Records::CommitChange(WriteLock lock, const PrincipalInfo& caller,
                             RecordViews::Resolved& resolved,
                             EventAction action, std::string_view what) {
  StoredRecord& r = resolved.record;
  leveldb::WriteBatch batch;
  CUSTOS_RETURN_IF_ERROR(u_.record_store.Put(lock, batch, r));
  std::vector<Event> record_events =
      events::TransitionEvents(r, resolved.caught_up);
  record_events.push_back(
      events::RecordEvent(caller, action, r, u_.clock.Now()));
  return u_.store.Commit(std::move(lock), batch, record_events, what);
}

Result<std::vector<std::string>> Records::CheckNew(const PrincipalInfo& caller,
                                                   const NewRecord& in) const {
  CUSTOS_RETURN_IF_ERROR(ValidateNewRecord(in, u_.limits));
  std::vector<std::string> grants;
  for (const auto& g : in.grants) {
    if (!u_.principals.IsActive(g)) {
      return Fail(Status::InvalidArgument("grantee is not a known principal"));
    }
    if (g != caller.id &&
        std::find(grants.begin(), grants.end(), g) == grants.end()) {
      grants.push_back(g);
    }
  }
  auto policy = u_.policies.For(in.kind);
  if (!policy) return Fail(policy.error());
  if (!*policy) {
    return Fail(Status::FailedPrecondition(
        "no retention policy for kind '" + in.kind +
        "': no data is stored without a retention rule"));
  }
  return grants;
}

Result<uint64_t> Records::Create(const PrincipalInfo& caller,
                                 const NewRecord& in) {
  auto ids = CreateBatch(caller, std::span(&in, 1), false);
  if (!ids) return Fail(ids.error());
  return ids->front();
}

Result<std::vector<uint64_t>> Records::CreateMany(
    const PrincipalInfo& caller, const std::vector<NewRecord>& records) {
  CUSTOS_RETURN_IF_ERROR(CheckBatchSize(records.size(), u_.limits));
  return CreateBatch(caller, records, true);
}

Result<std::vector<uint64_t>> Records::CreateBatch(
    const PrincipalInfo& caller, std::span<const NewRecord> records,
    bool name_position) {
  // A refusal of one record refuses the batch, naming the record by its
  // position (never by its content).
  auto at = [&](size_t i, const Status& s) {
    return AtPosition(name_position, i, s);
  };
  std::vector<std::vector<std::string>> grants;
  for (size_t i = 0; i < records.size(); ++i) {
    auto checked = CheckNew(caller, records[i]);
    if (!checked) return Fail(at(i, checked.error()));
    grants.push_back(std::move(*checked));
  }

  // New subjects' keys become durable first, outside the lock.
  std::vector<std::string_view> identifiers;
  for (const NewRecord& in : records) {
    for (const auto& part : in.personal) {
      identifiers.push_back(part.subject_identifier);
    }
  }
  auto prepared = u_.subjects.Prepare(identifiers);
  if (!prepared) return Fail(prepared.error());
  // Prepared keys are dropped unless the records that use them were written
  // or may have been (a failed write leaves LevelDB's state unknown: the
  // records may replay at the next Open and need their keys).
  bool committed = false;
  struct DropUnused {
    Subjects& subjects;
    Subjects::Prepared& prepared;
    const bool& committed;
    ~DropUnused() { subjects.DropUnused(prepared, committed); }
  } drop_unused{u_.subjects, *prepared, committed};
  CUSTOS_RETURN_IF_ERROR(u_.subjects.MakeDurable(*prepared));

  QueuedCreate me(caller, records, grants, *prepared, name_position, committed);
  std::unique_lock<std::mutex> queue(create_mu_);
  create_queue_.push_back(&me);
  me.wake.wait(queue, [&] {
    return me.done || (!create_queue_.empty() && create_queue_.front() == &me);
  });
  if (!me.done) {
    // At the head: this caller writes for those queued behind it too.
    if (before_group_) {
      queue.unlock();
      before_group_();
      queue.lock();
    }
    std::vector<QueuedCreate*> group;
    size_t count = 0;
    for (QueuedCreate* q : create_queue_) {
      if (!group.empty() &&
          count + q->records.size() > u_.limits.max_batch_records) {
        break;
      }
      group.push_back(q);
      count += q->records.size();
    }
    queue.unlock();
    WriteCreates(group);
    queue.lock();
    // The next group is written while this one's sync runs.
    create_queue_.erase(create_queue_.begin(),
                        create_queue_.begin() + group.size());
    if (!create_queue_.empty()) create_queue_.front()->wake.notify_one();
    queue.unlock();
    // The group's records share one write: this caller waits for it to be
    // durable and wakes the others once, not once written and again
    // durable. (Each still checks: WaitDurable below is then immediate.)
    auto written = std::ranges::find_if(
        group, [](const QueuedCreate* q) { return q->status.ok(); });
    if (written != group.end()) {
      (void)u_.store.WaitDurable((*written)->ticket);  // Each checks its own.
    }
    queue.lock();
    for (QueuedCreate* q : group) {
      q->done = true;
      if (q != &me) q->wake.notify_one();
    }
  }
  queue.unlock();
  if (!me.status.ok()) return Fail(me.status);
  CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(me.ticket));
  return me.ids;
}

void Records::WriteCreates(const std::vector<QueuedCreate*>& group) {
  size_t count = 0;
  for (const QueuedCreate* q : group) count += q->records.size();
  WriteLock lock = u_.store.Lock();
  leveldb::WriteBatch batch;
  // Ids for every record of the group, consecutive in queue order; those
  // of a refused caller stay unused.
  const uint64_t first = u_.record_store.AllocateIds(lock, batch, count);
  const Timestamp now = u_.clock.Now();
  std::vector<Event> events;
  std::vector<std::pair<std::string, std::string>> cataloged;
  std::map<std::string, std::string> unapplied_subjects;
  std::vector<QueuedCreate*> staged;
  uint64_t next = first;
  for (QueuedCreate* q : group) {
    // Each caller's entries apart first: a refusal leaves the batch as the
    // others made it.
    leveldb::WriteBatch own;
    std::vector<Event> own_events;
    std::vector<std::pair<std::string, std::string>> own_cataloged;
    std::map<std::string, std::string> own_subjects = unapplied_subjects;
    auto ids = StageCreates(lock, *q, next, now, own, own_events, own_cataloged,
                            own_subjects);
    next += q->records.size();
    if (!ids) {
      q->status = ids.error();
      continue;
    }
    batch.Append(own);
    std::move(own_events.begin(), own_events.end(), std::back_inserter(events));
    std::move(own_cataloged.begin(), own_cataloged.end(),
              std::back_inserter(cataloged));
    unapplied_subjects = std::move(own_subjects);
    q->ids = std::move(*ids);
    staged.push_back(q);
  }
  if (staged.empty()) return;
  for (QueuedCreate* q : staged) q->committed = true;
  auto ticket = u_.store.Apply(
      lock, batch, events, count == 1 ? "creating record" : "creating records");
  if (!ticket) {
    for (QueuedCreate* q : staged) q->status = ticket.error();
    return;
  }
  u_.record_store.Taken(lock, next - 1);
  Cataloged(lock, cataloged);
  for (QueuedCreate* q : staged) q->ticket = *ticket;
}

Result<std::vector<uint64_t>> Records::StageCreates(
    const WriteLock& lock, QueuedCreate& q, uint64_t first, Timestamp now,
    leveldb::WriteBatch& batch, std::vector<Event>& events,
    std::vector<std::pair<std::string, std::string>>& cataloged,
    std::map<std::string, std::string>& unapplied_subjects) {
  auto at = [&](size_t i, const Status& s) {
    return AtPosition(q.name_position, i, s);
  };
  std::vector<uint64_t> ids;
  size_t position = 0;  // Of the part's identifier in Prepare's list.
  for (size_t i = 0; i < q.records.size(); ++i) {
    const NewRecord& in = q.records[i];
    StoredRecord r;
    r.id = first + i;
    r.kind = in.kind;
    r.owner = q.caller.id;
    r.grants = std::move(q.grants[i]);
    r.attributes = in.attributes;
    r.sensitive = in.sensitive;
    r.state = RecordState::kActive;
    r.version = 1;
    r.created_at_micros = r.updated_at_micros = r.owner_changed_at_micros =
        ToMicros(now);

    for (const auto& part : in.personal) {
      auto subject_id =
          u_.subjects.FindOrCreate(lock, position++, part.subject_identifier,
                                   batch, q.prepared, unapplied_subjects);
      if (!subject_id) return Fail(subject_id.error());
      auto key = u_.subjects.Key(*subject_id);
      if (!key) return Fail(key.error());
      if (!*key) return Fail(Status::Internal("a new subject has no key"));
      r.parts.push_back(
          {*subject_id, r.version,
           sealing::SealFields(**key, part.fields,
                               sealing::PartAd(r.id, *subject_id, r.version))});
      r.subject_ids.push_back(*subject_id);
      batch.Put(keys::SubjectRecord(*subject_id, r.id), "");
    }
    Status put = u_.record_store.Put(lock, batch, r);
    if (!put.ok()) return Fail(at(i, put));
    for (const auto& part : in.personal) {
      CatalogFieldNames(lock, batch, r.kind, part.fields, cataloged);
    }
    batch.Put(keys::Acl(r.owner, r.id), "");
    for (const auto& g : r.grants) batch.Put(keys::Acl(g, r.id), "");
    Event event = events::RecordEvent(q.caller, EventAction::kCreate, r, now);
    // In the order of r.subject_ids (one per part): each subject's part of
    // the event names that subject's fields only.
    event.fields_by_subject.resize(r.subject_ids.size());
    for (size_t p = 0; p < in.personal.size(); ++p) {
      for (const Field& f : in.personal[p].fields) {
        if (std::find(event.fields.begin(), event.fields.end(), f.name) ==
            event.fields.end()) {
          event.fields.push_back(f.name);
        }
        event.fields_by_subject[p].push_back(f.name);
      }
    }
    events.push_back(std::move(event));
    // Grants given at creation are disclosures too: one grant event each.
    for (const std::string& grantee : r.grants) {
      events.push_back(
          events::RecordEvent(q.caller, EventAction::kGrant, r, now));
      events.back().fields = {"grantee:" + grantee};
    }
    ids.push_back(r.id);
  }
  return ids;
}

Status Records::Grant(const PrincipalInfo& caller, uint64_t id,
                      std::string_view grantee) {
  auto target = u_.principals.Get(grantee);
  if (!target || target->revoked) {
    return Status::InvalidArgument("grantee is not a known principal");
  }
  WriteLock lock = u_.store.Lock();
  auto resolved = u_.views.Resolve(caller, id, false);
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  CUSTOS_RETURN_IF_ERROR(RequireOwner(caller, r));
  CUSTOS_RETURN_IF_ERROR(
      RequireState(resolved->state, {RecordState::kActive}, "grant access to"));
  if (r.owner == target->id || std::find(r.grants.begin(), r.grants.end(),
                                         target->id) != r.grants.end()) {
    return Status::Ok();
  }
  if (r.grants.size() >= u_.limits.max_grants) {
    return Status::ResourceExhausted(
        std::string("a record may have at most ")
            .append(std::to_string(u_.limits.max_grants))
            .append(" grants"));
  }
  const Timestamp now = u_.clock.Now();
  r.grants.push_back(target->id);
  r.updated_at_micros = r.owner_changed_at_micros = ToMicros(now);
  leveldb::WriteBatch batch;
  CUSTOS_RETURN_IF_ERROR(u_.record_store.Put(lock, batch, r));
  batch.Put(keys::Acl(target->id, r.id), "");
  Event event = events::RecordEvent(caller, EventAction::kGrant, r, now);
  event.fields = {"grantee:" + target->id};
  return u_.store.Commit(std::move(lock), batch, {event}, "granting access");
}

void Records::CatalogFieldNames(
    const WriteLock& /*lock*/, leveldb::WriteBatch& batch,
    const std::string& kind, const std::vector<Field>& fields,
    std::vector<std::pair<std::string, std::string>>& added) const {
  for (const Field& f : fields) {
    std::pair<std::string, std::string> pair{kind, f.name};
    if (cataloged_.contains(pair) ||
        std::find(added.begin(), added.end(), pair) != added.end()) {
      continue;
    }
    batch.Put(keys::KindField(kind, f.name), "");
    added.push_back(std::move(pair));
  }
}

void Records::Cataloged(
    const WriteLock& /*lock*/,
    std::vector<std::pair<std::string, std::string>>& added) {
  for (auto& pair : added) cataloged_.insert(std::move(pair));
  added.clear();
}

Result<uint64_t> Records::Rectify(const PrincipalInfo& caller, uint64_t id,
                                  std::string_view subject_id,
                                  const std::vector<Field>& fields) {
  size_t bytes = 0;
  CUSTOS_RETURN_IF_ERROR(CheckFields(fields, u_.limits, &bytes));
  WriteLock lock = u_.store.Lock();
  auto resolved = u_.views.Resolve(caller, id, false);
  if (!resolved) return Fail(resolved.error());
  StoredRecord& r = resolved->record;
  CUSTOS_RETURN_IF_ERROR(RequireOwner(caller, r));
  CUSTOS_RETURN_IF_ERROR(
      RequireState(resolved->state, {RecordState::kActive}, "rectify"));
  auto part = std::find_if(r.parts.begin(), r.parts.end(), [&](const auto& p) {
    return p.subject_id == subject_id;
  });
  if (part == r.parts.end()) {
    return Fail(
        Status::InvalidArgument("the record holds no part for that subject"));
  }
  auto key = LiveKey(part->subject_id);
  if (!key) return Fail(key.error());
  CUSTOS_RETURN_IF_ERROR(CheckRoom(r, bytes, subject_id));
  const Timestamp now = u_.clock.Now();
  r.version += 1;
  leveldb::WriteBatch batch;
  // The replaced data must not linger either: witnessed and queued for
  // the next compaction (the next sweep, erasure or Open), not compacted
  // here, so rectifying stays cheap.
  Erasure::AddWitness(batch, part->sealed);
  Erasure::Queue(batch, RecordStore::SealedKey(r), ToMicros(now));
  part->version = r.version;
  auto sealed = u_.subjects.SealFields(
      **key, r.erase_bucket, fields,
      sealing::PartAd(r.id, part->subject_id, r.version));
  if (!sealed) return Fail(sealed.error());
  part->sealed = std::move(*sealed);
  r.updated_at_micros = r.owner_changed_at_micros = ToMicros(now);
  CUSTOS_RETURN_IF_ERROR(u_.record_store.Put(lock, batch, r));
  std::vector<std::pair<std::string, std::string>> cataloged;
  CatalogFieldNames(lock, batch, r.kind, fields, cataloged);
  Event event = events::RecordEvent(caller, EventAction::kRectify, r, now);
  event.subject_ids = {part->subject_id};
  event.fields = events::FieldNames(fields);
  auto ticket = u_.store.Apply(lock, batch, {event}, "rectifying record");
  if (!ticket) return Fail(ticket.error());
  Cataloged(lock, cataloged);
  lock.Unlock();
  CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(*ticket));
  return r.version;
}

Status Records::Flag(const PrincipalInfo& caller, uint64_t id,
                     std::string_view subject_id, std::string_view note,
                     const std::optional<Purpose>& purpose) {
  CUSTOS_RETURN_IF_ERROR(CheckPurpose(purpose, u_.limits));
  CUSTOS_RETURN_IF_ERROR(
      CheckLength(note, "a note", u_.limits.max_note_length, false));
  WriteLock lock = u_.store.Lock();
  auto resolved = u_.views.Resolve(caller, id, purpose.has_value());
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  if (resolved->view != View::kFull || (r.sensitive && !purpose)) {
    return Status::PermissionDenied(
        "flagging needs access to the record's personal data");
  }
  CUSTOS_RETURN_IF_ERROR(RequireSubject(r, subject_id));
  auto key = LiveKey(subject_id);
  if (!key) return key.error();
  if (r.flags.size() >= u_.limits.max_flags_per_record) {
    return Status::ResourceExhausted(
        std::string("a record may hold at most ")
            .append(std::to_string(u_.limits.max_flags_per_record))
            .append(" flags"));
  }
  // Sealed as the one field "note", and counted so.
  CUSTOS_RETURN_IF_ERROR(CheckRoom(r, 4 + note.size(), {}));
  const Timestamp now = u_.clock.Now();
  codec::StoredFlag flag{caller.id, ToMicros(now), std::string(subject_id), {}};
  auto sealed = u_.subjects.SealFields(
      **key, r.erase_bucket, {{"note", std::string(note)}},
      sealing::NoteAd("flag", r.id, flag.subject_id, flag.at_micros));
  if (!sealed) return sealed.error();
  flag.sealed_note = std::move(*sealed);
  r.flags.push_back(std::move(flag));
  // A record written before the owner's changes were stored counts from
  // its last change: kept as the owner's before another one moves it.
  if (r.owner_changed_at_micros == 0) {
    r.owner_changed_at_micros = r.updated_at_micros;
  }
  r.updated_at_micros = ToMicros(now);
  // Only the owner's changes keep a record open (close_after).
  if (caller.id == r.owner) r.owner_changed_at_micros = ToMicros(now);
  leveldb::WriteBatch batch;
  CUSTOS_RETURN_IF_ERROR(u_.record_store.Put(lock, batch, r));
  std::vector<Event> record_events =
      events::TransitionEvents(r, resolved->caught_up);
  Event& event = record_events.emplace_back(
      events::RecordEvent(caller, EventAction::kFlag, r, now));
  event.subject_ids = {std::string(subject_id)};
  event.purpose = purpose;
  event.fields = {"note"};
  return u_.store.Commit(std::move(lock), batch, record_events,
                         "flagging record");
}

Status Records::Contest(const PrincipalInfo& caller, uint64_t id,
                        std::string_view subject_id, std::string_view statement,
                        const std::vector<Field>& corrected) {
  CUSTOS_RETURN_IF_ERROR(CheckLength(statement, "a contest statement",
                                     u_.limits.max_note_length, false));
  size_t bytes = 0;
  CUSTOS_RETURN_IF_ERROR(CheckFields(corrected, u_.limits, &bytes));
  for (const auto& f : corrected) {
    if (f.name == sealing::kStatementField) {
      return Status::InvalidArgument("'statement' is reserved as a field name");
    }
  }
  WriteLock lock = u_.store.Lock();
  // Recording a contest is done for the data subject: it is the subject's
  // consent that makes the officer's view of the record lawful here.
  auto resolved = u_.views.Resolve(caller, id, /*purpose_given=*/true);
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  CUSTOS_RETURN_IF_ERROR(RequireState(
      resolved->state,
      {RecordState::kActive, RecordState::kClosed, RecordState::kBlocked},
      "contest"));
  CUSTOS_RETURN_IF_ERROR(RequireSubject(r, subject_id));
  auto key = LiveKey(subject_id);
  if (!key) return key.error();
  if (r.contests.size() >= u_.limits.max_contests_per_record) {
    return Status::ResourceExhausted(
        std::string("a record may hold at most ")
            .append(std::to_string(u_.limits.max_contests_per_record))
            .append(" contests"));
  }
  // Sealed with the statement as a field named "statement", and counted so.
  CUSTOS_RETURN_IF_ERROR(CheckRoom(
      r, bytes + sealing::kStatementField.size() + statement.size(), {}));
  const Timestamp now = u_.clock.Now();
  codec::StoredContest contest{
      caller.id, ToMicros(now), std::string(subject_id), {}};
  std::vector<Field> fields{
      {std::string(sealing::kStatementField), std::string(statement)}};
  fields.insert(fields.end(), corrected.begin(), corrected.end());
  auto sealed = u_.subjects.SealFields(
      **key, r.erase_bucket, fields,
      sealing::NoteAd("contest", r.id, contest.subject_id, contest.at_micros));
  if (!sealed) return sealed.error();
  contest.sealed_statement = std::move(*sealed);
  r.contests.push_back(std::move(contest));
  if (r.owner_changed_at_micros == 0) {
    r.owner_changed_at_micros = r.updated_at_micros;
  }
  r.updated_at_micros = ToMicros(now);
  if (caller.id == r.owner) r.owner_changed_at_micros = ToMicros(now);
  leveldb::WriteBatch batch;
  CUSTOS_RETURN_IF_ERROR(u_.record_store.Put(lock, batch, r));
  // The corrected fields are personal data held, as reads disclose them
  // ("contest:<name>"): in the register's catalog (a review, helper-125).
  std::vector<Field> corrected_names;
  for (const Field& f : corrected) {
    corrected_names.push_back({"contest:" + f.name, ""});
  }
  std::vector<std::pair<std::string, std::string>> cataloged;
  CatalogFieldNames(lock, batch, r.kind, corrected_names, cataloged);
  std::vector<Event> record_events =
      events::TransitionEvents(r, resolved->caught_up);
  Event& event = record_events.emplace_back(
      events::RecordEvent(caller, EventAction::kContest, r, now));
  event.subject_ids = {std::string(subject_id)};
  event.fields = events::FieldNames(fields);
  auto ticket = u_.store.Apply(lock, batch, record_events, "recording contest");
  if (!ticket) return ticket.error();
  Cataloged(lock, cataloged);
  lock.Unlock();
  return u_.store.WaitDurable(*ticket);
}

Status Records::Close(const PrincipalInfo& caller, uint64_t id) {
  WriteLock lock = u_.store.Lock();
  auto resolved = u_.views.Resolve(caller, id, false);
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  CUSTOS_RETURN_IF_ERROR(RequireOwner(caller, r));
  CUSTOS_RETURN_IF_ERROR(
      RequireState(resolved->state, {RecordState::kActive}, "close"));
  r.state = RecordState::kClosed;
  r.closed_at_micros = r.updated_at_micros = ToMicros(u_.clock.Now());
  return CommitChange(std::move(lock), caller, *resolved, EventAction::kClose,
                      "closing record");
}

Status Records::Withdraw(const PrincipalInfo& caller, uint64_t id) {
  WriteLock lock = u_.store.Lock();
  auto resolved = u_.views.Resolve(caller, id, false);
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  CUSTOS_RETURN_IF_ERROR(RequireOwner(caller, r));
  CUSTOS_RETURN_IF_ERROR(
      RequireState(resolved->state,
                   {RecordState::kActive, RecordState::kClosed}, "withdraw"));
  const int64_t now = ToMicros(u_.clock.Now());
  r.state = RecordState::kBlocked;
  if (r.closed_at_micros == 0) r.closed_at_micros = now;
  r.blocked_at_micros = r.updated_at_micros = now;
  return CommitChange(std::move(lock), caller, *resolved,
                      EventAction::kWithdraw, "withdrawing record");
}

Status Records::Erase(const PrincipalInfo& caller, uint64_t id) {
  WriteLock lock = u_.store.Lock();
  auto resolved = u_.views.Resolve(caller, id, false);
  if (!resolved) return resolved.error();
  StoredRecord& r = resolved->record;
  if (!caller.HasRole(Role::kAdmin)) {
    if (!caller.HasRole(Role::kUser)) {
      return Status::PermissionDenied("this call needs the user or admin role");
    }
    CUSTOS_RETURN_IF_ERROR(RequireOwner(caller, r));
  }
  if (resolved->state == RecordState::kErased) {
    return Status::FailedPrecondition("the record is already ERASED");
  }
  const int64_t now = ToMicros(u_.clock.Now());
  auto holds = u_.holds.OnRecord(r, now);
  if (!holds) return holds.error();
  if (!holds->empty()) {
    // An owner is not told the holds' ids (Holds::Describe).
    return Status::FailedPrecondition(
        "erasure refused: the record is under " +
        Holds::Describe(*holds, resolved->sees_subject_ids));
  }
  leveldb::WriteBatch batch;
  Erasure::EraseContents(r, now, now, batch);
  r.updated_at_micros = now;
  CUSTOS_RETURN_IF_ERROR(u_.record_store.Put(lock, batch, r));
  std::vector<Event> record_events =
      events::TransitionEvents(r, resolved->caught_up);
  record_events.push_back(
      events::RecordEvent(caller, EventAction::kErase, r, FromMicros(now)));
  CUSTOS_RETURN_IF_ERROR(u_.erasure.Ledger({{id, now}}));
  CUSTOS_RETURN_IF_ERROR(
      u_.store.Commit(std::move(lock), batch, record_events, "erasing record"));
  return u_.erasure.CompactQueuedUnlessDelayed();
}

Result<HoldView> Records::SetRecordHold(const PrincipalInfo& officer,
                                        uint64_t record_id,
                                        std::string_view reason,
                                        Timestamp ends_at) {
  CUSTOS_RETURN_IF_ERROR(
      CheckLength(reason, "a hold's reason", u_.limits.max_note_length, false));
  WriteLock lock = u_.store.Lock();
  auto record = u_.record_store.Read(record_id);
  if (!record) return Fail(record.error());
  // A hold set after the erasure took effect would hold nothing (the
  // erasure stays dated at its instant): refused, not silently void.
  // Shreds included: a record whose subjects were all shredded is ERASED
  // too, whatever its deadlines say.
  leveldb::WriteBatch scratch;
  int64_t erased_by_shred = 0;
  auto caught_up = u_.views.CatchUp(*record, ToMicros(u_.clock.Now()), scratch,
                                    &erased_by_shred);
  if (!caught_up) return Fail(caught_up.error());
  if (record->state == RecordState::kErased || erased_by_shred != 0) {
    return Fail(Status::FailedPrecondition("the record is already ERASED"));
  }
  auto in_force = u_.holds.OnRecordOnly(record_id, ToMicros(u_.clock.Now()));
  if (!in_force) return Fail(in_force.error());
  if (in_force->size() >= u_.limits.max_holds_per_record) {
    return Fail(Status::ResourceExhausted(
        std::string("a record may be under at most ")
            .append(std::to_string(u_.limits.max_holds_per_record))
            .append(" holds in force")));
  }
  // Ended and released holds stay indexed (ErasableFrom reads them on
  // every resolution of a due erasure): their number is bounded too.
  auto ever = u_.holds.EverOnRecord(record_id);
  if (!ever) return Fail(ever.error());
  if (*ever >= u_.limits.max_holds_ever_per_record) {
    return Fail(Status::ResourceExhausted(
        std::string("a record may have had at most ")
            .append(std::to_string(u_.limits.max_holds_ever_per_record))
            .append(" holds over its life")));
  }
  HoldView hold;
  hold.record_id = record_id;
  return u_.holds.Add(std::move(lock), officer, std::move(hold), reason,
                      ends_at, &*record);
}

Result<HoldView> Records::SetSubjectHold(const PrincipalInfo& officer,
                                         std::string_view subject_id,
                                         std::string_view reason,
                                         Timestamp ends_at) {
  CUSTOS_RETURN_IF_ERROR(
      CheckLength(reason, "a hold's reason", u_.limits.max_note_length, false));
  WriteLock lock = u_.store.Lock();
  auto subject = u_.subjects.Read(subject_id);
  if (!subject) return Fail(subject.error());
  if (subject->shredded) return Fail(Status::NotFound("subject not found"));
  auto in_force =
      u_.holds.OnSubjectOnly(std::string(subject_id), ToMicros(u_.clock.Now()));
  if (!in_force) return Fail(in_force.error());
  if (in_force->size() >= u_.limits.max_holds_per_subject) {
    return Fail(Status::ResourceExhausted(
        std::string("a subject may be under at most ")
            .append(std::to_string(u_.limits.max_holds_per_subject))
            .append(" holds in force")));
  }
  auto ever = u_.holds.EverOnSubject(std::string(subject_id));
  if (!ever) return Fail(ever.error());
  if (*ever >= u_.limits.max_holds_ever_per_subject) {
    return Fail(Status::ResourceExhausted(
        std::string("a subject may have had at most ")
            .append(std::to_string(u_.limits.max_holds_ever_per_subject))
            .append(" holds over its life")));
  }
  HoldView hold;
  hold.subject_id = std::string(subject_id);
  return u_.holds.Add(std::move(lock), officer, std::move(hold), reason,
                      ends_at, nullptr);
}

Status Records::ReleaseHold(const PrincipalInfo& officer,
                            std::string_view hold_id) {
  WriteLock lock = u_.store.Lock();
  // The release and the covered records' new deadlines are one write:
  // postponed erasures whose legal date has passed become due at once, in
  // the index the sweeper reads, and no crash can leave them at the hold's
  // old end.
  leveldb::WriteBatch batch;
  std::vector<Event> release_events;
  HoldView hold;
  auto released =
      u_.holds.Release(lock, officer, hold_id, batch, release_events, &hold);
  if (!released) return released.error();
  const int64_t now = ToMicros(u_.clock.Now());
  // Records an erasure in force erased here: in the ledger first, as a
  // sweep's (storage/erasure.h).
  std::vector<std::pair<uint64_t, int64_t>> erased;
  for (uint64_t id : *released) {
    auto record = u_.record_store.Read(id);
    Status rescheduled = record.has_value() ? Status::Ok() : record.error();
    if (record) {
      leveldb::WriteBatch one;
      // What is in force stays in force: the transitions due under the
      // deadline the record has (the hold still in force for this) are
      // written down first, with their events, as ReapplyPolicies does. A
      // policy lengthened since must not bring back a block or an erasure
      // that was due (helper-124). A record all of whose subjects were
      // shredded is left to CompleteShreds.
      int64_t erased_by_shred = 0;
      auto steps = u_.views.CatchUp(*record, now, one, &erased_by_shred);
      if (!steps) {
        rescheduled = steps.error();
      } else if (erased_by_shred == 0) {
        // Scheduled with the hold as released: the batch is not written
        // yet.
        rescheduled = u_.record_store.Put(lock, one, *record, &hold);
        if (rescheduled.ok()) {
          batch.Append(one);
          for (Event& e : events::TransitionEvents(*record, *steps)) {
            release_events.push_back(std::move(e));
          }
          if (record->state == RecordState::kErased) {
            erased.emplace_back(record->id, record->erased_at_micros);
          }
        }
      }
    }
    // A record that cannot be read or rescheduled must not keep the hold
    // in force for the others: it is left as it is, and every sweep meets
    // and reports it (SweepReport::skipped). Store errors still fail.
    if (!rescheduled.ok() && rescheduled.code() != StatusCode::kNotFound &&
        rescheduled.code() != StatusCode::kDataLoss &&
        rescheduled.code() != StatusCode::kInvalidArgument &&
        rescheduled.code() != StatusCode::kResourceExhausted) {
      return rescheduled;
    }
  }
  CUSTOS_RETURN_IF_ERROR(u_.erasure.Ledger(erased));
  return u_.store.Commit(std::move(lock), batch, release_events,
                         "releasing hold");
}

}  // namespace custos
