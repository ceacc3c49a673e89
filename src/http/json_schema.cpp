#include "http/json_schema.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace evo::http {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------
// UTF-8

constexpr char32_t kMaxCodePoint = 0x10FFFF;
constexpr char32_t kReplacement = 0xFFFD;

// Decodes `s`. Invalid sequences become U+FFFD when `strict` is false and make it return
// false otherwise (nlohmann's parser only produces valid UTF-8, but a document built in
// code may hold anything).
bool DecodeUtf8(std::string_view s, std::u32string& out, bool strict) {
  out.clear();
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    char32_t cp = 0;
    if (b < 0x80) {
      len = 1;
      cp = b;
    } else if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
      cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      cp = b & 0x07;
    }
    bool valid = len != 0 && i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      valid = (c & 0xC0) == 0x80;
      cp = (cp << 6) | (c & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF.
    valid = valid && !(len == 3 && cp < 0x800) && !(len == 4 && cp < 0x10000) &&
            !(cp >= 0xD800 && cp <= 0xDFFF) && cp <= kMaxCodePoint;
    if (!valid) {
      if (strict) {
        return false;
      }
      out.push_back(kReplacement);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return true;
}

// Code points in `s`: bytes that do not continue a sequence.
size_t CodePointCount(std::string_view s) {
  size_t n = 0;
  for (const char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      ++n;
    }
  }
  return n;
}

// ---------------------------------------------------------------------------------------
// Regular expressions: ECMA-262 patterns compiled to a Thompson automaton. Simulating the
// automaton keeps the set of live states per input position, so a match costs at most
// (subject length) x (program size) steps and no recursion, whatever the pattern.

// A set of code points as sorted, disjoint, non-adjacent closed ranges.
class CharSet {
 public:
  CharSet() = default;
  CharSet(std::initializer_list<std::pair<char32_t, char32_t>> ranges) {
    for (const auto& r : ranges) {
      Add(r.first, r.second);
    }
    Normalize();
  }
  void Add(char32_t lo, char32_t hi) { ranges_.emplace_back(lo, hi); }
  void Add(const CharSet& other) {
    ranges_.insert(ranges_.end(), other.ranges_.begin(), other.ranges_.end());
  }
  void Normalize() {
    std::sort(ranges_.begin(), ranges_.end());
    std::vector<std::pair<char32_t, char32_t>> merged;
    for (const auto& r : ranges_) {
      if (!merged.empty() && r.first <= merged.back().second + 1) {
        merged.back().second = std::max(merged.back().second, r.second);
      } else {
        merged.push_back(r);
      }
    }
    ranges_ = std::move(merged);
  }
  // REQUIRES: normalized.
  CharSet Complement() const {
    CharSet out;
    char32_t next = 0;
    for (const auto& r : ranges_) {
      if (r.first > next) {
        out.Add(next, r.first - 1);
      }
      next = r.second + 1;
    }
    if (next <= kMaxCodePoint) {
      out.Add(next, kMaxCodePoint);
    }
    return out;
  }
  bool Contains(char32_t c) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), c,
                               [](char32_t v, const auto& r) { return v < r.first; });
    return it != ranges_.begin() && c <= std::prev(it)->second;
  }

 private:
  std::vector<std::pair<char32_t, char32_t>> ranges_;
};

const CharSet& DigitSet() {
  static const CharSet set{{U'0', U'9'}};
  return set;
}
const CharSet& WordSet() {
  static const CharSet set{{U'0', U'9'}, {U'A', U'Z'}, {U'_', U'_'}, {U'a', U'z'}};
  return set;
}
// ECMA-262 WhiteSpace and LineTerminator.
const CharSet& SpaceSet() {
  static const CharSet set{{0x09, 0x0D},     {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680},
                           {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
                           {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
  return set;
}
const CharSet& DotSet() {
  static const CharSet set = CharSet{{0x0A, 0x0A}, {0x0D, 0x0D}, {0x2028, 0x2029}}.Complement();
  return set;
}

bool IsWordChar(char32_t c) { return WordSet().Contains(c); }

class Regex {
 public:
  // Returns the problem with `pattern` (a reason without a location) or the regex.
  static std::optional<std::string> Compile(std::string_view pattern, Regex& out);

  // Whether some substring of `subject` matches; nullopt when more than `budget` steps
  // would be needed (the steps taken are subtracted from `budget`).
  std::optional<bool> Search(const std::u32string& subject, size_t& budget) const;

  size_t ProgramSize() const { return prog_.size(); }

 private:
  enum class Op : uint8_t {
    kClass,  // x: index into classes_
    kSplit,  // continue at x and at y
    kJmp,    // continue at x
    kMatch,
    kBegin,
    kEnd,
    kWordBoundary,
    kNotWordBoundary,
  };
  struct Inst {
    Op op;
    int x = 0;
    int y = 0;
  };
  struct Node {
    enum class Kind : uint8_t { kEmpty, kClass, kAssert, kConcat, kAlt, kRepeat };
    Kind kind = Kind::kEmpty;
    int set = -1;    // kClass: index into classes_
    Op assertion{};  // kAssert
    int min = 0;     // kRepeat
    int max = 0;     // kRepeat; -1 is unbounded
    std::vector<Node> kids{};
  };
  class Parser;

  bool Emit(const Node& node);
  int Push(Op op, int x = 0, int y = 0) {
    prog_.push_back({op, x, y});
    return static_cast<int>(prog_.size()) - 1;
  }

  std::vector<Inst> prog_;
  std::vector<CharSet> classes_;
  bool anchored_ = false;  // starts with ^: only position 0 can start a match
  size_t emit_calls_ = 0;
};

class Regex::Parser {
 public:
  Parser(const std::u32string& p, Regex& re) : p_(p), re_(re) {}

  std::optional<std::string> Parse(Node& out) {
    if (auto err = Disjunction(out)) {
      return err;
    }
    if (pos_ < p_.size()) {
      return "unmatched ')'";
    }
    return std::nullopt;
  }

 private:
  static constexpr int kMaxCount = 1000;
  static constexpr int kMaxNesting = 32;

  bool AtEnd() const { return pos_ >= p_.size(); }
  char32_t Peek(size_t ahead = 0) const {
    return pos_ + ahead < p_.size() ? p_[pos_ + ahead] : char32_t{0};
  }
  bool Has(size_t ahead) const { return pos_ + ahead < p_.size(); }

  int AddSet(CharSet set) {
    set.Normalize();
    re_.classes_.push_back(std::move(set));
    return static_cast<int>(re_.classes_.size()) - 1;
  }
  static Node ClassNode(int set) {
    Node n{Node::Kind::kClass};
    n.set = set;
    return n;
  }

  std::optional<std::string> Disjunction(Node& out) {
    Node alt{Node::Kind::kAlt};
    while (true) {
      Node seq{Node::Kind::kConcat};
      if (auto err = Alternative(seq)) {
        return err;
      }
      alt.kids.push_back(std::move(seq));
      if (AtEnd() || Peek() != U'|') {
        break;
      }
      ++pos_;
    }
    out = alt.kids.size() == 1 ? std::move(alt.kids[0]) : std::move(alt);
    return std::nullopt;
  }

  std::optional<std::string> Alternative(Node& seq) {
    while (!AtEnd() && Peek() != U'|' && Peek() != U')') {
      Node atom;
      bool quantifiable = true;
      if (auto err = Term(atom, quantifiable)) {
        return err;
      }
      if (auto err = Quantifier(atom, quantifiable)) {
        return err;
      }
      seq.kids.push_back(std::move(atom));
    }
    return std::nullopt;
  }

  // Parses "{n}", "{n,}" or "{n,m}" at pos_ without consuming; false when it is not one
  // (ECMA-262 Annex B then reads "{" as a literal).
  bool BraceQuantifier(int& min, int& max, size_t& length, bool& too_big) const {
    size_t i = pos_ + 1;
    auto number = [&](int& value) {
      const size_t start = i;
      uint64_t v = 0;
      while (i < p_.size() && p_[i] >= U'0' && p_[i] <= U'9') {
        v = std::min<uint64_t>(v * 10 + (p_[i] - U'0'), 1'000'000);
        ++i;
      }
      value = static_cast<int>(v);
      if (v > kMaxCount) {
        too_big = true;
      }
      return i > start;
    };
    too_big = false;
    if (!number(min)) {
      return false;
    }
    max = min;
    if (i < p_.size() && p_[i] == U',') {
      ++i;
      if (!number(max)) {
        max = -1;
      }
    }
    if (i >= p_.size() || p_[i] != U'}') {
      return false;
    }
    length = i + 1 - pos_;
    return true;
  }

  std::optional<std::string> Quantifier(Node& atom, bool quantifiable) {
    if (AtEnd()) {
      return std::nullopt;
    }
    int min = 0;
    int max = 0;
    size_t length = 1;
    const char32_t c = Peek();
    if (c == U'*') {
      max = -1;
    } else if (c == U'+') {
      min = 1;
      max = -1;
    } else if (c == U'?') {
      max = 1;
    } else if (c == U'{') {
      bool too_big = false;
      if (!BraceQuantifier(min, max, length, too_big)) {
        return std::nullopt;
      }
      if (too_big) {
        return "repetition count above 1000";
      }
      if (max != -1 && max < min) {
        return "numbers out of order in {} quantifier";
      }
    } else {
      return std::nullopt;
    }
    if (!quantifiable) {
      return "nothing to repeat";
    }
    pos_ += length;
    if (!AtEnd() && Peek() == U'?') {
      ++pos_;  // lazy: the same language
    }
    if (!AtEnd()) {
      int a = 0;
      int b = 0;
      size_t l = 0;
      bool big = false;
      const char32_t n = Peek();
      if (n == U'*' || n == U'+' || n == U'?' || (n == U'{' && BraceQuantifier(a, b, l, big))) {
        return "nothing to repeat";
      }
    }
    Node rep{Node::Kind::kRepeat};
    rep.min = min;
    rep.max = max;
    rep.kids.push_back(std::move(atom));
    atom = std::move(rep);
    return std::nullopt;
  }

  std::optional<std::string> Term(Node& out, bool& quantifiable) {
    const char32_t c = Peek();
    switch (c) {
      case U'^':
      case U'$':
        ++pos_;
        out = Node{Node::Kind::kAssert};
        out.assertion = c == U'^' ? Op::kBegin : Op::kEnd;
        quantifiable = false;
        return std::nullopt;
      case U'(':
        return Group(out);
      case U'[':
        return Class(out);
      case U'.':
        ++pos_;
        out = ClassNode(AddSet(DotSet()));
        return std::nullopt;
      case U'*':
      case U'+':
      case U'?':
        return "nothing to repeat";
      case U'{': {
        int a = 0;
        int b = 0;
        size_t l = 0;
        bool big = false;
        if (BraceQuantifier(a, b, l, big)) {
          return "nothing to repeat";
        }
        ++pos_;
        out = ClassNode(AddSet(CharSet{{c, c}}));
        return std::nullopt;
      }
      case U'\\': {
        if (Peek(1) == U'b' || Peek(1) == U'B') {
          out = Node{Node::Kind::kAssert};
          out.assertion = Peek(1) == U'b' ? Op::kWordBoundary : Op::kNotWordBoundary;
          pos_ += 2;
          quantifiable = false;
          return std::nullopt;
        }
        ++pos_;
        CharSet set;
        if (auto err = Escape(set, /*in_class=*/false)) {
          return err;
        }
        out = ClassNode(AddSet(std::move(set)));
        return std::nullopt;
      }
      default:
        ++pos_;
        out = ClassNode(AddSet(CharSet{{c, c}}));
        return std::nullopt;
    }
  }

  std::optional<std::string> Group(Node& out) {
    ++pos_;  // '('
    if (++nesting_ > kMaxNesting) {
      return "groups nested deeper than 32";
    }
    if (Peek() == U'?') {
      if (Peek(1) == U':') {
        pos_ += 2;
      } else if (Peek(1) == U'=' || Peek(1) == U'!') {
        return "unsupported: lookahead (?= and (?!";
      } else if (Peek(1) == U'<' && (Peek(2) == U'=' || Peek(2) == U'!')) {
        return "unsupported: lookbehind (?<= and (?<!";
      } else if (Peek(1) == U'<') {
        pos_ += 2;
        const size_t start = pos_;
        while (!AtEnd() && Peek() != U'>') {
          const char32_t n = Peek();
          const bool ok = (n >= U'a' && n <= U'z') || (n >= U'A' && n <= U'Z') || n == U'_' ||
                          n == U'$' || (pos_ > start && n >= U'0' && n <= U'9');
          if (!ok) {
            return "invalid capture group name";
          }
          ++pos_;
        }
        if (AtEnd() || pos_ == start) {
          return "invalid capture group name";
        }
        ++pos_;  // '>'
      } else {
        return "invalid group";
      }
    }
    if (auto err = Disjunction(out)) {
      return err;
    }
    if (AtEnd() || Peek() != U')') {
      return "missing ')'";
    }
    ++pos_;
    --nesting_;
    return std::nullopt;
  }

  static int HexValue(char32_t c) {
    if (c >= U'0' && c <= U'9') {
      return static_cast<int>(c - U'0');
    }
    if (c >= U'a' && c <= U'f') {
      return static_cast<int>(c - U'a' + 10);
    }
    if (c >= U'A' && c <= U'F') {
      return static_cast<int>(c - U'A' + 10);
    }
    return -1;
  }
  // Reads exactly `digits` hex digits at pos_.
  std::optional<char32_t> Hex(int digits) {
    char32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const int h = HexValue(Peek());
      if (AtEnd() || h < 0) {
        return std::nullopt;
      }
      v = v * 16 + static_cast<char32_t>(h);
      ++pos_;
    }
    return v;
  }

  // After a backslash: adds the code point or class it stands for to `set`; a single code
  // point is also stored in `*single_cp` (class escapes like \d cannot end a range).
  std::optional<std::string> Escape(CharSet& set, bool in_class,
                                    std::optional<char32_t>* single_cp = nullptr) {
    if (AtEnd()) {
      return "\\ at end of pattern";
    }
    const char32_t c = Peek();
    ++pos_;
    auto single = [&](char32_t v) {
      set.Add(v, v);
      if (single_cp != nullptr) {
        *single_cp = v;
      }
      return std::nullopt;
    };
    auto cls = [&](const CharSet& s, bool negate) {
      set.Add(negate ? s.Complement() : s);
      return std::nullopt;
    };
    switch (c) {
      case U'd':
        return cls(DigitSet(), false);
      case U'D':
        return cls(DigitSet(), true);
      case U'w':
        return cls(WordSet(), false);
      case U'W':
        return cls(WordSet(), true);
      case U's':
        return cls(SpaceSet(), false);
      case U'S':
        return cls(SpaceSet(), true);
      case U't':
        return single(0x09);
      case U'n':
        return single(0x0A);
      case U'v':
        return single(0x0B);
      case U'f':
        return single(0x0C);
      case U'r':
        return single(0x0D);
      case U'b':
        if (in_class) {
          return single(0x08);
        }
        break;
      case U'-':
        return single(U'-');
      case U'0':
        if (Peek() >= U'0' && Peek() <= U'9' && !AtEnd()) {
          return "unsupported: legacy octal escapes";
        }
        return single(0);
      case U'c': {
        const char32_t l = Peek();
        if (!AtEnd() && ((l >= U'a' && l <= U'z') || (l >= U'A' && l <= U'Z'))) {
          ++pos_;
          return single(l % 32);
        }
        return "invalid \\c escape";
      }
      case U'x': {
        if (auto v = Hex(2)) {
          return single(*v);
        }
        return "invalid \\x escape";
      }
      case U'u': {
        if (Peek() == U'{') {
          ++pos_;
          char32_t v = 0;
          size_t digits = 0;
          while (!AtEnd() && HexValue(Peek()) >= 0) {
            v = v * 16 + static_cast<char32_t>(HexValue(Peek()));
            if (v > kMaxCodePoint) {
              return "\\u{} escape above U+10FFFF";
            }
            ++pos_;
            ++digits;
          }
          if (digits == 0 || AtEnd() || Peek() != U'}') {
            return "invalid \\u{} escape";
          }
          ++pos_;
          return single(v);
        }
        auto v = Hex(4);
        if (!v) {
          return "invalid \\u escape";
        }
        // A surrogate pair spelled as two escapes is one code point.
        if (*v >= 0xD800 && *v <= 0xDBFF && Peek() == U'\\' && Peek(1) == U'u') {
          const size_t save = pos_;
          pos_ += 2;
          auto low = Hex(4);
          if (low && *low >= 0xDC00 && *low <= 0xDFFF) {
            return single(0x10000 + ((*v - 0xD800) << 10) + (*low - 0xDC00));
          }
          pos_ = save;
        }
        return single(*v);
      }
      case U'p':
      case U'P':
        return "unsupported: \\p{...} Unicode property escapes";
      case U'k':
        return "unsupported: named backreferences";
      default:
        break;
    }
    if (c >= U'1' && c <= U'9') {
      return "unsupported: backreferences";
    }
    if ((c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z') || (c >= U'0' && c <= U'9') ||
        c == U'_') {
      std::string name = "invalid escape \\";
      name += static_cast<char>(c);
      return name;
    }
    return single(c);  // an escaped punctuation or non-ASCII character stands for itself
  }

  std::optional<std::string> Class(Node& out) {
    ++pos_;  // '['
    bool negate = false;
    if (Peek() == U'^' && !AtEnd()) {
      negate = true;
      ++pos_;
    }
    CharSet set;
    // One class atom: a code point (into `cp`) or a class escape (added to `set`).
    auto atom = [&](std::optional<char32_t>& cp) -> std::optional<std::string> {
      cp.reset();
      if (Peek() != U'\\') {
        cp = Peek();
        ++pos_;
        return std::nullopt;
      }
      ++pos_;
      CharSet one;
      if (auto err = Escape(one, /*in_class=*/true, &cp)) {
        return err;
      }
      if (!cp) {
        set.Add(one);
      }
      return std::nullopt;
    };
    while (true) {
      if (AtEnd()) {
        return "missing ']'";
      }
      if (Peek() == U']') {
        ++pos_;
        break;
      }
      std::optional<char32_t> lo;
      if (auto err = atom(lo)) {
        return err;
      }
      if (!AtEnd() && Peek() == U'-' && Has(1) && Peek(1) != U']') {
        ++pos_;
        std::optional<char32_t> hi;
        if (auto err = atom(hi)) {
          return err;
        }
        if (lo && hi) {
          if (*lo > *hi) {
            return "range out of order in character class";
          }
          set.Add(*lo, *hi);
          continue;
        }
        // Annex B: a class escape next to '-' makes the '-' a literal.
        set.Add(U'-', U'-');
        if (hi) {
          set.Add(*hi, *hi);
        }
      }
      if (lo) {
        set.Add(*lo, *lo);
      }
    }
    set.Normalize();
    out = ClassNode(AddSet(negate ? set.Complement() : std::move(set)));
    return std::nullopt;
  }

  const std::u32string& p_;
  Regex& re_;
  size_t pos_ = 0;
  int nesting_ = 0;
};

std::optional<std::string> Regex::Compile(std::string_view pattern, Regex& out) {
  out = Regex();
  if (pattern.size() > JsonSchema::kMaxPatternBytes) {
    return "pattern longer than " + std::to_string(JsonSchema::kMaxPatternBytes) + " bytes";
  }
  std::u32string p;
  if (!DecodeUtf8(pattern, p, /*strict=*/true)) {
    return "pattern is not valid UTF-8";
  }
  Node root;
  Parser parser(p, out);
  if (auto err = parser.Parse(root)) {
    return err;
  }
  if (!out.Emit(root)) {
    return "pattern compiles to more than " + std::to_string(JsonSchema::kMaxPatternProgram) +
           " automaton states";
  }
  out.Push(Op::kMatch);
  out.anchored_ = !out.prog_.empty() && out.prog_[0].op == Op::kBegin;
  return std::nullopt;
}

bool Regex::Emit(const Node& node) {
  // Counting calls too stops "(?:(?:){1000}){1000}...", which emits nothing but loops long.
  if (prog_.size() > JsonSchema::kMaxPatternProgram ||
      ++emit_calls_ > 4 * JsonSchema::kMaxPatternProgram) {
    return false;
  }
  switch (node.kind) {
    case Node::Kind::kEmpty:
      return true;
    case Node::Kind::kClass:
      Push(Op::kClass, node.set);
      return true;
    case Node::Kind::kAssert:
      Push(node.assertion);
      return true;
    case Node::Kind::kConcat:
      for (const Node& kid : node.kids) {
        if (!Emit(kid)) {
          return false;
        }
      }
      return true;
    case Node::Kind::kAlt: {
      std::vector<int> jumps;
      for (size_t i = 0; i + 1 < node.kids.size(); ++i) {
        const int split = Push(Op::kSplit, static_cast<int>(prog_.size()) + 1);
        if (!Emit(node.kids[i])) {
          return false;
        }
        jumps.push_back(Push(Op::kJmp));
        prog_[split].y = static_cast<int>(prog_.size());
      }
      if (!Emit(node.kids.back())) {
        return false;
      }
      for (const int j : jumps) {
        prog_[j].x = static_cast<int>(prog_.size());
      }
      return true;
    }
    case Node::Kind::kRepeat: {
      const Node& kid = node.kids[0];
      for (int i = 0; i < node.min; ++i) {
        if (!Emit(kid)) {
          return false;
        }
      }
      if (node.max == -1) {
        const int loop = Push(Op::kSplit, static_cast<int>(prog_.size()) + 1);
        if (!Emit(kid)) {
          return false;
        }
        Push(Op::kJmp, loop);
        prog_[loop].y = static_cast<int>(prog_.size());
        return true;
      }
      std::vector<int> splits;
      for (int i = node.min; i < node.max; ++i) {
        splits.push_back(Push(Op::kSplit, static_cast<int>(prog_.size()) + 1));
        if (!Emit(kid)) {
          return false;
        }
      }
      for (const int s : splits) {
        prog_[s].y = static_cast<int>(prog_.size());
      }
      return prog_.size() <= JsonSchema::kMaxPatternProgram;
    }
  }
  return false;
}

std::optional<bool> Regex::Search(const std::u32string& subject, size_t& budget) const {
  const size_t n = prog_.size();
  std::vector<int> current;
  std::vector<int> next;
  std::vector<int> stack;
  std::vector<size_t> mark(n, 0);  // mark[pc] == gen: pc is in the list being built
  current.reserve(n);
  next.reserve(n);
  bool out_of_budget = false;

  // Adds the closure of `start` at subject position `pos` to `list`; true on a match.
  auto add = [&](std::vector<int>& list, int start, size_t pos, size_t gen) {
    const bool boundary = (pos > 0 && IsWordChar(subject[pos - 1])) !=
                          (pos < subject.size() && IsWordChar(subject[pos]));
    stack.push_back(start);
    while (!stack.empty()) {
      const int pc = stack.back();
      stack.pop_back();
      if (mark[pc] == gen) {
        continue;
      }
      mark[pc] = gen;
      if (budget == 0) {
        out_of_budget = true;
        stack.clear();
        return false;
      }
      --budget;
      const Inst& inst = prog_[pc];
      switch (inst.op) {
        case Op::kMatch:
          stack.clear();
          return true;
        case Op::kClass:
          list.push_back(pc);
          break;
        case Op::kJmp:
          stack.push_back(inst.x);
          break;
        case Op::kSplit:
          stack.push_back(inst.y);
          stack.push_back(inst.x);
          break;
        case Op::kBegin:
          if (pos == 0) {
            stack.push_back(pc + 1);
          }
          break;
        case Op::kEnd:
          if (pos == subject.size()) {
            stack.push_back(pc + 1);
          }
          break;
        case Op::kWordBoundary:
          if (boundary) {
            stack.push_back(pc + 1);
          }
          break;
        case Op::kNotWordBoundary:
          if (!boundary) {
            stack.push_back(pc + 1);
          }
          break;
      }
    }
    return false;
  };

  for (size_t pos = 0;; ++pos) {
    const size_t gen = pos + 1;
    if (pos == 0 || !anchored_) {
      if (add(current, 0, pos, gen)) {
        return true;
      }
      if (out_of_budget) {
        return std::nullopt;
      }
    }
    if (pos == subject.size() || (current.empty() && anchored_)) {
      return false;
    }
    next.clear();
    for (const int pc : current) {
      if (classes_[prog_[pc].x].Contains(subject[pos])) {
        if (add(next, pc + 1, pos + 1, gen + 1)) {
          return true;
        }
        if (out_of_budget) {
          return std::nullopt;
        }
      }
    }
    std::swap(current, next);
  }
}

// ---------------------------------------------------------------------------------------
// Numbers and equality

bool IsInteger(const json& v) {
  if (v.is_number_integer()) {
    return true;
  }
  if (!v.is_number_float()) {
    return false;
  }
  const double d = v.get<double>();
  return std::isfinite(d) && std::trunc(d) == d;
}

double AsDouble(const json& v) {
  if (v.is_number_unsigned()) {
    return static_cast<double>(v.get<uint64_t>());
  }
  if (v.is_number_integer()) {
    return static_cast<double>(v.get<int64_t>());
  }
  return v.get<double>();
}

// -1, 0 or 1 as a <, ==, > b (0 also when a NaN is involved); exact between 64-bit
// integers. REQUIRES: both numbers.
int CompareNumbers(const json& a, const json& b) {
  if (a.is_number_integer() && b.is_number_integer()) {
    const bool a_neg = !a.is_number_unsigned() && a.get<int64_t>() < 0;
    const bool b_neg = !b.is_number_unsigned() && b.get<int64_t>() < 0;
    if (a_neg != b_neg) {
      return a_neg ? -1 : 1;
    }
    if (a_neg) {
      const int64_t x = a.get<int64_t>();
      const int64_t y = b.get<int64_t>();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    const uint64_t x =
        a.is_number_unsigned() ? a.get<uint64_t>() : static_cast<uint64_t>(a.get<int64_t>());
    const uint64_t y =
        b.is_number_unsigned() ? b.get<uint64_t>() : static_cast<uint64_t>(b.get<int64_t>());
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  // With a double involved, compare as doubles: an integer that rounds to the double is
  // indistinguishable from it at the double's precision (18446744073709551600.1 parses to
  // 2^64, which must not exceed a "maximum" of 2^64 - 1).
  const double x = AsDouble(a);
  const double y = AsDouble(b);
  return x < y ? -1 : (x > y ? 1 : 0);
}

// JSON Schema equality: numbers by value, objects regardless of member order. Iterative, so
// that a deeply nested instance cannot exhaust the stack.
bool JsonEqual(const json& a, const json& b) {
  std::vector<std::pair<const json*, const json*>> todo{{&a, &b}};
  while (!todo.empty()) {
    const auto [x, y] = todo.back();
    todo.pop_back();
    if (x->is_number() && y->is_number()) {
      if (CompareNumbers(*x, *y) != 0) {
        return false;
      }
      continue;
    }
    if (x->type() != y->type()) {
      return false;
    }
    if (x->is_object()) {
      const auto& xo = x->get_ref<const json::object_t&>();
      const auto& yo = y->get_ref<const json::object_t&>();
      if (xo.size() != yo.size()) {
        return false;
      }
      for (auto i = xo.begin(), j = yo.begin(); i != xo.end(); ++i, ++j) {
        if (i->first != j->first) {
          return false;
        }
        todo.emplace_back(&i->second, &j->second);
      }
    } else if (x->is_array()) {
      if (x->size() != y->size()) {
        return false;
      }
      for (size_t i = 0; i < x->size(); ++i) {
        todo.emplace_back(&(*x)[i], &(*y)[i]);
      }
    } else if (*x != *y) {
      return false;
    }
  }
  return true;
}

// A hash consistent with JsonEqual (1 and 1.0 hash alike).
size_t JsonHash(const json& v) {
  size_t h = 0;
  auto mix = [&h](size_t x) { h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
  std::vector<const json*> todo{&v};
  while (!todo.empty()) {
    const json* x = todo.back();
    todo.pop_back();
    mix(static_cast<size_t>(x->is_number() ? json::value_t::number_float : x->type()));
    if (x->is_number()) {
      if (x->is_number_unsigned()) {
        mix(std::hash<uint64_t>()(x->get<uint64_t>()));
      } else if (x->is_number_integer()) {
        mix(std::hash<uint64_t>()(static_cast<uint64_t>(x->get<int64_t>())));
      } else {
        const double d = x->get<double>();
        if (IsInteger(*x) && d >= -9.2233720368547758e18 && d < 1.8446744073709552e19) {
          mix(std::hash<uint64_t>()(d < 0 ? static_cast<uint64_t>(static_cast<int64_t>(d))
                                          : static_cast<uint64_t>(d)));
        } else {
          mix(std::hash<double>()(d));
        }
      }
    } else if (x->is_string()) {
      mix(std::hash<std::string>()(x->get_ref<const std::string&>()));
    } else if (x->is_boolean()) {
      mix(x->get<bool>() ? 1 : 2);
    } else if (x->is_object()) {
      mix(x->size());
      for (const auto& [key, value] : x->items()) {
        mix(std::hash<std::string>()(key));
        todo.push_back(&value);
      }
    } else if (x->is_array()) {
      mix(x->size());
      for (const auto& item : *x) {
        todo.push_back(&item);
      }
    }
  }
  return h;
}

// A non-negative decimal digits x 10^exponent, with no trailing zeros in digits.
struct Decimal {
  uint64_t digits = 0;
  int exponent = 0;
};

// The decimal a JSON number was written as: integers exactly, doubles by their shortest
// round-trip form (what the author wrote, for up to 17 significant digits).
Decimal ToDecimal(const json& v) {
  Decimal d;
  if (v.is_number_unsigned()) {
    d.digits = v.get<uint64_t>();
  } else if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    d.digits = i < 0 ? 0 - static_cast<uint64_t>(i) : static_cast<uint64_t>(i);
  } else {
    // Shortest round-trip form, e.g. "0.0075", "1e+308" or "123456789012345680000": at
    // most 17 significant digits, so they fit in 64 bits once zeros go to the exponent.
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, std::fabs(v.get<double>()));
    const std::string_view s(buf, static_cast<size_t>(r.ptr - buf));
    const size_t e = std::min(s.find('e'), s.size());
    std::string digits;
    int fraction_digits = 0;
    bool in_fraction = false;
    for (size_t i = 0; i < e; ++i) {
      if (s[i] == '.') {
        in_fraction = true;
      } else {
        if (!digits.empty() || s[i] != '0') {
          digits += s[i];  // no leading zeros
        }
        if (in_fraction) {
          ++fraction_digits;
        }
      }
    }
    int exponent = 0;
    if (e < s.size()) {
      const char* first = s.data() + e + 1;
      if (*first == '+') {
        ++first;
      }
      std::from_chars(first, s.data() + s.size(), exponent);
    }
    d.exponent = exponent - fraction_digits;
    while (!digits.empty() && digits.back() == '0') {
      digits.pop_back();
      ++d.exponent;
    }
    for (const char c : digits) {
      d.digits = d.digits * 10 + static_cast<uint64_t>(c - '0');
    }
  }
  while (d.digits != 0 && d.digits % 10 == 0) {
    d.digits /= 10;
    ++d.exponent;
  }
  return d;
}

// Whether `value` is an integer multiple of `divisor`, computed on the decimals so that
// 0.0075 is a multiple of 0.0001. REQUIRES: divisor.digits != 0.
bool IsMultiple(const Decimal& value, const Decimal& divisor) {
  if (value.digits == 0) {
    return true;
  }
  // With no trailing zeros in value.digits, 10^k never divides it, so a divisor with a
  // larger exponent cannot divide.
  if (value.exponent < divisor.exponent) {
    return false;
  }
  const uint64_t m = divisor.digits;
  uint64_t r = value.digits % m;
  auto add_mod = [m](uint64_t x, uint64_t y) { return x >= m - y ? x - (m - y) : x + y; };
  for (int k = value.exponent - divisor.exponent; k > 0 && r != 0; --k) {
    uint64_t times10 = 0;
    for (int t = 0; t < 10; ++t) {
      times10 = add_mod(times10, r);
    }
    r = times10;
  }
  return r == 0;
}

// ---------------------------------------------------------------------------------------
// JSON pointers

std::string EscapeToken(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (const char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

// Turns a $ref fragment ("#/a~1b/%25") into reference tokens; nullopt when malformed.
std::optional<std::vector<std::string>> ParseFragmentPointer(std::string_view ref) {
  std::string decoded;
  for (size_t i = 1; i < ref.size(); ++i) {
    if (ref[i] == '%') {
      int value = 0;
      if (i + 2 >= ref.size()) {
        return std::nullopt;
      }
      const auto r = std::from_chars(ref.data() + i + 1, ref.data() + i + 3, value, 16);
      if (r.ptr != ref.data() + i + 3) {
        return std::nullopt;
      }
      decoded += static_cast<char>(value);
      i += 2;
    } else {
      decoded += ref[i];
    }
  }
  std::vector<std::string> tokens;
  if (decoded.empty()) {
    return tokens;
  }
  if (decoded[0] != '/') {
    return std::nullopt;
  }
  size_t start = 1;
  while (true) {
    const size_t end = decoded.find('/', start);
    std::string raw = decoded.substr(start, end == std::string::npos ? end : end - start);
    std::string token;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '~') {
        if (i + 1 >= raw.size() || (raw[i + 1] != '0' && raw[i + 1] != '1')) {
          return std::nullopt;
        }
        token += raw[i + 1] == '0' ? '~' : '/';
        ++i;
      } else {
        token += raw[i];
      }
    }
    tokens.push_back(std::move(token));
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
  return tokens;
}

// ---------------------------------------------------------------------------------------
// The compiled form

enum TypeBit : uint8_t {
  kNullBit = 1,
  kBooleanBit = 2,
  kObjectBit = 4,
  kArrayBit = 8,
  kNumberBit = 16,
  kStringBit = 32,
  kIntegerBit = 64,
};

constexpr std::pair<std::string_view, uint8_t> kTypeNames[] = {
    {"null", kNullBit},       {"boolean", kBooleanBit}, {"object", kObjectBit},
    {"array", kArrayBit},     {"number", kNumberBit},   {"string", kStringBit},
    {"integer", kIntegerBit},
};

std::string_view TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::object:
      return "object";
    case json::value_t::array:
      return "array";
    case json::value_t::string:
      return "string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    case json::value_t::number_float:
      return IsInteger(v) ? "integer" : "number";
    default:
      return "binary";
  }
}

enum class Dialect { kDraft202012, kDraft7 };

struct SchemaNode {
  std::optional<bool> boolean;  // set for the schemas true and false
  int ref = -1;
  uint8_t types = 0;  // TypeBits; 0 when there is no "type"
  std::optional<json> const_value;
  std::optional<json> enum_values;  // an array
  std::optional<json> multiple_of;
  Decimal multiple_of_decimal;
  std::optional<json> maximum, exclusive_maximum, minimum, exclusive_minimum;
  std::optional<uint64_t> max_length, min_length;
  int pattern = -1;  // index into Impl::regexes
  std::optional<uint64_t> max_items, min_items;
  bool unique_items = false;
  std::vector<int> prefix_items;  // draft-07: items as an array
  int items = -1;                 // items past prefix_items (draft-07: additionalItems)
  int contains = -1;
  uint64_t min_contains = 1;
  std::optional<uint64_t> max_contains;
  std::optional<uint64_t> max_properties, min_properties;
  std::vector<std::string> required;
  std::vector<std::pair<std::string, int>> properties;  // sorted by name
  std::vector<std::pair<int, int>> pattern_properties;  // regex, schema
  int additional_properties = -1;
  int property_names = -1;
  std::vector<std::pair<std::string, std::vector<std::string>>> dependent_required;
  std::vector<std::pair<std::string, int>> dependent_schemas;
  std::vector<int> all_of, any_of, one_of;
  int not_schema = -1, if_schema = -1, then_schema = -1, else_schema = -1;
};

struct CompiledSchema {
  std::deque<SchemaNode> nodes;  // a deque: references stay valid while compiling adds more
  std::vector<Regex> regexes;
  std::vector<std::string> regex_sources;
  int root = 0;
};

Status BadSchema(const std::string& pointer, std::string_view message) {
  return InvalidArgumentError(pointer + ": " + std::string(message)).With(kPayloadPointer, pointer);
}

// A bounded, iterative look at the whole document before any recursion: its nesting depth
// and roughly how many bytes it serializes to.
Status CheckSize(const json& schema) {
  std::vector<std::pair<const json*, size_t>> todo{{&schema, 1}};
  size_t bytes = 0;
  while (!todo.empty()) {
    const auto [v, depth] = todo.back();
    todo.pop_back();
    if (depth > JsonSchema::kMaxSchemaDepth) {
      return BadSchema("#", "schema nested deeper than " +
                                std::to_string(JsonSchema::kMaxSchemaDepth) + " levels");
    }
    if (v->is_object()) {
      bytes += 2;
      for (const auto& [key, value] : v->items()) {
        bytes += key.size() + 4;
        todo.emplace_back(&value, depth + 1);
      }
    } else if (v->is_array()) {
      bytes += 2;
      for (const auto& item : *v) {
        bytes += 1;
        todo.emplace_back(&item, depth + 1);
      }
    } else if (v->is_string()) {
      bytes += v->get_ref<const std::string&>().size() + 2;
    } else {
      bytes += 8;
    }
    if (bytes > JsonSchema::kMaxSchemaBytes) {
      return BadSchema(
          "#", "schema larger than " + std::to_string(JsonSchema::kMaxSchemaBytes) + " bytes");
    }
  }
  return OkStatus();
}

bool IsAnnotation(std::string_view key) {
  static constexpr std::string_view kAnnotations[] = {
      "title",         "description", "default",        "examples",        "$comment",
      "deprecated",    "readOnly",    "writeOnly",      "contentEncoding", "contentMediaType",
      "contentSchema", "$anchor",     "$dynamicAnchor", "$vocabulary",     "example",
      "discriminator", "xml",         "externalDocs",
  };
  return key.starts_with("x-") ||
         std::find(std::begin(kAnnotations), std::end(kAnnotations), key) != std::end(kAnnotations);
}

class Compiler {
 public:
  Compiler(const json& root, Dialect dialect, CompiledSchema& impl)
      : root_(root), dialect_(dialect), impl_(impl) {
    if (root.is_object() && root.contains("$id") && root["$id"].is_string()) {
      root_id_ = root["$id"].get<std::string>();
      if (root_id_.ends_with('#')) {
        root_id_.pop_back();
      }
    }
  }

  StatusOr<int> Run() {
    EVO_ASSIGN_OR_RETURN(const int root, CompileAt(root_, "#"));
    // $refs are linked after the tree is compiled, so that cycles become graph edges.
    while (!pending_.empty()) {
      const PendingRef ref = std::move(pending_.back());
      pending_.pop_back();
      const json* target = &root_;
      std::string pointer = "#";
      for (const std::string& token : ref.tokens) {
        pointer += "/" + EscapeToken(token);
        if (target->is_object() && target->contains(token)) {
          target = &(*target)[token];
        } else if (target->is_array() && !token.empty() &&
                   token.find_first_not_of("0123456789") == std::string::npos &&
                   (token == "0" || token[0] != '0') && token.size() < 10 &&
                   std::stoul(token) < target->size()) {
          target = &(*target)[std::stoul(token)];
        } else {
          return BadSchema(ref.where, "$ref target does not exist");
        }
      }
      if (!target->is_object() && !target->is_boolean()) {
        return BadSchema(ref.where, "$ref target is not a schema");
      }
      EVO_ASSIGN_OR_RETURN(const int node, CompileAt(*target, pointer));
      impl_.nodes[ref.node].ref = node;
    }
    return root;
  }

 private:
  struct PendingRef {
    int node;
    std::vector<std::string> tokens;
    std::string where;  // pointer of the $ref keyword
  };

  static bool IsSchema(const json& v) { return v.is_object() || v.is_boolean(); }

  StatusOr<int> CompileAt(const json& schema, const std::string& pointer) {
    if (auto it = by_pointer_.find(pointer); it != by_pointer_.end()) {
      return it->second;
    }
    if (!IsSchema(schema)) {
      return BadSchema(pointer, "must be a schema (an object or a boolean)");
    }
    const int index = static_cast<int>(impl_.nodes.size());
    impl_.nodes.emplace_back();
    by_pointer_.emplace(pointer, index);
    if (schema.is_boolean()) {
      impl_.nodes[index].boolean = schema.get<bool>();
      return index;
    }
    EVO_RETURN_IF_ERROR(CompileObject(schema, pointer, impl_.nodes[index], index));
    return index;
  }

  StatusOr<int> Sub(const json& v, const std::string& pointer) { return CompileAt(v, pointer); }

  StatusOr<std::vector<int>> SchemaArray(const json& v, const std::string& pointer,
                                         bool non_empty) {
    if (!v.is_array() || (non_empty && v.empty())) {
      return BadSchema(pointer,
                       non_empty ? "must be a non-empty array of schemas" : "must be an array");
    }
    std::vector<int> out;
    for (size_t i = 0; i < v.size(); ++i) {
      EVO_ASSIGN_OR_RETURN(const int node, Sub(v[i], pointer + "/" + std::to_string(i)));
      out.push_back(node);
    }
    return out;
  }

  static StatusOr<uint64_t> Count(const json& v, const std::string& pointer) {
    if (!v.is_number() || !IsInteger(v) || CompareNumbers(v, json(0)) < 0) {
      return BadSchema(pointer, "must be a non-negative integer");
    }
    if (v.is_number_unsigned()) {
      return v.get<uint64_t>();
    }
    if (v.is_number_integer()) {
      return static_cast<uint64_t>(v.get<int64_t>());
    }
    const double d = v.get<double>();
    return d >= 1.8446744073709552e19 ? std::numeric_limits<uint64_t>::max()
                                      : static_cast<uint64_t>(d);
  }

  static StatusOr<std::vector<std::string>> StringSet(const json& v, const std::string& pointer) {
    if (!v.is_array()) {
      return BadSchema(pointer, "must be an array of unique strings");
    }
    std::vector<std::string> out;
    for (const auto& item : v) {
      if (!item.is_string() ||
          std::find(out.begin(), out.end(), item.get<std::string>()) != out.end()) {
        return BadSchema(pointer, "must be an array of unique strings");
      }
      out.push_back(item.get<std::string>());
    }
    return out;
  }

  StatusOr<int> Pattern(const json& v, const std::string& pointer) {
    if (!v.is_string()) {
      return BadSchema(pointer, "must be a string");
    }
    Regex re;
    if (auto err = Regex::Compile(v.get_ref<const std::string&>(), re)) {
      return BadSchema(pointer, "invalid regular expression: " + *err);
    }
    program_size_ += re.ProgramSize();
    if (program_size_ > JsonSchema::kMaxSchemaPatternProgram) {
      return BadSchema(pointer, "the schema's patterns compile to more than " +
                                    std::to_string(JsonSchema::kMaxSchemaPatternProgram) +
                                    " automaton states in all");
    }
    impl_.regexes.push_back(std::move(re));
    impl_.regex_sources.push_back(v.get<std::string>());
    return static_cast<int>(impl_.regexes.size()) - 1;
  }

  Status Ref(const json& v, const std::string& pointer, int node) {
    if (!v.is_string()) {
      return BadSchema(pointer, "must be a string");
    }
    std::string ref = v.get_ref<const std::string&>();
    // The root's own $id names this document: "<$id>" and "<$id>#/a" are local.
    if (!root_id_.empty() && ref.starts_with(root_id_) &&
        (ref.size() == root_id_.size() || ref[root_id_.size()] == '#')) {
      ref = ref.size() == root_id_.size() ? "#" : ref.substr(root_id_.size());
    }
    if (ref.empty() || ref[0] != '#') {
      return BadSchema(pointer, "unsupported: $ref to another document (\"" + ref +
                                    "\"); only \"#\" and \"#/json/pointer\" are supported");
    }
    if (ref.size() > 1 && ref[1] != '/') {
      return BadSchema(pointer, "unsupported: $ref to an anchor (\"" + ref +
                                    "\"); only \"#\" and \"#/json/pointer\" are supported");
    }
    auto tokens = ParseFragmentPointer(ref);
    if (!tokens) {
      return BadSchema(pointer, "malformed JSON pointer in $ref");
    }
    pending_.push_back({node, std::move(*tokens), pointer});
    return OkStatus();
  }

  Status CompileObject(const json& schema, const std::string& base, SchemaNode& n, int index) {
    const bool draft7 = dialect_ == Dialect::kDraft7;
    const bool is_root = &schema == &root_;
    auto at = [&base](std::string_view key) { return base + "/" + EscapeToken(key); };

    // Draft-07: "All other properties in a "$ref" object MUST be ignored."
    if (draft7 && schema.contains("$ref")) {
      return Ref(schema["$ref"], at("$ref"), index);
    }
    const json* items_array = nullptr;
    const json* additional_items = nullptr;
    for (const auto& [key, v] : schema.items()) {
      const std::string p = at(key);
      if (key == "type") {
        const json names = v.is_array() ? v : json::array({v});
        if (names.empty()) {
          return BadSchema(p, "must be a type name or an array of them");
        }
        for (const auto& name : names) {
          const auto* it = std::find_if(std::begin(kTypeNames), std::end(kTypeNames),
                                        [&](const auto& t) { return name == t.first; });
          if (it == std::end(kTypeNames) || (n.types & it->second) != 0) {
            return BadSchema(p,
                             "must be a type name (null, boolean, object, array, number, "
                             "string, integer) or an array of distinct ones");
          }
          n.types |= it->second;
        }
      } else if (key == "enum") {
        if (!v.is_array()) {
          return BadSchema(p, "must be an array");
        }
        n.enum_values = v;
      } else if (key == "const") {
        n.const_value = v;
      } else if (key == "multipleOf") {
        if (!v.is_number() || CompareNumbers(v, json(0)) <= 0 ||
            (v.is_number_float() && !std::isfinite(v.get<double>()))) {
          return BadSchema(p, "must be a number greater than 0");
        }
        n.multiple_of = v;
        n.multiple_of_decimal = ToDecimal(v);
        if (n.multiple_of_decimal.digits == 0) {
          return BadSchema(p, "must be a number greater than 0");
        }
      } else if (key == "maximum" || key == "exclusiveMaximum" || key == "minimum" ||
                 key == "exclusiveMinimum") {
        if (!v.is_number()) {
          return BadSchema(p, v.is_boolean() ? "must be a number (a boolean is draft-04 style)"
                                             : "must be a number");
        }
        (key == "maximum"            ? n.maximum
         : key == "exclusiveMaximum" ? n.exclusive_maximum
         : key == "minimum"          ? n.minimum
                                     : n.exclusive_minimum) = v;
      } else if (key == "maxLength") {
        EVO_ASSIGN_OR_RETURN(n.max_length, Count(v, p));
      } else if (key == "minLength") {
        EVO_ASSIGN_OR_RETURN(n.min_length, Count(v, p));
      } else if (key == "pattern") {
        EVO_ASSIGN_OR_RETURN(n.pattern, Pattern(v, p));
      } else if (key == "maxItems") {
        EVO_ASSIGN_OR_RETURN(n.max_items, Count(v, p));
      } else if (key == "minItems") {
        EVO_ASSIGN_OR_RETURN(n.min_items, Count(v, p));
      } else if (key == "uniqueItems") {
        if (!v.is_boolean()) {
          return BadSchema(p, "must be a boolean");
        }
        n.unique_items = v.get<bool>();
      } else if (key == "items") {
        if (v.is_array()) {
          if (!draft7) {
            return BadSchema(p,
                             "unsupported in draft 2020-12: an array-valued items (use "
                             "prefixItems, or declare \"$schema\" draft-07)");
          }
          items_array = &v;
        } else {
          EVO_ASSIGN_OR_RETURN(n.items, Sub(v, p));
        }
      } else if (key == "prefixItems" && !draft7) {
        EVO_ASSIGN_OR_RETURN(n.prefix_items, SchemaArray(v, p, /*non_empty=*/true));
      } else if (key == "additionalItems" && draft7) {
        additional_items = &v;
      } else if (key == "contains") {
        EVO_ASSIGN_OR_RETURN(n.contains, Sub(v, p));
      } else if (key == "minContains" && !draft7) {
        EVO_ASSIGN_OR_RETURN(n.min_contains, Count(v, p));
      } else if (key == "maxContains" && !draft7) {
        EVO_ASSIGN_OR_RETURN(n.max_contains, Count(v, p));
      } else if (key == "maxProperties") {
        EVO_ASSIGN_OR_RETURN(n.max_properties, Count(v, p));
      } else if (key == "minProperties") {
        EVO_ASSIGN_OR_RETURN(n.min_properties, Count(v, p));
      } else if (key == "required") {
        EVO_ASSIGN_OR_RETURN(n.required, StringSet(v, p));
      } else if (key == "properties" || key == "patternProperties" || key == "$defs" ||
                 key == "definitions" || (key == "dependentSchemas" && !draft7)) {
        if (!v.is_object()) {
          return BadSchema(p, "must be an object of schemas");
        }
        for (const auto& [name, sub] : v.items()) {
          const std::string sp = p + "/" + EscapeToken(name);
          EVO_ASSIGN_OR_RETURN(const int node, Sub(sub, sp));
          if (key == "properties") {
            n.properties.emplace_back(name, node);
          } else if (key == "patternProperties") {
            EVO_ASSIGN_OR_RETURN(const int re, Pattern(json(name), sp));
            n.pattern_properties.emplace_back(re, node);
          } else if (key == "dependentSchemas") {
            n.dependent_schemas.emplace_back(name, node);
          }
        }
      } else if (key == "additionalProperties") {
        EVO_ASSIGN_OR_RETURN(n.additional_properties, Sub(v, p));
      } else if (key == "propertyNames") {
        EVO_ASSIGN_OR_RETURN(n.property_names, Sub(v, p));
      } else if (key == "dependentRequired" && !draft7) {
        if (!v.is_object()) {
          return BadSchema(p, "must be an object of string arrays");
        }
        for (const auto& [name, names] : v.items()) {
          EVO_ASSIGN_OR_RETURN(auto list, StringSet(names, p + "/" + EscapeToken(name)));
          n.dependent_required.emplace_back(name, std::move(list));
        }
      } else if (key == "dependencies" && draft7) {
        if (!v.is_object()) {
          return BadSchema(p, "must be an object");
        }
        for (const auto& [name, dep] : v.items()) {
          const std::string dp = p + "/" + EscapeToken(name);
          if (dep.is_array()) {
            EVO_ASSIGN_OR_RETURN(auto list, StringSet(dep, dp));
            n.dependent_required.emplace_back(name, std::move(list));
          } else {
            EVO_ASSIGN_OR_RETURN(const int node, Sub(dep, dp));
            n.dependent_schemas.emplace_back(name, node);
          }
        }
      } else if (key == "allOf") {
        EVO_ASSIGN_OR_RETURN(n.all_of, SchemaArray(v, p, /*non_empty=*/true));
      } else if (key == "anyOf") {
        EVO_ASSIGN_OR_RETURN(n.any_of, SchemaArray(v, p, /*non_empty=*/true));
      } else if (key == "oneOf") {
        EVO_ASSIGN_OR_RETURN(n.one_of, SchemaArray(v, p, /*non_empty=*/true));
      } else if (key == "not") {
        EVO_ASSIGN_OR_RETURN(n.not_schema, Sub(v, p));
      } else if (key == "if") {
        EVO_ASSIGN_OR_RETURN(n.if_schema, Sub(v, p));
      } else if (key == "then") {
        EVO_ASSIGN_OR_RETURN(n.then_schema, Sub(v, p));
      } else if (key == "else") {
        EVO_ASSIGN_OR_RETURN(n.else_schema, Sub(v, p));
      } else if (key == "$ref") {
        EVO_RETURN_IF_ERROR(Ref(v, p, index));
      } else if (key == "format") {
        if (!v.is_string()) {
          return BadSchema(p, "must be a string");
        }
      } else if (key == "$schema" || key == "$id") {
        if (!is_root) {
          return BadSchema(p, "unsupported: " + key + " below the root (embedded resources)");
        }
        if (!v.is_string()) {
          return BadSchema(p, "must be a string");
        }
      } else if (IsAnnotation(key)) {
        // Annotations never change the verdict.
      } else if (key == "$dynamicRef" || key == "$recursiveRef" || key == "$recursiveAnchor" ||
                 key == "unevaluatedProperties" || key == "unevaluatedItems") {
        return BadSchema(p, "unsupported keyword " + key);
      } else if (key == "prefixItems" || key == "minContains" || key == "maxContains" ||
                 key == "dependentRequired" || key == "dependentSchemas") {
        return BadSchema(p, "unsupported in draft-07: " + key + " is a draft 2020-12 keyword");
      } else if (key == "additionalItems" || key == "dependencies") {
        return BadSchema(p,
                         "unsupported in draft 2020-12: " + key + " is a draft-07 keyword (use " +
                             (key == "additionalItems" ? "prefixItems and items"
                                                       : "dependentRequired or dependentSchemas") +
                             ", or declare \"$schema\" draft-07)");
      } else {
        return BadSchema(
            p, "unknown keyword \"" + key + "\" (a vendor annotation must start with \"x-\")");
      }
    }
    if (items_array != nullptr) {
      EVO_ASSIGN_OR_RETURN(n.prefix_items,
                           SchemaArray(*items_array, at("items"), /*non_empty=*/false));
    }
    if (additional_items != nullptr) {
      EVO_ASSIGN_OR_RETURN(const int node, Sub(*additional_items, at("additionalItems")));
      // Draft-07: additionalItems only applies when items is an array.
      if (items_array != nullptr) {
        n.items = node;
      }
    }
    std::sort(n.properties.begin(), n.properties.end());
    return OkStatus();
  }

  const json& root_;
  Dialect dialect_;
  CompiledSchema& impl_;
  size_t program_size_ = 0;  // of all patterns so far
  std::string root_id_;      // without a trailing '#'
  std::unordered_map<std::string, int> by_pointer_;
  std::vector<PendingRef> pending_;
};

// ---------------------------------------------------------------------------------------
// Evaluation

std::string Brief(const json& v) {
  std::string s = v.dump();
  if (s.size() > 80) {
    s = s.substr(0, 77) + "...";
  }
  return s;
}

// "1 item", "2 items", "2 properties".
std::string Plural(uint64_t n, std::string_view noun) {
  std::string out = std::to_string(n) + " " + std::string(noun);
  if (n != 1) {
    if (out.back() == 'y') {
      out.back() = 'i';
      out += "es";
    } else {
      out += 's';
    }
  }
  return out;
}

// In an Evaluator check: records that `expr` (which reports its own errors) failed, and
// returns false from the check once nothing more is wanted (see Stop()).
#define EVO_SCHEMA_CHECK(expr)  \
  do {                          \
    if (!(expr)) {              \
      ok = false;               \
      if (Stop()) return false; \
    }                           \
  } while (false)

class Evaluator {
 public:
  // `errors` null: only the verdict is wanted.
  Evaluator(const CompiledSchema& impl, std::vector<SchemaError>* errors, size_t max_errors)
      : impl_(impl), errors_(errors), max_errors_(std::max<size_t>(max_errors, 1)) {
    if (errors_ == nullptr) {
      quiet_ = 1;
    }
  }

  bool Run(const json& instance) {
    budget_ = StepBudget(instance);
    steps_ = budget_;
    return Eval(impl_.root, instance);
  }

 private:
  // Appends "/token" to the instance pointer for the lifetime of the object.
  class Segment {
   public:
    Segment(std::string& path, std::string_view token) : path_(path), size_(path.size()) {
      path_ += '/';
      path_ += EscapeToken(token);
    }
    Segment(std::string& path, size_t index) : path_(path), size_(path.size()) {
      path_ += '/';
      path_ += std::to_string(index);
    }
    ~Segment() { path_.resize(size_); }
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;

   private:
    std::string& path_;
    size_t size_;
  };

  // Whether the current node should give up now: a quiet test needs only one failure, a
  // full error list is full, and an abort ends everything.
  bool Stop() const {
    return quiet_ > 0 || aborted_ || (errors_ != nullptr && errors_->size() >= max_errors_);
  }

  // Records a failure at the current instance pointer (plus `token`); returns Stop().
  bool Report(std::string message) { return ReportAt(path_, std::move(message)); }
  bool ReportAt(const std::string& pointer, std::string message) {
    if (quiet_ == 0 && errors_->size() < max_errors_) {
      errors_->push_back({pointer, std::move(message)});
    }
    return Stop();
  }

  void Abort(std::string message) {
    aborted_ = true;
    if (errors_ == nullptr) {
      return;
    }
    if (errors_->size() >= max_errors_) {
      errors_->pop_back();
    }
    errors_->push_back({path_, std::move(message)});
  }

  // kBaseEvaluationSteps plus kEvaluationStepsPerByte for each byte the instance roughly
  // serializes to: a big payload may take more work, a hostile schema on a small one not.
  static size_t StepBudget(const json& instance) {
    size_t bytes = 0;
    std::vector<const json*> todo{&instance};
    while (!todo.empty()) {
      const json* v = todo.back();
      todo.pop_back();
      ++bytes;
      if (v->is_string()) {
        bytes += v->get_ref<const std::string&>().size();
      } else if (v->is_object()) {
        for (const auto& [key, value] : v->items()) {
          bytes += key.size();
          todo.push_back(&value);
        }
      } else if (v->is_array()) {
        for (const auto& item : *v) {
          todo.push_back(&item);
        }
      }
    }
    return JsonSchema::kBaseEvaluationSteps + JsonSchema::kEvaluationStepsPerByte * bytes;
  }

  std::string StepsExceeded() const {
    return "validation stopped after " + std::to_string(budget_) +
           " steps (the step budget for this instance)";
  }

  // Evaluates `node` without recording errors.
  bool Test(int node, const json& instance) {
    ++quiet_;
    const bool ok = Eval(node, instance);
    --quiet_;
    return ok;
  }

  bool Eval(int node, const json& instance) {
    if (aborted_) {
      return false;
    }
    if (depth_ >= JsonSchema::kMaxEvaluationDepth) {
      Abort("schema evaluation nested deeper than " +
            std::to_string(JsonSchema::kMaxEvaluationDepth) + " subschemas (a $ref cycle?)");
      return false;
    }
    if (steps_ == 0) {
      Abort(StepsExceeded());
      return false;
    }
    --steps_;
    ++depth_;
    const bool ok = EvalNode(impl_.nodes[node], instance);
    --depth_;
    return ok && !aborted_;
  }

  // Searches `re` in `text`; nullopt (after aborting) when the step budget runs out.
  std::optional<bool> Search(int re, std::string_view text) {
    DecodeUtf8(text, subject_, /*strict=*/false);
    auto found = impl_.regexes[re].Search(subject_, steps_);
    if (!found) {
      Abort(StepsExceeded());
    }
    return found;
  }

  bool EvalNode(const SchemaNode& n, const json& inst) {
    if (n.boolean) {
      if (*n.boolean) {
        return true;
      }
      Report("is not allowed (the schema is false)");
      return false;
    }
    bool ok = true;
    if (n.ref >= 0) {
      EVO_SCHEMA_CHECK(Eval(n.ref, inst));
    }
    if (n.types != 0) {
      EVO_SCHEMA_CHECK(CheckType(n, inst));
    }
    if (n.const_value && !JsonEqual(*n.const_value, inst)) {
      ok = false;
      if (Report("must equal " + Brief(*n.const_value))) {
        return false;
      }
    }
    if (n.enum_values) {
      const auto& values = *n.enum_values;
      if (std::none_of(values.begin(), values.end(),
                       [&](const json& v) { return JsonEqual(v, inst); })) {
        ok = false;
        if (Report("must be one of " + Brief(values))) {
          return false;
        }
      }
    }
    if (inst.is_number()) {
      EVO_SCHEMA_CHECK(CheckNumber(n, inst));
    }
    if (inst.is_string()) {
      EVO_SCHEMA_CHECK(CheckString(n, inst.get_ref<const std::string&>()));
    }
    if (inst.is_array()) {
      EVO_SCHEMA_CHECK(CheckArray(n, inst));
    }
    if (inst.is_object()) {
      EVO_SCHEMA_CHECK(CheckObject(n, inst));
    }
    for (const int sub : n.all_of) {
      EVO_SCHEMA_CHECK(Eval(sub, inst));
    }
    if (!n.any_of.empty()) {
      bool any = false;
      for (const int sub : n.any_of) {
        if (Test(sub, inst)) {
          any = true;
          break;
        }
        if (aborted_) {
          return false;
        }
      }
      if (!any) {
        ok = false;
        if (Report("must match at least one schema of anyOf")) {
          return false;
        }
      }
    }
    if (!n.one_of.empty()) {
      std::vector<size_t> matched;
      for (size_t i = 0; i < n.one_of.size() && matched.size() < 2; ++i) {
        if (Test(n.one_of[i], inst)) {
          matched.push_back(i);
        }
        if (aborted_) {
          return false;
        }
      }
      if (matched.size() != 1) {
        ok = false;
        const std::string which = matched.empty() ? "none"
                                                  : "more than one (" + std::to_string(matched[0]) +
                                                        " and " + std::to_string(matched[1]) + ")";
        if (Report("must match exactly one schema of oneOf, matched " + which)) {
          return false;
        }
      }
    }
    if (n.not_schema >= 0) {
      const bool matched = Test(n.not_schema, inst);
      if (aborted_) {
        return false;
      }
      if (matched) {
        ok = false;
        if (Report("must not match the schema of not")) {
          return false;
        }
      }
    }
    if (n.if_schema >= 0 && (n.then_schema >= 0 || n.else_schema >= 0)) {
      const bool matched = Test(n.if_schema, inst);
      if (aborted_) {
        return false;
      }
      const int branch = matched ? n.then_schema : n.else_schema;
      if (branch >= 0) {
        EVO_SCHEMA_CHECK(Eval(branch, inst));
      }
    }
    return ok;
  }

  bool CheckType(const SchemaNode& n, const json& inst) {
    uint8_t bit = 0;
    switch (inst.type()) {
      case json::value_t::null:
        bit = kNullBit;
        break;
      case json::value_t::boolean:
        bit = kBooleanBit;
        break;
      case json::value_t::object:
        bit = kObjectBit;
        break;
      case json::value_t::array:
        bit = kArrayBit;
        break;
      case json::value_t::string:
        bit = kStringBit;
        break;
      case json::value_t::number_integer:
      case json::value_t::number_unsigned:
      case json::value_t::number_float:
        bit = kNumberBit | (IsInteger(inst) ? kIntegerBit : 0);
        break;
      default:
        break;
    }
    if ((n.types & bit) != 0) {
      return true;
    }
    std::string wanted;
    for (const auto& [name, type_bit] : kTypeNames) {
      if ((n.types & type_bit) == 0) {
        continue;
      }
      if (!wanted.empty()) {
        wanted += " or ";
      }
      wanted += name;
    }
    Report("must be of type " + wanted + ", got " + std::string(TypeName(inst)));
    return false;
  }

  bool CheckNumber(const SchemaNode& n, const json& inst) {
    bool ok = true;
    const bool finite = !inst.is_number_float() || std::isfinite(inst.get<double>());
    if (n.multiple_of && (!finite || !IsMultiple(ToDecimal(inst), n.multiple_of_decimal))) {
      ok = false;
      if (Report("must be a multiple of " + n.multiple_of->dump())) {
        return false;
      }
    }
    auto bound = [&](const std::optional<json>& limit, auto holds, std::string_view op) {
      if (!limit || holds(CompareNumbers(inst, *limit))) {
        return true;
      }
      ok = false;
      return !Report("must be " + std::string(op) + " " + limit->dump());
    };
    if (!bound(
            n.maximum, [](int c) { return c <= 0; }, "<=")) {
      return false;
    }
    if (!bound(
            n.exclusive_maximum, [](int c) { return c < 0; }, "<")) {
      return false;
    }
    if (!bound(
            n.minimum, [](int c) { return c >= 0; }, ">=")) {
      return false;
    }
    if (!bound(
            n.exclusive_minimum, [](int c) { return c > 0; }, ">")) {
      return false;
    }
    return ok;
  }

  bool CheckString(const SchemaNode& n, const std::string& s) {
    bool ok = true;
    if (n.max_length || n.min_length) {
      const size_t length = CodePointCount(s);
      if (n.max_length && length > *n.max_length) {
        ok = false;
        if (Report("must be at most " + Plural(*n.max_length, "character") + " long, got " +
                   std::to_string(length))) {
          return false;
        }
      }
      if (n.min_length && length < *n.min_length) {
        ok = false;
        if (Report("must be at least " + Plural(*n.min_length, "character") + " long, got " +
                   std::to_string(length))) {
          return false;
        }
      }
    }
    if (n.pattern >= 0) {
      const auto found = Search(n.pattern, s);
      if (!found) {
        return false;
      }
      if (!*found) {
        ok = false;
        if (Report("must match the pattern " + impl_.regex_sources[n.pattern])) {
          return false;
        }
      }
    }
    return ok;
  }

  bool CheckArray(const SchemaNode& n, const json& inst) {
    bool ok = true;
    const size_t size = inst.size();
    if (n.max_items && size > *n.max_items) {
      ok = false;
      if (Report("must have at most " + Plural(*n.max_items, "item") + ", got " +
                 std::to_string(size))) {
        return false;
      }
    }
    if (n.min_items && size < *n.min_items) {
      ok = false;
      if (Report("must have at least " + Plural(*n.min_items, "item") + ", got " +
                 std::to_string(size))) {
        return false;
      }
    }
    if (n.unique_items && size > 1) {
      const auto dup = FindDuplicate(inst);
      if (aborted_) {
        return false;
      }
      if (dup) {
        ok = false;
        if (Report("must have unique items, but items " + std::to_string(dup->first) + " and " +
                   std::to_string(dup->second) + " are equal")) {
          return false;
        }
      }
    }
    for (size_t i = 0; i < size; ++i) {
      const int sub = i < n.prefix_items.size() ? n.prefix_items[i] : n.items;
      if (sub < 0) {
        continue;
      }
      Segment segment(path_, i);
      const SchemaNode& target = impl_.nodes[sub];
      if (target.boolean == false && i >= n.prefix_items.size()) {
        ok = false;
        if (Report("is not allowed: the array may have at most " +
                   Plural(n.prefix_items.size(), "item"))) {
          return false;
        }
        break;  // one error says it
      }
      EVO_SCHEMA_CHECK(Eval(sub, inst[i]));
    }
    if (n.contains >= 0) {
      uint64_t count = 0;
      for (size_t i = 0; i < size; ++i) {
        if (Test(n.contains, inst[i])) {
          ++count;
        }
        if (aborted_) {
          return false;
        }
        if (n.max_contains ? count > *n.max_contains : count >= n.min_contains) {
          break;
        }
      }
      if (count < n.min_contains) {
        ok = false;
        if (Report("must contain at least " + Plural(n.min_contains, "item") +
                   " matching contains, got " + std::to_string(count))) {
          return false;
        }
      }
      if (n.max_contains && count > *n.max_contains) {
        ok = false;
        if (Report("must contain at most " + Plural(*n.max_contains, "item") +
                   " matching contains, got more")) {
          return false;
        }
      }
    }
    return ok;
  }

  // The first pair (i, j), i < j, of equal items by the smallest j; nullopt when all differ
  // (or when the step budget ran out, after aborting). Each comparison costs a step, so
  // that items crafted to collide in the hash cannot make this quadratic for long.
  std::optional<std::pair<size_t, size_t>> FindDuplicate(const json& array) {
    std::vector<std::pair<size_t, size_t>> hashed;  // hash, index
    hashed.reserve(array.size());
    for (size_t i = 0; i < array.size(); ++i) {
      hashed.emplace_back(JsonHash(array[i]), i);
    }
    std::sort(hashed.begin(), hashed.end());
    std::optional<std::pair<size_t, size_t>> best;
    for (size_t start = 0; start < hashed.size();) {
      size_t end = start + 1;
      while (end < hashed.size() && hashed[end].first == hashed[start].first) {
        ++end;
      }
      for (size_t a = start; a < end; ++a) {
        for (size_t b = a + 1; b < end; ++b) {
          const size_t i = hashed[a].second;  // i < j: sorted by (hash, index)
          const size_t j = hashed[b].second;
          if (steps_ == 0) {
            Abort(StepsExceeded());
            return std::nullopt;
          }
          --steps_;
          if ((!best || j < best->second) && JsonEqual(array[i], array[j])) {
            best = std::make_pair(i, j);
          }
        }
      }
      start = end;
    }
    return best;
  }

  bool CheckObject(const SchemaNode& n, const json& inst) {
    bool ok = true;
    const size_t size = inst.size();
    if (n.max_properties && size > *n.max_properties) {
      ok = false;
      if (Report("must have at most " + Plural(*n.max_properties, "property") + ", got " +
                 std::to_string(size))) {
        return false;
      }
    }
    if (n.min_properties && size < *n.min_properties) {
      ok = false;
      if (Report("must have at least " + Plural(*n.min_properties, "property") + ", got " +
                 std::to_string(size))) {
        return false;
      }
    }
    for (const std::string& name : n.required) {
      if (inst.contains(name)) {
        continue;
      }
      ok = false;
      Segment segment(path_, name);
      if (Report("is required")) {
        return false;
      }
    }
    for (const auto& [name, names] : n.dependent_required) {
      if (!inst.contains(name)) {
        continue;
      }
      for (const std::string& needed : names) {
        if (inst.contains(needed)) {
          continue;
        }
        ok = false;
        Segment segment(path_, needed);
        if (Report("is required when " + name + " is present")) {
          return false;
        }
      }
    }
    for (const auto& [key, value] : inst.items()) {
      Segment segment(path_, key);
      bool known = false;
      const auto it = std::lower_bound(
          n.properties.begin(), n.properties.end(), key,
          [](const std::pair<std::string, int>& p, const std::string& k) { return p.first < k; });
      if (it != n.properties.end() && it->first == key) {
        known = true;
        EVO_SCHEMA_CHECK(Eval(it->second, value));
      }
      for (const auto& [re, sub] : n.pattern_properties) {
        const auto found = Search(re, key);
        if (!found) {
          return false;
        }
        if (!*found) {
          continue;
        }
        known = true;
        EVO_SCHEMA_CHECK(Eval(sub, value));
      }
      if (!known && n.additional_properties >= 0) {
        if (impl_.nodes[n.additional_properties].boolean == false) {
          ok = false;
          if (Report("is not an allowed property")) {
            return false;
          }
        } else {
          EVO_SCHEMA_CHECK(Eval(n.additional_properties, value));
        }
      }
      if (n.property_names >= 0) {
        const bool named = Test(n.property_names, json(key));
        if (aborted_) {
          return false;
        }
        if (!named) {
          ok = false;
          if (Report("is not an allowed property name")) {
            return false;
          }
        }
      }
    }
    for (const auto& [name, sub] : n.dependent_schemas) {
      if (inst.contains(name)) {
        EVO_SCHEMA_CHECK(Eval(sub, inst));
      }
    }
    return ok;
  }

  const CompiledSchema& impl_;
  std::vector<SchemaError>* errors_;
  size_t max_errors_;
  int quiet_ = 0;
  bool aborted_ = false;
  size_t depth_ = 0;
  size_t budget_ = 0;
  size_t steps_ = 0;  // left of budget_
  std::string path_ = "#";
  std::u32string subject_;  // scratch for regex subjects
};

#undef EVO_SCHEMA_CHECK

}  // namespace

struct JsonSchema::Impl : CompiledSchema {};

StatusOr<JsonSchema> JsonSchema::Compile(const nlohmann::json& schema) {
  if (!schema.is_object() && !schema.is_boolean()) {
    return BadSchema("#", "must be a schema (an object or a boolean)");
  }
  EVO_RETURN_IF_ERROR(CheckSize(schema));
  Dialect dialect = Dialect::kDraft202012;
  if (schema.is_object() && schema.contains("$schema")) {
    const json& uri = schema["$schema"];
    static constexpr std::string_view k202012[] = {"https://json-schema.org/draft/2020-12/schema",
                                                   "https://json-schema.org/draft/2020-12/schema#"};
    static constexpr std::string_view kDraft7[] = {
        "http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-07/schema",
        "https://json-schema.org/draft-07/schema#", "https://json-schema.org/draft-07/schema"};
    const std::string value = uri.is_string() ? uri.get<std::string>() : std::string();
    if (std::find(std::begin(kDraft7), std::end(kDraft7), value) != std::end(kDraft7)) {
      dialect = Dialect::kDraft7;
    } else if (std::find(std::begin(k202012), std::end(k202012), value) == std::end(k202012)) {
      return BadSchema("#/$schema", "unsupported dialect " + uri.dump() +
                                        " (supported: draft 2020-12 and draft-07)");
    }
  }
  auto impl = std::make_shared<Impl>();
  Compiler compiler(schema, dialect, *impl);
  EVO_ASSIGN_OR_RETURN(impl->root, compiler.Run());
  return JsonSchema(std::move(impl));
}

std::vector<SchemaError> JsonSchema::Validate(const nlohmann::json& instance,
                                              size_t max_errors) const {
  std::vector<SchemaError> errors;
  Evaluator evaluator(*impl_, &errors, max_errors);
  if (!evaluator.Run(instance) && errors.empty()) {
    errors.push_back({"#", "does not match the schema"});  // defensive: never "valid"
  }
  return errors;
}

bool JsonSchema::Accepts(const nlohmann::json& instance) const {
  Evaluator evaluator(*impl_, nullptr, 1);
  return evaluator.Run(instance);
}

}  // namespace evo::http
