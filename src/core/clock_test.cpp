#include "core/clock.hpp"

#include <gtest/gtest.h>

namespace evo {
namespace {

using std::chrono::milliseconds;

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock;
  const auto t0 = clock.Now();
  EXPECT_EQ(clock.Now(), t0);
  clock.Advance(milliseconds(5));
  EXPECT_EQ(clock.Now() - t0, milliseconds(5));
}

TEST(ManualClock, SleepAdvancesBothClocksAndIsCounted) {
  ManualClock clock;
  const auto w0 = clock.Now();
  const auto m0 = clock.Monotonic();
  clock.SleepFor(milliseconds(3));
  EXPECT_EQ(clock.Now() - w0, milliseconds(3));
  EXPECT_EQ(clock.Monotonic() - m0, milliseconds(3));
  EXPECT_EQ(clock.TotalSlept(), milliseconds(3));
}

TEST(ManualClock, SetWallStepsBackWithoutMovingMonotonic) {
  ManualClock clock;
  const auto m0 = clock.Monotonic();
  const auto w0 = clock.Now();
  clock.SetWall(w0 - std::chrono::hours(1));
  EXPECT_EQ(w0 - clock.Now(), std::chrono::hours(1));
  EXPECT_EQ(clock.Monotonic(), m0);
}

TEST(MonotonicWallClock, IgnoresBackwardWallSteps) {
  ManualClock base;
  MonotonicWallClock clock(base);
  const auto t0 = clock.Now();
  base.SetWall(base.Now() - std::chrono::seconds(10));
  base.Advance(milliseconds(200));
  EXPECT_EQ(clock.Now() - t0, milliseconds(200));
}

TEST(MonotonicWallClock, FollowsLargeForwardSteps) {
  ManualClock base;
  MonotonicWallClock clock(base, milliseconds(1000));
  const auto t0 = clock.Now();
  base.SetWall(base.Now() + std::chrono::seconds(30));
  base.Advance(milliseconds(200));  // past the 100 ms re-check interval
  EXPECT_GE(clock.Now() - t0, std::chrono::seconds(30));
}

TEST(RealClock, MonotonicNeverGoesBack) {
  const auto a = RealClock().Monotonic();
  const auto b = RealClock().Monotonic();
  EXPECT_LE(a, b);
}

}  // namespace
}  // namespace evo

namespace evo {
namespace {

TEST(Timestamp, FormatsAndParsesRfc3339) {
  const auto t = ParseTimestamp("2025-01-01T00:00:00Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(UnixMillis(*t), 1'735'689'600'000);
  EXPECT_EQ(FormatTimestamp(*t + std::chrono::milliseconds(1234)), "2025-01-01T00:00:01.234Z");
  const auto frac = ParseTimestamp("2025-01-01T00:00:01.5Z");
  ASSERT_TRUE(frac.ok());
  EXPECT_EQ(UnixMillis(*frac), 1'735'689'601'500);
}

TEST(Timestamp, FormatsAnyMillisecondCount) {
  EXPECT_EQ(FormatUnixMillis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatUnixMillis(1'795'858'377'123), "2026-11-28T09:32:57.123Z");
  EXPECT_EQ(FormatUnixMillis(951'782'400'000), "2000-02-29T00:00:00.000Z");
  EXPECT_EQ(FormatUnixMillis(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatUnixMillis(4'102'444'800'000), "2100-01-01T00:00:00.000Z");
}

TEST(Timestamp, RejectsNonUtcAndGarbage) {
  for (const char* bad :
       {"2025-01-01", "2025-01-01T00:00:00+01:00", "yesterday", "2025-13-01T00:00:00Z", ""}) {
    EXPECT_EQ(ParseTimestamp(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace evo
