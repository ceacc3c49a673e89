#include "bandit/pending.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace evo::bandit {
namespace {

TEST(PendingIndex, SequencesAreConsecutiveAndFoundInConstantTime) {
  PendingIndex p;
  const uint64_t a = p.Add(0, 1000);
  const uint64_t b = p.Add(2, 1000);
  EXPECT_EQ(b, a + 1);
  ASSERT_NE(p.Find(a), nullptr);
  EXPECT_EQ(p.Find(b)->arm, 2);
  EXPECT_EQ(p.Find(b)->state, PullState::kPending);
  EXPECT_EQ(p.Find(b + 1), nullptr);  // never issued
  EXPECT_EQ(p.Find(0), nullptr);
}

TEST(PendingIndex, ExpireReportsEachDuePullOnceOldestFirst) {
  PendingIndex p;
  p.Add(0, 100);
  const uint64_t second = p.Add(1, 100);
  p.Add(2, 200);
  p.Find(second)->state = PullState::kRewarded;  // rewarded in time: not expired
  std::vector<std::pair<uint64_t, uint16_t>> expired;
  p.Expire(99, [&](uint64_t s, uint16_t arm) {
    expired.emplace_back(s, arm);
    return true;
  });
  EXPECT_TRUE(expired.empty());
  p.Expire(150, [&](uint64_t s, uint16_t arm) {
    expired.emplace_back(s, arm);
    return true;
  });
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].second, 0);
  p.Expire(150, [&](uint64_t s, uint16_t arm) {
    expired.emplace_back(s, arm);
    return true;
  });
  EXPECT_EQ(expired.size(), 1u);  // once
  p.Expire(1000, [&](uint64_t s, uint16_t arm) {
    expired.emplace_back(s, arm);
    return true;
  });
  ASSERT_EQ(expired.size(), 2u);
  EXPECT_EQ(expired[1].second, 2);
}

TEST(PendingIndex, ExpiredEntriesStayUntilPurgedOneWindowLater) {
  PendingIndex p;
  const uint64_t s = p.Add(1, 100);
  p.Expire(100, [](uint64_t, uint16_t) { return true; });
  ASSERT_NE(p.Find(s), nullptr);
  EXPECT_EQ(p.Find(s)->state, PullState::kExpired);
  p.Purge(150, 60);
  EXPECT_NE(p.Find(s), nullptr);
  p.Purge(160, 60);
  EXPECT_EQ(p.Find(s), nullptr);
  EXPECT_EQ(p.size(), 0u);
  EXPECT_EQ(p.Add(0, 300), s + 1);  // sequences never repeat
}

TEST(PendingIndex, ARefusedExpiryLeavesThePullPending) {
  PendingIndex p;
  const uint64_t s = p.Add(0, 100);
  p.Expire(200, [](uint64_t, uint16_t) { return false; });
  EXPECT_EQ(p.Find(s)->state, PullState::kPending);
  int calls = 0;
  p.Expire(200, [&](uint64_t, uint16_t) { return ++calls > 0; });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(p.Find(s)->state, PullState::kExpired);
}

TEST(PendingIndex, PurgeNeverDropsWhatExpiryHasNotReached) {
  PendingIndex p;
  p.Add(0, 100);
  p.Purge(10000, 0);  // not yet considered for expiry: kept
  EXPECT_EQ(p.size(), 1u);
}

TEST(PendingIndex, MemoryIsEightBytesAnEntry) { EXPECT_EQ(sizeof(PendingIndex::Entry), 8u); }

TEST(PendingIndex, SerializeRoundTripsExactly) {
  PendingIndex p;
  for (int i = 0; i < 100; ++i) {
    p.Add(static_cast<uint16_t>(i % 3), 1000 + i);
  }
  p.Find(5)->state = PullState::kRewarded;
  p.Expire(1010, [](uint64_t, uint16_t) { return true; });
  std::string bytes;
  p.Serialize(bytes);
  PendingIndex q;
  std::string_view in(bytes);
  ASSERT_TRUE(q.Deserialize(in));
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(q.next_seq(), p.next_seq());
  EXPECT_EQ(q.cursor(), p.cursor());
  for (uint64_t s = p.base(); s < p.next_seq(); ++s) {
    EXPECT_EQ(q.Find(s)->arm, p.Find(s)->arm);
    EXPECT_EQ(q.Find(s)->state, p.Find(s)->state);
    EXPECT_EQ(q.Unix(q.Find(s)->expiry_s), p.Unix(p.Find(s)->expiry_s));
  }
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    PendingIndex r;
    std::string_view part(bytes.data(), cut);
    EXPECT_FALSE(r.Deserialize(part)) << cut;
  }
}

TEST(PendingIndex, ACaptureIsNotChangedByLaterWrites) {
  PendingIndex p;
  for (uint64_t i = 0; i < PendingIndex::kChunkSize + 10; ++i) {
    p.Add(1, 1000);
  }
  const PendingIndex::Captured view = p.Capture();
  std::string before;
  PendingIndex::Serialize(view, before);
  p.Find(5)->state = PullState::kRewarded;  // in a captured chunk: copied first
  p.Add(2, 1000);                           // a new entry in the captured last chunk
  p.Expire(2000, [](uint64_t, uint16_t) { return true; });
  std::string after;
  PendingIndex::Serialize(view, after);
  EXPECT_EQ(before, after);
  EXPECT_EQ(p.Find(5)->state, PullState::kRewarded);
  EXPECT_EQ(p.Find(6)->state, PullState::kExpired);
}

TEST(PendingIndex, PurgedChunksAreFreed) {
  PendingIndex p;
  for (uint64_t i = 0; i < 3 * PendingIndex::kChunkSize; ++i) {
    p.Add(0, 100);
  }
  p.Expire(100, [](uint64_t, uint16_t) { return true; });
  p.Purge(200, 10);
  EXPECT_EQ(p.size(), 0u);
  EXPECT_TRUE(p.Capture().chunks.size() <= 1u);
  EXPECT_EQ(p.Add(0, 300), 3 * PendingIndex::kChunkSize + 1);
}

TEST(PendingIndex, RestoreRebuildsFromAJournal) {
  PendingIndex p;
  p.Restore(10, 1, 500, PullState::kPending);
  p.Restore(11, 2, 501, PullState::kPending);
  p.Restore(11, 0, 501, PullState::kPending);  // a repeat is ignored
  EXPECT_EQ(p.next_seq(), 12u);
  EXPECT_EQ(p.Find(11)->arm, 2);
  EXPECT_EQ(p.Find(9), nullptr);
  EXPECT_EQ(p.Add(0, 600), 12u);
}

}  // namespace
}  // namespace evo::bandit
