// Ledger group commit: earns for random members among 1M, submitted in
// batches of N and committed (durably, or with nosync_unsafe for the
// comparison), measured end to end through submit() and barrier().
#include "earns.hpp"

#include "ledger/command.hpp"
#include "ledger/detail/account_cache.hpp"
#include "ledger/detail/txn_filter.hpp"
#include "ledger/ledger.hpp"

#include <benchmark/benchmark.h>

#include <filesystem>
#include <cstring>
#include <random>

namespace {

// A ledger in a fresh temporary directory (removed by the destructor);
// `led` is empty, and the benchmark skipped with the error, if it does not open.
struct bench_ledger {
  std::filesystem::path dir;
  loyalty::system_clock clock;
  std::unique_ptr<loyalty::ledger::ledger> led;
  bench_ledger(benchmark::State& state, loyalty::durability sync, std::uint32_t batch_entries_max = 0) {
    char tmpl[] = "/tmp/loyalty-bench-XXXXXX";
    dir = mkdtemp(tmpl);
    loyalty::ledger::options o;
    o.dir = dir.string();
    o.map_bytes = 8ull << 30;
    o.sync = sync;
    if (batch_entries_max != 0)
      o.batch_entries_max = batch_entries_max;
    o.commit_window_us = 0;
    o.clock = &clock;
    o.tier_of = [](std::int64_t) { return 0u; };
    std::string err;
    led = loyalty::ledger::ledger::open(o, err);
    if (!led)
      state.SkipWithError(err.c_str());
  }
  ~bench_ledger() {
    led.reset();
    std::filesystem::remove_all(dir);
  }
};

void bm_commit_earns(benchmark::State& state) {
  bench_ledger b(state, state.range(1) ? loyalty::durability::fsync : loyalty::durability::nosync_unsafe,
                 static_cast<std::uint32_t>(state.range(0)));
  if (!b.led)
    return;
  auto& led = b.led;
  auto target = std::make_shared<loyalty::bench::sink>();
  std::mt19937_64 rng(42);
  std::uint64_t counter = 0;
  for (auto _ : state)
    loyalty::bench::submit_earns(*led, state.range(0), rng, counter, target);
  state.SetItemsProcessed(state.iterations() * state.range(0));
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

namespace {

// An earn as the member actor builds it: two postings, a lot and two rule lines.
loyalty::ledger::op typical_earn(std::uint64_t n) {
  namespace L = loyalty::ledger;
  L::op o;
  o.kind = L::op_kind::post;
  o.entry = L::entry_kind::earn;
  o.member_id = 1 + n % 1'000'000;
  o.brand_id = 1;
  o.set_txn("pos-0001-" + std::to_string(n));
  o.points = 10;
  o.postings = {{L::account_id(L::account_kind::brand_issued, 1), 10, static_cast<std::uint32_t>(L::posting_side::debit), 0},
                {L::account_id(L::account_kind::member_points, o.member_id), 10,
                 static_cast<std::uint32_t>(L::posting_side::credit), 0}};
  o.details.resize(3);
  return o;
}

// The journal digest's step over one such entry's value (header, postings,
// txn id, details): what every append adds to the writer's work.
void bm_journal_digest_step(benchmark::State& state) {
  const auto o = typical_earn(7);
  std::string value(sizeof(loyalty::ledger::journal_header) + o.postings.size() * sizeof(loyalty::ledger::posting) +
                        o.txn_id_bytes + o.details.size() * sizeof(loyalty::ledger::entry_detail),
                    'x');
  std::uint64_t d = loyalty::ledger::journal_digest_basis;
  for (auto _ : state) {
    d = loyalty::ledger::journal_digest_step(d, value.data(), value.size());
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(value.size()));
}
BENCHMARK(bm_journal_digest_step);

// A leader's cost per batch: encoding it as a command (and a follower's:
// decoding it), for batches of N typical earns.
void bm_encode_command(benchmark::State& state) {
  std::vector<loyalty::ledger::op> batch;
  for (std::int64_t i = 0; i < state.range(0); ++i)
    batch.push_back(typical_earn(static_cast<std::uint64_t>(i)));
  for (auto _ : state) {
    auto c = loyalty::ledger::encode_command(batch, 1);
    benchmark::DoNotOptimize(c.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(bm_encode_command)->ArgName("ops")->Arg(100);

void bm_decode_command(benchmark::State& state) {
  std::vector<loyalty::ledger::op> batch;
  for (std::int64_t i = 0; i < state.range(0); ++i)
    batch.push_back(typical_earn(static_cast<std::uint64_t>(i)));
  const auto c = loyalty::ledger::encode_command(batch, 1);
  for (auto _ : state) {
    loyalty::ledger::command out;
    std::string err;
    benchmark::DoNotOptimize(loyalty::ledger::decode_command(c, out, err));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(bm_decode_command)->ArgName("ops")->Arg(100);

} // namespace

namespace {

// Activating a member: folding its book (ledger::fold_book) from the
// ledger, for members with N entries each (earns interleaved across 64
// members, as a journal of many members has them). stored=0: no stored
// book, the fold reads every entry back to the enrollment (what activation
// cost before issue 18); stored=1: the book stored as a passivation stores
// it (ledger::checkpoint_book), then 4 more earns each, so the fold reads
// one book and the entries since. own_lots=0: the earns top up one lot (a
// program without a return window, expiry rounded or none); 1: each earn
// keeps a lot of its own (the book grows with the history).
void bm_activate(benchmark::State& state) {
  namespace L = loyalty::ledger;
  const auto entries = static_cast<std::uint32_t>(state.range(0));
  const bool stored = state.range(1) != 0;
  const bool own_lots = state.range(2) != 0;
  constexpr std::uint64_t members = 64;
  bench_ledger b(state, loyalty::durability::nosync_unsafe);  // the setup's commits; the folds only read
  if (!b.led)
    return;
  auto& led = b.led;
  std::string err;
  auto target = std::make_shared<loyalty::bench::sink>();
  auto earn = [&](std::uint64_t m, std::uint32_t lot) {
    L::op op = typical_earn(m);
    op.member_id = m;
    op.set_txn("act-" + std::to_string(m) + "-" + std::to_string(lot));
    op.postings[1].account = L::account_id(L::account_kind::member_points, m);
    const auto kind = own_lots || lot == 1 ? L::detail_kind::lot_add : L::detail_kind::lot_top_up;
    op.details = {L::entry_detail{static_cast<std::uint16_t>(kind), 0, own_lots ? lot : 1, 1, 0, 10, 0, 0}};
    op.target = target;
    led->submit(std::move(op));
  };
  for (std::uint64_t m = 1; m <= members; ++m) {
    L::op en;
    en.kind = L::op_kind::enroll;
    en.entry = L::entry_kind::enroll;
    en.member_id = m;
    en.brand_id = 1;
    en.target = target;
    led->submit(std::move(en));
  }
  for (std::uint32_t i = 1; i <= entries; ++i)
    for (std::uint64_t m = 1; m <= members; ++m)
      earn(m, i);
  led->barrier();
  if (stored) {
    for (std::uint64_t m = 1; m <= members; ++m)
      (void)led->checkpoint_book(m, 1);
    for (std::uint32_t i = entries + 1; i <= entries + 4; ++i)
      for (std::uint64_t m = 1; m <= members; ++m)
        earn(m, i);
    led->barrier();
  }
  std::uint64_t m = 0, folded = 0;
  for (auto _ : state) {
    L::ledger::fold_info info;
    auto book = led->fold_book(1 + m++ % members, err, &info);
    if (!book) {
      state.SkipWithError(err.c_str());
      break;
    }
    folded += info.entries;
    benchmark::DoNotOptimize(book->lots.data());
  }
  state.counters["entries_read"] = benchmark::Counter(static_cast<double>(folded), benchmark::Counter::kAvgIterations);
}
BENCHMARK(bm_activate)
  ->ArgNames({"entries", "stored", "own_lots"})
  ->Args({10, 0, 0})
  ->Args({100, 0, 0})
  ->Args({1000, 0, 0})
  ->Args({10, 1, 0})
  ->Args({100, 1, 0})
  ->Args({1000, 1, 0})
  ->Args({1000, 1, 1})
  ->Unit(benchmark::kMicrosecond);

} // namespace
