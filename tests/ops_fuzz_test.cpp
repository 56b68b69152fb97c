// A seeded operation-sequence fuzzer over a real engine (LMDB in a temporary
// directory, CAF member actors, the Asio server, real TCP, a manual clock):
// enroll, earn (random baskets, channels, brands, purchase times), event,
// hold, capture (whole, partial, too much), release, redeem, redeem_reward,
// refund (by amount, by items, the rest), reverse_redemption, transfer,
// adjust (+/-), expire (one member or all), clock jumps (a minute to two
// weeks), engine restarts, retries of earlier txn ids (same content: the
// original answer with its seq; changed content: txn_id_conflict), and
// bursts of requests pipelined over two connections at once.
//
// Checked after every step, for every enrolled member:
//  - the answer's code is ok or one the operation may give in that state
//    (most codes are predicted exactly from a small model: enrolled members,
//    open holds, what is left of each purchase, reversed redemptions, the
//    reward's stock, the balance after the previous step);
//  - `balance` over the wire equals the view of the book folded from the
//    ledger (balance_of at the same instant); the points account equals
//    lots + holds - debt; available = the sum of available, unexpired lots
//    - debt; nothing is left unswept; the debt is never over
//    negative_balance_max;
//  - the balance moved as the operation says (e.g. a redemption of p takes
//    p from available and from the account, a hold moves p from available
//    to held, every other member stays as it was; time only ever takes).
// Every few steps, after every restart and burst, and at the end, `verify`
// must find the whole ledger valid.
//
// A failure prints the seed, the step, the operation and a command that
// replays the run up to that step. Even seeds replay exactly (their bursts
// are built so that thread timing cannot change an answer). Odd seeds also
// race members against each other in bursts over two connections and let a
// real-time sweep passivate actors, so their runs differ from one to the
// next and a failure may take a few runs to come back.
//
// The test suite runs seeds 1..8, 600 steps each (LOYALTY_FUZZ_STEPS; about
// 10 s in a Release build). A long run of one seed:
//   LOYALTY_FUZZ_STEPS=100000 LOYALTY_FUZZ_SEED=12345 ./build/tests/ops_fuzz_test "[seed]"
// (without the "[seed]" filter the fixed seeds run that many steps too).
// A run's time grows with the square of its steps (each step folds every
// member's whole journal, verify reads the whole ledger): 2,000 steps take
// about 10 s, 20,000 about 8 minutes. Many seeds beat one long run;
// LOYALTY_FUZZ_TRACE=1 prints every step and every balance on stderr.
#include "engine_rig.hpp"

#include "actors/policy.hpp"
#include "io/client.hpp"
#include "io/engine.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z
constexpr std::uint64_t minute = 60'000'000ull;
constexpr std::uint64_t hour = 60 * minute;
constexpr std::uint64_t day = 86'400'000'000ull;
constexpr std::uint64_t members_max = 6;   // members 1..6 may enroll
constexpr std::uint64_t never_enrolled = 7;
// Mirrors of the program below, for the model.
constexpr std::uint64_t pending_days = 2;
constexpr std::uint64_t expiry_days = 20;
constexpr std::uint64_t inactivity_days = 12;
constexpr std::int64_t negative_balance_max = 150;
constexpr std::uint64_t hold_ttl_default_s = 600;
constexpr std::uint64_t hold_ttl_max_s = 7200;
constexpr std::int64_t mug_cost = 40, mug_stock = 3, ticket_cost = 25;
constexpr std::size_t takes_max = 60;  // actors/member.cpp: lots one spend may draw on

// Short lifetimes so that pending periods, expiry, inactivity and hold TTLs
// all happen within a run; caps and stock small enough to be reached.
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

// The shared rig with a second integrator connection and, optionally, a
// real-time sweep that keeps passivating all but two member actors.
struct engine_rig : test::engine_rig {
  std::unique_ptr<client> c2;
  bool passivate = false;  // a real-time sweep passivates all but two actors

  explicit engine_rig(bool passivate_actors = false)
    : test::engine_rig("fuzz", program_toml, t0, [passivate_actors](engine_options& o) {
        o.settings.commit_window_us = 0;
        o.settings.checkpoint_accounts_max = 8;  // account checkpoints within a run
        // Every connection has an admin key: the fuzzer covers the
        // operations, keys_test covers the scopes.
        o.settings.keys = {test::make_key(1, "fuzz-admin", test::admin_key, key_scope::admin)};
        if (passivate_actors) {
          o.settings.active_members_max = 2;
          o.sweep_interval = std::chrono::milliseconds(5);
        }
      }),
      passivate(passivate_actors) {
    connected();  // the base constructor ran before this class existed
  }

  void connected() override { c2 = connect(test::admin_key); }
  void disconnect() override { c2.reset(); }
};

std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

std::string codes(const std::vector<errc>& allowed) {
  std::string s;
  for (auto e : allowed)
    s += std::string(s.empty() ? "" : ", ") + std::string(to_string(e));
  return s;
}

// What the model knows of a member: its balance answer after the previous
// step, and two facts from its folded book.
struct member_model {
  bool enrolled = false;
  std::int64_t balance = 0, available = 0, pending = 0, held = 0, debt = 0;
  std::uint64_t last_activity_us = 0;
  std::size_t available_lots = 0, lots = 0;
};

// How one member's balance should move in this step (all zero: unchanged).
// `slack`: up to this many points may expire at the check (restored into
// lots whose expiry passed while they were held).
struct expect_move {
  std::int64_t balance = 0, available = 0, pending = 0, held = 0;
  bool split_unknown = false;  // only available + pending is known (clawbacks)
  std::int64_t slack = 0;
  bool debt_may_grow = false;
  bool activity = false;        // the op records the member's activity (now or at activity_at)
  std::uint64_t activity_at = 0;
  // A credit of `credit` new points (earn, event, credit adjust, transfer
  // in): they repay the member's debt first, and only the rest makes a lot
  // (pending if credit_pending; expired at once if credit_expires).
  std::int64_t credit = 0;
  bool credit_pending = false, credit_expires = false;
};

struct hold_model {
  std::uint64_t member = 0, id = 0;
  std::int64_t points = 0;
  std::uint64_t expires_at_us = 0;
  bool closed = false;
};

struct purchase {
  std::uint64_t member = 0;
  std::string txn;
  std::int64_t amount = 0, refunded = 0;
  std::vector<item> items;
};

struct redemption {
  std::uint64_t member = 0;
  std::string txn;
  bool mug = false, reversed = false;
};

struct sent {
  request req;
  response res;
  bool admin = false;
};

class fuzzer {
public:
  fuzzer(std::uint64_t seed, std::uint64_t steps) : rig_(seed % 2 == 1), rng_(seed), seed_(seed), steps_(steps) {}

  void run() {
    for (step_ = 1; step_ <= steps_; ++step_) {
      INFO("seed " << seed_ << ", step " << step_ << " (actors passivated: " << rig_.passivate
                   << "); replay: LOYALTY_FUZZ_SEED=" << seed_ << " LOYALTY_FUZZ_STEPS=" << step_
                   << " ./build/tests/ops_fuzz_test \"[seed]\"");
      moves_.clear();
      loose_ = time_passed_ = false;
      op_.clear();
      one_step();
      INFO("after: " << op_);
      if (trace_)
        std::fprintf(stderr, "step %llu: %s\n", static_cast<unsigned long long>(step_), op_.c_str());
      check_members();
      if (step_ % 20 == 0 || loose_)
        check_verify();
    }
    op_ = "end of run";
    check_verify();
  }

  // Operations that succeeded and did something, by kind (coverage).
  std::map<std::string, std::uint64_t> done_ok_;

private:
  // -- choosing -------------------------------------------------------------------
  std::int64_t upto(std::int64_t n) { return n <= 0 ? 0 : static_cast<std::int64_t>(rng_() % static_cast<std::uint64_t>(n)); }
  bool chance(int percent) { return static_cast<int>(rng_() % 100) < percent; }
  std::string txn() { return "f" + std::to_string(next_txn_++); }
  std::uint64_t now() const { return rig_.clock.now_us(); }

  std::vector<std::uint64_t> enrolled() const {
    std::vector<std::uint64_t> v;
    for (std::uint64_t m = 1; m <= members_max; ++m)
      if (model_[m].enrolled)
        v.push_back(m);
    return v;
  }
  // Mostly an enrolled member; sometimes any id, or one never enrolled.
  std::uint64_t pick_member() {
    auto v = enrolled();
    if (v.empty() || chance(8))
      return chance(30) ? never_enrolled : 1 + rng_() % members_max;
    return v[rng_() % v.size()];
  }
  std::string pick_brand() { return chance(50) ? "shop" : "web"; }

  // -- sending ------------------------------------------------------------------
  request base(opcode op, std::uint64_t m, bool with_txn = true) {
    request r;
    r.op = op;
    r.member = m;
    if (with_txn)
      r.txn = txn();
    return r;
  }

  // Sends, requires one of the codes `allowed` (ok is never implied), and
  // remembers a success for retries.
  response call(const request& r, const std::vector<errc>& allowed, bool as_admin = false) {
    std::ostringstream d;
    d << to_string(r.op) << " member " << r.member;
    if (!r.txn.empty())
      d << " txn " << r.txn;
    if (r.points != 0)
      d << " points " << r.points;
    if (r.amount != 0)
      d << " amount " << r.amount;
    if (!r.items.empty())
      d << " items " << r.items.size();
    if (r.hold != 0)
      d << " hold " << r.hold;
    if (!r.ref.empty())
      d << " ref " << r.ref;
    if (r.to != 0)
      d << " to " << r.to;
    if (!r.reward.empty())
      d << " reward " << r.reward;
    op_ = d.str();
    auto res = (as_admin ? rig_.admin : rig_.c)->call(r);
    INFO("operation: " << op_);
    INFO("answer: " << to_string(res.code) << " " << res.message << "; allowed: " << codes(allowed));
    REQUIRE(std::find(allowed.begin(), allowed.end(), res.code) != allowed.end());
    op_ += std::string(" -> ") + std::string(to_string(res.code));
    if (res.ok() && !r.txn.empty())
      done_.push_back({r, res, as_admin});
    if (res.ok())
      ++done_ok_[to_string(r.op)];
    return res;
  }

  // The answer to an op on a member that the model says is not enrolled.
  bool not_enrolled(std::uint64_t m) const { return m > members_max || !model_[m].enrolled; }

  // An ok answer's account balance: the member's balance before plus the
  // op's signed points (nothing else is due at this instant).
  void check_answer_balance(const response& res, std::uint64_t m, std::int64_t signed_points) {
    INFO("operation: " << op_);
    CHECK(res.balance == model_[m].balance + signed_points);
  }

  expect_move& mv_of(std::uint64_t m) { return moves_[m]; }

  // -- the steps ------------------------------------------------------------------
  void one_step() {
    const int x = static_cast<int>(rng_() % 1000);
    if (x < 40)
      return do_enroll();
    if (x < 250)
      return do_earn();
    if (x < 290)
      return do_event();
    if (x < 370)
      return do_hold();
    if (x < 420)
      return do_capture();
    if (x < 455)
      return do_release();
    if (x < 505)
      return do_redeem();
    if (x < 545)
      return do_redeem_reward();
    if (x < 625)
      return do_refund();
    if (x < 665)
      return do_reverse();
    if (x < 725)
      return do_transfer();
    if (x < 765)
      return do_adjust();
    if (x < 785)
      return do_expire_now();
    if (x < 855)
      return do_time_passes();
    if (x < 870)
      return do_restart();
    if (x < 910)
      return do_retry();
    return do_burst();
  }

  void do_enroll() {
    const std::uint64_t m = 1 + rng_() % members_max;
    auto r = base(opcode::enroll, m, false);
    r.brand = pick_brand();
    if (model_[m].enrolled) {
      call(r, {errc::member_exists});
      return;
    }
    auto res = call(r, {errc::ok});
    CHECK(res.points >= 0);
    CHECK(res.points <= 25);
    model_[m] = member_model{};
    model_[m].enrolled = true;
    check_answer_balance(res, m, res.points);
    mv_of(m).balance = mv_of(m).available = res.points;
    mv_of(m).activity = res.points > 0;  // the welcome bonus is activity
  }

  // Basket: up to 4 items (or none), brand, channel; bought a few minutes
  // ago, or days ago (points available at once), or long ago (expired at once).
  void do_earn() {
    const std::uint64_t m = pick_member();
    auto r = base(opcode::earn, m);
    r.brand = pick_brand();
    r.currency = "EUR";
    const int when = upto(100);
    const std::uint64_t ago = when < 80 ? static_cast<std::uint64_t>(upto(3)) * minute
                              : when < 93 ? pending_days * day + static_cast<std::uint64_t>(upto(5)) * day
                                          : (expiry_days - 2) * day + static_cast<std::uint64_t>(upto(6)) * day;
    r.occurred_at_us = now() - ago;
    r.channel = chance(30) ? "web" : chance(50) ? "store" : "";
    const int items = upto(5);
    static const char* categories[] = {"toys", "home", "garden"};
    for (int i = 0; i < items; ++i) {
      item it;
      it.sku = "sku" + std::to_string(upto(5));
      it.category = categories[upto(3)];
      it.amount = upto(8000);  // a free item (0) too
      r.amount += it.amount;
      r.items.push_back(it);
    }
    if (r.amount == 0) {
      r.items.clear();
      r.amount = 1 + upto(20000);
    }
    if (not_enrolled(m)) {
      call(r, {errc::unknown_member});
      return;
    }
    auto res = call(r, {errc::ok});
    CHECK(res.points >= 0);
    check_answer_balance(res, m, res.points);
    purchases_.push_back({m, r.txn, r.amount, 0, r.items});
    auto& mv = mv_of(m);
    mv.activity = true;
    mv.activity_at = r.occurred_at_us;
    mv.credit = res.points;
    mv.credit_expires = now() >= r.occurred_at_us + expiry_days * day;  // only what repaid debt stays
    mv.credit_pending = now() < r.occurred_at_us + pending_days * day;
  }

  void do_event() {
    const std::uint64_t m = pick_member();
    auto r = base(opcode::event, m);
    const bool known = !chance(15);
    r.event = known ? "survey" : "karaoke";
    if (not_enrolled(m)) {
      call(r, {errc::unknown_member});
      return;
    }
    if (!known) {
      call(r, {errc::unknown_event});
      return;
    }
    auto res = call(r, {errc::ok});
    CHECK(res.points >= 0);
    CHECK(res.points <= 15);
    check_answer_balance(res, m, res.points);
    mv_of(m).credit = res.points;
    mv_of(m).activity = true;
  }

  // Points asked of a spend: near the member's available points, or any.
  std::int64_t spend_points(std::uint64_t m, std::int64_t cap) {
    const std::int64_t avail = m <= members_max ? model_[m].available : 0;
    if (avail > 0 && chance(60))
      return std::max<std::int64_t>(1, avail - 10 + upto(25));
    return 1 + upto(cap);
  }

  // A spend's expected code: insufficient_points when the available points
  // (after debt) fall short; invalid_argument only if the member has more
  // lots than one spend may draw on.
  std::vector<errc> spend_codes(std::uint64_t m, std::int64_t points) {
    if (points > model_[m].available)
      return {errc::insufficient_points};
    if (model_[m].available_lots > takes_max)
      return {errc::ok, errc::invalid_argument};
    return {errc::ok};
  }

  void do_hold() {
    const std::uint64_t m = pick_member();
    auto r = base(opcode::hold, m);
    r.points = spend_points(m, 150);
    r.ttl_s = chance(25) ? 0 : static_cast<std::uint64_t>(1 + upto(9000));
    if (not_enrolled(m)) {
      call(r, {errc::unknown_member});
      return;
    }
    const std::uint64_t ttl = r.ttl_s != 0 ? r.ttl_s : hold_ttl_default_s;
    if (ttl > hold_ttl_max_s) {
      call(r, {errc::invalid_argument});
      return;
    }
    auto res = call(r, spend_codes(m, r.points));
    if (!res.ok())
      return;
    check_answer_balance(res, m, 0);
    CHECK(res.hold != 0);
    CHECK(res.expires_at_us == now() + ttl * 1'000'000ull);
    holds_.push_back({m, res.hold, r.points, res.expires_at_us, false});
    mv_of(m).available = -r.points;
    mv_of(m).held = r.points;
  }

  // An open hold (mostly), one closed or expired, or one never opened.
  hold_model* pick_hold(std::uint64_t& member, std::uint64_t& id) {
    std::vector<hold_model*> open, gone;
    for (auto& h : holds_)
      (h.closed ? gone : open).push_back(&h);
    const int x = upto(100);
    if (!open.empty() && x < 75) {
      auto* h = open[rng_() % open.size()];
      member = h->member;
      id = h->id;
      return h;
    }
    if (!gone.empty() && x < 90) {
      auto* h = gone[rng_() % gone.size()];
      member = h->member;
      id = h->id;
      return nullptr;
    }
    member = pick_member();
    id = 1000 + static_cast<std::uint64_t>(upto(5));
    return nullptr;
  }

  void do_capture() {
    std::uint64_t m = 0, id = 0;
    hold_model* h = pick_hold(m, id);
    auto r = base(opcode::capture, m);
    r.hold = id;
    if (chance(50))
      r.points = 1 + upto(h != nullptr ? h->points + 5 : 100);
    if (not_enrolled(m)) {
      call(r, {errc::unknown_member});
      return;
    }
    if (h == nullptr) {
      call(r, {errc::unknown_hold});
      return;
    }
    if (r.points > h->points) {
      call(r, {errc::invalid_amount});
      return;
    }
    auto res = call(r, {errc::ok});
    const std::int64_t captured = r.points != 0 ? r.points : h->points;
    CHECK(res.points == captured);
    check_answer_balance(res, m, -captured);
    h->closed = true;
    auto& mv = mv_of(m);
    mv.balance = -captured;
    mv.held = -h->points;
    mv.available = h->points - captured;
    mv.slack = h->points - captured;
    mv.activity = true;
  }

  void do_release() {
    std::uint64_t m = 0, id = 0;
    hold_model* h = pick_hold(m, id);
    auto r = base(opcode::release, m);
    r.hold = id;
    if (not_enrolled(m)) {
      call(r, {errc::unknown_member});
      return;
    }
    if (h == nullptr) {
      call(r, {errc::unknown_hold});
      return;
    }
    auto res = call(r, {errc::ok});
    check_answer_balance(res, m, 0);
    h->closed = true;
    auto& mv = mv_of(m);
    mv.held = -h->points;
    mv.available = mv.slack = h->points;
  }

  void do_redeem() {
    const std::uint64_t m = pick_member();
    auto r = base(opcode::redeem, m);
    r.points = spend_points(m, 150);
    if (not_enrolled(m)) {
      call(r, {errc::unknown_member});
      return;
    }
    auto res = call(r, spend_codes(m, r.points));
    if (!res.ok())
      return;
    CHECK(res.points == r.points);
    check_answer_balance(res, m, -r.points);
    redemptions_.push_back({m, r.txn, false, false});
    mv_of(m).balance = mv_of(m).available = -r.points;
    mv_of(m).activity = true;
  }

  void do_redeem_reward() {
    const std::uint64_t m = pick_member();
    auto r = base(opcode::redeem_reward, m);
    const bool mug = chance(50);
    r.reward = mug ? "mug" : "ticket";
    if (not_enrolled(m)) {
      call(r, {errc::unknown_member});
      return;
    }
    const std::int64_t cost = mug ? mug_cost : ticket_cost;
    response res;
    if (cost > model_[m].available)
      res = call(r, {errc::insufficient_points});
    else if (mug && mugs_out_ >= mug_stock)
      res = call(r, model_[m].available_lots > takes_max ? std::vector<errc>{errc::out_of_stock, errc::invalid_argument}
                                                         : std::vector<errc>{errc::out_of_stock});
    else
      res = call(r, spend_codes(m, cost));
    if (!res.ok())
      return;
    CHECK(res.reward == r.reward);
    check_answer_balance(res, m, -cost);
    mugs_out_ += mug;
    redemptions_.push_back({m, r.txn, mug, false});
    mv_of(m).balance = mv_of(m).available = -cost;
    mv_of(m).activity = true;
  }

  // Refund of a known purchase (rarely, in another member's name): by
  // amount (sometimes more than is left), by items (some of the purchase's
  // own), or the rest.
  void do_refund() {
    if (purchases_.empty())
      return do_earn();
    auto& p = purchases_[rng_() % purchases_.size()];
    const std::uint64_t m = chance(8) ? pick_member() : p.member;
    auto r = base(opcode::refund, m);
    r.ref = p.txn;
    const std::int64_t left = p.amount - p.refunded;
    const int how = upto(3);
    std::int64_t amount = left;
    if (how == 0) {
      r.amount = chance(85) ? 1 + upto(std::max<std::int64_t>(left, 1)) : left + 1 + upto(500);
      amount = r.amount;
    } else if (how == 1) {
      amount = 0;
      const int n = 1 + upto(2);
      for (int i = 0; i < n; ++i) {
        item it;
        if (!p.items.empty() && chance(80)) {
          it = p.items[rng_() % p.items.size()];
          it.amount = 1 + upto(std::max<std::int64_t>(it.amount, 1));
        } else {
          it.sku = "sku" + std::to_string(upto(5));
          it.category = chance(50) ? "toys" : "home";
          it.amount = 1 + upto(3000);
        }
        amount += it.amount;
        r.items.push_back(it);
      }
    }
    if (not_enrolled(m)) {
      call(r, {errc::unknown_member});
      return;
    }
    if (m != p.member) {
      call(r, {errc::unknown_txn});
      return;
    }
    if (left == 0) {
      call(r, {errc::already_reversed});
      return;
    }
    if (amount > left) {
      call(r, {errc::invalid_amount});
      return;
    }
    auto res = call(r, {errc::ok, errc::negative_balance_limit});
    if (!res.ok())
      return;
    CHECK(res.points >= 0);
    check_answer_balance(res, m, -res.points);
    p.refunded += amount;
    auto& mv = mv_of(m);
    mv.balance = mv.available = -res.points;
    mv.split_unknown = mv.debt_may_grow = true;
  }

  void do_reverse() {
    if (redemptions_.empty())
      return do_redeem();
    auto& d = redemptions_[rng_() % redemptions_.size()];
    const std::uint64_t m = chance(8) ? pick_member() : d.member;
    auto r = base(opcode::reverse_redemption, m);
    r.ref = d.txn;
    if (not_enrolled(m)) {
      call(r, {errc::unknown_member});
      return;
    }
    if (m != d.member) {
      call(r, {errc::unknown_txn});
      return;
    }
    if (d.reversed) {
      call(r, {errc::already_reversed});
      return;
    }
    auto res = call(r, {errc::ok});
    CHECK(res.points >= 0);
    check_answer_balance(res, m, res.points);
    d.reversed = true;
    mugs_out_ -= d.mug;
    mv_of(m).balance = mv_of(m).available = res.points;
  }

  void do_transfer() {
    const std::uint64_t m = pick_member();
    auto r = base(opcode::transfer, m);
    r.to = chance(5) ? m : pick_member();
    r.points = spend_points(m, 80);
    // The server refuses these two before the sender's actor sees the request.
    if (r.to == m) {
      call(r, {errc::same_member});
      return;
    }
    if (not_enrolled(m) || not_enrolled(r.to)) {
      call(r, {errc::unknown_member});
      return;
    }
    auto res = call(r, spend_codes(m, r.points));
    if (!res.ok())
      return;
    CHECK(res.points == r.points);
    check_answer_balance(res, m, -r.points);
    mv_of(m).balance = mv_of(m).available = -r.points;
    mv_of(m).activity = true;
    mv_of(r.to).credit = r.points;
  }

  void do_adjust() {
    const std::uint64_t m = pick_member();
    auto r = base(opcode::adjust, m);
    r.points = chance(50) ? 1 + upto(100) : -(1 + upto(100));
    r.reason = "fuzz step " + std::to_string(step_);
    r.brand = pick_brand();
    if (not_enrolled(m)) {
      call(r, {errc::unknown_member}, true);
      return;
    }
    // A debit takes lots (pending ones too, not held points); the rest is
    // debt, which may not pass negative_balance_max.
    const auto& mm = model_[m];
    const std::int64_t lots = mm.available + mm.debt + mm.pending;
    const bool over = r.points < 0 && mm.debt + std::max<std::int64_t>(0, -r.points - lots) > negative_balance_max;
    std::vector<errc> allowed{over ? errc::negative_balance_limit : errc::ok};
    if (r.points < 0 && mm.lots > takes_max)  // a debit takes from at most 60 lots, the rest is debt
      allowed = {errc::ok, errc::negative_balance_limit};
    auto res = call(r, allowed, true);
    if (!res.ok())
      return;
    check_answer_balance(res, m, r.points);
    auto& mv = mv_of(m);
    if (r.points > 0) {
      mv.credit = r.points;
    } else {
      mv.balance = mv.available = r.points;
      mv.split_unknown = mv.debt_may_grow = true;
    }
  }

  // expire at the instant of the last check: nothing is due.
  void do_expire_now() {
    if (chance(50)) {
      const std::uint64_t m = pick_member();
      auto r = base(opcode::expire, m, false);
      r.has_member = true;
      if (chance(30))
        r.as_of_us = now() - static_cast<std::uint64_t>(upto(10)) * day;
      if (not_enrolled(m)) {
        call(r, {errc::unknown_member}, true);
        return;
      }
      auto res = call(r, {errc::ok}, true);
      CHECK(res.expired == 0);
      return;
    }
    auto res = expire_all();
    CHECK(res.expired == 0);
  }

  response expire_all() {
    auto r = base(opcode::expire, 0, false);
    auto res = call(r, {errc::ok}, true);
    CHECK(res.members == enrolled().size());
    return res;
  }

  // Time passes: no balance may grow. Then, sometimes, an admin expiry,
  // which must take exactly what the balances lose.
  void do_time_passes() {
    static constexpr std::uint64_t jumps[] = {minute, 10 * minute, 2 * hour, day / 2, day, 3 * day, 8 * day, 13 * day};
    const std::uint64_t by = jumps[rng_() % std::size(jumps)];
    rig_.clock.advance(by);
    op_ = "clock +" + std::to_string(by / minute) + " min";
    loose_ = time_passed_ = true;
    for (auto& h : holds_)
      if (h.expires_at_us <= now())
        h.closed = true;
    const int x = upto(100);
    if (x < 40) {
      auto res = expire_all();
      op_ += ", then expire all";
      expected_loss_all_ = res.expired;
    } else if (x < 60) {
      auto v = enrolled();
      if (v.empty())
        return;
      const std::uint64_t m = v[rng_() % v.size()];
      auto r = base(opcode::expire, m, false);
      r.has_member = true;
      auto res = call(r, {errc::ok}, true);
      op_ = "clock +" + std::to_string(by / minute) + " min, then " + op_;
      expected_loss_one_ = {m, res.expired};
    }
  }

  void do_restart() {
    op_ = "restart";
    rig_.restart();
    check_verify();
  }

  // Retry of an earlier success on either plain connection (or the admin's):
  // the same content gets the original answer, changed content a conflict.
  void do_retry() {
    if (done_.empty())
      return do_earn();
    const auto& s = done_[rng_() % done_.size()];
    auto r = s.req;
    r.id = 0;
    const bool change = chance(35) && mutate(r);
    op_ = std::string("retry ") + (change ? "(changed) " : "") + to_string(r.op) + " member " +
          std::to_string(r.member) + " txn " + r.txn;
    INFO("operation: " << op_);
    auto& via = s.admin ? rig_.admin : chance(50) ? rig_.c : rig_.c2;
    auto res = via->call(r);
    INFO("answer: " << to_string(res.code) << " " << res.message);
    if (change) {
      REQUIRE(res.code == errc::txn_id_conflict);
      return;
    }
    REQUIRE(res.ok());
    CHECK(res.replayed);
    CHECK(res.seq == s.res.seq);
    CHECK(res.points == s.res.points);
    CHECK(res.hold == s.res.hold);
    CHECK(res.reward == s.res.reward);
  }

  // The same request with one content field changed (still well-formed).
  static bool mutate(request& r) {
    switch (r.op) {
      case opcode::earn: r.occurred_at_us -= 1; return true;
      case opcode::event: r.event = "karaoke"; return true;
      case opcode::hold:
      case opcode::redeem:
      case opcode::transfer: r.points += 1; return true;
      case opcode::capture: r.points = r.points != 0 ? 0 : 1; return true;
      case opcode::release: r.hold += 1; return true;
      case opcode::redeem_reward: r.reward = r.reward == "mug" ? "ticket" : "mug"; return true;
      case opcode::refund:
        if (!r.items.empty())
          r.items[0].amount += 1;
        else
          r.amount = r.amount != 0 ? r.amount + 1 : 1;
        return true;
      case opcode::reverse_redemption: r.ref += "-other"; return true;
      case opcode::adjust: r.reason += " (changed)"; return true;
      default: return false;
    }
  }

  // -- bursts: pipelined over two connections ---------------------------------
  struct burst_op {
    request req;
    client* via = nullptr;
    std::uint64_t id = 0;
    response res;
    std::size_t twin = SIZE_MAX;  // index of the same request sent on the other connection
  };

  // Even seeds keep a burst's outcome independent of thread timing, so that
  // a run replays exactly: one connection (each member sees its requests in
  // order), a member that receives a transfer does nothing else in the
  // burst, at most one mug (the last units are a race between members), no
  // basket (the toys cap is program-wide). Odd seeds lift all of that and
  // use both connections.
  void do_burst() {
    auto v = enrolled();
    if (v.size() < 2)
      return do_enroll();
    op_ = "burst";
    loose_ = true;
    const bool racy = rig_.passivate;
    std::set<std::uint64_t> subjects, receivers;
    bool mug = false;
    auto usable = [&](std::uint64_t m) { return racy || receivers.count(m) == 0; };
    std::vector<burst_op> ops;
    const int n = 4 + upto(10);
    for (int i = 0; i < n; ++i) {
      burst_op b;
      const std::uint64_t m = v[rng_() % v.size()];
      b.via = racy && chance(50) ? rig_.c2.get() : rig_.c.get();
      auto& r = b.req;
      r = base(opcode::earn, m);
      switch (upto(10)) {
        case 0:
          r.brand = pick_brand();
          r.currency = "EUR";
          r.amount = 1 + upto(20000);
          r.occurred_at_us = now();
          break;
        case 1:
          r.op = opcode::event;
          r.event = "survey";
          break;
        case 2:
          r.op = opcode::redeem;
          r.points = spend_points(m, 100);
          break;
        case 3:
          r.op = opcode::hold;
          r.points = spend_points(m, 100);
          break;
        case 4:
        case 5: {
          r.op = opcode::transfer;
          std::vector<std::uint64_t> to;
          for (auto x : v)
            if (x != m && (racy || (subjects.count(x) == 0 && receivers.count(x) == 0)))
              to.push_back(x);
          if (to.empty())
            continue;
          r.to = to[rng_() % to.size()];
          r.points = spend_points(m, 60);
          break;
        }
        case 6: {
          std::vector<hold_model*> open;
          for (auto& h : holds_)
            if (!h.closed)
              open.push_back(&h);
          if (open.empty())
            continue;
          auto* h = open[rng_() % open.size()];
          r.op = chance(50) ? opcode::capture : opcode::release;
          r.member = h->member;
          r.hold = h->id;
          break;
        }
        case 7: {
          if (purchases_.empty())
            continue;
          const auto& p = purchases_[rng_() % purchases_.size()];
          r.op = opcode::refund;
          r.member = p.member;
          r.ref = p.txn;
          r.amount = 1 + upto(std::max<std::int64_t>(1, (p.amount - p.refunded) / 2));
          break;
        }
        case 8: {
          if (redemptions_.empty())
            continue;
          const auto& d = redemptions_[rng_() % redemptions_.size()];
          r.op = opcode::reverse_redemption;
          r.member = d.member;
          r.ref = d.txn;
          break;
        }
        default:
          r.op = opcode::redeem_reward;
          r.reward = chance(50) && (racy || !mug) ? "mug" : "ticket";
          mug = mug || r.reward == "mug";
          break;
      }
      if (!usable(r.member))
        continue;
      subjects.insert(r.member);
      if (r.op == opcode::transfer)
        receivers.insert(r.to);
      ops.push_back(b);
      if (chance(15)) {  // the same request at once (on the other connection, if racy)
        burst_op twin = b;
        twin.via = racy && b.via == rig_.c.get() ? rig_.c2.get() : rig_.c.get();
        twin.twin = ops.size() - 1;
        ops.push_back(twin);
      }
    }
    for (auto& b : ops)
      b.id = b.via->send(b.req);
    std::map<std::pair<client*, std::uint64_t>, response> answers;
    for (auto* via : {rig_.c.get(), rig_.c2.get()}) {
      const auto expected = static_cast<std::size_t>(std::count_if(ops.begin(), ops.end(), [&](const burst_op& b) { return b.via == via; }));
      for (std::size_t i = 0; i < expected; ++i) {
        response res;
        std::string err;
        INFO("operation: burst; " << err);
        REQUIRE(via->receive(res, err, std::chrono::seconds(30)));
        answers[{via, res.id}] = res;
      }
    }
    for (auto& b : ops) {
      INFO("operation: burst; an answer is missing");
      REQUIRE(answers.count({b.via, b.id}) == 1);
      b.res = answers[{b.via, b.id}];
    }
    for (std::size_t i = 0; i < ops.size(); ++i) {
      auto& b = ops[i];
      const auto& r = b.req;
      const bool twin = b.twin != SIZE_MAX;
      const response* other = twin ? &ops[b.twin].res : nullptr;
      if (!twin)  // the original of a pair: is there a twin?
        for (std::size_t j = i + 1; j < ops.size(); ++j)
          if (ops[j].twin == i)
            other = &ops[j].res;
      INFO("operation: burst element " << i << ": " << to_string(r.op) << " member " << r.member << " txn " << r.txn
                                       << (twin ? " (sent twice)" : ""));
      INFO("answer: " << to_string(b.res.code) << " " << b.res.message);
      const errc c = b.res.code;
      bool fine = c == errc::ok;
      switch (r.op) {
        case opcode::redeem:
        case opcode::hold:
        case opcode::transfer: fine = fine || c == errc::insufficient_points || c == errc::invalid_argument; break;
        case opcode::capture:
        case opcode::release: fine = fine || c == errc::unknown_hold; break;
        case opcode::refund:
          fine = fine || c == errc::invalid_amount || c == errc::already_reversed || c == errc::negative_balance_limit;
          break;
        case opcode::reverse_redemption: fine = fine || c == errc::already_reversed; break;
        case opcode::redeem_reward: fine = fine || c == errc::insufficient_points || c == errc::out_of_stock; break;
        default: break;
      }
      // The second of a pair while the first, refused at commit time, was in
      // flight: never posted, so `unavailable` (retry with the same txn id).
      fine = fine || (c == errc::unavailable && other != nullptr && !other->ok());
      REQUIRE(fine);
      if (other != nullptr && other->ok() && b.res.ok()) {  // one posted, the other its replay
        CHECK(b.res.seq == other->seq);
        CHECK(b.res.replayed != other->replayed);
      }
      if (twin && other->ok())
        continue;  // the model took the original
      if (!b.res.ok())
        continue;
      ++done_ok_[std::string("burst ") + to_string(r.op)];
      done_.push_back({r, b.res, false});
      switch (r.op) {
        case opcode::earn: purchases_.push_back({r.member, r.txn, r.amount, 0, {}}); break;
        case opcode::hold: holds_.push_back({r.member, b.res.hold, r.points, b.res.expires_at_us, false}); break;
        case opcode::capture:
        case opcode::release:
          for (auto& h : holds_)
            if (h.member == r.member && h.id == r.hold) {
              CHECK(!h.closed);  // closed once only
              h.closed = true;
            }
          break;
        case opcode::redeem: redemptions_.push_back({r.member, r.txn, false, false}); break;
        case opcode::redeem_reward:
          redemptions_.push_back({r.member, r.txn, r.reward == "mug", false});
          mugs_out_ += r.reward == "mug";
          break;
        case opcode::refund:
          for (auto& p : purchases_)
            if (p.txn == r.ref)
              p.refunded += r.amount;
          break;
        case opcode::reverse_redemption:
          for (auto& d : redemptions_)
            if (d.txn == r.ref) {
              CHECK(!d.reversed);  // reversed once only
              d.reversed = true;
              mugs_out_ -= d.mug;
            }
          break;
        default: break;
      }
    }
    CHECK(mugs_out_ <= mug_stock);
    CHECK(mugs_out_ >= 0);
    for (const auto& p : purchases_)
      CHECK(p.refunded <= p.amount);
  }

  // -- the checks -------------------------------------------------------------------
  void check_members() {
    std::int64_t sum_before = 0, sum_after = 0;
    for (std::uint64_t m = 1; m <= members_max; ++m) {
      auto& mm = model_[m];
      if (!mm.enrolled)
        continue;
      INFO("member " << m);
      auto b = rig_.c->balance(m);
      INFO("balance answer: " << to_string(b.code) << " " << b.message);
      REQUIRE(b.ok());
      std::string why;
      auto book = rig_.eng->ledger().fold_book(m, why);
      INFO(why);
      REQUIRE(book);
      // The answer is the book's view, now (balance posted what was due first).
      std::int64_t lots = 0, holds = 0;
      REQUIRE(ledger::sum_lots(*book, lots));
      REQUIRE(ledger::sum_holds(*book, holds));
      CHECK(b.balance == lots + holds - book->debt);
      auto view = actors::balance_of(*book, now());
      REQUIRE(view.code == errc::ok);
      CHECK(view.expired_unswept == 0);
      std::int64_t available_lots = 0;
      std::size_t available_count = 0;
      for (const auto& l : book->lots) {
        CHECK(l.points > 0);
        if (actors::lot_available(l, now())) {
          available_lots += l.points;
          ++available_count;
        }
      }
      CHECK(b.available == available_lots - book->debt);
      CHECK(b.available == view.available);
      CHECK(b.pending == view.pending);
      CHECK(b.held == view.held);
      CHECK(b.held == holds);
      CHECK(b.debt == book->debt);
      CHECK(b.debt >= 0);
      CHECK(b.debt <= negative_balance_max);
      CHECK(b.balance >= -negative_balance_max);
      CHECK(b.balance == b.available + b.pending + b.held);
      if (last_activity_inactive(book->last_activity_us))
        CHECK(lots == 0);  // everything forfeits after inactivity_days
      if (trace_)
        std::fprintf(stderr, "  member %llu: balance %lld available %lld pending %lld held %lld debt %lld lots %zu\n",
                     static_cast<unsigned long long>(m), static_cast<long long>(b.balance),
                     static_cast<long long>(b.available), static_cast<long long>(b.pending),
                     static_cast<long long>(b.held), static_cast<long long>(b.debt), book->lots.size());
      check_move(m, b, book->last_activity_us);
      sum_before += mm.balance;
      sum_after += b.balance;
      mm.balance = b.balance;
      mm.available = b.available;
      mm.pending = b.pending;
      mm.held = b.held;
      mm.debt = b.debt;
      mm.last_activity_us = book->last_activity_us;
      mm.available_lots = available_count;
      mm.lots = book->lots.size();
    }
    if (expected_loss_all_) {
      INFO("points expired by expire all: " << *expected_loss_all_);
      CHECK(sum_before - sum_after == *expected_loss_all_);
    }
    expected_loss_all_.reset();
    expected_loss_one_.reset();
  }

  bool last_activity_inactive(std::uint64_t last) const {
    return last != 0 && last + inactivity_days * day <= now();
  }

  // How the member's balance moved, against the step's expectation.
  void check_move(std::uint64_t m, const response& b, std::uint64_t last_activity) {
    const auto& before = model_[m];
    if (time_passed_) {  // time only ever takes
      CHECK(b.balance <= before.balance);
      CHECK(b.held <= before.held);
      CHECK(b.debt == before.debt);
      if (expected_loss_one_ && expected_loss_one_->first == m) {
        INFO("points expired by expire of this member: " << expected_loss_one_->second);
        CHECK(before.balance - b.balance == expected_loss_one_->second);
      }
      return;
    }
    if (loose_)
      return;
    expect_move mv = moves_.count(m) != 0 ? moves_[m] : expect_move{};
    std::int64_t debt_after = before.debt;
    if (mv.credit > 0) {  // the debt takes its share of the new points first
      const std::int64_t repaid = std::min(before.debt, mv.credit);
      debt_after -= repaid;
      if (mv.credit_expires) {
        mv.balance += repaid;
        mv.available += repaid;
      } else {
        mv.balance += mv.credit;
        mv.available += mv.credit_pending ? repaid : mv.credit;
        mv.pending += mv.credit_pending ? mv.credit - repaid : 0;
      }
    }
    INFO("expected move: balance " << mv.balance << " available " << mv.available << " pending " << mv.pending
                                   << " held " << mv.held << " slack " << mv.slack);
    INFO("before: balance " << before.balance << " available " << before.available << " pending " << before.pending
                            << " held " << before.held << " debt " << before.debt);
    INFO("after: balance " << b.balance << " available " << b.available << " pending " << b.pending << " held "
                           << b.held << " debt " << b.debt);
    CHECK(b.held == before.held + mv.held);
    if (mv.debt_may_grow)
      CHECK(b.debt >= before.debt);
    else
      CHECK(b.debt == debt_after);
    // A member inactive for inactivity_days after this op (and an op that
    // adds points without being activity) forfeits every lot at once.
    std::uint64_t activity = before.last_activity_us;
    if (mv.activity)
      activity = std::max(activity, mv.activity_at != 0 ? mv.activity_at : now());
    CHECK(last_activity == activity);
    if (last_activity_inactive(activity)) {
      CHECK(b.pending == 0);
      CHECK(b.available == -b.debt);
      return;
    }
    const std::int64_t expired = before.balance + mv.balance - b.balance;
    CHECK(expired >= 0);
    CHECK(expired <= mv.slack);
    if (mv.split_unknown) {
      CHECK(b.available + b.pending == before.available + before.pending + mv.available + mv.pending - expired);
    } else {
      CHECK(b.available == before.available + mv.available - expired);
      CHECK(b.pending == before.pending + mv.pending);
    }
  }

  void check_verify() {
    INFO("operation: " << op_ << "; verify");
    auto v = rig_.c->verify();
    REQUIRE(v.ok());
    std::string why;
    for (const auto& p : v.verify.problems)
      why += p + "\n";
    INFO(why);
    REQUIRE(v.verify.valid);
  }

  engine_rig rig_;
  std::mt19937_64 rng_;
  std::uint64_t seed_ = 0, steps_ = 0, step_ = 0, next_txn_ = 1;
  std::string op_;
  member_model model_[members_max + 2];
  std::map<std::uint64_t, expect_move> moves_;
  bool loose_ = false, time_passed_ = false;
  std::optional<std::int64_t> expected_loss_all_;
  std::optional<std::pair<std::uint64_t, std::int64_t>> expected_loss_one_;
  std::vector<hold_model> holds_;
  std::vector<purchase> purchases_;
  std::vector<redemption> redemptions_;
  std::int64_t mugs_out_ = 0;
  std::vector<sent> done_;
  const bool trace_ = std::getenv("LOYALTY_FUZZ_TRACE") != nullptr;
};

} // namespace

TEST_CASE("seeded operation sequences keep the ledger valid and every balance equal to its lots", "[fuzz]") {
  const std::uint64_t steps = env_u64("LOYALTY_FUZZ_STEPS", 600);
  std::map<std::string, std::uint64_t> ok;
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    fuzzer f(seed, steps);
    f.run();
    for (const auto& [op, n] : f.done_ok_)
      ok[op] += n;
  }
  // The sequences reached every operation's success, not only its refusals.
  if (steps >= 400)
    for (const char* op : {"enroll", "earn", "event", "hold", "capture", "release", "redeem", "redeem_reward",
                           "refund", "reverse_redemption", "transfer", "adjust", "expire", "burst transfer",
                           "burst capture", "burst release", "burst refund", "burst reverse_redemption"}) {
      INFO(op);
      CHECK(ok[op] > 0);
    }
}

TEST_CASE("the seed in LOYALTY_FUZZ_SEED keeps the ledger valid too", "[fuzz][seed]") {
  const std::uint64_t seed = env_u64("LOYALTY_FUZZ_SEED", 0);
  if (seed == 0)
    return;  // not set
  fuzzer f(seed, env_u64("LOYALTY_FUZZ_STEPS", 600));
  f.run();
}

TEST_CASE("transfers pipelined in both directions between members neither deadlock nor lose points", "[fuzz]") {
  engine_rig g;
  auto& other = g.c2;
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
  // How many go through depends on how the two streams interleave (a member
  // that sends faster than it receives runs dry): anywhere from a third to
  // all of them, so only "some" is asserted.
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

// Found by the fuzzer (seed 14, step 215, before the fix): the limit was
// checked against the balance, which counts points in open holds that a
// clawback cannot take; the debt grew past the limit and showed once the
// hold was captured.
TEST_CASE("points in an open hold make no room for debt past negative_balance_max", "[fuzz]") {
  engine_rig g;
  REQUIRE(g.c->enroll(1, "shop").ok());  // welcome 25
  REQUIRE(g.admin->adjust("d-credit", 1, 300, "credit", "shop").ok());
  // Bought three days ago: 200 base + 40 first purchase, available now.
  REQUIRE(g.c->earn("d-buy", 1, "shop", 20000, "EUR", g.clock.now_us() - 3 * day).ok());
  auto hold = g.c->hold("d-hold", 1, 565);
  INFO(hold.message);
  REQUIRE(hold.ok());
  // Taking back all 240 points would leave 240 of debt (nothing is left in
  // the lots): refused, as is a debit of 200.
  auto refund = g.c->refund("d-refund", 1, "d-buy");
  CHECK(refund.code == errc::negative_balance_limit);
  CHECK(g.admin->adjust("d-debit", 1, -200, "debit", "shop").code == errc::negative_balance_limit);
  // Half of the purchase: 120 points of debt, within the limit.
  auto half = g.c->refund("d-refund-half", 1, "d-buy", 10000);
  INFO(half.message);
  REQUIRE(half.ok());
  CHECK(half.points == 120);
  auto cap = g.c->capture("d-capture", 1, hold.hold);
  REQUIRE(cap.ok());
  auto b = g.c->balance(1);
  CHECK(b.debt == 120);
  CHECK(b.balance == -120);
  auto v = g.c->verify();
  REQUIRE(v.ok());
  CHECK(v.verify.valid);
}

// Debt is repaid by the points that arrive after it (a lot keeps only what
// the debt did not take), so those points cannot expire and leave the debt
// owed again. Found by the fuzzer: before the fix, later points only netted
// the debt out of `available`, and their expiry brought the full debt back.
TEST_CASE("points that repaid a debt do not expire a second time", "[fuzz]") {
  engine_rig g;
  REQUIRE(g.c->enroll(1, "shop").ok());  // welcome 25
  REQUIRE(g.c->earn("r-buy", 1, "shop", 10000, "EUR", g.clock.now_us() - 3 * day).ok());  // 100 + 40
  REQUIRE(g.c->redeem("r-spend", 1, 165).ok());
  REQUIRE(g.c->refund("r-refund", 1, "r-buy").ok());  // 140 already spent: debt 140
  REQUIRE(g.c->earn("r-buy-2", 1, "shop", 20000, "EUR", g.clock.now_us() - 3 * day).ok());  // 200
  auto before = g.c->balance(1);
  REQUIRE(before.ok());
  REQUIRE(before.balance == 60);  // 140 of the 200 repay the debt
  g.clock.advance(expiry_days * day);
  auto after = g.c->balance(1);
  REQUIRE(after.ok());
  CHECK(after.balance >= 0);  // the expiry takes at most the 60 the member had
  CHECK(after.debt == 0);     // engine: balance -140, debt 140 again
  auto v = g.c->verify();
  REQUIRE(v.ok());
  CHECK(v.verify.valid);
}
