// What custosd does on its first start and `custos init` does offline: the
// first admin of a new store, with its credential written once to a private
// file.

#ifndef CUSTOS_SERVER_FIRST_START_H_
#define CUSTOS_SERVER_FIRST_START_H_

#include <string>
#include <string_view>

#include "base/status.h"
#include "storage/engine.h"

namespace custos::server {

// The id of the first admin, as custosd and `custos init` create it.
inline constexpr char kFirstAdminId[] = "admin";

// Writes `content` and a newline to the new file `path`, created with mode
// 0600 (never briefly wider) and fsynced: tokens, reports. Never
// overwrites. Errors: AlreadyExists if `path` exists; Internal if it cannot
// be created or written (the message names the path and the reason).
Status WritePrivateFile(const std::string& path, std::string_view content);

// WritePrivateFile in two steps, for a file reserved before what it is to
// hold exists (a token the server is about to issue): CreatePrivateFile
// creates `path` new, mode 0600, and returns its descriptor (errors as
// WritePrivateFile's); FillPrivateFile writes `content` and a newline to
// it whole, fsyncs and closes it, and on failure removes `path` (Internal,
// naming it).
Result<int> CreatePrivateFile(const std::string& path);
Status FillPrivateFile(int fd, const std::string& path,
                       std::string_view content);

// Creates the first admin (kFirstAdminId) of the store in `engine` if it
// has no principal yet, and writes its token to the new file `token_file`
// (as WritePrivateFile), which is created first: if it cannot be, no admin
// is created. Returns true if it did, false if the store already had its
// first admin (a restart; nothing is written, an existing `token_file` is
// left as it is). Errors: AlreadyExists if `token_file` exists while the
// store has no admin yet (a file from another store); those of creating or
// writing the file (on a write failure the admin exists but its token is
// lost: start again on a new data directory); those of
// Engine::BootstrapAdmin other than its FailedPrecondition for a store
// that has principals.
Result<bool> BootstrapFirstAdmin(Engine& engine, const std::string& token_file);

// Engine::RecoverAdmin with its token written to the new file `token_file`
// (as WritePrivateFile), which is created first: if it cannot be, no admin
// is created; if the admin cannot be, the file is removed. Errors: those of
// creating or writing the file (on a write failure the admin exists but
// its token is lost: recover another) and of Engine::RecoverAdmin.
Status RecoverAdmin(Engine& engine, std::string_view id,
                    const std::string& token_file);

}  // namespace custos::server

#endif  // CUSTOS_SERVER_FIRST_START_H_
