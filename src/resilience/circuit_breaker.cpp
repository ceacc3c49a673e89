// The circuit breaker: a ring of recent outcomes, a state machine and its metrics.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "resilience/resilience.hpp"

namespace evo::resilience {
namespace {

constexpr int kSuccess = 1;
constexpr int kFailure = 0;
constexpr int kReleased = -1;

int64_t Nanos(std::chrono::nanoseconds d) { return d.count(); }

// Whole seconds, rounded up, at least 1: a Retry-After hint for a wait of `ns`.
std::string RetryAfterSeconds(int64_t ns) {
  const int64_t seconds = (ns + 999'999'999) / 1'000'000'000;
  return std::to_string(std::max<int64_t>(1, seconds));
}

}  // namespace

std::string_view BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

Status Validate(const CircuitBreakerOptions& o) {
  if (o.name.empty()) {
    return InvalidArgumentError("name must not be empty");
  }
  if (o.window <= std::chrono::milliseconds(0)) {
    return InvalidArgumentError("window must be positive");
  }
  if (o.window_size < 1 || o.window_size > 1'000'000) {
    return InvalidArgumentError("window_size must be between 1 and 1000000");
  }
  if (!(o.failure_ratio > 0.0 && o.failure_ratio <= 1.0)) {
    return InvalidArgumentError("failure_ratio must be in (0, 1]");
  }
  if (o.min_calls < 1) {
    return InvalidArgumentError("min_calls must be at least 1");
  }
  if (o.open_duration <= std::chrono::milliseconds(0)) {
    return InvalidArgumentError("open_duration must be positive");
  }
  if (o.half_open_max_probes < 1) {
    return InvalidArgumentError("half_open_max_probes must be at least 1");
  }
  if (o.half_open_successes_to_close < 1) {
    return InvalidArgumentError("half_open_successes_to_close must be at least 1");
  }
  return OkStatus();
}

// ---- Permit ----

CircuitBreaker::Permit::Permit(Permit&& other) noexcept
    : breaker_(other.breaker_), episode_(other.episode_), probe_(other.probe_) {
  other.breaker_ = nullptr;
}

CircuitBreaker::Permit& CircuitBreaker::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    Release();
    breaker_ = other.breaker_;
    episode_ = other.episode_;
    probe_ = other.probe_;
    other.breaker_ = nullptr;
  }
  return *this;
}

CircuitBreaker::Permit::~Permit() { Release(); }

void CircuitBreaker::Permit::Success() { Finish(kSuccess); }
void CircuitBreaker::Permit::Failure() { Finish(kFailure); }
void CircuitBreaker::Permit::Record(Outcome outcome) {
  Finish(outcome == Outcome::kTransient ? kFailure : kSuccess);
}
void CircuitBreaker::Permit::Release() { Finish(kReleased); }

void CircuitBreaker::Permit::Finish(int result) {
  if (breaker_ != nullptr) {
    CircuitBreaker* breaker = breaker_;
    breaker_ = nullptr;
    breaker->Finish(episode_, result);
  }
}

// ---- CircuitBreaker ----

StatusOr<std::unique_ptr<CircuitBreaker>> CircuitBreaker::Create(CircuitBreakerOptions options,
                                                                 const Clock& clock,
                                                                 metrics::Registry* registry) {
  EVO_RETURN_IF_ERROR(Validate(options));
  return std::unique_ptr<CircuitBreaker>(new CircuitBreaker(std::move(options), clock, registry));
}

CircuitBreaker::CircuitBreaker(CircuitBreakerOptions options, const Clock& clock,
                               metrics::Registry* registry)
    : options_(std::move(options)),
      clock_(clock),
      window_ns_(Nanos(options_.window)),
      open_ns_(Nanos(options_.open_duration)),
      ring_(static_cast<size_t>(options_.window_size)) {
  if (registry != nullptr) {
    state_gauge_ =
        &registry
             ->AddGauge("evo_circuit_breaker_state",
                        "Circuit breaker state: 0 closed, 1 open, 2 half-open.", {"name"})
             .Get({options_.name});
    auto& transitions =
        registry->AddCounter("evo_circuit_breaker_transitions_total",
                             "Circuit breaker state changes, by new state.", {"name", "to"});
    to_closed_ = &transitions.Get({options_.name, "closed"});
    to_open_ = &transitions.Get({options_.name, "open"});
    to_half_open_ = &transitions.Get({options_.name, "half_open"});
    rejected_metric_ = &registry
                            ->AddCounter("evo_circuit_breaker_rejected_total",
                                         "Calls refused by an open or saturated half-open "
                                         "circuit breaker.",
                                         {"name"})
                            .Get({options_.name});
    state_gauge_->Set(0);
  }
}

CircuitBreaker::~CircuitBreaker() = default;

int64_t CircuitBreaker::NowNs() const { return Nanos(clock_.Monotonic().time_since_epoch()); }

StatusOr<CircuitBreaker::Permit> CircuitBreaker::Allow() {
  const int64_t now = NowNs();
  std::lock_guard<std::mutex> lock(mu_);
  MaybeHalfOpen(now);
  switch (state_) {
    case BreakerState::kClosed:
      return Permit(this, episode_, false);
    case BreakerState::kHalfOpen:
      if (probes_in_flight_ < options_.half_open_max_probes) {
        ++probes_in_flight_;
        return Permit(this, episode_, true);
      }
      break;
    case BreakerState::kOpen:
      break;
  }
  ++rejected_;
  if (rejected_metric_ != nullptr) {
    rejected_metric_->Inc();
  }
  if (state_ == BreakerState::kOpen) {
    const int64_t wait = open_until_ns_ - now;
    return UnavailableError("circuit breaker \"" + options_.name + "\" is open; retry in " +
                            RetryAfterSeconds(wait) + " s")
        .With(kPayloadRetryAfter, RetryAfterSeconds(wait));
  }
  return UnavailableError("circuit breaker \"" + options_.name +
                          "\" is half-open and every probe slot is taken")
      .With(kPayloadRetryAfter, "1");
}

BreakerState CircuitBreaker::state() {
  const int64_t now = NowNs();
  std::lock_guard<std::mutex> lock(mu_);
  MaybeHalfOpen(now);
  return state_;
}

CircuitBreaker::Stats CircuitBreaker::stats() {
  const int64_t now = NowNs();
  std::lock_guard<std::mutex> lock(mu_);
  MaybeHalfOpen(now);
  Prune(now);
  Stats s;
  s.state = state_;
  s.calls = static_cast<int>(count_);
  s.failures = static_cast<int>(failures_);
  s.probes_in_flight = probes_in_flight_;
  s.open_remaining =
      std::chrono::nanoseconds(state_ == BreakerState::kOpen ? open_until_ns_ - now : 0);
  s.rejected = rejected_;
  return s;
}

void CircuitBreaker::Finish(uint64_t episode, int result) {
  const int64_t now = NowNs();
  std::lock_guard<std::mutex> lock(mu_);
  if (episode != episode_) {
    return;  // issued before the latest transition: stale, see the header
  }
  switch (state_) {
    case BreakerState::kClosed: {
      if (result == kReleased) {
        return;
      }
      Prune(now);
      if (count_ == ring_.size()) {  // full: the oldest outcome makes room
        failures_ -= ring_[head_].failure ? 1 : 0;
        head_ = (head_ + 1) % ring_.size();
        --count_;
      }
      const bool failure = result == kFailure;
      ring_[(head_ + count_) % ring_.size()] = Entry{now, failure};
      ++count_;
      failures_ += failure ? 1 : 0;
      // Only a failure may open the breaker: opening on a success would be surprising to read
      // in a log, and the next failure re-evaluates the same window anyway.
      if (failure && count_ >= static_cast<size_t>(options_.min_calls) &&
          static_cast<double>(failures_) >= options_.failure_ratio * static_cast<double>(count_)) {
        TransitionTo(BreakerState::kOpen, now,
                     fmt::format("{} of the last {} calls failed", failures_, count_));
      }
      return;
    }
    case BreakerState::kHalfOpen:
      --probes_in_flight_;
      if (result == kFailure) {
        TransitionTo(BreakerState::kOpen, now, "a half-open probe failed");
      } else if (result == kSuccess &&
                 ++probe_successes_ >= options_.half_open_successes_to_close) {
        TransitionTo(BreakerState::kClosed, now,
                     fmt::format("{} half-open probes succeeded", probe_successes_));
      }
      return;
    case BreakerState::kOpen:
      return;  // no permits are issued while open; unreachable with a matching episode
  }
}

void CircuitBreaker::MaybeHalfOpen(int64_t now_ns) {
  if (state_ == BreakerState::kOpen && now_ns >= open_until_ns_) {
    TransitionTo(BreakerState::kHalfOpen, now_ns, "the open period has passed");
  }
}

void CircuitBreaker::Prune(int64_t now_ns) {
  const int64_t horizon = now_ns - window_ns_;
  while (count_ > 0 && ring_[head_].at_ns <= horizon) {
    failures_ -= ring_[head_].failure ? 1 : 0;
    head_ = (head_ + 1) % ring_.size();
    --count_;
  }
}

void CircuitBreaker::TransitionTo(BreakerState to, int64_t now_ns, std::string_view why) {
  const BreakerState from = state_;
  state_ = to;
  ++episode_;
  probes_in_flight_ = 0;
  probe_successes_ = 0;
  head_ = 0;
  count_ = 0;
  failures_ = 0;
  if (to == BreakerState::kOpen) {
    open_until_ns_ = now_ns + open_ns_;
  }
  if (to == BreakerState::kOpen) {
    spdlog::warn("circuit breaker \"{}\": {} -> {} ({}); refusing calls for {} ms", options_.name,
                 BreakerStateName(from), BreakerStateName(to), why, options_.open_duration.count());
  } else {
    spdlog::info("circuit breaker \"{}\": {} -> {} ({})", options_.name, BreakerStateName(from),
                 BreakerStateName(to), why);
  }
  if (state_gauge_ != nullptr) {
    state_gauge_->Set(static_cast<double>(static_cast<int>(to)));
    metrics::Counter* counter = to == BreakerState::kClosed ? to_closed_
                                : to == BreakerState::kOpen ? to_open_
                                                            : to_half_open_;
    counter->Inc();
  }
  if (options_.on_transition) {
    options_.on_transition(from, to);
  }
}

}  // namespace evo::resilience
