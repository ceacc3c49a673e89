// Micro-benchmarks of the bandit policies: the single-thread cost of one Select + one Update
// (what a pull followed by its reward costs a service, without locking or I/O), for each
// policy with 2 and 10 arms on Bernoulli rewards, after 10,000 warm-up pulls so that the
// posteriors are concentrated as in a running experiment. items_per_second is
// Select+Update pairs per second. Also the Rng's primitives, probability of being best, the
// snapshot of a 16M-entry pending ring (encoding alone, and written to a file with fsync), and
// the latency of the pull that comes when a second's worth of pulls expires.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "bandit/bandit.hpp"
#include "bandit/pending.hpp"
#include "bandit/policy.hpp"
#include "bandit/rng.hpp"
#include "core/clock.hpp"
#include "store/store.hpp"

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

// The pending ring as the load benchmark (bench/bandit.sh) leaves it: 135,000 pulls a second
// with a 60 s window, so two windows (the pending one and the expired one kept for late
// rewards) hold ~16.2M entries; `rewarded_pct` of the pulls are rewarded at once, the others
// stay pending or expire, and 1 % of the expired ones get a late reward. Built once per
// argument pair.
const PendingIndex& SteadyRing(uint16_t arms, int rewarded_pct) {
  static std::map<std::pair<uint16_t, int>, PendingIndex> rings;
  PendingIndex& ring = rings[{arms, rewarded_pct}];
  if (ring.size() != 0) {
    return ring;
  }
  constexpr int64_t kRate = 135'000;
  constexpr int64_t kWindow = 60;
  Rng rng(7);
  std::vector<uint64_t> late;
  for (int64_t now = 1'000'000; now < 1'000'000 + 2 * kWindow + 5; ++now) {
    for (int64_t i = 0; i < kRate; ++i) {
      const uint64_t seq = ring.Add(static_cast<uint16_t>(rng.Below(arms)), now + kWindow);
      if (static_cast<int>(rng.Below(100)) < rewarded_pct) {
        ring.Find(seq)->state = PullState::kRewarded;
      }
    }
    ring.Expire(now, [&](uint64_t seq, uint16_t) {
      if (rng.Below(100) == 0) {
        late.push_back(seq);
      }
      return true;
    });
    for (uint64_t seq : late) {
      ring.Find(seq)->state = PullState::kLateRewarded;
    }
    late.clear();
    ring.Purge(now, kWindow);
  }
  return ring;
}

// Encoding one snapshot of the ring, without I/O: bytes_per_second is snapshot bytes.
void BM_PendingSnapshotEncode(benchmark::State& state) {
  const PendingIndex& ring =
      SteadyRing(static_cast<uint16_t>(state.range(0)), static_cast<int>(state.range(1)));
  uint64_t bytes = 0;
  for (auto _ : state) {
    const PendingIndex::Captured view = ring.Capture();
    bytes = 0;
    PendingIndex::Serialize(view, [&bytes](std::string_view piece) {
      benchmark::DoNotOptimize(piece.data());
      bytes += piece.size();
    });
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  state.counters["entries"] = static_cast<double>(ring.size());
  state.counters["snapshot_MiB"] = static_cast<double>(bytes) / (1 << 20);
}
BENCHMARK(BM_PendingSnapshotEncode)
    ->ArgNames({"arms", "rewarded_pct"})
    ->Args({3, 0})
    ->Args({3, 50})
    ->Args({100, 50})
    ->Unit(benchmark::kMillisecond);

// What the service does per snapshot for this ring: encode, write to a file, fsync.
void BM_PendingSnapshotFile(benchmark::State& state) {
  const PendingIndex& ring =
      SteadyRing(static_cast<uint16_t>(state.range(0)), static_cast<int>(state.range(1)));
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("evo-bandit-bench-" + std::to_string(::getpid()) + ".bin");
  uint64_t bytes = 0;
  for (auto _ : state) {
    const PendingIndex::Captured view = ring.Capture();
    bytes = 0;
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      PendingIndex::Serialize(view, [&](std::string_view piece) {
        f.write(piece.data(), static_cast<std::streamsize>(piece.size()));
        bytes += piece.size();
      });
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)::fsync(fd);
      ::close(fd);
    }
  }
  std::filesystem::remove(path);
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  state.counters["snapshot_MiB"] = static_cast<double>(bytes) / (1 << 20);
}
BENCHMARK(BM_PendingSnapshotFile)
    ->ArgNames({"arms", "rewarded_pct"})
    ->Args({3, 50})
    ->Unit(benchmark::kMillisecond);

// The pull that comes first after the attribution window of one second of pulls (135,000,
// as in bench/bandit.sh) has ended: its latency, which includes whatever expiry work the
// request does under the experiment's lock.
void BM_PullWhenASecondOfPullsExpires(benchmark::State& state) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("evo-bandit-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ManualClock clock;
  auto db = store::OpenSqlite({.path = (dir / "evo.db").string()}, clock);
  auto service = Service::Open(**db, dir / "bandit", ServiceOptions{}, clock);
  ExperimentSpec spec;
  spec.name = "x";
  spec.arms = {{"a", nullptr, false}, {"b", nullptr, false}, {"c", nullptr, false}};
  spec.attribution_window_s = 60;
  (void)(*service)->Create(spec);
  for (auto _ : state) {
    state.PauseTiming();
    for (int i = 0; i < 135'000; ++i) {
      (void)(*service)->Pull("x");
    }
    clock.Advance(std::chrono::seconds(60));
    state.ResumeTiming();
    benchmark::DoNotOptimize((*service)->Pull("x"));
  }
  service->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_PullWhenASecondOfPullsExpires)->Iterations(5)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace evo::bandit
