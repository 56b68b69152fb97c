// The crash harness at suite size: kill -9 at random moments, and crashes
// injected inside the group commit before and after mdb_txn_commit and
// inside a checkpoint's commit, under a load of every posting operation with
// a subscriber and hot backups running (tests/crash_harness.hpp says what
// each cycle checks). The seed is printed; LOYALTY_CRASH_SEED=S reruns one.
#include "crash_harness.hpp"
#include "engine_process.hpp"
#include "temp_dir.hpp"

#include "io/client/client.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>

using namespace loyalty::test;

namespace {

std::uint64_t seed_for_run() {
  if (const char* s = std::getenv("LOYALTY_CRASH_SEED"))
    return std::strtoull(s, nullptr, 10);
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) % 1000000;
}

// Runs `cycles` cycles in a directory of its own (seed printed, summary
// after) and requires every one of them to pass.
crash_result run_passing(crash_mode mode, int cycles, const std::function<void(crash_config&)>& tweak = {}) {
  temp_dir dir("crash");
  crash_config cfg;
  cfg.loyaltyd = LOYALTYD_BIN;
  cfg.loyaltyd_faults = LOYALTYD_FAULTS_BIN;
  cfg.program = LOYALTY_SOURCE_DIR "/config/examples/retail.toml";
  cfg.work = dir.path;
  cfg.seed = seed_for_run();
  cfg.cycles = cycles;
  cfg.mode = mode;
  cfg.progress = &std::cout;
  if (tweak)
    tweak(cfg);
  std::cout << "crash harness: mode " << to_string(cfg.mode) << ", seed " << cfg.seed
            << " (rerun: LOYALTY_CRASH_SEED=" << cfg.seed << ")" << std::endl;
  auto r = run_crash_harness(cfg);
  print_summary(std::cout, r);
  INFO(r.failure);
  REQUIRE(r.ok);
  REQUIRE(r.cycles_done == cycles);
  return r;
}

// A loyaltyd (or loyaltyd-faults) of the test's own on retail.toml, with
// LOYALTY_FAULT=`fault` in its environment.
engine_process_options retail_engine(const temp_dir& dir, const char* binary, const std::string& fault) {
  engine_process_options o;
  o.binary = binary;
  o.dir = dir.path;
  o.program = LOYALTY_SOURCE_DIR "/config/examples/retail.toml";
  o.env = {"LOYALTY_FAULT=" + fault};
  return o;
}

std::unique_ptr<loyalty::io::client> connect(const engine_process& eng) {
  std::string error;
  auto c = loyalty::io::client::connect("127.0.0.1", eng.port(), error);
  INFO(error);
  REQUIRE(c);
  REQUIRE(c->hello("crash-test").ok());
  return c;
}

// Every operation that posts, as the harness names them.
constexpr const char* posting_ops[] = {
  "enroll",   "earn",       "redeem",  "redeem_reward", "hold",         "capture",      "release", "refund",
  "reverse_redemption", "adjust", "transfer", "link_alias", "consent", "event", "partner_earn", "partner_burn",
  "expire",
};

} // namespace

TEST_CASE("kill -9 at random moments under every posting operation, during checkpoints, backups and a "
          "subscription, loses no acknowledged transaction and posts none twice",
          "[crash]") {
  const auto r = run_passing(crash_mode::kill9, 3);
  CHECK(r.acked > 0);
  for (const char* op : posting_ops) {
    INFO(op);
    CHECK(r.posted_by_op.count(op) == 1);  // sent, and some of it in the ledger
  }
  CHECK(r.events > 0);
  CHECK(r.events_after_resume > 0);
  CHECK(r.backups > 0);
  // Three cycles aim their kills (crash_harness.cpp, kill_aims): one at a
  // moment the engine said a checkpoint was in progress, one in the middle
  // of writing a backup.
  CHECK(r.kills_in_checkpoint >= 1);
  CHECK(r.backups_interrupted >= 1);
}

TEST_CASE("a crash inside the group commit before mdb_txn_commit loses nothing acknowledged", "[crash]") {
  const auto r = run_passing(crash_mode::before_commit, 2);
  CHECK(r.acked > 0);
}

TEST_CASE("a crash right after mdb_txn_commit before the answers go out keeps the unanswered postings once",
          "[crash]") {
  // The commit that crashed was durable: its entries were unanswered, and
  // their retries found them committed (replays, not new postings). The
  // crash lands on the N-th commit with journal entries, and on a busy
  // machine that can be one of the engine's own entries only (hold expiries,
  // the sweep's), which no client retries: up to three more runs, each
  // passing every other check, until a crash hits a client's commit.
  auto r = run_passing(crash_mode::after_commit, 2);
  for (int more = 0; r.retried_replayed == 0 && more < 3; ++more)
    r = run_passing(crash_mode::after_commit, 2);
  CHECK(r.retried_replayed > 0);
}

TEST_CASE("a crash inside the commit of a checkpoint chunk loses nothing acknowledged", "[crash]") {
  const auto r = run_passing(crash_mode::in_checkpoint, 2);
  CHECK(r.checkpoint_crashes == 2);
}

TEST_CASE("a process that dies inside a checkpoint's commit halfway through its generation restarts with every "
          "balance and verifies",
          "[crash]") {
  // No deadline within reach and chunks of 2: a generation (16 or more
  // changed accounts) is written 2 records a commit, so the second commit
  // with checkpoint records is the generation's second chunk: records in the
  // table before it, records after it, and the commit dies between.
  const auto r = run_passing(crash_mode::in_checkpoint, 1, [](crash_config& cfg) {
    cfg.fault_nth = 2;
    cfg.checkpoint_interval_ms = 3'600'000;
    cfg.checkpoint_accounts_max = 16;
    cfg.checkpoint_chunk_accounts = 2;
  });
  CHECK(r.checkpoint_crashes == 1);
  CHECK(r.checkpoint_crashes_mid_generation == 1);
}

TEST_CASE("a crash inside a checkpoint-only commit, written while no operations come, loses nothing", "[crash]") {
  // Each enrollment changes one account: the 16th commit freezes them as a
  // generation (checkpoint_accounts_max 16), written 2 records a commit
  // once sorted, with the 17th enrollment's commit at the earliest. No
  // operation comes after that one, so the second commit with checkpoint
  // records is one of the writer's idle commits of checkpoint records
  // alone: the one this engine dies in.
  temp_dir dir("idle-checkpoint");
  auto o = retail_engine(dir, LOYALTYD_FAULTS_BIN, "crash_in_checkpoint:2");
  o.extra_settings = "checkpoint_interval_ms = 3600000\ncheckpoint_accounts_max = 16\ncheckpoint_chunk_accounts = 2\n";
  constexpr std::uint64_t members = 17;
  {
    engine_process eng(o);
    auto c = connect(eng);
    for (std::uint64_t m = 1; m <= members; ++m)
      REQUIRE(c->enroll(m, "acme").ok());
    const int status = eng.wait_exit(std::chrono::seconds(20));
    REQUIRE(status != -1);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    const auto f = last_fault(eng.stderr_file());
    REQUIRE(f.found);
    CHECK(f.before_commit);
    CHECK(f.entries == 0);
    CHECK(f.records > 0);
    CHECK(f.generation >= 16);
    CHECK(f.written + f.records < f.generation);  // halfway through it
  }
  o.binary = LOYALTYD_BIN;
  o.env.clear();
  engine_process eng(o);
  auto c = connect(eng);
  for (std::uint64_t m = 1; m <= members; ++m)
    CHECK(c->enroll(m, "acme").code == loyalty::errc::member_exists);
  const auto v = c->verify();
  CHECK(v.verify.valid);
  CHECK(v.verify.members == members);
  CHECK(v.verify.entries == members);
}

TEST_CASE("the loyaltyd an operator runs ignores LOYALTY_FAULT: a commit it was told to crash in answers instead",
          "[crash]") {
  temp_dir dir("nofault");
  auto o = retail_engine(dir, LOYALTYD_BIN, "crash_before_commit:1");
  engine_process eng(o);
  auto c = connect(eng);
  // Its first commit: the enrollment. A binary that reads LOYALTY_FAULT dies
  // here and the call throws (the server closed the connection).
  loyalty::io::response enrolled, earned;
  REQUIRE_NOTHROW(enrolled = c->enroll(7, "acme"));
  CHECK(enrolled.ok());
  REQUIRE_NOTHROW(earned = c->earn("nofault-1", 7, "acme", 1000, "EUR", 1'772'452'800'000'000ull));
  CHECK(earned.ok());
  CHECK(earned.points == 10);
  CHECK(eng.wait_exit(std::chrono::milliseconds(0)) == -1);  // still running
  c.reset();
  CHECK(eng.stop() == 0);  // a clean stop, exit status 0

  // The same setting does kill loyaltyd-faults, the harness's engine, at
  // that commit: the setting is one that would have fired.
  o.binary = LOYALTYD_FAULTS_BIN;
  o.data_dir = dir.path / "data-faults";
  engine_process faulty(o);
  auto f = connect(faulty);
  CHECK_THROWS(f->enroll(7, "acme"));
  const int status = faulty.wait_exit(std::chrono::seconds(20));
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
}

TEST_CASE("a clean stop of loyaltyd with many active members, some holding timers, exits 0 and loses nothing",
          "[crash][stop]") {
  // loyaltyd stops as a process that exits (engine::stop_for_exit): idle
  // member actors are left inert instead of torn down one by one, the
  // ledger is closed with its checkpoint, and the process ends at once.
  temp_dir dir("stop");
  auto o = retail_engine(dir, LOYALTYD_BIN, "");
  constexpr std::uint64_t members = 2000;
  std::vector<std::int64_t> expect(members + 1, 0);
  {
    engine_process eng(o);
    auto c = connect(eng);
    for (std::uint64_t m = 1; m <= members; ++m) {
      REQUIRE(c->enroll(m, "acme").ok());
      auto e = c->earn("stop-" + std::to_string(m), m, "acme", 1000 + static_cast<std::int64_t>(m), "EUR",
                       1'772'452'800'000'000ull);
      REQUIRE(e.ok());
      expect[m] = e.points;
    }
    for (std::uint64_t m = 1; m <= members; m += 10)  // an open hold expiring within the hour: a timer each
      REQUIRE(c->hold("stop-hold-" + std::to_string(m), m, 5, "", 600).ok());
    c.reset();
    CHECK(eng.stop() == 0);  // a clean stop, exit status 0
    std::ifstream err(eng.stderr_file());
    std::string all((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
    CHECK(all.find("closing checkpoint") != std::string::npos);
    CHECK(all.find("stopped") != std::string::npos);
  }
  engine_process eng(o);
  auto c = connect(eng);
  for (std::uint64_t m = 1; m <= members; m += 97) {
    auto b = c->balance(m);
    REQUIRE(b.ok());
    CHECK(b.balance == expect[m]);
  }
  const auto v = c->verify();
  CHECK(v.verify.valid);
  CHECK(v.verify.members == members);
}
