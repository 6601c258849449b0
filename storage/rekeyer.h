// Internal to storage/: re-keying a subject (DESIGN section 6; the protocol
// and its crash windows are in docs/crypto.md, "Re-keying a subject"). When
// a subject's data key may be compromised, every ciphertext under it (its
// records' parts, flag notes and contests, its sealed identifier, its
// access-history parts) is sealed again under a new key, and the old key is
// destroyed:
//   Rekey     1. intent ("q:rekey:") with the rekey event and a witness of
//                the old wrapped key, in the records database (synchronous);
//             2. key switch in the keystore (synchronous): the old key moves
//                to the retiring slot, the new one becomes current, so every
//                seal from then on uses it;
//             3. re-sealing, in batches of Options::rekey_batch_size under
//                the write lock, each batch moving the intent's cursor:
//                the identifier, the records (through "x:"), the history
//                (through its index); old ciphertexts witnessed and queued;
//             4. the retiring key destroyed (synchronous), after the last
//                batch is durable; the intent retired and the old key queued
//                for the keystore's compaction ("q:krekey:").
//   Recover   at Open: every intent left by a crash is finished (steps 2 to
//             4 as needed) before Open returns.
// Between batches the subject's ciphertexts are under either key; readers
// try both (Subjects::OpenFields, History::ForSubject's `retiring`).
//
// Thread safety: thread-safe; one re-key runs at a time, each batch under
// the write lock.

#ifndef CUSTOS_STORAGE_REKEYER_H_
#define CUSTOS_STORAGE_REKEYER_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"
#include "storage/erasure.h"
#include "storage/keystore.h"
#include "storage/record_store.h"
#include "storage/store.h"
#include "storage/subjects.h"
#include "storage/types.h"

namespace custos {

class Rekeyer {
 public:
  struct Units {
    Store& store;
    Keystore& keystore;
    Subjects& subjects;
    RecordStore& record_store;
    Erasure& erasure;
    const Clock& clock;
  };
  // `batch_size`: records, or history index entries, re-sealed per write
  // (0 counts as 1).
  Rekeyer(Units units, size_t batch_size)
      : u_(units), batch_size_(batch_size == 0 ? 1 : batch_size) {}

  // Engine::RekeySubject, by `admin`. NotFound for an unknown or shredded
  // subject. A subject whose earlier re-key was interrupted has that one
  // finished (no second key, no second event). A legal hold does not
  // prevent it: nothing is erased. Errors of a step leave the intent for
  // the next call or Open to finish; DataLoss if a ciphertext of the
  // subject opens under neither key.
  Status Rekey(const PrincipalInfo& admin, std::string_view subject_id);

  // Finishes every re-key a crash interrupted. At Open, before any read.
  Status Recover();

 private:
  // Where an interrupted re-key resumes: the intent's value.
  enum class Stage : uint8_t {
    kBegun = 0,    // Keys switched or not; nothing re-sealed yet.
    kRecords = 1,  // Identifier done; records after `cursor` (an id) left.
    kHistory = 2,  // Records done; history after `cursor` (a seq) left.
    kDestroy = 3,  // Everything re-sealed and durable; the old key left.
  };
  struct Intent {
    Stage stage = Stage::kBegun;
    uint64_t cursor = 0;
  };
  static std::string EncodeIntent(const Intent& intent);
  static Result<Intent> DecodeIntent(std::string_view value);

  // Runs the intent of `subject_id` to its end.
  Status Finish(const std::string& subject_id, Intent intent);
  // One step of the intent, in one batch under the lock; returns the next
  // intent, or nullopt once the re-key is over.
  Result<std::optional<Intent>> Step(const std::string& subject_id,
                                     const Intent& intent);
  // The subject's records after `after_id` (at most batch_size_) re-sealed
  // into `batch`; returns the last record id visited, 0 if none was left.
  Result<uint64_t> ResealRecords(const WriteLock& lock,
                                 leveldb::WriteBatch& batch,
                                 const std::string& subject_id,
                                 uint64_t after_id,
                                 const crypto::SecretKey& from,
                                 const crypto::SecretKey& to);

  Units u_;
  const size_t batch_size_;
  std::mutex mu_;  // One re-key at a time.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_REKEYER_H_
