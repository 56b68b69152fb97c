// Issue 17: the ledger as the state machine of libraft's deterministic
// in-memory cluster (raft/fixture.h): three real ledgers (LMDB in temporary
// directories) behind three Raft servers, driven with a seed through
// partitions, leader crashes, dropped messages and random election timeouts
// while a client proposes group-commit batches (ledger/command.hpp) and
// retries the ones it did not see committed. Raft decides the order; the
// test checks what is ours: every committed batch is applied identically
// and in order on every node (equal journals, byte for byte, equal digests),
// every acknowledged transaction is in the journal exactly once, and every
// ledger verifies.
#include "ledger_ops.hpp"
#include "same_journal.hpp"
#include "temp_dir.hpp"

#include "ledger/cluster/node.hpp"
#include "ledger/cluster/state_machine.hpp"
#include "ledger/command.hpp"

extern "C" {
#include <raft/fixture.h>
}

#include <catch2/catch.hpp>

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>

using namespace loyalty;
using namespace loyalty::ledger;

namespace {

constexpr unsigned nodes = 3;
constexpr std::uint64_t members = 5;
constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;

struct node {
  test::temp_dir dir{"cluster-fixture"};
  manual_clock clock{t0};
  std::unique_ptr<class ledger> led;
  std::unique_ptr<cluster::state_machine> sm;
  node() {
    options o;
    o.dir = (dir.path / "data").string();
    o.map_bytes = 1ull << 28;
    o.clock = &clock;
    o.tier_of = [](std::int64_t l) { return l >= 1000 ? 1u : 0u; };
    std::string err;
    led = ledger::ledger::open(o, err);
    INFO(err);
    REQUIRE(led);
    sm = std::make_unique<cluster::state_machine>(*led, (dir.path / "scratch").string());
  }
};

// A proposal in flight: the callback records whether Raft committed it.
struct proposal {
  struct raft_apply req {};
  std::size_t batch = 0;
  std::map<std::size_t, int>* outcome = nullptr;
};

void applied_cb(struct raft_apply* req, int status, void*) {
  auto* p = static_cast<proposal*>(req->data);
  (*p->outcome)[p->batch] = status;
  delete p;
}

struct cluster_fixture {
  std::vector<std::unique_ptr<node>> ns;
  raft_fixture f{};
  // A snapshot every `snapshot_every` log entries, keeping `trailing` (the
  // default: never).
  explicit cluster_fixture(std::uint32_t seed, unsigned snapshot_every = 1u << 30, unsigned trailing = 0) {
    REQUIRE(raft_fixture_initialize(&f) == 0);
    std::mt19937 rng(seed);
    for (unsigned i = 0; i < nodes; ++i) {
      ns.push_back(std::make_unique<node>());
      REQUIRE(raft_fixture_grow(&f, ns.back()->sm->fsm()) == 0);
      ns.back()->sm->attach(raft_fixture_get(&f, i));
      raft_set_snapshot_threshold(raft_fixture_get(&f, i), snapshot_every);
      raft_set_snapshot_trailing(raft_fixture_get(&f, i), trailing);
      raft_fixture_set_randomized_election_timeout(&f, i, 1000 + rng() % 1000);
    }
    raft_configuration conf;
    REQUIRE(raft_fixture_configuration(&f, nodes, &conf) == 0);
    REQUIRE(raft_fixture_bootstrap(&f, &conf) == 0);
    raft_configuration_close(&conf);
    REQUIRE(raft_fixture_start(&f) == 0);
  }
  ~cluster_fixture() { raft_fixture_close(&f); }
  cluster_fixture(const cluster_fixture&) = delete;
  cluster_fixture& operator=(const cluster_fixture&) = delete;

  // Proposes `command` on the current leader; false if there is none or it refused.
  bool propose(const std::string& command, std::size_t batch, std::map<std::size_t, int>& outcome) {
    const unsigned l = raft_fixture_leader_index(&f);
    if (l == nodes)
      return false;
    raft_buffer buf = cluster::state_machine::entry_of(command);
    REQUIRE(buf.base != nullptr);
    auto* p = new proposal;
    p->req.data = p;
    p->batch = batch;
    p->outcome = &outcome;
    if (raft_apply(raft_fixture_get(&f, l), &p->req, &buf, 1, &applied_cb) != 0) {
      raft_free(buf.base);
      delete p;
      return false;
    }
    return true;
  }
};

} // namespace

TEST_CASE("under partitions, leader crashes and lost messages, every node applies the same batches in the same order",
          "[replication][fixture]") {
  const std::uint32_t seed = GENERATE(1u, 2u, 3u, 4u);
  // Without log compaction, and with a snapshot every 8 entries keeping 2:
  // a server back from a crash or a partition then often catches up from a
  // leader's snapshot (its ledger replaced by the leader's copy).
  const bool compacting = GENERATE(false, true);
  INFO("seed " << seed << (compacting ? ", snapshots every 8 entries" : ""));
  std::mt19937 rng(seed * 7919u);
  cluster_fixture c(seed, compacting ? 8 : 1u << 30, 2);
  REQUIRE(raft_fixture_step_until_has_leader(&c.f, 10'000));

  // The batches: the enrollments, then earns in batches of 1 to 8 ops.
  std::vector<std::string> batches;
  std::map<std::string, std::size_t> txn_batch;
  {
    std::vector<op> first;
    for (std::uint64_t m = 1; m <= members; ++m)
      first.push_back(test::enroll_op(m));
    batches.push_back(encode_command(first, t0));
    std::map<std::uint64_t, std::uint32_t> lot;
    int k = 0;
    for (int b = 0; b < 60; ++b) {
      std::vector<op> ops;
      const int n = 1 + static_cast<int>(rng() % 8);
      for (int i = 0; i < n; ++i, ++k) {
        const std::uint64_t m = 1 + rng() % members;
        const std::string txn = "t" + std::to_string(k);
        ops.push_back(test::earn_op(m, 1 + static_cast<std::int64_t>(rng() % 100), txn, ++lot[m]));
        txn_batch[txn] = batches.size();
      }
      batches.push_back(encode_command(ops, t0 + 1000u * static_cast<std::uint64_t>(b + 1)));
    }
  }

  // Propose each batch until Raft says it committed (0), with chaos between
  // proposals; a batch whose fate is unknown is proposed again (a retry of
  // the same bytes: its txn ids make it a replay if it did commit).
  std::map<std::size_t, int> outcome;
  int dead = -1;
  std::set<std::size_t> acknowledged;
  std::size_t next = 0;
  int rounds = 0, failed = 0, unknown = 0, kills = 0;
  while (next < batches.size() && rounds++ < 5000) {
    if (c.propose(batches[next], next, outcome)) {
      const auto status_known = [&] { return outcome.count(next) != 0; };
      for (int s = 0; s < 200 && !status_known(); ++s)
        raft_fixture_step(&c.f);
    }
    if (outcome.count(next) != 0 && outcome[next] != 0)
      ++failed;
    if (outcome.count(next) == 0)
      ++unknown;
    if (outcome.count(next) != 0 && outcome[next] == 0) {
      acknowledged.insert(next);
      ++next;
    }
    outcome.erase(next);
    // Chaos.
    switch (rng() % 10) {
      case 0:  // a crash of a server (one at a time), or its return
        if (dead < 0) {
          dead = static_cast<int>(rng() % nodes);
          raft_fixture_kill(&c.f, static_cast<unsigned>(dead));
          ++kills;
        } else {
          raft_fixture_revive(&c.f, static_cast<unsigned>(dead));
          dead = -1;
        }
        break;
      case 1: {  // a partition between two servers, or its healing
        const unsigned i = rng() % nodes, j = (i + 1 + rng() % (nodes - 1)) % nodes;
        if (rng() % 2 != 0) {
          raft_fixture_disconnect(&c.f, i, j);
          raft_fixture_disconnect(&c.f, j, i);
        } else {
          raft_fixture_reconnect(&c.f, i, j);
          raft_fixture_reconnect(&c.f, j, i);
        }
        break;
      }
      case 2: {  // messages from one server to another silently lost for a while
        const unsigned i = rng() % nodes, j = (i + 1 + rng() % (nodes - 1)) % nodes;
        raft_fixture_saturate(&c.f, i, j);
        raft_fixture_step_until_elapsed(&c.f, 200 + rng() % 2000);
        raft_fixture_desaturate(&c.f, i, j);
        break;
      }
      case 3:  // the leader deposed
        if (raft_fixture_leader_index(&c.f) != nodes && dead < 0)
          raft_fixture_depose(&c.f);
        break;
      default:
        raft_fixture_step_until_elapsed(&c.f, rng() % 300);
        break;
    }
    if (raft_fixture_leader_index(&c.f) == nodes)
      raft_fixture_step_until_has_leader(&c.f, 5'000);
  }
  REQUIRE(next == batches.size());
  CHECK(failed + unknown > 0);  // the seeds are chosen so that batches were retried
  CHECK(kills > 0);
  WARN("seed " << seed << (compacting ? " compacting" : "") << ": rounds " << rounds << " failed " << failed << " unknown " << unknown << " kills " << kills
       << " term " << raft_fixture_get(&c.f, 0)->current_term << " last index " << raft_last_index(raft_fixture_get(&c.f, 0)));

  // Heal everything and let every server apply all that is committed.
  if (dead >= 0)
    raft_fixture_revive(&c.f, static_cast<unsigned>(dead));
  for (unsigned i = 0; i < nodes; ++i)
    for (unsigned j = 0; j < nodes; ++j)
      if (i != j) {
        raft_fixture_reconnect(&c.f, i, j);
        raft_fixture_desaturate(&c.f, i, j);
      }
  REQUIRE(raft_fixture_step_until_has_leader(&c.f, 10'000));
  const unsigned l = raft_fixture_leader_index(&c.f);
  const raft_index last = raft_last_index(raft_fixture_get(&c.f, l));
  REQUIRE(raft_fixture_step_until_applied(&c.f, nodes, last, 20'000));

  auto& first = *c.ns[0]->led;
  for (unsigned i = 1; i < nodes; ++i) {
    INFO("node " << i);
    auto& other = *c.ns[i]->led;
    REQUIRE(other.last_seq() == first.last_seq());
    CHECK(other.journal_digest().digest == first.journal_digest().digest);
    test::same_journals(first, other);
  }
  std::uint64_t taken = 0, installed = 0;
  for (unsigned i = 0; i < nodes; ++i) {
    taken += c.ns[i]->sm->snapshots_taken();
    installed += c.ns[i]->sm->snapshots_installed();
  }
  WARN("snapshots taken " << taken << ", installed " << installed);
  CHECK((taken > 0) == compacting);
  for (unsigned i = 0; i < nodes; ++i) {
    INFO("node " << i);
    CHECK(c.ns[i]->sm->refused() == 0);
    // The log index of the last command applied, recorded by the ledger.
    CHECK(c.ns[i]->led->applied_log_index() == c.ns[0]->led->applied_log_index());
    CHECK(c.ns[i]->led->applied_log_index() > batches.size());
    CHECK(c.ns[i]->led->applied_log_index() <= raft_last_applied(raft_fixture_get(&c.f, i)));
    auto v = c.ns[i]->led->verify();
    CHECK(v.ok);
  }
  // Every acknowledged transaction exactly once: earns of members that
  // exist, each txn id indexed, the journal holding the enrollments and one
  // entry per txn id.
  std::size_t txns = 0;
  for (const auto& [txn, b] : txn_batch) {
    if (acknowledged.count(b) == 0)
      continue;
    ++txns;
    CHECK(first.find_txn(txn));
  }
  CHECK(txns == txn_batch.size());
  CHECK(first.last_seq() == members + txn_batch.size());
}

TEST_CASE("a server cut off while the log is compacted catches up from the leader's snapshot", "[replication][fixture]") {
  cluster_fixture c(11, 8, 2);
  REQUIRE(raft_fixture_step_until_has_leader(&c.f, 10'000));
  const unsigned l = raft_fixture_leader_index(&c.f);
  const unsigned away = (l + 1) % nodes;
  for (unsigned i = 0; i < nodes; ++i)
    if (i != away) {
      raft_fixture_disconnect(&c.f, i, away);
      raft_fixture_disconnect(&c.f, away, i);
    }
  std::map<std::size_t, int> outcome;
  std::vector<op> first;
  for (std::uint64_t m = 1; m <= members; ++m)
    first.push_back(test::enroll_op(m));
  std::vector<std::string> batches{encode_command(first, t0)};
  for (int b = 0; b < 40; ++b)
    batches.push_back(encode_command({test::earn_op(1 + b % members, 10 + b, "s" + std::to_string(b), 1 + b / members)},
                                     t0 + 1000u * static_cast<std::uint64_t>(b + 1)));
  for (std::size_t b = 0; b < batches.size(); ++b) {
    REQUIRE(c.propose(batches[b], b, outcome));
    for (int s = 0; s < 200 && outcome.count(b) == 0; ++s)
      raft_fixture_step(&c.f);
    REQUIRE(outcome[b] == 0);
  }
  // The leader's log now starts past everything the cut-off server holds.
  CHECK(c.ns[l]->sm->snapshots_taken() > 0);
  CHECK(c.ns[away]->led->last_seq() == 0);
  for (unsigned i = 0; i < nodes; ++i)
    if (i != away) {
      raft_fixture_reconnect(&c.f, i, away);
      raft_fixture_reconnect(&c.f, away, i);
    }
  const raft_index last = raft_last_index(raft_fixture_get(&c.f, l));
  REQUIRE(raft_fixture_step_until_applied(&c.f, nodes, last, 20'000));
  CHECK(c.ns[away]->sm->snapshots_installed() == 1);
  c.ns[away]->led->barrier();
  REQUIRE(c.ns[away]->led->last_seq() == c.ns[l]->led->last_seq());
  CHECK(c.ns[away]->led->journal_digest().digest == c.ns[l]->led->journal_digest().digest);
  test::same_journals(*c.ns[l]->led, *c.ns[away]->led);
  CHECK(c.ns[away]->led->verify().ok);
  CHECK(c.ns[away]->led->find_txn("s39"));
  // Balances came with it: the ledger state, not only the journal.
  const auto a = c.ns[away]->led->load_member(1);
  const auto b = c.ns[l]->led->load_member(1);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->balance() == b->balance());
  CHECK(a->balance() > 0);
}

TEST_CASE("a log entry is its command's length, the command and zeros to 8 bytes; anything else is refused",
          "[replication]") {
  for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 200u}) {
    const std::string command(n, 'c');
    const raft_buffer made = cluster::state_machine::entry_of(command);
    REQUIRE(made.base != nullptr);
    const std::string entry(static_cast<const char*>(made.base), made.len);
    raft_free(made.base);
    CHECK(entry.size() % 8 == 0);
    CHECK(entry.substr(8 + n) == std::string(entry.size() - 8 - n, '\0'));
    CHECK(entry.size() - 8 - n < 8);
    raft_buffer buf{const_cast<char*>(entry.data()), entry.size()};
    std::string_view back;
    std::string err;
    REQUIRE(cluster::state_machine::unwrap(buf, back, err));
    CHECK(back == command);
    // Cut, grown past its padding, or claiming more than it holds.
    raft_buffer cut{const_cast<char*>(entry.data()), entry.size() - 1};
    CHECK_FALSE(cluster::state_machine::unwrap(cut, back, err));
    std::string longer = entry + std::string(8, '\0');
    raft_buffer grown{longer.data(), longer.size()};
    CHECK_FALSE(cluster::state_machine::unwrap(grown, back, err));
    std::string lying = entry;
    const std::uint64_t big = n + 8;
    std::memcpy(lying.data(), &big, 8);
    raft_buffer claims{lying.data(), lying.size()};
    CHECK_FALSE(cluster::state_machine::unwrap(claims, back, err));
  }
}

TEST_CASE("the leader waits for a snapshot's answer four election timeouts (2 s or more), plus 1 s per 32 MiB of "
          "ledger, before it sends the snapshot again",
          "[replication][snapshot]") {
  CHECK(cluster::install_snapshot_timeout_auto(100, 0) == 2'000);
  CHECK(cluster::install_snapshot_timeout_auto(1'000, 0) == 4'000);
  CHECK(cluster::install_snapshot_timeout_auto(1'000, (32ull << 20) - 1) == 4'000);
  CHECK(cluster::install_snapshot_timeout_auto(1'000, 32ull << 20) == 5'000);
  CHECK(cluster::install_snapshot_timeout_auto(1'000, 10ull << 30) == 4'000 + 320'000);  // 10 GiB: 5 min 20 s more
  CHECK(cluster::install_snapshot_timeout_auto(60'000, ~0ull) == 86'400'000);            // at most a day
}
