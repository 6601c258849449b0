// Internal to storage/: the only place leveldb::Status becomes a Status, the
// one way a LevelDB database is opened, and small helpers for LevelDB keys.

#ifndef CUSTOS_STORAGE_LEVELDB_UTIL_H_
#define CUSTOS_STORAGE_LEVELDB_UTIL_H_

#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/slice.h>
#include <leveldb/status.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"
#include "storage/options.h"

namespace custos {

// NotFound -> NotFound, Corruption -> DataLoss, a held lock -> Unavailable,
// anything else -> Internal. `what` says which operation failed. LevelDB's
// text follows, each absolute path in it cut to its last component
// ("IO error: 000123.ldb: Input/output error"): the message reaches
// custosd's clients, who have no business knowing the server's layout.
Status FromLevelDb(const leveldb::Status& s, std::string_view what);

// `text` with each path in it (a run of characters other than space and
// ':' that starts with "/", "./" or "../"; not "Input/output") cut to its
// last component.
std::string WithoutDirectories(std::string_view text);

// Opens the LevelDB database at `path` with the options every Custos
// database uses (paranoid checks on, no compression, no informational log)
// and `tuning`, in `env` (REQUIRES: non-null, outlives the database). The
// one place where LevelDB's options are set. Errors: as FromLevelDb maps
// them; a missing database with !create_if_missing is InvalidArgument, as
// LevelDB reports it. `cache_blocks`: whether LevelDB keeps the blocks it
// reads in its block cache (8 MiB); the keystore's are not kept, so that
// the wrapped key of a destroyed subject does not stay in memory after its
// destruction (docs/decisions.md, "Tables read with pread").
Result<std::unique_ptr<leveldb::DB>> OpenLevelDb(const std::string& path,
                                                 bool create_if_missing,
                                                 leveldb::Env* env,
                                                 const LevelDbTuning& tuning,
                                                 bool cache_blocks = true);

// Appends `v` as 4 or 8 big-endian bytes, so numeric order is key order.
void AppendBigEndian32(std::string& out, uint32_t v);
void AppendBigEndian64(std::string& out, uint64_t v);
uint32_t ReadBigEndian32(std::string_view in);  // REQUIRES: in.size() >= 4.
uint64_t ReadBigEndian64(std::string_view in);  // REQUIRES: in.size() >= 8.

inline leveldb::Slice ToSlice(std::string_view s) {
  return {s.data(), s.size()};
}
inline std::string_view ToView(const leveldb::Slice& s) {
  return {s.data(), s.size()};
}

inline std::string_view AsStringView(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}
inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace custos

#endif  // CUSTOS_STORAGE_LEVELDB_UTIL_H_
