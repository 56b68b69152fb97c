#include "io/server/process.hpp"

#include <charconv>
#include <fstream>
#include <string>

namespace loyalty::io {

std::optional<std::uint64_t> resident_anon_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RssAnon:", 0) != 0)
      continue;
    std::uint64_t kib = 0;
    const auto digits = line.find_first_of("0123456789");
    if (digits == std::string::npos)
      return std::nullopt;
    std::from_chars(line.data() + digits, line.data() + line.size(), kib);
    return kib * 1024;
  }
  return std::nullopt;
}
} // namespace loyalty::io
