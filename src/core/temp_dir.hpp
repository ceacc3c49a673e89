// A fresh directory under the system temp dir, removed with everything in it when the object
// goes: for tests and benchmarks. Header-only.
#pragma once

#include <stdlib.h>  // mkdtemp

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace evo::testing {

class TempDir {
 public:
  // Throws std::runtime_error when the directory cannot be made (a test cannot go on).
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "evo-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // path() / name as a string.
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace evo::testing
