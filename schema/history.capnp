# Values of the access history (DESIGN section 5), stored in the records
# database beside the values of storage.capnp. Which struct lives under
# which key, and how the chain is computed over these bytes, is documented
# in docs/history.md.
#
# Evolution: fields are only ever added (Cap'n Proto's rules). The chain
# covers each event's clear header and the commitments of its parts, never
# the ciphertexts, so re-keying a subject rewrites its sealed parts without
# breaking it. Stores written before the commitments (records format 1) are
# refused at Open (docs/decisions.md).

@0xb5d08ef02c9284ab;

$import "/capnp/c++.capnp".namespace("custos::schema::history");

enum Action {
  create @0;
  read @1;
  readRestricted @2;  # A read of closed or blocked data for a stated purpose.
  rectify @3;
  flag @4;
  contest @5;
  grant @6;
  close @7;
  withdraw @8;
  block @9;
  erase @10;
  export @11;
  holdSet @12;
  holdReleased @13;
  shred @14;
  report @15;
  rotateMasterKey @16;  # Key rotations: events about no subject.
  rotateKek @17;
  principalCreated @18;  # An admin created a principal (no subject).
  principalRevoked @19;  # An admin revoked a principal (no subject).
  rekey @20;  # The subject's data key was replaced (docs/crypto.md).
  credentialRotated @21;  # An admin replaced a principal's token.
  backup @22;  # Backups (storage/backup.h): events about no subject.
  restore @23;
  expireBackupKeys @24;
  exportRestoreKit @25;
  breachScope @26;  # An auditor's breach scope (docs/accountability.md).
  accessHistory @27;  # An auditor read a page of a subject's history.
  policySet @28;  # An admin set a kind's retention policy.
  findSubject @29;  # An admin or auditor found a subject by its identifier.
}

enum RecordState {
  # The record's state when the event happened; none for events that are not
  # about a record (a shred, a subject report).
  none @0;
  active @1;
  closed @2;
  blocked @3;
  erased @4;
}

enum PurposeKind {
  none @0;  # No purpose was given.
  proofOfExchange @1;
  subjectConsent @2;
  publicInterest @3;
  legalObligation @4;  # A duty of the controller's (a breach notification).
}

struct EventHeader {
  # The part of an event stored in clear: nothing in it identifies a data
  # subject. Its canonical encoding is bound into the associated data of
  # every sealed part of the event, so a reader holding one subject's key
  # can authenticate the header too.
  seq @0 :UInt64;              # 1, 2, 3… in append order; also the key.
  atMicros @1 :Int64;          # µs since the Unix epoch, UTC.
  principalId @2 :Text;
  principalName @3 :Text;      # The display name at the time of the event.
  action @4 :Action;
  recordId @5 :UInt64;         # 0 for events not about a record.
  recordKind @6 :Text;         # "" for events not about a record.
  recordState @7 :RecordState;
  purposeKind @8 :PurposeKind;
  clearJustification @9 :Text;  # Only for events concerning no subject.
  clearFields @10 :List(Text);  # Field names, only for events concerning no
                                # subject; never values.
}

struct SealedPart {
  # SubjectPart sealed (crypto::Seal) under one subject's data key, with
  # associated data "custos-event-v1\0" || u64 BE seq || u32 BE slot ||
  # canonical(header), slot being this part's index in Event.parts.
  # Re-keying the subject replaces `sealed`, never `commitment`.
  sealed @0 :Data;
  # 32 bytes: KeyedHash(audit key, "custos-event-part-v2\0" || u64 BE seq ||
  # u32 BE slot || the SubjectPart's bytes), computed when the event was
  # staged. This, not `sealed`, is what the chain covers.
  commitment @1 :Data;
}

struct SubjectPart {
  # The plaintext of a SealedPart: what identifies the subject.
  subjectId @0 :Text;
  justification @1 :Text;  # The purpose's justification ("" if none).
  fields @2 :List(Text);   # Names of the fields touched; never values.
  salt @3 :Data;           # 32 random bytes: without them (once the part
                           # cannot be opened) nobody, audit key or not, can
                           # test a guessed part against its commitment.
}

struct Event {
  # One event as appended. Its digest (docs/history.md, "The chain") covers
  # the canonical header and the parts' commitments; the flat-array bytes
  # of this message, ciphertexts included, are covered by StoredEvent.mac.
  header @0 :EventHeader;
  parts @1 :List(SealedPart);  # One per subject whose key existed.
}

struct StoredEvent {
  # The value under "e:" || u64 BE seq.
  seq @0 :UInt64;
  link @1 :Data;  # 32 bytes: the chain link of this event.
  union {
    event @2 :Data;  # An Event message: the stored event bytes.
    stub @3 :Data;   # 32 bytes: the digest of the pruned event.
  }
  mac @4 :Data;  # 32 bytes, events only: KeyedHash(audit key,
                 # "custos-event-bytes-v2\0" || u64 BE seq || event), over
                 # the stored bytes as they are now (rewritten by a re-key).
}

struct Head {
  # The value under "m:history_head": the last appended event.
  lastSeq @0 :UInt64;
  link @1 :Data;  # 32 bytes: that event's link.
}

struct Checkpoint {
  # The value under "m:history_checkpoint": the pruned prefix of the chain
  # collapsed into where verification starts.
  nextSeq @0 :UInt64;  # The first event still stored.
  link @1 :Data;       # 32 bytes: the link of event nextSeq - 1.
  mac @2 :Data;        # KeyedHash(audit key, "custos-checkpoint-v1\0" ||
                       # u64 BE nextSeq || link).
}
