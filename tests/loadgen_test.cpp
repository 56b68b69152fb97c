#include "loadgen/histogram.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <vector>

using loyalty::loadgen::histogram;

TEST_CASE("small values are recorded exactly", "[loadgen]") {
  histogram h;
  for (std::uint64_t v = 0; v < 64; ++v)
    h.record(v);
  CHECK(h.count() == 64);
  CHECK(h.percentile(0.5) == 31);
  CHECK(h.percentile(1.0) == 63);
  CHECK(h.min() == 0);
}

TEST_CASE("every value maps to a bucket whose range contains it, within 1/64", "[loadgen]") {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100000; ++i) {
    std::uint64_t v = rng() >> (rng() % 40 + 16);
    auto idx = histogram::index_of(v);
    auto hi = histogram::upper_edge(idx);
    CHECK(hi >= v);
    CHECK(hi - v <= v / 64 + 1);
  }
}

TEST_CASE("percentiles of a uniform distribution are where they should be", "[loadgen]") {
  histogram h;
  for (std::uint64_t v = 1; v <= 100000; ++v)
    h.record(v);
  auto p50 = h.percentile(0.50);
  auto p99 = h.percentile(0.99);
  CHECK(p50 >= 50000);
  CHECK(p50 <= 50000 + 50000 / 64 + 1);
  CHECK(p99 >= 99000);
  CHECK(p99 <= 99000 + 99000 / 64 + 1);
  CHECK(h.percentile(1.0) == 100000);
  CHECK(h.max() == 100000);
}

TEST_CASE("merged histograms count like one", "[loadgen]") {
  histogram a, b, both;
  for (std::uint64_t v = 0; v < 5000; ++v) {
    (v % 2 ? a : b).record(v * 37);
    both.record(v * 37);
  }
  a.merge(b);
  CHECK(a.count() == both.count());
  for (double q : {0.1, 0.5, 0.9, 0.999})
    CHECK(a.percentile(q) == both.percentile(q));
}

TEST_CASE("an empty histogram reports zeros", "[loadgen]") {
  histogram h;
  CHECK(h.percentile(0.99) == 0);
  CHECK(h.max() == 0);
  CHECK(h.count() == 0);
}
