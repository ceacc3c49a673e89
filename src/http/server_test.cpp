// Real-socket tests: a Server on 127.0.0.1:0 and a deliberately dumb blocking client that
// writes raw bytes, so malformed and hostile requests can be sent as they are.
#include "http/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <map>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace evo::http {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  std::string Header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // One response; nullopt when the connection ends (or 5 s pass) before it is complete.
  std::optional<RawResponse> Read(bool head_request = false) {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) {
        return std::nullopt;
      }
    }
    RawResponse response;
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    response.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end - start);
      const size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      EXPECT_EQ(response.headers.count(name), 0U) << "duplicate header " << name;
      response.headers[name] = line.substr(colon + 2);
    }
    size_t length = 0;
    if (!head_request && response.headers.count("content-length")) {
      length = std::stoul(response.headers["content-length"]);
    }
    while (buffer_.size() < length) {
      if (!Fill()) {
        return std::nullopt;
      }
    }
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  // True when the server closes the connection within `within` (EOF or reset).
  bool ClosedWithin(std::chrono::milliseconds within) {
    pollfd p{fd_, POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (::poll(&p, 1, static_cast<int>(left.count()) + 1) <= 0) {
        return false;
      }
      char byte;
      const ssize_t n = ::recv(fd_, &byte, 1, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        return true;
      }
      if (n < 0) {
        return false;
      }
    }
    return false;
  }

 private:
  bool Fill() {
    char chunk[16384];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      return false;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_;
  bool connected_ = false;
  std::string buffer_;
};

std::string Get(std::string_view path, std::string_view extra_headers = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) +
         "\r\n";
}

bool IsHex(const std::string& text, size_t size) {
  return text.size() == size && text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() {
    router_.Get("/hello",
                [](const Request&) -> StatusOr<Response> { return Response::Text(200, "hello"); });
    router_.Get("/ids", [](const Request& r) -> StatusOr<Response> {
      return Response::Json(
          200, {{"request_id", r.request_id}, {"trace_id", r.trace_id}, {"span_id", r.span_id}});
    });
    router_.Post("/echo", [](const Request& r) -> StatusOr<Response> {
      return Response::Text(200, r.body);
    });
    RouteOptions small;
    small.max_body_bytes = 16;
    router_.Post(
        "/small",
        [](const Request& r) -> StatusOr<Response> { return Response::Text(200, r.body); }, small);
    router_.Get("/slow", [this](const Request&) -> StatusOr<Response> {
      slow_started_.set_value();
      std::this_thread::sleep_for(300ms);
      return Response::Text(200, "slow done");
    });
    // Answers from another thread after a delay, as a group commit would.
    router_.HandleAsync("POST", "/later", [](const Request& r, Reply reply) {
      std::thread([body = r.body, reply = std::move(reply)]() mutable {
        std::this_thread::sleep_for(20ms);
        reply(Response::Text(201, "later " + body));
      }).detach();
    });
    // Holds its thread until the test releases it (at most 10 s), as a fsync or training would.
    RouteOptions blocking;
    blocking.blocking = true;
    router_.Get(
        "/blocking",
        [this](const Request&) -> StatusOr<Response> {
          blocking_started_.fetch_add(1);
          const bool released = release_.wait_for(10s) == std::future_status::ready;
          return Response::Text(200, released ? "released" : "timed out");
        },
        blocking);
    router_.Get("/evil", [](const Request&) -> StatusOr<Response> {
      Response r = Response::Text(200, "x");
      r.headers.Add("X-Split", "a\r\nSet-Cookie: owned=1");
      r.headers.Add("Content-Length", "999");
      r.headers.Add("Cache-Control", "no-store");
      return r;
    });
  }

  ~ServerTest() override {
    if (server_) {
      server_->Stop();
    }
  }

  void StartServer(ServerOptions options = {}) {
    options.listen = "127.0.0.1:0";
    if (options.threads == 0) {
      options.threads = 2;
    }
    options.access_log = access_log_;
    auto server = Server::Start(options, router_, registry_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    ASSERT_NE(server_->port(), 0);
  }

  std::optional<RawResponse> RoundTrip(const std::string& request) {
    Client client(server_->port());
    EXPECT_TRUE(client.Send(request));
    return client.Read();
  }

  Router router_;
  metrics::Registry registry_;
  std::unique_ptr<Server> server_;
  std::promise<void> slow_started_;
  std::atomic<int> blocking_started_{0};
  std::promise<void> release_promise_;
  std::shared_future<void> release_ = release_promise_.get_future().share();
  bool access_log_ = false;

  // Waits until `n` blocking handlers have started.
  bool WaitBlockingStarted(int n) {
    for (int i = 0; i < 500 && blocking_started_.load() < n; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    return blocking_started_.load() >= n;
  }
};

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  access_log_ = true;  // LogAccess must be safe without logging::Init
  StartServer();
  Client client(server_->port());
  ASSERT_TRUE(client.connected());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(client.Send(Get("/hello")));
    const auto r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "hello");
    EXPECT_EQ(r->Header("content-length"), "5");
    EXPECT_EQ(r->Header("content-type"), "text/plain; charset=utf-8");
    EXPECT_EQ(r->Header("server"), "evo");
    EXPECT_FALSE(r->Header("date").empty());
    EXPECT_EQ(r->Header("connection"), "");
  }
  // Pipelined: two requests in one write, two answers in order.
  ASSERT_TRUE(client.Send(Get("/hello") + Get("/nothing")));
  EXPECT_EQ(client.Read()->status, 200);
  EXPECT_EQ(client.Read()->status, 404);
}

TEST_F(ServerTest, AsyncRouteAnswersFromAnotherThreadInPipelineOrder) {
  StartServer();
  Client client(server_->port());
  ASSERT_TRUE(client.connected());
  const std::string post = "POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n";
  ASSERT_TRUE(client.Send(post + "a" + Get("/hello") + post + "b"));
  auto first = client.Read();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 201);
  EXPECT_EQ(first->body, "later a");
  EXPECT_FALSE(first->Header("x-request-id").empty());
  EXPECT_EQ(client.Read()->body, "hello");
  EXPECT_EQ(client.Read()->body, "later b");
}

TEST_F(ServerTest, Http10ClosesUnlessKeepAliveAsked) {
  StartServer();
  Client client(server_->port());
  ASSERT_TRUE(client.Send("GET /hello HTTP/1.0\r\n\r\n"));
  const auto r = client.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(client.ClosedWithin(2s));
  Client keep(server_->port());
  ASSERT_TRUE(keep.Send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_EQ(keep.Read()->Header("connection"), "keep-alive");
  ASSERT_TRUE(keep.Send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_EQ(keep.Read()->status, 200);
}

TEST_F(ServerTest, RequestIdIsEchoedWhenSaneAndGeneratedOtherwise) {
  StartServer();
  auto r = RoundTrip(Get("/ids", "X-Request-Id: abc-123.X_y:z\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("x-request-id"), "abc-123.X_y:z");
  EXPECT_EQ(json::parse(r->body)["request_id"], "abc-123.X_y:z");

  for (const std::string& bad :
       std::vector<std::string>{"X-Request-Id: has space\r\n", "X-Request-Id: \r\n",
                                "X-Request-Id: " + std::string(129, 'a') + "\r\n",
                                "X-Request-Id: a\r\nX-Request-Id: b\r\n", std::string()}) {
    r = RoundTrip(Get("/ids", bad));
    ASSERT_TRUE(r);
    EXPECT_TRUE(IsHex(r->Header("x-request-id"), 32)) << bad << r->Header("x-request-id");
    EXPECT_EQ(json::parse(r->body)["request_id"], r->Header("x-request-id"));
  }
  // Generated ids differ from request to request.
  EXPECT_NE(RoundTrip(Get("/ids"))->Header("x-request-id"),
            RoundTrip(Get("/ids"))->Header("x-request-id"));
}

TEST_F(ServerTest, TraceparentIsContinuedWhenValidAndRestartedOtherwise) {
  StartServer();
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  auto r = RoundTrip(Get("/ids", "traceparent: 00-" + trace + "-00f067aa0ba902b7-01\r\n"));
  ASSERT_TRUE(r);
  const json seen = json::parse(r->body);
  EXPECT_EQ(seen["trace_id"], trace);
  const std::string span = seen["span_id"];
  EXPECT_TRUE(IsHex(span, 16));
  EXPECT_NE(span, "00f067aa0ba902b7");
  EXPECT_EQ(r->Header("traceparent"), "00-" + trace + "-" + span + "-01");

  for (const std::string& bad : std::vector<std::string>{
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace
           "00-" + trace + "-0000000000000000-01",                     // zero parent
           "ff-" + trace + "-00f067aa0ba902b7-01",                     // version ff
           "00-" + trace + "-00f067aa0ba902b7",                        // 3 fields
           "00-" + trace + "-00f067aa0ba902b7-01-extra",               // v00 has 4 fields
           std::string(10000, 'a')}) {
    r = RoundTrip(Get("/ids", "traceparent: " + bad + "\r\n"));
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 200);
    const std::string new_trace = json::parse(r->body)["trace_id"];
    EXPECT_TRUE(IsHex(new_trace, 32));
    EXPECT_NE(new_trace, trace);
    EXPECT_EQ(r->Header("traceparent").find(bad), std::string::npos);
  }
  // A future version may carry more fields; its trace is kept.
  r = RoundTrip(Get("/ids", "traceparent: 01-" + trace + "-00f067aa0ba902b7-01-what\r\n"));
  EXPECT_EQ(json::parse(r->body)["trace_id"], trace);
}

TEST_F(ServerTest, BodyIsReadAndEchoed) {
  StartServer();
  Client client(server_->port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde"));
  EXPECT_EQ(client.Read()->body, "abcde");
  ASSERT_TRUE(
      client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  EXPECT_EQ(client.Read()->body, "abcde");
  // A body split across writes.
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabc"));
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(client.Send("def"));
  EXPECT_EQ(client.Read()->body, "abcdef");
}

TEST_F(ServerTest, OversizeBodyGets413WithoutReadingIt) {
  StartServer();
  {
    Client client(server_->port());
    ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n"));
    const auto r = client.Read();  // answered although no body byte was sent
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_EQ(r->Header("content-type"), "application/problem+json");
    EXPECT_EQ(r->Header("connection"), "close");
    EXPECT_EQ(json::parse(r->body)["reason"], "BODY_TOO_LARGE");
  }
  {
    Client client(server_->port());
    ASSERT_TRUE(
        client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: "
                    "1048577\r\n\r\n"));
    const auto r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);  // not 100 Continue
  }
  {
    // The whole 1 MiB + 1 sent anyway: the 413 still arrives intact (lingering close).
    Client client(server_->port());
    ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n" +
                            std::string(1048577, 'x')));
    const auto r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
  }
  // Exactly at the default limit is fine.
  auto r = RoundTrip("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n" +
                     std::string(1048576, 'y'));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), 1048576U);
}

TEST_F(ServerTest, PerRouteBodyLimitAppliesToLengthAndChunked) {
  StartServer();
  EXPECT_EQ(RoundTrip("POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 16\r\n\r\n" +
                      std::string(16, 'a'))
                ->status,
            200);
  EXPECT_EQ(RoundTrip("POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 17\r\n\r\n" +
                      std::string(17, 'a'))
                ->status,
            413);
  EXPECT_EQ(RoundTrip("POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "10\r\naaaaaaaaaaaaaaaa\r\n1\r\nb\r\n0\r\n\r\n")
                ->status,
            413);
}

TEST_F(ServerTest, Expect100ContinueWithinLimitGetsContinue) {
  StartServer();
  Client client(server_->port());
  ASSERT_TRUE(client.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"));
  const auto cont = client.Read();
  ASSERT_TRUE(cont);
  EXPECT_EQ(cont->status, 100);
  ASSERT_TRUE(client.Send("xyz"));
  EXPECT_EQ(client.Read()->body, "xyz");
}

TEST_F(ServerTest, HugeHeaderGets431) {
  StartServer();
  auto r = RoundTrip(Get("/hello", "X-Big: " + std::string(100 * 1024, 'a') + "\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->Header("connection"), "close");
  std::string many;
  for (int i = 0; i < 10000; ++i) {
    many += "X-" + std::to_string(i) + ": v\r\n";
  }
  r = RoundTrip(Get("/hello", many));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
}

TEST_F(ServerTest, LongTargetGets414) {
  StartServer();
  auto r = RoundTrip(Get("/" + std::string(100 * 1024, 'a')));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 414);
  r = RoundTrip(Get("/hello?q=" + std::string(9 * 1024, 'a')));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 414);
}

TEST_F(ServerTest, RequestSmugglingShapesGet400AndClose) {
  StartServer();
  for (const std::string& request : std::vector<std::string>{
           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: "
           "chunked\r\n\r\n",
           "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: "
           "3\r\n\r\n",
           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc",
           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n",
           "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
           "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
           "chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
           "GET /hello HTTP/1.1\r\n\r\n",                              // no Host
           "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",        // two Hosts
           "GET /hello HTTP/9.9\r\nHost: a\r\n\r\n",                   // bad version
           "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"}) {  // TLS hello
    Client client(server_->port());
    ASSERT_TRUE(client.Send(request));
    const auto r = client.Read();
    ASSERT_TRUE(r) << request;
    EXPECT_EQ(r->status, 400) << request;
    EXPECT_EQ(r->Header("connection"), "close") << request;
    EXPECT_TRUE(IsHex(r->Header("x-request-id"), 32));
    EXPECT_TRUE(client.ClosedWithin(3s)) << request;
  }
  EXPECT_EQ(RoundTrip(Get("/hello"))->status, 200);  // still serving
}

TEST_F(ServerTest, ObsFoldIsRefusedWith400EvenOnFramingHeaders) {
  StartServer();
  for (const std::string& request : std::vector<std::string>{
           "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
           "3\r\nabc\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n 3\r\n\r\nabc",
           "GET /hello HTTP/1.1\r\nHost: t\r\nX-Foo: a\r\n  folded\r\n\r\n",
           "GET /hello HTTP/1.1\r\nHost: t\r\nX-Foo: a\r\n\tfolded\r\n\r\n"}) {
    Client client(server_->port());
    ASSERT_TRUE(client.Send(request));
    const auto r = client.Read();
    ASSERT_TRUE(r) << request;
    EXPECT_EQ(r->status, 400) << request;
    EXPECT_NE(r->body.find("OBS_FOLD"), std::string::npos) << r->body;
    EXPECT_EQ(r->Header("connection"), "close");
    EXPECT_TRUE(client.ClosedWithin(3s)) << request;  // the pipelined GET is never answered
  }
  // A space inside a value, or a body starting with one, is not folding.
  const auto r =
      RoundTrip("POST /echo HTTP/1.1\r\nHost: t\r\nX-A: a b\r\nContent-Length: 2\r\n\r\n x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, " x");
}

TEST_F(ServerTest, UnknownMethodAndHeadAndOptions) {
  StartServer();
  auto r = RoundTrip("BREW /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->Header("allow"), "GET, HEAD, OPTIONS");
  Client client(server_->port());
  ASSERT_TRUE(client.Send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
  r = client.Read(/*head_request=*/true);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("content-length"), "5");
  ASSERT_TRUE(client.Send("OPTIONS /hello HTTP/1.1\r\nHost: t\r\n\r\n"));  // no body was sent
  r = client.Read();
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->Header("content-length"), "");
  EXPECT_EQ(r->Header("allow"), "GET, HEAD, OPTIONS");
}

TEST_F(ServerTest, HandlerHeadersCannotSplitOrReframeTheResponse) {
  StartServer();
  Client client(server_->port());
  ASSERT_TRUE(client.Send(Get("/evil")));
  const auto r = client.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("content-length"), "1");
  EXPECT_EQ(r->Header("x-split"), "");
  EXPECT_EQ(r->Header("set-cookie"), "");
  EXPECT_EQ(r->Header("cache-control"), "no-store");
  ASSERT_TRUE(client.Send(Get("/hello")));
  EXPECT_EQ(client.Read()->body, "hello");  // framing intact
}

TEST_F(ServerTest, SlowHeaderIsClosedAfterTheHeaderTimeout) {
  ServerOptions options;
  options.header_timeout = 200ms;
  StartServer(options);
  Client slow(server_->port());
  ASSERT_TRUE(slow.Send("GET /hello HTTP/1.1\r\nHost: t\r\n"));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(slow.ClosedWithin(2s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  Client silent(server_->port());  // never sends a byte
  EXPECT_TRUE(silent.ClosedWithin(2s));
  EXPECT_EQ(RoundTrip(Get("/hello"))->status, 200);
}

TEST_F(ServerTest, SlowBodyIsClosedAfterTheBodyTimeout) {
  ServerOptions options;
  options.body_timeout = 200ms;
  StartServer(options);
  Client client(server_->port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
  EXPECT_TRUE(client.ClosedWithin(2s));
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosed) {
  ServerOptions options;
  options.idle_timeout = 200ms;
  StartServer(options);
  Client client(server_->port());
  ASSERT_TRUE(client.Send(Get("/hello")));
  EXPECT_EQ(client.Read()->status, 200);
  EXPECT_TRUE(client.ClosedWithin(2s));
}

TEST_F(ServerTest, ConnectionsBeyondTheMaximumAreClosed) {
  ServerOptions options;
  options.max_connections = 1;
  options.threads = 1;
  StartServer(options);
  Client first(server_->port());
  ASSERT_TRUE(first.Send(Get("/hello")));
  EXPECT_EQ(first.Read()->status, 200);
  Client second(server_->port());
  EXPECT_TRUE(second.ClosedWithin(2s));
  ASSERT_TRUE(first.Send(Get("/hello")));
  EXPECT_EQ(first.Read()->status, 200);
}

TEST_F(ServerTest, DrainFinishesTheInFlightRequest) {
  StartServer();
  Client idle(server_->port());
  ASSERT_TRUE(idle.Send(Get("/hello")));
  ASSERT_EQ(idle.Read()->status, 200);

  auto in_flight = std::async(std::launch::async, [port = server_->port()] {
    Client client(port);
    client.Send(Get("/slow"));
    return client.Read();
  });
  ASSERT_EQ(slow_started_.get_future().wait_for(5s), std::future_status::ready);
  const auto start = std::chrono::steady_clock::now();
  server_->Drain(5s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  const auto r = in_flight.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "slow done");
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(idle.ClosedWithin(1s));
  Client late(server_->port());
  EXPECT_TRUE(!late.connected() || late.ClosedWithin(1s));
  server_->Stop();  // idempotent after Drain
}

TEST_F(ServerTest, BlockingRouteRunsOffTheIoThread) {
  ServerOptions options;
  options.threads = 1;  // the only I/O thread must stay free while the handler blocks
  StartServer(options);
  Client held(server_->port());
  ASSERT_TRUE(held.Send(Get("/blocking")));
  ASSERT_TRUE(WaitBlockingStarted(1));
  const auto other = RoundTrip(Get("/hello"));
  ASSERT_TRUE(other);
  EXPECT_EQ(other->body, "hello");
  release_promise_.set_value();
  const auto r = held.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "released");
  EXPECT_FALSE(r->Header("x-request-id").empty());
}

TEST_F(ServerTest, BlockingPoolQueueFullAnswers503AndStopAnswersTheQueued) {
  ServerOptions options;
  options.blocking_threads = 1;
  options.blocking_queue = 1;
  StartServer(options);
  Client running(server_->port());
  ASSERT_TRUE(running.Send(Get("/blocking")));
  ASSERT_TRUE(WaitBlockingStarted(1));
  Client queued(server_->port());
  ASSERT_TRUE(queued.Send(Get("/blocking")));
  // The queued request is taken off its socket before the next one is refused.
  std::optional<RawResponse> refused;
  for (int i = 0; i < 100; ++i) {
    refused = RoundTrip(Get("/blocking"));
    if (refused && refused->status == 503) {
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(refused->Header("retry-after"), "1");
  EXPECT_NE(refused->body.find("SERVER_BUSY"), std::string::npos);
  EXPECT_EQ(blocking_started_.load(), 1);

  auto stopped = std::async(std::launch::async, [this] { server_->Stop(); });
  std::this_thread::sleep_for(50ms);
  release_promise_.set_value();  // Stop waits for the running handler
  stopped.get();
  const auto first = running.Read();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, "released");
  EXPECT_EQ(blocking_started_.load(), 1);  // the queued one never ran
}

TEST_F(ServerTest, AbsoluteFormTargetIsRoutedByItsPath) {
  StartServer();
  EXPECT_EQ(RoundTrip("GET http://test/hello HTTP/1.1\r\nHost: test\r\n\r\n")->body, "hello");
  EXPECT_EQ(RoundTrip("GET http://test?x=1 HTTP/1.1\r\nHost: test\r\n\r\n")->status, 404);
  EXPECT_EQ(RoundTrip("OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n")->status, 404);
}

TEST_F(ServerTest, StopClosesOpenConnectionsPromptly) {
  StartServer();
  Client idle(server_->port());
  ASSERT_TRUE(idle.Send(Get("/hello")));
  ASSERT_EQ(idle.Read()->status, 200);
  Client partial(server_->port());
  ASSERT_TRUE(partial.Send("GET /hello HTTP/1.1\r\n"));
  std::this_thread::sleep_for(20ms);
  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(idle.ClosedWithin(1s));
  EXPECT_TRUE(partial.ClosedWithin(1s));
}

TEST_F(ServerTest, MetricsCountRequestsByRoutePattern) {
  StartServer();
  EXPECT_EQ(RoundTrip(Get("/hello"))->status, 200);
  EXPECT_EQ(RoundTrip(Get("/hello"))->status, 200);
  EXPECT_EQ(RoundTrip(Get("/no/such/path"))->status, 404);
  const std::string text = registry_.RenderText();
  EXPECT_NE(text.find(R"(evo_http_requests_total{route="/hello",method="GET",code="200"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(evo_http_requests_total{route="unmatched",method="GET",code="404"} 1)"),
            std::string::npos);
  EXPECT_EQ(text.find("/no/such/path"), std::string::npos);
  EXPECT_NE(text.find(R"(evo_http_request_duration_seconds_count{route="/hello",method="GET"} 2)"),
            std::string::npos);
  EXPECT_NE(text.find("evo_http_connections"), std::string::npos);
}

TEST_F(ServerTest, SecondServerOnTheSamePortFails) {
  StartServer();
  ServerOptions options;
  options.listen = "127.0.0.1:" + std::to_string(server_->port());
  auto second = Server::Start(options, router_, registry_);
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
}

TEST(ServerOptions, ValidateNamesTheField) {
  ServerOptions options;
  EXPECT_TRUE(Validate(options).ok());
  for (const char* listen : {"", "8080", "host:", "host:65536", "::1:80", "host:8x"}) {
    options.listen = listen;
    const Status s = Validate(options);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << listen;
    EXPECT_NE(s.message().find("listen"), std::string_view::npos);
  }
  options.listen = "[::1]:0";
  EXPECT_TRUE(Validate(options).ok());
  options.header_timeout = 0ms;
  EXPECT_NE(Validate(options).message().find("header_timeout"), std::string_view::npos);
  options.header_timeout = 1s;
  options.blocking_threads = 0;
  EXPECT_NE(Validate(options).message().find("blocking_threads"), std::string_view::npos);
}

}  // namespace
}  // namespace evo::http
