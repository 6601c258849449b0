// Engine statuses as Cap'n Proto exceptions, in one place (docs/api.md,
// "Errors"). The exception is built by hand, never with KJ_REQUIRE or
// KJ_FAIL_*, whose messages carry the failed expression and file:line: a
// client sees "<Code>: <message>" and nothing else.

#ifndef CUSTOS_SERVER_ERRORS_H_
#define CUSTOS_SERVER_ERRORS_H_

#include <kj/exception.h>

#include <string>
#include <string_view>

#include "base/status.h"

namespace custos::server {

// The exception a client receives for `status`. REQUIRES: !status.ok().
kj::Exception ToException(const Status& status);

// The Status a client reads back from an exception ToException built (for
// clients, tools and tests): the code from its "<Code>: " prefix; Internal
// for any other exception (a disconnect, an overloaded server).
Status FromException(const kj::Exception& e);

// The reason a client may read for an exception of `type` the server is
// about to send (in a Return, a Resolve or an Abort) with `reason`:
// `reason` itself when ToException built it ("<Code>: ..."), else a fixed
// text by type, since Cap'n Proto's and kj's own descriptions name failed
// expressions and may quote a client's bytes (docs/api.md, "Errors"):
//   FAILED         "InvalidArgument: malformed request"
//   OVERLOADED     "ResourceExhausted: the server is overloaded"
//   DISCONNECTED   "Unavailable: disconnected"
//   UNIMPLEMENTED  "InvalidArgument: unknown method"
std::string ClientReason(kj::Exception::Type type, std::string_view reason);

}  // namespace custos::server

#endif  // CUSTOS_SERVER_ERRORS_H_
