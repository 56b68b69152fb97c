// Wire codec hot paths: decoding an earn request (server), encoding its
// response (server), encoding a request (client), decoding a 100-earn batch.
#include "io/wire/codec.hpp"

#include <benchmark/benchmark.h>

namespace {

loyalty::io::request sample_earn(std::uint64_t id) {
  loyalty::io::request r;
  r.op = loyalty::io::opcode::earn;
  r.id = id;
  r.txn = std::string(16, '\x01');
  r.member = 123456;
  r.brand = "acme";
  r.amount = 4999;
  r.currency = "EUR";
  r.occurred_at_us = 1'763'812'800'000'000ull;
  return r;
}

void bm_decode_earn(benchmark::State& state) {
  std::vector<char> frame;
  loyalty::io::encode_request(frame, sample_earn(7));
  for (auto _ : state) {
    auto r = loyalty::io::decode_request(frame.data() + 4, frame.size() - 4);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_decode_earn);

void bm_encode_earn_response(benchmark::State& state) {
  loyalty::io::response r;
  r.op = loyalty::io::opcode::earn;
  r.id = 7;
  r.seq = 123456789;
  r.member = 123456;
  r.points = 49;
  r.balance = 12345;
  r.lifetime = 67890;
  r.tier = "silver";
  std::vector<char> out;
  out.reserve(1 << 16);
  for (auto _ : state) {
    out.clear();
    loyalty::io::encode_response(out, r);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_encode_earn_response);

void bm_encode_earn_request(benchmark::State& state) {
  auto r = sample_earn(7);
  std::vector<char> out;
  out.reserve(1 << 16);
  for (auto _ : state) {
    out.clear();
    loyalty::io::encode_request(out, r);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_encode_earn_request);

void bm_decode_batch(benchmark::State& state) {
  loyalty::io::request b;
  b.op = loyalty::io::opcode::batch;
  b.id = 1;
  for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(state.range(0)); ++i)
    b.ops.push_back(sample_earn(i + 1));
  std::vector<char> frame;
  loyalty::io::encode_request(frame, b);
  for (auto _ : state) {
    auto r = loyalty::io::decode_request(frame.data() + 4, frame.size() - 4);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(bm_decode_batch)->ArgName("ops")->Arg(100);

} // namespace
