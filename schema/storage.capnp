# Values Custos stores on disk. Each LevelDB value is one of these structs,
# serialised as a Cap'n Proto message in flat-array form (one segment for
# small values; large ones may have several). Which
# struct lives under which key is documented in docs/storage.md.
#
# Evolution: fields are only ever added (Cap'n Proto's rules); the on-disk
# format version in FormatInfo is bumped when a change is not compatible.

@0xf64d17c96ab87470;

$import "/capnp/c++.capnp".namespace("custos::schema");

struct FormatInfo {
  # Stored under the meta key of both databases.
  version @0 :UInt32;
  createdAtMicros @1 :Int64;
}

enum Role {
  user @0;
  officer @1;
  auditor @2;
  admin @3;
}

struct Principal {
  id @0 :Text;
  displayName @1 :Text;
  roles @2 :List(Role);
  redacted @3 :Bool;
  credentialHash @4 :Data;   # Keyed BLAKE2b of the token; never the token.
  revoked @5 :Bool;
  createdAtMicros @6 :Int64;
  revokedAtMicros @7 :Int64;
}

struct Subject {
  id @0 :Text;
  blindIndex @1 :Data;          # Keyed hash of the external identifier.
  sealedIdentifier @2 :Data;    # The identifier, sealed under the subject DEK.
  createdAtMicros @3 :Int64;
  shredded @4 :Bool;            # Set when the DEK was destroyed.
  shreddedAtMicros @5 :Int64;
}

enum State {
  active @0;
  closed @1;
  blocked @2;
  erased @3;
}

struct Attribute {
  key @0 :Text;
  value @1 :Text;
}

struct Field {
  name @0 :Text;
  value @1 :Text;
}

struct PersonalFields {
  # The plaintext of a sealed personal part, of a contest's correction, or of
  # a flag's note (as a single field named "note").
  fields @0 :List(Field);
}

struct Part {
  subjectId @0 :Text;
  version @1 :UInt64;   # Record version when this part was last sealed.
  sealed @2 :Data;      # PersonalFields sealed under the subject's DEK.
}

struct Flag {
  # A grantee's note that some of a subject's data is incorrect.
  by @0 :Text;
  atMicros @1 :Int64;
  subjectId @2 :Text;
  sealedNote @3 :Data;  # PersonalFields{note}, sealed under the subject DEK.
}

struct Contest {
  # The data subject contests accuracy or lawfulness; kept with the record.
  by @0 :Text;
  atMicros @1 :Int64;
  subjectId @2 :Text;
  sealedStatement @3 :Data;  # PersonalFields (statement + corrected fields).
}

struct Record {
  id @0 :UInt64;
  kind @1 :Text;
  owner @2 :Text;
  grants @3 :List(Text);
  attributes @4 :List(Attribute);
  parts @5 :List(Part);
  sensitive @6 :Bool;
  state @7 :State;
  version @8 :UInt64;
  createdAtMicros @9 :Int64;
  updatedAtMicros @10 :Int64;
  closedAtMicros @11 :Int64;    # 0 = never.
  blockedAtMicros @12 :Int64;
  erasedAtMicros @13 :Int64;
  flags @14 :List(Flag);
  contests @15 :List(Contest);
  subjectIds @16 :List(Text);   # Every subject the record ever concerned.
  nextDeadlineMicros @17 :Int64;  # 0 = none; mirrored in the deadline index.
  nextTransition @18 :Transition;
  ownerChangedAtMicros @19 :Int64;  # The owner's last change; 0 = use updatedAt.
  eraseBucket @20 :UInt64;  # Deadline bucket the ciphertexts are sealed under; 0 = none.
}

struct SealedContents {
  # Records-database value "pb:" bucket || record id (docs/storage.md): every
  # ciphertext of a record sealed under a deadline bucket, in the order of
  # the record's parts, flags and contests (whose entries in its "r:" value
  # keep their sealed fields empty).
  parts @0 :List(Data);
  flagNotes @1 :List(Data);
  contestStatements @2 :List(Data);
}

enum Transition {
  none @0;
  close @1;
  block @2;
  erase @3;
}

struct Policy {
  # A retention policy; periods as canonical ISO 8601 strings ("" = absent).
  kind @0 :Text;
  closeAfter @1 :Text;
  blockAfter @2 :Text;
  eraseAfter @3 :Text;
  historyAfter @4 :Text;
  setAtMicros @5 :Int64;
  # When it was set (Policies::SetAt); 0 for a shipped default and for a
  # policy stored before 2026-12-07.
}

struct WrappedKey {
  # Keystore value: a subject DEK wrapped under the key-encryption key.
  kekVersion @0 :UInt32;
  wrapped @1 :Data;
}

struct Keyring {
  # Keystore value "m:keyring": the random keys the master key protects
  # (docs/crypto.md, "Keyring"), each wrapped on its own.
  currentKek @0 :UInt32;          # The KEK version new data keys use.
  entries @1 :List(KeyringEntry);
}

struct PendingAdminEvent {
  # Keystore value "m:pending_admin_event": the admin event about a change
  # of the keystore (a master key rotation, backup keys expired), written
  # in the same write as the change and dropped once the access history
  # holds it, so that a crash between the two leaves it for the next Open
  # to record (KeyAdmin). About no data subject: the admin's id and display
  # name, as every history event's clear header holds them.
  id @0 :UInt64;          # Random; the records database's
                          # "m:admin_event_recorded" names the last one held.
  principalId @1 :Text;
  principalName @2 :Text;
  action @3 :UInt16;      # EventAction's value (storage/history.h).
  atMicros @4 :Int64;
  fields @5 :List(Text);
}

struct KeyringEntry {
  name @0 :Text;      # "kek", "blind-index", "audit", "credential", "ledger".
  version @1 :UInt32; # The KEK version; 1 for the others.
  wrapped @2 :Data;   # crypto::WrapKey(keyring key, version, "keyring/" + name, key).
  createdAtMicros @3 :Int64;  # A backup key's creation time ("backup/" + id); 0 for the others.
}

struct LedgerEntry {
  # Keystore value: a shredded subject, keyed by a hash of its blind index.
  shreddedAtMicros @0 :Int64;  # Always 0: an instant would link the person
                               # to the records erased at it.
  by @1 :Text;
}

struct Hold {
  # A legal hold on one record (recordId != 0) or on all of a subject's
  # records (subjectId != "").
  id @0 :Text;
  recordId @1 :UInt64;
  subjectId @2 :Text;
  reason @3 :Text;
  setBy @4 :Text;
  setAtMicros @5 :Int64;
  endsAtMicros @6 :Int64;
  releasedAtMicros @7 :Int64;  # 0 = not released.
  releasedBy @8 :Text;
}

struct StatsDelta {
  # Statistics index (storage/stats_index.h): one transition of one record,
  # written with it, until maintenance folds it into its kind's KindStats.
  # Key "st:d:" u64 delta seq (big-endian; numbered under the write lock in
  # the order of the writes, from "m:stats_next_delta"). The key is the
  # write's, not the transition's: a delta written twice WOULD count twice
  # (each transition is staged once, by the write that makes it).
  kind @0 :Text;
  from @1 :State;               # The state left; = to for a creation.
  to @2 :State;
  atMicros @3 :Int64;           # The transition's instant.
  createdAtMicros @4 :Int64;    # The record's creation (for a closure).
  attributes @5 :List(Attribute);  # A creation's only.
}

struct KindStats {
  # Statistics index: a record kind's folded counts. Key "st:k:" kind.
  kind @0 :Text;
  byState @1 :List(UInt64);     # By State ordinal.
  months @2 :List(MonthStats);  # Ascending.
  attributes @3 :List(AttributeStats);  # By name.
  otherAttributes @4 :UInt64;
}

struct MonthStats {
  month @0 :UInt32;             # yyyymm.
  entered @1 :List(UInt64);     # Created, closed, blocked, erased.
  closedWithin @2 :List(UInt64);  # By IMI bucket (storage/statistics.h).
}

struct AttributeStats {
  name @0 :Text;
  values @1 :List(ValueCount);  # By value.
  other @2 :UInt64;
}

struct ValueCount {
  value @0 :Text;
  count @1 :UInt64;
}
