// Policy evaluation: pure functions over the program (config) and a member's
// plain state. Member actors call these; tests call them directly.
//
// Rounding rule (issue 2): points = floor(amount_minor * rate.num * mult.num
//                                         / (rate.den * mult.den)),
// evaluated once per earn in unsigned 128-bit arithmetic. A result above
// INT64_MAX is amount_overflow, never a wrap.
#pragma once

#include "config/errc.hpp"
#include "config/program.hpp"

#include <cstdint>
#include <string_view>

namespace loyalty::actors {

// What a member actor owns, as plain data.
struct member_data {
  bool loaded = false;
  bool enrolled = false;
  std::uint32_t brand_id = 0;
  std::int64_t balance = 0;   // committed + in-flight (tentative) points
  std::int64_t lifetime = 0;  // lifetime earned points, committed + in-flight
  std::uint32_t tier = 0;
};

struct points_result {
  errc code = errc::ok;
  std::int64_t points = 0;
};

// Points for a purchase of amount_minor (> 0) at brand b by a member in tier
// `tier` (index into prog.tiers).
[[nodiscard]] points_result earn_points(const program& prog, const brand_def& b,
                                        std::uint32_t tier, std::int64_t amount_minor) noexcept;

// a + b for non-negative b, or amount_overflow.
[[nodiscard]] points_result checked_add(std::int64_t a, std::int64_t b) noexcept;

enum class request_kind : std::uint8_t { enroll = 1, earn = 2, redeem = 3, balance = 4 };

// Canonical content hash of a request, stored with its journal entry: a reused
// txn id whose content hash differs is a txn_id_conflict. The encoding is
// fixed (little-endian fields in this order); never change it.
[[nodiscard]] std::uint64_t request_hash(request_kind kind, std::uint64_t member,
                                         std::uint32_t brand_id, std::int64_t amount_minor,
                                         std::uint64_t occurred_at_us, std::int64_t points,
                                         std::string_view currency) noexcept;

} // namespace loyalty::actors
