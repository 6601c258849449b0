// Internal to storage/: crypto-shredding a subject (DESIGN section 4,
// docs/storage.md "Shredding"), in the order of the protocol:
//   Shred     1. intent ("q:shred:") + subject marked and unlinked from its
//                identifier, with the shred event, in the records database
//                (written, not synced); 2. key destroyed, ledger written and
//                the keystore intent ("i:") put, in the keystore, in the
//                shred's one synchronous write, and the cached key evicted;
//                then reported. The destroyed key's bytes are queued for the
//                erasure compaction, never compacted on this path, so a
//                shred costs the same at any store size. Asked again for a
//                subject marked shredded whose key is still there (its
//                destruction failed), only 2 is repeated, at the shred's
//                time: one shred event, one shred time.
//   Recover   at Open (and first in Complete): a records-side intent whose
//                key still exists (1 durable, 2 not) is finished before
//                anyone can read with that key; a keystore intent whose
//                records side is missing (2 durable, 1 lost to a power
//                loss) has that side written again, in the order of the
//                shreds (shred time, then subject id), so their events
//                are too; then, with the records database synced, the
//                keystore intents are dropped.
//   Complete  later, in bounded steps: each of the subject's records is
//                brought to its effective state (RecordViews::CatchUp: the
//                transitions in force are written, with their events), the
//                shredded subject's parts, flag notes and contest contents,
//                and its id, are dropped from it, a record none of whose
//                parts is readable any more becomes ERASED at the last of
//                its subjects' shreds (unless already ERASED before), its
//                history index is dropped, and then its subject entry (with
//                the blind index), its hold index entries and its id in
//                holds; the whole records database is then compacted, so
//                nothing in the files names the subject any more.
//
// Thread safety: thread-safe; each step holds the write lock.

#ifndef CUSTOS_STORAGE_SHREDDER_H_
#define CUSTOS_STORAGE_SHREDDER_H_

#include <cstddef>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/secret_key.h"
#include "storage/erasure.h"
#include "storage/holds.h"
#include "storage/keystore.h"
#include "storage/record_store.h"
#include "storage/record_view.h"
#include "storage/store.h"
#include "storage/subjects.h"

namespace custos {

class Shredder {
 public:
  struct Units {
    Store& store;
    Keystore& keystore;
    Subjects& subjects;
    const Holds& holds;
    RecordStore& record_store;
    const RecordViews& views;
    Erasure& erasure;
    const Clock& clock;
  };
  // `ledger_key` keys the erasure ledger's hash of the blind index.
  Shredder(Units units, crypto::SecretKey ledger_key)
      : u_(units), ledger_key_(std::move(ledger_key)) {}

  // Engine::ShredSubject, by `admin`.
  Status Shred(const PrincipalInfo& admin, std::string_view subject_id);
  // Finishes intents whose key was not destroyed yet, and writes again
  // the records side of shreds whose keystore intent survived it (see
  // above); then drops the keystore intents.
  Status Recover();
  // Engine::CompleteShreds.
  Result<size_t> Complete(size_t budget,
                          const WorkProgressFn& progress = nullptr);

 private:
  // The witness key of the subject's stored wrapped key
  // (Erasure::WitnessKey), "" when it has none.
  Result<std::string> KeyWitness(std::string_view subject_id);
  // Destroys the subject's key and puts its keystore intent (with
  // `witness`, KeyWitness's answer read under the same hold of the write
  // lock), in one synchronous keystore write.
  Status DestroyKey(const codec::StoredSubject& subject, std::string_view by,
                    std::string_view witness);
  // The keystore intents: for each, the records side written again if it
  // is missing; then, once the records database is synced, dropped.
  Status RecoverKeystoreIntents();
  // Every hold in force at `at` that covers a record of the subject: on
  // the subject, on one of its records, or on another subject of one of
  // its records.
  Result<std::vector<HoldView>> HoldsCovering(std::string_view subject_id,
                                              int64_t at) const;
  // Whether a record names both subjects (their "x:" entries). Reads `other`'s
  // record list, and one entry of `subject`'s per record in it.
  Result<bool> ShareARecord(const std::string& subject,
                            const std::string& other) const;
  // Adds to `batch` the removal of what still names a subject whose
  // records are done: its entry, its hold index entries, its id in its
  // subject holds; and queues the compaction of the whole database.
  // REQUIRES: the write lock.
  Status Unlink(leveldb::WriteBatch& batch, const std::string& subject_id);

  Units u_;
  const crypto::SecretKey ledger_key_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_SHREDDER_H_
