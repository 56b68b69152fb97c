// A seeded operation-sequence fuzzer over a real engine (LMDB in a temporary
// directory, CAF member actors, real TCP): random enrolls, earns with random
// baskets, events, holds, captures, releases, redemptions, refunds,
// reversals, transfers, adjustments, expiries, clock jumps, engine restarts
// and retries of earlier txn ids. Every answer must be ok or an error that
// operation may legitimately give, and after every step, for every member:
//  - its points account equals the lots plus holds minus debt of the book
//    folded from its journal entries, and
//  - the balance the engine answers (available, pending, held) equals that
//    book's view: available = the sum of its available, unexpired lots - debt;
// every few steps and after every restart the whole ledger must verify.
// A failure names the seed, the step and the operation.
//
// Longer runs: LOYALTY_FUZZ_SEED=<seed> LOYALTY_FUZZ_STEPS=20000 ./build/tests/ops_fuzz_test
// (with LOYALTY_FUZZ_SEED set, only that seed runs).
#include "engine_rig.hpp"

#include "actors/policy.hpp"
#include "io/client.hpp"
#include "io/engine.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <random>
#include <set>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z
constexpr std::uint64_t minute = 60'000'000ull;
constexpr std::uint64_t day = 86'400'000'000ull;
constexpr std::uint64_t members = 6;

// Short lifetimes so that pending periods, expiry, inactivity and hold TTLs
// all happen within a run; caps small enough to be reached.
constexpr const char* program_toml = R"(
[program]
name = "fuzz"
currency = "EUR"

[[brands]]
id = 1
code = "shop"
name = "Shop"
earn_rate = { num = 1, den = 100 }

[[brands]]
id = 2
code = "web"
name = "Web"
earn_rate = { num = 3, den = 200 }

[tier_policy]
metric = "qualifying_points"
window_days = 30
review = "month"
grace_days = 3

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }

[[tiers]]
name = "silver"
threshold = 200
multiplier = { num = 5, den = 4 }

[[rules]]
id = 1
code = "welcome"
trigger = "enroll"
bonus_points = 25
cap_total = 100

[[rules]]
id = 2
code = "first-buy"
trigger = "first_purchase"
bonus_points = 40

[[rules]]
id = 3
code = "web-double"
trigger = "purchase"
channels = ["web"]
multiplier = { num = 2, den = 1 }
cap_per_member = 300

[[rules]]
id = 4
code = "toys"
trigger = "purchase"
categories = ["toys"]
multiplier = { num = 3, den = 1 }
cap_total = 500

[[rules]]
id = 5
code = "survey"
trigger = "event"
event = "survey"
bonus_points = 15
uses_per_member_max = 2

[lifecycle]
pending_days = 2
expiry_days = 20
inactivity_days = 12
negative_balance_max = 150
hold_ttl_default_s = 600
hold_ttl_max_s = 7200

[[rewards]]
id = 1
code = "mug"
name = "Mug"
cost = 40
stock = 3
brand = "shop"

[[rewards]]
id = 2
code = "ticket"
name = "Ticket"
cost = 25
brand = "web"
)";

struct engine_rig : test::engine_rig {
  engine_rig() : test::engine_rig("fuzz", program_toml, t0) {}
};

std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

struct sent {
  request req;
  response res;
  bool admin = false;
};

class fuzzer {
public:
  explicit fuzzer(std::uint64_t seed) : rng_(seed) {}

  void run(std::uint64_t steps) {
    for (step_ = 1; step_ <= steps; ++step_) {
      CAPTURE(step_);
      one_step();
      INFO("after operation " << last_);
      check_members();
      if (step_ % 25 == 0)
        check_verify();
    }
    check_verify();
  }

  // Operations that succeeded and moved points (or enrolled), by kind.
  std::map<opcode, std::uint64_t> moved_;

private:
  std::uint64_t pick_member() { return 1 + rng_() % members; }
  std::int64_t upto(std::int64_t n) { return static_cast<std::int64_t>(rng_() % static_cast<std::uint64_t>(n)); }
  std::string txn() { return "f" + std::to_string(next_txn_++); }

  // Sends, checks the code is one the operation may give, remembers it.
  response call(request r, std::initializer_list<errc> allowed, bool as_admin = false) {
    last_ = std::string(to_string(r.op)) + " member " + std::to_string(r.member) + " txn " + r.txn;
    auto res = (as_admin ? g_.admin : g_.c)->call(r);
    INFO("answer: " << to_string(res.code) << " " << res.message);
    bool fine = res.ok();
    for (auto e : allowed)
      fine = fine || res.code == e;
    if (!enrolled_.count(r.member) && r.op != opcode::enroll && res.code == errc::unknown_member)
      fine = true;
    REQUIRE(fine);
    if (!r.txn.empty() && res.ok())
      done_.push_back({r, res, as_admin});
    if (res.ok() && (res.points != 0 || r.op == opcode::enroll || r.op == opcode::expire))
      ++moved_[r.op];
    return res;
  }

  request base(opcode op, std::uint64_t m, bool with_txn = true) {
    request r;
    r.op = op;
    r.member = m;
    if (with_txn)
      r.txn = txn();
    return r;
  }

  void one_step() {
    const int x = static_cast<int>(rng_() % 100);
    const std::uint64_t m = pick_member();
    if (x < 6) {  // enroll
      auto r = base(opcode::enroll, m, false);
      r.brand = rng_() % 2 ? "shop" : "web";
      auto res = call(r, {errc::member_exists});
      if (res.ok())
        enrolled_.insert(m);
    } else if (x < 28) {  // earn, with or without a basket
      auto r = base(opcode::earn, m);
      r.brand = rng_() % 2 ? "shop" : "web";
      r.currency = "EUR";
      r.occurred_at_us = g_.clock.now_us() - static_cast<std::uint64_t>(upto(3)) * minute;
      r.channel = rng_() % 3 == 0 ? "web" : "store";
      const int items = upto(4);
      for (int i = 0; i < items; ++i) {
        item it;
        it.sku = "sku" + std::to_string(upto(5));
        it.category = rng_() % 3 == 0 ? "toys" : "home";
        it.amount = 1 + upto(8000);
        r.amount += it.amount;
        r.items.push_back(it);
      }
      if (items == 0)
        r.amount = 1 + upto(20000);
      auto res = call(r, {});
      if (res.ok())
        earns_.push_back({m, r.txn});
    } else if (x < 33) {  // event
      auto r = base(opcode::event, m);
      r.event = rng_() % 5 == 0 ? "karaoke" : "survey";
      call(r, {errc::unknown_event});
    } else if (x < 43) {  // hold
      auto r = base(opcode::hold, m);
      r.points = 1 + upto(120);
      r.ttl_s = rng_() % 4 == 0 ? 0 : static_cast<std::uint64_t>(1 + upto(9000));
      auto res = call(r, {errc::insufficient_points, errc::invalid_argument});
      if (res.ok())
        holds_.push_back({m, res.hold});
    } else if (x < 50) {  // capture or release an open (or long gone) hold
      if (holds_.empty())
        return;
      auto [hm, hid] = holds_[rng_() % holds_.size()];
      const bool capture = rng_() % 2 == 0;
      auto r = base(capture ? opcode::capture : opcode::release, hm);
      r.hold = rng_() % 10 == 0 ? hid + 1000 : hid;
      if (capture && rng_() % 2 == 0)
        r.points = 1 + upto(130);
      call(r, {errc::unknown_hold, errc::invalid_amount});
    } else if (x < 57) {  // redeem points or a reward
      if (rng_() % 2 == 0) {
        auto r = base(opcode::redeem, m);
        r.points = 1 + upto(150);
        auto res = call(r, {errc::insufficient_points, errc::invalid_argument});
        if (res.ok())
          redemptions_.push_back({m, r.txn});
      } else {
        auto r = base(opcode::redeem_reward, m);
        r.reward = rng_() % 2 == 0 ? "mug" : "ticket";
        auto res = call(r, {errc::insufficient_points, errc::out_of_stock, errc::invalid_argument});
        if (res.ok())
          redemptions_.push_back({m, r.txn});
      }
    } else if (x < 66) {  // refund by amount, by items or in full
      if (earns_.empty())
        return;
      auto [em, etxn] = earns_[rng_() % earns_.size()];
      auto r = base(opcode::refund, rng_() % 10 == 0 ? m : em);
      r.ref = etxn;
      const int how = upto(3);
      if (how == 0)
        r.amount = 1 + upto(6000);
      if (how == 1) {
        item it;
        it.sku = "sku" + std::to_string(upto(5));
        it.category = rng_() % 2 ? "toys" : "home";
        it.amount = 1 + upto(4000);
        r.items.push_back(it);
      }
      call(r, {errc::already_reversed, errc::invalid_amount, errc::negative_balance_limit, errc::unknown_txn,
               errc::invalid_argument});
    } else if (x < 71) {  // reverse a redemption
      if (redemptions_.empty())
        return;
      auto [rm, rtxn] = redemptions_[rng_() % redemptions_.size()];
      auto r = base(opcode::reverse_redemption, rm);
      r.ref = rtxn;
      call(r, {errc::already_reversed, errc::unknown_txn});
    } else if (x < 78) {  // transfer
      auto r = base(opcode::transfer, m);
      r.to = pick_member();
      r.points = 1 + upto(80);
      call(r, {errc::insufficient_points, errc::same_member, errc::unknown_member, errc::invalid_argument});
    } else if (x < 82) {  // admin adjustment
      auto r = base(opcode::adjust, m);
      r.points = rng_() % 2 == 0 ? 1 + upto(100) : -(1 + upto(100));
      r.reason = "fuzz step " + std::to_string(step_);
      r.brand = rng_() % 2 ? "shop" : "web";
      call(r, {errc::negative_balance_limit}, true);
    } else if (x < 85) {  // expire one member or all
      auto r = base(opcode::expire, m, false);
      if (rng_() % 2 == 0) {
        r.member = 0;
        last_ = "expire all";
        auto res = g_.admin->call(r);
        INFO(res.message);
        REQUIRE(res.ok());
      } else {
        r.has_member = true;
        call(r, {}, true);
      }
    } else if (x < 93) {  // time passes: minutes to weeks
      static constexpr std::uint64_t steps[] = {minute, 10 * minute, day / 2, day, 3 * day, 8 * day};
      g_.clock.advance(steps[rng_() % std::size(steps)]);
      last_ = "clock +" + std::to_string(g_.clock.now_us() - t0) + " us since start";
    } else if (x < 95) {  // restart
      last_ = "restart";
      g_.restart();
      check_verify();
    } else {  // retry an earlier successful request: same content, or changed
      if (done_.empty())
        return;
      const auto& s = done_[rng_() % done_.size()];
      auto r = s.req;
      r.id = 0;
      const bool change = rng_() % 3 == 0;
      if (change)
        mutate(r);
      last_ = std::string("retry ") + (change ? "changed " : "") + to_string(r.op) + " txn " + r.txn;
      INFO(last_);
      auto res = (s.admin ? g_.admin : g_.c)->call(r);
      INFO("answer: " << to_string(res.code) << " " << res.message);
      if (change) {
        CHECK(res.code == errc::txn_id_conflict);
      } else {
        REQUIRE(res.ok());
        CHECK(res.replayed);
        CHECK(res.seq == s.res.seq);
      }
    }
  }

  // The same request with one content field changed (still well-formed).
  static void mutate(request& r) {
    switch (r.op) {
      case opcode::earn:
      case opcode::event: r.occurred_at_us += 1; break;
      case opcode::hold:
      case opcode::redeem:
      case opcode::transfer:
      case opcode::capture: r.points += 1; break;
      case opcode::release: r.hold += 1; break;
      case opcode::redeem_reward: r.reward = r.reward == "mug" ? "ticket" : "mug"; break;
      case opcode::refund:
        if (!r.items.empty())
          r.items[0].amount += 1;
        else
          r.amount += 1;
        break;
      case opcode::reverse_redemption: r.ref += "-other"; break;
      case opcode::adjust: r.reason += " (changed)"; break;
      default: break;
    }
  }

  void check_members() {
    for (auto m : enrolled_) {
      INFO("member " << m);
      auto b = g_.c->balance(m);
      REQUIRE(b.ok());
      std::string why;
      auto book = g_.eng->ledger().fold_book(m, why);
      INFO(why);
      REQUIRE(book);
      std::int64_t lots = 0, holds = 0;
      REQUIRE(ledger::sum_lots(*book, lots));
      REQUIRE(ledger::sum_holds(*book, holds));
      CHECK(b.balance == lots + holds - book->debt);
      auto view = actors::balance_of(*book, g_.clock.now_us());
      REQUIRE(view.code == errc::ok);
      CHECK(view.expired_unswept == 0);  // balance posts what is due first
      std::int64_t available_lots = 0;
      for (const auto& l : book->lots)
        if (actors::lot_available(l, g_.clock.now_us()))
          available_lots += l.points;
      CHECK(b.available == available_lots - book->debt);
      CHECK(b.available == view.available);
      CHECK(b.pending == view.pending);
      CHECK(b.held == view.held);
      CHECK(b.held == holds);
    }
  }

  void check_verify() { g_.check_verify(); }

  engine_rig g_;
  std::mt19937_64 rng_;
  std::uint64_t step_ = 0, next_txn_ = 1;
  std::string last_;
  std::set<std::uint64_t> enrolled_;
  std::vector<std::pair<std::uint64_t, std::string>> earns_, redemptions_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> holds_;
  std::vector<sent> done_;
};

} // namespace

TEST_CASE("seeded operation sequences keep the ledger valid and every balance equal to its lots", "[fuzz]") {
  const std::uint64_t steps = env_u64("LOYALTY_FUZZ_STEPS", 300);
  std::vector<std::uint64_t> seeds{1, 2, 3, 4};
  if (auto s = env_u64("LOYALTY_FUZZ_SEED", 0); s != 0)
    seeds = {s};
  std::map<opcode, std::uint64_t> moved;
  for (auto seed : seeds) {
    CAPTURE(seed);
    fuzzer f(seed);
    f.run(steps);
    for (auto [op, n] : f.moved_)
      moved[op] += n;
  }
  // The sequences reached every operation, not only its refusals.
  if (steps >= 300)
    for (auto op : {opcode::enroll, opcode::earn, opcode::event, opcode::hold, opcode::capture, opcode::release,
                    opcode::redeem, opcode::redeem_reward, opcode::refund, opcode::reverse_redemption,
                    opcode::transfer, opcode::adjust, opcode::expire}) {
      INFO(to_string(op));
      CHECK(moved[op] > 0);
    }
}

TEST_CASE("transfers pipelined in both directions between members neither deadlock nor lose points", "[fuzz]") {
  engine_rig g;
  auto other = g.connect(test::admin_key);
  for (std::uint64_t m = 1; m <= 3; ++m) {
    REQUIRE(g.c->enroll(m, "shop").ok());
    request adj;
    adj.op = opcode::adjust;
    adj.member = m;
    adj.points = 1000;
    adj.reason = "seed points";
    adj.brand = "shop";
    adj.txn = "seed-" + std::to_string(m);
    REQUIRE(g.admin->call(adj).ok());
  }
  // Two connections each pipeline 300 transfers around the triangle 1 -> 2 -> 3 -> 1,
  // in opposite directions, so every member sends and receives at once.
  constexpr int n = 300;
  std::mt19937_64 rng(42);
  for (int i = 0; i < n; ++i) {
    for (int side = 0; side < 2; ++side) {
      request t;
      t.op = opcode::transfer;
      t.member = 1 + static_cast<std::uint64_t>(i % 3);
      t.to = side == 0 ? t.member % 3 + 1 : (t.member + 1) % 3 + 1;
      t.points = 1 + static_cast<std::int64_t>(rng() % 40);
      t.txn = "x-" + std::to_string(side) + "-" + std::to_string(i);
      (side == 0 ? g.c : other)->send(t);
    }
  }
  int ok = 0;
  for (auto* c : {g.c.get(), other.get()}) {
    for (int i = 0; i < n; ++i) {
      response r;
      std::string err;
      REQUIRE(c->receive(r, err, std::chrono::seconds(30)));
      INFO(r.message);
      REQUIRE((r.ok() || r.code == errc::insufficient_points));
      ok += r.ok();
    }
  }
  CHECK(ok > 0);
  std::int64_t total = 0;
  for (std::uint64_t m = 1; m <= 3; ++m) {
    auto b = g.c->balance(m);
    REQUIRE(b.ok());
    total += b.balance;
    std::string why;
    auto book = g.eng->ledger().fold_book(m, why);
    REQUIRE(book);
    std::int64_t lots = 0;
    REQUIRE(ledger::sum_lots(*book, lots));
    CHECK(b.available == lots);
  }
  CHECK(total == 3 * (1000 + 25));  // seed points and the welcome bonus: nothing lost or made
  auto v = g.c->verify();
  REQUIRE(v.ok());
  CHECK(v.verify.valid);
}
