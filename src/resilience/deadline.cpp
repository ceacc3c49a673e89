// Deadlines, outbound timeouts and the grpc-timeout header syntax.
#include <algorithm>
#include <array>
#include <string>

#include "resilience/resilience.hpp"

namespace evo::resilience {
namespace {

using std::chrono::nanoseconds;

struct TimeoutUnit {
  char symbol;
  int64_t ns;
};
// Finest first, so that formatting loses as little as possible.
constexpr std::array<TimeoutUnit, 6> kTimeoutUnits = {{
    {'n', 1},
    {'u', 1'000},
    {'m', 1'000'000},
    {'S', 1'000'000'000},
    {'M', 60'000'000'000},
    {'H', 3'600'000'000'000},
}};
constexpr int64_t kMaxTimeoutValue = 99'999'999;  // 8 digits

}  // namespace

Deadline Deadline::After(const Clock& clock, nanoseconds timeout) {
  const Clock::SteadyTime now = clock.Monotonic();
  const nanoseconds since_origin = now.time_since_epoch();
  if (timeout > nanoseconds::max() - since_origin) {
    return Infinite();  // beyond any representable instant
  }
  if (timeout < nanoseconds::min() + since_origin) {
    return Deadline(&clock, Clock::SteadyTime::min());
  }
  return Deadline(&clock, now + timeout);
}

Deadline Deadline::At(const Clock& clock, Clock::SteadyTime when) { return Deadline(&clock, when); }

nanoseconds Deadline::Remaining() const {
  if (infinite()) {
    return nanoseconds::max();
  }
  const Clock::SteadyTime now = clock_->Monotonic();
  return now >= when_ ? nanoseconds(0) : when_ - now;
}

bool Deadline::Expired() const { return !infinite() && clock_->Monotonic() >= when_; }

Deadline Deadline::Min(const Deadline& other) const {
  if (infinite()) {
    return other;
  }
  if (other.infinite()) {
    return *this;
  }
  return other.when_ < when_ ? other : *this;
}

Status Deadline::Check(std::string_view what) const {
  if (Expired()) {
    return DeadlineExceededError(std::string(what) + ": deadline exceeded");
  }
  return OkStatus();
}

StatusOr<std::chrono::milliseconds> TimeoutFor(const Deadline& deadline,
                                               std::chrono::milliseconds cap) {
  if (cap <= std::chrono::milliseconds(0)) {
    return InvalidArgumentError("timeout cap must be positive");
  }
  if (deadline.infinite()) {
    return cap;
  }
  const nanoseconds remaining = deadline.Remaining();
  if (remaining <= nanoseconds(0)) {
    return DeadlineExceededError("deadline exceeded before the outbound call");
  }
  // Rounded up so that a sub-millisecond remainder still gives the call its (tiny) chance
  // rather than 0 ms, which libcurl would read as "no timeout at all".
  const auto rounded = std::chrono::ceil<std::chrono::milliseconds>(remaining);
  return std::max(std::chrono::milliseconds(1), std::min(rounded, cap));
}

std::string FormatTimeoutHeader(nanoseconds timeout) {
  const int64_t ns = timeout.count();
  if (ns <= 0) {
    return "0n";
  }
  for (const TimeoutUnit& unit : kTimeoutUnits) {
    const int64_t value = ns / unit.ns + (ns % unit.ns != 0 ? 1 : 0);
    if (value <= kMaxTimeoutValue) {
      return std::to_string(value) + unit.symbol;
    }
  }
  // Unreachable: int64 nanoseconds are at most ~2.6 million hours.
  return std::to_string(kMaxTimeoutValue) + 'H';
}

std::optional<nanoseconds> ParseTimeoutHeader(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) {
    return std::nullopt;
  }
  const char symbol = value.back();
  int64_t unit_ns = 0;
  for (const TimeoutUnit& unit : kTimeoutUnits) {
    if (unit.symbol == symbol) {
      unit_ns = unit.ns;
    }
  }
  if (unit_ns == 0) {
    return std::nullopt;
  }
  int64_t digits = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    digits = digits * 10 + (c - '0');
  }
  if (digits > nanoseconds::max().count() / unit_ns) {
    return nanoseconds::max();  // "99999999H" is longer than int64 nanoseconds reach
  }
  return nanoseconds(digits * unit_ns);
}

}  // namespace evo::resilience
