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
#include <functional>
#include <string>
#include <string_view>

namespace loyalty::cluster {

class state_machine {
public:
  // How an entry reaches the ledger: `wait` applies it before apply returns
  // (a fixture, one thread); `queue` hands it to the writer's queue and
  // returns (a node, whose writer may be waiting on this same log for its
  // own batch: it applies the queue first, ledger::enqueue_command).
  enum class mode { wait, queue };
  explicit state_machine(ledger::ledger& led, mode m = mode::wait);
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
  // True for the index of this node's own batch in flight: its writer
  // applies that one itself, with the ops it answers, once the log says it
  // is committed. Called on the Raft loop thread.
  void set_own(std::function<bool(std::uint64_t index)> own) { own_ = std::move(own); }

  // A log entry's payload: the command's length (u64, little-endian), the
  // command, zeros to a multiple of 8 bytes (libuv's raft log stores
  // payloads in 8-byte words: an entry of another length reads back
  // shifted after a restart). Allocated with raft_malloc, as raft_apply
  // takes it; base null if that fails.
  [[nodiscard]] static raft_buffer entry_of(std::string_view command);
  // The command inside an entry; false with `error` set for a payload that
  // is not one.
  [[nodiscard]] static bool unwrap(const raft_buffer& buf, std::string_view& command, std::string& error);

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
  mode mode_;
  std::function<bool(std::uint64_t)> own_;
  raft_fsm fsm_{};
  std::uint64_t applied_ = 0;
  std::uint64_t refused_ = 0;
};

} // namespace loyalty::cluster
