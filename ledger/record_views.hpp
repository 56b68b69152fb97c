// Names and typed views of the ledger's records (records.hpp). The ledger
// defines the bytes, so it also says what they mean: other folders read an
// entry's details through these views and name kinds with these names, and
// never look at a record's raw fields (docs/ARCHITECTURE.md, "Ledger").
//
// Thread affinity: none (pure functions of their arguments).
#pragma once

#include "ledger/records.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty::ledger {

// The names of the kinds as the wire protocol and the docs spell them:
// "earn", "reverse_redemption", ...; "unknown" for a value outside the enum
// (a record written by a newer build).
[[nodiscard]] const char* to_string(entry_kind k) noexcept;
// "base", "tier", "rule", "partner".
[[nodiscard]] const char* to_string(rule_line_kind k) noexcept;
// "member_points", "brand_issued", ... (the accounts' kinds).
[[nodiscard]] const char* to_string(account_kind k) noexcept;

// rule_line: which rule (or the base rate, the tier bonus, a partner) gave
// how many points for how much of the purchase. id: the rule id (rule), the
// partner id (partner), 0 otherwise.
struct rule_line_view {
  rule_line_kind kind = rule_line_kind::base;
  std::uint32_t id = 0;
  std::int64_t points = 0;  // negative in a refund (clawback)
  std::int64_t amount = 0;  // minor units matched; negative in a refund
};
// hold_open: a hold of `points` of `brand`'s capture until expires_at_us.
struct hold_open_view {
  std::uint32_t hold = 0;
  std::uint32_t brand = 0;
  std::int64_t points = 0;
  std::uint64_t expires_at_us = 0;
};
// hold_close: the hold ended (captured: points spent, 0 when released).
struct hold_close_view {
  std::uint32_t hold = 0;
  std::int64_t captured = 0;
  hold_close_reason reason = hold_close_reason::captured;
};
// reward: units of a catalog reward (+1 redeemed, -1 reversed).
struct reward_view {
  std::uint32_t reward = 0;
  std::int64_t units = 0;
};
// consent: the channels a request set and their values, the member's consent
// after and before (config/consent.hpp bits), its previous consent entry.
struct consent_view {
  std::uint32_t set = 0;
  std::uint32_t values = 0;
  std::uint32_t after = 0;
  std::uint32_t before = 0;
  std::uint64_t previous_seq = 0;
};
// tier_notice: the member's tier drops at drops_at_us unless `missing`
// more of the tier metric qualifies before then.
struct tier_notice_view {
  std::uint32_t tier = 0;
  std::uint32_t drops_to = 0;
  std::int64_t missing = 0;
  std::uint64_t drops_at_us = 0;
};
// risk: a limit breach (the metric and window of the limit, the value the
// refused request would have reached, the limit, whether it flagged the
// member), a block or an unblock.
struct risk_view {
  risk_change change = risk_change::breach;
  velocity_metric metric = velocity_metric::earns;
  velocity_window window = velocity_window::hour;
  std::int64_t reached = 0;
  std::int64_t limit = 0;
  bool flags = false;
};
// expiry_notice: one lot that expires soon.
struct expiry_notice_view {
  std::uint32_t lot = 0;
  std::uint32_t brand = 0;
  std::int64_t points = 0;
  std::uint64_t expires_at_us = 0;
};
// settle: the payer owes the payee `amount` minor units for `points` points
// at rate_num / rate_den minor units a point; a reversal gives it back.
struct settle_view {
  party_kind payer_kind = party_kind::brand;
  std::uint32_t payer = 0;
  party_kind payee_kind = party_kind::brand;
  std::uint32_t payee = 0;
  std::int64_t points = 0;
  std::int64_t amount = 0;
  std::uint32_t rate_num = 0, rate_den = 1;
  bool reversal = false;
};

// Each is empty unless the record is of its kind.
[[nodiscard]] std::optional<rule_line_view> as_rule_line(const entry_detail& d) noexcept;
[[nodiscard]] std::optional<hold_open_view> as_hold_open(const entry_detail& d) noexcept;
[[nodiscard]] std::optional<hold_close_view> as_hold_close(const entry_detail& d) noexcept;
[[nodiscard]] std::optional<reward_view> as_reward(const entry_detail& d) noexcept;
[[nodiscard]] std::optional<consent_view> as_consent(const entry_detail& d) noexcept;
[[nodiscard]] std::optional<expiry_notice_view> as_expiry_notice(const entry_detail& d) noexcept;
[[nodiscard]] std::optional<tier_notice_view> as_tier_notice(const entry_detail& d) noexcept;
[[nodiscard]] std::optional<settle_view> as_settle(const entry_detail& d) noexcept;
[[nodiscard]] std::optional<risk_view> as_risk(const entry_detail& d) noexcept;

// The first record of a kind in an entry's details, as its view.
template <class View>
[[nodiscard]] std::optional<View> first_of(std::span<const entry_detail> details,
                                           std::optional<View> (*as)(const entry_detail&) noexcept) {
  for (const auto& d : details)
    if (auto v = as(d))
      return v;
  return std::nullopt;
}

// An entry's free text (an adjustment's reason, a consent's source) as note
// records, appended to `details`: 28 bytes a record (records.hpp,
// detail_kind::note). At most note_bytes_max bytes are kept.
inline constexpr std::size_t note_bytes_max = 4096;
void append_note(std::vector<entry_detail>& details, std::string_view text);
// The text the note records of an entry hold ("" without any).
[[nodiscard]] std::string note_text(std::span<const entry_detail> details);
// The same layout for another kind of record (sealing.hpp: sealed_note holds
// a note's ciphertext and tag, at most `bytes_max`).
void append_chunks(std::vector<entry_detail>& details, detail_kind kind, std::string_view bytes, std::size_t bytes_max);
[[nodiscard]] std::string chunks_text(std::span<const entry_detail> details, detail_kind kind, std::size_t bytes_max);

} // namespace loyalty::ledger
