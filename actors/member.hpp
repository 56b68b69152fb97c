// Member actors: one per member, owning its balance, lifetime points and
// tier. All operations on one member are serialized by its mailbox, so there
// are no locks and no double spend. The actor checks and applies an operation
// to its tentative state, then hands the journal entry to the ledger writer,
// which answers the client after the group commit. The actor sends exactly
// one message per transaction on the hot path: none.
#pragma once

#include "actors/directory.hpp"
#include "actors/policy.hpp"
#include "config/clock.hpp"
#include "ledger/ledger.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <vector>

namespace loyalty::actors {

// Everything actors share. Owned by the engine; outlives every actor.
struct engine_context {
  const program* prog = nullptr;
  ledger::ledger* ledger = nullptr;
  const loyalty::clock* clock = nullptr;
  directory* dir = nullptr;
  std::vector<caf::actor> brand_actors;  // index: position of the brand in prog->brands
  caf::actor root;                        // supervises members that are not enrolled
};

// Answers one request exactly once. If the request is dropped unanswered (the
// member actor was killed with it in its mailbox), the destructor answers
// `unavailable`, so a client never waits forever; a retry with the same txn
// id is safe.
class reply_guard {
public:
  reply_guard(std::shared_ptr<ledger::completion_target> target, std::uint64_t tag)
    : target_(std::move(target)), tag_(tag) {}
  ~reply_guard();
  reply_guard(const reply_guard&) = delete;
  reply_guard& operator=(const reply_guard&) = delete;

  // Answers now with an error (or a complete outcome).
  void answer(errc code);
  void answer(ledger::outcome o);
  // Hands the answer over to the ledger writer: fills op.target / op.tag.
  void hand_over(ledger::op& o);

private:
  std::shared_ptr<ledger::completion_target> target_;
  std::uint64_t tag_;
  bool answered_ = false;
};

struct member_request {
  request_kind kind = request_kind::balance;
  std::uint64_t member = 0;
  std::uint32_t brand_id = 0;
  std::uint8_t txn_bytes = 0;
  std::array<char, limits::txn_id_bytes_max> txn{};
  std::int64_t amount_minor = 0;
  std::uint64_t occurred_at_us = 0;
  std::int64_t points = 0;
  std::uint64_t hash = 0;
  std::shared_ptr<reply_guard> reply;
};

struct member_state {
  std::shared_ptr<member_slot> slot;
  engine_context* ctx = nullptr;
  member_data data;
  static inline const char* name = "member";
};

// The actor's behavior. Spawned by the directory with lazy_init.
caf::behavior member_actor(caf::stateful_actor<member_state>* self,
                           std::shared_ptr<member_slot> slot, engine_context* ctx);

// Plain transitions, called by the actor and directly by tests. Each returns
// ok and fills `op` (to submit), or an error (nothing changed).
[[nodiscard]] errc prepare_enroll(member_data& m, const member_request& r, ledger::op& op);
[[nodiscard]] errc prepare_earn(member_data& m, const program& prog, const member_request& r,
                                ledger::op& op);
[[nodiscard]] errc prepare_redeem(member_data& m, const program& prog, const member_request& r,
                                  ledger::op& op);

} // namespace loyalty::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(loyalty::actors::member_request)
