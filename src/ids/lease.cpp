// Worker leases on one machine: an exclusive flock per worker id.
//
// flock rather than fcntl (POSIX) locks: an fcntl lock belongs to the process, so a second
// lease on the same id from the same process would silently succeed and two generators would
// share a worker id. A flock belongs to the open file description, so every open() conflicts.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

#include "ids/ids.hpp"

namespace evo::ids {
namespace {

class FileLease final : public WorkerLease {
 public:
  FileLease(int fd, int64_t worker_id) : fd_(fd), worker_id_(worker_id) {}
  ~FileLease() override { ::close(fd_); }  // closing the last descriptor drops the lock
  FileLease(const FileLease&) = delete;
  FileLease& operator=(const FileLease&) = delete;

  int64_t worker_id() const override { return worker_id_; }
  // A flock cannot be taken away from a live process.
  bool Valid() const override { return true; }

 private:
  const int fd_;
  const int64_t worker_id_;
};

std::filesystem::path LockPath(const std::filesystem::path& dir, int64_t id) {
  return dir / fmt::format("worker-{}.lock", id);
}

// The lease on `id`, nullptr when another holder has it, or an error for I/O failures.
StatusOr<std::unique_ptr<WorkerLease>> TryLock(const std::filesystem::path& dir, int64_t id) {
  const std::filesystem::path path = LockPath(dir, id);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return FailedPreconditionError(
        fmt::format("cannot open worker lock {}: {}", path.string(), std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return std::unique_ptr<WorkerLease>();
    }
    return FailedPreconditionError(
        fmt::format("cannot lock {}: {}", path.string(), std::strerror(err)));
  }
  // The holder's pid is for whoever looks at the directory; the lock is what counts.
  const std::string pid = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] const ssize_t n = ::pwrite(fd, pid.data(), pid.size(), 0);
  }
  return std::unique_ptr<WorkerLease>(std::make_unique<FileLease>(fd, id));
}

}  // namespace

StatusOr<std::unique_ptr<WorkerLease>> AcquireFileLease(const std::filesystem::path& dir,
                                                        int64_t wanted, int64_t max_worker_id) {
  if (max_worker_id < 0) {
    return InvalidArgumentError(fmt::format("max_worker_id must be >= 0, got {}", max_worker_id));
  }
  if (wanted < -1 || wanted > max_worker_id) {
    return InvalidArgumentError(
        fmt::format("worker id must be -1 (any) or 0..{}, got {}", max_worker_id, wanted));
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return FailedPreconditionError(
        fmt::format("cannot create lease directory {}: {}", dir.string(), ec.message()));
  }
  if (wanted >= 0) {
    EVO_ASSIGN_OR_RETURN(auto lease, TryLock(dir, wanted));
    if (lease == nullptr) {
      return AlreadyExistsError(fmt::format("worker id {} is held by another generator ({})",
                                            wanted, LockPath(dir, wanted).string()));
    }
    return lease;
  }
  for (int64_t id = 0; id <= max_worker_id; ++id) {
    EVO_ASSIGN_OR_RETURN(auto lease, TryLock(dir, id));
    if (lease != nullptr) {
      return lease;
    }
  }
  return ResourceExhaustedError(
      fmt::format("all worker ids 0..{} in {} are held", max_worker_id, dir.string()));
}

}  // namespace evo::ids
