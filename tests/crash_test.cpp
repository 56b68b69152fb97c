// The crash harness at suite size: kill -9 at random moments, and crashes
// injected inside the group commit before and after mdb_txn_commit
// (tests/crash_harness.hpp says what each cycle checks). The seed is
// printed; LOYALTY_CRASH_SEED=S reruns one.
#include "crash_harness.hpp"
#include "engine_process.hpp"
#include "temp_dir.hpp"

#include "io/client/client.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>

using namespace loyalty::test;

namespace {

std::uint64_t seed_for_run() {
  if (const char* s = std::getenv("LOYALTY_CRASH_SEED"))
    return std::strtoull(s, nullptr, 10);
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) % 1000000;
}

crash_result run(crash_mode mode, int cycles) {
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
  std::cout << "crash harness: mode " << to_string(mode) << ", seed " << cfg.seed
            << " (rerun: LOYALTY_CRASH_SEED=" << cfg.seed << ")" << std::endl;
  return run_crash_harness(cfg);
}

} // namespace

TEST_CASE("kill -9 at random moments under load loses no acknowledged transaction and posts none twice",
          "[crash]") {
  const auto r = run(crash_mode::kill9, 3);
  INFO(r.failure);
  REQUIRE(r.ok);
  CHECK(r.cycles_done == 3);
  CHECK(r.acked > 0);
  CHECK(r.posted > 0);
}

TEST_CASE("a crash inside the group commit before mdb_txn_commit loses nothing acknowledged", "[crash]") {
  const auto r = run(crash_mode::before_commit, 2);
  INFO(r.failure);
  REQUIRE(r.ok);
  CHECK(r.cycles_done == 2);
}

TEST_CASE("a crash right after mdb_txn_commit before the answers go out keeps the unanswered postings once",
          "[crash]") {
  const auto r = run(crash_mode::after_commit, 2);
  INFO(r.failure);
  REQUIRE(r.ok);
  CHECK(r.cycles_done == 2);
  // The commit that crashed was durable: its entries were unanswered, and
  // their retries found them committed (replays, not new postings).
  CHECK(r.retried_replayed > 0);
}

TEST_CASE("the loyaltyd an operator runs ignores LOYALTY_FAULT: a commit it was told to crash in answers instead",
          "[crash]") {
  temp_dir dir("nofault");
  engine_process_options o;
  o.binary = LOYALTYD_BIN;
  o.dir = dir.path;
  o.program = LOYALTY_SOURCE_DIR "/config/examples/retail.toml";
  o.env = {"LOYALTY_FAULT=crash_before_commit:1"};
  engine_process eng(o);
  std::string error;
  auto c = loyalty::io::client::connect("127.0.0.1", eng.port(), error);
  INFO(error);
  REQUIRE(c);
  REQUIRE(c->hello("nofault").ok());
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
  auto f = loyalty::io::client::connect("127.0.0.1", faulty.port(), error);
  REQUIRE(f);
  REQUIRE(f->hello("faults").ok());
  CHECK_THROWS(f->enroll(7, "acme"));
  const int status = faulty.wait_exit(std::chrono::seconds(20));
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
}
