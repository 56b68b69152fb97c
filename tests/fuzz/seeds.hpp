// The seed inputs of both fuzz targets: byte streams of frames as a client
// sends them, made with the client library's encoder (and a few broken by
// hand). `replay --make-corpus DIR` writes them; tests/fuzz/corpus holds
// what it wrote.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace loyalty::fuzz {

// The admin key engine_fuzz's engine is configured with: a seed's hello
// with it keeps the connection's admin rights.
inline constexpr const char* admin_key = "fuzz-admin-key-0123456789";

// Name (a file name) and bytes of each seed.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> seeds();

} // namespace loyalty::fuzz
