// The ledger as the state machine of a Raft log (libraft's raft_fsm):
// each committed RAFT_COMMAND entry is one group-commit batch encoded by a
// leader's writer (ledger/command.hpp), applied with ledger::apply_command
// in log order. Applying the same entries to equal ledgers gives equal
// journals (docs/ARCHITECTURE.md, "Replication"). The only target that
// sees <raft.h>, with the cluster node built on it.
#pragma once

#include "ledger/ledger.hpp"

// raft.h declares C functions without extern "C" of its own.
extern "C" {
#include <raft.h>
}

#include <cstdint>
#include <string>

namespace loyalty::cluster {

class state_machine {
public:
  explicit state_machine(ledger::ledger& led);
  state_machine(const state_machine&) = delete;
  state_machine& operator=(const state_machine&) = delete;

  // For raft_init / raft_fixture_grow; lives as long as this object.
  [[nodiscard]] raft_fsm* fsm() noexcept { return &fsm_; }
  // The Raft server this state machine belongs to, once initialized: an
  // entry's log index is its last_applied + 1 when apply is called (libraft
  // applies in order and moves last_applied after apply returns), and the
  // ledger records it, so that entries it already holds are skipped when
  // the log is replayed at start.
  void attach(raft* r) noexcept { raft_ = r; }

  // Entries applied, and entries refused as not a command (the same bytes
  // are refused on every node, so the ledgers stay equal; each is logged).
  [[nodiscard]] std::uint64_t applied() const noexcept { return applied_; }
  [[nodiscard]] std::uint64_t refused() const noexcept { return refused_; }

private:
  static int apply(raft_fsm* fsm, const raft_buffer* buf, void** result);
  // Snapshots are not offered yet: a cluster runs with a snapshot threshold
  // its log never reaches (the next step installs LMDB snapshots).
  static int snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n);
  static int restore(raft_fsm* fsm, raft_buffer* buf);

  ledger::ledger& led_;
  raft* raft_ = nullptr;
  raft_fsm fsm_{};
  std::uint64_t applied_ = 0;
  std::uint64_t refused_ = 0;
};

} // namespace loyalty::cluster
