// Coalition money: the postings and settle records of points that cross
// between the parties of a coalition (docs/ARCHITECTURE.md, "Coalition
// money"). Pure functions of the program and the points moved (STYLE 10):
// member actors call them while building an entry, tests call them directly.
//
// Every point carries the brand that issued it (its lot's brand). A brand's
// points accounts are keyed by that issuer, so its points outstanding is
// issued - redeemed - expired. When points of brand X are spent for the
// benefit of another party, X pays that party for them:
//   - spent at brand B != X (redeem, redeem_reward, capture):
//       X owes B floor(points_X x cost_per_point(X));
//   - burned at partner P (partner_burn):
//       X owes P floor(points_X x burn_reimbursement(P));
//   - clawed back by brand A != X (refund, negative adjust at A):
//       X owes A floor(points_X x cost_per_point(X));
//   - earned at partner P (partner_earn), issued by P's brand S:
//       P owes S floor(points x earn_cost(P)).
// Each amount is floored once per (entry, payer, payee) in 128-bit integers;
// a record whose amount rounds to 0 is not written. An amount or a sum
// outside int64 is amount_overflow.
#pragma once

#include "config/errc.hpp"
#include "config/program.hpp"
#include "ledger/ledger.hpp"
#include "ledger/member_book.hpp"

#include <cstdint>
#include <span>
#include <string>

namespace loyalty::actors {

// What points taken out of a member's lots are for.
enum class spend_purpose : std::uint8_t {
  redeem,    // spent at brand `party`: credit brand_redeemed(issuer); issuer != party pays party
  burn,      // burned at partner `party`: credit brand_redeemed(issuer); every issuer pays the partner
  clawback,  // taken back by brand `party` (refund, negative adjust): the party's own points and any
             // debt credit brand_issued(party); another issuer's points are redeemed and it pays party
};

// Appends to `op` the postings (debit of the member, one credit per issuing
// brand, money postings) and the settle records of `takes` (plus `debt`
// points that no lot covered: clawback only) leaving `member` for `party`.
// Errors, with `message` set and `op` unchanged: invalid_argument when the
// takes span more than ledger::spend_brands_max issuing brands (spend in two
// steps), amount_overflow.
[[nodiscard]] errc post_spend(ledger::op& op, const program& prog, std::uint64_t member,
                              std::span<const ledger::lot_take> takes, std::int64_t debt, spend_purpose purpose,
                              std::uint32_t party, std::string& message);

// Issuing brands `takes` draw on, for checking a spend before it is built.
[[nodiscard]] std::size_t issuer_count(std::span<const ledger::lot_take> takes) noexcept;

// The settle record and money postings of a partner earn: the partner owes
// its brand floor(points x earn_cost). Nothing when that rounds to 0.
// amount_overflow if it leaves int64.
[[nodiscard]] errc post_partner_earn(ledger::op& op, const partner_def& partner, std::int64_t points);

// The settle records of `original` (an entry's details) undone: each one
// again with detail_reversal set, and its money postings mirrored.
// amount_overflow if the sums leave int64 (they fitted when posted, so only
// a corrupt entry gets there).
[[nodiscard]] errc post_settle_reversal(ledger::op& op, std::span<const ledger::entry_detail> original);

// The status a partner operation meets in `prog`: ok, partner_suspended,
// or unknown_partner (not in the program).
[[nodiscard]] errc partner_admission(const program& prog, std::uint32_t partner_id) noexcept;

// floor(points x num / den) in 128 bits; false if it leaves int64 (or den is 0).
[[nodiscard]] bool money_of(std::int64_t points, const rational& rate, std::int64_t& out) noexcept;

} // namespace loyalty::actors
