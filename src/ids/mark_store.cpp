// The high-water mark in a file, replaced atomically and durably.
//
// The file is one line, "evo-ids-mark 1 <ticks> <fnv1a-64 of the ticks in hex>". The checksum
// catches a flipped digit, which would otherwise lower the mark silently and let a restart
// reissue IDs; any damage turns Load into DataLoss so that an operator decides.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "ids/ids.hpp"

namespace evo::ids {
namespace {

constexpr std::string_view kMagic = "evo-ids-mark 1 ";
constexpr size_t kMaxFileBytes = 256;

uint64_t Fnv1a(std::string_view text) {
  uint64_t h = 14'695'981'039'346'656'037ULL;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1'099'511'628'211ULL;
  }
  return h;
}

Status Errno(std::string_view what, const std::filesystem::path& path) {
  return UnavailableError(fmt::format("{} {}: {}", what, path.string(), std::strerror(errno)));
}

Status WriteAll(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Errno("cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return OkStatus();
}

class FileMarkStoreImpl final : public MarkStore {
 public:
  explicit FileMarkStoreImpl(std::filesystem::path path) : path_(std::move(path)) {}

  StatusOr<int64_t> Load() override {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        return int64_t{0};
      }
      return Errno("cannot open mark file", path_);
    }
    std::string text(kMaxFileBytes + 1, '\0');
    size_t size = 0;
    while (size < text.size()) {
      const ssize_t n = ::read(fd, text.data() + size, text.size() - size);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        const Status s = Errno("cannot read mark file", path_);
        ::close(fd);
        return s;
      }
      if (n == 0) {
        break;
      }
      size += static_cast<size_t>(n);
    }
    ::close(fd);
    text.resize(size);
    return Parse(text);
  }

  Status Store(int64_t mark_ticks) override {
    const std::string ticks = std::to_string(mark_ticks);
    const std::string text = fmt::format("{}{} {:016x}\n", kMagic, ticks, Fnv1a(ticks));
    const std::filesystem::path dir =
        path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    const std::filesystem::path tmp = std::filesystem::path(path_).concat(".tmp");

    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      return Errno("cannot create", tmp);
    }
    Status s = WriteAll(fd, text, tmp);
    if (s.ok() && ::fsync(fd) != 0) {
      s = Errno("cannot fsync", tmp);
    }
    if (::close(fd) != 0 && s.ok()) {
      s = Errno("cannot close", tmp);
    }
    if (!s.ok()) {
      return s;
    }
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
      return Errno("cannot rename onto", path_);
    }
    // The rename is durable only once the directory entry is.
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
      return Errno("cannot open directory", dir);
    }
    const int rc = ::fsync(dfd);
    ::close(dfd);
    if (rc != 0) {
      return Errno("cannot fsync directory", dir);
    }
    return OkStatus();
  }

 private:
  StatusOr<int64_t> Parse(std::string_view text) const {
    const Status corrupt = DataLossError(fmt::format(
        "high-water mark file {} is corrupt; IDs cannot be issued safely until it is restored "
        "or removed deliberately (removing it risks duplicates if the clock is behind)",
        path_.string()));
    if (text.size() > kMaxFileBytes || !text.starts_with(kMagic) || !text.ends_with('\n')) {
      return corrupt;
    }
    text.remove_prefix(kMagic.size());
    text.remove_suffix(1);
    const size_t space = text.find(' ');
    if (space == std::string_view::npos) {
      return corrupt;
    }
    const std::string_view ticks = text.substr(0, space);
    const std::string_view check = text.substr(space + 1);
    int64_t value = 0;
    const auto [p, ec] = std::from_chars(ticks.data(), ticks.data() + ticks.size(), value);
    if (ec != std::errc() || p != ticks.data() + ticks.size() || value < 0 ||
        check != fmt::format("{:016x}", Fnv1a(ticks))) {
      return corrupt;
    }
    return value;
  }

  const std::filesystem::path path_;
};

}  // namespace

std::unique_ptr<MarkStore> FileMarkStore(std::filesystem::path path) {
  return std::make_unique<FileMarkStoreImpl>(std::move(path));
}

}  // namespace evo::ids
