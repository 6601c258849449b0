// The checks of caller input against Limits: each limit accepted at its
// boundary and refused one past it, with InvalidArgument and a message that
// never echoes the offending value.

#include "storage/limits.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/options.h"
#include "storage/types.h"

namespace custos {
namespace {

// Put into refused values; a message must never contain it.
constexpr char kMarker[] = "zq9marker";

void ExpectRefused(const Status& s) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_FALSE(s.message().empty());
  EXPECT_EQ(s.message().find(kMarker), std::string::npos) << s.message();
}

void ExpectOk(const Status& s) { EXPECT_TRUE(s.ok()) << s.ToString(); }

TEST(CheckKindTest, AcceptsTheAlphabetFromOneToSixtyFourCharacters) {
  ExpectOk(CheckKind("a"));
  ExpectOk(CheckKind("abcdefghijklmnopqrstuvwxyz0123456789_-"));
  ExpectOk(CheckKind(std::string(kMaxKindLength, 'k')));
  ASSERT_EQ(kMaxKindLength, 64u);
}

TEST(CheckKindTest, RefusesOtherCharactersWithoutEchoingThem) {
  ExpectRefused(CheckKind(std::string(kMarker) + "."));
  ExpectRefused(CheckKind(std::string(kMarker) + "X"));
  ExpectRefused(CheckKind(std::string(kMarker) + " "));
  ExpectRefused(CheckKind(std::string(kMarker) + "\xff"));
  ExpectRefused(CheckKind(std::string(kMarker) + std::string(1, '\0')));
}

TEST(CheckKindTest, RefusesEmptyAndTooLong) {
  ExpectRefused(CheckKind(""));
  std::string too_long = kMarker;
  too_long.resize(kMaxKindLength + 1, 'k');
  ExpectRefused(CheckKind(too_long));
}

TEST(CheckIdTest, AcceptsDotsAndTheKindAlphabetUpToMax) {
  ExpectOk(CheckId("alice.smith-2_x", "a principal id", 64));
  ExpectOk(CheckId(std::string(8, 'a'), "a principal id", 8));
}

TEST(CheckIdTest, RefusesEmptyTooLongAndOtherCharacters) {
  ExpectRefused(CheckId("", "a principal id", 8));
  ExpectRefused(CheckId(std::string(kMarker) + "a", "a principal id",
                        sizeof(kMarker) - 1));
  ExpectRefused(CheckId(std::string(kMarker) + "A", "a principal id", 64));
  ExpectRefused(CheckId(std::string(kMarker) + "/", "a principal id", 64));
  ExpectRefused(CheckId(std::string(kMarker) + "@x", "a principal id", 64));
  Status s = CheckId("", "a principal id", 8);
  EXPECT_NE(s.message().find("a principal id"), std::string::npos)
      << s.message();
}

TEST(CheckLengthTest, BoundariesWithAndWithoutEmpty) {
  ExpectOk(CheckLength(std::string(10, 'x'), "a note", 10, false));
  ExpectRefused(CheckLength(std::string(kMarker) + std::string(10, 'x'),
                            "a note", sizeof(kMarker) - 1 + 9, false));
  ExpectRefused(CheckLength("", "a note", 10, false));
  ExpectOk(CheckLength("", "a note", 10, true));
  ExpectOk(CheckLength("x", "a note", 1, true));
  ExpectRefused(CheckLength("xx", "a note", 1, true));
  ExpectRefused(CheckLength("x", "a note", 0, true));
}

TEST(CheckFieldsTest, CountsNamesAndValuesIntoTotal) {
  Limits limits;
  size_t total = 5;  // Added to, not overwritten.
  ExpectOk(CheckFields({{"name", "Anna"}, {"email", "a@b.c"}}, limits, &total));
  EXPECT_EQ(total, 5u + 4 + 4 + 5 + 5);
  ExpectOk(CheckFields({}, limits, &total));
  EXPECT_EQ(total, 23u);
}

TEST(CheckFieldsTest, RefusesADuplicateNameWithoutEchoingValues) {
  Limits limits;
  size_t total = 0;
  ExpectRefused(CheckFields({{"name", std::string(kMarker) + "1"},
                             {"name", std::string(kMarker) + "2"}},
                            limits, &total));
}

// Names and keys are a caller's text too (a hostile review found a field
// named "anna@example.org" echoed: "field 'anna@example.org' appears
// twice"): refusals name positions.
TEST(CheckFieldsTest, RefusalsNameFieldsByPositionNotByName) {
  Limits limits;
  limits.max_field_value_length = 4;
  size_t total = 0;
  const std::string name = std::string(kMarker) + "@example.org";
  Status twice = CheckFields({{"a", ""}, {name, "1"}, {"b", ""}, {name, "2"}},
                             limits, &total);
  ExpectRefused(twice);
  EXPECT_EQ(twice.message(),
            "fields 1 and 3 of a personal part have the same name");
  Status long_value = CheckFields({{"a", ""}, {name, "12345"}}, limits, &total);
  ExpectRefused(long_value);
  EXPECT_EQ(long_value.message(),
            "the value of field 1 must be at most 4 bytes");
}

TEST(CheckFieldsTest, FieldCountNameAndValueLengthBoundaries) {
  Limits limits;
  limits.max_fields_per_part = 3;
  limits.max_field_name_length = 4;
  limits.max_field_value_length = 6;
  size_t total = 0;
  ExpectOk(CheckFields({{"a", ""}, {"b", ""}, {"c", ""}}, limits, &total));
  ExpectRefused(CheckFields({{"a", ""}, {"b", ""}, {"c", ""}, {"d", ""}},
                            limits, &total));
  ExpectOk(CheckFields({{"abcd", "123456"}}, limits, &total));
  ExpectRefused(CheckFields({{"abcde", ""}}, limits, &total));
  ExpectRefused(CheckFields({{"", ""}}, limits, &total));
  limits.max_field_value_length = sizeof(kMarker);
  ExpectRefused(
      CheckFields({{"v", std::string(kMarker) + "xy"}}, limits, &total));
}

// Issue 9, item 10: a listing's attribute filters were unbounded (each
// record examined cost filters x attributes). Failed to compile before
// CheckListQuery; through the engine, ListRecords accepted 65 filters.
TEST(CheckListQueryTest, AttributeFiltersAtTheLimitAndOneOver) {
  Limits limits;
  limits.max_attributes = 2;
  ListQuery q;
  q.attribute_equals = {{"a", "1"}, {"b", "2"}};
  ExpectOk(CheckListQuery(q, limits));
  q.attribute_equals.push_back({"c", std::string(kMarker)});
  ExpectRefused(CheckListQuery(q, limits));
}

TEST(CheckListQueryTest, FilterKeyAndValueLengthsAreChecked) {
  Limits limits;
  limits.max_attribute_value_length = sizeof(kMarker);
  ListQuery q;
  q.attribute_equals = {{"a", std::string(kMarker) + "x"}};
  ExpectOk(CheckListQuery(q, limits));
  q.attribute_equals = {{"a", std::string(kMarker) + "xy"}};
  ExpectRefused(CheckListQuery(q, limits));
  q.attribute_equals = {{"", "v"}};
  ExpectRefused(CheckListQuery(q, limits));
}

// A hostile review: the kind filter was never checked (an uppercase or
// 8 MiB kind matched nothing, each record scanned compared with it).
TEST(CheckListQueryTest, TheKindFilterIsAKind) {
  Limits limits;
  ListQuery q;
  q.kind = "request";
  ExpectOk(CheckListQuery(q, limits));
  q.kind = std::string(kMarker) + "Request";
  ExpectRefused(CheckListQuery(q, limits));
  q.kind = std::string(65, 'k');
  ExpectRefused(CheckListQuery(q, limits));
}

TEST(CheckListQueryTest, LimitIsOneToMaxPageSize) {
  Limits limits;
  limits.max_page_size = 10;
  ListQuery q;
  q.limit = 10;
  ExpectOk(CheckListQuery(q, limits));
  q.limit = 0;
  ExpectRefused(CheckListQuery(q, limits));
  q.limit = 11;
  ExpectRefused(CheckListQuery(q, limits));
}

// A record that passes, with one of everything, against small limits.
class ValidateNewRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    limits_.max_attributes = 3;
    limits_.max_subjects_per_record = 3;
    limits_.max_fields_per_part = 3;
    limits_.max_personal_bytes = 100;
    limits_.max_grants = 3;
    record_.kind = "note";
    record_.attributes = {{"k", "v"}};
    record_.personal = {{"anna@example.org", {{"name", "Anna"}}}};
    record_.grants = {"bob"};
  }

  Status Validate() const { return ValidateNewRecord(record_, limits_); }

  Limits limits_;
  NewRecord record_;
};

TEST_F(ValidateNewRecordTest, BaseRecordIsValid) { ExpectOk(Validate()); }

TEST_F(ValidateNewRecordTest, KindIsChecked) {
  record_.kind = std::string(kMarker) + "Note";
  ExpectRefused(Validate());
}

TEST_F(ValidateNewRecordTest, AttributesAtTheLimitAndOneOver) {
  record_.attributes = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
  ExpectOk(Validate());
  record_.attributes.push_back({"d", "4"});
  ExpectRefused(Validate());
}

TEST_F(ValidateNewRecordTest, AttributeValueLengthIsChecked) {
  limits_.max_attribute_value_length = sizeof(kMarker);
  record_.attributes = {{"a", std::string(kMarker) + "x"}};
  ExpectOk(Validate());
  record_.attributes = {{"a", std::string(kMarker) + "xy"}};
  ExpectRefused(Validate());
  // Named by its position, not by its key.
  record_.attributes = {{"a", ""}, {kMarker, std::string(kMarker) + "xy"}};
  Status refused = Validate();
  ExpectRefused(refused);
  EXPECT_EQ(refused.message(), "the value of attribute 1 must be at most " +
                                   std::to_string(sizeof(kMarker)) + " bytes");
}

TEST_F(ValidateNewRecordTest, SubjectsAtTheLimitAndOneOver) {
  record_.personal = {{"a", {}}, {"b", {}}, {"c", {}}};
  ExpectOk(Validate());
  record_.personal.push_back({"d", {}});
  ExpectRefused(Validate());
}

TEST_F(ValidateNewRecordTest, FieldsAtTheLimitAndOneOver) {
  record_.personal[0].fields = {{"a", ""}, {"b", ""}, {"c", ""}};
  ExpectOk(Validate());
  record_.personal[0].fields.push_back({"d", ""});
  ExpectRefused(Validate());
}

TEST_F(ValidateNewRecordTest, PersonalBytesSumOverPartsAtTheLimitAndOneOver) {
  // 100 bytes over two parts: (1 + 49) + (1 + 49).
  record_.personal = {{"a", {{"x", std::string(49, 'v')}}},
                      {"b", {{"y", std::string(49, 'v')}}}};
  ExpectOk(Validate());
  record_.personal[1].fields[0].value = std::string(kMarker) + "v";
  record_.personal[1].fields[0].value.resize(50, 'v');
  ExpectRefused(Validate());
}

TEST_F(ValidateNewRecordTest, GrantsAtTheLimitAndOneOver) {
  record_.grants = {"a", "b", "c"};
  ExpectOk(Validate());
  record_.grants.push_back("d");
  ExpectRefused(Validate());
}

TEST_F(ValidateNewRecordTest, TwoPartsNamingTheSameSubjectAreRefused) {
  const std::string subject = std::string(kMarker) + "@example.org";
  record_.personal = {{subject, {{"name", "A"}}}, {subject, {{"age", "3"}}}};
  ExpectRefused(Validate());
  record_.personal[1].subject_identifier += ".";
  ExpectOk(Validate());
}

TEST_F(ValidateNewRecordTest, EmptyAndTooLongSubjectIdentifiersAreRefused) {
  record_.personal[0].subject_identifier = "";
  ExpectRefused(Validate());
  limits_.max_identifier_length = sizeof(kMarker);
  record_.personal[0].subject_identifier = std::string(kMarker) + "x";
  ExpectOk(Validate());
  record_.personal[0].subject_identifier = std::string(kMarker) + "xy";
  ExpectRefused(Validate());
}

// Options::REQUIRES, checked without opening anything.
TEST(CheckOptionsTest, AcceptsTheDefaultsWithADirectoryAndAClock) {
  ManualClock clock(Timestamp{});
  Options options;
  options.data_dir = "/nonexistent/custos";
  options.clock = &clock;
  ExpectOk(CheckOptions(options));
}

TEST(CheckOptionsTest, RefusesEachValueOutOfItsRange) {
  ManualClock clock(Timestamp{});
  Options good;
  good.data_dir = "/nonexistent/custos";
  good.clock = &clock;
  auto refused = [&](auto change, std::string_view names) {
    Options options = good;
    change(options);
    Status s = CheckOptions(options);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << names;
    EXPECT_NE(s.message().find(names), std::string::npos) << s.message();
  };
  refused([](Options& o) { o.data_dir.clear(); }, "data_dir");
  refused([](Options& o) { o.clock = nullptr; }, "clock");
  refused([](Options& o) { o.limits.max_page_size = 0; }, "max_page_size");
  refused([](Options& o) { o.limits.max_list_scan = 0; }, "max_list_scan");
  refused([](Options& o) { o.limits.max_batch_records = 0; },
          "max_batch_records");
  refused([](Options& o) { o.key_cache_capacity = 0; }, "key_cache_capacity");
  refused(
      [](Options& o) { o.erasure_compaction_delay = std::chrono::seconds(-1); },
      "erasure_compaction_delay");
  refused([](Options& o) { o.backup_retention = {}; }, "backup_retention");
  refused(
      [](Options& o) {
        o.limits.max_personal_bytes = kMaxPersonalBytesLimit + 1;
      },
      "max_personal_bytes");
  Options at_bound = good;
  at_bound.limits.max_personal_bytes = kMaxPersonalBytesLimit;
  ExpectOk(CheckOptions(at_bound));
}

}  // namespace
}  // namespace custos
