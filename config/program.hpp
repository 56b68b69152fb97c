// The loyalty program (policy as data) and the engine settings, as loaded from
// TOML. Loading validates everything and reports each mistake with its file
// and line; nothing here is ever hard-coded per campaign.
#pragma once

#include "config/limits.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty {

// A non-negative rational number num/den, den > 0. Rates and multipliers are
// rationals so that no float ever touches points.
struct rational {
  std::uint64_t num = 1;
  std::uint64_t den = 1;
};

struct brand_def {
  std::uint32_t id = 0;     // stable numeric id, recorded in the ledger
  std::string code;         // what integrators send in `brand`
  std::string name;
  rational earn_rate;       // points per minor currency unit
};

struct tier_def {
  std::string name;
  std::int64_t threshold = 0;  // lifetime qualifying points needed
  rational multiplier;         // applied to the base earn of this tier's members
};

struct program {
  std::string name;
  std::string currency = "EUR";   // ISO 4217 code earns must carry
  std::uint32_t minor_units = 2;  // documentation only: amounts are minor units
  std::vector<brand_def> brands;  // sorted by id
  std::vector<tier_def> tiers;    // sorted by threshold; tiers[0].threshold == 0

  [[nodiscard]] const brand_def* find_brand(std::string_view code) const noexcept;
  [[nodiscard]] const brand_def* find_brand(std::uint32_t id) const noexcept;
  // Index into tiers of the highest tier whose threshold <= lifetime.
  [[nodiscard]] std::uint32_t tier_for(std::int64_t lifetime_points) const noexcept;
};

enum class durability {
  fsync,         // default: every acknowledged commit is fsynced (LMDB default)
  nosync_unsafe, // MDB_NOSYNC: acknowledged commits can be lost on power cut; benchmarks only
};

struct engine_settings {
  std::string program_path;  // program TOML; relative paths are relative to the settings file
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 7411;
  std::string data_dir = "data";
  std::uint64_t map_bytes = limits::map_bytes_default;
  durability sync = durability::fsync;
  std::uint32_t batch_entries_max = limits::batch_entries_max_default;
  std::uint32_t commit_window_us = limits::commit_window_us_default;
  std::uint32_t checkpoint_accounts_max = limits::checkpoint_accounts_max_default;
  std::uint32_t checkpoint_interval_ms = limits::checkpoint_interval_ms_default;
  std::uint32_t inflight_per_connection_max = limits::inflight_per_connection_max_default;
  std::uint32_t inflight_total_max = limits::inflight_total_max_default;
  std::uint32_t connections_max = limits::connections_max_default;
  std::uint32_t active_members_max = limits::active_members_max_default;
  std::uint32_t member_idle_s = limits::member_idle_s_default;
  std::uint32_t io_threads = 1;
  std::uint32_t actor_threads = 0;  // 0: one per core
};

struct config_error {
  std::string message;  // "file:line: what is wrong"
};

// Both return every problem found, not just the first; on any error the
// result is empty and `errors` is non-empty.
[[nodiscard]] std::optional<program> load_program(const std::string& path,
                                                  std::vector<config_error>& errors);
[[nodiscard]] std::optional<program> parse_program(std::string_view toml_text,
                                                   const std::string& name_for_errors,
                                                   std::vector<config_error>& errors);
[[nodiscard]] std::optional<engine_settings> load_settings(const std::string& path,
                                                           std::vector<config_error>& errors);

} // namespace loyalty
