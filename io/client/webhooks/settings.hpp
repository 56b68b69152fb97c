// loyalty-webhooks' settings file (docs/OPERATIONS.md, "Webhooks"): the
// engine to follow, the state directory and the endpoints with their
// filters, timeouts and backoff. Plain data and one parser; no I/O but
// reading the file.
#pragma once

#include "io/client/client.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loyalty::webhooks {

// Endpoints per process: each holds one subscription (one connection and
// one ledger reader in the engine) and one thread here; 64 keeps the engine's
// share small next to its connections_max of 1024.
inline constexpr std::size_t endpoints_max = 64;
// An endpoint's name names its state file: short and file-name safe.
inline constexpr std::size_t endpoint_name_bytes_max = 64;

struct endpoint_settings {
  std::string name;                 // [A-Za-z0-9_-]{1,64}; unique; names the state file
  std::string url;                  // http:// or https://
  std::string secret;               // HMAC-SHA256 key of X-Loyalty-Signature
  std::uint32_t types = 0;          // event type bits (event_type_names); 0 = every type
  std::uint32_t consent = 0;        // one consent channel bit; 0 = any member
  std::string brand;                // only this brand's entries; "" = every brand
  std::uint32_t timeout_ms = 10'000;         // a whole POST, connect included
  std::uint32_t connect_timeout_ms = 5'000;  // the TCP (and TLS) connect
  std::uint32_t backoff_initial_ms = 1'000;  // wait after the first failure
  std::uint32_t backoff_max_ms = 300'000;    // the doubling stops here
  std::uint32_t attempts_max = 0;   // POSTs of one entry before the endpoint stops; 0 = never stops
  std::string ca_file;              // PEM CA bundle for https; "" = the system's
  bool tls_verify = true;           // false: accept any certificate (testing only)
};

enum class start_point {
  end,        // an endpoint without state starts at the next committed entry
  beginning,  // ... at seq 1: the whole journal
};

struct settings {
  std::string host;                 // the engine
  std::uint16_t port = 0;
  std::string key;                  // hello's API key (read scope suffices)
  io::tls_options tls;              // to the engine
  std::string state_dir;            // absolute, or relative to the settings file
  start_point start = start_point::end;
  std::vector<endpoint_settings> endpoints;
};

// Reads and checks the file at `path`. Every problem is one "file:line:
// message" string in `errors` (nullopt then); nothing half-read is returned.
[[nodiscard]] std::optional<settings> load_settings(const std::string& path, std::vector<std::string>& errors);

} // namespace loyalty::webhooks
