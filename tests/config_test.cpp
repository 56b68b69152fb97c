#include "actors/policy.hpp"
#include "config/program.hpp"

#include <catch2/catch.hpp>

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

TEST_CASE("points are floored once: 2.99 at 5 points per 2.50 gives 5, 2.49 gives 4", "[config][policy]") {
  std::vector<config_error> errors;
  auto p = parse_program(valid_program, "t.toml", errors);
  REQUIRE(p);
  auto r = actors::earn_points(*p, p->brands[0], 0, 300);
  CHECK(r.code == errc::ok);
  CHECK(r.points == 6);  // 300 * 5 / 250 = 6 exactly: the rate is proportional, per cent
  CHECK(actors::earn_points(*p, p->brands[0], 0, 299).points == 5);
  CHECK(actors::earn_points(*p, p->brands[0], 0, 249).points == 4);
}

TEST_CASE("the tier multiplier is applied before the single floor", "[config][policy]") {
  std::vector<config_error> errors;
  auto p = parse_program(valid_program, "t.toml", errors);
  REQUIRE(p);
  // 150 cents * 5/250 * 3/2 = 4.5 -> 4 (one floor, not floor(3) * 1.5 = 4.5 -> 4 by luck)
  CHECK(actors::earn_points(*p, p->brands[0], 1, 150).points == 4);
  // 250 * 5/250 * 3/2 = 7.5 -> 7
  CHECK(actors::earn_points(*p, p->brands[0], 1, 250).points == 7);
}

TEST_CASE("an earn whose points would not fit in 64 bits is amount_overflow", "[config][policy]") {
  std::vector<config_error> errors;
  auto p = parse_program(valid_program, "t.toml", errors);
  REQUIRE(p);
  brand_def rich = p->brands[0];
  rich.earn_rate = {1'000'000'000, 1};
  auto r = actors::earn_points(*p, rich, 0, INT64_MAX);
  CHECK(r.code == errc::amount_overflow);
  CHECK(actors::checked_add(INT64_MAX, 1).code == errc::amount_overflow);
  CHECK(actors::earn_points(*p, p->brands[0], 0, 0).code == errc::invalid_amount);
  CHECK(actors::earn_points(*p, p->brands[0], 0, -5).code == errc::invalid_amount);
}
