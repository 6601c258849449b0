#include "server/call_meter.h"

#include <capnp/rpc.capnp.h>
#include <kj/time.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <unordered_map>

#include "server/errors.h"

namespace custos::server {
namespace {

using capnp::rpc::Message;

// The code a client reads from an answer's exception (server/errors.h).
StatusCode CodeOf(capnp::rpc::Exception::Reader e) {
  kj::Exception ex(kj::Exception::Type::FAILED, "", 0,
                   kj::heapString(e.getReason()));
  return FromException(ex).code();
}

}  // namespace

// What one connection's messages tell: every question the client has
// asked and not yet released (its Finish), each in flight (let through,
// unanswered), answered or refused here (the RpcSystem never saw it), in
// one map: one lookup a message. Shared with the outgoing messages, which
// may outlive the connection object.
//
// A client's Finish releases an answer: until then the RpcSystem keeps its
// entry (for calls pipelined on it), and we keep its question. A client
// that never sends Finish would make both grow without bound, refused calls
// included, without even logging in. So a connection that leaves
// max_unreleased answers unreleased, refused ones and bootstraps counted,
// is ended at its next call or bootstrap: four times max_in_flight, at
// least 4,096 (a client pipelining a burst reads its answers, and releases
// them, only after it has sent the burst), at most 65,536 (the map's size).
// A question id used again before its Finish ends the connection too: the
// book and the RpcSystem would no longer agree on what it names.
struct CallBook : public kj::Refcounted {
  CallBook(Metrics& m, size_t max)
      : metrics(m),
        max_in_flight(max),
        max_unreleased(
            std::clamp<size_t>(4 * max, kMinUnreleased, kMaxUnreleased)) {}

  static constexpr size_t kMinUnreleased = 4096;
  static constexpr size_t kMaxUnreleased = 65536;

  enum class Stage : uint8_t { kInFlight, kAnswered, kRefused };
  struct Question {
    Stage stage;
    bool released = false;  // In flight: its Finish came before its Return.
    size_t method = 0;      // In flight: what and since when.
    kj::TimePoint start = kj::origin<kj::TimePoint>();
  };

  Metrics& metrics;
  const size_t max_in_flight;
  const size_t max_unreleased;
  std::unordered_map<uint32_t, Question> questions;  // By question id.
  size_t in_flight = 0;                              // Questions kInFlight.
  size_t given_up = 0;    // Of those, released (Finish before the Return).
  size_t unreleased = 0;  // Questions kAnswered or kRefused.

  // A Call or Bootstrap's question, before it is let through or refused:
  // throws (out of receiveIncomingMessage, so the RpcSystem ends the
  // connection with an Abort carrying it, sanitized on its way out) if the
  // connection holds max_unreleased answers unreleased, or if `id` is
  // still in use; otherwise entered as `stage`.
  Question& Ask(uint32_t id, Stage stage) {
    if (unreleased >= max_unreleased) {
      metrics.ConnectionEnded(ConnectionEnd::kAnswersNotReleased);
      kj::throwFatalException(ToException(Status::ResourceExhausted(
          "too many answers not released on this connection (at most " +
          std::to_string(max_unreleased) + "); the connection is ended")));
    }
    auto [it, asked] = questions.try_emplace(id, Question{stage});
    if (!asked) {
      metrics.ConnectionEnded(ConnectionEnd::kQuestionReused);
      kj::throwFatalException(ToException(Status::InvalidArgument(
          "a question id used again before its Finish; the connection is "
          "ended")));
    }
    if (stage == Stage::kInFlight) {
      ++in_flight;
    } else {
      ++unreleased;
    }
    return it->second;
  }

  bool IsRefused(uint32_t id) const {
    auto it = questions.find(id);
    return it != questions.end() && it->second.stage == Stage::kRefused;
  }

  void Answered(capnp::rpc::Return::Reader ret) {
    auto it = questions.find(ret.getAnswerId());
    // A bootstrap's, or not a call's.
    if (it == questions.end() || it->second.stage != Stage::kInFlight) return;
    Question& q = it->second;
    std::optional<StatusCode> error;
    if (ret.isException()) error = CodeOf(ret.getException());
    metrics.CallDone(q.method,
                     kj::systemPreciseMonotonicClock().now() - q.start, error);
    --in_flight;
    if (q.released) {
      --given_up;
      questions.erase(it);
    } else {
      q.stage = Stage::kAnswered;
      ++unreleased;
    }
  }

  // A Finish: false when it releases a refused call's answer (which the
  // RpcSystem never saw, so must not see released either).
  bool Released(uint32_t id) {
    auto it = questions.find(id);
    if (it == questions.end()) return true;
    switch (it->second.stage) {
      case Stage::kInFlight:
        if (!it->second.released) ++given_up;
        it->second.released = true;
        return true;
      case Stage::kAnswered:
        questions.erase(it);
        --unreleased;
        return true;
      case Stage::kRefused:
        questions.erase(it);
        --unreleased;
        return false;
    }
    return true;
  }
};

namespace {

// Replaces a reason that is not one of ours (server/errors.h, ClientReason)
// before it leaves: Cap'n Proto's own exceptions (a malformed request read
// by the service or by the RpcSystem) carry kj's descriptions.
void Sanitize(capnp::rpc::Exception::Builder exception) {
  const capnp::Text::Reader reason = exception.asReader().getReason();
  const std::string text =
      ClientReason(static_cast<kj::Exception::Type>(exception.getType()),
                   std::string_view(reason.cStr(), reason.size()));
  if (std::string_view(reason.cStr(), reason.size()) == text) return;
  exception.setReason(capnp::Text::Reader(text.data(), text.size()));
}

class MeteredOutgoing final : public capnp::OutgoingRpcMessage {
 public:
  MeteredOutgoing(kj::Own<CallBook> book,
                  kj::Own<capnp::OutgoingRpcMessage> inner)
      : book_(kj::mv(book)), inner_(kj::mv(inner)) {}

  capnp::AnyPointer::Builder getBody() override { return inner_->getBody(); }
  void setFds(kj::Array<int> fds) override { inner_->setFds(kj::mv(fds)); }
  size_t sizeInWords() override { return inner_->sizeInWords(); }
  void send() override {
    auto message = inner_->getBody().getAs<Message>();
    // Every exception this connection sends leaves here: an answer's, a
    // broken promise's and the Abort that ends the connection.
    if (message.isReturn() && message.getReturn().isException()) {
      Sanitize(message.getReturn().getException());
    } else if (message.isResolve() && message.getResolve().isException()) {
      Sanitize(message.getResolve().getException());
    } else if (message.isAbort()) {
      Sanitize(message.getAbort());
    }
    // Counted once it is sent: an answer Cap'n Proto refuses to send (over
    // the message limit) throws here, and the error Return the RpcSystem
    // sends instead is the one counted (helper-123: the call was counted
    // a success, and its error then skipped).
    inner_->send();
    if (message.isReturn()) book_->Answered(message.getReturn().asReader());
  }

 private:
  kj::Own<CallBook> book_;
  kj::Own<capnp::OutgoingRpcMessage> inner_;
};

}  // namespace

class MeteredNetwork::MeteredConnection final
    : public capnp::TwoPartyVatNetworkBase::Connection {
 public:
  MeteredConnection(kj::Own<capnp::TwoPartyVatNetworkBase::Connection> inner,
                    capnp::TwoPartyVatNetwork& network,
                    kj::PromiseFulfiller<void>& ended, kj::Own<CallBook> book,
                    size_t max_queued_bytes)
      : inner_(kj::mv(inner)),
        network_(network),
        ended_(ended),
        max_queued_bytes_(max_queued_bytes),
        book_(kj::mv(book)) {}

  kj::Own<capnp::RpcFlowController> newStream() override {
    return inner_->newStream();
  }
  capnp::rpc::twoparty::VatId::Reader getPeerVatId() override {
    return inner_->getPeerVatId();
  }
  kj::Own<capnp::OutgoingRpcMessage> newOutgoingMessage(
      uint firstSegmentWordSize) override {
    return kj::heap<MeteredOutgoing>(
        kj::addRef(*book_), inner_->newOutgoingMessage(firstSegmentWordSize));
  }
  kj::Promise<kj::Maybe<kj::Own<capnp::IncomingRpcMessage>>>
  receiveIncomingMessage() override {
    return inner_->receiveIncomingMessage().then(
        [this](kj::Maybe<kj::Own<capnp::IncomingRpcMessage>>&& next)
            -> kj::Promise<kj::Maybe<kj::Own<capnp::IncomingRpcMessage>>> {
          KJ_IF_MAYBE (message, next) {
            // No new question is taken from a client that leaves its
            // answers unread: what waits is bounded, not what it can send
            // (helper-123: the queue grew without a limit). A Finish (sent
            // by a client reading its answers slowly) never ends it
            // (helper-126).
            const auto body = (*message)->getBody().getAs<Message>();
            if ((body.isCall() || body.isBootstrap()) &&
                network_.getCurrentQueueSize() > max_queued_bytes_) {
              book_->metrics.ConnectionEnded(ConnectionEnd::kAnswersNotRead);
              ended_.fulfill();
              kj::throwFatalException(ToException(Status::ResourceExhausted(
                  "more than " + std::to_string(max_queued_bytes_) +
                  " bytes of answers wait unread on this connection; the "
                  "connection is ended")));
            }
            if (!Admit((*message)->getBody().getAs<Message>())) {
              return receiveIncomingMessage();  // Answered here.
            }
          }
          return kj::mv(next);
        });
  }
  kj::Promise<void> shutdown() override { return inner_->shutdown(); }

 private:
  // False for a message handled here, which the RpcSystem must not see.
  bool Admit(Message::Reader message) {
    CallBook& book = *book_;
    if (message.isFinish()) {
      return book.Released(message.getFinish().getQuestionId());
    }
    if (message.isBootstrap()) {
      // Answered by the RpcSystem at once, kept until its Finish.
      book.Ask(message.getBootstrap().getQuestionId(),
               CallBook::Stage::kAnswered);
      return true;
    }
    if (!message.isCall()) return true;
    auto call = message.getCall();
    const size_t method =
        book.metrics.MethodIndex(call.getInterfaceId(), call.getMethodId());
    auto target = call.getTarget();
    const bool on_refused =
        target.isPromisedAnswer() &&
        book.IsRefused(target.getPromisedAnswer().getQuestionId());
    if (!on_refused && book.in_flight < book.max_in_flight) {
      CallBook::Question& q =
          book.Ask(call.getQuestionId(), CallBook::Stage::kInFlight);
      q.method = method;
      q.start = kj::systemPreciseMonotonicClock().now();
      return true;
    }
    book.Ask(call.getQuestionId(), CallBook::Stage::kRefused);
    Refuse(call.getQuestionId(), on_refused);
    book.metrics.CallRefused(method);
    return false;
  }

  void Refuse(uint32_t question, bool on_refused) {
    const kj::Exception e = ToException(
        on_refused ? Status::ResourceExhausted(
                         "refused: made on the answer of a refused call")
                   : Status::ResourceExhausted(
                         "too many calls in flight on this connection (at "
                         "most " +
                         std::to_string(book_->max_in_flight) + ")"));
    auto out = inner_->newOutgoingMessage(64);
    auto ret = out->getBody().initAs<Message>().initReturn();
    ret.setAnswerId(question);
    // The caller releases the capabilities of the params itself: the
    // RpcSystem never imported them.
    ret.setReleaseParamCaps(true);
    auto exception = ret.initException();
    exception.setReason(e.getDescription());
    exception.setType(static_cast<capnp::rpc::Exception::Type>(e.getType()));
    out->send();
  }

  kj::Own<capnp::TwoPartyVatNetworkBase::Connection> inner_;
  capnp::TwoPartyVatNetwork& network_;
  kj::PromiseFulfiller<void>& ended_;
  const size_t max_queued_bytes_;
  kj::Own<CallBook> book_;
};

MeteredNetwork::MeteredNetwork(capnp::TwoPartyVatNetwork& inner,
                               Metrics& metrics, size_t max_calls_in_flight,
                               size_t max_queued_bytes)
    : MeteredNetwork(inner, metrics, max_calls_in_flight, max_queued_bytes,
                     kj::newPromiseAndFulfiller<void>()) {}

MeteredNetwork::MeteredNetwork(capnp::TwoPartyVatNetwork& inner,
                               Metrics& metrics, size_t max_calls_in_flight,
                               size_t max_queued_bytes,
                               kj::PromiseFulfillerPair<void> ended)
    : inner_(inner),
      metrics_(metrics),
      max_calls_in_flight_(max_calls_in_flight),
      max_queued_bytes_(max_queued_bytes),
      ended_fulfiller_(kj::mv(ended.fulfiller)),
      ended_(ended.promise.fork()) {}

MeteredNetwork::~MeteredNetwork() = default;

size_t MeteredNetwork::CallsAwaited() const {
  return book_ == nullptr ? 0 : book_->in_flight - book_->given_up;
}

kj::Own<capnp::TwoPartyVatNetworkBase::Connection> MeteredNetwork::Wrap(
    kj::Own<capnp::TwoPartyVatNetworkBase::Connection> inner) {
  book_ = kj::refcounted<CallBook>(metrics_, max_calls_in_flight_);
  return kj::heap<MeteredConnection>(kj::mv(inner), inner_, *ended_fulfiller_,
                                     kj::addRef(*book_), max_queued_bytes_);
}

kj::Maybe<kj::Own<capnp::TwoPartyVatNetworkBase::Connection>>
MeteredNetwork::connect(capnp::rpc::twoparty::VatId::Reader ref) {
  KJ_IF_MAYBE (connection, inner_.connect(ref)) {
    return Wrap(kj::mv(*connection));
  }
  return nullptr;
}

kj::Promise<kj::Own<capnp::TwoPartyVatNetworkBase::Connection>>
MeteredNetwork::accept() {
  return inner_.accept().then(
      [this](kj::Own<capnp::TwoPartyVatNetworkBase::Connection>&& c) {
        return Wrap(kj::mv(c));
      });
}

}  // namespace custos::server
