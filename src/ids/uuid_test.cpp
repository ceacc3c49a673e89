#include <algorithm>

#include <gtest/gtest.h>

#include "ids/ids.hpp"
#include "ids/internal.hpp"

namespace evo::ids {
namespace {

uint64_t MillisOf(const Bytes16& b) {
  uint64_t ms = 0;
  for (int i = 0; i < 6; ++i) {
    ms = (ms << 8) | b[static_cast<size_t>(i)];
  }
  return ms;
}

TEST(Uuid7, HasVersionVariantAndClockMillis) {
  ManualClock clock;
  Uuid7Generator gen(clock, 1);
  for (int i = 0; i < 1000; ++i) {
    const Bytes16 u = gen.Next();
    EXPECT_EQ(u[6] >> 4, 7);
    EXPECT_EQ(u[8] >> 6, 2);
    EXPECT_EQ(MillisOf(u), static_cast<uint64_t>(UnixMillis(clock.Now())));
    const std::string text = FormatUuid(u);
    ASSERT_EQ(text.size(), 36u);
    EXPECT_EQ(text[8], '-');
    EXPECT_EQ(text[13], '-');
    EXPECT_EQ(text[14], '7');
    EXPECT_EQ(text[18], '-');
    EXPECT_NE(std::string("89ab").find(text[19]), std::string::npos);
    EXPECT_EQ(text[23], '-');
    EXPECT_EQ(text.find_first_not_of("0123456789abcdef-"), std::string::npos);
  }
}

TEST(Uuid7, StrictlyIncreasesOnAFrozenAndOnARealClock) {
  ManualClock frozen;
  MonotonicWallClock real(RealClock());
  for (const Clock* clock :
       {static_cast<const Clock*>(&frozen), static_cast<const Clock*>(&real)}) {
    Uuid7Generator gen(*clock);
    Bytes16 prev = gen.Next();
    std::string prev_text = FormatUuid(prev);
    for (int i = 0; i < 100'000; ++i) {
      const Bytes16 u = gen.Next();
      ASSERT_LT(prev, u) << i;
      const std::string text = FormatUuid(u);
      ASSERT_LT(prev_text, text);  // text sorts like the bytes
      EXPECT_EQ(u[6] >> 4, 7);
      EXPECT_EQ(u[8] >> 6, 2);
      prev = u;
      prev_text = text;
    }
  }
}

TEST(Uuid7, StrictlyIncreasesWhenTheClockStepsBack) {
  ManualClock clock;
  Uuid7Generator gen(clock, 9);
  const Bytes16 a = gen.Next();
  clock.SetWall(clock.Now() - std::chrono::seconds(5));
  const Bytes16 b = gen.Next();
  EXPECT_LT(a, b);
  EXPECT_EQ(MillisOf(b), MillisOf(a));
}

TEST(Uuid7, SameSeedSameClockSameSequence) {
  ManualClock clock;
  Uuid7Generator a(clock, 42);
  Uuid7Generator b(clock, 42);
  Uuid7Generator c(clock, 43);
  const Bytes16 first = a.Next();
  EXPECT_EQ(first, b.Next());
  EXPECT_NE(first, c.Next());
}

TEST(Ulid, Is26CrockfordCharactersWithTheClockMillis) {
  ManualClock clock;
  UlidGenerator gen(clock, 1);
  for (int i = 0; i < 1000; ++i) {
    const Bytes16 u = gen.Next();
    const std::string text = FormatUlid(u);
    ASSERT_EQ(text.size(), 26u);
    EXPECT_EQ(text.find_first_not_of(internal::kCrockford), std::string::npos) << text;
    EXPECT_LE(text[0], '7');
    uint64_t ms = 0;
    for (int c = 0; c < 10; ++c) {  // the first 10 characters hold the 48-bit time
      ms = ms * 32 + static_cast<uint64_t>(internal::CrockfordValue(text[static_cast<size_t>(c)]));
    }
    EXPECT_EQ(ms, static_cast<uint64_t>(UnixMillis(clock.Now())));
    EXPECT_EQ(MillisOf(u), ms);
  }
  Bytes16 max;
  max.fill(0xff);
  EXPECT_EQ(FormatUlid(max), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
  EXPECT_EQ(FormatUlid(Bytes16{}), std::string(26, '0'));
}

TEST(Ulid, StrictlyIncreasesByOneWithinAMillisecond) {
  ManualClock clock;
  UlidGenerator gen(clock, 5);
  Bytes16 prev = gen.Next();
  std::string prev_text = FormatUlid(prev);
  for (int i = 0; i < 100'000; ++i) {
    if (i % 1000 == 0) {
      clock.Advance(std::chrono::milliseconds(1));
    }
    const Bytes16 u = gen.Next();
    const std::string text = FormatUlid(u);
    ASSERT_LT(prev, u);
    ASSERT_LT(prev_text, text);
    if (MillisOf(u) == MillisOf(prev)) {
      EXPECT_EQ(u[15], static_cast<uint8_t>(prev[15] + 1));
    }
    prev = u;
    prev_text = text;
  }
}

}  // namespace
}  // namespace evo::ids
