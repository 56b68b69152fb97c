#include "actors/sweeper.hpp"

#include "actors/member.hpp"
#include "config/log.hpp"

#include <caf/message.hpp>

#include <chrono>
#include <condition_variable>
#include <thread>

namespace loyalty::actors {

namespace {

// Counts the answers of one pass.
class tally final : public ledger::completion_target {
public:
  void complete(std::vector<ledger::outcome>&& outcomes) noexcept override {
    std::lock_guard<std::mutex> lk(mtx);
    for (const auto& o : outcomes) {
      if (o.code == errc::ok && o.note) {
        const auto* n = static_cast<const answer_note*>(o.note.get());
        expired += n->expired;
        members += n->members;
      }
      --outstanding;
    }
    cv.notify_all();
  }
  std::mutex mtx;
  std::condition_variable cv;
  std::uint64_t outstanding = 0;
  std::uint64_t members = 0;
  std::int64_t expired = 0;
};

} // namespace

expiry_sweeper::result expiry_sweeper::run(std::uint64_t as_of_us, std::uint32_t members_per_s,
                                           const std::atomic<bool>& stop) {
  result res;
  std::unique_lock<std::mutex> running(running_, std::try_to_lock);
  if (!running.owns_lock()) {
    res.code = errc::busy;
    return res;
  }
  auto t = std::make_shared<tally>();
  const auto started = std::chrono::steady_clock::now();
  auto last_progress = started;
  std::uint64_t sent = 0, after = 0;
  std::vector<std::uint64_t> page;
  while (!stop.load()) {
    page.clear();
    after = ledger_.for_each_member(after, 1000, [&](std::uint64_t id) { page.push_back(id); });
    if (page.empty())
      break;
    for (auto id : page) {
      {
        std::unique_lock<std::mutex> lk(t->mtx);
        t->cv.wait(lk, [&] { return t->outstanding < window_max || stop.load(); });
        if (stop.load())
          break;
        ++t->outstanding;
      }
      member_request r;
      r.kind = request_kind::expire;
      r.member = id;
      r.as_of_us = as_of_us;
      r.reply = std::make_shared<reply_guard>(t, 0);
      dir_.send(id, caf::make_message(std::move(r)));  // dropped at shutdown: the guard answers
      ++sent;
      if (members_per_s != 0) {
        auto due = started + std::chrono::microseconds(sent * 1'000'000ull / members_per_s);
        std::this_thread::sleep_until(due);
      }
      auto now = std::chrono::steady_clock::now();
      if (now - last_progress > std::chrono::seconds(10)) {
        last_progress = now;
        log(log_level::info, "expiry sweep: %llu members visited", static_cast<unsigned long long>(sent));
      }
    }
  }
  std::unique_lock<std::mutex> lk(t->mtx);
  t->cv.wait(lk, [&] { return t->outstanding == 0; });
  res.members = t->members;
  res.expired = t->expired;
  if (stop.load())
    res.code = errc::unavailable;
  return res;
}

} // namespace loyalty::actors
