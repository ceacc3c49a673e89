#include "app/config.hpp"

#include <gtest/gtest.h>

namespace evo::app {
namespace {

using std::chrono::milliseconds;

TEST(AuthEnabled, AutoIsOnUnlessListeningOnLoopback) {
  Config c;
  for (const char* listen : {"127.0.0.1:8080", "127.1.2.3:0", "localhost:80", "[::1]:8080"}) {
    c.listen = listen;
    EXPECT_TRUE(ListensOnLoopback(c)) << listen;
    EXPECT_FALSE(*AuthEnabled(c)) << listen;
  }
  for (const char* listen : {"0.0.0.0:8080", "[::]:8080", "10.0.0.5:80", "128.0.0.1:80"}) {
    c.listen = listen;
    EXPECT_FALSE(ListensOnLoopback(c)) << listen;
    EXPECT_TRUE(*AuthEnabled(c)) << listen;
  }
  c.auth = "off";
  EXPECT_FALSE(*AuthEnabled(c));
  c.listen = "127.0.0.1:1";
  c.auth = "on";
  EXPECT_TRUE(*AuthEnabled(c));
}

TEST(ToJwtOptions, NeedsIssuerAndAudienceWithAJwks) {
  Config c;
  EXPECT_FALSE(ToJwtOptions(c)->has_value());
  c.auth_jwks_file = "/x.json";
  EXPECT_EQ(ToJwtOptions(c).status().code(), StatusCode::kInvalidArgument);
  c.auth_issuer = "https://i/";
  c.auth_audience = "evo";
  auto o = ToJwtOptions(c);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ((*o)->leeway, std::chrono::seconds(30));
  c.auth_jwks_url = "https://i/jwks";
  EXPECT_EQ(ToJwtOptions(c).status().code(), StatusCode::kInvalidArgument);
}

TEST(ParseDuration, AcceptsUnitsAndBareMilliseconds) {
  EXPECT_EQ(*ParseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(*ParseDuration("5s"), milliseconds(5000));
  EXPECT_EQ(*ParseDuration("2m"), milliseconds(120'000));
  EXPECT_EQ(*ParseDuration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(*ParseDuration("1500"), milliseconds(1500));
}

TEST(ParseDuration, RejectsGarbageNegativeAndHuge) {
  for (const char* bad : {"", "soon", "-5s", "5 s", "5sec", "1e3", "99999999999999999h"}) {
    EXPECT_EQ(ParseDuration(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ParseBytes, AcceptsBinaryAndDecimalUnits) {
  EXPECT_EQ(*ParseBytes("1MiB"), size_t{1} << 20);
  EXPECT_EQ(*ParseBytes("64KiB"), size_t{64} << 10);
  EXPECT_EQ(*ParseBytes("1000"), 1000U);
  EXPECT_EQ(*ParseBytes("2MB"), 2'000'000U);
  for (const char* bad : {"", "big", "1 MiB", "-1", "1TiB", "99999999GiB"}) {
    EXPECT_EQ(ParseBytes(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(EnabledModules, ExpandsAllAndRejectsUnknownNamingTheFlag) {
  Config c;
  EXPECT_EQ(*EnabledModules(c),
            (std::vector<std::string>{"ids", "spam", "bandit", "queue", "webhooks"}));
  c.modules = " ids , ids ";
  EXPECT_EQ(*EnabledModules(c), std::vector<std::string>{"ids"});
  c.modules = "ids,nope";
  const Status s = EnabledModules(c).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--modules"), std::string_view::npos);
  c.modules = ",";
  EXPECT_EQ(EnabledModules(c).status().code(), StatusCode::kInvalidArgument);
}

TEST(ToOptions, ErrorsNameTheFlagNotTheStructField) {
  Config c;
  c.id_worker_bits = 30;
  Status s = ToIdOptions(c).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--id-worker-bits"), std::string_view::npos) << s;
  EXPECT_EQ(s.message().find("worker_bits"), std::string_view::npos) << s;

  c = Config();
  c.max_borrow = "later";
  s = ToIdOptions(c).status();
  EXPECT_NE(s.message().find("--max-borrow"), std::string_view::npos) << s;

  c = Config();
  c.worker_id = 5000;
  s = ToIdOptions(c).status();
  EXPECT_NE(s.message().find("--worker-id"), std::string_view::npos) << s;

  c = Config();
  c.listen = "nonsense";
  s = ToServerOptions(c).status();
  EXPECT_NE(s.message().find("--listen"), std::string_view::npos) << s;

  c = Config();
  c.max_header = "10";
  s = ToServerOptions(c).status();
  EXPECT_NE(s.message().find("--max-header"), std::string_view::npos) << s;
}

TEST(ToOptions, DefaultsAreValid) {
  const Config c;
  ASSERT_TRUE(ToServerOptions(c).ok());
  const auto ids = ToIdOptions(c);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->layout.worker_bits, 10);
  EXPECT_EQ(ids->max_borrow, milliseconds(1000));
}

}  // namespace
}  // namespace evo::app
