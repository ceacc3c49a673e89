// Micro-benchmarks of the bandit policies: the single-thread cost of one Select + one Update
// (what a pull followed by its reward costs a service, without locking or I/O), for each
// policy with 2 and 10 arms on Bernoulli rewards, after 10,000 warm-up pulls so that the
// posteriors are concentrated as in a running experiment. items_per_second is
// Select+Update pairs per second. Also the Rng's primitives and probability of being best.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "bandit/policy.hpp"
#include "bandit/rng.hpp"

namespace evo::bandit {
namespace {

// Arm means spread over [0.05, 0.15] so that no two are equal.
std::vector<double> Means(size_t arms) {
  std::vector<double> means;
  for (size_t i = 0; i < arms; ++i) {
    means.push_back(0.05 + 0.1 * static_cast<double>(i) / static_cast<double>(arms - 1));
  }
  return means;
}

void BM_SelectUpdate(benchmark::State& state) {
  PolicyOptions options;
  options.type = static_cast<PolicyType>(state.range(0));
  const auto arms = static_cast<size_t>(state.range(1));
  std::unique_ptr<Policy> policy = Policy::Create(options, RewardType::kBernoulli, arms);
  const std::vector<double> means = Means(arms);
  const std::vector<uint8_t> active(arms, 1);
  Rng rng(1);
  Rng env(2);
  auto step = [&] {
    const size_t arm = policy->Select(active, rng);
    policy->Update(arm, env.Uniform() < means[arm] ? 1.0 : 0.0);
  };
  for (int i = 0; i < 10000; ++i) {
    step();
  }
  for (auto _ : state) {
    step();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::string(PolicyTypeName(options.type)));
}
BENCHMARK(BM_SelectUpdate)
    ->ArgNames({"policy", "arms"})
    ->ArgsProduct(
        {{static_cast<int64_t>(PolicyType::kThompson), static_cast<int64_t>(PolicyType::kKlUcb),
          static_cast<int64_t>(PolicyType::kUcb1), static_cast<int64_t>(PolicyType::kEpsilonGreedy),
          static_cast<int64_t>(PolicyType::kSoftmax), static_cast<int64_t>(PolicyType::kExp3),
          static_cast<int64_t>(PolicyType::kDiscountedThompson),
          static_cast<int64_t>(PolicyType::kSlidingWindowThompson)},
         {2, 10}});

void BM_RngUniform(benchmark::State& state) {
  Rng rng(1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(rng.Uniform());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RngUniform);

void BM_RngNormal(benchmark::State& state) {
  Rng rng(1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(rng.Normal());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RngNormal);

void BM_RngBeta(benchmark::State& state) {
  Rng rng(1);
  const auto a = static_cast<double>(state.range(0));
  for (auto _ : state) {
    benchmark::DoNotOptimize(rng.Beta(a, 10 * a));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RngBeta)->Arg(1)->Arg(1000);

// Probability of being best for a stats request: 10 Thompson arms, 10,000 Monte Carlo draws.
void BM_ProbabilityBest(benchmark::State& state) {
  const auto arms = static_cast<size_t>(state.range(0));
  std::unique_ptr<Policy> policy = Policy::Create(PolicyOptions{}, RewardType::kBernoulli, arms);
  Rng rng(1);
  const std::vector<double> means = Means(arms);
  for (int i = 0; i < 100000; ++i) {
    const size_t arm = static_cast<size_t>(i) % arms;
    policy->Update(arm, rng.Uniform() < means[arm] ? 1.0 : 0.0);
  }
  const std::vector<uint8_t> active(arms, 1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(ProbabilityBest(*policy, active, 10000, rng));
  }
}
BENCHMARK(BM_ProbabilityBest)->Arg(2)->Arg(10)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace evo::bandit
