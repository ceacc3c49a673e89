// The 64-bit ID generator: one small critical section per ID, the clock read once per call.
//
// State under mu_: the (tick, sequence) of the last ID, the highest clock reading seen, and the
// persisted high-water mark. Every decision about time is made on that state, so a clock that
// steps back, freezes or jumps is handled by the same few branches (see AdvanceLocked).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "ids/ids.hpp"
#include "ids/internal.hpp"

namespace evo::ids {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// Sleeping on a real clock overshoots by the kernel's timer slack (50 us by default); the
// last stretch before a tick boundary is spun instead so a saturated generator loses little.
constexpr nanoseconds kSpinMargin = std::chrono::microseconds(50);
// Back-to-back waits on a clock that keeps stepping back are cut short: logical time takes
// over after this many.
constexpr int kMaxWaits = 3;

int64_t Ns(Clock::WallTime t) {
  return std::chrono::duration_cast<nanoseconds>(t.time_since_epoch()).count();
}

// Ticks covering `d`, rounded up: limits expressed in time never shrink to zero ticks.
int64_t CeilTicks(milliseconds d, milliseconds tick) {
  return (d.count() + tick.count() - 1) / tick.count();
}

class GeneratorImpl final : public Generator {
 public:
  GeneratorImpl(const Options& options, const Clock& clock, std::unique_ptr<WorkerLease> lease,
                std::unique_ptr<MarkStore> marks)
      : options_(options),
        clock_(clock),
        lease_(std::move(lease)),
        marks_(std::move(marks)),
        worker_id_(lease_->worker_id()),
        tick_ns_(nanoseconds(options.layout.tick).count()),
        epoch_ns_(Ns(options.layout.epoch)),
        max_sequence_(options.layout.MaxSequence()),
        max_borrow_ticks_(options.max_borrow.count() / options.layout.tick.count()),
        lookahead_ticks_(
            std::max<int64_t>(1, CeilTicks(options.mark_lookahead, options.layout.tick))),
        start_gap_ticks_(options.max_start_gap.count() / options.layout.tick.count()),
        renewer_([this] { RenewerLoop(); }) {}

  // Lowers the persisted mark to just past the last ID. Every ID issued is below it, so this
  // is as safe as the lookahead mark, and a clean restart then starts at the clock's time
  // instead of up to `mark_lookahead` in the future (or, after quick restarts that each push
  // the mark ahead, not ready at all). A crash skips this and keeps the lookahead mark.
  ~GeneratorImpl() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    renew_cv_.notify_all();
    renewer_.join();
    std::lock_guard<std::mutex> lock(mu_);
    std::lock_guard<std::mutex> store_lock(store_mu_);
    const int64_t exact = sequence_ < 0 ? last_tick_ : last_tick_ + 1;
    if (exact < persisted_mark_) {
      const Status s = marks_->Store(exact);
      if (!s.ok()) {
        spdlog::warn("ids: cannot store the final high-water mark: {}", s.ToString());
      }
    }
  }

  // Loads the mark and decides whether IDs may be issued right away. Not thread-safe: runs
  // before the generator is shared.
  Status Start() {
    EVO_ASSIGN_OR_RETURN(const int64_t mark, marks_->Load());
    if (mark > options_.layout.MaxTimestamp()) {
      return DataLossError(
          fmt::format("stored high-water mark {} does not fit the layout's {} "
                      "timestamp bits; was the layout changed?",
                      mark, options_.layout.timestamp_bits));
    }
    persisted_mark_ = mark;
    SetMarkLocked(mark);
    // Every ID issued before the restart is below the mark, so the first one here is at or
    // past it; sequence -1 makes the first ID of tick `mark` use sequence 0.
    last_tick_ = mark;
    sequence_ = -1;
    const Clock::WallTime wall = clock_.Now();
    const int64_t now = TicksOf(wall);
    high_tick_ = std::max(now, mark);
    // Issuing ahead of a clock that is behind the mark is expected after a restart (the mark
    // runs ahead of the issued IDs); it is not a backward step.
    backward_episode_ = now < mark;
    if (mark - now > start_gap_ticks_) {
      not_before_tick_ = mark - start_gap_ticks_;
      const Status s = NotReadyLocked(wall);
      spdlog::warn("ids: {}", s.message());
      return OkStatus();
    }
    // Fail at start, loudly, when the mark cannot be persisted.
    return EnsureMarkLocked(std::max(now, mark));
  }

  StatusOr<Id> Next() override {
    Id id = 0;
    std::lock_guard<std::mutex> lock(mu_);
    const Status s = NextLocked(&id);
    if (!s.ok()) {
      AddRelaxed(unavailable_, 1);
      return s;
    }
    AddRelaxed(issued_, 1);
    RequestEarlyRenewalLocked();
    return id;
  }

  StatusOr<std::vector<Id>> NextBatch(size_t count) override {
    if (count == 0) {
      return InvalidArgumentError("count must be >= 1");
    }
    std::vector<Id> ids;
    ids.reserve(count);
    std::lock_guard<std::mutex> lock(mu_);
    const Status s = NextBatchLocked(count, &ids);
    if (!s.ok()) {
      AddRelaxed(unavailable_, 1);
      return s;
    }
    AddRelaxed(issued_, count);
    RequestEarlyRenewalLocked();
    return ids;
  }

  Status Ready() override {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::WallTime wall = clock_.Now();
    EVO_RETURN_IF_ERROR(CheckAvailableLocked(wall));
    if (sequence_ >= max_sequence_) {
      const int64_t now = TicksOf(wall);
      const int64_t next = last_tick_ + 1;
      if (now <= last_tick_ && next - std::max(high_tick_, now) > max_borrow_ticks_) {
        return BorrowExhaustedLocked(wall, next);
      }
    }
    if (mark_failed_) {
      // Retry here too: a load balancer that stops sending traffic while not ready would
      // otherwise never let Next() find out that the disk is back.
      return EnsureMarkLocked(std::max(last_tick_, TicksOf(wall)));
    }
    return OkStatus();
  }

  const Layout& layout() const override { return options_.layout; }
  const Options& options() const override { return options_; }
  int64_t worker_id() const override { return worker_id_; }

  Stats stats() const override {
    Stats s;
    s.issued = issued_.load(std::memory_order_relaxed);
    s.clock_backward_events = clock_backward_events_.load(std::memory_order_relaxed);
    s.sequence_exhaustions = sequence_exhaustions_.load(std::memory_order_relaxed);
    s.unavailable = unavailable_.load(std::memory_order_relaxed);
    s.worker_id = worker_id_;
    s.mark_unix_millis = mark_unix_millis_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  static constexpr int64_t kReady = std::numeric_limits<int64_t>::min();

  // Counters are written only under mu_, so a relaxed load and store replace a locked add.
  template <typename T>
  static void AddRelaxed(std::atomic<T>& counter, T n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static void AddRelaxed(std::atomic<uint64_t>& counter, size_t n) {
    AddRelaxed<uint64_t>(counter, static_cast<uint64_t>(n));
  }

  int64_t TicksOf(Clock::WallTime t) const {
    const int64_t ns = Ns(t) - epoch_ns_;
    // Floor, not truncation: a clock set before the epoch must read as behind, not as tick 0.
    return ns >= 0 ? ns / tick_ns_ : -((-ns + tick_ns_ - 1) / tick_ns_);
  }
  Clock::WallTime TickStart(int64_t tick) const {
    // Saturates: a layout of second ticks reaches beyond what nanoseconds hold.
    if (tick > (std::numeric_limits<int64_t>::max() - epoch_ns_) / tick_ns_) {
      return Clock::WallTime::max();
    }
    return Clock::WallTime(std::chrono::duration_cast<Clock::WallTime::duration>(
        nanoseconds(epoch_ns_ + tick * tick_ns_)));
  }
  int64_t TickUnixMillis(int64_t tick) const {
    return UnixMillis(options_.layout.epoch) + tick * options_.layout.tick.count();
  }

  Status NextLocked(Id* id) {
    const Clock::WallTime wall = clock_.Now();
    EVO_RETURN_IF_ERROR(CheckAvailableLocked(wall));
    EVO_RETURN_IF_ERROR(AdvanceLocked(wall));
    EVO_RETURN_IF_ERROR(EnsureMarkLocked(last_tick_));
    *id = Compose(options_.layout, last_tick_, worker_id_, sequence_);
    return OkStatus();
  }

  // On failure the IDs taken so far are dropped: skipping IDs is safe, reissuing is not.
  Status NextBatchLocked(size_t count, std::vector<Id>* ids) {
    const Clock::WallTime wall = clock_.Now();
    EVO_RETURN_IF_ERROR(CheckAvailableLocked(wall));
    EVO_RETURN_IF_ERROR(AdvanceLocked(wall));
    while (true) {
      EVO_RETURN_IF_ERROR(EnsureMarkLocked(last_tick_));
      // The rest of the current tick is taken without touching the clock.
      const int64_t take = std::min<int64_t>(static_cast<int64_t>(count - ids->size()),
                                             max_sequence_ - sequence_ + 1);
      for (int64_t i = 0; i < take; ++i) {
        ids->push_back(Compose(options_.layout, last_tick_, worker_id_, sequence_ + i));
      }
      sequence_ += take - 1;
      if (ids->size() == count) {
        return OkStatus();
      }
      EVO_RETURN_IF_ERROR(AdvanceLocked(clock_.Now()));  // the tick is used up
    }
  }

  Status CheckAvailableLocked(Clock::WallTime wall) {
    if (!lease_->Valid()) {
      return LeaseLost();
    }
    if (not_before_tick_ != kReady) {
      if (TicksOf(wall) < not_before_tick_) {
        return NotReadyLocked(wall);
      }
      BecomeReadyLocked(wall);
    }
    return OkStatus();
  }

  Status LeaseLost() const {
    return UnavailableError(fmt::format("the lease on worker id {} was lost", worker_id_))
        .With(kPayloadRetryAfter, "1");
  }

  Status NotReadyLocked(Clock::WallTime wall) const {
    const int64_t behind_ms = TickUnixMillis(mark_) - UnixMillis(wall);
    const Clock::WallTime until = TickStart(not_before_tick_);
    return UnavailableError(
               fmt::format("clock is {} s behind the high-water mark {}; refusing to issue IDs "
                           "until the clock reaches {} (max_start_gap {} ms), as IDs up to the "
                           "mark may already exist",
                           (behind_ms + 999) / 1000, FormatUnixMillis(TickUnixMillis(mark_)),
                           FormatUnixMillis(UnixMillis(until)), options_.max_start_gap.count()))
        .With(kPayloadRetryAfter, std::to_string(internal::RetryAfterSeconds(until - wall)));
  }

  void BecomeReadyLocked(Clock::WallTime wall) {
    not_before_tick_ = kReady;
    high_tick_ = std::max({high_tick_, mark_, TicksOf(wall)});
    spdlog::info("ids: clock is within max_start_gap of the high-water mark; issuing IDs");
  }

  // The clock has moved past the last ID: its first sequence number is free.
  void StartTickLocked(int64_t tick) {
    last_tick_ = tick;
    sequence_ = 0;
    backward_episode_ = false;
  }

  // Moves (last_tick_, sequence_) to the next free slot, given a fresh clock reading `wall`.
  Status AdvanceLocked(Clock::WallTime wall) {
    int64_t now = TicksOf(wall);
    for (int waits = 0;; ++waits) {
      high_tick_ = std::max(high_tick_, now);
      if (now > last_tick_) {
        StartTickLocked(now);
        return OkStatus();
      }
      if (now == last_tick_) {
        backward_episode_ = false;
        break;
      }
      // The clock is behind the last ID.
      if (!backward_episode_) {
        backward_episode_ = true;
        AddRelaxed(clock_backward_events_, 1);
      }
      const nanoseconds behind = TickStart(last_tick_) - wall;
      if (behind > options_.max_backward || waits >= kMaxWaits) {
        break;  // the logical clock bridges it: keep issuing from last_tick_
      }
      clock_.SleepFor(behind);
      wall = clock_.Now();
      now = TicksOf(wall);
    }
    if (sequence_ < max_sequence_) {
      ++sequence_;
      return OkStatus();
    }
    AddRelaxed(sequence_exhaustions_, 1);
    if (now == last_tick_) {
      wall = WaitForTickAfterLocked(last_tick_);
      now = TicksOf(wall);
      high_tick_ = std::max(high_tick_, now);
      if (now > last_tick_) {
        StartTickLocked(now);
        return OkStatus();
      }
    }
    // The clock is frozen or behind: borrow the next tick, within limits.
    const int64_t next = last_tick_ + 1;
    if (next - high_tick_ > max_borrow_ticks_) {
      return BorrowExhaustedLocked(wall, next);
    }
    if (next > options_.layout.MaxTimestamp()) {
      return FailedPreconditionError("the layout's timestamp field is exhausted");
    }
    last_tick_ = next;
    sequence_ = 0;
    return OkStatus();
  }

  Status BorrowExhaustedLocked(Clock::WallTime wall, int64_t next) const {
    // Borrowing resumes once the clock reaches `next - max_borrow`.
    const Clock::WallTime resume = TickStart(next - max_borrow_ticks_);
    return UnavailableError(
               fmt::format("the clock is behind the last issued ID by more than max_borrow ({} "
                           "ms); IDs resume when the clock reaches {}",
                           options_.max_borrow.count(), FormatUnixMillis(UnixMillis(resume))))
        .With(kPayloadRetryAfter, std::to_string(internal::RetryAfterSeconds(resume - wall)));
  }

  // Waits until the clock passes `tick` and returns the reading; returns early (with the clock
  // still at or before `tick`) when the clock does not move while slept on.
  Clock::WallTime WaitForTickAfterLocked(int64_t tick) {
    const Clock::WallTime target = TickStart(tick + 1);
    Clock::WallTime wall = clock_.Now();
    if (target - wall > kSpinMargin) {
      clock_.SleepFor(target - wall - kSpinMargin);
    }
    const Clock::SteadyTime spin_start = clock_.Monotonic();
    const nanoseconds spin_limit = options_.layout.tick + milliseconds(1);
    for (int i = 0;; ++i) {
      wall = clock_.Now();
      if (TicksOf(wall) != tick) {
        return wall;
      }
      const Clock::SteadyTime mono = clock_.Monotonic();
      // A fake clock moves only when slept on (its monotonic time stands still); a real wall
      // clock that does not reach the boundary in time was stepped back.
      if (mono - spin_start > spin_limit || (i >= 16 && mono == spin_start)) {
        break;
      }
      std::this_thread::yield();
    }
    // The last stretch is slept only when it is short: a clock stepped back meanwhile is left
    // to the caller's borrowing rather than waited out here.
    if (target > wall && target - wall <= kSpinMargin) {
      clock_.SleepFor(target - wall);
    }
    return clock_.Now();
  }

  // Persists a new mark before any ID at or past the current one is issued.
  Status EnsureMarkLocked(int64_t tick) {
    if (tick < mark_ && !mark_failed_) {
      return OkStatus();
    }
    std::lock_guard<std::mutex> store_lock(store_mu_);
    if (persisted_mark_ > tick) {  // an early renewal got there first
      mark_failed_ = false;
      SetMarkLocked(persisted_mark_);
      return OkStatus();
    }
    const int64_t target = tick + lookahead_ticks_;
    const Status s = marks_->Store(target);
    if (!s.ok()) {
      if (!mark_failed_) {
        spdlog::error("ids: cannot persist the high-water mark: {}", s.ToString());
      }
      mark_failed_ = true;
      return UnavailableError(fmt::format("cannot persist the high-water mark: {}", s.message()))
          .With(kPayloadRetryAfter, "1");
    }
    if (mark_failed_) {
      spdlog::info("ids: the high-water mark is persisted again");
    }
    mark_failed_ = false;
    persisted_mark_ = target;
    SetMarkLocked(target);
    return OkStatus();
  }

  // Asks the renewer thread to store a mark ahead of need once half the lookahead is used,
  // so that the hard path above, which holds up every caller for an fsync, runs only at start
  // (or after the renewer fell behind), and the threads asking for IDs (HTTP I/O threads
  // among them) never wait for the fsync themselves.
  void RequestEarlyRenewalLocked() {
    if (renewing_ || last_tick_ < mark_ - lookahead_ticks_ / 2 || last_tick_ < renew_retry_tick_) {
      return;
    }
    renewing_ = true;
    renew_target_ = last_tick_ + lookahead_ticks_;
    renew_cv_.notify_one();
  }

  void RenewerLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      renew_cv_.wait(lock, [this] { return stopping_ || renew_target_ != 0; });
      if (stopping_) {
        return;
      }
      const int64_t target = std::exchange(renew_target_, 0);
      lock.unlock();
      try {
        RenewEarly(target);  // takes store_mu_, then mu_
      } catch (const std::exception& e) {
        spdlog::error("ids: early renewal of the high-water mark threw: {}", e.what());
        std::lock_guard<std::mutex> relock(mu_);
        renewing_ = false;
      }
      lock.lock();
    }
  }

  // Stores `target` without holding mu_: IDs below the current mark keep flowing meanwhile.
  void RenewEarly(int64_t target) {
    Status s;
    {
      std::lock_guard<std::mutex> store_lock(store_mu_);
      if (target > persisted_mark_) {
        s = marks_->Store(target);
        if (s.ok()) {
          persisted_mark_ = target;
        }
      }
      target = persisted_mark_;
    }
    std::lock_guard<std::mutex> lock(mu_);
    renewing_ = false;
    if (!s.ok()) {
      spdlog::warn("ids: early renewal of the high-water mark failed: {}", s.ToString());
      renew_retry_tick_ = last_tick_ + std::max<int64_t>(1, 100 / options_.layout.tick.count());
      return;
    }
    SetMarkLocked(std::max(mark_, target));
  }

  void SetMarkLocked(int64_t mark) {
    mark_ = mark;
    mark_unix_millis_.store(TickUnixMillis(mark), std::memory_order_relaxed);
  }

  const Options options_;
  const Clock& clock_;
  const std::unique_ptr<WorkerLease> lease_;
  const std::unique_ptr<MarkStore> marks_;
  const int64_t worker_id_;
  const int64_t tick_ns_;
  const int64_t epoch_ns_;
  const int64_t max_sequence_;
  const int64_t max_borrow_ticks_;
  const int64_t lookahead_ticks_;
  const int64_t start_gap_ticks_;

  std::mutex mu_;
  int64_t last_tick_ = 0;     // timestamp of the last ID; guarded by mu_
  int64_t sequence_ = -1;     // sequence of the last ID in last_tick_; guarded by mu_
  int64_t high_tick_ = 0;     // highest clock reading seen; guarded by mu_
  int64_t mark_ = 0;          // no ID at or past this tick until it is renewed; guarded by mu_
  bool mark_failed_ = false;  // the last hard Store failed; guarded by mu_
  bool renewing_ = false;     // an early renewal is in flight; guarded by mu_
  int64_t renew_target_ = 0;  // for the renewer thread, 0 = none; guarded by mu_
  bool stopping_ = false;     // the renewer thread must end; guarded by mu_
  std::condition_variable renew_cv_;
  int64_t renew_retry_tick_ = 0;      // no early renewal before this tick; guarded by mu_
  bool backward_episode_ = false;     // the clock is behind and was counted; guarded by mu_
  int64_t not_before_tick_ = kReady;  // start gap: not ready below this; guarded by mu_

  // Serialises Store calls and keeps the persisted mark increasing. Lock order: mu_, then
  // store_mu_.
  std::mutex store_mu_;
  int64_t persisted_mark_ = 0;  // guarded by store_mu_

  std::atomic<uint64_t> issued_{0};
  std::atomic<uint64_t> clock_backward_events_{0};
  std::atomic<uint64_t> sequence_exhaustions_{0};
  std::atomic<uint64_t> unavailable_{0};
  std::atomic<int64_t> mark_unix_millis_{0};
  // Last: started once everything above is initialised.
  std::thread renewer_;
};

}  // namespace

Status Validate(const Options& options) {
  // The layout's own rules need a clock for the epoch; Open checks them with the real one.
  auto bad = [](const std::string& message) { return InvalidArgumentError(message); };
  if (options.max_backward < milliseconds(0) || options.max_backward > std::chrono::seconds(1)) {
    return bad(fmt::format("max_backward must be 0..1000 ms (waits hold up every caller), got {}",
                           options.max_backward.count()));
  }
  if (options.max_borrow < milliseconds(0) || options.max_borrow > std::chrono::hours(1)) {
    return bad(fmt::format("max_borrow must be 0 ms..1 h, got {} ms", options.max_borrow.count()));
  }
  if (options.mark_lookahead < milliseconds(1) || options.mark_lookahead > std::chrono::hours(1)) {
    return bad(
        fmt::format("mark_lookahead must be 1 ms..1 h, got {} ms", options.mark_lookahead.count()));
  }
  if (options.max_start_gap < milliseconds(0) || options.max_start_gap > std::chrono::hours(24)) {
    return bad(
        fmt::format("max_start_gap must be 0 ms..24 h, got {} ms", options.max_start_gap.count()));
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<Generator>> Generator::Open(const Options& options, const Clock& clock,
                                                     std::unique_ptr<WorkerLease> lease,
                                                     std::unique_ptr<MarkStore> marks) {
  EVO_RETURN_IF_ERROR(Validate(options.layout, clock));
  EVO_RETURN_IF_ERROR(Validate(options));
  if (lease == nullptr || marks == nullptr) {
    return InvalidArgumentError("a generator needs a worker lease and a mark store");
  }
  if (lease->worker_id() < 0 || lease->worker_id() > options.layout.MaxWorkerId()) {
    return InvalidArgumentError(fmt::format("worker id {} does not fit worker_bits {} (0..{})",
                                            lease->worker_id(), options.layout.worker_bits,
                                            options.layout.MaxWorkerId()));
  }
  auto generator =
      std::make_unique<GeneratorImpl>(options, clock, std::move(lease), std::move(marks));
  EVO_RETURN_IF_ERROR(generator->Start());
  return std::unique_ptr<Generator>(std::move(generator));
}

}  // namespace evo::ids
