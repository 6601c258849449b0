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
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/keyed_hash.h"
#include "crypto/secret_key.h"
#include "storage/codec.h"
#include "storage/deadline_keys.h"
#include "storage/keystore.h"
#include "storage/store.h"

namespace custos {

class Subjects {
 public:
  // New subjects registered ahead of the write that first uses them: their
  // keys are in the keystore (durable once MakeDurable returned), their
  // entries not yet written. A record must never be durable before its
  // subject's key (the kernel may write the records log back at any time),
  // so keys are made durable first, outside the write lock, sharing one
  // keystore fsync among concurrent creators.
  struct Prepared {
    struct Subject {
      std::string id;
      SharedKey key;
      std::string encoded;  // The subject entry.
      bool used = false;    // Taken by FindOrCreate.
    };
    std::map<std::string, Subject> by_index_key;
    // The blind-index key of each identifier given to Prepare, in the
    // order given (a keyed hash: computed once per identifier).
    std::vector<std::string> index_keys;
    uint64_t ticket = 0;  // The keystore write to wait for (0: none).
  };

  // Arguments REQUIRE: outlive this object (but the key, which it owns).
  // With `sync_writes`, MakeDurable waits for the keystore's fsync.
  Subjects(Store& store, Keystore& keystore, crypto::SecretKey blind_index_key,
           const Clock& clock, bool sync_writes);

  // For each identifier with no live subject now, a new subject id and data
  // key, the key stored in the keystore.
  Result<Prepared> Prepare(const std::vector<std::string_view>& identifiers);
  // Makes the prepared keys durable (with sync_writes).
  Status MakeDurable(const Prepared& prepared);
  // Drops prepared keys that were not used, or all of them when the write
  // that used them failed (`committed` false). Best effort: an unused key
  // left behind is harmless.
  void DropUnused(Prepared& prepared, bool committed);

  // The subject named by `identifier`, the `position`th (from 0) of the
  // identifiers given to Prepare, as it is now: the live one, else a
  // prepared one, whose entry and blind index are added to `batch`. One
  // batch never uses one prepared subject twice. (If the identifier was
  // live at Prepare but shredded since, a new subject is made here, its key
  // made durable under the lock.) `unapplied` maps the blind-index keys of
  // subjects already written to a batch that is not applied yet (creates
  // of other callers staged before this one, to be written together) to
  // their ids: such a subject is found there, not made twice; a subject
  // this call writes is added to it. REQUIRES: `identifier` is that
  // identifier (its blind index is the one Prepare computed).
  Result<std::string> FindOrCreate(
      const WriteLock& lock, size_t position, std::string_view identifier,
      leveldb::WriteBatch& batch, Prepared& prepared,
      std::map<std::string, std::string>& unapplied);

  // The live subject of `identifier`. NotFound if none or shredded.
  Result<std::string> Find(std::string_view identifier) const;

  // The stored subject entry. NotFound if there is none.
  Result<codec::StoredSubject> Read(std::string_view subject_id) const;

  // The subject's data key; nullptr once shredded (or never created).
  Result<SharedKey> Key(const std::string& subject_id) const;
  // Writes `event`, a disclosure about subject `subject_id` (a lookup, a
  // history page, a report), under the write lock a shred takes, unless
  // the subject's key is gone by then: NotFound("subject not found"), and
  // the caller returns nothing of theirs (no event is sealed with no key,
  // nothing is answered after the shred). Errors: reading the key, the
  // commit's.
  Status CommitWhileLive(const std::string& subject_id, const Event& event,
                         std::string_view what) const;

  // The retiring key of a subject being re-keyed; nullptr otherwise.
  Result<SharedKey> RetiringKey(const std::string& subject_id) const;

  // The subject's external identifier, opened with `key` (or, failing
  // that, as OpenFields says). DataLoss if it fails to decrypt.
  Result<std::string> Identifier(std::string_view subject_id,
                                 const crypto::SecretKey& key) const;
  // The same, opened from the subject's sealed identifier as cached in
  // memory (ciphertext only, as stored), so that a disclosing read need not
  // read the subject from LevelDB each time; read (and cached) when absent
  // or when it does not open under `key` (re-sealed by a re-key since:
  // then with Identifier's fallback to the retiring key).
  Result<std::string> CachedIdentifier(const std::string& subject_id,
                                       const crypto::SecretKey& key) const;

  // Opens a ciphertext of the subject with `key`, the subject's key as the
  // caller looked it up; if that fails, with its retiring key and then its
  // key as it is now: while the subject is re-keyed (storage/rekeyer.h)
  // its ciphertexts are under either. DataLoss("<what> failed to decrypt")
  // if none opens it.
  // `bucket` is the deadline bucket the ciphertext is sealed under (the
  // record's erase_bucket; storage/deadline_keys.h): each key tried is then
  // combined with the bucket's key. DataLoss too once the bucket's key was
  // destroyed.
  Result<std::vector<Field>> OpenFields(const std::string& subject_id,
                                        const crypto::SecretKey& key,
                                        uint64_t bucket,
                                        const codec::Bytes& sealed,
                                        const codec::Bytes& ad,
                                        std::string_view what) const;
  // Seals `fields` under `key` (the subject's current data key) in
  // `bucket`, as OpenFields opens them. DataLoss once the bucket's key was
  // destroyed.
  Result<codec::Bytes> SealFields(const crypto::SecretKey& key, uint64_t bucket,
                                  const std::vector<Field>& fields,
                                  const codec::Bytes& ad) const;

  // The deadline keys (over the same keystore).
  DeadlineKeys& deadline_keys() const { return deadline_keys_; }

  // Forgets the cached blind index of a subject being shredded (see Live).
  // REQUIRES: the write lock; called after the index entry was deleted.
  void ForgetIndex(const crypto::Digest& index);
  // Forgets the cached sealed identifier of a subject being shredded, so
  // that CachedIdentifier reads the subject (its identifier cleared) even
  // while the key's destruction has failed and the key still opens it.
  // REQUIRES: the write lock; called after the shred's intent was written.
  void ForgetIdentifier(const std::string& subject_id);

  // The blind index stored in `subject`. DataLoss if malformed.
  static Result<crypto::Digest> BlindIndexOf(
      const codec::StoredSubject& subject);

 private:
  // open(key), or failing that open() under the other keys OpenFields says.
  template <typename Open>
  auto WithFallback(const std::string& subject_id, const crypto::SecretKey& key,
                    const Open& open) const -> decltype(open(key));
  // Creates a subject for `identifier` with index key `index_key`.
  Result<Prepared::Subject> NewSubject(std::string_view identifier,
                                       const crypto::Digest& index,
                                       uint64_t* ticket);
  // The live subject at `index_key`, or nullopt. Index entries are cached
  // in memory (every create looks its subjects up, usually twice): a
  // bounded map from blind-index key to subject id, emptied when full,
  // an entry forgotten when its subject is shredded, and every hit checked
  // against the subject's key, so a stale entry can never name a shredded
  // subject.
  Result<std::optional<std::string>> Live(const std::string& index_key) const;

  Store& store_;
  Keystore& keystore_;
  mutable DeadlineKeys deadline_keys_;
  const crypto::SecretKey blind_index_key_;
  const Clock& clock_;
  const bool sync_writes_;
  static constexpr size_t kIndexCacheCapacity = 4096;
  mutable std::mutex index_mu_;
  mutable std::unordered_map<std::string, std::string> index_cache_;
  // Bumped by ForgetIndex: a lookup that read the store before a shred
  // forgot its entry must not put it back.
  mutable uint64_t index_generation_ = 0;
  // Subjects' sealed identifiers (CachedIdentifier). Ciphertext only; the
  // identifier in clear is never kept. Bounded: emptied when full.
  static constexpr size_t kSealedIdentifierCapacity = 4096;
  mutable std::mutex identifiers_mu_;
  mutable std::unordered_map<std::string, codec::Bytes> sealed_identifiers_;
  // Bumped by ForgetIdentifier: a read of the subject made before a shred
  // forgot its entry must not put it back.
  mutable uint64_t identifiers_generation_ = 0;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_SUBJECTS_H_
