// The run: connect, enroll, then drive the workload closed loop, open loop on
// a schedule, or as a ramp that searches for the highest rate meeting an
// objective; everything measured lands in a run_result for the reports.
//
// Thread affinity: one thread. The driver owns an asio::io_context and all
// connections; every callback runs on the thread that called execute().
#pragma once

#include "io/client/following_connection.hpp"
#include "loadgen/histogram.hpp"
#include "loadgen/workload.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loyalty::loadgen {

// Where the load goes: one engine, or the nodes of a cluster. Connection i
// starts at addresses[i mod n]; each follows not_leader to the leader and
// replaces a dropped connection (io::following_connection).
struct target {
  std::vector<std::string> addresses{"127.0.0.1:7411"};  // host:port each
  std::string key;  // sent in hello ("" = none)
  io::tls_options tls;
  // How long a connection keeps looking for a node that serves, from its
  // first failure (not_leader or a dropped connection) on.
  std::chrono::milliseconds follow_patience{10'000};
  // The addresses, comma-separated.
  [[nodiscard]] std::string address() const {
    std::string s;
    for (const auto& a : addresses)
      s += (s.empty() ? "" : ",") + a;
    return s;
  }
};

// Following a cluster's leader: what the connections did, and the failover
// gaps. A gap begins at a failure (a not_leader answer, or a dropped
// connection) while none is open, and ends at the next acknowledged (ok)
// answer on a connection that failed since: the time the load was without
// a serving leader as this client saw it.
struct failover_result {
  std::uint64_t not_leader = 0;  // not_leader answers followed (summed over the connections)
  std::uint64_t dropped = 0;     // connections dropped (a node died or closed them)
  std::uint64_t reconnects = 0;  // new connections after either
  std::uint64_t resent = 0;      // requests sent again, unchanged (same txn ids)
  std::uint64_t failovers = 0;   // gaps begun
  std::uint64_t recovered = 0;   // gaps ended by an acknowledgement
  std::vector<double> gaps_ms;   // of the gaps ended, in order (the first limits::failover_gaps_kept)
  double gap_max_ms = 0;
  [[nodiscard]] bool any() const noexcept { return not_leader + dropped + reconnects + failovers > 0; }
};

// One second of the load phase (the last window may be shorter: dur_s).
struct second_point {
  double t_s = 0;               // end of the window, seconds since the load started
  double dur_s = 1;             // length of the window
  int step = -1;                // the step scheduled in it; -1: closed mode, or waiting for a step's answers
  std::uint64_t offered = 0;    // requests due in it (open loop: the schedule; closed loop: sent)
  std::uint64_t sent = 0;       // requests written in it (late ones of a backlog included)
  std::uint64_t answered = 0;   // answers received in it, ok + errors
  std::uint64_t ok = 0, errors = 0;
  latency_summary latency;      // of the answers received in it, from their intended send times
  std::uint64_t in_flight = 0;  // at its end
  std::uint64_t backlog = 0;    // due but not sent at its end (connections at --depth)
};

// One open-loop step, its requests attributed by intended send time (so its
// late answers count for it, not for the step that follows).
struct step_result {
  double rate_per_s = 0;        // as scheduled
  double duration_s = 0;
  double start_s = 0;           // since the load started
  double last_answer_s = 0;     // when its last answer came, since the load started
  std::uint64_t offered = 0;    // requests its schedule made due
  std::uint64_t ok = 0;
  std::uint64_t refused = 0;    // expected refusals (is_refusal): the engine did its job
  std::uint64_t failed = 0;     // every other error code
  std::uint64_t unanswered = 0; // no answer when it was given up (sent or never sent)
  histogram latency;            // answered: from intended send time; unanswered: their wait so far
  // Set by judge():
  double offered_per_s = 0;     // offered / duration_s
  double achieved_per_s = 0;    // answers / max(duration_s, last answer - start)
  double error_rate = 0;        // (failed + unanswered [+ refused]) / offered
  std::uint64_t objective_latency_us = 0;  // the objective's percentile of `latency`
  bool judged = false, passed = false;
  std::string verdict;          // "pass", or every reason it failed
};

// One soak interval (--soak-interval): its own histogram, not merged
// per-second summaries, and the engine's RssAnon from a `stats` request sent
// on a load connection at its end.
struct soak_point {
  double t_s = 0;               // end of the interval, seconds since the load started
  double dur_s = 0;             // its length
  std::uint64_t answered = 0, ok = 0, errors = 0;
  std::uint64_t p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;  // of the answers received in it
  std::uint64_t rss_bytes = 0;       // engine's process_resident_anon_bytes; 0 = unknown
  std::uint64_t members_active = 0;  // engine's members_active (member actors in memory); 0 with rss unknown
  bool rss_known = false;            // the stats answer came and carried an RSS
};

// The soak verdict: RSS at the first point at or after the warm-up (base) vs
// the last point; flat when the growth is within the bound.
struct soak_verdict {
  bool judged = false;          // false: no soak, too few points after the warm-up, or no RSS
  std::string why_not;          // when not judged (and soak was on): a sentence
  double warmup_s = 0;
  double bound_pct = 0;
  std::size_t points = 0;       // points with an RSS at or after the warm-up
  double base_t_s = 0, last_t_s = 0;
  std::uint64_t base_bytes = 0, last_bytes = 0, max_bytes = 0;  // max: of the points after the warm-up
  double growth_pct = 0;        // (last - base) / base x 100
  bool growing = false;         // growth_pct > bound_pct
};

struct op_result {
  std::uint64_t ok = 0, errors = 0;
  histogram latency;
};

struct run_result {
  std::string started_at;       // UTC, ISO 8601, when the load started
  std::uint64_t seed = 0;
  // Enrollment
  double enroll_s = 0;
  std::uint64_t enrolled = 0, enroll_existed = 0, enroll_errors = 0;
  // Load
  double load_s = 0;            // the load phase, final wait for answers excluded
  std::uint64_t offered = 0, sent = 0, ok = 0;  // operations (each element of a batch frame is one)
  // Frames written and answered (with batch 1 one per operation; a batch
  // frame refused whole is answered). Abandoned frames answered late count.
  std::uint64_t frames_sent = 0, frames_answered = 0;
  std::uint64_t errors = 0;      // answers with an error code, refusals included
  std::uint64_t refused = 0;     // of those, expected refusals (is_refusal)
  std::uint64_t unanswered = 0; // in flight or never sent when the run gave up waiting
  std::uint64_t never_sent = 0; // of those, never written (engine behind, connections at --depth)
  // Errors by wire code (errc value; the last slot gathers codes beyond it).
  static constexpr std::size_t code_slots = 256;
  std::array<std::uint64_t, code_slots> errors_by_code{};
  std::vector<op_result> by_op;  // indexed by io::opcode
  histogram latency;             // every answer of the run
  std::vector<second_point> series;
  std::vector<step_result> steps;  // the steps run, in order
  std::size_t steps_planned = 0;
  bool ramp_stopped = false;       // ramp mode stopped at failures_max failing steps
  int highest_passing_step = -1;   // index into steps; -1: none passed (or not judged)
  int connection_failures = 0;     // connections that gave up (no node served within the follow patience)
  failover_result failover;
  bool interrupted = false;        // Ctrl-C ended the load early
  std::vector<soak_point> soak;    // --soak-interval: one per interval, in order (a shorter tail is none)
  bool soak_rss_refused = false;   // the engine refused `stats` (key without it): RSS unknown, not asked again
  soak_verdict soak_judgement;     // set at the end of a soak run
};

class driver {
public:
  driver(workload w, target t);
  ~driver();
  driver(const driver&) = delete;
  driver& operator=(const driver&) = delete;

  // Connects, enrolls (unless the workload says not to), drives the load.
  // Returns 0 when it ran to the end, 1 when it ended early (a connection
  // gave up: no node served within the follow patience of a failure; or
  // Ctrl-C; the result holds what was measured), 2 when it could not
  // connect (to any address) or enrollment failed or was interrupted. Progress and
  // per-second lines go to stdout. Installs a SIGINT handler for the run.
  // (The soak verdict does not change this: main turns GROWING into exit 3.)
  [[nodiscard]] int execute();

  [[nodiscard]] const run_result& result() const noexcept;
  [[nodiscard]] const workload& work() const noexcept;
  [[nodiscard]] const target& where() const noexcept;

private:
  struct impl;
  std::unique_ptr<impl> p_;
};

// An error a random workload provokes on purpose and a correct engine gives:
// the member lacks the points, the hold was already closed, the purchase was
// already refunded, ... (insufficient_points, out_of_stock, unknown_hold,
// unknown_txn, already_reversed, negative_balance_limit, same_member,
// invalid_amount). Every other code (capacity, protocol, configuration,
// internal) is a failure.
[[nodiscard]] bool is_refusal(errc code) noexcept;

// The soak verdict of a run's points (judge_soak fills soak_judgement after
// the load; exposed for the reports).
[[nodiscard]] soak_verdict judge_soak(const std::vector<soak_point>& points, double warmup_s, double bound_pct);

// The verdict of one step against the objective (fills the judged fields).
void judge(step_result& s, const objective& o);

} // namespace loyalty::loadgen
