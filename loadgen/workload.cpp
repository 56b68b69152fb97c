// Workload files (toml11 3.7) and the flag syntaxes that share their values.
#include "loadgen/workload.hpp"

#include "loadgen/limits.hpp"

#include <toml.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace loyalty::loadgen {

std::string_view to_string(run_mode m) noexcept {
  switch (m) {
    case run_mode::closed: return "closed";
    case run_mode::open: return "open";
    case run_mode::ramp: return "ramp";
  }
  return "?";
}

double workload::load_length_s() const {
  if (mode == run_mode::closed)
    return duration_s;
  double s = 0;
  for (const auto& st : sched.expand(duration_s))
    s += st.duration_s;
  return s;
}

double workload::soak_warmup() const {
  return soak_warmup_s >= 0 ? soak_warmup_s : std::round(load_length_s() / 4);
}

std::vector<step> schedule::expand(double duration_s) const {
  switch (k) {
    case kind::none: return {};
    case kind::rate: return {step{rate_per_s, duration_s}};
    case kind::steps: return steps;
    case kind::ramp: {
      std::vector<step> out;
      // Integer step counting: no drift from adding doubles.
      for (std::uint32_t i = 0; i < limits::steps_max; ++i) {
        double r = ramp.from_per_s + ramp.step_per_s * i;
        if (r > ramp.to_per_s * (1 + 1e-12))
          break;
        out.push_back({r, ramp.step_duration_s});
      }
      return out;
    }
  }
  return {};
}

namespace {

std::string number_text(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    return std::to_string(static_cast<long long>(v));
  std::ostringstream os;
  os.precision(12);
  os << v;
  return os.str();
}

} // namespace

std::string objective::latency_text() const {
  return "p" + number_text(percentile) + "<=" + number_text(latency_ms_max) + "ms";
}

// -- flag syntaxes --------------------------------------------------------------

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t from = 0;
  for (;;) {
    auto at = s.find(sep, from);
    out.push_back(trim(s.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from)));
    if (at == std::string_view::npos)
      return out;
    from = at + 1;
  }
}

bool to_int(std::string_view s, std::int64_t& out) {
  s = trim(s);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size() && !s.empty();
}

bool to_double(std::string_view s, double& out) {
  s = trim(s);
  if (s.empty())
    return false;
  std::string tmp(s);
  char* end = nullptr;
  out = std::strtod(tmp.c_str(), &end);
  return end == tmp.c_str() + tmp.size() && std::isfinite(out);
}

op_kind kind_of(std::string_view name) {
  auto it = std::find(op_kind_names.begin(), op_kind_names.end(), name);
  return it == op_kind_names.end() ? op_kind::count : static_cast<op_kind>(it - op_kind_names.begin());
}

std::string op_list() {
  std::string s;
  for (auto n : op_kind_names)
    s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

} // namespace

bool parse_mix(std::string_view text, mix_weights& out, std::string& error) {
  mix_weights m{};
  int sum = 0;
  for (auto part : split(text, ',')) {
    auto eq = part.find('=');
    std::int64_t v = 0;
    if (eq == std::string_view::npos || !to_int(part.substr(eq + 1), v) || v < 0 || v > 100) {
      error = "the mix must look like earn=90,redeem=10 (percentages 0..100); got '" + std::string(part) + "'";
      return false;
    }
    auto k = kind_of(trim(part.substr(0, eq)));
    if (k == op_kind::count) {
      error = "the mix names an unknown operation '" + std::string(trim(part.substr(0, eq))) + "' (known: " +
              op_list() + ")";
      return false;
    }
    m[static_cast<std::size_t>(k)] = static_cast<int>(v);
    sum += static_cast<int>(v);
  }
  if (sum != 100) {
    error = "the mix's percentages add up to " + std::to_string(sum) + ", not 100";
    return false;
  }
  out = m;
  return true;
}

bool parse_range(std::string_view text, int_range& out, std::string& error) {
  text = trim(text);
  auto dash = text.find('-', 1);
  std::int64_t lo = 0, hi = 0;
  bool ok = dash == std::string_view::npos ? to_int(text, lo) && (hi = lo, true)
                                           : to_int(text.substr(0, dash), lo) && to_int(text.substr(dash + 1), hi);
  if (!ok || lo > hi) {
    error = "a range is N or MIN-MAX with MIN <= MAX; got '" + std::string(text) + "'";
    return false;
  }
  out = {lo, hi};
  return true;
}

bool parse_objective(std::string_view text, objective& out, std::string& error) {
  auto bad = [&](const std::string& why) {
    error = "an objective looks like p99<=10ms (a percentile, <=, a latency in us, ms or s): " + why + " in '" +
            std::string(text) + "'";
    return false;
  };
  auto t = trim(text);
  auto le = t.find("<=");
  if (t.size() < 2 || (t[0] != 'p' && t[0] != 'P') || le == std::string_view::npos)
    return bad("no p...<=");
  double pct = 0;
  if (!to_double(t.substr(1, le - 1), pct) || pct <= 0 || pct >= 100)
    return bad("the percentile must be above 0 and below 100");
  auto lat = trim(t.substr(le + 2));
  double scale = 0;
  std::size_t unit_len = 0;
  if (lat.ends_with("us")) {
    scale = 1e-3;
    unit_len = 2;
  } else if (lat.ends_with("ms")) {
    scale = 1;
    unit_len = 2;
  } else if (lat.ends_with("s")) {
    scale = 1e3;
    unit_len = 1;
  } else {
    return bad("the latency needs a unit");
  }
  double v = 0;
  if (!to_double(lat.substr(0, lat.size() - unit_len), v) || v <= 0)
    return bad("the latency must be a positive number");
  out.percentile = pct;
  out.latency_ms_max = v * scale;
  return true;
}

namespace {

bool check_rate(double r) { return r > 0 && r <= limits::rate_per_s_max; }
bool check_duration(double d) { return d > 0 && d <= limits::duration_s_max; }

// Errors that a ramp_spec can have, as sentences ("" = none).
std::string ramp_problem(const ramp_spec& r) {
  if (!check_rate(r.from_per_s) || !check_rate(r.to_per_s))
    return "the ramp's rates must be above 0 and at most 1e8 per second";
  if (r.to_per_s < r.from_per_s)
    return "the ramp must go up: to_per_s below from_per_s";
  if (r.step_per_s <= 0)
    return "the ramp's step_per_s must be above 0";
  if (!check_duration(r.step_duration_s))
    return "the ramp's step_duration_s must be above 0 and at most 86400";
  if ((r.to_per_s - r.from_per_s) / r.step_per_s + 1 > limits::steps_max)
    return "the ramp has more than " + std::to_string(limits::steps_max) + " steps";
  return "";
}

} // namespace

bool parse_ramp(std::string_view text, ramp_spec& out, std::string& error) {
  auto parts = split(text, ':');
  ramp_spec r;
  if (parts.size() != 4 || !to_double(parts[0], r.from_per_s) || !to_double(parts[1], r.to_per_s) ||
      !to_double(parts[2], r.step_per_s) || !to_double(parts[3], r.step_duration_s)) {
    error = "a ramp looks like FROM:TO:STEP:SECONDS (rates per second), e.g. 1000:20000:1000:10; got '" +
            std::string(text) + "'";
    return false;
  }
  error = ramp_problem(r);
  if (!error.empty())
    return false;
  out = r;
  return true;
}

bool parse_steps(std::string_view text, std::vector<step>& out, std::string& error) {
  std::vector<step> steps;
  for (auto part : split(text, ',')) {
    auto c = part.find(':');
    step s;
    if (c == std::string_view::npos || !to_double(part.substr(0, c), s.rate_per_s) ||
        !to_double(part.substr(c + 1), s.duration_s) || !check_rate(s.rate_per_s) || !check_duration(s.duration_s)) {
      error = "steps look like RATE:SECONDS,RATE:SECONDS (rate above 0 and at most 1e8 per second, 0 < seconds <= "
              "86400); got '" + std::string(part) + "'";
      return false;
    }
    steps.push_back(s);
  }
  if (steps.size() > limits::steps_max) {
    error = "more than " + std::to_string(limits::steps_max) + " steps";
    return false;
  }
  out = std::move(steps);
  return true;
}

std::string mix_text(const mix_weights& m) {
  std::string s;
  for (std::size_t i = 0; i < op_kind_count; ++i)
    if (m[i] > 0)
      s += (s.empty() ? "" : ",") + std::string(op_kind_names[i]) + "=" + std::to_string(m[i]);
  return s;
}

std::string range_text(const int_range& r) {
  return r.min == r.max ? std::to_string(r.min) : std::to_string(r.min) + "-" + std::to_string(r.max);
}

std::string depth_unit_text(const workload& w) {
  return w.batch > 1 ? " frames of " + std::to_string(w.batch) + " operations" : "";
}

std::string schedule_text(const workload& w) {
  const auto& s = w.sched;
  switch (s.k) {
    case schedule::kind::none: return "none";
    case schedule::kind::rate: return number_text(s.rate_per_s) + "/s for " + number_text(w.duration_s) + " s";
    case schedule::kind::steps: {
      std::string t = std::to_string(s.steps.size()) + " steps:";
      for (std::size_t i = 0; i < s.steps.size() && i < 12; ++i)
        t += " " + number_text(s.steps[i].rate_per_s) + "/s x " + number_text(s.steps[i].duration_s) + " s" +
             (i + 1 < s.steps.size() ? "," : "");
      if (s.steps.size() > 12)
        t += " ...";
      return t;
    }
    case schedule::kind::ramp:
      return "ramp " + number_text(s.ramp.from_per_s) + " -> " + number_text(s.ramp.to_per_s) + " /s by " +
             number_text(s.ramp.step_per_s) + ", " + number_text(s.ramp.step_duration_s) + " s a step (" +
             std::to_string(s.expand(w.duration_s).size()) + " steps)";
  }
  return "?";
}

// -- workload files -------------------------------------------------------------

namespace {

// Collects "file:line: message" errors about the values of one file.
class reader {
public:
  reader(std::string file, std::vector<std::pair<std::size_t, std::string>>& errors)
    : file_(std::move(file)), errors_(errors) {}

  void fail(const toml::value& where, const std::string& msg) { errors_.emplace_back(where.location().line(), msg); }

  // The table [name] of the root, or nullptr when absent (or not a table:
  // reported).
  const toml::value* section(const toml::value& root, const std::string& name,
                             std::initializer_list<std::string_view> keys) {
    auto& tab = root.as_table();
    auto it = tab.find(name);
    if (it == tab.end())
      return nullptr;
    if (!it->second.is_table()) {
      fail(it->second, "'" + name + "' must be a table ([" + name + "])");
      return nullptr;
    }
    only_keys(it->second, keys, "[" + name + "]");
    return &it->second;
  }

  void only_keys(const toml::value& t, std::initializer_list<std::string_view> allowed, const std::string& what) {
    for (const auto& [k, v] : t.as_table())
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
        std::string known;
        for (auto a : allowed)
          known += (known.empty() ? "" : ", ") + std::string(a);
        fail(v, "unknown key '" + k + "' in " + what + " (known: " + known + ")");
      }
  }

  static const toml::value* find(const toml::value* t, const std::string& key) {
    if (!t)
      return nullptr;
    auto& tab = t->as_table();
    auto it = tab.find(key);
    return it == tab.end() ? nullptr : &it->second;
  }

  void str(const toml::value* t, const std::string& key, const std::string& what, std::string& out,
           bool non_empty = true, std::size_t bytes_max = 64) {
    auto v = find(t, key);
    if (!v)
      return;
    if (!v->is_string()) {
      fail(*v, "'" + key + "' in " + what + " must be a string");
      return;
    }
    const auto& s = v->as_string().str;
    if ((non_empty && s.empty()) || s.size() > bytes_max) {
      fail(*v, "'" + key + "' in " + what + " must be " + (non_empty ? "1" : "0") + " to " +
                 std::to_string(bytes_max) + " bytes");
      return;
    }
    out = s;
  }

  template <class T>
  void integer(const toml::value* t, const std::string& key, const std::string& what, T& out, std::int64_t lo,
               std::int64_t hi) {
    auto v = find(t, key);
    if (!v)
      return;
    if (!v->is_integer()) {
      fail(*v, "'" + key + "' in " + what + " must be an integer");
      return;
    }
    auto x = v->as_integer();
    if (x < lo || x > hi) {
      fail(*v, "'" + key + "' in " + what + " must be between " + std::to_string(lo) + " and " +
                 std::to_string(hi) + ", got " + std::to_string(x));
      return;
    }
    out = static_cast<T>(x);
  }

  // An integer or a float; (lo, hi] unless lo_inclusive.
  bool number(const toml::value* t, const std::string& key, const std::string& what, double& out, double lo,
              double hi, bool lo_inclusive = false) {
    auto v = find(t, key);
    if (!v)
      return false;
    double x = 0;
    if (v->is_integer())
      x = static_cast<double>(v->as_integer());
    else if (v->is_floating())
      x = v->as_floating();
    else {
      fail(*v, "'" + key + "' in " + what + " must be a number");
      return false;
    }
    if (!std::isfinite(x) || (lo_inclusive ? x < lo : x <= lo) || x > hi) {
      fail(*v, "'" + key + "' in " + what + " must be " + (lo_inclusive ? "at least " : "above ") + number_text(lo) +
                 " and at most " + number_text(hi) + ", got " + number_text(x));
      return false;
    }
    out = x;
    return true;
  }

  void boolean(const toml::value* t, const std::string& key, const std::string& what, bool& out) {
    auto v = find(t, key);
    if (!v)
      return;
    if (!v->is_boolean()) {
      fail(*v, "'" + key + "' in " + what + " must be true or false");
      return;
    }
    out = v->as_boolean();
  }

  // N or [MIN, MAX] within [lo, hi].
  void range(const toml::value* t, const std::string& key, const std::string& what, int_range& out,
             std::int64_t lo, std::int64_t hi) {
    auto v = find(t, key);
    if (!v)
      return;
    std::string expect = "'" + key + "' in " + what + " must be an integer or [min, max] of integers between " +
                         std::to_string(lo) + " and " + std::to_string(hi) + ", min <= max";
    int_range r;
    if (v->is_integer()) {
      r = {v->as_integer(), v->as_integer()};
    } else if (v->is_array() && v->as_array().size() == 2 && v->as_array()[0].is_integer() &&
               v->as_array()[1].is_integer()) {
      r = {v->as_array()[0].as_integer(), v->as_array()[1].as_integer()};
    } else {
      fail(*v, expect);
      return;
    }
    if (r.min < lo || r.max > hi || r.min > r.max) {
      fail(*v, expect);
      return;
    }
    out = r;
  }

  void strings(const toml::value* t, const std::string& key, const std::string& what, std::vector<std::string>& out,
               bool non_empty) {
    auto v = find(t, key);
    if (!v)
      return;
    std::string expect = "'" + key + "' in " + what + " must be an array of strings of 1 to 64 bytes" +
                         (non_empty ? ", not empty" : "");
    if (!v->is_array() || (non_empty && v->as_array().empty())) {
      fail(*v, expect);
      return;
    }
    std::vector<std::string> r;
    for (const auto& e : v->as_array()) {
      if (!e.is_string() || e.as_string().str.empty() || e.as_string().str.size() > 64) {
        fail(e, expect);
        return;
      }
      r.push_back(e.as_string().str);
    }
    out = std::move(r);
  }

  template <class T>
  void choice(const toml::value* t, const std::string& key, const std::string& what, T& out,
              std::initializer_list<std::pair<std::string_view, T>> options) {
    auto v = find(t, key);
    if (!v)
      return;
    std::string names;
    for (auto& [n, _] : options)
      names += (names.empty() ? "\"" : ", \"") + std::string(n) + "\"";
    if (v->is_string())
      for (auto& [n, val] : options)
        if (v->as_string().str == n) {
          out = val;
          return;
        }
    fail(*v, "'" + key + "' in " + what + " must be one of " + names);
  }

private:
  std::string file_;
  std::vector<std::pair<std::size_t, std::string>>& errors_;
};

void read_workload(const toml::value& root, reader& rd, workload& w) {
  rd.only_keys(root,
               {"workload", "members", "mix", "basket", "operations", "connections", "schedule", "objective"},
               "the workload file");

  const std::string sw = "[workload]";
  auto wt = rd.section(root, "workload",
                       {"name", "description", "mode", "seed", "duration_s", "soak_interval_s", "soak_warmup_s",
                        "soak_rss_growth_max_pct"});
  rd.str(wt, "name", sw, w.name, true, 200);
  rd.str(wt, "description", sw, w.description, false, 2000);
  rd.integer(wt, "seed", sw, w.seed, 0, INT64_MAX);
  rd.number(wt, "duration_s", sw, w.duration_s, 0, limits::duration_s_max);
  rd.number(wt, "soak_interval_s", sw, w.soak_interval_s, 0, limits::duration_s_max, true);
  rd.number(wt, "soak_warmup_s", sw, w.soak_warmup_s, 0, limits::duration_s_max, true);
  rd.number(wt, "soak_rss_growth_max_pct", sw, w.soak_rss_growth_max_pct, 0, limits::soak_rss_growth_max_pct_max, true);

  const std::string sm = "[members]";
  auto mt = rd.section(root, "members",
                       {"count", "distribution", "s", "scatter", "brand", "enroll", "enroll_batch"});
  rd.integer(mt, "count", sm, w.members, 1, static_cast<std::int64_t>(limits::members_max));
  rd.choice(mt, "distribution", sm, w.distribution,
            {{"uniform", member_distribution::uniform}, {"zipf", member_distribution::zipf}});
  if (auto s = reader::find(mt, "s")) {
    if (w.distribution != member_distribution::zipf)
      rd.fail(*s, "'s' in [members] is the Zipf exponent: it needs distribution = \"zipf\"");
    else
      rd.number(mt, "s", sm, w.zipf_s, 0, 100);
  } else if (w.distribution == member_distribution::zipf && reader::find(mt, "distribution")) {
    rd.fail(*reader::find(mt, "distribution"), "distribution = \"zipf\" needs its exponent 's' in [members] (e.g. s = 1.1)");
  }
  rd.boolean(mt, "scatter", sm, w.scatter);
  rd.str(mt, "brand", sm, w.brand);
  rd.boolean(mt, "enroll", sm, w.enroll);
  rd.integer(mt, "enroll_batch", sm, w.enroll_batch, 1, limits::batch_ops_max);

  if (auto mix = root.as_table().find("mix"); mix != root.as_table().end()) {
    if (!mix->second.is_table()) {
      rd.fail(mix->second, "'mix' must be a table ([mix]) of operation = percent");
    } else {
      mix_weights m{};
      int sum = 0;
      bool ok = true;
      for (const auto& [k, v] : mix->second.as_table()) {
        auto kind = kind_of(k);
        if (kind == op_kind::count) {
          rd.fail(v, "unknown operation '" + k + "' in [mix] (known: " + op_list() + ")");
          ok = false;
        } else if (!v.is_integer() || v.as_integer() < 0 || v.as_integer() > 100) {
          rd.fail(v, "'" + k + "' in [mix] must be a percentage, an integer from 0 to 100");
          ok = false;
        } else {
          m[static_cast<std::size_t>(kind)] = static_cast<int>(v.as_integer());
          sum += static_cast<int>(v.as_integer());
        }
      }
      if (ok && sum != 100)
        rd.fail(mix->second, "the percentages of [mix] add up to " + std::to_string(sum) + ", not 100");
      if (ok)
        w.mix = m;
    }
  }

  const std::string sb = "[basket]";
  auto bt = rd.section(root, "basket",
                       {"items", "categories", "skus", "sku_count", "item_amount", "quantity", "amount", "currency",
                        "channel", "store"});
  rd.range(bt, "items", sb, w.items, 0, limits::items_max);
  rd.strings(bt, "categories", sb, w.categories, true);
  rd.strings(bt, "skus", sb, w.skus, true);
  rd.integer(bt, "sku_count", sb, w.sku_count, 1, limits::sku_count_max);
  if (reader::find(bt, "skus") && reader::find(bt, "sku_count"))
    rd.fail(*reader::find(bt, "sku_count"), "[basket] has both 'skus' and 'sku_count': give one");
  rd.range(bt, "item_amount", sb, w.item_amount, 1, 1'000'000'000);
  rd.range(bt, "quantity", sb, w.quantity, 1, 1'000'000);
  rd.range(bt, "amount", sb, w.amount, 1, 1'000'000'000'000);
  rd.str(bt, "currency", sb, w.currency);
  rd.str(bt, "channel", sb, w.channel, false);
  rd.str(bt, "store", sb, w.store, false);

  const std::string so = "[operations]";
  auto ot = rd.section(root, "operations",
                       {"event", "reward", "partner", "points", "transfer_points", "partner_points",
                        "history_limit"});
  rd.str(ot, "event", so, w.event);
  rd.str(ot, "reward", so, w.reward);
  rd.str(ot, "partner", so, w.partner);
  rd.range(ot, "points", so, w.points, 1, 1'000'000'000);
  rd.range(ot, "transfer_points", so, w.transfer_points, 1, 1'000'000'000);
  rd.range(ot, "partner_points", so, w.partner_points, 1, 1'000'000'000);
  rd.integer(ot, "history_limit", so, w.history_limit, 1, 100);

  const std::string sc = "[connections]";
  auto ct = rd.section(root, "connections", {"count", "depth", "batch"});
  rd.integer(ct, "count", sc, w.connections, 1, limits::connections_max);
  rd.integer(ct, "depth", sc, w.depth, 1, limits::depth_max);
  rd.integer(ct, "batch", sc, w.batch, 1, limits::batch_ops_max);

  const std::string ss = "[schedule]";
  auto st = rd.section(root, "schedule", {"rate_per_s", "steps", "ramp"});
  if (st) {
    auto rate = reader::find(st, "rate_per_s");
    auto steps = reader::find(st, "steps");
    auto ramp = reader::find(st, "ramp");
    int given = (rate != nullptr) + (steps != nullptr) + (ramp != nullptr);
    if (given != 1) {
      rd.fail(*st, "[schedule] needs exactly one of rate_per_s, steps or ramp");
    } else if (rate) {
      if (rd.number(st, "rate_per_s", ss, w.sched.rate_per_s, 0, limits::rate_per_s_max))
        w.sched.k = schedule::kind::rate;
    } else if (steps) {
      if (!steps->is_array() || steps->as_array().empty() || steps->as_array().size() > limits::steps_max) {
        rd.fail(*steps, "'steps' in [schedule] must be an array of 1 to " + std::to_string(limits::steps_max) +
                          " tables { rate_per_s = R, duration_s = S }");
      } else {
        std::vector<step> out;
        bool ok = true;
        for (const auto& e : steps->as_array()) {
          if (!e.is_table()) {
            rd.fail(e, "each element of 'steps' in [schedule] must be a table { rate_per_s = R, duration_s = S }");
            ok = false;
            continue;
          }
          const std::string se = "a step of [schedule]";
          rd.only_keys(e, {"rate_per_s", "duration_s"}, se);
          step s;
          for (const char* key : {"rate_per_s", "duration_s"})
            if (!reader::find(&e, key)) {
              rd.fail(e, std::string("missing key '") + key + "' in " + se);
              ok = false;
            }
          ok &= !reader::find(&e, "rate_per_s") || rd.number(&e, "rate_per_s", se, s.rate_per_s, 0, limits::rate_per_s_max);
          ok &= !reader::find(&e, "duration_s") || rd.number(&e, "duration_s", se, s.duration_s, 0, limits::duration_s_max);
          out.push_back(s);
        }
        if (ok) {
          w.sched.k = schedule::kind::steps;
          w.sched.steps = std::move(out);
        }
      }
    } else {
      const std::string sr = "the ramp of [schedule]";
      if (!ramp->is_table()) {
        rd.fail(*ramp, "'ramp' in [schedule] must be a table { from_per_s, to_per_s, step_per_s, step_duration_s }");
      } else {
        rd.only_keys(*ramp, {"from_per_s", "to_per_s", "step_per_s", "step_duration_s"}, sr);
        ramp_spec r;
        bool ok = true;
        for (const char* key : {"from_per_s", "to_per_s", "step_per_s", "step_duration_s"})
          if (!reader::find(ramp, key)) {
            rd.fail(*ramp, std::string("missing key '") + key + "' in " + sr);
            ok = false;
          }
        ok &= !reader::find(ramp, "from_per_s") || rd.number(ramp, "from_per_s", sr, r.from_per_s, 0, limits::rate_per_s_max);
        ok &= !reader::find(ramp, "to_per_s") || rd.number(ramp, "to_per_s", sr, r.to_per_s, 0, limits::rate_per_s_max);
        ok &= !reader::find(ramp, "step_per_s") || rd.number(ramp, "step_per_s", sr, r.step_per_s, 0, limits::rate_per_s_max);
        ok &= !reader::find(ramp, "step_duration_s") ||
              rd.number(ramp, "step_duration_s", sr, r.step_duration_s, 0, limits::duration_s_max);
        if (ok) {
          if (auto why = ramp_problem(r); !why.empty()) {
            rd.fail(*ramp, why);
          } else {
            w.sched.k = schedule::kind::ramp;
            w.sched.ramp = r;
          }
        }
      }
    }
  }

  const std::string sj = "[objective]";
  auto jt = rd.section(root, "objective",
                       {"percentile", "latency_ms_max", "error_rate_max", "count_refusals", "rate_tolerance", "failures_max",
                        "drain_s"});
  if (jt) {
    w.has_objective = true;
    rd.number(jt, "percentile", sj, w.obj.percentile, 0, 99.9999);
    rd.number(jt, "latency_ms_max", sj, w.obj.latency_ms_max, 0, 3'600'000);
    rd.number(jt, "error_rate_max", sj, w.obj.error_rate_max, 0, 1, true);
    rd.boolean(jt, "count_refusals", sj, w.obj.count_refusals);
    rd.number(jt, "rate_tolerance", sj, w.obj.rate_tolerance, 0, 1, true);
    rd.integer(jt, "failures_max", sj, w.obj.failures_max, 1, limits::steps_max);
    rd.number(jt, "drain_s", sj, w.obj.drain_s, 0, limits::drain_s_max);
  }

  // Mode last: its default depends on the schedule, and its checks on the mix.
  bool mode_given = false;
  if (auto m = reader::find(wt, "mode")) {
    mode_given = true;
    rd.choice(wt, "mode", sw, w.mode,
              {{"closed", run_mode::closed}, {"open", run_mode::open}, {"ramp", run_mode::ramp}});
    if (m->is_string() && m->as_string().str != "closed" && w.sched.k == schedule::kind::none && !st)
      rd.fail(*m, "mode = \"" + m->as_string().str + "\" needs a [schedule] (rate_per_s, steps or ramp)");
  }
  if (!mode_given && w.sched.k != schedule::kind::none)
    w.mode = run_mode::open;  // a schedule without a mode is run open loop

  // Partner operations need a partner; a zipf exponent needs zipf (checked above).
  if (auto mix = root.as_table().find("mix"); mix != root.as_table().end() && mix->second.is_table())
    for (const char* k : {"partner_earn", "partner_burn"})
      if (auto v = reader::find(&mix->second, k); v && v->is_integer() && v->as_integer() > 0 && w.partner.empty())
        rd.fail(*v, std::string(k) + " needs a partner code: 'partner' in [operations]");
}

std::optional<workload> finish(const std::optional<toml::value>& root, const std::string& name,
                               std::vector<std::string>& errors) {
  if (!root)
    return std::nullopt;
  if (!root->is_table()) {
    errors.push_back(name + ":1: a workload file is a TOML table");
    return std::nullopt;
  }
  workload w;
  w.source = name;
  std::vector<std::pair<std::size_t, std::string>> found;
  reader rd(name, found);
  read_workload(*root, rd, w);
  if (!found.empty()) {
    std::stable_sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (auto& [line, msg] : found)
      errors.push_back(name + ":" + std::to_string(line) + ": " + msg);
    return std::nullopt;
  }
  return w;
}

// toml11's messages span several lines; keep the first one, without its tag.
std::string first_line(const std::string& what) {
  auto s = what.substr(0, what.find('\n'));
  if (s.rfind("[error] ", 0) == 0)
    s = s.substr(8);
  return s;
}

template <class F>
std::optional<toml::value> guarded_parse(F parse, const std::string& name, std::vector<std::string>& errors) {
  try {
    return parse();
  } catch (const toml::syntax_error& e) {
    errors.push_back(name + ":" + std::to_string(e.location().line()) + ": syntax error: " + first_line(e.what()));
  } catch (const toml::exception& e) {
    errors.push_back(name + ":" + std::to_string(e.location().line()) + ": " + first_line(e.what()));
  } catch (const std::exception& e) {
    errors.push_back(name + ":1: " + first_line(e.what()));
  }
  return std::nullopt;
}

} // namespace

std::optional<workload> parse_workload(std::string_view text, const std::string& name,
                                       std::vector<std::string>& errors) {
  auto root = guarded_parse(
    [&] {
      std::istringstream in{std::string(text)};
      return toml::parse(in, name);
    },
    name, errors);
  return finish(root, name, errors);
}

std::optional<workload> load_workload(const std::string& path, std::vector<std::string>& errors) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    errors.push_back(path + ": cannot read the workload file");
    return std::nullopt;
  }
  std::string text((std::istreambuf_iterator<char>(f)), {});
  return parse_workload(text, path, errors);
}

bool batchable(op_kind k) noexcept {
  switch (k) {
    case op_kind::earn:
    case op_kind::redeem:
    case op_kind::event:
    case op_kind::hold:
    case op_kind::refund:
    case op_kind::reward:
    case op_kind::transfer:
    case op_kind::balance:
    case op_kind::history:
    case op_kind::partner_earn:
    case op_kind::partner_burn: return true;
    case op_kind::count: return false;
  }
  return false;
}

std::vector<std::string> check_workload(const workload& w) {
  std::vector<std::string> out;
  if (w.batch > 1)
    for (std::size_t k = 0; k < op_kind_count; ++k)
      if (w.mix[k] > 0 && !batchable(static_cast<op_kind>(k)))
        out.push_back(std::string(op_kind_names[k]) + " may not be an element of a batch frame: take it out of the "
                      "mix, or run with batch 1");
  if (w.mode != run_mode::closed && w.sched.k == schedule::kind::none)
    out.push_back("mode " + std::string(to_string(w.mode)) +
                  " needs a schedule: --rate, --steps, --ramp or a workload file's [schedule]");
  int sum = 0;
  for (int v : w.mix)
    sum += v;
  if (sum != 100)
    out.push_back("the mix's percentages add up to " + std::to_string(sum) + ", not 100");
  if ((w.weight(op_kind::partner_earn) > 0 || w.weight(op_kind::partner_burn) > 0) && w.partner.empty())
    out.push_back("partner_earn and partner_burn need a partner code (--partner)");
  if (w.items.max > static_cast<std::int64_t>(limits::items_max))
    out.push_back("at most " + std::to_string(limits::items_max) + " items a basket");
  if (w.items.min < 0)
    out.push_back("items cannot be negative");
  if (w.categories.empty())
    out.push_back("baskets need at least one category");
  if (w.distribution == member_distribution::zipf && !(w.zipf_s > 0))
    out.push_back("the Zipf exponent must be above 0");
  if (w.sched.k == schedule::kind::rate && !(w.sched.rate_per_s > 0))
    out.push_back("the rate must be above 0");
  for (const auto* r : {&w.points, &w.transfer_points, &w.partner_points, &w.item_amount, &w.quantity, &w.amount})
    if (r->min < 1 || r->min > r->max)
      out.push_back("points, amounts and quantities are ranges of positive integers, min <= max");
  if (w.sched.expand(w.duration_s).size() > limits::steps_max)
    out.push_back("more than " + std::to_string(limits::steps_max) + " steps");
  return out;
}

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string range_toml(const int_range& r) {
  return r.min == r.max ? std::to_string(r.min) : "[" + std::to_string(r.min) + ", " + std::to_string(r.max) + "]";
}

std::string strings_toml(const std::vector<std::string>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + quoted(v[i]);
  return s + "]";
}

} // namespace

std::string to_toml(const workload& w) {
  std::ostringstream os;
  os << "# Effective workload (flags applied)" << (w.source.empty() ? "" : ", from " + w.source) << "\n";
  os << "[workload]\nname = " << quoted(w.name) << "\n";
  if (!w.description.empty())
    os << "description = " << quoted(w.description) << "\n";
  os << "mode = \"" << to_string(w.mode) << "\"\n";
  os << "seed = " << w.seed << (w.seed == 0 ? "    # 0: from the clock" : "") << "\n";
  os << "duration_s = " << number_text(w.duration_s) << "\n";
  if (w.soak_interval_s > 0) {
    os << "soak_interval_s = " << number_text(w.soak_interval_s) << "\n";
    if (w.soak_warmup_s >= 0)
      os << "soak_warmup_s = " << number_text(w.soak_warmup_s) << "\n";
    os << "soak_rss_growth_max_pct = " << number_text(w.soak_rss_growth_max_pct) << "\n";
  }
  os << "\n";
  os << "[members]\ncount = " << w.members << "\ndistribution = \""
     << (w.distribution == member_distribution::zipf ? "zipf" : "uniform") << "\"\n";
  if (w.distribution == member_distribution::zipf)
    os << "s = " << number_text(w.zipf_s) << "\n";
  os << "scatter = " << (w.scatter ? "true" : "false") << "\nbrand = " << quoted(w.brand)
     << "\nenroll = " << (w.enroll ? "true" : "false") << "\nenroll_batch = " << w.enroll_batch << "\n\n";
  os << "[mix]\n";
  for (std::size_t i = 0; i < op_kind_count; ++i)
    if (w.mix[i] > 0)
      os << op_kind_names[i] << " = " << w.mix[i] << "\n";
  os << "\n[basket]\nitems = " << range_toml(w.items) << "\ncategories = " << strings_toml(w.categories) << "\n";
  if (!w.skus.empty())
    os << "skus = " << strings_toml(w.skus) << "\n";
  else
    os << "sku_count = " << w.sku_count << "\n";
  os << "item_amount = " << range_toml(w.item_amount) << "\nquantity = " << range_toml(w.quantity)
     << "\namount = " << range_toml(w.amount) << "\ncurrency = " << quoted(w.currency)
     << "\nchannel = " << quoted(w.channel) << "\nstore = " << quoted(w.store) << "\n\n";
  os << "[operations]\nevent = " << quoted(w.event) << "\nreward = " << quoted(w.reward)
     << "\npartner = " << quoted(w.partner) << "\npoints = " << range_toml(w.points)
     << "\ntransfer_points = " << range_toml(w.transfer_points) << "\npartner_points = " << range_toml(w.partner_points)
     << "\n\n";
  os << "[connections]\ncount = " << w.connections << "\ndepth = " << w.depth << "\nbatch = " << w.batch << "\n";
  switch (w.sched.k) {
    case schedule::kind::none: break;
    case schedule::kind::rate: os << "\n[schedule]\nrate_per_s = " << number_text(w.sched.rate_per_s) << "\n"; break;
    case schedule::kind::steps:
      os << "\n[schedule]\nsteps = [\n";
      for (const auto& s : w.sched.steps)
        os << "  { rate_per_s = " << number_text(s.rate_per_s) << ", duration_s = " << number_text(s.duration_s)
           << " },\n";
      os << "]\n";
      break;
    case schedule::kind::ramp:
      os << "\n[schedule]\nramp = { from_per_s = " << number_text(w.sched.ramp.from_per_s)
         << ", to_per_s = " << number_text(w.sched.ramp.to_per_s) << ", step_per_s = "
         << number_text(w.sched.ramp.step_per_s) << ", step_duration_s = " << number_text(w.sched.ramp.step_duration_s)
         << " }\n";
      break;
  }
  if (w.has_objective || w.mode == run_mode::ramp)
    os << "\n[objective]\npercentile = " << number_text(w.obj.percentile)
       << "\nlatency_ms_max = " << number_text(w.obj.latency_ms_max)
       << "\nerror_rate_max = " << number_text(w.obj.error_rate_max)
       << "\ncount_refusals = " << (w.obj.count_refusals ? "true" : "false")
       << "\nrate_tolerance = " << number_text(w.obj.rate_tolerance) << "\nfailures_max = " << w.obj.failures_max
       << "\ndrain_s = " << number_text(w.obj.drain_s) << "\n";
  return os.str();
}

} // namespace loyalty::loadgen
