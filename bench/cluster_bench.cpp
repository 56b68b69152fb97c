// Group commit through a 3-node cluster (ledger/cluster/node.hpp) against
// the single node, in the same process: earns for random members among 1M,
// submitted to the leader's ledger in batches of N and waited for
// (barrier). Three ledgers, three Raft logs (fsynced) and the loopback
// transport all share this machine's cores with the benchmark. Each node's
// LMDB commits are fsynced too (what the cluster will relax is measured
// here first).
#include "earns.hpp"

#include "ledger/cluster/node.hpp"
#include "ledger/ledger.hpp"

#include <benchmark/benchmark.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

namespace {

namespace L = loyalty::ledger;
namespace C = loyalty::cluster;

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  ::close(fd);
  return ntohs(a.sin_port);
}

struct bench_node {
  std::filesystem::path dir;
  loyalty::system_clock clock;
  std::unique_ptr<L::ledger> led;
  std::unique_ptr<C::node> raft;  // set before any op is submitted, freed after the ledger
};

void bm_cluster_commit_earns(benchmark::State& state) {
  C::node_options base;
  base.election_timeout_ms = 1000;
  base.heartbeat_ms = 100;
  for (std::uint64_t id = 1; id <= 3; ++id)
    base.peers.push_back({id, "127.0.0.1:" + std::to_string(free_port())});
  std::vector<std::unique_ptr<bench_node>> ns;
  for (std::uint64_t id = 1; id <= 3; ++id) {
    auto n = std::make_unique<bench_node>();
    char tmpl[] = "/tmp/loyalty-cluster-bench-XXXXXX";
    n->dir = mkdtemp(tmpl);
    L::options o;
    o.dir = (n->dir / "data").string();
    o.map_bytes = 8ull << 30;
    o.batch_entries_max = static_cast<std::uint32_t>(state.range(0));
    o.commit_window_us = 0;
    o.clock = &n->clock;
    o.tier_of = [](std::int64_t) { return 0u; };
    auto* raw = n.get();
    o.propose = [raw](std::string c, std::uint64_t id) { return raw->raft->propose(c, id); };
    std::string err;
    n->led = L::ledger::open(o, err);
    C::node_options no = base;
    no.id = id;
    no.dir = (n->dir / "raft").string();
    if (n->led)
      n->raft = C::node::start(no, *n->led, err);
    if (!n->raft) {
      state.SkipWithError(err.c_str());
      return;
    }
    ns.push_back(std::move(n));
  }
  bench_node* leader = nullptr;
  for (int i = 0; i < 1000 && leader == nullptr; ++i) {
    for (auto& n : ns)
      if (n->raft->status().leader)
        leader = n.get();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (leader == nullptr) {
    state.SkipWithError("no leader within 10 s");
    return;
  }
  auto target = std::make_shared<loyalty::bench::sink>();
  std::mt19937_64 rng(42);
  std::uint64_t counter = 0;
  for (auto _ : state)
    loyalty::bench::submit_earns(*leader->led, state.range(0), rng, counter, target);
  state.SetItemsProcessed(state.iterations() * state.range(0));
  for (auto& n : ns) {
    n->raft->stop();
    n->led.reset();
    n->raft.reset();
    std::filesystem::remove_all(n->dir);
  }
}
BENCHMARK(bm_cluster_commit_earns)->ArgName("batch")->Arg(250)->Arg(1000)->UseRealTime()->MinTime(3.0);

} // namespace
