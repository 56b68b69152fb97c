// Private to ledger/: what a settle record (records.hpp, detail_kind::settle)
// means in postings, shared by the writer (which refuses an entry whose money
// postings disagree with its records), verify (which reports one) and the
// statement (which turns records into lines).
#pragma once

#include "ledger/records.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace loyalty::ledger::detail {

[[nodiscard]] constexpr bool is_settle(const entry_detail& d) noexcept {
  return d.kind == static_cast<std::uint16_t>(detail_kind::settle);
}

[[nodiscard]] constexpr bool known_party(party_kind k) noexcept {
  return k == party_kind::brand || k == party_kind::partner;
}

// Why a settle record is not well-formed, or nullptr if it is. num and den
// are 32-bit halves of c, so "num, den < 2^32" holds by the layout. b must
// also fit int64, because a statement line's due is signed.
[[nodiscard]] inline const char* settle_defect(const entry_detail& d) noexcept {
  __extension__ typedef unsigned __int128 u128;
  const auto num = static_cast<std::uint32_t>(d.c >> 32);
  const auto den = static_cast<std::uint32_t>(d.c);
  if (d.a <= 0)
    return "a settle record's points are not positive";
  if (den == 0)
    return "a settle record's rate has a zero denominator";
  if (d.b > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return "a settle record's amount leaves int64";
  if (u128{static_cast<std::uint64_t>(d.a)} * num / den != d.b)
    return "a settle record's amount is not floor(points x rate)";
  if ((d.aux >> 16) != 0 || !known_party(settle_payer_kind(d.aux)) || !known_party(settle_payee_kind(d.aux)))
    return "a settle record names an unknown kind of party";
  if (settle_payer_kind(d.aux) == settle_payee_kind(d.aux) && d.brand == d.id)
    return "a settle record's payer is its payee";
  return nullptr;
}

// A well-formed record's money toward one party (statement_line::due and
// its points, signed alike): + the party is paid, - it pays; a reversal
// flips the sign. False if the record does not name the party.
[[nodiscard]] inline bool settle_due(const entry_detail& d, party_kind kind, std::uint32_t party, std::int64_t& due,
                                     std::int64_t& points) noexcept {
  const bool payer = settle_payer_kind(d.aux) == kind && d.brand == party;
  const bool payee = settle_payee_kind(d.aux) == kind && d.id == party;
  if (!payer && !payee)
    return false;
  const bool reversal = (d.flags & detail_reversal) != 0;
  const std::int64_t sign = (payee != reversal) ? 1 : -1;  // settle_defect keeps payer != payee
  due = sign * static_cast<std::int64_t>(d.b);
  points = sign * d.a;
  return true;
}

// Per-account money totals of one entry: what its money postings add up to,
// or what its settle records imply. Compared as sets: the same accounts with
// the same total debit and total credit each.
struct money_total {
  std::uint64_t account = 0;
  std::uint64_t debit = 0;
  std::uint64_t credit = 0;
  friend bool operator==(const money_total&, const money_total&) = default;
};

class money_totals {
public:
  // False if a total would leave uint64.
  [[nodiscard]] bool add(std::uint64_t account, posting_side side, std::uint64_t amount) {
    auto it = std::find_if(totals_.begin(), totals_.end(), [&](const money_total& t) { return t.account == account; });
    if (it == totals_.end()) {
      totals_.push_back(money_total{account, 0, 0});
      it = totals_.end() - 1;
    }
    auto& total = side == posting_side::debit ? it->debit : it->credit;
    return !__builtin_add_overflow(total, amount, &total);
  }
  // The postings a well-formed record implies (none for an amount of 0: a
  // posting moves at least one unit).
  [[nodiscard]] bool add_settle(const entry_detail& d) {
    if (d.b == 0)
      return true;
    const bool reversal = (d.flags & detail_reversal) != 0;
    const auto payer = party_account(settle_payer_kind(d.aux), d.brand, true);
    const auto payee = party_account(settle_payee_kind(d.aux), d.id, false);
    return add(payer, reversal ? posting_side::credit : posting_side::debit, d.b) &&
           add(payee, reversal ? posting_side::debit : posting_side::credit, d.b);
  }
  [[nodiscard]] bool empty() const noexcept { return totals_.empty(); }
  // Order-independent equality (sorts both).
  [[nodiscard]] bool same_as(money_totals& other) {
    auto by_account = [](const money_total& x, const money_total& y) { return x.account < y.account; };
    std::sort(totals_.begin(), totals_.end(), by_account);
    std::sort(other.totals_.begin(), other.totals_.end(), by_account);
    return totals_ == other.totals_;
  }

private:
  std::vector<money_total> totals_;  // a handful per entry: a linear search beats a map
};

} // namespace loyalty::ledger::detail
