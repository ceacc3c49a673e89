// The HTTP/1.1 server. One io_context and one SO_REUSEPORT acceptor per I/O thread; a
// connection lives on the thread that accepted it, so per-connection and per-thread state
// (buffers, the metrics cache, the id generator) needs no locks.
//
// A connection is a Session driving this loop with callbacks (no coroutines: the callback
// form costs no frame allocation per request):
//
//   idle wait (first byte; idle or header timeout) -> header (header timeout, header limit)
//   -> route lookup, body limit, 413 before reading an oversize body -> body (body timeout)
//   -> Router::Dispatch -> write (write timeout) -> idle wait, or close.
//
// Request bytes are parsed by our own beast::http::basic_parser subclass straight into the
// connection's reusable evo::http::Request, and responses are serialized by hand into a
// reused string: no beast::http::fields allocations on the hot path.
#include "http/server.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>

#include "core/clock.hpp"
#include "core/logging.hpp"
#include "http/problem.hpp"
#include "http/text.hpp"

namespace evo::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using ErrorCode = boost::system::error_code;
// Asio's timers run on std::chrono::steady_clock; RealClock().Monotonic() reads the same
// clock, so deadlines and durations below share one time base.
using SteadyTime = std::chrono::steady_clock::time_point;
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
// Concrete executor types throughout: the default type-erased any_io_executor costs a
// measurable few percent per request in copies and virtual-like dispatch.
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
using Stream = beast::basic_stream<tcp, Executor, beast::unlimited_rate_policy>;

constexpr size_t kMaxTargetBytes = 8 << 10;  // longer request-targets get 414
constexpr size_t kMaxHeaderFields = 256;     // more fields get 431, whatever their size
constexpr size_t kHeaderReadChunk = 4 << 10;
constexpr size_t kBodyReadChunk = 16 << 10;
constexpr size_t kRetainedBytes = 64 << 10;  // per-connection buffers above this are freed
// After an error answer the unread request may still be arriving; closing with unread
// bytes makes the kernel send RST, which can destroy our answer in flight. Read and drop
// for a short while first (a "lingering close").
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr size_t kLingerMaxBytes = 4 << 20;

SteadyTime Now() { return RealClock().Monotonic(); }

struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};

std::optional<ListenAddress> ParseListen(std::string_view listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view host = listen.substr(0, colon);
  const std::string_view port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // an IPv6 address needs brackets
  }
  unsigned port = 0;
  const char* end = port_text.data() + port_text.size();
  const auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
  if (port_text.empty() || ec != std::errc() || ptr != end || port > 65535) {
    return std::nullopt;
  }
  return ListenAddress{std::string(host), static_cast<uint16_t>(port)};
}

void AppendNumber(std::string& out, uint64_t value) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  out.append(digits, end);
}

std::string_view MethodLabel(std::string_view method) {
  // Client-chosen method names would make metric cardinality unbounded.
  static constexpr std::array<std::string_view, 9> kKnown = {
      "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"};
  for (const std::string_view known : kKnown) {
    if (known == method) {
      return known;
    }
  }
  return "OTHER";
}

bool IsValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
  });
}

// W3C Trace Context: "vv-<32 hex trace>-<16 hex parent>-<2 hex flags>", lower-case hex only,
// version ff invalid, all-zero ids invalid; a future version may append "-..." fields.
// Returns the trace id, or nullopt when the header must be ignored.
std::optional<std::string_view> ParseTraceparent(std::string_view value) {
  if (value.size() < 55 || value[2] != '-' || value[35] != '-' || value[52] != '-') {
    return std::nullopt;
  }
  const std::string_view version = value.substr(0, 2);
  const std::string_view trace = value.substr(3, 32);
  const std::string_view parent = value.substr(36, 16);
  const std::string_view flags = value.substr(53, 2);
  if (!internal::IsLowerHex(version) || version == "ff" || !internal::IsLowerHex(trace) ||
      !internal::IsLowerHex(parent) || !internal::IsLowerHex(flags)) {
    return std::nullopt;
  }
  if (trace.find_first_not_of('0') == std::string_view::npos ||
      parent.find_first_not_of('0') == std::string_view::npos) {
    return std::nullopt;
  }
  if ((version == "00" && value.size() != 55) || (value.size() > 55 && value[55] != '-')) {
    return std::nullopt;
  }
  return trace;
}

// splitmix64: fast, per-thread, good enough for request/trace/span ids (which are not
// secrets; they only have to be unique with overwhelming probability).
class IdGenerator {
 public:
  IdGenerator() {
    uint64_t seed = static_cast<uint64_t>(Now().time_since_epoch().count());
    try {
      std::random_device device;
      seed ^= (static_cast<uint64_t>(device()) << 32) ^ device();
    } catch (...) {
      seed ^= reinterpret_cast<uintptr_t>(this);  // no entropy device: still distinct
    }
    state_ = seed;
  }

  // Replaces `out` with 2 * `bytes` (at most 32) lower-case hex digits, never all zeros.
  void Hex(std::string& out, size_t bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    char text[32];
    const size_t size = std::min<size_t>(bytes * 2, sizeof(text));
    uint64_t word = 0;
    for (size_t i = 0; i < size; ++i, word >>= 4) {
      if (i % 16 == 0) {
        word = Next() | 1;  // odd: the id can never be all zeros
      }
      text[i] = kDigits[word & 0xF];
    }
    out.assign(text, size);
  }

 private:
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

// The RFC 9110 Date header, formatted once per second per thread.
class DateCache {
 public:
  std::string_view Get() {
    const int64_t second = UnixMillis(RealClock().Now()) / 1000;
    if (second != second_) {
      static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
      static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
      const std::time_t t = static_cast<std::time_t>(second);
      std::tm tm{};
      gmtime_r(&t, &tm);
      const int n = std::snprintf(text_, sizeof(text_), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                                  kDays[tm.tm_wday % 7], tm.tm_mday, kMonths[tm.tm_mon % 12],
                                  tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
      size_ = n > 0 ? std::min(static_cast<size_t>(n), sizeof(text_) - 1) : 0;
      second_ = second;
    }
    return {text_, size_};
  }

 private:
  int64_t second_ = -1;
  char text_[64] = {};
  size_t size_ = 0;
};

struct RouteMetrics {
  metrics::Counter* requests;
  metrics::Histogram* duration;
};

// Per-thread cache of metric children: Family::Get takes a lock and builds a label vector,
// so the hot path looks the pair up here instead, keyed by "route\x1fmethod\x1fcode".
class MetricsCache {
 public:
  MetricsCache(metrics::Family<metrics::Counter>& requests,
               metrics::Family<metrics::Histogram>& duration)
      : requests_(requests), duration_(duration) {}

  const RouteMetrics& Get(std::string_view route, std::string_view method, int code) {
    key_.assign(route);
    key_.push_back('\x1f');
    key_.append(method);
    key_.push_back('\x1f');
    AppendNumber(key_, static_cast<uint64_t>(code));
    if (const auto it = children_.find(key_); it != children_.end()) {
      return it->second;
    }
    const std::string route_label(route);
    const std::string method_label(method);
    RouteMetrics children{&requests_.Get({route_label, method_label, std::to_string(code)}),
                          &duration_.Get({route_label, method_label})};
    return children_.emplace(key_, children).first->second;
  }

 private:
  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Histogram>& duration_;
  std::string key_;  // reused so that a cache hit allocates nothing
  std::unordered_map<std::string, RouteMetrics> children_;
};

// Parses one request straight into an evo::http::Request and enforces what Beast leaves to
// its user: one Content-Length, no transfer coding but chunked, a bounded request-target and
// number of fields. A parser parses one message; the session makes a new one per request.
class RequestParser final : public bhttp::basic_parser<true> {
 public:
  explicit RequestParser(Request& request) : request_(request) {}

  int version() const { return version_; }
  bool saw_request_line() const { return saw_request_line_; }
  bool target_too_long() const { return target_too_long_; }
  bool too_many_fields() const { return too_many_fields_; }
  int host_count() const { return host_count_; }
  bool expect_continue() const { return expect_continue_; }

 private:
  void on_request_impl(bhttp::verb /*method*/, beast::string_view method, beast::string_view target,
                       int version, ErrorCode& ec) override {
    saw_request_line_ = true;
    version_ = version;
    request_.method.assign(method.data(), method.size());
    if (target.size() > kMaxTargetBytes) {
      target_too_long_ = true;
      ec = bhttp::error::bad_target;
      return;
    }
    request_.target.assign(target.data(), target.size());
  }

  void on_response_impl(int, beast::string_view, int, ErrorCode& ec) override {
    ec = bhttp::error::bad_version;
  }

  void on_field_impl(bhttp::field name, beast::string_view name_string, beast::string_view value,
                     ErrorCode& ec) override {
    if (++field_count_ > kMaxHeaderFields) {
      too_many_fields_ = true;
      ec = bhttp::error::header_limit;
      return;
    }
    const std::string_view text(value.data(), value.size());
    switch (name) {
      case bhttp::field::host:
        ++host_count_;
        break;
      case bhttp::field::content_length:
        // Beast accepts repeated equal lengths ("5, 5"); RFC 9112 lets us refuse them, and a
        // proxy in front may have picked a different one, so we do (request smuggling).
        if (++content_length_count_ > 1 || text.find(',') != std::string_view::npos) {
          ec = bhttp::error::bad_content_length;
          return;
        }
        break;
      case bhttp::field::transfer_encoding:
        // Beast passes unknown codings through undecoded; only plain chunked is accepted.
        if (!internal::IEquals(internal::TrimOws(text), "chunked")) {
          ec = bhttp::error::bad_transfer_encoding;
          return;
        }
        break;
      case bhttp::field::expect:
        expect_continue_ = internal::IEquals(internal::TrimOws(text), "100-continue");
        break;
      default:
        break;
    }
    request_.headers.Add(std::string(name_string.data(), name_string.size()), std::string(text));
  }

  void on_header_impl(ErrorCode& /*ec*/) override {}

  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         ErrorCode& /*ec*/) override {
    // The session checked the length against the route's limit before any body byte.
    if (content_length) {
      request_.body.reserve(static_cast<size_t>(*content_length));
    }
  }

  size_t on_body_impl(beast::string_view body, ErrorCode& /*ec*/) override {
    request_.body.append(body.data(), body.size());
    return body.size();
  }

  void on_chunk_header_impl(std::uint64_t, beast::string_view, ErrorCode& /*ec*/) override {}

  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, ErrorCode& /*ec*/) override {
    request_.body.append(body.data(), body.size());
    return body.size();
  }

  void on_finish_impl(ErrorCode& /*ec*/) override {}

  Request& request_;
  int version_ = 11;
  size_t field_count_ = 0;
  int host_count_ = 0;
  int content_length_count_ = 0;
  bool saw_request_line_ = false;
  bool target_too_long_ = false;
  bool too_many_fields_ = false;
  bool expect_continue_ = false;
};

class ServerImpl;
class Session;

// Runs the handlers of RouteOptions::blocking routes. A job is called with `run` true on a
// pool thread, or with `run` false (answer "unavailable" instead) when the pool stops first.
class BlockingPool {
 public:
  using Job = std::function<void(bool run)>;

  BlockingPool(int threads, size_t max_queued) : max_queued_(max_queued) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { Loop(); });
    }
  }
  ~BlockingPool() { Stop(); }
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // False (and `job` untouched) when the queue is full or the pool has stopped.
  bool Submit(Job& job) {
    std::lock_guard lock(mu_);
    if (stopped_ || queue_.size() >= max_queued_) {
      return false;
    }
    queue_.push_back(std::move(job));
    cv_.notify_one();
    return true;
  }

  // Answers the queued jobs with run=false, waits for the running ones. Idempotent.
  void Stop() {
    std::deque<Job> left;
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      left.swap(queue_);
      cv_.notify_all();
    }
    for (Job& job : left) {
      RunGuarded(job, false);
    }
    for (std::thread& thread : threads_) {
      if (thread.joinable()) {
        thread.join();
      }
    }
  }

 private:
  static void RunGuarded(Job& job, bool run) {
    try {
      job(run);
    } catch (const std::exception& e) {
      spdlog::error("http: a blocking job threw: {}", e.what());
    } catch (...) {
      spdlog::error("http: a blocking job threw a non-standard exception");
    }
  }

  void Loop() {
    // Long work here must not take the CPU from the I/O threads (per-thread on Linux).
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 5) != 0) {
      spdlog::debug("http: could not lower a blocking thread's priority");
    }
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopped_ || !queue_.empty(); });
        if (queue_.empty()) {
          return;
        }
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      RunGuarded(job, true);
    }
  }

  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;  // guarded by mu_
  bool stopped_ = false;   // guarded by mu_
  std::vector<std::thread> threads_;
};

// One I/O thread: its io_context, acceptor, connections and caches. Everything here except
// `ioc` is touched only from the worker's own thread (or after it has been joined).
struct Worker {
  Worker(ServerImpl& owner, metrics::Family<metrics::Counter>& requests,
         metrics::Family<metrics::Histogram>& duration)
      : server(owner), metrics(requests, duration) {}

  ServerImpl& server;
  // Declared before `ioc`: destroying the io_context destroys pending handlers, and with
  // them sessions that unregister themselves here.
  std::unordered_set<Session*> sessions;
  MetricsCache metrics;
  IdGenerator ids;
  DateCache date;
  // Only this worker's thread touches its sockets (Listen and Accept run before the thread
  // starts; Drain/Stop post to it), so Asio's per-socket I/O locks are pure overhead.
  // Scheduler locking stays on: Drain and Stop post from the controlling thread.
  asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  Acceptor acceptor{ioc.get_executor()};
  Timer accept_retry{ioc.get_executor()};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
};

class ServerImpl final : public Server {
 public:
  ServerImpl(const ServerOptions& options, const Router& router, metrics::Registry& registry)
      : options_(options),
        router_(router),
        requests_(
            registry.AddCounter("evo_http_requests_total",
                                "HTTP requests answered, by route pattern, method and status code.",
                                {"route", "method", "code"})),
        duration_(registry.AddHistogram(
            "evo_http_request_duration_seconds",
            "Time from a request's first byte to its response being queued, by route pattern "
            "and method.",
            {"route", "method"})),
        connections_(registry.AddGauge("evo_http_connections", "Open HTTP connections.").Get()),
        blocking_(options.blocking_threads, options.blocking_queue) {}

  ~ServerImpl() override { Stop(); }

  Status Listen();
  void Run();

  uint16_t port() const override { return port_; }
  void Drain(std::chrono::milliseconds timeout) override;
  void Stop() override;

  const ServerOptions& options() const { return options_; }
  const Router& router() const { return router_; }
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  BlockingPool& blocking() { return blocking_; }

  bool TryOpenConnection() {
    if (open_.fetch_add(1, std::memory_order_acq_rel) >= options_.max_connections) {
      open_.fetch_sub(1, std::memory_order_acq_rel);
      return false;
    }
    connections_.Inc();
    return true;
  }

  void OnConnectionClosed() {
    connections_.Dec();
    if (open_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(drain_mu_);
      drain_cv_.notify_all();
    }
  }

 private:
  void Accept(Worker& worker);
  // Posts to every worker: close its acceptor, then close its idle connections (drain) or,
  // with `close_all_sessions`, every connection (stop).
  void CloseListeners(bool close_all_sessions);

  const ServerOptions options_;
  const Router& router_;
  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Histogram>& duration_;
  metrics::Gauge& connections_;
  uint16_t port_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<size_t> open_{0};
  std::mutex drain_mu_;
  std::condition_variable drain_cv_;  // notified (under drain_mu_) when open_ drops to 0
  BlockingPool blocking_;
  // Last: workers hold sessions that call back into the members above while being destroyed.
  std::vector<std::unique_ptr<Worker>> workers_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Worker& worker, Socket socket)
      : worker_(worker), server_(worker.server), stream_(std::move(socket)) {}

  ~Session() {
    worker_.sessions.erase(this);
    server_.OnConnectionClosed();
  }

  void Start() {
    worker_.sessions.insert(this);
    ErrorCode ec;
    stream_.socket().set_option(tcp::no_delay(true), ec);
    if (server_.options().access_log) {
      const auto remote = stream_.socket().remote_endpoint(ec);
      if (!ec) {
        remote_ = remote.address().to_string() + ":" + std::to_string(remote.port());
      }
    }
    header_deadline_ = Now() + server_.options().header_timeout;
    WaitForRequest();
  }

  // Drain: a connection waiting for its next request is closed now; one in the middle of a
  // request finishes it and closes after the response (Send sees draining()).
  void OnDrain() {
    if (state_ == State::kIdle) {
      CloseNow();
    }
  }

  void CloseNow() { stream_.close(); }

 private:
  enum class State { kIdle, kReading, kHandling, kWriting, kClosing };

  void WaitForRequest() {
    if (server_.draining()) {
      CloseNow();
      return;
    }
    ResetRequest();
    if (buffer_.size() > 0) {  // pipelined: the next request is already here
      BeginRequest();
      ParseHeader();
      return;
    }
    state_ = State::kIdle;
    if (first_request_) {
      stream_.expires_at(header_deadline_);  // a silent new connection is a slow header
    } else {
      stream_.expires_after(server_.options().idle_timeout);
    }
    stream_.async_read_some(buffer_.prepare(kHeaderReadChunk),
                            [self = shared_from_this()](ErrorCode ec, size_t n) {
                              if (ec) {
                                self->CloseNow();
                                return;
                              }
                              self->buffer_.commit(n);
                              self->BeginRequest();
                              self->ParseHeader();
                            });
  }

  void ResetRequest() {
    parser_.emplace(request_);
    parser_->header_limit(static_cast<std::uint32_t>(server_.options().max_header_bytes));
    // Unlimited until the route is known; OnHeader sets the route's limit before any body.
    // (Not boost::none: Beast 1.74 compares `length > body_limit` with boost::optional
    // semantics, where every length is greater than none.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    request_.method.clear();
    request_.target.clear();
    request_.path.clear();
    request_.query.clear();
    request_.headers.Clear();
    if (request_.body.capacity() > kRetainedBytes) {
      std::string().swap(request_.body);
    } else {
      request_.body.clear();
    }
    request_.params.clear();
    match_ = Router::Match();
    bytes_in_ = 0;
  }

  void BeginRequest() {
    state_ = State::kReading;
    request_start_ = Now();
    if (!first_request_) {
      header_deadline_ = request_start_ + server_.options().header_timeout;
    }
  }

  // True when the first `n` bytes of the buffer (a whole header block) hold obsolete line
  // folding: a line break followed by a space or tab.
  bool HasObsFold(size_t n) const {
    const auto data = buffer_.data();
    const std::string_view header(static_cast<const char*>(data.data()), std::min(n, data.size()));
    for (size_t at = header.find("\r\n"); at != std::string_view::npos && at + 2 < header.size();
         at = header.find("\r\n", at + 2)) {
      if (header[at + 2] == ' ' || header[at + 2] == '\t') {
        return true;
      }
    }
    return false;
  }

  void ParseHeader() {
    while (buffer_.size() > 0) {
      ErrorCode ec;
      const size_t n = parser_->put(buffer_.data(), ec);
      // Beast unfolds obs-fold, on Content-Length and Transfer-Encoding too; a proxy in front
      // may not, and would frame the request differently. RFC 9112 §5.2 lets a server refuse
      // it instead, which we do.
      if (!ec && parser_->is_header_done() && HasObsFold(n)) {
        buffer_.consume(n);
        RespondAndClose(InvalidArgumentError("obsolete line folding (obs-fold) in a header field "
                                             "is not accepted (RFC 9112 §5.2)")
                            .With(kPayloadReason, "OBS_FOLD"));
        return;
      }
      buffer_.consume(n);
      bytes_in_ += n;
      if (ec == bhttp::error::need_more) {
        break;
      }
      if (ec) {
        OnBadHeader(ec);
        return;
      }
      if (parser_->is_header_done()) {
        OnHeader();
        return;
      }
      if (n == 0) {
        break;
      }
    }
    stream_.expires_at(header_deadline_);
    stream_.async_read_some(buffer_.prepare(kHeaderReadChunk),
                            [self = shared_from_this()](ErrorCode ec, size_t n) {
                              if (ec) {  // EOF mid-header, timeout (slowloris), reset
                                self->CloseNow();
                                return;
                              }
                              self->buffer_.commit(n);
                              self->ParseHeader();
                            });
  }

  void OnBadHeader(ErrorCode ec) {
    if (ec == bhttp::error::header_limit) {
      if (parser_->too_many_fields()) {
        RespondAndClose(TooLarge(431, "too many header fields", "HEADER_TOO_LARGE"));
      } else if (!parser_->saw_request_line()) {
        RespondAndClose(TooLarge(414, "request-target too long", "URI_TOO_LONG"));
      } else {
        RespondAndClose(TooLarge(431, "request header too large", "HEADER_TOO_LARGE"));
      }
      return;
    }
    if (parser_->target_too_long()) {
      RespondAndClose(TooLarge(414, "request-target too long", "URI_TOO_LONG"));
      return;
    }
    RespondAndClose(InvalidArgumentError("malformed HTTP request: " + ec.message())
                        .With(kPayloadReason, "MALFORMED_REQUEST"));
  }

  static Status TooLarge(int http_status, std::string_view message, std::string reason) {
    return ResourceExhaustedError(message)
        .With(kPayloadHttpStatus, std::to_string(http_status))
        .With(kPayloadReason, std::move(reason));
  }

  void OnHeader() {
    std::string_view target = request_.target;
    if (!target.empty() && target.front() != '/') {
      target = OriginForm(target);
    }
    const size_t question = target.find('?');
    request_.path.assign(target.substr(0, question));
    if (question != std::string_view::npos) {
      request_.query.assign(target.substr(question + 1));
    }
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0.
    const int hosts = parser_->host_count();
    if (hosts > 1 || (hosts == 0 && parser_->version() >= 11)) {
      RespondAndClose(InvalidArgumentError("a request needs exactly one Host header")
                          .With(kPayloadReason, "BAD_HOST"));
      return;
    }

    match_ = server_.router().Find(request_.method, request_.path);
    const size_t limit =
        match_.max_body_bytes != 0 ? match_.max_body_bytes : server_.options().max_body_bytes;
    if (const auto length = parser_->content_length(); length && *length > limit) {
      // Answered before a body byte is read (and without 100 Continue).
      RespondAndClose(TooLarge(413,
                               "request body exceeds the " + std::to_string(limit) + "-byte limit",
                               "BODY_TOO_LARGE"));
      return;
    }
    parser_->body_limit(limit);  // enforced by the parser for chunked bodies
    if (parser_->is_done()) {
      Handle();
      return;
    }
    body_deadline_ = Now() + server_.options().body_timeout;
    parser_->eager(true);
    if (parser_->expect_continue() && parser_->version() >= 11 && buffer_.size() == 0) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(server_.options().write_timeout);
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](ErrorCode ec, size_t) {
                          if (ec) {
                            self->CloseNow();
                            return;
                          }
                          self->ParseBody();
                        });
      return;
    }
    ParseBody();
  }

  // The path-and-query of an absolute-form target ("http://host/a?b" -> "/a?b"), which
  // RFC 9112 §3.2.2 requires servers to accept; anything else ("*", garbage) is returned
  // as is and matches no route.
  std::string_view OriginForm(std::string_view target) {
    const size_t scheme = target.find("://");
    if (scheme == std::string_view::npos || scheme == 0) {
      return target;
    }
    const std::string_view rest = target.substr(scheme + 3);
    const size_t authority_end = rest.find_first_of("/?");
    origin_form_ = "/";
    if (authority_end != std::string_view::npos) {
      origin_form_.assign(rest.substr(authority_end));
      if (origin_form_.front() == '?') {
        origin_form_.insert(0, 1, '/');
      }
    }
    return origin_form_;
  }

  void ParseBody() {
    while (buffer_.size() > 0 && !parser_->is_done()) {
      ErrorCode ec;
      const size_t n = parser_->put(buffer_.data(), ec);
      buffer_.consume(n);
      bytes_in_ += n;
      if (ec == bhttp::error::need_more) {
        break;
      }
      if (ec == bhttp::error::body_limit) {
        RespondAndClose(TooLarge(413, "request body exceeds the limit", "BODY_TOO_LARGE"));
        return;
      }
      if (ec) {
        RespondAndClose(InvalidArgumentError("malformed HTTP request body: " + ec.message())
                            .With(kPayloadReason, "MALFORMED_REQUEST"));
        return;
      }
      if (n == 0) {
        break;
      }
    }
    if (parser_->is_done()) {
      Handle();
      return;
    }
    stream_.expires_at(body_deadline_);
    stream_.async_read_some(buffer_.prepare(kBodyReadChunk),
                            [self = shared_from_this()](ErrorCode ec, size_t n) {
                              if (ec) {  // EOF before the declared length, timeout (RUDY)
                                self->CloseNow();
                                return;
                              }
                              self->buffer_.commit(n);
                              self->ParseBody();
                            });
  }

  void AssignIds() {
    IdGenerator& ids = worker_.ids;
    const auto request_id = request_.headers.Get("X-Request-Id");
    if (request_id && IsValidRequestId(*request_id) &&
        request_.headers.Count("X-Request-Id") == 1) {
      request_.request_id.assign(*request_id);
    } else {
      ids.Hex(request_.request_id, 16);
    }
    const auto traceparent = request_.headers.Get("traceparent");
    std::optional<std::string_view> trace;
    if (traceparent && request_.headers.Count("traceparent") == 1) {
      trace = ParseTraceparent(*traceparent);
    }
    if (trace) {
      request_.trace_id.assign(*trace);
    } else {
      ids.Hex(request_.trace_id, 16);
    }
    ids.Hex(request_.span_id, 8);
  }

  void Handle() {
    state_ = State::kHandling;
    AssignIds();
    const bool close = !parser_->keep_alive();
    auto finish = [self = shared_from_this(), close](Response response) mutable {
      // Called on any thread: write on the connection's own. `self` moves into the posted
      // handler so that the session is only ever released on its I/O thread.
      auto executor = self->stream_.get_executor();
      asio::post(executor,
                 [self = std::move(self), close, response = std::move(response)]() mutable {
                   self->Send(std::move(response), close);
                 });
    };
    if (match_.blocking || (match_.blocking_above_body_bytes != 0 &&
                            request_.body.size() > match_.blocking_above_body_bytes)) {
      HandleBlocking(std::move(finish));
      return;
    }
    std::optional<Response> now = server_.router().DispatchDeferred(request_, std::move(finish));
    if (now) {
      Send(std::move(*now), close);
    }
  }

  // Runs the route on the blocking pool. `finish` holds the session; it is shared so that
  // whichever side answers last (the job, or an async route's Reply) moves the session out to
  // its I/O thread, and nothing releases it on a pool thread.
  template <typename Finish>
  void HandleBlocking(Finish finish) {
    auto answer = std::make_shared<std::function<void(Response)>>(std::move(finish));
    const Router& router = server_.router();
    Request& request = request_;
    BlockingPool::Job job = [answer, &router, &request](bool run) {
      if (!run) {
        (*answer)(ProblemResponse(UnavailableError("the server is stopping")));
        return;
      }
      std::optional<Response> now = router.DispatchDeferred(
          request, [answer](Response response) { (*answer)(std::move(response)); });
      if (now) {
        (*answer)(std::move(*now));
      }
    };
    if (!server_.blocking().Submit(job)) {
      Response busy = ProblemResponse(
          UnavailableError("too many requests are waiting for a blocking worker; retry shortly")
              .With(kPayloadReason, "SERVER_BUSY"));
      busy.headers.Set("Retry-After", "1");
      (*answer)(std::move(busy));
    }
  }

  void RespondAndClose(const Status& status) {
    AssignIds();
    Send(ProblemResponse(status), /*close=*/true);
  }

  static bool IsServerHeader(std::string_view name) {
    static constexpr std::array<std::string_view, 9> kOwned = {
        "Content-Length", "Connection",   "Transfer-Encoding", "Keep-Alive", "Server",
        "Date",           "X-Request-Id", "traceparent",       "Upgrade"};
    return std::any_of(kOwned.begin(), kOwned.end(),
                       [&](std::string_view owned) { return internal::IEquals(owned, name); });
  }

  void Send(Response response, bool close) {
    PrepareResponse(response);  // Response::prepare runs here, on the connection's thread
    close = close || server_.draining();
    int status = response.status;
    if (status < 200 || status > 599) {
      // 1xx would need special framing and is never a final answer.
      spdlog::error("http: handler for {} returned status {}; sending 500", match_.route, status);
      status = 500;
      response.body.clear();
    }
    const bool head = request_.method == "HEAD";
    const bool bodiless_status = status == 204 || status == 304;
    std::optional<uint64_t> head_length;  // the GET length a HEAD answer announces

    head_.clear();
    head_ += "HTTP/1.1 ";
    AppendNumber(head_, static_cast<uint64_t>(status));
    head_ += ' ';
    head_ += ReasonPhrase(status);
    head_ += "\r\nServer: evo\r\nDate: ";
    head_ += worker_.date.Get();
    head_ += "\r\n";
    for (const auto& [name, value] : response.headers.All()) {
      if (IsServerHeader(name)) {
        if (head && internal::IEquals(name, "Content-Length")) {
          uint64_t length = 0;
          const char* end = value.data() + value.size();
          const auto [ptr, ec] = std::from_chars(value.data(), end, length);
          if (ec == std::errc() && ptr == end && !value.empty()) {
            head_length = length;
          }
        }
        continue;
      }
      if (!internal::IsToken(name) || !internal::IsFieldValue(value)) {
        // Never let a handler split the response (CR/LF injection).
        spdlog::warn("http: dropped invalid response header on {}", match_.route);
        continue;
      }
      head_ += name;
      head_ += ": ";
      head_ += value;
      head_ += "\r\n";
    }
    head_ += "X-Request-Id: ";
    head_ += request_.request_id;
    head_ += "\r\ntraceparent: 00-";
    head_ += request_.trace_id;
    head_ += '-';
    head_ += request_.span_id;
    head_ += "-01\r\n";
    if (!bodiless_status) {
      head_ += "Content-Length: ";
      AppendNumber(head_, head ? head_length.value_or(response.body.size()) : response.body.size());
      head_ += "\r\n";
    }
    if (close) {
      head_ += "Connection: close\r\n";
    } else if (parser_->version() == 10) {
      head_ += "Connection: keep-alive\r\n";
    }
    head_ += "\r\n";
    if (head || bodiless_status) {
      body_out_.clear();
    } else {
      body_out_ = std::move(response.body);
    }

    Record(status);
    close_after_write_ = close;
    state_ = State::kWriting;
    stream_.expires_after(server_.options().write_timeout);
    const std::array<asio::const_buffer, 2> buffers = {asio::buffer(head_),
                                                       asio::buffer(body_out_)};
    asio::async_write(stream_, buffers,
                      [self = shared_from_this()](ErrorCode ec, size_t) { self->OnWrite(ec); });
  }

  void Record(int status) {
    const double seconds = std::chrono::duration<double>(Now() - request_start_).count();
    const std::string_view method = MethodLabel(request_.method);
    const std::string_view route = match_.found ? std::string_view(match_.route) : "unmatched";
    const RouteMetrics& children = worker_.metrics.Get(route, method, status);
    children.requests->Inc();
    children.duration->Observe(seconds);
    if (server_.options().access_log) {
      logging::AccessRecord record;
      record.method = request_.method;
      record.target = request_.target;
      record.route = match_.found ? std::string_view(match_.route) : std::string_view();
      record.status = status;
      record.duration_seconds = seconds;
      record.bytes_in = bytes_in_;
      record.bytes_out = head_.size() + body_out_.size();
      record.remote = remote_;
      record.request_id = request_.request_id;
      record.trace_id = request_.trace_id;
      record.span_id = request_.span_id;
      logging::LogAccess(record);
    }
  }

  void OnWrite(ErrorCode ec) {
    if (ec) {  // peer gone, or the write timeout (slow reader)
      CloseNow();
      return;
    }
    if (body_out_.capacity() > kRetainedBytes) {
      std::string().swap(body_out_);
    }
    if (close_after_write_) {
      LingerAndClose();
      return;
    }
    first_request_ = false;
    if (buffer_.size() == 0 && buffer_.capacity() > kRetainedBytes) {
      buffer_.shrink_to_fit();
    }
    WaitForRequest();
  }

  void LingerAndClose() {
    state_ = State::kClosing;
    ErrorCode ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      CloseNow();
      return;
    }
    linger_deadline_ = Now() + kLingerTime;
    linger_bytes_ = 0;
    Discard();
  }

  void Discard() {
    buffer_.consume(buffer_.size());
    stream_.expires_at(linger_deadline_);
    stream_.async_read_some(buffer_.prepare(kHeaderReadChunk),
                            [self = shared_from_this()](ErrorCode ec, size_t n) {
                              self->linger_bytes_ += n;
                              if (ec || self->linger_bytes_ > kLingerMaxBytes) {
                                self->CloseNow();
                                return;
                              }
                              self->Discard();
                            });
  }

  Worker& worker_;
  ServerImpl& server_;
  Stream stream_;
  beast::flat_buffer buffer_;
  Request request_;                      // reused: cleared, not reallocated, between requests
  std::optional<RequestParser> parser_;  // after request_, which it refers to
  Router::Match match_;
  std::string head_;
  std::string body_out_;
  std::string remote_;
  std::string origin_form_;  // path-and-query of an absolute-form target
  State state_ = State::kIdle;
  bool first_request_ = true;
  bool close_after_write_ = false;
  size_t bytes_in_ = 0;
  size_t linger_bytes_ = 0;
  SteadyTime request_start_;
  SteadyTime header_deadline_;
  SteadyTime body_deadline_;
  SteadyTime linger_deadline_;
};

Status ServerImpl::Listen() {
  const auto address = ParseListen(options_.listen);
  if (!address) {
    return InvalidArgumentError("listen: expected HOST:PORT");
  }
  ErrorCode ec;
  asio::ip::address ip = asio::ip::make_address(address->host, ec);
  if (ec) {
    if (address->host.empty() || address->host == "*") {
      ip = asio::ip::address_v4::any();
    } else {
      asio::io_context resolver_context;
      tcp::resolver resolver(resolver_context);
      const auto results = resolver.resolve(address->host, "", ec);
      if (ec || results.empty()) {
        return UnavailableError("cannot resolve listen host '" + address->host +
                                "': " + ec.message());
      }
      ip = results.begin()->endpoint().address();
    }
  }
  const std::string where = options_.listen;
  auto bind_error = [&where](const char* step, const ErrorCode& error) {
    const std::string message =
        std::string("cannot ") + step + " " + where + ": " + error.message();
    return error == asio::error::address_in_use ? UnavailableError(message)
                                                : FailedPreconditionError(message);
  };

  if (address->port != 0) {
    // SO_REUSEPORT would let us share the port with another process that also set it
    // (a second evo on the same port) and silently split its traffic. A plain bind (with
    // SO_REUSEADDR only, so TIME_WAIT does not count) fails if anything listens there.
    asio::io_context probe_context;
    tcp::acceptor probe(probe_context);
    const tcp::endpoint endpoint(ip, address->port);
    probe.open(endpoint.protocol(), ec);
    if (!ec) {
      probe.set_option(tcp::acceptor::reuse_address(true), ec);
    }
    if (!ec) {
      probe.bind(endpoint, ec);
    }
    if (ec) {
      return bind_error("bind", ec);
    }
  }

  int threads = options_.threads;
  if (threads <= 0) {
    threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  }
  uint16_t port = address->port;
  for (int i = 0; i < threads; ++i) {
    auto worker = std::make_unique<Worker>(*this, requests_, duration_);
    Acceptor& acceptor = worker->acceptor;
    const tcp::endpoint endpoint(ip, port);
    acceptor.open(endpoint.protocol(), ec);
    if (ec) {
      return bind_error("open a socket for", ec);
    }
    acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) {
      acceptor.set_option(ReusePort(true), ec);
    }
    if (ec) {
      return bind_error("set socket options for", ec);
    }
    acceptor.bind(endpoint, ec);
    if (ec) {
      return bind_error("bind", ec);
    }
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return bind_error("listen on", ec);
    }
    if (i == 0) {
      port = acceptor.local_endpoint(ec).port();  // the kernel's choice for port 0
      if (ec) {
        return bind_error("read the port of", ec);
      }
    }
    workers_.push_back(std::move(worker));
  }
  port_ = port;
  return OkStatus();
}

void ServerImpl::Run() {
  for (auto& worker : workers_) {
    worker->work.emplace(worker->ioc.get_executor());
    Accept(*worker);
    worker->thread = std::thread([w = worker.get()] {
      // Handlers do not throw (the router catches), but an allocation failure inside Asio
      // or Beast would; keep the thread serving rather than terminating the process.
      while (true) {
        try {
          w->ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http: I/O thread caught: {}", e.what());
        } catch (...) {
          spdlog::error("http: I/O thread caught a non-standard exception");
        }
      }
    });
  }
}

void ServerImpl::Accept(Worker& worker) {
  worker.acceptor.async_accept([this, &worker](ErrorCode ec, Socket socket) {
    if (ec == asio::error::operation_aborted || !worker.acceptor.is_open()) {
      return;
    }
    if (ec) {
      // Typically EMFILE/ENFILE: back off briefly instead of spinning on the error.
      spdlog::warn("http: accept failed: {}", ec.message());
      worker.accept_retry.expires_after(std::chrono::milliseconds(50));
      worker.accept_retry.async_wait([this, &worker](ErrorCode wait_ec) {
        if (!wait_ec && worker.acceptor.is_open()) {
          Accept(worker);
        }
      });
      return;
    }
    if (draining() || !TryOpenConnection()) {
      ErrorCode ignored;
      socket.close(ignored);
    } else {
      std::make_shared<Session>(worker, std::move(socket))->Start();
    }
    Accept(worker);
  });
}

void ServerImpl::CloseListeners(bool close_all_sessions) {
  for (auto& worker : workers_) {
    asio::post(worker->ioc, [w = worker.get(), close_all_sessions] {
      ErrorCode ignored;
      w->acceptor.close(ignored);
      w->accept_retry.cancel();
      // OnDrain/CloseNow only cancel I/O; completions run later, so no session is
      // destroyed (and erased from the set) while we iterate.
      for (Session* session : w->sessions) {
        if (close_all_sessions) {
          session->CloseNow();
        } else {
          session->OnDrain();
        }
      }
    });
  }
}

void ServerImpl::Drain(std::chrono::milliseconds timeout) {
  if (stopped_.load()) {
    return;
  }
  draining_.store(true, std::memory_order_release);
  CloseListeners(/*close_all_sessions=*/false);
  {
    std::unique_lock lock(drain_mu_);
    drain_cv_.wait_for(lock, timeout, [this] { return open_.load() == 0; });
  }
  Stop();
}

void ServerImpl::Stop() {
  if (stopped_.exchange(true)) {
    return;
  }
  draining_.store(true, std::memory_order_release);
  // Blocking routes reference their sessions' requests: done (or answered) before any
  // session can go.
  blocking_.Stop();
  CloseListeners(/*close_all_sessions=*/true);
  for (auto& worker : workers_) {
    worker->work.reset();
  }
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) {
      worker->thread.join();
    }
  }
}

}  // namespace

Status Validate(const ServerOptions& options) {
  if (!ParseListen(options.listen)) {
    return InvalidArgumentError("listen: expected HOST:PORT (IPv6 in brackets), got '" +
                                options.listen + "'");
  }
  if (options.threads < 0 || options.threads > 1024) {
    return InvalidArgumentError("threads: must be 0 (one per core) to 1024");
  }
  if (options.max_body_bytes == 0) {
    return InvalidArgumentError("max_body_bytes: must be positive");
  }
  if (options.max_header_bytes < 1024 || options.max_header_bytes > (16U << 20)) {
    return InvalidArgumentError("max_header_bytes: must be 1 KiB to 16 MiB");
  }
  if (options.max_connections == 0) {
    return InvalidArgumentError("max_connections: must be positive");
  }
  if (options.header_timeout.count() <= 0) {
    return InvalidArgumentError("header_timeout: must be positive");
  }
  if (options.body_timeout.count() <= 0) {
    return InvalidArgumentError("body_timeout: must be positive");
  }
  if (options.idle_timeout.count() <= 0) {
    return InvalidArgumentError("idle_timeout: must be positive");
  }
  if (options.write_timeout.count() <= 0) {
    return InvalidArgumentError("write_timeout: must be positive");
  }
  if (options.blocking_threads < 1 || options.blocking_threads > 256) {
    return InvalidArgumentError("blocking_threads: must be 1 to 256");
  }
  if (options.blocking_queue == 0) {
    return InvalidArgumentError("blocking_queue: must be positive");
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, const Router& router,
                                                metrics::Registry& registry) {
  EVO_RETURN_IF_ERROR(Validate(options));
  try {
    auto server = std::make_unique<ServerImpl>(options, router, registry);
    EVO_RETURN_IF_ERROR(server->Listen());
    server->Run();
    return std::unique_ptr<Server>(std::move(server));
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot start the HTTP server: ") + e.what());
  }
}

}  // namespace evo::http
