// The load generator's limits, in one place, each with why it is that number.
// Workload files and flags outside them are refused (exit 2).
#pragma once

#include "config/limits.hpp"

#include <cstddef>
#include <cstdint>

namespace loyalty::loadgen::limits {

// Member ids are 1 .. 2^56-1 on the wire (docs/PROTOCOL.md).
inline constexpr std::uint64_t members_max = (1ull << 56) - 1;
// One batch frame holds at most the engine's batch_ops_max operations (1000):
// enrollment's frames (enroll_batch) and the load's (--batch).
inline constexpr std::uint32_t batch_ops_max = static_cast<std::uint32_t>(::loyalty::limits::batch_ops_max);
// The engine's default in-flight limit per connection, in operations (a batch
// frame counts as its elements): a load whose depth x batch passes it gets
// frames refused whole with `overloaded` unless the engine was configured
// higher (inflight_per_connection_max), so the run says so before it starts.
inline constexpr std::uint32_t engine_inflight_per_connection_default =
  ::loyalty::limits::inflight_per_connection_max_default;
// Connections of one load generator: beyond this the engine's per-connection
// overhead, not its capacity, is what gets measured.
inline constexpr std::uint32_t connections_max = 1024;
// Requests in flight per connection (closed mode: exactly; open: at most);
// frames, with batch > 1.
inline constexpr std::uint32_t depth_max = 100000;
// Operation slots reserved before the load: connections x depth x batch may
// be far more than any engine admits (it refuses them: overloaded), and a
// reservation that size would fail or waste memory; beyond it slots grow.
inline constexpr std::uint64_t slots_reserved_max = 1u << 20;
// Line items per earn: the protocol's items_max.
inline constexpr std::uint32_t items_max = 256;
// Far beyond what one process can send; catches a misplaced digit.
inline constexpr double rate_per_s_max = 1e8;
// A day: one step, or a closed run.
inline constexpr double duration_s_max = 86400;
// Steps of a schedule (a ramp's are counted after expansion): each keeps a
// 22 KiB latency histogram.
inline constexpr std::uint32_t steps_max = 2000;
// Waiting for a step's (or the run's) last answers.
inline constexpr double drain_s_max = 600;
// A soak's RSS growth bound, in percent: beyond ten times the warm RSS is no bound.
inline constexpr double soak_rss_growth_max_pct_max = 1000;
// SKUs generated as sku-0 .. sku-N-1 when no list is given.
inline constexpr std::uint32_t sku_count_max = 10'000'000;
// Per-second points drawn in one chart; longer runs are averaged into wider
// windows for drawing (the JSON keeps every second).
inline constexpr std::uint32_t chart_points_max = 1800;
// How long a connection looks for a serving node after a failure, at most:
// an election takes about a cluster's election timeout (at most 60 s).
inline constexpr double follow_patience_s_max = 3600;
// Failover gaps kept one by one for the report (the count and the maximum
// cover them all): a run that fails over more often is not a failover test.
inline constexpr std::size_t failover_gaps_kept = 1000;
// A progress line while enrolling: at most this often on a terminal, and
// every progress_log_interval_s when stdout is a file.
inline constexpr double progress_tty_interval_s = 0.5;
inline constexpr double progress_log_interval_s = 5;

} // namespace loyalty::loadgen::limits
