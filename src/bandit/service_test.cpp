#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
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
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    // "Suite/Name/0" for a parameterised test: one directory level, not three.
    std::string name = std::string(test->test_suite_name()) + "." + test->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = std::filesystem::temp_directory_path() /
           ("evo-bandit-test-" + std::to_string(::getpid()) + "-" + name);
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
  static ExperimentSpec Spec(const std::string& name,
                             const std::vector<std::string>& arms = {"a", "b"}) {
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

TEST_F(ServiceTest, ARequestExpiresAFewDuePullsAndTickTheRest) {
  ASSERT_TRUE(service_->Create(Spec("x", {"only"})).ok());
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(service_->Pull("x").ok());
  }
  clock_.Advance(seconds(61));
  ASSERT_TRUE(service_->Pull("x").ok());  // a bounded share of the expiry, not 10,000
  EXPECT_GT(service_->Stats("x")->pending, 9000);
  ASSERT_TRUE(service_->Tick().ok());
  const ExperimentStats s = *service_->Stats("x");
  EXPECT_EQ(s.pending, 1);  // the pull made after the window
  EXPECT_EQ(s.arms[0].expired, 10000);
}

TEST_F(ServiceTest, ARewardAfterTheWindowIsLateEvenBeforeExpiryCameThatFar) {
  ASSERT_TRUE(service_->Create(Spec("x", {"only"})).ok());
  std::vector<PullResult> pulls;
  pulls.reserve(5000);
  for (int i = 0; i < 5000; ++i) {
    pulls.push_back(*service_->Pull("x"));
  }
  clock_.Advance(seconds(60));
  // No Tick: only this request's expiry work has run.
  ASSERT_TRUE(service_->Reward("x", pulls[4000].pull_id, 1).ok());
  EXPECT_EQ(service_->Reward("x", pulls[4000].pull_id, 1).status().code(),
            StatusCode::kAlreadyExists);
  ASSERT_TRUE(service_->Tick().ok());
  const ExperimentStats s = *service_->Stats("x");
  EXPECT_EQ(s.arms[0].expired, 5000);  // it counted 0 for the policy like every other
  EXPECT_EQ(s.arms[0].rewards, 1);     // and its reward was recorded late
  EXPECT_EQ(s.arms[0].reward_sum, 1);
  Reopen();  // the journal holds the expiries in order
  const ExperimentStats r = *service_->Stats("x");
  EXPECT_EQ(r.arms[0].expired, 5000);
  EXPECT_EQ(r.arms[0].mean, s.arms[0].mean);
  EXPECT_EQ(r.pending, 0);
}

TEST_F(ServiceTest, StickyUnitsKeepTheirArmAcrossRestarts) {
  ASSERT_TRUE(service_->Create(Spec("x", {"a", "b", "c", "d"})).ok());
  std::map<std::string, std::string> first;
  for (int u = 0; u < 20; ++u) {
    const std::string unit = std::string("u").append(
        std::to_string(u));  // not "u" + ...: GCC 12 -Wrestrict false positive
    first[unit] = service_->Pull("x", unit)->arm;
  }
  Reopen();
  for (const auto& [u, arm] : first) {
    EXPECT_EQ(service_->Pull("x", u)->arm, arm) << u;
  }
}

TEST_F(ServiceTest, StateSurvivesARestartFromTheJournalAlone) {
  ASSERT_TRUE(service_->Create(Spec("x")).ok());
  std::vector<PullResult> pulls;
  pulls.reserve(50);
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

// Every pull state a snapshot must keep, then a restart (without a final snapshot, as after
// kill -9) from the snapshot alone or with journal records on top: statistics, posteriors,
// sticky units and each pull's fate are exactly as acknowledged.
class RestartTest : public ServiceTest, public ::testing::WithParamInterface<bool> {};

TEST_P(RestartTest, EveryPullKeepsItsStateExactly) {
  const bool journal_on_top = GetParam();
  ASSERT_TRUE(service_->Create(Spec("x", {"a", "b", "c"})).ok());
  // Old pulls, whose window ends: a quarter rewarded in time, the rest expire; of those a
  // third get a late reward.
  std::vector<PullResult> old;
  for (int i = 0; i < 1000; ++i) {
    auto p = i < 20 ? service_->Pull("x", "u" + std::to_string(i)) : service_->Pull("x");
    ASSERT_TRUE(p.ok());
    old.push_back(*p);
    if (i % 4 == 0) {
      ASSERT_TRUE(service_->Reward("x", p->pull_id, i % 8 == 0 ? 1 : 0).ok());
    }
  }
  clock_.Advance(seconds(61));
  ASSERT_TRUE(service_->Tick().ok());
  for (int i = 1; i < 1000; i += 4) {
    ASSERT_TRUE(service_->Reward("x", old[i].pull_id, 1).ok());
  }
  // Recent pulls across a chunk boundary of the pending ring: a third rewarded, the rest
  // pending.
  std::vector<PullResult> recent;
  for (int i = 0; i < 70000; ++i) {
    auto p = service_->Pull("x");
    ASSERT_TRUE(p.ok());
    recent.push_back(*p);
    if (i % 3 == 0) {
      ASSERT_TRUE(service_->Reward("x", p->pull_id, i % 2).ok());
    }
  }
  ASSERT_TRUE(service_->Snapshot().ok());
  std::vector<int> late_after_snapshot;
  if (journal_on_top) {
    clock_.Advance(seconds(1));
    for (int i = 0; i < 500; ++i) {
      auto p = service_->Pull("x", "v" + std::to_string(i % 7));
      ASSERT_TRUE(p.ok());
      recent.push_back(*p);
      if (recent.size() % 3 == 1) {  // index % 3 == 0, like the others
        ASSERT_TRUE(service_->Reward("x", p->pull_id, 1).ok());
      }
    }
    for (int i = 2; i < 200; i += 4) {
      ASSERT_TRUE(service_->Reward("x", old[i].pull_id, 0).ok());
      late_after_snapshot.push_back(i);
    }
  }
  const ExperimentStats before = *service_->Stats("x");
  std::map<std::string, std::string> sticky;
  for (int u = 0; u < 20; ++u) {
    sticky["u" + std::to_string(u)] = old[static_cast<size_t>(u)].arm;
  }
  if (journal_on_top) {
    for (size_t i = 70000; i < 70007; ++i) {
      sticky["v" + std::to_string(i - 70000)] = recent[i].arm;
    }
  }

  Reopen();
  Reopen();  // from the snapshot that the first reopening wrote
  const ExperimentStats after = *service_->Stats("x");
  ASSERT_EQ(after.arms.size(), before.arms.size());
  EXPECT_EQ(after.pulls, before.pulls);
  EXPECT_EQ(after.pending, before.pending);
  for (size_t i = 0; i < after.arms.size(); ++i) {
    EXPECT_EQ(after.arms[i].pulls, before.arms[i].pulls) << i;
    EXPECT_EQ(after.arms[i].rewards, before.arms[i].rewards) << i;
    EXPECT_EQ(after.arms[i].expired, before.arms[i].expired) << i;
    EXPECT_EQ(after.arms[i].reward_sum, before.arms[i].reward_sum) << i;
    EXPECT_EQ(after.arms[i].mean, before.arms[i].mean) << i;
    EXPECT_EQ(after.arms[i].ci_low, before.arms[i].ci_low) << i;
    EXPECT_EQ(after.arms[i].ci_high, before.arms[i].ci_high) << i;
  }
  for (const auto& [unit, arm] : sticky) {
    EXPECT_EQ(service_->Pull("x", unit)->arm, arm) << unit;
  }

  // Old pulls: rewarded ones refuse another reward; expired ones take one late reward (for
  // the arm they were served), then refuse.
  const auto code = [&](const PullResult& p, std::string_view arm = {}) {
    return service_->Reward("x", p.pull_id, 1, arm).status().code();
  };
  for (int i = 0; i < 1000; ++i) {
    const PullResult& p = old[static_cast<size_t>(i)];
    const bool late_rewarded =
        i % 4 == 1 || std::count(late_after_snapshot.begin(), late_after_snapshot.end(), i) > 0;
    if (i % 4 == 0 || late_rewarded) {
      ASSERT_EQ(code(p), StatusCode::kAlreadyExists) << i;
      continue;
    }
    if (i % 50 == 2) {
      ASSERT_EQ(code(p, p.arm == "a" ? "b" : "a"), StatusCode::kInvalidArgument) << i;
    }
    auto arm = service_->Reward("x", p.pull_id, 1);
    ASSERT_TRUE(arm.ok()) << i << " " << arm.status();
    ASSERT_EQ(*arm, p.arm) << i;
    ASSERT_EQ(code(p), StatusCode::kAlreadyExists) << i;
  }
  // Recent pulls: rewarded ones refuse; pending ones take one reward, then refuse.
  auto silent = static_cast<int64_t>(sticky.size());  // pulls that will expire
  for (size_t i = 0; i < recent.size(); ++i) {
    if (i % 3 == 0) {
      ASSERT_EQ(code(recent[i]), StatusCode::kAlreadyExists) << i;
    } else if (i % 5 == 0) {
      ASSERT_TRUE(service_->Reward("x", recent[i].pull_id, 1).ok()) << i;
      ASSERT_EQ(code(recent[i]), StatusCode::kAlreadyExists) << i;
    } else {
      ++silent;
    }
  }
  // The pulls still waiting for a reward expire once each, and the old ones not again.
  const ExperimentStats mid = *service_->Stats("x");
  EXPECT_EQ(mid.pending, before.pending + static_cast<int64_t>(sticky.size()));
  int64_t expired_mid = 0;
  for (const auto& a : mid.arms) {
    expired_mid += a.expired;
  }
  clock_.Advance(seconds(62));
  ASSERT_TRUE(service_->Tick().ok());
  const ExperimentStats end = *service_->Stats("x");
  int64_t expired_end = 0;
  for (const auto& a : end.arms) {
    expired_end += a.expired;
  }
  EXPECT_EQ(end.pending, 0);
  EXPECT_EQ(expired_end, expired_mid + silent);
  // One more window on, the old pulls are purged.
  EXPECT_EQ(code(old[3]), StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(SnapshotAlone, RestartTest, ::testing::Values(false));
INSTANTIATE_TEST_SUITE_P(SnapshotAndJournal, RestartTest, ::testing::Values(true));

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
  const ExperimentStats stats = *service_->Stats("x");
  for (const auto& a : stats.arms) {
    EXPECT_GE(a.pulls, 55) << a.name;  // ~20 % of 300, minus rounding at the start
  }
}

TEST_F(ServiceTest, ConcurrentPullsAndRewardsAreAllCounted) {
  ASSERT_TRUE(service_->Create(Spec("x", {"a", "b", "c"})).ok());
  std::atomic<int> rewarded{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
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
