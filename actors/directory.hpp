// The member directory: member id -> the slot of its actor. It routes every
// member request to the one actor that owns that member, activating it on
// first use, and it is where passivation and crash recovery meet.
//
// Protocol (why it is race-free):
//  - Senders enqueue to a member actor only while holding the slot's shard
//    mutex, after incrementing slot.pending.
//  - The actor decrements pending for every message it dequeues.
//  - An actor passivates only under the same mutex, when pending == 0 and
//    inflight == 0 (no op of this member in the ledger writer). So no message
//    can be lost to a passivating actor, and a reactivated actor never loads
//    state that misses an uncommitted op of its predecessor.
//  - A crashed actor (down with a non-normal reason) leaves its slot with
//    no actor; the next message spawns a new one, which first waits for the
//    ledger writer (barrier) if the slot still has ops in flight.
#pragma once

#include "actors/policy.hpp"
#include "ledger/ledger.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/message.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace loyalty::actors {

class directory;
struct engine_context;
struct member_request;

class member_slot final : public ledger::op_owner {
public:
  member_slot(std::uint64_t id, directory& dir) : member_id(id), dir_(dir) {}
  const std::uint64_t member_id;
  caf::actor actor;                      // guarded by the shard mutex; null when not active
  std::atomic<std::uint32_t> pending{0}; // messages enqueued, not yet dequeued
  // Passivate requests sent to the actor and not yet handled (0 or 1: the
  // sweep asks only an actor with nothing pending). A crash drops the
  // request with the mailbox: on_down gives it back to the sweep's budget.
  std::atomic<std::uint32_t> passivate_asked{0};
  // The shard's recency list (guarded by the shard mutex): the tick of the
  // last message sent to the member, and its neighbours, most recent first.
  std::uint32_t last_sent_tick = 0;
  member_slot* lru_prev = nullptr;  // more recent
  member_slot* lru_next = nullptr;  // less recent
  // Set by the writer when an op the actor applied to its book was not
  // posted: the actor reloads its book from the ledger before its next message.
  std::atomic<bool> stale{false};
  // An enrollment without an actor (directory::enroll): `enrolling` while its
  // ops are being prepared (an actor spawned meanwhile waits before loading);
  // `direct` until an actor is spawned for the slot: then the slot is dropped
  // as soon as its ops are done instead of by the idle sweep.
  std::atomic<bool> enrolling{false};
  std::atomic<bool> direct{false};
  // Writer thread: an op this member's actor applied tentatively was not
  // posted. Undoes the op's program-wide reservations (caps, stock) and
  // marks the slot stale.
  void rejected(const ledger::op& o, errc code) noexcept override;
  // Writer thread: drops a direct enrollment's slot once its ops are done.
  void settled() noexcept override;

private:
  directory& dir_;
};

struct directory_stats {
  std::uint64_t active = 0;
  std::uint64_t activations = 0;
  std::uint64_t passivations = 0;
  std::uint64_t crashes = 0;
  std::uint64_t passivating = 0;  // passivate requests sent and not yet handled
};

class directory {
public:
  // passivating_max: passivate requests outstanding at once for idle actors
  // (0: max(256, active_max / 1000)). Requests queue in front of members'
  // messages, so a wave of actors going idle together (all enrolled in the
  // same minute) is spread over ticks instead of stalling every request
  // behind it. Past active_max, as many are asked as the excess needs.
  directory(caf::actor_system& sys, engine_context& ctx, std::uint32_t active_max,
            std::uint32_t idle_ticks, std::uint32_t passivating_max = 0);

  // Any thread. Finds or activates the member's actor and enqueues `msg`
  // (a caf::message) to it. False (message dropped) only during shutdown.
  bool send(std::uint64_t member_id, caf::message msg);

  // Any thread. An enrollment: when the member has no slot (no actor, nothing
  // in flight; the usual case for a new member) it is prepared and handed to
  // the ledger writer right here, without spawning an actor that would only
  // be passivated again -- bulk enrollment of millions of members would
  // otherwise churn through as many actors (docs/PERFORMANCE.md, issue 5).
  // Otherwise it goes to the member's actor like any request. False only
  // during shutdown (the request was answered `unavailable`).
  bool enroll(std::uint64_t member_id, member_request&& r);

  // Called by a member actor on its own thread in reply to passivate_atom.
  // True if the slot was removed and the actor must quit now.
  [[nodiscard]] bool try_passivate(member_slot& slot, const caf::actor_addr& self);

  // Called by the supervising actor when a member actor went down. True if
  // it crashed: its slot still named it, and now names no actor.
  bool on_down(const std::shared_ptr<member_slot>& slot, const caf::actor_addr& who, bool crashed);

  // Called by the program root once per tick: asks idle actors (and, past
  // active_max, the least recently active ones) to passivate, within the
  // limits above; drops slots left without actor and without ops in flight.
  void sweep();

  // Enqueue under the shard lock to the slot's live actor.
  void send_if_active(member_slot& slot, caf::message msg);

  [[nodiscard]] engine_context& context() noexcept { return ctx_; }

  // The current tick (sweeps since the engine started), for last-sent stamps.
  [[nodiscard]] std::uint32_t tick() const noexcept { return tick_.load(std::memory_order_relaxed); }
  [[nodiscard]] directory_stats stats() const noexcept;
  [[nodiscard]] std::size_t active() const noexcept { return active_.load(); }

  // Engine shutdown: no more activations; every member actor stops, and
  // shutdown returns once they have (their state destroyed). An actor's
  // queued requests are answered `unavailable`. keep_idle (a process that
  // exits right after the stop, loyaltyd): the actors with nothing queued
  // and nothing in the writer are left as they are instead, inert (a member
  // actor handles nothing once the directory stops) and never destroyed,
  // which makes the stop of a million active members take milliseconds
  // rather than seconds (docs/OPERATIONS.md, "Starting and stopping").
  void shutdown(bool keep_idle = false);
  [[nodiscard]] bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
  // Member actors alive (spawned, state not yet destroyed).
  [[nodiscard]] std::int64_t live() const noexcept { return live_.load(); }
  // Every active member's actor reloads its book from the ledger before its
  // next message (a node that becomes a cluster's leader: its ledger moved
  // on under actors it activated before). Any thread.
  void mark_all_stale();

  // Tests: slots held (active actors, and slots with ops in flight).
  [[nodiscard]] std::size_t slot_count();

  // Tests: the live actor of a member, or null.
  [[nodiscard]] caf::actor actor_of(std::uint64_t member_id);

private:
  // Each shard keeps its slots in a recency list, most recently sent-to at
  // the head: a send moves its slot to the head (O(1), under the lock it
  // takes anyway), so the sweep reads idle slots from the tail and stops at
  // the first recent one — O(slots it passivates), not O(active members).
  // (A full scan of 1M slots every second took 14 % of the CPU under load:
  // docs/PERFORMANCE.md, issue 5.)
  struct shard {
    std::mutex mtx;
    std::unordered_map<std::uint64_t, std::shared_ptr<member_slot>> slots;
    member_slot* head = nullptr;  // most recent
    member_slot* tail = nullptr;  // least recent
    void unlink(member_slot& s) noexcept;
    void touch(member_slot& s, std::uint32_t tick) noexcept;  // to the head, stamped
    std::shared_ptr<member_slot> erase(member_slot& s);        // out of list and map; keeps it alive
  };
  static constexpr std::size_t shard_count = 64;
  shard& shard_for(std::uint64_t id) noexcept { return shards_[(id * 0x9E3779B97F4A7C15ull) >> 58]; }
  caf::actor spawn_member(const std::shared_ptr<member_slot>& slot);
  friend class member_slot;
  void drop_settled(member_slot& slot);

  caf::actor_system& sys_;
  engine_context& ctx_;
  const std::uint32_t active_max_;
  const std::uint32_t idle_ticks_;
  const std::uint32_t passivating_max_;
  std::vector<shard> shards_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::int64_t> live_{0};  // member actors whose state exists (member_state::live)
  // shutdown(keep_idle): the idle actors left as they are. The directory is
  // then never destroyed (engine::stop_for_exit: the process exits).
  std::vector<caf::actor> kept_;
  std::atomic<std::uint32_t> tick_{0};
  std::atomic<std::uint64_t> active_{0};
  std::atomic<std::uint64_t> passivating_{0};  // passivate requests not yet handled by their actor
  std::atomic<std::uint64_t> activations_{0};
  std::atomic<std::uint64_t> passivations_{0};
  std::atomic<std::uint64_t> crashes_{0};
};

} // namespace loyalty::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<loyalty::actors::member_slot>)
