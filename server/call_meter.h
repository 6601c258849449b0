// Between one connection's TwoPartyVatNetwork and its RpcSystem: reads the
// Cap'n Proto RPC messages passing by (rpc.capnp's Call, Return, Finish)
// to time and count every call by method (Metrics), and refuses the calls
// that arrive while `max_calls_in_flight` calls of the connection are
// unanswered. A refused call is answered here, with the ResourceExhausted
// exception of server/errors.h, and never reaches the RpcSystem or the
// service, so it changes nothing; a call pipelined on a refused one's
// answer is refused the same way. A connection that leaves 4 x
// `max_calls_in_flight` answers (at least 4,096, at most 65,536; refused
// calls' and bootstraps' included) unreleased, never sending their
// Finish, is ended at its next call or bootstrap (an Abort with
// ResourceExhausted), as is one that uses a question id again before its
// Finish, and one that sends a message while more than
// `max_queued_bytes` of the server's messages wait in its network's queue
// (TwoPartyVatNetwork::getCurrentQueueSize: its client does not read
// them, and each message it goes on sending could add an answer).
//
// The service (server/service.cc) needs no hook: every call of every
// capability of the connection passes here.
//
// Thread safety: the event loop's thread only.

#ifndef CUSTOS_SERVER_CALL_METER_H_
#define CUSTOS_SERVER_CALL_METER_H_

#include <capnp/rpc-twoparty.h>

#include <cstddef>

#include "server/metrics.h"

namespace custos::server {

struct CallBook;  // call_meter.cc

class MeteredNetwork final : public capnp::TwoPartyVatNetworkBase {
 public:
  // `inner` and `metrics` REQUIRE: outlive this. REQUIRES:
  // max_calls_in_flight >= 1.
  MeteredNetwork(capnp::TwoPartyVatNetwork& inner, Metrics& metrics,
                 size_t max_calls_in_flight, size_t max_queued_bytes);

  kj::Maybe<kj::Own<capnp::TwoPartyVatNetworkBase::Connection>> connect(
      capnp::rpc::twoparty::VatId::Reader ref) override;
  kj::Promise<kj::Own<capnp::TwoPartyVatNetworkBase::Connection>> accept()
      override;

  ~MeteredNetwork();

  // Calls of the client that wait for their answer: let through and not
  // yet answered, less those the client gave up (Finish before Return).
  size_t CallsAwaited() const;

  // Resolves when the connection was ended for answers left unread: the
  // RpcSystem lets its connection go only once its queued messages went
  // out, which they never will; the owner closes the stream instead.
  kj::Promise<void> Ended() { return ended_.addBranch(); }

 private:
  class MeteredConnection;

  MeteredNetwork(capnp::TwoPartyVatNetwork& inner, Metrics& metrics,
                 size_t max_calls_in_flight, size_t max_queued_bytes,
                 kj::PromiseFulfillerPair<void> ended);

  kj::Own<capnp::TwoPartyVatNetworkBase::Connection> Wrap(
      kj::Own<capnp::TwoPartyVatNetworkBase::Connection> inner);

  capnp::TwoPartyVatNetwork& inner_;
  Metrics& metrics_;
  size_t max_calls_in_flight_;
  size_t max_queued_bytes_;
  kj::Own<kj::PromiseFulfiller<void>> ended_fulfiller_;
  kj::ForkedPromise<void> ended_;
  // The connection's book (call_meter.cc), once accepted.
  kj::Own<CallBook> book_;
};

}  // namespace custos::server

#endif  // CUSTOS_SERVER_CALL_METER_H_
