// HTTP adapter of the queue module: the admin API (queues, stats, dead letters) and a
// producer/consumer API so that programs in any language can use evo's queues.
//
//   PUT    /v1/queues/{name}                          declare or update a queue
//   GET    /v1/queues, /v1/queues/{name}              stats;  DELETE /v1/queues/{name}
//   POST   /v1/queues/{name}/messages                 enqueue one or a batch (201 when durable)
//   POST   /v1/queues/{name}/leases                   lease (optional long poll)
//   POST   /v1/queues/{name}/leases/{leaseId}:ack | :nack | :extend
//   POST   /v1/queues/{name}/leases:ack               ack a batch of leases
//   GET    /v1/queues/{name}/dead-letters[/{id}]      list (paginated) / inspect
//   POST   /v1/queues/{name}/dead-letters:redrive     back onto the queue (all or filtered)
//   DELETE /v1/queues/{name}/dead-letters             purge (all or ?ids=)
//
// Payloads are any JSON value, stored as its text. Message ids are decimal strings.
// The producer and consumer routes (messages, leases) are deferred: the broker's writer
// answers once the write is durable, without holding an HTTP I/O thread meanwhile, and a
// lease answer's JSON is built on the I/O thread, not the writer. A lease answer holds at
// most `maxBytes` (default 16 MiB) of payloads, but at least one message. The admin routes
// (declare, delete, stats, dead letters, redrive, purge) call the broker synchronously and
// run on the server's blocking pool (RouteOptions::blocking).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/router.hpp"
#include "queue/queue.hpp"

namespace evo::queue {

// A queue's stats as the API answers them (also `evo queue stats --format json`).
nlohmann::json ToJson(const QueueStats& stats);

struct RouteOptions {
  // Name prefixes of queues evo's own modules keep (e.g. "webhooks."): their jobs are
  // internal state, not a public API. Every route answers 404 for such a queue, as for one
  // that does not exist, the list leaves them out, and declaring one is 403 (reason
  // RESERVED_QUEUE_NAME). Operators read them with `evo queue ls|stats|dlq` and /metrics.
  std::vector<std::string> internal_prefixes;
};

// True when `name` starts with one of `prefixes`.
bool IsInternalQueue(std::string_view name, const std::vector<std::string>& prefixes);

// Registers the routes. `broker` must outlive the router.
void RegisterRoutes(http::Router& router, Broker& broker, RouteOptions options = {});

}  // namespace evo::queue
