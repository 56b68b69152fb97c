#include "actors/policy.hpp"

#include "ledger/ledger.hpp"

#include <cstring>
#include <limits>

namespace loyalty::actors {

points_result earn_points(const program& prog, const brand_def& b, std::uint32_t tier,
                          std::int64_t amount_minor) noexcept {
  if (amount_minor <= 0)
    return {errc::invalid_amount, 0};
  rational mult{1, 1};
  if (tier < prog.tiers.size())
    mult = prog.tiers[tier].multiplier;
  // Config bounds num and den to 1e9, so amount (< 2^63) * 1e9 * 1e9 < 2^123.
  __extension__ typedef unsigned __int128 u128;
  u128 num = static_cast<u128>(amount_minor) * b.earn_rate.num * mult.num;
  u128 den = static_cast<u128>(b.earn_rate.den) * mult.den;
  u128 pts = num / den;  // floor, once
  if (pts > static_cast<u128>(std::numeric_limits<std::int64_t>::max()))
    return {errc::amount_overflow, 0};
  return {errc::ok, static_cast<std::int64_t>(pts)};
}

points_result checked_add(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r))
    return {errc::amount_overflow, 0};
  return {errc::ok, r};
}

std::uint64_t request_hash(request_kind kind, std::uint64_t member, std::uint32_t brand_id,
                           std::int64_t amount_minor, std::uint64_t occurred_at_us,
                           std::int64_t points, std::string_view currency) noexcept {
  char buf[1 + 8 + 4 + 8 + 8 + 8 + 3] = {};
  char* p = buf;
  auto put = [&p](const void* v, std::size_t n) {
    std::memcpy(p, v, n);
    p += n;
  };
  auto k = static_cast<std::uint8_t>(kind);
  put(&k, 1);
  put(&member, 8);
  put(&brand_id, 4);
  put(&amount_minor, 8);
  put(&occurred_at_us, 8);
  put(&points, 8);
  std::memcpy(p, currency.data(), currency.size() < 3 ? currency.size() : 3);
  return ledger::content_hash({buf, sizeof buf});
}

} // namespace loyalty::actors
