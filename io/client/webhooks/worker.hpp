// One endpoint's worker: its own subscription to the engine (with the
// endpoint's filters, from the endpoint's own stored position), and its own
// HTTP poster. Workers share nothing, so a dead or slow endpoint holds up
// only itself; the engine's stream back-pressure (docs/PROTOCOL.md,
// "subscribe") keeps what a stalled worker has not read in the journal,
// not in memory: a worker holds at most one events frame (256 entries).
//
// Thread affinity: run() on a thread of its own; `stop` from any thread.
#pragma once

#include "io/client/webhooks/http_post.hpp"
#include "io/client/webhooks/settings.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace loyalty::webhooks {

enum class worker_outcome {
  stopped,  // `stop` turned true (a clean stop)
  gave_up,  // the endpoint stopped for good: attempts_max reached, the engine refused
            // the subscription or the key, or the state file cannot be used
};

class endpoint_worker {
public:
  endpoint_worker(const settings& s, const endpoint_settings& ep, const std::atomic<bool>& stop)
    : s_(s), ep_(ep), stop_(stop), poster_(std::make_unique<http_poster>(ep, stop)) {}

  // Follows the stream and delivers until `stop` or giving up; every state
  // change (engine lost / back, endpoint failing / recovered, giving up) is
  // one log line naming the endpoint.
  [[nodiscard]] worker_outcome run();

private:
  enum class step { again, stopped, gave_up };
  // One connection's life: connect, subscribe from next_, deliver frames.
  step follow();
  // POSTs one entry's events until a 2xx.
  step deliver(std::uint64_t seq, const std::vector<io::stream_event>& events);
  // Moves and stores the position; false (giving up) when it cannot be stored.
  [[nodiscard]] bool advance(std::uint64_t next);
  // Sleeps `d`, waking early on stop; false if stopping.
  [[nodiscard]] bool pause(std::chrono::milliseconds d) const;

  const settings& s_;
  const endpoint_settings& ep_;
  const std::atomic<bool>& stop_;
  std::unique_ptr<http_poster> poster_;  // one connection to the endpoint, reused
  std::uint64_t next_ = 0;      // where the stream resumes; 0 = no position yet
  std::uint32_t engine_failures_ = 0;
};

} // namespace loyalty::webhooks
