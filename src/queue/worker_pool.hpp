// WorkerPool: the one way evo modules consume a queue. Threads lease messages, run a handler
// under a deadline, and settle each message by the handler's Status:
//
//   OK                                   ack
//   a status with kPayloadRetryAfter     nack, visible again after that many seconds
//   permanent (IsPermanent below)        fail: dead-lettered at once with the status text
//   anything else (transient)            nack with `backoff(attempt)`; dead-lettered by the
//                                        queue once its max_attempts are used up
//
//   auto pool = queue::WorkerPool::Start(broker, clock, {.queue = "mail", .concurrency = 4},
//       [&](const queue::Leased& m, Clock::SteadyTime deadline) { return Send(m, deadline); });
//   ...
//   pool->Stop();  // finishes the messages in hand, leases nothing more
//
// The deadline is the lease's expiry less a safety margin: a handler that runs past it may
// see its message delivered to another worker, so it must give up by then.
//
// Thread safety: Start and Stop are called from one controlling thread; the handler runs on
// the pool's threads, `concurrency` at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "core/clock.hpp"
#include "core/status.hpp"
#include "queue/queue.hpp"

namespace evo::queue {

// Whether a handler's status means work that retrying cannot fix (resilience::ClassifyStatus:
// INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, FAILED_PRECONDITION,
// OUT_OF_RANGE, UNIMPLEMENTED, UNAUTHENTICATED, CANCELLED, DATA_LOSS).
bool IsPermanent(const Status& status);

// The default retry delay: 1 s · 2^(attempt-1), at most 5 min, with full jitter
// (uniform in [0, that]), so that failing messages spread out instead of retrying in step.
std::chrono::milliseconds DefaultBackoff(int attempt, uint64_t random);

struct WorkerOptions {
  std::string queue;
  int concurrency = 4;  // handler threads; REQUIRES 1..256
  size_t batch = 1;     // messages leased per call, handled in turn; REQUIRES 1..1000
  std::chrono::milliseconds visibility{30'000};  // lease length; REQUIRES >= 100 ms
  std::chrono::milliseconds poll_wait{1'000};    // long-poll wait when the queue is empty
  // Retry delay after a transient failure of delivery `attempt` (1-based); empty = the
  // DefaultBackoff.
  std::function<std::chrono::milliseconds(int attempt)> backoff;
};
Status Validate(const WorkerOptions& options);

using MessageHandler = std::function<Status(const Leased& message, Clock::SteadyTime deadline)>;

class WorkerPool {
 public:
  struct Stats {
    uint64_t handled = 0;  // handler calls
    uint64_t acked = 0;
    uint64_t retried = 0;        // nacked for a retry
    uint64_t failed = 0;         // failed permanently
    uint64_t settle_errors = 0;  // ack/nack refused (e.g. the lease had run out)
  };

  // Starts the threads. `broker` and `clock` must outlive the pool. InvalidArgument for bad
  // options, NotFound for an unknown queue.
  static StatusOr<std::unique_ptr<WorkerPool>> Start(Broker& broker, const Clock& clock,
                                                     WorkerOptions options, MessageHandler handler);
  virtual ~WorkerPool() = default;

  // Stops leasing, lets running handlers finish and settles their messages; messages leased
  // but not yet started are handed back without delay (a nack with count_attempt=false: no
  // attempt used up, no history entry, never dead-lettered by Stop) so another consumer
  // gets them at once. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
  virtual Stats stats() const = 0;
};

}  // namespace evo::queue
