// One client connection (docs/PROTOCOL.md section 1): transport (plain TCP
// or TLS, framing, the connection limits, back-pressure), authentication
// (hello and the key's scope), admission (rate and in-flight limits),
// routing (member operations to their actors, the rest to their handlers,
// io/server/handlers/) and outcomes (answers in completion order).
//
// Thread affinity: every member runs on the connection's io_context thread,
// except complete() and wake(), which any thread may call.
#pragma once

#include "io/server/handlers/handlers.hpp"
#include "io/server/server_state.hpp"
#include "io/wire/stream.hpp"

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace loyalty::io {

class session final : public ledger::completion_target, public std::enable_shared_from_this<session> {
public:
  session(server::impl& srv, asio::io_context& ctx, asio::ip::tcp::socket sock);

  // Starts reading (after the TLS handshake when TLS is on).
  void start();
  // Refuses the connection: one error frame, then close. The frame is small
  // enough for the socket buffer, and the write-stall timeout bounds it
  // anyway, so a refused client that never reads does not keep its slot.
  void refuse(errc code);
  void close();
  // Any thread: the outcomes of requests of this connection.
  void complete(std::vector<ledger::outcome>&& outcomes) noexcept override;
  // Any thread (the ledger's commit listener): a subscriber that is caught
  // up reads again.
  void wake();
  // The engine stops and its drain time is up: every request still waiting
  // for its outcome is answered `unavailable`.
  void answer_unavailable();
  asio::io_context& context() { return ctx_; }

private:
  using steady = std::chrono::steady_clock;
  using check_fn = void (session::*)();

  struct pending {
    std::uint64_t id = 0;
    opcode op = opcode::none;
    std::uint64_t member = 0;
    std::int32_t batch = -1;    // index into batches_, or -1
    std::uint32_t index = 0;    // position in the batch
    std::uint16_t partner = 0;  // partner_earn / partner_burn: the partner's id
    bool live = false;          // waiting for its outcome
    bool answered = false;      // answered `unavailable` by answer_unavailable: its outcome is dropped
    // A dry run (docs/PROTOCOL.md section 2.4), as the key was when it was
    // sent: a later hello may switch the connection's key meanwhile.
    bool dry_run = false;
    std::chrono::steady_clock::time_point since{};  // admitted (server_counters::answer_us_hist)
  };
  struct batch_state {
    std::uint64_t id = 0;
    std::vector<response> results;
    std::uint32_t remaining = 0;
    bool dry_run = false;  // sent under a sandbox key (as pending::dry_run)
  };

  // transport
  template <class F>
  void when_ready(F then);
  void handshake_failed(const std::string& reason);
  void arm(asio::steady_timer& t, bool& armed, steady::time_point at, check_fn check);
  [[nodiscard]] steady::duration idle_timeout() const;
  [[nodiscard]] steady::duration frame_timeout() const;
  [[nodiscard]] steady::duration write_timeout() const;
  void watch_idle();
  void check_idle();
  void watch_frame(bool fresh);
  void check_frame();
  void watch_write();
  void check_write();
  void time_out(close_reason why, std::string message);
  void read();
  void parse(bool fresh);
  void fail_connection(errc code, std::string message);

  // requests
  void on_frame(const char* data, std::size_t size);
  void on_hello(const request& req);
  [[nodiscard]] const api_key* key() const;
  [[nodiscard]] handlers::caller caller() const;
  [[nodiscard]] bool allowed(opcode op) const;
  void deny(opcode op, std::uint64_t id, std::string why = {});
  // Answers what a handler gave: now, or after its job ran off the io thread.
  void run(opcode op, std::uint64_t id, handlers::handled h);
  void on_batch(request& req);
  bool admit(std::uint32_t n);
  void release_one();
  void route(const request& req, std::int32_t batch, std::uint32_t index);
  [[nodiscard]] static std::uint64_t content_hash_of(const request& req, const actors::member_request& mr);
  void deliver(std::int32_t batch, std::uint32_t index, response r);
  void deliver_now(const request& req, std::int32_t batch, std::uint32_t index, errc code, std::string msg);

  // subscribe: pacing the event stream
  void on_subscribe(const request& req);
  void pump();
  void send_progress();
  void post_pump();
  void heartbeat();
  [[nodiscard]] std::size_t unsent_bytes() const;
  void account_output();
  [[nodiscard]] bool output_over_limit() const;

  // outcomes
  void on_outcomes(std::vector<ledger::outcome>& outcomes);
  response to_response(const pending& p, const ledger::outcome& o);
  void finish_in_batch(std::uint32_t bi, std::uint32_t index, response r);
  response error_response(opcode op, std::uint64_t id, errc code, std::string message);
  void reply_error(opcode op, std::uint64_t id, errc code, std::string message);

  // writing
  void send(const response& r);
  void flush();
  void linger();
  void drain();
  void write_some();

  // tables
  std::uint32_t alloc_pending();
  void free_pending(std::uint32_t t) { free_pending_.push_back(t); }
  std::uint32_t alloc_batch();

  server::impl& srv_;
  asio::io_context& ctx_;
  detail::stream sock_;                 // plain TCP or TLS, as the server is configured
  asio::steady_timer handshake_timer_;  // bounds the TLS handshake
  asio::steady_timer idle_timer_, frame_timer_, write_timer_;  // the connection limits
  asio::steady_timer linger_timer_;     // bounds linger()
  asio::steady_timer heartbeat_timer_;  // the event stream's heartbeat
  bool lingering_ = false;
  bool idle_armed_ = false, frame_armed_ = false, write_armed_ = false;
  steady::time_point last_activity_{};   // bytes received or sent
  steady::time_point frame_started_{};   // first byte of the partial frame in in_
  steady::time_point write_progress_{};  // the socket last took bytes
  std::vector<char> in_;
  std::size_t in_len_ = 0;
  std::vector<char> out_, wbuf_;
  std::size_t wpos_ = 0;    // bytes of wbuf_ written
  std::uint32_t jobs_ = 0;  // jobs (handlers' work off the io thread) not yet answered
  bool reading_ = false, writing_ = false, read_paused_ = false;
  bool close_after_write_ = false, closed_ = false, hello_done_ = false;
  std::string peer_;  // "address:port" of the client, for log lines
  bool holds_slot_ = true;  // counted in connections (false: refused, counted in refused_closing)
  std::size_t accounted_ = 0;  // this connection's part of server::impl::output_bytes
  // Ids of the requests (and batches, jobs, the subscription) in flight:
  // a second request with one of them is refused with duplicate_id.
  std::unordered_set<std::uint64_t> live_ids_;
  int key_index_ = -1;             // the hello's key: index in settings.keys, -1 = none
  std::uint32_t scope_brand_ = 0;  // a brand key's brand id, else 0
  bool dry_run_ = false;           // the hello's key is a sandbox key: posting operations are dry runs
  std::uint32_t inflight_ = 0;
  std::vector<pending> pending_;
  std::vector<std::uint32_t> free_pending_;
  std::vector<batch_state> batches_;
  std::vector<std::uint32_t> free_batches_;

  struct subscription {
    bool active = false;
    std::uint64_t id = 0;        // the subscribe request's id: every events frame carries it
    handlers::stream_filter filter;  // filter.from: the next seq to read
    std::uint64_t reported = 0;  // the `next` of the last frame sent
    bool pump_posted = false;    // a pump() is queued on the io context
    steady::time_point last_frame{};
  };
  subscription sub_;
  // Caught up: the next commit's listener posts pump() (any thread).
  std::atomic<bool> sub_waiting_{false};
};

} // namespace loyalty::io
