// The member reads the server answers from the ledger itself, on the io
// thread (docs/PROTOCOL.md: lookup, history, explain): no member actor is
// involved, because the committed journal is the answer.
#include "io/server/handlers/handlers.hpp"

#include "config/log.hpp"
#include "io/server/views.hpp"

namespace loyalty::io::handlers {

namespace {

// A brand key reads members of its own brand only.
bool other_brand(server::impl& srv, const caller& who, const request& req, std::uint64_t member, response& refused) {
  if (who.scope_brand == 0)
    return false;
  auto ms = srv.deps.ledger->load_member(member);
  if (!ms || ms->record.brand_id == who.scope_brand)
    return false;
  log(log_level::warn, "key %u: %s of member %llu of another brand refused", who.key_id(), to_string(req.op),
      static_cast<unsigned long long>(member));
  refused = refusal(errc::not_authorized, "the key may read members of its brand only");
  return true;
}

} // namespace

response lookup(server::impl& srv, const caller& who, const request& req, std::uint64_t member) {
  response r;
  if (other_brand(srv, who, req, member, r))
    return r;
  r.member = member;
  return r;
}

response history(server::impl& srv, const caller& who, const request& req, std::uint64_t member) {
  response r;
  if (other_brand(srv, who, req, member, r))
    return r;
  if (!srv.deps.ledger->load_member(member))
    return refusal(errc::unknown_member);
  const std::size_t limit = req.limit == 0 ? history_limit_default : req.limit;
  auto page = srv.deps.ledger->history(member, req.before, limit);
  if (page.empty() && req.before != 0)
    return refusal(errc::invalid_argument,
                   "before " + std::to_string(req.before) + " is not one of this member's entries");
  const program& prog = srv.prog();
  r.member = member;
  for (const auto& e : page)
    r.entries.push_back(views::entry_view(prog, e, member));
  if (page.size() == limit)
    r.next_before = page.back().header.seq;
  return r;
}

// The journal entry a txn id posted, as an auditor reads it: who sent it
// (key), under which program version, which rules made its points, which
// accounts it moved.
response explain(server::impl& srv, const caller& who, const request& req) {
  auto seq = srv.deps.ledger->find_txn(req.txn);
  auto e = seq ? srv.deps.ledger->read_entry(*seq) : std::nullopt;
  if (!e)
    return refusal(errc::unknown_txn, "no entry has txn id '" + req.txn + "'");
  if (who.scope_brand != 0 && e->header.brand_id != who.scope_brand) {
    log(log_level::warn, "key %u: explain of an entry of another brand refused", who.key_id());
    return refusal(errc::not_authorized, "the key may read entries of its brand only");
  }
  const program& prog = srv.prog();
  response r;
  r.member = e->header.member_id;
  r.seq = e->header.seq;
  r.entries.push_back(views::entry_view(prog, *e, e->header.member_id));
  r.key_id = e->header.key_id;
  for (const auto& k : srv.settings.keys)
    if (k.id == r.key_id)
      r.key_name = k.name;
  r.policy_version = e->header.policy_version;
  r.moves = views::moves_of(prog, *e);
  views::lines_and_settlements(prog, *e, r.lines, r.settlements);
  if (e->header.partner_id != 0)
    r.partner = views::partner_code(prog, e->header.partner_id);
  return r;
}

} // namespace loyalty::io::handlers
