// JSON text for loyaltyctl's output (--json, JSON lines): the few helpers
// every command's printer shares.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace loyalty::io {

// `s` as the inside of a JSON string: quotes, backslashes and control
// characters escaped; other bytes as they are (txn ids and codes are
// usually ASCII; anything else passes through unchanged).
inline std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

inline std::string quoted(std::string_view s) { return "\"" + json_escape(s) + "\""; }

inline const char* boolean(bool b) { return b ? "true" : "false"; }

} // namespace loyalty::io
