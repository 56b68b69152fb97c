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

#include <atomic>
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
  // `scratch_dir`: where snapshots are copied out of and into the ledger
  // (created when needed; what a killed process left there is removed).
  state_machine(ledger::ledger& led, std::string scratch_dir, mode m = mode::wait);
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
  // Snapshots taken (and stored by libraft) and installed (received from a
  // leader, or loaded at start with the ledger behind them).
  [[nodiscard]] std::uint64_t snapshots_taken() const noexcept { return taken_.load(); }
  [[nodiscard]] std::uint64_t snapshots_installed() const noexcept { return installed_.load(); }

  // A snapshot's payload: magic, the log index the ledger copy holds every
  // entry up to, the copy's length (u64 little-endian each), the copy (a
  // data.mdb, ledger::backup), zeros to a multiple of 8 bytes.
  static constexpr char snapshot_magic[8] = {'L', 'L', 'S', 'N', 'A', 'P', '0', '1'};
  static constexpr std::size_t snapshot_header_bytes = 24;

  // A snapshot being taken stops waiting for the ledger (the node stops).
  void stop() noexcept { stopping_.store(true); }

private:
  static int apply(raft_fsm* fsm, const raft_buffer* buf, void** result);
  // Snapshots (raft_fsm version 3, docs/ARCHITECTURE.md "Snapshots and log
  // compaction"): snapshot() notes the index on the loop thread;
  // snapshot_async(), on libuv's thread pool, waits until the ledger holds
  // it and copies the ledger (a copy at a later index is as good: the
  // ledger skips entries it holds); finalize frees the copy once libraft
  // has stored it.
  static int snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n);
  static int snapshot_async(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n);
  static int snapshot_finalize(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n);
  // The copy of the ledger for the snapshot at taking_, once the ledger
  // holds it: one buffer in a raft_malloc'd array.
  int copy_out(raft_buffer* bufs[], unsigned* n);
  // Installs a snapshot into the ledger (through its command queue in
  // `queue` mode), unless the ledger holds its index already. Takes `buf`.
  static int restore(raft_fsm* fsm, raft_buffer* buf);

  ledger::ledger& led_;
  std::string scratch_;
  raft* raft_ = nullptr;
  std::uint64_t taking_ = 0;  // the index of the snapshot being taken
  std::uint64_t installs_ = 0;  // loop thread: names install directories
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> taken_{0};
  std::atomic<std::uint64_t> installed_{0};
  mode mode_;
  std::function<bool(std::uint64_t)> own_;
  raft_fsm fsm_{};
  std::uint64_t applied_ = 0;
  std::uint64_t refused_ = 0;
};

} // namespace loyalty::cluster
