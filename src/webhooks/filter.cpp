#include "webhooks/filter.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include <fmt/format.h>

namespace evo::webhooks {
namespace {

using nlohmann::json;

constexpr size_t kMaxConditions = 32;
constexpr std::array<std::string_view, 9> kOperators = {"$eq",  "$ne", "$gt",  "$gte",   "$lt",
                                                        "$lte", "$in", "$nin", "$exists"};

Status Bad(std::string_view key, std::string_view message) {
  // The key is a JSON pointer itself: escape it as one reference token.
  std::string token;
  for (char c : key) {
    if (c == '~') {
      token += "~0";
    } else if (c == '/') {
      token += "~1";
    } else {
      token += c;
    }
  }
  return InvalidArgumentError(fmt::format("filter: {}", message))
      .With(kPayloadReason, "INVALID_FILTER")
      .With(kPayloadPointer, "#/filter/" + token);
}

// Ordering between two values of the same kind; nullopt when they do not compare.
std::optional<int> Compare(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    const double x = a.get<double>();
    const double y = b.get<double>();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  return std::nullopt;
}

bool Equal(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    return a.get<double>() == b.get<double>();  // 1 and 1.0 are the same number
  }
  return a == b;
}

}  // namespace

StatusOr<Filter> Filter::Compile(const json& filter) {
  Filter out;
  if (filter.is_null()) {
    return out;
  }
  if (!filter.is_object()) {
    return InvalidArgumentError("filter must be an object of conditions")
        .With(kPayloadReason, "INVALID_FILTER")
        .With(kPayloadPointer, "#/filter");
  }
  for (const auto& [key, spec] : filter.items()) {
    if (key.empty() || key[0] != '/') {
      return Bad(key, "keys are JSON pointers into the payload, starting with '/'");
    }
    json::json_pointer path;
    try {
      path = json::json_pointer(key);
    } catch (const json::exception&) {
      return Bad(key, "not a valid JSON pointer");
    }
    const bool is_operator_object =
        spec.is_object() && !spec.empty() &&
        std::all_of(spec.items().begin(), spec.items().end(),
                    [](const auto& item) { return !item.key().empty() && item.key()[0] == '$'; });
    if (!is_operator_object) {
      out.conditions_.push_back({path, "$eq", spec});
    } else {
      for (const auto& [op, value] : spec.items()) {
        if (std::find(kOperators.begin(), kOperators.end(), op) == kOperators.end()) {
          return Bad(key, fmt::format("unknown operator '{}'", op));
        }
        if ((op == "$in" || op == "$nin") && !value.is_array()) {
          return Bad(key, fmt::format("{} takes an array", op));
        }
        if (op == "$exists" && !value.is_boolean()) {
          return Bad(key, "$exists takes true or false");
        }
        if ((op == "$gt" || op == "$gte" || op == "$lt" || op == "$lte") && !value.is_number() &&
            !value.is_string()) {
          return Bad(key, fmt::format("{} takes a number or a string", op));
        }
        out.conditions_.push_back({path, op, value});
      }
    }
    if (out.conditions_.size() > kMaxConditions) {
      return Bad(key, fmt::format("at most {} conditions", kMaxConditions));
    }
  }
  return out;
}

bool Filter::Matches(const json& payload) const {
  for (const Condition& c : conditions_) {
    bool present = false;
    try {
      present = payload.contains(c.path);
    } catch (const json::exception&) {
      present = false;  // e.g. a non-numeric token into an array
    }
    if (c.op == "$exists") {
      if (present != c.value.get<bool>()) {
        return false;
      }
      continue;
    }
    if (!present) {
      if (c.op == "$ne" || c.op == "$nin") {
        continue;  // an absent field is unequal to anything
      }
      return false;
    }
    const json& v = payload[c.path];
    bool ok = false;
    if (c.op == "$eq") {
      ok = Equal(v, c.value);
    } else if (c.op == "$ne") {
      ok = !Equal(v, c.value);
    } else if (c.op == "$in" || c.op == "$nin") {
      const bool found = std::any_of(c.value.begin(), c.value.end(),
                                     [&](const json& candidate) { return Equal(v, candidate); });
      ok = c.op == "$in" ? found : !found;
    } else {
      const auto cmp = Compare(v, c.value);
      ok = cmp && ((c.op == "$gt" && *cmp > 0) || (c.op == "$gte" && *cmp >= 0) ||
                   (c.op == "$lt" && *cmp < 0) || (c.op == "$lte" && *cmp <= 0));
    }
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace evo::webhooks
