// The load generator: its histogram, Zipf sampler and workload files as plain
// code, and the binary against a real engine on loopback (a ramp, its HTML and
// JSON reports, flags over a workload file, a bad file). No test here asserts
// a duration or a rate that depends on the machine's speed.
#include "loadgen_run.hpp"
#include "temp_dir.hpp"
#include "io/client/client.hpp"
#include "io/server/engine.hpp"
#include "loadgen/histogram.hpp"
#include "loadgen/random.hpp"
#include "loadgen/workload.hpp"

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

using loyalty::loadgen::histogram;
using loyalty::test::is_number;
using loyalty::test::json;
using loyalty::test::parse_json_file;
using loyalty::test::run_loadgen;
using loyalty::test::slurp;

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

// -- the sampler -------------------------------------------------------------------

namespace {

using loyalty::loadgen::member_picker;
using loyalty::loadgen::rng;
using loyalty::loadgen::zipf_sampler;

// Draws from the Zipf sampler and counts ranks 1..top (the rest together).
std::vector<std::uint64_t> zipf_counts(std::uint64_t n, double s, std::uint64_t seed, std::uint64_t draws,
                                       std::size_t top) {
  zipf_sampler z(n, s);
  rng r(seed);
  std::vector<std::uint64_t> counts(top + 1, 0);
  std::uint64_t outside = 0;
  for (std::uint64_t i = 0; i < draws; ++i) {
    auto k = z(r);
    outside += k < 1 || k > n;
    ++counts[k >= 1 && k <= top ? k - 1 : top];
  }
  CHECK(outside == 0);
  return counts;
}

} // namespace

TEST_CASE("the most frequent of 10M Zipf members gets its theoretical share of 1M draws", "[loadgen][zipf]") {
  constexpr std::uint64_t n = 10'000'000, draws = 1'000'000;
  for (double s : {0.9, 1.0, 1.1}) {
    const std::uint64_t seed = 42 + static_cast<std::uint64_t>(s * 10);
    INFO("s " << s << ", seed " << seed);
    const double h = zipf_sampler::harmonic(n, s);
    auto counts = zipf_counts(n, s, seed, draws, 10);
    for (std::uint64_t k : {1, 2, 10}) {
      const double p = std::pow(static_cast<double>(k), -s) / h;
      const double share = static_cast<double>(counts[k - 1]) / draws;
      const double sigma = std::sqrt(p * (1 - p) / draws);
      INFO("rank " << k << ": share " << share << ", theory " << p);
      CHECK(std::fabs(share - p) < 5 * sigma);
    }
  }
}

TEST_CASE("the first 50 Zipf ranks and the rest fit the distribution (chi-square)", "[loadgen][zipf]") {
  constexpr std::uint64_t n = 10'000'000, draws = 1'000'000, seed = 7;
  constexpr std::size_t top = 50;
  constexpr double s = 1.1;
  INFO("seed " << seed);
  const double h = zipf_sampler::harmonic(n, s);
  auto counts = zipf_counts(n, s, seed, draws, top);
  double chi2 = 0, head = 0;
  for (std::size_t k = 1; k <= top; ++k) {
    const double p = std::pow(static_cast<double>(k), -s) / h;
    head += p;
    const double e = p * draws;
    chi2 += (static_cast<double>(counts[k - 1]) - e) * (static_cast<double>(counts[k - 1]) - e) / e;
  }
  const double e_rest = (1 - head) * draws;
  chi2 += (static_cast<double>(counts[top]) - e_rest) * (static_cast<double>(counts[top]) - e_rest) / e_rest;
  // 50 degrees of freedom: mean 50, standard deviation 10.
  INFO("chi-square " << chi2);
  CHECK(chi2 < 50 + 6 * 10);
}

TEST_CASE("every Zipf draw is a member in 1..N, for any N and exponent", "[loadgen][zipf]") {
  constexpr std::uint64_t seed = 11;
  INFO("seed " << seed);
  rng r(seed);
  for (std::uint64_t n : {std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{10}, std::uint64_t{10'000'000},
                          (std::uint64_t{1} << 56) - 1}) {
    for (double s : {0.01, 0.5, 1.0, 1.0000001, 2.0, 8.0}) {
      INFO("n " << n << ", s " << s);
      zipf_sampler z(n, s);
      std::uint64_t lo = UINT64_MAX, hi = 0;
      for (int i = 0; i < 20000; ++i) {
        auto k = z(r);
        lo = std::min(lo, k);
        hi = std::max(hi, k);
      }
      CHECK(lo >= 1);
      CHECK(hi <= n);
      if (n == 1)
        CHECK(hi == 1);
    }
  }
}

TEST_CASE("uniform members stay uniform (chi-square over 1000 members, 1M draws)", "[loadgen][zipf]") {
  constexpr std::uint64_t n = 1000, draws = 1'000'000, seed = 3;
  INFO("seed " << seed);
  member_picker pick(n, false, 1.0, false, seed);
  rng r(seed);
  std::vector<std::uint64_t> counts(n, 0);
  std::uint64_t outside = 0;
  for (std::uint64_t i = 0; i < draws; ++i) {
    auto m = pick(r);
    if (m < 1 || m > n)
      ++outside;
    else
      ++counts[m - 1];
  }
  CHECK(outside == 0);
  const double e = static_cast<double>(draws) / n;
  double chi2 = 0, worst = 0;
  for (auto c : counts) {
    chi2 += (static_cast<double>(c) - e) * (static_cast<double>(c) - e) / e;
    worst = std::max(worst, std::fabs(static_cast<double>(c) - e));
  }
  // 999 degrees of freedom: mean 999, standard deviation 44.7.
  INFO("chi-square " << chi2 << ", largest deviation " << worst);
  CHECK(chi2 < 999 + 6 * 44.7);
  CHECK(worst < 6 * std::sqrt(e));
}

TEST_CASE("the same seed gives the same sequence of members, another seed another", "[loadgen][zipf]") {
  for (bool zipf : {false, true}) {
    INFO("zipf " << zipf);
    member_picker a(1'000'000, zipf, 1.1, true, 99), b(1'000'000, zipf, 1.1, true, 99), c(1'000'000, zipf, 1.1, true, 100);
    rng ra(99), rb(99), rc(100);
    int same_as_other_seed = 0;
    for (int i = 0; i < 10000; ++i) {
      auto x = a(ra);
      REQUIRE(x == b(rb));
      same_as_other_seed += x == c(rc);
    }
    CHECK(same_as_other_seed < 10000);
  }
}

TEST_CASE("scattered ranks are a permutation of the members", "[loadgen][zipf]") {
  for (std::uint64_t n : {1u, 2u, 97u, 1000u, 4096u}) {
    INFO("n " << n);
    member_picker p(n, true, 1.1, true, 5);
    std::vector<int> seen(n + 1, 0);
    for (std::uint64_t rank = 1; rank <= n; ++rank) {
      auto m = p.member_of_rank(rank);
      REQUIRE(m >= 1);
      REQUIRE(m <= n);
      ++seen[m];
    }
    CHECK(std::count(seen.begin() + 1, seen.end(), 1) == static_cast<long>(n));
  }
}

TEST_CASE("bounded draws are uniform and within their bounds", "[loadgen][zipf]") {
  constexpr std::uint64_t seed = 17;
  INFO("seed " << seed);
  rng r(seed);
  std::array<std::uint64_t, 7> counts{};
  for (int i = 0; i < 700000; ++i)
    ++counts[r.below(7)];
  for (auto c : counts)
    CHECK(std::fabs(static_cast<double>(c) - 100000) < 6 * std::sqrt(100000.0));
  for (int i = 0; i < 10000; ++i) {
    auto v = r.between(-3, 3);
    REQUIRE(v >= -3);
    REQUIRE(v <= 3);
    auto u = r.unit();
    REQUIRE(u >= 0);
    REQUIRE(u < 1);
  }
  CHECK(r.between(5, 5) == 5);
}

// -- workload files ------------------------------------------------------------------

namespace {

using namespace loyalty::loadgen;

std::optional<workload> parse(const std::string& text, std::vector<std::string>& errors) {
  return parse_workload(text, "w.toml", errors);
}

// The one error of `text`, which must name `line` and contain `what`.
void expect_error(const std::string& text, int line, const std::string& what) {
  std::vector<std::string> errors;
  auto w = parse(text, errors);
  std::string all;
  for (const auto& e : errors)
    all += e + "\n";
  INFO(text);
  INFO(all);
  CHECK_FALSE(w);
  REQUIRE(!errors.empty());
  CHECK(errors[0].rfind("w.toml:" + std::to_string(line) + ": ", 0) == 0);
  CHECK(errors[0].find(what) != std::string::npos);
}

const char* full_workload = R"(# every key, none at its default
[workload]
name = "everything"
description = "all keys"
mode = "ramp"
seed = 1234
duration_s = 42.5
soak_interval_s = 5
soak_warmup_s = 7.5
soak_rss_growth_max_pct = 2.5

[members]
count = 5000
distribution = "zipf"
s = 1.25
scatter = true
brand = "globex"
enroll = false
enroll_batch = 250

[mix]
earn = 40
redeem = 5
event = 5
hold = 5
refund = 5
reward = 5
transfer = 5
balance = 10
history = 5
partner_earn = 10
partner_burn = 5

[basket]
items = [2, 7]
categories = ["electronics", "gaming"]
skus = ["A-1", "B-2", "C-3"]
item_amount = [10, 20]
quantity = 2
amount = [300, 400]
currency = "USD"
channel = "web"
store = "berlin-1"

[operations]
event = "birthday"
reward = "voucher-10"
partner = "skyair"
points = [5, 6]
transfer_points = 3
partner_points = [700, 800]

[connections]
count = 3
depth = 17
batch = 20

[schedule]
ramp = { from_per_s = 100, to_per_s = 450, step_per_s = 100, step_duration_s = 2.5 }

[objective]
percentile = 99.9
latency_ms_max = 2.5
error_rate_max = 0.02
count_refusals = true
rate_tolerance = 0.1
failures_max = 3
drain_s = 1.5
)";

} // namespace

TEST_CASE("a workload file sets every key", "[loadgen][workload]") {
  std::vector<std::string> errors;
  auto w = parse(full_workload, errors);
  INFO((errors.empty() ? "" : errors[0]));
  REQUIRE(w);
  CHECK(w->name == "everything");
  CHECK(w->description == "all keys");
  CHECK(w->source == "w.toml");
  CHECK(w->mode == run_mode::ramp);
  CHECK(w->seed == 1234);
  CHECK(w->duration_s == 42.5);
  CHECK(w->soak_interval_s == 5);
  CHECK(w->soak_warmup_s == 7.5);
  CHECK(w->soak_warmup() == 7.5);
  CHECK(w->soak_rss_growth_max_pct == 2.5);
  CHECK(w->members == 5000);
  CHECK(w->distribution == member_distribution::zipf);
  CHECK(w->zipf_s == 1.25);
  CHECK(w->scatter);
  CHECK(w->brand == "globex");
  CHECK_FALSE(w->enroll);
  CHECK(w->enroll_batch == 250);
  CHECK(mix_text(w->mix) ==
        "earn=40,redeem=5,event=5,hold=5,refund=5,reward=5,transfer=5,balance=10,history=5,partner_earn=10,"
        "partner_burn=5");
  CHECK(w->items == int_range{2, 7});
  CHECK(w->categories == std::vector<std::string>{"electronics", "gaming"});
  CHECK(w->skus == std::vector<std::string>{"A-1", "B-2", "C-3"});
  CHECK(w->item_amount == int_range{10, 20});
  CHECK(w->quantity == int_range{2, 2});
  CHECK(w->amount == int_range{300, 400});
  CHECK(w->currency == "USD");
  CHECK(w->channel == "web");
  CHECK(w->store == "berlin-1");
  CHECK(w->event == "birthday");
  CHECK(w->reward == "voucher-10");
  CHECK(w->partner == "skyair");
  CHECK(w->points == int_range{5, 6});
  CHECK(w->transfer_points == int_range{3, 3});
  CHECK(w->partner_points == int_range{700, 800});
  CHECK(w->connections == 3);
  CHECK(w->depth == 17);
  CHECK(w->batch == 20);
  CHECK(w->sched.k == schedule::kind::ramp);
  auto steps = w->sched.expand(w->duration_s);
  REQUIRE(steps.size() == 4);  // 100, 200, 300, 400: 500 is past to_per_s
  CHECK(steps[0] == step{100, 2.5});
  CHECK(steps[3] == step{400, 2.5});
  CHECK(w->has_objective);
  CHECK(w->obj.percentile == 99.9);
  CHECK(w->obj.latency_ms_max == 2.5);
  CHECK(w->obj.error_rate_max == 0.02);
  CHECK(w->obj.count_refusals);
  CHECK(w->obj.rate_tolerance == 0.1);
  CHECK(w->obj.failures_max == 3);
  CHECK(w->obj.drain_s == 1.5);
  CHECK(check_workload(*w).empty());
}

TEST_CASE("an empty workload file keeps every default", "[loadgen][workload]") {
  std::vector<std::string> errors;
  auto w = parse("# nothing\n", errors);
  REQUIRE(w);
  const workload d;
  CHECK(w->mode == run_mode::closed);
  CHECK(w->seed == 0);
  CHECK(w->duration_s == d.duration_s);
  CHECK(w->soak_interval_s == 0);  // soak off
  CHECK(w->soak_warmup() == std::round(d.duration_s / 4));
  CHECK(w->soak_rss_growth_max_pct == 10);
  CHECK(w->members == 1'000'000);
  CHECK(w->distribution == member_distribution::uniform);
  CHECK_FALSE(w->scatter);
  CHECK(w->brand == "acme");
  CHECK(w->enroll);
  CHECK(w->enroll_batch == 1000);
  CHECK(mix_text(w->mix) == "earn=90,redeem=10");
  CHECK(w->items == int_range{0, 0});
  CHECK(w->categories == d.categories);
  CHECK(w->skus.empty());
  CHECK(w->sku_count == 5000);
  CHECK(w->currency == "EUR");
  CHECK(w->channel.empty());
  CHECK(w->partner == "skyair");
  CHECK(w->connections == 4);
  CHECK(w->depth == 256);
  CHECK(w->batch == 1);  // each operation a frame of its own
  CHECK(w->sched.k == schedule::kind::none);
  CHECK_FALSE(w->has_objective);
  CHECK(w->obj.latency_text() == "p99<=10ms");
  CHECK(w->obj.error_rate_max == 0.01);
  CHECK(w->obj.rate_tolerance == 0.05);
  CHECK(w->obj.failures_max == 1);
}

TEST_CASE("a workload with a schedule and no mode runs open loop; steps and one rate expand", "[loadgen][workload]") {
  std::vector<std::string> errors;
  auto w = parse("[workload]\nduration_s = 3\n[schedule]\nrate_per_s = 250\n", errors);
  REQUIRE(w);
  CHECK(w->mode == run_mode::open);
  CHECK(w->sched.expand(w->duration_s) == std::vector<step>{{250, 3}});
  w = parse("[schedule]\nsteps = [ { rate_per_s = 10, duration_s = 1 }, { rate_per_s = 20.5, duration_s = 2 } ]\n",
            errors);
  REQUIRE(w);
  CHECK(w->sched.expand(w->duration_s) == std::vector<step>{{10, 1}, {20.5, 2}});
  w = parse("[schedule]\nramp = { from_per_s = 5, to_per_s = 5, step_per_s = 1, step_duration_s = 1 }\n", errors);
  REQUIRE(w);
  CHECK(w->sched.expand(w->duration_s) == std::vector<step>{{5, 1}});
}

TEST_CASE("each mistake in a workload file is reported with its line", "[loadgen][workload]") {
  expect_error("[workload]\nname = \"x\"\n[nonsense]\na = 1\n", 3, "unknown key 'nonsense'");
  expect_error("[members]\ncount = 10\ncolour = \"red\"\n", 3, "unknown key 'colour' in [members]");
  expect_error("\n[members]\ncount = \"many\"\n", 3, "'count' in [members] must be an integer");
  expect_error("[members]\ncount = 0\n", 2, "between 1 and");
  expect_error("[connections]\n\ncount = 5000\n", 3, "'count' in [connections] must be between 1 and 1024");
  expect_error("[connections]\nbatch = 0\n", 2, "'batch' in [connections] must be between 1 and 1000");
  expect_error("[connections]\nbatch = 1001\n", 2, "'batch' in [connections] must be between 1 and 1000");
  expect_error("[members]\ndistribution = \"normal\"\n", 2, "must be one of \"uniform\", \"zipf\"");
  expect_error("[members]\ndistribution = \"zipf\"\n", 2, "needs its exponent 's'");
  expect_error("[members]\ns = 1.1\n", 2, "needs distribution = \"zipf\"");
  expect_error("[members]\ndistribution = \"zipf\"\ns = -1\n", 3, "'s' in [members] must be above 0");
  expect_error("[workload]\nname = \"x\"\n[mix]\nearn = 90\nredeem = 5\n", 3, "add up to 95, not 100");
  expect_error("[mix]\nearn = 90\nteleport = 10\n", 3, "unknown operation 'teleport' in [mix]");
  expect_error("[mix]\nearn = 90.5\nredeem = 9.5\n", 2, "must be a percentage");
  expect_error("[operations]\npartner = \"\"\n", 2, "'partner' in [operations] must be 1 to 64 bytes");
  expect_error("[basket]\nitems = [1, 300]\n", 2, "'items' in [basket] must be an integer or [min, max]");
  expect_error("[basket]\nitems = [5, 2]\n", 2, "min <= max");
  expect_error("[basket]\ncategories = []\n", 2, "not empty");
  expect_error("[basket]\nskus = [\"a\"]\nsku_count = 3\n", 3, "both 'skus' and 'sku_count'");
  expect_error("[workload]\nmode = \"ramp\"\n", 2, "needs a [schedule]");
  expect_error("[workload]\nmode = \"sideways\"\n", 2, "must be one of \"closed\", \"open\", \"ramp\"");
  expect_error("[workload]\nseed = -1\n", 2, "'seed' in [workload] must be between 0");
  expect_error("[workload]\nduration_s = 0\n", 2, "'duration_s' in [workload] must be above 0");
  expect_error("[schedule]\nrate_per_s = 100\nramp = { from_per_s = 1, to_per_s = 2, step_per_s = 1, step_duration_s = 1 }\n",
               1, "exactly one of rate_per_s, steps or ramp");
  expect_error("[schedule]\nramp = { from_per_s = 500, to_per_s = 100, step_per_s = 100, step_duration_s = 1 }\n", 2,
               "the ramp must go up");
  expect_error("[schedule]\nramp = { from_per_s = 1, to_per_s = 2, step_duration_s = 1 }\n", 2,
               "missing key 'step_per_s'");
  expect_error("[schedule]\nsteps = [\n  { rate_per_s = 10, duration_s = 1 },\n  { rate_per_s = 20 },\n]\n", 4,
               "missing key 'duration_s' in a step");
  expect_error("[schedule]\nsteps = [\n  { rate_per_s = 10, duration_s = 1, colour = 2 },\n]\n", 3,
               "unknown key 'colour' in a step");
  expect_error("[schedule]\nsteps = [\n  { rate_per_s = 0, duration_s = 1 },\n]\n", 3, "'rate_per_s' in a step");
  expect_error("[objective]\npercentile = 100\n", 2, "'percentile' in [objective]");
  expect_error("[objective]\nerror_rate_max = 1.5\n", 2, "'error_rate_max' in [objective]");
  expect_error("[objective]\nfailures_max = 0\n", 2, "'failures_max' in [objective]");
  expect_error("[objective]\ncount_refusals = \"yes\"\n", 2, "must be true or false");
  expect_error("[members]\ncount = 10\n\n[members]\ncount = 20\n", 4, "syntax error");
  expect_error("[workload]\nname = \"unterminated\n", 2, "syntax error");
  expect_error("workload = 3\n", 1, "'workload' must be a table");
}

TEST_CASE("every mistake of a workload file is reported, in line order", "[loadgen][workload]") {
  std::vector<std::string> errors;
  auto w = parse("[members]\ncount = 0\ncolour = 1\n[connections]\ndepth = 0\n[mix]\nearn = 50\n", errors);
  CHECK_FALSE(w);
  REQUIRE(errors.size() == 4);
  CHECK(errors[0].rfind("w.toml:2: ", 0) == 0);
  CHECK(errors[1].rfind("w.toml:3: ", 0) == 0);
  CHECK(errors[2].rfind("w.toml:5: ", 0) == 0);
  CHECK(errors[3].rfind("w.toml:6: ", 0) == 0);
}

TEST_CASE("the example workloads parse", "[loadgen][workload]") {
  for (const char* f : {"workload-black-friday.toml", "workload-steady.toml"}) {
    std::vector<std::string> errors;
    auto w = load_workload(std::string(LOYALTY_SOURCE_DIR "/config/examples/") + f, errors);
    INFO(f << (errors.empty() ? "" : ": " + errors[0]));
    REQUIRE(w);
    CHECK(check_workload(*w).empty());
    CHECK(w->mode != run_mode::closed);
  }
}

TEST_CASE("a workload printed as TOML reads back the same", "[loadgen][workload]") {
  std::vector<std::string> errors;
  auto w = parse(full_workload, errors);
  REQUIRE(w);
  auto again = parse(to_toml(*w), errors);
  INFO(to_toml(*w));
  INFO((errors.empty() ? "" : errors[0]));
  REQUIRE(again);
  CHECK(to_toml(*again) == to_toml(*w));
}

TEST_CASE("flag syntaxes: mix, range, objective, ramp and steps", "[loadgen][workload]") {
  std::string err;
  mix_weights m{};
  CHECK(parse_mix("earn=60, partner_burn=40", m, err));
  CHECK(mix_text(m) == "earn=60,partner_burn=40");
  CHECK_FALSE(parse_mix("earn=60,redeem=30", m, err));
  CHECK(err.find("add up to 90") != std::string::npos);
  CHECK_FALSE(parse_mix("earn=60,fly=40", m, err));
  CHECK(err.find("unknown operation 'fly'") != std::string::npos);
  CHECK_FALSE(parse_mix("earn", m, err));

  int_range r;
  CHECK(parse_range("3", r, err));
  CHECK(r == int_range{3, 3});
  CHECK(parse_range("1-8", r, err));
  CHECK(r == int_range{1, 8});
  CHECK_FALSE(parse_range("8-1", r, err));
  CHECK_FALSE(parse_range("x", r, err));

  objective o;
  CHECK(parse_objective("p99.9<=2.5ms", o, err));
  CHECK(o.percentile == 99.9);
  CHECK(o.latency_ms_max == 2.5);
  CHECK(parse_objective("p50<=800us", o, err));
  CHECK(o.latency_ms_max == Approx(0.8));
  CHECK(parse_objective("p99<=1s", o, err));
  CHECK(o.latency_ms_max == 1000);
  CHECK_FALSE(parse_objective("p100<=1ms", o, err));
  CHECK_FALSE(parse_objective("p99<=10", o, err));
  CHECK_FALSE(parse_objective("99<=10ms", o, err));

  ramp_spec rs;
  CHECK(parse_ramp("1000:20000:1000:10", rs, err));
  CHECK(rs.from_per_s == 1000);
  CHECK(rs.to_per_s == 20000);
  CHECK(rs.step_per_s == 1000);
  CHECK(rs.step_duration_s == 10);
  CHECK_FALSE(parse_ramp("1000:20000:1000", rs, err));
  CHECK_FALSE(parse_ramp("2000:1000:100:1", rs, err));

  std::vector<step> steps;
  CHECK(parse_steps("2000:30,5000:60", steps, err));
  CHECK(steps == std::vector<step>{{2000, 30}, {5000, 60}});
  CHECK_FALSE(parse_steps("2000:30,5000", steps, err));
  CHECK_FALSE(parse_steps("0:30", steps, err));
}

TEST_CASE("a workload whose flags leave it inconsistent is refused", "[loadgen][workload]") {
  workload w;
  w.mode = run_mode::ramp;
  CHECK_FALSE(check_workload(w).empty());  // no schedule
  w.sched.k = schedule::kind::rate;
  w.sched.rate_per_s = 10;
  CHECK(check_workload(w).empty());
  w.mix[static_cast<std::size_t>(op_kind::partner_earn)] = 10;
  w.mix[static_cast<std::size_t>(op_kind::earn)] = 80;
  w.partner.clear();
  CHECK_FALSE(check_workload(w).empty());  // partner operations without a partner
}

// -- the binary against a real engine ------------------------------------------------

namespace {

struct engine_dir : loyalty::test::temp_dir {
  engine_dir() : loyalty::test::temp_dir("loadgen") {}
};

// A real engine (ledger in `dir`, actors, server on an ephemeral loopback
// port) with the example retail program: brands acme and globex, partner
// skyair. `inflight_per_connection_max` 0 keeps the engine's default.
std::unique_ptr<loyalty::io::engine> start_retail_engine(const std::filesystem::path& dir,
                                                         std::uint32_t inflight_per_connection_max = 0) {
  loyalty::io::engine_options o;
  if (inflight_per_connection_max > 0)
    o.settings.inflight_per_connection_max = inflight_per_connection_max;
  o.settings.listen_host = "127.0.0.1";
  o.settings.listen_port = 0;
  o.settings.data_dir = (dir / "data").string();
  o.settings.map_bytes = 1ull << 30;
  o.settings.commit_window_us = 100;
  o.settings.actor_threads = 2;
  std::vector<loyalty::config_error> errors;
  auto prog = loyalty::load_program(LOYALTY_SOURCE_DIR "/config/examples/retail.toml", errors);
  REQUIRE(prog);
  o.prog = std::move(*prog);
  std::string err;
  auto e = loyalty::io::engine::start(std::move(o), err);
  INFO(err);
  REQUIRE(e);
  return e;
}

// An HTML page that needs nothing but itself: no address, no script, no
// external style or image.
void check_self_contained(const std::string& html) {
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("<svg") != std::string::npos);
  CHECK(html.find("http://") == std::string::npos);
  CHECK(html.find("https://") == std::string::npos);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("src=") == std::string::npos);
  CHECK(html.find("url(") == std::string::npos);
  CHECK(html.find("@import") == std::string::npos);
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find("</html>") != std::string::npos);
}

} // namespace

TEST_CASE("a short ramp against a real engine reports its highest passing rate, an HTML page and a JSON summary",
          "[loadgen][engine]") {
  engine_dir tmp;
  auto e = start_retail_engine(tmp.path);
  const auto file = tmp.path / "ramp.toml";
  {
    std::ofstream f(file);
    // Low rates, short steps and an objective any machine meets: the test
    // checks what is reported, never how fast this machine is.
    f << "[workload]\nname = \"loopback ramp\"\nmode = \"ramp\"\nseed = 5\n"
         "[members]\ncount = 300\ndistribution = \"zipf\"\ns = 1.1\nscatter = true\n"
         "[mix]\nearn = 40\nredeem = 10\nhold = 10\nrefund = 5\nbalance = 15\npartner_earn = 10\npartner_burn = 10\n"
         "[basket]\nitems = [1, 3]\ncategories = [\"electronics\", \"coffee\"]\nchannel = \"app\"\n"
         "[connections]\ncount = 2\ndepth = 64\n"
         "[schedule]\nramp = { from_per_s = 40, to_per_s = 120, step_per_s = 40, step_duration_s = 1 }\n"
         "[objective]\npercentile = 99\nlatency_ms_max = 5000\nerror_rate_max = 0.5\nrate_tolerance = 0.5\n"
         "failures_max = 1\ndrain_s = 5\n";
  }
  const auto json_path = tmp.path / "ramp.json", html_path = tmp.path / "ramp.html";
  std::string out;
  const int rc = run_loadgen("--port " + std::to_string(e->port()) + " --workload " + file.string() + " --json " +
                               json_path.string() + " --report " + html_path.string(),
                             tmp.path, out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("loyalty-loadgen seed 5") != std::string::npos);
  CHECK(out.find("highest passing rate") != std::string::npos);

  const auto html = slurp(html_path);
  check_self_contained(html);
  CHECK(html.find("Throughput over time") != std::string::npos);
  CHECK(html.find("Latency over time") != std::string::npos);
  CHECK(html.find("Latency distribution") != std::string::npos);
  CHECK(html.find("Errors by code") != std::string::npos);
  CHECK(html.find("Ramp steps") != std::string::npos);
  CHECK(html.find("<table class=\"steps\">") != std::string::npos);
  CHECK(html.find("Highest passing rate") != std::string::npos);
  CHECK(html.find("loopback ramp") != std::string::npos);

  const auto j = parse_json_file(json_path);
  REQUIRE(j["mode"]);
  CHECK(j["mode"]->str == "ramp");
  REQUIRE(j["series"]);
  REQUIRE(j["series"]->k == json::kind::array);
  CHECK(j["series"]->items.size() >= 2);
  for (const auto& p : j["series"]->items) {
    CHECK(is_number(p["t_s"]));
    CHECK(is_number(p["offered_per_s"]));
    CHECK(is_number(p["achieved_per_s"]));
    CHECK(is_number(p["p50_us"]));
    CHECK(is_number(p["p99_us"]));
    CHECK(is_number(p["p999_us"]));
  }
  REQUIRE(j["steps"]);
  const auto& steps = j["steps"]->items;
  REQUIRE(!steps.empty());
  CHECK(steps.size() <= 3);
  REQUIRE(is_number(j["highest_passing_rate_per_s"]));
  const double best = j["highest_passing_rate_per_s"]->num;
  bool found = false;
  for (const auto& s : steps) {
    REQUIRE(s["passed"]);
    CHECK(s["passed"]->k == json::kind::boolean);
    CHECK(is_number(s["offered_per_s"]));
    CHECK(is_number(s["achieved_per_s"]));
    found |= s["passed"]->b && s["rate_per_s"]->num == best;
  }
  CHECK(found);

  auto v = e->ledger().verify();
  std::string why;
  for (const auto& p : v.problems)
    why += p + "\n";
  INFO(why);
  CHECK(v.ok);
}

TEST_CASE("open-loop steps all run, judged against an objective, with offered and achieved side by side",
          "[loadgen][engine]") {
  engine_dir tmp;
  auto e = start_retail_engine(tmp.path);
  const auto json_path = tmp.path / "open.json", html_path = tmp.path / "open.html";
  std::string out;
  const int rc = run_loadgen("--port " + std::to_string(e->port()) +
                               " --members 100 --connections 2 --depth 32 --steps 30:1,60:1 --objective 'p99<=1ms'"
                               " --seed 9 --json " + json_path.string() + " --report " + html_path.string(),
                             tmp.path, out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("offered") != std::string::npos);
  CHECK(out.find("achieved") != std::string::npos);
  check_self_contained(slurp(html_path));
  const auto j = parse_json_file(json_path);
  CHECK(j["mode"]->str == "open");
  // Open mode never stops early, whether a step passes or not.
  REQUIRE(j["steps"]);
  CHECK(j["steps"]->items.size() == 2);
  CHECK(j["ramp_stopped"]->b == false);
  CHECK(is_number(j["offered_per_second"]));
  CHECK(is_number(j["achieved_per_second"]));
  CHECK(j["offered"]->num == 90);  // 30 + 60 requests on the schedule
}

TEST_CASE("a closed-loop run from flags alone writes a report without steps", "[loadgen][engine]") {
  engine_dir tmp;
  auto e = start_retail_engine(tmp.path);
  const auto html_path = tmp.path / "closed.html";
  std::string out;
  const int rc = run_loadgen("--port " + std::to_string(e->port()) +
                               " --members 50 --connections 1 --depth 4 --duration 1 --seed 2 --report " +
                               html_path.string(),
                             tmp.path, out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("enroll 50 / 50 members") != std::string::npos);
  const auto html = slurp(html_path);
  check_self_contained(html);
  CHECK(html.find("Ramp steps") == std::string::npos);
}

namespace {

// Runs the load generator against `e` with `args` and a JSON summary; it
// must exit 0. Its output lands in `out`; returns the summary.
json batch_run(const loyalty::io::engine& e, const std::string& args, const engine_dir& tmp, std::string& out) {
  const auto json_path = tmp.path / "batch.json";
  const int rc = run_loadgen("--port " + std::to_string(e.port()) + " " + args + " --json " + json_path.string(),
                             tmp.path, out);
  INFO(out);
  REQUIRE(rc == 0);
  return parse_json_file(json_path);
}

} // namespace

TEST_CASE("a closed loop in batch frames of 50 counts each operation's answer, and each earn it counts ok is in the "
          "ledger once",
          "[loadgen][engine][batch]") {
  engine_dir tmp;
  auto e = start_retail_engine(tmp.path);
  const auto html_path = tmp.path / "batch.html";
  std::string out;
  const auto j = batch_run(*e,
                           "--members 200 --connections 2 --depth 3 --batch 50 --mix earn=100 --duration 2 --seed 11"
                           " --report " + html_path.string(),
                           tmp, out);
  INFO(out);
  CHECK(out.find("2 connections x depth 3 frames of 50 operations") != std::string::npos);
  CHECK(out.find("batch frames   50 operations a frame") != std::string::npos);

  REQUIRE(is_number(j["batch"]));
  CHECK(j["batch"]->num == 50);
  REQUIRE(is_number(j["frames_sent"]));
  REQUIRE(is_number(j["frames_answered"]));
  REQUIRE(is_number(j["frames_per_second"]));
  const double frames = j["frames_sent"]->num, sent = j["sent"]->num, ok = j["ok"]->num;
  CHECK(frames >= 2 * 3);  // every connection's first depth frames
  CHECK(sent == frames * 50);  // closed loop: every frame full
  CHECK(j["frames_answered"]->num == frames);
  // Every operation answered on its own, and every one an earn that went through.
  CHECK(ok == sent);
  CHECK(j["errors"]->num == 0);
  CHECK(j["unanswered"]->num == 0);
  REQUIRE(j["by_op"]);
  REQUIRE(j["by_op"]->operator[]("earn"));
  CHECK(j["by_op"]->operator[]("earn")->operator[]("ok")->num == ok);
  CHECK(j["by_op"]->fields.size() == 1);

  // The engine agrees: one txn id for each earn counted ok (enrollments carry none).
  auto v = e->ledger().verify();
  CHECK(v.ok);
  CHECK(static_cast<double>(v.txn_ids) == ok);

  const auto html = slurp(html_path);
  check_self_contained(html);
  CHECK(html.find("frames of 50 answered") != std::string::npos);
  CHECK(html.find("50 (batch frames; rates, counts and latencies are per operation)") != std::string::npos);
}

TEST_CASE("open loop in batch frames keeps its rate in operations: a step's last frame holds the rest",
          "[loadgen][engine][batch]") {
  engine_dir tmp;
  auto e = start_retail_engine(tmp.path);
  std::string out;
  // 100 operations a second for 2 s in frames of 30: frames at 0, 0.3, ... 1.8 s,
  // six of 30 and a last one of 20. Holds are followed by captures and
  // releases in later frames; reads ride along.
  const auto j = batch_run(*e,
                           "--members 50 --connections 2 --depth 4 --batch 30 --rate 100 --duration 2"
                           " --mix earn=50,hold=20,redeem=10,balance=10,history=10 --seed 12",
                           tmp, out);
  INFO(out);
  CHECK(out.find("at most 4 frames of 30 operations in flight each") != std::string::npos);
  CHECK(j["batch"]->num == 30);
  CHECK(j["offered"]->num == 200);
  CHECK(j["sent"]->num == 200);
  CHECK(j["frames_sent"]->num == 7);
  CHECK(j["frames_answered"]->num == 7);
  CHECK(j["ok"]->num + j["errors"]->num == 200);
  CHECK(j["unanswered"]->num == 0);
  CHECK(j["errors"]->num == j["refused"]->num);  // only refusals (points a redeem lacks), no failure
  REQUIRE(j["by_op"]);
  double by_op = 0;
  for (const auto& [name, op] : j["by_op"]->fields)
    by_op += op["ok"]->num + op["errors"]->num;
  CHECK(by_op == 200);
  for (const char* op : {"earn", "hold", "balance", "history"})
    CHECK(j["by_op"]->operator[](op) != nullptr);
}

TEST_CASE("a batch frame the engine refuses whole counts the refusal once for each of its operations",
          "[loadgen][engine][batch]") {
  engine_dir tmp;
  // 100 in flight a connection at most: a frame of 150 always passes it.
  auto e = start_retail_engine(tmp.path, 100);
  std::string out;
  const auto j = batch_run(
    *e, "--skip-enroll --members 10 --connections 1 --depth 1 --batch 150 --duration 0.3 --seed 13", tmp, out);
  INFO(out);
  const double frames = j["frames_answered"]->num;
  CHECK(frames >= 1);
  CHECK(j["frames_sent"]->num == frames);
  CHECK(j["sent"]->num == frames * 150);
  CHECK(j["ok"]->num == 0);
  CHECK(j["errors"]->num == frames * 150);
  REQUIRE(j["errors_by_code"]);
  REQUIRE(j["errors_by_code"]->operator[]("overloaded"));
  CHECK(j["errors_by_code"]->operator[]("overloaded")->num == frames * 150);
  CHECK(e->ledger().verify().txn_ids == 0);
}

TEST_CASE("the load generator refuses a batch of 0 or of more than 1000 operations, and prints the one it takes",
          "[loadgen][batch]") {
  engine_dir tmp;
  std::string out;
  // Port 1: it must not get as far as connecting.
  CHECK(run_loadgen("--port 1 --batch 0", tmp.path, out) == 2);
  CHECK(out.find("--batch: Value 0 not in range 1 to 1000") != std::string::npos);
  CHECK(run_loadgen("--port 1 --batch 1001", tmp.path, out) == 2);
  CHECK(out.find("--batch: Value 1001 not in range 1 to 1000") != std::string::npos);
  REQUIRE(run_loadgen("--batch 1000 --print-workload", tmp.path, out) == 0);
  std::vector<std::string> errors;
  auto w = parse_workload(out, "printed", errors);
  REQUIRE(w);
  CHECK(w->batch == 1000);
}

TEST_CASE("a short soak run prints soak lines with the engine's RSS, keeps the points in the JSON and gives a verdict",
          "[loadgen][engine][soak]") {
  engine_dir tmp;
  auto e = start_retail_engine(tmp.path);  // no keys: `stats` is allowed
  const auto json_path = tmp.path / "soak.json";
  std::string out;
  // 10 s in 2 s intervals, 4 s of warm-up: 4 points after it. The engine runs
  // in this process, so its RSS is the test's; the verdict's value is the
  // machine's business (exit 0 or 3), only its presence and agreement with
  // the exit code are checked.
  const int rc = run_loadgen("--port " + std::to_string(e->port()) +
                               " --members 3000 --connections 2 --depth 4 --duration 10 --seed 7"
                               " --soak-interval 2 --soak-warmup 4 --json " + json_path.string(),
                             tmp.path, out);
  INFO(out);
  REQUIRE((rc == 0 || rc == 3));

  const std::regex line(R"(soak +[0-9.]+s +answered +[0-9]+ .* p99 +[0-9.]+ +p99\.9 +[0-9.]+ +max +[0-9.]+ ms +rss +([0-9.]+) MiB)");
  int lines = 0;
  for (std::sregex_iterator it(out.begin(), out.end(), line), end; it != end; ++it) {
    ++lines;
    CHECK(std::stod((*it)[1].str()) > 0);
  }
  CHECK(lines >= 4);
  CHECK(out.find("rss n/a") == std::string::npos);

  std::smatch verdict;
  REQUIRE(std::regex_search(out, verdict, std::regex("soak verdict +(flat|GROWING|not judged)")));
  CHECK(verdict[1].str() == (rc == 3 ? "GROWING" : "flat"));

  const auto j = parse_json_file(json_path);
  REQUIRE(j["soak"]);
  REQUIRE(j["soak"]->k == json::kind::array);
  CHECK(j["soak"]->items.size() >= 4);
  for (const auto& p : j["soak"]->items) {
    CHECK(is_number(p["t_s"]));
    CHECK(is_number(p["answered"]));
    CHECK(is_number(p["ok"]));
    CHECK(is_number(p["errors"]));
    CHECK(is_number(p["p50_us"]));
    CHECK(is_number(p["p99_us"]));
    CHECK(is_number(p["p999_us"]));
    CHECK(is_number(p["max_us"]));
    REQUIRE(is_number(p["rss_bytes"]));
    CHECK(p["rss_bytes"]->num > 0);
  }
  REQUIRE(j["soak_verdict"]);
  REQUIRE(j["soak_verdict"]->k == json::kind::object);
  CHECK(j["soak_verdict"]->operator[]("verdict")->str == verdict[1].str());
  CHECK(j["soak_verdict"]->operator[]("judged")->b);
}

TEST_CASE("a flag given with a workload file overrides the file's value and the rest of the file stays",
          "[loadgen][workload]") {
  engine_dir tmp;
  const auto file = tmp.path / "w.toml";
  {
    std::ofstream f(file);
    f << full_workload;
  }
  std::string out;
  int rc = run_loadgen("--workload " + file.string() +
                         " --connections 2 --objective 'p50<=3ms' --mix earn=100 --items 4 --print-workload",
                       tmp.path, out);
  INFO(out);
  REQUIRE(rc == 0);
  std::vector<std::string> errors;
  auto w = parse_workload(out, "printed", errors);
  INFO((errors.empty() ? "" : errors[0]));
  REQUIRE(w);
  CHECK(w->connections == 2);  // the flags ...
  CHECK(w->obj.percentile == 50);
  CHECK(w->obj.latency_ms_max == 3);
  CHECK(mix_text(w->mix) == "earn=100");
  CHECK(w->items == int_range{4, 4});
  CHECK(w->depth == 17);  // ... and the file
  CHECK(w->batch == 20);
  CHECK(w->members == 5000);
  CHECK(w->zipf_s == 1.25);
  CHECK(w->mode == run_mode::ramp);
  CHECK(w->sched.k == schedule::kind::ramp);
  CHECK(w->obj.error_rate_max == 0.02);

  // A schedule flag replaces the file's schedule.
  rc = run_loadgen("--workload " + file.string() + " --rate 50 --print-workload", tmp.path, out);
  REQUIRE(rc == 0);
  w = parse_workload(out, "printed", errors);
  REQUIRE(w);
  CHECK(w->sched.k == schedule::kind::rate);
  CHECK(w->sched.rate_per_s == 50);
  CHECK(w->mode == run_mode::ramp);  // --mode not given: the file's

  // Without a file, --ramp alone selects ramp mode.
  rc = run_loadgen("--ramp 10:30:10:1 --print-workload", tmp.path, out);
  REQUIRE(rc == 0);
  w = parse_workload(out, "printed", errors);
  REQUIRE(w);
  CHECK(w->mode == run_mode::ramp);
}

TEST_CASE("a mistake in a workload file makes the tool exit 2 naming the file and line", "[loadgen][workload]") {
  engine_dir tmp;
  const auto file = tmp.path / "bad.toml";
  {
    std::ofstream f(file);
    f << "[workload]\nmode = \"open\"\n[members]\ncount = -5\n[schedule]\nrate_per_s = 10\n";
  }
  std::string out;
  // Port 1: it must not get as far as connecting.
  const int rc = run_loadgen("--port 1 --workload " + file.string(), tmp.path, out);
  INFO(out);
  CHECK(rc == 2);
  CHECK(out.find(file.string() + ":4: 'count' in [members] must be between 1 and") != std::string::npos);
  CHECK(run_loadgen("--port 1 --mix earn=50", tmp.path, out) == 2);
  CHECK(out.find("add up to 50, not 100") != std::string::npos);
  CHECK(run_loadgen("--port 1 --mode ramp", tmp.path, out) == 2);
  CHECK(out.find("needs a schedule") != std::string::npos);
}

TEST_CASE("an engine's address splits into host and port, an IPv6 host in brackets; anything else is refused",
          "[loadgen][connect]") {
  std::string host;
  std::uint16_t port = 0;
  REQUIRE(loyalty::io::split_address("127.0.0.1:7411", host, port));
  CHECK(host == "127.0.0.1");
  CHECK(port == 7411);
  REQUIRE(loyalty::io::split_address("[::1]:65535", host, port));
  CHECK(host == "::1");
  CHECK(port == 65535);
  REQUIRE(loyalty::io::split_address("db-2.example:1", host, port));
  CHECK(host == "db-2.example");
  CHECK(port == 1);
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", ":7411", "host:0", "host:65536", "host:123456", "host:74a1",
                          "host:-1"})
    CHECK_FALSE(loyalty::io::split_address(bad, host, port));
}

TEST_CASE("the load generator refuses an address without a port, and --connect with --host or --port",
          "[loadgen][connect]") {
  engine_dir tmp;
  std::string out;
  CHECK(run_loadgen("--connect 127.0.0.1:7411,127.0.0.1 --duration 1", tmp.path, out) == 2);
  CHECK(out.find("--connect: \"127.0.0.1\" is not HOST:PORT") != std::string::npos);
  CHECK(run_loadgen("--connect 127.0.0.1:7411 --port 7412 --duration 1", tmp.path, out) == 2);
  CHECK(out.find("excludes") != std::string::npos);
}

TEST_CASE("a connection whose address does not answer starts on the next one given", "[loadgen][connect][engine]") {
  engine_dir tmp;
  auto e = start_retail_engine(tmp.path);
  std::string out;
  // Port 1 refuses at once: connection 0 starts there, finds it closed and
  // goes on to the engine; connection 1 starts at the engine.
  const int rc = run_loadgen("--connect 127.0.0.1:1,127.0.0.1:" + std::to_string(e->port()) +
                               " --members 20 --connections 2 --depth 4 --duration 0.5 --seed 6",
                             tmp.path, out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("127.0.0.1:1,127.0.0.1:" + std::to_string(e->port())) != std::string::npos);  // the summary names both
}
