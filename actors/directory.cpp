#include "actors/directory.hpp"

#include "actors/atoms.hpp"
#include "actors/member.hpp"
#include "config/log.hpp"

#include <caf/send.hpp>
#include <caf/spawn_options.hpp>

#include <algorithm>

namespace loyalty::actors {

void member_slot::rejected(const ledger::op& o, errc) noexcept {
  auto& ctx = dir_.context();
  if (o.owner.get() == this) {
    const policy_state& p = ctx.now();  // after a reload: the new counters (loaded from the ledger)
    p.counters.undo(p.prog, o.details);
  }
  stale.store(true);
}

directory::directory(caf::actor_system& sys, engine_context& ctx, std::uint32_t active_max,
                     std::uint32_t idle_ticks, std::uint32_t passivating_max)
  : sys_(sys),
    ctx_(ctx),
    active_max_(active_max),
    idle_ticks_(idle_ticks),
    passivating_max_(passivating_max != 0 ? passivating_max : std::max<std::uint32_t>(256, active_max / 1000)),
    shards_(shard_count) {}

void directory::shard::unlink(member_slot& s) noexcept {
  if (s.lru_prev != nullptr)
    s.lru_prev->lru_next = s.lru_next;
  else if (head == &s)
    head = s.lru_next;
  if (s.lru_next != nullptr)
    s.lru_next->lru_prev = s.lru_prev;
  else if (tail == &s)
    tail = s.lru_prev;
  s.lru_prev = s.lru_next = nullptr;
}

void directory::shard::touch(member_slot& s, std::uint32_t tick) noexcept {
  s.last_sent_tick = tick;
  if (head == &s)
    return;
  unlink(s);
  s.lru_next = head;
  if (head != nullptr)
    head->lru_prev = &s;
  head = &s;
  if (tail == nullptr)
    tail = &s;
}

std::shared_ptr<member_slot> directory::shard::erase(member_slot& s) {
  unlink(s);
  auto it = slots.find(s.member_id);
  if (it == slots.end() || it->second.get() != &s)
    return nullptr;  // not this shard's slot for the member any more
  std::shared_ptr<member_slot> keep = std::move(it->second);
  slots.erase(it);
  return keep;
}

void member_slot::settled() noexcept {
  if (direct.load(std::memory_order_acquire))
    dir_.drop_settled(*this);
}

void directory::drop_settled(member_slot& slot) {
  auto& sh = shard_for(slot.member_id);
  std::lock_guard<std::mutex> guard(sh.mtx);
  if (!slot.actor && slot.inflight.load() == 0 && slot.direct.load())
    sh.erase(slot);  // the op being completed still holds the slot
}

bool directory::enroll(std::uint64_t member_id, member_request&& r) {
  auto& sh = shard_for(member_id);
  std::shared_ptr<member_slot> slot;
  {
    std::lock_guard<std::mutex> guard(sh.mtx);
    if (!stopping_.load() && sh.slots.find(member_id) == sh.slots.end()) {
      slot = std::make_shared<member_slot>(member_id, *this);
      slot->direct.store(true);
      slot->enrolling.store(true);
      slot->inflight.fetch_add(1, std::memory_order_acq_rel);  // keeps the slot until its ops are submitted
      sh.touch(*slot, tick());
      sh.slots.emplace(member_id, slot);
    }
  }
  if (!slot)
    return send(member_id, caf::make_message(std::move(r)));
  enroll_without_actor(ctx_, slot, r);
  slot->enrolling.store(false, std::memory_order_release);
  if (slot->inflight.fetch_sub(1, std::memory_order_acq_rel) == 1)
    slot->settled();  // refused before reaching the writer, or already committed
  return true;
}

caf::actor directory::spawn_member(const std::shared_ptr<member_slot>& slot) {
  slot->direct.store(false, std::memory_order_release);
  active_.fetch_add(1, std::memory_order_relaxed);
  activations_.fetch_add(1, std::memory_order_relaxed);
  slot->pending.store(0);
  // Hidden: the actor system does not wait for members when it stops;
  // shutdown waits for them itself (live_), and may keep idle ones.
  live_.fetch_add(1, std::memory_order_acq_rel);
  auto a = sys_.spawn<caf::lazy_init + caf::hidden>(member_actor, slot, &ctx_);
  caf::actor_cast<caf::stateful_actor<member_state>*>(a)->state.live.count = &live_;
  return a;
}

bool directory::send(std::uint64_t member_id, caf::message msg) {
  auto& sh = shard_for(member_id);
  std::lock_guard<std::mutex> guard(sh.mtx);
  if (stopping_.load())
    return false;
  auto& slot = sh.slots[member_id];
  if (!slot)
    slot = std::make_shared<member_slot>(member_id, *this);
  if (!slot->actor)
    slot->actor = spawn_member(slot);
  sh.touch(*slot, tick());
  slot->pending.fetch_add(1, std::memory_order_acq_rel);
  caf::anon_send(slot->actor, std::move(msg));
  return true;
}

void directory::send_if_active(member_slot& slot, caf::message msg) {
  auto& sh = shard_for(slot.member_id);
  std::lock_guard<std::mutex> guard(sh.mtx);
  if (!slot.actor || stopping_.load())
    return;  // a reactivated actor loads committed state, which never held the op
  sh.touch(slot, tick());
  slot.pending.fetch_add(1, std::memory_order_acq_rel);
  caf::anon_send(slot.actor, std::move(msg));
}

bool directory::try_passivate(member_slot& slot, const caf::actor_addr& self) {
  // One call per passivate request (the sweep counted it out).
  slot.passivate_asked.fetch_sub(1, std::memory_order_relaxed);
  passivating_.fetch_sub(1, std::memory_order_relaxed);
  auto& sh = shard_for(slot.member_id);
  std::lock_guard<std::mutex> guard(sh.mtx);
  if (stopping_.load())
    return false;  // shutdown: the actor is being stopped, and the shard emptied
  if (slot.pending.load() != 0 || slot.inflight.load() != 0)
    return false;
  if (!slot.actor || slot.actor.address() != self)
    return false;
  slot.actor = nullptr;
  sh.erase(slot);  // drops the map's reference; the actor holds another
  active_.fetch_sub(1, std::memory_order_relaxed);
  passivations_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool directory::on_down(const std::shared_ptr<member_slot>& slot, const caf::actor_addr& who,
                        bool crashed) {
  if (!crashed || stopping_.load())
    return false;  // passivated (already removed) or engine shutdown
  auto& sh = shard_for(slot->member_id);
  std::lock_guard<std::mutex> guard(sh.mtx);
  if (!slot->actor || slot->actor.address() != who)
    return false;  // it passivated: the slot no longer names it
  slot->actor = nullptr;  // next message spawns a fresh actor that reloads from the ledger
  slot->pending.store(0);
  // A passivate request it never handled died with its mailbox: without
  // this the sweep's budget (passivating_max) would shrink by one for good.
  passivating_.fetch_sub(slot->passivate_asked.exchange(0), std::memory_order_relaxed);
  active_.fetch_sub(1, std::memory_order_relaxed);
  crashes_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void directory::sweep() {
  auto now = tick_.fetch_add(1, std::memory_order_relaxed) + 1;
  const std::uint64_t active = active_.load(std::memory_order_relaxed);
  const std::uint64_t asked = passivating_.load(std::memory_order_relaxed);
  // Past the cap, also passivate actors idle for at least one tick, until the
  // excess is covered (an approximation of least-recently-used); requests
  // still on their way count as covering it.
  std::uint64_t excess = active > active_max_ + asked ? active - active_max_ - asked : 0;
  // Actors idle for idle_ticks: as many as keep passivating_max_ outstanding.
  std::uint64_t idle_budget = asked < passivating_max_ ? passivating_max_ - asked : 0;
  // Start at a different shard each tick, so a budget that runs out does not
  // always favour the first shards.
  for (std::size_t i = 0; i < shard_count; ++i) {
    auto& sh = shards_[(now + i) % shard_count];
    std::lock_guard<std::mutex> guard(sh.mtx);
    // From the least recent; everything before the first slot that is not
    // idle enough is more recent still.
    for (member_slot* s = sh.tail; s != nullptr;) {
      member_slot* more_recent = s->lru_prev;
      const auto idle = now - s->last_sent_tick;
      if (idle < idle_ticks_ && !(excess > 0 && idle >= 1))
        break;
      if (!s->actor) {  // crashed, or passivated with ops in flight: drop once they are done
        if (s->inflight.load() == 0)
          sh.erase(*s);
      } else if (s->pending.load() == 0) {
        if (excess > 0)
          --excess;
        else if (idle_budget > 0)
          --idle_budget;
        else
          break;  // this shard's budget is spent; the rest waits for a later tick
        passivating_.fetch_add(1, std::memory_order_relaxed);
        s->passivate_asked.fetch_add(1, std::memory_order_relaxed);
        s->pending.fetch_add(1, std::memory_order_acq_rel);
        caf::anon_send(s->actor, passivate_atom::value);
      }
      s = more_recent;
    }
  }
}

directory_stats directory::stats() const noexcept {
  return {active_.load(), activations_.load(), passivations_.load(), crashes_.load(), passivating_.load()};
}

void directory::mark_all_stale() {
  for (auto& sh : shards_) {
    std::lock_guard<std::mutex> guard(sh.mtx);
    for (auto& [id, slot] : sh.slots)
      slot->stale.store(true);
  }
}

void directory::shutdown(bool keep_idle) {
  stopping_.store(true, std::memory_order_release);
  // Every actor that is not kept gets an exit, and the directory drops its
  // handle: the actor ends at its next turn, and its queued requests are
  // destroyed with its mailbox, which answers them `unavailable`
  // (reply_guard). (Dropping the handle alone is not enough: CAF's clock
  // holds one of an actor whose housekeeping timer is pending.) Each end
  // costs a turn on a worker and CAF's cleanup, which tells its clock under
  // a lock with a wake-up: seconds for a million actors. keep_idle skips
  // all of it for the actors with nothing to do, which are nearly all.
  std::vector<caf::actor> ending;
  for (auto& sh : shards_) {
    {
      std::lock_guard<std::mutex> guard(sh.mtx);
      ending.reserve(sh.slots.size());
      for (auto& [id, slot] : sh.slots) {
        if (slot->actor) {
          const bool idle = slot->pending.load() == 0 && slot->inflight.load() == 0;
          if (keep_idle && idle) {
            kept_.push_back(std::move(slot->actor));
          } else {
            caf::anon_send_exit(slot->actor, caf::exit_reason::user_shutdown);
            ending.push_back(std::move(slot->actor));
          }
        }
        slot->actor = nullptr;
        slot->lru_prev = slot->lru_next = nullptr;  // slots outlive the shard's list in their actors
      }
      sh.head = sh.tail = nullptr;
      sh.slots.clear();
    }
    ending.clear();  // outside the shard's lock: an actor's end answers its requests
  }
  active_.store(0);
  // The actors end on the workers; passivated ones end as they quit.
  const auto keeping = static_cast<std::int64_t>(kept_.size());
  for (auto n = live_.load(); n > keeping; n = live_.load())
    live_.wait(n);
}

std::size_t directory::slot_count() {
  std::size_t n = 0;
  for (auto& sh : shards_) {
    std::lock_guard<std::mutex> guard(sh.mtx);
    n += sh.slots.size();
  }
  return n;
}

caf::actor directory::actor_of(std::uint64_t member_id) {
  auto& sh = shard_for(member_id);
  std::lock_guard<std::mutex> guard(sh.mtx);
  auto it = sh.slots.find(member_id);
  return it == sh.slots.end() ? caf::actor{} : it->second->actor;
}

} // namespace loyalty::actors
