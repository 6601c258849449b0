// SubjectReport: everything Custos holds on one data subject (DESIGN
// section 5, "the subject report").
//
// A SubjectReport is a plain value the engine fills when an auditor answers
// a data subject's access request ("what do you hold on me, and who has seen
// it?"; Engine::ProduceSubjectReport). Rendering it is not storage's job:
// report/subject_report_json.h gives the versioned machine format and
// report/subject_report_html.h a self-contained page for the person.
// docs/subject-report.md describes the members and both renderings.
//
// Every string in the report may come from a host application or a person
// (kinds, field names and values, principal names, justifications, hold
// reasons, contest statements...) and is kept as given, not validated or
// escaped: whoever renders it must treat all of them as untrusted.
//
// Thread safety: a value; no shared state.

#ifndef CUSTOS_STORAGE_SUBJECT_REPORT_H_
#define CUSTOS_STORAGE_SUBJECT_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "storage/types.h"

namespace custos {

struct SubjectReport {
  Timestamp generated_at;
  std::string subject_id;          // Custos's id for the person ("s" + hex).
  std::string subject_identifier;  // The external identifier, decrypted.

  // A principal named somewhere in the report (owner, recipient, hold,
  // flag or contest author), with the name a person can recognise. Optional: an
  // id with no entry here is shown by its id alone.
  struct Principal {
    std::string id;
    std::string name;
  };
  std::vector<Principal> principals;

  struct Record {
    uint64_t id = 0;
    std::string kind;
    RecordState state = RecordState::kActive;
    std::string owner;                    // Principal id of the holder.
    std::vector<std::string> recipients;  // Principal ids granted access.
    Timestamp created_at;
    std::optional<Timestamp> closed_at;
    std::optional<Timestamp> blocked_at;
    std::optional<Timestamp> erased_at;
    // The next scheduled transition and when it is due; no deadline and an
    // empty transition when nothing is scheduled (e.g. an ERASED record).
    std::optional<Timestamp> next_deadline;
    std::string next_transition;  // "close", "block", "erase" or "".
    std::vector<Field> personal;  // This person's data still held; empty
                                  // once erased.
    // Notes by principals that this person's data may be incorrect
    // (FlagIncorrect): who, when, and the note, which is personal data held
    // on the person; the note is empty once erased.
    std::vector<FlagView> flags;
    std::vector<ContestView> contests;  // Contests concerning this person.
    std::vector<HoldView> holds;        // Holds on this record alone.
  };
  std::vector<Record> records;  // In record id order.

  std::vector<HoldView> subject_holds;  // Holds on all of the person's
                                        // records.

  // One event of the access history (DESIGN section 5).
  struct Access {
    Timestamp at;
    std::string principal_id;
    std::string principal_name;
    // What was done (EventActionName, storage/history.h): "create", "read",
    // "read_restricted", "rectify", "flag", "contest", "grant", "close",
    // "withdraw", "block", "erase", "export", "hold_set", "hold_released",
    // "shred", "report"; any other name is rendered as is.
    std::string action;
    uint64_t record_id = 0;     // 0 for events not about a record.
    std::string record_kind;    // "" for events not about a record.
    std::string record_state;   // RecordStateName at the time of the event,
                                // or "" for events not about a record.
    std::string purpose;        // PurposeKindName, or "" when none was given.
    std::string justification;  // "" when none was given.
    // Field names only, never values. A grant lists its grantee as
    // "grantee:<principal id>".
    std::vector<std::string> fields;
  };
  std::vector<Access> history;  // Oldest first.
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_SUBJECT_REPORT_H_
