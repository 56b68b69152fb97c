// Partner actors: one per partner of the program (config [[partners]]),
// supervising the flows that partners originate. Every partner operation
// (partner_earn, partner_burn) goes from the server to its partner's actor
// and from there to the member's actor, which owns the points:
//
//   server --partner_request--> partner actor --member_request--> member actor
//
// The partner actor admits the request under the partner's status in the
// program version it reads for that message: a suspended partner's requests
// are refused (partner_suspended) before any member actor is activated for
// them, so a suspended partner's traffic costs the engine one message and a
// txn-id lookup each. Refusals go through the ledger writer like every
// refusal that carries a txn id, so a retry of a request that was posted
// before the suspension still gets its original answer. The member actor
// checks the status again under its own snapshot (the authoritative one:
// it is journaled with the entry), so a reload between the two hops cannot
// post for a suspended partner.
//
// A reload tells every partner actor; each logs a change of its partner's
// status (active, suspended, removed from the program). Removing a partner
// keeps its actor (and its accounts and history in the ledger); its
// requests are refused unknown_partner by the server, which no longer
// knows its code.
//
// The extra hop is one CAF message per partner operation, off the earn path.
#pragma once

#include "actors/coalition.hpp"
#include "actors/member.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace loyalty::actors {

struct partner_counters {
  std::atomic<std::uint64_t> forwarded{0};  // requests passed on to a member actor
  std::atomic<std::uint64_t> refused{0};    // requests refused for the partner's status
};

// The partner actors of an engine. Thread-safe; lookups take a mutex (a
// partner operation is not on the earn path).
class partner_registry {
public:
  partner_registry(caf::actor_system& sys, engine_context& ctx) : sys_(sys), ctx_(ctx) {}
  ~partner_registry() = default;
  partner_registry(const partner_registry&) = delete;
  partner_registry& operator=(const partner_registry&) = delete;

  // Spawns an actor for each partner of `next` that has none yet: call
  // before `next` is published, so that no request can name a partner
  // without an actor. Then, once it is published, notify() tells every
  // actor that the program changed.
  void prepare(const program& next);
  void notify();
  // Sends a partner operation to its partner's actor. False if the partner
  // has no actor (never configured): the caller answers unknown_partner.
  [[nodiscard]] bool send(std::uint32_t partner_id, member_request&& r);
  // The counters of every partner seen, named by its code (its id once
  // removed from the program), in the order their actors were made.
  struct partner_count {
    std::string partner;
    std::uint64_t forwarded = 0;
    std::uint64_t refused = 0;
  };
  [[nodiscard]] std::vector<partner_count> counts() const;
  // partner_<code>_forwarded / _refused for every partner seen (counts(),
  // for the `stats` operation).
  [[nodiscard]] std::vector<std::pair<std::string, std::uint64_t>> stats() const;
  // Stops every partner actor (engine shutdown).
  void stop();

private:
  struct entry {
    std::uint32_t id;
    caf::actor actor;
    std::shared_ptr<partner_counters> counters;
  };
  caf::actor_system& sys_;
  engine_context& ctx_;
  mutable std::mutex mtx_;
  std::vector<entry> entries_;
};

} // namespace loyalty::actors
