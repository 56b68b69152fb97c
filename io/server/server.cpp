#include "io/server/server.hpp"

#include "actors/member.hpp"
#include "actors/partner.hpp"
#include "actors/sweeper.hpp"
#include "config/consent.hpp"
#include "config/log.hpp"
#include "io/wire/codec.hpp"
#include "io/wire/stream.hpp"
#include "io/server/process.hpp"

#include <asio.hpp>
#include <caf/message.hpp>
#include <openssl/ssl.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

namespace loyalty::io {

namespace {

// Initial read buffer; grows up to one maximal frame.
constexpr std::size_t read_chunk_bytes = 64u << 10;

constexpr std::size_t opcode_count = static_cast<std::size_t>(opcode::journal) + 1;

// Compares two digests without an early exit, so the time taken does not
// tell how much of a guess was right.
bool same_digest(const std::array<unsigned char, 32>& a, const std::array<unsigned char, 32>& b) {
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// What a connection's key allows (docs/OPERATIONS.md, "API keys").
bool read_only(opcode op) {
  return op == opcode::balance || op == opcode::history || op == opcode::lookup || op == opcode::explain ||
         op == opcode::stats || op == opcode::verify || op == opcode::liability || op == opcode::activity ||
         op == opcode::settlement || op == opcode::subscribe || op == opcode::report ||
         op == opcode::journal || op == opcode::quote;  // a quote posts nothing
}
bool partner_op(opcode op) { return op == opcode::partner_earn || op == opcode::partner_burn; }
// The coalition reports: never in a batch (they are not member operations);
// activity, settlement and report scan a period of the journal off the io thread.
bool report_op(opcode op) {
  return op == opcode::activity || op == opcode::settlement || op == opcode::liability || op == opcode::report;
}
bool admin_only(opcode op) {
  return op == opcode::adjust || op == opcode::expire || op == opcode::reload || op == opcode::backup;
}

actors::request_kind kind_of(opcode op) {
  using k = actors::request_kind;
  switch (op) {
    case opcode::enroll: return k::enroll;
    case opcode::earn: return k::earn;
    case opcode::redeem: return k::redeem;
    case opcode::event: return k::event;
    case opcode::hold: return k::hold;
    case opcode::capture: return k::capture;
    case opcode::release: return k::release;
    case opcode::redeem_reward: return k::redeem_reward;
    case opcode::refund: return k::refund;
    case opcode::reverse_redemption: return k::reverse_redemption;
    case opcode::adjust: return k::adjust;
    case opcode::transfer: return k::transfer;
    case opcode::link_alias: return k::link_alias;
    case opcode::expire: return k::expire;
    case opcode::partner_earn: return k::partner_earn;
    case opcode::partner_burn: return k::partner_burn;
    case opcode::consent: return k::consent;
    case opcode::quote: return k::quote;
    default: return k::balance;
  }
}

const char* entry_kind_name(std::uint16_t kind) {
  static constexpr const char* names[] = {"",       "enroll",  "earn",    "redeem",  "event",
                                          "hold",   "capture", "release", "refund",  "reverse_redemption",
                                          "adjust", "transfer", "expire", "link_alias", "redeem_reward",
                                          "tier_review", "partner_earn", "partner_burn", "consent", "expiry_notice"};
  static_assert(std::size(names) == ledger::entry_kind_max + 1);
  return kind < std::size(names) ? names[kind] : "unknown";
}

const char* line_kind_name(std::uint32_t aux) {
  switch (static_cast<ledger::rule_line_kind>(aux)) {
    case ledger::rule_line_kind::base: return "base";
    case ledger::rule_line_kind::tier: return "tier";
    case ledger::rule_line_kind::rule: return "rule";
    case ledger::rule_line_kind::partner: return "partner";
  }
  return "rule";
}
// Error counters per (operation, code): errc values are below 128 (config/errc.hpp).
constexpr std::size_t errc_slots = 128;

// The server's TLS context: TLS 1.2 or later, the operator's certificate
// chain and key. Null with `error` naming the file when one cannot be read
// or does not hold what it should (or the key is not the certificate's).
std::unique_ptr<asio::ssl::context> make_tls_context(const engine_settings& s, std::string& error) {
  for (const auto* file : {&s.tls_cert, &s.tls_key}) {
    std::ifstream probe(*file);
    if (!probe) {
      error = "cannot read TLS " + std::string(file == &s.tls_cert ? "certificate" : "key") + " file " + *file +
              ": " + std::strerror(errno);
      return nullptr;
    }
  }
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::single_dh_use);
  asio::error_code ec;
  ctx->use_certificate_chain_file(s.tls_cert, ec);
  if (ec) {
    error = "TLS certificate file " + s.tls_cert + " is not a PEM certificate: " + ec.message();
    return nullptr;
  }
  ctx->use_private_key_file(s.tls_key, asio::ssl::context::pem, ec);
  if (ec) {
    error = "TLS key file " + s.tls_key + " is not a PEM private key of the certificate " + s.tls_cert + ": " +
            ec.message();
    return nullptr;
  }
  return ctx;
}

} // namespace

class session;

class server::impl {
public:
  impl(const engine_settings& s, server_deps d) : settings(s), deps(std::move(d)) {
    for (std::uint32_t i = 0; i < std::max<std::uint32_t>(1, s.io_threads); ++i)
      contexts.push_back(std::make_unique<asio::io_context>(1));
    for (std::size_t i = 0; i < s.keys.size(); ++i)
      buckets.push_back(std::make_unique<bucket>());
  }

  bool start(std::string& error);
  void stop();
  void accept();
  void accept_failed(const asio::error_code& ec);
  void count_close(close_reason why) {
    closed[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
  }
  std::vector<std::pair<std::string, std::uint64_t>> stats();

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
  std::atomic<std::uint64_t> tls_handshakes_failed{0};
  std::atomic<std::uint64_t> accept_errors{0};
  std::array<std::atomic<std::uint64_t>, close_reason_count> closed{};
  std::array<std::atomic<std::uint64_t>, opcode_count> requests{};
  // errors[op][code]: one relaxed increment per error answered; the `stats`
  // operation sums them per code, the metrics endpoint reads each.
  std::array<std::array<std::atomic<std::uint64_t>, errc_slots>, opcode_count> errors{};

  std::mutex sessions_mtx;
  std::vector<std::weak_ptr<session>> sessions;

  // Sessions with a subscription (docs/PROTOCOL.md, "subscribe"): the
  // ledger's commit listener wakes the ones waiting for new entries.
  std::mutex subscribers_mtx;
  std::vector<std::weak_ptr<session>> subscribers;
  std::atomic<std::uint64_t> subscriptions{0};        // open now
  std::atomic<std::uint64_t> stream_events{0};        // events sent, in all
  void wake_subscribers();

  // Per-key token buckets (index: position in settings.keys).
  struct bucket {
    std::mutex mtx;
    double tokens = 0;
    std::chrono::steady_clock::time_point last{};
  };
  std::vector<std::unique_ptr<bucket>> buckets;
  // True if n more requests of key i fit its rate (a batch counts each
  // operation); nothing is taken otherwise.
  bool take_token(std::size_t i, std::size_t n = 1) {
    const auto& k = settings.keys[i];
    if (k.rate_per_s == 0)
      return true;
    auto& b = *buckets[i];
    std::lock_guard<std::mutex> lk(b.mtx);
    auto now = std::chrono::steady_clock::now();
    const double cap = k.rate_per_s;
    b.tokens = b.last == std::chrono::steady_clock::time_point{}
                 ? cap
                 : std::min(cap, b.tokens + std::chrono::duration<double>(now - b.last).count() * cap);
    b.last = now;
    if (b.tokens < static_cast<double>(n))
      return false;
    b.tokens -= static_cast<double>(n);
    return true;
  }

  // Admin jobs run off the io threads (session::off_io), one of each kind at a time.
  struct job {
    std::thread thread;
    std::atomic<bool> running{false};
  };
  std::mutex jobs_mtx;  // guards the threads of the jobs
  job verify_job, sweep_job, reload_job, report_job, backup_job;
  std::atomic<bool> stopped{false};
};

// One connection. All members are touched only on its io_context's thread,
// except complete(), which any thread may call.
class session final : public ledger::completion_target, public std::enable_shared_from_this<session> {
public:
  session(server::impl& srv, asio::io_context& ctx, asio::ip::tcp::socket sock)
    : srv_(srv), ctx_(ctx), sock_(std::move(sock), srv.tls.get()), handshake_timer_(ctx), idle_timer_(ctx),
      frame_timer_(ctx), write_timer_(ctx), linger_timer_(ctx), heartbeat_timer_(ctx) {
    in_.resize(read_chunk_bytes);
  }

  void start() {
    asio::error_code ec;
    sock_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
    when_ready([this] {
      last_activity_ = steady::now();
      watch_idle();
      read();
    });
  }

  // Refuses the connection: one error frame, then close. The frame is small
  // enough for the socket buffer, and the write-stall timeout bounds it
  // anyway, so a refused client that never reads does not keep its slot.
  void refuse(errc code) {
    when_ready([this, code] {
      response r;
      r.code = code;
      r.message = std::string(default_message(code));
      send(r);
      close_after_write_ = true;
      flush();
    });
  }

  void close() {
    if (closed_)
      return;
    closed_ = true;
    handshake_timer_.cancel();
    idle_timer_.cancel();
    frame_timer_.cancel();
    write_timer_.cancel();
    linger_timer_.cancel();
    heartbeat_timer_.cancel();
    if (sub_.active) {
      sub_.active = false;
      srv_.subscriptions.fetch_sub(1);
    }
    sock_.close();
    srv_.connections.fetch_sub(1);
  }

  void complete(std::vector<ledger::outcome>&& outcomes) noexcept override {
    asio::post(ctx_, [self = shared_from_this(), v = std::move(outcomes)]() mutable { self->on_outcomes(v); });
  }

  asio::io_context& context() { return ctx_; }

  // Called by the ledger's commit listener (any thread): a subscriber that
  // is caught up reads again.
  void wake() {
    if (sub_waiting_.exchange(false))
      asio::post(ctx_, [self = shared_from_this()] { self->pump(); });
  }

private:
  struct pending {
    std::uint64_t id = 0;
    opcode op = opcode::none;
    std::uint64_t member = 0;
    std::int32_t batch = -1;  // index into batches_, or -1
    std::uint32_t index = 0;  // position in the batch
    std::uint16_t partner = 0;  // partner_earn / partner_burn: the partner's id
  };
  struct batch_state {
    std::uint64_t id = 0;
    std::vector<response> results;
    std::uint32_t remaining = 0;
  };

  // -- transport -----------------------------------------------------------------
  // Runs `then` once the connection can carry frames: at once on plain TCP,
  // after the server side of the TLS handshake otherwise. A handshake that
  // fails, or is not done within tls_handshake_timeout_ms, closes the
  // connection with one log line; `then` never runs.
  template <class F>
  void when_ready(F then) {
    if (!sock_.tls()) {
      then();
      return;
    }
    const auto timeout_ms = srv_.settings.tls_handshake_timeout_ms;
    handshake_timer_.expires_after(std::chrono::milliseconds(timeout_ms));
    handshake_timer_.async_wait([self = shared_from_this(), timeout_ms](const asio::error_code& ec) {
      if (ec || self->closed_)
        return;  // cancelled: the handshake ended first
      self->handshake_failed("not completed within " + std::to_string(timeout_ms) + " ms");
    });
    sock_.tls_layer().async_handshake(asio::ssl::stream_base::server,
                                      [self = shared_from_this(), then = std::move(then)](const asio::error_code& ec) {
                                        if (self->closed_)
                                          return;  // timed out, or the server stops
                                        self->handshake_timer_.cancel();
                                        if (ec) {
                                          self->handshake_failed(ec.message());
                                          return;
                                        }
                                        then();
                                      });
  }

  void handshake_failed(const std::string& reason) {
    srv_.tls_handshakes_failed.fetch_add(1, std::memory_order_relaxed);
    asio::error_code ec;
    auto peer = sock_.socket().remote_endpoint(ec);
    const std::string who = ec ? std::string("an unknown peer") : peer.address().to_string() + ":" + std::to_string(peer.port());
    log(log_level::warn, "TLS handshake with %s failed: %s; connection closed", who.c_str(), reason.c_str());
    close();
  }

  // -- connection limits (docs/OPERATIONS.md, "Connection limits") -------------------
  // Each watchdog is one timer, armed at most once at a time. Reads and
  // writes only move a time point stored here (no timer operation per read
  // or write); a timer that finds its deadline moved re-arms for it.
  using steady = std::chrono::steady_clock;
  using check_fn = void (session::*)();

  void arm(asio::steady_timer& t, bool& armed, steady::time_point at, check_fn check) {
    if (armed || closed_)
      return;
    armed = true;
    t.expires_at(at);
    t.async_wait([self = shared_from_this(), &armed, check](const asio::error_code& ec) {
      armed = false;
      if (ec || self->closed_)
        return;  // cancelled: the connection closed
      ((*self).*check)();
    });
  }

  [[nodiscard]] steady::duration idle_timeout() const { return std::chrono::seconds(srv_.settings.idle_timeout_s); }
  [[nodiscard]] steady::duration frame_timeout() const {
    return std::chrono::milliseconds(srv_.settings.frame_read_timeout_ms);
  }
  [[nodiscard]] steady::duration write_timeout() const {
    return std::chrono::milliseconds(srv_.settings.write_stall_timeout_ms);
  }

  void watch_idle() {
    if (srv_.settings.idle_timeout_s != 0)
      arm(idle_timer_, idle_armed_, last_activity_ + idle_timeout(), &session::check_idle);
  }
  // Idle means nothing owed either way: no request in flight (nor an admin
  // job), nothing to write, no partial frame. Otherwise the other limits
  // apply, and the idle time starts again when the connection is quiet.
  void check_idle() {
    const auto now = steady::now();
    if (inflight_ > 0 || jobs_ > 0 || writing_ || !out_.empty() || in_len_ > 0 || close_after_write_ || sub_.active)
      last_activity_ = now;  // a subscription's heartbeats show it alive
    if (now < last_activity_ + idle_timeout())
      return watch_idle();
    time_out(close_reason::idle,
             "no request for " + std::to_string(srv_.settings.idle_timeout_s) + " s (idle_timeout_s)");
  }

  // After the bytes of a read are parsed: the frame still incomplete in the
  // buffer (if any) must be whole within frame_read_timeout_ms of its first
  // byte. `fresh`: its first byte came with this read.
  void watch_frame(bool fresh) {
    if (in_len_ == 0)
      return;  // an armed timer finds nothing and stops
    if (fresh)
      frame_started_ = steady::now();
    arm(frame_timer_, frame_armed_, frame_started_ + frame_timeout(), &session::check_frame);
  }
  void check_frame() {
    if (in_len_ == 0 || close_after_write_)
      return;
    // Not reading (back-pressure): the rest of the frame waits on us, not on
    // the client; its time starts again when reading resumes.
    if (read_paused_)
      frame_started_ = steady::now();
    if (steady::now() < frame_started_ + frame_timeout())
      return watch_frame(false);
    time_out(close_reason::read_timeout, "a frame was not complete within " +
                                           std::to_string(srv_.settings.frame_read_timeout_ms) +
                                           " ms of its first byte (frame_read_timeout_ms)");
  }

  // While a write is under way, the socket must take some of it within
  // write_stall_timeout_ms. No error frame: the client is not reading.
  // Answers of requests still in flight are dropped when they come (they
  // were posted if admitted; the client retries with the same txn id).
  void watch_write() {
    arm(write_timer_, write_armed_, write_progress_ + write_timeout(), &session::check_write);
  }
  void check_write() {
    if (!writing_)
      return;
    if (steady::now() < write_progress_ + write_timeout())
      return watch_write();
    srv_.count_close(close_reason::write_stall);
    log(log_level::debug, "connection from %s closed: %zu bytes of responses not taken within %u ms", peer().c_str(),
        wbuf_.size() - wpos_ + out_.size(), srv_.settings.write_stall_timeout_ms);
    close();
  }

  // Closes the connection for a time limit, with one timed_out frame first
  // when the output is free (that write is bounded by the write-stall
  // timeout like any other), at once when responses are still waiting to go
  // out (the frame would queue behind them).
  void time_out(close_reason why, std::string message) {
    srv_.count_close(why);
    log(log_level::debug, "connection from %s closed: %s", peer().c_str(), message.c_str());
    if (writing_ || !out_.empty()) {
      close();
      return;
    }
    send(error_response(opcode::none, 0, errc::timed_out, std::move(message)));
    close_after_write_ = true;
    flush();
  }

  // -- reading -------------------------------------------------------------------
  void read() {
    if (closed_ || reading_)
      return;
    if (out_.size() > srv_.settings.connection_output_bytes_max) {
      read_paused_ = true;  // resumed when the write completes
      return;
    }
    if (in_len_ == in_.size())
      in_.resize(std::min<std::size_t>(in_.size() * 2, frame_header_bytes + limits::frame_bytes_max));
    reading_ = true;
    sock_.async_read_some(asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
                          [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                            self->reading_ = false;
                            if (ec) {
                              self->close();
                              return;
                            }
                            if (self->lingering_)
                              return self->drain();
                            self->last_activity_ = steady::now();
                            const bool fresh = self->in_len_ == 0;
                            self->in_len_ += n;
                            self->parse(fresh);
                          });
  }

  // `fresh`: the buffer held no partial frame before this read.
  void parse(bool fresh) {
    std::size_t pos = 0;
    while (!close_after_write_ && in_len_ - pos >= frame_header_bytes) {
      auto len = read_be32(reinterpret_cast<const unsigned char*>(in_.data() + pos));
      if (len == 0 || len > limits::frame_bytes_max) {
        fail_connection(errc::frame_too_large,
                        "frame length " + std::to_string(len) + " is outside 1.." +
                          std::to_string(limits::frame_bytes_max));
        break;
      }
      if (in_len_ - pos < frame_header_bytes + len)
        break;  // read() doubles the buffer as the rest arrives: memory follows the bytes received, not a declared length
      on_frame(in_.data() + pos + frame_header_bytes, len);
      pos += frame_header_bytes + len;
    }
    if (pos > 0) {
      std::memmove(in_.data(), in_.data() + pos, in_len_ - pos);
      in_len_ -= pos;
    }
    flush();
    if (!close_after_write_) {
      watch_frame(fresh || pos > 0);
      read();
    }
  }

  void fail_connection(errc code, std::string message) {
    response r;
    r.code = code;
    r.message = std::move(message);
    count_error(opcode::none, code);  // a frame-level failure: no operation was read
    send(r);
    close_after_write_ = true;
  }

  // -- requests ------------------------------------------------------------------
  void on_frame(const char* data, std::size_t size) {
    request req = decode_request(data, size);
    if (req.error == errc::malformed_frame) {
      fail_connection(errc::malformed_frame, req.error_message.empty() ? std::string(default_message(errc::malformed_frame))
                                                                       : req.error_message);
      return;
    }
    srv_.requests[static_cast<std::size_t>(req.op)].fetch_add(1, std::memory_order_relaxed);
    if (req.error != errc::ok) {
      reply_error(req.op, req.id, req.error, req.error_message);
      return;
    }
    if (!hello_done_ && req.op != opcode::hello) {
      reply_error(req.op, req.id, errc::hello_required, {});
      return;
    }
    if (req.op != opcode::hello) {
      const std::size_t n = req.op == opcode::batch ? std::max<std::size_t>(1, req.ops.size()) : 1;
      if (key_index_ >= 0 && !srv_.take_token(static_cast<std::size_t>(key_index_), n)) {
        reply_error(req.op, req.id, errc::rate_limited, {});
        return;
      }
      if (req.op != opcode::batch && !allowed(req.op)) {
        deny(req.op, req.id);
        return;
      }
    }
    switch (req.op) {
      case opcode::hello: return on_hello(req);
      case opcode::verify: return on_verify(req);
      case opcode::stats: return on_stats(req);
      case opcode::reload: return on_reload(req);
      case opcode::batch: return on_batch(req);
      case opcode::liability: return on_liability(req);
      case opcode::activity: return on_activity(req);
      case opcode::settlement: return on_settlement(req);
      case opcode::report: return on_report(req);
      case opcode::backup: return on_backup(req);
      case opcode::subscribe: return on_subscribe(req);
      case opcode::journal: return on_journal(req);
      case opcode::expire:
        if (!req.has_member && req.alias.empty())
          return on_sweep(req);
        [[fallthrough]];
      case opcode::enroll:
      case opcode::earn:
      case opcode::redeem:
      case opcode::balance:
      case opcode::event:
      case opcode::hold:
      case opcode::capture:
      case opcode::release:
      case opcode::redeem_reward:
      case opcode::refund:
      case opcode::reverse_redemption:
      case opcode::adjust:
      case opcode::transfer:
      case opcode::link_alias:
      case opcode::lookup:
      case opcode::history:
      case opcode::explain:
      case opcode::partner_earn:
      case opcode::partner_burn:
      case opcode::consent:
      case opcode::quote:
        if (!admit(1)) {
          reply_error(req.op, req.id, errc::overloaded, {});
          return;
        }
        return route(req, -1, 0);
      case opcode::none: break;
    }
    reply_error(req.op, req.id, errc::unknown_operation, {});
  }

  void on_hello(const request& req) {
    if (req.version < limits::protocol_version_min || req.version > limits::protocol_version_max) {
      reply_error(opcode::hello, req.id, errc::unsupported_version,
                  "this server speaks protocol version " + std::to_string(limits::protocol_version_min) +
                    " to " + std::to_string(limits::protocol_version_max));
      close_after_write_ = true;
      return;
    }
    const auto& keys = srv_.settings.keys;
    // A refused hello changes nothing: a connection that said hello before
    // keeps the key it had (resetting it first would have left a refused
    // second hello on a connection without a key, which without keys
    // configured may do everything but admin operations).
    if (!req.key.empty() || !keys.empty()) {
      const auto digest = key_sha256(req.key);
      int found = -1;
      for (std::size_t i = 0; i < keys.size(); ++i)
        if (same_digest(digest, keys[i].sha256))
          found = static_cast<int>(i);
      if (found < 0 || req.key.empty()) {
        log(log_level::warn, "hello from %s refused: %s", peer().c_str(),
            req.key.empty() ? "no key" : "a key that is not configured");
        reply_error(opcode::hello, req.id, errc::not_authorized,
                    keys.empty() ? "this engine has no API keys: send hello without a key"
                                 : req.key.empty() ? "this engine needs an API key in hello" : "the key is not valid");
        return;
      }
      key_index_ = found;
      scope_brand_ = 0;
      if (keys[static_cast<std::size_t>(found)].scope == key_scope::brand)
        if (const brand_def* b = srv_.prog().find_brand(keys[static_cast<std::size_t>(found)].scope_code))
          scope_brand_ = b->id;
    }
    hello_done_ = true;
    response r;
    r.op = opcode::hello;
    r.id = req.id;
    r.version = limits::protocol_version_max;
    r.server = "loyaltyd 0.1.0";
    r.frame_bytes_max = limits::frame_bytes_max;
    r.inflight_max = srv_.settings.inflight_per_connection_max;
    r.batch_ops_max = static_cast<std::uint32_t>(limits::batch_ops_max);
    send(r);
  }

  [[nodiscard]] const api_key* key() const {
    return key_index_ >= 0 ? &srv_.settings.keys[static_cast<std::size_t>(key_index_)] : nullptr;
  }
  [[nodiscard]] std::uint32_t key_id() const { return key() != nullptr ? key()->id : 0; }

  // Whether the connection's key allows an operation at all (a brand key is
  // further limited to its brand by the member actor).
  [[nodiscard]] bool allowed(opcode op) const {
    const api_key* k = key();
    if (k == nullptr)  // no keys configured: everything but the admin operations
      return !admin_only(op);
    switch (k->scope) {
      case key_scope::admin: return true;
      case key_scope::read: return read_only(op);
      case key_scope::brand:
        // journal: every member's entries, for finance (admin and read keys)
        return !admin_only(op) && op != opcode::verify && op != opcode::stats && !partner_op(op) &&
               op != opcode::journal;
      case key_scope::partner:
        return partner_op(op) || op == opcode::reverse_redemption || op == opcode::balance || op == opcode::lookup ||
               op == opcode::settlement;
    }
    return false;
  }

  // A partner key's partner id in the program now; partner_none when the
  // key is not a partner key, partner_gone when its partner is not in the
  // program (it then matches no partner: ids are 16-bit).
  static constexpr std::uint32_t partner_none = 0, partner_gone = UINT32_MAX;
  [[nodiscard]] std::uint32_t scope_partner() const {
    const api_key* k = key();
    if (k == nullptr || k->scope != key_scope::partner)
      return partner_none;
    const partner_def* p = srv_.prog().find_partner(k->scope_code);
    return p != nullptr ? p->id : partner_gone;
  }

  // Refuses a request the key does not allow, logging the key id (never the key).
  void deny(opcode op, std::uint64_t id, std::string why = {}) {
    const api_key* k = key();
    log(log_level::warn, "key %u (%s): %s refused%s%s", key_id(), k != nullptr ? k->name.c_str() : "no key",
        to_string(op), why.empty() ? "" : ": ", why.c_str());
    reply_error(op, id, errc::not_authorized, std::move(why));
  }

  std::string peer() {
    asio::error_code ec;
    auto ep = sock_.socket().remote_endpoint(ec);
    return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void on_stats(const request& req) {
    response r;
    r.op = opcode::stats;
    r.id = req.id;
    r.stats = srv_.stats();
    send(r);
  }

  // Runs an admin job (verify, an expire of every member, a reload) on a
  // thread of its own, so the io thread keeps serving, and answers when it
  // is done. One job of each kind at a time: another one meanwhile is `busy`.
  template <class Work>
  void off_io(server::impl::job& j, opcode op, std::uint64_t id, const char* busy_message, Work work) {
    std::lock_guard<std::mutex> guard(srv_.jobs_mtx);
    if (j.running.load()) {
      reply_error(op, id, errc::busy, busy_message);
      return;
    }
    if (j.thread.joinable())
      j.thread.join();  // finished: running is false
    j.running.store(true);
    ++jobs_;
    j.thread = std::thread([self = shared_from_this(), &j, op, id, work = std::move(work)] {
      response r = work(*self);
      r.op = op;
      r.id = id;
      if (!r.ok()) {
        self->count_error(op, r.code);
        if (r.message.empty())
          r.message = std::string(default_message(r.code));
      }
      j.running.store(false);
      asio::post(self->ctx_, [self, r = std::move(r)] {
        --self->jobs_;
        self->send(r);
        self->flush();
      });
    });
  }

  void on_verify(const request& req) {
    // Its own read transaction: the engine keeps serving.
    off_io(srv_.verify_job, opcode::verify, req.id, "a verify is already running", [](session& self) {
      auto rep = self.srv_.deps.ledger->verify();
      response r;
      r.verify.valid = rep.ok;
      r.verify.entries = rep.entries;
      r.verify.postings = rep.postings;
      r.verify.accounts = rep.accounts;
      r.verify.members = rep.members;
      r.verify.txn_ids = rep.txn_ids;
      r.verify.problems = std::move(rep.problems);
      return r;
    });
  }

  // A hot backup into a directory of the engine's host (admin keys only):
  // LMDB's compacting copy in one read transaction, off the io thread; the
  // writer keeps committing meanwhile.
  void on_backup(const request& req) {
    log(log_level::info, "key %u: backup into %s", key_id(), req.path.c_str());
    off_io(srv_.backup_job, opcode::backup, req.id, "a backup is already running", [path = req.path](session& self) {
      response r;
      std::string error;
      if (auto b = self.srv_.deps.ledger->backup(path, error)) {
        r.seq = b->seq;
        r.file = b->file;
        r.bytes = b->bytes;
        log(log_level::info, "backup: %s holds the journal up to seq %llu, %llu bytes, in %llu ms", b->file.c_str(),
            static_cast<unsigned long long>(b->seq), static_cast<unsigned long long>(b->bytes),
            static_cast<unsigned long long>(b->micros / 1000));
      } else {
        r.code = errc::invalid_argument;
        r.message = error;
        log(log_level::error, "backup into %s failed: %s", path.c_str(), error.c_str());
      }
      return r;
    });
  }

  // `expire` of every member: a pass of the expiry sweeper, answered when done.
  void on_sweep(const request& req) {
    if (srv_.deps.sweeper == nullptr) {
      reply_error(opcode::expire, req.id, errc::unavailable, "this engine has no expiry sweeper");
      return;
    }
    const std::uint64_t now = srv_.deps.clock->now_us();
    if (req.as_of_us > now) {
      reply_error(opcode::expire, req.id, errc::invalid_argument, "as_of_us is in the future");
      return;
    }
    const std::uint64_t as_of = req.as_of_us != 0 ? req.as_of_us : now;
    off_io(srv_.sweep_job, opcode::expire, req.id, "an expiry sweep is already running", [as_of](session& self) {
      // busy here: the engine's periodic sweep is running
      auto res = self.srv_.deps.sweeper->run(as_of, 0, self.srv_.stopped);
      response r;
      r.code = res.code;
      r.members = res.members;
      r.expired = res.expired;
      return r;
    });
  }

  // `reload`: the program file is validated and, if it holds, becomes the
  // next version. Off the io thread: it waits for the ledger writer.
  void on_reload(const request& req) {
    if (!srv_.deps.reload) {
      reply_error(opcode::reload, req.id, errc::unavailable, "this engine cannot reload its program");
      return;
    }
    log(log_level::info, "key %u: program reload requested", key_id());
    off_io(srv_.reload_job, opcode::reload, req.id, "a reload is already running", [](session& self) {
      response r;
      std::string error;
      r.policy_version = self.srv_.deps.reload(error);
      if (r.policy_version == 0) {
        r.code = errc::invalid_program;
        r.message = std::move(error);
      }
      return r;
    });
  }

  // -- reports (issue 4) --------------------------------------------------------------
  __extension__ using i128 = __int128;

  // The brand a report is about: the one named, or (liability only) every
  // brand. A brand key reads its own brand only, and its own brand is what
  // it gets when it names none. False (answered) on refusal.
  bool report_brands(const request& req, std::vector<const brand_def*>& out) {
    const program& prog = srv_.prog();
    if (!req.brand.empty()) {
      const brand_def* b = prog.find_brand(req.brand);
      if (b == nullptr) {
        reply_error(req.op, req.id, errc::unknown_brand, "no brand '" + req.brand + "' in the program");
        return false;
      }
      if (scope_brand_ != 0 && b->id != scope_brand_) {
        deny(req.op, req.id, "the key may read its own brand only");
        return false;
      }
      out.push_back(b);
      return true;
    }
    for (const auto& b : prog.brands)
      if (scope_brand_ == 0 || b.id == scope_brand_)
        out.push_back(&b);
    return true;
  }

  static bool fits(i128 v, std::int64_t& out) {
    if (v < INT64_MIN || v > INT64_MAX)
      return false;
    out = static_cast<std::int64_t>(v);
    return true;
  }
  // floor(points x num / den), toward minus infinity.
  static i128 value_of(i128 points, const rational& rate) {
    const i128 p = points * static_cast<i128>(rate.num);
    const i128 d = static_cast<i128>(rate.den);
    return p >= 0 ? p / d : -((-p + d - 1) / d);
  }
  // "num/den", as responses show rates and ratios.
  static std::string ratio_text(std::uint64_t num, std::uint64_t den) {
    return std::to_string(num) + "/" + std::to_string(den);
  }
  static i128 debit_normal(std::uint64_t debit, std::uint64_t credit) { return i128(debit) - i128(credit); }
  static i128 credit_normal(std::uint64_t debit, std::uint64_t credit) { return i128(credit) - i128(debit); }

  // `liability`: every brand's points outstanding and their value now, from
  // the account balances (cheap: four accounts a brand), on the io thread.
  void on_liability(const request& req) {
    std::vector<const brand_def*> brands;
    if (!report_brands(req, brands))
      return;
    std::vector<std::uint64_t> ids;
    for (const auto* b : brands)
      for (auto id : ledger::brand_accounts(b->id))
        ids.push_back(id);
    const auto recs = srv_.deps.ledger->load_accounts(ids);
    response r;
    r.op = opcode::liability;
    r.id = req.id;
    for (std::size_t i = 0; i < brands.size(); ++i) {
      const auto* a = &recs[4 * i];
      const i128 issued = debit_normal(a[0].debit_total, a[0].credit_total);
      const i128 redeemed = credit_normal(a[1].debit_total, a[1].credit_total);
      const i128 expired = credit_normal(a[2].debit_total, a[2].credit_total);
      const i128 outstanding = issued - redeemed - expired;
      liability_row row;
      row.brand = brands[i]->code;
      row.cost_per_point = ratio_text(brands[i]->cost_per_point.num, brands[i]->cost_per_point.den);
      if (!fits(issued, row.issued) || !fits(redeemed, row.redeemed) || !fits(expired, row.expired) ||
          !fits(outstanding, row.outstanding) || !fits(value_of(outstanding, brands[i]->cost_per_point), row.liability) ||
          !fits(credit_normal(a[3].debit_total, a[3].credit_total), row.settlement)) {
        reply_error(req.op, req.id, errc::amount_overflow, "brand " + row.brand + ": a total leaves int64");
        return;
      }
      r.liabilities.push_back(std::move(row));
    }
    send(r);
  }

  // The figures `activity` and `report` both answer (activity_result,
  // report_row); each adds the closing liability at the brand's rate now.
  template <class Row>
  static void put_figures(const ledger::brand_figures& x, Row& row) {
    row.issued = x.issued;
    row.refunded = x.refunded;
    row.redeemed = x.redeemed;
    row.reversed = x.reversed;
    row.expired = x.expired;
    row.opening_outstanding = x.opening_outstanding;
    row.closing_outstanding = x.closing_outstanding;
    row.settlement = x.settlement;
  }

  // `activity`: what moved a brand's points and money over a period (a scan
  // of the period's entries, off the io thread).
  void on_activity(const request& req) {
    std::vector<const brand_def*> brands;
    if (!report_brands(req, brands))
      return;
    if (brands.size() != 1) {
      reply_error(req.op, req.id, errc::missing_field, "activity needs a brand");
      return;
    }
    const brand_def b = *brands[0];
    off_io(srv_.report_job, req.op, req.id, "a report is already running", [b, req](session& self) {
      response r;
      const auto acc = ledger::brand_accounts(b.id);
      std::string error;
      auto f = self.srv_.deps.ledger->account_flows({acc.begin(), acc.end()}, req.from_us, req.to_us, error);
      if (!f) {
        r.code = errc::invalid_argument;
        r.message = std::move(error);
        return r;
      }
      ledger::brand_figures x;
      auto& a = r.activity;
      a.brand = b.code;
      a.from_us = f->period.from_us;
      a.to_us = f->period.to_us;
      a.first_seq = f->period.first_seq;
      a.last_seq = f->period.last_seq;
      if (!ledger::brand_figures_of(f->accounts.data(), x) ||
          !fits(value_of(x.closing_outstanding, b.cost_per_point), a.closing_liability)) {
        r.code = errc::amount_overflow;
        r.message = "a total of brand " + b.code + " leaves int64";
        return r;
      }
      put_figures(x, a);
      return r;
    });
  }

  // `report`: KPIs of the brands the key may read over a period (a scan of
  // the period, of the members table and of the members' recent history,
  // off the io thread; docs/OPERATIONS.md, "Reports"). The brands and tier
  // names are copied now: a reload meanwhile does not change the answer.
  void on_report(const request& req) {
    std::vector<const brand_def*> brands;
    if (!report_brands(req, brands))
      return;
    ledger::report_request q;
    std::vector<brand_def> defs;
    for (const auto* b : brands) {
      q.brands.push_back(b->id);
      defs.push_back(*b);
    }
    const std::uint32_t days = req.active_days != 0 ? req.active_days : report_active_days_default;
    q.from_us = req.from_us;
    q.to_us = req.to_us;
    q.active_us = std::uint64_t{days} * us_per_day;
    q.top = req.top != 0 ? req.top : report_top_default;
    std::vector<std::string> tiers;
    for (const auto& t : srv_.prog().tiers)
      tiers.push_back(t.name);
    off_io(srv_.report_job, req.op, req.id, "a report is already running",
           [q = std::move(q), defs = std::move(defs), tiers = std::move(tiers), days](session& self) {
             response r;
             errc code = errc::ok;
             std::string error;
             auto rep = self.srv_.deps.ledger->report(q, code, error);
             if (!rep) {
               r.code = code;
               r.message = std::move(error);
               return r;
             }
             auto& out = r.report;
             out.from_us = rep->period.from_us;
             out.to_us = rep->period.to_us;
             out.first_seq = rep->period.first_seq;
             out.last_seq = rep->period.last_seq;
             out.active_days = days;
             out.active_from_us = rep->active_from_us;
             for (std::size_t i = 0; i < defs.size(); ++i) {
               out.brands.emplace_back();
               if (!report_row_of(rep->brands[i], defs[i], tiers, out.brands.back())) {
                 r.code = errc::amount_overflow;
                 r.message = "a figure of brand " + defs[i].code + " leaves int64";
                 return r;
               }
             }
             return r;
           });
  }

  // A brand's row of a report; false if a figure leaves int64.
  static bool report_row_of(const ledger::brand_report& b, const brand_def& def,
                            const std::vector<std::string>& tier_names, report_row& row) {
    const auto& x = b.figures;
    row.brand = def.code;
    put_figures(x, row);
    row.cost_per_point = ratio_text(def.cost_per_point.num, def.cost_per_point.den);
    row.settlement_closing = x.settlement_closing;
    // redeemed and issued are >= 0 (credits, debits); x 10^4 stays below 2^77.
    row.redemption_rate = ratio_text(static_cast<std::uint64_t>(x.redeemed), static_cast<std::uint64_t>(x.issued));
    row.members = b.members;
    row.active_members = b.active_members;
    if (!fits(value_of(x.closing_outstanding, def.cost_per_point), row.closing_liability) ||
        !fits(x.issued == 0 ? 0 : i128{x.redeemed} * 10'000 / x.issued, row.redemption_rate_bp) ||
        !fits(b.members == 0 ? 0 : i128{b.active_members} * 10'000 / b.members, row.active_rate_bp))
      return false;
    // Every tier of the program, then any index it no longer has (a reload removed tiers).
    for (std::size_t t = 0; t < tier_names.size(); ++t)
      row.tiers.push_back({tier_names[t], 0});
    for (const auto& [index, count] : b.tiers) {
      if (index >= tier_names.size())
        row.tiers.push_back({"#" + std::to_string(index), 0});
      (index < tier_names.size() ? row.tiers[index] : row.tiers.back()).members = count;
    }
    for (const auto& e : b.top)
      row.top.push_back({e.member, e.points});
    return true;
  }

  // `settlement`: a brand's or a partner's statement over a period (a scan,
  // off the io thread). A brand key reads its own brand's, a partner key its
  // own partner's.
  void on_settlement(const request& req) {
    const program& prog = srv_.prog();
    ledger::party_kind kind = ledger::party_kind::brand;
    std::uint32_t party = 0;
    if (req.brand.empty() == req.partner.empty()) {
      reply_error(req.op, req.id, errc::invalid_argument, "settlement needs exactly one of brand and partner");
      return;
    }
    if (!req.partner.empty()) {
      const partner_def* p = prog.find_partner(req.partner);
      if (p == nullptr) {
        reply_error(req.op, req.id, errc::unknown_partner, "no partner '" + req.partner + "' in the program");
        return;
      }
      kind = ledger::party_kind::partner;
      party = p->id;
    } else {
      std::vector<const brand_def*> brands;
      if (!report_brands(req, brands))
        return;
      party = brands[0]->id;
    }
    const auto own_partner = scope_partner();
    if ((scope_brand_ != 0 && kind != ledger::party_kind::brand) ||
        (own_partner != partner_none && (kind != ledger::party_kind::partner || party != own_partner))) {
      deny(req.op, req.id, "the key may read its own statement only");
      return;
    }
    const std::size_t limit = req.limit == 0 ? statement_limit_default : req.limit;
    off_io(srv_.report_job, req.op, req.id, "a report is already running",
           [kind, party, limit, req](session& self) {
             response r;
             std::string error;
             auto st = self.srv_.deps.ledger->settlement(kind, party, req.from_us, req.to_us, req.after, limit, error);
             if (!st) {
               r.code = errc::invalid_argument;
               r.message = std::move(error);
               return r;
             }
             self.fill_statement(*st, r.statement);
             return r;
           });
  }

  void fill_statement(const ledger::statement& st, statement_result& out) const {
    out.party = party_name(st.kind, st.party);
    out.from_us = st.period.from_us;
    out.to_us = st.period.to_us;
    out.first_seq = st.period.first_seq;
    out.last_seq = st.period.last_seq;
    out.opening = st.opening;
    out.closing = st.closing;
    out.net = st.due_total;
    out.points = st.points_total;
    out.line_count = st.line_count;
    out.next_after = st.next_after;
    for (const auto& l : st.lines) {
      const auto& d = l.settle;
      const bool payee = ledger::settle_payee_kind(d.aux) == st.kind && d.id == st.party;
      statement_row row;
      row.seq = l.seq;
      row.committed_at_us = l.committed_at_us;
      row.member = l.member_id;
      row.kind = entry_kind_name(l.entry_kind);
      row.txn = l.txn_id;
      row.counterparty = payee ? party_name(ledger::settle_payer_kind(d.aux), d.brand)
                               : party_name(ledger::settle_payee_kind(d.aux), d.id);
      row.due = l.due;
      row.points = l.due < 0 ? -d.a : d.a;
      row.rate = rate_text(d.c);
      row.reversal = (d.flags & ledger::detail_reversal) != 0;
      out.lines.push_back(std::move(row));
    }
  }

  // -- subscribe (issue 7) -----------------------------------------------------------
  // The connection streams the events of committed entries from `from`
  // (docs/PROTOCOL.md, "subscribe"). Events are read from the ledger, never
  // queued in memory: pump() reads a chunk only while the connection's
  // output is below limits::stream_output_low_bytes, and again when a write
  // completes or a commit arrives, so a slow subscriber falls behind in the
  // journal and catches up from it, and ingestion never waits for it.
  void on_subscribe(const request& req) {
    if (sub_.active) {
      reply_error(req.op, req.id, errc::invalid_argument, "this connection has a subscription already");
      return;
    }
    std::uint32_t brand = scope_brand_;
    if (!req.brand.empty()) {
      const brand_def* b = srv_.prog().find_brand(req.brand);
      if (b == nullptr) {
        reply_error(req.op, req.id, errc::unknown_brand, "no brand '" + req.brand + "' in the program");
        return;
      }
      if (scope_brand_ != 0 && b->id != scope_brand_) {
        deny(req.op, req.id, "the key may read its own brand only");
        return;
      }
      brand = b->id;
    }
    const std::uint64_t newest = srv_.deps.ledger->last_seq();
    if (req.from_seq > newest + 1) {
      reply_error(req.op, req.id, errc::invalid_argument,
                  "field 'from' is past the newest entry + 1 (" + std::to_string(newest + 1) + ")");
      return;
    }
    asio::error_code ec;
    sock_.socket().set_option(asio::socket_base::send_buffer_size(limits::stream_socket_send_bytes), ec);
    sub_.active = true;
    sub_.id = req.id;
    sub_.next = req.from_seq != 0 ? req.from_seq : newest + 1;
    sub_.types = req.event_types != 0 ? req.event_types : event_types_all;
    sub_.consent = req.consent_filter;
    sub_.brand = brand;
    srv_.subscriptions.fetch_add(1);
    {
      std::lock_guard<std::mutex> lk(srv_.subscribers_mtx);
      std::erase_if(srv_.subscribers, [](auto& w) { return w.expired(); });
      srv_.subscribers.push_back(shared_from_this());
    }
    log(log_level::info, "key %u: %s subscribed from seq %llu", key_id(), peer().c_str(),
        static_cast<unsigned long long>(sub_.next));
    send_progress();  // the answer: the first frame of the stream, without events
    heartbeat();
    pump();
  }

  // Reads one chunk of the journal into one events frame, then yields the
  // io thread (the next chunk is posted) while there is more and room.
  void pump() {
    sub_.pump_posted = false;
    if (closed_ || !sub_.active || close_after_write_ || unsent_bytes() >= limits::stream_output_low_bytes)
      return;  // a write completion calls again
    std::vector<ledger::ledger::stream_entry> chunk;
    std::string error;
    if (!srv_.deps.ledger->read_stream(sub_.next, stream_entries_per_frame_max, chunk, error)) {
      log(log_level::error, "event stream of %s: %s; subscription ended", peer().c_str(), error.c_str());
      reply_error(opcode::subscribe, sub_.id, errc::internal_error, "the stream could not read the ledger: " + error);
      close_after_write_ = true;
      flush();
      return;
    }
    if (chunk.empty()) {
      // Caught up. Entries the filters left out moved the resume point
      // past the last events frame: say where it is now, once.
      if (sub_.reported < sub_.next)
        send_progress();
      // The next commit wakes us. A commit between the read and here would
      // have found the flag clear, so look once more.
      sub_waiting_.store(true);
      if (srv_.deps.ledger->last_seq() >= sub_.next && sub_waiting_.exchange(false))
        post_pump();
      return;
    }
    response r;
    r.op = opcode::subscribe;
    r.id = sub_.id;
    for (const auto& se : chunk)
      events_of(se, r.events);
    sub_.next = chunk.back().e.header.seq + 1;
    if (!r.events.empty()) {
      r.seq = srv_.deps.ledger->last_seq();
      r.next = sub_.next;
      srv_.stream_events.fetch_add(r.events.size(), std::memory_order_relaxed);
      send(r);
      sub_.reported = sub_.next;
      sub_.last_frame = steady::now();
      flush();
    }
    post_pump();
  }

  // An events frame without events: where the stream stands.
  void send_progress() {
    response r;
    r.op = opcode::subscribe;
    r.id = sub_.id;
    r.seq = srv_.deps.ledger->last_seq();
    r.next = sub_.next;
    send(r);
    sub_.reported = sub_.next;
    sub_.last_frame = steady::now();
    flush();
  }

  // Output not yet taken by the socket: queued, and the rest of the write
  // under way.
  [[nodiscard]] std::size_t unsent_bytes() const { return out_.size() + (writing_ ? wbuf_.size() - wpos_ : 0); }

  void post_pump() {
    if (sub_.pump_posted)
      return;
    sub_.pump_posted = true;
    asio::post(ctx_, [self = shared_from_this()] { self->pump(); });
  }

  // An empty events frame after limits::stream_heartbeat_ms without one.
  void heartbeat() {
    heartbeat_timer_.expires_after(std::chrono::milliseconds(limits::stream_heartbeat_ms));
    heartbeat_timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (ec || self->closed_ || !self->sub_.active)
        return;
      const auto quiet = std::chrono::milliseconds(limits::stream_heartbeat_ms);
      if (steady::now() >= self->sub_.last_frame + quiet && self->out_.empty())
        self->send_progress();
      self->heartbeat();
    });
  }

  // The text of an entry's note records (records.hpp detail_kind::note).
  static std::string note_text(const std::vector<ledger::entry_detail>& details) {
    std::string text;
    for (const auto& d : details) {
      if (d.kind != static_cast<std::uint16_t>(ledger::detail_kind::note) || d.id != text.size() || d.aux > 4096)
        continue;
      char buf[28];
      std::memcpy(buf, &d.brand, 4);
      std::memcpy(buf + 4, &d.a, 8);
      std::memcpy(buf + 12, &d.b, 8);
      std::memcpy(buf + 20, &d.c, 8);
      text.append(buf, std::min<std::size_t>(28, d.aux - d.id));
    }
    return text;
  }

  // The events of one entry that pass the subscription's filters: the
  // entry's own event, then tier_changed if the member's tier moved.
  void events_of(const ledger::ledger::stream_entry& se, std::vector<stream_event>& out) const {
    using ek = ledger::entry_kind;
    const auto& e = se.e;
    const auto& h = e.header;
    if ((sub_.brand != 0 && h.brand_id != sub_.brand) || (sub_.consent != 0 && (se.consents & sub_.consent) == 0))
      return;
    const program& prog = srv_.prog();
    auto tier_name = [&](std::uint32_t t) { return t < prog.tiers.size() ? prog.tiers[t].name : std::to_string(t); };
    stream_event ev;
    ev.seq = h.seq;
    ev.entry = entry_kind_name(h.kind);
    ev.member = h.member_id;
    const brand_def* b = prog.find_brand(h.brand_id);
    ev.brand = b != nullptr ? b->code : std::to_string(h.brand_id);
    ev.txn = e.txn_id;
    ev.points = points_of(e, h.member_id);
    ev.balance = h.balance_after;
    ev.occurred_at_us = h.occurred_at_us;
    ev.committed_at_us = h.committed_at_us;
    ev.consents = se.consents;
    ev.tier = tier_name(h.tier_after);
    ev.counterparty = h.counterparty_id;
    if (h.partner_id != 0)
      ev.partner = partner_code(h.partner_id);
    ev.amount = h.amount_minor;
    ev.ref = h.ref_seq;
    int type = -1;  // index into event_type_names
    auto detail_of = [&](ledger::detail_kind k) -> const ledger::entry_detail* {
      for (const auto& d : e.details)
        if (d.kind == static_cast<std::uint16_t>(k))
          return &d;
      return nullptr;
    };
    switch (static_cast<ek>(h.kind)) {
      case ek::enroll: type = 0; break;
      case ek::earn:
      case ek::event:
      case ek::partner_earn: type = 1; break;
      case ek::capture:
        if (const auto* d = detail_of(ledger::detail_kind::hold_close))
          ev.hold = d->id;
        type = 2;
        break;
      case ek::redeem:
      case ek::redeem_reward:
      case ek::partner_burn: type = 2; break;
      case ek::refund: type = 3; break;
      case ek::reverse_redemption: type = 4; break;
      case ek::adjust: type = 5; break;
      case ek::transfer: type = 6; break;
      case ek::expire: type = 7; break;
      case ek::hold:
        if (const auto* d = detail_of(ledger::detail_kind::hold_open))
          ev.hold = d->id;
        type = 8;
        break;
      case ek::release:
        if (const auto* d = detail_of(ledger::detail_kind::hold_close)) {
          ev.hold = d->id;
          type = d->aux == static_cast<std::uint32_t>(ledger::hold_close_reason::expired) ? 10 : 9;
        } else {
          type = 9;
        }
        break;
      case ek::tier_review: break;  // its event, if any, is tier_changed
      case ek::consent:
        if (const auto* d = detail_of(ledger::detail_kind::consent))
          ev.changed = d->id;
        ev.source = note_text(e.details);
        type = 12;
        break;
      case ek::expiry_notice:
        ev.points = h.points;
        for (const auto& d : e.details)
          if (d.kind == static_cast<std::uint16_t>(ledger::detail_kind::expiry_notice)) {
            const brand_def* lb = prog.find_brand(d.brand);
            ev.expiring.push_back({lb != nullptr ? lb->code : std::to_string(d.brand), d.a, d.b});
          }
        type = 13;
        break;
      case ek::link_alias: type = 14; break;
    }
    const bool tier_moved = se.has_tier_before && se.tier_before != h.tier_after;
    if (type >= 0 && (sub_.types & (1u << type)) != 0) {
      ev.type = std::string(event_type_names[static_cast<std::size_t>(type)]);
      if (tier_moved && (sub_.types & (1u << 11)) != 0)
        out.push_back(ev);  // a copy: the tier event below starts from it
      else
        out.push_back(std::move(ev));
    }
    if (tier_moved && (sub_.types & (1u << 11)) != 0) {
      ev.type = std::string(event_type_names[11]);
      ev.previous_tier = tier_name(se.tier_before);
      out.push_back(std::move(ev));
    }
  }

  void on_batch(request& req) {
    std::uint32_t n = 0;
    for (auto& sub : req.ops)
      if (sub.error == errc::ok)
        ++n;
    if (!admit(n)) {
      reply_error(opcode::batch, req.id, errc::overloaded, {});
      return;
    }
    auto bi = alloc_batch();
    auto& b = batches_[bi];
    b.id = req.id;
    b.results.assign(req.ops.size(), response{});
    b.remaining = static_cast<std::uint32_t>(req.ops.size());
    for (std::uint32_t i = 0; i < req.ops.size(); ++i) {
      auto& sub = req.ops[i];
      if (sub.error != errc::ok) {
        finish_in_batch(bi, i, error_response(sub.op, sub.id, sub.error, sub.error_message));
        continue;
      }
      route(sub, static_cast<std::int32_t>(bi), i);
    }
  }

  bool admit(std::uint32_t n) {
    if (n == 0)
      return true;
    if (inflight_ + n > srv_.settings.inflight_per_connection_max)
      return false;
    auto total = srv_.inflight.fetch_add(n) + n;
    if (total > srv_.settings.inflight_total_max) {
      srv_.inflight.fetch_sub(n);
      return false;
    }
    inflight_ += n;
    return true;
  }

  void release_one() {
    --inflight_;
    srv_.inflight.fetch_sub(1, std::memory_order_relaxed);
  }

  // Sends one admitted member request to its actor; answers the ones the
  // server can answer itself (lookup, history, and every refusal that needs
  // no member state) at once.
  void route(const request& req, std::int32_t batch, std::uint32_t index) {
    const program& prog = srv_.prog();
    auto refuse = [&](errc code, std::string msg) {
      release_one();
      deliver_now(req, batch, index, code, std::move(msg));
    };
    if (!allowed(req.op)) {  // inside a batch; single requests were checked on arrival
      log(log_level::warn, "key %u: %s in a batch refused", key_id(), to_string(req.op));
      return refuse(errc::not_authorized, {});
    }
    if (report_op(req.op))
      return refuse(errc::invalid_argument, std::string(to_string(req.op)) + " cannot be part of a batch");
    std::uint64_t member = req.member;
    if (!req.alias.empty() && req.op != opcode::link_alias) {
      auto m = srv_.deps.ledger->find_alias(req.alias);
      if (!m)
        return refuse(errc::unknown_alias, {});
      member = *m;
    }
    if (scope_brand_ != 0 && (req.op == opcode::lookup || req.op == opcode::history)) {
      auto ms = srv_.deps.ledger->load_member(member);
      if (ms && ms->record.brand_id != scope_brand_) {
        log(log_level::warn, "key %u: %s of member %llu of another brand refused", key_id(), to_string(req.op),
            static_cast<unsigned long long>(member));
        return refuse(errc::not_authorized, "the key may read members of its brand only");
      }
    }
    if (req.op == opcode::explain)
      return explain(req, batch, index);
    if (req.op == opcode::lookup) {
      response r;
      r.op = req.op;
      r.id = req.id;
      r.member = member;
      release_one();
      return deliver(batch, index, std::move(r));
    }
    if (req.op == opcode::history)
      return history(req, member, batch, index);
    if (req.op == opcode::expire && !req.has_member && req.alias.empty())
      return refuse(errc::invalid_argument, "an expire of every member cannot be part of a batch");
    actors::member_request mr;
    mr.kind = kind_of(req.op);
    mr.member = member;
    if (!req.brand.empty()) {
      const brand_def* b = prog.find_brand(req.brand);
      if (b == nullptr)
        return refuse(errc::unknown_brand, "no brand '" + req.brand + "' in the program");
      mr.brand_id = b->id;
    }
    if ((req.op == opcode::earn || req.op == opcode::quote) && req.currency != prog.currency)
      return refuse(errc::currency_mismatch,
                    "currency '" + req.currency + "' is not the program currency '" + prog.currency + "'");
    if (req.op == opcode::redeem_reward) {
      const reward_def* w = prog.find_reward(req.reward);
      if (w == nullptr)
        return refuse(errc::unknown_reward, "no reward '" + req.reward + "' in the catalog");
      mr.reward_id = w->id;
    }
    const partner_def* partner = nullptr;
    if (partner_op(req.op)) {
      partner = prog.find_partner(req.partner);
      if (partner == nullptr)
        return refuse(errc::unknown_partner, "no partner '" + req.partner + "' in the program");
      if (const auto own = scope_partner(); own != partner_none && own != partner->id) {
        log(log_level::warn, "key %u: %s for partner %s refused", key_id(), to_string(req.op), req.partner.c_str());
        return refuse(errc::not_authorized, "the key may act for its own partner only");
      }
      mr.partner_id = partner->id;
    }
    if (req.op == opcode::transfer) {
      if (req.to == member)
        return refuse(errc::same_member, {});
      if (!srv_.deps.ledger->load_member(req.to))
        return refuse(errc::unknown_member, "the receiving member " + std::to_string(req.to) + " is not enrolled");
    }
    mr.txn_bytes = static_cast<std::uint8_t>(req.txn.size());
    std::memcpy(mr.txn.data(), req.txn.data(), req.txn.size());
    mr.amount_minor = req.amount;
    mr.occurred_at_us = req.occurred_at_us;
    mr.points = req.points;
    mr.items.reserve(req.items.size());
    for (const auto& it : req.items)
      mr.items.push_back({it.sku, it.category, it.qty, it.amount});
    mr.channel = req.channel;
    mr.store = req.store;
    mr.event_kind = req.event;
    mr.ttl_s = req.ttl_s;
    mr.hold_id = static_cast<std::uint32_t>(std::min<std::uint64_t>(req.hold, UINT32_MAX));
    mr.ref = req.ref;
    mr.reason = req.reason;
    mr.to = req.to;
    mr.alias = req.op == opcode::link_alias ? req.alias : std::string{};
    mr.as_of_us = req.as_of_us;
    mr.key_id = key_id();
    mr.scope_brand = scope_brand_;
    mr.scope_partner = scope_partner();
    mr.consent_mask = req.consent_mask;
    mr.consent_values = req.consent_values;
    mr.source = req.source;
    mr.hash = content_hash_of(req, mr);
    auto tag = alloc_pending();
    auto& p = pending_[tag];
    p.id = req.id;
    p.op = req.op;
    p.member = member;
    p.batch = batch;
    p.index = index;
    p.partner = partner != nullptr ? static_cast<std::uint16_t>(partner->id) : 0;
    mr.reply = std::make_shared<actors::reply_guard>(shared_from_this(), tag);
    if (partner != nullptr) {
      // Through the partner's actor (actors/partner.hpp). A partner added by
      // a reload gets its actor at the reload, before anyone can name it.
      const auto id = partner->id;
      if (!srv_.deps.ctx->partners->send(id, std::move(mr)))
        log(log_level::error, "partner %u has no actor; its request was answered unavailable", id);
      return;
    }
    if (req.op == opcode::enroll) {
      srv_.deps.dir->enroll(member, std::move(mr));  // false: shutting down, answered `unavailable`
      return;
    }
    if (!srv_.deps.dir->send(member, caf::make_message(std::move(mr)))) {
      // Shutting down: the guard already answered `unavailable` when the
      // message was dropped.
    }
  }

  // The canonical content of a request, for txn_id_conflict: every field
  // that can change what it posts, in a fixed order.
  static std::uint64_t content_hash_of(const request& req, const actors::member_request& mr) {
    actors::content_hasher h(mr.kind);
    h.add(mr.member).add(std::uint64_t{mr.brand_id}).add(req.amount).add(std::string_view(req.currency));
    h.add(req.occurred_at_us).add(req.points);
    h.add(static_cast<std::uint64_t>(req.items.size()));
    for (const auto& it : req.items)
      h.add(std::string_view(it.sku)).add(std::string_view(it.category)).add(it.qty).add(it.amount);
    h.add(std::string_view(req.channel)).add(std::string_view(req.store)).add(std::string_view(req.event));
    h.add(req.ttl_s).add(req.hold).add(std::string_view(req.reward)).add(std::string_view(req.ref));
    h.add(std::string_view(req.reason)).add(req.to).add(std::string_view(mr.alias));
    if (mr.kind == actors::request_kind::partner_earn || mr.kind == actors::request_kind::partner_burn)
      h.add(std::string_view(req.partner));  // appended for the kinds that have it: older hashes stay as they were
    if (mr.kind == actors::request_kind::consent)
      h.add(std::uint64_t{req.consent_mask}).add(std::uint64_t{req.consent_values}).add(std::string_view(req.source));
    return h.value();
  }

  // The journal entry a txn id posted, as an auditor reads it: who sent it
  // (key), under which program version, which rules made its points, which
  // accounts it moved.
  void explain(const request& req, std::int32_t batch, std::uint32_t index) {
    release_one();
    auto seq = srv_.deps.ledger->find_txn(req.txn);
    auto e = seq ? srv_.deps.ledger->read_entry(*seq) : std::nullopt;
    if (!e) {
      deliver_now(req, batch, index, errc::unknown_txn, "no entry has txn id '" + req.txn + "'");
      return;
    }
    if (scope_brand_ != 0 && e->header.brand_id != scope_brand_) {
      log(log_level::warn, "key %u: explain of an entry of another brand refused", key_id());
      deliver_now(req, batch, index, errc::not_authorized, "the key may read entries of its brand only");
      return;
    }
    const program& prog = srv_.prog();
    response r;
    r.op = opcode::explain;
    r.id = req.id;
    r.member = e->header.member_id;
    r.seq = e->header.seq;
    r.entries.push_back(entry_view(*e, e->header.member_id));
    r.key_id = e->header.key_id;
    for (const auto& k : srv_.settings.keys)
      if (k.id == r.key_id)
        r.key_name = k.name;
    r.policy_version = e->header.policy_version;
    r.moves = moves_of(*e);
    lines_and_settlements(prog, *e, r.lines, r.settlements);
    if (e->header.partner_id != 0)
      r.partner = partner_code(e->header.partner_id);
    deliver(batch, index, std::move(r));
  }

  // An entry's postings, accounts named as explain names them.
  [[nodiscard]] std::vector<move> moves_of(const ledger::ledger::entry& e) const {
    std::vector<move> out;
    out.reserve(e.postings.size());
    for (const auto& p : e.postings) {
      move mv;
      mv.account = account_name(p.account);
      mv.side = p.side == static_cast<std::uint32_t>(ledger::posting_side::debit) ? "debit" : "credit";
      mv.amount = static_cast<std::int64_t>(p.amount);
      out.push_back(std::move(mv));
    }
    return out;
  }
  // An entry's rule lines and settle records, in the order it holds them.
  void lines_and_settlements(const program& prog, const ledger::ledger::entry& e, std::vector<line>& lines,
                             std::vector<settlement_move>& settlements) const {
    for (const auto& d : e.details) {
      if (d.kind == static_cast<std::uint16_t>(ledger::detail_kind::rule_line))
        lines.push_back(line_of(prog, d));
      else if (d.kind == static_cast<std::uint16_t>(ledger::detail_kind::settle))
        settlements.push_back(settlement_of(d));
    }
  }

  // `journal`: a page of every member's committed entries in seq order, for
  // finance exports (admin and read keys). On the io thread, like history:
  // at most journal_limit_max entries read in one read transaction.
  void on_journal(const request& req) {
    const std::size_t limit = req.limit == 0 ? journal_limit_default : req.limit;
    std::string error;
    auto page = srv_.deps.ledger->read_journal(req.from_seq == 0 ? 1 : req.from_seq, limit, error);
    if (!page) {
      log(log_level::error, "journal from seq %llu: %s", static_cast<unsigned long long>(req.from_seq),
          error.c_str());
      reply_error(opcode::journal, req.id, errc::internal_error, std::move(error));
      return;
    }
    const program& prog = srv_.prog();
    response r;
    r.op = opcode::journal;
    r.id = req.id;
    r.last_seq = page->last_seq;
    std::size_t bytes = 0;
    for (const auto& e : page->entries) {
      journal_entry j;
      j.entry = entry_view(e, e.header.member_id);
      j.member = e.header.member_id;
      j.key_id = e.header.key_id;
      j.policy_version = e.header.policy_version;
      j.moves = moves_of(e);
      lines_and_settlements(prog, e, j.lines, j.settlements);
      // Cut the page before an entry that would take it past the bound; the
      // first entry always fits (journal_page_bytes_max).
      const std::size_t n = journal_entry_bytes(j);
      if (!r.journal.empty() && bytes + n > journal_page_bytes_max)
        break;
      bytes += n;
      r.journal.push_back(std::move(j));
    }
    if (!r.journal.empty() && r.journal.back().entry.seq < r.last_seq)
      r.next = r.journal.back().entry.seq + 1;
    send(r);
  }

  // "brand:CODE" / "partner:CODE", or the id of one no longer in the program.
  [[nodiscard]] std::string party_name(ledger::party_kind kind, std::uint32_t id) const {
    if (kind == ledger::party_kind::brand) {
      const brand_def* b = srv_.prog().find_brand(id);
      return "brand:" + (b != nullptr ? b->code : std::to_string(id));
    }
    return "partner:" + partner_code(id);
  }
  [[nodiscard]] std::string partner_code(std::uint32_t id) const {
    const partner_def* p = srv_.prog().find_partner(id);
    return p != nullptr ? p->code : std::to_string(id);
  }
  static std::string rate_text(std::uint64_t packed) {
    return std::to_string(packed >> 32) + "/" + std::to_string(packed & 0xffffffffu);
  }
  [[nodiscard]] settlement_move settlement_of(const ledger::entry_detail& d) const {
    settlement_move m;
    m.payer = party_name(ledger::settle_payer_kind(d.aux), d.brand);
    m.payee = party_name(ledger::settle_payee_kind(d.aux), d.id);
    m.points = d.a;
    m.amount = static_cast<std::int64_t>(d.b);
    m.rate = rate_text(d.c);
    m.reversal = (d.flags & ledger::detail_reversal) != 0;
    return m;
  }

  std::string account_name(std::uint64_t account) const {
    const auto entity = ledger::entity_of(account);
    auto brand = [&] {
      const brand_def* b = srv_.prog().find_brand(static_cast<std::uint32_t>(entity));
      return b != nullptr ? b->code : std::to_string(entity);
    };
    const auto partner = [&] { return partner_code(static_cast<std::uint32_t>(entity)); };
    switch (ledger::kind_of(account)) {
      case ledger::account_kind::member_points: return "member:" + std::to_string(entity);
      case ledger::account_kind::brand_issued: return "brand_issued:" + brand();
      case ledger::account_kind::brand_redeemed: return "brand_redeemed:" + brand();
      case ledger::account_kind::brand_expired: return "brand_expired:" + brand();
      case ledger::account_kind::brand_settlement: return "brand_settlement:" + brand();
      case ledger::account_kind::partner_receivable: return "partner_receivable:" + partner();
      case ledger::account_kind::partner_payable: return "partner_payable:" + partner();
    }
    return "account:" + std::to_string(account);
  }

  static line line_of(const program& prog, const ledger::entry_detail& d) {
    line l;
    l.kind = line_kind_name(d.aux);
    if (d.aux == static_cast<std::uint32_t>(ledger::rule_line_kind::rule))
      if (const earn_rule* rule = prog.find_rule(d.id))
        l.rule = rule->code;
    if (d.aux == static_cast<std::uint32_t>(ledger::rule_line_kind::partner)) {
      const partner_def* p = prog.find_partner(d.id);
      l.rule = p != nullptr ? p->code : std::to_string(d.id);
    }
    l.points = d.a;
    l.amount = static_cast<std::int64_t>(d.b);
    return l;
  }

  // The signed change of `member`'s points account an entry made.
  static std::int64_t points_of(const ledger::ledger::entry& e, std::uint64_t member) {
    const auto acct = ledger::account_id(ledger::account_kind::member_points, member);
    std::int64_t points = 0;
    for (const auto& p : e.postings)
      if (p.account == acct)
        points += p.side == static_cast<std::uint32_t>(ledger::posting_side::credit)
                    ? static_cast<std::int64_t>(p.amount)
                    : -static_cast<std::int64_t>(p.amount);
    return points;
  }

  history_entry entry_view(const ledger::ledger::entry& e, std::uint64_t member) const {
    history_entry h;
    h.seq = e.header.seq;
    h.kind = entry_kind_name(e.header.kind);
    h.txn = e.txn_id;
    h.occurred_at_us = e.header.occurred_at_us;
    h.committed_at_us = e.header.committed_at_us;
    h.points = points_of(e, member);
    h.balance = e.header.member_id == member ? e.header.balance_after : 0;
    h.amount = e.header.amount_minor;
    if (const brand_def* b = srv_.prog().find_brand(e.header.brand_id))
      h.brand = b->code;
    h.ref = e.header.ref_seq;
    h.counterparty = e.header.member_id == member ? e.header.counterparty_id : e.header.member_id;
    if (e.header.partner_id != 0)
      h.partner = partner_code(e.header.partner_id);
    return h;
  }

  void history(const request& req, std::uint64_t member, std::int32_t batch, std::uint32_t index) {
    release_one();
    if (!srv_.deps.ledger->load_member(member)) {
      deliver_now(req, batch, index, errc::unknown_member, {});
      return;
    }
    const std::size_t limit = req.limit == 0 ? 20 : req.limit;
    auto page = srv_.deps.ledger->history(member, req.before, limit);
    if (page.empty() && req.before != 0) {
      deliver_now(req, batch, index, errc::invalid_argument,
                  "before " + std::to_string(req.before) + " is not one of this member's entries");
      return;
    }
    response r;
    r.op = opcode::history;
    r.id = req.id;
    r.member = member;
    for (const auto& e : page)
      r.entries.push_back(entry_view(e, member));
    if (page.size() == limit)
      r.next_before = page.back().header.seq;
    deliver(batch, index, std::move(r));
  }

  void deliver(std::int32_t batch, std::uint32_t index, response r) {
    if (batch >= 0)
      finish_in_batch(static_cast<std::uint32_t>(batch), index, std::move(r));
    else
      send(r);
  }

  void deliver_now(const request& req, std::int32_t batch, std::uint32_t index, errc code, std::string msg) {
    auto r = error_response(req.op, req.id, code, std::move(msg));
    if (batch >= 0)
      finish_in_batch(static_cast<std::uint32_t>(batch), index, std::move(r));
    else
      send(r);
  }

  // -- outcomes ----------------------------------------------------------------------
  void on_outcomes(std::vector<ledger::outcome>& outcomes) {
    for (auto& o : outcomes) {
      release_one();
      auto p = pending_[o.tag];
      free_pending(static_cast<std::uint32_t>(o.tag));
      if (closed_)
        continue;
      auto r = to_response(p, o);
      if (p.batch >= 0)
        finish_in_batch(static_cast<std::uint32_t>(p.batch), p.index, std::move(r));
      else
        send(r);
    }
    flush();
  }

  response to_response(const pending& p, const ledger::outcome& o) {
    const auto* note = static_cast<const actors::answer_note*>(o.note.get());
    if (o.code != errc::ok)
      return error_response(p.op, p.id, o.code, note != nullptr ? note->message : std::string{});
    const program& prog = srv_.prog();
    auto tier_name = [&](std::uint32_t t) { return t < prog.tiers.size() ? prog.tiers[t].name : std::string{}; };
    response r;
    r.op = p.op;
    r.id = p.id;
    r.member = p.member;
    r.seq = o.seq;
    r.points = o.points;
    r.balance = o.balance;
    r.lifetime = o.lifetime;
    r.replayed = o.replayed;
    if (o.tier < prog.tiers.size())
      r.tier = prog.tiers[o.tier].name;
    if (note != nullptr && note->has_balance) {
      const auto& b = note->balance;
      r.available = b.view.available;
      r.pending = b.view.pending;
      r.held = b.view.held;
      r.debt = b.debt;
      r.lifetime = b.lifetime;
      r.tier = tier_name(b.tier);
      r.next_tier = tier_name(b.tier + 1);
      r.qualifying = b.qualifying;
      r.to_next_tier = b.to_next_tier;
      r.next_expiry_points = b.view.next_expiry_points;
      r.next_expiry_at_us = b.view.next_expiry_at_us;
      r.consents = b.consents;
    }
    if (note != nullptr && note->has_quote) {
      const auto& q = note->quote;
      r.balance_after = q.balance_after;
      r.tier_after = tier_name(q.tier_after);
      r.next_tier = tier_name(q.tier_after + 1);
      r.qualifying = q.qualifying_after;
      r.to_next_tier = q.to_next_tier;
      r.quoted = true;
    }
    if (p.op == opcode::balance)
      if (const brand_def* b = prog.find_brand(o.brand_id))
        r.brand = b->code;
    if (p.op == opcode::expire && note != nullptr) {
      r.expired = note->expired;
      r.members = note->members;
    }
    // Rule lines, hold id, reward: from the entry's records (read back for a replay).
    const std::vector<ledger::entry_detail>* details = &o.details;
    std::optional<ledger::ledger::entry> stored;
    if (o.replayed && o.seq != 0 && o.details.empty()) {
      stored = srv_.deps.ledger->read_entry(o.seq);
      if (stored)
        details = &stored->details;
    }
    for (const auto& d : *details) {
      switch (static_cast<ledger::detail_kind>(d.kind)) {
        case ledger::detail_kind::rule_line:
          r.lines.push_back(line_of(prog, d));
          break;
        case ledger::detail_kind::hold_open:
          r.hold = d.id;
          r.expires_at_us = d.b;
          break;
        case ledger::detail_kind::reward:
          if (const reward_def* w = prog.find_reward(d.id))
            r.reward = w->code;
          break;
        case ledger::detail_kind::settle:
          r.settlements.push_back(settlement_of(d));
          break;
        case ledger::detail_kind::consent:
          r.consents = static_cast<std::uint32_t>(d.a);
          break;
        default: break;
      }
    }
    if (p.partner != 0)
      r.partner = partner_code(p.partner);
    return r;
  }

  void finish_in_batch(std::uint32_t bi, std::uint32_t index, response r) {
    auto& b = batches_[bi];
    b.results[index] = std::move(r);
    if (--b.remaining > 0)
      return;
    response whole;
    whole.op = opcode::batch;
    whole.id = b.id;
    whole.results = std::move(b.results);
    b.results.clear();
    free_batches_.push_back(bi);
    if (!closed_)
      send(whole);
  }

  response error_response(opcode op, std::uint64_t id, errc code, std::string message) {
    count_error(op, code);
    response r;
    r.op = op;
    r.id = id;
    r.code = code;
    r.message = message.empty() ? std::string(default_message(code)) : std::move(message);
    return r;
  }

  void reply_error(opcode op, std::uint64_t id, errc code, std::string message) {
    send(error_response(op, id, code, std::move(message)));
  }

  void count_error(opcode op, errc code) {
    srv_.errors[static_cast<std::size_t>(op) % opcode_count][static_cast<std::size_t>(code) % errc_slots].fetch_add(
      1, std::memory_order_relaxed);
  }

  // -- writing -------------------------------------------------------------------------
  void send(const response& r) {
    if (!closed_)
      encode_response(out_, r);
  }

  void flush() {
    if (closed_ || writing_)
      return;
    if (out_.empty()) {
      if (close_after_write_)
        linger();
      return;
    }
    writing_ = true;
    wbuf_.swap(out_);
    out_.clear();
    wpos_ = 0;
    write_progress_ = steady::now();
    watch_write();
    write_some();
  }

  // The last frame is written: stop sending (the client reads end of
  // stream after it), then read and discard what the client still sends,
  // for at most limits::wire_linger_ms, before closing. Closing at once
  // with unread input would reset the connection, and a reset can destroy
  // the error frame before the client has read it.
  void linger() {
    if (closed_ || lingering_)
      return;
    lingering_ = true;
    asio::error_code ec;
    sock_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    linger_timer_.expires_after(std::chrono::milliseconds(limits::wire_linger_ms));
    linger_timer_.async_wait([self = shared_from_this()](const asio::error_code& wait_ec) {
      if (!wait_ec)
        self->close();
    });
    drain();
  }
  // One read into the (no longer needed) input buffer, discarded; again
  // until the client closes or the linger time is up. A read still pending
  // from before comes here too (read()'s handler).
  void drain() {
    if (closed_ || reading_)
      return;
    reading_ = true;
    sock_.async_read_some(asio::buffer(in_.data(), in_.size()),
                          [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
                            self->reading_ = false;
                            if (ec)
                              return self->close();  // end of stream: the client has read it all
                            self->drain();
                          });
  }

  // A piece at a time rather than asio::async_write, so that each piece the
  // socket takes counts as progress for the write-stall timeout.
  void write_some() {
    sock_.async_write_some(asio::buffer(wbuf_.data() + wpos_, wbuf_.size() - wpos_),
                           [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                             if (ec) {
                               self->writing_ = false;
                               self->close();
                               return;
                             }
                             self->write_progress_ = self->last_activity_ = steady::now();
                             self->wpos_ += n;
                             if (self->wpos_ < self->wbuf_.size())
                               return self->write_some();
                             self->writing_ = false;
                             self->wbuf_.clear();
                             self->flush();
                             if (self->sub_.active && !self->sub_waiting_.load())
                               self->pump();  // back-pressure: the stream reads on once its output went out
                             if (self->read_paused_ &&
                                 self->out_.size() <= self->srv_.settings.connection_output_bytes_max) {
                               self->read_paused_ = false;
                               self->frame_started_ = steady::now();  // a partial frame waited on us
                               self->read();
                             }
                           });
  }

  // -- tables ----------------------------------------------------------------------------
  std::uint32_t alloc_pending() {
    if (!free_pending_.empty()) {
      auto t = free_pending_.back();
      free_pending_.pop_back();
      return t;
    }
    pending_.emplace_back();
    return static_cast<std::uint32_t>(pending_.size() - 1);
  }
  void free_pending(std::uint32_t t) { free_pending_.push_back(t); }
  std::uint32_t alloc_batch() {
    if (!free_batches_.empty()) {
      auto b = free_batches_.back();
      free_batches_.pop_back();
      return b;
    }
    batches_.emplace_back();
    return static_cast<std::uint32_t>(batches_.size() - 1);
  }

  server::impl& srv_;
  asio::io_context& ctx_;
  detail::stream sock_;              // plain TCP or TLS, as the server is configured
  asio::steady_timer handshake_timer_;  // bounds the TLS handshake
  asio::steady_timer idle_timer_, frame_timer_, write_timer_;  // the connection limits
  asio::steady_timer linger_timer_;  // bounds linger()
  asio::steady_timer heartbeat_timer_;  // the event stream's heartbeat
  bool lingering_ = false;
  bool idle_armed_ = false, frame_armed_ = false, write_armed_ = false;
  steady::time_point last_activity_{};   // bytes received or sent
  steady::time_point frame_started_{};   // first byte of the partial frame in in_
  steady::time_point write_progress_{};  // the socket last took bytes
  std::vector<char> in_;
  std::size_t in_len_ = 0;
  std::vector<char> out_, wbuf_;
  std::size_t wpos_ = 0;  // bytes of wbuf_ written
  std::uint32_t jobs_ = 0;  // admin jobs (off_io) not yet answered
  bool reading_ = false, writing_ = false, read_paused_ = false;
  bool close_after_write_ = false, closed_ = false, hello_done_ = false;
  int key_index_ = -1;           // the hello's key: index in settings.keys, -1 = none
  std::uint32_t scope_brand_ = 0;  // a brand key's brand id, else 0
  std::uint32_t inflight_ = 0;
  std::vector<pending> pending_;
  std::vector<std::uint32_t> free_pending_;
  std::vector<batch_state> batches_;
  std::vector<std::uint32_t> free_batches_;

  struct subscription {
    bool active = false;
    std::uint64_t id = 0;      // the subscribe request's id: every events frame carries it
    std::uint64_t next = 0;    // the next seq to read
    std::uint64_t reported = 0;  // the `next` of the last frame sent
    std::uint32_t types = event_types_all;
    std::uint32_t consent = 0; // 0: any member
    std::uint32_t brand = 0;   // 0: every brand
    bool pump_posted = false;  // a pump() is queued on the io context
    steady::time_point last_frame{};
  };
  subscription sub_;
  // Caught up: the next commit's listener posts pump() (any thread).
  std::atomic<bool> sub_waiting_{false};
};

// -- server::impl ------------------------------------------------------------------------

bool server::impl::start(std::string& error) {
  if (!settings.tls_cert.empty()) {
    tls = make_tls_context(settings, error);
    if (!tls)
      return false;
    log(log_level::info, "TLS on the listen port (TLS 1.2 or later), certificate %s", settings.tls_cert.c_str());
  }
  try {
    asio::ip::tcp::endpoint ep(asio::ip::make_address(settings.listen_host), settings.listen_port);
    acceptor = std::make_unique<asio::ip::tcp::acceptor>(*contexts[0]);
    acceptor->open(ep.protocol());
    acceptor->set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor->bind(ep);
    acceptor->listen(asio::socket_base::max_listen_connections);
    bound_port = acceptor->local_endpoint().port();
  } catch (const std::exception& e) {
    error = "cannot listen on " + settings.listen_host + ":" + std::to_string(settings.listen_port) + ": " + e.what();
    return false;
  }
  accept_timer = std::make_unique<asio::steady_timer>(*contexts[0]);
  deps.ledger->set_commit_listener([this](std::uint64_t) { wake_subscribers(); });
  accept();
  for (auto& c : contexts) {
    guards.emplace_back(asio::make_work_guard(*c));
    threads.emplace_back([ctx = c.get()] { ctx->run(); });
  }
  return true;
}

void server::impl::accept() {
  auto& ctx = *contexts[next_context++ % contexts.size()];
  acceptor->async_accept(ctx, [this, &ctx](const asio::error_code& ec, asio::ip::tcp::socket sock) {
    if (ec == asio::error::operation_aborted || stopped.load())
      return;
    if (ec) {
      accept_failed(ec);
      return;
    }
    if (accept_backing_off) {
      accept_backing_off = false;
      log(log_level::info, "accepting connections again");
    }
    auto s = std::make_shared<session>(*this, ctx, std::move(sock));
    connections_total.fetch_add(1, std::memory_order_relaxed);
    bool over = connections.fetch_add(1) + 1 > settings.connections_max;
    if (over)
      count_close(close_reason::refused);
    asio::post(ctx, [s, over] {
      if (over)
        s->refuse(errc::too_many_connections);
      else
        s->start();
    });
    {
      std::lock_guard<std::mutex> guard(sessions_mtx);
      std::erase_if(sessions, [](auto& w) { return w.expired(); });
      sessions.push_back(s);
    }
    accept();
  });
}

// A peer that gave up before it was accepted (ECONNABORTED) says nothing
// about the next one: accept again at once. Anything else, above all running
// out of fds (EMFILE, ENFILE) or kernel buffers, leaves the connection in the
// backlog, so an immediate retry fails at once again and the io thread
// spins: wait accept_retry_ms first, and log once until an accept succeeds.
// Connections wait in the kernel's backlog meanwhile.
void server::impl::accept_failed(const asio::error_code& ec) {
  accept_errors.fetch_add(1, std::memory_order_relaxed);
  if (ec == asio::error::connection_aborted) {
    accept();
    return;
  }
  if (!accept_backing_off) {
    accept_backing_off = true;
    log(log_level::warn, "cannot accept connections: %s (%llu open); retrying every %u ms", ec.message().c_str(),
        static_cast<unsigned long long>(connections.load()), limits::accept_retry_ms);
  }
  accept_timer->expires_after(std::chrono::milliseconds(limits::accept_retry_ms));
  accept_timer->async_wait([this](const asio::error_code& wait_ec) {
    if (!wait_ec && !stopped.load())
      accept();
  });
}

void server::impl::wake_subscribers() {
  if (subscriptions.load(std::memory_order_relaxed) == 0)
    return;
  std::vector<std::shared_ptr<session>> live;
  {
    std::lock_guard<std::mutex> lk(subscribers_mtx);
    for (auto it = subscribers.begin(); it != subscribers.end();) {
      if (auto s = it->lock()) {
        live.push_back(std::move(s));
        ++it;
      } else {
        it = subscribers.erase(it);
      }
    }
  }
  for (auto& s : live)
    s->wake();
}

void server::impl::stop() {
  if (stopped.exchange(true))
    return;
  deps.ledger->set_commit_listener({});
  if (acceptor)
    asio::post(*contexts[0], [this] {
      asio::error_code ec;
      acceptor->close(ec);
      if (accept_timer)
        accept_timer->cancel();
    });
  {
    std::lock_guard<std::mutex> guard(sessions_mtx);
    for (auto& w : sessions)
      if (auto s = w.lock())
        asio::post(s->context(), [s] { s->close(); });
    sessions.clear();
  }
  guards.clear();
  for (auto& c : contexts)
    c->stop();
  for (auto& t : threads)
    t.join();
  threads.clear();
  std::lock_guard<std::mutex> guard(jobs_mtx);
  for (auto* j : {&verify_job, &sweep_job, &reload_job, &report_job, &backup_job})
    if (j->thread.joinable())
      j->thread.join();
}

std::vector<std::pair<std::string, std::uint64_t>> server::impl::stats() {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  out.emplace_back("connections", connections.load());
  out.emplace_back("connections_total", connections_total.load());
  out.emplace_back("inflight", inflight.load());
  out.emplace_back("subscriptions", subscriptions.load());
  out.emplace_back("stream_events", stream_events.load());
  out.emplace_back("tls_handshakes_failed", tls_handshakes_failed.load());
  out.emplace_back("accept_errors", accept_errors.load());
  for (std::size_t i = 0; i < close_reason_count; ++i)
    out.emplace_back(std::string("connections_closed_") + to_string(static_cast<close_reason>(i)), closed[i].load());
  for (std::size_t i = 1; i < opcode_count; ++i)
    out.emplace_back(std::string("requests_") + to_string(static_cast<opcode>(i)), requests[i].load());
  for (std::size_t i = 1; i < errc_slots; ++i) {
    std::uint64_t n = 0;
    for (const auto& per_op : errors)
      n += per_op[i].load(std::memory_order_relaxed);
    if (n > 0)
      out.emplace_back(std::string("errors_") + std::string(to_string(static_cast<errc>(i))), n);
  }
  auto ws = deps.ledger->stats();
  out.emplace_back("ledger_commits", ws.commits);
  out.emplace_back("ledger_entries", ws.entries);
  out.emplace_back("ledger_batch_max", ws.batch_max);
  out.emplace_back("ledger_commit_us_total", ws.commit_us_total);
  out.emplace_back("ledger_checkpoints", ws.checkpoints);
  out.emplace_back("ledger_checkpoint_accounts", ws.checkpoint_accounts);
  out.emplace_back("ledger_checkpoint_us_total", ws.checkpoint_us_total);
  out.emplace_back("ledger_accounts_cached", ws.accounts_cached);
  out.emplace_back("ledger_checkpoint_pending", ws.checkpoint_pending);
  for (std::size_t i = 0; i < ws.batch_hist.size(); ++i)
    if (ws.batch_hist[i] > 0)
      out.emplace_back("ledger_batches_size_ge_" + std::to_string(std::uint64_t{1} << i), ws.batch_hist[i]);
  out.emplace_back("ledger_last_seq", deps.ledger->last_seq());
  out.emplace_back("ledger_storage_full_refusals", ws.storage_full_refusals);
  const auto space = deps.ledger->space();
  out.emplace_back("storage_map_bytes", space.map_bytes);
  out.emplace_back("storage_used_bytes", space.used_bytes);
  out.emplace_back("storage_reserve_bytes", space.reserve_bytes);
  out.emplace_back("process_resident_anon_bytes", resident_anon_bytes().value_or(0));
  auto ds = deps.dir->stats();
  out.emplace_back("members_active", ds.active);
  out.emplace_back("members_activations", ds.activations);
  out.emplace_back("members_passivations", ds.passivations);
  out.emplace_back("members_crashes", ds.crashes);
  if (deps.extra_stats)
    for (auto& kv : deps.extra_stats())
      out.push_back(std::move(kv));
  return out;
}

// -- server ------------------------------------------------------------------------------

server::server(const engine_settings& settings, server_deps deps)
  : impl_(std::make_unique<impl>(settings, std::move(deps))) {}

server::~server() { stop(); }

bool server::start(std::string& error) { return impl_->start(error); }

void server::stop() { impl_->stop(); }

std::uint16_t server::port() const noexcept { return impl_->bound_port; }

std::uint64_t server::connections() const noexcept { return impl_->connections.load(); }

std::uint64_t server::inflight() const noexcept { return impl_->inflight.load(); }

server_counters server::counters() const {
  const auto& i = *impl_;
  server_counters c;
  c.connections = i.connections.load(std::memory_order_relaxed);
  c.connections_total = i.connections_total.load(std::memory_order_relaxed);
  c.inflight = i.inflight.load(std::memory_order_relaxed);
  c.tls_handshakes_failed = i.tls_handshakes_failed.load(std::memory_order_relaxed);
  c.accept_errors = i.accept_errors.load(std::memory_order_relaxed);
  c.subscriptions = i.subscriptions.load(std::memory_order_relaxed);
  c.stream_events = i.stream_events.load(std::memory_order_relaxed);
  for (std::size_t r = 0; r < close_reason_count; ++r)
    c.closed[r] = i.closed[r].load(std::memory_order_relaxed);
  c.requests.reserve(opcode_count);
  for (const auto& n : i.requests)
    c.requests.push_back(n.load(std::memory_order_relaxed));
  for (std::size_t op = 0; op < opcode_count; ++op)
    for (std::size_t code = 1; code < errc_slots; ++code)
      if (auto n = i.errors[op][code].load(std::memory_order_relaxed); n > 0)
        c.errors.push_back({static_cast<opcode>(op), static_cast<errc>(code), n});
  return c;
}

} // namespace loyalty::io
