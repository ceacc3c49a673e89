// JWT access tokens from an OIDC provider (Auth0, Keycloak, Dex...), verified against the
// provider's JWKS with OpenSSL.
//
// What a token must be to be accepted:
// - three base64url parts (strict: no padding, no stray characters), at most
//   `max_token_bytes` in all;
// - header `alg` one of RS256, ES256, EdDSA, and the JWK named by `kid` of the matching kind
//   (RSA / EC P-256 / OKP Ed25519; a JWK `alg`, when present, must name the same algorithm).
//   `none`, every HMAC algorithm and every other algorithm are refused, whatever the key;
//   the algorithm is never chosen from the token alone. A header with `crit` is refused;
// - a valid signature;
// - `exp` (required) not passed, `nbf` (when present) reached, both with `leeway`;
// - `iss` equal to `issuer`; `aud` equal to `audience`, or an array that contains it;
// - `sub` a string (the principal's subject).
// The scopes are read from `scope_claims` (each a space-separated string or an array of
// strings; names that are not valid evo scopes are dropped, see SplitScopes). The optional
// `application_claim` (default "evo_app"), when present, must be a string and limits the
// principal to that webhooks application.
//
// Every refusal is kUnauthenticated with a short message that never contains the token or a
// part of it, and a kPayloadReason payload (one of the kReason* below) for metrics labels.
//
// Caching: a verified token is remembered (by its SHA-256) with its principal until it
// expires (`exp` + `leeway`, the instant a fresh verification would refuse it), so a repeated
// token costs one hash and one lookup. At most `cache_entries` tokens are remembered; a
// change of the key set forgets them all.
//
// Keys: the JWKS comes from a JwksFetcher (a file, or a URL through an HTTP client the
// caller injects). It is fetched when the verifier is created, again when a token names an
// unknown `kid`, and again when the max-age the fetcher reported has passed; never more than
// once per `min_refetch_interval`, whatever the reason. A failed refetch keeps the keys held.
//
// Thread safety: a JwtVerifier may be shared by any number of threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "core/status.hpp"

namespace evo::auth {

// kPayloadReason values of a refused token.
inline constexpr std::string_view kReasonMalformed = "malformed";        // structure, base64, JSON
inline constexpr std::string_view kReasonTooLarge = "too_large";         // over max_token_bytes
inline constexpr std::string_view kReasonAlgorithm = "algorithm";        // alg refused / mismatch
inline constexpr std::string_view kReasonUnknownKey = "unknown_key";     // kid not in the JWKS
inline constexpr std::string_view kReasonSignature = "bad_signature";    // signature invalid
inline constexpr std::string_view kReasonExpired = "expired";            // exp passed
inline constexpr std::string_view kReasonNotYetValid = "not_yet_valid";  // nbf in the future
inline constexpr std::string_view kReasonIssuer = "issuer";              // iss missing or wrong
inline constexpr std::string_view kReasonAudience = "audience";          // aud missing or wrong
inline constexpr std::string_view kReasonClaims = "claims";  // sub/scope/app claims malformed

// One JWKS document as fetched.
struct JwksDocument {
  std::string json;  // {"keys": [...]}
  // From the response's Cache-Control max-age, when it had one: the keys are refetched once
  // this has passed. Unset: kept until an unknown `kid` asks for a refetch.
  std::optional<std::chrono::seconds> max_age;
};

// Fetches the JWKS. Called from the thread that verifies a token (never concurrently with
// itself); must be bounded in time (an HTTP fetcher needs a timeout). Any error code: the
// verifier keeps the keys it has.
using JwksFetcher = std::function<StatusOr<JwksDocument>()>;

// Reads the JWKS from `path` on every fetch (so a rotated file is picked up on an unknown
// `kid`); no max-age. NotFound when the file cannot be read, InvalidArgument over 1 MiB.
JwksFetcher JwksFileFetcher(std::string path);

struct JwtOptions {
  std::string issuer;               // REQUIRES: non-empty; compared byte for byte with `iss`
  std::string audience;             // REQUIRES: non-empty
  std::chrono::seconds leeway{30};  // REQUIRES: 0..300 s; clock skew allowed on exp and nbf
  // Claims that carry scopes, each a space-separated string or an array of strings; their
  // scopes are merged. REQUIRES: non-empty, no empty name.
  std::vector<std::string> scope_claims = {"scope", "scp", "permissions"};
  // Claim naming the one webhooks application the token is limited to; empty: none read.
  std::string application_claim = "evo_app";
  size_t max_token_bytes = 8192;                  // REQUIRES: 256..65536
  size_t cache_entries = 10'000;                  // 0 disables the cache
  std::chrono::seconds min_refetch_interval{30};  // REQUIRES: >= 0
};

// InvalidArgument naming the first bad field.
Status Validate(const JwtOptions& options);

class JwtVerifier {
 public:
  // Validates `options`, fetches the JWKS once and returns the verifier. The error of that
  // first fetch is returned (with the code the fetcher gave); a JWKS that is not JSON or
  // holds no usable key is InvalidArgument. Keys of other kinds (HMAC "oct", RSA under 2048
  // bits, other curves, `use` other than "sig") are skipped. `clock` must outlive the
  // verifier.
  static StatusOr<std::unique_ptr<JwtVerifier>> Create(JwtOptions options, JwksFetcher fetcher,
                                                       const Clock& clock);
  ~JwtVerifier();
  JwtVerifier(const JwtVerifier&) = delete;
  JwtVerifier& operator=(const JwtVerifier&) = delete;

  // The principal (kind kJwt) of a valid token, or kUnauthenticated (see the top of this
  // file). `token` is the bearer credential without the "Bearer " prefix.
  StatusOr<Principal> Verify(std::string_view token);

  // For tests and metrics: tokens cached now, and JWKS fetches attempted (including the
  // first).
  size_t CachedTokens() const;
  size_t FetchCount() const;

 private:
  struct State;
  explicit JwtVerifier(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace evo::auth
