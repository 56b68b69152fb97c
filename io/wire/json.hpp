// JSON text for the command lines' output (loyaltyctl's --json and JSON
// lines, loyalty-loadgen's --json reports): the one escaper both use, and
// any protocol frame rendered as JSON.
#pragma once

#include "io/wire/protocol.hpp"

#include <cstddef>
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

// A frame's payload (one msgpack value, docs/PROTOCOL.md) as JSON, key by
// key as it is on the wire: maps with their keys in order, arrays, integers,
// booleans, strings; a `bin` (a txn id sent as bytes) as a string when its
// bytes are printable UTF-8, else as {"hex": "..."}. Empty if the payload
// is not one msgpack value.
[[nodiscard]] std::string msgpack_to_json(const char* data, std::size_t size);
// A response as the wire shows it (encoded, then rendered as above):
// `loyaltyctl --json` prints every answer this way, so its JSON has the
// fields and names of docs/PROTOCOL.md and needs no code of its own per
// operation.
[[nodiscard]] std::string response_json(const response& r);
// One event of the stream as its map on the wire (`loyaltyctl tail`).
[[nodiscard]] std::string event_json(const stream_event& e);

} // namespace loyalty::io
