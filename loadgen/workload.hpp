// A workload: everything a load-generator run does, from a TOML file
// (loadgen/README.md, "Workload files"; examples in config/examples/
// workload-*.toml), from command-line flags, or both (a flag given with a file
// overrides the file's value).
//
// Parsing collects every mistake as "file:line: what is wrong" and accepts
// nothing partially. Plain data and functions: no I/O but reading the file.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty::loadgen {

// The operations a mix may name. `hold` is followed by a capture or a release
// of the hold (half each); `refund` refunds half of an earlier earn of the run;
// `reward` is redeem_reward of the workload's reward.
enum class op_kind : int {
  earn, redeem, event, hold, refund, reward, transfer, balance, history, partner_earn, partner_burn, count
};
inline constexpr std::size_t op_kind_count = static_cast<std::size_t>(op_kind::count);
inline constexpr std::array<std::string_view, op_kind_count> op_kind_names{
  "earn", "redeem", "event", "hold", "refund", "reward", "transfer", "balance", "history", "partner_earn",
  "partner_burn"};

// Whether an operation of the mix may be an element of a batch frame
// (docs/PROTOCOL.md, "batch": every operation a mix names, and the capture
// or release that follows a hold, may be). A kind added that may not be
// batched makes check_workload refuse a mix with it under batch > 1.
[[nodiscard]] bool batchable(op_kind k) noexcept;

// Percent of requests per operation; a valid mix adds up to 100.
using mix_weights = std::array<int, op_kind_count>;

enum class run_mode { closed, open, ramp };
[[nodiscard]] std::string_view to_string(run_mode m) noexcept;

enum class member_distribution { uniform, zipf };

// An inclusive range of integers; a fixed value has min == max.
struct int_range {
  std::int64_t min = 0;
  std::int64_t max = 0;
  friend bool operator==(const int_range&, const int_range&) = default;
};

// One step of an open-loop schedule: `rate_per_s` requests a second, on a
// fixed schedule, for `duration_s`.
struct step {
  double rate_per_s = 0;
  double duration_s = 0;
  friend bool operator==(const step&, const step&) = default;
};

struct ramp_spec {
  double from_per_s = 0, to_per_s = 0, step_per_s = 0, step_duration_s = 0;
};

// Open-loop schedule: one rate for the workload's duration_s, a list of
// steps, or a ramp (from, from + step, ... up to and including to when a step
// lands on it).
struct schedule {
  enum class kind { none, rate, steps, ramp };
  kind k = kind::none;
  double rate_per_s = 0;       // kind::rate
  std::vector<step> steps;     // kind::steps
  ramp_spec ramp;              // kind::ramp

  // The steps to run; `duration_s` is the length of a kind::rate run.
  [[nodiscard]] std::vector<step> expand(double duration_s) const;
};

// What a step must meet to pass (ramp mode; open mode judges its steps too
// when an objective is given, without stopping).
struct objective {
  double percentile = 99.0;               // 0 < percentile < 100
  double latency_ms_max = 10.0;           // that percentile of the step's latencies, at most
  double error_rate_max = 0.01;           // (failed + unanswered) / offered, at most
  bool count_refusals = false;            // true: expected refusals count as errors too
  double rate_tolerance = 0.05;           // achieved >= offered x (1 - tolerance)
  std::uint32_t failures_max = 1;         // ramp mode stops after this many failing steps
  double drain_s = 5;                     // wait for a step's last answers at most this long

  // "p99<=10ms" for the percentile and the latency.
  [[nodiscard]] std::string latency_text() const;
};

struct workload {
  std::string name = "command line";
  std::string description;
  std::string source;  // the file it came from, "" = flags only
  run_mode mode = run_mode::closed;
  std::uint64_t seed = 0;  // 0 = from the clock
  double duration_s = 10;  // closed mode, and open mode with one rate
  // Soak: every soak_interval_s of the load (0 = off) a line with that
  // interval's latencies and the engine's RSS; at the end a verdict on RSS
  // growth after the warm-up (loadgen/README.md, "Soak").
  double soak_interval_s = 0;
  double soak_warmup_s = -1;             // < 0: a quarter of the load's length (load_length_s), rounded
  double soak_rss_growth_max_pct = 10;   // RSS growth after the warm-up beyond this is "GROWING" (exit 3)

  // [members]
  std::uint64_t members = 1'000'000;
  member_distribution distribution = member_distribution::uniform;
  double zipf_s = 1.0;
  bool scatter = false;
  std::string brand = "acme";
  bool enroll = true;
  std::uint32_t enroll_batch = 1000;

  // [mix]
  mix_weights mix = default_mix();

  // [basket]
  int_range items{0, 0};
  std::vector<std::string> categories{"grocery", "coffee", "electronics", "home"};
  std::vector<std::string> skus;  // empty: sku-0 .. sku-(sku_count-1)
  std::uint32_t sku_count = 5000;
  int_range item_amount{50, 5000};
  int_range quantity{1, 3};
  int_range amount{100, 20000};  // earns without items
  std::string currency = "EUR";
  std::string channel;
  std::string store;

  // [operations]
  std::string event = "survey";
  std::string reward = "coffee";
  std::string partner = "skyair";
  int_range points{1, 50};           // redeem, hold, partner_burn
  int_range transfer_points{1, 20};
  int_range partner_points{100, 2000};
  std::uint32_t history_limit = 10;  // entries a `history` read asks for (1..100)

  // [connections]
  std::uint32_t connections = 4;
  std::uint32_t depth = 256;  // in flight per connection: operations, or frames when batch > 1
  // Operations per frame: 1 sends each alone (no batch wrapper); N > 1 sends
  // batch frames of N operations drawn from the mix (loadgen/README.md,
  // "Batch frames"). Rates stay operations per second.
  std::uint32_t batch = 1;

  // [schedule], [objective]
  schedule sched;
  bool has_objective = false;
  objective obj;

  static mix_weights default_mix() noexcept {
    mix_weights m{};
    m[static_cast<std::size_t>(op_kind::earn)] = 90;
    m[static_cast<std::size_t>(op_kind::redeem)] = 10;
    return m;
  }
  [[nodiscard]] int weight(op_kind k) const noexcept { return mix[static_cast<std::size_t>(k)]; }
  // Seconds of load as planned: duration_s in closed mode, the schedule's
  // steps otherwise (a ramp's waits for answers between steps not counted).
  [[nodiscard]] double load_length_s() const;
  // soak_warmup_s, or its default: a quarter of load_length_s(), rounded.
  [[nodiscard]] double soak_warmup() const;
};

// Reads a workload file over the defaults above. On any mistake: nullopt, and
// `errors` holds one "path:line: what" per mistake, in file order.
[[nodiscard]] std::optional<workload> load_workload(const std::string& path, std::vector<std::string>& errors);
[[nodiscard]] std::optional<workload> parse_workload(std::string_view toml_text, const std::string& name,
                                                     std::vector<std::string>& errors);

// The checks that span sections, for a workload after flags were applied
// (messages without a line: they may come from flags). Empty = valid.
[[nodiscard]] std::vector<std::string> check_workload(const workload& w);

// Flag syntaxes. Each returns false and sets `error` (a sentence) on a
// mistake.
// "earn=90,redeem=10": names from op_kind_names, percentages adding up to 100.
[[nodiscard]] bool parse_mix(std::string_view text, mix_weights& out, std::string& error);
// "3" or "1-8".
[[nodiscard]] bool parse_range(std::string_view text, int_range& out, std::string& error);
// "p99<=10ms", "p99.9<=2.5ms", "p50<=800us", "p99<=1s".
[[nodiscard]] bool parse_objective(std::string_view text, objective& out, std::string& error);
// "FROM:TO:STEP:SECONDS", e.g. "1000:20000:1000:10".
[[nodiscard]] bool parse_ramp(std::string_view text, ramp_spec& out, std::string& error);
// "RATE:SECONDS,RATE:SECONDS,...", e.g. "2000:30,5000:60".
[[nodiscard]] bool parse_steps(std::string_view text, std::vector<step>& out, std::string& error);

// "earn=90,redeem=10" (the non-zero weights, in op_kind order).
[[nodiscard]] std::string mix_text(const mix_weights& m);
// "3" or "1-8".
[[nodiscard]] std::string range_text(const int_range& r);
// One line: "ramp 1000 -> 20000 /s by 1000, 10 s a step (20 steps)".
[[nodiscard]] std::string schedule_text(const workload& w);
// What --depth counts: "" with batch 1 (operations), " frames of 100
// operations" with batch 100; appended to "depth 64".
[[nodiscard]] std::string depth_unit_text(const workload& w);
// The workload as a TOML file that parse_workload reads back to the same
// workload (--print-workload).
[[nodiscard]] std::string to_toml(const workload& w);

} // namespace loyalty::loadgen
