// The load generator's binary run by a test, and its JSON summary read back:
// a process of its own (as a user runs it), its stdout and stderr in a file.
// Needs LOYALTY_LOADGEN_BIN defined to the binary's path.
#pragma once

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loyalty::test {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// Runs the load generator with `args`; its stdout and stderr land in `out`.
inline int run_loadgen(const std::string& args, const std::filesystem::path& dir, std::string& out) {
  const auto log = dir / "loadgen.out";
  const std::string cmd = std::string(LOYALTY_LOADGEN_BIN) + " " + args + " > " + log.string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  out = slurp(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Just enough JSON to check that a summary parses and to read a few fields.
struct json {
  enum class kind { null, boolean, number, string, array, object } k = kind::null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<json> items;
  std::vector<std::pair<std::string, json>> fields;

  const json* operator[](const std::string& key) const {
    for (const auto& [k2, v] : fields)
      if (k2 == key)
        return &v;
    return nullptr;
  }
};

class json_reader {
public:
  explicit json_reader(std::string_view s) : s_(s) {}

  bool document(json& out) {
    if (!value(out))
      return false;
    space();
    return pos_ == s_.size();
  }

private:
  void space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool literal(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w)
      return false;
    pos_ += w.size();
    return true;
  }
  bool string(std::string& out) {
    if (pos_ >= s_.size() || s_[pos_] != '"')
      return false;
    ++pos_;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (static_cast<unsigned char>(c) < 0x20)
        return false;
      if (c == '\\') {
        if (pos_ >= s_.size())
          return false;
        char e = s_[pos_++];
        if (e == 'u') {
          if (pos_ + 4 > s_.size())
            return false;
          pos_ += 4;
          out += '?';
          continue;
        }
        if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos)
          return false;
        out += e;
        continue;
      }
      out += c;
    }
    if (pos_ >= s_.size())
      return false;
    ++pos_;
    return true;
  }
  bool value(json& v) {
    space();
    if (pos_ >= s_.size())
      return false;
    char c = s_[pos_];
    if (c == '{') {
      v.k = json::kind::object;
      ++pos_;
      space();
      if (pos_ < s_.size() && s_[pos_] == '}')
        return ++pos_, true;
      for (;;) {
        space();
        std::string key;
        if (!string(key))
          return false;
        space();
        if (!literal(":"))
          return false;
        json item;
        if (!value(item))
          return false;
        v.fields.emplace_back(std::move(key), std::move(item));
        space();
        if (literal(","))
          continue;
        return literal("}");
      }
    }
    if (c == '[') {
      v.k = json::kind::array;
      ++pos_;
      space();
      if (pos_ < s_.size() && s_[pos_] == ']')
        return ++pos_, true;
      for (;;) {
        json item;
        if (!value(item))
          return false;
        v.items.push_back(std::move(item));
        space();
        if (literal(","))
          continue;
        return literal("]");
      }
    }
    if (c == '"') {
      v.k = json::kind::string;
      return string(v.str);
    }
    if (literal("true")) {
      v.k = json::kind::boolean;
      v.b = true;
      return true;
    }
    if (literal("false")) {
      v.k = json::kind::boolean;
      return true;
    }
    if (literal("null"))
      return true;
    const char* begin = s_.data() + pos_;
    char* end = nullptr;
    std::string tmp(s_.substr(pos_, 40));
    v.num = std::strtod(tmp.c_str(), &end);
    if (end == tmp.c_str())
      return false;
    v.k = json::kind::number;
    pos_ += static_cast<std::size_t>(end - tmp.c_str());
    (void)begin;
    return true;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

inline json parse_json_file(const std::filesystem::path& p) {
  const auto text = slurp(p);
  json j;
  INFO(text.substr(0, 2000));
  REQUIRE(json_reader(text).document(j));
  REQUIRE(j.k == json::kind::object);
  return j;
}

inline bool is_number(const json* j) { return j && j->k == json::kind::number; }

} // namespace loyalty::test
