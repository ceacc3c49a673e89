#include "spam/charset.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace evo::spam {
namespace {

std::string InCharset(std::string_view bytes, std::string_view charset) {
  std::string out = "<";
  AppendInCharset(bytes, charset, &out);
  return out + ">";
}

std::string Repaired(std::string_view bytes) {
  std::string out;
  AppendRepairedUtf8(bytes, &out);
  return out;
}

std::string Normalized(std::string text) {
  NormalizeText(&text);
  return text;
}

// Each byte of `bytes` as the code point of the same value, in UTF-8: what a client sends
// that decodes a file as Latin-1.
std::string Latin1ToUtf8(std::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    AppendUtf8(static_cast<uint8_t>(c), &out);
  }
  return out;
}

TEST(Charset, DeclaredCharsetsAreDecodedByIconv) {
  EXPECT_EQ(InCharset("\xD0\xD2\xC9\xD7\xC5\xD4", "koi8-r"),
            "<\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82>");  // привет
  EXPECT_EQ(InCharset("\xA3\xF3"
                      "d\xBC",
                      "ISO-8859-2"),
            "<\xC5\x81\xC3\xB3"
            "d\xC5\xBA>");                                                           // Łódź
  EXPECT_EQ(InCharset("\xD6\xD0\xCE\xC4", "gb2312"), "<\xE4\xB8\xAD\xE6\x96\x87>");  // 中文
  EXPECT_EQ(InCharset("\x93\xFA\x96{\x8C\xEA", "shift_jis"),
            "<\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E>");  // 日本語
  EXPECT_EQ(InCharset("\xC7\xD1\xB1\xB9\xBE\xEE", "euc-kr"),
            "<\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4>");  // 한국어
  // An RFC 2231 language suffix and surrounding white space are ignored.
  EXPECT_EQ(InCharset("\xD0\xD2", " koi8-r*ru "), "<\xD0\xBF\xD1\x80>");
}

TEST(Charset, AsciiIncompatibleCharsetsAreDecodedWithoutHighBytes) {
  // utf-16 with a byte order mark, and little-endian without one.
  EXPECT_EQ(InCharset(std::string("\xFF\xFEG\0r\0\xFC\0\xDF\0e\0", 12), "utf-16"),
            "<Gr\xC3\xBC\xC3\x9F"
            "e>");
  EXPECT_EQ(InCharset(std::string("h\0i\0", 4), "UTF-16LE"), "<hi>");
  // iso-2022-jp is 7-bit, with escape sequences.
  EXPECT_EQ(InCharset("\x1B$BF|K\\\x1B(B", "iso-2022-jp"), "<\xE6\x97\xA5\xE6\x9C\xAC>");  // 日本
  EXPECT_TRUE(IsAsciiIncompatible("UTF-16BE"));
  EXPECT_FALSE(IsAsciiIncompatible("koi8-r"));
}

TEST(Charset, Windows1252AndLatin1) {
  EXPECT_EQ(InCharset("\x80 caf\xE9 \x92", "iso-8859-1"),
            "<\xE2\x82\xAC caf\xC3\xA9 \xE2\x80\x99>");  // read as windows-1252, as browsers do
  EXPECT_EQ(InCharset("\x80", "Windows-1252"), "<\xE2\x82\xAC>");
  EXPECT_TRUE(IsWindows1252("latin1"));
  EXPECT_FALSE(IsWindows1252("iso-8859-15"));
}

TEST(Charset, UnknownCharsetsAndUndeclaredBytesFallBackToWindows1252) {
  EXPECT_EQ(InCharset("caf\xE9", "x-no-such-charset"), "<caf\xC3\xA9>");
  EXPECT_EQ(InCharset("caf\xE9", ""), "<caf\xC3\xA9>");
  EXPECT_EQ(InCharset("caf\xE9", "us-ascii"), "<caf\xC3\xA9>");
  EXPECT_EQ(InCharset("caf\xE9", "utf-8"), "<caf\xC3\xA9>");
  // A name iconv could misread (its "//TRANSLIT" suffix, garbage) is not a charset.
  EXPECT_EQ(InCharset("\xE9", "koi8-r//TRANSLIT"), "<\xC3\xA9>");
  EXPECT_EQ(InCharset("\xE9", std::string(100, 'a')), "<\xC3\xA9>");
  // Valid UTF-8 in undeclared text stays as it is; ASCII in any compatible charset too.
  EXPECT_EQ(InCharset("caf\xC3\xA9", ""), "<caf\xC3\xA9>");
  EXPECT_EQ(InCharset("plain", "koi8-r"), "<plain>");
}

TEST(Charset, BytesIconvRefusesAreReadAsWindows1252AndTheRestIsDecoded) {
  // 0x80 starts no shift_jis character; 0x93 0xFA is 日; a truncated lead byte at the end.
  EXPECT_EQ(InCharset("\x80\x93\xFA\x93", "shift_jis"), "<\xE2\x82\xAC\xE6\x97\xA5\xE2\x80\x9C>");
  // utf-16 with an odd byte at the end.
  EXPECT_EQ(InCharset(std::string("h\0i\0\xE9", 5), "utf-16le"), "<hi\xC3\xA9>");
}

TEST(Charset, InvalidUtf8IsRepairedByteByByte) {
  EXPECT_EQ(Repaired("plain ascii"), "plain ascii");
  EXPECT_EQ(Repaired("caf\xC3\xA9"), "caf\xC3\xA9");  // valid: unchanged
  EXPECT_EQ(Repaired("caf\xE9 \xC3\xA9 \x93quoted\x94"),
            "caf\xC3\xA9 \xC3\xA9 \xE2\x80\x9Cquoted\xE2\x80\x9D");
  // Overlong forms and surrogates are not UTF-8: each byte is windows-1252.
  EXPECT_EQ(Repaired("\xC0\xAF"), "\xC3\x80\xC2\xAF");
  EXPECT_EQ(Repaired("\xED\xA0\x80"), "\xC3\xAD\xC2\xA0\xE2\x82\xAC");
  EXPECT_EQ(Repaired(std::string("a\0b", 3)), std::string("a\0b", 3));  // NUL is data
}

TEST(Charset, UndoLatin1) {
  std::string bytes;
  EXPECT_TRUE(UndoLatin1("caf\xC3\xA9 \xC2\x92", &bytes));
  EXPECT_EQ(bytes, "caf\xE9 \x92");
  EXPECT_TRUE(UndoLatin1(std::string("\xC3\xA9\0", 3), &bytes));
  EXPECT_EQ(bytes, std::string("\xE9\0", 2));
  EXPECT_FALSE(UndoLatin1("ascii only", &bytes));
  EXPECT_FALSE(UndoLatin1("\xE2\x82\xAC above U+00FF", &bytes));
  EXPECT_FALSE(UndoLatin1("caf\xE9 not UTF-8", &bytes));
  EXPECT_FALSE(UndoLatin1("\xC3", &bytes));  // truncated
  // Whatever the bytes, decoding them as Latin-1 and undoing it gives them back.
  std::string all;
  for (int b = 0; b < 256; ++b) {
    all.push_back(static_cast<char>(b));
  }
  EXPECT_TRUE(UndoLatin1(Latin1ToUtf8(all), &bytes));
  EXPECT_EQ(bytes, all);
}

TEST(Charset, NormalizeText) {
  EXPECT_EQ(Normalized("plain ascii"), "plain ascii");
  EXPECT_EQ(Normalized("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(Normalized("caf\xE9"), "caf\xC3\xA9");  // invalid UTF-8: windows-1252
  // C1 controls are the windows-1252 characters of the same byte (a right quote, the euro).
  EXPECT_EQ(Normalized("don\xC2\x92t \xC2\x80"), "don\xE2\x80\x99t \xE2\x82\xAC");
  EXPECT_EQ(Normalized("\xC2\x81"), "\xC2\x81");  // unassigned in windows-1252: kept
  // NFC: a combining accent joins its letter; conjoining Hangul jamo become one syllable.
  EXPECT_EQ(Normalized("cafe\xCC\x81"), "caf\xC3\xA9");
  EXPECT_EQ(Normalized("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");
  EXPECT_EQ(Normalized("\xE2\x84\xAB"), "\xC3\x85");  // ANGSTROM SIGN -> A WITH RING
  // Both at once: a stray byte and a decomposed letter.
  EXPECT_EQ(Normalized("\xE9 e\xCC\x81"), "\xC3\xA9 \xC3\xA9");
  EXPECT_EQ(Normalized(std::string("a\0\xCC\x81", 4)), std::string("a\0\xCC\x81", 4));
}

}  // namespace
}  // namespace evo::spam
