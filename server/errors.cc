#include "server/errors.h"

#include <array>
#include <string_view>

namespace custos::server {
namespace {

constexpr std::array kCodes = {
    StatusCode::kNotFound,           StatusCode::kInvalidArgument,
    StatusCode::kFailedPrecondition, StatusCode::kUnauthenticated,
    StatusCode::kPermissionDenied,   StatusCode::kResourceExhausted,
    StatusCode::kUnavailable,        StatusCode::kDataLoss,
    StatusCode::kInternal,           StatusCode::kAlreadyExists};

}  // namespace

kj::Exception ToException(const Status& status) {
  std::string text(StatusCodeName(status.code()));
  text.append(": ").append(status.message());
  // No file or line: kj would otherwise send the server's source location.
  kj::Exception e(kj::Exception::Type::FAILED, "", 0,
                  kj::heapString(text.data(), text.size()));
  return e;
}

std::string ClientReason(kj::Exception::Type type, std::string_view reason) {
  for (StatusCode code : kCodes) {
    std::string prefix(StatusCodeName(code));
    prefix += ": ";
    if (reason.starts_with(prefix)) return std::string(reason);
  }
  switch (type) {
    case kj::Exception::Type::OVERLOADED:
      return "ResourceExhausted: the server is overloaded";
    case kj::Exception::Type::DISCONNECTED:
      return "Unavailable: disconnected";
    case kj::Exception::Type::UNIMPLEMENTED:
      return "InvalidArgument: unknown method";
    case kj::Exception::Type::FAILED:
      break;
  }
  return "InvalidArgument: malformed request";
}

Status FromException(const kj::Exception& e) {
  std::string_view text(e.getDescription().cStr());
  // What the client's RPC system puts before the server's description.
  constexpr std::string_view kRemote = "remote exception: ";
  if (text.starts_with(kRemote)) text.remove_prefix(kRemote.size());
  for (StatusCode code : kCodes) {
    std::string prefix(StatusCodeName(code));
    prefix += ": ";
    if (text.starts_with(prefix)) {
      return Status(code, std::string(text.substr(prefix.size())));
    }
  }
  // Not an answer of a Custos server (the client's own RPC system, or a
  // peer that is none): kj's words name its source's expressions
  // ("::writev(fd, iov.begin(), iov.size()): Broken pipe"), so none of
  // them is passed on.
  switch (e.getType()) {
    case kj::Exception::Type::DISCONNECTED:
      return Status::Unavailable("the connection to the server ended");
    case kj::Exception::Type::OVERLOADED:
      return Status::ResourceExhausted("the server is overloaded");
    case kj::Exception::Type::UNIMPLEMENTED:
      return Status::InvalidArgument("the server does not know the call");
    case kj::Exception::Type::FAILED:
      break;
  }
  return Status::Internal("the call failed in the RPC system");
}

}  // namespace custos::server
