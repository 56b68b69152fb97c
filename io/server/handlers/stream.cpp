// The journal read in order (docs/PROTOCOL.md: journal, subscribe): pages
// for an export, and the events of a subscription. The session paces a
// subscription (it reads a chunk only while its output is low); this file
// says what a subscription is and what events an entry gives.
#include "io/server/handlers/handlers.hpp"

#include "actors/policy.hpp"

#include "config/log.hpp"
#include "io/wire/codec.hpp"
#include "io/server/views.hpp"
#include "ledger/record_views.hpp"

namespace loyalty::io::handlers {

// On the io thread: at most journal_limit_max entries read in one read
// transaction (admin and read keys).
handled journal(server::impl& srv, const caller&, const request& req) {
  const std::size_t limit = req.limit == 0 ? journal_limit_default : req.limit;
  std::string error;
  auto page = srv.deps.ledger->read_journal(req.from_seq == 0 ? 1 : req.from_seq, limit, error);
  if (!page) {
    log(log_level::error, "journal from seq %llu: %s", static_cast<unsigned long long>(req.from_seq), error.c_str());
    return handled::error(errc::internal_error, std::move(error));
  }
  const program& prog = srv.prog();
  response r;
  r.last_seq = page->last_seq;
  std::size_t bytes = 0;
  for (const auto& e : page->entries) {
    journal_entry j = views::journal_entry_of(prog, e);
    // Cut the page before an entry that would take it past the bound; the
    // first entry always fits (journal_page_bytes_max).
    const std::size_t n = journal_entry_bytes(j);
    if (!r.journal.empty() && bytes + n > journal_page_bytes_max)
      break;
    bytes += n;
    r.journal.push_back(std::move(j));
  }
  if (!r.journal.empty() && r.journal.back().entry.seq < r.last_seq)
    r.next = r.journal.back().entry.seq + 1;
  return handled::answer(std::move(r));
}

std::optional<stream_filter> subscription(server::impl& srv, const caller& who, const request& req,
                                          response& refused) {
  stream_filter f;
  f.brand = who.scope_brand;
  if (!req.brand.empty()) {
    const brand_def* b = srv.prog().find_brand(req.brand);
    if (b == nullptr) {
      refused = refusal(errc::unknown_brand, "no brand '" + req.brand + "' in the program");
      return std::nullopt;
    }
    if (who.scope_brand != 0 && b->id != who.scope_brand) {
      refused = deny(who, req.op, "the key may read its own brand only");
      return std::nullopt;
    }
    f.brand = b->id;
  }
  const std::uint64_t newest = srv.deps.ledger->last_seq();
  if (req.from_seq > newest + 1) {
    refused = refusal(errc::invalid_argument,
                      "field 'from' is past the newest entry + 1 (" + std::to_string(newest + 1) + ")");
    return std::nullopt;
  }
  f.from = req.from_seq != 0 ? req.from_seq : newest + 1;
  f.types = req.event_types != 0 ? req.event_types : event_types_all;
  f.consent = req.consent_filter;
  return f;
}

namespace {

// Indexes into event_type_names.
enum event_type : int {
  member_enrolled, points_earned, points_redeemed, points_refunded, redemption_reversed, points_adjusted,
  points_transferred, points_expired, points_held, hold_released, hold_expired, tier_changed, consent_changed,
  points_expiring, alias_linked, tier_downgrade_warning, points_released, household_joined, household_left,
  household_dissolved, household_points_moved, member_erased, limit_exceeded, member_blocked, member_unblocked,
};
static_assert(member_unblocked + 1 == event_type_names.size());

// The event type of an entry of this kind (none: it gives no event of its
// own; tier_review's only event is tier_changed), with the fields only
// some kinds carry.
int event_of(const ledger::ledger::entry& e, const program& prog, stream_event& ev) {
  using ek = ledger::entry_kind;
  const auto& h = e.header;
  switch (static_cast<ek>(h.kind)) {
    case ek::enroll: return member_enrolled;
    case ek::earn:
    case ek::event:
    case ek::partner_earn: return points_earned;
    case ek::capture:
      if (auto c = ledger::first_of(std::span(e.details), ledger::as_hold_close))
        ev.hold = c->hold;
      return points_redeemed;
    case ek::redeem:
    case ek::redeem_reward:
    case ek::partner_burn: return points_redeemed;
    case ek::refund: return points_refunded;
    case ek::reverse_redemption: return redemption_reversed;
    case ek::adjust: return points_adjusted;
    case ek::transfer: return points_transferred;
    case ek::expire: return points_expired;
    case ek::hold:
      if (auto o = ledger::first_of(std::span(e.details), ledger::as_hold_open))
        ev.hold = o->hold;
      return points_held;
    case ek::release:
      if (auto c = ledger::first_of(std::span(e.details), ledger::as_hold_close)) {
        ev.hold = c->hold;
        return c->reason == ledger::hold_close_reason::expired ? hold_expired : hold_released;
      }
      return hold_released;
    case ek::tier_review: return -1;
    case ek::consent:
      if (auto c = ledger::first_of(std::span(e.details), ledger::as_consent))
        ev.changed = c->set;
      ev.source = ledger::note_text(e.details);
      return consent_changed;
    case ek::expiry_notice:
      ev.points = h.points;
      for (const auto& d : e.details)
        if (auto n = ledger::as_expiry_notice(d))
          ev.expiring.push_back({views::brand_code(prog, n->brand), n->points, n->expires_at_us});
      return points_expiring;
    case ek::link_alias: return alias_linked;
    case ek::tier_notice:
      if (auto n = ledger::first_of(std::span(e.details), ledger::as_tier_notice)) {
        ev.drops_to = n->drops_to < prog.tiers.size() ? prog.tiers[n->drops_to].name : std::to_string(n->drops_to);
        ev.drops_at_us = n->drops_at_us;
        ev.missing = n->missing;
      }
      return tier_downgrade_warning;
    case ek::release_pending:
      ev.points = h.points;  // no postings: the points that became spendable
      return points_released;
    case ek::household_join:
    case ek::household_leave:
    case ek::household_dissolve:
      for (const auto& d : e.details)
        if (d.kind == static_cast<std::uint16_t>(ledger::detail_kind::household))
          ev.household = d.b;
      return static_cast<ek>(h.kind) == ek::household_join    ? household_joined
             : static_cast<ek>(h.kind) == ek::household_leave ? household_left
                                                               : household_dissolved;
    case ek::household_move: return household_points_moved;
    case ek::erase: return member_erased;
    case ek::limit_breach:
      if (auto b = ledger::first_of(std::span(e.details), ledger::as_risk)) {
        ev.limit = actors::metric_name(b->metric);
        ev.window = actors::window_name(b->window);
        ev.reached = b->reached;
        ev.bound = b->limit;
        ev.flagged = b->flags;
      }
      return limit_exceeded;
    case ek::block:
      ev.reason = ledger::note_text(e.details);
      return member_blocked;
    case ek::unblock:
      ev.reason = ledger::note_text(e.details);
      return member_unblocked;
  }
  return -1;
}

} // namespace

void events_of(const program& prog, const stream_filter& filter,
               const std::vector<ledger::ledger::stream_entry>& entries, std::vector<stream_event>& out) {
  auto tier_name = [&](std::uint32_t t) { return t < prog.tiers.size() ? prog.tiers[t].name : std::to_string(t); };
  for (const auto& se : entries) {
    const auto& e = se.e;
    const auto& h = e.header;
    if ((filter.brand != 0 && h.brand_id != filter.brand) || (filter.consent != 0 && (se.consents & filter.consent) == 0))
      continue;
    stream_event ev;
    ev.seq = h.seq;
    ev.entry = ledger::to_string(static_cast<ledger::entry_kind>(h.kind));
    ev.member = h.member_id;
    ev.brand = views::brand_code(prog, h.brand_id);
    ev.txn = e.txn_id;
    ev.points = views::points_of(e, h.member_id);
    ev.balance = h.balance_after;
    ev.occurred_at_us = h.occurred_at_us;
    ev.committed_at_us = h.committed_at_us;
    ev.consents = se.consents;
    ev.tier = tier_name(h.tier_after);
    ev.counterparty = h.counterparty_id;
    if (h.partner_id != 0)
      ev.partner = views::partner_code(prog, h.partner_id);
    ev.amount = h.amount_minor;
    ev.ref = h.ref_seq;
    const int type = event_of(e, prog, ev);
    const bool tier_moved = se.has_tier_before && se.tier_before != h.tier_after;
    const bool want_tier = tier_moved && (filter.types & (1u << tier_changed)) != 0;
    if (type >= 0 && (filter.types & (1u << type)) != 0) {
      ev.type = std::string(event_type_names[static_cast<std::size_t>(type)]);
      if (want_tier)
        out.push_back(ev);  // a copy: the tier event below starts from it
      else
        out.push_back(std::move(ev));
    }
    if (want_tier) {
      ev.type = std::string(event_type_names[tier_changed]);
      ev.previous_tier = tier_name(se.tier_before);
      out.push_back(std::move(ev));
    }
  }
}

} // namespace loyalty::io::handlers
