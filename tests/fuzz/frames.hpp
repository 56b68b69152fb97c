// A fuzz input read as the server reads a connection (session::parse in
// io/server/session.cpp): length-prefixed frames, one after the other. Both fuzz
// targets read their input this way, so one corpus format serves both and a
// seed is exactly the bytes a client would send.
#pragma once

#include "config/limits.hpp"
#include "io/wire/codec.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace loyalty::fuzz {

// How the input ended after its whole frames.
enum class frames_end {
  clean,       // nothing left over
  partial,     // a frame (or a header) not yet complete: the server waits for more
  bad_length,  // a length of 0 or above frame_bytes_max: the server closes the connection
};

// Calls on_frame(payload, size) for each whole frame at the front of the
// input, up to frames_max of them (an input past that is treated as clean:
// the rest is never looked at). The header of a bad length is not passed.
template <class OnFrame>
frames_end for_each_frame(const std::uint8_t* data, std::size_t size, std::size_t frames_max, OnFrame on_frame) {
  std::size_t pos = 0;
  for (std::size_t n = 0; n < frames_max; ++n) {
    if (size - pos == 0)
      return frames_end::clean;
    if (size - pos < io::frame_header_bytes)
      return frames_end::partial;
    const std::uint32_t len = io::read_be32(data + pos);
    if (len == 0 || len > limits::frame_bytes_max)
      return frames_end::bad_length;
    if (size - pos - io::frame_header_bytes < len)
      return frames_end::partial;
    on_frame(reinterpret_cast<const char*>(data + pos + io::frame_header_bytes), std::size_t{len});
    pos += io::frame_header_bytes + len;
  }
  return frames_end::clean;
}

} // namespace loyalty::fuzz

// A violated invariant: a message on stderr, then a crash libFuzzer reports
// (with the input that caused it). On in every build type.
#define FUZZ_CHECK(cond)                                                                     \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)
