#include "storage/shredder.h"

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "crypto/keyed_hash.h"
#include "storage/codec.h"
#include "storage/events.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"

namespace custos {

Result<std::string> Shredder::KeyWitness(std::string_view subject_id) {
  auto wrapped = u_.keystore.WrappedBytes(subject_id);
  if (!wrapped) return Fail(wrapped.error());
  return *wrapped ? Erasure::WitnessKey(**wrapped) : std::string();
}

Status Shredder::DestroyKey(const codec::StoredSubject& subject,
                            std::string_view by, std::string_view witness) {
  auto index = Subjects::BlindIndexOf(subject);
  if (!index) return index.error();
  // The intent goes with the key (see Shred): the records-side write
  // before this one is not synced.
  return u_.keystore.DestroyKey(
      subject.id, Keystore::LedgerShredHash(ledger_key_, *index, subject.id),
      FromMicros(subject.shredded_at_micros), by, witness);
}

Result<std::vector<HoldView>> Shredder::HoldsCovering(
    std::string_view subject_id, int64_t at) const {
  const std::string subject(subject_id);
  // The subject's own holds and the record holds on its records, through
  // "ho:s:" ...
  auto holds = u_.holds.OnSubject(subject, at);
  if (!holds) return holds;
  // ... and the subject holds of every other subject of those records: a
  // hold on B covers the record B shares with A, whose part of A the shred
  // would destroy. Looked for from the held subjects, not from A's
  // records: with no other subject held (no hold at all: no seek) the
  // check reads nothing that grows with A's records, and otherwise it
  // reads the held subjects' record lists (holds are few: legal
  // proceedings).
  auto held = u_.holds.SubjectHoldsInForce(at);
  if (!held) return held;
  std::map<std::string, bool> shares;  // Per held subject, asked once.
  for (HoldView& h : *held) {
    // (An empty id: its subject was shredded and unlinked.)
    if (!h.subject_id || h.subject_id->empty() || *h.subject_id == subject) {
      continue;
    }
    const bool seen =
        std::any_of(holds->begin(), holds->end(),
                    [&](const HoldView& known) { return known.id == h.id; });
    if (seen) continue;
    auto known = shares.find(*h.subject_id);
    if (known == shares.end()) {
      auto shared = ShareARecord(subject, *h.subject_id);
      if (!shared) return Fail(shared.error());
      known = shares.emplace(*h.subject_id, *shared).first;
    }
    if (known->second) holds->push_back(std::move(h));
  }
  return holds;
}

Result<bool> Shredder::ShareARecord(const std::string& subject,
                                    const std::string& other) const {
  std::vector<uint64_t> ids;
  const std::string prefix = keys::SubjectRecordsPrefix(other);
  CUSTOS_RETURN_IF_ERROR(
      u_.store.Scan(prefix, {}, [&](std::string_view key, std::string_view) {
        ids.push_back(keys::NumberAfter(key, prefix));
        return true;
      }));
  for (uint64_t id : ids) {
    auto entry = u_.store.Get(keys::SubjectRecord(subject, id));
    if (!entry) return Fail(entry.error());
    if (entry->has_value()) return true;
  }
  return false;
}

Status Shredder::Shred(const PrincipalInfo& admin,
                       std::string_view subject_id) {
  WriteLock lock = u_.store.Lock();
  auto subject = u_.subjects.Read(subject_id);
  if (!subject) return subject.error();
  if (subject->shredded) {
    // Reported done only once the key is gone; a shred whose key
    // destruction failed is finished by asking again: only the key's
    // destruction is repeated (with its intent, at the shred's time), as
    // Recover does. Its records side is written (applied; made durable
    // below), and writing it again would record a second shred event and
    // move the shred's time. Holds are not looked at again, as Recover does
    // not: the subject is already unlinked from its identifier.
    auto has = u_.keystore.HasKey(subject_id);
    if (!has) return has.error();
    if (!*has) return Status::NotFound("subject not found");
    // The first attempt's records side made durable first: with the key
    // gone, a power loss must not take it (Open would write the event
    // again, at the shred's time but with another link). The first
    // attempt's failure need not have been sticky (a failed append to the
    // keystore's log, unlike a failed sync, is not).
    CUSTOS_RETURN_IF_ERROR(u_.store.SyncApplied(lock));
    auto witness = KeyWitness(subject_id);
    if (!witness) return witness.error();
    return DestroyKey(*subject, admin.id, *witness);
  }
  auto index = Subjects::BlindIndexOf(*subject);
  if (!index) return index.error();
  const Timestamp now = u_.clock.Now();
  auto holds = HoldsCovering(subject_id, ToMicros(now));
  if (!holds) return holds.error();
  if (!holds->empty()) {
    return Status::FailedPrecondition(
        "shredding refused: the subject is under " + Holds::Describe(*holds));
  }

  subject->shredded = true;
  subject->shredded_at_micros = ToMicros(now);
  leveldb::WriteBatch batch;
  // Witnesses of the sealed identifier and the wrapped key, so
  // VerifyErasure can look for them; both are queued for compaction.
  Erasure::AddWitness(batch, subject->sealed_identifier);
  // Read once: its witness goes into this batch and into the keystore's
  // intent below.
  auto witness = KeyWitness(subject_id);
  if (!witness) return witness.error();
  Erasure::AddWitnessKey(batch, *witness);
  subject->sealed_identifier.clear();
  batch.Put(keys::Subject(subject_id), codec::EncodeSubject(*subject));
  batch.Delete(keys::BlindIndex(AsStringView(*index)));
  batch.Put(keys::ShredQueue(subject_id), "");
  Erasure::Queue(batch, keys::Subject(subject_id), ToMicros(now));
  Erasure::QueueKeystore(batch, subject_id, ToMicros(now));
  // The shred event is sealed under the subject's key like the rest of its
  // history, and becomes unreadable with it.
  // Not waited for: the one synchronous write of a shred is the keystore's
  // below, which records the intent with the key's destruction, so that
  // Recover can write this batch's effect again should a power loss lose
  // it (docs/storage.md, "Shredding"). A crash leaves this batch in the
  // log (a process's death loses no write LevelDB flushed).
  auto ticket =
      u_.store.Apply(lock, batch,
                     {events::SubjectEvent(admin, EventAction::kShred,
                                           std::string(subject_id), now)},
                     "recording shred intent");
  if (!ticket) return ticket.error();
  u_.subjects.ForgetIndex(*index);  // After the index entry is gone.
  // After the identifier was cleared: should the key's destruction fail
  // below, a read must not open a cached copy with the surviving key.
  u_.subjects.ForgetIdentifier(std::string(subject_id));
  // Synchronous: the key, the ledger entry and the keystore's intent.
  return DestroyKey(*subject, admin.id, *witness);
}

Status Shredder::RecoverKeystoreIntents() {
  // Under the write lock from the read of the intents to their drop: a
  // shred cannot put an intent in between (its records side not synced)
  // that the drop would delete.
  WriteLock lock = u_.store.Lock();
  auto intents = u_.keystore.ShredIntents();
  if (!intents) return intents.error();
  if (intents->empty()) return Status::Ok();
  // In the order the shreds happened, so that lost shred events are
  // written again in their order: by shred time (shreds hold the write
  // lock through their synchronous keystore write, so a clock that moves
  // forward gives each its own time), equal times by subject id.
  std::sort(intents->begin(), intents->end(), [](const auto& a, const auto& b) {
    return std::tie(a.second.at_micros, a.first) <
           std::tie(b.second.at_micros, b.first);
  });
  leveldb::WriteBatch batch;
  std::vector<Event> events;
  std::vector<std::string> subject_ids;
  std::vector<std::pair<crypto::Digest, std::string>> rewritten;
  const int64_t now = ToMicros(u_.clock.Now());
  for (const auto& [subject_id, intent] : *intents) {
    subject_ids.push_back(subject_id);
    // Queued again: the intent's own bytes leave the keystore's files with
    // the key's (PurgeKeys), even if the shred's compaction already ran.
    Erasure::QueueKeystore(batch, subject_id, now);
    auto subject = u_.subjects.Read(subject_id);
    if (!subject && subject.error().code() == StatusCode::kNotFound) {
      // Finished and unlinked by CompleteShreds, or never durable at all
      // (then neither was anything written with its key).
      continue;
    }
    if (!subject) return subject.error();
    if (subject->shredded) continue;  // The records side is there.
    // The records side was lost (a power loss after the keystore's write):
    // written again as Shred wrote it. Everything written to the records
    // database after it was lost with it (one log, written in order), so
    // the blind index entry is still this subject's; checked all the same.
    auto index = Subjects::BlindIndexOf(*subject);
    if (!index) return index.error();
    Erasure::AddWitness(batch, subject->sealed_identifier);
    Erasure::AddWitnessKey(batch, intent.witness);
    subject->sealed_identifier.clear();
    subject->shredded = true;
    subject->shredded_at_micros = intent.at_micros;
    batch.Put(keys::Subject(subject_id), codec::EncodeSubject(*subject));
    const std::string index_key = keys::BlindIndex(AsStringView(*index));
    auto indexed = u_.store.Get(index_key);
    if (!indexed) return indexed.error();
    if (*indexed == subject_id) batch.Delete(index_key);
    batch.Put(keys::ShredQueue(subject_id), "");
    Erasure::Queue(batch, keys::Subject(subject_id), intent.at_micros);
    // The shred event again, by whom the intent names, at the shred's
    // time; the key is gone, so it has no sealed part (what every reader
    // of the original event saw after the shred anyway).
    PrincipalInfo by;
    by.id = intent.by;
    events.push_back(events::SubjectEvent(by, EventAction::kShred, subject_id,
                                          FromMicros(intent.at_micros)));
    rewritten.emplace_back(*index, subject_id);
  }
  // Synced: this write and, the log being written in order, every shred's
  // records-side write before it are durable once it returns ...
  auto ticket = u_.store.Apply(lock, batch, events, "recovering shred",
                               /*force_sync=*/true);
  if (!ticket) return ticket.error();
  for (const auto& [index, subject_id] : rewritten) {  // As Shred does.
    u_.subjects.ForgetIndex(index);
    u_.subjects.ForgetIdentifier(subject_id);
  }
  CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(*ticket));
  // ... so the intents can go (not synced: one that survives a crash is
  // dropped again by the next Recover).
  return u_.keystore.DropShredIntents(subject_ids);
}

Status Shredder::Recover() {
  std::vector<std::string> intents;
  CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
      keys::kShredQueuePrefix, {}, [&](std::string_view key, std::string_view) {
        intents.emplace_back(key.substr(keys::kShredQueuePrefix.size()));
        return true;
      }));
  // Interrupted key destructions first: each writes a keystore intent,
  // which RecoverKeystoreIntents below then drops, so none outlives Open.
  for (const std::string& subject_id : intents) {
    // Under the write lock, as Shred holds it from its records side to the
    // key's destruction: a shred under way is either done (no key left) or
    // not begun when this looks, and its intent is never overwritten by
    // this one's.
    WriteLock lock = u_.store.Lock();
    auto has = u_.keystore.HasKey(subject_id);
    if (!has) return has.error();
    // The retiring key of a re-key too: a restore of a backup taken during
    // one may have brought it back.
    auto retiring = u_.keystore.RetiringWrappedBytes(subject_id);
    if (!retiring) return retiring.error();
    if (!*has && !*retiring) continue;  // Destroyed; compaction is queued.
    auto subject = u_.subjects.Read(subject_id);
    if (!subject) return subject.error();
    // As a retried shred does: the records side durable before the key
    // goes (in Complete it may be a failed shred's, applied, not synced).
    CUSTOS_RETURN_IF_ERROR(u_.store.SyncApplied(lock));
    auto witness = KeyWitness(subject_id);
    if (!witness) return witness.error();
    CUSTOS_RETURN_IF_ERROR(DestroyKey(*subject, "recovery", *witness));
    // Queued again (the intent queued it too): the compaction Open runs
    // next removes the key's bytes.
    leveldb::WriteBatch batch;
    Erasure::QueueKeystore(batch, subject_id, ToMicros(u_.clock.Now()));
    CUSTOS_RETURN_IF_ERROR(
        u_.store.Commit(std::move(lock), batch, {}, "recovering shred"));
  }
  CUSTOS_RETURN_IF_ERROR(RecoverKeystoreIntents());
  return Status::Ok();
}

Status Shredder::Unlink(leveldb::WriteBatch& batch,
                        const std::string& subject_id) {
  batch.Delete(keys::Subject(subject_id));
  // The subject's hold index entries (of holds that ended or of record
  // holds), and the subject id inside its subject holds' values, released
  // or not: the hold, its reason and who set and released it stay.
  const std::string holds_prefix = keys::SubjectHoldsPrefix(subject_id);
  CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
      holds_prefix, {}, [&](std::string_view key, std::string_view) {
        batch.Delete(ToSlice(key));
        return true;
      }));
  // TODO(perf): a scan of every hold; holds are few (legal proceedings).
  Status decoded;
  CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
      keys::kHoldPrefix, {}, [&](std::string_view key, std::string_view value) {
        auto hold = codec::DecodeHold(value);
        if (!hold) {
          decoded = hold.error();
          return false;
        }
        if (hold->subject_id == subject_id) {
          hold->subject_id = "";
          batch.Put(ToSlice(key), codec::EncodeHold(*hold));
        }
        return true;
      }));
  CUSTOS_RETURN_IF_ERROR(decoded);
  // Every key and value that named the subject, or its blind index, was
  // deleted or rewritten; their old versions and the deletions themselves
  // hold those bytes until the whole database is compacted.
  Erasure::QueueEverything(batch, ToMicros(u_.clock.Now()));
  return Status::Ok();
}

Result<size_t> Shredder::Complete(size_t budget,
                                  const WorkProgressFn& progress) {
  // A shred whose key destruction failed (not a crash: Open recovers
  // those) is finished first: the subject entry goes below, and with it
  // what Recover and a repeated ShredSubject need.
  CUSTOS_RETURN_IF_ERROR(Recover());
  size_t rewritten = 0;
  WriteLock lock = u_.store.Lock();
  ReportProgress(progress, "records", "records", 0);
  Store::Ticket last;
  std::vector<std::pair<std::string, std::string>> queue;
  CUSTOS_RETURN_IF_ERROR(
      u_.store.Scan(keys::kShredQueuePrefix, {},
                    [&](std::string_view key, std::string_view value) {
                      queue.emplace_back(key, value);
                      return true;
                    }));
  for (const auto& [queue_key, cursor] : queue) {
    if (rewritten >= budget) break;
    const std::string subject_id =
        queue_key.substr(keys::kShredQueuePrefix.size());
    auto subject = u_.subjects.Read(subject_id);
    if (!subject) return Fail(subject.error());

    // The queue entry's value is the last record id finished (empty at
    // first): resuming after it skips the deleted index entries a plain
    // seek would have to step over again on every call.
    const std::string prefix = keys::SubjectRecordsPrefix(subject_id);
    std::string start = prefix;
    if (cursor.size() == 8)
      AppendBigEndian64(start, ReadBigEndian64(cursor) + 1);
    std::vector<uint64_t> ids;
    bool finished = true;
    CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
        prefix, start, [&](std::string_view key, std::string_view) {
          if (rewritten + ids.size() == budget) {
            finished = false;
            return false;
          }
          ids.push_back(keys::NumberAfter(key, prefix));
          return true;
        }));
    for (uint64_t id : ids) {
      leveldb::WriteBatch batch;
      batch.Delete(keys::SubjectRecord(subject_id, id));
      std::string next_cursor;
      AppendBigEndian64(next_cursor, id);
      batch.Put(queue_key, next_cursor);
      std::vector<Event> transitions;
      auto record = u_.record_store.Read(id);
      if (record) {
        const bool was_erased = record->state == RecordState::kErased;
        // What the record is now, as every reader has seen it: the
        // transitions in force are written down (with their events, as a
        // change writes them), and the shreds' erasure is dated at the last
        // of them, before any part goes.
        int64_t erased_by_shred = 0;
        auto caught_up = u_.views.CatchUp(*record, ToMicros(u_.clock.Now()),
                                          batch, &erased_by_shred);
        if (!caught_up) return Fail(caught_up.error());
        // (Not when the shred erases it: an erased record needs no policy,
        // and the transitions in force before the shred are written down.)
        if (erased_by_shred == 0 && record->state != RecordState::kErased &&
            !RecordStore::ScheduleFitsState(*record)) {
          // A transition in force whose next deadline needs a policy that
          // failed its MAC or is missing (docs/storage.md, "Policies"): the
          // parts go from the record as stored, its state and deadline
          // kept; the transitions are written down once the policy is set
          // again (a sweep). A shred never waits on a policy.
          auto as_stored = u_.record_store.Read(id);
          if (!as_stored) return Fail(as_stored.error());
          *record = std::move(*as_stored);
          caught_up->clear();
        }
        auto& parts = record->parts;
        for (const auto& p : parts) {
          if (p.subject_id == subject_id) Erasure::AddWitness(batch, p.sealed);
        }
        std::erase_if(
            parts, [&](const auto& p) { return p.subject_id == subject_id; });
        // The subject id goes too (it links the person's records): from the
        // record's subjects and its flags and contests, which keep who
        // flagged or contested and when.
        std::erase(record->subject_ids, subject_id);
        for (auto& f : record->flags) {
          if (f.subject_id != subject_id) continue;
          Erasure::AddWitness(batch, f.sealed_note);
          f.sealed_note.clear();
          f.subject_id.clear();
        }
        for (auto& c : record->contests) {
          if (c.subject_id != subject_id) continue;
          Erasure::AddWitness(batch, c.sealed_statement);
          c.sealed_statement.clear();
          c.subject_id.clear();
        }
        // Where its ciphertexts were stored ("r:" or its bucket's "pb:").
        Erasure::Queue(batch, RecordStore::SealedKey(*record),
                       ToMicros(u_.clock.Now()));
        if (erased_by_shred != 0 && record->state != RecordState::kErased) {
          record->state = RecordState::kErased;
          record->erased_at_micros = erased_by_shred;
        }
        CUSTOS_RETURN_IF_ERROR(u_.record_store.Put(lock, batch, *record));
        // Erased here (by a deadline caught up, or by the shred itself):
        // in the ledger, as a sweep's erasures are, before it is written.
        if (!was_erased && record->state == RecordState::kErased) {
          CUSTOS_RETURN_IF_ERROR(
              u_.erasure.Ledger({{id, record->erased_at_micros}}));
        }
        // Without the shredded subject's id: nothing to seal under it.
        transitions = events::TransitionEvents(*record, *caught_up);
      } else if (record.error().code() != StatusCode::kNotFound) {
        return Fail(record.error());
      }
      auto ticket = u_.store.Apply(lock, batch, transitions, "finishing shred");
      if (!ticket) return Fail(ticket.error());
      last = *ticket;
      ReportProgress(progress, "records", "records", ++rewritten);
    }
    if (finished) {
      // Unlink the subject from its (now unreadable) history events, in
      // steps, then with the last step drop what is left naming it (Unlink)
      // and retire the queue entry.
      while (true) {
        leveldb::WriteBatch batch;
        // The subject's events about no record are due by their age alone
        // once unindexed (Sweeper::SubjectEventDue): pruning is told when
        // the oldest may be, in the batch that unindexes it.
        int64_t about_no_record_from = RecordStore::kNoErasure;
        auto dropped = u_.store.history().DropSubjectIndex(
            batch, subject_id, 1000, &about_no_record_from);
        if (!dropped) return Fail(dropped.error());
        if (about_no_record_from != RecordStore::kNoErasure) {
          u_.record_store.HistoryDueFrom(lock, batch, about_no_record_from);
        }
        if (*dropped == 0) {
          CUSTOS_RETURN_IF_ERROR(Unlink(batch, subject_id));
          // Unlink rewrites subject holds: the kept spans go with them.
          u_.holds.Forget(lock);
          batch.Delete(queue_key);
        }
        auto ticket = u_.store.Apply(lock, batch, {}, "finishing shred");
        if (!ticket) return Fail(ticket.error());
        last = *ticket;
        if (*dropped == 0) break;
      }
    }
  }
  lock.Unlock();
  ReportProgress(progress, "records", "records", rewritten, rewritten,
                 /*last=*/true);
  CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(last));
  // Compacts what was erased, and the destroyed keys of earlier shreds.
  ReportProgress(progress, "compacting", "", 0);
  CUSTOS_RETURN_IF_ERROR(u_.erasure.CompactQueued());
  return rewritten;
}

}  // namespace custos
