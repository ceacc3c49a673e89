// The queue module: named, durable, at-least-once work queues with leases, delays, priority
// lanes, ordering keys, deduplication and dead letters, for every module that must not lose
// work ("use a queue, HTTP requests are not reliable").
//
// A producer enqueues messages; the call returns once they are durable. A consumer leases
// messages for a visibility timeout, then acks (done: deleted), nacks (retry after a delay)
// or fails them permanently; a lease that runs out makes the message visible again. After a
// queue's `max_attempts` deliveries, or a permanent failure, a message moves to the queue's
// dead-letter list with its last error and attempt history, where it can be listed,
// inspected, redriven onto the queue or purged.
//
//   EVO_ASSIGN_OR_RETURN(auto broker, queue::OpenSqliteBroker({.path = dir / "queue.db"},
//                                                             clock, ids));
//   EVO_RETURN_IF_ERROR(broker->DeclareQueue("mail", {.max_attempts = 8}));
//   EVO_ASSIGN_OR_RETURN(auto ids, broker->Enqueue("mail", {{.payload = "..."}}));
//   EVO_ASSIGN_OR_RETURN(auto leases, broker->Lease("mail", {.max = 10}));
//   EVO_RETURN_IF_ERROR(broker->Ack("mail", leases[0].lease_id));
//
// Consumers inside evo use WorkerPool (worker_pool.hpp) rather than calling Lease directly.
//
// Semantics are those of NATS JetStream so that a JetStream backend can implement Broker one
// to one (docs/QUEUES.md has the mapping): Ack = AckAck, Nack with delay = Nak with delay,
// Fail = AckTerm, Extend = AckProgress (in progress), max_attempts = MaxDeliver, dead
// letters = the MAX_DELIVERIES/TERMINATED advisories republished to a dead-letter stream,
// dedupe = Nats-Msg-Id within the duplicate window, ordering key = one subject per key on a
// consumer with MaxAckPending 1 per subject, priority lanes = one consumer per lane.
//
// Delivery is at-least-once: a message leased when the process dies is delivered again after
// its lease runs out. Effects must therefore be idempotent (key them on the message id).
//
// Errors (evo::Status; do not switch exhaustively over codes):
//   InvalidArgument    malformed name, lease id, option or message (payload over the
//                      queue's limit, negative delay, batch over the cap)
//   NotFound           unknown queue; a lease whose message is gone (acked, dead-lettered,
//                      purged) or never existed; an unknown dead letter
//   FailedPrecondition a lease that ran out or was superseded by a newer delivery
//                      (reason LEASE_EXPIRED)
//   ResourceExhausted  too many operations waiting for the writer (back-pressure)
//   Unavailable        the broker is stopping; the store is locked or failed
//   others             from the store (DataLoss for a corrupt file...)
//
// Thread safety: a Broker may be used from any number of threads. Async callbacks run on
// the broker's writer thread, which every operation waits behind: they must only hand the
// result over (post it elsewhere, set a promise) and must not wait for another broker
// call; costly work on the result (e.g. serialising leased payloads) belongs on another
// thread. A callback that throws is logged and the writer goes on.
//
// Time: delays, visibility and leases run on the broker's clock, the wall clock but never
// earlier than a time the broker already used (kept in the file across restarts): a clock
// stepped back holds the broker's time still until it catches up (docs/QUEUES.md, "Time").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "core/status.hpp"

namespace evo::queue {

// A message id: a 64-bit time-ordered id from the ids module (see IdSource).
using MessageId = uint64_t;

// Where message ids come from: `n` fresh, unique, increasing ids (REQUIRES n >= 1), or an
// error (e.g. Unavailable while the clock is behind). The app passes the ids generator.
// Thread safety: called on the thread of each Enqueue/EnqueueAsync caller, so from any number
// of threads at once; it must be safe for that (ids::Generator is), and ids must be unique
// across all of those threads.
using IdSource = std::function<StatusOr<std::vector<MessageId>>(size_t n)>;

// Priority lanes, leased in this order: a lease takes every visible high message before any
// normal one, and normal before low, so transactional work never waits behind bulk work.
enum class Lane : int { kHigh = 0, kNormal = 1, kLow = 2 };
// "high" | "normal" | "low".
std::string_view LaneName(Lane lane);
StatusOr<Lane> ParseLane(std::string_view name);

// Header name/value pairs carried with a message (order kept).
using Headers = std::vector<std::pair<std::string, std::string>>;

// Per-queue settings, given when the queue is declared.
struct QueueOptions {
  // Deliveries before a message is dead-lettered (a nack or an expired lease uses one up).
  int max_attempts = 5;  // REQUIRES: 1..1000
  // Lease length when a Lease call gives none.
  std::chrono::milliseconds default_visibility{30'000};  // REQUIRES: 1 ms..12 h
  // A repeated dedupe key within this window of its first enqueue returns the first id.
  std::chrono::milliseconds dedupe_window{24LL * 3600 * 1000};  // REQUIRES: 0..30 days
  // Largest payload accepted (bytes).
  size_t max_payload_bytes = size_t{256} * 1024;  // REQUIRES: 1..16 MiB
};
// OK, or InvalidArgument naming the field.
Status Validate(const QueueOptions& options);

// Queue names: 1..64 characters of [A-Za-z0-9._-]. InvalidArgument otherwise.
Status ValidateQueueName(std::string_view name);

// A message to enqueue.
struct NewMessage {
  std::string payload;  // opaque bytes (the HTTP API stores JSON text)
  Headers headers;      // at most 64, names 1..128 bytes, values up to 4 KiB
  // Not visible before now + delay. REQUIRES: 0..30 days.
  std::chrono::milliseconds delay{0};
  // Messages sharing a non-empty key are leased one at a time, in enqueue order: the next is
  // only visible once the previous was acked or dead-lettered. Up to 256 bytes.
  std::string ordering_key;
  // A non-empty key seen within the queue's dedupe window returns the first message's id
  // and stores nothing. Up to 256 bytes.
  std::string dedupe_key;
  Lane lane = Lane::kNormal;
};

struct LeaseOptions {
  size_t max = 1;  // messages wanted; REQUIRES: 1..BrokerOptions::max_lease_batch
  // Lease length; 0 = the queue's default_visibility. REQUIRES: 0..12 h.
  std::chrono::milliseconds visibility{0};
  // When nothing is visible, wait up to this long for a message (long poll); the answer may
  // still be empty. REQUIRES: 0..BrokerOptions::max_wait.
  std::chrono::milliseconds wait{0};
  // Payload and header bytes leased at most: the lease stops before the message that would
  // go over, but always takes at least one message (whatever its size). 0 =
  // BrokerOptions::max_lease_bytes. REQUIRES: 0..BrokerOptions::max_lease_bytes.
  size_t max_bytes = 0;
};

// A leased message.
struct Leased {
  std::string lease_id;  // opaque; names this delivery for Ack/Nack/Fail/Extend
  MessageId id = 0;
  std::string payload;
  Headers headers;
  int attempt = 0;  // 1 on the first delivery
  std::string ordering_key;
  Lane lane = Lane::kNormal;
  int64_t enqueued_unix_ms = 0;
  int64_t lease_expires_unix_ms = 0;
};

struct NackOptions {
  std::chrono::milliseconds delay{0};  // visible again after this; REQUIRES: 0..30 days
  std::string error;                   // recorded in the attempt history (cut to 1 KiB)
  // False hands the message back without using up an attempt and without a history entry,
  // so it is never dead-lettered by this nack: the consumer did not try (it was rate
  // limited, or shutting down: WorkerPool::Stop does this). JetStream: the relay keeps its
  // own attempt count in a header.
  bool count_attempt = true;
};

// One failed delivery in a message's history (the last 20 are kept).
struct AttemptRecord {
  int attempt = 0;
  int64_t unix_ms = 0;
  std::string error;  // the consumer's error, or "lease expired"
};

struct DeadLetter {
  MessageId id = 0;
  std::string payload;
  Headers headers;
  int attempts = 0;
  std::string last_error;
  std::vector<AttemptRecord> history;
  std::string ordering_key;
  Lane lane = Lane::kNormal;
  int64_t enqueued_unix_ms = 0;
  int64_t dead_unix_ms = 0;
};

// Which dead letters Redrive and Purge act on; an empty filter matches all.
struct DeadLetterFilter {
  std::vector<MessageId> ids;       // only these (at most 1000)
  std::string error_contains;       // last error contains this text
  int64_t dead_before_unix_ms = 0;  // dead strictly before this (0 = any)
};

// One page of dead letters, oldest first: at most the `limit` asked for, and no more
// payload and header bytes than BrokerOptions::max_lease_bytes, but at least one.
struct DeadLetterPage {
  std::vector<DeadLetter> items;
  std::optional<MessageId> next_after;  // pass as `after` for the next page
};

struct QueueStats {
  std::string name;
  QueueOptions options;
  int64_t depth = 0;      // messages not yet acked or dead-lettered (ready + delayed +
                          // in flight + waiting behind their ordering key)
  int64_t ready = 0;      // visible now
  int64_t in_flight = 0;  // leased, lease not run out
  int64_t delayed = 0;    // not yet visible: delayed, nacked with delay, or behind a key
  int64_t dead_letters = 0;
  double oldest_ready_age_seconds = 0;  // how long the oldest visible message has waited
  // Monotonic since the queue was declared.
  int64_t enqueued_total = 0;
  int64_t deduplicated_total = 0;
  int64_t acked_total = 0;
  int64_t nacked_total = 0;
  int64_t dead_lettered_total = 0;
  int64_t expired_leases_total = 0;
  int64_t redriven_total = 0;
};

template <typename T>
using Callback = std::function<void(StatusOr<T>)>;

// The queue backend. The async calls hand their result to `done` on the broker's writer
// thread once it is durable; the sync calls wait for it. Operations that reach the writer
// together commit in one transaction, each in a savepoint of its own: one failing (a store
// error, a duplicate id from the IdSource) is answered with its error, the others commit.
class Broker {
 public:
  virtual ~Broker() = default;

  // Creates the queue or updates its options (existing messages keep their attempts).
  virtual Status DeclareQueue(std::string_view name, const QueueOptions& options) = 0;
  // Deletes the queue with its messages and dead letters. NotFound when unknown.
  virtual Status DeleteQueue(std::string_view name) = 0;
  virtual StatusOr<std::vector<QueueStats>> ListQueues() = 0;
  virtual StatusOr<QueueStats> Stats(std::string_view name) = 0;

  // Enqueues `messages` (1..max_enqueue_batch) all or nothing; returns one id per message,
  // in order (the first message's id for a deduplicated one).
  virtual void EnqueueAsync(std::string_view queue, std::vector<NewMessage> messages,
                            Callback<std::vector<MessageId>> done) = 0;
  // Leases up to `options.max` visible messages, high lane first, oldest first.
  virtual void LeaseAsync(std::string_view queue, const LeaseOptions& options,
                          Callback<std::vector<Leased>> done) = 0;
  // Done with the message: it is deleted and never delivered again.
  virtual void AckAsync(std::string_view queue, std::string_view lease_id, Callback<bool> done) = 0;
  // Acks several leases in one operation (1..max_lease_batch); one Status per lease id, in
  // order, each as Ack would answer. The call itself fails only for an unknown queue, a bad
  // batch size or a store failure.
  virtual void AckBatchAsync(std::string_view queue, const std::vector<std::string>& lease_ids,
                             Callback<std::vector<Status>> done) = 0;
  // Delivery failed: visible again after `options.delay`, or dead-lettered when it was the
  // last attempt.
  virtual void NackAsync(std::string_view queue, std::string_view lease_id,
                         const NackOptions& options, Callback<bool> done) = 0;
  // Failed for good: dead-lettered now with `error`.
  virtual void FailAsync(std::string_view queue, std::string_view lease_id, std::string error,
                         Callback<bool> done) = 0;
  // Still working: the lease now runs out `visibility` from now. Returns the new expiry.
  virtual void ExtendAsync(std::string_view queue, std::string_view lease_id,
                           std::chrono::milliseconds visibility, Callback<int64_t> done) = 0;

  // Dead letters with id > `after`, oldest first, at most `limit` (1..1000) and
  // max_lease_bytes of payload and headers (at least one).
  virtual StatusOr<DeadLetterPage> ListDeadLetters(std::string_view queue,
                                                   std::optional<MessageId> after,
                                                   size_t limit) = 0;
  virtual StatusOr<DeadLetter> GetDeadLetter(std::string_view queue, MessageId id) = 0;
  // Moves matching dead letters back onto the queue (attempts reset, history kept); returns
  // how many.
  virtual StatusOr<int64_t> Redrive(std::string_view queue, const DeadLetterFilter& filter) = 0;
  // Deletes matching dead letters; returns how many.
  virtual StatusOr<int64_t> PurgeDeadLetters(std::string_view queue,
                                             const DeadLetterFilter& filter) = 0;

  // For a process about to stop: answers every waiting long poll now with what it has, and
  // from then on answers a long poll at its first retry (within 100 ms) instead of waiting
  // up to its `wait`, so that connections held by long polls end and an HTTP server can
  // drain. Everything else goes on as before. Idempotent.
  virtual void EndLongPolls() = 0;

  // Finishes queued work, answers long polls with what they have, and stops the writer;
  // later calls return Unavailable. Idempotent; the destructor calls it.
  virtual void Stop() = 0;

  // Sync forms of the async calls.
  StatusOr<std::vector<MessageId>> Enqueue(std::string_view queue,
                                           std::vector<NewMessage> messages);
  StatusOr<std::vector<Leased>> Lease(std::string_view queue, const LeaseOptions& options);
  Status Ack(std::string_view queue, std::string_view lease_id);
  StatusOr<std::vector<Status>> AckBatch(std::string_view queue,
                                         const std::vector<std::string>& lease_ids);
  Status Nack(std::string_view queue, std::string_view lease_id, const NackOptions& options);
  Status Fail(std::string_view queue, std::string_view lease_id, std::string error);
  StatusOr<int64_t> Extend(std::string_view queue, std::string_view lease_id,
                           std::chrono::milliseconds visibility);
};

struct BrokerOptions {
  std::filesystem::path path;       // the SQLite file (created with its directory's parent)
  size_t max_enqueue_batch = 1000;  // messages per Enqueue call
  size_t max_lease_batch = 1000;    // messages per Lease call
  // Payload and header bytes per Lease answer and per dead-letter page (both always hold at
  // least one message): what one call can make the process hold.
  size_t max_lease_bytes = size_t{16} << 20;
  std::chrono::milliseconds max_wait{20'000};  // longest long poll
  // Operations waiting for the writer before new ones get ResourceExhausted. A count, not
  // bytes: each operation's bytes are bounded by its own limits (batch, payload size).
  size_t max_pending_operations = 100'000;
  // Long polls waiting at once before new ones get ResourceExhausted.
  size_t max_waiters = 10'000;
  // Messages written per group commit, at most (a group is one transaction, one fsync).
  size_t max_group_messages = 10'000;
  // fsync every commit (durable on return). Off only for tests and benchmarks that say so.
  bool sync = true;
  // Inspect only (the CLI beside a running server): every write returns FailedPrecondition.
  bool read_only = false;
};
Status Validate(const BrokerOptions& options);

// Opens (creating if needed) the SQLite broker. Several processes may open the same file
// (the CLI beside a running server): counters are kept in the file, not in memory. `clock` and
// `ids` must outlive it; metrics (evo_queue_*{queue}) go to `registry` when given, which must
// outlive it too. Queues, messages, leases and dead letters survive a crash exactly as
// acknowledged. Errors: the store's (see store.hpp), InvalidArgument for bad options.
StatusOr<std::unique_ptr<Broker>> OpenSqliteBroker(const BrokerOptions& options, const Clock& clock,
                                                   IdSource ids,
                                                   metrics::Registry* registry = nullptr);

// Lease ids are "<message id, 16 hex digits>-<attempt, decimal>". InvalidArgument (reason
// MALFORMED_LEASE_ID) for anything else.
struct LeaseRef {
  MessageId id = 0;
  int attempt = 0;
};
StatusOr<LeaseRef> ParseLeaseId(std::string_view lease_id);
std::string FormatLeaseId(MessageId id, int attempt);

}  // namespace evo::queue
