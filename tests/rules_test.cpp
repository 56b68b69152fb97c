// Issue 19 item 6 over real TCP: promotions that compete for a basket (the
// best single rule wins, and the quote says which and why), a promotion's
// daily budget that runs out and pays again the next program-local day,
// budgets that stay exact while many tills earn at once, survive a restart,
// and come back when a purchase is refunded. An in-process engine (real
// LMDB, CAF actors, Asio) with a manual clock the tests move.
#include "command.hpp"
#include "engine_rig.hpp"
#include "fuelmart_program.hpp"
#include "one_brand_program.hpp"

#include <atomic>
#include <thread>

using namespace loyalty;
using namespace loyalty::io;
using test::fuelmart;
using test::fuelmart_head;
using test::fuelmart_rules;

namespace {

constexpr std::uint64_t hour = 3'600'000'000ull;
constexpr std::uint64_t day = 24 * hour;
// 2026-11-28T09:00:00Z: a Saturday, 10:00 at the stations (UTC+01:00).
constexpr std::uint64_t saturday_10 = 1'795'856'400'000'000ull;

// The one-brand program ("shop"); every purchase gets a flash bonus of
// `bonus` points, at most `budget` points a day over all members (sum: the
// program's default).
std::string flash_program(std::int64_t bonus, std::int64_t budget) {
  return std::string(test::one_brand_program) + R"(
[[rules]]
id = 7
code = "flash"
trigger = "purchase"
bonus_points = )" + std::to_string(bonus) +
         "\nbudget_per_day = " + std::to_string(budget) + "\n";
}

struct rig : test::engine_rig {
  // The rig's brand key is for "shop": in the FuelMart programs it is FuelMart's.
  rig(const std::string& what, const std::string& toml, std::uint64_t start = saturday_10)
    : test::engine_rig(what, toml, start, [toml](engine_options& o) {
        if (toml.find("code = \"fuelmart\"") == std::string::npos)
          return;
        for (auto& k : o.settings.keys)
          if (k.scope == key_scope::brand)
            k.scope_code = "fuelmart";
      }) {}

  void enroll(std::uint64_t m, const std::string& brand) {
    auto r = c->enroll(m, brand);
    INFO(r.message);
    REQUIRE(r.ok());
  }
};

item fuel(std::int64_t amount) { return item{"F-95", "fuel", 1, amount}; }
item snacks(std::int64_t amount) { return item{"S-1", "snacks", 1, amount}; }
item groceries(std::int64_t amount) { return item{"G-1", "groceries", 1, amount}; }

std::int64_t total(const std::vector<item>& items) {
  std::int64_t sum = 0;
  for (const auto& i : items)
    sum += i.amount;
  return sum;
}

response quote(rig& g, std::uint64_t m, std::vector<item> items, const std::string& brand = "fuelmart") {
  const auto t = total(items);
  auto r = g.c->quote(m, brand, t, "EUR", g.clock.now_us(), std::move(items));
  INFO(r.message);
  REQUIRE(r.ok());
  return r;
}

response earn(rig& g, const std::string& txn, std::uint64_t m, std::vector<item> items,
              const std::string& brand = "fuelmart") {
  const auto t = total(items);
  auto r = g.c->earn(txn, m, brand, t, "EUR", g.clock.now_us(), std::move(items));
  INFO(r.message);
  REQUIRE(r.ok());
  return r;
}

const rule_outcome& outcome_of(const response& r, const std::string& rule) {
  for (const auto& x : r.rules)
    if (x.rule == rule)
      return x;
  FAIL("no outcome for rule " << rule);
  return r.rules.front();
}

// Points of `rule`'s line in an answer (0: no line).
std::int64_t rule_points(const response& r, const std::string& rule) {
  for (const auto& l : r.lines)
    if (l.kind == "rule" && l.rule == rule)
      return l.points;
  return 0;
}

std::size_t rule_line_count(const response& r) {
  std::size_t n = 0;
  for (const auto& l : r.lines)
    n += l.kind == "rule";
  return n;
}

std::string loyaltyctl(const test::engine_rig& g, const std::string& args, int& status) {
  return test::run_command(std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(g.eng->port()) + " --key " +
                             test::admin_key + " " + args + " 2>&1",
                           status);
}

} // namespace

TEST_CASE("the double-points weekend and the fuel bonus both match: the bigger one wins and the quote says which "
          "and why",
          "[rules]") {
  rig g("rules-best", fuelmart("best"));
  g.enroll(1, "fuelmart");

  // 60.00 of fuel and 20.00 of snacks: the weekend doubles 80.00 (80), fuel gives 50.
  auto q = quote(g, 1, {fuel(6000), snacks(2000)});
  CHECK(q.points == 160);
  CHECK(rule_line_count(q) == 1);
  CHECK(rule_points(q, "double-weekend") == 80);
  REQUIRE(q.rules.size() == 2);
  CHECK(outcome_of(q, "double-weekend").won);
  CHECK(outcome_of(q, "double-weekend").why == "best");
  CHECK(outcome_of(q, "double-weekend").points == 80);
  CHECK_FALSE(outcome_of(q, "fuel-bonus").won);
  CHECK(outcome_of(q, "fuel-bonus").why == "outscored");
  CHECK(outcome_of(q, "fuel-bonus").by == "double-weekend");
  CHECK(outcome_of(q, "fuel-bonus").points == 50);

  auto e = earn(g, "b-1", 1, {fuel(6000), snacks(2000)});
  CHECK(e.points == 160);
  CHECK(rule_points(e, "double-weekend") == 80);
  CHECK(rule_points(e, "fuel-bonus") == 0);
  REQUIRE(e.rules.size() == 2);
  CHECK(outcome_of(e, "fuel-bonus").why == "outscored");

  // 30.00 of fuel: the weekend gives only 30, so the fuel bonus wins.
  q = quote(g, 1, {fuel(3000)});
  CHECK(q.points == 80);
  CHECK(rule_points(q, "fuel-bonus") == 50);
  CHECK(outcome_of(q, "double-weekend").why == "outscored");
  CHECK(outcome_of(q, "double-weekend").by == "fuel-bonus");
  CHECK(outcome_of(q, "double-weekend").points == 30);

  // On a Monday the weekend rule does not match at all.
  g.clock.advance(2 * day);
  q = quote(g, 1, {fuel(6000), snacks(2000)});
  CHECK(outcome_of(q, "double-weekend").why == "not_matched");
  CHECK(outcome_of(q, "fuel-bonus").won);
  CHECK(q.points == 130);

  int status = 0;
  const auto out = loyaltyctl(g, "quote --member 1 --brand fuelmart --amount 8000 --items F-95:fuel:1:6000,S-1:snacks:1:2000",
                              status);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("rule fuel-bonus: won, 50 points (best)") != std::string::npos);
  CHECK(out.find("rule double-weekend: not counted (not_matched)") != std::string::npos);
  g.check_verify();
}

TEST_CASE("the weekend promotion's daily budget runs out, the next earn that day gets base points only, and the "
          "next local day it pays again",
          "[rules]") {
  rig g("rules-budget", fuelmart("best"));
  for (std::uint64_t m = 1; m <= 4; ++m)
    g.enroll(m, "fuelmart");

  CHECK(rule_points(earn(g, "d-1", 1, {groceries(990'000)}), "double-weekend") == 9'900);
  auto last = earn(g, "d-2", 2, {groceries(10'000)});
  CHECK(rule_points(last, "double-weekend") == 100);  // exactly what was left of 10,000
  CHECK(last.points == 200);

  auto q = quote(g, 3, {groceries(10'000)});
  CHECK(q.points == 100);
  CHECK(rule_line_count(q) == 0);
  CHECK(outcome_of(q, "double-weekend").why == "budget_day");
  CHECK_FALSE(outcome_of(q, "double-weekend").won);
  auto base_only = earn(g, "d-3", 3, {groceries(10'000)});
  CHECK(base_only.points == 100);
  CHECK(rule_line_count(base_only) == 0);
  CHECK(outcome_of(base_only, "double-weekend").why == "budget_day");

  // With fuel in the basket the next best rule wins instead.
  auto fuel_wins = earn(g, "d-4", 4, {fuel(6000), snacks(2000)});
  CHECK(fuel_wins.points == 130);
  CHECK(rule_points(fuel_wins, "fuel-bonus") == 50);

  // 23:30 on Saturday at the stations (22:30Z): still the same local day.
  g.clock.set(saturday_10 + 13 * hour + hour / 2);
  CHECK(outcome_of(quote(g, 3, {groceries(10'000)}), "double-weekend").why == "budget_day");
  // 00:30 on Sunday at the stations (23:30Z on Saturday): a new day's budget.
  g.clock.set(saturday_10 + 14 * hour + hour / 2);
  auto sunday = earn(g, "d-5", 3, {groceries(10'000)});
  CHECK(sunday.points == 200);
  CHECK(outcome_of(sunday, "double-weekend").why == "best");
  g.check_verify();
}

TEST_CASE("a daily budget is exact when many tills earn at once, and a restart keeps the day's use", "[rules]") {
  // 8 tills x 25 earns of a 7-point flash bonus want 1,400 points; the day allows 1,000.
  rig g("rules-concurrent", flash_program(7, 1'000), saturday_10);
  constexpr int tills = 8;
  constexpr int earns_each = 25;
  for (int t = 0; t < tills; ++t)
    g.enroll(100 + static_cast<std::uint64_t>(t), "shop");
  std::atomic<std::int64_t> flash_points{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < tills; ++t)
    threads.emplace_back([&, t] {
      std::string err;
      auto c = io::client::connect("127.0.0.1", g.eng->port(), err);
      if (!c || !c->hello("till", test::admin_key).ok()) {
        ++failures;
        return;
      }
      for (int i = 0; i < earns_each; ++i) {
        auto r = c->earn("c-" + std::to_string(t) + "-" + std::to_string(i), 100 + static_cast<std::uint64_t>(t),
                         "shop", 500, "EUR", 0, {item{"X", "misc", 1, 500}});
        if (!r.ok()) {
          ++failures;
          continue;
        }
        flash_points += rule_points(r, "flash");
      }
    });
  for (auto& t : threads)
    t.join();
  REQUIRE(failures.load() == 0);
  CHECK(flash_points.load() == 1'000);

  g.restart();
  auto q = g.c->quote(100, "shop", 500, "EUR", 0, {item{"X", "misc", 1, 500}});
  REQUIRE(q.ok());
  CHECK(q.points == 5);
  CHECK(outcome_of(q, "flash").why == "budget_day");
  g.check_verify();

  g.clock.advance(day);
  auto next_day = g.c->earn("c-next", 100, "shop", 500, "EUR", 0, {item{"X", "misc", 1, 500}});
  REQUIRE(next_day.ok());
  CHECK(rule_points(next_day, "flash") == 7);
  CHECK(outcome_of(next_day, "flash").why == "counted");
}

TEST_CASE("a refund gives the day's budget back, and so does the ledger after a restart", "[rules]") {
  rig g("rules-refund", flash_program(600, 1'000), saturday_10);
  for (std::uint64_t m = 1; m <= 4; ++m)
    g.enroll(m, "shop");
  const std::vector<item> basket = {item{"X", "misc", 1, 1000}};
  CHECK(rule_points(g.c->earn("r-1", 1, "shop", 1000, "EUR", 0, basket), "flash") == 600);
  CHECK(rule_points(g.c->earn("r-2", 2, "shop", 1000, "EUR", 0, basket), "flash") == 400);
  auto q = g.c->quote(3, "shop", 1000, "EUR", 0, basket);
  REQUIRE(q.ok());
  CHECK(outcome_of(q, "flash").why == "budget_day");

  auto back = g.c->refund("r-1-back", 1, "r-1");
  INFO(back.message);
  REQUIRE(back.ok());
  CHECK(rule_points(back, "flash") == -600);
  CHECK(rule_points(g.c->earn("r-3", 3, "shop", 1000, "EUR", 0, basket), "flash") == 600);

  g.restart();  // the counters as the journal has them: 400 + 600 - 600 + 600
  q = g.c->quote(4, "shop", 1000, "EUR", 0, basket);
  REQUIRE(q.ok());
  CHECK(outcome_of(q, "flash").why == "budget_day");
  g.check_verify();
}

TEST_CASE("a program that sums its rules without period budgets answers earns as before, without rules", "[rules]") {
  std::string rules = fuelmart_rules;
  const std::string budget = "budget_per_day = 10000\n";
  rules.erase(rules.find(budget), budget.size());
  rig g("rules-sum", std::string(fuelmart_head) + rules);
  g.enroll(1, "fuelmart");
  auto e = g.c->earn("s-1", 1, "fuelmart", 8000, "EUR", 0, {fuel(6000), snacks(2000)});
  REQUIRE(e.ok());
  CHECK(e.points == 80 + 80 + 50);
  CHECK(e.rules.empty());
  auto q = g.c->quote(1, "fuelmart", 8000, "EUR", 0, {fuel(6000), snacks(2000)});
  REQUIRE(q.ok());
  REQUIRE(q.rules.size() == 2);
  CHECK(outcome_of(q, "double-weekend").why == "counted");
  CHECK(outcome_of(q, "fuel-bonus").why == "counted");
  CHECK(outcome_of(q, "fuel-bonus").won);
}
