// What a connection is promised beyond each operation (issue 16, items A5,
// A7, A9, A10, A11): a request id is never answered twice, a clean stop
// answers what it accepted, a refused connection holds no slot, one
// connection's flood of reads does not starve the others, and the answers
// waiting for clients that stopped reading are bounded engine-wide. A real
// engine in the test process (LMDB in a temp dir, CAF actors, TCP on
// loopback), clients through the client library. No check depends on how
// long anything takes: each waits for a condition, within a liveness bound.
#include "eventually.hpp"
#include "engine_rig.hpp"
#include "one_brand_program.hpp"

#include "io/wire/codec.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <thread>
#include <vector>

using namespace loyalty;
using namespace loyalty::io;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z
constexpr auto patience = 20s;  // liveness bound of every wait

constexpr const char* program_toml = test::one_brand_program;

request earn_request(std::uint64_t id, std::uint64_t member, const std::string& txn) {
  request r = test::shop_earn(member, txn, 1000);
  r.id = id;
  return r;
}

request history_request(std::uint64_t id, std::uint64_t member, std::uint32_t limit = history_limit_max) {
  request r;
  r.op = opcode::history;
  r.id = id;
  r.member = member;
  r.limit = limit;
  return r;
}

response explain(client& c, const std::string& txn) {
  request r;
  r.op = opcode::explain;
  r.txn = txn;
  return c.call(r);
}

using test::eventually;

std::vector<char> frames(const std::vector<request>& rs) {
  std::vector<char> out;
  for (const auto& r : rs)
    encode_request(out, r);
  return out;
}

// A member with `n` entries, so a history page is a full one.
void member_with_entries(test::engine_rig& g, std::uint64_t member, int n) {
  REQUIRE(g.c->enroll(member, "shop").ok());
  for (int i = 0; i < n; ++i)
    REQUIRE(g.c->earn("fill-" + std::to_string(member) + "-" + std::to_string(i), member, "shop", 1000, "EUR", t0).ok());
}

} // namespace

TEST_CASE("a second request with an id still in flight is refused with duplicate_id and posts nothing",
          "[session]") {
  test::engine_rig g("session-dup", program_toml, t0);
  REQUIRE(g.c->enroll(7, "shop").ok());
  const auto seq_before = test::stat_of(*g.admin, "ledger_last_seq");
  // One write, so both frames are read in one turn: the first is in flight
  // (its outcome needs a group commit) when the second is read.
  auto x = g.connect(test::admin_key);
  x->send_raw(frames({earn_request(500, 7, "dup-a"), earn_request(500, 7, "dup-b")}).data(),
              frames({earn_request(500, 7, "dup-a"), earn_request(500, 7, "dup-b")}).size());
  std::map<errc, int> codes;
  for (int i = 0; i < 2; ++i) {
    response r;
    std::string err;
    REQUIRE(x->receive(r, err));
    CHECK(r.id == 500);
    CHECK(r.op == opcode::earn);
    ++codes[r.code];
  }
  CHECK(codes[errc::ok] == 1);
  CHECK(codes[errc::duplicate_id] == 1);
  CHECK(test::stat_of(*g.admin, "ledger_last_seq") == seq_before + 1);
  CHECK(explain(*g.c, "dup-a").ok());
  CHECK(explain(*g.c, "dup-b").code == errc::unknown_txn);

  SECTION("a batch's id and a job's id are in flight until they are answered") {
    request b;
    b.op = opcode::batch;
    b.id = 900;
    b.ops = {earn_request(1, 7, "dup-c"), earn_request(2, 7, "dup-d")};
    request same = earn_request(900, 7, "dup-e");
    x->send_raw(frames({b, same}).data(), frames({b, same}).size());
    std::map<opcode, errc> got;
    for (int i = 0; i < 2; ++i) {
      response r;
      std::string err;
      REQUIRE(x->receive(r, err));
      CHECK(r.id == 900);
      got[r.op] = r.code;
    }
    CHECK(got[opcode::batch] == errc::ok);
    CHECK(got[opcode::earn] == errc::duplicate_id);
    CHECK(explain(*g.c, "dup-e").code == errc::unknown_txn);
  }
  SECTION("an id is free again once its request was answered") {
    CHECK(x->call(earn_request(500, 7, "dup-f")).ok());
    CHECK(x->call(earn_request(500, 7, "dup-g")).ok());
  }
  g.check_verify();
}

TEST_CASE("a refused connection holds no slot of connections_max while its refusal is sent", "[session]") {
  test::engine_rig g("session-refused", program_toml, t0, [](engine_options& o) { o.settings.connections_max = 3; });
  auto third = g.connect(test::admin_key);  // with c and admin: 3 of 3
  std::string err;
  auto refused = client::connect("127.0.0.1", g.eng->port(), err);
  REQUIRE(refused);
  response r;
  REQUIRE(refused->receive(r, err));
  CHECK(r.code == errc::too_many_connections);
  // The refused client keeps its socket open: the engine lingers on it
  // (limits::wire_linger_ms), and it must not count meanwhile.
  CHECK(test::stat_of(*g.admin, "connections") == 3);
  third.reset();
  REQUIRE(eventually([&] { return test::stat_of(*g.admin, "connections") == 2; }));
  auto retry = client::connect("127.0.0.1", g.eng->port(), err);
  REQUIRE(retry);
  CHECK(retry->hello("retry", test::admin_key).ok());
  CHECK(test::stat_of(*g.admin, "connections_closed_refused") == 1);
}

TEST_CASE("a clean stop answers every request it read: committed ones ok, the rest unavailable", "[session]") {
  test::engine_rig g("session-stop", program_toml, t0);
  constexpr int connections = 4, per_connection = 3000, members = 64;
  for (int m = 1; m <= members; ++m)
    REQUIRE(g.c->enroll(static_cast<std::uint64_t>(m), "shop").ok());
  std::vector<std::unique_ptr<client>> conns;
  for (int i = 0; i < connections; ++i)
    conns.push_back(g.connect(test::admin_key));
  const auto earns_before = test::stat_of(*g.admin, "requests_earn");
  for (int i = 0; i < connections; ++i) {
    std::vector<request> rs;
    for (int k = 0; k < per_connection; ++k)
      rs.push_back(earn_request(static_cast<std::uint64_t>(k + 1), static_cast<std::uint64_t>(k % members + 1),
                                "stop-" + std::to_string(i) + "-" + std::to_string(k)));
    const auto bytes = frames(rs);
    conns[static_cast<std::size_t>(i)]->send_raw(bytes.data(), bytes.size());
  }
  // Every request read by the engine (none waits unread in a socket), many
  // of them still in flight: then stop, as SIGTERM does.
  REQUIRE(eventually([&] { return test::stat_of(*g.admin, "requests_earn") == earns_before + connections * per_connection; }));
  std::thread stopper([&] { g.eng->stop(); });
  std::vector<std::map<std::uint64_t, errc>> answers(connections);
  for (int i = 0; i < connections; ++i) {
    for (;;) {
      response r;
      std::string err;
      if (!conns[static_cast<std::size_t>(i)]->receive(r, err, patience))
        break;  // end of stream: the engine closed the connection
      CHECK(answers[static_cast<std::size_t>(i)].emplace(r.id, r.code).second);  // one answer per id
    }
  }
  stopper.join();
  std::set<std::string> ok, unavailable;
  for (int i = 0; i < connections; ++i) {
    CHECK(answers[static_cast<std::size_t>(i)].size() == per_connection);
    for (const auto& [id, code] : answers[static_cast<std::size_t>(i)]) {
      const auto txn = "stop-" + std::to_string(i) + "-" + std::to_string(id - 1);
      CHECK((code == errc::ok || code == errc::unavailable));
      (code == errc::ok ? ok : unavailable).insert(txn);
    }
  }
  INFO(ok.size() << " ok, " << unavailable.size() << " unavailable");
  conns.clear();
  g.restart();
  // What was answered ok is in the ledger; what was answered unavailable is not.
  for (const auto& t : ok)
    REQUIRE(explain(*g.c, t).ok());
  for (const auto& t : unavailable)
    REQUIRE(explain(*g.c, t).code == errc::unknown_txn);
  g.check_verify();
}

TEST_CASE("a connection flooding the engine with history reads does not hold up another connection's request",
          "[session]") {
  test::engine_rig g("session-fair", program_toml, t0, [](engine_options& o) { o.settings.io_threads = 1; });
  member_with_entries(g, 5, static_cast<int>(history_limit_max));
  auto flood = g.connect(test::admin_key);
  auto light = g.connect(test::admin_key);
  const auto before = test::stat_of(*light, "requests_history");
  // ~160 KiB of frames, more than one read takes in; pages of 10 entries
  // (~2 KiB answers), so that what one read brings in stays below the
  // connection's own output bound and only the turns tell the two apart.
  constexpr int flood_requests = 4000;
  std::vector<request> rs;
  for (int k = 0; k < flood_requests; ++k)
    rs.push_back(history_request(static_cast<std::uint64_t>(k + 1), 5, 10));
  const auto bytes = frames(rs);
  flood->send_raw(bytes.data(), bytes.size());
  // The engine is serving the flood once its first answer is out.
  response first;
  std::string err;
  REQUIRE(flood->receive(first, err));
  REQUIRE(first.ok());
  // The light client's request is read within a few turns of the flood's
  // connection, not after everything the flood's reads brought in: the
  // history requests read by the time it is answered show which.
  // Before turns the flood's reads were served whole first (3,552 of
  // 4,000 read, measured); with them a few turns (256 alone). The request
  // leaves this thread only once it runs again, and on a busy machine (the
  // suite runs two tests at once) the flood's turns go on meanwhile: 1,012
  // was seen under the cluster tests' load. Half the flood tells the two
  // apart with room for that.
  const auto seen = test::stat_of(*light, "requests_history") - before;
  INFO("history requests read before the light client's was answered: " << seen);
  CHECK(seen < flood_requests / 2);
  flood.reset();  // closes without reading the rest
  CHECK(g.c->balance(5).ok());
}

TEST_CASE("answers waiting for clients that stopped reading are bounded engine-wide, and readers are still served",
          "[session]") {
  test::engine_rig g("session-budget", program_toml, t0, [](engine_options& o) {
    o.settings.output_bytes_max = 1u << 20;                  // 1 MiB for every connection together
    o.settings.connection_output_bytes_max = 8u << 20;       // each alone could hold 8 MiB
    o.settings.io_threads = 1;
  });
  member_with_entries(g, 5, static_cast<int>(history_limit_max));
  // Four clients pipeline full history pages (~20 KiB each) and read nothing.
  std::vector<std::unique_ptr<client>> stalled;
  std::vector<request> rs;
  for (int k = 0; k < 600; ++k)
    rs.push_back(history_request(static_cast<std::uint64_t>(k + 1), 5));
  const auto bytes = frames(rs);
  for (int i = 0; i < 4; ++i) {
    stalled.push_back(g.connect(test::admin_key));
    stalled.back()->send_raw(bytes.data(), bytes.size());
  }
  // They fill what they can: the engine stops reading them once the
  // budget is passed; each turn adds at most a turn's answers past it.
  const auto slack = limits::turn_output_bytes_max + 64u * 1024;
  std::uint64_t most = 0;
  std::uint64_t last_read = 0;
  for (int round = 0; round < 50; ++round) {
    const auto out = test::stat_of(*g.admin, "output_bytes");
    most = std::max(most, out);
    const auto read = test::stat_of(*g.admin, "requests_history");
    if (round > 5 && read == last_read)
      break;  // nothing more is read: the stalled clients are paused
    last_read = read;
    std::this_thread::sleep_for(20ms);
  }
  INFO("most output waiting: " << most);
  CHECK(most > 0);
  CHECK(most <= (1u << 20) + slack);
  // A client that reads its answers is still served meanwhile.
  for (int i = 0; i < 20; ++i) {
    auto h = g.c->history(5, 0, history_limit_max);
    REQUIRE(h.ok());
    CHECK(h.entries.size() == history_limit_max);
  }
  stalled.clear();
  REQUIRE(eventually([&] { return test::stat_of(*g.admin, "output_bytes") == 0; }));
}
