#include "io/server.hpp"

#include "actors/member.hpp"
#include "config/log.hpp"
#include "io/codec.hpp"

#include <asio.hpp>
#include <caf/message.hpp>

#include <array>
#include <cstring>
#include <mutex>
#include <thread>

namespace loyalty::io {

namespace {

// Past this many bytes of unsent responses, a connection stops reading
// until the client has read some: a client that pipelines without reading
// cannot make the server buffer without bound.
constexpr std::size_t out_bytes_max = 8u << 20;
// Initial read buffer; grows up to one maximal frame.
constexpr std::size_t read_chunk_bytes = 64u << 10;

constexpr std::size_t opcode_count = static_cast<std::size_t>(opcode::batch) + 1;
constexpr std::size_t errc_slots = 128;

} // namespace

class session;

class server::impl {
public:
  impl(const engine_settings& s, server_deps d) : settings(s), deps(std::move(d)) {
    for (std::uint32_t i = 0; i < std::max<std::uint32_t>(1, s.io_threads); ++i)
      contexts.push_back(std::make_unique<asio::io_context>(1));
  }

  bool start(std::string& error);
  void stop();
  void accept();
  std::vector<std::pair<std::string, std::uint64_t>> stats();

  engine_settings settings;
  server_deps deps;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor;
  std::size_t next_context = 0;
  std::uint16_t bound_port = 0;

  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> inflight{0};
  std::array<std::atomic<std::uint64_t>, opcode_count> requests{};
  std::array<std::atomic<std::uint64_t>, errc_slots> errors{};

  std::mutex sessions_mtx;
  std::vector<std::weak_ptr<session>> sessions;

  std::mutex verify_mtx;
  std::thread verify_thread;
  std::atomic<bool> verify_running{false};
  std::atomic<bool> stopped{false};
};

// One connection. All members are touched only on its io_context's thread,
// except complete(), which any thread may call.
class session final : public ledger::completion_target, public std::enable_shared_from_this<session> {
public:
  session(server::impl& srv, asio::io_context& ctx, asio::ip::tcp::socket sock)
    : srv_(srv), ctx_(ctx), sock_(std::move(sock)) {
    in_.resize(read_chunk_bytes);
  }

  void start() {
    asio::error_code ec;
    sock_.set_option(asio::ip::tcp::no_delay(true), ec);
    read();
  }

  // Refuses the connection: one error frame, then close.
  void refuse(errc code) {
    response r;
    r.code = code;
    r.message = std::string(default_message(code));
    send(r);
    close_after_write_ = true;
    flush();
  }

  void close() {
    if (closed_)
      return;
    closed_ = true;
    asio::error_code ec;
    sock_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    sock_.close(ec);
    srv_.connections.fetch_sub(1);
  }

  void complete(std::vector<ledger::outcome>&& outcomes) noexcept override {
    asio::post(ctx_, [self = shared_from_this(), v = std::move(outcomes)]() mutable { self->on_outcomes(v); });
  }

  asio::io_context& context() { return ctx_; }

private:
  struct pending {
    std::uint64_t id = 0;
    opcode op = opcode::none;
    std::uint64_t member = 0;
    std::int32_t batch = -1;  // index into batches_, or -1
    std::uint32_t index = 0;  // position in the batch
  };
  struct batch_state {
    std::uint64_t id = 0;
    std::vector<response> results;
    std::uint32_t remaining = 0;
  };

  // -- reading -------------------------------------------------------------------
  void read() {
    if (closed_ || reading_)
      return;
    if (out_.size() > out_bytes_max) {
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
                            self->in_len_ += n;
                            self->parse();
                          });
  }

  void parse() {
    std::size_t pos = 0;
    while (!close_after_write_ && in_len_ - pos >= frame_header_bytes) {
      auto len = read_be32(reinterpret_cast<const unsigned char*>(in_.data() + pos));
      if (len == 0 || len > limits::frame_bytes_max) {
        fail_connection(errc::frame_too_large,
                        "frame length " + std::to_string(len) + " is outside 1.." +
                          std::to_string(limits::frame_bytes_max));
        break;
      }
      if (in_len_ - pos < frame_header_bytes + len) {
        // Make sure a whole frame fits the buffer.
        if (in_.size() < frame_header_bytes + len && pos == 0)
          in_.resize(frame_header_bytes + len);
        break;
      }
      on_frame(in_.data() + pos + frame_header_bytes, len);
      pos += frame_header_bytes + len;
    }
    if (pos > 0) {
      std::memmove(in_.data(), in_.data() + pos, in_len_ - pos);
      in_len_ -= pos;
    }
    flush();
    if (!close_after_write_)
      read();
  }

  void fail_connection(errc code, std::string message) {
    response r;
    r.code = code;
    r.message = std::move(message);
    count_error(code);
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
    switch (req.op) {
      case opcode::hello: return on_hello(req);
      case opcode::verify: return on_verify(req);
      case opcode::stats: return on_stats(req);
      case opcode::batch: return on_batch(req);
      case opcode::enroll:
      case opcode::earn:
      case opcode::redeem:
      case opcode::balance:
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

  void on_stats(const request& req) {
    response r;
    r.op = opcode::stats;
    r.id = req.id;
    r.stats = srv_.stats();
    send(r);
  }

  void on_verify(const request& req) {
    std::lock_guard<std::mutex> guard(srv_.verify_mtx);
    if (srv_.verify_running.load()) {
      reply_error(opcode::verify, req.id, errc::busy, "a verify is already running");
      return;
    }
    if (srv_.verify_thread.joinable())
      srv_.verify_thread.join();
    srv_.verify_running.store(true);
    // Runs in its own read transaction on its own thread; the engine keeps serving.
    srv_.verify_thread = std::thread([self = shared_from_this(), id = req.id] {
      auto rep = self->srv_.deps.ledger->verify();
      self->srv_.verify_running.store(false);
      asio::post(self->ctx_, [self, id, rep = std::move(rep)] {
        response r;
        r.op = opcode::verify;
        r.id = id;
        r.verify.valid = rep.ok;
        r.verify.entries = rep.entries;
        r.verify.postings = rep.postings;
        r.verify.accounts = rep.accounts;
        r.verify.members = rep.members;
        r.verify.txn_ids = rep.txn_ids;
        r.verify.problems = rep.problems;
        self->send(r);
        self->flush();
      });
    });
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

  // Sends one admitted member request to its actor.
  void route(const request& req, std::int32_t batch, std::uint32_t index) {
    const program& prog = *srv_.deps.prog;
    actors::member_request mr;
    mr.member = req.member;
    if (req.op == opcode::enroll || req.op == opcode::earn) {
      const brand_def* b = prog.find_brand(req.brand);
      if (b == nullptr) {
        release_one();
        deliver_now(req, batch, index, errc::unknown_brand, "no brand '" + req.brand + "' in the program");
        return;
      }
      mr.brand_id = b->id;
    }
    if (req.op == opcode::earn && req.currency != prog.currency) {
      release_one();
      deliver_now(req, batch, index, errc::currency_mismatch,
                  "currency '" + req.currency + "' is not the program currency '" + prog.currency + "'");
      return;
    }
    switch (req.op) {
      case opcode::enroll: mr.kind = actors::request_kind::enroll; break;
      case opcode::earn: mr.kind = actors::request_kind::earn; break;
      case opcode::redeem: mr.kind = actors::request_kind::redeem; break;
      default: mr.kind = actors::request_kind::balance; break;
    }
    mr.txn_bytes = static_cast<std::uint8_t>(req.txn.size());
    std::memcpy(mr.txn.data(), req.txn.data(), req.txn.size());
    mr.amount_minor = req.amount;
    mr.occurred_at_us = req.occurred_at_us;
    mr.points = req.points;
    mr.hash = actors::request_hash(mr.kind, mr.member, mr.brand_id, mr.amount_minor, mr.occurred_at_us,
                                   mr.points, req.currency);
    auto tag = alloc_pending();
    auto& p = pending_[tag];
    p.id = req.id;
    p.op = req.op;
    p.member = req.member;
    p.batch = batch;
    p.index = index;
    mr.reply = std::make_shared<actors::reply_guard>(shared_from_this(), tag);
    if (!srv_.deps.dir->send(req.member, caf::make_message(std::move(mr)))) {
      // Shutting down: the guard already answered `unavailable` when the
      // message was dropped.
    }
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
    if (o.code != errc::ok)
      return error_response(p.op, p.id, o.code, {});
    const program& prog = *srv_.deps.prog;
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
    if (p.op == opcode::balance)
      if (const brand_def* b = prog.find_brand(o.brand_id))
        r.brand = b->code;
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
    count_error(code);
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

  void count_error(errc code) {
    srv_.errors[static_cast<std::size_t>(code) % errc_slots].fetch_add(1, std::memory_order_relaxed);
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
        close();
      return;
    }
    writing_ = true;
    wbuf_.swap(out_);
    out_.clear();
    asio::async_write(sock_, asio::buffer(wbuf_), [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
      self->writing_ = false;
      self->wbuf_.clear();
      if (ec) {
        self->close();
        return;
      }
      self->flush();
      if (self->read_paused_ && self->out_.size() <= out_bytes_max) {
        self->read_paused_ = false;
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
  asio::ip::tcp::socket sock_;
  std::vector<char> in_;
  std::size_t in_len_ = 0;
  std::vector<char> out_, wbuf_;
  bool reading_ = false, writing_ = false, read_paused_ = false;
  bool close_after_write_ = false, closed_ = false, hello_done_ = false;
  std::uint32_t inflight_ = 0;
  std::vector<pending> pending_;
  std::vector<std::uint32_t> free_pending_;
  std::vector<batch_state> batches_;
  std::vector<std::uint32_t> free_batches_;
};

// -- server::impl ------------------------------------------------------------------------

bool server::impl::start(std::string& error) {
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
    if (ec) {
      if (ec != asio::error::operation_aborted && !stopped.load())
        accept();
      return;
    }
    auto s = std::make_shared<session>(*this, ctx, std::move(sock));
    connections_total.fetch_add(1, std::memory_order_relaxed);
    bool over = connections.fetch_add(1) + 1 > settings.connections_max;
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

void server::impl::stop() {
  if (stopped.exchange(true))
    return;
  if (acceptor)
    asio::post(*contexts[0], [this] {
      asio::error_code ec;
      acceptor->close(ec);
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
  std::lock_guard<std::mutex> guard(verify_mtx);
  if (verify_thread.joinable())
    verify_thread.join();
}

std::vector<std::pair<std::string, std::uint64_t>> server::impl::stats() {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  out.emplace_back("connections", connections.load());
  out.emplace_back("connections_total", connections_total.load());
  out.emplace_back("inflight", inflight.load());
  for (std::size_t i = 1; i < opcode_count; ++i)
    out.emplace_back(std::string("requests_") + to_string(static_cast<opcode>(i)), requests[i].load());
  for (std::size_t i = 1; i < errc_slots; ++i)
    if (auto n = errors[i].load(); n > 0)
      out.emplace_back(std::string("errors_") + std::string(to_string(static_cast<errc>(i))), n);
  auto ws = deps.ledger->stats();
  out.emplace_back("ledger_commits", ws.commits);
  out.emplace_back("ledger_entries", ws.entries);
  out.emplace_back("ledger_batch_max", ws.batch_max);
  out.emplace_back("ledger_commit_us_total", ws.commit_us_total);
  out.emplace_back("ledger_checkpoints", ws.checkpoints);
  out.emplace_back("ledger_checkpoint_accounts", ws.checkpoint_accounts);
  out.emplace_back("ledger_checkpoint_us_total", ws.checkpoint_us_total);
  out.emplace_back("ledger_accounts_cached", ws.accounts_cached);
  for (std::size_t i = 0; i < ws.batch_hist.size(); ++i)
    if (ws.batch_hist[i] > 0)
      out.emplace_back("ledger_batches_size_ge_" + std::to_string(std::uint64_t{1} << i), ws.batch_hist[i]);
  out.emplace_back("ledger_last_seq", deps.ledger->last_seq());
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

} // namespace loyalty::io
