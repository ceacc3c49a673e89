// In-process queue throughput: enqueue -> lease -> ack, durable (fsync per group commit).
// Arg = batch size; threads run the cycle concurrently and share group commits.
#include <atomic>
#include <cstdlib>
#include <filesystem>

#include <benchmark/benchmark.h>

#include "queue/queue.hpp"

namespace evo::queue {
namespace {

struct Fixture {
  std::filesystem::path dir;
  std::atomic<MessageId> next{1};
  std::unique_ptr<Broker> broker;

  Fixture() {
    // The working directory, not /tmp: the disk the data dir lives on is what is measured.
    dir = std::filesystem::current_path() / ("evo-queue-bench-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    BrokerOptions options;
    options.path = dir / "queue.db";
    options.sync = std::getenv("EVO_BENCH_NOSYNC") == nullptr;
    broker = OpenSqliteBroker(options, RealClock(), [this](size_t n) {
               std::vector<MessageId> ids(n);
               const MessageId first = next.fetch_add(n);
               for (size_t i = 0; i < n; ++i) {
                 ids[i] = first + i;
               }
               return StatusOr<std::vector<MessageId>>(ids);
             }).value();
    (void)broker->DeclareQueue("bench", {});
  }
  ~Fixture() {
    broker.reset();
    std::filesystem::remove_all(dir);
  }
};

Fixture& Shared() {
  // Destroyed at exit, which removes the data dir.
  static Fixture fixture;
  return fixture;
}

void BM_EnqueueLeaseAck(benchmark::State& state) {
  Broker& broker = *Shared().broker;
  const auto batch = static_cast<size_t>(state.range(0));
  std::string payload(200, 'x');
  for (auto _ : state) {
    std::vector<NewMessage> messages(batch);
    for (auto& m : messages) {
      m.payload = payload;
    }
    auto ids = broker.Enqueue("bench", std::move(messages));
    if (!ids.ok()) {
      state.SkipWithError("enqueue failed");
      break;
    }
    auto leases = broker.Lease("bench", {.max = batch, .visibility = std::chrono::seconds(60)});
    if (!leases.ok()) {
      state.SkipWithError("lease failed");
      break;
    }
    std::vector<std::string> lease_ids;
    lease_ids.reserve(leases->size());
    for (const Leased& l : *leases) {
      lease_ids.push_back(l.lease_id);
    }
    if (!broker.AckBatch("bench", lease_ids).ok()) {
      state.SkipWithError("ack failed");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
}
BENCHMARK(BM_EnqueueLeaseAck)->Arg(1)->Arg(100)->Threads(1)->Threads(8)->UseRealTime();

// Producers and consumers at the same time, as a service runs: even threads enqueue batches
// of Arg messages, odd threads lease batches of Arg and ack them in one call. Items are the
// messages acked; the commits of both sides share groups.
void BM_ProducersAndConsumers(benchmark::State& state) {
  Broker& broker = *Shared().broker;
  const auto batch = static_cast<size_t>(state.range(0));
  const bool producer = state.thread_index() % 2 == 0;
  const std::string payload(200, 'x');
  int64_t acked = 0;
  for (auto _ : state) {
    if (producer) {
      std::vector<NewMessage> messages(batch);
      for (auto& m : messages) {
        m.payload = payload;
      }
      if (!broker.Enqueue("bench", std::move(messages)).ok()) {
        state.SkipWithError("enqueue failed");
        break;
      }
      continue;
    }
    auto leases = broker.Lease("bench", {.max = batch,
                                         .visibility = std::chrono::seconds(60),
                                         .wait = std::chrono::milliseconds(50)});
    if (!leases.ok()) {
      state.SkipWithError("lease failed");
      break;
    }
    if (leases->empty()) {
      continue;
    }
    std::vector<std::string> lease_ids;
    lease_ids.reserve(leases->size());
    for (const Leased& l : *leases) {
      lease_ids.push_back(l.lease_id);
    }
    if (!broker.AckBatch("bench", lease_ids).ok()) {
      state.SkipWithError("ack failed");
      break;
    }
    acked += static_cast<int64_t>(leases->size());
  }
  state.SetItemsProcessed(acked);
}
BENCHMARK(BM_ProducersAndConsumers)->Arg(100)->Threads(2)->Threads(4)->UseRealTime();

}  // namespace
}  // namespace evo::queue
