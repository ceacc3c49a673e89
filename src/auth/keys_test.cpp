#include "auth/keys.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/temp_dir.hpp"

namespace evo::auth {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = store::OpenSqlite({.path = dir_.File("evo.db")}, clock_).value();
    keys_ = KeyStore::Open(*db_, clock_).value();
  }

  // Another process's view of the same database file: its own connections, its own store.
  struct Other {
    std::unique_ptr<store::Database> db;
    std::unique_ptr<KeyStore> keys;
  };
  Other OpenOther() {
    Other o;
    o.db = store::OpenSqlite({.path = dir_.File("evo.db")}, clock_).value();
    o.keys = KeyStore::Open(*o.db, clock_).value();
    return o;
  }

  CreatedKey MustCreate(std::vector<std::string> scopes,
                        std::optional<seconds> expires_in = std::nullopt) {
    KeySpec spec;
    spec.name = "ci deploy";
    spec.scopes = std::move(scopes);
    spec.expires_in = expires_in;
    auto created = keys_->Create(spec);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.value();
  }

  ManualClock clock_;
  evo::testing::TempDir dir_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<KeyStore> keys_;
};

TEST_F(KeyStoreTest, CreatedKeyHasTheDocumentedShapeAndVerifiesWithItsScopes) {
  KeySpec spec;
  spec.name = "ci deploy";
  spec.scopes = {"queue:write", "ids:read", "ids:read"};
  spec.application = "app_123";
  auto created = keys_->Create(spec);
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string& key = created->key;
  ASSERT_EQ(key.size(), 68u);
  EXPECT_EQ(key.substr(0, 8), "evo_key_");
  EXPECT_EQ(key.substr(4, 20), created->info.id);
  EXPECT_EQ(key[24], '_');
  EXPECT_EQ(created->info.hint, key.substr(64));
  EXPECT_TRUE(LooksLikeApiKey(key));
  EXPECT_FALSE(LooksLikeApiKey("eyJhbGciOiJSUzI1NiJ9.e30.sig"));

  auto p = keys_->Verify(key);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, Principal::Kind::kApiKey);
  EXPECT_EQ(p->subject, created->info.id);
  EXPECT_EQ(p->scopes, (std::vector<std::string>{"ids:read", "queue:write"}));
  EXPECT_EQ(p->application, std::optional<std::string>("app_123"));
  EXPECT_TRUE(p->Has("ids:read"));
  EXPECT_FALSE(p->Has("ids:write"));
}

TEST_F(KeyStoreTest, TwoKeysDiffer) {
  const CreatedKey a = MustCreate({"ids:read"});
  const CreatedKey b = MustCreate({"ids:read"});
  EXPECT_NE(a.info.id, b.info.id);
  EXPECT_NE(a.key.substr(25), b.key.substr(25));
}

TEST_F(KeyStoreTest, WrongSecretIsRefusedWithoutEchoingTheToken) {
  const CreatedKey c = MustCreate({"admin"});
  std::string wrong = c.key;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  const Status s = keys_->Verify(wrong).status();
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(s.message(), "wrong API key");
  EXPECT_EQ(std::string(s.message()).find(wrong.substr(25)), std::string::npos);
}

TEST_F(KeyStoreTest, TamperedIdIsRefused) {
  const CreatedKey a = MustCreate({"ids:read"});
  const CreatedKey b = MustCreate({"admin"});
  // a's secret under b's id (b has more rights): the secret must belong to the id.
  const std::string swapped = "evo_" + b.info.id + a.key.substr(24);
  EXPECT_EQ(keys_->Verify(swapped).status().message(), "wrong API key");
  // An id that does not exist.
  std::string unknown = a.key;
  unknown[8] = unknown[8] == '0' ? '1' : '0';
  const Status s = keys_->Verify(unknown).status();
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(s.message(), "unknown API key");
  // Upper-case hex is not an id.
  std::string upper = a.key;
  upper.replace(8, 16, "ABCDEF0123456789");
  EXPECT_EQ(keys_->Verify(upper).status().message(), "malformed API key");
}

TEST_F(KeyStoreTest, ExpiredKeyIsRefusedFromItsExpiryOn) {
  const CreatedKey c = MustCreate({"ids:read"}, hours(24));
  ASSERT_TRUE(c.info.expires_at.has_value());
  EXPECT_EQ(*c.info.expires_at - c.info.created_at, hours(24));
  clock_.Advance(hours(24) - std::chrono::milliseconds(1));
  EXPECT_TRUE(keys_->Verify(c.key).ok());
  clock_.Advance(std::chrono::milliseconds(1));
  const Status s = keys_->Verify(c.key).status();
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(s.message(), "API key expired");
}

TEST_F(KeyStoreTest, RevokedKeyIsRefusedAtOnceAndRevokingAgainKeepsTheFirstTime) {
  const CreatedKey c = MustCreate({"ids:read"});
  const CreatedKey other = MustCreate({"ids:read"});
  clock_.Advance(seconds(5));
  auto revoked = keys_->Revoke(c.info.id);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  ASSERT_TRUE(revoked->revoked_at.has_value());
  const Status s = keys_->Verify(c.key).status();
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(s.message(), "API key revoked");
  EXPECT_TRUE(keys_->Verify(other.key).ok());

  clock_.Advance(seconds(5));
  auto again = keys_->Revoke(c.info.id);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->revoked_at, revoked->revoked_at);
  EXPECT_EQ(keys_->Get(c.info.id)->revoked_at, revoked->revoked_at);
}

TEST_F(KeyStoreTest, RevokeAndGetOfUnknownIdsAreNotFound) {
  EXPECT_EQ(keys_->Revoke("key_0000000000000000").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(keys_->Get("key_0000000000000000").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(keys_->Get("'; DROP TABLE auth_keys; --").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(keys_->Revoke("").status().code(), StatusCode::kNotFound);
}

TEST_F(KeyStoreTest, AnotherProcessRevokesAndRefreshPicksItUp) {
  const CreatedKey c = MustCreate({"queue:write"});
  Other other = OpenOther();
  // The other store sees the key this one made (it loaded after the insert).
  EXPECT_TRUE(other.keys->Verify(c.key).ok());

  ASSERT_TRUE(other.keys->Revoke(c.info.id).ok());
  // Not refreshed yet: the snapshot still holds the key (Verify does no I/O).
  EXPECT_TRUE(keys_->Verify(c.key).ok());
  ASSERT_TRUE(keys_->Refresh().ok());
  EXPECT_EQ(keys_->Verify(c.key).status().message(), "API key revoked");

  // And a key the other process creates verifies here after a Refresh.
  KeySpec spec;
  spec.name = "made elsewhere";
  spec.scopes = {"ids:read"};
  auto made = other.keys->Create(spec);
  ASSERT_TRUE(made.ok());
  EXPECT_EQ(keys_->Verify(made->key).status().message(), "unknown API key");
  ASSERT_TRUE(keys_->Refresh().ok());
  EXPECT_TRUE(keys_->Verify(made->key).ok());
}

TEST_F(KeyStoreTest, RefreshSeesChangesMadeOutsideKeyStore) {
  const CreatedKey c = MustCreate({"ids:read"});
  // An operator's direct SQL: the triggers bump the generation all the same.
  ASSERT_TRUE(db_->Exec("DELETE FROM auth_keys WHERE id = ?", {c.info.id}).ok());
  EXPECT_TRUE(keys_->Verify(c.key).ok());
  ASSERT_TRUE(keys_->Refresh().ok());
  EXPECT_EQ(keys_->Verify(c.key).status().message(), "unknown API key");
}

TEST_F(KeyStoreTest, ListAndGetNeverHoldTheSecretOrItsHash) {
  const CreatedKey a = MustCreate({"ids:read"}, hours(1));
  clock_.Advance(seconds(1));
  const CreatedKey b = MustCreate({"admin"});
  auto list = keys_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, a.info.id);
  EXPECT_EQ((*list)[1].id, b.info.id);
  EXPECT_EQ((*list)[0].name, "ci deploy");
  EXPECT_EQ((*list)[0].scopes, std::vector<std::string>{"ids:read"});
  EXPECT_EQ((*list)[0].created_at, a.info.created_at);
  EXPECT_EQ((*list)[0].expires_at, a.info.expires_at);
  EXPECT_FALSE((*list)[1].expires_at.has_value());
  for (const KeyInfo& info : *list) {
    for (const std::string* field : {&info.id, &info.name, &info.hint}) {
      EXPECT_EQ(field->find(a.key.substr(25, 8)), std::string::npos);
      EXPECT_EQ(field->find(b.key.substr(25, 8)), std::string::npos);
    }
    EXPECT_EQ(info.hint.size(), 4u);
  }
  auto got = keys_->Get(b.info.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->scopes, std::vector<std::string>{"admin"});
  EXPECT_EQ(got->hint, b.info.hint);
  // The database holds the hash, not the secret.
  auto stored = db_->QueryOne(
      "SELECT length(secret_sha256), instr(secret_sha256, ?) FROM "
      "auth_keys WHERE id = ?",
      {a.key.substr(25), a.info.id});
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(std::get<int64_t>((*stored)[0]), 32);
  EXPECT_EQ(std::get<int64_t>((*stored)[1]), 0);
}

TEST_F(KeyStoreTest, BadSpecsAreRefusedAndStoreNothing) {
  KeySpec good;
  good.name = "n";
  good.scopes = {"ids:read"};

  KeySpec s = good;
  s.scopes = {};
  EXPECT_EQ(keys_->Create(s).status().code(), StatusCode::kInvalidArgument);
  s.scopes = {"ids:read", "root"};
  const Status bad_scope = keys_->Create(s).status();
  EXPECT_EQ(bad_scope.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_scope.message().find("'root'"), std::string_view::npos);

  s = good;
  for (const std::string& name : {std::string(), std::string(129, 'x'), std::string("a\nb"),
                                  std::string("a\0b", 3), std::string("\xff")}) {
    s.name = name;
    EXPECT_EQ(keys_->Create(s).status().code(), StatusCode::kInvalidArgument);
  }
  s = good;
  for (seconds d : {seconds(0), seconds(-1), seconds(200LL * 365 * 24 * 3600)}) {
    s.expires_in = d;
    EXPECT_EQ(keys_->Create(s).status().code(), StatusCode::kInvalidArgument);
  }
  s = good;
  for (const char* app : {"", "a b", "a/b"}) {
    s.application = app;
    EXPECT_EQ(keys_->Create(s).status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(keys_->List()->empty());
}

TEST_F(KeyStoreTest, GarbageTokensAreUnauthenticatedNeverACrash) {
  const CreatedKey c = MustCreate({"ids:read"});
  std::vector<std::string> garbage = {
      "",
      "evo_",
      "evo_key_",
      std::string(size_t{100} * 1024, 'a'),
      "evo_" + std::string(size_t{100} * 1024, 'a'),
      std::string(68, '\0'),
      "evo_" + std::string(64, '\0'),
      c.key.substr(0, 67),
      c.key + "A",
      " " + c.key.substr(1),
      "Bearer " + c.key,
      "EVO_" + c.key.substr(4),
      c.key.substr(0, 24) + "-" + c.key.substr(25),  // wrong separator
      c.key.substr(0, 30) + "=" + c.key.substr(31),  // not base64url
      c.key.substr(0, 30) + std::string(1, '\0') + c.key.substr(31),
      c.key.substr(0, 10) + "\xc3\xa9" + c.key.substr(12),
  };
  for (unsigned char b = 1; b != 0; ++b) {
    std::string t = c.key;
    t[40] = static_cast<char>(b);
    garbage.push_back(t);
  }
  for (const std::string& g : garbage) {
    if (g == c.key) {
      continue;  // the one byte value that restores the key
    }
    const Status s = keys_->Verify(g).status();
    EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << g.size();
    EXPECT_LE(s.message().size(), 20u);
  }
}

TEST_F(KeyStoreTest, VerifyRunsConcurrentlyWithRefreshAndRevoke) {
  const CreatedKey keep = MustCreate({"ids:read"});
  const CreatedKey drop = MustCreate({"ids:read"});
  Other other = OpenOther();
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(5);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        if (!keys_->Verify(keep.key).ok()) {
          failures.fetch_add(1);
        }
        (void)keys_->Verify(drop.key);
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 50; ++i) {
      (void)keys_->Refresh();
    }
  });
  // EXPECT, not ASSERT: the threads must be joined whatever happens.
  EXPECT_TRUE(other.keys->Revoke(drop.info.id).ok());
  threads.back().join();
  threads.pop_back();
  EXPECT_TRUE(keys_->Refresh().ok());
  EXPECT_EQ(keys_->Verify(drop.key).status().message(), "API key revoked");
  stop.store(true);
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(KeyStoreTest, ReopeningKeepsKeysAndMigrationIsIdempotent) {
  const CreatedKey c = MustCreate({"spam:write"});
  keys_.reset();
  keys_ = KeyStore::Open(*db_, clock_).value();
  EXPECT_TRUE(keys_->Verify(c.key).ok());
  EXPECT_EQ(db_->SchemaVersion("auth_keys").value(), 1);
}

TEST(ParseLifetime, AcceptsUnitsAndRefusesTheRest) {
  EXPECT_EQ(ParseLifetime("30d").value(), hours(24 * 30));
  EXPECT_EQ(ParseLifetime("90s").value(), seconds(90));
  EXPECT_EQ(ParseLifetime("15m").value(), seconds(900));
  EXPECT_EQ(ParseLifetime("12h").value(), hours(12));
  EXPECT_EQ(ParseLifetime("2w").value(), hours(24 * 14));
  EXPECT_EQ(ParseLifetime("36500d").value(), hours(24 * 36500));
  for (const char* bad : {"", "d", "30", "0d", "-1d", "1.5h", "30 d", "30D", "1y", "36700d",
                          "99999999999w", "999999999999s"}) {
    EXPECT_EQ(ParseLifetime(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace evo::auth
