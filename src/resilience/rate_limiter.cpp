// Token buckets per key, in an LRU-bounded table.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "resilience/resilience.hpp"

namespace evo::resilience {
namespace {

using std::chrono::nanoseconds;

// Tokens are doubles refilled by elapsed * rate, so a wait computed as (cost - tokens) / rate
// may land a rounding error short of `cost`; this slack (a billionth of a token) absorbs it
// without admitting anything measurable.
constexpr double kSlack = 1e-9;

bool IsValid(const RateLimit& limit) {
  return std::isfinite(limit.rate_per_second) && limit.rate_per_second > 0.0 &&
         std::isfinite(limit.burst) && limit.burst >= 1.0;
}

bool SameLimit(const RateLimit& a, const RateLimit& b) {
  return a.rate_per_second == b.rate_per_second && a.burst == b.burst;
}

// The time `rate` tokens per second take to produce `need` tokens, rounded up.
nanoseconds TimeToRefill(double need, double rate_per_second) {
  if (need <= kSlack) {
    return nanoseconds(0);
  }
  const double ns = std::ceil(need / rate_per_second * 1e9);
  if (!(ns < static_cast<double>(std::numeric_limits<int64_t>::max()))) {
    return nanoseconds::max();
  }
  return nanoseconds(std::max<int64_t>(1, static_cast<int64_t>(ns)));
}

// Tokens held at `now_ns` by a bucket last computed at `refilled_ns` under `limit`.
double TokensAt(double tokens, int64_t refilled_ns, const RateLimit& limit, int64_t now_ns) {
  const double elapsed_s = static_cast<double>(std::max<int64_t>(0, now_ns - refilled_ns)) * 1e-9;
  return std::min(limit.burst, tokens + elapsed_s * limit.rate_per_second);
}

std::string WholeSecondsAtLeastOne(nanoseconds d) {
  const auto seconds = std::chrono::ceil<std::chrono::seconds>(d).count();
  return std::to_string(std::max<int64_t>(1, seconds));
}

}  // namespace

Status Validate(const RateLimit& limit) {
  if (!(std::isfinite(limit.rate_per_second) && limit.rate_per_second > 0.0)) {
    return InvalidArgumentError("rate_per_second must be a positive number");
  }
  if (!(std::isfinite(limit.burst) && limit.burst >= 1.0)) {
    return InvalidArgumentError("burst must be a number >= 1");
  }
  return OkStatus();
}

Status Validate(const RateLimiterOptions& options) {
  if (options.name.empty()) {
    return InvalidArgumentError("name must not be empty");
  }
  EVO_RETURN_IF_ERROR(Validate(options.limit));
  if (options.max_keys < 1) {
    return InvalidArgumentError("max_keys must be at least 1");
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<RateLimiter>> RateLimiter::Create(RateLimiterOptions options,
                                                           const Clock& clock,
                                                           metrics::Registry* registry) {
  EVO_RETURN_IF_ERROR(Validate(options));
  return std::unique_ptr<RateLimiter>(new RateLimiter(std::move(options), clock, registry));
}

RateLimiter::RateLimiter(RateLimiterOptions options, const Clock& clock,
                         metrics::Registry* registry)
    : options_(std::move(options)), clock_(clock) {
  by_key_.reserve(std::min<size_t>(options_.max_keys, 1024));
  if (registry != nullptr) {
    const metrics::LabelValues name = {options_.name};
    admitted_metric_ = &registry
                            ->AddCounter("evo_rate_limiter_admitted_total",
                                         "Requests admitted by a rate limiter.", {"name"})
                            .Get(name);
    limited_metric_ = &registry
                           ->AddCounter("evo_rate_limiter_limited_total",
                                        "Requests refused by a rate limiter.", {"name"})
                           .Get(name);
    evictions_metric_ = &registry
                             ->AddCounter("evo_rate_limiter_evictions_total",
                                          "Buckets dropped to keep a rate limiter's key set "
                                          "bounded.",
                                          {"name"})
                             .Get(name);
    keys_metric_ =
        &registry->AddGauge("evo_rate_limiter_keys", "Keys a rate limiter tracks.", {"name"})
             .Get(name);
  }
}

RateLimiter::~RateLimiter() = default;

int64_t RateLimiter::NowNs() const { return clock_.Monotonic().time_since_epoch().count(); }

RateLimiter::Bucket& RateLimiter::FindOrCreate(std::string_view key, const RateLimit& limit,
                                               int64_t now_ns) {
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return lru_.front();
  }
  if (lru_.size() >= options_.max_keys) {
    const Bucket& victim = lru_.back();
    const bool full = TokensAt(victim.tokens, victim.refilled_ns, victim.limit, now_ns) >=
                      victim.limit.burst - kSlack;
    ++stats_.evictions;
    stats_.lossy_evictions += full ? 0 : 1;
    if (evictions_metric_ != nullptr) {
      evictions_metric_->Inc();
    }
    by_key_.erase(std::string_view(victim.key));
    lru_.pop_back();
  }
  lru_.push_front(Bucket{std::string(key), limit, limit.burst, now_ns});
  // The map's key views the list node's string, which never moves (splice relinks nodes).
  by_key_.emplace(std::string_view(lru_.front().key), lru_.begin());
  if (keys_metric_ != nullptr) {
    keys_metric_->Set(static_cast<double>(lru_.size()));
  }
  return lru_.front();
}

nanoseconds RateLimiter::Take(std::string_view key, const RateLimit& limit, double cost) {
  const bool satisfiable = IsValid(limit) && cost > 0.0 && cost <= limit.burst;
  const int64_t now = NowNs();
  std::lock_guard<std::mutex> lock(mu_);
  nanoseconds wait = nanoseconds::max();
  if (satisfiable) {
    Bucket& b = FindOrCreate(key, limit, now);
    b.tokens = TokensAt(b.tokens, b.refilled_ns, b.limit, now);
    // Another thread may have read the clock later but taken the lock earlier; time already
    // credited must not be credited twice.
    b.refilled_ns = std::max(b.refilled_ns, now);
    if (!SameLimit(b.limit, limit)) {
      b.limit = limit;
      b.tokens = std::min(b.tokens, limit.burst);
    }
    if (b.tokens + kSlack >= cost) {
      b.tokens -= cost;
      ++stats_.admitted;
      if (admitted_metric_ != nullptr) {
        admitted_metric_->Inc();
      }
      return nanoseconds(0);
    }
    wait = TimeToRefill(cost - b.tokens, limit.rate_per_second);
  }
  ++stats_.limited;
  if (limited_metric_ != nullptr) {
    limited_metric_->Inc();
  }
  return wait;
}

bool RateLimiter::TryAcquire(std::string_view key, double cost) {
  return TryAcquire(key, options_.limit, cost);
}

bool RateLimiter::TryAcquire(std::string_view key, const RateLimit& limit, double cost) {
  return Take(key, limit, cost) == nanoseconds(0);
}

Status RateLimiter::Acquire(std::string_view key, double cost) {
  return Acquire(key, options_.limit, cost);
}

Status RateLimiter::Acquire(std::string_view key, const RateLimit& limit, double cost) {
  EVO_RETURN_IF_ERROR(Validate(limit));
  if (!(cost > 0.0 && cost <= limit.burst)) {
    return InvalidArgumentError("rate limiter cost must be positive and at most the burst");
  }
  const nanoseconds wait = Take(key, limit, cost);
  if (wait == nanoseconds(0)) {
    return OkStatus();
  }
  const std::string seconds = WholeSecondsAtLeastOne(wait);
  return ResourceExhaustedError("rate limit exceeded; retry in " + seconds + " s")
      .With(kPayloadRetryAfter, seconds);
}

nanoseconds RateLimiter::TimeUntilAvailable(std::string_view key, double cost) {
  return TimeUntilAvailable(key, options_.limit, cost);
}

nanoseconds RateLimiter::TimeUntilAvailable(std::string_view key, const RateLimit& limit,
                                            double cost) {
  if (!IsValid(limit) || !(cost > 0.0) || cost > limit.burst) {
    return nanoseconds::max();
  }
  const int64_t now = NowNs();
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = by_key_.find(key);
  if (it == by_key_.end()) {
    return nanoseconds(0);  // a new key starts full and cost <= burst
  }
  const Bucket& b = *it->second;
  const double tokens = std::min(limit.burst, TokensAt(b.tokens, b.refilled_ns, b.limit, now));
  return TimeToRefill(cost - tokens, limit.rate_per_second);
}

RateLimiter::Stats RateLimiter::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s = stats_;
  s.keys = lru_.size();
  return s;
}

}  // namespace evo::resilience
