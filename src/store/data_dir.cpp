#include "store/data_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>

#include <spdlog/spdlog.h>

namespace evo::store {
namespace {

// The pid written in the LOCK file, or "another process" when it cannot be read.
std::string Holder(int fd) {
  char buffer[32] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
  std::string_view text(buffer, n > 0 ? static_cast<size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  const bool digits = !text.empty() && text.size() <= 10 &&
                      text.find_first_not_of("0123456789") == std::string_view::npos;
  return digits ? "pid " + std::string(text) : "another process";
}

}  // namespace

StatusOr<DataDirLock> DataDirLock::Acquire(const std::filesystem::path& dir,
                                           const std::string& shown) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return FailedPreconditionError("cannot create the data dir " + shown + ": " + ec.message());
  }
  const std::filesystem::path path = dir / "LOCK";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return FailedPreconditionError("cannot open " + path.string() + ": " + std::strerror(errno));
  }
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) {
      continue;
    }
    const int error = errno;
    std::string message = error == EWOULDBLOCK
                              ? "data dir " + shown + " is in use by " + Holder(fd)
                              : "cannot lock " + path.string() + ": " + std::strerror(error);
    ::close(fd);
    return FailedPreconditionError(std::move(message));
  }
  // Ours now: record who holds it. Best effort: the lock is what counts, and without the pid
  // a refusal names "another process".
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    spdlog::warn("cannot write the pid into {}: {}", path.string(), std::strerror(errno));
  }
  return DataDirLock(fd);
}

DataDirLock::DataDirLock(DataDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

DataDirLock& DataDirLock::operator=(DataDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) {
    ::close(fd_);  // releases the flock
  }
}

}  // namespace evo::store
