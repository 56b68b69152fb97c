// Issue 19 item 6 as plain code: how the purchase rules of one earn combine
// (sum, or the best single rule with priority and file order breaking ties),
// how caps and per-period budgets take a rule out of the running, what each
// rule's verdict says, the program-wide period counters under many threads,
// and the settings that turn it on.
#include "actors/member.hpp"
#include "actors/policy.hpp"
#include "config/program.hpp"
#include "fuelmart_program.hpp"

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

using namespace loyalty;
using namespace loyalty::actors;

namespace {

program two_brand_program(rule_resolution mode) {
  program p;
  p.name = "test";
  p.brands.push_back({1, "fuelmart", "FuelMart", {1, 100}});  // 1 point per 1.00
  p.tiers.push_back({"member", 0, {1, 1}});
  p.resolution = mode;
  return p;
}

earn_rule weekend_double(std::uint32_t id = 1) {
  earn_rule r;
  r.id = id;
  r.code = "double-weekend";
  r.multiplier = rational{2, 1};
  return r;
}

earn_rule fuel_bonus(std::uint32_t id = 2, std::int64_t points = 50) {
  earn_rule r;
  r.id = id;
  r.code = "fuel-bonus";
  r.categories = {"fuel"};
  r.bonus_points = points;
  return r;
}

basket fuel_and_snacks(std::int64_t fuel, std::int64_t snacks) {
  basket b;
  b.brand_id = 1;
  b.occurred_at_us = 1'700'000'000'000'000ull;
  b.lines.push_back({"F-95", "fuel", 1, fuel});
  b.lines.push_back({"S-1", "snacks", 1, snacks});
  b.amount = fuel + snacks;
  return b;
}

const rule_verdict& verdict(const earn_decision& d, std::uint32_t rule_id) {
  for (const auto& v : d.verdicts)
    if (v.rule_id == rule_id)
      return v;
  FAIL("no verdict for rule " << rule_id);
  return d.verdicts.front();
}

std::vector<std::uint32_t> rule_lines(const earn_decision& d) {
  std::vector<std::uint32_t> ids;
  for (const auto& l : d.lines)
    if (l.kind == line_kind::rule)
      ids.push_back(l.rule_id);
  return ids;
}

} // namespace

TEST_CASE("under sum every matching rule counts, as before, and verdicts come only when asked", "[rules]") {
  auto p = two_brand_program(rule_resolution::sum);
  p.rules = {weekend_double(), fuel_bonus()};
  ledger::member_book book;
  auto d = evaluate_earn(p, book, 0, fuel_and_snacks(6000, 2000), {});
  REQUIRE(d.code == errc::ok);
  CHECK(d.points == 80 + 80 + 50);
  CHECK(rule_lines(d) == std::vector<std::uint32_t>{1, 2});
  CHECK(d.verdicts.empty());
  CHECK(d.verdicts.capacity() == 0);  // nothing allocated for them

  d = evaluate_earn(p, book, 0, fuel_and_snacks(6000, 2000), {}, true);
  REQUIRE(d.verdicts.size() == 2);
  CHECK(verdict(d, 1).why == rule_why::counted);
  CHECK(verdict(d, 1).points == 80);
  CHECK(verdict(d, 2).why == rule_why::counted);
  CHECK(verdict(d, 2).points == 50);
}

TEST_CASE("under best only the rule giving the most points counts and the others say who outscored them",
          "[rules]") {
  auto p = two_brand_program(rule_resolution::best);
  p.rules = {weekend_double(), fuel_bonus()};
  ledger::member_book book;

  auto big = evaluate_earn(p, book, 0, fuel_and_snacks(6000, 2000), {});
  REQUIRE(big.code == errc::ok);
  CHECK(rule_lines(big) == std::vector<std::uint32_t>{1});
  CHECK(big.points == 80 + 80);
  CHECK(verdict(big, 1).why == rule_why::best);
  CHECK(verdict(big, 2).why == rule_why::outscored);
  CHECK(verdict(big, 2).by == 1);
  CHECK(verdict(big, 2).points == 50);

  auto small = evaluate_earn(p, book, 0, fuel_and_snacks(3000, 0), {});
  CHECK(rule_lines(small) == std::vector<std::uint32_t>{2});
  CHECK(small.points == 30 + 50);
  CHECK(verdict(small, 1).why == rule_why::outscored);
  CHECK(verdict(small, 1).by == 2);
  CHECK(verdict(small, 2).why == rule_why::best);

  basket no_fuel = fuel_and_snacks(0, 3000);
  no_fuel.lines.erase(no_fuel.lines.begin());
  auto only_one = evaluate_earn(p, book, 0, no_fuel, {});
  CHECK(rule_lines(only_one) == std::vector<std::uint32_t>{1});
  CHECK(verdict(only_one, 2).why == rule_why::not_matched);
}

TEST_CASE("a tie of points goes to the higher priority, then to the rule earlier in the file", "[rules]") {
  auto p = two_brand_program(rule_resolution::best);
  p.rules = {fuel_bonus(2, 80), weekend_double(1)};  // both give 80 on 80.00 of fuel
  ledger::member_book book;
  CHECK(rule_lines(evaluate_earn(p, book, 0, fuel_and_snacks(8000, 0), {})) == std::vector<std::uint32_t>{2});
  p.rules[1].priority = 1;
  auto d = evaluate_earn(p, book, 0, fuel_and_snacks(8000, 0), {});
  CHECK(rule_lines(d) == std::vector<std::uint32_t>{1});
  CHECK(verdict(d, 2).why == rule_why::outscored);
  p.rules[0].priority = 1;  // equal again: the file decides
  CHECK(rule_lines(evaluate_earn(p, book, 0, fuel_and_snacks(8000, 0), {})) == std::vector<std::uint32_t>{2});
  p.rules[0].priority = -3;
  p.rules[1].priority = -2;
  CHECK(rule_lines(evaluate_earn(p, book, 0, fuel_and_snacks(8000, 0), {})) == std::vector<std::uint32_t>{1});
}

TEST_CASE("a rule whose cap or budget is used up does not compete, so the next best wins", "[rules]") {
  auto p = two_brand_program(rule_resolution::best);
  p.rules = {weekend_double(), fuel_bonus()};
  p.rules[0].budget_per_day = 10'000;
  p.rules[0].budget_per_month = 100'000;
  ledger::member_book book;
  const auto b = fuel_and_snacks(6000, 2000);

  std::vector<rule_total> totals = {{1, 0, 9'970, 9'970}};  // 30 left today
  auto d = evaluate_earn(p, book, 0, b, totals);
  CHECK(rule_lines(d) == std::vector<std::uint32_t>{2});  // 30 < 50
  CHECK(verdict(d, 1).why == rule_why::outscored);
  CHECK(verdict(d, 1).points == 30);

  totals = {{1, 0, 10'000, 10'000}};
  d = evaluate_earn(p, book, 0, b, totals);
  CHECK(rule_lines(d) == std::vector<std::uint32_t>{2});
  CHECK(verdict(d, 1).why == rule_why::budget_day);
  CHECK(verdict(d, 1).points == 0);

  totals = {{1, 0, 0, 100'000}};  // a new day, but the month's budget is gone
  CHECK(verdict(evaluate_earn(p, book, 0, b, totals), 1).why == rule_why::budget_month);

  p.rules[0].cap_total = 500;
  totals = {{1, 500, 0, 0}};
  CHECK(verdict(evaluate_earn(p, book, 0, b, totals), 1).why == rule_why::budget_total);

  p.rules[1].cap_per_member = 50;
  book.counters = {{2, 1, 50}};
  d = evaluate_earn(p, book, 0, b, totals);
  CHECK(verdict(d, 2).why == rule_why::member_cap);
  CHECK(rule_lines(d).empty());
  CHECK(d.points == 80);  // base only

  p.rules[1].cap_per_member = 0;
  p.rules[1].uses_per_member_max = 1;
  CHECK(verdict(evaluate_earn(p, book, 0, b, totals), 2).why == rule_why::uses_max);
}

TEST_CASE("period budgets limit a rule's points under sum too", "[rules]") {
  auto p = two_brand_program(rule_resolution::sum);
  p.rules = {weekend_double()};
  p.rules[0].budget_per_day = 100;
  ledger::member_book book;
  std::vector<rule_total> totals = {{1, 0, 70, 70}};
  auto d = evaluate_earn(p, book, 0, fuel_and_snacks(6000, 2000), totals, true);
  CHECK(d.points == 80 + 30);
  CHECK(verdict(d, 1).why == rule_why::counted);
  totals = {{1, 0, 100, 100}};
  d = evaluate_earn(p, book, 0, fuel_and_snacks(6000, 2000), totals, true);
  CHECK(d.points == 80);
  CHECK(verdict(d, 1).why == rule_why::budget_day);
}

TEST_CASE("the runner-up is the best ranked rule that was outscored", "[rules]") {
  std::vector<rule_verdict> v = {
    {1, rule_why::best, 0, 0, 100, 0},
    {2, rule_why::outscored, 1, 0, 40, 0},
    {3, rule_why::outscored, 1, 5, 40, 0},
    {4, rule_why::not_matched, 0, 9, 0, 0},
  };
  REQUIRE(runner_up(v) != nullptr);
  CHECK(runner_up(v)->rule_id == 3);
  v[2].why = rule_why::budget_day;
  CHECK(runner_up(v)->rule_id == 2);
  v[1].why = rule_why::budget_total;
  CHECK(runner_up(v) == nullptr);
}

TEST_CASE("every why has its own name on the wire", "[rules]") {
  const rule_why all[] = {rule_why::counted,      rule_why::best,       rule_why::outscored, rule_why::not_matched,
                          rule_why::no_points,    rule_why::uses_max,   rule_why::member_cap, rule_why::budget_total,
                          rule_why::budget_day,   rule_why::budget_month};
  std::vector<std::string_view> names;
  for (auto w : all) {
    CHECK(why_name(w) != "?");
    names.push_back(why_name(w));
  }
  std::sort(names.begin(), names.end());
  CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
}

TEST_CASE("period counters give exactly the budget to many threads at once and start again the next day",
          "[rules][counters]") {
  auto p = two_brand_program(rule_resolution::sum);
  p.rules = {weekend_double()};
  p.rules[0].budget_per_day = 1'000;
  p.rules[0].budget_per_month = 1'500;
  program_counters counters;
  counters.load(p, {});
  std::atomic<std::int64_t> given{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        rule_why why = rule_why::counted;
        given += counters.reserve_periods(p, 0, 20'000, 657, 7, why);
      }
    });
  for (auto& t : threads)
    t.join();
  CHECK(given.load() == 1'000);
  rule_total t{1};
  counters.read_periods(p, 0, 20'000, 657, t);
  CHECK(t.day_points == 1'000);
  counters.read_periods(p, 0, 20'001, 657, t);
  CHECK(t.day_points == 0);  // the next day
  CHECK(t.month_points == 1'000);
  counters.read_periods(p, 0, 19'999, 657, t);
  CHECK(t.day_points == INT64_MAX);  // a closed day stays closed

  rule_why why = rule_why::counted;
  CHECK(counters.reserve_periods(p, 0, 20'001, 657, 800, why) == 500);  // the month's rest
  CHECK(counters.reserve_periods(p, 0, 20'001, 657, 1, why) == 0);
  CHECK(why == rule_why::budget_month);
  counters.give_back(p, 1, ledger::rule_budget_period::month, 657, 10);
  counters.give_back(p, 1, ledger::rule_budget_period::day, 20'000, 10);  // a past day: nothing
  counters.read_periods(p, 0, 20'001, 657, t);
  CHECK(t.month_points == 1'490);
  CHECK(t.day_points == 500);
}

TEST_CASE("committed period counters load as the latest day and month of each rule", "[rules][counters]") {
  auto p = two_brand_program(rule_resolution::sum);
  p.rules = {weekend_double()};
  p.rules[0].budget_per_day = 1'000;
  program_counters counters;
  counters.load(p, {{ledger::counter_id(ledger::counter_kind::rule_day_points, 1, 20'000), 300},
                    {ledger::counter_id(ledger::counter_kind::rule_day_points, 1, 20'002), 40},
                    {ledger::counter_id(ledger::counter_kind::rule_day_points, 1, 20'001), 900}});
  rule_total t{1};
  counters.read_periods(p, 0, 20'002, 0, t);
  CHECK(t.day_points == 40);
}

TEST_CASE("rule_resolution, priority and the period budgets are read from the program file", "[rules][config]") {
  std::vector<config_error> errors;
  // The text ends inside the fuel bonus rule: a key appended lands there.
  auto p = parse_program(test::fuelmart("best") + "budget_per_month = 200000\n", "t.toml", errors);
  for (const auto& e : errors)
    UNSCOPED_INFO(e.message);
  REQUIRE(p);
  CHECK(p->resolution == rule_resolution::best);
  CHECK(p->rules[0].priority == 0);
  CHECK(p->rules[0].budget_per_day == 10'000);
  CHECK(p->rules[0].budget_per_month == 0);
  CHECK(p->rules[1].priority == 5);
  CHECK(p->rules[1].budget_per_day == 0);
  CHECK(p->rules[1].budget_per_month == 200'000);
  CHECK(p->rules[1].has_period_budget());

  errors.clear();
  auto plain = parse_program(test::fuelmart(""), "t.toml", errors);
  REQUIRE(plain);
  CHECK(plain->resolution == rule_resolution::sum);

  errors.clear();
  CHECK_FALSE(parse_program(test::fuelmart("first"), "t.toml", errors));
  REQUIRE_FALSE(errors.empty());
  CHECK(errors.front().message.find("rule_resolution") != std::string::npos);
  for (const std::string bad : {"budget_per_day = -1", "budget_per_month = \"lots\""}) {
    errors.clear();
    CHECK_FALSE(parse_program(test::fuelmart("best") + bad + "\n", "t.toml", errors));
    REQUIRE_FALSE(errors.empty());
    CHECK(errors.front().message.find(bad.substr(0, bad.find(' '))) != std::string::npos);
  }
  std::string too_high = test::fuelmart("best");
  too_high.replace(too_high.find("priority = 5"), 12, "priority = 2000000");
  errors.clear();
  CHECK_FALSE(parse_program(too_high, "t.toml", errors));
  REQUIRE_FALSE(errors.empty());
  CHECK(errors.front().message.find("priority") != std::string::npos);
}
