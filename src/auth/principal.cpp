#include "auth/principal.hpp"

#include <algorithm>

namespace evo::auth {
namespace {

bool IsModuleChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

void SortUnique(std::vector<std::string>& scopes) {
  std::sort(scopes.begin(), scopes.end());
  scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
}

}  // namespace

bool Principal::Has(std::string_view scope) const {
  for (const std::string& s : scopes) {
    if (s == scope || s == kAdminScope) {
      return true;
    }
  }
  return false;
}

Principal Principal::Admin() {
  Principal p;
  p.subject = "anonymous (authentication off)";
  p.scopes = {std::string(kAdminScope)};
  return p;
}

bool IsValidScope(std::string_view scope) {
  if (scope == kAdminScope) {
    return true;
  }
  const size_t colon = scope.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 32) {
    return false;
  }
  const std::string_view module = scope.substr(0, colon);
  const std::string_view access = scope.substr(colon + 1);
  return std::all_of(module.begin(), module.end(), IsModuleChar) &&
         (access == "read" || access == "write");
}

std::vector<std::string> SplitScopes(std::string_view text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = std::min(text.find(' ', at), text.size());
    const std::string_view part = text.substr(at, end - at);
    if (IsValidScope(part)) {
      out.emplace_back(part);
    }
    at = end + 1;
  }
  SortUnique(out);
  return out;
}

StatusOr<std::vector<std::string>> ParseScopes(const std::vector<std::string>& given) {
  if (given.empty()) {
    return InvalidArgumentError("name at least one scope (e.g. ids:read, queue:write, admin)");
  }
  std::vector<std::string> out;
  for (const std::string& s : given) {
    if (!IsValidScope(s)) {
      return InvalidArgumentError("'" + s +
                                  "' is not a scope: use MODULE:read, MODULE:write or admin");
    }
    out.push_back(s);
  }
  SortUnique(out);
  return out;
}

}  // namespace evo::auth
