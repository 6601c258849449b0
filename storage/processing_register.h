// The register of processing activities (GDPR Article 30; issue 15,
// docs/accountability.md "Register of processing activities"), generated
// from the live store. Nothing in it is personal data: kinds, periods,
// field names, principals (the authorities and officers who hold or
// received records), counts, and the store's security measures.
//
// Internal to storage/ (the builder); the value types are public
// (Engine::ProcessingRegister, report/processing_register_*.h).
//
// Thread safety: the builder is thread-safe; it reads without the write
// lock, so counts are those of one moment per record, not of one instant.

#ifndef CUSTOS_STORAGE_PROCESSING_REGISTER_H_
#define CUSTOS_STORAGE_PROCESSING_REGISTER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/types.h"

namespace custos {

// One record kind's processing.
struct RegisterKind {
  std::string kind;
  // The retention periods in force (Period::ToString, ISO 8601); empty when
  // the policy has none, and every one empty when the kind has no policy.
  std::string close_after, block_after, erase_after, history_after;
  bool has_policy = false;
  // The kind's stored policy failed its MAC when the store was opened, or
  // the kind has records and no stored policy (docs/storage.md,
  // "Policies"): has_policy is false, and the periods in force are unknown
  // until an admin sets it again.
  bool policy_unauthenticated = false;
  // The categories of personal data: the field names its records' personal
  // parts have held (recorded at creation and rectification), sorted.
  std::vector<std::string> field_names;
  // The categories of recipients: every principal that owns records of the
  // kind or was granted one, with its roles; redacted principals receive
  // attributes only.
  struct Recipient {
    std::string principal_id;
    std::vector<Role> roles;
    bool redacted = false;
    bool owner = false;    // Owns records of the kind.
    bool grantee = false;  // Was granted records of the kind.
    size_t records = 0;    // Records of the kind it owns or was granted.
  };
  std::vector<Recipient> recipients;  // By principal id.
  // Records by effective state at the register's instant.
  size_t active = 0, closed = 0, blocked = 0, erased = 0;
  // Distinct subjects named by records of the kind not yet erased.
  size_t subjects = 0;
};

// The security measures in place (docs/crypto.md, docs/retention.md).
struct RegisterSecurity {
  std::string encryption;  // The ciphers and the unit each key protects.
  uint32_t format_version = 0;
  std::vector<uint32_t> kek_versions;  // Ascending.
  int64_t deadline_bucket_seconds = 0;
  bool compact_after_erasure = false;
  int64_t erasure_compaction_delay_seconds = 0;
  int64_t backup_retention_seconds = 0;
};

struct ProcessingRegister {
  Timestamp generated_at;
  std::vector<RegisterKind> kinds;  // By kind: every policy's and every
                                    // kind with records.
  // Records that could not be read (DataLoss: a corrupt stored record),
  // counted in no kind, as CountRecordsByState counts them.
  uint64_t unreadable_records = 0;
  RegisterSecurity security;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_PROCESSING_REGISTER_H_
