// Households (issue 19 item 1; docs/ARCHITECTURE.md, "Households"): members
// who pool their points. Each member's points stay in its own account and
// its own lots; what makes them a household is
//   - the registry: member -> household, kept by the ledger writer as the
//     household_member counters (records.hpp) and mirrored here in memory,
//     loaded at start;
//   - the coordinator: one actor that carries out every household operation
//     and every pooled spend, one at a time. A pooled redeem asks each
//     member for its available points, plans who gives what
//     (plan_household_spend), has each giver's actor move its share to the
//     spender (a household_move entry, built as a transfer: the lots keep
//     their brand and expiry), then lets the spender's actor redeem. Givers
//     wait only for the spender's actor, which waits for no one, and the
//     coordinator waits only for answers: no two actors wait for each other.
#pragma once

#include "actors/member.hpp"

#include <caf/stateful_actor.hpp>

#include <cstdint>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace loyalty::actors {

// member -> household, and its inverse. Written by the coordinator only
// (after the entry that changes it committed); read by any thread (member
// actors routing a redeem or a balance, the coordinator).
class household_registry {
public:
  // From the ledger's committed counters (ledger::ledger::counters()).
  void load(const std::vector<std::pair<std::uint64_t, std::int64_t>>& counters);
  // 0: in no household. Without any household it takes no lock.
  [[nodiscard]] std::uint64_t household_of(std::uint64_t member) const;
  // Its members in the order they joined (by member id for those loaded at start).
  [[nodiscard]] std::vector<std::uint64_t> members_of(std::uint64_t household) const;
  // household 0: the member leaves its household.
  void set(std::uint64_t member, std::uint64_t household);

private:
  mutable std::mutex mtx_;
  std::unordered_map<std::uint64_t, std::uint64_t> of_;
  std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> members_;
  std::atomic<std::size_t> size_{0};
};

// -- the spend plan (pure) ------------------------------------------------------------
struct household_share {
  std::uint64_t member = 0;
  std::int64_t available = 0;            // its available points now
  std::uint64_t next_expiry_at_us = 0;   // its soonest-expiring points (0: none expire)
};
struct household_take {
  std::uint64_t member = 0;
  std::int64_t points = 0;  // > 0
};
// Who gives how many of `points` spent by `spender`, in the program's order
// (household_spend): pooled takes from the members whose points expire
// soonest first, the spender among them (ties: the spender first, then by
// member id); own_first takes the spender's own first, then the others by
// their soonest expiry. False (out untouched) when the household holds
// fewer available points than `points`.
[[nodiscard]] bool plan_household_spend(household_spend order, std::uint64_t spender,
                                        std::vector<household_share> shares, std::int64_t points,
                                        std::vector<household_take>& out);

// -- the coordinator ---------------------------------------------------------------
struct household_state {
  engine_context* ctx = nullptr;
  std::deque<member_request> queue;  // at most limits::household_jobs_max
  bool busy = false;
  // The job running: the request, the stage it waits in, what it learned.
  member_request job;
  int stage = 0;
  std::uint64_t household = 0;
  std::vector<std::uint64_t> members;
  std::vector<household_share> shares;
  std::vector<ledger::outcome> probes;  // by position in `members`
  std::size_t awaiting = 0;
  std::vector<household_take> moves;
  std::size_t next = 0;
  static inline const char* name = "households";
};

// Takes member_request of kinds household_join / household_leave /
// household_dissolve / household (the read), and redeem / balance of
// household members that their member actor forwarded.
caf::behavior household_actor(caf::stateful_actor<household_state>* self, engine_context* ctx);

} // namespace loyalty::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(loyalty::ledger::outcome)
