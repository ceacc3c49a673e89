// The SQLite backend of store::Database.
//
// Connections are opened with SQLITE_OPEN_NOMUTEX: this file guarantees that each connection
// is used by one thread at a time (the writer behind writer_gate_, readers checked out of a
// free list), so SQLite's own per-connection mutex would be pure overhead.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <list>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

#include "store/store.hpp"

namespace evo::store {
namespace {

constexpr size_t kSqlShownInErrors = 160;
constexpr std::string_view kMemoryPath = ":memory:";
constexpr int kMaxReaderConnections = 64;
constexpr int kMaxStatementCacheCapacity = 10000;
constexpr std::chrono::milliseconds kMaxBusyTimeout = std::chrono::hours(1);

constexpr const char* kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "module TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL, "
    "PRIMARY KEY (module, version))";

// ---- errors -------------------------------------------------------------------------------

StatusCode CodeForSqlite(int rc) {
  switch (rc) {  // extended codes that need finer treatment than their primary code
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return StatusCode::kAlreadyExists;
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_DATATYPE:
      return StatusCode::kInvalidArgument;
    case SQLITE_IOERR_NOMEM:
      return StatusCode::kResourceExhausted;
    case SQLITE_IOERR_CORRUPTFS:
      return StatusCode::kDataLoss;
    default:
      break;
  }
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:  // foreign key, trigger RAISE, ...
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
      return StatusCode::kFailedPrecondition;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_PROTOCOL:
      return StatusCode::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return StatusCode::kDataLoss;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return StatusCode::kResourceExhausted;
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return StatusCode::kPermissionDenied;
    case SQLITE_INTERRUPT:
      return StatusCode::kCancelled;
    case SQLITE_ABORT:
    case SQLITE_SCHEMA:
      return StatusCode::kAborted;
    case SQLITE_ERROR:  // syntax errors, unknown tables and columns
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
      return StatusCode::kInvalidArgument;
    case SQLITE_MISUSE:
    case SQLITE_INTERNAL:
      return StatusCode::kInternal;
    default:
      return StatusCode::kUnknown;
  }
}

std::string SqlForMessage(std::string_view sql) {
  std::string out;
  out.reserve(std::min(sql.size(), kSqlShownInErrors) + 3);
  bool last_space = false;
  for (char c : sql) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (space && last_space) {
      continue;
    }
    out.push_back(space ? ' ' : c);
    last_space = space;
    if (out.size() >= kSqlShownInErrors) {
      out += "...";
      break;
    }
  }
  return out;
}

// `db` may be null (the open failed before a handle existed); its message is read here, right
// after the failing call and under the same lock, because the next call overwrites it.
Status SqliteError(int rc, sqlite3* db, std::string_view sql) {
  std::string message = "sqlite: ";
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  message += " [";
  message += sqlite3_errstr(rc);
  message += ", code ";
  message += std::to_string(rc);
  message += "]";
  if (!sql.empty()) {
    message += " in `";
    message += SqlForMessage(sql);
    message += "`";
  }
  return Status(CodeForSqlite(rc), message);
}

// Runs `f`, turning any exception into a Status so that none crosses the public header.
template <typename F>
auto Guarded(F&& f) noexcept -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("store: out of memory");
  } catch (const std::exception& e) {
    return InternalError(std::string("store: unexpected exception: ") + e.what());
  } catch (...) {
    return InternalError("store: unexpected non-standard exception");
  }
}

// Calls a caller-supplied callback; its exceptions become Internal naming `what`.
template <typename F>
Status CallUser(std::string_view what, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError(std::string(what) + " ran out of memory");
  } catch (const std::exception& e) {
    return InternalError(std::string(what) + " threw: " + e.what());
  } catch (...) {
    return InternalError(std::string(what) + " threw a non-standard exception");
  }
}

// True when `rest` holds nothing but whitespace, `;` and comments, i.e. no further statement.
bool IsBlankSql(std::string_view rest) {
  size_t i = 0;
  while (i < rest.size()) {
    const char c = rest[i];
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v' || c == ';') {
      ++i;
    } else if (rest.substr(i, 2) == "--") {
      const size_t end = rest.find('\n', i);
      i = end == std::string_view::npos ? rest.size() : end + 1;
    } else if (rest.substr(i, 2) == "/*") {
      const size_t end = rest.find("*/", i + 2);
      i = end == std::string_view::npos ? rest.size() : end + 2;
    } else {
      return false;
    }
  }
  return true;
}

std::string Rfc3339(Clock::WallTime t) {
  const int64_t ms = UnixMillis(t);
  int64_t secs = ms / 1000;
  int64_t frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    secs -= 1;
  }
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(frac));
  return buf;
}

// ---- re-entrancy --------------------------------------------------------------------------

// The databases the current thread is inside (in a Transaction function or a row callback).
// A second call on one of them from the same thread would wait for a lock this thread holds.
thread_local std::vector<const void*> t_active_databases;

bool IsActiveOnThisThread(const void* db) {
  return std::find(t_active_databases.begin(), t_active_databases.end(), db) !=
         t_active_databases.end();
}

Status ReentrantCallError() {
  return FailedPreconditionError(
      "store: call on a Database from inside its own Transaction function or row callback; "
      "use the Executor the transaction provides");
}

class ActiveScope {
 public:
  explicit ActiveScope(const void* db) : db_(db) { t_active_databases.push_back(db); }
  ~ActiveScope() {
    auto it = std::find(t_active_databases.rbegin(), t_active_databases.rend(), db_);
    if (it != t_active_databases.rend()) {
      t_active_databases.erase(std::next(it).base());
    }
  }
  ActiveScope(const ActiveScope&) = delete;
  ActiveScope& operator=(const ActiveScope&) = delete;

 private:
  const void* db_;
};

// ---- connection ---------------------------------------------------------------------------

struct Counters {
  std::atomic<uint64_t> prepared{0};
  std::atomic<uint64_t> cache_hits{0};
  std::atomic<uint64_t> committed{0};
  std::atomic<uint64_t> rolled_back{0};
};

enum class Role { kWriter, kReader };

// What a Run call may do and what it produced.
struct RunRequest {
  bool allow_script = false;
  // Do not run a statement that would write; set `needs_writer` instead (reader routing).
  bool only_if_read_only = false;
  const RowCallback* on_row = nullptr;          // null: rows are discarded
  std::vector<std::string>* columns = nullptr;  // null: names are not collected
};
struct RunResult {
  int64_t rows_affected = 0;
  bool needs_writer = false;
};

// One SQLite connection and its statement cache. Not thread-safe: the owner serialises use.
class Connection {
 public:
  static StatusOr<std::unique_ptr<Connection>> Open(const SqliteOptions& options, Role role,
                                                    Counters& counters) {
    int flags = SQLITE_OPEN_NOMUTEX;
    if (options.read_only) {
      flags |= SQLITE_OPEN_READONLY;
    } else if (role == Role::kWriter) {
      flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    } else {
      // Read-write plus query_only: a SQLITE_OPEN_READONLY connection cannot always create
      // the WAL index it needs, while query_only still refuses every write.
      flags |= SQLITE_OPEN_READWRITE;
    }
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(options.path.c_str(), &raw, flags, nullptr);
    auto conn = std::unique_ptr<Connection>(
        new Connection(raw, static_cast<size_t>(options.statement_cache_capacity), counters));
    if (rc != SQLITE_OK) {
      const int ext = raw != nullptr ? sqlite3_extended_errcode(raw) : rc;
      Status s = SqliteError(ext, raw, "");
      return Status(s.code(), "opening " + options.path + ": " + std::string(s.message()));
    }
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, static_cast<int>(options.busy_timeout.count()));

    const bool memory = options.path == kMemoryPath;
    if (role == Role::kWriter && !options.read_only && !memory) {
      EVO_ASSIGN_OR_RETURN(std::string mode, conn->QueryText("PRAGMA journal_mode=WAL"));
      if (mode != "wal") {
        return FailedPreconditionError("store: " + options.path +
                                       " could not be switched to WAL (journal_mode is " + mode +
                                       ")");
      }
    }
    EVO_RETURN_IF_ERROR(conn->ExecDirect(options.synchronous == SqliteSynchronous::kFull
                                             ? "PRAGMA synchronous=FULL"
                                             : "PRAGMA synchronous=NORMAL"));
    if (options.cache_size_kib > 0) {
      EVO_RETURN_IF_ERROR(conn->ExecDirect(
          ("PRAGMA cache_size=-" + std::to_string(options.cache_size_kib)).c_str()));
    }
    EVO_RETURN_IF_ERROR(conn->ExecDirect(options.foreign_keys ? "PRAGMA foreign_keys=ON"
                                                              : "PRAGMA foreign_keys=OFF"));
    if (role == Role::kReader) {
      EVO_RETURN_IF_ERROR(conn->ExecDirect("PRAGMA query_only=ON"));
    }
    // Opening is lazy in SQLite; reading the schema now surfaces a corrupt or foreign file
    // at open rather than at the first query.
    EVO_RETURN_IF_ERROR(conn->QueryText("SELECT count(*) FROM sqlite_schema").status());
    return conn;
  }

  ~Connection() {
    for (CacheEntry& entry : lru_) {
      sqlite3_finalize(entry.stmt);
    }
    sqlite3_close_v2(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

  // Prepares (or reuses), binds, steps and resets one statement, or runs a script.
  Status Run(std::string_view sql, const Params& params, const RunRequest& request,
             RunResult& result) {
    if (sql.size() > static_cast<size_t>(INT_MAX)) {
      return InvalidArgumentError("SQL too long");
    }
    Lease lease;
    if (auto it = index_.find(sql); it != index_.end() && !it->second->in_use) {
      lru_.splice(lru_.begin(), lru_, it->second);
      it->second->in_use = true;
      lease.Set(it->second->stmt, &*it->second);
      counters_.cache_hits.fetch_add(1, std::memory_order_relaxed);
    } else {
      const bool cacheable = capacity_ > 0 && it == index_.end();
      sqlite3_stmt* stmt = nullptr;
      const char* tail = nullptr;
      const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                        cacheable ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, &tail);
      counters_.prepared.fetch_add(1, std::memory_order_relaxed);
      if (rc != SQLITE_OK) {
        return SqliteError(rc, db_, sql);
      }
      if (stmt == nullptr) {
        return InvalidArgumentError("store: empty SQL statement");
      }
      lease.Set(stmt, nullptr);
      const std::string_view rest(tail, static_cast<size_t>(sql.data() + sql.size() - tail));
      if (!IsBlankSql(rest)) {
        if (!request.allow_script) {
          return InvalidArgumentError("store: Query takes a single statement, got a script: `" +
                                      SqlForMessage(sql) + "`");
        }
        if (!params.empty()) {
          return InvalidArgumentError(
              "store: parameters are only allowed with a single statement, got a script: `" +
              SqlForMessage(sql) + "`");
        }
        return RunScript(lease, rest, request, result);
      }
      EVO_RETURN_IF_ERROR(CheckPlaceholders(stmt, sql));
      if (cacheable) {
        lease.Set(stmt, Insert(sql, stmt));
      }
    }
    return Step(lease.Statement(), sql, params, request, result);
  }

  // For pragmas and transaction control: uncached, no parameters, rows discarded.
  Status ExecDirect(const char* sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    sqlite3_free(err);  // the same text is still in sqlite3_errmsg
    return rc == SQLITE_OK ? OkStatus() : SqliteError(sqlite3_extended_errcode(db_), db_, sql);
  }

 private:
  struct CacheEntry {
    std::string sql;
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;  // being stepped; a nested use of the same SQL prepares a fresh copy
  };

  // Resets a statement when its use ends (also on error and exception), so that it holds no
  // read snapshot or bindings; finalizes it when it is not cached.
  class Lease {
   public:
    Lease() = default;
    ~Lease() { Release(); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    void Set(sqlite3_stmt* stmt, CacheEntry* entry) {
      if (stmt_ != stmt) {
        Release();
      }
      stmt_ = stmt;
      entry_ = entry;
    }
    sqlite3_stmt* Statement() const { return stmt_; }

   private:
    void Release() {
      if (stmt_ == nullptr) {
        return;
      }
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
      if (entry_ != nullptr) {
        entry_->in_use = false;
      } else {
        sqlite3_finalize(stmt_);
      }
      stmt_ = nullptr;
      entry_ = nullptr;
    }

    sqlite3_stmt* stmt_ = nullptr;
    CacheEntry* entry_ = nullptr;
  };

  Connection(sqlite3* db, size_t capacity, Counters& counters)
      : db_(db), capacity_(capacity), counters_(counters) {}

  StatusOr<std::string> QueryText(const char* sql) {
    std::string out;
    RowCallback keep = [&out](const Row& row) -> Status {
      if (row.empty()) {
        return OkStatus();
      }
      const auto* text = std::get_if<std::string>(&row[0]);
      out = text != nullptr ? *text : DebugString(row[0]);
      return OkStatus();
    };
    RunResult result;
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
    counters_.prepared.fetch_add(1, std::memory_order_relaxed);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return SqliteError(rc, db_, sql);
    }
    Lease lease;
    lease.Set(stmt, nullptr);
    RunRequest request;
    request.on_row = &keep;
    EVO_RETURN_IF_ERROR(Step(stmt, sql, {}, request, result));
    return out;
  }

  // Only anonymous `?` ports to PostgreSQL's $n rewriting.
  static Status CheckPlaceholders(sqlite3_stmt* stmt, std::string_view sql) {
    const int n = sqlite3_bind_parameter_count(stmt);
    for (int i = 1; i <= n; ++i) {
      if (const char* name = sqlite3_bind_parameter_name(stmt, i); name != nullptr) {
        return InvalidArgumentError(std::string("store: placeholder ") + name +
                                    " is not allowed, use anonymous `?` in `" + SqlForMessage(sql) +
                                    "`");
      }
    }
    return OkStatus();
  }

  CacheEntry* Insert(std::string_view sql, sqlite3_stmt* stmt) {
    // Evict least recently used entries that are not being stepped right now.
    for (auto it = lru_.end(); index_.size() >= capacity_ && it != lru_.begin();) {
      --it;
      if (it->in_use) {
        continue;
      }
      index_.erase(it->sql);
      sqlite3_finalize(it->stmt);
      it = lru_.erase(it);
    }
    lru_.push_front(CacheEntry{std::string(sql), stmt, true});
    try {
      index_.emplace(lru_.front().sql, lru_.begin());
    } catch (...) {
      lru_.pop_front();  // the caller's Lease still owns `stmt` and finalizes it
      throw;
    }
    return &lru_.front();
  }

  Status Bind(sqlite3_stmt* stmt, std::string_view sql, const Params& params) {
    const int expected = sqlite3_bind_parameter_count(stmt);
    if (static_cast<size_t>(expected) != params.size()) {
      return InvalidArgumentError("store: statement has " + std::to_string(expected) +
                                  " placeholders but " + std::to_string(params.size()) +
                                  " parameters were given: `" + SqlForMessage(sql) + "`");
    }
    for (size_t i = 0; i < params.size(); ++i) {
      const int index = static_cast<int>(i) + 1;
      // SQLITE_STATIC: `params` outlives the statement's use, which ends with a reset and
      // clear_bindings in Lease.
      const int rc = std::visit(
          [&](const auto& v) -> int {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::nullptr_t>) {
              return sqlite3_bind_null(stmt, index);
            } else if constexpr (std::is_same_v<T, int64_t>) {
              return sqlite3_bind_int64(stmt, index, v);
            } else if constexpr (std::is_same_v<T, double>) {
              return sqlite3_bind_double(stmt, index, v);
            } else if constexpr (std::is_same_v<T, std::string>) {
              // data() is never null, so an empty string binds as '' rather than NULL.
              return sqlite3_bind_text64(stmt, index, v.data(), v.size(), SQLITE_STATIC,
                                         SQLITE_UTF8);
            } else {
              return sqlite3_bind_blob64(stmt, index, v.bytes.data(), v.bytes.size(),
                                         SQLITE_STATIC);
            }
          },
          params[i]);
      if (rc != SQLITE_OK) {
        return SqliteError(rc, db_, sql);
      }
    }
    return OkStatus();
  }

  static Value ColumnValue(sqlite3_stmt* stmt, int i) {
    switch (sqlite3_column_type(stmt, i)) {
      case SQLITE_INTEGER:
        return sqlite3_column_int64(stmt, i);
      case SQLITE_FLOAT:
        return sqlite3_column_double(stmt, i);
      case SQLITE_TEXT: {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
        const auto n = static_cast<size_t>(sqlite3_column_bytes(stmt, i));
        return p == nullptr ? std::string() : std::string(p, n);
      }
      case SQLITE_BLOB: {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt, i));
        const auto n = static_cast<size_t>(sqlite3_column_bytes(stmt, i));
        return Blob{p == nullptr ? std::string() : std::string(p, n)};
      }
      default:
        return nullptr;
    }
  }

  Status Step(sqlite3_stmt* stmt, std::string_view sql, const Params& params,
              const RunRequest& request, RunResult& result) {
    if (request.only_if_read_only && sqlite3_stmt_readonly(stmt) == 0) {
      result.needs_writer = true;
      return OkStatus();
    }
    EVO_RETURN_IF_ERROR(Bind(stmt, sql, params));
    const int columns = sqlite3_column_count(stmt);
    if (request.columns != nullptr) {
      request.columns->clear();
      for (int i = 0; i < columns; ++i) {
        const char* name = sqlite3_column_name(stmt, i);
        request.columns->emplace_back(name != nullptr ? name : "");
      }
    }
    // sqlite3_changes64() keeps the count of the last INSERT/UPDATE/DELETE even across DDL;
    // the total only moves when this statement changed rows, which tells the two apart.
    const int64_t total_before = sqlite3_total_changes64(db_);
    Row row;
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) {
        break;
      }
      if (rc != SQLITE_ROW) {
        return SqliteError(rc, db_, sql);
      }
      if (request.on_row == nullptr) {
        continue;
      }
      row.clear();
      row.reserve(static_cast<size_t>(columns));
      for (int i = 0; i < columns; ++i) {
        row.push_back(ColumnValue(stmt, i));
      }
      EVO_RETURN_IF_ERROR(CallUser("row callback", [&] { return (*request.on_row)(row); }));
    }
    if (sqlite3_total_changes64(db_) != total_before) {
      result.rows_affected += sqlite3_changes64(db_);
    }
    return OkStatus();
  }

  // Runs a script all or nothing: in its own transaction, or inside a savepoint when a
  // transaction is already open.
  Status RunScript(Lease& lease, std::string_view rest, const RunRequest& request,
                   RunResult& result) {
    const bool nested = InTransaction();
    EVO_RETURN_IF_ERROR(ExecDirect(nested ? "SAVEPOINT evo_script" : "BEGIN IMMEDIATE"));
    struct Undo {
      Connection& conn;
      bool nested;
      bool armed = true;
      ~Undo() {
        if (!armed) {
          return;
        }
        if (nested) {
          (void)conn.ExecDirect("ROLLBACK TO evo_script");
          (void)conn.ExecDirect("RELEASE evo_script");
        } else if (conn.InTransaction()) {
          (void)conn.ExecDirect("ROLLBACK");
        }
      }
    } undo{*this, nested};
    const int64_t rows_before = result.rows_affected;
    Status s = RunStatements(lease, rest, request, result);
    if (s.ok()) {
      s = ExecDirect(nested ? "RELEASE evo_script" : "COMMIT");
    }
    if (!s.ok()) {
      result.rows_affected = rows_before;
      return s;
    }
    undo.armed = false;
    return OkStatus();
  }

  // Runs the already prepared first statement in `lease`, then each statement of `rest` in
  // turn (prepared only when reached, since it may depend on what the earlier ones created).
  Status RunStatements(Lease& lease, std::string_view rest, const RunRequest& request,
                       RunResult& result) {
    EVO_RETURN_IF_ERROR(
        Step(lease.Statement(), sqlite3_sql(lease.Statement()), {}, request, result));
    while (!IsBlankSql(rest)) {
      sqlite3_stmt* stmt = nullptr;
      const char* tail = nullptr;
      const int rc =
          sqlite3_prepare_v2(db_, rest.data(), static_cast<int>(rest.size()), &stmt, &tail);
      counters_.prepared.fetch_add(1, std::memory_order_relaxed);
      if (rc != SQLITE_OK) {
        return SqliteError(rc, db_, rest);
      }
      rest = std::string_view(tail, static_cast<size_t>(rest.data() + rest.size() - tail));
      if (stmt == nullptr) {
        continue;
      }
      lease.Set(stmt, nullptr);
      EVO_RETURN_IF_ERROR(Step(stmt, sqlite3_sql(stmt), {}, request, result));
    }
    return OkStatus();
  }

  sqlite3* const db_;
  const size_t capacity_;
  Counters& counters_;
  // Front is most recently used. index_ keys view the entries' own sql strings.
  std::list<CacheEntry> lru_;
  std::unordered_map<std::string_view, std::list<CacheEntry>::iterator> index_;
};

// ---- transaction handle -------------------------------------------------------------------

// The Executor a Transaction function receives: runs everything on the transaction's
// connection. Lives on RunTransaction's stack, hence "must not keep it" in the header.
class TxExecutor final : public Executor {
 public:
  explicit TxExecutor(Connection& conn) : conn_(conn) {}

  StatusOr<ExecResult> Exec(std::string_view sql, const Params& params) override {
    return Guarded([&]() -> StatusOr<ExecResult> {
      RunRequest request;
      request.allow_script = true;
      RunResult result;
      EVO_RETURN_IF_ERROR(conn_.Run(sql, params, request, result));
      return ExecResult{result.rows_affected};
    });
  }

  StatusOr<Rows> Query(std::string_view sql, const Params& params) override {
    return Guarded([&]() -> StatusOr<Rows> {
      Rows rows;
      RowCallback collect = [&rows](const Row& row) -> Status {
        rows.rows.push_back(row);
        return OkStatus();
      };
      RunRequest request;
      request.on_row = &collect;
      request.columns = &rows.columns;
      RunResult result;
      EVO_RETURN_IF_ERROR(conn_.Run(sql, params, request, result));
      return rows;
    });
  }

  Status QueryEach(std::string_view sql, const Params& params, const RowCallback& on_row) override {
    return Guarded([&]() -> Status {
      RunRequest request;
      request.on_row = &on_row;
      RunResult result;
      return conn_.Run(sql, params, request, result);
    });
  }

 private:
  Connection& conn_;
};

// ---- database -----------------------------------------------------------------------------

// An exclusive lock whose acquisition waits at most a timeout. Built from a mutex and a
// condition variable rather than std::timed_mutex, whose try_lock_for (pthread_mutex_clocklock)
// ThreadSanitizer does not see, which would hide real races behind false ones.
class TimedGate {
 public:
  class Holder {
   public:
    explicit Holder(TimedGate* gate) : gate_(gate) {}
    Holder(Holder&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
    Holder& operator=(Holder&&) = delete;
    ~Holder() {
      if (gate_ != nullptr) {
        gate_->Release();
      }
    }

   private:
    TimedGate* gate_;
  };

  // False when the gate stayed closed for `timeout`.
  bool TryEnterFor(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [this] { return !held_; })) {
      return false;
    }
    held_ = true;
    return true;
  }

 private:
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = false;
    }
    cv_.notify_one();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;  // guarded by mu_
};

class SqliteDatabase final : public Database {
 public:
  SqliteDatabase(const SqliteOptions& options, const Clock& clock)
      : options_(options), clock_(clock) {}

  ~SqliteDatabase() override {
    {
      std::lock_guard lock(checkpoint_mu_);
      closing_ = true;
    }
    checkpoint_cv_.notify_all();
    if (checkpointer_.joinable()) {
      checkpointer_.join();
    }
    readers_.clear();
    writer_.reset();  // last: closing the last connection checkpoints the WAL
  }

  Status Init() {
    EVO_ASSIGN_OR_RETURN(writer_, Connection::Open(options_, Role::kWriter, counters_));
    const int readers = options_.path == kMemoryPath ? 0 : options_.reader_connections;
    for (int i = 0; i < readers; ++i) {
      EVO_ASSIGN_OR_RETURN(auto reader, Connection::Open(options_, Role::kReader, counters_));
      free_readers_.push_back(reader.get());
      readers_.push_back(std::move(reader));
    }
    if (options_.background_checkpoint && !options_.read_only && options_.path != kMemoryPath) {
      EVO_RETURN_IF_ERROR(Exec("PRAGMA wal_autocheckpoint=16384", {}).status());
      checkpointer_ = std::thread([this] { CheckpointLoop(); });
    }
    return OkStatus();
  }

  void CheckpointLoop() {
    std::unique_lock lock(checkpoint_mu_);
    while (!closing_) {
      checkpoint_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return closing_; });
      if (closing_) {
        break;
      }
      lock.unlock();
      // Nothing may end this thread (and with it the process): log, try again next round.
      try {
        if (auto r = Query("PRAGMA wal_checkpoint(PASSIVE)", {}); !r.ok()) {
          spdlog::warn("store: checkpoint of {} failed: {}", options_.path, r.status().ToString());
        }
      } catch (const std::exception& e) {
        spdlog::error("store: checkpoint of {} threw: {}", options_.path, e.what());
      } catch (...) {
        spdlog::error("store: checkpoint of {} threw an unknown exception", options_.path);
      }
      lock.lock();
    }
  }

  StatusOr<ExecResult> Exec(std::string_view sql, const Params& params) override {
    return Guarded([&]() -> StatusOr<ExecResult> {
      if (IsActiveOnThisThread(this)) {
        return ReentrantCallError();
      }
      EVO_ASSIGN_OR_RETURN(auto lock, LockWriter());
      RunRequest request;
      request.allow_script = true;
      RunResult result;
      EVO_RETURN_IF_ERROR(RunOutsideTransaction(*writer_, sql, params, request, result));
      return ExecResult{result.rows_affected};
    });
  }

  StatusOr<Rows> Query(std::string_view sql, const Params& params) override {
    return Guarded([&]() -> StatusOr<Rows> {
      Rows rows;
      RowCallback collect = [&rows](const Row& row) -> Status {
        rows.rows.push_back(row);
        return OkStatus();
      };
      EVO_RETURN_IF_ERROR(Read(sql, params, collect, &rows.columns));
      return rows;
    });
  }

  Status QueryEach(std::string_view sql, const Params& params, const RowCallback& on_row) override {
    return Guarded([&]() -> Status { return Read(sql, params, on_row, nullptr); });
  }

  Status Transaction(const std::function<Status(Executor& tx)>& fn, TxMode mode) override {
    return Guarded([&]() -> Status {
      if (IsActiveOnThisThread(this)) {
        return ReentrantCallError();
      }
      if (mode == TxMode::kReadOnly && !readers_.empty()) {
        EVO_ASSIGN_OR_RETURN(ReaderLease reader, AcquireReader());
        return RunTransaction(*reader.conn, fn, mode);
      }
      EVO_ASSIGN_OR_RETURN(auto lock, LockWriter());
      if (mode == TxMode::kReadWrite ||
          (mode == TxMode::kDurable && options_.synchronous == SqliteSynchronous::kFull)) {
        return RunTransaction(*writer_, fn, TxMode::kReadWrite);
      }
      if (mode == TxMode::kDurable) {
        // In WAL mode a FULL commit syncs the log, and with it every commit before it.
        EVO_RETURN_IF_ERROR(writer_->ExecDirect("PRAGMA synchronous=FULL"));
        Status s = RunTransaction(*writer_, fn, TxMode::kReadWrite);
        Status restore = writer_->ExecDirect("PRAGMA synchronous=NORMAL");
        return s.ok() ? restore : s;
      }
      // A read-only transaction on the writer (no readers): make it refuse writes as a
      // reader would.
      EVO_RETURN_IF_ERROR(writer_->ExecDirect("PRAGMA query_only=ON"));
      Status s = RunTransaction(*writer_, fn, mode);
      Status restore = writer_->ExecDirect("PRAGMA query_only=OFF");
      return s.ok() ? restore : s;
    });
  }

  Status Migrate(std::string_view module, const std::vector<Migration>& migrations) override {
    return Guarded([&]() -> Status {
      if (IsActiveOnThisThread(this)) {
        return ReentrantCallError();
      }
      const std::string name(module);
      if (name.empty()) {
        return InvalidArgumentError("store: migration module name is empty");
      }
      for (size_t i = 0; i < migrations.size(); ++i) {
        if (migrations[i].version <= 0 ||
            (i > 0 && migrations[i].version <= migrations[i - 1].version)) {
          return InvalidArgumentError("store: migrations of " + name +
                                      " must have versions > 0 in strictly increasing order "
                                      "(entry " +
                                      std::to_string(i) + " has " +
                                      std::to_string(migrations[i].version) + ")");
        }
      }
      if (!options_.read_only) {
        EVO_RETURN_IF_ERROR(Exec(kCreateMigrationsTable, {}).status());
      }
      EVO_ASSIGN_OR_RETURN(std::set<int64_t> applied, AppliedVersions(name));
      const int64_t known = migrations.empty() ? 0 : migrations.back().version;
      const int64_t recorded = applied.empty() ? 0 : *applied.rbegin();
      if (recorded > known) {
        return FailedPreconditionError(
            "store: database has schema version " + std::to_string(recorded) + " of module " +
            name + " but this code knows versions up to " + std::to_string(known) +
            "; refusing to run against a newer schema");
      }
      std::vector<const Migration*> pending;
      for (const Migration& m : migrations) {
        if (applied.count(m.version) != 0) {
          continue;
        }
        if (m.version < recorded) {
          return FailedPreconditionError("store: module " + name + " has version " +
                                         std::to_string(recorded) + " applied but not version " +
                                         std::to_string(m.version) +
                                         "; refusing to apply migrations out of order");
        }
        pending.push_back(&m);
      }
      if (pending.empty()) {
        return OkStatus();
      }
      if (options_.read_only) {
        return FailedPreconditionError("store: module " + name + " needs " +
                                       std::to_string(pending.size()) +
                                       " migration(s) but the database is open read-only");
      }
      for (const Migration* m : pending) {
        Status s = Transaction(
            [&](Executor& tx) -> Status {
              // Another process may have applied it since AppliedVersions.
              EVO_ASSIGN_OR_RETURN(Rows done,
                                   tx.Query("SELECT 1 FROM schema_migrations WHERE module = ? AND "
                                            "version = ?",
                                            {name, m->version}));
              if (!done.empty()) {
                return OkStatus();
              }
              EVO_RETURN_IF_ERROR(tx.Exec(m->sql).status());
              return tx
                  .Exec(
                      "INSERT INTO schema_migrations (module, version, applied_at) "
                      "VALUES (?, ?, ?)",
                      {name, m->version, Rfc3339(clock_.Now())})
                  .status();
            },
            TxMode::kReadWrite);
        if (!s.ok()) {
          return Status(s.code(), "store: migration " + name + " version " +
                                      std::to_string(m->version) +
                                      " failed: " + std::string(s.message()));
        }
      }
      return OkStatus();
    });
  }

  StatusOr<int64_t> SchemaVersion(std::string_view module) override {
    return Guarded([&]() -> StatusOr<int64_t> {
      if (IsActiveOnThisThread(this)) {
        return ReentrantCallError();
      }
      EVO_ASSIGN_OR_RETURN(std::set<int64_t> applied, AppliedVersions(std::string(module)));
      return applied.empty() ? int64_t{0} : *applied.rbegin();
    });
  }

  Stats GetStats() const override {
    Stats stats;
    stats.statements_prepared = counters_.prepared.load(std::memory_order_relaxed);
    stats.statement_cache_hits = counters_.cache_hits.load(std::memory_order_relaxed);
    stats.transactions_committed = counters_.committed.load(std::memory_order_relaxed);
    stats.transactions_rolled_back = counters_.rolled_back.load(std::memory_order_relaxed);
    return stats;
  }

 private:
  // A checked-out reader connection, returned to the free list on destruction.
  struct ReaderLease {
    SqliteDatabase* db = nullptr;
    Connection* conn = nullptr;
    ReaderLease(SqliteDatabase* d, Connection* c) : db(d), conn(c) {}
    ReaderLease(ReaderLease&& other) noexcept
        : db(std::exchange(other.db, nullptr)), conn(std::exchange(other.conn, nullptr)) {}
    ReaderLease& operator=(ReaderLease&&) = delete;
    ~ReaderLease() {
      if (conn == nullptr) {
        return;
      }
      {
        std::lock_guard<std::mutex> lock(db->readers_mu_);
        db->free_readers_.push_back(conn);
      }
      db->readers_cv_.notify_one();
    }
  };

  // In-process writers queue here; the busy timeout bounds the wait as it bounds SQLite's
  // wait for another process's lock.
  StatusOr<TimedGate::Holder> LockWriter() {
    if (!writer_gate_.TryEnterFor(options_.busy_timeout)) {
      return UnavailableError("store: writer connection busy for longer than the busy timeout (" +
                              std::to_string(options_.busy_timeout.count()) + " ms)");
    }
    return TimedGate::Holder(&writer_gate_);
  }

  StatusOr<ReaderLease> AcquireReader() {
    std::unique_lock<std::mutex> lock(readers_mu_);
    if (!readers_cv_.wait_for(lock, options_.busy_timeout,
                              [this] { return !free_readers_.empty(); })) {
      return UnavailableError(
          "store: all reader connections busy for longer than the busy "
          "timeout (" +
          std::to_string(options_.busy_timeout.count()) + " ms)");
    }
    Connection* conn = free_readers_.back();
    free_readers_.pop_back();
    return ReaderLease(this, conn);
  }

  // A read outside a transaction: on a reader when the statement is read-only, else on the
  // writer (e.g. INSERT ... RETURNING).
  Status Read(std::string_view sql, const Params& params, const RowCallback& on_row,
              std::vector<std::string>* columns) {
    if (IsActiveOnThisThread(this)) {
      return ReentrantCallError();
    }
    RunRequest request;
    request.on_row = &on_row;
    request.columns = columns;
    RunResult result;
    if (!readers_.empty()) {
      EVO_ASSIGN_OR_RETURN(ReaderLease reader, AcquireReader());
      request.only_if_read_only = true;
      EVO_RETURN_IF_ERROR(RunOutsideTransaction(*reader.conn, sql, params, request, result));
      if (!result.needs_writer) {
        return OkStatus();
      }
      request.only_if_read_only = false;
    }
    EVO_ASSIGN_OR_RETURN(auto lock, LockWriter());
    return RunOutsideTransaction(*writer_, sql, params, request, result);
  }

  // Runs `sql` in autocommit mode; a statement that leaves a transaction open (BEGIN,
  // SAVEPOINT) is rolled back, since it would capture the shared connection.
  Status RunOutsideTransaction(Connection& conn, std::string_view sql, const Params& params,
                               const RunRequest& request, RunResult& result) {
    ActiveScope scope(this);
    Status s = conn.Run(sql, params, request, result);
    if (conn.InTransaction()) {
      (void)conn.ExecDirect("ROLLBACK");
      if (s.ok()) {
        s = FailedPreconditionError(
            "store: transaction control statements are not allowed outside Transaction(): `" +
            SqlForMessage(sql) + "`");
      }
    }
    return s;
  }

  Status RunTransaction(Connection& conn, const std::function<Status(Executor&)>& fn, TxMode mode) {
    ActiveScope scope(this);
    EVO_RETURN_IF_ERROR(
        conn.ExecDirect(mode == TxMode::kReadWrite ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED"));
    // Rolls back on every path that does not commit, exceptions included.
    struct RollbackGuard {
      Connection& conn;
      Counters& counters;
      bool armed = true;
      ~RollbackGuard() {
        if (!armed) {
          return;
        }
        if (conn.InTransaction()) {
          (void)conn.ExecDirect("ROLLBACK");
        }
        counters.rolled_back.fetch_add(1, std::memory_order_relaxed);
      }
    } guard{conn, counters_};

    TxExecutor tx(conn);
    Status s = CallUser("transaction function", [&] { return fn(tx); });
    if (!s.ok()) {
      return s;
    }
    if (!conn.InTransaction()) {
      return AbortedError(
          "store: the transaction ended before commit (rolled back by SQLite after an error "
          "the function ignored, or ended by a COMMIT/ROLLBACK sent through the Executor)");
    }
    EVO_RETURN_IF_ERROR(conn.ExecDirect("COMMIT"));
    guard.armed = false;
    counters_.committed.fetch_add(1, std::memory_order_relaxed);
    return OkStatus();
  }

  StatusOr<std::set<int64_t>> AppliedVersions(const std::string& module) {
    std::set<int64_t> versions;
    EVO_ASSIGN_OR_RETURN(Rows table,
                         Query("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = "
                               "'schema_migrations'",
                               {}));
    if (table.empty()) {
      return versions;
    }
    EVO_ASSIGN_OR_RETURN(Rows rows,
                         Query("SELECT version FROM schema_migrations WHERE module = ?", {module}));
    for (const Row& row : rows.rows) {
      EVO_ASSIGN_OR_RETURN(int64_t v, AsInt64(row.at(0)));
      versions.insert(v);
    }
    return versions;
  }

  const SqliteOptions options_;
  const Clock& clock_;
  Counters counters_;

  TimedGate writer_gate_;
  std::unique_ptr<Connection> writer_;  // used only while holding writer_gate_ (after Init)

  std::vector<std::unique_ptr<Connection>> readers_;  // fixed after Init
  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<Connection*> free_readers_;  // guarded by readers_mu_

  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool closing_ = false;  // guarded by checkpoint_mu_
  std::thread checkpointer_;
};

}  // namespace

Status Validate(const SqliteOptions& options) {
  if (options.path.empty()) {
    return InvalidArgumentError("store.path must not be empty");
  }
  if (options.busy_timeout.count() < 0 || options.busy_timeout > kMaxBusyTimeout) {
    return InvalidArgumentError("store.busy_timeout must be between 0 and 1h");
  }
  if (options.read_only && options.path == kMemoryPath) {
    return InvalidArgumentError("store.read_only needs a file path, not :memory:");
  }
  if (options.reader_connections < 0 || options.reader_connections > kMaxReaderConnections) {
    return InvalidArgumentError("store.reader_connections must be between 0 and 64");
  }
  if (options.statement_cache_capacity < 0 ||
      options.statement_cache_capacity > kMaxStatementCacheCapacity) {
    return InvalidArgumentError("store.statement_cache_capacity must be between 0 and 10000");
  }
  if (options.cache_size_kib < 0 || options.cache_size_kib > (1 << 20)) {
    return InvalidArgumentError("store.cache_size_kib must be between 0 and 1048576");
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<Database>> OpenSqlite(const SqliteOptions& options, const Clock& clock) {
  // SQLite's memory statistics take a global mutex on every allocation; nothing here reads
  // them. Only possible before SQLite initialises (later calls fail harmlessly).
  static std::once_flag memstatus_off;
  std::call_once(memstatus_off, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  return Guarded([&]() -> StatusOr<std::unique_ptr<Database>> {
    EVO_RETURN_IF_ERROR(Validate(options));
    auto db = std::make_unique<SqliteDatabase>(options, clock);
    EVO_RETURN_IF_ERROR(db->Init());
    return std::unique_ptr<Database>(std::move(db));
  });
}

}  // namespace evo::store
