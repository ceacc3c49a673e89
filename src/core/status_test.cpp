#include "core/status.hpp"

#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace evo {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2 != 0) {
    return InvalidArgumentError("odd");
  }
  return x / 2;
}

StatusOr<int> Quarter(int x) {
  EVO_ASSIGN_OR_RETURN(int half, Half(x));
  EVO_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

Status CheckEven(int x) {
  EVO_RETURN_IF_ERROR(Half(x));
  return OkStatus();
}

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(Status, CarriesCodeMessageAndName) {
  Status s = NotFoundError("no such id");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "no such id");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: no such id");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnauthenticated), "UNAUTHENTICATED");
}

TEST(Status, PayloadsAreCopiedAndDetachedOnWrite) {
  Status a = UnavailableError("later").With(kPayloadRetryAfter, "3");
  Status b = a;
  b.SetPayload(kPayloadRetryAfter, "5");
  EXPECT_EQ(a.GetPayload(kPayloadRetryAfter), "3");
  EXPECT_EQ(b.GetPayload(kPayloadRetryAfter), "5");
  EXPECT_FALSE(a.GetPayload(kPayloadReason).has_value());
  Status ok;
  ok.SetPayload(kPayloadReason, "x");
  EXPECT_FALSE(ok.GetPayload(kPayloadReason).has_value());
}

TEST(StatusOr, HoldsValueOrError) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckEven(3).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(Quarter(6).value_or(-1), -1);
}

TEST(StatusOr, OkStatusWithoutValueBecomesInternal) {
  StatusOr<int> s{OkStatus()};
  EXPECT_EQ(s.status().code(), StatusCode::kInternal);
}

TEST(StatusOr, MoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> s = std::make_unique<int>(7);
  ASSERT_TRUE(s.ok());
  std::unique_ptr<int> p = std::move(s).value();
  EXPECT_EQ(*p, 7);
}

}  // namespace
}  // namespace evo
