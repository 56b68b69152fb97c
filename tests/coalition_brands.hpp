// What the coalition tests share (coalition_test, report_test): a start
// instant, two brands of one points currency, the request of a redemption
// at a given brand, and reading answers.
#pragma once

#include "io/wire/protocol.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace loyalty::test {

inline constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z
inline constexpr std::uint64_t day_us = 86'400'000'000ull;

inline constexpr const char* acme_key = "test-acme-key-0123456789";  // give it scope brand:acme

// acme and globex both earn 1 point per 100 cents; an acme point is worth
// half a cent, a globex point a cent. TOML, after a [program] table.
inline constexpr const char* two_brands_toml = R"(
[[brands]]
id = 1
code = "acme"
earn_rate = { num = 1, den = 100 }
cost_per_point = { num = 1, den = 2 }

[[brands]]
id = 2
code = "globex"
earn_rate = { num = 1, den = 100 }
cost_per_point = { num = 1, den = 1 }
)";

// A redemption of `points` at `brand` (points of another brand spent there
// settle between the brands).
inline io::request redeem_at(const std::string& txn, std::uint64_t member, std::int64_t points,
                             const std::string& brand) {
  io::request r;
  r.op = io::opcode::redeem;
  r.txn = txn;
  r.member = member;
  r.points = points;
  r.brand = brand;
  return r;
}

// The answer, which must be a success.
inline io::response ok(io::response res) {
  INFO(io::to_string(res.op) << ": " << to_string(res.code) << " " << res.message);
  REQUIRE(res.ok());
  return res;
}

// The row of `brand` among a report's (liability's) rows, which must hold one.
template <class Row>
const Row& row_of(const std::vector<Row>& rows, const std::string& brand) {
  for (const auto& row : rows)
    if (row.brand == brand)
      return row;
  FAIL("no row for brand " << brand);
  return rows.front();
}

} // namespace loyalty::test
