#include "store/data_dir.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "core/temp_dir.hpp"

namespace evo::store {
namespace {

using testing::TempDir;

TEST(DataDirLock, SecondHolderIsRefusedWithThePidOfTheFirst) {
  TempDir tmp;
  const auto dir = tmp.path() / "data";
  auto first = DataDirLock::Acquire(dir, "./data");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(std::filesystem::exists(dir / "LOCK"));
  auto second = DataDirLock::Acquire(dir, "./data");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(),
            "data dir ./data is in use by pid " + std::to_string(::getpid()));
  first = DataDirLock::Acquire(tmp.path() / "other", "other");  // releases ./data
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(DataDirLock::Acquire(dir, "./data").ok());
}

TEST(DataDirLock, ALockFileLeftBehindBlocksNobody) {
  TempDir tmp;
  std::ofstream(tmp.path() / "LOCK") << "4242\n";
  auto lock = DataDirLock::Acquire(tmp.path(), "d");
  ASSERT_TRUE(lock.ok()) << lock.status();
  std::ifstream in(tmp.path() / "LOCK");
  std::string pid;
  in >> pid;
  EXPECT_EQ(pid, std::to_string(::getpid()));
}

TEST(DataDirLock, EndsWithItsProcessEvenOnKill9) {
  TempDir tmp;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto lock = DataDirLock::Acquire(tmp.path(), "d");
    const char c = lock.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  auto refused = DataDirLock::Acquire(tmp.path(), "d");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "data dir d is in use by pid " + std::to_string(child));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(DataDirLock::Acquire(tmp.path(), "d").ok());
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(DataDirLock, UnusableDirectoryIsAClearError) {
  TempDir tmp;
  std::ofstream(tmp.path() / "file") << "x";
  auto lock = DataDirLock::Acquire(tmp.path() / "file" / "sub", "f");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find("cannot create the data dir f"), std::string_view::npos)
      << lock.status();
}

}  // namespace
}  // namespace evo::store
