#include "storage/rekeyer.h"

#include <optional>
#include <utility>
#include <vector>

#include "crypto/aead.h"
#include "storage/events.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "storage/sealing.h"

namespace custos {
namespace {

// Seals the plaintext of `sealed` again under `to`, same associated data,
// witnessing the old ciphertext in `batch`. False (and nothing changed) if
// it is under `to` already: sealed during the re-key, or re-sealed by a
// batch whose cursor a crash lost.
Result<bool> Reseal(leveldb::WriteBatch& batch, codec::Bytes& sealed,
                    const codec::Bytes& ad, const crypto::SecretKey& from,
                    const crypto::SecretKey& to) {
  auto plain = crypto::Open(from, sealed, ad);
  if (!plain) {
    auto current = crypto::Open(to, sealed, ad);
    if (!current) {
      return Fail(
          Status::DataLoss("a ciphertext of the subject failed to "
                           "decrypt under its old and new keys"));
    }
    crypto::Wipe(*current);
    return false;
  }
  Erasure::AddWitness(batch, sealed);
  sealed = crypto::Seal(to, *plain, ad);
  crypto::Wipe(*plain);
  return true;
}

}  // namespace

std::string Rekeyer::EncodeIntent(const Intent& intent) {
  std::string value(1, static_cast<char>(intent.stage));
  AppendBigEndian64(value, intent.cursor);
  return value;
}

Result<Rekeyer::Intent> Rekeyer::DecodeIntent(std::string_view value) {
  if (value.size() != 9 ||
      static_cast<uint8_t>(value[0]) > static_cast<uint8_t>(Stage::kDestroy)) {
    return Fail(Status::DataLoss("corrupt re-key intent"));
  }
  return Intent{static_cast<Stage>(value[0]), ReadBigEndian64(value.substr(1))};
}

Status Rekeyer::Rekey(const PrincipalInfo& admin, std::string_view subject_id) {
  std::lock_guard<std::mutex> one_at_a_time(mu_);
  const std::string id(subject_id);
  Intent intent;
  {
    WriteLock lock = u_.store.Lock();
    auto subject = u_.subjects.Read(id);
    if (!subject) return subject.error();
    if (subject->shredded) return Status::NotFound("subject not found");
    auto key = u_.subjects.Key(id);
    if (!key) return key.error();
    if (!*key) return Status::NotFound("subject not found");
    auto pending = u_.store.Get(keys::RekeyQueue(id));
    if (!pending) return pending.error();
    if (*pending) {
      // Interrupted earlier: finish that one.
      auto decoded = DecodeIntent(**pending);
      if (!decoded) return decoded.error();
      intent = *decoded;
    } else {
      // The intent, with its event (sealed under the old key, and re-sealed
      // with the rest of the history) and a witness of the old wrapped key,
      // is durable before the keys are switched.
      leveldb::WriteBatch batch;
      auto wrapped = u_.keystore.WrappedBytes(id);
      if (!wrapped) return wrapped.error();
      if (*wrapped) Erasure::AddWitness(batch, **wrapped);
      batch.Put(keys::RekeyQueue(id), EncodeIntent(intent));
      auto ticket =
          u_.store.Apply(lock, batch,
                         {events::SubjectEvent(admin, EventAction::kRekey, id,
                                               u_.clock.Now())},
                         "recording re-key intent", /*force_sync=*/true);
      if (!ticket) return ticket.error();
      CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(*ticket));
    }
  }
  return Finish(id, intent);
}

Status Rekeyer::Recover() {
  std::lock_guard<std::mutex> one_at_a_time(mu_);
  std::vector<std::pair<std::string, std::string>> intents;
  CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
      keys::kRekeyQueuePrefix, {},
      [&](std::string_view key, std::string_view value) {
        intents.emplace_back(key.substr(keys::kRekeyQueuePrefix.size()), value);
        return true;
      }));
  for (const auto& [subject_id, value] : intents) {
    auto intent = DecodeIntent(value);
    if (!intent) return intent.error();
    CUSTOS_RETURN_IF_ERROR(Finish(subject_id, *intent));
  }
  return Status::Ok();
}

Status Rekeyer::Finish(const std::string& subject_id, Intent intent) {
  while (true) {
    auto next = Step(subject_id, intent);
    if (!next) return next.error();
    if (!*next) break;
    intent = **next;
  }
  // The old ciphertexts and the old key leave the files (within the
  // erasure bound: Options::erasure_compaction_delay).
  return u_.erasure.CompactQueued();
}

Result<std::optional<Rekeyer::Intent>> Rekeyer::Step(
    const std::string& subject_id, const Intent& intent) {
  using Next = std::optional<Intent>;
  WriteLock lock = u_.store.Lock();
  const int64_t now = ToMicros(u_.clock.Now());
  leveldb::WriteBatch batch;
  auto current = u_.subjects.Key(subject_id);
  if (!current) return Fail(current.error());
  if (*current == nullptr) {
    // Shredded meanwhile: DestroyKey took the retiring key too, but a
    // retiring key some other way brought back (a restore) must not
    // outlive the re-key either.
    CUSTOS_RETURN_IF_ERROR(u_.keystore.DestroyRetiringKey(subject_id));
    batch.Delete(keys::RekeyQueue(subject_id));
    Erasure::QueueRekeyed(batch, subject_id, now);
    auto ticket = u_.store.Apply(lock, batch, {}, "abandoning re-key");
    if (!ticket) return Fail(ticket.error());
    lock.Unlock();
    CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(*ticket));
    return Next();
  }
  auto retiring = u_.keystore.RetiringKey(subject_id);
  if (!retiring) return Fail(retiring.error());
  if (intent.stage == Stage::kDestroy) {
    // Every re-sealed batch is durable (the one that set this stage was
    // synchronous): the old key may go.
    CUSTOS_RETURN_IF_ERROR(u_.keystore.DestroyRetiringKey(subject_id));
    batch.Delete(keys::RekeyQueue(subject_id));
    Erasure::QueueRekeyed(batch, subject_id, now);
    auto ticket = u_.store.Apply(lock, batch, {}, "finishing re-key");
    if (!ticket) return Fail(ticket.error());
    lock.Unlock();
    CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(*ticket));
    return Next();
  }
  if (intent.stage == Stage::kBegun && *retiring == nullptr) {
    // Under the write lock, so every change after this seals under the new
    // key; synchronous, so nothing sealed under it is durable before it.
    SharedKey fresh = u_.keystore.NewKey();
    CUSTOS_RETURN_IF_ERROR(u_.keystore.BeginRekey(subject_id, fresh));
    *retiring = std::move(*current);
    *current = std::move(fresh);
  }
  if (*retiring == nullptr) {
    return Fail(Status::DataLoss("a re-key lost its retiring key"));
  }
  const crypto::SecretKey& from = **retiring;
  const crypto::SecretKey& to = **current;

  Intent next = intent;
  bool force_sync = false;
  switch (intent.stage) {
    case Stage::kBegun: {
      auto subject = u_.subjects.Read(subject_id);
      if (!subject) return Fail(subject.error());
      if (!subject->sealed_identifier.empty()) {
        auto changed = Reseal(batch, subject->sealed_identifier,
                              sealing::IdentifierAd(subject_id), from, to);
        if (!changed) return Fail(changed.error());
        if (*changed) {
          batch.Put(keys::Subject(subject_id), codec::EncodeSubject(*subject));
          Erasure::Queue(batch, keys::Subject(subject_id), now);
        }
      }
      next = Intent{Stage::kRecords, 0};
      break;
    }
    case Stage::kRecords: {
      auto last =
          ResealRecords(lock, batch, subject_id, intent.cursor, from, to);
      if (!last) return Fail(last.error());
      next = *last == 0 ? Intent{Stage::kHistory, 0}
                        : Intent{Stage::kRecords, *last};
      break;
    }
    case Stage::kHistory: {
      auto resealed = u_.store.history().ResealSubject(
          batch, subject_id, from, to, intent.cursor, batch_size_);
      if (!resealed) return Fail(resealed.error());
      for (const auto& old : resealed->replaced) {
        Erasure::AddWitness(batch, old);
      }
      for (uint64_t seq : resealed->rewritten_seqs) {
        Erasure::Queue(batch, keys::Event(seq), now);
      }
      if (resealed->next_after_seq == 0) {
        next = Intent{Stage::kDestroy, 0};
        force_sync = true;  // Everything before it durable with it.
      } else {
        next = Intent{Stage::kHistory, resealed->next_after_seq};
      }
      break;
    }
    case Stage::kDestroy:
      break;  // Handled above.
  }
  batch.Put(keys::RekeyQueue(subject_id), EncodeIntent(next));
  auto ticket =
      u_.store.Apply(lock, batch, {}, "re-sealing for a re-key", force_sync);
  if (!ticket) return Fail(ticket.error());
  lock.Unlock();
  CUSTOS_RETURN_IF_ERROR(u_.store.WaitDurable(*ticket));
  return Next(next);
}

Result<uint64_t> Rekeyer::ResealRecords(const WriteLock& lock,
                                        leveldb::WriteBatch& batch,
                                        const std::string& subject_id,
                                        uint64_t after_id,
                                        const crypto::SecretKey& from,
                                        const crypto::SecretKey& to) {
  const std::string prefix = keys::SubjectRecordsPrefix(subject_id);
  std::string start = prefix;
  if (after_id != 0) AppendBigEndian64(start, after_id + 1);
  std::vector<uint64_t> ids;
  CUSTOS_RETURN_IF_ERROR(
      u_.store.Scan(prefix, start, [&](std::string_view key, std::string_view) {
        ids.push_back(keys::NumberAfter(key, prefix));
        return ids.size() < batch_size_;
      }));
  const int64_t now = ToMicros(u_.clock.Now());
  for (uint64_t id : ids) {
    auto record = u_.record_store.Read(id);
    if (!record) {
      if (record.error().code() == StatusCode::kNotFound) continue;
      return Fail(record.error());
    }
    // A record sealed under a deadline bucket: from and to, each combined
    // with the bucket's key (docs/crypto.md, "Deadline keys").
    std::optional<crypto::SecretKey> bucket_from, bucket_to;
    if (record->erase_bucket != 0) {
      const DeadlineKeys& deadline_keys = u_.subjects.deadline_keys();
      auto bucket_key = deadline_keys.Get(record->erase_bucket);
      if (!bucket_key) return Fail(bucket_key.error());
      if (!*bucket_key) continue;  // Erased by its bucket: nothing to re-seal.
      // Its bucket erased by key and its "pb:" range not deleted yet (the
      // moment between a sweep's key destruction and its range deletion, or
      // a crash in it, finished by Open): the key is alive only if a record
      // was sealed into the bucket since, and this record's ciphertexts may
      // be under the destroyed one. Every entry of the range is due and
      // goes with it: nothing to re-seal (opened under the new key, they
      // failed with DataLoss, and the intent left queued failed every Open).
      auto range_queued = u_.store.Get(keys::RangeDeleteQueue(
          keys::BucketSealedBegin(record->erase_bucket)));
      if (!range_queued) return Fail(range_queued.error());
      if (*range_queued) continue;
      bucket_from =
          deadline_keys.PartKey(**bucket_key, from, record->erase_bucket);
      bucket_to = deadline_keys.PartKey(**bucket_key, to, record->erase_bucket);
    }
    const crypto::SecretKey& from_key = bucket_from ? *bucket_from : from;
    const crypto::SecretKey& to_key = bucket_to ? *bucket_to : to;
    bool changed = false;
    for (auto& part : record->parts) {
      // Empty: none left to re-seal. A record erased by its bucket's key
      // whose stub is not written yet lost its ciphertexts with the
      // bucket's "pb:" range, also when the bucket's key is alive (made
      // again for a record sealed into the bucket since, or a crash before
      // its destruction); opened, it failed under every key (DataLoss), and
      // the re-key intent left queued then failed every Open.
      if (part.subject_id != subject_id || part.sealed.empty()) continue;
      auto resealed = Reseal(batch, part.sealed,
                             sealing::PartAd(id, subject_id, part.version),
                             from_key, to_key);
      if (!resealed) return Fail(resealed.error());
      changed = changed || *resealed;
    }
    for (auto& flag : record->flags) {
      if (flag.subject_id != subject_id || flag.sealed_note.empty()) continue;
      auto resealed =
          Reseal(batch, flag.sealed_note,
                 sealing::NoteAd("flag", id, subject_id, flag.at_micros),
                 from_key, to_key);
      if (!resealed) return Fail(resealed.error());
      changed = changed || *resealed;
    }
    for (auto& contest : record->contests) {
      if (contest.subject_id != subject_id || contest.sealed_statement.empty())
        continue;
      auto resealed =
          Reseal(batch, contest.sealed_statement,
                 sealing::NoteAd("contest", id, subject_id, contest.at_micros),
                 from_key, to_key);
      if (!resealed) return Fail(resealed.error());
      changed = changed || *resealed;
    }
    if (!changed) continue;
    // Nothing but ciphertexts changes: not the version, not the times.
    // Their old versions are where they were stored ("r:" or "pb:").
    Erasure::Queue(batch, RecordStore::SealedKey(*record), now);
    // Its deadline as stored: a re-key is no change of the record, and a
    // policy lengthened since would otherwise undo a block or an erasure
    // in force (helper-124).
    CUSTOS_RETURN_IF_ERROR(
        u_.record_store.PutKeepingSchedule(lock, batch, *record));
  }
  return ids.empty() ? 0 : ids.back();
}

}  // namespace custos
