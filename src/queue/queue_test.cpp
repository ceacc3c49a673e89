#include "queue/queue.hpp"

#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/metrics.hpp"
#include "core/temp_dir.hpp"
#include "store/store.hpp"

namespace evo::queue {
namespace {

using std::chrono::milliseconds;

class QueueTest : public ::testing::Test {
 protected:
  QueueTest() { Open(); }

  void Open() {
    broker_.reset();
    BrokerOptions options;
    options.path = dir_.File("queue.db");
    options.sync = false;
    options.max_lease_bytes = max_lease_bytes_;
    auto broker = OpenSqliteBroker(options, clock_, [this](size_t n) {
      std::vector<MessageId> ids;
      for (size_t i = 0; i < n; ++i) {
        ids.push_back(next_id_.fetch_add(1) + 1);
      }
      return StatusOr<std::vector<MessageId>>(ids);
    });
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(broker).value();
  }

  MessageId Put(std::string payload, NewMessage m = {}) {
    m.payload = std::move(payload);
    auto ids = broker_->Enqueue("q", {m});
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? (*ids)[0] : 0;
  }

  std::vector<Leased> Take(size_t max = 10, milliseconds visibility = milliseconds(1000)) {
    auto leases = broker_->Lease("q", {.max = max, .visibility = visibility});
    EXPECT_TRUE(leases.ok()) << leases.status();
    return leases.ok() ? *leases : std::vector<Leased>{};
  }

  evo::testing::TempDir dir_;
  ManualClock clock_;
  // The IdSource is called from every producer thread at once (queue.hpp).
  std::atomic<MessageId> next_id_{1000};
  size_t max_lease_bytes_ = size_t{16} << 20;
  std::unique_ptr<Broker> broker_;
};

TEST_F(QueueTest, EnqueueLeaseAckDeletesTheMessage) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  const MessageId id = Put("hello");
  auto leases = Take();
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(leases[0].id, id);
  EXPECT_EQ(leases[0].payload, "hello");
  EXPECT_EQ(leases[0].attempt, 1);
  EXPECT_TRUE(Take().empty());  // leased: invisible
  ASSERT_TRUE(broker_->Ack("q", leases[0].lease_id).ok());
  clock_.Advance(std::chrono::seconds(5));
  EXPECT_TRUE(Take().empty());
  auto stats = broker_->Stats("q");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->depth, 0);
  EXPECT_EQ(stats->acked_total, 1);
}

// Many queues written in one group commit (as a webhook fan-out does): each queue's counters
// still add up, whether the group updates them one by one or all in one statement.
TEST_F(QueueTest, CountersOfManyQueuesInOneGroupAddUp) {
  constexpr int kQueues = 40;
  for (int i = 0; i < kQueues; ++i) {
    ASSERT_TRUE(broker_->DeclareQueue("m" + std::to_string(i), {}).ok());
  }
  for (int round = 0; round < 3; ++round) {
    std::atomic<int> left{kQueues};
    std::promise<void> done;
    for (int i = 0; i < kQueues; ++i) {
      std::vector<NewMessage> batch(static_cast<size_t>(i % 3 + 1));
      for (auto& m : batch) {
        m.payload = "x";
      }
      broker_->EnqueueAsync("m" + std::to_string(i), batch,
                            [&](const StatusOr<std::vector<MessageId>>& r) {
                              EXPECT_TRUE(r.ok()) << r.status();
                              if (--left == 0) {
                                done.set_value();
                              }
                            });
    }
    done.get_future().wait();
  }
  for (int i = 0; i < kQueues; ++i) {
    auto stats = broker_->Stats("m" + std::to_string(i));
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->depth, 3 * (i % 3 + 1)) << i;
    EXPECT_EQ(stats->enqueued_total, 3 * (i % 3 + 1)) << i;
  }
  // And acking from all of them at once takes them back down.
  std::atomic<int> left{kQueues};
  std::promise<void> acked;
  for (int i = 0; i < kQueues; ++i) {
    auto leases = broker_->Lease("m" + std::to_string(i), {.max = 100});
    ASSERT_TRUE(leases.ok());
    std::vector<std::string> ids;
    for (const Leased& l : *leases) {
      ids.push_back(l.lease_id);
    }
    broker_->AckBatchAsync("m" + std::to_string(i), ids,
                           [&](const StatusOr<std::vector<Status>>& r) {
                             EXPECT_TRUE(r.ok()) << r.status();
                             if (--left == 0) {
                               acked.set_value();
                             }
                           });
  }
  acked.get_future().wait();
  for (int i = 0; i < kQueues; ++i) {
    auto stats = broker_->Stats("m" + std::to_string(i));
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->depth, 0) << i;
    EXPECT_EQ(stats->acked_total, 3 * (i % 3 + 1)) << i;
  }
}

TEST_F(QueueTest, AckBatchAnswersPerLease) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  Put("a");
  Put("b");
  auto leases = Take();
  ASSERT_EQ(leases.size(), 2u);
  auto results = broker_->AckBatch(
      "q", {leases[0].lease_id, "garbage", leases[1].lease_id, leases[0].lease_id});
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 4u);
  EXPECT_TRUE((*results)[0].ok());
  EXPECT_EQ((*results)[1].code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*results)[2].ok());
  EXPECT_EQ((*results)[3].code(), StatusCode::kNotFound);  // acked just before
  EXPECT_EQ(broker_->Stats("q")->depth, 0);
  EXPECT_EQ(broker_->AckBatch("q", {}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(QueueTest, UnknownQueueAndBadNamesAreRefused) {
  EXPECT_EQ(broker_->Enqueue("nope", {{.payload = "x"}}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(broker_->Lease("nope", {}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(broker_->Stats("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(broker_->Stats("bad name!").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broker_->DeclareQueue("", {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broker_->DeclareQueue("q", {.max_attempts = 0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broker_->DeleteQueue("nope").code(), StatusCode::kNotFound);
}

TEST_F(QueueTest, ExpiredLeaseIsRedeliveredAndTheOldLeaseRefused) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  Put("a");
  auto first = Take(1, milliseconds(1000));
  ASSERT_EQ(first.size(), 1u);
  clock_.Advance(milliseconds(999));
  EXPECT_TRUE(Take().empty());
  clock_.Advance(milliseconds(2));
  // Run out but not yet re-leased: ack is refused, the message is still there.
  Status late = broker_->Ack("q", first[0].lease_id);
  EXPECT_EQ(late.code(), StatusCode::kFailedPrecondition) << late;
  auto second = Take(1, milliseconds(1000));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].attempt, 2);
  EXPECT_NE(second[0].lease_id, first[0].lease_id);
  EXPECT_EQ(broker_->Ack("q", first[0].lease_id).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(broker_->Ack("q", second[0].lease_id).ok());
  EXPECT_EQ(broker_->Ack("q", second[0].lease_id).code(), StatusCode::kNotFound);
  EXPECT_EQ(broker_->Stats("q")->expired_leases_total, 1);
}

TEST_F(QueueTest, MalformedAndUnknownLeasesAreClearErrors) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  for (const char* bad : {"", "xyz", "00000000000003e8", "00000000000003e8-", "00000000000003E8-1",
                          "00000000000003e8-0", "00000000000003e8-1x", "g0000000000003e8-1"}) {
    EXPECT_EQ(broker_->Ack("q", bad).code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(broker_->Ack("q", FormatLeaseId(424242, 1)).code(), StatusCode::kNotFound);
  EXPECT_EQ(broker_->Nack("q", FormatLeaseId(424242, 1), {}).code(), StatusCode::kNotFound);
  EXPECT_EQ(broker_->Extend("q", FormatLeaseId(424242, 1), milliseconds(10)).status().code(),
            StatusCode::kNotFound);
  auto ref = ParseLeaseId(FormatLeaseId(0x1234abcd, 17));
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->id, 0x1234abcdu);
  EXPECT_EQ(ref->attempt, 17);
}

TEST_F(QueueTest, NackDelaysAndRecordsHistoryThenDeadLettersAfterMaxAttempts) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {.max_attempts = 3}).ok());
  const MessageId id = Put("p", {.headers = {{"k", "v"}}});
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto leases = Take();
    ASSERT_EQ(leases.size(), 1u) << attempt;
    EXPECT_EQ(leases[0].attempt, attempt);
    ASSERT_TRUE(broker_
                    ->Nack("q", leases[0].lease_id,
                           {.delay = milliseconds(500), .error = "boom " + std::to_string(attempt)})
                    .ok());
    EXPECT_TRUE(Take().empty());  // delayed
    clock_.Advance(milliseconds(500));
  }
  EXPECT_TRUE(Take().empty());  // dead now
  auto stats = broker_->Stats("q");
  EXPECT_EQ(stats->depth, 0);
  EXPECT_EQ(stats->dead_letters, 1);
  EXPECT_EQ(stats->nacked_total, 3);
  auto dead = broker_->GetDeadLetter("q", id);
  ASSERT_TRUE(dead.ok()) << dead.status();
  EXPECT_EQ(dead->payload, "p");
  EXPECT_EQ(dead->attempts, 3);
  EXPECT_EQ(dead->last_error, "boom 3");
  ASSERT_EQ(dead->history.size(), 3u);
  EXPECT_EQ(dead->history[0].error, "boom 1");
  EXPECT_EQ(dead->history[0].attempt, 1);
  EXPECT_EQ(dead->headers, (Headers{{"k", "v"}}));
}

TEST_F(QueueTest, NackWithoutCountingKeepsTheAttemptBudget) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {.max_attempts = 1}).ok());
  Put("x");
  for (int i = 0; i < 3; ++i) {
    auto leases = Take();
    ASSERT_EQ(leases.size(), 1u) << i;
    EXPECT_EQ(leases[0].attempt, 1);
    ASSERT_TRUE(broker_
                    ->Nack("q", leases[0].lease_id,
                           {.delay = milliseconds(0), .error = "", .count_attempt = false})
                    .ok());
  }
  auto leases = Take();
  ASSERT_EQ(leases.size(), 1u);
  ASSERT_TRUE(broker_->Nack("q", leases[0].lease_id, {.error = "real failure"}).ok());
  EXPECT_EQ(broker_->Stats("q")->dead_letters, 1);
  EXPECT_EQ(broker_->ListDeadLetters("q", std::nullopt, 10)->items[0].history.size(), 1u);
}

TEST_F(QueueTest, LeaseRunningOutOnTheLastAttemptDeadLetters) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {.max_attempts = 1}).ok());
  const MessageId id = Put("x");
  ASSERT_EQ(Take(1, milliseconds(100)).size(), 1u);
  clock_.Advance(milliseconds(200));
  EXPECT_TRUE(Take().empty());
  auto dead = broker_->GetDeadLetter("q", id);
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(dead->last_error, "lease expired");
}

TEST_F(QueueTest, FailDeadLettersAtOnce) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {.max_attempts = 10}).ok());
  const MessageId id = Put("x");
  auto leases = Take();
  ASSERT_TRUE(broker_->Fail("q", leases[0].lease_id, "400 bad request").ok());
  EXPECT_EQ(broker_->GetDeadLetter("q", id)->last_error, "400 bad request");
  EXPECT_EQ(broker_->Fail("q", leases[0].lease_id, "again").code(), StatusCode::kNotFound);
}

TEST_F(QueueTest, ExtendKeepsTheLeaseAlive) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  Put("x");
  auto leases = Take(1, milliseconds(1000));
  clock_.Advance(milliseconds(900));
  auto until = broker_->Extend("q", leases[0].lease_id, milliseconds(1000));
  ASSERT_TRUE(until.ok()) << until.status();
  EXPECT_EQ(*until, UnixMillis(clock_.Now()) + 1000);
  clock_.Advance(milliseconds(900));
  EXPECT_TRUE(Take().empty());
  EXPECT_TRUE(broker_->Ack("q", leases[0].lease_id).ok());
  EXPECT_EQ(broker_->Extend("q", leases[0].lease_id, milliseconds(0)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(QueueTest, OrderingKeyLeasesOneAtATimeInOrder) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  const MessageId a1 = Put("a1", {.ordering_key = "A"});
  const MessageId a2 = Put("a2", {.ordering_key = "A"});
  const MessageId a3 = Put("a3", {.ordering_key = "A"});
  const MessageId b1 = Put("b1", {.ordering_key = "B"});
  const MessageId free = Put("free");
  auto leases = Take();
  std::vector<MessageId> got;
  got.reserve(leases.size());
  for (const auto& l : leases) {
    got.push_back(l.id);
  }
  EXPECT_EQ(got, (std::vector<MessageId>{a1, b1, free}));
  EXPECT_EQ(broker_->Stats("q")->delayed, 2);  // a2, a3 wait behind a1
  // Nack keeps a1 at the head.
  ASSERT_TRUE(broker_->Nack("q", leases[0].lease_id, {}).ok());
  auto again = Take();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, a1);
  ASSERT_TRUE(broker_->Ack("q", again[0].lease_id).ok());
  auto next = Take();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].id, a2);
  ASSERT_TRUE(broker_->Fail("q", next[0].lease_id, "x").ok());  // dead letter also unparks
  next = Take();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].id, a3);
}

TEST_F(QueueTest, DedupeKeyReturnsTheFirstIdWithinTheWindow) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {.dedupe_window = milliseconds(60'000)}).ok());
  const MessageId first = Put("x", {.dedupe_key = "order-1"});
  EXPECT_EQ(Put("y", {.dedupe_key = "order-1"}), first);
  auto batch = broker_->Enqueue(
      "q", {{.payload = "z", .dedupe_key = "order-2"}, {.payload = "z", .dedupe_key = "order-2"}});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ((*batch)[0], (*batch)[1]);
  EXPECT_EQ(broker_->Stats("q")->depth, 2);
  EXPECT_EQ(broker_->Stats("q")->deduplicated_total, 2);
  clock_.Advance(milliseconds(60'001));
  EXPECT_NE(Put("x", {.dedupe_key = "order-1"}), first);
}

TEST_F(QueueTest, HighLaneIsLeasedBeforeNormalAndLow) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  const MessageId low = Put("low", {.lane = Lane::kLow});
  const MessageId normal = Put("normal");
  const MessageId high = Put("high", {.lane = Lane::kHigh});
  std::vector<MessageId> order;
  for (int i = 0; i < 3; ++i) {
    auto l = Take(1);
    ASSERT_EQ(l.size(), 1u);
    order.push_back(l[0].id);
  }
  EXPECT_EQ(order, (std::vector<MessageId>{high, normal, low}));
  EXPECT_EQ(ParseLane("bulk").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseLane(LaneName(Lane::kLow)), Lane::kLow);
}

TEST_F(QueueTest, DelayedMessageBecomesVisibleOnTime) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  Put("later", {.delay = milliseconds(5000)});
  EXPECT_TRUE(Take().empty());
  EXPECT_EQ(broker_->Stats("q")->delayed, 1);
  clock_.Advance(milliseconds(5000));
  EXPECT_EQ(Take().size(), 1u);
}

TEST_F(QueueTest, BadMessagesAreRefusedAndNothingIsStored) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {.max_payload_bytes = 10}).ok());
  auto big = broker_->Enqueue("q", {{.payload = "ok"}, {.payload = std::string(11, 'x')}});
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(big.status().GetPayload(kPayloadHttpStatus).value_or(""), "413");
  EXPECT_EQ(broker_->Enqueue("q", {{.payload = "x", .delay = milliseconds(-1)}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(broker_->Enqueue("q", {}).status().code(), StatusCode::kInvalidArgument);
  std::vector<NewMessage> many(1001, NewMessage{.payload = "x"});
  EXPECT_EQ(broker_->Enqueue("q", many).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broker_->Lease("q", {.max = 0}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broker_->Lease("q", {.max = 1001}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broker_->Lease("q", {.max = 1, .visibility = milliseconds(-5)}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(broker_->Stats("q")->depth, 0);
  EXPECT_EQ(broker_->Stats("q")->enqueued_total, 0);
}

TEST_F(QueueTest, RedriveAndPurgeDeadLettersWithFilters) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {.max_attempts = 1}).ok());
  std::vector<MessageId> ids;
  ids.reserve(5);
  for (int i = 0; i < 5; ++i) {
    ids.push_back(Put(fmt::format("m{}", i)));
  }
  auto leases = Take();
  ASSERT_EQ(leases.size(), 5u);
  for (size_t i = 0; i < leases.size(); ++i) {
    ASSERT_TRUE(broker_->Fail("q", leases[i].lease_id, i % 2 == 0 ? "timeout" : "http 500").ok());
  }
  auto page = broker_->ListDeadLetters("q", std::nullopt, 2);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->items.size(), 2u);
  ASSERT_TRUE(page->next_after);
  auto rest = broker_->ListDeadLetters("q", page->next_after, 10);
  EXPECT_EQ(rest->items.size(), 3u);
  EXPECT_FALSE(rest->next_after);

  auto redriven = broker_->Redrive("q", {.error_contains = "timeout"});
  ASSERT_TRUE(redriven.ok());
  EXPECT_EQ(*redriven, 3);
  auto back = Take();
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].attempt, 1);  // attempts start over
  // ... but lease ids are never reused: the lease from before the dead letter stays dead.
  EXPECT_NE(back[0].lease_id, leases[0].lease_id);
  EXPECT_EQ(broker_->Ack("q", leases[0].lease_id).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(*broker_->Redrive("q", {.ids = {ids[1]}}), 1);
  EXPECT_EQ(*broker_->PurgeDeadLetters("q", {}), 1);
  auto stats = broker_->Stats("q");
  EXPECT_EQ(stats->dead_letters, 0);
  EXPECT_EQ(stats->depth, 4);
  EXPECT_EQ(stats->redriven_total, 4);
  EXPECT_EQ(broker_->GetDeadLetter("q", ids[3]).status().code(), StatusCode::kNotFound);
}

TEST_F(QueueTest, EverythingSurvivesAReopen) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {.max_attempts = 1}).ok());
  Put("keep");
  Put("ack");
  Put("dead");
  Put("leased");
  auto leases = Take(3, milliseconds(60'000));
  ASSERT_EQ(leases.size(), 3u);
  ASSERT_TRUE(broker_->Ack("q", leases[1].lease_id).ok());
  ASSERT_TRUE(broker_->Fail("q", leases[2].lease_id, "x").ok());
  Open();
  auto stats = broker_->Stats("q");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->options.max_attempts, 1);
  EXPECT_EQ(stats->depth, 2);
  EXPECT_EQ(stats->in_flight, 1);
  EXPECT_EQ(stats->ready, 1);
  EXPECT_EQ(stats->dead_letters, 1);
  EXPECT_EQ(stats->acked_total, 1);
  // The lease taken before the restart is still valid.
  EXPECT_TRUE(broker_->Ack("q", leases[0].lease_id).ok());
  auto left = Take();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].payload, "leased");
}

TEST_F(QueueTest, LongPollWakesOnEnqueueAndTimesOut) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  std::promise<StatusOr<std::vector<Leased>>> got;
  broker_->LeaseAsync("q", {.max = 5, .wait = milliseconds(10'000)},
                      [&](StatusOr<std::vector<Leased>> r) { got.set_value(std::move(r)); });
  auto future = got.get_future();
  EXPECT_EQ(future.wait_for(milliseconds(150)), std::future_status::timeout);
  Put("wake");
  ASSERT_EQ(future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto leases = future.get();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].payload, "wake");

  std::promise<StatusOr<std::vector<Leased>>> empty;
  broker_->LeaseAsync("q", {.max = 5, .wait = milliseconds(1000)},
                      [&](StatusOr<std::vector<Leased>> r) { empty.set_value(std::move(r)); });
  clock_.Advance(milliseconds(1001));
  auto none = empty.get_future();
  ASSERT_EQ(none.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(none.get()->empty());
}

// Review D6: at SIGTERM a long poll waited out its whole wait (and the HTTP drain with it).
// EndLongPolls answers the waiting ones now and later ones at once, without time passing.
TEST_F(QueueTest, EndLongPollsAnswersWaitingAndLaterLongPolls) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  auto poll = [&] {
    auto got = std::make_shared<std::promise<StatusOr<std::vector<Leased>>>>();
    broker_->LeaseAsync("q", {.max = 5, .wait = milliseconds(20'000)},
                        [got](StatusOr<std::vector<Leased>> r) { got->set_value(std::move(r)); });
    return got->get_future();
  };
  auto waiting = poll();
  EXPECT_EQ(waiting.wait_for(milliseconds(150)), std::future_status::timeout);
  broker_->EndLongPolls();
  // The manual clock stands still: only EndLongPolls can answer these.
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto answer = waiting.get();
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_TRUE(answer->empty());
  auto later = poll();
  ASSERT_EQ(later.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(later.get()->empty());
  // Everything else goes on: what is there is leased at once.
  Put("x");
  auto leases = broker_->Lease("q", {.max = 5, .wait = milliseconds(20'000)});
  ASSERT_TRUE(leases.ok());
  EXPECT_EQ(leases->size(), 1u);
}

// Review D5: the dedupe sweep deleted at most 10,000 expired keys a minute, so any sustained
// rate above ~167 keys/s (webhooks add one per delivery) grew queue_dedupe without bound.
TEST_F(QueueTest, DedupeSweepDeletesEveryExpiredKeyNotTenThousandAMinute) {
  ASSERT_TRUE(
      broker_->DeclareQueue("q", {.dedupe_window = milliseconds(1000), .max_payload_bytes = 64})
          .ok());
  constexpr int kKeys = 25'000;
  for (int batch = 0; batch < kKeys / 1000; ++batch) {
    std::vector<NewMessage> messages(1000);
    for (int i = 0; i < 1000; ++i) {
      messages[static_cast<size_t>(i)].payload = "x";
      messages[static_cast<size_t>(i)].dedupe_key = fmt::format("k{}", batch * 1000 + i);
    }
    ASSERT_TRUE(broker_->Enqueue("q", std::move(messages)).ok());
  }
  auto db = store::OpenSqlite({.path = dir_.File("queue.db"), .read_only = true});
  ASSERT_TRUE(db.ok()) << db.status();
  auto keys = [&] {
    auto row = (*db)->QueryOne("SELECT count(*) FROM queue_dedupe");
    return row.ok() ? std::get<int64_t>((*row)[0]) : -1;
  };
  EXPECT_EQ(keys(), kKeys);
  // Past the window and one sweep interval; the writer notices time on its next round.
  clock_.Advance(std::chrono::seconds(61));
  Put("nudge");
  int64_t left = keys();
  for (int i = 0; i < 3000 && left != 0; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
    left = keys();
  }
  EXPECT_EQ(left, 0) << "expired dedupe keys left after one sweep interval";
}

// Review D17 / security D4: a lease answer had no byte cap (40 leased messages of 15 MiB took
// 3.2 GB). It stops before the message that would go over max_bytes, but always holds one.
TEST_F(QueueTest, LeaseStopsAtMaxBytesButAlwaysTakesOneMessage) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {.max_payload_bytes = size_t{1} << 20}).ok());
  const std::string big(100'000, 'x');
  for (int i = 0; i < 10; ++i) {
    Put(big + std::to_string(i));
  }
  auto three = broker_->Lease("q", {.max = 10, .max_bytes = 350'000});
  ASSERT_TRUE(three.ok()) << three.status();
  ASSERT_EQ(three->size(), 3u);
  EXPECT_EQ((*three)[2].payload, big + "2");  // oldest first: the cap keeps the order
  auto one = broker_->Lease("q", {.max = 10, .max_bytes = 1});
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->size(), 1u);  // bigger than the cap alone, and still delivered
  EXPECT_EQ((*one)[0].payload, big + "3");
  // The default is BrokerOptions::max_lease_bytes.
  max_lease_bytes_ = 250'000;
  Open();
  auto two = broker_->Lease("q", {.max = 10});
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->size(), 2u);
  EXPECT_EQ(broker_->Lease("q", {.max = 10, .max_bytes = 250'001}).status().code(),
            StatusCode::kInvalidArgument);
  // Dead-letter pages are capped the same way.
  for (const Leased& l : *two) {
    ASSERT_TRUE(broker_->Fail("q", l.lease_id, "no").ok());
  }
  for (auto more = Take(10); !more.empty(); more = Take(10)) {
    EXPECT_EQ(more.size(), 2u);
    for (const Leased& l : more) {
      ASSERT_TRUE(broker_->Fail("q", l.lease_id, "no").ok());
    }
  }
  size_t pages = 0;
  size_t seen = 0;
  std::optional<MessageId> after;
  do {
    auto page = broker_->ListDeadLetters("q", after, 1000);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_FALSE(page->items.empty());
    EXPECT_LE(page->items.size(), 2u);
    seen += page->items.size();
    after = page->next_after;
    ++pages;
  } while (after && pages < 10);
  EXPECT_EQ(seen, 6u);  // 2 + the 4 not leased before
}

// Review D13: a deleted queue's metric series stayed forever (20 create+delete left 21
// evo_queue_depth series for 1 live queue, 273 evo_queue_* series).
TEST_F(QueueTest, DeletedQueuesLeaveNoMetricSeries) {
  broker_.reset();
  metrics::Registry registry;
  BrokerOptions options;
  options.path = dir_.File("metrics.db");
  options.sync = false;
  auto broker = OpenSqliteBroker(
      options, clock_,
      [this](size_t n) {
        std::vector<MessageId> ids;
        for (size_t i = 0; i < n; ++i) {
          ids.push_back(next_id_.fetch_add(1) + 1);
        }
        return StatusOr<std::vector<MessageId>>(ids);
      },
      &registry);
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto series = [&registry](std::string_view prefix) {
    const std::string text = registry.RenderText();
    size_t n = 0;
    for (size_t at = text.find(prefix); at != std::string::npos; at = text.find(prefix, at + 1)) {
      n += at == 0 || text[at - 1] == '\n';
    }
    return n;
  };
  ASSERT_TRUE((*broker)->DeclareQueue("live", {}).ok());
  for (int i = 0; i < 20; ++i) {
    const std::string name = fmt::format("gone{}", i);
    ASSERT_TRUE((*broker)->DeclareQueue(name, {}).ok());
    ASSERT_TRUE((*broker)->Enqueue(name, {{.payload = "x"}}).ok());
    ASSERT_TRUE((*broker)->DeleteQueue(name).ok());
  }
  EXPECT_EQ(series("evo_queue_depth{"), 1u);
  EXPECT_EQ(series("evo_queue_enqueued_total{"), 1u);
  EXPECT_EQ(series("evo_queue_"), 13u + 2u);  // 13 per queue, plus the 2 writer counters
  // A name declared again gets fresh series, counted from zero.
  ASSERT_TRUE((*broker)->DeclareQueue("gone3", {}).ok());
  ASSERT_TRUE((*broker)->Enqueue("gone3", {{.payload = "x"}}).ok());
  EXPECT_NE(registry.RenderText().find("evo_queue_enqueued_total{queue=\"gone3\"} 1\n"),
            std::string::npos);
  (*broker)->Stop();
}

// Review D16: visibility used the wall clock as it was, so after a restart with the clock
// 60 s back a committed, ready message was not leasable ("available 52 s in the future").
// The queue's time never goes back: it stands still until the wall clock catches up.
TEST_F(QueueTest, AClockSteppedBackDoesNotHideReadyMessages) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  Put("before restart");
  const auto t0 = clock_.Now();
  clock_.SetWall(t0 - std::chrono::seconds(60));
  Open();
  auto stats = broker_->Stats("q");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready, 1);
  auto leases = Take(10, milliseconds(30'000));
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(leases[0].payload, "before restart");
  // The lease runs on the queue's time: 30 s after t0, however far back the wall clock is.
  EXPECT_EQ(leases[0].lease_expires_unix_ms, UnixMillis(t0) + 30'000);

  // The same within one process: stepped back again, a message put just before is ready.
  clock_.SetWall(t0);
  Put("in process");
  clock_.SetWall(t0 - std::chrono::seconds(120));
  auto again = Take(10, milliseconds(60'000));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].payload, "in process");
  // And a delay still runs from the queue's time: 10 s once the wall clock is back past t0.
  Put("delayed", {.delay = milliseconds(10'000)});
  clock_.SetWall(t0 + std::chrono::seconds(9));
  EXPECT_TRUE(Take(10).empty());
  clock_.SetWall(t0 + std::chrono::seconds(10));
  auto delayed = Take(10);
  ASSERT_EQ(delayed.size(), 1u);
  EXPECT_EQ(delayed[0].payload, "delayed");
}

// Nothing read from disk may throw: a stored attempt history with fields of the wrong type
// reads as defaults (it used nlohmann's throwing value()).
TEST_F(QueueTest, AStoredHistoryOfTheWrongShapeReadsAsDefaults) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  const MessageId id = Put("x");
  ASSERT_TRUE(broker_->Fail("q", Take()[0].lease_id, "boom").ok());
  {
    auto db = store::OpenSqlite({.path = dir_.File("queue.db")});
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)
                    ->Exec("UPDATE queue_dead_letters SET history = ?",
                           {std::string(R"([{"attempt":"1","at":null,"error":5},7])")})
                    .ok());
  }
  auto dead = broker_->GetDeadLetter("q", id);
  ASSERT_TRUE(dead.ok()) << dead.status();
  ASSERT_EQ(dead->history.size(), 1u);
  EXPECT_EQ(dead->history[0].attempt, 0);
  EXPECT_EQ(dead->history[0].error, "");
  EXPECT_EQ(broker_->ListDeadLetters("q", std::nullopt, 10)->items.size(), 1u);
}

TEST_F(QueueTest, ConcurrentProducersShareCommitsAndLoseNothing) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<MessageId> seen;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto ids = broker_->Enqueue("q", {{.payload = "x"}});
        ASSERT_TRUE(ids.ok());
        std::lock_guard lock(mu);
        seen.insert((*ids)[0]);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(seen.size(), 1600u);
  EXPECT_EQ(broker_->Stats("q")->depth, 1600);
  size_t leased = 0;
  while (true) {
    auto l = Take(1000, milliseconds(60'000));
    if (l.empty()) {
      break;
    }
    for (const auto& m : l) {
      ASSERT_TRUE(seen.count(m.id));
      ASSERT_TRUE(broker_->Ack("q", m.lease_id).ok());
    }
    leased += l.size();
  }
  EXPECT_EQ(leased, 1600u);
}

// Holds the writer thread inside an operation's callback until the returned promise is set,
// so that every operation submitted meanwhile lands in the next group commit.
std::promise<void> BlockWriter(Broker& broker, const std::string& queue) {
  std::promise<void> release;
  auto blocked = std::make_shared<std::promise<void>>();
  std::future<void> in_callback = blocked->get_future();
  broker.EnqueueAsync(
      queue, {{.payload = "blocker"}},
      [gate = release.get_future().share(), blocked](const StatusOr<std::vector<MessageId>>&) {
        blocked->set_value();
        gate.wait();
      });
  in_callback.wait();
  return release;
}

// Review D15: one operation's store error aborted its whole group commit, failing every
// unrelated producer in the group (15 duplicate ids from a racy IdSource failed 102 enqueues).
TEST_F(QueueTest, OneFailingOperationFailsAloneAndTheRestOfItsGroupCommits) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  const MessageId first = Put("first");
  std::promise<void> release = BlockWriter(*broker_, "q");
  std::vector<std::future<StatusOr<std::vector<MessageId>>>> results;
  auto enqueue = [&](std::vector<NewMessage> messages) {
    auto promise = std::make_shared<std::promise<StatusOr<std::vector<MessageId>>>>();
    results.push_back(promise->get_future());
    broker_->EnqueueAsync("q", std::move(messages), [promise](StatusOr<std::vector<MessageId>> r) {
      promise->set_value(std::move(r));
    });
  };
  enqueue({{.payload = "a"}});
  enqueue({{.payload = "b"}, {.payload = "c"}});
  // The id source hands out an id already stored: this batch (whose first message is fine)
  // must fail all or nothing, alone.
  next_id_.store(first - 2);
  enqueue({{.payload = "fresh"}, {.payload = "duplicate"}});
  next_id_.store(first + 100);
  enqueue({{.payload = "d"}});
  release.set_value();
  std::vector<StatusOr<std::vector<MessageId>>> got;
  for (auto& f : results) {
    got.push_back(f.get());
  }
  EXPECT_TRUE(got[0].ok()) << got[0].status();
  EXPECT_TRUE(got[1].ok()) << got[1].status();
  EXPECT_EQ(got[2].status().code(), StatusCode::kAlreadyExists) << got[2].status();
  EXPECT_TRUE(got[3].ok()) << got[3].status();
  std::multiset<std::string> payloads;
  for (const Leased& l : Take(100)) {
    payloads.insert(l.payload);
  }
  EXPECT_EQ(payloads, (std::multiset<std::string>{"first", "blocker", "a", "b", "c", "d"}));
  auto stats = broker_->Stats("q");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->depth, 6);  // the counters leave the failed batch out too
  EXPECT_EQ(stats->enqueued_total, 6);
}

// A callback that throws runs on the writer thread: it is logged, the other operations of
// its group are still answered, and the broker goes on serving (no std::terminate).
TEST_F(QueueTest, AThrowingCallbackDoesNotStopTheWriter) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  std::promise<void> release = BlockWriter(*broker_, "q");
  broker_->EnqueueAsync("q", {{.payload = "x"}}, [](const StatusOr<std::vector<MessageId>>&) {
    throw std::runtime_error("callback bug");
  });
  std::promise<StatusOr<std::vector<MessageId>>> after;
  broker_->EnqueueAsync("q", {{.payload = "y"}}, [&after](StatusOr<std::vector<MessageId>> r) {
    after.set_value(std::move(r));
  });
  release.set_value();
  auto answered = after.get_future().get();
  EXPECT_TRUE(answered.ok()) << answered.status();
  broker_->LeaseAsync("q", {.max = 10}, [](const StatusOr<std::vector<Leased>>&) {
    throw 42;
  });  // not an exception type
  Put("z");
  EXPECT_EQ(broker_->Stats("q")->depth, 4);
  EXPECT_EQ(Take(100).size(), 1u);  // the thrown-away lease took "blocker", "x" and "y"
}

TEST_F(QueueTest, DeleteQueueRemovesItsMessages) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  Put("x");
  ASSERT_TRUE(broker_->DeleteQueue("q").ok());
  EXPECT_EQ(broker_->Stats("q").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  EXPECT_EQ(broker_->Stats("q")->depth, 0);
  EXPECT_TRUE(Take().empty());
}

TEST_F(QueueTest, StatsCountReadyInFlightDelayedAndOldestAge) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  Put("a");
  Put("b");
  Put("c", {.delay = milliseconds(10'000)});
  clock_.Advance(milliseconds(3000));
  ASSERT_EQ(Take(1, milliseconds(60'000)).size(), 1u);
  auto s = broker_->Stats("q");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->depth, 3);
  EXPECT_EQ(s->ready, 1);
  EXPECT_EQ(s->in_flight, 1);
  EXPECT_EQ(s->delayed, 1);
  EXPECT_DOUBLE_EQ(s->oldest_ready_age_seconds, 3.0);
  auto all = broker_->ListQueues();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].name, "q");
}

TEST_F(QueueTest, ReadOnlyBrokerSeesButDoesNotWrite) {
  ASSERT_TRUE(broker_->DeclareQueue("q", {}).ok());
  Put("x");
  BrokerOptions options;
  options.path = dir_.File("queue.db");
  options.read_only = true;
  auto ro = OpenSqliteBroker(options, clock_, [](size_t) {
    return StatusOr<std::vector<MessageId>>(std::vector<MessageId>{});
  });
  ASSERT_TRUE(ro.ok()) << ro.status();
  EXPECT_EQ((*ro)->Stats("q")->depth, 1);
  EXPECT_EQ((*ro)->Enqueue("q", {{.payload = "y"}}).status().code(),
            StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace evo::queue
