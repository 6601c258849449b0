// GuardedBytes: secret bytes of any length (a TLS private key in PEM, say)
// held in libsodium guarded memory, as SecretKey holds a 256-bit key: one
// sodium_malloc() region (guard pages around it, locked against swapping
// where the system allows), read-only once filled, wiped by sodium_free()
// when destroyed. A NUL follows the bytes, so they may be handed to a C
// parser as a string.
//
// Move-only: a copy would be a second secret to wipe.
//
// Thread safety: a const GuardedBytes may be read from several threads.

#ifndef CUSTOS_CRYPTO_GUARDED_BYTES_H_
#define CUSTOS_CRYPTO_GUARDED_BYTES_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.h"

namespace custos::crypto {

class GuardedBytes {
 public:
  // Reads the whole file at `path` straight into guarded memory: no other
  // copy of its content is left in this process. NotFound if it does not
  // exist, InvalidArgument if it is empty or larger than `max_size`,
  // Internal for any other failure (the message names the path, never the
  // content).
  static Result<GuardedBytes> ReadFile(const std::string& path,
                                       size_t max_size);

  // Copies `bytes` into guarded memory. The caller remains responsible for
  // wiping its own copy.
  static GuardedBytes Copy(std::string_view bytes);

  GuardedBytes() = default;  // Empty.
  GuardedBytes(GuardedBytes&& other) noexcept;
  GuardedBytes& operator=(GuardedBytes&& other) noexcept;
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  ~GuardedBytes();

  // Valid while this object lives and is not moved from.
  std::string_view view() const { return {data_, size_}; }
  const char* c_str() const { return data_ == nullptr ? "" : data_; }
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }

 private:
  GuardedBytes(char* data, size_t size) : data_(data), size_(size) {}
  void Release();

  char* data_ = nullptr;  // size_ + 1 bytes, sodium_malloc'd; read-only.
  size_t size_ = 0;
};

}  // namespace custos::crypto

#endif  // CUSTOS_CRYPTO_GUARDED_BYTES_H_
