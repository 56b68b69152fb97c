#include "actors/household.hpp"

#include "actors/atoms.hpp"
#include "config/log.hpp"

#include <caf/send.hpp>

#include <algorithm>

namespace loyalty::actors {

// -- household_registry ----------------------------------------------------------------

void household_registry::load(const std::vector<std::pair<std::uint64_t, std::int64_t>>& counters) {
  std::lock_guard<std::mutex> lk(mtx_);
  of_.clear();
  members_.clear();
  std::vector<std::pair<std::uint64_t, std::uint64_t>> rows;  // (member, household)
  for (const auto& [id, value] : counters)
    if (static_cast<ledger::counter_kind>(id >> 56) == ledger::counter_kind::household_member && value > 0)
      rows.emplace_back(ledger::entity_of(id), static_cast<std::uint64_t>(value));
  std::sort(rows.begin(), rows.end());
  for (const auto& [member, household] : rows) {
    of_[member] = household;
    members_[household].push_back(member);
  }
  size_.store(of_.size(), std::memory_order_release);
}

std::uint64_t household_registry::household_of(std::uint64_t member) const {
  if (size_.load(std::memory_order_acquire) == 0)
    return 0;
  std::lock_guard<std::mutex> lk(mtx_);
  auto it = of_.find(member);
  return it == of_.end() ? 0 : it->second;
}

std::vector<std::uint64_t> household_registry::members_of(std::uint64_t household) const {
  std::lock_guard<std::mutex> lk(mtx_);
  auto it = members_.find(household);
  return it == members_.end() ? std::vector<std::uint64_t>{} : it->second;
}

void household_registry::set(std::uint64_t member, std::uint64_t household) {
  std::lock_guard<std::mutex> lk(mtx_);
  if (auto it = of_.find(member); it != of_.end()) {
    auto& v = members_[it->second];
    v.erase(std::remove(v.begin(), v.end(), member), v.end());
    if (v.empty())
      members_.erase(it->second);
    of_.erase(it);
  }
  if (household != 0) {
    of_[member] = household;
    members_[household].push_back(member);
  }
  size_.store(of_.size(), std::memory_order_release);
}

// -- the plan ----------------------------------------------------------------------------

bool plan_household_spend(household_spend order, std::uint64_t spender, std::vector<household_share> shares,
                          std::int64_t points, std::vector<household_take>& out) {
  std::int64_t total = 0;
  for (const auto& s : shares)
    if (s.available > 0 && __builtin_add_overflow(total, s.available, &total))
      total = INT64_MAX;
  if (points <= 0 || total < points)
    return false;
  auto expiry = [](const household_share& s) { return s.next_expiry_at_us == 0 ? UINT64_MAX : s.next_expiry_at_us; };
  std::stable_sort(shares.begin(), shares.end(), [&](const household_share& a, const household_share& b) {
    if (order == household_spend::own_first && (a.member == spender) != (b.member == spender))
      return a.member == spender;
    if (expiry(a) != expiry(b))
      return expiry(a) < expiry(b);
    if ((a.member == spender) != (b.member == spender))
      return a.member == spender;
    return a.member < b.member;
  });
  out.clear();
  std::int64_t left = points;
  for (const auto& s : shares) {
    if (left == 0)
      break;
    if (s.available <= 0)
      continue;
    const std::int64_t take = std::min(left, s.available);
    out.push_back({s.member, take});
    left -= take;
  }
  return true;
}

// -- the coordinator -----------------------------------------------------------------------

namespace {

using self_ptr = caf::stateful_actor<household_state>*;

enum stage : int {
  idle, join_post, leave_probe, leave_move, leave_post, dissolve_post, read_probe, balance_probe, redeem_probe,
  redeem_move, redeem_post,
};

// Hands a member's answer back to the coordinator as a message (the writer
// thread calls complete; the coordinator handles it on its own).
class coordinator_target final : public ledger::completion_target {
public:
  explicit coordinator_target(caf::actor a) : a_(std::move(a)) {}
  void complete(std::vector<ledger::outcome>&& outcomes) noexcept override {
    for (auto& o : outcomes)
      caf::anon_send(a_, household_reply_atom::value, std::move(o));
  }

private:
  caf::actor a_;
};

void next_job(self_ptr self);

void done(self_ptr self) {
  auto& st = self->state;
  st.busy = false;
  st.stage = idle;
  st.job = member_request{};
  st.members.clear();
  st.shares.clear();
  st.probes.clear();
  st.moves.clear();
  st.next = st.awaiting = 0;
  st.household = 0;
  next_job(self);
}

// Refuses the running job (through the writer when it carries a txn id, so
// a retry of an earlier success still gets its first answer).
void refuse(self_ptr self, errc code, std::string msg = {}) {
  refuse_request(*self->state.ctx, self->state.job, code, std::move(msg));
  done(self);
}

void answer(self_ptr self, ledger::outcome o) {
  self->state.job.reply->answer(std::move(o));
  done(self);
}

// Sends a request to a member's actor, answered to this coordinator with `tag`.
void ask(self_ptr self, member_request req, std::uint64_t tag) {
  auto target = std::make_shared<coordinator_target>(caf::actor_cast<caf::actor>(self));
  req.reply = std::make_shared<reply_guard>(std::move(target), tag);
  const auto member = req.member;
  // false: shutting down; the dropped request's guard answers `unavailable`
  (void)self->state.ctx->dir->send(member, caf::make_message(std::move(req)));
}

// The running job, marked as the household's own, to its member's actor.
void forward(self_ptr self) {
  auto& st = self->state;
  st.job.pooled = true;
  const auto member = st.job.member;
  (void)st.ctx->dir->send(member, caf::make_message(std::move(st.job)));
  done(self);
}

member_request probe_of(std::uint64_t member) {
  member_request q;
  q.kind = request_kind::balance;
  q.member = member;
  q.pooled = true;
  return q;
}

void probe_all(self_ptr self, int next_stage) {
  auto& st = self->state;
  st.stage = next_stage;
  st.probes.assign(st.members.size(), ledger::outcome{});
  st.awaiting = st.members.size();
  for (std::size_t i = 0; i < st.members.size(); ++i)
    ask(self, probe_of(st.members[i]), i);
}

const answer_note* note_of(const ledger::outcome& o) { return static_cast<const answer_note*>(o.note.get()); }

std::int64_t available_of(const ledger::outcome& o) {
  const auto* n = note_of(o);
  return o.code == errc::ok && n != nullptr && n->has_balance ? std::max<std::int64_t>(0, n->balance.view.available) : 0;
}

household_note household_of_probes(const household_state& st) {
  household_note h;
  h.household = st.household;
  for (std::size_t i = 0; i < st.members.size(); ++i) {
    const auto a = available_of(st.probes[i]);
    h.members.emplace_back(st.members[i], a);
    if (__builtin_add_overflow(h.available, a, &h.available))
      h.available = INT64_MAX;
  }
  return h;
}

// A move of `points` from `from` to `to` (a transfer without txn id).
void ask_move(self_ptr self, std::uint64_t from, std::uint64_t to, std::int64_t points) {
  member_request q;
  q.kind = request_kind::transfer;
  q.member = from;
  q.to = to;
  q.points = points;
  q.household_move = true;
  q.key_id = self->state.job.key_id;
  ask(self, std::move(q), 0);
}

// The job's own entry for `member` (join, leave, or one member's part of a
// dissolve); the client's txn id only on the entry that answers it.
void ask_post(self_ptr self, request_kind kind, std::uint64_t member, bool with_txn) {
  auto& st = self->state;
  member_request q;
  q.kind = kind;
  q.member = member;
  q.household = st.household;
  q.key_id = st.job.key_id;
  q.scope_brand = st.job.scope_brand;
  if (with_txn) {
    q.txn_bytes = st.job.txn_bytes;
    q.txn = st.job.txn;
    q.hash = st.job.hash;
  }
  ask(self, std::move(q), 0);
}

void next_move(self_ptr self) {
  auto& st = self->state;
  while (st.next < st.moves.size() && st.moves[st.next].member == st.job.member)
    ++st.next;
  if (st.next < st.moves.size()) {
    st.stage = redeem_move;
    ask_move(self, st.moves[st.next].member, st.job.member, st.moves[st.next].points);
    return;
  }
  st.stage = redeem_post;
  member_request q = st.job;  // the reply stays with the job: the coordinator answers
  q.pooled = true;
  ask(self, std::move(q), 0);
}

void post_dissolve_next(self_ptr self) {
  auto& st = self->state;
  st.stage = dissolve_post;
  const bool last = st.next + 1 == st.members.size();
  ask_post(self, request_kind::household_dissolve, st.members[st.next], last);
}

void begin(self_ptr self) {
  auto& st = self->state;
  auto& r = st.job;
  const program& prog = st.ctx->now().prog;
  const bool spend = r.kind == request_kind::redeem || r.kind == request_kind::balance;
  if (!prog.households.enabled) {
    if (spend)
      return forward(self);  // a reload took [households] away: the member alone
    return refuse(self, errc::invalid_argument, "the program has no households ([households] in the program file)");
  }
  if (r.dry_run)
    return refuse(self, errc::not_authorized, "a sandbox key cannot change households");
  if (r.txn_bytes > 0) {
    if (auto seq = st.ctx->ledger->find_txn(r.txn_id())) {
      // A retry of a committed request: its member's actor, or the writer, answers it as the first time.
      if (spend)
        return forward(self);
      if (r.kind == request_kind::household_dissolve)
        if (auto e = st.ctx->ledger->read_entry(*seq))
          r.member = e->header.member_id;  // the dissolve's txn id is on its last member's entry
      return refuse(self, errc::unavailable);
    }
  }
  if (r.scope_brand != 0 &&
      (r.kind == request_kind::household_join || r.kind == request_kind::household_leave)) {
    // Before anything moves: a brand key acts for members of its own brand only.
    auto m = st.ctx->ledger->load_member(r.member);
    if (m && m->record.brand_id != r.scope_brand) {
      log(log_level::warn, "key %u: a household request for member %llu of another brand refused", r.key_id,
          static_cast<unsigned long long>(r.member));
      return refuse(self, errc::not_authorized, "the key may act for members of its brand only");
    }
  }
  auto& reg = *st.ctx->households;
  switch (r.kind) {
    case request_kind::household_join:
      if (reg.household_of(r.member) != 0)
        return refuse(self, errc::already_in_household);
      st.household = r.household;
      if (reg.members_of(r.household).size() >= prog.households.max_members)
        return refuse(self, errc::household_full,
                      "the household has " + std::to_string(prog.households.max_members) + " members");
      st.stage = join_post;
      return ask_post(self, request_kind::household_join, r.member, true);
    case request_kind::household_leave:
      st.household = reg.household_of(r.member);
      if (st.household == 0)
        return refuse(self, errc::not_in_household);
      st.members = reg.members_of(st.household);
      st.members.erase(std::remove(st.members.begin(), st.members.end(), r.member), st.members.end());
      if (prog.households.on_leave == household_leave::nothing && !st.members.empty()) {
        st.stage = leave_probe;
        return ask(self, probe_of(r.member), 0);
      }
      st.stage = leave_post;
      return ask_post(self, request_kind::household_leave, r.member, true);
    case request_kind::household_dissolve:
      st.household = r.household;
      st.members = reg.members_of(r.household);
      if (st.members.empty())
        return refuse(self, errc::unknown_household);
      st.next = 0;
      return post_dissolve_next(self);
    case request_kind::household:
      st.household = r.household;
      st.members = reg.members_of(r.household);
      if (st.members.empty())
        return refuse(self, errc::unknown_household);
      return probe_all(self, read_probe);
    case request_kind::balance:
    case request_kind::redeem:
      st.household = reg.household_of(r.member);
      if (st.household == 0)
        return forward(self);
      st.members = reg.members_of(st.household);
      return probe_all(self, r.kind == request_kind::balance ? balance_probe : redeem_probe);
    default:
      return refuse(self, errc::internal_error);  // no other kind is sent here
  }
}

void next_job(self_ptr self) {
  auto& st = self->state;
  while (!st.busy && !st.queue.empty()) {
    st.job = std::move(st.queue.front());
    st.queue.pop_front();
    st.busy = true;
    begin(self);  // may end the job at once (a refusal), then the loop takes the next
  }
}

// All probes are in: the job goes on with what they say.
void probed(self_ptr self) {
  auto& st = self->state;
  auto h = household_of_probes(st);
  if (st.stage == read_probe) {
    ledger::outcome o;
    auto n = std::make_shared<answer_note>();
    n->has_household = true;
    n->household = std::move(h);
    o.points = n->household.available;
    o.note = std::move(n);
    return answer(self, std::move(o));
  }
  const auto at = static_cast<std::size_t>(
    std::find(st.members.begin(), st.members.end(), st.job.member) - st.members.begin());
  if (st.stage == balance_probe) {
    if (at == st.members.size())
      return forward(self);  // it left meanwhile
    ledger::outcome o = st.probes[at];
    if (o.code == errc::ok && note_of(o) != nullptr) {
      auto n = std::make_shared<answer_note>(*note_of(o));
      n->has_household = true;
      n->household = std::move(h);
      o.note = std::move(n);
    }
    return answer(self, std::move(o));
  }
  // redeem
  if (at == st.members.size())
    return forward(self);
  if (st.probes[at].code != errc::ok)
    return refuse(self, st.probes[at].code);
  for (std::size_t i = 0; i < st.members.size(); ++i) {
    household_share s;
    s.member = st.members[i];
    s.available = available_of(st.probes[i]);
    if (const auto* n = note_of(st.probes[i]); n != nullptr && n->has_balance)
      s.next_expiry_at_us = n->balance.view.next_expiry_at_us;
    st.shares.push_back(s);
  }
  if (!plan_household_spend(st.ctx->now().prog.households.spend, st.job.member, st.shares, st.job.points, st.moves))
    return refuse(self, errc::insufficient_points,
                  "the household holds " + std::to_string(h.available) + " available points");
  st.next = 0;
  next_move(self);
}

void on_reply(self_ptr self, ledger::outcome& o) {
  auto& st = self->state;
  auto& reg = *st.ctx->households;
  switch (static_cast<stage>(st.stage)) {
    case idle: return;  // not expected: every ask belongs to the running job
    case join_post:
      if (o.code == errc::ok)
        reg.set(st.job.member, st.household);
      return answer(self, std::move(o));
    case leave_probe: {
      if (o.code != errc::ok)
        return answer(self, std::move(o));
      const auto a = available_of(o);
      if (a > 0) {
        st.stage = leave_move;
        return ask_move(self, st.job.member, st.members.front(), a);
      }
      st.stage = leave_post;
      return ask_post(self, request_kind::household_leave, st.job.member, true);
    }
    case leave_move:
      if (o.code != errc::ok)
        return refuse(self, o.code, "the leaver's points could not move to the household");
      st.stage = leave_post;
      return ask_post(self, request_kind::household_leave, st.job.member, true);
    case leave_post:
      if (o.code == errc::ok)
        reg.set(st.job.member, 0);
      return answer(self, std::move(o));
    case dissolve_post:
      if (o.code != errc::ok)
        return answer(self, std::move(o));
      reg.set(st.members[st.next], 0);
      if (++st.next < st.members.size())
        return post_dissolve_next(self);
      return answer(self, std::move(o));
    case read_probe:
    case balance_probe:
    case redeem_probe:
      if (o.tag < st.probes.size())
        st.probes[o.tag] = std::move(o);
      if (--st.awaiting == 0)
        probed(self);
      return;
    case redeem_move:
      if (o.code != errc::ok)
        // A giver's points went meanwhile (its own spend, an expiry): the
        // moves made so far stay in the household, the redeem is refused.
        return refuse(self, errc::insufficient_points, "a household member's points went while they were pooled");
      ++st.next;
      return next_move(self);
    case redeem_post:
      return answer(self, std::move(o));
  }
}

} // namespace

caf::behavior household_actor(caf::stateful_actor<household_state>* self, engine_context* ctx) {
  self->state.ctx = ctx;
  return {
    [self](member_request& r) {
      auto& st = self->state;
      if (st.queue.size() >= limits::household_jobs_max) {
        refuse_request(*st.ctx, r, errc::overloaded, "too many household requests waiting");
        return;
      }
      st.queue.push_back(std::move(r));
      next_job(self);
    },
    [self](household_reply_atom, ledger::outcome& o) { on_reply(self, o); },
  };
}

} // namespace loyalty::actors
