#include "server/first_start.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace custos::server {

// Never briefly wider than 0600: created with it.
Result<int> CreatePrivateFile(const std::string& path) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  if (errno == EEXIST) {
    return Fail(Status::AlreadyExists(path + " exists; give a new file"));
  }
  return Fail(
      Status::Internal("cannot create " + path + ": " + std::strerror(errno)));
}

// Short writes resumed; no partial secret is left behind.
Status FillPrivateFile(int fd, const std::string& path,
                       std::string_view content) {
  std::string line(content);
  line.push_back('\n');
  size_t done = 0;
  bool ok = true;
  while (ok && done < line.size()) {
    const ssize_t n = write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok) {
    unlink(path.c_str());
    return Status::Internal("cannot write " + path);
  }
  return Status::Ok();
}

Status WritePrivateFile(const std::string& path, std::string_view content) {
  auto fd = CreatePrivateFile(path);
  if (!fd) return fd.error();
  return FillPrivateFile(*fd, path, content);
}

Result<bool> BootstrapFirstAdmin(Engine& engine,
                                 const std::string& token_file) {
  // The file first: a token that could not be written would leave a store
  // whose only admin nobody can act as.
  auto fd = CreatePrivateFile(token_file);
  if (!fd) {
    if (fd.error().code() != StatusCode::kAlreadyExists)
      return Fail(fd.error());
    // A restart: the store has its first admin (revoked or not), and the
    // file is the one written then. A new store and a file left from
    // another one: refused before anything is created.
    auto admin = engine.ActorFor(kFirstAdminId);
    if (admin || admin.error().code() != StatusCode::kNotFound) return false;
    return Fail(Status::AlreadyExists(
        token_file +
        " exists, but the store has no admin yet: remove it "
        "(it is from another store) or give another file"));
  }
  auto admin = engine.BootstrapAdmin(kFirstAdminId, "Administrator");
  if (!admin) {
    close(*fd);
    unlink(token_file.c_str());
    if (admin.error().code() == StatusCode::kFailedPrecondition) return false;
    return Fail(admin.error());
  }
  CUSTOS_RETURN_IF_ERROR(FillPrivateFile(*fd, token_file, admin->token));
  return true;
}

Status RecoverAdmin(Engine& engine, std::string_view id,
                    const std::string& token_file) {
  auto fd = CreatePrivateFile(token_file);
  if (!fd) return fd.error();
  auto admin = engine.RecoverAdmin(id, "Recovered administrator");
  if (!admin) {
    close(*fd);
    unlink(token_file.c_str());
    return admin.error();
  }
  return FillPrivateFile(*fd, token_file, admin->token);
}

}  // namespace custos::server
