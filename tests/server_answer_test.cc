// The bound custosd puts on a record's answer before the reads it
// discloses are recorded (server/service.h, RecordAnswerWords): never less
// than the words the record takes once built (else an answer the server
// let through would be too large to send, after its reads were recorded),
// and not far above them (else answers that fit would be refused). Built
// here in one segment, a record has no far pointers: the landing pads the
// bound also counts are tested over RPC (ServerAdminTest,
// AnswersAroundTheLimitAreSentOrRefusedBeforeTheirReads).

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "server/service.h"

namespace custos::testing {
namespace {

// Words `view` takes as a message's root, built as custosd builds it.
uint64_t BuiltWords(const RecordView& view) {
  capnp::MallocMessageBuilder message;
  server::RecordToRpc(view, message.initRoot<rpc::Record>());
  return message.getRoot<rpc::Record>().asReader().totalSize().wordCount;
}

std::string Text(std::mt19937& rng, size_t max) {
  return std::string(std::uniform_int_distribution<size_t>(0, max)(rng), 'x');
}

std::vector<Field> Fields(std::mt19937& rng, size_t count, size_t max) {
  std::vector<Field> fields;
  for (size_t i = 0; i < count; ++i) {
    fields.push_back({Text(rng, 64), Text(rng, max)});
  }
  return fields;
}

TEST(RecordAnswerWordsTest, AnEmptyViewIsBounded) {
  const RecordView view;
  EXPECT_GE(server::RecordAnswerWords(view), BuiltWords(view));
}

// Texts of every length from 0 to 17 bytes (a word's rounding and its
// terminating NUL), in every list of a record, and long ones.
TEST(RecordAnswerWordsTest, BoundsEveryShapeOfRecordClosely) {
  std::mt19937 rng(20261205);
  for (int round = 0; round < 200; ++round) {
    const size_t small = static_cast<size_t>(round % 18);
    const size_t big = round % 3 == 0 ? 5000 : 40;
    RecordView v;
    v.id = static_cast<uint64_t>(round) + 1;
    v.kind = std::string(small, 'k');
    v.owner = Text(rng, 64);
    for (int i = 0; i < round % 5; ++i) v.grants.push_back(Text(rng, 64));
    for (int i = 0; i < round % 7; ++i) {
      v.attributes.push_back({Text(rng, 17), Text(rng, big)});
    }
    for (int i = 0; i < round % 3; ++i) v.subject_ids.push_back(Text(rng, 24));
    v.personal_included = round % 2 == 0;
    for (int i = 0; i < round % 4; ++i) {
      v.parts.push_back({Text(rng, 24), Text(rng, 256), 1,
                         Fields(rng, static_cast<size_t>(round % 9), big)});
    }
    for (int i = 0; i < round % 3; ++i) {
      v.flags.push_back({Text(rng, 64), {}, Text(rng, 24), Text(rng, big)});
    }
    for (int i = 0; i < round % 2; ++i) {
      v.contests.push_back({Text(rng, 64),
                            {},
                            Text(rng, 24),
                            Text(rng, big),
                            Fields(rng, static_cast<size_t>(round % 4), big)});
    }
    const uint64_t built = BuiltWords(v);
    const uint64_t bound = server::RecordAnswerWords(v);
    EXPECT_GE(bound, built) << "round " << round;
    // Each text's pointer twice and each list's tag: well under twice the
    // record and a few words per list.
    EXPECT_LE(bound, 2 * built + 16) << "round " << round;
  }
}

}  // namespace
}  // namespace custos::testing
