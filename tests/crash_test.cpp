// The crash harness at suite size: kill -9 at random moments, and crashes
// injected inside the group commit before and after mdb_txn_commit
// (tests/crash_harness.hpp says what each cycle checks). The seed is
// printed; LOYALTY_CRASH_SEED=S reruns one.
#include "crash_harness.hpp"
#include "temp_dir.hpp"

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
