// msgpack encoding and decoding of protocol frames (docs/PROTOCOL.md).
// Thread-safe (no shared state). Never throws for bad input: decoding errors
// are reported as values.
#pragma once

#include "io/wire/protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace loyalty::io {

inline constexpr std::size_t frame_header_bytes = 4;

[[nodiscard]] std::uint32_t read_be32(const unsigned char* p) noexcept;
void write_be32(unsigned char* p, std::uint32_t v) noexcept;

// -- server side -----------------------------------------------------------
// Decodes one frame payload (without the length prefix). Never throws.
// If the payload is not a single valid msgpack value, the result has
// error == malformed_frame (the caller closes the connection). Otherwise
// every validation failure (missing field, wrong type, bad range, unknown op,
// batch too large) is recorded in `error` / `error_message` of the request or
// of the individual batch element, with `id` filled in when it was readable.
[[nodiscard]] request decode_request(const char* data, std::size_t size);

// Appends one complete frame (length prefix + payload) to `out`.
void encode_response(std::vector<char>& out, const response& r);
// One event of an events frame as its own msgpack map (payload only, no
// length prefix): what `loyaltyctl tail` prints, rendered as JSON.
void encode_event(std::vector<char>& out, const stream_event& e);
// The bytes one entry of a `journal` answer takes in it (the server cuts a
// page at journal_page_bytes_max with it).
[[nodiscard]] std::size_t journal_entry_bytes(const journal_entry& e);

// -- client side ---------------------------------------------------------------
// Appends one complete frame (length prefix + payload) to `out`.
void encode_request(std::vector<char>& out, const request& r);

// Decodes one response payload (without the length prefix). Returns false and
// sets `error` if it is not a valid response.
[[nodiscard]] bool decode_response(const char* data, std::size_t size, response& out,
                                   std::string& error);

} // namespace loyalty::io
