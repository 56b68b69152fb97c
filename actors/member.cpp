#include "actors/member.hpp"

#include "actors/atoms.hpp"
#include "config/log.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

namespace loyalty::actors {

// -- reply_guard -------------------------------------------------------------

reply_guard::~reply_guard() {
  if (!answered_ && target_)
    answer(errc::unavailable);
}

void reply_guard::answer(errc code) {
  ledger::outcome o;
  o.code = code;
  answer(o);
}

void reply_guard::answer(ledger::outcome o) {
  answered_ = true;
  o.tag = tag_;
  std::vector<ledger::outcome> v;
  v.push_back(o);
  target_->complete(std::move(v));
}

void reply_guard::hand_over(ledger::op& o) {
  answered_ = true;
  o.target = target_;
  o.tag = tag_;
}

// -- plain transitions ----------------------------------------------------------

namespace {

void fill_common(ledger::op& op, const member_request& r) {
  op.member_id = r.member;
  op.brand_id = r.brand_id;
  op.txn_id_bytes = r.txn_bytes;
  op.txn_id = r.txn;
  op.request_hash = r.hash;
  op.occurred_at_us = r.occurred_at_us;
}

void add_posting(ledger::op& op, std::uint64_t account, std::int64_t amount, ledger::posting_side side) {
  auto& p = op.postings[op.posting_count++];
  p.account = account;
  p.amount = static_cast<std::uint64_t>(amount);
  p.side = static_cast<std::uint32_t>(side);
  p.reserved = 0;
}

} // namespace

errc prepare_enroll(member_data& m, const member_request& r, ledger::op& op) {
  if (m.enrolled)
    return errc::member_exists;
  op.kind = ledger::op_kind::enroll;
  op.entry = ledger::entry_kind::enroll;
  fill_common(op, r);
  m.enrolled = true;
  m.brand_id = r.brand_id;
  return errc::ok;
}

errc prepare_earn(member_data& m, const program& prog, const member_request& r, ledger::op& op) {
  if (!m.enrolled)
    return errc::unknown_member;
  const brand_def* b = prog.find_brand(r.brand_id);
  if (b == nullptr)
    return errc::unknown_brand;
  auto pts = earn_points(prog, *b, m.tier, r.amount_minor);
  if (pts.code != errc::ok)
    return pts.code;
  auto bal = checked_add(m.balance, pts.points);
  auto life = checked_add(m.lifetime, pts.points);
  if (bal.code != errc::ok || life.code != errc::ok)
    return errc::amount_overflow;
  op.kind = ledger::op_kind::post;
  op.entry = ledger::entry_kind::earn;
  fill_common(op, r);
  op.amount_minor = r.amount_minor;
  op.points = pts.points;
  if (pts.points > 0) {  // a purchase too small for one point is still journaled
    add_posting(op, ledger::account_id(ledger::account_kind::brand_issued, b->id), pts.points,
                ledger::posting_side::debit);
    add_posting(op, ledger::account_id(ledger::account_kind::member_points, r.member), pts.points,
                ledger::posting_side::credit);
  }
  op.balance_delta = pts.points;
  op.lifetime_delta = pts.points;
  m.balance = bal.points;
  m.lifetime = life.points;
  m.tier = prog.tier_for(m.lifetime);
  return errc::ok;
}

errc prepare_redeem(member_data& m, const program&, const member_request& r, ledger::op& op) {
  if (!m.enrolled)
    return errc::unknown_member;
  if (r.points <= 0)
    return errc::invalid_amount;
  if (r.points > m.balance)
    return errc::insufficient_points;
  op.kind = ledger::op_kind::post;
  op.entry = ledger::entry_kind::redeem;
  fill_common(op, r);
  op.brand_id = m.brand_id;  // redeemed at the member's home brand
  op.points = r.points;
  op.require_nonnegative = true;
  add_posting(op, ledger::account_id(ledger::account_kind::member_points, r.member), r.points,
              ledger::posting_side::debit);
  add_posting(op, ledger::account_id(ledger::account_kind::brand_redeemed, m.brand_id), r.points,
              ledger::posting_side::credit);
  op.balance_delta = -r.points;
  m.balance -= r.points;
  return errc::ok;
}

// -- the actor -------------------------------------------------------------------

namespace {

using self_ptr = caf::stateful_actor<member_state>*;

caf::actor supervisor_for(const engine_context& ctx, const member_data& m) {
  if (m.enrolled)
    for (std::size_t i = 0; i < ctx.prog->brands.size(); ++i)
      if (ctx.prog->brands[i].id == m.brand_id && i < ctx.brand_actors.size())
        return ctx.brand_actors[i];
  return ctx.root;
}

// Loads committed state on first use. If a crashed predecessor left ops in
// the writer, wait for them first so the loaded state includes them.
void ensure_loaded(self_ptr self) {
  auto& st = self->state;
  if (st.data.loaded)
    return;
  if (st.slot->inflight.load() > 0)
    st.ctx->ledger->barrier();
  member_data m;
  if (auto ms = st.ctx->ledger->load_member(st.slot->member_id)) {
    m.enrolled = true;
    m.brand_id = ms->record.brand_id;
    m.balance = ms->balance();
    m.lifetime = ms->lifetime();
    m.tier = st.ctx->prog->tier_for(m.lifetime);
  }
  m.loaded = true;
  bool was_enrolled = st.data.enrolled;
  st.data = m;
  if (m.enrolled && !was_enrolled)
    caf::anon_send(supervisor_for(*st.ctx, m), supervise_atom::value, self->address(), st.slot);
}

void submit(self_ptr self, member_request& r, ledger::op& op) {
  r.reply->hand_over(op);
  op.owner = self->state.slot;
  self->state.ctx->ledger->submit(std::move(op));
}

// A request the actor refuses for the member's state, but which carries a
// txn id: the writer checks for a replay of an earlier success first.
void refuse_via_writer(self_ptr self, member_request& r, errc code) {
  ledger::op op;
  op.kind = ledger::op_kind::post;
  op.entry = r.kind == request_kind::earn ? ledger::entry_kind::earn : ledger::entry_kind::redeem;
  op.member_id = r.member;
  op.brand_id = r.brand_id;
  op.txn_id_bytes = r.txn_bytes;
  op.txn_id = r.txn;
  op.request_hash = r.hash;
  op.precheck = code;
  r.reply->hand_over(op);
  self->state.ctx->ledger->submit(std::move(op));
}

void handle(self_ptr self, member_request& r) {
  auto& st = self->state;
  ensure_loaded(self);
  ledger::op op;
  errc code = errc::ok;
  switch (r.kind) {
    case request_kind::enroll:
      code = prepare_enroll(st.data, r, op);
      if (code == errc::ok) {
        submit(self, r, op);
        caf::anon_send(supervisor_for(*st.ctx, st.data), supervise_atom::value, self->address(), st.slot);
        return;
      }
      break;
    case request_kind::earn:
      code = prepare_earn(st.data, *st.ctx->prog, r, op);
      break;
    case request_kind::redeem:
      code = prepare_redeem(st.data, *st.ctx->prog, r, op);
      break;
    case request_kind::balance:
      if (!st.data.enrolled) {
        code = errc::unknown_member;
        break;
      }
      op.kind = ledger::op_kind::barrier;
      op.member_id = r.member;
      op.brand_id = st.data.brand_id;
      submit(self, r, op);
      return;
  }
  if (code == errc::ok) {
    submit(self, r, op);
  } else if (r.txn_bytes > 0 && code != errc::unknown_member) {
    refuse_via_writer(self, r, code);
  } else {
    r.reply->answer(code);
  }
}

} // namespace

caf::behavior member_actor(caf::stateful_actor<member_state>* self, std::shared_ptr<member_slot> slot,
                           engine_context* ctx) {
  self->state.slot = std::move(slot);
  self->state.ctx = ctx;
  auto dequeued = [self] {
    auto& s = *self->state.slot;
    s.pending.fetch_sub(1, std::memory_order_acq_rel);
    s.last_active_tick.store(self->state.ctx->dir->tick(), std::memory_order_relaxed);
  };
  return {
    [self, dequeued](member_request& r) {
      dequeued();
      handle(self, r);
    },
    [self, dequeued](revert_atom, std::int64_t balance_delta, std::int64_t lifetime_delta, bool reload) {
      dequeued();
      auto& d = self->state.data;
      if (reload) {
        d.loaded = false;  // reload committed state on the next request
        return;
      }
      d.balance -= balance_delta;
      d.lifetime -= lifetime_delta;
      d.tier = self->state.ctx->prog->tier_for(d.lifetime);
    },
    [self, dequeued](passivate_atom) {
      dequeued();
      if (self->state.ctx->dir->try_passivate(*self->state.slot, self->address()))
        self->quit();
    },
  };
}

} // namespace loyalty::actors
