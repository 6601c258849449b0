// Internal to storage/: how a stored value becomes a Cap'n Proto message
// and back. Shared by the codec of records, subjects, keys (codec.cc) and
// by the access history (history.cc), so every stored value is read with
// the same limits and the same DataLoss on corruption.

#ifndef CUSTOS_STORAGE_CAPNP_VALUE_H_
#define CUSTOS_STORAGE_CAPNP_VALUE_H_

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "base/status.h"

namespace custos::capnp_value {

// The most a value's reader traverses. Stored values are small; the bound
// only stops a corrupt value from making the reader walk far. Writers keep
// their values well under it (kMaxStoredRecordBytes in storage/limits.h), so
// the limit is never met by a value that was written whole.
inline constexpr size_t kMaxValueBytes = 64 * 1024 * 1024;

inline capnp::ReaderOptions ReaderOptions() {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = kMaxValueBytes / 8;
  options.nestingLimit = 16;
  return options;
}

// First segment of a builder, in words. Stored values are mostly well
// under 1 KiB; Cap'n Proto's default (1024 words) would allocate and zero
// 8 KiB for each, which profiling showed as a real share of a write. A
// larger value simply grows into more segments.
inline constexpr unsigned kFirstSegmentWords = 128;

// The message in flat-array form, as stored.
inline std::string ToBytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()),
                     bytes.size());
}

template <typename R>
struct IsResult : std::false_type {};
template <typename V>
struct IsResult<Result<V>> : std::true_type {};

// Decodes `bytes` as a message with root T and returns fn(root), which may
// be a value or a Result. LevelDB values carry no alignment guarantee, so
// the bytes are copied into word-aligned memory first. Any Cap'n Proto
// exception becomes DataLoss("corrupt stored <what>"); nothing throws.
template <typename T, typename Fn>
auto Decode(std::span<const uint8_t> bytes, const char* what, Fn&& fn) {
  using R = decltype(fn(std::declval<typename T::Reader>()));
  using Out = std::conditional_t<IsResult<R>::value, R, Result<R>>;
  auto corrupt = [what] {
    return Out(Fail(Status::DataLoss(std::string("corrupt stored ") + what)));
  };
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) {
    return corrupt();
  }
  kj::Array<capnp::word> words =
      kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  try {
    capnp::FlatArrayMessageReader reader(words, ReaderOptions());
    return Out(fn(reader.getRoot<T>()));
  } catch (const kj::Exception&) {
    return corrupt();
  }
}

template <typename T, typename Fn>
auto Decode(std::string_view bytes, const char* what, Fn&& fn) {
  return Decode<T>(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()),
                               bytes.size()),
      what, std::forward<Fn>(fn));
}

inline std::string FromText(capnp::Text::Reader t) {
  return std::string(t.cStr(), t.size());
}
inline capnp::Text::Reader AsText(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}

}  // namespace custos::capnp_value

#endif  // CUSTOS_STORAGE_CAPNP_VALUE_H_
