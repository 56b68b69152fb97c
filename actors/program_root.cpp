#include "actors/program_root.hpp"

#include "actors/atoms.hpp"
#include "config/log.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <unordered_map>

namespace loyalty::actors {

namespace {

struct supervisor_state {
  std::unordered_map<caf::actor_addr, std::shared_ptr<member_slot>> members;
  static inline const char* name = "supervisor";
};

using sup_ptr = caf::stateful_actor<supervisor_state>*;

void member_down(sup_ptr self, engine_context* ctx, supervision_stats* stats, const std::string& who,
                 const caf::down_msg& dm) {
  auto it = self->state.members.find(dm.source);
  if (it == self->state.members.end())
    return;
  auto slot = it->second;
  self->state.members.erase(it);
  stats->monitored.fetch_sub(1);
  bool crashed = dm.reason != caf::error{} && dm.reason != caf::exit_reason::normal &&
                 dm.reason != caf::exit_reason::user_shutdown;
  // A crashed actor still has its slot; a passivated one took itself out of
  // it. (An actor gone before we could monitor it comes with reason
  // `unknown`: only its slot tells which it was.)
  if (crashed && ctx->dir->on_down(slot, dm.source, crashed)) {
    stats->member_failures.fetch_add(1);
    log(log_level::warn,
        "%s: member %llu actor terminated (%s); it will be reactivated from the ledger on its next message",
        who.c_str(), static_cast<unsigned long long>(slot->member_id), caf::to_string(dm.reason).c_str());
  }
}

// The supervision part shared by brand actors and the root.
auto supervise_handler(sup_ptr self, engine_context* ctx, supervision_stats* stats, std::string who) {
  self->set_down_handler([self, ctx, stats, who](caf::down_msg& dm) { member_down(self, ctx, stats, who, dm); });
  return [self, ctx, stats, who](supervise_atom, caf::actor_addr member, std::shared_ptr<member_slot> slot) {
    if (self->state.members.count(member) != 0)
      return;
    auto handle = caf::actor_cast<caf::actor>(member);
    self->state.members.emplace(member, std::move(slot));
    stats->monitored.fetch_add(1);
    if (!handle) {  // already gone before we could monitor it
      member_down(self, ctx, stats, who, caf::down_msg{member, caf::exit_reason::unknown});
      return;
    }
    self->monitor(handle);
  };
}

caf::behavior brand_actor(sup_ptr self, engine_context* ctx, supervision_stats* stats, std::string who) {
  return {supervise_handler(self, ctx, stats, std::move(who))};
}

caf::behavior root_actor(sup_ptr self, engine_context* ctx, supervision_stats* stats,
                         std::chrono::milliseconds interval) {
  self->delayed_send(self, interval, sweep_atom::value);
  return {
    supervise_handler(self, ctx, stats, "program"),
    [self, ctx, interval](sweep_atom) {
      ctx->dir->sweep();
      self->delayed_send(self, interval, sweep_atom::value);
    },
  };
}

} // namespace

void start_program(caf::actor_system& sys, engine_context& ctx, supervision_stats& stats,
                   std::chrono::milliseconds sweep_interval) {
  ctx.brand_actors.clear();
  for (const auto& b : ctx.now().prog.brands)
    ctx.brand_actors.emplace_back(b.id, sys.spawn(brand_actor, &ctx, &stats, "brand " + b.code));
  ctx.root = sys.spawn(root_actor, &ctx, &stats, sweep_interval);
}

} // namespace loyalty::actors
