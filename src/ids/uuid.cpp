// UUIDv7 (RFC 9562, method 2: monotonic random) and ULID generators.
//
// Both keep (milliseconds, random part) as the last value issued and, when the clock has not
// moved past it, increment the random part instead of drawing a new one: that is what makes
// them strictly increasing within the process even on a clock that stands still or steps back.
#include <mutex>
#include <random>

#include "ids/ids.hpp"
#include "ids/internal.hpp"

namespace evo::ids {
namespace {

constexpr uint64_t kMaxMillis48 = (uint64_t{1} << 48) - 1;

uint64_t Seed(uint64_t seed) {
  if (seed != 0) {
    return seed;
  }
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

uint64_t ClockMillis(const Clock& clock) {
  const int64_t ms = UnixMillis(clock.Now());
  if (ms < 0) {
    return 0;
  }
  return std::min(static_cast<uint64_t>(ms), kMaxMillis48);
}

void PutMillis(Bytes16& out, uint64_t ms) {
  for (int i = 0; i < 6; ++i) {
    out[static_cast<size_t>(i)] = static_cast<uint8_t>(ms >> (40 - 8 * i));
  }
}

}  // namespace

// ---- UUIDv7 ---------------------------------------------------------------------------------

struct Uuid7Generator::State {
  const Clock& clock;
  std::mutex mu;
  std::mt19937_64 rng;   // guarded by mu
  uint64_t millis = 0;   // guarded by mu
  uint64_t rand_a = 0;   // 12 bits; guarded by mu
  uint64_t rand_b = 0;   // 62 bits; guarded by mu
  bool started = false;  // guarded by mu
};

Uuid7Generator::Uuid7Generator(const Clock& clock, uint64_t seed)
    : state_(new State{clock, {}, std::mt19937_64(Seed(seed))}) {}

Uuid7Generator::~Uuid7Generator() = default;

Bytes16 Uuid7Generator::Next() {
  constexpr uint64_t kRandB = uint64_t{1} << 62;
  State& s = *state_;
  const uint64_t now = ClockMillis(s.clock);
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.started || now > s.millis) {
    s.started = true;
    s.millis = now;
    const uint64_t r = s.rng();
    // The top bit of rand_a starts at 0 so that increments within a busy millisecond
    // practically never carry into the timestamp.
    s.rand_a = (r >> 53) & 0x7ff;
    s.rand_b = s.rng() & (kRandB - 1);
  } else {
    // RFC 9562 6.2 method 2: a random increment keeps the IDs unguessable yet ordered.
    const uint64_t increment = 1 + s.rng() % ((uint64_t{1} << 32) - 1);
    s.rand_b += increment;
    if (s.rand_b >= kRandB) {
      s.rand_b -= kRandB;
      if (++s.rand_a > 0xfff) {
        s.rand_a = 0;
        ++s.millis;  // borrow the next millisecond rather than repeat a value
      }
    }
  }
  Bytes16 out{};
  PutMillis(out, s.millis);
  out[6] = static_cast<uint8_t>(0x70 | (s.rand_a >> 8));
  out[7] = static_cast<uint8_t>(s.rand_a);
  out[8] = static_cast<uint8_t>(0x80 | (s.rand_b >> 56));
  for (int i = 0; i < 7; ++i) {
    out[9 + static_cast<size_t>(i)] = static_cast<uint8_t>(s.rand_b >> (48 - 8 * i));
  }
  return out;
}

std::string FormatUuid(const Bytes16& uuid) {
  constexpr std::string_view kHex = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < uuid.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out += '-';
    }
    out += kHex[uuid[i] >> 4];
    out += kHex[uuid[i] & 15];
  }
  return out;
}

// ---- ULID -----------------------------------------------------------------------------------

struct UlidGenerator::State {
  const Clock& clock;
  std::mutex mu;
  std::mt19937_64 rng;   // guarded by mu
  uint64_t millis = 0;   // guarded by mu
  uint64_t rand_hi = 0;  // 16 bits; guarded by mu
  uint64_t rand_lo = 0;  // 64 bits; guarded by mu
  bool started = false;  // guarded by mu
};

UlidGenerator::UlidGenerator(const Clock& clock, uint64_t seed)
    : state_(new State{clock, {}, std::mt19937_64(Seed(seed))}) {}

UlidGenerator::~UlidGenerator() = default;

Bytes16 UlidGenerator::Next() {
  State& s = *state_;
  const uint64_t now = ClockMillis(s.clock);
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.started || now > s.millis) {
    s.started = true;
    s.millis = now;
    s.rand_hi = s.rng() & 0xffff;
    s.rand_lo = s.rng();
  } else if (++s.rand_lo == 0 && ++s.rand_hi > 0xffff) {
    s.rand_hi = 0;
    ++s.millis;
  }
  Bytes16 out{};
  PutMillis(out, s.millis);
  out[6] = static_cast<uint8_t>(s.rand_hi >> 8);
  out[7] = static_cast<uint8_t>(s.rand_hi);
  for (int i = 0; i < 8; ++i) {
    out[8 + static_cast<size_t>(i)] = static_cast<uint8_t>(s.rand_lo >> (56 - 8 * i));
  }
  return out;
}

std::string FormatUlid(const Bytes16& ulid) {
  uint64_t hi = 0;
  uint64_t lo = 0;
  for (size_t i = 0; i < 8; ++i) {
    hi = (hi << 8) | ulid[i];
    lo = (lo << 8) | ulid[8 + i];
  }
  // 26 characters of 5 bits cover 130 bits: the first holds only the top 3.
  std::string out(26, '0');
  for (int c = 0; c < 26; ++c) {
    const int shift = 5 * (25 - c);  // of the character's lowest bit
    uint64_t value = 0;
    if (shift >= 64) {
      value = hi >> (shift - 64);
    } else if (shift > 59) {
      value = (lo >> shift) | (hi << (64 - shift));
    } else {
      value = lo >> shift;
    }
    out[static_cast<size_t>(c)] = internal::kCrockford[value & 31];
  }
  return out;
}

}  // namespace evo::ids
