#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "bandit/bandit.hpp"
#include "bandit/journal.hpp"
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
    auto s = TryReopen();
    ASSERT_TRUE(s.ok()) << s;
  }
  // Reopen, returning Open's status (service_ is null when it failed).
  Status TryReopen() {
    service_.reset();
    db_.reset();
    auto db = store::OpenSqlite({.path = (dir_ / "evo.db").string()}, clock_);
    if (!db.ok()) {
      return db.status();
    }
    db_ = std::move(*db);
    auto s = Service::Open(*db_, dir_ / "bandit", options_, clock_);
    if (!s.ok()) {
      return s.status();
    }
    service_ = std::move(*s);
    return OkStatus();
  }
  static ServiceOptions TestOptions() {
    ServiceOptions options;
    options.seed = 42;
    options.probability_samples = 4000;
    options.journal_bytes = 16 << 20;
    return options;
  }
  // The journal files in the service's directory.
  std::vector<std::filesystem::path> Journals() const {
    std::vector<std::filesystem::path> out;
    for (const auto& entry : std::filesystem::directory_iterator(dir_ / "bandit")) {
      if (entry.path().filename().string().starts_with("journal-")) {
        out.push_back(entry.path());
      }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return a.string().size() != b.string().size() ? a.string().size() < b.string().size() : a < b;
    });
    return out;
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
  ServiceOptions options_ = TestOptions();
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

// Review D1: a deleted experiment's uid went to the next one created (MAX(uid) + 1), which
// then took over its journal records after a restart and accepted its old pull ids.
TEST_F(ServiceTest, ADeletedExperimentsUidIsNeverGivenAgain) {
  ASSERT_TRUE(service_->Create(Spec("a")).ok());
  std::vector<std::string> old_ids;
  for (int i = 0; i < 20; ++i) {
    auto p = service_->Pull("a");
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE(service_->Reward("a", p->pull_id, 1).ok());
    old_ids.push_back(p->pull_id);
  }
  ASSERT_TRUE(service_->Delete("a").ok());
  ASSERT_TRUE(service_->Create(Spec("b")).ok());
  auto first = service_->Pull("b");
  ASSERT_TRUE(first.ok());
  EXPECT_NE(first->pull_id.substr(0, first->pull_id.find('.')),
            old_ids[0].substr(0, old_ids[0].find('.')));
  for (const std::string& id : {old_ids[0], old_ids[1]}) {
    auto r = service_->Reward("b", id, 1);
    EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << id;
  }
  Reopen();  // no snapshot since the delete: like kill -9
  Reopen();
  ExperimentStats s = *service_->Stats("b");
  EXPECT_EQ(s.pulls, 1);
  EXPECT_EQ(s.pending, 1);
  for (const auto& a : s.arms) {
    EXPECT_EQ(a.rewards, 0) << a.name;
  }
  EXPECT_TRUE(service_->Reward("b", first->pull_id, 1).ok());
  EXPECT_EQ(service_->Reward("b", old_ids[2], 1).status().code(), StatusCode::kNotFound);
  // A third experiment gets a third uid, also after the restarts.
  ASSERT_TRUE(service_->Create(Spec("c")).ok());
  const std::string c_id = service_->Pull("c")->pull_id;
  EXPECT_EQ(c_id.substr(0, c_id.find('.')), "3");
}

// A store from before the uid mark, where the deleted experiment's records are still in the
// journal: Open raises the mark past every uid it finds on disk.
TEST_F(ServiceTest, TheUidMarkIsRaisedPastEveryUidFoundOnDisk) {
  ASSERT_TRUE(service_->Create(Spec("a")).ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(service_->Pull("a").ok());
  }
  service_.reset();
  // What an older evo left: the row gone, the mark (had it existed) at the largest live uid.
  ASSERT_TRUE(db_->Exec("DELETE FROM bandit_experiments").ok());
  ASSERT_TRUE(db_->Exec("UPDATE bandit_uid_mark SET last_uid = 0").ok());
  Reopen();
  ASSERT_TRUE(service_->Create(Spec("b")).ok());
  Reopen();
  EXPECT_EQ(service_->Stats("b")->pulls, 0);
  EXPECT_EQ(service_->Pull("b")->pull_id, "2.1");
}

// Review D9: Reward and Tick read the spec without the experiment's lock while Update
// replaced it (ThreadSanitizer reports it in the bandit suite under make sanitize).
TEST_F(ServiceTest, UpdateRacesWithPullsRewardsTicksAndSnapshots) {
  ExperimentSpec spec = Spec("x", {"a", "b", "c"});
  spec.stop_probability = 0.99;
  spec.stop_min_pulls = 1'000'000;  // evaluated at every Tick, never reached
  ASSERT_TRUE(service_->Create(spec).ok());
  std::atomic<bool> stop{false};
  std::atomic<int64_t> pulls{0};
  std::atomic<int64_t> rewards{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1500; ++i) {
        auto p = service_->Pull("x", i % 3 == 0 ? "unit" + std::to_string(i % 50) : "");
        ASSERT_TRUE(p.ok()) << p.status();
        ++pulls;
        if ((i + t) % 2 == 0) {
          ASSERT_TRUE(service_->Reward("x", p->pull_id, 1).ok());
          ++rewards;
        }
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop) {
      ASSERT_TRUE(service_->Tick().ok());
      ASSERT_TRUE(service_->Stats("x").ok());
    }
  });
  threads.emplace_back([&] {
    for (int i = 0; !stop; ++i) {
      ExperimentSpec next = *service_->Get("x");
      next.min_traffic = i % 2 == 0 ? 0.1 : 0;
      next.arms[1].payload = {{"version", i}};
      next.stop_probability = 0.98 + (i % 2) * 0.01;
      ASSERT_TRUE(service_->Update(next).ok());
      ASSERT_EQ(service_->List("", 10).size(), 1u);
    }
  });
  for (size_t i = 0; i < 2; ++i) {
    threads[i].join();
  }
  stop = true;
  for (size_t i = 2; i < threads.size(); ++i) {
    threads[i].join();
  }
  const ExperimentStats s = *service_->Stats("x");
  EXPECT_EQ(s.pulls, pulls.load());
  int64_t credited = 0;
  for (const auto& a : s.arms) {
    credited += a.rewards;
  }
  EXPECT_EQ(credited, rewards.load());
  Reopen();
  EXPECT_EQ(service_->Stats("x")->pulls, pulls.load());
}

// Review D14: a snapshot whose write fails must keep every journal it would replace, and be
// retried; the start-up snapshot failing does not stop the service from opening.
TEST_F(ServiceTest, AFailedSnapshotKeepsEveryJournalAndIsRetried) {
  ASSERT_TRUE(service_->Create(Spec("x")).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(service_->Pull("x").ok());
  }
  ASSERT_TRUE(service_->Snapshot().ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(service_->Pull("x").ok());
  }
  // snapshot.tmp cannot be created: a directory is in its place (root ignores permissions).
  const auto obstacle = dir_ / "bandit" / "snapshot.tmp";
  std::filesystem::create_directories(obstacle / "in-the-way");
  const size_t journals_before = Journals().size();
  const Status failed = service_->Snapshot();
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable) << failed;
  EXPECT_NE(failed.message().find("snapshot.tmp"), std::string_view::npos) << failed;
  EXPECT_EQ(service_->Counters().snapshot_failures, 1u);
  EXPECT_EQ(Journals().size(), journals_before + 1);  // the old ones and the next
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(service_->Pull("x").ok());
  }
  EXPECT_EQ(service_->Tick().code(), StatusCode::kUnavailable);  // reports it until fixed
  Reopen();  // its start-up snapshot fails as well
  EXPECT_EQ(service_->Stats("x")->pulls, 20);
  EXPECT_GE(Journals().size(), journals_before + 1);

  std::filesystem::remove_all(obstacle);
  clock_.Advance(seconds(2));  // past the retry backoff
  EXPECT_TRUE(service_->Tick().ok());
  EXPECT_EQ(Journals().size(), 1u);  // all replaced by the durable snapshot
  Reopen();
  EXPECT_EQ(service_->Stats("x")->pulls, 20);
}

// Review D14 / issue 18 §4: the journal is msynced as --bandit-sync says.
TEST_F(ServiceTest, TheJournalIsSyncedAsTheSyncOptionSays) {
  const auto run = [&](SyncMode mode) {
    options_.sync = mode;
    options_.sync_interval = std::chrono::milliseconds(1000);
    Reopen();
    if (!service_->Get("x").ok()) {
      EXPECT_TRUE(service_->Create(Spec("x")).ok());
    }
    const uint64_t start = service_->Counters().journal_syncs;
    for (int i = 0; i < 3; ++i) {
      auto p = service_->Pull("x");
      EXPECT_TRUE(p.ok());
      EXPECT_TRUE(service_->Reward("x", p->pull_id, 1).ok());
    }
    const uint64_t after_requests = service_->Counters().journal_syncs - start;
    clock_.Advance(std::chrono::milliseconds(1000));
    EXPECT_TRUE(service_->Tick().ok());
    EXPECT_TRUE(service_->Tick().ok());  // not again within the interval
    return std::make_pair(after_requests, service_->Counters().journal_syncs - start);
  };
  EXPECT_EQ(run(SyncMode::kNone), std::make_pair(uint64_t{0}, uint64_t{0}));
  EXPECT_EQ(run(SyncMode::kInterval), std::make_pair(uint64_t{0}, uint64_t{1}));
  EXPECT_EQ(run(SyncMode::kAlways), std::make_pair(uint64_t{6}, uint64_t{6}));
}

// Review §5: 1000 pulls/s with a 30-day window held ~41 GB of pending pulls, with no cap.
TEST_F(ServiceTest, PendingPullsAreCappedPerExperiment) {
  options_.max_pending_pulls = 100;
  Reopen();
  ASSERT_TRUE(service_->Create(Spec("x", {"only"})).ok());
  std::vector<std::string> ids;
  ids.reserve(1000);
  for (int i = 0; i < 1000; ++i) {
    ids.push_back(service_->Pull("x")->pull_id);
  }
  const auto check = [&] {
    const ExperimentStats s = *service_->Stats("x");
    EXPECT_EQ(s.pulls, 1000);
    EXPECT_EQ(s.pending, 100);
    EXPECT_EQ(s.arms[0].expired, 900);  // the oldest, early, as 0 for the policy
    EXPECT_EQ(service_->Reward("x", ids[0], 1).status().code(), StatusCode::kNotFound);
    EXPECT_EQ(service_->Reward("x", ids[899], 1).status().code(), StatusCode::kNotFound);
  };
  check();
  Reopen();  // from the journal, which has the early expiries
  check();
  EXPECT_TRUE(service_->Reward("x", ids[999], 1).ok());
}

// Review §5: the sticky map grew with every distinct unit for the life of the experiment.
TEST_F(ServiceTest, StickyUnitsAreBoundedAndTheRecentOnesKeepTheirArm) {
  options_.max_sticky_units = 64;
  Reopen();
  ASSERT_TRUE(service_->Create(Spec("x", {"a", "b", "c", "d"})).ok());
  std::map<std::string, std::string> recent;
  for (int u = 0; u < 1000; ++u) {
    const std::string unit = std::string("unit-").append(std::to_string(u));
    const std::string arm = service_->Pull("x", unit)->arm;
    if (u >= 992) {
      recent[unit] = arm;  // the last 8 cannot have been evicted (8 slots a bucket)
    }
  }
  const auto check = [&] {
    EXPECT_LE(service_->Stats("x")->sticky_units, 64);
    EXPECT_GE(service_->Stats("x")->sticky_units, 8);
    for (const auto& [unit, arm] : recent) {
      EXPECT_EQ(service_->Pull("x", unit)->arm, arm) << unit;
    }
  };
  check();
  Reopen();
  check();
  ASSERT_TRUE(service_->Snapshot().ok());
  Reopen();
  check();
}

// Issue 18 §1: nothing read from disk may end the process. A corrupt snapshot refuses the
// start with a message naming it; torn or truncated data is never read past its end.
TEST_F(ServiceTest, ACorruptSnapshotFailsOpenWithDataLossNamingIt) {
  ASSERT_TRUE(service_->Create(Spec("x")).ok());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(service_->Pull("x", "u" + std::to_string(i % 10)).ok());
  }
  ASSERT_TRUE(service_->Snapshot().ok());
  service_.reset();
  const auto path = dir_ / "bandit" / "snapshot.bin";
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(bytes.size(), 40u);
  const auto write = [&](const std::string& content) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  };
  for (const std::string& corrupt : {bytes.substr(0, bytes.size() - 3), bytes.substr(0, 30),
                                     std::string("garbage"), bytes + "extra"}) {
    write(corrupt);
    const Status st = TryReopen();
    EXPECT_EQ(st.code(), StatusCode::kDataLoss) << st;
    EXPECT_NE(st.message().find(path.string()), std::string_view::npos) << st;
  }
  // An arm index the experiment does not have (the winner field, the snapshot's last 8 bytes).
  std::string bad_winner = bytes;
  const int64_t winner = 7;
  std::memcpy(bad_winner.data() + bad_winner.size() - 8, &winner, 8);
  write(bad_winner);
  EXPECT_EQ(TryReopen().code(), StatusCode::kDataLoss);
  write(bytes);
  Reopen();
  EXPECT_EQ(service_->Stats("x")->pulls, 100);
}

// Journal records that pass their checksum but do not fit their experiment (an arm it does
// not have) are skipped, instead of indexing past the arms later.
TEST_F(ServiceTest, JournalRecordsNamingAMissingArmAreSkipped) {
  ASSERT_TRUE(service_->Create(Spec("x")).ok());
  ASSERT_TRUE(service_->Pull("x").ok());
  service_.reset();
  {
    auto journal = Journal::Open(Journals().back(), options_.journal_bytes);
    ASSERT_TRUE(journal.ok()) << journal.status();
    uint64_t unit = 0xcbf29ce484222325ULL;  // HashUnit("u1"), FNV-1a
    for (const unsigned char c : std::string("u1")) {
      unit = (unit ^ c) * 0x100000001b3ULL;
    }
    ASSERT_TRUE((*journal)->Append({RecordType::kAssign, 1, 9, unit, 0}).ok());
    ASSERT_TRUE((*journal)->Append({RecordType::kPull, 1, 7, 2, 1e9}).ok());
    ASSERT_TRUE((*journal)->Append({RecordType::kReward, 1, 0, 1, 0.5}).ok());  // bernoulli
  }
  Reopen();
  const ExperimentStats s = *service_->Stats("x");
  EXPECT_EQ(s.pulls, 1);
  EXPECT_EQ(s.arms[0].rewards + s.arms[1].rewards, 0);
  auto p = service_->Pull("x", "u1");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->arm == "a" || p->arm == "b") << p->arm;
}

// A stored definition is read with checks: a field of the wrong type is not an exception,
// and a row that cannot be read refuses the start with a message naming the experiment.
TEST_F(ServiceTest, StoredDefinitionsAreReadWithChecks) {
  ASSERT_TRUE(service_->Create(Spec("x")).ok());
  service_.reset();
  ASSERT_TRUE(db_->Exec("UPDATE bandit_experiments SET spec = ? WHERE name = 'x'",
                        {std::string(R"({"name":"x","arms":[{"name":"a"}],"createTime":5,)"
                                     R"("updateTime":[],"winner":{}})")})
                  .ok());
  Reopen();
  EXPECT_EQ(service_->Get("x")->created_at, "");
  service_.reset();
  ASSERT_TRUE(db_->Exec("UPDATE bandit_experiments SET spec = 'not json' WHERE name = 'x'").ok());
  const Status st = TryReopen();
  EXPECT_EQ(st.code(), StatusCode::kDataLoss) << st;
  EXPECT_NE(st.message().find("\"x\""), std::string_view::npos) << st;
}

}  // namespace
}  // namespace evo::bandit
