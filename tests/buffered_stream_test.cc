// server/buffered_stream.h: a connection's stream that reads ahead and
// gathers the writes of one turn of the event loop into one, over a real
// socket pair. Bytes keep their order, a shutdown comes after what was
// written before it, a short read at the end of the stream is a short
// read, and a writer that got too far ahead of its reader waits.

#include "server/buffered_stream.h"

#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <kj/exception.h>
#include <signal.h>

#include <string>
#include <vector>

namespace custos::testing {
namespace {

using server::BufferedStream;

// Counts what reaches the wrapped stream.
class Counting final : public kj::AsyncIoStream {
 public:
  explicit Counting(kj::Own<kj::AsyncIoStream> inner) : inner_(kj::mv(inner)) {}
  kj::Promise<size_t> tryRead(void* buffer, size_t min, size_t max) override {
    ++reads;
    return inner_->tryRead(buffer, min, max);
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    ++writes;
    return inner_->write(buffer, size);
  }
  kj::Promise<void> write(
      kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    ++writes;
    return inner_->write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override {
    return inner_->whenWriteDisconnected();
  }
  void shutdownWrite() override {
    ++shutdowns;
    // As a socket the peer has just reset does (ENOTCONN).
    if (refuse_shutdown) {
      kj::throwFatalException(
          kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                        kj::heapString("shutdown refused")));
    }
    inner_->shutdownWrite();
  }
  int reads = 0;
  int writes = 0;
  int shutdowns = 0;
  bool refuse_shutdown = false;

 private:
  kj::Own<kj::AsyncIoStream> inner_;
};

struct Pair {
  // A write to a closed socket must fail, not end the test process.
  bool no_sigpipe = (signal(SIGPIPE, SIG_IGN), true);
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Own<kj::AsyncIoStream> peer;  // The client's end, unbuffered.
  Counting* counting = nullptr;
  kj::Own<BufferedStream> stream;  // The server's end.
  Pair() {
    auto pipe = io.provider->newTwoWayPipe();
    peer = kj::mv(pipe.ends[1]);
    auto c = kj::heap<Counting>(kj::mv(pipe.ends[0]));
    counting = c.get();
    stream = kj::heap<BufferedStream>(kj::mv(c));
  }
  std::string ReadAll(kj::AsyncInputStream& in) {
    auto bytes = in.readAllBytes().wait(io.waitScope);
    return std::string(bytes.asChars().begin(), bytes.size());
  }
};

TEST(BufferedStreamTest, OneTurnsWritesGoOutAsOneWriteInOrder) {
  Pair p;
  std::string expected;
  std::vector<std::string> messages;
  std::vector<kj::Promise<void>> writes;
  for (int i = 0; i < 20; ++i) {
    messages.push_back("message " + std::to_string(i) + ";");
    expected += messages.back();
  }
  for (const std::string& m : messages) {
    writes.push_back(p.stream->write(m.data(), m.size()));
  }
  // Nothing went out during the turn; at its end, one write.
  EXPECT_EQ(p.counting->writes, 0);
  p.stream->Drained().wait(p.io.waitScope);
  EXPECT_EQ(p.counting->writes, 1);
  for (auto& w : writes) w.wait(p.io.waitScope);
  p.stream->shutdownWrite();
  EXPECT_EQ(p.ReadAll(*p.peer), expected);
  EXPECT_EQ(p.counting->shutdowns, 1);
}

TEST(BufferedStreamTest, AShutdownComesAfterWhatWasWrittenBeforeIt) {
  Pair p;
  auto a = p.stream->write("first,", 6);
  auto b = p.stream->write("second", 6);
  p.stream->shutdownWrite();  // Nothing has gone out yet.
  EXPECT_EQ(p.counting->shutdowns, 0);
  a.wait(p.io.waitScope);
  b.wait(p.io.waitScope);
  EXPECT_EQ(p.ReadAll(*p.peer), "first,second");
  EXPECT_EQ(p.counting->shutdowns, 1);
}

// The server's stop closes a connection for writing, and Cap'n Proto may
// do so again as the connection ends: the wrapped stream sees it once
// (kj's TLS stream refuses a second call), whether or not a flush was
// under way.
TEST(BufferedStreamTest, AShutdownReachesTheWrappedStreamOnce) {
  {
    Pair p;  // Nothing under way.
    p.stream->shutdownWrite();
    p.stream->shutdownWrite();
    EXPECT_EQ(p.counting->shutdowns, 1);
  }
  Pair q;  // A flush under way.
  auto written = q.stream->write("last", 4);
  q.stream->shutdownWrite();
  q.stream->shutdownWrite();
  written.wait(q.io.waitScope);
  EXPECT_EQ(q.ReadAll(*q.peer), "last");
  EXPECT_EQ(q.counting->shutdowns, 1);
}

// A wrapped stream that refuses the shutdown (a socket just reset) does
// not throw out of the caller (the stop's loop): its error is the
// stream's, which later writes fail with.
TEST(BufferedStreamTest, AShutdownTheWrappedStreamRefusesIsKeptAsItsError) {
  Pair p;
  p.counting->refuse_shutdown = true;
  EXPECT_NO_THROW(p.stream->shutdownWrite());
  EXPECT_EQ(p.counting->shutdowns, 1);
  try {
    p.stream->write("x", 1).wait(p.io.waitScope);
    ADD_FAILURE() << "a write after a refused shutdown succeeded";
  } catch (const kj::Exception& e) {
    EXPECT_NE(std::string(e.getDescription().cStr()).find("shutdown refused"),
              std::string::npos)
        << e.getDescription().cStr();
  }
}

// ReadAhead: bytes read from the socket that the reader has not taken
// (the server's stop does not close a connection for writing while its
// client's call waits there).
TEST(BufferedStreamTest, ReadAheadTellsOfBytesNotYetTaken) {
  Pair p;
  EXPECT_FALSE(p.stream->ReadAhead());
  const std::string sent(64, 'c');
  p.peer->write(sent.data(), sent.size()).wait(p.io.waitScope);
  char buffer[8];
  ASSERT_EQ(p.stream->tryRead(buffer, 8, 8).wait(p.io.waitScope), 8u);
  EXPECT_TRUE(p.stream->ReadAhead());
  char rest[56];
  ASSERT_EQ(p.stream->tryRead(rest, 56, 56).wait(p.io.waitScope), 56u);
  EXPECT_FALSE(p.stream->ReadAhead());
}

TEST(BufferedStreamTest, ReadsAheadAndServesSmallReadsFromMemory) {
  Pair p;
  std::string sent;
  for (int i = 0; i < 50; ++i) sent += "0123456789abcdef";  // 800 bytes.
  p.peer->write(sent.data(), sent.size()).wait(p.io.waitScope);
  std::string got;
  char buffer[8];
  while (got.size() < sent.size()) {
    // As Cap'n Proto reads a message: its first word, then the rest.
    const size_t n = p.stream->tryRead(buffer, sizeof buffer, sizeof buffer)
                         .wait(p.io.waitScope);
    ASSERT_EQ(n, sizeof buffer);
    got.append(buffer, n);
  }
  EXPECT_EQ(got, sent);
  EXPECT_EQ(p.counting->reads, 1);  // 100 reads of 8 bytes, one system read.
}

TEST(BufferedStreamTest, AReadWaitsForItsMinimumAcrossSeveralArrivals) {
  Pair p;
  char buffer[32] = {};
  auto read = p.stream->tryRead(buffer, 10, sizeof buffer);
  p.peer->write("abcd", 4).wait(p.io.waitScope);
  EXPECT_FALSE(read.poll(p.io.waitScope));
  p.peer->write("efghijkl", 8).wait(p.io.waitScope);
  EXPECT_EQ(read.wait(p.io.waitScope), 12u);
  EXPECT_EQ(std::string(buffer, 12), "abcdefghijkl");
}

TEST(BufferedStreamTest, TheEndOfTheStreamEndsAReadShort) {
  Pair p;
  p.peer->write("tail", 4).wait(p.io.waitScope);
  p.peer->shutdownWrite();
  char buffer[16];
  EXPECT_EQ(p.stream->tryRead(buffer, 10, sizeof buffer).wait(p.io.waitScope),
            4u);
  EXPECT_EQ(std::string(buffer, 4), "tail");
  EXPECT_EQ(p.stream->tryRead(buffer, 1, sizeof buffer).wait(p.io.waitScope),
            0u);
}

TEST(BufferedStreamTest, ALargeReadGoesStraightToTheCallersBuffer) {
  Pair p;
  const std::string sent(3 * BufferedStream::kReadAhead, 'x');
  auto writing = p.peer->write(sent.data(), sent.size());
  std::vector<char> buffer(sent.size());
  EXPECT_EQ(p.stream->tryRead(buffer.data(), buffer.size(), buffer.size())
                .wait(p.io.waitScope),
            buffer.size());
  EXPECT_EQ(p.counting->reads, 1);  // Not through the read-ahead buffer.
  writing.wait(p.io.waitScope);
  EXPECT_EQ(std::string(buffer.begin(), buffer.end()), sent);
}

// A writer more than kMaxPending ahead of its reader waits for the write
// under way, as it would on the socket itself.
TEST(BufferedStreamTest, AWriterTooFarAheadOfItsReaderWaits) {
  Pair p;
  const std::string chunk(256 * 1024, 'y');
  std::vector<kj::Promise<void>> writes;
  for (int i = 0; i < 8; ++i) {
    writes.push_back(p.stream->write(chunk.data(), chunk.size()));
  }
  // The first writes were taken at once; the last ones wait.
  EXPECT_TRUE(writes.front().poll(p.io.waitScope));
  EXPECT_FALSE(writes.back().poll(p.io.waitScope));
  // The reader catches up: every write ends, every byte in order.
  p.stream->shutdownWrite();
  auto all = p.peer->readAllBytes();
  for (auto& w : writes) w.wait(p.io.waitScope);
  auto bytes = all.wait(p.io.waitScope);
  EXPECT_EQ(bytes.size(), 8 * chunk.size());
}

TEST(BufferedStreamTest, WritesAfterTheStreamBrokeFail) {
  Pair p;
  p.peer = nullptr;  // The client went away.
  const std::string big(BufferedStream::kReadAhead, 'z');
  auto first = p.stream->write(big.data(), big.size());
  first.wait(p.io.waitScope);  // Taken: the failure comes with the flush.
  EXPECT_ANY_THROW(p.stream->Drained().wait(p.io.waitScope));
  EXPECT_ANY_THROW(p.stream->write("x", 1).wait(p.io.waitScope));
}

}  // namespace
}  // namespace custos::testing
