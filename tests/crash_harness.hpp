// The crash harness (issue 6): a real loyaltyd process under a mixed load
// over real TCP, crashed at a random moment, restarted on the same data
// directory and checked against everything its clients were told.
//
// Each cycle: start the engine (armed with LOYALTY_FAULT for the injected
// modes), drive earns, redeems and transfers from several pipelining
// connections, recording every answer; crash it (SIGKILL from outside, or
// the engine kills itself inside a group commit: after its puts and before
// mdb_txn_commit, or after the commit before any answer goes out); restart
// it and check:
//   - every acknowledged posting is in the ledger with the same result: its
//     retry is answered as a replay with the same seq (and points);
//   - every acknowledged refusal posted nothing: explain finds no entry;
//   - every unanswered request can be retried: the first retry posts it or
//     finds it posted, a second retry is a replay of the first;
//   - nothing is in the ledger twice: each member's balance equals the sum
//     of the effects of its posted transactions, and verify counts exactly
//     as many txn ids as were posted;
//   - verify passes.
// The suite runs a few cycles (tests/crash_test.cpp); loyalty-crashtest
// runs as many as asked (docs/OPERATIONS.md, "Crash testing").
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>

namespace loyalty::test {

enum class crash_mode { kill9, before_commit, after_commit, mixed };

// "kill9", "before_commit", "after_commit", "mixed"; false for anything else.
bool parse_crash_mode(const std::string& text, crash_mode& out);
const char* to_string(crash_mode m);

struct crash_config {
  std::string loyaltyd;             // the engine binary (kill -9 cycles, restarts)
  std::string loyaltyd_faults;      // the engine with the fault injector (injected crashes)
  std::string program;              // its program file
  std::filesystem::path work;       // an empty directory of the caller's
  std::uint64_t seed = 1;           // cycle i uses seed + i
  int cycles = 3;
  crash_mode mode = crash_mode::mixed;  // mixed: kill9, before_commit, after_commit in turn
  int members = 40;
  int connections = 3;
  int window = 32;                  // requests in flight per connection
  std::ostream* progress = nullptr; // one line per cycle
};

struct crash_result {
  bool ok = true;
  std::string failure;              // the first check that failed, with its cycle and seed
  int cycles_done = 0;
  std::uint64_t sent = 0;           // requests sent under load
  std::uint64_t acked = 0;          // of them, answered before the crash
  std::uint64_t retried_posted = 0; // unanswered ones a retry found or made posted
  std::uint64_t retried_replayed = 0;  // of them, found committed: the crash came after their commit
  std::uint64_t posted = 0;         // txn ids in the ledger at the end
};

crash_result run_crash_harness(const crash_config& cfg);

} // namespace loyalty::test
