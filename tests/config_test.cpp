#include "temp_dir.hpp"
#include "actors/policy.hpp"
#include "config/program.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

using namespace loyalty;

namespace {

const char* valid_program = R"(
[program]
name = "Test"
currency = "EUR"

[[brands]]
id = 1
code = "acme"
earn_rate = { num = 5, den = 250 }

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }

[[tiers]]
name = "gold"
threshold = 100
multiplier = { num = 3, den = 2 }
)";

std::string all(const std::vector<config_error>& errors) {
  std::string s;
  for (auto& e : errors)
    s += e.message + "\n";
  return s;
}

// 1-based line of the first line of `text` that contains `marker`.
int line_of(const std::string& text, std::string_view marker) {
  auto at = text.find(marker);
  REQUIRE(at != std::string::npos);
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
}

// Whether some error is "file:line: ..." and contains `what`.
bool reported(const std::vector<config_error>& errors, const std::string& file, int line,
              std::string_view what) {
  const std::string prefix = file + ":" + std::to_string(line) + ": ";
  return std::any_of(errors.begin(), errors.end(), [&](const config_error& e) {
    return e.message.rfind(prefix, 0) == 0 && e.message.find(what) != std::string::npos;
  });
}

// A valid program using every section; cases below append to or edit it.
const std::string full_program = R"(
[program]
name = "Full"
currency = "EUR"
minor_units = 2
utc_offset_minutes = 60
point_rounding = "floor"

[[brands]]
id = 2
code = "globex"
earn_rate = { num = 2, den = 100 }

[[brands]]
id = 1
code = "acme"
name = "Acme"
earn_rate = { num = 1, den = 100 }

[tier_policy]
metric = "spend"
window_days = 365
review = "quarter"
grace_days = 30

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }

[[tiers]]
name = "gold"
threshold = 5000
multiplier = { num = 3, den = 2 }

[[rules]]
id = 101
code = "double-coffee"
trigger = "purchase"
brands = ["acme", "globex"]
skus = ["SKU-1"]
categories = ["coffee", "tea"]
channels = ["app", "store"]
from = 2026-11-27T00:00:00
to = 2026-12-01
weekdays = ["mon", "fri", "sun"]
hours = [8, 20]
min_amount = 1000
multiplier = { num = 2, den = 1 }
cap_per_member = 500
cap_total = 100000
uses_per_member_max = 3

[[rules]]
id = 102
code = "survey"
trigger = "event"
event = "survey"
bonus_points = 50
uses_per_member_max = 1

[[rules]]
id = 103
code = "welcome"
trigger = "enroll"
bonus_points = 100

[[rules]]
id = 104
code = "first"
trigger = "first_purchase"
brands = ["globex"]
bonus_points = 250

[lifecycle]
pending_days = 14
expiry_days = 730
expiry_rounding = "year"
inactivity_days = 1095
negative_balance_max = 5000
hold_ttl_default_s = 600
hold_ttl_max_s = 3600

[[rewards]]
id = 7
code = "coffee"
name = "Free coffee"
cost = 150
stock = 40
brand = "acme"

[[rewards]]
id = 8
code = "voucher"
cost = 1000
brand = "globex"
)";

// full_program with the first occurrence of `from` replaced by `to`.
std::string edited(std::string_view from, std::string_view to) {
  std::string s = full_program;
  auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  s.replace(at, from.size(), to);
  return s;
}

} // namespace

TEST_CASE("the example program and settings load without errors", "[config]") {
  std::vector<config_error> errors;
  auto settings = load_settings(LOYALTY_SOURCE_DIR "/config/loyaltyd.toml", errors);
  INFO(all(errors));
  REQUIRE(settings);
  CHECK(settings->listen_port == 7411);
  CHECK(settings->sync == durability::fsync);
  auto prog = load_program(settings->program_path, errors);
  INFO(all(errors));
  REQUIRE(prog);
  CHECK(prog->brands.size() == 2);
  CHECK(prog->find_brand("acme") != nullptr);
  CHECK(prog->tiers.front().threshold == 0);
}

TEST_CASE("a valid program parses into brands and tiers", "[config]") {
  std::vector<config_error> errors;
  auto p = parse_program(valid_program, "t.toml", errors);
  INFO(all(errors));
  REQUIRE(p);
  CHECK(p->currency == "EUR");
  CHECK(p->brands[0].earn_rate.num == 5);
  CHECK(p->tier_for(99) == 0);
  CHECK(p->tier_for(100) == 1);
}

TEST_CASE("an unknown key is reported with its line number", "[config]") {
  std::string text = valid_program;
  text += "\n[[brands]]\nid = 2\ncode = \"b\"\nearn_rate = { num = 1, den = 1 }\ncolour = \"red\"\n";
  std::vector<config_error> errors;
  auto p = parse_program(text, "t.toml", errors);
  REQUIRE_FALSE(p);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message.find("unknown key 'colour'") != std::string::npos);
  CHECK(errors[0].message.find("t.toml:25") != std::string::npos);
}

TEST_CASE("wrong types, duplicates and non-increasing tiers are all reported", "[config]") {
  const char* bad = R"(
[program]
name = "Bad"
currency = "eur"

[[brands]]
id = "one"
code = "acme"
earn_rate = { num = 1, den = 0 }

[[brands]]
id = 2
code = "acme"
earn_rate = { num = 1, den = 1 }

[[tiers]]
name = "member"
threshold = 10
multiplier = { num = 1, den = 1 }

[[tiers]]
name = "silver"
threshold = 5
multiplier = { num = 1, den = 1 }
)";
  std::vector<config_error> errors;
  auto p = parse_program(bad, "bad.toml", errors);
  REQUIRE_FALSE(p);
  auto text = all(errors);
  INFO(text);
  CHECK(text.find("currency must be a 3-letter") != std::string::npos);
  CHECK(text.find("'id' in [[brands]] must be an integer") != std::string::npos);
  CHECK(text.find("'den' in [[brands]].earn_rate must be between 1") != std::string::npos);
  CHECK(text.find("duplicate brand code 'acme'") != std::string::npos);
  CHECK(text.find("thresholds must strictly increase") != std::string::npos);
  CHECK(text.find("first tier must have threshold = 0") != std::string::npos);
}

TEST_CASE("a syntax error names the file and does not throw", "[config]") {
  std::vector<config_error> errors;
  auto p = parse_program("[program\nname = ", "broken.toml", errors);
  REQUIRE_FALSE(p);
  REQUIRE_FALSE(errors.empty());
  CHECK(errors[0].message.find("broken.toml") != std::string::npos);
}

TEST_CASE("a missing settings file is an error, not a crash", "[config]") {
  std::vector<config_error> errors;
  CHECK_FALSE(load_settings("/nonexistent/loyaltyd.toml", errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message.find("no such file") != std::string::npos);
}

TEST_CASE("tls_cert and tls_key come together, relative to the settings file; one alone is a line-numbered error",
          "[config]") {
  test::temp_dir dir("config-tls");
  auto settings_at = [&](const std::string& body) {
    auto path = (dir.path / "etc" / "loyaltyd.toml").string();
    std::filesystem::create_directories(dir.path / "etc");
    std::ofstream(path) << "[engine]\nprogram = \"p.toml\"\n" << body;
    return path;
  };
  std::vector<config_error> errors;
  auto both = load_settings(settings_at("tls_cert = \"tls/cert.pem\"\ntls_key = \"/abs/key.pem\"\n"
                                        "tls_handshake_timeout_ms = 250\n"),
                            errors);
  INFO(all(errors));
  REQUIRE(both);
  CHECK(both->tls_cert == (dir.path / "etc" / "tls" / "cert.pem").string());
  CHECK(both->tls_key == "/abs/key.pem");
  CHECK(both->tls_handshake_timeout_ms == 250);
  auto neither = load_settings(settings_at(""), errors);
  REQUIRE(neither);
  CHECK(neither->tls_cert.empty());
  CHECK(neither->tls_handshake_timeout_ms == limits::tls_handshake_timeout_ms_default);
  auto path = settings_at("listen_port = 7411\ntls_key = \"key.pem\"\n");
  CHECK_FALSE(load_settings(path, errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message == path + ":4: tls_cert and tls_key in [engine] go together: tls_cert is missing");
}

TEST_CASE("the metrics endpoint is off unless metrics_port is set, and its keys are checked with line numbers",
          "[config]") {
  test::temp_dir dir("config-metrics");
  auto settings_at = [&](const std::string& body) {
    auto path = (dir.path / "loyaltyd.toml").string();
    std::ofstream(path) << "[engine]\nprogram = \"p.toml\"\n" << body;
    return path;
  };
  std::vector<config_error> errors;
  auto off = load_settings(settings_at(""), errors);
  INFO(all(errors));
  REQUIRE(off);
  CHECK(off->metrics_port == 0);
  CHECK(off->metrics_host == "127.0.0.1");
  CHECK(off->metrics_read_timeout_ms == limits::metrics_read_timeout_ms_default);
  auto on = load_settings(settings_at("metrics_host = \"0.0.0.0\"\nmetrics_port = 9464\n"
                                      "metrics_read_timeout_ms = 250\n"),
                          errors);
  INFO(all(errors));
  REQUIRE(on);
  CHECK(on->metrics_host == "0.0.0.0");
  CHECK(on->metrics_port == 9464);
  CHECK(on->metrics_read_timeout_ms == 250);

  auto path = settings_at("metrics_port = 65536\nmetrics_read_timeout_ms = 0\nmetrics_host = \"\"\n");
  CHECK_FALSE(load_settings(path, errors));
  const auto text = all(errors);
  INFO(text);
  CHECK(errors.size() == 3);
  CHECK(text.find(path + ":3: 'metrics_port' in [engine] must be between 0 and 65535, got 65536") != std::string::npos);
  CHECK(text.find(path + ":4: 'metrics_read_timeout_ms' in [engine] must be between 1 and 600000, got 0") !=
        std::string::npos);
  CHECK(text.find(path + ":5: 'metrics_host' in [engine] must not be empty") != std::string::npos);

  errors.clear();
  path = settings_at("listen_port = 7411\nmetrics_port = 7411\n");
  CHECK_FALSE(load_settings(path, errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message == path + ":4: 'metrics_port' in [engine] is the listen port 7411: metrics need a port "
                                    "of their own (or 0 for none)");
}

namespace {

// Points of a purchase of `amount` at the first brand, by a member of `tier`.
actors::earn_decision earn(const program& p, std::uint32_t tier, std::int64_t amount) {
  actors::basket b;
  b.brand_id = p.brands[0].id;
  b.amount = amount;
  return actors::evaluate_earn(p, ledger::member_book{}, tier, b, {});
}

} // namespace

TEST_CASE("points are floored once: 2.99 at 5 points per 2.50 gives 5, 2.49 gives 4", "[config][policy]") {
  std::vector<config_error> errors;
  auto p = parse_program(valid_program, "t.toml", errors);
  REQUIRE(p);
  auto r = earn(*p, 0, 300);
  CHECK(r.code == errc::ok);
  CHECK(r.points == 6);  // 300 * 5 / 250 = 6 exactly: the rate is proportional, per cent
  CHECK(earn(*p, 0, 299).points == 5);
  CHECK(earn(*p, 0, 249).points == 4);
}

TEST_CASE("the tier bonus is its own line, floored once", "[config][policy]") {
  std::vector<config_error> errors;
  auto p = parse_program(valid_program, "t.toml", errors);
  REQUIRE(p);
  // 150 cents: base floor(150 x 5/250) = 3, gold bonus floor(3 x 1/2) = 1.
  auto r = earn(*p, 1, 150);
  REQUIRE(r.lines.size() == 2);
  CHECK(r.lines[0].points == 3);
  CHECK(r.lines[1].points == 1);
  CHECK(r.points == 4);
  // 250: base 5, bonus floor(2.5) = 2.
  CHECK(earn(*p, 1, 250).points == 7);
}

TEST_CASE("an earn whose points would not fit in 64 bits is amount_overflow", "[config][policy]") {
  std::vector<config_error> errors;
  auto p = parse_program(valid_program, "t.toml", errors);
  REQUIRE(p);
  CHECK(earn(*p, 0, 0).code == errc::invalid_amount);
  CHECK(earn(*p, 0, -5).code == errc::invalid_amount);
  p->brands[0].earn_rate = {1'000'000'000, 1};
  CHECK(earn(*p, 0, INT64_MAX).code == errc::amount_overflow);
}

// -- issue 3: the full program schema ---------------------------------------------------

TEST_CASE("both example programs load without errors", "[config]") {
  std::vector<config_error> errors;
  auto retail = load_program(LOYALTY_SOURCE_DIR "/config/examples/retail.toml", errors);
  INFO(all(errors));
  REQUIRE(retail);
  REQUIRE(retail->brands.size() == 2);
  CHECK(retail->brands[0].id == 1);
  CHECK(retail->brands[0].code == "acme");
  CHECK(retail->brands[0].earn_rate.num == 1);
  CHECK(retail->brands[0].earn_rate.den == 100);
  CHECK(retail->brands[1].id == 2);
  CHECK(retail->brands[1].code == "globex");
  CHECK(retail->brands[1].earn_rate.num == 2);
  CHECK(retail->brands[1].earn_rate.den == 100);
  REQUIRE(retail->tiers.size() == 3);
  CHECK(retail->tiers[0].name == "member");
  CHECK(retail->tiers[0].threshold == 0);
  CHECK(retail->tiers[1].name == "silver");
  CHECK(retail->tiers[1].threshold == 1000);
  CHECK(retail->tiers[1].multiplier.num == 5);
  CHECK(retail->tiers[1].multiplier.den == 4);
  CHECK(retail->tiers[2].name == "gold");
  CHECK(retail->tiers[2].threshold == 5000);
  CHECK(retail->tiers[2].multiplier.num == 3);
  CHECK(retail->tiers[2].multiplier.den == 2);
  CHECK_FALSE(retail->rules.empty());
  CHECK_FALSE(retail->rewards.empty());
  CHECK(retail->brands[0].cost_per_point.num == 1);
  REQUIRE(retail->partners.size() == 1);
  CHECK(retail->partners[0].code == "skyair");
  CHECK(retail->partners[0].brand_id == 1);

  auto fuel = load_program(LOYALTY_SOURCE_DIR "/config/examples/fuel_coalition.toml", errors);
  INFO(all(errors));
  REQUIRE(fuel);
  CHECK(fuel->brands.size() == 3);
  CHECK(fuel->find_brand("fuel") != nullptr);
  CHECK(fuel->find_brand("shop") != nullptr);
  CHECK(fuel->find_brand("wash") != nullptr);
  CHECK(fuel->tier_rules.metric == tier_metric::spend);
  CHECK(fuel->lifecycle.pending_days > 0);
  for (auto trig : {rule_trigger::purchase, rule_trigger::enroll, rule_trigger::first_purchase,
                    rule_trigger::event})
    CHECK(std::any_of(fuel->rules.begin(), fuel->rules.end(),
                      [&](const earn_rule& r) { return r.trigger == trig; }));
  CHECK(fuel->rewards.size() >= 3);
  CHECK(fuel->partners.size() == 2);
  CHECK(fuel->find_partner("rent-a-car")->status == partner_status::suspended);
  CHECK(errors.empty());
}

TEST_CASE("every key of the full schema parses into its struct field", "[config]") {
  std::vector<config_error> errors;
  auto p = parse_program(full_program, "full.toml", errors);
  INFO(all(errors));
  REQUIRE(p);
  CHECK(p->name == "Full");
  CHECK(p->minor_units == 2);
  CHECK(p->utc_offset_minutes == 60);
  // brands are sorted by id
  REQUIRE(p->brands.size() == 2);
  CHECK(p->brands[0].code == "acme");
  CHECK(p->brands[0].name == "Acme");
  CHECK(p->brands[1].code == "globex");

  CHECK(p->tier_rules.metric == tier_metric::spend);
  CHECK(p->tier_rules.window_days == 365);
  CHECK(p->tier_rules.review == calendar_period::quarter);
  CHECK(p->tier_rules.grace_days == 30);

  REQUIRE(p->rules.size() == 4);
  const earn_rule& r = p->rules[0];
  CHECK(r.id == 101);
  CHECK(r.code == "double-coffee");
  CHECK(r.trigger == rule_trigger::purchase);
  CHECK(r.event_kind.empty());
  CHECK(r.brands == std::vector<std::uint32_t>{1, 2});  // stored as ids, in file order
  CHECK(r.skus == std::vector<std::string>{"SKU-1"});
  CHECK(r.categories == std::vector<std::string>{"coffee", "tea"});
  CHECK(r.channels == std::vector<std::string>{"app", "store"});
  // Local times at UTC+01:00: 2026-11-27T00:00 local = 2026-11-26T23:00:00Z.
  CHECK(r.window.from_us == 1'795'734'000'000'000ull);
  // A local date is local midnight: 2026-12-01T00:00 local = 2026-11-30T23:00:00Z.
  CHECK(r.window.to_us == 1'796'079'600'000'000ull);
  CHECK(r.window.weekdays == 0b1010001);  // mon (bit 0), fri (bit 4), sun (bit 6)
  CHECK(r.window.hour_from == 8);
  CHECK(r.window.hour_to == 20);
  CHECK(r.min_amount == 1000);
  REQUIRE(r.multiplier);
  CHECK(r.multiplier->num == 2);
  CHECK(r.multiplier->den == 1);
  CHECK(r.bonus_points == 0);
  CHECK(r.cap_per_member == 500);
  CHECK(r.cap_total == 100000);
  CHECK(r.uses_per_member_max == 3);

  const earn_rule& ev = p->rules[1];
  CHECK(ev.trigger == rule_trigger::event);
  CHECK(ev.event_kind == "survey");
  CHECK_FALSE(ev.multiplier);
  CHECK(ev.bonus_points == 50);
  CHECK(ev.uses_per_member_max == 1);
  // An empty window always matches.
  CHECK(ev.window.from_us == 0);
  CHECK(ev.window.to_us == 0);
  CHECK(ev.window.weekdays == 0x7f);
  CHECK(ev.window.hour_from == 0);
  CHECK(ev.window.hour_to == 24);
  CHECK(p->rules[2].trigger == rule_trigger::enroll);
  CHECK(p->rules[2].bonus_points == 100);
  CHECK(p->rules[3].trigger == rule_trigger::first_purchase);
  CHECK(p->rules[3].brands == std::vector<std::uint32_t>{2});

  CHECK(p->lifecycle.pending_days == 14);
  CHECK(p->lifecycle.expiry_days == 730);
  CHECK(p->lifecycle.expiry_rounding == calendar_period::year);
  CHECK(p->lifecycle.inactivity_days == 1095);
  CHECK(p->lifecycle.negative_balance_max == 5000);
  CHECK(p->lifecycle.hold_ttl_default_s == 600);
  CHECK(p->lifecycle.hold_ttl_max_s == 3600);

  REQUIRE(p->rewards.size() == 2);
  CHECK(p->rewards[0].id == 7);
  CHECK(p->rewards[0].code == "coffee");
  CHECK(p->rewards[0].name == "Free coffee");
  CHECK(p->rewards[0].cost == 150);
  CHECK(p->rewards[0].stock == 40);
  CHECK(p->rewards[0].brand_id == 1);
  CHECK(p->rewards[1].stock == -1);  // omitted: unlimited
  CHECK(p->rewards[1].brand_id == 2);

  REQUIRE(p->find_rule(102) != nullptr);
  CHECK(p->find_rule(102)->code == "survey");
  CHECK(p->find_rule(999) == nullptr);
  REQUIRE(p->find_reward("voucher") != nullptr);
  CHECK(p->find_reward("voucher")->id == 8);
  CHECK(p->find_reward("nothing") == nullptr);
  REQUIRE(p->find_reward(std::uint32_t{7}) != nullptr);
  CHECK(p->find_reward(std::uint32_t{7})->code == "coffee");
  CHECK(p->find_reward(std::uint32_t{9}) == nullptr);
}

TEST_CASE("omitted sections and keys take the documented defaults", "[config]") {
  std::vector<config_error> errors;
  auto p = parse_program(valid_program, "t.toml", errors);
  INFO(all(errors));
  REQUIRE(p);
  CHECK(p->minor_units == 2);
  CHECK(p->utc_offset_minutes == 0);
  CHECK(p->tier_rules.metric == tier_metric::qualifying_points);
  CHECK(p->tier_rules.window_days == 0);
  CHECK(p->tier_rules.review == calendar_period::none);
  CHECK(p->tier_rules.grace_days == 0);
  CHECK(p->rules.empty());
  CHECK(p->rewards.empty());
  CHECK(p->lifecycle.pending_days == 0);
  CHECK(p->lifecycle.expiry_days == 0);
  CHECK(p->lifecycle.expiry_rounding == calendar_period::none);
  CHECK(p->lifecycle.inactivity_days == 0);
  CHECK(p->lifecycle.negative_balance_max == INT64_MAX);
  CHECK(p->lifecycle.hold_ttl_default_s == 900);
  CHECK(p->lifecycle.hold_ttl_max_s == 86'400);
}

TEST_CASE("offset date-times keep their own offset and local times use the program's", "[config]") {
  std::vector<config_error> errors;
  // An offset date-time ignores utc_offset_minutes; fractions are kept to the microsecond.
  auto p = parse_program(edited("from = 2026-11-27T00:00:00", "from = 2026-03-01T14:30:00.250+01:00"),
                         "t.toml", errors);
  INFO(all(errors));
  REQUIRE(p);
  CHECK(p->rules[0].window.from_us == 1'772'371'800'250'000ull);  // 2026-03-01T13:30:00.25Z

  // A negative program offset: local midnight 2024-02-29 at UTC-05:00 is 05:00Z.
  std::string text = edited("utc_offset_minutes = 60", "utc_offset_minutes = -300");
  auto at = text.find("from = 2026-11-27T00:00:00");
  text.replace(at, std::string("from = 2026-11-27T00:00:00").size(), "from = 2024-02-29");
  auto q = parse_program(text, "t.toml", errors);
  INFO(all(errors));
  REQUIRE(q);
  CHECK(q->utc_offset_minutes == -300);
  CHECK(q->rules[0].window.from_us == 1'709'182'800'000'000ull);
  // 2026-12-01 local at UTC-05:00 = 2026-12-01T05:00:00Z
  CHECK(q->rules[0].window.to_us == 1'796'079'600'000'000ull + 6 * 3'600'000'000ull);
}

namespace {

struct bad_case {
  const char* what;
  std::string text;
  const char* marker;   // text on the line the error must name
  const char* message;  // part of the message
};

std::vector<bad_case> bad_cases() {
  std::vector<bad_case> v;
  // unknown keys
  v.push_back({"unknown key in [program]", edited("point_rounding = \"floor\"", "point_rounding = \"floor\"\ntimezone = \"CET\""),
               "timezone", "unknown key 'timezone' in [program]"});
  v.push_back({"unknown key in [tier_policy]", edited("grace_days = 30", "grace_days = 30\ngrace = 1"),
               "grace = 1", "unknown key 'grace' in [tier_policy]"});
  v.push_back({"unknown key in [[rules]]", edited("uses_per_member_max = 3", "uses_per_member_max = 3\ncolour = \"red\""),
               "colour", "unknown key 'colour' in [[rules]]"});
  v.push_back({"unknown key in [lifecycle]", edited("hold_ttl_max_s = 3600", "hold_ttl_max_s = 3600\nexpiry = 3"),
               "expiry = 3", "unknown key 'expiry' in [lifecycle]"});
  v.push_back({"unknown key in [[rewards]]", edited("brand = \"globex\"", "brand = \"globex\"\nprice = 3"),
               "price = 3", "unknown key 'price' in [[rewards]]"});
  v.push_back({"unknown key in a rule multiplier", edited("multiplier = { num = 2, den = 1 }", "multiplier = { num = 2, den = 1, exp = 2 }"),
               "exp = 2", "unknown key 'exp' in [[rules]].multiplier"});
  // wrong types
  v.push_back({"string offset", edited("utc_offset_minutes = 60", "utc_offset_minutes = \"60\""),
               "utc_offset_minutes", "'utc_offset_minutes' in [program] must be an integer"});
  v.push_back({"float window", edited("window_days = 365", "window_days = 365.0"),
               "window_days", "'window_days' in [tier_policy] must be an integer"});
  v.push_back({"rule brands not an array", edited("brands = [\"acme\", \"globex\"]", "brands = \"acme\""),
               "brands = \"acme\"", "'brands' in [[rules]] must be an array of strings"});
  v.push_back({"channel not a string", edited("channels = [\"app\", \"store\"]", "channels = [\"app\",\n  7]"),
               "  7]", "each element of 'channels' in [[rules]] must be a string"});
  v.push_back({"from as a string", edited("from = 2026-11-27T00:00:00", "from = \"2026-11-27\""),
               "from = ", "'from' in [[rules]] must be a date-time"});
  v.push_back({"from as a local time", edited("from = 2026-11-27T00:00:00", "from = 08:00:00"),
               "from = ", "'from' in [[rules]] must be a date-time"});
  v.push_back({"bonus as a string", edited("bonus_points = 50", "bonus_points = \"50\""),
               "bonus_points = \"50\"", "'bonus_points' in [[rules]] must be an integer"});
  v.push_back({"multiplier as a number", edited("multiplier = { num = 2, den = 1 }", "multiplier = 2"),
               "multiplier = 2", "'multiplier' in [[rules]] must be a table { num = N, den = D }"});
  v.push_back({"cost as a float", edited("cost = 150", "cost = 1.5"),
               "cost = 1.5", "'cost' in [[rewards]] must be an integer"});
  v.push_back({"negative balance as a bool", edited("negative_balance_max = 5000", "negative_balance_max = true"),
               "negative_balance_max", "'negative_balance_max' in [lifecycle] must be an integer"});
  v.push_back({"lifecycle as a value", "lifecycle = 5\n" + std::string(valid_program),
               "lifecycle = 5", "'lifecycle' must be a table ([lifecycle])"});
  v.push_back({"rules as a value", "rules = 5\n" + std::string(valid_program),
               "rules = 5", "rules must be an array of tables ([[rules]])"});
  // enumerations and ranges
  v.push_back({"point rounding", edited("point_rounding = \"floor\"", "point_rounding = \"round\""),
               "point_rounding", "'point_rounding' in [program] must be one of \"floor\", got \"round\""});
  v.push_back({"metric", edited("metric = \"spend\"", "metric = \"visits\""),
               "metric", "'metric' in [tier_policy] must be one of \"qualifying_points\", \"spend\""});
  v.push_back({"review", edited("review = \"quarter\"", "review = \"week\""),
               "review", "'review' in [tier_policy] must be one of \"none\", \"month\", \"quarter\", \"year\""});
  v.push_back({"expiry rounding", edited("expiry_rounding = \"year\"", "expiry_rounding = \"day\""),
               "expiry_rounding", "'expiry_rounding' in [lifecycle] must be one of"});
  v.push_back({"utc offset range", edited("utc_offset_minutes = 60", "utc_offset_minutes = 900"),
               "utc_offset_minutes", "must be between -720 and 840, got 900"});
  v.push_back({"window range", edited("window_days = 365", "window_days = 4000"),
               "window_days", "'window_days' in [tier_policy] must be between 0 and 3660"});
  v.push_back({"grace range", edited("grace_days = 30", "grace_days = 400"),
               "grace_days", "'grace_days' in [tier_policy] must be between 0 and 366"});
  v.push_back({"grace without review", edited("review = \"quarter\"", "review = \"none\""),
               "grace_days", "'grace_days' in [tier_policy] has no effect when review = \"none\""});
  v.push_back({"pending range", edited("pending_days = 14", "pending_days = 3661"),
               "pending_days", "'pending_days' in [lifecycle] must be between 0 and 3660"});
  v.push_back({"expiry range", edited("expiry_days = 730", "expiry_days = 36601"),
               "expiry_days", "'expiry_days' in [lifecycle] must be between 0 and 36600"});
  v.push_back({"inactivity range", edited("inactivity_days = 1095", "inactivity_days = -1"),
               "inactivity_days", "'inactivity_days' in [lifecycle] must be between 0 and 36600"});
  v.push_back({"rounding without expiry", edited("expiry_days = 730", "expiry_days = 0"),
               "expiry_rounding", "'expiry_rounding' in [lifecycle] needs expiry_days > 0"});
  v.push_back({"negative balance cap", edited("negative_balance_max = 5000", "negative_balance_max = -1"),
               "negative_balance_max", "'negative_balance_max' in [lifecycle] must be between 0"});
  v.push_back({"hold default above max", edited("hold_ttl_default_s = 600", "hold_ttl_default_s = 7200"),
               "hold_ttl_default_s", "'hold_ttl_default_s' in [lifecycle] (7200) must not exceed hold_ttl_max_s (3600)"});
  v.push_back({"hold max below the default default", edited("hold_ttl_default_s = 600\nhold_ttl_max_s = 3600", "hold_ttl_max_s = 600"),
               "hold_ttl_max_s", "'hold_ttl_max_s' in [lifecycle] (600) is below the default hold_ttl_default_s (900)"});
  v.push_back({"hold max range", edited("hold_ttl_max_s = 3600", "hold_ttl_max_s = 2592001"),
               "hold_ttl_max_s", "'hold_ttl_max_s' in [lifecycle] must be between 1 and 2592000"});
  v.push_back({"rule id zero", edited("id = 101", "id = 0"),
               "id = 0", "'id' in [[rules]] must be between 1 and 2147483647"});
  v.push_back({"rule id above 2^31-1", edited("id = 101", "id = 2147483648"),
               "id = 2147483648", "'id' in [[rules]] must be between 1 and 2147483647"});
  v.push_back({"rule code", edited("code = \"double-coffee\"", "code = \"Double Coffee\""),
               "Double Coffee", "rule code 'Double Coffee' must be 1..64 of a-z 0-9 _ -"});
  v.push_back({"zero bonus", edited("bonus_points = 50", "bonus_points = 0"),
               "bonus_points = 0", "'bonus_points' in [[rules]] must be between 1"});
  v.push_back({"negative min amount", edited("min_amount = 1000", "min_amount = -1"),
               "min_amount", "'min_amount' in [[rules]] must be between 0"});
  v.push_back({"negative cap", edited("cap_total = 100000", "cap_total = -5"),
               "cap_total", "'cap_total' in [[rules]] must be between 0"});
  v.push_back({"rule multiplier below 1", edited("multiplier = { num = 2, den = 1 }", "multiplier = { num = 1, den = 2 }"),
               "multiplier = { num = 1, den = 2 }", "rule 'double-coffee': multiplier 1/2 must be at least 1 (num >= den)"});
  v.push_back({"empty sku", edited("skus = [\"SKU-1\"]", "skus = [\"\"]"),
               "skus", "'skus' in [[rules]]: \"\" must be 1..64 bytes long"});
  v.push_back({"long category", edited("categories = [\"coffee\", \"tea\"]", "categories = [\"" + std::string(65, 'c') + "\"]"),
               "categories", "must be 1..64 bytes long"});
  v.push_back({"empty brand list", edited("brands = [\"acme\", \"globex\"]", "brands = []"),
               "brands = []", "'brands' in [[rules]] must not be empty (omit it to match any)"});
  v.push_back({"reward cost zero", edited("cost = 150", "cost = 0"),
               "cost = 0", "'cost' in [[rewards]] must be between 1"});
  v.push_back({"reward stock negative", edited("stock = 40", "stock = -1"),
               "stock = -1", "'stock' in [[rewards]] must be between 0"});
  v.push_back({"reward without brand", edited("brand = \"globex\"\n", ""),
               "[[rewards]]\nid = 8", "missing key 'brand' in [[rewards]]"});
  // references to brands
  v.push_back({"rule naming an unknown brand", edited("brands = [\"acme\", \"globex\"]", "brands = [\"acme\", \"initech\"]"),
               "initech", "rule 'double-coffee' names unknown brand 'initech' (not in [[brands]])"});
  v.push_back({"reward naming an unknown brand", edited("brand = \"globex\"", "brand = \"initech\""),
               "initech", "reward 'voucher' names unknown brand 'initech' (not in [[brands]])"});
  // tiers
  v.push_back({"equal tier thresholds", edited("threshold = 5000", "threshold = 0 # gold"),
               "threshold = 0 # gold", "tier 'gold' threshold 0 equals tier 'member' threshold 0: the tiers overlap"});
  v.push_back({"decreasing tier thresholds", edited("threshold = 0\n", "threshold = 0\n") + "\n[[tiers]]\nname = \"silver\"\nthreshold = 1000\nmultiplier = { num = 5, den = 4 }\n",
               "threshold = 1000", "tier 'silver' threshold 1000 is below tier 'gold' threshold 5000"});
  v.push_back({"first tier above zero", edited("threshold = 0", "threshold = 10"),
               "threshold = 10", "the first tier must have threshold = 0"});
  v.push_back({"tier multiplier below 1", edited("multiplier = { num = 3, den = 2 }", "multiplier = { num = 2, den = 3 }"),
               "num = 2, den = 3", "tier 'gold' multiplier 2/3 must be at least 1 (num >= den)"});
  v.push_back({"duplicate tier name", edited("name = \"gold\"", "name = \"member\" # again"),
               "name = \"member\" # again", "duplicate tier name 'member'"});
  // trigger / event / effect combinations
  v.push_back({"unknown trigger", edited("trigger = \"purchase\"", "trigger = \"refund\""),
               "refund", "'trigger' in [[rules]] must be one of \"purchase\", \"enroll\", \"first_purchase\", \"event\", got \"refund\""});
  v.push_back({"missing trigger", edited("trigger = \"enroll\"\n", ""),
               "[[rules]]\nid = 103", "missing key 'trigger' in [[rules]]"});
  v.push_back({"event trigger without event", edited("event = \"survey\"\n", ""),
               "[[rules]]\nid = 102", "rule 'survey': trigger = \"event\" needs 'event'"});
  v.push_back({"event on a purchase rule", edited("uses_per_member_max = 3", "uses_per_member_max = 3\nevent = \"survey\""),
               "event = \"survey\"\n\n", "rule 'double-coffee': 'event' is only for trigger = \"event\" (trigger is \"purchase\")"});
  v.push_back({"bad event name", edited("event = \"survey\"", "event = \"Survey!\""),
               "Survey!", "event 'Survey!' must be 1..64 of a-z 0-9 _ -"});
  v.push_back({"multiplier on an enroll rule", edited("bonus_points = 100", "multiplier = { num = 2, den = 1 } # welcome"),
               "# welcome", "rule 'welcome': 'multiplier' is only for purchase rules; trigger \"enroll\" needs 'bonus_points'"});
  v.push_back({"multiplier on a first_purchase rule", edited("bonus_points = 250", "multiplier = { num = 2, den = 1 } # first"),
               "# first", "rule 'first': 'multiplier' is only for purchase rules; trigger \"first_purchase\""});
  v.push_back({"skus on an event rule", edited("bonus_points = 50", "bonus_points = 50\nskus = [\"A\"]"),
               "skus = [\"A\"]", "rule 'survey': 'skus' is only for purchase and first_purchase rules (trigger is \"event\")"});
  v.push_back({"categories on an enroll rule", edited("bonus_points = 100", "bonus_points = 100\ncategories = [\"A\"]"),
               "categories = [\"A\"]", "rule 'welcome': 'categories' is only for purchase and first_purchase rules"});
  v.push_back({"min_amount on an event rule", edited("bonus_points = 50", "bonus_points = 50\nmin_amount = 5"),
               "min_amount = 5", "rule 'survey': 'min_amount' is only for purchase and first_purchase rules"});
  v.push_back({"both effects", edited("cap_per_member = 500", "cap_per_member = 500\nbonus_points = 5"),
               "bonus_points = 5", "rule 'double-coffee' has both 'multiplier' and 'bonus_points'; give exactly one"});
  v.push_back({"neither effect", edited("bonus_points = 100\n", ""),
               "[[rules]]\nid = 103", "rule 'welcome' has neither 'multiplier' nor 'bonus_points'; give exactly one"});
  // time windows
  v.push_back({"to before from", edited("to = 2026-12-01", "to = 2026-11-26T23:59:59"),
               "to = ", "rule 'double-coffee': 'to' must be after 'from'"});
  v.push_back({"to equal to from", edited("to = 2026-12-01", "to = 2026-11-27"),
               "to = ", "rule 'double-coffee': 'to' must be after 'from'"});
  v.push_back({"before the epoch", edited("from = 2026-11-27T00:00:00", "from = 1970-01-01T00:30:00"),
               "from = ", "'from' in [[rules]] must not be before 1970-01-01T00:00:00Z"});
  v.push_back({"hours reversed", edited("hours = [8, 20]", "hours = [20, 8]"),
               "hours", "'hours' in [[rules]] must be [from, to] local hours with 0 <= from < to <= 24, got [20, 8]"});
  v.push_back({"hours empty range", edited("hours = [8, 20]", "hours = [8, 8]"),
               "hours", "got [8, 8]"});
  v.push_back({"hours past midnight", edited("hours = [8, 20]", "hours = [0, 25]"),
               "hours", "got [0, 25]"});
  v.push_back({"negative hour", edited("hours = [8, 20]", "hours = [-1, 5]"),
               "hours", "got [-1, 5]"});
  v.push_back({"one hour", edited("hours = [8, 20]", "hours = [8]"),
               "hours", "'hours' in [[rules]] must be [from, to] local hours"});
  v.push_back({"hours as strings", edited("hours = [8, 20]", "hours = [\"8\", \"20\"]"),
               "hours", "'hours' in [[rules]] must be [from, to] local hours"});
  v.push_back({"bad weekday", edited("weekdays = [\"mon\", \"fri\", \"sun\"]", "weekdays = [\"mon\", \"monday\"]"),
               "weekdays", "'weekdays' in [[rules]]: \"monday\" is not a weekday (mon tue wed thu fri sat sun)"});
  v.push_back({"capitalised weekday", edited("weekdays = [\"mon\", \"fri\", \"sun\"]", "weekdays = [\"Mon\"]"),
               "weekdays", "\"Mon\" is not a weekday"});
  v.push_back({"weekday twice", edited("weekdays = [\"mon\", \"fri\", \"sun\"]", "weekdays = [\"fri\", \"fri\"]"),
               "weekdays", "'weekdays' in [[rules]] lists \"fri\" twice"});
  // duplicates
  v.push_back({"duplicate rule id", edited("id = 102", "id = 101 # again"),
               "id = 101 # again", "duplicate rule id 101"});
  v.push_back({"duplicate rule code", edited("code = \"survey\"", "code = \"double-coffee\""),
               "code = \"double-coffee\"\ntrigger = \"event\"", "duplicate rule code 'double-coffee'"});
  v.push_back({"duplicate reward id", edited("id = 8", "id = 7 # again"),
               "id = 7 # again", "duplicate reward id 7"});
  v.push_back({"duplicate reward code", edited("code = \"voucher\"", "code = \"coffee\" # again"),
               "code = \"coffee\" # again", "duplicate reward code 'coffee'"});
  v.push_back({"duplicate brand id", edited("id = 1\n", "id = 2 # again\n"),
               "id = 2 # again", "duplicate brand id 2"});
  v.push_back({"duplicate brand code",
               full_program + "\n[[brands]]\nid = 3\ncode = \"acme\" # again\nearn_rate = { num = 1, den = 1 }\n",
               "code = \"acme\" # again", "duplicate brand code 'acme'"});
  return v;
}

} // namespace

TEST_CASE("each validation error is reported with the line of the offending key", "[config]") {
  for (const auto& c : bad_cases()) {
    INFO(c.what);
    std::vector<config_error> errors;
    std::optional<program> p;
    REQUIRE_NOTHROW(p = parse_program(c.text, "bad.toml", errors));
    INFO(all(errors));
    CHECK_FALSE(p);
    int line = line_of(c.text, c.marker);
    INFO("expected line " << line);
    CHECK(reported(errors, "bad.toml", line, c.message));
    // One mistake is one message: no cascades.
    CHECK(errors.size() == 1);
  }
}

TEST_CASE("several errors in one file are all reported, each with its line", "[config]") {
  std::string text = full_program;
  auto swap = [&](std::string_view from, std::string_view to) {
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
  };
  swap("utc_offset_minutes = 60", "utc_offset_minutes = 60\nzone = 1");
  swap("review = \"quarter\"", "review = \"weekly\"");
  swap("threshold = 5000", "threshold = 0 # gold");
  swap("brands = [\"acme\", \"globex\"]", "brands = [\"initech\"]");
  swap("hours = [8, 20]", "hours = [20, 8]");
  swap("weekdays = [\"mon\", \"fri\", \"sun\"]", "weekdays = [\"funday\"]");
  swap("to = 2026-12-01", "to = 2026-11-01");
  swap("event = \"survey\"\n", "");
  swap("id = 103", "id = 101 # again");
  swap("hold_ttl_default_s = 600", "hold_ttl_default_s = 0");
  swap("brand = \"globex\"", "brand = \"hooli\"");
  std::vector<config_error> errors;
  auto p = parse_program(text, "many.toml", errors);
  INFO(all(errors));
  REQUIRE_FALSE(p);
  CHECK(reported(errors, "many.toml", line_of(text, "zone = 1"), "unknown key 'zone' in [program]"));
  CHECK(reported(errors, "many.toml", line_of(text, "review ="), "'review' in [tier_policy] must be one of"));
  CHECK(reported(errors, "many.toml", line_of(text, "threshold = 0 # gold"), "the tiers overlap"));
  CHECK(reported(errors, "many.toml", line_of(text, "initech"), "names unknown brand 'initech'"));
  CHECK(reported(errors, "many.toml", line_of(text, "hours ="), "'hours' in [[rules]] must be [from, to]"));
  CHECK(reported(errors, "many.toml", line_of(text, "funday"), "\"funday\" is not a weekday"));
  CHECK(reported(errors, "many.toml", line_of(text, "to = 2026-11-01"), "'to' must be after 'from'"));
  CHECK(reported(errors, "many.toml", line_of(text, "[[rules]]\nid = 102"), "trigger = \"event\" needs 'event'"));
  CHECK(reported(errors, "many.toml", line_of(text, "id = 101 # again"), "duplicate rule id 101"));
  CHECK(reported(errors, "many.toml", line_of(text, "hold_ttl_default_s"), "'hold_ttl_default_s' in [lifecycle] must be between 1"));
  CHECK(reported(errors, "many.toml", line_of(text, "hooli"), "reward 'voucher' names unknown brand 'hooli'"));
  CHECK(errors.size() == 11);
}

TEST_CASE("an impossible calendar date is refused, not normalised", "[config]") {
  std::vector<config_error> errors;
  auto text = edited("to = 2026-12-01", "to = 2027-02-29");
  std::optional<program> p;
  REQUIRE_NOTHROW(p = parse_program(text, "date.toml", errors));
  CHECK_FALSE(p);
  REQUIRE_FALSE(errors.empty());
  CHECK(errors[0].message.find("date.toml") != std::string::npos);
}

TEST_CASE("a value that is not a table inside an array of tables is reported, the rest still checked", "[config]") {
  const std::string text = R"(rules = [7]
tiers = [3, { name = "m", threshold = 5, multiplier = { num = 1, den = 1 } }]
[program]
name = "x"
currency = "EUR"
[[brands]]
id = 1
code = "a"
earn_rate = { num = 1, den = 1 }
)";
  std::vector<config_error> errors;
  std::optional<program> p;
  REQUIRE_NOTHROW(p = parse_program(text, "s.toml", errors));
  INFO(all(errors));
  CHECK_FALSE(p);
  CHECK(reported(errors, "s.toml", 1, "each element of rules must be a table ([[rules]])"));
  CHECK(reported(errors, "s.toml", 2, "each element of tiers must be a table ([[tiers]])"));
  CHECK(reported(errors, "s.toml", 2, "the first tier must have threshold = 0"));
  CHECK(errors.size() == 3);
}

TEST_CASE("a brand earns in whole steps with earn_mode = steps, and other modes are refused", "[config]") {
  const std::string head = "[program]\nname = \"s\"\ncurrency = \"EUR\"\n[[tiers]]\nname = \"m\"\nthreshold = 0\n"
                           "multiplier = { num = 1, den = 1 }\n[[brands]]\nid = 1\ncode = \"fuel\"\n"
                           "earn_rate = { num = 5, den = 250 }\n";
  std::vector<config_error> errors;
  auto p = parse_program(head + "earn_mode = \"steps\"\n", "steps.toml", errors);
  REQUIRE(p);
  CHECK(p->brands[0].earn_in_steps);
  errors.clear();
  p = parse_program(head, "default.toml", errors);
  REQUIRE(p);
  CHECK_FALSE(p->brands[0].earn_in_steps);
  errors.clear();
  CHECK_FALSE(parse_program(head + "earn_mode = \"rounded\"\n", "bad.toml", errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message == "bad.toml:12: earn_mode must be \"proportional\" or \"steps\"");
}

TEST_CASE("partners and cost_per_point parse into the program, and every mistake is reported with its line",
          "[config][coalition]") {
  // valid_program's brand, with a cost per point.
  auto costed = [](const std::string& cost) {
    std::string t = valid_program;
    const std::string rate = "earn_rate = { num = 5, den = 250 }";
    t.replace(t.find(rate), rate.size(), rate + "\ncost_per_point = " + cost);
    return t;
  };
  const std::string sky = "\n[[partners]]\nid = 7\ncode = \"skyair\"\nname = \"Sky Air\"\nbrand = \"acme\"\n"
                          "earn_cost = { num = 3, den = 2 }\nburn_reimbursement = { num = 4, den = 5 }\n";
  const std::string hotel = "\n[[partners]]\nid = 3\ncode = \"hotel\"\nbrand = \"acme\"\n"
                            "earn_cost = { num = 0, den = 1 }\nburn_reimbursement = { num = 1, den = 1 }\n"
                            "status = \"suspended\"\n";
  std::vector<config_error> errors;
  auto p = parse_program(costed("{ num = 1, den = 2 }") + sky + hotel, "ok.toml", errors);
  INFO(all(errors));
  REQUIRE(p);
  CHECK(p->brands[0].cost_per_point.num == 1);
  CHECK(p->brands[0].cost_per_point.den == 2);
  REQUIRE(p->partners.size() == 2);
  CHECK(p->partners[0].code == "hotel");  // sorted by id
  CHECK(p->partners[0].status == partner_status::suspended);
  const partner_def* s = p->find_partner("skyair");
  REQUIRE(s != nullptr);
  CHECK(s == p->find_partner(7));
  CHECK(s->name == "Sky Air");
  CHECK(s->brand_id == 1);
  CHECK(s->earn_cost.num == 3);
  CHECK(s->burn_reimbursement.den == 5);
  CHECK(s->status == partner_status::active);
  // A brand without cost_per_point carries no money; no partners is fine.
  errors.clear();
  auto plain = parse_program(valid_program, "plain.toml", errors);
  REQUIRE(plain);
  CHECK(plain->brands[0].cost_per_point.num == 0);
  CHECK(plain->partners.empty());

  struct bad {
    std::string text, marker, message;
  };
  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = std::string(valid_program) + sky;
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  const std::vector<bad> cases{
    {with("id = 7", "id = 70000"), "id = 70000", "'id' in [[partners]] must be between 1 and 65535"},
    {with("brand = \"acme\"", "brand = \"initech\""), "initech", "partner 'skyair' names unknown brand 'initech'"},
    {with("code = \"skyair\"", "code = \"Sky-Air\""), "Sky-Air", "partner code 'Sky-Air' must be 1..64"},
    {with("earn_cost = { num = 3, den = 2 }\n", ""), "[[partners]]", "missing key 'earn_cost' in [[partners]]"},
    {with("burn_reimbursement = { num = 4, den = 5 }", "burn_reimbursement = 0.8"), "0.8",
     "'burn_reimbursement' in [[partners]] must be a table"},
    {with("name = \"Sky Air\"", "status = \"paused\""), "paused", "'status' in [[partners]] must be one of"},
    {with("name = \"Sky Air\"", "rate = 3"), "rate = 3", "unknown key 'rate' in [[partners]]"},
    {std::string(valid_program) + sky + "\n[[partners]]\nid = 7 # again\ncode = \"other\"\nbrand = \"acme\"\n"
       "earn_cost = { num = 1, den = 1 }\nburn_reimbursement = { num = 1, den = 1 }\n",
     "id = 7 # again", "duplicate partner id 7"},
    {costed("{ num = 1, den = 0 }"), "cost_per_point", "'den' in [[brands]].cost_per_point must be between 1"},
  };
  for (const auto& c : cases) {
    INFO(c.message);
    errors.clear();
    CHECK_FALSE(parse_program(c.text, "bad.toml", errors));
    INFO(all(errors));
    CHECK(errors.size() == 1);
    CHECK(reported(errors, "bad.toml", line_of(c.text, c.marker), c.message));
  }
}

TEST_CASE("API keys in the settings: hashed, scoped, and every mistake reported with its line", "[config][keys]") {
  char tmpl[] = "/tmp/loyalty-keys-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  auto load = [&](const std::string& body, std::vector<config_error>& errors) {
    const std::string path = dir + "/loyaltyd.toml";
    std::ofstream(path) << "[engine]\nprogram = \"p.toml\"\n" << body;
    return load_settings(path, errors);
  };
  const std::string good_hash = "01e9a3db233a93d756d5611e2eb0bbc50841b440d7bc6ca6375ac9db28490812";
  std::vector<config_error> errors;
  auto s = load("[[keys]]\nid = 1\nname = \"ops\"\nsha256 = \"" + good_hash + "\"\nscope = \"admin\"\n", errors);
  INFO(all(errors));
  REQUIRE(s);
  REQUIRE(s->keys.size() == 1);
  CHECK(s->keys[0].scope == key_scope::admin);
  CHECK(s->keys[0].sha256 == key_sha256("example-admin-key-change-me"));
  CHECK_FALSE(s->keys[0].dry_run);
  auto sandbox = load("[[keys]]\nid = 1\nname = \"try\"\nsha256 = \"" + good_hash +
                        "\"\nscope = \"brand:acme\"\ndry_run = true\n",
                      errors);
  REQUIRE(sandbox);
  CHECK(sandbox->keys[0].dry_run);
  struct bad {
    std::string body, says;
  };
  const std::vector<bad> cases{
    {"[[keys]]\nid = 1\nname = \"a\"\nsha256 = \"xyz\"\nscope = \"admin\"\n", "64 lowercase hex"},
    {"[[keys]]\nid = 1\nname = \"a\"\nsha256 = \"" + good_hash + "\"\nscope = \"root\"\n", "scope must be"},
    {"[[keys]]\nid = 1\nname = \"a\"\nsha256 = \"" + good_hash + "\"\nscope = \"brand:\"\n", "scope must be"},
    {"[[keys]]\nid = 1\nname = \"a\"\nsha256 = \"" + good_hash + "\"\nscope = \"read\"\n[[keys]]\nid = 1\n"
     "name = \"b\"\nsha256 = \"" + std::string(64, 'a') + "\"\nscope = \"read\"\n", "duplicate key id"},
    {"[[keys]]\nid = 1\nname = \"a\"\nsha256 = \"" + good_hash + "\"\nscope = \"read\"\ncolour = 1\n", "colour"},
    {"[[keys]]\nid = 1\nname = \"a\"\nscope = \"read\"\n", "sha256"},
    {"[[keys]]\nid = 1\nname = \"a\"\nsha256 = \"" + good_hash + "\"\nscope = \"read\"\ndry_run = \"yes\"\n",
     "'dry_run' in [[keys]] must be true or false"},
  };
  for (const auto& c : cases) {
    std::vector<config_error> errs;
    INFO(c.body);
    CHECK_FALSE(load(c.body, errs));
    REQUIRE_FALSE(errs.empty());
    INFO(all(errs));
    CHECK(all(errs).find(c.says) != std::string::npos);
    CHECK(all(errs).find("loyaltyd.toml:") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("actor_scheduler is sharing unless set to stealing; anything else is a line-numbered error", "[config]") {
  test::temp_dir dir("config-scheduler");
  auto settings_at = [&](const std::string& body) {
    auto path = (dir.path / "loyaltyd.toml").string();
    std::ofstream(path) << "[engine]\nprogram = \"p.toml\"\n" << body;
    return path;
  };
  std::vector<config_error> errors;
  auto plain = load_settings(settings_at(""), errors);
  REQUIRE(plain);
  CHECK(plain->actor_scheduler == actor_scheduling::sharing);
  auto stealing = load_settings(settings_at("actor_scheduler = \"stealing\"\n"), errors);
  REQUIRE(stealing);
  CHECK(stealing->actor_scheduler == actor_scheduling::stealing);
  auto path = settings_at("actor_scheduler = \"fifo\"\n");
  CHECK_FALSE(load_settings(path, errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message.find(path + ":3:") == 0);
  CHECK(errors[0].message.find("\"sharing\" or \"stealing\"") != std::string::npos);
}

TEST_CASE("the connection limits have their defaults and are range-checked with line numbers", "[config]") {
  test::temp_dir dir("config-conn");
  auto settings_at = [&](const std::string& body) {
    auto path = (dir.path / "loyaltyd.toml").string();
    std::ofstream(path) << "[engine]\nprogram = \"p.toml\"\n" << body;
    return path;
  };
  std::vector<config_error> errors;
  auto none = load_settings(settings_at(""), errors);
  INFO(all(errors));
  REQUIRE(none);
  CHECK(none->idle_timeout_s == limits::idle_timeout_s_default);
  CHECK(none->frame_read_timeout_ms == limits::frame_read_timeout_ms_default);
  CHECK(none->write_stall_timeout_ms == limits::write_stall_timeout_ms_default);
  CHECK(none->connection_output_bytes_max == limits::connection_output_bytes_max_default);
  auto set = load_settings(settings_at("idle_timeout_s = 0\nframe_read_timeout_ms = 250\n"
                                       "write_stall_timeout_ms = 500\nconnection_output_bytes_max = 65536\n"),
                           errors);
  INFO(all(errors));
  REQUIRE(set);
  CHECK(set->idle_timeout_s == 0);
  CHECK(set->frame_read_timeout_ms == 250);
  CHECK(set->write_stall_timeout_ms == 500);
  CHECK(set->connection_output_bytes_max == 65536);

  auto path = settings_at("frame_read_timeout_ms = 0\nconnection_output_bytes_max = 1024\n");
  CHECK_FALSE(load_settings(path, errors));
  const auto text = all(errors);
  INFO(text);
  CHECK(errors.size() == 2);
  CHECK(text.find(path + ":3: 'frame_read_timeout_ms' in [engine] must be between 1 and 3600000, got 0") !=
        std::string::npos);
  CHECK(text.find(path + ":4: 'connection_output_bytes_max' in [engine] must be between 65536 and 1073741824, got 1024") !=
        std::string::npos);
}

TEST_CASE("[cluster] names this node among its peers; without it the engine is a single node; mistakes are "
          "line-numbered errors",
          "[config]") {
  test::temp_dir dir("config-cluster");
  auto settings_at = [&](const std::string& body) {
    auto path = (dir.path / "loyaltyd.toml").string();
    std::ofstream(path) << "[engine]\nprogram = \"p.toml\"\ndata_dir = \"d\"\n" << body;
    return path;
  };
  const std::string peers = "[[cluster.peers]]\nid = 1\nraft = \"127.0.0.1:7511\"\nclient = \"127.0.0.1:7411\"\n"
                            "[[cluster.peers]]\nid = 2\nraft = \"127.0.0.1:7512\"\nclient = \"127.0.0.1:7412\"\n"
                            "[[cluster.peers]]\nid = 3\nraft = \"127.0.0.1:7513\"\nclient = \"127.0.0.1:7413\"\n";
  std::vector<config_error> errors;
  auto single = load_settings(settings_at(""), errors);
  INFO(all(errors));
  REQUIRE(single);
  CHECK_FALSE(single->cluster.enabled());
  auto three = load_settings(settings_at("[cluster]\nnode_id = 2\nelection_timeout_ms = 600\n" + peers), errors);
  INFO(all(errors));
  REQUIRE(three);
  CHECK(three->cluster.enabled());
  CHECK(three->cluster.node_id == 2);
  CHECK(three->cluster.election_timeout_ms == 600);
  CHECK(three->cluster.heartbeat_ms == 100);
  CHECK(three->cluster.snapshot_entries == 65536);
  CHECK(three->cluster.snapshot_trailing == 8192);
  CHECK(three->cluster.pipeline_batches == 1);
  CHECK(three->cluster.install_snapshot_timeout_ms == 0);
  CHECK(three->cluster.dir == (dir.path / "d" / "raft").string());
  REQUIRE(three->cluster.peers.size() == 3);
  CHECK(three->cluster.peers[2].raft == "127.0.0.1:7513");
  CHECK(three->cluster.peers[2].client == "127.0.0.1:7413");

  auto refused = [&](const std::string& body, const std::string& says) {
    errors.clear();
    INFO(body);
    CHECK_FALSE(load_settings(settings_at(body), errors));
    INFO(all(errors));
    CHECK(all(errors).find(says) != std::string::npos);
  };
  refused("[cluster]\nnode_id = 4\n" + peers, "node_id 4 is not one of [[cluster.peers]]");
  refused("[cluster]\nnode_id = 1\nheartbeat_ms = 600\n" + peers, "heartbeat_ms (600) must be at most half");
  refused("[cluster]\nnode_id = 1\n" + peers + "[[cluster.peers]]\nid = 3\nraft = \"h:1\"\nclient = \"h:2\"\n",
          "duplicate node id 3");
  refused("[cluster]\nnode_id = 1\n" + peers + "[[cluster.peers]]\nid = 4\nraft = \"nohost\"\nclient = \"h:2\"\n",
          "raft must be host:port, not \"nohost\"");
  refused("[cluster]\nnode_id = 1\n" + peers + "[[cluster.peers]]\nid = 4\nraft = \"127.0.0.1:7512\"\nclient = \"h:2\"\n",
          "the address 127.0.0.1:7512 is given twice");
  refused("[cluster]\nnode_id = 1\nleader = true\n" + peers, "leader");
  refused("[cluster]\nnode_id = 1\nsnapshot_entries = 4\n" + peers, "snapshot_entries");
  refused("[cluster]\nnode_id = 1\npipeline_batches = 0\n" + peers, "pipeline_batches");
  refused("[cluster]\nnode_id = 1\npipeline_batches = 65\n" + peers, "pipeline_batches");
  refused("[cluster]\nnode_id = 1\ninstall_snapshot_timeout_ms = 50\n" + peers,
          "install_snapshot_timeout_ms must be 0 (automatic) or at least 100");
  refused("[cluster]\nnode_id = 1\ninstall_snapshot_timeout_ms = -1\n" + peers, "install_snapshot_timeout_ms");
  auto compacting = load_settings(
    settings_at("[cluster]\nnode_id = 1\nsnapshot_entries = 32\nsnapshot_trailing = 0\npipeline_batches = 4\n"
                "install_snapshot_timeout_ms = 5000\n" +
                peers),
    errors);
  INFO(all(errors));
  REQUIRE(compacting);
  CHECK(compacting->cluster.pipeline_batches == 4);
  CHECK(compacting->cluster.snapshot_entries == 32);
  CHECK(compacting->cluster.snapshot_trailing == 0);
  CHECK(compacting->cluster.install_snapshot_timeout_ms == 5000);
  CHECK_FALSE(compacting->cluster.join);
  auto joining = load_settings(settings_at("[cluster]\nnode_id = 1\njoin = true\n" + peers), errors);
  REQUIRE(joining);
  CHECK(joining->cluster.join);
  refused("[cluster]\nnode_id = 1\njoin = 1\n" + peers, "'join' in [cluster] must be true or false");
  refused("[cluster]\nnode_id = 1\n", "peers");
}

TEST_CASE("[limits] bounds per hour and per day are read, and bad ones are line-numbered errors", "[config][limits]") {
  std::vector<config_error> errors;
  auto p = parse_program(std::string(valid_program) +
                           "\n[limits]\nflag_after_breaches = 3\n[limits.per_hour]\nearns = 5\n"
                           "[limits.per_day]\npoints_redeemed = 900\naliases_linked = 2\n",
                         "t.toml", errors);
  INFO(all(errors));
  REQUIRE(p);
  CHECK(p->limits.enabled);
  CHECK(p->limits.flag_after_breaches == 3);
  CHECK(p->limits.per_hour.earns == 5);
  CHECK(p->limits.per_hour.points_earned == 0);
  CHECK(p->limits.per_day.points_redeemed == 900);
  CHECK(p->limits.per_day.at(5) == 2);

  errors.clear();
  p = parse_program(std::string(valid_program) + "\n[limits]\nflag_after_breaches = 3\n", "t.toml", errors);
  REQUIRE(p);
  CHECK_FALSE(p->limits.enabled);  // no bound: nothing is counted or checked

  errors.clear();
  p = parse_program(std::string(valid_program) +
                      "\n[limits]\nper_week = { earns = 1 }\n[limits.per_hour]\nearns = -1\nrefunds = 2\n",
                    "t.toml", errors);
  REQUIRE_FALSE(p);
  const auto text = all(errors);
  INFO(text);
  CHECK(text.find("unknown key 'per_week' in [limits]") != std::string::npos);
  CHECK(text.find("unknown key 'refunds' in [limits.per_hour]") != std::string::npos);
  CHECK(text.find("earns") != std::string::npos);
  CHECK(errors.size() == 3);
}
