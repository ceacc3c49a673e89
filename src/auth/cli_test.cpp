#include "auth/cli.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/keys.hpp"
#include "core/temp_dir.hpp"

namespace evo::auth {
namespace {

class KeysCliTest : public ::testing::Test {
 protected:
  StatusOr<std::unique_ptr<store::Database>> Open() const {
    return store::OpenSqlite({.path = dir_.File("evo.db")});
  }

  // Runs `evo keys ...` as main.cpp would; returns the exit code.
  int Run(std::vector<std::string> args) {
    CLI::App app("evo");
    cli::Commands commands;
    RegisterCli(app, commands, {.open_database = [this] { return Open(); }});
    args.insert(args.begin(), "keys");
    std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
    try {
      app.parse(args);
    } catch (const CLI::ParseError&) {
      return cli::kExitUsage;
    }
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    const int code = commands.Run();
    out_ = ::testing::internal::GetCapturedStdout();
    err_ = ::testing::internal::GetCapturedStderr();
    return code;
  }

  evo::testing::TempDir dir_;
  std::string out_;
  std::string err_;
};

TEST_F(KeysCliTest, CreatePrintsTheKeyAloneAndItVerifies) {
  ASSERT_EQ(Run({"create", "--name", "deploy", "--scope", "ids:read", "--scope", "queue:write",
                 "--expires", "30d"}),
            0)
      << err_;
  ASSERT_EQ(out_.size(), 69u) << out_;  // the key and a newline, nothing else
  const std::string key = out_.substr(0, 68);
  EXPECT_EQ(out_.back(), '\n');
  EXPECT_NE(err_.find("deploy"), std::string::npos);
  EXPECT_EQ(err_.find(key.substr(25)), std::string::npos);  // the secret is on stdout only

  auto db = Open().value();
  auto keys = KeyStore::Open(*db, RealClock()).value();
  auto p = keys->Verify(key);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->scopes, (std::vector<std::string>{"ids:read", "queue:write"}));
  EXPECT_TRUE(keys->Get(p->subject)->expires_at.has_value());
}

TEST_F(KeysCliTest, LsAndRevokeInJson) {
  ASSERT_EQ(Run({"create", "--name", "a", "--scope", "admin", "--application", "app_1", "--format",
                 "json"}),
            0)
      << err_;
  const auto created = nlohmann::json::parse(out_);
  const std::string key = created.at("key").get<std::string>();
  const std::string id = created.at("id").get<std::string>();
  EXPECT_EQ(created.at("application"), "app_1");

  ASSERT_EQ(Run({"ls", "--format", "json"}), 0) << err_;
  const auto listed = nlohmann::json::parse(out_);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].at("id"), id);
  EXPECT_FALSE(listed[0].contains("key"));
  EXPECT_EQ(out_.find(key.substr(25)), std::string::npos);
  EXPECT_TRUE(listed[0].at("revokedAt").is_null());

  ASSERT_EQ(Run({"revoke", id}), 0) << err_;
  ASSERT_EQ(Run({"ls", "--format", "json"}), 0) << err_;
  EXPECT_TRUE(nlohmann::json::parse(out_)[0].at("revokedAt").is_string());

  auto db = Open().value();
  auto keys = KeyStore::Open(*db, RealClock()).value();
  EXPECT_EQ(keys->Verify(key).status().message(), "API key revoked");
}

TEST_F(KeysCliTest, BadArgumentsExitWithUsage) {
  EXPECT_EQ(Run({"create", "--name", "a", "--scope", "root"}), cli::kExitUsage);
  EXPECT_EQ(Run({"create", "--name", "a", "--scope", "ids:read", "--expires", "soon"}),
            cli::kExitUsage);
  EXPECT_EQ(Run({"create", "--name", "a"}), cli::kExitUsage);           // --scope is required
  EXPECT_EQ(Run({"revoke", "key_0000000000000000"}), cli::kExitUsage);  // NotFound
  ASSERT_EQ(Run({"ls"}), 0);
  EXPECT_EQ(out_.find("key_"), std::string::npos);  // nothing was created
}

}  // namespace
}  // namespace evo::auth
