#include "core/utf8.hpp"

#include <gtest/gtest.h>

namespace evo::utf8 {
namespace {

TEST(Utf8, SequenceLengthFollowsRfc3629) {
  EXPECT_EQ(SequenceLength("a", 0), 1u);
  EXPECT_EQ(SequenceLength("\xC3\xA9", 0), 2u);
  EXPECT_EQ(SequenceLength("\xE2\x82\xAC", 0), 3u);
  EXPECT_EQ(SequenceLength("\xF0\x9F\x98\x80", 0), 4u);
  EXPECT_EQ(SequenceLength("\xC0\xAF", 0), 0u);          // overlong
  EXPECT_EQ(SequenceLength("\xE0\x80\xAF", 0), 0u);      // overlong
  EXPECT_EQ(SequenceLength("\xED\xA0\x80", 0), 0u);      // surrogate
  EXPECT_EQ(SequenceLength("\xF4\x90\x80\x80", 0), 0u);  // above U+10FFFF
  EXPECT_EQ(SequenceLength("\xE2\x82", 0), 0u);          // truncated
  EXPECT_EQ(SequenceLength("\xA9", 0), 0u);              // a lone continuation byte
}

TEST(Utf8, IsValidFollowsRfc3629) {
  EXPECT_TRUE(IsValid(""));
  EXPECT_TRUE(IsValid("plain"));
  EXPECT_TRUE(IsValid("caf\xC3\xA9"));
  EXPECT_TRUE(IsValid("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF"));
  EXPECT_FALSE(IsValid("caf\xE9"));
  EXPECT_FALSE(IsValid("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValid("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(IsValid("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValid("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValid("\xF8\x88\x80\x80\x80"));
  EXPECT_FALSE(IsValid("\x80"));
  EXPECT_FALSE(IsValid("\xE2\x82"));  // truncated
  EXPECT_FALSE(IsValid("\xC3("));
}

}  // namespace
}  // namespace evo::utf8
