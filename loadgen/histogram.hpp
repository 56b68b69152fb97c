// A log-linear latency histogram (HDR-like): values below 64 are exact; above,
// each power of two is split into 64 linear buckets, so any recorded value is
// reported within 1/64 (1.6 %) of itself. Recording is O(1) and allocation
// free; histograms merge by adding counts. `windowed` below keeps one for the
// current second and rolls it into a running total once a second, so a run
// gets per-second percentiles for one record() per request.
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

  // Recorded values in bucket i (0 <= i < bucket_count).
  [[nodiscard]] std::uint64_t count_at(std::size_t i) const noexcept { return counts_[i]; }

  [[nodiscard]] static std::size_t index_of(std::uint64_t v) noexcept {
    if (v < sub_count)
      return static_cast<std::size_t>(v);
    unsigned e = 63u - static_cast<unsigned>(__builtin_clzll(v));
    if (e > exp_max)
      return bucket_count - 1;
    auto sub = (v >> (e - sub_bits)) & (sub_count - 1);
    return static_cast<std::size_t>((e - sub_bits + 1) * sub_count + sub);
  }

  // Smallest value that maps to bucket i.
  [[nodiscard]] static std::uint64_t lower_edge(std::size_t i) noexcept {
    if (i < sub_count)
      return i;
    auto e = static_cast<unsigned>(i / sub_count) + sub_bits - 1;
    auto sub = i % sub_count;
    return (std::uint64_t{1} << e) + (sub << (e - sub_bits));
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

// The summary of one window (or of a whole run): what the reports print.
struct latency_summary {
  std::uint64_t count = 0;
  std::uint64_t p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;

  static latency_summary of(const histogram& h) noexcept {
    return {h.count(), h.percentile(0.5), h.percentile(0.9), h.percentile(0.99), h.percentile(0.999), h.max()};
  }
};

// Per-second windows over one histogram's worth of recording: record() goes
// to the current window; roll() summarises it, adds it to the total and
// starts the next one (a 22 KiB merge and clear, once a second).
class windowed {
public:
  void record(std::uint64_t v) noexcept { current_.record(v); }

  latency_summary roll() noexcept {
    auto s = latency_summary::of(current_);
    total_.merge(current_);
    current_.reset();
    return s;
  }

  [[nodiscard]] const histogram& current() const noexcept { return current_; }
  // Everything rolled so far (call roll() first to include the current window).
  [[nodiscard]] const histogram& total() const noexcept { return total_; }

private:
  histogram current_;
  histogram total_;
};

} // namespace loyalty::loadgen
