// Status and Result: how every layer below server/ reports expected failures.
//
// A Status is a code from a small fixed set (the same set the RPC layer maps
// one-to-one onto its errors) and a message for humans. Messages never carry
// personal data or key material: they name what was wrong ("record not
// found", "field 'x' is too long"), never the value.
//
// Result<T> holds either a T or a non-OK Status. Functions return the most
// specific code that applies.
//
// Thread safety: Status and Result are values; distinct objects may be used
// from distinct threads without synchronisation.

#ifndef CUSTOS_BASE_STATUS_H_
#define CUSTOS_BASE_STATUS_H_

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace custos {

enum class StatusCode {
  kOk = 0,
  kNotFound,            // No such thing, or the caller may not know of it.
  kInvalidArgument,     // The request itself is malformed or out of limits.
  kFailedPrecondition,  // Well-formed, but not allowed in the current state.
  kUnauthenticated,     // No valid credential: a wrong, unknown or revoked
                        // token or principal (the message never says which).
  kPermissionDenied,    // An identified caller lacks the role (never used
                        // for records: a record one may not see is
                        // NotFound).
  kResourceExhausted,   // A configured limit or quota was hit.
  kUnavailable,         // Try again later (e.g. the store is shutting down).
  kDataLoss,            // Stored data failed authentication or is corrupt.
  kInternal,            // A bug or an unexpected failure below us.
  kAlreadyExists,       // Creating something that exists.
};

// Returns a stable name such as "NotFound".
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  // An OK status.
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status NotFound(std::string msg) {
    return {StatusCode::kNotFound, std::move(msg)};
  }
  static Status InvalidArgument(std::string msg) {
    return {StatusCode::kInvalidArgument, std::move(msg)};
  }
  static Status FailedPrecondition(std::string msg) {
    return {StatusCode::kFailedPrecondition, std::move(msg)};
  }
  static Status Unauthenticated(std::string msg) {
    return {StatusCode::kUnauthenticated, std::move(msg)};
  }
  static Status PermissionDenied(std::string msg) {
    return {StatusCode::kPermissionDenied, std::move(msg)};
  }
  static Status ResourceExhausted(std::string msg) {
    return {StatusCode::kResourceExhausted, std::move(msg)};
  }
  static Status Unavailable(std::string msg) {
    return {StatusCode::kUnavailable, std::move(msg)};
  }
  static Status DataLoss(std::string msg) {
    return {StatusCode::kDataLoss, std::move(msg)};
  }
  static Status Internal(std::string msg) {
    return {StatusCode::kInternal, std::move(msg)};
  }
  static Status AlreadyExists(std::string msg) {
    return {StatusCode::kAlreadyExists, std::move(msg)};
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "NotFound: record not found", or "OK".
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-OK Status.
template <typename T>
using Result = std::expected<T, Status>;

// Wraps a non-OK Status for returning from a function that returns
// Result<T>:  return Fail(Status::NotFound("record not found"));
inline std::unexpected<Status> Fail(Status status) {
  return std::unexpected<Status>(std::move(status));
}

namespace internal {
// Converts to Status or to any Result<T>, so CUSTOS_RETURN_IF_ERROR works in
// functions returning either.
struct ErrorReturn {
  Status status;
  operator Status() && { return std::move(status); }
  template <typename T>
  operator Result<T>() && {
    return std::unexpected<Status>(std::move(status));
  }
};
}  // namespace internal

}  // namespace custos

// Evaluates an expression yielding a Status; returns it from the enclosing
// function (which returns Status or a Result<T>) when it is not OK.
#define CUSTOS_RETURN_IF_ERROR(expr)                                     \
  do {                                                                   \
    ::custos::Status custos_status_ = (expr);                            \
    if (!custos_status_.ok()) {                                          \
      return ::custos::internal::ErrorReturn{std::move(custos_status_)}; \
    }                                                                    \
  } while (0)

#endif  // CUSTOS_BASE_STATUS_H_
