// Internal to storage/: data subjects (DESIGN section 1). Owns the key
// families "s:" (the subject entry), "b:" (the keyed blind index of the
// external identifier) and "x:" (the subject's records). A subject's data
// key lives in the keystore; its external identifier is stored only sealed
// under that key.
//
// Thread safety: thread-safe; FindOrCreate REQUIRES the write lock.

#ifndef CUSTOS_STORAGE_SUBJECTS_H_
#define CUSTOS_STORAGE_SUBJECTS_H_

#include <leveldb/write_batch.h>

#include <map>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/keyed_hash.h"
#include "crypto/secret_key.h"
#include "storage/codec.h"
#include "storage/keystore.h"
#include "storage/store.h"

namespace custos {

class Subjects {
 public:
  // Arguments REQUIRE: outlive this object (but the key, which it owns).
  Subjects(Store& store, Keystore& keystore, crypto::SecretKey blind_index_key,
           const Clock& clock);

  // The subject named by `identifier`; when there is none (or only a
  // shredded one), a new subject with a new data key: the key is stored in
  // the keystore at once, the subject entry and blind index are added to
  // `batch`. `created` maps blind-index keys to subjects created in this
  // batch, so one batch never creates one identifier twice.
  Result<std::string> FindOrCreate(const WriteLock& lock,
                                   std::string_view identifier,
                                   leveldb::WriteBatch& batch,
                                   std::map<std::string, std::string>& created);

  // The live subject of `identifier`. NotFound if none or shredded.
  Result<std::string> Find(std::string_view identifier) const;

  // The stored subject entry. NotFound if there is none.
  Result<codec::StoredSubject> Read(std::string_view subject_id) const;

  // The subject's data key; nullptr once shredded (or never created).
  Result<SharedKey> Key(const std::string& subject_id) const;

  // The subject's external identifier, opened with `key`. DataLoss if it
  // fails to decrypt.
  Result<std::string> Identifier(std::string_view subject_id,
                                 const crypto::SecretKey& key) const;

  // The blind index stored in `subject`. DataLoss if malformed.
  static Result<crypto::Digest> BlindIndexOf(
      const codec::StoredSubject& subject);

 private:
  Store& store_;
  Keystore& keystore_;
  const crypto::SecretKey blind_index_key_;
  const Clock& clock_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_SUBJECTS_H_
