# The Custos RPC API (DESIGN section 7, docs/api.md).
#
# Capability-based: the bootstrap interface, Gateway, offers only login. A
# successful login returns a Session bound to the principal; the Session
# carries the user operations and hands out the Officer, Auditor and Admin
# facets only to principals holding those roles. Roles and revocation are
# checked again by the engine on every call, so a facet obtained before a
# revocation refuses every call after it.
#
# Errors: every refused call fails with a Cap'n Proto exception of type
# FAILED whose description is "<Code>: <message>", where <Code> is one of
# NotFound, InvalidArgument, FailedPrecondition, Unauthenticated,
# PermissionDenied, ResourceExhausted, Unavailable, DataLoss, Internal,
# AlreadyExists (base/status.h). A record the caller may not see is
# NotFound, exactly as a record that does not exist. Messages never hold
# personal data, key material or source text.
#
# Times are microseconds since the Unix epoch, UTC; 0 means "none".
#
# Paths (Admin.backup, verifyBackup, exportRestoreKit, rotateMasterKey)
# name files and directories on the server's host, read and written with
# the server's permissions; they must be absolute. No key material ever
# crosses the wire: a new master key is read by the server from a key file
# (docs/decisions.md, "issue 12, the whole engine over RPC").
#
# Long work runs on one of the server's two long lanes of workers, never
# delaying the connections' other calls: maintenance (sweep,
# completeShreds, reapplyPolicies, rekeySubject, verifyErasure,
# rotateMasterKey, rotateKek, backup, verifyBackup, exportRestoreKit,
# expireBackupKeys) and reading (verifyChain, processingRegister). One call
# of each lane runs at a time, server-wide; another arriving meanwhile for
# the same lane is refused with Unavailable (docs/api.md, "Threading and
# ordering").

@0x9f682b85893a5d62;

$import "/capnp/c++.capnp".namespace("custos::rpc");

interface Gateway {
  # Unauthenticated for a wrong token, an unknown principal or a revoked
  # one alike. Repeated failures on one connection are answered more and
  # more slowly.
  login @0 (principal :Text, token :Text) -> (session :Session);
}

enum Role {
  user @0;
  officer @1;
  auditor @2;
  admin @3;
}

enum RecordState {
  active @0;
  closed @1;
  blocked @2;
  erased @3;
}

enum PurposeKind {
  proofOfExchange @0;
  subjectConsent @1;
  publicInterest @2;
}

struct Purpose {
  # Why closed, blocked or sensitive data is read. Logged with the read.
  kind @0 :PurposeKind;
  justification @1 :Text;
}

struct Field {
  name @0 :Text;
  value @1 :Text;
}

struct Attribute {
  # Non-personal: searchable, kept after erasure.
  key @0 :Text;
  value @1 :Text;
}

struct PersonalPart {
  # The personal data of one data subject, named by an external identifier
  # (e-mail, national number...). Encrypted under that subject's key.
  subjectIdentifier @0 :Text;
  fields @1 :List(Field);
}

struct NewRecord {
  kind @0 :Text;
  attributes @1 :List(Attribute);
  personal @2 :List(PersonalPart);
  grants @3 :List(Text);        # Principal ids that may read it.
  sensitive @4 :Bool;           # Personal data only with a purpose.
}

struct Part {
  subjectId @0 :Text;
  subjectIdentifier @1 :Text;
  version @2 :UInt64;
  fields @3 :List(Field);
}

struct Flag {
  by @0 :Text;
  atMicros @1 :Int64;
  subjectId @2 :Text;
  note @3 :Text;                # Empty unless personal data is shown.
}

struct Contest {
  by @0 :Text;
  atMicros @1 :Int64;
  subjectId @2 :Text;
  statement @3 :Text;           # Empty unless personal data is shown.
  corrected @4 :List(Field);
}

struct Record {
  # A record as the caller may see it.
  id @0 :UInt64;
  kind @1 :Text;
  owner @2 :Text;
  grants @3 :List(Text);
  attributes @4 :List(Attribute);
  state @5 :RecordState;
  sensitive @6 :Bool;
  version @7 :UInt64;
  createdAtMicros @8 :Int64;
  updatedAtMicros @9 :Int64;
  closedAtMicros @10 :Int64;
  blockedAtMicros @11 :Int64;
  erasedAtMicros @12 :Int64;
  subjectIds @13 :List(Text);
  personalIncluded @14 :Bool;
  purposeRequired @15 :Bool;    # Withheld only for want of a purpose.
  parts @16 :List(Part);
  flags @17 :List(Flag);
  contests @18 :List(Contest);
}

struct ListQuery {
  kind @0 :Text;                # "" = any.
  hasState @1 :Bool;
  state @2 :RecordState;
  attributeEquals @3 :List(Attribute);
  createdFromMicros @4 :Int64;  # 0 = no bound; inclusive.
  createdToMicros @5 :Int64;    # 0 = no bound; exclusive.
  afterId @6 :UInt64;           # Cursor.
  limit @7 :UInt32;             # 1..max page size.
  purpose @8 :Purpose;          # Absent = none.
}

struct GetResult {
  # One answer of Session.getMany.
  id @0 :UInt64;
  union {
    record @1 :Record;
    # "<Code>: <message>" as an exception's description (see above):
    # "NotFound: record not found" alike for a record that does not exist
    # and one the caller may not see; "DataLoss: ..." for a corrupt one.
    error @2 :Text;
  }
}

struct RetentionPolicy {
  # Periods are ISO 8601 durations ("P6M", "P1Y", "P30D"); "" = absent
  # (docs/retention.md).
  kind @0 :Text;
  closeAfter @1 :Text;          # Untouched ACTIVE -> CLOSED. "" = never.
  blockAfter @2 :Text;          # CLOSED -> BLOCKED. "" = no BLOCKED phase.
  eraseAfter @3 :Text;          # From closure to ERASED. Required.
  historyAfter @4 :Text;        # Access history kept after erasure. Required.
  # listPolicies only (setPolicy ignores it): when the policy was set, in
  # microseconds since the epoch, UTC; 0 for a shipped default never set,
  # or a policy set before 2026-12-07 (when the set time began to be
  # stored).
  setAtMicros @5 :Int64;
}

struct Principal {
  id @0 :Text;
  displayName @1 :Text;
  roles @2 :List(Role);
  redacted @3 :Bool;
  revoked @4 :Bool;
  createdAtMicros @5 :Int64;
}

interface Session {
  # The logged-in principal and its roles.
  whoAmI @0 () -> (principal :Principal);

  # Role user. The new record's id: ids grow and are never reused, but
  # are not dense (after a restart they may skip up to 63).
  create @1 (record :NewRecord) -> (id :UInt64);
  # The caller's view of a record; NotFound if it may not see it.
  get @2 (id :UInt64, purpose :Purpose) -> (record :Record);
  # Records the caller may see, in id order; nextAfterId 0 at the end.
  list @3 (query :ListQuery) -> (records :List(Record), nextAfterId :UInt64,
                                 skipped :UInt32);
  # Owner only, ACTIVE only.
  grant @4 (id :UInt64, grantee :Text) -> ();
  # Owner only: replaces one subject's part. The record's new version.
  rectify @5 (id :UInt64, subjectId :Text, fields :List(Field))
      -> (version :UInt64);
  # One who sees the personal data notes that some of it is incorrect.
  flag @6 (id :UInt64, subjectId :Text, note :Text, purpose :Purpose) -> ();
  # Owner only: ACTIVE -> CLOSED.
  close @7 (id :UInt64) -> ();
  # Owner only: ACTIVE or CLOSED -> BLOCKED at once.
  withdraw @8 (id :UInt64) -> ();
  # Owner or admin: -> ERASED.
  erase @9 (id :UInt64) -> ();

  # Facets, for principals holding the role (PermissionDenied otherwise).
  officer @10 () -> (officer :Officer);
  auditor @11 () -> (auditor :Auditor);
  admin @12 () -> (admin :Admin);

  # The retention policies in force, by kind (any principal).
  listPolicies @13 () -> (policies :List(RetentionPolicy));

  # Batch forms (one engine write for the whole batch; 1 to the server's
  # max_batch_records items, default 100, InvalidArgument otherwise).
  # Role user. Creates every record or none (a refusal names the record's
  # position: "record 2: ..."). The new ids, in order.
  createMany @14 (records :List(NewRecord)) -> (ids :List(UInt64));
  # One answer per id, in order, every disclosure recorded in one commit.
  # The call fails as a whole only for a bad batch or purpose, or an
  # error that is not one record's.
  getMany @15 (ids :List(UInt64), purpose :Purpose)
      -> (results :List(GetResult));

  # Reminders (docs/accountability.md, "Reminders"). Role user. The
  # records the caller owns and still sees (ACTIVE or CLOSED) whose next
  # deadline (closure, blocking, erasure) falls within warnBefore from now,
  # and the ACTIVE ones open (since creation) openTooLong or longer; by
  # record id, then reason. Delivered or not (deliveredAtMicros says).
  # warnBefore and openTooLong are ISO 8601 periods, "" for the server's
  # (custosd --reminder-warn-before, default P7D; --reminder-open-too-long,
  # default P30D); warnBefore at most P1Y ("P0D": no deadline reminders),
  # openTooLong non-zero and at most P10Y: InvalidArgument naming the field
  # otherwise. Costs a read of each record the caller owns or was granted.
  # One page: records after afterRecordId (0: from the first), at most
  # 1000 reminders (the engine's max_reminders_per_call) from at most
  # 10000 records examined (max_list_scan), and those of no more records
  # than fit in the server's message limit (custosd --max-message-bytes;
  # a record's whose do not alone come without attributes); nextAfterRecordId not 0: ask
  # again with it as afterRecordId. A record that does not decode, or whose
  # next deadline needs a retention policy that failed its MAC or is
  # missing, is left out and counted in skipped.
  dueSoon @16 (warnBefore :Text, openTooLong :Text, afterRecordId :UInt64)
      -> (reminders :List(Reminder), nextAfterRecordId :UInt64,
          skipped :UInt32);
  # Role user. The server calls watcher.remind with the caller's reminders
  # not yet delivered (dueSoon's list, deliveredAtMicros 0): at once, then
  # at each of its reminder checks (custosd --reminder-interval, default
  # 60 s) that finds new ones. A reminder is marked delivered, for good,
  # only once remind has returned; one whose remind failed, or came due
  # while no watch ran, is delivered by the next remind (of this watch or a
  # later one). More than a page of them come in several remind calls,
  # each page marked before the next is sent. A remind that has not
  # returned within 60 s counts as failed. The watch lasts until the
  # handle is cancelled or dropped, the connection ends, or the principal
  # is revoked. At most 16 watches per connection, 64 per principal
  # (ResourceExhausted).
  # Same arguments as dueSoon (afterRecordId aside).
  watch @17 (watcher :Watcher, warnBefore :Text, openTooLong :Text)
      -> (handle :WatchHandle);
}

enum ReminderReason {
  closeDue @0;       # ACTIVE; closed at dueAtMicros (policy closeAfter).
  blockDue @1;       # CLOSED; blocked at dueAtMicros, hidden from the owner.
  eraseDue @2;       # CLOSED; erased at dueAtMicros (a kind without BLOCKED).
  openTooLong @3;    # ACTIVE since createdAtMicros; dueAtMicros is when it
                     # had been open openTooLong.
}

struct Reminder {
  # No personal data: ids, kind, attributes (non-personal), instants.
  recordId @0 :UInt64;
  kind @1 :Text;
  reason @2 :ReminderReason;
  dueAtMicros @3 :Int64;        # The deadline (after any legal hold).
  state @4 :RecordState;        # Effective, now: ACTIVE or CLOSED.
  createdAtMicros @5 :Int64;
  attributes @6 :List(Attribute);
  deliveredAtMicros @7 :Int64;  # 0: never delivered.
}

interface Watcher {
  # Implemented by the host application. Returning marks the reminders
  # delivered; throwing leaves them for the next call.
  remind @0 (reminders :List(Reminder)) -> ();
}

interface WatchHandle {
  # Ends the watch (as dropping the handle does).
  cancel @0 () -> ();
}

struct Hold {
  id @0 :Text;
  recordId @1 :UInt64;          # 0 for a subject hold.
  subjectId @2 :Text;           # "" for a record hold.
  reason @3 :Text;
  setBy @4 :Text;
  setAtMicros @5 :Int64;
  endsAtMicros @6 :Int64;
  releasedAtMicros @7 :Int64;   # 0 while not released.
  releasedBy @8 :Text;
}

interface Officer {
  # Officer only. Records that the data subject contests the data.
  contest @0 (id :UInt64, subjectId :Text, statement :Text,
              corrected :List(Field)) -> ();
  # A legal hold on one record until endsAtMicros: postpones its erasure.
  setRecordHold @1 (id :UInt64, reason :Text, endsAtMicros :Int64)
      -> (hold :Hold);
  # Ends a hold; erasures it postponed are due at once.
  releaseHold @2 (holdId :Text) -> ();
  # Holds in force, or all of them, by id, in pages: those after afterId
  # ("": from the first), at most limit (1 to 1,000), fewer if more would
  # not fit the server's message limit. nextAfterId is the afterId of the
  # next page, "" after the last. Limit 0 (a client that does not page):
  # all at once, never cut short (ResourceExhausted if they do not fit).
  listHolds @3 (includeEnded :Bool, afterId :Text, limit :UInt32)
      -> (holds :List(Hold), nextAfterId :Text);
  # A legal hold on every record of one subject (Admin.findSubject or
  # Auditor.findSubject give the id) until endsAtMicros.
  setSubjectHold @4 (subjectId :Text, reason :Text, endsAtMicros :Int64)
      -> (hold :Hold);
}

# A kind whose stored retention policy is not what the access history says
# was last set (verifyChain). Texts give the periods as a policySet event
# does after its kind: "erase_after:P6M, history_after:P5Y".
struct PolicyDifference {
  kind @0 :Text;
  # What the chain says: "none" (no event or shipped default names the
  # kind), "default" (the shipped default) or "event" (the last policySet
  # event, at lastSetSeq).
  expectedFrom @1 :Text;
  lastSetSeq @2 :UInt64;
  expected @3 :Text;
  # What is stored: "none", "unauthenticated" (fails its MAC or does not
  # decode) or "policy" (then storedText).
  stored @4 :Text;
  storedText @5 :Text;
}

# A head of the access history recorded out of band (verifyChain).
struct RecordedHead {
  seq @0 :UInt64;
  linkHex @1 :Text;
}

struct AccessEvent {
  seq @0 :UInt64;
  atMicros @1 :Int64;
  principalId @2 :Text;
  principalName @3 :Text;
  action @4 :Text;              # "create", "read", "read_restricted"...
  recordId @5 :UInt64;
  recordKind @6 :Text;
  fields @7 :List(Text);        # Names, never values.
  # Why: the purpose given with the call ("proof_of_exchange",
  # "subject_consent", "public_interest", "legal_obligation"; "" when none)
  # and its justification, as the caller wrote it (a breach scope's
  # purpose, for its event).
  purpose @8 :Text;
  justification @9 :Text;
  # The record's state when the event was written ("ACTIVE", "CLOSED",
  # "BLOCKED", "ERASED"; "" when not about a record or not known).
  recordState @10 :Text;
}

interface Auditor {
  # A subject's access history, page by page (nextAfterSeq 0 at the end).
  accessHistory @0 (subjectId :Text, fromMicros :Int64, toMicros :Int64,
                    afterSeq :UInt64, limit :UInt32)
      -> (events :List(AccessEvent), nextAfterSeq :UInt64);
  # Verifies the whole history chain and its indexes. problem is "" when
  # ok, else one of "checkpoint", "missing", "corrupt", "link", "seal",
  # "head", "index", "anchor" (docs/history.md, "Verification").
  # through: heads recorded earlier (headSeq and headLinkHex of an earlier
  # answer, or custosd's log), at most 1,000, each link 64 hex digits
  # (InvalidArgument otherwise): the chain must still pass through each
  # with that link, else problem "anchor" (a tail cut and the head
  # rewritten to match). anchorsMatched: those found with their link;
  # anchorsFolded: those older than the checkpoint of pruned history (not
  # checked: their links are gone). firstBroken: the first seq that fails
  # (0 when ok). With "anchor", anchorLastHeld is the last recorded head
  # (in seq order) that held before it (0: none): the chain departs from
  # what was recorded after anchorLastHeld, at or before firstBroken.
  # Apart from the chain (ok, problem, firstBroken are the chain's): when
  # the walk reached the last stored event (policiesChecked), each kind's
  # stored retention policy is compared with its last policySet event (the
  # shipped default for a kind without one); policyDifferences lists those
  # that differ (an older value put back, one deleted, added or failing
  # its MAC), at most 100, policyDifferencesTotal counts them all.
  verifyChain @1 (through :List(RecordedHead))
      -> (ok :Bool, problem :Text, verified :UInt64, headSeq :UInt64,
          headLinkHex :Text, anchorsMatched :UInt64, anchorsFolded :UInt64,
          firstBroken :UInt64, anchorLastHeld :UInt64,
          policiesChecked :Bool, policyDifferences :List(PolicyDifference),
          policyDifferencesTotal :UInt64);
  # The answer to a subject's access request, as the JSON of
  # docs/subject-report.md; producing it is a logged disclosure.
  subjectReport @2 (subjectId :Text) -> (json :Text);
  # Holds in force, or all of them, by id, in pages: those after afterId
  # ("": from the first), at most limit (1 to 1,000), fewer if more would
  # not fit the server's message limit. nextAfterId is the afterId of the
  # next page, "" after the last. Limit 0 (a client that does not page):
  # all at once, never cut short (ResourceExhausted if they do not fit).
  listHolds @3 (includeEnded :Bool, afterId :Text, limit :UInt32)
      -> (holds :List(Hold), nextAfterId :Text);
  # The subject id of an external identifier; NotFound if none.
  findSubject @4 (identifier :Text) -> (subjectId :Text);
  # The same answer as subjectReport, as the self-contained HTML page of
  # docs/subject-report.md for the person it concerns; producing it is a
  # logged disclosure too.
  subjectReportHtml @5 (subjectId :Text) -> (html :Text);
  # The register of processing activities (docs/accountability.md): JSON,
  # or with `html` a self-contained HTML page. No personal data. Reads
  # every record: long work.
  processingRegister @6 (html :Bool) -> (document :Text);
  # The scope of a personal-data breach (docs/accountability.md), e.g. a
  # credential known to be stolen: every disclosure the principals named
  # (1 to 16 existing ids, revoked ones included) received with
  # fromMicros <= at < toMicros (a window of at most 1830 days), per data
  # subject, and each subject's identifier to notify them by. `purpose`
  # (required, at most the justification limit) says why; it is recorded in
  # clear with the act, so it must name the breach, not a person. The act
  # is itself recorded: a breach_scope event in the history of each subject
  # returned, and one about no subject. Errors: InvalidArgument for a query
  # out of these bounds; NotFound naming an id no principal has;
  # ResourceExhausted for more disclosures than the server's limit (100000
  # by default): split the window.
  breachScope @7 (principalIds :List(Text), fromMicros :Int64,
                  toMicros :Int64, purpose :Text) -> (scope :BreachScope);
  # Statistics that survive erasure (docs/accountability.md): per record
  # kind, the records by state now, the records created, closed, blocked
  # and erased per month (UTC), the time from creation to closure in the
  # buckets of the IMI report's "Time needed to deal with a request", and
  # the records created per attribute value (capped: docs/api.md); erased
  # records included. No personal data; nothing is recorded. Filters, all
  # optional: `kind` ("" = every kind; else a valid kind name), and
  # `fromMonth`/`toMonth` as yyyymm (0 = unbounded; months 1 to 12, years
  # 1 to 9999, from <= to), which bound the months listed, not the states
  # or the attribute counts. InvalidArgument for a filter out of bounds.
  # Answered from an index, whatever the number of records.
  statistics @8 (kind :Text, fromMonth :UInt32, toMonth :UInt32)
      -> (statistics :Statistics);
  # The subject report (the JSON of subjectReport, or with `html` the page
  # of subjectReportHtml) whatever its size: written to `sink` in chunks of
  # at most 1 MiB (and at most a quarter of the server's message limit),
  # in order, then `end`; `bytes` is the document's size. For a report
  # larger than the message limit, which subjectReport refuses. Producing
  # it is a logged disclosure, recorded before the first chunk is sent: a
  # transfer cut short stays recorded. No sink: InvalidArgument. One
  # report at a time per connection, two to one principal, four per server
  # (Unavailable, before anything is produced). A sink that throws, takes a
  # chunk or the end more than 60 s after it was sent, or has not taken the
  # whole report 10 minutes after the first chunk, ends the call with
  # Unavailable (docs/api.md).
  subjectReportTo @9 (subjectId :Text, html :Bool, sink :ByteSink)
      -> (bytes :UInt64);
}

interface ByteSink {
  # Implemented by the client: where the server writes a long document,
  # chunk by chunk, in order (Auditor.subjectReportTo).
  write @0 (chunk :Data) -> stream;
  # After the last chunk.
  end @1 () -> ();
}

struct Statistics {
  generatedAtMicros @0 :Int64;
  kind @1 :Text;                      # The filters, as asked.
  fromMonth @2 :UInt32;
  toMonth @3 :UInt32;
  kinds @4 :List(KindStatistics);     # By kind.
  total @5 :MonthStatistics;          # Every kind's months summed (month 0).
  pending @6 :UInt64;                 # Transitions counted that maintenance
                                      # has not folded yet (cost, not data).
  unreadable @7 :UInt64;              # Transitions recorded whose stored
                                      # delta did not decode, or whose
                                      # kind's aggregate did not: counted
                                      # nowhere.
}

struct KindStatistics {
  kind @0 :Text;
  active @1 :UInt64;                  # Records in each state now (as the
  closed @2 :UInt64;                  # sweeps wrote them down).
  blocked @3 :UInt64;
  erased @4 :UInt64;
  months @5 :List(MonthStatistics);   # Ascending; months with any count.
  total @6 :MonthStatistics;          # Those months summed (month 0).
  attributes @7 :List(AttributeStatistics);  # By name; all time.
  otherAttributes @8 :UInt64;         # Attributes beyond the names kept.
}

struct MonthStatistics {
  month @0 :UInt32;                   # yyyymm (UTC); 0 in a total.
  created @1 :UInt64;
  closed @2 :UInt64;
  blocked @3 :UInt64;
  erased @4 :UInt64;
  # The records closed in the month by time from creation to closure:
  # within 3 days, within 1 week, 2 weeks, 4 weeks, 8 weeks, more (6
  # numbers; a day is 86400 s and each bound is inclusive).
  closedWithin @5 :List(UInt64);
}

struct AttributeStatistics {
  name @0 :Text;
  values @1 :List(AttributeValueCount);  # By value.
  other @2 :UInt64;                      # Values beyond the cap.
}

struct AttributeValueCount {
  value @0 :Text;
  records @1 :UInt64;
}

struct BreachScope {
  generatedAtMicros @0 :Int64;
  auditorId @1 :Text;
  principalIds @2 :List(Text);
  fromMicros @3 :Int64;
  toMicros @4 :Int64;
  purpose @5 :Text;
  subjects @6 :List(BreachSubject);   # The people to notify, by subject id.
  disclosures @7 :UInt64;             # Disclosure events in the window.
  withoutIdentity @8 :UInt64;         # Parts of them about subjects shredded
                                      # since: counted, nobody to name.
  unindexedUntilMicros @9 :Int64;     # 0, or: the store's disclosure index
                                      # starts later; disclosures at or before
                                      # this instant may be missing.
}

struct BreachSubject {
  subjectId @0 :Text;
  identifier @1 :Text;                # As the host registered the subject:
                                      # what the notification goes to.
  recordIds @2 :List(UInt64);         # Ascending.
  fields @3 :List(Text);              # Every field name disclosed, sorted.
  disclosures @4 :List(BreachDisclosure);  # By time.
}

struct BreachDisclosure {
  seq @0 :UInt64;                     # The access-history event.
  atMicros @1 :Int64;
  principalId @2 :Text;
  principalName @3 :Text;             # At the time.
  action @4 :Text;                    # "read", "read_restricted", "report"…
  recordId @5 :UInt64;                # 0: about no record (a report).
  recordKind @6 :Text;
  purpose @7 :Text;                   # "" or the purpose kind's name.
  justification @8 :Text;
  fields @9 :List(Text);              # Names, never values.
}

struct NewPrincipal {
  principal @0 :Principal;
  token @1 :Text;               # Shown once; never stored.
}

struct Transition {
  recordId @0 :UInt64;
  from @1 :RecordState;
  to @2 :RecordState;
  dueMicros @3 :Int64;
}

struct HeldErasure {
  recordId @0 :UInt64;
  erasableAtMicros @1 :Int64;   # If no hold changes meanwhile.
  holdIds @2 :List(Text);
}

struct SkippedRecord {
  recordId @0 :UInt64;
  reason @1 :Text;              # The error; never personal data.
}

struct SweepReport {
  closed @0 :UInt64;
  blocked @1 :UInt64;
  erased @2 :UInt64;
  postponed @3 :UInt64;
  historyPruned @4 :UInt64;
  complete @5 :Bool;            # False when maxRecords, or the server's
                                # stop, ended it before the end.
  skipped @6 :UInt64;
  # The per-record lists, in the order the sweep met the records, are
  # bounded so that the answer stays within half the server's message limit
  # (--max-message-bytes: Cap'n Proto will not send an answer over it); a
  # sweep of a large backlog lists the first ones and counts the others in
  # the *Omitted fields below. The counts above are always whole.
  transitions @7 :List(Transition);     # Applied, or (dry run) planned.
  held @8 :List(HeldErasure);           # Erasures postponed by holds.
  skippedRecords @9 :List(SkippedRecord);
  # Deadline-index keys of the wrong form met (never written by Custos: a
  # sign of corruption); skipped, and met again until removed.
  malformedIndexKeys @10 :UInt64;
  transitionsOmitted @11 :UInt64;       # Not in `transitions`.
  heldOmitted @12 :UInt64;              # Not in `held`.
  skippedRecordsOmitted @13 :UInt64;    # Not in `skippedRecords`.
  # History events the pruning met that do not decode or fail their MAC:
  # kept, not pruned (verifyChain says what is wrong with them).
  historyUnauthenticated @14 :UInt64;
  # Record kinds whose stored retention policy failed its MAC
  # (docs/storage.md, "Policies"): set each again (setPolicy).
  unauthenticatedPolicies @15 :List(Text);
  # History events between where this sweep's pruning stopped and the head
  # of the log: how far the current pass has to go (0: it reached the head;
  # always 0 in a dry run, which does not prune).
  historyBehind @16 :UInt64;
  # History events this sweep's pruning examined (stubs included; 0 in a
  # dry run, and in a sweep whose pruning sleeps with nothing new to
  # examine): with historyBehind, how fast a pass moves.
  historyExamined @17 :UInt64;
}

struct BackupFile {
  name @0 :Text;
  size @1 :UInt64;
  blake2bHex @2 :Text;
}

struct BackupReport {
  backupId @0 :Text;
  createdMicros @1 :Int64;
  recordsEntries @2 :UInt64;
  keystoreEntries @3 :UInt64;
  files @4 :List(BackupFile);
}

struct BackupVerification {
  formatVersion @0 :UInt32;
  backupId @1 :Text;
  createdMicros @2 :Int64;
  files @3 :List(BackupFile);
  recordsChunks @4 :UInt64;
  keystoreChunks @5 :UInt64;
}

interface Admin {
  createPrincipal @0 (id :Text, displayName :Text, roles :List(Role),
                      redacted :Bool) -> (created :NewPrincipal);
  # Principals by id, in pages, as Officer.listHolds pages holds.
  listPrincipals @1 (afterId :Text, limit :UInt32)
      -> (principals :List(Principal), nextAfterId :Text);
  revokePrincipal @2 (id :Text) -> ();
  # Applies what is due by asOfMicros (0 = now); dryRun writes nothing and
  # may look ahead: a dry run at a future instant is the preview of the
  # deadlines due by then. At most maxRecords records (0 = no bound). Its
  # history pruning examines maxHistoryExamined events, 1 to 10,000,000
  # (0 = custosd's --history-examined plus a credit for the events written
  # since the last sweep that pruned began; docs/history.md, "Retention"):
  # an admin catching up a pruning backlog (report.historyBehind) asks for
  # more. A dry run does not prune.
  sweep @3 (asOfMicros :Int64, dryRun :Bool, maxRecords :UInt64,
            maxHistoryExamined :UInt64)
      -> (report :SweepReport);
  # The subject id of an external identifier; NotFound if none.
  findSubject @4 (identifier :Text) -> (subjectId :Text);
  # Crypto-shreds the subject: its key is destroyed at once.
  shredSubject @5 (subjectId :Text) -> ();
  # Replaces a principal's token (returned once); sessions opened with the
  # old one end at once.
  rotateCredential @6 (id :Text) -> (token :Text);

  # Stores the policy of policy.kind (replacing any). InvalidArgument,
  # naming the field, for a bad period. Applies to deadlines computed from
  # now on; see reapplyPolicies.
  setPolicy @7 (policy :RetentionPolicy) -> ();
  # Recomputes every open deadline under the current policies; how many
  # records changed.
  reapplyPolicies @8 () -> (updated :UInt64);
  # As Officer.listHolds.
  listHolds @9 (includeEnded :Bool, afterId :Text, limit :UInt32)
      -> (holds :List(Hold), nextAfterId :Text);
  # Verifies the whole history chain (as Auditor.verifyChain).
  verifyChain @10 (through :List(RecordedHead))
      -> (ok :Bool, problem :Text, verified :UInt64, headSeq :UInt64,
          headLinkHex :Text, anchorsMatched :UInt64, anchorsFolded :UInt64,
          firstBroken :UInt64, anchorLastHeld :UInt64,
          policiesChecked :Bool, policyDifferences :List(PolicyDifference),
          policyDifferencesTotal :UInt64);
  # Finishes the bookkeeping of shredded subjects' records, at most budget
  # (1 to 100,000: writes wait while they are rewritten) of them; how many
  # were rewritten (0: nothing pending).
  completeShreds @11 (budget :UInt64) -> (rewritten :UInt64);
  # Replaces the subject's data key (a suspected compromise).
  rekeySubject @12 (subjectId :Text) -> ();
  # Scans the data directory for erased ciphertexts and destroyed keys.
  # corruptQueueEntries: queued range deletions whose stored value was
  # corrupt, ever (each carried out over its bucket's range all the same);
  # undecodableSealedEntries: deleted sealed entries that did not decode,
  # ever, so unwitnessed (their bytes are not looked for).
  verifyErasure @13 () -> (witnesses :UInt64, found :UInt64,
                           filesWithLeftovers :List(Text),
                           corruptQueueEntries :UInt64,
                           undecodableSealedEntries :UInt64);
  # Rewraps the keyring under the master key in keyFile, a master key
  # file on the server's host (mode 0600 or 0400, the format of
  # docs/crypto.md) that the operator created and keeps; from then on only
  # that key opens the store: point custosd at it before its next start.
  rotateMasterKey @14 (keyFile :Text) -> ();
  # Starts or continues a KEK rotation; batchSize: data keys per
  # synchronous write, 0 = default (1000), at most 10,000; maxKeys 0 = no
  # bound.
  rotateKek @15 (batchSize :UInt64, maxKeys :UInt64)
      -> (kekVersion :UInt32, rewrapped :UInt64, complete :Bool);
  # The KEK versions the keyring holds, ascending.
  kekVersions @16 () -> (versions :List(UInt32));
  # Writes a backup into dir (created; must be absent or empty).
  backup @17 (dir :Text) -> (report :BackupReport);
  # Checks the backup in dir (checksums and structure; no keys needed).
  verifyBackup @18 (dir :Text) -> (verification :BackupVerification);
  # Writes a restore kit to path (must not exist). A restore itself is
  # offline: Engine::Restore on a stopped server (docs/operations.md).
  exportRestoreKit @19 (path :Text) -> ();
  # Destroys backup keys older than the backup retention; how many.
  expireBackupKeys @20 () -> (expired :UInt64);
  # The engine's counters since custosd started (cheap: no scan).
  stats @21 () -> (stats :EngineStats);
  # The progress of the last sweep the server started, by any admin
  # (running or ended): its phase ("transitions", "destroying_keys",
  # "pruning_history", "compacting"), the due records processed and the
  # batches committed so far. Answered while the sweep runs (a sweep runs on
  # the long lane, this call on the connection's own). All zero if none was
  # started.
  sweepProgress @22 () -> (running :Bool, phase :Text, recordsDone :UInt64,
                           batches :UInt64, startedMicros :Int64);
  # As Auditor.processingRegister.
  processingRegister @23 (html :Bool) -> (document :Text);
  # As Auditor.statistics.
  statistics @24 (kind :Text, fromMonth :UInt32, toMonth :UInt32)
      -> (statistics :Statistics);
  # The last long call of each of the server's two long lanes, running or
  # ended. `progress`: the maintenance lane (this interface's sweep,
  # completeShreds, reapplyPolicies, rekeySubject, verifyErasure,
  # rotateMasterKey, rotateKek, backup, verifyBackup, exportRestoreKit,
  # expireBackupKeys). `reading`: the reading lane (verifyChain and
  # processingRegister, this interface's and the Auditor's). A call of one
  # lane never waits for, or is refused because of, a call of the other.
  # Calls of any principal, once they had the lane (a call refused at once
  # as Unavailable never had it): a call refused for its arguments is shown
  # too, with its outcome. Not custosd's own scheduled maintenance.
  # Answered while those calls run (they are on their lanes, this call on
  # the connection's own). Before any: operation "".
  progress @25 () -> (progress :WorkProgress, reading :WorkProgress);
}

# What Admin.progress answers.
struct WorkProgress {
  operation @0 :Text;      # The call's name, as above ("backup").
  running @1 :Bool;
  # What it does now, counted in `unit`s, `done` of `total` (0: not known
  # ahead), as last reported:
  #   sweep           transitions, destroying_keys, pruning_history,
  #                   compacting (records: due records processed);
  #   verifyErasure   witnesses (witnesses gathered), then files (files
  #                   scanned, of those listed when it began);
  #   verifyChain     events (events verified, of the head's sequence
  #                   number less the first one verified, plus one);
  #   backup          records, then keystore (entries written), then
  #                   manifest;
  #   verifyBackup    checksums (bytes checked, of the manifest's), then
  #                   structure (sealed chunks read);
  #   rotateKek       keys (rewrapped by this call, of maxKeys if given);
  #   completeShreds  records (records rewritten), then compacting;
  #   reapplyPolicies records (records examined);
  # the others report no phase ("").
  phase @2 :Text;
  unit @3 :Text;
  done @4 :UInt64;
  total @5 :UInt64;
  startedMicros @6 :Int64;  # By the server's clock.
  endedMicros @7 :Int64;    # 0 while it runs.
  # "" while it runs; then "OK" (the call completed: what a verification
  # found is in its answer), or the code of the error it ended with
  # ("FailedPrecondition", ...; "Internal" for a failure of the server's).
  outcome @8 :Text;
}

struct EngineStats {
  writes @0 :UInt64;            # Records-database writes applied.
  syncs @1 :UInt64;             # Log syncs (writes/syncs: group commit).
  cachedKeys @2 :UInt64;        # Unwrapped subject keys cached now.
  keyCacheHits @3 :UInt64;      # Key lookups answered from the cache,
  keyCacheMisses @4 :UInt64;    # or by unwrapping the key.
}
