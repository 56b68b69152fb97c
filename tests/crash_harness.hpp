// The crash harness (issues 6 and 16): a real loyaltyd process under a load
// of every posting operation over real TCP, crashed at a random moment,
// restarted on the same data directory and checked against everything its
// clients were told.
//
// The engine runs with small checkpoint settings (a generation every few
// tens of milliseconds, written a couple of account records a commit), so
// that crashes land inside checkpoints. Each cycle: start the engine
// (loyaltyd, or loyaltyd-faults armed with LOYALTY_FAULT for the injected
// modes); drive enroll, earn (with items, some by alias, some dated years
// back so their lots expire), redeem, redeem_reward, hold, capture,
// release, refund, reverse_redemption, adjust, transfer, link_alias,
// consent, event, partner_earn, partner_burn and expire of one member from
// several pipelining connections, recording every answer; meanwhile a
// subscriber follows the event stream and an admin connection makes hot
// backups back to back. Then crash it: SIGKILL from outside, or the engine
// kills itself inside a group commit (after its puts and before
// mdb_txn_commit, after the commit before any answer goes out, or before
// the commit of the N-th commit that writes checkpoint records, checkpoint-
// only commits included). Restart the real loyaltyd and check:
//   - an answer with an id the connection never sent, or sent and already
//     had answered, is a failure;
//   - every acknowledged posting is in the ledger once: its retry is a replay
//     with the same seq (and points), and the journal holds its txn id at
//     that seq, for that member, once;
//   - every acknowledged refusal posted nothing, and only documented
//     refusals that this load can provoke occur;
//   - every unanswered request can be retried: the first retry posts it or
//     finds it posted, a second retry is a replay of the first;
//   - every txn id in the journal is one the clients know as posted, every
//     member was enrolled once, each member's balance is the sum of its
//     journal entries and its held points those of its open holds, verify
//     passes and counts exactly the posted txn ids;
//   - the subscriber, resuming from its last seq + 1 on the restarted
//     engine, has seen every committed entry exactly once, each as the
//     journal has it;
//   - a backup the crash interrupted left no data.mdb, or one that
//     `loyaltyd --verify` passes; so does the last backup that completed.
// The suite runs a few cycles (tests/crash_test.cpp); loyalty-crashtest
// runs as many as asked (docs/OPERATIONS.md, "Crash testing").
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <string>

namespace loyalty::test {

enum class crash_mode { kill9, before_commit, after_commit, in_checkpoint, mixed };

// "kill9", "before_commit", "after_commit", "in_checkpoint", "mixed"; false
// for anything else.
bool parse_crash_mode(const std::string& text, crash_mode& out);
const char* to_string(crash_mode m);

struct crash_config {
  std::string loyaltyd;             // the engine binary (kill -9 cycles, restarts, verifying backups)
  std::string loyaltyd_faults;      // the engine with the fault injector (injected crashes)
  std::string program;              // its program file: config/examples/retail.toml or one with its codes
  std::filesystem::path work;       // an empty directory of the caller's
  std::uint64_t seed = 1;           // cycle i uses seed + i
  int cycles = 3;
  crash_mode mode = crash_mode::mixed;  // mixed: kill9, before_commit, after_commit, in_checkpoint in turn
  int members = 40;
  int connections = 3;
  int window = 32;                  // requests in flight per connection
  // The injected crash fires at the N-th commit of its kind: this N, or
  // (0) one drawn per cycle from 1 .. 40 (1 .. 12 for in_checkpoint).
  std::uint64_t fault_nth = 0;
  // Engine settings ([engine], docs/OPERATIONS.md): small, so that a
  // checkpoint is in progress most of the time.
  std::uint32_t checkpoint_interval_ms = 50;
  std::uint32_t checkpoint_accounts_max = 16;
  std::uint32_t checkpoint_chunk_accounts = 2;
  bool backups = true;              // an admin connection makes backups back to back
  bool subscribe = true;            // a subscriber follows the event stream
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
  std::uint64_t entries = 0;        // journal entries at the end
  std::map<std::string, std::uint64_t> sent_by_op;    // operation name -> requests sent under load
  std::map<std::string, std::uint64_t> posted_by_op;  // operation name -> of them, in the ledger
  // Where the crashes landed.
  std::uint64_t kills_in_checkpoint = 0;   // kill -9 right after the engine said a checkpoint was in progress
  std::uint64_t checkpoints = 0;           // checkpoints the killed engines had completed (their stats)
  std::uint64_t checkpoint_crashes = 0;    // injected crashes in a commit that wrote checkpoint records
  std::uint64_t checkpoint_crashes_mid_generation = 0;  // of them, with records of the generation on both sides
  std::uint64_t backups = 0;               // backups completed under load
  std::uint64_t backups_interrupted = 0;   // crashes during a backup (its directory made, no answer)
  std::uint64_t backups_left_data = 0;     // of them, with a data.mdb left behind (verified)
  std::uint64_t events = 0;                // journal entries whose stream events were checked
  std::uint64_t events_after_resume = 0;   // events read after resuming on the restarted engine
};

crash_result run_crash_harness(const crash_config& cfg);

// Where loyaltyd-faults crashed, as the last line it wrote to its stderr
// says (tests/fault_injection.cpp): the commit's journal entries and
// checkpoint records, its generation's size and how much of it was in the
// table before. Reads the file from byte `from` on (engines of one
// directory append to one file); found is false if it has no such line.
struct fault_report {
  bool found = false;
  bool before_commit = false;
  std::uint64_t entries = 0, records = 0, generation = 0, written = 0;
};
fault_report last_fault(const std::filesystem::path& stderr_file, std::uint64_t from = 0);

// What the cycles did, where the crashes landed, and per operation how many
// were sent and posted: a few lines for a person.
void print_summary(std::ostream& out, const crash_result& r);

} // namespace loyalty::test
