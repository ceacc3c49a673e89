#include "auth/jwt.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/temp_dir.hpp"

namespace evo::auth {
namespace {

using Json = nlohmann::json;
using std::chrono::seconds;

// ---- a test-only signer ----

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string B64Url(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), Bytes(in),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  for (char& c : out) {
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  while (!out.empty() && out.back() == '=') {
    out.pop_back();
  }
  return out;
}

std::string BnParam(EVP_PKEY* pkey, const char* name, int pad = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
  std::string out(pad > 0 ? static_cast<size_t>(pad) : static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  BN_free(bn);
  return out;
}

struct TestKey {
  std::string alg;  // RS256, ES256, EdDSA
  std::string kid;
  Pkey pkey;

  static TestKey Make(const std::string& alg, const std::string& kid) {
    EVP_PKEY* p = nullptr;
    if (alg == "RS256") {
      p = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
    } else if (alg == "ES256") {
      p = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    } else {
      p = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    }
    EXPECT_NE(p, nullptr);
    return TestKey{alg, kid, Pkey(p)};
  }

  Json Jwk() const {
    Json jwk = {{"kid", kid}, {"use", "sig"}, {"alg", alg}};
    if (alg == "RS256") {
      jwk["kty"] = "RSA";
      jwk["n"] = B64Url(BnParam(pkey.get(), OSSL_PKEY_PARAM_RSA_N));
      jwk["e"] = B64Url(BnParam(pkey.get(), OSSL_PKEY_PARAM_RSA_E));
    } else if (alg == "ES256") {
      jwk["kty"] = "EC";
      jwk["crv"] = "P-256";
      jwk["x"] = B64Url(BnParam(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32));
      jwk["y"] = B64Url(BnParam(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32));
    } else {
      unsigned char raw[32];
      size_t len = sizeof(raw);
      EXPECT_EQ(EVP_PKEY_get_raw_public_key(pkey.get(), raw, &len), 1);
      jwk["kty"] = "OKP";
      jwk["crv"] = "Ed25519";
      jwk["x"] = B64Url(std::string_view(reinterpret_cast<char*>(raw), len));
    }
    return jwk;
  }

  std::string PublicPem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, pkey.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
  }

  std::string SignRaw(std::string_view input) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    const EVP_MD* md = alg == "EdDSA" ? nullptr : EVP_sha256();
    EXPECT_EQ(EVP_DigestSignInit(ctx, nullptr, md, nullptr, pkey.get()), 1);
    size_t len = 0;
    EXPECT_EQ(EVP_DigestSign(ctx, nullptr, &len, Bytes(input), input.size()), 1);
    std::string sig(len, '\0');
    EXPECT_EQ(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, Bytes(input),
                             input.size()),
              1);
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    if (alg != "ES256") {
      return sig;
    }
    // DER -> JWS r||s.
    const unsigned char* p = Bytes(sig);
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(es);
    return raw;
  }

  // A compact JWS over `claims`; `header` overrides/extends {alg, kid, typ}.
  std::string Sign(const Json& claims, const Json& header_extra = Json::object()) const {
    Json header = {{"alg", alg}, {"kid", kid}, {"typ", "JWT"}};
    header.update(header_extra);
    const std::string input = B64Url(header.dump()) + "." + B64Url(claims.dump());
    return input + "." + B64Url(SignRaw(input));
  }
};

// Key generation (RSA above all) is slow enough to do once.
const TestKey& Rsa() {
  static const TestKey k = TestKey::Make("RS256", "rsa-1");
  return k;
}
const TestKey& Ec() {
  static const TestKey k = TestKey::Make("ES256", "ec-1");
  return k;
}
const TestKey& Ed() {
  static const TestKey k = TestKey::Make("EdDSA", "ed-1");
  return k;
}
const TestKey& Rsa2() {
  static const TestKey k = TestKey::Make("RS256", "rsa-2");
  return k;
}

std::string Jwks(std::initializer_list<const TestKey*> keys) {
  Json doc = {{"keys", Json::array()}};
  for (const TestKey* k : keys) {
    doc["keys"].push_back(k->Jwk());
  }
  return doc.dump();
}

// A JWKS endpoint the test controls.
struct FakeJwks {
  std::string json;
  std::optional<seconds> max_age;
  Status fail;
  int calls = 0;

  JwksFetcher Fetcher() {
    return [this]() -> StatusOr<JwksDocument> {
      ++calls;
      if (!fail.ok()) {
        return fail;
      }
      return JwksDocument{json, max_age};
    };
  }
};

constexpr char kIssuer[] = "https://issuer.example/";
constexpr char kAudience[] = "https://evo.example/api";

JwtOptions Options() {
  JwtOptions o;
  o.issuer = kIssuer;
  o.audience = kAudience;
  return o;
}

class JwtTest : public ::testing::Test {
 protected:
  void SetUp() override { jwks_.json = Jwks({&Rsa(), &Ec(), &Ed()}); }

  std::unique_ptr<JwtVerifier> Make(JwtOptions options = Options()) {
    auto v = JwtVerifier::Create(std::move(options), jwks_.Fetcher(), clock_);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? std::move(v).value() : nullptr;
  }

  int64_t Now() const { return UnixMillis(clock_.Now()) / 1000; }

  Json Claims() const {
    return {{"iss", kIssuer}, {"aud", kAudience},   {"sub", "auth0|user-7"},
            {"iat", Now()},   {"exp", Now() + 600}, {"scope", "ids:read queue:write openid bogus"}};
  }

  // Asserts a refusal with `reason`, and that the message echoes no part of the token.
  void ExpectRefused(JwtVerifier& v, const std::string& token, std::string_view reason) {
    const StatusOr<Principal> got = v.Verify(token);
    ASSERT_FALSE(got.ok()) << "accepted; want " << reason;
    EXPECT_EQ(got.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(got.status().GetPayload(kPayloadReason), std::string(reason))
        << got.status().message();
    for (size_t at = 0; at + 8 <= token.size(); at += 4) {
      const std::string_view piece = std::string_view(token).substr(at, 8);
      if (piece.find('.') == std::string_view::npos) {
        ASSERT_EQ(got.status().message().find(piece), std::string_view::npos)
            << "message echoes the token: " << got.status().message();
      }
    }
  }

  ManualClock clock_;
  FakeJwks jwks_;
};

TEST_F(JwtTest, AcceptsRs256Es256AndEdDsaWithTheirScopes) {
  auto v = Make();
  for (const TestKey* key : {&Rsa(), &Ec(), &Ed()}) {
    SCOPED_TRACE(key->alg);
    Json claims = Claims();
    claims["permissions"] = {"spam:read", "not a scope", "ids:read"};
    claims["scp"] = {"bandit:write"};
    const StatusOr<Principal> p = v->Verify(key->Sign(claims));
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->kind, Principal::Kind::kJwt);
    EXPECT_EQ(p->subject, "auth0|user-7");
    EXPECT_EQ(p->scopes,
              (std::vector<std::string>{"bandit:write", "ids:read", "queue:write", "spam:read"}));
    EXPECT_FALSE(p->application.has_value());
    EXPECT_TRUE(p->Has("queue:write"));
    EXPECT_FALSE(p->Has("queue:read"));
  }
}

TEST_F(JwtTest, ScopeClaimOptionReadsOnlyTheNamedClaimAndApplicationClaimLimits) {
  JwtOptions o = Options();
  o.scope_claims = {"roles"};
  auto v = Make(o);
  Json claims = Claims();
  claims["roles"] = {"webhooks:write"};
  claims["evo_app"] = "app_42";
  const StatusOr<Principal> p = v->Verify(Rsa().Sign(claims));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->scopes, (std::vector<std::string>{"webhooks:write"}));
  EXPECT_EQ(p->application, "app_42");

  // A narrowing claim that cannot be read must not widen access; nor may odd scope claims.
  claims["evo_app"] = Json::array({"app_42"});
  ExpectRefused(*v, Rsa().Sign(claims), kReasonClaims);
  claims["evo_app"] = "app_42";
  claims["roles"] = {"webhooks:write", 7};
  ExpectRefused(*v, Rsa().Sign(claims), kReasonClaims);
  claims["roles"] = Json::object();
  ExpectRefused(*v, Rsa().Sign(claims), kReasonClaims);
}

TEST_F(JwtTest, RefusesAlgNone) {
  auto v = Make();
  const std::string unsigned_part =
      B64Url(Json({{"alg", "none"}, {"kid", "rsa-1"}}).dump()) + "." + B64Url(Claims().dump());
  ExpectRefused(*v, unsigned_part + ".", kReasonMalformed);
  ExpectRefused(*v, unsigned_part + "." + B64Url("sig"), kReasonAlgorithm);
  for (const char* alg : {"None", "NONE", "nOnE"}) {
    Json header = {{"alg", alg}, {"kid", "rsa-1"}};
    ExpectRefused(*v, B64Url(header.dump()) + "." + B64Url(Claims().dump()) + "." + B64Url("x"),
                  kReasonAlgorithm);
  }
  // A properly signed token whose header says "none" is refused too.
  ExpectRefused(*v, Rsa().Sign(Claims(), {{"alg", "none"}}), kReasonAlgorithm);
}

TEST_F(JwtTest, RefusesHs256KeyedWithTheRsaPublicKeyPem) {
  auto v = Make();
  for (const char* alg : {"HS256", "HS384", "HS512"}) {
    SCOPED_TRACE(alg);
    const Json header = {{"alg", alg}, {"kid", "rsa-1"}, {"typ", "JWT"}};
    const std::string input = B64Url(header.dump()) + "." + B64Url(Claims().dump());
    const std::string pem = Rsa().PublicPem();
    const EVP_MD* md = std::string(alg) == "HS256"   ? EVP_sha256()
                       : std::string(alg) == "HS384" ? EVP_sha384()
                                                     : EVP_sha512();
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(md, pem.data(), static_cast<int>(pem.size()), Bytes(input), input.size(), mac, &len);
    const std::string token =
        input + "." + B64Url(std::string_view(reinterpret_cast<char*>(mac), len));
    ExpectRefused(*v, token, kReasonAlgorithm);
  }
}

TEST_F(JwtTest, RefusesAnHmacJwkAndKeysNotMeantForSignatures) {
  Json doc = {
      {"keys", {{{"kty", "oct"}, {"kid", "hmac"}, {"k", B64Url("secret")}, {"alg", "HS256"}}}}};
  Json enc = Rsa().Jwk();
  enc["use"] = "enc";
  enc["kid"] = "enc";
  doc["keys"].push_back(enc);
  Json wrong_alg = Ec().Jwk();
  wrong_alg["alg"] = "RS256";  // a JWK's own alg must agree with its kty
  doc["keys"].push_back(wrong_alg);
  Json off_curve = Ec().Jwk();
  off_curve["y"] = off_curve["x"];  // (x, x) is not a point of P-256
  doc["keys"].push_back(off_curve);
  const TestKey small_rsa{"RS256", "rsa-1024",
                          Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}))};
  doc["keys"].push_back(small_rsa.Jwk());
  doc["keys"].push_back({{"kty", "EC"}, {"crv", "P-384"}, {"kid", "p384"}, {"x", "AA"}});
  doc["keys"].push_back("not an object");
  doc["keys"].push_back({{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", B64Url("short")}});
  jwks_.json = doc.dump();
  const auto none = JwtVerifier::Create(Options(), jwks_.Fetcher(), clock_);
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);

  doc["keys"].push_back(Ed().Jwk());
  jwks_.json = doc.dump();
  auto v = Make();
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(v->Verify(Ed().Sign(Claims())).ok());
  ExpectRefused(*v, Ec().Sign(Claims()), kReasonUnknownKey);
  ExpectRefused(*v, Rsa().Sign(Claims(), {{"kid", "enc"}}), kReasonUnknownKey);
  ExpectRefused(*v, small_rsa.Sign(Claims()), kReasonUnknownKey);
}

TEST_F(JwtTest, RefusesAnAlgorithmThatDoesNotMatchTheKey) {
  auto v = Make();
  // RS256 header naming the EC key, signed by the RSA key.
  ExpectRefused(*v, Rsa().Sign(Claims(), {{"kid", "ec-1"}}), kReasonAlgorithm);
  // EdDSA header naming the RSA key.
  ExpectRefused(*v, Ed().Sign(Claims(), {{"kid", "rsa-1"}}), kReasonAlgorithm);
  // ES256 header with the Ed25519 key's kid, and an algorithm evo never accepts.
  ExpectRefused(*v, Ec().Sign(Claims(), {{"kid", "ed-1"}}), kReasonAlgorithm);
  ExpectRefused(*v, Rsa().Sign(Claims(), {{"alg", "PS256"}}), kReasonAlgorithm);
  ExpectRefused(*v, Rsa().Sign(Claims(), {{"alg", "RS512"}}), kReasonAlgorithm);
  // Right alg and kid, but signed by another key of the same kind.
  const TestKey other_ec = TestKey::Make("ES256", "ec-1");
  ExpectRefused(*v, other_ec.Sign(Claims()), kReasonSignature);
}

TEST_F(JwtTest, ChecksExpAndNbfWithLeeway) {
  auto v = Make();
  Json claims = Claims();
  claims["exp"] = Now() - 20;  // within the 30 s leeway
  EXPECT_TRUE(v->Verify(Rsa().Sign(claims)).ok());
  claims["exp"] = Now() - 31;
  ExpectRefused(*v, Rsa().Sign(claims), kReasonExpired);
  claims.erase("exp");
  ExpectRefused(*v, Rsa().Sign(claims), kReasonClaims);
  claims["exp"] = "tomorrow";
  ExpectRefused(*v, Rsa().Sign(claims), kReasonClaims);

  claims = Claims();
  claims["nbf"] = Now() + 20;
  EXPECT_TRUE(v->Verify(Ec().Sign(claims)).ok());
  claims["nbf"] = Now() + 120;
  ExpectRefused(*v, Ec().Sign(claims), kReasonNotYetValid);
  claims["nbf"] = "now";
  ExpectRefused(*v, Ec().Sign(claims), kReasonClaims);

  JwtOptions strict = Options();
  strict.leeway = seconds(0);
  auto v0 = Make(strict);
  claims = Claims();
  claims["exp"] = Now() - 1;
  ExpectRefused(*v0, Rsa().Sign(claims), kReasonExpired);
}

TEST_F(JwtTest, ChecksIssuerAndAudience) {
  auto v = Make();
  Json claims = Claims();
  claims["iss"] = "https://evil.example/";
  ExpectRefused(*v, Ed().Sign(claims), kReasonIssuer);
  claims.erase("iss");
  ExpectRefused(*v, Ed().Sign(claims), kReasonIssuer);

  claims = Claims();
  claims["aud"] = "https://other.example/api";
  ExpectRefused(*v, Ed().Sign(claims), kReasonAudience);
  claims["aud"] = {"https://other.example/api", 3};
  ExpectRefused(*v, Ed().Sign(claims), kReasonAudience);
  claims.erase("aud");
  ExpectRefused(*v, Ed().Sign(claims), kReasonAudience);
  claims["aud"] = {"https://other.example/api", kAudience};
  EXPECT_TRUE(v->Verify(Ed().Sign(claims)).ok());

  claims = Claims();
  claims.erase("sub");
  ExpectRefused(*v, Ed().Sign(claims), kReasonClaims);
}

TEST_F(JwtTest, RefusesAPayloadChangedAfterSigning) {
  auto v = Make();
  for (const TestKey* key : {&Rsa(), &Ec(), &Ed()}) {
    SCOPED_TRACE(key->alg);
    const std::string token = key->Sign(Claims());
    ASSERT_TRUE(v->Verify(token).ok());
    Json escalated = Claims();
    escalated["scope"] = "admin";
    const size_t dot1 = token.find('.');
    const size_t dot2 = token.rfind('.');
    const std::string forged =
        token.substr(0, dot1 + 1) + B64Url(escalated.dump()) + token.substr(dot2);
    ExpectRefused(*v, forged, kReasonSignature);
    // Another spelling of the same signature: 256 and 64 bytes leave 4 unused low bits in
    // the last character (so it is one of A, Q, g, w); setting one must not be accepted as
    // the same token.
    std::string respelled = token;
    ASSERT_NE(std::string_view("AQgw").find(respelled.back()), std::string_view::npos);
    respelled.back() = static_cast<char>(respelled.back() + 1);
    ExpectRefused(*v, respelled, kReasonMalformed);
    // A flipped signature bit.
    std::string flipped = token;
    flipped[dot2 + 5] = flipped[dot2 + 5] == 'A' ? 'B' : 'A';
    ExpectRefused(*v, flipped, kReasonSignature);
  }
}

TEST_F(JwtTest, UnknownKidRefetchesAtMostOncePer30Seconds) {
  auto v = Make();
  ASSERT_EQ(jwks_.calls, 1);
  const std::string token = Rsa2().Sign(Claims());

  // Within 30 s of the first fetch: no refetch.
  ExpectRefused(*v, token, kReasonUnknownKey);
  EXPECT_EQ(jwks_.calls, 1);

  clock_.Advance(seconds(31));
  ExpectRefused(*v, token, kReasonUnknownKey);
  EXPECT_EQ(jwks_.calls, 2);
  // Rate-limited: a storm of unknown kids costs no further fetch.
  for (int i = 0; i < 20; ++i) {
    const std::string kid = std::to_string(i) + "-unknown";
    ExpectRefused(*v, Rsa2().Sign(Claims(), {{"kid", kid}}), kReasonUnknownKey);
  }
  clock_.Advance(seconds(29));
  ExpectRefused(*v, token, kReasonUnknownKey);
  EXPECT_EQ(jwks_.calls, 2);

  // The issuer rotates: the new kid is accepted once a refetch is allowed, no restart.
  jwks_.json = Jwks({&Rsa2(), &Ec()});
  clock_.Advance(seconds(2));
  const std::string fresh = Rsa2().Sign(Claims());
  const StatusOr<Principal> p = v->Verify(fresh);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(jwks_.calls, 3);
  // The retired key is gone.
  ExpectRefused(*v, Rsa().Sign(Claims()), kReasonUnknownKey);
}

TEST_F(JwtTest, AFailedRefetchKeepsTheKeysHeld) {
  auto v = Make();
  jwks_.fail = UnavailableError("issuer down");
  clock_.Advance(seconds(31));
  ExpectRefused(*v, Rsa2().Sign(Claims()), kReasonUnknownKey);
  EXPECT_EQ(jwks_.calls, 2);
  EXPECT_TRUE(v->Verify(Rsa().Sign(Claims())).ok());

  jwks_.json = "{not json";
  jwks_.fail = OkStatus();
  clock_.Advance(seconds(31));
  ExpectRefused(*v, Rsa2().Sign(Claims()), kReasonUnknownKey);
  EXPECT_EQ(jwks_.calls, 3);
  EXPECT_TRUE(v->Verify(Ec().Sign(Claims())).ok());
}

TEST_F(JwtTest, AThrowingFetcherIsAnError) {
  const auto v = JwtVerifier::Create(
      Options(), []() -> StatusOr<JwksDocument> { throw std::runtime_error("boom"); }, clock_);
  EXPECT_EQ(v.status().code(), StatusCode::kUnavailable);
}

TEST_F(JwtTest, RefreshesAfterTheFetchersMaxAge) {
  jwks_.max_age = seconds(300);
  auto v = Make();
  const std::string rsa_token = Rsa().Sign(Claims());
  EXPECT_TRUE(v->Verify(rsa_token).ok());
  clock_.Advance(seconds(299));
  EXPECT_TRUE(v->Verify(Ec().Sign(Claims())).ok());
  EXPECT_EQ(jwks_.calls, 1);
  jwks_.json = Jwks({&Ed()});
  clock_.Advance(seconds(2));
  EXPECT_TRUE(v->Verify(Ed().Sign(Claims())).ok());
  EXPECT_EQ(jwks_.calls, 2);
  // The key set changed, so even a cached token signed by a withdrawn key is re-verified.
  ExpectRefused(*v, rsa_token, kReasonUnknownKey);

  // max-age 0 does not turn every request into a fetch.
  jwks_.max_age = seconds(0);
  clock_.Advance(seconds(301));
  EXPECT_TRUE(v->Verify(Ed().Sign(Claims())).ok());
  const int after = jwks_.calls;
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(v->Verify(Ed().Sign(Claims())).ok());
  }
  EXPECT_EQ(jwks_.calls, after);
}

TEST_F(JwtTest, RefusesAnOversizedToken) {
  auto v = Make();
  Json claims = Claims();
  claims["pad"] = std::string(size_t{100} * 1024, 'a');
  const std::string token = Rsa().Sign(claims);
  ASSERT_GT(token.size(), 100U * 1024);
  ExpectRefused(*v, token, kReasonTooLarge);
  ExpectRefused(*v, std::string(8 * 1024 + 1, 'a'), kReasonTooLarge);
  EXPECT_EQ(v->CachedTokens(), 0U);
}

TEST_F(JwtTest, RefusesGarbageWithoutCrashing) {
  auto v = Make();
  const std::string claims = B64Url(Claims().dump());
  const std::string header = B64Url(R"({"alg":"RS256","kid":"rsa-1"})");
  const std::vector<std::string> garbage = {
      "",
      ".",
      "..",
      "...",
      "a.b",
      "a.b.c.d",
      header + "." + claims,
      header + "." + claims + ".",
      header + "=." + claims + "." + B64Url("sig"),  // padding
      header + "." + claims + "." + B64Url("sig") + "=",
      "ey!!.ey??." + B64Url("sig"),                   // outside the alphabet
      header + "+/." + claims + "." + B64Url("sig"),  // standard, not URL, alphabet
      "A." + claims + "." + B64Url("sig"),            // impossible length
      "AB." + claims + "." + B64Url("sig"),           // non-canonical trailing bits
      B64Url("not json") + "." + claims + "." + B64Url("sig"),
      B64Url("[1,2]") + "." + claims + "." + B64Url("sig"),
      B64Url(R"({"alg":7})") + "." + claims + "." + B64Url("sig"),
      B64Url(R"({"kid":"rsa-1"})") + "." + claims + "." + B64Url("sig"),
      B64Url(R"({"alg":"RS256","kid":["rsa-1"]})") + "." + claims + "." + B64Url("sig"),
      B64Url(R"({"alg":"RS256","kid":"rsa-1","crit":["exp"]})") + "." + claims + "." +
          B64Url("sig"),
      B64Url(std::string(3000, '[')) + "." + claims + "." + B64Url("sig"),
      B64Url(std::string("{\"alg\":\"RS\xff\"}")) + "." + claims + "." + B64Url("sig"),
      B64Url(std::string("\0\0\0", 3)) + "." + claims + "." + B64Url("sig"),
      std::string("\0.\0.\0", 5),
  };
  for (const std::string& token : garbage) {
    const StatusOr<Principal> got = v->Verify(token);
    ASSERT_FALSE(got.ok()) << ::testing::PrintToString(token);
    EXPECT_EQ(got.status().code(), StatusCode::kUnauthenticated) << got.status();
    const std::string reason = got.status().GetPayload(kPayloadReason).value_or("");
    EXPECT_TRUE(reason == kReasonMalformed || reason == kReasonAlgorithm)
        << reason << " for " << ::testing::PrintToString(token);
  }
  // Signed, but the payload is not a JSON object: refused after the signature check.
  for (const TestKey* key : {&Rsa(), &Ed()}) {
    const std::string input = B64Url(Json({{"alg", key->alg}, {"kid", key->kid}}).dump()) + "." +
                              B64Url("[\"not\", \"an object\"]");
    ExpectRefused(*v, input + "." + B64Url(key->SignRaw(input)), kReasonMalformed);
  }
  // Wrong signature sizes for each algorithm.
  for (const TestKey* key : {&Rsa(), &Ec(), &Ed()}) {
    const std::string input =
        B64Url(Json({{"alg", key->alg}, {"kid", key->kid}}).dump()) + "." + claims;
    ExpectRefused(*v, input + "." + B64Url(std::string(63, 'x')), kReasonSignature);
    ExpectRefused(*v, input + "." + B64Url(std::string(65, 'x')), kReasonSignature);
  }
  EXPECT_EQ(v->CachedTokens(), 0U);
}

TEST_F(JwtTest, NoMutationOfAValidTokenIsAccepted) {
  JwtOptions o = Options();
  o.cache_entries = 0;
  auto v = Make(o);
  std::mt19937 rng(20261208);  // seeded: the same tokens every run
  std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \xff";
  alphabet.push_back('\0');
  for (const TestKey* key : {&Rsa(), &Ec(), &Ed()}) {
    SCOPED_TRACE(key->alg);
    const std::string token = key->Sign(Claims());
    ASSERT_TRUE(v->Verify(token).ok());
    for (int i = 0; i < 700; ++i) {
      std::string bad = token;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits; ++e) {
        const size_t at = rng() % bad.size();
        switch (rng() % 3) {
          case 0:
            bad[at] = alphabet[rng() % alphabet.size()];
            break;
          case 1:
            bad.erase(at, 1 + rng() % 4);
            break;
          default:
            bad.insert(at, 1, alphabet[rng() % alphabet.size()]);
            break;
        }
      }
      if (bad == token) {
        continue;
      }
      const StatusOr<Principal> got = v->Verify(bad);
      ASSERT_FALSE(got.ok()) << "accepted a changed token: " << bad;
      ASSERT_EQ(got.status().code(), StatusCode::kUnauthenticated);
    }
  }
}

TEST_F(JwtTest, CachesAVerifiedTokenUntilItExpires) {
  auto v = Make();
  Json claims = Claims();
  claims["exp"] = Now() + 60;
  const std::string token = Ec().Sign(claims);
  const StatusOr<Principal> first = v->Verify(token);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(v->CachedTokens(), 1U);

  // A cache hit: the JWKS may even become unreachable, the answer stays the same.
  jwks_.fail = UnavailableError("down");
  const StatusOr<Principal> again = v->Verify(token);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->subject, first->subject);
  EXPECT_EQ(again->scopes, first->scopes);
  EXPECT_EQ(again->kind, Principal::Kind::kJwt);
  EXPECT_EQ(v->CachedTokens(), 1U);

  // The cached entry dies with the token: exp + leeway.
  clock_.Advance(seconds(60 + 29));
  EXPECT_TRUE(v->Verify(token).ok());
  clock_.Advance(seconds(2));
  ExpectRefused(*v, token, kReasonExpired);
  EXPECT_EQ(v->CachedTokens(), 0U);
}

TEST_F(JwtTest, CacheIsBounded) {
  JwtOptions o = Options();
  o.cache_entries = 4;
  auto v = Make(o);
  for (int i = 0; i < 10; ++i) {
    Json claims = Claims();
    claims["sub"] = "user-" + std::to_string(i);
    ASSERT_TRUE(v->Verify(Ed().Sign(claims)).ok());
    EXPECT_LE(v->CachedTokens(), 4U);
  }
  EXPECT_EQ(v->CachedTokens(), 4U);

  o.cache_entries = 0;
  auto uncached = Make(o);
  ASSERT_TRUE(uncached->Verify(Ed().Sign(Claims())).ok());
  EXPECT_EQ(uncached->CachedTokens(), 0U);
}

TEST_F(JwtTest, IsSafeToShareBetweenThreads) {
  JwtOptions o = Options();
  o.cache_entries = 8;
  auto v = Make(o);
  std::vector<std::string> tokens;
  for (int i = 0; i < 16; ++i) {
    Json claims = Claims();
    claims["sub"] = "user-" + std::to_string(i);
    const TestKey& key = i % 3 == 0 ? Rsa() : i % 3 == 1 ? Ec() : Ed();
    tokens.push_back(key.Sign(claims));
  }
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const size_t n = static_cast<size_t>(i * 7 + t) % tokens.size();
        const StatusOr<Principal> p = v->Verify(tokens[n]);
        if (p.ok() && p->subject == "user-" + std::to_string(n)) {
          ++accepted;
        }
      }
    });
  }
  for (std::thread& th : threads) {
    th.join();
  }
  EXPECT_EQ(accepted.load(), 800);
}

TEST_F(JwtTest, ThreadsMeetingARotatedKeyFetchTheJwksOnce) {
  auto v = Make();
  jwks_.json = Jwks({&Rsa(), &Rsa2()});
  clock_.Advance(seconds(31));
  const std::string token = Rsa2().Sign(Claims());
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        accepted += v->Verify(token).ok() ? 1 : 0;
      }
    });
  }
  for (std::thread& th : threads) {
    th.join();
  }
  EXPECT_EQ(accepted.load(), 200);
  EXPECT_EQ(jwks_.calls, 2);  // the fetcher runs under the verifier's fetch lock
}

TEST(JwtFile, ReadsTheJwksFileAgainOnAnUnknownKid) {
  evo::testing::TempDir dir;
  const std::string path = dir.File("jwks.json");
  std::ofstream(path) << Jwks({&Rsa()});
  ManualClock clock;
  auto v = JwtVerifier::Create(Options(), JwksFileFetcher(path), clock);
  ASSERT_TRUE(v.ok()) << v.status();
  const int64_t now = UnixMillis(clock.Now()) / 1000;
  const Json claims = {{"iss", kIssuer}, {"aud", kAudience}, {"sub", "s"}, {"exp", now + 60}};
  EXPECT_TRUE((*v)->Verify(Rsa().Sign(claims)).ok());
  std::ofstream(path) << Jwks({&Ed()});
  clock.Advance(seconds(31));
  EXPECT_TRUE((*v)->Verify(Ed().Sign(claims)).ok());

  EXPECT_EQ(
      JwtVerifier::Create(Options(), JwksFileFetcher(dir.File("missing")), clock).status().code(),
      StatusCode::kNotFound);
  std::ofstream(path) << "{\"keys\": 3}";
  EXPECT_EQ(JwtVerifier::Create(Options(), JwksFileFetcher(path), clock).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(JwtOptions, ValidateNamesTheBadField) {
  EXPECT_TRUE(Validate(Options()).ok());
  JwtOptions o = Options();
  o.issuer.clear();
  EXPECT_EQ(Validate(o).code(), StatusCode::kInvalidArgument);
  o = Options();
  o.audience.clear();
  EXPECT_NE(Validate(o).message().find("audience"), std::string_view::npos);
  o = Options();
  o.leeway = seconds(-1);
  EXPECT_NE(Validate(o).message().find("leeway"), std::string_view::npos);
  o = Options();
  o.scope_claims = {};
  EXPECT_EQ(Validate(o).code(), StatusCode::kInvalidArgument);
  o.scope_claims = {"scope", ""};
  EXPECT_EQ(Validate(o).code(), StatusCode::kInvalidArgument);
  o = Options();
  o.max_token_bytes = 10;
  EXPECT_EQ(Validate(o).code(), StatusCode::kInvalidArgument);
  ManualClock clock;
  EXPECT_EQ(JwtVerifier::Create(Options(), nullptr, clock).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace evo::auth
