// A connection's byte stream with fewer system calls per RPC call
// (bench/RESULTS.md, "Issue 12: fewer hand-offs per call").
//
// Cap'n Proto 0.9.2 reads each message with two reads (its first word,
// then the rest) and writes each message with its own writev: a pipelined
// create costs custosd four reads (the call and its Finish) and a write.
// This stream, between a connection's socket (or TLS stream) and its
// TwoPartyVatNetwork:
//  - reads ahead: one read takes whatever the socket holds (up to 16 KiB;
//    a larger read goes straight to the reader's buffer) and the messages
//    are then taken from memory;
//  - gathers writes: the messages written during one turn of the event
//    loop go out in one write, once the loop has nothing else to run
//    (kj::evalLast), i.e. before it waits for I/O. A write returns at once
//    while less than kMaxPending bytes wait; beyond that it waits for the
//    write under way, so a client that stops reading holds the server's
//    messages back as before, not in this buffer.
// Memory: the read-ahead buffer once the connection has read something,
// and the write buffers, which keep at most kKeepCapacity each between
// bursts.
// Nothing is reordered: bytes leave in the order written, and a
// shutdownWrite() takes effect after what was written before it. What is
// still buffered when the stream is destroyed is lost: its owner waits
// for Drained() first (server.cc: a connection's last message, an Abort
// saying why it ends, is written in the turn that ends it).
//
// Thread safety: the event loop's thread only, like the stream it wraps.

#ifndef CUSTOS_SERVER_BUFFERED_STREAM_H_
#define CUSTOS_SERVER_BUFFERED_STREAM_H_

#include <kj/async-io.h>
#include <kj/vector.h>

#include <cstddef>

namespace custos::server {

class BufferedStream final : public kj::AsyncIoStream {
 public:
  static constexpr size_t kReadAhead = 16 * 1024;
  static constexpr size_t kMaxPending = 1024 * 1024;
  static constexpr size_t kKeepCapacity = 64 * 1024;

  explicit BufferedStream(kj::Own<kj::AsyncIoStream> inner);
  ~BufferedStream() noexcept(false);

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes,
                              size_t maxBytes) override;
  kj::Promise<void> write(const void* buffer, size_t size) override;
  kj::Promise<void> write(
      kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override;
  kj::Promise<void> whenWriteDisconnected() override;
  void shutdownWrite() override;
  void abortRead() override;
  kj::Maybe<int> getFd() const override;

  // Resolves once everything written so far has gone out (and the
  // shutdown asked for, if any, was done); rejects if the stream broke.
  kj::Promise<void> Drained();
  // Nothing written waits to go out (or the stream broke: it never will).
  bool Idle() const { return !flush_scheduled_; }
  // Bytes read from the wrapped stream and not yet taken by the reader.
  bool ReadAhead() const;

  // For the tests: the writes issued to the wrapped stream.
  size_t TEST_inner_writes() const { return inner_writes_; }

 private:
  // Copies what is read ahead into `out`; returns how much.
  size_t TakeReadAhead(kj::byte* out, size_t max);
  kj::Promise<size_t> ReadMore(kj::byte* out, size_t have, size_t min,
                               size_t max);
  // Writes what is pending, then what was written meanwhile, until none.
  kj::Promise<void> Flush();
  // shutdownWrite on the wrapped stream, once; its failure is kept as the
  // stream's write error.
  void ShutInner();
  void ScheduleFlush();

  kj::Own<kj::AsyncIoStream> inner_;

  kj::Array<kj::byte> read_ahead_;  // Allocated at the first small read.
  size_t read_begin_ = 0;
  size_t read_end_ = 0;

  kj::Vector<kj::byte> pending_;    // Written, not yet handed to inner_.
  kj::Vector<kj::byte> in_flight_;  // Handed to inner_, not yet written.
  bool flush_scheduled_ = false;    // evalLast or a write under way.
  bool shutdown_requested_ = false;
  bool shut_ = false;  // The wrapped stream's shutdownWrite was called.
  size_t inner_writes_ = 0;
  kj::Maybe<kj::Exception> write_error_;
  // The flush under way (or scheduled), and its end for writes that wait
  // on it (kMaxPending). Declared last: cancelled first.
  kj::Maybe<kj::ForkedPromise<void>> flushed_;
  kj::Promise<void> flushing_ = nullptr;
};

}  // namespace custos::server

#endif  // CUSTOS_SERVER_BUFFERED_STREAM_H_
