// Console summary, JSON summary and the HTML report of a run.
#include "loadgen/report.hpp"

#include "loadgen/limits.hpp"

#include "io/wire/json.hpp"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>

namespace loyalty::loadgen {

namespace {

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  int n = std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  if (n < 0)
    return {};
  if (static_cast<std::size_t>(n) < sizeof buf)
    return std::string(buf, static_cast<std::size_t>(n));
  std::string big(static_cast<std::size_t>(n) + 1, '\0');
  va_start(ap, f);
  std::vsnprintf(big.data(), big.size(), f, ap);
  va_end(ap);
  big.resize(static_cast<std::size_t>(n));
  return big;
}

double ms(std::uint64_t us) { return static_cast<double>(us) / 1000.0; }

double per_s(std::uint64_t n, double s) { return static_cast<double>(n) / std::max(s, 1e-9); }

std::string grouped(std::uint64_t n) {
  auto s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

std::string code_name(std::size_t i) {
  if (i == run_result::code_slots - 1)
    return "other";
  return std::string(to_string(static_cast<errc>(i)));
}

std::string op_name(std::size_t i) { return io::to_string(static_cast<io::opcode>(i)); }

std::string distribution_text(const workload& w) {
  if (w.distribution == member_distribution::uniform)
    return "uniform";
  return fmt("zipf, s = %g%s", w.zipf_s, w.scatter ? ", hot members scattered over the ids" : "");
}

std::string objective_text(const objective& o) {
  return fmt("%s, error rate <= %g%% (failed + unanswered%s), achieved >= %g%% of offered", o.latency_text().c_str(),
             o.error_rate_max * 100, o.count_refusals ? " + refused" : "", (1 - o.rate_tolerance) * 100);
}

// Following the leader, one line: the gaps, then what the connections did.
std::string failover_text(const failover_result& f) {
  std::string gaps;
  if (f.failovers == 0) {
    gaps = "no failover gap";
  } else {
    gaps = fmt("%llu failover gap(s), max %.0f ms", static_cast<unsigned long long>(f.failovers), f.gap_max_ms);
    if (!f.gaps_ms.empty() && f.gaps_ms.size() <= 5) {
      gaps += " (";
      for (std::size_t i = 0; i < f.gaps_ms.size(); ++i)
        gaps += fmt("%s%.0f", i ? ", " : "", f.gaps_ms[i]);
      gaps += " ms)";
    }
    if (f.recovered < f.failovers)
      gaps += "; the last had no acknowledgement before the end";
  }
  return gaps + fmt("; %llu not_leader answer(s) followed, %llu connection(s) dropped, %llu reconnect(s), %llu "
                    "request(s) resent",
                    static_cast<unsigned long long>(f.not_leader), static_cast<unsigned long long>(f.dropped),
                    static_cast<unsigned long long>(f.reconnects), static_cast<unsigned long long>(f.resent));
}

bool judged_run(const run_result& r) {
  return std::any_of(r.steps.begin(), r.steps.end(), [](const step_result& s) { return s.judged; });
}

std::string latency_text(std::uint64_t us) {
  if (us < 1000)
    return fmt("%llu µs", static_cast<unsigned long long>(us));
  if (us < 1'000'000)
    return fmt("%.3g ms", ms(us));
  return fmt("%.3g s", static_cast<double>(us) / 1e6);
}

} // namespace

// -- console ----------------------------------------------------------------------------

namespace {

double mib(std::uint64_t b) { return static_cast<double>(b) / 1048576.0; }

// The soak verdict, one line (the last of the summary, where a CI log shows it).
void print_soak_verdict(const run_result& r, const run_context& c) {
  if (!(c.w.soak_interval_s > 0))
    return;
  const auto& v = r.soak_judgement;
  if (!v.judged) {
    std::printf("  soak verdict   not judged: %s (%zu point(s), warm-up %g s)\n", v.why_not.c_str(), r.soak.size(),
                v.warmup_s);
    return;
  }
  std::printf("  soak verdict   %s: RSS %.1f MiB at %.0f s -> %.1f MiB at %.0f s (%+.1f MiB, %+.2f%%; bound %g%%), "
              "max %.1f MiB over %zu points after the %g s warm-up\n",
              v.growing ? "GROWING" : "flat", mib(v.base_bytes), v.base_t_s, mib(v.last_bytes), v.last_t_s,
              mib(v.last_bytes) - mib(v.base_bytes), v.growth_pct, v.bound_pct, mib(v.max_bytes), v.points,
              v.warmup_s);
}

void print_steps(const run_result& r, const run_context& c);

} // namespace

void print_summary(const run_result& r, const run_context& c) {
  const auto& w = c.w;
  const auto& h = r.latency;
  std::printf("\nsummary (seed %llu)\n", static_cast<unsigned long long>(r.seed));
  std::printf("  workload       %s%s, mode %s\n", w.name.c_str(), w.source.empty() ? "" : (" (" + w.source + ")").c_str(),
              std::string(to_string(w.mode)).c_str());
  std::printf("  engine         %s, load started %s\n", c.where.address().c_str(), r.started_at.c_str());
  std::printf("  duration       %.2f s%s\n", r.load_s, r.interrupted ? " (interrupted: Ctrl-C)" : "");
  if (w.mode == run_mode::closed)
    std::printf("  sent           %.0f req/s (%s sent; closed loop: as fast as answered)\n", per_s(r.sent, r.load_s),
                grouped(r.sent).c_str());
  else
    std::printf("  offered        %.0f req/s (%s scheduled%s)\n", per_s(r.offered, r.load_s), grouped(r.offered).c_str(),
                r.never_sent ? (", " + grouped(r.never_sent) + " never sent: the engine fell behind").c_str()
                             : ", all sent");
  std::printf("  achieved       %.0f answers/s, %.0f ok/s (%s ok, %s errors of which %s expected refusals, %s "
              "unanswered)\n",
              per_s(r.ok + r.errors, r.load_s), per_s(r.ok, r.load_s), grouped(r.ok).c_str(),
              grouped(r.errors).c_str(), grouped(r.refused).c_str(), grouped(r.unanswered).c_str());
  if (w.batch > 1)
    std::printf("  batch frames   %u operations a frame: %s frames sent, %s answered, %.0f frames/s answered\n",
                w.batch, grouped(r.frames_sent).c_str(), grouped(r.frames_answered).c_str(),
                per_s(r.frames_answered, r.load_s));
  for (std::size_t i = 0; i < r.errors_by_code.size(); ++i)
    if (r.errors_by_code[i])
      std::printf("  error %-22s %llu%s\n", code_name(i).c_str(), static_cast<unsigned long long>(r.errors_by_code[i]),
                  is_refusal(static_cast<errc>(i)) ? " (refusal)" : "");
  for (std::size_t i = 0; i < r.by_op.size(); ++i) {
    const auto& t = r.by_op[i];
    if (t.ok + t.errors)
      std::printf("  op %-20s %10llu ok %8llu errors  p99 %.3f ms\n", op_name(i).c_str(),
                  static_cast<unsigned long long>(t.ok), static_cast<unsigned long long>(t.errors),
                  ms(t.latency.percentile(0.99)));
  }
  std::printf("  latency ms     p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", ms(h.percentile(0.5)),
              ms(h.percentile(0.9)), ms(h.percentile(0.99)), ms(h.percentile(0.999)), ms(h.max()));
  if (r.failover.any())
    std::printf("  failover       %s\n", failover_text(r.failover).c_str());
  print_steps(r, c);
  print_soak_verdict(r, c);
}

namespace {

void print_steps(const run_result& r, const run_context& c) {
  const auto& w = c.w;
  if (r.steps.empty())
    return;
  const bool judged = judged_run(r);
  std::printf("  steps          %zu of %zu run%s\n", r.steps.size(), r.steps_planned,
              r.ramp_stopped ? fmt(" (stopped after %u failing)", w.obj.failures_max).c_str() : "");
  std::printf("    %4s %10s %10s %10s %8s %9s %9s %9s %9s %8s %8s  %s\n", "step", "rate/s", "offered/s", "achieved/s",
              "err.rate", "p50 ms", "p99 ms", "p99.9 ms", "refused", "failed", "unansw.", judged ? "verdict" : "");
  for (std::size_t k = 0; k < r.steps.size(); ++k) {
    auto s = r.steps[k];
    if (!s.judged)
      judge(s, w.obj);  // for the rates only; the verdict is not shown
    std::printf("    %4zu %10g %10.0f %10.0f %7.2f%% %9.3f %9.3f %9.3f %9llu %8llu %8llu  %s\n", k + 1, s.rate_per_s,
                s.offered_per_s, s.achieved_per_s, s.error_rate * 100, ms(s.latency.percentile(0.5)),
                ms(s.latency.percentile(0.99)), ms(s.latency.percentile(0.999)),
                static_cast<unsigned long long>(s.refused), static_cast<unsigned long long>(s.failed),
                static_cast<unsigned long long>(s.unanswered),
                r.steps[k].judged ? (r.steps[k].passed ? "pass" : ("FAIL: " + r.steps[k].verdict).c_str()) : "");
  }
  if (judged) {
    if (r.highest_passing_step >= 0)
      std::printf("  highest passing rate  %.0f/s (step %d; objective %s)\n",
                  r.steps[static_cast<std::size_t>(r.highest_passing_step)].rate_per_s, r.highest_passing_step + 1,
                  objective_text(w.obj).c_str());
    else
      std::printf("  highest passing rate  none: no step met the objective (%s)\n", objective_text(w.obj).c_str());
  }
}

} // namespace

// -- JSON ---------------------------------------------------------------------------------

namespace {

std::string json_str(std::string_view s) { return io::quoted(s); }

std::string json_num(double v) {
  if (!std::isfinite(v))
    return "null";
  if (v == std::floor(v) && std::fabs(v) < 9e15)
    return std::to_string(static_cast<long long>(v));
  return fmt("%.6g", v);
}

std::string json_latency(const latency_summary& l) {
  return fmt("\"p50_us\": %llu, \"p90_us\": %llu, \"p99_us\": %llu, \"p999_us\": %llu, \"max_us\": %llu",
             static_cast<unsigned long long>(l.p50_us), static_cast<unsigned long long>(l.p90_us),
             static_cast<unsigned long long>(l.p99_us), static_cast<unsigned long long>(l.p999_us),
             static_cast<unsigned long long>(l.max_us));
}

} // namespace

std::string json_summary(const run_result& r, const run_context& c) {
  const auto& w = c.w;
  const auto& h = r.latency;
  std::ostringstream f;
  const double thr = per_s(r.ok, r.load_s);
  f << "{\n  \"seed\": " << r.seed << ",\n  \"mode\": " << json_str(to_string(w.mode))
    << ",\n  \"workload\": {\"name\": " << json_str(w.name) << ", \"source\": " << json_str(w.source)
    << ", \"distribution\": " << json_str(w.distribution == member_distribution::zipf ? "zipf" : "uniform")
    << ", \"zipf_s\": " << (w.distribution == member_distribution::zipf ? json_num(w.zipf_s) : "null")
    << ", \"scatter\": " << (w.scatter ? "true" : "false") << ", \"items\": " << json_str(range_text(w.items))
    << ", \"schedule\": " << json_str(schedule_text(w)) << "}"
    << ",\n  \"engine\": " << json_str(c.where.address()) << ",\n  \"started_at\": " << json_str(r.started_at)
    << ",\n  \"connections\": " << w.connections << ",\n  \"depth\": " << w.depth << ",\n  \"batch\": " << w.batch
    << ",\n  \"members\": " << w.members
    << ",\n  \"mix\": " << json_str(mix_text(w.mix)) << ",\n  \"enroll_seconds\": " << json_num(r.enroll_s)
    << ",\n  \"enrolled\": " << r.enrolled << ",\n  \"duration_seconds\": " << json_num(r.load_s)
    << ",\n  \"offered_per_second\": " << json_num(per_s(r.offered, r.load_s))
    << ",\n  \"achieved_per_second\": " << json_num(per_s(r.ok + r.errors, r.load_s))
    << ",\n  \"achieved_ok_per_second\": " << json_num(thr) << ",\n  \"offered\": " << r.offered
    << ",\n  \"sent\": " << r.sent << ",\n  \"frames_sent\": " << r.frames_sent
    << ",\n  \"frames_answered\": " << r.frames_answered
    << ",\n  \"frames_per_second\": " << json_num(per_s(r.frames_answered, r.load_s))
    << ",\n  \"ok\": " << r.ok << ",\n  \"errors\": " << r.errors
    << ",\n  \"refused\": " << r.refused << ",\n  \"unanswered\": " << r.unanswered << ",\n  \"unsent\": " << r.never_sent << ",\n  \"errors_by_code\": {";
  bool first = true;
  for (std::size_t i = 0; i < r.errors_by_code.size(); ++i)
    if (r.errors_by_code[i]) {
      f << (first ? "" : ", ") << json_str(code_name(i)) << ": " << r.errors_by_code[i];
      first = false;
    }
  f << "},\n  \"by_op\": {";
  first = true;
  for (std::size_t i = 0; i < r.by_op.size(); ++i) {
    const auto& t = r.by_op[i];
    if (t.ok + t.errors == 0)
      continue;
    f << (first ? "" : ", ") << json_str(op_name(i)) << ": {\"ok\": " << t.ok << ", \"errors\": " << t.errors
      << ", \"p50_us\": " << t.latency.percentile(0.5) << ", \"p99_us\": " << t.latency.percentile(0.99) << "}";
    first = false;
  }
  f << "},\n  \"latency_us\": {\"p50\": " << h.percentile(0.5) << ", \"p90\": " << h.percentile(0.9)
    << ", \"p99\": " << h.percentile(0.99) << ", \"p999\": " << h.percentile(0.999) << ", \"max\": " << h.max()
    << "},\n  \"series\": [";
  for (std::size_t i = 0; i < r.series.size(); ++i) {
    const auto& p = r.series[i];
    f << (i ? ",\n    " : "\n    ") << "{\"t_s\": " << json_num(p.t_s) << ", \"dur_s\": " << json_num(p.dur_s)
      << ", \"step\": " << (p.step >= 0 ? std::to_string(p.step + 1) : "null") << ", \"offered\": " << p.offered
      << ", \"sent\": " << p.sent << ", \"answered\": " << p.answered << ", \"ok\": " << p.ok
      << ", \"errors\": " << p.errors << ", \"offered_per_s\": " << json_num(per_s(p.offered, p.dur_s))
      << ", \"achieved_per_s\": " << json_num(per_s(p.answered, p.dur_s)) << ", " << json_latency(p.latency)
      << ", \"in_flight\": " << p.in_flight << ", \"backlog\": " << p.backlog << "}";
  }
  f << (r.series.empty() ? "]" : "\n  ]");
  const bool judged = judged_run(r);
  if (judged || w.mode == run_mode::ramp)
    f << ",\n  \"objective\": {\"percentile\": " << json_num(w.obj.percentile)
      << ", \"latency_ms_max\": " << json_num(w.obj.latency_ms_max)
      << ", \"error_rate_max\": " << json_num(w.obj.error_rate_max)
      << ", \"count_refusals\": " << (w.obj.count_refusals ? "true" : "false")
      << ", \"rate_tolerance\": " << json_num(w.obj.rate_tolerance) << ", \"failures_max\": " << w.obj.failures_max
      << ", \"text\": " << json_str(objective_text(w.obj)) << "}";
  else
    f << ",\n  \"objective\": null";
  f << ",\n  \"steps_planned\": " << r.steps_planned << ",\n  \"ramp_stopped\": " << (r.ramp_stopped ? "true" : "false")
    << ",\n  \"steps\": [";
  for (std::size_t k = 0; k < r.steps.size(); ++k) {
    auto s = r.steps[k];
    const bool was_judged = s.judged;
    if (!s.judged)
      judge(s, w.obj);
    f << (k ? ",\n    " : "\n    ") << "{\"step\": " << k + 1 << ", \"rate_per_s\": " << json_num(s.rate_per_s)
      << ", \"duration_s\": " << json_num(s.duration_s) << ", \"start_s\": " << json_num(s.start_s)
      << ", \"offered\": " << s.offered << ", \"offered_per_s\": " << json_num(s.offered_per_s)
      << ", \"achieved_per_s\": " << json_num(s.achieved_per_s) << ", \"ok\": " << s.ok << ", \"refused\": " << s.refused
      << ", \"failed\": " << s.failed
      << ", \"unanswered\": " << s.unanswered << ", \"error_rate\": " << json_num(s.error_rate) << ", "
      << json_latency(latency_summary::of(s.latency)) << ", \"objective_us\": " << s.objective_latency_us
      << ", \"judged\": " << (was_judged ? "true" : "false")
      << ", \"passed\": " << (was_judged ? (s.passed ? "true" : "false") : "null")
      << ", \"verdict\": " << (was_judged ? json_str(s.verdict) : "null") << "}";
  }
  f << (r.steps.empty() ? "]" : "\n  ]") << ",\n  \"highest_passing_rate_per_s\": "
    << (r.highest_passing_step >= 0 ? json_num(r.steps[static_cast<std::size_t>(r.highest_passing_step)].rate_per_s)
                                    : "null")
    << ",\n  \"soak_interval_s\": " << json_num(w.soak_interval_s) << ",\n  \"soak\": [";
  for (std::size_t i = 0; i < r.soak.size(); ++i) {
    const auto& p = r.soak[i];
    f << (i ? ",\n    " : "\n    ") << "{\"t_s\": " << json_num(p.t_s) << ", \"dur_s\": " << json_num(p.dur_s)
      << ", \"answered\": " << p.answered << ", \"ok\": " << p.ok << ", \"errors\": " << p.errors
      << ", \"p50_us\": " << p.p50_us << ", \"p99_us\": " << p.p99_us << ", \"p999_us\": " << p.p999_us
      << ", \"max_us\": " << p.max_us << ", \"rss_bytes\": " << p.rss_bytes
      << ", \"members_active\": " << p.members_active << "}";
  }
  f << (r.soak.empty() ? "]" : "\n  ]") << ",\n  \"soak_verdict\": ";
  if (!(w.soak_interval_s > 0)) {
    f << "null";
  } else {
    const auto& v = r.soak_judgement;
    f << "{\"judged\": " << (v.judged ? "true" : "false") << ", \"verdict\": "
      << json_str(!v.judged ? "not judged" : v.growing ? "GROWING" : "flat")
      << ", \"why_not\": " << (v.judged ? "null" : json_str(v.why_not)) << ", \"warmup_s\": " << json_num(v.warmup_s)
      << ", \"rss_growth_max_pct\": " << json_num(v.bound_pct) << ", \"points\": " << v.points
      << ", \"base_t_s\": " << json_num(v.base_t_s) << ", \"base_rss_bytes\": " << v.base_bytes
      << ", \"last_t_s\": " << json_num(v.last_t_s) << ", \"last_rss_bytes\": " << v.last_bytes
      << ", \"max_rss_bytes\": " << v.max_bytes << ", \"growth_pct\": " << json_num(v.growth_pct) << "}";
  }
  const auto& fo = r.failover;
  f << ",\n  \"failover\": {\"not_leader_followed\": " << fo.not_leader << ", \"dropped\": " << fo.dropped
    << ", \"reconnects\": " << fo.reconnects << ", \"resent\": " << fo.resent << ", \"failovers\": " << fo.failovers
    << ", \"recovered\": " << fo.recovered << ", \"gap_ms_max\": " << json_num(fo.gap_max_ms) << ", \"gaps_ms\": [";
  for (std::size_t i = 0; i < fo.gaps_ms.size(); ++i)
    f << (i ? ", " : "") << json_num(fo.gaps_ms[i]);
  f << "]}";
  f << ",\n  \"connection_failures\": " << r.connection_failures
    << ",\n  \"interrupted\": " << (r.interrupted ? "true" : "false") << "\n}\n";
  return f.str();
}

bool write_json(const std::string& path, const run_result& r, const run_context& c) {
  std::ofstream f(path);
  f << json_summary(r, c);
  f.close();
  if (!f) {
    std::fprintf(stderr, "loadgen: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

// -- HTML -----------------------------------------------------------------------------------

namespace {

std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

// Chart geometry (SVG user units).
constexpr double chart_w = 920, chart_h = 300;
constexpr double pad_l = 78, pad_r = 34, pad_t = 28, pad_b = 42;
constexpr double plot_w = chart_w - pad_l - pad_r, plot_h = chart_h - pad_t - pad_b;

// 1, 2 or 5 times a power of ten, at least x / 5 (about five ticks).
double nice_step(double span) {
  if (!(span > 0))
    return 1;
  const double raw = span / 5;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw)
      return m * mag;
  return 10 * mag;
}

struct axis {
  double lo = 0, hi = 1;
  bool log = false;

  [[nodiscard]] double frac(double v) const {
    if (log)
      return (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
    return (v - lo) / (hi - lo);
  }
  [[nodiscard]] std::vector<double> ticks() const {
    std::vector<double> t;
    if (log) {
      for (double d = lo; d <= hi * 1.0001; d *= 10) {
        t.push_back(d);
        if (hi / lo <= 100)  // few decades: 2 and 5 too
          for (double m : {2.0, 5.0})
            if (d * m < hi * 0.9999)
              t.push_back(d * m);
      }
      std::sort(t.begin(), t.end());
      return t;
    }
    const double step = nice_step(hi - lo);
    for (double v = lo; v <= hi + step * 1e-6; v += step)
      t.push_back(v);
    return t;
  }
};

axis linear_axis(double max) {
  if (!(max > 0))
    max = 1;
  const double step = nice_step(max * 1.05);
  return {0, std::ceil(max * 1.05 / step) * step, false};
}

axis log_axis(double min, double max) {
  if (!(min > 0))
    min = 1;
  if (!(max > min))
    max = min * 10;
  double lo = std::pow(10, std::floor(std::log10(min)));
  double hi = std::pow(10, std::ceil(std::log10(max)));
  if (hi <= lo)
    hi = lo * 10;
  return {lo, hi, true};
}

double px(double x, double x_max) { return pad_l + std::clamp(x / std::max(x_max, 1e-9), 0.0, 1.0) * plot_w; }
double py(const axis& a, double y) { return pad_t + (1 - std::clamp(a.frac(y), 0.0, 1.0)) * plot_h; }

std::string rate_label(double v) {
  if (v >= 1e6)
    return fmt("%gM", v / 1e6);
  if (v >= 1e3)
    return fmt("%gk", v / 1e3);
  return fmt("%g", v);
}

std::string ms_label(double v) {
  if (v < 1)
    return fmt("%g µs", v * 1000);
  if (v < 1000)
    return fmt("%g ms", v);
  return fmt("%g s", v / 1000);
}

struct xy_series {
  std::string label;
  std::string color;
  bool dashed = false;
  std::vector<double> x, y;  // y NaN: no value (a gap)
};

struct marker {
  double at;
  std::string label;
};

// Open an <svg> with its frame, x axis in seconds and y axis ticks.
void chart_frame(std::ostringstream& o, const axis& ya, double x_max, const std::string& y_title,
                 const std::function<std::string(double)>& y_label, const std::string& aria) {
  o << "<svg class=\"chart\" viewBox=\"0 0 " << chart_w << " " << chart_h << "\" role=\"img\" aria-label=\""
    << esc(aria) << "\">\n";
  o << fmt("<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" class=\"plot\"/>\n", pad_l, pad_t, plot_w, plot_h);
  for (double t : ya.ticks()) {
    const double y = py(ya, t);
    o << fmt("<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" class=\"grid\"/>", pad_l, y, pad_l + plot_w, y);
    o << fmt("<text x=\"%g\" y=\"%.1f\" class=\"yt\">%s</text>\n", pad_l - 6, y + 4, esc(y_label(t)).c_str());
  }
  axis xa{0, x_max, false};
  for (double t : xa.ticks()) {
    const double x = px(t, x_max);
    o << fmt("<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" class=\"tick\"/>", x, pad_t + plot_h, x,
             pad_t + plot_h + 5);
    o << fmt("<text x=\"%.1f\" y=\"%g\" class=\"xt\">%gs</text>\n", x, pad_t + plot_h + 18, t);
  }
  o << fmt("<text x=\"%g\" y=\"%g\" class=\"xtitle\">seconds since the load started</text>\n", pad_l + plot_w / 2,
           chart_h - 4);
  o << fmt("<text x=\"14\" y=\"%g\" class=\"ytitle\" transform=\"rotate(-90 14 %g)\">%s</text>\n", pad_t + plot_h / 2,
           pad_t + plot_h / 2, esc(y_title).c_str());
}

void chart_legend(std::ostringstream& o, const std::vector<xy_series>& series) {
  double x = pad_l + 8;
  for (const auto& s : series) {
    o << fmt("<line x1=\"%g\" y1=\"14\" x2=\"%g\" y2=\"14\" stroke=\"%s\" stroke-width=\"2.5\"%s/>", x, x + 22,
             s.color.c_str(), s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    o << fmt("<text x=\"%g\" y=\"18\" class=\"legend\">%s</text>\n", x + 27, esc(s.label).c_str());
    x += 40 + 7.0 * static_cast<double>(s.label.size());
  }
}

std::string line_chart(const std::vector<xy_series>& series, double x_max, const axis& ya, const std::string& y_title,
                       const std::function<std::string(double)>& y_label, const std::vector<marker>& steps,
                       const std::optional<marker>& threshold, const std::string& aria) {
  std::ostringstream o;
  chart_frame(o, ya, x_max, y_title, y_label, aria);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const double x = px(steps[i].at, x_max);
    o << fmt("<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" class=\"step\"/>", x, pad_t, x, pad_t + plot_h);
    if (steps.size() <= 40)
      o << fmt("<text x=\"%.1f\" y=\"%g\" class=\"steplabel\">%s</text>", x + 3, pad_t + 11, esc(steps[i].label).c_str());
    o << "\n";
  }
  if (threshold && threshold->at >= ya.lo && threshold->at <= ya.hi) {
    const double y = py(ya, threshold->at);
    o << fmt("<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" class=\"threshold\"/>", pad_l, y, pad_l + plot_w, y);
    o << fmt("<text x=\"%g\" y=\"%.1f\" class=\"thlabel\">%s</text>\n", pad_l + plot_w - 4, y - 4,
             esc(threshold->label).c_str());
  }
  for (const auto& s : series) {
    std::string pts;
    auto flush = [&] {
      if (!pts.empty())
        o << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"1.8\""
          << (s.dashed ? " stroke-dasharray=\"6 4\"" : "") << " points=\"" << pts << "\"/>\n";
      pts.clear();
    };
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      const double y = s.y[i];
      if (!std::isfinite(y) || (ya.log && y <= 0)) {
        flush();
        continue;
      }
      pts += fmt("%.1f,%.1f ", px(s.x[i], x_max), py(ya, y));
    }
    flush();
  }
  chart_legend(o, series);
  o << "</svg>\n";
  return o.str();
}

// The series drawn: every second, or wider windows when the run is long.
struct drawn_point {
  double t_s = 0, offered_per_s = 0, achieved_per_s = 0, errors_per_s = 0;
  std::uint64_t p50_us = 0, p99_us = 0, p999_us = 0, count = 0;
};

// Points sit at the middle of their window. A last window shorter than a
// quarter second (the end of the run) is left out: its rates would be noise.
std::vector<drawn_point> drawn_series(const std::vector<second_point>& all, std::size_t& group) {
  std::vector<second_point> s = all;
  if (!s.empty() && s.back().dur_s < 0.25)
    s.pop_back();
  group = std::max<std::size_t>(1, (s.size() + limits::chart_points_max - 1) / limits::chart_points_max);
  std::vector<drawn_point> out;
  for (std::size_t i = 0; i < s.size(); i += group) {
    drawn_point d;
    const double start = s[i].t_s - s[i].dur_s;
    double dur = 0;
    std::uint64_t offered = 0, answered = 0, errors = 0;
    for (std::size_t j = i; j < std::min(s.size(), i + group); ++j) {
      const auto& p = s[j];
      dur += p.dur_s;
      offered += p.offered;
      answered += p.answered;
      errors += p.errors;
      d.t_s = p.t_s;
      d.count += p.latency.count;
      d.p50_us = std::max(d.p50_us, p.latency.p50_us);
      d.p99_us = std::max(d.p99_us, p.latency.p99_us);
      d.p999_us = std::max(d.p999_us, p.latency.p999_us);
    }
    d.t_s = (start + d.t_s) / 2;
    d.offered_per_s = per_s(offered, dur);
    d.achieved_per_s = per_s(answered, dur);
    d.errors_per_s = per_s(errors, dur);
    out.push_back(d);
  }
  return out;
}

std::vector<marker> step_markers(const run_result& r) {
  std::vector<marker> m;
  for (std::size_t k = 0; k < r.steps.size(); ++k)
    m.push_back({r.steps[k].start_s, std::to_string(k + 1)});
  return m;
}

std::string throughput_chart(const run_result& r, const run_context& c, const std::vector<drawn_point>& pts) {
  xy_series offered{c.w.mode == run_mode::closed ? "sent/s" : "offered/s", "#1f77b4", true, {}, {}};
  xy_series achieved{"achieved (answers)/s", "#2ca02c", false, {}, {}};
  xy_series errors{"errors/s", "#d62728", false, {}, {}};
  double max = 0;
  for (const auto& p : pts) {
    offered.x.push_back(p.t_s);
    offered.y.push_back(p.offered_per_s);
    achieved.x.push_back(p.t_s);
    achieved.y.push_back(p.achieved_per_s);
    errors.x.push_back(p.t_s);
    errors.y.push_back(p.errors_per_s);
    max = std::max({max, p.offered_per_s, p.achieved_per_s});
  }
  const double x_max = r.series.empty() ? 1 : std::max(r.series.back().t_s, 1.0);
  return line_chart({offered, achieved, errors}, x_max, linear_axis(max), "requests per second", rate_label,
                    step_markers(r), std::nullopt, "throughput over time, offered and achieved");
}

std::string latency_chart(const run_result& r, const run_context& c, const std::vector<drawn_point>& pts) {
  xy_series p50{"p50", "#2ca02c", false, {}, {}}, p99{"p99", "#ff7f0e", false, {}, {}},
    p999{"p99.9", "#d62728", false, {}, {}};
  double lo = 1e300, hi = 0;
  for (const auto& p : pts) {
    const bool has = p.count > 0;
    for (auto [s, v] : {std::pair{&p50, p.p50_us}, std::pair{&p99, p.p99_us}, std::pair{&p999, p.p999_us}}) {
      s->x.push_back(p.t_s);
      const double v_ms = std::max(ms(v), 0.001);
      s->y.push_back(has ? v_ms : NAN);
      if (has) {
        lo = std::min(lo, v_ms);
        hi = std::max(hi, v_ms);
      }
    }
  }
  std::optional<marker> th;
  if (c.w.mode == run_mode::ramp || c.w.has_objective) {
    th = marker{c.w.obj.latency_ms_max, "objective " + c.w.obj.latency_text()};
    lo = std::min(lo, c.w.obj.latency_ms_max);
    hi = std::max(hi, c.w.obj.latency_ms_max);
  }
  if (hi <= 0) {  // no answers at all: an empty chart over 1 ms .. 100 ms
    lo = 1;
    hi = 100;
  }
  const double x_max = r.series.empty() ? 1 : std::max(r.series.back().t_s, 1.0);
  return line_chart({p50, p99, p999}, x_max, log_axis(lo, hi), "latency (log scale)", ms_label, step_markers(r), th,
                    "latency percentiles over time");
}

// Bars over a log-scale x axis of latency: ten bins a decade.
std::string distribution_chart(const run_result& r) {
  const auto& h = r.latency;
  std::ostringstream o;
  if (h.count() == 0)
    return "<p class=\"note\">No answers, no distribution.</p>\n";
  constexpr int bins_per_decade = 10;
  const double lo_us = std::max<double>(1, static_cast<double>(h.min()));
  const double hi_us = std::max<double>(lo_us * 10, static_cast<double>(h.max()) + 1);
  const axis xa = log_axis(lo_us, hi_us);
  const int decades = static_cast<int>(std::lround(std::log10(xa.hi / xa.lo)));
  std::vector<std::uint64_t> bins(static_cast<std::size_t>(decades * bins_per_decade), 0);
  for (std::size_t i = 0; i < histogram::bucket_count; ++i) {
    const auto n = h.count_at(i);
    if (n == 0)
      continue;
    const double mid = std::max(1.0, (static_cast<double>(histogram::lower_edge(i)) +
                                      static_cast<double>(histogram::upper_edge(i))) / 2.0);
    auto b = static_cast<long>(std::floor(xa.frac(mid) * static_cast<double>(bins.size())));
    bins[static_cast<std::size_t>(std::clamp<long>(b, 0, static_cast<long>(bins.size()) - 1))] += n;
  }
  const std::uint64_t top = *std::max_element(bins.begin(), bins.end());
  const axis ya = linear_axis(static_cast<double>(top));
  o << "<svg class=\"chart\" viewBox=\"0 0 " << chart_w << " " << chart_h
    << "\" role=\"img\" aria-label=\"latency distribution\">\n";
  o << fmt("<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" class=\"plot\"/>\n", pad_l, pad_t, plot_w, plot_h);
  for (double t : ya.ticks()) {
    const double y = py(ya, t);
    o << fmt("<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" class=\"grid\"/>", pad_l, y, pad_l + plot_w, y);
    o << fmt("<text x=\"%g\" y=\"%.1f\" class=\"yt\">%s</text>\n", pad_l - 6, y + 4, rate_label(t).c_str());
  }
  const double bw = plot_w / static_cast<double>(bins.size());
  for (std::size_t b = 0; b < bins.size(); ++b) {
    if (!bins[b])
      continue;
    const double y = py(ya, static_cast<double>(bins[b]));
    o << fmt("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"bar\"><title>%s</title></rect>\n",
             pad_l + bw * static_cast<double>(b) + 0.5, y, std::max(bw - 1, 0.5), pad_t + plot_h - y,
             grouped(bins[b]).c_str());
  }
  for (double t : xa.ticks()) {
    const double x = pad_l + xa.frac(t) * plot_w;
    o << fmt("<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" class=\"tick\"/>", x, pad_t + plot_h, x,
             pad_t + plot_h + 5);
    o << fmt("<text x=\"%.1f\" y=\"%g\" class=\"xt\">%s</text>\n", x, pad_t + plot_h + 18,
             esc(ms_label(t / 1000)).c_str());
  }
  const std::pair<const char*, double> marks[] = {{"p50", 0.5}, {"p99", 0.99}, {"p99.9", 0.999}};
  double label_y = pad_t + 11;
  for (const auto& [name, q] : marks) {
    const double v = std::max(1.0, static_cast<double>(h.percentile(q)));
    const double x = pad_l + std::clamp(xa.frac(v), 0.0, 1.0) * plot_w;
    o << fmt("<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" class=\"pmark\"/>", x, pad_t, x, pad_t + plot_h);
    o << fmt("<text x=\"%.1f\" y=\"%g\" class=\"steplabel\">%s %s</text>\n", x + 3, label_y, name,
             esc(latency_text(h.percentile(q))).c_str());
    label_y += 12;  // staggered: close percentiles would overwrite each other
  }
  o << fmt("<text x=\"%g\" y=\"%g\" class=\"xtitle\">latency (log scale)</text>\n", pad_l + plot_w / 2, chart_h - 4);
  o << fmt("<text x=\"14\" y=\"%g\" class=\"ytitle\" transform=\"rotate(-90 14 %g)\">answers</text>\n",
           pad_t + plot_h / 2, pad_t + plot_h / 2);
  o << "</svg>\n";
  return o.str();
}

constexpr const char* css = R"(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:980px;color:#222;padding:0 12px}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.15em;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
.lead{color:#555;margin-top:0}
table{border-collapse:collapse;font-size:.9em;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.l,th.l{text-align:left}
table.params td:first-child{text-align:left;color:#555;white-space:nowrap}table.params td{text-align:left}
tr.pass td{background:#eef8ee}tr.fail td{background:#fbeeee}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.tile{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:120px}
.tile b{display:block;font-size:1.3em}.tile span{color:#666;font-size:.85em}
.barcell{width:40%;text-align:left}.hbar{background:#d62728;height:12px;border-radius:2px}
svg.chart{width:100%;height:auto;font-size:11px}
svg .plot{fill:#fcfcfc;stroke:#bbb}svg .grid{stroke:#e6e6e6}svg .tick{stroke:#999}
svg .yt{text-anchor:end;fill:#444}svg .xt{text-anchor:middle;fill:#444}
svg .xtitle,svg .ytitle{text-anchor:middle;fill:#333;font-size:12px}
svg .legend{fill:#333;font-size:12px}
svg .step{stroke:#999;stroke-dasharray:2 3}svg .steplabel{fill:#777;font-size:10px}
svg .threshold{stroke:#7f3fbf;stroke-dasharray:8 4;stroke-width:1.5}svg .thlabel{fill:#7f3fbf;text-anchor:end}
svg .bar{fill:#4c78a8}svg .pmark{stroke:#d62728;stroke-dasharray:4 3}
.note{color:#666;font-size:.85em}
footer{margin-top:32px;color:#888;font-size:.8em}
)";

void param(std::ostringstream& o, const std::string& k, const std::string& v) {
  o << "<tr><td>" << esc(k) << "</td><td>" << esc(v) << "</td></tr>\n";
}

void tile(std::ostringstream& o, const std::string& value, const std::string& what) {
  o << "<div class=\"tile\"><b>" << esc(value) << "</b><span>" << esc(what) << "</span></div>\n";
}

} // namespace

std::string html_report(const run_result& r, const run_context& c) {
  const auto& w = c.w;
  const auto& h = r.latency;
  const bool judged = judged_run(r);
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>loyalty-loadgen: "
    << esc(w.name) << ", " << esc(r.started_at) << "</title>\n<style>" << css << "</style>\n</head>\n<body>\n";
  o << "<h1>loyalty-loadgen: " << esc(w.name) << "</h1>\n";
  o << "<p class=\"lead\">" << esc(std::string(to_string(w.mode))) << " mode against " << esc(c.where.address())
    << ", load started " << esc(r.started_at) << ", seed " << r.seed << "</p>\n";
  if (!w.description.empty())
    o << "<p>" << esc(w.description) << "</p>\n";

  o << "<div class=\"tiles\">\n";
  auto rate = [](double v) { return grouped(static_cast<std::uint64_t>(std::llround(v))) + "/s"; };
  tile(o, rate(per_s(r.offered, r.load_s)), w.mode == run_mode::closed ? "sent" : "offered");
  tile(o, rate(per_s(r.ok + r.errors, r.load_s)), "achieved (answers)");
  tile(o, rate(per_s(r.ok, r.load_s)), "ok");
  if (w.batch > 1)
    tile(o, rate(per_s(r.frames_answered, r.load_s)), fmt("frames of %u answered", w.batch));
  tile(o, grouped(r.errors + r.unanswered), "errors + unanswered");
  tile(o, latency_text(h.percentile(0.5)), "p50");
  tile(o, latency_text(h.percentile(0.99)), "p99");
  tile(o, latency_text(h.percentile(0.999)), "p99.9");
  if (judged)
    tile(o,
         r.highest_passing_step >= 0
           ? rate(r.steps[static_cast<std::size_t>(r.highest_passing_step)].rate_per_s)
           : std::string("none"),
         "highest passing rate");
  o << "</div>\n";
  if (r.connection_failures)
    o << "<p><b>" << r.connection_failures
      << " connection(s) gave up during the run</b> (no node served within the follow patience): the numbers stop "
         "there.</p>\n";
  if (r.failover.any())
    o << "<p><b>Failover</b>: " << esc(failover_text(r.failover)) << ".</p>\n";
  if (r.interrupted)
    o << "<p><b>Interrupted (Ctrl-C)</b>: the load ended early; the numbers stop there.</p>\n";

  o << "<h2>Run parameters</h2>\n<table class=\"params\">\n";
  param(o, "workload", w.name + (w.source.empty() ? " (flags only)" : " (" + w.source + ")"));
  param(o, "mode", std::string(to_string(w.mode)));
  param(o, "seed", std::to_string(r.seed));
  param(o, "engine", c.where.address() + (c.where.tls.enabled ? " (TLS)" : ""));
  param(o, "load started", r.started_at);
  param(o, "load duration", fmt("%.2f s", r.load_s));
  param(o, "members", grouped(w.members) + ", " + distribution_text(w) +
                        (w.enroll ? fmt("; enrolled %s in %.1f s", grouped(r.enrolled).c_str(), r.enroll_s)
                                  : std::string("; not enrolled by this run")));
  param(o, "mix", mix_text(w.mix));
  param(o, "basket", w.items.max == 0
                       ? "amount only, " + range_text(w.amount) + " minor units"
                       : range_text(w.items) + " items of " + std::to_string(w.categories.size()) + " categories, " +
                           (w.skus.empty() ? std::to_string(w.sku_count) + " generated skus"
                                           : std::to_string(w.skus.size()) + " skus"));
  param(o, "brand, currency, channel", w.brand + ", " + w.currency + ", " + (w.channel.empty() ? "none" : w.channel));
  if (w.weight(op_kind::partner_earn) + w.weight(op_kind::partner_burn) > 0)
    param(o, "partner", w.partner);
  param(o, "connections", fmt("%u x depth %u%s", w.connections, w.depth, depth_unit_text(w).c_str()));
  param(o, "operations per frame",
        w.batch > 1 ? fmt("%u (batch frames; rates, counts and latencies are per operation)", w.batch)
                    : std::string("1 (each operation a frame of its own)"));
  if (w.mode == run_mode::closed)
    param(o, "duration", fmt("%g s", w.duration_s));
  else
    param(o, "schedule", schedule_text(w));
  if (judged || w.mode == run_mode::ramp)
    param(o, "objective",
          objective_text(w.obj) + fmt("; stop after %u failing step(s); wait %g s for a step's answers",
                                      w.obj.failures_max, w.obj.drain_s));
  if (!c.command_line.empty())
    param(o, "command", c.command_line);
  o << "</table>\n";

  std::size_t group = 1;
  const auto pts = drawn_series(r.series, group);
  const std::string grouping =
    group > 1 ? fmt(" Each point is %zu seconds (rates averaged, latencies the highest of its seconds).", group) : "";

  o << "<h2>Throughput over time</h2>\n" << throughput_chart(r, c, pts);
  o << "<p class=\"note\">"
    << (w.mode == run_mode::closed
          ? "Closed loop: sent = requests written each second (as fast as answers came back)."
          : "Offered = requests the schedule made due in that second; achieved = answers received in it (ok and "
            "errors). When the engine falls behind, achieved drops below offered and a backlog builds.")
    << (r.steps.empty() ? "" : " Dotted lines: step starts.") << grouping << "</p>\n";

  o << "<h2>Latency over time</h2>\n" << latency_chart(r, c, pts);
  o << "<p class=\"note\">Percentiles of the answers received in each second, measured from each request's "
    << (w.mode == run_mode::closed ? "send time" : "intended send time (so a stalled engine cannot hide its latency)")
    << "." << grouping << "</p>\n";

  o << "<h2>Latency distribution</h2>\n" << distribution_chart(r);
  o << fmt("<p class=\"note\">All %s answers; p50 %s, p90 %s, p99 %s, p99.9 %s, max %s.</p>\n",
           grouped(h.count()).c_str(), latency_text(h.percentile(0.5)).c_str(),
           latency_text(h.percentile(0.9)).c_str(), latency_text(h.percentile(0.99)).c_str(),
           latency_text(h.percentile(0.999)).c_str(), latency_text(h.max()).c_str());

  if (!r.steps.empty()) {
    o << "<h2>" << (w.mode == run_mode::ramp ? "Ramp steps" : "Steps") << "</h2>\n";
    if (judged)
      o << "<p>Objective: " << esc(objective_text(w.obj)) << ". "
        << (r.highest_passing_step >= 0
              ? fmt("<b>Highest passing rate: %.0f/s</b> (step %d).",
                    r.steps[static_cast<std::size_t>(r.highest_passing_step)].rate_per_s, r.highest_passing_step + 1)
              : std::string("<b>No step passed.</b>"))
        << (r.ramp_stopped ? fmt(" Stopped after %u failing step(s); %zu of %zu steps run.", w.obj.failures_max,
                                 r.steps.size(), r.steps_planned)
                           : std::string())
        << "</p>\n";
    o << "<table class=\"steps\">\n<tr><th>step</th><th>rate/s</th><th>seconds</th><th>offered/s</th>"
         "<th>achieved/s</th><th>achieved %</th><th>ok</th><th>refused</th><th>failed</th><th>unanswered</th>"
         "<th>error rate</th>"
         "<th>p50</th><th>p99</th><th>p99.9</th><th>max</th>"
      << (judged ? fmt("<th>p%g (objective)</th><th class=\"l\">verdict</th>", w.obj.percentile) : std::string())
      << "</tr>\n";
    for (std::size_t k = 0; k < r.steps.size(); ++k) {
      auto s = r.steps[k];
      const bool was_judged = s.judged;
      if (!was_judged)
        judge(s, w.obj);
      o << "<tr class=\"" << (was_judged ? (s.passed ? "pass" : "fail") : "") << "\"><td>" << k + 1 << "</td>"
        << fmt("<td>%g</td><td>%g</td><td>%.0f</td><td>%.0f</td><td>%.1f%%</td>", s.rate_per_s, s.duration_s,
               s.offered_per_s, s.achieved_per_s,
               s.offered_per_s > 0 ? 100 * s.achieved_per_s / s.offered_per_s : 0.0)
        << "<td>" << grouped(s.ok) << "</td><td>" << grouped(s.refused) << "</td><td>" << grouped(s.failed)
        << "</td><td>" << grouped(s.unanswered)
        << "</td>" << fmt("<td>%.2f%%</td>", s.error_rate * 100) << "<td>" << esc(latency_text(s.latency.percentile(0.5)))
        << "</td><td>" << esc(latency_text(s.latency.percentile(0.99))) << "</td><td>"
        << esc(latency_text(s.latency.percentile(0.999))) << "</td><td>" << esc(latency_text(s.latency.max()))
        << "</td>";
      if (judged)
        o << "<td>" << esc(latency_text(s.objective_latency_us)) << "</td><td class=\"l\">"
          << (was_judged ? (s.passed ? "<b>pass</b>" : "<b>FAIL</b>: " + esc(s.verdict)) : std::string("&ndash;"))
          << "</td>";
      o << "</tr>\n";
    }
    o << "</table>\n<p class=\"note\">A step's requests are counted by their intended send time, so its late answers "
         "count for it. Achieved = its answers / max(step length, time to its last answer). Refused = expected "
         "refusals of a random workload (insufficient_points and the like: the engine did its job); failed = every "
         "other error code. Unanswered = given up after waiting "
      << w.obj.drain_s << " s; they count as errors and, at their wait so far, in its percentiles.</p>\n";
  }

  o << "<h2>Errors by code</h2>\n";
  std::uint64_t err_max = r.unanswered;
  for (auto n : r.errors_by_code)
    err_max = std::max(err_max, n);
  const auto answered_or_not = r.ok + r.errors + r.unanswered;
  if (r.errors + r.unanswered == 0) {
    o << "<p>No errors.</p>\n";
  } else {
    o << "<table class=\"errors\">\n<tr><th class=\"l\">code</th><th class=\"l\">kind</th><th>count</th>"
         "<th>share of requests</th><th class=\"l\">&nbsp;</th></tr>\n";
    auto row = [&](const std::string& name, const char* kind, std::uint64_t n) {
      o << "<tr><td class=\"l\">" << esc(name) << "</td><td class=\"l\">" << kind << "</td><td>" << grouped(n)
        << "</td>"
        << fmt("<td>%.3f%%</td>", 100.0 * static_cast<double>(n) / static_cast<double>(std::max<std::uint64_t>(1, answered_or_not)))
        << fmt("<td class=\"barcell\"><div class=\"hbar\" style=\"width:%.1f%%\"></div></td></tr>\n",
               100.0 * static_cast<double>(n) / static_cast<double>(std::max<std::uint64_t>(1, err_max)));
    };
    for (std::size_t i = 0; i < r.errors_by_code.size(); ++i)
      if (r.errors_by_code[i])
        row(code_name(i), is_refusal(static_cast<errc>(i)) ? "refusal" : "failure", r.errors_by_code[i]);
    if (r.unanswered)
      row("unanswered (no answer in time)", "failure", r.unanswered);
    o << "</table>\n<p class=\"note\">A refusal is an answer a correct engine gives to a random workload (the "
         "member lacks the points, the hold is already closed, ...); a failure is any other code.</p>\n";
  }

  o << "<h2>Operations</h2>\n<table>\n<tr><th class=\"l\">operation</th><th>ok</th><th>errors</th><th>p50</th>"
       "<th>p99</th><th>p99.9</th></tr>\n";
  for (std::size_t i = 0; i < r.by_op.size(); ++i) {
    const auto& t = r.by_op[i];
    if (t.ok + t.errors == 0)
      continue;
    o << "<tr><td class=\"l\">" << esc(op_name(i)) << "</td><td>" << grouped(t.ok) << "</td><td>" << grouped(t.errors)
      << "</td><td>" << esc(latency_text(t.latency.percentile(0.5))) << "</td><td>"
      << esc(latency_text(t.latency.percentile(0.99))) << "</td><td>" << esc(latency_text(t.latency.percentile(0.999)))
      << "</td></tr>\n";
  }
  o << "</table>\n";

  o << "<footer>Written by loyalty-loadgen. One self-contained file: inline CSS and SVG, no script, nothing "
       "fetched. The numbers are in the JSON summary too (--json).</footer>\n</body>\n</html>\n";
  return o.str();
}

bool write_html(const std::string& path, const run_result& r, const run_context& c) {
  std::ofstream f(path);
  f << html_report(r, c);
  f.close();
  if (!f) {
    std::fprintf(stderr, "loadgen: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

} // namespace loyalty::loadgen
