#include "spam/tokenizer.hpp"

#include <cstdio>
#include <string_view>

namespace evo::spam {
namespace {

// FNV-1a: tokens are short (a few bytes), where it beats the block hashes.
uint64_t HashBytes(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h = (h ^ c) * 0x100000001b3ULL;
  }
  return h;
}

// splitmix64's finaliser: spreads the combination of two hashes over all 64 bits.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

constexpr uint64_t kSubjectSalt = 0x5ab1ec7000000001ULL;
constexpr uint64_t kFromSalt = 0xf7011000000000a1ULL;
uint64_t Pair(uint64_t a, uint64_t b) { return Mix(a * 0x9e3779b97f4a7c15ULL + b); }

bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

bool IsHttpScheme(std::string_view word) {
  constexpr std::string_view kHttps = "https";
  for (size_t k = 0; k < word.size(); ++k) {
    if ((word[k] | 0x20) != kHttps[k]) {
      return false;
    }
  }
  return true;
}

// Length of a currency sign (€ £ ¥ in UTF-8) starting at `i`, or 0.
size_t CurrencySign(std::string_view t, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(t[k]); };
  if (i + 1 < t.size() && b(i) == 0xC2 && (b(i + 1) == 0xA3 || b(i + 1) == 0xA5)) {
    return 2;
  }
  if (i + 2 < t.size() && b(i) == 0xE2 && b(i + 1) == 0x82 && b(i + 2) == 0xAC) {
    return 3;
  }
  return 0;
}

// Calls on_token(std::string_view) for every token of `text` (see the header for the rules).
template <typename F>
void ScanTokens(std::string_view text, const TokenizerOptions& options, F&& on_token) {
  std::string token;
  token.reserve(64);
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (const size_t sign = c >= 0x80 ? CurrencySign(text, i) : 0; sign > 0) {
      on_token(std::string_view("$"));
      i += sign;
      continue;
    }
    if (IsWordByte(c)) {
      token.clear();
      bool digits = true;
      size_t len = 0;
      const size_t start = i;
      while (i < n && IsWordByte(static_cast<unsigned char>(text[i]))) {
        const auto d = static_cast<unsigned char>(text[i]);
        if (d >= 0x80 && CurrencySign(text, i) > 0) {
          break;
        }
        digits = digits && d >= '0' && d <= '9';
        if (len < options.max_token_bytes) {
          token.push_back(static_cast<char>(d >= 'A' && d <= 'Z' ? d + 32 : d));
        }
        ++len;
        ++i;
      }
      if (digits && len > 4) {
        on_token(std::string_view("#n"));
      } else {
        on_token(std::string_view(token));
      }
      // "http://host" also yields "url:host".
      const size_t word = i - start;
      if ((word == 4 || word == 5) && text.substr(i, 3) == "://" &&
          IsHttpScheme(text.substr(start, word))) {
        size_t h = i + 3;
        std::string host = "url:";
        while (h < n && host.size() < 4 + 64) {
          auto d = static_cast<unsigned char>(text[h]);
          if (!(IsWordByte(d) || d == '.' || d == '-')) {
            break;
          }
          host.push_back(static_cast<char>(d >= 'A' && d <= 'Z' ? d + 32 : d));
          ++h;
        }
        if (host.size() > 4) {
          on_token(std::string_view(host));
        }
      }
      continue;
    }
    if (c > ' ' && c < 0x7f) {
      on_token(text.substr(i, 1));
    }
    ++i;
  }
}

// Emits the features of one message through sink(hash, text-producer); `text` is only
// called when the caller wants readable text.
template <typename Sink>
void Features(const Message& message, const TokenizerOptions& options, Sink&& sink) {
  uint64_t previous = 0;
  bool has_previous = false;
  std::string previous_text;
  ScanTokens(message.subject, options, [&](std::string_view token) {
    const uint64_t h = HashBytes(token);
    sink(h, [&] { return std::string(token); });
    sink(Mix(h ^ kSubjectSalt), [&] { return "s:" + std::string(token); });
    if (options.bigrams && has_previous) {
      // Same hash as the body pair: one feature, one text.
      sink(Pair(previous, h), [&] { return previous_text + " " + std::string(token); });
    }
    previous = h;
    has_previous = true;
    if constexpr (Sink::kWantsText) {
      previous_text = token;
    }
  });
  // The sender: its tokens (display name, address, domain parts) in a namespace of their own.
  ScanTokens(message.from, options, [&](std::string_view token) {
    sink(Mix(HashBytes(token) ^ kFromSalt), [&] { return "f:" + std::string(token); });
  });
  has_previous = false;
  size_t body_tokens = 0;
  ScanTokens(message.body, options, [&](std::string_view token) {
    ++body_tokens;
    const uint64_t h = HashBytes(token);
    sink(h, [&] { return std::string(token); });
    if (options.bigrams && has_previous) {
      sink(Pair(previous, h), [&] { return previous_text + " " + std::string(token); });
    }
    previous = h;
    has_previous = true;
    if constexpr (Sink::kWantsText) {
      previous_text = token;
    }
  });
  if (options.length_feature) {
    // ceil(log2(tokens + 1)): buckets 0, 1, 2, 3, 4... hold 0, 1, 2-3, 4-7, 8-15... tokens.
    int bucket = 0;
    while (bucket < 40 && (size_t{1} << bucket) < body_tokens + 1) {
      ++bucket;
    }
    char text[16];
    const int n = std::snprintf(text, sizeof text, "#len:%d", bucket);
    const std::string_view t(text, static_cast<size_t>(n));
    sink(HashBytes(t), [&] { return std::string(t); });
  }
}

struct HashSink {
  static constexpr bool kWantsText = false;
  std::vector<uint64_t>& out;
  template <typename T>
  void operator()(uint64_t h, T&& /*text*/) {
    out.push_back(h);
  }
};

struct TextSink {
  static constexpr bool kWantsText = true;
  std::vector<std::pair<uint64_t, std::string>>& out;
  std::span<const uint64_t> only;  // sorted; empty = every feature
  std::vector<bool> done;          // per element of `only`
  uint64_t filter = 0;             // bit h % 64 set for each h in `only`
  template <typename T>
  void operator()(uint64_t h, T&& text) {
    if (only.empty()) {
      out.emplace_back(h, text());
      return;
    }
    if ((filter & (uint64_t{1} << (h & 63))) == 0) {
      return;  // not wanted (the usual case): one test, no search
    }
    const auto it = std::lower_bound(only.begin(), only.end(), h);
    if (it != only.end() && *it == h && !done[static_cast<size_t>(it - only.begin())]) {
      done[static_cast<size_t>(it - only.begin())] = true;
      out.emplace_back(h, text());
    }
  }
};

}  // namespace

Status Validate(const TokenizerOptions& options) {
  if (options.max_token_bytes < 1 || options.max_token_bytes > 1024) {
    return InvalidArgumentError("max_token_bytes must be 1..1024");
  }
  return OkStatus();
}

void ExtractFeatures(const Message& message, const TokenizerOptions& options,
                     std::vector<uint64_t>& out) {
  Features(message, options, HashSink{out});
}

void ExtractFeatureTexts(const Message& message, const TokenizerOptions& options,
                         std::vector<std::pair<uint64_t, std::string>>& out,
                         std::span<const uint64_t> only) {
  uint64_t filter = 0;
  for (uint64_t h : only) {
    filter |= uint64_t{1} << (h & 63);
  }
  Features(message, options, TextSink{out, only, std::vector<bool>(only.size(), false), filter});
}

std::vector<std::string> Tokens(const Message& message, const TokenizerOptions& options) {
  std::vector<std::string> out;
  ScanTokens(message.subject, options,
             [&](std::string_view t) { out.push_back("s:" + std::string(t)); });
  ScanTokens(message.from, options,
             [&](std::string_view t) { out.push_back("f:" + std::string(t)); });
  ScanTokens(message.body, options, [&](std::string_view t) { out.emplace_back(t); });
  return out;
}

}  // namespace evo::spam
