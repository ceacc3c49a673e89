// Exclusive ownership of a data directory, as LevelDB's LOCK file gives a database: the
// process holding it is the only one that writes the module state kept there (evo.db,
// queue.db, bandit/). `evo serve` holds it for its whole life, and so does each CLI command
// that changes that state; a second one is refused at once. The `ids/` worker leases are
// outside its scope: processes serving only IDs share a data dir on purpose.
//
// The lock is an flock(2) on <dir>/LOCK, so it ends with the process however it ends (kill -9
// included) and a LOCK file left behind blocks nobody. The file holds the owner's pid, for
// the refusal message.
//
// Thread safety: a DataDirLock is owned by one thread; Acquire may be called from any.
#pragma once

#include <filesystem>
#include <string>

#include "core/status.hpp"

namespace evo::store {

class DataDirLock {
 public:
  // Creates `dir` (and its parents) if needed and takes the lock. `shown` is how messages
  // name the directory (as the user wrote it). FailedPrecondition "data dir <shown> is in use
  // by pid N" when another process holds it; Internal/PermissionDenied-like errors (as
  // FailedPrecondition too, naming the path) when the directory or file cannot be opened.
  static StatusOr<DataDirLock> Acquire(const std::filesystem::path& dir, const std::string& shown);

  DataDirLock(DataDirLock&& other) noexcept;
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  // Releases the lock (the LOCK file stays).
  ~DataDirLock();

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace evo::store
