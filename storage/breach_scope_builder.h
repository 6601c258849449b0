// Internal to storage/: scopes a personal-data breach (DESIGN section 7a;
// docs/accountability.md): walks the disclosure index of each principal
// named over the window (History::Disclosures), groups what each subject's
// data went to, and adds the identifiers to notify them by. Producing it
// is itself recorded: a breach_scope event per subject named and one about
// no subject for the act.
//
// Thread safety: thread-safe; reads take no lock, the events commit through
// the store.

#ifndef CUSTOS_STORAGE_BREACH_SCOPE_BUILDER_H_
#define CUSTOS_STORAGE_BREACH_SCOPE_BUILDER_H_

#include "base/clock.h"
#include "base/status.h"
#include "storage/breach_scope.h"
#include "storage/limits.h"
#include "storage/principals.h"
#include "storage/store.h"
#include "storage/subjects.h"
#include "storage/types.h"

namespace custos {

class BreachScopeBuilder {
 public:
  struct Units {
    Store& store;
    const Subjects& subjects;
    const Principals& principals;
    const Limits& limits;
    const Clock& clock;
  };
  explicit BreachScopeBuilder(Units units) : u_(units) {}

  // Engine::ProduceBreachScope, by `auditor` (its role already checked).
  // InvalidArgument for a query CheckBreachQuery refuses; NotFound naming
  // a principal id no principal ever had; ResourceExhausted for more than
  // Limits::max_breach_disclosures disclosures in the window; DataLoss if
  // something fails to authenticate or decrypt. `check` looks at the
  // scope before its events are written (BeforeDisclosure), with every
  // subject whose parts were opened (one shredded before the events are
  // written is then taken out: the scope returned is never larger).
  Result<BreachScope> Produce(const PrincipalInfo& auditor,
                              const BreachQuery& query,
                              const BeforeDisclosure<BreachScope>& check = {});

 private:
  Units u_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_BREACH_SCOPE_BUILDER_H_
