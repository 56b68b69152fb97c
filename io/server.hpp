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
#include "ledger/ledger.hpp"

#include <atomic>
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
  std::function<std::uint32_t(std::string& error)> reload;
  // Extra name/value pairs for the `stats` operation (engine-wide counters).
  std::function<std::vector<std::pair<std::string, std::uint64_t>>()> extra_stats;
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
  // Stops accepting, closes every connection and joins the io threads.
  // Outcomes that arrive afterwards are dropped.
  void stop();

  [[nodiscard]] std::uint16_t port() const noexcept;
  [[nodiscard]] std::uint64_t connections() const noexcept;
  [[nodiscard]] std::uint64_t inflight() const noexcept;

  class impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace loyalty::io
