// One node of a replicated ledger: a Raft server (libraft, its log and
// TCP transport on libuv) whose state machine is this node's ledger
// (state_machine.hpp), on a thread of its own. The ledger's writer calls
// replicate() with each batch's command (ledger::options::replicate): on
// the leader it is appended to the log and the call returns the entry's
// index once a majority holds it durable; anywhere else, 0. Followers
// apply committed entries in log order through the ledger's command queue.
// docs/ARCHITECTURE.md, "Replication".
#pragma once

#include "ledger/cluster/state_machine.hpp"
#include "ledger/ledger.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty::cluster {

struct peer {
  std::uint64_t id = 0;  // 1.., unique in the cluster
  std::string address;   // host:port of its Raft transport
};

struct node_options {
  std::uint64_t id = 0;       // this node: one of `peers`
  std::vector<peer> peers;    // the voters of the cluster's first configuration, this node included
  std::string dir;            // the Raft log and metadata (created if missing)
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_ms = 100;
  // Log compaction: a snapshot of the ledger every `snapshot_entries` log
  // entries, keeping the last `snapshot_trailing` entries (a follower that
  // far behind catches up from the log, further from the snapshot).
  unsigned snapshot_entries = 65536;
  unsigned snapshot_trailing = 8192;
};

// Where a node copies snapshots out of and into its ledger: beside its Raft
// directory, never in it (libraft owns every name there).
[[nodiscard]] std::string scratch_dir_of(const std::string& raft_dir);

// A node's view of the cluster, any thread.
struct node_status {
  bool leader = false;
  // Leads, and every entry of earlier terms is applied (a barrier of this
  // term went through the log): what the ledger holds is all the log
  // committed, so the engine may open for requests once its own writer
  // applied its queue (docs/ARCHITECTURE.md, "the engine on a cluster").
  bool leader_ready = false;
  std::uint64_t leader_id = 0;   // 0: none known
  std::uint64_t term = 0;
};

class node {
public:
  // Starts the Raft server on its own thread, bootstrapping the log with
  // `peers` on its first start (a directory that holds a log keeps its own
  // configuration). Null with `error` set on failure. `led` must outlive
  // the node; its writer calls replicate(). Ignores SIGPIPE in the process
  // (the transport's writes to a peer that went away).
  [[nodiscard]] static std::unique_ptr<node> start(const node_options& opts, ledger::ledger& led, std::string& error);
  ~node();  // stop(), then frees the Raft server

  // Stops the Raft server and its thread: batches waiting in replicate()
  // get 0, and every later call returns 0 at once. Stop the node before its
  // ledger (whose writer may be waiting here), destroy it after. Idempotent.
  void stop();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  // Writer thread: appends `command` to the log if this node leads, and
  // waits until it is committed (its index) or cannot be (0: not the
  // leader, leadership lost, shut down).
  [[nodiscard]] std::uint64_t replicate(std::string_view command);

  [[nodiscard]] node_status status() const;

  class impl;

private:
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace loyalty::cluster
