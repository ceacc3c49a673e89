// The outbound HTTP client: one thread driving a libcurl multi handle.
#include "outbound/client.hpp"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace evo::outbound {
namespace {

constexpr size_t kMaxBodyLimit = size_t{64} << 20;
// Easy handles kept for reuse; more than this many finished at once are freed.
constexpr size_t kMaxFreeEasyHandles = 64;

Status InitCurlOnce() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK) {
    return InternalError(std::string("curl_global_init failed: ") + curl_easy_strerror(result));
  }
  return OkStatus();
}

bool HasCrLfNul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

// RFC 9110 tchar.
bool IsTokenChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

Status ValidateRequest(const Request& request) {
  if (request.method.empty() || request.method.size() > 32) {
    return InvalidArgumentError("method must be 1..32 characters");
  }
  for (char c : request.method) {
    if (!(c >= 'A' && c <= 'Z')) {
      return InvalidArgumentError("method must be upper-case letters (\"POST\")");
    }
  }
  if (request.timeout.count() <= 0) {
    return InvalidArgumentError("timeout must be positive");
  }
  if (request.connect_timeout.count() <= 0) {
    return InvalidArgumentError("connect_timeout must be positive");
  }
  for (const auto& [name, value] : request.headers) {
    if (name.empty()) {
      return InvalidArgumentError("header name must not be empty");
    }
    for (char c : name) {
      if (!IsTokenChar(c)) {
        return InvalidArgumentError("header name \"" + name + "\" is not an HTTP token");
      }
    }
    if (HasCrLfNul(value)) {
      return InvalidArgumentError("header \"" + name + "\" has CR, LF or NUL in its value");
    }
    // The client frames the body itself; a caller's framing header would desynchronise it.
    if (EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding")) {
      return InvalidArgumentError("header \"" + name + "\" is set by the client");
    }
  }
  return OkStatus();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string_view OutcomeLabel(const Response& r) {
  if (r.error.ok()) {
    static constexpr std::string_view kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    const int c = r.status / 100;
    return c >= 1 && c <= 5 ? kClasses[c - 1] : "error";
  }
  switch (r.error.code()) {
    case StatusCode::kDeadlineExceeded:
      return "timeout";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kPermissionDenied:
      return "ssrf_blocked";
    case StatusCode::kInvalidArgument:
      return "invalid";
    case StatusCode::kCancelled:
      return "cancelled";
    default:
      return "error";
  }
}

}  // namespace

const std::string* Response::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) {
      return &v;
    }
  }
  return nullptr;
}

Status Validate(const ClientOptions& options) {
  if (options.max_body_bytes > kMaxBodyLimit) {
    return InvalidArgumentError("max_body_bytes must be at most 64 MiB");
  }
  if (options.max_host_connections < 1) {
    return InvalidArgumentError("max_host_connections must be at least 1");
  }
  if (options.max_total_connections < options.max_host_connections) {
    return InvalidArgumentError("max_total_connections must be at least max_host_connections");
  }
  if (HasCrLfNul(options.user_agent)) {
    return InvalidArgumentError("user_agent must not contain CR, LF or NUL");
  }
  if (options.follow_redirects) {
    return InvalidArgumentError("follow_redirects is not supported: redirects are never followed");
  }
  return OkStatus();
}

struct Client::Impl {
  // A request waiting in the inbox.
  struct Pending {
    Request request;
    std::function<void(Response)> done;
    Clock::SteadyTime started;
  };

  // A request handed to curl. Lives in `active` from curl_multi_add_handle until its
  // CURLMSG_DONE; curl's callbacks get a pointer to it.
  struct Transfer {
    Impl* impl = nullptr;
    CURL* easy = nullptr;
    Request request;  // CURLOPT_POSTFIELDS points into request.body
    Url url;
    std::string host_key;
    std::function<void(Response)> done;
    Clock::SteadyTime started;
    Response response;
    curl_slist* headers = nullptr;
    Status blocked;  // the first address the guard refused, if any
    char error[CURL_ERROR_SIZE] = {};

    ~Transfer() { curl_slist_free_all(headers); }
  };

  Impl(ClientOptions o, metrics::Registry* registry)
      : options(std::move(o)), clock(options.clock != nullptr ? *options.clock : RealClock()) {
    if (registry != nullptr) {
      requests_total = &registry->AddCounter("evo_outbound_requests_total",
                                             "Outbound HTTP requests by outcome.", {"outcome"});
      duration = &registry
                      ->AddHistogram("evo_outbound_request_duration_seconds",
                                     "Outbound HTTP request latency, from Send to completion.")
                      .Get();
      in_flight_gauge =
          &registry->AddGauge("evo_outbound_in_flight", "Outbound HTTP requests not yet done.")
               .Get();
    }
  }

  ~Impl() {
    for (CURL* easy : free_easy) {
      curl_easy_cleanup(easy);
    }
    if (multi != nullptr) {
      curl_multi_cleanup(multi);  // may still tell OnSocket to forget connections: epoll last
    }
    if (wake_fd >= 0) {
      close(wake_fd);
    }
    if (epoll_fd >= 0) {
      close(epoll_fd);
    }
  }

  // Wakes the client's thread (Send, Stop).
  void Wake() const {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = write(wake_fd, &one, sizeof one);
  }

  void Run();
  // Requests to one scheme://host:port: those on the wire, and those waiting for one of them
  // to end (at most max_host_connections run at once).
  struct Host {
    long running = 0;
    std::deque<std::unique_ptr<Transfer>> waiting;
  };

  void StartTransfer(Pending pending);
  void Launch(std::unique_ptr<Transfer> t, Host& host);
  void Release(const std::string& host_key);
  void ExpireWaiting();
  Status Configure(Transfer& t, std::chrono::milliseconds timeout);
  void FinishTransfers();
  void CancelAll();
  void Complete(std::function<void(Response)>& done, Response response, Clock::SteadyTime started);
  void ReturnEasy(CURL* easy);

  static curl_socket_t OpenSocket(void* clientp, curlsocktype purpose, curl_sockaddr* address);
  static int OnSocket(CURL* easy, curl_socket_t fd, int what, void* userp, void* socketp);
  static int OnTimer(CURLM* multi, long timeout_ms, void* userp);
  static size_t OnHeader(char* data, size_t size, size_t n, void* userdata);
  static size_t OnBody(char* data, size_t size, size_t n, void* userdata);

  const ClientOptions options;
  const Clock& clock;
  metrics::Family<metrics::Counter>* requests_total = nullptr;
  metrics::Histogram* duration = nullptr;
  metrics::Gauge* in_flight_gauge = nullptr;

  CURLM* multi = nullptr;
  int epoll_fd = -1;  // the sockets curl asks to watch (OnSocket), and wake_fd
  int wake_fd = -1;   // an eventfd: Send and Stop write to it
  std::atomic<size_t> in_flight{0};
  // Client's thread only: when curl wants CURL_SOCKET_TIMEOUT (OnTimer); nullopt = never.
  std::optional<std::chrono::steady_clock::time_point> curl_deadline;

  // Client's thread only.
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> active;
  std::unordered_map<std::string, Host> hosts;
  size_t waiting = 0;  // over all hosts
  Clock::SteadyTime next_expire{};
  std::vector<CURL*> free_easy;

  std::mutex inbox_mu;
  std::deque<Pending> inbox;  // guarded by inbox_mu
  bool stopping = false;      // guarded by inbox_mu

  std::mutex stop_mu;  // serialises Stop() callers
  std::thread thread;
};

StatusOr<std::unique_ptr<Client>> Client::Start(ClientOptions options,
                                                metrics::Registry* registry) {
  EVO_RETURN_IF_ERROR(Validate(options));
  EVO_RETURN_IF_ERROR(InitCurlOnce());
  auto impl = std::make_unique<Impl>(std::move(options), registry);
  impl->multi = curl_multi_init();
  if (impl->multi == nullptr) {
    return InternalError("curl_multi_init failed");
  }
  impl->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  impl->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->epoll_fd < 0 || impl->wake_fd < 0) {
    return InternalError(std::string("epoll/eventfd: ") + std::strerror(errno));
  }
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.fd = impl->wake_fd;
  if (epoll_ctl(impl->epoll_fd, EPOLL_CTL_ADD, impl->wake_fd, &wake) != 0) {
    return InternalError(std::string("epoll_ctl: ") + std::strerror(errno));
  }
  Impl* raw = impl.get();
  const long total = impl->options.max_total_connections;
  // The socket interface: curl says which sockets to watch and when its next timer is due,
  // and is then told only about the sockets that are ready, so that the work per wake-up
  // does not grow with the number of transfers (curl_multi_perform walks all of them).
  if (curl_multi_setopt(impl->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                        impl->options.max_host_connections) != CURLM_OK ||
      curl_multi_setopt(impl->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total) != CURLM_OK ||
      curl_multi_setopt(impl->multi, CURLMOPT_MAXCONNECTS, total) != CURLM_OK ||
      curl_multi_setopt(impl->multi, CURLMOPT_SOCKETFUNCTION, &Impl::OnSocket) != CURLM_OK ||
      curl_multi_setopt(impl->multi, CURLMOPT_SOCKETDATA, static_cast<void*>(raw)) != CURLM_OK ||
      curl_multi_setopt(impl->multi, CURLMOPT_TIMERFUNCTION, &Impl::OnTimer) != CURLM_OK ||
      curl_multi_setopt(impl->multi, CURLMOPT_TIMERDATA, static_cast<void*>(raw)) != CURLM_OK) {
    return InternalError("curl_multi_setopt failed");
  }
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client() { Stop(); }

size_t Client::in_flight() const { return impl_->in_flight.load(std::memory_order_relaxed); }

void Client::Send(Request request, std::function<void(Response)> done) {
  const Clock::SteadyTime started = impl_->clock.Monotonic();
  bool wake = false;
  {
    std::lock_guard lock(impl_->inbox_mu);
    if (!impl_->stopping) {
      // Only the first request of a batch wakes the thread: it takes the whole inbox.
      wake = impl_->inbox.empty();
      impl_->inbox.push_back({std::move(request), std::move(done), started});
      impl_->in_flight.fetch_add(1, std::memory_order_relaxed);
      if (impl_->in_flight_gauge != nullptr) {
        impl_->in_flight_gauge->Inc();
      }
      done = nullptr;
    }
  }
  if (done == nullptr) {
    if (wake) {
      impl_->Wake();
    }
    return;
  }
  Response response;
  response.error = CancelledError("the outbound client is stopped");
  impl_->in_flight.fetch_add(1, std::memory_order_relaxed);  // Complete() takes it off again
  if (impl_->in_flight_gauge != nullptr) {
    impl_->in_flight_gauge->Inc();
  }
  impl_->Complete(done, std::move(response), started);
}

void Client::Stop() {
  std::lock_guard stop_lock(impl_->stop_mu);
  {
    std::lock_guard lock(impl_->inbox_mu);
    impl_->stopping = true;
  }
  if (impl_->thread.joinable()) {
    impl_->Wake();
    if (impl_->thread.get_id() == std::this_thread::get_id()) {
      // Called from a `done` callback despite the REQUIRES: joining would deadlock. The loop
      // ends after the callback returns; the destructor (on another thread) joins.
      return;
    }
    impl_->thread.join();
  }
}

void Client::Impl::Run() {
  std::deque<Pending> batch;
  while (true) {
    bool stop = false;
    {
      std::lock_guard lock(inbox_mu);
      batch.swap(inbox);
      stop = stopping;
    }
    if (stop) {
      for (Pending& p : batch) {
        Response response;
        response.error = CancelledError("the outbound client stopped");
        Complete(p.done, std::move(response), p.started);
      }
      break;
    }
    for (Pending& p : batch) {
      StartTransfer(std::move(p));  // curl asks for its timer at once (OnTimer, 0 ms)
    }
    batch.clear();
    int running = 0;
    int wait_ms = 1000;
    if (waiting > 0) {
      if (const auto now = clock.Monotonic(); now >= next_expire) {
        ExpireWaiting();
        next_expire = now + std::chrono::milliseconds(100);
      }
      wait_ms = 100;
    }
    if (curl_deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(
          *curl_deadline - std::chrono::steady_clock::now());
      wait_ms = static_cast<int>(std::clamp<int64_t>(left.count(), 0, wait_ms));
    }
    // Wakes up early for socket activity, curl's timer and wake_fd (Send, Stop).
    epoll_event events[64];
    const int n = epoll_wait(epoll_fd, events, 64, wait_ms);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd) {
        uint64_t count = 0;
        [[maybe_unused]] const ssize_t r = read(wake_fd, &count, sizeof count);
        continue;
      }
      int mask = 0;
      if ((events[i].events & EPOLLIN) != 0) {
        mask |= CURL_CSELECT_IN;
      }
      if ((events[i].events & EPOLLOUT) != 0) {
        mask |= CURL_CSELECT_OUT;
      }
      if ((events[i].events & (EPOLLERR | EPOLLHUP)) != 0) {
        mask |= CURL_CSELECT_ERR;
      }
      curl_multi_socket_action(multi, fd, mask, &running);
    }
    if (curl_deadline && std::chrono::steady_clock::now() >= *curl_deadline) {
      curl_deadline.reset();  // OnTimer sets the next one
      curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    FinishTransfers();
  }
  CancelAll();
}

int Client::Impl::OnSocket(CURL* /*easy*/, curl_socket_t fd, int what, void* userp, void* socketp) {
  auto* impl = static_cast<Impl*>(userp);
  if (what == CURL_POLL_REMOVE) {
    // curl may already have closed it; then the kernel forgot it too.
    epoll_ctl(impl->epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    return 0;
  }
  epoll_event ev{};
  ev.events = (what == CURL_POLL_IN || what == CURL_POLL_INOUT ? EPOLLIN : 0U) |
              (what == CURL_POLL_OUT || what == CURL_POLL_INOUT ? EPOLLOUT : 0U);
  ev.data.fd = fd;
  if (socketp == nullptr) {
    if (epoll_ctl(impl->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST) {
      epoll_ctl(impl->epoll_fd, EPOLL_CTL_MOD, fd, &ev);
    }
    curl_multi_assign(impl->multi, fd, impl);  // marks it as watched
  } else if (epoll_ctl(impl->epoll_fd, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT) {
    epoll_ctl(impl->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
  }
  return 0;
}

int Client::Impl::OnTimer(CURLM* /*multi*/, long timeout_ms, void* userp) {
  auto* impl = static_cast<Impl*>(userp);
  if (timeout_ms < 0) {
    impl->curl_deadline.reset();
  } else {
    impl->curl_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  }
  return 0;
}

void Client::Impl::StartTransfer(Pending pending) {
  auto t = std::make_unique<Transfer>();
  t->impl = this;
  t->request = std::move(pending.request);
  t->done = std::move(pending.done);
  t->started = pending.started;
  Status valid = ValidateRequest(t->request);
  StatusOr<Url> url = InvalidArgumentError("unset");
  if (valid.ok()) {
    url = ParseUrl(t->request.url);
    valid = url.status();
  }
  if (valid.ok()) {
    valid = CheckUrl(*url, options.ssrf);
  }
  if (!valid.ok()) {
    Response response;
    response.error = std::move(valid);
    Complete(t->done, std::move(response), t->started);
    return;
  }
  t->url = *std::move(url);
  t->host_key = fmt::format("{}://{}:{}", t->url.scheme, t->url.host, t->url.port);
  auto it = hosts.try_emplace(t->host_key).first;
  Host& host = it->second;
  if (host.running >= options.max_host_connections) {
    // Wait here rather than inside curl, whose every wake-up would walk the waiting ones.
    host.waiting.push_back(std::move(t));
    ++waiting;
    return;
  }
  Launch(std::move(t), host);
  if (host.running == 0 && host.waiting.empty()) {
    hosts.erase(it);  // it failed at once: nothing to remember about the host
  }
}

void Client::Impl::Launch(std::unique_ptr<Transfer> t, Host& host) {
  // What is left of the request's timeout after waiting for a connection.
  const auto left = t->request.timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                             clock.Monotonic() - t->started);
  Status valid;
  if (left.count() <= 0) {
    valid = DeadlineExceededError(
        fmt::format("timed out after {} ms waiting for a connection to {} (at most {} at once)",
                    t->request.timeout.count(), t->host_key, options.max_host_connections));
  } else {
    if (!free_easy.empty()) {
      t->easy = free_easy.back();
      free_easy.pop_back();
      curl_easy_reset(t->easy);
    } else {
      t->easy = curl_easy_init();
    }
    valid = t->easy == nullptr ? InternalError("curl_easy_init failed") : Configure(*t, left);
  }
  if (valid.ok() && curl_multi_add_handle(multi, t->easy) != CURLM_OK) {
    valid = InternalError("curl_multi_add_handle failed");
  }
  if (!valid.ok()) {
    if (t->easy != nullptr) {
      ReturnEasy(t->easy);
    }
    Response response;
    response.error = std::move(valid);
    Complete(t->done, std::move(response), t->started);
    return;
  }
  ++host.running;
  CURL* easy = t->easy;
  active.emplace(easy, std::move(t));
}

// A transfer to `host_key` ended: the next one waiting for that host takes its place.
void Client::Impl::Release(const std::string& host_key) {
  auto it = hosts.find(host_key);
  if (it == hosts.end()) {
    return;
  }
  Host& host = it->second;
  --host.running;
  while (!host.waiting.empty() && host.running < options.max_host_connections) {
    std::unique_ptr<Transfer> next = std::move(host.waiting.front());
    host.waiting.pop_front();
    --waiting;
    Launch(std::move(next), host);
  }
  if (host.running == 0 && host.waiting.empty()) {
    hosts.erase(it);
  }
}

// Fails the waiting requests whose whole timeout has passed (each host's queue is in Send
// order, and timeouts are mostly equal, so looking at the front is nearly always enough).
void Client::Impl::ExpireWaiting() {
  const auto now = clock.Monotonic();
  for (auto& [key, host] : hosts) {
    while (!host.waiting.empty()) {
      Transfer& t = *host.waiting.front();
      if (now - t.started < t.request.timeout) {
        break;
      }
      std::unique_ptr<Transfer> expired = std::move(host.waiting.front());
      host.waiting.pop_front();
      --waiting;
      Response response;
      response.error = DeadlineExceededError(
          fmt::format("timed out after {} ms waiting for a connection to {} (at most {} at once)",
                      expired->request.timeout.count(), key, options.max_host_connections));
      Complete(expired->done, std::move(response), expired->started);
    }
  }
}

Status Client::Impl::Configure(Transfer& t, std::chrono::milliseconds timeout) {
  CURL* e = t.easy;
  const Url& url = t.url;
  const Request& r = t.request;
  bool has_user_agent = false;
  for (const auto& [name, value] : r.headers) {
    has_user_agent = has_user_agent || EqualsIgnoreCase(name, "User-Agent");
    // "Name;" is curl's spelling of a header with an empty value ("Name:" would remove it).
    std::string line = name;
    line += value.empty() ? ";" : ": ";
    line += value;
    curl_slist* next = curl_slist_append(t.headers, line.c_str());
    if (next == nullptr) {
      return InternalError("curl_slist_append failed");
    }
    t.headers = next;
  }
  if (curl_slist* next = curl_slist_append(t.headers, "Expect:"); next != nullptr) {
    t.headers = next;
  }
  const std::string target = url.ToString();
  bool ok = true;
  auto set = [&](CURLoption option, auto value) {
    ok = ok && curl_easy_setopt(e, option, value) == CURLE_OK;
  };
  set(CURLOPT_URL, target.c_str());
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);
  set(CURLOPT_PROXY, "");  // never a proxy, not even from http_proxy & co.
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  set(CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connect_timeout.count()));
  set(CURLOPT_SSL_VERIFYPEER, 1L);
  set(CURLOPT_SSL_VERIFYHOST, 2L);
  if (!has_user_agent && !options.user_agent.empty()) {
    set(CURLOPT_USERAGENT, options.user_agent.c_str());
  }
  set(CURLOPT_HTTPHEADER, t.headers);
  set(CURLOPT_OPENSOCKETFUNCTION, &Impl::OpenSocket);
  set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(&t));
  set(CURLOPT_HEADERFUNCTION, &Impl::OnHeader);
  set(CURLOPT_HEADERDATA, static_cast<void*>(&t));
  set(CURLOPT_WRITEFUNCTION, &Impl::OnBody);
  set(CURLOPT_WRITEDATA, static_cast<void*>(&t));
  set(CURLOPT_ERRORBUFFER, t.error);
  set(CURLOPT_PRIVATE, static_cast<void*>(&t));
  if (r.method == "HEAD") {
    set(CURLOPT_NOBODY, 1L);
  } else if (r.method == "GET" && r.body.empty()) {
    set(CURLOPT_HTTPGET, 1L);
  } else if (r.method == "POST" || !r.body.empty()) {
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    set(CURLOPT_POSTFIELDS, r.body.data());
    if (r.method != "POST") {
      set(CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }
  } else {
    set(CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
  if (!ok) {
    return InternalError("curl_easy_setopt failed (libcurl too old?)");
  }
  return OkStatus();
}

// Runs for every connection curl is about to make, with the address it resolved: the guard's
// connect-time check. Returning CURL_SOCKET_BAD makes curl try the next address, if any.
curl_socket_t Client::Impl::OpenSocket(void* clientp, curlsocktype /*purpose*/,
                                       curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(clientp);
  Status allowed;
  if (auto ip = FromSockaddr(&address->addr, address->addrlen)) {
    allowed = CheckAddress(*ip, t->impl->options.ssrf);
  } else {
    allowed = PermissionDeniedError(std::string(kReasonSsrfBlocked) +
                                    ": not an IPv4 or IPv6 address (family " +
                                    std::to_string(address->family) + ")")
                  .With(kPayloadReason, std::string(kReasonSsrfBlocked));
  }
  if (!allowed.ok()) {
    if (t->blocked.ok()) {
      if (!t->url.ip) {
        // The host is a name: what it resolved to is internal knowledge, for the log only,
        // never for whoever reads the error (an API client, through attempts).
        spdlog::warn("outbound: {} refused: {}", t->url.host, allowed.message());
        allowed = PermissionDeniedError(std::string(kReasonSsrfBlocked) + ": " + t->url.host +
                                        " resolves to an address the SSRF guard refuses")
                      .With(kPayloadReason, std::string(kReasonSsrfBlocked));
      }
      t->blocked = std::move(allowed);
    }
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

size_t Client::Impl::OnHeader(char* data, size_t size, size_t n, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  const size_t len = size * n;
  std::string_view line = Trim(std::string_view(data, len));
  Response& r = t->response;
  if (line.substr(0, 5) == "HTTP/") {
    r.headers.clear();  // a new response begins (after a 1xx, the final one)
  } else if (size_t colon = line.find(':');
             colon != std::string_view::npos && r.headers.size() < kMaxResponseHeaders) {
    r.headers.emplace_back(std::string(Trim(line.substr(0, colon))),
                           std::string(Trim(line.substr(colon + 1))));
  }
  return len;
}

size_t Client::Impl::OnBody(char* data, size_t size, size_t n, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  const size_t len = size * n;
  Response& r = t->response;
  const size_t room = t->impl->options.max_body_bytes - r.body.size();
  if (len > room) {
    r.body_truncated = true;
  }
  r.body.append(data, std::min(len, room));
  return len;
}

void Client::Impl::FinishTransfers() {
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
    if (msg->msg != CURLMSG_DONE) {
      continue;
    }
    CURL* easy = msg->easy_handle;
    const CURLcode code = msg->data.result;  // read before remove_handle frees msg
    curl_multi_remove_handle(multi, easy);
    auto it = active.find(easy);
    if (it == active.end()) {
      continue;
    }
    std::unique_ptr<Transfer> t = std::move(it->second);
    active.erase(it);
    Response& r = t->response;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    r.status = static_cast<int>(status);
    char* ip = nullptr;
    long port = 0;
    if (curl_easy_getinfo(easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip != nullptr &&
        *ip != '\0') {
      curl_easy_getinfo(easy, CURLINFO_PRIMARY_PORT, &port);
      const bool v6 = std::strchr(ip, ':') != nullptr;
      r.remote_address = v6 ? "[" : "";
      r.remote_address.append(ip);
      r.remote_address.append(v6 ? "]:" : ":");
      r.remote_address.append(std::to_string(port));
    }
    std::string detail = t->error[0] != '\0' ? t->error : curl_easy_strerror(code);
    switch (code) {
      case CURLE_OK:
        break;
      case CURLE_OPERATION_TIMEDOUT:
        r.error = DeadlineExceededError(detail);
        break;
      case CURLE_COULDNT_CONNECT:
        // Every address either refused by the guard or unreachable: the guard's refusal is
        // the news.
        r.error = t->blocked.ok() ? UnavailableError(detail) : t->blocked;
        break;
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_WEIRD_SERVER_REPLY:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      case CURLE_SSL_INVALIDCERTSTATUS:
      case CURLE_SSL_SHUTDOWN_FAILED:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
      case CURLE_HTTP3:
      case CURLE_QUIC_CONNECT_ERROR:
      case CURLE_BAD_CONTENT_ENCODING:
        r.error = UnavailableError(detail);
        break;
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
        r.error = InvalidArgumentError(detail);
        break;
      default:
        r.error = InternalError(detail);
        break;
    }
    if (!r.error.ok()) {
      r.body.clear();  // a partial body is not a response
      r.body_truncated = false;
    }
    ReturnEasy(easy);
    Complete(t->done, std::move(r), t->started);
    Release(t->host_key);
  }
}

void Client::Impl::CancelAll() {
  for (auto& [easy, t] : active) {
    curl_multi_remove_handle(multi, easy);
    Response response;
    response.error = CancelledError("the outbound client stopped");
    ReturnEasy(easy);
    Complete(t->done, std::move(response), t->started);
  }
  active.clear();
  for (auto& [key, host] : hosts) {
    for (auto& t : host.waiting) {
      Response response;
      response.error = CancelledError("the outbound client stopped");
      Complete(t->done, std::move(response), t->started);
    }
  }
  hosts.clear();
  waiting = 0;
}

void Client::Impl::ReturnEasy(CURL* easy) {
  if (free_easy.size() < kMaxFreeEasyHandles) {
    free_easy.push_back(easy);
  } else {
    curl_easy_cleanup(easy);
  }
}

void Client::Impl::Complete(std::function<void(Response)>& done, Response response,
                            Clock::SteadyTime started) {
  response.latency =
      std::chrono::duration_cast<std::chrono::microseconds>(clock.Monotonic() - started);
  if (requests_total != nullptr) {
    requests_total->Get({std::string(OutcomeLabel(response))}).Inc();
    duration->Observe(std::chrono::duration<double>(response.latency).count());
    in_flight_gauge->Dec();
  }
  in_flight.fetch_sub(1, std::memory_order_relaxed);
  if (!done) {
    return;
  }
  // No exception may unwind through curl or the client's thread.
  try {
    done(std::move(response));
  } catch (const std::exception& e) {
    spdlog::error("outbound: a done callback threw: {}", e.what());
  } catch (...) {
    spdlog::error("outbound: a done callback threw a non-standard exception");
  }
}

}  // namespace evo::outbound
