#include "storage/subjects.h"

#include <array>

#include "storage/keys.h"
#include "storage/leveldb_util.h"
#include "storage/sealing.h"

namespace custos {

Subjects::Subjects(Store& store, Keystore& keystore,
                   crypto::SecretKey blind_index_key, const Clock& clock,
                   bool sync_writes)
    : store_(store),
      keystore_(keystore),
      deadline_keys_(keystore),
      blind_index_key_(std::move(blind_index_key)),
      clock_(clock),
      sync_writes_(sync_writes) {}

Result<std::optional<std::string>> Subjects::Live(
    const std::string& index_key) const {
  std::optional<std::string> existing;
  uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(index_mu_);
    if (auto it = index_cache_.find(index_key); it != index_cache_.end()) {
      existing = it->second;
    }
    generation = index_generation_;
  }
  if (!existing) {
    auto stored = store_.Get(index_key);
    if (!stored) return Fail(stored.error());
    if (!*stored) return std::optional<std::string>();
    existing = std::move(*stored);
    std::lock_guard<std::mutex> lock(index_mu_);
    if (generation == index_generation_) {
      if (index_cache_.size() >= kIndexCacheCapacity) index_cache_.clear();
      index_cache_.emplace(index_key, *existing);
    }
  }
  auto key = Key(*existing);
  if (!key) return Fail(key.error());
  // An index entry of a shredded subject (a shred interrupted before its
  // index entry went) names no live subject.
  if (!*key) return std::optional<std::string>();
  return existing;
}

void Subjects::ForgetIndex(const crypto::Digest& index) {
  std::lock_guard<std::mutex> lock(index_mu_);
  index_cache_.erase(keys::BlindIndex(AsStringView(index)));
  ++index_generation_;
}

Result<Subjects::Prepared::Subject> Subjects::NewSubject(
    std::string_view identifier, const crypto::Digest& index,
    uint64_t* ticket) {
  std::array<uint8_t, 16> random;
  crypto::RandomBytes(random);
  Prepared::Subject s;
  // Built by insert: GCC 12 -O3 misreports "s" + string as -Wrestrict.
  s.id = crypto::ToHex(random);
  s.id.insert(0, 1, 's');
  s.key = keystore_.NewKey();
  codec::StoredSubject subject;
  subject.id = s.id;
  subject.blind_index.assign(index.begin(), index.end());
  subject.sealed_identifier = sealing::SealIdentifier(*s.key, identifier, s.id);
  subject.created_at_micros = ToMicros(clock_.Now());
  s.encoded = codec::EncodeSubject(subject);
  auto written = keystore_.PutKey(s.id, s.key);
  if (!written) return Fail(written.error());
  *ticket = *written;
  return s;
}

Result<Subjects::Prepared> Subjects::Prepare(
    const std::vector<std::string_view>& identifiers) {
  Prepared prepared;
  prepared.index_keys.reserve(identifiers.size());
  for (std::string_view identifier : identifiers) {
    const crypto::Digest index =
        crypto::BlindIndex(blind_index_key_, identifier);
    prepared.index_keys.push_back(keys::BlindIndex(AsStringView(index)));
    const std::string& index_key = prepared.index_keys.back();
    if (prepared.by_index_key.contains(index_key)) continue;
    auto live = Live(index_key);
    if (!live) return Fail(live.error());
    if (*live) continue;
    auto subject = NewSubject(identifier, index, &prepared.ticket);
    if (!subject) {
      DropUnused(prepared, false);
      return Fail(subject.error());
    }
    prepared.by_index_key.emplace(index_key, std::move(*subject));
  }
  return prepared;
}

Status Subjects::MakeDurable(const Prepared& prepared) {
  if (!sync_writes_ || prepared.ticket == 0) return Status::Ok();
  return keystore_.WaitDurable(prepared.ticket);
}

void Subjects::DropUnused(Prepared& prepared, bool committed) {
  for (auto& [index_key, subject] : prepared.by_index_key) {
    if (committed && subject.used) continue;
    (void)keystore_.DropUnusedKey(subject.id);
  }
  prepared.by_index_key.clear();
}

Result<std::string> Subjects::FindOrCreate(
    const WriteLock& /*lock*/, size_t position, std::string_view identifier,
    leveldb::WriteBatch& batch, Prepared& prepared,
    std::map<std::string, std::string>& unapplied) {
  if (position >= prepared.index_keys.size()) {
    return Fail(Status::Internal("an identifier that was not prepared"));
  }
  const std::string& index_key = prepared.index_keys[position];
  auto it = prepared.by_index_key.find(index_key);
  if (it != prepared.by_index_key.end() && it->second.used) {
    return it->second.id;  // Named twice in one batch.
  }
  // Made by another caller's create staged in the same write.
  if (auto made = unapplied.find(index_key); made != unapplied.end()) {
    return made->second;
  }
  auto live = Live(index_key);
  if (!live) return Fail(live.error());
  if (*live) return **live;
  if (it == prepared.by_index_key.end()) {
    // Live at Prepare, shredded since: a new subject now, its key durable
    // before the record that uses it.
    uint64_t ticket = 0;
    // The digest the key was made of (its last bytes).
    crypto::Digest index;
    const std::string_view digest =
        std::string_view(index_key).substr(index_key.size() - index.size());
    for (size_t i = 0; i < index.size(); ++i) {
      index[i] = static_cast<uint8_t>(digest[i]);
    }
    auto subject = NewSubject(identifier, index, &ticket);
    if (!subject) return Fail(subject.error());
    it = prepared.by_index_key.emplace(index_key, std::move(*subject)).first;
    if (sync_writes_) CUSTOS_RETURN_IF_ERROR(keystore_.WaitDurable(ticket));
  }
  it->second.used = true;
  batch.Put(keys::Subject(it->second.id), it->second.encoded);
  batch.Put(index_key, it->second.id);
  unapplied.emplace(index_key, it->second.id);
  return it->second.id;
}

Result<std::string> Subjects::Find(std::string_view identifier) const {
  const crypto::Digest index = crypto::BlindIndex(blind_index_key_, identifier);
  auto live = Live(keys::BlindIndex(AsStringView(index)));
  if (!live) return Fail(live.error());
  if (!*live) return Fail(Status::NotFound("subject not found"));
  return **live;
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

Status Subjects::CommitWhileLive(const std::string& subject_id,
                                 const Event& event,
                                 std::string_view what) const {
  WriteLock lock = store_.Lock();
  auto key = Key(subject_id);
  if (!key) return key.error();
  if (!*key) return Status::NotFound("subject not found");
  leveldb::WriteBatch batch;
  return store_.Commit(std::move(lock), batch, {event}, what);
}

Result<SharedKey> Subjects::RetiringKey(const std::string& subject_id) const {
  return keystore_.RetiringKey(subject_id);
}

template <typename Open>
auto Subjects::WithFallback(const std::string& subject_id,
                            const crypto::SecretKey& key,
                            const Open& open) const -> decltype(open(key)) {
  auto opened = open(key);
  if (opened || opened.error().code() != StatusCode::kDataLoss) return opened;
  // During a re-key: the retiring key, then the current one (it may have
  // replaced `key` since the caller looked it up).
  for (auto lookup : {&Subjects::RetiringKey, &Subjects::Key}) {
    auto other = (this->*lookup)(subject_id);
    if (!other) return Fail(other.error());
    if (*other == nullptr || other->get() == &key) continue;
    auto retried = open(**other);
    if (retried) return retried;
  }
  return opened;
}

Result<std::string> Subjects::Identifier(std::string_view subject_id,
                                         const crypto::SecretKey& key) const {
  auto subject = Read(subject_id);
  if (!subject) return Fail(subject.error());
  return WithFallback(std::string(subject_id), key,
                      [&](const crypto::SecretKey& k) {
                        return sealing::OpenIdentifier(
                            k, subject->sealed_identifier, subject_id);
                      });
}

Result<std::string> Subjects::CachedIdentifier(
    const std::string& subject_id, const crypto::SecretKey& key) const {
  std::optional<codec::Bytes> cached;
  uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(identifiers_mu_);
    auto it = sealed_identifiers_.find(subject_id);
    if (it != sealed_identifiers_.end()) cached = it->second;
    generation = identifiers_generation_;
  }
  if (cached) {
    auto identifier = sealing::OpenIdentifier(key, *cached, subject_id);
    if (identifier) return identifier;
  }
  auto subject = Read(subject_id);
  if (!subject) return Fail(subject.error());
  auto identifier =
      sealing::OpenIdentifier(key, subject->sealed_identifier, subject_id);
  {
    std::lock_guard<std::mutex> lock(identifiers_mu_);
    if (generation == identifiers_generation_) {
      if (sealed_identifiers_.size() >= kSealedIdentifierCapacity) {
        sealed_identifiers_.clear();
      }
      sealed_identifiers_.insert_or_assign(
          subject_id, std::move(subject->sealed_identifier));
    }
  }
  if (identifier) return identifier;
  // Sealed under another key than `key`: a re-key is under way or has just
  // replaced `key`.
  return Identifier(subject_id, key);
}

void Subjects::ForgetIdentifier(const std::string& subject_id) {
  std::lock_guard<std::mutex> lock(identifiers_mu_);
  sealed_identifiers_.erase(subject_id);
  ++identifiers_generation_;
}

Result<std::vector<Field>> Subjects::OpenFields(const std::string& subject_id,
                                                const crypto::SecretKey& key,
                                                uint64_t bucket,
                                                const codec::Bytes& sealed,
                                                const codec::Bytes& ad,
                                                std::string_view what) const {
  return WithFallback(
      subject_id, key,
      [&](const crypto::SecretKey& k) -> Result<std::vector<Field>> {
        auto part_key = deadline_keys_.PartKey(k, bucket);
        if (!part_key) return Fail(part_key.error());
        return sealing::OpenFields(*part_key ? **part_key : k, sealed, ad,
                                   what);
      });
}

Result<codec::Bytes> Subjects::SealFields(const crypto::SecretKey& key,
                                          uint64_t bucket,
                                          const std::vector<Field>& fields,
                                          const codec::Bytes& ad) const {
  auto part_key = deadline_keys_.PartKey(key, bucket);
  if (!part_key) return Fail(part_key.error());
  return sealing::SealFields(*part_key ? **part_key : key, fields, ad);
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
