// One connected byte stream, plain TCP or TLS over TCP, chosen when it is
// made. The server's sessions and the client library read and write through
// it, so their framing logic exists once whatever the transport. With the
// TLS set-up in the server (io/server/) and the client library
// (io/client/), the only code that sees OpenSSL (through Asio's SSL layer).
//
// Thread affinity: as the Asio objects it wraps (one thread, or one strand,
// at a time).
#pragma once

#include <asio.hpp>
#include <asio/ssl.hpp>

#include <memory>
#include <string>
#include <utility>
#include <variant>

namespace loyalty::io::detail {

class stream {
public:
  using tcp = asio::ip::tcp;
  using tls_stream = asio::ssl::stream<tcp::socket>;
  using socket_type = tcp::socket::lowest_layer_type;

  // Plain TCP when `tls` is null; TLS otherwise, with `tls` outliving the
  // stream (the server's one context). The TLS handshake is the caller's.
  stream(tcp::socket sock, asio::ssl::context* tls) : s_(make(std::move(sock), tls)) {}
  // TLS with a context of its own (a client connection's).
  stream(tcp::socket sock, std::unique_ptr<asio::ssl::context> tls)
    : owned_(std::move(tls)), s_(make(std::move(sock), owned_.get())) {}
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  [[nodiscard]] bool tls() const noexcept { return s_.index() == 1; }
  // Only when tls().
  tls_stream& tls_layer() { return std::get<1>(s_); }
  // The TCP socket underneath (options, addresses, close).
  socket_type& socket() {
    return std::visit([](auto& s) -> socket_type& { return s.lowest_layer(); }, s_);
  }

  template <class Buffers, class Handler>
  void async_read_some(const Buffers& b, Handler&& h) {
    std::visit([&](auto& s) { s.async_read_some(b, std::forward<Handler>(h)); }, s_);
  }
  // Some of `b`: at least one byte, or an error.
  template <class Buffers, class Handler>
  void async_write_some(const Buffers& b, Handler&& h) {
    std::visit([&](auto& s) { s.async_write_some(b, std::forward<Handler>(h)); }, s_);
  }
  // All of `b`, as asio::async_write.
  template <class Buffers, class Handler>
  void async_write(const Buffers& b, Handler&& h) {
    std::visit([&](auto& s) { asio::async_write(s, b, std::forward<Handler>(h)); }, s_);
  }
  template <class Buffers>
  std::size_t read_some(const Buffers& b, asio::error_code& ec) {
    return std::visit([&](auto& s) { return s.read_some(b, ec); }, s_);
  }
  template <class Buffers>
  std::size_t write(const Buffers& b, asio::error_code& ec) {
    return std::visit([&](auto& s) { return asio::write(s, b, ec); }, s_);
  }

  // Closes the TCP connection at once: no TLS close_notify, which would
  // wait on the peer. Pending operations complete with operation_aborted.
  void close() noexcept {
    asio::error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
  }

private:
  using either = std::variant<tcp::socket, tls_stream>;
  static either make(tcp::socket sock, asio::ssl::context* tls) {
    if (tls == nullptr)
      return either(std::in_place_index<0>, std::move(sock));
    return either(std::in_place_index<1>, std::move(sock), *tls);
  }

  std::unique_ptr<asio::ssl::context> owned_;  // declared first: outlives s_
  either s_;
};

// The end of a stream as a peer sees it: EOF, or a TLS peer that closed its
// TCP connection without close_notify (which the server does; see close()).
[[nodiscard]] inline bool closed_by_peer(const asio::error_code& ec) noexcept {
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

} // namespace loyalty::io::detail
