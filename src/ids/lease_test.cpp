// Worker leases and the mark file: the two things that keep IDs unique across processes and
// restarts.
#include <fstream>

#include <gtest/gtest.h>

#include "ids/ids.hpp"
#include "ids/test_util.hpp"

namespace evo::ids {
namespace {

using testing::FakeLease;
using testing::TempDir;

TEST(FileLease, FixedIdIsExclusiveEvenWithinOneProcess) {
  TempDir dir;
  auto first = AcquireFileLease(dir.path() / "leases", 5, 1023);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->worker_id(), 5);
  EXPECT_TRUE((*first)->Valid());
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "leases" / "worker-5.lock"));

  const auto second = AcquireFileLease(dir.path() / "leases", 5, 1023);
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);

  first->reset();  // released on destruction
  const auto third = AcquireFileLease(dir.path() / "leases", 5, 1023);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ((*third)->worker_id(), 5);
}

TEST(FileLease, AnyIdTakesTheLowestFreeOneUntilNoneIsLeft) {
  TempDir dir;
  auto a = AcquireFileLease(dir.path(), -1, 2);
  auto b = AcquireFileLease(dir.path(), -1, 2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->worker_id(), 0);
  EXPECT_EQ((*b)->worker_id(), 1);
  EXPECT_EQ(AcquireFileLease(dir.path(), 0, 2).status().code(), StatusCode::kAlreadyExists);
  auto c = AcquireFileLease(dir.path(), -1, 2);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->worker_id(), 2);
  EXPECT_EQ(AcquireFileLease(dir.path(), -1, 2).status().code(), StatusCode::kResourceExhausted);
  a->reset();
  auto d = AcquireFileLease(dir.path(), -1, 2);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->worker_id(), 0);
}

TEST(FileLease, RejectsIdsOutsideTheLayout) {
  TempDir dir;
  EXPECT_EQ(AcquireFileLease(dir.path(), 1024, 1023).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(AcquireFileLease(dir.path(), -2, 1023).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(AcquireFileLease(dir.path(), 0, -1).status().code(), StatusCode::kInvalidArgument);
}

TEST(FileLease, UnusableDirectoryIsFailedPrecondition) {
  TempDir dir;
  std::ofstream(dir.path() / "file") << "x";
  EXPECT_EQ(AcquireFileLease(dir.path() / "file" / "sub", 0, 1).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST(FileMarkStore, MissingFileLoadsAsZeroAndStoresRoundTrip) {
  TempDir dir;
  auto store = FileMarkStore(dir.path() / "sub" / "mark");
  EXPECT_EQ(*store->Load(), 0);
  ASSERT_TRUE(store->Store(123'456'789'012).ok());
  EXPECT_EQ(*store->Load(), 123'456'789'012);
  ASSERT_TRUE(store->Store(123'456'789'999).ok());
  EXPECT_EQ(*FileMarkStore(dir.path() / "sub" / "mark")->Load(), 123'456'789'999);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "sub" / "mark.tmp"));
}

TEST(FileMarkStore, CorruptFileIsDataLoss) {
  TempDir dir;
  const auto path = dir.path() / "mark";
  ASSERT_TRUE(FileMarkStore(path)->Store(987'654'321).ok());
  std::string good;
  std::getline(std::ifstream(path), good);
  good += '\n';

  std::string flipped = good;
  flipped[flipped.find("987")] = '1';  // a lower mark with the old checksum
  const std::vector<std::string> corrupt = {"",
                                            "garbage",
                                            "evo-ids-mark 1 \n",
                                            good.substr(0, good.size() - 1),
                                            flipped,
                                            "evo-ids-mark 1 -5 0000000000000000\n",
                                            std::string(10'000, 'x')};
  for (const std::string& text : corrupt) {
    std::ofstream(path, std::ios::trunc) << text;
    EXPECT_EQ(FileMarkStore(path)->Load().status().code(), StatusCode::kDataLoss) << text;
  }

  ManualClock clock;
  const auto opened =
      Generator::Open({}, clock, std::make_unique<FakeLease>(0), FileMarkStore(path));
  EXPECT_EQ(opened.status().code(), StatusCode::kDataLoss);

  std::ofstream(path, std::ios::trunc) << good;
  EXPECT_EQ(*FileMarkStore(path)->Load(), 987'654'321);
}

TEST(FileMarkStore, UnwritableDirectoryFailsStore) {
  TempDir dir;
  std::ofstream(dir.path() / "file") << "x";
  EXPECT_FALSE(FileMarkStore(dir.path() / "file" / "mark")->Store(1).ok());
}

}  // namespace
}  // namespace evo::ids
