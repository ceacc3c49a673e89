// Fakes shared by the ids tests.
#pragma once

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/temp_dir.hpp"
#include "ids/ids.hpp"

namespace evo::ids::testing {

// A lease whose validity the test controls.
class FakeLease final : public WorkerLease {
 public:
  explicit FakeLease(int64_t id, std::shared_ptr<std::atomic<bool>> valid = nullptr)
      : id_(id), valid_(valid ? std::move(valid) : std::make_shared<std::atomic<bool>>(true)) {}
  int64_t worker_id() const override { return id_; }
  bool Valid() const override { return valid_->load(); }

 private:
  int64_t id_;
  std::shared_ptr<std::atomic<bool>> valid_;
};

// A mark store in memory that outlives generators (state is shared) and can be made to fail.
class MemoryMarkStore final : public MarkStore {
 public:
  struct State {
    std::atomic<int64_t> mark{0};
    std::atomic<int> stores{0};
    std::atomic<bool> fail{false};
    // Drops stores while reporting success: what a process killed with -9 leaves behind is
    // the last mark stored before this is set.
    std::atomic<bool> crashed{false};
    // The thread of the last successful Store.
    std::mutex mu;
    std::thread::id store_thread;
  };
  explicit MemoryMarkStore(std::shared_ptr<State> state) : state_(std::move(state)) {}
  StatusOr<int64_t> Load() override { return state_->mark.load(); }
  Status Store(int64_t mark) override {
    if (state_->fail) {
      return UnavailableError("disk on fire");
    }
    if (state_->crashed) {
      return OkStatus();
    }
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->store_thread = std::this_thread::get_id();
    }
    state_->mark = mark;
    ++state_->stores;
    return OkStatus();
  }

 private:
  std::shared_ptr<State> state_;
};

// A clock that never moves, not even when slept on (a stuck or virtualised clock).
class FrozenClock final : public Clock {
 public:
  explicit FrozenClock(WallTime t) : t_(t) {}
  WallTime Now() const override { return t_; }
  SteadyTime Monotonic() const override { return SteadyTime(std::chrono::seconds(1)); }
  void SleepFor(std::chrono::nanoseconds) const override {}

 private:
  WallTime t_;
};

using evo::testing::TempDir;

}  // namespace evo::ids::testing
