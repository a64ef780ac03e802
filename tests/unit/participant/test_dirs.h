// Temporary directories for participant tests. Not thread-safe (test setup only).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace verdict::participant::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "verdict-part-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace verdict::participant::testing
