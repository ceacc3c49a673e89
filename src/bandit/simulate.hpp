// The simulator behind `evo bandit simulate`: policies run in process on Bernoulli instances,
// many seeded runs, reporting the mean pseudo-regret (the sum over steps of mu* - mu of the
// chosen arm; mu* the best mean at that step) +- its standard error at T = 10^3, 10^4, 10^5,
// beside the Lai & Robbins (1985) asymptotic lower bound C ln T, where
// C = sum over suboptimal arms i of (mu* - mu_i) / KL(mu_i, mu*).
//
// Run r of a cell draws everything (policy randomness and rewards) from
// Rng(SeedFor(seed, r)), so results depend on the seed and the options only, not on the
// number of threads, and are bit-identical across machines (rng.hpp).
//
// The report (SimulateReport) has three sections:
//  1. stationary: the instances (0.8, 0.9), (0.45, 0.5), (0.03, 0.04, 0.05) and nine arms at
//     0.08 with one at 0.10, each with the chosen policies (default: thompson, klucb, ucb1,
//     epsilon-greedy 0.1, softmax, exp3);
//  2. delayed: Thompson on the two-armed instances with every reward delivered `delay` pulls
//     late (a FIFO: pull t's reward is observed just before pull t + delay) beside its
//     undelayed regret. Before the first reward arrives every policy is blind; one that
//     treats the arms alike pays delay * (mu* - mean of the mu_i) there, which the report
//     prints as the floor of the delayed regret;
//  3. switching: (0.8, 0.9) whose means are swapped at T / 2 (regret against the current
//     best arm), Thompson against discounted and sliding-window Thompson.
// and ends with the targets for the default policy, each marked ok or MISSED (they
// are stated for runs >= 100 and T = 10^5).
//
// Thread safety: all functions are thread-safe; each uses `threads` threads of its own.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bandit/policy.hpp"
#include "core/status.hpp"

namespace evo::bandit {

// A Bernoulli bandit instance.
struct Instance {
  std::string name;           // e.g. "(0.8, 0.9)"
  std::vector<double> means;  // each in [0, 1], at least one
  bool switching = false;     // the means are reversed from step horizon / 2 on
  int64_t delay = 0;          // rewards are observed this many pulls late, >= 0
};

// The four stationary instances of the issue, in report order.
std::vector<Instance> StandardInstances();

struct SimulateOptions {
  int runs = 100;            // seeded runs per cell, 1..100000
  int64_t horizon = 100000;  // pulls per run, 1..10^9
  uint64_t seed = 1;
  int threads = 2;  // 1..256
  // The policies of the stationary section (each with policy_options' parameters); empty =
  // thompson, klucb, ucb1, epsilon-greedy, softmax, exp3.
  std::vector<PolicyType> policies;
  PolicyOptions policy_options;  // parameters for every policy (its type field is ignored)
  int64_t delay = 1000;          // the delayed section's delay, >= 1
  bool stationary = true;        // which sections to run
  bool delayed = true;
  bool switching = true;
  // Called (from the calling thread) after each cell with a one-line description; may be
  // empty.
  std::function<void(std::string_view)> progress;
};
// OK, or InvalidArgument naming the field.
Status Validate(const SimulateOptions& options);

// Mean pseudo-regret over the runs at each checkpoint: the powers of ten from 10^3 up to the
// horizon, then the horizon itself when it is not one of them.
struct RegretCurve {
  std::vector<int64_t> checkpoints;
  std::vector<double> mean;
  std::vector<double> standard_error;  // sample standard deviation / sqrt(runs); 0 for 1 run
};
std::vector<int64_t> Checkpoints(int64_t horizon);

// Runs `policy` on `instance` for `runs` seeded runs of `horizon` pulls on `threads` threads.
// InvalidArgument for bad options or an instance with no arm, a mean outside [0, 1] or a
// negative delay.
StatusOr<RegretCurve> Simulate(const Instance& instance, const PolicyOptions& policy, int runs,
                               int64_t horizon, uint64_t seed, int threads);

// The Lai-Robbins constant C = sum over arms with mu_i < mu* of (mu* - mu_i) /
// KL(mu_i, mu*) (Bernoulli KL): the asymptotic regret of a consistent policy is at least
// C ln T. 0 when all means are equal; an arm's term is 0 when mu* = 1 (KL infinite).
// REQUIRES: means in [0, 1].
double LaiRobbinsConstant(std::span<const double> means);

// One simulated (instance, policy) pair of the report.
struct SimulateCell {
  std::string section;  // "stationary" | "delayed" | "switching"
  Instance instance;
  PolicyOptions policy;
  RegretCurve regret;
  double seconds = 0;  // wall time of the cell
};

struct SimulateResults {
  int runs = 0;
  int64_t horizon = 0;
  uint64_t seed = 0;
  int threads = 0;
  int64_t delay = 0;
  std::vector<SimulateCell> cells;
  double seconds = 0;  // wall time of all cells
};

// Runs every cell the options select. InvalidArgument for bad options.
StatusOr<SimulateResults> RunSimulations(const SimulateOptions& options);

// The human-readable tables (see the top of this file).
std::string FormatReport(const SimulateResults& results);
// The same as one JSON document: {"runs","horizon","seed","threads","delay","seconds",
// "cells":[{"section","instance","means","switching","delay","policy","laiRobbinsC",
// "checkpoints":[...],"regret":[...],"standardError":[...],"seconds"}],
// "targets":[{"name","value","limit","ok"}]}.
std::string FormatJson(const SimulateResults& results);

// RunSimulations then FormatReport / FormatJson.
StatusOr<std::string> SimulateReport(const SimulateOptions& options);
StatusOr<std::string> SimulateJson(const SimulateOptions& options);

}  // namespace evo::bandit
