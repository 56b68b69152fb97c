#include "ledger/record_views.hpp"

#include <algorithm>
#include <cstring>

namespace loyalty::ledger {

const char* to_string(entry_kind k) noexcept {
  switch (k) {
    case entry_kind::enroll: return "enroll";
    case entry_kind::earn: return "earn";
    case entry_kind::redeem: return "redeem";
    case entry_kind::event: return "event";
    case entry_kind::hold: return "hold";
    case entry_kind::capture: return "capture";
    case entry_kind::release: return "release";
    case entry_kind::refund: return "refund";
    case entry_kind::reverse_redemption: return "reverse_redemption";
    case entry_kind::adjust: return "adjust";
    case entry_kind::transfer: return "transfer";
    case entry_kind::expire: return "expire";
    case entry_kind::link_alias: return "link_alias";
    case entry_kind::redeem_reward: return "redeem_reward";
    case entry_kind::tier_review: return "tier_review";
    case entry_kind::partner_earn: return "partner_earn";
    case entry_kind::partner_burn: return "partner_burn";
    case entry_kind::consent: return "consent";
    case entry_kind::expiry_notice: return "expiry_notice";
    case entry_kind::tier_notice: return "tier_notice";
    case entry_kind::release_pending: return "release_pending";
    case entry_kind::household_join: return "household_join";
    case entry_kind::household_leave: return "household_leave";
    case entry_kind::household_dissolve: return "household_dissolve";
    case entry_kind::household_move: return "household_move";
    case entry_kind::erase: return "erase";
    case entry_kind::limit_breach: return "limit_breach";
    case entry_kind::block: return "block";
    case entry_kind::unblock: return "unblock";
  }
  return "unknown";
}

const char* to_string(rule_line_kind k) noexcept {
  switch (k) {
    case rule_line_kind::base: return "base";
    case rule_line_kind::tier: return "tier";
    case rule_line_kind::rule: return "rule";
    case rule_line_kind::partner: return "partner";
  }
  return "unknown";
}

const char* to_string(account_kind k) noexcept {
  switch (k) {
    case account_kind::member_points: return "member_points";
    case account_kind::brand_issued: return "brand_issued";
    case account_kind::brand_redeemed: return "brand_redeemed";
    case account_kind::brand_expired: return "brand_expired";
    case account_kind::brand_settlement: return "brand_settlement";
    case account_kind::partner_receivable: return "partner_receivable";
    case account_kind::partner_payable: return "partner_payable";
  }
  return "unknown";
}

namespace {

bool is(const entry_detail& d, detail_kind k) noexcept { return d.kind == static_cast<std::uint16_t>(k); }

} // namespace

std::optional<rule_line_view> as_rule_line(const entry_detail& d) noexcept {
  if (!is(d, detail_kind::rule_line))
    return std::nullopt;
  return rule_line_view{static_cast<rule_line_kind>(d.aux), d.id, d.a, static_cast<std::int64_t>(d.b)};
}

std::optional<hold_open_view> as_hold_open(const entry_detail& d) noexcept {
  if (!is(d, detail_kind::hold_open))
    return std::nullopt;
  return hold_open_view{d.id, d.brand, d.a, d.b};
}

std::optional<hold_close_view> as_hold_close(const entry_detail& d) noexcept {
  if (!is(d, detail_kind::hold_close))
    return std::nullopt;
  return hold_close_view{d.id, d.a, static_cast<hold_close_reason>(d.aux)};
}

std::optional<reward_view> as_reward(const entry_detail& d) noexcept {
  if (!is(d, detail_kind::reward))
    return std::nullopt;
  return reward_view{d.id, d.a};
}

std::optional<consent_view> as_consent(const entry_detail& d) noexcept {
  if (!is(d, detail_kind::consent))
    return std::nullopt;
  return consent_view{d.id, d.aux, static_cast<std::uint32_t>(d.a), static_cast<std::uint32_t>(d.b), d.c};
}

std::optional<tier_notice_view> as_tier_notice(const entry_detail& d) noexcept {
  if (!is(d, detail_kind::tier_notice))
    return std::nullopt;
  return tier_notice_view{d.id, d.aux, d.a, d.b};
}

std::optional<risk_view> as_risk(const entry_detail& d) noexcept {
  if (!is(d, detail_kind::risk))
    return std::nullopt;
  return risk_view{static_cast<risk_change>(d.aux & 0xff), static_cast<velocity_metric>((d.aux >> 8) & 0xff),
                   static_cast<velocity_window>(d.aux >> 16), d.a, static_cast<std::int64_t>(d.b), d.c != 0};
}

std::optional<expiry_notice_view> as_expiry_notice(const entry_detail& d) noexcept {
  if (!is(d, detail_kind::expiry_notice))
    return std::nullopt;
  return expiry_notice_view{d.id, d.brand, d.a, d.b};
}

std::optional<settle_view> as_settle(const entry_detail& d) noexcept {
  if (!is(d, detail_kind::settle))
    return std::nullopt;
  settle_view s;
  s.payer_kind = settle_payer_kind(d.aux);
  s.payer = d.brand;
  s.payee_kind = settle_payee_kind(d.aux);
  s.payee = d.id;
  s.points = d.a;
  s.amount = static_cast<std::int64_t>(d.b);  // the writer keeps it inside int64 (detail/settle.hpp)
  s.rate_num = static_cast<std::uint32_t>(d.c >> 32);
  s.rate_den = static_cast<std::uint32_t>(d.c);
  s.reversal = (d.flags & detail_reversal) != 0;
  return s;
}

// A note record carries 28 bytes of the text: in brand (4), a, b, c (8
// each); id is the offset of its first byte, aux the text's length.
void append_chunks(std::vector<entry_detail>& details, detail_kind kind, std::string_view text, std::size_t bytes_max) {
  text = text.substr(0, std::min(text.size(), bytes_max));
  for (std::size_t off = 0; off < text.size(); off += 28) {
    entry_detail d{};
    d.kind = static_cast<std::uint16_t>(kind);
    d.id = static_cast<std::uint32_t>(off);
    d.aux = static_cast<std::uint32_t>(text.size());
    char buf[28]{};
    std::memcpy(buf, text.data() + off, std::min<std::size_t>(28, text.size() - off));
    std::memcpy(&d.brand, buf, 4);
    std::memcpy(&d.a, buf + 4, 8);
    std::memcpy(&d.b, buf + 12, 8);
    std::memcpy(&d.c, buf + 20, 8);
    details.push_back(d);
  }
}

std::string chunks_text(std::span<const entry_detail> details, detail_kind kind, std::size_t bytes_max) {
  std::string text;
  for (const auto& d : details) {
    // Records in order, each continuing where the text stands; anything
    // else (a record out of place, a length past the bound) is not text.
    if (!is(d, kind) || d.id != text.size() || d.aux > bytes_max || d.aux <= d.id)
      continue;
    char buf[28];
    std::memcpy(buf, &d.brand, 4);
    std::memcpy(buf + 4, &d.a, 8);
    std::memcpy(buf + 12, &d.b, 8);
    std::memcpy(buf + 20, &d.c, 8);
    text.append(buf, std::min<std::size_t>(28, d.aux - d.id));
  }
  return text;
}

void append_note(std::vector<entry_detail>& details, std::string_view text) {
  append_chunks(details, detail_kind::note, text, note_bytes_max);
}

std::string note_text(std::span<const entry_detail> details) {
  return chunks_text(details, detail_kind::note, note_bytes_max);
}

} // namespace loyalty::ledger
