#include "core/logging.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace evo::logging {
namespace {

AccessRecord Record(std::string_view target) {
  AccessRecord r;
  r.method = "GET";
  r.target = target;
  r.route = "/v1/ids";
  r.status = 200;
  r.duration_seconds = 0.00125;
  r.request_id = "req-1";
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  r.span_id = "00f067aa0ba902b7";
  return r;
}

TEST(Logging, ValidateNamesTheOption) {
  EXPECT_EQ(Validate({"xml", "info"}).code(), StatusCode::kInvalidArgument);
  EXPECT_NE(Validate({"xml", "info"}).message().find("log-format"), std::string_view::npos);
  EXPECT_EQ(Validate({"json", "loud"}).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Validate({"json", "off"}).ok());
}

TEST(Logging, JsonEscapeHandlesQuotesControlsAndBackslashes) {
  EXPECT_EQ(JsonEscape("a\"b\\c\n\x01"), "a\\\"b\\\\c\\n\\u0001");
}

TEST(Logging, AccessLinesFromManyThreadsAreWholeJsonObjects) {
  testing::internal::CaptureStderr();
  ASSERT_TRUE(Init({"json", "info"}).ok());
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < 2000; ++i) {
        LogAccess(Record("/v1/ids?q=\"x\"\n"));
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  Shutdown();
  const std::string out = testing::internal::GetCapturedStderr();
  std::istringstream lines(out);
  std::string line;
  int access = 0;
  while (std::getline(lines, line)) {
    const auto doc = nlohmann::json::parse(line);  // throws (fails) on a torn line
    if (doc.value("logger", "") == "access") {
      ++access;
      EXPECT_EQ(doc["target"], "/v1/ids?q=\"x\"\n");
      EXPECT_EQ(doc["status"], 200);
      EXPECT_EQ(doc["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }
  }
  EXPECT_EQ(access, 8000);
}

TEST(Logging, AccessLogIsOffAboveInfo) {
  testing::internal::CaptureStderr();
  ASSERT_TRUE(Init({"text", "warn"}).ok());
  LogAccess(Record("/quiet"));
  Shutdown();
  EXPECT_EQ(testing::internal::GetCapturedStderr().find("/quiet"), std::string::npos);
}

}  // namespace
}  // namespace evo::logging
