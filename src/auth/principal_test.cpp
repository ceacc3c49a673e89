#include "auth/principal.hpp"

#include <gtest/gtest.h>

namespace evo::auth {
namespace {

TEST(Principal, AdminImpliesEveryScope) {
  Principal p;
  p.scopes = {"ids:read"};
  EXPECT_TRUE(p.Has("ids:read"));
  EXPECT_FALSE(p.Has("ids:write"));
  EXPECT_FALSE(p.Has("admin"));
  EXPECT_TRUE(Principal::Admin().Has("queue:write"));
  EXPECT_TRUE(Principal::Admin().Has("admin"));
  EXPECT_FALSE(Principal().Has("ids:read"));
}

TEST(Principal, ScopesAreParsedStrictlyAndSplitLeniently) {
  EXPECT_TRUE(IsValidScope("admin"));
  EXPECT_TRUE(IsValidScope("webhooks:write"));
  for (const char* bad : {"", "ids", "ids:", ":read", "ids:delete", "IDS:read", "ids:read ",
                          "a b:read", "ids:read:x"}) {
    EXPECT_FALSE(IsValidScope(bad)) << bad;
  }
  EXPECT_EQ(SplitScopes("  queue:write ids:read bogus ids:read admin"),
            (std::vector<std::string>{"admin", "ids:read", "queue:write"}));
  auto parsed = ParseScopes({"spam:write", "ids:read", "spam:write"});
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, (std::vector<std::string>{"ids:read", "spam:write"}));
  EXPECT_EQ(ParseScopes({}).status().code(), StatusCode::kInvalidArgument);
  const Status bad = ParseScopes({"ids:read", "root"}).status();
  EXPECT_NE(bad.message().find("'root'"), std::string_view::npos);
}

}  // namespace
}  // namespace evo::auth
