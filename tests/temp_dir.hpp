// A fresh directory under /tmp for one test, removed with everything in it
// when the test ends. Tests use real LMDB directories, never mocks.
#pragma once

#include <filesystem>
#include <string>

#include <stdlib.h>

namespace loyalty::test {

struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& what = "test") {
    std::string tmpl = "/tmp/loyalty-" + what + "-XXXXXX";
    path = mkdtemp(tmpl.data());
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

} // namespace loyalty::test
