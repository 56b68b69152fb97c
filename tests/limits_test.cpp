// Issue 19 item 2, fraud and velocity limits, end to end over real TCP: a
// real engine (LMDB in a temporary directory, CAF member actors, the Asio
// server) with an injected clock the tests move instead of sleeping; and the
// window arithmetic as plain functions.
#include "command.hpp"
#include "engine_rig.hpp"
#include "one_brand_program.hpp"

#include "actors/policy.hpp"
#include "io/client/client.hpp"
#include "ledger/member_book.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'860'000'000ull;  // 2026-03-02T12:01:00Z
constexpr std::uint64_t hour = 3'600'000'000ull;
constexpr std::uint64_t day = 24 * hour;

// 100.00 EUR earns 100 points. At most 5 earns, 3 redemptions and 2 new
// aliases an hour; 1000 points earned and 1 transfer out a day; the third
// breach flags the member.
const std::string limits_program = std::string(test::one_brand_program) + R"(
[limits]
flag_after_breaches = 3

[limits.per_hour]
earns = 5
redemptions = 3
aliases_linked = 2

[limits.per_day]
points_earned = 1000
transfers_out = 1
)";

struct rig : test::engine_rig {
  explicit rig(const char* what) : test::engine_rig(what, limits_program, t0) {}

  void enroll(std::uint64_t m) { REQUIRE(c->enroll(m, "shop").ok()); }
  response earn(const std::string& txn, std::uint64_t m, std::int64_t cents = 10'000) {
    return c->earn(txn, m, "shop", cents, "EUR", 0);
  }
  response balance(std::uint64_t m) {
    auto r = c->balance(m);
    INFO(r.message);
    REQUIRE(r.ok());
    return r;
  }
  std::vector<risk_member> risk_report() {
    auto r = c->risk_report();
    INFO(r.message);
    REQUIRE(r.ok());
    return r.risk;
  }
};

#define REQUIRE_OK(expr)      \
  do {                        \
    auto r_ = (expr);         \
    INFO(r_.message);         \
    REQUIRE(r_.ok());         \
  } while (false)

#define REQUIRE_REFUSED(expr, code_)         \
  do {                                       \
    auto r_ = (expr);                        \
    INFO(r_.message);                        \
    REQUIRE(r_.code == errc::code_);         \
  } while (false)

// Reads events frames until `n` events of the types asked arrived (or a
// generous deadline passed).
std::vector<stream_event> read_events(client& s, std::size_t n) {
  std::vector<stream_event> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    response r;
    std::string err;
    if (!s.receive(r, err, std::chrono::seconds(20)))
      break;
    REQUIRE(r.ok());
    for (auto& e : r.events)
      out.push_back(std::move(e));
  }
  return out;
}

std::uint32_t type_bit(std::string_view name) {
  for (std::size_t i = 0; i < event_type_names.size(); ++i)
    if (event_type_names[i] == name)
      return 1u << i;
  FAIL("no event type " << name);
  return 0;
}

} // namespace

TEST_CASE("a stolen card racks up earns: the sixth earn in an hour is refused, the third breach flags the member, "
          "an admin blocks them, the till's next earn and redeem are refused, balance still answers, the report "
          "lists them, unblock restores",
          "[limits][journeys]") {
  rig g("limits-journey");
  auto watcher = g.connect(test::read_key);
  REQUIRE(watcher->subscribe(0, type_bit("limit_exceeded") | type_bit("member_blocked") |
                                  type_bit("member_unblocked")).ok());
  g.enroll(1);

  // Five earns in the hour are fine; the sixth is refused and posts nothing.
  for (int i = 1; i <= 5; ++i)
    REQUIRE_OK(g.earn("card-" + std::to_string(i), 1));
  auto refused = g.earn("card-6", 1);
  REQUIRE(refused.code == errc::limit_exceeded);
  CHECK(refused.message.find("earns") != std::string::npos);
  CHECK(refused.message.find("hour") != std::string::npos);
  CHECK(g.balance(1).balance == 500);
  // Hammering the till adds no breach: one per limit and window.
  REQUIRE_REFUSED(g.earn("card-7", 1), limit_exceeded);
  CHECK(g.balance(1).breaches == 1);
  CHECK_FALSE(g.balance(1).flagged);

  // The fraudster turns to spending and to new cards: breaches two and three.
  for (int i = 1; i <= 3; ++i)
    REQUIRE_OK(g.c->redeem("spend-" + std::to_string(i), 1, 10));
  REQUIRE_REFUSED(g.c->redeem("spend-4", 1, 10), limit_exceeded);
  REQUIRE_OK(g.c->link_alias("alias-1", 1, "card:1111"));
  REQUIRE_OK(g.c->link_alias("alias-2", 1, "card:2222"));
  REQUIRE_REFUSED(g.c->link_alias("alias-3", 1, "card:3333"), limit_exceeded);
  auto b = g.balance(1);
  CHECK(b.breaches == 3);
  CHECK(b.flagged);
  CHECK_FALSE(b.blocked);
  auto report = g.risk_report();
  REQUIRE(report.size() == 1);
  CHECK(report[0].member == 1);
  CHECK(report[0].flagged);
  CHECK_FALSE(report[0].blocked);

  // Only an admin blocks.
  auto shop = g.connect(test::shop_key);
  REQUIRE_REFUSED(shop->block("block-by-till", 1, "looks odd"), not_authorized);
  REQUIRE_OK(g.admin->block("block-1", 1, "stolen card reported by the customer"));
  REQUIRE_REFUSED(g.admin->block("block-again", 1, "twice"), invalid_argument);

  // An hour later the limits would allow it, the block does not.
  g.clock.advance(hour);
  REQUIRE_REFUSED(g.earn("till-earn", 1), member_blocked);
  REQUIRE_REFUSED(g.c->redeem("till-redeem", 1, 10), member_blocked);
  REQUIRE_REFUSED(g.c->hold("till-hold", 1, 10), member_blocked);
  g.enroll(2);
  REQUIRE_REFUSED(g.c->transfer("to-accomplice", 1, 2, 10), member_blocked);
  REQUIRE_OK(g.earn("accomplice-earn", 2));
  REQUIRE_REFUSED(g.c->transfer("from-accomplice", 2, 1, 10), member_blocked);
  CHECK(g.balance(2).balance == 100);
  // Reads still answer, and a fraudulent earn can still be refunded.
  b = g.balance(1);
  CHECK(b.blocked);
  CHECK(b.flagged);
  CHECK(b.balance == 470);
  REQUIRE(g.c->history(1).ok());
  REQUIRE_OK(g.c->refund("refund-card-5", 1, "card-5"));
  CHECK(g.balance(1).balance == 370);
  report = g.risk_report();
  REQUIRE(report.size() == 1);
  CHECK(report[0].blocked);
  CHECK(report[0].breaches == 3);
  CHECK(report[0].blocked_at_us == t0);
  CHECK(report[0].reason == "stolen card reported by the customer");

  // Unblock: the member earns again, the flag and breaches are cleared, the
  // report is empty; the refused earn's txn id was never used.
  REQUIRE_REFUSED(shop->unblock("unblock-by-till", 1, "customer called"), not_authorized);
  REQUIRE_OK(g.admin->unblock("unblock-1", 1, "new card issued"));
  REQUIRE_OK(g.earn("card-6", 1));
  b = g.balance(1);
  CHECK_FALSE(b.blocked);
  CHECK_FALSE(b.flagged);
  CHECK(b.breaches == 0);
  CHECK(b.balance == 470);
  CHECK(g.risk_report().empty());

  // The stream told it all: three breaches (the third flags), the block, the unblock.
  auto events = read_events(*watcher, 5);
  REQUIRE(events.size() == 5);
  CHECK(events[0].type == "limit_exceeded");
  CHECK(events[0].limit == "earns");
  CHECK(events[0].window == "hour");
  CHECK(events[0].reached == 6);
  CHECK(events[0].bound == 5);
  CHECK_FALSE(events[0].flagged);
  CHECK(events[1].limit == "redemptions");
  CHECK(events[2].limit == "aliases_linked");
  CHECK(events[2].flagged);
  CHECK(events[3].type == "member_blocked");
  CHECK(events[3].reason == "stolen card reported by the customer");
  CHECK(events[4].type == "member_unblocked");
  CHECK(events[4].reason == "new card issued");
  g.check_verify();
}

TEST_CASE("a day's limits on points earned and transfers out refuse the request that would cross them, and the "
          "next day starts afresh",
          "[limits]") {
  rig g("limits-day");
  g.enroll(1);
  g.enroll(2);
  REQUIRE_OK(g.earn("e1", 1, 40'000));  // 400 points
  REQUIRE_OK(g.earn("e2", 1, 40'000));  // 800
  auto r = g.earn("e3", 1, 40'000);     // would be 1200
  REQUIRE(r.code == errc::limit_exceeded);
  CHECK(r.message.find("points_earned") != std::string::npos);
  CHECK(r.message.find("day") != std::string::npos);
  REQUIRE_OK(g.earn("e4", 1, 20'000));  // exactly 1000: at the limit is within it
  REQUIRE_REFUSED(g.earn("e5", 1, 100), limit_exceeded);
  REQUIRE_OK(g.c->transfer("t1", 1, 2, 10));
  REQUIRE_REFUSED(g.c->transfer("t2", 1, 2, 10), limit_exceeded);
  REQUIRE_OK(g.c->transfer("t-back", 2, 1, 5));  // the receiver's own first transfer of the day
  CHECK(g.balance(1).balance == 995);
  CHECK(g.balance(1).breaches == 2);

  // A new local day: the earn refused yesterday posts with its own txn id.
  g.clock.advance(day);
  REQUIRE_OK(g.earn("e3", 1, 40'000));
  REQUIRE_OK(g.c->transfer("t2", 1, 2, 10));
  CHECK(g.balance(1).balance == 1385);
  g.check_verify();
}

TEST_CASE("breaches, the flag and a block survive an engine restart, and verify checks the risk table", "[limits]") {
  rig g("limits-restart");
  g.enroll(1);
  for (int i = 1; i <= 5; ++i)
    REQUIRE_OK(g.earn("e" + std::to_string(i), 1));
  REQUIRE_REFUSED(g.earn("e6", 1), limit_exceeded);
  for (int i = 1; i <= 3; ++i)
    REQUIRE_OK(g.c->redeem("r" + std::to_string(i), 1, 10));
  REQUIRE_REFUSED(g.c->redeem("r4", 1, 10), limit_exceeded);
  CHECK(g.balance(1).breaches == 2);

  g.restart();
  auto b = g.balance(1);
  CHECK(b.breaches == 2);
  CHECK_FALSE(b.flagged);
  // The windows came back from the journal too: the same hour still counts
  // five earns, and a repeated breach of the same limit journals nothing new.
  REQUIRE_REFUSED(g.earn("e7", 1), limit_exceeded);
  CHECK(g.balance(1).breaches == 2);
  // The third breach, after the restart, flags the member.
  REQUIRE_OK(g.c->link_alias("a1", 1, "card:1"));
  REQUIRE_OK(g.c->link_alias("a2", 1, "card:2"));
  REQUIRE_REFUSED(g.c->link_alias("a3", 1, "card:3"), limit_exceeded);
  CHECK(g.balance(1).flagged);
  // Linking an alias the member already has posts nothing, so no limit refuses it.
  REQUIRE_OK(g.c->link_alias("a1-again", 1, "card:1"));
  REQUIRE_OK(g.admin->block("b1", 1, "under review"));

  g.restart();
  b = g.balance(1);
  CHECK(b.flagged);
  CHECK(b.blocked);
  CHECK(b.breaches == 3);
  REQUIRE_REFUSED(g.earn("e8", 1), member_blocked);
  auto report = g.c->risk_report();
  REQUIRE(report.ok());
  REQUIRE(report.risk.size() == 1);
  CHECK(report.risk[0].reason == "under review");
  g.check_verify();
}

TEST_CASE("an engine without limits never refuses for velocity, and block still works", "[limits]") {
  test::engine_rig g("limits-none", test::one_brand_program, t0);
  REQUIRE(g.c->enroll(1, "shop").ok());
  for (int i = 1; i <= 20; ++i)
    REQUIRE_OK(g.c->earn("e" + std::to_string(i), 1, "shop", 10'000, "EUR", 0));
  auto b = g.c->balance(1);
  REQUIRE(b.ok());
  CHECK(b.breaches == 0);
  CHECK_FALSE(b.flagged);
  REQUIRE_OK(g.admin->block("b1", 1, "chargeback"));
  REQUIRE_REFUSED(g.c->earn("e21", 1, "shop", 10'000, "EUR", 0), member_blocked);
  REQUIRE_OK(g.admin->unblock("u1", 1, "resolved"));
  REQUIRE_OK(g.c->earn("e21", 1, "shop", 10'000, "EUR", 0));
  g.check_verify();
}

TEST_CASE("an operator blocks, lists and unblocks a member with loyaltyctl", "[limits][tools]") {
  rig g("limits-ctl");
  g.enroll(9);
  auto ctl = [&](const std::string& args, int& status) {
    return test::run_command(std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(g.eng->port()) + " --key " +
                               test::admin_key + " " + args + " 2>&1",
                             status);
  };
  int status = -1;
  auto out = ctl("block --help", status);
  CHECK(status == 0);
  CHECK(out.find("--reason") != std::string::npos);
  out = ctl("block --txn ops-1 --member 9 --reason 'card reported stolen'", status);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("member 9 blocked") != std::string::npos);
  out = ctl("earn --txn till-1 --member 9 --brand shop --amount 1500", status);
  CHECK(status == 1);
  CHECK(out.find("member_blocked") != std::string::npos);
  out = ctl("risk-report", status);
  CHECK(status == 0);
  CHECK(out.find("member 9 blocked") != std::string::npos);
  CHECK(out.find("card reported stolen") != std::string::npos);
  out = ctl("balance 9", status);
  CHECK(status == 0);
  CHECK(out.find("BLOCKED") != std::string::npos);
  out = ctl("unblock --txn ops-2 --member 9 --reason 'new card issued'", status);
  CHECK(status == 0);
  out = ctl("risk-report", status);
  CHECK(out.find("0 members flagged or blocked") != std::string::npos);
}

TEST_CASE("under a sandbox key a request past a limit journals no breach, and block and unblock are dry runs",
          "[limits][sandbox]") {
  constexpr const char* sandbox_admin = "limits-sandbox-admin-key-0123456789";
  test::engine_rig g("limits-sandbox", limits_program, t0, [&](io::engine_options& o) {
    auto k = test::make_key(4, "sandbox-admin", sandbox_admin, key_scope::admin);
    k.dry_run = true;
    o.settings.keys.push_back(k);
  });
  REQUIRE(g.c->enroll(1, "shop").ok());
  for (int i = 1; i <= 5; ++i)
    REQUIRE_OK(g.c->earn("e" + std::to_string(i), 1, "shop", 10'000, "EUR", 0));
  auto sandbox = g.connect(sandbox_admin);
  auto r = sandbox->earn("e6", 1, "shop", 10'000, "EUR", 0);
  CHECK(r.code == errc::limit_exceeded);
  CHECK(r.dry_run);
  auto blocked = sandbox->block("b1", 1, "just trying");
  INFO(blocked.message);
  REQUIRE(blocked.ok());
  CHECK(blocked.dry_run);
  CHECK(sandbox->unblock("u1", 1, "just trying").dry_run);
  auto b = g.c->balance(1);
  REQUIRE(b.ok());
  CHECK(b.breaches == 0);
  CHECK_FALSE(b.blocked);
  // The real request past the limit does journal its breach.
  REQUIRE_REFUSED(g.c->earn("e6", 1, "shop", 10'000, "EUR", 0), limit_exceeded);
  CHECK(g.c->balance(1).breaches == 1);
  g.check_verify();
}

// -- the window arithmetic, as plain functions ---------------------------------------

TEST_CASE("velocity windows are the program-local clock hour and day", "[limits][unit]") {
  program p;
  CHECK(actors::local_hour_index(p, 0) == 0);
  CHECK(actors::local_hour_index(p, hour - 1) == 0);
  CHECK(actors::local_hour_index(p, hour) == 1);
  CHECK(actors::local_hour_index(p, t0) == t0 / hour);
  // UTC+01:30: 22:45 UTC is 00:15 local of the next day.
  p.utc_offset_minutes = 90;
  const std::uint64_t late = 20 * day + 22 * hour + 45 * 60'000'000ull;
  CHECK(actors::local_hour_index(p, late) == 21 * 24);
  CHECK(actors::local_hour_index(p, late) / 24 == actors::local_day(p, late));
  // Before the local epoch: hour 0.
  p.utc_offset_minutes = -60;
  CHECK(actors::local_hour_index(p, 10) == 0);
}

TEST_CASE("a later hour resets the hour's counts, a later day the day's, an earlier hour moves nothing",
          "[limits][unit]") {
  using ledger::velocity_metric;
  using ledger::velocity_window;
  ledger::velocity_windows w;
  const std::uint32_t h = 24 * 100 + 5;  // day 100, 05:00
  REQUIRE(ledger::roll_windows(w, h));
  w.in_hour[0] = 3;
  w.in_day[0] = 7;
  w.hour_breached = 1;
  CHECK(ledger::window_value(w, velocity_metric::earns, velocity_window::hour, h) == 3);
  // Asked about the next hour, the current hour's counts do not apply.
  CHECK(ledger::window_value(w, velocity_metric::earns, velocity_window::hour, h + 1) == 0);
  CHECK(ledger::window_value(w, velocity_metric::earns, velocity_window::day, h + 1) == 7);
  CHECK(ledger::window_breached(w, velocity_metric::earns, velocity_window::hour, h));
  CHECK_FALSE(ledger::window_breached(w, velocity_metric::earns, velocity_window::hour, h + 1));
  CHECK_FALSE(ledger::roll_windows(w, h - 1));
  CHECK(w.in_hour[0] == 3);
  REQUIRE(ledger::roll_windows(w, h + 1));
  CHECK(w.in_hour[0] == 0);
  CHECK(w.hour_breached == 0);
  CHECK(w.in_day[0] == 7);
  REQUIRE(ledger::roll_windows(w, h + 24));
  CHECK(w.in_day[0] == 0);
  CHECK(w.day == 101);
}

TEST_CASE("a limit is crossed by the request that would go past it, counts first, per hour before per day",
          "[limits][unit]") {
  using ledger::velocity_metric;
  using ledger::velocity_window;
  velocity_limits l;
  l.per_hour.earns = 2;
  l.per_day.points_earned = 100;
  ledger::velocity_windows w;
  const std::uint32_t h = 1000;
  REQUIRE(ledger::roll_windows(w, h));
  CHECK_FALSE(actors::check_limits(l, w, h, velocity_metric::earns, 100).breached);  // exactly at the bound
  w.in_hour[0] = 2;
  w.in_day[0] = 2;
  auto b = actors::check_limits(l, w, h, velocity_metric::earns, 1);
  REQUIRE(b.breached);
  CHECK(b.metric == velocity_metric::earns);
  CHECK(b.window == velocity_window::hour);
  CHECK(b.reached == 3);
  CHECK(b.limit == 2);
  // The next hour: the count is fresh, the day's points are not.
  w.in_day[1] = 90;
  b = actors::check_limits(l, w, h + 1, velocity_metric::earns, 11);
  REQUIRE(b.breached);
  CHECK(b.metric == velocity_metric::points_earned);
  CHECK(b.window == velocity_window::day);
  CHECK(b.reached == 101);
  CHECK_FALSE(actors::check_limits(l, w, h + 1, velocity_metric::earns, 10).breached);
  // A metric without a bound never breaches.
  CHECK_FALSE(actors::check_limits(l, w, h, velocity_metric::redemptions, INT64_MAX).breached);
}

TEST_CASE("a stored book keeps its velocity windows and risk state, and a format-2 book reads with them zero",
          "[limits][unit]") {
  ledger::member_book b;
  std::vector<char> none;
  ledger::encode_book(b, none);
  ledger::member_book plain;
  REQUIRE(ledger::decode_book(none.data(), none.size(), plain));
  CHECK(plain.velocity.empty());  // a book never counted under limits gets no windows back
  b.enrolled_at_us = 42;
  REQUIRE(ledger::roll_windows(ledger::velocity_for(b), 5000));
  b.velocity.front().in_day[3] = 77;
  b.velocity.front().day_breached = 8;
  b.risk = ledger::risk_record{3, ledger::risk_flagged | ledger::risk_blocked, 99, 12, 13};
  std::vector<char> bytes;
  ledger::encode_book(b, bytes);
  ledger::member_book back;
  REQUIRE(ledger::decode_book(bytes.data(), bytes.size(), back));
  REQUIRE(back.velocity.size() == 1);
  CHECK(back.velocity.front().hour == 5000);
  CHECK(back.velocity.front().in_day[3] == 77);
  CHECK(back.velocity.front().day_breached == 8);
  CHECK(back.risk.breaches == 3);
  CHECK(back.risk.block_seq == 12);
  // Format 2: the same bytes without the 144 bytes format 3 added.
  std::vector<char> v2(bytes.begin(), bytes.begin() + 112);
  v2.insert(v2.end(), bytes.begin() + 256, bytes.end());
  const std::uint32_t two = 2;
  std::memcpy(v2.data(), &two, sizeof two);
  ledger::member_book old;
  REQUIRE(ledger::decode_book(v2.data(), v2.size(), old));
  CHECK(old.enrolled_at_us == 42);
  CHECK(old.velocity.empty());
  CHECK(old.risk.flags == 0);
}
