// loyalty-loadgen: capacity testing for loyaltyd over its wire protocol.
// Enrolls members in bulk, then drives a mix of operations closed loop (as
// fast as answered, with a pipeline depth per connection), open loop on a
// schedule of rates (latency counts from each request's intended send time,
// so a stalled engine cannot hide its latency), or as a ramp that finds the
// highest rate meeting a latency objective. A workload file (TOML) describes
// all of it; flags override the file. Uses only the client library.
#include "io/client/cli_connection.hpp"
#include "loadgen/driver.hpp"
#include "loadgen/limits.hpp"
#include "loadgen/report.hpp"
#include "loadgen/workload.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace loyalty::loadgen;

namespace {

// The value of --workload, read before the flags are bound: the file's values
// become the flags' defaults, so a flag given overrides the file and one not
// given keeps it.
std::string workload_arg(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--")
      break;
    if ((a == "--workload" || a == "-w") && i + 1 < argc)
      return argv[i + 1];
    if (a.rfind("--workload=", 0) == 0)
      return a.substr(11);
  }
  return "";
}

// The command line for the report, with the API key's value left out.
std::string command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i > 0 && (std::string(argv[i - 1]) == "--key"))
      a = "(key)";
    else if (a.rfind("--key=", 0) == 0)
      a = "--key=(key)";
    if (a.find_first_of(" \"'$<>|&;*?()") != std::string::npos)
      a = "'" + a + "'";
    s += (i ? " " : "") + a;
  }
  return s;
}

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::size_t from = 0;
  while (from <= s.size()) {
    auto at = s.find(',', from);
    auto part = s.substr(from, at == std::string::npos ? std::string::npos : at - from);
    if (!part.empty())
      out.push_back(part);
    if (at == std::string::npos)
      break;
    from = at + 1;
  }
  return out;
}

constexpr const char* description =
  "loyalty-loadgen: capacity testing for loyaltyd.\n"
  "\n"
  "Enrolls members 1..N in batches (members that already exist count as done; a progress line shows rate and\n"
  "ETA), then sends a mix of operations for members drawn uniformly or by a Zipf law (a few hot members get\n"
  "most requests). Modes:\n"
  "  closed  keeps --depth requests in flight on each of --connections for --duration seconds.\n"
  "  open    sends on a schedule (--rate for --duration, --steps or --ramp), each request at its intended\n"
  "          time; latency counts from that time. A connection never has more than --depth in flight: the\n"
  "          rest wait in a backlog, still on the clock. With an --objective each step is judged, none stops.\n"
  "  ramp    open-loop steps of increasing rate (--ramp or the workload's schedule); after each step it waits\n"
  "          (at most --drain s) for the step's answers and judges it: the step passes when its percentile\n"
  "          meets --objective, its error rate (failed + unanswered) / offered <= --error-rate-max, and its\n"
  "          achieved rate (answers / max(step length, time to its last answer)) >= offered x (1 -\n"
  "          --rate-tolerance). Failed = answers with an error code other than the refusals a random workload\n"
  "          provokes on purpose (insufficient_points, out_of_stock, unknown_hold, unknown_txn,\n"
  "          already_reversed, negative_balance_limit, same_member, invalid_amount; --count-refusals counts\n"
  "          them too). A step's requests count by intended send time, late answers included. It stops after\n"
  "          --failures-max failing steps and reports the highest passing rate with every step's numbers.\n"
  "Every second it prints offered (or sent) and achieved rates side by side, errors, p50/p99/p99.9 and the\n"
  "backlog; at the end a summary. --json writes the summary with the per-second series and the steps;\n"
  "--report writes one self-contained HTML page (inline SVG charts, no script, no network).\n"
  "Soak (--soak-interval S, any mode): every S s of the load a `soak` line with the interval's answers, rate,\n"
  "ok/errors, p50/p99/p99.9/max (a histogram of the interval) and the engine's RssAnon in MiB, read by a\n"
  "`stats` request on a load connection (not counted as load; a key without `stats`, such as a brand key,\n"
  "gives \"rss n/a\" and a note). At the end a verdict: RSS at the first point at or after --soak-warmup vs the\n"
  "last point; \"flat\" when it grew by at most --soak-rss-growth-max percent, else \"GROWING\" (exit 3); with\n"
  "fewer than 2 points after the warm-up the run is too short to judge (no failure).\n"
  "\n"
  "A workload file (--workload, TOML; loadgen/README.md, config/examples/workload-*.toml) sets any of the\n"
  "values below; a flag given with a file overrides the file's value (the defaults shown are the file's when\n"
  "one is given). A mistake in the file is reported as FILE:LINE and exits 2. --rate, --steps or --ramp\n"
  "replace the file's schedule; given while the mode is closed (and no --mode), --rate/--steps switch to open\n"
  "and --ramp to ramp mode.\n"
  "Batch frames (--batch N > 1): each frame is a `batch` request of N operations drawn from the mix (every mix\n"
  "operation may be batched; a hold's capture or release rides in a later frame of its connection). --depth\n"
  "then counts frames in flight per connection; --rate and the schedules stay operations per second (frames are\n"
  "due rate/N a second; a step's last frame may hold fewer). The engine answers a frame with one result per\n"
  "operation: counts, errors by code and latency are per operation, each operation's latency running from its\n"
  "frame's send time (intended send time, open loop) to the frame's answer; a frame refused whole (overloaded,\n"
  "...) counts its error once per operation. Rates are operations per second; the summary, JSON and HTML add\n"
  "frames and frames per second. The engine counts each element against its in-flight limit per connection\n"
  "(inflight_per_connection_max, 8192 by default): keep depth x batch below it.\n"
  "Txn ids are 16 time-ordered bytes: send time in µs, connection index, counter (big-endian).\n"
  "A cluster (--connect with one or more of its nodes): a connection answered not_leader reconnects to the\n"
  "leader it names (none named, an election: after 100 ms to the next address), says hello and sends again,\n"
  "unchanged (same txn ids: what the old leader committed is answered as a replay), every request not answered\n"
  "yet; a dropped connection (a node killed) is replaced the same way, trying the addresses in turn. The\n"
  "summary counts not_leader answers followed, dropped connections, reconnects, requests resent, and each\n"
  "failover gap: from a failure to the next acknowledged (ok) answer on a connection that failed.\n"
  "Ctrl-C ends the load early: the answers are awaited (--drain), the summary and files are written.\n"
  "Exit: 0 ran to the end; 1 ended early (a connection gave up: no node served within --follow-patience of a\n"
  "failure; or Ctrl-C; what was measured is reported);\n"
  "2 a mistake in flags or workload file, cannot connect, enrollment failed, or a report cannot be written;\n"
  "3 ran to the end, but the soak verdict is GROWING (the engine's RSS grew beyond --soak-rss-growth-max).\n"
  "The seed (--seed, else from the clock) is printed first and with every failure: the same seed and\n"
  "workload draw the same sequence of members and operations from the mix; captures, releases and refunds\n"
  "follow earlier answers, so where they fall in it depends on timing.";

} // namespace

int main(int argc, char** argv) {
  const std::string path = workload_arg(argc, argv);
  workload w;
  if (!path.empty()) {
    std::vector<std::string> errors;
    auto loaded = load_workload(path, errors);
    if (!loaded) {
      for (const auto& e : errors)
        std::fprintf(stderr, "loadgen: %s\n", e.c_str());
      return 2;
    }
    w = std::move(*loaded);
  }

  target where;
  std::string host = "127.0.0.1";
  int port = 7411;
  std::vector<std::string> connect;
  double follow_patience_s = 10;
  loyalty::io::connection_options conn;
  std::string workload_flag, mode, mix, items, categories, skus, distribution, objective_text, ramp, steps;
  double rate = 0;
  bool skip_enroll = false, print_workload = false;
  std::string json, report;
  mode = std::string(to_string(w.mode));
  mix = mix_text(w.mix);
  items = range_text(w.items);
  distribution = w.distribution == member_distribution::zipf ? "zipf" : "uniform";
  objective_text = w.obj.latency_text();
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v)
      s += (s.empty() ? "" : ",") + x;
    return s;
  };
  categories = join(w.categories);
  skus = join(w.skus);

  CLI::App app{description};
  app.get_formatter()->column_width(34);
  app.add_option("--workload,-w", workload_flag, "workload file (TOML); flags given with it override its values");
  app.add_flag("--print-workload", print_workload,
               "print the effective workload (file and flags) as a workload file, and exit without connecting");
  auto* o_host = app.add_option("--host", host, "engine address (one engine; see --connect)")->capture_default_str();
  auto* o_port =
    app.add_option("--port", port, "engine port (one engine; see --connect)")->capture_default_str()->check(CLI::Range(1, 65535));
  app.add_option("--connect", connect,
                 "HOST:PORT of an engine, or of each node of a cluster (repeat the flag or separate by commas; "
                 "instead of --host/--port): connection i starts at the (i mod n)-th; each follows not_leader to "
                 "the leader and replaces a dropped connection, sending again what had no answer")
    ->delimiter(',')
    ->excludes(o_host)
    ->excludes(o_port);
  app.add_option("--follow-patience", follow_patience_s,
                 "seconds a connection keeps looking for a serving node after a failure (a not_leader answer, a "
                 "dropped connection) before it gives up and the run ends early (exit 1)")
    ->capture_default_str()->check(CLI::Range(0.1, limits::follow_patience_s_max));
  app.add_option("--mode", mode, "closed, open or ramp (see above)")
    ->capture_default_str()->check(CLI::IsMember({"closed", "open", "ramp"}));
  app.add_option("--seed", w.seed, "random seed (0: from the clock; printed)")->capture_default_str();
  app.add_option("--duration", w.duration_s,
                 "seconds of load in closed mode, and of a one-rate schedule (--rate, or rate_per_s in the file)")
    ->capture_default_str()->check(CLI::Range(0.001, limits::duration_s_max));
  // Members
  app.add_option("--members", w.members, "member ids 1..N")
    ->capture_default_str()->check(CLI::Range(std::uint64_t{1}, limits::members_max));
  app.add_option("--distribution", distribution,
                 "which members requests address: uniform, or zipf (rank k gets a share proportional to k^-s; "
                 "rank k is member k unless --scatter)")
    ->capture_default_str()->check(CLI::IsMember({"uniform", "zipf"}));
  auto* zipf_s = app.add_option("--zipf-s", w.zipf_s, "Zipf exponent s > 0 (implies --distribution zipf)")
                   ->capture_default_str()->check(CLI::Range(1e-6, 100.0));
  app.add_option("--scatter", w.scatter,
                 "true: spread the Zipf ranks over the member ids by a fixed permutation of the seed, so the hot "
                 "members are not ids 1, 2, 3...")
    ->capture_default_str();
  app.add_option("--brand", w.brand, "brand code of enrolls and earns")->capture_default_str();
  app.add_flag("--skip-enroll", skip_enroll, "do not enroll first (members already exist)");
  app.add_option("--enroll-batch", w.enroll_batch, "enrolls per batch frame")
    ->capture_default_str()->check(CLI::Range(std::uint32_t{1}, limits::batch_ops_max));
  // Requests
  app.add_option("--mix", mix,
                 "operation mix in percent, adding up to 100: earn, redeem, event, hold (each answered hold is then "
                 "captured or released, half each), refund (half of an earlier earn of this run), reward "
                 "(redeem_reward of --reward), transfer, balance, history, partner_earn, partner_burn (at --partner)")
    ->capture_default_str();
  app.add_option("--items", items, "line items per earn basket: N or MIN-MAX (0: an amount only)")
    ->capture_default_str();
  app.add_option("--categories", categories, "categories the items are drawn from, comma-separated")
    ->capture_default_str();
  app.add_option("--skus", skus,
                 "skus the items are drawn from, comma-separated (none: sku-0 .. sku-N-1, N = the workload's "
                 "sku_count, 5000 by default)")
    ->capture_default_str();
  app.add_option("--currency", w.currency, "currency of earns")->capture_default_str();
  app.add_option("--channel", w.channel, "channel of earns and events (empty: none)");
  app.add_option("--event", w.event, "event kind of `event` operations")->capture_default_str();
  app.add_option("--reward", w.reward, "reward code of `reward` operations")->capture_default_str();
  app.add_option("--partner", w.partner, "partner code of partner_earn and partner_burn")->capture_default_str();
  app.add_option("--history-limit", w.history_limit, "entries a `history` read asks for (a page; the engine's most is 100)")
    ->capture_default_str()->check(CLI::Range(1, 100));
  // Connections
  app.add_option("--connections", w.connections, "TCP connections")
    ->capture_default_str()->check(CLI::Range(std::uint32_t{1}, limits::connections_max));
  app.add_option("--depth", w.depth,
                 "requests in flight per connection (closed: exactly; open, ramp: at most): operations, or batch "
                 "frames with --batch > 1")
    ->capture_default_str()->check(CLI::Range(std::uint32_t{1}, limits::depth_max));
  app.add_option("--batch", w.batch,
                 "operations per frame: 1 sends each alone; N > 1 sends batch frames of N operations drawn from the "
                 "mix (see above)")
    ->capture_default_str()->check(CLI::Range(std::uint32_t{1}, limits::batch_ops_max));
  // Schedule
  auto* o_rate = app.add_option("--rate", rate, "open loop: requests per second for --duration seconds (operations, with --batch too)")
                   ->check(CLI::Range(1e-3, limits::rate_per_s_max));
  auto* o_steps = app.add_option("--steps", steps, "open loop steps RATE:SECONDS,RATE:SECONDS,... e.g. 2000:30,5000:60");
  auto* o_ramp = app.add_option("--ramp", ramp,
                                "ramp FROM:TO:STEP:SECONDS: rates FROM, FROM+STEP, ... up to TO, SECONDS each, e.g. "
                                "1000:20000:1000:10");
  o_rate->excludes(o_steps)->excludes(o_ramp);
  o_steps->excludes(o_ramp);
  // Objective
  auto* o_obj = app.add_option("--objective", objective_text,
                               "latency objective of a step: pPERCENTILE<=LATENCY with a unit us, ms or s, e.g. "
                               "p99<=10ms, p99.9<=50ms")
                  ->capture_default_str();
  auto* o_err = app.add_option("--error-rate-max", w.obj.error_rate_max,
                               "a passing step's (failed + unanswered) / offered is at most this")
                  ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  auto* o_ref = app.add_flag("--count-refusals", w.obj.count_refusals,
                             "count the expected refusals (insufficient_points ...) as errors in a step's error rate");
  auto* o_tol = app.add_option("--rate-tolerance", w.obj.rate_tolerance,
                               "a passing step achieves at least offered x (1 - this)")
                  ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  auto* o_fail = app.add_option("--failures-max", w.obj.failures_max, "ramp mode stops after this many failing steps")
                   ->capture_default_str()->check(CLI::Range(std::uint32_t{1}, limits::steps_max));
  app.add_option("--drain", w.obj.drain_s,
                 "seconds to wait for the answers of a ramp step, and of the run at its end; what is still "
                 "unanswered then counts as unanswered")
    ->capture_default_str()->check(CLI::Range(0.001, limits::drain_s_max));
  // Soak
  app.add_option("--soak-interval", w.soak_interval_s,
                 "soak mode: seconds between soak lines (latency over the interval, the engine's RSS); 0 = off")
    ->capture_default_str()->check(CLI::Range(0.0, limits::duration_s_max));
  app.add_option("--soak-warmup", w.soak_warmup_s,
                 "soak: seconds of load before RSS counts for the verdict (default: a quarter of the load's length, "
                 "rounded; the planned steps in open and ramp mode)")
    ->check(CLI::Range(0.0, limits::duration_s_max));
  app.add_option("--soak-rss-growth-max", w.soak_rss_growth_max_pct,
                 "soak: RSS growth from the first point after the warm-up to the last, in percent, beyond which the "
                 "verdict is GROWING (exit 3)")
    ->capture_default_str()->check(CLI::Range(0.0, limits::soak_rss_growth_max_pct_max));
  // Output
  app.add_option("--json", json, "write the summary as JSON to this file (with the per-second series and steps)");
  app.add_option("--report", report, "write a self-contained HTML report to this file");
  conn.add_to(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  conn.resolve();
  where.key = conn.key;
  where.tls = conn.tls;
  where.follow_patience = std::chrono::milliseconds(static_cast<std::int64_t>(follow_patience_s * 1000));

  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "loadgen: %s\n", why.c_str());
    return 2;
  };
  std::string err;
  if (connect.empty()) {
    where.addresses = {(host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port)};
  } else {
    where.addresses = connect;
    for (const auto& a : connect) {
      std::string h;
      std::uint16_t p = 0;
      if (!loyalty::io::split_address(a, h, p))
        return fail("--connect: \"" + a + "\" is not HOST:PORT (port 1..65535)");
    }
  }
  if (app.count("--mix") && !parse_mix(mix, w.mix, err))
    return fail("--mix: " + err);
  if (app.count("--items")) {
    if (!parse_range(items, w.items, err))
      return fail("--items: " + err);
    if (w.items.min < 0 || w.items.max > static_cast<std::int64_t>(limits::items_max))
      return fail("--items: between 0 and " + std::to_string(limits::items_max));
  }
  if (app.count("--categories"))
    w.categories = split_csv(categories);
  if (app.count("--skus"))
    w.skus = split_csv(skus);
  if (app.count("--distribution"))
    w.distribution = distribution == "zipf" ? member_distribution::zipf : member_distribution::uniform;
  else if (zipf_s->count())
    w.distribution = member_distribution::zipf;
  if (skip_enroll)
    w.enroll = false;

  bool schedule_flag = false;
  if (o_rate->count()) {
    w.sched = schedule{};
    w.sched.k = schedule::kind::rate;
    w.sched.rate_per_s = rate;
    schedule_flag = true;
  } else if (o_steps->count()) {
    w.sched = schedule{};
    w.sched.k = schedule::kind::steps;
    if (!parse_steps(steps, w.sched.steps, err))
      return fail("--steps: " + err);
    schedule_flag = true;
  } else if (o_ramp->count()) {
    w.sched = schedule{};
    w.sched.k = schedule::kind::ramp;
    if (!parse_ramp(ramp, w.sched.ramp, err))
      return fail("--ramp: " + err);
    schedule_flag = true;
  }
  if (app.count("--mode"))
    w.mode = mode == "open" ? run_mode::open : mode == "ramp" ? run_mode::ramp : run_mode::closed;
  else if (schedule_flag && w.mode == run_mode::closed)
    w.mode = o_ramp->count() ? run_mode::ramp : run_mode::open;
  if (o_obj->count() && !parse_objective(objective_text, w.obj, err))
    return fail("--objective: " + err);
  if (o_obj->count() || o_err->count() || o_ref->count() || o_tol->count() || o_fail->count())
    w.has_objective = true;
  if (auto problems = check_workload(w); !problems.empty()) {
    for (const auto& p : problems)
      std::fprintf(stderr, "loadgen: %s\n", p.c_str());
    return 2;
  }
  if (print_workload) {
    std::fputs(to_toml(w).c_str(), stdout);
    return 0;
  }
  if (w.seed == 0)
    w.seed = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count());
  std::printf("loyalty-loadgen seed %llu\n", static_cast<unsigned long long>(w.seed));
  std::fflush(stdout);

  const auto seed = w.seed;
  try {
    driver d(std::move(w), where);
    const int rc = d.execute();
    if (rc == 2) {
      std::fprintf(stderr, "loadgen: stopped before the load (seed %llu)\n", static_cast<unsigned long long>(seed));
      return 2;
    }
    run_context ctx{d.work(), d.where(), command_line(argc, argv)};
    print_summary(d.result(), ctx);
    bool written = true;
    if (!json.empty())
      written &= write_json(json, d.result(), ctx);
    if (!report.empty()) {
      written &= write_html(report, d.result(), ctx);
      if (written)
        std::printf("report written to %s\n", report.c_str());
    }
    if (rc != 0)
      std::fprintf(stderr, "loadgen: the run ended early (seed %llu)\n", static_cast<unsigned long long>(seed));
    if (!written)
      return 2;
    // A run that ended early keeps exit 1: its RSS verdict is over a shorter run than asked for.
    const auto& soak = d.result().soak_judgement;
    if (rc == 0 && soak.judged && soak.growing) {
      std::fflush(stdout);  // the summary first, then the reason for the exit code
      std::fprintf(stderr, "loadgen: soak verdict GROWING: the engine's RSS grew %.2f%% after the warm-up, more than "
                           "%g%% (seed %llu)\n",
                   soak.growth_pct, soak.bound_pct, static_cast<unsigned long long>(seed));
      return 3;
    }
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loadgen: %s (seed %llu)\n", e.what(), static_cast<unsigned long long>(seed));
    return 2;
  }
}
