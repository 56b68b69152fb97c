// A small JSON reader and string writer (RFC 8259) for loyaltyctl's bulk
// import and export (io/ctl/bulk.cpp) and the tests that read what it
// writes: one value per line, nested at most json_depth_max deep. Numbers
// are kept as their text, so 64-bit integers come back exactly.
// Header-only, no state shared.
#pragma once

#include "io/wire/json.hpp"

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loyalty::io::detail {

// Arrays and objects inside each other: an import row needs 2.
inline constexpr std::size_t json_depth_max = 32;

struct json_value {
  enum class kind : std::uint8_t { null, boolean, number, string, array, object };
  kind type = kind::null;
  bool boolean = false;
  bool integer = false;  // a number without fraction or exponent
  std::string text;      // a number's text, a string's value (UTF-8)
  std::vector<json_value> items;                          // array
  std::vector<std::pair<std::string, json_value>> members;  // object, in file order

  // The first member named `key` of an object, or null.
  [[nodiscard]] const json_value* find(std::string_view key) const {
    for (const auto& [k, v] : members)
      if (k == key)
        return &v;
    return nullptr;
  }
  // An integer number that fits; false otherwise.
  [[nodiscard]] bool to_i64(std::int64_t& out) const {
    if (type != kind::number || !integer)
      return false;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && p == text.data() + text.size();
  }
  [[nodiscard]] bool to_u64(std::uint64_t& out) const {
    if (type != kind::number || !integer || text.front() == '-')
      return false;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && p == text.data() + text.size();
  }
};

// `s` as a JSON string, quotes included. UTF-8 passes through; control
// characters, quotes and backslashes are escaped.
[[nodiscard]] inline std::string json_string(std::string_view s) { return quoted(s); }

// Parses `text` (one value, white space around it allowed) into `out`.
// False with `error` set (a sentence naming the byte offset) otherwise.
class json_parser {
public:
  static bool parse(std::string_view text, json_value& out, std::string& error) {
    json_parser p(text);
    if (!p.value(out, 0) || !(p.skip_ws(), p.at_end() || p.fail("text after the value"))) {
      error = p.error_;
      return false;
    }
    return true;
  }

private:
  explicit json_parser(std::string_view t) : t_(t) {}

  [[nodiscard]] bool at_end() const { return i_ >= t_.size(); }
  [[nodiscard]] char peek() const { return at_end() ? '\0' : t_[i_]; }
  bool fail(const std::string& what) {
    if (error_.empty())
      error_ = what + " at byte " + std::to_string(i_ + 1);
    return false;
  }
  void skip_ws() {
    while (!at_end() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\r' || t_[i_] == '\n'))
      ++i_;
  }
  bool literal(std::string_view word) {
    if (t_.substr(i_, word.size()) != word)
      return fail("not a JSON value");
    i_ += word.size();
    return true;
  }

  bool value(json_value& v, std::size_t depth) {
    skip_ws();
    if (depth > json_depth_max)
      return fail("values nested too deep");
    switch (peek()) {
      case '{': return object(v, depth);
      case '[': return array(v, depth);
      case '"': v.type = json_value::kind::string; return string(v.text);
      case 't': v.type = json_value::kind::boolean, v.boolean = true; return literal("true");
      case 'f': v.type = json_value::kind::boolean; return literal("false");
      case 'n': v.type = json_value::kind::null; return literal("null");
      default: return number(v);
    }
  }

  // After an opening bracket: elements, each read by `element`, separated
  // by commas, up to `close`.
  template <class F>
  bool sequence(char close, F element) {
    ++i_;
    skip_ws();
    if (peek() == close)
      return ++i_, true;
    for (;;) {
      if (!element())
        return false;
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() == close)
        return ++i_, true;
      return fail(std::string("',' or '") + close + "' expected");
    }
  }

  bool object(json_value& v, std::size_t depth) {
    v.type = json_value::kind::object;
    return sequence('}', [&] {
      skip_ws();
      std::string key;
      if (peek() != '"' || !string(key))
        return fail("an object key must be a string");
      skip_ws();
      if (peek() != ':')
        return fail("':' expected");
      ++i_;
      json_value member;
      if (!value(member, depth + 1))
        return false;
      v.members.emplace_back(std::move(key), std::move(member));
      return true;
    });
  }

  bool array(json_value& v, std::size_t depth) {
    v.type = json_value::kind::array;
    return sequence(']', [&] {
      json_value item;
      if (!value(item, depth + 1))
        return false;
      v.items.push_back(std::move(item));
      return true;
    });
  }

  bool digits() {
    const auto start = i_;
    while (!at_end() && t_[i_] >= '0' && t_[i_] <= '9')
      ++i_;
    return i_ > start;
  }

  bool number(json_value& v) {
    const auto start = i_;
    if (peek() == '-')
      ++i_;
    if (peek() == '0')
      ++i_;
    else if (!digits())
      return fail("not a JSON value");
    v.integer = true;
    if (peek() == '.') {
      ++i_;
      v.integer = false;
      if (!digits())
        return fail("digits expected after '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      v.integer = false;
      if (peek() == '+' || peek() == '-')
        ++i_;
      if (!digits())
        return fail("digits expected in the exponent");
    }
    v.type = json_value::kind::number;
    v.text.assign(t_.substr(start, i_ - start));
    return true;
  }

  bool hex4(std::uint32_t& out) {
    out = 0;
    for (int k = 0; k < 4; ++k, ++i_) {
      const char c = peek();
      out <<= 4;
      if (c >= '0' && c <= '9') out |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') out |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') out |= static_cast<std::uint32_t>(c - 'A' + 10);
      else return fail("four hex digits expected after \\u");
    }
    return true;
  }

  static void utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool escape(std::string& out) {
    const char c = peek();
    ++i_;
    switch (c) {
      case '"': out += '"'; return true;
      case '\\': out += '\\'; return true;
      case '/': out += '/'; return true;
      case 'b': out += '\b'; return true;
      case 'f': out += '\f'; return true;
      case 'n': out += '\n'; return true;
      case 'r': out += '\r'; return true;
      case 't': out += '\t'; return true;
      case 'u': break;
      default: --i_; return fail("unknown escape");
    }
    std::uint32_t cp = 0;
    if (!hex4(cp))
      return false;
    if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair
      std::uint32_t low = 0;
      if (peek() != '\\' || t_.substr(i_, 2) != "\\u" || (i_ += 2, !hex4(low)) || low < 0xDC00 || low > 0xDFFF)
        return fail("a lone UTF-16 surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      return fail("a lone UTF-16 surrogate");
    }
    utf8(out, cp);
    return true;
  }

  bool string(std::string& out) {
    ++i_;  // the opening quote
    for (;;) {
      if (at_end())
        return fail("a string is not closed");
      const char c = t_[i_];
      if (c == '"')
        return ++i_, true;
      if (static_cast<unsigned char>(c) < 0x20)
        return fail("a control character in a string");
      ++i_;
      if (c == '\\') {
        if (!escape(out))
          return false;
      } else {
        out += c;
      }
    }
  }

  std::string_view t_;
  std::size_t i_ = 0;
  std::string error_;
};

} // namespace loyalty::io::detail
