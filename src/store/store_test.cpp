#include "store/store.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "core/temp_dir.hpp"

namespace evo::store {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

using evo::testing::TempDir;

class StoreTest : public ::testing::Test {
 protected:
  SqliteOptions Options() const {
    SqliteOptions options;
    options.path = path_;
    return options;
  }
  std::unique_ptr<Database> Open(const SqliteOptions& options) {
    auto db = OpenSqlite(options, clock_);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? std::move(db).value() : nullptr;
  }
  std::unique_ptr<Database> Open() { return Open(Options()); }

  int64_t Count(Database& db, const std::string& table) {
    auto row = db.QueryOne("SELECT count(*) FROM " + table);
    EXPECT_TRUE(row.ok()) << row.status();
    return row.ok() ? AsInt64((*row)[0]).value_or(-1) : -1;
  }

  TempDir dir_;
  std::string path_ = dir_.File("test.db");
  ManualClock clock_;
};

TEST_F(StoreTest, OpenCreatesFileInWalMode) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(fs::exists(path_));
  auto row = db->QueryOne("PRAGMA journal_mode");
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ((*row)[0], Value("wal"));
}

TEST_F(StoreTest, SynchronousFollowsOptions) {
  SqliteOptions options = Options();
  options.reader_connections = 0;  // so PRAGMA reads the writer's setting
  {
    auto db = Open(options);
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(db->QueryOne("PRAGMA synchronous")->at(0), Value(1));  // NORMAL
  }
  options.synchronous = SqliteSynchronous::kFull;
  auto db = Open(options);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->QueryOne("PRAGMA synchronous")->at(0), Value(2));  // FULL
}

TEST_F(StoreTest, RoundTripsEveryValueType) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v ANY) STRICT").ok());
  const std::vector<Value> values = {
      nullptr,
      int64_t{0},
      int64_t{INT64_MIN},
      int64_t{INT64_MAX},
      1.5,
      -0.25e300,
      std::string(),
      std::string("héllo, wörld"),
      std::string("text\0with NUL", 13),
      Blob{},
      Blob{std::string("\0\x01\xff\0b", 5)},
      Blob{std::string(100000, '\0')},
  };
  for (size_t i = 0; i < values.size(); ++i) {
    auto r = db->Exec("INSERT INTO t (k, v) VALUES (?, ?)", {static_cast<int64_t>(i), values[i]});
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    EXPECT_EQ(r->rows_affected, 1);
  }
  auto rows = db->Query("SELECT k, v, typeof(v) AS type FROM t ORDER BY k");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->columns, (std::vector<std::string>{"k", "v", "type"}));
  ASSERT_EQ(rows->size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ((*rows)[i][1], values[i]) << i << ": got " << DebugString((*rows)[i][1]);
  }
  // Empty strings and blobs keep their type instead of becoming NULL.
  EXPECT_EQ((*rows)[6][2], Value("text"));
  EXPECT_EQ((*rows)[9][2], Value("blob"));
  EXPECT_EQ((*rows)[0][2], Value("null"));

  // Values also bind in WHERE clauses, blobs with NUL bytes included.
  auto hit = db->QueryOne("SELECT k FROM t WHERE v = ?", {values[10]});
  ASSERT_TRUE(hit.ok()) << hit.status();
  EXPECT_EQ((*hit)[0], Value(10));
}

TEST_F(StoreTest, ValueAccessorsCheckTypes) {
  EXPECT_TRUE(IsNull(Value(nullptr)));
  EXPECT_EQ(AsInt64(Value(7)).value(), 7);
  EXPECT_EQ(AsDouble(Value(7)).value(), 7.0);
  EXPECT_EQ(AsText(Value("x")).value(), "x");
  EXPECT_EQ(AsBlob(Value(Blob{"b"})).value(), Blob{"b"});
  EXPECT_EQ(AsInt64(Value("7")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(AsText(Value(nullptr)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(AsBlob(Value("b")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DebugString(Value("it's")), "'it''s'");
}

TEST_F(StoreTest, ReusesPreparedStatements) {
  SqliteOptions options = Options();
  options.reader_connections = 1;
  auto db = Open(options);
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER)").ok());
  const Stats before = db->GetStats();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(db->Exec("INSERT INTO t (v) VALUES (?)", {i}).ok());
    ASSERT_TRUE(db->Query("SELECT v FROM t WHERE v = ?", {i}).ok());
  }
  const Stats after = db->GetStats();
  EXPECT_EQ(after.statements_prepared - before.statements_prepared, 2u);
  EXPECT_EQ(after.statement_cache_hits - before.statement_cache_hits, 198u);
  EXPECT_EQ(Count(*db, "t"), 100);
}

TEST_F(StoreTest, StatementCacheEvictsWhenFull) {
  SqliteOptions options = Options();
  options.statement_cache_capacity = 2;
  options.reader_connections = 0;
  auto db = Open(options);
  ASSERT_NE(db, nullptr);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 5; ++i) {
      auto row = db->QueryOne("SELECT " + std::to_string(i));
      ASSERT_TRUE(row.ok()) << row.status();
      EXPECT_EQ((*row)[0], Value(i));
    }
  }
  // Cycling through 5 statements with room for 2 evicts before every reuse.
  EXPECT_EQ(db->GetStats().statement_cache_hits, 0u);
}

TEST_F(StoreTest, NestedUseOfTheSameStatementWorks) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1), (2), (3)").ok());
  int64_t sum = 0;
  Status s = db->Transaction([&](Executor& tx) -> Status {
    return tx.QueryEach("SELECT v FROM t", {}, [&](const Row& outer) -> Status {
      // The same SQL while the outer statement is still being stepped.
      return tx.QueryEach("SELECT v FROM t", {}, [&](const Row& inner) -> Status {
        sum += *AsInt64(outer[0]) * *AsInt64(inner[0]);
        return OkStatus();
      });
    });
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(sum, 36);
}

TEST_F(StoreTest, ConstraintViolationsHaveSpecificCodes) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE p (id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER "
                       "NOT NULL CHECK (n >= 0));"
                       "CREATE TABLE c (p_id INTEGER REFERENCES p(id))")
                  .ok());
  ASSERT_TRUE(db->Exec("INSERT INTO p VALUES (1, 'a@x', 0)").ok());

  auto unique = db->Exec("INSERT INTO p VALUES (2, 'a@x', 0)");
  EXPECT_EQ(unique.status().code(), StatusCode::kAlreadyExists) << unique.status();
  EXPECT_NE(unique.status().message().find("UNIQUE"), std::string_view::npos);
  EXPECT_EQ(db->Exec("INSERT INTO p VALUES (1, 'b@x', 0)").status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(db->Exec("INSERT INTO p VALUES (3, 'c@x', NULL)").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Exec("INSERT INTO p VALUES (3, 'c@x', -1)").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Exec("INSERT INTO c VALUES (99)").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(db->Exec("INSERT INTO c VALUES (1)").ok());
}

TEST_F(StoreTest, BadSqlIsInvalidArgument) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER)").ok());

  auto syntax = db->Exec("INSERT INTO t VALUSE (1)");
  EXPECT_EQ(syntax.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(syntax.status().message().find("syntax error"), std::string_view::npos)
      << syntax.status();
  EXPECT_NE(syntax.status().message().find("INSERT INTO t"), std::string_view::npos);
  EXPECT_EQ(db->Exec("INSERT INTO t VALUES (").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Query("SELECT * FROM missing").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Query("SELECT nope FROM t").status().code(), StatusCode::kInvalidArgument);
  // Parameter count must match.
  EXPECT_EQ(db->Exec("INSERT INTO t VALUES (?)").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Exec("INSERT INTO t VALUES (?)", {1, 2}).status().code(),
            StatusCode::kInvalidArgument);
  // Only anonymous placeholders port to PostgreSQL.
  EXPECT_EQ(db->Exec("INSERT INTO t VALUES (:v)", {1}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Exec("INSERT INTO t VALUES (?1)", {1}).status().code(),
            StatusCode::kInvalidArgument);
  // Empty SQL, scripts in Query, parameters to scripts.
  EXPECT_EQ(db->Exec("  -- nothing\n").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Query("SELECT 1; SELECT 2").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Exec("INSERT INTO t VALUES (?); INSERT INTO t VALUES (2)", {1}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Count(*db, "t"), 0);
  // A trailing semicolon and comment do not make a script.
  EXPECT_TRUE(db->Exec("INSERT INTO t VALUES (?); -- done", {1}).ok());
  EXPECT_EQ(Count(*db, "t"), 1);
}

TEST_F(StoreTest, ExecRunsScriptsAndCountsRows) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  auto r = db->Exec(
      "CREATE TABLE t (v INTEGER);\n"
      "INSERT INTO t VALUES (1), (2), (3);\n"
      "/* comment */ UPDATE t SET v = v + 1 WHERE v > 1;");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rows_affected, 5);
  auto del = db->Exec("DELETE FROM t WHERE v = ?", {3});
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->rows_affected, 1);
  // DDL after DML reports 0, not the previous statement's count.
  auto ddl = db->Exec("CREATE INDEX t_v ON t (v)");
  ASSERT_TRUE(ddl.ok());
  EXPECT_EQ(ddl->rows_affected, 0);
  // A script is all or nothing, also inside a transaction (where it uses a savepoint).
  EXPECT_EQ(db->Exec("INSERT INTO t VALUES (10); BOGUS; INSERT INTO t VALUES (11)").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Count(*db, "t"), 2);
  Status s = db->Transaction([](Executor& tx) -> Status {
    EVO_RETURN_IF_ERROR(tx.Exec("INSERT INTO t VALUES (20)").status());
    EXPECT_EQ(tx.Exec("INSERT INTO t VALUES (21); BOGUS").status().code(),
              StatusCode::kInvalidArgument);
    return OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Count(*db, "t"), 3);
}

TEST_F(StoreTest, QueryWithReturningRunsOnTheWriter) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").ok());
  auto row = db->QueryOne("INSERT INTO t (v) VALUES (?) RETURNING id", {"x"});
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ((*row)[0], Value(1));
  EXPECT_EQ(Count(*db, "t"), 1);
}

TEST_F(StoreTest, QueryEachStreamsAndStops) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1), (2), (3)").ok());
  std::vector<int64_t> seen;
  Status s = db->QueryEach("SELECT v FROM t ORDER BY v", {}, [&](const Row& row) -> Status {
    seen.push_back(*AsInt64(row[0]));
    return seen.size() == 2 ? CancelledError("enough") : OkStatus();
  });
  EXPECT_EQ(s, CancelledError("enough"));
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2}));

  s = db->QueryEach("SELECT v FROM t", {},
                    [](const Row&) -> Status { throw std::runtime_error("boom"); });
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("boom"), std::string_view::npos);

  // The callback may not call back into the database (it would deadlock on one connection).
  s = db->QueryEach("SELECT v FROM t", {}, [&](const Row&) -> Status {
    return db->Exec("INSERT INTO t VALUES (9)").status();
  });
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Count(*db, "t"), 3);

  EXPECT_EQ(db->QueryOne("SELECT v FROM t WHERE v > 100").status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, TransactionCommits) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER)").ok());
  Status s = db->Transaction([](Executor& tx) -> Status {
    EVO_RETURN_IF_ERROR(tx.Exec("INSERT INTO t VALUES (1)").status());
    EVO_ASSIGN_OR_RETURN(Row row, tx.QueryOne("SELECT count(*) FROM t"));
    if (row[0] != Value(1)) {
      return InternalError("own write not visible");
    }
    return tx.Exec("INSERT INTO t VALUES (2)").status();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Count(*db, "t"), 2);
  EXPECT_EQ(db->GetStats().transactions_committed, 1u);
}

TEST_F(StoreTest, DurableTransactionCommitsAndLeavesTheSettingAsItWas) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER)").ok());
  // Read on the writer connection (a read-write transaction), where durable ones run.
  auto synchronous = [&] {
    Value v;
    EXPECT_TRUE(db->Transaction([&](Executor& tx) -> Status {
                    EVO_ASSIGN_OR_RETURN(Row row, tx.QueryOne("PRAGMA synchronous"));
                    v = row[0];
                    return OkStatus();
                  }).ok());
    return v;
  };
  const Value before = synchronous();
  Status s = db->Transaction(
      [](Executor& tx) { return tx.Exec("INSERT INTO t VALUES (1)").status(); }, TxMode::kDurable);
  ASSERT_TRUE(s.ok()) << s;
  // A failing durable transaction rolls back and restores the setting too.
  s = db->Transaction(
      [](Executor& tx) -> Status {
        EVO_RETURN_IF_ERROR(tx.Exec("INSERT INTO t VALUES (2)").status());
        return InternalError("no");
      },
      TxMode::kDurable);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(Count(*db, "t"), 1);
  EXPECT_EQ(synchronous(), before);
}

TEST_F(StoreTest, TransactionRollsBackWhenFunctionFails) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER UNIQUE)").ok());
  Status s = db->Transaction([](Executor& tx) -> Status {
    EVO_RETURN_IF_ERROR(tx.Exec("INSERT INTO t VALUES (1)").status());
    return AbortedError("changed my mind");
  });
  EXPECT_EQ(s, AbortedError("changed my mind"));
  EXPECT_EQ(Count(*db, "t"), 0);

  // A failing statement's error propagates and undoes the earlier ones.
  s = db->Transaction([](Executor& tx) -> Status {
    EVO_RETURN_IF_ERROR(tx.Exec("INSERT INTO t VALUES (1)").status());
    return tx.Exec("INSERT INTO t VALUES (1)").status();
  });
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(Count(*db, "t"), 0);
  EXPECT_EQ(db->GetStats().transactions_rolled_back, 2u);
}

TEST_F(StoreTest, TransactionRollsBackWhenFunctionThrows) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER)").ok());
  Status s = db->Transaction([](Executor& tx) -> Status {
    (void)tx.Exec("INSERT INTO t VALUES (1)");
    throw std::runtime_error("kaboom");
  });
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("kaboom"), std::string_view::npos) << s;
  s = db->Transaction([](Executor&) -> Status { throw 42; });
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(Count(*db, "t"), 0);
  // The connection is usable afterwards.
  EXPECT_TRUE(db->Exec("INSERT INTO t VALUES (2)").ok());
  EXPECT_EQ(Count(*db, "t"), 1);
}

TEST_F(StoreTest, TransactionRejectsMisuse) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER)").ok());
  Status s = db->Transaction([&](Executor& tx) -> Status {
    // Calls on the Database itself, including nested transactions, are refused.
    EXPECT_EQ(db->Exec("INSERT INTO t VALUES (1)").status().code(),
              StatusCode::kFailedPrecondition);
    EXPECT_EQ(db->Query("SELECT 1").status().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(db->Transaction([](Executor&) { return OkStatus(); }).code(),
              StatusCode::kFailedPrecondition);
    EXPECT_EQ(db->Migrate("m", {}).code(), StatusCode::kFailedPrecondition);
    return tx.Exec("INSERT INTO t VALUES (2)").status();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Count(*db, "t"), 1);

  // Ending the transaction behind its back is reported, not silently committed.
  s = db->Transaction([](Executor& tx) -> Status {
    EVO_RETURN_IF_ERROR(tx.Exec("INSERT INTO t VALUES (4)").status());
    return tx.Exec("ROLLBACK").status();
  });
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_EQ(Count(*db, "t"), 1);

  // Transaction control outside Transaction() cannot capture the shared connection.
  EXPECT_EQ(db->Exec("BEGIN").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(db->Transaction([](Executor& tx) {
                  return tx.Exec("INSERT INTO t VALUES (5)").status();
                }).ok());
  EXPECT_EQ(Count(*db, "t"), 2);
}

TEST_F(StoreTest, ReadOnlyTransactionSeesASnapshotAndRejectsWrites) {
  for (int readers : {0, 2}) {
    SCOPED_TRACE(readers);
    TempDir dir;
    SqliteOptions options;
    options.path = dir.File("ro.db");
    options.reader_connections = readers;
    auto db = Open(options);
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)").ok());
    Status s = db->Transaction(
        [&](Executor& tx) -> Status {
          EVO_ASSIGN_OR_RETURN(Row row, tx.QueryOne("SELECT count(*) FROM t"));
          EXPECT_EQ(row[0], Value(1));
          EXPECT_EQ(tx.Exec("INSERT INTO t VALUES (2)").status().code(),
                    StatusCode::kFailedPrecondition);
          return OkStatus();
        },
        TxMode::kReadOnly);
    ASSERT_TRUE(s.ok()) << s;
    // The writer is writable again afterwards.
    EXPECT_TRUE(db->Exec("INSERT INTO t VALUES (3)").ok());
    EXPECT_EQ(Count(*db, "t"), 2);
  }
}

TEST_F(StoreTest, ReadOnlySnapshotIgnoresConcurrentCommits) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)").ok());
  Status s = db->Transaction(
      [&](Executor& tx) -> Status {
        EVO_ASSIGN_OR_RETURN(Row before, tx.QueryOne("SELECT count(*) FROM t"));
        // Another thread commits while the snapshot is open (WAL lets it proceed).
        auto writer = std::async(std::launch::async,
                                 [&] { return db->Exec("INSERT INTO t VALUES (2)").status(); });
        EVO_RETURN_IF_ERROR(writer.get());
        EVO_ASSIGN_OR_RETURN(Row after, tx.QueryOne("SELECT count(*) FROM t"));
        EXPECT_EQ(before, after);
        return OkStatus();
      },
      TxMode::kReadOnly);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Count(*db, "t"), 2);
}

std::vector<Migration> ShopMigrations() {
  return {
      {1, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"},
      {2, "ALTER TABLE items ADD COLUMN price INTEGER NOT NULL DEFAULT 0"},
      {3,
       "INSERT INTO items (name, price) VALUES ('seed', 5); CREATE INDEX items_name ON "
       "items (name)"},
  };
}

TEST_F(StoreTest, MigrationsApplyInOrderOnce) {
  {
    auto db = Open();
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(db->SchemaVersion("shop").value(), 0);
    Status s = db->Migrate("shop", ShopMigrations());
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(db->SchemaVersion("shop").value(), 3);
    auto rows =
        db->Query("SELECT module, version, applied_at FROM schema_migrations ORDER BY version");
    ASSERT_TRUE(rows.ok()) << rows.status();
    ASSERT_EQ(rows->size(), 3u);
    EXPECT_EQ((*rows)[0], (Row{"shop", 1, "2026-01-01T00:00:00.000Z"}));
    EXPECT_EQ((*rows)[2][1], Value(3));
    // Idempotent in the same process.
    ASSERT_TRUE(db->Migrate("shop", ShopMigrations()).ok());
    EXPECT_EQ(Count(*db, "items"), 1);
  }
  // ... and on reopen, where only a new version is applied.
  clock_.Advance(std::chrono::hours(24) + milliseconds(7));
  auto db = Open();
  ASSERT_NE(db, nullptr);
  auto migrations = ShopMigrations();
  ASSERT_TRUE(db->Migrate("shop", migrations).ok());
  EXPECT_EQ(Count(*db, "items"), 1);
  migrations.push_back({4, "INSERT INTO items (name, price) VALUES ('v4', 9)"});
  ASSERT_TRUE(db->Migrate("shop", migrations).ok());
  EXPECT_EQ(Count(*db, "items"), 2);
  EXPECT_EQ(db->QueryOne("SELECT applied_at FROM schema_migrations WHERE version = 4")->at(0),
            Value("2026-01-02T00:00:00.007Z"));
  auto price = db->QueryOne("SELECT price FROM items WHERE name = ?", {"seed"});
  ASSERT_TRUE(price.ok()) << price.status();
  EXPECT_EQ((*price)[0], Value(5));
}

TEST_F(StoreTest, ModulesMigrateIndependently) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Migrate("shop", ShopMigrations()).ok());
  ASSERT_TRUE(db->Migrate("queue", {{1, "CREATE TABLE jobs (id INTEGER PRIMARY KEY)"}}).ok());
  EXPECT_EQ(db->SchemaVersion("shop").value(), 3);
  EXPECT_EQ(db->SchemaVersion("queue").value(), 1);
  ASSERT_TRUE(db->Migrate("queue", {{1, "CREATE TABLE jobs (id INTEGER PRIMARY KEY)"},
                                    {2, "CREATE TABLE leases (id INTEGER PRIMARY KEY)"}})
                  .ok());
  EXPECT_EQ(db->SchemaVersion("queue").value(), 2);
  EXPECT_EQ(db->SchemaVersion("shop").value(), 3);
  EXPECT_EQ(db->SchemaVersion("unknown").value(), 0);
}

TEST_F(StoreTest, FailingMigrationKeepsEarlierVersions) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  std::vector<Migration> migrations = {
      {1, "CREATE TABLE a (v INTEGER)"},
      {2, "CREATE TABLE b (v INTEGER); INSERT INTO a VALUES (1); CREATE TABLEX oops"},
      {3, "CREATE TABLE c (v INTEGER)"},
  };
  Status s = db->Migrate("m", migrations);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("migration m version 2"), std::string_view::npos) << s;
  EXPECT_EQ(db->SchemaVersion("m").value(), 1);
  EXPECT_EQ(Count(*db, "a"), 0);  // version 2's partial work rolled back
  EXPECT_EQ(db->Query("SELECT * FROM b").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Query("SELECT * FROM c").status().code(), StatusCode::kInvalidArgument);

  // Fixed code then applies 2 and 3.
  migrations[1].sql = "CREATE TABLE b (v INTEGER)";
  ASSERT_TRUE(db->Migrate("m", migrations).ok());
  EXPECT_EQ(db->SchemaVersion("m").value(), 3);
}

TEST_F(StoreTest, NewerDatabaseIsFailedPrecondition) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Migrate("shop", ShopMigrations()).ok());
  auto older = ShopMigrations();
  older.pop_back();
  Status s = db->Migrate("shop", older);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("version 3"), std::string_view::npos) << s;
  EXPECT_EQ(db->Migrate("shop", {}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(db->SchemaVersion("shop").value(), 3);
}

TEST_F(StoreTest, MigrationListMustBeWellFormed) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->Migrate("", {{1, "SELECT 1"}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Migrate("m", {{0, "SELECT 1"}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Migrate("m", {{2, "SELECT 1"}, {1, "SELECT 1"}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Migrate("m", {{1, "SELECT 1"}, {1, "SELECT 1"}}).code(),
            StatusCode::kInvalidArgument);
  // A gap below the recorded version would reorder history.
  ASSERT_TRUE(db->Migrate("m", {{1, "SELECT 1"}, {3, "SELECT 1"}}).ok());
  EXPECT_EQ(db->Migrate("m", {{1, "SELECT 1"}, {2, "SELECT 1"}, {3, "SELECT 1"}}).code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(StoreTest, DataPersistsAcrossReopen) {
  {
    auto db = Open();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)").ok());
    ASSERT_TRUE(db->Exec("INSERT INTO kv VALUES (?, ?)", {"a", Blob{std::string("\0z", 2)}}).ok());
  }
  EXPECT_FALSE(fs::exists(path_ + "-wal"));  // checkpointed and removed on close
  auto db = Open();
  ASSERT_NE(db, nullptr);
  auto row = db->QueryOne("SELECT v FROM kv WHERE k = ?", {"a"});
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ((*row)[0], Value(Blob{std::string("\0z", 2)}));
}

TEST_F(StoreTest, ConcurrentWritersAllLand) {
  auto db = Open();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (thread INTEGER, i INTEGER, PRIMARY KEY (thread, i));"
                       "CREATE TABLE counter (n INTEGER); INSERT INTO counter VALUES (0)")
                  .ok());
  constexpr int kThreads = 4;
  constexpr int kInserts = 500;
  std::atomic<int> failures{0};
  std::atomic<bool> stop_readers{false};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kInserts; ++i) {
        Status s = db->Exec("INSERT INTO t (thread, i) VALUES (?, ?)", {t, i}).status();
        if (i % 10 == 0) {
          // Read-modify-write: exact only if transactions serialise.
          s = db->Transaction([](Executor& tx) -> Status {
            EVO_ASSIGN_OR_RETURN(Row row, tx.QueryOne("SELECT n FROM counter"));
            return tx.Exec("UPDATE counter SET n = ?", {*AsInt64(row[0]) + 1}).status();
          });
        }
        if (!s.ok()) {
          ADD_FAILURE() << s;
          failures.fetch_add(1);
        }
      }
    });
  }
  std::thread reader([&] {
    while (!stop_readers.load()) {
      auto n = db->QueryOne("SELECT count(*) FROM t");
      if (!n.ok()) {
        ADD_FAILURE() << n.status();
        failures.fetch_add(1);
        return;
      }
    }
  });
  for (auto& th : threads) {
    th.join();
  }
  stop_readers = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Count(*db, "t"), kThreads * kInserts);
  EXPECT_EQ(db->QueryOne("SELECT n FROM counter")->at(0), Value(kThreads * kInserts / 10));
}

TEST_F(StoreTest, LockedWriterIsUnavailableAfterBusyTimeout) {
  SqliteOptions options = Options();
  options.busy_timeout = milliseconds(50);
  auto db = Open(options);
  auto other = Open(options);  // a second Database on the file stands in for another process
  ASSERT_NE(db, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(db->Exec("CREATE TABLE t (v INTEGER)").ok());

  std::promise<void> inside;
  std::promise<void> release;
  auto holder = std::async(std::launch::async, [&] {
    return db->Transaction([&](Executor& tx) -> Status {
      EVO_RETURN_IF_ERROR(tx.Exec("INSERT INTO t VALUES (1)").status());
      inside.set_value();
      release.get_future().wait();
      return OkStatus();
    });
  });
  inside.get_future().wait();
  // Same Database: waits on the writer mutex; other Database: on SQLite's file lock.
  EXPECT_EQ(db->Exec("INSERT INTO t VALUES (2)").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(other->Exec("INSERT INTO t VALUES (3)").status().code(), StatusCode::kUnavailable);
  // Readers are not blocked by the writer in WAL mode, and see only committed data.
  EXPECT_EQ(Count(*other, "t"), 0);
  release.set_value();
  ASSERT_TRUE(holder.get().ok());
  EXPECT_EQ(Count(*other, "t"), 1);
}

TEST_F(StoreTest, GarbageFileIsDataLoss) {
  {
    std::ofstream out(path_, std::ios::binary);
    for (int i = 0; i < 1000; ++i) {
      out << "this is not an sqlite database ";
    }
  }
  auto db = OpenSqlite(Options(), clock_);
  EXPECT_EQ(db.status().code(), StatusCode::kDataLoss) << db.status();
}

TEST_F(StoreTest, CorruptPagesAreDataLoss) {
  {
    auto db = Open();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Exec("CREATE TABLE t (v TEXT)").ok());
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(db->Exec("INSERT INTO t VALUES (?)", {std::string(200, 'x')}).ok());
    }
  }
  const auto size = fs::file_size(path_);
  ASSERT_GT(size, 8192u);
  {
    // Keep page 1 (header and schema), overwrite the table's pages.
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(4096);
    for (uintmax_t i = 4096; i < size; ++i) {
      f.put(static_cast<char>((i * 7919) % 251));
    }
  }
  auto db = OpenSqlite(Options(), clock_);
  if (!db.ok()) {
    EXPECT_EQ(db.status().code(), StatusCode::kDataLoss) << db.status();
    return;
  }
  auto rows = (*db)->Query("SELECT count(*), max(v) FROM t");
  EXPECT_EQ(rows.status().code(), StatusCode::kDataLoss) << rows.status();
  EXPECT_EQ((*db)->Exec("INSERT INTO t VALUES ('y')").status().code(), StatusCode::kDataLoss);
}

TEST_F(StoreTest, ReadOnlyDatabaseRefusesWrites) {
  {
    auto db = Open();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Migrate("shop", ShopMigrations()).ok());
  }
  SqliteOptions options = Options();
  options.read_only = true;
  auto db = Open(options);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(Count(*db, "items"), 1);
  EXPECT_EQ(db->Exec("INSERT INTO items (name) VALUES ('x')").status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_TRUE(db->Migrate("shop", ShopMigrations()).ok());  // already current
  auto more = ShopMigrations();
  more.push_back({4, "SELECT 1"});
  EXPECT_EQ(db->Migrate("shop", more).code(), StatusCode::kFailedPrecondition);

  options.path = dir_.File("missing.db");
  EXPECT_EQ(OpenSqlite(options, clock_).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(options.path));
}

TEST_F(StoreTest, UnopenablePathIsFailedPrecondition) {
  SqliteOptions options = Options();
  options.path = dir_.File("no/such/dir/x.db");
  auto db = OpenSqlite(options, clock_);
  EXPECT_EQ(db.status().code(), StatusCode::kFailedPrecondition) << db.status();
}

TEST_F(StoreTest, InMemoryDatabaseWorks) {
  SqliteOptions options;
  options.path = ":memory:";
  auto db = Open(options);
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Migrate("m", {{1, "CREATE TABLE t (v INTEGER)"}}).ok());
  ASSERT_TRUE(db->Exec("INSERT INTO t VALUES (1)").ok());
  EXPECT_EQ(Count(*db, "t"), 1);
}

TEST_F(StoreTest, ValidateNamesTheField) {
  SqliteOptions options = Options();
  EXPECT_TRUE(Validate(options).ok());
  auto expect_invalid = [](const SqliteOptions& o, std::string_view field) {
    Status s = Validate(o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(field), std::string_view::npos) << s;
    EXPECT_EQ(OpenSqlite(o).status().code(), StatusCode::kInvalidArgument);
  };
  SqliteOptions o = options;
  o.path = "";
  expect_invalid(o, "store.path");
  o = options;
  o.busy_timeout = milliseconds(-1);
  expect_invalid(o, "store.busy_timeout");
  o = options;
  o.reader_connections = 65;
  expect_invalid(o, "store.reader_connections");
  o = options;
  o.statement_cache_capacity = -1;
  expect_invalid(o, "store.statement_cache_capacity");
  o = options;
  o.path = ":memory:";
  o.read_only = true;
  expect_invalid(o, "store.read_only");
}

}  // namespace
}  // namespace evo::store
