// Issue 17: three whole engines in this process as a cluster (real LMDB,
// CAF member actors, Raft over loopback TCP, clients over the wire
// protocol): only the ready leader serves, a follower answers not_leader
// with the leader's client address, the leader stopped, another takes
// over and a retry of an acknowledged earn is a replay there.
#include "command.hpp"
#include "eventually.hpp"
#include "free_port.hpp"
#include "http_scrape.hpp"
#include "one_brand_program.hpp"
#include "same_journal.hpp"
#include "temp_dir.hpp"

#include "io/client/client.hpp"
#include "io/server/engine.hpp"

#include <catch2/catch.hpp>


#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;
constexpr const char* admin_key = "test-admin-key-0123456789";


// An earn at the one brand of the program, in minor units of EUR.
request earn_request(const std::string& txn, std::uint64_t member, std::int64_t amount) {
  request r = test::shop_earn(member, txn, amount);
  r.has_member = true;
  return r;
}

// How this test's clients follow the leader.
follow_options follow_admin() {
  follow_options fo;
  fo.name = "cluster-test";
  fo.key = admin_key;
  return fo;
}

struct cluster_of_engines {
  std::vector<cluster_peer> peers;
  std::vector<std::uint16_t> client_ports;
  std::vector<std::unique_ptr<test::temp_dir>> dirs;
  std::vector<std::unique_ptr<manual_clock>> clocks;
  std::vector<std::unique_ptr<engine>> engines;

  std::uint32_t snapshot_entries = 65536;  // [cluster] snapshot_entries of every node

  explicit cluster_of_engines(std::uint32_t snapshot_every = 65536) : snapshot_entries(snapshot_every) {
    for (int i = 0; i < 3; ++i)
      add_slot();
    for (std::size_t i = 0; i < 3; ++i)
      start(i);
  }

  // Ports, directories and a clock for one more node (not started).
  std::size_t add_slot() {
    client_ports.push_back(test::free_port());
    peers.push_back({peers.size() + 1, "127.0.0.1:" + std::to_string(test::free_port()),
                     "127.0.0.1:" + std::to_string(client_ports.back())});
    dirs.push_back(std::make_unique<test::temp_dir>("cluster-engine"));
    clocks.push_back(std::make_unique<manual_clock>(t0));
    engines.emplace_back();
    return peers.size() - 1;
  }

  // `join`: a node new to the running cluster (its own peer entry only).
  void start(std::size_t i, bool join = false) {
    engine_options o;
    o.metrics_on_free_port = true;
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
    s.cluster.peers = join ? std::vector<cluster_peer>{peers[i]} : std::vector<cluster_peer>(peers.begin(), peers.begin() + 3);
    s.cluster.join = join;
    s.cluster.snapshot_entries = snapshot_entries;
    s.cluster.snapshot_trailing = 4;
    std::string err;
    engines[i] = engine::start(std::move(o), err);
    INFO(err);
    REQUIRE(engines[i]);
  }

  // The engine that serves, once one does.
  std::size_t leader() {
    std::size_t found = engines.size();
    REQUIRE(test::eventually([&] {
      for (std::size_t i = 0; i < engines.size(); ++i) {
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

  // loyaltyctl ARGS against node i with the admin key; its output, and its
  // exit status in `status`.
  std::string ctl(std::size_t i, const std::string& args, int& status) const {
    return test::run_command(std::string("LOYALTY_KEY=") + admin_key + " " + LOYALTYCTL_BIN + " --port " +
                               std::to_string(client_ports[i]) + " " + args + " 2>&1",
                             status);
  }

  // Until every running engine's ledger holds the journal up to `seq`.
  void wait_for_seq(std::uint64_t seq) {
    REQUIRE(test::eventually([&] {
      for (auto& e : engines)
        if (e && e->ledger().last_seq() != seq)
          return false;
      return true;
    }));
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
    auto followed = c.connect(f);
    auto a = call_following_leader(followed, earn_request("e-followed", 1, 2'000), follow_admin());
    CHECK(a.ok());
    CHECK(a.points == 20);
    CHECK(c.engines[l]->ledger().find_txn("e-followed"));
  }
  // And so does loyaltyctl, pointed at a follower.
  {
    int status = -1;
    const auto out = c.ctl(f, "balance 1", status);
    INFO(out);
    CHECK(status == 0);
    CHECK(out.find("120") != std::string::npos);  // 100 + 20 points
  }

  // Every node holds what the leader acknowledged.
  const auto seq = c.engines[l]->ledger().last_seq();
  c.wait_for_seq(seq);

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

namespace {

std::uint64_t stat_of(const response& r, std::string_view name) {
  for (const auto& [k, v] : r.stats)
    if (k == name)
      return v;
  FAIL("no " << name << " in the answer");
  return 0;
}

response cluster_status_of(client& c) {
  request r;
  r.op = opcode::cluster_status;
  return c.call(r);
}

} // namespace

TEST_CASE("cluster_status on every node: roles, the configuration with each node's addresses, indexes, lag and equal "
          "journal digests; loyaltyctl cluster status and the cluster metrics",
          "[replication][cluster]") {
  cluster_of_engines c;
  const std::size_t l = c.leader();
  auto lc = c.connect(l);
  REQUIRE(lc->enroll(1, "shop").ok());
  for (int i = 0; i < 20; ++i)
    REQUIRE(lc->earn("s" + std::to_string(i), 1, "shop", 1'000, "EUR", 0).ok());
  const auto seq = c.engines[l]->ledger().last_seq();
  c.wait_for_seq(seq);
  std::vector<response> st;
  REQUIRE(test::eventually([&] {
    st.clear();
    for (std::size_t i = 0; i < 3; ++i)
      st.push_back(cluster_status_of(*c.connect(i)));  // answered by followers too: no not_leader
    // Every follower's log caught up in the leader's view.
    for (const auto& n : st[l].nodes)
      if (n.lag != 0)
        return false;
    return true;
  }));
  for (std::size_t i = 0; i < 3; ++i) {
    INFO("node " << i);
    REQUIRE(st[i].ok());
    CHECK(st[i].role == (i == l ? "leader" : "follower"));
    CHECK(st[i].leader == c.peers[l].client);
    CHECK(stat_of(st[i], "id") == i + 1);
    CHECK(stat_of(st[i], "leader_id") == l + 1);
    CHECK(stat_of(st[i], "serving") == (i == l ? 1u : 0u));
    CHECK(stat_of(st[i], "term") == stat_of(st[l], "term"));
    CHECK(stat_of(st[i], "journal_seq") == seq);
    CHECK(stat_of(st[i], "journal_digest") == stat_of(st[l], "journal_digest"));
    CHECK(stat_of(st[i], "ledger_applied_index") >= 21);  // at least the 21 batches
    CHECK(stat_of(st[i], "commit_index") >= stat_of(st[i], "applied_index"));  // one refresh's view
    REQUIRE(st[i].nodes.size() == 3);
    for (std::size_t k = 0; k < 3; ++k) {
      CHECK(st[i].nodes[k].id == c.peers[k].id);
      CHECK(st[i].nodes[k].client == c.peers[k].client);
      CHECK(st[i].nodes[k].raft == c.peers[k].raft);
      CHECK(st[i].nodes[k].role == "voter");
    }
  }
  CHECK(st[l].nodes[(l + 1) % 3].match_index == stat_of(st[l], "last_index"));
  CHECK(st[(l + 1) % 3].nodes[l].match_index == 0);  // only the leader knows

  // loyaltyctl, pointed at a follower, shows every node.
  const std::size_t f = (l + 1) % 3;
  int status = -1;
  const auto out = c.ctl(f, "cluster status", status);
  INFO(out);
  CHECK(status == 0);
  for (std::size_t k = 0; k < 3; ++k)
    CHECK(out.find(c.peers[k].client) != std::string::npos);
  CHECK(out.find("leader") != std::string::npos);
  CHECK(out.find("follower") != std::string::npos);
  char digest[17];
  std::snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(stat_of(st[l], "journal_digest")));
  std::size_t digests = 0;
  for (auto at = out.find(digest); at != std::string::npos; at = out.find(digest, at + 1))
    ++digests;
  CHECK(digests == 3);

  // A node that is down: listed as unreachable, and exit 1.
  c.engines[(l + 2) % 3].reset();
  const auto down = c.ctl(l, "cluster status", status);
  INFO(down);
  CHECK(status == 1);
  CHECK(down.find("unreachable") != std::string::npos);

  // Metrics: the leader's role, term and each follower's lag.
  const auto m = test::scrape(c.engines[l]->metrics_port());
  INFO(m.body);
  CHECK(m.body.find("loyaltyd_cluster_role{role=\"leader\"} 1") != std::string::npos);
  CHECK(m.body.find("loyaltyd_cluster_term " + std::to_string(stat_of(st[l], "term"))) != std::string::npos);
  CHECK(m.body.find("loyaltyd_cluster_replication_lag_entries{node=\"" + std::to_string(f + 1) + "\"}") !=
        std::string::npos);
  const auto fm = test::scrape(c.engines[f]->metrics_port());
  CHECK(fm.body.find("loyaltyd_cluster_role{role=\"follower\"} 1") != std::string::npos);
}

TEST_CASE("a fourth node added under load catches up from a snapshot and votes; a node removed receives nothing more",
          "[replication][cluster][membership]") {
  cluster_of_engines c(16);  // a snapshot every 16 entries: the new node cannot get the log from its start
  const std::size_t l = c.leader();
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> acked{0};
  std::thread load([&] {
    std::unique_ptr<client> conn = c.connect(l);
    const follow_options fo = follow_admin();
    request e;
    e.op = opcode::enroll;
    e.member = 1;
    e.has_member = true;
    e.brand = "shop";
    call_following_leader(conn, e, fo);
    for (std::uint64_t i = 0; !stop; ++i) {
      if (call_following_leader(conn, earn_request("m" + std::to_string(i), 1, 100), fo).ok())
        ++acked;
    }
  });
  REQUIRE(test::eventually([&] { return acked.load() >= 60; }));

  // Node 4 starts with join = true, then the leader adds it.
  const std::size_t n4 = c.add_slot();
  c.start(n4, true);
  auto admin = c.connect(l);
  request add;
  add.op = opcode::cluster_add;
  add.node_id = 4;
  add.raft_address = c.peers[n4].raft;
  add.client_address = c.peers[n4].client;
  const auto added = admin->call(add);
  INFO(added.message);
  REQUIRE(added.ok());
  REQUIRE(added.nodes.size() == 4);
  CHECK(added.nodes[3].id == 4);
  CHECK(added.nodes[3].role == "voter");
  CHECK(added.nodes[3].client == c.peers[n4].client);
  // Added again, or the leader removing itself: refused, nothing changes.
  CHECK(admin->call(add).code == errc::invalid_argument);
  request self_removal;
  self_removal.op = opcode::cluster_remove;
  self_removal.node_id = l + 1;
  CHECK(admin->call(self_removal).code == errc::invalid_argument);
  // The new node installed a snapshot (the log was compacted) and follows.
  CHECK(c.engines[n4]->node()->status().snapshots_installed >= 1);
  const auto before = acked.load();
  REQUIRE(test::eventually([&] { return acked.load() >= before + 30; }));

  // A follower removed: the others go on, it receives nothing more.
  const std::size_t gone = (l + 1) % 3;
  request rm;
  rm.op = opcode::cluster_remove;
  rm.node_id = gone + 1;
  const auto removed = admin->call(rm);
  INFO(removed.message);
  REQUIRE(removed.ok());
  CHECK(removed.nodes.size() == 3);
  for (const auto& n : removed.nodes)
    CHECK(n.id != gone + 1);
  const auto gone_seq = c.engines[gone]->ledger().last_seq();
  const auto mid = acked.load();
  REQUIRE(test::eventually([&] { return acked.load() >= mid + 30; }));
  stop = true;
  load.join();
  const auto seq = c.engines[l]->ledger().last_seq();
  REQUIRE(test::eventually([&] { return c.engines[n4]->ledger().last_seq() == seq; }));
  test::same_journals(c.engines[l]->ledger(), c.engines[n4]->ledger());
  CHECK(c.engines[n4]->ledger().journal_digest().digest == c.engines[l]->ledger().journal_digest().digest);
  CHECK(c.engines[n4]->ledger().verify().ok);
  CHECK(c.engines[gone]->ledger().last_seq() <= gone_seq + 2);  // at most what was in flight when it left
  CHECK(c.engines[gone]->ledger().last_seq() < seq);
  CHECK(seq == 1 + acked.load());  // every acknowledged earn once

  // loyaltyctl, sent to the new node (a follower or the leader), reaches the leader.
  int status = -1;
  const auto ctl = [&](const std::string& args) { return c.ctl(n4, "cluster " + args, status); };
  const auto unknown = ctl("remove 9");
  INFO(unknown);
  CHECK(status == 1);
  CHECK(unknown.find("node 9 is not in the cluster") != std::string::npos);
  const auto again = ctl("add " + std::to_string(gone + 1) + " --raft " + c.peers[n4].raft + " --client h:1");
  INFO(again);
  CHECK(status == 1);
  CHECK(again.find("invalid_argument") != std::string::npos);  // the address is node 4's
}

TEST_CASE("a program version reloaded on the leader goes through the log: every node records it with its text, "
          "and the next leader runs it though its own program file is older",
          "[replication][cluster]") {
  cluster_of_engines c;
  const std::size_t l = c.leader();
  // The first leader recorded its program file as version 1 through the log.
  REQUIRE(test::eventually([&] {
    for (auto& e : c.engines)
      if (e->ledger().policies().size() != 1)
        return false;
    return true;
  }));
  CHECK(c.engines[l]->policy_version() == 1);
  auto lc = c.connect(l);
  REQUIRE(lc->enroll(1, "shop").ok());
  auto before = lc->earn("p1", 1, "shop", 10'000, "EUR", 0);
  REQUIRE(before.ok());
  CHECK(before.points == 100);  // 1 point per 100 minor units

  // The leader's program file now earns 3 points per 100 minor units.
  std::string next_text = test::one_brand_program;
  const std::string rate = "earn_rate = { num = 1, den = 100 }";
  next_text.replace(next_text.find(rate), rate.size(), "earn_rate = { num = 3, den = 100 }");
  std::ofstream(c.dirs[l]->path / "program.toml") << next_text;

  // A follower refuses a reload: program versions come from the leader.
  const std::size_t f = (l + 1) % 3;
  {
    auto fc = c.connect(f);
    request r;
    r.op = opcode::reload;
    auto refused = fc->call(r);
    CHECK(refused.code == errc::not_leader);
    CHECK(refused.leader == c.peers[l].client);
  }
  request r;
  r.op = opcode::reload;
  auto reloaded = lc->call(r);
  INFO(reloaded.message);
  REQUIRE(reloaded.ok());
  CHECK(reloaded.policy_version == 2);
  auto after = lc->earn("p2", 1, "shop", 10'000, "EUR", 0);
  REQUIRE(after.ok());
  CHECK(after.points == 300);
  c.wait_for_seq(c.engines[l]->ledger().last_seq());

  // Every node holds the same versions: hash, time, first seq, and text.
  const auto versions = c.engines[l]->ledger().policies();
  REQUIRE(versions.size() == 2);
  for (auto& e : c.engines) {
    const auto v = e->ledger().policies();
    REQUIRE(v.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
      CHECK(v[i].first == versions[i].first);
      CHECK(std::memcmp(&v[i].second, &versions[i].second, sizeof(ledger::policy_record)) == 0);
    }
    CHECK(e->ledger().policy_text(2) == next_text);
    CHECK(e->ledger().journal_digest().digest == c.engines[l]->ledger().journal_digest().digest);
  }
  CHECK(versions[1].second.first_seq == after.seq);

  // The leader stops: the next one runs version 2 from its ledger, not the
  // version-1 file it was started with.
  lc.reset();
  c.engines[l].reset();
  const std::size_t l2 = c.leader();
  REQUIRE(l2 != l);
  CHECK(c.engines[l2]->policy_version() == 2);
  auto nc = c.connect(l2);
  auto on_new = nc->earn("p3", 1, "shop", 10'000, "EUR", 0);
  REQUIRE(on_new.ok());
  CHECK(on_new.points == 300);
  CHECK(c.engines[l2]->ledger().policies().size() == 2);  // no version of its own file was added

  // The old leader restarts with the version-1 file again (start writes
  // it): it runs the cluster's version 2, from its ledger, and follows.
  c.start(l);
  CHECK(c.engines[l]->policy_version() == 2);
  c.wait_for_seq(c.engines[l2]->ledger().last_seq());
}
