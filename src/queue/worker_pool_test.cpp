#include "queue/worker_pool.hpp"

#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "core/temp_dir.hpp"

namespace evo::queue {
namespace {

using std::chrono::milliseconds;

class WorkerPoolTest : public ::testing::Test {
 protected:
  WorkerPoolTest() {
    BrokerOptions options;
    options.path = dir_.File("queue.db");
    options.sync = false;
    auto broker = OpenSqliteBroker(options, RealClock(), [this](size_t n) {
      std::vector<MessageId> ids;
      for (size_t i = 0; i < n; ++i) {
        ids.push_back(next_id_.fetch_add(1) + 1);
      }
      return StatusOr<std::vector<MessageId>>(ids);
    });
    EXPECT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(broker).value();
    EXPECT_TRUE(broker_->DeclareQueue("jobs", {.max_attempts = 3}).ok());
  }

  // Waits (up to 10 s) until `done` holds.
  static bool Eventually(const std::function<bool()>& done) {
    for (int i = 0; i < 1000; ++i) {
      if (done()) {
        return true;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    return done();
  }

  WorkerOptions Options() {
    WorkerOptions o;
    o.queue = "jobs";
    o.concurrency = 2;
    o.poll_wait = milliseconds(200);
    o.backoff = [](int) { return milliseconds(0); };
    return o;
  }

  evo::testing::TempDir dir_;
  std::atomic<MessageId> next_id_{100};
  std::unique_ptr<Broker> broker_;
};

TEST_F(WorkerPoolTest, AcksSuccessRetriesTransientAndDeadLettersPermanent) {
  std::atomic<int> flaky_calls{0};
  auto pool = WorkerPool::Start(*broker_, RealClock(), Options(),
                                [&](const Leased& m, Clock::SteadyTime deadline) -> Status {
                                  EXPECT_GT(deadline, RealClock().Monotonic());
                                  if (m.payload == "flaky" && flaky_calls.fetch_add(1) < 2) {
                                    return UnavailableError("try again");
                                  }
                                  if (m.payload == "bad") {
                                    return InvalidArgumentError("cannot parse");
                                  }
                                  return OkStatus();
                                });
  ASSERT_TRUE(pool.ok()) << pool.status();
  ASSERT_TRUE(
      broker_->Enqueue("jobs", {{.payload = "fine"}, {.payload = "flaky"}, {.payload = "bad"}})
          .ok());
  ASSERT_TRUE(Eventually([&] {
    auto s = broker_->Stats("jobs");
    return s.ok() && s->depth == 0 && s->dead_letters == 1;
  }));
  (*pool)->Stop();
  const auto stats = (*pool)->stats();
  EXPECT_EQ(stats.acked, 2u);
  EXPECT_EQ(stats.retried, 2u);
  EXPECT_EQ(stats.failed, 1u);
  auto dead = broker_->ListDeadLetters("jobs", std::nullopt, 10);
  ASSERT_EQ(dead->items.size(), 1u);
  EXPECT_EQ(dead->items[0].payload, "bad");
  EXPECT_NE(dead->items[0].last_error.find("cannot parse"), std::string::npos);
}

TEST_F(WorkerPoolTest, RetryAfterDelaysTheNextDelivery) {
  std::atomic<int> calls{0};
  auto pool = WorkerPool::Start(*broker_, RealClock(), Options(),
                                [&](const Leased&, Clock::SteadyTime) -> Status {
                                  calls.fetch_add(1);
                                  return UnavailableError("busy").With(kPayloadRetryAfter, "60");
                                });
  ASSERT_TRUE(pool.ok());
  ASSERT_TRUE(broker_->Enqueue("jobs", {{.payload = "x"}}).ok());
  ASSERT_TRUE(Eventually([&] { return calls.load() == 1 && (*pool)->stats().retried == 1; }));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(calls.load(), 1);  // not before 60 s
  EXPECT_EQ(broker_->Stats("jobs")->delayed, 1);
}

TEST_F(WorkerPoolTest, ExhaustedRetriesEndInTheDeadLetters) {
  auto pool = WorkerPool::Start(
      *broker_, RealClock(), Options(),
      [&](const Leased&, Clock::SteadyTime) -> Status { throw std::runtime_error("crash"); });
  ASSERT_TRUE(pool.ok());
  ASSERT_TRUE(broker_->Enqueue("jobs", {{.payload = "x"}}).ok());
  ASSERT_TRUE(Eventually([&] { return broker_->Stats("jobs")->dead_letters == 1; }));
  auto dead = broker_->ListDeadLetters("jobs", std::nullopt, 10);
  EXPECT_EQ(dead->items[0].attempts, 3);
  EXPECT_EQ(dead->items[0].history.size(), 3u);
}

// Review D7: Stop nacked the messages leased but not yet started as a failed attempt, so with
// max_attempts 1 it dead-lettered messages no handler had seen ("worker stopped").
TEST_F(WorkerPoolTest, StopHandsBackUnstartedMessagesWithoutUsingAnAttempt) {
  ASSERT_TRUE(broker_->DeclareQueue("once", {.max_attempts = 1}).ok());
  ASSERT_TRUE(
      broker_->Enqueue("once", {{.payload = "a"}, {.payload = "b"}, {.payload = "c"}}).ok());
  std::atomic<int> handled{0};
  std::atomic<bool> release{false};
  std::promise<void> started;
  WorkerOptions o = Options();
  o.queue = "once";
  o.concurrency = 1;
  o.batch = 3;
  auto pool = WorkerPool::Start(*broker_, RealClock(), o, [&](const Leased&, Clock::SteadyTime) {
    if (handled.fetch_add(1) == 0) {
      started.set_value();
      while (!release.load()) {
        std::this_thread::sleep_for(milliseconds(5));
      }
    }
    return OkStatus();
  });
  ASSERT_TRUE(pool.ok());
  started.get_future().wait();  // the batch of 3 is leased, the first is running
  std::thread stopper([&] { (*pool)->Stop(); });
  // Stop raises its flag first thing; the handler of the first message then returns.
  std::this_thread::sleep_for(milliseconds(200));
  release.store(true);
  stopper.join();
  ASSERT_EQ(handled.load(), 1) << "the pool went on handling after Stop";
  auto stats = broker_->Stats("once");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->dead_letters, 0);
  EXPECT_EQ(stats->depth, 2);
  EXPECT_EQ(stats->nacked_total, 0);
  // Both are visible again at once, still on their first attempt.
  auto again = broker_->Lease("once", {.max = 10});
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 2u);
  for (const Leased& l : *again) {
    EXPECT_EQ(l.attempt, 1) << l.payload;
  }
}

TEST_F(WorkerPoolTest, BadOptionsAndUnknownQueueAreRefused) {
  auto handler = [](const Leased&, Clock::SteadyTime) { return OkStatus(); };
  WorkerOptions o = Options();
  o.concurrency = 0;
  EXPECT_EQ(WorkerPool::Start(*broker_, RealClock(), o, handler).status().code(),
            StatusCode::kInvalidArgument);
  o = Options();
  o.queue = "missing";
  EXPECT_EQ(WorkerPool::Start(*broker_, RealClock(), o, handler).status().code(),
            StatusCode::kNotFound);
}

TEST(Backoff, FullJitterStaysWithinTheExponentialCap) {
  for (int attempt = 1; attempt <= 30; ++attempt) {
    const int64_t cap = std::min<int64_t>(int64_t{1000} << std::min(attempt - 1, 20), 300'000);
    for (uint64_t r : {uint64_t{0}, uint64_t{12345}, ~uint64_t{0}}) {
      const auto d = DefaultBackoff(attempt, r).count();
      EXPECT_GE(d, 0);
      EXPECT_LE(d, cap);
    }
  }
  EXPECT_TRUE(IsPermanent(InvalidArgumentError("x")));
  EXPECT_FALSE(IsPermanent(UnavailableError("x")));
}

}  // namespace
}  // namespace evo::queue
