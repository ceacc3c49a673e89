// Text forms of a 64-bit ID: decimal, Crockford base32 and hex.
#include <array>
#include <charconv>

#include <fmt/format.h>

#include "ids/ids.hpp"
#include "ids/internal.hpp"

namespace evo::ids {
namespace {

constexpr uint64_t kMaxId = (uint64_t{1} << 63) - 1;
constexpr size_t kBase32Chars = 13;
constexpr size_t kHexChars = 16;
constexpr std::string_view kHexDigits = "0123456789abcdef";

constexpr std::array<int16_t, 256> MakeCrockfordTable() {
  std::array<int16_t, 256> table{};
  for (auto& v : table) {
    v = -1;
  }
  for (size_t i = 0; i < internal::kCrockford.size(); ++i) {
    const char c = internal::kCrockford[i];
    table[static_cast<unsigned char>(c)] = static_cast<int16_t>(i);
    if (c >= 'A' && c <= 'Z') {
      table[static_cast<unsigned char>(c - 'A' + 'a')] = static_cast<int16_t>(i);
    }
  }
  // Crockford's aliases for the letters left out because they read like digits.
  for (char c : {'I', 'i', 'L', 'l'}) {
    table[static_cast<unsigned char>(c)] = 1;
  }
  for (char c : {'O', 'o'}) {
    table[static_cast<unsigned char>(c)] = 0;
  }
  return table;
}
constexpr std::array<int16_t, 256> kCrockfordTable = MakeCrockfordTable();

bool AllDigits(std::string_view text) {
  if (text.empty()) {
    return false;
  }
  for (char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

Status Malformed(std::string_view text, std::string_view what) {
  return InvalidArgumentError(fmt::format("\"{}\" is not {}", internal::Excerpt(text), what))
      .With(kPayloadReason, "MALFORMED_ID");
}

StatusOr<Id> DecodeDecimal(std::string_view text) {
  // Digits only: no sign, no spaces, no exponent. 19 digits hold every 63-bit value.
  if (!AllDigits(text) || text.size() > 19) {
    return Malformed(text, "a decimal ID (1..19 digits, at most 9223372036854775807)");
  }
  uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);  // cannot overflow: <= 19 digits
  if (value > kMaxId) {
    return Malformed(text, "a decimal ID (1..19 digits, at most 9223372036854775807)");
  }
  return value;
}

StatusOr<Id> DecodeBase32(std::string_view text) {
  constexpr std::string_view kWhat = "a base32 ID (13 Crockford characters, at most 7ZZZZZZZZZZZZ)";
  if (text.size() != kBase32Chars) {
    return Malformed(text, kWhat);
  }
  uint64_t value = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const int v = static_cast<int>(kCrockfordTable[static_cast<unsigned char>(text[i])]);
    // The first character carries bits 60..64; only 0..7 keep the value below 2^63.
    if (v < 0 || (i == 0 && v > 7)) {
      return Malformed(text, kWhat);
    }
    value = (value << 5) | static_cast<uint64_t>(v);
  }
  return value;
}

StatusOr<Id> DecodeHex(std::string_view text) {
  constexpr std::string_view kWhat = "a hex ID (16 hex digits, at most 7fffffffffffffff)";
  if (text.size() != kHexChars) {
    return Malformed(text, kWhat);
  }
  uint64_t value = 0;
  for (char c : text) {
    int v = -1;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    }
    if (v < 0) {
      return Malformed(text, kWhat);
    }
    value = (value << 4) | static_cast<uint64_t>(v);
  }
  if (value > kMaxId) {
    return Malformed(text, kWhat);
  }
  return value;
}

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) {
      return false;
    }
  }
  return true;
}

}  // namespace

StatusOr<Format> ParseFormat(std::string_view name) {
  for (Format f : {Format::kDecimal, Format::kBase32, Format::kHex}) {
    if (EqualsIgnoreCase(name, FormatName(f))) {
      return f;
    }
  }
  return InvalidArgumentError(fmt::format("format must be one of decimal, base32, hex; got \"{}\"",
                                          internal::Excerpt(name)));
}

std::string_view FormatName(Format format) {
  switch (format) {
    case Format::kDecimal:
      return "decimal";
    case Format::kBase32:
      return "base32";
    case Format::kHex:
      return "hex";
  }
  return "decimal";
}

std::string Encode(Id id, Format format) {
  switch (format) {
    case Format::kBase32: {
      std::string out(kBase32Chars, '0');
      for (size_t i = 0; i < kBase32Chars; ++i) {
        out[i] = internal::kCrockford[(id >> (60 - 5 * i)) & 31];
      }
      return out;
    }
    case Format::kHex: {
      std::string out(kHexChars, '0');
      for (size_t i = 0; i < kHexChars; ++i) {
        out[i] = kHexDigits[(id >> (60 - 4 * i)) & 15];
      }
      return out;
    }
    case Format::kDecimal:
      break;
  }
  char buf[20];
  const auto result = std::to_chars(buf, buf + sizeof(buf), id);
  return std::string(buf, result.ptr);
}

StatusOr<Id> DecodeText(std::string_view text, Format format) {
  switch (format) {
    case Format::kBase32:
      return DecodeBase32(text);
    case Format::kHex:
      return DecodeHex(text);
    case Format::kDecimal:
      break;
  }
  return DecodeDecimal(text);
}

StatusOr<Id> DecodeAnyText(std::string_view text) {
  if (AllDigits(text)) {
    return DecodeDecimal(text);
  }
  if (text.size() == kBase32Chars) {
    return DecodeBase32(text);
  }
  if (text.size() == kHexChars) {
    return DecodeHex(text);
  }
  return Malformed(text, "an ID (decimal digits, 13 base32 or 16 hex characters)");
}

namespace internal {
int CrockfordValue(char c) {
  return static_cast<int>(kCrockfordTable[static_cast<unsigned char>(c)]);
}
}  // namespace internal

}  // namespace evo::ids
