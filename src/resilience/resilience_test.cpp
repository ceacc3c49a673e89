// Tests of the module's small pieces: Random, outcome classification, Retry-After and deadlines.
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "resilience/resilience.hpp"

namespace evo::resilience {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

// ---- Random ----

TEST(Random, SameSeedGivesTheSameSequence) {
  Random a(42);
  Random b(42);
  Random c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.Next();
    EXPECT_EQ(x, b.Next());
    differs |= x != c.Next();
  }
  EXPECT_TRUE(differs);
}

TEST(Random, UniformStaysInTheUnitInterval) {
  Random r(7);
  double lo = 1;
  double hi = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = r.Uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  EXPECT_LT(lo, 0.01);
  EXPECT_GT(hi, 0.99);
}

TEST(Random, ConcurrentCallersNeverSeeTheSameValue) {
  Random r(1);
  std::mutex mu;
  std::set<uint64_t> seen;
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::vector<uint64_t> mine;
      mine.reserve(10000);
      for (int i = 0; i < 10000; ++i) {
        mine.push_back(r.Next());
      }
      std::lock_guard<std::mutex> lock(mu);
      seen.insert(mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(seen.size(), 40000u);
}

// ---- Classification ----

TEST(ClassifyHttpStatus, SuccessIsTwoHundreds) {
  for (int s : {200, 201, 202, 204, 299}) {
    EXPECT_EQ(ClassifyHttpStatus(s), Outcome::kSuccess) << s;
  }
}

TEST(ClassifyHttpStatus, RedirectsAreRetriedFailures) {
  for (int s : {300, 301, 302, 303, 304, 307, 308}) {
    EXPECT_EQ(ClassifyHttpStatus(s), Outcome::kTransient) << s;
  }
}

TEST(ClassifyHttpStatus, ClientErrorsArePermanentExceptTheRetryableFour) {
  for (int s : {400, 401, 403, 404, 405, 406, 411, 413, 415, 422, 451, 499}) {
    EXPECT_EQ(ClassifyHttpStatus(s), Outcome::kPermanent) << s;
  }
  for (int s : {408, 409, 425, 429}) {
    EXPECT_EQ(ClassifyHttpStatus(s), Outcome::kTransient) << s;
  }
}

TEST(ClassifyHttpStatus, GoneDisablesTheTarget) {
  EXPECT_EQ(ClassifyHttpStatus(410), Outcome::kGone);
  EXPECT_FALSE(IsRetryable(Outcome::kGone));
}

TEST(ClassifyHttpStatus, ServerErrorsAndNonResponsesAreTransient) {
  for (int s : {500, 501, 502, 503, 504, 507, 599}) {
    EXPECT_EQ(ClassifyHttpStatus(s), Outcome::kTransient) << s;
  }
  for (int s : {-1, 0, 42, 100, 101, 199, 600, 999}) {
    EXPECT_EQ(ClassifyHttpStatus(s), Outcome::kTransient) << s;
  }
}

TEST(ClassifyStatus, FollowsTheCodeTable) {
  EXPECT_EQ(ClassifyStatus(OkStatus()), Outcome::kSuccess);
  for (const Status& s :
       {UnavailableError("x"), DeadlineExceededError("x"), ResourceExhaustedError("x"),
        AbortedError("x"), InternalError("x"), UnknownError("x")}) {
    EXPECT_EQ(ClassifyStatus(s), Outcome::kTransient) << s;
  }
  for (const Status& s :
       {InvalidArgumentError("x"), NotFoundError("x"), AlreadyExistsError("x"),
        PermissionDeniedError("x"), UnauthenticatedError("x"), FailedPreconditionError("x"),
        OutOfRangeError("x"), UnimplementedError("x"), DataLossError("x"), CancelledError("x")}) {
    EXPECT_EQ(ClassifyStatus(s), Outcome::kPermanent) << s;
  }
}

TEST(Outcome, OnlyTransientIsRetryableAndEachHasAName) {
  EXPECT_TRUE(IsRetryable(Outcome::kTransient));
  EXPECT_FALSE(IsRetryable(Outcome::kSuccess));
  EXPECT_FALSE(IsRetryable(Outcome::kPermanent));
  EXPECT_EQ(OutcomeName(Outcome::kSuccess), "success");
  EXPECT_EQ(OutcomeName(Outcome::kTransient), "transient");
  EXPECT_EQ(OutcomeName(Outcome::kPermanent), "permanent");
  EXPECT_EQ(OutcomeName(Outcome::kGone), "gone");
}

// ---- Retry-After ----

// ManualClock's default start, 2026-01-01T00:00:00Z, a Thursday.
Clock::WallTime Now() { return ManualClock().Now(); }

TEST(ParseRetryAfter, ReadsDeltaSeconds) {
  EXPECT_EQ(ParseRetryAfter("120", Now()), seconds(120));
  EXPECT_EQ(ParseRetryAfter("0", Now()), seconds(0));
  EXPECT_EQ(ParseRetryAfter(" \t7 ", Now()), seconds(7));
  EXPECT_EQ(ParseRetryAfter("007", Now()), seconds(7));
}

TEST(ParseRetryAfter, SaturatesHugeDeltaSeconds) {
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999999", Now()), seconds(2'147'483'647));
}

TEST(ParseRetryAfter, ReadsAnImfFixdateRelativeToNow) {
  EXPECT_EQ(ParseRetryAfter("Thu, 01 Jan 2026 00:02:00 GMT", Now()), seconds(120));
  EXPECT_EQ(ParseRetryAfter("Fri, 02 Jan 2026 00:00:00 GMT", Now()), hours(24));
  EXPECT_EQ(ParseRetryAfter("Thu, 01 Jan 2026 00:02:00 GMT", Now() + milliseconds(500)),
            milliseconds(119'500));
  EXPECT_EQ(ParseRetryAfter("Sat, 29 Feb 2028 00:00:00 GMT", Now()),
            hours(24) * (365 + 365 + 31 + 28));
  EXPECT_EQ(
      ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", Clock::WallTime(seconds(784111777 - 10))),
      seconds(10));  // the RFC's own example
}

TEST(ParseRetryAfter, DateInThePastMeansNow) {
  EXPECT_EQ(ParseRetryAfter("Wed, 31 Dec 2025 23:59:00 GMT", Now()), milliseconds(0));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", Now()), milliseconds(0));
}

TEST(ParseRetryAfter, DoesNotCheckTheDayNameAgainstTheDate) {
  EXPECT_EQ(ParseRetryAfter("Mon, 01 Jan 2026 00:02:00 GMT", Now()), seconds(120));
}

TEST(ParseRetryAfter, RejectsGarbage) {
  for (std::string_view bad : {
           "",
           "   ",
           "abc",
           "-5",
           "+5",
           "1.5",
           "5 s",
           "12abc",
           "0x10",
           "Thu, 01 Jan 2026 00:02:00 UTC",
           "thu, 01 jan 2026 00:02:00 GMT",
           "Thursday, 01-Jan-26 00:02:00 GMT",  // RFC 850
           "Thu Jan  1 00:02:00 2026",          // asctime
           "Thu, 1 Jan 2026 00:02:00 GMT",
           "Thu, 32 Jan 2026 00:00:00 GMT",
           "Thu, 00 Jan 2026 00:00:00 GMT",
           "Sun, 29 Feb 2026 00:00:00 GMT",
           "Thu, 31 Apr 2026 00:00:00 GMT",
           "Thu, 01 Jan 2026 24:00:00 GMT",
           "Thu, 01 Jan 2026 00:60:00 GMT",
           "Thu, 01 Jan 2026 00:00:61 GMT",
           "Xyz, 01 Jan 2026 00:00:00 GMT",
           "Thu, 01 Foo 2026 00:00:00 GMT",
           "Thu, 01 Jan 2O26 00:00:00 GMT",
           "Thu, 01 Jan 2026 00:00:00 GMT extra",
           "Thu,  01 Jan 2026 00:00:00 GMT",
       }) {
    EXPECT_EQ(ParseRetryAfter(bad, Now()), std::nullopt) << bad;
  }
}

TEST(ParseRetryAfter, AcceptsALeapSecond) {
  EXPECT_EQ(ParseRetryAfter("Thu, 01 Jan 2026 00:00:60 GMT", Now()), seconds(60));
}

TEST(RetryAfterFromStatus, ReadsThePayloadInWholeSeconds) {
  EXPECT_EQ(RetryAfterFromStatus(UnavailableError("x").With(kPayloadRetryAfter, "7")), seconds(7));
  EXPECT_EQ(RetryAfterFromStatus(UnavailableError("x").With(kPayloadRetryAfter, "soon")),
            std::nullopt);
  EXPECT_EQ(RetryAfterFromStatus(UnavailableError("x").With(kPayloadRetryAfter, "-1")),
            std::nullopt);
  EXPECT_EQ(RetryAfterFromStatus(UnavailableError("x")), std::nullopt);
  EXPECT_EQ(RetryAfterFromStatus(OkStatus()), std::nullopt);
}

// ---- Deadline ----

TEST(Deadline, InfiniteNeverExpires) {
  ManualClock clock;
  const Deadline d;
  EXPECT_TRUE(d.infinite());
  EXPECT_FALSE(d.Expired());
  EXPECT_EQ(d.Remaining(), nanoseconds::max());
  EXPECT_EQ(d.when(), Clock::SteadyTime::max());
  EXPECT_TRUE(d.Check("anything").ok());
  EXPECT_TRUE(Deadline::Infinite().infinite());
}

TEST(Deadline, AfterCountsDownOnTheClock) {
  ManualClock clock;
  const Deadline d = Deadline::After(clock, seconds(5));
  EXPECT_FALSE(d.infinite());
  EXPECT_EQ(d.when(), clock.Monotonic() + seconds(5));
  EXPECT_EQ(d.Remaining(), seconds(5));
  clock.Advance(seconds(2));
  EXPECT_EQ(d.Remaining(), seconds(3));
  EXPECT_FALSE(d.Expired());
  clock.Advance(seconds(3));
  EXPECT_TRUE(d.Expired());
  EXPECT_EQ(d.Remaining(), nanoseconds(0));
  clock.Advance(seconds(3));
  EXPECT_EQ(d.Remaining(), nanoseconds(0));
}

TEST(Deadline, AtUsesTheGivenInstant) {
  ManualClock clock;
  const Deadline d = Deadline::At(clock, clock.Monotonic() + milliseconds(250));
  EXPECT_EQ(d.Remaining(), milliseconds(250));
}

TEST(Deadline, NegativeTimeoutIsAlreadyExpired) {
  ManualClock clock;
  EXPECT_TRUE(Deadline::After(clock, seconds(-1)).Expired());
  EXPECT_TRUE(Deadline::After(clock, nanoseconds::min()).Expired());
  EXPECT_TRUE(Deadline::After(clock, nanoseconds(0)).Expired());
}

TEST(Deadline, TimeoutTooLargeToRepresentIsInfinite) {
  ManualClock clock;
  EXPECT_TRUE(Deadline::After(clock, nanoseconds::max()).infinite());
}

TEST(Deadline, MinPicksTheEarlier) {
  ManualClock clock;
  const Deadline a = Deadline::After(clock, seconds(5));
  const Deadline b = Deadline::After(clock, seconds(2));
  EXPECT_EQ(a.Min(b).Remaining(), seconds(2));
  EXPECT_EQ(b.Min(a).Remaining(), seconds(2));
  EXPECT_EQ(a.Min(Deadline()).Remaining(), seconds(5));
  EXPECT_EQ(Deadline().Min(a).Remaining(), seconds(5));
  EXPECT_TRUE(Deadline().Min(Deadline()).infinite());
}

TEST(Deadline, CheckNamesTheWorkOnceExpired) {
  ManualClock clock;
  const Deadline d = Deadline::After(clock, seconds(1));
  EXPECT_TRUE(d.Check("fetch").ok());
  clock.Advance(seconds(1));
  const Status s = d.Check("fetch");
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(s.message().find("fetch"), std::string_view::npos);
}

TEST(TimeoutFor, IsTheRemainderCappedAndRoundedUp) {
  ManualClock clock;
  EXPECT_EQ(*TimeoutFor(Deadline::After(clock, milliseconds(2500)), seconds(1)), seconds(1));
  EXPECT_EQ(*TimeoutFor(Deadline::After(clock, milliseconds(800)), seconds(1)), milliseconds(800));
  EXPECT_EQ(*TimeoutFor(Deadline::After(clock, std::chrono::microseconds(1200)), seconds(1)),
            milliseconds(2));
  EXPECT_EQ(*TimeoutFor(Deadline::After(clock, std::chrono::microseconds(300)), seconds(1)),
            milliseconds(1));
  EXPECT_EQ(*TimeoutFor(Deadline(), seconds(30)), seconds(30));
}

TEST(TimeoutFor, RefusesAnExpiredDeadlineAndABadCap) {
  ManualClock clock;
  const Deadline d = Deadline::After(clock, seconds(1));
  clock.Advance(seconds(1));
  EXPECT_EQ(TimeoutFor(d, seconds(1)).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(TimeoutFor(Deadline(), milliseconds(0)).status().code(), StatusCode::kInvalidArgument);
}

TEST(TimeoutHeader, FormatsInTheFinestUnitThatFits) {
  EXPECT_EQ(FormatTimeoutHeader(nanoseconds(1)), "1n");
  EXPECT_EQ(FormatTimeoutHeader(nanoseconds(99'999'999)), "99999999n");
  EXPECT_EQ(FormatTimeoutHeader(milliseconds(100)), "100000u");
  EXPECT_EQ(FormatTimeoutHeader(milliseconds(1500)), "1500000u");
  EXPECT_EQ(FormatTimeoutHeader(hours(2)), "7200000m");
  EXPECT_EQ(FormatTimeoutHeader(hours(24 * 365)), "31536000S");
  EXPECT_EQ(FormatTimeoutHeader(nanoseconds::max()), "2562048H");
}

TEST(TimeoutHeader, RoundsUpAndNeverFormatsAPositiveTimeoutAsZero) {
  EXPECT_EQ(FormatTimeoutHeader(nanoseconds(100'000'001)), "100001u");
  EXPECT_EQ(FormatTimeoutHeader(nanoseconds(0)), "0n");
  EXPECT_EQ(FormatTimeoutHeader(nanoseconds(-5)), "0n");
}

TEST(TimeoutHeader, ParsesEveryUnit) {
  EXPECT_EQ(ParseTimeoutHeader("5n"), nanoseconds(5));
  EXPECT_EQ(ParseTimeoutHeader("5u"), std::chrono::microseconds(5));
  EXPECT_EQ(ParseTimeoutHeader("5m"), milliseconds(5));
  EXPECT_EQ(ParseTimeoutHeader("5S"), seconds(5));
  EXPECT_EQ(ParseTimeoutHeader("5M"), std::chrono::minutes(5));
  EXPECT_EQ(ParseTimeoutHeader("5H"), hours(5));
  EXPECT_EQ(ParseTimeoutHeader("99999999H"), nanoseconds::max());
}

TEST(TimeoutHeader, RoundTripsWithinOneUnitOfRounding) {
  for (int64_t ns : {int64_t{1}, int64_t{999}, int64_t{123'456'789}, int64_t{5'000'000'000},
                     int64_t{86'400'000'000'123}}) {
    const auto parsed = ParseTimeoutHeader(FormatTimeoutHeader(nanoseconds(ns)));
    ASSERT_TRUE(parsed.has_value()) << ns;
    EXPECT_GE(parsed->count(), ns);
    EXPECT_LE(static_cast<double>(parsed->count() - ns), 1e-5 * static_cast<double>(ns) + 1);
  }
}

TEST(TimeoutHeader, RejectsAnythingElse) {
  for (std::string_view bad :
       {"", "1", "m", "123456789m", "-1m", "+1m", "1.5S", " 1S", "1S ", "1s", "1x", "1mm"}) {
    EXPECT_EQ(ParseTimeoutHeader(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace evo::resilience
