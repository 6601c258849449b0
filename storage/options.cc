#include "storage/options.h"

#include <optional>
#include <string>
#include <string_view>

namespace custos {

std::optional<TableReads> TableReadsFromName(std::string_view name) {
  if (name == "mapped") return TableReads::kMapped;
  if (name == "pread") return TableReads::kPread;
  return std::nullopt;
}

std::string_view TableReadsName(TableReads reads) {
  return reads == TableReads::kPread ? "pread" : "mapped";
}

Status CheckOptions(const Options& options) {
  if (options.data_dir.empty()) {
    return Status::InvalidArgument("data_dir must be set");
  }
  if (options.clock == nullptr) {
    return Status::InvalidArgument("a clock must be given");
  }
  if (options.limits.max_page_size == 0 || options.limits.max_list_scan == 0 ||
      options.limits.max_batch_records == 0 ||
      options.key_cache_capacity == 0 ||
      options.history_examined_per_sweep == 0 ||
      options.erasure_compaction_delay.count() < 0 ||
      options.backup_retention.count() <= 0) {
    return Status::InvalidArgument(
        "max_page_size, max_list_scan, max_batch_records, "
        "key_cache_capacity and history_examined_per_sweep must be at least "
        "1, erasure_compaction_delay at least 0, backup_retention more than "
        "0");
  }
  if (options.limits.max_reminders_per_call < 2) {
    return Status::InvalidArgument("max_reminders_per_call must be at least 2");
  }
  if (options.limits.max_breach_disclosures == 0) {
    return Status::InvalidArgument("max_breach_disclosures must be at least 1");
  }
  if (options.limits.max_personal_bytes > kMaxPersonalBytesLimit) {
    return Status::InvalidArgument(
        std::string("max_personal_bytes may be at most ")
            .append(std::to_string(kMaxPersonalBytesLimit)));
  }
  return Status::Ok();
}

}  // namespace custos
