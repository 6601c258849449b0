// Internal to storage/: builds the register of processing activities
// (storage/processing_register.h) from the live store. Reads the field-name
// catalog ("fk:", written by records.cc), the policies, and every record
// once (a scan of "r:": its cost grows with the store, which a register
// asked for now and then can afford; docs/accountability.md).
//
// Thread safety: thread-safe; reads only.

#ifndef CUSTOS_STORAGE_REGISTER_BUILDER_H_
#define CUSTOS_STORAGE_REGISTER_BUILDER_H_

#include "base/clock.h"
#include "base/status.h"
#include "storage/keystore.h"
#include "storage/options.h"
#include "storage/policies.h"
#include "storage/principals.h"
#include "storage/processing_register.h"
#include "storage/record_store.h"
#include "storage/record_view.h"
#include "storage/store.h"

namespace custos {

class RegisterBuilder {
 public:
  struct Units {
    const Store& store;
    const RecordStore& record_store;
    const RecordViews& views;  // Effective states, shreds included.
    const Policies& policies;
    const Principals& principals;
    const Keystore& keystore;
    const Options& options;
    const Clock& clock;
  };
  explicit RegisterBuilder(Units units) : u_(units) {}

  // Engine::ProcessingRegister. A record that does not decode (or whose
  // state cannot be computed: DataLoss) is counted in unreadable_records
  // and skipped; any other error stops the register.
  Result<ProcessingRegister> Build() const;

 private:
  Units u_;
};

}  // namespace custos

#endif  // CUSTOS_STORAGE_REGISTER_BUILDER_H_
