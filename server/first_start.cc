#include "server/first_start.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace custos::server {

Status WritePrivateFile(const std::string& path, std::string_view content) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return Status::AlreadyExists(path + " exists; give a new file");
    }
    return Status::Internal("cannot create " + path + ": " +
                            std::strerror(errno));
  }
  std::string line(content);
  line.push_back('\n');
  const bool ok = write(fd, line.data(), line.size()) ==
                      static_cast<ssize_t>(line.size()) &&
                  fsync(fd) == 0;
  const bool closed = close(fd) == 0;
  if (!ok || !closed) return Status::Internal("cannot write " + path);
  return Status::Ok();
}

Result<bool> BootstrapFirstAdmin(Engine& engine,
                                 const std::string& token_file) {
  auto admin = engine.BootstrapAdmin(kFirstAdminId, "Administrator");
  if (!admin) {
    if (admin.error().code() == StatusCode::kFailedPrecondition) return false;
    return Fail(admin.error());
  }
  CUSTOS_RETURN_IF_ERROR(WritePrivateFile(token_file, admin->token));
  return true;
}

}  // namespace custos::server
