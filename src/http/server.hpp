// The HTTP/1.1 server: Boost.Beast/Asio underneath, evo::http::Router on top.
//
// One io_context per I/O thread, each with its own SO_REUSEPORT acceptor (share-nothing:
// the kernel spreads connections over threads). Keep-alive, pipelining-safe, and bounded
// everywhere: body size (per route), header size, header-read/body-read/idle/write timeouts
// against slow clients, maximum concurrent connections. Routes marked RouteOptions::blocking
// run on a separate bounded pool of threads, never on an I/O thread.
//
// Around every dispatch the server adds `X-Request-Id` (echoed when the client sent a sane
// one, else generated), reads W3C `traceparent` (or starts a trace), writes one access-log
// line, and counts `evo_http_requests_total{route,method,code}` and
// `evo_http_request_duration_seconds{route,method}`.
//
// Thread safety: Start/Drain/Stop are called from one controlling thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/metrics.hpp"
#include "core/status.hpp"
#include "http/router.hpp"

namespace evo::http {

struct ServerOptions {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free port
  int threads = 0;                        // I/O threads; 0 = number of cores
  size_t max_body_bytes = 1 << 20;        // default per-route body limit
  size_t max_header_bytes = 64 << 10;     // request line + headers
  size_t max_connections = 10000;         // beyond this new connections are closed at once
  std::chrono::milliseconds header_timeout{10'000};  // to receive a complete header
  std::chrono::milliseconds body_timeout{30'000};    // to receive the complete body
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{30'000};   // to send a response
  bool access_log = true;                            // one log line per request
  // Threads that run RouteOptions::blocking routes, at a lower CPU priority than the I/O
  // threads, and how many such requests may wait for one before the server answers 503.
  int blocking_threads = 4;
  size_t blocking_queue = 1024;
};
// InvalidArgument naming the field when an option is out of range or `listen` is malformed.
Status Validate(const ServerOptions& options);

class Server {
 public:
  // Binds, starts the I/O threads and returns. `router` and `registry` must outlive the
  // server. FailedPrecondition/Unavailable when the address cannot be bound.
  static StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options, const Router& router,
                                                 metrics::Registry& registry);
  virtual ~Server() = default;

  // The bound port (useful with port 0).
  virtual uint16_t port() const = 0;
  // Stops accepting, lets in-flight requests finish (responses get `Connection: close`),
  // and waits up to `timeout` for open connections to end; then closes the rest.
  virtual void Drain(std::chrono::milliseconds timeout) = 0;
  // Closes everything and joins the I/O threads. Blocking routes still running are waited
  // for; those still queued are answered 503. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

}  // namespace evo::http
