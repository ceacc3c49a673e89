#include <algorithm>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "ids/ids.hpp"
#include "ids/internal.hpp"

namespace evo::ids {
namespace {

using std::chrono::milliseconds;

constexpr Id kMaxId = std::numeric_limits<int64_t>::max();

TEST(Layout, DefaultsGiveFourMillionPerSecondUntil2094) {
  Layout layout;
  EXPECT_EQ(layout.CapacityPerSecond(), 4'096'000.0);
  EXPECT_EQ(layout.MaxWorkerId(), 1023);
  EXPECT_EQ(layout.MaxSequence(), 4095);
  EXPECT_EQ(FormatUnixMillis(UnixMillis(layout.epoch)), "2025-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatUnixMillis(UnixMillis(layout.Exhausted())).substr(0, 4), "2094");
  EXPECT_TRUE(Validate(layout, ManualClock()).ok());
}

TEST(Layout, CapacityFollowsTickAndSequenceBits) {
  Layout sonyflake{
      .timestamp_bits = 39, .worker_bits = 16, .sequence_bits = 8, .tick = milliseconds(10)};
  EXPECT_EQ(sonyflake.CapacityPerSecond(), 25'600.0);
  EXPECT_TRUE(Validate(sonyflake, ManualClock()).ok());
}

TEST(Layout, WideTimestampFieldsSaturateOrAreRejected) {
  // 2^50 seconds: far past what a system_clock time point holds, yet valid milliseconds.
  Layout wide{
      .timestamp_bits = 50, .worker_bits = 0, .sequence_bits = 13, .tick = std::chrono::seconds(1)};
  EXPECT_EQ(wide.Exhausted(), Clock::WallTime::max());
  EXPECT_TRUE(Validate(wide, ManualClock()).ok());
  Layout too_wide{
      .timestamp_bits = 61, .worker_bits = 0, .sequence_bits = 2, .tick = std::chrono::seconds(1)};
  EXPECT_EQ(Validate(too_wide, ManualClock()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(wide, std::numeric_limits<int64_t>::max()).timestamp_ticks, wide.MaxTimestamp());
}

TEST(Layout, ValidateRejectsEachBrokenRule) {
  ManualClock clock;
  auto expect_invalid = [&](Layout layout, std::string_view field) {
    const Status s = Validate(layout, clock);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string_view::npos) << s;
  };
  expect_invalid({.timestamp_bits = 0, .worker_bits = 11, .sequence_bits = 52}, "timestamp_bits");
  expect_invalid({.timestamp_bits = 41, .worker_bits = -1, .sequence_bits = 23}, "worker_bits");
  expect_invalid({.timestamp_bits = 41, .worker_bits = 22, .sequence_bits = 0}, "sequence_bits");
  expect_invalid({.timestamp_bits = 41, .worker_bits = 10, .sequence_bits = 13}, "must be 63");
  expect_invalid({.timestamp_bits = 41, .worker_bits = 10, .sequence_bits = 11}, "must be 63");
  Layout tick_small;
  tick_small.tick = milliseconds(0);
  expect_invalid(tick_small, "tick");
  Layout tick_big;
  tick_big.tick = milliseconds(1001);
  expect_invalid(tick_big, "tick");
  Layout future;
  future.epoch = clock.Now() + milliseconds(1);
  expect_invalid(future, "epoch");
  Layout exhausted{.timestamp_bits = 20, .worker_bits = 21, .sequence_bits = 22};
  expect_invalid(exhausted, "ran out");
  // Worker bits may be zero: a single-worker layout.
  EXPECT_TRUE(Validate({.timestamp_bits = 41, .worker_bits = 0, .sequence_bits = 22}, clock).ok());
  Layout now_epoch;
  now_epoch.epoch = clock.Now();
  EXPECT_TRUE(Validate(now_epoch, clock).ok());
}

TEST(Layout, ComposeAndDecodeAreInverse) {
  Layout layout;
  const Id id = Compose(layout, 123'456'789, 1023, 4095);
  const Decoded d = Decode(layout, id);
  EXPECT_EQ(d.id, id);
  EXPECT_EQ(d.timestamp_ticks, 123'456'789);
  EXPECT_EQ(d.worker_id, 1023);
  EXPECT_EQ(d.sequence, 4095);
  EXPECT_EQ(d.unix_millis, UnixMillis(layout.epoch) + 123'456'789);
  const Decoded max = Decode(layout, kMaxId);
  EXPECT_EQ(max.timestamp_ticks, layout.MaxTimestamp());
  EXPECT_EQ(max.worker_id, layout.MaxWorkerId());
  EXPECT_EQ(max.sequence, layout.MaxSequence());
}

// ---- Encodings --------------------------------------------------------------------------------

std::vector<Id> SampleIds() {
  std::vector<Id> ids = {0, 1, 31, 32, kMaxId, kMaxId - 1, uint64_t{1} << 62};
  std::mt19937_64 rng(42);
  for (int i = 0; i < 10'000; ++i) {
    ids.push_back(rng() >> 1);
    ids.push_back(rng() >> (1 + rng() % 63));  // short values too
  }
  return ids;
}

TEST(Encoding, RoundTripsEveryFormat) {
  for (Format f : {Format::kDecimal, Format::kBase32, Format::kHex}) {
    for (Id id : SampleIds()) {
      const std::string text = Encode(id, f);
      auto decoded = DecodeText(text, f);
      ASSERT_TRUE(decoded.ok()) << FormatName(f) << " " << text << " " << decoded.status();
      EXPECT_EQ(*decoded, id) << FormatName(f) << " " << text;
      auto any = DecodeAnyText(text);
      // A hex or base32 text made only of digits reads as decimal; that is the documented rule.
      if (f == Format::kDecimal || text.find_first_not_of("0123456789") != std::string::npos) {
        ASSERT_TRUE(any.ok()) << text;
        EXPECT_EQ(*any, id) << text;
      }
    }
  }
}

TEST(Encoding, EdgeValuesHaveFixedForms) {
  EXPECT_EQ(Encode(0, Format::kDecimal), "0");
  EXPECT_EQ(Encode(0, Format::kBase32), "0000000000000");
  EXPECT_EQ(Encode(0, Format::kHex), "0000000000000000");
  EXPECT_EQ(Encode(kMaxId, Format::kDecimal), "9223372036854775807");
  EXPECT_EQ(Encode(kMaxId, Format::kBase32), "7ZZZZZZZZZZZZ");
  EXPECT_EQ(Encode(kMaxId, Format::kHex), "7fffffffffffffff");
}

TEST(Encoding, Base32SortsLikeTheNumber) {
  std::vector<Id> ids = SampleIds();
  std::vector<std::string> texts;
  for (Id id : ids) {
    texts.push_back(Encode(id, Format::kBase32));
  }
  std::sort(ids.begin(), ids.end());
  std::sort(texts.begin(), texts.end());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(Encode(ids[i], Format::kBase32), texts[i]);
  }
}

TEST(Encoding, Base32AcceptsLowerCaseAndCrockfordAliases) {
  const Id id = *DecodeText("01ABCDEFGH1JK", Format::kBase32);
  EXPECT_EQ(*DecodeText("01abcdefgh1jk", Format::kBase32), id);
  EXPECT_EQ(*DecodeText("OIABCDEFGHLJK", Format::kBase32), id);
  EXPECT_EQ(*DecodeText("oiabcdefghljk", Format::kBase32), id);
  EXPECT_EQ(*DecodeText("7FFFFFFFFFFFFFFF", Format::kHex), kMaxId);
}

TEST(Encoding, DecodeTextRejectsBadInput) {
  const std::vector<std::pair<std::string, Format>> bad = {
      {"", Format::kDecimal},
      {"-1", Format::kDecimal},
      {"+1", Format::kDecimal},
      {" 1", Format::kDecimal},
      {"1 ", Format::kDecimal},
      {"1e3", Format::kDecimal},
      {"0x10", Format::kDecimal},
      {"12a", Format::kDecimal},
      {"9223372036854775808", Format::kDecimal},
      {"18446744073709551616", Format::kDecimal},
      {"123456789012345678901", Format::kDecimal},
      {std::string(10'000, '9'), Format::kDecimal},
      {"", Format::kBase32},
      {"000000000000", Format::kBase32},
      {"00000000000000", Format::kBase32},
      {"000000000000U", Format::kBase32},
      {"00000000000-0", Format::kBase32},
      {"8000000000000", Format::kBase32},
      {"ZZZZZZZZZZZZZ", Format::kBase32},
      {"", Format::kHex},
      {"000000000000000", Format::kHex},
      {"00000000000000000", Format::kHex},
      {"000000000000000g", Format::kHex},
      {"8000000000000000", Format::kHex},
      {"ffffffffffffffff", Format::kHex},
      {std::string("00000000\0000000000", 16), Format::kHex},
  };
  for (const auto& [text, format] : bad) {
    auto r = DecodeText(text, format);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument)
        << FormatName(format) << " \"" << internal::Excerpt(text) << "\"";
    EXPECT_LT(r.status().message().size(), 200u);
  }
  for (std::string_view text : {"", "abc", "-5", "ZZZZZZZZZZZZZ", "not-a-valid-id", "%FF"}) {
    EXPECT_EQ(DecodeAnyText(text).status().code(), StatusCode::kInvalidArgument) << text;
  }
}

TEST(Encoding, DecodeAnyTextPicksTheFormatByShape) {
  EXPECT_EQ(*DecodeAnyText("0000000000042"), 42u);     // digits: decimal
  EXPECT_EQ(*DecodeAnyText("000000000001A"), 42u);     // 13 chars: base32
  EXPECT_EQ(*DecodeAnyText("000000000000002a"), 42u);  // 16 chars: hex
  EXPECT_EQ(*DecodeAnyText("9223372036854775807"), kMaxId);
}

TEST(Encoding, ParseFormatIsCaseInsensitive) {
  EXPECT_EQ(*ParseFormat("decimal"), Format::kDecimal);
  EXPECT_EQ(*ParseFormat("BASE32"), Format::kBase32);
  EXPECT_EQ(*ParseFormat("Hex"), Format::kHex);
  EXPECT_EQ(ParseFormat("base64").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseFormat("").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace evo::ids
