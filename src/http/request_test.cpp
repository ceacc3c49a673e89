#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "http/problem.hpp"
#include "http/router.hpp"
#include "http/text.hpp"

namespace evo::http {
namespace {

using nlohmann::json;

Request WithQuery(std::string query) {
  Request request;
  request.method = "GET";
  request.query = std::move(query);
  return request;
}

Request WithBody(std::string body, std::string content_type = "application/json",
                 std::string method = "POST") {
  Request request;
  request.method = std::move(method);
  if (!content_type.empty()) {
    request.headers.Add("content-type", std::move(content_type));
  }
  request.body = std::move(body);
  return request;
}

std::string ReasonOf(const Status& status) {
  return status.GetPayload(kPayloadReason).value_or("");
}

TEST(Query, ReturnsTheDecodedValueOrNullopt) {
  const Request r = WithQuery("pageSize=10&filter=a+b%20c&flag&empty=");
  EXPECT_EQ(*r.Query("pageSize").value(), "10");
  EXPECT_EQ(*r.Query("filter").value(), "a b c");
  EXPECT_EQ(*r.Query("flag").value(), "");
  EXPECT_EQ(*r.Query("empty").value(), "");
  EXPECT_FALSE(r.Query("missing").value().has_value());
  EXPECT_FALSE(WithQuery("").Query("x").value().has_value());
  EXPECT_EQ(*WithQuery("a%2Bb=%E2%82%AC").Query("a+b").value(), "\xE2\x82\xAC");
  EXPECT_EQ(*WithQuery("&&x=1&&").Query("x").value(), "1");
}

TEST(Query, RepeatedKeyIsInvalidArgument) {
  const auto result = WithQuery("pageSize=1&pageSize=2").Query("pageSize");
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(result.status()), "INVALID_QUERY");
  // Spelled differently but decoding to the same key is still a repeat.
  EXPECT_EQ(WithQuery("a=1&%61=2").Query("a").status().code(), StatusCode::kInvalidArgument);
}

TEST(Query, BadEncodingAnywhereIsInvalidArgument) {
  for (const char* query : {"filter=%FF%FE", "x=%00", "x=%0A", "x=%G0", "x=%", "x=%4",
                            "x=1&other=%FF", "%FF=1", "x=%C0%AF", "x=%ED%A0%80"}) {
    EXPECT_EQ(WithQuery(query).Query("x").status().code(), StatusCode::kInvalidArgument) << query;
  }
}

TEST(JsonBody, ParsesAnObject) {
  const auto body =
      WithBody(R"({"name":"x","tags":["a","b"],"n":-1.5,"big":18446744073709551615})").JsonBody();
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ((*body)["name"], "x");
  EXPECT_EQ((*body)["tags"][1], "b");
  EXPECT_EQ((*body)["n"], -1.5);
  EXPECT_EQ((*body)["big"], 18446744073709551615ULL);
  EXPECT_TRUE(WithBody("[]").JsonBody().ok());  // top-level type is the handler's business
  EXPECT_TRUE(WithBody(" \n{}\t").JsonBody().ok());
}

TEST(JsonBody, AcceptsJsonMediaTypeVariants) {
  for (const char* type : {"application/json", "Application/JSON",
                           "application/json; charset=utf-8", "application/json;charset=UTF-8",
                           "application/json; charset=\"utf-8\"", "application/json ; foo=bar"}) {
    EXPECT_TRUE(WithBody("{}", type).JsonBody().ok()) << type;
  }
}

TEST(JsonBody, WrongContentTypeIs415WithAcceptPost) {
  for (const char* type :
       {"", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1",
        "application/jsonx", "application/json; charset", "application/merge-patch+json"}) {
    const auto result = WithBody("{}", type).JsonBody();
    ASSERT_FALSE(result.ok()) << type;
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    const Response r = ProblemResponse(result.status());
    EXPECT_EQ(r.status, 415) << type;
    EXPECT_EQ(r.headers.Get("Accept-Post"), "application/json") << type;
    EXPECT_EQ(ReasonOf(result.status()), "UNSUPPORTED_MEDIA_TYPE");
  }
  const Response patch = ProblemResponse(WithBody("{}", "text/plain", "PATCH").JsonBody().status());
  EXPECT_EQ(patch.headers.Get("Accept-Patch"), "application/json");
}

TEST(JsonBody, EmptyBodyIsBodyRequired) {
  const auto result = WithBody("").JsonBody();
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(result.status()), "BODY_REQUIRED");
}

TEST(JsonBody, MalformedJsonIs400) {
  for (const char* text : {R"({"name": "x",)", "{name:1}", "{}x", "{} {}", "nul", "[1,]", "'a'",
                           "{\"a\":1}}", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
                           "1e400", "-1e400", "[1e999]", "{\"a\":NaN}", "/* c */ {}"}) {
    const auto result = WithBody(text).JsonBody();
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_EQ(ReasonOf(result.status()), "MALFORMED_JSON") << text;
    EXPECT_EQ(HttpStatusFor(result.status()), 400) << text;
  }
}

TEST(JsonBody, InvalidUtf8Is400) {
  for (const std::string& text :
       {std::string("{\"a\":\"\xff\"}"), std::string("\xff\xfe{}"),
        std::string("{\"a\":\"\xc0\xaf\"}"), std::string("{\"a\":\"\xed\xa0\x80\"}"),
        std::string("{\"a\":\"\xf4\x90\x80\x80\"}"), std::string("{\"a\":\"\xe2\x82\"}")}) {
    const auto result = WithBody(text).JsonBody();
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(ReasonOf(result.status()), "MALFORMED_JSON");
  }
  EXPECT_TRUE(WithBody("{\"a\":\"\xe2\x82\xac \xf0\x9f\x98\x80 \\ud83d\\ude00\"}").JsonBody().ok());
}

TEST(JsonBody, DuplicateKeysAre400WithPointer) {
  auto result = WithBody(R"({"name":"a","name":"b"})").JsonBody();
  EXPECT_EQ(ReasonOf(result.status()), "MALFORMED_JSON");
  EXPECT_EQ(result.status().GetPayload(kPayloadPointer), "#/name");
  result = WithBody(R"({"a":[{"b":1},{"c/d":1,"c/d":2}]})").JsonBody();
  EXPECT_EQ(result.status().GetPayload(kPayloadPointer), "#/a/1/c~1d");
  EXPECT_TRUE(WithBody(R"({"a":{"x":1},"b":{"x":1}})").JsonBody().ok());
}

TEST(JsonBody, NulInStringsAndKeysIsKeptByteExact) {
  // RFC 8259 allows \u0000; in a payload it is data (BAD_INPUTS.md).
  auto result = WithBody(R"({"list":[1,"a\u0000b"],"k\u0000":"x"})").JsonBody();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ((*result)["list"][1].get<std::string>(), std::string("a\0b", 3));
  EXPECT_TRUE(result->contains(std::string("k\0", 2)));
  EXPECT_EQ(result->dump(), R"({"k\u0000":"x","list":[1,"a\u0000b"]})");
}

TEST(IsHeaderName, TokensOnly) {
  EXPECT_TRUE(IsHeaderName("X-Api-Key"));
  EXPECT_TRUE(IsHeaderName("x_1!#$%&'*+.^`|~"));
  for (const char* bad : {"", "X A", "X(", "X:", "X\r\nY", "caf\xc3\xa9"}) {
    EXPECT_FALSE(IsHeaderName(bad)) << bad;
  }
}

TEST(CheckIdentifier, RefusesNulAndControlsWithThePointer) {
  EXPECT_TRUE(CheckIdentifier("orders.eu-1", "#/name").ok());
  EXPECT_TRUE(CheckIdentifier("caf\xc3\xa9", "#/name").ok());
  for (const std::string& bad :
       {std::string("a\0b", 3), std::string("a\nb"), std::string("\x7f")}) {
    const Status s = CheckIdentifier(bad, "#/arms/0/name");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(ReasonOf(s), "INVALID_CHARACTER");
    EXPECT_EQ(s.GetPayload(kPayloadPointer), "#/arms/0/name");
  }
}

TEST(JsonBody, DepthIsLimitedTo64) {
  EXPECT_TRUE(WithBody(std::string(64, '[') + std::string(64, ']')).JsonBody().ok());
  const auto result = WithBody(std::string(65, '[') + std::string(65, ']')).JsonBody();
  EXPECT_EQ(ReasonOf(result.status()), "MALFORMED_JSON");
  std::string objects;
  for (int i = 0; i < 65; ++i) {
    objects += "{\"a\":";
  }
  objects += "1" + std::string(65, '}');
  EXPECT_FALSE(WithBody(objects).JsonBody().ok());
}

TEST(JsonBody, HugeNestingFailsFastWithoutStackOverflow) {
  const auto start = std::chrono::steady_clock::now();
  const auto result = WithBody(std::string(100000, '[') + std::string(100000, ']')).JsonBody();
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_FALSE(WithBody(std::string(100000, '[')).JsonBody().ok());
}

TEST(Request, ParamAndOutboundTraceparent) {
  Request r;
  r.params = {{"id", "42"}};
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  r.span_id = "00f067aa0ba902b7";
  EXPECT_EQ(r.Param("id"), "42");
  EXPECT_EQ(r.Param("other"), "");
  EXPECT_EQ(r.OutboundTraceparent("b7ad6b7169203331"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01");
  EXPECT_EQ(r.OutboundTraceparent(""), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
}

TEST(Headers, LookupIsCaseInsensitive) {
  Headers h;
  h.Add("Content-Type", "a");
  h.Add("X-Many", "1");
  h.Add("x-many", "2");
  EXPECT_EQ(h.Get("content-type"), "a");
  EXPECT_EQ(h.Count("X-MANY"), 2U);
  h.Set("X-MANY", "3");
  EXPECT_EQ(h.Count("x-many"), 1U);
  EXPECT_EQ(h.Get("x-many"), "3");
  EXPECT_FALSE(h.Get("absent"));
  h.Clear();
  EXPECT_TRUE(h.All().empty());
}

TEST(PercentDecode, HandlesPlusAndBadEscapes) {
  using internal::PercentDecode;
  EXPECT_EQ(PercentDecode("a+b%2B%2f", true), "a b+/");
  EXPECT_EQ(PercentDecode("a+b", false), "a+b");
  EXPECT_FALSE(PercentDecode("%", false));
  EXPECT_FALSE(PercentDecode("%a", false));
  EXPECT_FALSE(PercentDecode("%zz", false));
  EXPECT_EQ(PercentDecode("%00", false), std::string(1, '\0'));
}

}  // namespace
}  // namespace evo::http
