// Issue 17: three cluster nodes in this process, each a real ledger (LMDB in
// its own temporary directory) under a real Raft server (libraft's log on
// disk, its TCP transport on loopback): batches submitted to the leader's
// ledger are committed by a majority and applied by every node; a follower
// refuses to post; the leader stopped, another takes over, a retry of a txn
// the old leader acknowledged is a replay; the old node restarted on its
// directories catches up. Journals equal byte for byte on every node.
#include "eventually.hpp"
#include "free_port.hpp"
#include "ledger_ops.hpp"
#include "same_journal.hpp"
#include "temp_dir.hpp"

#include "ledger/cluster/node.hpp"

#include <catch2/catch.hpp>


#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

using namespace loyalty;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;
constexpr auto patience = 20s;  // liveness bound of every wait

// A loopback port nobody listens on now.

using test::eventually;

struct collector final : ledger::completion_target {
  std::mutex mtx;
  std::condition_variable cv;
  std::map<std::uint64_t, ledger::outcome> got;
  void complete(std::vector<ledger::outcome>&& v) noexcept override {
    std::lock_guard<std::mutex> g(mtx);
    for (auto& o : v)
      got[o.tag] = o;
    cv.notify_all();
  }
  ledger::outcome wait(std::uint64_t tag) {
    std::unique_lock<std::mutex> g(mtx);
    REQUIRE(cv.wait_for(g, patience, [&] { return got.count(tag) != 0; }));
    return got[tag];
  }
};

// One node: its directories outlive restarts.
struct member {
  test::temp_dir dir{"cluster-node"};
  manual_clock clock{t0};
  std::unique_ptr<ledger::ledger> led;
  std::unique_ptr<cluster::node> raft;  // set before any op is submitted, freed after the ledger

  void start(const cluster::node_options& base, std::uint64_t id) {
    ledger::options o;
    o.dir = (dir.path / "data").string();
    o.map_bytes = 1ull << 28;
    o.clock = &clock;
    o.tier_of = [](std::int64_t l) { return l >= 1000 ? 1u : 0u; };
    o.propose = [this](std::string c, std::uint64_t id) { return raft->propose(c, id); };
    std::string err;
    led = ledger::ledger::open(o, err);
    INFO(err);
    REQUIRE(led);
    cluster::node_options no = base;
    no.id = id;
    no.dir = (dir.path / "raft").string();
    raft = cluster::node::start(no, *led, err);
    INFO(err);
    REQUIRE(raft);
  }
  // As a process that exits: the node first (the writer's waits end), then
  // the ledger, then the node's memory.
  void stop() {
    raft->stop();
    led.reset();
    raft.reset();
  }
};

struct cluster3 {
  cluster::node_options base;
  std::vector<std::unique_ptr<member>> ms;
  std::shared_ptr<collector> out = std::make_shared<collector>();
  std::uint64_t tag = 1;
  std::map<std::uint64_t, std::uint32_t> lot;

  cluster3() {
    base.election_timeout_ms = 300;
    base.heartbeat_ms = 50;
    for (std::uint64_t id = 1; id <= 3; ++id)
      base.peers.push_back({id, "127.0.0.1:" + std::to_string(test::free_port())});
    for (std::uint64_t id = 1; id <= 3; ++id) {
      ms.push_back(std::make_unique<member>());
      ms.back()->start(base, id);
    }
  }
  ~cluster3() {
    for (auto& m : ms)
      if (m->raft)
        m->stop();
  }

  // The index of the running member that leads, once one does.
  std::size_t leader() {
    std::size_t found = ms.size();
    REQUIRE(eventually([&] {
      for (std::size_t i = 0; i < ms.size(); ++i)
        if (ms[i]->raft && ms[i]->raft->status().leader) {
          found = i;
          return true;
        }
      return false;
    }));
    return found;
  }

  ledger::outcome run(std::size_t i, ledger::op o) {
    o.target = out;
    o.tag = tag++;
    const auto t = o.tag;
    ms[i]->led->submit(std::move(o));
    return out->wait(t);
  }
  ledger::outcome earn(std::size_t i, std::uint64_t m, std::int64_t points, const std::string& txn) {
    return run(i, test::earn_op(m, points, txn, ++lot[m]));
  }

  // Every running member holds `seq` entries.
  bool all_at(std::uint64_t seq) {
    return eventually([&] {
      for (auto& m : ms)
        if (m->led && m->led->last_seq() != seq)
          return false;
      return true;
    });
  }
};

} // namespace

TEST_CASE("three nodes on loopback replicate the leader's batches, fail over, and a restarted node catches up",
          "[replication][cluster]") {
  cluster3 c;
  const std::size_t l = c.leader();
  // Its barrier of the term applied: every earlier entry is in its ledger.
  CHECK(eventually([&] { return c.ms[l]->raft->status().leader_ready; }));
  for (std::uint64_t m = 1; m <= 3; ++m)
    REQUIRE(c.run(l, test::enroll_op(m)).code == errc::ok);
  for (int i = 0; i < 30; ++i)
    REQUIRE(c.earn(l, 1 + static_cast<std::uint64_t>(i % 3), 10 + i, "a" + std::to_string(i)).code == errc::ok);
  // Pipelined: many ops in flight, batched by the leader's writer.
  std::vector<std::uint64_t> tags;
  for (int i = 0; i < 200; ++i) {
    auto o = test::earn_op(1 + static_cast<std::uint64_t>(i % 3), 5, "p" + std::to_string(i), ++c.lot[1 + i % 3]);
    o.target = c.out;
    o.tag = c.tag++;
    tags.push_back(o.tag);
    c.ms[l]->led->submit(std::move(o));
  }
  for (auto t : tags)
    REQUIRE(c.out->wait(t).code == errc::ok);
  const std::uint64_t seq1 = c.ms[l]->led->last_seq();
  CHECK(seq1 == 3 + 30 + 200);
  REQUIRE(c.all_at(seq1));

  // A follower does not post: its writer's batch is refused by the log.
  const std::size_t f = (l + 1) % 3;
  CHECK(c.earn(f, 1, 1, "on-a-follower").code == errc::unavailable);
  CHECK_FALSE(c.ms[l]->led->find_txn("on-a-follower"));

  // The leader goes away; another takes over and serves.
  c.ms[l]->stop();
  const std::size_t l2 = c.leader();
  REQUIRE(l2 != l);
  CHECK(eventually([&] { return c.ms[l2]->raft->status().leader_ready; }));
  CHECK_FALSE(c.ms[f == l2 ? (l2 + 1) % 3 : f]->raft->status().leader_ready);
  auto replay = c.earn(l2, 1, 10, "a0");  // acknowledged by the old leader
  CHECK(replay.code == errc::ok);
  CHECK(replay.replayed);
  for (int i = 0; i < 20; ++i)
    REQUIRE(c.earn(l2, 2, 7, "b" + std::to_string(i)).code == errc::ok);
  const std::uint64_t seq2 = c.ms[l2]->led->last_seq();
  CHECK(seq2 == seq1 + 20);

  // The old node restarts on its directories and catches up.
  c.ms[l]->start(c.base, l + 1);
  REQUIRE(c.all_at(seq2));
  auto& ref = *c.ms[l2]->led;
  for (auto& m : c.ms) {
    test::same_journals(ref, *m->led);
    CHECK(m->led->journal_digest().digest == ref.journal_digest().digest);
    auto v = m->led->verify();
    CHECK(v.ok);
  }
}

TEST_CASE("a node whose ledger lost its last commits (a power cut undoes them) re-applies them from its log",
          "[replication][cluster]") {
  cluster3 c;
  const std::size_t l = c.leader();
  for (std::uint64_t m = 1; m <= 3; ++m)
    REQUIRE(c.run(l, test::enroll_op(m)).code == errc::ok);
  for (int i = 0; i < 20; ++i)
    REQUIRE(c.earn(l, 1 + static_cast<std::uint64_t>(i % 3), 3, "x" + std::to_string(i)).code == errc::ok);
  const std::size_t f = (l + 1) % 3;
  REQUIRE(c.all_at(c.ms[l]->led->last_seq()));
  // The follower's ledger as it was here: a copy, to stand for what a power
  // cut leaves of it once its later commits are undone.
  const auto copy = c.ms[f]->dir.path / "copy";
  std::string err;
  auto b = c.ms[f]->led->backup(copy.string(), err);
  INFO(err);
  REQUIRE(b);
  const auto applied_then = c.ms[f]->led->applied_log_index();
  for (int i = 0; i < 30; ++i)
    REQUIRE(c.earn(l, 2, 4, "y" + std::to_string(i)).code == errc::ok);
  const std::uint64_t seq = c.ms[l]->led->last_seq();
  REQUIRE(c.all_at(seq));
  c.ms[f]->stop();
  const auto data = c.ms[f]->dir.path / "data";
  std::filesystem::remove(data / "data.mdb");
  std::filesystem::copy_file(copy / "data.mdb", data / "data.mdb");
  {
    // Behind its log: the later commits are gone from it.
    ledger::options o;
    o.dir = data.string();
    o.map_bytes = 1ull << 28;
    o.clock = &c.ms[f]->clock;
    o.tier_of = [](std::int64_t) { return 0u; };
    auto alone = ledger::ledger::open(o, err);
    REQUIRE(alone);
    CHECK(alone->last_seq() == b->seq);
    CHECK(alone->last_seq() < seq);
    CHECK(alone->applied_log_index() == applied_then);
  }
  c.ms[f]->start(c.base, f + 1);
  REQUIRE(c.all_at(seq));
  test::same_journals(*c.ms[l]->led, *c.ms[f]->led);
  CHECK(c.ms[f]->led->journal_digest().digest == c.ms[l]->led->journal_digest().digest);
  CHECK(c.ms[f]->led->verify().ok);
}
