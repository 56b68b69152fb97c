// loyaltyctl's event stream and consent commands (docs/PROTOCOL.md,
// "subscribe" and "consent"): parsing their arguments and printing events.
#pragma once

#include "io/client/client.hpp"
#include "io/wire/protocol.hpp"

#include <cstdint>
#include <iosfwd>
#include <string>

namespace loyalty::io {

// A comma-separated list of consent channel names as bits; an empty string
// on success, else what is wrong.
[[nodiscard]] std::string parse_channels(const std::string& text, std::uint32_t& bits);
// A comma-separated list of event type names as bits (event_type_names).
[[nodiscard]] std::string parse_event_types(const std::string& text, std::uint32_t& bits);
// Consent bits as "email, sms" ("none" when empty).
[[nodiscard]] std::string channels_text(std::uint32_t bits);
// Event type bits as "points_earned, tier_changed".
[[nodiscard]] std::string event_types_text(std::uint32_t bits);

struct tail_options {
  std::uint64_t count = 0;      // stop after this many events (0 = no limit)
  bool follow = true;           // false: stop once caught up with the newest entry at the start
  bool progress = false;        // also print each frame's resume point as {"next": N} lines
};

// Subscribes with `sub` (op subscribe) and prints every event as a JSON
// line on `out` until the engine closes the stream, `opt` says stop, or the
// connection fails. Returns loyaltyctl's exit status: 0 done, 1 the engine
// refused the subscription, 2 the connection failed.
int run_tail(client& c, const request& sub, const tail_options& opt, std::ostream& out);

} // namespace loyalty::io
