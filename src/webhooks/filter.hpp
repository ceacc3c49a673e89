// Payload filters of webhook endpoints: an endpoint receives a message only when its payload
// matches. A filter is a JSON object of conditions, all of which must hold:
//
//   {"/customer/tier": "gold",                      equality with any JSON value
//    "/amount": {"$gte": 100, "$lt": 1000},         $eq $ne $gt $gte $lt $lte
//    "/region": {"$in": ["eu", "us"]},              $in $nin (arrays of values)
//    "/coupon": {"$exists": false}}                 $exists
//
// Keys are JSON pointers (RFC 6901) into the payload; ordering operators compare numbers
// or strings (of the same kind; anything else does not match). Private to the module.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.hpp"

namespace evo::webhooks {

class Filter {
 public:
  // InvalidArgument (with the offending key as JSON pointer under "#/filter") for anything
  // but the grammar above; at most 32 conditions. A null filter matches everything.
  static StatusOr<Filter> Compile(const nlohmann::json& filter);
  bool Matches(const nlohmann::json& payload) const;

 private:
  struct Condition {
    nlohmann::json::json_pointer path;
    std::string op;  // "$eq" "$ne" "$gt" "$gte" "$lt" "$lte" "$in" "$nin" "$exists"
    nlohmann::json value;
  };
  std::vector<Condition> conditions_;
};

}  // namespace evo::webhooks
