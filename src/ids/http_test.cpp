// The ids routes through a real Router: status codes, bodies, headers, metrics, OpenAPI.
#include "ids/http.hpp"

#include <algorithm>
#include <regex>

#include <gtest/gtest.h>

#include "ids/test_util.hpp"

namespace evo::ids {
namespace {

using nlohmann::json;
using testing::FakeLease;
using testing::MemoryMarkStore;

class IdsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(std::make_shared<MemoryMarkStore::State>()); }

  void Open(std::shared_ptr<MemoryMarkStore::State> marks) {
    router_ = std::make_unique<http::Router>();
    registry_ = std::make_unique<metrics::Registry>();
    generator_.reset();
    auto g = Generator::Open({}, clock_, std::make_unique<FakeLease>(9),
                             std::make_unique<MemoryMarkStore>(std::move(marks)));
    ASSERT_TRUE(g.ok()) << g.status();
    generator_ = std::move(*g);
    RegisterRoutes(*router_, *generator_, uuids_, ulids_, clock_, *registry_);
  }

  http::Response Call(std::string method, std::string target, std::string accept = "",
                      std::string body = "", std::string content_type = "application/json") {
    http::Request request;
    request.method = std::move(method);
    request.target = target;
    const size_t q = target.find('?');
    request.path = target.substr(0, q);
    request.query = q == std::string::npos ? "" : target.substr(q + 1);
    if (!accept.empty()) {
      request.headers.Add("Accept", accept);
    }
    if (!body.empty()) {
      request.headers.Add("Content-Type", content_type);
      request.body = std::move(body);
    }
    return router_->Dispatch(request);
  }
  http::Response Get(std::string target, std::string accept = "") {
    return Call("GET", std::move(target), std::move(accept));
  }

  static json Body(const http::Response& r) { return json::parse(r.body); }
  static std::string Header(const http::Response& r, std::string_view name) {
    return std::string(r.headers.Get(name).value_or(""));
  }

  ManualClock clock_;
  Uuid7Generator uuids_{clock_, 1};
  UlidGenerator ulids_{clock_, 2};
  std::unique_ptr<Generator> generator_;
  std::unique_ptr<metrics::Registry> registry_;
  std::unique_ptr<http::Router> router_;
};

TEST_F(IdsHttpTest, IssuesIncreasingIdsAsJsonStringsThatAreNeverCached) {
  const http::Response r = Get("/v1/ids?count=3");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Header(r, "Cache-Control"), "no-store");
  EXPECT_TRUE(Header(r, "Content-Type").starts_with("application/json"));
  const json ids = Body(r)["ids"];
  ASSERT_EQ(ids.size(), 3u);
  Id prev = 0;
  for (const json& id : ids) {
    ASSERT_TRUE(id.is_string());
    const Id value = std::stoull(id.get<std::string>());
    EXPECT_GT(value, prev);
    prev = value;
  }
  EXPECT_EQ(Body(Get("/v1/ids"))["ids"].size(), 1u);  // count defaults to 1
  EXPECT_EQ(Body(Get("/v1/ids?count=10000"))["ids"].size(), 10'000u);
}

TEST_F(IdsHttpTest, FormatsFollowTheQuery) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"decimal", "^[0-9]+$"},
      {"base32", "^[0-9A-HJKMNP-TV-Z]{13}$"},
      {"hex", "^[0-9a-f]{16}$"},
      {"HEX", "^[0-9a-f]{16}$"}};
  for (const auto& [format, pattern] : cases) {
    const http::Response r = Get("/v1/ids?count=5&format=" + format);
    ASSERT_EQ(r.status, 200) << r.body;
    std::vector<std::string> ids = Body(r)["ids"];
    for (const std::string& id : ids) {
      EXPECT_TRUE(std::regex_match(id, std::regex(pattern))) << format << " " << id;
    }
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  }
}

TEST_F(IdsHttpTest, TextPlainWhenAskedForAndPreferred) {
  const http::Response r = Get("/v1/ids?count=4", "text/plain");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(Header(r, "Content-Type").starts_with("text/plain"));
  EXPECT_EQ(Header(r, "Cache-Control"), "no-store");
  EXPECT_EQ(std::count(r.body.begin(), r.body.end(), '\n'), 4);
  EXPECT_TRUE(Header(Get("/v1/ids", "application/json;q=0.5, text/*"), "Content-Type")
                  .starts_with("text/plain"));
  for (std::string accept :
       {"text/plain, application/json", "*/*", "application/json", "application/json;q=0.5, */*",
        "text/plain;q=0", "text/html", "text/plain;q=0.4, application/json;q=0.9"}) {
    EXPECT_TRUE(Header(Get("/v1/ids", accept), "Content-Type").starts_with("application/json"))
        << accept;
  }
  const http::Response u = Get("/v1/uuids?count=2", "text/plain");
  EXPECT_EQ(std::count(u.body.begin(), u.body.end(), '\n'), 2);
}

TEST_F(IdsHttpTest, BadCountsAndFormatsAre400ProblemsNamingTheParameter) {
  for (std::string bad : {"0", "-1", "10001", "1e99", "abc", "", "%201", "0x10", "+1", "1.0",
                          "99999999999999999999", "%FF"}) {
    const http::Response r = Get("/v1/ids?count=" + bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_TRUE(Header(r, "Content-Type").starts_with("application/problem+json")) << bad;
    EXPECT_EQ(Body(r)["code"], "INVALID_ARGUMENT") << bad;
  }
  EXPECT_EQ(Body(Get("/v1/ids?count=0"))["errors"][0]["pointer"], "#/count");
  EXPECT_EQ(Get("/v1/ids?count=1&count=2").status, 400);
  const http::Response roman = Get("/v1/ids?format=roman");
  EXPECT_EQ(roman.status, 400);
  EXPECT_EQ(Body(roman)["errors"][0]["pointer"], "#/format");
  EXPECT_EQ(Get("/v1/uuids?count=0").status, 400);
  EXPECT_EQ(Get("/v1/uuids?version=4").status, 400);
  EXPECT_EQ(Get("/v1/ulids?count=10001").status, 400);
  // Nothing was issued by the refused requests.
  EXPECT_EQ(generator_->stats().issued, 0u);
}

TEST_F(IdsHttpTest, NotReadyIs503WithRetryAfter) {
  auto marks = std::make_shared<MemoryMarkStore::State>();
  const Layout layout;
  marks->mark = UnixMillis(clock_.Now()) - UnixMillis(layout.epoch) + 3'600'000;  // 1 h ahead
  Open(marks);
  const http::Response r = Get("/v1/ids?count=2");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(Body(r)["code"], "UNAVAILABLE");
  EXPECT_EQ(Header(r, "Retry-After"), std::to_string(3600 - 5));
  EXPECT_NE(Body(r)["detail"].get<std::string>().find("behind the high-water mark"),
            std::string::npos);
  EXPECT_NE(registry_->RenderText().find("evo_ids_unavailable_total 1"), std::string::npos);
}

TEST_F(IdsHttpTest, DescribesAnIdInEveryFormat) {
  const std::string decimal = Body(Get("/v1/ids"))["ids"][0];
  const Id id = std::stoull(decimal);
  for (Format f : {Format::kDecimal, Format::kBase32, Format::kHex}) {
    const http::Response r = Get("/v1/ids/" + Encode(id, f));
    ASSERT_EQ(r.status, 200) << r.body;
    const json body = Body(r);
    EXPECT_EQ(body["id"], decimal);
    EXPECT_EQ(body["unixMillis"], UnixMillis(clock_.Now()));
    EXPECT_EQ(body["timestamp"], "2026-01-01T00:00:00.000Z");
    EXPECT_EQ(body["workerId"], 9);
    EXPECT_EQ(body["sequence"], 0);
    EXPECT_EQ(body["formats"]["decimal"], decimal);
    EXPECT_EQ(body["formats"]["base32"], Encode(id, Format::kBase32));
    EXPECT_EQ(body["formats"]["hex"], Encode(id, Format::kHex));
    EXPECT_EQ(Get("/v1/ids/" + Encode(id, f) + "?format=" + std::string(FormatName(f))).status,
              200);
  }
  // A hex ID made only of digits is decimal unless the format says otherwise.
  const std::string digits_only = "0000000000000042";
  EXPECT_EQ(Body(Get("/v1/ids/" + digits_only))["id"], "42");
  EXPECT_EQ(Body(Get("/v1/ids/" + digits_only + "?format=hex"))["id"], "66");
  EXPECT_EQ(Get("/v1/ids/" + decimal + "?format=base32").status, 400);
}

TEST_F(IdsHttpTest, MalformedIdsAre400AndFutureIdsAre422) {
  for (const std::string& bad :
       std::vector<std::string>{"zzz", std::string(21, '1'), "%FF", std::string(10'000, 'a'), "-1",
                                "9223372036854775808", "%00"}) {
    const http::Response r = Get("/v1/ids/" + bad);
    EXPECT_EQ(r.status, 400) << bad.substr(0, 30);
    EXPECT_EQ(Body(r)["code"], "INVALID_ARGUMENT");
    EXPECT_LT(r.body.size(), 1000u);  // the 10 KB input is not echoed back
  }
  const http::Response future = Get("/v1/ids/" + std::to_string((Id{1} << 62) + 5));
  EXPECT_EQ(future.status, 422) << future.body;
  EXPECT_EQ(Body(future)["code"], "FAILED_PRECONDITION");
  EXPECT_EQ(Body(future)["reason"], "ID_FROM_THE_FUTURE");
  // Just inside what a restart plus borrowing can reach: accepted.
  const Layout layout;
  const int64_t now_ticks = UnixMillis(clock_.Now()) - UnixMillis(layout.epoch);
  EXPECT_EQ(Get("/v1/ids/" + std::to_string(Compose(layout, now_ticks + 6000, 0, 0))).status, 200);
  EXPECT_EQ(Get("/v1/ids/" + std::to_string(Compose(layout, now_ticks + 6100, 0, 0))).status, 422);
}

TEST_F(IdsHttpTest, DecodesManyIdsAllOrNothing) {
  const json ids = Body(Get("/v1/ids?count=3&format=base32"))["ids"];
  const http::Response ok = Call("POST", "/v1/ids:decode", "", json{{"ids", ids}}.dump());
  ASSERT_EQ(ok.status, 200) << ok.body;
  ASSERT_EQ(Body(ok)["ids"].size(), 3u);
  EXPECT_EQ(Body(ok)["ids"][2]["sequence"], 2);
  EXPECT_EQ(
      Call("POST", "/v1/ids:decode", "", R"({"ids":["000000000000002a"],"format":"hex"})").status,
      200);

  const http::Response mixed = Call("POST", "/v1/ids:decode", "", R"({"ids":["1",5]})");
  EXPECT_EQ(mixed.status, 400);
  EXPECT_EQ(Body(mixed)["errors"][0]["pointer"], "#/ids/1");
  const http::Response bad_id = Call("POST", "/v1/ids:decode", "", R"({"ids":["1","zzz"]})");
  EXPECT_EQ(bad_id.status, 400);
  EXPECT_EQ(Body(bad_id)["errors"][0]["pointer"], "#/ids/1");
  for (std::string body : {"[]", R"({"ids":[]})", R"({"ids":"1"})", R"({})", R"({"ids": [)",
                           R"({"ids":["1"],"format":"roman"})", R"({"ids":["1"],"format":7})"}) {
    EXPECT_EQ(Call("POST", "/v1/ids:decode", "", body).status, 400) << body;
  }
  json too_many = {{"ids", json::array()}};
  for (int i = 0; i < 1001; ++i) {
    too_many["ids"].push_back("1");
  }
  EXPECT_EQ(Call("POST", "/v1/ids:decode", "", too_many.dump()).status, 400);
  EXPECT_EQ(Call("POST", "/v1/ids:decode", "", R"({"ids":["1"]})", "text/plain").status, 415);
  EXPECT_EQ(
      Call("POST", "/v1/ids:decode", "", json{{"ids", {std::to_string((Id{1} << 62) + 5)}}}.dump())
          .status,
      422);
}

TEST_F(IdsHttpTest, UuidsAndUlidsAreOrderedAndWellFormed) {
  const http::Response u = Get("/v1/uuids?count=50&version=7");
  ASSERT_EQ(u.status, 200);
  EXPECT_EQ(Header(u, "Cache-Control"), "no-store");
  std::vector<std::string> uuids = Body(u)["uuids"];
  ASSERT_EQ(uuids.size(), 50u);
  const std::regex uuid7("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  for (const std::string& x : uuids) {
    EXPECT_TRUE(std::regex_match(x, uuid7)) << x;
  }
  EXPECT_TRUE(std::is_sorted(uuids.begin(), uuids.end()));
  const http::Response l = Get("/v1/ulids?count=50");
  ASSERT_EQ(l.status, 200);
  std::vector<std::string> ulids = Body(l)["ulids"];
  ASSERT_EQ(ulids.size(), 50u);
  for (const std::string& x : ulids) {
    EXPECT_TRUE(std::regex_match(x, std::regex("^[0-7][0-9A-HJKMNP-TV-Z]{25}$"))) << x;
  }
  EXPECT_TRUE(std::is_sorted(ulids.begin(), ulids.end()));
}

TEST_F(IdsHttpTest, MetricsFollowTheGenerator) {
  ASSERT_EQ(Get("/v1/ids?count=5000").status, 200);  // one sequence exhaustion
  ASSERT_EQ(Get("/v1/ids").status, 200);
  const std::string text = registry_->RenderText();
  for (std::string_view line :
       {"# TYPE evo_ids_issued_total counter", "evo_ids_issued_total 5001",
        "# TYPE evo_ids_sequence_exhaustions_total counter", "evo_ids_sequence_exhaustions_total 1",
        "evo_ids_clock_backward_events_total 0", "evo_ids_unavailable_total 0",
        "# TYPE evo_ids_worker_id gauge", "evo_ids_worker_id 9",
        "# TYPE evo_ids_high_water_mark_seconds gauge"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
}

TEST_F(IdsHttpTest, OpenApiDescribesEveryRoute) {
  const json doc = router_->OpenApi("evo", "test");
  const json& ids = doc["paths"]["/v1/ids"]["get"];
  EXPECT_EQ(ids["operationId"], "issueIds");
  EXPECT_EQ(ids["parameters"][0]["schema"]["maximum"], 10'000);
  EXPECT_EQ(ids["responses"]["503"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem");
  EXPECT_EQ(doc["paths"]["/v1/ids/{id}"]["get"]["responses"]["422"]["content"]
               ["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem");
  EXPECT_TRUE(doc["paths"].contains("/v1/ids:decode"));
  EXPECT_TRUE(doc["paths"].contains("/v1/uuids"));
  EXPECT_TRUE(doc["paths"].contains("/v1/ulids"));
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      EXPECT_TRUE(op.contains("summary")) << path;
      EXPECT_TRUE(op.contains("operationId")) << path;
      EXPECT_TRUE(op["responses"].contains("200")) << path;
    }
  }
}

}  // namespace
}  // namespace evo::ids
