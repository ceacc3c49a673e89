// Micro-benchmarks of the outbound client against a local keep-alive HTTP server: one request at
// a time (latency-bound: curl's loop plus a loopback round trip) and batches in flight at once
// (throughput over the pooled connections). The server is a thread per connection in this
// process, so the numbers are for comparing client changes, not for capacity planning.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>

#include "outbound/client.hpp"
#include "outbound/test_server.hpp"

namespace evo::outbound {
namespace {

std::unique_ptr<Client> StartClient() {
  ClientOptions o;
  o.ssrf.allow.push_back(*ParseCidr("127.0.0.1/32"));
  auto client = Client::Start(std::move(o));
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    std::abort();
  }
  return *std::move(client);
}

void BM_SequentialRequests(  // NOLINT(readability-identifier-naming)
    benchmark::State& state) {
  test_support::TestServer server;
  auto client = StartClient();
  Request request;
  request.url = server.Url("/status/200");
  request.body = std::string(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    std::promise<Response> done;
    client->Send(request, [&done](Response r) { done.set_value(std::move(r)); });
    Response r = done.get_future().get();
    if (r.status != 200) {
      state.SkipWithError(r.error.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["connections"] = server.connections();
}
BENCHMARK(BM_SequentialRequests)->Arg(64)->Arg(16384)->UseRealTime();

void BM_ConcurrentRequests(  // NOLINT(readability-identifier-naming)
    benchmark::State& state) {
  test_support::TestServer server;
  auto client = StartClient();
  Request request;
  request.url = server.Url("/status/200");
  request.body = R"({"type":"invoice.paid","id":"1234567890"})";
  const int batch = static_cast<int>(state.range(0));
  for (auto _ : state) {
    std::promise<void> all;
    int remaining = batch;  // touched only on the client's thread
    bool failed = false;
    for (int i = 0; i < batch; ++i) {
      client->Send(request, [&](const Response& r) {
        failed = failed || r.status != 200;
        if (--remaining == 0) {
          all.set_value();
        }
      });
    }
    all.get_future().wait();
    if (failed) {
      state.SkipWithError("a request failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["connections"] = server.connections();
}
BENCHMARK(BM_ConcurrentRequests)->Arg(8)->Arg(64)->UseRealTime();

}  // namespace
}  // namespace evo::outbound
