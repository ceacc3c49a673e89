#include "app/authn.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>

#include "http/text.hpp"

namespace evo::app {
namespace {

constexpr size_t kMaxJwksBytes = 1 << 20;

// "Bearer " in any case (RFC 9110: the auth-scheme is case-insensitive).
bool StartsWithBearer(std::string_view value) {
  constexpr std::string_view kBearer = "bearer ";
  return value.size() >= kBearer.size() &&
         http::internal::IEquals(value.substr(0, kBearer.size()), kBearer);
}

// The reason label of a refusal, for the metric: a fixed set, never client text.
std::string ReasonLabel(const Status& s) {
  if (const auto reason = s.GetPayload(kPayloadReason)) {
    return std::string(*reason);
  }
  const std::string_view m = s.message();
  for (const char* known : {"required", "malformed", "unknown", "wrong", "expired", "revoked",
                            "Bearer", "Authorization"}) {
    if (m.find(known) != std::string_view::npos) {
      return known == std::string_view("Bearer") || known == std::string_view("Authorization")
                 ? "scheme"
                 : known;
    }
  }
  return "other";
}

struct Fetched {
  std::string body;
  std::optional<std::chrono::seconds> max_age;
  bool too_large = false;
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* f = static_cast<Fetched*>(user);
  const size_t n = size * count;
  if (f->body.size() + n > kMaxJwksBytes) {
    f->too_large = true;
    return 0;  // aborts the transfer
  }
  f->body.append(data, n);
  return n;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* f = static_cast<Fetched*>(user);
  const size_t n = size * count;
  std::string line(data, n);
  std::transform(line.begin(), line.end(), line.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (line.rfind("cache-control:", 0) == 0) {
    const size_t at = line.find("max-age=");
    if (at != std::string::npos) {
      long long seconds = 0;
      size_t i = at + 8;
      bool digits = false;
      while (i < line.size() && std::isdigit(static_cast<unsigned char>(line[i])) &&
             seconds < 1'000'000'000) {
        seconds = seconds * 10 + (line[i] - '0');
        digits = true;
        ++i;
      }
      if (digits) {
        f->max_age = std::chrono::seconds(seconds);
      }
    }
  }
  return n;
}

}  // namespace

http::Authenticator MakeAuthenticator(const auth::KeyStore& keys, auth::JwtVerifier* jwt,
                                      metrics::Registry& registry) {
  auto& failures = registry.AddCounter(
      "evo_auth_failures_total", "Requests refused for their credential, by reason.", {"reason"});
  return [&keys, jwt, &failures](const http::Request& r) -> StatusOr<auth::Principal> {
    StatusOr<auth::Principal> who = UnauthenticatedError("a bearer token is required");
    const auto header = r.headers.Get("Authorization");
    if (header && r.headers.Count("Authorization") != 1) {
      who = UnauthenticatedError("send exactly one Authorization header");
    } else if (header && !StartsWithBearer(*header)) {
      who = UnauthenticatedError("only `Authorization: Bearer <token>` is accepted");
    } else if (header) {
      const std::string_view token = http::internal::TrimOws(std::string_view(*header).substr(7));
      if (auth::LooksLikeApiKey(token)) {
        who = keys.Verify(token);
      } else if (jwt != nullptr) {
        who = jwt->Verify(token);
      } else {
        who = UnauthenticatedError("the token is not accepted (no JWT issuer is configured)");
      }
    }
    if (!who.ok()) {
      const std::string reason = ReasonLabel(who.status());
      failures.Get({reason}).Inc();
      spdlog::info("auth: refused {} {} (request {}): {}", r.method, r.path, r.request_id,
                   who.status().message());
    }
    return who;
  };
}

auth::JwksFetcher JwksUrlFetcher(std::string url) {
  return [url = std::move(url)]() -> StatusOr<auth::JwksDocument> {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
    if (!curl) {
      return InternalError("cannot start a JWKS request");
    }
    Fetched fetched;
    curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &fetched);
    curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &fetched);
    const CURLcode code = curl_easy_perform(curl.get());
    if (fetched.too_large) {
      return InvalidArgumentError("the JWKS at " + url + " is larger than 1 MiB");
    }
    if (code != CURLE_OK) {
      return UnavailableError("cannot fetch the JWKS at " + url + ": " + curl_easy_strerror(code));
    }
    long status = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
      return UnavailableError("the JWKS at " + url + " answered HTTP " + std::to_string(status));
    }
    return auth::JwksDocument{std::move(fetched.body), fetched.max_age};
  };
}

}  // namespace evo::app
