// Private to ledger/: a blocked Bloom filter over every committed client txn
// id, so that the common question "was this txn id ever posted?" — asked by
// the member actor before it applies a request to its book, and by the
// writer before it posts — is answered "no" from memory, without a read
// transaction and a B-tree search of the txn index. "Maybe" still goes to
// LMDB, which stays the truth.
//
// Soundness: the filter may say "maybe" for an id never posted (a false
// positive: one LMDB lookup too many), never "no" for one that was. The
// writer adds an id when it indexes it, before the commit that makes it
// visible; ids committed before the engine started are added by a scan of
// the txn index on a thread of its own, begun after the writer already adds
// new ids. Until that scan is done, ready() is false and every question
// goes to LMDB.
//
// Layout: 2^k blocks of 512 bits (one cache line); an id sets 8 bits of one
// block, so a lookup touches one cache line. With 10 bits per id the false
// positive rate is about 1 %; 64 MiB holds 50M ids at that rate and degrades
// gracefully past it (docs/OPERATIONS.md, txn_filter_mib).
//
// Threads: add() from the writer and the scan, maybe() from anywhere:
// relaxed atomic ORs and loads of 64-bit words (a bit, once set, stays set).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

namespace loyalty::ledger::detail {

class txn_filter {
public:
  // bytes: rounded down to a power of two of at least 64; 0 disables (maybe()
  // is then always true).
  explicit txn_filter(std::uint64_t bytes) {
    if (bytes < block_bytes)
      return;
    std::uint64_t blocks = 1;
    while (blocks * 2 * block_bytes <= bytes)
      blocks *= 2;
    // calloc, not new[]: a large zeroed allocation comes from the kernel as
    // untouched zero pages, so a page becomes resident when an id first
    // sets a bit in it (an atomic's constructor would write every word).
    words_.reset(static_cast<std::uint64_t*>(std::calloc(blocks * words_per_block, sizeof(std::uint64_t))));
    if (words_ == nullptr)
      return;  // no memory for it: disabled, every question goes to LMDB
    mask_ = blocks - 1;
  }

  [[nodiscard]] bool enabled() const noexcept { return words_ != nullptr; }
  // The filter's 64-bit words (saving it: no add() may run meanwhile).
  [[nodiscard]] std::size_t word_count() const noexcept { return enabled() ? (mask_ + 1) * words_per_block : 0; }
  [[nodiscard]] const std::uint64_t* words() const noexcept { return words_.get(); }
  // Sets the bits of `src` (word_count() words of a saved filter) too: what
  // add() set meanwhile stays.
  void merge(const std::uint64_t* src) noexcept {
    for (std::size_t i = 0, n = word_count(); i < n; ++i)
      if (src[i] != 0)
        std::atomic_ref<std::uint64_t>(words_.get()[i]).fetch_or(src[i], std::memory_order_relaxed);
  }
  [[nodiscard]] bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }
  void set_ready() noexcept { ready_.store(true, std::memory_order_release); }
  // Not ready again (every check goes to LMDB) until a new scan sets it:
  // the ledger was replaced by a snapshot holding ids this one never saw.
  // Bits stay set: an id of the old contents is a false positive at worst.
  void unset_ready() noexcept { ready_.store(false, std::memory_order_release); }

  void add(std::string_view id) noexcept {
    if (!enabled())
      return;
    const auto h = hash(id);
    const auto bits = probes(h);
    auto* block = words_.get() + (h & mask_) * words_per_block;
    for (unsigned i = 0; i < bits_per_id; ++i) {
      const auto bit = probe(bits, i);
      std::atomic_ref<std::uint64_t>(block[bit >> 6]).fetch_or(std::uint64_t{1} << (bit & 63),
                                                                std::memory_order_relaxed);
    }
  }

  // False only if `id` was never added.
  [[nodiscard]] bool maybe(std::string_view id) const noexcept {
    if (!enabled())
      return true;
    const auto h = hash(id);
    const auto bits = probes(h);
    auto* block = words_.get() + (h & mask_) * words_per_block;
    for (unsigned i = 0; i < bits_per_id; ++i) {
      const auto bit = probe(bits, i);
      if ((std::atomic_ref<std::uint64_t>(block[bit >> 6]).load(std::memory_order_relaxed) &
           (std::uint64_t{1} << (bit & 63))) == 0)
        return false;
    }
    return true;
  }

  // 64-bit hash of the id bytes: 8 bytes at a time, multiply-xorshift mixing.
  // The saved filter (ledger/txn_filter_file.cpp) holds bits it chose: a
  // change here (or to probes) must change that file's format tag.
  [[nodiscard]] static std::uint64_t hash(std::string_view id) noexcept {
    std::uint64_t h = 0x9e3779b97f4a7c15ull ^ (id.size() * 0xbf58476d1ce4e5b9ull);
    std::size_t i = 0;
    for (; i + 8 <= id.size(); i += 8) {
      std::uint64_t w = 0;
      std::memcpy(&w, id.data() + i, 8);
      h = mix(h ^ w);
    }
    if (i < id.size()) {
      std::uint64_t w = 0;
      std::memcpy(&w, id.data() + i, id.size() - i);
      h = mix(h ^ w);
    }
    return mix(h);
  }

private:
  static constexpr std::uint64_t block_bytes = 64;
  static constexpr std::uint64_t words_per_block = block_bytes / 8;
  static constexpr unsigned bits_per_id = 8;

  static std::uint64_t mix(std::uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
  }
  // The bits of an id's block come from a second hash, independent of the
  // low bits that chose the block: probe i is 9 bits of it starting at 7i.
  static std::uint64_t probes(std::uint64_t h) noexcept { return mix(h ^ 0x632be59bd9b4e019ull); }
  static unsigned probe(std::uint64_t bits, unsigned i) noexcept {
    return static_cast<unsigned>((bits >> (i * 7)) & 511);
  }

  std::uint64_t mask_ = 0;
  struct free_words {
    void operator()(std::uint64_t* p) const noexcept { std::free(p); }
  };
  // Read and written only through std::atomic_ref (any thread).
  std::unique_ptr<std::uint64_t, free_words> words_;
  std::atomic<bool> ready_{false};
};

} // namespace loyalty::ledger::detail
