// The run. Per request the hot path does: one draw of member and operation,
// one request built on the stack and handed to the client library, a slot
// from a free list (no allocation, no lock: one thread), and on the answer
// three histogram records (the second's window, the operation's, the step's;
// a fourth, the soak interval's, with --soak-interval).
// With --batch N > 1 a frame is a `batch` request of N such operations, each
// with its slot; the frame's answer is accounted element by element.
// What the client library itself allocates per request (the 16-byte txn
// string, the handler's hash-map node, a basket's item vector) is its own.
#include "loadgen/driver.hpp"

#include "loadgen/limits.hpp"
#include "loadgen/random.hpp"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <deque>
#include <functional>
#include <optional>

#include <csignal>
#include <unistd.h>

namespace loyalty::loadgen {

using steady = std::chrono::steady_clock;
using io::opcode;

namespace {

std::uint64_t now_us() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
}

double secs(steady::duration d) { return std::chrono::duration<double>(d).count(); }

std::uint64_t micros(steady::duration d) {
  auto c = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return c < 0 ? 0 : static_cast<std::uint64_t>(c);
}

steady::duration from_secs(double s) {
  return std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s));
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "1,234,567"
std::string grouped(std::uint64_t n) {
  auto s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

std::string eta_text(double s) {
  if (!std::isfinite(s) || s < 0)
    return "?";
  auto t = static_cast<long long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, t / 60 % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%llds", t);
  return buf;
}

double ms(std::uint64_t us) { return static_cast<double>(us) / 1000.0; }

constexpr std::size_t opcode_slots = 64;
constexpr std::size_t txn_bytes = 16;

// A request in flight: what its answer needs to be accounted and learned from.
struct slot {
  steady::time_point intended;
  std::uint64_t member = 0;
  std::int64_t amount = 0;
  std::array<char, txn_bytes> txn{};
  std::uint32_t conn = 0;
  std::int32_t step = -1;
  opcode op = opcode::none;
  bool in_use = false;
  bool abandoned = false;  // given up on: its answer, if it comes, is not counted
};

// A frame due by the schedule, not yet sent (its connection was at --depth).
struct due_request {
  steady::time_point intended;
  std::int32_t step;
  std::uint32_t ops;  // operations in it: the workload's batch, fewer at a step's end
};

// A batch frame in flight: the slots of its operations, in the order of its
// `ops` (so of the answer's `results`). Kept for reuse: no allocation per
// frame once the run has as many as it keeps in flight.
struct batch_frame {
  std::vector<std::uint32_t> slots;
};

// Appends `e` to the batch frame `b` (element ids 1, 2, ...: unique within
// the frame, as docs/PROTOCOL.md asks). Enrollment's frames and the load's.
void add_to_batch(io::request& b, io::request e) {
  b.op = opcode::batch;
  e.id = b.ops.size() + 1;
  b.ops.push_back(std::move(e));
}

// A capture or release of a hold this connection opened.
struct followup {
  opcode op;
  std::uint64_t member;
  std::uint64_t hold;
};

struct earned_record {
  std::uint64_t member;
  std::array<char, txn_bytes> txn;
  std::int64_t amount;
};

// An element of `pool` that is not in use: one from the free list, else a new
// one at its end. Returns its index.
template <class T>
std::uint32_t take_from(std::vector<T>& pool, std::vector<std::uint32_t>& free) {
  if (!free.empty()) {
    const auto i = free.back();
    free.pop_back();
    return i;
  }
  pool.emplace_back();
  return static_cast<std::uint32_t>(pool.size() - 1);
}

// Element i of a batch frame's answer `a`: its result, or, for a frame
// refused whole, the refusal. An answer ok with fewer results than the frame
// had operations breaks the protocol; the operations without a result count
// as internal_error.
const io::response& element_answer(const io::response& a, std::size_t i) {
  static const io::response missing = [] {
    io::response m;
    m.op = opcode::batch;
    m.code = errc::internal_error;
    m.message = "the batch's answer has no result for this operation";
    return m;
  }();
  if (!a.ok())
    return a;
  return i < a.results.size() ? a.results[i] : missing;
}

// Earns of the run that refunds pick from (reservoir of this size).
constexpr std::size_t earned_keep = 4096;

// Ctrl-C ends the load early; the run still drains, reports and writes its
// files. A second Ctrl-C kills the process as usual.
volatile std::sig_atomic_t interrupted = 0;
extern "C" void on_sigint(int) {
  interrupted = 1;
  std::signal(SIGINT, SIG_DFL);
}

} // namespace

bool is_refusal(errc code) noexcept {
  switch (code) {
    case errc::insufficient_points:
    case errc::out_of_stock:
    case errc::unknown_hold:
    case errc::unknown_txn:
    case errc::already_reversed:
    case errc::negative_balance_limit:
    case errc::same_member:
    case errc::invalid_amount: return true;
    default: return false;
  }
}

soak_verdict judge_soak(const std::vector<soak_point>& points, double warmup_s, double bound_pct) {
  soak_verdict v;
  v.warmup_s = warmup_s;
  v.bound_pct = bound_pct;
  bool any_rss = false;
  for (const auto& p : points) {
    any_rss |= p.rss_known;
    if (!p.rss_known || p.t_s + 1e-6 < warmup_s)
      continue;
    if (v.points++ == 0) {
      v.base_t_s = p.t_s;
      v.base_bytes = p.rss_bytes;
    }
    v.last_t_s = p.t_s;
    v.last_bytes = p.rss_bytes;
    v.max_bytes = std::max(v.max_bytes, p.rss_bytes);
  }
  if (points.empty()) {
    v.why_not = "no soak point: the load was shorter than one interval";
    return v;
  }
  if (!any_rss) {
    v.why_not = "no RSS from the engine (stats refused or unanswered)";
    return v;
  }
  // One point is no trend: a run this short is not judged (and not failed).
  if (v.points < 2) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "too short to judge: %zu point(s) with RSS after the %g s warm-up, 2 needed",
                  v.points, warmup_s);
    v.why_not = buf;
    return v;
  }
  v.judged = true;
  v.growth_pct = (static_cast<double>(v.last_bytes) - static_cast<double>(v.base_bytes)) * 100.0 /
                 static_cast<double>(v.base_bytes);
  v.growing = v.growth_pct > bound_pct;
  return v;
}

void judge(step_result& s, const objective& o) {
  const auto answered = s.ok + s.refused + s.failed;
  s.offered_per_s = static_cast<double>(s.offered) / std::max(s.duration_s, 1e-9);
  const double span = std::max(s.duration_s, s.last_answer_s - s.start_s);
  s.achieved_per_s = static_cast<double>(answered) / std::max(span, 1e-9);
  const auto bad = s.failed + s.unanswered + (o.count_refusals ? s.refused : 0);
  s.error_rate = s.offered ? static_cast<double>(bad) / static_cast<double>(s.offered) : 0.0;
  s.objective_latency_us = s.latency.percentile(o.percentile / 100.0);
  s.judged = true;
  std::string why;
  char buf[200];
  if (static_cast<double>(s.objective_latency_us) > o.latency_ms_max * 1000.0) {
    std::snprintf(buf, sizeof buf, "p%g %.3f ms > %g ms", o.percentile, ms(s.objective_latency_us), o.latency_ms_max);
    why += buf;
  }
  if (s.error_rate > o.error_rate_max) {
    std::snprintf(buf, sizeof buf, "%serror rate %.2f%% > %g%%", why.empty() ? "" : "; ", s.error_rate * 100,
                  o.error_rate_max * 100);
    why += buf;
  }
  if (s.achieved_per_s < s.offered_per_s * (1.0 - o.rate_tolerance)) {
    std::snprintf(buf, sizeof buf, "%sachieved %.0f/s < %g%% of offered %.0f/s", why.empty() ? "" : "; ",
                  s.achieved_per_s, (1.0 - o.rate_tolerance) * 100, s.offered_per_s);
    why += buf;
  }
  if (s.offered == 0)
    why += why.empty() ? "nothing offered" : "; nothing offered";
  s.passed = why.empty();
  s.verdict = s.passed ? "pass" : why;
}

struct driver::impl {
  workload w;
  target t;
  run_result res;
  rng gen;        // the mix: members, operations, amounts, in send order
  rng learn_gen;  // what depends on answers (capture or release, which earn to refund): kept apart so that
                  // answer timing does not shift the mix's sequence
  member_picker pick_member;
  std::array<op_kind, 100> kind_of_percent{};
  bool tty = isatty(fileno(stdout)) != 0;

  asio::io_context ctx{1};
  std::vector<std::shared_ptr<io::following_connection>> conns;
  std::vector<std::uint32_t> conn_inflight;  // frames awaiting their answer, per connection (abandoned ones included)
  std::vector<std::uint32_t> counters;       // txn counter per connection
  std::vector<std::deque<due_request>> backlog;
  std::vector<std::deque<followup>> followups;
  std::vector<earned_record> earned;
  std::vector<char> recovering;  // per connection: it failed (not_leader, dropped) and has no acknowledgement since
  std::optional<steady::time_point> gap_since;  // the failover gap open: its first failure
  std::vector<slot> slots;
  std::vector<std::uint32_t> free_slots;
  std::vector<batch_frame> frames;  // batch > 1: the frames in flight, and spare ones
  std::vector<std::uint32_t> free_frames;
  bool results_mismatch_said = false;  // a batch answered with a wrong number of results was reported
  std::uint64_t pending_answers = 0;  // operations in flight and not abandoned
  std::uint64_t backlog_total = 0;    // operations due and not sent
  int failures = 0;
  bool closed_loop = false;
  bool stopping = false;  // closed loop: send no more

  // Time
  steady::time_point load_start;
  steady::time_point last_tick;
  steady::time_point next_tick;
  windowed window;
  second_point cur;
  int cur_step = -1;

  // The step being scheduled
  std::vector<std::uint64_t> step_outstanding;  // per step: offered, not yet answered nor given up
  steady::time_point step_start;
  double step_rate = 0;
  std::uint64_t step_total = 0, step_scheduled = 0;
  std::uint64_t round_robin = 0;

  // Soak (--soak-interval): intervals of their own, each with a histogram of
  // its answers (percentiles over the interval, which merged per-second
  // summaries cannot give) and one `stats` request for the engine's RSS.
  bool soak_on = false;      // set at construction, from the workload
  bool soak_open = false;    // intervals roll during the load phase only
  std::uint64_t soak_rolled = 0;  // intervals rolled; the next ends at load_start + (n + 1) x interval
  steady::time_point next_soak, last_soak;
  histogram soak_hist;
  std::uint64_t soak_answered = 0, soak_ok = 0, soak_errors = 0;
  std::uint64_t soak_asked = 0;    // stats requests not answered yet
  std::vector<char> soak_shown;    // per point: its line was printed

  impl(workload wl, target tg)
    : w(std::move(wl)), t(std::move(tg)), gen(w.seed), learn_gen(w.seed ^ 0x1ea27a1e5eedull),
      pick_member(w.members, w.distribution == member_distribution::zipf, w.zipf_s, w.scatter, w.seed) {
    res.seed = w.seed;
    res.by_op.resize(opcode_slots);
    std::size_t at = 0;
    for (std::size_t k = 0; k < op_kind_count; ++k)
      for (int i = 0; i < w.mix[k] && at < kind_of_percent.size(); ++i)
        kind_of_percent[at++] = static_cast<op_kind>(k);
    earned.reserve(earned_keep);
    soak_on = w.soak_interval_s > 0;
  }

  // -- connections --------------------------------------------------------------

  bool connect_all() {
    int pending = static_cast<int>(w.connections);
    bool ok = true;
    io::follow_options fo;
    fo.name = "loyalty-loadgen";
    fo.key = t.key;
    fo.tls = t.tls;
    fo.patience = t.follow_patience;
    recovering.assign(w.connections, 0);
    for (std::uint32_t i = 0; i < w.connections; ++i) {
      auto c = std::make_shared<io::following_connection>(ctx, t.addresses, i, fo);
      c->on_error = [this, i](const std::string& why) {
        ++failures;
        ++res.connection_failures;
        std::fprintf(stderr, "loadgen: connection %u gave up: %s (seed %llu)\n", i, why.c_str(),
                     static_cast<unsigned long long>(w.seed));
      };
      c->on_event = [this, i](io::follow_event e, const std::string& detail) { failover_event(i, e, detail); };
      c->start([&pending, &ok](const std::string& error) {
        if (!error.empty()) {
          std::fprintf(stderr, "loadgen: %s\n", error.c_str());
          ok = false;
        }
        --pending;
      });
      conns.push_back(c);
    }
    while (pending > 0 && ctx.run_one_for(std::chrono::seconds(10)) > 0) {
    }
    conn_inflight.assign(conns.size(), 0);
    counters.assign(conns.size(), 0);
    backlog.assign(conns.size(), {});
    followups.assign(conns.size(), {});
    // Slots for what the load keeps in flight, up to limits::slots_reserved_max (slots grow as needed).
    const std::uint64_t in_flight_max = std::uint64_t{w.connections} * w.depth * w.batch;
    slots.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(in_flight_max, limits::slots_reserved_max)) + 16);
    return ok && pending == 0;
  }

  // -- following the leader -------------------------------------------------------

  // A not_leader followed or a connection dropped: the connection waits for
  // an acknowledgement, and a failover gap begins unless one is open.
  void failover_event(std::uint32_t ci, io::follow_event e, const std::string& detail) {
    if (e == io::follow_event::reconnected)
      return;
    recovering[ci] = 1;
    if (gap_since)
      return;
    gap_since = steady::now();
    ++res.failover.failovers;
    const auto& from = conns[ci]->address();
    if (e == io::follow_event::not_leader)
      std::printf("failover: connection %u: not_leader from %s, %s%s\n", ci, from.c_str(),
                  detail.empty() ? "no leader known yet" : "following the leader ", detail.c_str());
    else
      std::printf("failover: connection %u: %s dropped (%s), reconnecting\n", ci, from.c_str(), detail.c_str());
    std::fflush(stdout);
  }

  // An ok answer on connection ci: ends the failover gap if ci failed since it began.
  void acknowledged(std::uint32_t ci) {
    if (!recovering[ci])
      return;
    recovering[ci] = 0;
    if (!gap_since)
      return;
    const double gap = std::chrono::duration<double, std::milli>(steady::now() - *gap_since).count();
    gap_since.reset();
    auto& f = res.failover;
    ++f.recovered;
    f.gap_max_ms = std::max(f.gap_max_ms, gap);
    if (f.gaps_ms.size() < limits::failover_gaps_kept)
      f.gaps_ms.push_back(gap);
    std::printf("failover: acknowledged again %.0f ms after the first failure (connection %u, now on %s)\n", gap, ci,
                conns[ci]->address().c_str());
    std::fflush(stdout);
  }

  // The connections' counters, summed into the result.
  void sum_follow_counters() {
    auto& f = res.failover;
    for (const auto& c : conns) {
      const auto& k = c->counters();
      f.not_leader += k.not_leader;
      f.dropped += k.dropped;
      f.reconnects += k.reconnects;
      f.resent += k.resent;
    }
  }

  // -- enrollment -----------------------------------------------------------------

  void enroll_progress(steady::time_point t0, std::uint64_t done, bool last) {
    const double el = secs(steady::now() - t0);
    const double rate = static_cast<double>(done) / std::max(el, 1e-9);
    const double eta = rate > 0 ? static_cast<double>(w.members - std::min(done, w.members)) / rate : NAN;
    char buf[200];
    std::snprintf(buf, sizeof buf, "enroll %s / %s members (%.1f%%)  %s/s  %s %s", grouped(done).c_str(),
                  grouped(w.members).c_str(), 100.0 * static_cast<double>(done) / static_cast<double>(w.members),
                  grouped(static_cast<std::uint64_t>(rate)).c_str(), last ? "took" : "ETA",
                  eta_text(last ? el : eta).c_str());
    if (tty)
      std::printf("\r\033[K%s%s", buf, last ? "\n" : "");
    else
      std::printf("%s\n", buf);
    std::fflush(stdout);
  }

  bool enroll() {
    const auto t0 = steady::now();
    std::uint64_t next = 1, done = 0, exists = 0, errors = 0;
    std::uint32_t inflight = 0;
    std::string first_error;
    // Up to 4 batch frames in flight per connection.
    std::function<bool(std::size_t)> issue = [&](std::size_t ci) {
      if (next > w.members || !conns[ci]->open())
        return false;
      io::request b;
      for (std::uint32_t i = 0; i < w.enroll_batch && next <= w.members; ++i, ++next) {
        io::request e;
        e.op = opcode::enroll;
        e.member = next;
        e.brand = w.brand;
        add_to_batch(b, std::move(e));
      }
      ++inflight;
      conns[ci]->submit(std::move(b), [&, ci](const io::response& r) {
        --inflight;
        if (!r.ok()) {
          ++errors;
          if (first_error.empty())
            first_error = std::string(to_string(r.code)) + ": " + r.message;
        } else {
          acknowledged(static_cast<std::uint32_t>(ci));
          for (auto& s : r.results) {
            if (s.ok() || s.code == errc::member_exists) {
              ++done;
              exists += s.code == errc::member_exists;
            } else {
              ++errors;
              if (first_error.empty())
                first_error = std::string(to_string(s.code)) + ": " + s.message;
            }
          }
        }
        issue(ci);
      });
      return true;
    };
    for (std::size_t ci = 0; ci < conns.size(); ++ci)
      for (int k = 0; k < 4; ++k)
        issue(ci);
    const double interval = tty ? limits::progress_tty_interval_s : limits::progress_log_interval_s;
    auto last_print = t0;
    while (inflight > 0 && failures == 0 && !interrupted) {
      ctx.run_for(std::chrono::milliseconds(100));
      auto now = steady::now();
      if (secs(now - last_print) >= interval) {
        last_print = now;
        enroll_progress(t0, done, false);
      }
    }
    enroll_progress(t0, done, true);
    res.enroll_s = secs(steady::now() - t0);
    res.enrolled = done;
    res.enroll_existed = exists;
    res.enroll_errors = errors;
    std::printf("enrolled %s members (%s already existed) in %.2f s: %.0f/s; errors %s%s%s\n", grouped(done).c_str(),
                grouped(exists).c_str(), res.enroll_s, static_cast<double>(done) / std::max(res.enroll_s, 1e-9),
                grouped(errors).c_str(), first_error.empty() ? "" : ", first: ", first_error.c_str());
    if (interrupted)
      std::printf("interrupted during enrollment\n");
    return failures == 0 && !interrupted;
  }

  // -- requests ---------------------------------------------------------------------

  std::uint32_t take_slot() { return take_from(slots, free_slots); }

  void release_slot(std::uint32_t i) {
    slots[i].in_use = false;
    free_slots.push_back(i);
  }

  // Time-ordered 16-byte txn id: timestamp (µs, big-endian), connection, counter.
  void make_txn(std::uint32_t conn, slot& s, io::request& r) {
    const auto now = now_us();
    const auto counter = ++counters[conn];
    for (int i = 0; i < 8; ++i)
      s.txn[static_cast<std::size_t>(i)] = static_cast<char>(now >> (56 - 8 * i));
    for (int i = 0; i < 4; ++i) {
      s.txn[static_cast<std::size_t>(8 + i)] = static_cast<char>(conn >> (24 - 8 * i));
      s.txn[static_cast<std::size_t>(12 + i)] = static_cast<char>(counter >> (24 - 8 * i));
    }
    r.txn.assign(s.txn.data(), s.txn.size());
  }

  std::int64_t draw(const int_range& r) { return gen.between(r.min, r.max); }

  void fill_earn(io::request& r) {
    r.op = opcode::earn;
    r.brand = w.brand;
    r.currency = w.currency;
    r.channel = w.channel;
    r.store = w.store;
    r.occurred_at_us = now_us();
    const auto n = static_cast<std::size_t>(draw(w.items));
    if (n == 0) {
      r.amount = draw(w.amount);
      return;
    }
    r.items.resize(n);
    for (auto& it : r.items) {
      if (w.skus.empty()) {
        char buf[24];
        int len = std::snprintf(buf, sizeof buf, "sku-%llu", static_cast<unsigned long long>(gen.below(w.sku_count)));
        it.sku.assign(buf, static_cast<std::size_t>(len));
      } else {
        it.sku = w.skus[gen.below(w.skus.size())];
      }
      it.category = w.categories[gen.below(w.categories.size())];
      it.qty = draw(w.quantity);
      it.amount = draw(w.item_amount);
      r.amount += it.amount;
    }
  }

  // The next request of a connection: a follow-up (capture or release of a
  // hold it opened) first, else one drawn from the mix.
  void fill(std::uint32_t ci, slot& s, io::request& r) {
    auto& follow = followups[ci];
    if (!follow.empty()) {
      const auto f = follow.front();
      follow.pop_front();
      r.op = f.op;
      r.member = f.member;
      r.hold = f.hold;
      make_txn(ci, s, r);
      s.member = f.member;
      return;
    }
    const std::uint64_t m = pick_member(gen);
    auto k = kind_of_percent[gen.below(100)];
    if (k == op_kind::refund && earned.empty())
      k = op_kind::earn;
    r.member = m;
    s.member = m;
    if (k != op_kind::balance && k != op_kind::history)  // reads carry no txn id
      make_txn(ci, s, r);
    switch (k) {
      case op_kind::earn: fill_earn(r); break;
      case op_kind::redeem:
        r.op = opcode::redeem;
        r.points = draw(w.points);
        break;
      case op_kind::event:
        r.op = opcode::event;
        r.event = w.event;
        r.channel = w.channel;
        break;
      case op_kind::hold:
        r.op = opcode::hold;
        r.points = draw(w.points);
        break;
      case op_kind::refund: {
        const auto& e = earned[learn_gen.below(earned.size())];
        r.op = opcode::refund;
        r.member = e.member;
        s.member = e.member;
        r.ref.assign(e.txn.data(), e.txn.size());
        r.amount = std::max<std::int64_t>(1, e.amount / 2);  // a second refund of it takes the rest
        break;
      }
      case op_kind::reward:
        r.op = opcode::redeem_reward;
        r.reward = w.reward;
        break;
      case op_kind::transfer:
        r.op = opcode::transfer;
        r.to = m % w.members + 1;
        r.points = draw(w.transfer_points);
        if (r.to == m) {  // one member: nobody to transfer to
          r.op = opcode::balance;
          r.txn.clear();
        }
        break;
      case op_kind::balance:
        r.op = opcode::balance;
        r.txn.clear();
        break;
      case op_kind::history:
        r.op = opcode::history;
        r.txn.clear();
        r.limit = w.history_limit;
        break;
      case op_kind::partner_earn:
        r.op = opcode::partner_earn;
        r.partner = w.partner;
        r.points = draw(w.partner_points);
        r.amount = draw(w.amount);
        r.occurred_at_us = now_us();
        break;
      case op_kind::partner_burn:
        r.op = opcode::partner_burn;
        r.partner = w.partner;
        r.points = draw(w.points);
        break;
      case op_kind::count: break;
    }
    s.amount = r.amount;
  }

  // What an answer adds to the workload: a hold gets a capture or a release,
  // an earn can be refunded later.
  void learn(const slot& s, const io::response& a) {
    if (!a.ok())
      return;
    if (s.op == opcode::hold) {
      followups[s.conn].push_back({learn_gen.below(2) == 0 ? opcode::capture : opcode::release, s.member, a.hold});
    } else if (s.op == opcode::earn && w.weight(op_kind::refund) > 0) {
      earned_record e{s.member, s.txn, s.amount};
      if (earned.size() < earned_keep)
        earned.push_back(e);
      else
        earned[learn_gen.below(earned_keep)] = e;
    }
  }

  std::uint32_t take_frame() {
    const auto i = take_from(frames, free_frames);
    frames[i].slots.reserve(w.batch);  // once: a frame taken again keeps its capacity
    return i;
  }

  // The next operation of connection ci, drawn into `r`; returns its slot.
  std::uint32_t next_operation(std::uint32_t ci, steady::time_point intended, std::int32_t step, io::request& r) {
    const auto si = take_slot();
    slot& s = slots[si];
    s.intended = intended;
    s.step = step;
    s.conn = ci;
    s.in_use = true;
    s.abandoned = false;
    s.amount = 0;
    fill(ci, s, r);
    s.op = r.op;
    ++pending_answers;
    ++cur.sent;
    ++res.sent;
    return si;
  }

  // One frame on connection ci of `ops` operations, all intended at
  // `intended`: with batch 1 the operation alone (no batch wrapper), else a
  // batch frame (a step's last frame may hold fewer than the batch).
  void send(std::uint32_t ci, steady::time_point intended, std::int32_t step, std::uint32_t ops) {
    assert(ops >= 1);
    assert(ops <= w.batch);
    ++conn_inflight[ci];
    ++res.frames_sent;
    if (w.batch == 1) {
      io::request r;
      const auto si = next_operation(ci, intended, step, r);
      // [this, si]: 16 bytes, kept inside std::function without an allocation.
      conns[ci]->submit(std::move(r), [this, si](const io::response& a) { answered(si, a); });
      return;
    }
    const auto fi = take_frame();
    io::request b;
    b.ops.reserve(ops);
    for (std::uint32_t i = 0; i < ops; ++i) {
      io::request e;
      const auto si = next_operation(ci, intended, step, e);
      frames[fi].slots.push_back(si);
      add_to_batch(b, std::move(e));
    }
    conns[ci]->submit(std::move(b), [this, fi](const io::response& a) { frame_answered(fi, a); });
  }

  // The answer of an operation sent alone.
  void answered(std::uint32_t si, const io::response& a) {
    const auto now = steady::now();
    const auto ci = slots[si].conn;
    account(si, a, now);
    frame_done(ci, now);
  }

  // The answer of a batch frame: each element's result is its operation's
  // answer. A frame refused whole (overloaded, batch_too_large, ...) is that
  // error for each of its operations.
  void frame_answered(std::uint32_t fi, const io::response& a) {
    const auto now = steady::now();
    auto& f = frames[fi];
    assert(!f.slots.empty());
    const auto ci = slots[f.slots.front()].conn;
    if (a.ok() && a.results.size() != f.slots.size() && !results_mismatch_said) {
      results_mismatch_said = true;  // once: the count of internal_error says how often
      std::fprintf(stderr, "loadgen: a batch frame of %zu operations was answered with %zu results (seed %llu)\n",
                   f.slots.size(), a.results.size(), static_cast<unsigned long long>(w.seed));
    }
    for (std::size_t i = 0; i < f.slots.size(); ++i)
      account(f.slots[i], element_answer(a, i), now);
    f.slots.clear();
    free_frames.push_back(fi);
    frame_done(ci, now);
  }

  void frame_done(std::uint32_t ci, steady::time_point now) {
    ++res.frames_answered;
    --conn_inflight[ci];
    on_done(ci, now);
  }

  // One operation's answer: counted (unless it was given up on) and learned from.
  void account(std::uint32_t si, const io::response& a, steady::time_point now) {
    slot& s = slots[si];
    const auto ci = s.conn;
    if (!s.abandoned) {
      --pending_answers;
      const auto lat = micros(now - s.intended);
      window.record(lat);
      ++cur.answered;
      if (soak_on) {
        soak_hist.record(lat);
        ++soak_answered;
        ++(a.ok() ? soak_ok : soak_errors);
      }
      auto& op = res.by_op[std::min<std::size_t>(static_cast<std::size_t>(s.op), opcode_slots - 1)];
      op.latency.record(lat);
      const bool ok = a.ok();
      const bool refusal = !ok && is_refusal(a.code);
      if (ok) {
        acknowledged(ci);
        ++cur.ok;
        ++res.ok;
        ++op.ok;
      } else {
        ++cur.errors;
        ++res.errors;
        res.refused += refusal;
        ++op.errors;
        ++res.errors_by_code[std::min<std::size_t>(static_cast<std::size_t>(a.code), run_result::code_slots - 1)];
      }
      if (s.step >= 0) {
        auto& st = res.steps[static_cast<std::size_t>(s.step)];
        st.latency.record(lat);
        (ok ? st.ok : refusal ? st.refused : st.failed)++;
        st.last_answer_s = secs(now - load_start);
        --step_outstanding[static_cast<std::size_t>(s.step)];
      }
      learn(s, a);
    }
    release_slot(si);
  }

  void on_done(std::uint32_t ci, steady::time_point now) {
    if (closed_loop) {
      if (!stopping && conns[ci]->open())
        send(ci, now, -1, w.batch);
      return;
    }
    auto& q = backlog[ci];
    if (!q.empty() && conn_inflight[ci] < w.depth && conns[ci]->open()) {
      const auto d = q.front();
      q.pop_front();
      backlog_total -= d.ops;
      send(ci, d.intended, d.step, d.ops);
    }
  }

  // Gives up on everything not answered: counted unanswered, and recorded in
  // its step's latencies at its wait so far (a lower bound).
  void abandon_all(steady::time_point now) {
    auto give_up = [&](std::int32_t step, steady::time_point intended) {
      ++res.unanswered;
      if (step < 0)
        return;
      auto& st = res.steps[static_cast<std::size_t>(step)];
      ++st.unanswered;
      st.latency.record(micros(now - intended));
      --step_outstanding[static_cast<std::size_t>(step)];
    };
    for (auto& s : slots)
      if (s.in_use && !s.abandoned) {
        s.abandoned = true;
        --pending_answers;
        give_up(s.step, s.intended);
      }
    for (auto& q : backlog) {
      for (const auto& d : q) {
        res.never_sent += d.ops;
        for (std::uint32_t i = 0; i < d.ops; ++i)
          give_up(d.step, d.intended);
      }
      q.clear();
    }
    backlog_total = 0;
  }

  // -- time -------------------------------------------------------------------------

  void print_second(const second_point& p) {
    const double achieved = static_cast<double>(p.answered) / p.dur_s;
    const double offered = static_cast<double>(p.offered) / p.dur_s;
    char step[24] = "";
    if (!closed_loop)
      std::snprintf(step, sizeof step, p.step >= 0 ? "step %-3d" : "drain   ", p.step + 1);
    std::printf("%7.1fs %s %s %8.0f/s  achieved %8.0f/s  errors %6llu  p50 %7.2f  p99 %8.2f  p99.9 %8.2f ms  "
                "in flight %6llu  backlog %7llu%s\n",
                p.t_s, step, closed_loop ? "sent" : "offered", offered, achieved,
                static_cast<unsigned long long>(p.errors), ms(p.latency.p50_us), ms(p.latency.p99_us),
                ms(p.latency.p999_us), static_cast<unsigned long long>(p.in_flight),
                static_cast<unsigned long long>(p.backlog), p.backlog > 0 ? "  (behind)" : "");
    std::fflush(stdout);
  }

  void roll_second(steady::time_point end, bool print = true) {
    cur.t_s = secs(end - load_start);
    cur.dur_s = std::max(secs(end - last_tick), 1e-6);
    cur.latency = window.roll();
    cur.in_flight = pending_answers;
    cur.backlog = backlog_total;
    if (closed_loop)
      cur.offered = cur.sent;
    res.series.push_back(cur);
    if (print)
      print_second(cur);
    cur = second_point{};
    cur.step = cur_step;
    last_tick = end;
    next_tick = end + std::chrono::seconds(1);
  }

  // -- soak ---------------------------------------------------------------------------

  void print_soak(std::size_t i) {
    if (soak_shown[i])
      return;
    soak_shown[i] = 1;
    const auto& p = res.soak[i];
    char rss[64];
    if (p.rss_known)
      std::snprintf(rss, sizeof rss, "rss %9.1f MiB  members active %s", static_cast<double>(p.rss_bytes) / 1048576.0,
                    grouped(p.members_active).c_str());
    else
      std::snprintf(rss, sizeof rss, "rss n/a");
    std::printf("soak %8.1fs  answered %9llu  %8.0f/s  ok %9llu  errors %7llu  p50 %7.2f  p99 %8.2f  p99.9 %8.2f  "
                "max %8.2f ms  %s\n",
                p.t_s, static_cast<unsigned long long>(p.answered), static_cast<double>(p.answered) / p.dur_s,
                static_cast<unsigned long long>(p.ok), static_cast<unsigned long long>(p.errors), ms(p.p50_us),
                ms(p.p99_us), ms(p.p999_us), ms(p.max_us), rss);
    std::fflush(stdout);
  }

  // The stats answer of point i: its RSS (and active members), then its line.
  // A refusal (the key may not read stats) is said once and no more are sent:
  // every refusal is a warning in the engine's log. Any other error leaves
  // this point's RSS unknown only.
  void soak_stats_answered(std::size_t i, const io::response& a) {
    --soak_asked;
    auto& p = res.soak[i];
    if (a.ok()) {
      for (const auto& [name, value] : a.stats) {
        if (name == "process_resident_anon_bytes")
          p.rss_bytes = value;
        else if (name == "members_active")
          p.members_active = value;
      }
      p.rss_known = p.rss_bytes > 0;  // 0: the engine could not read its own (no /proc)
      if (!p.rss_known)
        p.members_active = 0;
    } else if (a.code == errc::not_authorized && !res.soak_rss_refused) {
      res.soak_rss_refused = true;
      std::printf("soak: the engine refused `stats` (%s: %s): RSS is n/a for this run; a key of scope admin or read "
                  "can read it\n",
                  std::string(to_string(a.code)).c_str(), a.message.c_str());
    }
    print_soak(i);
  }

  // Closes the soak interval ending at `end` and asks the engine for its RSS
  // on a load connection. The stats request is not load: it takes no slot,
  // is not counted in the connection's depth nor in pending_answers (closed
  // loop sends nothing when it is answered), and its latency is not recorded.
  void roll_soak(steady::time_point end) {
    soak_point p;
    p.t_s = secs(end - load_start);
    p.dur_s = std::max(secs(end - last_soak), 1e-6);
    p.answered = soak_answered;
    p.ok = soak_ok;
    p.errors = soak_errors;
    p.p50_us = soak_hist.percentile(0.5);
    p.p99_us = soak_hist.percentile(0.99);
    p.p999_us = soak_hist.percentile(0.999);
    p.max_us = soak_hist.max();
    soak_hist.reset();
    soak_answered = soak_ok = soak_errors = 0;
    last_soak = end;
    ++soak_rolled;
    next_soak = load_start + from_secs(static_cast<double>(soak_rolled + 1) * w.soak_interval_s);
    const auto i = res.soak.size();
    res.soak.push_back(p);
    soak_shown.push_back(0);
    std::uint32_t ci = 0;
    while (ci < conns.size() && !conns[ci]->open())
      ++ci;
    if (res.soak_rss_refused || ci == conns.size()) {
      print_soak(i);
      return;
    }
    io::request r;
    r.op = opcode::stats;
    ++soak_asked;
    conns[ci]->submit(std::move(r), [this, i](const io::response& a) { soak_stats_answered(i, a); });
  }

  // Runs the io_context until `until`, rolling per-second windows (and soak
  // intervals) on the way.
  void run_until(steady::time_point until) {
    for (;;) {
      auto now = steady::now();
      while (now >= next_tick)
        roll_second(next_tick);
      while (soak_open && now >= next_soak)
        roll_soak(next_soak);
      if (now >= until || failures > 0 || interrupted)
        return;
      if (ctx.stopped())
        ctx.restart();
      ctx.run_until(std::min({until, next_tick, soak_open ? next_soak : next_tick}));
    }
  }

  void start_load() {
    load_start = steady::now();
    last_tick = load_start;
    next_tick = load_start + std::chrono::seconds(1);
    res.started_at = utc_now();
    cur = second_point{};
    if (soak_on) {
      soak_open = true;
      last_soak = load_start;
      next_soak = load_start + from_secs(w.soak_interval_s);
      std::printf("soak: a line every %g s (latency over the interval; the engine's RssAnon from `stats`), "
                  "warm-up %g s, RSS growth after it at most %g%%\n",
                  w.soak_interval_s, w.soak_warmup(), w.soak_rss_growth_max_pct);
    }
  }

  // The engine counts a batch frame's elements against its in-flight limit
  // per connection and refuses a frame that would pass it whole
  // (overloaded). Its setting is not known here: say so when depth x batch
  // passes its default.
  void note_engine_inflight() const {
    const auto per_connection = std::uint64_t{w.depth} * w.batch;
    if (per_connection <= limits::engine_inflight_per_connection_default)
      return;
    std::printf("note: depth %u x batch %u = %s operations in flight per connection, above the engine's default "
                "inflight_per_connection_max (%u): unless the engine allows more, frames past it are refused "
                "(overloaded)\n",
                w.depth, w.batch, grouped(per_connection).c_str(), limits::engine_inflight_per_connection_default);
  }

  // -- closed loop ------------------------------------------------------------------

  void drive_closed() {
    closed_loop = true;
    std::printf("run: closed loop, %u connections x depth %u%s, %.0f s, mix %s, members %s (%s), seed %llu\n",
                w.connections, w.depth, depth_unit_text(w).c_str(), w.duration_s, mix_text(w.mix).c_str(),
                grouped(w.members).c_str(), distribution_text().c_str(), static_cast<unsigned long long>(w.seed));
    note_engine_inflight();
    start_load();
    const auto end = load_start + from_secs(w.duration_s);
    for (std::uint32_t ci = 0; ci < conns.size(); ++ci)
      for (std::uint32_t d = 0; d < w.depth; ++d)
        send(ci, steady::now(), -1, w.batch);
    run_until(end);
    res.load_s = secs(steady::now() - load_start);
    stopping = true;
  }

  // -- open loop --------------------------------------------------------------------

  void begin_step(std::size_t k, const step& sp) {
    step_result r;
    r.rate_per_s = sp.rate_per_s;
    r.duration_s = sp.duration_s;
    step_start = steady::now();
    r.start_s = secs(step_start - load_start);
    res.steps.push_back(std::move(r));
    step_outstanding.push_back(0);
    step_rate = sp.rate_per_s;
    step_total = static_cast<std::uint64_t>(std::ceil(sp.rate_per_s * sp.duration_s - 1e-9));
    step_scheduled = 0;
    cur_step = static_cast<int>(k);
    cur.step = cur_step;
  }

  // Every frame of the step due by `now`, on its intended schedule. Frame j
  // holds the step's operations j x batch ... (j + 1) x batch - 1 (fewer at
  // its end) and is due when its first one is, at j x batch / rate: frames
  // go out rate / batch a second, operations rate a second. With batch 1,
  // one operation a frame, each at its own time.
  void schedule_due(steady::time_point now) {
    const auto k = static_cast<std::int32_t>(res.steps.size() - 1);
    auto& st = res.steps.back();
    const std::uint64_t n = w.batch;
    const auto frames_due = static_cast<std::uint64_t>(secs(now - step_start) * step_rate / static_cast<double>(n)) + 1;
    const auto due = std::min(step_total, frames_due * n);
    while (step_scheduled < due) {
      const auto ops = static_cast<std::uint32_t>(std::min(n, step_total - step_scheduled));
      const auto intended = step_start + from_secs(static_cast<double>(step_scheduled) / step_rate);
      cur.offered += ops;
      res.offered += ops;
      st.offered += ops;
      step_outstanding[static_cast<std::size_t>(k)] += ops;
      const auto ci = static_cast<std::uint32_t>(round_robin++ % conns.size());
      if (conn_inflight[ci] < w.depth && backlog[ci].empty()) {
        send(ci, intended, k, ops);
      } else {
        backlog[ci].push_back({intended, k, ops});
        backlog_total += ops;
      }
      step_scheduled += ops;
    }
  }

  void run_step() {
    const auto end = step_start + from_secs(res.steps.back().duration_s);
    // Wake when the next request is due, but at most every 500 µs: sends go
    // out in small bursts, each with its own intended time.
    constexpr auto tick = std::chrono::microseconds(500);
    while (failures == 0 && !interrupted) {
      auto now = steady::now();
      if (step_scheduled < step_total)
        schedule_due(now);
      if (now >= end && step_scheduled >= step_total)
        return;
      const auto next_due = step_start + from_secs(static_cast<double>(step_scheduled) / step_rate);
      run_until(std::min(end, std::max(next_due, now + tick)));
    }
  }

  // Waits for a step's answers (at most drain_s), then gives up on the rest.
  void drain_step(std::size_t k) {
    cur_step = -1;
    cur.step = -1;
    const auto deadline = steady::now() + from_secs(w.obj.drain_s);
    while (step_outstanding[k] > 0 && failures == 0 && !interrupted && steady::now() < deadline)
      run_until(std::min(deadline, steady::now() + std::chrono::milliseconds(10)));
    abandon_all(steady::now());
  }

  void print_step(std::size_t k) {
    const auto& s = res.steps[k];
    std::printf("step %zu/%zu  %g/s x %g s: offered %.0f/s  achieved %.0f/s (%.1f%%)  p50 %.3f  p%g %.3f  max %.3f ms  "
                "error rate %.2f%% (%llu failed, %llu unanswered; %llu refused)  %s%s\n",
                k + 1, res.steps_planned, s.rate_per_s, s.duration_s, s.offered_per_s, s.achieved_per_s,
                s.offered_per_s > 0 ? 100.0 * s.achieved_per_s / s.offered_per_s : 0.0,
                ms(s.latency.percentile(0.5)), w.obj.percentile, ms(s.objective_latency_us), ms(s.latency.max()),
                s.error_rate * 100, static_cast<unsigned long long>(s.failed),
                static_cast<unsigned long long>(s.unanswered), static_cast<unsigned long long>(s.refused),
                s.passed ? "PASS" : "FAIL: ", s.passed ? "" : s.verdict.c_str());
    std::fflush(stdout);
  }

  void drive_open() {
    const auto plan = w.sched.expand(w.duration_s);
    res.steps_planned = plan.size();
    res.steps.reserve(plan.size());
    const bool ramp = w.mode == run_mode::ramp;
    std::printf("run: %s, %s, %u connections (at most %u%s in flight each), mix %s, members %s (%s), seed %llu\n",
                ramp ? "ramp" : "open loop", schedule_text(w).c_str(), w.connections, w.depth,
                depth_unit_text(w).c_str(), mix_text(w.mix).c_str(), grouped(w.members).c_str(),
                distribution_text().c_str(), static_cast<unsigned long long>(w.seed));
    note_engine_inflight();
    if (ramp || w.has_objective)
      std::printf("objective: %s, error rate <= %g%% (failed + unanswered%s), achieved >= %g%% of offered%s\n",
                  w.obj.latency_text().c_str(), w.obj.error_rate_max * 100,
                  w.obj.count_refusals ? " + refused" : "", (1 - w.obj.rate_tolerance) * 100,
                  ramp ? (", stop after " + std::to_string(w.obj.failures_max) + " failing step(s)").c_str() : "");
    start_load();
    std::uint32_t failed = 0;
    for (std::size_t k = 0; k < plan.size() && failures == 0 && !interrupted; ++k) {
      begin_step(k, plan[k]);
      run_step();
      if (interrupted)  // the step ran this long
        res.steps[k].duration_s = std::min(res.steps[k].duration_s, secs(steady::now() - step_start));
      if (!ramp || interrupted)  // an interrupted step is not judged
        continue;
      drain_step(k);
      judge(res.steps[k], w.obj);
      print_step(k);
      if (!res.steps[k].passed && ++failed >= w.obj.failures_max) {
        res.ramp_stopped = k + 1 < plan.size();
        break;
      }
    }
    res.load_s = secs(steady::now() - load_start);
    cur_step = -1;
    cur.step = -1;
  }

  std::string distribution_text() const {
    if (w.distribution == member_distribution::uniform)
      return "uniform";
    char buf[64];
    std::snprintf(buf, sizeof buf, "zipf s=%g%s", w.zipf_s, w.scatter ? ", scattered" : "");
    return buf;
  }

  // -- the end ------------------------------------------------------------------------

  void finish() {
    // Wait for what is in flight or due (bounded), so every request offered is
    // accounted for; backlogged ones are still sent as connections free up.
    if (interrupted) {
      res.interrupted = true;
      std::printf("interrupted: waiting at most %g s for the answers, then the summary\n", w.obj.drain_s);
    }
    interrupted = 0;  // a second Ctrl-C kills (SIG_DFL); the drain below runs
    soak_open = false;  // the drain makes no soak points; the last interval's stats answer is awaited
    const auto deadline = steady::now() + from_secs(w.obj.drain_s);
    while (pending_answers + backlog_total + soak_asked > 0 && failures == 0 && steady::now() < deadline)
      run_until(std::min(deadline, steady::now() + std::chrono::milliseconds(10)));
    for (std::size_t i = 0; i < res.soak.size(); ++i)
      print_soak(i);  // those whose stats never came: rss n/a
    if (soak_on)
      res.soak_judgement = judge_soak(res.soak, w.soak_warmup(), w.soak_rss_growth_max_pct);
    const auto now = steady::now();
    abandon_all(now);
    if (cur.answered + cur.sent + cur.offered > 0 || res.series.empty())
      roll_second(now, false);
    else
      window.roll();
    res.latency = window.total();
    if (closed_loop)
      res.offered = res.sent;
    if (w.mode == run_mode::open && w.has_objective)
      for (auto& s : res.steps)
        judge(s, w.obj);
    double best = -1;
    for (std::size_t k = 0; k < res.steps.size(); ++k)
      if (res.steps[k].judged && res.steps[k].passed && res.steps[k].rate_per_s > best) {
        best = res.steps[k].rate_per_s;
        res.highest_passing_step = static_cast<int>(k);
      }
    sum_follow_counters();
    for (auto& c : conns)
      c->close();
    // Let the closes complete (handlers of the closed sockets).
    if (ctx.stopped())
      ctx.restart();
    ctx.poll();
  }

  int execute() {
    interrupted = 0;
    std::signal(SIGINT, on_sigint);
    if (!connect_all())
      return 2;
    if (w.enroll && !enroll())
      return 2;
    if (w.mode == run_mode::closed)
      drive_closed();
    else
      drive_open();
    finish();
    return failures > 0 || res.interrupted ? 1 : 0;
  }
};

driver::driver(workload w, target t) : p_(std::make_unique<impl>(std::move(w), std::move(t))) {}
driver::~driver() = default;
int driver::execute() { return p_->execute(); }
const run_result& driver::result() const noexcept { return p_->res; }
const workload& driver::work() const noexcept { return p_->w; }
const target& driver::where() const noexcept { return p_->t; }

} // namespace loyalty::loadgen
