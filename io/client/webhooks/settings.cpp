// Every problem is collected as "file:line: message" (as config/program.cpp
// does for the program file); nothing is accepted with an error in it.
#include "io/client/webhooks/settings.hpp"

#include "config/consent.hpp"
#include "config/toml_checker.hpp"
#include "io/wire/protocol.hpp"

#include <toml.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

namespace loyalty::webhooks {

namespace {

using checker = toml_checker;

// Fields that keep their default when the key is absent.
void read_uint32(checker& ck, const toml::value& t, const std::string& key, const std::string& what,
                 std::uint32_t& out, std::int64_t lo, std::int64_t hi) {
  if (auto v = ck.integer(t, key, false, what, lo, hi))
    out = static_cast<std::uint32_t>(*v);
}

void read_bool(checker& ck, const toml::value& t, const std::string& key, const std::string& what, bool& out) {
  if (auto v = ck.boolean(t, key, false, what))
    out = *v;
}

// Relative paths are relative to the settings file, as in loyaltyd.toml.
std::string beside(const std::string& settings_file, const std::string& path) {
  if (path.empty() || std::filesystem::path(path).is_absolute())
    return path;
  return (std::filesystem::path(settings_file).parent_path() / path).lexically_normal().string();
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > endpoint_name_bytes_max)
    return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

void parse_engine(checker& ck, const toml::value& root, const std::string& file, settings& s) {
  const auto* e = ck.section(root, "engine", true);
  if (e == nullptr)
    return;
  const std::string what = "[engine]";
  ck.only_keys(*e, {"address", "key", "tls", "ca_file", "tls_verify"}, what);
  if (auto a = ck.str(*e, "address", true, what)) {
    if (!io::split_address(*a, s.host, s.port))
      ck.fail(*ck.get(*e, "address", false, what), "'address' in [engine] must be host:port, got \"" + *a + "\"");
  }
  if (auto k = ck.str(*e, "key", false, what))
    s.key = *k;
  read_bool(ck, *e, "tls", what, s.tls.enabled);
  if (auto ca = ck.str(*e, "ca_file", false, what))
    s.tls.ca_file = beside(file, *ca);
  read_bool(ck, *e, "tls_verify", what, s.tls.verify);
}

void parse_state(checker& ck, const toml::value& root, const std::string& file, settings& s) {
  const auto* st = ck.section(root, "state", true);
  if (st == nullptr)
    return;
  const std::string what = "[state]";
  ck.only_keys(*st, {"dir", "start"}, what);
  if (auto d = ck.str(*st, "dir", true, what))
    s.state_dir = beside(file, *d);
  if (auto start = ck.str(*st, "start", false, what)) {
    if (*start == "end")
      s.start = start_point::end;
    else if (*start == "beginning")
      s.start = start_point::beginning;
    else
      ck.fail(*ck.get(*st, "start", false, what),
              "'start' in [state] must be \"end\" or \"beginning\", got \"" + *start + "\"");
  }
}

void parse_filters(checker& ck, const toml::value& t, const std::string& what, endpoint_settings& ep) {
  if (const auto* types = ck.get(t, "types", false, what)) {
    if (!types->is_array() || types->as_array().empty()) {
      ck.fail(*types, "'types' in " + what + " must be a non-empty array of event type names");
    } else {
      for (const auto& n : types->as_array()) {
        const std::uint32_t bit = n.is_string() ? io::event_type_bit(n.as_string().str) : 0;
        if (bit == 0)
          ck.fail(n, "'types' in " + what + ": " + (n.is_string() ? "\"" + n.as_string().str + "\"" : "a value") +
                       " is not an event type (docs/PROTOCOL.md, \"subscribe\")");
        ep.types |= bit;
      }
    }
  }
  if (auto c = ck.str(t, "consent", false, what)) {
    ep.consent = consent_bit(*c);
    if (ep.consent == 0)
      ck.fail(*ck.get(t, "consent", false, what), "'consent' in " + what + ": \"" + *c + "\" is not a consent channel");
  }
  if (auto b = ck.str(t, "brand", false, what))
    ep.brand = *b;
}

void parse_endpoint(checker& ck, const toml::value& t, const std::string& file, std::set<std::string>& names,
                    settings& s) {
  endpoint_settings ep;
  std::string what = "[[endpoints]]";
  ck.only_keys(t,
               {"name", "url", "secret", "types", "consent", "brand", "timeout_ms", "connect_timeout_ms",
                "backoff_initial_ms", "backoff_max_ms", "attempts_max", "ca_file", "tls_verify"},
               what);
  if (auto n = ck.str(t, "name", true, what)) {
    ep.name = *n;
    what = "endpoint '" + ep.name + "'";
    if (!valid_name(ep.name))
      ck.fail(*ck.get(t, "name", false, what), "'name' must be 1 to 64 of A-Z a-z 0-9 _ -");
    else if (!names.insert(ep.name).second)
      ck.fail(*ck.get(t, "name", false, what), "a second endpoint named '" + ep.name + "'");
  }
  if (auto u = ck.str(t, "url", true, what)) {
    ep.url = *u;
    if (ep.url.rfind("http://", 0) != 0 && ep.url.rfind("https://", 0) != 0)
      ck.fail(*ck.get(t, "url", false, what), "'url' in " + what + " must start with http:// or https://");
  }
  if (auto sec = ck.str(t, "secret", true, what)) {
    ep.secret = *sec;
    if (ep.secret.size() < 16)
      ck.fail(*ck.get(t, "secret", false, what), "'secret' in " + what + " must have at least 16 bytes");
  }
  parse_filters(ck, t, what, ep);
  constexpr std::int64_t hour_ms = 3'600'000;
  read_uint32(ck, t, "timeout_ms", what, ep.timeout_ms, 1, hour_ms);
  read_uint32(ck, t, "connect_timeout_ms", what, ep.connect_timeout_ms, 1, hour_ms);
  read_uint32(ck, t, "backoff_initial_ms", what, ep.backoff_initial_ms, 1, hour_ms);
  read_uint32(ck, t, "backoff_max_ms", what, ep.backoff_max_ms, 1, 24 * hour_ms);
  read_uint32(ck, t, "attempts_max", what, ep.attempts_max, 0, 1'000'000);
  if (ep.backoff_max_ms < ep.backoff_initial_ms)
    ck.fail(t, "'backoff_max_ms' in " + what + " must be at least 'backoff_initial_ms'");
  if (auto ca = ck.str(t, "ca_file", false, what))
    ep.ca_file = beside(file, *ca);
  read_bool(ck, t, "tls_verify", what, ep.tls_verify);
  s.endpoints.push_back(std::move(ep));
}

} // namespace

std::optional<settings> load_settings(const std::string& path, std::vector<std::string>& errors) {
  const std::size_t before = errors.size();
  toml::value root;
  try {
    root = toml::parse(path);
  } catch (const std::exception& e) {
    // toml11's message names the file, line and column itself.
    errors.push_back(path + ": " + e.what());
    return std::nullopt;
  }
  std::vector<config_error> found;
  checker ck(path, found, "the settings file");
  settings s;
  ck.only_keys(root, {"engine", "state", "endpoints"}, "the settings file");
  parse_engine(ck, root, path, s);
  parse_state(ck, root, path, s);
  const auto* eps = ck.get(root, "endpoints", true, "the settings file");
  if (eps != nullptr) {
    if (!eps->is_array() || eps->as_array().empty() || eps->as_array().size() > endpoints_max) {
      ck.fail(*eps, "'endpoints' must be 1 to " + std::to_string(endpoints_max) + " tables ([[endpoints]])");
    } else {
      std::set<std::string> names;
      for (const auto& t : eps->as_array()) {
        if (t.is_table())
          parse_endpoint(ck, t, path, names, s);
        else
          ck.fail(t, "each element of 'endpoints' must be a table ([[endpoints]])");
      }
    }
  }
  for (auto& e : found)
    errors.push_back(std::move(e.message));
  if (errors.size() != before)
    return std::nullopt;
  return s;
}

} // namespace loyalty::webhooks
