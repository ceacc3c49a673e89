// Authentication for `evo serve`: the http::Authenticator built from the API key store and,
// when configured, the JWT verifier; and the JWKS fetcher for --auth-jwks-url.
#pragma once

#include <string>

#include "auth/jwt.hpp"
#include "auth/keys.hpp"
#include "core/metrics.hpp"
#include "http/router.hpp"

namespace evo::app {

// Reads `Authorization: Bearer <token>` (exactly one such header): an `evo_` token is checked
// against `keys`, anything else against `jwt` (when not null). Every refusal is Unauthenticated
// with a short reason, counted in evo_auth_failures_total{reason} and logged with the request
// id, never with the token. `keys`, `jwt` and `registry` must outlive the authenticator.
http::Authenticator MakeAuthenticator(const auth::KeyStore& keys, auth::JwtVerifier* jwt,
                                      metrics::Registry& registry);

// Fetches a JWKS over HTTP(S) with libcurl: 5 s timeout, no redirects, at most 1 MiB, HTTP 200
// only; the max-age of Cache-Control, when the answer has one.
auth::JwksFetcher JwksUrlFetcher(std::string url);

}  // namespace evo::app
