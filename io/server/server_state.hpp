// The server's shared state (server::impl): settings, dependencies, the io
// threads, counters, per-key rate buckets, the job slots of the work that
// runs off the io threads, and the registry of sessions and subscribers.
// Private to io/server/: sessions and handlers read it; server.hpp is the
// public face.
//
// Threads: settings and deps are read-only after start; counters are
// relaxed atomics; buckets, jobs, sessions and subscribers have their locks.
#pragma once

#include "io/server/server.hpp"

#include <asio.hpp>
#include <asio/ssl.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace loyalty::io {

class session;

// Error counters per (operation, code): errc values are below 128 (config/errc.hpp).
inline constexpr std::size_t errc_slots = 128;

// Work that runs off the io threads, one job per slot at a time: another
// request for a busy slot is answered `busy` (docs/PROTOCOL.md, "busy").
enum class job_slot : std::uint8_t {
  verify,  // verify
  sweep,   // expire of every member
  reload,  // reload
  report,  // activity, settlement, report: scans of the journal
  backup,  // backup
  cluster, // cluster_add, cluster_remove
};
inline constexpr std::size_t job_slot_count = 6;

class server::impl {
public:
  impl(const engine_settings& s, server_deps d);

  bool start(std::string& error);
  void stop();
  // A clean stop (server.hpp): no new connections, new requests answered
  // `unavailable`; then wait for the answers in flight to go out.
  void begin_drain();
  // Closes the listening socket on its io thread (no new connections).
  void close_acceptor();
  bool finish_drain(std::chrono::milliseconds limit);
  // Nothing in flight, nothing waiting to be sent, no job running.
  [[nodiscard]] bool drained();
  void accept();
  void accept_failed(const asio::error_code& ec);
  void count_close(close_reason why) {
    closed[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
  }
  void count_error(opcode op, errc code) {
    errors[static_cast<std::size_t>(op) % opcode_count][static_cast<std::size_t>(code) % errc_slots].fetch_add(
      1, std::memory_order_relaxed);
  }
  // The `stats` operation's counters, in the order it lists them.
  std::vector<std::pair<std::string, std::uint64_t>> stats();
  // True if n more requests of key i fit its rate (a batch counts each
  // operation); nothing is taken otherwise.
  bool take_token(std::size_t i, std::size_t n = 1);
  void wake_subscribers();

  engine_settings settings;
  server_deps deps;
  [[nodiscard]] const program& prog() const { return deps.ctx->now().prog; }
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor;
  // The accept loop's pause after a failed accept (limits::accept_retry_ms);
  // it and the flag are touched on contexts[0] only, the acceptor's.
  std::unique_ptr<asio::steady_timer> accept_timer;
  bool accept_backing_off = false;  // logged once per episode, not per failure
  std::unique_ptr<asio::ssl::context> tls;  // null: plain TCP
  std::size_t next_context = 0;
  std::uint16_t bound_port = 0;

  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> inflight{0};
  // Answers waiting to be sent, every connection's together (bytes;
  // session::account_output), against settings.output_bytes_max.
  std::atomic<std::uint64_t> output_bytes{0};
  // Refused connections still sending their refusal (limits::refused_closing_max).
  std::atomic<std::uint64_t> refused_closing{0};
  std::atomic<bool> draining{false};  // a clean stop began: requests are answered `unavailable`
  std::atomic<std::uint64_t> tls_handshakes_failed{0};
  std::atomic<std::uint64_t> accept_errors{0};
  std::array<std::atomic<std::uint64_t>, close_reason_count> closed{};
  std::array<std::atomic<std::uint64_t>, opcode_count> requests{};
  // errors[op][code]: one relaxed increment per error answered; the `stats`
  // operation sums them per code, the metrics endpoint reads each.
  std::array<std::array<std::atomic<std::uint64_t>, errc_slots>, opcode_count> errors{};
  // server_counters::answer_us_hist: one relaxed increment per outcome.
  std::array<std::atomic<std::uint64_t>, ledger::commit_us_bounds.size() + 1> answer_us_hist{};
  std::atomic<std::uint64_t> answer_us_total{0};
  void count_answer(std::chrono::steady_clock::duration took) noexcept {
    const auto us = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(took).count());
    std::size_t b = 0;
    while (b < ledger::commit_us_bounds.size() && us > ledger::commit_us_bounds[b])
      ++b;
    answer_us_hist[b].fetch_add(1, std::memory_order_relaxed);
    answer_us_total.fetch_add(us, std::memory_order_relaxed);
  }

  std::mutex sessions_mtx;
  std::vector<std::weak_ptr<session>> sessions;

  // Sessions with a subscription (docs/PROTOCOL.md, "subscribe"): the
  // ledger's commit listener wakes the ones waiting for new entries.
  std::mutex subscribers_mtx;
  std::vector<std::weak_ptr<session>> subscribers;
  std::atomic<std::uint64_t> subscriptions{0};  // open now
  std::atomic<std::uint64_t> stream_events{0};  // events sent, in all

  // Per-key token buckets (index: position in settings.keys).
  struct bucket {
    std::mutex mtx;
    double tokens = 0;
    std::chrono::steady_clock::time_point last{};
  };
  std::vector<std::unique_ptr<bucket>> buckets;

  struct job {
    std::thread thread;
    std::atomic<bool> running{false};
  };
  std::mutex jobs_mtx;  // guards the threads of the jobs
  std::array<job, job_slot_count> jobs;
  [[nodiscard]] job& slot(job_slot s) { return jobs[static_cast<std::size_t>(s)]; }
  std::atomic<bool> stopped{false};
};

} // namespace loyalty::io
