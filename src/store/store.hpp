// The store module: durable state for the modules that need it (queue, webhooks, bandit,
// spam model versions), behind one small SQL interface.
//
// The interface is deliberately narrow so that a PostgreSQL backend can sit behind it later:
// callers write portable SQL with anonymous `?` placeholders (a PostgreSQL backend rewrites
// them to $1..$n), pass parameters as a std::vector<Value>, and get rows back as values.
// Only one backend exists today: embedded SQLite in WAL mode (OpenSqlite below).
//
//   EVO_ASSIGN_OR_RETURN(std::unique_ptr<store::Database> db, store::OpenSqlite({.path = p}));
//   EVO_RETURN_IF_ERROR(db->Migrate("webhooks", {{1, "CREATE TABLE endpoints(...)"}}));
//   EVO_RETURN_IF_ERROR(db->Exec("INSERT INTO endpoints(id, url) VALUES(?, ?)", {id, url}));
//   EVO_ASSIGN_OR_RETURN(store::Rows rows, db->Query("SELECT url FROM endpoints"));
//   EVO_RETURN_IF_ERROR(db->Transaction([&](store::Executor& tx) -> Status {
//     EVO_RETURN_IF_ERROR(tx.Exec("UPDATE ...", {...}).status());
//     return tx.Exec("INSERT ...", {...}).status();
//   }));
//
// Errors (as evo::Status; do not switch exhaustively over codes):
//   AlreadyExists       a UNIQUE or PRIMARY KEY constraint was violated
//   InvalidArgument     bad SQL (syntax error, unknown table or column), wrong parameter count,
//                       a NOT NULL / CHECK constraint, a named placeholder, a bad option
//   FailedPrecondition  a FOREIGN KEY constraint; a write to a read-only database; a file
//                       that cannot be opened; a schema newer than the code (Migrate); a
//                       re-entrant call (see Thread safety)
//   Unavailable         the database is locked by another process or thread for longer than
//                       the busy timeout; an I/O error
//   DataLoss            the file is corrupt or is not a database
//   ResourceExhausted   the disk is full or memory ran out
//   Aborted             SQLite rolled a transaction back by itself (then nothing was written)
//   Internal            an exception escaped a caller's callback, or API misuse in this module
// Messages carry SQLite's error text and the start of the SQL, never parameter values.
//
// No exception crosses this header: every call returns a Status and catches what it, or a
// callback given to it, throws.
//
// Thread safety: a Database may be shared by any number of threads. A call made on a
// Database from inside one of its own callbacks (a Transaction function, a QueryEach row
// callback) on the same thread returns FailedPrecondition instead of deadlocking: inside a
// transaction, use the Executor it hands you.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/clock.hpp"
#include "core/status.hpp"

namespace evo::store {

// Raw bytes (may contain NUL). A distinct type so that TEXT and BLOB stay distinct.
struct Blob {
  std::string bytes;
  friend bool operator==(const Blob&, const Blob&) = default;
};
// Prints "Blob(3 bytes: 61 00 62)", the first bytes in hex (for test failure messages).
std::ostream& operator<<(std::ostream& os, const Blob& blob);

// One SQL value. NULL, a 64-bit integer, a double, UTF-8 text, or a blob.
// `Value(1)` is an integer, `Value(1.5)` a double, `Value("a")` text, `Value(nullptr)` NULL.
// Unsigned and std::string_view arguments do not convert implicitly: cast them.
// A NaN double is stored as NULL (SQLite's rule).
using Value = std::variant<std::nullptr_t, int64_t, double, std::string, Blob>;
// Positional parameters: element i binds the i-th `?` of the statement.
using Params = std::vector<Value>;
// One result row: element i is the value of the i-th result column.
using Row = std::vector<Value>;

// A whole result set, fully materialised. Use QueryEach for results too large to hold.
struct Rows {
  std::vector<std::string> columns;  // result column names, in order
  std::vector<Row> rows;

  // Container-style accessors, named as in the standard library.
  bool empty() const { return rows.empty(); }  // NOLINT(readability-identifier-naming)
  size_t size() const { return rows.size(); }  // NOLINT(readability-identifier-naming)
  const Row& operator[](size_t i) const { return rows[i]; }
};

// Typed reads of a Value. Each returns InvalidArgument naming the actual type when `v`
// holds another type (NULL included); AsDouble also accepts an integer.
bool IsNull(const Value& v);
StatusOr<int64_t> AsInt64(const Value& v);
StatusOr<double> AsDouble(const Value& v);
StatusOr<std::string> AsText(const Value& v);
StatusOr<Blob> AsBlob(const Value& v);
// "NULL", "42", "1.5", "'text'", "Blob(..)": for logs and test messages, never for SQL.
std::string DebugString(const Value& v);

// What a statement that changes rows did.
struct ExecResult {
  // Rows inserted, updated or deleted by the statement itself (not by triggers; 0 for DDL).
  // For a script (several statements), the sum over its statements.
  // Generated keys: use `INSERT ... RETURNING id` through Query, which works in both SQLite
  // and PostgreSQL.
  int64_t rows_affected = 0;
};

// Called once per result row, in order. Returning a non-OK status stops the query and
// becomes its result. The row is only valid during the call.
using RowCallback = std::function<Status(const Row& row)>;

// Something that runs SQL: the Database itself (each call in its own implicit transaction)
// or the handle a Transaction function receives (every call inside that transaction).
//
// `sql` is one statement with anonymous `?` placeholders; `params` must hold exactly as many
// values as there are `?` (else InvalidArgument). Named (`:x`, `$x`, `@x`) and numbered
// (`?1`) placeholders are rejected with InvalidArgument because they do not port.
// Statements are prepared once per connection and cached by their SQL text, so pass
// variable data as parameters, never by formatting it into `sql`.
class Executor {
 public:
  virtual ~Executor() = default;

  // Runs a statement that returns no rows (INSERT/UPDATE/DELETE/DDL); rows it does return
  // are discarded. With empty `params`, `sql` may also be a script of several statements
  // separated by `;`, run in order and all or nothing: the first error undoes the script's
  // earlier statements (scripts are not cached and must not contain BEGIN/COMMIT). Errors:
  // see the file comment; InvalidArgument for empty SQL or for parameters given to a script.
  virtual StatusOr<ExecResult> Exec(std::string_view sql, const Params& params = {}) = 0;

  // Runs one statement and returns all of its rows (a SELECT, or a write with RETURNING).
  // Errors: see the file comment; InvalidArgument when `sql` holds several statements.
  virtual StatusOr<Rows> Query(std::string_view sql, const Params& params = {}) = 0;

  // As Query, but hands each row to `on_row` instead of holding them all. Returns OK after
  // the last row, the first non-OK status `on_row` returns, or the query's error. An
  // exception thrown by `on_row` is caught and returned as Internal. `on_row` must not call
  // into the Database (FailedPrecondition); inside a transaction it may use the Executor.
  virtual Status QueryEach(std::string_view sql, const Params& params,
                           const RowCallback& on_row) = 0;

  // The first row of Query(sql, params); NotFound when there is none. Add `LIMIT 1` to
  // `sql` when more rows may match: the others are read and dropped.
  StatusOr<Row> QueryOne(std::string_view sql, const Params& params = {});
};

// Transaction modes.
enum class TxMode {
  // BEGIN IMMEDIATE: takes the write lock up front, so the transaction cannot fail later
  // with a lock upgrade conflict. Serialised with every other writer.
  kReadWrite,
  // A consistent snapshot for several reads; runs beside writers (WAL) and rejects writes
  // with FailedPrecondition.
  kReadOnly,
  // kReadWrite, and the commit survives a power loss when it returns, whatever the
  // database's own setting (SQLite: synchronous=FULL for this transaction). For writes that
  // something durable elsewhere will depend on.
  kDurable,
};

// One version of one module's schema: `sql` (one or more statements) runs inside a
// transaction together with recording `version` as applied.
struct Migration {
  int64_t version = 0;  // REQUIRES: > 0, strictly increasing within a module's list
  std::string sql;
};

// Counters for /metrics and tests. Monotonic since Open.
struct Stats {
  uint64_t statements_prepared = 0;   // statements compiled (cache misses, scripts)
  uint64_t statement_cache_hits = 0;  // statements served from a connection's cache
  uint64_t transactions_committed = 0;
  uint64_t transactions_rolled_back = 0;
};

// A database. Obtained from OpenSqlite (or, later, a PostgreSQL opener); closed when
// destroyed, which REQUIRES that no call on it is still running. Every method may be called
// from any thread.
class Database : public Executor {
 public:
  // Runs `fn` in a transaction. Commits when `fn` returns OK and returns the commit's
  // status; otherwise rolls back and returns `fn`'s status (an exception thrown by `fn` is
  // caught, rolled back and returned as Internal). `fn` must do all its work through the
  // Executor it receives, on the calling thread, and must not keep it after returning; a
  // call on the Database from inside `fn` returns FailedPrecondition (no nested
  // transactions). Returns Unavailable when the write lock is not obtained within the busy
  // timeout, Aborted when SQLite rolled the transaction back by itself (e.g. disk full while
  // `fn` ignored the error). `fn` is called at most once: retrying is the caller's choice.
  virtual Status Transaction(const std::function<Status(Executor& tx)>& fn,
                             TxMode mode = TxMode::kReadWrite) = 0;

  // Brings `module`'s schema up to date. Versions are recorded in
  // `schema_migrations(module TEXT, version INTEGER, applied_at TEXT,
  // PRIMARY KEY(module, version))`, created on first use; `applied_at` is RFC 3339 UTC from
  // the Clock given at open. Each missing version in `migrations` is applied in order, each
  // in its own transaction, so a failure leaves the earlier versions applied and returns the
  // failing migration's error (its message names module and version). Idempotent: versions
  // already recorded are skipped, which also makes concurrent Migrate calls from several
  // processes safe. Modules are independent of each other.
  // Errors: InvalidArgument for an empty module name or versions not > 0 and strictly
  // increasing; FailedPrecondition when the database records a version of `module` higher
  // than the highest in `migrations` (the database is newer than this code), when a version
  // below the highest recorded one is missing (applying it now would reorder history), or
  // when the database is read-only and versions are missing.
  virtual Status Migrate(std::string_view module, const std::vector<Migration>& migrations) = 0;

  // The highest applied migration version of `module`, 0 when none.
  virtual StatusOr<int64_t> SchemaVersion(std::string_view module) = 0;

  virtual Stats GetStats() const = 0;
};

// --- SQLite -------------------------------------------------------------------------------

enum class SqliteSynchronous {
  kNormal,  // WAL default: a commit is durable once the WAL is synced at checkpoint; a
            // power loss may drop the last commits but never corrupts the database
  kFull,    // every commit syncs the WAL: durable on return, slower writes
};

struct SqliteOptions {
  // Database file, created if missing (its directory must exist). ":memory:" opens a private
  // in-memory database (for tests: it has a single connection and is lost on close).
  std::string path;
  // How long a call waits for a lock held by another connection (thread or process) before
  // returning Unavailable. REQUIRES: 0..1h.
  std::chrono::milliseconds busy_timeout{5000};
  SqliteSynchronous synchronous = SqliteSynchronous::kNormal;
  // Open without write access: writes return FailedPrecondition, the file is never created,
  // Migrate only checks that the schema is current. REQUIRES: a file path.
  bool read_only = false;
  // Connections for reads outside transactions, beside the one writer connection, so reads
  // run in parallel with each other and with the writer (WAL). 0 sends every call to the
  // writer. Ignored for ":memory:". REQUIRES: 0..64.
  int reader_connections = 2;
  // Prepared statements cached per connection (least recently used are finalised first).
  // 0 disables the cache. REQUIRES: 0..10000.
  int statement_cache_capacity = 128;
  // PRAGMA foreign_keys (off by default in SQLite; on here, as in PostgreSQL).
  bool foreign_keys = true;
  // Page cache per connection in KiB; 0 keeps SQLite's default (2 MiB). REQUIRES: 0..1 GiB.
  int cache_size_kib = 0;
  // Checkpoint from a background thread (PASSIVE, every 100 ms) instead of inside the commit
  // that crosses 1000 WAL pages, so that no writer pays for copying pages into the database
  // file; SQLite's automatic checkpoint stays as a backstop at 16384 pages. Ignored when
  // read-only and for ":memory:".
  bool background_checkpoint = false;
};

// OK, or InvalidArgument naming the offending field.
Status Validate(const SqliteOptions& options);

// Opens (creating if needed) the SQLite database described by `options`, switches it to
// WAL mode and checks that it is readable. `clock` stamps migrations and must outlive the
// database. The connection model: one writer connection behind a mutex (every Exec,
// Transaction and Migrate, and any Query that writes, e.g. with RETURNING) plus
// `reader_connections` read-only connections for reads, each used by one thread at a time.
// Errors: InvalidArgument (Validate), DataLoss when the file is corrupt or not a database,
// FailedPrecondition when it cannot be opened (missing directory, no permission, read-only
// and missing), Unavailable when it stays locked past the busy timeout.
StatusOr<std::unique_ptr<Database>> OpenSqlite(const SqliteOptions& options,
                                               const Clock& clock = RealClock());

}  // namespace evo::store
