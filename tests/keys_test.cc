// The key layout of the records database: no family's prefix captures
// another family's keys or another name's entries, numbers sort
// numerically, and NumberAfter reads back what the builders wrote.

#include "storage/keys.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/leveldb_util.h"

namespace custos {
namespace {

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Every key's numbers: appended most significant byte first, after what
// the string held, and read back.
TEST(KeysTest, NumbersAreAppendedBigEndianAndReadBack) {
  std::string out = "p:";
  AppendBigEndian64(out, 0x0102030405060708u);
  AppendBigEndian32(out, 0xa0b0c0d0u);
  EXPECT_EQ(out, std::string("p:\x01\x02\x03\x04\x05\x06\x07\x08"
                             "\xa0\xb0\xc0\xd0",
                             14));
  EXPECT_EQ(ReadBigEndian64(std::string_view(out).substr(2)),
            0x0102030405060708u);
  EXPECT_EQ(ReadBigEndian32(std::string_view(out).substr(10)), 0xa0b0c0d0u);
  std::string max;
  AppendBigEndian64(max, UINT64_MAX);
  EXPECT_EQ(max, std::string(8, '\xff'));
}

TEST(KeysTest, AclPrefixOfANameDoesNotCaptureALongerName) {
  EXPECT_FALSE(StartsWith(keys::Acl("abc", 1), keys::AclPrefix("ab")));
  EXPECT_FALSE(StartsWith(keys::Acl("ab", 1), keys::AclPrefix("abc")));
  EXPECT_TRUE(StartsWith(keys::Acl("ab", 1), keys::AclPrefix("ab")));
  EXPECT_TRUE(StartsWith(keys::Acl("ab", UINT64_MAX), keys::AclPrefix("ab")));
}

TEST(KeysTest, SubjectRecordsPrefixOfANameDoesNotCaptureALongerName) {
  EXPECT_FALSE(StartsWith(keys::SubjectRecord("s-ab", 1),
                          keys::SubjectRecordsPrefix("s-a")));
  EXPECT_TRUE(StartsWith(keys::SubjectRecord("s-a", 1),
                         keys::SubjectRecordsPrefix("s-a")));
}

TEST(KeysTest, SubjectHoldsPrefixOfANameDoesNotCaptureALongerName) {
  EXPECT_FALSE(StartsWith(keys::SubjectHoldsPrefix("s-ab"),
                          keys::SubjectHoldsPrefix("s-a")));
}

TEST(KeysTest, HoldFamiliesDoNotOverlap) {
  // "hold:" (holds) and "ho:" (hold indexes) share two letters only.
  EXPECT_FALSE(StartsWith(keys::Hold("h1"), "ho:"));
  EXPECT_FALSE(StartsWith(keys::RecordHoldsPrefix(1), keys::kHoldPrefix));
  EXPECT_FALSE(StartsWith(keys::SubjectHoldsPrefix("s-a"), keys::kHoldPrefix));
  EXPECT_TRUE(StartsWith(keys::Hold("h1"), keys::kHoldPrefix));
}

TEST(KeysTest, NoFamilyPrefixCapturesAnotherFamilysKeys) {
  struct Family {
    std::string_view name;
    std::string_view prefix;
    std::string key;
  };
  const std::vector<Family> families = {
      {"principal", keys::kPrincipalPrefix, keys::Principal("alice")},
      {"policy", keys::kPolicyPrefix, keys::Policy("note")},
      {"record", keys::kRecordPrefix, keys::Record(1)},
      {"deadline", keys::kDeadlinePrefix, keys::Deadline(1, 1)},
      {"erased bucket", keys::kErasedBucketPrefix, keys::ErasedBucket(1)},
      {"field-name catalog", keys::kKindFieldPrefix,
       keys::KindField("alert", "name")},
      {"statistics aggregate", keys::kStatsAggregatePrefix,
       keys::StatsAggregate("request")},
      {"statistics delta", keys::kStatsDeltaPrefix, keys::StatsDelta(1)},
      {"subject", "s:", keys::Subject("t:a:request")},
      {"hold", keys::kHoldPrefix, keys::Hold("h1")},
      {"witness", keys::kWitnessPrefix,
       std::string(keys::kWitnessPrefix) + "x"},
      {"compact queue", keys::kCompactQueuePrefix, keys::CompactQueue("k")},
      {"keystore compact queue", keys::kKeystoreCompactQueuePrefix,
       keys::KeystoreCompactQueue("s-a")},
      {"shred queue", keys::kShredQueuePrefix, keys::ShredQueue("s-a")},
      {"re-key compact queue", keys::kRekeyCompactQueuePrefix,
       keys::RekeyCompactQueue("s-a")},
      {"re-key queue", keys::kRekeyQueuePrefix, keys::RekeyQueue("s-a")},
      {"event", keys::kEventPrefix, keys::Event(1)},
      {"history index", keys::kHistoryIndexPrefix,
       keys::HistoryIndex("tag", 1)},
      {"history reverse", keys::kHistoryReversePrefix,
       keys::HistoryReverse(1, "tag")},
      {"history dropped", keys::kHistoryDroppedPrefix,
       keys::HistoryDropped(1, 0)},
      {"disclosure", keys::kDisclosurePrefix,
       keys::Disclosure("officer-1", 0, 1)},
      {"disclosure part", keys::kDisclosurePartPrefix,
       keys::DisclosurePart(1, 0)},
  };
  for (const Family& owner : families) {
    EXPECT_TRUE(StartsWith(owner.key, owner.prefix)) << owner.name;
    for (const Family& other : families) {
      if (&owner == &other) continue;
      EXPECT_FALSE(StartsWith(other.key, owner.prefix))
          << owner.name << "'s prefix captures a " << other.name << " key";
    }
  }
}

TEST(KeysTest, NumbersSortNumerically) {
  EXPECT_LT(keys::Record(2), keys::Record(256));
  EXPECT_LT(keys::Record(255), keys::Record(256));
  EXPECT_LT(keys::Record(0), keys::Record(1));
  EXPECT_LT(keys::Record(UINT64_MAX - 1), keys::Record(UINT64_MAX));
  EXPECT_LT(keys::Event(9), keys::Event(10));
  EXPECT_LT(keys::Acl("p", 2), keys::Acl("p", 256));
  EXPECT_LT(keys::SubjectRecord("s", 2), keys::SubjectRecord("s", 256));
}

TEST(KeysTest, NumberAfterInvertsTheBuilders) {
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{255}, uint64_t{256},
                     uint64_t{1} << 40, UINT64_MAX}) {
    EXPECT_EQ(keys::NumberAfter(keys::Record(n), keys::kRecordPrefix), n);
    EXPECT_EQ(keys::NumberAfter(keys::Event(n), keys::kEventPrefix), n);
    const std::string deadline = keys::Deadline(1'000'000, n);
    EXPECT_EQ(keys::NumberAfter(deadline, keys::kDeadlinePrefix), 1'000'000u);
    EXPECT_EQ(
        keys::NumberAfter(deadline, std::string_view(deadline).substr(
                                        0, keys::kDeadlinePrefix.size() + 8)),
        n);
  }
  const int64_t due = 1'788'000'000'000'000;
  EXPECT_EQ(keys::NumberAfter(keys::Deadline(due, 7), keys::kDeadlinePrefix),
            static_cast<uint64_t>(due));
}

TEST(KeysTest, DeadlinesOrderByTimeThenRecord) {
  EXPECT_LT(keys::Deadline(1, 999), keys::Deadline(2, 0));
  EXPECT_LT(keys::Deadline(2, UINT64_MAX), keys::Deadline(256, 0));
  EXPECT_LT(keys::Deadline(5, 1), keys::Deadline(5, 2));
  EXPECT_LT(keys::Deadline(5, 2), keys::Deadline(5, 256));
  EXPECT_EQ(keys::Deadline(5, 2).size(), keys::kDeadlinePrefix.size() + 16);
}

}  // namespace
}  // namespace custos
