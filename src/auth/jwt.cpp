// JWT verification over libcrypto. Everything read from a token or a JWKS is untrusted: JSON
// is parsed without exceptions and every field's type is checked before it is read.
//
// Why not a JWT library: Debian 12's libjwt (1.10) reads no JWKS, and libcpp-jwt (1.4)
// reports failures by exceptions; binding the algorithm to the JWK's own kty/crv, strict
// base64url and the refetch rules are the whole point, so they stay here, over OpenSSL EVP.
#include "auth/jwt.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <exception>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <utility>

namespace evo::auth {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxJwksBytes = size_t{1024} * 1024;
constexpr int kMinRsaBits = 2048;
constexpr size_t kP256CoordinateBytes = 32;
constexpr size_t kEd25519KeyBytes = 32;
constexpr size_t kRawEcdsaSignatureBytes = 64;
constexpr size_t kEd25519SignatureBytes = 64;

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct BnDeleter {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct ParamBldDeleter {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, ParamDeleter>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter>;

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

Status Refuse(std::string_view reason, std::string_view message) {
  return UnauthenticatedError(message).With(kPayloadReason, std::string(reason));
}

// ---- base64url (RFC 7515 §2: no padding) ----

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '-') {
    return 62;
  }
  if (c == '_') {
    return 63;
  }
  return -1;
}

// Strict: only the URL-safe alphabet, no '=', and the unused low bits of the last character
// must be zero, so that each byte string has exactly one encoding (a changed token is never
// "the same" token).
std::optional<std::string> Base64UrlDecode(std::string_view in) {
  if (in.size() % 4 == 1) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    const int v = Base64UrlValue(c);
    if (v < 0) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits > 0 && (acc & ((1U << bits) - 1)) != 0) {
    return std::nullopt;
  }
  return out;
}

// ---- keys ----

enum class Alg { kRs256, kEs256, kEdDsa };

std::optional<Alg> AlgFromName(std::string_view name) {
  if (name == "RS256") {
    return Alg::kRs256;
  }
  if (name == "ES256") {
    return Alg::kEs256;
  }
  if (name == "EdDSA") {
    return Alg::kEdDsa;
  }
  return std::nullopt;
}

struct Key {
  Alg alg;
  std::shared_ptr<EVP_PKEY> pkey;
};

// A JWK string member decoded from base64url, or nullopt when absent/malformed.
std::optional<std::string> B64Member(const Json& jwk, const char* name) {
  const auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) {
    return std::nullopt;
  }
  return Base64UrlDecode(it->get_ref<const std::string&>());
}

std::optional<std::string> StringMember(const Json& obj, const char* name) {
  const auto it = obj.find(name);
  if (it == obj.end() || !it->is_string()) {
    return std::nullopt;
  }
  return it->get<std::string>();
}

PkeyPtr FromData(const char* type, OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) <= 0) {
    return nullptr;
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    return nullptr;
  }
  return PkeyPtr(raw);
}

PkeyPtr RsaKey(const Json& jwk) {
  const auto n = B64Member(jwk, "n");
  const auto e = B64Member(jwk, "e");
  if (!n || !e || n->empty() || e->empty() || e->size() > 8) {
    return nullptr;
  }
  BnPtr bn_n(BN_bin2bn(Bytes(*n), static_cast<int>(n->size()), nullptr));
  BnPtr bn_e(BN_bin2bn(Bytes(*e), static_cast<int>(e->size()), nullptr));
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (bn_n == nullptr || bn_e == nullptr || bld == nullptr ||
      BN_num_bits(bn_n.get()) < kMinRsaBits || !BN_is_odd(bn_e.get()) ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return nullptr;
  }
  return FromData("RSA", bld.get());
}

PkeyPtr EcKey(const Json& jwk) {
  const auto x = B64Member(jwk, "x");
  const auto y = B64Member(jwk, "y");
  if (!x || !y || x->size() != kP256CoordinateBytes || y->size() != kP256CoordinateBytes) {
    return nullptr;
  }
  // Uncompressed point; EVP_PKEY_fromdata refuses a point that is not on the curve.
  const std::string point = "\x04" + *x + *y;
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return nullptr;
  }
  return FromData("EC", bld.get());
}

PkeyPtr Ed25519Key(const Json& jwk) {
  const auto x = B64Member(jwk, "x");
  if (!x || x->size() != kEd25519KeyBytes) {
    return nullptr;
  }
  return PkeyPtr(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, Bytes(*x), x->size()));
}

// The key a JWK describes, or nullopt when it is not one evo verifies with.
std::optional<Key> ParseJwk(const Json& jwk) {
  if (!jwk.is_object()) {
    return std::nullopt;
  }
  const auto kty = StringMember(jwk, "kty");
  if (!kty) {
    return std::nullopt;
  }
  if (const auto use = jwk.find("use"); use != jwk.end() && *use != "sig") {
    return std::nullopt;
  }
  Alg alg;
  PkeyPtr pkey;
  if (*kty == "RSA") {
    alg = Alg::kRs256;
    pkey = RsaKey(jwk);
  } else if (*kty == "EC" && StringMember(jwk, "crv") == "P-256") {
    alg = Alg::kEs256;
    pkey = EcKey(jwk);
  } else if (*kty == "OKP" && StringMember(jwk, "crv") == "Ed25519") {
    alg = Alg::kEdDsa;
    pkey = Ed25519Key(jwk);
  } else {
    return std::nullopt;  // "oct" (HMAC) keys and every other kind are never used
  }
  if (const auto it = jwk.find("alg"); it != jwk.end()) {
    if (!it->is_string() || AlgFromName(it->get_ref<const std::string&>()) != alg) {
      return std::nullopt;
    }
  }
  if (pkey == nullptr) {
    return std::nullopt;
  }
  return Key{alg, std::shared_ptr<EVP_PKEY>(pkey.release(), PkeyDeleter())};
}

using KeySet = std::map<std::string, Key, std::less<>>;

StatusOr<KeySet> ParseJwks(std::string_view text) {
  if (text.size() > kMaxJwksBytes) {
    return InvalidArgumentError("the JWKS is over 1 MiB");
  }
  const Json doc = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return InvalidArgumentError("the JWKS is not a JSON object");
  }
  const auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) {
    return InvalidArgumentError("the JWKS has no \"keys\" array");
  }
  KeySet out;
  for (const Json& jwk : *keys) {
    std::optional<Key> key = ParseJwk(jwk);
    if (!key) {
      continue;
    }
    // A key without `kid` is stored under "" and only matches tokens without one.
    out.emplace(StringMember(jwk, "kid").value_or(""), std::move(*key));
  }
  if (out.empty()) {
    return InvalidArgumentError(
        "the JWKS holds no usable key (RSA >= 2048 bits, EC P-256 or Ed25519, use \"sig\")");
  }
  return out;
}

// ---- signatures ----

bool DigestVerify(EVP_PKEY* pkey, const EVP_MD* md, std::string_view signature,
                  std::string_view data) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  return ctx != nullptr && EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, pkey) == 1 &&
         EVP_DigestVerify(ctx.get(), Bytes(signature), signature.size(), Bytes(data),
                          data.size()) == 1;
}

// JWS ES256 signatures are r||s (32 bytes each); libcrypto verifies DER.
std::optional<std::string> RawEcdsaToDer(std::string_view raw) {
  if (raw.size() != kRawEcdsaSignatureBytes) {
    return std::nullopt;
  }
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(Bytes(raw), 32, nullptr);
  BIGNUM* s = BN_bin2bn(Bytes(raw.substr(32)), 32, nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) {
    return std::nullopt;
  }
  std::string der(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &p) != len) {
    return std::nullopt;
  }
  return der;
}

bool VerifySignature(const Key& key, std::string_view signature, std::string_view data) {
  switch (key.alg) {
    case Alg::kRs256:
      return signature.size() == static_cast<size_t>(EVP_PKEY_get_size(key.pkey.get())) &&
             DigestVerify(key.pkey.get(), EVP_sha256(), signature, data);
    case Alg::kEs256: {
      const auto der = RawEcdsaToDer(signature);
      return der && DigestVerify(key.pkey.get(), EVP_sha256(), *der, data);
    }
    case Alg::kEdDsa:
      return signature.size() == kEd25519SignatureBytes &&
             DigestVerify(key.pkey.get(), nullptr, signature, data);
  }
  return false;
}

// ---- claims ----

std::optional<double> NumericDate(const Json& claims, const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) {
    return std::nullopt;
  }
  const double v = it->get<double>();
  if (!std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

double UnixSeconds(Clock::WallTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// Adds the scopes a claim holds; false when the claim is there but is neither a string nor
// an array of strings.
bool AddScopes(const Json& claim, std::vector<std::string>& out) {
  if (claim.is_string()) {
    for (std::string& s : SplitScopes(claim.get_ref<const std::string&>())) {
      out.push_back(std::move(s));
    }
    return true;
  }
  if (!claim.is_array()) {
    return false;
  }
  for (const Json& item : claim) {
    if (!item.is_string()) {
      return false;
    }
    const auto& s = item.get_ref<const std::string&>();
    if (IsValidScope(s)) {
      out.push_back(s);
    }
  }
  return true;
}

std::string Sha256(std::string_view data) {
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  SHA256(Bytes(data), data.size(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

}  // namespace

JwksFetcher JwksFileFetcher(std::string path) {
  return [path = std::move(path)]() -> StatusOr<JwksDocument> {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return NotFoundError("cannot read the JWKS file " + path);
    }
    std::string text(kMaxJwksBytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad()) {
      return NotFoundError("cannot read the JWKS file " + path);
    }
    text.resize(static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxJwksBytes) {
      return InvalidArgumentError("the JWKS file " + path + " is over 1 MiB");
    }
    return JwksDocument{std::move(text), std::nullopt};
  };
}

Status Validate(const JwtOptions& options) {
  if (options.issuer.empty()) {
    return InvalidArgumentError("auth issuer: name the token issuer (iss)");
  }
  if (options.audience.empty()) {
    return InvalidArgumentError("auth audience: name the token audience (aud)");
  }
  if (options.leeway < std::chrono::seconds(0) || options.leeway > std::chrono::seconds(300)) {
    return InvalidArgumentError("auth leeway: must be 0..300 s");
  }
  if (options.scope_claims.empty() ||
      std::any_of(options.scope_claims.begin(), options.scope_claims.end(),
                  [](const std::string& c) { return c.empty(); })) {
    return InvalidArgumentError("auth scope claim: name at least one claim, none empty");
  }
  if (options.max_token_bytes < 256 || options.max_token_bytes > 65536) {
    return InvalidArgumentError("auth max token bytes: must be 256..65536");
  }
  if (options.min_refetch_interval < std::chrono::seconds(0)) {
    return InvalidArgumentError("auth min refetch interval: must be >= 0");
  }
  return OkStatus();
}

struct JwtVerifier::State {
  State(JwtOptions o, JwksFetcher f, const Clock& c)
      : options(std::move(o)), fetcher(std::move(f)), clock(c) {}

  const JwtOptions options;
  const JwksFetcher fetcher;
  const Clock& clock;

  // Held while fetching, so that one thread fetches and the others use the keys held (or,
  // for an unknown kid, wait and look again).
  std::mutex fetch_mu;
  // True from before a fetch marks `last_fetch` until after it swapped the keys in: a thread
  // that finds a kid unknown and no fetch allowed waits for a fetch in flight (which may bring
  // the kid) instead of refusing the token at once.
  std::atomic<bool> fetching{false};

  mutable std::mutex keys_mu;  // guards the fields below up to the cache
  std::shared_ptr<const KeySet> keys;
  std::optional<Clock::SteadyTime> last_fetch;   // last attempt, successful or not
  std::optional<Clock::SteadyTime> keys_expire;  // from the fetcher's max-age
  size_t fetch_count = 0;

  struct CacheEntry {
    Principal principal;
    Clock::WallTime valid_until;
  };
  mutable std::mutex cache_mu;  // guards cache
  std::unordered_map<std::string, CacheEntry> cache;

  std::shared_ptr<const KeySet> Keys() const {
    std::lock_guard lock(keys_mu);
    return keys;
  }

  bool FetchAllowed(Clock::SteadyTime now) const {
    std::lock_guard lock(keys_mu);
    return !last_fetch || now - *last_fetch >= options.min_refetch_interval;
  }

  bool KeysStale(Clock::SteadyTime now) const {
    std::lock_guard lock(keys_mu);
    return keys_expire && now >= *keys_expire;
  }

  // REQUIRES: fetch_mu held.
  Status Fetch() {
    fetching.store(true);
    struct Done {
      std::atomic<bool>& flag;
      ~Done() { flag.store(false); }
    } done{fetching};
    const Clock::SteadyTime now = clock.Monotonic();
    {
      std::lock_guard lock(keys_mu);
      last_fetch = now;
      ++fetch_count;
    }
    StatusOr<JwksDocument> doc = UnavailableError("the JWKS fetch failed");
    try {
      doc = fetcher();
    } catch (const std::exception&) {
      // An injected HTTP client may throw; no exception leaves the verifier.
    }
    if (!doc.ok()) {
      return doc.status();
    }
    EVO_ASSIGN_OR_RETURN(KeySet parsed, ParseJwks(doc->json));
    auto fresh = std::make_shared<const KeySet>(std::move(parsed));
    bool changed = false;
    {
      std::lock_guard lock(keys_mu);
      changed = keys == nullptr || !SameKeys(*keys, *fresh);
      keys = std::move(fresh);
      keys_expire.reset();
      if (doc->max_age) {
        keys_expire = now + *doc->max_age;
      }
    }
    if (changed) {
      // A key withdrawn by the issuer must not stay usable through the cache.
      std::lock_guard lock(cache_mu);
      cache.clear();
    }
    return OkStatus();
  }

  static bool SameKeys(const KeySet& a, const KeySet& b) {
    if (a.size() != b.size()) {
      return false;
    }
    for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
      if (ia->first != ib->first || ia->second.alg != ib->second.alg ||
          EVP_PKEY_eq(ia->second.pkey.get(), ib->second.pkey.get()) != 1) {
        return false;
      }
    }
    return true;
  }

  // The key for `kid`, refetching the JWKS once when it is unknown and a fetch is allowed.
  std::optional<Key> FindKey(const std::string& kid) {
    const Clock::SteadyTime now = clock.Monotonic();
    if (KeysStale(now) && FetchAllowed(now)) {
      std::unique_lock lock(fetch_mu, std::try_to_lock);
      if (lock.owns_lock() && KeysStale(now) && FetchAllowed(now)) {
        (void)Fetch();  // a failure keeps the keys held
      }
    }
    if (auto key = Lookup(kid)) {
      return key;
    }
    if (!FetchAllowed(now) && !fetching.load()) {
      // No fetch allowed and none in flight; one may have completed since the lookup above
      // (it swaps the keys in before it clears `fetching`).
      return Lookup(kid);
    }
    std::lock_guard lock(fetch_mu);  // waits for a fetch in flight
    // Another thread may have fetched while this one waited.
    if (auto key = Lookup(kid)) {
      return key;
    }
    if (!FetchAllowed(now)) {
      return std::nullopt;
    }
    (void)Fetch();
    return Lookup(kid);
  }

  std::optional<Key> Lookup(const std::string& kid) const {
    const std::shared_ptr<const KeySet> held = Keys();
    if (held == nullptr) {
      return std::nullopt;
    }
    const auto it = held->find(kid);
    if (it == held->end()) {
      return std::nullopt;
    }
    return it->second;
  }

  std::optional<Principal> CacheGet(const std::string& digest, Clock::WallTime now) {
    std::lock_guard lock(cache_mu);
    const auto it = cache.find(digest);
    if (it == cache.end()) {
      return std::nullopt;
    }
    if (now >= it->second.valid_until) {
      cache.erase(it);
      return std::nullopt;
    }
    return it->second.principal;
  }

  void CachePut(std::string digest, const Principal& principal, Clock::WallTime valid_until,
                Clock::WallTime now) {
    if (options.cache_entries == 0) {
      return;
    }
    std::lock_guard lock(cache_mu);
    if (cache.size() >= options.cache_entries) {
      for (auto it = cache.begin(); it != cache.end();) {
        it = now >= it->second.valid_until ? cache.erase(it) : std::next(it);
      }
      if (cache.size() >= options.cache_entries) {
        cache.erase(cache.begin());
      }
    }
    cache.insert_or_assign(std::move(digest), CacheEntry{principal, valid_until});
  }

  StatusOr<Principal> VerifyUncached(std::string_view token, Clock::WallTime now,
                                     Clock::WallTime& valid_until);
};

StatusOr<Principal> JwtVerifier::State::VerifyUncached(std::string_view token, Clock::WallTime now,
                                                       Clock::WallTime& valid_until) {
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Refuse(kReasonMalformed, "malformed token: not three dot-separated parts");
  }
  const auto header_text = Base64UrlDecode(token.substr(0, dot1));
  const auto payload_text = Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto signature = Base64UrlDecode(token.substr(dot2 + 1));
  if (!header_text || !payload_text || !signature || signature->empty()) {
    return Refuse(kReasonMalformed, "malformed token: bad base64url");
  }
  const Json header = Json::parse(*header_text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Refuse(kReasonMalformed, "malformed token: header is not a JSON object");
  }
  const auto alg_name = StringMember(header, "alg");
  if (!alg_name) {
    return Refuse(kReasonMalformed, "malformed token: no alg");
  }
  const std::optional<Alg> alg = AlgFromName(*alg_name);
  if (!alg) {
    return Refuse(kReasonAlgorithm, "algorithm not allowed (RS256, ES256, EdDSA only)");
  }
  if (header.contains("crit")) {
    return Refuse(kReasonMalformed, "malformed token: unsupported crit header");
  }
  std::string kid;
  if (const auto it = header.find("kid"); it != header.end()) {
    if (!it->is_string()) {
      return Refuse(kReasonMalformed, "malformed token: kid is not a string");
    }
    kid = it->get<std::string>();
  }
  const std::optional<Key> key = FindKey(kid);
  if (!key) {
    return Refuse(kReasonUnknownKey, "unknown signing key (kid)");
  }
  if (key->alg != *alg) {
    return Refuse(kReasonAlgorithm, "algorithm does not match the signing key");
  }
  if (!VerifySignature(*key, *signature, token.substr(0, dot2))) {
    return Refuse(kReasonSignature, "invalid signature");
  }

  // Only signed content from here on.
  const Json claims = Json::parse(*payload_text, nullptr, /*allow_exceptions=*/false);
  if (claims.is_discarded() || !claims.is_object()) {
    return Refuse(kReasonMalformed, "malformed token: payload is not a JSON object");
  }
  const double now_s = UnixSeconds(now);
  const auto leeway_s = static_cast<double>(options.leeway.count());
  const std::optional<double> exp = NumericDate(claims, "exp");
  if (!exp) {
    return Refuse(kReasonClaims, "token has no valid exp");
  }
  if (now_s >= *exp + leeway_s) {
    return Refuse(kReasonExpired, "token expired");
  }
  if (claims.contains("nbf")) {
    const std::optional<double> nbf = NumericDate(claims, "nbf");
    if (!nbf) {
      return Refuse(kReasonClaims, "token has an invalid nbf");
    }
    if (now_s + leeway_s < *nbf) {
      return Refuse(kReasonNotYetValid, "token not yet valid (nbf)");
    }
  }
  if (StringMember(claims, "iss") != options.issuer) {
    return Refuse(kReasonIssuer, "wrong issuer");
  }
  bool audience_ok = false;
  if (const auto aud = claims.find("aud"); aud != claims.end()) {
    if (aud->is_string()) {
      audience_ok = *aud == options.audience;
    } else if (aud->is_array()) {
      audience_ok = std::any_of(aud->begin(), aud->end(), [this](const Json& a) {
        return a.is_string() && a == options.audience;
      });
    }
  }
  if (!audience_ok) {
    return Refuse(kReasonAudience, "wrong audience");
  }

  Principal principal;
  principal.kind = Principal::Kind::kJwt;
  const auto sub = StringMember(claims, "sub");
  if (!sub || sub->empty()) {
    return Refuse(kReasonClaims, "token has no sub");
  }
  principal.subject = *sub;
  for (const std::string& name : options.scope_claims) {
    const auto it = claims.find(name);
    if (it != claims.end() && !AddScopes(*it, principal.scopes)) {
      return Refuse(kReasonClaims, "scope claim is neither a string nor an array of strings");
    }
  }
  std::sort(principal.scopes.begin(), principal.scopes.end());
  principal.scopes.erase(std::unique(principal.scopes.begin(), principal.scopes.end()),
                         principal.scopes.end());
  if (!options.application_claim.empty()) {
    if (const auto it = claims.find(options.application_claim); it != claims.end()) {
      // A claim meant to narrow access that cannot be read must not widen it.
      if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
        return Refuse(kReasonClaims, "application claim is not a non-empty string");
      }
      principal.application = it->get<std::string>();
    }
  }

  // Cache until the instant a fresh verification would refuse the token; clamp so that an
  // absurd exp cannot overflow the time_point.
  constexpr double kMaxSeconds = 253402300799.0;  // 9999-12-31T23:59:59Z
  const double until_s = std::min(*exp + leeway_s, kMaxSeconds);
  valid_until = Clock::WallTime(std::chrono::duration_cast<Clock::WallTime::duration>(
      std::chrono::duration<double>(until_s)));
  return principal;
}

JwtVerifier::JwtVerifier(std::unique_ptr<State> state) : state_(std::move(state)) {}
JwtVerifier::~JwtVerifier() = default;

StatusOr<std::unique_ptr<JwtVerifier>> JwtVerifier::Create(JwtOptions options, JwksFetcher fetcher,
                                                           const Clock& clock) {
  EVO_RETURN_IF_ERROR(Validate(options));
  if (!fetcher) {
    return InvalidArgumentError("auth: no JWKS source (a JWKS file or URL)");
  }
  auto state = std::make_unique<State>(std::move(options), std::move(fetcher), clock);
  {
    std::lock_guard lock(state->fetch_mu);
    EVO_RETURN_IF_ERROR(state->Fetch());
  }
  return std::unique_ptr<JwtVerifier>(new JwtVerifier(std::move(state)));
}

StatusOr<Principal> JwtVerifier::Verify(std::string_view token) {
  if (token.size() > state_->options.max_token_bytes) {
    return Refuse(kReasonTooLarge, "token too large");
  }
  if (token.empty()) {
    return Refuse(kReasonMalformed, "malformed token: empty");
  }
  const Clock::WallTime now = state_->clock.Now();
  std::string digest = Sha256(token);
  if (auto cached = state_->CacheGet(digest, now)) {
    return *std::move(cached);
  }
  Clock::WallTime valid_until;
  EVO_ASSIGN_OR_RETURN(Principal principal, state_->VerifyUncached(token, now, valid_until));
  state_->CachePut(std::move(digest), principal, valid_until, now);
  return principal;
}

size_t JwtVerifier::CachedTokens() const {
  std::lock_guard lock(state_->cache_mu);
  return state_->cache.size();
}

size_t JwtVerifier::FetchCount() const {
  std::lock_guard lock(state_->keys_mu);
  return state_->fetch_count;
}

}  // namespace evo::auth
