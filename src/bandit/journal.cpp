#include "bandit/journal.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace evo::bandit {
namespace {

constexpr size_t kRecordBytes = Journal::kRecordBytes;
// Slots are reserved in order, and only a request cut short by a kill leaves one unwritten,
// so after this many invalid slots in a row nothing valid follows (the file is allocated
// with zeros): scans stop there instead of reading the whole capacity.
constexpr uint64_t kMaxGapSlots = 4096;

uint32_t Checksum(const char* p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; ++i) {
    h = (h ^ static_cast<unsigned char>(p[i])) * 16777619u;
  }
  return h ^ 0x5bd1e995u;  // a zero slot never checks out
}

template <typename T>
void Put(char* p, T v) {
  std::memcpy(p, &v, sizeof v);  // little-endian hosts only (x86-64, aarch64)
}
template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Layout: type u8 | pad u8 | arm u16 | experiment u32 | seq u64 | value f64 | pad u32 | crc u32
void Encode(const Record& r, char* p) {
  std::memset(p, 0, kRecordBytes);
  Put<uint8_t>(p, static_cast<uint8_t>(r.type));
  Put<uint16_t>(p + 2, r.arm);
  Put<uint32_t>(p + 4, r.experiment);
  Put<uint64_t>(p + 8, r.seq);
  Put<double>(p + 16, r.value);
  Put<uint32_t>(p + 28, Checksum(p, 28));
}

bool Decode(const char* p, Record& r) {
  if (Get<uint32_t>(p + 28) != Checksum(p, 28)) {
    return false;
  }
  const auto type = Get<uint8_t>(p);
  if (type < 1 || type > 5) {
    return false;
  }
  r.type = static_cast<RecordType>(type);
  r.arm = Get<uint16_t>(p + 2);
  r.experiment = Get<uint32_t>(p + 4);
  r.seq = Get<uint64_t>(p + 8);
  r.value = Get<double>(p + 16);
  return true;
}

std::string Errno() { return std::strerror(errno); }

}  // namespace

Journal::Journal(int fd, char* map, uint64_t capacity, uint64_t used)
    : fd_(fd), map_(map), capacity_(capacity), next_(used) {}

Journal::~Journal() {
  ::munmap(map_, capacity_);
  ::close(fd_);
}

StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::filesystem::path& path,
                                                 uint64_t capacity_bytes) {
  uint64_t capacity = capacity_bytes / kRecordBytes * kRecordBytes;
  if (capacity == 0) {
    return InvalidArgumentError("journal capacity must hold at least one record");
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return FailedPreconditionError("journal " + path.string() + ": " + Errno());
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string error = Errno();
    ::close(fd);
    return FailedPreconditionError("journal " + path.string() + ": " + error);
  }
  // A journal written with a larger capacity keeps it: records past the new one stay in use.
  capacity = std::max(capacity, static_cast<uint64_t>(st.st_size) / kRecordBytes * kRecordBytes);
  // Blocks for the whole capacity, allocated now: a sparse file would take its blocks at the
  // page faults of later appends, and a full disk would then kill the process with SIGBUS.
  // Also allocates the holes of a sparse journal left by an older evo.
  if (const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(capacity)); rc != 0) {
    if (st.st_size == 0) {
      ::unlink(path.c_str());  // ours, and empty: leave no file behind
    }
    ::close(fd);
    const std::string message = "bandit journal " + path.string() + ": cannot allocate " +
                                std::to_string(capacity >> 20) + " MiB: " + std::strerror(rc);
    return rc == ENOSPC || rc == EDQUOT || rc == EFBIG ? ResourceExhaustedError(message)
                                                       : FailedPreconditionError(message);
  }
  void* map = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    const std::string error = Errno();
    ::close(fd);
    return FailedPreconditionError("journal " + path.string() + ": mmap: " + error);
  }
  auto* bytes = static_cast<char*>(map);
  uint64_t used = 0;
  Record r;
  for (uint64_t off = 0; off < capacity && off < used + kMaxGapSlots * kRecordBytes;
       off += kRecordBytes) {
    if (Decode(bytes + off, r)) {
      used = off + kRecordBytes;
    }
  }
  return std::unique_ptr<Journal>(new Journal(fd, bytes, capacity, used));
}

Status Journal::Replay(const std::filesystem::path& path,
                       const std::function<void(const Record&)>& on_record) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT ? OkStatus()
                           : FailedPreconditionError("journal " + path.string() + ": " + Errno());
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string error = Errno();
    ::close(fd);
    return FailedPreconditionError("journal " + path.string() + ": " + error);
  }
  const auto size = static_cast<uint64_t>(st.st_size) / kRecordBytes * kRecordBytes;
  if (size == 0) {
    ::close(fd);
    return OkStatus();
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    return FailedPreconditionError("journal " + path.string() + ": mmap: " + Errno());
  }
  const auto* bytes = static_cast<const char*>(map);
  Record r;
  uint64_t last = 0;
  for (uint64_t off = 0; off < size && off < last + kMaxGapSlots * kRecordBytes;
       off += kRecordBytes) {
    if (Decode(bytes + off, r)) {
      on_record(r);
      last = off + kRecordBytes;
    }
  }
  ::munmap(map, size);
  return OkStatus();
}

Status Journal::Append(const Record& record) {
  const uint64_t off = next_.fetch_add(kRecordBytes, std::memory_order_relaxed);
  if (off + kRecordBytes > capacity_) {
    return ResourceExhaustedError("bandit journal full: waiting for a snapshot")
        .With(kPayloadRetryAfter, "1");
  }
  Encode(record, map_ + off);
  return OkStatus();
}

Status Journal::Sync() {
  // The used prefix (whole pages): records appended before this call are on disk when it
  // returns, and so are those that other threads append to these pages meanwhile.
  static const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t end = std::min(capacity_, (used() + page - 1) / page * page);
  syncs_.fetch_add(1, std::memory_order_relaxed);
  if (end > 0 && ::msync(map_, end, MS_SYNC) != 0) {
    return UnavailableError("bandit journal msync: " + Errno());
  }
  return OkStatus();
}

uint64_t Journal::used() const {
  const uint64_t n = next_.load(std::memory_order_relaxed);
  return n < capacity_ ? n : capacity_;
}

}  // namespace evo::bandit
