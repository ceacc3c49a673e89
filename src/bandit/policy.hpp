// Bandit policies: which arm to pull next, given the rewards observed so far.
//
//   thompson                 Thompson sampling. Bernoulli rewards: Beta(1 + s, 1 + f) per arm
//                            (s successes, f failures). Real rewards: a Normal-Inverse-Gamma
//                            posterior, flat on the mean, whose variance part adds one
//                            pseudo-observation carrying the variance of all rewards seen (so
//                            that an arm whose few rewards happen to be equal still explores):
//                            sigma^2 ~ InvGamma(n / 2, (M2 + v) / 2), mu ~ N(mean, sigma^2 / n),
//                            M2 the arm's sum of squared deviations, v the variance of all
//                            observations. Marginally mu = mean + sqrt(M2 + v) / n * t_n.
//   klucb                    KL-UCB (Garivier & Cappe 2011): the largest q with
//                            n * KL(mean, q) <= ln t + c ln ln t (c = klucb_c, default 0), by
//                            Newton's method from the right. Bernoulli KL for Bernoulli
//                            rewards; Gaussian KL (mean + sqrt(2 sigma^2 ln t / n)) for real.
//   ucb1                     UCB1 (Auer et al. 2002): mean + sqrt(2 ln t / n), which assumes
//                            rewards in [0, 1]; for real rewards mean + sqrt(8 sigma^2 ln t / n)
//                            (the same bound for a variance sigma^2 instead of <= 1/4).
//   epsilon-greedy           a uniformly random active arm with probability epsilon, else the
//                            best mean (ties broken at random).
//   softmax                  Boltzmann exploration: arm i with probability proportional to
//                            exp(mean_i / temperature); temperature is in reward units.
//   exp3                     EXP3 (Auer et al. 2002), for adversarial rewards, which it assumes
//                            in [0, 1] (real rewards are clipped to [0, 1]). See Update for
//                            the probability used in the importance weight.
//   discounted-thompson      Thompson sampling whose evidence decays (Raj & Kalyani 2017): each
//                            Update first multiplies every arm's statistics (successes and
//                            failures, i.e. alpha - 1 and beta - 1) by `discount`, so old
//                            evidence fades toward the prior with a memory of about
//                            1 / (1 - discount) observations.
//   sliding-window-thompson  Thompson sampling on the last `window` observations (all arms
//                            together), kept in a ring buffer.
//
// Here n is an arm's number of observations, t the total number of observations over all
// arms, and sigma^2 = (M2 + v) / n the arm's variance estimate with the same one
// pseudo-observation as Thompson's. Arms that have never been observed are tried first, in a
// random order, by the index policies (klucb, ucb1), epsilon-greedy, softmax, and Thompson on
// real rewards (whose prior is improper); Thompson on Bernoulli rewards and EXP3 need no such
// rule. Index policies are deterministic given their statistics: under delayed feedback they
// pull the same arm until a reward arrives (prefer Thompson sampling there).
//
// State and replay: Select never changes the policy's state (only the Rng's). Update is a
// deterministic function of the state, the arm and the reward, computed the same way on
// every machine, so replaying the same Updates in order onto a policy created with the same
// options rebuilds its state bit for bit. Serialize/Deserialize round-trip the state exactly.
//
// Cost: Select is O(active arms) and Update O(1) (except EXP3, O(arms), and
// sliding-window Thompson, which recounts its window every `window` updates: O(1)
// amortised); neither allocates once the policy has seen its arms (AddArm and the first
// `window` updates of sliding-window Thompson grow vectors). One Select + Update, 2 / 10
// Bernoulli arms (bandit_benchmark, one core): thompson and its variants ~80 / ~360 ns,
// klucb ~550 / ~2900 ns (a Newton solve per contending arm), ucb1 ~30 / ~70 ns,
// epsilon-greedy ~17 / ~31 ns, softmax ~44 / ~150 ns, exp3 ~27 / ~140 ns.
//
// Thread safety: a Policy is not thread-safe; callers serialise access (e.g. one mutex per
// experiment). Different Policy objects may be used concurrently. Free functions are
// thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bandit/rng.hpp"
#include "core/status.hpp"

namespace evo::bandit {

// Bernoulli: rewards are 0 or 1 (a fraction in [0, 1] counts as a fractional success).
// Real: any finite number.
enum class RewardType { kBernoulli, kReal };
// "bernoulli" | "real"; InvalidArgument otherwise.
StatusOr<RewardType> ParseRewardType(std::string_view name);
std::string_view RewardTypeName(RewardType type);

enum class PolicyType {
  kThompson,
  kKlUcb,
  kUcb1,
  kEpsilonGreedy,
  kSoftmax,
  kExp3,
  kDiscountedThompson,
  kSlidingWindowThompson,
};
// "thompson" | "klucb" | "ucb1" | "epsilon-greedy" | "softmax" | "exp3" |
// "discounted-thompson" | "sliding-window-thompson"; InvalidArgument (listing them) otherwise.
StatusOr<PolicyType> ParsePolicyType(std::string_view name);
std::string_view PolicyTypeName(PolicyType type);
// True for the policies with a Bayesian posterior (the three Thompson samplings): their
// ArmEstimate interval is a credible interval, otherwise a confidence interval.
bool IsBayesian(PolicyType type);

struct PolicyOptions {
  PolicyType type = PolicyType::kThompson;
  double epsilon = 0.1;      // epsilon-greedy: exploration probability, [0, 1]
  double temperature = 0.1;  // softmax: in reward units, > 0
  double gamma = 0.1;        // exp3: exploration rate, (0, 1]
  double klucb_c = 0;        // klucb: weight of ln ln t in the exploration function, >= 0
  // discounted-thompson: each Update multiplies all old evidence by this, (0, 1]; the
  // memory is about 1 / (1 - discount) observations.
  double discount = 0.9998;
  // sliding-window-thompson: only the last `window` observations (all arms together)
  // count, 1..10^7.
  int64_t window = 5000;
  // Both defaults forget on a scale of ~5000 observations: on (0.8, 0.9) with the means
  // swapped after 50,000 pulls they cut Thompson's regret by ~7x (evo bandit simulate),
  // the optimum being flat from ~2000 to ~5000 there. A service should scale them to the
  // number of observations over which its rewards may drift.
};
// OK, or InvalidArgument naming the field ("epsilon must be in [0, 1]"). Fields of other
// policy types are checked too, so that a stored options struct is valid whatever its type.
Status Validate(const PolicyOptions& options);

// What a policy knows about one arm.
struct ArmEstimate {
  double observations = 0;  // number of rewards observed (decayed or windowed for the
                            // non-stationary Thompson samplings)
  double reward_sum = 0;    // their sum (likewise)
  double mean = 0;          // reward_sum / observations; 0 when there is none
  // A 95 % interval for the arm's mean reward: the equal-tailed credible interval of the
  // posterior for the Thompson samplings (Bernoulli: Beta quantiles; real: Student t);
  // otherwise a confidence interval (Bernoulli: Wilson score; real: the same t interval).
  // Bernoulli arms with no observation get the prior's [0.025, 0.975] (Thompson) or [0, 1];
  // real arms with no observation get (-inf, +inf), which JSON cannot hold: render as null.
  double lo = 0;
  double hi = 0;
};

class Policy {
 public:
  // A policy for `arms` arms (may be 0; arms are added with AddArm). REQUIRES:
  // Validate(options).ok() (out-of-range values are clamped into range).
  static std::unique_ptr<Policy> Create(const PolicyOptions& options, RewardType reward_type,
                                        size_t arms);
  virtual ~Policy() = default;

  virtual const PolicyOptions& options() const = 0;
  // Changes the parameters (epsilon, temperature, gamma, klucb_c, discount), keeping what was
  // learned; the type and the sliding window stay as they are.
  virtual void Configure(const PolicyOptions& options) = 0;
  virtual RewardType reward_type() const = 0;
  virtual size_t arms() const = 0;
  // Total number of Updates so far (not decayed or windowed).
  virtual uint64_t updates() const = 0;

  // Appends an arm with no observations; its index is the old arms(). A new EXP3 arm starts
  // with the largest weight of the existing arms.
  virtual void AddArm() = 0;

  // Chooses one arm among those with active[i] != 0 (retired arms are passed as 0 and never
  // chosen). REQUIRES: active.size() == arms() and at least one arm active; otherwise returns
  // arms() (never a valid index). Changes only `rng`'s state.
  virtual size_t Select(std::span<const uint8_t> active, Rng& rng) = 0;

  // Records an observed reward for `arm`; a pull whose reward never came is observed as 0 by
  // the caller. Bernoulli: REQUIRES reward in [0, 1] (0 or 1 normally; values outside are
  // clamped). Real: REQUIRES finite. Calls with a non-finite reward or arm >= arms() are
  // ignored. EXP3 weighs the reward by 1 / p, p the arm's probability computed now over all
  // arms (retired ones included) rather than at the pull, so that Update depends on the
  // state alone; with immediate feedback and no retired arm this is exactly EXP3.
  virtual void Update(size_t arm, double reward) = 0;

  // REQUIRES: arm < arms().
  virtual ArmEstimate Estimate(size_t arm) const = 0;

  // One draw from the posterior of `arm`'s mean reward (for probability of being best by
  // Monte Carlo). Non-Bayesian policies use the Beta(1 + s, 1 + f) (Bernoulli) or the
  // Normal-Inverse-Gamma (real) posterior of their observed statistics, as Thompson would.
  // A real arm with no observation draws as if it had one at the mean of all observations.
  // REQUIRES: arm < arms().
  virtual double SamplePosterior(size_t arm, Rng& rng) const = 0;

  // True, with the parameters, when `arm`'s posterior (as SamplePosterior draws it) is
  // Beta(a, b): Bernoulli rewards. REQUIRES: arm < arms().
  virtual bool BetaPosterior(size_t arm, double& a, double& b) const = 0;

  // Appends a self-describing binary form of the whole state (options, reward type,
  // statistics, weights, window). A deserialized policy makes identical choices given the
  // same Rng state, and identical updates.
  virtual void Serialize(std::string& out) const = 0;
  // Reads what Serialize wrote (all of `bytes`). DataLoss when it is truncated, has
  // trailing bytes, or is corrupt (bad tag, version, enum, option, count or number); never
  // crashes or allocates more than the input can describe.
  static StatusOr<std::unique_ptr<Policy>> Deserialize(std::string_view bytes);
};

// The probability that each arm is best (its mean reward the largest), estimated from
// `samples` joint Monte Carlo draws of the active arms' posteriors (SamplePosterior);
// inactive arms get 0. When exactly two arms are active and both posteriors are Beta with
// integer parameters, the exact value is computed instead (ProbabilityBetaGreater). The
// result has arms() entries; each estimate's standard error is at most
// ProbabilityBestStandardError(samples). REQUIRES: active.size() == policy.arms(),
// samples >= 1.
std::vector<double> ProbabilityBest(const Policy& policy, std::span<const uint8_t> active,
                                    int samples, Rng& rng);
// sqrt(0.25 / samples): the largest standard error of a Monte Carlo probability estimate.
double ProbabilityBestStandardError(int samples);

// P(X > Y) for X ~ Beta(a1, b1), Y ~ Beta(a2, b2), in closed form (Evan Miller's sum, taken
// over the smallest of the four parameters, O(min(a1, b1, a2, b2)) flops, no
// cancellation-prone alternating terms). REQUIRES: positive integer parameters (as doubles,
// up to 2^53); returns NaN otherwise.
double ProbabilityBetaGreater(double a1, double b1, double a2, double b2);

// The p-quantile of Beta(a, b) (the inverse of the regularized incomplete beta function),
// accurate to ~1e-12. REQUIRES: 0 <= p <= 1, a, b > 0; NaN otherwise.
double BetaQuantile(double p, double a, double b);

// KL(Bernoulli(p) || Bernoulli(q)), with 0 ln 0 = 0; +inf when q is 0 or 1 and p differs.
double BernoulliKl(double p, double q);

// The KL-UCB index of an arm with mean `p` in [0, 1] after n > 0 observations: the largest
// q in [p, 1] with n * BernoulliKl(p, q) <= exploration, to ~1e-12.
double KlUcbIndex(double p, double n, double exploration);

}  // namespace evo::bandit
