#include "core/metrics.hpp"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace evo::metrics {
namespace {

TEST(Registry, RendersCountersGaugesAndHistograms) {
  Registry r;
  r.AddCounter("evo_things_total", "Things.").Get().Inc(3);
  r.AddGauge("evo_level", "Level.", {"pool"}).Get({"a\"b"}).Set(1.5);
  auto& h = r.AddHistogram("evo_latency_seconds", "Latency.", {"route"}, {0.1, 1});
  h.Get({"/x"}).Observe(0.05);
  h.Get({"/x"}).Observe(0.5);
  h.Get({"/x"}).Observe(5);
  r.AddGaugeCallback("evo_answer", "Answer.", [] { return 42.0; });
  r.AddCounterCallback("evo_done_total", "Done.", [] { return 7.0; });
  const std::string text = r.RenderText();
  EXPECT_NE(text.find("# TYPE evo_things_total counter\nevo_things_total 3\n"), std::string::npos);
  EXPECT_NE(text.find("evo_level{pool=\"a\\\"b\"} 1.5\n"), std::string::npos);
  EXPECT_NE(text.find("evo_latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("evo_latency_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("evo_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("evo_latency_seconds_count{route=\"/x\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("evo_answer 42\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE evo_done_total counter\nevo_done_total 7\n"), std::string::npos);
}

TEST(Registry, AddingTheSameFamilyTwiceReturnsTheFirst) {
  Registry r;
  auto& a = r.AddCounter("evo_x_total", "X.");
  auto& b = r.AddCounter("evo_x_total", "X.");
  EXPECT_EQ(&a, &b);
}

TEST(Family, RemoveDropsOneSeriesFromTheExposition) {
  Registry r;
  auto& depth = r.AddGauge("evo_d", "D.", {"queue"});
  depth.Get({"a"}).Set(1);
  depth.Get({"b"}).Set(2);
  depth.Remove({"a"});
  depth.Remove({"missing"});
  const std::string text = r.RenderText();
  EXPECT_EQ(text.find("evo_d{queue=\"a\"}"), std::string::npos) << text;
  EXPECT_NE(text.find("evo_d{queue=\"b\"} 2\n"), std::string::npos) << text;
  EXPECT_EQ(depth.Get({"a"}).Value(), 0);  // a new child, not the old one
}

TEST(Counter, IgnoresNegativeIncrementsAndCountsConcurrently) {
  Registry r;
  auto& c = r.AddCounter("evo_c_total", "C.", {"k"}).Get({"v"});
  c.Inc(-5);
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.Inc();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(c.Value(), 40000);
}

}  // namespace
}  // namespace evo::metrics
