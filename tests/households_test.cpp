// Households (issue 19 item 1): members who pool their points. The journeys
// run over real TCP against a real engine (LMDB in a temporary directory,
// CAF actors, the Asio server, loyaltyctl as an operator runs it), with an
// injected clock the tests move; the spend plan and the program's
// [households] table are checked directly.
#include "actors/household.hpp"
#include "command.hpp"
#include "engine_rig.hpp"
#include "io/client/client.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <string>
#include <thread>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z
constexpr std::uint64_t day = 86'400'000'000ull;

// 1 point per 1.00 EUR; points live 30 days.
std::string program_toml(const std::string& spend, const std::string& on_leave, bool households = true) {
  std::string t = R"(
[program]
name = "households"
currency = "EUR"
minor_units = 2

[[brands]]
id = 1
code = "shop"
name = "Shop"
earn_rate = { num = 1, den = 100 }
cost_per_point = { num = 1, den = 1 }

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }

[[tiers]]
name = "silver"
threshold = 1000
multiplier = { num = 1, den = 1 }

[lifecycle]
expiry_days = 30
)";
  if (households)
    t += "\n[households]\nmax_members = 3\nspend = \"" + spend + "\"\non_leave = \"" + on_leave + "\"\n";
  return t;
}

struct rig : test::engine_rig {
  explicit rig(const std::string& spend = "own_first", const std::string& on_leave = "nothing", bool households = true,
               std::function<void(io::engine_options&)> tweak = {})
    : engine_rig("households", program_toml(spend, on_leave, households), t0, std::move(tweak)) {}

  void enroll(std::uint64_t m) { REQUIRE(c->enroll(m, "shop").ok()); }
  // `points` points for member m (a purchase of as many euros).
  void earn(std::uint64_t m, std::int64_t points) {
    auto r = c->earn("earn-" + std::to_string(m) + "-" + std::to_string(++earns), m, "shop", points * 100, "EUR", 0);
    REQUIRE(r.ok());
    REQUIRE(r.points == points);
  }
  void join(std::uint64_t m, std::uint64_t h) {
    auto r = c->household_join("join-" + std::to_string(m) + "-" + std::to_string(++joins), m, h);
    INFO(r.message);
    REQUIRE(r.ok());
    CHECK(r.household == h);
  }
  std::int64_t balance(std::uint64_t m) {
    auto r = c->balance(m);
    REQUIRE(r.ok());
    return r.balance;
  }
  // The liability report's points outstanding equal the members' balances.
  void check_outstanding(std::initializer_list<std::uint64_t> members) {
    std::int64_t sum = 0;
    for (auto m : members)
      sum += balance(m);
    auto l = c->liability("shop");
    REQUIRE(l.ok());
    REQUIRE(l.liabilities.size() == 1);
    CHECK(l.liabilities[0].outstanding == sum);
  }
  // Members 1 (40 points) and 2 (70 points) in household 5.
  void two_in_household_5() {
    for (std::uint64_t m : {1, 2})
      enroll(m);
    earn(1, 40);
    earn(2, 70);
    join(1, 5);
    join(2, 5);
  }
  int earns = 0, joins = 0;
};

std::string loyaltyctl(const test::engine_rig& g, const std::string& args, int& status) {
  return test::run_command(std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(g.eng->port()) + " --key " +
                             test::admin_key + " " + args + " 2>&1",
                           status);
}

} // namespace

TEST_CASE("a family of three pools points and two tills try to spend the last 100 at once", "[households][journeys]") {
  rig g;
  for (std::uint64_t m : {1, 2, 3})
    g.enroll(m);
  g.earn(1, 150);
  g.earn(2, 60);
  g.earn(3, 50);
  for (std::uint64_t m : {1, 2, 3})
    g.join(m, 7);
  auto b = g.c->balance(2);
  REQUIRE(b.ok());
  CHECK(b.household == 7);
  CHECK(b.household_available == 260);
  CHECK(b.available == 60);  // its own points stay its own

  // The parent spends 150 of their own; 110 are left in the household.
  auto r = g.c->redeem("till-0", 1, 150);
  REQUIRE(r.ok());
  CHECK(g.c->household(7).household_available == 110);

  // Two tills, two children, 100 points each, at the same moment: neither
  // holds 100 alone, the household holds 110.
  auto till2 = g.connect(test::admin_key);
  response a, c;
  std::atomic<int> ready{0};
  std::thread t1([&] {
    ready.fetch_add(1);
    while (ready.load() < 2) {}
    a = g.admin->redeem("till-1", 2, 100);
  });
  std::thread t2([&] {
    ready.fetch_add(1);
    while (ready.load() < 2) {}
    c = till2->redeem("till-2", 3, 100);
  });
  t1.join();
  t2.join();
  INFO(a.message << " / " << c.message);
  CHECK(a.ok() != c.ok());  // exactly one
  const auto& refused = a.ok() ? c : a;
  CHECK(refused.code == errc::insufficient_points);
  const auto& spent = a.ok() ? a : c;
  CHECK(spent.points == 100);
  auto h = g.c->household(7);
  REQUIRE(h.ok());
  CHECK(h.household_available == 10);
  REQUIRE(h.household_members.size() == 3);
  std::int64_t sum = 0;
  for (const auto& m : h.household_members)
    sum += m.available;
  CHECK(sum == 10);
  CHECK(g.balance(1) + g.balance(2) + g.balance(3) == 10);
  // The refused till retries with its txn id: still refused, nothing more moved.
  auto again = (a.ok() ? till2->redeem("till-2", 3, 100) : g.admin->redeem("till-1", 2, 100));
  CHECK(again.code == errc::insufficient_points);
  // The winner's retry is a replay.
  auto replay = (a.ok() ? g.admin->redeem("till-1", 2, 100) : till2->redeem("till-2", 3, 100));
  CHECK(replay.ok());
  CHECK(replay.replayed);
  CHECK(g.c->household(7).household_available == 10);
  g.check_outstanding({1, 2, 3});
  g.check_verify();
}

TEST_CASE("a member who leaves under on_leave nothing leaves its points with the household", "[households][journeys]") {
  rig g("pooled", "nothing");
  g.two_in_household_5();
  auto r = g.c->household_leave("leave-2", 2);
  INFO(r.message);
  REQUIRE(r.ok());
  CHECK(r.household == 5);
  CHECK(g.balance(2) == 0);
  CHECK(g.balance(1) == 110);
  auto b = g.c->balance(2);
  CHECK(b.household == 0);
  CHECK(g.c->household_leave("leave-2b", 2).code == errc::not_in_household);
  auto h = g.c->household(5);
  REQUIRE(h.ok());
  REQUIRE(h.household_members.size() == 1);
  CHECK(h.household_members[0].member == 1);
  CHECK(h.household_available == 110);
  // The last member leaves: nobody to leave the points with, it keeps them.
  REQUIRE(g.c->household_leave("leave-1", 1).ok());
  CHECK(g.balance(1) == 110);
  CHECK(g.c->household(5).code == errc::unknown_household);
  g.check_outstanding({1, 2});
  g.check_verify();
}

TEST_CASE("a member who leaves under on_leave own_points keeps what is in its own account", "[households][journeys]") {
  rig g("pooled", "own_points");
  g.two_in_household_5();
  REQUIRE(g.c->household_leave("leave-2", 2).ok());
  CHECK(g.balance(2) == 70);
  CHECK(g.balance(1) == 40);
  CHECK(g.c->household(5).household_available == 40);
  // Out of the household, it spends its own points only.
  CHECK(g.c->redeem("r-1", 1, 50).code == errc::insufficient_points);
  CHECK(g.c->redeem("r-2", 2, 70).ok());
  g.check_outstanding({1, 2});
  g.check_verify();
}

TEST_CASE("a full household refuses a join, a member joins one household only, and dissolve empties it",
          "[households][journeys]") {
  rig g;
  for (std::uint64_t m : {1, 2, 3, 4})
    g.enroll(m);
  for (std::uint64_t m : {1, 2, 3})
    g.join(m, 9);
  CHECK(g.c->household_join("j-4", 4, 9).code == errc::household_full);
  CHECK(g.c->household_join("j-1b", 1, 10).code == errc::already_in_household);
  CHECK(g.c->household_join("j-99", 99, 10).code == errc::unknown_member);
  CHECK(g.c->household_leave("l-4", 4).code == errc::not_in_household);
  CHECK(g.c->household(10).code == errc::unknown_household);
  CHECK(g.c->household_dissolve("d-10", 10).code == errc::unknown_household);
  // Bad input is refused before anything is looked at.
  request bad;
  bad.op = opcode::household_join;
  bad.txn = "j-bad";
  bad.member = 4;
  CHECK(g.c->call(bad).code == errc::invalid_argument);  // household 0
  // A brand key may not dissolve (members of other brands may be in it).
  CHECK(g.connect(test::shop_key)->household_dissolve("d-shop", 9).code == errc::not_authorized);

  auto d = g.c->household_dissolve("d-9", 9);
  INFO(d.message);
  REQUIRE(d.ok());
  CHECK(d.household == 9);
  CHECK(g.c->household(9).code == errc::unknown_household);
  CHECK(g.c->household_dissolve("d-9", 9).replayed);
  for (std::uint64_t m : {1, 2, 3})
    CHECK(g.c->balance(m).household == 0);
  g.join(4, 9);  // the id can be used again
  g.check_verify();
}

TEST_CASE("a join replayed with the same txn id is answered as the first time and posts nothing",
          "[households][journeys]") {
  rig g;
  g.enroll(1);
  auto first = g.c->household_join("join-once", 1, 3);
  REQUIRE(first.ok());
  CHECK_FALSE(first.replayed);
  auto again = g.c->household_join("join-once", 1, 3);
  REQUIRE(again.ok());
  CHECK(again.replayed);
  CHECK(again.seq == first.seq);
  CHECK(again.household == 3);
  CHECK(g.c->household_join("join-once", 1, 4).code == errc::txn_id_conflict);
  auto h = g.c->history(1);
  std::size_t joins = 0;
  for (const auto& e : h.entries)
    joins += e.kind == "household_join" ? 1 : 0;
  CHECK(joins == 1);
  g.check_verify();
}

TEST_CASE("points pooled from another member keep their expiry and expire on their own day", "[households][journeys]") {
  rig g("pooled", "nothing");
  g.enroll(1);
  g.enroll(2);
  g.earn(2, 100);  // expires t0 + 30 days
  g.clock.advance(10 * day);
  g.earn(1, 10);  // expires t0 + 40 days
  g.join(1, 4);
  g.join(2, 4);
  // Pooled: the household's soonest-expiring points go first, though they are member 2's.
  auto r = g.c->redeem("spend-50", 1, 50);
  INFO(r.message);
  REQUIRE(r.ok());
  CHECK(g.balance(1) == 10);
  CHECK(g.balance(2) == 50);
  // Member 2 leaves: its 50 points stay with member 1, still expiring at t0 + 30 days.
  REQUIRE(g.c->household_leave("leave-2", 2).ok());
  CHECK(g.balance(1) == 60);
  g.clock.set(t0 + 29 * day);
  auto none = g.admin->expire(1);
  REQUIRE(none.ok());
  CHECK(none.expired == 0);
  g.clock.set(t0 + 30 * day + 1);
  auto ex = g.admin->expire(1);
  REQUIRE(ex.ok());
  CHECK(ex.expired == 50);
  CHECK(g.balance(1) == 10);
  auto l = g.c->liability("shop");
  REQUIRE(l.ok());
  CHECK(l.liabilities[0].expired == 50);
  CHECK(l.liabilities[0].redeemed == 50);
  g.check_outstanding({1, 2});
  g.check_verify();
}

TEST_CASE("a restart of the engine keeps the household", "[households][journeys]") {
  rig g;
  for (std::uint64_t m : {1, 2})
    g.enroll(m);
  g.earn(1, 30);
  g.earn(2, 30);
  g.join(1, 6);
  g.join(2, 6);
  g.restart();
  auto h = g.c->household(6);
  REQUIRE(h.ok());
  REQUIRE(h.household_members.size() == 2);
  CHECK(h.household_available == 60);
  CHECK(g.c->household_join("j-again", 1, 6).code == errc::already_in_household);
  auto r = g.c->redeem("after-restart", 1, 50);  // own first: 30 of its own, 20 of member 2's
  INFO(r.message);
  REQUIRE(r.ok());
  CHECK(g.balance(1) == 0);
  CHECK(g.balance(2) == 10);
  g.check_verify();
}

TEST_CASE("household entries give events, and loyaltyctl shows a household", "[households][journeys][tools]") {
  rig g;
  for (std::uint64_t m : {1, 2})
    g.enroll(m);
  g.earn(2, 30);
  auto sub = g.connect(test::admin_key);
  REQUIRE(sub->subscribe().ok());
  g.join(1, 8);
  g.join(2, 8);
  auto r = g.c->redeem("pooled", 1, 20);
  REQUIRE(r.ok());
  auto left = g.c->household_leave("out", 1);
  REQUIRE(left.ok());
  auto d = g.c->household_dissolve("end", 8);
  REQUIRE(d.ok());
  std::vector<stream_event> events;
  std::uint64_t next = 0;
  while (next <= d.seq) {
    response f;
    std::string err;
    INFO(err);
    REQUIRE(sub->receive(f, err, std::chrono::seconds(20)));
    for (auto& e : f.events)
      events.push_back(std::move(e));
    next = f.next;
  }
  std::map<std::string, int> seen;
  for (const auto& e : events) {
    seen[e.type]++;
    if (e.type == "household_joined" || e.type == "household_left" || e.type == "household_dissolved")
      CHECK(e.household == 8);
    if (e.type == "household_points_moved") {
      CHECK(e.member == 2);
      CHECK(e.counterparty == 1);
      CHECK(e.points == -20);
    }
  }
  CHECK(seen["household_joined"] == 2);
  CHECK(seen["household_points_moved"] == 1);
  CHECK(seen["points_redeemed"] == 1);
  CHECK(seen["household_left"] == 1);
  CHECK(seen["household_dissolved"] == 1);

  g.join(1, 11);
  int status = -1;
  auto out = loyaltyctl(g, "household-join --txn ctl-j --member 2 --household 11", status);
  CHECK(status == 0);
  CHECK(out.find("member 2 joined household 11") != std::string::npos);
  out = loyaltyctl(g, "household 11", status);
  CHECK(status == 0);
  CHECK(out.find("household 11: 10 points available to spend") != std::string::npos);
  out = loyaltyctl(g, "household 12", status);
  CHECK(status != 0);
  CHECK(out.find("unknown_household") != std::string::npos);
  g.check_verify();
}

TEST_CASE("a program without households refuses the household operations and spends as before",
          "[households][journeys]") {
  rig g("pooled", "nothing", false);
  g.enroll(1);
  g.earn(1, 10);
  auto r = g.c->household_join("j", 1, 2);
  CHECK(r.code == errc::invalid_argument);
  CHECK(r.message.find("[households]") != std::string::npos);
  CHECK(g.c->household(2).code == errc::invalid_argument);
  CHECK(g.c->redeem("r", 1, 10).ok());
  CHECK(g.c->balance(1).household == 0);
  g.check_verify();
}

TEST_CASE("a sandbox key may not change households, and its redeem of a household member sees its own points only",
          "[households][journeys]") {
  constexpr const char* sandbox_key = "test-sandbox-key-0123456789";
  rig g("pooled", "nothing", true, [](io::engine_options& o) {
    auto k = test::make_key(9, "sandbox", sandbox_key, key_scope::admin);
    k.dry_run = true;
    o.settings.keys.push_back(k);
  });
  g.enroll(1);
  g.enroll(2);
  g.earn(2, 40);
  g.join(1, 3);
  g.join(2, 3);
  auto sb = g.connect(sandbox_key);
  auto j = sb->household_leave("sb-leave", 1);
  CHECK(j.code == errc::not_authorized);
  CHECK(j.dry_run);
  CHECK(sb->household_dissolve("sb-d", 3).code == errc::not_authorized);
  auto r = sb->redeem("sb-r", 1, 10);
  CHECK(r.code == errc::insufficient_points);
  CHECK(r.dry_run);
  CHECK(sb->household(3).household_available == 40);  // a read, as for any key
  CHECK(g.c->household(3).household_members.size() == 2);
  CHECK(g.balance(2) == 40);
  g.check_verify();
}

TEST_CASE("the spend plan takes the soonest-expiring points first, or the spender's own first", "[households]") {
  using actors::household_share;
  using actors::household_take;
  const std::vector<household_share> shares = {{1, 30, 500}, {2, 50, 100}, {3, 40, 0}};
  std::vector<household_take> out;
  REQUIRE(actors::plan_household_spend(household_spend::pooled, 1, shares, 100, out));
  REQUIRE(out.size() == 3);
  CHECK((out[0].member == 2 && out[0].points == 50));
  CHECK((out[1].member == 1 && out[1].points == 30));
  CHECK((out[2].member == 3 && out[2].points == 20));  // points that never expire go last
  REQUIRE(actors::plan_household_spend(household_spend::own_first, 1, shares, 60, out));
  REQUIRE(out.size() == 2);
  CHECK((out[0].member == 1 && out[0].points == 30));
  CHECK((out[1].member == 2 && out[1].points == 30));
  out.clear();
  CHECK_FALSE(actors::plan_household_spend(household_spend::pooled, 1, shares, 121, out));
  CHECK(out.empty());
  CHECK_FALSE(actors::plan_household_spend(household_spend::pooled, 1, shares, 0, out));
  // Sums past INT64_MAX saturate instead of wrapping.
  const std::vector<household_share> huge = {{1, INT64_MAX, 0}, {2, INT64_MAX, 0}};
  REQUIRE(actors::plan_household_spend(household_spend::own_first, 2, huge, INT64_MAX, out));
  REQUIRE(out.size() == 1);
  CHECK(out[0].member == 2);
}

TEST_CASE("the [households] table is checked like every other program setting", "[households][config]") {
  auto parse = [](const std::string& table, std::vector<config_error>& errors) {
    return parse_program(program_toml("pooled", "nothing", false) + table, "test", errors);
  };
  std::vector<config_error> errors;
  auto p = parse("\n[households]\nmax_members = 4\nspend = \"own_first\"\non_leave = \"own_points\"\n", errors);
  REQUIRE(p);
  CHECK(p->households.enabled);
  CHECK(p->households.max_members == 4);
  CHECK(p->households.spend == household_spend::own_first);
  CHECK(p->households.on_leave == household_leave::own_points);
  for (const char* bad : {"max_members = 1\nspend = \"pooled\"\non_leave = \"nothing\"",
                          "max_members = 17\nspend = \"pooled\"\non_leave = \"nothing\"",
                          "max_members = 3\nspend = \"everyone\"\non_leave = \"nothing\"",
                          "max_members = 3\nspend = \"pooled\"\non_leave = \"all\"",
                          "max_members = 3\nspend = \"pooled\"",
                          "max_members = 3\nspend = \"pooled\"\non_leave = \"nothing\"\nshare = true"}) {
    errors.clear();
    INFO(bad);
    CHECK_FALSE(parse(std::string("\n[households]\n") + bad + "\n", errors));
    CHECK_FALSE(errors.empty());
  }
  errors.clear();
  auto none = parse("", errors);
  REQUIRE(none);
  CHECK_FALSE(none->households.enabled);
}
