// Time is injected: the engine reads it through a clock it is given, so tests
// can move time without sleeping. Times are microseconds since the Unix epoch.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace loyalty {

class clock {
public:
  virtual ~clock() = default;
  // Thread-safe. Microseconds since 1970-01-01T00:00:00Z.
  [[nodiscard]] virtual std::uint64_t now_us() const noexcept = 0;
};

class system_clock final : public clock {
public:
  [[nodiscard]] std::uint64_t now_us() const noexcept override {
    using namespace std::chrono;
    return static_cast<std::uint64_t>(
      duration_cast<microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  }
};

// A clock tests set by hand.
class manual_clock final : public clock {
public:
  explicit manual_clock(std::uint64_t start_us = 1'700'000'000'000'000ull) : now_(start_us) {}
  [[nodiscard]] std::uint64_t now_us() const noexcept override { return now_.load(); }
  void set(std::uint64_t us) noexcept { now_.store(us); }
  void advance(std::uint64_t us) noexcept { now_.fetch_add(us); }

private:
  std::atomic<std::uint64_t> now_;
};

} // namespace loyalty
