// The server's shared state: the io threads, the accept loop, the
// registry of sessions and subscribers, counters and stats. Each
// connection is a session (io/server/session.cpp).
#include "io/server/server.hpp"

#include "config/log.hpp"
#include "config/thread_name.hpp"
#include "io/server/process.hpp"
#include "io/server/server_state.hpp"
#include "io/server/session.hpp"

#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace loyalty::io {

namespace {

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

server::impl::impl(const engine_settings& s, server_deps d) : settings(s), deps(std::move(d)) {
  for (std::uint32_t i = 0; i < std::max<std::uint32_t>(1, s.io_threads); ++i)
    contexts.push_back(std::make_unique<asio::io_context>(1));
  for (std::size_t i = 0; i < s.keys.size(); ++i)
    buckets.push_back(std::make_unique<bucket>());
}

bool server::impl::take_token(std::size_t i, std::size_t n) {
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
    threads.emplace_back([ctx = c.get(), n = threads.size()] {
      name_this_thread("io-" + std::to_string(n));
      ctx->run();
    });
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
    connections_total.fetch_add(1, std::memory_order_relaxed);
    // Connections are counted here, on this thread alone, and uncounted by
    // their sessions on any io thread: a refused one is never counted in
    // connections, so it holds no slot while its refusal is sent.
    const bool over = connections.fetch_add(1) + 1 > settings.connections_max;
    if (over) {
      connections.fetch_sub(1);
      count_close(close_reason::refused);
      if (refused_closing.fetch_add(1) + 1 > limits::refused_closing_max) {
        refused_closing.fetch_sub(1);
        asio::error_code ignored;
        sock.close(ignored);  // a flood: no frame, no linger, no fd kept
        accept();
        return;
      }
    }
    auto s = std::make_shared<session>(*this, ctx, std::move(sock));
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

void server::impl::close_acceptor() {
  if (acceptor)
    asio::post(*contexts[0], [this] {
      asio::error_code ec;
      acceptor->close(ec);
      if (accept_timer)
        accept_timer->cancel();
    });
}

void server::impl::begin_drain() {
  if (draining.exchange(true))
    return;
  close_acceptor();
}

bool server::impl::drained() {
  if (inflight.load() != 0 || output_bytes.load() != 0)
    return false;
  for (const auto& j : jobs)
    if (j.running.load())
      return false;
  return true;
}

bool server::impl::finish_drain(std::chrono::milliseconds limit) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + limit;
  auto wait_until_drained = [&](clock::time_point until) {
    while (!drained() && clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return drained();
  };
  if (wait_until_drained(deadline))
    return true;
  // What is still in flight will not be answered by the engine: say so.
  {
    std::lock_guard<std::mutex> guard(sessions_mtx);
    for (auto& w : sessions)
      if (auto s = w.lock())
        asio::post(s->context(), [s] { s->answer_unavailable(); });
  }
  // A moment for those answers to go out to clients that read.
  wait_until_drained(clock::now() + std::chrono::milliseconds(limits::wire_linger_ms / 4));
  return false;
}

void server::impl::stop() {
  if (stopped.exchange(true))
    return;
  deps.ledger->set_commit_listener({});
  close_acceptor();
  guards.clear();
  for (auto& c : contexts)
    c->stop();
  for (auto& t : threads)
    t.join();
  threads.clear();
  // The io threads are gone: close every connection from here, so that its
  // client reads the end of the stream now, not when the engine is freed.
  {
    std::lock_guard<std::mutex> guard(sessions_mtx);
    for (auto& w : sessions)
      if (auto s = w.lock())
        s->close();
    sessions.clear();
  }
  std::lock_guard<std::mutex> guard(jobs_mtx);
  for (auto& j : jobs)
    if (j.thread.joinable())
      j.thread.join();
}

std::vector<std::pair<std::string, std::uint64_t>> server::impl::stats() {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  out.emplace_back("connections", connections.load());
  out.emplace_back("connections_total", connections_total.load());
  out.emplace_back("inflight", inflight.load());
  out.emplace_back("output_bytes", output_bytes.load());
  out.emplace_back("connections_refused_closing", refused_closing.load());
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

void server::begin_drain() { impl_->begin_drain(); }

bool server::finish_drain(std::chrono::milliseconds limit) { return impl_->finish_drain(limit); }

std::uint16_t server::port() const noexcept { return impl_->bound_port; }

std::uint64_t server::connections() const noexcept { return impl_->connections.load(); }

std::uint64_t server::inflight() const noexcept { return impl_->inflight.load(); }

server_counters server::counters() const {
  const auto& i = *impl_;
  server_counters c;
  c.connections = i.connections.load(std::memory_order_relaxed);
  c.connections_total = i.connections_total.load(std::memory_order_relaxed);
  c.inflight = i.inflight.load(std::memory_order_relaxed);
  c.output_bytes = i.output_bytes.load(std::memory_order_relaxed);
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
  for (std::size_t b = 0; b < c.answer_us_hist.size(); ++b)
    c.answer_us_hist[b] = i.answer_us_hist[b].load(std::memory_order_relaxed);
  c.answer_us_total = i.answer_us_total.load(std::memory_order_relaxed);
  return c;
}

} // namespace loyalty::io
