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
#include "ledger/detail/settle.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <unordered_map>

namespace loyalty::ledger {

using detail::val;
using detail::val_of;

namespace {

__extension__ typedef __int128 i128;  // totals and their corrections, checked before they are narrowed

constexpr char accounts_seq_key[] = "accounts_seq";

// One journal entry, read in place: valid while its transaction lives.
struct entry_view {
  journal_header h{};
  const char* postings = nullptr;
  const char* txn_id = nullptr;
  const char* details = nullptr;

  [[nodiscard]] posting posting_at(std::size_t i) const {
    posting p{};
    std::memcpy(&p, postings + i * sizeof p, sizeof p);
    return p;
  }
  [[nodiscard]] entry_detail detail_at(std::size_t i) const {
    entry_detail d{};
    std::memcpy(&d, details + i * sizeof d, sizeof d);
    return d;
  }
};

[[nodiscard]] bool parse(std::uint64_t seq, const MDB_val& v, entry_view& e, std::string& error) {
  if (v.mv_size < sizeof e.h) {
    error = "journal entry " + std::to_string(seq) + " is shorter than its header; run verify";
    return false;
  }
  std::memcpy(&e.h, v.mv_data, sizeof e.h);
  const std::size_t size = sizeof e.h + e.h.posting_count * sizeof(posting) + e.h.txn_id_bytes +
                           e.h.detail_count * sizeof(entry_detail);
  if (v.mv_size != size || e.h.seq != seq) {
    error = "journal entry " + std::to_string(seq) + " does not match its header; run verify";
    return false;
  }
  e.postings = static_cast<const char*>(v.mv_data) + sizeof e.h;
  e.txn_id = e.postings + e.h.posting_count * sizeof(posting);
  e.details = e.txn_id + e.h.txn_id_bytes;
  return true;
}

// Running totals of one account asked for: the correction of its table
// totals to the period's start, and its movement inside the period.
struct flow_sums {
  account_record table{};    // the stored record (zeroes if none)
  std::uint64_t cutoff = 0;  // the newest entry the record holds
  i128 fix_debit = 0, fix_credit = 0;
  i128 debit = 0, credit = 0, postings = 0;
};

// Reads periods out of one read transaction.
class period_reader {
public:
  period_reader(MDB_txn* txn, const dbs& db, std::string& error) : txn_(txn), db_(db), error_(error) {}

  // [from_us, to_us) as seqs (ledger.hpp, period_range).
  [[nodiscard]] bool find(std::uint64_t from_us, std::uint64_t to_us, period_range& out) {
    if (to_us != 0 && from_us >= to_us) {
      error_ = "the period's start (from_us) must be before its end (to_us)";
      return false;
    }
    std::uint64_t last = 0;
    if (!newest(last))
      return false;
    out.from_us = from_us;
    out.to_us = to_us;
    if (!first_at_or_after(from_us, last, out.first_seq))
      return false;
    if (to_us == 0) {
      journal_header h{};
      if (last != 0 && !header(last, h))
        return false;
      out.to_us = last == 0 ? 1 : h.committed_at_us + 1;
      out.last_seq = last;
    } else {
      std::uint64_t end = 0;
      if (!first_at_or_after(to_us, last, end))
        return false;
      out.last_seq = end - 1;
    }
    out.last_seq = std::max(out.last_seq, out.first_seq - 1);  // an empty period, even if to_us was resolved early
    return true;
  }

  // Each account's totals before the period and its movement inside it,
  // into `out` (one per account asked, in order); calls on_entry for each
  // entry of the period, ascending (false from it stops the read).
  [[nodiscard]] bool flows(const period_range& p, const std::vector<std::uint64_t>& accounts,
                           std::vector<account_flow>& out, const std::function<bool(const entry_view&)>& on_entry) {
    std::uint64_t checkpoint = 0;
    detail::get_record(txn_, db_.meta, val(accounts_seq_key, sizeof accounts_seq_key - 1), checkpoint);
    std::unordered_map<std::uint64_t, flow_sums> sums;
    const std::uint64_t before = p.first_seq - 1;  // the last entry before the period
    std::uint64_t lo = before + 1, hi = p.last_seq;
    for (auto a : accounts) {
      auto& s = sums[a];
      if (!read_record(a, s.table))
        return false;
      s.cutoff = std::max(checkpoint, s.table.last_seq);
      lo = std::min(lo, std::min(before, s.cutoff) + 1);
      hi = std::max(hi, s.cutoff);
    }
    // Entries in (before, cutoff] are in the table but after the start:
    // taken out. Entries in (cutoff, before] are before the start but not
    // in the table: added.
    auto each = [&](const entry_view& e) {
      const auto seq = e.h.seq;
      const bool inside = seq >= p.first_seq && seq <= p.last_seq;
      for (std::size_t i = 0; i < e.h.posting_count; ++i) {
        const auto q = e.posting_at(i);
        auto it = sums.find(q.account);
        if (it == sums.end())
          continue;
        const auto cut = it->second.cutoff;
        const int fix = seq <= cut && seq > before ? -1 : seq > cut && seq <= before ? 1 : 0;
        const bool debit = q.side == static_cast<std::uint32_t>(posting_side::debit);
        (debit ? it->second.fix_debit : it->second.fix_credit) += fix * i128{q.amount};
        if (inside) {
          (debit ? it->second.debit : it->second.credit) += q.amount;
          it->second.postings++;
        }
      }
      return !inside || !on_entry || on_entry(e);
    };
    if (!walk(lo, hi, each))
      return false;
    out.clear();
    for (auto a : accounts) {
      account_flow f;
      if (!to_flow(a, sums.at(a), f))
        return false;
      out.push_back(f);
    }
    return true;
  }

private:
  [[nodiscard]] bool newest(std::uint64_t& last) {
    detail::cursor cur(txn_, db_.journal);
    if (cur.rc() != MDB_SUCCESS) {
      error_ = detail::mdb_error("opening a journal cursor", cur.rc());
      return false;
    }
    MDB_val k{}, v{};
    const int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_LAST);
    if (rc == MDB_NOTFOUND) {
      last = 0;
      return true;
    }
    if (rc != MDB_SUCCESS || k.mv_size != sizeof last) {
      error_ = detail::mdb_error("reading the newest journal entry", rc);
      return false;
    }
    std::memcpy(&last, k.mv_data, sizeof last);
    return true;
  }

  [[nodiscard]] bool header(std::uint64_t seq, journal_header& h) {
    MDB_val k = val_of(seq), v{};
    const int rc = mdb_get(txn_, db_.journal, &k, &v);
    if (rc != MDB_SUCCESS || v.mv_size < sizeof h) {
      error_ = "journal entry " + std::to_string(seq) +
               " is missing or shorter than its header (the journal runs 1, 2, ... without gaps); run verify";
      return false;
    }
    std::memcpy(&h, v.mv_data, sizeof h);
    return true;
  }

  // The first seq in 1..last committed at or after t, else last + 1: a
  // binary search, as commit times never decrease along the journal.
  [[nodiscard]] bool first_at_or_after(std::uint64_t t, std::uint64_t last, std::uint64_t& out) {
    std::uint64_t lo = 1, hi = last + 1;
    while (t != 0 && lo < hi) {
      const std::uint64_t mid = lo + (hi - lo) / 2;
      journal_header h{};
      if (!header(mid, h))
        return false;
      if (h.committed_at_us >= t)
        hi = mid;
      else
        lo = mid + 1;
    }
    out = lo;
    return true;
  }

  // Calls f on the entries lo..hi, which must all be there.
  template <class F>
  [[nodiscard]] bool walk(std::uint64_t lo, std::uint64_t hi, F&& f) {
    if (lo > hi)
      return true;
    detail::cursor cur(txn_, db_.journal);
    if (cur.rc() != MDB_SUCCESS) {
      error_ = detail::mdb_error("opening a journal cursor", cur.rc());
      return false;
    }
    MDB_val k = val_of(lo), v{};
    std::uint64_t expect = lo;
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_KEY); expect <= hi;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT), ++expect) {
      std::uint64_t seq = 0;
      if (rc == MDB_SUCCESS && k.mv_size == sizeof seq)
        std::memcpy(&seq, k.mv_data, sizeof seq);
      if (seq != expect) {
        error_ = "journal entry " + std::to_string(expect) +
                 " is missing (the journal runs 1, 2, ... without gaps); run verify";
        return false;
      }
      entry_view e;
      if (!parse(seq, v, e, error_) || !f(e))
        return false;
    }
    return true;
  }

  [[nodiscard]] bool read_record(std::uint64_t account, account_record& table) {
    int rc = 0;
    if (!detail::get_record(txn_, db_.accounts, val_of(account), table, &rc) && rc != MDB_NOTFOUND) {
      error_ = "account " + std::to_string(account) + ": cannot read its record; run verify";
      return false;
    }
    return true;
  }

  [[nodiscard]] bool to_flow(std::uint64_t account, const flow_sums& s, account_flow& f) {
    const account_record& table = s.table;
    constexpr i128 u64_max = std::numeric_limits<std::uint64_t>::max();
    const i128 opening_debit = i128{table.debit_total} + s.fix_debit;
    const i128 opening_credit = i128{table.credit_total} + s.fix_credit;
    for (i128 x : {opening_debit, opening_credit, s.debit, s.credit})
      if (x < 0 || x > u64_max) {
        error_ = "account " + std::to_string(account) + ": its totals around the period leave 0..2^64-1; run verify";
        return false;
      }
    f.account = account;
    f.opening_debit = static_cast<std::uint64_t>(opening_debit);
    f.opening_credit = static_cast<std::uint64_t>(opening_credit);
    f.debit = static_cast<std::uint64_t>(s.debit);
    f.credit = static_cast<std::uint64_t>(s.credit);
    f.postings = static_cast<std::uint64_t>(s.postings);
    return true;
  }

  MDB_txn* txn_;
  const dbs& db_;
  std::string& error_;
};

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
