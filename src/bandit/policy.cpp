#include "bandit/policy.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "core/bytes.hpp"

namespace evo::bandit {
namespace {

constexpr size_t kNone = std::numeric_limits<size_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kZ975 = 1.959963984540054;  // the standard normal's 0.975 quantile
constexpr int64_t kMaxWindow = 10'000'000;   // 160 MB of ring buffer
// EXP3 log-weights are kept in [kMinLogWeight, 0]: the largest is 0 after every update, and
// an arm this far below the best has probability gamma / K exactly anyway (e^-1000 = 0).
constexpr double kMinLogWeight = -1000;
// Discounted Thompson keeps raw statistics divided by scale_ = discount^t, so that an
// Update costs O(1); the raw values are folded back in before scale_ underflows.
constexpr double kMinScale = 1e-150;

constexpr uint64_t kTag = 0x3154494441425645ULL;  // "EVBADIT1" little-endian
constexpr uint64_t kVersion = 1;

constexpr std::string_view kPolicyNames[] = {"thompson",
                                             "klucb",
                                             "ucb1",
                                             "epsilon-greedy",
                                             "softmax",
                                             "exp3",
                                             "discounted-thompson",
                                             "sliding-window-thompson"};

// An arm's (or all arms') sufficient statistics: weight, weighted sum, and weighted sum of
// squared deviations from the mean (Welford), which stays accurate for real rewards.
struct Stats {
  double n = 0;
  double sum = 0;
  double m2 = 0;
};

void Add(Stats& s, double weight, double x) {
  const double n = s.n + weight;
  const double old_mean = s.n > 0 ? s.sum / s.n : x;
  s.sum += weight * x;
  const double new_mean = s.sum / n;
  s.m2 += weight * (x - old_mean) * (x - new_mean);
  s.n = n;
}

// Takes back one observation of weight 1 (Welford in reverse). The sliding window recounts
// its statistics every `window` updates, so rounding cannot accumulate.
void Remove(Stats& s, double x) {
  const double n = s.n - 1;
  if (n <= 0) {
    s = Stats{};
    return;
  }
  const double old_mean = s.sum / s.n;
  s.sum -= x;
  const double new_mean = s.sum / n;
  s.m2 = std::max(0.0, s.m2 - (x - old_mean) * (x - new_mean));
  s.n = n;
}

double Clamp01(double x) { return x < 0 ? 0 : (x > 1 ? 1 : x); }

// ---- Special functions (Estimate and ProbabilityBest only, never on a decision path) ----

double LogBeta(double a, double b) { return std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b); }

// The continued fraction of the incomplete beta function (modified Lentz), for
// x < (a + 1) / (a + b + 2), where it converges in O(sqrt(max(a, b))) terms.
double BetaContinuedFraction(double x, double a, double b) {
  constexpr double kTiny = 1e-300;
  constexpr double kEps = 1e-16;
  const double qab = a + b;
  const double qap = a + 1;
  const double qam = a - 1;
  double c = 1;
  double d = 1 - qab * x / qap;
  if (std::fabs(d) < kTiny) {
    d = kTiny;
  }
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 100000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    d = std::fabs(d) < kTiny ? kTiny : d;
    c = 1 + aa / c;
    c = std::fabs(c) < kTiny ? kTiny : c;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    d = std::fabs(d) < kTiny ? kTiny : d;
    c = 1 + aa / c;
    c = std::fabs(c) < kTiny ? kTiny : c;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < kEps) {
      break;
    }
  }
  return h;
}

// The regularized incomplete beta function I_x(a, b) = P(Beta(a, b) <= x).
double RegularizedBeta(double x, double a, double b) {
  if (x <= 0) {
    return 0;
  }
  if (x >= 1) {
    return 1;
  }
  const double front = std::exp(a * std::log(x) + b * std::log1p(-x) - LogBeta(a, b));
  if (x < (a + 1) / (a + b + 2)) {
    return front * BetaContinuedFraction(x, a, b) / a;
  }
  return 1 - front * BetaContinuedFraction(1 - x, b, a) / b;
}

// The 0.975 quantile of Student's t with nu > 0 degrees of freedom: P(|T| > t) =
// I_{nu / (nu + t^2)}(nu / 2, 1 / 2).
double StudentT975(double nu) {
  const double y = BetaQuantile(0.05, 0.5 * nu, 0.5);
  if (!(y > 0)) {
    return kInf;
  }
  return std::sqrt(nu * (1 - y) / y);
}

// ---- Binary framing ----

using bytes::PutF64;
using bytes::PutU64;

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U64(uint64_t& v) { return bytes::GetU64(in_, v); }
  // A finite double.
  bool F64(double& v) { return bytes::GetF64(in_, v) && std::isfinite(v); }
  size_t remaining() const { return in_.size(); }

 private:
  std::string_view in_;
};

void PutStats(std::string& out, const Stats& s) {
  PutF64(out, s.n);
  PutF64(out, s.sum);
  PutF64(out, s.m2);
}
bool GetStats(Reader& in, Stats& s) {
  return in.F64(s.n) && in.F64(s.sum) && in.F64(s.m2) && s.n >= 0 && s.m2 >= 0;
}

PolicyOptions Clamped(PolicyOptions o) {
  auto fix = [](double v, double lo, double hi, double fallback) {
    return std::isfinite(v) ? std::clamp(v, lo, hi) : fallback;
  };
  o.epsilon = fix(o.epsilon, 0, 1, 0.1);
  o.temperature = fix(o.temperature, 1e-300, 1e300, 0.1);
  o.gamma = fix(o.gamma, 1e-12, 1, 0.1);
  o.klucb_c = fix(o.klucb_c, 0, 1e6, 0);
  o.discount = fix(o.discount, 1e-12, 1, 0.9998);
  o.window = std::clamp<int64_t>(o.window, 1, kMaxWindow);
  return o;
}

// Closed-form bounds on the KL-UCB index, the q > p with KL(p, q) = d: Pinsker's
// KL >= 2 (q - p)^2 and Chernoff's KL >= (q - p)^2 / (2 q) (tight for small p) bound it from
// above; KL <= chi^2 = (q - p)^2 / (q (1 - q)) bounds it from below.
double KlUcbUpper(double p, double d) {
  return std::min({1.0, p + std::sqrt(d / 2), p + d + std::sqrt(d * (2 * p + d))});
}
double KlUcbLower(double p, double d) {
  return ((2 * p + d) + std::sqrt(d * d + 4 * p * d * (1 - p))) / (2 * (1 + d));
}

// ---- The policies ----

// One class for all policy types: they share the statistics, the rules for unobserved
// arms and the serialised form, and differ in Select and in how Update weighs evidence.
class PolicyImpl final : public Policy {
 public:
  PolicyImpl(const PolicyOptions& options, RewardType reward_type, size_t arms)
      : options_(Clamped(options)), reward_type_(reward_type) {
    for (size_t i = 0; i < arms; ++i) {
      AddArm();
    }
  }

  const PolicyOptions& options() const override { return options_; }
  void Configure(const PolicyOptions& options) override {
    PolicyOptions next = Clamped(options);
    next.type = options_.type;
    next.window = options_.window;
    options_ = next;
  }
  RewardType reward_type() const override { return reward_type_; }
  size_t arms() const override { return stats_.size(); }
  uint64_t updates() const override { return updates_; }

  void AddArm() override {
    stats_.emplace_back();
    scratch_.push_back(0);
    if (options_.type == PolicyType::kExp3) {
      log_weights_.push_back(0);  // the largest log-weight is always 0
    }
  }

  size_t Select(std::span<const uint8_t> active, Rng& rng) override {
    if (active.size() != stats_.size()) {
      return stats_.size();
    }
    size_t chosen = kNone;
    switch (options_.type) {
      case PolicyType::kThompson:
      case PolicyType::kDiscountedThompson:
      case PolicyType::kSlidingWindowThompson:
        chosen = SelectThompson(active, rng);
        break;
      case PolicyType::kKlUcb:
      case PolicyType::kUcb1:
        chosen = SelectIndex(active, rng);
        break;
      case PolicyType::kEpsilonGreedy:
        chosen = SelectEpsilonGreedy(active, rng);
        break;
      case PolicyType::kSoftmax:
        chosen = SelectSoftmax(active, rng);
        break;
      case PolicyType::kExp3:
        chosen = SelectExp3(active, rng);
        break;
    }
    return chosen == kNone ? stats_.size() : chosen;
  }

  void Update(size_t arm, double reward) override {
    if (arm >= stats_.size() || !std::isfinite(reward)) {
      return;
    }
    if (reward_type_ == RewardType::kBernoulli) {
      reward = Clamp01(reward);
    }
    ++updates_;
    switch (options_.type) {
      case PolicyType::kDiscountedThompson: {
        scale_ *= options_.discount;
        if (scale_ < kMinScale) {
          FoldScale();
        }
        const double weight = 1 / scale_;
        Add(stats_[arm], weight, reward);
        Add(all_, weight, reward);
        return;
      }
      case PolicyType::kSlidingWindowThompson:
        UpdateWindow(arm, reward);
        return;
      case PolicyType::kExp3:
        UpdateExp3(arm, reward);
        break;
      default:
        break;
    }
    Add(stats_[arm], 1, reward);
    Add(all_, 1, reward);
  }

  ArmEstimate Estimate(size_t arm) const override {
    const Stats s = Effective(stats_[arm]);
    ArmEstimate e;
    e.observations = s.n;
    e.reward_sum = s.sum;
    e.mean = s.n > 0 ? s.sum / s.n : 0;
    if (reward_type_ == RewardType::kBernoulli) {
      if (IsBayesian(options_.type)) {
        double a;
        double b;
        BetaParameters(s, a, b);
        e.lo = BetaQuantile(0.025, a, b);
        e.hi = BetaQuantile(0.975, a, b);
      } else if (s.n <= 0) {
        e.lo = 0;
        e.hi = 1;
      } else {  // Wilson score interval
        const double z2 = kZ975 * kZ975;
        const double p = Clamp01(e.mean);
        const double denom = 1 + z2 / s.n;
        const double centre = (p + z2 / (2 * s.n)) / denom;
        const double half = kZ975 * std::sqrt(p * (1 - p) / s.n + z2 / (4 * s.n * s.n)) / denom;
        e.lo = std::max(0.0, centre - half);
        e.hi = std::min(1.0, centre + half);
      }
      return e;
    }
    if (s.n <= 0) {
      e.lo = -kInf;
      e.hi = kInf;
      return e;
    }
    const double spread = s.m2 + PooledVariance();
    const double half = spread > 0 ? StudentT975(s.n) * std::sqrt(spread) / s.n : 0;
    e.lo = e.mean - half;
    e.hi = e.mean + half;
    return e;
  }

  double SamplePosterior(size_t arm, Rng& rng) const override { return Sample(arm, rng); }

  bool BetaPosterior(size_t arm, double& a, double& b) const override {
    if (reward_type_ != RewardType::kBernoulli) {
      return false;
    }
    BetaParameters(Effective(stats_[arm]), a, b);
    return true;
  }

  void Serialize(std::string& out) const override {
    PutU64(out, kTag);
    PutU64(out, kVersion);
    PutU64(out, static_cast<uint64_t>(options_.type));
    PutU64(out, static_cast<uint64_t>(reward_type_));
    PutF64(out, options_.epsilon);
    PutF64(out, options_.temperature);
    PutF64(out, options_.gamma);
    PutF64(out, options_.klucb_c);
    PutF64(out, options_.discount);
    PutU64(out, static_cast<uint64_t>(options_.window));
    PutU64(out, updates_);
    PutF64(out, scale_);
    PutStats(out, all_);
    PutU64(out, stats_.size());
    for (const Stats& s : stats_) {
      PutStats(out, s);
    }
    if (options_.type == PolicyType::kExp3) {
      for (double w : log_weights_) {
        PutF64(out, w);
      }
    }
    if (options_.type == PolicyType::kSlidingWindowThompson) {
      PutU64(out, window_.size());
      PutU64(out, window_head_);
      for (const Observation& o : window_) {
        PutU64(out, o.arm);
        PutF64(out, o.reward);
      }
    }
  }

  // Reads the state after the tag, version, type and reward type (Deserialize).
  bool ReadState(Reader& in) {
    uint64_t window;
    if (!in.F64(options_.epsilon) || !in.F64(options_.temperature) || !in.F64(options_.gamma) ||
        !in.F64(options_.klucb_c) || !in.F64(options_.discount) || !in.U64(window) ||
        window > static_cast<uint64_t>(kMaxWindow)) {
      return false;
    }
    options_.window = static_cast<int64_t>(window);
    if (!Validate(options_).ok()) {
      return false;
    }
    uint64_t arms;
    if (!in.U64(updates_) || !in.F64(scale_) || !(scale_ > 0 && scale_ <= 1) ||
        !GetStats(in, all_) || !in.U64(arms) || arms > in.remaining() / 24) {
      return false;
    }
    for (uint64_t i = 0; i < arms; ++i) {
      AddArm();
      if (!GetStats(in, stats_.back())) {
        return false;
      }
    }
    if (options_.type == PolicyType::kExp3) {
      for (double& w : log_weights_) {
        if (!in.F64(w) || w > 0 || w < kMinLogWeight) {
          return false;
        }
      }
    }
    if (options_.type == PolicyType::kSlidingWindowThompson) {
      uint64_t size;
      uint64_t head;
      if (!in.U64(size) || !in.U64(head) || size > window || size > in.remaining() / 16 ||
          (size < window ? head != 0 : head >= size)) {
        return false;
      }
      window_.resize(size);
      for (Observation& o : window_) {
        uint64_t arm;
        if (!in.U64(arm) || arm >= arms || !in.F64(o.reward)) {
          return false;
        }
        o.arm = static_cast<uint32_t>(arm);
      }
      window_head_ = head;
    }
    return in.remaining() == 0;
  }

 private:
  struct Observation {
    uint32_t arm;
    double reward;
  };

  Stats Effective(const Stats& s) const {
    if (scale_ == 1) {
      return s;
    }
    return Stats{s.n * scale_, s.sum * scale_, s.m2 * scale_};
  }

  static void BetaParameters(const Stats& s, double& a, double& b) {
    a = 1 + std::max(0.0, s.sum);
    b = 1 + std::max(0.0, s.n - s.sum);
  }

  // The variance of all observations (the real-reward posterior's pseudo-observation).
  double PooledVariance() const { return all_.n > 0 ? all_.m2 / all_.n : 0; }

  double Sample(size_t arm, Rng& rng) const {
    const Stats s = Effective(stats_[arm]);
    if (reward_type_ == RewardType::kBernoulli) {
      double a;
      double b;
      BetaParameters(s, a, b);
      return rng.Beta(a, b);
    }
    double n = s.n;
    double mean;
    double m2 = s.m2;
    if (n > 0) {
      mean = s.sum / n;
    } else {
      n = 1;
      mean = all_.n > 0 ? all_.sum / all_.n : 0;
      m2 = 0;
    }
    const double spread = m2 + PooledVariance();
    if (!(spread > 0)) {
      return mean;
    }
    // sigma^2 ~ InvGamma(n / 2, spread / 2); mu ~ N(mean, sigma^2 / n).
    const double g = std::max(rng.Gamma(0.5 * n), 1e-300);
    const double sd = std::sqrt(spread / (2 * g * n));
    const double mu = mean + sd * rng.Normal();
    if (std::isfinite(mu)) {
      return mu;
    }
    return mu > 0 ? std::numeric_limits<double>::max() : std::numeric_limits<double>::lowest();
  }

  // Picks uniformly among the active arms never observed (in the current window, for the
  // sliding window); kNone when there is none. Draws from `rng` only when there are two or
  // more, so that the stream of a run is unchanged once every arm has been seen.
  size_t PickUnobserved(std::span<const uint8_t> active, Rng& rng) const {
    size_t count = 0;
    for (size_t i = 0; i < active.size(); ++i) {
      count += (active[i] != 0 && stats_[i].n == 0) ? 1 : 0;
    }
    if (count == 0) {
      return kNone;
    }
    uint64_t k = count == 1 ? 0 : rng.Below(count);
    for (size_t i = 0; i < active.size(); ++i) {
      if (active[i] != 0 && stats_[i].n == 0 && k-- == 0) {
        return i;
      }
    }
    return kNone;
  }

  static size_t PickActive(std::span<const uint8_t> active, Rng& rng) {
    size_t count = 0;
    for (uint8_t a : active) {
      count += a != 0 ? 1 : 0;
    }
    if (count == 0) {
      return kNone;
    }
    uint64_t k = count == 1 ? 0 : rng.Below(count);
    for (size_t i = 0; i < active.size(); ++i) {
      if (active[i] != 0 && k-- == 0) {
        return i;
      }
    }
    return kNone;
  }

  // Keeps the arm with the largest value; exact ties are broken uniformly at random
  // (reservoir sampling), drawing from `rng` only on a tie.
  struct ArgMax {
    size_t best = kNone;
    double value = -kInf;
    uint64_t ties = 0;
    void Offer(size_t arm, double v, Rng& rng) {
      if (best == kNone || v > value) {
        best = arm;
        value = v;
        ties = 1;
      } else if (v == value && rng.Below(++ties) == 0) {
        best = arm;
      }
    }
  };

  size_t SelectThompson(std::span<const uint8_t> active, Rng& rng) const {
    if (reward_type_ == RewardType::kReal) {
      if (size_t arm = PickUnobserved(active, rng); arm != kNone) {
        return arm;
      }
    }
    size_t best = kNone;
    double best_value = -kInf;
    for (size_t i = 0; i < active.size(); ++i) {
      if (active[i] == 0) {
        continue;
      }
      const double v = Sample(i, rng);
      if (best == kNone || v > best_value) {
        best = i;
        best_value = v;
      }
    }
    return best;
  }

  size_t SelectIndex(std::span<const uint8_t> active, Rng& rng) {
    if (size_t arm = PickUnobserved(active, rng); arm != kNone) {
      return arm;
    }
    const double log_t = PortableLog(std::max(all_.n, 1.0));
    double exploration = log_t;
    if (options_.klucb_c > 0 && log_t > 1) {
      exploration += options_.klucb_c * PortableLog(log_t);
    }
    const bool bernoulli = reward_type_ == RewardType::kBernoulli;
    if (options_.type == PolicyType::kKlUcb && bernoulli) {
      return SelectKlUcbBernoulli(active, exploration, rng);
    }
    const double pooled = PooledVariance();
    ArgMax argmax;
    for (size_t i = 0; i < active.size(); ++i) {
      if (active[i] == 0) {
        continue;
      }
      const Stats& s = stats_[i];
      const double mean = s.sum / s.n;
      // UCB1's [0, 1] rewards have variance <= 1/4: sqrt(8 / 4 ln t / n) = sqrt(2 ln t / n).
      // For real rewards, UCB1's and the Gaussian KL-UCB's bonuses with the arm's variance.
      const double variance = bernoulli ? 0.25 : (s.m2 + pooled) / s.n;
      const double width = options_.type == PolicyType::kUcb1 ? 8 : 2;
      argmax.Offer(i, mean + std::sqrt(width * variance * exploration / s.n), rng);
    }
    return argmax.best;
  }

  // Solving for every arm's index costs ~5 Newton steps of two logarithms each; closed-form
  // bounds rule out most arms first: only those whose upper bound reaches the best lower
  // bound are solved, so the choice (ties included) is that of solving all of them.
  size_t SelectKlUcbBernoulli(std::span<const uint8_t> active, double exploration, Rng& rng) {
    double best_lower = -kInf;
    for (size_t i = 0; i < active.size(); ++i) {
      if (active[i] != 0) {
        const double p = Clamp01(stats_[i].sum / stats_[i].n);
        const double d = exploration / stats_[i].n;
        scratch_[i] = KlUcbUpper(p, d);
        best_lower = std::max(best_lower, std::min(p >= 1 ? 1.0 : KlUcbLower(p, d), 1.0));
      }
    }
    ArgMax argmax;
    for (size_t i = 0; i < active.size(); ++i) {
      if (active[i] == 0 || scratch_[i] < best_lower ||
          (argmax.best != kNone && scratch_[i] < argmax.value)) {
        continue;
      }
      argmax.Offer(i, KlUcbIndex(Clamp01(stats_[i].sum / stats_[i].n), stats_[i].n, exploration),
                   rng);
    }
    return argmax.best;
  }

  size_t SelectEpsilonGreedy(std::span<const uint8_t> active, Rng& rng) const {
    if (size_t arm = PickUnobserved(active, rng); arm != kNone) {
      return arm;
    }
    if (rng.Uniform() < options_.epsilon) {
      return PickActive(active, rng);
    }
    ArgMax argmax;
    for (size_t i = 0; i < active.size(); ++i) {
      if (active[i] != 0) {
        argmax.Offer(i, stats_[i].sum / stats_[i].n, rng);
      }
    }
    return argmax.best;
  }

  size_t SelectSoftmax(std::span<const uint8_t> active, Rng& rng) {
    if (size_t arm = PickUnobserved(active, rng); arm != kNone) {
      return arm;
    }
    double max_mean = -kInf;
    for (size_t i = 0; i < active.size(); ++i) {
      if (active[i] != 0) {
        max_mean = std::max(max_mean, stats_[i].sum / stats_[i].n);
      }
    }
    double total = 0;
    for (size_t i = 0; i < active.size(); ++i) {
      scratch_[i] =
          active[i] != 0
              ? PortableExp((stats_[i].sum / stats_[i].n - max_mean) / options_.temperature)
              : 0;
      total += scratch_[i];
    }
    return Draw(active, total, rng);
  }

  size_t SelectExp3(std::span<const uint8_t> active, Rng& rng) {
    size_t k = 0;
    double max_log = -kInf;
    for (size_t i = 0; i < active.size(); ++i) {
      if (active[i] != 0) {
        ++k;
        max_log = std::max(max_log, log_weights_[i]);
      }
    }
    if (k == 0) {
      return kNone;
    }
    double total = 0;
    for (size_t i = 0; i < active.size(); ++i) {
      scratch_[i] = active[i] != 0 ? PortableExp(log_weights_[i] - max_log) : 0;
      total += scratch_[i];
    }
    const double uniform = options_.gamma / static_cast<double>(k);
    for (size_t i = 0; i < active.size(); ++i) {
      if (active[i] != 0) {
        scratch_[i] = (1 - options_.gamma) * scratch_[i] / total + uniform;
      }
    }
    return Draw(active, 1.0, rng);
  }

  // Draws an active arm with probability scratch_[i] / total.
  size_t Draw(std::span<const uint8_t> active, double total, Rng& rng) const {
    double x = rng.Uniform() * total;
    size_t last = kNone;
    for (size_t i = 0; i < active.size(); ++i) {
      if (active[i] == 0) {
        continue;
      }
      last = i;
      x -= scratch_[i];
      if (x < 0) {
        return i;
      }
    }
    return last;  // rounding left x >= 0 after the last arm
  }

  void UpdateExp3(size_t arm, double reward) {
    const double x = Clamp01(reward);
    if (x == 0) {
      return;  // the weight changes by e^0
    }
    double total = 0;
    for (double w : log_weights_) {
      total += PortableExp(w);  // the largest log-weight is 0, so total is in [1, K]
    }
    const double k = static_cast<double>(log_weights_.size());
    const double p =
        (1 - options_.gamma) * PortableExp(log_weights_[arm]) / total + options_.gamma / k;
    log_weights_[arm] += options_.gamma * (x / p) / k;
    const double top = log_weights_[arm];
    if (top > 0) {
      for (double& w : log_weights_) {
        w = std::max(kMinLogWeight, w - top);
      }
      log_weights_[arm] = 0;
    }
  }

  void UpdateWindow(size_t arm, double reward) {
    const auto capacity = static_cast<size_t>(options_.window);
    if (window_.size() < capacity) {
      window_.push_back({static_cast<uint32_t>(arm), reward});
      Add(stats_[arm], 1, reward);
      Add(all_, 1, reward);
      return;
    }
    Observation& slot = window_[window_head_];
    Remove(stats_[slot.arm], slot.reward);
    Remove(all_, slot.reward);
    slot = {static_cast<uint32_t>(arm), reward};
    Add(stats_[arm], 1, reward);
    Add(all_, 1, reward);
    if (++window_head_ == capacity) {
      window_head_ = 0;
      Recount();
    }
  }

  // Recomputes the window's statistics from the ring, oldest first.
  void Recount() {
    std::fill(stats_.begin(), stats_.end(), Stats{});
    all_ = Stats{};
    for (size_t k = 0; k < window_.size(); ++k) {
      const Observation& o = window_[(window_head_ + k) % window_.size()];
      Add(stats_[o.arm], 1, o.reward);
      Add(all_, 1, o.reward);
    }
  }

  void FoldScale() {
    for (Stats& s : stats_) {
      s = Effective(s);
    }
    all_ = Effective(all_);
    scale_ = 1;
  }

  PolicyOptions options_;
  RewardType reward_type_;
  std::vector<Stats> stats_;  // per arm; the effective values are these times scale_
  Stats all_;                 // all observations together, likewise
  double scale_ = 1;          // discounted-thompson: discount^(updates since the last fold)
  uint64_t updates_ = 0;
  std::vector<double> log_weights_;  // exp3
  std::vector<Observation> window_;  // sliding-window-thompson: a ring, oldest at head
  size_t window_head_ = 0;           // once full, the slot to overwrite next
  std::vector<double> scratch_;      // Select's per-arm weights (softmax, exp3)
};

}  // namespace

StatusOr<RewardType> ParseRewardType(std::string_view name) {
  if (name == "bernoulli") {
    return RewardType::kBernoulli;
  }
  if (name == "real") {
    return RewardType::kReal;
  }
  return InvalidArgumentError("unknown reward type \"" + std::string(name) +
                              "\" (expected bernoulli or real)");
}

std::string_view RewardTypeName(RewardType type) {
  return type == RewardType::kBernoulli ? "bernoulli" : "real";
}

StatusOr<PolicyType> ParsePolicyType(std::string_view name) {
  for (size_t i = 0; i < std::size(kPolicyNames); ++i) {
    if (name == kPolicyNames[i]) {
      return static_cast<PolicyType>(i);
    }
  }
  std::string expected;
  for (std::string_view n : kPolicyNames) {
    expected += expected.empty() ? "" : ", ";
    expected += n;
  }
  return InvalidArgumentError("unknown policy type \"" + std::string(name) + "\" (expected " +
                              expected + ")");
}

std::string_view PolicyTypeName(PolicyType type) {
  const auto i = static_cast<size_t>(type);
  return i < std::size(kPolicyNames) ? kPolicyNames[i] : "unknown";
}

bool IsBayesian(PolicyType type) {
  return type == PolicyType::kThompson || type == PolicyType::kDiscountedThompson ||
         type == PolicyType::kSlidingWindowThompson;
}

Status Validate(const PolicyOptions& options) {
  if (static_cast<size_t>(options.type) >= std::size(kPolicyNames)) {
    return InvalidArgumentError("type is not a known policy type");
  }
  if (!(options.epsilon >= 0 && options.epsilon <= 1)) {
    return InvalidArgumentError("epsilon must be in [0, 1]");
  }
  if (!(options.temperature > 0) || !std::isfinite(options.temperature)) {
    return InvalidArgumentError("temperature must be a positive number");
  }
  if (!(options.gamma > 0 && options.gamma <= 1)) {
    return InvalidArgumentError("gamma must be in (0, 1]");
  }
  if (!(options.klucb_c >= 0) || !std::isfinite(options.klucb_c)) {
    return InvalidArgumentError("klucb_c must be a non-negative number");
  }
  if (!(options.discount > 0 && options.discount <= 1)) {
    return InvalidArgumentError("discount must be in (0, 1]");
  }
  if (options.window < 1 || options.window > kMaxWindow) {
    return InvalidArgumentError("window must be in [1, " + std::to_string(kMaxWindow) + "]");
  }
  return OkStatus();
}

std::unique_ptr<Policy> Policy::Create(const PolicyOptions& options, RewardType reward_type,
                                       size_t arms) {
  return std::make_unique<PolicyImpl>(options, reward_type, arms);
}

StatusOr<std::unique_ptr<Policy>> Policy::Deserialize(std::string_view bytes) {
  Reader in(bytes);
  uint64_t tag;
  uint64_t version;
  uint64_t type;
  uint64_t reward_type;
  if (!in.U64(tag) || tag != kTag) {
    return DataLossError("bandit policy state: bad tag");
  }
  if (!in.U64(version) || version != kVersion) {
    return DataLossError("bandit policy state: unsupported version");
  }
  if (!in.U64(type) || type >= std::size(kPolicyNames) || !in.U64(reward_type) || reward_type > 1) {
    return DataLossError("bandit policy state: bad policy or reward type");
  }
  PolicyOptions options;
  options.type = static_cast<PolicyType>(type);
  auto policy =
      std::make_unique<PolicyImpl>(options, static_cast<RewardType>(reward_type), size_t{0});
  if (!policy->ReadState(in)) {
    return DataLossError("bandit policy state: truncated or corrupt");
  }
  return std::unique_ptr<Policy>(std::move(policy));
}

std::vector<double> ProbabilityBest(const Policy& policy, std::span<const uint8_t> active,
                                    int samples, Rng& rng) {
  const size_t arms = policy.arms();
  std::vector<double> out(arms, 0);
  if (active.size() != arms || samples < 1) {
    return out;
  }
  std::vector<size_t> live;
  for (size_t i = 0; i < arms; ++i) {
    if (active[i] != 0) {
      live.push_back(i);
    }
  }
  if (live.empty()) {
    return out;
  }
  if (live.size() == 1) {
    out[live[0]] = 1;
    return out;
  }
  if (live.size() == 2) {
    double a1;
    double b1;
    double a2;
    double b2;
    constexpr double kMaxTerms = 1e7;  // ~30 ms at worst
    if (policy.BetaPosterior(live[0], a1, b1) && policy.BetaPosterior(live[1], a2, b2) &&
        std::min({a1, b1, a2, b2}) <= kMaxTerms) {
      const double p = ProbabilityBetaGreater(a1, b1, a2, b2);
      if (std::isfinite(p)) {
        out[live[0]] = std::clamp(p, 0.0, 1.0);
        out[live[1]] = 1 - out[live[0]];
        return out;
      }
    }
  }
  std::vector<uint64_t> wins(arms, 0);
  for (int s = 0; s < samples; ++s) {
    size_t best = live[0];
    double best_value = policy.SamplePosterior(best, rng);
    for (size_t k = 1; k < live.size(); ++k) {
      const double v = policy.SamplePosterior(live[k], rng);
      if (v > best_value) {
        best = live[k];
        best_value = v;
      }
    }
    ++wins[best];
  }
  for (size_t i = 0; i < arms; ++i) {
    out[i] = static_cast<double>(wins[i]) / samples;
  }
  return out;
}

double ProbabilityBestStandardError(int samples) { return std::sqrt(0.25 / std::max(samples, 1)); }

namespace {

// Evan Miller's sum: P(X > Y), X ~ Beta(a1, b1), Y ~ Beta(a2, b2), over a1 terms:
//   sum_{i=0}^{a1-1} B(a2 + i, b1 + b2) / ((b1 + i) B(1 + i, b1) B(a2, b2)).
// Successive terms have the ratio (a2 + i)(b1 + i) / ((a2 + b1 + b2 + i)(1 + i)), so only
// the first needs the Beta function; the running term is rescaled to stay representable.
double MillerSum(double a1, double b1, double a2, double b2) {
  const double log_first = LogBeta(a2, b1 + b2) - LogBeta(a2, b2);
  double term = 1;
  double sum = 0;
  double log_scale = log_first;
  const auto n = static_cast<uint64_t>(a1);
  for (uint64_t k = 0; k < n; ++k) {
    sum += term;
    const auto i = static_cast<double>(k);
    term *= (a2 + i) * (b1 + i) / ((a2 + b1 + b2 + i) * (1 + i));
    if (term > 1e200 || sum > 1e200) {
      term *= 1e-200;
      sum *= 1e-200;
      log_scale += 200 * std::log(10.0);
    }
  }
  if (sum <= 0) {
    return 0;
  }
  return std::exp(std::log(sum) + log_scale);
}

}  // namespace

double ProbabilityBetaGreater(double a1, double b1, double a2, double b2) {
  for (double v : {a1, b1, a2, b2}) {
    if (!(v >= 1 && v <= 9007199254740992.0) || v != std::floor(v)) {
      return std::numeric_limits<double>::quiet_NaN();
    }
  }
  // P(X > Y) = 1 - P(Y > X) = P(1 - Y > 1 - X) = 1 - P(1 - X > 1 - Y), with 1 - X ~
  // Beta(b1, a1): sum over whichever parameter is smallest.
  const double m = std::min({a1, b1, a2, b2});
  double p;
  if (m == a1) {
    p = MillerSum(a1, b1, a2, b2);
  } else if (m == a2) {
    p = 1 - MillerSum(a2, b2, a1, b1);
  } else if (m == b2) {
    p = MillerSum(b2, a2, b1, a1);
  } else {
    p = 1 - MillerSum(b1, a1, b2, a2);
  }
  return std::clamp(p, 0.0, 1.0);
}

double BetaQuantile(double p, double a, double b) {
  if (!(p >= 0 && p <= 1) || !(a > 0) || !(b > 0) || !std::isfinite(a) || !std::isfinite(b)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (p == 0) {
    return 0;
  }
  if (p == 1) {
    return 1;
  }
  // Newton's method on I_x(a, b) - p, safeguarded by bisection on a shrinking bracket.
  const double log_beta = LogBeta(a, b);
  double lo = 0;
  double hi = 1;
  double x = a / (a + b);
  for (int iter = 0; iter < 200; ++iter) {
    const double f = RegularizedBeta(x, a, b) - p;
    if (f == 0) {
      return x;
    }
    (f < 0 ? lo : hi) = x;
    const double density = std::exp((a - 1) * std::log(x) + (b - 1) * std::log1p(-x) - log_beta);
    double next = x - f / density;
    if (!(next > lo && next < hi)) {
      next = 0.5 * (lo + hi);
    }
    if (std::fabs(next - x) <= 1e-15 * std::max(x, 1e-300) || hi - lo <= 1e-300) {
      return next;
    }
    x = next;
  }
  return x;
}

double BernoulliKl(double p, double q) {
  if (p <= 0) {
    return q >= 1 ? kInf : -PortableLog(1 - q);
  }
  if (p >= 1) {
    return q <= 0 ? kInf : -PortableLog(q);
  }
  if (q <= 0 || q >= 1) {
    return kInf;
  }
  return p * PortableLog(p / q) + (1 - p) * PortableLog((1 - p) / (1 - q));
}

double KlUcbIndex(double p, double n, double exploration) {
  p = Clamp01(p);
  if (p >= 1) {
    return 1;
  }
  if (!(exploration > 0) || !(n > 0)) {
    return p;
  }
  const double d = exploration / n;
  if (p <= 0) {
    return 1 - PortableExp(-d);  // KL(0, q) = -ln(1 - q)
  }
  // f(q) = KL(p, q) - d is convex and increasing on [p, 1), so Newton's method started to
  // the right of the root decreases to it monotonically. It starts at the least of the upper
  // bounds on the root: KlUcbUpper's, tight for small d, and the one from dropping
  // -p ln q >= 0 from KL(p, q) = -H(p) - p ln q - (1 - p) ln(1 - q), tight near 1, where
  // Newton's method would otherwise crawl in from 1 - 2^-53.
  constexpr double kBelowOne = 1 - 0x1.0p-53;
  const double entropy = -(p * PortableLog(p) + (1 - p) * PortableLog(1 - p));
  const double near_one = 1 - PortableExp(-(d + entropy) / (1 - p));
  double q = std::min({KlUcbUpper(p, d), near_one, kBelowOne});
  if (!(q > p)) {
    return p;  // d below rounding of p
  }
  if (q == kBelowOne && BernoulliKl(p, q) <= d) {
    return q;  // the index is 1 to double precision
  }
  for (int iter = 0; iter < 100; ++iter) {
    const double f = BernoulliKl(p, q) - d;
    if (f <= 0) {
      return q;  // at the root, to rounding
    }
    const double slope = (q - p) / (q * (1 - q));
    const double next = std::max(p, q - f / slope);
    // Newton's step is about the remaining error; measure it against the distances to both
    // ends, since near q = 1 the first steps are tiny in absolute terms.
    if (q - next <= 1e-10 * std::min(next - p, 1 - next)) {
      return next;
    }
    q = next;
  }
  return q;
}

}  // namespace evo::bandit
