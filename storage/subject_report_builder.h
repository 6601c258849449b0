// Internal to storage/: gathers everything held on one subject into a
// SubjectReport (DESIGN section 5): the subject's records with the personal
// data still held in any state, states and deadlines, flag notes, contests,
// holds, and
// the full access history with the names of the principals in it.
// Producing a report is itself an event. Rendering is report/'s job.
//
// Thread safety: thread-safe; reads take no lock, the report event commits
// through the store.

#ifndef CUSTOS_STORAGE_SUBJECT_REPORT_BUILDER_H_
#define CUSTOS_STORAGE_SUBJECT_REPORT_BUILDER_H_

#include <string_view>

#include "base/clock.h"
#include "base/status.h"
#include "storage/holds.h"
#include "storage/limits.h"
#include "storage/principals.h"
#include "storage/record_store.h"
#include "storage/store.h"
#include "storage/subject_report.h"
#include "storage/subjects.h"
#include "storage/types.h"

namespace custos {

class SubjectReportBuilder {
 public:
  struct Units {
    Store& store;
    const Subjects& subjects;
    const RecordStore& record_store;
    const Holds& holds;
    const Principals& principals;
    const Limits& limits;
    const Clock& clock;
  };
  explicit SubjectReportBuilder(Units units) : u_(units) {}

  // Engine::ProduceSubjectReport, by `auditor`. NotFound for an unknown or
  // shredded subject; DataLoss if something fails to decrypt. `check`
  // looks at the report before its event is written (BeforeDisclosure).
  Result<SubjectReport> Produce(
      const PrincipalInfo& auditor, std::string_view subject_id,
      const BeforeDisclosure<SubjectReport>& check = {});

 private:
  Units u_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_SUBJECT_REPORT_BUILDER_H_
