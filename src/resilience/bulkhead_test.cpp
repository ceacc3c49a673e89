// Tests of Bulkhead: caps per key, permits, the bounded key set, metrics and threads.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "resilience/resilience.hpp"

namespace evo::resilience {
namespace {

BulkheadOptions Options(int max_concurrent = 2, size_t max_keys = 100) {
  BulkheadOptions o;
  o.name = "test";
  o.max_concurrent = max_concurrent;
  o.max_keys = max_keys;
  return o;
}

std::unique_ptr<Bulkhead> Make(const BulkheadOptions& o, metrics::Registry* registry = nullptr) {
  auto bulkhead = Bulkhead::Create(o, registry);
  EXPECT_TRUE(bulkhead.ok()) << bulkhead.status();
  return *std::move(bulkhead);
}

TEST(Bulkhead, ValidateNamesTheOffendingField) {
  EXPECT_TRUE(Validate(Options()).ok());
  auto o = Options();
  o.name = "";
  EXPECT_NE(Validate(o).message().find("name"), std::string_view::npos);
  EXPECT_EQ(Bulkhead::Create(o).status().code(), StatusCode::kInvalidArgument);
  o = Options(0);
  EXPECT_EQ(Validate(o).code(), StatusCode::kInvalidArgument);
  EXPECT_NE(Validate(o).message().find("max_concurrent"), std::string_view::npos);
  o = Options(1, 0);
  EXPECT_EQ(Validate(o).code(), StatusCode::kInvalidArgument);
  EXPECT_NE(Validate(o).message().find("max_keys"), std::string_view::npos);
}

TEST(Bulkhead, AdmitsUpToTheCapPerKey) {
  auto b = Make(Options(2));
  auto p1 = b->TryAcquire("a");
  auto p2 = b->TryAcquire("a");
  ASSERT_TRUE(p1.has_value());
  ASSERT_TRUE(p2.has_value());
  EXPECT_FALSE(b->TryAcquire("a").has_value());
  EXPECT_EQ(b->InFlight("a"), 2);
  auto other = b->TryAcquire("b");  // another key has its own cap
  EXPECT_TRUE(other.has_value());
  EXPECT_EQ(b->stats().in_flight, 3);
  EXPECT_EQ(b->stats().rejected, 1u);
}

TEST(Bulkhead, ReleasingAPermitFreesItsSlot) {
  auto b = Make(Options(1));
  {
    auto p = b->TryAcquire("a");
    ASSERT_TRUE(p.has_value());
    EXPECT_FALSE(b->TryAcquire("a").has_value());
  }
  auto p = b->TryAcquire("a");
  ASSERT_TRUE(p.has_value());
  p->Release();
  p->Release();  // idempotent
  EXPECT_EQ(b->InFlight("a"), 0);
  EXPECT_TRUE(b->TryAcquire("a").has_value());
}

TEST(Bulkhead, AMovedPermitReleasesOnce) {
  auto b = Make(Options(2));
  auto p1 = b->TryAcquire("a");
  auto p2 = b->TryAcquire("a");
  ASSERT_TRUE(p1 && p2);
  Bulkhead::Permit moved = std::move(*p1);
  p1.reset();  // the moved-from permit holds nothing
  EXPECT_EQ(b->InFlight("a"), 2);
  moved = std::move(*p2);  // releases what `moved` held, takes p2's
  EXPECT_EQ(b->InFlight("a"), 1);
  p2.reset();
  EXPECT_EQ(b->InFlight("a"), 1);
  moved.Release();
  EXPECT_EQ(b->InFlight("a"), 0);
}

TEST(Bulkhead, PerCallCapOverridesTheDefault) {
  auto b = Make(Options(1));
  std::vector<Bulkhead::Permit> held;
  for (int i = 0; i < 5; ++i) {
    auto p = b->TryAcquire("wide", 5);
    ASSERT_TRUE(p.has_value()) << i;
    held.push_back(*std::move(p));
  }
  EXPECT_FALSE(b->TryAcquire("wide", 5).has_value());
  EXPECT_FALSE(b->TryAcquire("wide").has_value());  // the default cap of 1 is long reached
  EXPECT_FALSE(b->TryAcquire("other", 0).has_value());
}

TEST(Bulkhead, IdleKeysHoldNoState) {
  auto b = Make(Options(2));
  for (int i = 0; i < 1000; ++i) {
    auto p = b->TryAcquire("key-" + std::to_string(i));
    ASSERT_TRUE(p.has_value());
  }
  EXPECT_EQ(b->stats().keys, 0u);
  EXPECT_EQ(b->stats().in_flight, 0);
}

TEST(Bulkhead, RefusesNewKeysBeyondMaxKeys) {
  auto b = Make(Options(2, 2));
  auto a = b->TryAcquire("a");
  auto k = b->TryAcquire("b");
  ASSERT_TRUE(a && k);
  EXPECT_FALSE(b->TryAcquire("c").has_value());
  EXPECT_TRUE(b->TryAcquire("a").has_value());  // a known key still gets its slots
  a.reset();
  EXPECT_TRUE(b->TryAcquire("c").has_value());
  EXPECT_LE(b->stats().keys, 2u);
}

TEST(Bulkhead, ExportsMetrics) {
  metrics::Registry registry;
  auto b = Make(Options(1), &registry);
  auto p = b->TryAcquire("a");
  EXPECT_FALSE(b->TryAcquire("a").has_value());
  std::string text = registry.RenderText();
  EXPECT_NE(text.find("evo_bulkhead_in_flight{name=\"test\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("evo_bulkhead_rejected_total{name=\"test\"} 1\n"), std::string::npos);
  p.reset();
  text = registry.RenderText();
  EXPECT_NE(text.find("evo_bulkhead_in_flight{name=\"test\"} 0\n"), std::string::npos) << text;
}

TEST(Bulkhead, ConcurrentCallersNeverExceedTheCap) {
  auto b = Make(Options(3));
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        auto p = b->TryAcquire("shared");
        if (p) {
          const int now = inside.fetch_add(1) + 1;
          int seen = most.load();
          while (now > seen && !most.compare_exchange_weak(seen, now)) {
          }
          admitted.fetch_add(1);
          if (i % 7 == 0) {
            std::this_thread::yield();
          }
          inside.fetch_sub(1);
        }
        auto mine = b->TryAcquire("own-" + std::to_string(t));
        EXPECT_TRUE(mine.has_value());
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_LE(most.load(), 3);
  EXPECT_GT(admitted.load(), 0);
  EXPECT_EQ(b->InFlight("shared"), 0);
  EXPECT_EQ(b->stats().in_flight, 0);
  EXPECT_EQ(b->stats().keys, 0u);
}

}  // namespace
}  // namespace evo::resilience
