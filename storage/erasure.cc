#include "storage/erasure.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "crypto/aead.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"

namespace custos {
namespace {

constexpr size_t kWitnessNonceOffset = 1;  // Sealed v1: version byte first.

std::string QueuedAt(int64_t micros) {
  std::string value;
  AppendBigEndian64(value, static_cast<uint64_t>(micros));
  return value;
}

// A queue's entries: keys (without the queue prefix), their stored values,
// and the oldest queued time (INT64_MIN for an entry without one).
struct Queued {
  std::vector<std::string> keys;
  std::vector<std::string> values;
  int64_t oldest = INT64_MAX;
};

// When a queue entry was queued (µs): its value; INT64_MIN for a value
// that is no time (due at once).
int64_t QueuedTime(std::string_view value) {
  return value.size() == 8 ? static_cast<int64_t>(ReadBigEndian64(value))
                           : INT64_MIN;
}

Result<Queued> ReadQueue(const Store& store, std::string_view prefix) {
  Queued q;
  CUSTOS_RETURN_IF_ERROR(
      store.Scan(prefix, {}, [&](std::string_view key, std::string_view value) {
        q.keys.emplace_back(key.substr(prefix.size()));
        q.values.emplace_back(value);
        q.oldest = std::min(q.oldest, QueuedTime(value));
        return true;
      }));
  return q;
}

// The records-database compaction queue summed up without holding it in
// memory (it holds an entry per record erased or re-sealed since the last
// compaction): the oldest queued time, the greatest key queued ("" when
// none), and the whole-database entry's value (an empty key: a completed
// shred's), if queued.
struct QueueSummary {
  int64_t oldest = INT64_MAX;
  std::string last;
  std::optional<std::string> everything;
};

Result<QueueSummary> SummarizeQueue(const Store& store,
                                    std::string_view prefix) {
  QueueSummary q;
  CUSTOS_RETURN_IF_ERROR(
      store.Scan(prefix, {}, [&](std::string_view key, std::string_view value) {
        const std::string_view queued = key.substr(prefix.size());
        if (queued.empty()) {
          q.everything = std::string(value);
        } else {
          q.last = queued;  // Scan goes in key order.
        }
        q.oldest = std::min(q.oldest, QueuedTime(value));
        return true;
      }));
  return q;
}

// At most `limit` entries of the queue at `prefix`, in key order, with keys
// after `after` and not after `last` (never the whole-database entry).
Result<Queued> ReadQueuePart(const Store& store, std::string_view prefix,
                             std::string_view after, std::string_view last,
                             size_t limit) {
  Queued q;
  std::string start(prefix);
  start.append(after);
  start.push_back('\0');  // The first key after `after`.
  CUSTOS_RETURN_IF_ERROR(store.Scan(
      prefix, start, [&](std::string_view key, std::string_view value) {
        const std::string_view queued = key.substr(prefix.size());
        if (queued > last) return false;
        q.keys.emplace_back(queued);
        q.values.emplace_back(value);
        return q.keys.size() < limit;
      }));
  return q;
}

// Adds to `batch` the deletion of queue entries [begin, end) of `queue`
// (read from the queue at `prefix`) whose stored value is still the one
// read: an entry queued again meanwhile (same key, newer time) stays. One
// scan of the queue from the first of them, merged with them (both in key
// order), rather than one lookup per entry.
Status DeleteUnchanged(const Store& store, std::string_view prefix,
                       const std::vector<std::string>& keys,
                       const std::vector<std::string>& values, size_t begin,
                       size_t end, leveldb::WriteBatch& batch) {
  if (begin >= end) return Status::Ok();
  std::string start(prefix);
  start.append(keys[begin]);
  size_t i = begin;
  return store.Scan(prefix, start,
                    [&](std::string_view key, std::string_view value) {
                      const std::string_view queued = key.substr(prefix.size());
                      while (i < end && keys[i] < queued) ++i;
                      if (i == end) return false;
                      if (keys[i] == queued && values[i] == value) {
                        batch.Delete(ToSlice(key));
                      }
                      return true;
                    });
}

// A range queue's value: u64 queued-at micros || the range's last key.
std::string RangeValue(int64_t micros, std::string_view last) {
  std::string value = QueuedAt(micros);
  value.append(last);
  return value;
}

// A range queue's entries: keys are the ranges' first keys, `lasts` their
// last keys, always computed from the first (a bucket's "pb:" range start,
// the only ranges queued; empty, deleting nothing, for any other start). A
// value that does not parse or names another last key is `corrupt`; one
// that does not parse is due at once.
struct QueuedRanges {
  Queued queued;
  std::vector<std::string> lasts;
  std::vector<bool> corrupt;
};

// The last key of the range that starts at `first`, when that is a bucket's
// "pb:" range start (keys::BucketSealedBegin); "" otherwise.
std::string LastOfRange(std::string_view first) {
  if (first.size() != keys::kBucketSealedPrefix.size() + 8 ||
      !first.starts_with(keys::kBucketSealedPrefix)) {
    return "";
  }
  return keys::BucketSealedEnd(
      keys::NumberAfter(first, keys::kBucketSealedPrefix));
}

// One range queue entry read back (`first` its key without the queue
// prefix). Every range queued is a bucket's "pb:" range, so its end is
// computed from its start, never taken from the value: a stored end that a
// flipped bit moved would delete other buckets' entries, or other
// families. A value that does not parse or names another end is corrupt; a
// start that is no bucket's deletes nothing (`last` empty).
struct RangeEntry {
  std::string last;
  bool corrupt = false;
  bool parsed = false;  // The value holds a queued-at time.
  int64_t queued_at = INT64_MIN;
};

RangeEntry ParseRangeEntry(std::string_view first, std::string_view value) {
  RangeEntry entry;
  entry.parsed = value.size() > 8;
  entry.last = LastOfRange(first);
  entry.corrupt =
      entry.last.empty() || !entry.parsed || value.substr(8) != entry.last;
  if (entry.parsed) {
    entry.queued_at = static_cast<int64_t>(ReadBigEndian64(value));
  }
  return entry;
}

Result<QueuedRanges> ReadRangeQueue(const Store& store,
                                    std::string_view prefix) {
  QueuedRanges q;
  CUSTOS_RETURN_IF_ERROR(
      store.Scan(prefix, {}, [&](std::string_view key, std::string_view value) {
        q.queued.keys.emplace_back(key.substr(prefix.size()));
        q.queued.values.emplace_back(value);
        RangeEntry entry = ParseRangeEntry(q.queued.keys.back(), value);
        q.corrupt.push_back(entry.corrupt);
        q.lasts.push_back(std::move(entry.last));
        q.queued.oldest = std::min<int64_t>(q.queued.oldest, entry.queued_at);
        return true;
      }));
  return q;
}

// Adds `n` to the u64 counter at `key` in `batch`, read under `lock` and
// written by the caller's commit under it.
Status AddToCounter(const WriteLock& /*lock*/, const Store& store,
                    std::string_view key, uint64_t n,
                    leveldb::WriteBatch& batch) {
  auto count = store.Get(key);
  if (!count) return count.error();
  const uint64_t before =
      *count && (*count)->size() == 8 ? ReadBigEndian64(**count) : 0;
  std::string counted;
  AppendBigEndian64(counted, before + n);
  batch.Put(ToSlice(key), counted);
  return Status::Ok();
}

}  // namespace

void Erasure::QueueRangeDeletion(leveldb::WriteBatch& batch,
                                 std::string_view first, std::string_view last,
                                 int64_t now_micros) {
  batch.Put(keys::RangeDeleteQueue(first), RangeValue(now_micros, last));
}

Status Erasure::DeleteQueuedRanges() {
  // Which ranges are queued, read without the lock: only their first keys
  // are taken from here. Each write reads its entry again under the lock,
  // since another caller (a sweep and RunMaintenance at once; Open) may
  // have finished it meanwhile, or a later erasure queued it again.
  auto ranges = ReadRangeQueue(store_, keys::kRangeDeleteQueuePrefix);
  if (!ranges) return ranges.error();
  if (TEST_after_range_queue_read_) TEST_after_range_queue_read_();
  for (const std::string& first : ranges->queued.keys) {
    const std::string queue_key = keys::RangeDeleteQueue(first);
    // Each write's pass starts after the last key the previous one deleted,
    // not at the range's first key: from there, every key deleted so far
    // would be stepped over again as a deletion marker (not yet compacted
    // away), and the pass would grow with the square of the range.
    std::string resume = first;
    std::optional<std::string> carried;  // The entry's value, as carried out.
    while (true) {
      WriteLock lock = store_.Lock();
      auto value = store_.Get(queue_key);
      if (!value) return value.error();
      // Finished by another caller since the queue was read: what it
      // deleted, witnessed and counted is not done (or counted) twice.
      if (!*value) break;
      // Queued again (a later erasure of the bucket): its pass starts over.
      if (carried && **value != *carried) resume = first;
      carried = **value;
      const RangeEntry entry = ParseRangeEntry(first, *carried);
      leveldb::WriteBatch batch;
      size_t deleted = 0;
      uint64_t undecodable = 0;
      bool more = false;
      {
        // One ordered pass: the range's keys are neighbours. The iterator
        // is closed before the write.
        std::unique_ptr<leveldb::Iterator> it(
            store_.db().NewIterator(leveldb::ReadOptions()));
        for (it->Seek(ToSlice(resume));
             it->Valid() && it->key().compare(ToSlice(entry.last)) <= 0;
             it->Next()) {
          if (deleted == kRangeDeletesPerWrite) {
            more = true;
            break;
          }
          auto sealed = codec::DecodeSealedContents(
              std::string_view(it->value().data(), it->value().size()));
          if (sealed) {
            for (const codec::Bytes& b : *sealed) AddWitness(batch, b);
          } else if (it->key().size() == first.size() + 8) {
            // A record's entry (bucket || id) that does not decode: its
            // ciphertexts cannot be found in it, so none is witnessed, and
            // VerifyErasure cannot look for them. Deleted all the same,
            // and counted, so an operator learns of it. (The range's two
            // boundary keys, which CompactQueued writes around its
            // compaction, hold nothing and are of other lengths.)
            ++undecodable;
          }
          batch.Delete(it->key());
          ++deleted;
          if (deleted == kRangeDeletesPerWrite) {
            resume = it->key().ToString();
            resume.push_back('\0');  // The next key after it.
          }
        }
        CUSTOS_RETURN_IF_ERROR(
            FromLevelDb(it->status(), "reading a range to delete"));
      }
      if (undecodable > 0) {
        CUSTOS_RETURN_IF_ERROR(AddToCounter(
            lock, store_, keys::kErasureRangeUndecodable, undecodable, batch));
      }
      if (!more) {
        // The last write of the range: retired, and queued for compaction
        // with the time of the erasure that queued it.
        const int64_t queued_at =
            entry.parsed ? entry.queued_at : ToMicros(options_.clock->Now());
        batch.Delete(queue_key);
        batch.Put(keys::RangeCompactQueue(first),
                  RangeValue(queued_at, entry.last));
        if (entry.corrupt) {
          // Deleted all the same when its range could be computed; counted
          // either way (ErasureReport::corrupt_queue_entries), once: the
          // entry goes in the same write.
          CUSTOS_RETURN_IF_ERROR(
              AddToCounter(lock, store_, keys::kErasureQueueCorrupt, 1, batch));
        }
      }
      CUSTOS_RETURN_IF_ERROR(store_.Commit(std::move(lock), batch, {},
                                           "deleting an erased range"));
      if (!more) break;
    }
  }
  return Status::Ok();
}

void Erasure::AddWitness(leveldb::WriteBatch& batch,
                         const codec::Bytes& sealed) {
  AddWitnessKey(batch, WitnessKey(sealed));
}

std::string Erasure::WitnessKey(const codec::Bytes& sealed) {
  if (sealed.size() < kWitnessNonceOffset + crypto::kNonceSize) return "";
  std::string key(keys::kWitnessPrefix);
  for (size_t i = 0; i < crypto::kNonceSize; ++i) {
    key.push_back(static_cast<char>(~sealed[kWitnessNonceOffset + i]));
  }
  return key;
}

void Erasure::AddWitnessKey(leveldb::WriteBatch& batch, std::string_view key) {
  if (key.empty()) return;
  batch.Put(ToSlice(key), "");
}

void Erasure::Queue(leveldb::WriteBatch& batch, std::string_view key,
                    int64_t now_micros) {
  batch.Put(keys::CompactQueue(key), QueuedAt(now_micros));
}

void Erasure::QueueEverything(leveldb::WriteBatch& batch, int64_t now_micros) {
  Queue(batch, "", now_micros);
}

void Erasure::QueueKeystore(leveldb::WriteBatch& batch,
                            std::string_view subject_id, int64_t now_micros) {
  batch.Put(keys::KeystoreCompactQueue(subject_id), QueuedAt(now_micros));
}

void Erasure::QueueRekeyed(leveldb::WriteBatch& batch,
                           std::string_view subject_id, int64_t now_micros) {
  batch.Put(keys::RekeyCompactQueue(subject_id), QueuedAt(now_micros));
}

void Erasure::EraseContents(codec::StoredRecord& r, int64_t at_micros,
                            int64_t now_micros, leveldb::WriteBatch& batch) {
  r.state = RecordState::kErased;
  r.erased_at_micros = at_micros;
  for (const auto& p : r.parts) AddWitness(batch, p.sealed);
  for (const auto& f : r.flags) AddWitness(batch, f.sealed_note);
  for (const auto& c : r.contests) AddWitness(batch, c.sealed_statement);
  r.parts.clear();
  for (auto& f : r.flags) f.sealed_note.clear();
  for (auto& c : r.contests) c.sealed_statement.clear();
  // Where its ciphertexts were stored: inline, or in its bucket's "pb:"
  // entry (none to queue when that entry went with its bucket's range,
  // witnessed then: DeleteQueuedRanges).
  if (r.erase_bucket == 0) {
    Queue(batch, keys::Record(r.id), now_micros);
  } else if (r.sealed_stored_bucket != 0) {
    Queue(batch, keys::BucketSealed(r.sealed_stored_bucket, r.id), now_micros);
  }
}

Status Erasure::Ledger(
    const std::vector<std::pair<uint64_t, int64_t>>& erased) {
  // Not synced by itself: the erasure's own sync covers it (log_env()).
  return keystore_.LedgerRecordErasures(erased, /*sync=*/false,
                                        ToMicros(options_.clock->Now()));
}

Result<std::optional<int64_t>> Erasure::LedgerErasedAt(uint64_t record_id) {
  auto erasure = keystore_.LedgerErasedAt(record_id);
  if (!erasure) return Fail(erasure.error());
  if (!*erasure) return std::optional<int64_t>();
  return std::optional<int64_t>(
      std::max((*erasure)->erased_at, (*erasure)->written_at));
}

Status Erasure::LedgerPruned(const std::vector<uint64_t>& seqs) {
  return keystore_.LedgerPrunedEvents(seqs, /*sync=*/false);
}

Status Erasure::CompactQueuedUnlessDelayed() {
  if (options_.erasure_compaction_delay.count() > 0) return Status::Ok();
  return CompactQueued();
}

Status Erasure::CompactQueued(std::stop_token stop) {
  if (!options_.compact_after_erasure) return Status::Ok();
  // The records queue holds an entry per erased or re-sealed record (half a
  // million after as many closes): it is only summed up here, and read a
  // pass at a time by CompactQueuedKeys. The other queues are short (a key
  // per shredded or re-keyed subject, a range per destroyed bucket) and
  // read whole. The compactions run without the write lock: LevelDB allows
  // writes meanwhile, and foreground calls must not wait for them.
  auto records = SummarizeQueue(store_, keys::kCompactQueuePrefix);
  if (!records) return records.error();
  WriteLock lock = store_.Lock();
  auto keystore = ReadQueue(store_, keys::kKeystoreCompactQueuePrefix);
  if (!keystore) return keystore.error();
  auto rekeyed = ReadQueue(store_, keys::kRekeyCompactQueuePrefix);
  if (!rekeyed) return rekeyed.error();
  auto ranges = ReadRangeQueue(store_, keys::kRangeCompactQueuePrefix);
  if (!ranges) return ranges.error();
  if (records->last.empty() && !records->everything && keystore->keys.empty() &&
      rekeyed->keys.empty() && ranges->queued.keys.empty()) {
    return Status::Ok();
  }
  // With a delay, wait until the oldest erasure has waited that long, then
  // compact everything queued at once. An oldest time after now (the clock
  // was set back since, or the entry is damaged) is not waited for: waiting
  // would keep erased bytes on disk until the clock reached it, past the
  // documented bound; compacting now is only early.
  const int64_t delay = options_.erasure_compaction_delay.count();
  const int64_t oldest = std::min({records->oldest, keystore->oldest,
                                   rekeyed->oldest, ranges->queued.oldest});
  const int64_t now = ToMicros(options_.clock->Now());
  if (delay > 0 && oldest != INT64_MIN && oldest <= now &&
      oldest > now - delay) {
    return Status::Ok();
  }
  lock.Unlock();
  // The ranges first, each alone (a destroyed bucket's: the bulk of what a
  // sweep erased). Their first and last keys, written just before the
  // compaction (and deleted after it), make the flushed memtable's table
  // overlap every table of the range on every level, so the compaction
  // takes them all as inputs and merges the deletions down through each
  // (the problem the rewrite in CompactQueuedKeys solves for single keys).
  // Neither key is an entry's key. A stop ends the loop between two ranges:
  // those done are cleared below, the rest stay queued.
  size_t ranges_done = 0;
  for (; ranges_done < ranges->queued.keys.size(); ++ranges_done) {
    if (stop.stop_requested()) break;
    const size_t i = ranges_done;
    const std::string& first = ranges->queued.keys[i];
    const std::string& last = ranges->lasts[i];
    if (last.empty() || last < first) continue;  // Unparsed: retired below.
    {
      WriteLock span_lock = store_.Lock();
      leveldb::WriteBatch span;
      span.Put(ToSlice(first), "");
      span.Put(ToSlice(last), "");
      CUSTOS_RETURN_IF_ERROR(store_.Commit(std::move(span_lock), span, {},
                                           "compacting an erased range"));
    }
    store_.CompactRange(first, last);
    WriteLock end_lock = store_.Lock();
    leveldb::WriteBatch end;
    end.Delete(ToSlice(first));
    end.Delete(ToSlice(last));
    CUSTOS_RETURN_IF_ERROR(store_.Commit(std::move(end_lock), end, {},
                                         "compacting an erased range"));
    if (TEST_after_compaction_step_) TEST_after_compaction_step_();
  }
  // Stopped among the ranges, or during the last: nothing more begins.
  const bool stopped =
      ranges_done < ranges->queued.keys.size() || stop.stop_requested();

  if (!stopped && !keystore->keys.empty()) {
    CUSTOS_RETURN_IF_ERROR(keystore_.PurgeKeys(keystore->keys));
  }
  if (!stopped && !rekeyed->keys.empty()) {
    // As PurgeKeys, but the current keys are written again: under the
    // write lock, which key destruction and re-keying hold.
    keystore_.CompactRekeyed(rekeyed->keys);
    {
      WriteLock relock = store_.Lock();
      CUSTOS_RETURN_IF_ERROR(keystore_.RewriteRekeyed(rekeyed->keys));
    }
    keystore_.CompactRekeyed(rekeyed->keys);
  }
  // The queued keys, once through the queue in key order up to the
  // greatest key queued when this call began: a key queued meanwhile after
  // it waits for the next call; one queued below it is taken if the passes
  // have not gone by it yet. Each key at most once a call. The records
  // queue was summed up without the lock, the others read under it:
  // nothing relies on one instant for all four (an entry is cleared only
  // if its value is still the one read, and one queued after its queue
  // was read waits for the next call).
  if (!stopped && !records->last.empty()) {
    CUSTOS_RETURN_IF_ERROR(CompactQueuedKeys(records->last, stop));
  }

  // Only now is the work done: a crash before this point leaves the queues
  // as they were, and the next call (at the latest the next Open) redoes
  // it. An entry re-queued meanwhile (same key, newer time) stays.
  WriteLock done_lock = store_.Lock();
  leveldb::WriteBatch done;
  // (Stopped among the ranges: only the ranges done.)
  const std::tuple<const Queued*, std::string_view, size_t> queues[] = {
      {&ranges->queued, keys::kRangeCompactQueuePrefix, ranges_done},
      {&*keystore, keys::kKeystoreCompactQueuePrefix,
       stopped ? 0 : keystore->keys.size()},
      {&*rekeyed, keys::kRekeyCompactQueuePrefix,
       stopped ? 0 : rekeyed->keys.size()}};
  for (const auto& [queue, prefix, done_count] : queues) {
    CUSTOS_RETURN_IF_ERROR(DeleteUnchanged(store_, prefix, queue->keys,
                                           queue->values, 0, done_count, done));
  }
  CUSTOS_RETURN_IF_ERROR(store_.Commit(std::move(done_lock), done, {},
                                       "clearing compaction queue"));
  // The whole-database entry (an empty key) is done last, after the other
  // entries are cleared: their deletions name what they queued (a
  // subject's id, for a shred), and the whole compaction takes them too.
  if (!records->everything || stop.stop_requested()) return Status::Ok();

  // Two keys that span the whole key space, written just before, make the
  // flushed memtable's table overlap every level, so the manual compaction
  // merges every table down to the deepest level (the problem the rewrite
  // in CompactQueuedKeys solves for a span).
  {
    WriteLock span_lock = store_.Lock();
    leveldb::WriteBatch span;
    span.Put(ToSlice(keys::kSpanLow), "");
    span.Put(ToSlice(keys::kSpanHigh), "");
    CUSTOS_RETURN_IF_ERROR(
        store_.Commit(std::move(span_lock), span, {}, "compacting the store"));
  }
  store_.CompactAll();
  CUSTOS_RETURN_IF_ERROR(keystore_.CompactAll());
  WriteLock end_lock = store_.Lock();
  leveldb::WriteBatch end;
  end.Delete(ToSlice(keys::kSpanLow));
  end.Delete(ToSlice(keys::kSpanHigh));
  const std::string marker = keys::CompactQueue("");
  auto value = store_.Get(marker);
  if (!value) return value.error();
  if (*value && **value == *records->everything) end.Delete(marker);
  return store_.Commit(std::move(end_lock), end, {},
                       "clearing compaction queue");
}

Status Erasure::CompactQueuedKeys(std::string_view last_queued,
                                  const std::stop_token& stop) {
  // A pass at a time, in key order: at most compact_keys_per_pass_ queued
  // keys read, rewritten, their span compacted and their entries cleared,
  // so that the memory a call holds and the span one compaction covers are
  // bounded whatever the queue's length. Erased records' keys tend to be
  // neighbours (ids grow with time, and records closed together are due
  // together): one range compaction per pass rewrites each overlapping
  // file once instead of once per key, and the passes' spans do not
  // overlap.
  std::string after;
  for (;;) {
    // Stopped: the passes done are cleared; the rest stays queued.
    if (stop.stop_requested()) return Status::Ok();
    auto part = ReadQueuePart(store_, keys::kCompactQueuePrefix, after,
                              last_queued, compact_keys_per_pass_);
    if (!part) return part.error();
    if (part->keys.empty()) return Status::Ok();
    CUSTOS_RETURN_IF_ERROR(RewriteAndCompact(part->keys));
    CUSTOS_RETURN_IF_ERROR(ClearPass(part->keys, part->values));
    {
      std::lock_guard<std::mutex> stats(TEST_stats_mutex_);
      ++TEST_rewrite_stats_.passes;
      TEST_rewrite_stats_.largest_pass =
          std::max(TEST_rewrite_stats_.largest_pass, part->keys.size());
    }
    if (TEST_after_compaction_step_) TEST_after_compaction_step_();
    if (part->keys.size() < compact_keys_per_pass_) return Status::Ok();
    after = part->keys.back();
  }
}

Status Erasure::RewriteAndCompact(const std::vector<std::string>& part_keys) {
  // One range compaction, not two. LevelDB's manual compaction never
  // takes a table on the deepest level overlapping the range as an input:
  // if an erased key's old and new versions were flushed into one table
  // (they were in the same memtable) that ends up there, compacting the
  // range leaves both. So the memtable is flushed first (every version
  // written so far is then in a table), and each queued key is written
  // again (its current value, unchanged): its newest version is then in
  // the memtable, above every table holding an older one, and the range
  // compaction merges it down through each of them, dropping the old
  // versions. (Compacting first and rewriting after, as before, rewrote
  // the span twice.)
  store_.FlushMemTable();
  // In writes of at most kRewriteKeysPerWrite keys and about
  // kRewriteBytesPerWrite bytes, each read and written under one hold of
  // the write lock (a key's value read is the value written again), the
  // lock released between them. A write flushed to a table before the
  // compaction still lies above the deepest level, so the compaction
  // still takes the tables beneath it. Applied, not committed one by one:
  // with sync_writes, the writes share the one sync waited for after the
  // last (the values are unchanged, and a crash redoes the rewrite).
  std::optional<Store::Ticket> last_rewrite;
  for (size_t next = 0; next < part_keys.size();) {
    WriteLock relock = store_.Lock();
    leveldb::WriteBatch rewrite;
    size_t in_write = 0;
    {
      // The current values are read by one iterator walking the queued
      // keys in order (ReadQueuePart's): neighbours, as records erased
      // together usually are, are a step away, and the tables above the
      // deepest level are not yet compacted, which makes a lookup per key
      // dear. Closed before the write and the compaction (an open
      // iterator pins its tables).
      constexpr int kMaxSteps = 8;  // Further than that: seek.
      std::unique_ptr<leveldb::Iterator> it(
          store_.db().NewIterator(leveldb::ReadOptions()));
      for (; next < part_keys.size() && in_write < kRewriteKeysPerWrite &&
             rewrite.ApproximateSize() < kRewriteBytesPerWrite;
           ++next, ++in_write) {
        const leveldb::Slice target = ToSlice(part_keys[next]);
        for (int steps = 0;
             it->Valid() && it->key().compare(target) < 0 && steps < kMaxSteps;
             ++steps) {
          it->Next();
        }
        if (!it->Valid() || it->key().compare(target) < 0) it->Seek(target);
        if (it->Valid() && it->key() == target) {
          rewrite.Put(target, it->value());
        } else {
          rewrite.Delete(target);
        }
      }
      CUSTOS_RETURN_IF_ERROR(
          FromLevelDb(it->status(), "reading erased keys to rewrite"));
    }
    auto ticket = store_.Apply(relock, rewrite, {}, "rewriting erased keys");
    if (!ticket) return ticket.error();
    last_rewrite = *ticket;
    relock.Unlock();
    std::lock_guard<std::mutex> stats(TEST_stats_mutex_);
    ++TEST_rewrite_stats_.writes;
    TEST_rewrite_stats_.keys += in_write;
    TEST_rewrite_stats_.largest_keys =
        std::max(TEST_rewrite_stats_.largest_keys, in_write);
  }
  if (last_rewrite) CUSTOS_RETURN_IF_ERROR(store_.WaitDurable(*last_rewrite));
  store_.CompactRange(part_keys.front(), part_keys.back());  // In key order.
  return Status::Ok();
}

Status Erasure::ClearPass(const std::vector<std::string>& part_keys,
                          const std::vector<std::string>& part_values) {
  // The pass's entries cleared, in writes as bounded as the rewrite's,
  // sharing one sync as the rewrite's do.
  std::optional<Store::Ticket> last_clear;
  for (size_t begin = 0; begin < part_keys.size();
       begin += kRewriteKeysPerWrite) {
    const size_t end = std::min(part_keys.size(), begin + kRewriteKeysPerWrite);
    WriteLock lock = store_.Lock();
    leveldb::WriteBatch done;
    CUSTOS_RETURN_IF_ERROR(DeleteUnchanged(store_, keys::kCompactQueuePrefix,
                                           part_keys, part_values, begin, end,
                                           done));
    auto ticket = store_.Apply(lock, done, {}, "clearing compaction queue");
    if (!ticket) return ticket.error();
    last_clear = *ticket;
    std::lock_guard<std::mutex> stats(TEST_stats_mutex_);
    TEST_rewrite_stats_.largest_clear =
        std::max(TEST_rewrite_stats_.largest_clear, end - begin);
  }
  if (last_clear) CUSTOS_RETURN_IF_ERROR(store_.WaitDurable(*last_clear));
  return Status::Ok();
}

namespace {

// A filter over the witnessed nonces' first 8 bytes, asked at every byte
// offset of every file before the exact sets: a Bloom filter of two bits
// per prefix in at least 64 slots per prefix (a power of two, 2^16 to 2^30
// bits), so that about 0.1 % of offsets go on to a hash lookup whatever
// the number of witnesses. The sets alone cost a cache miss per byte
// offset (about two minutes for 1.2 GB; bench/RESULTS.md, "VerifyErasure
// scans at memory speed"); one bit in a fixed 2^25 let 3 % of offsets
// through with a million witnesses, which then dominated (bench/RESULTS.md,
// "VerifyErasure with a million witnesses").
class PrefixFilter {
 public:
  explicit PrefixFilter(size_t prefixes) : slot_bits_(SlotBits(prefixes)) {
    bits_.assign((uint64_t{1} << slot_bits_) / 64, 0);
  }

  void Add(uint64_t prefix) {
    Set(Slot(prefix, kFirst));
    Set(Slot(prefix, kSecond));
  }

  bool MayContain(uint64_t prefix) const {
    return IsSet(Slot(prefix, kFirst)) && IsSet(Slot(prefix, kSecond));
  }

 private:
  // Two multipliers: Fibonacci hashing's, and another odd constant; the
  // top bits of each product mix every byte of the prefix.
  static constexpr uint64_t kFirst = 0x9E3779B97F4A7C15ull;
  static constexpr uint64_t kSecond = 0xC2B2AE3D27D4EB4Full;

  static int SlotBits(size_t prefixes) {
    int bits = 16;
    while (bits < 30 && (uint64_t{1} << bits) < uint64_t{64} * prefixes) {
      ++bits;
    }
    return bits;
  }

  uint64_t Slot(uint64_t prefix, uint64_t multiplier) const {
    return (prefix * multiplier) >> (64 - slot_bits_);
  }
  void Set(uint64_t slot) { bits_[slot / 64] |= uint64_t{1} << (slot % 64); }
  bool IsSet(uint64_t slot) const {
    return (bits_[slot / 64] >> (slot % 64)) & 1;
  }

  int slot_bits_;
  std::vector<uint64_t> bits_;
};

// The whole file, or nullopt if it cannot be read.
std::optional<std::string> ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return std::nullopt;
  const std::streamoff size = in.tellg();
  if (size < 0) return std::nullopt;
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) return std::nullopt;
  return bytes;
}

}  // namespace

Result<ErasureReport> Erasure::Verify(const WorkProgressFn& progress) const {
  // The nonces to look for, and their first 8 bytes as quick filters.
  std::unordered_set<std::string> nonces;
  std::unordered_set<uint64_t> prefixes;
  uint64_t witnesses_read = 0;
  ReportProgress(progress, "witnesses", "witnesses", 0);
  CUSTOS_RETURN_IF_ERROR(store_.Scan(
      keys::kWitnessPrefix, {}, [&](std::string_view key, std::string_view) {
        ReportProgress(progress, "witnesses", "witnesses", ++witnesses_read);
        std::string nonce(key.substr(keys::kWitnessPrefix.size()));
        if (nonce.size() != crypto::kNonceSize) return true;
        for (char& c : nonce) c = static_cast<char>(~c);
        uint64_t prefix = 0;
        std::memcpy(&prefix, nonce.data(), sizeof(prefix));
        prefixes.insert(prefix);
        nonces.insert(std::move(nonce));
        return true;
      }));
  PrefixFilter filter(prefixes.size());
  for (uint64_t prefix : prefixes) filter.Add(prefix);
  ErasureReport report;
  report.witnesses = nonces.size();
  auto corrupt = store_.Get(keys::kErasureQueueCorrupt);
  if (!corrupt) return Fail(corrupt.error());
  if (*corrupt && (*corrupt)->size() == 8) {
    report.corrupt_queue_entries = ReadBigEndian64(**corrupt);
  }
  auto undecodable = store_.Get(keys::kErasureRangeUndecodable);
  if (!undecodable) return Fail(undecodable.error());
  if (*undecodable && (*undecodable)->size() == 8) {
    report.undecodable_sealed_entries = ReadBigEndian64(**undecodable);
  }
  ReportProgress(progress, "witnesses", "witnesses", witnesses_read,
                 witnesses_read, /*last=*/true);
  std::unordered_set<std::string> found;
  std::error_code ec;
  const std::filesystem::path root(options_.data_dir);
  // Listed first, so the progress has a total.
  std::vector<std::filesystem::path> files;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(root, ec)) {
    // Not LevelDB's LOCK files: they are empty, and the lock on them is a
    // POSIX record lock, which closing any descriptor of the file in this
    // process releases: reading one here let a second process open the
    // live store (custos verify --chain --data-dir, recover-admin, another
    // custosd) and lose acknowledged writes.
    if (entry.is_regular_file() && entry.path().filename() != "LOCK")
      files.push_back(entry.path());
  }
  if (ec) {
    return Fail(
        Status::Internal("scanning the data directory: " + ec.message()));
  }
  uint64_t files_read = 0;
  ReportProgress(progress, "files", "files", 0, files.size());
  for (const std::filesystem::path& path : files) {
    const std::optional<std::string> read = ReadWholeFile(path);
    ReportProgress(progress, "files", "files", ++files_read, files.size());
    if (!read) {
      // A table a compaction deleted since the listing: nothing to find.
      if (!std::filesystem::exists(path)) continue;
      // Any other file that cannot be read is not an all-clear.
      return Fail(Status::Internal(
          "reading " + std::filesystem::relative(path, root).string()));
    }
    const std::string& bytes = *read;
    bool leftovers = false;
    for (size_t i = 0; i + crypto::kNonceSize <= bytes.size(); ++i) {
      uint64_t prefix = 0;
      std::memcpy(&prefix, bytes.data() + i, sizeof(prefix));
      if (!filter.MayContain(prefix) || !prefixes.contains(prefix)) continue;
      std::string candidate = bytes.substr(i, crypto::kNonceSize);
      if (nonces.contains(candidate)) {
        found.insert(std::move(candidate));
        leftovers = true;
      }
    }
    if (leftovers) {
      report.files_with_leftovers.push_back(
          std::filesystem::relative(path, root).string());
    }
  }
  std::sort(report.files_with_leftovers.begin(),
            report.files_with_leftovers.end());
  report.found = found.size();
  return report;
}

}  // namespace custos
