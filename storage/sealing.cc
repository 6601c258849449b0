#include "storage/sealing.h"

#include "crypto/aead.h"
#include "storage/codec.h"
#include "storage/leveldb_util.h"

namespace custos::sealing {
namespace {

Bytes ToBytes(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

Bytes PartAd(uint64_t record_id, std::string_view subject_id,
             uint64_t version) {
  std::string ad = "custos-part-v1";
  ad.push_back('\0');
  AppendBigEndian64(ad, record_id);
  AppendBigEndian64(ad, version);
  ad += subject_id;
  return ToBytes(ad);
}

Bytes NoteAd(std::string_view what, uint64_t record_id,
             std::string_view subject_id, int64_t at_micros) {
  std::string ad = "custos-";
  ad += what;
  ad += "-v1";
  ad.push_back('\0');
  AppendBigEndian64(ad, record_id);
  AppendBigEndian64(ad, static_cast<uint64_t>(at_micros));
  ad += subject_id;
  return ToBytes(ad);
}

Bytes IdentifierAd(std::string_view subject_id) {
  std::string ad = "custos-subject-identifier-v1";
  ad.push_back('\0');
  ad += subject_id;
  return ToBytes(ad);
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
