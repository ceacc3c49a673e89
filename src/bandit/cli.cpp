#include "bandit/cli.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bandit/simulate.hpp"

namespace evo::bandit {
namespace {

using cli::Fail;
using cli::kExitUsage;

struct SimulateArgs {
  int runs = 100;
  int64_t horizon = 100000;
  uint64_t seed = 1;
  int threads = 0;
  std::vector<std::string> policies;
  std::string format = "text";
  bool quiet = false;
};

int SimulateCommand(const SimulateArgs& args) {
  cli::InitCommandLogging();
  SimulateOptions o;
  o.runs = args.runs;
  o.horizon = args.horizon;
  o.seed = args.seed;
  o.threads = args.threads > 0 ? args.threads
                               : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  for (const std::string& name : args.policies) {
    auto type = ParsePolicyType(name);
    if (!type.ok()) {
      return Fail(kExitUsage, Status(StatusCode::kInvalidArgument,
                                     "--policy: " + std::string(type.status().message())));
    }
    o.policies.push_back(*type);
  }
  if (Status s = Validate(o); !s.ok()) {
    return Fail(kExitUsage, s);
  }
  if (!args.quiet && args.format == "text") {
    o.progress = [](std::string_view line) {
      std::fprintf(stderr, "  %.*s\n", static_cast<int>(line.size()), line.data());
    };
  }
  auto report = args.format == "json" ? SimulateJson(o) : SimulateReport(o);
  if (!report.ok()) {
    return Fail(cli::ExitCodeFor(report.status()), report.status());
  }
  std::fwrite(report->data(), 1, report->size(), stdout);
  if (!report->empty() && report->back() != '\n') {
    std::fputc('\n', stdout);
  }
  return 0;
}

}  // namespace

void RegisterCli(CLI::App& app, cli::Commands& commands) {
  auto* bandit = app.add_subcommand("bandit", "Multi-armed bandits from the command line");
  bandit->require_subcommand(1);
  SimulateArgs& args = commands.Keep(SimulateArgs{});
  auto* simulate = bandit->add_subcommand(
      "simulate",
      "Run the policies on the standard Bernoulli instances (seeded, in process) and print "
      "mean regret +- standard error at T = 10^3, 10^4, 10^5 beside the Lai-Robbins bound C ln "
      "T, with rewards 1000 pulls late and with arm means that swap at T/2");
  simulate->add_option("--runs", args.runs, "Seeded runs per cell")->capture_default_str();
  simulate->add_option("--horizon", args.horizon, "Pulls per run (T)")->capture_default_str();
  simulate->add_option("--seed", args.seed, "First seed")->capture_default_str();
  simulate->add_option("--sim-threads", args.threads, "Threads (0 = cores)")->capture_default_str();
  simulate->add_option("--policy", args.policies,
                       "Policies of the stationary table (repeatable; default: all)");
  cli::AddFormatOption(*simulate, args.format);
  simulate->add_flag("--quiet", args.quiet, "No progress lines on stderr");
  commands.Add(simulate, [&args] { return SimulateCommand(args); });
}

}  // namespace evo::bandit
