// loyaltyctl: a small integrator / admin command line over the wire protocol.
#include "config/consent.hpp"
#include "config/program.hpp"
#include "io/client/cli_connection.hpp"
#include "io/client/client.hpp"
#include "io/wire/json.hpp"
#include "io/ctl/stream.hpp"
#include "io/ctl/report.hpp"
#include "io/ctl/bulk.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <fstream>
#include <iostream>

using namespace loyalty;
using namespace loyalty::io;

namespace {

void print_lines_text(const std::vector<line>& lines) {
  for (const auto& l : lines)
    std::cout << "  " << l.kind << (l.rule.empty() ? "" : " " + l.rule) << ": " << l.points << " points (amount "
              << l.amount << ")\n";
}

// What became of each purchase rule (quote; earn where the program says).
void print_rules_text(const std::vector<rule_outcome>& rules) {
  for (const auto& x : rules) {
    std::cout << "  rule " << x.rule << ": ";
    if (x.won)
      std::cout << "won, " << x.points << " points (" << x.why << ")\n";
    else if (x.why == "outscored")
      std::cout << "not counted, outscored by " << x.by << " (it offered " << x.points << " points)\n";
    else
      std::cout << "not counted (" << x.why << ")\n";
  }
}

// One line per settle record: who owes whom how much, and why.
void print_settlements_text(const std::vector<settlement_move>& moves) {
  for (const auto& m : moves) {
    if (m.reversal)
      std::cout << "  settlement reversed: " << m.payee << " gives back " << m.amount << " to " << m.payer;
    else
      std::cout << "  settlement: " << m.payer << " owes " << m.payee << " " << m.amount;
    std::cout << " (" << m.points << " points at " << m.rate << " per point)\n";
  }
}

// An instant for a person to read: ISO 8601 in UTC, to the second, with
// the microseconds when there are any (2026-03-02T12:00:00Z,
// 2026-03-02T12:00:00.500000Z). --json keeps the wire's microseconds.
std::string iso_time(std::uint64_t us) {
  constexpr std::uint64_t year_10000_us = 253'402'300'800'000'000ull;  // four-digit years only
  if (us >= year_10000_us)
    return std::to_string(us) + " us since the epoch";
  const std::chrono::sys_time<std::chrono::microseconds> t{std::chrono::microseconds{static_cast<std::int64_t>(us)}};
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss hms{t - day};
  char buf[48];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(ymd.year()),
                        static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                        static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                        static_cast<int>(hms.seconds().count()));
  if (const auto micros = us % 1'000'000; micros != 0)
    n += std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ".%06u", static_cast<unsigned>(micros));
  std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), "Z");
  return buf;
}

// "[from, to)" of a report period; 0 = open end.
std::string period_text(std::uint64_t from_us, std::uint64_t to_us) {
  return "commit time [" + (from_us == 0 ? std::string("beginning") : iso_time(from_us)) + ", " +
         (to_us == 0 ? std::string("now") : iso_time(to_us)) + ")";
}

void print_statement_text(const statement_result& st, bool all_pages) {
  std::cout << "statement of " << st.party << ", " << period_text(st.from_us, st.to_us) << ": opening "
            << st.opening << ", closing " << st.closing << ", net " << st.net << " (" << st.line_count
            << " lines, " << st.points << " points)\n";
  std::cout << "  amounts in minor units; + the program owes " << st.party << " more, - it owes more\n";
  for (const auto& l : st.lines) {
    std::cout << "  seq " << l.seq << " " << l.kind << ", member " << l.member;
    if (!l.txn.empty())
      std::cout << ", txn " << json_escape(l.txn);
    std::cout << ": due " << l.due << " (" << l.points << " points at " << l.rate << ", with " << l.counterparty
              << ")" << (l.reversal ? " reversal" : "") << ", at " << iso_time(l.committed_at_us) << "\n";
  }
  if (st.next_after != 0 && !all_pages)
    std::cout << "more: --after " << st.next_after << " (or --all)\n";
}

// "; member M balance B, lifetime L, tier T (seq S)" after an entry.
void print_after(const response& r, bool with_tier) {
  std::cout << (r.replayed ? " (replay of an earlier request: nothing posted now)" : "") << "; member " << r.member
            << " balance " << r.balance;
  if (with_tier)
    std::cout << ", lifetime " << r.lifetime << ", tier " << r.tier;
  std::cout << " (seq " << r.seq << ")\n";
}

void print_text(const response& r, const request& q, bool all_pages) {
  // A sandbox key's answer says what the request would have done: said
  // first, so it cannot be read as a posting.
  const char* dry = r.dry_run && r.op != opcode::hello ? "dry run (nothing posted): " : "";
  if (!r.ok()) {
    std::cerr << "loyaltyctl: " << dry << to_string(r.code) << ": " << r.message << "\n";
    return;
  }
  std::cout << dry;
  switch (r.op) {
    case opcode::hello:
      std::cout << r.server << " (protocol " << r.version << ")"
                << (r.dry_run ? "; a sandbox key: posting operations are dry runs" : "") << "\n";
      break;
    case opcode::enroll:
      std::cout << "enrolled member " << r.member << " (seq " << r.seq << ")";
      if (r.points != 0)
        std::cout << "; welcome points " << r.points << ", balance " << r.balance;
      std::cout << "\n";
      print_lines_text(r.lines);
      break;
    case opcode::earn:
    case opcode::redeem:
      std::cout << (r.op == opcode::earn ? "earned " : "redeemed ") << r.points << " points";
      if (r.op == opcode::redeem && !q.brand.empty())
        std::cout << " at brand " << q.brand;
      print_after(r, true);
      print_lines_text(r.lines);
      print_rules_text(r.rules);
      break;
    case opcode::partner_earn:
    case opcode::partner_burn:
      std::cout << (r.op == opcode::partner_earn ? "earned " : "burned ") << r.points << " points at partner "
                << r.partner;
      print_after(r, true);
      print_lines_text(r.lines);
      break;
    case opcode::liability:
      std::cout << r.liabilities.size() << (r.liabilities.size() == 1 ? " brand" : " brands")
                << " (points; money in minor units):\n";
      for (const auto& b : r.liabilities) {
        std::cout << "  " << b.brand << ": outstanding " << b.outstanding << " points (issued " << b.issued
                  << ", redeemed " << b.redeemed << ", expired " << b.expired << "); liability " << b.liability
                  << " at " << b.cost_per_point << " per point; ";
        if (b.settlement >= 0)
          std::cout << "the coalition owes it " << b.settlement << "\n";
        else
          std::cout << "it owes the coalition " << -b.settlement << "\n";
      }
      break;
    case opcode::activity: {
      const auto& a = r.activity;
      std::cout << "brand " << a.brand << ", " << period_text(a.from_us, a.to_us);
      if (a.last_seq < a.first_seq)
        std::cout << ": no entries\n";
      else
        std::cout << ", seq " << a.first_seq << " to " << a.last_seq << "\n";
      std::cout << "  points: issued " << a.issued << ", refunded " << a.refunded << ", redeemed " << a.redeemed
                << ", reversed " << a.reversed << ", expired " << a.expired << "\n"
                << "  outstanding " << a.opening_outstanding << " -> " << a.closing_outstanding
                << " points; closing liability " << a.closing_liability << "; settlement change " << a.settlement
                << " (minor units)\n";
      break;
    }
    case opcode::settlement: print_statement_text(r.statement, all_pages); break;
    case opcode::event:
      std::cout << "event '" << q.event << "' earned " << r.points << " points";
      print_after(r, true);
      print_lines_text(r.lines);
      break;
    case opcode::refund:
      std::cout << "refund took back " << r.points << " points";
      print_after(r, true);
      print_lines_text(r.lines);
      break;
    case opcode::hold:
      std::cout << "held " << r.points << " points as hold " << r.hold << ", expires at "
                << iso_time(r.expires_at_us);
      print_after(r, false);
      break;
    case opcode::capture:
      std::cout << "captured " << r.points << " points of hold " << q.hold;
      print_after(r, false);
      break;
    case opcode::release:
      std::cout << "released " << r.points << " points of hold " << q.hold;
      print_after(r, false);
      break;
    case opcode::redeem_reward:
      std::cout << "redeemed reward " << r.reward << " for " << r.points << " points";
      print_after(r, false);
      break;
    case opcode::reverse_redemption:
      std::cout << "reversed redemption: " << r.points << " points back";
      print_after(r, false);
      break;
    case opcode::release_pending:
      std::cout << "released " << r.points << " pending points of " << q.ref;
      print_after(r, false);
      break;
    case opcode::adjust:
      std::cout << "adjusted by " << (q.points < 0 ? -r.points : r.points) << " points";
      print_after(r, false);
      break;
    case opcode::transfer:
      std::cout << "transferred " << r.points << " points to member " << q.to;
      print_after(r, false);
      break;
    case opcode::block:
    case opcode::unblock:
      std::cout << "member " << r.member << (q.op == opcode::block ? " blocked" : " unblocked")
                << (r.replayed ? " (replay of an earlier request: nothing posted now)" : "") << " (seq " << r.seq
                << ")\n";
      break;
    case opcode::risk_report:
      std::cout << r.risk.size() << " members flagged or blocked\n";
      for (const auto& x : r.risk) {
        std::cout << "  member " << x.member << (x.flagged ? " flagged" : "") << (x.blocked ? " blocked" : "") << ", "
                  << x.breaches << " breaches";
        if (x.blocked)
          std::cout << ", blocked at " << iso_time(x.blocked_at_us) << ": " << json_escape(x.reason);
        std::cout << "\n";
      }
      if (r.next != 0)
        std::cout << "more: --after " << r.next << "\n";
      break;
    case opcode::link_alias:
      std::cout << "alias '" << q.alias << "' names member " << r.member
                << (r.replayed ? " (it did already: nothing posted now)" : "") << " (seq " << r.seq << ")\n";
      break;
    case opcode::lookup: std::cout << "alias '" << q.alias << "' names member " << r.member << "\n"; break;
    case opcode::household_join:
    case opcode::household_leave:
    case opcode::household_dissolve:
      std::cout << (r.op == opcode::household_join ? "member " + std::to_string(r.member) + " joined"
                    : r.op == opcode::household_leave ? "member " + std::to_string(r.member) + " left"
                                                      : std::string("dissolved"))
                << " household " << r.household
                << (r.replayed ? " (replay of an earlier request: nothing posted now)" : "") << " (seq " << r.seq
                << ")\n";
      break;
    case opcode::household:
      std::cout << "household " << r.household << ": " << r.household_available << " points available to spend\n";
      for (const auto& m : r.household_members)
        std::cout << "  member " << m.member << ": " << m.available << " available\n";
      break;
    case opcode::balance:
      std::cout << "member " << r.member << " (" << r.brand << "): balance " << r.balance << ", lifetime "
                << r.lifetime << ", tier " << r.tier << "\n";
      std::cout << "  available " << r.available << ", pending " << r.pending << ", held " << r.held << ", debt "
                << r.debt << "\n";
      if (!r.next_tier.empty())
        std::cout << "  next tier " << r.next_tier << ": " << r.to_next_tier << " to go (now " << r.qualifying
                  << ")\n";
      if (r.next_expiry_at_us != 0)
        std::cout << "  " << r.next_expiry_points << " points expire at " << iso_time(r.next_expiry_at_us) << "\n";
      if (r.tier_holds_until_us != 0)
        std::cout << "  tier " << r.tier << " holds until " << iso_time(r.tier_holds_until_us) << ", then "
                  << r.tier_drops_to << " (" << r.tier_keep_missing << " of the tier metric missing)\n";
      std::cout << "  consents to: " << channels_text(r.consents) << "\n";
      if (r.blocked || r.flagged || r.breaches != 0)
        std::cout << "  " << (r.blocked ? "BLOCKED, " : "") << (r.flagged ? "flagged, " : "") << r.breaches
                  << " limit breaches since last unblocked\n";
      if (r.household != 0)
        std::cout << "  household " << r.household << ": " << r.household_available << " points available to spend\n";
      break;
    case opcode::erase:
      std::cout << "member " << r.member << " erased: its aliases and consent sources are unreadable for good"
                << (r.replayed ? " (replay of an earlier request: nothing posted now)" : "") << " (seq " << r.seq
                << ")\n";
      break;
    case opcode::consent:
      std::cout << "member " << r.member << " consents to: " << channels_text(r.consents)
                << (r.replayed ? " (replay of an earlier request: nothing posted now)" : "") << " (seq " << r.seq
                << ")\n";
      break;
    case opcode::reload:
      std::cout << "program version " << r.policy_version << " in effect\n";
      break;
    case opcode::explain: {
      if (r.entries.empty())
        break;
      const auto& e = r.entries[0];
      std::cout << "seq " << e.seq << " " << e.kind << ", member " << r.member << ", txn " << json_escape(e.txn)
                << "\n  posted by key " << r.key_id << (r.key_name.empty() ? "" : " (" + r.key_name + ")")
                << ", program version " << r.policy_version << "\n  occurred at " << iso_time(e.occurred_at_us)
                << ", committed at " << iso_time(e.committed_at_us);
      if (e.amount != 0) std::cout << ", amount " << e.amount;
      if (!e.brand.empty()) std::cout << ", brand " << e.brand;
      if (e.ref != 0) std::cout << ", ref seq " << e.ref;
      std::cout << "\n";
      if (!r.partner.empty()) std::cout << "  partner " << r.partner << "\n";
      for (const auto& mv : r.moves)
        std::cout << "  " << mv.side << " " << mv.account << " " << mv.amount << "\n";
      print_lines_text(r.lines);
      break;
    }
    case opcode::history:
      std::cout << "member " << r.member << ": " << r.entries.size() << " entries, newest first\n";
      for (const auto& e : r.entries) {
        std::cout << "  seq " << e.seq << " " << e.kind << " " << e.points << " points, balance " << e.balance;
        if (!e.txn.empty()) std::cout << ", txn " << json_escape(e.txn);
        if (e.amount != 0) std::cout << ", amount " << e.amount;
        if (!e.brand.empty()) std::cout << ", brand " << e.brand;
        if (e.ref != 0) std::cout << ", ref seq " << e.ref;
        if (e.counterparty != 0) std::cout << ", counterparty " << e.counterparty;
        if (!e.partner.empty()) std::cout << ", partner " << e.partner;
        std::cout << ", at " << iso_time(e.occurred_at_us) << "\n";
      }
      if (r.next_before != 0)
        std::cout << "more: --before " << r.next_before << "\n";
      break;
    case opcode::expire:
      std::cout << "expired " << r.expired << " points (" << r.members << " members looked at)";
      if (r.seq != 0)
        std::cout << " (seq " << r.seq << ")";
      std::cout << "\n";
      break;
    case opcode::verify:
      std::cout << (r.verify.valid ? "valid" : "INVALID") << ": " << r.verify.entries << " entries, "
                << r.verify.postings << " postings, " << r.verify.accounts << " accounts, " << r.verify.members
                << " members, " << r.verify.txn_ids << " txn ids\n";
      for (auto& p : r.verify.problems)
        std::cout << "problem: " << p << "\n";
      break;
    case opcode::stats:
      for (auto& [k, v] : r.stats)
        std::cout << k << " " << v << "\n";
      break;
    case opcode::cluster_add:
    case opcode::cluster_remove:
      std::cout << "node " << q.node_id << (q.op == opcode::cluster_add ? " added" : " removed")
                << "; the cluster now:\n";
      for (const auto& n : r.nodes)
        std::cout << "  node " << n.id << " " << n.role << ", client " << (n.client.empty() ? "?" : n.client)
                  << ", raft " << n.raft << "\n";
      break;
    case opcode::cluster_status:
      break;  // run_cluster_status prints it
    case opcode::backup:
      std::cout << "backup " << r.file << ": journal up to seq " << r.seq << ", " << r.bytes << " bytes\n";
      break;
    case opcode::quote:
      std::cout << "would earn " << r.points << " points (a quote: nothing posted); member " << r.member
                << " balance " << r.balance << " -> " << r.balance_after << ", tier " << r.tier << " -> "
                << r.tier_after << "\n";
      if (!r.next_tier.empty())
        std::cout << "  next tier " << r.next_tier << ": " << r.to_next_tier << " to go (after it " << r.qualifying
                  << ")\n";
      print_lines_text(r.lines);
      print_rules_text(r.rules);
      break;
    default: break;
  }
  // Posting answers and explain: who owes whom for the points that crossed.
  print_settlements_text(r.settlements);
}

// --items "sku:category:qty:amount,...": empty sku / category allowed, empty
// qty = 1. Returns an error sentence, or "" when every item parsed.
std::string parse_items(const std::string& text, std::vector<item>& out) {
  out.clear();
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    if (end == std::string::npos)
      end = text.size();
    std::string one = text.substr(start, end - start);
    std::vector<std::string> parts;
    std::size_t p = 0;
    for (;;) {
      auto colon = one.find(':', p);
      parts.push_back(one.substr(p, colon == std::string::npos ? std::string::npos : colon - p));
      if (colon == std::string::npos)
        break;
      p = colon + 1;
    }
    if (parts.size() != 4)
      return "item '" + one + "' is not sku:category:qty:amount";
    item it;
    it.sku = parts[0];
    it.category = parts[1];
    try {
      std::size_t used = 0;
      if (!parts[2].empty()) {
        it.qty = std::stoll(parts[2], &used);
        if (used != parts[2].size())
          throw std::invalid_argument("qty");
      }
      it.amount = std::stoll(parts[3], &used);
      if (used != parts[3].size())
        throw std::invalid_argument("amount");
    } catch (const std::exception&) {
      return "item '" + one + "': qty and amount must be integers";
    }
    out.push_back(std::move(it));
    start = end + 1;
  }
  return {};
}

// --from / --to: microseconds since the epoch (digits only), or an ISO 8601
// UTC date or time: YYYY-MM-DD, YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS, an
// optional trailing Z. Returns an error sentence, or "" with `out` set.
std::string parse_instant(const std::string& text, std::uint64_t& out) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
    try {
      std::size_t used = 0;
      out = std::stoull(text, &used);
      return used == text.size() ? "" : "not a number";
    } catch (const std::exception&) {
      return "'" + text + "' is out of range";
    }
  }
  std::string t = text;
  if (!t.empty() && (t.back() == 'Z' || t.back() == 'z'))
    t.pop_back();
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  char tail = 0;
  int n = 0;
  if (t.size() == 10)
    n = std::sscanf(t.c_str(), "%4d-%2d-%2d%c", &y, &mo, &d, &tail) == 3 ? 3 : -1;
  else if (t.size() == 16)
    n = std::sscanf(t.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d%c", &y, &mo, &d, &h, &mi, &tail) == 5 ? 5 : -1;
  else if (t.size() == 19)
    n = std::sscanf(t.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &tail) == 6 ? 6 : -1;
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(mo)},
                                        std::chrono::day{static_cast<unsigned>(d)}};
  if (n < 0 || n == 0 || !ymd.ok() || y < 1970 || h > 23 || mi > 59 || sec > 59)
    return "'" + text + "' is neither microseconds since the epoch nor a UTC date YYYY-MM-DD[THH:MM[:SS]][Z]";
  const auto days = std::chrono::sys_days{ymd}.time_since_epoch().count();
  out = (static_cast<std::uint64_t>(days) * 86'400 + static_cast<std::uint64_t>(h) * 3'600 +
         static_cast<std::uint64_t>(mi) * 60 + static_cast<std::uint64_t>(sec)) *
        1'000'000;
  return {};
}

// Prints a new key (32 random bytes as 64 hex digits) and its settings lines.
int make_key(std::uint32_t id, const std::string& name, const std::string& scope, std::uint32_t rate, bool dry_run) {
  std::ifstream rnd("/dev/urandom", std::ios::binary);
  unsigned char bytes[32];
  if (!rnd.read(reinterpret_cast<char*>(bytes), sizeof bytes)) {
    std::cerr << "loyaltyctl: cannot read /dev/urandom\n";
    return 2;
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string secret = "lk_";
  for (unsigned char b : bytes)
    secret += hex[b >> 4], secret += hex[b & 15];
  std::string digest;
  for (unsigned char b : key_sha256(secret))
    digest += hex[b >> 4], digest += hex[b & 15];
  std::cout << "key (give it to the client; it is not stored anywhere): " << secret << "\n\n"
            << "[[keys]]\nid = " << id << "\nname = \"" << json_escape(name) << "\"\nsha256 = \"" << digest
            << "\"\nscope = \"" << json_escape(scope) << "\"\n";
  if (rate != 0)
    std::cout << "rate_per_s = " << rate << "\n";
  if (dry_run)
    std::cout << "dry_run = true\n";
  return 0;
}

// The value of `name` among a cluster_status answer's numbers (0: absent).
std::uint64_t stat_of(const response& r, std::string_view name) {
  for (const auto& [k, v] : r.stats)
    if (k == name)
      return v;
  return 0;
}

// `cluster status`: the node asked lists the configuration; each server
// with a client address is asked for its own view (role, term, indexes,
// journal digest). Exit 0 if every server answered, 1 if one did not.
int run_cluster_status(client& c, const request& req, const connection_options& conn, bool json) {
  const response first = c.call(req);
  if (!first.ok()) {
    std::cerr << "loyaltyctl: cluster status: " << to_string(first.code) << ": " << first.message << "\n";
    return 1;
  }
  if (first.role == "single") {
    if (json)
      std::cout << response_json(first) << "\n";
    else
      std::cout << "a single node (no [cluster]): journal up to seq " << stat_of(first, "journal_seq") << ", digest "
                << std::hex << stat_of(first, "journal_digest") << std::dec << "\n";
    return 0;
  }
  // The leader's view of each server's lag, from whichever answer leads.
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> lag;  // id -> match, lag
  std::vector<std::pair<cluster_server, std::optional<response>>> rows;
  std::vector<std::string> why(first.nodes.size());
  for (std::size_t i = 0; i < first.nodes.size(); ++i) {
    const auto& n = first.nodes[i];
    std::optional<response> got;
    std::string host;
    std::uint16_t port = 0;
    if (n.id == stat_of(first, "id")) {
      got = first;
    } else if (!split_address(n.client, host, port)) {
      why[i] = n.client.empty() ? "no client address known" : "bad client address " + n.client;
    } else {
      std::string err;
      auto other = client::connect(host, port, conn.tls, err);
      try {
        if (other && other->hello("loyaltyctl", conn.key).ok())
          got = other->call(req);
        else if (err.empty())
          err = "hello refused";
      } catch (const std::exception& e) {
        err = e.what();
      }
      if (!got)
        why[i] = "unreachable: " + err;
    }
    if (got && got->role == "leader")
      for (const auto& s : got->nodes)
        lag[s.id] = {s.match_index, s.lag};
    rows.emplace_back(n, std::move(got));
  }
  bool all = true;
  if (json) {
    std::cout << "[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      std::cout << (i != 0 ? ",\n " : "") << "{\"id\": " << rows[i].first.id << ", \"client\": \""
                << json_escape(rows[i].first.client) << "\", \"raft\": \"" << json_escape(rows[i].first.raft)
                << "\", \"voting\": \"" << rows[i].first.role << "\", ";
      if (rows[i].second)
        std::cout << "\"status\": " << response_json(*rows[i].second);
      else
        std::cout << "\"error\": \"" << json_escape(why[i]) << "\"";
      all = all && rows[i].second.has_value();
      std::cout << "}";
    }
    std::cout << "]\n";
    return all ? 0 : 1;
  }
  std::printf("%-4s %-21s %-21s %-8s %-11s %6s %9s %9s %9s %7s %9s %-16s\n", "id", "client", "raft", "voting", "role",
              "term", "commit", "applied", "ledger", "lag", "seq", "digest");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& [n, st] = rows[i];
    const auto l = lag.find(n.id);
    const std::string lag_text = l == lag.end() ? "-" : std::to_string(l->second.second);
    if (!st) {
      all = false;
      std::printf("%-4llu %-21s %-21s %-8s %s\n", static_cast<unsigned long long>(n.id), n.client.c_str(),
                  n.raft.c_str(), n.role.c_str(), why[i].c_str());
      continue;
    }
    std::printf("%-4llu %-21s %-21s %-8s %-11s %6llu %9llu %9llu %9llu %7s %9llu %016llx\n",
                static_cast<unsigned long long>(n.id), n.client.c_str(), n.raft.c_str(), n.role.c_str(),
                (st->role + (stat_of(*st, "serving") != 0 ? "" : st->role == "leader" ? "*" : "")).c_str(),
                static_cast<unsigned long long>(stat_of(*st, "term")),
                static_cast<unsigned long long>(stat_of(*st, "commit_index")),
                static_cast<unsigned long long>(stat_of(*st, "applied_index")),
                static_cast<unsigned long long>(stat_of(*st, "ledger_applied_index")), lag_text.c_str(),
                static_cast<unsigned long long>(stat_of(*st, "journal_seq")),
                static_cast<unsigned long long>(stat_of(*st, "journal_digest")));
  }
  std::cout << "lag: log entries behind the leader (the leader's view); ledger: the log index its ledger holds;\n"
               "leader*: elected, not serving yet. Equal seq and digest: equal journals.\n";
  return all ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"loyaltyctl: talk to a running loyaltyd over its wire protocol (docs/PROTOCOL.md).\n"
               "Member operations name the member with --member ID or --alias TEXT (one of them),\n"
               "except enroll and balance, which take the member id as an argument (balance also --alias).\n"
               "The engine's API keys decide what a connection may do: pass one with --key or in\n"
               "$LOYALTY_KEY (adjust and expire need an admin key). `keygen` makes a new key.\n"
               "Exit status: 0 success, 1 the engine answered with an error (or verify found problems),\n"
               "2 connection or protocol failure; a wrong command line exits with 100 or more\n"
               "(import and export journal say their own in their --help)."};
  std::string host = "127.0.0.1";
  int port = 7411;
  bool json = false;
  app.add_option("--host", host, "engine address")->capture_default_str();
  app.add_option("--port", port, "engine port")->capture_default_str()->check(CLI::Range(1, 65535));
  app.add_flag("--json", json, "print the response as JSON");
  connection_options conn;
  conn.add_to(app);
  app.require_subcommand(1);

  request req;
  std::string items_text;
  const CLI::Validator items_check(
    [](std::string& text) {
      std::vector<item> items;
      return parse_items(text, items);
    },
    "sku:category:qty:amount,...");
  // Member addressing: --member or --alias (checked after parsing, where
  // `required` says whether one of them must be given).
  struct member_opts {
    CLI::App* sub;
    bool required;
  };
  std::vector<member_opts> member_subs;
  auto add_member = [&](CLI::App* sub, bool required, const char* what = "member id (1..2^56-1)") {
    auto* m = sub->add_option("--member", req.member, what);
    auto* a = sub->add_option("--alias", req.alias, "member alias (instead of --member)");
    m->excludes(a);
    member_subs.push_back({sub, required});
  };
  auto add_txn = [&](CLI::App* sub) {
    sub->add_option("--txn", req.txn, "client transaction id, 1..64 bytes (retries with the same id are safe)")
      ->required();
  };

  auto* hello = app.add_subcommand("hello", "check the connection and the protocol version");
  auto* enroll = app.add_subcommand("enroll", "enroll a member at a brand");
  enroll->add_option("member", req.member, "member id (1..2^56-1)")->required();
  enroll->add_option("brand", req.brand, "brand code from the program")->required();

  // The purchase of earn and quote.
  req.currency = "EUR";
  auto add_purchase = [&](CLI::App* sub) {
    add_member(sub, true);
    sub->add_option("--brand", req.brand, "brand code")->required();
    sub->add_option("--amount", req.amount, "purchase amount in minor currency units (cents)")->required();
    sub->add_option("--currency", req.currency, "ISO 4217 currency code")->capture_default_str();
    sub->add_option("--occurred-at", req.occurred_at_us,
                    "time of the purchase, microseconds since the epoch (default: the engine's clock when it gets "
                    "the request; a retry with the same --txn and no --occurred-at is then a replay)");
    sub->add_option("--items", items_text,
                    "line items sku:category:qty:amount,... (empty sku, category allowed; empty qty = 1); "
                    "the amounts must add up to --amount")
      ->check(items_check);
    sub->add_option("--channel", req.channel, "channel of the purchase (app, store, ...)");
    sub->add_option("--store", req.store, "store code");
  };
  auto* earn = app.add_subcommand("earn", "post a purchase: the member earns points");
  add_txn(earn);
  add_purchase(earn);
  auto* quote = app.add_subcommand(
    "quote", "show what `earn` of a purchase would give the member now (points, rule lines, balance and tier "
             "after, and for each promotion whether it won and why not) without posting anything; the same "
             "options as earn, no --txn");
  add_purchase(quote);

  auto* redeem = app.add_subcommand("redeem", "spend points");
  add_txn(redeem);
  add_member(redeem, true);
  redeem->add_option("--points", req.points, "points to spend")->required();
  redeem->add_option("--brand", req.brand,
                     "brand where the points are spent (default: a brand key's brand, else the member's home "
                     "brand); points of other brands spent there are settled between the brands");

  auto* balance = app.add_subcommand("balance", "show a member's points, tier and next expiry");
  balance->add_option("member", req.member, "member id (or use --alias)");
  balance->add_option("--alias", req.alias, "member alias (instead of the member id)");

  auto* event = app.add_subcommand("event", "report a non-purchase event (survey, app install, ...) for bonus points");
  add_txn(event);
  add_member(event, true);
  event->add_option("--event", req.event, "event kind, as the program's event rules name it")->required();
  event->add_option("--brand", req.brand, "brand code (optional)");
  event->add_option("--channel", req.channel, "channel (optional)");
  event->add_option("--store", req.store, "store code (optional)");
  event->add_option("--occurred-at", req.occurred_at_us, "microseconds since the epoch (default: when the engine gets it)");

  auto* hold = app.add_subcommand("hold", "reserve points for a later capture or release");
  add_txn(hold);
  add_member(hold, true);
  hold->add_option("--points", req.points, "points to reserve")->required();
  hold->add_option("--brand", req.brand, "brand where the points will be captured (default: the home brand)");
  hold->add_option("--ttl", req.ttl_s, "hold lifetime in seconds (default: the program's)");

  auto* capture = app.add_subcommand("capture", "spend the points of a hold");
  add_txn(capture);
  add_member(capture, true);
  capture->add_option("--hold", req.hold, "hold id from the hold answer")->required();
  capture->add_option("--points", req.points, "points to spend (default: the whole hold; the rest goes back)");

  auto* release = app.add_subcommand("release", "cancel a hold: its points go back to the member");
  add_txn(release);
  add_member(release, true);
  release->add_option("--hold", req.hold, "hold id")->required();

  auto* redeem_reward = app.add_subcommand("redeem-reward", "redeem a catalogue reward at its cost");
  add_txn(redeem_reward);
  add_member(redeem_reward, true);
  redeem_reward->add_option("--reward", req.reward, "reward code from the program")->required();

  auto* refund = app.add_subcommand("refund", "refund (part of) a purchase: its points are taken back");
  add_txn(refund);
  add_member(refund, true);
  refund->add_option("--ref", req.ref, "txn id of the earn being refunded")->required();
  auto* refund_amount =
    refund->add_option("--amount", req.amount, "amount refunded now, minor units (default: all that is left)");
  refund->add_option("--items", items_text, "refunded line items sku:category:qty:amount,... (instead of --amount)")
    ->check(items_check)
    ->excludes(refund_amount);
  refund->add_option("--occurred-at", req.occurred_at_us, "microseconds since the epoch (default: when the engine gets it)");

  auto* reverse = app.add_subcommand("reverse-redemption", "undo a redemption: the points come back");
  add_txn(reverse);
  add_member(reverse, true);
  reverse->add_option("--ref", req.ref, "txn id of the redemption")->required();

  auto* release_pending =
    app.add_subcommand("release-pending", "make a purchase's pending points spendable now (e.g. the order shipped)");
  add_txn(release_pending);
  add_member(release_pending, true);
  release_pending->add_option("--ref", req.ref, "txn id of the purchase (an earn)")->required();

  auto* adjust = app.add_subcommand("adjust", "admin: credit (+) or debit (-) points by hand; needs --key");
  add_txn(adjust);
  add_member(adjust, true);
  adjust->add_option("--points", req.points, "signed points, not 0 (write --points=-50 for a debit)")->required();
  adjust->add_option("--reason", req.reason, "why, 1..200 bytes (kept in the journal)")->required();
  adjust->add_option("--brand", req.brand, "brand whose points these are")->required();

  auto* erase = app.add_subcommand(
    "erase", "admin: forget a member for good (its aliases and consent sources; amounts stay); needs --key");
  add_txn(erase);
  erase->add_option("--member", req.member, "member id")->required();
  erase->add_option("--reason", req.reason, "why, 1..200 bytes (kept in the journal: a ticket number, not personal data)")
    ->required();
  // Issue 19 item 2: fraud limits.
  auto* block = app.add_subcommand(
    "block", "admin: block a member (it cannot earn or spend; reads still work); journaled with the reason; needs --key");
  add_txn(block);
  add_member(block, true);
  block->add_option("--reason", req.reason, "why, 1..200 bytes (kept in the journal)")->required();
  auto* unblock = app.add_subcommand(
    "unblock", "admin: unblock a member and clear its flag and breach count; journaled with the reason; needs --key");
  add_txn(unblock);
  add_member(unblock, true);
  unblock->add_option("--reason", req.reason, "why, 1..200 bytes (kept in the journal)")->required();
  auto* risk_report = app.add_subcommand(
    "risk-report", "list the members flagged for limit breaches or blocked, by member id (docs/OPERATIONS.md, "
                   "\"Fraud limits\")");
  risk_report->add_option("--after", req.after, "only members with ids above this (the 'more' hint of the last page)");
  risk_report->add_option("--limit", req.limit, "members per page, 1..1000 (default 100)");

  auto* transfer = app.add_subcommand("transfer", "move points from one member to another");
  add_txn(transfer);
  add_member(transfer, true, "sending member id");
  transfer->add_option("--to", req.to, "receiving member id")->required();
  transfer->add_option("--points", req.points, "points to move")->required();

  auto* link_alias = app.add_subcommand("link-alias", "attach an alias (card number, app id, ...) to a member, for good");
  add_txn(link_alias);
  link_alias->add_option("--member", req.member, "member id")->required();
  link_alias->add_option("--alias", req.alias, "the alias, 1..64 bytes")->required();

  auto* household_join = app.add_subcommand(
    "household-join", "put a member into a household (the household begins with its first member)");
  add_txn(household_join);
  add_member(household_join, true);
  household_join->add_option("--household", req.household, "household id, 1..2^56-1")->required();

  auto* household_leave =
    app.add_subcommand("household-leave", "take a member out of its household (what it keeps: the program's on_leave)");
  add_txn(household_leave);
  add_member(household_leave, true);

  auto* household_dissolve = app.add_subcommand("household-dissolve", "every member leaves the household; needs --key");
  add_txn(household_dissolve);
  household_dissolve->add_option("--household", req.household, "household id")->required();

  auto* household_show = app.add_subcommand("household", "list a household's members and the points they can spend");
  household_show->add_option("household", req.household, "household id")->required();

  auto* lookup = app.add_subcommand("lookup", "show the member id an alias names");
  lookup->add_option("alias", req.alias, "the alias")->required();

  auto* history = app.add_subcommand("history", "list a member's journal entries, newest first");
  add_member(history, true);
  history->add_option("--before", req.before, "only entries with seq below this (the 'more' hint of the last page)");
  history->add_option("--limit", req.limit, "entries per page, 1..100 (default 20)");

  auto* expire = app.add_subcommand("expire", "admin: post due point expiries now, for one member or all; needs --key");
  add_member(expire, false, "member id (default: every member)");
  expire->add_option("--as-of", req.as_of_us, "expire as of this instant, microseconds since the epoch (default: now)");

  auto* explain = app.add_subcommand("explain", "show the journal entry a txn id posted: key, program version, rules, postings");
  explain->add_option("txn", req.txn, "the client txn id")->required();

  // Issue 4: coalition money.
  auto* partner_earn = app.add_subcommand(
    "partner-earn", "a member earns points at a partner (points of the partner's brand; the partner pays for them)");
  add_txn(partner_earn);
  add_member(partner_earn, true);
  partner_earn->add_option("--partner", req.partner, "partner code from the program")->required();
  partner_earn->add_option("--points", req.points, "points the member earns")->required();
  partner_earn->add_option("--amount", req.amount,
                           "what the member spent at the partner, minor units (recorded for audit; default 0)");
  partner_earn->add_option("--occurred-at", req.occurred_at_us,
                           "microseconds since the epoch (default: when the engine gets it)");

  auto* partner_burn = app.add_subcommand(
    "partner-burn", "a member spends points at a partner (each issuing brand pays the partner)");
  add_txn(partner_burn);
  add_member(partner_burn, true);
  partner_burn->add_option("--partner", req.partner, "partner code from the program")->required();
  partner_burn->add_option("--points", req.points, "points to spend")->required();

  // --from / --to: microseconds or an ISO date, converted after parsing.
  std::string from_text, to_text;
  const CLI::Validator instant_check(
    [](std::string& text) {
      std::uint64_t us = 0;
      return parse_instant(text, us);
    },
    "US|YYYY-MM-DD[THH:MM[:SS]][Z]");
  auto add_period = [&](CLI::App* sub) {
    sub->add_option("--from", from_text,
                    "period start (commit time, inclusive): microseconds since the epoch or a UTC date / time "
                    "YYYY-MM-DD[THH:MM[:SS]][Z] (default: the beginning)")
      ->check(instant_check);
    sub->add_option("--to", to_text, "period end (exclusive), as --from (default: now)")->check(instant_check);
  };

  auto* liability = app.add_subcommand(
    "liability", "every brand's points outstanding, their value, and what the coalition owes it (now)");
  liability->add_option("--brand", req.brand, "only this brand");

  auto* activity = app.add_subcommand(
    "activity", "one brand's points issued, redeemed, expired ... and its settlement change over a period");
  activity->add_option("--brand", req.brand, "brand code")->required();
  add_period(activity);

  auto* settlement = app.add_subcommand(
    "settlement", "a brand's or a partner's settlement statement over a period: every record of money owed, "
                  "with opening and closing balances (one of --brand, --partner)");
  auto* st_brand = settlement->add_option("--brand", req.brand, "the brand");
  auto* st_partner = settlement->add_option("--partner", req.partner, "the partner");
  st_brand->excludes(st_partner);
  add_period(settlement);
  settlement->add_option("--after", req.after, "only lines of entries after this seq (the 'more' hint of the last page)");
  settlement->add_option("--limit", req.limit, "lines per page, 1..1000 (default 100)");
  bool all_pages = false;
  settlement->add_flag("--all", all_pages, "fetch every page and print them as one statement");

  auto* report = app.add_subcommand(
    "report", "KPIs per brand over a period, from the ledger: points issued, refunded, redeemed, reversed, "
              "expired, outstanding, liability, settlement, redemption rate, members, active members, tiers, "
              "top earners; CSV tables (--section) or JSON (docs/OPERATIONS.md, \"Reports\")");
  add_period(report);
  ctl::report_options report_opts;
  ctl::add_report_options(*report, req, report_opts);

  auto* keygen = app.add_subcommand(
    "keygen", "make a new random API key: prints the key (once) and the [[keys]] lines for the settings file");
  std::uint32_t key_id = 0, key_rate = 0;
  std::string key_name, key_scope_text = "read";
  keygen->add_option("--id", key_id, "key id, journaled with every entry it posts (1..2^31-1)")
    ->required()->check(CLI::Range(1u, 0x7FFFFFFFu));
  keygen->add_option("--name", key_name, "a name for logs and explain")->required();
  keygen->add_option("--scope", key_scope_text, "admin, read, brand:CODE or partner:CODE")->capture_default_str();
  keygen->add_option("--rate", key_rate, "requests per second over all its connections (0 = unlimited)");
  bool key_dry_run = false;
  keygen->add_flag("--dry-run", key_dry_run,
                   "a sandbox key: its posting operations are evaluated and answered, and post nothing");

  auto* reload = app.add_subcommand(
    "reload", "admin: re-read the program file; if valid it becomes the next version (else its errors are shown)");

  auto* verify = app.add_subcommand("verify", "check every ledger invariant (exit 0 if valid, 1 if not)");
  auto* stats = app.add_subcommand("stats", "show the engine's counters");
  auto* cluster = app.add_subcommand("cluster", "a replicated cluster's nodes (docs/OPERATIONS.md, \"Cluster\")");
  cluster->require_subcommand(1);
  auto* cluster_status_cmd = cluster->add_subcommand(
    "status", "each node's id, addresses, role, term, commit and applied log index, lag and journal digest (asks "
              "the node given, then every node it lists; exit 1 if one does not answer)");
  auto* cluster_add_cmd = cluster->add_subcommand(
    "add", "add a node to the cluster (admin key; sent to the leader): start its loyaltyd first with [cluster] "
           "join = true; it receives the log or a snapshot and becomes a voter once caught up (waits up to 120 s)");
  cluster_add_cmd->add_option("id", req.node_id, "the new node's id (1 ... 1000000, not in the cluster)")->required();
  cluster_add_cmd->add_option("--raft", req.raft_address, "its Raft transport, host:port")->required();
  cluster_add_cmd->add_option("--client", req.client_address, "where its clients connect, host:port")->required();
  auto* cluster_remove_cmd = cluster->add_subcommand(
    "remove", "remove a node from the cluster (admin key; sent to the leader; not the leader itself): it receives "
              "nothing more, and may be stopped");
  cluster_remove_cmd->add_option("id", req.node_id, "the node's id")->required();
  auto* backup = app.add_subcommand(
    "backup", "admin: write a consistent, compacted copy of the ledger as DIR/data.mdb while the engine serves; "
              "DIR is on the engine's host, must be absent or empty (restore: docs/OPERATIONS.md)");
  std::string backup_dir;
  backup->add_option("dir", backup_dir, "directory for the copy (made absolute here, created by the engine)")
    ->required();
  auto* consent = app.add_subcommand(
    "consent", "record a member's consent per channel (" + channels_text(consent_channels_all) +
                 "): --grant and --revoke name channels; the others stay as they are");
  add_txn(consent);
  add_member(consent, true);
  std::string grant_text, revoke_text;
  consent->add_option("--grant", grant_text, "channels the member consents to, comma-separated");
  consent->add_option("--revoke", revoke_text, "channels the member withdraws consent from, comma-separated");
  consent->add_option("--source", req.source, "where the member gave it (web-form, pos, app, ...), 1..64 bytes")
    ->required();
  consent->add_option("--occurred-at", req.occurred_at_us, "when the member gave it, microseconds since the epoch");
  auto* tail = app.add_subcommand(
    "tail", "print the engine's events as JSON lines while they are committed (docs/PROTOCOL.md, \"subscribe\"); "
            "resume with --from SEQ+1 after the last seq seen");
  tail_options tail_opt;
  std::string types_text, consent_filter_text;
  tail->add_option("--from", req.from_seq, "first journal seq to stream (1 = the beginning; default: new entries only)");
  tail->add_option("--types", types_text,
                   "only these event types, comma-separated (default: all): " + event_types_text(event_types_all));
  tail->add_option("--consent", consent_filter_text,
                   "only members who consented to this channel (" + channels_text(consent_channels_all) + ")");
  tail->add_option("--brand", req.brand, "only entries of this brand");
  tail->add_option("--count", tail_opt.count, "stop after this many events");
  tail->add_flag("--follow,!--no-follow", tail_opt.follow,
                 "stop once caught up with the newest entry at the start instead of waiting for more");
  tail->add_flag("--progress", tail_opt.progress, "also print each frame's resume point as a {\"next\": SEQ} line");
  ctl::bulk_commands bulk(app);  // export journal, import (io/ctl/bulk.hpp)
  CLI11_PARSE(app, argc, argv);
  if (bulk.chosen()) {
    conn.resolve();
    return bulk.run({host, static_cast<std::uint16_t>(port), conn});
  }

  const std::vector<std::pair<CLI::App*, opcode>> subs{
    {hello, opcode::hello}, {enroll, opcode::enroll}, {earn, opcode::earn}, {redeem, opcode::redeem},
    {balance, opcode::balance}, {event, opcode::event}, {hold, opcode::hold}, {capture, opcode::capture},
    {release, opcode::release}, {redeem_reward, opcode::redeem_reward}, {refund, opcode::refund},
    {reverse, opcode::reverse_redemption}, {release_pending, opcode::release_pending}, {adjust, opcode::adjust}, {transfer, opcode::transfer},
    {link_alias, opcode::link_alias}, {lookup, opcode::lookup}, {history, opcode::history},
    {expire, opcode::expire}, {explain, opcode::explain}, {reload, opcode::reload}, {verify, opcode::verify}, {stats, opcode::stats},
    {cluster_status_cmd, opcode::cluster_status}, {cluster_add_cmd, opcode::cluster_add},
    {cluster_remove_cmd, opcode::cluster_remove},
    {partner_earn, opcode::partner_earn}, {partner_burn, opcode::partner_burn}, {liability, opcode::liability},
    {activity, opcode::activity}, {settlement, opcode::settlement}, {backup, opcode::backup},
    {consent, opcode::consent}, {tail, opcode::subscribe}, {quote, opcode::quote}, {report, opcode::report},
    {household_join, opcode::household_join}, {household_leave, opcode::household_leave},
    {household_dissolve, opcode::household_dissolve}, {household_show, opcode::household},
    {erase, opcode::erase}, {block, opcode::block}, {unblock, opcode::unblock},
    {risk_report, opcode::risk_report}};
  if (*keygen)
    return make_key(key_id, key_name, key_scope_text, key_rate, key_dry_run);
  for (auto& [sub, op] : subs)
    if (*sub)
      req.op = op;
  for (auto& m : member_subs)
    if (*m.sub && m.required && req.member == 0 && req.alias.empty())
      return app.exit(CLI::RequiredError(m.sub->get_name() + ": --member or --alias"));
  if (*balance && req.member == 0 && req.alias.empty())
    return app.exit(CLI::RequiredError("balance: a member id or --alias"));
  if (*balance && req.member != 0 && !req.alias.empty())
    return app.exit(CLI::ExcludesError("balance: a member id and --alias", CLI::ExitCodes::ExcludesError));
  if (!items_text.empty()) {
    auto err = parse_items(items_text, req.items);
    if (!err.empty())
      return app.exit(CLI::ValidationError("--items", err));
  }
  if (*consent) {
    std::uint32_t grant = 0, revoke = 0;
    if (auto err = parse_channels(grant_text, grant); !err.empty())
      return app.exit(CLI::ValidationError("--grant", err));
    if (auto err = parse_channels(revoke_text, revoke); !err.empty())
      return app.exit(CLI::ValidationError("--revoke", err));
    if ((grant & revoke) != 0)
      return app.exit(CLI::ValidationError("--grant/--revoke", "a channel is both granted and revoked"));
    if ((grant | revoke) == 0)
      return app.exit(CLI::RequiredError("consent: --grant or --revoke"));
    req.consent_mask = grant | revoke;
    req.consent_values = grant;
  }
  if (*tail) {
    if (auto err = parse_event_types(types_text, req.event_types); !err.empty())
      return app.exit(CLI::ValidationError("--types", err));
    if (!consent_filter_text.empty()) {
      req.consent_filter = consent_bit(consent_filter_text);
      if (req.consent_filter == 0)
        return app.exit(CLI::ValidationError("--consent", "unknown consent channel '" + consent_filter_text + "'"));
    }
  }
  if (*backup)
    req.path = std::filesystem::absolute(backup_dir).lexically_normal().string();
  if (*settlement && req.brand.empty() && req.partner.empty())
    return app.exit(CLI::RequiredError("settlement: --brand or --partner"));
  for (auto [text, out] : {std::pair{&from_text, &req.from_us}, std::pair{&to_text, &req.to_us}})
    if (!text->empty()) {
      auto err = parse_instant(*text, *out);
      if (!err.empty())
        return app.exit(CLI::ValidationError(text == &from_text ? "--from" : "--to", err));
    }

  conn.resolve();
  std::string error;
  auto c = client::connect(host, static_cast<std::uint16_t>(port), conn.tls, error);
  if (!c) {
    std::cerr << "loyaltyctl: " << error << "\n";
    return 2;
  }
  try {
    auto h = c->hello("loyaltyctl", conn.key);
    if (!h.ok()) {
      std::cerr << "loyaltyctl: hello refused: " << to_string(h.code) << ": " << h.message << "\n";
      return 2;
    }
    if (req.op == opcode::subscribe)
      return run_tail(*c, req, tail_opt, std::cout);
    if (req.op == opcode::cluster_status)
      return run_cluster_status(*c, req, conn, json);
    // On a cluster, the request goes to the leader (docs/OPERATIONS.md, "Cluster").
    follow_options follow;
    follow.name = "loyaltyctl";
    follow.key = conn.key;
    follow.tls = conn.tls;
    response r = req.op == opcode::hello ? h : call_following_leader(c, req, follow);
    // settlement --all: fetch the following pages and append their lines;
    // the period's totals are the same on every page.
    while (all_pages && r.ok() && r.op == opcode::settlement && r.statement.next_after != 0) {
      request next = req;
      next.id = 0;
      next.after = r.statement.next_after;
      response page = call_following_leader(c, next, follow);
      if (!page.ok()) {
        r = std::move(page);  // the error is the answer
        break;
      }
      if (page.statement.next_after != 0 && page.statement.next_after <= next.after)
        throw std::runtime_error("the statement page after seq " + std::to_string(next.after) +
                                 " does not move forward");
      for (auto& l : page.statement.lines)
        r.statement.lines.push_back(std::move(l));
      r.statement.next_after = page.statement.next_after;
    }
    if (json || (r.op == opcode::report && report_opts.format == "json")) {
      std::cout << response_json(r) << "\n";  // as the wire has it (docs/PROTOCOL.md)
    } else if (r.op == opcode::report && r.ok()) {
      ctl::print_report_csv(r.report, report_opts, std::cout);
    } else {
      print_text(r, req, all_pages);
    }
    if (!r.ok())
      return 1;
    if (r.op == opcode::verify && !r.verify.valid)
      return 1;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "loyaltyctl: " << e.what() << "\n";
    return 2;
  }
}
