#include <algorithm>
#include <thread>

#include <gtest/gtest.h>

#include "ids/ids.hpp"
#include "ids/test_util.hpp"

namespace evo::ids {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeLease;
using testing::FrozenClock;
using testing::MemoryMarkStore;
using testing::TempDir;

std::unique_ptr<Generator> OpenOrDie(const Options& options, const Clock& clock,
                                     std::shared_ptr<MemoryMarkStore::State> marks = nullptr,
                                     int64_t worker = 7) {
  if (marks == nullptr) {
    marks = std::make_shared<MemoryMarkStore::State>();
  }
  auto g = Generator::Open(options, clock, std::make_unique<FakeLease>(worker),
                           std::make_unique<MemoryMarkStore>(marks));
  EXPECT_TRUE(g.ok()) << g.status();
  return std::move(g).value();
}

int64_t RetryAfter(const Status& s) {
  const auto v = s.GetPayload(kPayloadRetryAfter);
  EXPECT_TRUE(v.has_value()) << s;
  return v ? std::stoll(*v) : -1;
}

void ExpectStrictlyIncreasing(const std::vector<Id>& ids) {
  for (size_t i = 1; i < ids.size(); ++i) {
    ASSERT_LT(ids[i - 1], ids[i]) << "at " << i;
  }
}

TEST(Generator, IdsCarryClockTimeWorkerAndSequence) {
  ManualClock clock;
  auto g = OpenOrDie({}, clock);
  const Id a = *g->Next();
  const Id b = *g->Next();
  const Decoded da = Decode(g->layout(), a);
  const Decoded db = Decode(g->layout(), b);
  EXPECT_EQ(da.unix_millis, UnixMillis(clock.Now()));
  EXPECT_EQ(da.worker_id, 7);
  EXPECT_EQ(da.sequence, 0);
  EXPECT_EQ(db.sequence, 1);
  EXPECT_EQ(g->worker_id(), 7);
  const Stats stats = g->stats();
  EXPECT_EQ(stats.issued, 2u);
  EXPECT_EQ(stats.worker_id, 7);
  EXPECT_EQ(stats.mark_unix_millis, UnixMillis(clock.Now()) + 3000);
  EXPECT_TRUE(g->Ready().ok());
}

TEST(Generator, OpenRejectsBadOptionsAndWorkerIds) {
  ManualClock clock;
  auto open = [&](const Options& o, int64_t worker) {
    return Generator::Open(
               o, clock, std::make_unique<FakeLease>(worker),
               std::make_unique<MemoryMarkStore>(std::make_shared<MemoryMarkStore::State>()))
        .status();
  };
  EXPECT_EQ(open({}, 1024).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open({}, -1).code(), StatusCode::kInvalidArgument);
  Options bad_layout;
  bad_layout.layout.sequence_bits = 13;
  EXPECT_EQ(open(bad_layout, 0).code(), StatusCode::kInvalidArgument);
  Options bad_backward;
  bad_backward.max_backward = milliseconds(-1);
  EXPECT_EQ(open(bad_backward, 0).code(), StatusCode::kInvalidArgument);
  Options bad_lookahead;
  bad_lookahead.mark_lookahead = milliseconds(0);
  EXPECT_EQ(Validate(bad_lookahead).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Generator::Open({}, clock, nullptr, nullptr).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Generator, FrozenClockRollsSequenceToTheNextTick) {
  ManualClock clock;  // moves only when the generator sleeps on it
  auto g = OpenOrDie({}, clock);
  const int64_t start_ms = UnixMillis(clock.Now());
  std::vector<Id> ids;
  for (int i = 0; i < 3 * 4096 + 5; ++i) {
    ids.push_back(*g->Next());
  }
  ExpectStrictlyIncreasing(ids);
  const Decoded last_of_first = Decode(g->layout(), ids[4095]);
  const Decoded first_of_second = Decode(g->layout(), ids[4096]);
  EXPECT_EQ(last_of_first.unix_millis, start_ms);
  EXPECT_EQ(last_of_first.sequence, 4095);
  EXPECT_EQ(first_of_second.unix_millis, start_ms + 1);
  EXPECT_EQ(first_of_second.sequence, 0);
  EXPECT_EQ(Decode(g->layout(), ids.back()).unix_millis, start_ms + 3);
  // It waited for each tick on the clock rather than borrowing.
  EXPECT_EQ(clock.TotalSlept(), milliseconds(3));
  EXPECT_EQ(g->stats().sequence_exhaustions, 3u);
  EXPECT_EQ(g->stats().unavailable, 0u);
}

TEST(Generator, ClockIgnoringSleepsBorrowsBoundedThenUnavailable) {
  FrozenClock clock(ManualClock().Now());
  Options options;
  options.max_borrow = milliseconds(5);
  auto g = OpenOrDie(options, clock);
  std::vector<Id> ids;
  Status error;
  for (int i = 0; i < 100'000; ++i) {
    auto id = g->Next();
    if (!id.ok()) {
      error = id.status();
      break;
    }
    ids.push_back(*id);
  }
  // The current tick plus five borrowed ones, then a refusal rather than a spin.
  EXPECT_EQ(ids.size(), 6u * 4096);
  ExpectStrictlyIncreasing(ids);
  EXPECT_EQ(Decode(g->layout(), ids.back()).unix_millis, UnixMillis(clock.Now()) + 5);
  EXPECT_EQ(error.code(), StatusCode::kUnavailable);
  EXPECT_EQ(RetryAfter(error), 1);
  EXPECT_EQ(g->Ready().code(), StatusCode::kUnavailable);
  EXPECT_EQ(g->NextBatch(3).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(g->stats().unavailable, 2u);
  EXPECT_EQ(g->stats().issued, ids.size());
}

TEST(Generator, ClockBackThreeMillisecondsIsWaitedOut) {
  ManualClock clock;
  auto g = OpenOrDie({}, clock);
  std::vector<Id> ids = {*g->Next()};
  clock.Advance(milliseconds(10));
  ids.push_back(*g->Next());
  clock.SetWall(clock.Now() - milliseconds(3));
  ids.push_back(*g->Next());
  ExpectStrictlyIncreasing(ids);
  EXPECT_EQ(clock.TotalSlept(), milliseconds(3));
  EXPECT_EQ(Decode(g->layout(), ids[2]).timestamp_ticks,
            Decode(g->layout(), ids[1]).timestamp_ticks);
  EXPECT_EQ(Decode(g->layout(), ids[2]).sequence, 1);
  EXPECT_EQ(g->stats().clock_backward_events, 1u);
}

TEST(Generator, ClockBackTenSecondsBorrowsThenRefusesThenRecovers) {
  ManualClock clock;
  Options options;
  options.max_borrow = milliseconds(20);
  auto g = OpenOrDie(options, clock);
  std::vector<Id> ids = {*g->Next()};
  clock.SetWall(clock.Now() - seconds(10));
  Status error;
  for (int i = 0; i < 1'000'000; ++i) {
    auto id = g->Next();
    if (!id.ok()) {
      error = id.status();
      break;
    }
    ids.push_back(*id);
  }
  EXPECT_EQ(clock.TotalSlept(), milliseconds(0));  // too far back to wait for
  EXPECT_EQ(error.code(), StatusCode::kUnavailable) << error;
  EXPECT_EQ(ids.size(), 21u * 4096);  // the current tick and 20 borrowed ones
  const int64_t retry = RetryAfter(error);
  EXPECT_GE(retry, 10);
  EXPECT_LE(retry, 11);
  EXPECT_EQ(g->stats().clock_backward_events, 1u);

  clock.Advance(seconds(retry));
  for (int i = 0; i < 10'000; ++i) {
    auto id = g->Next();
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  ExpectStrictlyIncreasing(ids);
  EXPECT_TRUE(g->Ready().ok());
}

TEST(Generator, RestartWithClockBelowTheMarkIssuesNoDuplicate) {
  TempDir dir;
  ManualClock clock;
  std::vector<Id> before;
  {
    auto g = Generator::Open({}, clock, std::make_unique<FakeLease>(3),
                             FileMarkStore(dir.path() / "mark"));
    ASSERT_TRUE(g.ok()) << g.status();
    for (int i = 0; i < 20'000; ++i) {  // several ticks
      before.push_back(*(*g)->Next());
    }
  }
  clock.SetWall(clock.Now() - seconds(2));  // restarted with the clock set back
  auto g = Generator::Open({}, clock, std::make_unique<FakeLease>(3),
                           FileMarkStore(dir.path() / "mark"));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE((*g)->Ready().ok());
  std::vector<Id> after;
  for (int i = 0; i < 20'000; ++i) {
    after.push_back(*(*g)->Next());
  }
  ExpectStrictlyIncreasing(after);
  EXPECT_GT(after.front(), before.back());
  EXPECT_EQ((*g)->stats().clock_backward_events, 0u);  // bridging a restart is not a step back
}

TEST(Generator, RestartWithHugeGapIsNotReadyUntilTheClockCatchesUp) {
  ManualClock clock;
  auto marks = std::make_shared<MemoryMarkStore::State>();
  Id last = 0;
  {
    auto g = OpenOrDie({}, clock, marks);
    for (int i = 0; i < 100; ++i) {
      last = *g->Next();
    }
    marks->crashed = true;  // killed: the lookahead mark (now + 3 s) stays
  }
  marks->crashed = false;
  clock.SetWall(clock.Now() - std::chrono::hours(1));
  auto g = OpenOrDie({}, clock, marks);  // opens, but not ready
  const Status ready = g->Ready();
  EXPECT_EQ(ready.code(), StatusCode::kUnavailable);
  EXPECT_NE(ready.message().find("behind the high-water mark"), std::string_view::npos) << ready;
  EXPECT_NE(ready.message().find("refusing to issue IDs until"), std::string_view::npos);
  // Ready once the clock is within max_start_gap (5 s) of the mark (now + 3 s lookahead).
  const int64_t retry = RetryAfter(ready);
  EXPECT_EQ(retry, 3600 + 3 - 5);
  EXPECT_EQ(g->Next().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(g->stats().unavailable, 1u);

  clock.Advance(seconds(retry - 1));
  EXPECT_EQ(g->Ready().code(), StatusCode::kUnavailable);
  clock.Advance(seconds(1));
  EXPECT_TRUE(g->Ready().ok());
  auto id = g->Next();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_GT(*id, last);
}

TEST(Generator, CleanRestartStartsAtTheClockButACrashAtTheLookaheadMark) {
  ManualClock clock;
  auto marks = std::make_shared<MemoryMarkStore::State>();
  const Layout layout;
  const int64_t now_ticks = UnixMillis(clock.Now()) - UnixMillis(layout.epoch);
  Id last = *OpenOrDie({}, clock, marks)->Next();  // destroyed right away: a clean stop
  EXPECT_EQ(marks->mark.load(), now_ticks + 1);    // just past the last ID

  auto g = OpenOrDie({}, clock, marks);
  const Id after_clean = *g->Next();
  EXPECT_GT(after_clean, last);
  EXPECT_EQ(Decode(layout, after_clean).timestamp_ticks, now_ticks + 1);
  marks->crashed = true;
  g.reset();
  marks->crashed = false;

  const Id after_crash = *OpenOrDie({}, clock, marks)->Next();
  EXPECT_GT(after_crash, after_clean);
  EXPECT_EQ(Decode(layout, after_crash).timestamp_ticks, now_ticks + 1 + 3000);
}

TEST(Generator, MarkIsPersistedAheadOfEveryIssuedId) {
  ManualClock clock;
  auto marks = std::make_shared<MemoryMarkStore::State>();
  auto g = OpenOrDie({}, clock, marks);
  Layout layout;
  for (int step = 0; step < 100; ++step) {  // 10 s in 100 ms steps
    const Id id = *g->Next();
    EXPECT_LT(Decode(layout, id).timestamp_ticks, marks->mark.load());
    clock.Advance(milliseconds(100));
  }
  // Renewed every lookahead/2 = 1.5 s, not per ID, by the renewer thread: let its last
  // renewal finish.
  for (int i = 0;
       i < 200 && g->stats().mark_unix_millis !=
                      UnixMillis(layout.epoch) + marks->mark.load() * layout.tick.count();
       ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  // At least one store per 3 s lookahead (the renewer may lag this loop, which never sleeps,
  // and leave a renewal to the hard path), at most about one per 1.5 s.
  EXPECT_GE(marks->stores.load(), 4);
  EXPECT_LE(marks->stores.load(), 9);
  EXPECT_EQ(g->stats().mark_unix_millis,
            UnixMillis(layout.epoch) + marks->mark.load() * layout.tick.count());
}

TEST(Generator, EarlyMarkRenewalRunsOffTheCallingThread) {
  ManualClock clock;
  auto marks = std::make_shared<MemoryMarkStore::State>();
  auto g = OpenOrDie({}, clock, marks);
  ASSERT_TRUE(g->Next().ok());
  const int stores_at_start = marks->stores.load();
  clock.Advance(milliseconds(2000));  // past half the 3 s lookahead: due for early renewal
  ASSERT_TRUE(g->Next().ok());
  for (int i = 0; i < 500 && marks->stores.load() == stores_at_start; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_GT(marks->stores.load(), stores_at_start);
  std::lock_guard<std::mutex> lock(marks->mu);
  EXPECT_NE(marks->store_thread, std::this_thread::get_id());
}

TEST(Generator, UnwritableMarkMakesItUnavailableUntilFixed) {
  ManualClock clock;
  auto marks = std::make_shared<MemoryMarkStore::State>();
  marks->fail = true;
  EXPECT_EQ(Generator::Open({}, clock, std::make_unique<FakeLease>(1),
                            std::make_unique<MemoryMarkStore>(marks))
                .status()
                .code(),
            StatusCode::kUnavailable);
  marks->fail = false;
  auto g = OpenOrDie({}, clock, marks);
  const Id first = *g->Next();
  marks->fail = true;
  clock.Advance(seconds(4));  // past the mark: a new one must be stored first
  const auto refused = g->Next();
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(RetryAfter(refused.status()), 1);
  EXPECT_EQ(g->Ready().code(), StatusCode::kUnavailable);
  marks->fail = false;
  EXPECT_TRUE(g->Ready().ok());
  EXPECT_GT(*g->Next(), first);
}

TEST(Generator, LostLeaseMakesItUnavailable) {
  ManualClock clock;
  auto valid = std::make_shared<std::atomic<bool>>(true);
  auto g = Generator::Open(
      {}, clock, std::make_unique<FakeLease>(2, valid),
      std::make_unique<MemoryMarkStore>(std::make_shared<MemoryMarkStore::State>()));
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE((*g)->Next().ok());
  *valid = false;
  EXPECT_EQ((*g)->Next().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ((*g)->NextBatch(10).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ((*g)->Ready().code(), StatusCode::kUnavailable);
}

TEST(Generator, BatchesAreConsecutiveAndSpanTicks) {
  ManualClock clock;
  auto g = OpenOrDie({}, clock);
  const Id before = *g->Next();
  auto batch = g->NextBatch(10'000);
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->size(), 10'000u);
  ExpectStrictlyIncreasing(*batch);
  EXPECT_GT(batch->front(), before);
  EXPECT_EQ(Decode(g->layout(), batch->front()).sequence, 1);
  EXPECT_EQ(Decode(g->layout(), batch->back()).unix_millis - UnixMillis(g->layout().epoch),
            Decode(g->layout(), before).timestamp_ticks + 2);
  EXPECT_GT(*g->Next(), batch->back());
  EXPECT_EQ(g->stats().issued, 10'002u);
  EXPECT_EQ(g->NextBatch(0).status().code(), StatusCode::kInvalidArgument);
}

TEST(Generator, SingleWorkerLayoutWithWideSequence) {
  ManualClock clock;
  Options options;
  options.layout = {.timestamp_bits = 41, .worker_bits = 0, .sequence_bits = 22};
  auto g = OpenOrDie(options, clock, nullptr, 0);
  std::vector<Id> ids;
  for (int i = 0; i < 5'000'000; ++i) {
    ids.push_back(*g->Next());
  }
  ExpectStrictlyIncreasing(ids);
  EXPECT_EQ(clock.TotalSlept(), milliseconds(1));
}

TEST(Generator, FourThreadsGetUniqueIncreasingIds) {
  MonotonicWallClock clock(RealClock());
  auto g = OpenOrDie({}, clock);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 1'000'000;
  std::vector<std::vector<Id>> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto& out = per_thread[static_cast<size_t>(t)];
      out.reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) {
        auto id = g->Next();
        if (!id.ok()) {
          ADD_FAILURE() << id.status();
          return;
        }
        out.push_back(*id);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  std::vector<Id> all;
  all.reserve(kThreads * kPerThread);
  for (const auto& ids : per_thread) {
    ExpectStrictlyIncreasing(ids);
    all.insert(all.end(), ids.begin(), ids.end());
  }
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "duplicate ID";
  EXPECT_EQ(g->stats().issued, all.size());
}

}  // namespace
}  // namespace evo::ids
