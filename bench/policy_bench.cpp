// Policy evaluation on the hot path: earn points for a purchase (128-bit
// floor of amount x rate x tier multiplier), the request content hash, and
// the member's plain state transition that builds the journal entry.
#include "actors/member.hpp"
#include "actors/policy.hpp"

#include <benchmark/benchmark.h>

#include <random>

namespace {

loyalty::program bench_program() {
  loyalty::program p;
  p.name = "bench";
  p.currency = "EUR";
  p.brands.push_back({1, "acme", "Acme", {1, 100}});
  p.tiers.push_back({"member", 0, {1, 1}});
  p.tiers.push_back({"silver", 1000, {5, 4}});
  p.tiers.push_back({"gold", 5000, {3, 2}});
  return p;
}

void bm_earn_points(benchmark::State& state) {
  auto prog = bench_program();
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::int64_t> amount(100, 20000);
  std::int64_t sum = 0;
  for (auto _ : state) {
    auto r = loyalty::actors::earn_points(prog, prog.brands[0], 2, amount(rng));
    sum += r.points;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_earn_points);

void bm_request_hash(benchmark::State& state) {
  std::uint64_t member = 1;
  for (auto _ : state) {
    auto h = loyalty::actors::request_hash(loyalty::actors::request_kind::earn, member++, 1, 1234, 1'700'000'000'000'000ull,
                                           0, "EUR");
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_request_hash);

void bm_prepare_earn(benchmark::State& state) {
  auto prog = bench_program();
  loyalty::actors::member_data m;
  m.loaded = m.enrolled = true;
  m.brand_id = 1;
  loyalty::actors::member_request r;
  r.kind = loyalty::actors::request_kind::earn;
  r.member = 1;
  r.brand_id = 1;
  r.amount_minor = 1999;
  r.txn_bytes = 16;
  for (auto _ : state) {
    loyalty::ledger::op op;
    auto code = loyalty::actors::prepare_earn(m, prog, r, op);
    benchmark::DoNotOptimize(code);
    benchmark::DoNotOptimize(op);
    if (m.balance > (std::int64_t{1} << 60))
      m.balance = m.lifetime = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_prepare_earn);

} // namespace
