// The loyaltyd wire protocol, version 1: C++ view of requests and responses.
// docs/PROTOCOL.md is the contract; this header mirrors it. Both the server
// and the client library encode and decode through io/codec.hpp.
//
// Frame: 4-byte big-endian unsigned payload length N (1 <= N <=
// limits::frame_bytes_max), then N bytes holding exactly one msgpack map.
#pragma once

#include "config/errc.hpp"
#include "config/limits.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace loyalty::io {

enum class opcode : std::uint8_t {
  none = 0,  // not decoded (error before `op` was read)
  hello,
  enroll,
  earn,
  redeem,
  balance,
  verify,
  stats,
  batch,
};

[[nodiscard]] const char* to_string(opcode op) noexcept;

struct request {
  opcode op = opcode::none;
  std::uint64_t id = 0;            // client correlation id, echoed in the response
  // Set by the decoder when this request (or batch element) is invalid; the
  // server answers it with this error without executing anything.
  errc error = errc::ok;
  std::string error_message;

  // hello
  std::uint32_t version = 0;
  std::string client_name;
  // enroll / earn / redeem / balance
  std::uint64_t member = 0;        // 1 .. 2^56-1
  std::string brand;               // brand code (enroll, earn)
  std::string txn;                 // client txn id, 1..64 bytes (earn, redeem)
  std::int64_t amount = 0;         // earn: minor currency units, > 0
  std::string currency;            // earn: ISO 4217 code
  std::uint64_t occurred_at_us = 0;// earn: microseconds since Unix epoch
  std::int64_t points = 0;         // redeem: > 0
  // batch
  std::vector<request> ops;
};

struct verify_result {
  bool valid = false;
  std::uint64_t entries = 0, postings = 0, accounts = 0, members = 0, txn_ids = 0;
  std::vector<std::string> problems;
};

struct response {
  opcode op = opcode::none;        // which operation this answers (selects fields)
  std::uint64_t id = 0;
  errc code = errc::ok;
  std::string message;             // error only
  // hello
  std::uint32_t version = 0;
  std::string server;
  std::uint32_t frame_bytes_max = 0, inflight_max = 0, batch_ops_max = 0;
  // enroll / earn / redeem / balance
  std::uint64_t seq = 0;
  std::uint64_t member = 0;
  std::int64_t points = 0, balance = 0, lifetime = 0;
  std::string tier;
  std::string brand;
  bool replayed = false;
  // verify
  verify_result verify;
  // stats: name -> value, in the order the server lists them
  std::vector<std::pair<std::string, std::uint64_t>> stats;
  // batch
  std::vector<response> results;

  [[nodiscard]] bool ok() const noexcept { return code == errc::ok; }
};

} // namespace loyalty::io
