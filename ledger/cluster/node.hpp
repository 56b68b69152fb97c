// One node of a replicated ledger: a Raft server (libraft, its log and
// TCP transport on libuv) whose state machine is this node's ledger
// (state_machine.hpp), on a thread of its own. The ledger's writer calls
// propose() with each batch's command (ledger::options::propose): on the
// leader it is appended to the log, and once a majority holds it durable
// the writer gets it back, in log order, to apply (ledger::own_committed);
// anywhere else, or if leadership is lost first, ledger::own_failed.
// Followers apply committed entries in log order through the ledger's
// command queue.
// docs/ARCHITECTURE.md, "Replication".
#pragma once

#include "config/errc.hpp"
#include "ledger/cluster/state_machine.hpp"
#include "ledger/ledger.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty::cluster {

struct peer {
  std::uint64_t id = 0;  // 1.., unique in the cluster
  std::string address;   // host:port of its Raft transport
  std::string client;    // host:port its clients connect to ("" if it serves none)
};

struct node_options {
  std::uint64_t id = 0;       // this node: one of `peers`
  // The voters of the cluster's first configuration, this node included
  // (its own entry gives its addresses). With `join`, only this node's
  // entry is read: the node is new to a running cluster, starts with an
  // empty configuration and waits for a leader to add it (node::add on
  // the leader); bootstrapping it would write a first log entry that is
  // not the cluster's.
  std::vector<peer> peers;
  bool join = false;
  std::string dir;            // the Raft log and metadata (created if missing)
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_ms = 100;
  // Log compaction: a snapshot of the ledger every `snapshot_entries` log
  // entries, keeping the last `snapshot_trailing` entries (a follower that
  // far behind catches up from the log, further from the snapshot).
  unsigned snapshot_entries = 65536;
  unsigned snapshot_trailing = 8192;
  // How long the leader waits for a follower to answer a snapshot it sent
  // before it sends it again. libraft's default is 30 s, and a follower that
  // is taking a snapshot of its own when one arrives drops it unanswered (it
  // often is, right after its start): 0 = worked out from the election
  // timeout and the size of the ledger (install_snapshot_timeout_auto).
  unsigned install_snapshot_timeout_ms = 0;
};

// The wait above when it is 0: four election timeouts, at least 2 s, plus
// 1 s for every 32 MiB of a ledger of `ledger_bytes` (what a snapshot of it
// holds at most: sent, written and installed at 32 MiB/s or more).
[[nodiscard]] unsigned install_snapshot_timeout_auto(unsigned election_timeout_ms, std::uint64_t ledger_bytes);

// Where a node copies snapshots out of and into its ledger: beside its Raft
// directory, never in it (libraft owns every name there).
[[nodiscard]] std::string scratch_dir_of(const std::string& raft_dir);

// A server of the cluster's configuration, as a node sees it.
struct server_status {
  std::uint64_t id = 0;
  std::string raft;    // its Raft transport, host:port
  std::string client;  // the host:port its clients connect to ("" unknown)
  std::string role;    // "voter", "standby" (gets the log, no vote) or "spare"
  // The leader's view (0 on other nodes): the highest log index the server
  // is known to hold, and how far it is behind the leader's last entry.
  std::uint64_t match_index = 0;
  std::uint64_t lag = 0;
};

// A node's view of the cluster, any thread (refreshed every heartbeat and
// on every change of role).
struct node_status {
  std::uint64_t id = 0;  // this node
  bool leader = false;
  // Leads, and every entry of earlier terms is applied (a barrier of this
  // term went through the log): what the ledger holds is all the log
  // committed, so the engine may open for requests once its own writer
  // applied its queue (docs/ARCHITECTURE.md, "the engine on a cluster").
  bool leader_ready = false;
  std::string role;              // "leader", "follower", "candidate", "unavailable" (stopped)
  std::uint64_t leader_id = 0;   // 0: none known
  std::string leader_client;     // the leader's client address ("" unknown)
  std::uint64_t term = 0;
  std::uint64_t commit_index = 0;   // the highest log entry known committed
  std::uint64_t applied_index = 0;  // the highest handed to the state machine (the ledger may still be applying it)
  std::uint64_t last_index = 0;     // the last entry of this node's log
  std::uint64_t snapshot_index = 0; // the last snapshot's index (0: none)
  std::uint64_t elections = 0;      // elections this node started since its start
  std::uint64_t snapshots_taken = 0;
  std::uint64_t snapshots_installed = 0;
  std::vector<server_status> servers;  // the current configuration
};

// The outcome of a membership change (node::add, node::remove).
struct change_result {
  errc code = errc::ok;  // ok; not_leader; invalid_argument (unknown / known id, address taken, the leader itself); busy (another change in progress); timed_out; unavailable
  std::string message;   // a sentence for the operator when not ok
};

class node {
public:
  // Starts the Raft server on its own thread, bootstrapping the log with
  // `peers` on its first start (a directory that holds a log keeps its own
  // configuration). Null with `error` set on failure. `led` must outlive
  // the node; its writer calls propose(). Ignores SIGPIPE in the process
  // (the transport's writes to a peer that went away).
  [[nodiscard]] static std::unique_ptr<node> start(const node_options& opts, ledger::ledger& led, std::string& error);
  ~node();  // stop(), then frees the Raft server

  // Stops the Raft server and its thread: batches proposed and not yet
  // committed are answered own_failed, later proposals are refused, and
  // append() returns 0. Stop the node before its ledger (whose writer may
  // be waiting for its proposals), destroy it after. Idempotent.
  void stop();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  // The ledger's writer (ledger::options::propose): appends the batch's
  // `command` to the log if this node leads, without waiting. True: the
  // ledger will get exactly one of own_committed(id, index) and
  // own_failed(id). False: not taken (stopping, out of memory).
  [[nodiscard]] bool propose(std::string_view command, std::uint64_t id);
  // Any other thread: appends `command` (a program version, command.hpp)
  // and waits until it is committed (its index; the ledger has it queued
  // by then, as any entry of the log) or cannot be (0: not the leader,
  // leadership lost, shut down).
  [[nodiscard]] std::uint64_t append(std::string_view command);

  [[nodiscard]] node_status status() const;
  // The part of status() a session asks about every request, without a
  // lock or a copy: whether this node is the ready leader, of which term,
  // and who leads (0: none known).
  struct leadership {
    bool ready = false;
    std::uint64_t term = 0;
    std::uint64_t leader_id = 0;
  };
  [[nodiscard]] leadership lead() const noexcept;
  // A server's client address as the configuration gives it ("" unknown).
  [[nodiscard]] std::string client_of(std::uint64_t id) const;

  // Membership, on the leader (any thread but the loop's; blocks until the
  // change is committed, fails, or `patience` passes). add: the server
  // joins as a spare, receives the log (or the leader's snapshot) and is
  // made a voter once it has caught up; its process must be running with
  // `join` set. remove: the server leaves the configuration and receives
  // nothing more; the leader cannot remove itself (stop it first: another
  // node is elected, then remove it there).
  [[nodiscard]] change_result add(std::uint64_t id, const std::string& raft, const std::string& client,
                                  std::chrono::milliseconds patience);
  [[nodiscard]] change_result remove(std::uint64_t id, std::chrono::milliseconds patience);

  class impl;

private:
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace loyalty::cluster
