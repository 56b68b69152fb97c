// KPI reports over real TCP: a two-brand scenario over 375 days (earns, a
// refund, redemptions at the home brand and across brands, a reversal, a
// transfer, an expiry sweep, tier changes, members idle for months and one
// who only enrolled) whose every figure was worked out by hand below; the
// same figures reconcile with activity, liability and settlement statements
// and verify holds; a period in the past gives the figures as of then; and
// every refusal. loyaltyctl's CSV and JSON come from the same answer.
#include "coalition_brands.hpp"
#include "engine_rig.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace loyalty;
using namespace loyalty::io;

namespace {

using test::acme_key;  // brand:acme
using test::day_us;
using test::redeem_at;
using test::t0;

// The two brands (1 point per 100 cents; an acme point is worth half a
// cent, a globex point a cent), tier multipliers of 1 (so an earn gives
// exactly amount / 100), 10 welcome points of the home brand for every
// enrollment, and lots that expire 365 days after they were earned.
const std::string program_toml = std::string(R"(
[program]
name = "reports"
currency = "EUR"
)") + test::two_brands_toml + R"(
[[tiers]]
name = "blue"
threshold = 0
multiplier = { num = 1, den = 1 }

[[tiers]]
name = "silver"
threshold = 500
multiplier = { num = 1, den = 1 }

[[tiers]]
name = "gold"
threshold = 2000
multiplier = { num = 1, den = 1 }

[[rules]]
id = 1
code = "welcome"
trigger = "enroll"
bonus_points = 10

[lifecycle]
expiry_days = 365
)";

struct report_rig : test::engine_rig {
  report_rig()
      : test::engine_rig("report", program_toml, t0, [](io::engine_options& o) {
          o.settings.keys = {test::make_key(1, "test-admin", test::admin_key, key_scope::admin),
                             test::make_key(2, "acme-pos", acme_key, key_scope::brand, "acme"),
                             test::make_key(3, "auditor", test::read_key, key_scope::read)};
        }) {}
};

using test::ok;

const report_row& row_of(const report_result& rep, const std::string& brand) { return test::row_of(rep.brands, brand); }

std::uint64_t tier_members(const report_row& row, const std::string& tier) {
  for (const auto& t : row.tiers)
    if (t.tier == tier)
      return t.members;
  FAIL("no tier " << tier << " in the row of " << row.brand);
  return 0;
}

// The scenario. Members 1 and 2 are acme's, 3 and 4 globex's; member 5
// (acme) enrolls on day 375 and does nothing else.
//
// day 0    enrollments: 10 welcome points each (acme 20, globex 20)
//          m1 earns 300 acme (a1); m4 earns 100 globex (g4)
// day 300  m2 earns 600 acme (a2): silver; m3 earns 2500 globex (g3): gold
//          m2's purchase is refunded by 100 of 600 (f2): 100 clawed back
//          m3 redeems 400 at globex (r3) and the redemption is reversed (v3)
//          m2 spends 200 acme points at globex (r2): acme owes globex 100
//          m3 transfers 100 to m4 (t3): its welcome 10 and 90 of g3
// day 370  the expiry sweep: m1's 310 acme (welcome, a1), m4's 120 globex
//          (welcome, g4, the 10 welcome points it received) expire
// day 375  m5 enrolls at acme: 10 welcome points
void play(report_rig& g) {
  for (auto [m, brand] : {std::pair{1, "acme"}, {2, "acme"}, {3, "globex"}, {4, "globex"}})
    REQUIRE(ok(g.c->enroll(static_cast<std::uint64_t>(m), brand)).points == 10);
  CHECK(ok(g.c->earn("a1", 1, "acme", 30000, "EUR", t0)).points == 300);
  CHECK(ok(g.c->earn("g4", 4, "globex", 10000, "EUR", t0)).points == 100);

  const auto d300 = t0 + 300 * day_us;
  g.clock.set(d300);
  CHECK(ok(g.c->earn("a2", 2, "acme", 60000, "EUR", d300)).tier == "silver");
  CHECK(ok(g.c->earn("g3", 3, "globex", 250000, "EUR", d300)).tier == "gold");
  CHECK(ok(g.c->refund("f2", 2, "a2", 10000)).points == 100);
  CHECK(ok(g.c->call(redeem_at("r3", 3, 400, "globex"))).balance == 2110);
  CHECK(ok(g.c->reverse_redemption("v3", 3, "r3")).balance == 2510);
  auto r2 = ok(g.c->call(redeem_at("r2", 2, 200, "globex")));
  CHECK(r2.balance == 310);
  REQUIRE(r2.settlements.size() == 1);
  CHECK(r2.settlements[0].amount == 100);
  CHECK(ok(g.c->transfer("t3", 3, 4, 100)).balance == 2410);

  g.clock.set(t0 + 370 * day_us);
  CHECK(ok(g.admin->expire_all()).expired == 430);

  g.clock.set(t0 + 375 * day_us);
  REQUIRE(ok(g.c->enroll(5, "acme")).points == 10);
  g.clock.set(t0 + 380 * day_us);

  // The engine's own view agrees with the hand-worked balances and tiers.
  const std::vector<std::tuple<std::uint64_t, std::int64_t, const char*>> members{
    {1, 0, "blue"}, {2, 310, "silver"}, {3, 2410, "gold"}, {4, 90, "blue"}, {5, 10, "blue"}};
  for (const auto& [m, balance, tier] : members) {
    auto b = ok(g.c->balance(m));
    INFO("member " << m);
    CHECK(b.balance == balance);
    CHECK(b.tier == tier);
  }
}

// Every figure of a report row and an activity answer of the same brand and
// period are the same numbers.
void check_reconciles(const report_row& row, const activity_result& a) {
  CHECK(row.issued == a.issued);
  CHECK(row.refunded == a.refunded);
  CHECK(row.redeemed == a.redeemed);
  CHECK(row.reversed == a.reversed);
  CHECK(row.expired == a.expired);
  CHECK(row.opening_outstanding == a.opening_outstanding);
  CHECK(row.closing_outstanding == a.closing_outstanding);
  CHECK(row.closing_liability == a.closing_liability);
  CHECK(row.settlement == a.settlement);
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

} // namespace

TEST_CASE("a report gives each brand's figures members tiers and top earners as worked out by hand",
          "[report]") {
  report_rig g;
  play(g);
  const auto to = t0 + 380 * day_us;
  auto res = ok(g.c->report("", 0, to));
  const auto& rep = res.report;
  CHECK(rep.from_us == 0);
  CHECK(rep.to_us == to);
  CHECK(rep.first_seq == 1);
  CHECK(rep.last_seq == g.eng->ledger().last_seq());
  CHECK(rep.active_days == 90);
  CHECK(rep.active_from_us == to - 90 * day_us);
  REQUIRE(rep.brands.size() == 2);
  CHECK(rep.brands[0].brand == "acme");  // the program's order
  CHECK(rep.brands[1].brand == "globex");

  const auto& acme = row_of(rep, "acme");
  CHECK(acme.issued == 930);  // welcome 10 + 10 + 10, a1 300, a2 600
  CHECK(acme.refunded == 100);
  CHECK(acme.redeemed == 200);  // r2, spent at globex: still acme's points
  CHECK(acme.reversed == 0);
  CHECK(acme.expired == 310);
  CHECK(acme.opening_outstanding == 0);
  CHECK(acme.closing_outstanding == 320);  // m2 310 + m5 10
  CHECK(acme.cost_per_point == "1/2");
  CHECK(acme.closing_liability == 160);
  CHECK(acme.settlement == -100);  // acme owes globex for r2
  CHECK(acme.settlement_closing == -100);
  CHECK(acme.redemption_rate == "200/930");
  CHECK(acme.redemption_rate_bp == 2150);  // floor(2,000,000 / 930)
  CHECK(acme.members == 3);
  CHECK(acme.active_members == 1);  // m2; m1 idle since day 0, m5 only enrolled (its welcome bonus is not activity)
  CHECK(acme.active_rate_bp == 3333);
  REQUIRE(acme.tiers.size() == 3);
  CHECK(acme.tiers[0].tier == "blue");
  CHECK(acme.tiers[0].members == 2);  // m1 (300 qualifying), m5
  CHECK(acme.tiers[1].tier == "silver");
  CHECK(acme.tiers[1].members == 1);  // m2 (600, 500 after the refund)
  CHECK(acme.tiers[2].tier == "gold");
  CHECK(acme.tiers[2].members == 0);
  REQUIRE(acme.top.size() == 3);
  CHECK(acme.top[0].member == 2);
  CHECK(acme.top[0].points == 510);  // welcome 10 + a2 600 - 100 clawed back
  CHECK(acme.top[1].member == 1);
  CHECK(acme.top[1].points == 310);
  CHECK(acme.top[2].member == 5);
  CHECK(acme.top[2].points == 10);

  const auto& globex = row_of(rep, "globex");
  CHECK(globex.issued == 2620);  // welcome 10 + 10, g4 100, g3 2500
  CHECK(globex.refunded == 0);
  CHECK(globex.redeemed == 400);  // r3 (r2 spent acme's points here)
  CHECK(globex.reversed == 400);  // v3
  CHECK(globex.expired == 120);
  CHECK(globex.closing_outstanding == 2500);  // m3 2410 + m4 90
  CHECK(globex.closing_liability == 2500);
  CHECK(globex.settlement == 100);
  CHECK(globex.settlement_closing == 100);
  CHECK(globex.redemption_rate == "400/2620");
  CHECK(globex.redemption_rate_bp == 1526);  // floor(4,000,000 / 2620)
  CHECK(globex.members == 2);
  CHECK(globex.active_members == 1);  // m3; m4 only received a transfer in the window
  CHECK(globex.active_rate_bp == 5000);
  CHECK(tier_members(globex, "blue") == 1);
  CHECK(tier_members(globex, "silver") == 0);
  CHECK(tier_members(globex, "gold") == 1);
  REQUIRE(globex.top.size() == 2);
  CHECK(globex.top[0].member == 3);
  CHECK(globex.top[0].points == 2510);
  CHECK(globex.top[1].member == 4);
  CHECK(globex.top[1].points == 110);

  // One brand alone, fewer earners, a longer window: day 0 is in a
  // 400-day window, so m1 and m4 count as active; m5 still does not.
  auto one = ok(g.c->report("globex", 0, to, 400, 1)).report;
  REQUIRE(one.brands.size() == 1);
  CHECK(one.brands[0].active_members == 2);
  CHECK(one.brands[0].active_rate_bp == 10000);
  REQUIRE(one.brands[0].top.size() == 1);
  CHECK(one.brands[0].top[0].member == 3);
  CHECK(one.active_from_us == to - 400 * day_us);
  CHECK(row_of(ok(g.c->report("acme", 0, to, 400)).report, "acme").active_members == 2);
  g.check_verify();
}

TEST_CASE("report figures reconcile with activity liability and settlement statements to the unit", "[report]") {
  report_rig g;
  play(g);
  // Up to now (to_us 0): the period ends with the newest entry, as activity's does.
  auto rep = ok(g.c->report()).report;
  auto liability = ok(g.c->liability()).liabilities;
  REQUIRE(liability.size() == 2);
  for (const auto& l : liability) {
    INFO(l.brand);
    const auto& row = row_of(rep, l.brand);
    request a;
    a.op = opcode::activity;
    a.brand = l.brand;
    auto act = ok(g.c->call(a)).activity;
    CHECK(act.to_us == rep.to_us);
    CHECK(act.last_seq == rep.last_seq);
    check_reconciles(row, act);
    // Now, the closing figures are the accounts' balances.
    CHECK(row.closing_outstanding == l.outstanding);
    CHECK(row.closing_liability == l.liability);
    CHECK(row.cost_per_point == l.cost_per_point);
    CHECK(row.settlement_closing == l.settlement);
    CHECK(row.issued - row.refunded == l.issued);
    CHECK(row.redeemed - row.reversed == l.redeemed);
    CHECK(row.expired == l.expired);
    // The brand's statement over the same period: its net and closing.
    auto st = ok(g.c->settlement_of_brand(l.brand, rep.from_us, rep.to_us)).statement;
    CHECK(row.settlement == st.net);
    CHECK(row.settlement_closing == st.closing);
    // Outstanding moves by exactly the period's figures.
    CHECK(row.closing_outstanding - row.opening_outstanding ==
          row.issued - row.refunded - row.redeemed + row.reversed - row.expired);
    // Tiers cover every member; the top earners net of refunds add up to
    // what the brand issued net of clawbacks (no adjustments here).
    std::uint64_t in_tiers = 0;
    for (const auto& t : row.tiers)
      in_tiers += t.members;
    CHECK(in_tiers == row.members);
    std::int64_t earned = 0;
    for (const auto& e : row.top)
      earned += e.points;
    CHECK(earned == row.issued - row.refunded);
  }
  // A period of one day, against activity and the statements of the same day.
  const auto from = t0 + 300 * day_us, to = from + day_us;
  auto day = ok(g.c->report("", from, to)).report;
  for (const auto& row : day.brands) {
    INFO(row.brand);
    request a;
    a.op = opcode::activity;
    a.brand = row.brand;
    a.from_us = from;
    a.to_us = to;
    auto act = ok(g.c->call(a)).activity;
    CHECK(act.first_seq == day.first_seq);
    CHECK(act.last_seq == day.last_seq);
    check_reconciles(row, act);
    auto st = ok(g.c->settlement_of_brand(row.brand, from, to)).statement;
    CHECK(row.settlement == st.net);
    CHECK(row.settlement_closing == st.closing);
  }
  g.check_verify();
}

TEST_CASE("a report of a period in the past gives the figures as of that time", "[report]") {
  report_rig g;
  play(g);
  // Day 300 alone: the activity of that day; members, tiers and activity
  // as of its end (m5 not enrolled yet, nothing expired yet).
  const auto from = t0 + 300 * day_us, to = from + day_us;
  auto rep = ok(g.c->report("", from, to)).report;
  CHECK(rep.active_from_us == to - 90 * day_us);
  const auto& acme = row_of(rep, "acme");
  CHECK(acme.issued == 600);
  CHECK(acme.refunded == 100);
  CHECK(acme.redeemed == 200);
  CHECK(acme.expired == 0);
  CHECK(acme.opening_outstanding == 320);  // day 0: welcome 10 + 10, a1 300
  CHECK(acme.closing_outstanding == 620);  // m1 310 + m2 310
  CHECK(acme.closing_liability == 310);
  CHECK(acme.settlement == -100);
  CHECK(acme.redemption_rate_bp == 3333);
  CHECK(acme.members == 2);
  CHECK(acme.active_members == 1);
  CHECK(acme.active_rate_bp == 5000);
  CHECK(tier_members(acme, "blue") == 1);
  CHECK(tier_members(acme, "silver") == 1);
  REQUIRE(acme.top.size() == 1);  // only a2 (net 500) earned that day
  CHECK(acme.top[0].member == 2);
  CHECK(acme.top[0].points == 500);
  const auto& globex = row_of(rep, "globex");
  CHECK(globex.issued == 2500);
  CHECK(globex.redeemed == 400);
  CHECK(globex.reversed == 400);
  CHECK(globex.opening_outstanding == 120);
  CHECK(globex.closing_outstanding == 2620);  // m3 2410 + m4 210
  CHECK(globex.members == 2);
  CHECK(globex.active_members == 1);
  CHECK(tier_members(globex, "gold") == 1);
  CHECK(tier_members(globex, "blue") == 1);
  // Before day 300: everyone as on day 0, nobody active in the 90 days
  // before, m3 still blue.
  auto before = ok(g.c->report("", 0, from)).report;
  for (const auto& row : before.brands) {
    INFO(row.brand);
    CHECK(row.members == 2);
    CHECK(row.active_members == 0);
    CHECK(row.active_rate_bp == 0);
    CHECK(tier_members(row, "blue") == 2);
    CHECK(row.expired == 0);
  }
  CHECK(row_of(before, "acme").closing_outstanding == 320);
  CHECK(row_of(before, "globex").closing_outstanding == 120);
  // A period before the first entry: nothing at all, and no division by 0.
  auto empty = ok(g.c->report("acme", 1, t0)).report;
  REQUIRE(empty.brands.size() == 1);
  CHECK(empty.last_seq < empty.first_seq);
  CHECK(empty.brands[0].members == 0);
  CHECK(empty.brands[0].issued == 0);
  CHECK(empty.brands[0].redemption_rate == "0/0");
  CHECK(empty.brands[0].redemption_rate_bp == 0);
  CHECK(empty.brands[0].active_rate_bp == 0);
  CHECK(empty.brands[0].top.empty());
  // The same report after a restart (balances rebuilt, heads from the
  // table): the same numbers.
  g.restart();
  auto again = ok(g.c->report("", from, to)).report;
  CHECK(row_of(again, "acme").active_members == 1);
  CHECK(row_of(again, "acme").closing_outstanding == 620);
  CHECK(row_of(again, "globex").closing_outstanding == 2620);
  CHECK(tier_members(row_of(again, "globex"), "gold") == 1);
  // m4 earns again on day 380: its head is now newer than the accounts
  // table, the others' are in it. m4 becomes active; the past is unchanged.
  CHECK(ok(g.c->earn("g4b", 4, "globex", 5000, "EUR", t0 + 380 * day_us)).points == 50);
  auto now = ok(g.c->report("globex")).report;
  CHECK(now.brands[0].active_members == 2);
  CHECK(now.brands[0].closing_outstanding == 2550);
  CHECK(tier_members(now.brands[0], "blue") == 1);
  CHECK(tier_members(now.brands[0], "gold") == 1);
  CHECK(row_of(ok(g.c->report("", from, to)).report, "globex").active_members == 1);
  g.check_verify();
}

TEST_CASE("a report is refused for an unknown brand a bad period or bounds and another brand's key", "[report]") {
  report_rig g;
  play(g);
  const auto before = g.eng->ledger().last_seq();
  CHECK(g.c->report("nobody").code == errc::unknown_brand);
  CHECK(g.c->report("", t0 + day_us, t0).code == errc::invalid_argument);
  CHECK(g.c->report("", t0, t0).code == errc::invalid_argument);
  CHECK(g.c->report("", 0, 0, 0, report_top_max + 1).code == errc::invalid_argument);
  CHECK(g.c->report("", 0, 0, report_active_days_max + 1).code == errc::invalid_argument);
  CHECK(g.c->report("", 0, 0, 0, report_top_max).ok());
  CHECK(g.c->report("", 0, 0, report_active_days_max).ok());
  // A brand key reads its own brand only, and gets only it without one.
  auto acme = g.connect(acme_key);
  CHECK(acme->report("globex").code == errc::not_authorized);
  auto own = ok(acme->report());
  REQUIRE(own.report.brands.size() == 1);
  CHECK(own.report.brands[0].brand == "acme");
  CHECK(own.report.brands[0].members == 3);
  // A read key reads every brand.
  CHECK(ok(g.connect(test::read_key)->report()).report.brands.size() == 2);
  // Never in a batch.
  request batch;
  batch.op = opcode::batch;
  request inner;
  inner.op = opcode::report;
  inner.id = 1;
  batch.ops.push_back(inner);
  auto br = g.c->call(batch);
  REQUIRE(br.results.size() == 1);
  CHECK(br.results[0].code == errc::invalid_argument);
  CHECK(g.eng->ledger().last_seq() == before);  // a report posts nothing
  g.check_verify();
}

TEST_CASE("loyaltyctl report prints a CSV table per section and the JSON object", "[report]") {
  report_rig g;
  play(g);
  const auto from = t0 + 300 * day_us, to = from + day_us;
  const auto rep = ok(g.c->report("", from, to)).report;
  const auto out = g.dir.path / "report.out";
  auto run = [&](const std::string& args) {
    const std::string cmd = std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(g.eng->port()) + " --key " +
                            test::admin_key + " report --from " + std::to_string(from) + " --to " +
                            std::to_string(to) + " " + args + " > " + out.string() + " 2>&1";
    const int rc = std::system(cmd.c_str());
    INFO(cmd << "\n" << read_file(out));
    REQUIRE(WEXITSTATUS(rc) == 0);
    return read_file(out);
  };
  std::istringstream brands(run(""));
  std::string header, acme_line, globex_line, extra;
  std::getline(brands, header);
  std::getline(brands, acme_line);
  std::getline(brands, globex_line);
  CHECK(header ==
        "brand,from_us,to_us,first_seq,last_seq,issued,refunded,redeemed,reversed,expired,opening_outstanding,"
        "closing_outstanding,cost_per_point_num,cost_per_point_den,closing_liability,settlement,settlement_closing,"
        "redemption_rate_bp,members,active_members,active_rate_bp,active_days,active_from_us");
  const std::string period = std::to_string(from) + "," + std::to_string(to) + "," + std::to_string(rep.first_seq) +
                             "," + std::to_string(rep.last_seq);
  CHECK(acme_line == "acme," + period + ",600,100,200,0,0,320,620,1,2,310,-100,-100,3333,2,1,5000,90," +
                       std::to_string(to - 90 * day_us));
  CHECK(globex_line.rfind("globex," + period + ",2500,0,400,400,0,120,2620,1,1,2620,100,100,1600,2,1,5000,90,", 0) ==
        0);
  CHECK_FALSE(std::getline(brands, extra));

  std::istringstream tiers(run("--section tiers"));
  std::getline(tiers, header);
  CHECK(header == "brand,tier,members");
  std::getline(tiers, acme_line);
  CHECK(acme_line == "acme,blue,1");
  std::istringstream top(run("--section top --top 1"));
  std::getline(top, header);
  CHECK(header == "brand,rank,member,points");
  std::getline(top, acme_line);
  CHECK(acme_line == "acme,1,2,500");
  std::getline(top, globex_line);
  CHECK(globex_line == "globex,1,3,2500");

  const auto json = run("--brand acme --format json");
  CHECK(json.find("\"op\":\"report\",\"ok\":true,\"report\":{\"from_us\":" + std::to_string(from)) != std::string::npos);
  CHECK(json.find("\"brand\":\"acme\",\"issued\":600,\"refunded\":100,") != std::string::npos);
  CHECK(json.find("\"tiers\":[{\"tier\":\"blue\",\"members\":1},{\"tier\":\"silver\",\"members\":1},"
                  "{\"tier\":\"gold\",\"members\":0}],\"top\":[{\"member\":2,\"points\":500}]") != std::string::npos);
  CHECK(json.find("globex") == std::string::npos);
  // A refusal is an error on stderr and exit status 1.
  const std::string bad = std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(g.eng->port()) + " --key " +
                          acme_key + " report --brand globex > " + out.string() + " 2>&1";
  const int rc = std::system(bad.c_str());
  CHECK(WEXITSTATUS(rc) == 1);
  CHECK(read_file(out).find("not_authorized") != std::string::npos);
}
