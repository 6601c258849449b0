#include "crypto/guarded_bytes.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace custos::crypto {
namespace {

// sodium_malloc'd room for `size` bytes and a NUL; aborts when out of
// memory, as every allocation of the process does.
char* Allocate(size_t size) {
  if (sodium_init() < 0) std::abort();
  void* p = sodium_malloc(size + 1);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<char*>(p);
}

// Makes the region read-only; aborts if it cannot, as SecretKey does.
void Seal(char* data) {
  if (sodium_mprotect_readonly(data) != 0) std::abort();
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Result<GuardedBytes> GuardedBytes::ReadFile(const std::string& path,
                                            size_t max_size) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    std::string what = std::string("cannot open ").append(path).append(": ");
    what.append(std::strerror(err));
    return Fail(err == ENOENT ? Status::NotFound(what)
                              : Status::Internal(what));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Fail(
        Status::Internal(std::string(path).append(" is not a regular file")));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0 || size > max_size) {
    return Fail(Status::InvalidArgument(std::string(path)
                                            .append(" must hold 1 to ")
                                            .append(std::to_string(max_size))
                                            .append(" bytes")));
  }
  GuardedBytes out(Allocate(size), size);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd.get(), out.data_ + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return Fail(Status::Internal(
          std::string("cannot read ").append(path).append(" whole")));
    }
    done += static_cast<size_t>(n);
  }
  out.data_[size] = '\0';
  Seal(out.data_);
  return out;
}

GuardedBytes GuardedBytes::Copy(std::string_view bytes) {
  GuardedBytes out(Allocate(bytes.size()), bytes.size());
  if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
  out.data_[bytes.size()] = '\0';
  Seal(out.data_);
  return out;
}

GuardedBytes::GuardedBytes(GuardedBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

GuardedBytes& GuardedBytes::operator=(GuardedBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

GuardedBytes::~GuardedBytes() { Release(); }

void GuardedBytes::Release() {
  if (data_ != nullptr) sodium_free(data_);  // Wipes it first.
  data_ = nullptr;
  size_ = 0;
}

}  // namespace custos::crypto
