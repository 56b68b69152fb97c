// Issue 17: a cluster of three real loyaltyd processes on loopback, its
// leader killed with SIGKILL ten times in a row under a continuous load of
// earns from the client library (each earn sent until a node acknowledges
// it, following not_leader, reconnecting when a node dies, always with the
// same txn id), the killed node started again each time on its own
// directories. Afterwards every node's ledger (opened here, after a clean
// stop) holds the same journal, byte for byte, with every acknowledged earn
// exactly once, balances equal to the acknowledged work, and verifies.
// And the load generator (its binary) pointed at a follower, at every node,
// and run while its leader is killed: it follows the leader, and what it
// counts acknowledged is in the journal exactly once.
#include "engine_process.hpp"
#include "eventually.hpp"
#include "free_port.hpp"
#include "loadgen_run.hpp"
#include "one_brand_program.hpp"
#include "same_journal.hpp"
#include "temp_dir.hpp"

#include "io/client/client.hpp"
#include "ledger/ledger.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>

using namespace loyalty;
using namespace std::chrono_literals;

namespace {

constexpr int nodes = 3;
constexpr std::uint64_t members = 10;

struct cluster_processes {
  test::temp_dir dir{"cluster-process"};
  std::vector<std::uint16_t> client_ports;
  std::string cluster_table;
  std::vector<std::unique_ptr<test::engine_process>> ps;
  std::string more_cluster;  // more keys of [cluster]

  explicit cluster_processes(std::string more = "") : more_cluster(std::move(more)) {
    std::ofstream(dir.path / "program.toml") << test::one_brand_program;
    std::string peers;
    for (int i = 0; i < nodes; ++i) {
      client_ports.push_back(test::free_port());
      peers += "[[cluster.peers]]\nid = " + std::to_string(i + 1) + "\nraft = \"127.0.0.1:" +
               std::to_string(test::free_port()) + "\"\nclient = \"127.0.0.1:" + std::to_string(client_ports.back()) +
               "\"\n";
    }
    cluster_table = peers;
    for (int i = 0; i < nodes; ++i) {
      std::filesystem::create_directories(dir.path / ("n" + std::to_string(i + 1)));
      ps.emplace_back();
      start(i);
    }
  }

  void start(int i) {
    test::engine_process_options o;
    o.binary = LOYALTYD_BIN;
    o.dir = dir.path / ("n" + std::to_string(i + 1));
    o.program = (dir.path / "program.toml").string();
    o.listen_port = client_ports[static_cast<std::size_t>(i)];
    o.extra_settings = "expiry_sweep_interval_s = 0\ncommit_window_us = 200\n";
    o.more_tables = "[cluster]\nnode_id = " + std::to_string(i + 1) +
                    "\nelection_timeout_ms = 500\nheartbeat_ms = 50\n" + more_cluster + cluster_table;
    ps[static_cast<std::size_t>(i)] = std::make_unique<test::engine_process>(o);
  }

  // Node i's ledger, opened here once its process stopped.
  std::unique_ptr<ledger::ledger> open_ledger(int i) {
    ledger::options o;
    o.dir = (dir.path / ("n" + std::to_string(i + 1)) / "data").string();
    o.clock = &clock;
    o.tier_of = [](std::int64_t) { return 0u; };
    std::string err;
    auto led = ledger::ledger::open(o, err);
    INFO(err);
    REQUIRE(led);
    return led;
  }
  manual_clock clock{0};

  // What node i's process wrote to stderr so far (its log, every run).
  std::string log_of(int i) const {
    std::ifstream f(ps[static_cast<std::size_t>(i)]->stderr_file());
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

  // Stops every node and checks their ledgers: every acknowledged earn
  // once, balances equal to the acknowledged work, the same journal on
  // (at least `equal_min`) nodes, each verifying.
  template <class Load>
  void stop_and_check(const Load& l, std::size_t equal_min) {
    for (auto& p : ps)
      p->stop();
    std::vector<std::unique_ptr<ledger::ledger>> leds;
    for (int i = 0; i < nodes; ++i)
      leds.push_back(open_ledger(i));
    // The most advanced node; a node restarted last may be behind it only
    // if it had not caught up before the stop.
    std::size_t top = 0;
    for (std::size_t i = 1; i < leds.size(); ++i)
      if (leds[i]->last_seq() > leds[top]->last_seq())
        top = i;
    auto& ref = *leds[top];
    for (const auto& [txn, points] : l.acked)
      CHECK(ref.find_txn(txn));
    for (std::uint64_t m = 1; m <= members; ++m) {
      auto st = ref.load_member(m);
      REQUIRE(st);
      const auto owed = l.owed.find(m);
      CHECK(st->balance() == (owed == l.owed.end() ? 0 : owed->second));  // every acknowledged earn once, nothing more
    }
    CHECK(ref.last_seq() == members + l.acked.size());
    std::size_t equal = 0;
    for (auto& led : leds) {
      CHECK(led->verify().ok);
      if (led->last_seq() == ref.last_seq()) {
        test::same_journals(ref, *led);
        CHECK(led->journal_digest().digest == ref.journal_digest().digest);
        ++equal;
      }
    }
    CHECK(equal >= equal_min);
  }

  // The node that serves now: the one a balance request is not refused by
  // (`skip`: a node not to ask, a stopped process).
  std::optional<int> leader(int skip = -1) {
    for (int i = 0; i < nodes; ++i) {
      if (!ps[static_cast<std::size_t>(i)] || i == skip)
        continue;
      std::string err;
      auto c = io::client::connect("127.0.0.1", client_ports[static_cast<std::size_t>(i)], err);
      if (!c)
        continue;
      try {
        if (!c->hello("probe").ok())
          continue;
        if (c->balance(1).code != errc::not_leader)
          return i;
      } catch (const std::exception&) {
      }
    }
    return std::nullopt;
  }
};

// Sends earns one after the other, each until it is acknowledged.
struct load {
  cluster_processes& c;
  std::atomic<bool> stop{false};
  std::atomic<bool> paused{false};  // no new earn is sent while set
  std::mutex mtx;
  std::map<std::string, std::int64_t> acked;  // txn -> points
  std::map<std::uint64_t, std::int64_t> owed;  // member -> points acknowledged
  std::atomic<std::uint64_t> acks{0};
  std::unique_ptr<io::client> conn;
  int next_node = 0;

  explicit load(cluster_processes& cp) : c(cp) {}

  bool reconnect() {
    for (int k = 0; k < nodes; ++k) {
      next_node = (next_node + 1) % nodes;
      std::string err;
      auto x = io::client::connect("127.0.0.1", c.client_ports[static_cast<std::size_t>(next_node)], err);
      try {
        if (x && x->hello("cluster-load").ok()) {
          conn = std::move(x);
          return true;
        }
      } catch (const std::exception&) {
      }
    }
    return false;
  }

  // Until acknowledged (or the test stops); true if it was.
  bool send_until_acked(const io::request& r) {
    io::follow_options fo;
    fo.name = "cluster-load";
    fo.patience = 5s;
    while (!stop) {
      try {
        if (!conn && !reconnect()) {
          std::this_thread::sleep_for(20ms);
          continue;
        }
        auto a = io::call_following_leader(conn, r, fo);
        if (a.ok())
          return true;
        // unavailable (the node lost leadership mid-batch), not_leader after
        // the patience: ask again, elsewhere.
        conn.reset();
      } catch (const std::exception&) {
        conn.reset();  // the node died under the request
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  void run() {
    for (std::uint64_t m = 1; m <= members; ++m) {
      io::request r;
      r.op = io::opcode::enroll;
      r.member = m;
      r.has_member = true;
      r.brand = "shop";
      if (!send_until_acked(r))
        return;
    }
    for (std::uint64_t i = 0; !stop; ++i) {
      while (paused && !stop)
        std::this_thread::sleep_for(5ms);
      io::request r;
      r.op = io::opcode::earn;
      r.txn = "k" + std::to_string(i);
      r.member = 1 + i % members;
      r.has_member = true;
      r.brand = "shop";
      r.amount = 100 * static_cast<std::int64_t>(1 + i % 7);
      r.currency = "EUR";
      if (!send_until_acked(r))
        return;
      std::lock_guard<std::mutex> g(mtx);
      acked[r.txn] = r.amount / 100;
      owed[r.member] += r.amount / 100;
      acks++;
    }
  }
};

} // namespace

TEST_CASE("kill -9 of the leader ten times under load: nothing acknowledged is lost or posted twice, every node "
          "holds the same journal",
          "[replication][cluster][process]") {
  // With log compaction: a node killed and started again loads its last
  // snapshot (the ledger already holds it) and the log after it.
  cluster_processes c("snapshot_entries = 64\nsnapshot_trailing = 16\n");
  REQUIRE(test::eventually([&] { return c.leader().has_value(); }));
  load l(c);
  std::thread client([&] { l.run(); });
  std::vector<double> failover_ms;
  for (int kill = 0; kill < 10; ++kill) {
    // Some work acknowledged by this leader first.
    const auto before = l.acks.load();
    REQUIRE(test::eventually([&] { return l.acks.load() >= before + 20; }));
    std::optional<int> lead;
    REQUIRE(test::eventually([&] { return (lead = c.leader()).has_value(); }));
    const auto acked_then = l.acks.load();
    const auto t = std::chrono::steady_clock::now();
    c.ps[static_cast<std::size_t>(*lead)]->kill9();
    REQUIRE(test::eventually([&] { return l.acks.load() > acked_then + 1; }));
    failover_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
    c.start(*lead);  // the killed node comes back on its directories
  }
  l.stop = true;
  client.join();
  std::string times;
  for (auto ms : failover_ms)
    times += std::to_string(static_cast<int>(ms)) + " ";
  WARN("failover, kill to the second acknowledgement after it, ms: " << times << "; earns acknowledged: "
                                                                     << l.acked.size());

  // Let the restarted node catch up, stop every node cleanly, and read
  // their ledgers here: a majority holds every acknowledged entry.
  std::this_thread::sleep_for(2s);
  c.stop_and_check(l, 2);
}

// The leader's log is compacted past what the returning follower holds
// (five snapshots after the kill), so it must install the leader's
// snapshot. It used to stay behind for libraft's 30 s: a follower taking a
// snapshot of its own (as it often is right after its start) drops the one
// that arrives unanswered, and the leader waited install_snapshot_timeout
// before it sent it again (node_options::install_snapshot_timeout_ms).
TEST_CASE("a follower killed with kill -9 under load while the log is compacted catches up from a snapshot when it "
          "comes back",
          "[replication][cluster][process][snapshot]") {
  // A snapshot every 32 log entries, keeping 8: the log moves past a node
  // that is down for a few hundred batches.
  cluster_processes c("snapshot_entries = 32\nsnapshot_trailing = 8\n");
  std::optional<int> lead;
  REQUIRE(test::eventually([&] { return (lead = c.leader()).has_value(); }));
  load l(c);
  std::thread client([&] { l.run(); });
  REQUIRE(test::eventually([&] { return l.acks.load() >= 50; }));
  const int away = (*lead + 1) % nodes;
  // Snapshots each node has taken so far: the ones that count are taken
  // after the kill (one taken before it may still hold what the follower
  // lacks, and then the follower catches up from the log, not a snapshot).
  auto snapshots = [&](int i) {
    const auto log = c.log_of(i);
    std::size_t n = 0;
    for (auto at = log.find("snapshot at log index"); at != std::string::npos;
         at = log.find("snapshot at log index", at + 1))
      ++n;
    return n;
  };
  std::vector<std::size_t> before(nodes);
  c.ps[static_cast<std::size_t>(away)]->kill9();
  for (int i = 0; i < nodes; ++i)
    before[static_cast<std::size_t>(i)] = snapshots(i);
  // The others go on; their logs are compacted meanwhile: five snapshots
  // each after the kill (every 32 entries, 8 kept), so the entries after the
  // follower's last one are gone from their logs. (Its own Raft log may hold
  // up to 64 commands more than its ledger applied, limits.hpp
  // log_commands_queued_max: it replays those itself at its start.)
  const auto at_kill = l.acks.load();
  REQUIRE(test::eventually([&] { return l.acks.load() >= at_kill + 300; }, 60s));
  REQUIRE(test::eventually(
    [&] {
      for (int i = 0; i < nodes; ++i)
        if (i != away && snapshots(i) < before[static_cast<std::size_t>(i)] + 5)
          return false;
      return true;
    },
    60s));
  // The load pauses while the follower comes back (it stays behind with or
  // without the pause) and resumes once it installed a snapshot.
  l.paused = true;
  c.start(away);
  REQUIRE(test::eventually([&] { return c.log_of(away).find("ledger: installed a snapshot") != std::string::npos; },
                           30s));
  l.paused = false;
  const auto at_back = l.acks.load();
  REQUIRE(test::eventually([&] { return l.acks.load() >= at_back + 50; }));
  l.stop = true;
  client.join();
  std::this_thread::sleep_for(2s);  // the last entries reach every node
  WARN("earns acknowledged: " << l.acked.size() << ", " << (l.acks.load() - at_kill) << " while the follower was away");
  c.stop_and_check(l, nodes);  // all three equal: the follower caught up
}

TEST_CASE("a leader frozen past the election timeout (SIGSTOP) acknowledges nothing when it wakes, and steps down",
          "[replication][cluster][process]") {
  cluster_processes c;
  std::optional<int> lead;
  REQUIRE(test::eventually([&] { return (lead = c.leader()).has_value(); }));
  const int old = *lead;
  std::string err;
  auto a = io::client::connect("127.0.0.1", c.client_ports[static_cast<std::size_t>(old)], err);
  REQUIRE(a);
  REQUIRE(a->hello("frozen-test").ok());
  REQUIRE(a->enroll(1, "shop").ok());
  REQUIRE(a->earn("s1", 1, "shop", 1'000, "EUR", 0).ok());

  c.ps[static_cast<std::size_t>(old)]->signal(SIGSTOP);
  // Another node is elected meanwhile and serves.
  std::optional<int> next;
  REQUIRE(test::eventually([&] { return (next = c.leader(old)).has_value(); }));
  REQUIRE(*next != old);
  // A request to the frozen leader waits in its socket; it wakes up.
  io::request r;
  r.op = io::opcode::earn;
  r.txn = "s2";
  r.member = 1;
  r.has_member = true;
  r.brand = "shop";
  r.amount = 2'000;
  r.currency = "EUR";
  const auto id = a->send(r);
  c.ps[static_cast<std::size_t>(old)]->signal(SIGCONT);
  io::response got;
  REQUIRE(a->receive(got, err, 20s));
  CHECK(got.id == id);
  INFO(to_string(got.code) << ": " << got.message);
  CHECK_FALSE(got.ok());  // not_leader, or unavailable if it had begun the batch
  CHECK((got.code == errc::not_leader || got.code == errc::unavailable));
  // It steps down and names the new leader.
  REQUIRE(test::eventually([&] {
    auto b = a->balance(1);
    return b.code == errc::not_leader && b.leader == "127.0.0.1:" + std::to_string(c.client_ports[static_cast<std::size_t>(*next)]);
  }));
  for (auto& p : c.ps)
    p->stop();
  for (int i = 0; i < nodes; ++i) {
    auto led = c.open_ledger(i);
    CHECK(led->find_txn("s1"));
    CHECK_FALSE(led->find_txn("s2"));  // nothing the frozen leader took after its term was posted
    CHECK(led->verify().ok);
  }
}

// -- the load generator on a cluster ------------------------------------------------------

namespace {

constexpr int loadgen_members = 20;

// A closed-loop run of the load generator's binary: earns at brand "shop"
// for members 1..loadgen_members, to the nodes `to` (host:port,
// comma-separated); its output and JSON summary in the cluster's directory.
struct loadgen_run {
  std::filesystem::path dir, json;
  std::string args;
  int rc = -1;
  std::string out;
  test::json summary;

  loadgen_run(const cluster_processes& c, const std::string& to, const std::string& more, const std::string& name)
    : dir(c.dir.path), json(c.dir.path / (name + ".json")),
      args("--connect " + to + " --members " + std::to_string(loadgen_members) +
           " --mix earn=100 --brand shop --depth 8 --json " + json.string() + " " + more) {}

  // Asserts nothing: may run on a thread of its own.
  void run() { rc = test::run_loadgen(args, dir, out); }
  void read() { summary = test::parse_json_file(json); }
  [[nodiscard]] const test::json& failover() const {
    const auto* f = summary["failover"];
    REQUIRE(f);
    return *f;
  }
};

// What a run must show whatever happened to the cluster: it ran to the end,
// every request answered, and every error an `unavailable` (a leader that
// lost its term mid-batch: nothing posted). Its earns acknowledged.
std::uint64_t acknowledged_earns(const loadgen_run& r) {
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const auto& j = r.summary;
  CHECK(j["unanswered"]->num == 0);
  CHECK(j["connection_failures"]->num == 0);
  const auto* unavailable = (*j["errors_by_code"])["unavailable"];
  CHECK(j["errors"]->num == (unavailable ? unavailable->num : 0));
  const auto* earn = (*j["by_op"])["earn"];
  REQUIRE(earn);
  CHECK((*earn)["ok"]->num > 0);
  return static_cast<std::uint64_t>((*earn)["ok"]->num);
}

// The most advanced of the ledgers of the nodes `live` (stopped cleanly
// first): it holds the members, and each acknowledged earn once (an earn
// acknowledged twice, or posted unacknowledged, would make it longer; one
// lost, shorter); every other at its seq holds the same journal.
void check_posted_once(cluster_processes& c, const std::vector<int>& live, std::uint64_t earns) {
  for (auto i : live)
    c.ps[static_cast<std::size_t>(i)]->stop();
  std::vector<std::unique_ptr<ledger::ledger>> leds;
  for (auto i : live)
    leds.push_back(c.open_ledger(i));
  std::size_t top = 0;
  for (std::size_t i = 1; i < leds.size(); ++i)
    if (leds[i]->last_seq() > leds[top]->last_seq())
      top = i;
  CHECK(leds[top]->last_seq() == loadgen_members + earns);
  for (auto& led : leds) {
    CHECK(led->verify().ok);
    if (led->last_seq() == leds[top]->last_seq())
      test::same_journals(*leds[top], *led);
  }
}

std::string address_of(const cluster_processes& c, int i) {
  return "127.0.0.1:" + std::to_string(c.client_ports[static_cast<std::size_t>(i)]);
}

std::string every_node(const cluster_processes& c) {
  return address_of(c, 0) + "," + address_of(c, 1) + "," + address_of(c, 2);
}

// The node that leads, once one does.
int leader_of(cluster_processes& c) {
  std::optional<int> lead;
  REQUIRE(test::eventually([&] { return (lead = c.leader()).has_value(); }));
  return *lead;
}

} // namespace

TEST_CASE("the load generator pointed at a follower, then at every node, follows the leader; each earn it counts "
          "acknowledged is posted once",
          "[replication][cluster][process][loadgen]") {
  cluster_processes c;
  const int follower = (leader_of(c) + 1) % nodes;

  loadgen_run first(c, address_of(c, follower), "--connections 2 --duration 1.5 --seed 11", "follower");
  first.run();
  first.read();
  const auto earns1 = acknowledged_earns(first);
  CHECK(first.summary["enrolled"]->num == loadgen_members);
  CHECK(first.failover()["not_leader_followed"]->num >= 1);  // each connection's first answer, from the follower
  CHECK(first.failover()["reconnects"]->num >= 1);
  CHECK(first.failover()["recovered"]->num >= 1);

  loadgen_run every(c, every_node(c), "--skip-enroll --connections 3 --duration 1.5 --seed 12", "every");
  every.run();
  every.read();
  const auto earns2 = acknowledged_earns(every);
  CHECK(every.failover()["not_leader_followed"]->num >= 1);  // connections that began at a follower

  check_posted_once(c, {0, 1, 2}, earns1 + earns2);
}

TEST_CASE("the leader killed with SIGKILL under the load generator: it reconnects, sends its unanswered earns "
          "again, carries on against the new leader, and each earn it counts acknowledged is posted once",
          "[replication][cluster][process][loadgen]") {
  cluster_processes c;
  const int lead = leader_of(c);
  loadgen_run run(c, every_node(c), "--connections 3 --duration 5 --follow-patience 30 --seed 13", "kill");
  std::thread loadgen([&] { run.run(); });
  // Once it has run a second of load (its first per-second line), the leader dies.
  const bool loaded = test::eventually(
    [&] { return test::slurp(c.dir.path / "loadgen.out").find("    1.0s ") != std::string::npos; }, 30s);
  c.ps[static_cast<std::size_t>(lead)]->kill9();
  loadgen.join();
  REQUIRE(loaded);
  run.read();
  const auto earns = acknowledged_earns(run);
  const auto& f = run.failover();
  INFO(run.out);
  CHECK(f["dropped"]->num >= 1);     // the connections to the killed leader
  CHECK(f["reconnects"]->num >= 1);
  CHECK(f["resent"]->num >= 1);      // what was in flight on them, sent again
  CHECK(f["recovered"]->num >= 1);   // acknowledged requests after the kill: the gap ended
  CHECK(f["recovered"]->num == f["failovers"]->num);

  std::vector<int> live;
  for (int i = 0; i < nodes; ++i)
    if (i != lead)
      live.push_back(i);
  check_posted_once(c, live, earns);
}
