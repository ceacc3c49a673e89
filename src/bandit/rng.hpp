// The bandit module's random number generator: xoshiro256** (Blackman & Vigna) seeded with
// splitmix64, and the few distributions the policies and the simulator draw from.
//
// Determinism: a given seed yields the same stream of every call below on every machine.
// The integer stream and Uniform() use integer arithmetic only; Normal/Gamma/Beta use
// PortableLog/PortableExp (fdlibm's algorithms written out in + - * / only, so they do not
// depend on the platform's libm) and std::sqrt (correctly rounded by IEEE 754). This holds
// for IEEE 754 doubles without fused multiply-add contraction (the module is compiled with
// -ffp-contract=off). A simulator run is therefore bit-reproducible across machines.
//
// Cost (x86-64, one core): Next ~1 ns, Uniform ~1.5 ns, Normal ~5 ns, Gamma ~12 ns, Beta
// ~25 ns; nothing allocates.
//
// Thread safety: an Rng is a value with no shared state; give each thread its own (e.g.
// Rng(SeedFor(seed, thread_or_run_index))).
#pragma once

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace evo::bandit {

// One step of splitmix64: advances `state` and returns the next output. Used to expand a
// 64-bit seed into xoshiro's 256-bit state and to derive independent seeds.
inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A seed for stream `index` of a family keyed by `seed` (e.g. one per simulated run), so that
// results do not depend on which thread runs which stream.
inline uint64_t SeedFor(uint64_t seed, uint64_t index) {
  uint64_t s = seed ^ 0x5851f42d4c957f2dULL;
  uint64_t a = SplitMix64(s);
  uint64_t t = index + a;
  return SplitMix64(t);
}

// ln x, within 1 ulp, computed the same way on every machine (fdlibm's e_log.c algorithm).
// ln 0 = -inf, ln of a negative number or NaN = NaN, ln inf = inf.
inline double PortableLog(double x) {
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kLg1 = 6.666666666666735130e-01;
  constexpr double kLg2 = 3.999999999940941908e-01;
  constexpr double kLg3 = 2.857142874366239149e-01;
  constexpr double kLg4 = 2.222219843214978396e-01;
  constexpr double kLg5 = 1.818357216161805012e-01;
  constexpr double kLg6 = 1.531383769920937332e-01;
  constexpr double kLg7 = 1.479819860511658591e-01;
  constexpr double kSqrt2 = 1.41421356237309504880;
  if (!(x > 0)) {
    return x == 0 ? -std::numeric_limits<double>::infinity()
                  : std::numeric_limits<double>::quiet_NaN();
  }
  if (x == std::numeric_limits<double>::infinity()) {
    return x;
  }
  int k = 0;
  if (x < std::numeric_limits<double>::min()) {  // subnormal: scale into the normal range
    x *= 18014398509481984.0;                    // 2^54
    k = -54;
  }
  const uint64_t bits = std::bit_cast<uint64_t>(x);
  k += static_cast<int>(bits >> 52) - 1023;
  // m in [1, 2), then folded into [sqrt(2)/2, sqrt(2)) so that f = m - 1 is small.
  double m = std::bit_cast<double>((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  if (m > kSqrt2) {
    m *= 0.5;
    ++k;
  }
  const double f = m - 1.0;
  const double s = f / (2.0 + f);
  const double z = s * s;
  const double w = z * z;
  const double t1 = w * (kLg2 + w * (kLg4 + w * kLg6));
  const double t2 = z * (kLg1 + w * (kLg3 + w * (kLg5 + w * kLg7)));
  const double r = t2 + t1;
  const double hfsq = 0.5 * f * f;
  const double dk = k;
  return dk * kLn2Hi - ((hfsq - (s * (hfsq + r) + dk * kLn2Lo)) - f);
}

// e^x, within 1 ulp, computed the same way on every machine (fdlibm's e_exp.c algorithm).
// Overflows to inf above ~709.78, underflows to 0 below ~-745.13; NaN stays NaN.
inline double PortableExp(double x) {
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kInvLn2 = 1.44269504088896338700e+00;
  constexpr double kP1 = 1.66666666666666019037e-01;
  constexpr double kP2 = -2.77777777770155933842e-03;
  constexpr double kP3 = 6.61375632143793436117e-05;
  constexpr double kP4 = -1.65339022054652515390e-06;
  constexpr double kP5 = 4.13813679705723846039e-08;
  if (x != x) {
    return x;
  }
  if (x > 7.09782712893383973096e+02) {
    return std::numeric_limits<double>::infinity();
  }
  if (x < -7.45133219101941108420e+02) {
    return 0.0;
  }
  // x = k ln2 + r, |r| <= ln2 / 2, with ln2 split in two so that hi - lo is exact enough.
  double hi = x;
  double lo = 0;
  int k = 0;
  if (x > 0.5 * kLn2Hi || x < -0.5 * kLn2Hi) {
    const double kd = x * kInvLn2 + (x < 0 ? -0.5 : 0.5);
    k = static_cast<int>(kd);  // truncation toward zero of x/ln2 +- 0.5 = round to nearest
    hi = x - k * kLn2Hi;
    lo = k * kLn2Lo;
  } else if (x > -3.725290298461914e-09 && x < 3.725290298461914e-09) {  // |x| < 2^-28
    return 1.0 + x;
  }
  const double r = hi - lo;
  const double t = r * r;
  const double c = r - t * (kP1 + t * (kP2 + t * (kP3 + t * (kP4 + t * kP5))));
  const double y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
  // y * 2^k, in two steps when 2^k alone is not a normal double.
  auto pow2 = [](int e) { return std::bit_cast<double>(static_cast<uint64_t>(e + 1023) << 52); };
  if (k >= -1021 && k <= 1023) {
    return y * pow2(k);
  }
  if (k > 1023) {
    return y * pow2(1023) * pow2(k - 1023);
  }
  return y * pow2(k + 1000) * pow2(-1000);
}

namespace internal {

// The tables of a 256-layer ziggurat for the standard normal (Marsaglia & Tsang 2000),
// computed once with the portable functions above, so identical on every machine. Layer i
// is the rectangle [0, x[i]] x [f[i], f[i + 1]], each of area kV; layer 0 is the base strip
// [0, r] x [0, f(r)] plus the tail beyond r, given the pseudo-width x[0] = kV / f(r).
struct Ziggurat {
  static constexpr int kLayers = 256;
  static constexpr double kR = 3.6541528853610088;
  static constexpr double kV = 4.928673233974658e-3;  // r f(r) + the tail's area
  double x[kLayers + 1];                              // x[0] > x[1] = r > ... > x[256] = 0
  double f[kLayers + 1];                              // f[i] = exp(-x[i]^2 / 2)

  Ziggurat() {
    f[1] = PortableExp(-0.5 * kR * kR);
    x[1] = kR;
    x[0] = kV / f[1];
    f[0] = 0;  // unused: layer 0 falls back to the tail
    for (int i = 1; i < kLayers - 1; ++i) {
      x[i + 1] = std::sqrt(-2.0 * PortableLog(kV / x[i] + f[i]));
      f[i + 1] = PortableExp(-0.5 * x[i + 1] * x[i + 1]);
    }
    x[kLayers] = 0;
    f[kLayers] = 1;
  }
};

inline const Ziggurat& ZigguratTables() {
  static const Ziggurat tables;
  return tables;
}

}  // namespace internal

// xoshiro256** 1.0 with distributions. 32 bytes of state; copyable (a copy continues the same
// stream independently).
class Rng {
 public:
  using result_type = uint64_t;
  static constexpr uint64_t min() { return 0; }
  static constexpr uint64_t max() { return std::numeric_limits<uint64_t>::max(); }

  // Seeds the 256-bit state with four splitmix64 outputs of `seed` (never all zero).
  explicit Rng(uint64_t seed = 1) {
    uint64_t s = seed;
    for (uint64_t& word : state_) {
      word = SplitMix64(s);
    }
  }

  // The next 64 uniformly distributed bits.
  uint64_t Next() {
    const uint64_t result = std::rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = std::rotl(state_[3], 45);
    return result;
  }
  uint64_t operator()() { return Next(); }

  // A double uniform in [0, 1): 53 random bits, every value a multiple of 2^-53.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // A double uniform in (0, 1]: safe to take the logarithm of.
  double UniformPositive() { return static_cast<double>((Next() >> 11) + 1) * 0x1.0p-53; }

  // An integer uniform in [0, n), without bias (Lemire's multiply-and-reject).
  // REQUIRES: n > 0.
  uint64_t Below(uint64_t n) {
    __extension__ using U128 = unsigned __int128;  // GCC and Clang; -Wpedantic-clean
    U128 m = static_cast<U128>(Next()) * n;
    auto low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<U128>(Next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  // True with probability p (p <= 0: never, p >= 1: always).
  bool Bernoulli(double p) { return Uniform() < p; }

  // A standard normal N(0, 1), by the ziggurat method (256 layers): one 64-bit draw and a
  // multiplication 99 % of the time.
  double Normal() {
    const internal::Ziggurat& z = internal::ZigguratTables();
    for (;;) {
      const uint64_t bits = Next();
      const auto i = static_cast<int>(bits & 0xff);  // the layer
      const bool negative = (bits & 0x100) != 0;
      const double x = static_cast<double>(bits >> 11) * 0x1.0p-53 * z.x[i];
      if (x < z.x[i + 1]) {  // inside the part of the layer that lies under the curve
        return negative ? -x : x;
      }
      if (i == 0) {  // the tail beyond r (Marsaglia 1964)
        double a;
        double b;
        do {
          a = -PortableLog(UniformPositive()) / internal::Ziggurat::kR;
          b = -PortableLog(UniformPositive());
        } while (b + b < a * a);
        return negative ? -(internal::Ziggurat::kR + a) : internal::Ziggurat::kR + a;
      }
      if (z.f[i] + Uniform() * (z.f[i + 1] - z.f[i]) < PortableExp(-0.5 * x * x)) {
        return negative ? -x : x;
      }
    }
  }

  // A Gamma(shape, 1) variate (Marsaglia & Tsang 2000; for shape < 1, Gamma(shape + 1)
  // times U^(1/shape)). Returns 0 for shape <= 0 or NaN (a degenerate distribution), and may
  // return 0 by underflow for tiny shapes.
  double Gamma(double shape) {
    if (!(shape > 0)) {
      return 0.0;
    }
    double boost = 1.0;
    if (shape < 1.0) {
      boost = PortableExp(PortableLog(UniformPositive()) / shape);
      shape += 1.0;
    }
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x;
      double v;
      do {
        x = Normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = UniformPositive();
      const double x2 = x * x;
      if (u < 1.0 - 0.0331 * x2 * x2) {  // the squeeze accepts ~98 % without a logarithm
        return d * v * boost;
      }
      if (PortableLog(u) < 0.5 * x2 + d * (1.0 - v + PortableLog(v))) {
        return d * v * boost;
      }
    }
  }

  // A Beta(a, b) variate as X / (X + Y), X ~ Gamma(a), Y ~ Gamma(b). REQUIRES a, b > 0. When
  // both gammas underflow to 0 (a and b both tiny), returns 1 with probability a / (a + b),
  // else 0, the limit of the distribution.
  double Beta(double a, double b) {
    const double x = Gamma(a);
    const double y = Gamma(b);
    const double sum = x + y;
    if (sum > 0) {
      return x / sum;
    }
    return Uniform() * (a + b) < a ? 1.0 : 0.0;
  }

  // The raw state, for tests and for saving a stream; set_state(state()) resumes it exactly.
  // A state of all zeros is invalid (the generator would output zeros forever).
  std::array<uint64_t, 4> state() const { return state_; }
  void set_state(const std::array<uint64_t, 4>& state) { state_ = state; }

  friend bool operator==(const Rng& a, const Rng& b) { return a.state_ == b.state_; }

 private:
  std::array<uint64_t, 4> state_;
};

}  // namespace evo::bandit
