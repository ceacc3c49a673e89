// `evo webhooks listen`: a local receiver for evo's (or anyone's) Standard Webhooks, like
// `stripe listen`. It verifies every signature, answers the verification handshake, counts
// what arrives (distinct webhook-ids, duplicates, bad signatures) and prints one line per
// delivery; tests and benchmarks use it as the receiving end.
//
//   POST /<any path>   a delivery: 2xx when the signature verifies (or no secret is set),
//                      401 when it does not; `status`/`fail_first`/`fail_every` override
//                      the answer
//   GET  /stats        {"received","distinct","duplicates","badSignatures","failed",
//                       "verifications","byPath":{"/p":{"received","distinct"}}} so far;
//                      distinct counts (path, webhook-id) pairs, so several endpoints may
//                      share one listener on different paths
//   GET  /latency      {"deliveries":{n,mean,min,p50,p90,p99,p999,max},"messages":{...}}: the
//                      lag in ms of each first arrival of a (path, webhook-id) pair, and of
//                      each webhook-id on any path, behind the body's "timestamp" (when evo
//                      accepted the event; same clock when both run on one machine)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/metrics.hpp"
#include "core/status.hpp"

namespace evo::webhooks {

struct ListenOptions {
  std::string listen = "127.0.0.1:9000";  // HOST:PORT (port 0 picks one)
  std::vector<std::string> secrets;       // whsec_/whpk_ keys; empty = accept unsigned
  int status = 0;         // answer this status to every delivery, the handshake too (0 = 204)
  int fail_first = 0;     // answer 500 to the first N deliveries
  int fail_every = 0;     // then answer 500 to every Nth delivery (0 = none)
  int delay_ms = 0;       // wait this long before answering
  int retry_after_s = 0;  // Retry-After on failure answers (0 = none)
  bool print = true;      // one line per delivery on stdout
};

class Listener {
 public:
  // Binds and starts serving. FailedPrecondition/Unavailable when the address is taken,
  // InvalidArgument for a bad option or key.
  static StatusOr<std::unique_ptr<Listener>> Start(const ListenOptions& options);
  virtual ~Listener() = default;
  virtual uint16_t port() const = 0;
  // The /stats document.
  virtual std::string StatsJson() const = 0;
  virtual void Stop() = 0;
};

}  // namespace evo::webhooks
