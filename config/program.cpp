// Loading and validating the program and engine settings (toml11 3.7).
// Every problem is collected as "file:line: message"; nothing is accepted
// partially.
#include "config/program.hpp"

#include <toml.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

namespace loyalty {

const brand_def* program::find_brand(std::string_view code) const noexcept {
  for (const auto& b : brands)
    if (b.code == code)
      return &b;
  return nullptr;
}

const brand_def* program::find_brand(std::uint32_t id) const noexcept {
  for (const auto& b : brands)
    if (b.id == id)
      return &b;
  return nullptr;
}

std::uint32_t program::tier_for(std::int64_t lifetime_points) const noexcept {
  std::uint32_t result = 0;
  for (std::uint32_t i = 0; i < tiers.size(); ++i)
    if (tiers[i].threshold <= lifetime_points)
      result = i;
  return result;
}

namespace {

using table = toml::value;

// Collects errors with file and line of the offending value.
class checker {
public:
  checker(std::string file, std::vector<config_error>& errors) : file_(std::move(file)), errors_(errors) {}

  void fail(const toml::value& where, const std::string& msg) {
    auto line = where.location().line();
    std::ostringstream os;
    os << file_ << ':' << line << ": " << msg;
    errors_.push_back({os.str()});
  }
  void fail(const std::string& msg) { errors_.push_back({file_ + ": " + msg}); }

  // Reports keys of `t` not in `allowed`.
  void only_keys(const toml::value& t, std::initializer_list<std::string_view> allowed,
                 const std::string& what) {
    if (!t.is_table())
      return;
    for (const auto& [k, v] : t.as_table())
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
        fail(v, "unknown key '" + k + "' in " + what);
  }

  const toml::value* get(const toml::value& t, const std::string& key, bool required,
                         const std::string& what) {
    if (!t.is_table()) {
      fail(t, what + " must be a table");
      return nullptr;
    }
    auto& tab = t.as_table();
    auto it = tab.find(key);
    if (it == tab.end()) {
      if (required)
        fail(t, "missing key '" + key + "' in " + what);
      return nullptr;
    }
    return &it->second;
  }

  std::optional<std::string> str(const toml::value& t, const std::string& key, bool required,
                                 const std::string& what) {
    auto v = get(t, key, required, what);
    if (!v)
      return std::nullopt;
    if (!v->is_string()) {
      fail(*v, "'" + key + "' in " + what + " must be a string");
      return std::nullopt;
    }
    return v->as_string().str;
  }

  std::optional<std::int64_t> integer(const toml::value& t, const std::string& key, bool required,
                                      const std::string& what, std::int64_t lo, std::int64_t hi) {
    auto v = get(t, key, required, what);
    if (!v)
      return std::nullopt;
    if (!v->is_integer()) {
      fail(*v, "'" + key + "' in " + what + " must be an integer");
      return std::nullopt;
    }
    auto x = v->as_integer();
    if (x < lo || x > hi) {
      fail(*v, "'" + key + "' in " + what + " must be between " + std::to_string(lo) + " and " +
                 std::to_string(hi) + ", got " + std::to_string(x));
      return std::nullopt;
    }
    return x;
  }

  // A rational written as { num = N, den = D }.
  std::optional<rational> ratio(const toml::value& t, const std::string& key, bool required,
                                const std::string& what, bool allow_zero) {
    auto v = get(t, key, required, what);
    if (!v)
      return std::nullopt;
    if (!v->is_table()) {
      fail(*v, "'" + key + "' in " + what + " must be a table { num = N, den = D }");
      return std::nullopt;
    }
    auto sub = what + "." + key;
    only_keys(*v, {"num", "den"}, sub);
    // Bounded so that amount (< 2^63) * num * num2 fits in 128 bits.
    constexpr std::int64_t ratio_part_max = 1'000'000'000;
    auto num = integer(*v, "num", true, sub, allow_zero ? 0 : 1, ratio_part_max);
    auto den = integer(*v, "den", true, sub, 1, ratio_part_max);
    if (!num || !den)
      return std::nullopt;
    return rational{static_cast<std::uint64_t>(*num), static_cast<std::uint64_t>(*den)};
  }

private:
  std::string file_;
  std::vector<config_error>& errors_;
};

bool valid_code(const std::string& s) {
  if (s.empty() || s.size() > 64)
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::optional<program> build_program(const toml::value& root, const std::string& file,
                                     std::vector<config_error>& errors) {
  auto before = errors.size();
  checker ck(file, errors);
  program p;
  ck.only_keys(root, {"program", "brands", "tiers"}, "the program file");
  if (auto head = ck.get(root, "program", true, "the program file")) {
    ck.only_keys(*head, {"name", "currency", "minor_units"}, "[program]");
    p.name = ck.str(*head, "name", true, "[program]").value_or("");
    p.currency = ck.str(*head, "currency", true, "[program]").value_or("EUR");
    if (p.currency.size() != 3 ||
        !std::all_of(p.currency.begin(), p.currency.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
      if (auto cv = ck.get(*head, "currency", false, "[program]"))
        ck.fail(*cv, "currency must be a 3-letter ISO 4217 code in capitals");
    p.minor_units = static_cast<std::uint32_t>(ck.integer(*head, "minor_units", false, "[program]", 0, 4).value_or(2));
  }
  if (auto brands = ck.get(root, "brands", true, "the program file")) {
    if (!brands->is_array() || brands->as_array().empty()) {
      ck.fail(*brands, "brands must be a non-empty array of tables ([[brands]])");
    } else {
      std::set<std::uint32_t> ids;
      std::set<std::string> codes;
      for (const auto& b : brands->as_array()) {
        const std::string what = "[[brands]]";
        ck.only_keys(b, {"id", "code", "name", "earn_rate"}, what);
        brand_def d;
        auto id = ck.integer(b, "id", true, what, 1, 0xFFFFFFFF);
        auto code = ck.str(b, "code", true, what);
        d.name = ck.str(b, "name", false, what).value_or("");
        auto rate = ck.ratio(b, "earn_rate", true, what, true);
        if (id) {
          d.id = static_cast<std::uint32_t>(*id);
          if (!ids.insert(d.id).second)
            ck.fail(*ck.get(b, "id", false, what), "duplicate brand id " + std::to_string(d.id));
        }
        if (code) {
          d.code = *code;
          if (!valid_code(d.code))
            ck.fail(*ck.get(b, "code", false, what), "brand code '" + d.code + "' must be 1..64 of a-z 0-9 _ -");
          else if (!codes.insert(d.code).second)
            ck.fail(*ck.get(b, "code", false, what), "duplicate brand code '" + d.code + "'");
        }
        if (rate)
          d.earn_rate = *rate;
        p.brands.push_back(std::move(d));
      }
    }
  }
  if (auto tiers = ck.get(root, "tiers", true, "the program file")) {
    if (!tiers->is_array() || tiers->as_array().empty()) {
      ck.fail(*tiers, "tiers must be a non-empty array of tables ([[tiers]])");
    } else {
      std::set<std::string> names;
      for (const auto& t : tiers->as_array()) {
        const std::string what = "[[tiers]]";
        ck.only_keys(t, {"name", "threshold", "multiplier"}, what);
        tier_def d;
        d.name = ck.str(t, "name", true, what).value_or("");
        if (!d.name.empty() && !names.insert(d.name).second)
          ck.fail(t, "duplicate tier name '" + d.name + "'");
        auto th = ck.integer(t, "threshold", true, what, 0, INT64_MAX);
        if (th)
          d.threshold = *th;
        auto m = ck.ratio(t, "multiplier", true, what, false);
        if (m)
          d.multiplier = *m;
        if (!p.tiers.empty() && th && d.threshold <= p.tiers.back().threshold)
          ck.fail(*ck.get(t, "threshold", false, what),
                  "tier thresholds must strictly increase in file order ('" + d.name + "')");
        p.tiers.push_back(std::move(d));
      }
      if (!p.tiers.empty() && p.tiers.front().threshold != 0)
        ck.fail(tiers->as_array().front(), "the first tier must have threshold = 0");
    }
  }
  std::sort(p.brands.begin(), p.brands.end(), [](auto& a, auto& b) { return a.id < b.id; });
  if (errors.size() != before)
    return std::nullopt;
  return p;
}

template <class F>
auto parse_guarded(F&& f, const std::string& file, std::vector<config_error>& errors)
  -> std::optional<toml::value> {
  try {
    return f();
  } catch (const toml::syntax_error& e) {
    errors.push_back({file + ": syntax error: " + e.what()});
  } catch (const std::exception& e) {
    errors.push_back({file + ": " + e.what()});
  }
  return std::nullopt;
}

} // namespace

std::optional<program> parse_program(std::string_view text, const std::string& name,
                                     std::vector<config_error>& errors) {
  auto root = parse_guarded(
    [&] {
      std::istringstream in{std::string(text)};
      return toml::parse(in, name);
    },
    name, errors);
  if (!root)
    return std::nullopt;
  return build_program(*root, name, errors);
}

std::optional<program> load_program(const std::string& path, std::vector<config_error>& errors) {
  if (!std::filesystem::exists(path)) {
    errors.push_back({path + ": no such file"});
    return std::nullopt;
  }
  auto root = parse_guarded([&] { return toml::parse(path); }, path, errors);
  if (!root)
    return std::nullopt;
  return build_program(*root, path, errors);
}

std::optional<engine_settings> load_settings(const std::string& path,
                                             std::vector<config_error>& errors) {
  if (!std::filesystem::exists(path)) {
    errors.push_back({path + ": no such file"});
    return std::nullopt;
  }
  auto root = parse_guarded([&] { return toml::parse(path); }, path, errors);
  if (!root)
    return std::nullopt;
  auto before = errors.size();
  checker ck(path, errors);
  engine_settings s;
  ck.only_keys(*root, {"engine"}, "the settings file");
  const toml::value* e = ck.get(*root, "engine", true, "the settings file");
  if (!e)
    return std::nullopt;
  const std::string w = "[engine]";
  ck.only_keys(*e, {"program", "listen_host", "listen_port", "data_dir", "map_gib", "durability",
                    "batch_entries_max", "commit_window_us", "checkpoint_accounts_max",
                    "checkpoint_interval_ms", "inflight_per_connection_max",
                    "inflight_total_max", "connections_max", "active_members_max",
                    "member_idle_s", "io_threads", "actor_threads"},
               w);
  auto base = std::filesystem::path(path).parent_path();
  if (auto prog = ck.str(*e, "program", true, w)) {
    std::filesystem::path pp(*prog);
    s.program_path = (pp.is_absolute() ? pp : base / pp).lexically_normal().string();
  }
  if (auto h = ck.str(*e, "listen_host", false, w))
    s.listen_host = *h;
  if (auto v = ck.integer(*e, "listen_port", false, w, 0, 65535))
    s.listen_port = static_cast<std::uint16_t>(*v);
  if (auto d = ck.str(*e, "data_dir", false, w)) {
    std::filesystem::path dp(*d);
    s.data_dir = (dp.is_absolute() ? dp : base / dp).lexically_normal().string();
  }
  if (auto v = ck.integer(*e, "map_gib", false, w, 1, 1 << 20))
    s.map_bytes = static_cast<std::uint64_t>(*v) << 30;
  if (auto d = ck.str(*e, "durability", false, w)) {
    if (*d == "fsync")
      s.sync = durability::fsync;
    else if (*d == "nosync_unsafe")
      s.sync = durability::nosync_unsafe;
    else
      ck.fail(*ck.get(*e, "durability", false, w), "durability must be \"fsync\" or \"nosync_unsafe\"");
  }
  auto u32 = [&](const char* key, std::uint32_t& out, std::int64_t lo, std::int64_t hi) {
    if (auto v = ck.integer(*e, key, false, w, lo, hi))
      out = static_cast<std::uint32_t>(*v);
  };
  u32("batch_entries_max", s.batch_entries_max, 1, 1'000'000);
  u32("commit_window_us", s.commit_window_us, 0, 1'000'000);
  u32("checkpoint_accounts_max", s.checkpoint_accounts_max, 1, 100'000'000);
  u32("checkpoint_interval_ms", s.checkpoint_interval_ms, 1, 3'600'000);
  u32("inflight_per_connection_max", s.inflight_per_connection_max, 1, 1'000'000);
  u32("inflight_total_max", s.inflight_total_max, 1, 10'000'000);
  u32("connections_max", s.connections_max, 1, 100'000);
  u32("active_members_max", s.active_members_max, 1, 100'000'000);
  u32("member_idle_s", s.member_idle_s, 1, 86'400 * 365);
  u32("io_threads", s.io_threads, 1, 64);
  u32("actor_threads", s.actor_threads, 0, 256);
  if (errors.size() != before)
    return std::nullopt;
  return s;
}

} // namespace loyalty
