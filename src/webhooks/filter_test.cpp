#include "webhooks/filter.hpp"

#include <gtest/gtest.h>

namespace evo::webhooks {
namespace {

using nlohmann::json;

bool Match(const json& filter, const json& payload) {
  auto f = Filter::Compile(filter);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() && f->Matches(payload);
}

TEST(Filter, NullMatchesEverything) {
  EXPECT_TRUE(Match(nullptr, json::object()));
  EXPECT_TRUE(Match(nullptr, 42));
}

TEST(Filter, EqualityOnNestedPointers) {
  const json p = {{"customer", {{"tier", "gold"}, {"id", 7}}}, {"items", {1, 2, 3}}};
  EXPECT_TRUE(Match({{"/customer/tier", "gold"}}, p));
  EXPECT_FALSE(Match({{"/customer/tier", "silver"}}, p));
  EXPECT_TRUE(Match({{"/customer/id", 7.0}}, p));  // 7 and 7.0 are the same number
  EXPECT_TRUE(Match({{"/items/1", 2}}, p));
  EXPECT_FALSE(Match({{"/missing", 1}}, p));
  EXPECT_FALSE(Match({{"/items/x", 1}}, p));  // not an index: no match, no throw
  EXPECT_TRUE(Match({{"/customer", {{"tier", "gold"}, {"id", 7}}}}, p));
}

TEST(Filter, OperatorsCompose) {
  const json p = {{"amount", 250}, {"region", "eu"}};
  EXPECT_TRUE(Match({{"/amount", {{"$gte", 100}, {"$lt", 1000}}}}, p));
  EXPECT_FALSE(Match({{"/amount", {{"$gt", 250}}}}, p));
  EXPECT_TRUE(Match({{"/region", {{"$in", {"eu", "us"}}}}}, p));
  EXPECT_FALSE(Match({{"/region", {{"$nin", {"eu"}}}}}, p));
  EXPECT_TRUE(Match({{"/coupon", {{"$exists", false}}}}, p));
  EXPECT_FALSE(Match({{"/amount", {{"$exists", false}}}}, p));
  EXPECT_TRUE(Match({{"/coupon", {{"$ne", "x"}}}}, p));  // absent is unequal
  EXPECT_FALSE(Match({{"/region", {{"$gt", 5}}}}, p));   // string vs number: no match
  EXPECT_TRUE(Match({{"/region", {{"$gte", "ea"}}}}, p));
  EXPECT_TRUE(Match({{"/amount", 250}, {"/region", "eu"}}, p));
  EXPECT_FALSE(Match({{"/amount", 250}, {"/region", "us"}}, p));
}

TEST(Filter, MalformedFiltersAreRefusedWithAPointer) {
  for (const json& bad :
       {json(5), json("x"), json::array(), json({{"amount", 1}}), json({{"/a", {{"$between", 1}}}}),
        json({{"/a", {{"$in", 1}}}}), json({{"/a", {{"$exists", "yes"}}}}),
        json({{"/a", {{"$gt", {1}}}}}), json({{"/a~2", 1}})}) {
    auto f = Filter::Compile(bad);
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(f.status().GetPayload(kPayloadPointer).value_or("").starts_with("#/filter"));
  }
  json many = json::object();
  for (int i = 0; i < 40; ++i) {
    many["/k" + std::to_string(i)] = i;
  }
  EXPECT_FALSE(Filter::Compile(many).ok());
}

}  // namespace
}  // namespace evo::webhooks
