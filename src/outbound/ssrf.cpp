// The SSRF guard: address ranges, CIDR and URL parsing.
#include "outbound/ssrf.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace evo::outbound {
namespace {

// A forbidden range and what it is called in error messages.
struct Range {
  Cidr cidr;
  std::string_view name;
};

// How an IPv6 range carries an IPv4 address.
enum class Embedding { kLast32, kSixToFour, kTeredo };
struct EmbeddingRange {
  Cidr cidr;
  std::string_view name;
  Embedding embedding;
};

// The tables below are built from constant literals, so parsing them cannot fail.
Cidr MustParse(std::string_view text) { return *ParseCidr(text); }

const std::vector<Range>& ForbiddenV4() {
  static const std::vector<Range> ranges = {
      {MustParse("0.0.0.0/8"), "this-network"},
      {MustParse("10.0.0.0/8"), "private"},
      {MustParse("100.64.0.0/10"), "carrier-grade-nat"},
      {MustParse("127.0.0.0/8"), "loopback"},
      {MustParse("169.254.0.0/16"), "link-local"},
      {MustParse("172.16.0.0/12"), "private"},
      {MustParse("192.0.0.0/24"), "ietf-protocol-assignments"},
      {MustParse("192.0.2.0/24"), "documentation"},
      {MustParse("192.88.99.0/24"), "6to4-relay-anycast"},
      {MustParse("192.168.0.0/16"), "private"},
      {MustParse("198.18.0.0/15"), "benchmarking"},
      {MustParse("198.51.100.0/24"), "documentation"},
      {MustParse("203.0.113.0/24"), "documentation"},
      {MustParse("224.0.0.0/4"), "multicast"},
      {MustParse("240.0.0.0/4"), "reserved"},  // includes 255.255.255.255, broadcast
  };
  return ranges;
}

// Checked before the embedding ranges: "::" and "::1" are inside ::/96 but are not IPv4-compatible
// addresses.
const std::vector<Range>& ForbiddenV6() {
  static const std::vector<Range> ranges = {
      {MustParse("::/128"), "unspecified"},
      {MustParse("::1/128"), "loopback"},
      {MustParse("100::/64"), "discard-only"},
      {MustParse("64:ff9b:1::/48"), "local-use-nat64"},
      {MustParse("2001:2::/48"), "benchmarking"},
      {MustParse("2001:10::/28"), "orchid"},
      {MustParse("2001:db8::/32"), "documentation"},
      {MustParse("3fff::/20"), "documentation"},
      {MustParse("5f00::/16"), "srv6-sids"},
      {MustParse("fc00::/7"), "unique-local"},
      {MustParse("fe80::/10"), "link-local"},
      {MustParse("fec0::/10"), "site-local"},
      {MustParse("ff00::/8"), "multicast"},
  };
  return ranges;
}

const std::vector<EmbeddingRange>& Embeddings() {
  static const std::vector<EmbeddingRange> ranges = {
      {MustParse("::ffff:0:0/96"), "ipv4-mapped", Embedding::kLast32},
      {MustParse("::ffff:0:0:0/96"), "ipv4-translated", Embedding::kLast32},
      {MustParse("::/96"), "ipv4-compatible", Embedding::kLast32},
      {MustParse("64:ff9b::/96"), "nat64", Embedding::kLast32},
      {MustParse("2002::/16"), "6to4", Embedding::kSixToFour},
      {MustParse("2001::/32"), "teredo", Embedding::kTeredo},
  };
  return ranges;
}

uint32_t Load32(const std::array<uint8_t, 16>& b, int at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
         uint32_t{b[at + 3]};
}

// The IPv4 addresses an IPv6 address in `range` carries.
std::vector<IpAddress> Embedded(const IpAddress& a, Embedding embedding) {
  switch (embedding) {
    case Embedding::kLast32:
      return {IpAddress::V4(Load32(a.bytes, 12))};
    case Embedding::kSixToFour:
      return {IpAddress::V4(Load32(a.bytes, 2))};
    case Embedding::kTeredo:
      // 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC, the client address stored inverted.
      return {IpAddress::V4(Load32(a.bytes, 4)), IpAddress::V4(~Load32(a.bytes, 12))};
  }
  return {};
}

bool Allowed(const IpAddress& a, const SsrfPolicy* policy) {
  if (policy == nullptr) {
    return false;
  }
  for (const Cidr& c : policy->allow) {
    if (c.Contains(a)) {
      return true;
    }
  }
  return false;
}

// Why `a` is forbidden under `policy` (null: no allow-list), or nullopt when it is not.
std::optional<std::string> Forbidden(const IpAddress& a, const SsrfPolicy* policy) {
  if (Allowed(a, policy)) {
    return std::nullopt;
  }
  for (const Range& r : a.is_v4() ? ForbiddenV4() : ForbiddenV6()) {
    if (r.cidr.Contains(a)) {
      return std::string(r.name) + " " + r.cidr.ToString();
    }
  }
  if (a.is_v4()) {
    return std::nullopt;
  }
  for (const EmbeddingRange& r : Embeddings()) {
    if (!r.cidr.Contains(a)) {
      continue;
    }
    // ::ffff:0:0/96 is inside ::/96 too; the first (most specific) match decides.
    for (const IpAddress& v4 : Embedded(a, r.embedding)) {
      if (auto why = Forbidden(v4, policy)) {
        return std::string(r.name) + " " + r.cidr.ToString() + " -> " + v4.ToString() + " in " +
               *why;
      }
    }
    return std::nullopt;
  }
  return std::nullopt;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int HexValue(char c) {
  if (IsDigit(c)) {
    return c - '0';
  }
  return (c | 0x20) - 'a' + 10;
}
char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c; }

// One part of an inet_aton-style IPv4 address: decimal, octal with a leading 0, or hex with a
// leading 0x ("0x" alone is 0, as in WHATWG and glibc). Values past 2^32 are nullopt.
std::optional<uint64_t> ParseV4Part(std::string_view p) {
  if (p.empty()) {
    return std::nullopt;
  }
  int base = 10;
  if (p.size() >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    base = 16;
    p.remove_prefix(2);
  } else if (p.size() >= 2 && p[0] == '0') {
    base = 8;
    p.remove_prefix(1);
  }
  uint64_t v = 0;
  for (char c : p) {
    int d = 0;
    if (base == 16 && IsHexDigit(c)) {
      d = HexValue(c);
    } else if (IsDigit(c) && c - '0' < base) {
      d = c - '0';
    } else {
      return std::nullopt;
    }
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
    if (v > 0xffffffffULL) {
      return std::nullopt;
    }
  }
  return v;
}

// inet_aton semantics: "a.b.c.d", "a.b.c" (c is 16 bits), "a.b" (b is 24 bits), "a" (32 bits).
std::optional<uint32_t> ParseLenientV4(std::string_view s) {
  std::vector<uint64_t> parts;
  while (true) {
    size_t dot = s.find('.');
    auto part = ParseV4Part(s.substr(0, dot));
    if (!part || parts.size() == 4) {
      return std::nullopt;
    }
    parts.push_back(*part);
    if (dot == std::string_view::npos) {
      break;
    }
    s.remove_prefix(dot + 1);
  }
  uint64_t result = 0;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i] > 255) {
      return std::nullopt;
    }
    result |= parts[i] << (24 - 8 * i);
  }
  const uint64_t last = parts.back();
  const size_t last_bits = 8 * (5 - parts.size());
  if (last_bits < 32 && last >= (uint64_t{1} << last_bits)) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(result | last);
}

// WHATWG "ends in a number": the last label is all digits, or 0x followed by hex digits.
bool EndsInNumber(std::string_view host) {
  size_t dot = host.rfind('.');
  std::string_view last = dot == std::string_view::npos ? host : host.substr(dot + 1);
  if (last.empty()) {
    return false;
  }
  bool all_digits = true;
  for (char c : last) {
    all_digits = all_digits && IsDigit(c);
  }
  if (all_digits) {
    return true;
  }
  if (last.size() >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
    for (char c : last.substr(2)) {
      if (!IsHexDigit(c)) {
        return false;
      }
    }
    return true;
  }
  return false;
}

Status BadUrl(std::string_view why) {
  return InvalidArgumentError("invalid URL: " + std::string(why));
}

bool IsNameChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
         c == '.';
}

// Fills url.host/ip/zone from the authority's host part (brackets included for IPv6).
Status ParseHost(std::string_view host, Url& url) {
  if (host.empty()) {
    return BadUrl("the host is empty");
  }
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      return BadUrl("an IPv6 host must be enclosed in brackets");
    }
    std::string_view inner = host.substr(1, host.size() - 2);
    std::string_view zone;
    if (size_t pct = inner.find('%'); pct != std::string_view::npos) {
      zone = inner.substr(pct + 1);
      inner = inner.substr(0, pct);
      if (zone.substr(0, 2) == "25") {  // RFC 6874 "%25"; a bare '%' is what curl also takes
        zone.remove_prefix(2);
      }
      if (zone.empty()) {
        return BadUrl("the IPv6 zone id is empty");
      }
      for (char c : zone) {
        if (!(IsNameChar(c) || c == '~')) {
          return BadUrl("the IPv6 zone id has a character other than letters, digits, -._~");
        }
      }
    }
    std::string text(inner);
    in6_addr a6{};
    if (text.size() > INET6_ADDRSTRLEN || inet_pton(AF_INET6, text.c_str(), &a6) != 1) {
      return BadUrl("the host is not a valid IPv6 address");
    }
    std::array<uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), &a6, 16);
    url.ip = IpAddress::V6(bytes);
    url.host = url.ip->ToString();
    url.zone = std::string(zone);
    return OkStatus();
  }
  for (char c : host) {
    if (!IsNameChar(c)) {
      return BadUrl("the host has a character other than letters, digits, '-', '_' and '.'");
    }
  }
  if (host.back() == '.') {
    host.remove_suffix(1);  // "example.com." is the fully qualified spelling of example.com
  }
  if (host.empty() || host.size() > 253) {
    return BadUrl("the host must be 1..253 characters");
  }
  std::string lower;
  lower.reserve(host.size());
  for (char c : host) {
    lower.push_back(Lower(c));
  }
  if (EndsInNumber(lower)) {
    auto v4 = ParseLenientV4(lower);
    if (!v4) {
      return BadUrl("the host ends in a number but is not a valid IPv4 address");
    }
    url.ip = IpAddress::V4(*v4);
    url.host = url.ip->ToString();
    return OkStatus();
  }
  size_t start = 0;
  while (start <= lower.size()) {
    size_t dot = lower.find('.', start);
    size_t len = (dot == std::string::npos ? lower.size() : dot) - start;
    if (len == 0 || len > 63) {
      return BadUrl("each label of the host must be 1..63 characters");
    }
    if (dot == std::string::npos) {
      break;
    }
    start = dot + 1;
  }
  url.host = std::move(lower);
  return OkStatus();
}

}  // namespace

IpAddress IpAddress::V4(uint32_t host_order) {
  IpAddress a;
  a.family = Family::kV4;
  a.bytes[0] = static_cast<uint8_t>(host_order >> 24);
  a.bytes[1] = static_cast<uint8_t>(host_order >> 16);
  a.bytes[2] = static_cast<uint8_t>(host_order >> 8);
  a.bytes[3] = static_cast<uint8_t>(host_order);
  return a;
}

IpAddress IpAddress::V6(const std::array<uint8_t, 16>& bytes) {
  IpAddress a;
  a.family = Family::kV6;
  a.bytes = bytes;
  return a;
}

uint32_t IpAddress::v4() const { return Load32(bytes, 0); }

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes.data(), buf, sizeof(buf));
  return buf;
}

StatusOr<IpAddress> ParseIpAddress(std::string_view text) {
  std::string s(text);
  if (s.size() <= INET_ADDRSTRLEN) {
    in_addr a4{};
    if (inet_pton(AF_INET, s.c_str(), &a4) == 1) {
      return IpAddress::V4(ntohl(a4.s_addr));
    }
  }
  if (s.size() <= INET6_ADDRSTRLEN) {
    in6_addr a6{};
    if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) {
      std::array<uint8_t, 16> bytes{};
      std::memcpy(bytes.data(), &a6, 16);
      return IpAddress::V6(bytes);
    }
  }
  return InvalidArgumentError("not an IP address: \"" + s + "\"");
}

std::optional<IpAddress> FromSockaddr(const sockaddr* address, socklen_t len) {
  if (address == nullptr) {
    return std::nullopt;
  }
  if (address->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in{};
    std::memcpy(&in, address, sizeof(in));
    return IpAddress::V4(ntohl(in.sin_addr.s_addr));
  }
  if (address->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, address, sizeof(in6));
    std::array<uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), &in6.sin6_addr, 16);
    return IpAddress::V6(bytes);
  }
  return std::nullopt;
}

bool Cidr::Contains(const IpAddress& address) const {
  if (address.family != network.family) {
    return false;
  }
  int bits = prefix_len;
  for (int i = 0; bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((address.bytes[i] & mask) != network.bytes[i]) {
      return false;
    }
  }
  return true;
}

std::string Cidr::ToString() const { return network.ToString() + "/" + std::to_string(prefix_len); }

StatusOr<Cidr> ParseCidr(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError("invalid CIDR \"" + std::string(text) + "\": " + std::string(why));
  };
  std::string_view addr_text = text;
  std::optional<int> prefix;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    addr_text = text.substr(0, slash);
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3) {
      return bad("the prefix length must be 0..32 (IPv4) or 0..128 (IPv6)");
    }
    int v = 0;
    for (char c : p) {
      if (!IsDigit(c)) {
        return bad("the prefix length must be decimal digits");
      }
      v = v * 10 + (c - '0');
    }
    prefix = v;
  }
  auto address = ParseIpAddress(addr_text);
  if (!address.ok()) {
    return bad("not an IPv4 or IPv6 address");
  }
  const int max_len = address->is_v4() ? 32 : 128;
  const int len = prefix.value_or(max_len);
  if (len > max_len) {
    return bad("the prefix length must be 0..32 (IPv4) or 0..128 (IPv6)");
  }
  Cidr cidr{*address, len};
  IpAddress masked = *address;
  for (int i = 0; i < 16; ++i) {
    const int bits = len - 8 * i;
    const uint8_t mask = bits >= 8   ? 0xff
                         : bits <= 0 ? 0
                                     : static_cast<uint8_t>(0xff << (8 - bits));
    masked.bytes[i] &= mask;
  }
  if (masked != *address) {
    return bad("host bits are set below the prefix (did you mean " + masked.ToString() + "/" +
               std::to_string(len) + "?)");
  }
  return cidr;
}

std::optional<std::string> ForbiddenRange(const IpAddress& address) {
  return Forbidden(address, nullptr);
}

bool IsForbiddenAddress(const IpAddress& address, const SsrfPolicy& policy) {
  return Forbidden(address, &policy).has_value();
}

bool IsForbiddenAddress(const sockaddr* address, socklen_t len, const SsrfPolicy& policy) {
  auto ip = FromSockaddr(address, len);
  return !ip || IsForbiddenAddress(*ip, policy);
}

Status CheckAddress(const IpAddress& address, const SsrfPolicy& policy) {
  auto why = Forbidden(address, &policy);
  if (!why) {
    return OkStatus();
  }
  return PermissionDeniedError(std::string(kReasonSsrfBlocked) + ": " + address.ToString() +
                               " is in " + *why)
      .With(kPayloadReason, std::string(kReasonSsrfBlocked));
}

std::string Url::ToString() const {
  std::string out = scheme + "://";
  if (ip && !ip->is_v4()) {
    out += "[" + host;
    if (!zone.empty()) {
      out += "%25" + zone;
    }
    out += "]";
  } else {
    out += host;
  }
  out += ':';
  out += std::to_string(port);
  out += target;
  return out;
}

StatusOr<Url> ParseUrl(std::string_view text) {
  if (text.empty()) {
    return BadUrl("empty");
  }
  if (text.size() > kMaxUrlLength) {
    return BadUrl("longer than " + std::to_string(kMaxUrlLength) + " bytes");
  }
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return BadUrl("control character");
    }
    if (u == ' ') {
      return BadUrl("space (percent-encode it as %20)");
    }
    if (u >= 0x80) {
      return BadUrl("non-ASCII byte (use punycode for the host, percent-encoding elsewhere)");
    }
    if (u == '\\') {
      return BadUrl("backslash");
    }
    if (u == '#') {
      return BadUrl("fragment ('#...') is not allowed");
    }
  }
  Url url;
  size_t colon = text.find("://");
  if (colon == std::string_view::npos) {
    return BadUrl("must be absolute, http://... or https://...");
  }
  for (char c : text.substr(0, colon)) {
    url.scheme.push_back(Lower(c));
  }
  if (url.scheme == "http") {
    url.port = 80;
  } else if (url.scheme == "https") {
    url.port = 443;
  } else {
    return BadUrl("the scheme must be http or https");
  }
  std::string_view rest = text.substr(colon + 3);
  const size_t end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  std::string_view target = end == std::string_view::npos ? "" : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    return BadUrl("credentials (user@host) are not allowed");
  }
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return BadUrl("unterminated IPv6 host");
    }
    host = authority.substr(0, close + 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return BadUrl("unexpected characters after the IPv6 host");
      }
      port = after.substr(1);
      if (port.empty()) {
        return BadUrl("empty port");
      }
    }
  } else if (size_t c = authority.find(':'); c != std::string_view::npos) {
    host = authority.substr(0, c);
    port = authority.substr(c + 1);
    if (port.empty()) {
      return BadUrl("empty port");
    }
  }
  if (!port.empty()) {
    uint32_t p = 0;
    for (char c : port) {
      if (!IsDigit(c) || p > 65535) {
        return BadUrl("the port must be 1..65535");
      }
      p = p * 10 + static_cast<uint32_t>(c - '0');
    }
    if (p < 1 || p > 65535) {
      return BadUrl("the port must be 1..65535");
    }
    url.port = static_cast<uint16_t>(p);
  }
  EVO_RETURN_IF_ERROR(ParseHost(host, url));
  if (target.empty() || target.front() == '?') {
    url.target.push_back('/');
  }
  url.target.append(target);
  return url;
}

Status CheckUrl(const Url& url, const SsrfPolicy& policy) {
  if (!url.ip) {
    return OkStatus();
  }
  return CheckAddress(*url.ip, policy);
}

}  // namespace evo::outbound
