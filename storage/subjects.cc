#include "storage/subjects.h"

#include <array>

#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "storage/sealing.h"

namespace custos {

Subjects::Subjects(Store& store, Keystore& keystore,
                   crypto::SecretKey blind_index_key, const Clock& clock)
    : store_(store),
      keystore_(keystore),
      blind_index_key_(std::move(blind_index_key)),
      clock_(clock) {}

Result<std::string> Subjects::FindOrCreate(
    const WriteLock& /*lock*/, std::string_view identifier,
    leveldb::WriteBatch& batch, std::map<std::string, std::string>& created) {
  const crypto::Digest index = crypto::BlindIndex(blind_index_key_, identifier);
  const std::string index_key = keys::BlindIndex(AsStringView(index));
  if (auto it = created.find(index_key); it != created.end()) return it->second;
  auto existing = store_.Get(index_key);
  if (!existing) return Fail(existing.error());
  if (*existing) {
    auto key = Key(**existing);
    if (!key) return Fail(key.error());
    if (*key) return **existing;
    // The index points at a shredded subject (a shred interrupted before
    // its index entry went): the identifier gets a new subject below.
  }

  std::array<uint8_t, 16> random;
  crypto::RandomBytes(random);
  // Built by insert: GCC 12 -O3 misreports "s" + string as -Wrestrict.
  std::string subject_id = crypto::ToHex(random);
  subject_id.insert(0, 1, 's');
  SharedKey dek = keystore_.NewKey();
  codec::StoredSubject subject;
  subject.id = subject_id;
  subject.blind_index.assign(index.begin(), index.end());
  subject.sealed_identifier =
      sealing::SealIdentifier(*dek, identifier, subject_id);
  subject.created_at_micros = ToMicros(clock_.Now());
  // The key goes to the keystore before the records database references
  // it, and the store makes the keystore durable first; a crash in between
  // leaves only an unused wrapped key.
  CUSTOS_RETURN_IF_ERROR(keystore_.PutKey(subject_id, std::move(dek)));
  batch.Put(keys::Subject(subject_id), codec::EncodeSubject(subject));
  batch.Put(index_key, subject_id);
  created[index_key] = subject_id;
  return subject_id;
}

Result<std::string> Subjects::Find(std::string_view identifier) const {
  const crypto::Digest index = crypto::BlindIndex(blind_index_key_, identifier);
  auto subject_id = store_.Get(keys::BlindIndex(AsStringView(index)));
  if (!subject_id) return Fail(subject_id.error());
  if (!*subject_id) return Fail(Status::NotFound("subject not found"));
  auto key = Key(**subject_id);
  if (!key) return Fail(key.error());
  if (!*key) return Fail(Status::NotFound("subject not found"));
  return **subject_id;
}

Result<codec::StoredSubject> Subjects::Read(std::string_view subject_id) const {
  auto value = store_.Get(keys::Subject(subject_id));
  if (!value) return Fail(value.error());
  if (!*value) return Fail(Status::NotFound("subject not found"));
  return codec::DecodeSubject(**value);
}

Result<SharedKey> Subjects::Key(const std::string& subject_id) const {
  return keystore_.GetKey(subject_id);
}

Result<std::string> Subjects::Identifier(std::string_view subject_id,
                                         const crypto::SecretKey& key) const {
  auto subject = Read(subject_id);
  if (!subject) return Fail(subject.error());
  return sealing::OpenIdentifier(key, subject->sealed_identifier, subject_id);
}

Result<crypto::Digest> Subjects::BlindIndexOf(
    const codec::StoredSubject& subject) {
  crypto::Digest index{};
  if (subject.blind_index.size() != index.size()) {
    return Fail(Status::DataLoss("corrupt subject"));
  }
  std::copy(subject.blind_index.begin(), subject.blind_index.end(),
            index.begin());
  return index;
}

}  // namespace custos
