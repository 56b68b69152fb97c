#include "io/wire/json.hpp"

#include "io/wire/codec.hpp"

#include <msgpack.hpp>

#include <cmath>

namespace loyalty::io {

namespace {

// True if `s` is UTF-8 without control characters other than \t \n \r:
// what a JSON string shows as text.
bool printable_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size())
      return false;
    if (n == 1 && c < 0x20 && c != '\t' && c != '\n' && c != '\r')
      return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2)
        return false;
    i += n;
  }
  return true;
}

void hex(std::string& out, std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    out += digits[c >> 4];
    out += digits[c & 0xf];
  }
}

void render(std::string& out, const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: out += "null"; break;
    case msgpack::type::BOOLEAN: out += o.via.boolean ? "true" : "false"; break;
    case msgpack::type::POSITIVE_INTEGER: out += std::to_string(o.via.u64); break;
    case msgpack::type::NEGATIVE_INTEGER: out += std::to_string(o.via.i64); break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: {
      // The protocol has no floats; shown if a newer server sends one.
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", o.via.f64);
      out += std::isfinite(o.via.f64) ? buf : "null";
      break;
    }
    case msgpack::type::STR: out += quoted({o.via.str.ptr, o.via.str.size}); break;
    case msgpack::type::BIN: {
      const std::string_view b(o.via.bin.ptr, o.via.bin.size);
      if (printable_utf8(b)) {
        out += quoted(b);
      } else {
        out += "{\"hex\":\"";
        hex(out, b);
        out += "\"}";
      }
      break;
    }
    case msgpack::type::ARRAY:
      out += '[';
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        if (i > 0)
          out += ',';
        render(out, o.via.array.ptr[i]);
      }
      out += ']';
      break;
    case msgpack::type::MAP:
      out += '{';
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (i > 0)
          out += ',';
        if (kv.key.type == msgpack::type::STR) {
          out += quoted({kv.key.via.str.ptr, kv.key.via.str.size});
        } else {  // JSON keys are strings: any other key as its JSON text, quoted
          std::string key;
          render(key, kv.key);
          out += io::quoted(std::string_view(key));
        }
        out += ':';
        render(out, kv.val);
      }
      out += '}';
      break;
    case msgpack::type::EXT: {
      out += "{\"ext\":" + std::to_string(o.via.ext.type()) + ",\"hex\":\"";
      hex(out, {o.via.ext.data(), o.via.ext.size});
      out += "\"}";
      break;
    }
  }
}

} // namespace

std::string msgpack_to_json(const char* data, std::size_t size) {
  try {
    std::size_t off = 0;
    auto handle = msgpack::unpack(data, size, off);
    if (off != size)
      return {};
    std::string out;
    render(out, handle.get());
    return out;
  } catch (const std::exception&) {
    return {};
  }
}

std::string response_json(const response& r) {
  std::vector<char> frame;
  encode_response(frame, r);
  return msgpack_to_json(frame.data() + frame_header_bytes, frame.size() - frame_header_bytes);
}

std::string event_json(const stream_event& e) {
  std::vector<char> map;
  encode_event(map, e);
  return msgpack_to_json(map.data(), map.size());
}

} // namespace loyalty::io
