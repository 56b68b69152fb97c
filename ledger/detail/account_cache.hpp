// Private to ledger/: the writer's write-back cache of account balances
// (docs/ARCHITECTURE.md, "Ledger"), as an open-addressing hash table.
//
// Why not std::unordered_map: nearly every earn touches a member account
// that is not cached yet, and a node-based map allocates a node for it and
// frees them all at the next checkpoint — the writer, the engine's one
// serial thread, spent more time in malloc and free than in LMDB (a perf
// profile under load: docs/PERFORMANCE.md, issue 5). Here an insert writes
// into a slot of one array; clearing forgets the used slots only.
//
// Keys are account ids, never 0 (the kind sits in the top byte and is >= 1),
// so 0 marks an empty slot. Linear probing; the table doubles at half full,
// so probes stay short. Not thread-safe: the writer mutates it under
// cache_mtx, readers read it under the same lock.
#pragma once

#include "ledger/records.hpp"

#include <cstdint>
#include <utility>
#include <vector>

namespace loyalty::ledger::detail {

class account_cache {
public:
  account_cache() { resize(1024); }

  [[nodiscard]] std::size_t size() const noexcept { return used_.size(); }
  [[nodiscard]] bool empty() const noexcept { return used_.empty(); }

  [[nodiscard]] const account_record* find(std::uint64_t id) const noexcept {
    for (std::size_t i = home(id);; i = (i + 1) & mask_) {
      if (slots_[i].id == id)
        return &slots_[i].rec;
      if (slots_[i].id == 0)
        return nullptr;
    }
  }

  // The record of `id`, inserted as zeroes if absent.
  account_record& operator[](std::uint64_t id) {
    if ((used_.size() + 1) * 2 > slots_.size())
      resize(slots_.size() * 2);
    std::size_t i = home(id);
    for (; slots_[i].id != 0; i = (i + 1) & mask_)
      if (slots_[i].id == id)
        return slots_[i].rec;
    slots_[i].id = id;
    slots_[i].rec = account_record{};
    used_.push_back(static_cast<std::uint32_t>(i));
    return slots_[i].rec;
  }

  // Calls f(id, record) for every cached account, in no particular order.
  template <class F>
  void for_each(F f) const {
    for (auto i : used_)
      f(slots_[i].id, slots_[i].rec);
  }

  // Forgets every account; keeps the table's size (the next checkpoint
  // interval caches about as many).
  void clear() noexcept {
    for (auto i : used_)
      slots_[i].id = 0;
    used_.clear();
  }

  void swap(account_cache& other) noexcept {
    slots_.swap(other.slots_);
    used_.swap(other.used_);
    std::swap(mask_, other.mask_);
  }

private:
  struct slot {
    std::uint64_t id = 0;
    account_record rec{};
  };

  [[nodiscard]] std::size_t home(std::uint64_t id) const noexcept {
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdull;
    id ^= id >> 33;
    return static_cast<std::size_t>(id) & mask_;
  }

  void resize(std::size_t capacity) {
    std::vector<slot> old;
    old.swap(slots_);
    std::vector<std::uint32_t> old_used;
    old_used.swap(used_);
    slots_.assign(capacity, slot{});
    mask_ = capacity - 1;
    used_.reserve(capacity / 2);
    for (auto i : old_used)
      (*this)[old[i].id] = old[i].rec;
  }

  std::vector<slot> slots_;           // power-of-two size
  std::vector<std::uint32_t> used_;   // indices of occupied slots, for iteration and clear
  std::size_t mask_ = 0;
};

} // namespace loyalty::ledger::detail
