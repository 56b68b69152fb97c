// Period reads: account flows and settlement statements over an interval of
// commit time, each in one read transaction of committed entries.
//
// The writer keeps committed_at_us non-decreasing along the journal, and the
// journal's keys run 1, 2, ... without gaps, so a period is a range of seqs
// found by binary search. Balances at the period's start come from the
// accounts table, which in the same transaction reflects the journal up to
// meta "accounts_seq" -- for a record whose last_seq is later, up to that
// (schema 5: incremental checkpoints) -- (A), corrected by the entries
// between A and the period's start: subtracted if A is later, added if it
// is earlier. A is per account.
#include "ledger/detail/impl.hpp"
#include "ledger/detail/periods.hpp"
#include "ledger/detail/settle.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <unordered_map>

namespace loyalty::ledger {

using detail::val;
using detail::val_of;

namespace {

__extension__ typedef __int128 i128;  // totals, checked before they are narrowed

using detail::entry_view;
using detail::period_reader;

// The money accounts a party's side of settle records posts to.
std::vector<std::uint64_t> money_accounts(party_kind kind, std::uint32_t party) {
  if (kind == party_kind::brand)
    return {account_id(account_kind::brand_settlement, party)};
  return {account_id(account_kind::partner_receivable, party), account_id(account_kind::partner_payable, party)};
}

// Credits - debits over the flows, before and after the period.
[[nodiscard]] bool owed(const std::vector<account_flow>& fs, statement& st) {
  i128 opening = 0, moved = 0;
  for (const auto& f : fs) {
    opening += i128{f.opening_credit} - i128{f.opening_debit};
    moved += i128{f.credit} - i128{f.debit};
  }
  const i128 closing = opening + moved;
  for (i128 x : {opening, closing})
    if (x < std::numeric_limits<std::int64_t>::min() || x > std::numeric_limits<std::int64_t>::max())
      return false;
  st.opening = static_cast<std::int64_t>(opening);
  st.closing = static_cast<std::int64_t>(closing);
  return true;
}

// Builds a statement's lines and totals from the period's entries. A page
// ends at an entry's end, because next_after is a seq: the lines of one
// entry are never split over two pages (a first entry with more lines than
// `limit` comes whole).
class statement_builder {
public:
  statement_builder(statement& st, std::uint64_t after_seq, std::size_t limit, std::string& error)
      : st_(st), after_(after_seq), limit_(limit), error_(error) {}

  [[nodiscard]] bool entry(const entry_view& e) {
    const auto first = page_.size();
    for (std::size_t i = 0; i < e.h.detail_count; ++i) {
      const auto d = e.detail_at(i);
      if (!detail::is_settle(d))
        continue;
      if (const char* why = detail::settle_defect(d)) {
        error_ = "entry " + std::to_string(e.h.seq) + ", detail " + std::to_string(i) + ": " + why + "; run verify";
        return false;
      }
      statement_line line;
      std::int64_t points = 0;
      if (!detail::settle_due(d, st_.kind, st_.party, line.due, points))
        continue;
      due_total_ += line.due;
      points_total_ += points;
      st_.line_count++;
      line.seq = e.h.seq;
      line.committed_at_us = e.h.committed_at_us;
      line.member_id = e.h.member_id;
      line.entry_kind = e.h.kind;
      line.txn_id.assign(e.txn_id, e.h.txn_id_bytes);
      line.settle = d;
      page_.push_back(std::move(line));
    }
    keep_or_drop(e.h.seq, first);
    return true;
  }

  [[nodiscard]] bool finish() {
    constexpr i128 lo = std::numeric_limits<std::int64_t>::min(), hi = std::numeric_limits<std::int64_t>::max();
    if (due_total_ < lo || due_total_ > hi || points_total_ < lo || points_total_ > hi) {
      error_ = "the statement's totals leave int64";
      return false;
    }
    st_.due_total = static_cast<std::int64_t>(due_total_);
    st_.points_total = static_cast<std::int64_t>(points_total_);
    st_.next_after = more_ && !page_.empty() ? page_.back().seq : 0;
    st_.lines = std::move(page_);
    return true;
  }

private:
  // The entry's lines (page_[first..]) stay on the page if they come after
  // after_seq and fit; otherwise they go, and a later line means more.
  void keep_or_drop(std::uint64_t seq, std::size_t first) {
    const auto added = page_.size() - first;
    if (added == 0)
      return;
    const bool fits = !full_ && limit_ > 0 && (page_.size() <= limit_ || first == 0);
    if (seq > after_ && fits) {
      full_ = page_.size() >= limit_;
      return;
    }
    page_.resize(first);
    if (seq > after_) {
      full_ = true;
      more_ = true;
    }
  }

  statement& st_;
  std::uint64_t after_;
  std::size_t limit_;
  std::string& error_;
  std::vector<statement_line> page_;
  i128 due_total_ = 0, points_total_ = 0;
  bool full_ = false;  // the page took its last entry
  bool more_ = false;  // a line after the page exists
};

} // namespace

std::optional<flows> ledger::account_flows(const std::vector<std::uint64_t>& accounts, std::uint64_t from_us,
                                           std::uint64_t to_us, std::string& error) const {
  error.clear();
  detail::read_txn txn(impl_->env);
  if (!txn.get()) {
    error = detail::mdb_error("cannot begin a read transaction", txn.rc());
    return std::nullopt;
  }
  period_reader r(txn.get(), impl_->db, error);
  flows out;
  if (!r.find(from_us, to_us, out.period) || !r.flows(out.period, accounts, out.accounts, nullptr))
    return std::nullopt;
  return out;
}

std::optional<statement> ledger::settlement(party_kind kind, std::uint32_t party, std::uint64_t from_us,
                                            std::uint64_t to_us, std::uint64_t after_seq, std::size_t limit,
                                            std::string& error) const {
  error.clear();
  if (!detail::known_party(kind)) {
    error = "unknown party kind " + std::to_string(static_cast<unsigned>(kind));
    return std::nullopt;
  }
  detail::read_txn txn(impl_->env);
  if (!txn.get()) {
    error = detail::mdb_error("cannot begin a read transaction", txn.rc());
    return std::nullopt;
  }
  period_reader r(txn.get(), impl_->db, error);
  statement st;
  st.kind = kind;
  st.party = party;
  if (!r.find(from_us, to_us, st.period))
    return std::nullopt;
  statement_builder b(st, after_seq, limit, error);
  std::vector<account_flow> fs;
  if (!r.flows(st.period, money_accounts(kind, party), fs, [&](const entry_view& e) { return b.entry(e); }) ||
      !b.finish())
    return std::nullopt;
  if (!owed(fs, st)) {
    error = "what the party is owed leaves int64";
    return std::nullopt;
  }
  return st;
}

} // namespace loyalty::ledger
