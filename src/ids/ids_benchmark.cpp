// Micro-benchmarks of the ids module. The saturation runs report `ratio_of_layout_limit`: IDs
// per second over what the default layout allows one worker (4,096,000/s), so the figure is
// comparable across machines; on a real clock a generator cannot, by design, exceed 1.0.
#include <benchmark/benchmark.h>

#include <memory>

#include "ids/ids.hpp"
#include "ids/test_util.hpp"

namespace evo::ids {
namespace {

constexpr double kLayoutLimit = 4'096'000.0;

const Clock& BenchClock() {
  static const MonotonicWallClock* const clock = new MonotonicWallClock(RealClock());
  return *clock;
}

const testing::TempDir& BenchDir() {
  static const testing::TempDir* const dir = new testing::TempDir();
  return *dir;
}

void Check(benchmark::State& state, const Status& s) {
  if (!s.ok()) {
    state.SkipWithError(s.ToString().c_str());
  }
}

std::unique_ptr<Generator> Open(const Layout& layout) {
  Options options;
  options.layout = layout;
  auto g = Generator::Open(options, BenchClock(), std::make_unique<testing::FakeLease>(0),
                           FileMarkStore(BenchDir().path() / "mark"));
  if (!g.ok()) {
    std::fprintf(stderr, "%s\n", g.status().ToString().c_str());
    std::abort();
  }
  return std::move(g).value();
}

// 22 sequence bits per 1 ms tick: 4.2 billion IDs per second, far beyond what a core can
// issue, so this measures the generator's own cost.
Layout Unthrottled() { return {.timestamp_bits = 41, .worker_bits = 0, .sequence_bits = 22}; }

void SetRates(benchmark::State& state, int64_t ids) {
  state.SetItemsProcessed(ids);
  state.counters["ratio_of_layout_limit"] =
      benchmark::Counter(static_cast<double>(ids) / kLayoutLimit, benchmark::Counter::kIsRate);
}

// The default layout on the real clock: capped at the layout's 4,096,000 IDs per second.
void BM_NextSingleThread(benchmark::State& state) {
  auto g = Open(Layout{});
  for (auto _ : state) {
    auto id = g->Next();
    benchmark::DoNotOptimize(id);
    Check(state, id.status());
  }
  SetRates(state, state.iterations());
}
BENCHMARK(BM_NextSingleThread)->UseRealTime();

void BM_NextUnthrottled(benchmark::State& state) {
  auto g = Open(Unthrottled());
  for (auto _ : state) {
    auto id = g->Next();
    benchmark::DoNotOptimize(id);
    Check(state, id.status());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NextUnthrottled);

void BM_NextBatch1000(benchmark::State& state) {
  auto g = Open(Unthrottled());
  for (auto _ : state) {
    auto ids = g->NextBatch(1000);
    benchmark::DoNotOptimize(ids);
    Check(state, ids.status());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_NextBatch1000);

void BM_NextBatch1000DefaultLayout(benchmark::State& state) {
  auto g = Open(Layout{});
  for (auto _ : state) {
    auto ids = g->NextBatch(1000);
    benchmark::DoNotOptimize(ids);
    Check(state, ids.status());
  }
  SetRates(state, state.iterations() * 1000);
}
BENCHMARK(BM_NextBatch1000DefaultLayout)->UseRealTime();

// Every thread calls Next() on one shared generator with the default layout as fast as it can.
std::unique_ptr<Generator> shared_generator;

void BM_Saturation(benchmark::State& state) {
  if (state.thread_index() == 0) {
    shared_generator = Open(Layout{});
  }
  for (auto _ : state) {  // the loop starts on every thread after the setup above
    auto id = shared_generator->Next();
    benchmark::DoNotOptimize(id);
    Check(state, id.status());
  }
  SetRates(state, state.iterations());
  if (state.thread_index() == 0) {
    shared_generator.reset();
  }
}
BENCHMARK(BM_Saturation)->Threads(1)->Threads(2)->UseRealTime()->MinTime(2.0);

void BM_EncodeBase32(benchmark::State& state) {
  Id id = 0x0123'4567'89ab'cdefULL;
  for (auto _ : state) {
    benchmark::DoNotOptimize(Encode(id++, Format::kBase32));
  }
}
BENCHMARK(BM_EncodeBase32);

void BM_EncodeDecimal(benchmark::State& state) {
  Id id = 0x0123'4567'89ab'cdefULL;
  for (auto _ : state) {
    benchmark::DoNotOptimize(Encode(id++, Format::kDecimal));
  }
}
BENCHMARK(BM_EncodeDecimal);

void BM_DecodeAnyTextBase32(benchmark::State& state) {
  const std::string text = Encode(0x0123'4567'89ab'cdefULL, Format::kBase32);
  for (auto _ : state) {
    benchmark::DoNotOptimize(DecodeAnyText(text));
  }
}
BENCHMARK(BM_DecodeAnyTextBase32);

void BM_Uuid7(benchmark::State& state) {
  Uuid7Generator gen(BenchClock(), 1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(gen.Next());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Uuid7);

void BM_Uuid7Formatted(benchmark::State& state) {
  Uuid7Generator gen(BenchClock(), 1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(FormatUuid(gen.Next()));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Uuid7Formatted);

void BM_Ulid(benchmark::State& state) {
  UlidGenerator gen(BenchClock(), 1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(FormatUlid(gen.Next()));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Ulid);

}  // namespace
}  // namespace evo::ids
