// Tests of the outbound Client against a real HTTP server on 127.0.0.1: the SSRF guard at
// connect time, statuses, redirects, timeouts, resets, truncation, reuse, concurrency, Stop.
#include "outbound/client.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "outbound/test_server.hpp"

namespace evo::outbound {
namespace {

using std::chrono::milliseconds;
using test_support::TestServer;

ClientOptions Options(bool allow_loopback = true) {
  ClientOptions o;
  if (allow_loopback) {
    o.ssrf.allow.push_back(*ParseCidr("127.0.0.1/32"));
  }
  return o;
}

std::unique_ptr<Client> Make(ClientOptions o, metrics::Registry* registry = nullptr) {
  auto client = Client::Start(std::move(o), registry);
  EXPECT_TRUE(client.ok()) << client.status();
  return *std::move(client);
}

Request Get(std::string url) {
  Request r;
  r.method = "GET";
  r.url = std::move(url);
  return r;
}

// Sends and waits (bounded, so that a bug fails the test instead of hanging it).
Response Fetch(Client& client, Request request) {
  std::promise<Response> promise;
  auto future = promise.get_future();
  client.Send(std::move(request), [&promise](Response r) { promise.set_value(std::move(r)); });
  if (future.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "no response within 30 s";
    std::abort();
  }
  return future.get();
}

TEST(ClientOptions, ValidateNamesTheOffendingField) {
  EXPECT_TRUE(Validate(ClientOptions{}).ok());
  auto check = [](const ClientOptions& o, std::string_view field) {
    Status s = Validate(o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string_view::npos) << s;
    EXPECT_EQ(Client::Start(o).status().code(), StatusCode::kInvalidArgument);
  };
  ClientOptions o;
  o.max_host_connections = 0;
  check(o, "max_host_connections");
  o = {};
  o.max_total_connections = 4;
  check(o, "max_total_connections");
  o = {};
  o.max_body_bytes = size_t{1} << 30;
  check(o, "max_body_bytes");
  o = {};
  o.user_agent = "evil\r\nX-Injected: 1";
  check(o, "user_agent");
  o = {};
  o.follow_redirects = true;
  check(o, "follow_redirects");
}

TEST(Client, ReachesAnAllowedLocalServer) {
  TestServer server;
  auto client = Make(Options());
  Response r = Fetch(*client, Get(server.Url("/status/200")));
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "status 200");
  EXPECT_FALSE(r.body_truncated);
  EXPECT_EQ(r.remote_address, "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_GT(r.latency.count(), 0);
  ASSERT_NE(r.Header("content-length"), nullptr);
  EXPECT_EQ(*r.Header("Content-Length"), "10");
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST(Client, RefusesLoopbackWithoutAnAllowList) {
  TestServer server;
  auto client = Make(Options(/*allow_loopback=*/false));
  for (const std::string& url :
       {server.Url("/status/200"), "http://2130706433:" + std::to_string(server.port()) + "/",
        "http://0x7f.1:" + std::to_string(server.port()) + "/",
        "http://[::ffff:127.0.0.1]:" + std::to_string(server.port()) + "/"}) {
    Response r = Fetch(*client, Get(url));
    EXPECT_EQ(r.error.code(), StatusCode::kPermissionDenied) << url << ": " << r.error;
    EXPECT_EQ(r.error.GetPayload(kPayloadReason), "SSRF_BLOCKED");
    EXPECT_NE(r.error.message().find("127.0.0.1"), std::string_view::npos) << r.error;
    EXPECT_EQ(r.status, 0);
  }
  EXPECT_EQ(server.connections(), 0);
}

TEST(Client, RefusesANameThatResolvesToLoopbackAtConnectTime) {
  TestServer server;
  auto client = Make(Options(/*allow_loopback=*/false));
  const std::string url = "http://localhost:" + std::to_string(server.port()) + "/status/200";
  ASSERT_TRUE(CheckUrl(*ParseUrl(url), SsrfPolicy{}).ok());  // the name itself passes...
  Response r = Fetch(*client, Get(url));
  // ...but every address it resolves to is refused when the client is about to connect.
  EXPECT_EQ(r.error.code(), StatusCode::kPermissionDenied) << r.error;
  EXPECT_EQ(r.error.GetPayload(kPayloadReason), "SSRF_BLOCKED");
  // The error names the host but not what it resolved to (that is for the log only).
  EXPECT_NE(r.error.message().find("localhost"), std::string_view::npos) << r.error;
  EXPECT_EQ(r.error.message().find("127.0.0.1"), std::string_view::npos) << r.error;
  EXPECT_EQ(r.error.message().find("::1"), std::string_view::npos) << r.error;
  EXPECT_EQ(server.connections(), 0);
}

TEST(Client, ReachesANameResolvingToAnAllowedAddress) {
  TestServer server;
  // Only 127.0.0.1/32 is allowed: if "localhost" resolves to ::1 first, that address is refused
  // and the client goes on to 127.0.0.1.
  auto client = Make(Options());
  Response r =
      Fetch(*client, Get("http://localhost:" + std::to_string(server.port()) + "/status/200"));
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(server.connections(), 1);
}

TEST(Client, TriesTheNextAddressAfterARefusedOne) {
  TestServer server(/*ipv6=*/true);
  if (!server.ok()) {
    GTEST_SKIP() << "no IPv6 loopback";
  }
  // "localhost" resolves to 127.0.0.1 and ::1 (curl tries 127.0.0.1 first). Only ::1 is allowed
  // and only ::1 has the server: the guard's refusal of 127.0.0.1 must not end the attempt.
  ClientOptions o = Options(/*allow_loopback=*/false);
  o.ssrf.allow.push_back(*ParseCidr("::1/128"));
  auto client = Make(o);
  Response r =
      Fetch(*client, Get("http://localhost:" + std::to_string(server.port()) + "/status/200"));
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.remote_address, "[::1]:" + std::to_string(server.port()));
  // The IPv6 literal works directly too, and the IPv4 one is refused.
  EXPECT_TRUE(Fetch(*client, Get(server.Url("/status/200"))).error.ok());
  EXPECT_EQ(
      Fetch(*client, Get("http://127.0.0.1:" + std::to_string(server.port()) + "/")).error.code(),
      StatusCode::kPermissionDenied);
}

TEST(Client, BlockedAddressWinsOverAnUnreachableOne) {
  TestServer server;  // on 127.0.0.1 only
  // ::1 is allowed but nothing listens there; 127.0.0.1 has the server but is refused.
  ClientOptions o = Options(/*allow_loopback=*/false);
  o.ssrf.allow.push_back(*ParseCidr("::1/128"));
  auto client = Make(o);
  Response r =
      Fetch(*client, Get("http://localhost:" + std::to_string(server.port()) + "/status/200"));
  EXPECT_EQ(r.error.code(), StatusCode::kPermissionDenied) << r.error;
  EXPECT_EQ(r.error.GetPayload(kPayloadReason), "SSRF_BLOCKED");
  EXPECT_EQ(server.connections(), 0);
}

TEST(Client, RejectsMalformedRequestsWithoutConnecting) {
  TestServer server;
  auto client = Make(Options());
  auto expect_invalid = [&](Request r) {
    Response response = Fetch(*client, std::move(r));
    EXPECT_EQ(response.error.code(), StatusCode::kInvalidArgument) << response.error;
  };
  expect_invalid(Get("ftp://127.0.0.1/"));
  expect_invalid(Get("http://user@127.0.0.1/"));
  expect_invalid(Get(server.Url("/status/200#x")));
  Request r = Get(server.Url("/status/200"));
  r.headers.emplace_back("X-Evil", "a\r\nX-Injected: 1");
  expect_invalid(r);
  r = Get(server.Url("/status/200"));
  r.headers.emplace_back("Bad Name", "x");
  expect_invalid(r);
  r = Get(server.Url("/status/200"));
  r.headers.emplace_back("Content-Length", "5");
  expect_invalid(r);
  r = Get(server.Url("/status/200"));
  r.method = "get";
  expect_invalid(r);
  r = Get(server.Url("/status/200"));
  r.timeout = milliseconds(0);
  expect_invalid(r);
  EXPECT_EQ(server.connections(), 0);
}

TEST(Client, ReturnsErrorStatusesAsResponses) {
  TestServer server;
  auto client = Make(Options());
  for (int status : {201, 204, 400, 404, 409, 410, 500, 503}) {
    Response r = Fetch(*client, Get(server.Url("/status/" + std::to_string(status))));
    EXPECT_TRUE(r.error.ok()) << status << ": " << r.error;
    EXPECT_EQ(r.status, status);
  }
}

TEST(Client, DoesNotFollowRedirects) {
  TestServer server;
  auto client = Make(Options());
  Response r = Fetch(*client, Get(server.Url("/redirect")));
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(r.status, 302);
  ASSERT_NE(r.Header("location"), nullptr);
  EXPECT_EQ(*r.Header("location"), server.Url("/status/200"));
  EXPECT_EQ(server.requests(), 1);
}

TEST(Client, CollectsRetryAfter) {
  TestServer server;
  auto client = Make(Options());
  Response r = Fetch(*client, Get(server.Url("/retry-after")));
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(r.status, 429);
  ASSERT_NE(r.Header("Retry-After"), nullptr);
  EXPECT_EQ(*r.Header("retry-after"), "7");
}

TEST(Client, TimeoutIsDeadlineExceeded) {
  TestServer server;
  auto client = Make(Options());
  Request request = Get(server.Url("/hang"));
  request.timeout = milliseconds(200);
  Response r = Fetch(*client, request);
  EXPECT_EQ(r.error.code(), StatusCode::kDeadlineExceeded) << r.error;
  EXPECT_GE(r.latency, milliseconds(200));
  server.Release();
}

TEST(Client, ConnectionResetMidResponseIsUnavailable) {
  TestServer server;
  auto client = Make(Options());
  Response r = Fetch(*client, Get(server.Url("/reset")));
  EXPECT_EQ(r.error.code(), StatusCode::kUnavailable) << r.error;
  EXPECT_TRUE(r.body.empty());
  // The client carries on with a fresh connection.
  r = Fetch(*client, Get(server.Url("/status/200")));
  EXPECT_TRUE(r.error.ok()) << r.error;
}

TEST(Client, ConnectionRefusedIsUnavailable) {
  // A port nothing listens on: bind one, then close it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  auto client = Make(Options());
  Response r = Fetch(*client, Get("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port))));
  EXPECT_EQ(r.error.code(), StatusCode::kUnavailable) << r.error;
}

TEST(Client, TruncatesLargeBodiesAndKeepsTheConnection) {
  TestServer server;
  ClientOptions o = Options();
  o.max_body_bytes = 1000;
  auto client = Make(o);
  Response r = Fetch(*client, Get(server.Url("/large/300000")));
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, std::string(1000, 'x'));
  EXPECT_TRUE(r.body_truncated);
  r = Fetch(*client, Get(server.Url("/large/1000")));
  EXPECT_EQ(r.body.size(), 1000u);
  EXPECT_FALSE(r.body_truncated);
  // The rest of the first body was read, so its connection served the second request.
  EXPECT_EQ(server.connections(), 1);
}

TEST(Client, SendsMethodHeadersAndBody) {
  TestServer server;
  auto client = Make(Options());
  Request r;
  r.method = "PUT";
  r.url = server.Url("/echo");
  r.headers = {{"X-Test", "abc"}, {"Content-Type", "application/json"}, {"X-Empty", ""}};
  r.body = R"({"x":1})";
  Response response = Fetch(*client, r);
  ASSERT_TRUE(response.error.ok()) << response.error;
  EXPECT_EQ(response.body.rfind("PUT\n", 0), 0u) << response.body;
  EXPECT_NE(response.body.find("X-Test: abc\n"), std::string::npos) << response.body;
  EXPECT_NE(response.body.find("X-Empty:"), std::string::npos) << response.body;
  EXPECT_NE(response.body.find("User-Agent: evo-webhooks/"), std::string::npos) << response.body;
  EXPECT_EQ(response.body.find("Expect:"), std::string::npos) << response.body;
  EXPECT_NE(response.body.find("\n\n{\"x\":1}"), std::string::npos) << response.body;

  r = Request{};  // POST by default, even with an empty body
  r.url = server.Url("/echo");
  r.headers = {{"User-Agent", "custom/1"}};
  response = Fetch(*client, r);
  EXPECT_EQ(response.body.rfind("POST\n", 0), 0u) << response.body;
  EXPECT_NE(response.body.find("Content-Length: 0"), std::string::npos) << response.body;
  EXPECT_NE(response.body.find("User-Agent: custom/1"), std::string::npos) << response.body;
  EXPECT_EQ(response.body.find("evo-webhooks"), std::string::npos) << response.body;

  r = Get(server.Url("/echo"));
  r.method = "DELETE";
  response = Fetch(*client, r);
  EXPECT_EQ(response.body.rfind("DELETE\n", 0), 0u) << response.body;
}

TEST(Client, ReusesOneConnectionForSequentialRequests) {
  TestServer server;
  auto client = Make(Options());
  for (int i = 0; i < 20; ++i) {
    Request r;
    r.url = server.Url("/status/200");
    r.body = "event " + std::to_string(i);
    Response response = Fetch(*client, r);
    ASSERT_TRUE(response.error.ok()) << response.error;
  }
  EXPECT_EQ(server.requests(), 20);
  EXPECT_EQ(server.connections(), 1);
}

TEST(Client, ReconnectsAfterTheServerClosesTheConnection) {
  TestServer server;
  auto client = Make(Options());
  EXPECT_TRUE(Fetch(*client, Get(server.Url("/close"))).error.ok());
  EXPECT_TRUE(Fetch(*client, Get(server.Url("/status/200"))).error.ok());
  EXPECT_EQ(server.connections(), 2);
}

TEST(Client, RunsManyRequestsConcurrentlyWithinTheHostConnectionCap) {
  TestServer server;
  ClientOptions o = Options();
  o.max_host_connections = 4;
  auto client = Make(o);
  constexpr int kRequests = 200;
  std::mutex mu;
  std::vector<Response> responses;
  std::promise<void> all_done;
  for (int i = 0; i < kRequests; ++i) {
    client->Send(Get(server.Url("/status/200")), [&](Response r) {
      std::lock_guard lock(mu);
      responses.push_back(std::move(r));
      if (responses.size() == kRequests) {
        all_done.set_value();
      }
    });
  }
  ASSERT_EQ(all_done.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  std::lock_guard lock(mu);
  for (const Response& r : responses) {
    EXPECT_TRUE(r.error.ok()) << r.error;
    EXPECT_EQ(r.status, 200);
  }
  EXPECT_EQ(server.requests(), kRequests);
  EXPECT_LE(server.connections(), 4);
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST(Client, ARequestWaitingForAConnectionTimesOutOnItsOwnClock) {
  TestServer server;
  ClientOptions o = Options();
  o.max_host_connections = 1;
  auto client = Make(o);
  // The only connection to the host hangs; the next request waits for it in the client,
  // and its timeout counts the wait.
  std::promise<Response> first;
  client->Send(Get(server.Url("/hang")), [&](Response r) { first.set_value(std::move(r)); });
  Request waiting = Get(server.Url("/status/200"));
  waiting.timeout = milliseconds(300);
  Response r = Fetch(*client, waiting);
  EXPECT_EQ(r.error.code(), StatusCode::kDeadlineExceeded) << r.error;
  EXPECT_NE(r.error.message().find("waiting for a connection"), std::string_view::npos) << r.error;
  EXPECT_GE(r.latency, milliseconds(300));
  server.Release();  // the hanging request ends (without an answer)
  first.get_future().get();
  // Once the connection is free again, waiting requests run in order.
  std::vector<std::future<Response>> later;
  std::vector<std::promise<Response>> promises(3);
  for (auto& p : promises) {
    later.push_back(p.get_future());
    client->Send(Get(server.Url("/status/204")),
                 [&p](Response resp) { p.set_value(std::move(resp)); });
  }
  for (auto& f : later) {
    Response resp = f.get();
    EXPECT_TRUE(resp.error.ok()) << resp.error;
    EXPECT_EQ(resp.status, 204);
  }
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST(Client, SendsFromManyThreads) {
  TestServer server;
  auto client = Make(Options());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        if (Fetch(*client, Get(server.Url("/status/204"))).status == 204) {
          ok.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 40);
}

TEST(Client, StopCancelsWhatIsPendingAndLaterSends) {
  TestServer server;
  auto client = Make(Options());
  std::mutex mu;
  std::vector<Status> errors;
  for (int i = 0; i < 3; ++i) {
    client->Send(Get(server.Url("/hang")), [&](const Response& r) {
      std::lock_guard lock(mu);
      errors.push_back(r.error);
    });
  }
  ASSERT_TRUE(server.WaitForRequests(3));
  EXPECT_EQ(client->in_flight(), 3u);
  client->Stop();
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(errors.size(), 3u);
    for (const Status& s : errors) {
      EXPECT_EQ(s.code(), StatusCode::kCancelled) << s;
    }
  }
  EXPECT_EQ(client->in_flight(), 0u);
  bool called = false;
  client->Send(Get(server.Url("/status/200")), [&](const Response& r) {
    called = true;  // on this thread, at once
    EXPECT_EQ(r.error.code(), StatusCode::kCancelled);
  });
  EXPECT_TRUE(called);
  client->Stop();  // idempotent
  server.Release();
}

TEST(Client, SurvivesACallbackThatThrows) {
  TestServer server;
  auto client = Make(Options());
  std::promise<void> thrown;
  client->Send(Get(server.Url("/status/200")), [&](const Response&) {
    thrown.set_value();
    throw std::runtime_error("callback bug");
  });
  thrown.get_future().wait();
  EXPECT_TRUE(Fetch(*client, Get(server.Url("/status/200"))).error.ok());
}

TEST(Client, RecordsMetrics) {
  TestServer server;
  metrics::Registry registry;
  auto client = Make(Options(), &registry);
  EXPECT_TRUE(Fetch(*client, Get(server.Url("/status/200"))).error.ok());
  EXPECT_TRUE(Fetch(*client, Get(server.Url("/status/503"))).error.ok());
  EXPECT_EQ(Fetch(*client, Get("http://10.0.0.1/")).error.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(Fetch(*client, Get("nope")).error.code(), StatusCode::kInvalidArgument);
  const std::string text = registry.RenderText();
  EXPECT_NE(text.find("evo_outbound_requests_total{outcome=\"2xx\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("evo_outbound_requests_total{outcome=\"5xx\"} 1"), std::string::npos);
  EXPECT_NE(text.find("evo_outbound_requests_total{outcome=\"ssrf_blocked\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("evo_outbound_requests_total{outcome=\"invalid\"} 1"), std::string::npos);
  EXPECT_NE(text.find("evo_outbound_request_duration_seconds_count 4"), std::string::npos);
  EXPECT_NE(text.find("evo_outbound_in_flight 0"), std::string::npos);
}

}  // namespace
}  // namespace evo::outbound
