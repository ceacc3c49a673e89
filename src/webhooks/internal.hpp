// Private pieces of the webhooks module shared by service.cpp, dispatcher.cpp and http.cpp.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "outbound/client.hpp"
#include "resilience/resilience.hpp"
#include "webhooks/filter.hpp"
#include "webhooks/webhooks.hpp"

namespace evo::webhooks {

inline constexpr std::string_view kFanoutQueue = "webhooks.fanout";
inline constexpr std::string_view kDisabledEventType = "endpoint.disabled";

// "webhooks.ep.<endpoint id>": the delivery queue of one endpoint.
std::string EndpointQueue(std::string_view endpoint_id);

nlohmann::json ToJson(const Application& a);
nlohmann::json ToJson(const EventType& t);
nlohmann::json ToJson(const Endpoint& e, bool with_secret);
nlohmann::json ToJson(const Message& m);
nlohmann::json ToJson(const Attempt& a);
// The stored form of an attempt (the body column of webhook_attempts): a JSON object with
// messageId, endpointId, attempt, createdMs, url, requestHeaders (an object), responseStatus,
// responseBody, latencyUs, error and outcome. Invalid UTF-8 is replaced (U+FFFD).
std::string StoredAttempt(const Attempt& a);
// The stored form of an endpoint (everything, secrets included) and back. EndpointFromStored
// reads with checked accessors: a field of the wrong type is DataLoss naming it (never thrown).
nlohmann::json StoredEndpoint(const Endpoint& e);
StatusOr<Endpoint> EndpointFromStored(const nlohmann::json& j);
// An attempt from its stored form (StoredAttempt) and its row's seq; DataLoss naming what is
// wrong for a body that is not such an object. Never throws.
StatusOr<Attempt> AttemptFromStored(int64_t seq, std::string_view body);

// Checked reads of one field of stored JSON (a row of evo.db, a job): absent or null gives
// `fallback`; a value of another type is DataLoss naming `key`. Never throw.
StatusOr<std::string> StoredString(const nlohmann::json& j, const char* key,
                                   std::string fallback = "");
StatusOr<int64_t> StoredInt(const nlohmann::json& j, const char* key, int64_t fallback = 0);
StatusOr<double> StoredNumber(const nlohmann::json& j, const char* key, double fallback = 0);
StatusOr<bool> StoredBool(const nlohmann::json& j, const char* key, bool fallback = false);

// The body evo POSTs: {"type", "timestamp", "data"} (the Standard Webhooks payload shape).
std::string DeliveryBody(std::string_view event_type, int64_t created_ms,
                         std::string_view payload_json);

// Delivery bodies by message sequence number, shared between the fan-out (which puts every
// new message's body) and the dispatcher (which sends it to each endpoint). Bounded by the
// bytes it holds: the oldest put goes first. Thread-safe.
class BodyCache {
 public:
  explicit BodyCache(size_t max_bytes) : max_bytes_(max_bytes) {}
  // nullptr when the body is not (or no longer) cached.
  std::shared_ptr<const std::string> Find(int64_t seq) const;
  void Put(int64_t seq, std::shared_ptr<const std::string> body);

 private:
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::unordered_map<int64_t, std::shared_ptr<const std::string>> bodies_;  // guarded by mu_
  std::deque<int64_t> order_;                                               // guarded by mu_
  size_t bytes_ = 0;                                                        // guarded by mu_
};

// The signed request of one delivery attempt: Content-Type, webhook-id, webhook-timestamp,
// webhook-signature (v1 with the current secret, and the previous one during its grace),
// then the endpoint's own headers.
outbound::Request SignedRequest(const Endpoint& endpoint, std::string_view message_id,
                                std::string body, int64_t now_ms,
                                std::chrono::milliseconds timeout);

// What the service hands the dispatcher. None of them blocks: each hands the work to the
// service's recorder thread, except `body`, which reads SQLite when its cache misses.
struct DispatcherHooks {
  // Records an attempt that succeeded or will be retried, and the delivery's new state
  // ("succeeded" | "pending"): batched, written asynchronously, best effort.
  std::function<void(Attempt attempt, std::string delivery_state)> record;
  // The delivery of `lease_id` failed for good: records the attempt and the `failed`
  // delivery row durably (fsync), and only then dead-letters the delivery (with
  // attempt.error), so that no dead letter is without its row for recover.
  std::function<void(Attempt attempt, std::string lease_id)> fail;
  // Disables an endpoint (410, or failing too long) and emits endpoint.disabled.
  std::function<void(const std::string& endpoint_id, std::string reason)> disable;
  // Clears or starts the failing streak of an endpoint.
  std::function<void(const std::string& endpoint_id, int64_t failing_since_ms)> set_failing;
  // The delivery body of a message (NotFound when the message is not stored).
  std::function<StatusOr<std::shared_ptr<const std::string>>(std::string_view message_id)> body;
};

// The delivery engine: leases from each active endpoint's queue as its rate limit,
// concurrency cap and circuit breaker allow, sends, and settles by the answer.
class Dispatcher {
 public:
  static StatusOr<std::unique_ptr<Dispatcher>> Start(const Options& options, queue::Broker& broker,
                                                     outbound::Client& client, const Clock& clock,
                                                     DispatcherHooks hooks,
                                                     metrics::Registry* registry);
  virtual ~Dispatcher() = default;
  // The endpoint was created, changed (state, limits, secret) or deleted (nullopt).
  virtual void Update(const std::string& endpoint_id, std::optional<Endpoint> endpoint) = 0;
  // Deliveries were enqueued for the endpoint: look now.
  virtual void Wake(const std::string& endpoint_id) = 0;
  // Endpoints it holds delivery state (a lane) for: the live ones, and deleted ones until
  // their leases and requests have come back. Any thread.
  virtual size_t Lanes() const = 0;
  virtual void Stop() = 0;
};

}  // namespace evo::webhooks
