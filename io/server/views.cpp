#include "io/server/views.hpp"

namespace loyalty::io::views {

std::string brand_code(const program& prog, std::uint32_t id) {
  const brand_def* b = prog.find_brand(id);
  return b != nullptr ? b->code : std::to_string(id);
}

std::string partner_code(const program& prog, std::uint32_t id) {
  const partner_def* p = prog.find_partner(id);
  return p != nullptr ? p->code : std::to_string(id);
}

std::string party_name(const program& prog, ledger::party_kind kind, std::uint32_t id) {
  switch (kind) {
    case ledger::party_kind::brand: return "brand:" + brand_code(prog, id);
    case ledger::party_kind::partner: return "partner:" + partner_code(prog, id);
  }
  return "party:" + std::to_string(id);
}

std::string account_name(const program& prog, std::uint64_t account) {
  const auto kind = ledger::kind_of(account);
  const auto entity = ledger::entity_of(account);
  switch (kind) {
    case ledger::account_kind::member_points: return "member:" + std::to_string(entity);
    case ledger::account_kind::brand_issued:
    case ledger::account_kind::brand_redeemed:
    case ledger::account_kind::brand_expired:
    case ledger::account_kind::brand_settlement:
      return std::string(ledger::to_string(kind)) + ":" + brand_code(prog, static_cast<std::uint32_t>(entity));
    case ledger::account_kind::partner_receivable:
    case ledger::account_kind::partner_payable:
      return std::string(ledger::to_string(kind)) + ":" + partner_code(prog, static_cast<std::uint32_t>(entity));
  }
  return "account:" + std::to_string(account);
}

std::string ratio_text(std::uint64_t num, std::uint64_t den) { return std::to_string(num) + "/" + std::to_string(den); }

line line_of(const program& prog, const ledger::rule_line_view& l) {
  line out;
  out.kind = ledger::to_string(l.kind);
  switch (l.kind) {
    case ledger::rule_line_kind::rule:
      if (const earn_rule* rule = prog.find_rule(l.id))
        out.rule = rule->code;
      break;
    case ledger::rule_line_kind::partner: out.rule = partner_code(prog, l.id); break;
    case ledger::rule_line_kind::base:
    case ledger::rule_line_kind::tier: break;
  }
  out.points = l.points;
  out.amount = l.amount;
  return out;
}

settlement_move settlement_of(const program& prog, const ledger::settle_view& s) {
  settlement_move m;
  m.payer = party_name(prog, s.payer_kind, s.payer);
  m.payee = party_name(prog, s.payee_kind, s.payee);
  m.points = s.points;
  m.amount = s.amount;
  m.rate = ratio_text(s.rate_num, s.rate_den);
  m.reversal = s.reversal;
  return m;
}

std::int64_t points_of(const ledger::ledger::entry& e, std::uint64_t member) {
  const auto acct = ledger::account_id(ledger::account_kind::member_points, member);
  std::int64_t points = 0;
  for (const auto& p : e.postings)
    if (p.account == acct)
      points += p.side == static_cast<std::uint32_t>(ledger::posting_side::credit)
                  ? static_cast<std::int64_t>(p.amount)
                  : -static_cast<std::int64_t>(p.amount);
  return points;
}

history_entry entry_view(const program& prog, const ledger::ledger::entry& e, std::uint64_t member) {
  const auto& h = e.header;
  history_entry out;
  out.seq = h.seq;
  out.kind = ledger::to_string(static_cast<ledger::entry_kind>(h.kind));
  out.txn = e.txn_id;
  out.occurred_at_us = h.occurred_at_us;
  out.committed_at_us = h.committed_at_us;
  out.points = points_of(e, member);
  out.balance = h.member_id == member ? h.balance_after : 0;
  out.amount = h.amount_minor;
  if (const brand_def* b = prog.find_brand(h.brand_id))
    out.brand = b->code;
  out.ref = h.ref_seq;
  out.counterparty = h.member_id == member ? h.counterparty_id : h.member_id;
  if (h.partner_id != 0)
    out.partner = partner_code(prog, h.partner_id);
  return out;
}

std::vector<move> moves_of(const program& prog, const ledger::ledger::entry& e) {
  std::vector<move> out;
  out.reserve(e.postings.size());
  for (const auto& p : e.postings) {
    move mv;
    mv.account = account_name(prog, p.account);
    mv.side = p.side == static_cast<std::uint32_t>(ledger::posting_side::debit) ? "debit" : "credit";
    mv.amount = static_cast<std::int64_t>(p.amount);
    out.push_back(std::move(mv));
  }
  return out;
}

void lines_and_settlements(const program& prog, const ledger::ledger::entry& e, std::vector<line>& lines,
                           std::vector<settlement_move>& settlements) {
  for (const auto& d : e.details) {
    if (auto l = ledger::as_rule_line(d))
      lines.push_back(line_of(prog, *l));
    else if (auto s = ledger::as_settle(d))
      settlements.push_back(settlement_of(prog, *s));
  }
}

journal_entry journal_entry_of(const program& prog, const ledger::ledger::entry& e) {
  journal_entry j;
  j.entry = entry_view(prog, e, e.header.member_id);
  j.member = e.header.member_id;
  j.key_id = e.header.key_id;
  j.policy_version = e.header.policy_version;
  j.moves = moves_of(prog, e);
  lines_and_settlements(prog, e, j.lines, j.settlements);
  return j;
}

} // namespace loyalty::io::views
