// feature_table.hpp uses size_t without including <cstddef> (reported); until it does, this
// test supplies it first.
#include <cstddef>

#include "spam/feature_table.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace evo::spam {
namespace {

TEST(FeatureTable, EmptyTableFindsNothing) {
  const FeatureTable t;
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.Find(42), FeatureTable::kMissing);
}

TEST(FeatureTable, InsertGivesDenseIndicesInInsertionOrder) {
  FeatureTable t;
  EXPECT_EQ(t.Insert(100), 0u);
  EXPECT_EQ(t.Insert(7), 1u);
  EXPECT_EQ(t.Insert(100), 0u);  // already there: same index, no growth
  EXPECT_EQ(t.Insert(~uint64_t{0}), 2u);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.Find(7), 1u);
  EXPECT_EQ(t.Find(~uint64_t{0}), 2u);
  EXPECT_EQ(t.Find(8), FeatureTable::kMissing);
}

TEST(FeatureTable, KeepsEveryKeyThroughGrowth) {
  FeatureTable t;
  std::mt19937_64 rng(5);
  std::unordered_map<uint64_t, uint32_t> expected;
  for (int i = 0; i < 100000; ++i) {
    const uint64_t key = rng() | 2;  // never 0 or 1 (stored alike)
    const uint32_t index = t.Insert(key);
    auto [it, inserted] = expected.emplace(key, index);
    ASSERT_EQ(it->second, index) << "key " << key;
    if (inserted) {
      ASSERT_EQ(index, expected.size() - 1);
    }
  }
  ASSERT_EQ(t.size(), expected.size());
  for (const auto& [key, index] : expected) {
    ASSERT_EQ(t.Find(key), index);
  }
  for (int i = 0; i < 1000; ++i) {
    const uint64_t absent = rng() | 2;
    if (!expected.contains(absent)) {
      EXPECT_EQ(t.Find(absent), FeatureTable::kMissing);
    }
  }
}

TEST(FeatureTable, KeysCollidingInTheLowBitsAreKeptApart) {
  FeatureTable t;
  // The same low bits, different high bits: the probe sequence must walk past them.
  std::vector<uint64_t> keys;
  for (uint64_t hi = 1; hi <= 64; ++hi) {
    keys.push_back((hi << 40) | 0x10);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(t.Insert(keys[i]), i);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(t.Find(keys[i]), i);
  }
}

TEST(FeatureTable, ReserveKeepsContents) {
  FeatureTable t;
  t.Insert(11);
  t.Insert(22);
  t.Reserve(10000);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.Find(11), 0u);
  EXPECT_EQ(t.Find(22), 1u);
  for (uint64_t k = 100; k < 10100; ++k) {
    t.Insert(k);
  }
  EXPECT_EQ(t.size(), 10002u);
  EXPECT_EQ(t.Find(10099), 10001u);
  t.Reserve(1);  // never shrinks
  EXPECT_EQ(t.Find(10099), 10001u);
}

TEST(FeatureTable, ZeroKeyIsStorable) {
  FeatureTable t;
  EXPECT_EQ(t.Insert(0), 0u);
  EXPECT_EQ(t.Find(0), 0u);
  EXPECT_EQ(t.size(), 1u);
}

}  // namespace
}  // namespace evo::spam
