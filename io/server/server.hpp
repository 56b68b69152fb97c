// The TCP server: accepts connections, decodes pipelined frames, admits each
// request against the in-flight limits, routes it to its member actor, and
// writes responses as their outcomes arrive (in completion order).
//
// Threads: `io_threads` threads each run one asio::io_context; a connection
// lives on one of them for its whole life, so its state needs no locks.
// Outcomes arrive from the ledger writer and from member actors on other
// threads and are posted to the connection's io_context.
#pragma once

#include "actors/directory.hpp"
#include "actors/member.hpp"
#include "actors/sweeper.hpp"
#include "config/clock.hpp"
#include "config/program.hpp"
#include "io/wire/protocol.hpp"
#include "ledger/ledger.hpp"

#include <array>
#include <chrono>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace loyalty::io {

struct server_deps {
  const actors::engine_context* ctx = nullptr;  // the current program: ctx->now()
  actors::directory* dir = nullptr;
  ledger::ledger* ledger = nullptr;
  actors::expiry_sweeper* sweeper = nullptr;  // `expire` of all members; may be null
  const loyalty::clock* clock = nullptr;      // required
  // The `reload` operation: reloads the program file; the version in
  // effect, or 0 with `error` set (the running version stays). May be empty.
  std::function<std::uint32_t(std::string& error, errc& code)> reload;
  // Extra name/value pairs for the `stats` operation (engine-wide counters).
  std::function<std::vector<std::pair<std::string, std::uint64_t>>()> extra_stats;
  // A cluster node: true if this node is a ready leader and may serve;
  // false with `leader` set to the leader's client address ("" if none is
  // known), and every operation but hello and stats is answered
  // not_leader. Empty: the single node, which always serves.
  std::function<bool(std::string& leader)> leads;
  // A cluster node: fills a cluster_status answer with its view of the
  // cluster (docs/PROTOCOL.md). Empty: the single node.
  std::function<void(response& r)> cluster_status;
  // A cluster node: adds (cluster_add) or removes (cluster_remove) a node
  // on the leader, blocking until the change commits or fails; the answer's
  // code says which (docs/PROTOCOL.md). Empty: the single node.
  std::function<response(const request& r)> cluster_change;
};

// Why the server closed a connection on its own (docs/OPERATIONS.md,
// "Connection limits"); the index of server_counters::closed.
enum class close_reason : std::uint8_t {
  idle,          // idle_timeout_s without a request
  read_timeout,  // a frame not complete within frame_read_timeout_ms
  write_stall,   // responses pending and none taken within write_stall_timeout_ms
  refused,       // over connections_max: told too_many_connections
};
inline constexpr std::size_t close_reason_count = 4;
[[nodiscard]] constexpr const char* to_string(close_reason r) noexcept {
  switch (r) {
    case close_reason::idle: return "idle";
    case close_reason::read_timeout: return "read_timeout";
    case close_reason::write_stall: return "write_stall";
    case close_reason::refused: return "refused";
  }
  return "unknown";
}

// The server's counters at one moment, each read on its own (relaxed):
// for the metrics endpoint, which formats them.
struct server_counters {
  std::uint64_t connections = 0;        // open now
  std::uint64_t connections_total = 0;  // accepted since start
  std::uint64_t inflight = 0;           // admitted requests not yet answered
  std::uint64_t output_bytes = 0;       // answers waiting to be sent, every connection's
  std::uint64_t tls_handshakes_failed = 0;
  std::uint64_t accept_errors = 0;  // accept() failures (out of fds, ...): the loop backs off and retries
  std::uint64_t subscriptions = 0;  // event streams open now (subscribe)
  std::uint64_t stream_events = 0;  // events sent to subscribers since start
  std::array<std::uint64_t, close_reason_count> closed{};  // connections the server closed, by reason
  std::vector<std::uint64_t> requests;  // frames received, index: opcode (0 = none: the operation was unreadable)
  struct error_count {
    opcode op = opcode::none;  // none: a frame-level failure (malformed_frame, frame_too_large)
    errc code = errc::ok;
    std::uint64_t count = 0;
  };
  std::vector<error_count> errors;      // error answers, the non-zero ones, by op then code
  // Member requests (those routed to a member or partner actor): time from
  // admission on the io thread to the outcome back there, in the buckets of
  // ledger::commit_us_bounds (the last: over the last bound).
  std::array<std::uint64_t, ledger::commit_us_bounds.size() + 1> answer_us_hist{};
  std::uint64_t answer_us_total = 0;
};

class server {
public:
  server(const engine_settings& settings, server_deps deps);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and starts the io threads. False with `error` set if the address
  // cannot be bound.
  [[nodiscard]] bool start(std::string& error);
  // A clean stop, in two steps around the engine's own (io/server/engine.cpp):
  // begin_drain() stops accepting connections and answers every request
  // that arrives from then on `unavailable` (nothing posted), while the
  // requests already in flight go on; finish_drain() then waits, at most
  // `limit`, until every one of them is answered and every answer sent, and
  // answers what is left `unavailable`. True if all was answered in time.
  // Any thread.
  void begin_drain();
  bool finish_drain(std::chrono::milliseconds limit);
  // Stops accepting, closes every connection and joins the io threads.
  // Outcomes that arrive afterwards are dropped.
  void stop();

  [[nodiscard]] std::uint16_t port() const noexcept;
  [[nodiscard]] std::uint64_t connections() const noexcept;
  [[nodiscard]] std::uint64_t inflight() const noexcept;
  // Any thread; reads about 4000 relaxed counters (every operation x code).
  [[nodiscard]] server_counters counters() const;

  class impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace loyalty::io
