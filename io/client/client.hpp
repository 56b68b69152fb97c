// The C++ client library of the loyaltyd wire protocol (docs/PROTOCOL.md).
// Used by loyaltyctl, loyalty-loadgen and the tests; depends on nothing of the
// engine.
#pragma once

#include "io/wire/codec.hpp"
#include "io/wire/protocol.hpp"

#include <asio.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <utility>
#include <string>
#include <unordered_map>
#include <vector>

namespace loyalty::io {

namespace detail {
class stream;
} // namespace detail

// TLS for a client connection (docs/PROTOCOL.md section 1). Off unless
// `enabled`; a server with TLS configured accepts TLS connections only.
struct tls_options {
  bool enabled = false;
  // PEM file of the CA certificate(s) the server's certificate must chain
  // to (for a self-signed server certificate: that certificate). Empty: the
  // system's trust store.
  std::string ca_file;
  // Checks the server's certificate chain, and its name when the host is a
  // DNS name (not when it is an IP literal). false accepts ANY certificate,
  // so anyone on the path can read and change the traffic: for testing with
  // self-signed certificates only, never the default.
  bool verify = true;
};

// The member an operation addresses: an id, or an alias that link_alias
// attached to one (docs/PROTOCOL.md section 2.1). Converts implicitly from
// either, so `c.balance(42)` and `c.balance("card-4411")` both work.
struct member_ref {
  std::uint64_t id = 0;
  std::string alias;  // used when not empty

  member_ref(std::uint64_t member) : id(member) {}          // NOLINT(google-explicit-constructor)
  member_ref(std::string member_alias) : alias(std::move(member_alias)) {}  // NOLINT
  member_ref(const char* member_alias) : alias(member_alias) {}           // NOLINT

  // Sets request.member or request.alias.
  void apply(request& r) const;
};

// Blocking client over one TCP connection. Pipelining is allowed: send many
// requests, then receive their responses in completion order. Not
// thread-safe: one thread per client.
class client {
public:
  // Connects over plain TCP (no hello yet). Null with `error` set if the
  // connection fails.
  [[nodiscard]] static std::unique_ptr<client> connect(const std::string& host, std::uint16_t port,
                                                       std::string& error);
  // Connects, over TLS when `tls.enabled` (handshake and certificate check
  // done before it returns). Null with `error` set (a sentence naming the
  // cause, e.g. the certificate check that failed) otherwise.
  [[nodiscard]] static std::unique_ptr<client> connect(const std::string& host, std::uint16_t port,
                                                       const tls_options& tls, std::string& error);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // hello with protocol version 1; returns the server's answer. `key` is the
  // admin key that adjust and expire need (empty: none).
  response hello(const std::string& name = "loyalty-client", const std::string& key = "");

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

  // Convenience wrappers around call(), one per operation; arguments as in
  // docs/PROTOCOL.md section 3 (0 / empty = leave the optional field out).
  // Each returns the server's answer, errors included; they throw only as
  // call() does.
  response enroll(std::uint64_t member, const std::string& brand);
  response earn(const std::string& txn, const member_ref& member, const std::string& brand, std::int64_t amount,
                const std::string& currency, std::uint64_t occurred_at_us);
  // earn of a basket: the items' amounts must add up to `amount`.
  response earn(const std::string& txn, const member_ref& member, const std::string& brand, std::int64_t amount,
                const std::string& currency, std::uint64_t occurred_at_us, std::vector<item> items,
                const std::string& channel = "", const std::string& store = "");
  // What the earn of this basket would give the member now (points, lines,
  // balance and tier after), computed as the earn would and posting nothing:
  // `quoted` is true in the answer. Takes no txn id.
  response quote(const member_ref& member, const std::string& brand, std::int64_t amount,
                 const std::string& currency, std::uint64_t occurred_at_us, std::vector<item> items = {},
                 const std::string& channel = "", const std::string& store = "");
  // brand: where the points are spent (issue 4); "" = a brand key's own
  // brand, else the member's home brand.
  response redeem(const std::string& txn, const member_ref& member, std::int64_t points,
                  const std::string& brand = "");
  response balance(const member_ref& member);
  response event(const std::string& txn, const member_ref& member, const std::string& event,
                 const std::string& brand = "", std::uint64_t occurred_at_us = 0, const std::string& channel = "",
                 const std::string& store = "");
  response hold(const std::string& txn, const member_ref& member, std::int64_t points,
                const std::string& brand = "", std::uint64_t ttl_s = 0);
  // points 0 = the whole hold.
  response capture(const std::string& txn, const member_ref& member, std::uint64_t hold, std::int64_t points = 0);
  response release(const std::string& txn, const member_ref& member, std::uint64_t hold);
  response redeem_reward(const std::string& txn, const member_ref& member, const std::string& reward);
  // amount 0 = refund whatever is left of the purchase `ref`.
  response refund(const std::string& txn, const member_ref& member, const std::string& ref, std::int64_t amount = 0,
                  std::uint64_t occurred_at_us = 0);
  response refund_items(const std::string& txn, const member_ref& member, const std::string& ref,
                        std::vector<item> items, std::uint64_t occurred_at_us = 0);
  response reverse_redemption(const std::string& txn, const member_ref& member, const std::string& ref);
  // The pending points of the purchase `ref` (an earn's txn id) spendable now.
  response release_pending(const std::string& txn, const member_ref& member, const std::string& ref);
  // Admin: needs the key in hello.
  response adjust(const std::string& txn, const member_ref& member, std::int64_t points, const std::string& reason,
                  const std::string& brand);
  // Admin (issue 19 item 2): block or unblock a member, with the reason
  // the journal keeps.
  response block(const std::string& txn, const member_ref& member, const std::string& reason);
  response unblock(const std::string& txn, const member_ref& member, const std::string& reason);
  // Flagged and blocked members with ids above `after` (limit 0 = 100).
  response risk_report(std::uint64_t after = 0, std::uint32_t limit = 0);
  response transfer(const std::string& txn, const member_ref& from, std::uint64_t to, std::int64_t points);
  response link_alias(const std::string& txn, std::uint64_t member, const std::string& alias);
  // issue 19: households
  response household_join(const std::string& txn, const member_ref& member, std::uint64_t household);
  response household_leave(const std::string& txn, const member_ref& member);
  response household_dissolve(const std::string& txn, std::uint64_t household);
  response household(std::uint64_t household);
  // Admin: forgets the member's personal values for good (docs/PROTOCOL.md "erase").
  response erase(const std::string& txn, std::uint64_t member, const std::string& reason);
  response lookup(const std::string& alias);
  // before 0 = from the newest entry; limit 0 = the server's default (20).
  response history(const member_ref& member, std::uint64_t before = 0, std::uint32_t limit = 0);
  // Admin: expire every member's due points (as_of_us 0 = now), or one member's.
  response expire_all(std::uint64_t as_of_us = 0);
  response expire(const member_ref& member, std::uint64_t as_of_us = 0);
  response verify();
  response stats();
  // Admin: a hot backup into `dir` on the engine's host (absolute; absent or
  // empty): answers the copy's file, size and newest journal seq.
  response backup(const std::string& dir);
  // issue 7. consent: sets each channel of `mask` (config/consent.hpp bits)
  // to its bit in `values`; the rest stay as they are.
  response consent(const std::string& txn, const member_ref& member, std::uint32_t mask, std::uint32_t values,
                   const std::string& source, std::uint64_t occurred_at_us = 0);
  // subscribe: the answer is the first frame of the stream; read the events
  // frames that follow with receive() (docs/PROTOCOL.md, "subscribe").
  // from 0 = the next entry committed; types 0 = every type (bits of
  // event_type_names); consent 0 = any member (else one channel bit).
  response subscribe(std::uint64_t from = 0, std::uint32_t types = 0, std::uint32_t consent = 0,
                     const std::string& brand = "");
  // A page of every member's journal entries from seq `from` on (admin or
  // read key): pass the answer's `next` as `from` for the next page (0 in
  // the answer = it reached the newest entry); limit 0 = 100, at most 1000.
  response journal(std::uint64_t from = 1, std::uint32_t limit = 0);

  // Issue 4, coalition money (docs/PROTOCOL.md section 3). A posting's answer
  // carries the settle records it wrote in `settlements`.
  // A member earns `points` at a partner; amount = what the member spent
  // there (minor units, 0 = not recorded); occurred_at_us 0 = now.
  response partner_earn(const std::string& txn, const member_ref& member, const std::string& partner,
                        std::int64_t points, std::int64_t amount = 0, std::uint64_t occurred_at_us = 0);
  // A member spends `points` at a partner.
  response partner_burn(const std::string& txn, const member_ref& member, const std::string& partner,
                        std::int64_t points);
  // Every brand's points outstanding and money now (`liabilities`); brand
  // "" = every brand of the program.
  response liability(const std::string& brand = "");
  // One brand's points and money over [from_us, to_us) of commit time
  // (`activity`); 0 = from the beginning / up to now.
  response activity(const std::string& brand, std::uint64_t from_us = 0, std::uint64_t to_us = 0);
  // One page of a party's settlement statement over [from_us, to_us)
  // (`statement`): pass the answer's statement.next_after as `after` for the
  // next page (0 in the answer = the last page); limit 0 = 100, at most 1000.
  response settlement_of_brand(const std::string& brand, std::uint64_t from_us = 0, std::uint64_t to_us = 0,
                               std::uint64_t after = 0, std::uint32_t limit = 0);
  response settlement_of_partner(const std::string& partner, std::uint64_t from_us = 0, std::uint64_t to_us = 0,
                                 std::uint64_t after = 0, std::uint32_t limit = 0);
  // KPI report of one brand (brand "" = every brand the key may read) over
  // [from_us, to_us) of commit time (`report`): figures, members, active
  // members over the active_days before to_us, tiers, the `top` earners;
  // 0 = the defaults (the beginning, now, 90 days, 10 earners).
  response report(const std::string& brand = "", std::uint64_t from_us = 0, std::uint64_t to_us = 0,
                  std::uint32_t active_days = 0, std::uint32_t top = 0);

private:
  client();
  bool read_frame(response& out, std::string& error, std::chrono::milliseconds timeout);

  asio::io_context ctx_;
  std::unique_ptr<detail::stream> stream_;  // set by connect()
  std::vector<char> in_;
  std::size_t in_len_ = 0;
  std::uint64_t next_id_ = 1;
  std::deque<response> stash_;
  std::vector<char> out_;
};

// Splits a node's address "host:port" (an IPv6 host in brackets,
// "[::1]:7411"), as `not_leader` names the leader and as tools take it.
// False when there is no host or no port in 1..65535.
[[nodiscard]] bool split_address(const std::string& address, std::string& host, std::uint16_t& port);

// How call_following_leader (and following_connection) reach a cluster's leader.
struct follow_options {
  std::string name = "loyalty-client";  // hello's client name
  std::string key;                      // hello's key
  tls_options tls;                      // how to connect to another node
  // How long to keep following: an election without a leader takes about
  // a cluster's election timeout.
  std::chrono::milliseconds patience{10'000};
  // Between two asks while no leader is known.
  std::chrono::milliseconds pause{100};
};

// Sends `r` on `c` and returns its answer, following a cluster
// (docs/PROTOCOL.md, not_leader): while the answer is not_leader, connects
// to the leader it names -- or, when it names none (an election), waits
// `pause` and asks the same node again -- says hello, and sends `r` again
// unchanged (the same txn id: a request the old leader did commit is a
// replay). `c` becomes the connection that answered. Gives the last
// not_leader answer after `patience`; throws as call() does.
response call_following_leader(std::unique_ptr<client>& c, const request& r, const follow_options& f);

// Asynchronous pipelined connection on a caller-owned asio::io_context, for
// high request rates (the load generator). All calls and callbacks happen on
// the io_context's thread.
class async_connection : public std::enable_shared_from_this<async_connection> {
public:
  using handler = std::function<void(const response&)>;

  explicit async_connection(asio::io_context& ctx);
  ~async_connection();

  // Connects over plain TCP; `done` gets the error (empty on success).
  void connect(const std::string& host, std::uint16_t port, std::function<void(std::error_code)> done);
  // Connects, over TLS when `tls.enabled`: `done` runs after the handshake
  // and certificate check. On an error, connect_error() says it in a
  // sentence (which check failed).
  void connect(const std::string& host, std::uint16_t port, const tls_options& tls,
               std::function<void(std::error_code)> done);
  [[nodiscard]] const std::string& connect_error() const noexcept { return connect_error_; }

  // Assigns the id, queues the frame; writes are coalesced (one write for
  // everything queued while a write is in flight).
  std::uint64_t submit(request r, handler h);
  // The same for a request its caller keeps (to send it again elsewhere):
  // sets r.id and encodes `r` where it is, without a copy.
  std::uint64_t submit_kept(request& r, handler h);

  [[nodiscard]] std::size_t inflight() const noexcept { return handlers_.size(); }
  [[nodiscard]] bool open() const noexcept { return open_; }
  void close();

  // Called once when the connection fails or the server closes it (not
  // after close()). No handler runs once the connection failed or was
  // closed, not even for answers already read.
  std::function<void(const std::string&)> on_error;

private:
  void write();
  void read();
  void fail(const std::string& why);
  void opened(std::function<void(std::error_code)>& done);
  void close_stream();

  asio::ip::tcp::socket sock_;              // while connecting; then moved into stream_
  std::unique_ptr<detail::stream> stream_;  // once connected
  std::string connect_error_;
  std::vector<char> out_, writing_;
  std::vector<char> in_ = std::vector<char>(256 * 1024);
  std::size_t in_len_ = 0;
  bool write_active_ = false;
  bool open_ = false;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, handler> handlers_;
};

} // namespace loyalty::io
