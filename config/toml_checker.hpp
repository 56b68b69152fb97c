// Reading a TOML file with every problem collected as "file:line: message"
// (toml11 3.7): the checks the program file, the engine settings
// (config/program.cpp) and loyalty-webhooks' settings share. Nothing here
// throws for a value of the wrong type; the caller decides what an error
// means (a file is accepted only when none was collected).
#pragma once

#include "config/program.hpp"

#include <toml.hpp>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loyalty {

class toml_checker {
public:
  // `root_what` names the file's root in messages ("the program file").
  toml_checker(std::string file, std::vector<config_error>& errors, std::string root_what = "the program file")
      : file_(std::move(file)), root_what_(std::move(root_what)), errors_(errors) {}

  void fail(const toml::value& where, const std::string& msg) {
    auto line = where.location().line();
    std::ostringstream os;
    os << file_ << ':' << line << ": " << msg;
    errors_.push_back({os.str()});
  }
  void fail(const std::string& msg) { errors_.push_back({file_ + ": " + msg}); }

  // Reports keys of `t` not in `allowed`, in line order.
  void only_keys(const toml::value& t, std::initializer_list<std::string_view> allowed,
                 const std::string& what) {
    if (!t.is_table())
      return;
    std::vector<std::pair<std::size_t, std::string>> unknown;
    for (const auto& [k, v] : t.as_table())
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
        unknown.emplace_back(v.location().line(), k);
    std::sort(unknown.begin(), unknown.end());
    for (const auto& [line, k] : unknown)
      fail(t.as_table().at(k), "unknown key '" + k + "' in " + what);
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

  // A section [key] of the root: nullptr when absent (an error if required) or not a table.
  const toml::value* section(const toml::value& root, const std::string& key, bool required = false) {
    auto v = get(root, key, required, root_what_);
    if (v && !v->is_table()) {
      fail(*v, "'" + key + "' must be a table ([" + key + "])");
      return nullptr;
    }
    return v;
  }

  // An array of tables [[key]]: nullptr when absent or not an array. Elements
  // that are not tables are reported here; callers skip them.
  const toml::array* table_array(const toml::value& root, const std::string& key, bool required) {
    auto v = get(root, key, required, root_what_);
    if (!v)
      return nullptr;
    if (!v->is_array() || (required && v->as_array().empty())) {
      fail(*v, std::string(key) + " must be " + (required ? "a non-empty " : "an ") +
                 "array of tables ([[" + key + "]])");
      return nullptr;
    }
    for (const auto& e : v->as_array())
      if (!e.is_table())
        fail(e, "each element of " + key + " must be a table ([[" + key + "]])");
    return &v->as_array();
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

  std::optional<bool> boolean(const toml::value& t, const std::string& key, bool required, const std::string& what) {
    auto v = get(t, key, required, what);
    if (!v)
      return std::nullopt;
    if (!v->is_boolean()) {
      fail(*v, "'" + key + "' in " + what + " must be true or false");
      return std::nullopt;
    }
    return v->as_boolean();
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

  // One of a fixed set of strings, mapped to its value.
  template <class T>
  std::optional<T> choice(const toml::value& t, const std::string& key, bool required,
                          const std::string& what,
                          std::initializer_list<std::pair<std::string_view, T>> options) {
    auto s = str(t, key, required, what);
    if (!s)
      return std::nullopt;
    for (const auto& [name, value] : options)
      if (name == *s)
        return value;
    std::string list;
    for (const auto& [name, value] : options)
      list += (list.empty() ? "\"" : ", \"") + std::string(name) + "\"";
    fail(*get(t, key, false, what),
         "'" + key + "' in " + what + " must be one of " + list + ", got \"" + *s + "\"");
    return std::nullopt;
  }

  // A non-empty array of strings, each checked by `valid` (which describes the
  // problem, or returns an empty string). Duplicates are reported.
  template <class Valid>
  std::optional<std::vector<std::string>> str_list(const toml::value& t, const std::string& key,
                                                   const std::string& what, Valid&& valid) {
    auto v = get(t, key, false, what);
    if (!v)
      return std::nullopt;
    if (!v->is_array()) {
      fail(*v, "'" + key + "' in " + what + " must be an array of strings");
      return std::nullopt;
    }
    if (v->as_array().empty()) {
      fail(*v, "'" + key + "' in " + what + " must not be empty (omit it to match any)");
      return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    for (const auto& e : v->as_array()) {
      if (!e.is_string()) {
        fail(e, "each element of '" + key + "' in " + what + " must be a string");
        ok = false;
        continue;
      }
      const std::string& s = e.as_string().str;
      if (auto problem = valid(s); !problem.empty()) {
        fail(e, "'" + key + "' in " + what + ": \"" + s + "\" " + problem);
        ok = false;
      } else if (std::find(out.begin(), out.end(), s) != out.end()) {
        fail(e, "'" + key + "' in " + what + " lists \"" + s + "\" twice");
        ok = false;
      } else {
        out.push_back(s);
      }
    }
    if (!ok)
      return std::nullopt;
    return out;
  }

private:
  std::string file_;
  std::string root_what_;
  std::vector<config_error>& errors_;
};

} // namespace loyalty
