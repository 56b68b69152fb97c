// Private to ledger/: reading periods of the journal inside one read
// transaction (periods.cpp: account flows, statements; reports.cpp: KPI
// reports). The writer keeps committed_at_us non-decreasing along the
// journal, and its keys run 1, 2, ... without gaps, so a period is a range
// of seqs found by binary search.
#pragma once

#include "ledger/detail/impl.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

namespace loyalty::ledger::detail {

__extension__ typedef __int128 i128;  // totals and their corrections, checked before they are narrowed

inline constexpr char accounts_seq_key[] = "accounts_seq";

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

[[nodiscard]] inline bool parse(std::uint64_t seq, const MDB_val& v, entry_view& e, std::string& error) {
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
    const std::uint64_t checkpoint = this->checkpoint();
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

  // The journal's newest seq in this transaction (0: empty).
  [[nodiscard]] bool newest(std::uint64_t& last) {
    cursor cur(txn_, db_.journal);
    if (cur.rc() != MDB_SUCCESS) {
      error_ = mdb_error("opening a journal cursor", cur.rc());
      return false;
    }
    MDB_val k{}, v{};
    const int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_LAST);
    if (rc == MDB_NOTFOUND) {
      last = 0;
      return true;
    }
    if (rc != MDB_SUCCESS || k.mv_size != sizeof last) {
      error_ = mdb_error("reading the newest journal entry", rc);
      return false;
    }
    std::memcpy(&last, k.mv_data, sizeof last);
    return true;
  }

  // The header of entry `seq`, which must be there.
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
    cursor cur(txn_, db_.journal);
    if (cur.rc() != MDB_SUCCESS) {
      error_ = mdb_error("opening a journal cursor", cur.rc());
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

  // meta "accounts_seq": every entry up to it is in the accounts table.
  [[nodiscard]] std::uint64_t checkpoint() const {
    std::uint64_t seq = 0;
    get_record(txn_, db_.meta, val(accounts_seq_key, sizeof accounts_seq_key - 1), seq);
    return seq;
  }

private:
  [[nodiscard]] bool read_record(std::uint64_t account, account_record& table) {
    int rc = 0;
    if (!get_record(txn_, db_.accounts, val_of(account), table, &rc) && rc != MDB_NOTFOUND) {
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

} // namespace loyalty::ledger::detail
