// Ledger group commit: earns for random members among 1M, submitted in
// batches of N and committed (durably, or with nosync_unsafe for the
// comparison), measured end to end through submit() and barrier().
#include "ledger/detail/account_cache.hpp"
#include "ledger/detail/txn_filter.hpp"
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

// The in-memory filter of committed txn ids that the member actor asks
// before every request (ledger/detail/txn_filter.hpp, private to ledger/:
// measured here because it is on the hot path): a lookup of a 16-byte id
// that was never added, in a 64 MiB filter holding 1M ids.
void bm_txn_filter_miss(benchmark::State& state) {
  loyalty::ledger::detail::txn_filter f(64ull << 20);
  char id[16] = {};
  for (std::uint64_t i = 0; i < 1'000'000; ++i) {
    std::memcpy(id, &i, sizeof i);
    f.add({id, sizeof id});
  }
  std::uint64_t probe = 1ull << 40;
  std::uint64_t maybes = 0;
  for (auto _ : state) {
    ++probe;
    std::memcpy(id, &probe, sizeof probe);
    maybes += f.maybe({id, sizeof id}) ? 1 : 0;
  }
  state.counters["false_positive_rate"] =
    benchmark::Counter(static_cast<double>(maybes), benchmark::Counter::kAvgIterations);
}
BENCHMARK(bm_txn_filter_miss);

// The writer's write-back account cache (ledger/detail/account_cache.hpp):
// caching the balance of a member account not cached yet, as nearly every
// earn does, up to a checkpoint's worth (262,144) and cleared again.
void bm_account_cache_insert(benchmark::State& state) {
  loyalty::ledger::detail::account_cache cache;
  std::mt19937_64 rng(7);
  std::uint64_t n = 0;
  for (auto _ : state) {
    auto& rec = cache[loyalty::ledger::account_id(loyalty::ledger::account_kind::member_points, 1 + rng() % 10'000'000)];
    rec.credit_total += 10;
    if (++n % 262'144 == 0)
      cache.clear();
  }
}
BENCHMARK(bm_account_cache_insert);
