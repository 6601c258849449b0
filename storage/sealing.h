// Internal to storage/: how personal data is sealed. The associated-data
// formats that bind each ciphertext to its place (DESIGN section 6), and the
// one way sealed fields are opened: the plaintext buffer is wiped on every
// path, so no caller can forget it.
//
// A failed open is DataLoss, naming only what failed ("a flag note failed to
// decrypt"), as crypto::Open says nothing more.
//
// Thread safety: pure functions.

#ifndef CUSTOS_STORAGE_SEALING_H_
#define CUSTOS_STORAGE_SEALING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "crypto/secret_key.h"
#include "storage/types.h"

namespace custos::sealing {

using Bytes = std::vector<uint8_t>;

// A personal part: bound to record, version and subject.
Bytes PartAd(uint64_t record_id, std::string_view subject_id, uint64_t version);
// Flag notes ("flag") and contest statements ("contest"): bound to record,
// subject, what and when.
Bytes NoteAd(std::string_view what, uint64_t record_id,
             std::string_view subject_id, int64_t at_micros);
// A subject's sealed external identifier.
Bytes IdentifierAd(std::string_view subject_id);

// Seals `fields` (encoded as in codec::EncodeFields) under `key` and `ad`,
// wiping the encoded plaintext.
Bytes SealFields(const crypto::SecretKey& key, const std::vector<Field>& fields,
                 const Bytes& ad);
// Opens what SealFields sealed. DataLoss("<what> failed to decrypt") if it
// does not authenticate, DataLoss if it does not decode.
Result<std::vector<Field>> OpenFields(const crypto::SecretKey& key,
                                      const Bytes& sealed, const Bytes& ad,
                                      std::string_view what);

// Seals and opens a subject's external identifier.
Bytes SealIdentifier(const crypto::SecretKey& key, std::string_view identifier,
                     std::string_view subject_id);
Result<std::string> OpenIdentifier(const crypto::SecretKey& key,
                                   const Bytes& sealed,
                                   std::string_view subject_id);

// A contest is sealed as one field list: the statement first, named
// "statement", then the corrected fields.
inline constexpr std::string_view kStatementField = "statement";
// Splits an opened contest into its statement and corrected fields.
void SplitContest(std::vector<Field> fields, std::string& statement,
                  std::vector<Field>& corrected);

}  // namespace custos::sealing

#endif  // CUSTOS_STORAGE_SEALING_H_
