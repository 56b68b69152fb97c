// The coalition over real TCP: points of one brand redeemed at another post
// the inter-brand settlement in the same entry; partners earn and burn with
// their receivable and payable; settlement statements reconcile with the
// accounts to the minor unit; liability and period activity follow from the
// ledger; suspending or removing a partner stops its operations and keeps
// its history; every scope is enforced. Each test ends with verify, which
// checks the settlement equality over the whole journal.
#include "coalition_brands.hpp"
#include "engine_rig.hpp"

#include <filesystem>
#include <fstream>

using namespace loyalty;
using namespace loyalty::io;

namespace {

using test::acme_key;  // brand:acme
using test::day_us;
using test::redeem_at;
using test::t0;

constexpr const char* globex_key = "test-globex-key-0123456789";  // brand:globex
constexpr const char* skyair_key = "test-skyair-key-0123456789";  // partner:skyair
constexpr const char* hotel_key = "test-hotel-key-0123456789";    // partner:hotel

// acme points are worth half a cent, globex points a cent. skyair buys
// points for acme at 1.5 cents and is paid 0.8 cents for each burned there;
// hotel (globex) is suspended.
const std::string head_toml = std::string(R"(
[program]
name = "coalition"
currency = "EUR"
)") + test::two_brands_toml + R"(
[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }

[lifecycle]
negative_balance_max = 1000

[[rewards]]
id = 1
code = "lamp"
cost = 250
brand = "globex"

[[partners]]
id = 8
code = "hotel"
brand = "globex"
earn_cost = { num = 1, den = 1 }
burn_reimbursement = { num = 1, den = 1 }
status = "suspended"
)";

std::string skyair(const char* status) {
  return std::string(R"(
[[partners]]
id = 7
code = "skyair"
name = "Sky Air"
brand = "acme"
earn_cost = { num = 3, den = 2 }
burn_reimbursement = { num = 4, den = 5 }
status = ")") + status + "\"\n";
}

struct coalition_rig : test::engine_rig {
  coalition_rig()
      : test::engine_rig("coalition", head_toml + skyair("active"), t0, [](io::engine_options& o) {
          o.settings.keys = {test::make_key(1, "test-admin", test::admin_key, key_scope::admin),
                             test::make_key(2, "acme-pos", acme_key, key_scope::brand, "acme"),
                             test::make_key(3, "globex-pos", globex_key, key_scope::brand, "globex"),
                             test::make_key(4, "auditor", test::read_key, key_scope::read),
                             test::make_key(5, "skyair-gw", skyair_key, key_scope::partner, "skyair"),
                             test::make_key(6, "hotel-gw", hotel_key, key_scope::partner, "hotel")};
        }) {}

  // Rewrites the program file and reloads it over the wire.
  void reload(const std::string& toml) {
    std::ofstream(dir.path / "program.toml") << toml;
    request r;
    r.op = opcode::reload;
    auto res = c->call(r);
    INFO(res.message);
    REQUIRE(res.ok());
  }
};

// An operation on one member with a txn id; the caller sets the rest.
request member_op(opcode op, const std::string& txn, std::uint64_t member) {
  request r;
  r.op = op;
  r.txn = txn;
  r.member = member;
  return r;
}

request partner_op(opcode op, const std::string& txn, std::uint64_t member, const std::string& partner,
                   std::int64_t points, std::int64_t amount = 0) {
  request r = member_op(op, txn, member);
  r.partner = partner;
  r.points = points;
  r.amount = amount;
  return r;
}

request reverse(const std::string& txn, std::uint64_t member, const std::string& ref) {
  request r = member_op(opcode::reverse_redemption, txn, member);
  r.ref = ref;
  return r;
}

request explain(const std::string& txn) {
  request r;
  r.op = opcode::explain;
  r.txn = txn;
  return r;
}

request liability() {
  request r;
  r.op = opcode::liability;
  return r;
}

request statement(const std::string& brand, const std::string& partner, std::uint64_t after = 0,
                  std::uint32_t limit = 0) {
  request r;
  r.op = opcode::settlement;
  r.brand = brand;
  r.partner = partner;
  r.after = after;
  r.limit = limit;
  return r;
}

request activity(const std::string& brand, std::uint64_t from_us, std::uint64_t to_us) {
  request r;
  r.op = opcode::activity;
  r.brand = brand;
  r.from_us = from_us;
  r.to_us = to_us;
  return r;
}

response ok(client& c, const request& r) {
  INFO(to_string(r.op) << " " << r.txn);
  return test::ok(c.call(r));
}

const liability_row& row_of(const response& r, const std::string& brand) { return test::row_of(r.liabilities, brand); }

bool has_move(const response& ex, const std::string& account, const std::string& side, std::int64_t amount) {
  for (const auto& m : ex.moves)
    if (m.account == account && m.side == side && m.amount == amount)
      return true;
  return false;
}

} // namespace

TEST_CASE("points earned at one brand and redeemed at another post the inter-brand settlement in the same entry",
          "[coalition]") {
  coalition_rig g;
  auto globex = g.connect(globex_key);
  REQUIRE(g.c->enroll(1, "acme").ok());
  REQUIRE(g.c->earn("e-acme", 1, "acme", 30000, "EUR", t0).ok());      // 300 acme points (the older lot)
  REQUIRE(g.c->earn("e-globex", 1, "globex", 20000, "EUR", t0).ok());  // 200 globex points

  // 400 points spent at globex: the 300 acme points first, then 100 of globex's.
  auto r = ok(*globex, redeem_at("r-1", 1, 400, ""));  // a globex key redeems at globex
  CHECK(r.balance == 100);
  REQUIRE(r.settlements.size() == 1);
  CHECK(r.settlements[0].payer == "brand:acme");
  CHECK(r.settlements[0].payee == "brand:globex");
  CHECK(r.settlements[0].points == 300);
  CHECK(r.settlements[0].amount == 150);  // floor(300 x 1/2)
  CHECK(r.settlements[0].rate == "1/2");
  CHECK_FALSE(r.settlements[0].reversal);

  // One entry holds both the points and the money.
  auto ex = ok(*g.c, explain("r-1"));
  CHECK(has_move(ex, "member:1", "debit", 400));
  CHECK(has_move(ex, "brand_redeemed:acme", "credit", 300));
  CHECK(has_move(ex, "brand_redeemed:globex", "credit", 100));
  CHECK(has_move(ex, "brand_settlement:acme", "debit", 150));
  CHECK(has_move(ex, "brand_settlement:globex", "credit", 150));
  CHECK(ex.settlements.size() == 1);

  auto l = ok(*g.c, liability());
  CHECK(row_of(l, "acme").outstanding == 0);
  CHECK(row_of(l, "acme").settlement == -150);   // acme owes the coalition
  CHECK(row_of(l, "globex").outstanding == 100);
  CHECK(row_of(l, "globex").liability == 100);   // 100 points x 1 cent
  CHECK(row_of(l, "globex").settlement == 150);

  // A same-brand redemption settles nothing.
  auto same = ok(*g.c, redeem_at("r-2", 1, 50, "globex"));
  CHECK(same.settlements.empty());

  // A reversal gives the money back with the points.
  auto back = ok(*g.c, reverse("rv-1", 1, "r-1"));
  CHECK(back.balance == 450);
  REQUIRE(back.settlements.size() == 1);
  CHECK(back.settlements[0].reversal);
  CHECK(back.settlements[0].amount == 150);
  l = ok(*g.c, liability());
  CHECK(row_of(l, "acme").outstanding == 300);
  CHECK(row_of(l, "acme").liability == 150);
  CHECK(row_of(l, "acme").settlement == 0);
  CHECK(row_of(l, "globex").settlement == 0);

  // A reward of globex paid with acme points settles the same way.
  REQUIRE(g.c->earn("e-acme-2", 1, "acme", 10000, "EUR", t0).ok());  // +100 acme: 400 acme, 150 globex left
  auto lamp = g.c->redeem_reward("rw-1", 1, "lamp");
  REQUIRE(lamp.ok());
  REQUIRE(lamp.settlements.size() == 1);
  CHECK(lamp.settlements[0].points == 250);
  CHECK(lamp.settlements[0].amount == 125);
  // A hold at globex (the key's brand) over 50 acme and 50 globex points,
  // captured: the capture settles the acme part.
  auto h = globex->hold("h-1", 1, 100);
  REQUIRE(h.ok());
  CHECK(h.settlements.empty());  // a hold moves no points between accounts
  auto cap = globex->capture("c-1", 1, h.hold);
  INFO(cap.message);
  REQUIRE(cap.ok());
  REQUIRE(cap.settlements.size() == 1);
  CHECK(cap.settlements[0].points == 50);
  CHECK(cap.settlements[0].amount == 25);
  g.check_verify();
}

TEST_CASE("a refund that claws back another brand's points makes that brand pay the refunding brand",
          "[coalition]") {
  coalition_rig g;
  REQUIRE(g.c->enroll(3, "acme").ok());
  REQUIRE(g.c->earn("a-1", 3, "acme", 30000, "EUR", t0).ok());    // 300 acme
  REQUIRE(g.c->earn("g-1", 3, "globex", 20000, "EUR", t0).ok());  // 200 globex
  REQUIRE(ok(*g.c, redeem_at("r-3", 3, 300, "acme")).settlements.empty());
  // The acme purchase comes back: 300 points owed, only globex's 200 are
  // left, the other 100 become debt.
  auto f = g.c->refund("f-1", 3, "a-1");
  INFO(f.message);
  REQUIRE(f.ok());
  CHECK(f.balance == -100);
  REQUIRE(f.settlements.size() == 1);
  CHECK(f.settlements[0].payer == "brand:globex");
  CHECK(f.settlements[0].payee == "brand:acme");
  CHECK(f.settlements[0].points == 200);
  CHECK(f.settlements[0].amount == 200);
  auto l = ok(*g.c, liability());
  CHECK(row_of(l, "globex").outstanding == 0);  // its points are gone
  CHECK(row_of(l, "acme").outstanding == -100);  // the member owes acme the debt
  CHECK(row_of(l, "acme").liability == -50);
  CHECK(row_of(l, "acme").settlement == 200);
  g.check_verify();
}

TEST_CASE("partner earn and burn settle with the partner to the minor unit, and statements reconcile with the accounts",
          "[coalition]") {
  coalition_rig g;
  auto sky = g.connect(skyair_key);
  REQUIRE(g.c->enroll(2, "globex").ok());
  auto pe = ok(*sky, partner_op(opcode::partner_earn, "p-1", 2, "skyair", 1001, 55000));
  CHECK(pe.balance == 1001);
  CHECK(pe.partner == "skyair");
  REQUIRE(pe.lines.size() == 1);
  CHECK(pe.lines[0].kind == "partner");
  CHECK(pe.lines[0].rule == "skyair");
  CHECK(pe.lines[0].points == 1001);
  REQUIRE(pe.settlements.size() == 1);
  CHECK(pe.settlements[0].payer == "partner:skyair");
  CHECK(pe.settlements[0].payee == "brand:acme");  // skyair buys acme points
  CHECK(pe.settlements[0].amount == 1501);          // floor(1001 x 3/2)
  REQUIRE(g.c->earn("e-3", 2, "globex", 50000, "EUR", t0).ok());  // 500 globex points

  // 1,201 points burned at skyair: the partner's 1,001 acme points, then 200 of globex's.
  auto pb = ok(*sky, partner_op(opcode::partner_burn, "b-1", 2, "skyair", 1201));
  CHECK(pb.balance == 300);
  REQUIRE(pb.settlements.size() == 2);
  CHECK(pb.settlements[0].payer == "brand:acme");
  CHECK(pb.settlements[0].payee == "partner:skyair");
  CHECK(pb.settlements[0].amount == 800);  // floor(1001 x 4/5)
  CHECK(pb.settlements[1].payer == "brand:globex");
  CHECK(pb.settlements[1].amount == 160);  // floor(200 x 4/5)
  auto ex = ok(*g.c, explain("b-1"));
  CHECK(ex.partner == "skyair");
  CHECK(has_move(ex, "partner_payable:skyair", "credit", 960));

  auto st = ok(*sky, statement("", "skyair")).statement;
  CHECK(st.party == "partner:skyair");
  CHECK(st.line_count == 3);
  REQUIRE(st.lines.size() == 3);
  CHECK(st.lines[0].txn == "p-1");
  CHECK(st.lines[0].due == -1501);  // skyair owes
  CHECK(st.lines[0].counterparty == "brand:acme");
  CHECK(st.lines[1].due == 800);
  CHECK(st.lines[2].due == 160);
  CHECK(st.net == -541);
  CHECK(st.opening == 0);
  CHECK(st.closing - st.opening == st.net);

  auto acme = ok(*g.c, statement("acme", "")).statement;
  CHECK(acme.net == 1501 - 800);
  CHECK(acme.closing - acme.opening == acme.net);
  auto globex = ok(*g.c, statement("globex", "")).statement;
  CHECK(globex.net == -160);
  CHECK(acme.net + globex.net + st.net == 0);  // the coalition nets to zero

  // Pages of one line visit every line once.
  std::vector<std::int64_t> dues;
  std::uint64_t after = 0;
  for (int guard = 0; guard < 10; ++guard) {
    auto page = ok(*sky, statement("", "skyair", after, 1)).statement;
    for (const auto& line : page.lines)
      dues.push_back(line.due);
    CHECK(page.net == -541);  // totals always cover the whole period
    if (page.next_after == 0)
      break;
    after = page.next_after;
  }
  CHECK(dues == std::vector<std::int64_t>{-1501, 800, 160});

  // The partner reverses its burn: the payable goes back to zero.
  auto rb = ok(*sky, reverse("rb-1", 2, "b-1"));
  CHECK(rb.balance == 1501);
  CHECK(rb.settlements.size() == 2);
  st = ok(*sky, statement("", "skyair")).statement;
  CHECK(st.net == -1501);
  CHECK(st.line_count == 5);
  g.check_verify();
}

TEST_CASE("a suspended or removed partner's new operations are refused while its history and accounts stay",
          "[coalition]") {
  coalition_rig g;
  REQUIRE(g.c->enroll(5, "acme").ok());
  // hotel is suspended in the program as loaded.
  const auto before = g.eng->ledger().last_seq();
  auto refused = g.c->call(partner_op(opcode::partner_earn, "h-1", 5, "hotel", 100));
  CHECK(refused.code == errc::partner_suspended);
  CHECK(g.c->call(partner_op(opcode::partner_burn, "h-2", 5, "hotel", 1)).code == errc::partner_suspended);
  CHECK(g.eng->ledger().last_seq() == before);
  CHECK(g.c->call(partner_op(opcode::partner_earn, "x-1", 5, "nobody", 100)).code == errc::unknown_partner);

  auto p1 = partner_op(opcode::partner_earn, "p-1", 5, "skyair", 400);
  ok(*g.c, p1);
  g.reload(head_toml + skyair("suspended"));
  CHECK(g.c->call(partner_op(opcode::partner_earn, "p-2", 5, "skyair", 10)).code == errc::partner_suspended);
  CHECK(g.c->call(partner_op(opcode::partner_burn, "p-3", 5, "skyair", 10)).code == errc::partner_suspended);
  auto again = ok(*g.c, p1);  // a retry of what was posted before still gets its answer
  CHECK(again.replayed);
  CHECK(again.balance == 400);
  // Its statement is still there while suspended.
  CHECK(ok(*g.c, statement("", "skyair")).statement.net == -600);

  g.reload(head_toml);  // skyair removed
  CHECK(g.c->call(partner_op(opcode::partner_earn, "p-4", 5, "skyair", 10)).code == errc::unknown_partner);
  auto ex = ok(*g.c, explain("p-1"));
  CHECK(ex.partner == "7");  // no code any more: its id
  REQUIRE(ex.settlements.size() == 1);
  CHECK(ex.settlements[0].payer == "partner:7");
  CHECK(has_move(ex, "partner_receivable:7", "debit", 600));
  // Its points stay the member's and can be spent at the brands.
  CHECK(ok(*g.c, redeem_at("r-5", 5, 400, "acme")).balance == 0);
  g.check_verify();
}

TEST_CASE("a partner key acts for its own partner only, and brand keys read their own brand only", "[coalition]") {
  coalition_rig g;
  auto sky = g.connect(skyair_key);
  auto acme = g.connect(acme_key);
  auto reader = g.connect(test::read_key);
  REQUIRE(g.c->enroll(6, "acme").ok());
  REQUIRE(g.c->earn("e-6", 6, "acme", 50000, "EUR", t0).ok());
  ok(*g.c, redeem_at("r-6", 6, 10, "acme"));
  ok(*sky, partner_op(opcode::partner_burn, "b-6", 6, "skyair", 10));

  struct denied {
    client* who;
    request r;
  };
  request earn;
  earn.op = opcode::earn;
  earn.txn = "d-earn";
  earn.member = 6;
  earn.brand = "acme";
  earn.amount = 100;
  earn.currency = "EUR";
  request history;
  history.op = opcode::history;
  history.member = 6;
  const std::vector<denied> cases{
    {sky.get(), partner_op(opcode::partner_earn, "d-1", 6, "hotel", 10)},
    {sky.get(), earn},
    {sky.get(), redeem_at("d-2", 6, 1, "acme")},
    {sky.get(), history},
    {sky.get(), liability()},
    {sky.get(), activity("acme", 0, 0)},
    {sky.get(), statement("acme", "")},
    {sky.get(), statement("", "hotel")},
    {sky.get(), reverse("d-3", 6, "r-6")},  // not its burn
    {acme.get(), reverse("d-4", 6, "b-6")},  // a partner's burn
    {acme.get(), partner_op(opcode::partner_earn, "d-5", 6, "skyair", 10)},
    {acme.get(), statement("globex", "")},
    {acme.get(), statement("", "skyair")},
    {acme.get(), activity("globex", 0, 0)},
    {reader.get(), partner_op(opcode::partner_burn, "d-6", 6, "skyair", 1)},
  };
  for (const auto& d : cases) {
    INFO(to_string(d.r.op) << " " << d.r.txn);
    const auto before = g.eng->ledger().last_seq();
    auto res = d.who->call(d.r);
    CHECK(res.code == errc::not_authorized);
    CHECK(g.eng->ledger().last_seq() == before);
  }
  CHECK(ok(*sky, [] {
          request r;
          r.op = opcode::balance;
          r.member = 6;
          return r;
        }()).balance == 480);
  CHECK(ok(*sky, statement("", "skyair")).statement.line_count == 1);
  CHECK(ok(*sky, reverse("rb-6", 6, "b-6")).settlements.size() == 1);
  auto mine = ok(*acme, liability());
  REQUIRE(mine.liabilities.size() == 1);  // its own brand only
  CHECK(mine.liabilities[0].brand == "acme");
  CHECK(ok(*reader, liability()).liabilities.size() == 2);
  CHECK(ok(*reader, statement("", "skyair")).statement.net == 0);
  // Reports are refused inside a batch.
  request batch;
  batch.op = opcode::batch;
  auto inner = liability();
  inner.id = 1;
  batch.ops.push_back(inner);
  auto br = g.c->call(batch);
  REQUIRE(br.results.size() == 1);
  CHECK(br.results[0].code == errc::invalid_argument);
  g.check_verify();
}

TEST_CASE("activity over a period counts what moved a brand's points and reconciles with its outstanding",
          "[coalition]") {
  coalition_rig g;
  REQUIRE(g.c->enroll(4, "acme").ok());
  REQUIRE(g.c->earn("x-1", 4, "acme", 30000, "EUR", t0).ok());  // day 0: 300 issued
  const std::uint64_t t1 = t0 + day_us;
  g.clock.set(t1);
  ok(*g.c, redeem_at("x-2", 4, 100, "acme"));                    // day 1: 100 redeemed ...
  ok(*g.c, reverse("x-3", 4, "x-2"));                            // ... and reversed
  REQUIRE(g.c->refund("x-4", 4, "x-1", 10000).ok());             // 100 refunded
  g.clock.set(t1 + day_us);
  ok(*g.c, redeem_at("x-5", 4, 50, "acme"));                     // day 2: 50 redeemed

  auto d0 = ok(*g.c, activity("acme", t0, t1)).activity;
  CHECK(d0.issued == 300);
  CHECK(d0.redeemed == 0);
  CHECK(d0.opening_outstanding == 0);
  CHECK(d0.closing_outstanding == 300);
  auto d1 = ok(*g.c, activity("acme", t1, t1 + day_us)).activity;
  CHECK(d1.issued == 0);
  CHECK(d1.redeemed == 100);
  CHECK(d1.reversed == 100);
  CHECK(d1.refunded == 100);
  CHECK(d1.opening_outstanding == 300);
  CHECK(d1.closing_outstanding == 200);
  CHECK(d1.closing_outstanding - d1.opening_outstanding ==
        d1.issued - d1.refunded - d1.redeemed + d1.reversed - d1.expired);
  auto all = ok(*g.c, activity("acme", 0, 0)).activity;
  CHECK(all.closing_outstanding == 150);
  CHECK(all.closing_liability == 75);
  CHECK(all.closing_outstanding == row_of(ok(*g.c, liability()), "acme").outstanding);
  CHECK(all.last_seq >= all.first_seq);
  auto empty = ok(*g.c, activity("acme", t1 + 5 * day_us, t1 + 6 * day_us)).activity;
  CHECK(empty.last_seq < empty.first_seq);
  CHECK(empty.opening_outstanding == 150);
  CHECK(g.c->call(activity("acme", t1, t0)).code == errc::invalid_argument);
  CHECK(g.c->call(activity("nobody", 0, 0)).code == errc::unknown_brand);
  g.check_verify();
}

TEST_CASE("each coalition operation is allowed or refused by every kind of key, and a refusal posts nothing",
          "[coalition]") {
  coalition_rig g;
  REQUIRE(g.c->enroll(9, "acme").ok());
  REQUIRE(g.c->earn("seed-9", 9, "acme", 1000000, "EUR", t0).ok());
  auto acme = g.connect(acme_key);
  auto reader = g.connect(test::read_key);
  auto sky = g.connect(skyair_key);
  struct who {
    const char* name;
    client* c;
  };
  const std::vector<who> keys{{"admin", g.c.get()}, {"read", reader.get()}, {"brand:acme", acme.get()},
                              {"partner:skyair", sky.get()}};
  struct op_case {
    const char* name;
    std::function<request(int)> make;  // the key's index, for unique txn ids
    std::vector<bool> allowed;         // per key, in the order above
  };
  auto tx = [](const char* what, int k) { return std::string(what) + "-" + std::to_string(k); };
  const std::vector<op_case> cases{
    {"partner_earn", [&](int k) { return partner_op(opcode::partner_earn, tx("pe", k), 9, "skyair", 10); },
     {true, false, false, true}},
    {"partner_burn", [&](int k) { return partner_op(opcode::partner_burn, tx("pb", k), 9, "skyair", 1); },
     {true, false, false, true}},
    {"redeem at acme", [&](int k) { return redeem_at(tx("rd", k), 9, 1, "acme"); }, {true, false, true, false}},
    {"liability", [](int) { return liability(); }, {true, true, true, false}},
    {"activity of acme", [](int) { return activity("acme", 0, 0); }, {true, true, true, false}},
    {"settlement of acme", [](int) { return statement("acme", ""); }, {true, true, true, false}},
    {"settlement of skyair", [](int) { return statement("", "skyair"); }, {true, true, false, true}},
  };
  for (const auto& oc : cases)
    for (std::size_t k = 0; k < keys.size(); ++k) {
      INFO(oc.name << " with the " << keys[k].name << " key");
      const auto before = g.eng->ledger().last_seq();
      auto res = keys[k].c->call(oc.make(static_cast<int>(k)));
      INFO(to_string(res.code) << " " << res.message);
      if (oc.allowed[k]) {
        CHECK(res.ok());
      } else {
        CHECK(res.code == errc::not_authorized);
        CHECK(g.eng->ledger().last_seq() == before);
      }
    }
  g.check_verify();
}

TEST_CASE("a key out of scope is refused whatever the member's state, before any business check, and posts nothing",
          "[coalition]") {
  coalition_rig g;
  auto reader = g.connect(test::read_key);
  auto globex = g.connect(globex_key);
  auto acme = g.connect(acme_key);
  auto sky = g.connect(skyair_key);
  auto hotel = g.connect(hotel_key);
  struct who {
    const char* name;
    client* c;
  };
  const std::vector<who> keys{{"admin", g.c.get()},         {"read", reader.get()},
                              {"brand:globex", globex.get()}, {"brand:acme", acme.get()},
                              {"partner:skyair", sky.get()},  {"partner:hotel", hotel.get()}};
  // Each case gets a member of its own, enrolled at acme, whose points are
  // globex's unless said otherwise; `prepare` sets up what the operation
  // acts on and returns the request. In the "short" variant the member's
  // state makes the operation fail its business check (`refusal`) when the
  // key may ask for it at all.
  std::uint64_t next_member = 1000;
  auto fund = [&](std::uint64_t m, std::int64_t points, const std::string& brand) {
    REQUIRE(g.c->earn("fund-" + std::to_string(m) + "-" + brand, m, brand, points * 100, "EUR", t0).ok());
  };
  auto admin_ok = [&](const request& r) { return ok(*g.c, r); };
  struct op_case {
    const char* name;
    std::function<request(std::uint64_t member, bool short_of, const std::string& txn)> prepare;
    std::vector<bool> allowed;  // per key, in the order above
    errc refusal;               // the business refusal of the short variant; ok: no such variant
  };
  const std::vector<bool> globex_only{true, false, true, false, false, false};
  const std::vector<bool> acme_only{true, false, false, true, false, false};
  const std::vector<bool> skyair_only{true, false, false, false, true, false};
  const std::vector<op_case> cases{
    {"enroll at globex",
     [&](std::uint64_t m, bool short_of, const std::string&) {
       request r;
       r.op = opcode::enroll;
       r.member = short_of ? m : m + 500'000;  // m is enrolled (at acme)
       r.brand = "globex";
       return r;
     },
     globex_only, errc::member_exists},
    {"capture of a hold at globex",
     [&](std::uint64_t m, bool short_of, const std::string& txn) {
       fund(m, 200, "globex");
       auto h = g.c->hold(txn + "-h", m, 100, "globex");
       REQUIRE(h.ok());
       request r = member_op(opcode::capture, txn, m);
       r.hold = h.hold;
       r.points = short_of ? 150 : 50;  // more than the hold holds
       return r;
     },
     globex_only, errc::invalid_amount},
    {"release of a hold at globex",
     [&](std::uint64_t m, bool, const std::string& txn) {
       fund(m, 200, "globex");
       auto h = g.c->hold(txn + "-h", m, 100, "globex");
       REQUIRE(h.ok());
       request r = member_op(opcode::release, txn, m);
       r.hold = h.hold;
       return r;
     },
     globex_only, errc::ok},
    {"refund of a purchase at globex",
     [&](std::uint64_t m, bool short_of, const std::string& txn) {
       fund(m, 2000, "globex");
       if (short_of)  // spent: the clawback would leave a debt over negative_balance_max (1000)
         admin_ok(redeem_at(txn + "-spent", m, 2000, "globex"));
       request r = member_op(opcode::refund, txn, m);
       r.ref = "fund-" + std::to_string(m) + "-globex";
       return r;
     },
     globex_only, errc::negative_balance_limit},
    {"reverse_redemption of a redemption at globex",
     [&](std::uint64_t m, bool short_of, const std::string& txn) {
       fund(m, 200, "globex");
       admin_ok(redeem_at(txn + "-rd", m, 100, "globex"));
       if (short_of)
         admin_ok(reverse(txn + "-first", m, txn + "-rd"));
       return reverse(txn, m, txn + "-rd");
     },
     globex_only, errc::already_reversed},
    {"reverse_redemption of a burn at skyair",
     [&](std::uint64_t m, bool short_of, const std::string& txn) {
       fund(m, 200, "globex");
       admin_ok(partner_op(opcode::partner_burn, txn + "-pb", m, "skyair", 100));
       if (short_of)
         admin_ok(reverse(txn + "-first", m, txn + "-pb"));
       return reverse(txn, m, txn + "-pb");
     },
     skyair_only, errc::already_reversed},
    {"partner_earn at skyair",
     [&](std::uint64_t m, bool, const std::string& txn) {
       return partner_op(opcode::partner_earn, txn, m, "skyair", 100, 5000);
     },
     skyair_only, errc::ok},
    {"partner_burn at skyair",
     [&](std::uint64_t m, bool short_of, const std::string& txn) {
       fund(m, short_of ? 50 : 200, "globex");
       return partner_op(opcode::partner_burn, txn, m, "skyair", 100);
     },
     skyair_only, errc::insufficient_points},
    {"redeem_reward of globex's lamp",
     [&](std::uint64_t m, bool short_of, const std::string& txn) {
       fund(m, short_of ? 200 : 300, "globex");  // it costs 250
       request r = member_op(opcode::redeem_reward, txn, m);
       r.reward = "lamp";
       return r;
     },
     globex_only, errc::insufficient_points},
    {"redeem at globex",
     [&](std::uint64_t m, bool short_of, const std::string& txn) {
       fund(m, short_of ? 50 : 200, "acme");
       return redeem_at(txn, m, 100, "globex");
     },
     globex_only, errc::insufficient_points},
    {"hold at globex",
     [&](std::uint64_t m, bool short_of, const std::string& txn) {
       fund(m, short_of ? 50 : 200, "acme");
       request r = member_op(opcode::hold, txn, m);
       r.points = 100;
       r.brand = "globex";
       return r;
     },
     globex_only, errc::insufficient_points},
    {"transfer from a member of acme",
     [&](std::uint64_t m, bool short_of, const std::string& txn) {
       fund(m, short_of ? 50 : 200, "globex");
       request r = member_op(opcode::transfer, txn, m);
       r.to = 9;
       r.points = 100;
       return r;
     },
     acme_only, errc::insufficient_points},
    {"link_alias of a member of acme",
     [&](std::uint64_t m, bool short_of, const std::string& txn) {
       request r = member_op(opcode::link_alias, txn, m);
       r.alias = short_of ? "taken" : "card-" + txn;  // "taken" names member 9
       return r;
     },
     acme_only, errc::alias_taken},
  };
  REQUIRE(g.c->enroll(9, "acme").ok());
  REQUIRE(g.c->link_alias("alias-9", 9, "taken").ok());
  for (const auto& oc : cases)
    for (const bool short_of : {false, true}) {
      if (short_of && oc.refusal == errc::ok)
        continue;
      for (std::size_t k = 0; k < keys.size(); ++k) {
        const std::uint64_t m = next_member++;
        const std::string txn = "k" + std::to_string(m);
        REQUIRE(g.c->enroll(m, "acme").ok());
        const request r = oc.prepare(m, short_of, txn);
        const errc expected = !oc.allowed[k] ? errc::not_authorized : short_of ? oc.refusal : errc::ok;
        INFO(oc.name << (short_of ? " (short)" : "") << " with the " << keys[k].name << " key");
        const auto before = g.eng->ledger().last_seq();
        auto res = keys[k].c->call(r);
        INFO(to_string(res.code) << " " << res.message);
        CHECK(res.code == expected);
        if (expected == errc::ok)
          CHECK(g.eng->ledger().last_seq() > before);
        else
          CHECK(g.eng->ledger().last_seq() == before);
      }
    }
  g.check_verify();
}
