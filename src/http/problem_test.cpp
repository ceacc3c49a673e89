#include "http/problem.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "http/router.hpp"

namespace evo::http {
namespace {

using nlohmann::json;

TEST(HttpStatusFor, MapsEveryCanonicalCode) {
  EXPECT_EQ(HttpStatusFor(OkStatus()), 200);
  EXPECT_EQ(HttpStatusFor(InvalidArgumentError("x")), 400);
  EXPECT_EQ(HttpStatusFor(FailedPreconditionError("x")), 400);
  EXPECT_EQ(HttpStatusFor(OutOfRangeError("x")), 400);
  EXPECT_EQ(HttpStatusFor(UnauthenticatedError("x")), 401);
  EXPECT_EQ(HttpStatusFor(PermissionDeniedError("x")), 403);
  EXPECT_EQ(HttpStatusFor(NotFoundError("x")), 404);
  EXPECT_EQ(HttpStatusFor(AlreadyExistsError("x")), 409);
  EXPECT_EQ(HttpStatusFor(AbortedError("x")), 409);
  EXPECT_EQ(HttpStatusFor(ResourceExhaustedError("x")), 429);
  EXPECT_EQ(HttpStatusFor(CancelledError("x")), 499);
  EXPECT_EQ(HttpStatusFor(UnimplementedError("x")), 501);
  EXPECT_EQ(HttpStatusFor(UnavailableError("x")), 503);
  EXPECT_EQ(HttpStatusFor(DeadlineExceededError("x")), 504);
  EXPECT_EQ(HttpStatusFor(InternalError("x")), 500);
  EXPECT_EQ(HttpStatusFor(UnknownError("x")), 500);
  EXPECT_EQ(HttpStatusFor(DataLossError("x")), 500);
}

TEST(HttpStatusFor, PayloadOverridesOnlyWithAnErrorStatus) {
  EXPECT_EQ(HttpStatusFor(InvalidArgumentError("x").With(kPayloadHttpStatus, "415")), 415);
  EXPECT_EQ(HttpStatusFor(ResourceExhaustedError("x").With(kPayloadHttpStatus, "413")), 413);
  EXPECT_EQ(HttpStatusFor(InvalidArgumentError("x").With(kPayloadHttpStatus, "200")), 400);
  EXPECT_EQ(HttpStatusFor(InvalidArgumentError("x").With(kPayloadHttpStatus, "42x")), 400);
  EXPECT_EQ(HttpStatusFor(InvalidArgumentError("x").With(kPayloadHttpStatus, "")), 400);
}

TEST(ProblemType, IsAStableUriPerCode) {
  EXPECT_EQ(ProblemType(StatusCode::kInvalidArgument), "https://evo.dev/problems/invalid-argument");
  EXPECT_EQ(ProblemType(StatusCode::kNotFound), "https://evo.dev/problems/not-found");
}

TEST(ReasonPhrase, KnowsCommonCodes) {
  EXPECT_EQ(ReasonPhrase(404), "Not Found");
  EXPECT_EQ(ReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(ReasonPhrase(799), "Unknown");
}

TEST(ProblemResponse, CarriesTheRfc9457Fields) {
  const Response r = ProblemResponse(InvalidArgumentError("count must be 1..10000")
                                         .With(kPayloadReason, "OUT_OF_BOUNDS")
                                         .With(kPayloadPointer, "#/count"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.headers.Get("Content-Type"), "application/problem+json");
  const json body = json::parse(r.body);
  EXPECT_EQ(body["type"], "https://evo.dev/problems/invalid-argument");
  EXPECT_EQ(body["title"], "Bad Request");
  EXPECT_EQ(body["status"], 400);
  EXPECT_EQ(body["detail"], "count must be 1..10000");
  EXPECT_EQ(body["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(body["reason"], "OUT_OF_BOUNDS");
  ASSERT_EQ(body["errors"].size(), 1U);
  EXPECT_EQ(body["errors"][0]["pointer"], "#/count");
  EXPECT_FALSE(body.contains("instance"));
}

TEST(ProblemResponse, OmitsOptionalFieldsAndAddsInstanceWhenGiven) {
  const Response r = ProblemResponse(NotFoundError("no such id"), "/v1/ids/1");
  const json body = json::parse(r.body);
  EXPECT_EQ(r.status, 404);
  EXPECT_FALSE(body.contains("reason"));
  EXPECT_FALSE(body.contains("errors"));
  EXPECT_EQ(body["instance"], "/v1/ids/1");
}

TEST(ProblemResponse, UnauthenticatedGetsABearerChallenge) {
  const Response r = ProblemResponse(UnauthenticatedError("no token"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.headers.Get("WWW-Authenticate"), "Bearer realm=\"evo\"");
}

TEST(ProblemResponse, ModuleChallengeReplacesTheDefault) {
  Status s = UnauthenticatedError("expired");
  AddProblemHeader(s, "WWW-Authenticate", "Bearer realm=\"evo\", error=\"invalid_token\"");
  const Response r = ProblemResponse(s);
  EXPECT_EQ(r.headers.Count("WWW-Authenticate"), 1U);
  EXPECT_EQ(r.headers.Get("WWW-Authenticate"), "Bearer realm=\"evo\", error=\"invalid_token\"");
}

TEST(ProblemResponse, RetryAfterOnlyWhenNumeric) {
  EXPECT_EQ(ProblemResponse(UnavailableError("busy").With(kPayloadRetryAfter, "7"))
                .headers.Get("Retry-After"),
            "7");
  EXPECT_FALSE(ProblemResponse(UnavailableError("busy").With(kPayloadRetryAfter, "7\r\nX: 1"))
                   .headers.Get("Retry-After"));
}

TEST(ProblemResponse, ExtraHeadersAreAddedAndInjectionIsDropped) {
  Status s = InvalidArgumentError("x").With(kPayloadHttpStatus, "415");
  AddProblemHeader(s, "Accept-Post", "application/json");
  AddProblemHeader(s, "Bad Name", "v");
  s.SetPayload(kPayloadHttpHeaders, s.GetPayload(kPayloadHttpHeaders).value() + "\nX-Evil: a\rb");
  const Response r = ProblemResponse(s);
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(r.headers.Get("Accept-Post"), "application/json");
  EXPECT_FALSE(r.headers.Get("Bad Name"));
  EXPECT_FALSE(r.headers.Get("X-Evil"));
}

TEST(ProblemResponse, InvalidUtf8InTheMessageDoesNotThrow) {
  const Response r = ProblemResponse(InvalidArgumentError("bad \xff byte"));
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(json::accept(r.body));
}

TEST(ProblemResponse, OkStatusBecomes500) { EXPECT_EQ(ProblemResponse(OkStatus()).status, 500); }

}  // namespace
}  // namespace evo::http
