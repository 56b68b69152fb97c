// The `quote` operation over real TCP: what an earn of a basket would give
// (points, rule lines, balance and tier after), computed by the earn's own
// code and posting nothing — no journal entry, no reservation of a rule's
// program-wide cap, no change to the member's book. Runs the example
// program (config/examples/retail.toml) on an in-process engine.
#include "command.hpp"
#include "engine_rig.hpp"

#include <fstream>
#include <sstream>
#include <tuple>

using namespace loyalty;
using namespace loyalty::io;

namespace {

// 2026-11-27T09:00:00Z: a Friday, 10:00 store time (UTC+01:00), inside the
// coffee mornings and the Black Friday weekend of the example program.
constexpr std::uint64_t t0 = 1'795'770'000'000'000ull;
constexpr std::uint64_t day = 86'400'000'000ull;

constexpr const char* partner_key = "test-sky-key-0123456789";  // scope partner:skyair

std::string retail_program() {
  std::ifstream in(LOYALTY_SOURCE_DIR "/config/examples/retail.toml");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The rig's brand key is for a brand the example program does not have: it
// becomes acme's; and a partner key for skyair.
struct quote_rig : test::engine_rig {
  quote_rig()
    : test::engine_rig("quote", retail_program(), t0, [](engine_options& o) {
        for (auto& k : o.settings.keys)
          if (k.scope == key_scope::brand)
            k.scope_code = "acme";
        o.settings.keys.push_back(test::make_key(4, "sky", partner_key, key_scope::partner, "skyair"));
      }) {}

  void enroll(std::uint64_t m, const std::string& brand = "acme") {
    auto r = c->enroll(m, brand);
    INFO(r.message);
    REQUIRE(r.ok());
  }
};

item it(const char* sku, const char* category, std::int64_t amount) { return item{sku, category, 1, amount}; }

struct basket {
  std::string brand;
  std::int64_t amount = 0;
  std::vector<item> items;
  std::string channel;
  std::uint64_t at = t0;
};

request quote_of(std::uint64_t member, const basket& b) {
  request r;
  r.op = opcode::quote;
  r.member = member;
  r.brand = b.brand;
  r.amount = b.amount;
  r.currency = "EUR";
  r.occurred_at_us = b.at;
  r.items = b.items;
  r.channel = b.channel;
  return r;
}

request earn_of(std::uint64_t member, const basket& b, const std::string& txn) {
  request r = quote_of(member, b);
  r.op = opcode::earn;
  r.txn = txn;
  return r;
}

using line_tuple = std::tuple<std::string, std::string, std::int64_t, std::int64_t>;
std::vector<line_tuple> lines_of(const response& r) {
  std::vector<line_tuple> v;
  for (const auto& l : r.lines)
    v.emplace_back(l.kind, l.rule, l.points, l.amount);
  return v;
}

// What a quote says of the member: points, balance now and after, tier now
// and after, next tier, qualifying metric and what is missing for it after.
using summary_tuple =
  std::tuple<std::int64_t, std::int64_t, std::int64_t, std::string, std::string, std::string, std::int64_t, std::int64_t>;
summary_tuple summary(const response& q) {
  return {q.points, q.balance, q.balance_after, q.tier, q.tier_after, q.next_tier, q.qualifying, q.to_next_tier};
}

bool has_rule(const response& r, const std::string& rule) {
  for (const auto& l : r.lines)
    if (l.rule == rule)
      return true;
  return false;
}

// Asserts that a quote is what the earn that followed it gave.
void check_same(const response& q, const response& e) {
  INFO(q.message << " / " << e.message);
  REQUIRE(q.ok());
  REQUIRE(e.ok());
  CHECK(q.quoted);
  CHECK(q.points == e.points);
  CHECK(lines_of(q) == lines_of(e));
  CHECK(q.balance_after == e.balance);
  CHECK(q.tier_after == e.tier);
  CHECK(q.member == e.member);
}

} // namespace

TEST_CASE("a quote gives the points lines and tier of the earn that follows it basket by basket", "[quote]") {
  quote_rig g;
  g.enroll(1);
  const std::vector<basket> baskets{
    // First order in the Globex app: base 60 + first-app-order 250; the
    // first earn also anchors the yearly tier review (a tier_state record).
    {"globex", 3000, {}, "app"},
    // Coffee on a weekday morning (double-coffee) with a reusable bag (bonus).
    {"acme", 800, {it("C-1", "coffee", 500), it("ACME-BAG-01", "bags", 300)}, "store"},
    // Black Friday electronics at Globex: triple, from 50.00 EUR.
    {"globex", 12000, {it("TV-9", "electronics", 10000), it("CAB-1", "cables", 2000)}, ""},
    // Crosses silver (1000 qualifying points).
    {"acme", 10000, {}, ""},
    // As silver: the tier line (+25 %).
    {"acme", 2000, {}, ""},
  };
  std::int64_t balance = 0;
  bool crossed = false, tier_line = false;
  for (std::size_t i = 0; i < baskets.size(); ++i) {
    INFO("basket " << i);
    const auto before = g.eng->ledger().last_seq();
    auto q = g.c->call(quote_of(1, baskets[i]));
    CHECK(g.eng->ledger().last_seq() == before);
    REQUIRE(q.ok());
    CHECK(q.balance == balance);
    auto e = g.c->call(earn_of(1, baskets[i], "buy-" + std::to_string(i)));
    check_same(q, e);
    // next_tier / to_next_tier describe the member after the earn, as balance does then.
    auto b = g.c->balance(1);
    REQUIRE(b.ok());
    CHECK(q.next_tier == b.next_tier);
    CHECK(q.to_next_tier == b.to_next_tier);
    CHECK(q.qualifying == b.qualifying);
    CHECK(q.tier_after == b.tier);
    crossed = crossed || q.tier != q.tier_after;
    tier_line = tier_line || (q.lines.size() > 1 && q.lines[1].kind == "tier");
    balance = e.balance;
  }
  CHECK(crossed);
  CHECK(tier_line);
  g.check_verify();
}

TEST_CASE("the quote of each basket names the rules of the example program that fire", "[quote]") {
  quote_rig g;
  g.enroll(1);
  auto first = g.c->call(quote_of(1, {"globex", 3000, {}, "app"}));
  REQUIRE(first.ok());
  CHECK(lines_of(first) == std::vector<line_tuple>{{"base", "", 60, 3000}, {"rule", "first-app-order", 250, 3000}});
  CHECK(summary(first) == summary_tuple{310, 0, 310, "member", "member", "silver", 310, 690});
  auto coffee = g.c->call(quote_of(1, {"acme", 800, {it("C-1", "coffee", 500), it("ACME-BAG-01", "bags", 300)}}));
  REQUIRE(coffee.ok());
  CHECK(lines_of(coffee) ==
        std::vector<line_tuple>{
          {"base", "", 8, 800}, {"rule", "double-coffee", 5, 500}, {"rule", "reusable-bag", 20, 300}});
  // One basket over silver's threshold: the tier changes with it.
  auto big = g.c->call(quote_of(1, {"acme", 150000, {}, ""}));
  REQUIRE(big.ok());
  CHECK(summary(big) == summary_tuple{1500, 0, 1500, "member", "silver", "gold", 1500, 3500});
  // Nothing was posted: the member still has only its enrollment.
  auto h = g.c->history(1);
  REQUIRE(h.ok());
  REQUIRE(h.entries.size() == 1);
  CHECK(h.entries[0].kind == "enroll");
}

TEST_CASE("the quote example of PROTOCOL.md gives what the document shows", "[quote]") {
  quote_rig g;
  g.enroll(1001);
  REQUIRE(g.c->earn("prior", 1001, "acme", 99'000, "EUR", t0).points == 990);
  auto q = g.c->quote(1001, "acme", 1200, "EUR", 1'795'770'000'000'000ull,
                      {it("C-1", "coffee", 400), it("B-7", "bakery", 800)});
  INFO(q.message);
  REQUIRE(q.ok());
  CHECK(q.member == 1001);
  CHECK(summary(q) == summary_tuple{16, 990, 1006, "member", "silver", "gold", 1006, 3994});
  CHECK(lines_of(q) == std::vector<line_tuple>{{"base", "", 12, 1200}, {"rule", "double-coffee", 4, 400}});
  using outcome_tuple = std::tuple<std::string, bool, std::int64_t, std::string>;
  std::vector<outcome_tuple> outcomes;
  for (const auto& x : q.rules)
    outcomes.emplace_back(x.rule, x.won, x.points, x.why);
  CHECK(outcomes == std::vector<outcome_tuple>{{"double-coffee", true, 4, "counted"},
                                               {"black-friday-electronics", false, 0, "not_matched"},
                                               {"reusable-bag", false, 0, "not_matched"},
                                               {"first-app-order", false, 0, "not_matched"}});
  CHECK(q.quoted);
}

TEST_CASE("a quote posts nothing and leaves the program counters of capped rules alone", "[quote]") {
  quote_rig g;
  g.enroll(1);
  g.enroll(2, "globex");
  // black-friday-electronics has a budget of 1,000,000 points over all
  // members: an earn takes 999,000 of it (electronics of 499,500.00 EUR at
  // Acme give 2 extra points per euro), leaving 1,000.
  auto huge = g.c->earn("bf-huge", 2, "acme", 49'950'000, "EUR", t0, {it("TV-X", "electronics", 49'950'000)});
  INFO(huge.message);
  REQUIRE(huge.ok());
  REQUIRE(has_rule(huge, "black-friday-electronics"));
  const auto seq = g.eng->ledger().last_seq();
  const auto counters = g.eng->ledger().counters();
  const auto bal = g.c->balance(1);
  REQUIRE(bal.ok());
  // 500.00 EUR of electronics would take exactly what is left; quoted three
  // times, it never reserves it.
  const basket tv{"acme", 50'000, {it("TV-1", "electronics", 50'000)}, ""};
  response q;
  for (int i = 0; i < 3; ++i) {
    q = g.c->call(quote_of(1, tv));
    REQUIRE(q.ok());
    CHECK(lines_of(q) == std::vector<line_tuple>{{"base", "", 500, 50'000},
                                                 {"rule", "black-friday-electronics", 1000, 50'000}});
  }
  CHECK(g.eng->ledger().last_seq() == seq);
  CHECK(g.eng->ledger().counters() == counters);
  auto bal2 = g.c->balance(1);
  REQUIRE(bal2.ok());
  CHECK(bal2.balance == bal.balance);
  CHECK(bal2.lifetime == bal.lifetime);
  CHECK(bal2.qualifying == bal.qualifying);
  CHECK(g.eng->ledger().last_seq() == seq);  // balance posts nothing either (no housekeeping due)
  // The earn gets what the quotes showed: nothing of the budget went to them.
  auto e = g.c->call(earn_of(1, tv, "bf-tv"));
  check_same(q, e);
  // The budget is spent: the quote says so, as the earn after it does.
  auto q2 = g.c->call(quote_of(1, tv));
  REQUIRE(q2.ok());
  CHECK_FALSE(has_rule(q2, "black-friday-electronics"));
  auto e2 = g.c->call(earn_of(1, tv, "bf-tv-2"));
  check_same(q2, e2);
  g.check_verify();
}

TEST_CASE("a quote counts the expiry due before the earn but does not post it", "[quote]") {
  quote_rig g;
  g.enroll(1);
  REQUIRE(g.c->earn("old-buy", 1, "acme", 20000, "EUR", t0).ok());
  // Four years later: the lot expired (two years, to the end of that year)
  // and the member's tier was reviewed away; nothing has run for it since.
  g.clock.advance(4 * 365 * day);
  const basket b{"acme", 5000, {}, "", t0 + 4 * 365 * day};
  const auto seq = g.eng->ledger().last_seq();
  auto q = g.c->call(quote_of(1, b));
  INFO(q.message);
  REQUIRE(q.ok());
  CHECK(g.eng->ledger().last_seq() == seq);
  CHECK(q.balance == 0);  // the 200 points are expired, as the earn will post first
  CHECK(q.balance_after == 50);
  auto e = g.c->call(earn_of(1, b, "new-buy"));
  check_same(q, e);
  auto h = g.c->history(1);
  REQUIRE(h.ok());
  REQUIRE(h.entries.size() >= 2);
  CHECK(h.entries[0].kind == "earn");
  CHECK(h.entries[1].kind == "expire");
  g.check_verify();
}

TEST_CASE("a quote is refused as the earn is and then posts nothing", "[quote]") {
  quote_rig g;
  g.enroll(1);
  REQUIRE(g.c->earn("seed", 1, "acme", 1000, "EUR", t0).ok());
  const auto seq = g.eng->ledger().last_seq();
  const basket ok{"acme", 1000, {}, ""};
  auto expect = [&](request r, errc code) {
    auto res = g.c->call(std::move(r));
    INFO(to_string(res.code) << ": " << res.message);
    CHECK(res.code == code);
    CHECK_FALSE(res.quoted);
    CHECK(g.eng->ledger().last_seq() == seq);
    return res;
  };
  expect(quote_of(999, ok), errc::unknown_member);
  auto by_alias = quote_of(0, ok);
  by_alias.alias = "no-such-card";
  expect(by_alias, errc::unknown_alias);
  auto with_txn = quote_of(1, ok);
  with_txn.txn = "q-1";
  auto t = expect(with_txn, errc::invalid_argument);
  CHECK(t.message.find("txn") != std::string::npos);
  auto usd = quote_of(1, ok);
  usd.currency = "USD";
  expect(usd, errc::currency_mismatch);
  auto brand = quote_of(1, ok);
  brand.brand = "initech";
  expect(brand, errc::unknown_brand);
  auto items = quote_of(1, ok);
  items.items = {it("a", "", 400), it("b", "", 500)};
  expect(items, errc::invalid_argument);
  auto zero = quote_of(1, ok);
  zero.amount = 0;
  expect(zero, errc::invalid_amount);
  auto negative_item = quote_of(1, ok);
  negative_item.items = {it("a", "", 1500), it("b", "", -500)};
  expect(negative_item, errc::invalid_amount);
  // The same requests as earns are refused with the same codes.
  auto earn_usd = earn_of(1, ok, "e-usd");
  earn_usd.currency = "USD";
  CHECK(g.c->call(earn_usd).code == errc::currency_mismatch);
  CHECK(g.c->call(earn_of(999, ok, "e-999")).code == errc::unknown_member);
  CHECK(g.eng->ledger().last_seq() == seq);
  // A quote by alias answers with the member id.
  REQUIRE(g.c->link_alias("link-1", 1, "card-1").ok());
  auto q = g.c->quote("card-1", "acme", 1000, "EUR", t0);
  REQUIRE(q.ok());
  CHECK(q.member == 1);
  CHECK(q.points == 10);
}

TEST_CASE("quotes in a batch see the operations before them on the member", "[quote]") {
  quote_rig g;
  g.enroll(1);
  const basket b{"acme", 4000, {}, ""};
  request batch;
  batch.op = opcode::batch;
  batch.ops = {quote_of(1, b), earn_of(1, b, "batch-buy"), quote_of(1, b), quote_of(1, b)};
  batch.ops.back().txn = "not-allowed";
  for (std::size_t i = 0; i < batch.ops.size(); ++i)
    batch.ops[i].id = i + 1;
  auto r = g.c->call(batch);
  REQUIRE(r.ok());
  REQUIRE(r.results.size() == 4);
  check_same(r.results[0], r.results[1]);
  CHECK(r.results[0].balance == 0);
  REQUIRE(r.results[2].ok());
  CHECK(r.results[2].balance == r.results[1].balance);  // after the earn before it
  CHECK(r.results[2].balance_after == r.results[1].balance + r.results[2].points);
  CHECK(r.results[3].code == errc::invalid_argument);
  auto h = g.c->history(1);
  REQUIRE(h.ok());
  CHECK(h.entries.size() == 2);  // the enrollment and the one earn
}

TEST_CASE("a read key may quote but not earn and a brand key quotes at its own brand only", "[quote]") {
  quote_rig g;
  g.enroll(1);
  g.enroll(2, "globex");
  auto reader = g.connect(test::read_key);
  auto shop = g.connect(test::shop_key);  // brand:acme
  auto sky = g.connect(partner_key);
  const auto seq = g.eng->ledger().last_seq();
  for (std::uint64_t m : {1, 2}) {
    auto q = reader->quote(m, "globex", 1000, "EUR", t0);
    INFO(q.message);
    CHECK(q.ok());
    CHECK(q.points == 20);
  }
  CHECK(reader->earn("r-1", 1, "acme", 1000, "EUR", t0).code == errc::not_authorized);
  // A brand key quotes where it may earn: at its brand, for any member.
  CHECK(shop->quote(2, "acme", 1000, "EUR", t0).ok());
  CHECK(shop->quote(1, "globex", 1000, "EUR", t0).code == errc::not_authorized);
  CHECK(shop->earn("s-1", 1, "globex", 1000, "EUR", t0).code == errc::not_authorized);
  // A partner key may not earn at a brand, so it may not quote either.
  CHECK(sky->quote(1, "acme", 1000, "EUR", t0).code == errc::not_authorized);
  // In a batch, each quote is checked on its own.
  request batch;
  batch.op = opcode::batch;
  batch.ops = {quote_of(1, {"acme", 1000, {}, ""}), quote_of(1, {"globex", 1000, {}, ""})};
  batch.ops[0].id = 1;
  batch.ops[1].id = 2;
  auto br = shop->call(batch);
  REQUIRE(br.results.size() == 2);
  CHECK(br.results[0].ok());
  CHECK(br.results[1].code == errc::not_authorized);
  CHECK(g.eng->ledger().last_seq() == seq);
}

TEST_CASE("loyaltyctl quote prints the quote and posts nothing", "[quote]") {
  quote_rig g;
  g.enroll(1);
  const auto seq = g.eng->ledger().last_seq();
  const std::string cmd = std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(g.eng->port()) + " --key " +
                          test::read_key + " --json quote --member 1 --brand acme --amount 800 --occurred-at " +
                          std::to_string(t0) + " --items C-1:coffee:1:500,ACME-BAG-01:bags::300 2>&1";
  int status = -1;
  const std::string out = test::run_command(cmd, status);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("\"op\":\"quote\"") != std::string::npos);
  CHECK(out.find("\"points\":33") != std::string::npos);
  CHECK(out.find("\"rule\":\"double-coffee\"") != std::string::npos);
  CHECK(out.find("\"quoted\":true") != std::string::npos);
  CHECK(g.eng->ledger().last_seq() == seq);
  // --txn is not an option of quote.
  const std::string bad = std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(g.eng->port()) +
                          " quote --txn t-1 --member 1 --brand acme --amount 800 >/dev/null 2>&1";
  CHECK(std::system(bad.c_str()) != 0);
}
