// Internal to storage/: a LevelDB snapshot that releases itself, and a
// scan of everything it holds. Used by backups (storage/backup.h) to read
// both databases as they were at one instant while writes continue.
//
// Thread safety: a value; ForEach may run concurrently with writes to the
// database. REQUIRES: the database outlives the snapshot.

#ifndef CUSTOS_STORAGE_DB_SNAPSHOT_H_
#define CUSTOS_STORAGE_DB_SNAPSHOT_H_

#include <leveldb/db.h>

#include <functional>
#include <memory>
#include <string_view>
#include <utility>

#include "base/status.h"
#include "storage/leveldb_util.h"

namespace custos {

class DbSnapshot {
 public:
  explicit DbSnapshot(leveldb::DB& db)
      : db_(&db), snapshot_(db.GetSnapshot()) {}
  DbSnapshot(DbSnapshot&& other) noexcept
      : db_(std::exchange(other.db_, nullptr)),
        snapshot_(std::exchange(other.snapshot_, nullptr)) {}
  DbSnapshot& operator=(DbSnapshot&&) = delete;
  DbSnapshot(const DbSnapshot&) = delete;
  ~DbSnapshot() {
    if (db_ != nullptr) db_->ReleaseSnapshot(snapshot_);
  }

  // Calls fn(key, value) for every entry, in key order, until fn returns
  // an error, which is returned. Errors: mapped LevelDB errors.
  Status ForEach(
      const std::function<Status(std::string_view key, std::string_view value)>&
          fn) const {
    leveldb::ReadOptions ro;
    ro.snapshot = snapshot_;
    ro.fill_cache = false;
    std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(ro));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      CUSTOS_RETURN_IF_ERROR(fn(ToView(it->key()), ToView(it->value())));
    }
    return FromLevelDb(it->status(), "reading a snapshot");
  }

 private:
  leveldb::DB* db_;
  const leveldb::Snapshot* snapshot_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_DB_SNAPSHOT_H_
