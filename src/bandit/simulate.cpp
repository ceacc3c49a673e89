#include "bandit/simulate.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <system_error>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

namespace evo::bandit {
namespace {

// The reference regrets of Thompson sampling at T = 10^5, per standard instance.
constexpr double kThompsonReference[] = {14.6, 48.1, 50.3, 311};
constexpr double kLaiRobbinsFactor = 1.2;  // default policy <= 1.2 C ln T on two-armed instances
constexpr double kDelayFactor = 1.2;       // delayed regret <= 1.2 x undelayed
constexpr double kSwitchFactor = 0.5;      // non-stationary <= 0.5 x Thompson when switching
constexpr int64_t kTargetHorizon = 100000;
constexpr int kTargetRuns = 100;

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string Printf(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Printf(const char* format, ...) {
  char buf[512];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  return std::string(buf, static_cast<size_t>(std::clamp(n, 0, static_cast<int>(sizeof(buf)) - 1)));
}

// 100000 -> "100,000".
std::string Grouped(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) {
      out += ',';
    }
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string PolicyLabel(const PolicyOptions& p) {
  std::string name(PolicyTypeName(p.type));
  switch (p.type) {
    case PolicyType::kEpsilonGreedy:
      return name + Printf(" %g", p.epsilon);
    case PolicyType::kSoftmax:
      return name + Printf(" t=%g", p.temperature);
    case PolicyType::kExp3:
      return name + Printf(" g=%g", p.gamma);
    case PolicyType::kDiscountedThompson:
      return name + Printf(" %g", p.discount);
    case PolicyType::kSlidingWindowThompson:
      return name + " " + Grouped(p.window);
    default:
      return name;
  }
}

// One run: the pseudo-regret at each checkpoint.
void RunOnce(const Instance& instance, const PolicyOptions& options, int64_t horizon, uint64_t seed,
             const std::vector<int64_t>& checkpoints, double* out) {
  Rng rng(seed);
  const size_t k = instance.means.size();
  std::unique_ptr<Policy> policy = Policy::Create(options, RewardType::kBernoulli, k);
  const std::vector<uint8_t> active(k, 1);
  std::vector<double> means = instance.means;
  const double best = *std::max_element(means.begin(), means.end());  // also after the swap
  struct Pending {
    uint32_t arm;
    double reward;
  };
  const int64_t delay = instance.delay;
  std::vector<Pending> pending(static_cast<size_t>(delay));
  const int64_t swap_at = instance.switching ? horizon / 2 : -1;
  double regret = 0;
  size_t next = 0;
  for (int64_t t = 0; t < horizon; ++t) {
    if (t == swap_at) {
      std::reverse(means.begin(), means.end());
    }
    if (delay > 0 && t >= delay) {
      const Pending& p = pending[static_cast<size_t>(t % delay)];
      policy->Update(p.arm, p.reward);
    }
    const size_t arm = policy->Select(active, rng);
    const double reward = rng.Uniform() < means[arm] ? 1.0 : 0.0;
    regret += best - means[arm];
    if (delay == 0) {
      policy->Update(arm, reward);
    } else {
      pending[static_cast<size_t>(t % delay)] = {static_cast<uint32_t>(arm), reward};
    }
    while (next < checkpoints.size() && checkpoints[next] == t + 1) {
      out[next++] = regret;
    }
  }
}

Status ValidateInstance(const Instance& instance) {
  if (instance.means.empty()) {
    return InvalidArgumentError("instance " + instance.name + " has no arm");
  }
  for (double m : instance.means) {
    if (!(m >= 0 && m <= 1)) {
      return InvalidArgumentError("instance " + instance.name + ": means must be in [0, 1]");
    }
  }
  if (instance.delay < 0) {
    return InvalidArgumentError("instance " + instance.name + ": delay must be >= 0");
  }
  return OkStatus();
}

// Where a cell is in the results (nullptr when absent).
const SimulateCell* FindCell(const SimulateResults& r, std::string_view section,
                             std::string_view instance, PolicyType type, int64_t delay) {
  for (const SimulateCell& c : r.cells) {
    if (c.section == section && c.instance.name == instance && c.policy.type == type &&
        c.instance.delay == delay) {
      return &c;
    }
  }
  return nullptr;
}

double Final(const SimulateCell& c) { return c.regret.mean.empty() ? 0 : c.regret.mean.back(); }
double FinalError(const SimulateCell& c) {
  return c.regret.standard_error.empty() ? 0 : c.regret.standard_error.back();
}

std::string PlusMinus(double mean, double se) { return Printf("%.1f ± %.1f", mean, se); }

// Pads to `width` display columns ("±" is two bytes, one column).
std::string Pad(const std::string& s, size_t width, bool right = false) {
  size_t columns = 0;
  for (unsigned char c : s) {
    columns += (c & 0xc0) != 0x80 ? 1 : 0;
  }
  const std::string fill(columns < width ? width - columns : 0, ' ');
  return right ? fill + s : s + fill;
}

struct Target {
  std::string name;
  double value;
  double error;  // the value's standard error
  double limit;
  bool ok;
};

std::vector<Target> Targets(const SimulateResults& r) {
  std::vector<Target> out;
  const std::vector<Instance> instances = StandardInstances();
  for (size_t i = 0; i < instances.size(); ++i) {
    const SimulateCell* c = FindCell(r, "stationary", instances[i].name, PolicyType::kThompson, 0);
    if (c == nullptr) {
      continue;
    }
    const double v = Final(*c);
    const double se = FinalError(*c);
    out.push_back({"thompson " + instances[i].name + " regret <= reference", v, se,
                   kThompsonReference[i], v <= kThompsonReference[i]});
    if (instances[i].means.size() == 2) {
      const double bound = LaiRobbinsConstant(instances[i].means) *
                           std::log(static_cast<double>(r.horizon)) * kLaiRobbinsFactor;
      out.push_back(
          {"thompson " + instances[i].name + " regret <= 1.2 C ln T", v, se, bound, v <= bound});
    }
  }
  for (const Instance& inst : instances) {
    const SimulateCell* base = FindCell(r, "delayed", inst.name, PolicyType::kThompson, 0);
    const SimulateCell* late = FindCell(r, "delayed", inst.name, PolicyType::kThompson, r.delay);
    if (base != nullptr && late != nullptr) {
      const double limit = kDelayFactor * Final(*base);
      out.push_back(
          {"thompson " + inst.name + " delayed by " + Grouped(r.delay) + " <= 1.2 x undelayed",
           Final(*late), FinalError(*late), limit, Final(*late) <= limit});
    }
  }
  const std::string switching = StandardInstances()[0].name + " swapped at T/2";
  const SimulateCell* base = FindCell(r, "switching", switching, PolicyType::kThompson, 0);
  for (PolicyType t : {PolicyType::kDiscountedThompson, PolicyType::kSlidingWindowThompson}) {
    const SimulateCell* c = FindCell(r, "switching", switching, t, 0);
    if (base != nullptr && c != nullptr) {
      const double limit = kSwitchFactor * Final(*base);
      out.push_back({std::string(PolicyTypeName(t)) + " switching <= 0.5 x thompson", Final(*c),
                     FinalError(*c), limit, Final(*c) <= limit});
    }
  }
  return out;
}

}  // namespace

std::vector<Instance> StandardInstances() {
  std::vector<double> ten(9, 0.08);
  ten.push_back(0.10);
  return {
      {"(0.8, 0.9)", {0.8, 0.9}, false, 0},
      {"(0.45, 0.5)", {0.45, 0.5}, false, 0},
      {"(0.03, 0.04, 0.05)", {0.03, 0.04, 0.05}, false, 0},
      {"9 x 0.08 + 0.10", ten, false, 0},
  };
}

Status Validate(const SimulateOptions& options) {
  if (options.runs < 1 || options.runs > 100000) {
    return InvalidArgumentError("runs must be in [1, 100000]");
  }
  if (options.horizon < 1 || options.horizon > 1'000'000'000) {
    return InvalidArgumentError("horizon must be in [1, 10^9]");
  }
  if (options.threads < 1 || options.threads > 256) {
    return InvalidArgumentError("threads must be in [1, 256]");
  }
  if (options.delay < 1 || options.delay > options.horizon) {
    return InvalidArgumentError("delay must be in [1, horizon]");
  }
  PolicyOptions p = options.policy_options;
  p.type = PolicyType::kThompson;
  EVO_RETURN_IF_ERROR(Validate(p));
  for (PolicyType t : options.policies) {
    if (static_cast<size_t>(t) > static_cast<size_t>(PolicyType::kSlidingWindowThompson)) {
      return InvalidArgumentError("policies has an unknown policy type");
    }
  }
  return OkStatus();
}

std::vector<int64_t> Checkpoints(int64_t horizon) {
  std::vector<int64_t> out;
  for (int64_t c = 1000; c <= horizon; c *= 10) {
    out.push_back(c);
  }
  if (out.empty() || out.back() != horizon) {
    out.push_back(horizon);
  }
  return out;
}

StatusOr<RegretCurve> Simulate(const Instance& instance, const PolicyOptions& policy, int runs,
                               int64_t horizon, uint64_t seed, int threads) {
  EVO_RETURN_IF_ERROR(ValidateInstance(instance));
  EVO_RETURN_IF_ERROR(Validate(policy));
  if (runs < 1 || horizon < 1 || threads < 1) {
    return InvalidArgumentError("runs, horizon and threads must be positive");
  }
  RegretCurve curve;
  curve.checkpoints = Checkpoints(horizon);
  const size_t n = curve.checkpoints.size();
  std::vector<double> per_run(static_cast<size_t>(runs) * n);
  std::atomic<int> next_run{0};
  auto work = [&] {
    for (int r = next_run++; r < runs; r = next_run++) {
      RunOnce(instance, policy, horizon, SeedFor(seed, static_cast<uint64_t>(r)), curve.checkpoints,
              &per_run[static_cast<size_t>(r) * n]);
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < std::min(threads, runs); ++i) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // fewer threads; the calling thread still does the rest
    }
  }
  work();
  for (std::thread& t : pool) {
    t.join();
  }
  curve.mean.assign(n, 0);
  curve.standard_error.assign(n, 0);
  for (size_t c = 0; c < n; ++c) {
    double sum = 0;
    for (int r = 0; r < runs; ++r) {
      sum += per_run[static_cast<size_t>(r) * n + c];
    }
    const double mean = sum / runs;
    double squares = 0;
    for (int r = 0; r < runs; ++r) {
      const double d = per_run[static_cast<size_t>(r) * n + c] - mean;
      squares += d * d;
    }
    curve.mean[c] = mean;
    curve.standard_error[c] = runs > 1 ? std::sqrt(squares / (runs - 1) / runs) : 0;
  }
  return curve;
}

double LaiRobbinsConstant(std::span<const double> means) {
  if (means.empty()) {
    return 0;
  }
  const double best = *std::max_element(means.begin(), means.end());
  double c = 0;
  for (double m : means) {
    if (m < best) {
      const double kl = BernoulliKl(m, best);
      c += std::isfinite(kl) ? (best - m) / kl : 0;
    }
  }
  return c;
}

StatusOr<SimulateResults> RunSimulations(const SimulateOptions& options) {
  EVO_RETURN_IF_ERROR(Validate(options));
  const Clock::time_point start = Clock::now();
  SimulateResults results;
  results.runs = options.runs;
  results.horizon = options.horizon;
  results.seed = options.seed;
  results.threads = options.threads;
  results.delay = options.delay;
  std::vector<PolicyType> policies = options.policies;
  if (policies.empty()) {
    policies = {PolicyType::kThompson,      PolicyType::kKlUcb,   PolicyType::kUcb1,
                PolicyType::kEpsilonGreedy, PolicyType::kSoftmax, PolicyType::kExp3};
  }
  auto with_type = [&](PolicyType type) {
    PolicyOptions p = options.policy_options;
    p.type = type;
    return p;
  };
  auto run = [&](std::string section, const Instance& instance, PolicyType type) -> Status {
    const PolicyOptions policy = with_type(type);
    // The undelayed Thompson of the delayed section is the stationary section's cell.
    if (const SimulateCell* same =
            FindCell(results, "stationary", instance.name, type, instance.delay);
        same != nullptr && !instance.switching && section != "stationary") {
      SimulateCell copy = *same;
      copy.section = std::move(section);
      results.cells.push_back(std::move(copy));
      return OkStatus();
    }
    const Clock::time_point cell_start = Clock::now();
    EVO_ASSIGN_OR_RETURN(
        RegretCurve curve,
        Simulate(instance, policy, options.runs, options.horizon, options.seed, options.threads));
    results.cells.push_back(
        {std::move(section), instance, policy, std::move(curve), Seconds(cell_start)});
    const SimulateCell& cell = results.cells.back();
    if (options.progress) {
      options.progress(Printf(
          "%-10s %-24s %-32s regret %s  (%.1f s)", cell.section.c_str(), cell.instance.name.c_str(),
          (PolicyLabel(policy) + (instance.delay > 0 ? ", delay " + Grouped(instance.delay) : ""))
              .c_str(),
          PlusMinus(Final(cell), FinalError(cell)).c_str(), cell.seconds));
    }
    return OkStatus();
  };
  const std::vector<Instance> instances = StandardInstances();
  if (options.stationary) {
    for (const Instance& instance : instances) {
      for (PolicyType type : policies) {
        EVO_RETURN_IF_ERROR(run("stationary", instance, type));
      }
    }
  }
  if (options.delayed) {
    for (const Instance& instance : instances) {
      if (instance.means.size() != 2) {
        continue;
      }
      Instance late = instance;
      late.delay = options.delay;
      EVO_RETURN_IF_ERROR(run("delayed", instance, PolicyType::kThompson));
      EVO_RETURN_IF_ERROR(run("delayed", late, PolicyType::kThompson));
    }
  }
  if (options.switching) {
    Instance swapped = instances[0];
    swapped.name += " swapped at T/2";
    swapped.switching = true;
    for (PolicyType type : {PolicyType::kThompson, PolicyType::kDiscountedThompson,
                            PolicyType::kSlidingWindowThompson}) {
      EVO_RETURN_IF_ERROR(run("switching", swapped, type));
    }
  }
  results.seconds = Seconds(start);
  return results;
}

std::string FormatReport(const SimulateResults& r) {
  std::string out;
  const std::vector<int64_t> checkpoints = Checkpoints(r.horizon);
  out += Printf(
      "evo bandit simulate: %d seeded runs per cell, T = %s, seed %llu, %d threads, "
      "%.1f s\n",
      r.runs, Grouped(r.horizon).c_str(), static_cast<unsigned long long>(r.seed), r.threads,
      r.seconds);
  out += "Mean pseudo-regret (sum over steps of mu* - mu of the chosen arm) ± standard error.\n";
  out +=
      "C ln T: the Lai-Robbins lower bound, C = sum over suboptimal arms of "
      "(mu* - mu_i) / KL(mu_i, mu*).\n";

  constexpr size_t kLabel = 34;
  constexpr size_t kColumn = 18;
  auto header = [&](const std::string& first) {
    std::string line = Pad(first, kLabel);
    for (int64_t c : checkpoints) {
      line += Pad("T = " + Grouped(c), kColumn, true);
    }
    return line + "\n";
  };
  auto curve_row = [&](const std::string& label, const RegretCurve& curve) {
    std::string line = Pad(label, kLabel);
    for (size_t i = 0; i < curve.mean.size(); ++i) {
      line += Pad(PlusMinus(curve.mean[i], curve.standard_error[i]), kColumn, true);
    }
    return line;
  };

  bool any = false;
  for (const Instance& instance : StandardInstances()) {
    bool first = true;
    for (const SimulateCell& c : r.cells) {
      if (c.section != "stationary" || c.instance.name != instance.name) {
        continue;
      }
      if (first) {
        if (!any) {
          out += "\n1. Stationary instances\n";
          any = true;
        }
        const double constant = LaiRobbinsConstant(instance.means);
        out += "\n";
        out += header(instance.name + Printf("   C = %.3f", constant));
        std::string bound = Pad("C ln T (Lai-Robbins)", kLabel);
        for (int64_t cp : checkpoints) {
          bound += Pad(Printf("%.1f", constant * std::log(static_cast<double>(cp))), kColumn, true);
        }
        out += bound + "\n";
        first = false;
      }
      out += curve_row(PolicyLabel(c.policy), c.regret) + "\n";
    }
  }

  bool delayed_header = false;
  for (const Instance& instance : StandardInstances()) {
    const SimulateCell* base = FindCell(r, "delayed", instance.name, PolicyType::kThompson, 0);
    const SimulateCell* late =
        FindCell(r, "delayed", instance.name, PolicyType::kThompson, r.delay);
    if (base == nullptr || late == nullptr) {
      continue;
    }
    if (!delayed_header) {
      out += "\n2. Delayed rewards: thompson, every reward observed " + Grouped(r.delay) +
             " pulls late\n";
      out +=
          "   (blind floor: before the first reward arrives, a policy that treats the arms "
          "alike pays\n    delay x (mu* - mean mu) in expectation, whatever it does)\n";
      delayed_header = true;
    }
    out += "\n";
    out += header(instance.name);
    out += curve_row("undelayed", base->regret) + "\n";
    out += curve_row("delayed " + Grouped(r.delay), late->regret) + "\n";
    std::string ratio = Pad("ratio delayed / undelayed", kLabel);
    for (size_t i = 0; i < base->regret.mean.size(); ++i) {
      ratio += Pad(Printf("%.2f", late->regret.mean[i] / base->regret.mean[i]), kColumn, true);
    }
    out += ratio + "\n";
    double best = 0;
    double sum = 0;
    for (double m : instance.means) {
      best = std::max(best, m);
      sum += m;
    }
    const double floor =
        static_cast<double>(r.delay) * (best - sum / static_cast<double>(instance.means.size()));
    out += Pad("blind floor delay x (mu* - mean mu)", kLabel) +
           Pad(Printf("%.1f", floor), kColumn, true) + "\n";
  }

  bool switching_header = false;
  const SimulateCell* switch_base = nullptr;
  for (const SimulateCell& c : r.cells) {
    if (c.section != "switching") {
      continue;
    }
    if (!switching_header) {
      out += "\n3. Switching: " + c.instance.name + " = pull " + Grouped(r.horizon / 2) +
             " (regret against the current best arm)\n\n";
      out += header("policy");
      switching_header = true;
    }
    if (c.policy.type == PolicyType::kThompson) {
      switch_base = &c;
    }
    std::string line = curve_row(PolicyLabel(c.policy), c.regret);
    if (switch_base != nullptr && &c != switch_base && Final(*switch_base) > 0) {
      line += Printf("   %.2f x thompson", Final(c) / Final(*switch_base));
    }
    out += line + "\n";
  }

  const std::vector<Target> targets = Targets(r);
  if (!targets.empty()) {
    out += "\nTargets (issue 4; stated for >= 100 runs at T = 100,000)";
    if (r.runs < kTargetRuns || r.horizon != kTargetHorizon) {
      out += " -- NOT APPLICABLE to this run's runs/horizon";
    }
    out += "\n";
    for (const Target& t : targets) {
      out += Pad(t.name, 56) + Pad(PlusMinus(t.value, t.error), 16, true) +
             "  <= " + Pad(Printf("%.1f", t.limit), 7) + "  " + (t.ok ? "ok" : "MISSED");
      if (!t.ok && t.error > 0) {
        out += Printf(" (by %.1f standard errors)", (t.value - t.limit) / t.error);
      }
      out += "\n";
    }
  }
  return out;
}

std::string FormatJson(const SimulateResults& r) {
  nlohmann::json doc;
  doc["runs"] = r.runs;
  doc["horizon"] = r.horizon;
  doc["seed"] = r.seed;
  doc["threads"] = r.threads;
  doc["delay"] = r.delay;
  doc["seconds"] = r.seconds;
  nlohmann::json cells = nlohmann::json::array();
  for (const SimulateCell& c : r.cells) {
    nlohmann::json cell;
    cell["section"] = c.section;
    cell["instance"] = c.instance.name;
    cell["means"] = c.instance.means;
    cell["switching"] = c.instance.switching;
    cell["delay"] = c.instance.delay;
    cell["policy"] = PolicyTypeName(c.policy.type);
    cell["policyLabel"] = PolicyLabel(c.policy);
    cell["laiRobbinsC"] = LaiRobbinsConstant(c.instance.means);
    cell["checkpoints"] = c.regret.checkpoints;
    cell["regret"] = c.regret.mean;
    cell["standardError"] = c.regret.standard_error;
    cell["seconds"] = c.seconds;
    cells.push_back(std::move(cell));
  }
  doc["cells"] = std::move(cells);
  nlohmann::json targets = nlohmann::json::array();
  for (const Target& t : Targets(r)) {
    targets.push_back({{"name", t.name},
                       {"value", t.value},
                       {"standardError", t.error},
                       {"limit", t.limit},
                       {"ok", t.ok}});
  }
  doc["targets"] = std::move(targets);
  doc["targetsApplicable"] = r.runs >= kTargetRuns && r.horizon == kTargetHorizon;
  return doc.dump();
}

StatusOr<std::string> SimulateReport(const SimulateOptions& options) {
  EVO_ASSIGN_OR_RETURN(SimulateResults results, RunSimulations(options));
  return FormatReport(results);
}

StatusOr<std::string> SimulateJson(const SimulateOptions& options) {
  EVO_ASSIGN_OR_RETURN(SimulateResults results, RunSimulations(options));
  return FormatJson(results);
}

}  // namespace evo::bandit
