// The expiry sweep: visits every enrolled member and lets its actor release
// holds past their TTL, expire lots past their expiry (or after the
// inactivity period) into the brand's breakage account, and journal a tier
// review that is due. The engine runs it periodically
// (expiry_sweep_interval_s) and an admin runs it on demand (`expire`
// without a member).
#pragma once

#include "actors/directory.hpp"
#include "config/errc.hpp"
#include "ledger/ledger.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>

namespace loyalty::actors {

class expiry_sweeper {
public:
  expiry_sweeper(directory& dir, const ledger::ledger& ledger) : dir_(dir), ledger_(ledger) {}

  struct result {
    errc code = errc::ok;      // busy: another pass is running; unavailable: stopped
    std::uint64_t members = 0; // members visited
    std::int64_t expired = 0;  // points expired
  };

  // One pass over all members, as of `as_of_us`, at most members_per_s
  // members per second (0 = no limit) and at most window_max member requests
  // in flight. Returns early (unavailable) once `stop` becomes true. Any
  // thread; blocks until the pass is done.
  result run(std::uint64_t as_of_us, std::uint32_t members_per_s, const std::atomic<bool>& stop);

  static constexpr std::uint32_t window_max = 1000;

private:
  directory& dir_;
  const ledger::ledger& ledger_;
  std::mutex running_;
};

} // namespace loyalty::actors
