// The outbound HTTP client: how evo's webhook and notification delivery reaches other servers.
//
// One Client owns one thread running a libcurl multi handle: requests are handed over through
// a mutex-guarded inbox (Send returns at once), run concurrently on that thread, and each one's
// `done` callback runs there when it finishes. Connections are kept alive and reused across
// requests to the same host (the multi handle's connection cache, bounded by
// max_total_connections; at most max_host_connections to one host at a time, further requests
// wait for a free one).
//
// What every request gets, with no way to turn it off:
//   - the SSRF guard (ssrf.hpp): the URL is parsed and checked before anything is sent, and
//     every address the client is about to connect to — after DNS resolution, for every
//     connection attempt — is checked again, so a name resolving to a forbidden address is
//     refused (PermissionDenied, reason SSRF_BLOCKED, naming the address);
//   - a total timeout and a connect timeout (DeadlineExceeded);
//   - redirects are never followed: a 3xx is the response (resilience::ClassifyHttpStatus
//     treats it as a transient failure);
//   - http and https only, HTTP/1.1, TLS verified against the system CA store, proxies from the
//     environment (http_proxy, ...) ignored — a proxy would be the only address the guard saw;
//   - a bounded response: at most max_body_bytes of the body kept (the rest read and dropped
//     so the connection stays reusable), at most kMaxResponseHeaders headers.
//
// Retries, circuit breaking and rate limiting are the caller's (resilience module); Response
// carries what they need: the status, the headers (Retry-After), the error code.
//
// Thread safety: Send, in_flight and Stop may be called from any thread. `done` callbacks run
// one at a time on the client's thread: they must not block for long (they hold up every other
// request) and must not call Stop() or destroy the client.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "core/status.hpp"
#include "outbound/ssrf.hpp"

namespace evo::outbound {

// At most this many response headers are kept (more are read and dropped).
inline constexpr size_t kMaxResponseHeaders = 100;

struct Request {
  // An HTTP method token in upper case ("POST", "PUT", "GET", "DELETE", ...).
  std::string method = "POST";
  // An absolute http(s) URL, as ParseUrl accepts it.
  std::string url;
  // Sent in order. Names must be HTTP tokens and values must not contain CR, LF or NUL;
  // Content-Length and Transfer-Encoding are the client's (InvalidArgument otherwise). The
  // client adds User-Agent (unless given here), Host, Content-Length and suppresses "Expect:
  // 100-continue" (no extra round trip).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent as is for any method when non-empty, and always for POST
  std::chrono::milliseconds timeout{15000};         // the whole exchange; REQUIRES > 0
  std::chrono::milliseconds connect_timeout{5000};  // DNS + TCP + TLS; REQUIRES > 0
};

struct Response {
  // The HTTP status of the final response, 0 when none arrived.
  int status = 0;
  // Response headers in order, names as sent (compare case-insensitively), values trimmed.
  std::vector<std::pair<std::string, std::string>> headers;
  // At most ClientOptions::max_body_bytes of the body are kept; the rest is read and dropped.
  std::string body;
  bool body_truncated = false;
  // From Send() to completion, on the client's clock (includes waiting in the inbox and for a
  // free connection).
  std::chrono::microseconds latency{0};
  // The peer's "address:port" ("127.0.0.1:8080", "[::1]:443"), empty when no connection was
  // made.
  std::string remote_address;
  // OK when a complete HTTP response arrived, whatever its status. Otherwise:
  //   InvalidArgument    the request is malformed (URL, method, header, timeouts)
  //   PermissionDenied   the SSRF guard refused the URL, or refused an address it resolved to
  //                      and no other address could be connected to (payload reason
  //                      SSRF_BLOCKED, the message names the refused address)
  //   DeadlineExceeded   the timeout or connect timeout passed
  //   Unavailable        DNS failure, connection refused or reset, TLS failure, a response cut
  //                      short (`status` may then be set from the status line that did arrive;
  //                      the partial body is dropped)
  //   Cancelled          the client stopped before the request finished
  //   Internal           anything libcurl reports that fits none of the above
  Status error;

  // The first header named `name` (case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const;
};

struct ClientOptions {
  SsrfPolicy ssrf;
  size_t max_body_bytes = 4096;                 // REQUIRES <= 64 MiB
  long max_host_connections = 8;                // REQUIRES >= 1
  long max_total_connections = 256;             // REQUIRES >= max_host_connections
  std::string user_agent = "evo-webhooks/0.1";  // no CR/LF
  // Must stay false: redirects are never followed (a redirect could lead anywhere, and the
  // guard would have to re-check each hop). Kept so that configuration saying otherwise fails
  // loudly.
  bool follow_redirects = false;
  // Measures latency. Must outlive the client; null means RealClock(). Timeouts are enforced by
  // libcurl on the real clock whatever this is.
  const Clock* clock = nullptr;
};
// InvalidArgument naming the offending field.
Status Validate(const ClientOptions& options);

class Client {
 public:
  // Starts the client's thread. InvalidArgument for bad options, Internal when libcurl cannot be
  // initialised. When `registry` is given (it must outlive the client) the client records:
  //   evo_outbound_requests_total{outcome}         outcome: 1xx 2xx 3xx 4xx 5xx (a complete
  //                                                response), timeout, unavailable,
  //                                                ssrf_blocked, invalid, cancelled, error
  //   evo_outbound_request_duration_seconds        latency of every request that got an outcome
  //   evo_outbound_in_flight                       requests accepted and not yet done
  static StatusOr<std::unique_ptr<Client>> Start(ClientOptions options,
                                                 metrics::Registry* registry = nullptr);

  // Stops the client (see Stop).
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Queues `request` and returns at once; `done` is called exactly once with the response, on
  // the client's thread. After Stop() has begun, `done` is called at once on the caller's thread
  // with a Cancelled error.
  void Send(Request request, std::function<void(Response)> done);

  // Requests sent and not yet done.
  size_t in_flight() const;

  // Fails every request not yet done with Cancelled (their `done` runs on the client's thread),
  // then joins it. Idempotent. REQUIRES: not called from a `done` callback (there it only
  // begins the stop, so as not to deadlock; destroy the client from another thread).
  void Stop();

 private:
  struct Impl;  // the curl state and the thread, in client.cpp
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace evo::outbound
