// Micro-benchmarks of the resilience module's hot paths: the calls every outbound request
// makes (breaker Allow + Record, limiter TryAcquire, bulkhead TryAcquire + release) and the
// retry policy's delay computation.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "resilience/resilience.hpp"

namespace evo::resilience {
namespace {

template <typename T>
T OrDie(StatusOr<T> value) {
  if (!value.ok()) {
    std::fprintf(stderr, "%s\n", value.status().ToString().c_str());
    std::abort();
  }
  return *std::move(value);
}

void BM_BreakerAllowRecord(benchmark::State& state) {
  CircuitBreakerOptions o;
  o.name = "bench";
  static CircuitBreaker* const breaker = OrDie(CircuitBreaker::Create(o, RealClock())).release();
  int64_t i = 0;
  for (auto _ : state) {
    auto permit = breaker->Allow();
    if (++i % 10 == 0) {  // a 10 % failure rate: under the default 50 % ratio
      permit->Failure();
    } else {
      permit->Success();
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BreakerAllowRecord)->Threads(1)->Threads(2);

void BM_LimiterTryAcquireOneKey(benchmark::State& state) {
  RateLimiterOptions o;
  o.name = "bench";
  o.limit = {1e12, 1e12};  // never refuses: measures the admission path
  static RateLimiter* const limiter = OrDie(RateLimiter::Create(o, RealClock())).release();
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter->TryAcquire("endpoint-1"));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LimiterTryAcquireOneKey)->Threads(1)->Threads(2);

void BM_LimiterTryAcquireManyKeys(benchmark::State& state) {
  RateLimiterOptions o;
  o.name = "bench";
  o.limit = {100, 10};
  o.max_keys = 10000;
  auto limiter = OrDie(RateLimiter::Create(o, RealClock()));
  std::vector<std::string> keys;
  keys.reserve(static_cast<size_t>(state.range(0)));
  for (int i = 0; i < state.range(0); ++i) {
    keys.push_back("endpoint-" + std::to_string(i));
  }
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter->TryAcquire(keys[i]));
    i = i + 1 == keys.size() ? 0 : i + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
// 20000 keys over a 10000-key table: every call evicts and creates a bucket.
BENCHMARK(BM_LimiterTryAcquireManyKeys)->Arg(1000)->Arg(20000);

void BM_BulkheadAcquireRelease(benchmark::State& state) {
  BulkheadOptions o;
  o.name = "bench";
  o.max_concurrent = 1000;
  auto bulkhead = OrDie(Bulkhead::Create(o));
  auto hold = bulkhead->TryAcquire("endpoint-1");  // keeps the key's entry alive
  for (auto _ : state) {
    auto permit = bulkhead->TryAcquire("endpoint-1");
    benchmark::DoNotOptimize(permit);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BulkheadAcquireRelease);

void BM_RetryNextDelay(benchmark::State& state) {
  const RetryPolicy policy = OrDie(RetryPolicy::Create(WebhookRetryOptions()));
  Random random(1);
  int attempt = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        policy.NextDelay(attempt % 7 + 1, std::chrono::milliseconds(0), std::nullopt, random));
    ++attempt;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RetryNextDelay);

}  // namespace
}  // namespace evo::resilience
