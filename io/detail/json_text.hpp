// JSON string literals for the command lines' --json output (loyaltyctl
// and its report command).
#pragma once

#include <cstdio>
#include <string>

namespace loyalty::io::detail {

// The characters of a JSON string: quotes, backslashes and control
// characters escaped.
inline std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else
      out += c;
  }
  return out;
}

// A JSON string literal.
inline std::string quoted(const std::string& s) {
  std::string out = "\"";
  out += json_escape(s);
  out += '"';
  return out;
}

} // namespace loyalty::io::detail
