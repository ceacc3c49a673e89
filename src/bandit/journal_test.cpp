#include "bandit/journal.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

namespace evo::bandit {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("evo-journal-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path path() const { return dir_ / "journal-1.log"; }

  std::vector<Record> ReadAll() {
    std::vector<Record> out;
    EXPECT_TRUE(Journal::Replay(path(), [&](const Record& r) { out.push_back(r); }).ok());
    return out;
  }

  std::filesystem::path dir_;
};

TEST_F(JournalTest, AppendedRecordsAreReadBackInOrderWithoutAnyFlush) {
  auto j = Journal::Open(path(), 1 << 20);
  ASSERT_TRUE(j.ok());
  for (uint64_t i = 0; i < 100; ++i) {
    ASSERT_TRUE(
        (*j)->Append({RecordType::kPull, 7, static_cast<uint16_t>(i % 3), i, 1.5 * i}).ok());
  }
  // Another reader sees them at once: they are in the shared page cache, which outlives a
  // killed process.
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), 100u);
  for (uint64_t i = 0; i < 100; ++i) {
    EXPECT_EQ(all[i].seq, i);
    EXPECT_EQ(all[i].experiment, 7u);
    EXPECT_EQ(all[i].arm, i % 3);
    EXPECT_EQ(all[i].value, 1.5 * i);
    EXPECT_EQ(all[i].type, RecordType::kPull);
  }
  EXPECT_EQ((*j)->used(), 100 * Journal::kRecordBytes);
}

TEST_F(JournalTest, ReopeningAppendsAfterTheLastRecord) {
  {
    auto j = Journal::Open(path(), 1 << 20);
    ASSERT_TRUE((*j)->Append({RecordType::kPull, 1, 0, 1, 0}).ok());
  }
  auto j = Journal::Open(path(), 1 << 20);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)->used(), Journal::kRecordBytes);
  ASSERT_TRUE((*j)->Append({RecordType::kReward, 1, 0, 1, 1}).ok());
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].type, RecordType::kReward);
}

TEST_F(JournalTest, ATornRecordIsSkippedAndTheRecordsAfterItKept) {
  {
    auto j = Journal::Open(path(), 1 << 20);
    for (uint64_t i = 0; i < 3; ++i) {
      ASSERT_TRUE((*j)->Append({RecordType::kPull, 1, 0, i, 0}).ok());
    }
  }
  {
    std::fstream f(path(), std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(40);  // inside the second record
    f.put('X');
  }
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].seq, 0u);
  EXPECT_EQ(all[1].seq, 2u);
}

TEST_F(JournalTest, AFullJournalRefusesWithResourceExhausted) {
  auto j = Journal::Open(path(), 2 * Journal::kRecordBytes);
  ASSERT_TRUE(j.ok());
  EXPECT_TRUE((*j)->Append({RecordType::kPull, 1, 0, 1, 0}).ok());
  EXPECT_TRUE((*j)->Append({RecordType::kPull, 1, 0, 2, 0}).ok());
  EXPECT_EQ((*j)->Append({RecordType::kPull, 1, 0, 3, 0}).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(ReadAll().size(), 2u);
}

TEST_F(JournalTest, ConcurrentAppendersAllLandOnce) {
  auto j = Journal::Open(path(), 1 << 20);
  ASSERT_TRUE(j.ok());
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < 1000; ++i) {
        ASSERT_TRUE((*j)->Append({RecordType::kPull, t, 0, i, 0}).ok());
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  const auto all = ReadAll();
  ASSERT_EQ(all.size(), 4000u);
  std::vector<uint64_t> next(4, 0);
  for (const Record& r : all) {
    EXPECT_EQ(r.seq, next[r.experiment]++);  // per appender, in order
  }
}

TEST_F(JournalTest, AMissingFileReplaysNothing) { EXPECT_TRUE(ReadAll().empty()); }

// Review D14: the "preallocated" journal was a sparse ftruncate (0 blocks allocated), so a
// full disk would have killed the process with SIGBUS at the page fault of an append.
TEST_F(JournalTest, OpenAllocatesTheWholeCapacityOnDisk) {
  auto j = Journal::Open(path(), 4 << 20);
  ASSERT_TRUE(j.ok()) << j.status();
  struct stat st {};
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{4} << 20);
}

// A journal that the disk cannot hold fails Open with ResourceExhausted naming the file, and
// leaves no file behind. The limit here is RLIMIT_FSIZE, which the kernel checks like space.
TEST_F(JournalTest, OpenFailsCleanlyWhenTheFileCannotBeAllocated) {
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  const auto previous = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 1 << 20;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto j = Journal::Open(path(), 8 << 20);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, previous);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), StatusCode::kResourceExhausted) << j.status();
  EXPECT_NE(j.status().message().find(path().string()), std::string_view::npos) << j.status();
  EXPECT_FALSE(std::filesystem::exists(path()));
}

TEST_F(JournalTest, SyncFlushesWhatWasAppendedAndCountsItself) {
  auto j = Journal::Open(path(), 1 << 20);
  ASSERT_TRUE(j.ok());
  EXPECT_TRUE((*j)->Sync().ok());  // nothing appended yet
  for (uint64_t i = 0; i < 200; ++i) {
    ASSERT_TRUE((*j)->Append({RecordType::kPull, 1, 0, i, 0}).ok());
  }
  EXPECT_TRUE((*j)->Sync().ok());
  EXPECT_EQ((*j)->syncs(), 2u);
  EXPECT_EQ(ReadAll().size(), 200u);
}

}  // namespace
}  // namespace evo::bandit
