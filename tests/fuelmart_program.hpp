// The FuelMart program of the rule resolution tests (issue 19 item 6): a
// fuel station chain whose double-points weekend and fuel bonus compete for
// the same baskets. Shared by the plain-code and the over-the-wire tests.
#pragma once

#include <string>

namespace loyalty::test {

inline constexpr const char* fuelmart_head = R"(
[program]
name = "fuelmart"
currency = "EUR"
minor_units = 2
utc_offset_minutes = 60
)";

// 1 point per 1.00; weekends double the whole basket (a daily budget of
// 10,000 points over all members); fuel gives 50 points. Under "best" only
// the bigger of the two counts.
inline constexpr const char* fuelmart_rules = R"(
[[brands]]
id = 1
code = "fuelmart"
name = "FuelMart"
earn_rate = { num = 1, den = 100 }

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }

[[rules]]
id = 1
code = "double-weekend"
trigger = "purchase"
weekdays = ["sat", "sun"]
multiplier = { num = 2, den = 1 }
budget_per_day = 10000

[[rules]]
id = 2
code = "fuel-bonus"
trigger = "purchase"
categories = ["fuel"]
bonus_points = 50
priority = 5
)";

inline std::string fuelmart(const std::string& resolution) {
  return std::string(fuelmart_head) + (resolution.empty() ? "" : "rule_resolution = \"" + resolution + "\"\n") +
         fuelmart_rules;
}

} // namespace loyalty::test
