// A seam for crash tests: the writer calls a process-wide hook at the two
// points of every group commit where a crash matters, telling what the
// commit holds. Nothing in the engine sets it, so the loyaltyd an operator
// runs only pays a null check per commit; the test build loyaltyd-faults
// (tests/fault_injection.cpp) installs one that kills its own process at a
// chosen commit (docs/OPERATIONS.md, "Crash testing").
#pragma once

#include <cstdint>

namespace loyalty::ledger {

enum class commit_point : std::uint8_t {
  before_commit,  // every put of the transaction done, mdb_txn_commit not called yet
  after_commit,   // mdb_txn_commit returned; no answer of the batch sent yet
};

// What one write transaction of the writer holds.
struct commit_info {
  commit_point at = commit_point::before_commit;
  std::uint64_t entries = 0;             // journal entries it appends
  std::uint64_t checkpoint_records = 0;  // account records of a checkpoint it writes
  // The checkpoint generation those records belong to: its size, and how
  // many of its records earlier commits already put in the table. Both 0
  // for the checkpoint of a clean close (closing) and when it writes none.
  std::uint64_t generation_records = 0;
  std::uint64_t generation_written = 0;
  bool closing = false;  // the last checkpoint a clean close writes
};

// Called on the writer's thread (the closing checkpoint: on the thread that
// destroys the ledger), never concurrently with itself. It must not call
// into the ledger.
using commit_hook = void (*)(const commit_info&);

// Installs `hook` for every ledger of the process (nullptr removes it). For
// tests only; set it before the ledger opens.
void set_commit_hook(commit_hook hook) noexcept;

} // namespace loyalty::ledger
