// A pipelined asynchronous connection to a cluster that follows its leader
// (docs/PROTOCOL.md, error 67 not_leader), for callers with many requests in
// flight (the load generator); call_following_leader in client.hpp is the
// one-request-at-a-time form.
//
// It keeps every request it was given until the request is answered, so it
// can send it again, unchanged (same txn id: a request the old leader did
// commit is a replay, answered as the original), on another connection:
// - a `not_leader` answer closes the connection; it connects to the leader
//   the answer names, or, when it names none (an election), after `pause`
//   to the next of its addresses; says hello; and sends again every request
//   not answered yet;
// - a connection that fails or that the server closes (the node was killed)
//   is replaced the same way, starting with the next address at once, each
//   further attempt after `pause`.
// Its owner's handlers see every answer but `not_leader`; after `patience`
// without an answer other than not_leader since the first failure, it gives
// up (on_error) and answers nothing more. What it keeps is bounded by what
// its owner has in flight: it sends nothing of its own but hello.
//
// Thread affinity: the io_context's thread; every call and callback happens
// there. Ownership: held by a shared_ptr (its timers and connections refer
// back to it); close() (or destruction) ends every callback.
#pragma once

#include "io/client/client.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace loyalty::io {

// What a following_connection did, for its owner's report.
struct follow_counters {
  std::uint64_t not_leader = 0;  // not_leader answers followed (each closed the connection it came on)
  std::uint64_t dropped = 0;     // connections that failed or that the server closed
  std::uint64_t reconnects = 0;  // new connections that said hello after either
  std::uint64_t resent = 0;      // requests sent again, unchanged, on a new connection
};

enum class follow_event {
  not_leader,   // detail: the leader named ("" in an election)
  dropped,      // detail: why the connection ended
  reconnected,  // detail: the address it now talks to
};

class following_connection : public std::enable_shared_from_this<following_connection> {
public:
  using handler = async_connection::handler;

  // `addresses`: host:port of the cluster's nodes (at least one, each
  // checked with split_address by the caller); `first`: the one to start
  // with (modulo their number). `f` gives hello's name and key, TLS, patience
  // and pause.
  following_connection(asio::io_context& ctx, std::vector<std::string> addresses, std::size_t first,
                       follow_options f);
  ~following_connection();
  following_connection(const following_connection&) = delete;
  following_connection& operator=(const following_connection&) = delete;

  // Connects to the first address (failing that, each next one once) and
  // says hello; `done` gets "" once hello was answered ok, else why not
  // (no address could be reached, or hello was refused: not retried, the
  // key would be refused everywhere).
  void start(std::function<void(const std::string& error)> done);

  // Queues `r` (sent at once when connected; else once hello is answered)
  // and keeps it until `h` got its answer.
  void submit(request r, handler h);

  [[nodiscard]] std::size_t inflight() const noexcept { return inflight_; }
  // False once it gave up or was closed.
  [[nodiscard]] bool open() const noexcept { return !closed_; }
  // The node it talks to, or is connecting to.
  [[nodiscard]] const std::string& address() const noexcept { return address_; }
  [[nodiscard]] const follow_counters& counters() const noexcept { return counters_; }
  // Closes the connection; no callback runs after it.
  void close();

  // Each not_leader followed, connection dropped, and new connection.
  std::function<void(follow_event, const std::string& detail)> on_event;
  // Called once when it gives up (the sentence says why); nothing is answered after it.
  std::function<void(const std::string&)> on_error;

private:
  struct entry {
    request req;
    handler h;
    std::uint64_t order = 0;   // submit order: requests are sent again in it
    std::uint32_t serial = 0;  // changes at each sending and at release: a stale answer is ignored
    bool in_use = false;
    bool sent = false;         // on the current connection
    bool ever_sent = false;
  };
  using steady = std::chrono::steady_clock;

  void attempt(std::string address, std::chrono::milliseconds delay);
  void connect_now();
  void attempt_failed(const std::string& why);
  void hello_answered(const response& a);
  void answered(std::uint32_t i, std::uint32_t serial, const response& a);
  void send(std::uint32_t i);
  void follow(const std::string& leader);
  void dropped(const std::string& why);
  void lose_connection();
  // attempt(), unless the outage has lasted `patience`: then give_up().
  void retry(std::string address, std::chrono::milliseconds delay);
  void give_up(const std::string& why);
  void release(std::uint32_t i);
  [[nodiscard]] std::string next_address();
  void event(follow_event e, const std::string& detail);

  asio::io_context& ctx_;
  std::vector<std::string> addresses_;
  std::size_t next_address_;  // the next to try (modulo their number)
  follow_options f_;
  asio::steady_timer timer_;
  std::shared_ptr<async_connection> link_;
  std::uint32_t link_serial_ = 0;  // which attempt link_ is: callbacks of older ones are ignored
  std::string address_;
  bool ready_ = false;   // link_ answered hello
  bool closed_ = false;  // gave up, or close()
  std::function<void(const std::string&)> starting_;  // until the first hello is answered
  std::size_t start_tries_ = 0;
  std::optional<steady::time_point> outage_since_;    // the first failure not followed by an answer yet
  std::string last_failure_;
  std::vector<entry> entries_;
  std::vector<std::uint32_t> free_;
  std::size_t inflight_ = 0;
  std::uint64_t next_order_ = 0;
  follow_counters counters_;
};

} // namespace loyalty::io
