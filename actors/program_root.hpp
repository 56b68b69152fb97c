// The program root and the brand actors. The root spawns one brand actor per
// brand in the program and runs the periodic passivation sweep. Brand actors
// supervise their members (one-for-one): they monitor each active member and,
// when one dies abnormally, log it and clear its slot, so the member is
// reactivated from the ledger on its next message. Neither is on the
// per-transaction path.
#pragma once

#include "actors/member.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace loyalty::actors {

struct supervision_stats {
  std::atomic<std::uint64_t> monitored{0};
  std::atomic<std::uint64_t> member_failures{0};
};

// Spawns the root (and through it the brand actors), filling ctx.root and
// ctx.brand_actors. The sweep runs every `sweep_interval`.
void start_program(caf::actor_system& sys, engine_context& ctx, supervision_stats& stats,
                   std::chrono::milliseconds sweep_interval);

} // namespace loyalty::actors
