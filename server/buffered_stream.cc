#include "server/buffered_stream.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace custos::server {

BufferedStream::BufferedStream(kj::Own<kj::AsyncIoStream> inner)
    : inner_(kj::mv(inner)) {}

BufferedStream::~BufferedStream() noexcept(false) = default;

size_t BufferedStream::TakeReadAhead(kj::byte* out, size_t max) {
  const size_t n = std::min(max, read_end_ - read_begin_);
  if (n > 0) std::memcpy(out, read_ahead_.begin() + read_begin_, n);
  read_begin_ += n;
  return n;
}

kj::Promise<size_t> BufferedStream::tryRead(void* buffer, size_t minBytes,
                                            size_t maxBytes) {
  auto* out = static_cast<kj::byte*>(buffer);
  const size_t n = TakeReadAhead(out, maxBytes);
  if (n >= minBytes) return n;
  return ReadMore(out, n, minBytes, maxBytes);
}

kj::Promise<size_t> BufferedStream::ReadMore(kj::byte* out, size_t have,
                                             size_t min, size_t max) {
  // Nothing is read ahead now.
  if (max - have >= kReadAhead) {
    // A large read: straight into the caller's buffer.
    return inner_->tryRead(out + have, min - have, max - have)
        .then([have](size_t got) { return have + got; });
  }
  if (read_ahead_.size() == 0)
    read_ahead_ = kj::heapArray<kj::byte>(kReadAhead);
  return inner_->tryRead(read_ahead_.begin(), 1, read_ahead_.size())
      .then([this, out, have, min, max](size_t got) -> kj::Promise<size_t> {
        read_begin_ = 0;
        read_end_ = got;
        if (got == 0) return have;  // The end of the stream.
        const size_t n = have + TakeReadAhead(out + have, max - have);
        if (n >= min) return n;
        return ReadMore(out, n, min, max);
      });
}

kj::Promise<void> BufferedStream::write(const void* buffer, size_t size) {
  const kj::ArrayPtr<const kj::byte> piece(static_cast<const kj::byte*>(buffer),
                                           size);
  return write(kj::arrayPtr(&piece, 1));
}

kj::Promise<void> BufferedStream::write(
    kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) {
  KJ_IF_MAYBE (error, write_error_) {
    return kj::cp(*error);
  }
  for (const auto& piece : pieces) pending_.addAll(piece);
  ScheduleFlush();
  if (pending_.size() + in_flight_.size() <= kMaxPending) return kj::READY_NOW;
  // Too much waits already: this write ends when it has gone out.
  KJ_IF_MAYBE (flushed, flushed_) {
    return flushed->addBranch();
  }
  return kj::READY_NOW;  // Not reached: ScheduleFlush set it.
}

void BufferedStream::ScheduleFlush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  // Once the loop has run everything queued: the writes of this turn go
  // out together.
  auto flushed = kj::evalLast([this] { return Flush(); }).fork();
  flushing_ = flushed.addBranch().eagerlyEvaluate([this](kj::Exception&& e) {
    // The stream is broken: later writes fail with its error (the
    // connection is ending; its network sees the error on its side too).
    write_error_ = kj::mv(e);
    flush_scheduled_ = false;
  });
  flushed_ = kj::mv(flushed);
}

kj::Promise<void> BufferedStream::Flush() {
  if (pending_.empty()) {
    flush_scheduled_ = false;
    if (shutdown_requested_) ShutInner();
    return kj::READY_NOW;
  }
  // in_flight_ is empty here: it changes places with pending_, whose
  // memory is reused for what is written meanwhile.
  kj::Vector<kj::byte> spare = kj::mv(in_flight_);
  in_flight_ = kj::mv(pending_);
  pending_ = kj::mv(spare);
  pending_.clear();
  ++inner_writes_;
  return inner_->write(in_flight_.begin(), in_flight_.size()).then([this] {
    // A burst's memory is not kept for the connection's whole life.
    if (in_flight_.capacity() > kKeepCapacity) {
      in_flight_ = kj::Vector<kj::byte>();
    } else {
      in_flight_.clear();
    }
    return Flush();  // What was written meanwhile.
  });
}

kj::Promise<void> BufferedStream::Drained() {
  KJ_IF_MAYBE (error, write_error_) {
    return kj::cp(*error);
  }
  if (!flush_scheduled_) return kj::READY_NOW;
  KJ_IF_MAYBE (flushed, flushed_) {
    return flushed->addBranch();
  }
  return kj::READY_NOW;
}

kj::Promise<void> BufferedStream::whenWriteDisconnected() {
  return inner_->whenWriteDisconnected();
}

void BufferedStream::shutdownWrite() {
  if (shut_ || shutdown_requested_) return;  // Once (kj's TLS requires it).
  if (flush_scheduled_) {
    shutdown_requested_ = true;  // After what was written before.
  } else {
    ShutInner();
  }
}

void BufferedStream::ShutInner() {
  shut_ = true;
  shutdown_requested_ = false;
  // A socket the peer has just reset refuses (ENOTCONN): the stream is
  // broken, which later writes say; nothing is thrown to the caller (the
  // server's stop calls this from its loop).
  KJ_IF_MAYBE (error,
               kj::runCatchingExceptions([&] { inner_->shutdownWrite(); })) {
    if (write_error_ == nullptr) write_error_ = kj::mv(*error);
  }
}

bool BufferedStream::ReadAhead() const { return read_begin_ < read_end_; }

void BufferedStream::abortRead() { inner_->abortRead(); }

kj::Maybe<int> BufferedStream::getFd() const { return inner_->getFd(); }

}  // namespace custos::server
