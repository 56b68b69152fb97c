// Issue 17: three whole engines in this process as a cluster (real LMDB,
// CAF member actors, Raft over loopback TCP, clients over the wire
// protocol): only the ready leader serves, a follower answers not_leader
// with the leader's client address, the leader stopped, another takes
// over and a retry of an acknowledged earn is a replay there.
#include "command.hpp"
#include "eventually.hpp"
#include "free_port.hpp"
#include "one_brand_program.hpp"
#include "same_journal.hpp"
#include "temp_dir.hpp"

#include "io/client/client.hpp"
#include "io/server/engine.hpp"

#include <catch2/catch.hpp>


#include <fstream>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;
constexpr const char* admin_key = "test-admin-key-0123456789";


struct cluster_of_engines {
  std::vector<cluster_peer> peers;
  std::vector<std::uint16_t> client_ports;
  std::vector<std::unique_ptr<test::temp_dir>> dirs;
  std::vector<std::unique_ptr<manual_clock>> clocks;
  std::vector<std::unique_ptr<engine>> engines;

  cluster_of_engines() {
    for (std::uint64_t id = 1; id <= 3; ++id) {
      client_ports.push_back(test::free_port());
      peers.push_back({id, "127.0.0.1:" + std::to_string(test::free_port()),
                       "127.0.0.1:" + std::to_string(client_ports.back())});
      dirs.push_back(std::make_unique<test::temp_dir>("cluster-engine"));
      clocks.push_back(std::make_unique<manual_clock>(t0));
      engines.emplace_back();
    }
    for (std::size_t i = 0; i < 3; ++i)
      start(i);
  }

  void start(std::size_t i) {
    engine_options o;
    auto& s = o.settings;
    s.listen_host = "127.0.0.1";
    s.listen_port = client_ports[i];
    s.data_dir = (dirs[i]->path / "data").string();
    s.map_bytes = 1ull << 30;
    s.commit_window_us = 50;
    s.actor_threads = 1;
    s.io_threads = 1;
    s.expiry_sweep_interval_s = 0;
    api_key k;
    k.id = 1;
    k.name = "admin";
    k.sha256 = key_sha256(admin_key);
    k.scope = key_scope::admin;
    s.keys = {k};
    s.program_path = (dirs[i]->path / "program.toml").string();
    std::ofstream(s.program_path) << test::one_brand_program;
    std::vector<config_error> errors;
    auto prog = load_program(s.program_path, errors);
    REQUIRE(prog);
    o.prog = std::move(*prog);
    o.clock = clocks[i].get();
    s.cluster.node_id = i + 1;
    s.cluster.dir = (dirs[i]->path / "raft").string();
    s.cluster.election_timeout_ms = 300;
    s.cluster.heartbeat_ms = 50;
    s.cluster.peers = peers;
    std::string err;
    engines[i] = engine::start(std::move(o), err);
    INFO(err);
    REQUIRE(engines[i]);
  }

  // The engine that serves, once one does.
  std::size_t leader() {
    std::size_t found = 3;
    REQUIRE(test::eventually([&] {
      for (std::size_t i = 0; i < 3; ++i) {
        std::string l;
        if (engines[i] && engines[i]->serving(l)) {
          found = i;
          return true;
        }
      }
      return false;
    }));
    return found;
  }

  std::unique_ptr<client> connect(std::size_t i) {
    std::string err;
    auto c = client::connect("127.0.0.1", client_ports[i], err);
    INFO(err);
    REQUIRE(c);
    REQUIRE(c->hello("cluster-test", admin_key).ok());
    return c;
  }
};

} // namespace

TEST_CASE("a cluster of three engines serves on its leader only, and a new leader answers retries as replays",
          "[replication][cluster]") {
  cluster_of_engines c;
  const std::size_t l = c.leader();
  auto lc = c.connect(l);
  REQUIRE(lc->enroll(1, "shop").ok());
  auto e1 = lc->earn("e1", 1, "shop", 10'000, "EUR", 0);
  REQUIRE(e1.ok());

  // A follower: hello and stats answered, everything else not_leader with
  // the leader's client address.
  const std::size_t f = (l + 1) % 3;
  auto fc = c.connect(f);
  CHECK(fc->stats().ok());
  auto refused = fc->earn("e-on-follower", 1, "shop", 10'000, "EUR", 0);
  CHECK(refused.code == errc::not_leader);
  CHECK(refused.leader == c.peers[l].client);
  CHECK(fc->balance(1).code == errc::not_leader);
  CHECK_FALSE(c.engines[l]->ledger().find_txn("e-on-follower"));
  // The client library follows it: the same request, sent to the follower,
  // is answered by the leader.
  {
    follow_options fo;
    fo.name = "cluster-test";
    fo.key = admin_key;
    request r;
    r.op = opcode::earn;
    r.txn = "e-followed";
    r.member = 1;
    r.has_member = true;
    r.brand = "shop";
    r.amount = 2'000;
    r.currency = "EUR";
    auto followed = c.connect(f);
    auto a = call_following_leader(followed, r, fo);
    CHECK(a.ok());
    CHECK(a.points == 20);
    CHECK(c.engines[l]->ledger().find_txn("e-followed"));
  }
  // And so does loyaltyctl, pointed at a follower.
  {
    int status = -1;
    const auto out = test::run_command(std::string("LOYALTY_KEY=") + admin_key + " " + LOYALTYCTL_BIN + " --port " +
                                           std::to_string(c.client_ports[f]) + " balance 1 2>&1",
                                       status);
    INFO(out);
    CHECK(status == 0);
    CHECK(out.find("120") != std::string::npos);  // 100 + 20 points
  }

  // Every node holds what the leader acknowledged.
  const auto seq = c.engines[l]->ledger().last_seq();
  REQUIRE(test::eventually([&] {
    for (auto& e : c.engines)
      if (e->ledger().last_seq() != seq)
        return false;
    return true;
  }));

  // The leader stops; another is elected and serves; a retry of e1 there is
  // a replay with the original answer.
  lc.reset();
  c.engines[l].reset();
  const std::size_t l2 = c.leader();
  REQUIRE(l2 != l);
  auto nc = c.connect(l2);
  auto again = nc->earn("e1", 1, "shop", 10'000, "EUR", 0);
  REQUIRE(again.ok());
  CHECK(again.replayed);
  CHECK(again.seq == e1.seq);
  REQUIRE(nc->earn("e2", 1, "shop", 5'000, "EUR", 0).ok());
  auto bal = nc->balance(1);
  REQUIRE(bal.ok());
  CHECK(bal.balance == e1.points + 20 + 50);

  const std::size_t other = 3 - l - l2;
  REQUIRE(test::eventually([&] { return c.engines[other]->ledger().last_seq() == c.engines[l2]->ledger().last_seq(); }));
  test::same_journals(c.engines[l2]->ledger(), c.engines[other]->ledger());
  CHECK(c.engines[other]->ledger().verify().ok);
  CHECK(c.engines[l2]->ledger().verify().ok);
}
