// Tests of CircuitBreaker: every transition, the rolling window, probes, stale outcomes,
// logging, metrics and concurrent use.
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "resilience/resilience.hpp"

namespace evo::resilience {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

CircuitBreakerOptions Options() {
  CircuitBreakerOptions o;
  o.name = "test";
  o.window = seconds(10);
  o.window_size = 10;
  o.failure_ratio = 0.5;
  o.min_calls = 4;
  o.open_duration = seconds(30);
  o.half_open_max_probes = 1;
  o.half_open_successes_to_close = 1;
  return o;
}

std::unique_ptr<CircuitBreaker> Make(const CircuitBreakerOptions& o, const Clock& clock,
                                     metrics::Registry* registry = nullptr) {
  auto breaker = CircuitBreaker::Create(o, clock, registry);
  EXPECT_TRUE(breaker.ok()) << breaker.status();
  return *std::move(breaker);
}

void Succeed(CircuitBreaker& b, int n = 1) {
  for (int i = 0; i < n; ++i) {
    auto permit = b.Allow();
    ASSERT_TRUE(permit.ok()) << permit.status();
    permit->Success();
  }
}

void Fail(CircuitBreaker& b, int n = 1) {
  for (int i = 0; i < n; ++i) {
    auto permit = b.Allow();
    ASSERT_TRUE(permit.ok()) << permit.status();
    permit->Failure();
  }
}

// Drives a fresh breaker (Options()) to open: four failures.
void Trip(CircuitBreaker& b) {
  Fail(b, 4);
  ASSERT_EQ(b.state(), BreakerState::kOpen);
}

void ExpectInvalid(const CircuitBreakerOptions& o, std::string_view field) {
  const Status s = Validate(o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
  EXPECT_NE(s.message().find(field), std::string_view::npos) << s;
  ManualClock clock;
  EXPECT_EQ(CircuitBreaker::Create(o, clock).status().code(), StatusCode::kInvalidArgument);
}

TEST(CircuitBreaker, ValidateNamesTheOffendingField) {
  EXPECT_TRUE(Validate(Options()).ok());
  auto o = Options();
  o.name = "";
  ExpectInvalid(o, "name");
  o = Options();
  o.window = milliseconds(0);
  ExpectInvalid(o, "window");
  for (int size : {0, 1'000'001}) {
    o = Options();
    o.window_size = size;
    ExpectInvalid(o, "window_size");
  }
  for (double ratio : {0.0, 1.01, -1.0, std::nan("")}) {
    o = Options();
    o.failure_ratio = ratio;
    ExpectInvalid(o, "failure_ratio");
  }
  o = Options();
  o.min_calls = 0;
  ExpectInvalid(o, "min_calls");
  o = Options();
  o.open_duration = milliseconds(0);
  ExpectInvalid(o, "open_duration");
  o = Options();
  o.half_open_max_probes = 0;
  ExpectInvalid(o, "half_open_max_probes");
  o = Options();
  o.half_open_successes_to_close = 0;
  ExpectInvalid(o, "half_open_successes_to_close");
}

TEST(CircuitBreaker, StartsClosedAndAllowsCalls) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  EXPECT_EQ(b->name(), "test");
  auto permit = b->Allow();
  ASSERT_TRUE(permit.ok());
  EXPECT_FALSE(permit->probe());
}

TEST(CircuitBreaker, OpensWhenTheFailureRatioIsReachedWithEnoughCalls) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  Succeed(*b, 2);
  Fail(*b, 1);
  EXPECT_EQ(b->state(), BreakerState::kClosed);  // 3 calls: below min_calls
  Fail(*b, 1);                                   // 2 of 4 failed: 50 %
  EXPECT_EQ(b->state(), BreakerState::kOpen);
  const auto refused = b->Allow();
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("\"test\" is open"), std::string_view::npos);
  EXPECT_EQ(refused.status().GetPayload(kPayloadRetryAfter), "30");
}

TEST(CircuitBreaker, DoesNotOpenBelowTheMinimumNumberOfCalls) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  Fail(*b, 3);  // 100 % failures, but only 3 calls
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  EXPECT_EQ(b->stats().failures, 3);
  Fail(*b, 1);
  EXPECT_EQ(b->state(), BreakerState::kOpen);
}

TEST(CircuitBreaker, DoesNotOpenBelowTheFailureRatio) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  Succeed(*b, 3);
  Fail(*b, 2);  // 2 of 5: 40 %
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  Fail(*b, 1);  // 3 of 6: 50 %
  EXPECT_EQ(b->state(), BreakerState::kOpen);
}

TEST(CircuitBreaker, SuccessesAloneNeverOpenIt) {
  ManualClock clock;
  auto o = Options();
  o.failure_ratio = 1.0;
  auto b = Make(o, clock);
  Succeed(*b, 100);
  EXPECT_EQ(b->state(), BreakerState::kClosed);
}

TEST(CircuitBreaker, OldFailuresSlideOutOfTheTimeWindow) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  Fail(*b, 3);
  clock.Advance(seconds(10));  // the window is 10 s: those three are now too old
  EXPECT_EQ(b->stats().calls, 0);
  Fail(*b, 1);
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  EXPECT_EQ(b->stats().calls, 1);
  EXPECT_EQ(b->stats().failures, 1);
}

TEST(CircuitBreaker, FailuresWithinTheTimeWindowStillCount) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  Fail(*b, 3);
  clock.Advance(milliseconds(9999));
  Fail(*b, 1);
  EXPECT_EQ(b->state(), BreakerState::kOpen);
}

TEST(CircuitBreaker, CountWindowKeepsOnlyTheLastCalls) {
  ManualClock clock;
  auto b = Make(Options(), clock);  // window_size 10
  Fail(*b, 3);
  Succeed(*b, 10);  // pushes the three failures out
  EXPECT_EQ(b->stats().calls, 10);
  EXPECT_EQ(b->stats().failures, 0);
  Fail(*b, 4);  // 4 of the last 10
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  Fail(*b, 1);  // 5 of the last 10
  EXPECT_EQ(b->state(), BreakerState::kOpen);
}

TEST(CircuitBreaker, MovesToHalfOpenAfterTheOpenDuration) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  Trip(*b);
  clock.Advance(milliseconds(29'999));
  EXPECT_EQ(b->Allow().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(b->state(), BreakerState::kOpen);
  clock.Advance(milliseconds(1));
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);
}

TEST(CircuitBreaker, RetryAfterCountsDownWhileOpen) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  Trip(*b);
  clock.Advance(seconds(20));
  EXPECT_EQ(b->Allow().status().GetPayload(kPayloadRetryAfter), "10");
  clock.Advance(milliseconds(9'500));
  EXPECT_EQ(b->Allow().status().GetPayload(kPayloadRetryAfter), "1");
  EXPECT_EQ(b->stats().open_remaining, milliseconds(500));
}

TEST(CircuitBreaker, HalfOpenLimitsTheProbesInFlight) {
  ManualClock clock;
  auto o = Options();
  o.half_open_max_probes = 2;
  auto b = Make(o, clock);
  Trip(*b);
  clock.Advance(seconds(30));
  auto p1 = b->Allow();
  auto p2 = b->Allow();
  ASSERT_TRUE(p1.ok());
  ASSERT_TRUE(p2.ok());
  EXPECT_TRUE(p1->probe());
  EXPECT_TRUE(p2->probe());
  EXPECT_EQ(b->stats().probes_in_flight, 2);
  const auto refused = b->Allow();
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("half-open"), std::string_view::npos);
  EXPECT_EQ(refused.status().GetPayload(kPayloadRetryAfter), "1");
  p1->Release();
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);
  EXPECT_TRUE(b->Allow().ok());  // the freed slot (and this permit is released at once)
}

TEST(CircuitBreaker, HalfOpenClosesAfterEnoughSuccessfulProbes) {
  ManualClock clock;
  auto o = Options();
  o.half_open_successes_to_close = 2;
  auto b = Make(o, clock);
  Trip(*b);
  clock.Advance(seconds(30));
  Succeed(*b, 1);
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);
  Succeed(*b, 1);
  EXPECT_EQ(b->state(), BreakerState::kClosed);
  EXPECT_EQ(b->stats().calls, 0);  // a fresh window: the old failures are forgotten
  Fail(*b, 3);
  EXPECT_EQ(b->state(), BreakerState::kClosed);
}

TEST(CircuitBreaker, HalfOpenReopensOnAFailedProbe) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  Trip(*b);
  clock.Advance(seconds(30));
  Fail(*b, 1);
  EXPECT_EQ(b->state(), BreakerState::kOpen);
  EXPECT_EQ(b->stats().open_remaining, seconds(30));  // a full open period again
  clock.Advance(seconds(29));
  EXPECT_EQ(b->state(), BreakerState::kOpen);
  clock.Advance(seconds(1));
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);
}

TEST(CircuitBreaker, HalfOpenReopensEvenAfterSomeSuccessfulProbes) {
  ManualClock clock;
  auto o = Options();
  o.half_open_successes_to_close = 3;
  auto b = Make(o, clock);
  Trip(*b);
  clock.Advance(seconds(30));
  Succeed(*b, 2);
  Fail(*b, 1);
  EXPECT_EQ(b->state(), BreakerState::kOpen);
}

TEST(CircuitBreaker, StaleOutcomesAreIgnoredAfterATransition) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  auto slow = b->Allow();  // issued while closed
  ASSERT_TRUE(slow.ok());
  Trip(*b);
  clock.Advance(seconds(30));
  auto probe = b->Allow();
  ASSERT_TRUE(probe.ok());
  slow->Failure();  // from the closed episode: must not reopen the half-open breaker
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);
  EXPECT_EQ(b->stats().probes_in_flight, 1);
  probe->Success();
  EXPECT_EQ(b->state(), BreakerState::kClosed);
}

TEST(CircuitBreaker, AProbeEndingAfterTheBreakerReopenedIsIgnored) {
  ManualClock clock;
  auto o = Options();
  o.half_open_max_probes = 2;
  auto b = Make(o, clock);
  Trip(*b);
  clock.Advance(seconds(30));
  auto good = b->Allow();
  auto bad = b->Allow();
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(bad.ok());
  bad->Failure();
  EXPECT_EQ(b->state(), BreakerState::kOpen);
  good->Success();  // late: must not close the reopened breaker
  EXPECT_EQ(b->state(), BreakerState::kOpen);
}

TEST(CircuitBreaker, APermitDroppedWithoutAnOutcomeFreesItsProbeSlot) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  Trip(*b);
  clock.Advance(seconds(30));
  {
    auto probe = b->Allow();
    ASSERT_TRUE(probe.ok());
    EXPECT_FALSE(b->Allow().ok());
  }  // cancelled call: no outcome
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);
  EXPECT_EQ(b->stats().probes_in_flight, 0);
  EXPECT_TRUE(b->Allow().ok());
}

TEST(CircuitBreaker, APermitCountsOnlyItsFirstOutcome) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  auto permit = b->Allow();
  ASSERT_TRUE(permit.ok());
  permit->Success();
  permit->Failure();
  permit->Release();
  EXPECT_EQ(b->stats().calls, 1);
  EXPECT_EQ(b->stats().failures, 0);
}

TEST(CircuitBreaker, AMovedPermitCountsOnce) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  auto permit = b->Allow();
  ASSERT_TRUE(permit.ok());
  CircuitBreaker::Permit moved = std::move(*permit);
  permit->Failure();  // NOLINT(bugprone-use-after-move): moved from, so no effect
  moved.Failure();
  CircuitBreaker::Permit other = *b->Allow();
  other = std::move(moved);  // `other` is released without an outcome; `moved` is finished
  EXPECT_EQ(b->stats().calls, 1);
  EXPECT_EQ(b->stats().failures, 1);
}

TEST(CircuitBreaker, RecordCountsOnlyTransientOutcomesAsFailures) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  for (Outcome o : {Outcome::kSuccess, Outcome::kPermanent, Outcome::kGone, Outcome::kTransient,
                    Outcome::kTransient}) {
    b->Allow()->Record(o);
  }
  EXPECT_EQ(b->stats().calls, 5);
  EXPECT_EQ(b->stats().failures, 2);
  EXPECT_EQ(b->state(), BreakerState::kClosed);
}

TEST(CircuitBreaker, CountsRefusals) {
  ManualClock clock;
  auto b = Make(Options(), clock);
  Trip(*b);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(b->Allow().ok());
  }
  EXPECT_EQ(b->stats().rejected, 3u);
}

TEST(CircuitBreaker, StateNamesAreTheMetricLabels) {
  EXPECT_EQ(BreakerStateName(BreakerState::kClosed), "closed");
  EXPECT_EQ(BreakerStateName(BreakerState::kOpen), "open");
  EXPECT_EQ(BreakerStateName(BreakerState::kHalfOpen), "half_open");
}

TEST(CircuitBreaker, ExportsStateTransitionsAndRefusalsAsMetrics) {
  ManualClock clock;
  metrics::Registry registry;
  auto b = Make(Options(), clock, &registry);
  auto& state = registry.AddGauge("evo_circuit_breaker_state", "", {"name"}).Get({"test"});
  auto& transitions =
      registry.AddCounter("evo_circuit_breaker_transitions_total", "", {"name", "to"});
  auto& rejected = registry.AddCounter("evo_circuit_breaker_rejected_total", "", {"name"});
  EXPECT_EQ(state.Value(), 0);
  Trip(*b);
  EXPECT_EQ(state.Value(), 1);
  EXPECT_FALSE(b->Allow().ok());
  EXPECT_EQ(rejected.Get({"test"}).Value(), 1);
  clock.Advance(seconds(30));
  EXPECT_EQ(b->state(), BreakerState::kHalfOpen);
  EXPECT_EQ(state.Value(), 2);
  Succeed(*b, 1);
  EXPECT_EQ(state.Value(), 0);
  EXPECT_EQ(transitions.Get({"test", "open"}).Value(), 1);
  EXPECT_EQ(transitions.Get({"test", "half_open"}).Value(), 1);
  EXPECT_EQ(transitions.Get({"test", "closed"}).Value(), 1);
  const std::string text = registry.RenderText();
  EXPECT_NE(text.find("evo_circuit_breaker_state{name=\"test\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("evo_circuit_breaker_transitions_total{name=\"test\",to=\"open\"} 1\n"),
            std::string::npos)
      << text;
}

TEST(CircuitBreaker, LogsEveryStateChange) {
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>(
      "resilience-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  logger->set_pattern("%l %v");
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  {
    ManualClock clock;
    auto b = Make(Options(), clock);
    Trip(*b);
    clock.Advance(seconds(30));
    Succeed(*b, 1);
  }
  spdlog::set_default_logger(previous);
  const std::string text = out.str();
  EXPECT_NE(text.find("warning circuit breaker \"test\": closed -> open (4 of the last 4 calls "
                      "failed)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("info circuit breaker \"test\": open -> half_open"), std::string::npos)
      << text;
  EXPECT_NE(text.find("info circuit breaker \"test\": half_open -> closed"), std::string::npos)
      << text;
}

TEST(CircuitBreaker, CallsOnTransitionInOrder) {
  ManualClock clock;
  std::vector<std::pair<BreakerState, BreakerState>> seen;
  auto o = Options();
  o.on_transition = [&](BreakerState from, BreakerState to) { seen.emplace_back(from, to); };
  auto b = Make(o, clock);
  Trip(*b);
  clock.Advance(seconds(30));
  Fail(*b, 1);
  clock.Advance(seconds(30));
  Succeed(*b, 1);
  const std::vector<std::pair<BreakerState, BreakerState>> expected = {
      {BreakerState::kClosed, BreakerState::kOpen},
      {BreakerState::kOpen, BreakerState::kHalfOpen},
      {BreakerState::kHalfOpen, BreakerState::kOpen},
      {BreakerState::kOpen, BreakerState::kHalfOpen},
      {BreakerState::kHalfOpen, BreakerState::kClosed},
  };
  EXPECT_EQ(seen, expected);
}

TEST(CircuitBreaker, ConcurrentCallersKeepTheWindowConsistent) {
  ManualClock clock;
  auto o = Options();
  o.window_size = 1000;
  o.min_calls = 1000;
  auto b = Make(o, clock);
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&b] {
      for (int i = 0; i < 5000; ++i) {
        auto permit = b->Allow();
        ASSERT_TRUE(permit.ok());
        // One failure in four from every thread: well under the 50 % ratio however they
        // interleave.
        if (i % 4 == 0) {
          permit->Failure();
        } else {
          permit->Success();
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  const auto stats = b->stats();
  EXPECT_EQ(stats.state, BreakerState::kClosed);
  EXPECT_EQ(stats.calls, 1000);
  EXPECT_GE(stats.failures, 100);
  EXPECT_LE(stats.failures, 400);
}

TEST(CircuitBreaker, ConcurrentCallersGetNoMoreProbesThanTheLimit) {
  ManualClock clock;
  auto o = Options();
  o.half_open_max_probes = 3;
  auto b = Make(o, clock);
  Trip(*b);
  clock.Advance(seconds(30));
  std::mutex mu;
  std::vector<CircuitBreaker::Permit> probes;
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        auto permit = b->Allow();
        if (permit.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          probes.push_back(*std::move(permit));
        } else {
          refused.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(probes.size(), 3u);
  EXPECT_EQ(refused.load(), 797);
  for (auto& p : probes) {
    p.Success();
  }
  EXPECT_EQ(b->state(), BreakerState::kClosed);
}

}  // namespace
}  // namespace evo::resilience
