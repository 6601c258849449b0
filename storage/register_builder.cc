#include "storage/register_builder.h"

#include <leveldb/write_batch.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "storage/codec.h"
#include "storage/deadline_keys.h"
#include "storage/keys.h"

namespace custos {
namespace {

int64_t Seconds(std::chrono::microseconds d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

}  // namespace

Result<ProcessingRegister> RegisterBuilder::Build() const {
  ProcessingRegister out;
  const Timestamp now = u_.clock.Now();
  out.generated_at = now;
  std::map<std::string, RegisterKind> kinds;
  auto kind_entry = [&kinds](const std::string& kind) -> RegisterKind& {
    RegisterKind& k = kinds[kind];
    k.kind = kind;
    return k;
  };
  for (const RetentionPolicy& p : u_.policies.List()) {
    RegisterKind& k = kind_entry(p.kind);
    k.has_policy = true;
    if (p.close_after) k.close_after = p.close_after->ToString();
    if (p.block_after) k.block_after = p.block_after->ToString();
    k.erase_after = p.erase_after.ToString();
    k.history_after = p.history_after.ToString();
  }
  for (const std::string& kind : u_.policies.Unauthenticated()) {
    kind_entry(kind).policy_unauthenticated = true;
  }
  // The field-name catalog: "fk:" kind NUL name.
  CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
      keys::kKindFieldPrefix, {}, [&](std::string_view key, std::string_view) {
        const std::string_view rest = key.substr(keys::kKindFieldPrefix.size());
        const size_t nul = rest.find('\0');
        if (nul == std::string_view::npos) return true;
        kind_entry(std::string(rest.substr(0, nul)))
            .field_names.emplace_back(rest.substr(nul + 1));
        return true;
      }));

  // Every record once: its effective state, who holds or received it, the
  // subjects it names.
  struct Holder {
    bool owner = false, grantee = false;
    size_t records = 0;
  };
  std::map<std::string, std::map<std::string, Holder>> holders;  // By kind.
  std::map<std::string, std::set<std::string>> subjects;         // By kind.
  std::map<std::string, std::set<std::string>> categories;       // By kind.
  const int64_t at = ToMicros(now);
  Status failure;
  CUSTOS_RETURN_IF_ERROR(u_.store.Scan(
      keys::kRecordPrefix, {}, [&](std::string_view, std::string_view value) {
        // One record that cannot be read must not stop the register
        // (statistics, lists and counts skip and count it too: a review,
        // helper-121).
        auto record = codec::DecodeRecord(value);
        if (!record) {
          if (record.error().code() != StatusCode::kDataLoss) {
            failure = record.error();
            return false;
          }
          ++out.unreadable_records;
          return true;
        }
        // Its effective state, a shred's erasure included (until
        // CompleteShreds writes it down, its stored state does not show).
        leveldb::WriteBatch scratch;
        int64_t erased_by_shred = 0;
        auto caught_up =
            u_.views.CatchUp(*record, at, scratch, &erased_by_shred);
        if (!caught_up) {
          if (caught_up.error().code() != StatusCode::kDataLoss) {
            failure = caught_up.error();
            return false;
          }
          ++out.unreadable_records;
          return true;
        }
        if (erased_by_shred != 0) record->state = RecordState::kErased;
        RegisterKind& k = kind_entry(record->kind);
        switch (record->state) {
          case RecordState::kActive:
            ++k.active;
            break;
          case RecordState::kClosed:
            ++k.closed;
            break;
          case RecordState::kBlocked:
            ++k.blocked;
            break;
          case RecordState::kErased:
            ++k.erased;
            break;
        }
        auto& by_principal = holders[record->kind];
        Holder& owner = by_principal[record->owner];
        owner.owner = true;
        ++owner.records;
        for (const std::string& g : record->grants) {
          if (g == record->owner) continue;
          Holder& grantee = by_principal[g];
          grantee.grantee = true;
          ++grantee.records;
        }
        if (record->state != RecordState::kErased) {
          subjects[record->kind].insert(record->subject_ids.begin(),
                                        record->subject_ids.end());
          // Personal data held beyond the catalog's field names: the
          // subject's identifier (every part holds it), flag notes and
          // contest statements (a review, helper-121).
          // Every flag seals a note and every contest a statement (both
          // fields present, maybe empty); a record sealed under a deadline
          // bucket keeps them in its "pb:" entry, not in the "r:" value
          // read here (a review, helper-125: they were missed). A shred's
          // completion drops its subject's, and the subject id with them
          // (helper-126: still counted).
          std::set<std::string>& held = categories[record->kind];
          if (!record->parts.empty()) held.insert("identifier");
          if (std::any_of(
                  record->flags.begin(), record->flags.end(),
                  [](const auto& f) { return !f.subject_id.empty(); })) {
            held.insert("flag:note");
          }
          if (std::any_of(
                  record->contests.begin(), record->contests.end(),
                  [](const auto& c) { return !c.subject_id.empty(); })) {
            held.insert("contest:statement");
          }
        }
        return true;
      }));
  CUSTOS_RETURN_IF_ERROR(failure);

  for (auto& [kind, k] : kinds) {
    // Records of a kind without a policy: none is created without one and
    // none is deleted, so it was removed from the files without the key;
    // unknown retention, like one failing its MAC (docs/storage.md).
    if (!k.has_policy && !holders[kind].empty()) {
      k.policy_unauthenticated = true;
    }
    // The catalog's names and the categories held, sorted, each once.
    std::set<std::string>& names = categories[kind];
    names.insert(k.field_names.begin(), k.field_names.end());
    k.field_names.assign(names.begin(), names.end());
    k.subjects = subjects[kind].size();
    for (const auto& [id, holder] : holders[kind]) {
      RegisterKind::Recipient r;
      r.principal_id = id;
      r.owner = holder.owner;
      r.grantee = holder.grantee;
      r.records = holder.records;
      // A principal removed since keeps its id; its roles are unknown.
      if (auto info = u_.principals.Get(id)) {
        r.roles = info->roles;
        r.redacted = info->redacted;
      }
      k.recipients.push_back(std::move(r));
    }
    out.kinds.push_back(std::move(k));
  }

  RegisterSecurity& s = out.security;
  s.encryption =
      "XChaCha20-Poly1305 (libsodium): each data subject's personal data "
      "under its own data key, wrapped under a key-encryption key under the "
      "master key; a closed record's under a key derived from its subject's "
      "key and its erase deadline's hour key, destroyed at erasure";
  s.format_version = Store::kFormatVersion;
  s.kek_versions = u_.keystore.KekVersions();
  s.deadline_bucket_seconds = DeadlineKeys::kBucketMicros / 1'000'000;
  s.compact_after_erasure = u_.options.compact_after_erasure;
  s.erasure_compaction_delay_seconds =
      Seconds(u_.options.erasure_compaction_delay);
  s.backup_retention_seconds = Seconds(u_.options.backup_retention);
  return out;
}

}  // namespace custos
