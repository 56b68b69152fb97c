#include "io/ctl/stream.hpp"

#include "config/consent.hpp"
#include "io/wire/json.hpp"

#include <iostream>
#include <sstream>

namespace loyalty::io {

namespace {

// Splits "a,b,c" and maps each name to its bit with `bit_of` (0: unknown).
template <class BitOf>
std::string parse_names(const std::string& text, std::uint32_t& bits, BitOf bit_of, const char* what) {
  bits = 0;
  std::stringstream ss(text);
  std::string name;
  while (std::getline(ss, name, ',')) {
    if (name.empty())
      continue;
    const std::uint32_t bit = bit_of(name);
    if (bit == 0)
      return "unknown " + std::string(what) + " '" + name + "'";
    bits |= bit;
  }
  return {};
}

template <class Names>
std::string names_of(std::uint32_t bits, const Names& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size(); ++i)
    if ((bits & (1u << i)) != 0) {
      if (!s.empty())
        s += ", ";
      s += names[i];
    }
  return s;
}

} // namespace

std::string parse_channels(const std::string& text, std::uint32_t& bits) {
  return parse_names(text, bits, [](const std::string& n) { return consent_bit(n); }, "consent channel");
}

std::string parse_event_types(const std::string& text, std::uint32_t& bits) {
  return parse_names(text, bits, [](const std::string& n) { return event_type_bit(n); }, "event type");
}

std::string channels_text(std::uint32_t bits) {
  auto s = names_of(bits, consent_channel_names);
  return s.empty() ? "none" : s;
}

std::string event_types_text(std::uint32_t bits) { return names_of(bits, event_type_names); }

int run_tail(client& c, const request& sub, const tail_options& opt, std::ostream& out) {
  response first = c.call(sub);
  if (!first.ok()) {
    std::cerr << "loyaltyctl: " << to_string(first.code) << ": " << first.message << "\n";
    return 1;
  }
  // Caught up once the stream has passed the newest entry at the start.
  const std::uint64_t target = first.seq + 1;
  std::uint64_t printed = 0;
  response r = std::move(first);
  for (;;) {
    if (!r.ok()) {
      std::cerr << "loyaltyctl: the stream ended: " << to_string(r.code) << ": " << r.message << "\n";
      return 1;
    }
    for (const auto& e : r.events) {
      out << event_json(e) << "\n";
      if (opt.count != 0 && ++printed >= opt.count) {
        out.flush();
        return 0;
      }
    }
    if (opt.progress)
      out << "{\"next\":" << r.next << "}\n";
    out.flush();
    if (!opt.follow && r.next >= target)
      return 0;
    std::string error;
    r = response{};
    // Heartbeats come every limits::stream_heartbeat_ms: a minute of
    // silence means the connection is gone.
    if (!c.receive(r, error, std::chrono::seconds(60))) {
      std::cerr << "loyaltyctl: " << error << "\n";
      return 2;
    }
  }
}

} // namespace loyalty::io
