#include "storage/sweeper.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

#include "storage/events.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "storage/limits.h"

namespace custos {

using codec::StoredRecord;

Result<size_t> Sweeper::ReapplyPolicies(const WorkProgressFn& progress) {
  constexpr size_t kRecordsPerWrite = 1000;
  WriteLock lock = u_.store.Lock();
  // Open deadlines are exactly the records that are not ERASED; ACTIVE
  // records without close_after have none, so walk the records themselves.
  size_t updated = 0, in_batch = 0;
  leveldb::WriteBatch batch;
  std::vector<Event> transitions;
  // Records an erasure in force erased here: in the ledger first, as a
  // sweep's (storage/erasure.h).
  std::vector<std::pair<uint64_t, int64_t>> erased;
  Store::Ticket last;
  Status failure;
  const int64_t now = ToMicros(u_.clock.Now());
  uint64_t examined = 0;
  ReportProgress(progress, "records", "records", 0);
  // Under this lock throughout: no shred comes meanwhile.
  auto shreds_pending = ShredsPending();
  if (!shreds_pending) return Fail(shreds_pending.error());
  auto flush = [&]() -> Status {
    CUSTOS_RETURN_IF_ERROR(u_.erasure.Ledger(erased));
    auto ticket =
        u_.store.Apply(lock, batch, transitions, "re-applying policies");
    if (!ticket) return ticket.error();
    last = *ticket;
    batch.Clear();
    transitions.clear();
    erased.clear();
    in_batch = 0;
    return Status::Ok();
  };
  CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
      keys::kRecordPrefix, {}, [&](std::string_view, std::string_view value) {
        ReportProgress(progress, "records", "records", ++examined);
        auto record = codec::DecodeRecord(value);
        if (!record) failure = record.error();
        if (!failure.ok()) return false;
        if (record->state == RecordState::kErased) return true;
        auto left = LeftToShredCompletion(*record, now, *shreds_pending);
        if (!left) failure = left.error();
        if (!failure.ok()) return false;
        if (*left) return true;
        // A kind whose stored policy failed its MAC or is missing: its
        // records keep the deadlines they have (a sweep lists the kind);
        // recomputing them would need the policy.
        if (auto policy = u_.policies.For(record->kind); !policy || !*policy) {
          return true;
        }
        failure = u_.record_store.LoadSealed(*record);
        if (!failure.ok()) return false;
        const int64_t before = record->next_deadline_micros;
        const auto before_transition = record->next_transition;
        leveldb::WriteBatch one;
        // What is in force stays in force: the transitions due under the
        // policy the record was scheduled by are written down first (an
        // erasure in force must not be undone by a longer policy).
        auto steps = u_.record_store.CatchUp(*record, now, one);
        if (!steps) {
          failure = steps.error();
          return false;
        }
        failure = u_.record_store.Put(lock, one, *record);
        if (!failure.ok()) return false;
        if (steps->empty() && record->next_deadline_micros == before &&
            record->next_transition == before_transition) {
          return true;
        }
        for (Event& e : events::TransitionEvents(*record, *steps)) {
          transitions.push_back(std::move(e));
        }
        if (record->state == RecordState::kErased) {
          erased.emplace_back(record->id, record->erased_at_micros);
        }
        batch.Append(one);
        ++updated;
        if (++in_batch == kRecordsPerWrite) failure = flush();
        return failure.ok();
      }));
  CUSTOS_RETURN_IF_ERROR(failure);
  if (in_batch > 0) CUSTOS_RETURN_IF_ERROR(flush());
  lock.Unlock();
  ReportProgress(progress, "records", "records", examined, examined,
                 /*last=*/true);
  CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(last));
  return updated;
}

Status Sweeper::SweepRecord(const WriteLock& lock, const PrincipalInfo& admin,
                            const std::string& key,
                            const keys::DeadlineKey& entry,
                            const SweepOptions& options,
                            leveldb::WriteBatch& batch,
                            std::vector<Event>& sweep_events,
                            SweepReport& report, const HoldSpans& spans,
                            std::map<uint64_t, bool>& erased_buckets,
                            std::vector<std::pair<uint64_t, int64_t>>& erased,
                            bool shreds_pending) const {
  const int64_t as_of = ToMicros(options.as_of);
  const uint64_t id = entry.record_id;
  const int64_t due = entry.due_micros;
  auto record = u_.record_store.ReadUnmerged(id);
  if (!record) {
    if (record.error().code() != StatusCode::kNotFound) return record.error();
    batch.Delete(key);  // A stray entry: its record is gone.
    return Status::Ok();
  }
  if (record->next_deadline_micros != due) {
    batch.Delete(key);  // Stale: the record moved on.
    return Status::Ok();
  }
  // Its entry stays due until CompleteShreds has written the erasure down.
  auto left = LeftToShredCompletion(*record, as_of, shreds_pending);
  if (!left) return left.error();
  if (*left) return Status::Ok();
  // Everything for this record goes to `one` first and joins the sweep's
  // batch only when the record was processed whole: a record whose later
  // deadline cannot be computed is left as it was, never half transitioned.
  // Every transition due by as_of, in order, in one write: what CatchUp
  // finds is what reads have seen in force since each instant.
  leveldb::WriteBatch one;
  // Sealed under a bucket erased by key: its erasure was written down (and
  // reported) when the key went; this only writes its stub.
  bool erased_by_key = false;
  if (record->erase_bucket != 0) {
    auto marked = ErasedByKey(record->erase_bucket, erased_buckets);
    if (!marked) return marked.error();
    erased_by_key = *marked;
  }
  if (erased_by_key) {
    // Its ciphertexts went with the bucket's range, deleted by this sweep
    // before any record (Erasure::DeleteQueuedRanges; a record sealed into
    // the bucket since would have cleared its marker): nothing to look up.
    RecordStore::DropSealed(*record);
  } else {
    CUSTOS_RETURN_IF_ERROR(u_.record_store.LoadSealed(*record));
  }
  bool held = false;
  Status unschedulable;
  auto steps = u_.record_store.CatchUp(*record, as_of, one, &held,
                                       &unschedulable, &spans);
  if (!steps) return steps.error();
  CUSTOS_RETURN_IF_ERROR(unschedulable);
  // Moves the deadline entry (a postponed erasure's to the holds' end) and,
  // with it, the record's seal to the bucket of its new deadline. A dry run
  // only computes the deadline: a seal moved to a new bucket would store
  // that bucket's key in the keystore, a write (helper-124).
  CUSTOS_RETURN_IF_ERROR(
      options.dry_run
          ? u_.record_store.Schedule(*record, nullptr, &spans)
          : u_.record_store.Put(lock, one, *record, nullptr, &spans));
  std::optional<HeldErasure> held_erasure;
  if (held) {
    auto holds = u_.holds.OnRecord(*record, as_of);
    if (!holds) return holds.error();
    held_erasure =
        HeldErasure{id, FromMicros(record->next_deadline_micros), {}};
    for (const HoldView& hold : *holds) {
      held_erasure->hold_ids.push_back(hold.id);
    }
  }
  // Nothing can fail from here: the report and the batch get it all.
  if (held_erasure) {
    ++report.postponed;
    report.held.push_back(std::move(*held_erasure));
  }
  for (const PlannedTransition& step : *steps) {
    const bool reported = erased_by_key && step.to == RecordState::kErased;
    switch (reported ? RecordState::kActive : step.to) {
      case RecordState::kClosed:
        ++report.closed;
        break;
      case RecordState::kBlocked:
        ++report.blocked;
        break;
      case RecordState::kErased:
        ++report.erased;
        break;
      case RecordState::kActive:
        break;
    }
    if (!reported) report.transitions.push_back(step);
    if (!options.dry_run && step.to == RecordState::kErased) {
      erased.emplace_back(id, ToMicros(step.due));
    }
    if (!options.dry_run) {
      const EventAction action =
          step.to == RecordState::kClosed    ? EventAction::kClose
          : step.to == RecordState::kBlocked ? EventAction::kBlock
                                             : EventAction::kErase;
      sweep_events.push_back(
          events::RecordEvent(admin, action, *record, step.due));
      sweep_events.back().record_state = step.to;
    }
  }
  if (!options.dry_run) batch.Append(one);
  return Status::Ok();
}

Result<bool> Sweeper::ShredsPending() const {
  bool any = false;
  CUSTOS_RETURN_IF_ERROR(u_.store.Scan(keys::kShredQueuePrefix, {},
                                       [&](std::string_view, std::string_view) {
                                         any = true;
                                         return false;
                                       }));
  return any;
}

Result<bool> Sweeper::LeftToShredCompletion(const codec::StoredRecord& record,
                                            int64_t at,
                                            bool shreds_pending) const {
  if (!shreds_pending || record.state == RecordState::kErased) return false;
  auto shredded_at = u_.views.ErasedByShred(record, at);
  if (!shredded_at) return Fail(shredded_at.error());
  return *shredded_at != 0;
}

Result<bool> Sweeper::DueEntries(int64_t now, std::string_view from,
                                 size_t max_entries,
                                 std::vector<DueEntry>& due) const {
  bool more = false;
  CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
      keys::kDeadlinePrefix, from, [&](std::string_view key, std::string_view) {
        const auto entry = keys::ParseDeadline(key);
        if (!entry) return true;  // A sweep reports it.
        if (entry->due_micros > now) return false;
        if (max_entries != 0 && due.size() == max_entries) {
          more = true;
          return false;
        }
        due.emplace_back(key, *entry);
        return true;
      }));
  return more;
}

bool Sweeper::LeftToTheSweeps(const Status& status) {
  return status.code() == StatusCode::kNotFound || Skippable(status);
}

Status Sweeper::LedgerErasuresInForce(const WriteLock& lock) const {
  const int64_t now = ToMicros(u_.clock.Now());
  std::vector<DueEntry> due;
  auto scanned = DueEntries(now, keys::kDeadlinePrefix, 0, due);
  if (!scanned) return scanned.error();
  if (due.empty()) return Status::Ok();
  // Holds as kept in memory, as a sweep reads them: a record no hold
  // reaches costs no lookup.
  auto spans = u_.holds.Spans(lock);
  if (!spans) return spans.error();
  // A record that fails is left out, not the kit refused: kits must go on
  // being written, and the sweeps report the record (helper-128).
  std::vector<std::pair<uint64_t, int64_t>> erased;
  for (const auto& [key, entry] : due) {
    auto record = u_.record_store.Read(entry.record_id);
    if (!record) {
      if (LeftToTheSweeps(record.error())) continue;
      return record.error();
    }
    if (record->next_deadline_micros != entry.due_micros ||
        record->state == RecordState::kErased) {
      continue;  // Stale, or written down already.
    }
    leveldb::WriteBatch scratch;  // Only looking.
    int64_t erased_by_shred = 0;
    auto steps =
        u_.views.CatchUp(*record, now, scratch, &erased_by_shred, &**spans);
    if (!steps) {
      if (LeftToTheSweeps(steps.error())) continue;
      return steps.error();
    }
    if (record->state == RecordState::kErased) {
      erased.emplace_back(record->id, record->erased_at_micros);
    }
  }
  return u_.erasure.Ledger(erased);
}

Result<bool> Sweeper::WriteDownDue(const WriteLock& lock, std::string_view kind,
                                   size_t max_examined, std::string& resume_key,
                                   leveldb::WriteBatch& batch,
                                   std::vector<Event>& events) const {
  const int64_t now = ToMicros(u_.clock.Now());
  if (resume_key.empty()) resume_key = std::string(keys::kDeadlinePrefix);
  // From where the last call stopped.
  std::vector<DueEntry> due;
  auto more = DueEntries(now, resume_key, max_examined, due);
  if (!more) return more;
  if (due.empty()) return false;
  // Past every entry examined, whatever became of it: a record left as it
  // was (one a shred's completion writes down, one a sweep skips) is not
  // met again, so the walk ends (helper-132: counting those as written
  // made WriteDownDueInBatches loop for ever), and each entry is read once
  // however many writes the walk takes.
  resume_key = due.back().first + '\0';
  auto spans = u_.holds.Spans(lock);
  if (!spans) return Fail(spans.error());
  auto shreds_pending = ShredsPending();
  if (!shreds_pending) return Fail(shreds_pending.error());
  SweepOptions options;
  options.as_of = FromMicros(now);
  SweepReport unused;
  std::map<uint64_t, bool> erased_buckets;
  std::vector<std::pair<uint64_t, int64_t>> erased;
  for (const auto& [key, entry] : due) {
    auto record = u_.record_store.ReadUnmerged(entry.record_id);
    if (record && record->kind != kind) continue;
    // By the retention policy, as a sweep's and a re-apply's transitions
    // (docs/access-rules.md), not by the admin changing the policy
    // (helper-130). A record gone or stale is SweepRecord's to clear; one
    // that fails is left, as the kit's walk leaves it (it adds nothing
    // then).
    Status swept = SweepRecord(lock, events::RetentionPrincipal(), key, entry,
                               options, batch, events, unused, **spans,
                               erased_buckets, erased, *shreds_pending);
    if (!swept.ok() && !LeftToTheSweeps(swept)) return Fail(swept);
  }
  // The erasures go to the ledger first (storage/erasure.h).
  CUSTOS_RETURN_IF_ERROR(u_.erasure.Ledger(erased));
  return *more;
}

Status Sweeper::WriteDownDueInBatches(std::string_view kind, size_t batch_size,
                                      std::string& resume_key) const {
  while (true) {
    WriteLock lock = u_.store.Lock();
    leveldb::WriteBatch batch;
    std::vector<Event> events;
    auto more = WriteDownDue(lock, kind, batch_size, resume_key, batch, events);
    if (!more) return more.error();
    if (batch.ApproximateSize() > 12 || !events.empty()) {
      CUSTOS_RETURN_IF_ERROR(u_.store.Commit(std::move(lock), batch, events,
                                             "writing down what is in force"));
    } else {
      lock.Unlock();
    }
    if (!*more) return Status::Ok();
  }
}

bool Sweeper::Skippable(const Status& status) {
  return status.code() == StatusCode::kDataLoss ||
         status.code() == StatusCode::kInvalidArgument ||
         status.code() == StatusCode::kResourceExhausted;
}

void Sweeper::AddSkipped(SweepReport& report, uint64_t record_id,
                         const Status& status) {
  // Deduplicated once, at the end (DedupeSkipped): looking through the
  // list on every add made a sweep quadratic in its skipped records (a
  // million, under a policy failing its MAC; hostile review, helper-113).
  report.skipped.push_back({record_id, status.ToString()});
}

void Sweeper::DedupeSkipped(SweepReport& report) {
  std::unordered_set<uint64_t> seen;
  std::erase_if(report.skipped, [&seen](const SkippedRecord& s) {
    return !seen.insert(s.record_id).second;
  });
}

Status Sweeper::CheckOptions(const SweepOptions& options) const {
  if (options.batch_size == 0) {
    return Status::InvalidArgument("batch_size must be at least 1");
  }
  if (options.max_history_examined == 0u ||
      options.max_history_examined > kMaxHistoryExamined) {
    return Status::InvalidArgument("max_history_examined must be 1 to " +
                                   std::to_string(kMaxHistoryExamined));
  }
  // What a sweep writes must already be in force: only a dry run looks
  // ahead (holds, too, are then judged as they stand now).
  if (!options.dry_run && options.as_of > u_.clock.Now()) {
    return Status::InvalidArgument(
        "as_of is in the future: only a dry run may look ahead");
  }
  return Status::Ok();
}

Result<SweepReport> Sweeper::Sweep(const PrincipalInfo& admin,
                                   const SweepOptions& options) {
  CUSTOS_RETURN_IF_ERROR(CheckOptions(options));
  const int64_t as_of = ToMicros(options.as_of);
  SweepReport report;
  report.unauthenticated_policies = u_.policies.Unauthenticated();
  // In a dry run nothing is written, so the index does not shrink: walk it
  // from a moving start key instead of re-seeking its beginning.
  std::string resume_key(keys::kDeadlinePrefix);
  size_t processed = 0;
  // Malformed index keys met, by key: a batch that stops just before one
  // meets it again in the next batch.
  std::set<std::string> malformed_keys;
  SweepProgress progress;
  // Checked between units of work: after a stop request, none begins. The
  // pruning skipped, where its cursor stands is reported all the same (0
  // would say it reached the head).
  auto stop_requested = [&] {
    if (!options.stop.stop_requested()) return false;
    report.stopped = true;
    report.complete = false;
    return true;
  };
  auto report_cursor = [&]() -> Status {
    auto cursor = StoredPruneCursor();
    if (!cursor) return cursor.error();
    ReportBehind(*cursor, report);
    return Status::Ok();
  };
  auto report_progress = [&](SweepPhase phase) {
    if (!options.progress) return;
    progress.phase = phase;
    progress.records_done = processed;
    options.progress(progress);
  };
  // The head of the access history as the sweep begins: pruning's credit
  // counts the events written up to here, not the sweep's own (its
  // erasures' events go to the next sweep's credit, PruneHistory).
  const uint64_t head_at_start = u_.store.history().head().last_seq;
  if (!options.dry_run) {
    // Erasure by key first: what is due in an ended bucket no hold reaches
    // becomes undecipherable before any record is rewritten.
    CUSTOS_RETURN_IF_ERROR(EraseEndedBuckets(admin, options, report));
    report_progress(SweepPhase::kDestroyingKeys);
    // Then the bytes: the erased buckets' "pb:" ranges deleted and
    // compacted (each one range), before the record-by-record rewrite to
    // ERASED stubs, whose "r:" values hold none of those ciphertexts.
    CUSTOS_RETURN_IF_ERROR(u_.erasure.DeleteQueuedRanges());
    // A phase of its own only when buckets were erased by key (what is
    // left queued otherwise is the last phase's).
    if (!stop_requested()) {
      if (report.buckets_destroyed > 0) {
        report_progress(SweepPhase::kCompacting);
      }
      // Stopped meanwhile, between two ranges or passes: the loop below
      // sees it.
      CUSTOS_RETURN_IF_ERROR(u_.erasure.CompactQueued(options.stop));
    }
  }
  while (!stop_requested()) {
    bool more_due = false;
    WriteLock lock = u_.store.Lock();
    // ErasedByKey's cache, for this batch only: the lock is released
    // between batches, and a record sealed into an erased bucket meanwhile
    // deletes its marker (RecordStore::Reseal).
    std::map<uint64_t, bool> erased_buckets;
    // The due entries of this batch, read first: the iterator must not
    // live across the write.
    std::vector<std::pair<std::string, keys::DeadlineKey>> due_entries;
    CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
        keys::kDeadlinePrefix, resume_key,
        [&](std::string_view key, std::string_view) {
          const auto entry = keys::ParseDeadline(key);
          if (!entry) {
            // No Put writes such a key: it names no record and no instant
            // that can be trusted. Skipped and reported (once per sweep,
            // however many batches meet it), never read past its end; it
            // stays, as a skipped record's entry does, until repaired.
            malformed_keys.emplace(key);
            return true;
          }
          if (entry->due_micros > as_of) return false;
          if (due_entries.size() == options.batch_size ||
              processed + due_entries.size() == options.max_records) {
            more_due = true;
            return false;
          }
          due_entries.emplace_back(key, *entry);
          return true;
        }));
    // Holds as kept in memory (read from the store once, and again only
    // after a change): a record no hold reaches costs no lookup
    // (Holds::ErasableFrom).
    auto spans = u_.holds.Spans(lock);
    if (!spans) return Fail(spans.error());
    leveldb::WriteBatch batch;
    std::vector<Event> sweep_events;
    // Every erasure the batch writes, reported here or by an erasure by
    // key, for the ledger.
    std::vector<std::pair<uint64_t, int64_t>> erased;
    auto shreds_pending = ShredsPending();
    if (!shreds_pending) return Fail(shreds_pending.error());
    for (const auto& [key, entry] : due_entries) {
      resume_key = key + '\0';
      Status swept =
          SweepRecord(lock, admin, key, entry, options, batch, sweep_events,
                      report, **spans, erased_buckets, erased, *shreds_pending);
      if (!swept.ok()) {
        if (!Skippable(swept)) return Fail(swept);
        // One record must not stop retention for the rest of the store. Its
        // index entry stays: deleting it would drop the record from
        // retention without a trace; kept, every sweep meets and reports it
        // until it is repaired. Not counted against max_records, so skipped
        // entries at the head of the index never stall a bounded sweep.
        AddSkipped(report, entry.record_id, swept);
        continue;
      }
      ++processed;
    }
    if (!options.dry_run && batch.ApproximateSize() > 12) {
      // The erasures go to the ledger first (storage/erasure.h).
      CUSTOS_RETURN_IF_ERROR(u_.erasure.Ledger(erased));
      CUSTOS_RETURN_IF_ERROR(
          u_.store.Commit(std::move(lock), batch, sweep_events, "sweeping"));
    } else {
      lock.Unlock();
    }
    ++progress.batches;
    report_progress(SweepPhase::kTransitions);
    if (stop_requested() || !more_due) break;
    if (processed == options.max_records) {
      report.complete = false;
      break;
    }
    if (options.pause_between_batches.count() > 0) {
      std::this_thread::sleep_for(options.pause_between_batches);
    }
  }
  report.malformed_index_keys = malformed_keys.size();
  if (!options.dry_run) {
    report_progress(SweepPhase::kDestroyingKeys);
    CUSTOS_RETURN_IF_ERROR(DestroyDueBuckets(as_of, report));
    // The "pb:" ranges of the buckets it destroyed that still held an
    // entry (DestroyDueBuckets).
    CUSTOS_RETURN_IF_ERROR(u_.erasure.DeleteQueuedRanges());
    if (!stop_requested()) {
      report_progress(SweepPhase::kPruningHistory);
      CUSTOS_RETURN_IF_ERROR(
          PruneHistory(as_of, options, head_at_start, report));
    } else {
      CUSTOS_RETURN_IF_ERROR(report_cursor());
    }
    // Compacts what this sweep erased and pruned, and finishes compactions
    // an earlier, interrupted call left queued.
    if (!stop_requested()) {
      report_progress(SweepPhase::kCompacting);
      CUSTOS_RETURN_IF_ERROR(u_.erasure.CompactQueued(options.stop));
      // Stopped between two of its ranges or passes (or as it ended): the
      // rest of the queue waits.
      stop_requested();
    }
  }
  DedupeSkipped(report);
  return report;
}

Result<bool> Sweeper::ErasedByKey(uint64_t bucket,
                                  std::map<uint64_t, bool>& cache) const {
  auto known = cache.find(bucket);
  if (known != cache.end()) return known->second;
  auto marker = u_.store.Get(keys::ErasedBucket(bucket));
  if (!marker) return Fail(marker.error());
  cache[bucket] = marker->has_value();
  return marker->has_value();
}

Status Sweeper::EraseEndedBuckets(const PrincipalInfo& admin,
                                  const SweepOptions& options,
                                  SweepReport& report) {
  const int64_t as_of = ToMicros(options.as_of);
  // Buckets every instant of which is at or before as_of; none before
  // the first bucket's end (a negative as_of must not wrap around).
  if (as_of + 1 < DeadlineKeys::kBucketMicros) return Status::Ok();
  const uint64_t last =
      static_cast<uint64_t>((as_of + 1) / DeadlineKeys::kBucketMicros);
  Keystore& keystore = u_.deadline_keys.keystore();
  // Under the write lock: no Put seals a record into a bucket between the
  // look at its index range and the key's destruction.
  WriteLock lock = u_.store.Lock();
  // Read under the lock: no hold is set between this look and the keys'
  // destruction.
  auto spans = u_.holds.Spans(lock);
  if (!spans) return spans.error();
  const HoldSpans& held = **spans;
  // A record a hold may reach is swept alone (below): one its subjects'
  // shreds erased is left to CompleteShreds there too (the hold ended or
  // was released: a hold in force refuses the shred; a review, helper-122).
  auto shreds_pending = ShredsPending();
  if (!shreds_pending) return shreds_pending.error();
  auto buckets = keystore.BucketsUpTo(last);
  if (!buckets) return buckets.error();
  std::vector<uint64_t> erasing;
  std::vector<PlannedTransition> erasures;
  leveldb::WriteBatch batch;
  std::string written_at;
  AppendBigEndian64(written_at, static_cast<uint64_t>(as_of));
  const int64_t now = ToMicros(u_.clock.Now());
  // The held records' moves (or erasures, when no hold covers their due
  // instant after all), written with the buckets' markers.
  std::vector<Event> moves;
  std::vector<std::pair<uint64_t, int64_t>> moved_erased;
  std::map<uint64_t, bool> erased_buckets;
  // The records of held subjects, read once per sweep.
  std::map<std::string, std::vector<uint64_t>> subject_records;
  std::vector<uint64_t> held_ids;
  std::vector<std::string> held_subjects;
  for (uint64_t bucket : *buckets) {
    const int64_t start = DeadlineKeys::BucketStart(bucket);
    const int64_t end = DeadlineKeys::BucketEnd(bucket);
    // A hold that did not decode: which records it holds is unknown.
    if (held.unknown) continue;
    // The records a hold may reach in the bucket's hour (by id, or as a
    // held subject's): looked up per bucket, never per record.
    held.Overlapping(start, end, held_ids, held_subjects);
    for (const std::string& subject : held_subjects) {
      auto [known, added] = subject_records.try_emplace(subject);
      if (added) {
        const std::string prefix = keys::SubjectRecordsPrefix(subject);
        CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
            prefix, {}, [&](std::string_view key, std::string_view) {
              known->second.push_back(keys::NumberAfter(key, prefix));
              return true;
            }));
      }
      held_ids.insert(held_ids.end(), known->second.begin(),
                      known->second.end());
    }
    std::sort(held_ids.begin(), held_ids.end());
    // The records sealed under the bucket are exactly its index entries
    // whose next transition is the erasure (RecordStore::Put's invariant);
    // the other entries of its hour (a close, a block) are not sealed
    // under it and are swept record by record.
    const size_t first = erasures.size();
    bool readable = true;
    Status failure;
    std::vector<std::pair<std::string, keys::DeadlineKey>> held_entries;
    CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
        keys::kDeadlinePrefix, keys::Deadline(start, 0),
        [&](std::string_view key, std::string_view value) {
          // A malformed key is no record's entry (Put writes
          // none): it seals nothing; the record-by-record pass
          // reports it.
          const auto parsed = keys::ParseDeadline(key);
          if (!parsed) return true;
          if (parsed->due_micros >= end) return false;
          auto entry = RecordStore::DecodeDeadlineEntry(value);
          if (!entry) {
            readable = false;
            return false;
          }
          if (entry->next != codec::Transition::kErase) {
            return true;
          }
          if (std::binary_search(held_ids.begin(), held_ids.end(),
                                 parsed->record_id)) {
            held_entries.emplace_back(key, *parsed);
            return true;
          }
          // While a shred waits for CompleteShreds, a record
          // its subjects' shreds erased before its due
          // instant was erased then, by them: the key's
          // destruction erases nothing more of it, and it is
          // no erasure of this sweep's (helper-124).
          if (*shreds_pending) {
            auto record = u_.record_store.Read(parsed->record_id);
            if (!record) {
              // Not readable: counted as its entry says (the
              // record-by-record pass reports it).
              if (!Skippable(record.error())) {
                failure = record.error();
                return false;
              }
            } else {
              auto left =
                  LeftToShredCompletion(*record, parsed->due_micros, true);
              if (!left) {
                failure = left.error();
                return false;
              }
              if (*left) return true;
            }
          }
          erasures.push_back({parsed->record_id, entry->state,
                              RecordState::kErased,
                              FromMicros(parsed->due_micros)});
          return true;
        }));
    CUSTOS_RETURN_IF_ERROR(failure);
    if (!readable) {
      erasures.resize(first);
      continue;
    }
    // A record a hold may reach leaves the bucket first, record by record
    // (moved to the bucket of its holds' end, or erased if none covers its
    // due instant), in the write that marks the bucket erased.
    bool moved = true;
    for (const auto& [key, entry] : held_entries) {
      leveldb::WriteBatch one;
      std::vector<Event> one_events;
      Status swept =
          SweepRecord(lock, admin, key, entry, options, one, one_events, report,
                      held, erased_buckets, moved_erased, *shreds_pending);
      if (!swept.ok()) {
        if (!Skippable(swept)) return swept;
        // It stays sealed under the bucket, whose key stays with it.
        AddSkipped(report, entry.record_id, swept);
        moved = false;
        continue;
      }
      batch.Append(one);
      moves.insert(moves.end(), std::make_move_iterator(one_events.begin()),
                   std::make_move_iterator(one_events.end()));
    }
    if (!moved) {
      erasures.resize(first);
      continue;
    }
    const std::string name = Keystore::BucketKeyName(bucket);
    auto wrapped = keystore.WrappedBytes(name);
    if (!wrapped) return wrapped.error();
    if (*wrapped) Erasure::AddWitness(batch, **wrapped);
    Erasure::QueueKeystore(batch, name, now);
    // Its ciphertexts are one range: deleted once the key is gone
    // (Erasure::DeleteQueuedRanges), whoever finishes it after a crash.
    Erasure::QueueRangeDeletion(batch, keys::BucketSealedBegin(bucket),
                                keys::BucketSealedEnd(bucket), now);
    batch.Put(ToSlice(keys::ErasedBucket(bucket)), written_at);
    erasing.push_back(bucket);
  }
  if (erasing.empty() && moves.empty()) return Status::Ok();
  // The held records' erasures, if any, go to the ledger first.
  CUSTOS_RETURN_IF_ERROR(u_.erasure.Ledger(moved_erased));
  // Written down and synced first (with every change before it: one log),
  // then the keys: a crash between leaves live keys of erased buckets,
  // which the next sweep erases again. Still under the lock, so that no
  // record is sealed into a bucket being destroyed.
  auto ticket =
      u_.store.Apply(lock, batch, moves, "writing down erased buckets",
                     /*force_sync=*/true);
  if (!ticket) return ticket.error();
  CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(*ticket));
  for (uint64_t bucket : erasing) {
    CUSTOS_RETURN_IF_ERROR(keystore.DestroyBucketKey(bucket));
    ++report.buckets_destroyed;
  }
  report.erased += erasures.size();
  report.transitions.insert(report.transitions.end(), erasures.begin(),
                            erasures.end());
  return Status::Ok();
}

Status Sweeper::DestroyDueBuckets(int64_t as_of, SweepReport& report) {
  // Buckets every instant of which is at or before as_of; none before
  // the first bucket's end (a negative as_of must not wrap around).
  if (as_of + 1 < DeadlineKeys::kBucketMicros) return Status::Ok();
  const uint64_t last =
      static_cast<uint64_t>((as_of + 1) / DeadlineKeys::kBucketMicros);
  Keystore& keystore = u_.deadline_keys.keystore();
  // Under the write lock: no Put seals a record into a bucket between the
  // look at its index range and the key's destruction.
  WriteLock lock = u_.store.Lock();
  auto buckets = keystore.BucketsUpTo(last);
  if (!buckets) return buckets.error();
  std::vector<uint64_t> empty;  // Ascending, as BucketsUpTo gives them.
  for (uint64_t bucket : *buckets) {
    // One seek: is any record still indexed in the bucket's hour? A record
    // sealed under the bucket is (the invariant RecordStore::Put keeps): a
    // skipped record, or one a bounded sweep did not reach, keeps its key.
    const int64_t end = DeadlineKeys::BucketEnd(bucket);
    bool occupied = false;
    CUSTOS_RETURN_IF_ERROR(
        u_.store.Scan(keys::kDeadlinePrefix,
                      keys::Deadline(DeadlineKeys::BucketStart(bucket), 0),
                      [&](std::string_view key, std::string_view) {
                        // A malformed key is no record's entry: stepped over
                        // (the record-by-record pass reports it).
                        const auto parsed = keys::ParseDeadline(key);
                        if (!parsed) return true;
                        occupied = parsed->due_micros < end;
                        return false;
                      }));
    if (!occupied) empty.push_back(bucket);
  }
  if (empty.empty()) return Status::Ok();
  // No record is sealed under them (their hours have no index entry), so
  // a "pb:" entry left in their ranges belongs to none: its range's
  // deletion is queued with the key's witness, before the key goes, as an
  // erasure by key queues it. An empty range queues nothing (its
  // compaction would cost a memtable flush per bucket). One forward pass
  // over "pb:" for all of them, seeking only past what the pass has
  // already stepped over: the ranges erased before hold deletion markers,
  // which each seek walks, and with a seek per bucket a run of emptied
  // buckets walked the markers after each of them again.
  std::vector<bool> orphans(empty.size(), false);
  {
    std::unique_ptr<leveldb::Iterator> it(
        u_.store.db().NewIterator(leveldb::ReadOptions()));
    for (size_t i = 0; i < empty.size(); ++i) {
      const std::string sealed_begin = keys::BucketSealedBegin(empty[i]);
      if (!it->Valid() || it->key().compare(ToSlice(sealed_begin)) < 0) {
        it->Seek(ToSlice(sealed_begin));
      }
      // At or after the range's first key (sought, or stepped to by an
      // earlier bucket's seek): an entry of it if not past its last key.
      orphans[i] =
          it->Valid() &&
          it->key().compare(ToSlice(keys::BucketSealedEnd(empty[i]))) <= 0;
    }
    CUSTOS_RETURN_IF_ERROR(
        FromLevelDb(it->status(), "looking for entries of emptied buckets"));
  }
  leveldb::WriteBatch witnesses;
  const int64_t now = ToMicros(u_.clock.Now());
  for (size_t i = 0; i < empty.size(); ++i) {
    const std::string name = Keystore::BucketKeyName(empty[i]);
    auto wrapped = keystore.WrappedBytes(name);
    if (!wrapped) return wrapped.error();
    if (*wrapped) Erasure::AddWitness(witnesses, **wrapped);
    Erasure::QueueKeystore(witnesses, name, now);
    if (orphans[i]) {
      Erasure::QueueRangeDeletion(witnesses, keys::BucketSealedBegin(empty[i]),
                                  keys::BucketSealedEnd(empty[i]), now);
    }
  }
  // The witnesses and queue entries first, synced with every erasure
  // written before them (one log), then the keys: a crash between leaves
  // live keys of empty buckets, which the next sweep destroys. Still under
  // the lock, so that no record is sealed into a bucket being destroyed.
  auto ticket = u_.store.Apply(lock, witnesses, {}, "queueing bucket keys",
                               /*force_sync=*/true);
  if (!ticket) return ticket.error();
  CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(*ticket));
  for (uint64_t bucket : empty) {
    CUSTOS_RETURN_IF_ERROR(keystore.DestroyBucketKey(bucket));
    ++report.buckets_destroyed;
  }
  return Status::Ok();
}

Result<uint64_t> Sweeper::StoredPruneCursor() const {
  auto cursor = u_.store.Get(keys::kHistoryPruneCursor);
  if (!cursor) return Fail(cursor.error());
  return *cursor && (*cursor)->size() == 8 ? ReadBigEndian64(**cursor) : 0;
}

Result<std::optional<Sweeper::PruneState>> Sweeper::StoredPruneState() const {
  auto cursor = StoredPruneCursor();
  if (!cursor) return Fail(cursor.error());
  auto gate = u_.store.Get(keys::kHistoryPruneGate);
  if (!gate) return Fail(gate.error());
  // Version 1: asleep (1 byte), the cursor (u64 BE), wake_at and slept_at
  // (i64 as u64 BE), policies (u64 BE). A cursor other than the stored
  // one: written by a build without the gate since (it moved the cursor,
  // and erased records without telling): as if there were none.
  if (!*gate || (*gate)->size() != 34 || (**gate)[0] != 1 ||
      static_cast<uint8_t>((**gate)[1]) > 1) {
    return std::optional<PruneState>();
  }
  const std::string_view value(**gate);
  if (ReadBigEndian64(value.substr(2)) != *cursor) {
    return std::optional<PruneState>();
  }
  PruneState state;
  state.after_seq = *cursor;
  state.asleep = value[1] == 1;
  state.wake_at = static_cast<int64_t>(ReadBigEndian64(value.substr(10)));
  state.slept_at = static_cast<int64_t>(ReadBigEndian64(value.substr(18)));
  state.policies = ReadBigEndian64(value.substr(26));
  return std::optional<PruneState>(state);
}

void Sweeper::PutPruneState(const PruneState& state,
                            leveldb::WriteBatch& batch) {
  std::string cursor;
  AppendBigEndian64(cursor, state.after_seq);
  batch.Put(ToSlice(keys::kHistoryPruneCursor), cursor);
  std::string gate;
  gate.push_back(1);
  gate.push_back(state.asleep ? 1 : 0);
  AppendBigEndian64(gate, state.after_seq);
  AppendBigEndian64(gate, static_cast<uint64_t>(state.wake_at));
  AppendBigEndian64(gate, static_cast<uint64_t>(state.slept_at));
  AppendBigEndian64(gate, state.policies);
  batch.Put(ToSlice(keys::kHistoryPruneGate), gate);
}

uint64_t Sweeper::PolicyPrint(const std::vector<RetentionPolicy>& policies) {
  // FNV-1a (64 bits) over each kind and its history_after, in List's
  // order (by kind). Not a secret, not a MAC: a change it misses would
  // only let pruning sleep past a shortened period's first due events.
  uint64_t print = 0xcbf29ce484222325ULL;
  auto add = [&print](std::string_view bytes) {
    for (const char c : bytes) {
      print ^= static_cast<uint8_t>(c);
      print *= 0x100000001b3ULL;
    }
    print ^= 0xff;  // A separator no text holds.
    print *= 0x100000001b3ULL;
  };
  for (const RetentionPolicy& policy : policies) {
    add(policy.kind);
    add(policy.history_after.ToString());
  }
  return print;
}

bool Sweeper::Wakes(const PruneState& state, int64_t as_of,
                    const std::vector<RetentionPolicy>& policies,
                    const WriteLock& lock) const {
  if (state.wake_at <= as_of) return true;
  // A week on, or a sweep dated before it fell asleep (a clock set back,
  // or a gate written by someone else: its sleep is not trusted).
  int64_t slept = 0;
  if (as_of < state.slept_at ||
      __builtin_sub_overflow(as_of, state.slept_at, &slept) ||
      slept >=
          std::chrono::duration_cast<std::chrono::microseconds>(kSleepAtMost)
              .count()) {
    return true;
  }
  const int64_t erased = u_.record_store.ErasedSincePass(lock);
  if (erased == RecordStore::kNoErasure) return false;
  if (erased == RecordStore::kWakePruning) return true;
  // A record erased since the pass began was examined alive, or not at
  // all: its events may be due once its erasure's history_after has
  // passed, dated by the ledger, never before erased_at. A day earlier:
  // AddPeriod clamps to a month's end keeping the time of day, so a
  // later anchor may end up to a day earlier.
  constexpr int64_t kDay = int64_t{24} * 3600 * 1000 * 1000;
  for (const RetentionPolicy& policy : policies) {
    auto until = AddPeriod(FromMicros(erased), policy.history_after);
    if (!until || ToMicros(*until) - kDay <= as_of) return true;
  }
  return false;
}

void Sweeper::ReportBehind(uint64_t after_seq, SweepReport& report) const {
  const uint64_t head = u_.store.history().head().last_seq;
  report.history_behind =
      after_seq != 0 && head > after_seq ? head - after_seq : 0;
}

Status Sweeper::PruneHistory(int64_t as_of, const SweepOptions& options,
                             uint64_t head_at_start, SweepReport& report) {
  // One sweep's pruning at a time. Two at once would start from the same
  // cursor, examine the same events and write the cursor over each other
  // (the shorter taking it back); the credit below would go to one of them
  // (helper-134). A sweep that finds another's pruning running leaves the
  // pruning to it and reports where the cursor stands; but one given a
  // bound of its own (an admin catching up a backlog: custos sweep
  // --history-examined) waits for it, then prunes as asked, rather than
  // answer that it examined nothing. No lock is held here, and the pruning
  // waited for is bounded and stops at a stop request.
  std::unique_lock<std::mutex> pruning(prune_mu_, std::defer_lock);
  if (options.max_history_examined) {
    pruning.lock();
  } else if (!pruning.try_lock()) {
    auto cursor = StoredPruneCursor();
    if (!cursor) return cursor.error();
    ReportBehind(*cursor, report);
    return Status::Ok();
  }
  // Without a bound of the sweep's own: the engine's, plus what was written
  // from the last pruning sweep's beginning to this one's (the credit).
  // Counted to where this sweep began, not to the head now: the events of
  // the sweep's own transitions (an erasure each) are credited to the next
  // sweep, so that an erasing sweep does not also examine them; it is the
  // same work, done one sweep later: the cursor gains the engine's bound
  // on the head per sweep over successive sweeps, not at each (one sweep
  // falls behind by what is written during it, the next makes it up). A
  // store writing more
  // events between two sweeps than the engine's bound would otherwise have
  // the cursor fall further behind the head at every sweep, never wrap,
  // and never examine again the events it passed while their records
  // lived: kept for ever (helper-133). So the cursor gains the engine's
  // bound on the head per sweep, and a pass over a log of L events takes about
  // L / bound sweeps, however busy the store. The credit is capped at
  // kMaxPruneCredit, so that no sweep examines more than the bound plus
  // that (a store loaded in bulk, or swept after a long interval: the rest
  // is carried to the next sweeps), and is taken only by a pruning that
  // succeeds.
  // Not since the engine opened: none (0 is also the head of an empty
  // log: a sweep that began on one leaves the next none either, and the
  // first events go to the sweep after that). A concurrent sweep that began
  // later may have taken the credit past this one's beginning: none either, and
  // the mark stays where that sweep left it.
  const uint64_t seen =
      head_at_last_prune_ == 0 ? head_at_start : head_at_last_prune_;
  const uint64_t credit = seen < head_at_start
                              ? std::min(head_at_start - seen, kMaxPruneCredit)
                              : 0;
  const size_t max_examined =
      options.max_history_examined
          ? *options.max_history_examined
          : u_.history_examined_per_sweep + static_cast<size_t>(credit);
  Status pruned = PruneFromCursor(as_of, options, max_examined, report);
  // A pruning stopped early leaves the credit to the next sweep: the
  // cursor did not gain what it stands for.
  if (pruned.ok() && !options.max_history_examined && !report.stopped) {
    head_at_last_prune_ = seen + credit;
  }
  return pruned;
}

Status Sweeper::PruneFromCursor(int64_t as_of, const SweepOptions& options,
                                size_t max_examined, SweepReport& report) {
  auto stored = StoredPruneState();
  if (!stored) return stored.error();
  PruneState state;
  if (*stored) {
    state = **stored;
  } else {
    auto cursor = StoredPruneCursor();
    if (!cursor) return cursor.error();
    state.after_seq = *cursor;
  }
  // The state as stored: as read, then as each committing chunk wrote it.
  PruneState written = state;
  {
    WriteLock lock = u_.store.Lock();
    const std::vector<RetentionPolicy> policies = u_.policies.List();
    const uint64_t print = PolicyPrint(policies);
    if (!u_.policies.Unauthenticated().empty()) {
      // A kind's history_after unknown: no sleeping (a pass after a pass,
      // from where the cursor stands).
      state.asleep = false;
      state.policies = 0;
    } else if (!state.asleep && *stored && state.policies != print) {
      // Policies changed while a pass runs: it goes on (a pass restarted
      // at each change could never end), and the next starts at once.
      state.policies = print;
      state.wake_at = kWakeNow;
    } else if (!*stored ||
               (state.asleep && (state.policies != print ||
                                 Wakes(state, as_of, policies, lock)))) {
      // A pass from the oldest event; the erasures it must be told of are
      // those written from now on.
      state = PruneState{0, false, kNever, 0, print};
      leveldb::WriteBatch batch;
      PutPruneState(state, batch);
      RecordStore::PutErasedSincePassReset(batch);
      auto ticket = u_.store.Apply(lock, batch, {}, "starting a prune pass");
      if (!ticket) return ticket.error();
      u_.record_store.ErasedSincePassReset(lock);
      written = state;
      lock.Unlock();
      CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(*ticket));
    }
  }
  const size_t chunk = std::max<size_t>(options.batch_size, 100);
  size_t examined = 0;
  // Decided once per sweep (PruneVerdicts).
  PruneVerdicts verdicts;
  while (true) {
    const size_t budget = std::min(chunk, max_examined - examined);
    auto step = PruneHistoryChunk(as_of, budget, state, verdicts, report);
    if (!step) return step.error();
    examined += budget;
    report.history_examined += step->examined;
    report.history_pruned += step->stubbed;
    if (step->committed) written = state;
    if (TEST_after_prune_chunk_) TEST_after_prune_chunk_();
    // At the head: asleep (or, policies unknown, the next sweep starts
    // again from the oldest event).
    if (step->at_head || examined >= max_examined) break;
    // Stopped: the cursor is written where it stands (below).
    if (options.stop.stop_requested()) {
      report.stopped = true;
      report.complete = false;
      break;
    }
    if (options.pause_between_batches.count() > 0) {
      std::this_thread::sleep_for(options.pause_between_batches);
    }
  }
  ReportBehind(state.after_seq, report);
  // A chunk that changed nothing wrote nothing (not even the cursor, to
  // spare a synchronous write per chunk); where the last one stopped is
  // written here, unless the stored state already says so. A crash before
  // it only has the next sweep examine those events again.
  // (Nothing else writes it: one sweep's pruning runs at a time.)
  if (state.after_seq == written.after_seq && state.asleep == written.asleep &&
      state.wake_at == written.wake_at && state.slept_at == written.slept_at &&
      state.policies == written.policies) {
    return Status::Ok();
  }
  WriteLock lock = u_.store.Lock();
  leveldb::WriteBatch batch;
  PutPruneState(state, batch);
  return u_.store.Commit(std::move(lock), batch, {}, "storing prune cursor");
}

bool Sweeper::RecordHistoryDue(const EventHeader& h, int64_t as_of,
                               PruneVerdicts& verdicts, SweepReport& report,
                               Status& failure) {
  auto known = verdicts.records.find(h.record_id);
  if (known != verdicts.records.end()) return known->second;
  bool verdict = false;
  const size_t skipped = report.skipped.size();
  // Only the stored state is needed, under the write lock: not the sealed
  // contents a closed record keeps under its bucket (a second read).
  auto record = u_.record_store.ReadUnmerged(h.record_id);
  if (record && record->state == RecordState::kErased) {
    // Dated by the ledger and the event's own header, which are
    // authenticated, not by the stored record: someone who can write the
    // files but has no key could otherwise mark a record erased long ago
    // and have its history pruned by the next sweep.
    auto erased_at = u_.erasure.LedgerErasedAt(h.record_id);
    if (!erased_at) {
      if (Skippable(erased_at.error())) {
        AddSkipped(report, h.record_id, erased_at.error());
      } else {
        failure = erased_at.error();
      }
    } else if (!*erased_at) {
      AddSkipped(report, h.record_id,
                 Status::DataLoss("an erased record has no erasure ledger "
                                  "entry; its history is kept"));
    } else if (auto policy = u_.policies.For(h.record_kind);
               policy && *policy) {
      // (A policy that failed to authenticate, or is missing: the history
      // is kept; the kind is in report.unauthenticated_policies.)
      auto until = AddPeriod(FromMicros(**erased_at), (*policy)->history_after);
      verdict = until && ToMicros(*until) <= as_of;
      if (until && !verdict) {
        verdicts.wake_at = std::min(verdicts.wake_at, ToMicros(*until));
      }
    }
  } else if (!record && record.error().code() != StatusCode::kNotFound) {
    // A record that cannot be read keeps its history (never pruned on a
    // guess) and is reported; it must not stop pruning for the rest.
    if (Skippable(record.error())) {
      AddSkipped(report, h.record_id, record.error());
    } else {
      failure = record.error();
    }
  }
  // One that could not be read or dated keeps pruning awake (PruneState).
  if (!verdict && report.skipped.size() > skipped) {
    verdicts.wake_at = std::min(verdicts.wake_at, as_of);
  }
  verdicts.records[h.record_id] = verdict;
  return verdict;
}

bool Sweeper::SubjectEventDue(const EventHeader& h, int64_t as_of,
                              PruneVerdicts& verdicts, SweepReport& report,
                              Status& failure) {
  // The longest history_after of the policies, from the event's instant
  // (checked first: it needs no read). A kind whose policy did not
  // authenticate has a period nobody knows: the event is kept. One not
  // old enough lowers wake_at to when it is, unless its action is never
  // about a subject (told without a read; one the list misses, a breach
  // scope's act, only wakes pruning once for nothing).
  if (!verdicts.policies_known || verdicts.policies.empty()) return false;
  if (NeverAboutASubject(h.action)) return false;
  int64_t due = INT64_MIN;
  for (const RetentionPolicy& policy : verdicts.policies) {
    auto until = AddPeriod(h.at, policy.history_after);
    if (!until) return false;  // Past every instant supported: never.
    due = std::max(due, ToMicros(*until));
  }
  if (due > as_of) {
    verdicts.wake_at = std::min(verdicts.wake_at, due);
    return false;
  }
  const History& history = u_.store.history();
  auto parts = history.PartsOf(h.seq);
  if (!parts) {
    // Entries that do not authenticate (VerifyChain reports them): kept.
    if (!Skippable(parts.error())) failure = parts.error();
    return false;
  }
  // About no subject (who may act, policies, keys, backups): kept.
  if (parts->tags.empty() && parts->dropped == 0) return false;
  // And no record of the subject still has its history kept: the events
  // of its index that are about a record must all be due. (A shredded
  // subject's parts are no longer indexed: only the period counts.)
  for (const crypto::Digest& tag : parts->tags) {
    auto known = verdicts.subjects.find(tag);
    if (known == verdicts.subjects.end()) {
      bool clear = true;
      Status walked = history.ForEachIndexed(tag, [&](const EventHeader& e) {
        if (e.record_id == 0) return true;
        clear = RecordHistoryDue(e, as_of, verdicts, report, failure);
        return clear;
      });
      if (!failure.ok()) return false;
      if (!walked.ok()) {
        if (!Skippable(walked)) {
          failure = walked;
          return false;
        }
        // An indexed event that fails to authenticate: kept, and reported
        // when pruning examines it (PruneResult::unauthenticated).
        clear = false;
      }
      known = verdicts.subjects.emplace(tag, clear).first;
    }
    if (!known->second) return false;
  }
  return true;
}

Result<Sweeper::PruneStep> Sweeper::PruneHistoryChunk(int64_t as_of,
                                                      size_t budget,
                                                      PruneState& state,
                                                      PruneVerdicts& verdicts,
                                                      SweepReport& report) {
  WriteLock lock = u_.store.Lock();
  // A person's verdict holds under this lock only: a record of theirs
  // created between two chunks must be seen (helper-126).
  verdicts.subjects.clear();
  // The policies, read once per chunk, not per event about no record.
  verdicts.policies = u_.policies.List();
  verdicts.policies_known = u_.policies.Unauthenticated().empty();
  std::vector<uint64_t> pruned;  // For the ledger.
  Status failure;
  auto prunable = [&](const EventHeader& h) {
    if (!failure.ok()) return false;
    const bool verdict =
        h.record_id == 0
            ? SubjectEventDue(h, as_of, verdicts, report, failure)
            : RecordHistoryDue(h, as_of, verdicts, report, failure);
    if (verdict) pruned.push_back(h.seq);
    return verdict;
  };
  const uint64_t after_seq = state.after_seq;
  leveldb::WriteBatch batch;
  auto result = u_.store.history().Prune(prunable, budget, after_seq, batch);
  if (!failure.ok()) return Fail(failure);
  if (!result) return Fail(result.error());
  report.history_unauthenticated += result->unauthenticated.size();
  const uint64_t head = u_.store.history().head().last_seq;
  PruneStep step;
  step.stubbed = result->stubbed;
  step.examined = result->examined;
  step.at_head = result->next_after_seq == 0;
  // Advanced: at the head, asleep there when every policy is known (a
  // pass that went to sleep stays so), else back to the oldest event.
  state.wake_at = std::min(state.wake_at, verdicts.wake_at);
  // Policies changed since the state's (a concurrent SetPolicy between
  // two chunks): what this pass found due or not mixes two sets of
  // periods; the next pass starts at once.
  if (state.policies != 0 && verdicts.policies_known) {
    const uint64_t print = PolicyPrint(verdicts.policies);
    if (print != state.policies) {
      state.policies = print;
      state.wake_at = kWakeNow;
    }
  }
  if (!step.at_head) {
    state.after_seq = result->next_after_seq;
  } else if (state.policies != 0 && verdicts.policies_known) {
    state.after_seq = head;
    if (!state.asleep) state.slept_at = as_of;
    state.asleep = true;
  } else {
    state.after_seq = 0;
  }
  if (result->stubbed == 0 && result->collapsed == 0) return step;
  PutPruneState(state, batch);
  if (result->stubbed > 0) {
    // The pruned events' old bytes must leave the files like any erased
    // data: queue the span of event keys this call examined.
    const uint64_t last =
        result->next_after_seq != 0 ? result->next_after_seq : head;
    const int64_t now = ToMicros(u_.clock.Now());
    for (uint64_t seq : {after_seq + 1, last}) {
      Erasure::Queue(batch, keys::Event(seq), now);
    }
  }
  CUSTOS_RETURN_IF_ERROR(u_.erasure.LedgerPruned(pruned));
  CUSTOS_RETURN_IF_ERROR(
      u_.store.Commit(std::move(lock), batch, {}, "storing prune cursor"));
  step.committed = true;
  return step;
}

}  // namespace custos
