#include "core/utf8.hpp"

#include <cstdint>

namespace evo::utf8 {

size_t SequenceLength(std::string_view s, size_t i) {
  const auto c = static_cast<uint8_t>(s[i]);
  if (c < 0x80) {
    return 1;
  }
  const size_t n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) {
      return 0;
    }
  }
  // Table 3-7 of the Unicode standard: the second byte's range depends on the first, which
  // rules out overlong forms, surrogates and code points above U+10FFFF.
  const auto d = static_cast<uint8_t>(s[i + 1]);
  const bool ok = n == 2   ? c >= 0xC2
                  : n == 3 ? !(c == 0xE0 && d < 0xA0) && !(c == 0xED && d >= 0xA0)
                           : c <= 0xF4 && !(c == 0xF0 && d < 0x90) && !(c == 0xF4 && d >= 0x90);
  return ok ? n : 0;
}

bool IsValid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {  // most request bytes: no call
      ++i;
      continue;
    }
    const size_t n = SequenceLength(s, i);
    if (n == 0) {
      return false;
    }
    i += n;
  }
  return true;
}

}  // namespace evo::utf8
