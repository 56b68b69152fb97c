// The crash harness's clients (tests/crash_harness.hpp): the load of every
// posting operation, the subscriber and the hot backups that run while the
// engine is crashed, and what each of them recorded. Each runs on a thread
// of its own until the engine dies (or `stop`); what it saw is read after
// the threads are joined.
#pragma once

#include "io/client/client.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace loyalty::test::crash {

using io::client;
using io::item;
using io::opcode;
using io::request;
using io::response;

// The harness's API key: every connection says hello with it (adjust,
// expire, backup and journal need an admin key).
inline constexpr const char* admin_secret = "crash-harness-admin-key-0123456789";

// A check that failed: its sentence.
class failure : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const std::string& what) { throw failure(what); }

inline std::string code_name(errc code) { return std::string(to_string(code)); }

// A connection with the harness's key; fails if there is none.
std::unique_ptr<client> connect(std::uint16_t port);
// The same for a client thread: nullptr if the engine is already gone.
std::unique_ptr<client> try_connect(std::uint16_t port, const char* name);
// Sends every request pipelined (at most `window` in flight) and returns
// the answers in the requests' order. An answer with an id not in flight
// is a failure.
std::vector<response> call_all(client& c, std::vector<request> reqs, std::size_t window = 256);

// -- the load --

// One request of the load and what became of it.
struct txn_record {
  request req;
  std::uint64_t member = 0;       // the member it posts for (an alias resolved)
  std::optional<response> acked;  // the answer before the crash, if one came
  bool posted = false;            // in the ledger, as far as the checks found
  std::uint64_t seq = 0;          // its entry, when posted and known
};

// Refusals that post nothing and that this load provokes on purpose (or
// that a busy engine gives). Any other error is a failure.
[[nodiscard]] bool expected_refusal(opcode op, errc code);

// What a load connection's acknowledged requests made available to later
// ones, kept across cycles; each is acted on once.
struct earn_ref {
  std::string txn;
  std::uint64_t member = 0;
  std::int64_t amount = 0;
  std::vector<item> items;
};
struct hold_ref {
  std::uint64_t member = 0, hold = 0;
  std::int64_t points = 0;
};
struct spend_ref {
  std::string txn;
  std::uint64_t member = 0;
};

struct driver_state {
  std::uint64_t counter = 0;             // requests made, for txn ids and new member ids
  std::vector<earn_ref> earns;           // to refund
  std::vector<spend_ref> redemptions;    // to reverse
  std::vector<hold_ref> holds;           // to capture or release
  std::map<std::uint64_t, std::string> alias_of;  // member -> an alias linked to it

  // After an answer ok to `t`: what it made available.
  void learn(const txn_record& t);
};

// What one load connection sent and heard before the crash.
struct driver_log {
  std::vector<txn_record> txns;
  std::string failure;  // an answer no request was waiting for
};

// The load of one connection until the engine dies or `stop` is set:
// requests of every posting operation, at most `window` in flight, the
// `thread`-th connection's txn ids prefixed with `prefix`.
void drive(std::uint16_t port, int members, int window, int thread, std::uint64_t seed, const std::string& prefix,
           driver_state& st, const std::atomic<bool>& stop, driver_log& log);

// -- the subscriber and the backups --

struct event_rec {
  std::uint64_t seq = 0, member = 0;
  std::string type, entry, txn;
};

// Appends the events of the frames that answer subscription `id` until
// `done` says so, asked after each frame (with it) and after each `wait`
// without one (with nullptr); false if the connection ended first. A frame
// of another id, or a refusal, is a failure.
bool read_stream(client& c, std::uint64_t id, std::vector<event_rec>& out, std::chrono::milliseconds wait,
                 const std::function<bool(const response*)>& done);

struct follower_log {
  std::vector<event_rec> events;
  std::string failure;
};

// Follows the stream from `from` while the engine lives.
void follow(std::uint16_t port, std::uint64_t from, const std::atomic<bool>& stop, follower_log& log);

struct backup_log {
  std::filesystem::path interrupted;  // the backup in flight when the engine died
  std::filesystem::path last_done;    // the newest one that completed
  std::uint64_t done = 0;
  std::string failure;
  std::atomic<int> in_flight{-1};     // k of the backup into base/bk being made, for a kill aimed at it
};

inline std::filesystem::path backup_dir(const std::filesystem::path& base, int k) {
  std::string name = std::to_string(k);
  name.insert(0, 1, 'b');  // not "b" + ...: GCC 12 warns of a memcpy overlap there (-Wrestrict, a false alarm)
  return base / name;
}

// Hot backups one after another into fresh directories under `base`;
// only the newest completed one is kept.
void back_up(std::uint16_t port, const std::filesystem::path& base, std::uint64_t seed, const std::atomic<bool>& stop,
             backup_log& log);

} // namespace loyalty::test::crash
