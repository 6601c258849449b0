#include "storage/sealing.h"

#include <cstring>

#include "crypto/aead.h"
#include "storage/codec.h"

namespace custos::sealing {
namespace {

// Associated data is built straight into its Bytes, sized once: the same
// bytes as appending to a string and copying it, with one allocation.
// (Written by memcpy: GCC 12 -O3 misreports vector::insert of a
// string_view's chars as -Wstringop-overflow.)
void Append(Bytes& out, std::string_view s) {
  if (s.empty()) return;
  const size_t at = out.size();
  out.resize(at + s.size());
  std::memcpy(out.data() + at, s.data(), s.size());
}
void AppendBigEndian64(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<uint8_t>((v >> (8 * (7 - i))) & 0xff));
  }
}

}  // namespace

Bytes PartAd(uint64_t record_id, std::string_view subject_id,
             uint64_t version) {
  constexpr std::string_view kTag{"custos-part-v1\0", 15};
  Bytes ad;
  ad.reserve(kTag.size() + 16 + subject_id.size());
  Append(ad, kTag);
  AppendBigEndian64(ad, record_id);
  AppendBigEndian64(ad, version);
  Append(ad, subject_id);
  return ad;
}

Bytes NoteAd(std::string_view what, uint64_t record_id,
             std::string_view subject_id, int64_t at_micros) {
  Bytes ad;
  ad.reserve(7 + what.size() + 4 + 16 + subject_id.size());
  Append(ad, "custos-");
  Append(ad, what);
  Append(ad, std::string_view("-v1\0", 4));
  AppendBigEndian64(ad, record_id);
  AppendBigEndian64(ad, static_cast<uint64_t>(at_micros));
  Append(ad, subject_id);
  return ad;
}

Bytes IdentifierAd(std::string_view subject_id) {
  constexpr std::string_view kTag{"custos-subject-identifier-v1\0", 29};
  Bytes ad;
  ad.reserve(kTag.size() + subject_id.size());
  Append(ad, kTag);
  Append(ad, subject_id);
  return ad;
}

Bytes SealFields(const crypto::SecretKey& key, const std::vector<Field>& fields,
                 const Bytes& ad) {
  Bytes plain = codec::EncodeFields(fields);
  Bytes sealed = crypto::Seal(key, plain, ad);
  crypto::Wipe(plain);
  return sealed;
}

Result<std::vector<Field>> OpenFields(const crypto::SecretKey& key,
                                      const Bytes& sealed, const Bytes& ad,
                                      std::string_view what) {
  auto plain = crypto::Open(key, sealed, ad);
  if (!plain) {
    return Fail(Status::DataLoss(std::string(what) + " failed to decrypt"));
  }
  auto fields = codec::DecodeFields(*plain);
  crypto::Wipe(*plain);
  return fields;
}

Bytes SealIdentifier(const crypto::SecretKey& key, std::string_view identifier,
                     std::string_view subject_id) {
  return crypto::Seal(key, identifier, IdentifierAd(subject_id));
}

Result<std::string> OpenIdentifier(const crypto::SecretKey& key,
                                   const Bytes& sealed,
                                   std::string_view subject_id) {
  auto plain = crypto::Open(key, sealed, IdentifierAd(subject_id));
  if (!plain) {
    return Fail(Status::DataLoss("a subject identifier failed to decrypt"));
  }
  std::string identifier(plain->begin(), plain->end());
  crypto::Wipe(*plain);
  return identifier;
}

void SplitContest(std::vector<Field> fields, std::string& statement,
                  std::vector<Field>& corrected) {
  for (Field& f : fields) {
    if (statement.empty() && f.name == kStatementField) {
      statement = std::move(f.value);
    } else {
      corrected.push_back(std::move(f));
    }
  }
}

}  // namespace custos::sealing
