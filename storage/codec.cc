#include "storage/codec.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <span>

#include "schema/storage.capnp.h"
#include "storage/capnp_value.h"

namespace custos::codec {
namespace {

using capnp_value::AsText;
using capnp_value::Decode;
using capnp_value::FromText;
using capnp_value::ToBytes;

capnp::Data::Reader AsData(const Bytes& b) {
  return capnp::Data::Reader(b.data(), b.size());
}
Bytes FromData(capnp::Data::Reader d) { return Bytes(d.begin(), d.end()); }

schema::Role ToSchema(Role r) {
  switch (r) {
    case Role::kUser:
      return schema::Role::USER;
    case Role::kOfficer:
      return schema::Role::OFFICER;
    case Role::kAuditor:
      return schema::Role::AUDITOR;
    case Role::kAdmin:
      return schema::Role::ADMIN;
  }
  return schema::Role::USER;
}
// nullopt for an enumerant this build does not know (a newer writer's):
// such a role grants nothing here.
std::optional<Role> FromSchema(schema::Role r) {
  switch (r) {
    case schema::Role::USER:
      return Role::kUser;
    case schema::Role::OFFICER:
      return Role::kOfficer;
    case schema::Role::AUDITOR:
      return Role::kAuditor;
    case schema::Role::ADMIN:
      return Role::kAdmin;
  }
  return std::nullopt;
}
schema::State ToSchema(RecordState s) {
  switch (s) {
    case RecordState::kActive:
      return schema::State::ACTIVE;
    case RecordState::kClosed:
      return schema::State::CLOSED;
    case RecordState::kBlocked:
      return schema::State::BLOCKED;
    case RecordState::kErased:
      return schema::State::ERASED;
  }
  return schema::State::ACTIVE;
}
Result<RecordState> FromSchema(schema::State s) {
  switch (s) {
    case schema::State::ACTIVE:
      return RecordState::kActive;
    case schema::State::CLOSED:
      return RecordState::kClosed;
    case schema::State::BLOCKED:
      return RecordState::kBlocked;
    case schema::State::ERASED:
      return RecordState::kErased;
  }
  return Fail(Status::DataLoss("corrupt stored record state"));
}

void SetFields(capnp::List<schema::Field>::Builder out,
               const std::vector<Field>& fields) {
  for (size_t i = 0; i < fields.size(); ++i) {
    out[i].setName(AsText(fields[i].name));
    out[i].setValue(AsText(fields[i].value));
  }
}

}  // namespace

std::string EncodeFormatInfo(uint32_t version, int64_t created_at_micros) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto info = message.initRoot<schema::FormatInfo>();
  info.setVersion(version);
  info.setCreatedAtMicros(created_at_micros);
  return ToBytes(message);
}

Result<uint32_t> DecodeFormatVersion(std::string_view bytes) {
  return Decode<schema::FormatInfo>(
      bytes, "format info",
      [](schema::FormatInfo::Reader r) { return r.getVersion(); });
}

std::string EncodePrincipal(const StoredPrincipal& p) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::Principal>();
  b.setId(AsText(p.info.id));
  b.setDisplayName(AsText(p.info.display_name));
  auto roles = b.initRoles(p.info.roles.size());
  for (size_t i = 0; i < p.info.roles.size(); ++i) {
    roles.set(i, ToSchema(p.info.roles[i]));
  }
  b.setRedacted(p.info.redacted);
  b.setCredentialHash(AsData(p.credential_hash));
  b.setRevoked(p.info.revoked);
  b.setCreatedAtMicros(ToMicros(p.info.created_at));
  b.setRevokedAtMicros(p.revoked_at_micros);
  return ToBytes(message);
}

Result<StoredPrincipal> DecodePrincipal(std::string_view bytes) {
  return Decode<schema::Principal>(
      bytes, "principal", [](schema::Principal::Reader r) {
        StoredPrincipal p;
        p.info.id = FromText(r.getId());
        p.info.display_name = FromText(r.getDisplayName());
        for (auto role : r.getRoles()) {
          if (auto known = FromSchema(role)) p.info.roles.push_back(*known);
        }
        p.info.redacted = r.getRedacted();
        p.info.revoked = r.getRevoked();
        p.info.created_at = FromMicros(r.getCreatedAtMicros());
        p.credential_hash = FromData(r.getCredentialHash());
        p.revoked_at_micros = r.getRevokedAtMicros();
        return p;
      });
}

std::string EncodeSubject(const StoredSubject& s) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::Subject>();
  b.setId(AsText(s.id));
  b.setBlindIndex(AsData(s.blind_index));
  b.setSealedIdentifier(AsData(s.sealed_identifier));
  b.setCreatedAtMicros(s.created_at_micros);
  b.setShredded(s.shredded);
  b.setShreddedAtMicros(s.shredded_at_micros);
  return ToBytes(message);
}

Result<StoredSubject> DecodeSubject(std::string_view bytes) {
  return Decode<schema::Subject>(
      bytes, "subject", [](schema::Subject::Reader r) {
        StoredSubject s;
        s.id = FromText(r.getId());
        s.blind_index = FromData(r.getBlindIndex());
        s.sealed_identifier = FromData(r.getSealedIdentifier());
        s.created_at_micros = r.getCreatedAtMicros();
        s.shredded = r.getShredded();
        s.shredded_at_micros = r.getShreddedAtMicros();
        return s;
      });
}

std::string EncodeRecord(const StoredRecord& r) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::Record>();
  b.setId(r.id);
  b.setKind(AsText(r.kind));
  b.setOwner(AsText(r.owner));
  auto grants = b.initGrants(r.grants.size());
  for (size_t i = 0; i < r.grants.size(); ++i)
    grants.set(i, AsText(r.grants[i]));
  auto attributes = b.initAttributes(r.attributes.size());
  for (size_t i = 0; i < r.attributes.size(); ++i) {
    attributes[i].setKey(AsText(r.attributes[i].key));
    attributes[i].setValue(AsText(r.attributes[i].value));
  }
  // Sealed under a bucket: the ciphertexts live in the "pb:" entry.
  const bool inline_sealed = r.erase_bucket == 0;
  auto parts = b.initParts(r.parts.size());
  for (size_t i = 0; i < r.parts.size(); ++i) {
    parts[i].setSubjectId(AsText(r.parts[i].subject_id));
    parts[i].setVersion(r.parts[i].version);
    if (inline_sealed) parts[i].setSealed(AsData(r.parts[i].sealed));
  }
  b.setSensitive(r.sensitive);
  b.setState(ToSchema(r.state));
  b.setVersion(r.version);
  b.setCreatedAtMicros(r.created_at_micros);
  b.setUpdatedAtMicros(r.updated_at_micros);
  b.setClosedAtMicros(r.closed_at_micros);
  b.setBlockedAtMicros(r.blocked_at_micros);
  b.setErasedAtMicros(r.erased_at_micros);
  auto flags = b.initFlags(r.flags.size());
  for (size_t i = 0; i < r.flags.size(); ++i) {
    flags[i].setBy(AsText(r.flags[i].by));
    flags[i].setAtMicros(r.flags[i].at_micros);
    flags[i].setSubjectId(AsText(r.flags[i].subject_id));
    if (!inline_sealed) continue;
    flags[i].setSealedNote(AsData(r.flags[i].sealed_note));
  }
  auto contests = b.initContests(r.contests.size());
  for (size_t i = 0; i < r.contests.size(); ++i) {
    contests[i].setBy(AsText(r.contests[i].by));
    contests[i].setAtMicros(r.contests[i].at_micros);
    contests[i].setSubjectId(AsText(r.contests[i].subject_id));
    if (inline_sealed) {
      contests[i].setSealedStatement(AsData(r.contests[i].sealed_statement));
    }
  }
  b.setNextDeadlineMicros(r.next_deadline_micros);
  b.setNextTransition(static_cast<schema::Transition>(r.next_transition));
  b.setOwnerChangedAtMicros(r.owner_changed_at_micros);
  b.setEraseBucket(r.erase_bucket);
  auto subject_ids = b.initSubjectIds(r.subject_ids.size());
  for (size_t i = 0; i < r.subject_ids.size(); ++i) {
    subject_ids.set(i, AsText(r.subject_ids[i]));
  }
  return ToBytes(message);
}

int64_t CloseAnchor(const StoredRecord& r) {
  return r.owner_changed_at_micros != 0 ? r.owner_changed_at_micros
                                        : r.updated_at_micros;
}

Result<StoredRecord> DecodeRecord(std::string_view bytes) {
  auto decoded = Decode<schema::Record>(
      bytes, "record", [](schema::Record::Reader b) -> Result<StoredRecord> {
        StoredRecord r;
        r.id = b.getId();
        r.kind = FromText(b.getKind());
        r.owner = FromText(b.getOwner());
        // Each list sized once: a record is read on every disclosure.
        const auto grants = b.getGrants();
        r.grants.reserve(grants.size());
        for (auto g : grants) r.grants.push_back(FromText(g));
        const auto attributes = b.getAttributes();
        r.attributes.reserve(attributes.size());
        for (auto a : attributes) {
          r.attributes.push_back(
              {FromText(a.getKey()), FromText(a.getValue())});
        }
        const auto parts = b.getParts();
        r.parts.reserve(parts.size());
        for (auto p : parts) {
          r.parts.push_back({FromText(p.getSubjectId()), p.getVersion(),
                             FromData(p.getSealed())});
        }
        r.sensitive = b.getSensitive();
        auto state = FromSchema(b.getState());
        if (!state) return Fail(state.error());
        r.state = *state;
        r.version = b.getVersion();
        r.created_at_micros = b.getCreatedAtMicros();
        r.updated_at_micros = b.getUpdatedAtMicros();
        r.closed_at_micros = b.getClosedAtMicros();
        r.blocked_at_micros = b.getBlockedAtMicros();
        r.erased_at_micros = b.getErasedAtMicros();
        for (auto f : b.getFlags()) {
          r.flags.push_back({FromText(f.getBy()), f.getAtMicros(),
                             FromText(f.getSubjectId()),
                             FromData(f.getSealedNote())});
        }
        for (auto c : b.getContests()) {
          r.contests.push_back({FromText(c.getBy()), c.getAtMicros(),
                                FromText(c.getSubjectId()),
                                FromData(c.getSealedStatement())});
        }
        const auto subject_ids = b.getSubjectIds();
        r.subject_ids.reserve(subject_ids.size());
        for (auto s : subject_ids) r.subject_ids.push_back(FromText(s));
        r.next_deadline_micros = b.getNextDeadlineMicros();
        r.indexed_deadline_micros = r.next_deadline_micros;
        r.stored_state = r.state;
        r.owner_changed_at_micros = b.getOwnerChangedAtMicros();
        r.close_anchor_as_stored = CloseAnchor(r);
        r.erase_bucket = b.getEraseBucket();
        r.sealed_stored_bucket = r.erase_bucket;
        r.sealed_pending = r.erase_bucket != 0;
        auto transition = static_cast<uint16_t>(b.getNextTransition());
        if (transition > static_cast<uint16_t>(Transition::kErase)) {
          return Fail(Status::DataLoss("corrupt stored record transition"));
        }
        r.next_transition = static_cast<Transition>(transition);
        return r;
      });
  if (!decoded) return Fail(decoded.error());
  return std::move(*decoded);
}

std::string EncodeSealedContents(const StoredRecord& r) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::SealedContents>();
  auto parts = b.initParts(r.parts.size());
  for (size_t i = 0; i < r.parts.size(); ++i) {
    parts.set(i, AsData(r.parts[i].sealed));
  }
  auto notes = b.initFlagNotes(r.flags.size());
  for (size_t i = 0; i < r.flags.size(); ++i) {
    notes.set(i, AsData(r.flags[i].sealed_note));
  }
  auto statements = b.initContestStatements(r.contests.size());
  for (size_t i = 0; i < r.contests.size(); ++i) {
    statements.set(i, AsData(r.contests[i].sealed_statement));
  }
  return ToBytes(message);
}

bool HasSealedContents(const StoredRecord& r) {
  return std::any_of(r.parts.begin(), r.parts.end(),
                     [](const StoredPart& p) { return !p.sealed.empty(); }) ||
         std::any_of(
             r.flags.begin(), r.flags.end(),
             [](const StoredFlag& f) { return !f.sealed_note.empty(); }) ||
         std::any_of(r.contests.begin(), r.contests.end(),
                     [](const StoredContest& c) {
                       return !c.sealed_statement.empty();
                     });
}

Status MergeSealedContents(std::string_view bytes, StoredRecord& r) {
  auto merged = Decode<schema::SealedContents>(
      bytes, "sealed contents",
      [&](schema::SealedContents::Reader b) -> Result<bool> {
        auto parts = b.getParts();
        auto notes = b.getFlagNotes();
        auto statements = b.getContestStatements();
        if (parts.size() != r.parts.size() || notes.size() != r.flags.size() ||
            statements.size() != r.contests.size()) {
          return Fail(
              Status::DataLoss("sealed contents do not match their record"));
        }
        for (size_t i = 0; i < r.parts.size(); ++i) {
          r.parts[i].sealed = FromData(parts[i]);
        }
        for (size_t i = 0; i < r.flags.size(); ++i) {
          r.flags[i].sealed_note = FromData(notes[i]);
        }
        for (size_t i = 0; i < r.contests.size(); ++i) {
          r.contests[i].sealed_statement = FromData(statements[i]);
        }
        return true;
      });
  if (!merged) return merged.error();
  return Status::Ok();
}

Result<std::vector<Bytes>> DecodeSealedContents(std::string_view bytes) {
  auto decoded = Decode<schema::SealedContents>(
      bytes, "sealed contents", [](schema::SealedContents::Reader b) {
        std::vector<Bytes> all;
        for (auto d : b.getParts()) all.push_back(FromData(d));
        for (auto d : b.getFlagNotes()) all.push_back(FromData(d));
        for (auto d : b.getContestStatements()) all.push_back(FromData(d));
        return all;
      });
  if (!decoded) return Fail(decoded.error());
  return std::move(*decoded);
}

std::string EncodeHold(const HoldView& h) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::Hold>();
  b.setId(AsText(h.id));
  b.setRecordId(h.record_id.value_or(0));
  b.setSubjectId(h.subject_id ? AsText(*h.subject_id) : "");
  b.setReason(AsText(h.reason));
  b.setSetBy(AsText(h.set_by));
  b.setSetAtMicros(ToMicros(h.set_at));
  b.setEndsAtMicros(ToMicros(h.ends_at));
  b.setReleasedAtMicros(h.released_at ? ToMicros(*h.released_at) : 0);
  b.setReleasedBy(AsText(h.released_by));
  return ToBytes(message);
}

Result<HoldView> DecodeHold(std::string_view bytes) {
  return Decode<schema::Hold>(bytes, "hold", [](schema::Hold::Reader b) {
    HoldView h;
    h.id = FromText(b.getId());
    if (b.getRecordId() != 0) h.record_id = b.getRecordId();
    if (b.getSubjectId().size() > 0) h.subject_id = FromText(b.getSubjectId());
    h.reason = FromText(b.getReason());
    h.set_by = FromText(b.getSetBy());
    h.set_at = FromMicros(b.getSetAtMicros());
    h.ends_at = FromMicros(b.getEndsAtMicros());
    if (b.getReleasedAtMicros() != 0) {
      h.released_at = FromMicros(b.getReleasedAtMicros());
    }
    h.released_by = FromText(b.getReleasedBy());
    return h;
  });
}

std::string EncodePolicy(const RetentionPolicy& p, int64_t set_at_micros) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::Policy>();
  b.setKind(AsText(p.kind));
  b.setCloseAfter(p.close_after ? p.close_after->ToString() : "");
  b.setBlockAfter(p.block_after ? p.block_after->ToString() : "");
  b.setEraseAfter(p.erase_after.ToString());
  b.setHistoryAfter(p.history_after.ToString());
  b.setSetAtMicros(set_at_micros);
  return ToBytes(message);
}

Result<RetentionPolicy> DecodePolicy(std::string_view bytes,
                                     int64_t* set_at_micros) {
  auto decoded = Decode<schema::Policy>(
      bytes, "policy",
      [set_at_micros](schema::Policy::Reader b) -> Result<RetentionPolicy> {
        RetentionPolicy p;
        if (set_at_micros != nullptr) *set_at_micros = b.getSetAtMicros();
        p.kind = FromText(b.getKind());
        auto parse = [](capnp::Text::Reader text) -> Result<Period> {
          auto period = ParsePeriod(std::string_view(text.cStr(), text.size()));
          if (!period) return Fail(Status::DataLoss("corrupt stored policy"));
          return period;
        };
        if (b.getCloseAfter().size() > 0) {
          auto period = parse(b.getCloseAfter());
          if (!period) return Fail(period.error());
          p.close_after = *period;
        }
        if (b.getBlockAfter().size() > 0) {
          auto period = parse(b.getBlockAfter());
          if (!period) return Fail(period.error());
          p.block_after = *period;
        }
        auto erase = parse(b.getEraseAfter());
        if (!erase) return Fail(erase.error());
        p.erase_after = *erase;
        auto history = parse(b.getHistoryAfter());
        if (!history) return Fail(history.error());
        p.history_after = *history;
        return p;
      });
  if (!decoded) return Fail(decoded.error());
  return std::move(*decoded);
}

std::string EncodeWrappedKey(const StoredWrappedKey& k) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::WrappedKey>();
  b.setKekVersion(k.kek_version);
  b.setWrapped(AsData(k.wrapped));
  return ToBytes(message);
}

Result<StoredWrappedKey> DecodeWrappedKey(std::string_view bytes) {
  return Decode<schema::WrappedKey>(
      bytes, "wrapped key", [](schema::WrappedKey::Reader r) {
        return StoredWrappedKey{r.getKekVersion(), FromData(r.getWrapped())};
      });
}

std::string EncodeKeyring(const StoredKeyring& k) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::Keyring>();
  b.setCurrentKek(k.current_kek);
  auto entries = b.initEntries(k.entries.size());
  for (size_t i = 0; i < k.entries.size(); ++i) {
    entries[i].setName(AsText(k.entries[i].name));
    entries[i].setVersion(k.entries[i].version);
    entries[i].setWrapped(AsData(k.entries[i].wrapped));
    entries[i].setCreatedAtMicros(k.entries[i].created_at_micros);
  }
  return ToBytes(message);
}

Result<StoredKeyring> DecodeKeyring(std::string_view bytes) {
  return Decode<schema::Keyring>(
      bytes, "keyring", [](schema::Keyring::Reader r) {
        StoredKeyring k;
        k.current_kek = r.getCurrentKek();
        for (auto e : r.getEntries()) {
          k.entries.push_back({FromText(e.getName()), e.getVersion(),
                               FromData(e.getWrapped()),
                               e.getCreatedAtMicros()});
        }
        return k;
      });
}

std::string EncodeAdminEvent(const StoredAdminEvent& e) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::PendingAdminEvent>();
  b.setId(e.id);
  b.setPrincipalId(AsText(e.principal_id));
  b.setPrincipalName(AsText(e.principal_name));
  b.setAction(e.action);
  b.setAtMicros(e.at_micros);
  auto fields = b.initFields(e.fields.size());
  for (size_t i = 0; i < e.fields.size(); ++i) {
    fields.set(i, AsText(e.fields[i]));
  }
  return ToBytes(message);
}

Result<StoredAdminEvent> DecodeAdminEvent(std::string_view bytes) {
  return Decode<schema::PendingAdminEvent>(
      bytes, "pending admin event", [](schema::PendingAdminEvent::Reader r) {
        StoredAdminEvent e;
        e.id = r.getId();
        e.principal_id = FromText(r.getPrincipalId());
        e.principal_name = FromText(r.getPrincipalName());
        e.action = r.getAction();
        e.at_micros = r.getAtMicros();
        for (auto f : r.getFields()) e.fields.push_back(FromText(f));
        return e;
      });
}

std::string EncodeLedgerEntry(int64_t shredded_at_micros, std::string_view by) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::LedgerEntry>();
  b.setShreddedAtMicros(shredded_at_micros);
  // capnp::Text::Reader requires a NUL after its bytes (checked in debug
  // builds); a string_view promises none.
  const std::string owned(by);
  b.setBy(capnp::Text::Reader(owned.data(), owned.size()));
  return ToBytes(message);
}

Bytes EncodeFields(const std::vector<Field>& fields) {
  capnp::MallocMessageBuilder message(capnp_value::kFirstSegmentWords);
  auto b = message.initRoot<schema::PersonalFields>();
  SetFields(b.initFields(fields.size()), fields);
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return Bytes(bytes.begin(), bytes.end());
}

Result<std::vector<Field>> DecodeFields(std::span<const uint8_t> bytes) {
  return Decode<schema::PersonalFields>(
      bytes, "personal fields", [](schema::PersonalFields::Reader r) {
        std::vector<Field> fields;
        for (auto f : r.getFields()) {
          fields.push_back({FromText(f.getName()), FromText(f.getValue())});
        }
        return fields;
      });
}

}  // namespace custos::codec
