#include "spam/tokenizer.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "spam/message.hpp"

namespace evo::spam {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// UTF-8 currency signs, as strings to concatenate (a hex escape would swallow a digit after it).
constexpr char kEuro[] = "\xE2\x82\xAC";
constexpr char kPound[] = "\xC2\xA3";
constexpr char kYen[] = "\xC2\xA5";

Message Body(std::string body) { return Message{.subject = "", .body = std::move(body)}; }

std::vector<std::string> BodyTokens(std::string body, const TokenizerOptions& options = {}) {
  return Tokens(Body(std::move(body)), options);
}

// Options without the message-length feature, for tests that count token features.
TokenizerOptions TokensOnly(bool bigrams = true) {
  TokenizerOptions options;
  options.bigrams = bigrams;
  options.length_feature = false;
  return options;
}

std::vector<uint64_t> FeaturesOf(const Message& m, const TokenizerOptions& options = {}) {
  std::vector<uint64_t> out;
  ExtractFeatures(m, options, out);
  return out;
}

std::vector<std::string> TextsOf(const Message& m, const TokenizerOptions& options = {}) {
  std::vector<std::pair<uint64_t, std::string>> pairs;
  ExtractFeatureTexts(m, options, pairs);
  std::vector<std::string> out;
  out.reserve(pairs.size());
  for (auto& [h, t] : pairs) {
    out.push_back(t);
  }
  return out;
}

TEST(Tokenizer, FoldsAsciiCase) {
  EXPECT_THAT(BodyTokens("Hello WORLD mIxEd"), ElementsAre("hello", "world", "mixed"));
}

TEST(Tokenizer, FoldedTokensHashAlike) {
  EXPECT_EQ(FeaturesOf(Body("FREE Money")), FeaturesOf(Body("free money")));
}

TEST(Tokenizer, PunctuationCharactersAreTokensOfTheirOwn) {
  EXPECT_THAT(BodyTokens("buy now!!! (50% off) $5"),
              ElementsAre("buy", "now", "!", "!", "!", "(", "50", "%", "off", ")", "$", "5"));
}

TEST(Tokenizer, WhitespaceAndControlCharactersSeparateButAreNotTokens) {
  EXPECT_THAT(BodyTokens("a\tb\nc\r\nd  e\x01g"), ElementsAre("a", "b", "c", "d", "e", "g"));
}

TEST(Tokenizer, PreTokenisedTextGivesTheSameTokensAsRawText) {
  EXPECT_EQ(BodyTokens("free ! ! ! win $ 100 - now"), BodyTokens("FREE!!! win $100-now"));
}

TEST(Tokenizer, DigitRunsLongerThanFourBecomeNumberToken) {
  EXPECT_THAT(BodyTokens("1234 12345 9876543210 0"), ElementsAre("1234", "#n", "#n", "0"));
}

TEST(Tokenizer, LongDigitRunIsNumberTokenEvenWhenCutToMaxLength) {
  TokenizerOptions options;
  options.max_token_bytes = 3;
  EXPECT_THAT(BodyTokens("1234567", options), ElementsAre("#n"));
}

TEST(Tokenizer, CurrencySignsBecomeDollar) {
  EXPECT_THAT(BodyTokens(std::string(kEuro) + "100 " + kPound + "5 " + kYen + "9 $7"),
              ElementsAre("$", "100", "$", "5", "$", "9", "$", "7"));
}

TEST(Tokenizer, CurrencySignInsideAWordSplitsIt) {
  EXPECT_THAT(BodyTokens(std::string("10") + kEuro + "off"), ElementsAre("10", "$", "off"));
}

TEST(Tokenizer, HttpUrlAlsoYieldsHostToken) {
  EXPECT_THAT(BodyTokens("see http://Example.COM/path now"),
              ElementsAre("see", "http", "url:example.com", ":", "/", "/", "example", ".", "com",
                          "/", "path", "now"));
}

TEST(Tokenizer, HttpsUrlAlsoYieldsHostToken) {
  const std::vector<std::string> tokens = BodyTokens("https://shop-now.example.org:8080/x");
  ASSERT_GE(tokens.size(), 2u);
  EXPECT_EQ(tokens[0], "https");
  EXPECT_EQ(tokens[1], "url:shop-now.example.org");
}

TEST(Tokenizer, HttpWithoutSchemeSeparatorYieldsNoHostToken) {
  for (const char* text : {"http example.com", "http:example.com", "xhttp://a.com"}) {
    for (const std::string& t : BodyTokens(text)) {
      EXPECT_NE(t.rfind("url:", 0), 0u) << text << " gave " << t;
    }
  }
}

TEST(Tokenizer, SchemeThatOnlyStartsWithHttpYieldsNoHostToken) {
  TokenizerOptions options;
  options.max_token_bytes = 4;  // "httpz" is cut to "http", but it is still not http
  bool host = false;
  for (const std::string& t : BodyTokens("httpz://evil.example", options)) {
    host = host || t.rfind("url:", 0) == 0;
  }
  EXPECT_FALSE(host);
}

TEST(Tokenizer, UrlSchemeMatchesInAnyCaseAndDespiteTheLengthCut) {
  EXPECT_THAT(BodyTokens("HTTP://A.COM"),
              ElementsAre("http", "url:a.com", ":", "/", "/", "a", ".", "com"));
  TokenizerOptions options;
  options.max_token_bytes = 4;
  const std::vector<std::string> tokens = BodyTokens("https://x.org", options);
  ASSERT_GE(tokens.size(), 2u);
  EXPECT_EQ(tokens[1], "url:x.org");
}

TEST(Tokenizer, TokensLongerThanMaxAreCut) {
  TokenizerOptions options;
  options.max_token_bytes = 5;
  EXPECT_THAT(BodyTokens("abcdefghij xy", options), ElementsAre("abcde", "xy"));
}

TEST(Tokenizer, DefaultMaxTokenLengthIs32Bytes) {
  const std::string long_word(40, 'q');
  EXPECT_THAT(BodyTokens(long_word), ElementsAre(std::string(32, 'q')));
}

TEST(Tokenizer, TokensCutToTheSameLengthHashAlike) {
  TokenizerOptions options;
  options.max_token_bytes = 4;
  EXPECT_EQ(FeaturesOf(Body("abcdXYZ"), options), FeaturesOf(Body("abcdQQ"), options));
}

TEST(Tokenizer, SubjectTokensComeFirstPrefixed) {
  const Message m{.subject = "Free Money!", .body = "hi there"};
  EXPECT_THAT(Tokens(m, {}), ElementsAre("s:free", "s:money", "s:!", "hi", "there"));
}

TEST(Tokenizer, SameMessageGivesSameFeaturesEveryTime) {
  const Message m{.subject = "Cheap meds",
                  .body = "click http://x.com now, 50% off \xE2\x82\xAC 1000000"};
  const std::vector<uint64_t> first = FeaturesOf(m);
  const Message copy{.subject = std::string(m.subject), .body = std::string(m.body)};
  EXPECT_EQ(FeaturesOf(copy), first);
  EXPECT_EQ(FeaturesOf(m), first);
  EXPECT_FALSE(first.empty());
}

TEST(Tokenizer, FeaturesAreAppendedNotReplaced) {
  std::vector<uint64_t> out = {42};
  ExtractFeatures(Body("a b"), TokensOnly(), out);
  ASSERT_EQ(out.size(), 4u);  // 42, a, b, "a b"
  EXPECT_EQ(out[0], 42u);
}

TEST(Tokenizer, RepeatedTokenIsAppendedOncePerOccurrence) {
  const std::vector<uint64_t> f = FeaturesOf(Body("spam spam spam"), TokensOnly(false));
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0], f[1]);
  EXPECT_EQ(f[1], f[2]);
}

TEST(Tokenizer, BigramsAddOneFeaturePerAdjacentPair) {
  const TokenizerOptions unigrams = TokensOnly(false);
  const Message body_only = Body("click here now");
  EXPECT_EQ(FeaturesOf(body_only, unigrams).size(), 3u);
  EXPECT_EQ(FeaturesOf(body_only, TokensOnly()).size(), 5u);  // + "click here", "here now"

  // Each subject token counts twice (plain and "s:"), plus one feature per subject pair; no
  // pair spans subject and body.
  const Message both{.subject = "big deal", .body = "buy now"};
  EXPECT_EQ(FeaturesOf(both, unigrams).size(), 6u);
  EXPECT_EQ(FeaturesOf(both, TokensOnly()).size(), 8u);
}

TEST(Tokenizer, BigramsOnOrOffChangesTheFeatureCountWithDefaultOptions) {
  const Message m{.subject = "big deal", .body = "buy now or never"};
  TokenizerOptions off;
  off.bigrams = false;
  EXPECT_EQ(FeaturesOf(m, {}).size(), FeaturesOf(m, off).size() + 4);  // 1 subject + 3 body pairs
}

TEST(Tokenizer, SubjectTokenSharesItsPlainFeatureWithTheBody) {
  const TokenizerOptions unigrams = TokensOnly(false);
  const std::vector<uint64_t> subject = FeaturesOf({.subject = "free", .body = ""}, unigrams);
  const std::vector<uint64_t> body = FeaturesOf(Body("free"), unigrams);
  ASSERT_EQ(subject.size(), 2u);
  ASSERT_EQ(body.size(), 1u);
  EXPECT_EQ(subject[0], body[0]);
  EXPECT_NE(subject[1], body[0]);
}

TEST(Tokenizer, FeatureTextsMatchFeatureHashesOneToOne) {
  const Message m{.subject = "Free prize", .body = "Click here: http://win.example.com/now 12345!"};
  for (int variant = 0; variant < 4; ++variant) {
    TokenizerOptions options;
    options.bigrams = (variant & 1) != 0;
    options.length_feature = (variant & 2) != 0;
    const bool bigrams = options.bigrams;
    std::vector<uint64_t> hashes;
    ExtractFeatures(m, options, hashes);
    std::vector<std::pair<uint64_t, std::string>> texts;
    ExtractFeatureTexts(m, options, texts);
    ASSERT_EQ(texts.size(), hashes.size()) << "bigrams=" << bigrams << " variant=" << variant;
    for (size_t i = 0; i < hashes.size(); ++i) {
      EXPECT_EQ(texts[i].first, hashes[i]) << "feature " << i << " \"" << texts[i].second << "\"";
      EXPECT_FALSE(texts[i].second.empty()) << "feature " << i;
    }
  }
}

TEST(Tokenizer, FeatureTextsAreReadable) {
  const Message m{.subject = "free money", .body = "click here"};
  EXPECT_THAT(TextsOf(m, TokensOnly()), ElementsAre("free", "s:free", "money", "s:money",
                                                    "free money", "click", "here", "click here"));
}

TEST(Tokenizer, EqualTextsHaveEqualHashesAndDistinctTextsDistinctHashes) {
  const Message m{.subject = "win win", .body = "win big win big now"};
  std::vector<std::pair<uint64_t, std::string>> texts;
  ExtractFeatureTexts(m, {}, texts);
  for (const auto& [h1, t1] : texts) {
    for (const auto& [h2, t2] : texts) {
      EXPECT_EQ(h1 == h2, t1 == t2) << "\"" << t1 << "\" vs \"" << t2 << "\"";
    }
  }
}

// One hash, one text: otherwise an explanation names a feature after the wrong text. A subject
// pair hashes like the same body pair, so it must read the same.
TEST(Tokenizer, SubjectPairAndTheSameBodyPairAreOneFeatureWithOneText) {
  const Message m{.subject = "free money", .body = "free money"};
  std::vector<std::pair<uint64_t, std::string>> texts;
  ExtractFeatureTexts(m, {}, texts);
  for (const auto& [h1, t1] : texts) {
    for (const auto& [h2, t2] : texts) {
      EXPECT_EQ(h1 == h2, t1 == t2) << "\"" << t1 << "\" vs \"" << t2 << "\"";
    }
  }
}

TEST(Tokenizer, NonAsciiUtf8StaysInsideWords) {
  EXPECT_THAT(BodyTokens("caf\xC3\xA9 cr\xC3\xA8me na\xC3\xAFve"),
              ElementsAre("caf\xC3\xA9", "cr\xC3\xA8me", "na\xC3\xAFve"));
}

TEST(Tokenizer, CaseFoldingIsAsciiOnly) {
  // "CAFÉ": the ASCII letters fold, the É (C3 89) is kept byte for byte.
  EXPECT_THAT(BodyTokens("CAF\xC3\x89"), ElementsAre("caf\xC3\x89"));
}

TEST(Tokenizer, CjkTextIsOneWordUntilPunctuationOrSpace) {
  // 日本語 テスト
  EXPECT_THAT(
      BodyTokens("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xE3\x83\x86\xE3\x82\xB9\xE3\x83\x88!"),
      ElementsAre("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "\xE3\x83\x86\xE3\x82\xB9\xE3\x83\x88",
                  "!"));
}

TEST(Tokenizer, EmptyMessageHasNoTokenFeatures) {
  const Message empty;
  EXPECT_THAT(FeaturesOf(empty, TokensOnly()), IsEmpty());
  EXPECT_THAT(TextsOf(empty, TokensOnly()), IsEmpty());
  EXPECT_THAT(Tokens(empty, {}), IsEmpty());
}

TEST(Tokenizer, EmptyMessageHasOnlyTheLengthFeature) {
  EXPECT_THAT(TextsOf(Message{}), ElementsAre("#len:0"));
}

TEST(Tokenizer, WhitespaceOnlyMessageHasNoTokenFeatures) {
  const Message blank{.subject = "  \t", .body = " \n\r\n  "};
  EXPECT_THAT(FeaturesOf(blank, TokensOnly()), IsEmpty());
  EXPECT_THAT(Tokens(blank, {}), IsEmpty());
  EXPECT_EQ(FeaturesOf(blank), FeaturesOf(Message{}));
}

// k = ceil(log2(body tokens + 1)), as TokenizerOptions::length_feature states.
TEST(Tokenizer, LengthFeatureIsAPowerOfTwoBucketOfBodyTokens) {
  const auto length_text = [](size_t body_tokens) {
    std::string body;
    for (size_t i = 0; i < body_tokens; ++i) {
      body += "w ";
    }
    const std::vector<std::string> texts = TextsOf(Body(body));
    return texts.empty() ? std::string() : texts.back();
  };
  EXPECT_EQ(length_text(0), "#len:0");
  EXPECT_EQ(length_text(1), "#len:1");
  EXPECT_EQ(length_text(2), "#len:2");
  EXPECT_EQ(length_text(3), "#len:2");
  EXPECT_EQ(length_text(4), "#len:3");
  EXPECT_EQ(length_text(7), "#len:3");
  EXPECT_EQ(length_text(8), "#len:4");
  EXPECT_EQ(length_text(127), "#len:7");
  EXPECT_EQ(length_text(128), "#len:8");
}

TEST(Tokenizer, LengthFeatureCountsBodyTokensOnly) {
  const Message with_subject{.subject = "one two three four five", .body = "w"};
  EXPECT_EQ(TextsOf(with_subject).back(), "#len:1");
}

TEST(Tokenizer, LengthFeatureCannotBeForgedByText) {
  // "#", "len", ":" and "0" are tokens of their own: no body text hashes like the feature.
  const std::vector<uint64_t> forged = FeaturesOf(Body("#len:0"), TokensOnly());
  const std::vector<uint64_t> real = FeaturesOf(Message{});
  ASSERT_EQ(real.size(), 1u);
  for (uint64_t h : forged) {
    EXPECT_NE(h, real[0]);
  }
}

TEST(Tokenizer, LengthFeatureOffRemovesExactlyOneFeature) {
  const Message m{.subject = "hi", .body = "some body text here"};
  EXPECT_EQ(FeaturesOf(m).size(), FeaturesOf(m, TokensOnly()).size() + 1);
}

TEST(Tokenizer, DifferentWordsGiveDifferentFeatures) {
  std::set<uint64_t> seen;
  for (const char* w : {"viagra", "meeting", "free", "s", "a", "b", "ab", "ba", "12345", "$"}) {
    const std::vector<uint64_t> f = FeaturesOf(Body(w), TokensOnly());
    ASSERT_EQ(f.size(), 1u) << w;
    EXPECT_TRUE(seen.insert(f[0]).second) << w;
  }
}

TEST(Tokenizer, FromTokensHaveTheirOwnNamespace) {
  Message m;
  m.from = "Pharmacy <promo@deals.example>";
  m.body = "deals";
  std::vector<std::pair<uint64_t, std::string>> texts;
  ExtractFeatureTexts(m, TokenizerOptions{}, texts);
  uint64_t from_deals = 0;
  uint64_t body_deals = 0;
  for (const auto& [h, t] : texts) {
    if (t == "f:deals") {
      from_deals = h;
    } else if (t == "deals") {
      body_deals = h;
    }
  }
  ASSERT_NE(from_deals, 0u);
  ASSERT_NE(body_deals, 0u);
  EXPECT_NE(from_deals, body_deals);
  const std::vector<std::string> tokens = Tokens(m, TokenizerOptions{});
  EXPECT_NE(std::find(tokens.begin(), tokens.end(), "f:promo"), tokens.end());
}

}  // namespace
}  // namespace evo::spam
