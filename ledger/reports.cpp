// KPI reports: per brand and period, the points issued, redeemed, expired and
// reversed (the flows `activity` reads), the members, the active members,
// the tier distribution and the top earners, all in one read transaction of
// committed entries, so every figure is of one snapshot and reconciles with
// `activity`, `liability`, settlement statements and `verify`.
//
// Member heads. A member's newest entry is the last_seq of its member_points
// account. The writer's cache holds heads newer than the read transaction
// (it updates the cache before it commits), so a head taken from it could
// name an entry this snapshot does not have. The report takes each head from
// the snapshot alone: the accounts table's record (every entry up to meta
// "accounts_seq", and up to the record's own last_seq), raised by the
// entries after accounts_seq that name the member -- the journal tail since
// the last checkpoint, read once.
//
// Cost: O(entries in the period + members + entries since the activity
// window's start), ledger.hpp `report` has the terms.
#include "ledger/detail/impl.hpp"
#include "ledger/detail/periods.hpp"
#include "ledger/record_views.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>

namespace loyalty::ledger {

using detail::i128;
using detail::val_of;

namespace {

[[nodiscard]] bool narrow(i128 v, std::int64_t& out) {
  if (v < std::numeric_limits<std::int64_t>::min() || v > std::numeric_limits<std::int64_t>::max())
    return false;
  out = static_cast<std::int64_t>(v);
  return true;
}

[[nodiscard]] i128 debit_normal(std::uint64_t debit, std::uint64_t credit) { return i128{debit} - i128{credit}; }
[[nodiscard]] i128 credit_normal(std::uint64_t debit, std::uint64_t credit) { return i128{credit} - i128{debit}; }

[[nodiscard]] bool is(const journal_header& h, entry_kind k) { return h.kind == static_cast<std::uint16_t>(k); }

// Points each member earned for each brand asked, from the period's entries:
// earn, event and partner_earn debits of the brand's issued account, minus
// refund credits of it (a clawback of an earlier purchase).
class earnings {
public:
  explicit earnings(const std::vector<std::uint32_t>& brands) : by_brand_(brands.size()) {
    for (std::size_t i = 0; i < brands.size(); ++i)
      index_[account_id(account_kind::brand_issued, brands[i])] = i;
  }

  void add(const detail::entry_view& e) {
    const bool earned = is(e.h, entry_kind::earn) || is(e.h, entry_kind::event) || is(e.h, entry_kind::partner_earn);
    if (!earned && !is(e.h, entry_kind::refund))
      return;
    const auto side = static_cast<std::uint32_t>(earned ? posting_side::debit : posting_side::credit);
    for (std::size_t i = 0; i < e.h.posting_count; ++i) {
      const auto p = e.posting_at(i);
      auto it = index_.find(p.account);
      if (it == index_.end() || p.side != side)
        continue;
      auto& sum = by_brand_[it->second][e.h.member_id];
      sum += earned ? i128{p.amount} : -i128{p.amount};
    }
  }

  // The `top` members of brand `i` with the most points above 0.
  [[nodiscard]] bool top(std::size_t i, std::size_t top, std::vector<earner>& out, std::string& error) const {
    std::vector<std::pair<std::uint64_t, i128>> all;
    for (const auto& [member, points] : by_brand_[i])
      if (points > 0)
        all.emplace_back(member, points);
    const auto first = [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; };
    const auto n = std::min(top, all.size());
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(), first);
    out.clear();
    for (std::size_t k = 0; k < n; ++k) {
      earner x{all[k].first, 0};
      if (!narrow(all[k].second, x.points)) {
        error = "member " + std::to_string(x.member) + ": the points it earned leave int64; run verify";
        return false;
      }
      out.push_back(x);
    }
    return true;
  }

private:
  std::unordered_map<std::uint64_t, std::size_t> index_;  // brand_issued account -> brand index
  std::vector<std::unordered_map<std::uint64_t, i128>> by_brand_;
};

// A member's state as of the period's end, from its history chain.
struct member_view {
  std::uint32_t tier = 0;
  bool active = false;
};

// Reads the members of the brands asked, in the report's transaction.
class member_scan {
public:
  member_scan(MDB_txn* txn, const dbs& db, detail::period_reader& r, const kpi_report& rep, std::string& error)
      : txn_(txn), db_(db), r_(r), rep_(rep), error_(error) {}

  // The heads the accounts table does not have yet: the newest entry of
  // each member named by an entry after the last checkpoint.
  [[nodiscard]] bool read_tail() {
    std::uint64_t newest = 0;
    if (!r_.newest(newest))
      return false;
    return r_.walk(r_.checkpoint() + 1, newest, [&](const detail::entry_view& e) {
      tail_[e.h.member_id] = e.h.seq;
      if (e.h.counterparty_id != 0)
        tail_[e.h.counterparty_id] = e.h.seq;
      return true;
    });
  }

  // Counts each member of a brand asked into its brand_report.
  [[nodiscard]] bool count(std::vector<brand_report>& out) {
    std::unordered_map<std::uint32_t, std::size_t> index;
    std::vector<std::map<std::uint32_t, std::uint64_t>> tiers(out.size());
    for (std::size_t i = 0; i < out.size(); ++i)
      index[out[i].brand] = i;
    detail::cursor cur(txn_, db_.members);
    if (cur.rc() != MDB_SUCCESS) {
      error_ = detail::mdb_error("opening a members cursor", cur.rc());
      return false;
    }
    MDB_val k{}, v{};
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      member_record rec{};
      if (v.mv_size != sizeof rec) {
        error_ = "a member record has the wrong size; run verify";
        return false;
      }
      std::memcpy(&rec, v.mv_data, sizeof rec);
      auto it = index.find(rec.brand_id);
      if (it == index.end() || rec.enroll_seq > rep_.period.last_seq)
        continue;  // another brand's, or enrolled after the period
      member_view m;
      if (!view(rec, m))
        return false;
      auto& b = out[it->second];
      b.members++;
      b.active_members += m.active ? 1 : 0;
      tiers[it->second][m.tier]++;
    }
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i].tiers.assign(tiers[i].begin(), tiers[i].end());
    return true;
  }

private:
  // Walks the member's chain from its head: entries after the period are
  // passed over; the first own entry of the period or before it gives the
  // tier; an own active_kind entry in the window makes it active. Stops
  // once both are known, or the chain leaves the window with the tier known.
  [[nodiscard]] bool view(const member_record& rec, member_view& m) {
    const std::uint64_t member = rec.member_id;
    std::uint64_t seq = std::max(head_in_table(member), rec.enroll_seq);
    if (auto t = tail_.find(member); t != tail_.end())
      seq = std::max(seq, t->second);
    bool tier_known = false;
    while (seq != 0) {
      journal_header h{};
      if (!r_.header(seq, h))
        return false;
      const bool own = h.member_id == member;
      const std::uint64_t prev = own ? h.prev_member_seq : h.counterparty_prev_seq;
      if ((!own && h.counterparty_id != member) || prev >= seq) {
        error_ = "member " + std::to_string(member) + ": history chain breaks at entry " + std::to_string(seq) +
                 "; run verify";
        return false;
      }
      if (own && seq <= rep_.period.last_seq) {
        if (!tier_known)
          m.tier = h.tier_after;
        tier_known = true;
        m.active = m.active || (seq >= rep_.active_first_seq && active_kind(h));
      }
      if (tier_known && (m.active || prev < rep_.active_first_seq))
        return true;
      seq = prev;
    }
    error_ = "member " + std::to_string(member) + ": history chain has no entry of its own before the period's end; "
             "run verify";
    return false;
  }

  // The member's newest entry as the accounts table has it (0: no record).
  [[nodiscard]] std::uint64_t head_in_table(std::uint64_t member) const {
    account_record a{};
    if (!detail::get_record(txn_, db_.accounts, val_of(account_id(account_kind::member_points, member)), a))
      return 0;
    return a.last_seq;
  }

  MDB_txn* txn_;
  const dbs& db_;
  detail::period_reader& r_;
  const kpi_report& rep_;
  std::string& error_;
  std::unordered_map<std::uint64_t, std::uint64_t> tail_;  // member -> newest entry after the checkpoint
};

} // namespace

std::array<std::uint64_t, 4> brand_accounts(std::uint32_t brand) noexcept {
  return {account_id(account_kind::brand_issued, brand), account_id(account_kind::brand_redeemed, brand),
          account_id(account_kind::brand_expired, brand), account_id(account_kind::brand_settlement, brand)};
}

bool brand_figures_of(const account_flow* f, brand_figures& out) noexcept {
  const auto& issued = f[0];
  const auto& redeemed = f[1];
  const auto& expired = f[2];
  const auto& money = f[3];
  const i128 open = debit_normal(issued.opening_debit, issued.opening_credit) -
                    credit_normal(redeemed.opening_debit, redeemed.opening_credit) -
                    credit_normal(expired.opening_debit, expired.opening_credit);
  const i128 moved = debit_normal(issued.debit, issued.credit) - credit_normal(redeemed.debit, redeemed.credit) -
                     credit_normal(expired.debit, expired.credit);
  const i128 money_moved = credit_normal(money.debit, money.credit);
  return narrow(issued.debit, out.issued) && narrow(issued.credit, out.refunded) &&
         narrow(redeemed.credit, out.redeemed) && narrow(redeemed.debit, out.reversed) &&
         narrow(credit_normal(expired.debit, expired.credit), out.expired) && narrow(open, out.opening_outstanding) &&
         narrow(open + moved, out.closing_outstanding) && narrow(money_moved, out.settlement) &&
         narrow(credit_normal(money.opening_debit, money.opening_credit) + money_moved, out.settlement_closing);
}

bool active_kind(const journal_header& h) noexcept {
  if (h.txn_id_bytes == 0)
    return false;  // engine-posted: the welcome bonus, expiries, releases of expired holds, tier reviews
  switch (static_cast<entry_kind>(h.kind)) {
    case entry_kind::earn:
    case entry_kind::event:
    case entry_kind::redeem:
    case entry_kind::redeem_reward:
    case entry_kind::hold:
    case entry_kind::capture:
    case entry_kind::transfer:
    case entry_kind::partner_earn:
    case entry_kind::partner_burn: return true;
    default: return false;
  }
}

std::optional<kpi_report> ledger::report(const report_request& q, errc& code, std::string& error) const {
  error.clear();
  code = errc::invalid_argument;
  if (q.to_us != 0 && q.from_us >= q.to_us) {
    error = "the period's start (from_us) must be before its end (to_us)";
    return std::nullopt;
  }
  code = errc::internal_error;  // from here on: a failed read, or a journal verify would refuse
  detail::read_txn txn(impl_->env);
  if (!txn.get()) {
    error = detail::mdb_error("cannot begin a read transaction", txn.rc());
    return std::nullopt;
  }
  detail::period_reader r(txn.get(), impl_->db, error);
  kpi_report out;
  std::uint64_t newest = 0;
  if (!r.find(q.from_us, q.to_us, out.period) || !r.newest(newest))
    return std::nullopt;
  out.active_from_us = out.period.to_us > q.active_us ? out.period.to_us - q.active_us : 0;
  if (!r.first_at_or_after(out.active_from_us, newest, out.active_first_seq))
    return std::nullopt;

  std::vector<std::uint64_t> accounts;
  for (auto b : q.brands)
    for (auto a : brand_accounts(b))
      accounts.push_back(a);
  earnings earned(q.brands);
  std::vector<account_flow> flows;
  if (!r.flows(out.period, accounts, flows, [&](const detail::entry_view& e) {
        earned.add(e);
        return true;
      }))
    return std::nullopt;
  for (std::size_t i = 0; i < q.brands.size(); ++i) {
    brand_report b;
    b.brand = q.brands[i];
    if (!brand_figures_of(&flows[4 * i], b.figures)) {
      code = errc::amount_overflow;
      error = "a total of brand " + std::to_string(b.brand) + " leaves int64";
      return std::nullopt;
    }
    if (!earned.top(i, q.top, b.top, error))
      return std::nullopt;
    out.brands.push_back(std::move(b));
  }
  member_scan members(txn.get(), impl_->db, r, out, error);
  if (!members.read_tail() || !members.count(out.brands))
    return std::nullopt;
  code = errc::ok;
  return out;
}

std::vector<ledger::risk_row> ledger::risk_members(std::uint64_t after, std::size_t limit) const {
  std::vector<risk_row> out;
  detail::read_txn txn(impl_->env);
  if (!txn.get())
    return out;
  detail::cursor cur(txn.get(), impl_->db.risk);
  MDB_val k = val_of(after), v{};
  for (int rc = cur.rc() == MDB_SUCCESS ? mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE) : cur.rc();
       rc == MDB_SUCCESS && out.size() < limit; rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
    risk_row row;
    if (k.mv_size != sizeof row.member || v.mv_size != sizeof row.risk)
      continue;  // verify reports it
    std::memcpy(&row.member, k.mv_data, sizeof row.member);
    std::memcpy(&row.risk, v.mv_data, sizeof row.risk);
    if (row.member <= after || row.risk.flags == 0)
      continue;
    if (row.risk.block_seq != 0)
      if (auto e = impl_->read_entry(txn.get(), row.risk.block_seq))
        row.reason = note_text(e->details);
    out.push_back(std::move(row));
  }
  return out;
}

} // namespace loyalty::ledger
