// Layout arithmetic, its validation, and the time helpers the rest of the module shares.
#include <fmt/format.h>

#include <limits>

#include "ids/ids.hpp"
#include "ids/internal.hpp"

namespace evo::ids {

double Layout::CapacityPerSecond() const {
  return static_cast<double>(MaxSequence() + 1) * 1000.0 / static_cast<double>(tick.count());
}

Clock::WallTime Layout::Exhausted() const {
  using std::chrono::milliseconds;
  // Saturate instead of overflowing: a 62-bit timestamp of seconds lies far beyond what a
  // system_clock time_point (nanoseconds, +-292 years) can hold.
  const int64_t max_ms =
      std::chrono::duration_cast<milliseconds>(Clock::WallTime::max().time_since_epoch()).count();
  const int64_t epoch_ms = UnixMillis(epoch);
  const int64_t ticks = MaxTimestamp() + 1;
  if (tick.count() <= 0 || ticks > (max_ms - epoch_ms) / tick.count()) {
    return Clock::WallTime::max();
  }
  return epoch + milliseconds(ticks * tick.count());
}

Status Validate(const Layout& layout, const Clock& clock) {
  auto bad = [](const std::string& message) {
    return InvalidArgumentError(message).With(kPayloadReason, "INVALID_LAYOUT");
  };
  if (layout.timestamp_bits < 1 || layout.timestamp_bits > 62) {
    return bad(fmt::format("timestamp_bits must be 1..62, got {}", layout.timestamp_bits));
  }
  if (layout.worker_bits < 0 || layout.worker_bits > 61) {
    return bad(fmt::format("worker_bits must be 0..61, got {}", layout.worker_bits));
  }
  if (layout.sequence_bits < 1 || layout.sequence_bits > 62) {
    return bad(fmt::format("sequence_bits must be 1..62, got {}", layout.sequence_bits));
  }
  const int sum = layout.timestamp_bits + layout.worker_bits + layout.sequence_bits;
  if (sum != 63) {
    return bad(fmt::format(
        "timestamp_bits + worker_bits + sequence_bits must be 63 (the sign bit stays 0), got {}",
        sum));
  }
  if (layout.tick < std::chrono::milliseconds(1) || layout.tick > std::chrono::seconds(1)) {
    return bad(fmt::format("tick must be 1 ms..1 s, got {} ms", layout.tick.count()));
  }
  const Clock::WallTime now = clock.Now();
  if (layout.epoch > now) {
    return bad(fmt::format("epoch {} is in the future (now {})",
                           FormatUnixMillis(UnixMillis(layout.epoch)),
                           FormatUnixMillis(UnixMillis(now))));
  }
  if (layout.epoch < Clock::WallTime()) {
    return bad("epoch must not be before 1970-01-01T00:00:00Z");
  }
  // Every timestamp must be expressible as int64 Unix milliseconds (Decoded::unix_millis).
  const int64_t span_limit = std::numeric_limits<int64_t>::max() - UnixMillis(layout.epoch);
  if (layout.MaxTimestamp() > span_limit / layout.tick.count() - 1) {
    return bad(fmt::format(
        "timestamp_bits {} with tick {} ms reach beyond 64-bit Unix milliseconds; use fewer "
        "timestamp_bits",
        layout.timestamp_bits, layout.tick.count()));
  }
  if (layout.Exhausted() <= now) {
    return bad(fmt::format("timestamp_bits {} with tick {} ms ran out at {}", layout.timestamp_bits,
                           layout.tick.count(), FormatUnixMillis(UnixMillis(layout.Exhausted()))));
  }
  return OkStatus();
}

Decoded Decode(const Layout& layout, Id id) {
  Decoded d;
  d.id = id;
  d.sequence = static_cast<int64_t>(id & static_cast<uint64_t>(layout.MaxSequence()));
  d.worker_id = static_cast<int64_t>((id >> layout.sequence_bits) &
                                     static_cast<uint64_t>(layout.MaxWorkerId()));
  d.timestamp_ticks = static_cast<int64_t>((id >> (layout.sequence_bits + layout.worker_bits)) &
                                           static_cast<uint64_t>(layout.MaxTimestamp()));
  d.unix_millis = UnixMillis(layout.epoch) + d.timestamp_ticks * layout.tick.count();
  return d;
}

Id Compose(const Layout& layout, int64_t timestamp_ticks, int64_t worker_id, int64_t sequence) {
  return (static_cast<uint64_t>(timestamp_ticks) << (layout.sequence_bits + layout.worker_bits)) |
         (static_cast<uint64_t>(worker_id) << layout.sequence_bits) |
         static_cast<uint64_t>(sequence);
}

namespace internal {

int64_t RetryAfterSeconds(std::chrono::nanoseconds d) {
  const int64_t ns = d.count();
  if (ns <= 1'000'000'000) {
    return 1;
  }
  return ns / 1'000'000'000 + (ns % 1'000'000'000 != 0 ? 1 : 0);
}

std::string Excerpt(std::string_view text) {
  constexpr size_t kMax = 32;
  std::string out;
  for (char c : text.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  if (text.size() > kMax) {
    out += fmt::format("... ({} bytes)", text.size());
  }
  return out;
}

}  // namespace internal
}  // namespace evo::ids
