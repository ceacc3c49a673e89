#include "queue/worker_pool.hpp"

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "resilience/resilience.hpp"

namespace evo::queue {

using std::chrono::milliseconds;

namespace {

// 1 s · 2^(attempt-1), at most 5 min, full jitter; attempts are bounded by the queue.
const resilience::RetryPolicy& DefaultPolicy() {
  static const resilience::RetryPolicy policy = [] {
    resilience::RetryOptions o;
    o.max_attempts = 10'000;
    o.initial_backoff = std::chrono::seconds(1);
    o.max_backoff = std::chrono::minutes(5);
    o.multiplier = 2.0;
    return resilience::RetryPolicy::Create(o).value();
  }();
  return policy;
}

}  // namespace

bool IsPermanent(const Status& status) {
  return resilience::ClassifyStatus(status) == resilience::Outcome::kPermanent;
}

milliseconds DefaultBackoff(int attempt, uint64_t random) {
  return DefaultPolicy()
      .NextDelay(std::max(attempt, 1), milliseconds(0), std::nullopt, random)
      .value_or(std::chrono::minutes(5));
}

Status Validate(const WorkerOptions& o) {
  EVO_RETURN_IF_ERROR(ValidateQueueName(o.queue));
  if (o.concurrency < 1 || o.concurrency > 256) {
    return InvalidArgumentError("concurrency must be 1..256");
  }
  if (o.batch < 1 || o.batch > 1000) {
    return InvalidArgumentError("batch must be 1..1000");
  }
  if (o.visibility < milliseconds(100)) {
    return InvalidArgumentError("visibility must be at least 100 ms");
  }
  if (o.poll_wait < milliseconds(0)) {
    return InvalidArgumentError("poll_wait must not be negative");
  }
  return OkStatus();
}

namespace {

class WorkerPoolImpl final : public WorkerPool {
 public:
  WorkerPoolImpl(Broker& broker, const Clock& clock, WorkerOptions options, MessageHandler handler)
      : broker_(broker),
        clock_(clock),
        options_(std::move(options)),
        handler_(std::move(handler)) {}
  ~WorkerPoolImpl() override { Stop(); }

  void Begin() {
    for (int i = 0; i < options_.concurrency; ++i) {
      threads_.emplace_back([this, i] { Run(static_cast<uint64_t>(i)); });
    }
  }

  void Stop() override {
    stopping_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) {
        t.join();
      }
    }
  }

  Stats stats() const override {
    Stats s;
    s.handled = handled_.load();
    s.acked = acked_.load();
    s.retried = retried_.load();
    s.failed = failed_.load();
    s.settle_errors = settle_errors_.load();
    return s;
  }

 private:
  void Run(uint64_t index) {
    std::mt19937_64 rng(std::random_device{}() ^ (index * 0x9e3779b97f4a7c15ULL));
    // The long poll is kept short enough that Stop is prompt.
    const milliseconds wait = std::min(options_.poll_wait, milliseconds(1000));
    while (!stopping_.load()) {
      auto leases = broker_.Lease(
          options_.queue, {.max = options_.batch, .visibility = options_.visibility, .wait = wait});
      if (!leases.ok()) {
        spdlog::warn("queue: worker on '{}' could not lease: {}", options_.queue,
                     leases.status().ToString());
        clock_.SleepFor(milliseconds(500));
        continue;
      }
      for (const Leased& m : *leases) {
        if (stopping_.load()) {
          // Not an attempt: nobody tried it, so it keeps its budget and gets no history entry.
          Settle(broker_.Nack(
              options_.queue, m.lease_id,
              {.delay = milliseconds(0), .error = "worker stopped", .count_attempt = false}));
          continue;
        }
        Handle(m, rng);
      }
    }
  }

  void Handle(const Leased& m, std::mt19937_64& rng) {
    // A tenth of the lease (at least 50 ms) is kept to settle the message in time.
    const milliseconds margin = std::max(options_.visibility / 10, milliseconds(50));
    const auto deadline = clock_.Monotonic() + (options_.visibility - margin);
    Status result;
    try {
      result = handler_(m, deadline);
    } catch (const std::exception& e) {
      result = InternalError(fmt::format("handler threw: {}", e.what()));
    } catch (...) {
      result = InternalError("handler threw");
    }
    handled_.fetch_add(1);
    if (result.ok()) {
      if (Settle(broker_.Ack(options_.queue, m.lease_id))) {
        acked_.fetch_add(1);
      }
      return;
    }
    const std::string error = result.ToString();
    if (auto after = result.GetPayload(kPayloadRetryAfter)) {
      int64_t seconds = 0;
      for (char c : *after) {
        if (c < '0' || c > '9' || seconds > 86'400) {
          break;
        }
        seconds = seconds * 10 + (c - '0');
      }
      if (Settle(broker_.Nack(options_.queue, m.lease_id,
                              {.delay = milliseconds(seconds * 1000), .error = error}))) {
        retried_.fetch_add(1);
      }
      return;
    }
    if (IsPermanent(result)) {
      if (Settle(broker_.Fail(options_.queue, m.lease_id, error))) {
        failed_.fetch_add(1);
      }
      return;
    }
    const milliseconds delay =
        options_.backoff ? options_.backoff(m.attempt) : DefaultBackoff(m.attempt, rng());
    if (Settle(broker_.Nack(options_.queue, m.lease_id, {.delay = delay, .error = error}))) {
      retried_.fetch_add(1);
    }
  }

  bool Settle(const Status& s) {
    if (!s.ok()) {
      settle_errors_.fetch_add(1);
      spdlog::warn("queue: a message of '{}' could not be settled: {}", options_.queue,
                   s.ToString());
    }
    return s.ok();
  }

  Broker& broker_;
  const Clock& clock_;
  const WorkerOptions options_;
  MessageHandler handler_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> handled_{0};
  std::atomic<uint64_t> acked_{0};
  std::atomic<uint64_t> retried_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> settle_errors_{0};
};

}  // namespace

StatusOr<std::unique_ptr<WorkerPool>> WorkerPool::Start(Broker& broker, const Clock& clock,
                                                        WorkerOptions options,
                                                        MessageHandler handler) {
  EVO_RETURN_IF_ERROR(Validate(options));
  if (!handler) {
    return InvalidArgumentError("a handler is required");
  }
  EVO_RETURN_IF_ERROR(broker.Stats(options.queue).status());
  auto pool =
      std::make_unique<WorkerPoolImpl>(broker, clock, std::move(options), std::move(handler));
  pool->Begin();
  return std::unique_ptr<WorkerPool>(std::move(pool));
}

}  // namespace evo::queue
