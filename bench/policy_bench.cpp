// Policy evaluation on the hot path: earn points for a purchase (128-bit
// floor of amount x rate x tier multiplier), the request content hash, the
// member's plain state transition that builds the journal entry, and the
// issue-3 policy functions (earn evaluation over a basket, spend planning).
#include "actors/coalition.hpp"
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

// The canonical content hash the server computes for every request (an earn
// with a 3-item basket): txn-id conflict detection.
void bm_content_hash(benchmark::State& state) {
  std::uint64_t member = 1;
  const std::string sku = "sku-1234", category = "grocery", currency = "EUR";
  for (auto _ : state) {
    loyalty::actors::content_hasher h(loyalty::actors::request_kind::earn);
    h.add(member++).add(std::uint64_t{1}).add(std::int64_t{1234}).add(std::string_view(currency));
    h.add(std::uint64_t{1'700'000'000'000'000ull}).add(std::int64_t{0}).add(std::uint64_t{3});
    for (int i = 0; i < 3; ++i)
      h.add(std::string_view(sku)).add(std::string_view(category)).add(std::int64_t{1}).add(std::int64_t{411});
    benchmark::DoNotOptimize(h.value());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_content_hash);

// The member actor's whole earn transition: tier review check, evaluation,
// cap reservation, lot / qualify / rule-line records, folded into the book.
void bm_prepare_earn(benchmark::State& state) {
  auto prog = bench_program();
  loyalty::actors::member_data m;
  m.loaded = m.enrolled = true;
  m.brand_id = 1;
  m.id = 1;
  loyalty::actors::member_request r;
  r.kind = loyalty::actors::request_kind::earn;
  r.member = 1;
  r.brand_id = 1;
  r.amount_minor = 1999;
  r.occurred_at_us = 1'700'000'000'000'000ull;
  r.txn_bytes = 16;
  const loyalty::actors::env e{prog, nullptr, nullptr, 1'700'000'000'000'000ull};
  std::vector<loyalty::ledger::op> ops;
  std::string msg;
  for (auto _ : state) {
    ops.clear();
    auto code = loyalty::actors::prepare(m, e, r, ops, msg);
    benchmark::DoNotOptimize(code);
    benchmark::DoNotOptimize(ops);
    if (m.book.lots.size() > 1000) {  // a member with a thousand open lots: start again
      state.PauseTiming();
      m.book = {};
      m.balance = 0;
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_prepare_earn);

// Issue 3: a 5-line basket with 3 matching purchase rules (sku multiplier,
// category multiplier, channel bonus with a per-member cap) in gold tier.
void bm_evaluate_earn(benchmark::State& state) {
  auto prog = bench_program();
  loyalty::earn_rule beans;
  beans.id = 10;
  beans.skus = {"BEANS-1", "BEANS-2"};
  beans.multiplier = loyalty::rational{2, 1};
  loyalty::earn_rule dairy;
  dairy.id = 11;
  dairy.categories = {"dairy"};
  dairy.multiplier = loyalty::rational{5, 2};
  loyalty::earn_rule app;
  app.id = 12;
  app.channels = {"app"};
  app.bonus_points = 40;
  app.cap_per_member = 1'000'000;
  prog.rules = {beans, dairy, app};
  loyalty::ledger::member_book book;
  book.first_purchase_seq = 1;
  book.counters = {{12, 3, 120}};
  loyalty::actors::basket b;
  b.brand_id = 1;
  b.channel = "app";
  b.occurred_at_us = 1'700'000'000'000'000ull;
  b.lines = {{"BEANS-1", "coffee", 1, 1250}, {"MILK", "dairy", 2, 330}, {"BEANS-2", "coffee", 1, 999},
             {"CHEESE", "dairy", 1, 475}, {"BREAD", "bakery", 1, 260}};
  b.amount = 3314;
  std::vector<loyalty::actors::rule_total> totals = {{10, 5'000}, {11, 7'000}, {12, 9'000}};
  std::int64_t sum = 0;
  for (auto _ : state) {
    auto d = loyalty::actors::evaluate_earn(prog, book, 2, b, totals);
    sum += d.points;
    benchmark::DoNotOptimize(d);
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_evaluate_earn);

// Issue 3: spending over 50 lots (mixed expiries, some pending), taking
// about half of the available points.
void bm_plan_spend(benchmark::State& state) {
  loyalty::ledger::member_book book;
  std::mt19937_64 rng(7);
  const std::uint64_t now = 1'700'000'000'000'000ull;
  std::int64_t total = 0;
  for (std::uint32_t i = 1; i <= 50; ++i) {
    std::uint64_t expires = i % 5 == 0 ? 0 : now + (rng() % 365) * 86'400'000'000ull;
    std::uint64_t available = i % 10 == 3 ? now + 1 : 0;
    std::int64_t pts = 10 + static_cast<std::int64_t>(rng() % 500);
    if (available == 0)
      total += pts;
    book.lots.push_back({i, 1, pts, pts, now - 1, available, expires, i});
  }
  for (auto _ : state) {
    auto plan = loyalty::actors::plan_spend(book, now, total / 2);
    benchmark::DoNotOptimize(plan);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_plan_spend);

} // namespace

// Coalition money (actors/coalition.hpp): the postings and settle records of
// a redemption at one brand that draws on lots of three issuing brands.
void bm_post_spend(benchmark::State& state) {
  auto p = bench_program();
  p.brands.push_back({2, "globex", "Globex", {2, 100}});
  p.brands.push_back({3, "initech", "Initech", {1, 100}});
  for (auto& b : p.brands)
    b.cost_per_point = {1, 3};
  const std::vector<loyalty::ledger::lot_take> takes{
    {1, 1, 120, 0, 0}, {2, 2, 80, 0, 0}, {3, 3, 40, 0, 0}, {4, 1, 10, 0, 0}};
  std::string msg;
  for (auto _ : state) {
    loyalty::ledger::op op;
    auto c = loyalty::actors::post_spend(op, p, 42, takes, 0, loyalty::actors::spend_purpose::redeem, 2, msg);
    benchmark::DoNotOptimize(c);
    benchmark::DoNotOptimize(op.postings.data());
  }
}
BENCHMARK(bm_post_spend);
