// The program the two fuzzers of whole engines share (tests/ops_fuzz_test.cpp
// and tests/fuzz/engine_fuzz.cpp): two brands with different costs per
// point, an active and a suspended partner, tiers, every kind of rule, and
// short lifetimes so that pending periods, expiry, inactivity and hold TTLs
// all happen within a run; caps and stock small enough to be reached.
#pragma once

namespace loyalty::test {

inline constexpr const char* program_toml = R"(
[program]
name = "fuzz"
currency = "EUR"

[[brands]]
id = 1
code = "shop"
name = "Shop"
earn_rate = { num = 1, den = 100 }
cost_per_point = { num = 1, den = 3 }

[[brands]]
id = 2
code = "web"
name = "Web"
earn_rate = { num = 3, den = 200 }
cost_per_point = { num = 2, den = 1 }

[[partners]]
id = 3
code = "air"
brand = "web"
earn_cost = { num = 7, den = 9 }
burn_reimbursement = { num = 2, den = 3 }

[[partners]]
id = 9
code = "inn"
brand = "shop"
earn_cost = { num = 3, den = 2 }
burn_reimbursement = { num = 5, den = 4 }
status = "suspended"

[tier_policy]
metric = "qualifying_points"
window_days = 30
review = "month"
grace_days = 3

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }

[[tiers]]
name = "silver"
threshold = 200
multiplier = { num = 5, den = 4 }

[[rules]]
id = 1
code = "welcome"
trigger = "enroll"
bonus_points = 25
cap_total = 100

[[rules]]
id = 2
code = "first-buy"
trigger = "first_purchase"
bonus_points = 40

[[rules]]
id = 3
code = "web-double"
trigger = "purchase"
channels = ["web"]
multiplier = { num = 2, den = 1 }
cap_per_member = 300

[[rules]]
id = 4
code = "toys"
trigger = "purchase"
categories = ["toys"]
multiplier = { num = 3, den = 1 }
cap_total = 500

[[rules]]
id = 5
code = "survey"
trigger = "event"
event = "survey"
bonus_points = 15
uses_per_member_max = 2

[lifecycle]
pending_days = 2
expiry_days = 20
inactivity_days = 12
negative_balance_max = 150
hold_ttl_default_s = 600
hold_ttl_max_s = 7200

[[rewards]]
id = 1
code = "mug"
name = "Mug"
cost = 40
stock = 3
brand = "shop"

[[rewards]]
id = 2
code = "ticket"
name = "Ticket"
cost = 25
brand = "web"
)";

} // namespace loyalty::test
