#include "io/client/client.hpp"

#include "io/wire/stream.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace loyalty::io {

namespace {

bool is_ip_literal(const std::string& host) {
  asio::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// A client context for one connection: TLS 1.2 or later, checking the
// server's certificate against `o.ca_file` (or the system store) unless
// `o.verify` is false. Null with `error` set when the CA file is unusable.
std::unique_ptr<asio::ssl::context> client_context(const tls_options& o, std::string& error) {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  if (!o.verify) {
    ctx->set_verify_mode(asio::ssl::verify_none);
    return ctx;
  }
  asio::error_code ec;
  if (o.ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    std::ifstream probe(o.ca_file);
    if (!probe) {
      error = "cannot read TLS CA file " + o.ca_file + ": " + std::strerror(errno);
      return nullptr;
    }
    ctx->load_verify_file(o.ca_file, ec);
  }
  if (ec) {
    error = "cannot load TLS CA " + (o.ca_file.empty() ? std::string("store") : "file " + o.ca_file) + ": " +
            ec.message();
    return nullptr;
  }
  ctx->set_verify_mode(asio::ssl::verify_peer);
  return ctx;
}

// Sets the server name sent (SNI) and, when verifying, checked against the
// certificate; neither for an IP literal.
void name_server(detail::stream& s, const std::string& host, const tls_options& o) {
  if (is_ip_literal(host))
    return;
  SSL* ssl = s.tls_layer().native_handle();
  SSL_set_tlsext_host_name(ssl, host.c_str());
  if (o.verify)
    SSL_set1_host(ssl, host.c_str());
}

// "TLS handshake with H:P failed: <reason>[: <what the certificate check found>]".
std::string handshake_error(detail::stream& s, const std::string& host, std::uint16_t port,
                            const asio::error_code& ec) {
  std::string why = "TLS handshake with " + host + ":" + std::to_string(port) + " failed: " + ec.message();
  const long verdict = SSL_get_verify_result(s.tls_layer().native_handle());
  if (verdict != X509_V_OK)
    why += std::string(": the server's certificate: ") + X509_verify_cert_error_string(verdict);
  return why;
}

} // namespace

// -- client ------------------------------------------------------------------------

client::client() { in_.resize(64 * 1024); }

client::~client() = default;

std::unique_ptr<client> client::connect(const std::string& host, std::uint16_t port, std::string& error) {
  return connect(host, port, tls_options{}, error);
}

std::unique_ptr<client> client::connect(const std::string& host, std::uint16_t port, const tls_options& tls,
                                        std::string& error) {
  std::unique_ptr<asio::ssl::context> tls_ctx;
  if (tls.enabled) {
    tls_ctx = client_context(tls, error);
    if (!tls_ctx)
      return nullptr;
  }
  std::unique_ptr<client> c(new client());
  asio::error_code ec;
  asio::ip::tcp::socket sock(c->ctx_);
  asio::ip::tcp::resolver resolver(c->ctx_);
  auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (!ec) {
    asio::connect(sock, endpoints, ec);
    // A signal (a profiler's or a fuzzer's timer) interrupts a blocking
    // connect (EINTR) without saying anything about the server: try again
    // on a new socket (the assignment closes the old one).
    for (int retry = 0; ec == asio::error::interrupted && retry < 100; ++retry) {
      sock = asio::ip::tcp::socket(c->ctx_);
      ec.clear();
      asio::connect(sock, endpoints, ec);
    }
  }
  if (ec) {
    error = "cannot connect to " + host + ":" + std::to_string(port) + ": " + ec.message();
    return nullptr;
  }
  sock.set_option(asio::ip::tcp::no_delay(true), ec);
  if (!tls.enabled) {
    c->stream_ = std::make_unique<detail::stream>(std::move(sock), nullptr);
    return c;
  }
  c->stream_ = std::make_unique<detail::stream>(std::move(sock), std::move(tls_ctx));
  name_server(*c->stream_, host, tls);
  do  // a handshake interrupted by a signal picks up where it stopped
    c->stream_->tls_layer().handshake(asio::ssl::stream_base::client, ec);
  while (ec == asio::error::interrupted);
  if (ec) {
    error = handshake_error(*c->stream_, host, port, ec);
    return nullptr;
  }
  return c;
}

void member_ref::apply(request& r) const {
  if (alias.empty())
    r.member = id;
  else
    r.alias = alias;
}

response client::hello(const std::string& name, const std::string& key) {
  request r;
  r.op = opcode::hello;
  r.version = limits::protocol_version_max;
  r.client_name = name;
  r.key = key;
  return call(std::move(r));
}

std::uint64_t client::send(request r) {
  if (r.id == 0)
    r.id = next_id_++;
  out_.clear();
  encode_request(out_, r);
  send_raw(out_.data(), out_.size());
  return r.id;
}

void client::send_raw(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    asio::error_code ec;
    const std::size_t n = stream_->write(asio::buffer(p, size), ec);
    p += n;
    size -= n;
    if (ec && ec != asio::error::interrupted)  // a signal: write the rest
      throw std::runtime_error("send failed: " + ec.message());
  }
}

bool client::read_frame(response& out, std::string& error, std::chrono::milliseconds timeout) {
  // Each blocking read waits first for the socket to be readable within
  // what is left of `timeout` (poll), so a dead or silent server cannot hang
  // a client. (SO_RCVTIMEO is not enough: Asio's blocking read polls
  // without a timeout when recv times out.)
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (in_len_ >= frame_header_bytes) {
      auto len = read_be32(reinterpret_cast<const unsigned char*>(in_.data()));
      if (len == 0 || len > limits::frame_bytes_max) {
        error = "the server sent a frame of impossible length " + std::to_string(len);
        return false;
      }
      if (in_.size() < frame_header_bytes + len)
        in_.resize(frame_header_bytes + len);
      if (in_len_ >= frame_header_bytes + len) {
        bool ok = decode_response(in_.data() + frame_header_bytes, len, out, error);
        std::memmove(in_.data(), in_.data() + frame_header_bytes + len, in_len_ - frame_header_bytes - len);
        in_len_ -= frame_header_bytes + len;
        return ok;
      }
    }
    // Bytes TLS has decrypted already are not on the socket: read them at once.
    const bool buffered = stream_->tls() && SSL_pending(stream_->tls_layer().native_handle()) > 0;
    if (!buffered) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{stream_->socket().native_handle(), POLLIN, 0};
      const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), INT32_MAX))) : 0;
      if (ready < 0 && errno == EINTR)
        continue;  // a signal, not the server: wait on, within what is left
      if (ready == 0) {
        error = "timed out waiting for a response";
        return false;
      }
    }
    asio::error_code ec;
    auto n = stream_->read_some(asio::buffer(in_.data() + in_len_, in_.size() - in_len_), ec);
    if (ec == asio::error::interrupted)
      continue;
    if (ec) {
      error = detail::closed_by_peer(ec) ? "the server closed the connection"
              : (ec == asio::error::would_block || ec == asio::error::try_again) ? "timed out waiting for a response"
                                                                                  : ec.message();
      return false;
    }
    in_len_ += n;
  }
}

bool client::receive(response& out, std::string& error, std::chrono::milliseconds timeout) {
  if (!stash_.empty()) {
    out = std::move(stash_.front());
    stash_.pop_front();
    return true;
  }
  return read_frame(out, error, timeout);
}

bool split_address(const std::string& address, std::string& host, std::uint16_t& port) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size() || colon + 6 < address.size())
    return false;
  host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long n = 0;
  for (std::size_t i = colon + 1; i < address.size(); ++i) {
    if (address[i] < '0' || address[i] > '9')
      return false;
    n = n * 10 + static_cast<unsigned long>(address[i] - '0');
  }
  if (host.empty() || n == 0 || n > 65535)
    return false;
  port = static_cast<std::uint16_t>(n);
  return true;
}

response call_following_leader(std::unique_ptr<client>& c, const request& r, const follow_options& f) {
  const auto until = std::chrono::steady_clock::now() + f.patience;
  for (;;) {
    response a = c->call(r);
    if (a.code != errc::not_leader || std::chrono::steady_clock::now() >= until)
      return a;
    if (a.leader.empty()) {
      std::this_thread::sleep_for(f.pause);
      continue;
    }
    std::string host, error;
    std::uint16_t port = 0;
    auto next = split_address(a.leader, host, port) ? client::connect(host, port, f.tls, error) : nullptr;
    if (!next || !next->hello(f.name, f.key).ok()) {
      std::this_thread::sleep_for(f.pause);  // it may be going away: ask again
      continue;
    }
    c = std::move(next);
  }
}

response client::call(request r) {
  auto id = send(std::move(r));
  for (;;) {
    response resp;
    std::string error;
    if (!read_frame(resp, error, std::chrono::seconds(60)))
      throw std::runtime_error(error);
    // Error frames for unparseable input carry id 0; the connection-level
    // ones are returned to whoever waits.
    if (resp.id == id || (resp.id == 0 && resp.code != errc::ok))
      return resp;
    stash_.push_back(std::move(resp));
  }
}

response client::enroll(std::uint64_t member, const std::string& brand) {
  request r;
  r.op = opcode::enroll;
  r.member = member;
  r.brand = brand;
  return call(std::move(r));
}

namespace {

request make(opcode op, const std::string& txn, const member_ref& member) {
  request r;
  r.op = op;
  r.txn = txn;
  member.apply(r);
  return r;
}

// An earn or a quote: the same purchase fields.
request purchase(opcode op, const std::string& txn, const member_ref& member, const std::string& brand,
                 std::int64_t amount, const std::string& currency, std::uint64_t occurred_at_us,
                 std::vector<item> items, const std::string& channel, const std::string& store) {
  auto r = make(op, txn, member);
  r.brand = brand;
  r.amount = amount;
  r.currency = currency;
  r.occurred_at_us = occurred_at_us;
  r.items = std::move(items);
  r.channel = channel;
  r.store = store;
  return r;
}

} // namespace

response client::earn(const std::string& txn, const member_ref& member, const std::string& brand,
                      std::int64_t amount, const std::string& currency, std::uint64_t occurred_at_us) {
  return earn(txn, member, brand, amount, currency, occurred_at_us, {});
}

response client::earn(const std::string& txn, const member_ref& member, const std::string& brand,
                      std::int64_t amount, const std::string& currency, std::uint64_t occurred_at_us,
                      std::vector<item> items, const std::string& channel, const std::string& store) {
  return call(purchase(opcode::earn, txn, member, brand, amount, currency, occurred_at_us, std::move(items), channel,
                       store));
}

response client::quote(const member_ref& member, const std::string& brand, std::int64_t amount,
                       const std::string& currency, std::uint64_t occurred_at_us, std::vector<item> items,
                       const std::string& channel, const std::string& store) {
  return call(purchase(opcode::quote, "", member, brand, amount, currency, occurred_at_us, std::move(items), channel,
                       store));
}

response client::redeem(const std::string& txn, const member_ref& member, std::int64_t points,
                        const std::string& brand) {
  auto r = make(opcode::redeem, txn, member);
  r.points = points;
  r.brand = brand;
  return call(std::move(r));
}

response client::balance(const member_ref& member) { return call(make(opcode::balance, "", member)); }

response client::event(const std::string& txn, const member_ref& member, const std::string& event,
                       const std::string& brand, std::uint64_t occurred_at_us, const std::string& channel,
                       const std::string& store) {
  auto r = make(opcode::event, txn, member);
  r.event = event;
  r.brand = brand;
  r.occurred_at_us = occurred_at_us;
  r.channel = channel;
  r.store = store;
  return call(std::move(r));
}

response client::hold(const std::string& txn, const member_ref& member, std::int64_t points,
                      const std::string& brand, std::uint64_t ttl_s) {
  auto r = make(opcode::hold, txn, member);
  r.points = points;
  r.brand = brand;
  r.ttl_s = ttl_s;
  return call(std::move(r));
}

response client::capture(const std::string& txn, const member_ref& member, std::uint64_t hold,
                         std::int64_t points) {
  auto r = make(opcode::capture, txn, member);
  r.hold = hold;
  r.points = points;
  return call(std::move(r));
}

response client::release(const std::string& txn, const member_ref& member, std::uint64_t hold) {
  auto r = make(opcode::release, txn, member);
  r.hold = hold;
  return call(std::move(r));
}

response client::redeem_reward(const std::string& txn, const member_ref& member, const std::string& reward) {
  auto r = make(opcode::redeem_reward, txn, member);
  r.reward = reward;
  return call(std::move(r));
}

response client::refund(const std::string& txn, const member_ref& member, const std::string& ref,
                        std::int64_t amount, std::uint64_t occurred_at_us) {
  auto r = make(opcode::refund, txn, member);
  r.ref = ref;
  r.amount = amount;
  r.occurred_at_us = occurred_at_us;
  return call(std::move(r));
}

response client::refund_items(const std::string& txn, const member_ref& member, const std::string& ref,
                              std::vector<item> items, std::uint64_t occurred_at_us) {
  auto r = make(opcode::refund, txn, member);
  r.ref = ref;
  r.items = std::move(items);
  r.occurred_at_us = occurred_at_us;
  return call(std::move(r));
}

response client::reverse_redemption(const std::string& txn, const member_ref& member, const std::string& ref) {
  auto r = make(opcode::reverse_redemption, txn, member);
  r.ref = ref;
  return call(std::move(r));
}

response client::release_pending(const std::string& txn, const member_ref& member, const std::string& ref) {
  auto r = make(opcode::release_pending, txn, member);
  r.ref = ref;
  return call(std::move(r));
}

response client::adjust(const std::string& txn, const member_ref& member, std::int64_t points,
                        const std::string& reason, const std::string& brand) {
  auto r = make(opcode::adjust, txn, member);
  r.points = points;
  r.reason = reason;
  r.brand = brand;
  return call(std::move(r));
}

response client::erase(const std::string& txn, std::uint64_t member, const std::string& reason) {
  auto r = make(opcode::erase, txn, member);
  r.reason = reason;
  return call(std::move(r));
}

namespace {
request with_reason(opcode op, const std::string& txn, const member_ref& member, const std::string& reason) {
  auto r = make(op, txn, member);
  r.reason = reason;
  return r;
}
} // namespace

response client::block(const std::string& txn, const member_ref& member, const std::string& reason) {
  return call(with_reason(opcode::block, txn, member, reason));
}

response client::unblock(const std::string& txn, const member_ref& member, const std::string& reason) {
  return call(with_reason(opcode::unblock, txn, member, reason));
}

response client::risk_report(std::uint64_t after, std::uint32_t limit) {
  request r;
  r.op = opcode::risk_report;
  r.after = after;
  r.limit = limit;
  return call(std::move(r));
}

response client::transfer(const std::string& txn, const member_ref& from, std::uint64_t to, std::int64_t points) {
  auto r = make(opcode::transfer, txn, from);
  r.to = to;
  r.points = points;
  return call(std::move(r));
}

response client::household_join(const std::string& txn, const member_ref& member, std::uint64_t household) {
  auto r = make(opcode::household_join, txn, member);
  r.household = household;
  return call(std::move(r));
}

response client::household_leave(const std::string& txn, const member_ref& member) {
  return call(make(opcode::household_leave, txn, member));
}

namespace {
request household_request(opcode op, const std::string& txn, std::uint64_t household) {
  request r;
  r.op = op;
  r.txn = txn;
  r.household = household;
  return r;
}
} // namespace

response client::household_dissolve(const std::string& txn, std::uint64_t household) {
  return call(household_request(opcode::household_dissolve, txn, household));
}

response client::household(std::uint64_t household) { return call(household_request(opcode::household, "", household)); }

response client::link_alias(const std::string& txn, std::uint64_t member, const std::string& alias) {
  request r;
  r.op = opcode::link_alias;
  r.txn = txn;
  r.member = member;
  r.alias = alias;
  return call(std::move(r));
}

response client::lookup(const std::string& alias) {
  request r;
  r.op = opcode::lookup;
  r.alias = alias;
  return call(std::move(r));
}

response client::history(const member_ref& member, std::uint64_t before, std::uint32_t limit) {
  auto r = make(opcode::history, "", member);
  r.before = before;
  r.limit = limit;
  return call(std::move(r));
}

response client::expire_all(std::uint64_t as_of_us) {
  request r;
  r.op = opcode::expire;
  r.as_of_us = as_of_us;
  return call(std::move(r));
}

response client::expire(const member_ref& member, std::uint64_t as_of_us) {
  auto r = make(opcode::expire, "", member);
  r.as_of_us = as_of_us;
  return call(std::move(r));
}

response client::verify() {
  request r;
  r.op = opcode::verify;
  return call(std::move(r));
}

response client::backup(const std::string& dir) {
  request r;
  r.op = opcode::backup;
  r.path = dir;
  return call(std::move(r));
}

response client::consent(const std::string& txn, const member_ref& member, std::uint32_t mask,
                         std::uint32_t values, const std::string& source, std::uint64_t occurred_at_us) {
  request r;
  r.op = opcode::consent;
  r.txn = txn;
  member.apply(r);
  r.consent_mask = mask;
  r.consent_values = values;
  r.source = source;
  r.occurred_at_us = occurred_at_us;
  return call(std::move(r));
}

response client::subscribe(std::uint64_t from, std::uint32_t types, std::uint32_t consent, const std::string& brand) {
  request r;
  r.op = opcode::subscribe;
  r.from_seq = from;
  r.event_types = types;
  r.consent_filter = consent;
  r.brand = brand;
  return call(std::move(r));
}

response client::journal(std::uint64_t from, std::uint32_t limit) {
  request r;
  r.op = opcode::journal;
  r.from_seq = from;
  r.limit = limit;
  return call(std::move(r));
}

response client::stats() {
  request r;
  r.op = opcode::stats;
  return call(std::move(r));
}

response client::partner_earn(const std::string& txn, const member_ref& member, const std::string& partner,
                              std::int64_t points, std::int64_t amount, std::uint64_t occurred_at_us) {
  auto r = make(opcode::partner_earn, txn, member);
  r.partner = partner;
  r.points = points;
  r.amount = amount;
  r.occurred_at_us = occurred_at_us;
  return call(std::move(r));
}

response client::partner_burn(const std::string& txn, const member_ref& member, const std::string& partner,
                              std::int64_t points) {
  auto r = make(opcode::partner_burn, txn, member);
  r.partner = partner;
  r.points = points;
  return call(std::move(r));
}

response client::liability(const std::string& brand) {
  request r;
  r.op = opcode::liability;
  r.brand = brand;
  return call(std::move(r));
}

response client::activity(const std::string& brand, std::uint64_t from_us, std::uint64_t to_us) {
  request r;
  r.op = opcode::activity;
  r.brand = brand;
  r.from_us = from_us;
  r.to_us = to_us;
  return call(std::move(r));
}

namespace {

request statement_request(std::uint64_t from_us, std::uint64_t to_us, std::uint64_t after, std::uint32_t limit) {
  request r;
  r.op = opcode::settlement;
  r.from_us = from_us;
  r.to_us = to_us;
  r.after = after;
  r.limit = limit;
  return r;
}

} // namespace

response client::settlement_of_brand(const std::string& brand, std::uint64_t from_us, std::uint64_t to_us,
                                     std::uint64_t after, std::uint32_t limit) {
  auto r = statement_request(from_us, to_us, after, limit);
  r.brand = brand;
  return call(std::move(r));
}

response client::settlement_of_partner(const std::string& partner, std::uint64_t from_us, std::uint64_t to_us,
                                       std::uint64_t after, std::uint32_t limit) {
  auto r = statement_request(from_us, to_us, after, limit);
  r.partner = partner;
  return call(std::move(r));
}

response client::report(const std::string& brand, std::uint64_t from_us, std::uint64_t to_us,
                        std::uint32_t active_days, std::uint32_t top) {
  request r;
  r.op = opcode::report;
  r.brand = brand;
  r.from_us = from_us;
  r.to_us = to_us;
  r.active_days = active_days;
  r.top = top;
  return call(std::move(r));
}

// -- async_connection -----------------------------------------------------------------

async_connection::async_connection(asio::io_context& ctx) : sock_(ctx) {}

async_connection::~async_connection() = default;

void async_connection::connect(const std::string& host, std::uint16_t port,
                               std::function<void(std::error_code)> done) {
  connect(host, port, tls_options{}, std::move(done));
}

void async_connection::connect(const std::string& host, std::uint16_t port, const tls_options& tls,
                               std::function<void(std::error_code)> done) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) {
    connect_error_ = "cannot connect to " + host + ": " + ec.message();
    done(ec);
    return;
  }
  std::unique_ptr<asio::ssl::context> tls_ctx;
  if (tls.enabled) {
    tls_ctx = client_context(tls, connect_error_);
    if (!tls_ctx) {
      done(std::make_error_code(std::errc::invalid_argument));
      return;
    }
  }
  // The context moves into the handler (a shared_ptr: handlers are copied).
  auto shared_ctx = std::make_shared<std::unique_ptr<asio::ssl::context>>(std::move(tls_ctx));
  sock_.async_connect(
    asio::ip::tcp::endpoint(addr, port),
    [self = shared_from_this(), done = std::move(done), host, port, tls, shared_ctx](const asio::error_code& e) mutable {
      if (e) {
        self->connect_error_ = "cannot connect to " + host + ":" + std::to_string(port) + ": " + e.message();
        done(e);
        return;
      }
      asio::error_code ignored;
      self->sock_.set_option(asio::ip::tcp::no_delay(true), ignored);
      if (!tls.enabled) {
        self->stream_ = std::make_unique<detail::stream>(std::move(self->sock_), nullptr);
        self->opened(done);
        return;
      }
      self->stream_ = std::make_unique<detail::stream>(std::move(self->sock_), std::move(*shared_ctx));
      name_server(*self->stream_, host, tls);
      self->stream_->tls_layer().async_handshake(
        asio::ssl::stream_base::client, [self, done = std::move(done), host, port](const asio::error_code& he) mutable {
          if (he) {
            self->connect_error_ = handshake_error(*self->stream_, host, port, he);
            self->stream_->close();
            done(he);
            return;
          }
          self->opened(done);
        });
    });
}

void async_connection::opened(std::function<void(std::error_code)>& done) {
  open_ = true;
  read();
  write();  // whatever was submitted while connecting
  done({});
}

std::uint64_t async_connection::submit(request r, handler h) { return submit_kept(r, std::move(h)); }

std::uint64_t async_connection::submit_kept(request& r, handler h) {
  r.id = next_id_++;
  encode_request(out_, r);
  handlers_.emplace(r.id, std::move(h));
  if (!write_active_)
    write();
  return r.id;
}

void async_connection::write() {
  if (!open_ || out_.empty())
    return;
  write_active_ = true;
  writing_.swap(out_);
  out_.clear();
  stream_->async_write(asio::buffer(writing_), [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
    self->write_active_ = false;
    self->writing_.clear();
    if (ec) {
      self->fail("write failed: " + ec.message());
      return;
    }
    self->write();
  });
}

void async_connection::read() {
  if (in_len_ == in_.size())
    in_.resize(in_.size() * 2);
  stream_->async_read_some(asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
                        [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                          if (!self->open_)
                            return;  // closed meanwhile: nothing more is delivered
                          if (ec) {
                            self->fail(detail::closed_by_peer(ec) ? "the server closed the connection" : ec.message());
                            return;
                          }
                          self->in_len_ += n;
                          std::size_t pos = 0;
                          response resp;
                          while (self->in_len_ - pos >= frame_header_bytes) {
                            auto len = read_be32(reinterpret_cast<const unsigned char*>(self->in_.data() + pos));
                            if (len == 0 || len > limits::frame_bytes_max) {
                              self->fail("the server sent a frame of impossible length");
                              return;
                            }
                            if (self->in_len_ - pos < frame_header_bytes + len) {
                              if (self->in_.size() < frame_header_bytes + len)
                                self->in_.resize(frame_header_bytes + len);
                              break;
                            }
                            std::string err;
                            if (!decode_response(self->in_.data() + pos + frame_header_bytes, len, resp, err)) {
                              self->fail(err);
                              return;
                            }
                            pos += frame_header_bytes + len;
                            auto it = self->handlers_.find(resp.id);
                            if (it != self->handlers_.end()) {
                              auto h = std::move(it->second);
                              self->handlers_.erase(it);
                              h(resp);
                              if (!self->open_)
                                return;  // closed by the handler: the rest is not delivered
                            } else if (resp.code != errc::ok) {
                              self->fail(std::string("connection-level error: ") + std::string(to_string(resp.code)) +
                                         ": " + resp.message);
                              return;
                            }
                          }
                          std::memmove(self->in_.data(), self->in_.data() + pos, self->in_len_ - pos);
                          self->in_len_ -= pos;
                          self->read();
                        });
}

void async_connection::fail(const std::string& why) {
  if (!open_)
    return;
  open_ = false;
  close_stream();
  if (on_error)
    on_error(why);
}

void async_connection::close() {
  open_ = false;
  close_stream();
}

void async_connection::close_stream() {
  if (stream_) {
    stream_->close();
  } else {
    asio::error_code ec;
    sock_.close(ec);
  }
}

} // namespace loyalty::io
