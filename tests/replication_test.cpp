// Issue 17, the state machine under a replicated log: the engine's writer
// hands each group-commit batch to the log as a command (ledger/command.hpp)
// before applying it, and another ledger that applies those commands in
// order holds the same journal, byte for byte. A real engine (CAF member
// actors, LMDB, TCP) on the example retail program runs every posting
// operation; the follower is a second real ledger in its own directory.
#include "engine_rig.hpp"
#include "same_journal.hpp"

#include "ledger/command.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

using namespace loyalty;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z

std::string retail_program() {
  std::ifstream in(LOYALTY_SOURCE_DIR "/config/examples/retail.toml");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The commands the engine's writer handed to its log, in order.
struct command_log {
  std::mutex mtx;
  std::vector<std::string> commands;
  std::vector<std::string> take() {
    std::lock_guard<std::mutex> g(mtx);
    return std::move(commands);
  }
};

} // namespace

TEST_CASE("a ledger applying the engine's commands holds its journal byte for byte, through every posting operation "
          "and concurrent batches",
          "[replication]") {
  auto log = std::make_shared<command_log>();
  test::engine_rig g("replication", retail_program(), t0, [log](io::engine_options& o) {
    o.settings.commit_window_us = 2000;  // batches of several ops
    o.settings.keys[1].scope_code = "acme";  // the rig's brand key, for a brand of this program
    o.replicate = [log](std::string_view c) {
      std::lock_guard<std::mutex> lk(log->mtx);
      log->commands.emplace_back(c);
      return static_cast<std::uint64_t>(log->commands.size());  // its log index
    };
  });
  auto& c = *g.c;
  REQUIRE(c.enroll(1, "acme").ok());
  REQUIRE(c.enroll(2, "globex").ok());
  REQUIRE(c.enroll(3, "acme").ok());
  REQUIRE(c.earn("e1", 1, "acme", 500'000, "EUR", 0).ok());
  REQUIRE(c.earn("e1", 1, "acme", 500'000, "EUR", 0).replayed);
  REQUIRE(c.earn("e2", 2, "globex", 200'000, "EUR", 0).ok());
  REQUIRE(c.redeem("r1", 1, 100).ok());
  CHECK(c.redeem("r-short", 3, 100).code == errc::insufficient_points);
  auto h1 = c.hold("h1", 1, 300);
  REQUIRE(h1.ok());
  REQUIRE(c.capture("c1", 1, h1.hold, 200).ok());
  auto h2 = c.hold("h2", 1, 50);
  REQUIRE(h2.ok());
  REQUIRE(c.release("rl2", 1, h2.hold).ok());
  REQUIRE(c.transfer("t1", 1, 3, 250).ok());
  REQUIRE(c.link_alias("a1", 1, "card-0001").ok());
  CHECK(c.link_alias("a2", 2, "card-0001").code == errc::alias_taken);
  REQUIRE(c.event("ev1", 1, "survey").ok());
  REQUIRE(c.redeem_reward("rw1", 1, "coffee").ok());
  REQUIRE(c.redeem_reward("rw2", 2, "voucher-10").ok());
  REQUIRE(c.reverse_redemption("rv2", 2, "rw2").ok());
  REQUIRE(c.refund("rf1", 1, "e1", 100'000).ok());
  REQUIRE(c.adjust("ad1", 3, -20, "goodwill correction", "acme").ok());
  REQUIRE(c.consent("cs1", 1, 3, 1, "pos").ok());
  REQUIRE(c.partner_earn("pe1", 1, "skyair", 400).ok());
  REQUIRE(c.partner_burn("pb1", 1, "skyair", 100).ok());
  // Two connections pipelining earns at once: batches of many ops from both.
  auto burst = [&](io::client& cl, const std::string& prefix) {
    constexpr int n = 300;
    for (int i = 0; i < n; ++i) {
      io::request r;
      r.op = io::opcode::earn;
      r.id = static_cast<std::uint64_t>(i + 1);
      r.txn = prefix + std::to_string(i);
      r.member = 1 + static_cast<std::uint64_t>(i % 3);
      r.brand = i % 2 != 0 ? "acme" : "globex";
      r.amount = 1000 + i;
      r.currency = "EUR";
      cl.send(std::move(r));
    }
    int ok = 0;
    for (int i = 0; i < n; ++i) {
      io::response r;
      std::string why;
      REQUIRE(cl.receive(r, why));
      ok += r.ok() ? 1 : 0;
    }
    CHECK(ok == n);
  };
  std::thread other([&] { burst(*g.admin, "b-admin-"); });
  burst(c, "b-c-");
  other.join();

  const auto commands = log->take();
  CHECK(commands.size() < 26 + 600);  // some batches held more than one op

  // The follower: its own directory, the same program.
  test::temp_dir dir("replication-follower");
  manual_clock clock(t0);
  ledger::options lo;
  lo.dir = (dir.path / "data").string();
  lo.map_bytes = 1ull << 30;
  lo.clock = &clock;
  const program prog = g.eng->prog();
  lo.tier_of = [prog](std::int64_t lifetime) { return prog.tier_for(lifetime); };
  std::string err;
  auto follower = ledger::ledger::open(lo, err);
  INFO(err);
  REQUIRE(follower);
  REQUIRE(follower->record_policy({prog.sha256, prog.text}, t0, err) == 1);
  for (std::size_t i = 0; i < commands.size(); ++i)
    REQUIRE(follower->apply_command(commands[i], i + 1, err));
  CHECK(follower->applied_log_index() == commands.size());
  CHECK(g.eng->ledger().applied_log_index() == commands.size());

  auto& leader = g.eng->ledger();
  REQUIRE(follower->last_seq() == leader.last_seq());
  test::same_journals(leader, *follower);
  CHECK(follower->journal_digest().seq == leader.journal_digest().seq);
  CHECK(follower->journal_digest().digest == leader.journal_digest().digest);
  CHECK(follower->find_alias("card-0001") == leader.find_alias("card-0001"));
  CHECK(follower->counters() == leader.counters());
  for (std::uint64_t m = 1; m <= 3; ++m) {
    auto a = follower->load_member(m);
    auto b = leader.load_member(m);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->balance() == b->balance());
    CHECK(a->lifetime() == b->lifetime());
  }
  auto v = follower->verify();
  std::string problems;
  for (const auto& p : v.problems)
    problems += p + "\n";
  INFO(problems);
  CHECK(v.ok);
  CHECK(v.journal_digest == leader.journal_digest().digest);
  g.check_verify();
}

TEST_CASE("a program version travels as a command: applied in log order it is the next version, with its text, "
          "on every ledger; the same text again is no new version; malformed ones are refused",
          "[replication]") {
  ledger::policy_change v1{key_sha256("program one"), "program one"};
  ledger::policy_change v2{key_sha256("program two"), "program two"};
  const auto c1 = ledger::encode_policy_command(v1, t0);
  const auto c2 = ledger::encode_policy_command(v2, t0 + 5);

  ledger::command decoded;
  std::string err;
  REQUIRE(ledger::decode_command(c2, decoded, err));
  REQUIRE(decoded.policy);
  CHECK(decoded.policy->text == "program two");
  CHECK(decoded.policy->sha256 == v2.sha256);
  CHECK(decoded.now_us == t0 + 5);
  CHECK(decoded.ops.empty());
  CHECK_FALSE(ledger::decode_command(std::string_view(c2).substr(0, c2.size() - 1), decoded, err));
  CHECK(err.find("text") != std::string::npos);
  CHECK_FALSE(ledger::decode_command(c2 + "x", decoded, err));
  CHECK_FALSE(ledger::decode_command(std::string_view(c2).substr(0, 20), decoded, err));

  // Two ledgers given the same log hold the same versions.
  std::vector<std::unique_ptr<test::temp_dir>> dirs;
  std::vector<std::unique_ptr<manual_clock>> clocks;
  std::vector<std::unique_ptr<ledger::ledger>> ledgers;
  for (int n = 0; n < 2; ++n) {
    dirs.push_back(std::make_unique<test::temp_dir>("replication-policy"));
    clocks.push_back(std::make_unique<manual_clock>(t0 + 1000 * n));  // their clocks differ: the log's time counts
    ledger::options lo;
    lo.dir = (dirs.back()->path / "data").string();
    lo.map_bytes = 1ull << 28;
    lo.clock = clocks.back().get();
    lo.tier_of = [](std::int64_t) { return 0u; };
    ledgers.push_back(ledger::ledger::open(lo, err));  // err holds a decoder's message: open starts afresh
    INFO(err);
    REQUIRE(ledgers.back());
    auto& led = *ledgers.back();
    REQUIRE(led.apply_command(c1, 1, err));
    REQUIRE(led.apply_command(c1, 2, err));  // the same text: still version 1
    REQUIRE(led.apply_command(c2, 3, err));
    CHECK(led.applied_log_index() == 3);
    const auto versions = led.policies();
    REQUIRE(versions.size() == 2);
    CHECK(versions[0].first == 1);
    CHECK(versions[1].first == 2);
    CHECK(versions[1].second.recorded_at_us == t0 + 5);
    CHECK(versions[1].second.first_seq == 1);
    CHECK(led.policy_text(1) == "program one");
    CHECK(led.policy_text(2) == "program two");
    CHECK_FALSE(led.policy_text(3));
    const auto rep = led.verify();
    CHECK(rep.ok);
  }
}
