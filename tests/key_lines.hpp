// The [[keys]] lines of a loyaltyd settings file for a key the test knows
// in the clear (the engine stores only its SHA-256): for tests that start
// the real loyaltyd binary with keys.
#pragma once

#include "config/program.hpp"

#include <string>

namespace loyalty::test {

inline std::string key_lines(int id, const char* secret, const char* scope) {
  std::string hex;
  static const char* digits = "0123456789abcdef";
  for (unsigned char b : key_sha256(secret)) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return "\n[[keys]]\nid = " + std::to_string(id) + "\nname = \"" + scope + "\"\nsha256 = \"" + hex +
         "\"\nscope = \"" + scope + "\"\n";
}

} // namespace loyalty::test
