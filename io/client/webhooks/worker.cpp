#include "io/client/webhooks/worker.hpp"

#include "config/log.hpp"
#include "io/client/webhooks/delivery.hpp"
#include "io/client/webhooks/http_post.hpp"

#include <thread>

namespace loyalty::webhooks {

namespace {

// The engine sends a heartbeat frame every 15 s on a quiet stream; a minute
// of silence means the connection is gone (docs/PROTOCOL.md, "subscribe").
constexpr std::chrono::seconds stream_silence_max{60};
// How often a worker blocked on the stream looks at the stop flag.
constexpr std::chrono::milliseconds stop_poll{200};
// Reconnecting to the engine: from 200 ms, doubling, at most 30 s.
constexpr std::uint32_t engine_backoff_initial_ms = 200;
constexpr std::uint32_t engine_backoff_max_ms = 30'000;

// Refusals that waiting does not cure: a wrong key or filter, a position
// the engine's journal does not have (a data directory restored from an
// older backup). The operator has to act.
bool refusal_is_final(errc code) {
  return code == errc::not_authorized || code == errc::invalid_argument || code == errc::unknown_brand ||
         code == errc::wrong_type || code == errc::unsupported_version;
}

} // namespace

bool endpoint_worker::pause(std::chrono::milliseconds d) const {
  const auto until = std::chrono::steady_clock::now() + d;
  while (!stop_.load()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until)
      return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(until - now, stop_poll));
  }
  return false;
}

bool endpoint_worker::advance(std::uint64_t next) {
  if (next <= next_)
    return true;
  std::string error;
  if (!store_next(s_.state_dir, ep_.name, next, error)) {
    log(log_level::error, "endpoint %s: cannot store its position %llu (%s): stopping it", ep_.name.c_str(),
        static_cast<unsigned long long>(next), error.c_str());
    return false;
  }
  next_ = next;
  return true;
}

endpoint_worker::step endpoint_worker::deliver(std::uint64_t seq, const std::vector<io::stream_event>& events) {
  const std::string body = delivery_body(ep_.name, seq, events);
  const std::vector<std::string> headers = {
    "X-Loyalty-Signature: " + signature(ep_.secret, body),
    "X-Loyalty-Seq: " + std::to_string(seq),
    "X-Loyalty-Delivery: " + delivery_id(ep_.name, seq),
  };
  for (std::uint32_t failures = 0;;) {
    const post_result r = poster_->post(body, headers);
    // An acknowledgement counts even when a stop came meanwhile: its
    // position is stored, and the entry is not sent again after a restart.
    if (r.acknowledged()) {
      if (failures != 0)
        log(log_level::info, "endpoint %s recovered: seq %llu acknowledged (HTTP %ld) after %u failed attempts",
            ep_.name.c_str(), static_cast<unsigned long long>(seq), r.status, failures);
      return step::again;
    }
    if (stop_.load())
      return step::stopped;
    ++failures;
    const std::string why = r.status != 0 ? "HTTP " + std::to_string(r.status) : r.error;
    if (ep_.attempts_max != 0 && failures >= ep_.attempts_max) {
      log(log_level::error, "endpoint %s stopped: seq %llu failed %u times (last: %s); a restart resumes from it",
          ep_.name.c_str(), static_cast<unsigned long long>(seq), failures, why.c_str());
      return step::gave_up;
    }
    const auto wait = backoff(failures, ep_.backoff_initial_ms, ep_.backoff_max_ms);
    // One line when the endpoint starts failing; later attempts at debug.
    log(failures == 1 ? log_level::warn : log_level::debug,
        "endpoint %s failing: seq %llu: %s (attempt %u; next in %lld ms)", ep_.name.c_str(),
        static_cast<unsigned long long>(seq), why.c_str(), failures, static_cast<long long>(wait.count()));
    if (!pause(wait))
      return step::stopped;
  }
}

endpoint_worker::step endpoint_worker::follow() {
  std::string error;
  auto c = io::client::connect(s_.host, s_.port, s_.tls, error);
  if (!c) {
    ++engine_failures_;
    log(engine_failures_ == 1 ? log_level::warn : log_level::debug, "endpoint %s: engine %s:%u unreachable: %s",
        ep_.name.c_str(), s_.host.c_str(), static_cast<unsigned>(s_.port), error.c_str());
    return step::again;
  }
  const io::response hello = c->hello("loyalty-webhooks/" + ep_.name, s_.key);
  if (!hello.ok() && refusal_is_final(hello.code)) {
    log(log_level::error, "endpoint %s stopped: the engine refused hello: %s: %s", ep_.name.c_str(),
        std::string(to_string(hello.code)).c_str(), hello.message.c_str());
    return step::gave_up;
  }
  if (!hello.ok()) {
    ++engine_failures_;
    return step::again;
  }
  std::uint64_t from = next_;
  if (from == 0)
    from = s_.start == start_point::beginning ? 1 : 0;
  const io::response first = c->subscribe(from, ep_.types, ep_.consent, ep_.brand);
  if (!first.ok()) {
    if (refusal_is_final(first.code)) {
      log(log_level::error, "endpoint %s stopped: the engine refused subscribe from %llu: %s: %s", ep_.name.c_str(),
          static_cast<unsigned long long>(from), std::string(to_string(first.code)).c_str(), first.message.c_str());
      return step::gave_up;
    }
    ++engine_failures_;
    return step::again;
  }
  if (engine_failures_ != 0)
    log(log_level::info, "endpoint %s: following the engine again from seq %llu", ep_.name.c_str(),
        static_cast<unsigned long long>(first.next));
  engine_failures_ = 0;
  // Without a stored position, the first answer fixes one: a restart must
  // not skip what is committed meanwhile.
  if (!advance(first.next))
    return step::gave_up;
  auto heard = std::chrono::steady_clock::now();
  while (!stop_.load()) {
    io::response frame;
    if (!c->receive(frame, error, stop_poll)) {
      const bool silent = error == "timed out waiting for a response";
      if (silent && std::chrono::steady_clock::now() - heard < stream_silence_max)
        continue;
      log(log_level::warn, "endpoint %s: lost the engine's stream: %s", ep_.name.c_str(), error.c_str());
      ++engine_failures_;
      return step::again;
    }
    heard = std::chrono::steady_clock::now();
    if (frame.op != io::opcode::subscribe || frame.id != first.id)
      continue;
    if (!frame.ok()) {
      log(log_level::warn, "endpoint %s: the engine ended the stream: %s: %s", ep_.name.c_str(),
          std::string(to_string(frame.code)).c_str(), frame.message.c_str());
      ++engine_failures_;
      return step::again;
    }
    // Events come seq ascending, an entry's events together: one POST each.
    for (std::size_t i = 0; i < frame.events.size();) {
      std::size_t j = i + 1;
      while (j < frame.events.size() && frame.events[j].seq == frame.events[i].seq)
        ++j;
      const std::uint64_t seq = frame.events[i].seq;
      if (seq >= next_) {
        const std::vector<io::stream_event> entry(frame.events.begin() + static_cast<std::ptrdiff_t>(i),
                                                  frame.events.begin() + static_cast<std::ptrdiff_t>(j));
        if (const step st = deliver(seq, entry); st != step::again)
          return st;
        if (!advance(seq + 1))
          return step::gave_up;
      }
      i = j;
    }
    // Entries filtered out move the position on too.
    if (!advance(frame.next))
      return step::gave_up;
  }
  return step::stopped;
}

worker_outcome endpoint_worker::run() {
  std::string error;
  const auto stored = load_next(s_.state_dir, ep_.name, error);
  if (!error.empty()) {
    log(log_level::error, "endpoint %s stopped: %s", ep_.name.c_str(), error.c_str());
    return worker_outcome::gave_up;
  }
  next_ = stored.value_or(0);
  log(log_level::info, "endpoint %s: %s (%s)", ep_.name.c_str(),
      stored ? ("resuming from seq " + std::to_string(next_)).c_str()
             : (s_.start == start_point::beginning ? "no state yet: starting at seq 1"
                                                   : "no state yet: starting at the next committed entry"),
      ep_.url.c_str());
  for (;;) {
    switch (follow()) {
      case step::stopped: return worker_outcome::stopped;
      case step::gave_up: return worker_outcome::gave_up;
      case step::again: break;
    }
    if (!pause(backoff(std::max<std::uint32_t>(engine_failures_, 1), engine_backoff_initial_ms, engine_backoff_max_ms)))
      return worker_outcome::stopped;
  }
}

} // namespace loyalty::webhooks
