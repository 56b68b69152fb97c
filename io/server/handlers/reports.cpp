// Coalition reports (docs/PROTOCOL.md: liability, activity, settlement,
// report; docs/OPERATIONS.md, "Reports"). liability reads four account
// balances a brand and answers at once; the others scan a period of the
// journal and run as jobs in the `report` slot.
#include "io/server/handlers/handlers.hpp"

#include "io/server/views.hpp"

namespace loyalty::io::handlers {

namespace {

__extension__ using i128 = __int128;

bool fits(i128 v, std::int64_t& out) {
  if (v < INT64_MIN || v > INT64_MAX)
    return false;
  out = static_cast<std::int64_t>(v);
  return true;
}
// floor(points x num / den), toward minus infinity.
i128 value_of(i128 points, const rational& rate) {
  const i128 p = points * static_cast<i128>(rate.num);
  const i128 d = static_cast<i128>(rate.den);
  return p >= 0 ? p / d : -((-p + d - 1) / d);
}
i128 debit_normal(std::uint64_t debit, std::uint64_t credit) { return i128(debit) - i128(credit); }
i128 credit_normal(std::uint64_t debit, std::uint64_t credit) { return i128(credit) - i128(debit); }

// The brands a report is about: the one named, or every brand the key may
// read. A brand key reads its own brand only, and gets its own when it
// names none. Empty, with `refused` set, on refusal.
bool report_brands(server::impl& srv, const caller& who, const request& req, std::vector<const brand_def*>& out,
                   response& refused) {
  const program& prog = srv.prog();
  if (!req.brand.empty()) {
    const brand_def* b = prog.find_brand(req.brand);
    if (b == nullptr) {
      refused = refusal(errc::unknown_brand, "no brand '" + req.brand + "' in the program");
      return false;
    }
    if (who.scope_brand != 0 && b->id != who.scope_brand) {
      refused = deny(who, req.op, "the key may read its own brand only");
      return false;
    }
    out.push_back(b);
    return true;
  }
  for (const auto& b : prog.brands)
    if (who.scope_brand == 0 || b.id == who.scope_brand)
      out.push_back(&b);
  return true;
}

// The figures `activity` and `report` both answer (activity_result,
// report_row); each adds the closing liability at the brand's rate now.
template <class Row>
void put_figures(const ledger::brand_figures& x, Row& row) {
  row.issued = x.issued;
  row.refunded = x.refunded;
  row.redeemed = x.redeemed;
  row.reversed = x.reversed;
  row.expired = x.expired;
  row.opening_outstanding = x.opening_outstanding;
  row.closing_outstanding = x.closing_outstanding;
  row.settlement = x.settlement;
}

// A brand's row of a report; false if a figure leaves int64.
bool report_row_of(const ledger::brand_report& b, const brand_def& def, const std::vector<std::string>& tier_names,
                   report_row& row) {
  const auto& x = b.figures;
  row.brand = def.code;
  put_figures(x, row);
  row.cost_per_point = views::ratio_text(def.cost_per_point.num, def.cost_per_point.den);
  row.settlement_closing = x.settlement_closing;
  // redeemed and issued are >= 0 (credits, debits); x 10^4 stays below 2^77.
  row.redemption_rate = views::ratio_text(static_cast<std::uint64_t>(x.redeemed), static_cast<std::uint64_t>(x.issued));
  row.members = b.members;
  row.active_members = b.active_members;
  if (!fits(value_of(x.closing_outstanding, def.cost_per_point), row.closing_liability) ||
      !fits(x.issued == 0 ? 0 : i128{x.redeemed} * 10'000 / x.issued, row.redemption_rate_bp) ||
      !fits(b.members == 0 ? 0 : i128{b.active_members} * 10'000 / b.members, row.active_rate_bp))
    return false;
  // Every tier of the program, then any index it no longer has (a reload removed tiers).
  for (std::size_t t = 0; t < tier_names.size(); ++t)
    row.tiers.push_back({tier_names[t], 0});
  for (const auto& [index, count] : b.tiers) {
    if (index >= tier_names.size())
      row.tiers.push_back({"#" + std::to_string(index), 0});
    (index < tier_names.size() ? row.tiers[index] : row.tiers.back()).members = count;
  }
  for (const auto& e : b.top)
    row.top.push_back({e.member, e.points});
  return true;
}

void fill_statement(const program& prog, const ledger::statement& st, statement_result& out) {
  out.party = views::party_name(prog, st.kind, st.party);
  out.from_us = st.period.from_us;
  out.to_us = st.period.to_us;
  out.first_seq = st.period.first_seq;
  out.last_seq = st.period.last_seq;
  out.opening = st.opening;
  out.closing = st.closing;
  out.net = st.due_total;
  out.points = st.points_total;
  out.line_count = st.line_count;
  out.next_after = st.next_after;
  for (const auto& l : st.lines) {
    const auto s = ledger::as_settle(l.settle);
    if (!s)
      continue;  // the ledger gives settle records only
    const bool payee = s->payee_kind == st.kind && s->payee == st.party;
    statement_row row;
    row.seq = l.seq;
    row.committed_at_us = l.committed_at_us;
    row.member = l.member_id;
    row.kind = ledger::to_string(static_cast<ledger::entry_kind>(l.entry_kind));
    row.txn = l.txn_id;
    row.counterparty = payee ? views::party_name(prog, s->payer_kind, s->payer)
                             : views::party_name(prog, s->payee_kind, s->payee);
    row.due = l.due;
    row.points = l.due < 0 ? -s->points : s->points;
    row.rate = views::ratio_text(s->rate_num, s->rate_den);
    row.reversal = s->reversal;
    out.lines.push_back(std::move(row));
  }
}

} // namespace

// Every brand's points outstanding and their value now, from the account
// balances (four accounts a brand), on the io thread.
handled liability(server::impl& srv, const caller& who, const request& req) {
  std::vector<const brand_def*> brands;
  response refused;
  if (!report_brands(srv, who, req, brands, refused))
    return handled::answer(std::move(refused));
  std::vector<std::uint64_t> ids;
  for (const auto* b : brands)
    for (auto id : ledger::brand_accounts(b->id))
      ids.push_back(id);
  const auto recs = srv.deps.ledger->load_accounts(ids);
  response r;
  for (std::size_t i = 0; i < brands.size(); ++i) {
    const auto* a = &recs[4 * i];
    const i128 issued = debit_normal(a[0].debit_total, a[0].credit_total);
    const i128 redeemed = credit_normal(a[1].debit_total, a[1].credit_total);
    const i128 expired = credit_normal(a[2].debit_total, a[2].credit_total);
    const i128 outstanding = issued - redeemed - expired;
    liability_row row;
    row.brand = brands[i]->code;
    row.cost_per_point = views::ratio_text(brands[i]->cost_per_point.num, brands[i]->cost_per_point.den);
    if (!fits(issued, row.issued) || !fits(redeemed, row.redeemed) || !fits(expired, row.expired) ||
        !fits(outstanding, row.outstanding) || !fits(value_of(outstanding, brands[i]->cost_per_point), row.liability) ||
        !fits(credit_normal(a[3].debit_total, a[3].credit_total), row.settlement))
      return handled::error(errc::amount_overflow, "brand " + row.brand + ": a total leaves int64");
    r.liabilities.push_back(std::move(row));
  }
  return handled::answer(std::move(r));
}

// What moved a brand's points and money over a period.
handled activity(server::impl& srv, const caller& who, const request& req) {
  std::vector<const brand_def*> brands;
  response refused;
  if (!report_brands(srv, who, req, brands, refused))
    return handled::answer(std::move(refused));
  if (brands.size() != 1)
    return handled::error(errc::missing_field, "activity needs a brand");
  return handled::job(job_slot::report, "a report is already running",
                      [b = *brands[0], from = req.from_us, to = req.to_us](server::impl& s) {
                        response r;
                        const auto acc = ledger::brand_accounts(b.id);
                        std::string error;
                        auto f = s.deps.ledger->account_flows({acc.begin(), acc.end()}, from, to, error);
                        if (!f)
                          return refusal(errc::invalid_argument, std::move(error));
                        ledger::brand_figures x;
                        auto& a = r.activity;
                        a.brand = b.code;
                        a.from_us = f->period.from_us;
                        a.to_us = f->period.to_us;
                        a.first_seq = f->period.first_seq;
                        a.last_seq = f->period.last_seq;
                        if (!ledger::brand_figures_of(f->accounts.data(), x) ||
                            !fits(value_of(x.closing_outstanding, b.cost_per_point), a.closing_liability))
                          return refusal(errc::amount_overflow, "a total of brand " + b.code + " leaves int64");
                        put_figures(x, a);
                        return r;
                      });
}

// KPIs of the brands the key may read over a period (a scan of the period,
// of the members table and of the members' recent history). The brands and
// tier names are copied now: a reload meanwhile does not change the answer.
handled report(server::impl& srv, const caller& who, const request& req) {
  std::vector<const brand_def*> brands;
  response refused;
  if (!report_brands(srv, who, req, brands, refused))
    return handled::answer(std::move(refused));
  ledger::report_request q;
  std::vector<brand_def> defs;
  for (const auto* b : brands) {
    q.brands.push_back(b->id);
    defs.push_back(*b);
  }
  const std::uint32_t days = req.active_days != 0 ? req.active_days : report_active_days_default;
  q.from_us = req.from_us;
  q.to_us = req.to_us;
  q.active_us = std::uint64_t{days} * us_per_day;
  q.top = req.top != 0 ? req.top : report_top_default;
  std::vector<std::string> tiers;
  for (const auto& t : srv.prog().tiers)
    tiers.push_back(t.name);
  return handled::job(
    job_slot::report, "a report is already running",
    [q = std::move(q), defs = std::move(defs), tiers = std::move(tiers), days](server::impl& s) {
      response r;
      errc code = errc::ok;
      std::string error;
      auto rep = s.deps.ledger->report(q, code, error);
      if (!rep)
        return refusal(code, std::move(error));
      auto& out = r.report;
      out.from_us = rep->period.from_us;
      out.to_us = rep->period.to_us;
      out.first_seq = rep->period.first_seq;
      out.last_seq = rep->period.last_seq;
      out.active_days = days;
      out.active_from_us = rep->active_from_us;
      for (std::size_t i = 0; i < defs.size(); ++i) {
        out.brands.emplace_back();
        if (!report_row_of(rep->brands[i], defs[i], tiers, out.brands.back()))
          return refusal(errc::amount_overflow, "a figure of brand " + defs[i].code + " leaves int64");
      }
      return r;
    });
}

// A brand's or a partner's statement over a period. A brand key reads its
// own brand's, a partner key its own partner's.
handled settlement(server::impl& srv, const caller& who, const request& req) {
  const program& prog = srv.prog();
  ledger::party_kind kind = ledger::party_kind::brand;
  std::uint32_t party = 0;
  if (req.brand.empty() == req.partner.empty())
    return handled::error(errc::invalid_argument, "settlement needs exactly one of brand and partner");
  if (!req.partner.empty()) {
    const partner_def* p = prog.find_partner(req.partner);
    if (p == nullptr)
      return handled::error(errc::unknown_partner, "no partner '" + req.partner + "' in the program");
    kind = ledger::party_kind::partner;
    party = p->id;
  } else {
    std::vector<const brand_def*> brands;
    response refused;
    if (!report_brands(srv, who, req, brands, refused))
      return handled::answer(std::move(refused));
    party = brands[0]->id;
  }
  if ((who.scope_brand != 0 && kind != ledger::party_kind::brand) ||
      (who.scope_partner != caller::partner_none && (kind != ledger::party_kind::partner || party != who.scope_partner)))
    return handled::answer(deny(who, req.op, "the key may read its own statement only"));
  const std::size_t limit = req.limit == 0 ? statement_limit_default : req.limit;
  return handled::job(job_slot::report, "a report is already running",
                      [kind, party, limit, from = req.from_us, to = req.to_us, after = req.after](server::impl& s) {
                        response r;
                        std::string error;
                        auto st = s.deps.ledger->settlement(kind, party, from, to, after, limit, error);
                        if (!st)
                          return refusal(errc::invalid_argument, std::move(error));
                        fill_statement(s.prog(), *st, r.statement);
                        return r;
                      });
}

handled risk_report(server::impl& srv, const caller&, const request& req) {
  const std::size_t limit = req.limit != 0 ? req.limit : risk_report_limit_default;
  // One more than the page: whether there is a next one.
  auto rows = srv.deps.ledger->risk_members(req.after, limit + 1);
  response r;
  if (rows.size() > limit) {
    rows.resize(limit);
    r.next = rows.back().member;
  }
  for (const auto& x : rows)
    r.risk.push_back(risk_member{x.member, (x.risk.flags & ledger::risk_flagged) != 0,
                                 (x.risk.flags & ledger::risk_blocked) != 0, x.risk.breaches, x.risk.blocked_at_us,
                                 x.reason});
  return handled::answer(std::move(r));
}

} // namespace loyalty::io::handlers
