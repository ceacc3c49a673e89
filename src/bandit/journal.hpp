// The bandit module's write-ahead journal: fixed-size records (pulls, rewards, expiries,
// sticky assignments) stored before a request is acknowledged, so that the state survives
// kill -9 exactly as acknowledged. Private to the module.
//
// The file's blocks are allocated when it is opened (posix_fallocate: a full disk fails Open
// with ResourceExhausted, not a later append with SIGBUS) and it is mapped MAP_SHARED:
// appending is an atomic slot reservation and a 32-byte copy into the page cache, with no
// system call. The kernel owns the pages, so a record copied before the answer is sent
// survives the process being killed. It reaches the disk at the kernel's writeback, at a
// Sync (msync; the service calls it as its `sync` option says, see bandit.hpp), or in the
// fsynced snapshot that replaces the journal; until then an OS crash or power loss loses it.
// Every record carries a checksum; a slot whose copy was cut short by a kill (its request
// was never acknowledged) fails the checksum and is skipped on replay, and so are
// never-written (zero) slots, so one torn record cannot hide the records after it.
//
// Thread safety: every call may be made from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>

#include "core/status.hpp"

namespace evo::bandit {

enum class RecordType : uint8_t {
  kPull = 1,        // seq was served `arm`; value = expiry (unix seconds)
  kReward = 2,      // seq's reward `value`, fed to the policy
  kExpire = 3,      // seq's window ended without a reward: 0 fed to the policy
  kLateReward = 4,  // seq's reward `value` after expiry: statistics only
  kAssign = 5,      // unit hash `seq` is stuck to `arm`
};

// One journal record: 32 bytes on disk, little-endian, with a checksum.
struct Record {
  RecordType type = RecordType::kPull;
  uint32_t experiment = 0;  // the experiment's uid
  uint16_t arm = 0;
  uint64_t seq = 0;  // pull sequence number within the experiment (kAssign: unit hash)
  double value = 0;  // reward (kReward, kLateReward); expiry unix seconds (kPull)
};

class Journal {
 public:
  static constexpr size_t kRecordBytes = 32;

  // Opens (creating) `path` with room for `capacity_bytes` of records, allocated on disk now;
  // appends go after the last valid record already in it. ResourceExhausted when the disk
  // (or a quota, or RLIMIT_FSIZE) cannot hold the capacity (a file it created is removed),
  // FailedPrecondition for other errors; both name the file and the reason.
  static StatusOr<std::unique_ptr<Journal>> Open(const std::filesystem::path& path,
                                                 uint64_t capacity_bytes = uint64_t{512} << 20);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Calls on_record for every valid record of `path`, in slot order (a missing file has
  // none).
  static Status Replay(const std::filesystem::path& path,
                       const std::function<void(const Record&)>& on_record);

  // Stores a record. ResourceExhausted when the file is full (a snapshot rotates it first:
  // see Service::Tick).
  Status Append(const Record& record);
  // msync(MS_SYNC) of the pages appended to so far: what was appended before the call is on
  // disk when it returns OK. Unavailable with the errno text otherwise.
  Status Sync();
  // Sync calls so far (for tests and metrics).
  uint64_t syncs() const { return syncs_.load(std::memory_order_relaxed); }
  // Bytes used / the capacity.
  uint64_t used() const;
  uint64_t capacity() const { return capacity_; }

 private:
  Journal(int fd, char* map, uint64_t capacity, uint64_t used);
  int fd_;
  char* map_;
  uint64_t capacity_;
  std::atomic<uint64_t> next_;  // offset of the next free slot
  std::atomic<uint64_t> syncs_{0};
};

}  // namespace evo::bandit
