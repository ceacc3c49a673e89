#include "spam/charset.hpp"

#include <iconv.h>
#include <uninorm.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/utf8.hpp"

namespace evo::spam {
namespace {

// Windows-1252 0x80..0x9F; the five unassigned bytes map to the C1 control of the same value.
constexpr std::array<uint16_t, 32> kCp1252High = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

// A charset name is at most this long (IANA's longest is 45); a longer one is garbage.
constexpr size_t kMaxCharsetName = 64;

// The charset name lower-cased, without an RFC 2231 "*language" suffix and surrounding white
// space; "" when it holds a character no charset name has (so that nothing such as iconv's
// "//TRANSLIT" suffix reaches iconv_open).
std::string CanonicalCharset(std::string_view charset) {
  charset = charset.substr(0, charset.find('*'));
  while (!charset.empty() && (charset.front() == ' ' || charset.front() == '\t')) {
    charset.remove_prefix(1);
  }
  while (!charset.empty() && (charset.back() == ' ' || charset.back() == '\t')) {
    charset.remove_suffix(1);
  }
  if (charset.size() > kMaxCharsetName) {
    return {};
  }
  std::string out;
  out.reserve(charset.size());
  for (char c : charset) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                    c == '.' || c == ':';
    if (c >= 'A' && c <= 'Z') {
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else if (ok) {
      out.push_back(c);
    } else {
      return {};
    }
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.starts_with(prefix); }

// The length of the all-ASCII prefix of `s`, eight bytes at a time: most mail is ASCII, and
// every function here starts by skipping it.
size_t AsciiPrefix(std::string_view s) {
  constexpr uint64_t kHighBits = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t word = 0;
    std::memcpy(&word, s.data() + i, 8);
    if ((word & kHighBits) != 0) {
      break;
    }
  }
  while (i < s.size() && static_cast<uint8_t>(s[i]) < 0x80) {
    ++i;
  }
  return i;
}

// Names mail uses for a charset that iconv knows under another name, or whose superset
// senders really mean (as browsers read them).
std::string_view IconvName(std::string_view canonical) {
  struct Alias {
    std::string_view mail;
    std::string_view iconv;
  };
  static constexpr Alias kAliases[] = {{"gb2312", "GB18030"},
                                       {"gbk", "GB18030"},
                                       {"x-gbk", "GB18030"},
                                       {"euc-cn", "GB18030"},
                                       {"cp936", "GB18030"},
                                       {"shift_jis", "CP932"},
                                       {"shift-jis", "CP932"},
                                       {"x-sjis", "CP932"},
                                       {"sjis", "CP932"},
                                       {"ks_c_5601-1987", "CP949"},
                                       {"euc-kr", "CP949"},
                                       {"iso-8859-8-i", "ISO-8859-8"},
                                       {"x-mac-roman", "MACINTOSH"},
                                       {"unicode-1-1-utf-7", "UTF-7"},
                                       {"big5", "BIG5-HKSCS"},
                                       {"iso-8859-11", "TIS-620"},
                                       {"windows-874", "CP874"}};
  for (const Alias& a : kAliases) {
    if (canonical == a.mail) {
      return a.iconv;
    }
  }
  return canonical;
}

bool IsUtf8OrAscii(std::string_view canonical) {
  static constexpr std::string_view kNames[] = {
      "",          "utf-8", "utf8",      "us-ascii",     "ascii",          "ansi_x3.4-1968",
      "iso646-us", "us",    "x-unknown", "unknown-8bit", "x-user-defined", "default"};
  return std::find(std::begin(kNames), std::end(kNames), canonical) != std::end(kNames);
}

struct IconvCloser {
  void operator()(void* cd) const { iconv_close(static_cast<iconv_t>(cd)); }
};

// Converts `bytes` from `charset` (an iconv name) to UTF-8 into `out`; a byte iconv refuses
// (or a truncated sequence at the end) is read as windows-1252 and the conversion resumes
// after it. Returns false, appending nothing, when iconv does not know the charset.
bool AppendByIconv(std::string_view bytes, const std::string& charset, std::string* out) {
  iconv_t raw = iconv_open("UTF-8", charset.c_str());
  if (reinterpret_cast<intptr_t>(raw) == -1) {
    return false;
  }
  const std::unique_ptr<void, IconvCloser> cd(raw);
  // iconv's POSIX signature takes the input as char** but does not write through it.
  char* in = const_cast<char*>(bytes.data());
  size_t in_left = bytes.size();
  size_t used = out->size();
  out->resize(used + bytes.size() * 2 + 16);
  // One iconv call, growing the output while it is too small; returns errno or 0.
  const auto convert = [&](char** src, size_t* src_left) {
    for (;;) {
      char* dst = out->data() + used;
      size_t dst_left = out->size() - used;
      const size_t r = iconv(raw, src, src_left, &dst, &dst_left);
      const int error = r == static_cast<size_t>(-1) ? errno : 0;
      used = out->size() - dst_left;
      if (error != E2BIG) {
        return error;
      }
      out->resize(out->size() * 2);
    }
  };
  while (in_left > 0) {
    if (convert(&in, &in_left) != 0 && in_left > 0) {
      // EILSEQ, or EINVAL for a sequence truncated at the end: this byte as windows-1252.
      out->resize(used);
      AppendUtf8(FromCp1252(static_cast<uint8_t>(*in)), out);
      used = out->size();
      out->resize(used + in_left * 2 + 16);
      ++in;
      --in_left;
      iconv(raw, nullptr, nullptr, nullptr, nullptr);  // back to the initial shift state
    }
  }
  convert(nullptr, nullptr);  // writes a closing shift sequence, if the charset has one
  out->resize(used);
  return true;
}

}  // namespace

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t FromCp1252(uint8_t byte) {
  return (byte >= 0x80 && byte < 0xA0) ? kCp1252High[byte - 0x80] : byte;
}

bool HasHighBytes(std::string_view s) { return AsciiPrefix(s) < s.size(); }

bool IsWindows1252(std::string_view charset) {
  static constexpr std::string_view kNames[] = {
      "iso-8859-1", "iso8859-1", "iso_8859-1", "iso-8859-1:1987", "latin1",
      "latin-1",    "l1",        "cp819",      "ibm819",          "windows-1252",
      "cp1252",     "x-cp1252",  "cp-1252",    "win-1252"};
  const std::string canonical = CanonicalCharset(charset);
  return std::find(std::begin(kNames), std::end(kNames), canonical) != std::end(kNames);
}

bool IsAsciiIncompatible(std::string_view charset) {
  const std::string c = CanonicalCharset(charset);
  return StartsWith(c, "utf-16") || StartsWith(c, "utf16") || StartsWith(c, "utf-32") ||
         StartsWith(c, "utf32") || StartsWith(c, "ucs-2") || StartsWith(c, "ucs-4") ||
         StartsWith(c, "utf-7") || StartsWith(c, "unicode-1-1-utf-7") ||
         StartsWith(c, "iso-2022") || StartsWith(c, "hz");
}

void AppendRepairedUtf8(std::string_view bytes, std::string* out) {
  out->reserve(out->size() + bytes.size() + bytes.size() / 4);
  size_t run = 0;  // start of the pending valid run
  size_t i = 0;
  while (i < bytes.size()) {
    if (static_cast<uint8_t>(bytes[i]) < 0x80) {
      i += AsciiPrefix(bytes.substr(i));
      continue;
    }
    if (const size_t n = utf8::SequenceLength(bytes, i); n > 0) {
      i += n;
      continue;
    }
    out->append(bytes.substr(run, i - run));
    AppendUtf8(FromCp1252(static_cast<uint8_t>(bytes[i])), out);
    run = ++i;
  }
  out->append(bytes.substr(run));
}

void AppendInCharset(std::string_view bytes, std::string_view charset, std::string* out) {
  const bool incompatible = IsAsciiIncompatible(charset);
  if (!incompatible && !HasHighBytes(bytes)) {
    out->append(bytes);
    return;
  }
  if (IsWindows1252(charset)) {
    out->reserve(out->size() + bytes.size() + bytes.size() / 4);
    size_t run = 0;  // start of the pending ASCII run
    for (size_t i = 0; i < bytes.size(); ++i) {
      const auto byte = static_cast<uint8_t>(bytes[i]);
      if (byte >= 0x80) {
        out->append(bytes.substr(run, i - run));
        AppendUtf8(FromCp1252(byte), out);
        run = i + 1;
      }
    }
    out->append(bytes.substr(run));
    return;
  }
  const std::string canonical = CanonicalCharset(charset);
  if (IsUtf8OrAscii(canonical) || !AppendByIconv(bytes, std::string(IconvName(canonical)), out)) {
    AppendRepairedUtf8(bytes, out);
  }
}

bool UndoLatin1(std::string_view text, std::string* bytes) {
  bool high = false;
  for (size_t i = AsciiPrefix(text); i < text.size(); ++i) {
    const auto c = static_cast<uint8_t>(text[i]);
    if (c < 0x80) {
      continue;
    }
    // U+0080..U+00FF is C2 or C3 and one continuation byte.
    if ((c != 0xC2 && c != 0xC3) || i + 1 >= text.size() ||
        (static_cast<uint8_t>(text[i + 1]) & 0xC0) != 0x80) {
      return false;
    }
    high = true;
    ++i;
  }
  if (!high) {
    return false;
  }
  bytes->clear();
  bytes->reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<uint8_t>(text[i]);
    if (c < 0x80) {
      bytes->push_back(static_cast<char>(c));
    } else {
      bytes->push_back(static_cast<char>(((c & 0x03) << 6) | (text[++i] & 0x3F)));
    }
  }
  return true;
}

void NormalizeText(std::string* text) {
  // One scan decides: all ASCII (the usual case) needs nothing; valid UTF-8 without C1
  // controls and without a code point from U+0300 up (below it, every string is in NFC)
  // needs nothing either.
  bool repair = false;
  bool maybe_not_nfc = false;
  const std::string_view s = *text;
  for (size_t i = AsciiPrefix(s); i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      i += AsciiPrefix(s.substr(i));
      continue;
    }
    const size_t n = utf8::SequenceLength(s, i);
    if (n == 0 || (c == 0xC2 && static_cast<uint8_t>(s[i + 1]) < 0xA0)) {
      repair = true;
      break;
    }
    maybe_not_nfc = maybe_not_nfc || c >= 0xCC;
    i += n;
  }
  if (repair) {
    std::string out;
    out.reserve(s.size() + s.size() / 4);
    size_t run = 0;
    size_t i = 0;
    while (i < s.size()) {
      const auto c = static_cast<uint8_t>(s[i]);
      const size_t n = c < 0x80 ? 1 : utf8::SequenceLength(s, i);
      uint32_t replacement = 0;
      if (n == 0) {
        replacement = FromCp1252(c);  // not UTF-8: windows-1252
      } else if (c == 0xC2 && static_cast<uint8_t>(s[i + 1]) < 0xA0) {
        replacement = FromCp1252(static_cast<uint8_t>(s[i + 1]));  // a C1 control
      } else {
        maybe_not_nfc = maybe_not_nfc || c >= 0xCC;
        i += n;
        continue;
      }
      out.append(s.substr(run, i - run));
      AppendUtf8(replacement, &out);
      maybe_not_nfc = maybe_not_nfc || replacement >= 0x300;
      i += n == 0 ? 1 : n;
      run = i;
    }
    out.append(s.substr(run));
    *text = std::move(out);
  }
  if (!maybe_not_nfc) {
    return;
  }
  size_t length = 0;
  uint8_t* nfc = u8_normalize(UNINORM_NFC, reinterpret_cast<const uint8_t*>(text->data()),
                              text->size(), nullptr, &length);
  if (nfc == nullptr) {
    return;  // out of memory: the text stays as it is, valid UTF-8 all the same
  }
  text->assign(reinterpret_cast<const char*>(nfc), length);
  std::free(nfc);  // libunistring allocates with malloc
}

}  // namespace evo::spam
