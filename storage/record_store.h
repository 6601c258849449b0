// Internal to storage/: stored records and the deadline index. Owns the key
// families "r:" and "d:" and the counter "m:next_record_id". Put is the one
// place a record is written: it recomputes the record's next deadline under
// its kind's policy (a legal hold postpones an erasure to the hold's end)
// and moves the deadline-index entry in the same batch, so the index never
// disagrees with the records (DESIGN section 3).
//
// Thread safety: thread-safe; Put and AllocateId REQUIRE the write lock.

#ifndef CUSTOS_STORAGE_RECORD_STORE_H_
#define CUSTOS_STORAGE_RECORD_STORE_H_

#include <leveldb/write_batch.h>

#include <cstdint>
#include <optional>

#include "base/clock.h"
#include "base/status.h"
#include "storage/codec.h"
#include "storage/holds.h"
#include "storage/policies.h"
#include "storage/store.h"

namespace custos {

class RecordStore {
 public:
  // Arguments REQUIRE: outlive this object.
  RecordStore(Store& store, const Policies& policies, const Holds& holds,
              const Clock& clock)
      : store_(store), policies_(policies), holds_(holds), clock_(clock) {}

  // Reads the record id counter. Errors: DataLoss, mapped LevelDB.
  Status Load();

  // The stored record (its stored state: see RecordView for the effective
  // one). NotFound if there is none; DataLoss if it does not decode.
  Result<codec::StoredRecord> Read(uint64_t id) const;

  // The next record id, its counter advanced in `batch`. The id is taken
  // only when the batch is written: call Taken() after a successful Apply.
  uint64_t AllocateId(const WriteLock& lock, leveldb::WriteBatch& batch);
  void Taken(const WriteLock& /*lock*/, uint64_t id) { next_id_ = id + 1; }

  // Adds `r` to `batch` with its next deadline (set in `r`) and its
  // deadline-index entry. Legal holds are judged at `holds_at` (default:
  // now). InvalidArgument if the deadline cannot be represented;
  // ResourceExhausted if the encoded record would be larger than
  // kMaxStoredRecordBytes (storage/limits.h). On error `batch` may hold the
  // deletion of r's old index entry: discard it.
  Status Put(const WriteLock& lock, leveldb::WriteBatch& batch,
             codec::StoredRecord& r,
             std::optional<int64_t> holds_at = std::nullopt) const;

 private:
  Store& store_;
  const Policies& policies_;
  const Holds& holds_;
  const Clock& clock_;
  uint64_t next_id_ = 1;  // Guarded by the write lock.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_RECORD_STORE_H_
