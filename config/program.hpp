// The loyalty program (policy as data) and the engine settings, as loaded from
// TOML. Loading validates everything and reports each mistake with its file
// and line; nothing here is ever hard-coded per campaign.
#pragma once

#include "config/limits.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty {

// A non-negative rational number num/den, den > 0. Rates and multipliers are
// rationals so that no float ever touches points. Config bounds num and den
// to 1e9, so amount (< 2^63) * num * num2 / ... fits in 128 bits.
struct rational {
  std::uint64_t num = 1;
  std::uint64_t den = 1;
};

// Days, hours and instants are evaluated in the program's fixed UTC offset
// (program.utc_offset_minutes): "the promotion runs on Fridays 08-20" means
// local store time. Instants are microseconds since the Unix epoch (UTC).
inline constexpr std::uint64_t us_per_day = 86'400'000'000ull;

struct brand_def {
  std::uint32_t id = 0;     // stable numeric id, recorded in the ledger
  std::string code;         // what integrators send in `brand`
  std::string name;
  rational earn_rate;       // base points per minor currency unit
  // Whole steps: earn_rate.num points for every whole earn_rate.den minor
  // units ("5 points per 2.50 spent": 3.00 earns 5, not 6). Otherwise
  // proportional: floor(amount x num / den) once per rule line.
  bool earn_in_steps = false;
  // What one point of this brand is worth, in minor units: the brand's
  // liability is its points outstanding x this, and when its points are
  // spent at another brand it owes that brand floor(points x this)
  // (docs/PROGRAM.md, "Coalition money"). 0/1: its points carry no money.
  rational cost_per_point{0, 1};
};

// -- partners ---------------------------------------------------------------------
// A partner outside the coalition's brands (an airline, a hotel chain) where
// members earn points (the partner buys them) and burn them (the program
// pays the partner). Removing a partner from the program, or suspending it,
// stops new partner operations; its accounts and history stay.
enum class partner_status : std::uint8_t { active, suspended };

struct partner_def {
  std::uint32_t id = 0;         // 1..65535, stable, recorded in the ledger (journal header partner_id)
  std::string code;             // what integrators send in `partner`
  std::string name;
  std::uint32_t brand_id = 0;   // brand whose points members earn there (their lots, expiry, liability)
  rational earn_cost;           // minor units the partner owes per point a member earns there
  rational burn_reimbursement;  // minor units the program owes the partner per point burned there
  partner_status status = partner_status::active;
};

// -- tiers ------------------------------------------------------------------------
enum class tier_metric : std::uint8_t {
  qualifying_points,  // points earned from purchases (base + rules), net of refunds
  spend,              // purchase amount in minor units, net of refunds
};

enum class calendar_period : std::uint8_t { none, month, quarter, year };

struct tier_def {
  std::string name;
  std::int64_t threshold = 0;  // metric over the window needed to hold this tier
  rational multiplier;         // applied to the base earn of this tier's members
};

struct tier_policy {
  tier_metric metric = tier_metric::qualifying_points;
  // Rolling window the metric is summed over, in days; 0 = since enrollment.
  std::uint32_t window_days = 0;
  // Upgrades take effect at once. Downgrades are evaluated at the end of each
  // review period (none: never downgrade) and take effect grace_days later.
  calendar_period review = calendar_period::none;
  std::uint32_t grace_days = 0;
  // The expiry sweep journals a tier_notice (event tier_downgrade_warning)
  // for a member whose tier drops within this many days if nothing else
  // happens (actors/policy.hpp tier_outlook); 0 = never.
  std::uint32_t warning_days = 0;
};

// -- earn rules ------------------------------------------------------------------------
enum class rule_trigger : std::uint8_t {
  purchase,        // every earn whose basket / channel / time matches
  enroll,          // welcome bonus, once, on enrollment
  first_purchase,  // once, on the member's first earn
  event,           // a non-purchase event of `event_kind` (survey, review, ...)
};

// When a rule applies, by the transaction's occurred-at time in program-local
// time. Every part is optional; an empty window always matches.
struct time_window {
  std::uint64_t from_us = 0;           // inclusive; 0 = open
  std::uint64_t to_us = 0;             // exclusive; 0 = open
  std::uint8_t weekdays = 0x7f;        // bit 0 = Monday ... bit 6 = Sunday
  std::uint8_t hour_from = 0;          // local hour, inclusive, 0..23
  std::uint8_t hour_to = 24;           // local hour, exclusive, 1..24
};

struct earn_rule {
  std::uint32_t id = 0;                // stable numeric id, recorded in the ledger
  std::string code;                    // stable text id, shown in responses
  rule_trigger trigger = rule_trigger::purchase;
  std::string event_kind;              // trigger == event: the event name it answers
  // Matching (purchase / first_purchase): empty = any. A line item matches if
  // its sku is in skus (when given) and its category in categories (when
  // given); the transaction must match brands and channels (when given).
  std::vector<std::uint32_t> brands;   // brand ids
  std::vector<std::string> skus;
  std::vector<std::string> categories;
  std::vector<std::string> channels;
  time_window window;
  std::int64_t min_amount = 0;         // matching amount must be >= this (minor units)
  // Effect, exactly one of:
  //  multiplier m (>= 1): extra points = floor(matching amount x brand rate x (m - 1));
  //  bonus_points: fixed points once per matching transaction / event.
  std::optional<rational> multiplier;
  std::int64_t bonus_points = 0;
  // Caps, in points given by this rule (0 = none): per member over all time,
  // and over all members. Per-member use count cap for events (0 = none).
  std::int64_t cap_per_member = 0;
  std::int64_t cap_total = 0;
  std::uint32_t uses_per_member_max = 0;
  // Issue 19 item 6. Program-wide budgets, in points this rule gives all
  // members per program-local day / calendar month of the engine's clock
  // (0 = none), beside cap_total. priority: in rule_resolution best, ties
  // of points go to the higher priority, then to the earlier rule.
  std::int64_t budget_per_day = 0;
  std::int64_t budget_per_month = 0;
  std::int32_t priority = 0;

  [[nodiscard]] bool has_period_budget() const noexcept { return budget_per_day > 0 || budget_per_month > 0; }
};

// How the purchase rules that match one earn combine (docs/PROGRAM.md
// section 7, "Resolution"): every one counts, or only the one that gives
// the most points.
enum class rule_resolution : std::uint8_t { sum, best };

// -- lifecycle --------------------------------------------------------------------------
struct lifecycle_policy {
  // Points of a purchase are pending this many days after occurred-at (the
  // return window), then available. 0 = available at once.
  std::uint32_t pending_days = 0;
  // A lot expires this many days after it was earned (0 = never), then
  // rounded up to the end of the calendar period (none: not rounded).
  std::uint32_t expiry_days = 0;
  calendar_period expiry_rounding = calendar_period::none;
  // All points expire after this many days without activity (0 = never).
  std::uint32_t inactivity_days = 0;
  // The expiry sweep journals an expiry notice (an event for subscribers)
  // for lots that expire within this many days, once per lot (0 = never).
  std::uint32_t expiry_notice_days = 0;
  // How far a refund may push a balance below zero (points); a refund beyond
  // it is refused with negative_balance_limit. INT64_MAX = no cap.
  std::int64_t negative_balance_max = INT64_MAX;
  // Holds: default and largest TTL in seconds.
  std::uint32_t hold_ttl_default_s = 900;
  std::uint32_t hold_ttl_max_s = 86'400;
};

// -- households (issue 19) --------------------------------------------------------------------
// Members who pool their points (docs/PROGRAM.md, "[households]"). Absent
// from the file: no households (the household operations answer
// households_disabled). Tier progress stays each member's own.
enum class household_spend : std::uint8_t {
  pooled,     // the household's members in the order of their soonest-expiring points, the spender among them
  own_first,  // the spender's own points, then the others' by their soonest-expiring points
};
enum class household_leave : std::uint8_t {
  nothing,     // the leaver's available points stay: they move to a remaining member
  own_points,  // the leaver keeps what is in its own account
};
struct household_policy {
  bool enabled = false;
  std::uint32_t max_members = 0;  // 2 .. households_members_max when enabled
  household_spend spend = household_spend::pooled;
  household_leave on_leave = household_leave::nothing;
};

// -- rewards ----------------------------------------------------------------------------------
struct reward_def {
  std::uint32_t id = 0;        // stable numeric id, recorded in the ledger
  std::string code;            // what integrators send in `reward`
  std::string name;
  std::int64_t cost = 0;       // points, > 0
  std::int64_t stock = -1;     // units available at program start; -1 = unlimited
  std::uint32_t brand_id = 0;  // brand that fulfils it (its redeemed account)
};

// -- fraud and velocity limits (issue 19 item 2) ------------------------------------
// [limits]: per member, per fixed program-local clock hour and local day.
// Each bound is the most the member may reach in the window; 0 = no limit.
// A request that would go past one is refused limit_exceeded (docs/PROGRAM.md).
struct velocity_bounds {
  std::int64_t earns = 0;            // earn, event, partner_earn entries
  std::int64_t points_earned = 0;    // their points
  std::int64_t redemptions = 0;      // redeem, redeem_reward, hold, partner_burn entries
  std::int64_t points_redeemed = 0;  // their points
  std::int64_t transfers_out = 0;    // transfers the member sends
  std::int64_t aliases_linked = 0;   // link_alias entries
  // By velocity_metric (ledger/records.hpp): earns, points_earned, redemptions,
  // points_redeemed, transfers_out, aliases_linked.
  [[nodiscard]] std::int64_t at(std::size_t metric) const noexcept {
    const std::int64_t v[] = {earns, points_earned, redemptions, points_redeemed, transfers_out, aliases_linked};
    return metric < 6 ? v[metric] : 0;
  }
  [[nodiscard]] bool any() const noexcept {
    return (earns | points_earned | redemptions | points_redeemed | transfers_out | aliases_linked) != 0;
  }
};

struct velocity_limits {
  velocity_bounds per_hour, per_day;
  // The breach that flags the member: its flag_after_breaches-th since it was
  // last unblocked (0 = never flagged).
  std::uint32_t flag_after_breaches = 0;
  // Any bound set: entries carry velocity records and are checked. Without,
  // an earn checks the member's block and nothing else.
  bool enabled = false;
};

struct program {
  std::string name;
  std::string currency = "EUR";   // ISO 4217 code earns must carry
  std::uint32_t minor_units = 2;  // documentation only: amounts are minor units
  std::int32_t utc_offset_minutes = 0;  // program-local time for windows, days, periods
  std::vector<brand_def> brands;  // sorted by id
  tier_policy tier_rules;
  std::vector<tier_def> tiers;    // sorted by threshold; tiers[0].threshold == 0
  std::vector<earn_rule> rules;   // in file order; ids unique
  rule_resolution resolution = rule_resolution::sum;
  lifecycle_policy lifecycle;
  std::vector<reward_def> rewards;
  std::vector<partner_def> partners;  // sorted by id
  household_policy households;
  velocity_limits limits;             // [limits]
  // SHA-256 of the program file's text: identifies the version in the ledger.
  std::array<unsigned char, 32> sha256{};
  // The text itself: the ledger keeps it with the version (a cluster
  // replicates it, so every node can run the version a leader recorded).
  std::string text;

  [[nodiscard]] const brand_def* find_brand(std::string_view code) const noexcept;
  [[nodiscard]] const brand_def* find_brand(std::uint32_t id) const noexcept;
  [[nodiscard]] const earn_rule* find_rule(std::uint32_t id) const noexcept;
  [[nodiscard]] const reward_def* find_reward(std::string_view code) const noexcept;
  [[nodiscard]] const reward_def* find_reward(std::uint32_t id) const noexcept;
  [[nodiscard]] const partner_def* find_partner(std::string_view code) const noexcept;
  [[nodiscard]] const partner_def* find_partner(std::uint32_t id) const noexcept;
  // Index into tiers of the highest tier whose threshold <= metric value.
  [[nodiscard]] std::uint32_t tier_for(std::int64_t metric_value) const noexcept;
};

enum class actor_scheduling : std::uint8_t { sharing, stealing };

enum class durability {
  fsync,         // default: every acknowledged commit is fsynced (LMDB default)
  nosync_unsafe, // MDB_NOSYNC: acknowledged commits can be lost on power cut; benchmarks only
};

// -- API keys -------------------------------------------------------------------------------
// A client's hello carries a key; the engine keeps only its SHA-256 and
// grants the key's scope to the connection (docs/OPERATIONS.md, "API keys").
enum class key_scope : std::uint8_t {
  admin,    // every operation
  read,     // balance, history, lookup, explain, stats, verify
  brand,    // post and read only for one brand (scope_code)
  partner,  // partner operations of one partner (scope_code)
};

struct api_key {
  std::uint32_t id = 0;                  // 1 .. 2^31-1, recorded in every journal entry it posts
  std::string name;                      // shown in logs and `explain`; never the key
  std::array<unsigned char, 32> sha256{};
  key_scope scope = key_scope::read;
  std::string scope_code;                // brand or partner code
  std::uint32_t rate_per_s = 0;          // requests per second over all its connections; 0 = unlimited
  // A sandbox key: its posting operations are evaluated against the live
  // program and state and answered, and post nothing (docs/PROTOCOL.md,
  // "Sandbox keys"); its admin operations that change the engine are refused.
  bool dry_run = false;
};

// SHA-256 of a key as presented in hello.
[[nodiscard]] std::array<unsigned char, 32> key_sha256(std::string_view key) noexcept;

// A node of a cluster, as the settings name it (docs/OPERATIONS.md, "Cluster").
struct cluster_peer {
  std::uint64_t id = 0;  // 1.., unique
  std::string raft;      // host:port of its Raft transport (node to node)
  std::string client;    // host:port its clients connect to (the wire protocol)
};

// [cluster]: absent, the engine is the single node it always was.
struct cluster_settings {
  std::uint64_t node_id = 0;  // this node, one of `peers`; 0 = not a cluster
  std::string dir;            // the Raft log; default <data_dir>/raft
  std::uint32_t election_timeout_ms = 1000;
  std::uint32_t heartbeat_ms = 100;
  // Log compaction: a snapshot every snapshot_entries log entries (batches),
  // keeping the newest snapshot_trailing entries in the log.
  std::uint32_t snapshot_entries = 65536;
  std::uint32_t snapshot_trailing = 8192;
  // cluster::node_options::install_snapshot_timeout_ms (0 = automatic)
  std::uint32_t install_snapshot_timeout_ms = 0;
  // Group-commit batches the leader has in the log at once, not yet
  // committed there (ledger::options::pipeline_batches).
  std::uint32_t pipeline_batches = limits::pipeline_batches_default;
  // A node new to a running cluster: no bootstrap; it waits for the leader
  // to add it (loyaltyctl cluster add). Its own [[cluster.peers]] entry is
  // required (its addresses); the others are only what not_leader may name.
  bool join = false;
  std::vector<cluster_peer> peers;  // every voter, this node included
  [[nodiscard]] bool enabled() const noexcept { return node_id != 0; }
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
  std::uint32_t checkpoint_chunk_accounts = limits::checkpoint_chunk_accounts_default;
  std::uint64_t txn_filter_bytes = limits::txn_filter_bytes_default;  // txn_filter_mib; 0 = no filter
  std::uint32_t inflight_per_connection_max = limits::inflight_per_connection_max_default;
  std::uint32_t inflight_total_max = limits::inflight_total_max_default;
  std::uint32_t connections_max = limits::connections_max_default;
  // Misbehaving clients (docs/OPERATIONS.md, "Connection limits"): an idle
  // connection (0 = never), a half frame, a client that does not read, all
  // closed; past connection_output_bytes_max of unsent responses a
  // connection is not read until the client reads.
  std::uint32_t idle_timeout_s = limits::idle_timeout_s_default;
  std::uint32_t frame_read_timeout_ms = limits::frame_read_timeout_ms_default;
  std::uint32_t write_stall_timeout_ms = limits::write_stall_timeout_ms_default;
  std::uint32_t connection_output_bytes_max = limits::connection_output_bytes_max_default;
  std::uint64_t output_bytes_max = limits::output_bytes_max_default;  // every connection's, together
  std::uint32_t shutdown_drain_ms = limits::shutdown_drain_ms_default;  // a clean stop answers in-flight requests within it
  std::uint32_t active_members_max = limits::active_members_max_default;
  std::uint32_t member_idle_s = limits::member_idle_s_default;
  std::uint32_t io_threads = 1;
  std::uint32_t actor_threads = 0;  // 0: one per core
  // CAF's scheduler policy. sharing: one queue, idle workers sleep on it.
  // stealing (CAF's default): a queue per worker, idle workers poll and steal
  // from the others' tails, which in CAF 0.17 walks the victim's whole queue
  // (O(n) per steal) -- quadratic when a million actors are scheduled at
  // once, as at a mass passivation or shutdown (docs/PERFORMANCE.md, issue 5).
  actor_scheduling actor_scheduler = actor_scheduling::sharing;
  // API keys ([[keys]] in the settings file). None: every connection may
  // post and read without a key, and admin operations are refused.
  std::vector<api_key> keys;
  // [cluster] in the settings file; disabled without it.
  cluster_settings cluster;
  // The expiry sweep visits every member this often (0 = never; `expire`
  // still works), at most expiry_sweep_members_per_s members per second.
  std::uint32_t expiry_sweep_interval_s = 3600;
  std::uint32_t expiry_sweep_members_per_s = 20000;
  // TLS on the listen port: PEM certificate (chain) and private key, both or
  // neither; relative paths are relative to the settings file. Empty: plain
  // TCP. When set, every connection must be TLS 1.2 or later.
  std::string tls_cert;
  std::string tls_key;
  std::uint32_t tls_handshake_timeout_ms = limits::tls_handshake_timeout_ms_default;
  // The Prometheus metrics endpoint (docs/OPERATIONS.md, "Metrics"): plain
  // HTTP on a port of its own; metrics_port 0 = off (the default).
  std::string metrics_host = "127.0.0.1";
  std::uint16_t metrics_port = 0;
  std::uint32_t metrics_read_timeout_ms = limits::metrics_read_timeout_ms_default;
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
