// Tests of the SSRF guard: CIDR parsing, every forbidden range, the IPv6 forms that carry an
// IPv4 address, the allow-list, URL parsing and the odd IPv4/IPv6 spellings resolvers accept.
#include "outbound/ssrf.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <string>
#include <vector>

namespace evo::outbound {
namespace {

IpAddress Ip(std::string_view text) {
  auto ip = ParseIpAddress(text);
  EXPECT_TRUE(ip.ok()) << text << ": " << ip.status();
  return ip.value_or(IpAddress{});
}

SsrfPolicy Allow(std::initializer_list<std::string_view> cidrs) {
  SsrfPolicy policy;
  for (auto text : cidrs) {
    auto cidr = ParseCidr(text);
    EXPECT_TRUE(cidr.ok()) << cidr.status();
    policy.allow.push_back(*cidr);
  }
  return policy;
}

// ---- Addresses and CIDRs -------------------------------------------------------------------

TEST(IpAddress, ParsesStrictSpellingsOnly) {
  EXPECT_EQ(Ip("127.0.0.1"), IpAddress::V4(0x7f000001));
  EXPECT_EQ(Ip("::1").ToString(), "::1");
  EXPECT_EQ(Ip("::ffff:127.0.0.1").ToString(), "::ffff:127.0.0.1");
  EXPECT_EQ(Ip("2001:DB8::1").ToString(), "2001:db8::1");
  for (std::string_view bad : {"", "127.1", "0x7f.0.0.1", "2130706433", "01.2.3.4", "1.2.3.4 ",
                               "[::1]", "fe80::1%eth0", "::1/128", "1.2.3.256", "localhost"}) {
    EXPECT_EQ(ParseIpAddress(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(Cidr, ParsesIpv4AndIpv6WithAndWithoutPrefix) {
  struct Case {
    std::string_view text;
    std::string_view canonical;
  };
  for (const Case& c : std::vector<Case>{
           {"10.0.0.0/8", "10.0.0.0/8"},
           {"127.0.0.1", "127.0.0.1/32"},
           {"127.0.0.1/32", "127.0.0.1/32"},
           {"0.0.0.0/0", "0.0.0.0/0"},
           {"172.16.0.0/12", "172.16.0.0/12"},
           {"::1/128", "::1/128"},
           {"::1", "::1/128"},
           {"fc00::/7", "fc00::/7"},
           {"FE80::/10", "fe80::/10"},
           {"::/0", "::/0"},
           {"::ffff:127.0.0.1/128", "::ffff:127.0.0.1/128"},
       }) {
    auto cidr = ParseCidr(c.text);
    ASSERT_TRUE(cidr.ok()) << c.text << ": " << cidr.status();
    EXPECT_EQ(cidr->ToString(), c.canonical);
  }
}

TEST(Cidr, RejectsMalformedTextAndHostBits) {
  for (std::string_view bad :
       {"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.0/x",
        " 10.0.0.0/8", "10.0.0.0/8 ", "10/8", "example.com/8", "10.0.0.0/0008", "[::1]/128"}) {
    EXPECT_EQ(ParseCidr(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  auto host_bits = ParseCidr("10.1.2.3/8");
  EXPECT_EQ(host_bits.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(host_bits.status().message().find("10.0.0.0/8"), std::string_view::npos);
  EXPECT_EQ(ParseCidr("fe80::1/10").status().code(), StatusCode::kInvalidArgument);
}

TEST(Cidr, ContainsOnlyItsOwnFamilyAndRange) {
  auto net = *ParseCidr("172.16.0.0/12");
  EXPECT_TRUE(net.Contains(Ip("172.16.0.0")));
  EXPECT_TRUE(net.Contains(Ip("172.31.255.255")));
  EXPECT_FALSE(net.Contains(Ip("172.32.0.0")));
  EXPECT_FALSE(net.Contains(Ip("172.15.255.255")));
  EXPECT_FALSE(net.Contains(Ip("::ffff:172.16.0.1")));  // another family
  auto all = *ParseCidr("0.0.0.0/0");
  EXPECT_TRUE(all.Contains(Ip("255.255.255.255")));
  auto v6 = *ParseCidr("fe80::/10");
  EXPECT_TRUE(v6.Contains(Ip("febf:ffff::1")));
  EXPECT_FALSE(v6.Contains(Ip("fec0::1")));
}

// ---- Forbidden ranges ----------------------------------------------------------------------

TEST(Ssrf, RefusesEveryForbiddenIpv4Range) {
  const SsrfPolicy none;
  for (std::string_view a : {
           "0.0.0.0",         "0.255.255.255",   "10.0.0.0",        "10.255.255.255",
           "100.64.0.0",      "100.127.255.255", "100.100.100.200", "127.0.0.1",
           "127.255.255.254", "169.254.0.1",     "169.254.169.254", "172.16.0.1",
           "172.31.255.255",  "192.0.0.8",       "192.0.2.1",       "192.88.99.1",
           "192.168.0.1",     "192.168.255.255", "198.18.0.1",      "198.19.255.255",
           "198.51.100.7",    "203.0.113.9",     "224.0.0.1",       "239.255.255.250",
           "240.0.0.1",       "255.255.255.255",
       }) {
    EXPECT_TRUE(IsForbiddenAddress(Ip(a), none)) << a;
    EXPECT_TRUE(ForbiddenRange(Ip(a)).has_value()) << a;
  }
}

TEST(Ssrf, PermitsPublicIpv4JustOutsideTheRanges) {
  const SsrfPolicy none;
  for (std::string_view a :
       {"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
        "126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255",
        "172.32.0.0", "192.0.1.0", "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0",
        "223.255.255.255", "93.184.216.34"}) {
    EXPECT_FALSE(IsForbiddenAddress(Ip(a), none)) << a << " " << ForbiddenRange(Ip(a)).value_or("");
  }
}

TEST(Ssrf, RefusesEveryForbiddenIpv6Range) {
  const SsrfPolicy none;
  for (std::string_view a :
       {"::", "::1", "100::1", "64:ff9b:1::1", "2001:2::1", "2001:10::1", "2001:db8::1",
        "2001:db8:ffff::1", "3fff::1", "5f00::1", "fc00::1", "fd00:ec2::254", "fdff:ffff::1",
        "fe80::1", "febf::1", "fec0::1", "ff02::1", "ff05::1:3"}) {
    EXPECT_TRUE(IsForbiddenAddress(Ip(a), none)) << a;
  }
}

TEST(Ssrf, PermitsPublicIpv6) {
  const SsrfPolicy none;
  for (std::string_view a : {"2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450::1",
                             "2001:db9::1", "fbff::1", "4000::1"}) {
    EXPECT_FALSE(IsForbiddenAddress(Ip(a), none)) << a << " " << ForbiddenRange(Ip(a)).value_or("");
  }
}

TEST(Ssrf, JudgesIpv6FormsByTheIpv4AddressTheyCarry) {
  const SsrfPolicy none;
  struct Case {
    std::string_view address;
    bool forbidden;
  };
  for (const Case& c : std::vector<Case>{
           // IPv4-mapped ::ffff:0:0/96
           {"::ffff:127.0.0.1", true},
           {"::ffff:7f00:1", true},
           {"::ffff:10.1.2.3", true},
           {"::ffff:169.254.169.254", true},
           {"::ffff:0.0.0.0", true},
           {"::ffff:8.8.8.8", false},
           // IPv4-translated ::ffff:0:0:0/96
           {"::ffff:0:7f00:1", true},
           {"::ffff:0:808:808", false},
           // IPv4-compatible ::/96
           {"::127.0.0.1", true},
           {"::10.0.0.1", true},
           {"::0.0.0.2", true},
           {"::8.8.8.8", false},
           // NAT64 64:ff9b::/96
           {"64:ff9b::127.0.0.1", true},
           {"64:ff9b::a9fe:a9fe", true},
           {"64:ff9b::808:808", false},
           // 6to4 2002::/16, IPv4 in bits 16..47
           {"2002:7f00:1::", true},
           {"2002:c0a8:101::1", true},
           {"2002:a9fe:a9fe::", true},
           {"2002:808:808::1", false},
           // Teredo 2001::/32: server in bits 32..63, client inverted in bits 96..127
           {"2001:0:7f00:1::", true},
           {"2001:0:808:808::80ff:fffe", true},   // client ~80fffffe = 127.0.0.1
           {"2001:0:808:808::f7f7:f7f7", false},  // client 8.8.8.8, server 8.8.8.8
       }) {
    EXPECT_EQ(IsForbiddenAddress(Ip(c.address), none), c.forbidden) << c.address;
  }
  auto why = ForbiddenRange(Ip("::ffff:127.0.0.1"));
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("ipv4-mapped"), std::string::npos) << *why;
  EXPECT_NE(why->find("loopback 127.0.0.0/8"), std::string::npos) << *why;
}

TEST(Ssrf, ForbiddenRangeNamesTheRange) {
  EXPECT_EQ(ForbiddenRange(Ip("127.0.0.1")), "loopback 127.0.0.0/8");
  EXPECT_EQ(ForbiddenRange(Ip("169.254.169.254")), "link-local 169.254.0.0/16");
  EXPECT_EQ(ForbiddenRange(Ip("100.100.100.200")), "carrier-grade-nat 100.64.0.0/10");
  EXPECT_EQ(ForbiddenRange(Ip("fd00::1")), "unique-local fc00::/7");
  EXPECT_EQ(ForbiddenRange(Ip("8.8.8.8")), std::nullopt);
}

TEST(Ssrf, AllowListOptsRangesBackIn) {
  const SsrfPolicy policy = Allow({"10.1.0.0/16", "127.0.0.1/32", "fd12::/16"});
  EXPECT_FALSE(IsForbiddenAddress(Ip("10.1.2.3"), policy));
  EXPECT_TRUE(IsForbiddenAddress(Ip("10.2.0.1"), policy));  // the rest of 10/8 stays refused
  EXPECT_FALSE(IsForbiddenAddress(Ip("127.0.0.1"), policy));
  EXPECT_TRUE(IsForbiddenAddress(Ip("127.0.0.2"), policy));
  EXPECT_TRUE(IsForbiddenAddress(Ip("::1"), policy));  // IPv6 loopback is not 127.0.0.1/32
  EXPECT_FALSE(IsForbiddenAddress(Ip("fd12::1"), policy));
  EXPECT_TRUE(IsForbiddenAddress(Ip("fd13::1"), policy));
  // An allowed IPv4 address is allowed in the IPv6 forms that carry it, too.
  EXPECT_FALSE(IsForbiddenAddress(Ip("::ffff:127.0.0.1"), policy));
  EXPECT_FALSE(IsForbiddenAddress(Ip("64:ff9b::a01:203"), policy));  // 10.1.2.3
  EXPECT_TRUE(IsForbiddenAddress(Ip("::ffff:127.0.0.2"), policy));
  // The allow-list only opts in: public addresses stay reachable.
  EXPECT_FALSE(IsForbiddenAddress(Ip("8.8.8.8"), policy));
  // An IPv6 entry for a mapped address permits that spelling only.
  const SsrfPolicy mapped = Allow({"::ffff:127.0.0.1/128"});
  EXPECT_FALSE(IsForbiddenAddress(Ip("::ffff:127.0.0.1"), mapped));
  EXPECT_TRUE(IsForbiddenAddress(Ip("127.0.0.1"), mapped));
  // 0.0.0.0/0 and ::/0 switch the guard off entirely (an operator's explicit choice).
  const SsrfPolicy everything = Allow({"0.0.0.0/0", "::/0"});
  EXPECT_FALSE(IsForbiddenAddress(Ip("127.0.0.1"), everything));
  EXPECT_FALSE(IsForbiddenAddress(Ip("fe80::1"), everything));
}

TEST(Ssrf, ChecksSocketAddresses) {
  const SsrfPolicy none;
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_addr.s_addr = htonl(0x7f000001);
  const auto* sa4 = reinterpret_cast<const sockaddr*>(&v4);
  EXPECT_TRUE(IsForbiddenAddress(sa4, sizeof(v4), none));
  EXPECT_TRUE(IsForbiddenAddress(sa4, sizeof(v4) - 1, none));  // too short to read
  EXPECT_FALSE(IsForbiddenAddress(sa4, sizeof(v4), Allow({"127.0.0.0/8"})));
  v4.sin_addr.s_addr = htonl(0x08080808);
  EXPECT_FALSE(IsForbiddenAddress(sa4, sizeof(v4), none));

  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_addr = in6addr_loopback;
  const auto* sa6 = reinterpret_cast<const sockaddr*>(&v6);
  EXPECT_TRUE(IsForbiddenAddress(sa6, sizeof(v6), none));
  const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  std::memcpy(&v6.sin6_addr, mapped, 16);
  EXPECT_TRUE(IsForbiddenAddress(sa6, sizeof(v6), none));
  auto ip = FromSockaddr(sa6, sizeof(v6));
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->ToString(), "::ffff:127.0.0.1");

  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  EXPECT_TRUE(IsForbiddenAddress(reinterpret_cast<const sockaddr*>(&un), sizeof(un), none));
  EXPECT_TRUE(IsForbiddenAddress(nullptr, 0, none));
}

TEST(Ssrf, CheckAddressErrorNamesTheAddressAndReason) {
  Status s = CheckAddress(Ip("169.254.169.254"), SsrfPolicy{});
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(s.GetPayload(kPayloadReason), "SSRF_BLOCKED");
  EXPECT_NE(s.message().find("169.254.169.254"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("link-local"), std::string_view::npos) << s;
  EXPECT_TRUE(CheckAddress(Ip("8.8.8.8"), SsrfPolicy{}).ok());
}

// ---- URLs ----------------------------------------------------------------------------------

TEST(Url, ParsesAbsoluteHttpAndHttpsUrls) {
  auto u = ParseUrl("http://example.com");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->target, "/");
  EXPECT_FALSE(u->ip.has_value());
  EXPECT_EQ(u->ToString(), "http://example.com:80/");

  u = ParseUrl("HTTPS://Hooks.Example.COM.:8443/a/b%20c?x=1&y=%2F");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "hooks.example.com");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->target, "/a/b%20c?x=1&y=%2F");

  u = ParseUrl("https://example.com?x=1");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/?x=1");

  u = ParseUrl("http://[2606:4700:4700:0::1111]:8080/x");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "2606:4700:4700::1111");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->ToString(), "http://[2606:4700:4700::1111]:8080/x");

  u = ParseUrl("http://my_host-1.internal:65535/");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->port, 65535);
}

TEST(Url, RejectsWhatIsNotAPlainHttpUrl) {
  for (std::string_view bad : {
           "",
           "example.com",
           "//example.com/",
           "ftp://example.com/",
           "file:///etc/passwd",
           "gopher://127.0.0.1:6379/_INFO",
           "dict://127.0.0.1:11211/",
           "javascript:alert(1)",
           "http:/example.com",
           "http:\\\\example.com",
           "http://",
           "http:///path",
           "http://:80/",
           "http://user@example.com/",
           "http://user:pw@example.com/",
           "http://example.com@127.0.0.1/",
           "http://example.com/#fragment",
           "http://example.com#@evil.com",
           "http://exa mple.com/",
           "http://example.com/a b",
           "http://example.com/\x01",
           "http://example.com/\t",
           "http://example.com/\x7f",
           "http://example.com/a\\b",
           "http://ex\xc3\xa4mple.com/",
           "http://example.com/caf\xc3\xa9",
           "http://%31%32%37.0.0.1/",
           "http://example.com:/",
           "http://example.com:0/",
           "http://example.com:65536/",
           "http://example.com:99999999999/",
           "http://example.com:8a/",
           "http://example.com:-1/",
           "http://example.com:+80/",
           "http://[::1/",
           "http://[::1]x/",
           "http://[::1]:/",
           "http://[127.0.0.1]/",
           "http://[::1%25]/",
           "http://[::1%25a/b]/",
           "http://[]/",
           "http://a..b/",
           "http://.example.com/",
           "http://example.com../",
           "http://1.2.3.4.5/",
           "http://256.0.0.1/",
           "http://1.2.3.256/",
           "http://1.2.65536/",
           "http://4294967296/",
           "http://08.0.0.1/",
           "http://0x100000000/",
           "http://example.1/",
       }) {
    EXPECT_EQ(ParseUrl(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ParseUrl("http://example.com/" + std::string(kMaxUrlLength, 'a')).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(ParseUrl("http://e.co/" + std::string(kMaxUrlLength - 12, 'a')).ok());
  EXPECT_TRUE(ParseUrl("http://" + std::string(63, 'a') + ".com/").ok());
  EXPECT_EQ(ParseUrl("http://" + std::string(64, 'a') + ".com/").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Url, NormalisesOddIpv4SpellingsAndRefusesForbiddenOnes) {
  struct Case {
    std::string_view url;
    std::string_view host;
  };
  for (const Case& c : std::vector<Case>{
           {"http://127.0.0.1/", "127.0.0.1"},
           {"http://2130706433/", "127.0.0.1"},
           {"http://0177.0.0.1/", "127.0.0.1"},
           {"http://0x7f.0.0.1/", "127.0.0.1"},
           {"http://0X7F.0.0.1/", "127.0.0.1"},
           {"http://0x7f000001/", "127.0.0.1"},
           {"http://017700000001/", "127.0.0.1"},
           {"http://127.1/", "127.0.0.1"},
           {"http://127.0.1/", "127.0.0.1"},
           {"http://0x7f.1/", "127.0.0.1"},
           {"http://127.0.0.1./", "127.0.0.1"},
           {"http://0177.0x0.0.01/", "127.0.0.1"},
           {"http://0/", "0.0.0.0"},
           {"http://0x/", "0.0.0.0"},
           {"http://0.0.0.0:8080/", "0.0.0.0"},
           {"http://10.1/", "10.0.0.1"},
           {"http://3232235777/", "192.168.1.1"},
           {"http://0xa9fea9fe/latest/meta-data/", "169.254.169.254"},
           {"http://169.254.43518/", "169.254.169.254"},
           {"http://100.100.100.200/", "100.100.100.200"},
           {"http://255.255.255.255/", "255.255.255.255"},
       }) {
    auto url = ParseUrl(c.url);
    ASSERT_TRUE(url.ok()) << c.url << ": " << url.status();
    EXPECT_EQ(url->host, c.host) << c.url;
    ASSERT_TRUE(url->ip.has_value()) << c.url;
    Status s = CheckUrl(*url, SsrfPolicy{});
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << c.url;
    EXPECT_EQ(s.GetPayload(kPayloadReason), "SSRF_BLOCKED") << c.url;
    EXPECT_NE(s.message().find(c.host), std::string_view::npos) << s;
  }
}

TEST(Url, RefusesForbiddenIpv6LiteralsIncludingZonesAndMappedIpv4) {
  struct Case {
    std::string_view url;
    std::string_view host;
    std::string_view zone;
  };
  for (const Case& c : std::vector<Case>{
           {"http://[::1]/", "::1", ""},
           {"http://[::1]:8080/", "::1", ""},
           {"http://[0:0:0:0:0:0:0:1]/", "::1", ""},
           {"http://[::]/", "::", ""},
           {"http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", ""},
           {"http://[::FFFF:7F00:1]/", "::ffff:127.0.0.1", ""},
           {"http://[0:0:0:0:0:ffff:127.0.0.1]/", "::ffff:127.0.0.1", ""},
           {"http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254", ""},
           {"http://[64:ff9b::127.0.0.1]/", "64:ff9b::7f00:1", ""},
           {"http://[2002:7f00:1::]/", "2002:7f00:1::", ""},
           {"http://[fe80::1%25eth0]/", "fe80::1", "eth0"},
           {"http://[fe80::1%eth0]/", "fe80::1", "eth0"},
           {"http://[fd00:ec2::254]/", "fd00:ec2::254", ""},
           {"http://[ff02::1]/", "ff02::1", ""},
       }) {
    auto url = ParseUrl(c.url);
    ASSERT_TRUE(url.ok()) << c.url << ": " << url.status();
    EXPECT_EQ(url->host, c.host) << c.url;
    EXPECT_EQ(url->zone, c.zone) << c.url;
    Status s = CheckUrl(*url, SsrfPolicy{});
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << c.url;
    EXPECT_EQ(s.GetPayload(kPayloadReason), "SSRF_BLOCKED") << c.url;
  }
  auto zoned = ParseUrl("http://[fe80::1%25eth0]:8080/x");
  ASSERT_TRUE(zoned.ok());
  EXPECT_EQ(zoned->ToString(), "http://[fe80::1%25eth0]:8080/x");
}

TEST(Url, CheckPassesHostNamesAndPublicLiterals) {
  const SsrfPolicy none;
  for (std::string_view ok :
       {"https://example.com/hook", "http://localhost/", "http://metadata.google.internal/",
        "http://8.8.8.8/", "http://134744072/", "http://[2606:4700:4700::1111]/",
        "http://[::ffff:8.8.8.8]/", "http://0x1g/"}) {
    auto url = ParseUrl(ok);
    ASSERT_TRUE(url.ok()) << ok << ": " << url.status();
    // Names are judged at connect time, on the addresses they resolve to.
    EXPECT_TRUE(CheckUrl(*url, none).ok()) << ok;
  }
  EXPECT_EQ(ParseUrl("http://134744072/")->host, "8.8.8.8");
}

TEST(Url, AllowListPermitsLiteralsInOptedInRanges) {
  const SsrfPolicy policy = Allow({"127.0.0.1/32", "10.0.0.0/8"});
  for (std::string_view ok : {"http://127.0.0.1:8080/", "http://2130706433/", "http://127.1/",
                              "http://[::ffff:127.0.0.1]/", "http://10.20.30.40/"}) {
    auto url = ParseUrl(ok);
    ASSERT_TRUE(url.ok()) << ok;
    EXPECT_TRUE(CheckUrl(*url, policy).ok()) << ok;
  }
  EXPECT_EQ(CheckUrl(*ParseUrl("http://127.0.0.2/"), policy).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckUrl(*ParseUrl("http://[::1]/"), policy).code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace evo::outbound
