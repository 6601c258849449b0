#include "storage/record_view.h"

#include <algorithm>

#include "storage/events.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "storage/sealing.h"

namespace custos {

Result<RecordViews::Resolved> RecordViews::Resolve(const PrincipalInfo& caller,
                                                   uint64_t id,
                                                   bool purpose_given) const {
  auto record = records_.Read(id);
  if (!record) {
    // A record that does not decode is DataLoss only to those who could
    // see it (its owner and grantees, officers, admins): to anyone else
    // it is not found, as any record they may not see, so that its
    // corruption does not tell them it exists.
    if (record.error().code() == StatusCode::kDataLoss &&
        !caller.HasRole(Role::kAdmin) && !caller.HasRole(Role::kOfficer)) {
      auto entry = store_.Get(keys::Acl(caller.id, id));
      if (!entry) return Fail(entry.error());
      if (!*entry) return Fail(Status::NotFound("record not found"));
    }
    return Fail(record.error());
  }
  return Resolve(caller, std::move(*record), purpose_given);
}

Result<std::vector<PlannedTransition>> RecordViews::CatchUp(
    codec::StoredRecord& r, int64_t at, leveldb::WriteBatch& batch,
    int64_t* erased_by_shred, const HoldSpans* spans) const {
  auto shredded_at = ErasedByShred(r, at);
  if (!shredded_at) return Fail(shredded_at.error());
  *erased_by_shred = *shredded_at;
  // Deadlines take effect at their instant, whether a sweep has written
  // them down or not; none after the record was erased.
  return records_.CatchUp(r, *shredded_at != 0 ? *shredded_at : at, batch,
                          nullptr, nullptr, spans);
}

Result<int64_t> RecordViews::ErasedByShred(const codec::StoredRecord& r,
                                           int64_t at) const {
  // Readable until the last of its parts' subjects was shredded, the record
  // is erased at that instant, whichever subject was shredded first and
  // whatever CompleteShreds has dropped since (it drops only parts that
  // could not be read any more, and erases the record when it finds them
  // all so).
  int64_t shredded_at = 0;
  for (const auto& part : r.parts) {
    auto key = subjects_.Key(part.subject_id);
    if (!key) return Fail(key.error());
    if (*key) return 0;
    auto subject = subjects_.Read(part.subject_id);
    if (!subject) return Fail(subject.error());
    shredded_at = std::max(shredded_at, subject->shredded_at_micros);
  }
  return shredded_at > at ? 0 : shredded_at;
}

namespace {

// The effective state of a record CatchUp brought to an instant, given the
// instant of the shred that erased it (0: none).
RecordState StateAfterCatchUp(const codec::StoredRecord& r,
                              int64_t erased_by_shred) {
  // CompleteShreds() will write a shred's erasure down.
  if (r.state != RecordState::kErased && erased_by_shred != 0) {
    return RecordState::kErased;
  }
  return r.state;
}

}  // namespace

Result<RecordStateCounts> RecordViews::CountByState(Timestamp at) const {
  RecordStateCounts counts;
  counts.as_of = at;
  const int64_t at_micros = ToMicros(at);
  Status failure;
  // TODO(perf): one pass over every record, each caught up (its subjects'
  // keys looked up, holds read for an erasure due): for the scheduled
  // maintenance only, never on a request's or a scrape's path.
  CUSTOS_RETURN_IF_ERROR(store_.Scan(
      keys::kRecordPrefix, "",
      [&](std::string_view /*key*/, std::string_view value) {
        auto record = codec::DecodeRecord(value);
        if (!record) {
          if (record.error().code() != StatusCode::kDataLoss) {
            failure = record.error();
            return false;
          }
          ++counts.unreadable;
          return true;
        }
        leveldb::WriteBatch scratch;
        int64_t erased_by_shred = 0;
        auto caught_up = CatchUp(*record, at_micros, scratch, &erased_by_shred);
        if (!caught_up) {
          if (caught_up.error().code() != StatusCode::kDataLoss) {
            failure = caught_up.error();
            return false;
          }
          ++counts.unreadable;
          return true;
        }
        switch (StateAfterCatchUp(*record, erased_by_shred)) {
          case RecordState::kActive:
            ++counts.active;
            break;
          case RecordState::kClosed:
            ++counts.closed;
            break;
          case RecordState::kBlocked:
            ++counts.blocked;
            break;
          case RecordState::kErased:
            ++counts.erased;
            break;
        }
        return true;
      }));
  CUSTOS_RETURN_IF_ERROR(failure);
  return counts;
}

Result<RecordViews::Resolved> RecordViews::Resolve(const PrincipalInfo& caller,
                                                   codec::StoredRecord record,
                                                   bool purpose_given) const {
  Resolved r;
  r.record = std::move(record);
  const auto& grants = r.record.grants;
  AccessRequest request{.caller = caller,
                        .is_owner = r.record.owner == caller.id,
                        .is_grantee = std::find(grants.begin(), grants.end(),
                                                caller.id) != grants.end(),
                        .state = r.state,
                        .purpose_given = purpose_given};
  // A caller who would see the record in no state is answered before its
  // subjects' keys are looked up (CatchUp): an unreadable key must not be
  // DataLoss to those who may not know the record exists, nor an unwrap
  // make their answer slower than a missing record's.
  bool visible_in_some_state = false;
  for (RecordState state : {RecordState::kActive, RecordState::kClosed,
                            RecordState::kBlocked, RecordState::kErased}) {
    request.state = state;
    visible_in_some_state =
        visible_in_some_state || ViewFor(request) != View::kNone;
  }
  if (!visible_in_some_state) {
    return Fail(Status::NotFound("record not found"));
  }
  leveldb::WriteBatch scratch;
  int64_t erased_by_shred = 0;
  auto caught_up =
      CatchUp(r.record, ToMicros(clock_.Now()), scratch, &erased_by_shred);
  if (!caught_up) return Fail(caught_up.error());
  r.caught_up = std::move(*caught_up);
  r.state = StateAfterCatchUp(r.record, erased_by_shred);
  r.erased_at_micros =
      r.state != r.record.state ? erased_by_shred : r.record.erased_at_micros;
  request.state = r.state;
  r.view = ViewFor(request);
  r.sees_subject_ids = caller.HasRole(Role::kAdmin) ||
                       caller.HasRole(Role::kOfficer) ||
                       caller.HasRole(Role::kAuditor);
  if (r.view == View::kNone) return Fail(Status::NotFound("record not found"));
  return r;
}

Result<RecordView> RecordViews::Build(
    Resolved resolved, const std::optional<Purpose>& purpose) const {
  codec::StoredRecord& r = resolved.record;
  RecordView v;
  v.id = r.id;
  v.kind = std::move(r.kind);
  v.owner = std::move(r.owner);
  v.grants = std::move(r.grants);
  v.attributes = std::move(r.attributes);
  v.state = resolved.state;
  v.sensitive = r.sensitive;
  v.version = r.version;
  v.created_at = FromMicros(r.created_at_micros);
  v.updated_at = FromMicros(r.updated_at_micros);
  v.closed_at = codec::OptionalTime(r.closed_at_micros);
  v.blocked_at = codec::OptionalTime(r.blocked_at_micros);
  v.erased_at = codec::OptionalTime(resolved.erased_at_micros);
  // Subject ids are pseudonyms that link a person's records: shown with
  // the personal data, or to the roles that act on subjects (shredding,
  // holds, reports), never in an attributes-only view of other callers.
  if (resolved.sees_subject_ids) v.subject_ids = std::move(r.subject_ids);
  for (const auto& f : r.flags) {
    v.flags.push_back({f.by, FromMicros(f.at_micros),
                       resolved.sees_subject_ids ? f.subject_id : "", ""});
  }
  for (const auto& c : r.contests) {
    v.contests.push_back({c.by,
                          FromMicros(c.at_micros),
                          resolved.sees_subject_ids ? c.subject_id : "",
                          "",
                          {}});
  }
  if (resolved.view != View::kFull) return v;
  if (r.sensitive && !purpose) {
    v.purpose_required = true;
    return v;
  }
  v.personal_included = true;
  if (!resolved.sees_subject_ids) v.subject_ids = std::move(r.subject_ids);
  for (size_t i = 0; i < r.flags.size(); ++i) {
    v.flags[i].subject_id = r.flags[i].subject_id;
  }
  for (size_t i = 0; i < r.contests.size(); ++i) {
    v.contests[i].subject_id = r.contests[i].subject_id;
  }

  // Parts of shredded subjects are skipped: their key is gone.
  for (const auto& part : r.parts) {
    auto key = subjects_.Key(part.subject_id);
    if (!key) return Fail(key.error());
    if (!*key) continue;
    auto fields = subjects_.OpenFields(
        part.subject_id, **key, r.erase_bucket, part.sealed,
        sealing::PartAd(r.id, part.subject_id, part.version),
        "a personal part");
    if (!fields) return Fail(fields.error());
    auto identifier = subjects_.CachedIdentifier(part.subject_id, **key);
    if (!identifier) return Fail(identifier.error());
    v.parts.push_back({part.subject_id, std::move(*identifier), part.version,
                       std::move(*fields)});
  }
  for (size_t i = 0; i < r.flags.size(); ++i) {
    const auto& f = r.flags[i];
    auto key = subjects_.Key(f.subject_id);
    if (!key) return Fail(key.error());
    if (!*key || f.sealed_note.empty()) continue;
    auto fields = subjects_.OpenFields(
        f.subject_id, **key, r.erase_bucket, f.sealed_note,
        sealing::NoteAd("flag", r.id, f.subject_id, f.at_micros),
        "a flag note");
    if (!fields) return Fail(fields.error());
    if (!fields->empty()) v.flags[i].note = std::move(fields->front().value);
  }
  for (size_t i = 0; i < r.contests.size(); ++i) {
    const auto& c = r.contests[i];
    auto key = subjects_.Key(c.subject_id);
    if (!key) return Fail(key.error());
    if (!*key || c.sealed_statement.empty()) continue;
    auto fields = subjects_.OpenFields(
        c.subject_id, **key, r.erase_bucket, c.sealed_statement,
        sealing::NoteAd("contest", r.id, c.subject_id, c.at_micros),
        "a contest");
    if (!fields) return Fail(fields.error());
    sealing::SplitContest(std::move(*fields), v.contests[i].statement,
                          v.contests[i].corrected);
  }
  return v;
}

template <typename Once>
auto RecordViews::Retried(const Once& once) -> decltype(once(nullptr)) {
  for (int attempt = 1;; ++attempt) {
    bool changed = false;
    auto result = once(&changed);
    if (result || !changed) return result;
    if (attempt == kReadAttempts) {
      return Fail(Status::Unavailable(
          "the records changed while being read; try again"));
    }
  }
}

Result<RecordView> RecordViews::Get(const PrincipalInfo& caller, uint64_t id,
                                    const std::optional<Purpose>& purpose,
                                    const BeforeDisclosure<RecordView>& check) {
  return Retried([&](bool* changed) {
    return GetOnce(caller, id, purpose, check, changed);
  });
}

Result<std::vector<Result<RecordView>>> RecordViews::GetMany(
    const PrincipalInfo& caller, const std::vector<uint64_t>& ids,
    const std::optional<Purpose>& purpose,
    const BeforeDisclosure<std::vector<Result<RecordView>>>& check) {
  return Retried([&](bool* changed) {
    return GetManyOnce(caller, ids, purpose, check, changed);
  });
}

Result<ListPage> RecordViews::List(const PrincipalInfo& caller,
                                   const ListQuery& q,
                                   const BeforeDisclosure<ListPage>& check) {
  return Retried(
      [&](bool* changed) { return ListOnce(caller, q, check, changed); });
}

Result<RecordView> RecordViews::GetOnce(
    const PrincipalInfo& caller, uint64_t id,
    const std::optional<Purpose>& purpose,
    const BeforeDisclosure<RecordView>& check, bool* changed) {
  CUSTOS_RETURN_IF_ERROR(CheckPurpose(purpose, limits_));
  const uint64_t generation = store_.Generation();
  auto resolved = Resolve(caller, id, purpose.has_value());
  if (!resolved) return Fail(resolved.error());
  auto view = Build(std::move(*resolved), purpose);
  if (!view) return view;
  if (check) CUSTOS_RETURN_IF_ERROR(check(*view));
  CUSTOS_RETURN_IF_ERROR(
      RecordReads(caller, {&*view}, purpose, generation, changed));
  return view;
}

Result<std::vector<Result<RecordView>>> RecordViews::GetManyOnce(
    const PrincipalInfo& caller, const std::vector<uint64_t>& ids,
    const std::optional<Purpose>& purpose,
    const BeforeDisclosure<std::vector<Result<RecordView>>>& check,
    bool* changed) {
  CUSTOS_RETURN_IF_ERROR(CheckBatchSize(ids.size(), limits_));
  CUSTOS_RETURN_IF_ERROR(CheckPurpose(purpose, limits_));
  const uint64_t generation = store_.Generation();
  std::vector<Result<RecordView>> answers;
  answers.reserve(ids.size());
  // What one item may answer on its own; anything else (an I/O error)
  // fails the call, as it would fail Get.
  auto per_item = [](const Status& error) {
    return error.code() == StatusCode::kNotFound ||
           error.code() == StatusCode::kDataLoss;
  };
  for (uint64_t id : ids) {
    auto resolved = Resolve(caller, id, purpose.has_value());
    if (!resolved) {
      if (!per_item(resolved.error())) return Fail(resolved.error());
      answers.push_back(Fail(resolved.error()));
      continue;
    }
    auto view = Build(std::move(*resolved), purpose);
    if (!view && !per_item(view.error())) return Fail(view.error());
    answers.push_back(std::move(view));
  }
  std::vector<const RecordView*> views;
  for (const Result<RecordView>& answer : answers) {
    if (answer) views.push_back(&*answer);
  }
  if (check) CUSTOS_RETURN_IF_ERROR(check(answers));
  CUSTOS_RETURN_IF_ERROR(
      RecordReads(caller, views, purpose, generation, changed));
  return answers;
}

Result<ListPage> RecordViews::ListOnce(const PrincipalInfo& caller,
                                       const ListQuery& q,
                                       const BeforeDisclosure<ListPage>& check,
                                       bool* changed) {
  CUSTOS_RETURN_IF_ERROR(CheckListQuery(q, limits_));
  if (q.after_id == UINT64_MAX) return ListPage{};

  // Officers and admins may see records beyond their grants, so they scan
  // every record; everyone else scans only their access index.
  const bool scan_all =
      caller.HasRole(Role::kAdmin) || caller.HasRole(Role::kOfficer);
  const std::string prefix =
      scan_all ? std::string(keys::kRecordPrefix) : keys::AclPrefix(caller.id);
  std::string start = prefix;
  AppendBigEndian64(start, q.after_id + 1);

  const uint64_t generation = store_.Generation();
  ListPage page;
  size_t examined = 0;
  Status failure;
  // A record that cannot be read is left out and counted, so one corrupt
  // record does not hide every record after it (from admins' listings
  // too). Any other error fails the call.
  auto skip = [&](const Status& error) {
    if (error.code() != StatusCode::kDataLoss) {
      failure = error;
      return false;
    }
    ++page.skipped;
    return true;
  };
  CUSTOS_RETURN_IF_ERROR(store_.Scan(
      prefix, start, [&](std::string_view key, std::string_view value) {
        const uint64_t id = keys::NumberAfter(key, prefix);
        if (examined == limits_.max_list_scan ||
            page.records.size() == q.limit) {
          page.next_after_id = id - 1;
          return false;
        }
        ++examined;
        Result<codec::StoredRecord> record =
            scan_all ? codec::DecodeRecord(value) : records_.Read(id);
        if (record && scan_all && record->sealed_pending) {
          // Its ciphertexts are in "pb:": read again with them, as of one
          // instant (the scan's value may be older than the entry now).
          record = records_.Read(id);
        }
        if (!record) {
          if (record.error().code() == StatusCode::kNotFound) return true;
          return skip(record.error());
        }
        if (q.kind && record->kind != *q.kind) return true;
        if (q.created_from &&
            record->created_at_micros < ToMicros(*q.created_from)) {
          return true;
        }
        if (q.created_to &&
            record->created_at_micros >= ToMicros(*q.created_to)) {
          return true;
        }
        const bool attributes_match =
            std::all_of(q.attribute_equals.begin(), q.attribute_equals.end(),
                        [&](const Attribute& want) {
                          return std::find(record->attributes.begin(),
                                           record->attributes.end(),
                                           want) != record->attributes.end();
                        });
        if (!attributes_match) return true;
        auto resolved =
            Resolve(caller, std::move(*record), q.purpose.has_value());
        if (!resolved) {
          if (resolved.error().code() == StatusCode::kNotFound) return true;
          return skip(resolved.error());
        }
        if (q.state && resolved->state != *q.state) return true;
        auto view = Build(std::move(*resolved), q.purpose);
        if (!view) return skip(view.error());
        page.records.push_back(std::move(*view));
        return true;
      }));
  CUSTOS_RETURN_IF_ERROR(failure);
  if (check) CUSTOS_RETURN_IF_ERROR(check(page));
  std::vector<const RecordView*> views;
  for (const RecordView& v : page.records) views.push_back(&v);
  CUSTOS_RETURN_IF_ERROR(
      RecordReads(caller, views, q.purpose, generation, changed));
  return page;
}

Status RecordViews::RecordReads(const PrincipalInfo& who,
                                const std::vector<const RecordView*>& views,
                                const std::optional<Purpose>& purpose,
                                uint64_t generation, bool* changed) {
  std::vector<Event> disclosures;
  const Timestamp now = clock_.Now();
  for (const RecordView* view : views) {
    if (view->personal_included) {
      disclosures.push_back(events::ReadEvent(who, *view, purpose, now));
    }
  }
  if (disclosures.empty()) return Status::Ok();
  WriteLock lock = store_.Lock();
  leveldb::WriteBatch batch;
  if (store_.Generation() == generation) {
    // No change of any kind was written since the views were read.
    return store_.Commit(std::move(lock), batch, disclosures,
                         "recording disclosure");
  }
  // The data was opened before the lock: a subject shredded since must not
  // have its data returned after its shred (nor a read missing from its
  // history). Checked under the lock the shred takes.
  for (const RecordView* view : views) {
    if (!view->personal_included) continue;
    for (const std::string& subject_id : view->subject_ids) {
      auto key = subjects_.Key(subject_id);
      if (!key) return key.error();
      if (!*key) {
        bool disclosed = false;
        for (const PartView& p : view->parts) {
          disclosed = disclosed || p.subject_id == subject_id;
        }
        for (const FlagView& f : view->flags) {
          disclosed =
              disclosed || (f.subject_id == subject_id && !f.note.empty());
        }
        for (const ContestView& c : view->contests) {
          disclosed =
              disclosed || (c.subject_id == subject_id && !c.statement.empty());
        }
        if (disclosed) {
          *changed = true;
          return Status::NotFound("record not found");
        }
      }
    }
  }
  // Likewise a change since the view was built (an erasure, a withdrawal,
  // a closure, a rectification): the data must be what the record holds
  // now, and visible to the caller now, or nothing is returned.
  for (const RecordView* view : views) {
    if (!view->personal_included) continue;
    auto now_stored = records_.Read(view->id);
    if (!now_stored) {
      if (now_stored.error().code() == StatusCode::kNotFound) {
        *changed = true;
        return Status::NotFound("record not found");
      }
      return now_stored.error();
    }
    if (now_stored->updated_at_micros == ToMicros(view->updated_at) &&
        now_stored->version == view->version &&
        now_stored->state == view->state) {
      continue;  // Unchanged: nothing to look at again.
    }
    auto again = Resolve(who, std::move(*now_stored), purpose.has_value());
    if (!again) return again.error();
    if (again->view != View::kFull || again->state != view->state ||
        again->record.version != view->version) {
      *changed = true;
      return Status::NotFound("record not found");
    }
  }
  return store_.Commit(std::move(lock), batch, disclosures,
                       "recording disclosure");
}

}  // namespace custos
