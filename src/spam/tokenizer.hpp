// Tokeniser of the spam module: turns a parsed message (message.hpp) into feature hashes.
//
// Tokens: runs of ASCII letters/digits and non-ASCII (UTF-8) bytes, case-folded (ASCII), cut
// to `max_token_bytes`; every other printable ASCII character is a token of its own ("!",
// "$", "-", ...), because punctuation carries signal and because it makes raw text and
// pre-tokenised corpora ("http : / / www . x . com") produce the same tokens. Normalised:
// digit runs longer than 4 become "#n"; the currency signs €, £ and ¥ become "$"; an
// "http(s)://host" URL also yields "url:host".
//
// Features (64-bit hashes): every body token, every pair of adjacent body tokens
// ("click here"), every subject token twice — as itself and prefixed ("s:free") — every
// pair of adjacent subject tokens, every token of the From header prefixed ("f:example"), and
// the message length as a power-of-two bucket of body
// tokens ("#len:7" for 64..127). Deterministic: the same message always gives the same
// features, on every machine.
//
// Thread safety: free functions without shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/status.hpp"
#include "spam/message.hpp"

namespace evo::spam {

struct TokenizerOptions {
  size_t max_token_bytes = 32;  // longer tokens are cut to this many bytes
  bool bigrams = true;          // adjacent-token pairs as features
  bool length_feature = true;   // one "#len:k" feature, k = ceil(log2(body tokens + 1))
};

// InvalidArgument unless 1 <= max_token_bytes <= 1024.
Status Validate(const TokenizerOptions& options);

// Appends the features of `message` to `out` in order of appearance; a feature that occurs
// n times is appended n times (term frequency).
void ExtractFeatures(const Message& message, const TokenizerOptions& options,
                     std::vector<uint64_t>& out);

// The same features with readable text ("viagra", "s:free", "click here"): for explanations.
// When `only` is given, texts are made only for the hashes in it (sorted ascending), once
// each: the cheap way to name a few features.
void ExtractFeatureTexts(const Message& message, const TokenizerOptions& options,
                         std::vector<std::pair<uint64_t, std::string>>& out,
                         std::span<const uint64_t> only = {});

// The tokens alone, in order (subject tokens prefixed "s:", then From tokens prefixed "f:",
// then the body): for tests and tools.
std::vector<std::string> Tokens(const Message& message, const TokenizerOptions& options);

}  // namespace evo::spam
