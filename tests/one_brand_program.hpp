// The smallest program the io tests run on: one brand ("shop", 1 point per
// 100 minor units, a point costs half a minor unit) and one tier. Tests
// about the wire, not about policy, share it.
#pragma once

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

} // namespace loyalty::test
