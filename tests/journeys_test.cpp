// The journeys a program owner signs off, end to end over real TCP: a real
// engine (LMDB in a temporary directory, CAF member actors, the Asio server)
// driven through the client library, with an injected clock that the tests
// move instead of sleeping. Each journey checks the answers, the balance
// view and, at the end, that the ledger verifies.
#include "command.hpp"
#include "engine_rig.hpp"
#include "io/client/client.hpp"
#include "io/server/engine.hpp"
#include "io/wire/codec.hpp"

#include <msgpack.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <thread>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z, a Monday
constexpr std::uint64_t day = 86'400'000'000ull;

// Points: 1 per 1.00 EUR at shop and web; silver from 300 qualifying points
// (x1.5); welcome 50, first purchase 100, web purchases double, a survey 20
// once, toys +30 with a 60-point budget over all members. Points are pending
// 14 days, lots live 730 days, 180 days without activity forfeit everything.
constexpr const char* program_toml = R"(
[program]
name = "journeys"
currency = "EUR"
minor_units = 2
utc_offset_minutes = 0

[[brands]]
id = 1
code = "shop"
name = "Shop"
earn_rate = { num = 1, den = 100 }

[[brands]]
id = 2
code = "web"
name = "Web"
earn_rate = { num = 1, den = 100 }

[[brands]]
id = 3
code = "wash"
name = "Car wash"
earn_rate = { num = 5, den = 250 }
earn_mode = "steps"

[tier_policy]
metric = "qualifying_points"
window_days = 365
review = "none"

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }

[[tiers]]
name = "silver"
threshold = 300
multiplier = { num = 3, den = 2 }

[[rules]]
id = 1
code = "welcome"
trigger = "enroll"
bonus_points = 50

[[rules]]
id = 2
code = "first-buy"
trigger = "first_purchase"
bonus_points = 100

[[rules]]
id = 3
code = "web-double"
trigger = "purchase"
channels = ["web"]
multiplier = { num = 2, den = 1 }

[[rules]]
id = 4
code = "survey"
trigger = "event"
event = "survey"
bonus_points = 20
uses_per_member_max = 1

[[rules]]
id = 5
code = "toy-bonus"
trigger = "purchase"
categories = ["toys"]
bonus_points = 30
cap_total = 60

[lifecycle]
pending_days = 14
expiry_days = 730
inactivity_days = 180
negative_balance_max = 500
hold_ttl_default_s = 900
hold_ttl_max_s = 3600

[[rewards]]
id = 1
code = "mug"
name = "Mug"
cost = 100
stock = 1
brand = "shop"

[[rewards]]
id = 2
code = "voucher"
name = "Voucher"
cost = 200
brand = "web"
)";

struct rig : test::engine_rig {
  rig() : test::engine_rig("journeys", program_toml, t0) {}

  void enroll(std::uint64_t m, const std::string& brand = "shop") {
    auto r = c->enroll(m, brand);
    INFO(r.message);
    REQUIRE(r.ok());
  }

  // Gives a member `points` available points (an admin goodwill credit).
  void credit(std::uint64_t m, std::int64_t points) {
    auto r = admin->adjust("credit-" + std::to_string(m) + "-" + std::to_string(clock.now_us()), m, points,
                           "test credit", "shop");
    INFO(r.message);
    REQUIRE(r.ok());
  }

  response balance(std::uint64_t m) {
    auto r = c->balance(m);
    INFO(r.message);
    REQUIRE(r.ok());
    return r;
  }
};

std::vector<std::pair<std::string, std::int64_t>> lines_of(const response& r) {
  std::vector<std::pair<std::string, std::int64_t>> v;
  for (const auto& l : r.lines)
    v.emplace_back(l.kind == "rule" ? l.rule : l.kind, l.points);
  return v;
}

using lines = std::vector<std::pair<std::string, std::int64_t>>;

item it(std::string sku, std::string category, std::int64_t amount) {
  item i;
  i.sku = std::move(sku);
  i.category = std::move(category);
  i.amount = amount;
  return i;
}

} // namespace

TEST_CASE("a customer joins, buys online and in store, reaches a tier and redeems a reward", "[journeys]") {
  rig g;
  auto en = g.c->enroll(1, "shop");
  REQUIRE(en.ok());
  CHECK(lines_of(en) == lines{{"welcome", 50}});

  // Online: base 100, first purchase 100, web double 100 = 300: silver at once.
  auto web = g.c->earn("j1-web", 1, "web", 10000, "EUR", t0, {it("book-1", "books", 10000)}, "web");
  INFO(web.message);
  REQUIRE(web.ok());
  CHECK(lines_of(web) == lines{{"base", 100}, {"first-buy", 100}, {"web-double", 100}});
  CHECK(web.points == 300);
  CHECK(web.tier == "silver");

  auto b = g.balance(1);
  CHECK(b.available == 50);  // the welcome bonus is not a purchase: available at once
  CHECK(b.pending == 300);   // the purchase waits out its 14-day return window
  CHECK(b.tier == "silver");
  CHECK(b.lifetime == 350);
  CHECK(b.qualifying == 300);
  CHECK(b.next_tier.empty());

  // In store, as silver: base 20 and the tier's +50 % = 10.
  auto shop = g.c->earn("j1-shop", 1, "shop", 2000, "EUR", t0 + 1000, {}, "store", "store-7");
  REQUIRE(shop.ok());
  CHECK(lines_of(shop) == lines{{"base", 20}, {"tier", 10}});

  // Not yet spendable: the points are pending.
  CHECK(g.c->redeem_reward("j1-mug-early", 1, "mug").code == errc::insufficient_points);
  g.clock.advance(15 * day);
  b = g.balance(1);
  CHECK(b.available == 380);
  CHECK(b.pending == 0);
  CHECK(b.next_expiry_at_us == t0 + 730 * day);  // the welcome lot and the online purchase's
  CHECK(b.next_expiry_points == 350);

  auto mug = g.c->redeem_reward("j1-mug", 1, "mug");
  INFO(mug.message);
  REQUIRE(mug.ok());
  CHECK(mug.reward == "mug");
  CHECK(mug.balance == 280);
  // The only mug is gone: another member gets out_of_stock and keeps its points.
  g.enroll(2);
  g.credit(2, 500);
  CHECK(g.c->redeem_reward("j1-mug-2", 2, "mug").code == errc::out_of_stock);
  CHECK(g.balance(2).available == 550);

  auto h = g.c->history(1);
  REQUIRE(h.ok());
  REQUIRE(h.entries.size() == 5);
  CHECK(h.entries[0].kind == "redeem_reward");
  CHECK(h.entries[0].points == -100);
  CHECK(h.entries[1].kind == "earn");
  CHECK(h.entries[1].txn == "j1-shop");
  CHECK(h.entries[4].kind == "enroll");
  g.check_verify();
}

TEST_CASE("a silver member's balance says until when silver holds without another purchase, what comes after, and "
          "what is missing",
          "[journeys][tier]") {
  rig g;
  g.enroll(9, "web");
  auto web = g.c->earn("j9-web", 9, "web", 10000, "EUR", t0, {}, "web");  // base 100, first-buy 100, web 100
  INFO(web.message);
  REQUIRE(web.ok());
  REQUIRE(web.tier == "silver");
  // The 365-day window, no reviews: silver lasts while the purchase is in
  // the window, i.e. until the start of the local day 365 days after it.
  constexpr std::uint64_t day = 86'400'000'000ull;
  auto b = g.balance(9);
  CHECK(b.tier == "silver");
  CHECK(b.tier_holds_until_us == (t0 / day + 365) * day);
  CHECK(b.tier_drops_to == "member");
  CHECK(b.tier_keep_missing == 300);
  // A member at the lowest tier has nothing to lose: the fields are absent.
  g.enroll(10, "shop");
  auto low = g.balance(10);
  CHECK(low.tier == "member");
  CHECK(low.tier_holds_until_us == 0);
  CHECK(low.tier_drops_to.empty());
}

TEST_CASE("a return claws back points proportionally, undoes the tier, and a reversed reward restores its points",
          "[journeys]") {
  rig g;
  g.enroll(3);
  REQUIRE(g.c->earn("j2-buy", 3, "web", 10000, "EUR", t0, {it("lamp", "home", 6000), it("rug", "home", 4000)}, "web")
            .ok());
  CHECK(g.balance(3).tier == "silver");
  g.clock.advance(15 * day);
  auto red = g.c->redeem_reward("j2-voucher", 3, "voucher");
  REQUIRE(red.ok());
  CHECK(red.balance == 150);

  // Half the purchase back by amount: each line keeps floor(p x 5000 / 10000).
  auto half = g.c->refund("j2-ret-1", 3, "j2-buy", 5000);
  INFO(half.message);
  REQUIRE(half.ok());
  CHECK(lines_of(half) == lines{{"base", -50}, {"first-buy", -50}, {"web-double", -50}});
  CHECK(half.points == 150);
  auto b = g.balance(3);
  CHECK(b.tier == "member");  // 150 qualifying points left: the upgrade is undone
  CHECK(b.qualifying == 150);
  CHECK(b.available == 0);

  // The voucher comes back: its points return to the lots they came from.
  auto rev = g.c->reverse_redemption("j2-rev", 3, "j2-voucher");
  INFO(rev.message);
  REQUIRE(rev.ok());
  CHECK(rev.points == 200);
  CHECK(g.balance(3).available == 200);
  CHECK(g.c->reverse_redemption("j2-rev-again", 3, "j2-voucher").code == errc::already_reversed);

  // The rest of the purchase, by line item: the rug (4000) then the lamp.
  auto rug = g.c->refund_items("j2-ret-2", 3, "j2-buy", {it("rug", "home", 4000)});
  INFO(rug.message);
  REQUIRE(rug.ok());
  auto lamp = g.c->refund("j2-ret-3", 3, "j2-buy");
  REQUIRE(lamp.ok());
  CHECK(half.points + rug.points + lamp.points == 300);  // a full return claws back exactly everything
  b = g.balance(3);
  CHECK(b.available == 50);  // the welcome bonus only
  CHECK(b.lifetime == 50);
  CHECK(b.qualifying == 0);
  CHECK(g.c->refund("j2-ret-4", 3, "j2-buy", 1).code == errc::already_reversed);
  CHECK(g.c->refund("j2-ret-5", 3, "no-such-txn").code == errc::unknown_txn);
  CHECK(g.c->refund("j2-ret-6", 3, "j2-voucher").code == errc::unknown_txn);  // not a purchase
  g.check_verify();
}

TEST_CASE("a reversed redemption restores points to their lots, except those whose lot has expired since",
          "[journeys]") {
  rig g;
  g.enroll(13);  // welcome 50, expires at t0 + 730 days
  g.clock.advance(150 * day);
  REQUIRE(g.c->event("j9-survey", 13, "survey").ok());  // 20, expires at t0 + 880 days
  g.clock.advance(150 * day);
  g.credit(13, 100);  // expires at t0 + 1030 days
  REQUIRE(g.c->redeem("j9-spend", 13, 170).ok());  // takes every lot: soonest expiry first
  for (int i = 0; i < 3; ++i) {  // stays active: no inactivity expiry
    g.clock.advance(146 * day);
    REQUIRE(g.c->event("j9-visit-" + std::to_string(i), 13, "survey").ok());
  }
  REQUIRE(g.clock.now_us() == t0 + 738 * day);  // the welcome lot has expired, the others have not
  auto rev = g.c->reverse_redemption("j9-rev", 13, "j9-spend");
  INFO(rev.message);
  REQUIRE(rev.ok());
  CHECK(rev.points == 120);
  auto b = g.balance(13);
  CHECK(b.available == 120);
  CHECK(b.next_expiry_at_us == t0 + 880 * day);
  CHECK(b.next_expiry_points == 20);
  auto h = g.c->history(13, 0, 1);
  REQUIRE(h.entries.size() == 1);
  CHECK(h.entries[0].kind == "reverse_redemption");
  CHECK(h.entries[0].points == 120);
  g.check_verify();
}

TEST_CASE("a purchase refunded after its points were spent leaves a debt, capped by the program", "[journeys]") {
  rig g;
  g.enroll(4);
  REQUIRE(g.c->earn("j3-buy", 4, "shop", 10000, "EUR", t0).ok());  // base 100 + first purchase 100
  g.clock.advance(15 * day);
  REQUIRE(g.c->redeem("j3-spend", 4, 250).ok());
  auto ref = g.c->refund("j3-ret", 4, "j3-buy");
  INFO(ref.message);
  REQUIRE(ref.ok());
  CHECK(ref.points == 200);
  CHECK(ref.balance == -200);
  auto b = g.balance(4);
  CHECK(b.available == -200);
  CHECK(b.debt == 200);
  // New points pay nothing out until the debt is covered: no free points
  // through a purchase-refund loop.
  REQUIRE(g.c->earn("j3-buy-2", 4, "shop", 10000, "EUR", g.clock.now_us()).ok());
  g.clock.advance(15 * day);
  CHECK(g.balance(4).available == -100);
  CHECK(g.c->redeem("j3-spend-2", 4, 1).code == errc::insufficient_points);

  // Past the program's cap of 500 points of debt, a refund is refused and changes nothing.
  g.enroll(5);
  REQUIRE(g.c->earn("j3-big", 5, "shop", 100000, "EUR", g.clock.now_us()).ok());  // 1000 + 100
  g.clock.advance(15 * day);
  REQUIRE(g.c->redeem("j3-big-spend", 5, 1150).ok());
  auto refused = g.c->refund("j3-big-ret", 5, "j3-big");
  CHECK(refused.code == errc::negative_balance_limit);
  CHECK(g.balance(5).available == 0);
  g.check_verify();
}

TEST_CASE("two people sharing one account at once cannot both spend the same points", "[journeys]") {
  rig g;
  g.enroll(6);
  g.credit(6, 350);  // with the welcome bonus: 400
  auto other = g.connect(test::admin_key);
  // Two carts each hold 300 of the 400 points, pipelined from two connections.
  for (int round = 0; round < 20; ++round) {
    request a, b;
    a.op = b.op = opcode::hold;
    a.member = b.member = 6;
    a.points = b.points = 300;
    a.txn = "j4-a-" + std::to_string(round);
    b.txn = "j4-b-" + std::to_string(round);
    g.c->send(a);
    other->send(b);
    response ra, rb;
    std::string err;
    REQUIRE(g.c->receive(ra, err));
    REQUIRE(other->receive(rb, err));
    REQUIRE((ra.ok() != rb.ok()));  // exactly one hold
    const response& won = ra.ok() ? ra : rb;
    const response& lost = ra.ok() ? rb : ra;
    CHECK(lost.code == errc::insufficient_points);
    CHECK(g.balance(6).held == 300);
    REQUIRE(g.c->release("j4-rel-" + std::to_string(round), 6, won.hold).ok());
  }
  auto b = g.balance(6);
  CHECK(b.available == 400);
  CHECK(b.held == 0);
  // A hold captured in part spends that part and gives the rest back.
  auto h = g.c->hold("j4-h", 6, 300);
  REQUIRE(h.ok());
  auto cap = g.c->capture("j4-cap", 6, h.hold, 120);
  INFO(cap.message);
  REQUIRE(cap.ok());
  CHECK(cap.points == 120);
  b = g.balance(6);
  CHECK(b.available == 280);
  CHECK(b.held == 0);
  CHECK(g.c->capture("j4-cap-2", 6, h.hold).code == errc::unknown_hold);
  g.check_verify();
}

TEST_CASE("an inactive account's points expire into breakage, by member and by the sweep", "[journeys]") {
  rig g;
  g.enroll(7);
  g.enroll(8);
  REQUIRE(g.c->earn("j5-a", 7, "shop", 10000, "EUR", t0).ok());
  REQUIRE(g.c->earn("j5-b", 8, "shop", 5000, "EUR", t0).ok());
  g.clock.advance(100 * day);
  REQUIRE(g.c->event("j5-survey", 8, "survey").ok());  // member 8 stays active
  g.clock.advance(100 * day);                           // member 7: 200 days without activity

  CHECK(g.connect(test::shop_key)->expire(7).code == errc::not_authorized);  // an admin operation
  auto ex = g.admin->expire(7, g.clock.now_us());
  INFO(ex.message);
  REQUIRE(ex.ok());
  CHECK(ex.expired == 250);
  CHECK(g.balance(7).available == 0);
  auto h = g.c->history(7, 0, 1);
  REQUIRE(h.entries.size() == 1);
  CHECK(h.entries[0].kind == "expire");
  CHECK(h.entries[0].points == -250);
  CHECK(h.next_before == h.entries[0].seq);

  // The sweep over every member: member 8 keeps everything.
  auto all = g.admin->expire_all();
  INFO(all.message);
  REQUIRE(all.ok());
  CHECK(all.members == 2);
  CHECK(all.expired == 0);
  CHECK(g.balance(8).available == 50 + 150 + 20);
  g.clock.advance(181 * day);
  all = g.admin->expire_all();
  REQUIRE(all.ok());
  CHECK(all.expired == 220);
  CHECK(g.balance(8).available == 0);
  g.check_verify();
}

TEST_CASE("an expired hold releases itself and can no longer be captured", "[journeys]") {
  rig g;
  g.enroll(9);
  auto h = g.c->hold("j6-h", 9, 40, "", 60);
  INFO(h.message);
  REQUIRE(h.ok());
  CHECK(h.expires_at_us == t0 + 60'000'000ull);
  auto b = g.balance(9);
  CHECK(b.available == 10);
  CHECK(b.held == 40);
  CHECK(g.c->hold("j6-too-long", 9, 5, "", 7200).code == errc::invalid_argument);  // over hold_ttl_max_s
  g.clock.advance(61'000'000ull);
  b = g.balance(9);
  CHECK(b.available == 50);
  CHECK(b.held == 0);
  CHECK(g.c->capture("j6-cap", 9, h.hold).code == errc::unknown_hold);
  auto hist = g.c->history(9, 0, 2);
  REQUIRE(hist.entries.size() == 2);
  CHECK(hist.entries[0].kind == "release");
  g.check_verify();
}

TEST_CASE("transfers, aliases, events, caps and admin adjustments over the wire", "[journeys]") {
  rig g;
  g.enroll(10);
  g.enroll(11, "web");
  // Aliases: a card number names member 10 on any operation.
  REQUIRE(g.c->link_alias("j7-card", 10, "card-4411").ok());
  CHECK(g.c->lookup("card-4411").member == 10);
  CHECK(g.c->link_alias("j7-card-2", 11, "card-4411").code == errc::alias_taken);
  CHECK(g.c->lookup("card-0000").code == errc::unknown_alias);
  CHECK(g.c->balance("card-4411").available == 50);

  // Transfer: the receiver's lots keep the sender's expiry.
  auto t = g.c->transfer("j7-t", "card-4411", 11, 30);
  INFO(t.message);
  REQUIRE(t.ok());
  CHECK(g.balance(10).available == 20);
  CHECK(g.balance(11).available == 80);
  CHECK(g.c->transfer("j7-t-self", 10, 10, 1).code == errc::same_member);
  CHECK(g.c->transfer("j7-t-none", 10, 999, 1).code == errc::unknown_member);
  CHECK(g.c->transfer("j7-t-much", 10, 11, 21).code == errc::insufficient_points);

  // Events: the survey pays once; unknown kinds are refused.
  auto s1 = g.c->event("j7-s1", 10, "survey");
  REQUIRE(s1.ok());
  CHECK(lines_of(s1) == lines{{"survey", 20}});
  auto s2 = g.c->event("j7-s2", 10, "survey");
  REQUIRE(s2.ok());
  CHECK(s2.points == 0);
  CHECK(g.c->event("j7-s3", 10, "karaoke").code == errc::unknown_event);

  // A program-wide budget: toys give 30 to the first two buyers only.
  for (std::uint64_t m = 20; m < 23; ++m)
    g.enroll(m);
  std::int64_t bonus = 0;
  for (std::uint64_t m = 20; m < 23; ++m) {
    auto r = g.c->earn("j7-toy-" + std::to_string(m), m, "shop", 1000, "EUR", t0, {it("car", "toys", 1000)});
    REQUIRE(r.ok());
    for (const auto& l : r.lines)
      if (l.rule == "toy-bonus")
        bonus += l.points;
  }
  CHECK(bonus == 60);

  // Adjustments are admin only and need a reason.
  CHECK(g.connect(test::shop_key)->adjust("j7-adj", 10, 5, "goodwill", "shop").code == errc::not_authorized);
  auto adj = g.admin->adjust("j7-adj", 10, -25, "correction: duplicate survey", "shop");
  INFO(adj.message);
  REQUIRE(adj.ok());
  CHECK(g.balance(10).available == 15);
  std::string err;
  auto bad = client::connect("127.0.0.1", g.eng->port(), err);
  REQUIRE(bad);
  CHECK(bad->hello("x", "not-the-admin-key-at-all").code == errc::not_authorized);

  // Whole-step earning: 5 points per 2.50 spent; 3.00 earns 5, not 6.
  auto wash = g.c->earn("j7-wash", 10, "wash", 300, "EUR", t0);
  REQUIRE(wash.ok());
  CHECK(lines_of(wash) == lines{{"base", 5}, {"first-buy", 100}});
  g.check_verify();
}

TEST_CASE("retries are idempotent, conflicts are refused, and state survives a restart", "[journeys]") {
  rig g;
  g.enroll(12);
  auto first = g.c->earn("j8-e", 12, "web", 10000, "EUR", t0, {}, "web");
  REQUIRE(first.ok());
  auto again = g.c->earn("j8-e", 12, "web", 10000, "EUR", t0, {}, "web");
  REQUIRE(again.ok());
  CHECK(again.replayed);
  CHECK(again.seq == first.seq);
  CHECK(lines_of(again) == lines_of(first));
  CHECK(g.c->earn("j8-e", 12, "web", 9999, "EUR", t0, {}, "web").code == errc::txn_id_conflict);
  auto h = g.c->hold("j8-h", 12, 30);
  REQUIRE(h.ok());
  auto before = g.balance(12);
  g.restart();
  auto after = g.balance(12);
  CHECK(after.available == before.available);
  CHECK(after.pending == before.pending);
  CHECK(after.held == 30);
  CHECK(after.tier == before.tier);
  CHECK(after.lifetime == before.lifetime);
  auto h2 = g.c->hold("j8-h", 12, 30);  // a retry after the restart
  CHECK(h2.replayed);
  CHECK(h2.hold == h.hold);
  REQUIRE(g.c->capture("j8-cap", 12, h.hold).ok());
  g.check_verify();
}

namespace {

// The entry of a member's history (its newest 100) that `pick` chooses.
template <class Pick>
history_entry history_entry_of(client& c, std::uint64_t member, Pick pick) {
  auto h = c.history(member, 0, 100);
  INFO(h.message);
  REQUIRE(h.ok());
  for (const auto& e : h.entries)
    if (pick(e))
      return e;
  FAIL("no such entry in the history of member " << member);
  return {};
}

// Reads events frames of a subscribed client until the stream has passed
// entry `through`.
std::vector<stream_event> events_through(client& s, std::uint64_t through) {
  std::vector<stream_event> out;
  std::uint64_t next = 0;
  while (next <= through) {
    response r;
    std::string err;
    const bool got = s.receive(r, err, std::chrono::seconds(20));
    INFO(err);
    REQUIRE(got);
    REQUIRE(r.ok());
    for (auto& e : r.events)
      out.push_back(std::move(e));
    next = r.next;
  }
  return out;
}

} // namespace

TEST_CASE("capture and release entries name their hold's entry as ref in history, explain, journal and events",
          "[journeys]") {
  rig g;
  g.enroll(40);
  g.credit(40, 200);
  auto sub = g.connect(test::read_key);
  REQUIRE(sub->subscribe().ok());  // the events of the entries committed from now on
  auto held = [&](const std::string& txn, std::int64_t points, std::uint64_t ttl_s = 0) {
    auto h = g.c->hold(txn, 40, points, "", ttl_s);
    INFO(h.message);
    REQUIRE(h.ok());
    return h;
  };
  auto posted = [](response r) {
    INFO(r.message);
    REQUIRE(r.ok());
    return r;
  };
  std::map<std::uint64_t, std::uint64_t> hold_of;  // closing entry's seq -> the seq of the hold it closes
  // Holds committed before they are closed, by the actor that opened them.
  const auto h1 = held("a1-h1", 30);
  hold_of[posted(g.c->capture("a1-cap", 40, h1.hold, 20)).seq] = h1.seq;
  const auto h2 = held("a1-h2", 10);
  hold_of[posted(g.c->release("a1-rel", 40, h2.hold)).seq] = h2.seq;
  // A hold still on its way to the ledger when its capture is built: one
  // batch runs them in order (hold ids are given one after the other).
  auto element = [](opcode op, std::uint64_t id, const char* txn) {
    request r;
    r.op = op;
    r.id = id;
    r.txn = txn;
    r.member = 40;
    return r;
  };
  request batch;
  batch.op = opcode::batch;
  batch.ops = {element(opcode::hold, 1, "a1-h3"), element(opcode::capture, 2, "a1-cap3")};
  batch.ops[0].points = 10;
  batch.ops[1].hold = h2.hold + 1;
  const auto& cap3 = batch.ops[1];
  auto both = g.c->call(batch);
  REQUIRE(both.results.size() == 2);
  const auto h3 = posted(both.results[0]);
  REQUIRE(h3.hold == cap3.hold);
  hold_of[posted(both.results[1]).seq] = h3.seq;
  // A hold whose time runs out: the engine releases it.
  const auto h4 = held("a1-h4", 10, 60);
  g.clock.advance(61'000'000ull);
  CHECK(g.balance(40).held == 0);
  const auto expired =
    history_entry_of(*g.c, 40, [](const history_entry& e) { return e.kind == "release" && e.txn.empty(); });
  hold_of[expired.seq] = h4.seq;

  // history
  std::size_t closing = 0;
  for (const auto& e : g.c->history(40, 0, 100).entries)
    if (e.kind == "capture" || e.kind == "release") {
      INFO("history entry " << e.seq << " " << e.kind);
      REQUIRE(hold_of.count(e.seq) == 1);
      CHECK(e.ref == hold_of[e.seq]);
      ++closing;
    }
  CHECK(closing == hold_of.size());
  // explain
  for (const char* txn : {"a1-cap", "a1-rel", "a1-cap3"}) {
    request ex;
    ex.op = opcode::explain;
    ex.txn = txn;
    auto r = posted(g.c->call(ex));
    INFO("explain " << txn);
    REQUIRE(r.entries.size() == 1);
    CHECK(r.entries[0].ref == hold_of[r.seq]);
  }
  // journal
  std::size_t journaled = 0;
  for (const auto& j : posted(g.c->journal(h1.seq, 1000)).journal)
    if (hold_of.count(j.entry.seq) == 1) {
      INFO("journal entry " << j.entry.seq << " " << j.entry.kind);
      CHECK(j.entry.ref == hold_of[j.entry.seq]);
      ++journaled;
    }
  CHECK(journaled == hold_of.size());
  // events
  std::size_t streamed = 0;
  for (const auto& e : events_through(*sub, expired.seq))
    if (hold_of.count(e.seq) == 1) {
      INFO("event " << e.seq << " " << e.type);
      CHECK(e.ref == hold_of[e.seq]);
      ++streamed;
    }
  CHECK(streamed == hold_of.size());
  CHECK(hold_of.size() == 4);

  // A hold opened before a restart and captured after it.
  const auto h5 = held("a1-h5", 10);
  sub.reset();
  g.restart();
  const auto cap5 = posted(g.c->capture("a1-cap5", 40, h5.hold));
  CHECK(history_entry_of(*g.c, 40, [&](const history_entry& e) { return e.seq == cap5.seq; }).ref == h5.seq);
  g.check_verify();
}

TEST_CASE("an enrollment whose welcome rule fires answers the enrollment's seq, with the welcome points and lines",
          "[journeys]") {
  rig g;
  // Member 51's actor is awake (a request woke it) when it enrolls; member
  // 50 enrolls without one.
  CHECK(g.c->balance(51).code == errc::unknown_member);
  for (std::uint64_t m : {50, 51}) {
    INFO("member " << m);
    auto en = g.c->enroll(m, "shop");
    INFO(en.message);
    REQUIRE(en.ok());
    auto h = g.c->history(m);
    REQUIRE(h.entries.size() == 2);
    CHECK(h.entries[1].kind == "enroll");
    CHECK(h.entries[0].kind == "event");
    CHECK(en.seq == h.entries[1].seq);
    CHECK(en.points == 50);
    CHECK(en.balance == 50);
    CHECK(en.lifetime == 50);
    CHECK(lines_of(en) == lines{{"welcome", 50}});
    CHECK_FALSE(en.replayed);
  }
  g.check_verify();
}

namespace {

// An earn of 10.00 EUR at shop by member 60 as raw msgpack, with
// `occurred_at` only when given.
std::string raw_earn(std::uint64_t id, const std::string& txn, std::optional<std::uint64_t> occurred_at) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(occurred_at ? 8 : 7);
  pk.pack("op"), pk.pack("earn");
  pk.pack("id"), pk.pack(id);
  pk.pack("txn"), pk.pack(txn);
  pk.pack("member"), pk.pack(60);
  pk.pack("brand"), pk.pack("shop");
  pk.pack("amount"), pk.pack(1000);
  pk.pack("currency"), pk.pack("EUR");
  if (occurred_at)
    pk.pack("occurred_at"), pk.pack(*occurred_at);
  std::string out(4, '\0');
  write_be32(reinterpret_cast<unsigned char*>(out.data()), static_cast<std::uint32_t>(buf.size()));
  out.append(buf.data(), buf.size());
  return out;
}

} // namespace

TEST_CASE("an earn without occurred_at happens at the engine's clock, and a retry without it is a replay",
          "[journeys]") {
  rig g;
  g.enroll(60);
  auto send = [&](const std::string& frame) {
    g.c->send_raw(frame.data(), frame.size());
    response r;
    std::string err;
    const bool got = g.c->receive(r, err, std::chrono::seconds(20));
    INFO(err);
    REQUIRE(got);
    INFO(r.message);
    return r;
  };
  const std::uint64_t received_at = g.clock.now_us();
  auto first = send(raw_earn(1, "a12-e", std::nullopt));
  REQUIRE(first.ok());
  CHECK_FALSE(first.replayed);
  CHECK(first.points == 110);  // base 10, first purchase 100
  g.clock.advance(5 * 60'000'000ull);  // the engine's clock has moved on when the retry arrives
  auto again = send(raw_earn(2, "a12-e", std::nullopt));
  REQUIRE(again.ok());
  CHECK(again.replayed);
  CHECK(again.seq == first.seq);
  CHECK(again.points == first.points);
  // Absent and given are different content, even with the time it got.
  CHECK(send(raw_earn(3, "a12-e", received_at)).code == errc::txn_id_conflict);
  std::size_t earns = 0;
  for (const auto& e : g.c->history(60).entries)
    if (e.txn == "a12-e") {
      ++earns;
      CHECK(e.occurred_at_us == received_at);
    }
  CHECK(earns == 1);
  // The client library leaves out an occurred_at of 0.
  const auto lib = g.c->earn("a12-lib", 60, "shop", 500, "EUR", 0);
  REQUIRE(lib.ok());
  g.clock.advance(60'000'000ull);
  const auto lib_again = g.c->earn("a12-lib", 60, "shop", 500, "EUR", 0);
  CHECK(lib_again.replayed);
  CHECK(lib_again.seq == lib.seq);
  g.check_verify();
}

namespace {

// Runs the real loyaltyctl with the admin key against the rig's engine;
// returns what it printed (stdout and stderr) and sets its exit status.
std::string loyaltyctl(const test::engine_rig& g, const std::string& args, int& status) {
  return test::run_command(std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(g.eng->port()) + " --key " +
                             test::admin_key + " " + args + " 2>&1",
                           status);
}

} // namespace

TEST_CASE("loyaltyctl earn run twice with one --txn is a replay, and its human output prints times in ISO 8601",
          "[journeys][tools]") {
  rig g;
  g.enroll(70);
  int status = -1;
  const std::string earn = "earn --txn a12-ctl --member 70 --brand shop --amount 1500";
  auto out = loyaltyctl(g, earn, status);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("earned 115 points") != std::string::npos);  // base 15, first purchase 100
  g.clock.advance(60'000'000ull);  // the person runs it again a minute later
  out = loyaltyctl(g, earn, status);
  CHECK(status == 0);
  CHECK(out.find("replay of an earlier request") != std::string::npos);
  out = loyaltyctl(g, "--json " + earn, status);
  CHECK(status == 0);
  CHECK(out.find("\"replayed\":true") != std::string::npos);
  std::size_t earns = 0;
  for (const auto& e : g.c->history(70).entries)
    earns += e.txn == "a12-ctl" ? 1 : 0;
  CHECK(earns == 1);
  // Given, the time is sent: another time under the same txn id is other content.
  out = loyaltyctl(g, earn + " --occurred-at " + std::to_string(t0 - 1), status);
  CHECK(status == 1);
  CHECK(out.find("txn_id_conflict") != std::string::npos);

  // Times in human output: 2026-03-02T12:00:00Z is t0; lots live 730 days;
  // holds 900 s by default.
  out = loyaltyctl(g, "explain a12-ctl", status);
  CHECK(status == 0);
  CHECK(out.find("occurred at 2026-03-02T12:00:00Z, committed at 2026-03-02T12:00:00Z") != std::string::npos);
  out = loyaltyctl(g, "history --member 70", status);
  CHECK(status == 0);
  CHECK(out.find("at 2026-03-02T12:00:00Z") != std::string::npos);
  out = loyaltyctl(g, "balance 70", status);
  CHECK(status == 0);
  CHECK(out.find("165 points expire at 2028-03-01T12:00:00Z") != std::string::npos);  // welcome and purchase
  out = loyaltyctl(g, "hold --txn a12-hold --member 70 --points 10", status);
  CHECK(status == 0);
  CHECK(out.find("expires at 2026-03-02T12:16:00Z") != std::string::npos);
  g.clock.advance(500'000ull);
  out = loyaltyctl(g, "adjust --txn a12-adj --member 70 --points 5 --reason goodwill --brand shop", status);
  CHECK(status == 0);
  out = loyaltyctl(g, "explain a12-adj", status);
  CHECK(out.find("occurred at 2026-03-02T12:01:00.500000Z") != std::string::npos);
  // No time is printed as raw microseconds any more.
  for (const char* args : {"explain a12-ctl", "history --member 70", "balance 70"}) {
    out = loyaltyctl(g, args, status);
    CHECK(out.find(" us") == std::string::npos);
  }
  g.check_verify();
}

TEST_CASE("a refund by items that add up to 0 is invalid_amount, says so, and posts nothing", "[io][journeys]") {
  rig g;
  g.enroll(1);
  std::vector<item> basket = {{"FREE-1", "grocery", 1, 0}, {"", "grocery", 1, 612}};
  REQUIRE(g.c->earn("e-free", 1, "shop", 612, "EUR", g.clock.now_us(), basket).ok());
  const auto seq = g.eng->ledger().last_seq();
  auto r = g.c->refund_items("rf-free", 1, "e-free", {basket.front()});
  CHECK(r.code == errc::invalid_amount);
  CHECK(r.message == "the items refunded add up to 0: nothing to refund");
  CHECK(g.eng->ledger().last_seq() == seq);
  // More than the purchase is refused too, naming what is left.
  auto over = g.c->refund("rf-over", 1, "e-free", 700);
  CHECK(over.code == errc::invalid_amount);
  CHECK(over.message == "the refund (700) is more than what is left of the purchase (612 of 612)");
  CHECK(g.c->refund("rf-part", 1, "e-free", 112).ok());
  auto again = g.c->refund("rf-over-2", 1, "e-free", 501);
  CHECK(again.message == "the refund (501) is more than what is left of the purchase (500 of 612)");
  g.check_verify();
}

TEST_CASE("thirty days before silver would lapse, the sweep warns the member once, on the stream, with what is "
          "missing",
          "[journeys][tier]") {
  std::string toml = program_toml;
  const std::string review = "review = \"none\"\n";
  REQUIRE(toml.find(review) != std::string::npos);
  toml.replace(toml.find(review), review.size(), review + "warning_days = 30\n");
  test::engine_rig g("journeys-warning", toml, t0);
  REQUIRE(g.c->enroll(9, "web").ok());
  REQUIRE(g.c->enroll(10, "shop").ok());  // the lowest tier: nothing to warn of
  auto web = g.c->earn("j9-web", 9, "web", 10000, "EUR", t0, {}, "web");
  INFO(web.message);
  REQUIRE(web.ok());
  REQUIRE(web.tier == "silver");
  const std::uint64_t drops_at = (t0 / day + 365) * day;
  auto sub = g.connect(test::read_key);
  REQUIRE(sub->subscribe().ok());
  auto notices = [&] {  // member 9's
    std::size_t n = 0;
    for (const auto& e : g.c->history(9, 0, 100).entries)
      n += e.kind == "tier_notice" ? 1 : 0;
    return n;
  };
  // 300 days on, the drop is 65 days away: no warning yet.
  g.clock.advance(300 * day);
  REQUIRE(g.admin->expire_all().ok());
  CHECK(notices() == 0);
  // 340 days on, 25 days before it: one warning, and the next sweep adds none.
  g.clock.advance(40 * day);
  REQUIRE(g.admin->expire_all().ok());
  CHECK(notices() == 1);
  g.clock.advance(day);
  REQUIRE(g.admin->expire_all().ok());
  CHECK(notices() == 1);
  const auto warning = history_entry_of(*g.c, 9, [](const history_entry& e) { return e.kind == "tier_notice"; });
  CHECK(warning.points == 0);  // no postings: a notice moves no points
  std::vector<stream_event> warned;
  for (auto& e : events_through(*sub, warning.seq))
    if (e.type == "tier_downgrade_warning")
      warned.push_back(std::move(e));
  REQUIRE(warned.size() == 1);
  CHECK(warned[0].member == 9);
  CHECK(warned[0].tier == "silver");
  CHECK(warned[0].drops_to == "member");
  CHECK(warned[0].drops_at_us == drops_at);
  CHECK(warned[0].missing == 300);
  for (const auto& e : g.c->history(10, 0, 100).entries)
    CHECK(e.kind != "tier_notice");
  // The notice survives a restart: the book remembers it, no second one.
  g.restart();
  REQUIRE(g.admin->expire_all().ok());
  CHECK(notices() == 1);
  g.check_verify();
}

TEST_CASE("an order that ships has its points released before the return window ends, once, and a later return still "
          "claws them back",
          "[journeys][release_pending]") {
  rig g;
  g.enroll(20);  // welcome: 50 available
  auto buy = g.c->earn("rp-buy", 20, "shop", 10000, "EUR", t0);  // base 100 + first purchase 100, pending 14 days
  INFO(buy.message);
  REQUIRE(buy.ok());
  REQUIRE(buy.points == 200);
  CHECK(g.c->redeem("rp-too-soon", 20, 120).code == errc::insufficient_points);
  auto sub = g.connect(test::read_key);
  REQUIRE(sub->subscribe().ok());

  g.clock.advance(2 * day);  // the order ships
  auto ship = g.c->release_pending("rp-ship", 20, "rp-buy");
  INFO(ship.message);
  REQUIRE(ship.ok());
  CHECK(ship.points == 200);
  auto b = g.balance(20);
  CHECK(b.available == 250);
  CHECK(b.pending == 0);
  CHECK(b.balance == 250);  // no postings: the points were the member's already
  // A retry is a replay; a second release, or one of something else, is refused and posts nothing.
  auto again = g.c->release_pending("rp-ship", 20, "rp-buy");
  CHECK(again.ok());
  CHECK(again.seq == ship.seq);
  CHECK(g.c->release_pending("rp-ship-2", 20, "rp-buy").code == errc::nothing_pending);
  CHECK(g.c->release_pending("rp-nothing", 20, "no-such-txn").code == errc::unknown_txn);
  REQUIRE(g.c->redeem("rp-spend", 20, 120).ok());  // the welcome lot first (it expires first), then 70 released
  CHECK(g.c->release_pending("rp-of-redeem", 20, "rp-spend").code == errc::unknown_txn);
  std::size_t releases = 0;
  for (const auto& e : g.c->history(20, 0, 100).entries)
    releases += e.kind == "release_pending" ? 1 : 0;
  CHECK(releases == 1);
  std::vector<stream_event> released;
  for (auto& e : events_through(*sub, ship.seq))
    if (e.type == "points_released")
      released.push_back(std::move(e));
  REQUIRE(released.size() == 1);
  CHECK(released[0].member == 20);
  CHECK(released[0].points == 200);
  CHECK(released[0].txn == "rp-ship");

  // The customer returns the order: its 200 points come back out of what is
  // left of the released lot (130), the rest (70) is a debt.
  auto ret = g.c->refund("rp-return", 20, "rp-buy");
  INFO(ret.message);
  REQUIRE(ret.ok());
  CHECK(ret.points == 200);
  b = g.balance(20);
  CHECK(b.available == -70);
  CHECK(b.debt == 70);
  CHECK(b.balance == -70);
  CHECK(g.c->release_pending("rp-ship-3", 20, "rp-buy").code == errc::nothing_pending);
  g.check_verify();
}

TEST_CASE("releasing one of two purchases that share a pending lot releases that purchase's points only, and its "
          "return takes them from where they went",
          "[journeys][release_pending]") {
  rig g;
  g.enroll(21);
  // Both at the same instant: the second's points join the first's lot (same
  // brand, expiry and pending end).
  REQUIRE(g.c->earn("rp2-a", 21, "shop", 10000, "EUR", t0).points == 200);
  REQUIRE(g.c->earn("rp2-b", 21, "shop", 5000, "EUR", t0).points == 50);
  REQUIRE(g.balance(21).pending == 250);
  auto ship = g.c->release_pending("rp2-ship-a", 21, "rp2-a");
  INFO(ship.message);
  REQUIRE(ship.ok());
  CHECK(ship.points == 200);
  auto b = g.balance(21);
  CHECK(b.available == 250);  // welcome 50 + the released 200
  CHECK(b.pending == 50);     // b's points wait out the window
  // The return of a takes its 200 from the released lot, not from b's
  // pending points nor the welcome lot.
  REQUIRE(g.c->refund("rp2-return-a", 21, "rp2-a").ok());
  b = g.balance(21);
  CHECK(b.available == 50);
  CHECK(b.pending == 50);
  CHECK(b.debt == 0);
  g.restart();  // the fold of the journal reaches the same book
  b = g.balance(21);
  CHECK(b.available == 50);
  CHECK(b.pending == 50);
  g.clock.advance(14 * day);
  CHECK(g.balance(21).available == 100);
  g.check_verify();
}
