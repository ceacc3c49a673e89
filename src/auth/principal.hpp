// Who a request acts as, once a credential was verified (an API key or a JWT), and the
// scopes it holds. Identity comes only from a verified credential: nothing a client merely
// states (a header such as X-Admin or Grpc-Metadata-Admin, a body field) ever adds a scope.
//
// Scope names (README "Authentication"): "MODULE:read" for reads and side-effect-free POSTs
// (classify, decode, stats), "MODULE:write" for changes, and "admin", which implies every
// scope. MODULE is one of ids, spam, bandit, queue, webhooks, keys... (lower case letters,
// digits, '-' and '_').
//
// Thread safety: a Principal is a value; the functions are pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"

namespace evo::auth {

inline constexpr std::string_view kAdminScope = "admin";

struct Principal {
  enum class Kind { kAnonymous, kApiKey, kJwt };
  Kind kind = Kind::kAnonymous;
  // The key's id ("key_...") or the token's `sub`; for logs and audit, never a secret.
  std::string subject;
  // Sorted, without duplicates.
  std::vector<std::string> scopes;
  // When set, the credential may only touch this webhooks application (as Svix scopes its
  // app-portal tokens); unset: every application.
  std::optional<std::string> application;

  // True when the principal holds `scope`, or "admin".
  bool Has(std::string_view scope) const;

  // What requests act as when authentication is off: admin.
  static Principal Admin();
};

// True for "admin" and "MODULE:read|write" with a well-formed MODULE.
bool IsValidScope(std::string_view scope);

// Splits a space-separated scope string (the JWT `scope` claim), drops empty parts, sorts
// and removes duplicates. Unknown or malformed names are kept out (InvalidArgument is for
// places where a user names scopes: see ParseScopes).
std::vector<std::string> SplitScopes(std::string_view text);

// The scopes a user gave (`--scope` flags, a JSON array): each must be valid (InvalidArgument
// naming the first bad one); the result is sorted, without duplicates; at least one.
StatusOr<std::vector<std::string>> ParseScopes(const std::vector<std::string>& given);

}  // namespace evo::auth
