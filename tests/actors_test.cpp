// Member, brand and program actors on a real CAF actor system over a real
// LMDB ledger in a temporary directory.
#include "eventually.hpp"
#include "temp_dir.hpp"
#include "actors/atoms.hpp"
#include "actors/member.hpp"
#include "actors/program_root.hpp"
#include "config/clock.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/after.hpp>
#include <caf/system_messages.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <catch2/catch.hpp>

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

using namespace loyalty;
using namespace std::chrono_literals;

namespace {

program test_program() {
  program p;
  p.name = "t";
  p.currency = "EUR";
  p.brands.push_back({1, "acme", "Acme", {1, 100}});
  p.brands.push_back({2, "globex", "Globex", {2, 100}});
  p.tiers.push_back({"member", 0, {1, 1}});
  p.tiers.push_back({"silver", 1000, {3, 2}});
  return p;
}

struct collector final : ledger::completion_target {
  std::mutex mtx;
  std::condition_variable cv;
  std::map<std::uint64_t, ledger::outcome> got;
  void complete(std::vector<ledger::outcome>&& v) noexcept override {
    std::lock_guard<std::mutex> g(mtx);
    for (auto& o : v)
      got[o.tag] = o;
    cv.notify_all();
  }
  ledger::outcome wait(std::uint64_t tag) {
    std::unique_lock<std::mutex> g(mtx);
    REQUIRE(cv.wait_for(g, 20s, [&] { return got.count(tag) != 0; }));
    return got[tag];
  }
};

struct temp_dir : test::temp_dir {
  temp_dir() : test::temp_dir("actors") {}
};

// The actor half of the engine, without the server.
struct rig {
  program prog = test_program();
  actors::policy_state policy;  // version 0: no caps or stock across members in these tests
  manual_clock clock;
  std::unique_ptr<ledger::ledger> led;
  actors::engine_context ctx;
  actors::supervision_stats sup;
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<actors::directory> dir;
  std::shared_ptr<collector> out = std::make_shared<collector>();
  std::atomic<std::uint64_t> next_tag{1};  // tests send from several threads

  explicit rig(const std::string& dirpath, std::uint32_t active_max = 1000, std::uint32_t idle_ticks = 1000,
               std::uint32_t passivating_max = 0) {
    ledger::options lo;
    lo.dir = dirpath;
    lo.map_bytes = 1ull << 30;
    lo.commit_window_us = 0;
    lo.clock = &clock;
    lo.tier_of = [this](std::int64_t l) { return prog.tier_for(l); };
    std::string err;
    led = ledger::ledger::open(lo, err);
    INFO(err);
    REQUIRE(led);
    cfg = std::make_unique<caf::actor_system_config>();
    cfg->set("scheduler.max-threads", std::size_t{2});
    sys = std::make_unique<caf::actor_system>(*cfg);
    policy.prog = prog;
    ctx.policy.store(&policy);
    ctx.ledger = led.get();
    ctx.clock = &clock;
    dir = std::make_unique<actors::directory>(*sys, ctx, active_max, idle_ticks, passivating_max);
    ctx.dir = dir.get();
    // A long sweep interval: tests call dir->sweep() themselves.
    actors::start_program(*sys, ctx, sup, std::chrono::hours(1));
  }

  ~rig() {
    dir->shutdown();
    for (auto& [id, b] : ctx.brand_actors)
      caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(ctx.root, caf::exit_reason::user_shutdown);
    sys->await_all_actors_done();
    led->barrier();
  }

  std::uint64_t send(actors::member_request r, std::shared_ptr<collector> to = nullptr) {
    auto tag = next_tag++;
    r.reply = std::make_shared<actors::reply_guard>(to ? to : out, tag);
    auto member = r.member;
    if (r.kind == actors::request_kind::enroll)
      dir->enroll(member, std::move(r));  // as the server routes it: without an actor if the member has none
    else
      dir->send(member, caf::make_message(std::move(r)));
    return tag;
  }
  ledger::outcome call(actors::member_request r) { return out->wait(send(std::move(r))); }

  static actors::member_request enroll(std::uint64_t m, std::uint32_t brand = 1) {
    actors::member_request r;
    r.kind = actors::request_kind::enroll;
    r.member = m;
    r.brand_id = brand;
    return r;
  }
  static actors::member_request with_txn(actors::member_request r, const std::string& txn) {
    r.txn_bytes = static_cast<std::uint8_t>(txn.size());
    std::copy(txn.begin(), txn.end(), r.txn.begin());
    r.hash = actors::content_hasher(r.kind)
               .add(r.member)
               .add(std::uint64_t{r.brand_id})
               .add(r.amount_minor)
               .add(r.occurred_at_us)
               .add(r.points)
               .value();
    return r;
  }
  static actors::member_request earn(std::uint64_t m, std::int64_t amount, const std::string& txn,
                                     std::uint32_t brand = 1) {
    actors::member_request r;
    r.kind = actors::request_kind::earn;
    r.member = m;
    r.brand_id = brand;
    r.amount_minor = amount;
    r.occurred_at_us = 1;
    return with_txn(r, txn);
  }
  static actors::member_request redeem(std::uint64_t m, std::int64_t points, const std::string& txn) {
    actors::member_request r;
    r.kind = actors::request_kind::redeem;
    r.member = m;
    r.points = points;
    return with_txn(r, txn);
  }
  static actors::member_request balance(std::uint64_t m) {
    actors::member_request r;
    r.kind = actors::request_kind::balance;
    r.member = m;
    return r;
  }
};

using test::eventually;

} // namespace

TEST_CASE("an enrolled member earns and redeems, and its balance survives a restart", "[actors]") {
  temp_dir tmp;
  {
    rig r(tmp.path);
    CHECK(r.call(rig::enroll(7)).code == errc::ok);
    auto e = r.call(rig::earn(7, 12345, "e1"));  // 123.45 EUR at 1 point per EUR
    REQUIRE(e.code == errc::ok);
    CHECK(e.points == 123);
    CHECK(e.balance == 123);
    auto d = r.call(rig::redeem(7, 23, "r1"));
    REQUIRE(d.code == errc::ok);
    CHECK(d.balance == 100);
    CHECK(d.lifetime == 123);
  }
  rig r(tmp.path);
  auto b = r.call(rig::balance(7));
  REQUIRE(b.code == errc::ok);
  CHECK(b.balance == 100);
  CHECK(b.lifetime == 123);
  CHECK(b.brand_id == 1);
  CHECK(r.led->verify().ok);
}

TEST_CASE("earns of one brand and expiry join the member's newest lot, so the book stays small", "[actors]") {
  temp_dir tmp;
  std::int64_t balance = 0;
  {
    rig r(tmp.path);
    REQUIRE(r.call(rig::enroll(7)).code == errc::ok);
    std::int64_t acme = 0, globex = 0, last = 0;
    for (int i = 0; i < 200; ++i) {  // no expiry, no return window: one lot
      auto e = r.call(rig::earn(7, 1000, "a" + std::to_string(i)));
      REQUIRE(e.code == errc::ok);
      acme += e.points;
    }
    for (int i = 0; i < 3; ++i) {
      auto e = r.call(rig::earn(7, 500, "g" + std::to_string(i), 2));
      REQUIRE(e.code == errc::ok);
      globex += e.points;
    }
    auto e = r.call(rig::earn(7, 1000, "a-last"));  // the newest lot is Globex's now: a lot of its own
    REQUIRE(e.code == errc::ok);
    last = e.points;
    auto d = r.call(rig::redeem(7, 5, "r1"));
    REQUIRE(d.code == errc::ok);
    balance = d.balance;
    CHECK(balance == acme + globex + last - 5);
    r.led->barrier();
    std::string why;
    auto book = r.led->fold_book(7, why);
    INFO(why);
    REQUIRE(book);
    REQUIRE(book->lots.size() == 3);
    CHECK(book->lots[0].brand_id == 1);
    CHECK(book->lots[0].points == acme - 5);  // never-expiring lots: the lowest id is spent first
    CHECK(book->lots[1].brand_id == 2);
    CHECK(book->lots[1].points == globex);
    CHECK(book->lots[2].brand_id == 1);
    CHECK(book->lots[2].points == last);
    CHECK(book->next_lot_id == 4);
  }
  rig r(tmp.path);
  auto b = r.call(rig::balance(7));
  REQUIRE(b.code == errc::ok);
  CHECK(b.balance == balance);
  CHECK(r.led->verify().ok);
}

TEST_CASE("operations on a member that was never enrolled are unknown_member", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path);
  CHECK(r.call(rig::earn(99, 500, "x")).code == errc::unknown_member);
  CHECK(r.call(rig::balance(99)).code == errc::unknown_member);
  CHECK(r.call(rig::redeem(99, 1, "y")).code == errc::unknown_member);
  CHECK(r.led->last_seq() == 0);
}

TEST_CASE("an enrollment spawns no actor and leaves no slot once committed", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path);
  for (std::uint64_t m = 1; m <= 50; ++m)
    REQUIRE(r.call(rig::enroll(m)).code == errc::ok);
  CHECK(r.dir->active() == 0);
  CHECK(r.dir->stats().activations == 0);
  CHECK(eventually([&] { return r.dir->slot_count() == 0; }));  // dropped as each commit completes
  CHECK(r.call(rig::enroll(7)).code == errc::member_exists);
  auto e = r.call(rig::earn(7, 500, "e7"));
  REQUIRE(e.code == errc::ok);
  CHECK(e.balance == 5);
  CHECK(r.dir->active() == 1);
  CHECK(r.led->verify().ok);
}

TEST_CASE("a request sent right behind an enrollment without actor sees the member", "[actors]") {
  // The earn finds the enrollment's slot and spawns an actor, which must not
  // load the member before the enrollment is committed.
  temp_dir tmp;
  rig r(tmp.path);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> tags;
  for (std::uint64_t m = 1; m <= 300; ++m) {
    auto en = r.send(rig::enroll(m));
    auto ea = r.send(rig::earn(m, 1000, "e" + std::to_string(m)));
    tags.emplace_back(en, ea);
  }
  for (auto [en, ea] : tags) {
    CHECK(r.out->wait(en).code == errc::ok);
    auto e = r.out->wait(ea);
    CHECK(e.code == errc::ok);
    CHECK(e.balance == 10);
  }
  CHECK(r.led->verify().ok);
}

TEST_CASE("an actor spawned while an enrollment without actor is under way loads the enrolled member",
          "[actors]") {
  // Thread b sends an earn for member m the moment thread a starts enrolling
  // m, so the earn's actor is often spawned while the enrollment is being
  // prepared. Such an actor must wait for it: one that loaded "not enrolled"
  // would refuse the member's requests (unknown_member) until passivated.
  temp_dir tmp;
  rig r(tmp.path);
  constexpr std::uint64_t members = 10000;
  std::atomic<std::uint64_t> started{0};
  std::thread a([&] {
    for (std::uint64_t m = 1; m <= members; ++m) {
      started.store(m, std::memory_order_release);
      r.send(rig::enroll(m));
    }
  });
  std::thread b([&] {
    for (std::uint64_t m = 1; m <= members; ++m) {
      while (started.load(std::memory_order_acquire) < m)
        ;
      r.send(rig::earn(m, 100, "race" + std::to_string(m)));  // ok, or unknown_member if first
    }
  });
  a.join();
  b.join();
  r.led->barrier();
  std::vector<std::uint64_t> after;
  for (std::uint64_t m = 1; m <= members; ++m)
    after.push_back(r.send(rig::earn(m, 100, "after" + std::to_string(m))));
  int refused = 0;
  for (auto t : after)
    refused += r.out->wait(t).code != errc::ok;
  CHECK(refused == 0);
  CHECK(r.led->verify().ok);
}

TEST_CASE("concurrent enrollments of one member: exactly one succeeds", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path);
  constexpr std::uint64_t members = 200;
  constexpr int threads = 4;
  std::vector<std::vector<std::uint64_t>> tags(threads);
  {
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        for (std::uint64_t m = 1; m <= members; ++m)
          tags[static_cast<std::size_t>(t)].push_back(r.send(rig::enroll(m)));
      });
    for (auto& t : ts)
      t.join();
  }
  for (std::uint64_t m = 1; m <= members; ++m) {
    int ok = 0, exists = 0;
    for (int t = 0; t < threads; ++t) {
      auto code = r.out->wait(tags[static_cast<std::size_t>(t)][m - 1]).code;
      ok += code == errc::ok;
      exists += code == errc::member_exists;
    }
    CHECK(ok == 1);
    CHECK(exists == threads - 1);
  }
  CHECK(r.led->last_seq() == members);  // one enroll entry each
  CHECK(r.led->verify().ok);
}

TEST_CASE("enrolling the same member twice is member_exists and posts nothing", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path);
  CHECK(r.call(rig::enroll(5)).code == errc::ok);
  auto seq = r.led->last_seq();
  CHECK(r.call(rig::enroll(5, 2)).code == errc::member_exists);
  CHECK(r.led->last_seq() == seq);
}

TEST_CASE("a redeem of more points than available is refused and posts nothing", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path);
  r.call(rig::enroll(1));
  r.call(rig::earn(1, 1000, "e"));
  auto seq = r.led->last_seq();
  auto d = r.call(rig::redeem(1, 11, "too-much"));
  CHECK(d.code == errc::insufficient_points);
  CHECK(r.led->last_seq() == seq);
  CHECK(r.call(rig::balance(1)).balance == 10);
}

TEST_CASE("a replayed earn returns the original result and the balance does not move", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path);
  r.call(rig::enroll(1));
  auto first = r.call(rig::earn(1, 5000, "same"));
  auto again = r.call(rig::earn(1, 5000, "same"));
  CHECK(again.code == errc::ok);
  CHECK(again.replayed);
  CHECK(again.seq == first.seq);
  CHECK(again.balance == first.balance);
  // The actor's tentative state was corrected: the next earn builds on 50.
  auto next = r.call(rig::earn(1, 100, "next"));
  CHECK(next.balance == 51);
  CHECK(r.call(rig::earn(1, 5001, "same")).code == errc::txn_id_conflict);
  CHECK(r.call(rig::balance(1)).balance == 51);
  CHECK(r.led->verify().ok);
}

TEST_CASE("a redeem retried after the points were spent returns its original result", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path);
  r.call(rig::enroll(1));
  r.call(rig::earn(1, 1000, "e"));
  auto d = r.call(rig::redeem(1, 10, "spend-all"));
  REQUIRE(d.code == errc::ok);
  auto retry = r.call(rig::redeem(1, 10, "spend-all"));
  CHECK(retry.code == errc::ok);
  CHECK(retry.replayed);
  CHECK(retry.seq == d.seq);
  CHECK(r.call(rig::balance(1)).balance == 0);
}

TEST_CASE("reaching a tier's threshold upgrades at once and its multiplier applies to the next earn", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path);
  r.call(rig::enroll(3));
  auto e = r.call(rig::earn(3, 100000, "big"));  // 1000 points: silver
  CHECK(e.tier == 1);
  auto f = r.call(rig::earn(3, 1000, "after"));  // 10 points * 3/2
  CHECK(f.points == 15);
}

TEST_CASE("two carts redeeming the same points at once cannot both spend them", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path);
  r.call(rig::enroll(1));
  r.call(rig::earn(1, 10000, "e"));  // 100 points
  auto cart_a = std::make_shared<collector>();
  auto cart_b = std::make_shared<collector>();
  std::vector<std::uint64_t> tags_a, tags_b;
  std::mutex tag_mtx;
  std::thread ta([&] {
    for (int i = 0; i < 30; ++i) {
      std::lock_guard<std::mutex> g(tag_mtx);
      tags_a.push_back(r.send(rig::redeem(1, 7, "a" + std::to_string(i)), cart_a));
    }
  });
  std::thread tb([&] {
    for (int i = 0; i < 30; ++i) {
      std::lock_guard<std::mutex> g(tag_mtx);
      tags_b.push_back(r.send(rig::redeem(1, 7, "b" + std::to_string(i)), cart_b));
    }
  });
  ta.join();
  tb.join();
  std::int64_t spent = 0;
  for (auto t : tags_a)
    if (cart_a->wait(t).code == errc::ok)
      spent += 7;
  for (auto t : tags_b)
    if (cart_b->wait(t).code == errc::ok)
      spent += 7;
  CHECK(spent == 98);  // 14 redeems of 7 fit in 100, the 15th does not
  CHECK(r.call(rig::balance(1)).balance == 2);
  CHECK(r.led->verify().ok);
}

TEST_CASE("a member actor that dies is logged by its brand and reactivated from the ledger", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path);
  r.call(rig::enroll(42, 2));
  r.call(rig::earn(42, 10000, "before", 2));  // 200 points at globex
  auto victim = r.dir->actor_of(42);
  REQUIRE(victim);
  REQUIRE(eventually([&] { return r.sup.monitored.load() == 1; }));
  caf::anon_send_exit(victim, caf::exit_reason::kill);
  REQUIRE(eventually([&] { return r.sup.member_failures.load() == 1; }));
  CHECK(r.dir->stats().crashes == 1);
  auto b = r.call(rig::balance(42));
  CHECK(b.code == errc::ok);
  CHECK(b.balance == 200);
  auto fresh = r.dir->actor_of(42);
  REQUIRE(fresh);
  CHECK(fresh.address() != victim.address());
  CHECK(r.call(rig::earn(42, 100, "after", 2)).balance == 202);
}

TEST_CASE("idle member actors are passivated and come back with their state", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path, 1000, /*idle_ticks*/ 1);
  r.call(rig::enroll(1));
  r.call(rig::earn(1, 700, "e"));
  REQUIRE(r.dir->active() == 1);
  // Idle for a tick, then asked to passivate; sweeps repeat because the
  // answer to the earn can reach the client a moment before the writer has
  // counted its op out of the member's in-flight ops (the actor then stays).
  REQUIRE(eventually([&] {
    r.dir->sweep();
    return r.dir->active() == 0;
  }));
  CHECK(r.dir->stats().passivations == 1);
  CHECK(r.call(rig::balance(1)).balance == 7);
  CHECK(r.dir->stats().activations == 2);
}

TEST_CASE("a member that posted many entries stores its book when passivated, and activates from it",
          "[actors][book]") {
  temp_dir tmp;
  {
    rig r(tmp.path, 1000, /*idle_ticks*/ 1);
    r.call(rig::enroll(1));
    r.call(rig::enroll(2));
    for (std::size_t i = 0; i < limits::book_checkpoint_entries + 4; ++i)
      REQUIRE(r.call(rig::earn(1, 700, "e" + std::to_string(i))).code == errc::ok);
    REQUIRE(r.call(rig::earn(2, 700, "few")).code == errc::ok);  // too few entries: no book stored
    REQUIRE(eventually([&] {
      r.dir->sweep();
      return r.dir->active() == 0;
    }));
    r.call(rig::earn(2, 100, "commit"));  // the queued book is written with the next commit
    std::string why;
    ledger::ledger::fold_info info;
    REQUIRE(r.led->fold_book(1, why, &info));
    CHECK(info.stored_seq == info.as_of);  // the book of its newest entry
    CHECK(info.entries == 0);
    REQUIRE(r.led->fold_book(2, why, &info));
    CHECK(info.stored_seq == 0);
    auto rep = r.led->verify();
    CHECK(rep.ok);
    CHECK(rep.stored_books == 1);
  }
  rig r(tmp.path);
  CHECK(r.call(rig::balance(1)).balance == 7 * static_cast<std::int64_t>(limits::book_checkpoint_entries + 4));
  auto e = r.call(rig::earn(1, 700, "after"));
  CHECK(e.code == errc::ok);
  CHECK(r.led->verify().ok);
}

TEST_CASE("a shutdown ends a member actor whose housekeeping timer is pending", "[actors][stop]") {
  // An open hold that expires within the hour: the actor's housekeeping is a
  // delayed message, and CAF's clock holds a handle of the actor until it
  // fires. The shutdown must end the actor anyway (and wait for it).
  temp_dir tmp;
  rig r(tmp.path);
  REQUIRE(r.call(rig::enroll(1)).code == errc::ok);
  REQUIRE(r.call(rig::earn(1, 5000, "e")).code == errc::ok);
  auto h = rig::with_txn([] {
    actors::member_request q;
    q.kind = actors::request_kind::hold;
    q.member = 1;
    q.points = 10;
    q.ttl_s = 600;
    return q;
  }(), "h");
  REQUIRE(r.call(std::move(h)).code == errc::ok);
  REQUIRE(r.dir->live() == 1);
  r.dir->shutdown();  // returns once the actor ended (a hang here: held until the timer fires, 600 s)
  CHECK(r.dir->live() == 0);
}

TEST_CASE("past the active cap, idle members are passivated down to the cap", "[actors]") {
  temp_dir tmp;
  rig r(tmp.path, /*active_max*/ 5);
  for (std::uint64_t m = 1; m <= 20; ++m) {
    REQUIRE(r.call(rig::enroll(m)).code == errc::ok);
    REQUIRE(r.call(rig::balance(m)).code == errc::ok);  // enrolling spawns no actor; this does
  }
  CHECK(r.dir->active() == 20);
  REQUIRE(eventually([&] {  // repeated for the same reason as above
    r.dir->sweep();
    return r.dir->active() <= 5;
  }));
  for (std::uint64_t m = 1; m <= 20; ++m)
    CHECK(r.call(rig::balance(m)).code == errc::ok);
}

TEST_CASE("a member actor that dies with a passivate request pending gives it back to the sweep", "[actors]") {
  // Found in issue 5: the request died with the mailbox, and the sweep's
  // budget of outstanding requests (passivating_max) shrank by one for good.
  temp_dir tmp;
  rig r(tmp.path, 100000, /*idle_ticks*/ 1, /*passivating_max*/ 100000);
  constexpr std::uint64_t n = 50;
  std::vector<caf::actor> victims;
  for (std::uint64_t m = 1; m <= n; ++m) {
    REQUIRE(r.call(rig::enroll(m)).code == errc::ok);
    REQUIRE(r.call(rig::balance(m)).code == errc::ok);
    victims.push_back(r.dir->actor_of(m));
    REQUIRE(victims.back());
  }
  // Killed, and asked to passivate before the directory hears of the
  // deaths: the requests go to dead actors (or die in their mailboxes).
  for (auto& v : victims)
    caf::anon_send_exit(v, caf::exit_reason::kill);
  r.dir->sweep();
  r.dir->sweep();
  REQUIRE(eventually([&] {
    const auto st = r.dir->stats();
    return st.active == 0 && st.crashes + st.passivations == n;
  }));
  INFO("crashes " << r.dir->stats().crashes << ", passivations " << r.dir->stats().passivations);
  CHECK(r.dir->stats().passivating == 0);
  for (std::uint64_t m = 1; m <= n; ++m)
    CHECK(r.call(rig::balance(m)).code == errc::ok);
}

TEST_CASE("idle actors are passivated a few at a time and never all in one sweep", "[actors]") {
  // A million members enrolled in the same minute go idle in the same tick;
  // asking them all at once queued a million requests in front of every
  // member message (seconds of stall). At most passivating_max requests are
  // outstanding; the rest wait for later sweeps.
  temp_dir tmp;
  rig r(tmp.path, 100000, /*idle_ticks*/ 1, /*passivating_max*/ 8);
  for (std::uint64_t m = 1; m <= 40; ++m) {
    REQUIRE(r.call(rig::enroll(m)).code == errc::ok);
    REQUIRE(r.call(rig::balance(m)).code == errc::ok);
  }
  REQUIRE(r.dir->active() == 40);
  r.dir->sweep();  // all idle for a tick now, but only 8 may be asked
  r.dir->sweep();  // and as many more as have been handled since
  CHECK(r.dir->active() >= 40 - 2 * 8);
  REQUIRE(eventually([&] {
    r.dir->sweep();
    return r.dir->active() == 0;
  }));
  CHECK(r.dir->stats().passivations == 40);
  for (std::uint64_t m = 1; m <= 40; ++m)
    CHECK(r.call(rig::balance(m)).code == errc::ok);
}

TEST_CASE("a shutdown while members are passivating stops every actor, answers every queued request and "
          "touches no freed slot",
          "[actors]") {
  // Found under load: an actor that handled its passivate request after the
  // shutdown had emptied its shard erased a slot the shard no longer held.
  temp_dir tmp;
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    rig r(tmp.path / std::to_string(round), 100000, /*idle_ticks*/ 1, /*passivating_max*/ 100000);
    constexpr std::uint64_t members = 2000;
    std::vector<std::uint64_t> tags;
    for (std::uint64_t m = 1; m <= members; ++m) {
      tags.push_back(r.send(rig::enroll(m)));
      tags.push_back(r.send(rig::balance(m)));  // an actor for each
    }
    for (auto t : tags)
      REQUIRE(r.out->wait(t).code == errc::ok);
    std::vector<caf::actor> actors;
    for (std::uint64_t m = 1; m <= members; ++m)
      if (auto a = r.dir->actor_of(m))
        actors.push_back(a);
    REQUIRE(actors.size() == members);
    r.dir->sweep();
    r.dir->sweep();  // every member idle for a tick: a passivate request each
    // Half the members get a request behind their passivate request (which
    // then finds it pending and stays); the other half only the passivate
    // request, which they may handle after the shutdown has emptied the shards.
    std::vector<std::uint64_t> queued;
    for (std::uint64_t m = 2; m <= members; m += 2)
      queued.push_back(r.send(rig::balance(m)));
    // Every actor stops: a down message for each (one that is already gone
    // sends it at once) well within the bound. Monitored first, and the
    // test's handles dropped, as the engine holds none but the directory's.
    caf::scoped_actor self{*r.sys};
    for (auto& a : actors)
      self->monitor(a);
    const std::size_t monitored = actors.size();
    actors.clear();
    r.dir->shutdown();  // at once, while the actors work through those requests
    const auto passivations = r.dir->stats().passivations;
    const auto refused = r.send(rig::balance(1));
    std::size_t down = 0;
    bool waited_out = false;
    while (down < monitored && !waited_out)
      self->receive([&](const caf::down_msg&) { ++down; }, caf::after(20s) >> [&] { waited_out = true; });
    CHECK(down == monitored);
    // Every request queued at the shutdown is answered: ok if its actor got
    // to it first, unavailable if it died in the mailbox; none is lost.
    for (auto t : queued) {
      const auto code = r.out->wait(t).code;
      CHECK((code == errc::ok || code == errc::unavailable));
    }
    CHECK(r.out->wait(refused).code == errc::unavailable);  // sent after the shutdown: never reaches an actor
    // A passivate request handled after the shutdown removed nothing and
    // counted nothing (a second decrement would wrap `active` around).
    CHECK(r.dir->stats().passivations == passivations);
    CHECK(r.dir->active() == 0);
    CHECK(r.dir->slot_count() == 0);
  }
}
