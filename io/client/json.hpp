// JSON text for the command lines' output (loyaltyctl's --json and JSON
// lines, loyalty-loadgen's --json reports): the one escaper both use.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace loyalty::io {

// `s` as the inside of a JSON string: quotes, backslashes and control
// characters escaped (\n, \t, \r short, the others as \u00XX); other
// bytes as they are (txn ids and codes are
// usually ASCII; anything else passes through unchanged).
inline std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

inline std::string quoted(std::string_view s) { return "\"" + json_escape(s) + "\""; }

inline const char* boolean(bool b) { return b ? "true" : "false"; }

} // namespace loyalty::io
