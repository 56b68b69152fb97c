// A log-linear latency histogram (HDR-like): values below 64 are exact; above,
// each power of two is split into 64 linear buckets, so any recorded value is
// reported within 1/64 (1.6 %) of itself. Recording is O(1) and allocation
// free; histograms merge by adding counts.
#pragma once

#include <array>
#include <algorithm>
#include <cstdint>

namespace loyalty::loadgen {

class histogram {
public:
  static constexpr unsigned sub_bits = 6;
  static constexpr std::uint64_t sub_count = 1u << sub_bits;  // 64
  static constexpr unsigned exp_max = 48;                     // values up to 2^48
  static constexpr std::size_t bucket_count = (exp_max - sub_bits + 2) * sub_count;

  void record(std::uint64_t v) noexcept {
    counts_[index_of(v)]++;
    total_++;
    max_ = std::max(max_, v);
    min_ = std::min(min_, v);
  }

  void merge(const histogram& o) noexcept {
    for (std::size_t i = 0; i < bucket_count; ++i)
      counts_[i] += o.counts_[i];
    total_ += o.total_;
    max_ = std::max(max_, o.max_);
    min_ = std::min(min_, o.min_);
  }

  void reset() noexcept { *this = histogram{}; }

  [[nodiscard]] std::uint64_t count() const noexcept { return total_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return total_ ? max_ : 0; }
  [[nodiscard]] std::uint64_t min() const noexcept { return total_ ? min_ : 0; }

  // The smallest recorded-bucket value v such that at least q (0..1) of all
  // values are <= v (reported as the bucket's upper edge, capped at max()).
  [[nodiscard]] std::uint64_t percentile(double q) const noexcept {
    if (total_ == 0)
      return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_) + 0.5);
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      seen += counts_[i];
      if (seen >= rank)
        return std::min(upper_edge(i), max_);
    }
    return max_;
  }

  [[nodiscard]] static std::size_t index_of(std::uint64_t v) noexcept {
    if (v < sub_count)
      return static_cast<std::size_t>(v);
    unsigned e = 63u - static_cast<unsigned>(__builtin_clzll(v));
    if (e > exp_max)
      return bucket_count - 1;
    auto sub = (v >> (e - sub_bits)) & (sub_count - 1);
    return static_cast<std::size_t>((e - sub_bits + 1) * sub_count + sub);
  }

  // Largest value that maps to bucket i.
  [[nodiscard]] static std::uint64_t upper_edge(std::size_t i) noexcept {
    if (i < sub_count)
      return i;
    auto e = static_cast<unsigned>(i / sub_count) + sub_bits - 1;
    auto sub = i % sub_count;
    auto lower = (std::uint64_t{1} << e) + (sub << (e - sub_bits));
    return lower + (std::uint64_t{1} << (e - sub_bits)) - 1;
  }

private:
  std::array<std::uint64_t, bucket_count> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = UINT64_MAX;
};

} // namespace loyalty::loadgen
