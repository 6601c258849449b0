// Internal to storage/: the only place leveldb::Status becomes a Status, and
// small helpers for LevelDB keys.

#ifndef CUSTOS_STORAGE_LEVELDB_UTIL_H_
#define CUSTOS_STORAGE_LEVELDB_UTIL_H_

#include <leveldb/status.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"

namespace custos {

// NotFound -> NotFound, Corruption -> DataLoss, a held lock -> Unavailable,
// anything else -> Internal. `what` says which operation failed.
Status FromLevelDb(const leveldb::Status& s, std::string_view what);

// Appends `v` as 8 big-endian bytes, so numeric order is key order.
void AppendBigEndian64(std::string& out, uint64_t v);
uint64_t ReadBigEndian64(std::string_view in);  // REQUIRES: in.size() >= 8.

inline std::string_view AsStringView(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}
inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace custos

#endif  // CUSTOS_STORAGE_LEVELDB_UTIL_H_
