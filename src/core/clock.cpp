#include "core/clock.hpp"

#include <cctype>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>

namespace evo {
namespace {

int64_t Ns(std::chrono::nanoseconds d) { return d.count(); }

class SystemClock final : public Clock {
 public:
  WallTime Now() const override { return std::chrono::system_clock::now(); }
  SteadyTime Monotonic() const override { return std::chrono::steady_clock::now(); }
  void SleepFor(std::chrono::nanoseconds d) const override {
    if (d.count() > 0) {
      std::this_thread::sleep_for(d);
    }
  }
};

}  // namespace

const Clock& RealClock() {
  static const SystemClock* const clock = new SystemClock();  // never destroyed
  return *clock;
}

MonotonicWallClock::MonotonicWallClock(const Clock& base, std::chrono::milliseconds forward_resync)
    : base_(base), forward_resync_(forward_resync) {
  const int64_t mono = Ns(base_.Monotonic().time_since_epoch());
  offset_ns_ = Ns(base_.Now().time_since_epoch()) - mono;
  last_check_mono_ns_ = mono;
}

Clock::WallTime MonotonicWallClock::Now() const {
  const int64_t mono = Ns(base_.Monotonic().time_since_epoch());
  int64_t offset = offset_ns_.load(std::memory_order_relaxed);
  // Look at the wall clock at most every 100 ms: it is only needed to catch forward steps.
  int64_t last = last_check_mono_ns_.load(std::memory_order_relaxed);
  if (mono - last >= 100'000'000 &&
      last_check_mono_ns_.compare_exchange_strong(last, mono, std::memory_order_relaxed)) {
    const int64_t wall = Ns(base_.Now().time_since_epoch());
    const int64_t ahead = wall - (mono + offset);
    if (ahead > Ns(forward_resync_)) {
      int64_t expected = offset;
      const int64_t wanted = wall - mono;
      while (expected < wanted && !offset_ns_.compare_exchange_weak(expected, wanted)) {
      }
      offset = offset_ns_.load(std::memory_order_relaxed);
    }
  }
  return WallTime(
      std::chrono::duration_cast<WallTime::duration>(std::chrono::nanoseconds(mono + offset)));
}

ManualClock::ManualClock(WallTime start) : wall_ns_(Ns(start.time_since_epoch())) {}

Clock::WallTime ManualClock::Now() const {
  return WallTime(
      std::chrono::duration_cast<WallTime::duration>(std::chrono::nanoseconds(wall_ns_.load())));
}

Clock::SteadyTime ManualClock::Monotonic() const {
  return SteadyTime(std::chrono::nanoseconds(mono_ns_.load()));
}

void ManualClock::SleepFor(std::chrono::nanoseconds d) const {
  if (d.count() <= 0) {
    return;
  }
  slept_ns_ += d.count();
  wall_ns_ += d.count();
  mono_ns_ += d.count();
}

void ManualClock::Advance(std::chrono::nanoseconds d) {
  wall_ns_ += d.count();
  mono_ns_ += d.count();
}

void ManualClock::SetWall(WallTime t) { wall_ns_ = Ns(t.time_since_epoch()); }

std::chrono::nanoseconds ManualClock::TotalSlept() const {
  return std::chrono::nanoseconds(slept_ns_.load());
}

StatusOr<Clock::WallTime> ParseTimestamp(std::string_view text) {
  std::tm tm{};
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  char tail[32] = {0};
  const std::string s(text);
  const int n = std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%31s", &year, &month, &day, &hour,
                            &minute, &second, tail);
  std::string_view rest(tail);
  int64_t millis = 0;
  if (n == 7 && !rest.empty() && rest[0] == '.') {
    size_t i = 1;
    int64_t scale = 100;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) {
      millis += (rest[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    rest.remove_prefix(i);
  }
  if (n != 7 || rest != "Z" || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
      minute > 59 || second > 60 || year < 1970) {
    return InvalidArgumentError("'" + s +
                                "' is not an RFC 3339 UTC time like 2025-01-01T00:00:00Z");
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const time_t seconds = timegm(&tm);
  return Clock::WallTime(std::chrono::seconds(seconds) + std::chrono::milliseconds(millis));
}

std::string FormatUnixMillis(int64_t unix_millis) {
  // Howard Hinnant's civil_from_days: exact for every int64 day count we can meet, and free
  // of gmtime_r's time_t range and locale concerns.
  int64_t days = unix_millis / 86'400'000;
  int64_t ms_of_day = unix_millis % 86'400'000;
  if (ms_of_day < 0) {
    ms_of_day += 86'400'000;
    --days;
  }
  const int64_t z = days + 719'468;
  const int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
  const int64_t doe = z - era * 146'097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<long long>(year), static_cast<long long>(month),
                static_cast<long long>(day), static_cast<long long>(ms_of_day / 3'600'000),
                static_cast<long long>(ms_of_day / 60'000 % 60),
                static_cast<long long>(ms_of_day / 1000 % 60),
                static_cast<long long>(ms_of_day % 1000));
  return buf;
}

std::string FormatTimestamp(Clock::WallTime t) { return FormatUnixMillis(UnixMillis(t)); }

}  // namespace evo
