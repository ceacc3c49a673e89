#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "bandit/bandit.hpp"
#include "store/store.hpp"

namespace evo::bandit {
namespace {

using std::chrono::seconds;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("evo-bandit-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Reopen();
  }
  void TearDown() override {
    service_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Closes and opens everything again on the same files (a restart).
  void Reopen() {
    service_.reset();
    db_.reset();
    auto db = store::OpenSqlite({.path = (dir_ / "evo.db").string()}, clock_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    ServiceOptions options;
    options.seed = 42;
    options.probability_samples = 4000;
    auto s = Service::Open(*db_, dir_ / "bandit", options, clock_);
    ASSERT_TRUE(s.ok()) << s.status();
    service_ = std::move(*s);
  }
  static ExperimentSpec Spec(const std::string& name, std::vector<std::string> arms = {"a", "b"}) {
    ExperimentSpec s;
    s.name = name;
    for (const auto& a : arms) {
      s.arms.push_back({a, nullptr, false});
    }
    s.attribution_window_s = 60;
    return s;
  }

  ManualClock clock_;
  std::filesystem::path dir_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<Service> service_;
};

TEST_F(ServiceTest, CreateGetListDelete) {
  ASSERT_TRUE(service_->Create(Spec("x")).ok());
  EXPECT_EQ(service_->Create(Spec("x")).status().code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(service_->Create(Spec("y")).ok());
  EXPECT_EQ(service_->Get("x")->arms.size(), 2u);
  EXPECT_EQ(service_->List("", 10).size(), 2u);
  EXPECT_EQ(service_->List("x", 10).size(), 1u);
  EXPECT_TRUE(service_->Delete("x").ok());
  EXPECT_EQ(service_->Get("x").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(service_->Pull("x").status().code(), StatusCode::kNotFound);
}

TEST_F(ServiceTest, InvalidSpecsAreRefused) {
  ExperimentSpec none = Spec("none", {});
  EXPECT_EQ(service_->Create(none).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(service_->Create(Spec("dup", {"a", "a"})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(service_->Create(Spec("bad name")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(service_->List("", 10).empty());
}

TEST_F(ServiceTest, RewardGoesToTheServedArmOnce) {
  ASSERT_TRUE(service_->Create(Spec("x")).ok());
  auto p = service_->Pull("x");
  ASSERT_TRUE(p.ok());
  auto arm = service_->Reward("x", p->pull_id, 1);
  ASSERT_TRUE(arm.ok());
  EXPECT_EQ(*arm, p->arm);
  EXPECT_EQ(service_->Reward("x", p->pull_id, 1).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(service_->Reward("x", "1.999", 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(service_->Reward("x", "nonsense", 1).status().code(), StatusCode::kInvalidArgument);
  auto q = service_->Pull("x");
  EXPECT_EQ(service_->Reward("x", q->pull_id, 0.5).status().code(),
            StatusCode::kInvalidArgument);  // bernoulli
  EXPECT_EQ(service_->Reward("x", q->pull_id, std::nan("")).status().code(),
            StatusCode::kInvalidArgument);
  auto s = service_->Stats("x");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->pulls, 2);
  double sum = 0;
  for (const auto& a : s->arms) {
    sum += a.reward_sum;
    if (a.name == p->arm) {
      EXPECT_EQ(a.reward_sum, 1);
    }
  }
  EXPECT_EQ(sum, 1);
}

TEST_F(ServiceTest, ExpectedArmMismatchCreditsNothing) {
  ASSERT_TRUE(service_->Create(Spec("x")).ok());
  auto p = service_->Pull("x");
  const std::string other = p->arm == "a" ? "b" : "a";
  auto r = service_->Reward("x", p->pull_id, 1, other);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().GetPayload(kPayloadReason), "ARM_MISMATCH");
  EXPECT_TRUE(service_->Reward("x", p->pull_id, 1, p->arm).ok());
}

TEST_F(ServiceTest, SilentPullsExpireAsZeroAndLateRewardsAreRecorded) {
  ASSERT_TRUE(service_->Create(Spec("x", {"only"})).ok());
  auto p = service_->Pull("x");
  EXPECT_EQ(service_->Stats("x")->pending, 1);
  clock_.Advance(seconds(61));
  ASSERT_TRUE(service_->Tick().ok());
  auto s = service_->Stats("x");
  EXPECT_EQ(s->pending, 0);
  EXPECT_EQ(s->arms[0].expired, 1);
  EXPECT_TRUE(service_->Reward("x", p->pull_id, 1).ok());  // late, still recorded
  EXPECT_EQ(service_->Stats("x")->arms[0].reward_sum, 1);
  EXPECT_EQ(service_->Reward("x", p->pull_id, 1).status().code(), StatusCode::kAlreadyExists);
  clock_.Advance(seconds(61));
  ASSERT_TRUE(service_->Tick().ok());
  EXPECT_EQ(service_->Reward("x", p->pull_id, 1).status().code(), StatusCode::kNotFound);  // purged
}

TEST_F(ServiceTest, StickyUnitsKeepTheirArmAcrossRestarts) {
  ASSERT_TRUE(service_->Create(Spec("x", {"a", "b", "c", "d"})).ok());
  std::map<std::string, std::string> first;
  for (int u = 0; u < 20; ++u) {
    first["u" + std::to_string(u)] = service_->Pull("x", "u" + std::to_string(u))->arm;
  }
  Reopen();
  for (const auto& [u, arm] : first) {
    EXPECT_EQ(service_->Pull("x", u)->arm, arm) << u;
  }
}

TEST_F(ServiceTest, StateSurvivesARestartFromTheJournalAlone) {
  ASSERT_TRUE(service_->Create(Spec("x")).ok());
  std::vector<PullResult> pulls;
  for (int i = 0; i < 50; ++i) {
    pulls.push_back(*service_->Pull("x"));
  }
  for (int i = 0; i < 50; i += 2) {
    ASSERT_TRUE(service_->Reward("x", pulls[i].pull_id, 1).ok());
  }
  const auto before = *service_->Stats("x");
  Reopen();  // no Snapshot() call: recovery replays the journal
  const auto after = *service_->Stats("x");
  ASSERT_EQ(after.arms.size(), before.arms.size());
  for (size_t i = 0; i < after.arms.size(); ++i) {
    EXPECT_EQ(after.arms[i].pulls, before.arms[i].pulls);
    EXPECT_EQ(after.arms[i].reward_sum, before.arms[i].reward_sum);
    EXPECT_EQ(after.arms[i].mean, before.arms[i].mean);
  }
  EXPECT_EQ(service_->Reward("x", pulls[0].pull_id, 1).status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(service_->Reward("x", pulls[1].pull_id, 1).ok());
  EXPECT_EQ(service_->Pull("x")->pull_id.substr(0, 2), "1.");  // sequences continue
}

TEST_F(ServiceTest, SnapshotThenJournalRecoverBoth) {
  ASSERT_TRUE(service_->Create(Spec("x")).ok());
  for (int i = 0; i < 10; ++i) {
    auto p = service_->Pull("x");
    ASSERT_TRUE(service_->Reward("x", p->pull_id, i % 2).ok());
  }
  ASSERT_TRUE(service_->Snapshot().ok());
  for (int i = 0; i < 10; ++i) {
    auto p = service_->Pull("x");
    ASSERT_TRUE(service_->Reward("x", p->pull_id, 1).ok());
  }
  Reopen();
  auto s = service_->Stats("x");
  EXPECT_EQ(s->pulls, 20);
  double sum = 0;
  for (const auto& a : s->arms) {
    sum += a.reward_sum;
  }
  EXPECT_EQ(sum, 15);
}

TEST_F(ServiceTest, UpdateAppendsAndRetiresArms) {
  ASSERT_TRUE(service_->Create(Spec("x")).ok());
  ExperimentSpec s = *service_->Get("x");
  s.arms[0].retired = true;
  s.arms.push_back({"c", {{"k", 1}}, false});
  ASSERT_TRUE(service_->Update(s).ok());
  for (int i = 0; i < 50; ++i) {
    EXPECT_NE(service_->Pull("x")->arm, "a");
  }
  ExperimentSpec renamed = s;
  renamed.arms[1].name = "zz";
  EXPECT_EQ(service_->Update(renamed).status().code(), StatusCode::kInvalidArgument);
  ExperimentSpec fewer = s;
  fewer.arms.pop_back();
  EXPECT_EQ(service_->Update(fewer).status().code(), StatusCode::kInvalidArgument);
  Reopen();
  EXPECT_EQ(service_->Get("x")->arms.size(), 3u);
  EXPECT_TRUE(service_->Get("x")->arms[0].retired);
}

TEST_F(ServiceTest, StopRuleFreezesTheWinner) {
  ExperimentSpec s = Spec("x");
  s.stop_probability = 0.95;
  s.stop_min_pulls = 100;
  ASSERT_TRUE(service_->Create(s).ok());
  for (int i = 0; i < 400; ++i) {
    auto p = service_->Pull("x");
    ASSERT_TRUE(
        service_->Reward("x", p->pull_id, p->arm == "b" ? (i % 10 < 8) : (i % 10 < 2)).ok());
  }
  ASSERT_TRUE(service_->Tick().ok());
  ASSERT_TRUE(service_->Get("x")->winner.has_value());
  EXPECT_EQ(*service_->Get("x")->winner, "b");
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(service_->Pull("x")->arm, "b");
  }
}

TEST_F(ServiceTest, MinTrafficFloorFeedsEveryArm) {
  ExperimentSpec s = Spec("x", {"a", "b", "c"});
  s.min_traffic = 0.2;
  ASSERT_TRUE(service_->Create(s).ok());
  for (int i = 0; i < 300; ++i) {
    auto p = service_->Pull("x");
    ASSERT_TRUE(service_->Reward("x", p->pull_id, p->arm == "a" ? 1 : 0).ok());
  }
  for (const auto& a : service_->Stats("x")->arms) {
    EXPECT_GE(a.pulls, 55) << a.name;  // ~20 % of 300, minus rounding at the start
  }
}

TEST_F(ServiceTest, ConcurrentPullsAndRewardsAreAllCounted) {
  ASSERT_TRUE(service_->Create(Spec("x", {"a", "b", "c"})).ok());
  std::atomic<int> rewarded{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        auto p = service_->Pull("x");
        ASSERT_TRUE(p.ok());
        if (i % 2 == 0) {
          ASSERT_TRUE(service_->Reward("x", p->pull_id, 1).ok());
          ++rewarded;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  auto s = service_->Stats("x");
  EXPECT_EQ(s->pulls, 2000);
  double sum = 0;
  for (const auto& a : s->arms) {
    sum += a.reward_sum;
  }
  EXPECT_EQ(sum, rewarded.load());
  Reopen();
  EXPECT_EQ(service_->Stats("x")->pulls, 2000);
}

}  // namespace
}  // namespace evo::bandit
