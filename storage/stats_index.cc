#include "storage/stats_index.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "schema/storage.capnp.h"
#include "storage/capnp_value.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "storage/record_store.h"

namespace custos {
namespace {

using capnp_value::AsText;
using capnp_value::FromText;

constexpr size_t kStates = 4;

size_t Index(RecordState s) { return static_cast<size_t>(s); }

schema::State ToSchema(RecordState s) {
  return static_cast<schema::State>(static_cast<uint16_t>(s));
}
Result<RecordState> FromSchema(schema::State s) {
  const auto n = static_cast<uint16_t>(s);
  if (n >= kStates) return Fail(Status::DataLoss("corrupt stored statistics"));
  return static_cast<RecordState>(n);
}

struct Delta {
  std::string kind;
  RecordState from = RecordState::kActive;
  RecordState to = RecordState::kActive;
  int64_t at_micros = 0;
  int64_t created_at_micros = 0;
  std::vector<Attribute> attributes;
  bool creation() const { return from == to; }
};

std::string EncodeDelta(const Delta& d) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::StatsDelta>();
  b.setKind(AsText(d.kind));
  b.setFrom(ToSchema(d.from));
  b.setTo(ToSchema(d.to));
  b.setAtMicros(d.at_micros);
  b.setCreatedAtMicros(d.created_at_micros);
  auto attributes =
      b.initAttributes(static_cast<unsigned>(d.attributes.size()));
  for (size_t i = 0; i < d.attributes.size(); ++i) {
    attributes[i].setKey(AsText(d.attributes[i].key));
    attributes[i].setValue(AsText(d.attributes[i].value));
  }
  return capnp_value::ToBytes(message);
}

Result<Delta> DecodeDelta(std::string_view bytes) {
  return capnp_value::Decode<schema::StatsDelta>(
      bytes, "statistics delta",
      [](schema::StatsDelta::Reader b) -> Result<Delta> {
        Delta d;
        d.kind = FromText(b.getKind());
        auto from = FromSchema(b.getFrom());
        if (!from) return Fail(from.error());
        auto to = FromSchema(b.getTo());
        if (!to) return Fail(to.error());
        d.from = *from;
        d.to = *to;
        d.at_micros = b.getAtMicros();
        d.created_at_micros = b.getCreatedAtMicros();
        for (auto a : b.getAttributes()) {
          d.attributes.push_back(
              {FromText(a.getKey()), FromText(a.getValue())});
        }
        return d;
      });
}

struct MonthAgg {
  std::array<uint64_t, kStates> entered{};
  std::array<uint64_t, kCloseBuckets> closed_within{};
};
struct AttributeAgg {
  std::map<std::string, uint64_t> values;
  uint64_t other = 0;
};
// One kind's counts, as folded (and as Read builds them).
struct KindAgg {
  std::array<uint64_t, kStates> by_state{};
  std::map<uint32_t, MonthAgg> months;
  std::map<std::string, AttributeAgg> attributes;
  uint64_t other_attributes = 0;

  void Add(const Delta& d) {
    MonthAgg& month = months[MonthOf(d.at_micros)];
    ++month.entered[Index(d.to)];
    if (!d.creation()) {
      // Saturating: a count never wraps, whatever a corrupt delta says.
      uint64_t& left = by_state[Index(d.from)];
      if (left > 0) --left;
    }
    ++by_state[Index(d.to)];
    if (d.to == RecordState::kClosed) {
      ++month.closed_within[CloseBucketOf(d.created_at_micros, d.at_micros)];
    }
    for (const Attribute& a : d.attributes) {
      auto name = attributes.find(a.key);
      if (name == attributes.end()) {
        if (attributes.size() >= kMaxStatisticsAttributeNames) {
          ++other_attributes;
          continue;
        }
        name = attributes.emplace(a.key, AttributeAgg{}).first;
      }
      AttributeAgg& values = name->second;
      auto value = values.values.find(a.value);
      if (value != values.values.end()) {
        ++value->second;
      } else if (a.value.size() > kMaxStatisticsValueLength ||
                 values.values.size() >= kMaxStatisticsValuesPerAttribute) {
        ++values.other;
      } else {
        values.values.emplace(a.value, 1);
      }
    }
  }
};

template <typename List, size_t N>
void CopyCounts(const std::array<uint64_t, N>& from, List to) {
  for (size_t i = 0; i < N; ++i) to.set(static_cast<unsigned>(i), from[i]);
}
template <typename List, size_t N>
Status ReadCounts(List from, std::array<uint64_t, N>& to) {
  if (from.size() != N) {
    return Status::DataLoss("corrupt stored statistics aggregate");
  }
  for (size_t i = 0; i < N; ++i) to[i] = from[static_cast<unsigned>(i)];
  return Status::Ok();
}

std::string EncodeAggregate(const std::string& kind, const KindAgg& agg) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::KindStats>();
  b.setKind(AsText(kind));
  CopyCounts(agg.by_state, b.initByState(kStates));
  auto months = b.initMonths(static_cast<unsigned>(agg.months.size()));
  unsigned i = 0;
  for (const auto& [month, counts] : agg.months) {
    auto m = months[i++];
    m.setMonth(month);
    CopyCounts(counts.entered, m.initEntered(kStates));
    CopyCounts(counts.closed_within, m.initClosedWithin(kCloseBuckets));
  }
  auto attributes =
      b.initAttributes(static_cast<unsigned>(agg.attributes.size()));
  i = 0;
  for (const auto& [name, values] : agg.attributes) {
    auto a = attributes[i++];
    a.setName(AsText(name));
    a.setOther(values.other);
    auto list = a.initValues(static_cast<unsigned>(values.values.size()));
    unsigned k = 0;
    for (const auto& [value, count] : values.values) {
      list[k].setValue(AsText(value));
      list[k].setCount(count);
      ++k;
    }
  }
  b.setOtherAttributes(agg.other_attributes);
  return capnp_value::ToBytes(message);
}

Result<std::pair<std::string, KindAgg>> DecodeAggregate(
    std::string_view bytes) {
  return capnp_value::Decode<schema::KindStats>(
      bytes, "statistics aggregate",
      [](schema::KindStats::Reader b)
          -> Result<std::pair<std::string, KindAgg>> {
        KindAgg agg;
        CUSTOS_RETURN_IF_ERROR(ReadCounts(b.getByState(), agg.by_state));
        for (auto m : b.getMonths()) {
          MonthAgg& counts = agg.months[m.getMonth()];
          CUSTOS_RETURN_IF_ERROR(ReadCounts(m.getEntered(), counts.entered));
          CUSTOS_RETURN_IF_ERROR(
              ReadCounts(m.getClosedWithin(), counts.closed_within));
        }
        for (auto a : b.getAttributes()) {
          AttributeAgg& values = agg.attributes[FromText(a.getName())];
          values.other = a.getOther();
          for (auto v : a.getValues()) {
            values.values[FromText(v.getValue())] = v.getCount();
          }
        }
        agg.other_attributes = b.getOtherAttributes();
        return std::pair<std::string, KindAgg>(FromText(b.getKind()),
                                               std::move(agg));
      });
}

void AddMonth(MonthStatistics& total, const MonthStatistics& m) {
  total.created += m.created;
  total.closed += m.closed;
  total.blocked += m.blocked;
  total.erased += m.erased;
  for (size_t i = 0; i < kCloseBuckets; ++i) {
    total.closed_within[i] += m.closed_within[i];
  }
}

KindStatistics ToStatistics(const std::string& kind, const KindAgg& agg,
                            const StatisticsQuery& query) {
  KindStatistics out;
  out.kind = kind;
  out.by_state = agg.by_state;
  for (const auto& [month, counts] : agg.months) {
    if (query.from_month != 0 && month < query.from_month) continue;
    if (query.to_month != 0 && month > query.to_month) continue;
    MonthStatistics m;
    m.month = month;
    m.created = counts.entered[Index(RecordState::kActive)];
    m.closed = counts.entered[Index(RecordState::kClosed)];
    m.blocked = counts.entered[Index(RecordState::kBlocked)];
    m.erased = counts.entered[Index(RecordState::kErased)];
    m.closed_within = counts.closed_within;
    AddMonth(out.total, m);
    out.months.push_back(m);
  }
  for (const auto& [name, values] : agg.attributes) {
    AttributeStatistics a;
    a.name = name;
    a.values.assign(values.values.begin(), values.values.end());
    a.other = values.other;
    out.attributes.push_back(std::move(a));
  }
  out.other_attributes = agg.other_attributes;
  return out;
}

void PutDelta(leveldb::WriteBatch& batch, uint64_t seq,
              const codec::StoredRecord& r, RecordState from, RecordState to,
              int64_t at_micros) {
  Delta d;
  d.kind = r.kind;
  d.from = from;
  d.to = to;
  d.at_micros = at_micros;
  d.created_at_micros = r.created_at_micros;
  if (d.creation()) d.attributes = r.attributes;
  batch.Put(keys::StatsDelta(seq), EncodeDelta(d));
}

Result<uint64_t> FoldedThrough(const Store& store) {
  auto value = store.Get(keys::kStatsFoldedThrough);
  if (!value) return Fail(value.error());
  if (!*value) return uint64_t{0};
  if ((*value)->size() != 8) {
    return Fail(Status::DataLoss("corrupt statistics fold cursor"));
  }
  return ReadBigEndian64(**value);
}

// A stored u64 count (8 bytes, big-endian); 0 when absent.
Result<uint64_t> ReadCount(std::string_view bytes) {
  if (bytes.size() != 8) {
    return Fail(Status::DataLoss("corrupt statistics count"));
  }
  return ReadBigEndian64(bytes);
}

Result<uint64_t> UnreadableCount(const Store& store) {
  auto value = store.Get(keys::kStatsUnreadable);
  if (!value) return Fail(value.error());
  if (!*value) return uint64_t{0};
  return ReadCount(**value);
}

}  // namespace

size_t StatsIndex::Stage(leveldb::WriteBatch& batch,
                         const codec::StoredRecord& r, uint64_t first_seq) {
  uint64_t seq = first_seq;
  auto put = [&](RecordState from, RecordState to, int64_t at_micros) {
    PutDelta(batch, seq++, r, from, to, at_micros);
  };
  RecordState at = RecordState::kActive;
  if (r.stored_state) {
    at = *r.stored_state;
  } else {
    put(at, at, r.created_at_micros);
  }
  // Each step rightwards the record took since it was stored, at its own
  // instant (several in one write when a deadline caught it up).
  if (at == RecordState::kActive && r.state != RecordState::kActive &&
      r.closed_at_micros != 0) {
    put(at, RecordState::kClosed, r.closed_at_micros);
    at = RecordState::kClosed;
  }
  if (at < RecordState::kBlocked && r.state >= RecordState::kBlocked &&
      r.blocked_at_micros != 0) {
    put(at, RecordState::kBlocked, r.blocked_at_micros);
    at = RecordState::kBlocked;
  }
  if (at < RecordState::kErased && r.state == RecordState::kErased) {
    put(at, RecordState::kErased,
        r.erased_at_micros != 0 ? r.erased_at_micros : r.updated_at_micros);
    at = RecordState::kErased;
  }
  // A state reached with no instant of its own (never written so): counted
  // at the record's last update.
  if (at < r.state) put(at, r.state, r.updated_at_micros);
  return static_cast<size_t>(seq - first_seq);
}

Result<uint64_t> StatsIndex::NextDelta(const Store& store) {
  const size_t key_size = keys::kStatsDeltaPrefix.size() + 8;
  // Past the greatest well-formed delta key from `from` on, at least
  // `next`: what Open falls back to when a key does not decode.
  auto scan = [&](std::string_view from, uint64_t next) -> Result<uint64_t> {
    CUSTOS_RETURN_IF_ERROR(store.Scan(
        keys::kStatsDeltaPrefix, from,
        [&](std::string_view key, std::string_view) {
          if (key.size() == key_size) {
            next = std::max(
                next, keys::NumberAfter(key, keys::kStatsDeltaPrefix) + 1);
          }
          return true;
        }));
    return next;
  };
  auto value = store.Get(keys::kStatsFoldedThrough);
  if (!value) return Fail(value.error());
  if (*value && (*value)->size() != 8) {
    // A cursor that does not decode fails Fold and Read (they report it),
    // not Open: every delta key is read instead. The folded deltas are
    // deleted, so the stored floor "m:stats_next_delta" (which the caller
    // takes if larger) is what keeps the next number past them.
    return scan({}, 1);
  }
  const uint64_t cursor = *value ? ReadBigEndian64(**value) : 0;
  uint64_t next = cursor + 1;
  // From past the cursor: the folded deltas' deletion markers are not
  // stepped over.
  const std::string from = keys::StatsDelta(cursor + 1);
  auto last = store.LastKey(keys::kStatsDeltaPrefix, from);
  if (!last) return Fail(last.error());
  if (*last) {
    // A key of the wrong length (no build writes one) is skipped, not an
    // error at Open: the well-formed ones are read one by one.
    if ((*last)->size() != key_size) return scan(from, next);
    next =
        std::max(next, keys::NumberAfter(**last, keys::kStatsDeltaPrefix) + 1);
  }
  return next;
}

Status StatsIndex::Initialize(RecordStore& records) {
  constexpr size_t kPerWrite = 1000;
  auto marker = store_.Get(keys::kStatsIndexed);
  if (!marker) return marker.error();
  if (*marker) return Status::Ok();
  WriteLock lock = store_.Lock();
  leveldb::WriteBatch batch;
  size_t in_batch = 0;
  Status failure;
  auto flush = [&] {
    auto ticket = store_.Apply(lock, batch, {}, "indexing statistics");
    if (!ticket) return ticket.error();
    batch.Clear();
    in_batch = 0;
    return Status::Ok();
  };
  // What an interrupted Initialize (or a restore's erasures) left goes
  // first: every record is staged again below.
  CUSTOS_RETURN_IF_ERROR(store_.Scan(
      keys::kStatsPrefix, {}, [&](std::string_view key, std::string_view) {
        batch.Delete(ToSlice(key));
        if (++in_batch == kPerWrite) failure = flush();
        return failure.ok();
      }));
  CUSTOS_RETURN_IF_ERROR(failure);
  batch.Delete(ToSlice(keys::kStatsFoldedThrough));
  CUSTOS_RETURN_IF_ERROR(flush());
  CUSTOS_RETURN_IF_ERROR(store_.Scan(
      keys::kRecordPrefix, {}, [&](std::string_view, std::string_view value) {
        auto record = codec::DecodeRecord(value);
        if (!record) return true;  // Not countable; the rest are.
        record->stored_state.reset();
        failure = records.StageStatistics(lock, batch, *record);
        if (!failure.ok()) return false;
        if (++in_batch == kPerWrite) failure = flush();
        return failure.ok();
      }));
  CUSTOS_RETURN_IF_ERROR(failure);
  batch.Put(ToSlice(keys::kStatsIndexed), "");
  auto ticket = store_.Apply(lock, batch, {}, "indexing statistics");
  if (!ticket) return ticket.error();
  lock.Unlock();
  return store_.WaitDurable(*ticket);
}

Result<size_t> StatsIndex::Fold(size_t budget) {
  // One fold at a time (maintenance, Sweep, FoldStatistics): each chunk
  // reads the cursor the one before it wrote.
  std::lock_guard<std::mutex> one_fold(fold_mutex_);
  size_t folded = 0;
  std::optional<Store::Ticket> last;
  while (folded < budget) {
    // The write lock for one chunk at a time, so writers wait for a chunk,
    // not the whole fold. Read under it: every delta numbered so far was
    // applied in the lock hold that numbered it, so the deltas read are
    // all those up to the last one read, and every delta written from now
    // on is numbered after them.
    WriteLock lock = store_.Lock();
    auto cursor = FoldedThrough(store_);
    if (!cursor) return Fail(cursor.error());
    uint64_t through = *cursor;
    std::vector<std::pair<std::string, std::string>> deltas;
    const size_t chunk = std::min(kFoldChunk, budget - folded);
    // From the first delta not folded: the folded ones' deletion markers
    // stay in the files until compacted, and a seek passes them by.
    CUSTOS_RETURN_IF_ERROR(
        store_.Scan(keys::kStatsDeltaPrefix, keys::StatsDelta(through + 1),
                    [&](std::string_view key, std::string_view value) {
                      if (deltas.size() == chunk) return false;
                      deltas.emplace_back(key, value);
                      return true;
                    }));
    if (deltas.empty()) break;
    std::map<std::string, KindAgg> aggregates;
    // The kinds whose aggregate does not decode, by their key: it is left
    // as it is (a query of its kind reports DataLoss), and their deltas
    // are dropped and counted as unreadable, so that one corrupt aggregate
    // does not keep every other kind's deltas pending for good (a review,
    // helper-125).
    std::set<std::string, std::less<>> corrupt;
    CUSTOS_RETURN_IF_ERROR(store_.Scan(
        keys::kStatsAggregatePrefix, {},
        [&](std::string_view key, std::string_view value) {
          auto agg = DecodeAggregate(value);
          if (!agg) {
            corrupt.emplace(key.substr(keys::kStatsAggregatePrefix.size()));
            return true;
          }
          aggregates[std::move(agg->first)] = std::move(agg->second);
          return true;
        }));
    leveldb::WriteBatch batch;
    std::map<std::string, bool> changed;
    uint64_t unreadable = 0;
    for (const auto& [key, value] : deltas) {
      batch.Delete(key);
      // A key of the wrong length (no build writes one) has no number: its
      // delta is dropped and counted, and the cursor stays at the last
      // well-formed one (a seek from past it no longer meets this key).
      const bool numbered = key.size() == keys::kStatsDeltaPrefix.size() + 8;
      if (numbered) {
        through =
            std::max(through, keys::NumberAfter(key, keys::kStatsDeltaPrefix));
      }
      auto delta = DecodeDelta(value);
      if (!numbered || !delta || corrupt.contains(delta->kind)) {
        // Never countable: dropped and counted, so the rest fold on.
        ++unreadable;
        continue;
      }
      aggregates[delta->kind].Add(*delta);
      changed[delta->kind] = true;
    }
    if (unreadable > 0) {
      auto before = UnreadableCount(store_);
      if (!before) return Fail(before.error());
      std::string count;
      AppendBigEndian64(count, *before + unreadable);
      batch.Put(ToSlice(keys::kStatsUnreadable), count);
    }
    for (const auto& [kind, unused] : changed) {
      batch.Put(keys::StatsAggregate(kind),
                EncodeAggregate(kind, aggregates[kind]));
    }
    std::string cursor_value;
    AppendBigEndian64(cursor_value, through);
    batch.Put(ToSlice(keys::kStatsFoldedThrough), cursor_value);
    auto ticket = store_.Apply(lock, batch, {}, "folding statistics");
    if (!ticket) return Fail(ticket.error());
    last = *ticket;
    folded += deltas.size();
  }
  if (last) CUSTOS_RETURN_IF_ERROR(store_.WaitDurable(*last));
  return folded;
}

Result<Statistics> StatsIndex::Read(const StatisticsQuery& query,
                                    Timestamp now) const {
  Statistics out;
  out.generated_at = now;
  out.query = query;
  auto cursor = FoldedThrough(store_);
  if (!cursor) return Fail(cursor.error());
  std::map<std::string, KindAgg> kinds;
  std::vector<Delta> pending;
  Status failure;
  auto wanted = [&query](const std::string& kind) {
    return query.kind.empty() || kind == query.kind;
  };
  // One scan, so one snapshot: the deltas not folded ("st:d:", from the
  // cursor: a seek past the folded ones' deletion markers), then the
  // aggregates ("st:k:"). A fold since the cursor was read only means
  // more deletion markers to pass: what it folded is deleted in this
  // snapshot and counted in its aggregates.
  const size_t delta_key_size = keys::kStatsDeltaPrefix.size() + 8;
  CUSTOS_RETURN_IF_ERROR(
      store_.Scan(keys::kStatsPrefix, keys::StatsDelta(*cursor + 1),
                  [&](std::string_view key, std::string_view value) {
                    if (key.starts_with(keys::kStatsAggregatePrefix)) {
                      // Another kind's aggregate is not even decoded: one
                      // that does not decode must not fail a query of
                      // another kind (a review, helper-125).
                      const std::string kind(
                          key.substr(keys::kStatsAggregatePrefix.size()));
                      if (!wanted(kind)) return true;
                      auto agg = DecodeAggregate(value);
                      if (!agg) {
                        failure = agg.error();
                        return false;
                      }
                      if (wanted(agg->first)) {
                        kinds[std::move(agg->first)] = std::move(agg->second);
                      }
                      return true;
                    }
                    if (key == keys::kStatsUnreadable) {
                      auto count = ReadCount(value);
                      if (!count) {
                        failure = count.error();
                        return false;
                      }
                      out.unreadable += *count;
                      return true;
                    }
                    if (!key.starts_with(keys::kStatsDeltaPrefix)) return true;
                    auto delta = DecodeDelta(value);
                    // As Fold: a key of the wrong length is unreadable.
                    if (!delta || key.size() != delta_key_size) {
                      ++out.unreadable;  // As Fold: skipped, counted.
                      return true;
                    }
                    if (wanted(delta->kind))
                      pending.push_back(std::move(*delta));
                    return true;
                  }));
  CUSTOS_RETURN_IF_ERROR(failure);
  // In Fold's order: onto the aggregates, by number (the caps depend on
  // it).
  for (const Delta& d : pending) kinds[d.kind].Add(d);
  out.pending = pending.size();
  for (const auto& [kind, agg] : kinds) {
    out.kinds.push_back(ToStatistics(kind, agg, query));
    AddMonth(out.total, out.kinds.back().total);
  }
  return out;
}

}  // namespace custos
