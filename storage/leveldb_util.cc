#include "storage/leveldb_util.h"

#include <leveldb/cache.h>
#include <leveldb/env.h>

#include <cstdarg>

namespace custos {

std::string WithoutDirectories(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = text.find_first_of(": ", i);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view token = text.substr(i, end - i);
    const bool path = token.starts_with('/') || token.starts_with("./") ||
                      token.starts_with("../");
    out += path ? token.substr(token.rfind('/') + 1) : token;
    if (end < text.size()) out += text[end];
    i = end + 1;
  }
  return out;
}

Status FromLevelDb(const leveldb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  std::string message(what);
  message += ": ";
  message += WithoutDirectories(s.ToString());
  if (s.IsNotFound()) return Status::NotFound(std::move(message));
  if (s.IsCorruption()) return Status::DataLoss(std::move(message));
  // LevelDB 1.23 reports a LOCK file held by another process (or this
  // one) as an IOError whose message starts "lock <file>" (env_posix.cc,
  // LockFile); any other IOError may name a path holding "lock".
  if (s.IsIOError() && s.ToString().starts_with("IO error: lock ")) {
    return Status::Unavailable(std::move(message));
  }
  return Status::Internal(std::move(message));
}

namespace {

// LevelDB's informational log (its LOG file) names the boundary keys of
// manual compactions, and erasure compactions are bounded by the erased
// keys: a shredded subject's id would outlive the shred there. Custos
// keeps no such log.
class NullLogger final : public leveldb::Logger {
 public:
  void Logv(const char*, va_list) override {}
};

}  // namespace

Result<std::unique_ptr<leveldb::DB>> OpenLevelDb(const std::string& path,
                                                 bool create_if_missing,
                                                 leveldb::Env* env,
                                                 const LevelDbTuning& tuning,
                                                 bool cache_blocks) {
  leveldb::Options options;
  options.create_if_missing = create_if_missing;
  options.paranoid_checks = true;
  // Stored bytes stay verbatim: ciphertext does not compress anyway, and
  // the byte scans that check erasure and encryption at rest (and the
  // tests') cannot see a value stored as back-references.
  options.compression = leveldb::kNoCompression;
  options.env = env;
  static NullLogger null_logger;  // Outlives every database.
  options.info_log = &null_logger;
  options.write_buffer_size = tuning.write_buffer_size;
  options.max_file_size = tuning.max_file_size;
  options.block_size = tuning.block_size;
  if (!cache_blocks) {
    // LevelDB caches nothing in a cache of capacity 0; shared, it is never
    // freed (outlives every database).
    static leveldb::Cache* const none = leveldb::NewLRUCache(0);
    options.block_cache = none;
  }
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(options, path, &raw);
  if (!s.ok()) {
    if (s.IsInvalidArgument())
      return Fail(Status::InvalidArgument(s.ToString()));
    return Fail(FromLevelDb(s, "opening " + path));
  }
  return std::unique_ptr<leveldb::DB>(raw);
}

// One append of the whole number: a push_back per byte costs a capacity
// check each, and these build every key of every write.
void AppendBigEndian32(std::string& out, uint32_t v) {
  char bytes[4];
  for (int i = 0; i < 4; ++i) {
    bytes[i] = static_cast<char>((v >> (8 * (3 - i))) & 0xff);
  }
  out.append(bytes, sizeof(bytes));
}

void AppendBigEndian64(std::string& out, uint64_t v) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<char>((v >> (8 * (7 - i))) & 0xff);
  }
  out.append(bytes, sizeof(bytes));
}

uint32_t ReadBigEndian32(std::string_view in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

uint64_t ReadBigEndian64(std::string_view in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

}  // namespace custos
