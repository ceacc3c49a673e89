#include "spam/message.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/utf8.hpp"
#include "spam/charset.hpp"

namespace evo::spam {
namespace {

constexpr int kMaxDepth = 8;
constexpr int kMaxParts = 256;
// RFC 2046 allows 70 characters; a longer one is garbage, and it bounds the delimiter search.
constexpr size_t kMaxBoundary = 200;
constexpr size_t kNpos = std::string_view::npos;

// ---------------------------------------------------------------------------------------------
// Characters and strings.

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
bool IsWsp(char c) { return c == ' ' || c == '\t'; }
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsAlpha(c) || IsDigit(c); }

int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) {
      return false;
    }
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && IsSpace(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

std::string ToLowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = ToLower(c);
  }
  return out;
}

// Finds `needle` (which starts with '<') in `hay` at or after `from`, ignoring ASCII case.
size_t FindTagIgnoreCase(std::string_view hay, size_t from, std::string_view needle) {
  while (from < hay.size()) {
    const size_t p = hay.find('<', from);
    if (p == kNpos) {
      return kNpos;
    }
    if (StartsWithIgnoreCase(hay.substr(p), needle)) {
      return p;
    }
    from = p + 1;
  }
  return kNpos;
}

// ---------------------------------------------------------------------------------------------
// Transfer encodings.

constexpr uint8_t kNotBase64 = 0xFF;
constexpr std::array<uint8_t, 256> kBase64Values = [] {
  std::array<uint8_t, 256> table{};
  table.fill(kNotBase64);
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<uint8_t>(kAlphabet[i])] = static_cast<uint8_t>(i);
  }
  return table;
}();

// Skips every character outside the alphabet (line breaks, padding, garbage); leftover bits at
// the end (missing padding) are dropped.
void DecodeBase64(std::string_view in, std::string* out) {
  const size_t start = out->size();
  out->resize(start + in.size() / 4 * 3 + 3);
  char* w = out->data() + start;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const uint8_t v = kBase64Values[static_cast<uint8_t>(c)];
    if (v == kNotBase64) {
      continue;
    }
    acc = ((acc << 6) | v) & 0xFFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *w++ = static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  out->resize(static_cast<size_t>(w - out->data()));
}

// Soft line breaks ("=" before a line end, transport whitespace allowed between) vanish, "=XX"
// becomes a byte, and an "=" that is neither is kept as it is.
void DecodeQuotedPrintable(std::string_view in, std::string* out) {
  const size_t start = out->size();
  out->resize(start + in.size());  // decoding never grows
  char* w = out->data() + start;
  const size_t n = in.size();
  size_t i = 0;
  while (i < n) {
    const size_t eq = in.find('=', i);
    const size_t run_end = eq == kNpos ? n : eq;
    in.copy(w, run_end - i, i);
    w += run_end - i;
    if (eq == kNpos) {
      break;
    }
    i = eq + 1;
    size_t j = i;
    while (j < n && IsWsp(in[j])) {
      ++j;
    }
    if (j == n) {
      break;
    }
    if (in[j] == '\n') {
      i = j + 1;
      continue;
    }
    if (in[j] == '\r' && (j + 1 == n || in[j + 1] == '\n')) {
      i = std::min(n, j + 2);
      continue;
    }
    const int hi = i + 1 < n ? HexValue(in[i]) : -1;
    const int lo = i + 1 < n ? HexValue(in[i + 1]) : -1;
    if (hi >= 0 && lo >= 0) {
      *w++ = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      *w++ = '=';
    }
  }
  out->resize(static_cast<size_t>(w - out->data()));
}

// RFC 2047 "Q": quoted-printable where "_" is a space.
void DecodeQEncoding(std::string_view in, std::string* out) {
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '_') {
      out->push_back(' ');
    } else if (c == '=' && i + 2 < in.size() && HexValue(in[i + 1]) >= 0 &&
               HexValue(in[i + 2]) >= 0) {
      out->push_back(static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2])));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
}

// Returns the content with its Content-Transfer-Encoding undone: a view of `content` itself
// for identity encodings, else of `scratch`.
std::string_view DecodeTransfer(std::string_view content, std::string_view encoding,
                                std::string* scratch) {
  encoding = Trim(encoding);
  if (EqualsIgnoreCase(encoding, "base64")) {
    DecodeBase64(content, scratch);
    return *scratch;
  }
  if (EqualsIgnoreCase(encoding, "quoted-printable")) {
    DecodeQuotedPrintable(content, scratch);
    return *scratch;
  }
  return content;
}

// ---------------------------------------------------------------------------------------------
// Headers.

// One line of `s` starting at `pos`, without its line ending, and where the next line starts.
struct Line {
  std::string_view text;
  size_t next;
};

Line LineAt(std::string_view s, size_t pos) {
  const size_t nl = s.find('\n', pos);
  const size_t end = nl == kNpos ? s.size() : nl;
  std::string_view text = s.substr(pos, end - pos);
  if (!text.empty() && text.back() == '\r') {
    text.remove_suffix(1);
  }
  return {text, nl == kNpos ? s.size() : nl + 1};
}

// Length of the field name if `line` starts a header field (`^[!-9;-~]+:`), else 0. A URL
// ("http://...") is not a field: Enron-style bodies often start with one.
size_t FieldNameLength(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && line[i] >= '!' && line[i] <= '~' && line[i] != ':') {
    ++i;
  }
  if (i == 0 || i >= line.size() || line[i] != ':') {
    return 0;
  }
  return line.substr(i + 1).starts_with("//") ? 0 : i;
}

struct Field {
  bool seen = false;
  std::string_view value;  // raw: after the colon, through its continuation lines
};

// The fields the parser needs; the first occurrence of each wins.
struct Headers {
  bool present = false;
  Field subject;
  Field from;
  Field content_type;
  Field transfer_encoding;
};

// Parses the header block at the start of `s` (if its first line is a field) into `headers`
// and returns the offset at which the body starts.
size_t ParseHeaders(std::string_view s, Headers* headers) {
  if (FieldNameLength(LineAt(s, 0).text) == 0) {
    return 0;
  }
  headers->present = true;
  Field* current = nullptr;
  size_t value_start = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    const Line line = LineAt(s, pos);
    if (line.text.empty()) {
      return line.next;
    }
    const size_t line_end = pos + line.text.size();
    if (IsWsp(line.text.front())) {
      if (current != nullptr) {
        current->value = s.substr(value_start, line_end - value_start);
      }
      pos = line.next;
      continue;
    }
    const size_t name_length = FieldNameLength(line.text);
    if (name_length == 0) {
      return pos;
    }
    const std::string_view name = line.text.substr(0, name_length);
    current = nullptr;
    if (EqualsIgnoreCase(name, "subject")) {
      current = &headers->subject;
    } else if (EqualsIgnoreCase(name, "from")) {
      current = &headers->from;
    } else if (EqualsIgnoreCase(name, "content-type")) {
      current = &headers->content_type;
    } else if (EqualsIgnoreCase(name, "content-transfer-encoding")) {
      current = &headers->transfer_encoding;
    }
    if (current != nullptr && current->seen) {
      current = nullptr;
    }
    if (current != nullptr) {
      current->seen = true;
      value_start = pos + name_length + 1;
      current->value = s.substr(value_start, line_end - value_start);
    }
    pos = line.next;
  }
  return s.size();
}

// Joins folded lines with single spaces and trims.
std::string Unfold(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  size_t pos = 0;
  for (;;) {
    const size_t nl = value.find('\n', pos);
    const std::string_view segment = Trim(value.substr(pos, nl == kNpos ? kNpos : nl - pos));
    if (!segment.empty()) {
      if (!out.empty()) {
        out.push_back(' ');
      }
      out.append(segment);
    }
    if (nl == kNpos) {
      break;
    }
    pos = nl + 1;
  }
  return out;
}

// Decodes the RFC 2047 encoded-word that starts at `s[p]` ("=?") into `out` and sets `*end` past
// it. Returns false, appending nothing, if there is none. `last_terminator` is the position of
// the last "?=" in `s`, so that a run of unterminated words costs O(1) each.
bool DecodeEncodedWord(std::string_view s, size_t p, size_t last_terminator, std::string* out,
                       size_t* end) {
  const size_t charset_start = p + 2;
  const size_t limit = std::min(s.size(), charset_start + 64);
  size_t q = charset_start;
  while (q < limit && s[q] != '?' && !IsSpace(s[q])) {
    ++q;
  }
  if (q >= limit || s[q] != '?' || q == charset_start) {
    return false;
  }
  if (q + 2 >= s.size() || s[q + 2] != '?') {
    return false;
  }
  const char encoding = ToLower(s[q + 1]);
  if (encoding != 'b' && encoding != 'q') {
    return false;
  }
  const size_t text_start = q + 3;
  if (last_terminator == kNpos || last_terminator < text_start) {
    return false;
  }
  const size_t terminator = s.find("?=", text_start);
  const std::string_view text = s.substr(text_start, terminator - text_start);
  std::string bytes;
  if (encoding == 'b') {
    DecodeBase64(text, &bytes);
  } else {
    DecodeQEncoding(text, &bytes);
  }
  AppendInCharset(bytes, s.substr(charset_start, q - charset_start), out);
  *end = terminator + 2;
  return true;
}

std::string DecodeSubject(std::string_view raw_value) {
  const std::string s = Unfold(raw_value);
  std::string out;
  out.reserve(s.size());
  const size_t last_terminator = s.rfind("?=");
  bool after_word = false;
  size_t i = 0;
  while (i < s.size()) {
    const size_t p = s.find("=?", i);
    if (p == kNpos) {
      out.append(s, i);
      break;
    }
    const std::string_view gap = std::string_view(s).substr(i, p - i);
    std::string word;
    size_t end = 0;
    if (DecodeEncodedWord(s, p, last_terminator, &word, &end)) {
      // Whitespace between two adjacent encoded words is dropped.
      if (!after_word || !Trim(gap).empty()) {
        out.append(gap);
      }
      out.append(word);
      after_word = true;
      i = end;
    } else {
      out.append(gap);
      out.append("=?");
      after_word = false;
      i = p + 2;
    }
  }
  return std::string(Trim(out));
}

struct ContentType {
  std::string type;     // lowercase; empty when there is no Content-Type
  std::string subtype;  // lowercase
  std::string boundary;
  std::string charset;
};

ContentType ParseContentType(std::string_view raw_value) {
  ContentType ct;
  const std::string unfolded = Unfold(raw_value);
  const std::string_view v = unfolded;
  const size_t semicolon = v.find(';');
  const std::string_view media = Trim(v.substr(0, semicolon));
  const size_t slash = media.find('/');
  ct.type = ToLowerCopy(Trim(media.substr(0, slash)));
  if (slash != kNpos) {
    ct.subtype = ToLowerCopy(Trim(media.substr(slash + 1)));
  }
  size_t pos = semicolon == kNpos ? v.size() : semicolon + 1;
  while (pos < v.size()) {
    while (pos < v.size() && (IsSpace(v[pos]) || v[pos] == ';')) {
      ++pos;
    }
    const size_t name_start = pos;
    while (pos < v.size() && v[pos] != '=' && v[pos] != ';') {
      ++pos;
    }
    const std::string_view name = Trim(v.substr(name_start, pos - name_start));
    if (pos >= v.size() || v[pos] == ';') {
      continue;  // a parameter without a value
    }
    ++pos;
    while (pos < v.size() && IsWsp(v[pos])) {
      ++pos;
    }
    std::string value;
    if (pos < v.size() && v[pos] == '"') {
      ++pos;
      while (pos < v.size() && v[pos] != '"') {
        if (v[pos] == '\\' && pos + 1 < v.size()) {
          ++pos;
        }
        value.push_back(v[pos++]);
      }
      if (pos < v.size()) {
        ++pos;
      }
    } else {
      const size_t value_start = pos;
      while (pos < v.size() && v[pos] != ';' && !IsSpace(v[pos])) {
        ++pos;
      }
      value.assign(v.substr(value_start, pos - value_start));
    }
    if (EqualsIgnoreCase(name, "boundary") && ct.boundary.empty()) {
      ct.boundary = std::move(value);
    } else if (EqualsIgnoreCase(name, "charset") && ct.charset.empty()) {
      ct.charset = ToLowerCopy(value);
    }
  }
  return ct;
}

// ---------------------------------------------------------------------------------------------
// HTML.

// HTML 4's Latin-1 entities, for U+00A0..U+00FF in order.
constexpr std::string_view kLatin1Entities[] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",
    "copy",   "ordf",   "laquo",  "not",    "shy",    "reg",    "macr",   "deg",    "plusmn",
    "sup2",   "sup3",   "acute",  "micro",  "para",   "middot", "cedil",  "sup1",   "ordm",
    "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",  "Atilde",
    "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",   "Igrave",
    "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde",
    "Ouml",   "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",
    "szlig",  "agrave", "aacute", "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil",
    "egrave", "eacute", "ecirc",  "euml",   "igrave", "iacute", "icirc",  "iuml",   "eth",
    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide", "oslash", "ugrave",
    "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml"};
static_assert(std::size(kLatin1Entities) == 0x100 - 0xA0);

struct NamedEntity {
  std::string_view name;
  uint32_t code_point;  // kNothing: the entity vanishes
};
constexpr uint32_t kNothing = 0xFFFFFFFF;

// The XML entities and the common typographic ones. Checked before the Latin-1 table, so
// &nbsp; becomes a plain space and &shy;, which hides in words to break them up
// ("Vi&shy;agra"), vanishes.
constexpr NamedEntity kEntities[] = {
    {"amp", '&'},       {"lt", '<'},        {"gt", '>'},        {"quot", '"'},
    {"apos", '\''},     {"nbsp", ' '},      {"shy", kNothing},  {"trade", 0x2122},
    {"euro", 0x20AC},   {"bull", 0x2022},   {"hellip", 0x2026}, {"ndash", 0x2013},
    {"mdash", 0x2014},  {"lsquo", 0x2018},  {"rsquo", 0x2019},  {"sbquo", 0x201A},
    {"ldquo", 0x201C},  {"rdquo", 0x201D},  {"bdquo", 0x201E},  {"dagger", 0x2020},
    {"Dagger", 0x2021}, {"permil", 0x2030}, {"lsaquo", 0x2039}, {"rsaquo", 0x203A},
    {"OElig", 0x152},   {"oelig", 0x153},   {"Scaron", 0x160},  {"scaron", 0x161},
    {"Yuml", 0x178},    {"fnof", 0x192},    {"circ", 0x2C6},    {"tilde", 0x2DC},
    {"ensp", ' '},      {"emsp", ' '},      {"thinsp", ' '},    {"zwnj", kNothing},
    {"zwj", kNothing}};

// A name of at most 8 bytes as one integer, so that the lookup tables below compare integers
// (the same name always packs the same; different names of at most 8 nonzero bytes differ).
constexpr uint64_t Pack(std::string_view name) {
  uint64_t key = 0;
  for (char c : name) {
    key = (key << 8) | static_cast<uint8_t>(c);
  }
  return key;
}
constexpr size_t kMaxPackedName = 8;

struct PackedEntity {
  uint64_t key;
  uint32_t code_point;
  constexpr bool operator<(const PackedEntity& other) const { return key < other.key; }
};

// Both tables in one, sorted for binary search; the first table wins a duplicate.
constexpr size_t kDuplicateEntities = 2;  // nbsp, shy
constexpr auto kEntityIndex = [] {
  std::array<PackedEntity, std::size(kEntities) + std::size(kLatin1Entities) - kDuplicateEntities>
      index{};
  size_t n = 0;
  for (const NamedEntity& entity : kEntities) {
    index[n++] = {Pack(entity.name), entity.code_point};
  }
  for (size_t i = 0; i < std::size(kLatin1Entities); ++i) {
    const bool duplicate =
        std::any_of(std::begin(kEntities), std::end(kEntities),
                    [&](const NamedEntity& e) { return e.name == kLatin1Entities[i]; });
    if (!duplicate) {
      index[n++] = {Pack(kLatin1Entities[i]), static_cast<uint32_t>(0xA0 + i)};
    }
  }
  std::sort(index.begin(), index.end());
  return index;
}();
static_assert(std::adjacent_find(kEntityIndex.begin(), kEntityIndex.end(),
                                 [](const PackedEntity& a, const PackedEntity& b) {
                                   return a.key == b.key || a.key == 0;
                                 }) == kEntityIndex.end());

// Returns the code point of a named entity (or kNothing for one that vanishes), or 0 if the
// name is unknown.
uint32_t NamedEntityValue(std::string_view name) {
  if (name.size() > kMaxPackedName) {
    return 0;
  }
  const PackedEntity key{Pack(name), 0};
  const auto* it = std::lower_bound(kEntityIndex.begin(), kEntityIndex.end(), key);
  return (it != kEntityIndex.end() && it->key == key.key) ? it->code_point : 0;
}

// `in[i]` is '&'. Appends the entity's text (or the '&' itself, if it is not a known entity)
// and returns where to continue.
size_t DecodeEntity(std::string_view in, size_t i, std::string* out) {
  const size_t n = in.size();
  size_t j = i + 1;
  if (j < n && in[j] == '#') {
    ++j;
    const bool hex = j < n && (in[j] == 'x' || in[j] == 'X');
    if (hex) {
      ++j;
    }
    uint32_t cp = 0;
    size_t digits = 0;
    while (j < n) {
      const int d = hex ? HexValue(in[j]) : (IsDigit(in[j]) ? in[j] - '0' : -1);
      if (d < 0) {
        break;
      }
      if (cp <= 0x10FFFF) {
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
      }
      ++digits;
      ++j;
    }
    if (digits == 0) {
      out->push_back('&');
      return i + 1;
    }
    if (j < n && in[j] == ';') {
      ++j;
    }
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      cp = 0xFFFD;
    } else if (cp == 0xA0) {
      cp = ' ';
    } else if (cp < 0x100) {
      cp = FromCp1252(static_cast<uint8_t>(cp));  // "&#150;" means windows-1252, as in browsers
    }
    AppendUtf8(cp, out);
    return j;
  }
  size_t k = j;
  while (k < n && k - j < kMaxPackedName && IsAlnum(in[k])) {
    ++k;
  }
  if (k > j && k < n && in[k] == ';') {
    const uint32_t cp = NamedEntityValue(in.substr(j, k - j));
    if (cp != 0) {
      if (cp != kNothing) {
        AppendUtf8(cp, out);
      }
      return k + 1;
    }
  }
  out->push_back('&');
  return i + 1;
}

void DecodeEntities(std::string_view in, std::string* out) {
  size_t i = 0;
  while (i < in.size()) {
    const size_t amp = in.find('&', i);
    if (amp == kNpos) {
      out->append(in.substr(i));
      return;
    }
    out->append(in.substr(i, amp - i));
    i = DecodeEntity(in, amp, out);
  }
}

// Appends a separator unless the text already ends in whitespace (or is empty); a newline
// upgrades a trailing space.
void AppendSeparator(std::string* out, char separator) {
  if (out->empty()) {
    return;
  }
  char& last = out->back();
  if (separator == '\n') {
    if (last == ' ' || last == '\t') {
      last = '\n';
    } else if (last != '\n') {
      out->push_back('\n');
    }
  } else if (!IsSpace(last)) {
    out->push_back(separator);
  }
}

// `lower_name` is a lowercase tag name of at most kMaxPackedName bytes, packed.
bool IsBlockTag(uint64_t lower_name) {
  static constexpr std::string_view kNames[] = {
      "br",    "p",       "div",     "tr",     "li",     "ul",      "ol",     "table",
      "tbody", "thead",   "tfoot",   "h1",     "h2",     "h3",      "h4",     "h5",
      "h6",    "hr",      "pre",     "dl",     "dt",     "dd",      "center", "form",
      "title", "section", "article", "header", "footer", "address", "body"};
  static constexpr auto kKeys = [] {
    std::array<uint64_t, std::size(kNames)> keys{};
    for (size_t i = 0; i < keys.size(); ++i) {
      keys[i] = Pack(kNames[i]);
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }();
  return std::binary_search(kKeys.begin(), kKeys.end(), lower_name);
}

// Inline formatting tags separate nothing: "V<b>i</b>agra" is one word, as a reader sees it
// (a common trick to split a word for filters).
bool IsInlineTag(uint64_t lower_name) {
  static constexpr std::string_view kNames[] = {"b",      "i",    "u",     "s",   "em",   "strong",
                                                "font",   "span", "small", "big", "sub",  "sup",
                                                "strike", "tt",   "ins",   "del", "mark", "wbr"};
  static constexpr auto kKeys = [] {
    std::array<uint64_t, std::size(kNames)> keys{};
    for (size_t i = 0; i < keys.size(); ++i) {
      keys[i] = Pack(kNames[i]);
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }();
  return std::binary_search(kKeys.begin(), kKeys.end(), lower_name);
}

void AppendUrl(std::string_view value, std::string* out) {
  value = Trim(value);
  if (!StartsWithIgnoreCase(value, "http://") && !StartsWithIgnoreCase(value, "https://")) {
    return;
  }
  AppendSeparator(out, ' ');
  DecodeEntities(value, out);
  out->push_back(' ');
}

// Scans a tag's attributes from `k` (just after its name) to just past its '>', appending
// " URL " for each http(s) href or src. An unterminated tag or quoted value consumes the rest.
size_t ScanAttributes(std::string_view in, size_t k, std::string* out) {
  const size_t n = in.size();
  while (k < n) {
    const char c = in[k];
    if (c == '>') {
      return k + 1;
    }
    if (IsSpace(c) || c == '/') {
      ++k;
      continue;
    }
    const size_t name_start = k;
    while (k < n && !IsSpace(in[k]) && in[k] != '=' && in[k] != '>' && in[k] != '/') {
      ++k;
    }
    const std::string_view name = in.substr(name_start, k - name_start);
    size_t t = k;
    while (t < n && IsSpace(in[t])) {
      ++t;
    }
    if (t >= n || in[t] != '=') {
      k = t;
      continue;
    }
    k = t + 1;
    while (k < n && IsSpace(in[k])) {
      ++k;
    }
    std::string_view value;
    if (k < n && (in[k] == '"' || in[k] == '\'')) {
      const size_t close = in.find(in[k], k + 1);
      if (close == kNpos) {
        return n;
      }
      value = in.substr(k + 1, close - k - 1);
      k = close + 1;
    } else {
      const size_t value_start = k;
      while (k < n && !IsSpace(in[k]) && in[k] != '>') {
        ++k;
      }
      value = in.substr(value_start, k - value_start);
    }
    if (EqualsIgnoreCase(name, "href") || EqualsIgnoreCase(name, "src")) {
      AppendUrl(value, out);
    }
  }
  return n;
}

class HtmlStripper {
 public:
  HtmlStripper(std::string_view in, std::string* out) : in_(in), out_(out) {}

  void Run() {
    out_->reserve(out_->size() + in_.size());
    size_t i = 0;
    while (i < in_.size()) {
      size_t next = i;
      while (next < in_.size() && in_[next] != '<' && in_[next] != '&') {
        ++next;
      }
      out_->append(in_.substr(i, next - i));
      if (next == in_.size()) {
        return;
      }
      i = in_[next] == '&' ? DecodeEntity(in_, next, out_) : SkipMarkup(next);
    }
  }

 private:
  // `in_[i]` is '<'. Handles the comment, declaration or tag there (a '<' that starts none of
  // them is text) and returns where the text continues; always past `i`.
  size_t SkipMarkup(size_t i) {
    const size_t n = in_.size();
    if (in_.substr(i).starts_with("<!--")) {
      AppendSeparator(out_, ' ');
      const size_t close = in_.find("-->", i + 4);
      return close == kNpos ? n : close + 3;
    }
    size_t k = i + 1;
    if (k < n && (in_[k] == '!' || in_[k] == '?')) {
      AppendSeparator(out_, ' ');
      const size_t close = in_.find('>', k);
      return close == kNpos ? n : close + 1;
    }
    const bool closing = k < n && in_[k] == '/';
    if (closing) {
      ++k;
    }
    if (k >= n || !IsAlpha(in_[k])) {
      out_->push_back('<');
      return i + 1;
    }
    const size_t name_start = k;
    while (k < n && (IsAlnum(in_[k]) || in_[k] == '-' || in_[k] == ':')) {
      ++k;
    }
    // Tag names are compared packed (see Pack); of the longer ones only "blockquote" matters,
    // and it separates like "br".
    uint64_t name = 0;
    if (k - name_start <= kMaxPackedName) {
      for (size_t c = name_start; c < k; ++c) {
        name = (name << 8) | static_cast<uint8_t>(ToLower(in_[c]));
      }
    } else if (EqualsIgnoreCase(in_.substr(name_start, k - name_start), "blockquote")) {
      name = Pack("br");  // the same separator
    }
    if (!IsInlineTag(name)) {
      AppendSeparator(out_, IsBlockTag(name) ? '\n' : ' ');
    }
    k = ScanAttributes(in_, k, out_);
    if (closing) {
      return k;
    }
    if (name == Pack("script")) {
      return SkipPastTag(k, "</script");
    }
    if (name == Pack("style")) {
      return SkipPastTag(k, "</style");
    }
    if (name == Pack("head")) {
      return SkipHead(k);
    }
    return k;
  }

  // Returns the position just past the tag `needle` ("</script") at or after `from`, or the
  // end if there is none.
  size_t SkipPastTag(size_t from, std::string_view needle) {
    const size_t p = FindTagIgnoreCase(in_, from, needle);
    if (p == kNpos) {
      return in_.size();
    }
    const size_t close = in_.find('>', p);
    return close == kNpos ? in_.size() : close + 1;
  }

  // The head ends at </head>, or where <body> starts if that comes first or </head> is missing.
  // The last search for </head> is remembered: repeating it for each <head> could be quadratic.
  size_t SkipHead(size_t from) {
    if (!head_close_known_ || (head_close_ != kNpos && head_close_ < from)) {
      head_close_ = FindTagIgnoreCase(in_, from, "</head");
      head_close_known_ = true;
    }
    const size_t head_end = head_close_;
    const std::string_view searched = in_.substr(0, head_end == kNpos ? in_.size() : head_end);
    const size_t body = FindTagIgnoreCase(searched, from, "<body");
    if (body != kNpos) {
      return body;
    }
    if (head_end == kNpos) {
      return in_.size();
    }
    const size_t close = in_.find('>', head_end);
    return close == kNpos ? in_.size() : close + 1;
  }

  std::string_view in_;
  std::string* out_;
  bool head_close_known_ = false;
  size_t head_close_ = kNpos;  // where the last search found </head
};

bool LooksLikeHtml(std::string_view s) {
  for (size_t p = s.find('<'); p != kNpos; p = s.find('<', p + 1)) {
    const std::string_view rest = s.substr(p + 1);
    if (StartsWithIgnoreCase(rest, "html") || StartsWithIgnoreCase(rest, "body")) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// MIME structure.

// Splits a multipart body into its parts (the preamble and epilogue are dropped; a missing
// closing delimiter ends the last part at the end of the input), taking at most `*budget`
// parts and counting them off it. Returns false if there is no delimiter line at all.
bool SplitMultipart(std::string_view body, std::string_view boundary, int* budget,
                    std::vector<std::string_view>* parts) {
  std::string delimiter = "--";
  delimiter.append(boundary);
  bool found = false;
  bool in_part = false;
  size_t part_start = 0;
  size_t pos = 0;
  while (*budget > 0) {
    size_t hit = body.find(delimiter, pos);
    while (hit != kNpos && hit != 0 && body[hit - 1] != '\n') {
      hit = body.find(delimiter, hit + 1);
    }
    if (hit == kNpos) {
      break;
    }
    // A delimiter line is "--boundary" plus optional whitespace, or "--boundary--" (closing);
    // anything else ("--boundary2") is a longer boundary of a nested multipart.
    size_t after = hit + delimiter.size();
    const bool closing = body.substr(after).starts_with("--");
    if (!closing) {
      while (after < body.size() && IsWsp(body[after])) {
        ++after;
      }
      if (after < body.size() && body[after] != '\r' && body[after] != '\n') {
        pos = hit + 1;
        continue;
      }
    }
    found = true;
    if (in_part) {
      size_t part_end = hit;
      if (part_end > part_start && body[part_end - 1] == '\n') {
        --part_end;
      }
      if (part_end > part_start && body[part_end - 1] == '\r') {
        --part_end;
      }
      parts->push_back(body.substr(part_start, part_end - part_start));
      --*budget;
    }
    if (closing) {
      return true;
    }
    in_part = true;
    part_start = LineAt(body, hit).next;
    pos = part_start;
  }
  if (in_part && *budget > 0) {
    parts->push_back(body.substr(part_start));
    --*budget;
  }
  return found;
}

class Extractor {
 public:
  std::string TakeBody() { return std::move(body_); }

  // Adds the text of an entity (a message or a part) with headers `headers` and content
  // `content`, `depth` levels of nesting down. `untyped_may_be_html`: sniff untyped text.
  void Entity(const Headers& headers, std::string_view content, int depth,
              bool untyped_may_be_html) {
    ContentType ct;
    if (headers.content_type.seen) {
      ct = ParseContentType(headers.content_type.value);
    }
    const std::string_view encoding = headers.transfer_encoding.value;
    if (ct.type.empty()) {
      Text(content, encoding, ct.charset, /*html=*/false, untyped_may_be_html);
    } else if (ct.type == "multipart") {
      if (depth >= kMaxDepth) {
        return;
      }
      if (ct.boundary.empty() || ct.boundary.size() > kMaxBoundary ||
          !Multipart(ct, content, depth)) {
        // No usable boundary: the best guess is that the content is text.
        Text(content, encoding, ct.charset, /*html=*/false, /*sniff_html=*/true);
      }
    } else if (ct.type == "message" && (ct.subtype == "rfc822" || ct.subtype == "global")) {
      if (depth >= kMaxDepth) {
        return;
      }
      std::string decoded;
      const std::string_view message = DecodeTransfer(content, encoding, &decoded);
      Headers inner;
      const size_t body_start = ParseHeaders(message, &inner);
      if (inner.subject.seen) {
        Append(DecodeSubject(inner.subject.value));
      }
      Entity(inner, message.substr(body_start), depth + 1, /*untyped_may_be_html=*/true);
    } else if (ct.type == "text" && (ct.subtype == "plain" || ct.subtype.empty())) {
      Text(content, encoding, ct.charset, /*html=*/false, /*sniff_html=*/false);
    } else if (ct.type == "text" && ct.subtype == "html") {
      Text(content, encoding, ct.charset, /*html=*/true, /*sniff_html=*/false);
    }
  }

 private:
  // Returns false if `content` holds no delimiter line for the boundary.
  bool Multipart(const ContentType& ct, std::string_view content, int depth) {
    std::vector<std::string_view> parts;
    if (!SplitMultipart(content, ct.boundary, &parts_left_, &parts)) {
      return false;
    }
    if (ct.subtype != "alternative") {
      for (std::string_view part : parts) {
        Part(part, depth + 1);
      }
      return true;
    }
    // Alternatives: plain text over HTML over anything structured; the first of a rank wins.
    int best_rank = 0;
    std::string_view best;
    for (std::string_view part : parts) {
      Headers headers;
      ParseHeaders(part, &headers);
      const int rank = AlternativeRank(headers);
      if (rank > best_rank) {
        best_rank = rank;
        best = part;
      }
    }
    if (best_rank > 0) {
      Part(best, depth + 1);
    }
    return true;
  }

  static int AlternativeRank(const Headers& headers) {
    if (!headers.content_type.seen) {
      return 3;
    }
    const ContentType ct = ParseContentType(headers.content_type.value);
    if (ct.type.empty() || (ct.type == "text" && (ct.subtype == "plain" || ct.subtype.empty()))) {
      return 3;
    }
    if (ct.type == "text" && ct.subtype == "html") {
      return 2;
    }
    if (ct.type == "multipart" || ct.type == "message") {
      return 1;
    }
    return 0;
  }

  void Part(std::string_view part, int depth) {
    Headers headers;
    size_t body_start = ParseHeaders(part, &headers);
    // A part without headers starts with the blank line that ends its (empty) header block.
    if (!headers.present) {
      const Line first = LineAt(part, 0);
      if (first.text.empty()) {
        body_start = first.next;
      }
    }
    Entity(headers, part.substr(body_start), depth, /*untyped_may_be_html=*/false);
  }

  void Text(std::string_view content, std::string_view encoding, std::string_view charset,
            bool html, bool sniff_html) {
    std::string decoded;
    std::string_view text = DecodeTransfer(content, encoding, &decoded);
    // Literal 8-bit text that is valid UTF-8 is taken as UTF-8 whatever its declared charset:
    // a client that decoded the message before sending it as JSON text has already applied
    // the charset (and text in a legacy 8-bit charset is hardly ever valid UTF-8).
    const bool literal = text.data() == content.data();  // DecodeTransfer returned it as is
    const bool convert =
        IsAsciiIncompatible(charset) || (HasHighBytes(text) && !(literal && utf8::IsValid(text)));
    std::string converted;
    if (convert) {
      AppendInCharset(text, charset, &converted);
      text = converted;
    }
    if (html || (sniff_html && LooksLikeHtml(text))) {
      std::string stripped;
      HtmlStripper(text, &stripped).Run();
      Append(stripped);
    } else {
      Append(text);
    }
  }

  void Append(std::string_view text) {
    if (Trim(text).empty()) {
      return;
    }
    if (!body_.empty()) {
      body_.push_back('\n');
    }
    body_.append(text);
  }

  std::string body_;
  int parts_left_ = kMaxParts;
};

// CRLF -> LF, in place.
void DropCarriageReturns(std::string* s) {
  size_t r = s->find("\r\n");
  if (r == kNpos) {
    return;
  }
  size_t w = r;
  while (r < s->size()) {
    ++r;  // past the '\r' of a CRLF
    const size_t next = s->find("\r\n", r);
    const size_t end = next == kNpos ? s->size() : next;
    std::char_traits<char>::move(s->data() + w, s->data() + r, end - r);
    w += end - r;
    r = end;
  }
  s->resize(w);
}

Message Parse(std::string_view raw) {
  std::string bytes;
  if (UndoLatin1(raw, &bytes)) {
    raw = bytes;
  }
  if (raw.starts_with("\xEF\xBB\xBF")) {
    raw.remove_prefix(3);  // UTF-8 byte order mark
  }
  // An mbox "From " separator line in front of the headers (as in the SpamAssassin corpus).
  if (raw.starts_with("From ")) {
    const size_t second = LineAt(raw, 0).next;
    if (FieldNameLength(LineAt(raw, second).text) > 0) {
      raw.remove_prefix(second);
    }
  }
  Message message;
  Headers headers;
  const size_t body_start = ParseHeaders(raw, &headers);
  message.had_headers = headers.present;
  if (headers.subject.seen) {
    message.subject = DecodeSubject(headers.subject.value);
  }
  if (headers.from.seen) {
    message.from = DecodeSubject(headers.from.value);  // unstructured decoding suffices
  }
  Extractor extractor;
  extractor.Entity(headers, raw.substr(body_start), 0, /*untyped_may_be_html=*/true);
  message.body = extractor.TakeBody();
  DropCarriageReturns(&message.body);
  NormalizeText(&message.subject);
  NormalizeText(&message.from);
  NormalizeText(&message.body);
  return message;
}

std::string ParseSubjectValue(std::string_view value) {
  std::string bytes;
  if (UndoLatin1(value, &bytes)) {
    value = bytes;
  }
  std::string subject = DecodeSubject(value);
  NormalizeText(&subject);
  return subject;
}

}  // namespace

Message ParseMessage(std::string_view raw) {
  try {
    return Parse(raw);
  } catch (...) {  // std::bad_alloc: nothing else in here throws
    return Message{};
  }
}

std::string ParseSubject(std::string_view value) {
  try {
    return ParseSubjectValue(value);
  } catch (...) {  // std::bad_alloc
    return {};
  }
}

}  // namespace evo::spam
