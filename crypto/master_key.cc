#include "crypto/master_key.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

#include "crypto/internal.h"

namespace custos::crypto {
namespace {

constexpr std::string_view kHeader = "custos-master-key-v1\n";
constexpr size_t kHexDigits = 2 * SecretKey::kSize;
constexpr size_t kFileSize = kHeader.size() + kHexDigits + 1;
static_assert(kHeader.size() == 21 && kFileSize == 86);
static_assert(sizeof(kKdfContext) - 1 == crypto_kdf_CONTEXTBYTES);
static_assert(SecretKey::kSize == crypto_kdf_KEYBYTES);
static_assert(SecretKey::kSize >= crypto_kdf_BYTES_MIN &&
              SecretKey::kSize <= crypto_kdf_BYTES_MAX);

// Closes a file descriptor on every exit path.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now, reporting the result (close() can report a deferred write
  // error on some file systems).
  int Close() { return ::close(std::exchange(fd_, -1)); }

 private:
  int fd_;
};

std::string ErrnoText(int err) {
  return std::error_code(err, std::generic_category()).message();
}

std::string ModeText(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// The checks a key file must pass before a single byte of it is read.
Status CheckKeyFileStat(const struct stat& st, const std::string& path) {
  if (S_ISLNK(st.st_mode)) {
    return Status::FailedPrecondition("master key file " + path +
                                      " is a symbolic link");
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::FailedPrecondition("master key file " + path +
                                      " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    return Status::FailedPrecondition(
        "master key file " + path + " has mode " + ModeText(st.st_mode) +
        "; it must grant nothing to group or others (0600 or 0400)");
  }
  return Status::Ok();
}

// Decodes exactly kHexDigits hex digits. The decoded bytes only ever live in
// a buffer wiped on return.
Result<SecretKey> ParseHexKey(const char* hex, size_t length,
                              std::string_view what) {
  if (length != kHexDigits) {
    return Fail(Status::InvalidArgument(std::string(what) +
                                        " must hold 64 hex digits"));
  }
  internal::WipedArray<uint8_t, SecretKey::kSize> bin;
  size_t bin_length = 0;
  // hex_end == nullptr makes libsodium reject any non-hex character.
  if (sodium_hex2bin(bin.data(), bin.size(), hex, length, nullptr, &bin_length,
                     nullptr) != 0 ||
      bin_length != SecretKey::kSize) {
    return Fail(Status::InvalidArgument(std::string(what) +
                                        " must hold 64 hex digits"));
  }
  // A key of zeros is no secret (a placeholder left in place; helper-131).
  if (sodium_is_zero(bin.data(), bin.size()) == 1) {
    return Fail(Status::InvalidArgument(
        std::string(what) + " is all zeros: not a key (generate one)"));
  }
  return SecretKey::FromBytes(std::span<const uint8_t>(bin.data(), bin.size()));
}

// Writes all of `data`, retrying after signals and short writes.
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Makes the new directory entry durable too, not only the file's contents.
bool SyncParentDirectory(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  UniqueFd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return false;
  return ::fsync(dir.get()) == 0;
}

}  // namespace

Result<SecretKey> LoadMasterKeyFile(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return Fail(Status::NotFound("master key file " + path + " not found"));
    }
    return Fail(Status::Internal("cannot stat master key file " + path + ": " +
                                 ErrnoText(err)));
  }
  if (Status s = CheckKeyFileStat(st, path); !s.ok()) return Fail(s);

  // The path may have been swapped since lstat(): O_NOFOLLOW refuses a
  // symlink, O_NONBLOCK keeps a FIFO from blocking us, and fstat() re-checks
  // what was actually opened.
  UniqueFd fd(::open(
      path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (fd.get() < 0) {
    int err = errno;
    if (err == ENOENT) {
      return Fail(Status::NotFound("master key file " + path + " not found"));
    }
    if (err == ELOOP) {
      return Fail(Status::FailedPrecondition("master key file " + path +
                                             " is a symbolic link"));
    }
    return Fail(Status::Internal("cannot open master key file " + path + ": " +
                                 ErrnoText(err)));
  }
  if (::fstat(fd.get(), &st) != 0) {
    return Fail(Status::Internal("cannot stat master key file " + path + ": " +
                                 ErrnoText(errno)));
  }
  if (Status s = CheckKeyFileStat(st, path); !s.ok()) return Fail(s);

  // One byte more than a valid file, to tell "too long" from "exact".
  internal::WipedArray<char, kFileSize + 1> contents;
  size_t length = 0;
  while (length < contents.size()) {
    ssize_t n =
        ::read(fd.get(), contents.data() + length, contents.size() - length);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(Status::Internal("cannot read master key file " + path +
                                   ": " + ErrnoText(errno)));
    }
    if (n == 0) break;
    length += static_cast<size_t>(n);
  }
  if (length != kFileSize) {
    return Fail(Status::InvalidArgument("master key file " + path +
                                        " has the wrong length"));
  }
  if (std::string_view(contents.data(), kHeader.size()) != kHeader ||
      contents[kFileSize - 1] != '\n') {
    return Fail(Status::InvalidArgument("master key file " + path +
                                        " has the wrong header or trailer"));
  }
  return ParseHexKey(contents.data() + kHeader.size(), kHexDigits,
                     "master key file " + path);
}

Result<SecretKey> LoadMasterKeyFromEnv(const char* var) {
  if (var == nullptr) {
    return Fail(Status::InvalidArgument("no environment variable named"));
  }
  const char* value = std::getenv(var);
  if (value == nullptr) {
    return Fail(Status::NotFound("environment variable " + std::string(var) +
                                 " is not set"));
  }
  // The string belongs to the environment; we neither copy nor wipe it.
  return ParseHexKey(value, ::strnlen(value, kHexDigits + 1),
                     "environment variable " + std::string(var));
}

Result<SecretKey> GenerateMasterKeyFile(const std::string& path) {
  SecretKey key = SecretKey::Generate();

  // One spare byte: sodium_bin2hex() writes a terminating NUL, which the
  // newline then replaces.
  internal::WipedArray<char, kFileSize + 1> contents;
  std::memcpy(contents.data(), kHeader.data(), kHeader.size());
  sodium_bin2hex(contents.data() + kHeader.size(), kHexDigits + 1,
                 key.bytes().data(), key.bytes().size());
  contents[kFileSize - 1] = '\n';

  UniqueFd fd(::open(path.c_str(),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     0600));
  if (fd.get() < 0) {
    int err = errno;
    if (err == EEXIST) {
      return Fail(
          Status::AlreadyExists("master key file " + path + " already exists"));
    }
    return Fail(Status::Internal("cannot create master key file " + path +
                                 ": " + ErrnoText(err)));
  }
  // From here on, a failure removes the half-written file so that a retry is
  // not refused with AlreadyExists.
  auto fail = [&path](const char* step, int err) {
    ::unlink(path.c_str());
    return Fail(Status::Internal("cannot " + std::string(step) +
                                 " master key file " + path + ": " +
                                 ErrnoText(err)));
  };
  // The umask may have taken bits away from 0600; the documented mode is
  // exact.
  if (::fchmod(fd.get(), 0600) != 0) return fail("chmod", errno);
  if (!WriteAll(fd.get(), contents.data(), kFileSize)) {
    return fail("write", errno);
  }
  if (::fsync(fd.get()) != 0) return fail("sync", errno);
  if (fd.Close() != 0) return fail("close", errno);
  if (!SyncParentDirectory(path)) return fail("sync the directory of", errno);
  return key;
}

SecretKey DeriveSubkey(const SecretKey& master, Subkey id) {
  assert(!master.empty());
  internal::EnsureSodiumInitialized();
  internal::WipedArray<uint8_t, SecretKey::kSize> subkey;
  if (crypto_kdf_derive_from_key(subkey.data(), subkey.size(),
                                 static_cast<uint64_t>(id), kKdfContext,
                                 master.bytes().data()) != 0) {
    std::abort();  // Only possible for a subkey length out of range.
  }
  Result<SecretKey> key = SecretKey::FromBytes(
      std::span<const uint8_t>(subkey.data(), subkey.size()));
  return std::move(*key);
}

}  // namespace custos::crypto
