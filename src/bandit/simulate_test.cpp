#include "bandit/simulate.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace evo::bandit {
namespace {

Instance TwoArms() { return {"(0.8, 0.9)", {0.8, 0.9}, false, 0}; }

PolicyOptions Options(PolicyType type) {
  PolicyOptions options;
  options.type = type;
  return options;
}

RegretCurve RunCell(const Instance& instance, PolicyType type, int runs, int64_t horizon,
                    uint64_t seed = 1, int threads = 2) {
  auto curve = Simulate(instance, Options(type), runs, horizon, seed, threads);
  EXPECT_TRUE(curve.ok()) << curve.status();
  return curve.ok() ? *curve : RegretCurve{};
}

TEST(Simulate, ThompsonHasLessRegretThanEpsilonGreedy) {
  const RegretCurve thompson = RunCell(TwoArms(), PolicyType::kThompson, 40, 5000);
  const RegretCurve greedy = RunCell(TwoArms(), PolicyType::kEpsilonGreedy, 40, 5000);
  ASSERT_EQ(thompson.checkpoints, (std::vector<int64_t>{1000, 5000}));
  EXPECT_LT(thompson.mean.back() + 2 * thompson.standard_error.back(),
            greedy.mean.back() - 2 * greedy.standard_error.back());
  // Regret only grows, and stays below always playing the worse arm.
  EXPECT_LE(thompson.mean[0], thompson.mean[1]);
  EXPECT_LT(thompson.mean[1], 0.1 * 5000);
  EXPECT_GT(thompson.standard_error[1], 0);
}

TEST(Simulate, IsDeterministicForASeedWhateverTheThreads) {
  const RegretCurve one = RunCell(TwoArms(), PolicyType::kThompson, 20, 2000, 7, 1);
  const RegretCurve two = RunCell(TwoArms(), PolicyType::kThompson, 20, 2000, 7, 2);
  const RegretCurve many = RunCell(TwoArms(), PolicyType::kThompson, 20, 2000, 7, 8);
  EXPECT_EQ(one.mean, two.mean);  // bit for bit
  EXPECT_EQ(one.standard_error, two.standard_error);
  EXPECT_EQ(one.mean, many.mean);
  EXPECT_NE(one.mean, RunCell(TwoArms(), PolicyType::kThompson, 20, 2000, 8, 2).mean);
}

TEST(Simulate, DelayedRewardsLeaveThePolicyBlindAtFirst) {
  Instance late = TwoArms();
  late.delay = 1000;
  const RegretCurve curve = RunCell(late, PolicyType::kThompson, 40, 3000);
  // No reward arrives in the first 1000 pulls: the arms are pulled alike, regret 1000 * 0.05.
  EXPECT_NEAR(curve.mean[0], 50, 3);
  const RegretCurve prompt = RunCell(TwoArms(), PolicyType::kThompson, 40, 3000);
  EXPECT_GT(curve.mean.back(), prompt.mean.back());
}

TEST(Simulate, SlidingWindowRecoversFromASwitchThatStationaryThompsonDoesNot) {
  Instance swapped = TwoArms();
  swapped.switching = true;
  const RegretCurve stationary = RunCell(swapped, PolicyType::kThompson, 20, 20000);
  PolicyOptions sliding = Options(PolicyType::kSlidingWindowThompson);
  sliding.window = 1000;
  auto adaptive = Simulate(swapped, sliding, 20, 20000, 1, 2);
  ASSERT_TRUE(adaptive.ok());
  // After the swap at 10,000 Thompson keeps pulling the formerly best arm for long.
  EXPECT_GT(stationary.mean.back(), 300);
  EXPECT_LT(adaptive->mean.back(), 0.5 * stationary.mean.back());
}

TEST(Simulate, RejectsBadInstancesAndOptions) {
  EXPECT_EQ(
      Simulate({"none", {}, false, 0}, Options(PolicyType::kThompson), 1, 10, 1, 1).status().code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(Simulate({"bad", {0.5, 1.5}, false, 0}, Options(PolicyType::kThompson), 1, 10, 1, 1)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Simulate(TwoArms(), Options(PolicyType::kThompson), 0, 10, 1, 1).status().code(),
            StatusCode::kInvalidArgument);

  EXPECT_TRUE(Validate(SimulateOptions{}).ok());
  struct Case {
    void (*mutate)(SimulateOptions&);
    std::string_view field;
  };
  const Case cases[] = {
      {[](SimulateOptions& o) { o.runs = 0; }, "runs"},
      {[](SimulateOptions& o) { o.horizon = 0; }, "horizon"},
      {[](SimulateOptions& o) { o.threads = 0; }, "threads"},
      {[](SimulateOptions& o) { o.delay = 0; }, "delay"},
      {[](SimulateOptions& o) { o.delay = o.horizon + 1; }, "delay"},
      {[](SimulateOptions& o) { o.policy_options.epsilon = 2; }, "epsilon"},
  };
  for (const Case& c : cases) {
    SimulateOptions options;
    c.mutate(options);
    const Status s = Validate(options);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_EQ(s.message().substr(0, c.field.size()), c.field) << s.message();
  }
}

TEST(LaiRobbins, ConstantMatchesTheDefinition) {
  const double kl = 0.8 * std::log(0.8 / 0.9) + 0.2 * std::log(0.2 / 0.1);
  const std::vector<double> two = {0.8, 0.9};
  EXPECT_NEAR(LaiRobbinsConstant(two), 0.1 / kl, 1e-12);
  EXPECT_NEAR(LaiRobbinsConstant(two) * std::log(1e5), 25.93, 0.01);
  const std::vector<double> equal = {0.5, 0.5};
  EXPECT_EQ(LaiRobbinsConstant(equal), 0);
  const std::vector<double> certain = {0.5, 1.0};
  EXPECT_EQ(LaiRobbinsConstant(certain), 0);  // KL(0.5, 1) is infinite
}

TEST(Checkpoints, ArePowersOfTenThenTheHorizon) {
  EXPECT_EQ(Checkpoints(100000), (std::vector<int64_t>{1000, 10000, 100000}));
  EXPECT_EQ(Checkpoints(25000), (std::vector<int64_t>{1000, 10000, 25000}));
  EXPECT_EQ(Checkpoints(500), (std::vector<int64_t>{500}));
}

TEST(SimulateReport, HasEverySectionAndTheTargets) {
  SimulateOptions options;
  options.runs = 3;
  options.horizon = 2000;
  options.delay = 500;
  int progress_lines = 0;
  options.progress = [&](std::string_view) { ++progress_lines; };
  auto results = RunSimulations(options);
  ASSERT_TRUE(results.ok()) << results.status();
  // 4 instances x 6 policies, 2 x (undelayed, delayed), 3 switching.
  EXPECT_EQ(results->cells.size(), 24u + 4 + 3);
  EXPECT_EQ(progress_lines, 24 + 2 + 3);  // the undelayed cells are reused
  const std::string text = FormatReport(*results);
  for (const char* needle :
       {"1. Stationary", "2. Delayed", "3. Switching", "(0.03, 0.04, 0.05)", "9 x 0.08 + 0.10",
        "C ln T (Lai-Robbins)", "klucb", "epsilon-greedy 0.1", "exp3", "softmax",
        "discounted-thompson", "sliding-window-thompson", "blind floor", "NOT APPLICABLE"}) {
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
  }
  const auto json = nlohmann::json::parse(FormatJson(*results));
  EXPECT_EQ(json["cells"].size(), 31u);
  EXPECT_EQ(json["horizon"], 2000);
  EXPECT_FALSE(json["targetsApplicable"].get<bool>());
  EXPECT_EQ(json["targets"].size(), 6u + 2 + 2);
  const auto& first = json["cells"][0];
  EXPECT_EQ(first["policy"], "thompson");
  EXPECT_EQ(first["checkpoints"], (std::vector<int64_t>{1000, 2000}));
  EXPECT_EQ(first["regret"].size(), 2u);

  SimulateOptions only;
  only.runs = 2;
  only.horizon = 1000;
  only.delayed = false;
  only.switching = false;
  only.policies = {PolicyType::kUcb1};
  auto report = SimulateReport(only);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->find("thompson"), std::string::npos);
  EXPECT_NE(report->find("ucb1"), std::string::npos);
  SimulateOptions bad;
  bad.runs = -1;
  EXPECT_EQ(SimulateJson(bad).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace evo::bandit
