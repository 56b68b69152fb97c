#include "actors/coalition.hpp"

#include <algorithm>
#include <vector>

namespace loyalty::actors {

namespace {

using ledger::account_id;
using ledger::account_kind;
using ledger::entry_detail;
using ledger::party_kind;
using ledger::posting_side;

// Postings gathered per (account, side) before they are appended, so an
// account appears once per side however many takes touch it.
struct posting_sums {
  struct row {
    std::uint64_t account;
    posting_side side;
    std::int64_t amount;
  };
  std::vector<row> rows;

  [[nodiscard]] bool add(std::uint64_t account, posting_side side, std::int64_t amount) {
    if (amount == 0)
      return true;
    for (auto& r : rows)
      if (r.account == account && r.side == side)
        return !__builtin_add_overflow(r.amount, amount, &r.amount);
    rows.push_back({account, side, amount});
    return true;
  }
  void append_to(ledger::op& op) const {
    for (const auto& r : rows)
      op.postings.push_back(
        ledger::posting{r.account, static_cast<std::uint64_t>(r.amount), static_cast<std::uint32_t>(r.side), 0});
  }
};

entry_detail settle_record(party_kind payer_kind, std::uint32_t payer, party_kind payee_kind, std::uint32_t payee,
                           std::int64_t points, std::int64_t amount, const rational& rate, std::uint16_t flags = 0) {
  entry_detail d{};
  d.kind = static_cast<std::uint16_t>(ledger::detail_kind::settle);
  d.flags = flags;
  d.id = payee;
  d.brand = payer;
  d.aux = ledger::settle_parties(payer_kind, payee_kind);
  d.a = points;
  d.b = static_cast<std::uint64_t>(amount);
  d.c = ledger::settle_rate(static_cast<std::uint32_t>(rate.num), static_cast<std::uint32_t>(rate.den));
  return d;
}

// Points per issuing brand, ascending by brand id.
std::vector<std::pair<std::uint32_t, std::int64_t>> by_issuer(std::span<const ledger::lot_take> takes, bool& overflow) {
  std::vector<std::pair<std::uint32_t, std::int64_t>> out;
  overflow = false;
  for (const auto& t : takes) {
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == t.brand_id; });
    if (it == out.end())
      out.emplace_back(t.brand_id, t.points);
    else if (__builtin_add_overflow(it->second, t.points, &it->second))
      overflow = true;
  }
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace

errc partner_admission(const program& prog, std::uint32_t partner_id) noexcept {
  const partner_def* p = prog.find_partner(partner_id);
  if (p == nullptr)
    return errc::unknown_partner;
  return p->status == partner_status::suspended ? errc::partner_suspended : errc::ok;
}

bool money_of(std::int64_t points, const rational& rate, std::int64_t& out) noexcept {
  if (rate.den == 0 || points < 0)
    return false;
  __extension__ using u128 = unsigned __int128;
  const u128 v = static_cast<u128>(points) * rate.num / rate.den;
  if (v > static_cast<u128>(INT64_MAX))
    return false;
  out = static_cast<std::int64_t>(v);
  return true;
}

std::size_t issuer_count(std::span<const ledger::lot_take> takes) noexcept {
  std::uint32_t seen[ledger::spend_brands_max + 1];
  std::size_t n = 0;
  for (const auto& t : takes) {
    if (std::find(seen, seen + n, t.brand_id) != seen + n)
      continue;
    if (n == ledger::spend_brands_max + 1)
      return n;  // already too many: the exact count does not matter
    seen[n++] = t.brand_id;
  }
  return n;
}

errc post_spend(ledger::op& op, const program& prog, std::uint64_t member, std::span<const ledger::lot_take> takes,
                std::int64_t debt, spend_purpose purpose, std::uint32_t party, std::string& message) {
  bool overflow = false;
  const auto issuers = by_issuer(takes, overflow);
  if (overflow)
    return errc::amount_overflow;
  if (issuers.size() > ledger::spend_brands_max) {
    message = "the points come from more than " + std::to_string(ledger::spend_brands_max) +
              " brands; spend them in two steps";
    return errc::invalid_argument;
  }
  posting_sums points, money;
  std::vector<entry_detail> records;
  std::int64_t total = purpose == spend_purpose::clawback ? debt : 0;
  if (!points.add(account_id(account_kind::brand_issued, party), posting_side::credit, total))
    return errc::amount_overflow;
  const party_kind payee_kind = purpose == spend_purpose::burn ? party_kind::partner : party_kind::brand;
  const partner_def* partner = purpose == spend_purpose::burn ? prog.find_partner(party) : nullptr;
  for (const auto& [issuer, pts] : issuers) {
    if (__builtin_add_overflow(total, pts, &total))
      return errc::amount_overflow;
    const bool own = purpose != spend_purpose::burn && issuer == party;
    const auto sink = own && purpose == spend_purpose::clawback ? account_kind::brand_issued : account_kind::brand_redeemed;
    if (!points.add(account_id(sink, issuer), posting_side::credit, pts))
      return errc::amount_overflow;
    if (own)
      continue;
    // The rate: the partner's reimbursement, or the issuer's cost per point
    // (an issuer no longer in the program carries no money).
    rational rate{0, 1};
    if (partner != nullptr)
      rate = partner->burn_reimbursement;
    else if (const brand_def* b = prog.find_brand(issuer))
      rate = b->cost_per_point;
    std::int64_t amount = 0;
    if (!money_of(pts, rate, amount))
      return errc::amount_overflow;
    if (amount == 0)
      continue;
    records.push_back(settle_record(party_kind::brand, issuer, payee_kind, party, pts, amount, rate));
    if (!money.add(ledger::party_account(party_kind::brand, issuer, true), posting_side::debit, amount) ||
        !money.add(ledger::party_account(payee_kind, party, false), posting_side::credit, amount))
      return errc::amount_overflow;
  }
  if (!points.add(account_id(account_kind::member_points, member), posting_side::debit, total))
    return errc::amount_overflow;
  // The member's debit first, as every other entry writes it (it is the
  // last row, and there is one whenever anything moved).
  if (total > 0)
    std::rotate(points.rows.begin(), points.rows.end() - 1, points.rows.end());
  points.append_to(op);
  money.append_to(op);
  op.details.insert(op.details.end(), records.begin(), records.end());
  return errc::ok;
}

errc post_partner_earn(ledger::op& op, const partner_def& partner, std::int64_t points) {
  std::int64_t amount = 0;
  if (!money_of(points, partner.earn_cost, amount))
    return errc::amount_overflow;
  if (amount == 0)
    return errc::ok;
  op.details.push_back(
    settle_record(party_kind::partner, partner.id, party_kind::brand, partner.brand_id, points, amount, partner.earn_cost));
  op.postings.push_back({ledger::party_account(party_kind::partner, partner.id, true), static_cast<std::uint64_t>(amount),
                         static_cast<std::uint32_t>(posting_side::debit), 0});
  op.postings.push_back({ledger::party_account(party_kind::brand, partner.brand_id, false),
                         static_cast<std::uint64_t>(amount), static_cast<std::uint32_t>(posting_side::credit), 0});
  return errc::ok;
}

errc post_settle_reversal(ledger::op& op, std::span<const entry_detail> original) {
  posting_sums money;
  std::vector<entry_detail> records;
  for (const auto& d : original) {
    if (d.kind != static_cast<std::uint16_t>(ledger::detail_kind::settle) || (d.flags & ledger::detail_reversal) != 0)
      continue;
    if (d.b > static_cast<std::uint64_t>(INT64_MAX))
      return errc::amount_overflow;
    const auto amount = static_cast<std::int64_t>(d.b);
    entry_detail r = d;
    r.flags = static_cast<std::uint16_t>(d.flags | ledger::detail_reversal);
    records.push_back(r);
    // Mirrored: the payer's account is credited back, the payee's debited.
    if (!money.add(ledger::party_account(ledger::settle_payer_kind(d.aux), d.brand, true), posting_side::credit, amount) ||
        !money.add(ledger::party_account(ledger::settle_payee_kind(d.aux), d.id, false), posting_side::debit, amount))
      return errc::amount_overflow;
  }
  money.append_to(op);
  op.details.insert(op.details.end(), records.begin(), records.end());
  return errc::ok;
}

} // namespace loyalty::actors
