// Test helpers of the spam module: a small synthetic corpus whose classes are told apart by
// their vocabulary, probe messages, and a temporary directory. Header-only, for the *_test.cpp
// files of this folder.
#pragma once

#include <stdlib.h>  // mkdtemp

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/temp_dir.hpp"
#include "spam/classifier.hpp"
#include "spam/eval.hpp"
#include "spam/message.hpp"
#include "spam/model.hpp"

namespace evo::spam::testing {

inline const std::vector<std::string_view>& SpamWords() {
  static const std::vector<std::string_view> words = {
      "viagra", "cheap", "pills",    "offer",    "free", "money",   "click",
      "winner", "prize", "discount", "pharmacy", "deal", "limited", "bonus"};
  return words;
}

inline const std::vector<std::string_view>& HamWords() {
  static const std::vector<std::string_view> words = {
      "meeting", "schedule", "report",   "project", "budget",   "review", "team",
      "agenda",  "minutes",  "deadline", "draft",   "contract", "office", "call"};
  return words;
}

// Words both classes use about as often.
inline const std::vector<std::string_view>& SharedWords() {
  static const std::vector<std::string_view> words = {"the",  "and",  "for",    "you",
                                                      "this", "with", "please", "today"};
  return words;
}

// One synthetic raw message ("Subject: ...\nbody\n") drawn from the class vocabulary.
inline std::string SyntheticText(bool spam, std::mt19937_64& rng) {
  const auto& own = spam ? SpamWords() : HamWords();
  const auto pick = [&](const std::vector<std::string_view>& words) {
    return std::string(words[rng() % words.size()]);
  };
  std::string text = "Subject: " + pick(own) + " " + pick(own) + "\n";
  for (int i = 0; i < 12; ++i) {
    text += (i % 3 == 2 ? pick(SharedWords()) : pick(own));
    text += i == 11 ? "\n" : " ";
  }
  return text;
}

// `spam` spam and `ham` ham messages, interleaved (spam first), the same for the same seed.
// Names are empty (inline messages).
inline std::vector<LabeledText> SyntheticCorpus(size_t spam = 30, size_t ham = 30,
                                                uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::vector<LabeledText> out;
  for (size_t s = 0, h = 0; s < spam || h < ham;) {
    if (s < spam) {
      out.push_back({"", SyntheticText(true, rng), true});
      ++s;
    }
    if (h < ham) {
      out.push_back({"", SyntheticText(false, rng), false});
      ++h;
    }
  }
  return out;
}

inline std::vector<Example> SyntheticExamples(size_t spam = 30, size_t ham = 30, uint64_t seed = 7,
                                              const TokenizerOptions& options = {}) {
  std::vector<Example> out;
  for (const LabeledText& t : SyntheticCorpus(spam, ham, seed)) {
    out.push_back(MakeExample(ParseMessage(t.text), t.spam, options));
  }
  return out;
}

// Messages not in the corpus, worded like it, plus one of words it never saw.
inline const std::vector<std::string>& SpamProbes() {
  static const std::vector<std::string> probes = {
      "Subject: cheap viagra\nbuy cheap pills now, free offer for you\n",
      "Subject: you are a winner\nclick to claim your prize money and bonus\n",
      "Subject: pharmacy discount\nlimited deal on pills today\n"};
  return probes;
}

inline const std::vector<std::string>& HamProbes() {
  static const std::vector<std::string> probes = {
      "Subject: meeting agenda\nplease review the project report before the meeting\n",
      "Subject: budget draft\nthe team call about the contract deadline is today\n",
      "Subject: minutes\nschedule for the office review and the budget\n"};
  return probes;
}

inline std::vector<std::string> AllProbes() {
  std::vector<std::string> out = SpamProbes();
  out.insert(out.end(), HamProbes().begin(), HamProbes().end());
  out.emplace_back("Subject: quarterly zebra\nunrelated xylophone words 1234567 here\n");
  return out;
}

inline std::vector<uint64_t> Features(std::string_view raw, const TokenizerOptions& options = {}) {
  std::vector<uint64_t> out;
  ExtractFeatures(ParseMessage(raw), options, out);
  return out;
}

using evo::testing::TempDir;

}  // namespace evo::spam::testing
