// Ledger group commit: earns for random members among 1M, submitted in
// batches of N and committed (durably, or with nosync_unsafe for the
// comparison), measured end to end through submit() and barrier().
#include "ledger/ledger.hpp"

#include <benchmark/benchmark.h>

#include <filesystem>
#include <cstring>
#include <random>

namespace {

struct sink final : loyalty::ledger::completion_target {
  void complete(std::vector<loyalty::ledger::outcome>&&) noexcept override {}
};

void bm_commit_earns(benchmark::State& state) {
  namespace L = loyalty::ledger;
  char tmpl[] = "/tmp/loyalty-bench-XXXXXX";
  std::filesystem::path dir = mkdtemp(tmpl);
  loyalty::system_clock clock;
  L::options o;
  o.dir = dir.string();
  o.map_bytes = 8ull << 30;
  o.sync = state.range(1) ? loyalty::durability::fsync : loyalty::durability::nosync_unsafe;
  o.batch_entries_max = static_cast<std::uint32_t>(state.range(0));
  o.commit_window_us = 0;
  o.clock = &clock;
  o.tier_of = [](std::int64_t) { return 0u; };
  std::string err;
  auto led = L::ledger::open(o, err);
  if (!led) {
    state.SkipWithError(err.c_str());
    return;
  }
  auto target = std::make_shared<sink>();
  std::mt19937_64 rng(42);
  std::uint64_t counter = 0;
  for (auto _ : state) {
    for (std::int64_t i = 0; i < state.range(0); ++i) {
      L::op op;
      op.kind = L::op_kind::post;
      op.entry = L::entry_kind::earn;
      op.member_id = 1 + rng() % 1'000'000;
      op.brand_id = 1;
      ++counter;
      char txn[16];
      for (int b = 0; b < 8; ++b)
        txn[b] = static_cast<char>(counter >> (56 - 8 * b));
      std::memset(txn + 8, 0, 8);
      op.set_txn({txn, sizeof txn});
      op.points = 10;
      op.postings = {{L::account_id(L::account_kind::brand_issued, 1), 10,
                      static_cast<std::uint32_t>(L::posting_side::debit), 0},
                     {L::account_id(L::account_kind::member_points, op.member_id), 10,
                      static_cast<std::uint32_t>(L::posting_side::credit), 0}};
      op.target = target;
      led->submit(std::move(op));
    }
    led->barrier();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  led.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(bm_commit_earns)
  ->ArgNames({"batch", "fsync"})
  ->Args({250, 1})
  ->Args({250, 0})
  ->Args({1000, 1})
  ->Args({10000, 1})
  ->Args({10000, 0})
  ->Unit(benchmark::kMillisecond)
  ->UseRealTime();

} // namespace
