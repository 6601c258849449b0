#include "base/status.h"

#include <gtest/gtest.h>

#include <string>

namespace custos {
namespace {

TEST(StatusTest, DefaultConstructedIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, OkFactoryIsOk) {
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_EQ(Status::Ok().code(), StatusCode::kOk);
}

TEST(StatusTest, EachFactorySetsItsCodeAndMessage) {
  struct Case {
    Status status;
    StatusCode code;
  };
  const Case cases[] = {
      {Status::NotFound("m"), StatusCode::kNotFound},
      {Status::InvalidArgument("m"), StatusCode::kInvalidArgument},
      {Status::FailedPrecondition("m"), StatusCode::kFailedPrecondition},
      {Status::Unauthenticated("m"), StatusCode::kUnauthenticated},
      {Status::PermissionDenied("m"), StatusCode::kPermissionDenied},
      {Status::ResourceExhausted("m"), StatusCode::kResourceExhausted},
      {Status::Unavailable("m"), StatusCode::kUnavailable},
      {Status::DataLoss("m"), StatusCode::kDataLoss},
      {Status::Internal("m"), StatusCode::kInternal},
      {Status::AlreadyExists("m"), StatusCode::kAlreadyExists},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(c.status.ok()) << StatusCodeName(c.code);
    EXPECT_EQ(c.status.code(), c.code) << StatusCodeName(c.code);
    EXPECT_EQ(c.status.message(), "m") << StatusCodeName(c.code);
  }
}

TEST(StatusTest, ToStringIsCodeNameColonMessage) {
  EXPECT_EQ(Status::NotFound("record not found").ToString(),
            "NotFound: record not found");
  EXPECT_EQ(Status::DataLoss("decryption failed").ToString(),
            "DataLoss: decryption failed");
}

TEST(StatusTest, EveryCodeHasAStableName) {
  EXPECT_EQ(StatusCodeName(StatusCode::kOk), "OK");
  EXPECT_EQ(StatusCodeName(StatusCode::kNotFound), "NotFound");
  EXPECT_EQ(StatusCodeName(StatusCode::kInvalidArgument), "InvalidArgument");
  EXPECT_EQ(StatusCodeName(StatusCode::kFailedPrecondition),
            "FailedPrecondition");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnauthenticated), "Unauthenticated");
  EXPECT_EQ(StatusCodeName(StatusCode::kPermissionDenied), "PermissionDenied");
  EXPECT_EQ(StatusCodeName(StatusCode::kResourceExhausted),
            "ResourceExhausted");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnavailable), "Unavailable");
  EXPECT_EQ(StatusCodeName(StatusCode::kDataLoss), "DataLoss");
  EXPECT_EQ(StatusCodeName(StatusCode::kInternal), "Internal");
  EXPECT_EQ(StatusCodeName(StatusCode::kAlreadyExists), "AlreadyExists");
}

Result<int> Half(int n) {
  if (n % 2 != 0) return Fail(Status::InvalidArgument("odd"));
  return n / 2;
}

TEST(StatusTest, ResultHoldsAValue) {
  Result<int> r = Half(8);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 4);
}

TEST(StatusTest, ResultHoldsTheFailedStatus) {
  Result<int> r = Half(7);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.error().message(), "odd");
}

int steps_run = 0;

Status Step(Status outcome) {
  ++steps_run;
  return outcome;
}

Status TwoSteps(Status first) {
  CUSTOS_RETURN_IF_ERROR(Step(std::move(first)));
  CUSTOS_RETURN_IF_ERROR(Step(Status::Ok()));
  return Status::Ok();
}

TEST(StatusTest, ReturnIfErrorStopsAtTheFirstError) {
  steps_run = 0;
  Status s = TwoSteps(Status::Unavailable("shutting down"));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "shutting down");
  EXPECT_EQ(steps_run, 1);
}

TEST(StatusTest, ReturnIfErrorContinuesOnOk) {
  steps_run = 0;
  EXPECT_TRUE(TwoSteps(Status::Ok()).ok());
  EXPECT_EQ(steps_run, 2);
}

}  // namespace
}  // namespace custos
