// Clock: the one source of time for evo code, injected so that tests are deterministic.
//
// Production code takes a `const Clock&` and never calls std::chrono::*::now() itself.
// RealClock() is the process-wide system clock; ManualClock is the test fake whose time moves
// only when told to (and when code sleeps on it).
//
// Thread safety: every Clock here may be used from any number of threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.hpp"

namespace evo {

class Clock {
 public:
  using WallTime = std::chrono::system_clock::time_point;
  using SteadyTime = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  // Wall-clock time (may step backwards or forwards when the system clock is set).
  virtual WallTime Now() const = 0;
  // Monotonic time: never goes backwards; only differences are meaningful.
  virtual SteadyTime Monotonic() const = 0;
  // Blocks the calling thread for `d` of this clock's time (ManualClock: advances it).
  virtual void SleepFor(std::chrono::nanoseconds d) const = 0;
};

// The real system clock. Lives for the whole process.
const Clock& RealClock();

// Wall time that advances with the monotonic clock of `base`: anchored to base.Now() at
// construction, then `anchor + (Monotonic() - monotonic anchor)`. It never goes backwards,
// so NTP slews and backward steps of the system clock do not reach its readers. When the
// base wall clock runs ahead by more than `forward_resync` (a forward step, a resume from
// suspend) it is re-anchored forward. `base` must outlive this clock.
class MonotonicWallClock final : public Clock {
 public:
  explicit MonotonicWallClock(const Clock& base,
                              std::chrono::milliseconds forward_resync = std::chrono::seconds(1));
  WallTime Now() const override;
  SteadyTime Monotonic() const override { return base_.Monotonic(); }
  void SleepFor(std::chrono::nanoseconds d) const override { base_.SleepFor(d); }

 private:
  const Clock& base_;
  const std::chrono::nanoseconds forward_resync_;
  // wall_ns = monotonic_ns + offset_ns_; only ever increased.
  mutable std::atomic<int64_t> offset_ns_;
  mutable std::atomic<int64_t> last_check_mono_ns_;
};

// A fake clock for tests. Starts at `start` (wall) and an arbitrary monotonic origin.
// SleepFor advances both wall and monotonic time by the requested amount and returns at once,
// so code that waits on the clock finishes deterministically.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(WallTime start = WallTime(std::chrono::milliseconds(1'767'225'600'000)));
  WallTime Now() const override;
  SteadyTime Monotonic() const override;
  void SleepFor(std::chrono::nanoseconds d) const override;

  // Moves wall and monotonic time forward by `d` (REQUIRES: d >= 0).
  void Advance(std::chrono::nanoseconds d);
  // Sets wall time only, as `date -s` would; may move it backwards. Monotonic time stays.
  void SetWall(WallTime t);
  // Total time requested through SleepFor so far.
  std::chrono::nanoseconds TotalSlept() const;

 private:
  mutable std::atomic<int64_t> wall_ns_;
  mutable std::atomic<int64_t> mono_ns_{1'000'000'000};
  mutable std::atomic<int64_t> slept_ns_{0};
};

// Milliseconds since the Unix epoch of a wall time.
inline int64_t UnixMillis(Clock::WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// RFC 3339 UTC with milliseconds: "2025-01-01T00:00:00.000Z" (proleptic Gregorian; exact for
// any time a 64-bit millisecond count holds).
std::string FormatTimestamp(Clock::WallTime t);
// The same for Unix milliseconds.
std::string FormatUnixMillis(int64_t unix_millis);
// Parses RFC 3339 UTC "2025-01-01T00:00:00Z" (fractional seconds allowed, 'Z' required).
// InvalidArgument otherwise.
StatusOr<Clock::WallTime> ParseTimestamp(std::string_view text);

}  // namespace evo
