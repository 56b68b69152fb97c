// What one delivery is, as plain functions tested directly: the body of a
// POST, its signature, the wait before a retry, and the state file that
// holds an endpoint's acknowledged position (docs/OPERATIONS.md, "Webhooks").
#pragma once

#include "io/wire/protocol.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loyalty::webhooks {

// The JSON body of the POST of one journal entry's events (one, or two when
// the entry changed the member's tier):
// {"endpoint":"crm","seq":122,"events":[<event>,...]}, each event the map of
// docs/PROTOCOL.md "subscribe" as JSON (as `loyaltyctl tail` prints it).
[[nodiscard]] std::string delivery_body(const std::string& endpoint, std::uint64_t seq,
                                        const std::vector<io::stream_event>& events);
// The X-Loyalty-Delivery header: the same for every attempt of an entry at an
// endpoint, across restarts, so a receiver deduplicates by it.
[[nodiscard]] std::string delivery_id(const std::string& endpoint, std::uint64_t seq);
// "sha256=" and the lowercase hex HMAC-SHA256 of `body` under `secret`: the
// X-Loyalty-Signature header.
[[nodiscard]] std::string signature(const std::string& secret, const std::string& body);

// The wait before attempt `failures` + 1 of a delivery that failed
// `failures` (>= 1) times: initial, doubled after each failure, at most
// `max_ms` (no overflow however many failures).
[[nodiscard]] std::chrono::milliseconds backoff(std::uint32_t failures, std::uint32_t initial_ms,
                                                std::uint32_t max_ms) noexcept;

// The state file of an endpoint: `dir`/`name`.next, one line "next=N": the
// seq its stream resumes from; every entry before N was acknowledged by a
// 2xx (or filtered out).
[[nodiscard]] std::string state_path(const std::string& dir, const std::string& endpoint);
// The stored position, nullopt when there is no file; `error` set (and
// nullopt) when the file exists but cannot be read or parsed.
[[nodiscard]] std::optional<std::uint64_t> load_next(const std::string& dir, const std::string& endpoint,
                                                     std::string& error);
// Stores `next` durably: a temporary file written and fsynced, renamed over
// the state file, the directory fsynced. False with `error` on failure (the
// old file is then intact).
[[nodiscard]] bool store_next(const std::string& dir, const std::string& endpoint, std::uint64_t next,
                              std::string& error);

} // namespace loyalty::webhooks
