#include "bandit/pending.hpp"

#include <gtest/gtest.h>

#include <cstring>
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

TEST(PendingIndex, ExpireAndPurgeTakeAtMostTheStepsTheyAreGiven) {
  PendingIndex p;
  for (int i = 0; i < 10; ++i) {
    p.Add(0, 100);
  }
  p.Find(3)->state = PullState::kRewarded;  // looked at, not reported
  std::vector<uint64_t> expired;
  const auto collect = [&](uint64_t seq, uint16_t) {
    expired.push_back(seq);
    return true;
  };
  EXPECT_TRUE(p.Expire(100, collect, 4));
  EXPECT_EQ(expired, (std::vector<uint64_t>{1, 2, 4}));
  EXPECT_EQ(p.cursor(), 5u);
  EXPECT_FALSE(p.Expire(100, collect, 6));  // exactly the rest, then the end
  EXPECT_EQ(expired.size(), 9u);
  EXPECT_FALSE(p.Expire(100, collect, 1));  // nothing left
  EXPECT_TRUE(p.Purge(200, 10, 7));
  EXPECT_EQ(p.base(), 8u);
  EXPECT_FALSE(p.Purge(200, 10, 3));
  EXPECT_EQ(p.size(), 0u);
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

// Every field of every entry, and where expiry and sequences stand.
void ExpectSameIndex(PendingIndex& a, PendingIndex& b) {
  ASSERT_EQ(a.base(), b.base());
  ASSERT_EQ(a.next_seq(), b.next_seq());
  EXPECT_EQ(a.cursor(), b.cursor());
  for (uint64_t s = a.base(); s < a.next_seq(); ++s) {
    const PendingIndex::Entry* x = a.Find(s);
    const PendingIndex::Entry* y = b.Find(s);
    ASSERT_NE(y, nullptr) << s;
    ASSERT_EQ(x->arm, y->arm) << s;
    ASSERT_EQ(x->state, y->state) << s;
    ASSERT_EQ(a.Unix(x->expiry_s), b.Unix(y->expiry_s)) << s;
  }
}

PendingIndex RoundTrip(const PendingIndex& p, size_t* bytes_out = nullptr) {
  std::string bytes;
  p.Serialize(bytes);
  if (bytes_out != nullptr) {
    *bytes_out = bytes.size();
  }
  PendingIndex q;
  std::string_view in(bytes);
  EXPECT_TRUE(q.Deserialize(in));
  EXPECT_TRUE(in.empty());
  return q;
}

TEST(PendingIndex, CompactEncodingRoundTripsMixedStatesAcrossChunks) {
  constexpr uint64_t kChunk = PendingIndex::kChunkSize;
  PendingIndex p;
  // Starts mid-chunk, as after a purge; a journal gap is filled with expired entries.
  p.Restore(kChunk - 1000, 2, 5000, PullState::kPending);
  p.Restore(kChunk - 990, 1, 5000, PullState::kPending);
  uint64_t i = 0;
  while (p.next_seq() < 3 * kChunk + 123) {
    // Chunk 1 uses arms up to 999 (12 bits an entry), the others 3 arms (4 bits); the
    // window shrinks once, so expiry times are not monotone.
    const uint64_t chunk = p.next_seq() / kChunk;
    const auto arm = static_cast<uint16_t>(chunk == 1 ? (i * 7919) % 1000 : i % 3);
    const int64_t expiry = 5000 + static_cast<int64_t>(i / 20000) - (i > 150000 ? 7 : 0);
    const uint64_t seq = p.Add(arm, expiry);
    if (i % 5 == 0) {
      p.Find(seq)->state = PullState::kRewarded;
    }
    ++i;
  }
  int expired = 0;
  std::vector<uint64_t> late;
  p.Expire(5004, [&](uint64_t seq, uint16_t) {
    if (++expired % 3 == 0) {
      late.push_back(seq);
    }
    return true;
  });
  for (uint64_t seq : late) {
    p.Find(seq)->state = PullState::kLateRewarded;
  }
  ASSERT_GT(expired, 0);
  ASSERT_LT(p.cursor(), p.next_seq());  // some still pending

  size_t bytes = 0;
  PendingIndex q = RoundTrip(p, &bytes);
  ExpectSameIndex(p, q);
  // 4 bits an entry in three chunks, 12 bits in one: under 2 bytes an entry, not 8.
  EXPECT_LT(bytes, p.size() * 2);

  // Both behave the same from here on: expiry, purge and new sequences.
  std::vector<uint64_t> from_p;
  std::vector<uint64_t> from_q;
  p.Expire(6000, [&](uint64_t seq, uint16_t) {
    from_p.push_back(seq);
    return true;
  });
  q.Expire(6000, [&](uint64_t seq, uint16_t) {
    from_q.push_back(seq);
    return true;
  });
  EXPECT_EQ(from_p, from_q);
  p.Purge(5010, 5);
  q.Purge(5010, 5);
  EXPECT_EQ(p.base(), q.base());
  EXPECT_EQ(p.Add(1, 7000), q.Add(1, 7000));
}

TEST(PendingIndex, CompactEncodingTakesFourBitsAnEntryForThreeArms) {
  PendingIndex p;
  for (int s = 0; s < 4; ++s) {
    for (int i = 0; i < 100000; ++i) {
      p.Add(static_cast<uint16_t>(i % 3), 1000 + s);  // one expiry run a second
    }
  }
  p.Expire(1001, [](uint64_t, uint16_t) { return true; });
  size_t bytes = 0;
  PendingIndex q = RoundTrip(p, &bytes);
  ExpectSameIndex(p, q);
  // header + per chunk (7 of them): 8 bytes, 1-2 runs of 8 bytes, the last word rounded up
  EXPECT_LE(bytes, 32 + p.size() / 2 + size_t{7} * (8 + 16 + 8));
}

TEST(PendingIndex, CompactEncodingKeepsTheWidestArm) {
  PendingIndex p;
  p.Add(65535, 100);
  p.Add(0, 100);
  p.Add(40000, 101);
  p.Find(2)->state = PullState::kLateRewarded;
  PendingIndex q = RoundTrip(p);
  ExpectSameIndex(p, q);
  EXPECT_EQ(q.Find(1)->arm, 65535);
}

TEST(PendingIndex, AnEmptyIndexRoundTrips) {
  PendingIndex p;
  p.Add(1, 100);
  p.Expire(100, [](uint64_t, uint16_t) { return true; });
  p.Purge(1000, 10);
  ASSERT_EQ(p.size(), 0u);
  PendingIndex q = RoundTrip(p);
  EXPECT_EQ(q.next_seq(), 2u);
  EXPECT_EQ(q.cursor(), 2u);
  EXPECT_EQ(q.Add(0, 2000), 2u);
}

TEST(PendingIndex, MalformedCompactEncodingIsRefused) {
  PendingIndex p;
  for (int i = 0; i < 10; ++i) {
    p.Add(static_cast<uint16_t>(i % 2), 100 + i / 5);  // two runs of 5
  }
  std::string bytes;
  p.Serialize(bytes);
  constexpr size_t kSegment = 32;  // after the header: u32 runs, u32 width, runs...
  const auto refused = [&](size_t at, uint32_t value) {
    std::string bad = bytes;
    std::memcpy(bad.data() + at, &value, 4);
    PendingIndex q;
    std::string_view in(bad);
    return !q.Deserialize(in);
  };
  EXPECT_FALSE(refused(kSegment, 2));      // the same runs: fine
  EXPECT_TRUE(refused(kSegment, 3));       // a run too many
  EXPECT_TRUE(refused(kSegment + 4, 19));  // wider than an arm and a state
  EXPECT_TRUE(refused(kSegment + 4, 1));   // narrower than a state
  EXPECT_TRUE(refused(kSegment + 12, 6));  // run lengths add up to 11, not 10
  EXPECT_TRUE(refused(kSegment + 12, 4));  // ... or to 9
  PendingIndex q;
  std::string_view in(bytes);
  EXPECT_FALSE(q.Deserialize(in, 7));  // an unknown format
}

TEST(PendingIndex, Version1SnapshotsStillLoad) {
  // The previous encoding: the header, then {u32 expiry, u16 arm, u8 state, u8 0} an entry.
  std::string bytes;
  const auto put = [&bytes](const auto& v) {
    bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
  };
  put(uint64_t{10});   // base
  put(uint64_t{11});   // cursor
  put(int64_t{1000});  // epoch
  put(uint64_t{3});    // entries
  const uint8_t states[3] = {2, 0, 1};
  for (uint32_t i = 0; i < 3; ++i) {
    put(uint32_t{60 + i});
    put(static_cast<uint16_t>(i + 4));
    put(states[i]);
    put(uint8_t{0});
  }
  PendingIndex q;
  std::string_view in(bytes);
  ASSERT_TRUE(q.Deserialize(in, PendingIndex::kFormatV1));
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(q.base(), 10u);
  EXPECT_EQ(q.cursor(), 11u);
  EXPECT_EQ(q.next_seq(), 13u);
  EXPECT_EQ(q.Find(10)->state, PullState::kExpired);
  EXPECT_EQ(q.Find(11)->state, PullState::kPending);
  EXPECT_EQ(q.Find(12)->arm, 6);
  EXPECT_EQ(q.Unix(q.Find(12)->expiry_s), 1062);
  bytes[32 + 6] = 4;  // not a state
  PendingIndex r;
  std::string_view bad(bytes);
  EXPECT_FALSE(r.Deserialize(bad, PendingIndex::kFormatV1));
}

}  // namespace
}  // namespace evo::bandit
