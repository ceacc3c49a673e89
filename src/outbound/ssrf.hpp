// The SSRF guard of the outbound module: which addresses and URLs evo's webhook and
// notification delivery may reach.
//
// Webhook URLs are written by users, so without a guard evo would fetch whatever they point at:
// the loopback admin port, the cloud metadata service (169.254.169.254, fd00:ec2::254), the
// private network behind the firewall. The guard works at two points:
//
//   ParseUrl + CheckUrl   when a URL is registered and again before each request: the URL must
//                         be a plain absolute http(s) URL, and a host that is an IP literal in
//                         any spelling a resolver accepts ("2130706433", "0x7f.1",
//                         "[::ffff:127.0.0.1]") must not be in a forbidden range.
//   IsForbiddenAddress    at connect time, on every address the client is about to connect to
//                         after DNS resolution (Client installs it as libcurl's open-socket
//                         callback). This is the check that matters: a host name that resolves
//                         to 127.0.0.1 ("localhost", an /etc/hosts entry, DNS rebinding) is
//                         caught here, because the check sees the address actually dialled.
//
// Forbidden ranges (IANA special-purpose registries; ForbiddenRange() names them):
//   IPv4  0.0.0.0/8 this network · 10.0.0.0/8 private · 100.64.0.0/10 CGNAT · 127.0.0.0/8
//         loopback · 169.254.0.0/16 link-local (cloud metadata) · 172.16.0.0/12 private ·
//         192.0.0.0/24 IETF protocol assignments · 192.0.2.0/24 documentation · 192.88.99.0/24
//         6to4 relay anycast · 192.168.0.0/16 private · 198.18.0.0/15 benchmarking ·
//         198.51.100.0/24 and 203.0.113.0/24 documentation · 224.0.0.0/4 multicast ·
//         240.0.0.0/4 reserved, including 255.255.255.255 broadcast
//   IPv6  ::/128 unspecified · ::1/128 loopback · 100::/64 discard-only · 64:ff9b:1::/48
//         local-use NAT64 · 2001:2::/48 benchmarking · 2001:10::/28 ORCHID · 2001:db8::/32 and
//         3fff::/20 documentation · 5f00::/16 SRv6 SIDs · fc00::/7 unique local · fe80::/10
//         link-local · fec0::/10 site-local (deprecated) · ff00::/8 multicast
//   IPv6 forms that carry an IPv4 address are judged by that address: IPv4-mapped
//   ::ffff:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16 (bits 16..47) and
//   Teredo 2001::/32 (server bits 32..63 and the inverted client bits 96..127; either one being
//   forbidden forbids the address).
// Documentation and benchmarking ranges are refused because nothing legitimate lives there and
// test networks reuse them internally. Any address that is not IPv4 or IPv6 (AF_UNIX) is
// forbidden.
//
// SsrfPolicy::allow opts ranges back in (`--webhooks-allow-cidr 10.1.0.0/16`, repeatable): an
// address inside an allow entry is permitted even if a forbidden range holds it. For the IPv6
// forms above that carry an IPv4 address, an allow entry matching either the IPv6 address or the
// IPv4 address it carries permits it. The allow-list only opts in; it never restricts public
// addresses.
//
// Thread safety: everything here is a pure function of its arguments or a value type.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"

namespace evo::outbound {

// The machine reason (kPayloadReason) of every refusal by the guard.
inline constexpr std::string_view kReasonSsrfBlocked = "SSRF_BLOCKED";

// An IPv4 or IPv6 address (no port, no zone).
struct IpAddress {
  enum class Family : uint8_t { kV4, kV6 };
  Family family = Family::kV4;
  // Network byte order; an IPv4 address uses bytes[0..3] and leaves the rest zero.
  std::array<uint8_t, 16> bytes{};

  static IpAddress V4(uint32_t host_order);
  static IpAddress V6(const std::array<uint8_t, 16>& bytes);
  bool is_v4() const { return family == Family::kV4; }
  // Bytes in use: 4 or 16.
  int size() const { return is_v4() ? 4 : 16; }
  // The IPv4 address as a host-order integer. REQUIRES: is_v4().
  uint32_t v4() const;
  // "127.0.0.1", "::1" (RFC 5952, as inet_ntop writes it; "::ffff:127.0.0.1" for mapped).
  std::string ToString() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// A strictly spelled address: dotted-quad IPv4 ("127.0.0.1") or IPv6 ("::1",
// "::ffff:127.0.0.1"), no brackets, no zone. InvalidArgument otherwise. For the lenient IPv4
// spellings of URLs see ParseUrl.
StatusOr<IpAddress> ParseIpAddress(std::string_view text);

// The address of an AF_INET or AF_INET6 socket address; nullopt for any other family, for a null
// pointer or when `len` is too short for the family.
std::optional<IpAddress> FromSockaddr(const sockaddr* address, socklen_t len);

// A network: an address and a prefix length.
struct Cidr {
  IpAddress network;   // host bits are zero
  int prefix_len = 0;  // 0..32 for IPv4, 0..128 for IPv6

  // True when `address` is of the same family and inside the network.
  bool Contains(const IpAddress& address) const;
  // "10.0.0.0/8", "::1/128".
  std::string ToString() const;

  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// Parses "10.0.0.0/8", "fc00::/7", "::1/128"; a bare address is a /32 or /128. Surrounding
// spaces are not accepted. Host bits set below the prefix ("10.1.2.3/8") are InvalidArgument
// rather than silently cleared: an allow-list entry that does not mean what it says is a
// configuration mistake. InvalidArgument naming the text for anything else.
StatusOr<Cidr> ParseCidr(std::string_view text);

// What the guard permits beyond the default.
struct SsrfPolicy {
  // Ranges opted back in (see the file comment). Empty by default: every forbidden range is
  // refused.
  std::vector<Cidr> allow;
};

// The forbidden range that holds `address`, ignoring any allow-list, e.g. "loopback
// 127.0.0.0/8", or "ipv4-mapped ::ffff:0:0/96 -> loopback 127.0.0.0/8" for an address that
// carries a forbidden IPv4 address; nullopt for a public address.
std::optional<std::string> ForbiddenRange(const IpAddress& address);

// True when `address` is in a forbidden range and no entry of `policy.allow` opts it back in.
bool IsForbiddenAddress(const IpAddress& address, const SsrfPolicy& policy);
// The same for a socket address; true for a null pointer and for any family but AF_INET and
// AF_INET6 (the caller is about to connect there and cannot be sure where that goes).
bool IsForbiddenAddress(const sockaddr* address, socklen_t len, const SsrfPolicy& policy);

// OK when IsForbiddenAddress() is false; otherwise PermissionDenied with reason SSRF_BLOCKED and
// a message naming the address and the range ("SSRF_BLOCKED: 127.0.0.1 is in loopback
// 127.0.0.0/8").
Status CheckAddress(const IpAddress& address, const SsrfPolicy& policy);

// A parsed absolute http or https URL.
struct Url {
  std::string scheme;  // "http" or "https" (lower case)
  // The host, normalised: a name in lower case without a trailing dot ("example.com"), or an IP
  // literal in canonical form without brackets or zone ("127.0.0.1" for "0x7f.1", "::1").
  std::string host;
  std::optional<IpAddress> ip;  // set when the host is an IP literal
  std::string zone;             // an IPv6 zone id ("eth0"), without "%25"; usually empty
  uint16_t port = 0;            // the explicit port or the scheme's default (80, 443)
  std::string target;           // path and query as written, "/" when the URL has none

  // The URL rebuilt from the normalised parts, as the client sends it: "http://127.0.0.1:80/x",
  // "https://[fe80::1%25eth0]:443/". The port is always written.
  std::string ToString() const;
};

// Maximum length of a URL accepted by ParseUrl.
inline constexpr size_t kMaxUrlLength = 2048;

// Parses an absolute URL, accepting only:
//   scheme      http or https, any case
//   authority   host[:port]; no userinfo ("user@host" would be read differently by different
//               parsers); port 1..65535 in decimal digits
//   host        a name of letters, digits, '-', '_' and '.' (one trailing dot allowed); an IPv4
//               address in any spelling inet_aton accepts — 1 to 4 parts, each decimal, octal
//               (leading 0) or hex (0x): "127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.1",
//               "127.1", "0"; or a bracketed IPv6 address, optionally with a zone id
//               ("[fe80::1%25eth0]", RFC 6874; a bare '%' is accepted too). A name whose last
//               label is a number (digits, or 0x and hex digits) must be a valid IPv4
//               address ("1.2.3.4.5", "256.1.1.1", "08.0.0.1" are refused), as in the WHATWG
//               URL standard, so that no resolver can read it as an address we did not check.
//   path/query  any printable ASCII except space and backslash
// and refusing fragments ('#': never sent, and a classic way to make parsers disagree), control
// characters, spaces, non-ASCII bytes (send IDNs in punycode, paths percent-encoded) and URLs
// longer than kMaxUrlLength. InvalidArgument naming the problem otherwise.
StatusOr<Url> ParseUrl(std::string_view text);

// OK unless the URL's host is an IP literal that IsForbiddenAddress() refuses (PermissionDenied,
// SSRF_BLOCKED). Host names pass: they are checked on their resolved addresses at connect time.
Status CheckUrl(const Url& url, const SsrfPolicy& policy);

}  // namespace evo::outbound
