// The C++ client library of the loyaltyd wire protocol (docs/PROTOCOL.md).
// Used by loyaltyctl, loyalty-loadgen and the tests; depends on nothing of the
// engine.
#pragma once

#include "io/codec.hpp"
#include "io/protocol.hpp"

#include <asio.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace loyalty::io {

// Blocking client over one TCP connection. Pipelining is allowed: send many
// requests, then receive their responses in completion order. Not
// thread-safe: one thread per client.
class client {
public:
  // Connects (no hello yet). Null with `error` set if the connection fails.
  [[nodiscard]] static std::unique_ptr<client> connect(const std::string& host, std::uint16_t port,
                                                       std::string& error);

  // hello with protocol version 1; returns the server's answer.
  response hello(const std::string& name = "loyalty-client");

  // Sends a request. Assigns r.id from a counter when it is 0; returns the id.
  // Throws std::runtime_error if the connection is broken.
  std::uint64_t send(request r);
  // Sends raw bytes (tests of bad input).
  void send_raw(const void* data, std::size_t size);

  // Next response, in arrival order. False on end of stream, a broken or
  // unreadable connection, or timeout; `error` says which.
  [[nodiscard]] bool receive(response& out, std::string& error,
                             std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Sends and waits for the response with the same id; responses to other
  // ids that arrive meanwhile are kept for later receive() calls. Throws
  // std::runtime_error if the connection fails.
  response call(request r);

  // Convenience wrappers around call().
  response enroll(std::uint64_t member, const std::string& brand);
  response earn(const std::string& txn, std::uint64_t member, const std::string& brand, std::int64_t amount,
                const std::string& currency, std::uint64_t occurred_at_us);
  response redeem(const std::string& txn, std::uint64_t member, std::int64_t points);
  response balance(std::uint64_t member);
  response verify();
  response stats();

private:
  client();
  bool read_frame(response& out, std::string& error, std::chrono::milliseconds timeout);

  asio::io_context ctx_;
  asio::ip::tcp::socket sock_;
  std::vector<char> in_;
  std::size_t in_len_ = 0;
  std::uint64_t next_id_ = 1;
  std::deque<response> stash_;
  std::vector<char> out_;
};

// Asynchronous pipelined connection on a caller-owned asio::io_context, for
// high request rates (the load generator). All calls and callbacks happen on
// the io_context's thread.
class async_connection : public std::enable_shared_from_this<async_connection> {
public:
  using handler = std::function<void(const response&)>;

  explicit async_connection(asio::io_context& ctx) : sock_(ctx) {}

  // Connects; `done` gets the error (empty on success).
  void connect(const std::string& host, std::uint16_t port, std::function<void(std::error_code)> done);

  // Assigns the id, queues the frame; writes are coalesced (one write for
  // everything queued while a write is in flight).
  std::uint64_t submit(request r, handler h);

  [[nodiscard]] std::size_t inflight() const noexcept { return handlers_.size(); }
  [[nodiscard]] bool open() const noexcept { return open_; }
  void close();

  // Called once when the connection fails or the server closes it.
  std::function<void(const std::string&)> on_error;

private:
  void write();
  void read();
  void fail(const std::string& why);

  asio::ip::tcp::socket sock_;
  std::vector<char> out_, writing_;
  std::vector<char> in_ = std::vector<char>(256 * 1024);
  std::size_t in_len_ = 0;
  bool write_active_ = false;
  bool open_ = false;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, handler> handlers_;
};

} // namespace loyalty::io
