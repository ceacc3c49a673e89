// The SQLite broker. One table holds every queue's messages; a message is visible when its
// `available_at` (Unix ms) has passed, so a delay, a nack delay and a lease are all the same
// thing: leasing moves `available_at` to the lease's expiry and sets `leased_until`. The
// lease scan is one index range per lane: (queue_id, lane, available_at).
//
// Messages waiting behind their ordering key are "parked" at available_at = kParked; the
// head of a key is the key's lowest id, and removing it (ack, dead letter) unparks the next.
//
// All writes go through one writer thread that runs every operation waiting for it in one
// transaction (group commit: one fsync for many producers and consumers). Results are
// handed out only after the commit, so nothing is acknowledged before it is durable.
// Per-queue counters (depth, dead letters, totals) live in the queue's row and change in
// the same transactions, so they survive a crash exactly and a restart reads them in O(1).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "queue/queue.hpp"
#include "store/store.hpp"

namespace evo::queue {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr int64_t kParked = INT64_MAX;
constexpr size_t kHistoryKeep = 20;
constexpr size_t kMaxErrorBytes = 1024;
constexpr size_t kChunk = 1000;  // dead letters per redrive/purge transaction
constexpr int kLaneCount = 3;
constexpr milliseconds kMaxVisibility{12LL * 3600 * 1000};
constexpr milliseconds kMaxDelay{30LL * 24 * 3600 * 1000};
constexpr milliseconds kWaiterRetry{100};
constexpr milliseconds kGaugeRefresh{2000};
constexpr milliseconds kDedupeSweep{60'000};
// Expired dedupe keys deleted per statement; the sweep repeats it, between group commits,
// until no expired key is left.
constexpr size_t kDedupeSweepBatch = 5000;

const std::vector<store::Migration>& Migrations() {
  static const std::vector<store::Migration> migrations = {{1, R"sql(
CREATE TABLE queue_queues(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  max_attempts INTEGER NOT NULL,
  visibility_ms INTEGER NOT NULL,
  dedupe_window_ms INTEGER NOT NULL,
  max_payload_bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  depth INTEGER NOT NULL DEFAULT 0,
  dead INTEGER NOT NULL DEFAULT 0,
  enqueued_total INTEGER NOT NULL DEFAULT 0,
  deduplicated_total INTEGER NOT NULL DEFAULT 0,
  acked_total INTEGER NOT NULL DEFAULT 0,
  nacked_total INTEGER NOT NULL DEFAULT 0,
  dead_lettered_total INTEGER NOT NULL DEFAULT 0,
  expired_leases_total INTEGER NOT NULL DEFAULT 0,
  redriven_total INTEGER NOT NULL DEFAULT 0);
CREATE TABLE queue_messages(
  id INTEGER PRIMARY KEY,
  queue_id INTEGER NOT NULL,
  lane INTEGER NOT NULL,
  available_at INTEGER NOT NULL,
  due_at INTEGER NOT NULL,
  leased_until INTEGER,
  attempt INTEGER NOT NULL DEFAULT 0,
  attempt_base INTEGER NOT NULL DEFAULT 0,
  ordering_key TEXT,
  enqueued_at INTEGER NOT NULL,
  headers TEXT,
  history TEXT,
  payload BLOB NOT NULL);
CREATE INDEX queue_messages_visible ON queue_messages(queue_id, lane, available_at);
CREATE INDEX queue_messages_key ON queue_messages(queue_id, ordering_key)
  WHERE ordering_key IS NOT NULL;
CREATE TABLE queue_dedupe(
  queue_id INTEGER NOT NULL,
  key TEXT NOT NULL,
  message_id INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY(queue_id, key)) WITHOUT ROWID;
CREATE INDEX queue_dedupe_expiry ON queue_dedupe(expires_at);
CREATE TABLE queue_dead_letters(
  id INTEGER PRIMARY KEY,
  queue_id INTEGER NOT NULL,
  lane INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  deliveries INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  history TEXT,
  ordering_key TEXT,
  enqueued_at INTEGER NOT NULL,
  dead_at INTEGER NOT NULL,
  headers TEXT,
  payload BLOB NOT NULL);
CREATE INDEX queue_dead_letters_queue ON queue_dead_letters(queue_id, id);
)sql"},
                                                           {2, R"sql(
CREATE TABLE queue_clock(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  high_water INTEGER NOT NULL);
INSERT INTO queue_clock(id, high_water) VALUES(1, 0);
)sql"}};
  return migrations;
}

// ---- value helpers --------------------------------------------------------------------------

int64_t Int(const store::Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) {
    return *i;
  }
  return 0;
}
bool Null(const store::Value& v) { return std::holds_alternative<std::nullptr_t>(v); }
std::string Text(const store::Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    return *s;
  }
  return {};
}
std::string Bytes(store::Value& v) {
  if (auto* b = std::get_if<store::Blob>(&v)) {
    return std::move(b->bytes);
  }
  if (auto* s = std::get_if<std::string>(&v)) {
    return std::move(*s);
  }
  return {};
}
store::Value TextOrNull(const std::string& s) {
  return s.empty() ? store::Value(nullptr) : store::Value(s);
}

std::string HeadersJson(const Headers& headers) {
  if (headers.empty()) {
    return {};
  }
  json out = json::array();
  for (const auto& [name, value] : headers) {
    out.push_back({name, value});
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}
Headers ParseHeaders(const std::string& text) {
  Headers out;
  if (text.empty()) {
    return out;
  }
  const json parsed = json::parse(text, nullptr, false);
  if (!parsed.is_array()) {
    return out;
  }
  for (const json& pair : parsed) {
    if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string()) {
      out.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
    }
  }
  return out;
}

std::string Cut(std::string_view error) {
  if (error.size() <= kMaxErrorBytes) {
    return std::string(error);
  }
  // Do not cut a UTF-8 sequence in half.
  size_t end = kMaxErrorBytes;
  while (end > 0 && (static_cast<unsigned char>(error[end]) & 0xC0) == 0x80) {
    --end;
  }
  return std::string(error.substr(0, end));
}

std::vector<AttemptRecord> ParseHistory(const std::string& text) {
  std::vector<AttemptRecord> out;
  if (text.empty()) {
    return out;
  }
  const json parsed = json::parse(text, nullptr, false);
  if (!parsed.is_array()) {
    return out;
  }
  // Checked reads: the text comes from disk, and a field of another type must not throw.
  auto integer = [](const json& r, const char* name) -> int64_t {
    const auto it = r.find(name);
    return it != r.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
  };
  for (const json& r : parsed) {
    if (r.is_object()) {
      const auto error = r.find("error");
      out.push_back({static_cast<int>(integer(r, "attempt")), integer(r, "at"),
                     error != r.end() && error->is_string() ? error->get<std::string>() : ""});
    }
  }
  return out;
}
std::string AppendHistory(const std::string& text, int attempt, int64_t now_ms,
                          std::string_view error) {
  json history = text.empty() ? json::array() : json::parse(text, nullptr, false);
  if (!history.is_array()) {
    history = json::array();
  }
  history.push_back({{"attempt", attempt}, {"at", now_ms}, {"error", Cut(error)}});
  while (history.size() > kHistoryKeep) {
    history.erase(history.begin());
  }
  return history.dump(-1, ' ', false, json::error_handler_t::replace);
}

Status LeaseGone(std::string_view what) {
  return NotFoundError(what).With(kPayloadReason, "LEASE_NOT_FOUND");
}
Status LeaseExpired() {
  return FailedPreconditionError(
             "the lease ran out or was superseded by a newer delivery of the message")
      .With(kPayloadReason, "LEASE_EXPIRED")
      .With(kPayloadHttpStatus, "409");
}
Status UnknownQueue(std::string_view name) {
  return NotFoundError(fmt::format("no queue named '{}'", name))
      .With(kPayloadReason, "QUEUE_NOT_FOUND");
}

// ---- queue registry ---------------------------------------------------------------------------

// Totals kept per queue; mirrors the queue's row.
struct Counters {
  int64_t depth = 0;
  int64_t dead = 0;
  int64_t enqueued = 0;
  int64_t deduplicated = 0;
  int64_t acked = 0;
  int64_t nacked = 0;
  int64_t dead_lettered = 0;
  int64_t expired = 0;
  int64_t redriven = 0;

  bool Zero() const {
    return depth == 0 && dead == 0 && enqueued == 0 && deduplicated == 0 && acked == 0 &&
           nacked == 0 && dead_lettered == 0 && expired == 0 && redriven == 0;
  }
};

// Gauges and counters of one queue in the registry (null when there is no registry).
struct QueueMetrics {
  metrics::Gauge* depth = nullptr;
  metrics::Gauge* ready = nullptr;
  metrics::Gauge* in_flight = nullptr;
  metrics::Gauge* delayed = nullptr;
  metrics::Gauge* dead = nullptr;
  metrics::Gauge* oldest = nullptr;
  metrics::Counter* enqueued = nullptr;
  metrics::Counter* acked = nullptr;
  metrics::Counter* nacked = nullptr;
  metrics::Counter* dead_lettered = nullptr;
  metrics::Counter* expired = nullptr;
  metrics::Counter* deduplicated = nullptr;
  metrics::Counter* redriven = nullptr;
};

struct QueueInfo {
  int64_t id = 0;
  std::string name;
  QueueOptions options;  // written on the writer thread under queues_mu_; read elsewhere with it
  QueueMetrics metrics;  // set at commit; read and cleared (queue deleted) under queues_mu_
  bool deleted = false;  // writer thread only: operations still holding it find nothing
};
using QueuePtr = std::shared_ptr<QueueInfo>;

// ---- operations ------------------------------------------------------------------------------

// What the operations of one group commit share.
struct Group {
  store::Executor& tx;
  int64_t now_ms;
  std::map<int64_t, Counters> deltas;  // by queue id
  std::vector<int64_t> woken;          // queues that got messages visible now
};

class Op {
 public:
  virtual ~Op() = default;
  // Messages this operation writes at most (to size groups).
  virtual size_t Weight() const { return 1; }
  // Runs inside the group's transaction, in a savepoint of its own. A non-OK answer (a store
  // failure) or an exception rolls back this operation's writes alone and becomes its answer;
  // the rest of the group commits. An operation's own refusal (unknown lease...) is kept for
  // Finish instead.
  virtual Status Apply(Group& group) = 0;
  // After the commit: `commit` is the commit's status, or this operation's own failure from
  // Apply. Returns true to be kept as a long-poll waiter instead of answering.
  virtual bool Finish(const Status& commit, int64_t now_ms) = 0;
  // Whether the group's commit must survive a power loss before this operation is answered.
  // A lease need not: lost, it is as if it had expired (the message is delivered again).
  virtual bool NeedsSync() const { return true; }
};

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string_view LaneName(Lane lane) {
  switch (lane) {
    case Lane::kHigh:
      return "high";
    case Lane::kNormal:
      return "normal";
    case Lane::kLow:
      return "low";
  }
  return "normal";
}

StatusOr<Lane> ParseLane(std::string_view name) {
  if (name == "high") {
    return Lane::kHigh;
  }
  if (name == "normal") {
    return Lane::kNormal;
  }
  if (name == "low") {
    return Lane::kLow;
  }
  return InvalidArgumentError("priority must be \"high\", \"normal\" or \"low\"");
}

Status ValidateQueueName(std::string_view name) {
  const bool ok =
      !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
      });
  if (!ok) {
    return InvalidArgumentError("a queue name is 1..64 characters of A-Z a-z 0-9 . _ -")
        .With(kPayloadReason, "INVALID_QUEUE_NAME");
  }
  return OkStatus();
}

Status Validate(const QueueOptions& o) {
  if (o.max_attempts < 1 || o.max_attempts > 1000) {
    return InvalidArgumentError("max_attempts must be 1..1000");
  }
  if (o.default_visibility < milliseconds(1) || o.default_visibility > kMaxVisibility) {
    return InvalidArgumentError("default_visibility must be 1 ms..12 h");
  }
  if (o.dedupe_window < milliseconds(0) || o.dedupe_window > kMaxDelay) {
    return InvalidArgumentError("dedupe_window must be 0..30 days");
  }
  if (o.max_payload_bytes < 1 || o.max_payload_bytes > (16u << 20)) {
    return InvalidArgumentError("max_payload_bytes must be 1..16 MiB");
  }
  return OkStatus();
}

Status Validate(const BrokerOptions& o) {
  if (o.path.empty()) {
    return InvalidArgumentError("path is required");
  }
  if (o.max_enqueue_batch < 1 || o.max_enqueue_batch > 100'000) {
    return InvalidArgumentError("max_enqueue_batch must be 1..100000");
  }
  if (o.max_lease_batch < 1 || o.max_lease_batch > 100'000) {
    return InvalidArgumentError("max_lease_batch must be 1..100000");
  }
  if (o.max_lease_bytes < 1 || o.max_lease_bytes > (size_t{1} << 30)) {
    return InvalidArgumentError("max_lease_bytes must be 1..1 GiB");
  }
  if (o.max_wait < milliseconds(0) || o.max_wait > milliseconds(300'000)) {
    return InvalidArgumentError("max_wait must be 0..300 s");
  }
  if (o.max_pending_operations < 1 || o.max_waiters < 1 || o.max_group_messages < 1) {
    return InvalidArgumentError(
        "max_pending_operations, max_waiters and "
        "max_group_messages must be at least 1");
  }
  return OkStatus();
}

std::string FormatLeaseId(MessageId id, int attempt) {
  return fmt::format("{:016x}-{}", id, attempt);
}

StatusOr<LeaseRef> ParseLeaseId(std::string_view text) {
  auto bad = [] {
    return InvalidArgumentError("a lease id is <16 hex digits>-<attempt>")
        .With(kPayloadReason, "MALFORMED_LEASE_ID");
  };
  if (text.size() < 18 || text.size() > 24 || text[16] != '-') {
    return bad();
  }
  LeaseRef ref;
  for (size_t i = 0; i < 16; ++i) {
    const char c = text[i];
    int digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return bad();
    }
    ref.id = (ref.id << 4) | static_cast<uint64_t>(digit);
  }
  int64_t attempt = 0;
  for (size_t i = 17; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return bad();
    }
    attempt = attempt * 10 + (text[i] - '0');
  }
  if (attempt < 1 || attempt > 1'000'000 || ref.id > static_cast<uint64_t>(INT64_MAX)) {
    return bad();
  }
  ref.attempt = static_cast<int>(attempt);
  return ref;
}

// ---- sync forms ---------------------------------------------------------------------------------

namespace {
template <typename T>
StatusOr<T> Wait(const std::function<void(Callback<T>)>& start) {
  auto promise = std::make_shared<std::promise<StatusOr<T>>>();
  auto future = promise->get_future();
  start([promise](StatusOr<T> result) { promise->set_value(std::move(result)); });
  return future.get();
}
}  // namespace

StatusOr<std::vector<MessageId>> Broker::Enqueue(std::string_view queue,
                                                 std::vector<NewMessage> messages) {
  return Wait<std::vector<MessageId>>([&](Callback<std::vector<MessageId>> done) {
    EnqueueAsync(queue, std::move(messages), std::move(done));
  });
}
StatusOr<std::vector<Leased>> Broker::Lease(std::string_view queue, const LeaseOptions& options) {
  return Wait<std::vector<Leased>>(
      [&](Callback<std::vector<Leased>> done) { LeaseAsync(queue, options, std::move(done)); });
}
Status Broker::Ack(std::string_view queue, std::string_view lease_id) {
  return Wait<bool>([&](Callback<bool> done) { AckAsync(queue, lease_id, std::move(done)); })
      .status();
}
Status Broker::Nack(std::string_view queue, std::string_view lease_id, const NackOptions& options) {
  return Wait<bool>(
             [&](Callback<bool> done) { NackAsync(queue, lease_id, options, std::move(done)); })
      .status();
}
Status Broker::Fail(std::string_view queue, std::string_view lease_id, std::string error) {
  return Wait<bool>([&](Callback<bool> done) {
           FailAsync(queue, lease_id, std::move(error), std::move(done));
         })
      .status();
}
StatusOr<std::vector<Status>> Broker::AckBatch(std::string_view queue,
                                               const std::vector<std::string>& lease_ids) {
  return Wait<std::vector<Status>>([&](Callback<std::vector<Status>> done) {
    AckBatchAsync(queue, lease_ids, std::move(done));
  });
}
StatusOr<int64_t> Broker::Extend(std::string_view queue, std::string_view lease_id,
                                 milliseconds visibility) {
  return Wait<int64_t>(
      [&](Callback<int64_t> done) { ExtendAsync(queue, lease_id, visibility, std::move(done)); });
}

// ---- the SQLite broker
// ---------------------------------------------------------------------------

namespace {

class SqliteBroker;

// Moves the row `id` to the dead letters; `history` is its history including this attempt.
// Unparks the next message of its ordering key.
Status DeadLetterRow(Group& g, const QueueInfo& q, int64_t id, int attempts, std::string_view error,
                     const std::string& history);
// Makes the next message of `key` visible (the head was removed).
Status Unpark(Group& g, int64_t queue_id, const std::string& key);

Status Unpark(Group& g, int64_t queue_id, const std::string& key) {
  EVO_ASSIGN_OR_RETURN(
      store::Rows rows,
      g.tx.Query("SELECT id, available_at, due_at FROM queue_messages WHERE queue_id = ? AND "
                 "ordering_key = ? ORDER BY id LIMIT 1",
                 {queue_id, key}));
  if (rows.empty() || Int(rows[0][1]) != kParked) {
    return OkStatus();
  }
  const int64_t at = std::max(Int(rows[0][2]), g.now_ms);
  EVO_RETURN_IF_ERROR(
      g.tx.Exec("UPDATE queue_messages SET available_at = ? WHERE id = ?", {at, Int(rows[0][0])})
          .status());
  if (at <= g.now_ms) {
    g.woken.push_back(queue_id);
  }
  return OkStatus();
}

Status DeadLetterRow(Group& g, const QueueInfo& q, int64_t id, int attempts, std::string_view error,
                     const std::string& history) {
  EVO_RETURN_IF_ERROR(
      g.tx.Exec("INSERT INTO queue_dead_letters(id, queue_id, lane, attempts, deliveries, "
                "last_error, history, ordering_key, enqueued_at, dead_at, headers, payload) "
                "SELECT id, queue_id, lane, ?, attempt, ?, ?, ordering_key, enqueued_at, ?, "
                "headers, payload FROM queue_messages WHERE id = ?",
                {int64_t{attempts}, Cut(error), TextOrNull(history), g.now_ms, id})
          .status());
  EVO_ASSIGN_OR_RETURN(
      store::Rows gone,
      g.tx.Query("DELETE FROM queue_messages WHERE id = ? RETURNING ordering_key", {id}));
  Counters& d = g.deltas[q.id];
  d.depth -= 1;
  d.dead += 1;
  d.dead_lettered += 1;
  if (!gone.empty() && !Null(gone[0][0])) {
    EVO_RETURN_IF_ERROR(Unpark(g, q.id, Text(gone[0][0])));
  }
  return OkStatus();
}

// The row of a lease, checked: NotFound when gone, FailedPrecondition when not current.
// `attempt` counts deliveries over the message's life (it names leases, so a lease id is
// never reused, even after a redrive); the attempt a consumer sees and max_attempts counts
// is `attempt - attempt_base`, the deliveries since it was enqueued or redriven.
struct LeaseRow {
  int attempt = 0;  // deliveries since enqueue or redrive
  std::string history;
};
StatusOr<std::optional<LeaseRow>> FindLease(Group& g, const QueueInfo& q, const LeaseRef& ref,
                                            Status& failure) {
  EVO_ASSIGN_OR_RETURN(store::Rows rows,
                       g.tx.Query("SELECT attempt, leased_until, history, attempt_base FROM "
                                  "queue_messages "
                                  "WHERE id = ? AND queue_id = ?",
                                  {static_cast<int64_t>(ref.id), q.id}));
  if (rows.empty()) {
    failure = LeaseGone("no such message: it was acked, dead-lettered or never existed");
    return std::optional<LeaseRow>();
  }
  const store::Row& r = rows[0];
  if (Int(r[0]) != ref.attempt || Null(r[1]) || Int(r[1]) <= g.now_ms) {
    failure = LeaseExpired();
    return std::optional<LeaseRow>();
  }
  return std::optional<LeaseRow>(LeaseRow{static_cast<int>(Int(r[0]) - Int(r[3])), Text(r[2])});
}

// An operation on one lease (ack, nack, fail, extend).
template <typename T>
class LeaseOp : public Op {
 public:
  LeaseOp(QueuePtr q, LeaseRef ref, Callback<T> done)
      : q_(std::move(q)), ref_(ref), done_(std::move(done)) {}
  bool Finish(const Status& commit, int64_t) override {
    if (!commit.ok()) {
      done_(commit);
    } else if (!failure_.ok()) {
      done_(failure_);
    } else {
      done_(result_);
    }
    return false;
  }

 protected:
  bool Deleted() {
    if (q_->deleted) {
      failure_ = UnknownQueue(q_->name);
    }
    return q_->deleted;
  }
  QueuePtr q_;
  LeaseRef ref_;
  Callback<T> done_;
  Status failure_;
  T result_{};
};

// Deletes the leased message; `failure` says why not when the lease is not current.
Status AckOne(Group& g, const QueueInfo& q, const LeaseRef& ref, Status& failure) {
  EVO_ASSIGN_OR_RETURN(
      store::Rows rows,
      g.tx.Query("DELETE FROM queue_messages WHERE id = ? AND queue_id = ? AND attempt = ? AND "
                 "leased_until > ? RETURNING ordering_key",
                 {static_cast<int64_t>(ref.id), q.id, int64_t{ref.attempt}, g.now_ms}));
  if (rows.empty()) {
    EVO_ASSIGN_OR_RETURN(auto row, FindLease(g, q, ref, failure));
    if (row) {
      failure = InternalError("lease could not be acked");
    }
    return OkStatus();
  }
  Counters& d = g.deltas[q.id];
  d.depth -= 1;
  d.acked += 1;
  if (!Null(rows[0][0])) {
    return Unpark(g, q.id, Text(rows[0][0]));
  }
  return OkStatus();
}

class AckOp final : public LeaseOp<bool> {
 public:
  using LeaseOp::LeaseOp;
  Status Apply(Group& g) override {
    if (Deleted()) {
      return OkStatus();
    }
    EVO_RETURN_IF_ERROR(AckOne(g, *q_, ref_, failure_));
    result_ = failure_.ok();
    return OkStatus();
  }
};

class AckBatchOp final : public Op {
 public:
  AckBatchOp(QueuePtr q, std::vector<StatusOr<LeaseRef>> refs, Callback<std::vector<Status>> done)
      : q_(std::move(q)), refs_(std::move(refs)), done_(std::move(done)) {}
  size_t Weight() const override { return refs_.size(); }
  Status Apply(Group& g) override {
    results_.assign(refs_.size(), OkStatus());
    if (q_->deleted) {
      results_.assign(refs_.size(), UnknownQueue(q_->name));
      return OkStatus();
    }
    // One statement deletes every current lease of the batch: [[id, attempt], ...] joined to
    // the primary key. Those it did not delete are diagnosed one by one (the rare path).
    std::string pairs = "[";
    std::unordered_map<int64_t, size_t> index;  // message id -> position in the batch
    for (size_t i = 0; i < refs_.size(); ++i) {
      if (!refs_[i].ok()) {
        results_[i] = refs_[i].status();
        continue;
      }
      const auto id = static_cast<int64_t>(refs_[i]->id);
      if (!index.emplace(id, i).second) {
        results_[i] = LeaseGone("the same lease appears twice in the batch");
        continue;
      }
      pairs += index.size() == 1 ? "[" : ",[";
      pairs += std::to_string(id);
      pairs += ',';
      pairs += std::to_string(refs_[i]->attempt);
      pairs += ']';
    }
    pairs += ']';
    if (index.empty()) {
      return OkStatus();
    }
    EVO_ASSIGN_OR_RETURN(
        store::Rows gone,
        g.tx.Query("DELETE FROM queue_messages WHERE id IN (SELECT m.id FROM json_each(?) j "
                   "CROSS JOIN queue_messages m ON m.id = j.value ->> 0 WHERE m.attempt = j.value "
                   "->> 1 AND m.queue_id = ? AND m.leased_until > ?) RETURNING id, ordering_key",
                   {std::move(pairs), q_->id, g.now_ms}));
    Counters& d = g.deltas[q_->id];
    d.depth -= static_cast<int64_t>(gone.size());
    d.acked += static_cast<int64_t>(gone.size());
    for (const store::Row& r : gone.rows) {
      index.erase(Int(r[0]));
      if (!Null(r[1])) {
        EVO_RETURN_IF_ERROR(Unpark(g, q_->id, Text(r[1])));
      }
    }
    for (const auto& [id, i] : index) {
      EVO_ASSIGN_OR_RETURN(auto row, FindLease(g, *q_, *refs_[i], results_[i]));
      if (row) {
        results_[i] = InternalError("lease could not be acked");
      }
    }
    return OkStatus();
  }
  bool Finish(const Status& commit, int64_t) override {
    if (commit.ok()) {
      done_(std::move(results_));
    } else {
      done_(commit);
    }
    return false;
  }

 private:
  QueuePtr q_;
  std::vector<StatusOr<LeaseRef>> refs_;
  Callback<std::vector<Status>> done_;
  std::vector<Status> results_;
};

class NackOp final : public LeaseOp<bool> {
 public:
  NackOp(QueuePtr q, LeaseRef ref, NackOptions options, bool permanent, Callback<bool> done)
      : LeaseOp(std::move(q), ref, std::move(done)),
        options_(std::move(options)),
        permanent_(permanent) {}
  Status Apply(Group& g) override {
    if (Deleted()) {
      return OkStatus();
    }
    EVO_ASSIGN_OR_RETURN(auto row, FindLease(g, *q_, ref_, failure_));
    if (!row) {
      return OkStatus();
    }
    result_ = true;
    if (!permanent_ && !options_.count_attempt) {
      // Not a failed attempt: the delivery is given back and the budget restored.
      const int64_t at = g.now_ms + options_.delay.count();
      EVO_RETURN_IF_ERROR(g.tx.Exec("UPDATE queue_messages SET available_at = ?, leased_until = "
                                    "NULL, attempt_base = attempt_base + 1 WHERE id = ?",
                                    {at, static_cast<int64_t>(ref_.id)})
                              .status());
      if (at <= g.now_ms) {
        g.woken.push_back(q_->id);
      }
      return OkStatus();
    }
    const std::string error =
        options_.error.empty() ? (permanent_ ? "failed" : "nacked") : options_.error;
    const std::string history = AppendHistory(row->history, row->attempt, g.now_ms, error);
    g.deltas[q_->id].nacked += 1;
    if (permanent_ || row->attempt >= q_->options.max_attempts) {
      return DeadLetterRow(g, *q_, static_cast<int64_t>(ref_.id), row->attempt, error, history);
    }
    const int64_t at = g.now_ms + options_.delay.count();
    EVO_RETURN_IF_ERROR(g.tx.Exec("UPDATE queue_messages SET available_at = ?, leased_until = "
                                  "NULL, history = ? WHERE id = ?",
                                  {at, history, static_cast<int64_t>(ref_.id)})
                            .status());
    if (at <= g.now_ms) {
      g.woken.push_back(q_->id);
    }
    return OkStatus();
  }

 private:
  NackOptions options_;
  bool permanent_;
};

class ExtendOp final : public LeaseOp<int64_t> {
 public:
  ExtendOp(QueuePtr q, LeaseRef ref, milliseconds visibility, Callback<int64_t> done)
      : LeaseOp(std::move(q), ref, std::move(done)), visibility_(visibility) {}
  Status Apply(Group& g) override {
    if (Deleted()) {
      return OkStatus();
    }
    const int64_t until = g.now_ms + visibility_.count();
    EVO_ASSIGN_OR_RETURN(
        store::ExecResult r,
        g.tx.Exec("UPDATE queue_messages SET available_at = ?, leased_until = ? WHERE id = ? AND "
                  "queue_id = ? AND attempt = ? AND leased_until > ?",
                  {until, until, static_cast<int64_t>(ref_.id), q_->id, int64_t{ref_.attempt},
                   g.now_ms}));
    if (r.rows_affected == 0) {
      EVO_ASSIGN_OR_RETURN(auto row, FindLease(g, *q_, ref_, failure_));
      if (row) {
        failure_ = InternalError("lease could not be extended");
      }
      return OkStatus();
    }
    result_ = until;
    return OkStatus();
  }

 private:
  milliseconds visibility_;
};

class EnqueueOp final : public Op {
 public:
  EnqueueOp(QueuePtr q, std::vector<NewMessage> messages, std::vector<MessageId> ids,
            Callback<std::vector<MessageId>> done)
      : q_(std::move(q)),
        messages_(std::move(messages)),
        ids_(std::move(ids)),
        done_(std::move(done)) {}
  size_t Weight() const override { return messages_.size(); }

  Status Apply(Group& g) override {
    if (q_->deleted) {
      failure_ = UnknownQueue(q_->name);
      return OkStatus();
    }
    Counters& d = g.deltas[q_->id];
    bool woke = false;
    for (size_t i = 0; i < messages_.size(); ++i) {
      NewMessage& m = messages_[i];
      const auto id = static_cast<int64_t>(ids_[i]);
      if (!m.dedupe_key.empty()) {
        EVO_ASSIGN_OR_RETURN(
            store::Rows seen,
            g.tx.Query("SELECT message_id, expires_at FROM queue_dedupe WHERE queue_id = ? AND "
                       "key = ?",
                       {q_->id, m.dedupe_key}));
        if (!seen.empty() && Int(seen[0][1]) > g.now_ms) {
          ids_[i] = static_cast<MessageId>(Int(seen[0][0]));
          d.deduplicated += 1;
          continue;
        }
        EVO_RETURN_IF_ERROR(
            g.tx.Exec("INSERT OR REPLACE INTO queue_dedupe(queue_id, key, message_id, "
                      "expires_at) VALUES(?, ?, ?, ?)",
                      {q_->id, m.dedupe_key, id, g.now_ms + q_->options.dedupe_window.count()})
                .status());
      }
      const int64_t due = g.now_ms + m.delay.count();
      int64_t available = due;
      if (!m.ordering_key.empty()) {
        EVO_ASSIGN_OR_RETURN(store::Rows ahead,
                             g.tx.Query("SELECT 1 FROM queue_messages WHERE queue_id = ? AND "
                                        "ordering_key = ? LIMIT 1",
                                        {q_->id, m.ordering_key}));
        if (!ahead.empty()) {
          available = kParked;
        }
      }
      EVO_RETURN_IF_ERROR(
          g.tx.Exec(
                  "INSERT INTO queue_messages(id, queue_id, lane, available_at, due_at, "
                  "ordering_key, enqueued_at, headers, payload) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  {id, q_->id, int64_t{static_cast<int>(m.lane)}, available, due,
                   TextOrNull(m.ordering_key), g.now_ms, TextOrNull(HeadersJson(m.headers)),
                   store::Blob{std::move(m.payload)}})
              .status());
      d.depth += 1;
      d.enqueued += 1;
      woke = woke || available <= g.now_ms;
    }
    if (woke) {
      g.woken.push_back(q_->id);
    }
    return OkStatus();
  }

  bool Finish(const Status& commit, int64_t) override {
    if (!commit.ok()) {
      done_(commit);
    } else if (!failure_.ok()) {
      done_(failure_);
    } else {
      done_(std::move(ids_));
    }
    return false;
  }

 private:
  QueuePtr q_;
  Status failure_;
  std::vector<NewMessage> messages_;
  std::vector<MessageId> ids_;
  Callback<std::vector<MessageId>> done_;
};

class LeaseBatchOp final : public Op {
 public:
  bool NeedsSync() const override { return false; }
  LeaseBatchOp(QueuePtr q, size_t max, size_t max_bytes, milliseconds visibility,
               int64_t deadline_ms, Callback<std::vector<Leased>> done)
      : q_(std::move(q)),
        max_(max),
        max_bytes_(max_bytes),
        visibility_(visibility),
        deadline_ms_(deadline_ms),
        done_(std::move(done)) {}
  size_t Weight() const override { return max_; }
  int64_t queue_id() const { return q_->id; }
  int64_t deadline_ms() const { return deadline_ms_; }
  void Expire() { deadline_ms_ = 0; }

  Status Apply(Group& g) override {
    leased_.clear();
    if (q_->deleted) {
      failure_ = UnknownQueue(q_->name);
      return OkStatus();
    }
    const int64_t until = g.now_ms + visibility_.count();
    size_t bytes = 0;   // payload and header bytes taken so far
    bool full = false;  // the next message would go over max_bytes_
    for (int lane = 0; lane < kLaneCount && leased_.size() < max_ && !full; ++lane) {
      // The candidates, oldest first (index only but for the attempt columns and the sizes,
      // which SQLite reads without loading the payload).
      EVO_ASSIGN_OR_RETURN(
          store::Rows rows,
          g.tx.Query(
              "SELECT id, attempt, attempt_base, leased_until, history, length(payload) + "
              "coalesce(length(headers), 0) FROM queue_messages WHERE queue_id = ? AND "
              "lane = ? AND available_at <= ? ORDER BY available_at LIMIT ?",
              {q_->id, int64_t{lane}, g.now_ms, static_cast<int64_t>(max_ - leased_.size())}));
      if (rows.empty()) {
        continue;
      }
      std::string ids = "[";
      std::unordered_map<int64_t, size_t> order;
      for (const store::Row& r : rows.rows) {
        const int64_t id = Int(r[0]);
        const auto size = static_cast<size_t>(std::max<int64_t>(0, Int(r[5])));
        if (leased_.size() + order.size() > 0 && bytes + size > max_bytes_) {
          full = true;  // stop here, so that what is left keeps its order
          break;
        }
        if (!Null(r[3])) {
          // Its last lease ran out: that delivery counts as a failed attempt (rare path).
          const int round = static_cast<int>(Int(r[1]) - Int(r[2]));
          g.deltas[q_->id].expired += 1;
          const std::string history = AppendHistory(Text(r[4]), round, g.now_ms, "lease expired");
          if (round >= q_->options.max_attempts) {
            EVO_RETURN_IF_ERROR(DeadLetterRow(g, *q_, id, round, "lease expired", history));
            continue;
          }
          EVO_RETURN_IF_ERROR(
              g.tx.Exec("UPDATE queue_messages SET history = ? WHERE id = ?", {history, id})
                  .status());
        }
        bytes += size;
        ids += order.empty() ? "" : ",";
        ids += std::to_string(id);
        order.emplace(id, order.size());
      }
      ids += ']';
      if (order.empty()) {
        continue;
      }
      // One statement leases them all.
      EVO_ASSIGN_OR_RETURN(
          store::Rows leased,
          g.tx.Query("UPDATE queue_messages SET attempt = attempt + 1, available_at = ?, "
                     "leased_until = ? WHERE id IN (SELECT value FROM json_each(?)) RETURNING id, "
                     "attempt, attempt_base, ordering_key, enqueued_at, headers, payload",
                     {until, until, std::move(ids)}));
      const size_t first = leased_.size();
      leased_.resize(first + order.size());
      for (store::Row& r : leased.rows) {
        const auto at = order.find(Int(r[0]));
        if (at == order.end()) {
          continue;
        }
        Leased& l = leased_[first + at->second];
        l.id = static_cast<MessageId>(Int(r[0]));
        const int attempt = static_cast<int>(Int(r[1]));  // deliveries ever (names leases)
        l.lease_id = FormatLeaseId(l.id, attempt);
        l.attempt = attempt - static_cast<int>(Int(r[2]));  // since enqueue or redrive
        l.ordering_key = Text(r[3]);
        l.lane = static_cast<Lane>(lane);
        l.enqueued_unix_ms = Int(r[4]);
        l.headers = ParseHeaders(Text(r[5]));
        l.payload = Bytes(r[6]);
        l.lease_expires_unix_ms = until;
      }
    }
    return OkStatus();
  }

  bool Finish(const Status& commit, int64_t now_ms) override {
    if (!commit.ok() || !failure_.ok()) {
      done_(commit.ok() ? failure_ : commit);
      return false;
    }
    if (leased_.empty() && now_ms < deadline_ms_) {
      return true;  // keep waiting
    }
    done_(std::move(leased_));
    leased_.clear();
    return false;
  }

 private:
  QueuePtr q_;
  size_t max_;
  size_t max_bytes_;
  milliseconds visibility_;
  int64_t deadline_ms_;
  Callback<std::vector<Leased>> done_;
  std::vector<Leased> leased_;
  Status failure_;
};

// Runs `fn` in the group and answers `done` with its result.
template <typename T>
class FunctionOp final : public Op {
 public:
  FunctionOp(std::function<StatusOr<T>(Group&)> fn, Callback<T> done)
      : fn_(std::move(fn)), done_(std::move(done)) {}
  Status Apply(Group& g) override {
    result_ = fn_(g);
    // A failure rolls back what `fn` wrote before it (its savepoint), and is its answer.
    return result_.status();
  }
  bool Finish(const Status& commit, int64_t) override {
    done_(commit.ok() ? std::move(result_) : StatusOr<T>(commit));
    return false;
  }

 private:
  std::function<StatusOr<T>(Group&)> fn_;
  Callback<T> done_;
  StatusOr<T> result_ = InternalError("not run");
};

// ------------------------------------------------------------------------------------------------

class SqliteBroker final : public Broker {
 public:
  SqliteBroker(const BrokerOptions& options, const Clock& clock, IdSource ids,
               metrics::Registry* registry, std::unique_ptr<store::Database> db)
      : options_(options),
        clock_(clock),
        ids_(std::move(ids)),
        registry_(registry),
        db_(std::move(db)) {
    if (registry_ != nullptr) {
      auto gauge = [&](const char* name, const char* help) {
        return &registry_->AddGauge(name, help, {"queue"});
      };
      auto counter = [&](const char* name, const char* help) {
        return &registry_->AddCounter(name, help, {"queue"});
      };
      families_.depth = gauge("evo_queue_depth", "Messages not yet acked or dead-lettered.");
      families_.ready = gauge("evo_queue_ready", "Messages visible now.");
      families_.in_flight = gauge("evo_queue_in_flight", "Messages leased, lease running.");
      families_.delayed =
          gauge("evo_queue_delayed", "Messages not yet visible (delayed, or behind their key).");
      families_.dead = gauge("evo_queue_dead_letters", "Messages in the dead-letter list.");
      families_.oldest = gauge("evo_queue_oldest_ready_age_seconds",
                               "How long the oldest visible message has waited.");
      families_.enqueued = counter("evo_queue_enqueued_total", "Messages enqueued.");
      families_.acked = counter("evo_queue_acked_total", "Messages acked.");
      families_.nacked = counter("evo_queue_nacked_total", "Deliveries nacked or failed.");
      families_.dead_lettered =
          counter("evo_queue_dead_lettered_total", "Messages moved to dead letters.");
      families_.expired = counter("evo_queue_expired_leases_total", "Leases that ran out.");
      families_.deduplicated =
          counter("evo_queue_deduplicated_total", "Enqueues answered by the dedupe window.");
      families_.redriven = counter("evo_queue_redriven_total", "Dead letters redriven.");
      commits_ = &registry_
                      ->AddCounter("evo_queue_commits_total",
                                   "Group commits (transactions) of the queue writer.")
                      .Get();
      committed_ops_ = &registry_
                            ->AddCounter("evo_queue_committed_operations_total",
                                         "Operations carried by the group commits.")
                            .Get();
    }
  }

  ~SqliteBroker() override { Stop(); }

  Status Load() {
    if (!options_.read_only) {
      EVO_RETURN_IF_ERROR(db_->Migrate("queue", Migrations()));
    }
    // A read-only open of a file from before queue_clock has none: the wall clock it is.
    if (auto clock = db_->QueryOne("SELECT high_water FROM queue_clock WHERE id = 1"); clock.ok()) {
      stored_high_water_ = Int((*clock)[0]);
      high_water_.store(stored_high_water_);
      if (const int64_t wall = UnixMillis(clock_.Now()); wall < stored_high_water_) {
        spdlog::warn(
            "queue: the clock is {} ms behind the last time the queue used; the queue's time "
            "stands still until it catches up (delays and leases wait that much longer)",
            stored_high_water_ - wall);
      }
    } else if (!options_.read_only) {
      return clock.status();
    }
    EVO_ASSIGN_OR_RETURN(store::Rows rows, db_->Query(std::string(kQueueColumns)));
    std::lock_guard lock(queues_mu_);
    for (const store::Row& r : rows.rows) {
      QueuePtr q = FromRow(r);
      queues_[q->name] = q;
      by_id_[q->id] = q;
    }
    if (!options_.read_only) {
      // RETURNING and multi-row statements use temporary storage: keep it in memory.
      EVO_RETURN_IF_ERROR(db_->Exec("PRAGMA temp_store=MEMORY").status());
      writer_ = std::thread([this] { WriterLoop(); });
      gauges_ = std::thread([this] { GaugeLoop(); });
    }
    return OkStatus();
  }

  static constexpr std::string_view kQueueColumns =
      "SELECT id, name, max_attempts, visibility_ms, dedupe_window_ms, max_payload_bytes FROM "
      "queue_queues";

  QueuePtr FromRow(const store::Row& r) {
    auto q = std::make_shared<QueueInfo>();
    q->id = Int(r[0]);
    q->name = Text(r[1]);
    q->options.max_attempts = static_cast<int>(Int(r[2]));
    q->options.default_visibility = milliseconds(Int(r[3]));
    q->options.dedupe_window = milliseconds(Int(r[4]));
    q->options.max_payload_bytes = static_cast<size_t>(Int(r[5]));
    AttachMetrics(*q);
    return q;
  }

  // ---- queues ----

  Status DeclareQueue(std::string_view name, const QueueOptions& options) override {
    EVO_RETURN_IF_ERROR(ValidateQueueName(name));
    EVO_RETURN_IF_ERROR(Validate(options));
    std::string n(name);
    return Run<bool>([this, n, options](Group& g) -> StatusOr<bool> {
             QueuePtr existing = Find(n);
             for (const QueuePtr& p : pending_queues_) {
               if (p->name == n) {
                 existing = p;
               }
             }
             if (existing != nullptr && existing->deleted) {
               existing = nullptr;  // deleted earlier in this group: declared anew
             }
             if (existing) {
               EVO_RETURN_IF_ERROR(
                   g.tx.Exec("UPDATE queue_queues SET max_attempts = ?, visibility_ms = ?, "
                             "dedupe_window_ms = ?, max_payload_bytes = ? WHERE id = ?",
                             {int64_t{options.max_attempts}, options.default_visibility.count(),
                              options.dedupe_window.count(),
                              static_cast<int64_t>(options.max_payload_bytes), existing->id})
                       .status());
               std::lock_guard lock(queues_mu_);
               existing->options = options;
               return true;
             }
             EVO_ASSIGN_OR_RETURN(
                 store::Rows rows,
                 g.tx.Query("INSERT INTO queue_queues(name, max_attempts, visibility_ms, "
                            "dedupe_window_ms, max_payload_bytes, created_at) VALUES(?, ?, ?, ?, "
                            "?, ?) RETURNING id",
                            {n, int64_t{options.max_attempts}, options.default_visibility.count(),
                             options.dedupe_window.count(),
                             static_cast<int64_t>(options.max_payload_bytes), g.now_ms}));
             auto q = std::make_shared<QueueInfo>();
             q->id = Int(rows[0][0]);
             q->name = n;
             q->options = options;
             // Visible to callers, and given its metric series, only once committed (see
             // ApplyCommitted).
             pending_queues_.push_back(q);
             return true;
           })
        .status();
  }

  Status DeleteQueue(std::string_view name) override {
    EVO_ASSIGN_OR_RETURN(QueuePtr q, Get(name));
    return Run<bool>([this, q](Group& g) -> StatusOr<bool> {
             for (const char* sql : {"DELETE FROM queue_messages WHERE queue_id = ?",
                                     "DELETE FROM queue_dead_letters WHERE queue_id = ?",
                                     "DELETE FROM queue_dedupe WHERE queue_id = ?",
                                     "DELETE FROM queue_queues WHERE id = ?"}) {
               EVO_RETURN_IF_ERROR(g.tx.Exec(sql, {q->id}).status());
             }
             g.deltas.erase(q->id);
             q->deleted = true;
             deleted_queues_.push_back(q);
             return true;
           })
        .status();
  }

  StatusOr<std::vector<QueueStats>> ListQueues() override {
    std::vector<QueuePtr> all;
    {
      std::lock_guard lock(queues_mu_);
      for (const auto& [name, q] : queues_) {
        all.push_back(q);
      }
    }
    std::vector<QueueStats> out;
    for (const QueuePtr& q : all) {
      EVO_ASSIGN_OR_RETURN(QueueStats s, StatsOf(*q, *db_));
      out.push_back(std::move(s));
    }
    return out;
  }

  StatusOr<QueueStats> Stats(std::string_view name) override {
    EVO_ASSIGN_OR_RETURN(QueuePtr q, Get(name));
    return StatsOf(*q, *db_);
  }

  // ---- messages ----

  void EnqueueAsync(std::string_view queue, std::vector<NewMessage> messages,
                    Callback<std::vector<MessageId>> done) override {
    auto q = Get(queue);
    if (!q.ok()) {
      return done(q.status());
    }
    if (Status s = CheckMessages(OptionsOf(**q), messages); !s.ok()) {
      return done(s);
    }
    if (options_.read_only) {
      return done(FailedPreconditionError("the queue database is open read-only"));
    }
    auto ids = ids_(messages.size());
    if (!ids.ok()) {
      return done(ids.status());
    }
    if (ids->size() != messages.size()) {
      return done(InternalError("the id source returned the wrong number of ids"));
    }
    Submit(std::make_unique<EnqueueOp>(*std::move(q), std::move(messages), *std::move(ids),
                                       std::move(done)));
  }

  void LeaseAsync(std::string_view queue, const LeaseOptions& options,
                  Callback<std::vector<Leased>> done) override {
    auto q = Get(queue);
    if (!q.ok()) {
      return done(q.status());
    }
    if (options.max < 1 || options.max > options_.max_lease_batch) {
      return done(InvalidArgumentError(fmt::format("max must be 1..{}", options_.max_lease_batch))
                      .With(kPayloadPointer, "#/max"));
    }
    if (options.visibility < milliseconds(0) || options.visibility > kMaxVisibility) {
      return done(InvalidArgumentError("visibility must be 0..12 h")
                      .With(kPayloadPointer, "#/visibilitySeconds"));
    }
    if (options.wait < milliseconds(0) || options.wait > options_.max_wait) {
      return done(InvalidArgumentError(
                      fmt::format("wait must be 0..{} s", options_.max_wait.count() / 1000))
                      .With(kPayloadPointer, "#/waitSeconds"));
    }
    if (options.max_bytes > options_.max_lease_bytes) {
      return done(
          InvalidArgumentError(fmt::format("max_bytes must be 0..{}", options_.max_lease_bytes))
              .With(kPayloadPointer, "#/maxBytes"));
    }
    const milliseconds visibility =
        options.visibility.count() > 0 ? options.visibility : OptionsOf(**q).default_visibility;
    const int64_t deadline = options.wait.count() > 0 ? NowMs() + options.wait.count() : 0;
    const size_t max_bytes = options.max_bytes > 0 ? options.max_bytes : options_.max_lease_bytes;
    Submit(std::make_unique<LeaseBatchOp>(*std::move(q), options.max, max_bytes, visibility,
                                          deadline, std::move(done)));
  }

  void AckAsync(std::string_view queue, std::string_view lease_id, Callback<bool> done) override {
    auto target = Target(queue, lease_id);
    if (!target.ok()) {
      return done(target.status());
    }
    Submit(std::make_unique<AckOp>(target->first, target->second, std::move(done)));
  }

  void AckBatchAsync(std::string_view queue, const std::vector<std::string>& lease_ids,
                     Callback<std::vector<Status>> done) override {
    auto q = Get(queue);
    if (!q.ok()) {
      return done(q.status());
    }
    if (lease_ids.empty() || lease_ids.size() > options_.max_lease_batch) {
      return done(InvalidArgumentError(
          fmt::format("an ack batch holds 1..{} lease ids", options_.max_lease_batch)));
    }
    std::vector<StatusOr<LeaseRef>> refs;
    refs.reserve(lease_ids.size());
    for (const std::string& id : lease_ids) {
      refs.push_back(ParseLeaseId(id));
    }
    Submit(std::make_unique<AckBatchOp>(*std::move(q), std::move(refs), std::move(done)));
  }

  void NackAsync(std::string_view queue, std::string_view lease_id, const NackOptions& options,
                 Callback<bool> done) override {
    auto target = Target(queue, lease_id);
    if (!target.ok()) {
      return done(target.status());
    }
    if (options.delay < milliseconds(0) || options.delay > kMaxDelay) {
      return done(
          InvalidArgumentError("delay must be 0..30 days").With(kPayloadPointer, "#/delaySeconds"));
    }
    Submit(
        std::make_unique<NackOp>(target->first, target->second, options, false, std::move(done)));
  }

  void FailAsync(std::string_view queue, std::string_view lease_id, std::string error,
                 Callback<bool> done) override {
    auto target = Target(queue, lease_id);
    if (!target.ok()) {
      return done(target.status());
    }
    NackOptions options;
    options.error = std::move(error);
    Submit(std::make_unique<NackOp>(target->first, target->second, std::move(options), true,
                                    std::move(done)));
  }

  void ExtendAsync(std::string_view queue, std::string_view lease_id, milliseconds visibility,
                   Callback<int64_t> done) override {
    auto target = Target(queue, lease_id);
    if (!target.ok()) {
      return done(target.status());
    }
    if (visibility < milliseconds(1) || visibility > kMaxVisibility) {
      return done(InvalidArgumentError("visibility must be 1 ms..12 h")
                      .With(kPayloadPointer, "#/visibilitySeconds"));
    }
    Submit(std::make_unique<ExtendOp>(target->first, target->second, visibility, std::move(done)));
  }

  // ---- dead letters ----

  StatusOr<DeadLetterPage> ListDeadLetters(std::string_view queue, std::optional<MessageId> after,
                                           size_t limit) override {
    EVO_ASSIGN_OR_RETURN(QueuePtr q, Get(queue));
    if (limit < 1 || limit > 1000) {
      return InvalidArgumentError("limit must be 1..1000");
    }
    // Row by row, so that a page never holds more than max_lease_bytes of payloads (but at
    // least one dead letter).
    DeadLetterPage page;
    size_t bytes = 0;
    Status s = db_->QueryEach(
        "SELECT id, lane, attempts, last_error, history, ordering_key, enqueued_at, "
        "dead_at, headers, payload FROM queue_dead_letters WHERE queue_id = ? AND id "
        "> ? ORDER BY id LIMIT ?",
        {q->id, static_cast<int64_t>(after.value_or(0)), static_cast<int64_t>(limit + 1)},
        [&](const store::Row& row) -> Status {
          store::Row r = row;
          DeadLetter d = ToDeadLetter(r);
          size_t size = d.payload.size();
          for (const auto& [name, value] : d.headers) {
            size += name.size() + value.size();
          }
          if (page.items.size() == limit ||
              (!page.items.empty() && bytes + size > options_.max_lease_bytes)) {
            page.next_after = page.items.back().id;
            return CancelledError("page full");
          }
          bytes += size;
          page.items.push_back(std::move(d));
          return OkStatus();
        });
    if (!s.ok() && !page.next_after) {
      return s;
    }
    return page;
  }

  StatusOr<DeadLetter> GetDeadLetter(std::string_view queue, MessageId id) override {
    EVO_ASSIGN_OR_RETURN(QueuePtr q, Get(queue));
    EVO_ASSIGN_OR_RETURN(
        store::Rows rows,
        db_->Query("SELECT id, lane, attempts, last_error, history, ordering_key, enqueued_at, "
                   "dead_at, headers, payload FROM queue_dead_letters WHERE queue_id = ? AND id "
                   "= ?",
                   {q->id, static_cast<int64_t>(id)}));
    if (rows.empty()) {
      return NotFoundError("no such dead letter").With(kPayloadReason, "DEAD_LETTER_NOT_FOUND");
    }
    return ToDeadLetter(rows.rows[0]);
  }

  StatusOr<int64_t> Redrive(std::string_view queue, const DeadLetterFilter& filter) override {
    return ForDeadLetters(queue, filter, /*redrive=*/true);
  }
  StatusOr<int64_t> PurgeDeadLetters(std::string_view queue,
                                     const DeadLetterFilter& filter) override {
    return ForDeadLetters(queue, filter, /*redrive=*/false);
  }

  void EndLongPolls() override {
    {
      std::lock_guard lock(mu_);
      long_polls_ended_ = true;
    }
    cv_.notify_all();
  }

  void Stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        return;
      }
      stopping_ = true;
    }
    cv_.notify_all();
    stop_cv_.notify_all();
    if (writer_.joinable()) {
      writer_.join();
    }
    if (gauges_.joinable()) {
      gauges_.join();
    }
  }

 private:
  struct Families {
    metrics::Family<metrics::Gauge>* depth = nullptr;
    metrics::Family<metrics::Gauge>* ready = nullptr;
    metrics::Family<metrics::Gauge>* in_flight = nullptr;
    metrics::Family<metrics::Gauge>* delayed = nullptr;
    metrics::Family<metrics::Gauge>* dead = nullptr;
    metrics::Family<metrics::Gauge>* oldest = nullptr;
    metrics::Family<metrics::Counter>* enqueued = nullptr;
    metrics::Family<metrics::Counter>* acked = nullptr;
    metrics::Family<metrics::Counter>* nacked = nullptr;
    metrics::Family<metrics::Counter>* dead_lettered = nullptr;
    metrics::Family<metrics::Counter>* expired = nullptr;
    metrics::Family<metrics::Counter>* deduplicated = nullptr;
    metrics::Family<metrics::Counter>* redriven = nullptr;
  };

  // Drops the queue's series from the registry (a deleted queue). Under queues_mu_, which
  // every user of the series pointers holds.
  void DetachMetrics(QueueInfo& q) {
    if (registry_ == nullptr || q.metrics.depth == nullptr) {
      return;
    }
    const metrics::LabelValues l = {q.name};
    for (auto* family : {families_.depth, families_.ready, families_.in_flight, families_.delayed,
                         families_.dead, families_.oldest}) {
      family->Remove(l);
    }
    for (auto* family :
         {families_.enqueued, families_.acked, families_.nacked, families_.dead_lettered,
          families_.expired, families_.deduplicated, families_.redriven}) {
      family->Remove(l);
    }
    q.metrics = QueueMetrics{};
  }

  void AttachMetrics(QueueInfo& q) {
    if (registry_ == nullptr) {
      return;
    }
    const metrics::LabelValues l = {q.name};
    QueueMetrics& m = q.metrics;
    m.depth = &families_.depth->Get(l);
    m.ready = &families_.ready->Get(l);
    m.in_flight = &families_.in_flight->Get(l);
    m.delayed = &families_.delayed->Get(l);
    m.dead = &families_.dead->Get(l);
    m.oldest = &families_.oldest->Get(l);
    m.enqueued = &families_.enqueued->Get(l);
    m.acked = &families_.acked->Get(l);
    m.nacked = &families_.nacked->Get(l);
    m.dead_lettered = &families_.dead_lettered->Get(l);
    m.expired = &families_.expired->Get(l);
    m.deduplicated = &families_.deduplicated->Get(l);
    m.redriven = &families_.redriven->Get(l);
  }

  // The broker's time: the wall clock, but never before a time it already used, in this
  // process or (through queue_clock) before a restart. A wall clock stepped back therefore
  // holds the queue's time still until it catches up, instead of hiding messages that were
  // ready and stretching nothing but delays and leases by the step.
  int64_t NowMs() const {
    const int64_t wall = UnixMillis(clock_.Now());
    int64_t seen = high_water_.load(std::memory_order_relaxed);
    while (wall > seen &&
           !high_water_.compare_exchange_weak(seen, wall, std::memory_order_relaxed)) {
    }
    return std::max(wall, seen);
  }

  QueuePtr Find(const std::string& name) {
    std::lock_guard lock(queues_mu_);
    auto it = queues_.find(name);
    return it == queues_.end() ? nullptr : it->second;
  }
  StatusOr<QueuePtr> Get(std::string_view name) {
    EVO_RETURN_IF_ERROR(ValidateQueueName(name));
    QueuePtr q = Find(std::string(name));
    if (q) {
      return q;
    }
    // Declared by another process (the CLI, another instance) since this one started?
    EVO_ASSIGN_OR_RETURN(
        store::Rows rows,
        db_->Query(std::string(kQueueColumns) + " WHERE name = ?", {std::string(name)}));
    if (rows.empty()) {
      return UnknownQueue(name);
    }
    std::lock_guard lock(queues_mu_);
    auto [it, inserted] = queues_.try_emplace(std::string(name), nullptr);
    if (inserted) {
      it->second = FromRow(rows[0]);
    }
    return it->second;
  }
  StatusOr<std::pair<QueuePtr, LeaseRef>> Target(std::string_view queue,
                                                 std::string_view lease_id) {
    EVO_ASSIGN_OR_RETURN(QueuePtr q, Get(queue));
    EVO_ASSIGN_OR_RETURN(LeaseRef ref, ParseLeaseId(lease_id));
    return std::make_pair(std::move(q), ref);
  }

  // A queue's settings as read off the writer thread, which changes them (DeclareQueue).
  QueueOptions OptionsOf(const QueueInfo& q) {
    std::lock_guard lock(queues_mu_);
    return q.options;
  }

  Status CheckMessages(const QueueOptions& q, const std::vector<NewMessage>& messages) const {
    if (messages.empty() || messages.size() > options_.max_enqueue_batch) {
      return InvalidArgumentError(
                 fmt::format("a batch holds 1..{} messages", options_.max_enqueue_batch))
          .With(kPayloadReason, "BATCH_SIZE");
    }
    for (size_t i = 0; i < messages.size(); ++i) {
      const NewMessage& m = messages[i];
      const std::string at = messages.size() > 1 ? fmt::format("#/messages/{}", i) : "#";
      if (m.payload.size() > q.max_payload_bytes) {
        return InvalidArgumentError(fmt::format("payload is {} bytes; the queue takes at most {}",
                                                m.payload.size(), q.max_payload_bytes))
            .With(kPayloadPointer, at + "/payload")
            .With(kPayloadHttpStatus, "413");
      }
      if (m.delay < milliseconds(0) || m.delay > kMaxDelay) {
        return InvalidArgumentError("delay must be 0..30 days")
            .With(kPayloadPointer, at + "/delaySeconds");
      }
      if (m.ordering_key.size() > 256) {
        return InvalidArgumentError("orderingKey is at most 256 bytes")
            .With(kPayloadPointer, at + "/orderingKey");
      }
      if (m.dedupe_key.size() > 256) {
        return InvalidArgumentError("dedupeKey is at most 256 bytes")
            .With(kPayloadPointer, at + "/dedupeKey");
      }
      if (m.headers.size() > 64) {
        return InvalidArgumentError("at most 64 headers").With(kPayloadPointer, at + "/headers");
      }
      for (const auto& [name, value] : m.headers) {
        if (name.empty() || name.size() > 128 || value.size() > 4096) {
          return InvalidArgumentError("header names are 1..128 bytes, values up to 4 KiB")
              .With(kPayloadPointer, at + "/headers");
        }
      }
    }
    return OkStatus();
  }

  DeadLetter ToDeadLetter(store::Row& r) {
    DeadLetter d;
    d.id = static_cast<MessageId>(Int(r[0]));
    d.lane = static_cast<Lane>(std::clamp<int64_t>(Int(r[1]), 0, 2));
    d.attempts = static_cast<int>(Int(r[2]));
    d.last_error = Text(r[3]);
    d.history = ParseHistory(Text(r[4]));
    d.ordering_key = Text(r[5]);
    d.enqueued_unix_ms = Int(r[6]);
    d.dead_unix_ms = Int(r[7]);
    d.headers = ParseHeaders(Text(r[8]));
    d.payload = Bytes(r[9]);
    return d;
  }

  StatusOr<QueueStats> StatsOf(const QueueInfo& q, store::Executor& db) {
    QueueStats s;
    {
      std::lock_guard lock(queues_mu_);
      s.name = q.name;
      s.options = q.options;
    }
    // The counters are read from the queue's row, not from memory, so that what another
    // process (the CLI, another instance) changed shows too.
    auto counters = db.QueryOne(
        "SELECT depth, dead, enqueued_total, deduplicated_total, acked_total, nacked_total, "
        "dead_lettered_total, expired_leases_total, redriven_total FROM queue_queues WHERE id "
        "= ?",
        {q.id});
    if (!counters.ok()) {
      return counters.status().code() == StatusCode::kNotFound ? UnknownQueue(q.name)
                                                               : counters.status();
    }
    const store::Row& c = *counters;
    s.depth = Int(c[0]);
    s.dead_letters = Int(c[1]);
    s.enqueued_total = Int(c[2]);
    s.deduplicated_total = Int(c[3]);
    s.acked_total = Int(c[4]);
    s.nacked_total = Int(c[5]);
    s.dead_lettered_total = Int(c[6]);
    s.expired_leases_total = Int(c[7]);
    s.redriven_total = Int(c[8]);
    const int64_t now = NowMs();
    // Only the not-yet-visible part of the visibility index is counted: leased, delayed and
    // parked messages, normally few. Leased rows have available_at == leased_until.
    EVO_ASSIGN_OR_RETURN(
        store::Row future,
        db.QueryOne("SELECT count(*), coalesce(sum(leased_until IS NOT NULL), 0) FROM "
                    "queue_messages WHERE queue_id = ? AND lane IN (0, 1, 2) AND available_at > ?",
                    {q.id, now}));
    s.in_flight = Int(future[1]);
    s.delayed = Int(future[0]) - s.in_flight;
    s.ready = std::max<int64_t>(0, s.depth - Int(future[0]));
    int64_t oldest = INT64_MAX;
    for (int lane = 0; lane < kLaneCount; ++lane) {
      EVO_ASSIGN_OR_RETURN(store::Row row,
                           db.QueryOne("SELECT min(available_at) FROM queue_messages WHERE "
                                       "queue_id = ? AND lane = ?",
                                       {q.id, int64_t{lane}}));
      if (!Null(row[0]) && Int(row[0]) <= now) {
        oldest = std::min(oldest, Int(row[0]));
      }
    }
    s.oldest_ready_age_seconds =
        oldest == INT64_MAX ? 0.0 : static_cast<double>(now - oldest) / 1000.0;
    return s;
  }

  StatusOr<int64_t> ForDeadLetters(std::string_view queue, const DeadLetterFilter& filter,
                                   bool redrive) {
    EVO_ASSIGN_OR_RETURN(QueuePtr q, Get(queue));
    if (filter.ids.size() > 1000) {
      return InvalidArgumentError("at most 1000 ids").With(kPayloadPointer, "#/ids");
    }
    int64_t total = 0;
    MessageId after = 0;
    // One transaction per chunk, so the writer never stalls behind a big redrive.
    while (true) {
      using Chunk = std::pair<int64_t, MessageId>;
      EVO_ASSIGN_OR_RETURN(Chunk chunk, Run<Chunk>([this, q, filter, redrive, after](Group& g) {
                             return DeadLetterChunk(g, *q, filter, redrive, after);
                           }));
      total += chunk.first;
      if (chunk.second == 0) {
        break;
      }
      after = chunk.second;
    }
    return total;
  }

  // Handles up to kChunk matching dead letters with id > after; returns how many and the last
  // id scanned (0 when the scan is complete).
  StatusOr<std::pair<int64_t, MessageId>> DeadLetterChunk(Group& g, const QueueInfo& q,
                                                          const DeadLetterFilter& filter,
                                                          bool redrive, MessageId after) {
    EVO_ASSIGN_OR_RETURN(
        store::Rows rows,
        g.tx.Query("SELECT id, last_error, dead_at, ordering_key, lane FROM queue_dead_letters "
                   "WHERE queue_id = ? AND id > ? ORDER BY id LIMIT ?",
                   {q.id, static_cast<int64_t>(after), static_cast<int64_t>(kChunk)}));
    int64_t done = 0;
    for (const store::Row& r : rows.rows) {
      const auto id = static_cast<MessageId>(Int(r[0]));
      if (!filter.ids.empty() &&
          std::find(filter.ids.begin(), filter.ids.end(), id) == filter.ids.end()) {
        continue;
      }
      if (!filter.error_contains.empty() &&
          Text(r[1]).find(filter.error_contains) == std::string::npos) {
        continue;
      }
      if (filter.dead_before_unix_ms > 0 && Int(r[2]) >= filter.dead_before_unix_ms) {
        continue;
      }
      Counters& d = g.deltas[q.id];
      if (redrive) {
        int64_t available = g.now_ms;
        if (!Null(r[3])) {
          EVO_ASSIGN_OR_RETURN(store::Rows ahead,
                               g.tx.Query("SELECT 1 FROM queue_messages WHERE queue_id = ? AND "
                                          "ordering_key = ? LIMIT 1",
                                          {q.id, Text(r[3])}));
          if (!ahead.empty()) {
            available = kParked;
          }
        }
        EVO_RETURN_IF_ERROR(
            g.tx.Exec(
                    "INSERT INTO queue_messages(id, queue_id, lane, available_at, due_at, "
                    "attempt, attempt_base, ordering_key, enqueued_at, headers, history, payload) "
                    "SELECT id, queue_id, lane, ?, ?, deliveries, deliveries, ordering_key, "
                    "enqueued_at, headers, history, payload FROM queue_dead_letters WHERE id = ?",
                    {available, g.now_ms, static_cast<int64_t>(id)})
                .status());
        d.depth += 1;
        d.redriven += 1;
        if (available <= g.now_ms) {
          g.woken.push_back(q.id);
        }
      }
      EVO_RETURN_IF_ERROR(
          g.tx.Exec("DELETE FROM queue_dead_letters WHERE id = ?", {static_cast<int64_t>(id)})
              .status());
      d.dead -= 1;
      ++done;
    }
    const MessageId last =
        rows.size() < kChunk ? 0 : static_cast<MessageId>(Int(rows.rows.back()[0]));
    return std::make_pair(done, last);
  }

  // ---- the writer ----

  template <typename T>
  StatusOr<T> Run(std::function<StatusOr<T>(Group&)> fn) {
    auto promise = std::make_shared<std::promise<StatusOr<T>>>();
    auto future = promise->get_future();
    Submit(std::make_unique<FunctionOp<T>>(
        std::move(fn), [promise](StatusOr<T> r) { promise->set_value(std::move(r)); }));
    return future.get();
  }

  void Submit(std::unique_ptr<Op> op) {
    Status refused;
    {
      std::lock_guard lock(mu_);
      if (options_.read_only) {
        refused = FailedPreconditionError("the queue database is open read-only");
      } else if (stopping_) {
        refused = UnavailableError("the queue broker is stopping");
      } else if (inbox_.size() >= options_.max_pending_operations) {
        refused = ResourceExhaustedError("too many queue operations waiting")
                      .With(kPayloadRetryAfter, "1");
      } else {
        const bool was_empty = inbox_.empty();
        inbox_.push_back(std::move(op));
        if (was_empty) {
          cv_.notify_one();
        }
        return;
      }
    }
    op->Finish(refused, 0);
  }

  void WriterLoop() {
    std::deque<std::unique_ptr<Op>> batch;
    auto next_sweep = clock_.Monotonic() + kDedupeSweep;
    bool sweep_more = false;  // the last sweep found more expired keys than it deleted
    while (true) {
      bool stopping = false;
      bool answer_polls = false;
      {
        std::unique_lock lock(mu_);
        auto wake = std::chrono::steady_clock::now() + kWaiterRetry;
        if (waiters_.empty()) {
          wake = std::chrono::steady_clock::now() + kGaugeRefresh;
        }
        if (!sweep_more) {
          cv_.wait_until(lock, wake, [&] { return stopping_ || !inbox_.empty(); });
        }
        stopping = stopping_;
        answer_polls = stopping_ || long_polls_ended_;
        size_t weight = 0;
        while (!inbox_.empty() && weight < options_.max_group_messages) {
          weight += inbox_.front()->Weight();
          batch.push_back(std::move(inbox_.front()));
          inbox_.pop_front();
        }
      }
      // The loop's boundary: whatever throws fails the operations in hand (Internal) and the
      // writer goes on with the next ones.
      try {
        const int64_t now = NowMs();
        // Long polls: retry those whose queue got visible messages, and all of them every
        // kWaiterRetry (delays and leases run out without any write). Once long polls are
        // ended, each is answered at its next retry with what it has.
        for (auto it = waiters_.begin(); it != waiters_.end();) {
          LeaseBatchOp& w = static_cast<LeaseBatchOp&>(**it);
          const bool woken = std::find(woken_.begin(), woken_.end(), w.queue_id()) != woken_.end();
          if (answer_polls || now >= w.deadline_ms() || woken || now >= next_waiter_retry_) {
            if (answer_polls) {
              w.Expire();
            }
            batch.push_back(std::move(*it));
            it = waiters_.erase(it);
          } else {
            ++it;
          }
        }
        if (now >= next_waiter_retry_) {
          next_waiter_retry_ = now + kWaiterRetry.count();
        }
        woken_.clear();
        if (!batch.empty()) {
          Commit(batch, now);
          batch.clear();
        }
        // Expired dedupe keys go in bounded batches, one batch between two group commits,
        // until none is left: the sweep keeps up with any rate of inserts the writer
        // accepts, and never holds the writer for long.
        const auto mono = clock_.Monotonic();
        if (sweep_more || mono >= next_sweep) {
          sweep_more = SweepDedupe(NowMs());
          next_sweep = mono + kDedupeSweep;
        }
      } catch (const std::exception& e) {
        FailBatch(batch, fmt::format("queue writer: {}", e.what()));
        sweep_more = false;
      } catch (...) {
        FailBatch(batch, "queue writer: unknown exception");
        sweep_more = false;
      }
      if (stopping) {
        std::lock_guard lock(mu_);
        if (inbox_.empty() && waiters_.empty()) {
          return;
        }
      }
    }
  }

  // Answers the operations of `batch` not answered yet with Internal (something threw outside
  // of any one operation); the writer goes on with the next batch.
  static void FailBatch(std::deque<std::unique_ptr<Op>>& batch, const std::string& what) {
    spdlog::error("{} (failing the {} operations of its batch)", what, batch.size());
    for (auto& op : batch) {
      if (op != nullptr) {
        FinishCatching(*op, InternalError(what), 0);
      }
    }
    batch.clear();
  }

  // Op::Finish, whose callback may throw: logged, and the writer goes on.
  static bool FinishCatching(Op& op, const Status& status, int64_t now_ms) {
    try {
      return op.Finish(status, now_ms);
    } catch (const std::exception& e) {
      spdlog::error("queue: a callback threw: {}", e.what());
    } catch (...) {
      spdlog::error("queue: a callback threw an unknown exception");
    }
    return false;
  }

  // Op::Apply, whose exception becomes an Internal status.
  static Status ApplyCatching(Op& op, Group& g) {
    try {
      return op.Apply(g);
    } catch (const std::exception& e) {
      return InternalError(fmt::format("queue operation threw: {}", e.what()));
    } catch (...) {
      return InternalError("queue operation threw an unknown exception");
    }
  }

  // Runs `op` in a savepoint of the group's transaction. Its effects join the group only when
  // it succeeds; otherwise its writes are rolled back and `failure` says why. Returns non-OK
  // only when the transaction itself is lost (the savepoint cannot be rolled back).
  static Status ApplyIsolated(Op& op, Group& g, Status& failure) {
    EVO_RETURN_IF_ERROR(g.tx.Exec("SAVEPOINT evo_queue_op").status());
    Group own{g.tx, g.now_ms, {}, {}};
    failure = ApplyCatching(op, own);
    if (!failure.ok()) {
      spdlog::warn("queue: one operation of a group failed, the others go on: {}",
                   failure.ToString());
      EVO_RETURN_IF_ERROR(g.tx.Exec("ROLLBACK TO evo_queue_op").status());
      return g.tx.Exec("RELEASE evo_queue_op").status();
    }
    EVO_RETURN_IF_ERROR(g.tx.Exec("RELEASE evo_queue_op").status());
    for (const auto& [queue_id, d] : own.deltas) {
      Counters& total = g.deltas[queue_id];
      total.depth += d.depth;
      total.dead += d.dead;
      total.enqueued += d.enqueued;
      total.deduplicated += d.deduplicated;
      total.acked += d.acked;
      total.nacked += d.nacked;
      total.dead_lettered += d.dead_lettered;
      total.expired += d.expired;
      total.redriven += d.redriven;
    }
    g.woken.insert(g.woken.end(), own.woken.begin(), own.woken.end());
    return OkStatus();
  }

  void Commit(std::deque<std::unique_ptr<Op>>& batch, int64_t now) {
    std::map<int64_t, Counters> deltas;
    std::vector<int64_t> woken;
    std::vector<Status> failures(batch.size());
    // Leases alone are committed without syncing the log; a group with anything else syncs
    // it (and with it the leases before).
    const bool sync =
        options_.sync && std::any_of(batch.begin(), batch.end(),
                                     [](const std::unique_ptr<Op>& op) { return op->NeedsSync(); });
    const Status commit = db_->Transaction(
        [&](store::Executor& tx) -> Status {
          Group g{tx, now, {}, {}};
          if (batch.size() == 1) {
            // Alone in its group (the common case at low load): the transaction is its
            // savepoint, and its failure rolls back nothing but its own writes.
            failures[0] = ApplyCatching(*batch[0], g);
            EVO_RETURN_IF_ERROR(failures[0]);
          } else {
            for (size_t i = 0; i < batch.size(); ++i) {
              EVO_RETURN_IF_ERROR(ApplyIsolated(*batch[i], g, failures[i]));
            }
          }
          for (const auto& [queue_id, d] : g.deltas) {
            if (d.Zero()) {
              continue;
            }
            EVO_RETURN_IF_ERROR(
                tx.Exec(
                      "UPDATE queue_queues SET depth = depth + ?, dead = dead + ?, enqueued_total "
                      "= enqueued_total + ?, deduplicated_total = deduplicated_total + ?, "
                      "acked_total = acked_total + ?, nacked_total = nacked_total + ?, "
                      "dead_lettered_total = dead_lettered_total + ?, expired_leases_total = "
                      "expired_leases_total + ?, redriven_total = redriven_total + ? WHERE id = ?",
                      {d.depth, d.dead, d.enqueued, d.deduplicated, d.acked, d.nacked,
                       d.dead_lettered, d.expired, d.redriven, queue_id})
                    .status());
          }
          if (now > stored_high_water_) {
            // Every time this group wrote is <= now: a restart starts from here at least.
            EVO_RETURN_IF_ERROR(
                tx.Exec("UPDATE queue_clock SET high_water = ? WHERE id = 1", {now}).status());
          }
          deltas = std::move(g.deltas);
          woken = std::move(g.woken);
          return OkStatus();
        },
        sync ? store::TxMode::kDurable : store::TxMode::kReadWrite);
    if (commit.ok()) {
      stored_high_water_ = std::max(stored_high_water_, now);
      ApplyCommitted(deltas);
      woken_ = std::move(woken);
    } else {
      if (batch.size() == 1 && !failures[0].ok()) {
        spdlog::warn("queue: an operation failed: {}", commit.ToString());
      } else {
        spdlog::error("queue: a group commit of {} operations failed: {}", batch.size(),
                      commit.ToString());
      }
      for (const QueuePtr& q : deleted_queues_) {
        q->deleted = false;  // rolled back
      }
    }
    pending_queues_.clear();
    deleted_queues_.clear();
    if (commits_ != nullptr) {
      commits_->Inc();
      committed_ops_->Inc(static_cast<double>(batch.size()));
    }
    const int64_t after = NowMs();
    for (size_t i = 0; i < batch.size(); ++i) {
      // Taken out first: FailBatch skips what was answered here, should anything throw.
      std::unique_ptr<Op> op = std::move(batch[i]);
      const Status& status = commit.ok() ? failures[i] : commit;
      if (FinishCatching(*op, status.ok() ? commit : status, after)) {
        if (waiters_.size() < options_.max_waiters) {
          waiters_.push_back(std::move(op));
        } else {
          static_cast<LeaseBatchOp&>(*op).Expire();
          FinishCatching(*op, OkStatus(), after);
        }
      }
    }
  }

  void ApplyCommitted(const std::map<int64_t, Counters>& deltas) {
    std::lock_guard lock(queues_mu_);
    // Deleted first: a queue deleted and declared again in one group is the new one.
    for (const QueuePtr& q : deleted_queues_) {
      if (auto it = queues_.find(q->name); it != queues_.end() && it->second == q) {
        queues_.erase(it);
      }
      by_id_.erase(q->id);
      DetachMetrics(*q);
    }
    for (QueuePtr& q : pending_queues_) {
      queues_[q->name] = q;
      by_id_[q->id] = q;
      AttachMetrics(*q);
    }
    for (const auto& [id, d] : deltas) {
      auto it = by_id_.find(id);
      if (it == by_id_.end()) {
        continue;
      }
      QueueMetrics& m = it->second->metrics;
      if (m.depth == nullptr) {
        continue;
      }
      auto inc = [](metrics::Counter* c, int64_t v) {
        if (v > 0) {
          c->Inc(static_cast<double>(v));
        }
      };
      inc(m.enqueued, d.enqueued);
      inc(m.acked, d.acked);
      inc(m.nacked, d.nacked);
      inc(m.dead_lettered, d.dead_lettered);
      inc(m.expired, d.expired);
      inc(m.deduplicated, d.deduplicated);
      inc(m.redriven, d.redriven);
    }
  }

  void RefreshGauges() {
    if (registry_ == nullptr) {
      return;
    }
    std::vector<QueuePtr> all;
    {
      std::lock_guard lock(queues_mu_);
      for (const auto& [name, q] : queues_) {
        all.push_back(q);
      }
    }
    for (const QueuePtr& q : all) {
      auto s = StatsOf(*q, *db_);
      if (!s.ok()) {
        continue;
      }
      std::lock_guard lock(queues_mu_);
      if (q->metrics.depth == nullptr) {
        continue;  // deleted meanwhile: its series are gone
      }
      q->metrics.depth->Set(static_cast<double>(s->depth));
      q->metrics.dead->Set(static_cast<double>(s->dead_letters));
      q->metrics.ready->Set(static_cast<double>(s->ready));
      q->metrics.in_flight->Set(static_cast<double>(s->in_flight));
      q->metrics.delayed->Set(static_cast<double>(s->delayed));
      q->metrics.oldest->Set(s->oldest_ready_age_seconds);
    }
  }

  // Refreshes the gauges, which read every queue, on a thread of their own: the writer never
  // waits for them.
  void GaugeLoop() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      // Its own condition variable: Submit's notify_one must always reach the writer.
      stop_cv_.wait_for(lock, kGaugeRefresh, [&] { return stopping_; });
      lock.unlock();
      // Nothing may end this thread (and with it the process): log, refresh next round.
      try {
        RefreshGauges();
      } catch (const std::exception& e) {
        spdlog::error("queue: gauge refresh threw: {}", e.what());
      } catch (...) {
        spdlog::error("queue: gauge refresh threw an unknown exception");
      }
      lock.lock();
    }
  }

  // Deletes up to kDedupeSweepBatch expired dedupe keys; true when it deleted that many
  // (more may be left).
  bool SweepDedupe(int64_t now) {
    auto r = db_->Exec(
        "DELETE FROM queue_dedupe WHERE (queue_id, key) IN (SELECT queue_id, key FROM "
        "queue_dedupe WHERE expires_at <= ? LIMIT ?)",
        {now, static_cast<int64_t>(kDedupeSweepBatch)});
    if (!r.ok()) {
      spdlog::warn("queue: dedupe sweep failed: {}", r.status().ToString());
      return false;
    }
    return r->rows_affected >= static_cast<int64_t>(kDedupeSweepBatch);
  }

  const BrokerOptions options_;
  const Clock& clock_;
  IdSource ids_;
  metrics::Registry* registry_;
  std::unique_ptr<store::Database> db_;
  Families families_;
  metrics::Counter* commits_ = nullptr;
  metrics::Counter* committed_ops_ = nullptr;

  std::mutex queues_mu_;
  std::map<std::string, QueuePtr, std::less<>> queues_;  // guarded by queues_mu_
  std::unordered_map<int64_t, QueuePtr> by_id_;          // the same, by id; queues_mu_

  std::mutex mu_;
  std::condition_variable cv_;             // wakes the writer
  std::condition_variable stop_cv_;        // wakes the gauge thread at Stop
  std::deque<std::unique_ptr<Op>> inbox_;  // guarded by mu_
  bool stopping_ = false;                  // guarded by mu_
  bool long_polls_ended_ = false;          // guarded by mu_

  // The largest time the broker used (NowMs), from queue_clock at start.
  mutable std::atomic<int64_t> high_water_{0};

  // Writer thread only.
  int64_t stored_high_water_ = 0;  // queue_clock.high_water as committed
  std::vector<std::unique_ptr<Op>> waiters_;
  std::vector<int64_t> woken_;
  int64_t next_waiter_retry_ = 0;
  std::vector<QueuePtr> pending_queues_;
  std::vector<QueuePtr> deleted_queues_;
  std::thread writer_;
  std::thread gauges_;
};

}  // namespace

StatusOr<std::unique_ptr<Broker>> OpenSqliteBroker(const BrokerOptions& options, const Clock& clock,
                                                   IdSource ids, metrics::Registry* registry) {
  EVO_RETURN_IF_ERROR(Validate(options));
  if (!ids) {
    return InvalidArgumentError("an id source is required");
  }
  store::SqliteOptions sqlite;
  sqlite.path = options.path.string();
  // Commits that must be durable ask for it (TxMode::kDurable, see Commit).
  sqlite.synchronous = store::SqliteSynchronous::kNormal;
  sqlite.reader_connections = 2;
  sqlite.read_only = options.read_only;
  sqlite.cache_size_kib = 16 * 1024;
  sqlite.background_checkpoint = true;  // the writer's commits never copy pages back
  EVO_ASSIGN_OR_RETURN(std::unique_ptr<store::Database> db, store::OpenSqlite(sqlite, clock));
  auto broker =
      std::make_unique<SqliteBroker>(options, clock, std::move(ids), registry, std::move(db));
  EVO_RETURN_IF_ERROR(broker->Load());
  return std::unique_ptr<Broker>(std::move(broker));
}

}  // namespace evo::queue
