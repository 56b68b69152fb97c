// The wire as an integrator sees it, for tests of the protocol's contract:
// a plain loopback socket that sends bytes as they are and reads answers as
// bytes (not through the client library's decoder), frames built from raw
// msgpack (for requests the client library cannot build), and a frame shown
// as the JSON that docs/PROTOCOL.md writes.
#pragma once

#include "io/wire/codec.hpp"

#include <msgpack.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace loyalty::test {

// The layout of the document's blocks: 16 bytes a line, lower case.
inline std::string hex_lines(const std::string& bytes) {
  std::string out;
  char buf[4];
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned char>(bytes[i]));
    out += buf;
    out += (i % 16 == 15 || i + 1 == bytes.size()) ? '\n' : ' ';
  }
  return out;
}

// The JSON the document writes for a msgpack value: keys in wire order,
// binary as bin("...").
inline void render_json(const msgpack::object& o, std::string& out) {
  auto text = [&](const char* p, std::size_t n) {
    out += '"';
    for (std::size_t i = 0; i < n; ++i) {
      if (p[i] == '"' || p[i] == '\\')
        out += '\\';
      out += p[i];
    }
    out += '"';
  };
  switch (o.type) {
    case msgpack::type::NIL: out += "null"; return;
    case msgpack::type::BOOLEAN: out += o.via.boolean ? "true" : "false"; return;
    case msgpack::type::POSITIVE_INTEGER: out += std::to_string(o.via.u64); return;
    case msgpack::type::NEGATIVE_INTEGER: out += std::to_string(o.via.i64); return;
    case msgpack::type::STR: text(o.via.str.ptr, o.via.str.size); return;
    case msgpack::type::BIN:
      out += "bin(";
      text(o.via.bin.ptr, o.via.bin.size);
      out += ")";
      return;
    case msgpack::type::ARRAY:
      out += '[';
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        if (i > 0)
          out += ',';
        render_json(o.via.array.ptr[i], out);
      }
      out += ']';
      return;
    case msgpack::type::MAP:
      out += '{';
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        if (i > 0)
          out += ',';
        render_json(o.via.map.ptr[i].key, out);
        out += ':';
        render_json(o.via.map.ptr[i].val, out);
      }
      out += '}';
      return;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
    case msgpack::type::EXT:
      break;
  }
  FAIL("the protocol has no floats or ext values");
}

// A frame's payload as the document's JSON.
inline std::string json_of(const std::string& frame) {
  REQUIRE(frame.size() > io::frame_header_bytes);
  auto oh = msgpack::unpack(frame.data() + io::frame_header_bytes, frame.size() - io::frame_header_bytes);
  std::string out;
  render_json(oh.get(), out);
  return out;
}

// A frame as the client library reads it.
inline io::response decoded(const std::string& frame) {
  io::response r;
  std::string error;
  INFO(error);
  REQUIRE(io::decode_response(frame.data() + io::frame_header_bytes, frame.size() - io::frame_header_bytes, r, error));
  return r;
}

// An integrator's socket: the documented bytes go out as they are, and the
// answer comes back as bytes, not through the client library's decoder.
class raw_socket {
public:
  explicit raw_socket(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
  }
  ~raw_socket() { ::close(fd_); }
  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;

  void send(const std::string& bytes) {
    REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
  }

  // The next frame, length prefix included; waits for it at most 20 s (a
  // liveness bound, far above what an answer needs).
  std::string frame() {
    std::string out = take(io::frame_header_bytes);
    out += take(io::read_be32(reinterpret_cast<const unsigned char*>(out.data())));
    return out;
  }

private:
  std::string take(std::size_t n) {
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
      pollfd p{fd_, POLLIN, 0};
      REQUIRE(::poll(&p, 1, 20'000) == 1);
      const auto r = ::recv(fd_, out.data() + got, n - got, 0);
      REQUIRE(r > 0);
      got += static_cast<std::size_t>(r);
    }
    return out;
  }
  int fd_;
};

// A frame of one msgpack value that `fill` packs (a msgpack::packer):
// requests with non-string keys, negative ids, a txn as str or as bin.
template <class Fill>
std::string frame_of(Fill fill) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  fill(pk);
  std::string out(io::frame_header_bytes, '\0');
  io::write_be32(reinterpret_cast<unsigned char*>(out.data()), static_cast<std::uint32_t>(buf.size()));
  return out + std::string(buf.data(), buf.size());
}

} // namespace loyalty::test
