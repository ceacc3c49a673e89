#include "http/operational.hpp"

#include <gtest/gtest.h>

namespace evo::http {
namespace {

using nlohmann::json;

class OperationalTest : public ::testing::Test {
 protected:
  OperationalTest() { RegisterOperationalRoutes(router_, readiness_, registry_, "9.9.9"); }

  Response Get(std::string path) {
    Request request;
    request.method = "GET";
    request.path = std::move(path);
    return router_.Dispatch(request);
  }

  Router router_;
  Readiness readiness_;
  metrics::Registry registry_;
};

TEST_F(OperationalTest, LivezIsOk) {
  const Response r = Get("/livez");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body), json({{"status", "ok"}}));
}

TEST_F(OperationalTest, ReadyzFollowsComponentsAndDraining) {
  EXPECT_EQ(Get("/readyz").status, 200);
  readiness_.Set("ids", false, "waiting for the clock");
  readiness_.Set("store", true);
  Response r = Get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_FALSE(readiness_.Ready());
  json body = json::parse(r.body);
  EXPECT_EQ(body["status"], "not ready");
  EXPECT_EQ(body["components"]["ids"], "waiting for the clock");
  EXPECT_EQ(body["components"]["store"], "ok");
  readiness_.Set("ids", true);
  EXPECT_EQ(Get("/readyz").status, 200);
  EXPECT_TRUE(readiness_.Ready());
  readiness_.SetDraining();
  r = Get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json::parse(r.body)["status"], "draining");
}

TEST_F(OperationalTest, MetricsIsPrometheusText) {
  registry_.AddCounter("evo_test_things_total", "Things.").Get().Inc();
  const Response r = Get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.Get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("evo_test_things_total 1"), std::string::npos);
}

TEST_F(OperationalTest, OpenApiListsTheOperationalRoutes) {
  const Response r = Get("/openapi.json");
  EXPECT_EQ(r.status, 200);
  const json doc = json::parse(r.body);
  EXPECT_EQ(doc["openapi"], "3.1.0");
  EXPECT_EQ(doc["info"]["version"], "9.9.9");
  for (const char* path : {"/livez", "/readyz", "/metrics", "/openapi.json"}) {
    EXPECT_TRUE(doc["paths"][path].contains("get")) << path;
    EXPECT_TRUE(doc["paths"][path]["get"]["responses"].contains("default")) << path;
  }
}

}  // namespace
}  // namespace evo::http
