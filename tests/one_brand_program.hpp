// The smallest program the io tests run on: one brand ("shop", 1 point per
// 100 minor units, a point costs half a minor unit) and one tier. Tests
// about the wire, not about policy, share it, and its earn request.
#pragma once

#include "io/wire/protocol.hpp"

#include <cstdint>
#include <string>

namespace loyalty::test {

inline constexpr const char* one_brand_program = R"(
[program]
name = "one-brand"
currency = "EUR"

[[brands]]
id = 1
code = "shop"
earn_rate = { num = 1, den = 100 }
cost_per_point = { num = 1, den = 2 }

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }
)";

// An earn of `amount` minor units (EUR) at the program's brand.
inline io::request shop_earn(std::uint64_t member, std::string txn, std::int64_t amount) {
  io::request r;
  r.op = io::opcode::earn;
  r.member = member;
  r.txn = std::move(txn);
  r.brand = "shop";
  r.amount = amount;
  r.currency = "EUR";
  return r;
}

} // namespace loyalty::test
