#include "actors/partner.hpp"

#include "actors/atoms.hpp"
#include "config/log.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

namespace loyalty::actors {

namespace {

struct partner_state {
  std::uint32_t id = 0;
  errc status = errc::ok;  // admission under the last program version seen
  std::shared_ptr<partner_counters> counters;
  static inline const char* name = "partner";
};

using partner_ptr = caf::stateful_actor<partner_state>*;

const char* status_name(errc admission) {
  switch (admission) {
    case errc::ok: return "active";
    case errc::partner_suspended: return "suspended";
    default: return "removed from the program";
  }
}

// Logs a change of the partner's status in the current program version.
void observe(partner_ptr self, engine_context* ctx) {
  const auto& now = ctx->now();
  const errc status = partner_admission(now.prog, self->state.id);
  if (status == self->state.status)
    return;
  log(status == errc::ok ? log_level::info : log_level::warn,
      "partner %u is now %s (program version %u); %s", self->state.id, status_name(status), now.version,
      status == errc::ok ? "its operations are accepted" : "its new operations are refused, its accounts stay");
  self->state.status = status;
}

caf::behavior partner_actor(partner_ptr self, engine_context* ctx, std::uint32_t id,
                            std::shared_ptr<partner_counters> counters) {
  self->state.id = id;
  self->state.counters = std::move(counters);
  self->state.status = partner_admission(ctx->now().prog, id);
  return {
    [self, ctx](member_request& r) {
      observe(self, ctx);
      if (self->state.status != errc::ok) {
        self->state.counters->refused.fetch_add(1, std::memory_order_relaxed);
        refuse_request(*ctx, r, self->state.status, {});
        return;
      }
      self->state.counters->forwarded.fetch_add(1, std::memory_order_relaxed);
      const auto member = r.member;
      // False only while the engine stops: the request's reply guard has
      // answered `unavailable` when the message was dropped.
      (void)ctx->dir->send(member, caf::make_message(std::move(r)));
    },
    [self, ctx](reload_atom) { observe(self, ctx); },
  };
}

} // namespace

void partner_registry::prepare(const program& next) {
  std::lock_guard<std::mutex> lk(mtx_);
  for (const auto& p : next.partners) {
    bool known = false;
    for (const auto& e : entries_)
      known = known || e.id == p.id;
    if (known)
      continue;
    auto counters = std::make_shared<partner_counters>();
    entries_.push_back({p.id, sys_.spawn(partner_actor, &ctx_, p.id, counters), counters});
  }
}

void partner_registry::notify() {
  std::lock_guard<std::mutex> lk(mtx_);
  for (const auto& e : entries_)
    caf::anon_send(e.actor, reload_atom::value);
}

bool partner_registry::send(std::uint32_t partner_id, member_request&& r) {
  caf::actor target;
  {
    std::lock_guard<std::mutex> lk(mtx_);
    for (const auto& e : entries_)
      if (e.id == partner_id)
        target = e.actor;
  }
  if (!target)
    return false;
  caf::anon_send(target, std::move(r));
  return true;
}

std::vector<partner_registry::partner_count> partner_registry::counts() const {
  std::vector<partner_count> out;
  const auto& prog = ctx_.now().prog;
  std::lock_guard<std::mutex> lk(mtx_);
  for (const auto& e : entries_) {
    const partner_def* p = prog.find_partner(e.id);
    out.push_back({p != nullptr ? p->code : std::to_string(e.id), e.counters->forwarded.load(),
                   e.counters->refused.load()});
  }
  return out;
}

std::vector<std::pair<std::string, std::uint64_t>> partner_registry::stats() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (const auto& c : counts()) {
    out.emplace_back("partner_" + c.partner + "_forwarded", c.forwarded);
    out.emplace_back("partner_" + c.partner + "_refused", c.refused);
  }
  return out;
}

void partner_registry::stop() {
  std::lock_guard<std::mutex> lk(mtx_);
  for (const auto& e : entries_)
    caf::anon_send_exit(e.actor, caf::exit_reason::user_shutdown);
  entries_.clear();
}

} // namespace loyalty::actors
