// Policy as data (issue 3): calendar, lots, earn / event / enroll evaluation,
// spending, tier tracking and refund clawbacks — all pure functions, driven
// here with hand-built programs and member books.
#include "actors/coalition.hpp"
#include "actors/partner.hpp"
#include "actors/policy.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>
#include <random>

using namespace loyalty;
using namespace loyalty::actors;

namespace {

constexpr std::int64_t i64_max = std::numeric_limits<std::int64_t>::max();

program make_program(std::int32_t utc_offset_minutes = 0) {
  program p;
  p.name = "test";
  p.utc_offset_minutes = utc_offset_minutes;
  p.brands.push_back({1, "acme", "Acme", {1, 100}});  // 1 point per 1.00
  p.brands.push_back({2, "beta", "Beta", {5, 250}});  // 5 points per 2.50
  p.tiers.push_back({"member", 0, {1, 1}});
  p.tiers.push_back({"silver", 1000, {3, 2}});
  p.tiers.push_back({"gold", 5000, {2, 1}});
  return p;
}

// The UTC instant of a local wall-clock time in program p.
std::uint64_t at(const program& p, std::int64_t y, std::uint32_t m, std::uint32_t d, std::int64_t h = 0,
                 std::int64_t min = 0) {
  std::int64_t s = days_from_civil(y, m, d) * 86'400 + h * 3'600 + min * 60 -
                   std::int64_t{p.utc_offset_minutes} * 60;
  return static_cast<std::uint64_t>(s) * 1'000'000;
}

constexpr std::uint64_t hour_us = 3'600'000'000ull;

earn_rule rule(std::uint32_t id, rule_trigger trigger = rule_trigger::purchase) {
  earn_rule r;
  r.id = id;
  r.code = std::to_string(id);
  r.trigger = trigger;
  return r;
}

earn_rule multiplier_rule(std::uint32_t id, rational m) {
  auto r = rule(id);
  r.multiplier = m;
  return r;
}

earn_rule bonus_rule(std::uint32_t id, std::int64_t points, rule_trigger trigger = rule_trigger::purchase) {
  auto r = rule(id, trigger);
  r.bonus_points = points;
  return r;
}

basket purchase(std::uint32_t brand, std::int64_t amount, std::uint64_t when = 1'700'000'000'000'000ull) {
  basket b;
  b.brand_id = brand;
  b.channel = "store";
  b.occurred_at_us = when;
  b.amount = amount;
  return b;
}

const rule_line* line_of(const earn_decision& d, line_kind kind, std::uint32_t rule_id = 0) {
  for (const auto& l : d.lines)
    if (l.kind == kind && l.rule_id == rule_id)
      return &l;
  return nullptr;
}

// Tiers over a 30-day window, reviewed monthly, downgrades after grace_days.
program monthly_reviews(std::uint32_t grace_days) {
  auto p = make_program();
  p.tier_rules.window_days = 30;
  p.tier_rules.review = calendar_period::month;
  p.tier_rules.grace_days = grace_days;
  return p;
}

// Runs the due reviews and applies them, as the ledger fold would.
void review(const program& p, ledger::tier_track& t, std::uint64_t now) {
  apply_tier_review(t, review_tier(p, t, now));
}

ledger::lot make_lot(std::uint32_t id, std::int64_t points, std::uint64_t available_at, std::uint64_t expires_at) {
  return {id, 1, points, points, 0, available_at, expires_at, 0};
}

} // namespace

// -- calendar ----------------------------------------------------------------------

TEST_CASE("civil dates round-trip through day numbers, leap days included", "[policy][calendar]") {
  CHECK(days_from_civil(1970, 1, 1) == 0);
  CHECK(days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28) == 2);  // 2000 is a leap year
  CHECK(days_from_civil(1900, 3, 1) - days_from_civil(1900, 2, 28) == 1);  // 1900 is not
  CHECK(days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28) == 2);
  for (std::int64_t d = -800'000; d <= 800'000; d += 37) {
    civil_date c = civil_from_days(d);
    REQUIRE(days_from_civil(c.year, c.month, c.day) == d);
  }
  civil_date leap = civil_from_days(days_from_civil(2024, 2, 29));
  CHECK((leap.year == 2024 && leap.month == 2 && leap.day == 29));
}

TEST_CASE("local day, weekday and hour follow the program's utc offset", "[policy][calendar]") {
  auto utc = make_program(0);
  CHECK(local_weekday(utc, 0) == 3);  // 1970-01-01 was a Thursday
  auto east = make_program(120);      // UTC+2
  std::uint64_t t = at(utc, 2024, 3, 15, 23, 30);  // Friday 23:30 UTC
  CHECK(local_day(utc, t) == days_from_civil(2024, 3, 15));
  CHECK(local_weekday(utc, t) == 4);
  CHECK(local_day(east, t) == days_from_civil(2024, 3, 16));  // already Saturday 01:30 local
  CHECK(local_weekday(east, t) == 5);
  CHECK(local_hour(east, t) == 1);
  auto west = make_program(-300);  // UTC-5
  CHECK(local_weekday(west, at(utc, 2024, 3, 16, 3)) == 4);  // Saturday 03:00 UTC is Friday 22:00
  CHECK(local_hour(west, at(utc, 2024, 3, 16, 3)) == 22);
  CHECK(local_day_start(east, local_day(east, t)) == at(east, 2024, 3, 16));
}

TEST_CASE("period ends are the first instant of the next local month, quarter or year", "[policy][calendar]") {
  auto p = make_program(60);
  std::uint64_t t = at(p, 2024, 12, 31, 23, 59);
  CHECK(period_end(p, t, calendar_period::month) == at(p, 2025, 1, 1));
  CHECK(period_end(p, t, calendar_period::quarter) == at(p, 2025, 1, 1));
  CHECK(period_end(p, t, calendar_period::year) == at(p, 2025, 1, 1));
  CHECK(period_end(p, at(p, 2024, 2, 10), calendar_period::month) == at(p, 2024, 3, 1));
  CHECK(period_end(p, at(p, 2024, 5, 31), calendar_period::quarter) == at(p, 2024, 7, 1));
  CHECK(period_start(p, at(p, 2024, 5, 31), calendar_period::quarter) == at(p, 2024, 4, 1));
  // The first instant of a period belongs to it; one microsecond earlier does not.
  CHECK(period_end(p, at(p, 2024, 3, 1), calendar_period::month) == at(p, 2024, 4, 1));
  CHECK(period_end(p, at(p, 2024, 3, 1) - 1, calendar_period::month) == at(p, 2024, 3, 1));
  CHECK(period_end(p, t, calendar_period::none) == t);
}

// -- earn: rounding ---------------------------------------------------------------

TEST_CASE("5 points per 2.50: 3.00 earns exactly 6 and 2.99 earns 5, not 6 (floor, never round)",
          "[policy][earn]") {
  auto p = make_program();
  ledger::member_book book;
  // rate num = 5, den = 250: 300 x 5 / 250 = 6 exactly (1.2 x 5 points).
  auto d = evaluate_earn(p, book, 0, purchase(2, 300), {});
  REQUIRE(d.code == errc::ok);
  CHECK(d.points == 6);
  // 299 x 5 / 250 = 5.98: floored to 5 where rounding would give 6.
  d = evaluate_earn(p, book, 0, purchase(2, 299), {});
  REQUIRE(d.code == errc::ok);
  CHECK(d.points == 5);
  // 249 x 5 / 250 = 4.98 -> 4.
  CHECK(evaluate_earn(p, book, 0, purchase(2, 249), {}).points == 4);
}

TEST_CASE("5 points per whole 2.50 spent: 3.00 earns 5, not 6, and 5.00 earns 10", "[policy][earn]") {
  auto p = make_program();
  p.brands[1].earn_in_steps = true;  // earn_mode = "steps"
  ledger::member_book book;
  auto d = evaluate_earn(p, book, 0, purchase(2, 300), {});
  REQUIRE(d.code == errc::ok);
  CHECK(d.points == 5);
  CHECK(evaluate_earn(p, book, 0, purchase(2, 249), {}).points == 0);
  CHECK(evaluate_earn(p, book, 0, purchase(2, 500), {}).points == 10);
  // The tier line counts whole steps too: silver (x3/2) adds floor(5 x 1/2) = 2 on 3.00.
  d = evaluate_earn(p, book, 1, purchase(2, 300), {});
  REQUIRE(d.code == errc::ok);
  CHECK(d.points == 7);
}

TEST_CASE("a purchase too small for a point still has its base line", "[policy][earn]") {
  auto p = make_program();
  ledger::member_book book;
  auto d = evaluate_earn(p, book, 0, purchase(1, 99), {});
  REQUIRE(d.code == errc::ok);
  REQUIRE(d.lines.size() == 1);
  CHECK(d.lines[0].kind == line_kind::base);
  CHECK(d.lines[0].points == 0);
  CHECK(d.lines[0].matched_amount == 99);
}

TEST_CASE("the tier line is floored separately from the base line", "[policy][earn]") {
  auto p = make_program();  // silver x 3/2, gold x 2
  ledger::member_book book;
  // 1.50 at 1 point per 1.00 in silver: base floor(1.5) = 1, tier floor(0.75) = 0,
  // where a single floor of 2.25 would give 2.
  auto d = evaluate_earn(p, book, 1, purchase(1, 150), {});
  REQUIRE(d.code == errc::ok);
  REQUIRE(line_of(d, line_kind::tier) != nullptr);
  CHECK(line_of(d, line_kind::base)->points == 1);
  CHECK(line_of(d, line_kind::tier)->points == 0);
  CHECK(d.points == 1);
  // 3.50 in gold: base 3, tier floor(3.5 x 1) = 3.
  d = evaluate_earn(p, book, 2, purchase(1, 350), {});
  CHECK(line_of(d, line_kind::tier)->points == 3);
  CHECK(d.points == 6);
  // Tier 0 has multiplier 1: no tier line at all.
  CHECK(line_of(evaluate_earn(p, book, 0, purchase(1, 350), {}), line_kind::tier) == nullptr);
}

// -- earn: matching ----------------------------------------------------------------

TEST_CASE("sku, category and channel rules match only their part of the basket", "[policy][earn]") {
  auto p = make_program();
  auto by_sku = multiplier_rule(10, {2, 1});  // double points on coffee beans
  by_sku.skus = {"BEANS-1", "BEANS-2"};
  auto by_category = multiplier_rule(11, {5, 2});  // x2.5 on dairy
  by_category.categories = {"dairy"};
  auto app_bonus = bonus_rule(12, 40);  // app orders get 40 points
  app_bonus.channels = {"app"};
  auto other_brand = bonus_rule(13, 1000);
  other_brand.brands = {2};
  auto no_match = multiplier_rule(14, {3, 1});
  no_match.skus = {"TEA"};
  p.rules = {by_sku, by_category, app_bonus, other_brand, no_match};

  basket b = purchase(1, 0);
  b.channel = "app";
  b.lines = {{"BEANS-1", "coffee", 1, 1250},
             {"MILK", "dairy", 2, 330},
             {"BEANS-2", "coffee", 1, 999},
             {"CHEESE", "dairy", 1, 475},
             {"BREAD", "bakery", 1, 260}};
  b.amount = 1250 + 330 + 999 + 475 + 260;  // 3314
  ledger::member_book book;
  auto d = evaluate_earn(p, book, 0, b, {});
  REQUIRE(d.code == errc::ok);
  CHECK(line_of(d, line_kind::base)->points == 33);
  REQUIRE(line_of(d, line_kind::rule, 10) != nullptr);
  CHECK(line_of(d, line_kind::rule, 10)->matched_amount == 2249);
  CHECK(line_of(d, line_kind::rule, 10)->points == 22);  // floor(22.49 x 1)
  REQUIRE(line_of(d, line_kind::rule, 11) != nullptr);
  CHECK(line_of(d, line_kind::rule, 11)->matched_amount == 805);
  CHECK(line_of(d, line_kind::rule, 11)->points == 12);  // floor(8.05 x 1.5)
  REQUIRE(line_of(d, line_kind::rule, 12) != nullptr);
  CHECK(line_of(d, line_kind::rule, 12)->points == 40);
  CHECK(line_of(d, line_kind::rule, 13) == nullptr);
  CHECK(line_of(d, line_kind::rule, 14) == nullptr);
  CHECK(d.points == 33 + 22 + 12 + 40);
  CHECK(d.qualifying == d.points);

  b.channel = "store";
  d = evaluate_earn(p, book, 0, b, {});
  CHECK(line_of(d, line_kind::rule, 12) == nullptr);
  CHECK(d.points == 33 + 22 + 12);

  // Without line items the basket is one anonymous line: sku and category
  // rules cannot match it, the others see the whole amount.
  basket plain = purchase(1, 3314);
  plain.channel = "app";
  d = evaluate_earn(p, book, 0, plain, {});
  CHECK(line_of(d, line_kind::rule, 10) == nullptr);
  CHECK(line_of(d, line_kind::rule, 11) == nullptr);
  CHECK(line_of(d, line_kind::rule, 12)->matched_amount == 3314);
}

TEST_CASE("a rule's min_amount is tested against its matched amount", "[policy][earn]") {
  auto p = make_program();
  auto r = bonus_rule(20, 100);
  r.categories = {"dairy"};
  r.min_amount = 500;
  p.rules = {r};
  basket b = purchase(1, 900);
  b.lines = {{"MILK", "dairy", 1, 499}, {"BREAD", "bakery", 1, 401}};
  ledger::member_book book;
  CHECK(line_of(evaluate_earn(p, book, 0, b, {}), line_kind::rule, 20) == nullptr);
  b.lines = {{"MILK", "dairy", 1, 500}, {"BREAD", "bakery", 1, 400}};
  CHECK(line_of(evaluate_earn(p, book, 0, b, {}), line_kind::rule, 20) != nullptr);
}

TEST_CASE("the spend metric qualifies the amount, not the points", "[policy][earn]") {
  auto p = make_program();
  p.tier_rules.metric = tier_metric::spend;
  ledger::member_book book;
  auto d = evaluate_earn(p, book, 0, purchase(1, 1234), {});
  CHECK(d.points == 12);
  CHECK(d.qualifying == 1234);
}

TEST_CASE("a Friday 08-20 promotion is tested in local time", "[policy][earn][calendar]") {
  auto p = make_program(120);  // stores run on UTC+2
  auto friday = multiplier_rule(30, {2, 1});
  friday.window.weekdays = 1u << 4;
  friday.window.hour_from = 8;
  friday.window.hour_to = 20;
  p.rules = {friday};
  ledger::member_book book;
  auto fires = [&](std::uint64_t when) {
    return line_of(evaluate_earn(p, book, 0, purchase(1, 1000, when), {}), line_kind::rule, 30) != nullptr;
  };
  // 2024-03-15 is a Friday.
  CHECK(fires(at(p, 2024, 3, 15, 8)));         // first local hour
  CHECK(fires(at(p, 2024, 3, 15, 19, 59)));    // last local minute
  CHECK_FALSE(fires(at(p, 2024, 3, 15, 7, 59)));
  CHECK_FALSE(fires(at(p, 2024, 3, 15, 20)));
  CHECK_FALSE(fires(at(p, 2024, 3, 14, 12)));  // Thursday
  CHECK_FALSE(fires(at(p, 2024, 3, 16, 12)));  // Saturday
  // 06:30 UTC is 08:30 local: inside, although it is before 08:00 UTC.
  auto utc = make_program(0);
  CHECK(fires(at(utc, 2024, 3, 15, 6, 30)));
  // 18:30 UTC is 20:30 local: outside; 17:30 UTC is 19:30 local: inside.
  CHECK_FALSE(fires(at(utc, 2024, 3, 15, 18, 30)));
  CHECK(fires(at(utc, 2024, 3, 15, 17, 30)));

  // A whole-day Friday promotion: the day boundary is local midnight.
  friday.window.hour_from = 0;
  friday.window.hour_to = 24;
  p.rules = {friday};
  CHECK(fires(at(utc, 2024, 3, 14, 22, 30)));        // Thursday 22:30 UTC = Friday 00:30 local
  CHECK_FALSE(fires(at(utc, 2024, 3, 15, 22, 30)));  // Friday 22:30 UTC = Saturday 00:30 local
}

TEST_CASE("a promotion's from / to are instants and to is exclusive", "[policy][earn][calendar]") {
  auto p = make_program(-300);
  auto march = bonus_rule(31, 50);
  // As the loader stores `from = 2024-03-01` / `to = 2024-04-01` (program-local dates).
  march.window.from_us = at(p, 2024, 3, 1);
  march.window.to_us = at(p, 2024, 4, 1);
  CHECK(march.window.from_us == at(make_program(0), 2024, 3, 1, 5));  // local midnight is 05:00 UTC
  p.rules = {march};
  ledger::member_book book;
  auto fires = [&](std::uint64_t when) {
    return line_of(evaluate_earn(p, book, 0, purchase(1, 1000, when), {}), line_kind::rule, 31) != nullptr;
  };
  CHECK(fires(at(p, 2024, 3, 1)));
  CHECK(fires(at(p, 2024, 3, 31, 23, 59)));
  CHECK_FALSE(fires(at(p, 2024, 3, 1) - 1));
  CHECK_FALSE(fires(at(p, 2024, 4, 1)));
}

// -- earn: caps and first purchase -------------------------------------------------

TEST_CASE("per-member and total caps limit a rule's points and stop it at zero", "[policy][earn]") {
  auto p = make_program();
  auto capped_bonus = bonus_rule(40, 100);
  capped_bonus.cap_per_member = 250;
  auto capped_mult = multiplier_rule(41, {3, 1});
  capped_mult.cap_total = 10'000;
  p.rules = {capped_bonus, capped_mult};
  ledger::member_book book;
  std::vector<rule_total> totals = {{41, 9'990}};

  auto d = evaluate_earn(p, book, 0, purchase(1, 5000), totals);
  CHECK(line_of(d, line_kind::rule, 40)->points == 100);
  CHECK(line_of(d, line_kind::rule, 41)->points == 10);  // 100 uncapped, 10 left in the program
  book.counters = {{40, 2, 200}};
  d = evaluate_earn(p, book, 0, purchase(1, 5000), totals);
  CHECK(line_of(d, line_kind::rule, 40)->points == 50);
  book.counters = {{40, 3, 250}};
  totals = {{41, 10'000}};
  d = evaluate_earn(p, book, 0, purchase(1, 5000), totals);
  CHECK(line_of(d, line_kind::rule, 40) == nullptr);
  CHECK(line_of(d, line_kind::rule, 41) == nullptr);
  CHECK(d.points == 50);
}

TEST_CASE("uses_per_member_max stops a purchase rule after that many uses", "[policy][earn]") {
  auto p = make_program();
  auto twice = bonus_rule(42, 30);
  twice.uses_per_member_max = 2;
  p.rules = {twice};
  ledger::member_book book;
  book.counters = {{42, 1, 30}};
  CHECK(line_of(evaluate_earn(p, book, 0, purchase(1, 100), {}), line_kind::rule, 42) != nullptr);
  book.counters = {{42, 2, 60}};
  CHECK(line_of(evaluate_earn(p, book, 0, purchase(1, 100), {}), line_kind::rule, 42) == nullptr);
}

TEST_CASE("a first-purchase rule fires once, on the first earn only", "[policy][earn]") {
  auto p = make_program();
  p.rules = {bonus_rule(50, 500, rule_trigger::first_purchase)};
  ledger::member_book book;
  auto d = evaluate_earn(p, book, 0, purchase(1, 100), {});
  REQUIRE(line_of(d, line_kind::rule, 50) != nullptr);
  CHECK(d.points == 501);
  // In flight: the member already has a counter for it.
  book.counters = {{50, 1, 500}};
  CHECK(line_of(evaluate_earn(p, book, 0, purchase(1, 100), {}), line_kind::rule, 50) == nullptr);
  // Committed: the first purchase is recorded.
  book.counters.clear();
  book.first_purchase_seq = 17;
  CHECK(line_of(evaluate_earn(p, book, 0, purchase(1, 100), {}), line_kind::rule, 50) == nullptr);
}

// -- events and enrollment --------------------------------------------------------------

TEST_CASE("event rules answer their kind and stop at their use and total caps", "[policy][event]") {
  auto p = make_program();
  auto survey = bonus_rule(60, 20, rule_trigger::event);
  survey.event_kind = "survey";
  survey.uses_per_member_max = 2;
  auto review = bonus_rule(61, 75, rule_trigger::event);
  review.event_kind = "review";
  review.cap_total = 100;
  p.rules = {survey, review};
  ledger::member_book book;
  const occasion now{1, "app", at(p, 2024, 5, 1, 12)};

  auto d = evaluate_event(p, book, "survey", now, {});
  REQUIRE(d.code == errc::ok);
  CHECK(d.points == 20);
  CHECK(d.qualifying == 0);
  book.counters = {{60, 2, 40}};
  d = evaluate_event(p, book, "survey", now, {});
  CHECK(d.code == errc::ok);
  CHECK(d.lines.empty());

  std::vector<rule_total> totals = {{61, 60}};
  CHECK(evaluate_event(p, book, "review", now, totals).points == 40);
  totals = {{61, 100}};
  CHECK(evaluate_event(p, book, "review", now, totals).lines.empty());
  CHECK(evaluate_event(p, book, "tweet", now, {}).code == errc::invalid_argument);
}

TEST_CASE("event rules match the brand, channel and window of the event", "[policy][event]") {
  auto p = make_program(60);
  auto download = bonus_rule(62, 500, rule_trigger::event);
  download.event_kind = "app_download";
  download.brands = {2};
  download.channels = {"app"};
  download.window.weekdays = 0x60;  // weekends
  p.rules = {download};
  ledger::member_book book;
  std::uint64_t saturday = at(p, 2024, 3, 16, 0, 30);
  CHECK(evaluate_event(p, book, "app_download", {2, "app", saturday}, {}).points == 500);
  CHECK(evaluate_event(p, book, "app_download", {1, "app", saturday}, {}).lines.empty());
  CHECK(evaluate_event(p, book, "app_download", {2, "", saturday}, {}).lines.empty());
  CHECK(evaluate_event(p, book, "app_download", {2, "app", saturday - hour_us}, {}).lines.empty());
}

TEST_CASE("enrollment gives the welcome rules whose window is open", "[policy][event]") {
  auto p = make_program();
  auto welcome = bonus_rule(70, 250, rule_trigger::enroll);
  auto spring = bonus_rule(71, 100, rule_trigger::enroll);
  spring.window.from_us = at(p, 2024, 3, 1);
  spring.window.to_us = at(p, 2024, 6, 1);
  auto app_only = bonus_rule(73, 30, rule_trigger::enroll);
  app_only.channels = {"app"};
  p.rules = {welcome, spring, bonus_rule(72, 999), app_only};
  auto d = evaluate_enroll(p, {1, "store", at(p, 2024, 4, 2)}, {});
  CHECK(d.points == 350);
  CHECK(d.lines.size() == 2);
  CHECK(d.qualifying == 0);
  CHECK(evaluate_enroll(p, {1, "app", at(p, 2024, 4, 2)}, {}).points == 380);
  d = evaluate_enroll(p, {1, "store", at(p, 2024, 7, 2)}, {});
  CHECK(d.points == 250);
  std::vector<rule_total> totals = {{70, 0}};
  p.rules[0].cap_total = 200;
  CHECK(evaluate_enroll(p, {1, "store", at(p, 2024, 7, 2)}, totals).points == 200);
}

// -- validation and overflow ---------------------------------------------------------

TEST_CASE("a basket is validated before anything is computed", "[policy][earn]") {
  auto p = make_program();
  ledger::member_book book;
  CHECK(evaluate_earn(p, book, 0, purchase(9, 100), {}).code == errc::unknown_brand);
  CHECK(evaluate_earn(p, book, 0, purchase(1, 0), {}).code == errc::invalid_amount);
  basket b = purchase(1, 500);
  b.lines = {{"A", "x", 1, 200}, {"B", "y", 1, 200}};
  auto d = evaluate_earn(p, book, 0, b, {});
  CHECK(d.code == errc::invalid_argument);
  CHECK(d.lines.empty());
  b.lines = {{"A", "x", 1, 600}, {"B", "y", 1, -100}};
  CHECK(evaluate_earn(p, book, 0, b, {}).code == errc::invalid_amount);
}

TEST_CASE("every product or sum that leaves int64 is amount_overflow", "[policy][earn]") {
  auto p = make_program();
  p.brands.push_back({3, "huge", "Huge", {1'000'000'000, 1}});
  ledger::member_book book;
  CHECK(evaluate_earn(p, book, 0, purchase(3, i64_max), {}).code == errc::amount_overflow);
  CHECK(evaluate_earn(p, book, 0, purchase(3, 9'223'372'036), {}).code == errc::ok);
  CHECK(evaluate_earn(p, book, 0, purchase(3, 9'223'372'037), {}).code == errc::amount_overflow);
  // The tier line overflows on its own.
  p.tiers[2].multiplier = {1'000'000'000, 1};
  CHECK(evaluate_earn(p, book, 2, purchase(1, i64_max / 2), {}).code == errc::amount_overflow);
  // Lines summing past int64.
  basket b = purchase(1, i64_max);
  b.lines = {{"A", "", 1, i64_max}, {"B", "", 1, 1}};
  CHECK(evaluate_earn(p, book, 0, b, {}).code == errc::amount_overflow);
  // The sum of lines.
  p.rules = {bonus_rule(80, i64_max)};
  auto d = evaluate_earn(p, book, 0, purchase(1, 100), {});
  CHECK(d.code == errc::amount_overflow);
  CHECK(d.points == 0);
}

// -- lots: expiry and availability -----------------------------------------------------------

TEST_CASE("lot expiry is earned-at plus days, rounded up to the end of the local period", "[policy][lots]") {
  auto p = make_program(60);
  std::uint64_t earned = at(p, 2024, 1, 15, 10);
  CHECK(lot_expiry(p, earned) == 0);  // expiry_days == 0: never
  p.lifecycle.expiry_days = 30;
  CHECK(lot_expiry(p, earned) == at(p, 2024, 2, 14, 10));
  p.lifecycle.expiry_rounding = calendar_period::month;
  CHECK(lot_expiry(p, earned) == at(p, 2024, 3, 1));
  // Leap year: 2024-01-31 + 29 days is Feb 29 -> end of February.
  p.lifecycle.expiry_days = 29;
  CHECK(lot_expiry(p, at(p, 2024, 1, 31, 12)) == at(p, 2024, 3, 1));
  // Not a leap year: 2023-01-31 + 29 days is Mar 1 -> end of March.
  CHECK(lot_expiry(p, at(p, 2023, 1, 31, 12)) == at(p, 2023, 4, 1));
  // December rolls into the next year.
  p.lifecycle.expiry_days = 30;
  CHECK(lot_expiry(p, at(p, 2024, 11, 20)) == at(p, 2025, 1, 1));
  p.lifecycle.expiry_rounding = calendar_period::quarter;
  CHECK(lot_expiry(p, at(p, 2024, 7, 20)) == at(p, 2024, 10, 1));
  CHECK(lot_expiry(p, at(p, 2024, 11, 20)) == at(p, 2025, 1, 1));
  p.lifecycle.expiry_rounding = calendar_period::year;
  p.lifecycle.expiry_days = 365;
  CHECK(lot_expiry(p, at(p, 2024, 1, 1)) == at(p, 2025, 1, 1));  // 2024 has 366 days: Dec 31
  CHECK(lot_expiry(p, at(p, 2023, 1, 1)) == at(p, 2025, 1, 1));  // 2023 has 365: Jan 1 2024
  // Local midnight: 23:30 UTC on Dec 31 is already next year in UTC+1.
  p.lifecycle.expiry_rounding = calendar_period::month;
  p.lifecycle.expiry_days = 1;
  auto utc = make_program(0);
  CHECK(lot_expiry(p, at(utc, 2024, 12, 30, 23, 30)) == at(p, 2025, 2, 1));
}

TEST_CASE("a lot is pending until its return window ends and expired from its expiry instant on",
          "[policy][lots]") {
  auto p = make_program();
  std::uint64_t t = at(p, 2024, 5, 1, 9);
  CHECK(lot_available_at(p, t) == t);
  p.lifecycle.pending_days = 14;
  std::uint64_t avail = lot_available_at(p, t);
  CHECK(avail == at(p, 2024, 5, 15, 9));
  auto l = make_lot(1, 100, avail, at(p, 2024, 6, 1));
  CHECK_FALSE(lot_available(l, avail - 1));
  CHECK(lot_available(l, avail));
  CHECK_FALSE(lot_expired(l, at(p, 2024, 6, 1) - 1));
  CHECK(lot_expired(l, at(p, 2024, 6, 1)));
  CHECK_FALSE(lot_available(l, at(p, 2024, 6, 1)));
}

// -- spending and balance ------------------------------------------------------------------------

TEST_CASE("spending takes available lots soonest expiry first, never-expiring last", "[policy][spend]") {
  const std::uint64_t now = 1'000;
  ledger::member_book book;
  book.lots = {make_lot(1, 100, 0, 0),       // never expires: last
               make_lot(2, 50, 0, 3'000),
               make_lot(3, 20, 0, 2'000),
               make_lot(4, 30, 500, 2'000),  // same expiry as 3: by id
               make_lot(5, 70, 1'001, 1'500),  // pending
               make_lot(6, 90, 0, 1'000)};     // expired at now
  auto plan = plan_spend(book, now, 120);
  REQUIRE(plan.code == errc::ok);
  REQUIRE(plan.takes.size() == 4);
  CHECK(plan.takes[0].lot_id == 3);
  CHECK(plan.takes[0].points == 20);
  CHECK(plan.takes[1].lot_id == 4);
  CHECK(plan.takes[2].lot_id == 2);
  CHECK(plan.takes[2].points == 50);
  CHECK(plan.takes[3].lot_id == 1);
  CHECK(plan.takes[3].points == 20);
  CHECK(plan.takes[2].expires_at_us == 3'000);

  CHECK(plan_spend(book, now, 200).code == errc::ok);
  auto no = plan_spend(book, now, 201);
  CHECK(no.code == errc::insufficient_points);
  CHECK(no.takes.empty());
  CHECK(plan_spend(book, now, 0).code == errc::invalid_amount);
  book.debt = 60;
  CHECK(plan_spend(book, now, 141).code == errc::insufficient_points);
  CHECK(plan_spend(book, now, 140).code == errc::ok);
}

TEST_CASE("the balance view splits points into available, pending, held and expired", "[policy][spend]") {
  const std::uint64_t now = 1'000;
  ledger::member_book book;
  book.lots = {make_lot(1, 100, 0, 0), make_lot(2, 50, 0, 3'000), make_lot(3, 20, 0, 2'000),
               make_lot(4, 30, 500, 2'000), make_lot(5, 70, 1'001, 1'500), make_lot(6, 90, 0, 1'000)};
  book.holds.push_back({1, 1, 40, 0, 5'000, 0, {}});
  book.debt = 10;
  auto v = balance_of(book, now);
  REQUIRE(v.code == errc::ok);
  CHECK(v.available == 100 + 50 + 20 + 30 - 10);
  CHECK(v.pending == 70);
  CHECK(v.held == 40);
  CHECK(v.expired_unswept == 90);
  CHECK(v.next_expiry_at_us == 1'500);
  CHECK(v.next_expiry_points == 70);
  v = balance_of(book, 1'600);
  CHECK(v.next_expiry_at_us == 2'000);
  CHECK(v.next_expiry_points == 50);
  CHECK(v.expired_unswept == 160);
  book.debt = 500;
  CHECK(balance_of(book, now).available < 0);
}

// -- tiers -------------------------------------------------------------------------------------

TEST_CASE("an upgrade counts at once and a refund undoes it before any review", "[policy][tier]") {
  auto p = make_program();
  p.tier_rules.review = calendar_period::month;
  ledger::tier_track t;
  std::uint64_t jan5 = at(p, 2024, 1, 5, 12);
  ledger::add_qualifying(t, local_day(p, jan5), 1500);
  CHECK(effective_tier(p, t, jan5) == 1);
  review(p, t, at(p, 2024, 1, 8));
  CHECK(t.reviewed_through_us == at(p, 2024, 1, 1));  // anchored, nothing due yet
  ledger::add_qualifying(t, local_day(p, jan5), -1500);  // refund, booked on the purchase's day
  CHECK(t.buckets[0].amount == 0);
  CHECK(effective_tier(p, t, at(p, 2024, 1, 8)) == 0);
  ledger::add_qualifying(t, local_day(p, jan5), -50);
  CHECK(t.buckets[0].amount == 0);  // never below zero
}

TEST_CASE("a downgrade waits for the review and its grace days", "[policy][tier]") {
  auto p = monthly_reviews(10);
  ledger::tier_track t;
  ledger::add_qualifying(t, local_day(p, at(p, 2024, 1, 5)), 1500);
  auto r = review_tier(p, t, at(p, 2024, 2, 3));  // reviews January: secured silver
  CHECK(r.changed);
  CHECK(r.secured == 1);
  CHECK(t.secured == 0);  // pure: the track changes only when the review is applied
  apply_tier_review(t, r);
  CHECK(t.secured == 1);
  CHECK_FALSE(review_tier(p, t, at(p, 2024, 2, 3)).changed);
  CHECK(t.reviewed_through_us == at(p, 2024, 2, 1));
  // The purchase has left the 30-day window, but the review secured silver.
  CHECK(metric_over_window(p, t, at(p, 2024, 2, 10)) == 0);
  CHECK(effective_tier(p, t, at(p, 2024, 2, 10)) == 1);
  review(p, t, at(p, 2024, 3, 5));  // February had nothing: downgrade pending
  CHECK(t.secured == 1);
  CHECK(t.pending_tier == 0);
  CHECK(t.pending_at_us == at(p, 2024, 3, 11));
  CHECK(t.buckets.empty());  // pruned: no window can reach January any more
  CHECK(effective_tier(p, t, at(p, 2024, 3, 11) - 1) == 1);
  CHECK(effective_tier(p, t, at(p, 2024, 3, 11)) == 0);
  review(p, t, at(p, 2024, 3, 11));
  CHECK(t.secured == 0);
  CHECK(t.pending_at_us == 0);
}

TEST_CASE("a review catching up over months applies each period in turn", "[policy][tier]") {
  auto p = monthly_reviews(10);
  ledger::tier_track t;
  ledger::add_qualifying(t, local_day(p, at(p, 2024, 1, 5)), 6000);
  review(p, t, at(p, 2024, 6, 2));
  CHECK(t.secured == 0);  // gold at Feb 1, pending at Mar 1, applied by Apr 1
  CHECK(t.pending_at_us == 0);
  CHECK(t.reviewed_through_us == at(p, 2024, 6, 1));
}

TEST_CASE("requalifying before a pending downgrade is due cancels it at the next review", "[policy][tier]") {
  auto p = monthly_reviews(45);
  ledger::tier_track t;
  ledger::add_qualifying(t, local_day(p, at(p, 2024, 1, 5)), 1500);
  review(p, t, at(p, 2024, 3, 2));
  REQUIRE(t.pending_at_us == at(p, 2024, 4, 15));
  ledger::add_qualifying(t, local_day(p, at(p, 2024, 3, 20)), 1200);
  review(p, t, at(p, 2024, 4, 2));
  CHECK(t.secured == 1);
  CHECK(t.pending_at_us == 0);
  CHECK(effective_tier(p, t, at(p, 2024, 4, 30)) == 1);
}

TEST_CASE("with no review a tier drops only as the metric drops", "[policy][tier]") {
  auto p = make_program();  // review none, window since enrollment
  ledger::tier_track t;
  std::uint32_t day = local_day(p, at(p, 2024, 1, 5));
  ledger::add_qualifying(t, day, 5200);
  review(p, t, at(p, 2026, 1, 1));
  CHECK(t.secured == 0);
  CHECK(effective_tier(p, t, at(p, 2026, 1, 1)) == 2);
  ledger::add_qualifying(t, day, -300);
  CHECK(effective_tier(p, t, at(p, 2026, 1, 1)) == 1);
}

TEST_CASE("a tier earned by purchases holds until the review after they leave the window, plus the grace days",
          "[policy][tier][outlook]") {
  auto p = monthly_reviews(10);
  ledger::tier_track t;
  ledger::add_qualifying(t, local_day(p, at(p, 2024, 1, 5)), 1500);
  // Silver at once; the February 1 review secures it; the purchase leaves
  // the window on February 4; the March 1 review finds nothing and the
  // downgrade takes effect 10 days later.
  const auto o = tier_outlook_of(p, t, at(p, 2024, 1, 8));
  CHECK(o.tier == 1);
  CHECK(o.holds_until_us == at(p, 2024, 3, 11));
  CHECK(o.drops_to == 0);
  CHECK(o.missing == 1000);
  CHECK(t.secured == 0);  // pure: the track is not changed
  // Another purchase in February is inside the window at the March review:
  // the tier holds a month longer.
  ledger::add_qualifying(t, local_day(p, at(p, 2024, 2, 20)), 1200);
  CHECK(tier_outlook_of(p, t, at(p, 2024, 2, 21)).holds_until_us == at(p, 2024, 4, 11));
  // A gold member whose purchases are all in the window now drops to the
  // tier its remaining purchases give, and says what is missing then.
  ledger::tier_track g;
  ledger::add_qualifying(g, local_day(p, at(p, 2024, 1, 5)), 4000);
  ledger::add_qualifying(g, local_day(p, at(p, 2024, 1, 25)), 1500);
  const auto og = tier_outlook_of(p, g, at(p, 2024, 1, 26));
  CHECK(og.tier == 2);
  CHECK(og.holds_until_us == at(p, 2024, 3, 11));  // Feb 1 secures gold; Mar 1 finds 0 (both left)
  CHECK(og.drops_to == 0);
  CHECK(og.missing == 5000);
}

TEST_CASE("without reviews a tier holds until its purchases leave the window; since enrollment, or at the lowest "
          "tier, it has no end",
          "[policy][tier][outlook]") {
  auto p = make_program();
  p.tier_rules.window_days = 30;
  ledger::tier_track t;
  ledger::add_qualifying(t, local_day(p, at(p, 2024, 1, 5)), 1500);
  const auto o = tier_outlook_of(p, t, at(p, 2024, 1, 8));
  CHECK(o.tier == 1);
  CHECK(o.holds_until_us == at(p, 2024, 2, 4));  // January 5 + 30 days: the first day outside the window
  CHECK(o.missing == 1000);
  p.tier_rules.window_days = 0;  // since enrollment: the metric never falls
  CHECK(tier_outlook_of(p, t, at(p, 2024, 1, 8)).holds_until_us == 0);
  p.tier_rules.review = calendar_period::month;
  CHECK(tier_outlook_of(p, t, at(p, 2024, 6, 8)).holds_until_us == 0);
  ledger::tier_track none;
  const auto o0 = tier_outlook_of(p, none, at(p, 2024, 1, 8));
  CHECK(o0.tier == 0);
  CHECK(o0.holds_until_us == 0);
}

TEST_CASE("buckets stay ascending by day and only window days are summed", "[policy][tier]") {
  auto p = make_program();
  p.tier_rules.window_days = 7;
  ledger::tier_track t;
  for (std::uint32_t d : {20u, 10u, 15u, 10u, 12u})
    ledger::add_qualifying(t, d, 100);
  REQUIRE(t.buckets.size() == 4);
  CHECK(std::is_sorted(t.buckets.begin(), t.buckets.end(),
                       [](auto& a, auto& b) { return a.day < b.day; }));
  CHECK(t.buckets[0].amount == 200);
  std::uint64_t day15 = local_day_start(p, 15) + 5 * hour_us;
  CHECK(metric_over_window(p, t, day15) == 400);  // days 9..15: 10, 12 and 15
  CHECK(metric_over_window(p, t, local_day_start(p, 17)) == 200);  // days 11..17
  p.tier_rules.window_days = 0;
  CHECK(metric_over_window(p, t, day15) == 400);  // everything up to that day
  CHECK(metric_over_window(p, t, local_day_start(p, 30)) == 500);
}

// -- refunds -------------------------------------------------------------------------

TEST_CASE("a partial refund claws back each line proportionally, floored per line", "[policy][refund]") {
  auto p = make_program();
  std::vector<rule_line> lines = {{line_kind::base, 0, 33, 3314}, {line_kind::rule, 10, 22, 2249},
                                  {line_kind::rule, 12, 40, 3314}};
  auto d = refund_lines(p, lines, 3314, 0, 1000);
  REQUIRE(d.code == errc::ok);
  REQUIRE(d.lines.size() == 3);
  // Keeps floor(33 x 2314 / 3314) = 23, floor(22 x 2314/3314) = 15, floor(40 x ...) = 27.
  CHECK(d.lines[0].points == 23 - 33);
  CHECK(d.lines[1].points == 15 - 22);
  CHECK(d.lines[2].points == 27 - 40);
  CHECK(d.lines[1].rule_id == 10);
  CHECK(d.points == -30);
  CHECK(d.qualifying == -30);
  auto rest = refund_lines(p, lines, 3314, 1000, 2314);
  CHECK(rest.points == -(33 + 22 + 40) + 30);
  CHECK(refund_lines(p, lines, 3314, 1000, 2315).code == errc::invalid_amount);
  CHECK(refund_lines(p, lines, 3314, 0, 0).code == errc::invalid_amount);
  CHECK(refund_lines(p, lines, 3314, i64_max, 1).code == errc::invalid_amount);
  p.tier_rules.metric = tier_metric::spend;
  CHECK(refund_lines(p, lines, 3314, 0, 1000).qualifying == -1000);
}

TEST_CASE("any sequence of partial refunds claws back exactly the original points", "[policy][refund]") {
  auto p = make_program();
  std::mt19937_64 rng(20240315);
  for (int round = 0; round < 500; ++round) {
    std::int64_t a = std::uniform_int_distribution<std::int64_t>(1, 200'000)(rng);
    std::vector<rule_line> lines;
    std::size_t n = std::uniform_int_distribution<std::size_t>(1, 5)(rng);
    for (std::size_t i = 0; i < n; ++i)
      lines.push_back({line_kind::rule, static_cast<std::uint32_t>(i + 1),
                       std::uniform_int_distribution<std::int64_t>(0, 1'000'000)(rng), a});
    std::vector<std::int64_t> kept(n);
    for (std::size_t i = 0; i < n; ++i)
      kept[i] = lines[i].points;
    std::int64_t refunded = 0;
    while (refunded < a) {
      std::int64_t most = (rng() % 4 == 0) ? a - refunded : std::max<std::int64_t>(1, (a - refunded) / 3);
      std::int64_t r = std::uniform_int_distribution<std::int64_t>(1, most)(rng);
      auto d = refund_lines(p, lines, a, refunded, r);
      REQUIRE(d.code == errc::ok);
      refunded += r;
      for (std::size_t i = 0; i < n; ++i) {
        REQUIRE(d.lines[i].points <= 0);
        kept[i] += d.lines[i].points;
        // Exactly the floored proportional share: never free points.
        REQUIRE(kept[i] == lines[i].points * (a - refunded) / a);
      }
    }
    for (std::size_t i = 0; i < n; ++i)
      REQUIRE(kept[i] == 0);
  }
}

TEST_CASE("refunding line items claws back the rules that matched them", "[policy][refund]") {
  auto p = make_program();
  auto beans = multiplier_rule(10, {2, 1});
  beans.skus = {"BEANS"};
  auto dairy = bonus_rule(11, 90);
  dairy.categories = {"dairy"};
  p.rules = {beans, dairy};
  basket b = purchase(1, 4000);
  b.lines = {{"BEANS", "coffee", 1, 2000}, {"MILK", "dairy", 1, 600}, {"CHEESE", "dairy", 1, 1400}};
  ledger::member_book book;
  auto earned = evaluate_earn(p, book, 0, b, {});
  REQUIRE(earned.code == errc::ok);
  REQUIRE(earned.lines.size() == 3);  // base 40, beans 20, dairy 90 over 2000

  // Returning the milk: base keeps floor(40 x 3400/4000) = 34, beans untouched,
  // dairy keeps floor(90 x 1400/2000) = 63.
  std::vector<line_item> milk = {{"MILK", "dairy", 1, 600}};
  auto d = refund_lines_by_items(p, earned.lines, {}, milk);
  REQUIRE(d.code == errc::ok);
  CHECK(d.lines[0].points == -6);
  CHECK(d.lines[1].points == 0);
  CHECK(d.lines[2].points == -27);
  CHECK(d.lines[2].matched_amount == -600);
  // Then the beans: the beans rule goes entirely.
  std::vector<line_item> beans_back = {{"BEANS", "coffee", 1, 2000}};
  d = refund_lines_by_items(p, earned.lines, milk, beans_back);
  CHECK(d.lines[1].points == -20);
  CHECK(d.lines[2].points == 0);
  CHECK(refund_lines_by_items(p, earned.lines, {}, {}).code == errc::invalid_amount);
  std::vector<line_item> too_much = {{"BEANS", "coffee", 1, 4001}};
  CHECK(refund_lines_by_items(p, earned.lines, {}, too_much).code == errc::invalid_amount);
  CHECK(refund_lines_by_items(p, std::span(earned.lines).subspan(1), {}, milk).code ==
        errc::invalid_argument);
}

TEST_CASE("refunding every item in pieces claws back exactly what was earned", "[policy][refund]") {
  auto p = make_program();
  auto beans = multiplier_rule(10, {7, 3});
  beans.skus = {"BEANS"};
  auto dairy = bonus_rule(11, 97);
  dairy.categories = {"dairy"};
  auto all = multiplier_rule(12, {11, 10});
  p.rules = {beans, dairy, all};
  std::mt19937_64 rng(7);
  ledger::member_book book;
  for (int round = 0; round < 200; ++round) {
    basket b = purchase(1, 0);
    const char* skus[] = {"BEANS", "MILK", "CHEESE", "BREAD", "BEANS"};
    const char* cats[] = {"coffee", "dairy", "dairy", "bakery", "coffee"};
    for (int i = 0; i < 5; ++i)
      b.lines.push_back({skus[i], cats[i], 1, std::uniform_int_distribution<std::int64_t>(1, 5000)(rng)});
    for (auto& l : b.lines)
      b.amount += l.amount;
    auto earned = evaluate_earn(p, book, 1, b, {});
    REQUIRE(earned.code == errc::ok);
    // Split each item into up to three refunds, in random order.
    std::vector<line_item> pieces;
    for (auto& l : b.lines) {
      std::int64_t left = l.amount;
      while (left > 0) {
        std::int64_t part = std::uniform_int_distribution<std::int64_t>(1, left)(rng);
        pieces.push_back({l.sku, l.category, 1, part});
        left -= part;
      }
    }
    std::shuffle(pieces.begin(), pieces.end(), rng);
    std::vector<line_item> before;
    std::vector<std::int64_t> kept;
    for (auto& l : earned.lines)
      kept.push_back(l.points);
    for (auto& piece : pieces) {
      std::vector<line_item> now = {piece};
      auto d = refund_lines_by_items(p, earned.lines, before, now);
      REQUIRE(d.code == errc::ok);
      for (std::size_t i = 0; i < kept.size(); ++i) {
        kept[i] += d.lines[i].points;
        REQUIRE(kept[i] >= 0);
        REQUIRE(kept[i] <= earned.lines[i].points);
      }
      before.push_back(piece);
    }
    for (auto k : kept)
      REQUIRE(k == 0);
  }
}

// -- coalition money (actors/coalition.hpp) ------------------------------------------

namespace {

program coalition_program() {
  program p;
  brand_def a;
  a.id = 1;
  a.code = "a";
  a.cost_per_point = {1, 3};  // a third of a minor unit
  brand_def b;
  b.id = 2;
  b.code = "b";
  b.cost_per_point = {2, 1};
  p.brands = {a, b};
  partner_def x;
  x.id = 9;
  x.code = "x";
  x.brand_id = 1;
  x.earn_cost = {5, 4};
  x.burn_reimbursement = {7, 10};
  p.partners = {x};
  return p;
}

ledger::lot_take take_of(std::uint32_t lot, std::uint32_t brand, std::int64_t points) {
  return ledger::lot_take{lot, brand, points, 0, 0};
}

std::int64_t sum_side(const ledger::op& op, ledger::account_unit unit, ledger::posting_side side) {
  std::int64_t s = 0;
  for (const auto& p : op.postings)
    if (ledger::unit_of(ledger::kind_of(p.account)) == unit && p.side == static_cast<std::uint32_t>(side))
      s += static_cast<std::int64_t>(p.amount);
  return s;
}

std::vector<ledger::entry_detail> settles(const ledger::op& op) {
  std::vector<ledger::entry_detail> v;
  for (const auto& d : op.details)
    if (d.kind == static_cast<std::uint16_t>(ledger::detail_kind::settle))
      v.push_back(d);
  return v;
}

} // namespace

TEST_CASE("a spend at another brand settles each issuer's points at its cost per point, floored once per issuer",
          "[policy][coalition]") {
  const auto prog = coalition_program();
  ledger::op op;
  std::string msg;
  // 10 + 2 points of brand a (two lots) and 5 of brand b, spent at b.
  std::vector<ledger::lot_take> takes{take_of(1, 1, 10), take_of(2, 2, 5), take_of(3, 1, 2)};
  REQUIRE(post_spend(op, prog, 42, takes, 0, spend_purpose::redeem, 2, msg) == errc::ok);
  auto s = settles(op);
  REQUIRE(s.size() == 1);
  CHECK(s[0].brand == 1);        // payer a
  CHECK(s[0].id == 2);           // payee b
  CHECK(s[0].a == 12);
  CHECK(s[0].b == 4);            // floor(12 / 3), not floor(10/3) + floor(2/3) = 3
  CHECK(op.postings.front().account == ledger::account_id(ledger::account_kind::member_points, 42));
  using ledger::account_unit, ledger::posting_side;
  CHECK(sum_side(op, account_unit::points, posting_side::debit) == 17);
  CHECK(sum_side(op, account_unit::points, posting_side::credit) == 17);
  CHECK(sum_side(op, account_unit::money, posting_side::debit) == 4);
  CHECK(sum_side(op, account_unit::money, posting_side::credit) == 4);
}

TEST_CASE("a settlement that rounds to zero writes no record and no money posting", "[policy][coalition]") {
  const auto prog = coalition_program();
  ledger::op op;
  std::string msg;
  std::vector<ledger::lot_take> takes{take_of(1, 1, 2)};  // 2/3 of a minor unit
  REQUIRE(post_spend(op, prog, 42, takes, 0, spend_purpose::redeem, 2, msg) == errc::ok);
  CHECK(settles(op).empty());
  CHECK(op.postings.size() == 2);
}

TEST_CASE("a burn at a partner makes every issuing brand pay the partner's reimbursement", "[policy][coalition]") {
  const auto prog = coalition_program();
  ledger::op op;
  std::string msg;
  std::vector<ledger::lot_take> takes{take_of(1, 1, 10), take_of(2, 2, 10)};
  REQUIRE(post_spend(op, prog, 42, takes, 0, spend_purpose::burn, 9, msg) == errc::ok);
  auto s = settles(op);
  REQUIRE(s.size() == 2);
  CHECK(s[0].b == 7);  // floor(10 x 7/10) each
  CHECK(s[1].b == 7);
  CHECK(ledger::settle_payee_kind(s[0].aux) == ledger::party_kind::partner);
  const auto payable = ledger::account_id(ledger::account_kind::partner_payable, 9);
  bool credited = false;
  for (const auto& p : op.postings)
    credited = credited || (p.account == payable && p.amount == 14);
  CHECK(credited);
}

TEST_CASE("a clawback takes the refunding brand's own points and debt back as issuance, another brand's as a sale",
          "[policy][coalition]") {
  const auto prog = coalition_program();
  ledger::op op;
  std::string msg;
  std::vector<ledger::lot_take> takes{take_of(1, 1, 6), take_of(2, 2, 4)};
  REQUIRE(post_spend(op, prog, 42, takes, 5, spend_purpose::clawback, 1, msg) == errc::ok);
  const auto issued_a = ledger::account_id(ledger::account_kind::brand_issued, 1);
  const auto redeemed_b = ledger::account_id(ledger::account_kind::brand_redeemed, 2);
  std::int64_t to_issued = 0, to_redeemed = 0;
  for (const auto& p : op.postings) {
    if (p.account == issued_a)
      to_issued += static_cast<std::int64_t>(p.amount);
    if (p.account == redeemed_b)
      to_redeemed += static_cast<std::int64_t>(p.amount);
  }
  CHECK(to_issued == 11);  // 6 own + 5 debt
  CHECK(to_redeemed == 4);
  auto s = settles(op);
  REQUIRE(s.size() == 1);
  CHECK(s[0].brand == 2);
  CHECK(s[0].b == 8);  // 4 x 2
}

TEST_CASE("a spend over more issuing brands than an entry can post is refused and leaves the op unchanged",
          "[policy][coalition]") {
  program prog;
  std::vector<ledger::lot_take> takes;
  for (std::uint32_t b = 1; b <= ledger::spend_brands_max + 1; ++b) {
    brand_def d;
    d.id = b;
    d.cost_per_point = {1, 1};
    prog.brands.push_back(d);
    takes.push_back(take_of(b, b, 1));
  }
  ledger::op op;
  std::string msg;
  CHECK(post_spend(op, prog, 42, takes, 0, spend_purpose::redeem, 1, msg) == errc::invalid_argument);
  CHECK(op.postings.empty());
  CHECK(op.details.empty());
  CHECK(issuer_count(takes) > ledger::spend_brands_max);
  takes.pop_back();
  CHECK(post_spend(op, prog, 42, takes, 0, spend_purpose::redeem, 1, msg) == errc::ok);
}

TEST_CASE("a settlement amount outside int64 is amount_overflow, not a wrapped number", "[policy][coalition]") {
  auto prog = coalition_program();
  prog.brands[0].cost_per_point = {1'000'000'000, 1};
  ledger::op op;
  std::string msg;
  std::vector<ledger::lot_take> takes{take_of(1, 1, INT64_MAX / 2)};
  CHECK(post_spend(op, prog, 42, takes, 0, spend_purpose::redeem, 2, msg) == errc::amount_overflow);
  CHECK(op.postings.empty());
}

TEST_CASE("undoing settle records mirrors their postings and flags each record as a reversal", "[policy][coalition]") {
  const auto prog = coalition_program();
  ledger::op spend, undo;
  std::string msg;
  std::vector<ledger::lot_take> takes{take_of(1, 1, 30), take_of(2, 2, 3)};
  REQUIRE(post_spend(spend, prog, 42, takes, 0, spend_purpose::burn, 9, msg) == errc::ok);
  REQUIRE(post_settle_reversal(undo, spend.details) == errc::ok);
  auto before = settles(spend), after = settles(undo);
  REQUIRE(after.size() == before.size());
  for (std::size_t i = 0; i < after.size(); ++i) {
    CHECK((after[i].flags & ledger::detail_reversal) != 0);
    CHECK(after[i].b == before[i].b);
  }
  // Every money account moves back by what it moved.
  for (const auto& p : spend.postings) {
    if (ledger::unit_of(ledger::kind_of(p.account)) != ledger::account_unit::money)
      continue;
    bool mirrored = false;
    for (const auto& q : undo.postings)
      mirrored = mirrored || (q.account == p.account && q.amount == p.amount && q.side != p.side);
    CHECK(mirrored);
  }
}

TEST_CASE("a partner earn makes the partner owe its brand floor(points x earn_cost)", "[policy][coalition]") {
  const auto prog = coalition_program();
  ledger::op op;
  REQUIRE(post_partner_earn(op, prog.partners[0], 7) == errc::ok);  // 8.75
  auto s = settles(op);
  REQUIRE(s.size() == 1);
  CHECK(s[0].b == 8);
  CHECK(ledger::settle_payer_kind(s[0].aux) == ledger::party_kind::partner);
  CHECK(s[0].id == 1);  // the partner's brand
  CHECK(partner_admission(prog, 9) == errc::ok);
  CHECK(partner_admission(prog, 10) == errc::unknown_partner);
  auto suspended = prog;
  suspended.partners[0].status = partner_status::suspended;
  CHECK(partner_admission(suspended, 9) == errc::partner_suspended);
}
