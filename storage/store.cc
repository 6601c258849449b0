#include "storage/store.h"

#include <leveldb/iterator.h>

#include "storage/codec.h"
#include "storage/keys.h"
#include "storage/leveldb_util.h"

namespace custos {

Store::Store(std::unique_ptr<leveldb::DB> db, LogSyncEnv& env, bool sync_writes,
             bool is_new)
    : db_(std::move(db)),
      sync_writes_(sync_writes),
      is_new_(is_new),
      group_([&env] { return env.SyncLogs(); }) {}

Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(const Options& options,
                                           LogSyncEnv& env) {
  auto db = OpenLevelDb(options.data_dir + "/records",
                        options.create_if_missing, &env, options.records_db);
  if (!db) {
    if (db.error().code() == StatusCode::kInvalidArgument &&
        !options.create_if_missing) {
      return Fail(Status::NotFound("no Custos store in " + options.data_dir));
    }
    return Fail(db.error());
  }
  std::string format;
  leveldb::Status s =
      (*db)->Get(leveldb::ReadOptions(), ToSlice(keys::kFormat), &format);
  const bool is_new = s.IsNotFound();
  if (!is_new) {
    if (!s.ok()) return Fail(FromLevelDb(s, "reading format version"));
    auto version = codec::DecodeFormatVersion(format);
    if (!version) return Fail(version.error());
    if (*version != kFormatVersion) {
      // Older stores are refused, not migrated (docs/decisions.md).
      return Fail(Status::FailedPrecondition(
          "data directory format version " + std::to_string(*version) +
          " is not supported (this build reads version " +
          std::to_string(kFormatVersion) +
          (*version < kFormatVersion ? "; older stores are not migrated)"
                                     : ")")));
    }
  }
  return std::unique_ptr<Store>(
      new Store(std::move(*db), env, options.sync_writes, is_new));
}

Status Store::Initialize(leveldb::WriteBatch& batch, Timestamp now) {
  batch.Put(ToSlice(keys::kFormat),
            codec::EncodeFormatInfo(kFormatVersion, ToMicros(now)));
  leveldb::WriteOptions wo;
  wo.sync = true;
  return FromLevelDb(db_->Write(wo, &batch), "writing format version");
}

Status Store::OpenHistory(crypto::SecretKey audit_key, KeyLookup keys) {
  auto history = History::Open(*db_, std::move(audit_key));
  if (!history) return history.error();
  history_ = std::move(*history);
  key_lookup_ = std::move(keys);
  return Status::Ok();
}

Result<std::optional<std::string>> Store::Get(
    std::string_view key, const leveldb::Snapshot* snapshot) const {
  std::string value;
  leveldb::ReadOptions ro;
  ro.snapshot = snapshot;
  leveldb::Status s = db_->Get(ro, ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return Fail(FromLevelDb(s, "reading the store"));
  return std::optional<std::string>(std::move(value));
}

std::shared_ptr<const leveldb::Snapshot> Store::TakeSnapshot() const {
  leveldb::DB* db = db_.get();
  return std::shared_ptr<const leveldb::Snapshot>(
      db->GetSnapshot(),
      [db](const leveldb::Snapshot* s) { db->ReleaseSnapshot(s); });
}

Status Store::Scan(
    std::string_view prefix, std::string_view start,
    const std::function<bool(std::string_view key, std::string_view value)>& fn)
    const {
  std::unique_ptr<leveldb::Iterator> it(
      db_->NewIterator(leveldb::ReadOptions()));
  const leveldb::Slice p = ToSlice(prefix);
  // A start before the prefix starts at the prefix (a seek to it would
  // land on a key outside the prefix and end the scan at once).
  for (it->Seek(ToSlice(start < prefix ? prefix : start));
       it->Valid() && it->key().starts_with(p); it->Next()) {
    if (!fn(ToView(it->key()), ToView(it->value()))) break;
  }
  return FromLevelDb(it->status(), "scanning the store");
}

Result<std::optional<std::string>> Store::LastKey(std::string_view prefix,
                                                  std::string_view from) const {
  std::unique_ptr<leveldb::Iterator> it(
      db_->NewIterator(leveldb::ReadOptions()));
  const leveldb::Slice p = ToSlice(prefix);
  it->Seek(ToSlice(from < prefix ? prefix : from));
  if (!it->Valid() || !it->key().starts_with(p)) {
    CUSTOS_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading the store"));
    return std::optional<std::string>();
  }
  // One key is there: step back from the first key after the prefix.
  std::string end(prefix);
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xff) {
    end.pop_back();
  }
  if (!end.empty()) {
    end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
    it->Seek(end);
  }
  if (end.empty() || !it->Valid()) {
    it->SeekToLast();
  } else {
    it->Prev();
  }
  CUSTOS_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading the store"));
  if (!it->Valid() || !it->key().starts_with(p)) {
    return Fail(Status::Internal("the store changed under a read"));
  }
  return std::optional<std::string>(ToView(it->key()));
}

Result<Store::Ticket> Store::Apply(const WriteLock& lock,
                                   leveldb::WriteBatch& batch,
                                   const std::vector<Event>& events,
                                   std::string_view what, bool force_sync) {
  if (!lock.Holds(write_mu_)) {
    return Fail(Status::Internal("a write without the store's write lock"));
  }
  CUSTOS_RETURN_IF_ERROR(group_.failure());
  auto pending = history_->Stage(batch, events, key_lookup_);
  if (!pending) return Fail(pending.error());
  // Never synced here: durability is WaitDurable's, shared by a group.
  Status written =
      FromLevelDb(db_->Write(leveldb::WriteOptions(), &batch), what);
  if (!written.ok()) {
    // What LevelDB holds now is unknown to us: refuse every later change.
    group_.Fail(written);
    return Fail(written);
  }
  history_->Commit(*pending);
  return Ticket{group_.Wrote(), force_sync || sync_writes_};
}

Status Store::WaitDurable(const Ticket& ticket) {
  if (!ticket.sync) return Status::Ok();
  return group_.WaitDurable(ticket.seq);
}

Status Store::SyncApplied(const WriteLock& lock) {
  if (!lock.Holds(write_mu_)) {
    return Status::Internal("a sync without the store's write lock");
  }
  // A store that failed first: WaitDurable alone returns OK when every
  // write it counted is synced, and a failed LevelDB write is not counted.
  CUSTOS_RETURN_IF_ERROR(group_.failure());
  return group_.WaitDurable(group_.writes());
}

Status Store::Commit(WriteLock lock, leveldb::WriteBatch& batch,
                     const std::vector<Event>& events, std::string_view what,
                     bool force_sync) {
  auto ticket = Apply(lock, batch, events, what, force_sync);
  lock.Unlock();
  if (!ticket) return ticket.error();
  return WaitDurable(*ticket);
}

void Store::CompactRange(std::string_view first, std::string_view last) {
  const leveldb::Slice begin = ToSlice(first), end = ToSlice(last);
  db_->CompactRange(&begin, &end);
}

void Store::CompactAll() { db_->CompactRange(nullptr, nullptr); }

void Store::FlushMemTable() {
  // LevelDB's CompactRange flushes the memtable first; no table holds the
  // probe key, which sorts after every key of the store (storage/keys.h: all
  // begin with a printable prefix), so nothing else is compacted.
  const leveldb::Slice probe("\xff", 1);
  db_->CompactRange(&probe, &probe);
}

}  // namespace custos
