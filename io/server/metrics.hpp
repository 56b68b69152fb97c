// The Prometheus metrics endpoint: a small HTTP/1.1 server on a port of its
// own (settings metrics_host / metrics_port, off by default) that answers
// `GET /metrics` with the counters of the server, the ledger writer, the
// member directory and the partner actors in the text exposition format
// 0.0.4 (docs/OPERATIONS.md, "Metrics"). Every request gets one answer and
// the connection is closed after it.
//
// Threads: one thread of its own, running one asio::io_context. Not the
// wire protocol's io threads, because a scrape takes the ledger writer's
// stats lock, reads some 4000 error counters and formats tens of KiB of
// text, which would sit between requests on a latency-sensitive io thread;
// and on its own thread the endpoint keeps answering when the io threads
// are saturated, which is when an operator most wants the numbers. Idle, it
// costs one sleeping thread.
//
// Cost on the hot path: none added here; the counters it reads are the
// relaxed atomics and the writer's stats the engine keeps anyway. The
// scrape does all the formatting.
//
// Limits (config/limits.hpp): metrics_connections_max connections at once
// (more are answered 503), metrics_request_bytes_max of request line and
// headers (more: 431), a read timeout (settings metrics_read_timeout_ms; a
// request not complete by then: 408), the same time again to send the
// answer, then metrics_linger_ms to let the client close first.
#pragma once

#include "actors/directory.hpp"
#include "actors/partner.hpp"
#include "actors/program_root.hpp"
#include "config/limits.hpp"
#include "io/server/server.hpp"
#include "ledger/cluster/node.hpp"
#include "ledger/ledger.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace loyalty::io {

// Where the numbers come from. Each must outlive the metrics server that
// reads it (stop it first).
struct metrics_sources {
  const server* srv = nullptr;                             // required
  const ledger::ledger* ledger = nullptr;                  // required
  const actors::directory* dir = nullptr;                  // required
  const actors::partner_registry* partners = nullptr;      // null: no partner metrics
  const actors::supervision_stats* supervision = nullptr;  // null: member failures from the directory
  const cluster::node* node = nullptr;                     // null: a single node (no cluster metrics)
};

// One scrape's text: every metric read from `src` now, in the exposition
// format 0.0.4, each family with its # HELP and # TYPE lines. Any thread.
[[nodiscard]] std::string render_metrics(const metrics_sources& src);

struct metrics_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: a free port the system picks (port() tells which)
  std::uint32_t read_timeout_ms = limits::metrics_read_timeout_ms_default;
};

class metrics_server {
public:
  metrics_server(metrics_options opts, metrics_sources src);
  ~metrics_server();  // stop()
  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;

  // Binds and starts the endpoint's thread. False with `error` set to a
  // sentence naming the address if it cannot be bound.
  [[nodiscard]] bool start(std::string& error);
  // Closes the listening socket and every connection, joins the thread.
  // Idempotent; any thread but the endpoint's own.
  void stop();
  // The bound port (after start()).
  [[nodiscard]] std::uint16_t port() const noexcept;

  class impl;

private:
  std::unique_ptr<impl> impl_;
};


} // namespace loyalty::io
