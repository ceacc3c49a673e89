// The webhooks module: evo as a webhook server. An API publishes events; evo stores each one
// durably, fans it out to every endpoint subscribed to its type, and delivers it signed
// (Standard Webhooks), retried on a schedule, rate limited and isolated per endpoint, in
// publish order for ordered endpoints, and dead-lettered (recoverable) when it cannot be
// delivered.
//
//   publish ──▶ queue "webhooks.fanout" ──▶ fan-out worker ──▶ queue "webhooks.ep.<id>"
//                (durable before 202)        (message row,      (one per endpoint)
//                                             one delivery           │
//                                             per endpoint)          ▼
//                                                           dispatcher ──▶ outbound HTTP
//                                                           (rate limit, concurrency cap,
//                                                            breaker, retry schedule)
//
// Durability, within one process on its data dir:
// - A publish is answered once it is in the fan-out queue (fsync). Fan-out and delivery are
//   idempotent per (message, endpoint) through the queues' dedupe keys, so a crash (kill -9,
//   power loss) repeats deliveries but loses none; a receiver sees a duplicate only for
//   deliveries in flight at the crash (dedupe on webhook-id).
// - A delivery that fails for good has its attempt and its `failed` row synced to evo.db
//   before it is dead-lettered, so every dead letter can be listed and recovered after a
//   crash. Attempts that succeeded or will be retried are recorded in batches without a sync
//   (best effort: a crash loses the last ~50 ms of them, and a backlog over 100,000 drops).
// - Applications, event types, endpoints, their changes and rotated secrets are synced to
//   evo.db before the call returns; the failing streak and disables the dispatcher records
//   are not (a crash may forget them; they are recomputed from the next answers).
// - Messages are kept for `Options::retention`, then deleted with their attempts and rows.
// Two processes on one data dir are not supported (each caches the endpoints).
//
// Thread safety: a Service may be used from any number of threads. Writes of one endpoint
// are serialised (each kind of write stores only the fields it owns), so concurrent API
// calls and the dispatcher's writes never undo each other; UpdateEndpoint(id, change)
// applies a read-modify-write atomically.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "core/status.hpp"
#include "outbound/ssrf.hpp"
#include "queue/queue.hpp"
#include "store/store.hpp"

namespace evo::webhooks {

// Every queue of this module is named with this prefix ("webhooks.fanout", "webhooks.ep.<id>").
// Their jobs are the module's internal state: the app keeps them out of the public queue API
// (queue::RouteOptions::internal_prefixes).
inline constexpr std::string_view kQueuePrefix = "webhooks.";

using Headers = std::vector<std::pair<std::string, std::string>>;

// A tenant of the webhook server (an application, in Svix's words): endpoints and messages
// may belong to one, and a message only reaches the endpoints of its application (messages
// without one reach the endpoints without one).
struct Application {
  std::string id;    // "app_" + a decimal id
  std::string name;  // 1..256 bytes
  std::string uid;   // the caller's own id for it, unique when set ("" = none)
  int64_t created_ms = 0;
};

struct EventType {
  std::string name;  // 1..128 of [A-Za-z0-9._-]
  std::string description;
  nlohmann::json schema;  // JSON Schema of the payload; null = any payload
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

enum class EndpointState {
  kUnverified,  // created with verify, handshake not (yet) answered: gets no events
  kActive,
  kDisabled,  // by the user, by a 410, or after failing for `disable_after`: events are
              // stored (as disabled deliveries) for a later recover
};
std::string_view EndpointStateName(EndpointState state);

struct Endpoint {
  std::string id;              // "ep_" + a decimal id
  std::string application_id;  // "" = global
  std::string url;
  std::string description;
  std::vector<std::string> event_types;  // empty = every type
  nlohmann::json filter;                 // payload filter (see filter.hpp); null = none
  std::string secret;                    // whsec_…
  std::string previous_secret;           // still signed with until previous_secret_until_ms
  int64_t previous_secret_until_ms = 0;
  // Asymmetric signing (Standard Webhooks v1a): evo signs with an ed25519 key it holds
  // (whsk_…) and receivers verify with its public key (whpk_…, shown as publicKey) instead
  // of sharing `secret`. Rotation keeps the previous key signing for the grace period.
  bool asymmetric = false;
  std::string signing_key;
  std::string previous_signing_key;
  double rate_limit_per_second = 0;  // 0 = unlimited
  int max_concurrency = 10;          // requests in flight to this endpoint
  bool ordered = false;              // strictly in publish order, one at a time
  Headers headers;                   // added to every request
  EndpointState state = EndpointState::kActive;
  std::string disabled_reason;
  int64_t failing_since_ms = 0;  // first failure of the current failing streak, 0 = healthy
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

struct Message {
  std::string id;              // "msg_" + a decimal id (also the webhook-id header)
  std::string application_id;  // "" = global
  std::string event_type;
  std::string event_id;  // the publisher's idempotency key ("" = none)
  nlohmann::json payload;
  int64_t created_ms = 0;
};

struct Attempt {
  std::string id;
  std::string message_id;
  std::string endpoint_id;
  int attempt = 0;  // 1 = first delivery of this message to this endpoint
  int64_t created_ms = 0;
  std::string url;
  Headers request_headers;
  int response_status = 0;    // 0 = no HTTP answer
  std::string response_body;  // first 4 KiB
  int64_t latency_us = 0;
  std::string error;    // transport error, or why the status failed
  std::string outcome;  // "succeeded" | "retrying" | "failed" | "unreadable" (damaged row)
};

struct Options {
  // Request timeout of a delivery.
  std::chrono::milliseconds request_timeout{15'000};
  // The retry schedule after the first attempt (Svix's: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
  // 10 h), each ±`retry_jitter`; then the delivery fails (dead letter, recoverable).
  std::vector<std::chrono::milliseconds> retry_schedule = {
      std::chrono::seconds(5), std::chrono::minutes(5), std::chrono::minutes(30),
      std::chrono::hours(2),   std::chrono::hours(5),   std::chrono::hours(10),
      std::chrono::hours(10)};
  double retry_jitter = 0.2;
  // Longest Retry-After honoured.
  std::chrono::milliseconds max_retry_after{std::chrono::hours(10)};
  // An endpoint failing without a success for this long is disabled.
  std::chrono::milliseconds disable_after{std::chrono::hours(24 * 5)};
  // A rotated secret keeps signing beside the new one for this long.
  std::chrono::milliseconds secret_grace{std::chrono::hours(24)};
  // Idempotent publish window (Idempotency-Key or eventId).
  std::chrono::milliseconds idempotency_window{std::chrono::hours(24)};
  // Messages older than this are deleted, with their attempts and delivery rows, by a sweep
  // every minute (Svix keeps 90 days). 0 keeps them forever. REQUIRES: 0 or >= 1 h; longer
  // than the retry schedule, or a delivery still retrying loses its message.
  std::chrono::milliseconds retention{std::chrono::hours(24 * 90)};
  size_t max_payload_bytes = size_t{256} * 1024;
  // Verification handshake timeout.
  std::chrono::milliseconds verify_timeout{10'000};
  outbound::SsrfPolicy ssrf;
};
Status Validate(const Options& options);

struct Page {
  size_t size = 50;
  std::string after;  // exclusive cursor (an id), "" = from the start
};

class Service {
 public:
  // Opens the tables in `db`, declares the queues on `broker`, starts the fan-out worker and
  // the dispatcher. `db`, `broker`, `clock` and `registry` must outlive the service; `ids`
  // issues message, endpoint and attempt ids.
  static StatusOr<std::unique_ptr<Service>> Open(const Options& options, store::Database& db,
                                                 queue::Broker& broker, queue::IdSource ids,
                                                 const Clock& clock,
                                                 metrics::Registry* registry = nullptr);
  virtual ~Service() = default;

  // ---- applications ----
  virtual StatusOr<Application> CreateApplication(Application app) = 0;  // AlreadyExists (uid)
  // By id or by uid.
  virtual StatusOr<Application> GetApplication(std::string_view id_or_uid) = 0;
  virtual StatusOr<std::vector<Application>> ListApplications(const Page& page) = 0;
  // FailedPrecondition while endpoints still belong to it.
  virtual Status DeleteApplication(std::string_view id) = 0;

  // ---- event types ----
  virtual StatusOr<EventType> CreateEventType(EventType type) = 0;  // AlreadyExists
  virtual StatusOr<EventType> UpdateEventType(EventType type) = 0;  // NotFound
  virtual StatusOr<EventType> GetEventType(std::string_view name) = 0;
  virtual StatusOr<std::vector<EventType>> ListEventTypes(const Page& page) = 0;
  virtual Status DeleteEventType(std::string_view name) = 0;

  // ---- endpoints ----
  // Creates the endpoint; with `verify`, runs the handshake (evo POSTs a signed
  // {"type":"webhook.verification","challenge"} and expects it echoed) and answers with the
  // endpoint active, or unverified with the reason. `done` runs on any thread.
  struct Created {
    Endpoint endpoint;
    std::string verification_error;  // "" when verified or not asked
  };
  virtual void CreateEndpoint(Endpoint endpoint, bool verify,
                              std::function<void(StatusOr<Created>)> done) = 0;
  virtual void VerifyEndpoint(std::string_view id, std::function<void(StatusOr<Created>)> done) = 0;
  // Applies `change` to the endpoint as it is now and stores what it changed of the writable
  // fields (url, description, event types, filter, limits, ordered, headers, and the state
  // when `change` moved it between active and disabled; re-enabling clears the failing
  // streak). Identity, secrets and verification state stay as they are. Runs under the
  // endpoint's write lock, so concurrent writers (rotations, the dispatcher's failing-streak
  // and disable writes) never undo each other. NotFound, or `change`'s or the check's error.
  virtual StatusOr<Endpoint> UpdateEndpoint(std::string_view id,
                                            const std::function<Status(Endpoint&)>& change) = 0;
  // The same, taking the writable fields and the state from `endpoint` (found by its id).
  virtual StatusOr<Endpoint> UpdateEndpoint(const Endpoint& endpoint) = 0;
  virtual StatusOr<Endpoint> GetEndpoint(std::string_view id) = 0;
  virtual StatusOr<std::vector<Endpoint>> ListEndpoints(const Page& page) = 0;
  // Deletes the endpoint and its queue (pending deliveries). Its attempts and delivery rows
  // are purged by the retention sweep within a minute or so.
  virtual Status DeleteEndpoint(std::string_view id) = 0;
  // New secret (generated when empty); the old one signs beside it for `secret_grace`.
  virtual StatusOr<Endpoint> RotateSecret(std::string_view id, std::string secret) = 0;

  // ---- messages ----
  // Validates (unknown type 422, schema 422 with pointers, size 413), then makes the message
  // durable and answers its id; fan-out follows asynchronously. A repeated non-empty
  // `event_id` (the Idempotency-Key, scoped to the application) within `idempotency_window`
  // of its first use answers the first message's id; the same key with another event is
  // refused (422), also when both arrive at once (exactly one is accepted). After the window
  // the key is new.
  // `application_id` ("" = none) must name an application (NotFound otherwise).
  virtual void Publish(std::string application_id, std::string event_type, nlohmann::json payload,
                       std::string event_id, std::function<void(StatusOr<std::string>)> done) = 0;
  virtual StatusOr<Message> GetMessage(std::string_view id) = 0;
  virtual StatusOr<std::vector<Message>> ListMessages(const Page& page,
                                                      std::string_view event_type) = 0;
  // Attempts oldest first. A stored attempt that cannot be read is listed with outcome
  // "unreadable" and the reason as its error (and logged).
  virtual StatusOr<std::vector<Attempt>> ListAttempts(std::string_view endpoint_id,
                                                      std::string_view message_id,
                                                      const Page& page) = 0;
  // Delivers one message to one endpoint again (a new delivery, attempts from 1).
  virtual Status Replay(std::string_view endpoint_id, std::string_view message_id) = 0;
  // Re-delivers every message of the endpoint whose delivery failed (or was held while the
  // endpoint was disabled) since `since_ms` and is still within the retention; returns how
  // many.
  virtual StatusOr<int64_t> Recover(std::string_view endpoint_id, int64_t since_ms) = 0;

  // Stops the fan-out worker and the dispatcher (deliveries in flight are finished or handed
  // back). Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

}  // namespace evo::webhooks
