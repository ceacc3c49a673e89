// The resilience module: what every outbound call in evo goes through (DESIGN.md, "Reliability
// conventions") — a deadline, a retry policy, a circuit breaker, a rate limit and a
// concurrency cap — plus the classification of outcomes that decides what is retried.
//
//   Deadline       a point in monotonic time; turned into the timeout of an outbound call and
//                  propagated in a grpc-timeout-style header.
//   Outcome        success / transient / permanent / gone, from an HTTP status or a Status.
//   RetryPolicy    when to try again: exponential backoff with full jitter, or an explicit
//                  schedule with proportional jitter (the webhook schedule); max attempts,
//                  max elapsed time, Retry-After honoured and clamped.
//   CircuitBreaker closed / open / half-open over a rolling window bounded in calls and time.
//   RateLimiter    a token bucket per key, over a bounded set of keys.
//   Bulkhead       at most N calls in flight per key, over a bounded set of keys.
//
// Time and randomness are injected: everything that reads time takes a `const Clock&`
// (ManualClock in tests) and reads only its monotonic time; jitter comes from a seeded Random
// or from random bits the caller passes in, so a test with a fixed seed sees fixed delays.
//
// Nothing here starts threads, sleeps (except Retry(), on the injected clock) or allocates on
// the steady path of CircuitBreaker::Allow, RateLimiter::TryAcquire for a known key, or
// Bulkhead::TryAcquire for a key already in flight.
//
// Thread safety: every class here may be shared by any number of threads unless its comment
// says otherwise; values (options, Deadline, RetryPolicy, permits) follow the usual rules for
// values (distinct objects may be used concurrently).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "core/status.hpp"

namespace evo::resilience {

// ---- Randomness --------------------------------------------------------------------------

// A seeded source of uniformly distributed bits for jitter: splitmix64 over an atomic counter.
// The same seed and the same sequence of calls give the same values; concurrent callers each
// get distinct values (which caller gets which then depends on scheduling). Production code
// seeds it once from std::random_device in the composition root.
//
// Thread safety: Next() and Uniform() are lock-free and may be called from any thread.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}

  // The next 64 random bits.
  uint64_t Next() {
    uint64_t z =
        state_.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed) + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // A double uniform in [0, 1) (53 random bits).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  std::atomic<uint64_t> state_;
};

// ---- Deadlines ---------------------------------------------------------------------------

// A point in a clock's monotonic time after which a piece of work is pointless, or "never".
// A Deadline is a small value; the clock it was made from must outlive it (and its copies).
// Deadlines travel down the call chain: each outbound call takes TimeoutFor(deadline, cap),
// and a server narrows an inbound request's deadline with Min().
class Deadline {
 public:
  // Never expires.
  Deadline() = default;
  static Deadline Infinite() { return Deadline(); }
  // `timeout` from now on `clock` (a negative timeout is an already expired deadline).
  static Deadline After(const Clock& clock, std::chrono::nanoseconds timeout);
  // At `when` on `clock`'s monotonic time.
  static Deadline At(const Clock& clock, Clock::SteadyTime when);

  bool infinite() const { return clock_ == nullptr; }
  // The instant; SteadyTime::max() when infinite.
  Clock::SteadyTime when() const { return when_; }
  // Time left, never negative; nanoseconds::max() when infinite.
  std::chrono::nanoseconds Remaining() const;
  // True once the clock has reached the instant (never for an infinite deadline).
  bool Expired() const;
  // The earlier of the two (either may be infinite).
  Deadline Min(const Deadline& other) const;
  // OK while time is left; DeadlineExceeded naming `what` once expired.
  Status Check(std::string_view what) const;

 private:
  Deadline(const Clock* clock, Clock::SteadyTime when) : clock_(clock), when_(when) {}
  const Clock* clock_ = nullptr;  // null: infinite
  Clock::SteadyTime when_ = Clock::SteadyTime::max();
};

// The timeout to give an outbound call started now under `deadline`: the time remaining,
// rounded up to a whole millisecond, at most `cap` (every call has its own cap, so an infinite
// deadline yields `cap`), at least 1 ms — never 0, which libcurl reads as "no timeout".
// DeadlineExceeded when the deadline has already expired (do not make the call);
// InvalidArgument when cap <= 0.
StatusOr<std::chrono::milliseconds> TimeoutFor(const Deadline& deadline,
                                               std::chrono::milliseconds cap);

// A timeout in the grpc-timeout header syntax ("1-8 digits" + unit H M S m u n), in the finest
// unit that fits in 8 digits, rounded up so that a positive timeout never becomes 0: 1500 ms is
// "1500000u", 2 h is "7200000m". Negative timeouts format as "0n".
std::string FormatTimeoutHeader(std::chrono::nanoseconds timeout);
// Parses the grpc-timeout syntax; nullopt for anything else (empty, more than 8 digits, a sign,
// spaces, an unknown unit). Combine with a local bound:
// `Deadline::After(clock, *parsed).Min(local)`.
std::optional<std::chrono::nanoseconds> ParseTimeoutHeader(std::string_view value);

// ---- Classification ----------------------------------------------------------------------

// What the result of one attempt means for retrying it.
enum class Outcome {
  kSuccess,    // done
  kTransient,  // failed, may succeed later: retry per the policy
  kPermanent,  // failed, will fail again the same way: do not retry
  kGone,       // permanent, and the target says it no longer exists (HTTP 410): disable it
};
// "success" | "transient" | "permanent" | "gone".
std::string_view OutcomeName(Outcome outcome);
// True for kTransient only.
inline bool IsRetryable(Outcome outcome) { return outcome == Outcome::kTransient; }

// The outcome of an HTTP response status (the webhook table, DESIGN.md):
//   2xx                       kSuccess
//   3xx                       kTransient: redirects are not followed; like Svix, a redirect
//                             is a failed delivery that is retried on the schedule (the
//                             endpoint's owner may fix it, and the schedule bounds the cost)
//   408, 409, 425, 429        kTransient (timeout, conflict, too early, too many requests)
//   410                       kGone
//   other 4xx                 kPermanent
//   5xx                       kTransient
//   anything else (0, 1xx as a final status, < 100, > 599: no valid response)  kTransient,
//                             like a connection failure
// Timeouts and connection resets have no status; the caller maps them to kTransient (or to a
// DeadlineExceeded / Unavailable Status and uses ClassifyStatus).
Outcome ClassifyHttpStatus(int status);

// The outcome of an evo Status:
//   OK                                                                   kSuccess
//   Unavailable, DeadlineExceeded, ResourceExhausted, Aborted, Internal,
//   Unknown                                                              kTransient
//   InvalidArgument, NotFound, AlreadyExists, PermissionDenied, Unauthenticated,
//   FailedPrecondition, OutOfRange, Unimplemented, DataLoss, Cancelled   kPermanent
// Internal and Unknown are retried because outbound failures without a better code (a peer's
// bug, an unexpected library error) are usually passing; the policy bounds the cost. Cancelled
// is not: the caller asked to stop. Codes added later classify as kTransient.
Outcome ClassifyStatus(const Status& status);

// ---- Retry-After -------------------------------------------------------------------------

// The wait a Retry-After header value asks for (RFC 9110 §10.2.3), relative to `now`:
//   delta-seconds  "120"                            -> 120 s (values past ~68 years saturate)
//   IMF-fixdate    "Sun, 06 Nov 1994 08:49:37 GMT"  -> that instant minus `now`, 0 if past
// Surrounding spaces and tabs are ignored. nullopt for anything else: signs, fractions,
// garbage, impossible dates, and the obsolete RFC 850 and asctime date forms (a sender that
// uses them gets the policy's own backoff). The day name must be one of the seven but is not
// checked against the date. The result is not clamped: RetryPolicy clamps it.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         Clock::WallTime now);

// The wait a Status asks for through its kPayloadRetryAfter payload (whole seconds, as the HTTP
// adapter writes it); nullopt without one or when it is not a non-negative integer.
std::optional<std::chrono::milliseconds> RetryAfterFromStatus(const Status& status);

// ---- Retry policy ------------------------------------------------------------------------

struct RetryOptions {
  // Attempts in total, the first included (1 = never retry). REQUIRES 1..10000.
  int max_attempts = 5;

  // Exponential backoff with full jitter (used when `schedule` is empty): the wait after the
  // n-th failed attempt is uniform in [0, min(max_backoff, initial_backoff * multiplier^(n-1))].
  std::chrono::milliseconds initial_backoff{100};                   // REQUIRES >= 1 ms when used
  std::chrono::milliseconds max_backoff{std::chrono::seconds(30)};  // REQUIRES >= initial
  double multiplier = 2.0;                                          // REQUIRES 1..100

  // Explicit schedule with proportional jitter (used when non-empty): the wait after the n-th
  // failed attempt is schedule[n-1] * (1 ± schedule_jitter), uniform, in whole milliseconds.
  // After the last entry the policy gives up, so at most schedule.size() + 1 attempts are made
  // (max_attempts may lower that). max_backoff does not apply. REQUIRES entries >= 0, at most
  // 10000 of them.
  std::vector<std::chrono::milliseconds> schedule;
  double schedule_jitter = 0.0;  // REQUIRES 0..1

  // Give up rather than wait past this much time since the first attempt started
  // (elapsed + next wait > max_elapsed). 0 means no limit (max_attempts still bounds).
  std::chrono::milliseconds max_elapsed{0};

  // A server's Retry-After is clamped to [retry_after_min, retry_after_max] and then waited
  // out: the wait is the larger of the backoff and the clamped Retry-After. The clamp keeps a
  // hostile or broken server from parking a retry for a year (or asking for a hot loop).
  // REQUIRES 0 <= retry_after_min <= retry_after_max.
  std::chrono::milliseconds retry_after_min{0};
  std::chrono::milliseconds retry_after_max{std::chrono::hours(1)};
};
// InvalidArgument naming the first offending field ("max_backoff must be ...").
Status Validate(const RetryOptions& options);

// The webhook schedule (Svix's): the first attempt immediately, then retries after 5 s, 5 min,
// 30 min, 2 h, 5 h, 10 h and 10 h, each ±20 %: 8 attempts over about 28 hours. Retry-After is
// clamped to [0, 10 h].
RetryOptions WebhookRetryOptions();

// Decides whether, and after how long, to try again. Stateless: the caller keeps the count of
// attempts and the elapsed time (a durable queue stores them with the message), so one policy
// serves any number of operations and threads.
class RetryPolicy {
 public:
  // InvalidArgument as Validate().
  static StatusOr<RetryPolicy> Create(RetryOptions options);

  const RetryOptions& options() const { return options_; }

  // The inclusive range the wait after `attempts_made` failed attempts is drawn from, before
  // Retry-After; nullopt when no attempt is left (attempts_made >= max_attempts, or past the
  // end of the schedule). REQUIRES attempts_made >= 1.
  struct DelayRange {
    std::chrono::milliseconds min;
    std::chrono::milliseconds max;
  };
  std::optional<DelayRange> Range(int attempts_made) const;

  // How long to wait before the next attempt, after `attempts_made` attempts (>= 1) have
  // failed transiently and `elapsed` has passed since the first one started; `retry_after` is
  // the server's hint, if any (see ParseRetryAfter). `random` is 64 uniformly random bits
  // (Random::Next()); the same bits give the same wait. nullopt: give up — no attempts left,
  // or the wait would end past max_elapsed.
  std::optional<std::chrono::milliseconds> NextDelay(
      int attempts_made, std::chrono::milliseconds elapsed,
      std::optional<std::chrono::milliseconds> retry_after, uint64_t random) const;
  std::optional<std::chrono::milliseconds> NextDelay(
      int attempts_made, std::chrono::milliseconds elapsed,
      std::optional<std::chrono::milliseconds> retry_after, Random& random) const {
    return NextDelay(attempts_made, elapsed, retry_after, random.Next());
  }

 private:
  explicit RetryPolicy(RetryOptions options) : options_(std::move(options)) {}
  RetryOptions options_;
};

// Runs `call` (given the attempt number, from 1) until it returns OK or a status that
// ClassifyStatus() does not call transient, or the policy gives up, or the next attempt would
// start past `deadline`; between attempts it sleeps on `clock` for the policy's delay, honouring
// a kPayloadRetryAfter payload on the failed status. Returns the last status `call` returned,
// or DeadlineExceeded when `deadline` had expired before the first attempt. Blocks the calling
// thread: for start-up and tooling; the queue and the delivery engine schedule their retries.
Status Retry(const RetryPolicy& policy, const Clock& clock, Random& random,
             const Deadline& deadline, const std::function<Status(int attempt)>& call);

// ---- Circuit breaker ---------------------------------------------------------------------

enum class BreakerState {
  kClosed = 0,    // calls flow; outcomes are recorded in the window
  kOpen = 1,      // calls are refused until open_duration has passed
  kHalfOpen = 2,  // a limited number of probe calls decide between closed and open
};
// "closed" | "open" | "half_open" (also the `to` label of the transitions metric).
std::string_view BreakerStateName(BreakerState state);

struct CircuitBreakerOptions {
  // Names the breaker in logs and in the `name` metric label (keep the set of names bounded).
  // REQUIRES non-empty.
  std::string name;
  // The rolling window: the last `window_size` recorded outcomes that are younger than
  // `window`. REQUIRES window > 0, window_size 1..1000000.
  std::chrono::milliseconds window{std::chrono::seconds(60)};
  int window_size = 100;
  // Closed -> open when a failure is recorded and, in the window, calls >= min_calls and
  // failures / calls >= failure_ratio. REQUIRES failure_ratio in (0, 1], min_calls >= 1.
  double failure_ratio = 0.5;
  int min_calls = 20;
  // Open -> half-open after this long. REQUIRES > 0.
  std::chrono::milliseconds open_duration{std::chrono::seconds(30)};
  // Half-open: at most this many probes in flight at once; this many successful probes close
  // the breaker, one failed probe opens it again. REQUIRES both >= 1.
  int half_open_max_probes = 1;
  int half_open_successes_to_close = 1;
  // Called on every state change, under the breaker's lock and in order (from, to): it must be
  // quick and must not call back into the breaker. Optional.
  std::function<void(BreakerState from, BreakerState to)> on_transition;
};
// InvalidArgument naming the first offending field.
Status Validate(const CircuitBreakerOptions& options);

// A circuit breaker. Every call asks Allow() for a permit and reports its outcome through the
// permit; while the breaker is open, Allow() refuses at once so a failing dependency is given
// time to recover instead of being hammered.
//
// Transitions: closed -> open when the window's failure ratio trips (see the options);
// open -> half-open on the first Allow(), state() or stats() once open_duration has passed;
// half-open -> closed after half_open_successes_to_close successful probes (the window starts
// empty); half-open -> open on a failed probe. Each transition is logged (warn when opening, info
// otherwise), sets the gauge evo_circuit_breaker_state{name} (0 closed, 1 open, 2 half-open) and
// increments evo_circuit_breaker_transitions_total{name,to}; refusals increment
// evo_circuit_breaker_rejected_total{name}.
//
// An outcome counts only in the state episode its permit was issued in: a slow call that
// started while closed and ends after the breaker opened (or a probe that ends after the
// breaker closed) is ignored, so stale results never flip a fresh state.
class CircuitBreaker {
 public:
  // The right to make one call. Movable, not copyable. Record the outcome exactly once
  // (later calls are ignored); a permit destroyed without an outcome (the call was cancelled,
  // an exception unwound) is released without counting either way, freeing its probe slot.
  // The breaker must outlive its permits.
  class Permit {
   public:
    Permit(Permit&& other) noexcept;
    Permit& operator=(Permit&& other) noexcept;
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit();

    void Success();
    void Failure();
    // kTransient is a failure; kSuccess, kPermanent and kGone are successes: the dependency
    // answered, and a request it rejects says nothing about its health.
    void Record(Outcome outcome);
    // Gives the permit back without an outcome.
    void Release();
    // True when issued in half-open (a probe).
    bool probe() const { return probe_; }

   private:
    friend class CircuitBreaker;
    Permit(CircuitBreaker* breaker, uint64_t episode, bool probe)
        : breaker_(breaker), episode_(episode), probe_(probe) {}
    void Finish(int result);
    CircuitBreaker* breaker_;  // null once finished or moved from
    uint64_t episode_;
    bool probe_;
  };

  struct Stats {
    BreakerState state = BreakerState::kClosed;
    int calls = 0;     // outcomes in the window (closed only; 0 otherwise)
    int failures = 0;  // failures among them
    int probes_in_flight = 0;
    std::chrono::nanoseconds open_remaining{0};  // time until half-open, when open
    uint64_t rejected = 0;                       // refusals since creation
  };

  // `clock` must outlive the breaker; so must `registry` when given (it may be null).
  // InvalidArgument as Validate().
  static StatusOr<std::unique_ptr<CircuitBreaker>> Create(CircuitBreakerOptions options,
                                                          const Clock& clock,
                                                          metrics::Registry* registry = nullptr);
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;
  ~CircuitBreaker();

  // A permit, or Unavailable ("circuit breaker \"x\" is open ...") carrying a
  // kPayloadRetryAfter payload: the whole seconds until half-open when open, 1 when half-open
  // with every probe slot taken.
  StatusOr<Permit> Allow();
  // The current state (moving open -> half-open when due).
  BreakerState state();
  Stats stats();
  const std::string& name() const { return options_.name; }

 private:
  CircuitBreaker(CircuitBreakerOptions options, const Clock& clock, metrics::Registry* registry);
  struct Entry {
    int64_t at_ns;
    bool failure;
  };
  int64_t NowNs() const;
  void Finish(uint64_t episode, int result);  // result: 1 success, 0 failure, -1 released
  void MaybeHalfOpen(int64_t now_ns);         // requires mu_
  void Prune(int64_t now_ns);                 // requires mu_
  void TransitionTo(BreakerState to, int64_t now_ns, std::string_view why);  // requires mu_

  const CircuitBreakerOptions options_;
  const Clock& clock_;
  const int64_t window_ns_;
  const int64_t open_ns_;
  metrics::Gauge* state_gauge_ = nullptr;
  metrics::Counter* to_closed_ = nullptr;
  metrics::Counter* to_open_ = nullptr;
  metrics::Counter* to_half_open_ = nullptr;
  metrics::Counter* rejected_metric_ = nullptr;

  std::mutex mu_;
  BreakerState state_ = BreakerState::kClosed;  // guarded by mu_
  uint64_t episode_ = 0;                        // guarded by mu_; bumped on every transition
  std::vector<Entry> ring_;                     // guarded by mu_; window_size slots
  size_t head_ = 0;                             // guarded by mu_; oldest entry
  size_t count_ = 0;                            // guarded by mu_
  size_t failures_ = 0;                         // guarded by mu_
  int64_t open_until_ns_ = 0;                   // guarded by mu_
  int probes_in_flight_ = 0;                    // guarded by mu_
  int probe_successes_ = 0;                     // guarded by mu_
  uint64_t rejected_ = 0;                       // guarded by mu_
};

// ---- Rate limiter ------------------------------------------------------------------------

// A token bucket: `burst` tokens at most, refilled continuously at `rate_per_second`. Over a
// span T starting full it admits rate_per_second * T + burst unit-cost requests.
struct RateLimit {
  double rate_per_second = 10.0;  // REQUIRES finite, > 0
  double burst = 10.0;            // REQUIRES finite, >= 1
};
// InvalidArgument naming `rate_per_second` or `burst`.
Status Validate(const RateLimit& limit);

struct RateLimiterOptions {
  // The `name` metric label. REQUIRES non-empty.
  std::string name;
  // For keys whose calls do not pass their own limit.
  RateLimit limit;
  // Buckets kept at most. REQUIRES >= 1. Memory is about (150 + key length) bytes per key.
  size_t max_keys = 10000;
};
// InvalidArgument naming the first offending field.
Status Validate(const RateLimiterOptions& options);

// Token buckets per key (an endpoint, a client), created on first use, full.
//
// Bounded key set: when a new key would exceed max_keys, the least recently used bucket is
// dropped. A bucket that has refilled to full is indistinguishable from a fresh one, so
// dropping it loses nothing, and the least recently used one usually has; when it has not
// (more than max_keys keys are all active), its key gets up to `burst` tokens back on its next
// call — counted as a lossy eviction. Size max_keys above the number of keys active at once.
//
// Per-key limits: the overloads taking a RateLimit use it for that key (a webhook endpoint's
// own rate); a key's bucket follows the limit of its latest call (refilled at the old rate up to
// now, then capped at the new burst). An invalid per-call limit admits nothing.
//
// Metrics (when a registry is given): evo_rate_limiter_admitted_total{name},
// evo_rate_limiter_limited_total{name}, evo_rate_limiter_evictions_total{name},
// evo_rate_limiter_keys{name}.
//
// Thread safety: one mutex guards the table; a call holds it for a hash lookup and a few
// arithmetic operations.
class RateLimiter {
 public:
  struct Stats {
    size_t keys = 0;
    uint64_t admitted = 0;
    uint64_t limited = 0;
    uint64_t evictions = 0;        // buckets dropped to stay within max_keys
    uint64_t lossy_evictions = 0;  // of which were not full
  };

  // `clock` must outlive the limiter; so must `registry` when given (it may be null).
  // InvalidArgument as Validate().
  static StatusOr<std::unique_ptr<RateLimiter>> Create(RateLimiterOptions options,
                                                       const Clock& clock,
                                                       metrics::Registry* registry = nullptr);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;
  ~RateLimiter();

  // Takes `cost` tokens (REQUIRES cost > 0) from `key`'s bucket if it holds them: true when
  // admitted. A cost above the burst is never admitted.
  bool TryAcquire(std::string_view key, double cost = 1.0);
  bool TryAcquire(std::string_view key, const RateLimit& limit, double cost = 1.0);

  // As TryAcquire, as a Status for adapters: OK, or ResourceExhausted carrying a
  // kPayloadRetryAfter payload (whole seconds, at least 1) — the HTTP layer's 429. A cost above
  // the burst is InvalidArgument.
  Status Acquire(std::string_view key, double cost = 1.0);
  Status Acquire(std::string_view key, const RateLimit& limit, double cost = 1.0);

  // How long until `key` holds `cost` tokens (0 when it does now), so a caller can schedule
  // instead of polling; nanoseconds::max() when cost exceeds the burst. Takes nothing and does
  // not create a bucket or change recency.
  std::chrono::nanoseconds TimeUntilAvailable(std::string_view key, double cost = 1.0);
  std::chrono::nanoseconds TimeUntilAvailable(std::string_view key, const RateLimit& limit,
                                              double cost = 1.0);

  Stats stats();

 private:
  struct Bucket {
    std::string key;
    RateLimit limit;
    double tokens;
    int64_t refilled_ns;  // time `tokens` was computed at
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using Lru = std::list<Bucket>;  // most recently used first

  RateLimiter(RateLimiterOptions options, const Clock& clock, metrics::Registry* registry);
  int64_t NowNs() const;
  // Decides under the lock; returns the wait (0: admitted).
  std::chrono::nanoseconds Take(std::string_view key, const RateLimit& limit, double cost);
  Bucket& FindOrCreate(std::string_view key, const RateLimit& limit, int64_t now_ns);  // mu_

  const RateLimiterOptions options_;
  const Clock& clock_;
  metrics::Counter* admitted_metric_ = nullptr;
  metrics::Counter* limited_metric_ = nullptr;
  metrics::Counter* evictions_metric_ = nullptr;
  metrics::Gauge* keys_metric_ = nullptr;

  std::mutex mu_;
  Lru lru_;                                                           // guarded by mu_
  std::unordered_map<std::string_view, Lru::iterator, Hash> by_key_;  // guarded by mu_
  Stats stats_;                                                       // guarded by mu_
};

// ---- Bulkhead ----------------------------------------------------------------------------

struct BulkheadOptions {
  // The `name` metric label. REQUIRES non-empty.
  std::string name;
  // Calls in flight per key, for calls that do not pass their own cap. REQUIRES >= 1.
  int max_concurrent = 10;
  // Keys with calls in flight at most; a call for a new key beyond it is refused. An idle key
  // holds no state. REQUIRES >= 1.
  size_t max_keys = 10000;
};
// InvalidArgument naming the first offending field.
Status Validate(const BulkheadOptions& options);

// Caps the calls in flight per key, so one slow dependency (an endpoint that hangs) cannot
// take every worker. Non-blocking: a refused caller schedules the work for later.
//
// Metrics (when a registry is given): evo_bulkhead_in_flight{name} (all keys) and
// evo_bulkhead_rejected_total{name}.
class Bulkhead {
 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  // key -> calls in flight (> 0); an entry's address is stable until it is erased.
  using Table = std::unordered_map<std::string, int, Hash, std::equal_to<>>;

 public:
  // One call in flight; released when destroyed (or by Release()). Movable, not copyable.
  // The bulkhead must outlive its permits.
  class Permit {
   public:
    Permit(Permit&& other) noexcept;
    Permit& operator=(Permit&& other) noexcept;
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit();
    void Release();

   private:
    friend class Bulkhead;
    Permit(Bulkhead* bulkhead, Table::value_type* entry) : bulkhead_(bulkhead), entry_(entry) {}
    Bulkhead* bulkhead_;        // null once released or moved from
    Table::value_type* entry_;  // the key's entry in the bulkhead's table
  };

  struct Stats {
    size_t keys = 0;        // keys with calls in flight
    int64_t in_flight = 0;  // over all keys
    uint64_t rejected = 0;
  };

  // `registry`, when given, must outlive the bulkhead. InvalidArgument as Validate().
  static StatusOr<std::unique_ptr<Bulkhead>> Create(BulkheadOptions options,
                                                    metrics::Registry* registry = nullptr);
  Bulkhead(const Bulkhead&) = delete;
  Bulkhead& operator=(const Bulkhead&) = delete;
  ~Bulkhead();

  // A permit when `key` has fewer than its cap in flight (and, for a new key, the key set has
  // room); nullopt otherwise. `max_concurrent` (>= 1; less admits nothing) overrides the default
  // cap for this call: a webhook endpoint's own concurrency limit.
  std::optional<Permit> TryAcquire(std::string_view key);
  std::optional<Permit> TryAcquire(std::string_view key, int max_concurrent);

  // Calls in flight for `key`.
  int InFlight(std::string_view key);
  Stats stats();

 private:
  Bulkhead(BulkheadOptions options, metrics::Registry* registry);
  void Release(Table::value_type* entry);

  const BulkheadOptions options_;
  metrics::Gauge* in_flight_metric_ = nullptr;
  metrics::Counter* rejected_metric_ = nullptr;

  std::mutex mu_;
  Table table_;            // guarded by mu_
  int64_t in_flight_ = 0;  // guarded by mu_
  uint64_t rejected_ = 0;  // guarded by mu_
};

}  // namespace evo::resilience
