// Tests of RetryPolicy and the blocking Retry loop.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "resilience/resilience.hpp"

namespace evo::resilience {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

RetryPolicy Make(RetryOptions options) {
  auto policy = RetryPolicy::Create(std::move(options));
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *std::move(policy);
}

RetryOptions Exponential(int max_attempts = 20) {
  RetryOptions o;
  o.max_attempts = max_attempts;
  o.initial_backoff = milliseconds(100);
  o.max_backoff = seconds(10);
  o.multiplier = 2.0;
  return o;
}

RetryOptions Fixed(std::vector<milliseconds> schedule) {
  RetryOptions o;
  o.schedule = std::move(schedule);
  o.max_attempts = static_cast<int>(o.schedule.size()) + 1;
  return o;
}

void ExpectInvalid(const RetryOptions& o, std::string_view field) {
  const Status s = Validate(o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
  EXPECT_NE(s.message().find(field), std::string_view::npos) << s;
  EXPECT_EQ(RetryPolicy::Create(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(RetryOptions, DefaultsAndTheWebhookScheduleAreValid) {
  EXPECT_TRUE(Validate(RetryOptions()).ok());
  EXPECT_TRUE(Validate(WebhookRetryOptions()).ok());
}

TEST(RetryOptions, ValidateNamesTheOffendingField) {
  RetryOptions o = Exponential();
  o.max_attempts = 0;
  ExpectInvalid(o, "max_attempts");
  o.max_attempts = 10001;
  ExpectInvalid(o, "max_attempts");

  o = Exponential();
  o.initial_backoff = milliseconds(0);
  ExpectInvalid(o, "initial_backoff");

  o = Exponential();
  o.max_backoff = milliseconds(50);
  ExpectInvalid(o, "max_backoff");

  for (double m : {0.5, 101.0, std::nan("")}) {
    o = Exponential();
    o.multiplier = m;
    ExpectInvalid(o, "multiplier");
  }

  o = Fixed({seconds(1), milliseconds(-1)});
  ExpectInvalid(o, "schedule");
  o = Fixed(std::vector<milliseconds>(10001, seconds(1)));
  o.max_attempts = 10;
  ExpectInvalid(o, "schedule");

  for (double j : {-0.1, 1.5, std::nan("")}) {
    o = Fixed({seconds(1)});
    o.schedule_jitter = j;
    ExpectInvalid(o, "schedule_jitter");
  }

  o = Exponential();
  o.max_elapsed = milliseconds(-1);
  ExpectInvalid(o, "max_elapsed");

  o = Exponential();
  o.retry_after_min = milliseconds(-1);
  ExpectInvalid(o, "retry_after_min");

  o = Exponential();
  o.retry_after_min = seconds(10);
  o.retry_after_max = seconds(5);
  ExpectInvalid(o, "retry_after_max");
}

TEST(RetryOptions, ExponentialFieldsAreIgnoredWithASchedule) {
  RetryOptions o = Fixed({seconds(1)});
  o.initial_backoff = milliseconds(0);
  o.multiplier = 0;
  EXPECT_TRUE(Validate(o).ok());
}

TEST(RetryPolicy, RangeGrowsExponentiallyUpToTheCap) {
  const RetryPolicy p = Make(Exponential());
  EXPECT_EQ(p.Range(1)->min, milliseconds(0));
  EXPECT_EQ(p.Range(1)->max, milliseconds(100));
  EXPECT_EQ(p.Range(2)->max, milliseconds(200));
  EXPECT_EQ(p.Range(3)->max, milliseconds(400));
  EXPECT_EQ(p.Range(7)->max, milliseconds(6400));
  EXPECT_EQ(p.Range(8)->max, seconds(10));  // 12.8 s capped
  EXPECT_EQ(p.Range(19)->max, seconds(10));
}

TEST(RetryPolicy, HugeAttemptNumbersSaturateAtTheCap) {
  const RetryPolicy p = Make(Exponential(10000));
  EXPECT_EQ(p.Range(5000)->max, seconds(10));
  EXPECT_EQ(p.Range(9999)->max, seconds(10));
}

TEST(RetryPolicy, FractionalMultipliersRoundTheCeilingDown) {
  RetryOptions o = Exponential();
  o.multiplier = 1.5;
  const RetryPolicy p = Make(o);
  EXPECT_EQ(p.Range(2)->max, milliseconds(150));
  EXPECT_EQ(p.Range(4)->max, milliseconds(337));  // 337.5
}

TEST(RetryPolicy, FullJitterDelaysSpanZeroToTheCeiling) {
  const RetryPolicy p = Make(Exponential());
  Random random(2024);
  for (int n = 1; n < 20; ++n) {
    const milliseconds ceiling =
        std::min<milliseconds>(seconds(10), milliseconds(int64_t{100} << (n - 1)));
    milliseconds lo = milliseconds::max();
    milliseconds hi = milliseconds::min();
    double sum = 0;
    constexpr int kDraws = 4000;
    for (int i = 0; i < kDraws; ++i) {
      const auto d = p.NextDelay(n, milliseconds(0), std::nullopt, random);
      ASSERT_TRUE(d.has_value());
      ASSERT_GE(*d, milliseconds(0)) << n;
      ASSERT_LE(*d, ceiling) << n;
      lo = std::min(lo, *d);
      hi = std::max(hi, *d);
      sum += static_cast<double>(d->count());
    }
    // Full jitter uses the whole range: both ends are reached and the mean is half way.
    EXPECT_LE(lo.count(), ceiling.count() / 50) << n;
    EXPECT_GE(hi.count(), ceiling.count() * 49 / 50) << n;
    EXPECT_NEAR(sum / kDraws, static_cast<double>(ceiling.count()) / 2,
                static_cast<double>(ceiling.count()) * 0.05)
        << n;
  }
}

TEST(RetryPolicy, ExtremeRandomBitsHitTheEndsOfTheRange) {
  const RetryPolicy p = Make(Exponential());
  EXPECT_EQ(p.NextDelay(3, milliseconds(0), std::nullopt, uint64_t{0}), milliseconds(0));
  EXPECT_EQ(p.NextDelay(3, milliseconds(0), std::nullopt, ~uint64_t{0}), milliseconds(400));
}

TEST(RetryPolicy, SameRandomBitsGiveTheSameDelays) {
  const RetryPolicy p = Make(Exponential());
  Random a(99);
  Random b(99);
  for (int n = 1; n < 20; ++n) {
    EXPECT_EQ(p.NextDelay(n, milliseconds(0), std::nullopt, a),
              p.NextDelay(n, milliseconds(0), std::nullopt, b));
  }
}

TEST(RetryPolicy, ScheduleJitterStaysWithinTwentyPercent) {
  const RetryPolicy p = Make(WebhookRetryOptions());
  const std::vector<milliseconds> expected = {seconds(5), minutes(5), minutes(30), hours(2),
                                              hours(5),   hours(10),  hours(10)};
  ASSERT_EQ(p.options().schedule, expected);
  Random random(7);
  for (int n = 1; n <= 7; ++n) {
    const int64_t base = expected[n - 1].count();  // every base here is a multiple of 5 ms
    EXPECT_EQ(p.Range(n)->min.count(), base / 5 * 4);
    EXPECT_EQ(p.Range(n)->max.count(), base / 5 * 6);
    int64_t lo = std::numeric_limits<int64_t>::max();
    int64_t hi = 0;
    for (int i = 0; i < 4000; ++i) {
      const auto d = p.NextDelay(n, milliseconds(0), std::nullopt, random);
      ASSERT_TRUE(d.has_value());
      const int64_t v = d->count();
      ASSERT_GE(v * 5, base * 4) << n;  // v >= 0.8 base, in exact integers
      ASSERT_LE(v * 5, base * 6) << n;  // v <= 1.2 base
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    EXPECT_LT(lo * 100, base * 81) << n;  // the whole band is used
    EXPECT_GT(hi * 100, base * 119) << n;
  }
}

TEST(RetryPolicy, WebhookScheduleMakesEightAttempts) {
  const RetryPolicy p = Make(WebhookRetryOptions());
  EXPECT_EQ(p.options().max_attempts, 8);
  EXPECT_TRUE(p.NextDelay(7, milliseconds(0), std::nullopt, uint64_t{1}).has_value());
  EXPECT_EQ(p.NextDelay(8, milliseconds(0), std::nullopt, uint64_t{1}), std::nullopt);
  EXPECT_EQ(p.Range(8), std::nullopt);
}

TEST(RetryPolicy, ScheduleWithoutJitterIsExact) {
  const RetryPolicy p = Make(Fixed({milliseconds(0), seconds(5), minutes(5)}));
  Random random(3);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(p.NextDelay(1, milliseconds(0), std::nullopt, random), milliseconds(0));
    EXPECT_EQ(p.NextDelay(2, milliseconds(0), std::nullopt, random), seconds(5));
    EXPECT_EQ(p.NextDelay(3, milliseconds(0), std::nullopt, random), minutes(5));
  }
}

TEST(RetryPolicy, GivesUpAtTheEndOfTheScheduleEvenWithAttemptsLeft) {
  RetryOptions o = Fixed({seconds(1), seconds(2)});
  o.max_attempts = 10;
  const RetryPolicy p = Make(o);
  EXPECT_EQ(p.NextDelay(2, milliseconds(0), std::nullopt, uint64_t{0}), seconds(2));
  EXPECT_EQ(p.NextDelay(3, milliseconds(0), std::nullopt, uint64_t{0}), std::nullopt);
}

TEST(RetryPolicy, MaxAttemptsStopsRetrying) {
  const RetryPolicy p = Make(Exponential(3));
  EXPECT_TRUE(p.NextDelay(1, milliseconds(0), std::nullopt, uint64_t{5}).has_value());
  EXPECT_TRUE(p.NextDelay(2, milliseconds(0), std::nullopt, uint64_t{5}).has_value());
  EXPECT_EQ(p.NextDelay(3, milliseconds(0), std::nullopt, uint64_t{5}), std::nullopt);
  EXPECT_EQ(p.NextDelay(4, milliseconds(0), std::nullopt, uint64_t{5}), std::nullopt);
}

TEST(RetryPolicy, MaxAttemptsOfOneNeverRetries) {
  const RetryPolicy p = Make(Exponential(1));
  EXPECT_EQ(p.NextDelay(1, milliseconds(0), std::nullopt, uint64_t{5}), std::nullopt);
}

TEST(RetryPolicy, ScheduleShorterThanMaxAttemptsIsCutByMaxAttempts) {
  RetryOptions o = Fixed({seconds(1), seconds(2), seconds(3)});
  o.max_attempts = 2;
  const RetryPolicy p = Make(o);
  EXPECT_EQ(p.NextDelay(1, milliseconds(0), std::nullopt, uint64_t{0}), seconds(1));
  EXPECT_EQ(p.NextDelay(2, milliseconds(0), std::nullopt, uint64_t{0}), std::nullopt);
}

TEST(RetryPolicy, MaxElapsedGivesUpWhenTheWaitWouldEndPastIt) {
  RetryOptions o = Fixed({seconds(5), seconds(5), seconds(5)});
  o.max_elapsed = seconds(10);
  const RetryPolicy p = Make(o);
  EXPECT_EQ(p.NextDelay(1, seconds(4), std::nullopt, uint64_t{0}), seconds(5));
  EXPECT_EQ(p.NextDelay(2, seconds(5), std::nullopt, uint64_t{0}), seconds(5));  // ends at 10 s
  EXPECT_EQ(p.NextDelay(2, milliseconds(5001), std::nullopt, uint64_t{0}), std::nullopt);
  EXPECT_EQ(p.NextDelay(3, seconds(11), std::nullopt, uint64_t{0}), std::nullopt);
}

TEST(RetryPolicy, ZeroMaxElapsedMeansNoTimeLimit) {
  const RetryPolicy p = Make(Fixed({seconds(5)}));
  EXPECT_EQ(p.NextDelay(1, hours(1000), std::nullopt, uint64_t{0}), seconds(5));
}

TEST(RetryPolicy, RetryAfterLongerThanTheBackoffIsHonoured) {
  const RetryPolicy p = Make(Exponential());
  Random random(5);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(p.NextDelay(1, milliseconds(0), seconds(30), random), seconds(30));
  }
}

TEST(RetryPolicy, RetryAfterShorterThanTheBackoffDoesNotShortenIt) {
  const RetryPolicy p = Make(Fixed({minutes(5)}));
  EXPECT_EQ(p.NextDelay(1, milliseconds(0), seconds(1), uint64_t{0}), minutes(5));
}

TEST(RetryPolicy, RetryAfterIsClampedToTheConfiguredRange) {
  RetryOptions o = Fixed({milliseconds(1)});
  o.retry_after_min = seconds(2);
  o.retry_after_max = hours(1);
  const RetryPolicy p = Make(o);
  EXPECT_EQ(p.NextDelay(1, milliseconds(0), hours(24 * 365), uint64_t{0}), hours(1));
  EXPECT_EQ(p.NextDelay(1, milliseconds(0), milliseconds(0), uint64_t{0}), seconds(2));
  EXPECT_EQ(p.NextDelay(1, milliseconds(0), seconds(90), uint64_t{0}), seconds(90));
  // Without a Retry-After the minimum does not apply.
  EXPECT_EQ(p.NextDelay(1, milliseconds(0), std::nullopt, uint64_t{0}), milliseconds(1));
}

TEST(RetryPolicy, RetryAfterParsedFromBothFormsDrivesTheDelay) {
  const RetryPolicy p = Make(Exponential());
  const Clock::WallTime now = ManualClock().Now();
  EXPECT_EQ(p.NextDelay(1, milliseconds(0), ParseRetryAfter("42", now), uint64_t{0}), seconds(42));
  EXPECT_EQ(p.NextDelay(1, milliseconds(0), ParseRetryAfter("Thu, 01 Jan 2026 00:02:00 GMT", now),
                        uint64_t{0}),
            seconds(120));
  EXPECT_EQ(p.NextDelay(1, milliseconds(0), ParseRetryAfter("Thu, 01 Jan 2027 00:00:00 GMT", now),
                        uint64_t{0}),
            hours(1));  // a year away: clamped to the default retry_after_max
  // Garbage is no hint at all: the backoff alone decides.
  EXPECT_EQ(p.NextDelay(1, milliseconds(0), ParseRetryAfter("soon", now), ~uint64_t{0}),
            milliseconds(100));
}

TEST(RetryPolicy, RetryAfterCountsAgainstMaxElapsed) {
  RetryOptions o = Exponential();
  o.max_elapsed = minutes(1);
  const RetryPolicy p = Make(o);
  EXPECT_EQ(p.NextDelay(1, seconds(10), seconds(45), uint64_t{0}), seconds(45));
  EXPECT_EQ(p.NextDelay(1, seconds(20), seconds(45), uint64_t{0}), std::nullopt);
}

// ---- Retry loop ----

TEST(Retry, StopsAtTheFirstSuccess) {
  ManualClock clock;
  Random random(1);
  const RetryPolicy p = Make(Exponential(5));
  int calls = 0;
  const Status s = Retry(p, clock, random, Deadline(), [&](int attempt) {
    EXPECT_EQ(attempt, ++calls);
    return calls < 3 ? UnavailableError("down") : OkStatus();
  });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(calls, 3);
  EXPECT_LE(clock.TotalSlept(), milliseconds(100 + 200));
}

TEST(Retry, DoesNotRetryPermanentFailures) {
  ManualClock clock;
  Random random(1);
  const RetryPolicy p = Make(Exponential(5));
  int calls = 0;
  const Status s = Retry(p, clock, random, Deadline(), [&](int) {
    ++calls;
    return InvalidArgumentError("bad");
  });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(clock.TotalSlept(), std::chrono::nanoseconds(0));
}

TEST(Retry, GivesUpAfterMaxAttemptsWithTheLastStatus) {
  ManualClock clock;
  Random random(1);
  const RetryPolicy p = Make(Fixed({seconds(1), seconds(2), seconds(4)}));
  int calls = 0;
  const Status s = Retry(p, clock, random, Deadline(), [&](int attempt) {
    ++calls;
    return UnavailableError("down " + std::to_string(attempt));
  });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "down 4");
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(clock.TotalSlept(), seconds(7));
}

TEST(Retry, HonoursTheRetryAfterPayload) {
  ManualClock clock;
  Random random(1);
  const RetryPolicy p = Make(Exponential(2));
  int calls = 0;
  const Status s = Retry(p, clock, random, Deadline(), [&](int) {
    return ++calls == 1 ? ResourceExhaustedError("slow down").With(kPayloadRetryAfter, "7")
                        : OkStatus();
  });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(clock.TotalSlept(), seconds(7));
}

TEST(Retry, StopsWhenTheNextAttemptWouldStartPastTheDeadline) {
  ManualClock clock;
  Random random(1);
  const RetryPolicy p = Make(Fixed({milliseconds(500), seconds(5)}));
  const Deadline deadline = Deadline::After(clock, seconds(2));
  int calls = 0;
  const Status s = Retry(p, clock, random, deadline, [&](int) {
    ++calls;
    return UnavailableError("down");
  });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(calls, 2);  // the 5 s wait would end after the deadline
  EXPECT_EQ(clock.TotalSlept(), milliseconds(500));
}

TEST(Retry, MakesNoCallUnderAnExpiredDeadline) {
  ManualClock clock;
  Random random(1);
  const RetryPolicy p = Make(Exponential());
  const Deadline deadline = Deadline::After(clock, seconds(0));
  int calls = 0;
  const Status s = Retry(p, clock, random, deadline, [&](int) {
    ++calls;
    return OkStatus();
  });
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(calls, 0);
}

TEST(Retry, MeasuresElapsedTimeIncludingTheCalls) {
  ManualClock clock;
  Random random(1);
  RetryOptions o = Fixed({seconds(1), seconds(1), seconds(1)});
  o.max_elapsed = seconds(10);
  const RetryPolicy p = Make(o);
  int calls = 0;
  const Status s = Retry(p, clock, random, Deadline(), [&](int) {
    ++calls;
    clock.Advance(seconds(4));  // each call takes 4 s
    return UnavailableError("down");
  });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  // 4 s + 1 s wait + 4 s = 9 s; another 1 s wait would end at 10 s: allowed; after the third
  // call (14 s) the next wait would end past 10 s.
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace evo::resilience
