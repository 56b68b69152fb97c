#include "io/server/session.hpp"

#include "actors/member.hpp"
#include "actors/partner.hpp"
#include "config/log.hpp"
#include "io/server/views.hpp"
#include "io/wire/codec.hpp"
#include "ledger/record_views.hpp"

#include <caf/message.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <cstring>

namespace loyalty::io {

namespace {

// Initial read buffer; grows up to one maximal frame.
constexpr std::size_t read_chunk_bytes = 64u << 10;
// An output buffer that grew past this for a burst of answers is freed once
// written, so an idle connection does not keep a burst's memory.
constexpr std::size_t buffer_keep_bytes = 1u << 20;

// Compares two digests without an early exit, so the time taken does not
// tell how much of a guess was right.
bool same_digest(const std::array<unsigned char, 32>& a, const std::array<unsigned char, 32>& b) {
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The access bit of a key scope (io/wire/operations.hpp); admin keys may do all.
std::uint8_t access_of(key_scope s) {
  switch (s) {
    case key_scope::admin: return by_any;
    case key_scope::read: return by_read;
    case key_scope::brand: return by_brand;
    case key_scope::partner: return by_partner;
  }
  return 0;
}

// The answer's `rules`: the verdicts with rule codes for ids.
std::vector<rule_outcome> rule_outcomes(const program& prog, const std::vector<actors::rule_verdict>& verdicts) {
  auto code = [&](std::uint32_t id) {
    const earn_rule* r = prog.find_rule(id);
    return r != nullptr ? r->code : std::to_string(id);
  };
  std::vector<rule_outcome> out;
  out.reserve(verdicts.size());
  for (const auto& v : verdicts) {
    const bool won = v.why == actors::rule_why::counted || v.why == actors::rule_why::best;
    out.push_back({code(v.rule_id), won, v.points, std::string(actors::why_name(v.why)),
                   v.why == actors::rule_why::outscored ? code(v.by) : std::string{}});
  }
  return out;
}

} // namespace

session::session(server::impl& srv, asio::io_context& ctx, asio::ip::tcp::socket sock)
  : srv_(srv), ctx_(ctx), sock_(std::move(sock), srv.tls.get()), handshake_timer_(ctx), idle_timer_(ctx),
    frame_timer_(ctx), write_timer_(ctx), linger_timer_(ctx), heartbeat_timer_(ctx) {
  in_.resize(read_chunk_bytes);
  // Taken now: after a reset the socket no longer knows its peer, and the
  // log lines of a failed handshake or a closed connection need it.
  asio::error_code ec;
  const auto ep = sock_.socket().remote_endpoint(ec);
  peer_ = ec ? std::string("an unknown peer") : ep.address().to_string() + ":" + std::to_string(ep.port());
}

void session::start() {
  asio::error_code ec;
  sock_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  when_ready([this] {
    last_activity_ = steady::now();
    watch_idle();
    read();
  });
}

void session::refuse(errc code) {
  holds_slot_ = false;  // counted in refused_closing, not in connections (server.cpp, accept)
  when_ready([this, code] {
    response r;
    r.code = code;
    r.message = std::string(default_message(code));
    send(r);
    close_after_write_ = true;
    flush();
  });
}

void session::close() {
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
  (holds_slot_ ? srv_.connections : srv_.refused_closing).fetch_sub(1);
  wbuf_.clear();
  out_.clear();
  account_output();
}

void session::complete(std::vector<ledger::outcome>&& outcomes) noexcept {
  asio::post(ctx_, [self = shared_from_this(), v = std::move(outcomes)]() mutable { self->on_outcomes(v); });
}

void session::wake() {
  if (sub_waiting_.exchange(false))
    asio::post(ctx_, [self = shared_from_this()] { self->pump(); });
}

// -- transport -----------------------------------------------------------------
// Runs `then` once the connection can carry frames: at once on plain TCP,
// after the server side of the TLS handshake otherwise. A handshake that
// fails, or is not done within tls_handshake_timeout_ms, closes the
// connection with one log line; `then` never runs.
template <class F>
void session::when_ready(F then) {
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

void session::handshake_failed(const std::string& reason) {
  srv_.tls_handshakes_failed.fetch_add(1, std::memory_order_relaxed);
  log(log_level::warn, "TLS handshake with %s failed: %s; connection closed", peer_.c_str(), reason.c_str());
  close();
}

void session::arm(asio::steady_timer& t, bool& armed, steady::time_point at, check_fn check) {
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

session::steady::duration session::idle_timeout() const { return std::chrono::seconds(srv_.settings.idle_timeout_s); }
session::steady::duration session::frame_timeout() const {
  return std::chrono::milliseconds(srv_.settings.frame_read_timeout_ms);
}
session::steady::duration session::write_timeout() const {
  return std::chrono::milliseconds(srv_.settings.write_stall_timeout_ms);
}

void session::watch_idle() {
  if (srv_.settings.idle_timeout_s != 0)
    arm(idle_timer_, idle_armed_, last_activity_ + idle_timeout(), &session::check_idle);
}

// Idle means nothing owed either way: no request in flight (nor an admin
// job), nothing to write, no partial frame. Otherwise the other limits
// apply, and the idle time starts again when the connection is quiet.
void session::check_idle() {
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
void session::watch_frame(bool fresh) {
  if (in_len_ == 0)
    return;  // an armed timer finds nothing and stops
  if (fresh)
    frame_started_ = steady::now();
  arm(frame_timer_, frame_armed_, frame_started_ + frame_timeout(), &session::check_frame);
}

void session::check_frame() {
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
void session::watch_write() {
  arm(write_timer_, write_armed_, write_progress_ + write_timeout(), &session::check_write);
}

void session::check_write() {
  if (!writing_)
    return;
  if (steady::now() < write_progress_ + write_timeout())
    return watch_write();
  srv_.count_close(close_reason::write_stall);
  log(log_level::debug, "connection from %s closed: %zu bytes of responses not taken within %u ms", peer_.c_str(),
      wbuf_.size() - wpos_ + out_.size(), srv_.settings.write_stall_timeout_ms);
  close();
}

// Closes the connection for a time limit, with one timed_out frame first
// when the output is free (that write is bounded by the write-stall
// timeout like any other), at once when responses are still waiting to go
// out (the frame would queue behind them).
void session::time_out(close_reason why, std::string message) {
  srv_.count_close(why);
  log(log_level::debug, "connection from %s closed: %s", peer_.c_str(), message.c_str());
  if (writing_ || !out_.empty()) {
    close();
    return;
  }
  send(error_response(opcode::none, 0, errc::timed_out, std::move(message)));
  close_after_write_ = true;
  flush();
}

// -- reading -------------------------------------------------------------------
void session::read() {
  if (closed_ || reading_)
    return;
  if (output_over_limit()) {
    read_paused_ = true;  // resumed when a write completes
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
void session::parse(bool fresh) {
  std::size_t pos = 0;
  // This connection's turn on the io thread: at most turn_frames_max frames
  // and turn_output_bytes_max of answers made now; then the rest waits for
  // a turn behind the other connections' work (limits.hpp).
  const std::size_t out_at_start = out_.size();
  std::uint32_t frames = 0;
  bool yielded = false, paused = false;
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
    if (output_over_limit()) {
      paused = true;  // the rest waits until answers went out (write_some)
      break;
    }
    if (frames == limits::turn_frames_max || out_.size() - out_at_start >= limits::turn_output_bytes_max) {
      yielded = true;
      break;
    }
    on_frame(in_.data() + pos + frame_header_bytes, len);
    pos += frame_header_bytes + len;
    ++frames;
  }
  if (pos > 0) {
    std::memmove(in_.data(), in_.data() + pos, in_len_ - pos);
    in_len_ -= pos;
  }
  if (in_len_ == 0 && in_.size() > read_chunk_bytes)
    std::vector<char>(read_chunk_bytes).swap(in_);  // a large frame's buffer goes back
  flush();
  if (close_after_write_)
    return;
  if (paused) {
    read_paused_ = true;
    return;
  }
  if (yielded) {
    // Whole frames wait in the buffer: the next turn parses them, after
    // what the other connections of this io thread have queued.
    asio::post(ctx_, [self = shared_from_this()] {
      if (!self->closed_ && !self->lingering_ && !self->close_after_write_)
        self->parse(false);
    });
    return;
  }
  watch_frame(fresh || pos > 0);
  read();
}

void session::fail_connection(errc code, std::string message) {
  response r;
  r.code = code;
  r.message = std::move(message);
  srv_.count_error(opcode::none, code);  // a frame-level failure: no operation was read
  send(r);
  close_after_write_ = true;
}

// -- requests ------------------------------------------------------------------
void session::on_frame(const char* data, std::size_t size) {
  request req = decode_request(data, size);
  if (req.error == errc::malformed_frame) {
    fail_connection(errc::malformed_frame, req.error_message.empty() ? std::string(default_message(errc::malformed_frame))
                                                                     : req.error_message);
    return;
  }
  srv_.requests[static_cast<std::size_t>(req.op)].fetch_add(1, std::memory_order_relaxed);
  if (live_ids_.contains(req.id)) {
    // Its answer could not be told from the first one's: not executed.
    reply_error(req.op, req.id, errc::duplicate_id,
                "request id " + std::to_string(req.id) + " is still in flight on this connection; not executed");
    return;
  }
  if (srv_.draining.load(std::memory_order_relaxed)) {
    reply_error(req.op, req.id, errc::unavailable, "the engine is stopping; nothing was posted");
    return;
  }
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
    // A cluster node serves only while it is the ready leader (docs/PROTOCOL.md, not_leader).
    std::string leader;
    if (req.op != opcode::stats && req.op != opcode::cluster_status && srv_.deps.leads && !srv_.deps.leads(leader)) {
      auto r = error_response(req.op, req.id, errc::not_leader, {});
      r.leader = std::move(leader);
      send(r);
      return;
    }
  }
  // Every operation has its case (no default: the build stops at a new one).
  const handlers::caller who = caller();
  switch (req.op) {
    case opcode::hello: return on_hello(req);
    case opcode::batch: return on_batch(req);
    case opcode::subscribe: return on_subscribe(req);
    case opcode::verify: return run(req.op, req.id, handlers::verify(srv_, who, req));
    case opcode::stats: return run(req.op, req.id, handlers::stats(srv_, who, req));
    case opcode::cluster_status: return run(req.op, req.id, handlers::cluster_status(srv_, who, req));
    case opcode::cluster_add:
    case opcode::cluster_remove: return run(req.op, req.id, handlers::cluster_change(srv_, who, req));
    case opcode::reload: return run(req.op, req.id, handlers::reload(srv_, who, req));
    case opcode::backup: return run(req.op, req.id, handlers::backup(srv_, who, req));
    case opcode::liability: return run(req.op, req.id, handlers::liability(srv_, who, req));
    case opcode::activity: return run(req.op, req.id, handlers::activity(srv_, who, req));
    case opcode::settlement: return run(req.op, req.id, handlers::settlement(srv_, who, req));
    case opcode::report: return run(req.op, req.id, handlers::report(srv_, who, req));
    case opcode::risk_report: return run(req.op, req.id, handlers::risk_report(srv_, who, req));
    case opcode::journal: return run(req.op, req.id, handlers::journal(srv_, who, req));
    case opcode::expire:
      if (!req.has_member && req.alias.empty())
        return run(req.op, req.id, handlers::sweep(srv_, who, req));
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
    case opcode::release_pending:
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
    case opcode::household_join:
    case opcode::household_leave:
    case opcode::household_dissolve:
    case opcode::household:
    case opcode::erase:
    case opcode::block:
    case opcode::unblock:
      if (!admit(1)) {
        reply_error(req.op, req.id, errc::overloaded, {});
        return;
      }
      return route(req, -1, 0);
    case opcode::none: break;
  }
  reply_error(req.op, req.id, errc::unknown_operation, {});
}

void session::on_hello(const request& req) {
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
      log(log_level::warn, "hello from %s refused: %s", peer_.c_str(),
          req.key.empty() ? "no key" : "a key that is not configured");
      reply_error(opcode::hello, req.id, errc::not_authorized,
                  keys.empty() ? "this engine has no API keys: send hello without a key"
                               : req.key.empty() ? "this engine needs an API key in hello" : "the key is not valid");
      return;
    }
    key_index_ = found;
    dry_run_ = keys[static_cast<std::size_t>(found)].dry_run;
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
  r.dry_run = dry_run_;
  send(r);
}

const api_key* session::key() const {
  return key_index_ >= 0 ? &srv_.settings.keys[static_cast<std::size_t>(key_index_)] : nullptr;
}

handlers::caller session::caller() const {
  handlers::caller c;
  c.key = key();
  c.scope_brand = scope_brand_;
  c.scope_partner = handlers::caller::partner_none;
  if (c.key != nullptr && c.key->scope == key_scope::partner) {
    const partner_def* p = srv_.prog().find_partner(c.key->scope_code);
    c.scope_partner = p != nullptr ? p->id : handlers::caller::partner_gone;
  }
  return c;
}

// Whether the connection's key allows an operation at all (a brand or a
// partner key is further limited to its brand or partner by the handler or
// the member actor): the operation table's access column.
bool session::allowed(opcode op) const {
  const api_key* k = key();
  if (k == nullptr)  // no keys configured: everything but the admin operations
    return (info(op).access & by_keyless) != 0;
  return k->scope == key_scope::admin || (info(op).access & access_of(k->scope)) != 0;
}

// Refuses a request the key does not allow, logging the key id (never the key).
void session::deny(opcode op, std::uint64_t id, std::string why) {
  auto r = handlers::deny(caller(), op, std::move(why));
  reply_error(op, id, r.code, std::move(r.message));
}

// Answers what a handler gave. A job runs on a thread of its own, one per
// slot at a time (another one meanwhile is `busy`), and its answer is posted
// back to this connection's io thread.
void session::run(opcode op, std::uint64_t id, handlers::handled h) {
  if (!h.work) {
    response r = std::move(h.now);
    if (!r.ok())
      return reply_error(op, id, r.code, std::move(r.message));
    r.op = op;
    r.id = id;
    return send(r);
  }
  auto& j = srv_.slot(h.slot);
  std::lock_guard<std::mutex> guard(srv_.jobs_mtx);
  if (j.running.load()) {
    reply_error(op, id, errc::busy, h.busy_message);
    return;
  }
  if (j.thread.joinable())
    j.thread.join();  // finished: running is false
  j.running.store(true);
  ++jobs_;
  live_ids_.insert(id);
  j.thread = std::thread([self = shared_from_this(), &j, op, id, work = std::move(h.work)] {
    response r = work(self->srv_);
    j.running.store(false);
    asio::post(self->ctx_, [self, op, id, r = std::move(r)]() mutable {
      --self->jobs_;
      self->live_ids_.erase(id);
      if (!r.ok()) {
        self->reply_error(op, id, r.code, std::move(r.message));
      } else {
        r.op = op;
        r.id = id;
        self->send(r);
      }
      self->flush();
    });
  });
}


// -- subscribe (issue 7) -----------------------------------------------------------
// The connection streams the events of committed entries from `from`
// (docs/PROTOCOL.md, "subscribe"). Events are read from the ledger, never
// queued in memory: pump() reads a chunk only while the connection's
// output is below limits::stream_output_low_bytes, and again when a write
// completes or a commit arrives, so a slow subscriber falls behind in the
// journal and catches up from it, and ingestion never waits for it.
void session::on_subscribe(const request& req) {
  if (sub_.active) {
    reply_error(req.op, req.id, errc::invalid_argument, "this connection has a subscription already");
    return;
  }
  response refused;
  auto filter = handlers::subscription(srv_, caller(), req, refused);
  if (!filter) {
    reply_error(req.op, req.id, refused.code, std::move(refused.message));
    return;
  }
  asio::error_code ec;
  sock_.socket().set_option(asio::socket_base::send_buffer_size(limits::stream_socket_send_bytes), ec);
  sub_.active = true;
  sub_.id = req.id;
  live_ids_.insert(req.id);  // every events frame carries it
  sub_.filter = *filter;
  srv_.subscriptions.fetch_add(1);
  {
    std::lock_guard<std::mutex> lk(srv_.subscribers_mtx);
    std::erase_if(srv_.subscribers, [](auto& w) { return w.expired(); });
    srv_.subscribers.push_back(shared_from_this());
  }
  log(log_level::info, "key %u: %s subscribed from seq %llu", caller().key_id(), peer_.c_str(),
      static_cast<unsigned long long>(sub_.filter.from));
  send_progress();  // the answer: the first frame of the stream, without events
  heartbeat();
  pump();
}

// Reads one chunk of the journal into one events frame, then yields the
// io thread (the next chunk is posted) while there is more and room.
void session::pump() {
  sub_.pump_posted = false;
  if (closed_ || !sub_.active || close_after_write_ || unsent_bytes() >= limits::stream_output_low_bytes)
    return;  // a write completion calls again
  std::vector<ledger::ledger::stream_entry> chunk;
  std::string error;
  if (!srv_.deps.ledger->read_stream(sub_.filter.from, stream_entries_per_frame_max, chunk, error)) {
    log(log_level::error, "event stream of %s: %s; subscription ended", peer_.c_str(), error.c_str());
    reply_error(opcode::subscribe, sub_.id, errc::internal_error, "the stream could not read the ledger: " + error);
    close_after_write_ = true;
    flush();
    return;
  }
  if (chunk.empty()) {
    // Caught up. Entries the filters left out moved the resume point
    // past the last events frame: say where it is now, once.
    if (sub_.reported < sub_.filter.from)
      send_progress();
    // The next commit wakes us. A commit between the read and here would
    // have found the flag clear, so look once more.
    sub_waiting_.store(true);
    if (srv_.deps.ledger->last_seq() >= sub_.filter.from && sub_waiting_.exchange(false))
      post_pump();
    return;
  }
  response r;
  r.op = opcode::subscribe;
  r.id = sub_.id;
  handlers::events_of(srv_.prog(), sub_.filter, chunk, r.events);
  sub_.filter.from = chunk.back().e.header.seq + 1;
  if (!r.events.empty()) {
    r.seq = srv_.deps.ledger->last_seq();
    r.next = sub_.filter.from;
    srv_.stream_events.fetch_add(r.events.size(), std::memory_order_relaxed);
    send(r);
    sub_.reported = sub_.filter.from;
    sub_.last_frame = steady::now();
    flush();
  }
  post_pump();
}

// An events frame without events: where the stream stands.
void session::send_progress() {
  response r;
  r.op = opcode::subscribe;
  r.id = sub_.id;
  r.seq = srv_.deps.ledger->last_seq();
  r.next = sub_.filter.from;
  send(r);
  sub_.reported = sub_.filter.from;
  sub_.last_frame = steady::now();
  flush();
}

// Output not yet taken by the socket: queued, and the rest of the write
// under way.
std::size_t session::unsent_bytes() const { return out_.size() + (writing_ ? wbuf_.size() - wpos_ : 0); }

void session::post_pump() {
  if (sub_.pump_posted)
    return;
  sub_.pump_posted = true;
  asio::post(ctx_, [self = shared_from_this()] { self->pump(); });
}

// An empty events frame after limits::stream_heartbeat_ms without one.
void session::heartbeat() {
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

void session::on_batch(request& req) {
  std::uint32_t n = 0;
  for (auto& sub : req.ops)
    if (sub.error == errc::ok)
      ++n;
  if (!admit(n)) {
    reply_error(opcode::batch, req.id, errc::overloaded, {});
    return;
  }
  live_ids_.insert(req.id);  // until the whole batch is answered (finish_in_batch)
  auto bi = alloc_batch();
  auto& b = batches_[bi];
  b.id = req.id;
  b.results.assign(req.ops.size(), response{});
  b.remaining = static_cast<std::uint32_t>(req.ops.size());
  b.dry_run = dry_run_;
  for (std::uint32_t i = 0; i < req.ops.size(); ++i) {
    auto& sub = req.ops[i];
    if (sub.error != errc::ok) {
      finish_in_batch(bi, i, error_response(sub.op, sub.id, sub.error, sub.error_message));
      continue;
    }
    route(sub, static_cast<std::int32_t>(bi), i);
  }
}

bool session::admit(std::uint32_t n) {
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

void session::release_one() {
  --inflight_;
  srv_.inflight.fetch_sub(1, std::memory_order_relaxed);
}

// Sends one admitted member request to its actor; answers the ones the
// server can answer itself (lookup, history, and every refusal that needs
// no member state) at once.
void session::route(const request& req, std::int32_t batch, std::uint32_t index) {
  const program& prog = srv_.prog();
  auto refuse = [&](errc code, std::string msg) {
    release_one();
    deliver_now(req, batch, index, code, std::move(msg));
  };
  if (!allowed(req.op)) {  // inside a batch; single requests were checked on arrival
    log(log_level::warn, "key %u: %s in a batch refused", caller().key_id(), to_string(req.op));
    return refuse(errc::not_authorized, {});
  }
  std::uint64_t member = req.member;
  if (!req.alias.empty() && req.op != opcode::link_alias) {
    auto m = srv_.deps.ledger->find_alias(req.alias);
    if (!m)
      return refuse(errc::unknown_alias, {});
    member = *m;
  }
  const op_info& op = info(req.op);
  if (op.family == op_family::member_read) {
    // Answered here from the ledger (io/server/handlers/reads.cpp).
    release_one();
    const auto who = caller();
    response r = req.op == opcode::lookup    ? handlers::lookup(srv_, who, req, member)
                 : req.op == opcode::history ? handlers::history(srv_, who, req, member)
                                             : handlers::explain(srv_, who, req);
    if (!r.ok())
      return deliver_now(req, batch, index, r.code, std::move(r.message));
    r.op = req.op;
    r.id = req.id;
    return deliver(batch, index, std::move(r));
  }
  if (req.op == opcode::expire && !req.has_member && req.alias.empty())
    return refuse(errc::invalid_argument, "an expire of every member cannot be part of a batch");
  actors::member_request mr;
  mr.kind = *op.kind;  // the member and partner families have one (operations.hpp)
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
  const auto who = caller();
  if (op.family == op_family::partner) {
    partner = prog.find_partner(req.partner);
    if (partner == nullptr)
      return refuse(errc::unknown_partner, "no partner '" + req.partner + "' in the program");
    if (const auto own = who.scope_partner; own != handlers::caller::partner_none && own != partner->id) {
      log(log_level::warn, "key %u: %s for partner %s refused", who.key_id(), to_string(req.op), req.partner.c_str());
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
  mr.key_id = who.key_id();
  mr.scope_brand = who.scope_brand;
  mr.scope_partner = who.scope_partner;
  mr.consent_mask = req.consent_mask;
  mr.consent_values = req.consent_values;
  mr.source = req.source;
  mr.dry_run = dry_run_ && op.posts;  // balance and quote post nothing: as for any key
  mr.household = req.household;
  mr.hash = content_hash_of(req, mr);
  auto tag = alloc_pending();
  auto& p = pending_[tag];
  p.id = req.id;
  p.op = req.op;
  p.member = member;
  p.batch = batch;
  p.index = index;
  p.partner = partner != nullptr ? static_cast<std::uint16_t>(partner->id) : 0;
  p.answered = false;
  p.dry_run = mr.dry_run;
  p.live = true;
  p.since = steady::now();
  if (batch < 0)
    live_ids_.insert(req.id);
  mr.reply = std::make_shared<actors::reply_guard>(shared_from_this(), tag);
  if (partner != nullptr) {
    // Through the partner's actor (actors/partner.hpp). A partner added by
    // a reload gets its actor at the reload, before anyone can name it.
    const auto id = partner->id;
    if (!srv_.deps.ctx->partners->send(id, std::move(mr)))
      log(log_level::error, "partner %u has no actor; its request was answered unavailable", id);
    return;
  }
  if (*op.kind == actors::request_kind::household_join || *op.kind == actors::request_kind::household_leave ||
      *op.kind == actors::request_kind::household_dissolve || *op.kind == actors::request_kind::household) {
    // The household coordinator (actors/household.hpp) carries them out.
    caf::anon_send(srv_.deps.ctx->household_coordinator, std::move(mr));
    return;
  }
  if (req.op == opcode::enroll && !mr.dry_run) {
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
std::uint64_t session::content_hash_of(const request& req, const actors::member_request& mr) {
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
  if (mr.kind == actors::request_kind::household_join || mr.kind == actors::request_kind::household_dissolve)
    h.add(req.household);
  return h.value();
}

void session::deliver(std::int32_t batch, std::uint32_t index, response r) {
  if (batch >= 0)
    finish_in_batch(static_cast<std::uint32_t>(batch), index, std::move(r));
  else
    send(r);
}

void session::deliver_now(const request& req, std::int32_t batch, std::uint32_t index, errc code, std::string msg) {
  auto r = error_response(req.op, req.id, code, std::move(msg));
  if (batch >= 0)
    finish_in_batch(static_cast<std::uint32_t>(batch), index, std::move(r));
  else
    send(r);
}

// -- outcomes ----------------------------------------------------------------------
void session::on_outcomes(std::vector<ledger::outcome>& outcomes) {
  const auto now = steady::now();
  for (auto& o : outcomes) {
    release_one();
    auto p = pending_[o.tag];
    srv_.count_answer(now - p.since);
    pending_[o.tag].live = false;
    free_pending(static_cast<std::uint32_t>(o.tag));
    if (p.batch < 0)
      live_ids_.erase(p.id);
    if (closed_ || p.answered)
      continue;  // answered `unavailable` when the engine stopped (answer_unavailable)
    auto r = to_response(p, o);
    if (p.batch >= 0)
      finish_in_batch(static_cast<std::uint32_t>(p.batch), p.index, std::move(r));
    else
      send(r);
  }
  flush();
}

response session::to_response(const pending& p, const ledger::outcome& o) {
  const auto* note = static_cast<const actors::answer_note*>(o.note.get());
  if (o.code != errc::ok) {
    auto r = error_response(p.op, p.id, o.code, note != nullptr ? note->message : std::string{});
    r.dry_run = p.dry_run;
    return r;
  }
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
  r.dry_run = p.dry_run;
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
    if (b.outlook.holds_until_us != 0) {
      r.tier_holds_until_us = b.outlook.holds_until_us;
      r.tier_drops_to = tier_name(b.outlook.drops_to);
      r.tier_keep_missing = b.outlook.missing;
    }
    r.next_expiry_points = b.view.next_expiry_points;
    r.next_expiry_at_us = b.view.next_expiry_at_us;
    r.consents = b.consents;
    r.blocked = (b.risk.flags & ledger::risk_blocked) != 0;
    r.flagged = (b.risk.flags & ledger::risk_flagged) != 0;
    r.breaches = b.risk.breaches;
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
  if (note != nullptr && note->has_rules && !o.replayed)
    r.rules = rule_outcomes(prog, note->rules);
  if (p.op == opcode::balance)
    if (const brand_def* b = prog.find_brand(o.brand_id))
      r.brand = b->code;
  if (note != nullptr && note->has_household) {
    r.household = note->household.household;
    r.household_available = note->household.available;
    if (p.op == opcode::household)
      for (const auto& [m, a] : note->household.members)
        r.household_members.push_back({m, a});
  }
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
    if (auto l = ledger::as_rule_line(d)) {
      r.lines.push_back(views::line_of(prog, *l));
    } else if (auto h = ledger::as_hold_open(d)) {
      r.hold = h->hold;
      r.expires_at_us = h->expires_at_us;
    } else if (auto w = ledger::as_reward(d)) {
      if (const reward_def* def = prog.find_reward(w->reward))
        r.reward = def->code;
    } else if (auto s = ledger::as_settle(d)) {
      r.settlements.push_back(views::settlement_of(prog, *s));
    } else if (auto c = ledger::as_consent(d)) {
      r.consents = c->after;
    } else if (d.kind == static_cast<std::uint16_t>(ledger::detail_kind::household)) {
      r.household = d.b;
    }
  }
  if (p.partner != 0)
    r.partner = views::partner_code(prog, p.partner);
  return r;
}

void session::finish_in_batch(std::uint32_t bi, std::uint32_t index, response r) {
  auto& b = batches_[bi];
  b.results[index] = std::move(r);
  if (--b.remaining > 0)
    return;
  response whole;
  whole.op = opcode::batch;
  whole.id = b.id;
  whole.results = std::move(b.results);
  whole.dry_run = b.dry_run;
  b.results.clear();
  free_batches_.push_back(bi);
  live_ids_.erase(whole.id);
  if (!closed_)
    send(whole);
}

response session::error_response(opcode op, std::uint64_t id, errc code, std::string message) {
  srv_.count_error(op, code);
  response r;
  r.op = op;
  r.id = id;
  r.code = code;
  r.message = message.empty() ? std::string(default_message(code)) : std::move(message);
  r.dry_run = dry_run_ && info(op).posts;
  return r;
}

void session::reply_error(opcode op, std::uint64_t id, errc code, std::string message) {
  send(error_response(op, id, code, std::move(message)));
}

// -- writing -------------------------------------------------------------------------
void session::send(const response& r) {
  if (!closed_)
    encode_response(out_, r);
}

void session::flush() {
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
  account_output();
}

// The last frame is written: stop sending (the client reads end of
// stream after it), then read and discard what the client still sends,
// for at most limits::wire_linger_ms, before closing. Closing at once
// with unread input would reset the connection, and a reset can destroy
// the error frame before the client has read it.
void session::linger() {
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
void session::drain() {
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
void session::write_some() {
  sock_.async_write_some(asio::buffer(wbuf_.data() + wpos_, wbuf_.size() - wpos_),
                         [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                           if (ec) {
                             self->writing_ = false;
                             self->close();
                             return;
                           }
                           self->write_progress_ = self->last_activity_ = steady::now();
                           self->wpos_ += n;
                           if (self->wpos_ < self->wbuf_.size()) {
                             self->account_output();
                             return self->write_some();
                           }
                           self->writing_ = false;
                           if (self->wbuf_.capacity() > buffer_keep_bytes)
                             std::vector<char>().swap(self->wbuf_);  // a burst's buffer goes back
                           else
                             self->wbuf_.clear();
                           self->flush();
                           self->account_output();
                           if (self->sub_.active && !self->sub_waiting_.load())
                             self->pump();  // back-pressure: the stream reads on once its output went out
                           if (self->read_paused_ && !self->output_over_limit()) {
                             self->read_paused_ = false;
                             self->frame_started_ = steady::now();  // a partial frame waited on us
                             self->parse(false);  // what was read and not parsed yet, then reads on
                           }
                         });
}

// Keeps the engine-wide count of answers waiting to be sent
// (server::impl::output_bytes) equal to the sum of every connection's
// unsent bytes.
void session::account_output() {
  const std::size_t now = closed_ ? 0 : unsent_bytes();
  if (now == accounted_)
    return;
  if (now > accounted_)
    srv_.output_bytes.fetch_add(now - accounted_, std::memory_order_relaxed);
  else
    srv_.output_bytes.fetch_sub(accounted_ - now, std::memory_order_relaxed);
  accounted_ = now;
}

// Reading stops while this connection's answers pass its own bound, or
// while every connection's answers together pass the engine's and this one
// has answers waiting (docs/OPERATIONS.md, "Connection limits").
bool session::output_over_limit() const {
  if (out_.size() > srv_.settings.connection_output_bytes_max)
    return true;
  return unsent_bytes() > 0 && srv_.output_bytes.load(std::memory_order_relaxed) > srv_.settings.output_bytes_max;
}

// The engine stops and its drain time is up (server::impl::finish_drain):
// every request still waiting for its outcome is answered `unavailable`.
void session::answer_unavailable() {
  if (closed_)
    return;
  for (auto& p : pending_) {
    if (!p.live || p.answered)
      continue;
    p.answered = true;
    auto r = error_response(p.op, p.id, errc::unavailable, "the engine stopped before this request was answered");
    r.dry_run = p.dry_run;
    if (p.batch >= 0) {
      finish_in_batch(static_cast<std::uint32_t>(p.batch), p.index, std::move(r));
    } else {
      live_ids_.erase(p.id);
      send(r);
    }
  }
  flush();
}

// -- tables ----------------------------------------------------------------------------
std::uint32_t session::alloc_batch() {
  if (!free_batches_.empty()) {
    auto b = free_batches_.back();
    free_batches_.pop_back();
    return b;
  }
  batches_.emplace_back();
  return static_cast<std::uint32_t>(batches_.size() - 1);
}

std::uint32_t session::alloc_pending() {
  if (!free_pending_.empty()) {
    auto t = free_pending_.back();
    free_pending_.pop_back();
    return t;
  }
  pending_.emplace_back();
  return static_cast<std::uint32_t>(pending_.size() - 1);
}

} // namespace loyalty::io
